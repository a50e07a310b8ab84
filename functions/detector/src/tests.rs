//! Handler tests with in-memory ports (the same scenarios run against the emulator in
//! `runner/tests`).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use highlights_adapters::channel_settings::{ChannelEntry, MemoryChannelSettings};
use highlights_adapters::detector_state::{BrokenVersion, MemoryStateStore};
use highlights_adapters::highlights::MemoryHighlights;
use highlights_adapters::lambda_events::{KinesisRecordIn, kinesis_event};
use highlights_core::{ChatMessage, Detector};

use super::*;

const START_S: i64 = 1_700_000_000;

/// One batch per second for `id`: `counts[i]` messages in second `START_S + i`, watermark at
/// the end of the second.
fn chat(id: BroadcasterId, counts: &[u32]) -> Vec<ChatBatch> {
    counts
        .iter()
        .enumerate()
        .map(|(offset, &count)| {
            let second = START_S + offset as i64;
            ChatBatch {
                broadcaster_id: id,
                watermark_ms: second * 1000 + 999,
                messages: (0..count)
                    .map(|j| ChatMessage::new(second * 1000 + i64::from(j) * 1000 / i64::from(count), "KEKW"))
                    .collect(),
            }
        })
        .collect()
}

fn quiet_then_burst(burst_at: usize) -> Vec<u32> {
    let mut counts: Vec<u32> = (0..700).map(|i| [1, 2, 0, 3, 1][i % 5]).collect();
    for slot in &mut counts[burst_at..burst_at + 6] {
        *slot = 60;
    }
    for slot in &mut counts[burst_at + 200..burst_at + 205] {
        *slot = 70;
    }
    counts
}

/// Interleaves the broadcasters' batches second by second, as one shard would carry them.
fn shard(channels: &[Vec<ChatBatch>]) -> Vec<KinesisRecordIn> {
    let mut records = Vec::new();
    let longest = channels.iter().map(Vec::len).max().unwrap_or(0);
    for second in 0..longest {
        for batches in channels {
            if let Some(batch) = batches.get(second) {
                records.push(KinesisRecordIn {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: (1000 + records.len()).to_string(),
                    partition_key: batch.broadcaster_id.to_string(),
                    data: wire::encode(batch),
                    approximate_arrival_s: (START_S + second as i64) as f64,
                });
            }
        }
    }
    records
}

fn event(records: &[KinesisRecordIn]) -> KinesisEvent {
    kinesis_event("arn:aws:kinesis:us-east-1:000000000000:stream/chat-messages", "us-east-1", records)
}

fn expected(channels: &[Vec<ChatBatch>]) -> Vec<Detection> {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut out = Vec::new();
    let mut tally = Tally::default();
    for batch in channels.iter().flatten() {
        detector.observe_batch(batch, &mut tally, &mut out);
    }
    sorted(out)
}

fn sorted(mut detections: Vec<Detection>) -> Vec<Detection> {
    detections.sort_by_key(|d| (d.broadcaster_id, d.peak_second));
    detections
}

fn failures(response: &KinesisEventResponse) -> Vec<String> {
    response.batch_item_failures.iter().filter_map(|f| f.item_identifier.clone()).collect()
}

/// Plays Lambda's event-source mapping: batches of `size`, and on a partial failure the next
/// batch starts at the lowest failed sequence number.
async fn drive<S: StateStore, O: HighlightOutbox, C: ChannelSettingsStore>(
    handler: &DetectorHandler<S, O, C>,
    records: &[KinesisRecordIn],
    size: usize,
) -> Vec<InvocationReport> {
    let mut reports = Vec::new();
    let mut at = 0;
    let mut attempts = 0;
    while at < records.len() {
        let end = (at + size).min(records.len());
        let (response, report) = handler.handle(&event(&records[at..end])).await;
        reports.push(report);
        match failures(&response)
            .iter()
            .map(|s| records.iter().position(|r| &r.sequence_number == s).unwrap())
            .min()
        {
            Some(failed) => {
                attempts += 1;
                assert!(attempts < 20, "the same records keep failing");
                at = failed;
            }
            None => at = end,
        }
    }
    reports
}

fn two_channels() -> Vec<Vec<ChatBatch>> {
    vec![chat(11, &quiet_then_burst(320)), chat(22, &quiet_then_burst(400))]
}

fn own_settings(id: BroadcasterId, settings: ChannelSettings) -> ChannelEntry {
    ChannelEntry { broadcaster_id: id, login: format!("channel{id}"), settings, updated_at_ms: 1 }
}

/// What the core detector finds in `batches` with `config`.
fn expected_with(config: DetectorConfig, batches: &[ChatBatch]) -> Vec<Detection> {
    let mut detector = Detector::new(config);
    let (mut out, mut tally) = (Vec::new(), Tally::default());
    for batch in batches {
        detector.observe_batch(batch, &mut tally, &mut out);
    }
    detector.finish(&mut out);
    sorted(out)
}

#[tokio::test]
async fn each_channel_runs_on_its_own_settings_and_the_others_on_the_deployments() {
    let channels = two_channels();
    // Channel 11 asks for a cooldown long enough to swallow its second burst; 22 sets nothing.
    let long_cooldown = ChannelSettings { cooldown_seconds: Some(400), ..ChannelSettings::default() };
    let config = long_cooldown.apply(&DetectorConfig::default()).unwrap();
    let mut want = expected_with(config, &channels[0]);
    want.extend(expected_with(DetectorConfig::default(), &channels[1]));
    let want = sorted(want);
    assert_eq!(want.iter().filter(|d| d.broadcaster_id == 11).count(), 1, "{want:?}");
    assert_eq!(want.iter().filter(|d| d.broadcaster_id == 22).count(), 2, "{want:?}");

    let settings = MemoryChannelSettings::default();
    settings.put(&own_settings(11, long_cooldown)).await.unwrap();
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    )
    .with_channel_settings(settings, SETTINGS_REFRESH);
    drive(&handler, &shard(&channels), 50).await;
    assert_eq!(sorted(handler.outbox().all()), want);
}

#[tokio::test]
async fn a_change_applies_at_the_next_read_without_losing_the_baseline() {
    let channels = vec![chat(11, &quiet_then_burst(320))];
    let records = shard(&channels);
    let settings = MemoryChannelSettings::default();
    // Insensitive at first: nothing fires during the first half.
    settings
        .put(&own_settings(11, ChannelSettings { k: Some(1e9), ..ChannelSettings::default() }))
        .await
        .unwrap();
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    )
    .with_channel_settings(settings, std::time::Duration::ZERO);
    let half = records.iter().position(|r| r.approximate_arrival_s >= (START_S + 450) as f64).unwrap();
    drive(&handler, &records[..half], 50).await;
    assert!(handler.outbox().all().is_empty(), "the first burst is below the channel's own threshold");
    // Back to the deployment's: the second burst fires, scored against the baseline kept so far.
    handler.channel_settings().remove(11).await.unwrap();
    let reports = drive(&handler, &records[half..], 50).await;
    assert_eq!(reports.iter().map(|r| r.state_resets).sum::<u64>(), 0, "the state was kept");
    let all_default = expected(&channels);
    let second = all_default.iter().filter(|d| d.peak_second >= START_S + 450).copied().collect::<Vec<_>>();
    assert_eq!(sorted(handler.outbox().all()), second);
}

#[tokio::test]
async fn unusable_or_unreadable_settings_never_stop_detection() {
    let channels = two_channels();
    let settings = MemoryChannelSettings::default();
    // A negative threshold, as an item edited by hand could hold: the deployment's settings run.
    settings
        .put(&own_settings(11, ChannelSettings { k: Some(-1.0), ..ChannelSettings::default() }))
        .await
        .unwrap();
    settings.set_down(true);
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    )
    .with_channel_settings(settings, std::time::Duration::ZERO);
    let records = shard(&channels);
    drive(&handler, &records[..400], 50).await;
    handler.channel_settings().set_down(false);
    drive(&handler, &records[400..], 50).await;
    assert_eq!(sorted(handler.outbox().all()), expected(&channels));
    assert!(handler.channel_settings().reads() > 1);
}

#[tokio::test]
async fn detections_match_the_core_detector_across_many_invocations() {
    let channels = two_channels();
    let want = expected(&channels);
    assert_eq!(want.len(), 4, "{want:?}");
    for size in [1, 7, 100, 10_000] {
        let handler = DetectorHandler::new(
            DetectorConfig::default(),
            MemoryStateStore::default(),
            MemoryHighlights::default(),
        );
        let reports = drive(&handler, &shard(&channels), size).await;
        assert_eq!(sorted(handler.outbox().all()), want, "batch size {size}");
        assert_eq!(reports.iter().map(|r| r.detections).sum::<u64>(), 4);
        let messages: u64 = channels.iter().flatten().map(|b| b.messages.len() as u64).sum();
        assert_eq!(reports.iter().map(|r| r.tally.messages).sum::<u64>(), messages);
    }
}

#[tokio::test]
async fn a_redelivered_batch_changes_nothing() {
    let channels = two_channels();
    let records = shard(&channels);
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    );
    let (response, first) = handler.handle(&event(&records[..900])).await;
    assert!(failures(&response).is_empty());
    let state_before = (handler.states().get(11), handler.states().get(22));
    let highlights_before = handler.outbox().all();
    let (response, again) = handler.handle(&event(&records[..900])).await;
    assert!(failures(&response).is_empty());
    assert_eq!((handler.states().get(11), handler.states().get(22)), state_before);
    assert_eq!(handler.outbox().all(), highlights_before);
    assert_eq!(again.skipped_records, 900);
    assert_eq!((again.detections, again.tally.messages), (0, 0));
    assert!(first.detections > 0);
}

/// `records` with a record of `data` after each position `at` (a copy of the one there), the
/// sequence numbers renumbered to stay increasing.
fn with_inserted(mut records: Vec<KinesisRecordIn>, inserts: &[(usize, Vec<u8>)]) -> Vec<KinesisRecordIn> {
    for (at, data) in inserts.iter().rev() {
        let mut inserted = records[*at].clone();
        inserted.data = data.clone();
        records.insert(at + 1, inserted);
    }
    for (i, record) in records.iter_mut().enumerate() {
        record.sequence_number = (1000 + i).to_string();
    }
    records
}

fn memory_handler() -> DetectorHandler<MemoryStateStore, MemoryHighlights> {
    DetectorHandler::new(DetectorConfig::default(), MemoryStateStore::default(), MemoryHighlights::default())
}

#[tokio::test]
async fn poison_records_are_counted_and_skipped() {
    let channels = two_channels();
    let records =
        with_inserted(shard(&channels), &[(5, vec![]), (400, vec![9, 9, 9]), (700, vec![1, 0, 7, 0, 200])]);
    let handler = memory_handler();
    let reports = drive(&handler, &records, 100).await;
    assert_eq!(reports.iter().map(|r| r.decode_errors).sum::<u64>(), 3);
    assert!(reports.iter().all(|r| r.failed_broadcasters == 0));
    assert_eq!(sorted(handler.outbox().all()), expected(&channels));
}

#[tokio::test]
async fn lifecycle_events_on_the_chat_stream_are_skipped_without_counting_as_malformed() {
    // The starter profile carries the lifecycle events on the chat stream.
    let channels = two_channels();
    let event = br#"{"type":"stream.offline","broadcaster_id":"11","observed_at_ms":5}"#.to_vec();
    let records = with_inserted(shard(&channels), &[(3, event.clone()), (300, event.clone()), (600, event)]);
    let handler = memory_handler();
    let reports = drive(&handler, &records, 100).await;
    assert_eq!(reports.iter().map(|r| r.lifecycle_records).sum::<u64>(), 3);
    assert_eq!(reports.iter().map(|r| r.decode_errors).sum::<u64>(), 0);
    assert_eq!(sorted(handler.outbox().all()), expected(&channels), "the same detections as without them");
}

/// Fails the calls whose (1-based) numbers are in `fail` (outbox records, state saves) as
/// unavailable; or, with `twin_wins`, a failing save as a conflict caused by a twin invocation
/// that saved the same state first (then the store itself rejects the handler's conditional
/// write).
struct Injected<T> {
    inner: T,
    calls: AtomicUsize,
    fail: BTreeSet<usize>,
    twin_wins: bool,
}

impl<T> Injected<T> {
    fn new(inner: T, fail: impl IntoIterator<Item = usize>) -> Self {
        Self { inner, calls: AtomicUsize::new(0), fail: fail.into_iter().collect(), twin_wins: false }
    }
    fn twin_wins_save(inner: T, save: usize) -> Self {
        Self { twin_wins: true, ..Self::new(inner, [save]) }
    }
    fn fails_now(&self) -> bool {
        self.fail.contains(&(self.calls.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

impl<O: HighlightOutbox> HighlightOutbox for Injected<O> {
    async fn record(&self, detection: &Detection) -> Result<bool, StoreError> {
        if self.fails_now() {
            return Err(StoreError::Unavailable("injected".into()));
        }
        self.inner.record(detection).await
    }
}

impl<S: StateStore> StateStore for Injected<S> {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, StoredState>, StoreError> {
        self.inner.load_many(ids).await
    }
    async fn save(&self, state: &StoredState, expected_version: u64) -> Result<(), StoreError> {
        if self.fails_now() {
            if !self.twin_wins {
                return Err(StoreError::Unavailable("injected".into()));
            }
            self.inner.save(state, expected_version).await?;
        }
        self.inner.save(state, expected_version).await
    }
    async fn reset(&self, id: BroadcasterId) -> Result<(), StoreError> {
        self.inner.reset(id).await
    }
    async fn replace_broken(&self, state: &StoredState, broken: &BrokenVersion) -> Result<(), StoreError> {
        self.inner.replace_broken(state, broken).await
    }
}

#[tokio::test]
async fn a_failure_halfway_is_retried_from_the_failed_record() {
    let channels = two_channels();
    let records = shard(&channels);
    for fail_on in [1, 2, 3, 4] {
        let handler = DetectorHandler::new(
            DetectorConfig::default(),
            MemoryStateStore::default(),
            Injected::new(MemoryHighlights::default(), [fail_on]),
        );
        let reports = drive(&handler, &records, 50).await;
        assert_eq!(reports.iter().filter(|r| r.failed_broadcasters > 0).count(), 1, "outbox call {fail_on}");
        assert_eq!(sorted(handler.outbox().inner.all()), expected(&channels), "outbox call {fail_on}");
        assert_counted_once(&reports, expected(&channels).len());
    }
    for fail_on in [1, 10, 25] {
        let handler = DetectorHandler::new(
            DetectorConfig::default(),
            Injected::new(MemoryStateStore::default(), [fail_on]),
            MemoryHighlights::default(),
        );
        let reports = drive(&handler, &records, 50).await;
        assert_eq!(reports.iter().filter(|r| r.failed_broadcasters > 0).count(), 1);
        assert_eq!(sorted(handler.outbox().all()), expected(&channels), "save {fail_on}");
        assert_counted_once(&reports, expected(&channels).len());
    }
}

#[tokio::test]
async fn a_conflicting_twin_invocation_is_reconciled() {
    let channels = two_channels();
    let records = shard(&channels);
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        Injected::twin_wins_save(MemoryStateStore::default(), 13),
        MemoryHighlights::default(),
    );
    let reports = drive(&handler, &records, 50).await;
    assert_eq!(reports.iter().map(|r| r.state_conflicts).sum::<u64>(), 1);
    assert!(reports.iter().all(|r| r.failed_broadcasters == 0));
    assert_eq!(sorted(handler.outbox().all()), expected(&channels));
    assert_counted_once(&reports, expected(&channels).len());
}

/// The metrics the invocations emitted count every highlight exactly once, whatever was retried.
fn assert_counted_once(reports: &[InvocationReport], highlights: usize) {
    let emitted = |name: &str| -> f64 {
        reports
            .iter()
            .map(|r| {
                let line = r.metrics().to_json(0);
                line[name].as_f64().unwrap_or_else(|| panic!("{name} not emitted: {line}"))
            })
            .sum()
    };
    assert_eq!(emitted("anomalies_detected"), highlights as f64, "anomalies_detected");
    let duplicates: u64 = reports.iter().map(|r| r.duplicate_detections).sum();
    assert_eq!(emitted("duplicate_detections"), duplicates as f64);
    let skipped: u64 = reports.iter().map(|r| r.skipped_records).sum();
    assert_eq!(emitted("skipped_records"), skipped as f64);
}

#[tokio::test]
async fn an_unreadable_state_store_hands_the_whole_batch_back() {
    struct Down;
    impl StateStore for Down {
        async fn load_many(
            &self,
            _: &[BroadcasterId],
        ) -> Result<HashMap<BroadcasterId, StoredState>, StoreError> {
            Err(StoreError::Unavailable("injected".into()))
        }
        async fn save(&self, _: &StoredState, _: u64) -> Result<(), StoreError> {
            unreachable!("nothing is saved when nothing could be loaded")
        }
        async fn replace_broken(&self, _: &StoredState, _: &BrokenVersion) -> Result<(), StoreError> {
            unreachable!("nothing is saved when nothing could be loaded")
        }
        async fn reset(&self, _: BroadcasterId) -> Result<(), StoreError> {
            Ok(())
        }
    }
    let records = shard(&two_channels());
    let handler = DetectorHandler::new(DetectorConfig::default(), Down, MemoryHighlights::default());
    let (response, report) = handler.handle(&event(&records[10..20])).await;
    assert_eq!(failures(&response), vec![records[10].sequence_number.clone()]);
    assert_eq!(report.failed_broadcasters, 2);
}

#[tokio::test]
async fn late_messages_and_commands_are_tallied() {
    let mut batches = chat(5, &[3, 3, 3, 3, 3, 3]);
    batches[5].messages.push(ChatMessage::new(START_S * 1000 + 10, "too late"));
    batches[5].messages.push(ChatMessage::new((START_S + 5) * 1000 + 10, "!uptime"));
    let records = shard(&[batches]);
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    );
    let (_, report) = handler.handle(&event(&records)).await;
    assert_eq!((report.tally.messages, report.tally.late, report.tally.commands), (20, 1, 1));
    let metrics = report.metrics().to_json(0);
    assert_eq!(metrics["LateMessages"], 1.0);
    assert_eq!(metrics["MessagesProcessed"], 20.0);
}

/// The same scenarios against DynamoDB in the local stack (`localstack/up`).
mod on_dynamodb {
    use std::path::Path;

    use highlights_adapters::channel_settings::DynamoChannelSettings;
    use highlights_adapters::detector_state::DynamoStateStore;
    use highlights_adapters::highlights::DynamoHighlights;
    use highlights_adapters::provision::{ProvisionOptions, provision};
    use highlights_adapters::resources::Resources;
    use highlights_adapters::stack_env::StackEnv;

    use super::*;

    async fn stores(name: &str) -> (DynamoStateStore, DynamoHighlights) {
        let (states, outbox, _) = stores_and_settings(name).await;
        (states, outbox)
    }

    async fn stores_and_settings(name: &str) -> (DynamoStateStore, DynamoHighlights, DynamoChannelSettings) {
        let stack =
            StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
        let sdk = highlights_adapters::aws::local(&stack.aws().unwrap()).await;
        let resources = Resources::defaults().with_suffix(&format!("{name}-{}", std::process::id()));
        provision(&sdk, &resources, &ProvisionOptions::default()).await.unwrap();
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        (
            DynamoStateStore::new(client.clone(), resources.detector_state_table.name),
            DynamoHighlights::new(client.clone(), resources.highlights_table.name),
            DynamoChannelSettings::new(client, resources.channel_settings_table.name),
        )
    }

    #[tokio::test]
    async fn channel_settings_in_the_table_reach_the_detector() {
        let (states, outbox, settings) = stores_and_settings("det-settings").await;
        let long_cooldown = ChannelSettings { cooldown_seconds: Some(400), ..ChannelSettings::default() };
        settings.put(&own_settings(11, long_cooldown)).await.unwrap();
        assert_eq!(settings.list().await.unwrap(), vec![own_settings(11, long_cooldown)]);
        let channels = two_channels();
        let config = long_cooldown.apply(&DetectorConfig::default()).unwrap();
        let mut want = expected_with(config, &channels[0]);
        want.extend(expected_with(DetectorConfig::default(), &channels[1]));
        let handler = DetectorHandler::new(DetectorConfig::default(), states, outbox)
            .with_channel_settings(settings, SETTINGS_REFRESH);
        drive(&handler, &shard(&channels), 100).await;
        assert_eq!(stored(&handler).await, sorted(want));
        assert!(handler.channel_settings().remove(11).await.unwrap());
        assert!(handler.channel_settings().list().await.unwrap().is_empty());
    }

    async fn stored(
        handler: &DetectorHandler<impl StateStore, DynamoHighlights, impl ChannelSettingsStore>,
    ) -> Vec<Detection> {
        let mut all = handler.outbox().list(11).await.unwrap();
        all.extend(handler.outbox().list(22).await.unwrap());
        sorted(all)
    }

    #[tokio::test]
    async fn detections_and_the_cooldown_hold_across_invocations() {
        let (states, outbox) = stores("det-many").await;
        let channels = two_channels();
        let handler = DetectorHandler::new(DetectorConfig::default(), states, outbox);
        drive(&handler, &shard(&channels), 25).await;
        assert_eq!(stored(&handler).await, expected(&channels));
        let saved = handler.states().load_many(&[11]).await.unwrap().remove(&11).unwrap();
        let size = saved.detector.as_ref().map_or(0, Vec::len);
        assert!(size > 0 && size < 2048, "state blob is {size} bytes");
    }

    #[tokio::test]
    async fn redelivery_changes_nothing_and_a_failure_is_retried() {
        let (states, outbox) = stores("det-redeliver").await;
        let channels = two_channels();
        let records = shard(&channels);
        let handler = DetectorHandler::new(DetectorConfig::default(), states, Injected::new(outbox, [2]));
        let (response, _) = handler.handle(&event(&records[..1000])).await;
        let failed = failures(&response);
        assert_eq!(failed.len(), 1, "the injected failure is reported");
        let before = handler.states().load_many(&[11, 22]).await.unwrap();
        // The same batch again (Lambda retries it): only the failed broadcaster moves.
        let (response, report) = handler.handle(&event(&records[..1000])).await;
        assert!(failures(&response).is_empty());
        assert!(report.skipped_records > 0);
        let after = handler.states().load_many(&[11, 22]).await.unwrap();
        let moved: Vec<_> = [11, 22].into_iter().filter(|id| before.get(id) != after.get(id)).collect();
        assert_eq!(moved.len(), 1, "only the broadcaster that failed was applied again");
        let (_, report) = handler.handle(&event(&records[..1000])).await;
        assert_eq!((report.detections, report.tally.messages, report.skipped_records), (0, 0, 1000));
        assert_eq!(handler.states().load_many(&[11, 22]).await.unwrap(), after);
        drive(&handler, &records[1000..], 100).await;
        let mut all = handler.outbox().inner.list(11).await.unwrap();
        all.extend(handler.outbox().inner.list(22).await.unwrap());
        assert_eq!(sorted(all), expected(&channels));
    }

    #[tokio::test]
    async fn a_state_item_that_cannot_be_used_heals_keeps_the_cooldown_and_never_blocks_the_shard() {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let stack =
            StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
        let sdk = highlights_adapters::aws::local(&stack.aws().unwrap()).await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        // The first burst (seconds 300–306) falls within 30 s of this last fire; the second (500) not.
        let last_fire = V::N((START_S + 295).to_string());
        let junk_blob = V::B(vec![9u8, 9, 9].into());
        // (name, the item's attributes besides its key, whether the stored cooldown applies)
        type Form = (&'static str, Vec<(&'static str, V)>, bool);
        let forms: [Form; 5] = [
            ("no-version", vec![("detector", junk_blob.clone()), ("last_fire", last_fire.clone())], true),
            ("text-version", vec![("version", V::S("abc".into())), ("last_fire", last_fire.clone())], true),
            (
                "negative-version",
                vec![("version", V::N("-3".into())), ("last_fire", last_fire.clone())],
                true,
            ),
            (
                "old-blob",
                vec![("version", V::N("4".into())), ("detector", junk_blob), ("last_fire", last_fire)],
                true,
            ),
            (
                "junk-sequence",
                vec![("version", V::N("2".into())), ("last_sequence", V::S("z".repeat(70)))],
                false,
            ),
        ];
        let channels = vec![chat(11, &quiet_then_burst(300))];
        for (name, attributes, cooling) in forms {
            let (states, outbox) = stores(&format!("det-heal-{name}")).await;
            let table = Resources::defaults()
                .with_suffix(&format!("det-heal-{name}-{}", std::process::id()))
                .detector_state_table
                .name;
            let mut item = client.put_item().table_name(&table).item("broadcaster_id", V::S("11".into()));
            for (attribute, value) in attributes {
                item = item.item(attribute, value);
            }
            item.send().await.unwrap();
            let handler = DetectorHandler::new(DetectorConfig::default(), states, outbox);
            let reports = drive(&handler, &shard(&channels), 100).await;
            assert!(reports.iter().all(|r| r.failed_broadcasters == 0), "{name}: the shard moved on");
            assert_eq!(reports.iter().map(|r| r.state_resets).sum::<u64>(), 1, "{name}: one reset");
            assert_eq!(reports.iter().map(|r| r.state_conflicts).sum::<u64>(), 0, "{name}");
            let saved = handler.states().load_many(&[11]).await.unwrap().remove(&11).unwrap();
            assert_eq!(saved.broken, None, "{name}: the item was repaired");
            let found = handler.outbox().list(11).await.unwrap();
            let peaks: Vec<i64> = found.iter().map(|d| d.peak_second - START_S).collect();
            if cooling {
                assert!(peaks.len() == 1 && peaks[0] >= 500, "{name}: the cooldown was kept: {peaks:?}");
            } else {
                assert_eq!(found, expected(&channels), "{name}");
            }
        }
    }

    /// The lifecycle consumer resets a channel's state when a new stream starts: a broken item
    /// must not make that fail (and dead-letter the event) until the detector repairs it.
    #[tokio::test]
    async fn a_new_stream_resets_a_broken_item_and_keeps_its_cooldown() {
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let stack =
            StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
        let client =
            aws_sdk_dynamodb::Client::new(&highlights_adapters::aws::local(&stack.aws().unwrap()).await);
        let broken_versions =
            [("missing", None), ("text", Some(V::S("abc".into()))), ("negative", Some(V::N("-3".into())))];
        for (name, version) in broken_versions {
            let (states, _) = stores(&format!("det-reset-{name}")).await;
            let table = Resources::defaults()
                .with_suffix(&format!("det-reset-{name}-{}", std::process::id()))
                .detector_state_table
                .name;
            let mut item = client
                .put_item()
                .table_name(&table)
                .item("broadcaster_id", V::S("12".into()))
                .item("detector", V::B(vec![9u8].into()))
                .item("last_fire", V::N("1234".into()))
                .item("last_sequence", V::S("77".into()));
            if let Some(version) = version {
                item = item.item("version", version);
            }
            item.send().await.unwrap();
            states.reset(12).await.unwrap_or_else(|e| panic!("{name}: {e}"));
            let reset = states.load_many(&[12]).await.unwrap().remove(&12).unwrap();
            assert_eq!(reset.broken, None, "{name}: repaired");
            assert_eq!(reset.detector, None, "{name}: the detector starts afresh");
            assert_eq!((reset.last_fire, reset.last_sequence.as_deref()), (Some(1234), Some("77")), "{name}");
            states.reset(12).await.unwrap();
            let again = states.load_many(&[12]).await.unwrap().remove(&12).unwrap();
            assert_eq!(again.version, reset.version + 1, "{name}: a later reset bumps the version as usual");
        }
    }

    #[tokio::test]
    async fn a_real_conditional_write_conflict_is_reconciled() {
        let (states, outbox) = stores("det-conflict").await;
        let channels = two_channels();
        // The 5th save is preceded by an identical save from a "twin" invocation, so DynamoDB
        // itself rejects the handler's conditional write.
        let handler =
            DetectorHandler::new(DetectorConfig::default(), Injected::twin_wins_save(states, 5), outbox);
        let reports = drive(&handler, &shard(&channels), 50).await;
        assert_eq!(reports.iter().map(|r| r.state_conflicts).sum::<u64>(), 1);
        assert_eq!(stored(&handler).await, expected(&channels));
    }
}

/// The detector with its state carried in a tumbling window (`handle_window`): Lambda's side is
/// played by [`WindowDriver`], with crashes, failed calls and redeliveries injected.
mod window_mode {
    use highlights_adapters::lambda_events::{WindowIn, kinesis_window_event};
    use proptest::prelude::*;

    use super::*;

    type Handler = DetectorHandler<Injected<MemoryStateStore>, Injected<MemoryHighlights>>;

    fn handler(fail_saves: BTreeSet<usize>, fail_records: BTreeSet<usize>) -> Handler {
        DetectorHandler::new(
            DetectorConfig::default(),
            Injected::new(MemoryStateStore::default(), fail_saves),
            Injected::new(MemoryHighlights::default(), fail_records),
        )
    }

    /// Lambda's event-source mapping with a tumbling window, as far as the handler can tell:
    /// batches of `batch` records, a window closing after every `window` batches (its last
    /// invocation flagged final), the state map passed from one invocation to the next, and an
    /// invocation that fails, or whose answer is lost (`crash_at`: the function died after doing
    /// its work), retried with the same records and the same map.
    struct WindowDriver {
        batch: usize,
        window: usize,
        crash_at: BTreeSet<usize>,
    }

    impl WindowDriver {
        async fn run<S: StateStore, O: HighlightOutbox>(
            &self,
            handler: &DetectorHandler<S, O>,
            records: &[KinesisRecordIn],
        ) -> Vec<InvocationReport> {
            let mut reports = Vec::new();
            let (mut at, mut invocations, mut in_window) = (0, 0, 0);
            let mut state = HashMap::new();
            let mut window_start = START_S;
            while at < records.len() {
                invocations += 1;
                assert!(invocations < 10 * records.len() + 100, "the same records keep failing");
                let end = (at + self.batch).min(records.len());
                let is_final = in_window + 1 == self.window || end == records.len();
                let window = WindowIn {
                    start_s: window_start,
                    end_s: window_start + 60,
                    state: state.clone(),
                    shard_id: "shardId-000000000000".into(),
                    is_final,
                    terminated_early: false,
                };
                let event = kinesis_window_event(
                    "arn:aws:kinesis:us-east-1:0:stream/chat",
                    "us-east-1",
                    &records[at..end],
                    &window,
                );
                let (answer, report) = handler.handle_window(&event).await;
                // The metrics line is printed before the answer goes back: it counts even when
                // the answer is lost.
                reports.push(report);
                if self.crash_at.contains(&invocations) {
                    continue; // the answer never reached Lambda: the same invocation again
                }
                let Ok(response) = answer else { continue };
                at = end;
                if is_final {
                    assert!(response.state.is_empty(), "a window's last invocation returns an empty map");
                    state = HashMap::new();
                    in_window = 0;
                    window_start += 60;
                } else {
                    state = response.state;
                    in_window += 1;
                }
            }
            reports
        }
    }

    fn detections_counted(reports: &[InvocationReport]) -> u64 {
        reports.iter().map(|r| r.detections).sum()
    }

    /// What the per-invocation handler leaves in the table for each broadcaster (the detector
    /// blob, the last sequence number and the cooldown), the reference for the window's writes.
    async fn reference_states(
        records: &[KinesisRecordIn],
    ) -> Vec<(Option<Vec<u8>>, Option<String>, Option<i64>)> {
        let reference = DetectorHandler::new(
            DetectorConfig::default(),
            MemoryStateStore::default(),
            MemoryHighlights::default(),
        );
        drive(&reference, records, 25).await;
        [11, 22]
            .iter()
            .map(|id| {
                let s = reference.states().get(*id).unwrap();
                (s.detector, s.last_sequence, s.last_fire)
            })
            .collect()
    }

    #[tokio::test]
    async fn in_a_window_too_chat_resuming_after_a_long_gap_meets_a_fresh_detector() {
        let (records, want) = new_stream_after_a_gap();
        let handler = handler(BTreeSet::new(), BTreeSet::new());
        let driver = WindowDriver { batch: 50, window: 7, crash_at: BTreeSet::from([3, 20]) };
        let reports = driver.run(&handler, &records).await;
        assert!(reports.iter().map(|r| r.new_stream_resets).sum::<u64>() >= 1);
        assert_eq!(sorted(handler.outbox().inner.all()), want);
    }

    #[tokio::test]
    async fn the_window_finds_what_the_core_finds_and_writes_each_state_once_per_window() {
        let channels = two_channels();
        let records = shard(&channels);
        let handler = handler(BTreeSet::new(), BTreeSet::new());
        let driver = WindowDriver { batch: 25, window: 24, crash_at: BTreeSet::new() };
        let reports = driver.run(&handler, &records).await;
        let want = expected(&channels);
        assert!(want.len() >= 4, "the scenario has bursts to find");
        assert_eq!(sorted(handler.outbox().inner.all()), want);
        assert_eq!(detections_counted(&reports), want.len() as u64);

        let invocations = reports.len() as u64;
        let windows = invocations.div_ceil(24);
        let writes: u64 = reports.iter().map(|r| r.state_writes).sum();
        assert_eq!(writes, 2 * windows, "one write per broadcaster per window ({invocations} invocations)");
        let per_invocation = DetectorHandler::new(
            DetectorConfig::default(),
            MemoryStateStore::default(),
            MemoryHighlights::default(),
        );
        let baseline: u64 = drive(&per_invocation, &records, 25).await.iter().map(|r| r.state_writes).sum();
        assert!(
            baseline >= 2 * invocations - 2,
            "without a window: one write per broadcaster per invocation ({baseline})"
        );

        let table: Vec<_> = [11, 22]
            .iter()
            .map(|id| {
                let s = handler.states().inner.get(*id).unwrap();
                (s.detector, s.last_sequence, s.last_fire)
            })
            .collect();
        assert_eq!(
            table,
            reference_states(&records).await,
            "the last window's writes are the per-invocation state"
        );
    }

    #[tokio::test]
    async fn a_map_that_cannot_be_read_falls_back_to_the_table() {
        let channels = two_channels();
        let records = shard(&channels);
        let handler = handler(BTreeSet::new(), BTreeSet::new());
        // First window: 10 batches, written at its end.
        let first = &records[..250];
        WindowDriver { batch: 25, window: 10, crash_at: BTreeSet::new() }.run(&handler, first).await;
        let written = handler.states().inner.get(11).unwrap();
        // The next invocation gets a corrupt map: it reads the table and goes on.
        let window = WindowIn {
            start_s: START_S + 60,
            end_s: START_S + 120,
            state: HashMap::from([
                ("11".to_owned(), "garbage".to_owned()),
                ("x".to_owned(), "{}".to_owned()),
            ]),
            shard_id: "shardId-000000000000".into(),
            is_final: true,
            terminated_early: false,
        };
        let event = kinesis_window_event("arn", "us-east-1", &records[250..300], &window);
        let (response, report) = handler.handle_window(&event).await;
        assert_eq!(response.unwrap().state, HashMap::new());
        assert_eq!(report.window_state_errors, 2);
        let after = handler.states().inner.get(11).unwrap();
        assert_eq!(after.version, written.version + 1);
        assert!(sequence_after(
            after.last_sequence.as_deref().unwrap(),
            written.last_sequence.as_deref().unwrap()
        ));
    }

    #[tokio::test]
    async fn a_new_stream_during_the_window_is_kept_as_a_reset() {
        let channels = two_channels();
        let records = shard(&channels);
        let handler = handler(BTreeSet::new(), BTreeSet::new());
        WindowDriver { batch: 25, window: 4, crash_at: BTreeSet::new() }.run(&handler, &records[..100]).await;
        // A window in progress carries broadcaster 11; the lifecycle function resets its item.
        let window = WindowIn {
            start_s: START_S + 60,
            end_s: START_S + 120,
            shard_id: "s".into(),
            ..WindowIn::default()
        };
        let event = kinesis_window_event("arn", "us-east-1", &records[100..150], &window);
        let response = handler.handle_window(&event).await.0.unwrap();
        handler.states().inner.reset(11).await.unwrap();
        let last = WindowIn { state: response.state, is_final: true, ..window };
        let event = kinesis_window_event("arn", "us-east-1", &records[150..200], &last);
        let (answer, report) = handler.handle_window(&event).await;
        assert!(answer.is_ok());
        assert_eq!(report.state_conflicts, 1);
        let stored = handler.states().inner.get(11).unwrap();
        assert_eq!(stored.detector, None, "the reset wins: the next stream starts afresh");
        let last_of_11 = records[..200].iter().rev().find(|r| r.partition_key == "11").unwrap();
        assert_eq!(
            stored.last_sequence.as_deref(),
            Some(last_of_11.sequence_number.as_str()),
            "no record applied twice"
        );
        assert!(handler.states().inner.get(22).unwrap().detector.is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever fails and wherever the function dies, the window finds every detection of
        /// the core detector once (0 lost, 0 duplicates) and leaves the table as the
        /// per-invocation handler does.
        #[test]
        fn crashes_failures_and_redeliveries_change_no_detection(
            batch in 5usize..60,
            window in 1usize..30,
            crash_at in proptest::collection::btree_set(1usize..80, 0..6),
            fail_saves in proptest::collection::btree_set(1usize..40, 0..4),
            fail_records in proptest::collection::btree_set(1usize..12, 0..3),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let channels = two_channels();
                let records = shard(&channels);
                let handler = handler(fail_saves, fail_records);
                let driver = WindowDriver { batch, window, crash_at };
                let reports = driver.run(&handler, &records).await;
                let want = expected(&channels);
                assert_eq!(sorted(handler.outbox().inner.all()), want, "lost or extra detections");
                assert_eq!(detections_counted(&reports), want.len() as u64, "each detection counted once");
                let table: Vec<_> = [11, 22].iter().map(|id| {
                    let s = handler.states().inner.get(*id).unwrap();
                    (s.detector, s.last_sequence, s.last_fire)
                }).collect();
                assert_eq!(table, reference_states(&records).await);
            });
        }
    }
}

/// `batches` moved `by_ms` later in event time.
fn shifted(batches: Vec<ChatBatch>, by_ms: i64) -> Vec<ChatBatch> {
    batches
        .into_iter()
        .map(|mut batch| {
            batch.watermark_ms += by_ms;
            for message in &mut batch.messages {
                message.sent_at_ms += by_ms;
            }
            batch
        })
        .collect()
}

/// A stream, an hour offline (no batches: the ingester joins only live channels), and a new
/// stream that opens with a rush of greetings: its records, and what the core detector finds
/// when the new stream starts from a fresh detector.
fn new_stream_after_a_gap() -> (Vec<KinesisRecordIn>, Vec<Detection>) {
    let first = chat(11, &quiet_then_burst(320));
    let mut opening: Vec<u32> = vec![60; 6];
    opening.extend((0..400).map(|i| [1, 2, 0, 3, 1][i % 5]));
    let second = shifted(chat(11, &opening), (first.len() as i64) * 1000 + 3_600_000);
    let mut want = expected(std::slice::from_ref(&first));
    want.extend(expected(std::slice::from_ref(&second)));
    let want = sorted(want);
    let both: Vec<ChatBatch> = first.iter().chain(&second).cloned().collect();
    assert_ne!(
        expected(std::slice::from_ref(&both)),
        want,
        "the old stream's state would judge the new stream's opening differently"
    );
    (shard(&[both]), want)
}

#[tokio::test]
async fn chat_resuming_after_a_long_gap_meets_a_fresh_detector_as_a_new_stream_would() {
    let (records, want) = new_stream_after_a_gap();
    let handler = memory_handler();
    let reports = drive(&handler, &records, 50).await;
    assert_eq!(reports.iter().map(|r| r.new_stream_resets).sum::<u64>(), 1);
    assert_eq!(sorted(handler.outbox().all()), want);
}
