//! Detector tests: a from-the-definition reference model compared against the incremental
//! detector on random chat, plus the behavioural properties the product relies on.

use super::*;
use crate::config::RawConfig;
use crate::detector::{ChannelDetector, Detector, Tally};
use crate::model::ChatBatch;
use crate::model::ChatMessage;
use proptest::prelude::*;

const BROADCASTER: u64 = 42;

fn config_with(change: impl FnOnce(&mut RawConfig)) -> DetectorConfig {
    let mut raw = RawConfig::default();
    change(&mut raw);
    DetectorConfig::new(raw).unwrap()
}

/// Messages spread evenly inside each second, in order; `counts[i]` is for second `first + i`.
/// What the generated chat says: a few phrases and a sentence that is none.
const TEXTS: [&str; 5] = ["PogChamp", "KEKW KEKW", "lol", "what a play that was, chat", "W"];

fn chat_from_counts(first: i64, counts: &[u32]) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    for (offset, &count) in counts.iter().enumerate() {
        let second = first + offset as i64;
        for j in 0..count {
            let ms = second * 1000 + i64::from(j) * 1000 / i64::from(count);
            messages.push(ChatMessage::new(ms, TEXTS[(offset + j as usize) % TEXTS.len()]));
        }
    }
    messages
}

/// Starts observation at `FIRST`, feeds messages in the given order, then a watermark at
/// `end_ms`, then finishes.
fn run(config: DetectorConfig, messages: &[ChatMessage], end_ms: i64) -> (Vec<Detection>, Tally) {
    let mut detector = ChannelDetector::new(BROADCASTER, config);
    let mut out = Vec::new();
    let mut tally = Tally::default();
    detector.observe_watermark(FIRST * 1000, &mut out);
    for message in messages {
        tally.record(detector.observe_message(message.sent_at_ms, 0, &message.text, &mut out));
    }
    detector.observe_watermark(end_ms, &mut out);
    detector.finish(&mut out);
    (out, tally)
}

/// The specification, transcribed literally: every sum recomputed from scratch each second.
fn reference(config: &DetectorConfig, first: i64, counts: &[u32]) -> Vec<Detection> {
    let window = i64::from(config.window_seconds());
    let baseline = i64::from(config.baseline_seconds());
    let cap = i64::from(config.hold_cap_seconds());
    let at = |s: i64| -> u64 {
        if s < first || s >= first + counts.len() as i64 {
            0
        } else {
            u64::from(counts[(s - first) as usize])
        }
    };
    let mut out = Vec::new();
    let mut hold: Option<(i64, Measurement)> = None;
    let mut last_fire: Option<i64> = None;
    for second in first..first + counts.len() as i64 {
        if hold.is_some_and(|(_, peak)| second - peak.second > cap) {
            hold = None;
        }
        if second - window + 1 - first < config.warmup_seconds() {
            continue;
        }
        let window_sum: u64 = (second - window + 1..=second).map(at).sum();
        let base: Vec<u64> = (second - window - baseline + 1..=second - window).map(at).collect();
        let n = base.len() as u128;
        let sum: u128 = base.iter().map(|&x| u128::from(x)).sum();
        let squares: u128 = base.iter().map(|&x| u128::from(x) * u128::from(x)).sum();
        let spread = n * squares - sum * sum;
        if spread == 0 {
            continue;
        }
        let std = (spread as f64 / (n * (n - 1)) as f64).sqrt();
        let mean = sum as f64 / n as f64;
        let intensity = (window_sum as f64 / window as f64 - mean) / std;
        let m = Measurement { second, intensity, message_count: window_sum, mean, std };
        let elevated = intensity >= config.k();
        match &mut hold {
            None => {
                if !elevated || last_fire.is_some_and(|f| second - f <= i64::from(config.cooldown_seconds()))
                {
                    continue;
                }
                hold = Some((second, m));
            }
            Some((_, peak)) => {
                if elevated && intensity > peak.intensity {
                    *peak = m;
                }
            }
        }
        let (start, peak) = hold.unwrap();
        if !elevated || second - start >= cap {
            out.push(Detection {
                broadcaster_id: BROADCASTER,
                peak_second: peak.second,
                fired_second: second,
                intensity: peak.intensity,
                message_count: peak.message_count,
                baseline_mean: peak.mean,
                baseline_std: peak.std,
                curve: super::super::reference_curve(config, first, second, |s| at(s) as u32),
                // The detector reports when the first message past the lateness arrives.
                phrases: super::super::reference_phrases(
                    config,
                    chat_from_counts(first, counts)
                        .iter()
                        .filter(|m| {
                            m.sent_at_ms < (second + 1) * 1000 + i64::from(config.allowed_lateness_ms())
                        })
                        .map(|m| (m.sent_at_ms.div_euclid(1000), m.text.as_str()))
                        .collect::<Vec<_>>(),
                ),
            });
            last_fire = Some(second);
            hold = None;
        }
    }
    crate::detector::budget::reference_budget(config.clips_per_hour(), out)
}

/// Resting chat with optional bursts: what streams look like, in per-second counts.
fn arb_counts() -> impl Strategy<Value = Vec<u32>> {
    let resting = prop::collection::vec(0u32..6, 250..900);
    let bursts = prop::collection::vec((0usize..900, 1usize..40, 10u32..120), 0..6);
    // A silence long enough to empty the whole history exercises the fast-forward path.
    let silence = prop::option::of((0usize..900, 0usize..800));
    (resting, bursts, silence).prop_map(|(mut counts, bursts, silence)| {
        for (at, len, rate) in bursts {
            for slot in counts.iter_mut().skip(at).take(len) {
                *slot = rate;
            }
        }
        if let Some((at, len)) = silence {
            let at = at.min(counts.len());
            counts.splice(at..at, std::iter::repeat_n(0, len));
        }
        counts
    })
}

fn arb_config() -> impl Strategy<Value = DetectorConfig> {
    (
        (1u32..8, 20u32..320, 1.0f64..6.0, 0u32..30, 0u32..60, 0.05f64..0.95, 0u32..4000),
        prop::option::of(1u32..4),
    )
        .prop_map(|((window, baseline, k, cap, cooldown, fraction, lateness), clips_per_hour)| {
            config_with(|c| {
                c.clips_per_hour = clips_per_hour;
                c.window_seconds = window;
                c.baseline_seconds = baseline;
                c.k = k;
                c.hold_cap_seconds = cap;
                c.cooldown_seconds = cooldown;
                c.min_baseline_fraction = fraction;
                c.allowed_lateness_ms = lateness;
            })
        })
}

const FIRST: i64 = 1_700_000_000;

fn end_of(counts: &[u32]) -> i64 {
    (FIRST + counts.len() as i64) * 1000 - 1
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_reference_model(config in arb_config(), counts in arb_counts()) {
        let (got, _) = run(config, &chat_from_counts(FIRST, &counts), end_of(&counts));
        prop_assert_eq!(got, reference(&config, FIRST, &counts));
    }

    #[test]
    fn detections_respect_cooldown_and_hold_cap(config in arb_config(), counts in arb_counts()) {
        let (got, _) = run(config, &chat_from_counts(FIRST, &counts), end_of(&counts));
        for detection in &got {
            prop_assert!(detection.peak_second <= detection.fired_second);
            prop_assert!(detection.fired_second - detection.peak_second <= i64::from(config.hold_cap_seconds()));
            prop_assert!(detection.intensity >= config.k());
        }
        for pair in got.windows(2) {
            prop_assert!(pair[1].fired_second - pair[0].fired_second > i64::from(config.cooldown_seconds()));
        }
    }

    #[test]
    fn shuffling_within_the_lateness_changes_nothing(
        counts in arb_counts(),
        lateness in 0u32..5000,
        seed in any::<u64>(),
    ) {
        let config = config_with(|c| c.allowed_lateness_ms = lateness);
        let messages = chat_from_counts(FIRST, &counts);
        let (in_order, in_order_tally) = run(config, &messages, end_of(&counts));
        // Each message arrives at sent_at + jitter (jitter <= lateness): when it arrives, nothing
        // later than its own time + lateness has been seen, so its second is still open.
        let mut state = seed | 1;
        let mut shuffled: Vec<(i64, ChatMessage)> = messages
            .into_iter()
            .map(|m| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                let jitter = (state % (u64::from(lateness) + 1)) as i64;
                (m.sent_at_ms + jitter, m)
            })
            .collect();
        shuffled.sort_by_key(|(arrival, _)| *arrival);
        let shuffled: Vec<ChatMessage> = shuffled.into_iter().map(|(_, m)| m).collect();
        let (got, tally) = run(config, &shuffled, end_of(&counts));
        prop_assert_eq!(tally.late, 0);
        prop_assert_eq!(tally, in_order_tally);
        // The phrases are what chat said up to the report, so they depend on what had arrived
        // by then; the detections themselves do not.
        let without_phrases =
            |detections: Vec<Detection>| detections.into_iter().map(|d| Detection { phrases: Default::default(), ..d }).collect::<Vec<_>>();
        prop_assert_eq!(without_phrases(got), without_phrases(in_order));
    }

    #[test]
    fn saving_and_restoring_state_anywhere_changes_nothing(
        config in arb_config(),
        counts in arb_counts(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..12),
    ) {
        let messages = chat_from_counts(FIRST, &counts);
        let (expected, _) = run(config, &messages, end_of(&counts));
        let mut cut_at: Vec<usize> = cuts.iter().map(|c| c.index(messages.len().max(1))).collect();
        cut_at.sort_unstable();
        let mut detector = ChannelDetector::new(BROADCASTER, config);
        let mut out = Vec::new();
        detector.observe_watermark(FIRST * 1000, &mut out);
        for (index, message) in messages.iter().enumerate() {
            if cut_at.binary_search(&index).is_ok() {
                let saved = detector.encode_state();
                prop_assert!(saved.len() < 2048, "state is {} bytes", saved.len());
                let restored = ChannelDetector::decode_state(BROADCASTER, config, &saved).unwrap();
                prop_assert_eq!(&restored, &detector);
                detector = restored;
            }
            detector.observe_message(message.sent_at_ms, 0, &message.text, &mut out);
        }
        detector.observe_watermark(end_of(&counts), &mut out);
        detector.finish(&mut out);
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn commands_never_count(counts in arb_counts(), positions in prop::collection::vec(any::<prop::sample::Index>(), 0..200)) {
        let config = DetectorConfig::default();
        let messages = chat_from_counts(FIRST, &counts);
        let (expected, _) = run(config, &messages, end_of(&counts));
        let mut with_commands = messages.clone();
        let mut inserted = positions.iter().map(|p| p.index(messages.len().max(1))).collect::<Vec<_>>();
        inserted.sort_unstable_by(|a, b| b.cmp(a));
        for at in &inserted {
            let sent_at = with_commands.get(*at).map_or(FIRST * 1000, |m| m.sent_at_ms);
            with_commands.insert(*at, ChatMessage::new(sent_at, "!uptime"));
        }
        let (got, tally) = run(config, &with_commands, end_of(&counts));
        prop_assert_eq!(tally.commands, inserted.len() as u64);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_state_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = ChannelDetector::decode_state(BROADCASTER, DetectorConfig::default(), &bytes);
    }

    #[test]
    fn arbitrary_event_times_never_panic(times in prop::collection::vec(any::<i64>(), 0..50)) {
        let mut detector = ChannelDetector::new(BROADCASTER, DetectorConfig::default());
        let mut out = Vec::new();
        for time in times {
            detector.observe_message(time, 0, "x", &mut out);
            let restored = ChannelDetector::decode_state(BROADCASTER, *detector.config(), &detector.encode_state());
            prop_assert_eq!(restored.as_ref(), Ok(&detector));
        }
        detector.finish(&mut out);
    }
}

#[test]
fn flat_chat_never_fires() {
    // Constant chat has a zero deviation (unmeasurable); gently alternating chat never reaches k.
    for pattern in [vec![3u32], vec![1, 2], vec![0, 1, 0, 2], vec![5, 6, 4]] {
        let counts: Vec<u32> = pattern.iter().copied().cycle().take(3_600).collect();
        let (got, tally) = run(DetectorConfig::default(), &chat_from_counts(FIRST, &counts), end_of(&counts));
        assert!(got.is_empty(), "{pattern:?} fired: {got:?}");
        assert_eq!(tally.messages, counts.iter().map(|&c| u64::from(c)).sum::<u64>());
    }
}

#[test]
fn a_clear_burst_fires_exactly_once_with_its_peak_inside() {
    let mut counts: Vec<u32> = (0..600).map(|i| [1, 2, 3, 0, 2][i % 5]).collect();
    for (offset, rate) in [20, 40, 80, 60, 30, 20].into_iter().enumerate() {
        counts[400 + offset] = rate;
    }
    let (got, _) = run(DetectorConfig::default(), &chat_from_counts(FIRST, &counts), end_of(&counts));
    assert_eq!(got.len(), 1, "{got:?}");
    let detection = got[0];
    assert!((FIRST + 400..=FIRST + 410).contains(&detection.peak_second), "{detection:?}");
    assert!(detection.fired_second - detection.peak_second <= 25);
    // Windows ending at 404 and 405 both hold 230 messages; 405's baseline already includes
    // the burst's first second, so 404 scores higher.
    assert_eq!(detection.peak_second, FIRST + 404);
    assert_eq!(detection.message_count, 20 + 40 + 80 + 60 + 30);
}

#[test]
fn intensity_is_the_z_score_against_the_sample_deviation() {
    // Baseline alternating 1, 3: mean 2, sample variance 300/299. Then a window of 10/s.
    let mut counts: Vec<u32> = (0..300).map(|i| if i % 2 == 0 { 1 } else { 3 }).collect();
    counts.extend([10, 10, 10, 10, 10, 0, 0, 0, 0, 0, 0]);
    // Observation must start 240 s before the scored window: start earlier with silence that
    // the baseline of the scored second does not see.
    let config = config_with(|c| c.min_baseline_fraction = 0.01);
    let (got, _) = run(config, &chat_from_counts(FIRST, &counts), end_of(&counts));
    let peak = got.iter().find(|d| d.peak_second == FIRST + 304).expect("peak at the full window");
    let std = (300.0f64 / 299.0).sqrt();
    assert_eq!(peak.baseline_mean, 2.0);
    assert!((peak.baseline_std - std).abs() < 1e-12);
    assert!((peak.intensity - 8.0 / std).abs() < 1e-12);
    assert_eq!(peak.message_count, 50);
}

#[test]
fn nothing_is_measured_during_warm_up() {
    // A burst 100 s after the channel is first seen: the baseline is not warm yet.
    let mut counts: Vec<u32> = (0..400).map(|i| [1, 2, 0][i % 3]).collect();
    for slot in &mut counts[100..110] {
        *slot = 100;
    }
    let (got, _) = run(DetectorConfig::default(), &chat_from_counts(FIRST, &counts), end_of(&counts));
    assert!(got.is_empty(), "{got:?}");
    // The same burst after 250 s of warm-up fires.
    let mut counts: Vec<u32> = (0..600).map(|i| [1, 2, 0][i % 3]).collect();
    for slot in &mut counts[250..260] {
        *slot = 100;
    }
    let (got, _) = run(DetectorConfig::default(), &chat_from_counts(FIRST, &counts), end_of(&counts));
    assert_eq!(got.len(), 1);
}

#[test]
fn a_long_burst_reports_at_the_hold_cap_then_cools_down() {
    let mut counts: Vec<u32> = (0..700).map(|i| [1, 2, 0, 3][i % 4]).collect();
    for slot in &mut counts[400..500] {
        *slot = 200;
    }
    let config = config_with(|c| c.hold_cap_seconds = 10);
    let (got, _) = run(config, &chat_from_counts(FIRST, &counts), end_of(&counts));
    let first = got[0];
    // Elevated from 400; the hold opened then reports at 400 + 10, still elevated.
    assert_eq!(first.fired_second, FIRST + 410);
    // The window fills at 404: later seconds tie, and ties keep the earlier second.
    assert_eq!(first.peak_second, FIRST + 404);
    for pair in got.windows(2) {
        assert!(pair[1].fired_second - pair[0].fired_second > 30);
    }
}

#[test]
fn late_messages_are_counted_and_dropped() {
    let mut detector = ChannelDetector::new(BROADCASTER, DetectorConfig::default());
    let mut out = Vec::new();
    assert_eq!(detector.observe_message(10_000, 0, "hi", &mut out), Outcome::Counted);
    assert_eq!(detector.observe_message(13_500, 0, "hi", &mut out), Outcome::Counted);
    // Watermark 13.5 s - 2 s lateness closes every second before 11: second 10 is closed.
    assert_eq!(detector.observe_message(10_999, 0, "late", &mut out), Outcome::Late);
    assert_eq!(detector.observe_message(11_000, 0, "in time", &mut out), Outcome::Counted);
    assert_eq!(detector.observe_message(9_000, 0, "!late command", &mut out), Outcome::Command);
    // Out of order before anything was evaluated is fine: observation then starts earlier.
    let mut fresh = ChannelDetector::new(BROADCASTER, DetectorConfig::default());
    assert_eq!(fresh.observe_message(10_500, 0, "a", &mut out), Outcome::Counted);
    assert_eq!(fresh.observe_message(8_600, 0, "b", &mut out), Outcome::Counted);
    assert_eq!(fresh.observe_message(11_000, 0, "c", &mut out), Outcome::Counted);
    assert_eq!(fresh.watermark_ms(), Some(11_000));
    assert!(out.is_empty());
}

#[test]
fn a_stale_hold_is_dropped_over_an_unmeasurable_gap() {
    // Window 1, baseline 2: two equal seconds in a row make the next second unmeasurable.
    // The hold opens at 1, peaks at 2 and then sits through unmeasurable seconds 4..=8.
    let counts = [1, 2, 10, 10, 10, 10, 10, 10, 10, 1, 1, 1];
    let tiny = |cap| {
        config_with(|c| {
            c.window_seconds = 1;
            c.baseline_seconds = 2;
            c.k = 0.5;
            c.hold_cap_seconds = cap;
            c.min_baseline_fraction = 0.01;
        })
    };
    let messages = chat_from_counts(FIRST, &counts);
    // With a cap of 3 the peak at 2 is stale at 6 (6 - 2 > 3): dropped, nothing reported.
    let (got, _) = run(tiny(3), &messages, end_of(&counts));
    assert_eq!(got, reference(&tiny(3), FIRST, &counts));
    assert!(got.is_empty(), "{got:?}");
    // With a generous cap the hold survives and reports at the first measured calm second.
    let (got, _) = run(tiny(100), &messages, end_of(&counts));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].peak_second - FIRST, got[0].fired_second - FIRST), (2, 10));
}

#[test]
fn state_is_small_and_rejects_other_settings() {
    let counts: Vec<u32> = (0..400).map(|i| (i % 50) as u32).collect();
    let mut detector = ChannelDetector::new(BROADCASTER, DetectorConfig::default());
    let mut out = Vec::new();
    for message in chat_from_counts(FIRST, &counts) {
        detector.observe_message(message.sent_at_ms, 0, &message.text, &mut out);
    }
    let saved = detector.encode_state();
    assert!(saved.len() < 2048, "{} bytes", saved.len());
    let other = config_with(|c| c.window_seconds = 10);
    assert_eq!(
        ChannelDetector::decode_state(BROADCASTER, other, &saved),
        Err(StateDecodeError::ConfigMismatch)
    );
    assert_eq!(
        ChannelDetector::decode_state(7, DetectorConfig::default(), &saved),
        Err(StateDecodeError::WrongBroadcaster { expected: 7, found: BROADCASTER })
    );
    // k and cooldown are not part of the state's shape: they may be tuned between invocations.
    let tuned = config_with(|c| c.k = 3.0);
    assert!(ChannelDetector::decode_state(BROADCASTER, tuned, &saved).is_ok());
}

#[test]
fn the_multi_channel_detector_keeps_channels_apart() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut out = Vec::new();
    let mut tally = Tally::default();
    let quiet: Vec<u32> = (0..600).map(|i| [1, 2, 0][i % 3]).collect();
    let mut loud = quiet.clone();
    for slot in &mut loud[300..310] {
        *slot = 90;
    }
    for (id, counts) in [(1u64, &quiet), (2u64, &loud)] {
        let batch = ChatBatch {
            broadcaster_id: id,
            watermark_ms: end_of(counts),
            messages: chat_from_counts(FIRST, counts),
        };
        detector.observe_batch(&batch, &mut tally, &mut out);
    }
    detector.finish(&mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].broadcaster_id, 2);
    assert_eq!(detector.channels().count(), 2);
    detector.reset_channel(2);
    assert!(detector.channel(2).is_none());
}

#[test]
fn implausible_seconds_in_a_saved_state_are_refused_and_a_fresh_start_keeps_the_cooldown() {
    for corrupt in [i64::MIN, i64::MIN / 1000 - 1, i64::MAX / 1000 + 1, i64::MAX] {
        let mut detector = SeedDetector::new(BROADCASTER, DetectorConfig::default());
        detector.last_fire = Some(corrupt);
        assert_eq!(
            ChannelDetector::decode_state(BROADCASTER, DetectorConfig::default(), &detector.encode_state()),
            Err(StateDecodeError::OutOfRange("last fire")),
            "{corrupt}"
        );
        assert_eq!(
            ChannelDetector::fresh_after(BROADCASTER, DetectorConfig::default(), Some(corrupt)).last_fire(),
            None
        );
    }
    let fresh = ChannelDetector::fresh_after(BROADCASTER, DetectorConfig::default(), Some(FIRST + 10));
    assert_eq!(fresh.last_fire(), Some(FIRST + 10));
    let restored =
        ChannelDetector::decode_state(BROADCASTER, DetectorConfig::default(), &fresh.encode_state()).unwrap();
    assert_eq!(restored.last_fire(), Some(FIRST + 10));
}
