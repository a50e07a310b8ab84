//! Lambda entry point of the detector: clients are built once per container, then every
//! invocation runs [`DetectorHandler::handle`] and prints one EMF metrics line.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use aws_lambda_events::event::streams::KinesisEventResponse;
use detector_function::DetectorHandler;
use highlights_adapters::channel_settings::{DynamoChannelSettings, SETTINGS_REFRESH};
use highlights_adapters::detector_state::DynamoStateStore;
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::resources::Resources;
use highlights_adapters::settings::DetectorSettings;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let config = DetectorSettings::from_env()?.config()?;
    let resources = Resources::from_env();
    let sdk = highlights_adapters::aws::from_env().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let handler = DetectorHandler::new(
        config,
        DynamoStateStore::new(dynamodb.clone(), resources.detector_state_table.name),
        DynamoHighlights::new(dynamodb.clone(), resources.highlights_table.name),
    )
    .with_channel_settings(
        DynamoChannelSettings::new(dynamodb, resources.channel_settings_table.name),
        SETTINGS_REFRESH,
    );
    let handler = &handler;
    // The mapping's tumbling window (infra sets both): the state travels with the window and is
    // written once per window (detector_function::window).
    if std::env::var("DETECTOR_STATE_IN_WINDOW").is_ok_and(|v| v == "1") {
        return lambda_runtime::run(service_fn(
            move |event: LambdaEvent<KinesisTimeWindowEvent>| async move {
                let (response, report) = handler.handle_window(&event.payload).await;
                report.metrics().emit();
                response.map_err(|error| Error::from(format!("the invocation is retried whole: {error}")))
            },
        ))
        .await;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KinesisEvent>| async move {
        let (response, report) = handler.handle(&event.payload).await;
        report.metrics().emit();
        Ok::<KinesisEventResponse, Error>(response)
    }))
    .await
}
