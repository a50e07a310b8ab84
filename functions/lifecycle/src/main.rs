//! Lambda entry point of the lifecycle function: a Postgres pool (two connections) and the
//! DynamoDB client are built once per container.

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use highlights_adapters::detector_state::DynamoStateStore;
use highlights_adapters::postgres::database_from_env;
use highlights_adapters::resources::Resources;
use highlights_adapters::streamers::PgStreamers;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use lifecycle_function::LifecycleHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let resources = Resources::from_env();
    let sdk = highlights_adapters::aws::from_env().await;
    let pool = database_from_env(&aws_sdk_secretsmanager::Client::new(&sdk)).await?.pool(2)?;
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
