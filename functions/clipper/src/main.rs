//! Lambda entry point of the clipper: the Secrets Manager token source (cached across warm
//! invocations), the Helix client, a two-connection Postgres pool and the DynamoDB client are
//! built once per container.
//!
//! Two kinds of invocation: the `highlights` table's stream (new highlights to clip), and an
//! EventBridge schedule (`"source": "aws.events"`), which runs the confirm sweep for clips Twitch
//! published late.
//!
//! `TITLE_BLOCKLIST` (comma-separated terms) extends the built-in blocklist of clip titles.

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use clipper_function::ClipperHandler;
use highlights_adapters::clips::PgClips;
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::postgres::database_from_env;
use highlights_adapters::resources::Resources;
use highlights_adapters::tokens::SecretsTokenSource;
use highlights_adapters::twitch::{DEFAULT_HELIX_URL, DEFAULT_OAUTH2_URL, HelixClips, TwitchOAuth};
use highlights_core::clip_policy::ClipPolicy;
use highlights_core::title::TitleRules;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

/// Unconfirmed clips asked about per scheduled run.
const SWEEP_LIMIT: u32 = 100;

#[tokio::main]
async fn main() -> Result<(), Error> {
    highlights_adapters::telemetry::init_json_logs("info");
    let resources = Resources::from_env();
    let sdk = highlights_adapters::aws::from_env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let pool = database_from_env(&secrets).await?.pool(2)?;
    let http = highlights_adapters::tls::http_client();
    let helix_url = std::env::var("TWITCH_HELIX_URL").unwrap_or_else(|_| DEFAULT_HELIX_URL.to_owned());
    let oauth_url = std::env::var("TWITCH_OAUTH2_URL").unwrap_or_else(|_| DEFAULT_OAUTH2_URL.to_owned());
    let tokens = SecretsTokenSource::new(
        secrets,
        resources.twitch_app_secret.name,
        resources.twitch_user_token_secret.name,
        TwitchOAuth::new(http.clone(), oauth_url),
    );
    let app = tokens.app().await?;
    let handler = ClipperHandler::new(
        HelixClips::new(http, helix_url, app.client_id),
        tokens,
        PgClips::new(pool),
        DynamoHighlights::new(aws_sdk_dynamodb::Client::new(&sdk), resources.highlights_table.name),
        ClipPolicy::default(),
    )
    .with_title_rules(TitleRules::extended(&std::env::var("TITLE_BLOCKLIST").unwrap_or_default()));
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        if clipper_function::is_scheduled_event(&event.payload) {
            let report = handler.confirm_sweep(SWEEP_LIMIT).await?;
            tracing::info!(checked = report.checked, confirmed = report.confirmed, "confirm sweep");
            return Ok::<Value, Error>(json!({"checked": report.checked, "confirmed": report.confirmed}));
        }
        let records: DynamoEvent = serde_json::from_value(event.payload)?;
        let (response, report) = handler.handle(&records).await;
        for record in report.metrics() {
            record.emit();
        }
        Ok(serde_json::to_value::<DynamoDbEventResponse>(response)?)
    }))
    .await
}
