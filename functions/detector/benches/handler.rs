//! Detector handler throughput with in-memory ports, including Kinesis event decoding of wire
//! format v1 (target: at least 1 million chat messages/s on one core).
//!
//! Run: `cargo bench -p detector-function --bench handler`

use detector_function::DetectorHandler;
use divan::Bencher;
use divan::counter::ItemsCount;
use highlights_adapters::detector_state::MemoryStateStore;
use highlights_adapters::highlights::MemoryHighlights;
use highlights_adapters::lambda_events::{KinesisRecordIn, kinesis_event};
use highlights_core::{ChatBatch, ChatMessage, DetectorConfig, wire};

fn main() {
    divan::main();
}

const CHANNELS: u64 = 100;
const SECONDS: i64 = 60;
const PER_SECOND: i64 = 50;
const START_S: i64 = 1_700_000_000;

/// One invocation per second of event time: 100 records, one batch of 50 realistic messages
/// per broadcaster.
fn invocations() -> Vec<aws_lambda_events::event::kinesis::KinesisEvent> {
    let mut sequence = 0u64;
    (0..SECONDS)
        .map(|second| {
            let records: Vec<KinesisRecordIn> = (0..CHANNELS)
                .map(|channel| {
                    let batch = ChatBatch {
                        broadcaster_id: 100_000 + channel,
                        watermark_ms: (START_S + second) * 1000 + 999,
                        messages: (0..PER_SECOND)
                            .map(|i| ChatMessage {
                                id: format!("885196de-cb67-427a-baa8-{:012x}", sequence * 100 + i as u64),
                                user_id: 53_862_903 + i as u64,
                                login: format!("viewer_{i:04}"),
                                sent_at_ms: (START_S + second) * 1000 + i * 20,
                                text: "PogChamp that was actually insane".into(),
                                emote_count: 1,
                            })
                            .collect(),
                    };
                    sequence += 1;
                    KinesisRecordIn {
                        shard_id: "shardId-000000000000".into(),
                        sequence_number: sequence.to_string(),
                        partition_key: batch.broadcaster_id.to_string(),
                        data: wire::encode(&batch),
                        approximate_arrival_s: 0.0,
                    }
                })
                .collect();
            kinesis_event(
                "arn:aws:kinesis:us-east-1:000000000000:stream/chat-messages",
                "us-east-1",
                &records,
            )
        })
        .collect()
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn handle_invocations(bencher: Bencher) {
    let events = invocations();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    bencher
        .counter(ItemsCount::new((CHANNELS as i64 * SECONDS * PER_SECOND) as usize))
        .with_inputs(|| {
            DetectorHandler::new(
                DetectorConfig::default(),
                MemoryStateStore::default(),
                MemoryHighlights::default(),
            )
        })
        .bench_local_values(|handler| {
            runtime.block_on(async {
                let mut messages = 0;
                for event in &events {
                    messages += handler.handle(event).await.1.tally.messages;
                }
                messages
            })
        });
}
