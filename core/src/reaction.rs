//! What a chat message says about the moment, from its text alone: a reaction (an emote people
//! use when something happens, laughter, shouting, `???`, "clip it"), plain chat, or a long text
//! (copypasta, a paragraph) that says little about the stream right now.
//!
//! The v2 detector weighs each chatter's vote with this. The rules are deliberately small and
//! cheap (one pass over at most the first few words, no allocation): they run for the first
//! message of every chatter in every second. Emote names are matched exactly, case and all, as
//! Twitch renders them; the list holds widely used global, BTTV, FFZ and 7TV reaction emotes.
//!
//! What must not live here: any state, any per-channel learning (that belongs to the detector).

/// How a message reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// Ordinary chat.
    Plain,
    /// A reaction to something that just happened.
    Reaction,
    /// A long text: copypasta or a paragraph, weak evidence of a moment.
    Long,
}

/// Messages longer than this many bytes, or with more than [`LONG_WORDS`] words, are [`Tone::Long`].
pub const LONG_BYTES: usize = 120;
pub const LONG_WORDS: usize = 16;
/// Only the first words are examined: a reaction says what it says early.
const WORDS_EXAMINED: usize = 8;

/// Classifies `text`.
pub fn tone(text: &str) -> Tone {
    let bytes = text.as_bytes();
    if bytes.len() > LONG_BYTES {
        return Tone::Long;
    }
    // Words, letters and capitals are counted eight bytes at a time; only then are the first
    // words looked at, until one is a reaction.
    let (mut words, mut letters, mut capitals) = (0u32, 0u32, 0u32);
    // 0x80 when the byte before the current chunk is whitespace (the text's start counts as it).
    let mut space_before = HIGH;
    let mut count = |lanes: u64| {
        let classes = Classes::of(lanes);
        let follows_space = (classes.space << 8) | (space_before & 0x80);
        words += (!classes.space & HIGH & follows_space).count_ones();
        letters += classes.letter.count_ones();
        capitals += classes.capital.count_ones();
        space_before = classes.space >> 56;
    };
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        count(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
    }
    // The tail, padded with spaces, built in a register (a copy through memory would stall the load).
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let lanes = tail.iter().enumerate().fold(ONES * u64::from(b' '), |lanes, (i, &byte)| {
            lanes & !(0xff << (8 * i)) | u64::from(byte) << (8 * i)
        });
        count(lanes);
    }
    if words as usize > LONG_WORDS {
        return Tone::Long;
    }
    let reaction = text.split_ascii_whitespace().take(WORDS_EXAMINED).any(is_reaction_word);
    if reaction || (letters >= 4 && capitals * 5 >= letters * 4) { Tone::Reaction } else { Tone::Plain }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// Per byte of eight, 0x80 when the byte is ASCII whitespace, an ASCII letter, a capital.
struct Classes {
    space: u64,
    letter: u64,
    capital: u64,
}

impl Classes {
    #[inline]
    fn of(lanes: u64) -> Self {
        // 0x80 in each zero byte, exactly (no borrow runs into the next byte).
        let zero = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
        let equal = |byte: u8| zero(lanes ^ (ONES * u64::from(byte)));
        let space = equal(b' ') | equal(b'\t') | equal(b'\n') | equal(0x0c) | equal(b'\r');
        let ascii = !lanes & HIGH;
        // Lower-cased 7-bit values; adding (0x80 - bound) sets the high bit when value >= bound,
        // and cannot carry out of the byte (at most 0x7f + 0x1f).
        let folded = (lanes | (ONES * 0x20)) & LOW7;
        let at_least_a = (folded + ONES * u64::from(0x80 - b'a')) & HIGH;
        let beyond_z = (folded + ONES * u64::from(0x80 - b'z' - 1)) & HIGH;
        let letter = ascii & at_least_a & !beyond_z;
        // Bit 5 (0x20) set means lower case; moved to the high bit of its own byte.
        let capital = letter & !((lanes << 2) & HIGH);
        Self { space, letter, capital }
    }
}

fn is_reaction_word(word: &str) -> bool {
    if is_reaction_emote(word) {
        return true;
    }
    let bytes = word.as_bytes();
    // "??", "?!?", "!!!": astonishment.
    if bytes.len() >= 2 && bytes.iter().all(|&b| b == b'?' || b == b'!') {
        return true;
    }
    if bytes.len() > 24 {
        return false;
    }
    let mut lower = [0u8; 24];
    for (slot, byte) in lower.iter_mut().zip(bytes) {
        *slot = byte.to_ascii_lowercase();
    }
    let lower = &lower[..bytes.len()];
    let trimmed = trim_punctuation(lower);
    matches!(
        trimmed,
        b"lol"
            | b"lmao"
            | b"lmfao"
            | b"rofl"
            | b"xd"
            | b"kek"
            | b"w"
            | b"clip"
            | b"clipped"
            | b"omg"
            | b"wtf"
    ) || is_laughter(trimmed)
        || trimmed.starts_with(b"clip")
        || trimmed.starts_with(b"lmao")
        || trimmed.starts_with(b"lmfao")
        || (trimmed.len() >= 3
            && trimmed.starts_with(b"lo")
            && trimmed.ends_with(b"l")
            && trimmed[1..trimmed.len() - 1].iter().all(|&b| b == b'o'))
}

fn trim_punctuation(word: &[u8]) -> &[u8] {
    let start = word.iter().position(u8::is_ascii_alphanumeric).unwrap_or(word.len());
    let end = word.iter().rposition(u8::is_ascii_alphanumeric).map_or(start, |i| i + 1);
    &word[start..end]
}

/// "haha", "hahaha", "ahah", "jaja", "hehe": at least two syllables of one laugh.
fn is_laughter(word: &[u8]) -> bool {
    word.len() >= 4
        && (word.starts_with(b"hah")
            || word.starts_with(b"aha")
            || word.starts_with(b"jaj")
            || word.starts_with(b"heh"))
        && word.iter().all(|&b| matches!(b, b'h' | b'a' | b'j' | b'e'))
}

pub(crate) fn is_reaction_emote(word: &str) -> bool {
    matches!(
        word,
        "LUL"
            | "LULW"
            | "KEKW"
            | "KEKL"
            | "OMEGALUL"
            | "LMAO"
            | "LOL"
            | "Pog"
            | "POG"
            | "PogU"
            | "PogChamp"
            | "POGGERS"
            | "Poggers"
            | "PagMan"
            | "PagChomp"
            | "PogBones"
            | "HYPERS"
            | "monkaS"
            | "monkaW"
            | "monkaOMEGA"
            | "WutFace"
            | "D:"
            | "Kreygasm"
            | "PepeLaugh"
            | "pepeLaugh"
            | "4Head"
            | "EZ"
            | "Clap"
            | "NotLikeThis"
            | "BibleThump"
            | "Jebaited"
            | "ICANT"
            | "WAYTOODANK"
            | "OMEGADANCE"
            | "peepoClap"
            | "catJAM"
            | "Kappa"
            | "KappaPride"
            | "TriHard"
            | "DansGame"
            | "SwiftRage"
            | "forsenCD"
            | "gachiGASM"
            | "FeelsStrongMan"
            | "widepeepoHappy"
            | "Sadge"
            | "LETSGO"
            | "GIGACHAD"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_are_recognised() {
        for text in [
            "KEKW",
            "LUL LUL LUL",
            "no way KEKW",
            "hahaha",
            "lmaooo",
            "loooool",
            "????",
            "LETS GOOOO",
            "clip it",
            "CLIP THAT",
            "W",
            "omg!!",
        ] {
            assert_eq!(tone(text), Tone::Reaction, "{text}");
        }
    }

    #[test]
    fn plain_chat_is_plain() {
        for text in ["hello chat", "what game is this", "gg", "is he playing tomorrow?", "ok", "", "Hi"] {
            assert_eq!(tone(text), Tone::Plain, "{text}");
        }
    }

    /// The rules as first written, word by word: the reference [`tone`] must agree with.
    fn reference(text: &str) -> Tone {
        if text.len() > LONG_BYTES {
            return Tone::Long;
        }
        let mut words = 0;
        let mut reaction = false;
        let (mut letters, mut upper) = (0u32, 0u32);
        for word in text.split_ascii_whitespace() {
            words += 1;
            if words > LONG_WORDS {
                return Tone::Long;
            }
            if words <= WORDS_EXAMINED && !reaction {
                reaction = is_reaction_word(word);
            }
            for byte in word.bytes() {
                if byte.is_ascii_alphabetic() {
                    letters += 1;
                    upper += u32::from(byte.is_ascii_uppercase());
                }
            }
        }
        if reaction || (letters >= 4 && upper * 5 >= letters * 4) { Tone::Reaction } else { Tone::Plain }
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #[test]
        fn the_eight_bytes_at_a_time_classifier_agrees_with_the_word_by_word_rules(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "KEKW", "lol", "LOL", "hahaha", "???", "clip", "W", "no", "way", "THAT", "é", "Pog",
                        "\t", "  ", "\n", "!?", "lmaooo", "OMEGALUL", "x", "ABC", "Éé", "@user",
                    ]).prop_map(str::to_owned),
                    "[ -~\u{80}-\u{2FF}]{0,12}",
                ],
                0..24,
            ),
            separators in proptest::collection::vec(proptest::sample::select(vec![" ", "  ", "\t", "", "\r\n"]), 24),
        ) {
            let text: String = words.iter().zip(&separators).flat_map(|(w, s)| [w.as_str(), s]).collect();
            proptest::prop_assert_eq!(tone(&text), reference(&text), "{:?}", text);
        }
    }

    #[test]
    fn long_texts_are_long() {
        let pasta = "I am not going to explain this again but the reason why this streamer is the best is that every single day he shows up";
        assert_eq!(tone(pasta), Tone::Long);
        assert_eq!(tone(&"a ".repeat(20)), Tone::Long);
        assert_eq!(tone(&"é".repeat(100)), Tone::Long);
    }
}
