//! The local event-source runner: what Lambda's event-source mappings do in AWS, done against
//! the local stack, where the emulator cannot run Lambda code.
//!
//! For every shard of every mapped source — Kinesis streams, and DynamoDB streams of tables
//! (INSERT records only, like the clipper's filter criteria, or MODIFY records only, like the
//! announcer's, whose handler checks the rest of its criteria itself) — it polls records, builds the very
//! event payload Lambda would, calls the consumer (the same handler the Lambda binary calls)
//! in-process, and honours partial batch responses: the next attempt starts at the lowest failed
//! sequence number. Retries back off exponentially (capped) and go on, like the deployed
//! mappings' unlimited retry attempts, until the record has kept failing for `max_retry_time`
//! (the mappings' maximum record age) or, when set, `max_retries` attempts: then the failing
//! record goes to the mapping's dead-letter queue (SQS) and the shard moves on past it. A
//! dependency that is down for a minute (the database, the AWS endpoint) so costs a delay, never
//! a dead-lettered record. Progress is checkpointed to a file
//! after every successful batch, so a restarted runner resumes where it stopped (records after
//! the checkpoint may be delivered again, exactly as with Lambda: handlers are idempotent).
//!
//! What it must not do: contain handler logic. Consumers are thin adapters around the handlers.

mod checkpoints;
mod dynamo_source;
mod kinesis_source;
mod window;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use aws_sdk_kinesis::error::DisplayErrorContext;
use highlights_core::Backoff;
use tokio::sync::watch;

pub use checkpoints::Checkpoints;
pub use kinesis_source::{checkpoint_key as kinesis_checkpoint_key, created_ms as kinesis_stream_created_ms};

/// A Lambda function on a Kinesis stream: takes the event, returns the sequence numbers of the
/// failed records (the partial batch response).
pub trait KinesisConsumer: Send + Sync + 'static {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>>;

    /// The same function on a mapping with a tumbling window: the state map for the window's
    /// next invocation, or `Err` to have the whole invocation retried with the same records and
    /// the same map.
    fn invoke_window(
        &self,
        event: KinesisTimeWindowEvent,
    ) -> Pin<Box<dyn Future<Output = WindowAnswer> + Send + '_>> {
        let _ = event;
        Box::pin(async { Err("this consumer takes no tumbling window".to_owned()) })
    }
}

/// What a function on a mapping with a tumbling window answers: the window's state map, or why
/// the invocation failed.
pub type WindowAnswer = Result<HashMap<String, String>, String>;

/// A Lambda function on a DynamoDB stream, likewise.
pub trait DynamoConsumer: Send + Sync + 'static {
    fn invoke(&self, event: DynamoEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>>;
}

/// Where a mapping reads from, and what it calls.
#[derive(Clone)]
pub enum Source {
    Kinesis {
        stream: String,
        consumer: Arc<dyn KinesisConsumer>,
        /// The mapping's `TumblingWindowInSeconds`: events carry the window's state, and the
        /// state is checkpointed with the records (see `window`).
        tumbling_window: Option<Duration>,
    },
    /// The stream of a DynamoDB table; only records of `change` are delivered.
    Dynamo { table: String, change: TableChange, consumer: Arc<dyn DynamoConsumer> },
}

/// Which records of a DynamoDB stream a mapping delivers (its filter criteria's `eventName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableChange {
    Insert,
    Modify,
}

/// One event-source mapping: a source and the dead-letter queue of its function.
#[derive(Clone)]
pub struct Mapping {
    pub source: Source,
    pub dead_letter_queue: String,
}

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Records per invocation (Lambda's BatchSize).
    pub batch_size: usize,
    /// Pause between polls of an idle shard.
    pub poll_interval: Duration,
    /// Failed attempts of the same record before it goes to the dead-letter queue (`None`: no
    /// limit but `max_retry_time`, as the deployed mappings).
    pub max_retries: Option<u32>,
    /// How long the same record may keep failing before it goes to the dead-letter queue.
    pub max_retry_time: Duration,
    /// Pauses between retries: the first, doubling with each failed attempt, capped.
    pub retry_backoff: Backoff,
    pub region: String,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(50),
            max_retries: None,
            // The clipper mapping's maximum record age (infra), the shortest of the mappings.
            max_retry_time: Duration::from_secs(600),
            retry_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
            region: "us-east-1".into(),
        }
    }
}

/// Counters over the whole run.
#[derive(Debug, Default)]
pub struct RunnerStats {
    pub records: AtomicU64,
    pub invocations: AtomicU64,
    pub failed_invocations: AtomicU64,
    pub dead_lettered: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot {action} {source_name}: {message}")]
    Source { action: &'static str, source_name: String, message: String },
    #[error("cannot look up dead-letter queue {queue}: {message}")]
    Queue { queue: String, message: String },
    #[error(transparent)]
    Checkpoints(#[from] checkpoints::CheckpointError),
}

/// One shard of a source, as the poller loop sees it.
pub(crate) trait Shard: Send + Sync + 'static {
    type Record: Clone + Send + Sync + 'static;
    /// Checkpoint key, also used in logs.
    fn key(&self) -> &str;
    /// A key an older version checkpointed this shard under, taken over when [`Shard::key`] has
    /// none (by the first mapping of its stream to start: any other starts from the beginning).
    fn legacy_key(&self) -> Option<&str> {
        None
    }
    fn sequence(record: &Self::Record) -> &str;
    /// An iterator just after `after`, or at the start of the shard.
    fn iterator(&self, after: Option<&str>) -> impl Future<Output = Result<Option<String>, String>> + Send;
    /// One page: the records the consumer should see, and the next iterator (`None`: closed).
    fn fetch(
        &self,
        iterator: String,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<Self::Record>, Option<String>), String>> + Send;
    fn invoke(&self, batch: &[Self::Record]) -> impl Future<Output = Vec<String>> + Send;
    /// The mapping's tumbling window, when it has one (Kinesis only).
    fn tumbling_window(&self) -> Option<Duration> {
        None
    }
    /// When the record reached the stream, Unix seconds: what tumbling windows are cut by.
    fn arrival_s(record: &Self::Record) -> f64 {
        let _ = record;
        0.0
    }
    /// One invocation of a mapping with a tumbling window.
    fn invoke_window(
        &self,
        batch: &[Self::Record],
        window: &highlights_adapters::lambda_events::WindowIn,
    ) -> impl Future<Output = WindowAnswer> + Send {
        let _ = (batch, window);
        async { Err("this source has no tumbling window".to_owned()) }
    }
    /// The dead-letter message body for records that exhausted their retries.
    fn dead_letter_body(&self, records: &[Self::Record]) -> serde_json::Value;
}

/// Runs every mapping until `stop` turns true; returns the counters.
pub async fn run(
    sdk: &SdkConfig,
    mappings: Vec<Mapping>,
    checkpoints: Arc<Checkpoints>,
    options: RunnerOptions,
    stop: watch::Receiver<bool>,
) -> Result<Arc<RunnerStats>, RunnerError> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let stats = Arc::new(RunnerStats::default());
    let mut tasks = tokio::task::JoinSet::new();
    for mapping in mappings {
        let queue_url = sqs
            .get_queue_url()
            .queue_name(&mapping.dead_letter_queue)
            .send()
            .await
            .map_err(|e| RunnerError::Queue {
                queue: mapping.dead_letter_queue.clone(),
                message: DisplayErrorContext(&e).to_string(),
            })?
            .queue_url()
            .unwrap_or_default()
            .to_owned();
        let context = PollerContext {
            sqs: sqs.clone(),
            queue_url,
            checkpoints: checkpoints.clone(),
            options: options.clone(),
            stats: stats.clone(),
        };
        // A source missing at start is an error the user can act on; one that vanishes later
        // (the emulator restarted) is waited for by its supervisor.
        match mapping.source {
            Source::Kinesis { stream, consumer, tumbling_window } => {
                let (sdk, region) = (sdk.clone(), options.region.clone());
                let name = mapping.dead_letter_queue.clone();
                let discover = move || {
                    let (sdk, stream, name, consumer, region) =
                        (sdk.clone(), stream.clone(), name.clone(), consumer.clone(), region.clone());
                    async move {
                        kinesis_source::shards(&sdk, &stream, &name, consumer, &region, tumbling_window).await
                    }
                };
                let first = discover().await?;
                tasks.spawn(supervise(first, discover, context, stop.clone()));
            }
            Source::Dynamo { table, change, consumer } => {
                let (sdk, region) = (sdk.clone(), options.region.clone());
                let discover = move || {
                    let (sdk, table, consumer, region) =
                        (sdk.clone(), table.clone(), consumer.clone(), region.clone());
                    async move { dynamo_source::shards(&sdk, &table, change, consumer, &region).await }
                };
                let first = discover().await?;
                tasks.spawn(supervise(first, discover, context, stop.clone()));
            }
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a source supervisor stopped unexpectedly");
        }
    }
    Ok(stats)
}

/// How often a source is looked up again, to notice it was deleted and created anew.
const REDISCOVER_EVERY: Duration = Duration::from_secs(2);

/// The shards of one incarnation of a source (a stream deleted and created again with the same
/// name is another incarnation: its `identity` differs, and so do its checkpoint keys).
pub(crate) struct Discovered<S> {
    pub identity: String,
    pub name: String,
    pub shards: Vec<S>,
}

/// The pollers of one incarnation, stopped together.
struct Generation {
    stop: watch::Sender<bool>,
    pollers: tokio::task::JoinSet<()>,
}

impl Generation {
    fn start<S: Shard>(shards: Vec<S>, context: &PollerContext) -> Self {
        let (stop, stopped) = watch::channel(false);
        let mut pollers = tokio::task::JoinSet::new();
        for shard in shards {
            pollers.spawn(poll(shard, context.clone(), stopped.clone()));
        }
        Self { stop, pollers }
    }

    async fn retire(mut self) {
        let _ = self.stop.send(true);
        while let Some(joined) = self.pollers.join_next().await {
            if let Err(error) = joined {
                tracing::error!(%error, "a shard poller stopped unexpectedly");
            }
        }
    }
}

/// Polls a source's shards and looks the source up every [`REDISCOVER_EVERY`]: when it is gone,
/// says so once (and how to bring it back); when it is back as a new incarnation (the local
/// emulator restarted and `highlights local provision` ran), reads the new one from its start
/// under new checkpoint keys, so an old checkpoint never skips the new stream's records.
async fn supervise<S, F, Fut>(
    first: Discovered<S>,
    discover: F,
    context: PollerContext,
    mut stop: watch::Receiver<bool>,
) where
    S: Shard,
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<Discovered<S>, RunnerError>> + Send,
{
    let (name, mut identity) = (first.name, first.identity);
    let mut current = Generation::start(first.shards, &context);
    let mut retiring = tokio::task::JoinSet::new();
    let mut missing = false;
    loop {
        pause(&mut stop, REDISCOVER_EVERY).await;
        if *stop.borrow() {
            break;
        }
        match discover().await {
            Ok(found) if found.identity != identity => {
                tracing::error!(
                    source = %name,
                    "the source was deleted and created anew (the emulator restarted?): reading the new one from its start; records of the old one that were not read are gone with it"
                );
                identity = found.identity;
                let old = std::mem::replace(&mut current, Generation::start(found.shards, &context));
                retiring.spawn(old.retire());
                missing = false;
            }
            Ok(_) if missing => {
                tracing::info!(source = %name, "the source is reachable again");
                missing = false;
            }
            Ok(_) => {}
            Err(error) if !missing => {
                tracing::error!(
                    source = %name,
                    %error,
                    "the source cannot be found or reached; if the local emulator was restarted, `highlights local provision` creates it again and the runner picks it up by itself"
                );
                missing = true;
            }
            Err(_) => {}
        }
    }
    current.retire().await;
    while retiring.join_next().await.is_some() {}
}

#[derive(Clone)]
struct PollerContext {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    checkpoints: Arc<Checkpoints>,
    options: RunnerOptions,
    stats: Arc<RunnerStats>,
}

async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, stop.changed()).await;
}

/// A shard as it is read: the iterator, and the records read but not yet done.
struct Reader<R> {
    buffer: VecDeque<R>,
    iterator: Option<String>,
    open: bool,
}

/// What [`Reader::fill`] found.
enum Read {
    /// Records are buffered.
    Records,
    /// Nothing now (or reading failed, after a pause): try again later.
    Nothing,
    /// The shard is closed and everything was done.
    Closed,
}

impl<R: Clone + Send + Sync + 'static> Reader<R> {
    fn new() -> Self {
        Self { buffer: VecDeque::new(), iterator: None, open: true }
    }

    /// Reads a page when fewer than a batch are buffered: after the buffer's last record, or
    /// after the checkpoint.
    async fn fill<S: Shard<Record = R>>(
        &mut self,
        shard: &S,
        context: &PollerContext,
        stop: &mut watch::Receiver<bool>,
    ) -> Read {
        let options = &context.options;
        if self.iterator.is_none() && self.open {
            let after = self
                .buffer
                .back()
                .map(|r| S::sequence(r).to_owned())
                .or_else(|| context.checkpoints.get(shard.key()));
            match shard.iterator(after.as_deref()).await {
                Ok(fresh) => {
                    self.open = fresh.is_some();
                    self.iterator = fresh;
                }
                Err(message) => {
                    tracing::warn!(shard = %shard.key(), %message, "cannot get a shard iterator; retrying");
                    pause(stop, options.poll_interval * 10).await;
                    return Read::Nothing;
                }
            }
        }
        if self.buffer.len() < options.batch_size
            && let Some(current) = self.iterator.take()
        {
            match shard.fetch(current, options.batch_size).await {
                Ok((records, next)) => {
                    self.buffer.extend(records);
                    self.open = next.is_some();
                    self.iterator = next;
                }
                Err(message) => {
                    // The iterator is gone (expired, emulator restart): the next round makes a
                    // new one after what is already buffered.
                    tracing::warn!(shard = %shard.key(), %message, "reading the shard failed; retrying");
                    pause(stop, options.poll_interval * 10).await;
                    return Read::Nothing;
                }
            }
        }
        match (self.buffer.is_empty(), self.open) {
            (false, _) => Read::Records,
            (true, true) => Read::Nothing,
            (true, false) => Read::Closed,
        }
    }
}

/// Retries of the record first in line, and when it began failing.
#[derive(Default)]
struct Retries {
    attempts: u32,
    failing_since: Option<tokio::time::Instant>,
}

impl Retries {
    /// Counts a failed attempt of the record at `index` of the batch; true when it has failed
    /// long enough or often enough to be dead-lettered (and the count starts over).
    fn failed(&mut self, index: usize, options: &RunnerOptions) -> bool {
        // The clock runs from the first failure of the record now first in line.
        if index > 0 || self.attempts == 0 {
            *self = Self { attempts: 0, failing_since: Some(tokio::time::Instant::now()) };
        }
        self.attempts += 1;
        let too_long = self.failing_since.is_some_and(|since| since.elapsed() > options.max_retry_time);
        let exhausted = too_long || options.max_retries.is_some_and(|max| self.attempts > max);
        if exhausted {
            *self = Self::default();
        }
        exhausted
    }
}

/// The event-source mapping loop of one shard.
async fn poll<S: Shard>(shard: S, context: PollerContext, mut stop: watch::Receiver<bool>) {
    if let Some(legacy) = shard.legacy_key() {
        match context.checkpoints.take_over(legacy, shard.key()) {
            Ok(true) => {
                tracing::info!(shard = %shard.key(), from = legacy, "took over the position kept under the older key")
            }
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "cannot take over the position kept under the older key"),
        }
    }
    if let Some(length) = shard.tumbling_window() {
        return window::poll(shard, context, stop, length).await;
    }
    let options = &context.options;
    let key = shard.key().to_owned();
    let mut reader = Reader::new();
    let mut retries = Retries::default();
    while !*stop.borrow() {
        match reader.fill(&shard, &context, &mut stop).await {
            Read::Records => {}
            Read::Nothing => {
                pause(&mut stop, options.poll_interval).await;
                continue;
            }
            Read::Closed => return,
        }
        let batch: Vec<S::Record> = reader.buffer.iter().take(options.batch_size).cloned().collect();
        let failed = shard.invoke(&batch).await;
        context.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let first_failed = batch.iter().position(|r| failed.iter().any(|f| f == S::sequence(r)));
        let done = match first_failed {
            None => {
                retries = Retries::default();
                batch.len()
            }
            Some(index) => {
                context.stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                if retries.failed(index, options) {
                    // Like bisect-on-error narrowed down to the failing record: only it is set
                    // aside; the records after it are delivered again.
                    dead_letter(&shard, &context, &batch[index..=index]).await;
                    index + 1
                } else {
                    index
                }
            }
        };
        if done > 0 {
            reader.buffer.drain(..done);
            context.stats.records.fetch_add(done as u64, Ordering::Relaxed);
            if let Err(error) = context.checkpoints.set(&key, S::sequence(&batch[done - 1])) {
                tracing::error!(%error, "cannot write the checkpoint");
            }
        }
        if first_failed.is_some() && retries.attempts > 0 {
            pause(&mut stop, options.retry_backoff.after(retries.attempts)).await;
        }
    }
}

/// Sends records that exhausted their retries to the dead-letter queue, with their content
/// (Lambda's on-failure destination sends only their coordinates; the content makes local
/// debugging easier).
async fn dead_letter<S: Shard>(shard: &S, context: &PollerContext, records: &[S::Record]) {
    let body = shard.dead_letter_body(records);
    match context.sqs.send_message().queue_url(&context.queue_url).message_body(body.to_string()).send().await
    {
        Ok(_) => {
            context.stats.dead_lettered.fetch_add(records.len() as u64, Ordering::Relaxed);
            tracing::error!(shard = %shard.key(), first = %S::sequence(&records[0]), count = records.len(), "records sent to the dead-letter queue");
        }
        Err(error) => {
            tracing::error!(shard = %shard.key(), error = %DisplayErrorContext(&error), "cannot reach the dead-letter queue; the records are skipped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_doubling_up_to_the_cap() {
        let options = RunnerOptions::default();
        let pauses: Vec<u64> = (1..=8).map(|n| options.retry_backoff.after(n).as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        // Ten minutes of retries at most 5 s apart: an outage of a minute is ridden out.
        assert!(options.max_retries.is_none() && options.max_retry_time >= Duration::from_secs(600));
    }
}
