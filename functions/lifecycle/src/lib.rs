//! The lifecycle handler: `stream.online` / `stream.offline` events (JSON, see
//! `docs/wire-format.md`) into the Postgres `streamers` table, resetting the detector state of a
//! broadcaster whose new stream went online.
//!
//! Records are applied in order; the first failure stops the batch and is reported, so Lambda
//! retries from it (events already applied come back as stale and change nothing). Malformed
//! records are counted, logged with their sequence number and skipped. Chat batches (the starter
//! profile carries lifecycle events on the chat stream) are skipped and only counted.

use std::time::Instant;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use highlights_adapters::detector_state::StateStore;
use highlights_adapters::streamers::{Applied, StreamerDirectory};
use highlights_adapters::telemetry::{MetricRecord, Unit};
use highlights_core::LifecycleEvent;
use highlights_core::wire::RecordKind;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LifecycleReport {
    pub records: usize,
    pub applied: u64,
    pub stale: u64,
    pub detector_resets: u64,
    pub decode_errors: u64,
    /// Chat batches on the same stream: not lifecycle events, not malformed.
    pub chat_records: u64,
    pub failures: u64,
    pub duration_ms: f64,
}

impl LifecycleReport {
    pub fn metrics(&self) -> MetricRecord {
        MetricRecord::new("Function", "lifecycle")
            .count("BatchSize", self.records as u64)
            .count("lifecycle_events", self.applied)
            .count("StaleEvents", self.stale)
            .count("DetectorResets", self.detector_resets)
            .count("DecodeErrors", self.decode_errors)
            .count("ChatRecords", self.chat_records)
            .count("Failures", self.failures)
            .metric("HandlerDuration", Unit::Milliseconds, self.duration_ms)
    }
}

pub struct LifecycleHandler<D, S> {
    directory: D,
    states: S,
}

impl<D: StreamerDirectory, S: StateStore> LifecycleHandler<D, S> {
    pub fn new(directory: D, states: S) -> Self {
        Self { directory, states }
    }

    pub fn directory(&self) -> &D {
        &self.directory
    }

    pub fn states(&self) -> &S {
        &self.states
    }

    pub async fn handle(&self, event: &KinesisEvent) -> (KinesisEventResponse, LifecycleReport) {
        let started = Instant::now();
        let mut report = LifecycleReport { records: event.records.len(), ..LifecycleReport::default() };
        let mut response = KinesisEventResponse::default();
        for record in &event.records {
            let sequence = &record.kinesis.sequence_number;
            if RecordKind::of(&record.kinesis.data.0) == RecordKind::ChatBatch {
                report.chat_records += 1;
                continue;
            }
            let parsed: LifecycleEvent = match serde_json::from_slice(&record.kinesis.data.0) {
                Ok(parsed) => parsed,
                Err(error) => {
                    report.decode_errors += 1;
                    tracing::warn!(sequence_number = %sequence, %error, "skipping a malformed lifecycle record");
                    continue;
                }
            };
            match self.directory.apply(&parsed, &self.states).await {
                Ok(Applied::Stale) => report.stale += 1,
                Ok(Applied::Updated { new_stream }) => {
                    report.applied += 1;
                    if new_stream {
                        report.detector_resets += 1;
                        tracing::info!(
                            broadcaster_id = parsed.broadcaster_id(),
                            "new stream online; detector reset"
                        );
                    }
                }
                Err(error) => {
                    tracing::error!(sequence_number = %sequence, broadcaster_id = parsed.broadcaster_id(), %error, "cannot apply a lifecycle event; retrying from it");
                    report.failures += 1;
                    response.add_failure(sequence.clone());
                    break;
                }
            }
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        (response, report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use highlights_adapters::detector_state::{MemoryStateStore, StoredState};
    use highlights_adapters::lambda_events::{KinesisRecordIn, kinesis_event};
    use highlights_adapters::streamers::MemoryStreamers;
    use highlights_core::{StreamOffline, StreamOnline};

    pub(crate) fn online(id: u64, stream: &str, at: i64) -> LifecycleEvent {
        LifecycleEvent::Online(StreamOnline {
            broadcaster_id: id,
            broadcaster_login: format!("user{id}"),
            broadcaster_name: format!("User{id}"),
            stream_id: stream.into(),
            title: "title".into(),
            game_id: "509658".into(),
            game_name: "Just Chatting".into(),
            started_at_ms: at - 5_000,
            viewer_count: 10,
            observed_at_ms: at,
        })
    }

    pub(crate) fn offline(id: u64, at: i64) -> LifecycleEvent {
        LifecycleEvent::Offline(StreamOffline {
            broadcaster_id: id,
            broadcaster_login: format!("user{id}"),
            observed_at_ms: at,
        })
    }

    fn event(events: &[LifecycleEvent]) -> KinesisEvent {
        let records: Vec<KinesisRecordIn> = events
            .iter()
            .enumerate()
            .map(|(i, e)| KinesisRecordIn {
                shard_id: "shardId-000000000000".into(),
                sequence_number: (100 + i).to_string(),
                partition_key: e.broadcaster_id().to_string(),
                data: serde_json::to_vec(e).unwrap(),
                approximate_arrival_s: 0.0,
            })
            .collect();
        kinesis_event("arn:aws:kinesis:us-east-1:000000000000:stream/stream-lifecycle", "us-east-1", &records)
    }

    fn handler() -> LifecycleHandler<MemoryStreamers, MemoryStateStore> {
        LifecycleHandler::new(MemoryStreamers::default(), MemoryStateStore::default())
    }

    async fn seed_state(handler: &LifecycleHandler<MemoryStreamers, MemoryStateStore>, id: u64) {
        let state = StoredState {
            broadcaster_id: id,
            version: 1,
            detector: Some(vec![1, 2, 3]),
            last_sequence: Some("77".into()),
            ..StoredState::default()
        };
        let version = handler.states().get(id).map_or(0, |s| s.version);
        handler.states().save(&StoredState { version: version + 1, ..state }, version).await.unwrap();
    }

    #[tokio::test]
    async fn online_offline_online_resets_the_detector_for_each_new_stream() {
        let handler = handler();
        seed_state(&handler, 7).await;
        let (response, report) = handler.handle(&event(&[online(7, "s1", 1_000)])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(report.detector_resets, 1);
        let reset = handler.states().get(7).unwrap();
        assert_eq!((reset.detector, reset.last_sequence.as_deref()), (None, Some("77")));

        seed_state(&handler, 7).await;
        let (_, report) = handler.handle(&event(&[offline(7, 2_000), online(7, "s2", 3_000)])).await;
        assert_eq!((report.applied, report.detector_resets), (2, 1));
        assert_eq!(handler.directory().get(7), Some((Some("s2".into()), 3_000, true)));
        assert_eq!(handler.states().get(7).unwrap().detector, None);
    }

    #[tokio::test]
    async fn redelivered_and_older_events_change_nothing() {
        let handler = handler();
        let events = [online(7, "s1", 1_000), offline(7, 2_000)];
        handler.handle(&event(&events)).await;
        seed_state(&handler, 7).await;
        let (_, report) = handler.handle(&event(&events)).await;
        assert_eq!((report.applied, report.stale, report.detector_resets), (0, 2, 0));
        // An older online event arriving late does not bring the channel back online.
        let (_, report) = handler.handle(&event(&[online(7, "s1", 1_500)])).await;
        assert_eq!(report.stale, 1);
        assert_eq!(handler.directory().get(7), Some((Some("s1".into()), 2_000, false)));
        assert!(handler.states().get(7).unwrap().detector.is_some(), "a stale event never resets");
    }

    #[tokio::test]
    async fn the_same_stream_seen_again_is_not_a_new_stream() {
        let handler = handler();
        handler.handle(&event(&[online(7, "s1", 1_000)])).await;
        seed_state(&handler, 7).await;
        let (_, report) = handler.handle(&event(&[online(7, "s1", 31_000)])).await;
        assert_eq!((report.applied, report.detector_resets), (1, 0));
        assert!(handler.states().get(7).unwrap().detector.is_some());
    }

    #[tokio::test]
    async fn malformed_records_are_skipped() {
        let handler = handler();
        let mut kinesis = event(&[online(7, "s1", 1_000), online(8, "s9", 1_000)]);
        kinesis.records[0].kinesis.data.0 = b"{not json".to_vec();
        let (response, report) = handler.handle(&kinesis).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((report.decode_errors, report.applied), (1, 1));
    }

    #[tokio::test]
    async fn chat_batches_on_the_same_stream_are_skipped_without_counting_as_malformed() {
        let handler = handler();
        let mut kinesis = event(&[online(7, "s1", 1_000), online(8, "s9", 1_000), online(9, "s3", 1_000)]);
        let batch =
            highlights_core::ChatBatch { broadcaster_id: 7, watermark_ms: 1_000, messages: Vec::new() };
        kinesis.records[1].kinesis.data.0 = highlights_core::wire::encode(&batch);
        let (response, report) = handler.handle(&kinesis).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!((report.chat_records, report.decode_errors, report.applied), (1, 0, 2));
    }

    #[test]
    fn lifecycle_events_are_json_with_string_ids() {
        let json = serde_json::to_value(online(7, "s1", 1_000)).unwrap();
        assert_eq!(json["type"], "stream.online");
        assert_eq!(json["broadcaster_id"], "7");
        let back: LifecycleEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, online(7, "s1", 1_000));
        let numeric: LifecycleEvent =
            serde_json::from_str(r#"{"type":"stream.offline","broadcaster_id":7,"observed_at_ms":5}"#)
                .unwrap();
        assert_eq!(numeric.broadcaster_id(), 7);
    }
}
