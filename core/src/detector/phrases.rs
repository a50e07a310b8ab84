//! What chat says around a moment: the phrases most repeated in the last seconds, counted by a
//! small bounded sketch that both detectors keep in their state.
//!
//! - **A phrase** is a short message as people type it in unison: at most [`PHRASE_WORDS`] words
//!   and [`PHRASE_BYTES`] bytes once normalised ([`Phrase::of`]): a word repeated in a row counts
//!   once (`KEKW KEKW KEKW` is `KEKW`), a character repeated more than three times is cut to
//!   three (`GOOOOOO` is `GOOO`), and a word in one case (`lol`, `LOL`, `Lol` in `Lol what`) is
//!   written in capitals, while a word mixing cases the way emote names do (`PogChamp`, `monkaS`), a known
//!   emote (`Kappa`), or a message of one title-case word (`Pepega`, most likely an emote) keeps
//!   its spelling. Longer messages are not phrases.
//! - **Who counts**: what the detector counts as one voice: `seed`, every counted message; `v2`,
//!   a chatter's vote (their first message in a second), so one spammer adds one per second.
//!   Commands and late messages never count.
//! - **The sketch** counts messages as typed (at most [`PHRASE_BYTES`] bytes; longer ones are
//!   not counted) with Space-Saving, [`SKETCH_SLOTS`] slots per generation: a text already held
//!   gains one; a new text takes a free slot, or else replaces the slot with the smallest count
//!   (the first such slot), inheriting that count as its error. A generation is `span` seconds of
//!   event time (`second div span`, `span` the larger of the window, [`MIN_SPAN_SECONDS`] and the
//!   seconds that may still be open); the sketch keeps the current generation and the one
//!   before, so it always covers at least `span` seconds. A voice for a second two or more
//!   generations back is not counted.
//! - **Top phrases** ([`PhraseSketch::top`]): each slot of both generations gives its guaranteed
//!   count (count minus error) to the phrase its text stands for (`KEKW`, `KEKW KEKW` and `kekw`
//!   all give to `KEKW`); phrases are ranked by that, then by text. At most [`TOP_PHRASES`], each
//!   guaranteed at least once.
//!
//! Guarantees: with at most [`SKETCH_SLOTS`] distinct texts per generation the counts are exact;
//! otherwise a reported count never exceeds the true count, and a text more frequent than a
//! generation's voices over [`SKETCH_SLOTS`] is never missed from that generation.
//!
//! Cost per voice: a copy of at most [`PHRASE_BYTES`] bytes, a hash of them eight at a time and
//! [`SKETCH_SLOTS`] comparisons, no allocation; normalising waits for a report. (Normalising
//! every voice made the detectors 4 to 11 times slower.) State: empty slots cost nothing;
//! a full sketch at most 16 × 47 bytes.
//!
//! This module must stay free of clocks and I/O.

use serde::{Deserialize, Serialize};

use crate::config::DetectorConfig;
use crate::varint::{self, Reader};

use super::{EventClock, StateDecodeError};

/// Longest phrase, in bytes of UTF-8, after normalisation.
pub const PHRASE_BYTES: usize = 40;
/// Most words in a phrase, after collapsing repeated words.
pub const PHRASE_WORDS: usize = 4;
/// Slots per generation.
pub const SKETCH_SLOTS: usize = 8;
/// Most phrases a detection carries.
pub const TOP_PHRASES: usize = 3;
/// Shortest generation, in seconds.
pub const MIN_SPAN_SECONDS: u32 = 5;

/// A normalised phrase, held inline so that a detection stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Phrase {
    len: u8,
    bytes: [u8; PHRASE_BYTES],
}

impl Phrase {
    /// The phrase `text` stands for, or `None` when it is empty or too long to be one.
    pub fn of(text: &str) -> Option<Self> {
        let mut phrase = Self::EMPTY;
        let mut previous = Self::EMPTY;
        let mut words = 0;
        // A message of one word (perhaps repeated) in title case is most likely an emote
        // (`Pepega`): it keeps its spelling.
        let mut all = text.split_whitespace();
        let first = all.next();
        let one_word = first.is_some_and(|first| all.all(|word| word == first));
        for word in text.split_whitespace() {
            let mut normalised = Self::EMPTY;
            normalised.push_word(word, one_word)?;
            if words > 0 && normalised == previous {
                continue;
            }
            words += 1;
            if words > PHRASE_WORDS {
                return None;
            }
            if words > 1 {
                phrase.push(' ')?;
            }
            for c in normalised.as_str().chars() {
                phrase.push(c)?;
            }
            previous = normalised;
        }
        (words > 0).then_some(phrase)
    }

    const EMPTY: Self = Self { len: 0, bytes: [0; PHRASE_BYTES] };

    /// Appends a normalised word; `None` when the phrase would grow too long.
    fn push_word(&mut self, word: &str, one_word: bool) -> Option<()> {
        let keep_case =
            crate::reaction::is_reaction_emote(word) || mixes_case(word) || (one_word && title_case(word));
        let (mut last, mut run) = ('\0', 0);
        for c in word.chars() {
            run = if c == last { run + 1 } else { 1 };
            last = c;
            if run > 3 {
                continue;
            }
            if keep_case {
                self.push(c)?;
            } else {
                for upper in c.to_uppercase() {
                    self.push(upper)?;
                }
            }
        }
        Some(())
    }

    fn push(&mut self, c: char) -> Option<()> {
        let start = usize::from(self.len);
        let end = start + c.len_utf8();
        if end > PHRASE_BYTES {
            return None;
        }
        c.encode_utf8(&mut self.bytes[start..end]);
        self.len = end as u8;
        Some(())
    }

    pub fn as_str(&self) -> &str {
        // Only whole characters are ever written.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// A phrase read back from storage: it must be what normalising it gives.
    pub fn parse(text: &str) -> Option<Self> {
        Self::of(text).filter(|phrase| phrase.as_str() == text)
    }
}

/// Whether a word mixes cases the way emote names do: a capital after a small letter
/// (`PogChamp`, `monkaS`, `xqcL`). `Lol` and `LOL` do not.
fn mixes_case(word: &str) -> bool {
    let mut seen_lower = false;
    for c in word.chars() {
        if c.is_lowercase() {
            seen_lower = true;
        } else if c.is_uppercase() && seen_lower {
            return true;
        }
    }
    false
}

/// Whether a word is a capital followed by small letters only (`Pepega`, `Nice`).
fn title_case(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(char::is_uppercase)
        && chars.all(|c| !c.is_uppercase())
        && word.chars().any(char::is_lowercase)
}

impl std::fmt::Debug for Phrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A message as typed, when it is short enough to be a phrase: what the sketch counts. Counting
/// the text as it is costs a copy and a hash per voice; normalising (much dearer) waits for
/// [`PhraseSketch::top`], once per slot.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Said {
    len: u8,
    bytes: [u8; PHRASE_BYTES],
}

impl Said {
    const EMPTY: Self = Self { len: 0, bytes: [0; PHRASE_BYTES] };

    #[inline]
    fn new(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.is_empty() || bytes.len() > PHRASE_BYTES {
            return None;
        }
        let mut said = Self::EMPTY;
        said.bytes[..bytes.len()].copy_from_slice(bytes);
        said.len = bytes.len() as u8;
        Some(said)
    }

    fn as_str(&self) -> &str {
        // Copied from a whole `&str` or checked when decoded.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    fn text(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// A hash of a voice's text, eight bytes at a time.
#[inline]
fn hash_text(text: &[u8]) -> u64 {
    let mut chunks = text.chunks_exact(8);
    let mix = |hash: u64, word: u64| (hash.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut hash = text.len() as u64;
    for chunk in &mut chunks {
        hash = mix(hash, u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
    }
    let tail = chunks.remainder();
    if tail.is_empty() {
        hash
    } else {
        mix(hash, tail.iter().rev().fold(0u64, |word, &byte| word << 8 | u64::from(byte)))
    }
}

impl std::fmt::Debug for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// One slot of a generation, as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    said: Said,
    count: u32,
    error: u32,
}

/// One generation's Space-Saving slots, in the order they were first taken. Hashes and counts
/// sit apart from the texts, so that looking a voice up reads one cache line of hashes. Slots
/// past `len` are left over from before a reset and mean nothing (equality ignores them).
#[derive(Debug, Clone, Copy)]
struct Generation {
    len: u8,
    hashes: [u64; SKETCH_SLOTS],
    counts: [u32; SKETCH_SLOTS],
    errors: [u32; SKETCH_SLOTS],
    texts: [Said; SKETCH_SLOTS],
}

const EMPTY_GENERATION: Generation = Generation {
    len: 0,
    hashes: [0; SKETCH_SLOTS],
    counts: [0; SKETCH_SLOTS],
    errors: [0; SKETCH_SLOTS],
    texts: [Said::EMPTY; SKETCH_SLOTS],
};

impl PartialEq for Generation {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.slots().eq(other.slots())
    }
}

impl Eq for Generation {}

impl Generation {
    /// Empties it without rewriting its arrays: a new generation starts every few seconds for
    /// every channel, and copying a whole empty generation over it was a visible cost.
    fn reset(&mut self) {
        self.len = 0;
    }

    fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        (0..usize::from(self.len)).map(|i| Slot {
            said: self.texts[i],
            count: self.counts[i],
            error: self.errors[i],
        })
    }

    /// Counts `text` (1 to [`PHRASE_BYTES`] bytes of a `&str`), whose hash is `hash`.
    #[inline]
    fn add(&mut self, text: &[u8], hash: u64) {
        let len = usize::from(self.len);
        if let Some(i) = (0..len).find(|&i| self.hashes[i] == hash && self.texts[i].text() == text) {
            self.counts[i] = self.counts[i].saturating_add(1);
            return;
        }
        let mut said = Said::EMPTY;
        said.bytes[..text.len()].copy_from_slice(text);
        said.len = text.len() as u8;
        if len < SKETCH_SLOTS {
            self.put(len, said, hash, 1, 0);
            self.len += 1;
        } else {
            let smallest = (0..SKETCH_SLOTS).min_by_key(|&i| self.counts[i]).unwrap_or(0);
            let floor = self.counts[smallest];
            self.put(smallest, said, hash, floor.saturating_add(1), floor);
        }
    }

    fn put(&mut self, index: usize, said: Said, hash: u64, count: u32, error: u32) {
        self.hashes[index] = hash;
        self.texts[index] = said;
        self.counts[index] = count;
        self.errors[index] = error;
    }
}

/// A phrase and how many voices said it, at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhraseCount {
    #[serde(with = "phrase_text")]
    pub phrase: Phrase,
    pub count: u32,
}

/// The phrases chat repeated most around a detection, most said first ([`TOP_PHRASES`] at most).
/// Fixed-size, so a detection stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct TopPhrases {
    len: u8,
    entries: [Option<PhraseCount>; TOP_PHRASES],
}

impl TopPhrases {
    pub fn entries(&self) -> impl Iterator<Item = &PhraseCount> {
        self.entries[..usize::from(self.len)].iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first [`TOP_PHRASES`] of `entries`, in the order given.
    pub fn from_entries(entries: impl IntoIterator<Item = PhraseCount>) -> Self {
        let mut top = Self::default();
        for entry in entries.into_iter().take(TOP_PHRASES) {
            top.entries[usize::from(top.len)] = Some(entry);
            top.len += 1;
        }
        top
    }

    /// The most said phrase.
    pub fn first(&self) -> Option<&PhraseCount> {
        self.entries().next()
    }
}

impl std::fmt::Debug for TopPhrases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

impl Serialize for TopPhrases {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.entries())
    }
}

impl<'de> Deserialize<'de> for TopPhrases {
    /// A longer list keeps its first [`TOP_PHRASES`]; an entry that is not a normalised phrase is
    /// skipped, so that one odd entry never makes a whole highlight unreadable.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Stored {
            phrase: String,
            count: u32,
        }
        let stored = Vec::<Stored>::deserialize(deserializer)?;
        Ok(Self::from_entries(
            stored
                .into_iter()
                .filter_map(|s| Some(PhraseCount { phrase: Phrase::parse(&s.phrase)?, count: s.count })),
        ))
    }
}

mod phrase_text {
    use super::Phrase;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(phrase: &Phrase, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(phrase.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Phrase, D::Error> {
        let text = String::deserialize(deserializer)?;
        Phrase::parse(&text).ok_or_else(|| D::Error::custom("not a normalised phrase"))
    }
}

/// The two-generation phrase sketch of one broadcaster (see the module docs).
#[derive(Debug, Clone)]
pub struct PhraseSketch {
    span: i64,
    /// The current generation's number (`second div span`); `None` before the first voice.
    generation: Option<i64>,
    /// The two generations; boxed, so that a detector stays small in the maps that hold
    /// thousands of them.
    parts: Box<[Generation; 2]>,
    /// Which of `parts` is the current generation (the other is the one before): a new
    /// generation flips it rather than moving both.
    current: usize,
}

impl PartialEq for PhraseSketch {
    fn eq(&self, other: &Self) -> bool {
        self.span == other.span
            && self.generation == other.generation
            && self.now() == other.now()
            && self.before() == other.before()
    }
}

impl Eq for PhraseSketch {}

impl PhraseSketch {
    pub fn new(config: &DetectorConfig) -> Self {
        Self {
            span: span_seconds(config),
            generation: None,
            parts: Box::new([EMPTY_GENERATION; 2]),
            current: 0,
        }
    }

    fn now(&self) -> &Generation {
        &self.parts[self.current]
    }

    fn before(&self) -> &Generation {
        &self.parts[self.current ^ 1]
    }

    /// The current generation, then the one before.
    fn in_order(&self) -> [&Generation; 2] {
        [self.now(), self.before()]
    }

    /// Counts one voice for `text` in `second`.
    #[inline]
    pub fn observe(&mut self, second: i64, text: &str) {
        let text = text.as_bytes();
        if text.is_empty() || text.len() > PHRASE_BYTES {
            return;
        }
        // Nearly every voice falls in the current generation: no division then.
        if let Some(current) = self.generation {
            let start = current * self.span;
            if (start..start + self.span).contains(&second) {
                self.parts[self.current].add(text, hash_text(text));
                return;
            }
        }
        let generation = second.div_euclid(self.span);
        let current = *self.generation.get_or_insert(generation);
        if generation > current {
            // The current generation becomes the one before, unless it is older still.
            self.current ^= 1;
            if generation != current + 1 {
                self.parts[self.current ^ 1].reset();
            }
            self.parts[self.current].reset();
            self.generation = Some(generation);
        }
        // Age 0: the current generation; 1: the one before; older voices are not counted.
        if let age @ (0 | 1) = current.max(generation) - generation {
            self.parts[self.current ^ age as usize].add(text, hash_text(text));
        }
    }

    /// The most said phrases of both generations: each slot's guaranteed count goes to the
    /// phrase its text stands for.
    pub fn top(&self) -> TopPhrases {
        let mut merged: Vec<PhraseCount> = Vec::with_capacity(2 * SKETCH_SLOTS);
        for slot in self.in_order().into_iter().flat_map(Generation::slots) {
            let Some(phrase) = Phrase::of(slot.said.as_str()) else { continue };
            let guaranteed = slot.count - slot.error;
            match merged.iter_mut().find(|entry| entry.phrase == phrase) {
                Some(entry) => entry.count += guaranteed,
                None => merged.push(PhraseCount { phrase, count: guaranteed }),
            }
        }
        merged.retain(|entry| entry.count > 0);
        merged.sort_unstable_by(|a, b| {
            b.count.cmp(&a.count).then_with(|| a.phrase.as_str().cmp(b.phrase.as_str()))
        });
        TopPhrases::from_entries(merged)
    }

    /// Appends the sketch to a saved state.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self.generation {
            None => out.push(0),
            Some(generation) => {
                out.push(1);
                varint::put_i64(out, generation);
                for part in self.in_order() {
                    out.push(part.len);
                    for slot in part.slots() {
                        out.push(slot.said.len);
                        out.extend_from_slice(slot.said.as_str().as_bytes());
                        varint::put_u64(out, u64::from(slot.count));
                        varint::put_u64(out, u64::from(slot.error));
                    }
                }
            }
        }
    }

    /// Reads a sketch written by [`encode`](Self::encode) for `config`.
    pub(crate) fn decode(reader: &mut Reader<'_>, config: &DetectorConfig) -> Result<Self, StateDecodeError> {
        use StateDecodeError as E;
        let mut sketch = Self::new(config);
        match reader.u8().ok_or(E::Truncated("phrases"))? {
            0 => return Ok(sketch),
            1 => {}
            _ => return Err(E::OutOfRange("phrases")),
        }
        let generation = reader.i64().map_err(|_| E::Truncated("phrase generation"))?;
        if !super::PLAUSIBLE_SECONDS.contains(&generation.saturating_mul(sketch.span)) {
            return Err(E::OutOfRange("phrase generation"));
        }
        sketch.generation = Some(generation);
        for part in sketch.parts.iter_mut() {
            let len = reader.u8().ok_or(E::Truncated("phrase slots"))?;
            if usize::from(len) > SKETCH_SLOTS {
                return Err(E::OutOfRange("phrase slots"));
            }
            for index in 0..usize::from(len) {
                let text_len = usize::from(reader.u8().ok_or(E::Truncated("phrase"))?);
                let bytes = reader.take(text_len).ok_or(E::Truncated("phrase"))?;
                let said =
                    std::str::from_utf8(bytes).ok().and_then(Said::new).ok_or(E::OutOfRange("phrase"))?;
                let mut count = || -> Result<u32, StateDecodeError> {
                    let value = reader.u64().map_err(|_| E::Truncated("phrase count"))?;
                    u32::try_from(value).map_err(|_| E::OutOfRange("phrase count"))
                };
                let (count, error) = (count()?, count()?);
                let duplicate = part.slots().any(|s| s.said == said);
                if count == 0 || error >= count || duplicate {
                    return Err(E::OutOfRange("phrase count"));
                }
                part.put(index, said, hash_text(said.text()), count, error);
                part.len += 1;
            }
        }
        Ok(sketch)
    }
}

/// Seconds per generation for `config`.
pub fn span_seconds(config: &DetectorConfig) -> i64 {
    i64::from(config.window_seconds().max(MIN_SPAN_SECONDS)).max(EventClock::open_span(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn phrase(text: &str) -> Option<String> {
        Phrase::of(text).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn phrases_are_normalised_as_chat_types_them() {
        assert_eq!(phrase("KEKW KEKW KEKW").as_deref(), Some("KEKW"));
        assert_eq!(phrase("  lets   goooooooo ").as_deref(), Some("LETS GOOO"));
        assert_eq!(phrase("LETS GOOOO").as_deref(), Some("LETS GOOO"));
        assert_eq!(phrase("PogChamp PogChamp").as_deref(), Some("PogChamp"));
        assert_eq!(phrase("monkaS").as_deref(), Some("monkaS"));
        assert_eq!(phrase("Kappa").as_deref(), Some("Kappa"), "a known emote keeps its spelling");
        assert_eq!(phrase("Pepega Pepega").as_deref(), Some("Pepega"), "one title-case word: an emote");
        assert_eq!(phrase("Lol what").as_deref(), Some("LOL WHAT"));
        assert_eq!(phrase("clip it").as_deref(), Some("CLIP IT"));
        assert_eq!(phrase("ÄÖ über").as_deref(), Some("ÄÖ ÜBER"));
        assert_eq!(phrase("one two three four five"), None, "a sentence is not a phrase");
        assert_eq!(phrase(&"x".repeat(41)), Some("XXX".to_owned()), "runs are cut before the length");
        assert_eq!(phrase(&"ab".repeat(21)), None, "too long");
        assert_eq!(phrase("   "), None);
        assert_eq!(phrase("W W W L W").as_deref(), Some("W L W"));
    }

    #[test]
    fn a_stored_phrase_must_be_normalised() {
        assert!(Phrase::parse("KEKW").is_some());
        assert!(Phrase::parse("kekw").is_none());
        assert!(Phrase::parse("KEKW KEKW").is_none());
    }

    fn config(window: u32) -> DetectorConfig {
        let mut raw = crate::config::RawConfig::for_mode(crate::config::DetectorMode::V2);
        raw.window_seconds = window;
        DetectorConfig::new(raw).unwrap()
    }

    #[test]
    fn the_top_counts_both_generations_and_ranks_by_count() {
        let mut sketch = PhraseSketch::new(&config(10));
        for (second, text) in
            [(100, "KEKW"), (101, "KEKW"), (109, "W"), (110, "KEKW"), (111, "W"), (112, "W")]
        {
            sketch.observe(second, text);
        }
        let top: Vec<_> = sketch.top().entries().map(|e| (e.phrase.as_str().to_owned(), e.count)).collect();
        assert_eq!(top, [("KEKW".to_owned(), 3), ("W".to_owned(), 3)], "ties by text");
        sketch.observe(135, "LUL");
        let top: Vec<_> = sketch.top().entries().map(|e| (e.phrase.as_str().to_owned(), e.count)).collect();
        assert_eq!(top, [("LUL".to_owned(), 1)], "two generations later the old ones are gone");
    }

    #[test]
    fn spellings_of_one_phrase_add_up_and_long_texts_do_not_count() {
        let mut sketch = PhraseSketch::new(&config(10));
        for text in ["KEKW", "KEKW KEKW", "kekw", "W", &"KEKW ".repeat(9)] {
            sketch.observe(100, text);
        }
        let top: Vec<_> = sketch.top().entries().map(|e| (e.phrase.as_str().to_owned(), e.count)).collect();
        assert_eq!(top, [("KEKW".to_owned(), 3), ("W".to_owned(), 1)]);
    }

    /// Exact counts of the two generations a literal reading of the rules covers.
    fn exact(span: i64, voices: &[(i64, String)]) -> std::collections::BTreeMap<String, u32> {
        let mut generation = None::<i64>;
        let mut counted: Vec<(i64, String)> = Vec::new();
        for (second, text) in voices {
            if text.len() > PHRASE_BYTES {
                continue;
            }
            let Some(phrase) = phrase(text) else { continue };
            let g = second.div_euclid(span);
            let current = *generation.get_or_insert(g);
            let current = current.max(g);
            generation = Some(current);
            if current - g <= 1 {
                counted.push((g, phrase));
            }
        }
        let mut counts = std::collections::BTreeMap::new();
        for (g, phrase) in counted {
            if generation.is_some_and(|current| current - g <= 1) {
                *counts.entry(phrase).or_insert(0) += 1;
            }
        }
        counts
    }

    fn arb_voices(texts: usize) -> impl Strategy<Value = Vec<(i64, String)>> {
        prop::collection::vec((0i64..4, 0..texts), 0..300).prop_map(|steps| {
            let mut second = 1_000;
            steps
                .into_iter()
                .map(|(step, text)| {
                    // Mostly forward, sometimes a second or two back (open seconds).
                    second += if step == 3 { -2 } else { step };
                    (second, format!("word{text}"))
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn with_few_phrases_the_counts_are_exact(voices in arb_voices(SKETCH_SLOTS)) {
            let config = config(5);
            let mut sketch = PhraseSketch::new(&config);
            for (second, text) in &voices {
                sketch.observe(*second, text);
            }
            let mut expected: Vec<(String, u32)> = exact(span_seconds(&config), &voices).into_iter().collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            expected.truncate(TOP_PHRASES);
            let top: Vec<(String, u32)> = sketch.top().entries().map(|e| (e.phrase.as_str().to_owned(), e.count)).collect();
            prop_assert_eq!(top, expected);
        }

        #[test]
        fn with_many_phrases_no_count_is_overstated_and_state_round_trips(
            voices in arb_voices(40),
            cut in any::<prop::sample::Index>(),
        ) {
            let config = config(7);
            let mut sketch = PhraseSketch::new(&config);
            let cut = cut.index(voices.len().max(1));
            for (index, (second, text)) in voices.iter().enumerate() {
                if index == cut {
                    let mut saved = Vec::new();
                    sketch.encode(&mut saved);
                    let mut reader = Reader::new(&saved);
                    let restored = PhraseSketch::decode(&mut reader, &config).unwrap();
                    prop_assert_eq!(reader.remaining(), 0);
                    prop_assert_eq!(&restored, &sketch);
                }
                sketch.observe(*second, text);
            }
            let exact = exact(span_seconds(&config), &voices);
            for entry in sketch.top().entries() {
                let truth = exact.get(entry.phrase.as_str()).copied().unwrap_or(0);
                prop_assert!(entry.count <= truth, "{:?} claims {} of {}", entry.phrase, entry.count, truth);
            }
        }

        #[test]
        fn arbitrary_sketch_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = PhraseSketch::decode(&mut Reader::new(&bytes), &config(5));
        }
    }
}
