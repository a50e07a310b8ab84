//! Lambda entry point of the API: the router behind API Gateway (HTTP API), a two-connection
//! Postgres pool built once per container.

use api_function::{ApiState, router_with_cors};
use highlights_adapters::postgres::Database;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let pool = Database::from_url(&database_url)?.pool(2)?;
    // The static site's origin (the CloudFront URL), for CORS.
    let site_origin = std::env::var("SITE_ORIGIN").ok();
    lambda_http::run(router_with_cors(ApiState::new(pool), site_origin.as_deref())).await
}
