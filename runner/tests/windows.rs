//! The runner's tumbling windows against the emulator's Kinesis: the state map travels from one
//! invocation to the next, each window ends with one final invocation, a failed invocation is
//! retried whole with the same map, and a restarted runner goes on inside the window with the map
//! checkpointed beside the shard position. A counting consumer keeps per-key counts in the map
//! and adds them to its "table" at each window's end: the table must end with every record
//! counted exactly once.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use highlights_adapters::kinesis_out::{OutRecord, put_all};
use highlights_runner::{KinesisConsumer, Mapping, RunnerOptions, Source, WindowAnswer};

#[derive(Default)]
struct Counting {
    /// Per partition key, the records counted by the windows that ended.
    table: Mutex<HashMap<String, u64>>,
    /// (window start, records) of each final invocation.
    finals: Mutex<Vec<(i64, usize)>>,
    invocations: AtomicU32,
    /// Invocation numbers (1-based) that fail after counting, as a crash would.
    fail: BTreeSet<u32>,
    /// Window starts seen with a non-empty incoming map, with that map's total.
    carried: Mutex<Vec<(i64, u64)>>,
}

impl Counting {
    fn counted(&self) -> u64 {
        self.table.lock().unwrap().values().sum()
    }
}

impl KinesisConsumer for Counting {
    fn invoke(&self, _: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        panic!("a mapping with a tumbling window never sends a plain event")
    }

    fn invoke_window(
        &self,
        event: KinesisTimeWindowEvent,
    ) -> Pin<Box<dyn Future<Output = WindowAnswer> + Send + '_>> {
        Box::pin(async move {
            let number = self.invocations.fetch_add(1, Ordering::SeqCst) + 1;
            let window = &event.time_window_properties;
            let start = window.window.start.timestamp();
            let mut state: HashMap<String, u64> =
                window.state.iter().map(|(k, v)| (k.clone(), v.parse().unwrap())).collect();
            if !state.is_empty() {
                self.carried.lock().unwrap().push((start, state.values().sum()));
            }
            for record in &event.kinesis_event.records {
                let arrival = record.kinesis.approximate_arrival_timestamp.0.timestamp();
                assert!(
                    arrival >= start && arrival < window.window.end.timestamp(),
                    "a record outside its window"
                );
                *state.entry(record.kinesis.partition_key.clone()).or_default() += 1;
            }
            if self.fail.contains(&number) {
                return Err(format!("injected failure of invocation {number}"));
            }
            if window.is_final_invoke_for_window {
                let mut table = self.table.lock().unwrap();
                for (key, count) in state {
                    *table.entry(key).or_default() += count;
                }
                self.finals.lock().unwrap().push((start, event.kinesis_event.records.len()));
                return Ok(HashMap::new());
            }
            Ok(state.into_iter().map(|(k, v)| (k, v.to_string())).collect())
        })
    }
}

mod common;

use common::{Setup, setup};

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Puts `waves` waves of `per_wave` records (two partition keys), each at the start of a second
/// of its own, so that with 1-second windows every wave is a window of its own.
async fn put_waves(setup: &Setup, waves: usize, per_wave: usize) {
    let kinesis = aws_sdk_kinesis::Client::new(&setup.sdk);
    for wave in 0..waves {
        let second = now_s().floor();
        let deadline = Instant::now() + Duration::from_secs(5);
        while now_s().floor() <= second {
            assert!(Instant::now() < deadline, "the clock did not move on");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let records: Vec<OutRecord> = (0..per_wave)
            .map(|i| OutRecord { partition_key: ["a", "b"][i % 2].into(), data: vec![wave as u8, i as u8] })
            .collect();
        put_all(&kinesis, &setup.resources.chat_stream.name, &records, 3).await.unwrap();
    }
}

/// Runs the runner with a 1-second tumbling window until `done` holds (polling), then stops it.
async fn run_until(setup: &Setup, consumer: Arc<Counting>, done: impl Fn(&Counting) -> bool) {
    let mapping = Mapping {
        source: Source::Kinesis {
            stream: setup.resources.chat_stream.name.clone(),
            consumer: consumer.clone(),
            tumbling_window: Some(Duration::from_secs(1)),
        },
        dead_letter_queue: setup.resources.detector_dlq.name.clone(),
    };
    let options = RunnerOptions {
        batch_size: 4,
        poll_interval: Duration::from_millis(5),
        retry_backoff: highlights_core::Backoff::new(Duration::from_millis(5), Duration::from_millis(50)),
        ..RunnerOptions::default()
    };
    common::run_until(setup, mapping, options, || done(&consumer)).await;
}

#[tokio::test]
async fn each_record_counts_once_across_windows_and_failed_invocations() {
    let setup = setup("windows").await;
    put_waves(&setup, 3, 10).await;
    // Invocations 2 and 5 fail after counting: retried whole, with the map they got.
    let consumer = Arc::new(Counting { fail: BTreeSet::from([2, 5]), ..Counting::default() });
    run_until(&setup, consumer.clone(), |c| c.counted() == 30).await;

    let table = consumer.table.lock().unwrap().clone();
    assert_eq!(table, HashMap::from([("a".to_owned(), 15), ("b".to_owned(), 15)]), "0 lost, 0 counted twice");
    let finals = consumer.finals.lock().unwrap().clone();
    let windows: BTreeSet<i64> = finals.iter().map(|(start, _)| *start).collect();
    assert_eq!(windows.len(), finals.len(), "one final invocation per window: {finals:?}");
    assert!(windows.len() >= 3, "three waves in three seconds make three windows at least: {finals:?}");
    assert!(
        !consumer.carried.lock().unwrap().is_empty(),
        "10 records a window in batches of 4: the map goes from one invocation to the next"
    );
    std::fs::remove_file(&setup.checkpoints_path).unwrap();
}

#[tokio::test]
async fn a_restarted_runner_goes_on_inside_the_window_with_its_map() {
    let setup = setup("windows-restart").await;
    // One wave of 12 in one second: three batches of 4 in one window.
    put_waves(&setup, 1, 12).await;
    // The first runner's function fails from its third invocation on (as if it kept
    // crashing): it is stopped with the window open, its map holding the first 8 records.
    let first = Arc::new(Counting { fail: (3..10_000).collect(), ..Counting::default() });
    run_until(&setup, first.clone(), |c| c.invocations.load(Ordering::SeqCst) >= 4).await;
    let checkpoints = std::fs::read_to_string(&setup.checkpoints_path).unwrap();
    assert!(checkpoints.contains("#window"), "the open window is checkpointed: {checkpoints}");
    assert_eq!(first.counted(), 0, "no window ended");

    let second = Arc::new(Counting::default());
    run_until(&setup, second.clone(), |c| c.counted() == 12).await;
    assert_eq!(
        second.table.lock().unwrap().clone(),
        HashMap::from([("a".to_owned(), 6), ("b".to_owned(), 6)])
    );
    let carried = second.carried.lock().unwrap().clone();
    assert_eq!(
        carried.first().map(|(_, total)| *total),
        Some(8),
        "the restarted runner starts from the checkpointed map"
    );
    std::fs::remove_file(&setup.checkpoints_path).unwrap();
}
