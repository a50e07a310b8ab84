//! Lambda entry point of the API: the router behind API Gateway (HTTP API), a two-connection
//! Postgres pool built once per container (`DATABASE_URL`, or the RDS secret in AWS).

use api_function::{ApiState, router_with_cors};
use highlights_adapters::postgres::database_from_env;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let sdk = highlights_adapters::aws::from_env().await;
    let pool = database_from_env(&aws_sdk_secretsmanager::Client::new(&sdk)).await?.pool(2)?;
    // The static site's origin (the CloudFront URL), for CORS.
    let site_origin = std::env::var("SITE_ORIGIN").ok();
    lambda_http::run(router_with_cors(ApiState::new(pool), site_origin.as_deref())).await
}
