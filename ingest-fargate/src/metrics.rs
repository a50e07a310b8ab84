//! The ingester's counters, shared by its tasks, and their periodic EMF record on stdout
//! (CloudWatch turns each line into metrics; counts are per interval, gauges are current).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use highlights_adapters::telemetry::{MetricRecord, Unit};

#[derive(Debug, Default)]
pub struct Counters {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub records_put: AtomicU64,
    pub put_failures: AtomicU64,
    pub throttled: AtomicU64,
    pub dropped: AtomicU64,
    pub malformed: AtomicU64,
    pub reconnects: AtomicU64,
    pub lifecycle_events: AtomicU64,
    /// Gauges.
    pub buffer_depth: AtomicU64,
    pub channels_joined: AtomicI64,
    /// Joined channels Twitch has not confirmed within the confirmation window (retrying).
    pub channels_unconfirmed: AtomicI64,
    /// Readiness: the IRC connection is logged in; the last PutRecords call answered.
    pub irc_connected: AtomicBool,
    pub kinesis_reachable: AtomicBool,
}

/// Counts since the previous snapshot (and current gauges).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub messages_received: u64,
    pub messages_sent: u64,
    pub records_put: u64,
    pub put_failures: u64,
    pub throttled: u64,
    pub dropped: u64,
    pub malformed: u64,
    pub reconnects: u64,
    pub lifecycle_events: u64,
    pub buffer_depth: u64,
    pub channels_joined: i64,
    pub channels_unconfirmed: i64,
    /// 1 when ready (IRC logged in, Kinesis answering), else 0: the "ingester not ready" alarm.
    pub ready: u64,
}

impl Counters {
    /// Totals since start (gauges as they are now).
    pub fn totals(&self) -> Snapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Snapshot {
            messages_received: get(&self.messages_received),
            messages_sent: get(&self.messages_sent),
            records_put: get(&self.records_put),
            put_failures: get(&self.put_failures),
            throttled: get(&self.throttled),
            dropped: get(&self.dropped),
            malformed: get(&self.malformed),
            reconnects: get(&self.reconnects),
            lifecycle_events: get(&self.lifecycle_events),
            buffer_depth: get(&self.buffer_depth),
            channels_joined: self.channels_joined.load(Ordering::Relaxed).max(0),
            channels_unconfirmed: self.channels_unconfirmed.load(Ordering::Relaxed).max(0),
            ready: u64::from(self.ready()),
        }
    }

    pub fn ready(&self) -> bool {
        self.irc_connected.load(Ordering::Relaxed) && self.kinesis_reachable.load(Ordering::Relaxed)
    }
}

impl Snapshot {
    /// The EMF record of the interval from `previous` to `self`.
    pub fn record_since(&self, previous: &Snapshot) -> MetricRecord {
        MetricRecord::new("Service", "ingest-fargate")
            .count("messages_received", self.messages_received - previous.messages_received)
            .count("messages_sent", self.messages_sent - previous.messages_sent)
            .count("records_put", self.records_put - previous.records_put)
            .count("put_failures", self.put_failures - previous.put_failures)
            .count("throttled", self.throttled - previous.throttled)
            .count("dropped", self.dropped - previous.dropped)
            .count("malformed_lines", self.malformed - previous.malformed)
            .count("reconnects", self.reconnects - previous.reconnects)
            .count("lifecycle_events", self.lifecycle_events - previous.lifecycle_events)
            .metric("buffer_depth", Unit::Count, self.buffer_depth as f64)
            .metric("channels_joined", Unit::Count, self.channels_joined as f64)
            .metric("channels_unconfirmed", Unit::Count, self.channels_unconfirmed as f64)
            .metric("ready", Unit::Count, self.ready as f64)
    }
}
