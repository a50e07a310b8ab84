//! `highlights local run`: the local event-source runner wired to the real handlers (detector,
//! lifecycle, and the clipper when Twitch credentials are configured), against the endpoints in
//! the environment (`. .local/stack/env`).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use announcer_function::AnnouncerHandler;
use anyhow::Context as _;
use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use aws_lambda_events::event::streams::KinesisEventResponse;
use clipper_function::ClipperHandler;
use detector_function::DetectorHandler;
use highlights_adapters::announce::Webhook;
use highlights_adapters::channel_settings::{DynamoChannelSettings, SETTINGS_REFRESH};
use highlights_adapters::clips::PgClips;
use highlights_adapters::detector_state::DynamoStateStore;
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::postgres::Database;
use highlights_adapters::resources::Resources;
pub use highlights_adapters::settings::TwitchUrls;
use highlights_adapters::settings::{AnnounceSettings, DetectorSettings};
use highlights_adapters::streamers::PgStreamers;
use highlights_adapters::tokens::SecretsTokenSource;
use highlights_adapters::twitch::{HelixClips, TwitchOAuth};
use highlights_core::clip_policy::ClipPolicy;
use highlights_core::title::TitleRules;
use highlights_runner::{
    Checkpoints, DynamoConsumer, KinesisConsumer, Mapping, RunnerOptions, Source, TableChange, WindowAnswer,
};
use lifecycle_function::LifecycleHandler;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Records per invocation (Lambda's BatchSize).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Pause between polls of an idle shard, milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Failed attempts before a record goes to the dead-letter queue (default: no limit but
    /// --max-retry-seconds, as the deployed event-source mappings).
    #[arg(long)]
    max_retries: Option<u32>,
    /// How long a record may keep failing (retried with back-off up to 5 s) before it goes to
    /// the dead-letter queue: the deployed clipper mapping's maximum record age.
    #[arg(long, default_value_t = 600)]
    max_retry_seconds: u64,
    /// Where shard checkpoints are kept.
    #[arg(long, default_value = ".local/runner/checkpoints.json")]
    checkpoints: PathBuf,
    /// Carry the detector's state in a tumbling window of this many seconds (1–900) on its
    /// mapping, as `-c detectorStateWindowSeconds` deploys it: state written once per window.
    #[arg(long, env = "DETECTOR_STATE_WINDOW_SECONDS", value_parser = clap::value_parser!(u64).range(1..=900))]
    detector_state_window: Option<u64>,
    /// Print each invocation's EMF metrics line on stdout, as Lambda would.
    #[arg(long)]
    metrics: bool,
    /// PostgreSQL connection string for both the lifecycle handler and the clipper; default:
    /// each its own user's (DATABASE_URL_LIFECYCLE, DATABASE_URL_CLIPPER in `.local/stack/env`),
    /// else DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    #[command(flatten)]
    twitch: TwitchUrls,
    #[command(flatten)]
    detector: DetectorSettings,
    /// Confirmed clips are announced here by the announcer's handler, fed by the highlights
    /// table's modifications as in AWS (where the `AnnounceWebhook` secret holds the webhook).
    #[command(flatten)]
    announce: AnnounceSettings,
    /// Terms the clipper's and announcer's titles avoid, comma-separated, on top of the
    /// built-in list (the functions' TITLE_BLOCKLIST).
    #[arg(long, env = "TITLE_BLOCKLIST", default_value = "")]
    title_blocklist: String,
}

fn failed_sequences(response: KinesisEventResponse) -> Vec<String> {
    response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
}

struct DetectorConsumer {
    handler: DetectorHandler<DynamoStateStore, DynamoHighlights, DynamoChannelSettings>,
    metrics: bool,
}

impl KinesisConsumer for DetectorConsumer {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, report) = self.handler.handle(&event).await;
            if self.metrics {
                report.metrics().emit();
            }
            failed_sequences(response)
        })
    }

    fn invoke_window(
        &self,
        event: KinesisTimeWindowEvent,
    ) -> Pin<Box<dyn Future<Output = WindowAnswer> + Send + '_>> {
        Box::pin(async move {
            let (response, report) = self.handler.handle_window(&event).await;
            if self.metrics {
                report.metrics().emit();
            }
            response.map(|r| r.state).map_err(|error| error.to_string())
        })
    }
}

struct LifecycleConsumer {
    handler: LifecycleHandler<PgStreamers, DynamoStateStore>,
    metrics: bool,
}

impl KinesisConsumer for LifecycleConsumer {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, report) = self.handler.handle(&event).await;
            if self.metrics {
                report.metrics().emit();
            }
            failed_sequences(response)
        })
    }
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: start the local stack (localstack/up) and `. .local/stack/env`"
    );
    let config = args.detector.config().context("invalid detector settings")?;
    let webhook = args.announce.webhook()?;
    let resources = Resources::from_env();
    let checkpoints = Arc::new(Checkpoints::open(&args.checkpoints)?);
    let lifecycle_pool =
        Database::from_url(&crate::stack::component_database_url(args.database_url.clone(), "lifecycle")?)?
            .pool(2)?;
    let clipper_pool =
        Database::from_url(&crate::stack::component_database_url(args.database_url.clone(), "clipper")?)?
            .pool(2)?;
    crate::runtime()?.block_on(async move {
        let sdk = highlights_adapters::aws::from_env().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let states = || DynamoStateStore::new(dynamodb.clone(), resources.detector_state_table.name.clone());
        let mut mappings = vec![
            Mapping {
                source: Source::Kinesis {
                    stream: resources.chat_stream.name.clone(),
                    consumer: Arc::new(DetectorConsumer {
                        handler: DetectorHandler::new(
                            config,
                            states(),
                            DynamoHighlights::new(dynamodb.clone(), resources.highlights_table.name.clone()),
                        )
                        .with_channel_settings(
                            DynamoChannelSettings::new(
                                dynamodb.clone(),
                                resources.channel_settings_table.name.clone(),
                            ),
                            SETTINGS_REFRESH,
                        ),
                        metrics: args.metrics,
                    }),
                    tumbling_window: args.detector_state_window.map(Duration::from_secs),
                },
                dead_letter_queue: resources.detector_dlq.name.clone(),
            },
            Mapping {
                source: Source::Kinesis {
                    stream: resources.lifecycle_stream.name.clone(),
                    consumer: Arc::new(LifecycleConsumer {
                        handler: LifecycleHandler::new(PgStreamers::new(lifecycle_pool), states()),
                        metrics: args.metrics,
                    }),
                    tumbling_window: None,
                },
                dead_letter_queue: resources.lifecycle_dlq.name.clone(),
            },
        ];
        match clipper(&sdk, &resources, clipper_pool, &args).await {
            Ok(consumer) => mappings.push(Mapping {
                source: Source::Dynamo {
                    change: TableChange::Insert,
                    table: resources.highlights_table.name.clone(),
                    consumer: Arc::new(consumer),
                },
                dead_letter_queue: resources.clipper_dlq.name.clone(),
            }),
            Err(why) => eprintln!("local runner: the clipper is off: {why}"),
        }
        let titles = TitleRules::extended(&args.title_blocklist);
        if let Some(webhook) = webhook {
            mappings.push(Mapping {
                source: Source::Dynamo {
                    table: resources.highlights_table.name.clone(),
                    change: TableChange::Modify,
                    consumer: Arc::new(AnnouncerConsumer {
                        handler: AnnouncerHandler::new(Some(webhook), titles),
                    }),
                },
                dead_letter_queue: resources.announcer_dlq.name.clone(),
            });
            eprintln!("local runner: confirmed clips are announced to the webhook");
        }
        let options = RunnerOptions {
            batch_size: args.batch_size.max(1),
            poll_interval: Duration::from_millis(args.poll_ms),
            max_retries: args.max_retries,
            max_retry_time: Duration::from_secs(args.max_retry_seconds),
            region: sdk.region().map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            ..RunnerOptions::default()
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            eprintln!("stopping after the batches in flight");
            let _ = stop.send(true);
        });
        eprintln!(
            "local runner: {} -> detector, {} -> lifecycle, {} (inserts) -> clipper (Ctrl-C to stop)",
            resources.chat_stream.name, resources.lifecycle_stream.name, resources.highlights_table.name
        );
        let stats = highlights_runner::run(&sdk, mappings, checkpoints, options, stopped).await?;
        eprintln!(
            "local runner: {} records in {} invocations ({} failed), {} dead-lettered",
            stats.records.load(Ordering::Relaxed),
            stats.invocations.load(Ordering::Relaxed),
            stats.failed_invocations.load(Ordering::Relaxed),
            stats.dead_lettered.load(Ordering::Relaxed),
        );
        anyhow::Ok(())
    })
}

struct AnnouncerConsumer {
    handler: AnnouncerHandler<Webhook>,
}

impl DynamoConsumer for AnnouncerConsumer {
    fn invoke(&self, event: DynamoEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, report) = self.handler.handle(&event).await;
            if report.announced + report.failed > 0 {
                tracing::info!(announced = report.announced, failed = report.failed, "announcer");
            }
            response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
        })
    }
}

struct ClipperConsumer {
    handler: ClipperHandler<HelixClips, SecretsTokenSource, PgClips, DynamoHighlights>,
    metrics: bool,
}

impl DynamoConsumer for ClipperConsumer {
    fn invoke(&self, event: DynamoEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, report) = self.handler.handle(&event).await;
            if self.metrics {
                for record in report.metrics() {
                    record.emit();
                }
            }
            response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
        })
    }
}

/// The Helix client and the token source, from the secrets named in `resources`.
pub(crate) async fn twitch_clients(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    helix_url: &str,
    oauth_url: &str,
) -> anyhow::Result<(HelixClips, SecretsTokenSource)> {
    let http = highlights_adapters::tls::http_client();
    let tokens = SecretsTokenSource::new(
        aws_sdk_secretsmanager::Client::new(sdk),
        resources.twitch_app_secret.name.clone(),
        resources.twitch_user_token_secret.name.clone(),
        TwitchOAuth::new(http.clone(), oauth_url),
    );
    let app = tokens.app().await.context("no Twitch credentials (run `highlights tokens seed`)")?;
    Ok((HelixClips::new(http, helix_url, app.client_id), tokens))
}

/// The clipper, when the Twitch app credentials secret holds usable credentials.
async fn clipper(
    sdk: &aws_config::SdkConfig,
    resources: &Resources,
    pool: deadpool_postgres::Pool,
    args: &RunArgs,
) -> anyhow::Result<ClipperConsumer> {
    let (api, tokens) =
        twitch_clients(sdk, resources, &args.twitch.helix_url, &args.twitch.oauth2_url).await?;
    Ok(ClipperConsumer {
        handler: ClipperHandler::new(
            api,
            tokens,
            PgClips::new(pool),
            DynamoHighlights::new(
                aws_sdk_dynamodb::Client::new(sdk),
                resources.highlights_table.name.clone(),
            ),
            ClipPolicy::default(),
        )
        .with_title_rules(TitleRules::extended(&args.title_blocklist)),
        metrics: args.metrics,
    })
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
