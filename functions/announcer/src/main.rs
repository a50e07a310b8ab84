//! Lambda entry point of the announcer: the webhook is read once per container from the secret
//! `ANNOUNCE_SECRET_ARN` names, a JSON object `{"url": "...", "signing_key": "...", "format":
//! "discord" | "json"}` (`signing_key` and `format` optional; the format follows the URL). A
//! secret without a value means no announcements: every record is acknowledged.
//!
//! `TITLE_BLOCKLIST` (comma-separated terms) extends the built-in title blocklist, as for the
//! clipper, so the announced title is the clip's.

use announcer_function::AnnouncerHandler;
use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use highlights_adapters::announce::{AnnounceFormat, Webhook};
use highlights_adapters::twitch::Secret;
use highlights_core::title::TitleRules;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Deserialize;

#[derive(Deserialize)]
struct WebhookSecret {
    url: String,
    #[serde(default)]
    signing_key: Option<String>,
    #[serde(default)]
    format: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let sdk = highlights_adapters::aws::from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let webhook = match std::env::var("ANNOUNCE_SECRET_ARN").ok().filter(|arn| !arn.is_empty()) {
        None => None,
        Some(arn) => match secrets.get_secret_value().secret_id(&arn).send().await {
            Ok(value) => match value.secret_string().filter(|s| !s.trim().is_empty()) {
                None => None,
                // Not a webhook configuration (e.g. the random value a new secret starts with):
                // announcements are off. Its text never reaches a log: it may hold the URL's token.
                Some(text) => match serde_json::from_str::<WebhookSecret>(text) {
                    Err(_) => {
                        tracing::warn!(
                            "the announce webhook secret is not {{\"url\": ...}}: no announcements"
                        );
                        None
                    }
                    Ok(parsed) => {
                        let format = match parsed.format.as_deref() {
                            Some("discord") => AnnounceFormat::Discord,
                            Some("json") => AnnounceFormat::Json,
                            None => AnnounceFormat::for_url(&parsed.url),
                            Some(_) => {
                                return Err(
                                    "the announce webhook secret's format must be discord or json".into()
                                );
                            }
                        };
                        let key = parsed.signing_key.filter(|k| !k.is_empty()).map(Secret::new);
                        Some(Webhook::new(
                            highlights_adapters::tls::http_client(),
                            Secret::new(parsed.url),
                            format,
                            key,
                        ))
                    }
                },
            },
            Err(error) => {
                tracing::warn!(error = %aws_sdk_secretsmanager::error::DisplayErrorContext(&error), "no announce webhook configured");
                None
            }
        },
    };
    tracing::info!(configured = webhook.is_some(), "announcer starting");
    let titles = TitleRules::extended(&std::env::var("TITLE_BLOCKLIST").unwrap_or_default());
    let handler = AnnouncerHandler::new(webhook, titles);
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let records: DynamoEvent = serde_json::from_value(event.payload)?;
        let (response, report) = handler.handle(&records).await;
        tracing::info!(
            announced = report.announced,
            failed = report.failed,
            skipped = report.skipped,
            "announced"
        );
        Ok::<_, Error>(serde_json::to_value::<DynamoDbEventResponse>(response)?)
    }))
    .await
}
