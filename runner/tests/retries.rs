//! The runner against the emulator's Kinesis and SQS with scripted consumers: partial batch
//! responses are retried from the failed record, a record that keeps failing goes to the
//! dead-letter queue alone, and checkpoints make a restart resume without redelivery.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use highlights_adapters::kinesis_out::{OutRecord, put_all};
use highlights_runner::{KinesisConsumer, Mapping, RunnerOptions, Source};

/// Records every payload it sees; fails the record whose data is `poison`, always.
#[derive(Default)]
struct Scripted {
    seen: Mutex<Vec<Vec<u8>>>,
    invocations: AtomicU32,
    poison: Option<Vec<u8>>,
}

impl KinesisConsumer for Scripted {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            self.invocations.fetch_add(1, Ordering::SeqCst);
            for record in &event.records {
                if Some(&record.kinesis.data.0) == self.poison.as_ref() {
                    return vec![record.kinesis.sequence_number.clone()];
                }
                self.seen.lock().unwrap().push(record.kinesis.data.0.clone());
            }
            Vec::new()
        })
    }
}

mod common;

use common::Setup;

async fn setup(name: &str, payloads: &[&[u8]]) -> Setup {
    let setup = common::setup(name).await;
    let records: Vec<OutRecord> =
        payloads.iter().map(|p| OutRecord { partition_key: "1".into(), data: p.to_vec() }).collect();
    put_all(&aws_sdk_kinesis::Client::new(&setup.sdk), &setup.resources.chat_stream.name, &records, 3)
        .await
        .unwrap();
    setup
}

/// Runs the runner until `done` holds (polling), then stops it and returns its counters.
async fn run_until(
    setup: &Setup,
    consumer: Arc<Scripted>,
    done: impl Fn(&Scripted) -> bool,
) -> Arc<highlights_runner::RunnerStats> {
    let mapping = Mapping {
        source: Source::Kinesis {
            stream: setup.resources.chat_stream.name.clone(),
            consumer: consumer.clone(),
            tumbling_window: None,
        },
        dead_letter_queue: setup.resources.detector_dlq.name.clone(),
    };
    let options = RunnerOptions {
        batch_size: 4,
        poll_interval: Duration::from_millis(5),
        max_retries: Some(2),
        retry_backoff: highlights_core::Backoff::new(Duration::from_millis(5), Duration::from_secs(5)),
        ..RunnerOptions::default()
    };
    common::run_until(setup, mapping, options, || done(&consumer)).await
}

fn payloads() -> Vec<Vec<u8>> {
    (0..10u8).map(|i| vec![b'r', i]).collect()
}

#[tokio::test]
async fn a_record_that_keeps_failing_goes_to_the_dead_letter_queue_alone() {
    let payloads = payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let setup = setup("dlq", &refs).await;
    let consumer = Arc::new(Scripted { poison: Some(payloads[5].clone()), ..Scripted::default() });
    let stats = run_until(&setup, consumer.clone(), |c| c.seen.lock().unwrap().len() == 9).await;

    let mut expected = payloads.clone();
    expected.remove(5);
    assert_eq!(*consumer.seen.lock().unwrap(), expected, "every other record, once, in order");
    assert_eq!(stats.dead_lettered.load(Ordering::SeqCst), 1);
    // The poison record was attempted 1 + max_retries times.
    assert_eq!(stats.failed_invocations.load(Ordering::SeqCst), 3);

    let sqs = aws_sdk_sqs::Client::new(&setup.sdk);
    let url = sqs.get_queue_url().queue_name(&setup.resources.detector_dlq.name).send().await.unwrap();
    let received = sqs
        .receive_message()
        .queue_url(url.queue_url().unwrap())
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let body: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(body["records"].as_array().unwrap().len(), 1);
    assert_eq!(body["records"][0]["data_base64"], "cgU=", "the poison record's bytes");
}

#[tokio::test]
async fn a_restarted_runner_resumes_from_its_checkpoint() {
    let payloads = payloads();
    let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
    let setup = setup("resume", &refs).await;
    let first = Arc::new(Scripted::default());
    run_until(&setup, first.clone(), |c| c.seen.lock().unwrap().len() == 10).await;
    assert_eq!(*first.seen.lock().unwrap(), payloads);

    // More records arrive while it is stopped; the restarted runner delivers only those.
    let more: Vec<OutRecord> =
        (10..13u8).map(|i| OutRecord { partition_key: "1".into(), data: vec![b'r', i] }).collect();
    put_all(&aws_sdk_kinesis::Client::new(&setup.sdk), &setup.resources.chat_stream.name, &more, 3)
        .await
        .unwrap();
    let second = Arc::new(Scripted::default());
    run_until(&setup, second.clone(), |c| c.seen.lock().unwrap().len() == 3).await;
    assert_eq!(*second.seen.lock().unwrap(), more.iter().map(|r| r.data.clone()).collect::<Vec<_>>());
    std::fs::remove_file(&setup.checkpoints_path).unwrap();
}
