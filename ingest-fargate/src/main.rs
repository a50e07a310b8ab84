//! `ingest-fargate`: settings from flags and the environment, clients built once, signals.
//! SIGTERM or SIGINT stops chat intake, flushes what is buffered within the drain deadline and
//! exits 0 (1 when chat had to be given up).
//!
//! With Twitch app credentials (the `twitch-app` secret) it polls Get Streams and joins only the
//! live channels among the monitored ones; without them it joins the configured channels as they
//! are and writes no lifecycle events.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use highlights_adapters::postgres::{Database, database_from_env};
use highlights_adapters::resources::Resources;
use highlights_adapters::settings::TwitchUrls;
use highlights_adapters::streamers::PgStreamers;
use highlights_adapters::tokens::{SecretsTokenSource, read_secret_json};
use highlights_adapters::twitch::{AppCredentials, TwitchOAuth};
use highlights_adapters::twitch_streams::HelixStreams;
use ingest_fargate::irc_client::{
    CONFIRM_JOINS_WITHIN, ChatClient, IrcAddress, IrcLogin, JoinSettings, TWITCH_IRC,
};
use ingest_fargate::lifecycle::{NoChannelSource, Poller, PollerSettings};
use ingest_fargate::metrics::Counters;
use ingest_fargate::producer::{KinesisSink, ProducerSettings};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(name = "ingest-fargate", version, about = "Twitch chat into Kinesis chat-messages")]
struct Settings {
    /// Twitch IRC server: tls://host:port, or tcp://host:port for a test server.
    #[arg(long, env = "TWITCH_IRC_ADDR", default_value = TWITCH_IRC)]
    irc_addr: IrcAddress,
    /// Channels to monitor (logins, comma-separated), besides `streamers.monitored` in Postgres.
    #[arg(long, env = "INGEST_CHANNELS", value_delimiter = ',')]
    channels: Vec<String>,
    /// Also monitor the N most-watched live streams (needs Twitch app credentials).
    #[arg(long, env = "INGEST_TOP_STREAMS", default_value_t = 0)]
    top_streams: usize,
    /// Get Streams polling interval (jittered by ±10 %).
    #[arg(long, env = "INGEST_POLL_SECONDS", default_value_t = 30)]
    poll_seconds: u64,
    /// PostgreSQL with the `streamers` table (monitored channels); optional.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(flatten)]
    twitch: TwitchUrls,
    #[command(flatten)]
    joins: JoinSettings,
    /// Log in to chat as this user, with the user token from the `twitch-user-token` secret
    /// (refreshed and written back when Twitch refuses it); anonymous read-only login when unset.
    #[arg(long, env = "INGEST_CHAT_LOGIN")]
    chat_login: Option<String>,
    /// How often batches are sealed and sent.
    #[arg(long, env = "INGEST_FLUSH_MS", default_value_t = 250)]
    flush_ms: u64,
    /// Memory cap of buffered chat; past it the oldest chat is dropped (and counted).
    #[arg(long, env = "INGEST_MAX_BUFFER_MB", default_value_t = 256)]
    max_buffer_mb: usize,
    /// After SIGTERM: how long to keep sending what is buffered (ECS stopTimeout must be longer).
    #[arg(long, env = "INGEST_DRAIN_SECONDS", default_value_t = 20)]
    drain_seconds: u64,
    /// /healthz and /readyz.
    #[arg(long, env = "INGEST_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
    /// EMF metrics interval.
    #[arg(long, env = "INGEST_METRICS_SECONDS", default_value_t = 60)]
    metrics_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The container health check (the image has no shell or curl): asks /healthz of the running
    // ingester and exits 0 when it answers 200.
    if std::env::args().nth(1).as_deref() == Some("--health-check") {
        let address = std::env::var("INGEST_HEALTH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
        let port = address.rsplit_once(':').map_or("8080", |(_, port)| port);
        let healthy = ingest_fargate::health::check(&format!("127.0.0.1:{port}")).await;
        std::process::exit(if healthy { 0 } else { 1 });
    }
    highlights_adapters::telemetry::init_json_logs("info");
    let settings = Settings::parse();
    let counters = Arc::new(Counters::default());
    let health = ingest_fargate::health::serve(settings.health_addr, counters.clone())
        .await
        .with_context(|| format!("cannot listen on {}", settings.health_addr))?;
    // Port 0 picks a free one (tests): this line says which.
    tracing::info!(address = %health, "health endpoint listening");

    let sdk = highlights_adapters::aws::from_env().await;
    let resources = Resources::from_env();
    let stream = resources.chat_stream.name.clone();
    let client = aws_sdk_kinesis::Client::new(&sdk);
    match client.describe_stream_summary().stream_name(&stream).send().await {
        Ok(_) => counters.kinesis_reachable.store(true, std::sync::atomic::Ordering::Relaxed),
        Err(error) => tracing::warn!(
            error = %aws_sdk_kinesis::error::DisplayErrorContext(&error),
            stream,
            "Kinesis is not reachable yet"
        ),
    }
    let configured: BTreeSet<String> = settings
        .channels
        .iter()
        .map(|c| c.trim().trim_start_matches('#').to_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    // One HTTP client (connection pool, TLS setup) for all Twitch calls of the process.
    let http = highlights_adapters::tls::http_client();
    let app: Option<AppCredentials> = match read_secret_json(&secrets, &resources.twitch_app_secret.name)
        .await
    {
        Ok(app) => Some(app),
        Err(error) => {
            tracing::warn!(%error, "no Twitch app credentials: joining the configured channels without live polling");
            None
        }
    };
    tracing::info!(%health, irc = %settings.irc_addr.host, channels = configured.len(), stream, polling = app.is_some(), "ingester starting");
    let (channels_tx, channels_rx) =
        watch::channel(if app.is_some() { BTreeSet::new() } else { configured.clone() });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping: flushing buffered chat");
        let _ = shutdown_tx.send(true);
    });
    let metrics = ingest_fargate::MetricsReporter::new(counters.clone());
    metrics.spawn(Duration::from_secs(settings.metrics_seconds.max(1)));

    let chat = ChatClient {
        address: settings.irc_addr,
        login: match settings.chat_login {
            Some(login) => IrcLogin::User {
                login,
                tokens: Arc::new(SecretsTokenSource::new(
                    secrets.clone(),
                    resources.twitch_app_secret.name.clone(),
                    resources.twitch_user_token_secret.name.clone(),
                    TwitchOAuth::new(http.clone(), &settings.twitch.oauth2_url),
                )),
            },
            None => IrcLogin::Anonymous,
        },
        join_limit: settings.joins.limit(),
        confirm_joins_within: CONFIRM_JOINS_WITHIN,
        counters: counters.clone(),
    };
    let producer = ProducerSettings {
        flush_every: Duration::from_millis(settings.flush_ms.max(10)),
        max_buffer_bytes: settings.max_buffer_mb.max(1) * 1024 * 1024,
        drain_deadline: Duration::from_secs(settings.drain_seconds),
    };
    let _fixed_channels = if let Some(app) = app {
        let api = HelixStreams::new(http, &settings.twitch.helix_url, &settings.twitch.oauth2_url, app);
        let lifecycle_sink =
            Arc::new(KinesisSink { client: client.clone(), stream: resources.lifecycle_stream.name.clone() });
        let poller_settings = PollerSettings {
            configured,
            top_n: settings.top_streams,
            every: Duration::from_secs(settings.poll_seconds.max(1)),
        };
        let (counters, shutdown) = (counters.clone(), shutdown_rx.clone());
        let database = match settings.database_url.as_deref() {
            Some(url) => Some(Database::from_url(url)?),
            // In AWS: the RDS secret (and the RDS Proxy endpoint in DATABASE_HOST).
            None if std::env::var_os("DATABASE_SECRET_ARN").is_some() => {
                Some(database_from_env(&secrets).await?)
            }
            None => None,
        };
        match database {
            Some(database) => {
                let poller = Poller {
                    api,
                    channels: PgStreamers::new(database.pool(1)?),
                    sink: lifecycle_sink,
                    settings: poller_settings,
                    counters,
                };
                tokio::spawn(async move { poller.run(channels_tx, shutdown).await });
            }
            None => {
                let poller = Poller {
                    api,
                    channels: NoChannelSource,
                    sink: lifecycle_sink,
                    settings: poller_settings,
                    counters,
                };
                tokio::spawn(async move { poller.run(channels_tx, shutdown).await });
            }
        }
        None
    } else {
        // The wanted set never changes: its sender lives as long as the run.
        Some(channels_tx)
    };
    let sink = Arc::new(KinesisSink { client, stream });
    let report = ingest_fargate::run(chat, channels_rx, sink, producer, shutdown_rx).await;
    // The last interval (the drain included) would otherwise never reach CloudWatch.
    metrics.emit();
    let totals = counters.totals();
    tracing::info!(
        received = totals.messages_received,
        sent = totals.messages_sent,
        dropped = totals.dropped,
        unsent = report.unsent_messages,
        "ingester stopped"
    );
    if report.unsent_messages > 0 {
        anyhow::bail!("{} chat messages could not be sent before the drain deadline", report.unsent_messages);
    }
    Ok(())
}

async fn wait_for_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
