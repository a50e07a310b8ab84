//! `highlights synth --scenario realistic`: a labelled corpus with the distractors real chat has.
//!
//! Channels come in three sizes (small: under 1 message/s from a few dozen regulars; medium;
//! large: thousands of chatters), round robin. Chatters are drawn from a skewed population, so a
//! few regulars write most messages; resting chat mixes plain talk, some emotes and bot commands.
//! Each channel then gets events, every one labelled:
//! - highlights (must fire): `reaction` (many distinct people react at once, mostly emotes and
//!   laughter, 6–10 s), `hype` (reactions build over 15–30 s), `small` (in small channels: 5–9
//!   people react within 4 s);
//! - distractors (must not fire): `spam` (one chatter floods chat), `bots` (two accounts
//!   alternate), `commands` (a wave of `!enter`), `copypasta` (many chatters paste one long text),
//!   `drift` (the rate climbs to 2.5× over five minutes and back down).
//!
//! A raid's arrival is not in the corpus: Twitch announces raids with a USERNOTICE, not chat,
//! so whether it deserves a clip is the operator's choice, not the detector's.
//!
//! The same arguments always give byte-identical output.

use std::io::Write;

use crate::labels::Label;
use crate::synth::SplitMix64;

/// Warm-up left free of events, and the quiet gap between two events of one channel, seconds.
const QUIET_START_S: u32 = 330;
const EVENT_GAP_S: u32 = 120;
/// Events per channel-hour.
const EVENTS_PER_HOUR: f64 = 10.0;

const PLAIN: &[&str] = &[
    "hello chat",
    "what game is this",
    "how long has he been live",
    "gg",
    "is this ranked",
    "first time here",
    "what rank is he",
    "that build is interesting",
    "ok",
    "nice",
    "hi from germany",
    "when is the next stream",
    "he should go left",
    "i like this song",
    "true",
    "any tips for this boss",
    "that was close",
    "good morning",
];
const EMOTES: &[&str] = &["Kappa", "LUL", "monkaS", "PogChamp", "KEKW", "4Head", "Sadge", "EZ"];
const REACTIONS: &[&str] = &[
    "KEKW",
    "LUL LUL LUL",
    "OMEGALUL",
    "Pog",
    "PogChamp",
    "NO WAY",
    "WHAT",
    "????",
    "LMAO",
    "hahaha",
    "clip it",
    "CLIP THAT",
    "monkaS",
    "KEKW KEKW",
    "LETS GOOO",
    "W",
    "omg",
    "PogU PogU",
];
const HYPE: &[&str] = &["LETS GO", "PogChamp", "POGGERS", "W", "LETS GOOOO", "Pog Pog Pog", "HYPE", "GG EZ"];
const COMMANDS: &[&str] = &["!uptime", "!discord", "!song", "!followage"];
const WAVE: &[&str] = &["!enter", "!giveaway", "!join"];
const SPAM: &[&str] = &["buy followers at cheapviews dot com", "FOLLOW ME", "check my channel", "hi"];
const PASTA: &str = "I have been watching this streamer for five years and I can say without any doubt that this is the single greatest play ever made in the history of this game";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Size {
    Small,
    Medium,
    Large,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Reaction,
    Hype,
    SmallBurst,
    Spam,
    Bots,
    Commands,
    Copypasta,
    Drift,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Reaction => "reaction",
            Self::Hype => "hype",
            Self::SmallBurst => "small",
            Self::Spam => "spam",
            Self::Bots => "bots",
            Self::Commands => "commands",
            Self::Copypasta => "copypasta",
            Self::Drift => "drift",
        }
    }

    fn is_distractor(self) -> bool {
        !matches!(self, Self::Reaction | Self::Hype | Self::SmallBurst)
    }
}

#[derive(Debug, Clone, Copy)]
struct Event {
    kind: Kind,
    start: u32,
    length: u32,
    /// Chatters taking part (index into the population, or fresh ids above it).
    first_chatter: u64,
    people: u32,
    /// Peak messages per second the event adds.
    intensity: f64,
}

struct Channel {
    broadcaster_id: u64,
    size: Size,
    rate: f64,
    population: u64,
    events: Vec<Event>,
}

/// Writes the corpus (JSONL with `user_id` and `login`) to `out` and returns its labels.
pub fn write(
    channels: u32,
    duration: u32,
    start: i64,
    first_broadcaster_id: u64,
    seed: u64,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<Label>> {
    let mut rng = SplitMix64::new(seed);
    let plan: Vec<Channel> =
        (0..channels).map(|index| plan_channel(index, first_broadcaster_id, duration, &mut rng)).collect();
    let mut line = Vec::with_capacity(256);
    let mut batch: Vec<(i64, u64, &str)> = Vec::new();
    for second in 0..duration {
        for channel in &plan {
            batch.clear();
            resting(channel, &mut rng, &mut batch);
            for event in channel.events.iter().filter(|e| (e.start..e.start + e.length).contains(&second)) {
                event_messages(channel, event, second, &mut rng, &mut batch);
            }
            batch.sort_by_key(|&(offset, _, _)| offset);
            for &(offset, chatter, text) in &batch {
                let sent_at = (start + i64::from(second)) * 1000 + offset;
                let user_id = channel.broadcaster_id * 1_000_000 + chatter + 1;
                line.clear();
                write!(
                    line,
                    r#"{{"broadcaster_id":"{}","sent_at":{sent_at},"user_id":"{user_id}","login":"u{user_id}","text":"{text}"}}"#,
                    channel.broadcaster_id
                )?;
                line.push(b'\n');
                out.write_all(&line)?;
            }
        }
    }
    let mut labels: Vec<Label> = plan
        .iter()
        .flat_map(|channel| {
            channel.events.iter().map(|event| Label {
                broadcaster_id: channel.broadcaster_id,
                start: start + i64::from(event.start),
                end: start + i64::from(event.start + event.length) - 1,
                kind: event.kind.name().to_owned(),
                distractor: event.kind.is_distractor(),
            })
        })
        .collect();
    labels.sort_by_key(|label| (label.broadcaster_id, label.start));
    Ok(labels)
}

fn plan_channel(index: u32, first_broadcaster_id: u64, duration: u32, rng: &mut SplitMix64) -> Channel {
    let size = [Size::Small, Size::Medium, Size::Large][index as usize % 3];
    let (rate, population) = match size {
        Size::Small => (0.15 + 0.45 * rng.unit(), 20 + rng.below(40)),
        Size::Medium => (1.5 + 2.5 * rng.unit(), 300 + rng.below(500)),
        Size::Large => (8.0 + 12.0 * rng.unit(), 3_000 + rng.below(5_000)),
    };
    let mut channel = Channel {
        broadcaster_id: first_broadcaster_id + u64::from(index),
        size,
        rate,
        population,
        events: Vec::new(),
    };
    let wanted = rng.poisson(EVENTS_PER_HOUR * f64::from(duration) / 3600.0);
    let mut at = QUIET_START_S;
    for _ in 0..wanted {
        let event = pick_event(&channel, at, rng);
        if event.start + event.length + EVENT_GAP_S > duration {
            break;
        }
        at = event.start + event.length + EVENT_GAP_S;
        channel.events.push(event);
    }
    channel
}

fn pick_event(channel: &Channel, earliest: u32, rng: &mut SplitMix64) -> Event {
    let start = earliest + rng.below(240) as u32;
    let kinds: &[Kind] = match channel.size {
        Size::Small => &[
            Kind::SmallBurst,
            Kind::SmallBurst,
            Kind::Hype,
            Kind::Spam,
            Kind::Bots,
            Kind::Commands,
            Kind::Copypasta,
            Kind::Drift,
        ],
        _ => &[
            Kind::Reaction,
            Kind::Reaction,
            Kind::Hype,
            Kind::Spam,
            Kind::Bots,
            Kind::Commands,
            Kind::Copypasta,
            Kind::Drift,
        ],
    };
    let kind = kinds[rng.below(kinds.len() as u64) as usize];
    let fresh = channel.population + rng.below(1_000_000);
    let base = channel.rate;
    let (length, first_chatter, people, intensity) = match kind {
        Kind::Reaction => (6 + rng.below(5) as u32, fresh, 0, (base * 4.0).max(6.0) * (1.0 + rng.unit())),
        Kind::Hype => (15 + rng.below(16) as u32, fresh, 0, (base * 5.0).max(8.0) * (1.0 + rng.unit())),
        Kind::SmallBurst => (4, rng.below(channel.population), 5 + rng.below(5) as u32, 0.0),
        Kind::Spam => (20 + rng.below(21) as u32, rng.below(channel.population), 1, 2.0 + 4.0 * rng.unit()),
        Kind::Bots => (30 + rng.below(31) as u32, fresh, 2, 1.0 + 2.0 * rng.unit()),
        Kind::Commands => (10, rng.below(channel.population), 15 + rng.below(26) as u32, 0.0),
        Kind::Copypasta => {
            (15 + rng.below(11) as u32, rng.below(channel.population), 8 + rng.below(18) as u32, 0.0)
        }
        Kind::Drift => (600, 0, 0, base * 1.5),
    };
    Event { kind, start, length, first_chatter, people, intensity }
}

/// A regular: low indices write most (the cube of a uniform draw favours them).
fn regular(channel: &Channel, rng: &mut SplitMix64) -> u64 {
    let u = rng.unit();
    ((u * u * u) * channel.population as f64) as u64
}

/// Who joins a highlight: a regular half the time, else someone from the event's own crowd.
fn crowd_member(channel: &Channel, event: &Event, rng: &mut SplitMix64) -> u64 {
    if rng.unit() < 0.5 { regular(channel, rng) } else { event.first_chatter + rng.below(100_000) }
}

fn resting(channel: &Channel, rng: &mut SplitMix64, out: &mut Vec<(i64, u64, &'static str)>) {
    for _ in 0..rng.poisson(channel.rate) {
        let roll = rng.unit();
        let text = if roll < 0.03 {
            pick(COMMANDS, rng)
        } else if roll < 0.25 {
            pick(EMOTES, rng)
        } else {
            pick(PLAIN, rng)
        };
        out.push((rng.below(1000) as i64, regular(channel, rng), text));
    }
}

fn event_messages(
    channel: &Channel,
    event: &Event,
    second: u32,
    rng: &mut SplitMix64,
    out: &mut Vec<(i64, u64, &'static str)>,
) {
    let into = second - event.start;
    let offset = |rng: &mut SplitMix64| rng.below(1000) as i64;
    match event.kind {
        Kind::Reaction => {
            for _ in 0..rng.poisson(event.intensity) {
                let chatter = crowd_member(channel, event, rng);
                let text = if rng.unit() < 0.8 { pick(REACTIONS, rng) } else { pick(PLAIN, rng) };
                out.push((offset(rng), chatter, text));
            }
        }
        Kind::Hype => {
            let ramp = f64::from(into + 1) / f64::from(event.length);
            for _ in 0..rng.poisson(event.intensity * ramp) {
                let chatter = crowd_member(channel, event, rng);
                let text = if rng.unit() < 0.7 { pick(HYPE, rng) } else { pick(REACTIONS, rng) };
                out.push((offset(rng), chatter, text));
            }
        }
        Kind::SmallBurst => {
            // Each person reacts in one second of the event, every other one twice.
            for person in 0..u64::from(event.people) {
                let chatter = (event.first_chatter + person) % channel.population;
                let reacts_at = (event.first_chatter + person * 5) % u64::from(event.length);
                if reacts_at == u64::from(into) {
                    for _ in 0..1 + person % 2 {
                        out.push((offset(rng), chatter, pick(REACTIONS, rng)));
                    }
                }
            }
        }
        Kind::Spam => {
            let text = pick(SPAM, rng);
            for _ in 0..rng.poisson(event.intensity) {
                out.push((offset(rng), event.first_chatter, text));
            }
        }
        Kind::Bots => {
            for bot in 0..2 {
                for _ in 0..rng.poisson(event.intensity) {
                    out.push((offset(rng), event.first_chatter + bot, pick(SPAM, rng)));
                }
            }
        }
        Kind::Commands => {
            let per_second = f64::from(event.people) / f64::from(event.length);
            for _ in 0..rng.poisson(per_second) {
                out.push((offset(rng), regular(channel, rng), pick(WAVE, rng)));
            }
        }
        Kind::Copypasta => {
            let per_second = f64::from(event.people) / f64::from(event.length);
            for _ in 0..rng.poisson(per_second) {
                out.push((offset(rng), regular(channel, rng), PASTA));
            }
        }
        Kind::Drift => {
            // Up to 2.5x over the first half, back down over the second.
            let half = f64::from(event.length) / 2.0;
            let position = f64::from(into);
            let shape =
                if position < half { position / half } else { (f64::from(event.length) - position) / half };
            for _ in 0..rng.poisson(event.intensity * shape) {
                let roll = rng.unit();
                let text = if roll < 0.25 { pick(EMOTES, rng) } else { pick(PLAIN, rng) };
                out.push((offset(rng), regular(channel, rng), text));
            }
        }
    }
}

fn pick(options: &'static [&'static str], rng: &mut SplitMix64) -> &'static str {
    options[rng.below(options.len() as u64) as usize]
}
