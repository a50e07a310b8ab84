//! The seed detector: messages per second, a sliding window scored against a baseline z-score.
//!
//! Semantics (they are the measured behaviour of the seed project's detector; change them only
//! with the golden tests):
//! - A broadcaster-second `S` is evaluated once, in order, as soon as the broadcaster's watermark
//!   (the greatest `sent_at` or watermark record seen) minus the allowed lateness reaches the end of
//!   `S`, i.e. `watermark - lateness >= (S + 1) * 1000`. A message for an evaluated second is late:
//!   counted in the tally, never in a bucket, and it never reopens a second.
//! - The window is the seconds `[S - window + 1, S]`; the baseline is the `baseline` seconds just
//!   before the window. A second without messages counts 0.
//! - Warm-up: `S` is unmeasurable until the broadcaster has been observed for at least
//!   `ceil(min_baseline_fraction × baseline)` seconds before the window starts. Observation starts
//!   at the first second seen (message, command or watermark).
//! - The baseline mean and sample standard deviation (n − 1) come from running integer sums;
//!   a deviation of 0 makes `S` unmeasurable. `intensity = (window_count / window − mean) / std`,
//!   and `S` is elevated when `intensity >= k`.
//! - Hold: before anything else, a hold whose peak is more than `hold_cap` seconds old is dropped.
//!   An unmeasurable `S` leaves an open hold untouched. An elevated `S` opens a hold unless
//!   `S − last_fire <= cooldown`. While elevated, a strictly greater intensity replaces the peak
//!   (ties keep the earlier second). The hold reports its peak at the first measured `S` that is
//!   not elevated, or when `S − hold_start >= hold_cap`; that `S` becomes `last_fire`.
//!
//! Cost: O(1) per message and per evaluated second. Long silences are skipped in O(1) because an
//! all-zero history can only produce unmeasurable seconds.
//!
//! This module must stay free of clocks and I/O: everything is driven by the caller's event times.

use crate::config::DetectorConfig;
use crate::filter::is_command;
use crate::model::BroadcasterId;
use crate::varint::{self, Reader};

use super::budget::ClipBudget;
use super::phrases::PhraseSketch;
use super::{
    Detection, EventClock, Outcome, StateDecodeError, plausible_second, read_state_head, write_state_head,
};
#[derive(Debug, Clone, Copy, PartialEq)]
struct Measurement {
    second: i64,
    intensity: f64,
    message_count: u64,
    mean: f64,
    std: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Hold {
    start: i64,
    peak: Measurement,
}

/// The seed detector of one broadcaster (see [`super::ChannelDetector`] for the common API).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedDetector {
    pub(super) broadcaster_id: BroadcasterId,
    pub(super) config: DetectorConfig,
    pub(super) clock: EventClock,
    /// Per-second message counts, indexed by `second mod counts.len()`. Holds the history the
    /// next evaluation needs (window + baseline) and the seconds still open.
    counts: Box<[u32]>,
    // Running sums for the last evaluated second; derived from `counts`, never stored.
    window_sum: u64,
    baseline_sum: u64,
    baseline_squares: u128,
    hold: Option<Hold>,
    pub(super) last_fire: Option<i64>,
    /// The phrases of the last seconds' messages.
    phrases: PhraseSketch,
    budget: ClipBudget,
}

/// The first byte of a saved seed state: 3 since the phrase sketch, which follows everything
/// else; a state of version 1 (before it) is read with an empty sketch.
pub(super) const STATE_VERSION: u8 = 3;
pub(super) const STATE_VERSIONS: [u8; 2] = [1, STATE_VERSION];

const HAS_FIRST: u8 = 1;
const HAS_HOLD: u8 = 2;
const HAS_LAST_FIRE: u8 = 4;

impl SeedDetector {
    pub fn new(broadcaster_id: BroadcasterId, config: DetectorConfig) -> Self {
        Self {
            broadcaster_id,
            config,
            clock: EventClock::new(&config),
            counts: vec![0; ring_len(&config)].into_boxed_slice(),
            window_sum: 0,
            baseline_sum: 0,
            baseline_squares: 0,
            hold: None,
            last_fire: None,
            phrases: PhraseSketch::new(&config),
            budget: ClipBudget::default(),
        }
    }

    /// Whether a hold is open (a burst in progress that has not reported yet).
    pub fn has_open_hold(&self) -> bool {
        self.hold.is_some()
    }

    /// Observes one chat message; detections that become final are appended to `out`.
    #[inline]
    pub(super) fn observe_message(
        &mut self,
        sent_at_ms: i64,
        text: &str,
        out: &mut Vec<Detection>,
    ) -> Outcome {
        self.advance(sent_at_ms, out);
        if is_command(text) {
            return Outcome::Command;
        }
        let second = sent_at_ms.div_euclid(1000);
        if second < self.clock.next_second {
            return Outcome::Late;
        }
        let slot = self.slot(second);
        self.counts[slot] = self.counts[slot].saturating_add(1);
        self.phrases.observe(second, text);
        Outcome::Counted
    }

    #[inline]
    fn slot(&self, second: i64) -> usize {
        second.rem_euclid(self.counts.len() as i64) as usize
    }

    #[inline]
    pub(super) fn advance(&mut self, time_ms: i64, out: &mut Vec<Detection>) {
        if let Some(last_closed) = self.clock.advance(time_ms) {
            self.close_through(last_closed, out);
        }
    }

    fn close_through(&mut self, last_closed: i64, out: &mut Vec<Detection>) {
        while self.clock.next_second <= last_closed {
            if self.window_sum == 0 && self.baseline_sum == 0 {
                // With an all-zero history every second up to the next one with messages is
                // unmeasurable (deviation 0): skip them all, applying only the stale-hold rule.
                let skip_to = self.next_counted_second(last_closed).map_or(last_closed, |s| s - 1);
                if skip_to >= self.clock.next_second {
                    self.drop_stale_hold(skip_to);
                    self.clock.next_second = skip_to + 1;
                    continue;
                }
            }
            self.evaluate(self.clock.next_second, out);
            self.clock.next_second += 1;
        }
    }

    /// The first second in `[next_second, last_closed]` with a non-zero count. Counts exist only
    /// for open seconds, which lie within `1 + ceil(lateness)` seconds of `next_second`.
    fn next_counted_second(&self, last_closed: i64) -> Option<i64> {
        let open_span = i64::from(self.config.allowed_lateness_ms().div_ceil(1000)) + 1;
        let last = last_closed.min(self.clock.next_second + open_span);
        (self.clock.next_second..=last).find(|&second| self.counts[self.slot(second)] != 0)
    }

    fn drop_stale_hold(&mut self, second: i64) {
        if self.hold.is_some_and(|hold| second - hold.peak.second > i64::from(self.config.hold_cap_seconds()))
        {
            self.hold = None;
        }
    }

    fn evaluate(&mut self, second: i64, out: &mut Vec<Detection>) {
        let window = i64::from(self.config.window_seconds());
        let baseline = i64::from(self.config.baseline_seconds());
        let entering = u64::from(self.counts[self.slot(second)]);
        let to_baseline = u64::from(self.counts[self.slot(second - window)]);
        let leaving_slot = self.slot(second - window - baseline);
        let leaving = u64::from(self.counts[leaving_slot]);
        self.window_sum = self.window_sum + entering - to_baseline;
        self.baseline_sum = self.baseline_sum + to_baseline - leaving;
        self.baseline_squares =
            self.baseline_squares + u128::from(to_baseline * to_baseline) - u128::from(leaving * leaving);
        // The slot now belongs to the open second `second + 1 + ceil(lateness)`, which cannot
        // have received a message yet.
        self.counts[leaving_slot] = 0;

        self.drop_stale_hold(second);
        let Some(measurement) = self.measure(second) else {
            return;
        };
        let elevated = measurement.intensity >= self.config.k();
        let hold = match &mut self.hold {
            Some(hold) => {
                if elevated && measurement.intensity > hold.peak.intensity {
                    hold.peak = measurement;
                }
                *hold
            }
            None => {
                let cooling = self
                    .last_fire
                    .is_some_and(|fired| second - fired <= i64::from(self.config.cooldown_seconds()));
                if !elevated || cooling {
                    return;
                }
                *self.hold.insert(Hold { start: second, peak: measurement })
            }
        };
        if !elevated || second - hold.start >= i64::from(self.config.hold_cap_seconds()) {
            let detection = Detection {
                broadcaster_id: self.broadcaster_id,
                peak_second: hold.peak.second,
                fired_second: second,
                intensity: hold.peak.intensity,
                message_count: hold.peak.message_count,
                baseline_mean: hold.peak.mean,
                baseline_std: hold.peak.std,
                curve: self.curve(second),
                phrases: self.phrases.top(),
            };
            // Over the channel's clip budget: not reported, though the cooldown still runs.
            if self.budget.admit(self.config.clips_per_hour(), detection.peak_second, detection.intensity) {
                out.push(detection);
            }
            self.last_fire = Some(second);
            self.hold = None;
        }
    }

    /// The chat curve ending at `second`, just evaluated: the ring holds the window and baseline.
    fn curve(&self, second: i64) -> super::ChatCurve {
        let remembered = (self.config.window_seconds() + self.config.baseline_seconds()) as usize;
        let first = self.clock.first_second.unwrap_or(second);
        super::ChatCurve::from_ring(second, first, remembered, self.counts.len(), |slot| self.counts[slot])
    }

    fn measure(&self, second: i64) -> Option<Measurement> {
        let first = self.clock.first_second?;
        let window = i64::from(self.config.window_seconds());
        if second - window + 1 - first < self.config.warmup_seconds() {
            return None;
        }
        let n = u128::from(self.config.baseline_seconds());
        let sum = u128::from(self.baseline_sum);
        // n·Σx² − (Σx)² is exact in integers; it is 0 exactly when every count is equal.
        let spread = n * self.baseline_squares - sum * sum;
        if spread == 0 {
            return None;
        }
        let variance = spread as f64 / (n * (n - 1)) as f64;
        let std = variance.sqrt();
        let mean = self.baseline_sum as f64 / n as f64;
        let intensity = (self.window_sum as f64 / window as f64 - mean) / std;
        Some(Measurement { second, intensity, message_count: self.window_sum, mean, std })
    }

    /// Serialises the whole state (about 350 bytes for a quiet channel with default settings).
    pub fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.counts.len() * 2);
        let flags = if self.clock.first_second.is_some() { HAS_FIRST } else { 0 }
            | if self.hold.is_some() { HAS_HOLD } else { 0 }
            | if self.last_fire.is_some() { HAS_LAST_FIRE } else { 0 };
        write_state_head(
            &mut out,
            STATE_VERSION,
            self.broadcaster_id,
            &self.config,
            &[self.counts.len()],
            flags,
        );
        if let Some(first) = self.clock.first_second {
            varint::put_i64(&mut out, first);
            varint::put_i64(&mut out, self.clock.watermark_ms);
            for &count in self.counts.iter() {
                varint::put_u64(&mut out, u64::from(count));
            }
        }
        if let Some(hold) = self.hold {
            varint::put_i64(&mut out, hold.start);
            varint::put_i64(&mut out, hold.peak.second);
            out.extend_from_slice(&hold.peak.intensity.to_le_bytes());
            varint::put_u64(&mut out, hold.peak.message_count);
            out.extend_from_slice(&hold.peak.mean.to_le_bytes());
            out.extend_from_slice(&hold.peak.std.to_le_bytes());
        }
        if let Some(fired) = self.last_fire {
            varint::put_i64(&mut out, fired);
        }
        self.phrases.encode(&mut out);
        self.budget.encode(&mut out);
        out
    }

    /// Restores state saved by [`encode_state`](Self::encode_state) for `broadcaster_id`.
    ///
    /// Fails with [`StateDecodeError::ConfigMismatch`] when the window, baseline or lateness
    /// changed since the state was saved; callers then start the broadcaster afresh.
    pub fn decode_state(
        broadcaster_id: BroadcasterId,
        config: DetectorConfig,
        bytes: &[u8],
    ) -> Result<Self, StateDecodeError> {
        use StateDecodeError as E;
        let mut reader = Reader::new(bytes);
        let u64_field = |reader: &mut Reader<'_>, what| reader.u64().map_err(|_| E::Truncated(what));
        let i64_field = |reader: &mut Reader<'_>, what| reader.i64().map_err(|_| E::Truncated(what));
        let f64_field = |reader: &mut Reader<'_>, what| {
            let bytes = reader.take(8).ok_or(E::Truncated(what))?;
            Ok::<f64, E>(f64::from_le_bytes(bytes.try_into().expect("eight bytes")))
        };
        let mut detector = Self::new(broadcaster_id, config);
        let rings = [detector.counts.len()];
        let known = HAS_FIRST | HAS_HOLD | HAS_LAST_FIRE;
        let (version, flags) =
            read_state_head(&mut reader, &STATE_VERSIONS, broadcaster_id, &config, &rings, known)?;
        if flags & HAS_FIRST != 0 {
            let first = plausible_second(&mut reader, "first second")?;
            let watermark = i64_field(&mut reader, "watermark")?;
            detector.clock.restore(first, watermark)?;
            for slot in 0..detector.counts.len() {
                let count = u64_field(&mut reader, "counts")?;
                detector.counts[slot] = u32::try_from(count).map_err(|_| E::OutOfRange("counts"))?;
            }
            detector.recompute_sums();
        }
        if flags & HAS_HOLD != 0 {
            let start = plausible_second(&mut reader, "hold start")?;
            let second = plausible_second(&mut reader, "hold peak")?;
            let intensity = f64_field(&mut reader, "hold intensity")?;
            let message_count = u64_field(&mut reader, "hold count")?;
            let mean = f64_field(&mut reader, "hold mean")?;
            let std = f64_field(&mut reader, "hold std")?;
            if !(intensity.is_finite() && mean.is_finite() && std.is_finite()) || second < start {
                return Err(E::OutOfRange("hold"));
            }
            detector.hold =
                Some(Hold { start, peak: Measurement { second, intensity, message_count, mean, std } });
        }
        if flags & HAS_LAST_FIRE != 0 {
            detector.last_fire = Some(plausible_second(&mut reader, "last fire")?);
        }
        if version == STATE_VERSION {
            detector.phrases = PhraseSketch::decode(&mut reader, &config)?;
            detector.budget = ClipBudget::decode(&mut reader)?;
        }
        if reader.remaining() != 0 {
            return Err(E::TrailingBytes(reader.remaining()));
        }
        Ok(detector)
    }

    fn recompute_sums(&mut self) {
        let last = self.clock.next_second - 1;
        let window = i64::from(self.config.window_seconds());
        let baseline = i64::from(self.config.baseline_seconds());
        let count = |second: i64| u64::from(self.counts[self.slot(second)]);
        let window_sum = (last - window + 1..=last).map(count).sum();
        let baseline = last - window - baseline + 1..=last - window;
        let baseline_sum = baseline.clone().map(count).sum();
        let baseline_squares = baseline.map(|second| u128::from(count(second)).pow(2)).sum();
        self.window_sum = window_sum;
        self.baseline_sum = baseline_sum;
        self.baseline_squares = baseline_squares;
    }
}

/// Ring length: the window and baseline the next evaluation reads, plus the open seconds
/// (up to `1 + ceil(lateness)` of them).
fn ring_len(config: &DetectorConfig) -> usize {
    (config.window_seconds() + config.baseline_seconds() + 1 + config.allowed_lateness_ms().div_ceil(1000))
        as usize
}

#[cfg(test)]
#[path = "seed_tests.rs"]
mod tests;
