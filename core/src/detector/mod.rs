//! Chat-burst detectors: per broadcaster, in event time, in 1-second buckets.
//!
//! Two detectors share the event-time rules below and differ in what they count:
//! - [`seed`]: messages per second scored by a z-score, the seed project's detector bit for bit;
//! - [`crowd`] (`v2`): people per second, reactions weighing more, with a Poisson test that works
//!   at low rates, a minimum of distinct chatters and a report as soon as the burst is certain.
//!
//! [`ChannelDetector`] is either, chosen by [`DetectorConfig::mode`]; everything outside this
//! module (the Lambda handler, the backtest, `highlights dev`) only sees it.
//!
//! Event time (both detectors): a broadcaster-second `S` is evaluated once, in order, as soon as
//! the broadcaster's watermark (the greatest `sent_at` or watermark record seen) minus the
//! allowed lateness reaches the end of `S`. A message for an evaluated second is late: counted in
//! the tally, never in a bucket, and it never reopens a second. Observation starts at the first
//! second seen (message, command or watermark).
//!
//! This module must stay free of clocks and I/O: everything is driven by the caller's event times.

pub mod budget;
pub mod crowd;
pub mod phrases;
pub mod seed;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::config::{DetectorConfig, DetectorMode};
use crate::model::{BroadcasterId, ChatBatch, ChatterKey};
use crate::varint::Reader;

pub use crowd::CrowdDetector;
pub use phrases::{Phrase, PhraseCount, TopPhrases};
pub use seed::SeedDetector;

/// One detected highlight: a burst of chat whose key second was reported at `fired_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub broadcaster_id: BroadcasterId,
    /// The highlight's key second (Unix seconds), fixed when it is reported: for `seed` the
    /// second of the highest intensity within the hold; for `v2` the second the burst was
    /// confirmed. Outbox and clip keys are built on it.
    pub peak_second: i64,
    /// The second at which the hold reported; a clip should be created right after it.
    pub fired_second: i64,
    /// How far above the baseline the window was: `seed`, standard deviations above the mean;
    /// `v2`, the Freeman-Tukey deviate of the window's votes against the baseline's rate.
    pub intensity: f64,
    /// Messages in the window ending at the key second.
    pub message_count: u64,
    /// Baseline mean per second at the key second (`seed`: messages; `v2`: votes).
    pub baseline_mean: f64,
    /// Baseline sample standard deviation per second at the key second (same unit).
    pub baseline_std: f64,
    /// Chat messages per second up to the fired second: what a moment card draws.
    #[serde(default)]
    pub curve: ChatCurve,
    /// The phrases chat repeated most in the seconds up to the fired second (see [`phrases`]):
    /// what a moment card lists and a clip's title quotes.
    #[serde(default)]
    pub phrases: TopPhrases,
}

/// Most seconds a [`ChatCurve`] holds.
pub const CURVE_SECONDS: usize = 30;

/// Messages per second of the seconds that end at a detection's fired second, oldest first: the
/// last [`CURVE_SECONDS`] at most, fewer when the detector remembers fewer (its window and
/// baseline) or saw chat for fewer. Read from the detector's own ring when it reports, so it costs
/// nothing per message and nothing in the saved state. Fixed-size, so a detection stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ChatCurve {
    len: u8,
    counts: [u32; CURVE_SECONDS],
}

impl ChatCurve {
    /// The last [`CURVE_SECONDS`] of `counts` (oldest first).
    pub fn from_counts(counts: &[u32]) -> Self {
        let kept = &counts[counts.len().saturating_sub(CURVE_SECONDS)..];
        let mut curve = Self { len: kept.len() as u8, counts: [0; CURVE_SECONDS] };
        curve.counts[..kept.len()].copy_from_slice(kept);
        curve
    }

    /// Messages per second, oldest first; the last is the fired second.
    pub fn counts(&self) -> &[u32] {
        &self.counts[..usize::from(self.len)]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The curve of `second - n + 1 ..= second` read from a per-second ring indexed by
    /// `second mod len`, where `count(slot)` reads a slot; `n` is bounded by what the ring still
    /// holds (`remembered` seconds ending at `second`) and by the first second seen.
    pub(crate) fn from_ring(
        second: i64,
        first_second: i64,
        remembered: usize,
        ring_len: usize,
        count: impl Fn(usize) -> u32,
    ) -> Self {
        let seen = usize::try_from(second - first_second + 1).unwrap_or(0);
        let n = CURVE_SECONDS.min(remembered).min(seen).min(ring_len);
        let mut curve = Self { len: n as u8, counts: [0; CURVE_SECONDS] };
        for (i, at) in (second + 1 - n as i64..=second).enumerate() {
            curve.counts[i] = count(at.rem_euclid(ring_len as i64) as usize);
        }
        curve
    }
}

/// The curve the specification asks for: messages of the seconds ending at `second`, as many as
/// the window and baseline (at most `CURVE_SECONDS`), none before the first second.
#[cfg(test)]
pub(crate) fn reference_curve(
    config: &DetectorConfig,
    first: i64,
    second: i64,
    at: impl Fn(i64) -> u32,
) -> crate::ChatCurve {
    let remembered = i64::from(config.window_seconds() + config.baseline_seconds());
    let from = first.max(second + 1 - remembered.min(CURVE_SECONDS as i64));
    crate::ChatCurve::from_counts(&(from..=second).map(at).collect::<Vec<u32>>())
}

/// The top phrases the specification asks for, from the voices (second, text) the detector
/// counted before it reported, in the order it saw them: Space-Saving over texts as typed, per
/// generation, in a list; the newest two generations kept; each text's guaranteed count given to
/// the phrase it stands for. Transcribed from the [`phrases`] module docs.
#[cfg(test)]
pub(crate) fn reference_phrases<'a>(
    config: &DetectorConfig,
    voices: impl IntoIterator<Item = (i64, &'a str)>,
) -> TopPhrases {
    use std::collections::BTreeMap;
    let span = phrases::span_seconds(config);
    let mut generations: BTreeMap<i64, Vec<(&str, u32, u32)>> = BTreeMap::new();
    let mut newest: Option<i64> = None;
    for (second, text) in voices {
        if text.is_empty() || text.len() > phrases::PHRASE_BYTES {
            continue;
        }
        let generation = second.div_euclid(span);
        let latest = newest.map_or(generation, |n| n.max(generation));
        newest = Some(latest);
        if latest - generation > 1 {
            continue;
        }
        let slots = generations.entry(generation).or_default();
        if let Some(slot) = slots.iter_mut().find(|slot| slot.0 == text) {
            slot.1 += 1;
        } else if slots.len() < phrases::SKETCH_SLOTS {
            slots.push((text, 1, 0));
        } else {
            let floor = slots.iter().map(|slot| slot.1).min().unwrap();
            let index = slots.iter().position(|slot| slot.1 == floor).unwrap();
            slots[index] = (text, floor + 1, floor);
        }
    }
    let Some(newest) = newest else { return TopPhrases::default() };
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for slots in generations.range(newest - 1..=newest).map(|(_, slots)| slots) {
        for (text, count, error) in slots {
            if let Some(phrase) = Phrase::of(text) {
                *counts.entry(phrase.as_str().to_owned()).or_default() += count - error;
            }
        }
    }
    let mut ranked: Vec<(String, u32)> = counts.into_iter().filter(|(_, count)| *count > 0).collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    TopPhrases::from_entries(
        ranked.into_iter().map(|(text, count)| PhraseCount { phrase: Phrase::parse(&text).unwrap(), count }),
    )
}

impl std::fmt::Debug for ChatCurve {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.counts()).finish()
    }
}

impl Serialize for ChatCurve {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.counts().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ChatCurve {
    /// A longer list keeps its last [`CURVE_SECONDS`] seconds.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::from_counts(&Vec::<u32>::deserialize(deserializer)?))
    }
}

/// What happened to one observed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted in its second's bucket.
    Counted,
    /// A bot command: advanced the watermark, not counted.
    Command,
    /// Its second was already evaluated: dropped.
    Late,
}

/// Running counts of what the detector saw, for metrics and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub messages: u64,
    pub commands: u64,
    pub late: u64,
}

impl Tally {
    pub fn record(&mut self, outcome: Outcome) {
        self.messages += 1;
        match outcome {
            Outcome::Counted => {}
            Outcome::Command => self.commands += 1,
            Outcome::Late => self.late += 1,
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.commands += other.commands;
        self.late += other.late;
    }
}

/// Why saved detector state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateDecodeError {
    #[error("detector state ends inside {0}")]
    Truncated(&'static str),
    #[error("unsupported detector state version {0}")]
    UnsupportedVersion(u8),
    #[error("detector state was saved with other window/baseline/lateness settings")]
    ConfigMismatch,
    #[error("detector state belongs to broadcaster {found}, not {expected}")]
    WrongBroadcaster { expected: u64, found: u64 },
    #[error("detector state field {0} is out of range")]
    OutOfRange(&'static str),
    #[error("{0} bytes left over after the detector state")]
    TrailingBytes(usize),
}

/// Seconds a saved state may hold: those of an event time in milliseconds. Anything else did not
/// come from the detector and would overflow the arithmetic on seconds (`second - last_fire`).
pub const PLAUSIBLE_SECONDS: std::ops::RangeInclusive<i64> = (i64::MIN / 1000)..=(i64::MAX / 1000);

/// The event-time bookkeeping both detectors share: which seconds are closed, which still open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EventClock {
    /// First second observed; `None` until anything arrives.
    pub(crate) first_second: Option<i64>,
    /// The next second to evaluate; every earlier second is evaluated. Always
    /// `max(first_second, last_closed_second + 1)`, so it is not saved.
    pub(crate) next_second: i64,
    /// Greatest event time seen, in ms (`i64::MIN` before anything arrives).
    pub(crate) watermark_ms: i64,
    lateness_ms: i64,
}

impl EventClock {
    pub(crate) fn new(config: &DetectorConfig) -> Self {
        Self {
            first_second: None,
            next_second: 0,
            watermark_ms: i64::MIN,
            lateness_ms: i64::from(config.allowed_lateness_ms()),
        }
    }

    pub(crate) fn watermark_ms(&self) -> Option<i64> {
        (self.watermark_ms != i64::MIN).then_some(self.watermark_ms)
    }

    /// The last second that the current watermark has closed.
    #[inline]
    pub(crate) fn last_closed_second(&self) -> i64 {
        let horizon = self.watermark_ms.saturating_sub(self.lateness_ms);
        horizon.div_euclid(1000) - 1
    }

    /// Seconds that may still receive messages: `1 + ceil(lateness)` of them.
    pub(crate) fn open_span(config: &DetectorConfig) -> i64 {
        i64::from(config.allowed_lateness_ms().div_ceil(1000)) + 1
    }

    /// Notes event time `time_ms`; returns the last closed second when seconds now wait for
    /// evaluation (from `next_second` through it).
    #[inline]
    pub(crate) fn advance(&mut self, time_ms: i64) -> Option<i64> {
        let second = time_ms.div_euclid(1000);
        match self.first_second {
            None => {
                self.first_second = Some(second);
                self.next_second = second;
            }
            // Before any second is evaluated, data from a second still open may arrive out of
            // order: observation then started earlier. Every open second is >= next_second once
            // evaluation has begun, so this only fires before it has.
            Some(first) if second < first && second > self.last_closed_second() => {
                self.first_second = Some(second);
                self.next_second = second;
            }
            Some(_) => {}
        }
        if time_ms > self.watermark_ms {
            self.watermark_ms = time_ms;
            let last_closed = self.last_closed_second();
            if self.next_second <= last_closed {
                return Some(last_closed);
            }
        }
        None
    }

    /// The event time that closes every second holding data, for the end of a recorded log.
    pub(crate) fn closing_time_ms(&self) -> Option<i64> {
        self.watermark_ms().map(|watermark| {
            let end_of_second = (watermark.div_euclid(1000) + 1).saturating_mul(1000);
            end_of_second.saturating_add(self.lateness_ms)
        })
    }

    /// Restores a clock saved as its first second and watermark.
    pub(crate) fn restore(&mut self, first: i64, watermark_ms: i64) -> Result<(), StateDecodeError> {
        use StateDecodeError as E;
        let plausible = |second: i64, what| {
            if PLAUSIBLE_SECONDS.contains(&second) { Ok(second) } else { Err(E::OutOfRange(what)) }
        };
        plausible(first, "first second")?;
        plausible(watermark_ms.div_euclid(1000), "watermark")?;
        // The first second comes from an event at or before the watermark; the open seconds
        // then all fit in the rings, which the per-message path relies on.
        if first > watermark_ms.div_euclid(1000) {
            return Err(E::OutOfRange("first second"));
        }
        self.watermark_ms = watermark_ms;
        self.first_second = Some(first);
        self.next_second = first.max(self.last_closed_second() + 1);
        Ok(())
    }
}

/// Writes the head every saved state starts with: format version, broadcaster, the settings the
/// rings depend on, the ring lengths, and the flags saying which optional parts follow.
pub(crate) fn write_state_head(
    out: &mut Vec<u8>,
    version: u8,
    broadcaster_id: BroadcasterId,
    config: &DetectorConfig,
    ring_lengths: &[usize],
    flags: u8,
) {
    out.push(version);
    crate::varint::put_u64(out, broadcaster_id);
    crate::varint::put_u64(out, u64::from(config.window_seconds()));
    crate::varint::put_u64(out, u64::from(config.baseline_seconds()));
    for &length in ring_lengths {
        crate::varint::put_u64(out, length as u64);
    }
    out.push(flags);
}

/// Reads a head written by [`write_state_head`] and returns its version and flags: a state of
/// another broadcaster, settings or ring lengths, of a version not in `versions`, or with flags
/// outside `known_flags`, is refused.
pub(crate) fn read_state_head(
    reader: &mut Reader<'_>,
    versions: &[u8],
    broadcaster_id: BroadcasterId,
    config: &DetectorConfig,
    ring_lengths: &[usize],
    known_flags: u8,
) -> Result<(u8, u8), StateDecodeError> {
    use StateDecodeError as E;
    let found_version = reader.u8().ok_or(E::Truncated("version"))?;
    if !versions.contains(&found_version) {
        return Err(E::UnsupportedVersion(found_version));
    }
    let mut field = |what| reader.u64().map_err(|_| E::Truncated(what));
    let found = field("broadcaster id")?;
    if found != broadcaster_id {
        return Err(E::WrongBroadcaster { expected: broadcaster_id, found });
    }
    let mut matches = field("window")? == u64::from(config.window_seconds());
    matches &= field("baseline")? == u64::from(config.baseline_seconds());
    for &length in ring_lengths {
        matches &= field("ring length")? == length as u64;
    }
    if !matches {
        return Err(E::ConfigMismatch);
    }
    let flags = reader.u8().ok_or(E::Truncated("flags"))?;
    if flags & !known_flags != 0 {
        return Err(E::OutOfRange("flags"));
    }
    Ok((found_version, flags))
}

/// A second read from saved state, refused unless an event time in ms could have produced it.
pub(crate) fn plausible_second(reader: &mut Reader<'_>, what: &'static str) -> Result<i64, StateDecodeError> {
    let second = reader.i64().map_err(|_| StateDecodeError::Truncated(what))?;
    if PLAUSIBLE_SECONDS.contains(&second) { Ok(second) } else { Err(StateDecodeError::OutOfRange(what)) }
}

/// The detector of one broadcaster, in the mode its config names. Its state is small and can be
/// saved with [`encode_state`](Self::encode_state) and restored with
/// [`decode_state`](Self::decode_state) at any point without changing any output.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelDetector {
    Seed(SeedDetector),
    Crowd(CrowdDetector),
}

/// Forwards a call to whichever detector runs.
macro_rules! either {
    ($self:expr, $detector:ident => $call:expr) => {
        match $self {
            ChannelDetector::Seed($detector) => $call,
            ChannelDetector::Crowd($detector) => $call,
        }
    };
}

impl ChannelDetector {
    pub fn new(broadcaster_id: BroadcasterId, config: DetectorConfig) -> Self {
        match config.mode() {
            DetectorMode::Seed => Self::Seed(SeedDetector::new(broadcaster_id, config)),
            DetectorMode::V2 => Self::Crowd(CrowdDetector::new(broadcaster_id, config)),
        }
    }

    /// A fresh detector that still honours the cooldown after `last_fire` (a state that could
    /// not be restored must not let the same burst fire twice).
    pub fn fresh_after(
        broadcaster_id: BroadcasterId,
        config: DetectorConfig,
        last_fire: Option<i64>,
    ) -> Self {
        let mut detector = Self::new(broadcaster_id, config);
        let last_fire = last_fire.filter(|second| PLAUSIBLE_SECONDS.contains(second));
        either!(&mut detector, d => d.last_fire = last_fire);
        detector
    }

    /// The second of the last detection, for the cooldown.
    pub fn last_fire(&self) -> Option<i64> {
        either!(self, d => d.last_fire)
    }

    pub fn broadcaster_id(&self) -> BroadcasterId {
        either!(self, d => d.broadcaster_id)
    }

    pub fn config(&self) -> &DetectorConfig {
        either!(self, d => &d.config)
    }

    /// Greatest event time seen (ms), if anything was seen.
    pub fn watermark_ms(&self) -> Option<i64> {
        either!(self, d => d.clock.watermark_ms())
    }

    /// Whether a burst is in progress: for `seed`, a hold that has not reported yet; for `v2`,
    /// a burst already reported whose chat has not calmed down.
    pub fn has_open_hold(&self) -> bool {
        either!(self, d => d.has_open_hold())
    }

    /// Observes one chat message from `chatter`; detections that become final go to `out`.
    #[inline]
    pub fn observe_message(
        &mut self,
        sent_at_ms: i64,
        chatter: ChatterKey,
        text: &str,
        out: &mut Vec<Detection>,
    ) -> Outcome {
        match self {
            Self::Seed(d) => d.observe_message(sent_at_ms, text, out),
            Self::Crowd(d) => d.observe_message(sent_at_ms, chatter, text, out),
        }
    }

    /// Observes a watermark: event time for this broadcaster has reached `time_ms`.
    pub fn observe_watermark(&mut self, time_ms: i64, out: &mut Vec<Detection>) {
        either!(self, d => d.advance(time_ms, out));
    }

    /// Observes a whole batch (messages, then its watermark), tallying the messages.
    pub fn observe_batch(&mut self, batch: &ChatBatch, tally: &mut Tally, out: &mut Vec<Detection>) {
        // The mode is matched once per batch, not per message: this is the Lambda's hot loop.
        match self {
            Self::Seed(d) => {
                for message in &batch.messages {
                    tally.record(d.observe_message(message.sent_at_ms, &message.text, out));
                }
            }
            Self::Crowd(d) => {
                for message in &batch.messages {
                    tally.record(d.observe_message(
                        message.sent_at_ms,
                        message.chatter(),
                        &message.text,
                        out,
                    ));
                }
            }
        }
        self.observe_watermark(batch.watermark_ms, out);
    }

    /// Closes every second that holds data, as if the watermark moved past the last message by
    /// the allowed lateness. For the end of a recorded log; a live stream never needs this.
    pub fn finish(&mut self, out: &mut Vec<Detection>) {
        if let Some(closing) = either!(self, d => d.clock.closing_time_ms()) {
            self.observe_watermark(closing, out);
        }
    }

    /// Serialises the whole state (a few hundred bytes for a quiet channel with default settings).
    pub fn encode_state(&self) -> Vec<u8> {
        either!(self, d => d.encode_state())
    }

    /// Restores state saved by [`encode_state`](Self::encode_state) for `broadcaster_id`.
    ///
    /// Fails with [`StateDecodeError::ConfigMismatch`] when the mode, window, baseline or lateness
    /// changed since the state was saved; callers then start the broadcaster afresh.
    pub fn decode_state(
        broadcaster_id: BroadcasterId,
        config: DetectorConfig,
        bytes: &[u8],
    ) -> Result<Self, StateDecodeError> {
        let version = *bytes.first().ok_or(StateDecodeError::Truncated("version"))?;
        match (config.mode(), version) {
            (DetectorMode::Seed, v) if seed::STATE_VERSIONS.contains(&v) => {
                SeedDetector::decode_state(broadcaster_id, config, bytes).map(Self::Seed)
            }
            (DetectorMode::V2, v) if crowd::STATE_VERSIONS.contains(&v) => {
                CrowdDetector::decode_state(broadcaster_id, config, bytes).map(Self::Crowd)
            }
            (_, v) if seed::STATE_VERSIONS.contains(&v) || crowd::STATE_VERSIONS.contains(&v) => {
                Err(StateDecodeError::ConfigMismatch)
            }
            (_, other) => Err(StateDecodeError::UnsupportedVersion(other)),
        }
    }
}

/// Broadcaster ids are Twitch's own numbers, not attacker-chosen keys, so a multiplicative hash
/// is safe here and several times faster than SipHash on the per-message path.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (value ^ (value >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// A map keyed by broadcaster id with the cheap [`IdHasher`].
pub type BroadcasterMap<V> = HashMap<BroadcasterId, V, BuildHasherDefault<IdHasher>>;

/// Detectors for many broadcasters, created on first sight, all with one config.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    channels: BroadcasterMap<ChannelDetector>,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Self { config, channels: BroadcasterMap::default() }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// The detector of `broadcaster_id`, created empty on first use.
    #[inline]
    pub fn channel_mut(&mut self, broadcaster_id: BroadcasterId) -> &mut ChannelDetector {
        let config = self.config;
        self.channels.entry(broadcaster_id).or_insert_with(|| ChannelDetector::new(broadcaster_id, config))
    }

    pub fn channel(&self, broadcaster_id: BroadcasterId) -> Option<&ChannelDetector> {
        self.channels.get(&broadcaster_id)
    }

    /// Replaces a broadcaster's detector, e.g. with state restored from storage.
    pub fn insert_channel(&mut self, detector: ChannelDetector) {
        self.channels.insert(detector.broadcaster_id(), detector);
    }

    /// Forgets a broadcaster, so its baseline warms up afresh (a new stream went online).
    pub fn reset_channel(&mut self, broadcaster_id: BroadcasterId) {
        self.channels.remove(&broadcaster_id);
    }

    pub fn channels(&self) -> impl Iterator<Item = &ChannelDetector> {
        self.channels.values()
    }

    #[inline]
    pub fn observe_message(
        &mut self,
        broadcaster_id: BroadcasterId,
        sent_at_ms: i64,
        chatter: ChatterKey,
        text: &str,
        out: &mut Vec<Detection>,
    ) -> Outcome {
        self.channel_mut(broadcaster_id).observe_message(sent_at_ms, chatter, text, out)
    }

    pub fn observe_watermark(
        &mut self,
        broadcaster_id: BroadcasterId,
        time_ms: i64,
        out: &mut Vec<Detection>,
    ) {
        self.channel_mut(broadcaster_id).observe_watermark(time_ms, out);
    }

    pub fn observe_batch(&mut self, batch: &ChatBatch, tally: &mut Tally, out: &mut Vec<Detection>) {
        self.channel_mut(batch.broadcaster_id).observe_batch(batch, tally, out);
    }

    /// [`ChannelDetector::finish`] for every broadcaster, in broadcaster-id order.
    pub fn finish(&mut self, out: &mut Vec<Detection>) {
        let mut ids: Vec<_> = self.channels.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.channel_mut(id).finish(out);
        }
    }
}
