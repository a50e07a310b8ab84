//! The detector handler: one Kinesis batch of `chat-messages` records in, highlight items and
//! saved detector state out, and a partial batch response.
//!
//! Flow per invocation: decode every record (a malformed one is counted, logged with its
//! sequence number and skipped: it never blocks the shard), group by broadcaster keeping order,
//! load the broadcasters' states in one batched read, and per broadcaster: skip records already
//! applied (the state remembers the last sequence number), advance the core detector, write each
//! detection to the outbox (conditional put: a replay never creates a second item), then save
//! the state with optimistic concurrency (on conflict: reload and reapply). Detections are
//! written before the state, so a crash in between only repeats idempotent puts.
//!
//! A state item that cannot be used heals instead of blocking the shard: an unreadable detector
//! blob (corrupt, an older format, other window settings) is replaced by a fresh detector that
//! keeps the cooldown (`last_fire` is also its own attribute), a junk `last_sequence` is
//! ignored, and an item whose `version` is missing or not a version is overwritten once, on the
//! condition that it is still broken that way. Each counts as a `state_resets`.
//!
//! A store failure for one broadcaster reports that broadcaster's first unapplied record as the
//! batch item failure: Lambda retries from there, other broadcasters skip what they applied.
//!
//! Each channel runs on the deployment's settings with its own (`highlights channel set`) over
//! them, read through a cache that refreshes each channel's once a minute; settings that cannot be
//! read or used leave the channel on what it had, never blocking the shard.
//!
//! Generic over the ports, so the Lambda (DynamoDB), the local runner (DynamoDB via the
//! emulator) and unit tests (in memory) run this same code.

use std::collections::HashMap;
use std::time::Instant;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use futures::StreamExt as _;
use highlights_adapters::channel_settings::{
    CachedChannelSettings, ChannelSettingsStore, NoChannelSettings, SETTINGS_REFRESH,
};
use highlights_adapters::detector_state::{StateStore, StoreError, StoredState, sequence_after};
use highlights_adapters::highlights::HighlightOutbox;
use highlights_adapters::telemetry::{MetricRecord, Unit};
use highlights_core::{
    BroadcasterId, ChannelDetector, ChannelSettings, ChatBatch, Detection, DetectorConfig, Tally, wire,
};

/// How often one broadcaster's save may conflict before the records are handed back to Lambda.
const MAX_CONFLICT_RETRIES: u32 = 5;
/// Broadcasters processed concurrently within one invocation.
const CONCURRENCY: usize = 16;

/// What one invocation did; becomes the EMF metrics line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationReport {
    pub records: usize,
    pub tally: Tally,
    /// Highlights written to the outbox by this invocation (conditional puts that succeeded).
    pub detections: u64,
    pub duplicate_detections: u64,
    pub state_conflicts: u64,
    /// Broadcasters whose saved state could not be used and was replaced by a fresh one.
    pub state_resets: u64,
    pub decode_errors: u64,
    pub skipped_records: u64,
    pub failed_broadcasters: u64,
    pub duration_ms: f64,
}

impl InvocationReport {
    pub fn metrics(&self) -> MetricRecord {
        MetricRecord::new("Function", "detector")
            .count("BatchSize", self.records as u64)
            .count("MessagesProcessed", self.tally.messages)
            .count("CommandsFiltered", self.tally.commands)
            .count("LateMessages", self.tally.late)
            .count("anomalies_detected", self.detections)
            .count("duplicate_detections", self.duplicate_detections)
            .count("skipped_records", self.skipped_records)
            .count("StateConflicts", self.state_conflicts)
            .count("state_resets", self.state_resets)
            .count("DecodeErrors", self.decode_errors)
            .count("FailedBroadcasters", self.failed_broadcasters)
            .metric("HandlerDuration", Unit::Milliseconds, self.duration_ms)
    }
}

/// One decoded record.
struct Applied<'a> {
    sequence: &'a str,
    batch: ChatBatch,
}

/// Result of one broadcaster's share of a batch.
#[derive(Default)]
struct BroadcasterOutcome {
    tally: Tally,
    detections: u64,
    duplicates: u64,
    conflicts: u64,
    skipped: u64,
    reset: bool,
    /// The first unapplied sequence number, when the broadcaster failed.
    failed_at: Option<String>,
}

pub struct DetectorHandler<S, O, C = NoChannelSettings> {
    config: DetectorConfig,
    states: S,
    outbox: O,
    channel_settings: CachedChannelSettings<C>,
}

impl<S: StateStore, O: HighlightOutbox> DetectorHandler<S, O> {
    /// A handler where every channel runs on `config`.
    pub fn new(config: DetectorConfig, states: S, outbox: O) -> Self {
        let channel_settings = CachedChannelSettings::new(NoChannelSettings, SETTINGS_REFRESH);
        Self { config, states, outbox, channel_settings }
    }
}

impl<S: StateStore, O: HighlightOutbox, C: ChannelSettingsStore> DetectorHandler<S, O, C> {
    /// The same handler, with each channel's own settings from `store` over `config`, read again
    /// once they are older than `refresh` ([`SETTINGS_REFRESH`] in production).
    pub fn with_channel_settings<D: ChannelSettingsStore>(
        self,
        store: D,
        refresh: std::time::Duration,
    ) -> DetectorHandler<S, O, D> {
        let Self { config, states, outbox, .. } = self;
        DetectorHandler {
            config,
            states,
            outbox,
            channel_settings: CachedChannelSettings::new(store, refresh),
        }
    }

    pub fn channel_settings(&self) -> &C {
        self.channel_settings.store()
    }

    /// The detector settings of one channel: the deployment's, with the channel's own over them.
    /// Settings that do not make a valid whole (an item edited by hand) are ignored, loudly:
    /// detection goes on with the deployment's.
    fn config_for(&self, id: BroadcasterId, settings: Option<&ChannelSettings>) -> DetectorConfig {
        let Some(settings) = settings.filter(|s| !s.is_empty()) else { return self.config };
        settings.apply(&self.config).unwrap_or_else(|error| {
            tracing::warn!(broadcaster_id = id, %error, "ignoring this channel's settings");
            self.config
        })
    }

    pub fn states(&self) -> &S {
        &self.states
    }

    pub fn outbox(&self) -> &O {
        &self.outbox
    }

    /// Handles one invocation: returns the partial batch response and what happened.
    pub async fn handle(&self, event: &KinesisEvent) -> (KinesisEventResponse, InvocationReport) {
        let started = Instant::now();
        let mut report = InvocationReport { records: event.records.len(), ..InvocationReport::default() };

        let mut groups: Vec<(BroadcasterId, Vec<Applied<'_>>)> = Vec::new();
        let mut index: HashMap<BroadcasterId, usize> = HashMap::new();
        for record in &event.records {
            let sequence = record.kinesis.sequence_number.as_str();
            match wire::decode(&record.kinesis.data.0) {
                Ok(batch) => {
                    let slot = *index.entry(batch.broadcaster_id).or_insert_with(|| {
                        groups.push((batch.broadcaster_id, Vec::new()));
                        groups.len() - 1
                    });
                    groups[slot].1.push(Applied { sequence, batch });
                }
                Err(error) => {
                    report.decode_errors += 1;
                    tracing::warn!(sequence_number = sequence, partition_key = %record.kinesis.partition_key, %error, "skipping a malformed chat record");
                }
            }
        }

        let ids: Vec<BroadcasterId> = groups.iter().map(|(id, _)| *id).collect();
        let mut response = KinesisEventResponse::default();
        let loaded = match self.states.load_many(&ids).await {
            Ok(loaded) => loaded,
            Err(error) => {
                // Nothing was applied: hand the whole batch back from its first decodable record.
                tracing::error!(%error, "cannot load detector state");
                report.failed_broadcasters = groups.len() as u64;
                if let Some(first) =
                    groups.iter().flat_map(|(_, r)| r.first()).map(|r| r.sequence).min_by(|a, b| {
                        if sequence_after(a, b) {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    })
                {
                    response.add_failure(first.to_owned());
                }
                report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                return (response, report);
            }
        };

        let settings = self.channel_settings.settings_of(&ids).await;
        // The futures are built before streaming them: a closure inside the stream would make
        // the handler's future not provably `Send`.
        let work: Vec<_> = groups
            .iter()
            .map(|(id, records)| {
                let config = self.config_for(*id, settings.get(id));
                self.apply_broadcaster(*id, config, records, loaded.get(id).cloned())
            })
            .collect();
        let outcomes: Vec<BroadcasterOutcome> =
            futures::stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
        for outcome in outcomes {
            report.tally.add(&outcome.tally);
            report.detections += outcome.detections;
            report.duplicate_detections += outcome.duplicates;
            report.state_conflicts += outcome.conflicts;
            report.skipped_records += outcome.skipped;
            report.state_resets += u64::from(outcome.reset);
            if let Some(sequence) = outcome.failed_at {
                report.failed_broadcasters += 1;
                response.add_failure(sequence);
            }
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        (response, report)
    }

    async fn apply_broadcaster(
        &self,
        id: BroadcasterId,
        config: DetectorConfig,
        records: &[Applied<'_>],
        mut stored: Option<StoredState>,
    ) -> BroadcasterOutcome {
        let mut outcome = BroadcasterOutcome::default();
        let mut first_unapplied = None;
        for _attempt in 0..=MAX_CONFLICT_RETRIES {
            let version = stored.as_ref().map_or(0, |s| s.version);
            let broken = stored.as_ref().and_then(|s| s.broken.clone());
            let stored_sequence = stored.as_ref().and_then(|s| s.last_sequence.clone());
            let last_sequence = stored_sequence.clone().filter(|s| is_sequence_number(s));
            if let Some(junk) = stored_sequence.as_ref().filter(|s| !is_sequence_number(s)) {
                tracing::warn!(broadcaster_id = id, last_sequence = %junk, "ignoring a stored sequence number that is not one");
            }
            if let Some(broken) = &broken {
                tracing::warn!(
                    broadcaster_id = id,
                    ?broken,
                    "the stored state's version is unusable; replacing the item"
                );
            }
            let (mut detector, blob_reset) = restore(id, config, stored.as_ref());
            let reset = blob_reset || broken.is_some() || stored_sequence != last_sequence;
            let pending: Vec<&Applied<'_>> = records
                .iter()
                .filter(|r| last_sequence.as_deref().is_none_or(|last| sequence_after(r.sequence, last)))
                .collect();
            outcome.skipped = (records.len() - pending.len()) as u64;
            let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                return outcome;
            };
            first_unapplied = Some(first.sequence.to_owned());
            let mut tally = Tally::default();
            let mut detections: Vec<Detection> = Vec::new();
            for record in &pending {
                detector.observe_batch(&record.batch, &mut tally, &mut detections);
            }
            // A detection counts once, where its conditional put succeeds: a retry after a failed
            // save finds it there (a duplicate), so nothing is counted twice or lost.
            for detection in &detections {
                match self.outbox.record(detection).await {
                    Ok(true) => outcome.detections += 1,
                    Ok(false) => outcome.duplicates += 1,
                    Err(error) => {
                        tracing::error!(broadcaster_id = id, %error, "cannot record a detection");
                        outcome.failed_at = Some(first.sequence.to_owned());
                        return outcome;
                    }
                }
            }
            let next = StoredState {
                broadcaster_id: id,
                version: version + 1,
                detector: Some(detector.encode_state()),
                last_sequence: Some(last.sequence.to_owned()),
                last_fire: detector.last_fire(),
                broken: None,
            };
            let saved = match &broken {
                Some(broken) => self.states.replace_broken(&next, broken).await,
                None => self.states.save(&next, version).await,
            };
            match saved {
                Ok(()) => {
                    outcome.reset = reset;
                    for detection in &detections {
                        tracing::info!(
                            broadcaster_id = id,
                            peak_at = detection.peak_second,
                            fired_at = detection.fired_second,
                            intensity = detection.intensity,
                            "highlight detected"
                        );
                    }
                    outcome.tally = tally;
                    return outcome;
                }
                Err(StoreError::Conflict) => {
                    outcome.conflicts += 1;
                    tracing::warn!(
                        broadcaster_id = id,
                        version,
                        "detector state changed meanwhile; reloading"
                    );
                    match self.states.load_many(&[id]).await {
                        Ok(mut reloaded) => stored = reloaded.remove(&id),
                        Err(error) => {
                            tracing::error!(broadcaster_id = id, %error, "cannot reload detector state");
                            outcome.failed_at = Some(first.sequence.to_owned());
                            return outcome;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(broadcaster_id = id, %error, "cannot save detector state");
                    outcome.failed_at = Some(first.sequence.to_owned());
                    return outcome;
                }
            }
        }
        tracing::error!(broadcaster_id = id, "detector state kept conflicting; handing the records back");
        outcome.failed_at = first_unapplied;
        outcome
    }
}

/// The saved detector, or a fresh one (keeping the cooldown) when there is none, it was reset,
/// or it cannot be restored; and whether a saved one was discarded.
fn restore(
    id: BroadcasterId,
    config: DetectorConfig,
    stored: Option<&StoredState>,
) -> (ChannelDetector, bool) {
    let last_fire = stored.and_then(|s| s.last_fire);
    match stored.and_then(|s| s.detector.as_deref()) {
        None => (ChannelDetector::fresh_after(id, config, last_fire), false),
        Some(bytes) => match ChannelDetector::decode_state(id, config, bytes) {
            Ok(detector) => (detector, false),
            Err(error) => {
                tracing::warn!(broadcaster_id = id, %error, "starting this broadcaster afresh, keeping its cooldown");
                (ChannelDetector::fresh_after(id, config, last_fire), true)
            }
        },
    }
}

/// Kinesis sequence numbers are decimal digits; anything else was not written by us.
fn is_sequence_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests;
