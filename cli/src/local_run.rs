//! `highlights local run`: the local event-source runner wired to the real handlers, against
//! the endpoints in the environment (`. .local/stack/env`).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use detector_function::DetectorHandler;
use highlights_adapters::detector_state::DynamoStateStore;
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::postgres::Database;
use highlights_adapters::resources::Resources;
use highlights_adapters::settings::DetectorSettings;
use highlights_adapters::streamers::PgStreamers;
use highlights_runner::{Checkpoints, KinesisConsumer, Mapping, RunnerOptions};
use lifecycle_function::LifecycleHandler;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Records per invocation (Lambda's BatchSize).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Pause between polls of an idle shard, milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Failed attempts before records go to the dead-letter queue.
    #[arg(long, default_value_t = 3)]
    max_retries: u32,
    /// Where shard checkpoints are kept.
    #[arg(long, default_value = ".local/runner/checkpoints.json")]
    checkpoints: PathBuf,
    /// Print each invocation's EMF metrics line on stdout, as Lambda would.
    #[arg(long)]
    metrics: bool,
    /// PostgreSQL connection string (for the lifecycle handler).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    detector: DetectorSettings,
}

fn failed_sequences(response: KinesisEventResponse) -> Vec<String> {
    response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
}

struct DetectorConsumer {
    handler: DetectorHandler<DynamoStateStore, DynamoHighlights>,
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
    let resources = Resources::from_env();
    let checkpoints = Arc::new(Checkpoints::open(&args.checkpoints)?);
    let pool = Database::from_url(&args.database_url)?.pool(4)?;
    crate::stack::runtime()?.block_on(async move {
        let sdk = highlights_adapters::aws::from_env().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let states = || DynamoStateStore::new(dynamodb.clone(), resources.detector_state_table.name.clone());
        let mappings = vec![
            Mapping {
                stream: resources.chat_stream.name.clone(),
                dead_letter_queue: resources.detector_dlq.name.clone(),
                consumer: Arc::new(DetectorConsumer {
                    handler: DetectorHandler::new(
                        config,
                        states(),
                        DynamoHighlights::new(dynamodb.clone(), resources.highlights_table.name.clone()),
                    ),
                    metrics: args.metrics,
                }),
            },
            Mapping {
                stream: resources.lifecycle_stream.name.clone(),
                dead_letter_queue: resources.lifecycle_dlq.name.clone(),
                consumer: Arc::new(LifecycleConsumer {
                    handler: LifecycleHandler::new(PgStreamers::new(pool), states()),
                    metrics: args.metrics,
                }),
            },
        ];
        let options = RunnerOptions {
            batch_size: args.batch_size.max(1),
            poll_interval: Duration::from_millis(args.poll_ms),
            max_retries: args.max_retries,
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
            "local runner: {} -> detector, {} -> lifecycle (Ctrl-C to stop)",
            resources.chat_stream.name, resources.lifecycle_stream.name
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

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
