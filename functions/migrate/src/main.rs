//! The deploy-time migration step: a CloudFormation custom resource (through the CDK Provider
//! framework, which answers CloudFormation) that applies the schema migrations embedded in this
//! binary on Create and Update, and leaves the database alone on Delete. It is the only
//! component that reads the master secret: after migrating, it sets up each component's login
//! user (`config/resources.json` `database_users`) from that component's own secret.
//!
//! Applying is idempotent (refinery records what ran), so a redeploy or a retry is harmless.

use highlights_adapters::postgres::{database_from_env, login_users_from_secrets};
use highlights_adapters::resources::Resources;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

const RESOURCE_ID: &str = "twitch-highlights-schema";

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let sdk = highlights_adapters::aws::from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let secrets = &secrets;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let request = event.payload["RequestType"].as_str().unwrap_or("Create").to_owned();
        if request == "Delete" {
            return Ok::<Value, Error>(json!({"PhysicalResourceId": RESOURCE_ID}));
        }
        let database = database_from_env(secrets).await?;
        let applied = database.migrate().await?;
        tracing::info!(target = database.target(), request, applied = applied.join(","), "schema migrated");
        let users = login_users_from_secrets(secrets, &Resources::from_env()).await?;
        database.ensure_login_users(&users).await?;
        let names: Vec<&str> = users.iter().map(|u| u.user.as_str()).collect();
        tracing::info!(users = names.join(","), "login users set up");
        Ok(json!({"PhysicalResourceId": RESOURCE_ID, "Data": {"Applied": applied.len()}}))
    }))
    .await
}
