//! The chat ingester, the one always-on container (ECS Fargate): joins the monitored channels'
//! Twitch chat and writes it to Kinesis `chat-messages` as wire-format v1 batches, with a
//! watermark record per joined channel at least once a second.
//!
//! Layers: [`irc_client`] (the Twitch side), [`batcher`] (pure batching and the bounded
//! backlog), [`producer`] (the Kinesis side, behind the [`producer::RecordSink`] port),
//! [`health`] and [`metrics`]. `main.rs` only reads settings and wires these together.

pub mod batcher;
pub mod health;
pub mod irc_client;
pub mod lifecycle;
pub mod metrics;
pub mod producer;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::irc_client::ChatClient;
use crate::metrics::{Counters, Snapshot};
use crate::producer::{DrainReport, ProducerSettings, RecordSink};

/// Chat events in flight between the IRC reader and the batcher; beyond this the reader waits.
const EVENT_QUEUE: usize = 8192;

/// Runs the ingester until `shutdown` turns true, then stops reading chat, sends what it has
/// (within `producer.drain_deadline`) and returns.
pub async fn run<S: RecordSink>(
    chat: ChatClient,
    channels: watch::Receiver<BTreeSet<String>>,
    sink: Arc<S>,
    producer: ProducerSettings,
    shutdown: watch::Receiver<bool>,
) -> DrainReport {
    let counters = chat.counters.clone();
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let reader = {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { chat.run(channels, events_tx, shutdown).await })
    };
    let report = producer::run(sink, events_rx, producer, counters, shutdown).await;
    let _ = reader.await;
    report
}

/// Prints the ingester's EMF metrics records: each covers the counts since the previous one.
pub struct MetricsReporter {
    counters: Arc<Counters>,
    previous: std::sync::Mutex<Snapshot>,
}

impl MetricsReporter {
    pub fn new(counters: Arc<Counters>) -> Arc<Self> {
        let previous = std::sync::Mutex::new(counters.totals());
        Arc::new(Self { counters, previous })
    }

    /// Prints the record of the interval that ends now.
    pub fn emit(&self) {
        let mut previous = self.previous.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.counters.totals();
        now.record_since(&previous).emit();
        *previous = now;
    }

    /// Emits every `every` until the process ends (call [`MetricsReporter::emit`] once more at
    /// the very end, so the last interval, the drain included, is not lost).
    pub fn spawn(self: &Arc<Self>, every: Duration) {
        let reporter = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                reporter.emit();
            }
        });
    }
}
