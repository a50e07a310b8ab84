//! The pipeline from chat events to Kinesis: batches every `flush_every` (and when a record's
//! worth of chat is waiting), one PutRecords call at a time, failed entries back into the backlog
//! with exponential backoff and jitter. While Kinesis throttles, chat accumulates in the bounded
//! [`Batcher`] instead of being dropped, until its memory cap.
//!
//! The Kinesis call is behind [`RecordSink`] (`KinesisSink` in the cloud, the embedded stream in
//! `highlights dev`), so tests inject partial failures and throttling.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_adapters::kinesis_out::OutRecord;
use highlights_core::BroadcasterId;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::batcher::{Batcher, Pending};
use crate::irc_client::ChatEvent;
use crate::metrics::Counters;

/// Per entry: `None` when stored, else the error code (it will be sent again).
pub type EntryResults = Vec<Option<String>>;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// The port for one PutRecords call.
pub trait RecordSink: Send + Sync + 'static {
    fn put(&self, records: &[&OutRecord]) -> impl Future<Output = Result<EntryResults, SinkError>> + Send;
    /// Twitch confirmed that `channel` is room `broadcaster_id`. Nothing to do in the cloud (the
    /// lifecycle path names channels there); `highlights dev` records the login for its site.
    fn joined(&self, _channel: &str, _broadcaster_id: BroadcasterId) {}
}

/// The Kinesis stream `chat-messages` (feature `fargate`).
#[cfg(feature = "fargate")]
pub struct KinesisSink {
    pub client: aws_sdk_kinesis::Client,
    pub stream: String,
}

#[cfg(feature = "fargate")]
impl RecordSink for KinesisSink {
    async fn put(&self, records: &[&OutRecord]) -> Result<EntryResults, SinkError> {
        highlights_adapters::kinesis_out::put_once(&self.client, &self.stream, records)
            .await
            .map_err(|e| SinkError(e.to_string()))
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ProducerSettings {
    pub flush_every: Duration,
    pub max_buffer_bytes: usize,
    /// After SIGTERM: how long to keep sending what is buffered.
    pub drain_deadline: Duration,
}

impl Default for ProducerSettings {
    fn default() -> Self {
        Self {
            flush_every: Duration::from_millis(250),
            max_buffer_bytes: 256 * 1024 * 1024,
            drain_deadline: Duration::from_secs(20),
        }
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Messages still buffered at the deadline (lost).
    pub unsent_messages: usize,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A PutRecords call on its way: it owns its records, so chat keeps flowing into the batcher
/// while Kinesis answers.
type InFlight = Pin<Box<dyn Future<Output = (Vec<Pending>, Result<EntryResults, SinkError>)> + Send>>;

fn start_call<S: RecordSink>(sink: &Arc<S>, batcher: &mut Batcher) -> Option<(InFlight, usize)> {
    let call = batcher.next_call();
    if call.is_empty() {
        return None;
    }
    let messages = call.iter().map(|p| p.messages).sum();
    let sink = sink.clone();
    let future = Box::pin(async move {
        let records: Vec<&OutRecord> = call.iter().map(|p| &p.record).collect();
        let result = sink.put(&records).await;
        drop(records);
        (call, result)
    });
    Some((future, messages))
}

/// Runs until `shutdown` turns true (or `events` closes), takes what is still queued, then sends
/// what is buffered until the drain deadline. At most one PutRecords call is in flight, so a
/// broadcaster's records (one per call) are stored in order even when some are retried.
pub async fn run<S: RecordSink>(
    sink: Arc<S>,
    mut events: mpsc::Receiver<ChatEvent>,
    settings: ProducerSettings,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) -> DrainReport {
    let mut batcher = Batcher::new(settings.max_buffer_bytes);
    let mut backoff = PutRetryWait::default();
    let mut next_flush = Instant::now() + settings.flush_every;
    let mut in_flight: Option<(InFlight, usize)> = None;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(ChatEvent::Chat(chat)) => batcher.push(chat),
                Some(ChatEvent::Joined { broadcaster_id, channel }) => {
                    sink.joined(&channel, broadcaster_id);
                    batcher.joined(broadcaster_id, now_ms());
                }
                Some(ChatEvent::Parted { broadcaster_id, .. }) => batcher.parted(broadcaster_id),
                None => break,
            },
            // Intake stops: nothing new is accepted, what is queued is still received, then
            // `recv` answers `None`. (Closing here does not wait for every sender to go away.)
            _ = shutdown.wait_for(|stop| *stop), if !events.is_closed() => events.close(),
            _ = tokio::time::sleep_until(next_flush) => {
                batcher.seal(now_ms());
                next_flush = Instant::now() + settings.flush_every;
                if in_flight.is_none() && backoff.ready() {
                    in_flight = start_call(&sink, &mut batcher);
                }
            }
            (call, result) = async { (&mut in_flight.as_mut().expect("guarded by the condition").0).await },
                if in_flight.is_some() =>
            {
                in_flight = None;
                if finish_call(call, result, &mut batcher, &mut backoff, &counters) {
                    // Stored: what else is waiting goes out now, not at the next tick.
                    in_flight = start_call(&sink, &mut batcher);
                }
            }
        }
        counters.dropped.store(batcher.dropped(), Ordering::Relaxed);
        counters.buffer_depth.store(batcher.buffered_bytes() as u64, Ordering::Relaxed);
    }
    // Drain: the IRC side has stopped; send everything with the remaining time.
    batcher.seal(now_ms());
    let deadline = Instant::now() + settings.drain_deadline;
    let mut lost_in_flight = 0;
    loop {
        if in_flight.is_none() {
            if batcher.is_empty() || Instant::now() >= deadline {
                break;
            }
            if !backoff.ready() {
                tokio::time::sleep_until(backoff.until.min(deadline)).await;
                continue;
            }
            in_flight = start_call(&sink, &mut batcher);
        }
        let Some((call, messages)) = in_flight.take() else { break };
        match tokio::time::timeout_at(deadline, call).await {
            Ok((call, result)) => {
                finish_call(call, result, &mut batcher, &mut backoff, &counters);
            }
            Err(_) => {
                lost_in_flight = messages;
                break;
            }
        }
    }
    counters.buffer_depth.store(batcher.buffered_bytes() as u64, Ordering::Relaxed);
    let mut unsent = lost_in_flight;
    while batcher.pending_records() > 0 {
        unsent += batcher.next_call().iter().map(|p| p.messages).sum::<usize>();
    }
    DrainReport { unsent_messages: unsent }
}

/// Accounts for a call's answer; failed entries go back to the batcher. True when all were stored.
fn finish_call(
    call: Vec<Pending>,
    result: Result<EntryResults, SinkError>,
    batcher: &mut Batcher,
    backoff: &mut PutRetryWait,
    counters: &Counters,
) -> bool {
    match result {
        Ok(results) => {
            counters.kinesis_reachable.store(true, Ordering::Relaxed);
            let mut failed: Vec<Pending> = Vec::new();
            for (pending, result) in call.into_iter().zip(results.into_iter().chain(std::iter::repeat(None)))
            {
                match result {
                    None => {
                        counters.records_put.fetch_add(1, Ordering::Relaxed);
                        counters.messages_sent.fetch_add(pending.messages as u64, Ordering::Relaxed);
                    }
                    Some(code) => {
                        if code.contains("Throughput") || code.contains("Throttl") {
                            counters.throttled.fetch_add(1, Ordering::Relaxed);
                        } else {
                            counters.put_failures.fetch_add(1, Ordering::Relaxed);
                        }
                        failed.push(pending);
                    }
                }
            }
            if failed.is_empty() {
                backoff.reset();
                true
            } else {
                batcher.requeue(failed);
                backoff.fail();
                false
            }
        }
        Err(error) => {
            counters.kinesis_reachable.store(false, Ordering::Relaxed);
            counters.put_failures.fetch_add(call.len() as u64, Ordering::Relaxed);
            tracing::warn!(%error, records = call.len(), "PutRecords failed; will retry");
            batcher.requeue(call);
            backoff.fail();
            false
        }
    }
}

/// The pause schedule after failed calls: 200 ms doubling to 5 s, each wait between half and all
/// of it (jitter, so many ingesters throttled together do not retry together).
const PUT_BACKOFF: highlights_core::Backoff =
    highlights_core::Backoff::new(Duration::from_millis(200), Duration::from_secs(5));

/// When the next call may go, after consecutive failures.
#[derive(Debug)]
struct PutRetryWait {
    failures: u32,
    until: Instant,
}

impl Default for PutRetryWait {
    fn default() -> Self {
        Self { failures: 0, until: Instant::now() }
    }
}

impl PutRetryWait {
    fn ready(&self) -> bool {
        Instant::now() >= self.until
    }
    fn reset(&mut self) {
        self.failures = 0;
    }
    fn fail(&mut self) {
        self.failures = self.failures.saturating_add(1);
        // Jitter from the clock's low bits: no RNG dependency, different across tasks and times.
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        self.until = Instant::now() + PUT_BACKOFF.jittered(self.failures, u64::from(noise));
    }
}
