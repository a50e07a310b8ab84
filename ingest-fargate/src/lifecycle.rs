//! Which channels are live: polls Helix Get Streams for the monitored channels (configured,
//! `streamers.monitored` in Postgres, and optionally the top N live streams), turns changes into
//! `stream.online` / `stream.offline` events on Kinesis `stream-lifecycle` (partition key = the
//! broadcaster id), and tells the chat client to join live channels and part offline ones.
//!
//! A failed poll changes nothing (no channel is declared offline because Twitch did not answer);
//! events that Kinesis refused are kept and sent before the next poll's.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_adapters::kinesis_out::OutRecord;
use highlights_adapters::twitch_streams::{LiveStream, StreamsApi};
use highlights_core::model::{LifecycleEvent, StreamOffline, StreamOnline};
use tokio::sync::watch;

use crate::metrics::Counters;
use crate::producer::RecordSink;

/// Pauses between the quick retries of refused lifecycle records: 200, 400, 800 ms.
const SEND_BACKOFF: highlights_core::Backoff =
    highlights_core::Backoff::new(Duration::from_millis(200), Duration::from_millis(800));

/// The live streams last seen, by login. Pure: the poller feeds it what Helix said.
#[derive(Debug, Default)]
pub struct LiveState {
    live: HashMap<String, LiveStream>,
}

impl LiveState {
    /// Compares with the streams now live among the polled channels and returns the changes: a
    /// new or restarted stream (new stream id) is online; a stream no longer reported is offline.
    pub fn observe(&mut self, now_live: Vec<LiveStream>, now_ms: i64) -> Vec<LifecycleEvent> {
        let mut events = Vec::new();
        let mut seen = HashMap::with_capacity(now_live.len());
        for stream in now_live {
            let changed =
                self.live.get(&stream.login).is_none_or(|before| before.stream_id != stream.stream_id);
            if changed {
                events.push(LifecycleEvent::Online(StreamOnline {
                    broadcaster_id: stream.broadcaster_id,
                    broadcaster_login: stream.login.clone(),
                    broadcaster_name: stream.name.clone(),
                    stream_id: stream.stream_id.clone(),
                    title: stream.title.clone(),
                    game_id: stream.game_id.clone(),
                    game_name: stream.game_name.clone(),
                    started_at_ms: stream.started_at_ms,
                    viewer_count: stream.viewer_count,
                    observed_at_ms: now_ms,
                }));
            }
            seen.insert(stream.login.clone(), stream);
        }
        let mut gone: Vec<&LiveStream> =
            self.live.values().filter(|s| !seen.contains_key(&s.login)).collect();
        gone.sort_by(|a, b| a.login.cmp(&b.login));
        for stream in gone {
            events.push(LifecycleEvent::Offline(StreamOffline {
                broadcaster_id: stream.broadcaster_id,
                broadcaster_login: stream.login.clone(),
                observed_at_ms: now_ms,
            }));
        }
        self.live = seen;
        events
    }

    pub fn live_logins(&self) -> BTreeSet<String> {
        self.live.keys().cloned().collect()
    }
}

/// Where monitored channels come from besides the configured list.
pub trait ChannelSource: Send + Sync {
    fn monitored(&self) -> impl Future<Output = Result<BTreeSet<String>, String>> + Send;
}

/// No source: only the configured channels.
pub struct NoChannelSource;

impl ChannelSource for NoChannelSource {
    async fn monitored(&self) -> Result<BTreeSet<String>, String> {
        Ok(BTreeSet::new())
    }
}

#[cfg(feature = "fargate")]
impl ChannelSource for highlights_adapters::streamers::PgStreamers {
    async fn monitored(&self) -> Result<BTreeSet<String>, String> {
        self.monitored_logins().await.map(|logins| logins.into_iter().collect()).map_err(|e| e.to_string())
    }
}

pub struct PollerSettings {
    pub configured: BTreeSet<String>,
    /// Also watch the N most-watched live streams (0: none).
    pub top_n: usize,
    pub every: Duration,
}

pub struct Poller<A, C, S> {
    pub api: A,
    pub channels: C,
    pub sink: Arc<S>,
    pub settings: PollerSettings,
    pub counters: Arc<Counters>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl<A: StreamsApi, C: ChannelSource, S: RecordSink> Poller<A, C, S> {
    /// Polls until `shutdown`, publishing the live channels' logins on `join`.
    pub async fn run(&self, join: watch::Sender<BTreeSet<String>>, mut shutdown: watch::Receiver<bool>) {
        let mut state = LiveState::default();
        let mut unsent: Vec<OutRecord> = Vec::new();
        let mut monitored = BTreeSet::new();
        loop {
            self.poll_once(&mut state, &mut monitored, &mut unsent).await;
            let _ = join.send(state.live_logins());
            // ±10 % jitter so that many ingesters (or restarts) do not poll in step.
            let jitter = (now_ms().rem_euclid(200) - 100) as f64 / 1000.0;
            let wait = self.settings.every.mul_f64(1.0 + jitter);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One round: the monitored set, Get Streams, the events. Returns the events produced.
    pub async fn poll_once(
        &self,
        state: &mut LiveState,
        monitored: &mut BTreeSet<String>,
        unsent: &mut Vec<OutRecord>,
    ) -> Vec<LifecycleEvent> {
        match self.channels.monitored().await {
            Ok(set) => *monitored = set,
            Err(error) => {
                tracing::warn!(%error, "cannot read the monitored channels; using the last known set")
            }
        }
        let mut wanted: BTreeSet<String> = self.settings.configured.union(monitored).cloned().collect();
        if self.settings.top_n > 0 {
            match self.api.top(self.settings.top_n).await {
                Ok(top) => wanted.extend(top.into_iter().map(|s| s.login)),
                Err(error) => tracing::warn!(%error, "cannot read the top live streams"),
            }
        }
        let logins: Vec<String> = wanted.into_iter().collect();
        let live = match self.api.live(&logins).await {
            Ok(live) => live,
            Err(error) => {
                tracing::warn!(%error, channels = logins.len(), "Get Streams failed; live states unchanged");
                return Vec::new();
            }
        };
        let events = state.observe(live, now_ms());
        unsent.extend(events.iter().map(|event| OutRecord {
            partition_key: event.broadcaster_id().to_string(),
            data: serde_json::to_vec(event).expect("lifecycle events serialise"),
        }));
        self.send(unsent).await;
        events
    }

    /// Sends `unsent` (oldest first), keeping what Kinesis refused after a few quick retries.
    async fn send(&self, unsent: &mut Vec<OutRecord>) {
        for attempt in 0..4u32 {
            if unsent.is_empty() {
                return;
            }
            tokio::time::sleep(SEND_BACKOFF.after(attempt)).await;
            // One record per broadcaster per call keeps each channel's events in order.
            let mut seen = BTreeSet::new();
            let (call, later): (Vec<OutRecord>, Vec<OutRecord>) =
                std::mem::take(unsent).into_iter().partition(|r| seen.insert(r.partition_key.clone()));
            let refs: Vec<&OutRecord> = call.iter().collect();
            let results = match self.sink.put(&refs).await {
                Ok(results) => results,
                Err(error) => {
                    tracing::warn!(%error, "PutRecords to stream-lifecycle failed");
                    vec![Some(error.to_string()); call.len()]
                }
            };
            let mut failed = Vec::new();
            for (record, result) in call.into_iter().zip(results.into_iter().chain(std::iter::repeat(None))) {
                if result.is_some() {
                    failed.push(record);
                } else {
                    self.counters.lifecycle_events.fetch_add(1, Ordering::Relaxed);
                }
            }
            failed.extend(later);
            *unsent = failed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(login: &str, id: u64, stream_id: &str) -> LiveStream {
        LiveStream {
            broadcaster_id: id,
            login: login.into(),
            name: login.to_uppercase(),
            stream_id: stream_id.into(),
            title: "t".into(),
            game_id: "1".into(),
            game_name: "g".into(),
            started_at_ms: 1_000,
            viewer_count: 5,
        }
    }

    fn kinds(events: &[LifecycleEvent]) -> Vec<(String, u64)> {
        events
            .iter()
            .map(|e| match e {
                LifecycleEvent::Online(o) => (format!("online:{}", o.stream_id), o.broadcaster_id),
                LifecycleEvent::Offline(o) => ("offline".to_owned(), o.broadcaster_id),
            })
            .collect()
    }

    #[test]
    fn changes_become_events_and_repeats_do_not() {
        let mut state = LiveState::default();
        let first = state.observe(vec![stream("a", 1, "s1"), stream("b", 2, "s2")], 10);
        assert_eq!(kinds(&first), [("online:s1".into(), 1), ("online:s2".into(), 2)]);
        assert!(state.observe(vec![stream("a", 1, "s1"), stream("b", 2, "s2")], 20).is_empty());
        let third = state.observe(vec![stream("a", 1, "s9")], 30);
        assert_eq!(kinds(&third), [("online:s9".into(), 1), ("offline".into(), 2)]);
        assert_eq!(state.live_logins(), BTreeSet::from(["a".to_owned()]));
        assert_eq!(third[1].observed_at_ms(), 30);
    }
}
