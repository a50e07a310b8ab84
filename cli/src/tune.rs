//! `highlights tune FILE... --per-hour N`: suggests each channel's own sensitivity from its
//! recorded chat, so that the detector would have reported about N moments an hour of it, and
//! prints the `highlights channel set` line that applies it.
//!
//! The search is over `k` alone, the setting that scales how often a channel fires; the others
//! (cooldown, minimum chatters) are about what a moment is and stay the deployment's. Each
//! candidate replays the channel's chat through the same detector `backtest` runs, so a
//! suggestion reproduces exactly with `backtest --k` on each recording (`backtest` given several
//! files runs them through one detector; tune starts each recording afresh, as a new stream does).

use std::path::PathBuf;

use anyhow::Context as _;
use highlights_adapters::settings::DetectorSettings;
use highlights_core::config::RawConfig;
use highlights_core::{BroadcasterId, BroadcasterMap, ChannelDetector, ChatterKey, DetectorConfig};

use crate::input::{self, Format};

#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Recorded chat of the channels to tune (every `backtest` format), an hour or more each.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// Moments an hour wanted (at most), e.g. 2.
    #[arg(long, value_name = "N")]
    per_hour: f64,
    /// The deployment's other settings, which the suggestion keeps.
    #[command(flatten)]
    detector: DetectorSettings,
}

/// The range searched: below 1 nearly every second of chat is "elevated"; above 50 nothing is.
const K_RANGE: (f64, f64) = (1.0, 50.0);
/// Bisection steps: the range shrinks to about 0.00005 of its width, far below what matters.
const STEPS: u32 = 20;
/// Chat shorter than this says too little about a channel's hours.
const MIN_HOURS: f64 = 0.5;

/// One message as the detector reads it.
struct Message {
    sent_at_ms: i64,
    chatter: ChatterKey,
    text: String,
}

#[derive(Default)]
struct ChannelChat {
    login: Option<String>,
    /// One per file: separate recordings are separate streams, each detected from a fresh start
    /// (as a new stream resets the detector in production).
    recordings: Vec<Vec<Message>>,
    /// Milliseconds of chat, summed per file (two recordings months apart are not months).
    observed_ms: i64,
}

/// What the search found for one channel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suggestion {
    /// The smallest `k` (most sensitive) with at most the wanted moments; the range's low end
    /// when every `k` in it gives few enough.
    pub k: f64,
    /// Moments at that `k`.
    pub detections: usize,
}

/// The smallest `k` in `range` for which `detections(k) <= wanted`, by bisection (more `k`,
/// fewer moments; a cooldown can make that only roughly true, so the answer is checked). `None`
/// when even the least sensitive end gives more.
pub fn smallest_k_within(
    wanted: usize,
    range: (f64, f64),
    steps: u32,
    mut detections: impl FnMut(f64) -> usize,
) -> Option<Suggestion> {
    let (mut low, mut high) = range;
    let at_high = detections(high);
    if at_high > wanted {
        return None;
    }
    let at_low = detections(low);
    if at_low <= wanted {
        return Some(Suggestion { k: low, detections: at_low });
    }
    let mut best = Suggestion { k: high, detections: at_high };
    for _ in 0..steps {
        let middle = (low + high) / 2.0;
        let found = detections(middle);
        if found <= wanted {
            best = Suggestion { k: middle, detections: found };
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(best)
}

/// Moments the detector reports on a channel's recordings with `config`.
fn detections(id: BroadcasterId, config: DetectorConfig, recordings: &[Vec<Message>]) -> usize {
    let mut out = Vec::new();
    for recording in recordings {
        let mut detector = ChannelDetector::new(id, config);
        for message in recording {
            detector.observe_message(message.sent_at_ms, message.chatter, &message.text, &mut out);
        }
        detector.finish(&mut out);
    }
    out.len()
}

pub fn run(args: TuneArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.per_hour.is_finite() && args.per_hour > 0.0,
        "--per-hour must be a positive number (got {})",
        args.per_hour
    );
    let base = args.detector.config().context("invalid detector settings")?;
    let mut channels: BroadcasterMap<ChannelChat> = BroadcasterMap::default();
    for path in &args.files {
        eprintln!("tune: reading {}", path.display());
        let mut spans: BroadcasterMap<(i64, i64)> = BroadcasterMap::default();
        input::read_file(
            path,
            args.format,
            &mut |event| {
                let chat = channels.entry(event.broadcaster_id).or_default();
                let span = spans.entry(event.broadcaster_id).or_insert_with(|| {
                    chat.recordings.push(Vec::new());
                    (event.sent_at_ms, event.sent_at_ms)
                });
                *span = (span.0.min(event.sent_at_ms), span.1.max(event.sent_at_ms));
                if chat.login.is_none() {
                    chat.login = event.channel.map(str::to_owned);
                }
                chat.recordings.last_mut().expect("pushed on first sight in this file").push(Message {
                    sent_at_ms: event.sent_at_ms,
                    chatter: event.chatter,
                    text: event.text.to_owned(),
                });
            },
            &mut |bad| eprintln!("{}: {}: {}", path.display(), bad.position, bad.reason),
            &mut |_| {},
        )?;
        for (id, (first, last)) in spans {
            channels.get_mut(&id).expect("seen in this file").observed_ms += last - first;
        }
    }
    anyhow::ensure!(!channels.is_empty(), "no chat in the files");
    let mut ids: Vec<BroadcasterId> = channels.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let chat = &channels[&id];
        let hours = chat.observed_ms as f64 / 3_600_000.0;
        let name = chat.login.clone().unwrap_or_else(|| id.to_string());
        if hours < MIN_HOURS {
            eprintln!(
                "tune: {name}: only {:.0} minutes of chat; skipped (tune needs {MIN_HOURS} h or more)",
                hours * 60.0
            );
            continue;
        }
        let wanted = (args.per_hour * hours).floor() as usize;
        let with_k = |k: f64| DetectorConfig::new(RawConfig { k, ..*base.raw() });
        with_k(K_RANGE.0).context("the settings do not allow tuning k")?;
        let at_default = detections(id, base, &chat.recordings);
        let found = smallest_k_within(wanted, K_RANGE, STEPS, |k| {
            detections(id, with_k(k).expect("checked above: only k changes"), &chat.recordings)
        });
        let target = match (&chat.login, id) {
            (Some(login), _) => login.clone(),
            (None, id) => format!("CHANNEL --broadcaster-id {id}"),
        };
        match found {
            Some(suggestion) if suggestion.k <= K_RANGE.0 => eprintln!(
                "tune: {name}: {} moments in {hours:.1} h even at k {}: its minimum of chatters or ratio decides, \
                 not k; its k stays as it is",
                suggestion.detections, K_RANGE.0
            ),
            Some(suggestion) => {
                // Rounded up to 2 decimals: never more sensitive than what was measured.
                let k = (suggestion.k * 100.0).ceil() / 100.0;
                println!(
                    "highlights channel set {target} --k {k} --clips-per-hour {}   # {} moments in {hours:.1} h at k {k} ({} at the deployment's k {})",
                    args.per_hour.ceil(),
                    detections(id, with_k(k).expect("checked above"), &chat.recordings),
                    at_default,
                    base.k(),
                );
            }
            None => eprintln!(
                "tune: {name}: more than {wanted} moments in {hours:.1} h even at k {}; raise --min-chatters or the cooldown",
                K_RANGE.1
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_finds_the_most_sensitive_threshold_within_the_budget() {
        // 100 moments at k 1, one fewer per 0.5 of k.
        let count = |k: f64| (100.0 - (k - 1.0) * 2.0).max(0.0) as usize;
        let found = smallest_k_within(10, (1.0, 50.0), 30, count).unwrap();
        assert!(found.detections <= 10 && count(found.k - 0.01) > 10, "{found:?}");
        assert_eq!(smallest_k_within(200, (1.0, 50.0), 30, count).unwrap().k, 1.0, "every k fits");
        assert_eq!(smallest_k_within(0, (1.0, 20.0), 30, count), None, "even k 20 gives 62");
    }
}
