//! Clip titles from what chat said: the moment's most repeated phrase and how many said it
//! (`KEKW ×23`), when enough people said it and it is fit to show; otherwise a plain
//! `Chat exploded (7.9σ)`.
//!
//! Fit to show: no word or run of letters on the blocklist (a built-in list of slurs that the
//! operator extends, see [`TitleRules::extended`]), no links or mentions (spam), and at least
//! [`MIN_TITLE_VOICES`] voices behind it. Twitch's title limit is 100 characters.
//!
//! What must not live here: where the operator's list comes from (a file, an environment
//! variable); that is the entry points' business.

use crate::detector::{Detection, TopPhrases};

/// Fewest voices (see [`crate::detector::phrases`]) a phrase needs to become a title.
pub const MIN_TITLE_VOICES: u32 = 3;
/// Twitch's longest clip title, in characters.
pub const MAX_TITLE_CHARS: usize = 100;

/// Built-in blocked terms, one per line; lines starting with `#` are comments.
const BUILT_IN: &str = include_str!("title_blocklist.txt");

/// What may not appear in a title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TitleRules {
    /// Blocked terms, lower case, letters and digits only.
    blocked: Vec<String>,
}

impl Default for TitleRules {
    fn default() -> Self {
        Self { blocked: terms(BUILT_IN).collect() }
    }
}

impl TitleRules {
    /// The built-in rules plus the operator's terms: one per line or separated by commas; `#`
    /// starts a comment line. Matching ignores case, spaces and punctuation.
    pub fn extended(list: &str) -> Self {
        let mut rules = Self::default();
        rules.blocked.extend(terms(list));
        rules.blocked.sort();
        rules.blocked.dedup();
        rules
    }

    /// How many terms are blocked (for a start-up log line).
    pub fn blocked_terms(&self) -> usize {
        self.blocked.len()
    }

    /// Whether `phrase` may be shown as a title.
    pub fn allows(&self, phrase: &str) -> bool {
        let lower = phrase.to_lowercase();
        if ["http", "www.", ".com", ".tv", ".gg", "@"].iter().any(|spam| lower.contains(spam)) {
            return false;
        }
        let words: Vec<String> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect();
        // Spelled out with spaces or dots ("n i c e") is caught by the letters run together.
        let joined: String = words.concat();
        !self.blocked.iter().any(|term| {
            words.iter().any(|word| word == term) || (term.len() >= 4 && joined.contains(term.as_str()))
        })
    }

    /// The phrases of `phrases` fit to show (on a card, in the API).
    pub fn shown(&self, phrases: &TopPhrases) -> TopPhrases {
        TopPhrases::from_entries(
            phrases.entries().filter(|entry| self.allows(entry.phrase.as_str())).copied(),
        )
    }

    /// The title for `detection`.
    pub fn title_for(&self, detection: &Detection) -> String {
        self.title(&detection.phrases, detection.intensity)
    }

    /// The title of a moment whose chat said `phrases`, `intensity` above its usual.
    pub fn title(&self, phrases: &TopPhrases, intensity: f64) -> String {
        let phrase = phrases
            .entries()
            .find(|entry| entry.count >= MIN_TITLE_VOICES && self.allows(entry.phrase.as_str()));
        let title = match phrase {
            Some(entry) => format!("{} ×{}", entry.phrase.as_str(), entry.count),
            None => format!("Chat exploded ({intensity:.1}σ)"),
        };
        title.chars().take(MAX_TITLE_CHARS).collect()
    }
}

fn terms(list: &str) -> impl Iterator<Item = String> + '_ {
    list.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split(','))
        .map(|term| {
            term.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase).collect::<String>()
        })
        .filter(|term| !term.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::{Phrase, PhraseCount};

    fn detection(phrases: &[(&str, u32)]) -> Detection {
        Detection {
            broadcaster_id: 1,
            peak_second: 100,
            fired_second: 100,
            intensity: 7.8929,
            message_count: 40,
            baseline_mean: 1.0,
            baseline_std: 1.0,
            curve: Default::default(),
            phrases: TopPhrases::from_entries(
                phrases
                    .iter()
                    .map(|&(text, count)| PhraseCount { phrase: Phrase::parse(text).unwrap(), count }),
            ),
        }
    }

    #[test]
    fn the_most_said_phrase_becomes_the_title() {
        let rules = TitleRules::default();
        assert_eq!(rules.title_for(&detection(&[("KEKW", 23), ("W", 5)])), "KEKW ×23");
        assert_eq!(rules.title_for(&detection(&[("LETS GOOO", 4)])), "LETS GOOO ×4");
    }

    #[test]
    fn too_few_voices_or_no_phrase_gives_the_plain_title() {
        let rules = TitleRules::default();
        assert_eq!(rules.title_for(&detection(&[("KEKW", 2)])), "Chat exploded (7.9σ)");
        assert_eq!(rules.title_for(&detection(&[])), "Chat exploded (7.9σ)");
    }

    #[test]
    fn blocked_and_spam_phrases_are_skipped_for_the_next() {
        let rules = TitleRules::extended("# ours\nbadword, OTHER-Term\n");
        assert_eq!(rules.title_for(&detection(&[("BADWORD", 30), ("W", 9)])), "W ×9");
        assert_eq!(rules.title_for(&detection(&[("B.A.D.W.O.R.D", 30)])), "Chat exploded (7.9σ)");
        assert_eq!(rules.title_for(&detection(&[("OTHERTERM", 30)])), "Chat exploded (7.9σ)");
        assert_eq!(rules.title_for(&detection(&[("WWW.SPAM.COM", 30)])), "Chat exploded (7.9σ)");
        let shown = rules.shown(&detection(&[("BADWORD", 30), ("W", 9)]).phrases);
        assert_eq!(
            shown.entries().map(|e| e.phrase.as_str()).collect::<Vec<_>>(),
            ["W"],
            "nor listed on a card"
        );
        assert!(!TitleRules::default().allows("@SOMEONE"));
        assert!(TitleRules::default().allows("KEKW"));
        assert!(TitleRules::default().blocked_terms() > 0, "the built-in list is read");
        assert!(
            !TitleRules::default()
                .allows(&BUILT_IN.lines().rfind(|l| !l.starts_with('#')).unwrap().to_uppercase())
        );
    }
}
