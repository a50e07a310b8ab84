//! v2 detector tests: a from-the-definition reference model compared against the incremental
//! detector on random chat, plus the behaviour the product promises (spam and bot pairs never
//! fire, a crowd fires once, early; state is small and survives save/restore anywhere).

use super::*;
use crate::config::{DetectorMode, RawConfig};
use crate::detector::ChannelDetector;
use crate::model::ChatMessage;
use proptest::prelude::*;

const BROADCASTER: u64 = 42;
const FIRST: i64 = 1_700_000_000;
const TEXTS: [&str; 5] = [
    "hello there",
    "KEKW",
    "!uptime",
    "what",
    "I have been watching this streamer for years and this is without any doubt the best moment I have ever seen here",
];

fn v2(change: impl FnOnce(&mut RawConfig)) -> DetectorConfig {
    let mut raw = RawConfig::for_mode(DetectorMode::V2);
    change(&mut raw);
    DetectorConfig::new(raw).unwrap()
}

/// Runs `chat`, saving with `save` and restoring before each message at an index in `cuts`:
/// each restored detector equals the one saved, and the detections are those of an
/// uninterrupted run.
fn restored_at(
    config: DetectorConfig,
    chat: &[ChatMessage],
    cuts: &[usize],
    save: impl Fn(&ChannelDetector) -> Vec<u8>,
) -> Result<(), TestCaseError> {
    let expected = run(config, chat);
    let mut detector = ChannelDetector::new(BROADCASTER, config);
    let mut out = Vec::new();
    detector.observe_watermark(FIRST * 1000, &mut out);
    for (index, m) in chat.iter().enumerate() {
        if cuts.contains(&index) {
            let restored = ChannelDetector::decode_state(BROADCASTER, config, &save(&detector)).unwrap();
            prop_assert_eq!(&restored, &detector);
            detector = restored;
        }
        detector.observe_message(m.sent_at_ms, m.chatter(), &m.text, &mut out);
    }
    detector.finish(&mut out);
    prop_assert_eq!(out, expected);
    Ok(())
}

fn message(sent_at_ms: i64, user_id: u64, text: &str) -> ChatMessage {
    ChatMessage { user_id, ..ChatMessage::new(sent_at_ms, text) }
}

/// Feeds `messages` in order from a watermark at `FIRST`, then closes everything.
fn run(config: DetectorConfig, messages: &[ChatMessage]) -> Vec<Detection> {
    let mut detector = ChannelDetector::new(BROADCASTER, config);
    let mut out = Vec::new();
    detector.observe_watermark(FIRST * 1000, &mut out);
    for m in messages {
        detector.observe_message(m.sent_at_ms, m.chatter(), &m.text, &mut out);
    }
    detector.finish(&mut out);
    out
}

/// The specification, transcribed literally: every quantity recomputed from the messages for
/// every second, no rings, no running sums, no skipping. Messages are in time order.
fn reference(config: &DetectorConfig, messages: &[ChatMessage]) -> Vec<Detection> {
    let last = messages.last().map_or(FIRST, |m| m.sent_at_ms.div_euclid(1000));
    let seconds = (last - FIRST + 1) as usize;
    let mut points = vec![0u64; seconds];
    let mut counts = vec![0u64; seconds];
    let mut voters: Vec<Vec<usize>> = vec![Vec::new(); seconds];
    let mut anonymous = vec![0u64; seconds];
    // Each vote's time and text, in order: what the phrase sketch counts.
    let mut votes: Vec<(i64, &str)> = Vec::new();
    for m in messages.iter().filter(|m| !crate::filter::is_command(&m.text)) {
        let s = (m.sent_at_ms.div_euclid(1000) - FIRST) as usize;
        counts[s] += 1;
        if m.chatter() == crate::model::UNKNOWN_CHATTER {
            anonymous[s] += 1;
            points[s] += u64::from(vote_points(&m.text));
            votes.push((m.sent_at_ms, &m.text));
        } else if !voters[s].contains(&sketch_bit(m.chatter())) {
            voters[s].push(sketch_bit(m.chatter()));
            points[s] += u64::from(vote_points(&m.text));
            votes.push((m.sent_at_ms, &m.text));
        }
    }
    // Each second closes with the chatters its sketch merged counted back in.
    for s in 0..seconds {
        points[s] =
            u64::from(corrected_points(points[s] as u32, voters[s].len() as u32, anonymous[s] as u32));
    }
    let inside = |s: i64| (FIRST..=last).contains(&s);
    let at = |v: &Vec<u64>, s: i64| if inside(s) { v[(s - FIRST) as usize] } else { 0 };
    let (w, b) = (i64::from(config.window_seconds()), i64::from(config.baseline_seconds()));
    let mut out = Vec::new();
    let (mut burst, mut last_fire): (Option<i64>, Option<i64>) = (None, None);
    // `finish` closes the last message's second, so evaluate through it.
    for second in FIRST..=last {
        if second - w + 1 - FIRST < config.warmup_seconds() {
            continue;
        }
        let window: Vec<i64> = (second - w + 1..=second).collect();
        let window_points: u64 = window.iter().map(|&s| at(&points, s)).sum();
        let baseline: Vec<u64> = (second - w - b + 1..=second - w).map(|s| at(&points, s)).collect();
        let baseline_points: u64 = baseline.iter().sum();
        let squares: u128 = baseline.iter().map(|&p| u128::from(p) * u128::from(p)).sum();
        let score = |points: u64| {
            Measurement::new(
                config.window_seconds(),
                config.baseline_seconds(),
                points,
                baseline_points,
                squares,
            )
        };
        let passes = |m: &Measurement| m.z >= config.k() && m.votes >= config.min_ratio() * m.expected;
        let mut measurement = score(window_points);
        let mut elevated = passes(&measurement);
        if elevated {
            let mut union = [0u64; SKETCH_WORDS];
            let (mut votes, mut unknown) = (0u64, 0u64);
            for &s in window.iter().filter(|&&s| inside(s)) {
                let index = (s - FIRST) as usize;
                for &bit in &voters[index] {
                    union[bit / 64] |= 1 << (bit % 64);
                }
                votes += chatters_behind(voters[index].len() as u32) + anonymous[index];
                unknown += anonymous[index];
            }
            let known = if union.iter().all(|&x| x == 0) { 0 } else { estimate_chatters(&union) };
            let chatters = known + unknown;
            let people = (u128::from(window_points) * u128::from(window_people(chatters, votes)))
                .checked_div(u128::from(votes))
                .unwrap_or(0) as u64;
            measurement = score(people);
            elevated = passes(&measurement) && chatters >= u64::from(config.min_chatters());
        }
        if let Some(reported) = burst {
            if !elevated || second - reported >= i64::from(config.hold_cap_seconds()) {
                burst = None;
            }
            continue;
        }
        let cooling = last_fire.is_some_and(|f| second - f <= i64::from(config.cooldown_seconds()));
        if elevated && !cooling {
            out.push(Detection {
                broadcaster_id: BROADCASTER,
                peak_second: second,
                fired_second: second,
                intensity: measurement.z,
                message_count: window.iter().map(|&s| at(&counts, s)).sum(),
                baseline_mean: measurement.rate,
                baseline_std: measurement.std,
                curve: super::super::reference_curve(config, FIRST, second, |s| at(&counts, s) as u32),
                // The detector reports when the first message past the lateness arrives.
                phrases: super::super::reference_phrases(
                    config,
                    votes
                        .iter()
                        .filter(|(ms, _)| *ms < (second + 1) * 1000 + i64::from(config.allowed_lateness_ms()))
                        .map(|(ms, text)| (ms.div_euclid(1000), *text)),
                ),
            });
            last_fire = Some(second);
            burst = Some(second);
        }
    }
    crate::detector::budget::reference_budget(config.clips_per_hour(), out)
}

/// Random chat: per second a few messages from a small crowd, now and then a burst from many.
fn arb_chat() -> impl Strategy<Value = Vec<ChatMessage>> {
    prop::collection::vec((0u32..4, prop::bool::weighted(0.06), any::<u64>()), 20..160).prop_map(|seconds| {
        let mut messages = Vec::new();
        for (offset, (quiet, burst, seed)) in seconds.into_iter().enumerate() {
            let count = if burst { 12 + (seed % 20) as u32 } else { quiet };
            for j in 0..count {
                let mix = seed.rotate_left(j * 7) ^ u64::from(j);
                // Chatter 0 is an unknown chatter; in a burst most chatters are new.
                let user = if burst { 100 + (mix % 400) } else { mix % 6 };
                let text = TEXTS[(mix >> 20) as usize % TEXTS.len()];
                let ms = (FIRST + offset as i64) * 1000 + i64::from(j) * 1000 / i64::from(count);
                messages.push(message(ms, user, text));
            }
        }
        messages
    })
}

fn arb_config() -> impl Strategy<Value = DetectorConfig> {
    (
        (1u32..6, 4u32..40, 1.0f64..4.0, 1u32..12, 0u32..12),
        (0.05f64..0.9, 1u32..6, 1.0f64..3.0, 0u32..3_000),
        prop::option::of(1u32..4),
    )
        .prop_map(
            |(
                (window, baseline, k, hold_cap, cooldown),
                (fraction, min_chatters, min_ratio, lateness),
                clips,
            )| {
                v2(|c| {
                    c.clips_per_hour = clips;
                    c.window_seconds = window;
                    c.baseline_seconds = baseline;
                    c.k = k;
                    c.hold_cap_seconds = hold_cap;
                    c.cooldown_seconds = cooldown;
                    c.min_baseline_fraction = fraction;
                    c.min_chatters = min_chatters;
                    c.min_ratio = min_ratio;
                    c.allowed_lateness_ms = lateness;
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn matches_the_reference_model(config in arb_config(), chat in arb_chat()) {
        prop_assert_eq!(run(config, &chat), reference(&config, &chat));
    }

    #[test]
    fn saving_and_restoring_state_anywhere_changes_nothing(
        config in arb_config(),
        chat in arb_chat(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..6),
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|i| i.index(chat.len().max(1))).collect();
        restored_at(config, &chat, &cuts, ChannelDetector::encode_state)?;
    }

    /// A state saved before messages were kept for the recent seconds only (version 4) is read
    /// as the detector that saved it, and it goes on as if never saved.
    #[test]
    fn a_state_saved_by_version_4_is_still_read(
        config in arb_config(),
        chat in arb_chat(),
        cut in any::<prop::sample::Index>(),
    ) {
        restored_at(config, &chat, &[cut.index(chat.len().max(1))], |detector| {
            let ChannelDetector::Crowd(crowd) = detector else { unreachable!("a v2 config") };
            // Version 4's writer kept every second's messages: as many as points, say.
            let mut old = crowd.clone();
            let (memory, ring) = (old.message_memory(), old.seconds.len());
            for second in memory.end - ring as i64..memory.start {
                let counts = &mut old.seconds[ring_slot(second, ring)];
                counts.messages = counts.points;
            }
            let saved = old.encode_state_as(4);
            assert_eq!(saved[0], 4);
            saved
        })?;
    }

    #[test]
    fn arbitrary_state_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..900)) {
        let mut framed = vec![STATE_VERSION];
        framed.extend_from_slice(&bytes);
        for candidate in [&bytes[..], &framed[..]] {
            if let Ok(mut detector) = ChannelDetector::decode_state(BROADCASTER, v2(|_| {}), candidate) {
                let mut out = Vec::new();
                detector.observe_message(FIRST * 1000, 7, "KEKW", &mut out);
                detector.observe_watermark(FIRST * 1000 + 400_000, &mut out);
            }
        }
    }

    #[test]
    fn arbitrary_event_times_never_panic(times in prop::collection::vec(any::<i64>(), 0..50)) {
        let mut detector = ChannelDetector::new(BROADCASTER, v2(|_| {}));
        let mut out = Vec::new();
        for (i, t) in times.iter().enumerate() {
            detector.observe_message(*t, i as u64, "KEKW", &mut out);
        }
        detector.finish(&mut out);
    }
}

/// Steady chat for `seconds` from a crowd of 40 regulars at 2 messages/s, plus `extra`.
fn steady_then(seconds: i64, extra: impl Fn(i64, &mut Vec<ChatMessage>)) -> Vec<ChatMessage> {
    let mut messages = Vec::new();
    for s in 0..seconds {
        let base = (FIRST + s) * 1000;
        messages.push(message(base + 100, 1 + (s as u64 * 7) % 40, "hello there"));
        messages.push(message(base + 600, 1 + (s as u64 * 13) % 40, TEXTS[(s % 2) as usize]));
        extra(s, &mut messages);
    }
    messages.sort_by_key(|m| m.sent_at_ms);
    messages
}

#[test]
fn one_spammer_or_two_alternating_bots_never_fire() {
    let spam = steady_then(900, |s, out| {
        if (400..460).contains(&s) {
            for j in 0..10 {
                out.push(message((FIRST + s) * 1000 + 50 + j * 90, 999, "FOLLOW ME"));
            }
        }
    });
    assert_eq!(run(v2(|_| {}), &spam), []);
    let bots = steady_then(900, |s, out| {
        if (400..500).contains(&s) {
            for j in 0..6 {
                out.push(message(
                    (FIRST + s) * 1000 + 30 + j * 150,
                    990 + (j as u64 % 2),
                    "check my channel",
                ));
            }
        }
    });
    assert_eq!(run(v2(|_| {}), &bots), []);
    // The seed detector, counting messages, fires on both.
    assert!(!run(DetectorConfig::default(), &spam).is_empty());
    assert!(!run(DetectorConfig::default(), &bots).is_empty());
}

#[test]
fn a_crowd_reacting_fires_once_as_soon_as_it_is_certain() {
    let burst_at = 500;
    let chat = steady_then(900, |s, out| {
        if (burst_at..burst_at + 8).contains(&s) {
            for j in 0..15 {
                out.push(message(
                    (FIRST + s) * 1000 + 20 + j * 60,
                    10_000 + s as u64 * 100 + j as u64,
                    "KEKW",
                ));
            }
        }
    });
    let detections = run(v2(|_| {}), &chat);
    assert_eq!(detections.len(), 1, "{detections:?}");
    let detection = detections[0];
    assert_eq!(detection.peak_second, detection.fired_second, "v2 reports at its key second");
    assert!(
        (FIRST + burst_at..=FIRST + burst_at + 2).contains(&detection.fired_second),
        "reported {} s after the burst began",
        detection.fired_second - FIRST - burst_at
    );
}

#[test]
fn a_handful_of_people_reacting_in_a_quiet_channel_fires() {
    // One plain message every 4 s from 10 regulars, then 6 people react within 3 s.
    let mut chat = Vec::new();
    for s in (0..900).step_by(4) {
        chat.push(message((FIRST + s) * 1000 + 300, 1 + (s as u64 / 4) % 10, "hello there"));
    }
    for person in 0..6 {
        chat.push(message((FIRST + 600 + person / 2) * 1000 + 100 * person, 100 + person as u64, "LUL"));
    }
    chat.sort_by_key(|m| m.sent_at_ms);
    assert_eq!(run(v2(|_| {}), &chat).len(), 1);
    assert_eq!(run(DetectorConfig::default(), &chat).len(), 0, "the seed detector misses it");
}

#[test]
fn chat_without_chatters_still_detects_on_text() {
    let chat = steady_then(900, |s, out| {
        if (500..508).contains(&s) {
            for j in 0..15 {
                out.push(message((FIRST + s) * 1000 + 20 + j * 60, 0, "KEKW"));
            }
        }
    });
    let anonymous: Vec<ChatMessage> = chat.into_iter().map(|m| ChatMessage { user_id: 0, ..m }).collect();
    assert_eq!(run(v2(|_| {}), &anonymous).len(), 1);
}

#[test]
fn state_is_small_and_a_seed_state_is_refused() {
    let config = v2(|_| {});
    let mut detector = ChannelDetector::new(BROADCASTER, config);
    let mut out = Vec::new();
    for s in 0..600 {
        detector.observe_message((FIRST + s) * 1000, 1 + s as u64 % 30, "hello there", &mut out);
    }
    let quiet = detector.encode_state().len();
    assert!(quiet < 1_200, "quiet channel state is {quiet} bytes");
    // The cost model's typical channel (infra/lib/cost.ts, `stateItemBytes`): 5 messages/s from
    // 300 chatters, texts of every kind, so the phrase sketch is full.
    let mut typical = ChannelDetector::new(BROADCASTER, config);
    let texts = [
        "KEKW",
        "LUL that was close",
        "what did he just do",
        "!uptime",
        "PogChamp PogChamp",
        "no way",
        "W",
        "chat is this real",
    ];
    for s in 0..600i64 {
        for j in 0..5i64 {
            let chatter = ((s * 5 + j) * 7_919 % 300 + 1) as u64;
            let text = texts[((s * 5 + j) % texts.len() as i64) as usize];
            typical.observe_message(
                (FIRST + s) * 1000 + j * 200,
                chatter,
                &format!("{text} {}", s % 13),
                &mut out,
            );
        }
    }
    let typical = typical.encode_state().len();
    // 707 bytes when measured (2026-12-02; 982 while every second's messages were saved): with
    // its keys (about 143 bytes) the item fits DynamoDB's 1 KB write unit, one per save. Real busy
    // chat (../shared/data/busy-chat, a state every minute): 660–687 bytes median, 871 at most
    // (935–962 and 1,146 before). LZ4 takes off only about 5 % (the chatter sketches and real
    // phrases are near random): compressing items is no lever.
    assert!(typical < 800, "a typical channel's state is {typical} bytes");
    // 1,000 messages/s from 5,000 chatters for the whole history.
    let mut busy = ChannelDetector::new(BROADCASTER, config);
    for s in 0..320 {
        for j in 0..1_000 {
            let chatter = (s as u64 * 1_000 + j as u64) % 5_000 + 1;
            busy.observe_message((FIRST + s) * 1000 + j, chatter, "KEKW", &mut out);
        }
    }
    let size = busy.encode_state().len();
    assert!(size <= 16 * 1024, "busy channel state is {size} bytes");
    let seed = ChannelDetector::new(BROADCASTER, DetectorConfig::default()).encode_state();
    assert_eq!(
        ChannelDetector::decode_state(BROADCASTER, config, &seed),
        Err(StateDecodeError::ConfigMismatch)
    );
    assert_eq!(
        ChannelDetector::decode_state(BROADCASTER, DetectorConfig::default(), &busy.encode_state()),
        Err(StateDecodeError::ConfigMismatch)
    );
}

/// Found by the chaos suite's load row: at 1,000 messages a second from 4,000 regulars, as
/// reactive in calm chat as in the burst, a burst of 2,500 different viewers filled only 1.6 times
/// the sketch bits of a calm second, so v2 never fired. Counted back in, the burst weighs its
/// people; the calm chat around it still fires nothing.
#[test]
fn a_busy_channel_s_crowd_is_seen_past_the_sketch_s_saturation() {
    let config = v2(|_| {});
    let mut messages = Vec::new();
    let mut next = 7u64;
    for s in 0..400i64 {
        let burst = (360..364).contains(&s);
        let count = if burst { 2_500 } else { 1_000 };
        for j in 0..count {
            next = next.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let user = if burst { 1_000_000 + (s as u64) * 2_500 + j } else { 1 + (next >> 33) % 4_000 };
            let text =
                if burst { "KEKW" } else { ["lol", "gg", "nice one", "what"][(next >> 20) as usize % 4] };
            messages.push(message((FIRST + s) * 1000 + (j * 1000 / count) as i64, user, text));
        }
    }
    let found = run(config, &messages);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!((FIRST + 360..FIRST + 364).contains(&found[0].peak_second), "{found:?}");
    // Before the correction: 2,500 viewers set about 935 of 1,024 bits, calm seconds about 600.
    assert!(chatters_behind(935) > 2_300 && chatters_behind(600) > 850, "linear counting");
    assert_eq!(corrected_points(60, 30, 0), 60, "a sparse sketch changes nothing");
    assert_eq!(corrected_points(80, 40, 0), 82, "40 chatters set about 41 bits' worth");
    assert_eq!(corrected_points(80, 40, 3), 80, "unknown chatters: left as they are");
}
