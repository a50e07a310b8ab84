//! Lambda entry point of the lifecycle function: a Postgres pool (two connections) and the
//! DynamoDB client are built once per container.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use highlights_adapters::detector_state::DynamoStateStore;
use highlights_adapters::postgres::Database;
use highlights_adapters::resources::Resources;
use highlights_adapters::streamers::PgStreamers;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use lifecycle_function::LifecycleHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let pool = Database::from_url(&database_url)?.pool(2)?;
    let resources = Resources::from_env();
    let sdk = highlights_adapters::aws::from_env().await;
    let handler = LifecycleHandler::new(
        PgStreamers::new(pool),
        DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), resources.detector_state_table.name),
    );
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| async move {
        let (response, report) = handler.handle(&event.payload).await;
        report.metrics().emit();
        Ok::<KinesisEventResponse, Error>(response)
    }))
    .await
}
