//! The v2 detector: counts people, not messages.
//!
//! Why: a message-rate rule fires when one user or two bots flood chat, cannot tell a handful of
//! people reacting in a small channel from noise (a z-score over a tiny deviation), and reports
//! only when chat calms down. Here:
//! - **Votes.** Within a second each chatter votes once, on their first message; later messages
//!   of the same chatter in that second count as messages but not as votes. A vote weighs
//!   [`VOTE_POINTS`] points, a reaction ([`crate::reaction`]: emotes, laughter, shouting, `???`,
//!   "clip it") [`REACTION_POINTS`], a long text (copypasta) [`LONG_POINTS`]. Messages of
//!   unknown chatters (sources without user ids) each vote: text signals alone.
//! - **Who voted** in a second is a 1,024-bit sketch (one bit per chatter hash), kept only for
//!   the window's seconds and the seconds still open; older seconds keep counts only. A sketch
//!   collision merges two chatters; when the second closes, its points are scaled by the
//!   chatters the sketch's occupancy stands for over its bits ([`corrected_points`]: linear
//!   counting), which changes nothing below about 30 chatters a second and keeps 1,000 a second
//!   measurable. The sketch is part of the specification, so a reference model reproduces it
//!   exactly.
//! - **Elevated** second `S`: the window `[S - window + 1, S]` against the `baseline` seconds
//!   before it, with `x` the window's votes (points / [`VOTE_POINTS`]), `λ` the baseline's votes
//!   per second (at least one vote over the whole baseline) and `μ = λ · window`:
//!   1. `z = min(FT, D) >= k`, where `FT = √x + √(x+1) − √(4μ+1)` is the Freeman-Tukey deviate
//!      (a Poisson test that stays honest at a few votes per minute) and
//!      `D = (x − μ) / √(window · max(s², λ))` with `s²` the baseline's per-second sample
//!      variance (busy chat is over-dispersed; a Poisson test alone would fire on every wave);
//!   2. `x >= min_ratio · μ`: a moment is a multiple of the usual rate, not a wiggle;
//!   3. at least `min_chatters` distinct chatters in the window (the union of its sketches,
//!      linear counting, plus unknown chatters' messages): one spammer or two bots never fire.
//! - **Report early.** The first elevated second outside the cooldown (`S − last_fire >
//!   cooldown`) is reported at once: the detection's key second is `S` and never moves. The burst
//!   then stays open (nothing more is reported) until a measured second is not elevated or
//!   `hold_cap` seconds have passed since it was reported.
//! - Warm-up, lateness and skipping over silence are those of the seed detector.
//!
//! Cost: O(1) per message (one hash, one bit, one text classification per chatter-second) and
//! O(window) per evaluated second. State: a few hundred bytes for a quiet channel, about 3 KB at
//! 1,000 messages/s.

use crate::config::DetectorConfig;
use crate::filter::is_command;
use crate::model::{BroadcasterId, ChatterKey, UNKNOWN_CHATTER};
use crate::reaction::{Tone, tone};
use crate::varint::{self, Reader};

use super::budget::ClipBudget;
use super::phrases::PhraseSketch;
use super::{
    Detection, EventClock, Outcome, StateDecodeError, plausible_second, read_state_head, write_state_head,
};

/// Points of one chatter's vote in a second, by the tone of their first message in it.
pub const VOTE_POINTS: u32 = 2;
pub const REACTION_POINTS: u32 = 4;
pub const LONG_POINTS: u32 = 1;

/// Bits in one second's chatter sketch.
pub const SKETCH_BITS: usize = 1024;
const SKETCH_WORDS: usize = SKETCH_BITS / 64;
type Sketch = [u64; SKETCH_WORDS];

/// The first byte of a saved v2 state: 5 since messages are saved only for the seconds that may
/// still be read (4 saved them for the whole history), 4 since the phrase sketch, which follows
/// everything else; a state of version 2 (before it) is read with an empty sketch.
pub(super) const STATE_VERSION: u8 = 5;
pub(super) const STATE_VERSIONS: [u8; 3] = [2, 4, STATE_VERSION];
const HAS_FIRST: u8 = 1;
const HAS_BURST: u8 = 2;
const HAS_LAST_FIRE: u8 = 4;
/// A sketch with at most this many bits set is saved as their positions, else as raw words.
const SPARSE_SKETCH_BITS: u64 = 48;

/// The v2 detector of one broadcaster (see [`super::ChannelDetector`] for the common API).
#[derive(Debug, Clone, PartialEq)]
pub struct CrowdDetector {
    pub(super) broadcaster_id: BroadcasterId,
    pub(super) config: DetectorConfig,
    pub(super) clock: EventClock,
    /// Vote points and messages per second, indexed by `second mod seconds.len()`: the window,
    /// the baseline and the open seconds. Side by side, so a second is one cache line away.
    seconds: Box<[SecondCounts]>,
    /// Who voted, per second, indexed by `second mod sketches.len()`: window and open seconds.
    sketches: Box<[Sketch]>,
    /// Bits set in each sketch, kept as they are set, so that closing a second need not read its
    /// sketch again (the popcount's load was the detector's costliest cache miss). Derived from
    /// the sketches, never stored.
    sketch_bits: Box<[u32]>,
    /// Messages of unknown chatters per second, same indexing as `sketches`.
    anonymous: Box<[u32]>,
    // Running sums for the last evaluated second; derived from the rings, never stored.
    window_points: u64,
    window_messages: u64,
    baseline_points: u64,
    baseline_squares: u128,
    /// The second the open burst was reported, while it lasts.
    burst: Option<i64>,
    pub(super) last_fire: Option<i64>,
    /// The phrases of the last seconds' votes.
    phrases: PhraseSketch,
    budget: ClipBudget,
}

/// One second's counts in the history ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SecondCounts {
    /// Vote points.
    points: u32,
    /// Messages (what a detection reports as its message count, and its chat curve): kept only
    /// for the last [`message_seconds`] closed seconds and the open ones, zero before, so that a
    /// saved state carries about half the bytes (a typical channel's item then fits one DynamoDB
    /// write unit).
    messages: u32,
}

/// How many closed seconds keep their message counts: the window (its message count) and the
/// chat curve (up to [`super::CURVE_SECONDS`] of the window and baseline).
fn message_seconds(config: &DetectorConfig) -> i64 {
    let window = i64::from(config.window_seconds());
    let remembered = window + i64::from(config.baseline_seconds());
    window.max((super::CURVE_SECONDS as i64).min(remembered))
}

/// The numbers behind one evaluated second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Votes in the window.
    pub votes: f64,
    /// Votes the baseline expects in a window.
    pub expected: f64,
    /// `min(FT, D)`.
    pub z: f64,
    /// Baseline votes per second, and their sample standard deviation per second.
    pub rate: f64,
    pub std: f64,
}

impl Measurement {
    /// The score of `votes` in a window of `window` seconds against a baseline of `baseline`
    /// seconds holding `baseline_points` points whose squares sum to `baseline_squares`.
    pub fn new(
        window: u32,
        baseline: u32,
        window_points: u64,
        baseline_points: u64,
        baseline_squares: u128,
    ) -> Self {
        let unit = f64::from(VOTE_POINTS);
        let n = u128::from(baseline);
        let (votes, rate, expected) = Self::votes_and_rate(window, baseline, window_points, baseline_points);
        let sum = u128::from(baseline_points);
        let spread = (n * baseline_squares).saturating_sub(sum * sum);
        let variance = spread as f64 / (n * (n - 1)) as f64 / (unit * unit);
        let freeman_tukey = votes.sqrt() + (votes + 1.0).sqrt() - (4.0 * expected + 1.0).sqrt();
        let dispersed = (votes - expected) / (f64::from(window) * variance.max(rate)).sqrt();
        Self { votes, expected, z: freeman_tukey.min(dispersed), rate, std: variance.sqrt() }
    }

    /// The window's votes, the baseline's votes per second and the votes it expects in a window:
    /// the cheap part of [`Measurement::new`], enough to rule most seconds out by the ratio.
    #[inline]
    pub fn votes_and_rate(
        window: u32,
        baseline: u32,
        window_points: u64,
        baseline_points: u64,
    ) -> (f64, f64, f64) {
        let unit = f64::from(VOTE_POINTS);
        let votes = window_points as f64 / unit;
        let rate = baseline_points.max(u64::from(VOTE_POINTS)) as f64 / unit / f64::from(baseline);
        (votes, rate, rate * f64::from(window))
    }
}

/// The points one vote with `text` weighs.
#[inline]
pub fn vote_points(text: &str) -> u32 {
    match tone(text) {
        Tone::Plain => VOTE_POINTS,
        Tone::Reaction => REACTION_POINTS,
        Tone::Long => LONG_POINTS,
    }
}

/// The sketch bit of a chatter.
#[inline]
pub fn sketch_bit(chatter: ChatterKey) -> usize {
    (chatter.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SKETCH_BITS.trailing_zeros())) as usize
}

/// Distinct chatters estimated from the union sketch of a window (linear counting), rounded.
pub fn estimate_chatters(union: &Sketch) -> u64 {
    chatters_behind(union.iter().map(|word| word.count_ones()).sum::<u32>())
}

/// Distinct chatters behind `bits` set bits of one sketch (linear counting, `−m·ln(1 − bits/m)`),
/// rounded; a full sketch counts as `m·ln m`.
pub fn chatters_behind(bits: u32) -> u64 {
    let m = SKETCH_BITS as f64;
    let zeros = (SKETCH_BITS as u32).saturating_sub(bits);
    let estimate = if zeros == 0 { m * m.ln() } else { -m * (f64::from(zeros) / m).ln() };
    estimate.round() as u64
}

/// The people a window's score counts: its distinct chatters, at most its votes. A window with
/// more chatters than the sketch has bits is a crowd whatever the exact number (its union sketch
/// saturates there and would undercount it), so its votes stand.
pub fn window_people(chatters: u64, votes: u64) -> u64 {
    if chatters >= SKETCH_BITS as u64 { votes } else { chatters.min(votes) }
}

/// A closed second's vote points with the chatters its sketch merged counted back in:
/// `points · chatters_behind(bits) / bits`. A chatter whose bit another already set does not vote,
/// so near 1,000 chatters a second the sketch would hide most of a crowd (2,500 viewers would
/// weigh 1.6 times 880). Below about 30 chatters a second the estimate rounds to the bits: nothing
/// changes. Seconds with unknown chatters (sources without user ids) are left as they are.
pub fn corrected_points(points: u32, bits: u32, anonymous: u32) -> u32 {
    if bits == 0 || anonymous != 0 {
        return points;
    }
    (u64::from(points) * chatters_behind(bits) / u64::from(bits)).min(u64::from(u32::MAX)) as u32
}

impl CrowdDetector {
    pub fn new(broadcaster_id: BroadcasterId, config: DetectorConfig) -> Self {
        let open = EventClock::open_span(&config) as usize;
        let history = (config.window_seconds() + config.baseline_seconds()) as usize + open;
        let recent = config.window_seconds() as usize + open;
        Self {
            broadcaster_id,
            config,
            clock: EventClock::new(&config),
            seconds: vec![SecondCounts::default(); history].into_boxed_slice(),
            sketches: vec![[0; SKETCH_WORDS]; recent].into_boxed_slice(),
            sketch_bits: vec![0; recent].into_boxed_slice(),
            anonymous: vec![0; recent].into_boxed_slice(),
            window_points: 0,
            window_messages: 0,
            baseline_points: 0,
            baseline_squares: 0,
            burst: None,
            last_fire: None,
            phrases: PhraseSketch::new(&config),
            budget: ClipBudget::default(),
        }
    }

    pub(super) fn has_open_hold(&self) -> bool {
        self.burst.is_some()
    }

    #[inline]
    pub(super) fn observe_message(
        &mut self,
        sent_at_ms: i64,
        chatter: ChatterKey,
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
        let slot = &mut self.seconds[ring_slot(second, self.seconds.len())];
        slot.messages = slot.messages.saturating_add(1);
        let recent = ring_slot(second, self.sketches.len());
        let votes = if chatter == UNKNOWN_CHATTER {
            self.anonymous[recent] = self.anonymous[recent].saturating_add(1);
            true
        } else {
            let bit = sketch_bit(chatter);
            let word = &mut self.sketches[recent][bit / 64];
            let mask = 1u64 << (bit % 64);
            let first_this_second = *word & mask == 0;
            *word |= mask;
            self.sketch_bits[recent] += u32::from(first_this_second);
            first_this_second
        };
        if votes {
            slot.points = slot.points.saturating_add(vote_points(text));
            self.phrases.observe(second, text);
        }
        Outcome::Counted
    }

    #[inline]
    pub(super) fn advance(&mut self, time_ms: i64, out: &mut Vec<Detection>) {
        if let Some(last_closed) = self.clock.advance(time_ms) {
            self.close_through(last_closed, out);
        }
    }

    fn close_through(&mut self, last_closed: i64, out: &mut Vec<Detection>) {
        while self.clock.next_second <= last_closed {
            if self.window_points == 0 && self.baseline_points == 0 {
                // An all-zero history up to the next second with votes: nothing can be elevated,
                // so any burst is over; skip those seconds at once.
                let skip_to = self.next_voted_second(last_closed).map_or(last_closed, |s| s - 1);
                if skip_to >= self.clock.next_second {
                    self.burst = None;
                    self.clock.next_second = skip_to + 1;
                    continue;
                }
            }
            self.evaluate(self.clock.next_second, out);
            self.clock.next_second += 1;
        }
    }

    /// The first second in `[next_second, last_closed]` with votes; only open seconds can have any.
    fn next_voted_second(&self, last_closed: i64) -> Option<i64> {
        let last = last_closed.min(self.clock.next_second + EventClock::open_span(&self.config));
        (self.clock.next_second..=last)
            .find(|&second| self.seconds[ring_slot(second, self.seconds.len())].points != 0)
    }

    fn evaluate(&mut self, second: i64, out: &mut Vec<Detection>) {
        let window = i64::from(self.config.window_seconds());
        let baseline = i64::from(self.config.baseline_seconds());
        let ring = self.seconds.len();
        let entering = ring_slot(second, ring);
        // The second is closed: its votes are final, and counted back in once, here.
        let closed = ring_slot(second, self.sketches.len());
        let bits = self.sketch_bits[closed];
        self.seconds[entering].points =
            corrected_points(self.seconds[entering].points, bits, self.anonymous[closed]);
        let to_baseline = ring_slot(second - window, ring);
        let leaving = ring_slot(second - window - baseline, ring);
        let (enter, move_, leave) = (
            u64::from(self.seconds[entering].points),
            u64::from(self.seconds[to_baseline].points),
            u64::from(self.seconds[leaving].points),
        );
        self.window_points = self.window_points + enter - move_;
        self.baseline_points = self.baseline_points + move_ - leave;
        self.baseline_squares = self.baseline_squares + u128::from(move_ * move_) - u128::from(leave * leave);
        self.window_messages = self.window_messages + u64::from(self.seconds[entering].messages)
            - u64::from(self.seconds[to_baseline].messages);
        // Read neither by the window nor by the curve any more (it aliases no open second that
        // can have received anything: the message memory is at most the window and baseline).
        self.seconds[ring_slot(second - message_seconds(&self.config), ring)].messages = 0;
        // Both slots now belong to open seconds that cannot have received anything yet.
        self.seconds[leaving] = SecondCounts::default();
        let recent = ring_slot(second - window, self.sketches.len());
        self.sketches[recent] = [0; SKETCH_WORDS];
        self.sketch_bits[recent] = 0;
        self.anonymous[recent] = 0;

        let Some(first) = self.clock.first_second else { return };
        if second - window + 1 - first < self.config.warmup_seconds() {
            return;
        }
        // Most seconds fall short of the ratio: they are ruled out before the square roots.
        let (votes, _, expected) = Measurement::votes_and_rate(
            self.config.window_seconds(),
            self.config.baseline_seconds(),
            self.window_points,
            self.baseline_points,
        );
        let mut elevated = votes >= self.config.min_ratio() * expected;
        let mut measurement = None;
        if elevated {
            let first = Measurement::new(
                self.config.window_seconds(),
                self.config.baseline_seconds(),
                self.window_points,
                self.baseline_points,
                self.baseline_squares,
            );
            elevated = self.elevated(&first);
            measurement = Some(first);
        }
        if elevated {
            // Count people, not votes: the window's distinct chatters, each weighing the
            // window's mean vote. A few accounts posting every second cannot make a crowd. The
            // votes are an upper bound of the people, so this can only lower the score.
            let (chatters, votes) = self.window_chatters(second);
            let people_points = (u128::from(self.window_points) * u128::from(window_people(chatters, votes)))
                .checked_div(u128::from(votes))
                .unwrap_or(0) as u64;
            let people = Measurement::new(
                self.config.window_seconds(),
                self.config.baseline_seconds(),
                people_points,
                self.baseline_points,
                self.baseline_squares,
            );
            elevated = self.elevated(&people) && chatters >= u64::from(self.config.min_chatters());
            measurement = Some(people);
        }
        if let Some(reported) = self.burst {
            if !elevated || second - reported >= i64::from(self.config.hold_cap_seconds()) {
                self.burst = None;
            }
            return;
        }
        let cooling =
            self.last_fire.is_some_and(|fired| second - fired <= i64::from(self.config.cooldown_seconds()));
        if let Some(measurement) = measurement.filter(|_| elevated && !cooling) {
            let detection = Detection {
                broadcaster_id: self.broadcaster_id,
                peak_second: second,
                fired_second: second,
                intensity: measurement.z,
                message_count: self.window_messages,
                baseline_mean: measurement.rate,
                baseline_std: measurement.std,
                curve: self.curve(second),
                phrases: self.phrases.top(),
            };
            // Over the channel's clip budget: not reported, though the cooldown still runs.
            if self.budget.admit(self.config.clips_per_hour(), detection.peak_second, detection.intensity) {
                out.push(detection);
            }
            self.last_fire = Some(second);
            self.burst = Some(second);
        }
    }

    /// The chat curve (messages) ending at `second`, just evaluated.
    fn curve(&self, second: i64) -> super::ChatCurve {
        let remembered = (self.config.window_seconds() + self.config.baseline_seconds()) as usize;
        let first = self.clock.first_second.unwrap_or(second);
        let seconds = &self.seconds;
        super::ChatCurve::from_ring(second, first, remembered, seconds.len(), |slot| seconds[slot].messages)
    }

    fn elevated(&self, measurement: &Measurement) -> bool {
        measurement.z >= self.config.k()
            && measurement.votes >= self.config.min_ratio() * measurement.expected
    }

    /// Distinct chatters in the window ending at `second` (known ones from the union of the
    /// window's sketches, plus every message of an unknown chatter), and the window's votes.
    fn window_chatters(&self, second: i64) -> (u64, u64) {
        let len = self.sketches.len();
        let mut union = [0u64; SKETCH_WORDS];
        let (mut anonymous, mut votes) = (0u64, 0u64);
        for s in second - i64::from(self.config.window_seconds()) + 1..=second {
            let slot = ring_slot(s, len);
            for (word, bits) in union.iter_mut().zip(&self.sketches[slot]) {
                *word |= bits;
            }
            anonymous += u64::from(self.anonymous[slot]);
            votes += u64::from(self.anonymous[slot]) + chatters_behind(self.sketch_bits[slot]);
        }
        let known = if union.iter().all(|&word| word == 0) { 0 } else { estimate_chatters(&union) };
        (known + anonymous, votes)
    }

    /// Serialises the whole state.
    pub(super) fn encode_state(&self) -> Vec<u8> {
        self.encode_state_as(STATE_VERSION)
    }

    /// The state as version `version` wrote it (tests write version 4 to check it is still read).
    pub(super) fn encode_state_as(&self, version: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.seconds.len() * 2 + self.sketches.len() * 4);
        let flags = if self.clock.first_second.is_some() { HAS_FIRST } else { 0 }
            | if self.burst.is_some() { HAS_BURST } else { 0 }
            | if self.last_fire.is_some() { HAS_LAST_FIRE } else { 0 };
        let rings = [self.seconds.len(), self.sketches.len()];
        write_state_head(&mut out, version, self.broadcaster_id, &self.config, &rings, flags);
        if let Some(first) = self.clock.first_second {
            varint::put_i64(&mut out, first);
            varint::put_i64(&mut out, self.clock.watermark_ms);
            if version == STATE_VERSION {
                for counts in self.seconds.iter() {
                    varint::put_u64(&mut out, u64::from(counts.points));
                }
                for second in self.message_memory() {
                    let counts = self.seconds[ring_slot(second, self.seconds.len())];
                    varint::put_u64(&mut out, u64::from(counts.messages));
                }
            } else {
                for counts in self.seconds.iter() {
                    varint::put_u64(&mut out, u64::from(counts.points));
                    varint::put_u64(&mut out, u64::from(counts.messages));
                }
            }
            for (sketch, &anonymous) in self.sketches.iter().zip(self.anonymous.iter()) {
                varint::put_u64(&mut out, u64::from(anonymous));
                encode_sketch(sketch, &mut out);
            }
        }
        if let Some(reported) = self.burst {
            varint::put_i64(&mut out, reported);
        }
        if let Some(fired) = self.last_fire {
            varint::put_i64(&mut out, fired);
        }
        if version >= 4 {
            self.phrases.encode(&mut out);
            self.budget.encode(&mut out);
        }
        out
    }

    /// Restores state saved by [`encode_state`](Self::encode_state).
    pub(super) fn decode_state(
        broadcaster_id: BroadcasterId,
        config: DetectorConfig,
        bytes: &[u8],
    ) -> Result<Self, StateDecodeError> {
        use StateDecodeError as E;
        let mut reader = Reader::new(bytes);
        let u32_field = |reader: &mut Reader<'_>, what| {
            let value = reader.u64().map_err(|_| E::Truncated(what))?;
            u32::try_from(value).map_err(|_| E::OutOfRange(what))
        };
        let mut detector = Self::new(broadcaster_id, config);
        let rings = [detector.seconds.len(), detector.sketches.len()];
        let known = HAS_FIRST | HAS_BURST | HAS_LAST_FIRE;
        let (version, flags) =
            read_state_head(&mut reader, &STATE_VERSIONS, broadcaster_id, &config, &rings, known)?;
        if flags & HAS_FIRST != 0 {
            let first = plausible_second(&mut reader, "first second")?;
            let watermark = reader.i64().map_err(|_| E::Truncated("watermark"))?;
            detector.clock.restore(first, watermark)?;
            let ring = detector.seconds.len();
            if version == STATE_VERSION {
                for slot in 0..ring {
                    detector.seconds[slot].points = u32_field(&mut reader, "points")?;
                }
                for second in detector.message_memory() {
                    detector.seconds[ring_slot(second, ring)].messages = u32_field(&mut reader, "messages")?;
                }
            } else {
                for slot in 0..ring {
                    let points = u32_field(&mut reader, "points")?;
                    let messages = u32_field(&mut reader, "messages")?;
                    detector.seconds[slot] = SecondCounts { points, messages };
                }
                // Older states kept every second's messages: forget those no longer read.
                let memory = detector.message_memory();
                for second in memory.start - (ring as i64 - memory.clone().count() as i64)..memory.start {
                    detector.seconds[ring_slot(second, ring)].messages = 0;
                }
            }
            for second in detector.message_memory() {
                let counts = detector.seconds[ring_slot(second, ring)];
                if (counts.points == 0) != (counts.messages == 0) {
                    return Err(E::OutOfRange("points"));
                }
            }
            for slot in 0..detector.sketches.len() {
                detector.anonymous[slot] = u32_field(&mut reader, "anonymous")?;
                detector.sketches[slot] = decode_sketch(&mut reader)?;
                detector.sketch_bits[slot] = detector.sketches[slot].iter().map(|w| w.count_ones()).sum();
            }
            detector.check_votes_have_points()?;
            detector.recompute_sums();
        }
        if flags & HAS_BURST != 0 {
            detector.burst = Some(plausible_second(&mut reader, "burst")?);
        }
        if flags & HAS_LAST_FIRE != 0 {
            detector.last_fire = Some(plausible_second(&mut reader, "last fire")?);
        }
        if version >= 4 {
            detector.phrases = PhraseSketch::decode(&mut reader, &config)?;
            detector.budget = ClipBudget::decode(&mut reader)?;
        }
        if reader.remaining() != 0 {
            return Err(E::TrailingBytes(reader.remaining()));
        }
        Ok(detector)
    }

    /// The seconds whose messages are kept: the last [`message_seconds`] closed ones and the open
    /// ones, oldest first.
    fn message_memory(&self) -> std::ops::Range<i64> {
        let next = self.clock.next_second;
        next - message_seconds(&self.config)..next + EventClock::open_span(&self.config)
    }

    /// A second with voters has points: the skip over silence relies on it.
    fn check_votes_have_points(&self) -> Result<(), StateDecodeError> {
        let window = i64::from(self.config.window_seconds());
        let first_kept = self.clock.next_second - window;
        for second in first_kept..first_kept + self.sketches.len() as i64 {
            let recent = ring_slot(second, self.sketches.len());
            let voted = self.anonymous[recent] != 0 || self.sketches[recent].iter().any(|&w| w != 0);
            if voted && self.seconds[ring_slot(second, self.seconds.len())].points == 0 {
                return Err(StateDecodeError::OutOfRange("sketch"));
            }
        }
        Ok(())
    }

    fn recompute_sums(&mut self) {
        let last = self.clock.next_second - 1;
        let window = i64::from(self.config.window_seconds());
        let baseline = i64::from(self.config.baseline_seconds());
        let ring = self.seconds.len();
        let points = |second: i64| u64::from(self.seconds[ring_slot(second, ring)].points);
        let messages = |second: i64| u64::from(self.seconds[ring_slot(second, ring)].messages);
        let baseline_seconds = last - window - baseline + 1..=last - window;
        self.window_points = (last - window + 1..=last).map(points).sum();
        self.window_messages = (last - window + 1..=last).map(messages).sum();
        self.baseline_points = baseline_seconds.clone().map(points).sum();
        self.baseline_squares = baseline_seconds.map(|second| u128::from(points(second)).pow(2)).sum();
    }
}

#[inline]
fn ring_slot(second: i64, len: usize) -> usize {
    second.rem_euclid(len as i64) as usize
}

fn encode_sketch(sketch: &Sketch, out: &mut Vec<u8>) {
    let set = u64::from(sketch.iter().map(|word| word.count_ones()).sum::<u32>());
    varint::put_u64(out, set);
    if set <= SPARSE_SKETCH_BITS {
        let mut previous = 0u64;
        for bit in (0..SKETCH_BITS).filter(|&bit| sketch[bit / 64] >> (bit % 64) & 1 == 1) {
            varint::put_u64(out, bit as u64 - previous);
            previous = bit as u64;
        }
    } else {
        for word in sketch {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }
}

fn decode_sketch(reader: &mut Reader<'_>) -> Result<Sketch, StateDecodeError> {
    use StateDecodeError as E;
    let set = reader.u64().map_err(|_| E::Truncated("sketch"))?;
    let mut sketch = [0u64; SKETCH_WORDS];
    if set <= SPARSE_SKETCH_BITS {
        let mut bit = 0u64;
        for index in 0..set {
            let delta = reader.u64().map_err(|_| E::Truncated("sketch"))?;
            // Positions ascend strictly (the first may be 0).
            if index > 0 && delta == 0 {
                return Err(E::OutOfRange("sketch"));
            }
            bit =
                bit.checked_add(delta).filter(|&b| b < SKETCH_BITS as u64).ok_or(E::OutOfRange("sketch"))?;
            sketch[bit as usize / 64] |= 1 << (bit % 64);
        }
    } else {
        for word in &mut sketch {
            let bytes = reader.take(8).ok_or(E::Truncated("sketch"))?;
            *word = u64::from_le_bytes(bytes.try_into().expect("eight bytes"));
        }
        if u64::from(sketch.iter().map(|word| word.count_ones()).sum::<u32>()) != set {
            return Err(E::OutOfRange("sketch"));
        }
    }
    Ok(sketch)
}

#[cfg(test)]
#[path = "crowd_tests.rs"]
mod tests;
