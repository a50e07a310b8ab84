//! What chat says around a moment: the phrases most repeated in the last seconds, counted by a
//! small bounded sketch that both detectors keep in their state.
//!
//! - **A phrase** is a short message as people type it in unison: at most [`PHRASE_WORDS`] words
//!   and [`PHRASE_BYTES`] bytes once normalised ([`Phrase::of`]): a word repeated in a row counts
//!   once (`KEKW KEKW KEKW` is `KEKW`), a character repeated more than three times is cut to
//!   three (`GOOOOOO` is `GOOO`), and a word in one case (`lol`, `LOL`, `Lol` in `Lol what`) is written in
//!   capitals, while a word mixing cases the way emote names do (`PogChamp`, `monkaS`), a known
//!   emote (`Kappa`), or a message of one title-case word (`Pepega`, most likely an emote) keeps
//!   its spelling. Longer messages are not phrases.
//! - **Who counts**: what the detector counts as one voice: `seed`, every counted message; `v2`,
//!   a chatter's vote (their first message in a second), so one spammer adds one per second.
//!   Commands and late messages never count.
//! - **The sketch** is Space-Saving with [`SKETCH_SLOTS`] slots per generation: a phrase already
//!   held gains one; a new phrase takes a free slot, or else replaces the slot with the smallest
//!   count (the first such slot), inheriting that count as its error. A generation is
//!   `span` seconds of event time (`second div span`, `span` the larger of the window,
//!   [`MIN_SPAN_SECONDS`] and the seconds that may still be open); the sketch keeps the current
//!   generation and the one before, so it always covers at least `span` seconds. A voice for a
//!   second two or more generations back is not counted.
//! - **Top phrases** ([`PhraseSketch::top`]) merge both generations: a phrase's guaranteed count
//!   is its count minus its error in each generation holding it; phrases are ranked by that,
//!   then by text. At most [`TOP_PHRASES`], each guaranteed at least once.
//!
//! Guarantees: with at most [`SKETCH_SLOTS`] distinct phrases per generation the counts are
//! exact; otherwise a reported count never exceeds the true count, and a phrase more frequent
//! than a generation's voices over [`SKETCH_SLOTS`] is never missed from that generation.
//!
//! Cost: one pass over at most the message's first [`PHRASE_BYTES`] bytes of words and
//! [`SKETCH_SLOTS`] comparisons per voice, no allocation. State: empty slots cost nothing; a full
//! sketch about 16 × 12 bytes.
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

/// A normalised phrase, held inline so that counting it never allocates.
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

    fn hash(&self) -> u64 {
        self.bytes[..usize::from(self.len)]
            .iter()
            .fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    phrase: Phrase,
    hash: u64,
    count: u32,
    error: u32,
}

/// One generation's Space-Saving slots, in the order they were first taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation {
    len: u8,
    slots: [Slot; SKETCH_SLOTS],
}

const EMPTY_SLOT: Slot = Slot { phrase: Phrase::EMPTY, hash: 0, count: 0, error: 0 };
const EMPTY_GENERATION: Generation = Generation { len: 0, slots: [EMPTY_SLOT; SKETCH_SLOTS] };

impl Generation {
    fn slots(&self) -> &[Slot] {
        &self.slots[..usize::from(self.len)]
    }

    fn add(&mut self, phrase: Phrase, hash: u64) {
        let len = usize::from(self.len);
        if let Some(slot) = self.slots[..len].iter_mut().find(|s| s.hash == hash && s.phrase == phrase) {
            slot.count = slot.count.saturating_add(1);
        } else if len < SKETCH_SLOTS {
            self.slots[len] = Slot { phrase, hash, count: 1, error: 0 };
            self.len += 1;
        } else {
            let smallest = (0..SKETCH_SLOTS).min_by_key(|&i| self.slots[i].count).unwrap_or(0);
            let floor = self.slots[smallest].count;
            self.slots[smallest] = Slot { phrase, hash, count: floor.saturating_add(1), error: floor };
        }
    }

    /// The guaranteed count of `phrase` here (0 when not held).
    fn guaranteed(&self, phrase: &Phrase) -> u32 {
        self.slots().iter().find(|s| s.phrase == *phrase).map_or(0, |s| s.count - s.error)
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseSketch {
    span: i64,
    /// The current generation's number (`second div span`); `None` before the first voice.
    generation: Option<i64>,
    current: Generation,
    previous: Generation,
}

impl PhraseSketch {
    pub fn new(config: &DetectorConfig) -> Self {
        Self {
            span: span_seconds(config),
            generation: None,
            current: EMPTY_GENERATION,
            previous: EMPTY_GENERATION,
        }
    }

    /// Counts one voice for `text` in `second`.
    #[inline]
    pub fn observe(&mut self, second: i64, text: &str) {
        let Some(phrase) = Phrase::of(text) else { return };
        let generation = second.div_euclid(self.span);
        let current = *self.generation.get_or_insert(generation);
        if generation > current {
            self.previous = if generation == current + 1 { self.current } else { EMPTY_GENERATION };
            self.current = EMPTY_GENERATION;
            self.generation = Some(generation);
        }
        let hash = phrase.hash();
        match current.max(generation) - generation {
            0 => self.current.add(phrase, hash),
            1 => self.previous.add(phrase, hash),
            _ => {}
        }
    }

    /// The most said phrases of both generations.
    pub fn top(&self) -> TopPhrases {
        let mut merged: Vec<PhraseCount> = Vec::with_capacity(2 * SKETCH_SLOTS);
        for slot in self.current.slots().iter().chain(self.previous.slots()) {
            if merged.iter().any(|entry| entry.phrase == slot.phrase) {
                continue;
            }
            let count = self.current.guaranteed(&slot.phrase) + self.previous.guaranteed(&slot.phrase);
            if count > 0 {
                merged.push(PhraseCount { phrase: slot.phrase, count });
            }
        }
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
                for part in [&self.current, &self.previous] {
                    out.push(part.len);
                    for slot in part.slots() {
                        out.push(slot.phrase.len);
                        out.extend_from_slice(slot.phrase.as_str().as_bytes());
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
        for part in [&mut sketch.current, &mut sketch.previous] {
            let len = reader.u8().ok_or(E::Truncated("phrase slots"))?;
            if usize::from(len) > SKETCH_SLOTS {
                return Err(E::OutOfRange("phrase slots"));
            }
            for index in 0..usize::from(len) {
                let phrase_len = usize::from(reader.u8().ok_or(E::Truncated("phrase"))?);
                let bytes = reader.take(phrase_len).ok_or(E::Truncated("phrase"))?;
                let phrase =
                    std::str::from_utf8(bytes).ok().and_then(Phrase::parse).ok_or(E::OutOfRange("phrase"))?;
                let mut count = || -> Result<u32, StateDecodeError> {
                    let value = reader.u64().map_err(|_| E::Truncated("phrase count"))?;
                    u32::try_from(value).map_err(|_| E::OutOfRange("phrase count"))
                };
                let (count, error) = (count()?, count()?);
                let duplicate = part.slots().iter().any(|s| s.phrase == phrase);
                if count == 0 || error >= count || duplicate {
                    return Err(E::OutOfRange("phrase count"));
                }
                part.slots[index] = Slot { phrase, hash: phrase.hash(), count, error };
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

    /// Exact counts of the two generations a literal reading of the rules covers.
    fn exact(span: i64, voices: &[(i64, String)]) -> std::collections::BTreeMap<String, u32> {
        let mut generation = None::<i64>;
        let mut counted: Vec<(i64, String)> = Vec::new();
        for (second, text) in voices {
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
