//! The local event-source runner: what Lambda's event-source mappings do in AWS, done against
//! the local stack, where the emulator cannot run Lambda code.
//!
//! For every shard of every configured Kinesis stream it polls records, builds the very event
//! payload Lambda would ([`kinesis_event`]), calls the consumer (the same handler the Lambda
//! binary calls) in-process, and honours partial batch responses: the next attempt starts at the
//! lowest failed sequence number. After `max_retries` failed attempts the failing record goes
//! to the consumer's dead-letter queue (SQS) and the shard moves on past it. Progress is checkpointed to a
//! file after every successful batch, so a restarted runner resumes where it stopped (records
//! after the checkpoint may be delivered again, exactly as with Lambda: handlers are idempotent).
//!
//! What it must not do: contain handler logic. Consumers are thin adapters around the handlers.

mod checkpoints;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use highlights_adapters::lambda_events::{KinesisRecordIn, kinesis_event};
use tokio::sync::watch;

pub use checkpoints::Checkpoints;

/// A Lambda function as the runner sees it: takes a Kinesis event, returns the sequence
/// numbers of the failed records (the partial batch response).
pub trait KinesisConsumer: Send + Sync + 'static {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>>;
}

/// One event-source mapping: a stream, the function it feeds, and that function's DLQ.
#[derive(Clone)]
pub struct Mapping {
    pub stream: String,
    pub dead_letter_queue: String,
    pub consumer: Arc<dyn KinesisConsumer>,
}

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Records per invocation (Lambda's BatchSize).
    pub batch_size: usize,
    /// Pause between polls of an idle shard.
    pub poll_interval: Duration,
    /// Failed attempts of the same record before it goes to the dead-letter queue.
    pub max_retries: u32,
    /// Pause before a retry, multiplied by the attempt number.
    pub retry_backoff: Duration,
    pub region: String,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(50),
            max_retries: 3,
            retry_backoff: Duration::from_millis(200),
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
    #[error("cannot {action} {stream}: {message}")]
    Kinesis { action: &'static str, stream: String, message: String },
    #[error("cannot look up dead-letter queue {queue}: {message}")]
    Queue { queue: String, message: String },
    #[error(transparent)]
    Checkpoints(#[from] checkpoints::CheckpointError),
}

/// Runs every mapping until `stop` turns true; returns the counters.
pub async fn run(
    sdk: &SdkConfig,
    mappings: Vec<Mapping>,
    checkpoints: Arc<Checkpoints>,
    options: RunnerOptions,
    stop: watch::Receiver<bool>,
) -> Result<Arc<RunnerStats>, RunnerError> {
    let kinesis = aws_sdk_kinesis::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let stats = Arc::new(RunnerStats::default());
    let mut tasks = tokio::task::JoinSet::new();
    for mapping in mappings {
        let kinesis_error = |action, error: &dyn std::error::Error| RunnerError::Kinesis {
            action,
            stream: mapping.stream.clone(),
            message: DisplayErrorContext(error).to_string(),
        };
        let summary = kinesis
            .describe_stream_summary()
            .stream_name(&mapping.stream)
            .send()
            .await
            .map_err(|e| kinesis_error("describe", &e))?;
        let arn = summary.stream_description_summary().map(|s| s.stream_arn().to_owned()).unwrap_or_default();
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
        let shards = kinesis
            .list_shards()
            .stream_name(&mapping.stream)
            .send()
            .await
            .map_err(|e| kinesis_error("list the shards of", &e))?;
        for shard in shards.shards() {
            let poller = ShardPoller {
                kinesis: kinesis.clone(),
                sqs: sqs.clone(),
                stream: mapping.stream.clone(),
                stream_arn: arn.clone(),
                shard_id: shard.shard_id().to_owned(),
                queue_url: queue_url.clone(),
                consumer: mapping.consumer.clone(),
                checkpoints: checkpoints.clone(),
                options: options.clone(),
                stats: stats.clone(),
            };
            tasks.spawn(poller.run(stop.clone()));
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a shard poller stopped unexpectedly");
        }
    }
    Ok(stats)
}

struct ShardPoller {
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    stream: String,
    stream_arn: String,
    shard_id: String,
    queue_url: String,
    consumer: Arc<dyn KinesisConsumer>,
    checkpoints: Arc<Checkpoints>,
    options: RunnerOptions,
    stats: Arc<RunnerStats>,
}

impl ShardPoller {
    fn checkpoint_key(&self) -> String {
        format!("kinesis/{}/{}", self.stream, self.shard_id)
    }

    /// An iterator just after `after` (the checkpoint or the last buffered record), or at the
    /// start of the shard.
    async fn iterator(&self, after: Option<&str>) -> Result<Option<String>, String> {
        let request = self.kinesis.get_shard_iterator().stream_name(&self.stream).shard_id(&self.shard_id);
        let request = match after {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let response = request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(response.shard_iterator().map(str::to_owned))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let key = self.checkpoint_key();
        let mut buffer: VecDeque<KinesisRecordIn> = VecDeque::new();
        let mut iterator: Option<String> = None;
        let mut shard_open = true;
        let mut attempts = 0u32;
        while !*stop.borrow() {
            if iterator.is_none() && shard_open {
                let after =
                    buffer.back().map(|r| r.sequence_number.clone()).or_else(|| self.checkpoints.get(&key));
                match self.iterator(after.as_deref()).await {
                    Ok(fresh) => iterator = fresh,
                    Err(message) => {
                        tracing::warn!(stream = %self.stream, shard = %self.shard_id, %message, "cannot get a shard iterator; retrying");
                        self.pause(&mut stop, self.options.poll_interval * 10).await;
                        continue;
                    }
                }
                shard_open = iterator.is_some();
            }
            if buffer.len() < self.options.batch_size
                && let Some(current) = iterator.take()
            {
                match self.fetch(current, &mut buffer).await {
                    Ok(next) => {
                        shard_open = next.is_some();
                        iterator = next;
                    }
                    Err(message) => {
                        // The iterator is gone (expired, emulator restart): the next round makes
                        // a new one after what is already buffered.
                        tracing::warn!(stream = %self.stream, shard = %self.shard_id, %message, "GetRecords failed; retrying");
                        self.pause(&mut stop, self.options.poll_interval * 10).await;
                        continue;
                    }
                }
            }
            if buffer.is_empty() {
                if !shard_open {
                    return;
                }
                self.pause(&mut stop, self.options.poll_interval).await;
                continue;
            }
            let batch: Vec<KinesisRecordIn> = buffer.iter().take(self.options.batch_size).cloned().collect();
            let failed =
                self.consumer.invoke(kinesis_event(&self.stream_arn, &self.options.region, &batch)).await;
            self.stats.invocations.fetch_add(1, Ordering::Relaxed);
            let first_failed = batch.iter().position(|r| failed.contains(&r.sequence_number));
            let done = match first_failed {
                None => {
                    attempts = 0;
                    batch.len()
                }
                Some(index) => {
                    self.stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                    attempts += 1;
                    if attempts > self.options.max_retries {
                        // Like bisect-on-error narrowed down to the failing record: only it is
                        // set aside; the records after it are delivered again.
                        self.dead_letter(&batch[index..=index]).await;
                        attempts = 0;
                        index + 1
                    } else {
                        index
                    }
                }
            };
            if done > 0 {
                buffer.drain(..done);
                self.stats.records.fetch_add(done as u64, Ordering::Relaxed);
                if let Err(error) = self.checkpoints.set(&key, &batch[done - 1].sequence_number) {
                    tracing::error!(%error, "cannot write the checkpoint");
                }
            }
            if first_failed.is_some() && attempts > 0 {
                self.pause(&mut stop, self.options.retry_backoff * attempts).await;
            }
        }
    }

    /// Appends one page of records to `buffer`; returns the next iterator (`None`: shard closed).
    async fn fetch(
        &self,
        iterator: String,
        buffer: &mut VecDeque<KinesisRecordIn>,
    ) -> Result<Option<String>, String> {
        let page = self
            .kinesis
            .get_records()
            .shard_iterator(iterator)
            .limit(self.options.batch_size as i32)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        buffer.extend(page.records().iter().map(|r| KinesisRecordIn {
            shard_id: self.shard_id.clone(),
            sequence_number: r.sequence_number().to_owned(),
            partition_key: r.partition_key().unwrap_or_default().to_owned(),
            data: r.data().as_ref().to_vec(),
            approximate_arrival_s: r.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64()),
        }));
        Ok(page.next_shard_iterator().map(str::to_owned))
    }

    /// Sends records that exhausted their retries to the dead-letter queue, with their bytes
    /// (Lambda's on-failure destination sends only their coordinates; the bytes make local
    /// debugging easier).
    async fn dead_letter(&self, records: &[KinesisRecordIn]) {
        let body = serde_json::json!({
            "reason": "retries exhausted",
            "source": "kinesis",
            "stream": self.stream,
            "shard_id": self.shard_id,
            "records": records.iter().map(|r| serde_json::json!({
                "sequence_number": r.sequence_number,
                "partition_key": r.partition_key,
                "data_base64": base64::engine::general_purpose::STANDARD.encode(&r.data),
            })).collect::<Vec<_>>(),
        });
        match self.sqs.send_message().queue_url(&self.queue_url).message_body(body.to_string()).send().await {
            Ok(_) => {
                self.stats.dead_lettered.fetch_add(records.len() as u64, Ordering::Relaxed);
                tracing::error!(stream = %self.stream, shard = %self.shard_id, first = %records[0].sequence_number, count = records.len(), "records sent to the dead-letter queue");
            }
            Err(error) => {
                tracing::error!(stream = %self.stream, error = %DisplayErrorContext(&error), "cannot reach the dead-letter queue; the records are skipped");
            }
        }
    }

    async fn pause(&self, stop: &mut watch::Receiver<bool>, duration: Duration) {
        let _ = tokio::time::timeout(duration, stop.changed()).await;
    }
}
