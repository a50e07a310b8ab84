//! `highlights dev`: the whole product in one process, with nothing to install or start. The
//! production pieces, wired in-process: a chat source, the ingester's wire format into an
//! embedded stream partitioned by broadcaster, the detector Lambda's handler, its outbox, the
//! moments consumer, and the API's router with the site, all on one SQLite file
//! (`highlights-embedded`) under `--data-dir`.
//!
//! Exactly once across restarts, also after `kill -9`: a source's position commits with the
//! records it appends, the detector skips what its state says it applied (as on Kinesis
//! redelivery), and moments commit with their consumer's position.
//!
//! This module only wires and paces; the work is in the handlers and the store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use api_function::{ApiState, site_router};
use clipper_function::ClipperHandler;
use detector_function::DetectorHandler;
use highlights_adapters::announce::{AnnounceFormat, Webhook};
use highlights_adapters::channel_settings::SETTINGS_REFRESH;
use highlights_adapters::highlights::detection_item;
use highlights_adapters::kinesis_out::OutRecord;
use highlights_adapters::lambda_events::{
    DynamoRecordIn, KinesisRecordIn, dynamodb_event, item_json, kinesis_event,
};
use highlights_adapters::resources::keys;
use highlights_adapters::settings::{AnnounceSettings, DetectorSettings, TwitchUrls};
use highlights_adapters::tokens::{FileVault, StoredTokenSource, TokenVault as _};
use highlights_adapters::twitch::{AppCredentials, HelixClips, Secret, TwitchOAuth};
use highlights_core::clip_policy::ClipPolicy;
use highlights_core::title::TitleRules;
use highlights_core::{BroadcasterId, ChatBatch, Detection, wire};
use highlights_embedded::Embedded;
use ingest_fargate::producer::{EntryResults, RecordSink, SinkError};
use tokio::sync::watch;

use crate::input::Format;

/// Records handed to the detector per invocation: Lambda's largest Kinesis batch. The state is
/// saved once per broadcaster per invocation, so a replay at full speed needs big batches; live
/// chat makes small ones by itself.
const DETECTOR_BATCH: usize = 10_000;
/// Records appended per transaction at `--speed max`.
const APPEND_CHUNK: usize = 2_000;
/// How many records a source may append beyond what the detector has done: two full batches.
const MAX_DETECTOR_LAG: i64 = 2 * DETECTOR_BATCH as i64;
const IDLE_POLL: Duration = Duration::from_millis(20);
/// How long the detector waits for a full batch: the cloud mapping's batching window.
const BATCHING_WINDOW: Duration = Duration::from_secs(1);
/// The demo's channels, in synth's broadcaster-id order (`first_broadcaster_id` 100000).
const DEMO_CHANNELS: [(&str, &str); 3] =
    [("demo_pixel", "Demo Pixel"), ("demo_speedrun", "Demo Speedrun"), ("demo_cozy", "Demo Cozy")];
const STREAM_ARN: &str = "arn:aws:kinesis:local:000000000000:stream/dev-chat";
const HIGHLIGHTS_STREAM_ARN: &str = "arn:aws:dynamodb:local:000000000000:table/dev-highlights/stream/dev";
/// The consumer that turns highlights into clips or moments (one name whichever it is, so that
/// adding credentials to a data directory neither redoes nor skips highlights).
const MOMENTS: &str = "moments";
/// Highlights handed to the clipper per invocation (the cloud mapping's batch size).
const CLIP_BATCH: usize = 10;
/// How often clips Twitch had not published yet are asked about again (the cloud's schedule).
const CONFIRM_SWEEP_EVERY: Duration = Duration::from_secs(120);
/// How often the announcer looks for newly confirmed clips.
const ANNOUNCE_POLL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Replay recorded chat (every `backtest` format) instead of the built-in demo.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with = "channels")]
    replay: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Replay speed: N times real time, or `max`.
    #[arg(long, default_value = "max")]
    speed: Speed,
    /// Watch live Twitch chat of these channels (anonymously; TWITCH_IRC_ADDR for another server).
    #[arg(long = "channel", value_name = "LOGIN")]
    channels: Vec<String>,
    #[arg(long, env = "TWITCH_IRC_ADDR", default_value = "irc://irc.chat.twitch.tv:6667", hide = true)]
    irc_addr: String,
    #[command(flatten)]
    joins: ingest_fargate::irc_client::JoinSettings,
    /// Address of the site and API (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the embedded database lives; a restart resumes from it.
    #[arg(long, default_value = ".local/dev", value_name = "DIR")]
    data_dir: PathBuf,
    /// The static site to serve next to the API.
    #[arg(long, default_value = "web", value_name = "DIR")]
    web_dir: PathBuf,
    #[command(flatten)]
    detector: DetectorSettings,
    /// Live channels get real Twitch clips with this token file (written by `highlights tokens
    /// seed --out FILE`) and the app's TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET; without it,
    /// each highlight is stored as a moment.
    #[arg(long, env = "TWITCH_TOKEN_FILE", value_name = "FILE")]
    twitch_tokens: Option<PathBuf>,
    /// The Twitch application's client id (with --twitch-tokens).
    #[arg(long, env = "TWITCH_CLIENT_ID")]
    client_id: Option<String>,
    /// The application's client secret (prefer the environment variable to the command line).
    #[arg(long, env = "TWITCH_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    #[command(flatten)]
    twitch: TwitchUrls,
    /// Terms that must never appear in a clip's or moment's title or on its card, one per line or
    /// separated by commas, on top of the built-in list of slurs.
    #[arg(long, value_name = "FILE")]
    title_blocklist: Option<PathBuf>,
    #[command(flatten)]
    announce: AnnounceSettings,
    /// Exit once a replay is fully detected and stored (scripts, tests); otherwise keep serving.
    #[arg(long, requires = "replay")]
    exit_when_done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Speed {
    Max,
    Times(f64),
}

impl std::str::FromStr for Speed {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        if text == "max" {
            return Ok(Self::Max);
        }
        match text.parse::<f64>() {
            Ok(times) if times.is_finite() && times > 0.0 => Ok(Self::Times(times)),
            _ => Err(format!("{text:?} is neither `max` nor a positive number")),
        }
    }
}

/// What the pipeline has done, for the progress line and the summary.
#[derive(Default)]
struct Progress {
    messages_in: AtomicU64,
    records_detected: AtomicU64,
    detections: AtomicU64,
    moments: AtomicU64,
    clips: AtomicU64,
    announced: AtomicU64,
    source_done: AtomicBool,
    /// Why the source stopped, when it failed: ends the run with that error.
    source_error: std::sync::Mutex<Option<String>>,
}

pub fn run(args: DevArgs) -> anyhow::Result<()> {
    if !args.web_dir.join("index.html").is_file() {
        bail!(
            "{} has no index.html: pass --web-dir pointing at the repository's web/ folder",
            args.web_dir.display()
        );
    }
    let config = args.detector.config().context("invalid detector settings")?;
    for file in &args.replay {
        std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    }
    let vault = token_vault(&args)?;
    let titles = title_rules(args.title_blocklist.as_deref())?;
    let webhook = args.announce.webhook()?;
    let store = Arc::new(Embedded::open(&args.data_dir)?);
    crate::runtime()?.block_on(async move {
        if let Some(vault) = &vault {
            // Read once now, so that a bad file stops the start, not the first clip.
            vault.token().await.context("the Twitch token file cannot be used")?;
        }
        let progress = Arc::new(Progress::default());
        let (stop_tx, stop) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        eprintln!("serving http://{address}/ (data in {})", store.path().display());
        if let Some(webhook) = &webhook {
            let signed = if webhook.is_signed() { ", signed" } else { "" };
            eprintln!("dev: confirmed clips are announced to the webhook ({:?}{signed})", webhook.format());
            if webhook.format() == AnnounceFormat::Json && !webhook.is_signed() {
                eprintln!("dev: ANNOUNCE_SIGNING_KEY is not set: the webhook's JSON bodies go unsigned");
            }
        }
        if let Some(path) = &args.title_blocklist {
            let added = titles.blocked_terms() - TitleRules::default().blocked_terms();
            eprintln!(
                "dev: titles avoid {} blocked terms ({added} from {})",
                titles.blocked_terms(),
                path.display()
            );
        }
        let server = {
            let app = site_router(ApiState::from_reader(store.clone()), &args.web_dir);
            let mut stop = stop.clone();
            tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await
            })
        };
        let handler = DetectorHandler::new(config, store.clone(), store.clone())
            .with_channel_settings(store.clone(), SETTINGS_REFRESH);
        let detector = tokio::spawn(detect(store.clone(), handler, progress.clone(), stop.clone()));
        let moments = match vault {
            Some(vault) => {
                let http = highlights_adapters::tls::http_client();
                let app = vault.app().await?;
                eprintln!("dev: live highlights become Twitch clips (tokens in {})", vault.path().display());
                let clipper = ClipperHandler::new(
                    HelixClips::new(http.clone(), &args.twitch.helix_url, app.client_id),
                    StoredTokenSource::with_vault(vault, TwitchOAuth::new(http, &args.twitch.oauth2_url)),
                    store.clone(),
                    store.clone(),
                    ClipPolicy::default(),
                )
                .with_title_rules(titles);
                tokio::spawn(clip_highlights(store.clone(), clipper, progress.clone(), stop.clone()))
            }
            None => tokio::spawn(store_moments(store.clone(), titles, progress.clone(), stop.clone())),
        };
        let source = {
            let (store, progress, stop) = (store.clone(), progress.clone(), stop.clone());
            let lateness = args.detector.lateness_ms;
            let join_limit = args.joins.limit();
            let (replay, format, speed, channels, irc, data_dir) = (
                args.replay.clone(),
                args.format,
                args.speed,
                args.channels.clone(),
                args.irc_addr.clone(),
                args.data_dir.clone(),
            );
            tokio::spawn(async move {
                let result = if !channels.is_empty() {
                    live(&store, channels, &irc, join_limit, &progress, stop).await
                } else if !replay.is_empty() {
                    replay_files(&store, &replay, format, lateness, speed, &progress, stop).await
                } else {
                    demo(&store, &data_dir, lateness, &progress, stop).await
                };
                if let Err(error) = &result {
                    *progress.source_error.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(format!("{error:#}"));
                }
                progress.source_done.store(true, Ordering::SeqCst);
                result
            })
        };
        let announcer = tokio::spawn(announce_clips(store.clone(), webhook, progress.clone(), stop.clone()));
        let outcome =
            supervise(&store, &progress, args.exit_when_done, &source, &[&detector, &moments, &announcer])
                .await;
        let _ = stop_tx.send(true);
        for task in [detector, moments, announcer] {
            task.await.context("a pipeline task panicked")??;
        }
        server.await.context("the server task panicked")?.context("the server failed")?;
        if source.is_finished() {
            source.await.context("the source task panicked")??;
        } else {
            source.abort();
        }
        eprintln!(
            "dev: {} messages, {} detections, {} clips and {} moments stored",
            progress.messages_in.load(Ordering::Relaxed),
            progress.detections.load(Ordering::Relaxed),
            progress.clips.load(Ordering::Relaxed),
            progress.moments.load(Ordering::Relaxed)
        );
        let announced = progress.announced.load(Ordering::Relaxed);
        if announced > 0 {
            eprintln!("dev: {announced} clips announced to the webhook");
        }
        outcome
    })
}

/// Prints progress every few seconds until Ctrl-C, or until a replay is done and caught up.
async fn supervise(
    store: &Embedded,
    progress: &Progress,
    exit_when_done: bool,
    source: &tokio::task::JoinHandle<anyhow::Result<()>>,
    pipeline: &[&tokio::task::JoinHandle<anyhow::Result<()>>],
) -> anyhow::Result<()> {
    let mut last_line = String::new();
    let mut last_print = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("dev: stopping");
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        if source.is_finished() && !progress.source_done.load(Ordering::SeqCst) {
            return Ok(()); // it panicked; the caller reports it
        }
        if let Some(error) = progress.source_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            bail!("the chat source failed: {error}");
        }
        if pipeline.iter().any(|task| task.is_finished()) {
            return Ok(()); // it failed (they run until stopped); the caller reports why
        }
        let caught_up = progress.source_done.load(Ordering::SeqCst)
            && store.position("detector")? >= store.stream_end()?
            && store.position(MOMENTS)? >= store.highlights_end()?;
        if exit_when_done && caught_up {
            return Ok(());
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            let line = format!(
                "dev: {} messages in, {} detections, {} clips, {} moments",
                progress.messages_in.load(Ordering::Relaxed),
                progress.detections.load(Ordering::Relaxed),
                progress.clips.load(Ordering::Relaxed),
                progress.moments.load(Ordering::Relaxed)
            );
            if line != last_line {
                eprintln!("{line}");
                last_line = line;
            }
            last_print = Instant::now();
        }
    }
}

/// The detector's event-source mapping: invokes the Lambda handler on the stream's records in
/// order, from its saved position; a failed record is retried from there.
async fn detect(
    store: Arc<Embedded>,
    handler: DetectorHandler<Arc<Embedded>, Arc<Embedded>, Arc<Embedded>>,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut position = store.position("detector")?;
    while !*stop.borrow() {
        let mut records = store.read_stream(position, DETECTOR_BATCH)?;
        let Some(mut last) = records.last().map(|r| r.sequence) else {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        // Lambda's batching window: wait for a full batch, up to the window, unless the source
        // has nothing more to give. A replay then saves each state once per 10,000 records.
        let first_seen = Instant::now();
        while records.len() < DETECTOR_BATCH
            && first_seen.elapsed() < BATCHING_WINDOW
            && !progress.source_done.load(Ordering::SeqCst)
            && !*stop.borrow()
        {
            tokio::time::sleep(IDLE_POLL).await;
            records.extend(store.read_stream(last, DETECTOR_BATCH - records.len())?);
            last = records.last().map_or(last, |r| r.sequence);
        }
        let now_s = unix_ms() as f64 / 1000.0;
        let records: Vec<KinesisRecordIn> = records
            .into_iter()
            .map(|r| KinesisRecordIn {
                shard_id: "shardId-000000000000".into(),
                sequence_number: r.sequence.to_string(),
                partition_key: r.partition_key.to_string(),
                data: r.data,
                approximate_arrival_s: now_s,
            })
            .collect();
        let (response, report) = handler.handle(&kinesis_event(STREAM_ARN, "local", &records)).await;
        progress.detections.fetch_add(report.detections, Ordering::Relaxed);
        let failed = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref()?.parse::<i64>().ok())
            .min();
        match failed {
            Some(first_failed) => {
                // As Lambda does: the batch again from the first failed record, after a pause.
                position = first_failed - 1;
                tracing::warn!(sequence = first_failed, "detector invocation failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            None => {
                progress.records_detected.fetch_add(records.len() as u64, Ordering::Relaxed);
                position = last;
            }
        }
        store.set_position("detector", position)?;
    }
    Ok(())
}

/// The clipper's place without Twitch credentials: every highlight becomes a moment, stored once.
async fn store_moments(
    store: Arc<Embedded>,
    titles: TitleRules,
    progress: Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut position = store.position(MOMENTS)?;
    while !*stop.borrow() {
        let highlights = store.highlights_after(position, 100)?;
        let Some(&(last, _)) = highlights.last() else {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        let moments: Vec<Detection> = highlights.iter().map(|(_, d)| *d).collect();
        let stored = store.store_moments(MOMENTS, &moments, last, unix_ms(), &titles)?;
        progress.moments.fetch_add(stored as u64, Ordering::Relaxed);
        position = last;
    }
    Ok(())
}

type DevClipper = ClipperHandler<HelixClips, StoredTokenSource<FileVault>, Arc<Embedded>, Arc<Embedded>>;

/// The clipper's event-source mapping: the clipper Lambda's handler on each new highlight, in
/// order, as the cloud delivers the highlights table's stream. A highlight that ends without a
/// clip (the channel is not live, does not allow clips, the moment is too old: every replayed
/// one) is stored as a moment instead. Highlights the handler hands back are delivered again,
/// from the first of them, after a pause; the handler's progress on each highlight makes the
/// redelivery create no second clip, also after `kill -9`.
async fn clip_highlights(
    store: Arc<Embedded>,
    clipper: DevClipper,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut position = store.position(MOMENTS)?;
    let mut last_sweep = Instant::now();
    while !*stop.borrow() {
        if last_sweep.elapsed() >= CONFIRM_SWEEP_EVERY {
            match clipper.confirm_sweep(100).await {
                Ok(report) => {
                    tracing::info!(checked = report.checked, confirmed = report.confirmed, "confirm sweep")
                }
                Err(error) => tracing::warn!(%error, "confirm sweep failed"),
            }
            last_sweep = Instant::now();
        }
        let highlights = store.highlights_after(position, CLIP_BATCH)?;
        if highlights.is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        let (response, report) = clipper.handle(&highlight_event(&highlights)).await;
        progress.clips.fetch_add(report.clips_created + report.clips_reconciled, Ordering::Relaxed);
        let first_failed = response
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.as_deref()?.parse::<i64>().ok())
            .min();
        let done: Vec<(i64, Detection)> =
            highlights.into_iter().take_while(|(seq, _)| first_failed.is_none_or(|f| *seq < f)).collect();
        if let Some(&(last, _)) = done.last() {
            let moments: Vec<Detection> =
                store.failed_highlights(&done)?.into_iter().map(|(_, d)| d).collect();
            let stored = store.store_moments(MOMENTS, &moments, last, unix_ms(), clipper.titles())?;
            progress.moments.fetch_add(stored as u64, Ordering::Relaxed);
            position = last;
        }
        if let Some(sequence) = first_failed {
            tracing::warn!(sequence, "the clipper handed a highlight back; delivering it again");
            let _ = tokio::time::timeout(Duration::from_secs(1), stop.wait_for(|s| *s)).await;
        }
    }
    Ok(())
}

/// The highlights table's stream event for `highlights` (new items; sequence = row number).
fn highlight_event(highlights: &[(i64, Detection)]) -> aws_lambda_events::event::dynamodb::Event {
    let now_ms = unix_ms();
    let records: Vec<DynamoRecordIn> = highlights
        .iter()
        .map(|(seq, detection)| {
            let image = item_json(&detection_item(detection, now_ms));
            DynamoRecordIn {
                event_id: seq.to_string(),
                event_name: "INSERT".into(),
                sequence_number: seq.to_string(),
                keys: serde_json::json!({
                    keys::BROADCASTER_ID: image[keys::BROADCASTER_ID],
                    keys::PEAK_AT: image[keys::PEAK_AT],
                }),
                new_image: image,
                approximate_creation_s: now_ms / 1000,
            }
        })
        .collect();
    dynamodb_event(HIGHLIGHTS_STREAM_ARN, "local", &records)
}

/// Announces each confirmed clip to the webhook, beside the clipper (a slow or failing receiver
/// never holds a clip back), at least once: the delivery is recorded after it is made, so a
/// clip whose delivery was cut by a stop or a crash is announced again at the next start, with
/// the same idempotency key. What cannot be delivered is dead-lettered (recorded as failed, with
/// why, and logged). Clips created more than an hour before the start are not announced: a
/// webhook configured later does not replay the history.
async fn announce_clips(
    store: Arc<Embedded>,
    webhook: Option<Webhook>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(webhook) = webhook else {
        let _ = stop.wait_for(|s| *s).await;
        return Ok(());
    };
    let since_ms = unix_ms() - 3_600_000;
    while !*stop.borrow() {
        let due = store.clips_to_announce(since_ms, 10)?;
        if due.is_empty() {
            let _ = tokio::time::timeout(ANNOUNCE_POLL, stop.wait_for(|s| *s)).await;
            continue;
        }
        for clip in due {
            let result = tokio::select! {
                result = webhook.send(&clip) => result,
                _ = stop.wait_for(|s| *s) => return Ok(()),
            };
            match result {
                Ok(delivered) => {
                    store.record_announcement(&clip.clip_id, delivered.attempts, None, unix_ms())?;
                    progress.announced.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::error!(clip_id = %clip.clip_id, %error, "announcement dead-lettered");
                    eprintln!("dev: clip {} was not announced: {error}", clip.clip_id);
                    store.record_announcement(
                        &clip.clip_id,
                        error.attempts(),
                        Some(&error.to_string()),
                        unix_ms(),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// The built-in title rules, extended by the operator's list when there is one.
pub(crate) fn title_rules(blocklist: Option<&Path>) -> anyhow::Result<TitleRules> {
    let Some(path) = blocklist else { return Ok(TitleRules::default()) };
    let list = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(TitleRules::extended(&list))
}

/// The token file and the app credentials, when clips are asked for; a clear error when they
/// are incomplete (the file's content and the secret never appear in it).
fn token_vault(args: &DevArgs) -> anyhow::Result<Option<FileVault>> {
    let Some(path) = &args.twitch_tokens else { return Ok(None) };
    let (Some(client_id), Some(client_secret)) = (&args.client_id, &args.client_secret) else {
        bail!(
            "--twitch-tokens needs the Twitch app's credentials too: set TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET"
        );
    };
    if args.channels.is_empty() {
        eprintln!("dev: only live channels (--channel) are clipped; recorded chat becomes moments");
        return Ok(None);
    }
    let app =
        AppCredentials { client_id: client_id.clone(), client_secret: Secret::new(client_secret.clone()) };
    Ok(Some(FileVault::new(app, path)))
}

/// Replays `files` batched in event time, paced at `speed`, resuming after the records a previous
/// run of the same replay already appended.
async fn replay_files(
    store: &Embedded,
    files: &[PathBuf],
    format: Format,
    lateness_ms: u32,
    speed: Speed,
    progress: &Progress,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let source = replay_source_name(files)?;
    let done = store.position(&source)?.max(0) as usize;
    if done > 0 {
        eprintln!("dev: resuming the replay after {done} records");
    }
    eprintln!("dev: replaying {} file(s)", files.len());
    // Event time maps to wall time from the first batch on (at `speed`).
    let feed = Feed { files: files.to_vec(), format, lateness_ms, name_channels: true };
    let messages = append_stream(store, &source, feed, done, None, speed, progress, stop).await?;
    eprintln!("dev: replayed {messages} messages from {} file(s)", files.len());
    Ok(())
}

/// A replay is resumed only by the same files: the source's name is their absolute paths and
/// sizes (readable, and stable across versions, unlike a hash of them).
fn replay_source_name(files: &[PathBuf]) -> anyhow::Result<String> {
    let mut name = String::from("replay");
    for file in files {
        let metadata = std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
        let path = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        name.push_str(&format!(" {}:{}", path.display(), metadata.len()));
    }
    Ok(name)
}

/// Recorded chat to append: what [`crate::replay::stream_batches`] reads.
struct Feed {
    files: Vec<PathBuf>,
    format: Format,
    lateness_ms: u32,
    /// Record the logins the files name (the demo names its channels itself).
    name_channels: bool,
}

/// Appends the batches of `feed` after the first `done` to the stream, read on a thread of their
/// own while earlier ones are appended and detected, each no earlier than its event time maps to
/// on the wall clock. `anchor` is that mapping (this wall instant is this event millisecond), or
/// `None` for the first batch's watermark now. Returns the messages read.
#[allow(clippy::too_many_arguments)]
async fn append_stream(
    store: &Embedded,
    source: &str,
    feed: Feed,
    done: usize,
    anchor: Option<(Instant, i64)>,
    speed: Speed,
    progress: &Progress,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    use crate::replay::ReplayItem;
    // A few chunks ahead: reading stays ahead of appending without holding the whole file.
    let (items, mut received) = tokio::sync::mpsc::channel::<ReplayItem<EncodedBatch>>(4);
    let name_channels = feed.name_channels;
    let reader = tokio::task::spawn_blocking(move || {
        crate::replay::stream_batches(&feed.files, feed.format, feed.lateness_ms, APPEND_CHUNK, &mut |item| {
            // Encoded on the reader's thread, so the messages' strings are freed where they were
            // allocated (freeing them on another thread made malloc a third of the replay's time).
            let item = match item {
                ReplayItem::Batches(batches) => {
                    ReplayItem::Batches(batches.iter().map(EncodedBatch::of).collect())
                }
                ReplayItem::Channel(id, login) => ReplayItem::Channel(id, login),
                ReplayItem::Vod(vod) => ReplayItem::Vod(vod),
            };
            items.blocking_send(item).is_ok()
        })
    });
    let mut anchor = anchor;
    let mut next = 0usize; // the stream index of the next batch received
    while let Some(item) = received.recv().await {
        if *stop.borrow() {
            break;
        }
        match item {
            ReplayItem::Channel(id, login) if name_channels => {
                store.upsert_streamer(id, &login, None, false)?
            }
            ReplayItem::Channel(..) => {}
            // A moment of a VOD's chat links to its second in the VOD.
            ReplayItem::Vod(vod) => {
                store.upsert_vod(&vod.video_id, vod.broadcaster_id, vod.started_at_s, vod.length_s)?
            }
            ReplayItem::Batches(batches) => {
                let first = next;
                next += batches.len();
                let anchor = *anchor.get_or_insert_with(|| (Instant::now(), batches[0].watermark_ms));
                let skip = done.saturating_sub(first).min(batches.len());
                append_paced(store, source, &batches[skip..], first + skip, anchor, speed, progress, &stop)
                    .await?;
            }
        }
    }
    drop(received); // a reader still sending stops
    reader.await.context("the chat reader panicked")?
}

/// A chat batch as the stream holds it, with what pacing and progress need.
struct EncodedBatch {
    broadcaster_id: BroadcasterId,
    watermark_ms: i64,
    messages: usize,
    data: Vec<u8>,
}

impl EncodedBatch {
    fn of(batch: &ChatBatch) -> Self {
        Self {
            broadcaster_id: batch.broadcaster_id,
            watermark_ms: batch.watermark_ms,
            messages: batch.messages.len(),
            data: wire::encode(batch),
        }
    }
}

/// Appends `batches` (stream indexes from `first_index` on) to the stream, each no earlier than
/// its event time maps to on the wall clock (`anchor`), in chunks whose source position commits
/// with them.
#[allow(clippy::too_many_arguments)]
async fn append_paced(
    store: &Embedded,
    source: &str,
    batches: &[EncodedBatch],
    first_index: usize,
    anchor: (Instant, i64),
    speed: Speed,
    progress: &Progress,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut next = 0;
    while next < batches.len() && !*stop.borrow() {
        let mut end = next;
        let now = Instant::now();
        while end < batches.len() && end - next < APPEND_CHUNK {
            let due = match speed {
                Speed::Max => now,
                Speed::Times(times) => {
                    let ahead_ms = ((batches[end].watermark_ms - anchor.1) as f64 / times).max(0.0);
                    anchor.0 + Duration::from_millis(ahead_ms as u64)
                }
            };
            if due > now {
                break;
            }
            end += 1;
        }
        // Never far ahead of the detector: each append holds the single writer, and the
        // detector's state saves wait behind it.
        let behind = store.stream_end()? - store.position("detector")?;
        if end == next || behind >= MAX_DETECTOR_LAG {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        let chunk: Vec<_> =
            batches[next..end].iter().map(|b| (b.broadcaster_id, b.data.as_slice())).collect();
        store.append(source, (first_index + end) as i64, &chunk)?;
        let messages: usize = batches[next..end].iter().map(|b| b.messages).sum();
        progress.messages_in.fetch_add(messages as u64, Ordering::Relaxed);
        next = end;
        tokio::task::yield_now().await;
    }
    Ok(())
}

/// The built-in demo: synthetic chat of a few channels, on the wall clock. Its first 20 minutes
/// lie in the past (appended at once, so the site has moments from the start); the rest arrives
/// in real time. One demo recording lasts two hours; a restart within it resumes it.
async fn demo(
    store: &Embedded,
    data_dir: &Path,
    lateness_ms: u32,
    progress: &Progress,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    const BACKFILL_S: i64 = 20 * 60;
    const LENGTH_S: u32 = 2 * 3600;
    let now_s = unix_ms() / 1000;
    let existing = std::fs::read_dir(data_dir)?
        .filter_map(|entry| {
            entry
                .ok()?
                .file_name()
                .to_str()?
                .strip_prefix("demo-")?
                .strip_suffix(".jsonl")?
                .parse::<i64>()
                .ok()
        })
        .filter(|start| start + i64::from(LENGTH_S) > now_s + 60)
        .max();
    let start = existing.unwrap_or(now_s - BACKFILL_S);
    let file = data_dir.join(format!("demo-{start}.jsonl"));
    if existing.is_none() {
        crate::synth::run(crate::synth::SynthArgs::demo(start, LENGTH_S, file.clone()))?;
    }
    for (index, (login, name)) in DEMO_CHANNELS.iter().enumerate() {
        store.upsert_streamer(100_000 + index as u64, login, Some(name), true)?;
    }
    let files = vec![file];
    let source = replay_source_name(&files)?;
    let done = store.position(&source)?.max(0) as usize;
    eprintln!("dev: built-in demo: 3 synthetic channels, two hours of chat on the wall clock");
    // Event time is wall time: what is past is due now, the rest when it happens.
    let anchor = Some((Instant::now(), unix_ms()));
    let feed = Feed { files, format: Format::Jsonl, lateness_ms, name_channels: false };
    append_stream(store, &source, feed, done, anchor, Speed::Times(1.0), progress, stop).await?;
    Ok(())
}

/// Live Twitch chat through the ingester's IRC client and batcher, into the embedded stream.
async fn live(
    store: &Arc<Embedded>,
    channels: Vec<String>,
    irc_addr: &str,
    join_limit: ingest_fargate::irc_client::JoinLimit,
    progress: &Arc<Progress>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use ingest_fargate::irc_client::{CONFIRM_JOINS_WITHIN, ChatClient, IrcLogin};
    let counters = Arc::new(ingest_fargate::metrics::Counters::default());
    let chat = ChatClient {
        address: irc_addr.parse().with_context(|| format!("{irc_addr} is not an IRC address"))?,
        login: IrcLogin::Anonymous,
        join_limit,
        confirm_joins_within: CONFIRM_JOINS_WITHIN,
        counters,
    };
    let logins: std::collections::BTreeSet<String> =
        channels.iter().map(|c| c.to_ascii_lowercase()).collect();
    eprintln!(
        "dev: watching {} live channel(s): {}",
        logins.len(),
        logins.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let (_keep, joined) = watch::channel(logins);
    let sink = Arc::new(StreamSink { store: store.clone(), progress: progress.clone() });
    ingest_fargate::run(chat, joined, sink, ingest_fargate::producer::ProducerSettings::default(), stop)
        .await;
    Ok(())
}

/// The ingester's sink, appending to the embedded stream.
struct StreamSink {
    store: Arc<Embedded>,
    progress: Arc<Progress>,
}

impl RecordSink for StreamSink {
    async fn put(&self, records: &[&OutRecord]) -> Result<EntryResults, SinkError> {
        let mut decoded = Vec::with_capacity(records.len());
        for record in records {
            let key = record
                .partition_key
                .parse()
                .map_err(|_| SinkError(format!("bad partition key {}", record.partition_key)))?;
            if let Ok(batch) = wire::decode(&record.data) {
                self.progress.messages_in.fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
            }
            decoded.push((key, record.data.clone()));
        }
        // Live chat cannot be read again: the source has no position worth keeping.
        self.store.append("live", 0, &decoded).map_err(|e| SinkError(e.to_string()))?;
        Ok(vec![None; records.len()])
    }

    /// The site and `highlights channel set LOGIN` know a live channel by its login.
    fn joined(&self, channel: &str, broadcaster_id: highlights_core::BroadcasterId) {
        if let Err(error) = self.store.upsert_streamer(broadcaster_id, channel, None, true) {
            tracing::warn!(%error, channel, "cannot record the channel's login");
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
