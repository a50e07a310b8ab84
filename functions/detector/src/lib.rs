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
//! Chat that resumes after [`NEW_STREAM_GAP_MS`] without a batch (the ingester joins only live
//! channels, so a new stream, or an ingester down that long) meets a fresh detector that keeps
//! the cooldown, as after the lifecycle function's reset of a new stream: in-band, so that a
//! state carried in a tumbling window never judges a new stream by the last one's chat. Counted
//! as `NewStreamResets`.
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

/// A broadcaster's chat resuming after this long without a batch starts a fresh detector (see
/// the module documentation). The ingester sends a batch per joined channel every second.
pub const NEW_STREAM_GAP_MS: i64 = 10 * 60 * 1000;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use aws_lambda_events::event::streams::KinesisEventResponse;
use futures::StreamExt as _;
use highlights_adapters::channel_settings::{
    CachedChannelSettings, ChannelSettingsStore, NoChannelSettings, SETTINGS_REFRESH,
};
use highlights_adapters::detector_state::{
    BrokenVersion, StateStore, StoreError, StoredState, sequence_after,
};
use highlights_adapters::highlights::HighlightOutbox;
use highlights_adapters::telemetry::{MetricRecord, Unit};
use highlights_core::{
    BroadcasterId, ChannelDetector, ChannelSettings, ChatBatch, Detection, DetectorConfig, Tally, wire,
};

pub mod window;

use window::{Carried, WindowState};

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
    /// Broadcasters whose chat resumed after a gap: a new stream, a fresh detector.
    pub new_stream_resets: u64,
    pub decode_errors: u64,
    /// Lifecycle events on the same stream (the starter profile): not chat, not malformed.
    pub lifecycle_records: u64,
    pub skipped_records: u64,
    pub failed_broadcasters: u64,
    /// Writes to the state table (conditional puts, including retried ones).
    pub state_writes: u64,
    /// Entries of a tumbling window's state map that could not be read.
    pub window_state_errors: u64,
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
            .count("NewStreamResets", self.new_stream_resets)
            .count("DecodeErrors", self.decode_errors)
            .count("LifecycleRecords", self.lifecycle_records)
            .count("FailedBroadcasters", self.failed_broadcasters)
            .count("StateWrites", self.state_writes)
            .metric("HandlerDuration", Unit::Milliseconds, self.duration_ms)
    }
}

impl InvocationReport {
    /// Counts a broadcaster's outcome; its failed record, if any, is returned for Lambda.
    fn add<'o>(&mut self, outcome: &'o BroadcasterOutcome) -> Option<&'o str> {
        self.tally.add(&outcome.tally);
        self.detections += outcome.detections;
        self.duplicate_detections += outcome.duplicates;
        self.state_conflicts += outcome.conflicts;
        self.state_writes += outcome.writes;
        self.skipped_records += outcome.skipped;
        self.state_resets += u64::from(outcome.reset);
        self.new_stream_resets += outcome.new_streams;
        if outcome.failed_at.is_some() {
            self.failed_broadcasters += 1;
        }
        outcome.failed_at.as_deref()
    }
}

/// The answer to a successful invocation with a tumbling window: the state map for the window's
/// next invocation (Lambda's `TimeWindowEventResponse`; no partial failures, see
/// [`DetectorHandler::handle_window`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WindowResponse {
    pub state: HashMap<String, String>,
}

/// The records of one invocation grouped by broadcaster, in order; malformed ones counted and
/// skipped (they never block the shard).
fn group_by_broadcaster<'e>(
    event: &'e KinesisEvent,
    report: &mut InvocationReport,
) -> Vec<(BroadcasterId, Vec<Applied<'e>>)> {
    let mut groups: Vec<(BroadcasterId, Vec<Applied<'_>>)> = Vec::new();
    let mut index: HashMap<BroadcasterId, usize> = HashMap::new();
    for record in &event.records {
        let sequence = record.kinesis.sequence_number.as_str();
        if wire::RecordKind::of(&record.kinesis.data.0) == wire::RecordKind::LifecycleEvent {
            report.lifecycle_records += 1;
            continue;
        }
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
    groups
}

/// Nothing was applied: hands the whole batch back from its first decodable record.
fn hand_back_everything(
    groups: &[(BroadcasterId, Vec<Applied<'_>>)],
    response: &mut KinesisEventResponse,
    report: &mut InvocationReport,
) {
    report.failed_broadcasters = groups.len() as u64;
    let first = groups.iter().flat_map(|(_, r)| r.first()).map(|r| r.sequence).min_by(|a, b| {
        if sequence_after(a, b) { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Less }
    });
    if let Some(first) = first {
        response.add_failure(first.to_owned());
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
    /// Writes to the state table.
    writes: u64,
    skipped: u64,
    reset: bool,
    new_streams: u64,
    /// The first unapplied sequence number, when the broadcaster failed.
    failed_at: Option<String>,
    /// The state written to the table, when one was.
    saved: Option<StoredState>,
}

impl BroadcasterOutcome {
    /// Takes what `advanced` did once its detections and state are safe.
    fn applied(&mut self, id: BroadcasterId, advanced: &Advanced<'_>) {
        self.reset = advanced.reset;
        self.new_streams = advanced.new_streams;
        self.tally = advanced.tally;
        log_detections(id, &advanced.detections);
    }
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
        let groups = group_by_broadcaster(event, &mut report);

        let ids: Vec<BroadcasterId> = groups.iter().map(|(id, _)| *id).collect();
        let mut response = KinesisEventResponse::default();
        let loaded = match self.states.load_many(&ids).await {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(%error, "cannot load detector state");
                hand_back_everything(&groups, &mut response, &mut report);
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
            if let Some(sequence) = report.add(&outcome) {
                response.add_failure(sequence.to_owned());
            }
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        (response, report)
    }

    /// Handles one invocation of a mapping with a tumbling window ([`window`]): each
    /// broadcaster's state comes from the window's map, or from the table at its first record in
    /// the window, and goes back in the returned map; the table is written only at the window's
    /// last invocation, or when the map outgrows [`window::STATE_BUDGET_BYTES`].
    ///
    /// `Err` when anything could not be read or written: the invocation must then fail as a
    /// whole, so that Lambda retries it with the same records and the same map. (A partial batch
    /// response would not do: the map it returns would have to match the records Lambda resends,
    /// which the documentation of tumbling windows does not pin down.) The report comes either
    /// way, for the metrics.
    pub async fn handle_window(
        &self,
        event: &KinesisTimeWindowEvent,
    ) -> (Result<WindowResponse, StoreError>, InvocationReport) {
        let started = Instant::now();
        let records = &event.kinesis_event;
        let properties = &event.time_window_properties;
        let mut report = InvocationReport { records: records.records.len(), ..InvocationReport::default() };
        let (mut window, errors) = WindowState::decode(&properties.state);
        for error in &errors {
            tracing::warn!(%error, "reading this broadcaster from the table instead");
        }
        report.window_state_errors = errors.len() as u64;
        let groups = group_by_broadcaster(records, &mut report);

        let missing: Vec<BroadcasterId> =
            groups.iter().map(|(id, _)| *id).filter(|id| !window.carried.contains_key(id)).collect();
        let loaded = if missing.is_empty() {
            HashMap::new()
        } else {
            match self.states.load_many(&missing).await {
                Ok(loaded) => loaded,
                Err(error) => {
                    tracing::error!(%error, "cannot load detector state");
                    report.failed_broadcasters = groups.len() as u64;
                    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                    return (Err(error), report);
                }
            }
        };

        let ids: Vec<BroadcasterId> = groups.iter().map(|(id, _)| *id).collect();
        let settings = self.channel_settings.settings_of(&ids).await;
        let work: Vec<_> = groups
            .iter()
            .map(|(id, records)| {
                let config = self.config_for(*id, settings.get(id));
                let carried =
                    window.carried.get(id).cloned().or_else(|| {
                        loaded.get(id).map(|state| Carried { state: state.clone(), dirty: false })
                    });
                self.apply_in_window(*id, config, records, carried)
            })
            .collect();
        let outcomes: Vec<(BroadcasterId, BroadcasterOutcome, Option<Carried>)> =
            futures::stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
        for (id, outcome, carried) in outcomes {
            report.add(&outcome);
            if let Some(carried) = carried {
                window.carried.insert(id, carried);
            }
        }
        if report.failed_broadcasters > 0 {
            report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            let error = StoreError::Unavailable("detections could not be recorded".into());
            return (Err(error), report);
        }

        let mut state = window.encode();
        let over_budget = WindowState::encoded_bytes(&state) > window::STATE_BUDGET_BYTES;
        if properties.is_final_invoke_for_window || over_budget {
            for carried in window.carried.values().filter(|c| c.dirty) {
                if let Err(error) = self.write_carried(carried, &mut report).await {
                    report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
                    return (Err(error), report);
                }
            }
            // A window's last map is dropped by Lambda; an oversized one is started afresh, its
            // broadcasters read from the table again at their next record.
            state = HashMap::new();
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        (Ok(WindowResponse { state }), report)
    }

    /// One broadcaster's records in a window: applied and their detections recorded, the state
    /// carried instead of written (an item whose version is broken is written at once, as
    /// without a window). The carried state is `None` only when there is none at all.
    async fn apply_in_window(
        &self,
        id: BroadcasterId,
        config: DetectorConfig,
        records: &[Applied<'_>],
        carried: Option<Carried>,
    ) -> (BroadcasterId, BroadcasterOutcome, Option<Carried>) {
        let stored = carried.as_ref().map(|c| &c.state);
        if stored.is_some_and(|s| s.broken.is_some()) {
            let mut outcome = self.apply_broadcaster(id, config, records, stored.cloned()).await;
            // The window goes on from what was written (the table's item now).
            let saved = outcome.saved.take().map(|state| Carried { state, dirty: false });
            return (id, outcome, saved.or(carried));
        }
        let mut outcome = BroadcasterOutcome::default();
        let advanced = match advance(id, config, records, stored) {
            Ok(advanced) => advanced,
            Err(skipped) => {
                outcome.skipped = skipped;
                return (id, outcome, carried);
            }
        };
        outcome.skipped = advanced.skipped;
        if let Err(failed_at) = self.record_detections(id, &advanced, &mut outcome).await {
            // The state stays as it came: Lambda retries from the failed record.
            outcome.failed_at = Some(failed_at);
            return (id, outcome, carried);
        }
        outcome.applied(id, &advanced);
        let state = StoredState { version: advanced.expected_version, ..advanced.next };
        (id, outcome, Some(Carried { state, dirty: true }))
    }

    /// Writes a carried state to the table. The write is
    /// conditional on the version the window read. On a conflict the item is read again: an item
    /// that is already this state (a retried last invocation wrote it) or that is further along
    /// the shard (another writer applied later records) is kept; a reset (a new stream: no
    /// detector blob) is kept as a reset; otherwise the carried state is written over it.
    async fn write_carried(
        &self,
        carried: &Carried,
        report: &mut InvocationReport,
    ) -> Result<(), StoreError> {
        let id = carried.state.broadcaster_id;
        let mut expected = carried.state.version;
        let mut next = StoredState { version: expected + 1, broken: None, ..carried.state.clone() };
        for _attempt in 0..=MAX_CONFLICT_RETRIES {
            report.state_writes += 1;
            match self.states.save(&next, expected).await {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict) => {
                    let Some(current) = self.states.load_many(&[id]).await?.remove(&id) else {
                        expected = 0;
                        next.version = 1;
                        continue;
                    };
                    let same = (&current.detector, &current.last_sequence, current.last_fire)
                        == (&next.detector, &next.last_sequence, next.last_fire);
                    let further = match (&current.last_sequence, &next.last_sequence) {
                        (Some(theirs), Some(ours)) => sequence_after(theirs, ours),
                        _ => false,
                    };
                    if current.broken.is_none() && (same || further) {
                        return Ok(());
                    }
                    report.state_conflicts += 1;
                    if current.detector.is_none() && current.broken.is_none() {
                        tracing::info!(
                            broadcaster_id = id,
                            "a new stream reset this detector during the window"
                        );
                        next.detector = None;
                    }
                    if let Some(broken) = &current.broken {
                        report.state_writes += 1;
                        return self.states.replace_broken(&next, broken).await;
                    }
                    expected = current.version;
                    next.version = expected + 1;
                }
                Err(error) => {
                    tracing::error!(broadcaster_id = id, %error, "cannot write the window's detector state");
                    return Err(error);
                }
            }
        }
        Err(StoreError::Conflict)
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
            let advanced = match advance(id, config, records, stored.as_ref()) {
                Ok(advanced) => advanced,
                Err(skipped) => {
                    outcome.skipped = skipped;
                    return outcome;
                }
            };
            outcome.skipped = advanced.skipped;
            first_unapplied = Some(advanced.first.to_owned());
            if let Err(failed_at) = self.record_detections(id, &advanced, &mut outcome).await {
                outcome.failed_at = Some(failed_at);
                return outcome;
            }
            let version = advanced.expected_version;
            outcome.writes += 1;
            let saved = match &advanced.broken {
                Some(broken) => self.states.replace_broken(&advanced.next, broken).await,
                None => self.states.save(&advanced.next, version).await,
            };
            match saved {
                Ok(()) => {
                    outcome.applied(id, &advanced);
                    outcome.saved = Some(advanced.next);
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
                            outcome.failed_at = Some(advanced.first.to_owned());
                            return outcome;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(broadcaster_id = id, %error, "cannot save detector state");
                    outcome.failed_at = Some(advanced.first.to_owned());
                    return outcome;
                }
            }
        }
        tracing::error!(broadcaster_id = id, "detector state kept conflicting; handing the records back");
        outcome.failed_at = first_unapplied;
        outcome
    }

    /// Writes the detections to the outbox. A detection counts once, where its conditional put
    /// succeeds: a retry after a failed save finds it there (a duplicate), so nothing is counted
    /// twice or lost. On failure, the first unapplied sequence number to hand back.
    async fn record_detections(
        &self,
        id: BroadcasterId,
        advanced: &Advanced<'_>,
        outcome: &mut BroadcasterOutcome,
    ) -> Result<(), String> {
        for detection in &advanced.detections {
            match self.outbox.record(detection).await {
                Ok(true) => outcome.detections += 1,
                Ok(false) => outcome.duplicates += 1,
                Err(error) => {
                    tracing::error!(broadcaster_id = id, %error, "cannot record a detection");
                    return Err(advanced.first.to_owned());
                }
            }
        }
        Ok(())
    }
}

/// One broadcaster's records applied to its state; nothing written yet.
struct Advanced<'r> {
    /// The state to write (version: `expected_version + 1`).
    next: StoredState,
    /// The version the write is conditional on.
    expected_version: u64,
    /// Set when the stored item's version is unusable: written by `replace_broken` instead.
    broken: Option<BrokenVersion>,
    detections: Vec<Detection>,
    tally: Tally,
    skipped: u64,
    /// A stored state was discarded (unreadable blob, junk sequence, broken version).
    reset: bool,
    /// Chat resumed after a gap this many times: a fresh detector each time.
    new_streams: u64,
    /// The first record applied now.
    first: &'r str,
}

/// Applies the records not yet applied to `stored` (or to a fresh detector); `Err(skipped)` when
/// every record was applied already.
fn advance<'r>(
    id: BroadcasterId,
    config: DetectorConfig,
    records: &'r [Applied<'_>],
    stored: Option<&StoredState>,
) -> Result<Advanced<'r>, u64> {
    let version = stored.map_or(0, |s| s.version);
    let broken = stored.and_then(|s| s.broken.clone());
    let stored_sequence = stored.and_then(|s| s.last_sequence.clone());
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
    let (mut detector, blob_reset) = restore(id, config, stored);
    let reset = blob_reset || broken.is_some() || stored_sequence != last_sequence;
    let pending: Vec<&'r Applied<'_>> = records
        .iter()
        .filter(|r| last_sequence.as_deref().is_none_or(|last| sequence_after(r.sequence, last)))
        .collect();
    let skipped = (records.len() - pending.len()) as u64;
    let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
        return Err(skipped);
    };
    let mut tally = Tally::default();
    let mut detections: Vec<Detection> = Vec::new();
    let mut new_streams = 0;
    for record in &pending {
        let resumed = record.batch.messages.first().map_or(record.batch.watermark_ms, |m| m.sent_at_ms);
        if detector.watermark_ms().is_some_and(|seen| resumed - seen > NEW_STREAM_GAP_MS) {
            detector = ChannelDetector::fresh_after(id, config, detector.last_fire());
            new_streams += 1;
        }
        detector.observe_batch(&record.batch, &mut tally, &mut detections);
    }
    let next = StoredState {
        broadcaster_id: id,
        version: version + 1,
        detector: Some(detector.encode_state()),
        last_sequence: Some(last.sequence.to_owned()),
        last_fire: detector.last_fire(),
        broken: None,
    };
    Ok(Advanced {
        next,
        expected_version: version,
        broken,
        detections,
        tally,
        skipped,
        reset,
        new_streams,
        first: first.sequence,
    })
}

fn log_detections(id: BroadcasterId, detections: &[Detection]) {
    for detection in detections {
        tracing::info!(
            broadcaster_id = id,
            peak_at = detection.peak_second,
            fired_at = detection.fired_second,
            intensity = detection.intensity,
            "highlight detected"
        );
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
