//! Two mappings on one stream (the starter profile's detector and lifecycle functions both read
//! the chat stream): each reads every record at a position of its own, as Lambda keeps one per
//! event-source mapping, and a checkpoint file from before positions were per mapping is resumed
//! from. Against the emulator's Kinesis.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use highlights_adapters::kinesis_out::{OutRecord, put_all};
use highlights_runner::{Checkpoints, KinesisConsumer, Mapping, RunnerOptions, Source};

mod common;

use common::{Setup, setup};

/// Remembers the data of every record it is given, in order.
#[derive(Default)]
struct Recording {
    seen: Mutex<Vec<Vec<u8>>>,
}

impl Recording {
    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().clone()
    }
}

impl KinesisConsumer for Recording {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            self.seen.lock().unwrap().extend(event.records.iter().map(|r| r.kinesis.data.0.clone()));
            Vec::new()
        })
    }
}

async fn put(setup: &Setup, range: std::ops::Range<u8>) {
    let kinesis = aws_sdk_kinesis::Client::new(&setup.sdk);
    let records: Vec<OutRecord> =
        range.map(|i| OutRecord { partition_key: "7".into(), data: vec![i] }).collect();
    put_all(&kinesis, &setup.resources.chat_stream.name, &records, 3).await.unwrap();
}

fn mapping(setup: &Setup, consumer: Arc<Recording>, dead_letter_queue: &str) -> Mapping {
    Mapping {
        source: Source::Kinesis {
            stream: setup.resources.chat_stream.name.clone(),
            consumer,
            tumbling_window: None,
        },
        dead_letter_queue: dead_letter_queue.to_owned(),
    }
}

fn options() -> RunnerOptions {
    RunnerOptions { batch_size: 3, poll_interval: Duration::from_millis(5), ..RunnerOptions::default() }
}

fn data(range: std::ops::Range<u8>) -> Vec<Vec<u8>> {
    range.map(|i| vec![i]).collect()
}

#[tokio::test]
async fn two_mappings_on_one_stream_read_every_record_each_at_its_own_position() {
    let setup = setup("shared").await;
    let (detector_dlq, lifecycle_dlq) =
        (setup.resources.detector_dlq.name.clone(), setup.resources.lifecycle_dlq.name.clone());
    put(&setup, 0..10).await;
    // First only the detector's mapping runs, and reads all ten.
    let detector = Arc::new(Recording::default());
    common::run_until(&setup, mapping(&setup, detector.clone(), &detector_dlq), options(), || {
        detector.seen().len() >= 10
    })
    .await;
    assert_eq!(detector.seen(), data(0..10));

    // Then both: the lifecycle mapping starts from the beginning of the shard, the detector's
    // goes on after its own position.
    put(&setup, 10..15).await;
    let (detector, lifecycle) = (Arc::new(Recording::default()), Arc::new(Recording::default()));
    let mappings = vec![
        mapping(&setup, detector.clone(), &detector_dlq),
        mapping(&setup, lifecycle.clone(), &lifecycle_dlq),
    ];
    common::run_all_until(&setup, mappings, options(), || {
        detector.seen().len() >= 5 && lifecycle.seen().len() >= 15
    })
    .await;
    assert_eq!(detector.seen(), data(10..15));
    assert_eq!(lifecycle.seen(), data(0..15));

    // Each position was checkpointed under its own mapping's key.
    let checkpoints: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&setup.checkpoints_path).unwrap()).unwrap();
    let mappings_keyed: Vec<&str> =
        checkpoints.keys().filter_map(|key| key.rsplit_once('#').map(|(_, mapping)| mapping)).collect();
    assert_eq!(mappings_keyed.len(), 2, "{checkpoints:?}");
    assert!(
        mappings_keyed.contains(&detector_dlq.as_str()) && mappings_keyed.contains(&lifecycle_dlq.as_str())
    );
}

#[tokio::test]
async fn a_checkpoint_from_before_positions_were_per_mapping_is_resumed_from() {
    let setup = setup("legacy").await;
    let dlq = setup.resources.detector_dlq.name.clone();
    put(&setup, 0..6).await;
    let first = Arc::new(Recording::default());
    common::run_until(&setup, mapping(&setup, first.clone(), &dlq), options(), || first.seen().len() >= 6)
        .await;
    // Rewrite the file as the previous version kept it: the key without the mapping.
    let current: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&setup.checkpoints_path).unwrap()).unwrap();
    let (key, position) = current.iter().find(|(key, _)| key.ends_with(&format!("#{dlq}"))).unwrap();
    let legacy = key.trim_end_matches(&format!("#{dlq}")).to_owned();
    std::fs::remove_file(&setup.checkpoints_path).unwrap();
    Checkpoints::open(&setup.checkpoints_path).unwrap().set(&legacy, position).unwrap();

    put(&setup, 6..9).await;
    let second = Arc::new(Recording::default());
    common::run_until(&setup, mapping(&setup, second.clone(), &dlq), options(), || second.seen().len() >= 3)
        .await;
    assert_eq!(second.seen(), data(6..9), "resumed after the old checkpoint, nothing read twice");
    let after: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&setup.checkpoints_path).unwrap()).unwrap();
    assert!(!after.contains_key(&legacy), "the old key is taken over, not kept: {after:?}");
    assert!(after.contains_key(key.as_str()), "{after:?}");
}
