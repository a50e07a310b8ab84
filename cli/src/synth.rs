//! `highlights synth`: deterministic synthetic chat for tests, benchmarks and tuning.
//!
//! Every channel chats at its own resting rate (Poisson arrivals); at random moments after the
//! warm-up its rate jumps for a few seconds (a burst), and each burst is written to the labels
//! file. The same arguments always give byte-identical output, on any machine.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;

use crate::labels::Label;

#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// `bursts`: every channel at its own rate with labelled bursts (the options below);
    /// `realistic`: channels of three sizes, chatters with user ids, highlights of three shapes
    /// and labelled distractors (spam, bots, command waves, copypasta, drift); with it, only
    /// --channels, --duration, --start, --first-broadcaster-id, --seed, --out and --labels apply.
    #[arg(long, value_enum, default_value_t = Scenario::Bursts)]
    scenario: Scenario,
    /// Number of channels.
    #[arg(long, default_value_t = 10)]
    channels: u32,
    /// Length of the recording, seconds.
    #[arg(long, default_value_t = 3_600)]
    duration: u32,
    /// Mean resting chat rate per channel, messages/s; each channel gets 0.5x to 1.5x of it.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Bursts per channel-hour.
    #[arg(long, default_value_t = 2.0)]
    bursts_per_hour: f64,
    /// Length of a burst, seconds.
    #[arg(long, default_value_t = 8)]
    burst_seconds: u32,
    /// Chat rate during a burst, as a multiple of the channel's resting rate (at least 10/s).
    #[arg(long, default_value_t = 15.0)]
    burst_multiplier: f64,
    /// Fraction of messages that are bot commands (`!uptime`).
    #[arg(long, default_value_t = 0.03)]
    command_fraction: f64,
    /// Unix second at which the recording starts.
    #[arg(long, default_value_t = 1_700_000_000)]
    start: i64,
    /// Broadcaster id of the first channel; the others follow.
    #[arg(long, default_value_t = 100_000)]
    first_broadcaster_id: u64,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where to write the chat (JSONL); stdout when absent.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Where to write the bursts (JSONL labels for `backtest --labels`).
    #[arg(long)]
    labels: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    Bursts,
    Realistic,
}

/// Warm-up left free of bursts, and the gap kept between two bursts of one channel, seconds:
/// enough for the default 300-second baseline and 30-second cooldown.
const QUIET_START_S: u32 = 330;
const BURST_GAP_S: u32 = 90;

const REACTIONS: &[&str] = &[
    "LUL",
    "KEKW",
    "Pog",
    "PogChamp that was insane",
    "OMEGALUL",
    "no way",
    "hello chat",
    "gg",
    "W",
    "lets go",
    "Kappa",
    "monkaS",
    "what just happened",
    "clip it",
    "LMAO",
];
const COMMANDS: &[&str] = &["!uptime", "!discord", "!song", "!followage"];

struct Channel {
    broadcaster_id: u64,
    rate: f64,
    /// Burst start seconds (relative to the recording start), ascending.
    bursts: Vec<u32>,
}

impl SynthArgs {
    /// The built-in demo of `highlights dev`: a few lively channels with a burst every few
    /// minutes each, starting at Unix second `start`, written to `out`.
    pub fn demo(start: i64, duration: u32, out: PathBuf) -> Self {
        Self {
            scenario: Scenario::Bursts,
            channels: 3,
            duration,
            rate: 3.0,
            bursts_per_hour: 20.0,
            burst_seconds: 8,
            burst_multiplier: 15.0,
            command_fraction: 0.03,
            start,
            first_broadcaster_id: 100_000,
            seed: start as u64,
            out: Some(out),
            labels: None,
        }
    }
}

pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.channels > 0, "--channels must be at least 1");
    if args.scenario == Scenario::Realistic {
        return run_realistic(&args);
    }
    anyhow::ensure!(args.rate.is_finite() && args.rate > 0.0, "--rate must be a positive number");
    anyhow::ensure!(
        args.bursts_per_hour.is_finite() && args.bursts_per_hour >= 0.0,
        "--bursts-per-hour must be 0 or more"
    );
    anyhow::ensure!(
        args.burst_multiplier.is_finite() && args.burst_multiplier >= 1.0,
        "--burst-multiplier must be at least 1"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.command_fraction),
        "--command-fraction must be between 0 and 1"
    );
    anyhow::ensure!(args.burst_seconds > 0, "--burst-seconds must be at least 1");

    let mut rng = SplitMix64::new(args.seed);
    let channels = plan_channels(&args, &mut rng);

    if let Some(path) = &args.labels {
        let labels: Vec<Label> = channels
            .iter()
            .flat_map(|channel| {
                channel.bursts.iter().map(|&start| {
                    let start = args.start + i64::from(start);
                    Label::burst(channel.broadcaster_id, start, start + i64::from(args.burst_seconds) - 1)
                })
            })
            .collect();
        write_labels(path, &labels)?;
    }

    let sink: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut offsets = Vec::new();
    let mut line = Vec::with_capacity(256);
    for second in 0..args.duration {
        for channel in &channels {
            let bursting = channel.bursts.iter().any(|&b| (b..b + args.burst_seconds).contains(&second));
            let rate = if bursting { (channel.rate * args.burst_multiplier).max(10.0) } else { channel.rate };
            let count = rng.poisson(rate);
            offsets.clear();
            offsets.extend((0..count).map(|_| rng.below(1000) as i64));
            offsets.sort_unstable();
            for &offset in &offsets {
                let sent_at = (args.start + i64::from(second)) * 1000 + offset;
                let text = if rng.unit() < args.command_fraction {
                    COMMANDS[rng.below(COMMANDS.len() as u64) as usize]
                } else {
                    REACTIONS[rng.below(REACTIONS.len() as u64) as usize]
                };
                let viewer = rng.below(5_000);
                line.clear();
                write!(
                    line,
                    r#"{{"broadcaster_id":"{}","sent_at":{sent_at},"login":"viewer{viewer}","text":"{text}"}}"#,
                    channel.broadcaster_id
                )?;
                line.push(b'\n');
                out.write_all(&line)?;
            }
        }
    }
    out.flush().context("cannot write synthetic chat")?;
    Ok(())
}

fn run_realistic(args: &SynthArgs) -> anyhow::Result<()> {
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let labels = crate::scenario::write(
        args.channels,
        args.duration,
        args.start,
        args.first_broadcaster_id,
        args.seed,
        &mut out,
    )?;
    out.flush().context("cannot write synthetic chat")?;
    if let Some(path) = &args.labels {
        write_labels(path, &labels)?;
    }
    Ok(())
}

fn write_labels(path: &std::path::Path, labels: &[Label]) -> anyhow::Result<()> {
    let mut out =
        BufWriter::new(File::create(path).with_context(|| format!("cannot create {}", path.display()))?);
    for label in labels {
        serde_json::to_writer(&mut out, label)?;
        out.write_all(b"\n")?;
    }
    out.flush().with_context(|| format!("cannot write {}", path.display()))
}

fn plan_channels(args: &SynthArgs, rng: &mut SplitMix64) -> Vec<Channel> {
    let usable = args.duration.saturating_sub(QUIET_START_S + args.burst_seconds);
    let expected = args.bursts_per_hour * f64::from(args.duration) / 3600.0;
    (0..args.channels)
        .map(|index| {
            let rate = args.rate * (0.5 + rng.unit());
            let wanted = rng.poisson(expected);
            let mut bursts: Vec<u32> = Vec::new();
            // Rejection sampling keeps bursts apart; give up on a burst after a few tries.
            for _ in 0..wanted {
                for _attempt in 0..20 {
                    if usable == 0 {
                        break;
                    }
                    let at = QUIET_START_S + rng.below(u64::from(usable)) as u32;
                    if bursts.iter().all(|&b| b.abs_diff(at) >= BURST_GAP_S + args.burst_seconds) {
                        bursts.push(at);
                        break;
                    }
                }
            }
            bursts.sort_unstable();
            Channel { broadcaster_id: args.first_broadcaster_id + u64::from(index), rate, bursts }
        })
        .collect()
}

/// SplitMix64: tiny, fast, and fixed forever, so synthetic files never change between versions.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, bound).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(bound)) >> 64) as u64
    }

    /// Poisson-distributed count: Knuth's method for small means, a rounded normal above 30.
    pub(crate) fn poisson(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut product = self.unit();
            let mut count = 0;
            while product > limit {
                count += 1;
                product *= self.unit();
            }
            return count;
        }
        let (u1, u2) = (self.unit().max(f64::MIN_POSITIVE), self.unit());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (mean + normal * mean.sqrt()).round().max(0.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_means_are_right() {
        let mut rng = SplitMix64::new(7);
        for mean in [0.3, 2.0, 12.0, 80.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| u64::from(rng.poisson(mean))).sum();
            let observed = total as f64 / n as f64;
            assert!((observed - mean).abs() < mean * 0.05 + 0.02, "mean {mean}: got {observed}");
        }
    }

    #[test]
    fn below_stays_below() {
        let mut rng = SplitMix64::new(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
    }
}
