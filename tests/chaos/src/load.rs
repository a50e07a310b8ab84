//! The load row: many busy and quiet channels at once through the whole product, measured.
//!
//! The local AWS emulator drains only about 760 records a second, so this row runs the stream and
//! the state on the in-process adapters: `highlights dev` (the ingester's IRC client and batcher,
//! the embedded stream, the detector and clipper handlers, the API), fed by the fake Twitch IRC
//! server and clipping on the fake Helix, as separate processes. The fault rows use the emulator.
//!
//! Truth, as in the fault rows: the fake IRC server's send log, the same detector handler run once
//! more in memory on the exact records of the stream (the reference), the fake Helix's own log of
//! Create Clip calls and clips, and the API's list. Figures: per-stage latency percentiles (end
//! of the peak second → highlight recorded → Create Clip call), the process's CPU and memory, and
//! how far the chat sender itself fell behind its schedule (so that a slow harness is not mistaken
//! for a slow product).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use highlights_adapters::lambda_events::KinesisRecordIn;
use highlights_core::wire;
use highlights_embedded::Embedded;
use highlights_test_support::irc::FakeIrc;
use highlights_test_support::{FakeTwitch, OUR_USER_ID};

use crate::chat::now_ms;
use crate::observe::{ChatStream, key, reference_detections};
use crate::world::Binaries;

/// `highlights dev`'s stream, as its detector sees it (one shard, in append order).
const DEV_STREAM_ARN: &str = "arn:aws:kinesis:local:000000000000:stream/dev-chat";
const ACCESS: &str = "load-access";

/// Calm chat of a busy channel is mostly talk; the bursts are reactions (which v2 weighs double).
/// With calm chat as reactive as the bursts, this load found v2's sketch saturating near 1,000
/// chatters a second (docs/detection.md); the row in docs/reliability.md was measured with these.
const BUSY_CALM: [&str; 4] = ["nice", "where is he from", "what is this build", "hi chat"];
const BUSY_REACTIONS: [&str; 5] = ["PogChamp", "KEKW KEKW", "OMEGALUL", "NO WAY", "CLIP IT"];
const QUIET_CALM: [&str; 3] = ["hi", "how was your day", "!discord"];

/// Channel sizes, rates and length of the load.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub busy: usize,
    pub busy_rate: u32,
    pub quiet: usize,
    pub quiet_rate: u32,
    pub seconds: u32,
}

impl LoadPlan {
    /// The issue's load: 10 channels at 1,000 messages a second and 500 at 2, for 5 minutes.
    pub fn full() -> Self {
        Self { busy: 10, busy_rate: 1000, quiet: 500, quiet_rate: 2, seconds: 300 }
    }

    /// A quick look at the same shape (checks the harness, not the product's limits).
    pub fn short() -> Self {
        Self { busy: 2, busy_rate: 1000, quiet: 50, quiet_rate: 2, seconds: 60 }
    }

    /// `(login, room id)` of every channel: the busy ones first.
    pub fn channels(&self) -> Vec<(String, u64)> {
        let busy = (0..self.busy).map(|i| (format!("loadbusy{i}"), 800_000 + i as u64));
        let quiet = (0..self.quiet).map(|i| (format!("loadquiet{i}"), 810_000 + i as u64));
        busy.chain(quiet).collect()
    }

    /// Whether second `second` of channel `index` is in a planned burst: a busy channel every
    /// 45 s (4 s at 2.5 times its rate, every message from another viewer), every tenth quiet
    /// channel once (5 s of 15 different viewers a second). None in the last 20 s, so that every
    /// burst's windows close.
    pub fn in_burst(&self, index: usize, second: u32) -> bool {
        if second + 20 >= self.seconds {
            return false;
        }
        if index < self.busy {
            let first = 20 + 2 * index as u32;
            second >= first && (second - first) % 45 < 4
        } else {
            let quiet = index - self.busy;
            let room = self.seconds.saturating_sub(45).max(1);
            let start = 25 + (quiet as u32 / 10 * 7) % room;
            quiet.is_multiple_of(10) && (start..start + 5).contains(&second)
        }
    }

    pub fn planned_bursts(&self) -> usize {
        (0..self.busy + self.quiet)
            .map(|c| (1..self.seconds).filter(|&s| self.in_burst(c, s) && !self.in_burst(c, s - 1)).count())
            .sum()
    }

    /// The messages of one second of one channel: (user id, text).
    fn second(&self, index: usize, second: u32) -> Vec<(u64, &'static str)> {
        let mix = |n: u64| {
            // splitmix64 of (channel, second, n): random-looking, and the same chat every run.
            let mut z =
                ((index as u64) << 40 ^ u64::from(second) << 20 ^ n).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let busy = index < self.busy;
        match (busy, self.in_burst(index, second)) {
            (true, true) => (0..u64::from(self.busy_rate) * 5 / 2)
                .map(|n| {
                    (5_000_000 + (u64::from(second) * 2_500 + n) % 50_000, BUSY_REACTIONS[n as usize % 5])
                })
                .collect(),
            (true, false) => (0..u64::from(self.busy_rate))
                .map(|n| (1_000_000 + mix(n) % 4_000, BUSY_CALM[(mix(n) >> 32) as usize % 4]))
                .collect(),
            (false, true) => (0..15u64).map(|n| (200_000 + u64::from(second) * 15 + n, "LUL LUL")).collect(),
            (false, false) => (0..u64::from(self.quiet_rate))
                .map(|n| (100 + mix(n) % 30, QUIET_CALM[(mix(n) >> 32) as usize % 3]))
                .collect(),
        }
    }
}

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    pub p50: i64,
    pub p90: i64,
    pub p99: i64,
    pub max: i64,
    pub count: usize,
}

impl Spread {
    fn of(mut values: Vec<i64>) -> Self {
        values.sort_unstable();
        let at =
            |q: f64| values.get(((values.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0);
        Self { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0), count: values.len() }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |ms: i64| format!("{:.1}", ms as f64 / 1000.0);
        write!(
            f,
            "{} / {} / {} / {} s (n={})",
            s(self.p50),
            s(self.p90),
            s(self.p99),
            s(self.max),
            self.count
        )
    }
}

/// The figures of one load run.
#[derive(Debug, Clone, Default)]
pub struct LoadRow {
    pub plan: String,
    pub sent: u64,
    pub undelivered: u64,
    /// How far behind its schedule the sender fell at worst (its own slowness, not the product's).
    pub sender_behind_ms: i64,
    pub messages_in_stream: u64,
    pub chat_dropped: u64,
    pub repeats: u64,
    pub planned_bursts: usize,
    pub reference_detections: usize,
    pub detections: usize,
    pub moments_lost: usize,
    pub extra_detections: usize,
    pub create_calls: usize,
    pub clips_made: usize,
    pub clips_listed: usize,
    pub moments_listed: usize,
    pub duplicate_clips: usize,
    /// End of the peak second → highlight recorded.
    pub to_highlight: Spread,
    /// Highlight recorded → Create Clip call.
    pub to_create_call: Spread,
    /// End of the peak second → Create Clip call.
    pub end_to_end: Spread,
    /// Messages a second over the sending time (offered = handled when nothing was dropped).
    pub throughput: f64,
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
    pub peak_rss_mb: f64,
    /// `highlights dev`'s own summary line (its counters) against the durable counts.
    pub counters_match: bool,
    pub counters: String,
}

impl LoadRow {
    pub fn lossless(&self) -> bool {
        self.chat_dropped == 0
            && self.moments_lost == 0
            && self.extra_detections == 0
            && self.duplicate_clips == 0
    }

    pub fn table(&self) -> String {
        format!(
            "| plan | messages sent (not delivered) | sender behind schedule | in the stream (repeats) | chat dropped | \
             throughput | planned bursts | detections (reference) | moments lost | extra | Create Clip calls | clips made | \
             API lists clips + moments | duplicate clips | peak second → highlight p50/p90/p99/max | highlight → Create Clip | \
             peak second → Create Clip | CPU (of one core) | peak RSS | dev's counters |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n\
             | {} | {} ({}) | {:.1} s | {} ({}) | {} | {:.0} msg/s | {} | {} ({}) | {} | {} | {} | {} | {} + {} | {} | {} | {} | {} | \
             {:.0} s in {:.0} s ({:.0} %) | {:.0} MB | {} ({}) |",
            self.plan,
            self.sent,
            self.undelivered,
            self.sender_behind_ms as f64 / 1000.0,
            self.messages_in_stream,
            self.repeats,
            self.chat_dropped,
            self.throughput,
            self.planned_bursts,
            self.detections,
            self.reference_detections,
            self.moments_lost,
            self.extra_detections,
            self.create_calls,
            self.clips_made,
            self.clips_listed,
            self.moments_listed,
            self.duplicate_clips,
            self.to_highlight,
            self.to_create_call,
            self.end_to_end,
            self.cpu_seconds,
            self.wall_seconds,
            100.0 * self.cpu_seconds / self.wall_seconds.max(1.0),
            self.peak_rss_mb,
            if self.counters_match { "match" } else { "DIFFER" },
            self.counters,
        )
    }
}

/// `highlights dev` as a process, its output in a file.
struct Dev {
    child: Child,
    log: PathBuf,
    url: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quick detector flags of the fault rows (a 10-second baseline), so that a 1-minute run finds
/// moments too.
pub const DETECTOR_FLAGS: [&str; 10] =
    ["--baseline", "10", "--window", "1", "--warmup-fraction", "0.5", "--hold-cap", "3", "--cooldown", "5"];

pub async fn run(binaries: &Binaries, plan: &LoadPlan, dir: &Path) -> anyhow::Result<LoadRow> {
    let channels = plan.channels();
    let pairs: Vec<(&str, u64)> = channels.iter().map(|(l, id)| (l.as_str(), *id)).collect();
    let irc = FakeIrc::start(&pairs).await;
    let twitch = FakeTwitch::start().await;
    twitch.accept_token(ACCESS);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let data = dir.join("data");
    let token_file = dir.join("tokens.json");
    std::fs::write(
        &token_file,
        serde_json::json!({
            "access_token": ACCESS, "refresh_token": "load-refresh", "expires_at": i64::from(i32::MAX),
            "scopes": ["clips:edit"], "user_id": OUR_USER_ID,
        })
        .to_string(),
    )?;
    let mut dev = start_dev(binaries, &channels, &data, &token_file, &irc, &twitch, dir)?;
    let logins: Vec<&str> = channels.iter().map(|(l, _)| l.as_str()).collect();
    if !irc.wait_joined_anywhere(&logins, Duration::from_secs(120)).await {
        bail!("highlights dev never joined all {} channels (log: {})", logins.len(), dev.log.display());
    }
    eprintln!("load: {} channels joined; sending {} s of chat", channels.len(), plan.seconds);
    let started = Instant::now();
    let (sent, undelivered, sender_behind_ms) = send(&irc, plan, &channels).await;
    let sending_s = started.elapsed().as_secs_f64();
    eprintln!("load: sent {sent} messages in {sending_s:.0} s; waiting for dev to finish the work");

    let store = Embedded::open(&data)?;
    settle(&store, &dev).await?;
    let listed = listed_kinds(&dev.url).await?;
    let (cpu_seconds, peak_rss_mb) =
        (process_cpu_seconds(dev.child.id()), process_peak_rss_mb(dev.child.id()));
    let wall_seconds = started.elapsed().as_secs_f64();
    // Ctrl-C: dev stops and prints its counters.
    Command::new("kill").args(["-INT", &dev.child.id().to_string()]).status()?;
    let status = dev.child.wait()?;
    if !status.success() {
        bail!("highlights dev exited with {status} (log: {})", dev.log.display());
    }

    let mut row = LoadRow {
        plan: format!(
            "{} channels at {} msg/s + {} at {} msg/s, {} s",
            plan.busy, plan.busy_rate, plan.quiet, plan.quiet_rate, plan.seconds
        ),
        sent,
        undelivered,
        sender_behind_ms,
        planned_bursts: plan.planned_bursts(),
        throughput: sent as f64 / sending_s,
        cpu_seconds,
        wall_seconds,
        peak_rss_mb,
        ..LoadRow::default()
    };
    let stream = dev_stream(&store)?;
    row.messages_in_stream = stream.messages;
    row.repeats = stream.messages - stream.ids.len() as u64;
    row.chat_dropped = sent.saturating_sub(stream.ids.len() as u64);
    let reference: BTreeSet<String> =
        reference_detections(&stream, &DETECTOR_FLAGS.map(String::from)).await?.iter().map(key).collect();
    let recorded = store.recorded_highlights()?;
    let found: BTreeSet<String> = recorded.iter().map(|h| key(&h.detection)).collect();
    row.reference_detections = reference.len();
    row.detections = recorded.len();
    row.moments_lost = reference.difference(&found).count();
    row.extra_detections = found.difference(&reference).count() + (recorded.len() - found.len());
    let calls = twitch.create_calls();
    row.create_calls = calls.len();
    row.clips_made = twitch.clips_made().len();
    (row.clips_listed, row.moments_listed) = listed;
    let clipped: usize = recorded.iter().filter(|h| h.status == "stored").count();
    row.duplicate_clips = row.clips_made.saturating_sub(clipped);
    latencies(&mut row, &recorded, &calls);
    let log = std::fs::read_to_string(&dev.log)?;
    let summary = log.lines().rev().find(|l| l.starts_with("dev: ") && l.contains("stored")).unwrap_or("");
    row.counters = summary.trim_start_matches("dev: ").to_owned();
    let expected = format!(
        "{} messages, {} detections, {} clips and {} moments stored",
        row.messages_in_stream, row.detections, row.clips_listed, row.moments_listed
    );
    row.counters_match = row.counters == expected;
    if !row.counters_match {
        row.counters = format!("{}; durable: {expected}", row.counters);
    }
    drop(irc);
    Ok(row)
}

fn start_dev(
    binaries: &Binaries,
    channels: &[(String, u64)],
    data: &Path,
    token_file: &Path,
    irc: &FakeIrc,
    twitch: &FakeTwitch,
    dir: &Path,
) -> anyhow::Result<Dev> {
    let log = dir.join("dev.log");
    let mut command = Command::new(&binaries.highlights);
    command
        .args(["dev", "--listen", "127.0.0.1:0", "--join-limit", "2000", "--web-dir"])
        .arg(&binaries.web)
        .arg("--data-dir")
        .arg(data)
        .arg("--twitch-tokens")
        .arg(token_file)
        .args(DETECTOR_FLAGS);
    for (login, _) in channels {
        command.args(["--channel", login]);
    }
    command
        .env("TWITCH_IRC_ADDR", irc.url())
        .env("TWITCH_CLIENT_ID", "load-client")
        .env("TWITCH_CLIENT_SECRET", "load-secret")
        .env("TWITCH_HELIX_URL", twitch.helix_url())
        .env("TWITCH_OAUTH2_URL", twitch.oauth_url())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let child = command.spawn().with_context(|| format!("cannot start {}", binaries.highlights.display()))?;
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(url) = text.lines().find_map(|l| l.strip_prefix("serving ")?.split_whitespace().next()) {
            return Ok(Dev { child, log, url: url.to_owned() });
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("highlights dev did not start: {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends the plan live, one wall second at a time. Returns (delivered, not delivered, how far
/// behind its schedule the sender fell at worst in ms).
async fn send(irc: &FakeIrc, plan: &LoadPlan, channels: &[(String, u64)]) -> (u64, u64, i64) {
    let (mut delivered, mut undelivered, mut behind) = (0u64, 0u64, 0i64);
    let begin = tokio::time::Instant::now() + Duration::from_millis(1000 - (now_ms() % 1000) as u64);
    for second in 0..plan.seconds {
        let due = begin + Duration::from_secs(u64::from(second));
        tokio::time::sleep_until(due).await;
        behind = behind.max(tokio::time::Instant::now().duration_since(due).as_millis() as i64);
        for (index, (login, room)) in channels.iter().enumerate() {
            let sent_at = now_ms();
            for (n, (user_id, text)) in plan.second(index, second).into_iter().enumerate() {
                let id = format!("{second:08x}-{:04x}-4000-8000-{n:012x}", index);
                let name = format!("viewer{user_id}");
                let line = FakeIrc::chat_line(login, *room, (&name, user_id), sent_at, &id, text);
                if irc.send_raw(Some(login), &line) > 0 {
                    delivered += 1;
                } else {
                    undelivered += 1;
                }
            }
        }
        if second % 30 == 29 {
            eprintln!("load: {}/{} s sent, {delivered} messages", second + 1, plan.seconds);
        }
    }
    (delivered, undelivered, behind)
}

/// Waits until dev has appended all chat, detected it and clipped every highlight: the chat in
/// the stream stops growing (the stream itself never does: the ingester keeps sending watermarks),
/// the detector is past the last chat, and every highlight is final.
async fn settle(store: &Embedded, dev: &Dev) -> anyhow::Result<()> {
    let (mut read_to, mut last_chat_at, mut messages) = (0i64, 0i64, 0u64);
    let mut changed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        for record in store.read_stream(read_to, 10_000)? {
            read_to = record.sequence;
            let in_record = wire::decode(&record.data).map_or(0, |b| b.messages.len() as u64);
            if in_record > 0 {
                (messages, last_chat_at, changed) = (messages + in_record, record.sequence, Instant::now());
            }
        }
        let done = changed.elapsed() > Duration::from_secs(5)
            && store.position("detector")? >= last_chat_at
            && store.position("moments")? >= store.highlights_end()?
            && store.recorded_highlights()?.iter().all(|h| h.status == "stored" || h.status == "failed");
        if done {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "highlights dev did not finish the work in 15 minutes ({messages} messages in; log: {})",
                dev.log.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// (clips, moments) the API lists, following the cursor.
async fn listed_kinds(url: &str) -> anyhow::Result<(usize, usize)> {
    let (mut clips, mut moments) = (0, 0);
    let mut cursor: Option<String> = None;
    loop {
        let mut page_url = format!("{url}v1.0/clip?limit=100");
        if let Some(cursor) = &cursor {
            page_url.push_str(&format!("&cursor={cursor}"));
        }
        let page: serde_json::Value =
            highlights_adapters::tls::http_client().get(&page_url).send().await?.json().await?;
        for clip in page["clips"].as_array().context("no clips array")? {
            match clip["kind"].as_str() {
                Some("clip") => clips += 1,
                _ => moments += 1,
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok((clips, moments)),
        }
    }
}

/// dev's stream as the detector read it: one shard, in append order.
fn dev_stream(store: &Embedded) -> anyhow::Result<ChatStream> {
    let mut stream = ChatStream { stream_arn: DEV_STREAM_ARN.into(), ..ChatStream::default() };
    let mut after = 0;
    loop {
        let page = store.read_stream(after, 10_000)?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for record in page {
            stream.push(KinesisRecordIn {
                shard_id: "shardId-000000000000".into(),
                sequence_number: record.sequence.to_string(),
                partition_key: record.partition_key.to_string(),
                data: record.data,
                approximate_arrival_s: 0.0,
            });
        }
    }
    Ok(stream)
}

/// Latencies per highlight. Each channel's Create Clip calls are matched with its highlights in
/// order (one call each when nothing failed).
fn latencies(
    row: &mut LoadRow,
    recorded: &[highlights_embedded::state::RecordedHighlight],
    calls: &[highlights_test_support::CreateCall],
) {
    let mut calls_of: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for call in calls {
        calls_of.entry(call.broadcaster_id.as_str()).or_default().push(call.at_unix_ms as i64);
    }
    let (mut to_highlight, mut to_call, mut end_to_end) = (Vec::new(), Vec::new(), Vec::new());
    let mut per_channel: BTreeMap<String, usize> = BTreeMap::new();
    for highlight in recorded {
        let peak_end_ms = (highlight.detection.peak_second + 1) * 1000;
        let Some(recorded_ms) = highlight.recorded_at_ms else { continue };
        to_highlight.push(recorded_ms - peak_end_ms);
        let channel = highlight.detection.broadcaster_id.to_string();
        let nth = per_channel.entry(channel.clone()).or_default();
        if let Some(call_ms) = calls_of.get(channel.as_str()).and_then(|c| c.get(*nth)) {
            to_call.push(call_ms - recorded_ms);
            end_to_end.push(call_ms - peak_end_ms);
        }
        *nth += 1;
    }
    row.to_highlight = Spread::of(to_highlight);
    row.to_create_call = Spread::of(to_call);
    row.end_to_end = Spread::of(end_to_end);
}

/// User + system CPU time of a process so far (Linux `/proc`), in seconds.
fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

/// The process's peak resident memory (VmHWM), in MB.
fn process_peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_plan_is_the_issue_s_load_with_bursts_of_many_people() {
        let plan = LoadPlan::full();
        let channels = plan.channels();
        assert_eq!(channels.len(), 510);
        let per_second: usize = (0..channels.len()).map(|c| plan.second(c, 5).len()).sum();
        assert_eq!(per_second, 10 * 1000 + 500 * 2);
        // Busy: 20 + 45k for channel 0 (6 bursts in 280 s); quiet: every tenth channel once.
        assert_eq!(plan.planned_bursts(), 10 * 6 + 50);
        let burst = plan.second(0, 20);
        let people: BTreeSet<u64> = burst.iter().map(|m| m.0).collect();
        assert_eq!((burst.len(), people.len()), (2500, 2500));
        assert!((280..300).all(|s| (0..channels.len()).all(|c| !plan.in_burst(c, s))), "calm tail");
        let calm: BTreeSet<u64> = plan.second(1, 7).iter().map(|m| m.0).collect();
        assert!(calm.len() < 1000 && calm.len() > 700, "calm chat repeats regulars: {}", calm.len());
    }
}
