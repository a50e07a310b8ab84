//! Core detector throughput on pre-decoded chat of 1,000 channels, for both detectors (targets
//! on one core: `seed` 20 million messages/s, `v2` 10 million), plus wire-format encode/decode
//! throughput.
//!
//! Run: `cargo bench -p highlights-core --bench detector`

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use highlights_core::config::RawConfig;
use highlights_core::{ChatBatch, ChatMessage, Detector, DetectorConfig, DetectorMode, Tally, wire};

const CHANNELS: u64 = 1_000;
const SECONDS: i64 = 900;
const START_S: i64 = 1_700_000_000;

fn main() {
    divan::main();
}

/// Deterministic chat: per channel a resting rate of 1..=5 messages/s, a burst of 40/s for 8 s
/// every 200 s (staggered per channel), 3% commands, chatters drawn from 2,000 per channel. One
/// batch per channel-second, in time order.
fn batches() -> Vec<ChatBatch> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut batches = Vec::with_capacity((CHANNELS as i64 * SECONDS) as usize);
    for second in 0..SECONDS {
        for channel in 0..CHANNELS {
            let resting = 1 + channel % 5;
            let bursting = (second + channel as i64 * 7) % 200 < 8 && second > 300;
            let count = if bursting { 40 } else { next() % (2 * resting + 1) };
            let messages = (0..count)
                .map(|i| {
                    let sent_at = (START_S + second) * 1000 + (i * 1000 / count.max(1)) as i64;
                    let text = if next() % 100 < 3 { "!uptime" } else { "KEKW that was close" };
                    ChatMessage { user_id: 1 + next() % 2_000, ..ChatMessage::new(sent_at, text) }
                })
                .collect();
            batches.push(ChatBatch {
                broadcaster_id: 100_000 + channel,
                watermark_ms: (START_S + second) * 1000 + 999,
                messages,
            });
        }
    }
    batches
}

fn message_count(batches: &[ChatBatch]) -> usize {
    batches.iter().map(|b| b.messages.len()).sum()
}

const MODES: [DetectorMode; 2] = [DetectorMode::Seed, DetectorMode::V2];

fn detector(mode: DetectorMode) -> Detector {
    Detector::new(DetectorConfig::new(RawConfig::for_mode(mode)).expect("valid defaults"))
}

#[divan::bench(args = MODES, sample_count = 10, sample_size = 1)]
fn observe_batches(bencher: Bencher, mode: DetectorMode) {
    let batches = batches();
    let messages = message_count(&batches);
    bencher.counter(ItemsCount::new(messages)).with_inputs(|| detector(mode)).bench_local_values(
        |mut detector| {
            let mut tally = Tally::default();
            let mut out = Vec::new();
            for batch in &batches {
                detector.observe_batch(batch, &mut tally, &mut out);
            }
            black_box((tally, out.len()))
        },
    );
}

/// Every message looked up by broadcaster, as `highlights backtest` does with interleaved input.
#[divan::bench(args = MODES, sample_count = 10, sample_size = 1)]
fn observe_messages_one_by_one(bencher: Bencher, mode: DetectorMode) {
    let flat: Vec<(u64, i64, u64, &'static str)> = batches()
        .iter()
        .flat_map(|b| {
            b.messages.iter().map(move |m| {
                let text = if m.text.starts_with('!') { "!uptime" } else { "KEKW" };
                (b.broadcaster_id, m.sent_at_ms, m.user_id, text)
            })
        })
        .collect();
    bencher.counter(ItemsCount::new(flat.len())).with_inputs(|| detector(mode)).bench_local_values(
        |mut detector| {
            let mut out = Vec::new();
            let mut counted = 0u64;
            for &(broadcaster, sent_at, chatter, text) in &flat {
                counted += (detector.observe_message(broadcaster, sent_at, chatter, text, &mut out)
                    == highlights_core::Outcome::Counted) as u64;
            }
            black_box((counted, out.len()))
        },
    );
}

fn sample_records() -> Vec<Vec<u8>> {
    // Realistic fields: UUID ids, 8-digit user ids, logins, ~35 bytes of text, 1 s batches at 50/s.
    (0..200)
        .map(|batch| ChatBatch {
            broadcaster_id: 194_814_599,
            watermark_ms: (START_S + batch) * 1000 + 999,
            messages: (0..50)
                .map(|i| ChatMessage {
                    id: format!("885196de-cb67-427a-baa8-{:012x}", batch * 100 + i),
                    user_id: 53_862_903 + i as u64,
                    login: format!("viewer_{i:04}"),
                    sent_at_ms: (START_S + batch) * 1000 + i * 20,
                    text: "PogChamp that was actually insane".into(),
                    emote_count: 1,
                })
                .collect(),
        })
        .map(|batch| wire::encode(&batch))
        .collect()
}

#[divan::bench]
fn wire_decode(bencher: Bencher) {
    let records = sample_records();
    let bytes: usize = records.iter().map(Vec::len).sum();
    bencher.counter(BytesCount::new(bytes)).bench(|| {
        let mut messages = 0;
        for record in &records {
            messages += wire::decode(black_box(record)).unwrap().messages.len();
        }
        messages
    });
}

#[divan::bench]
fn wire_encode(bencher: Bencher) {
    let batches: Vec<ChatBatch> = sample_records().iter().map(|r| wire::decode(r).unwrap()).collect();
    let messages: usize = batches.iter().map(|b| b.messages.len()).sum();
    bencher.counter(ItemsCount::new(messages)).bench(|| {
        let mut out = Vec::with_capacity(1 << 16);
        let mut total = 0;
        for batch in &batches {
            out.clear();
            wire::encode_into(black_box(batch), &mut out);
            total += out.len();
        }
        total
    });
}
