//! The scenarios: a fault, when and how it is injected, and the run that measures its row.
//!
//! Every scenario sends the same chat plan through a fresh [`World`], injects its fault while
//! chat flows, lets the pipeline settle, and counts: messages sent (the fake IRC server's log),
//! what reached Kinesis, what the detector counted (its metrics), detections against the
//! fault-free reference, Create Clip calls and clips made (the fake Helix's log), clip rows, and
//! from those the moments lost and the duplicate clips. Nothing is assumed zero.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use highlights_test_support::CreateAnswer;
use highlights_test_support::fault_proxy::Fault as ProxyFault;

use crate::chat::{ChatPlan, SendLog, send_second};
use crate::observe::{self, ClipRow, key};
use crate::world::{Binaries, World, poll};

/// When faults start: after every channel's first burst has begun.
const FAULT_AT: u32 = 15;

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Nothing broken: the baseline every other row compares with.
    None,
    /// Every component's path to the AWS endpoint blackholed for this long, then reset for
    /// 2 s, then healed.
    AwsCut { seconds: u32 },
    /// PostgreSQL stopped (immediate shutdown) for this long under the clipper, the lifecycle
    /// consumer (a channel goes live meanwhile), the ingester's channel reads and the API.
    PostgresStopped { seconds: u32 },
    /// Twitch misbehaving: 5xx bursts, a 429 with `Ratelimit-Reset`, clips made but the answer
    /// cut, lost or a 500, a revoked token (401, then refresh), Get Clips slow to list and to
    /// publish, and Helix answering 1.5 s late for a stretch.
    Twitch,
    /// The runner (detector, lifecycle, clipper) SIGKILLed this many times at seeded random
    /// seconds, restarted at once each time.
    RunnerKilled { times: u32, seed: u64 },
    /// The ingester SIGKILLed and restarted; later the IRC connection cut by the server; later
    /// Twitch's RECONNECT.
    IngesterKilled,
    /// The ingester replaced as an ECS deploy does (`maxHealthyPercent` 200): a new one starts,
    /// and the old one is stopped (SIGTERM, drained) this many seconds later; both read the same
    /// chat meanwhile.
    IngesterReplaced { overlap: u32 },
    /// The AWS emulator killed (its state is gone) and a new, empty one started, between two
    /// rounds of bursts; `highlights local provision` runs this many seconds later.
    EmulatorRestarted { provision_after: u32 },
}

/// When the emulator is restarted: between every channel's first and second burst, so no
/// moment is in flight (a moment whose highlight item dies with the emulator is lost, and
/// counted so).
const RESTART_AT: u32 = 27;

/// What a scenario saw while its fault lasted.
#[derive(Default)]
struct DuringFault {
    before_restart: Option<BeforeRestart>,
    /// The API's status code for a clip list while PostgreSQL was down (`None`: no answer),
    /// asked aside so the chat goes on meanwhile.
    api_while_database_down: Option<tokio::task::JoinHandle<Option<u16>>>,
    /// The ingester being replaced, until it is stopped.
    replaced_ingester: Option<crate::world::Process>,
}

/// What the old emulator held, read just before it was killed.
struct BeforeRestart {
    stream: observe::ChatStream,
    detections: Vec<(highlights_core::Detection, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub fault: Fault,
    /// Seconds of chat.
    pub seconds: u32,
    pub channels: usize,
    /// The detector's state carried in a tumbling window of this many seconds
    /// (`local run --detector-state-window`), written to the table once per window.
    pub state_window: Option<u32>,
}

impl Scenario {
    /// How the fault is injected, for the table.
    pub fn how(&self) -> String {
        match &self.fault {
            Fault::None => "nothing broken".into(),
            Fault::AwsCut { seconds } => {
                format!("fault proxy: blackhole {seconds} s, then resets 2 s, then healed (ingester + runner)")
            }
            Fault::PostgresStopped { seconds } => {
                format!("pg_ctl stop -m immediate for {seconds} s; a channel goes live meanwhile")
            }
            Fault::Twitch => "fake Helix: 500, 503, 429 (reset 2 s), clip made then reset / 500 / hang, \
                              token revoked (401), Get Clips lists after 2 lookups and publishes after 3 polls, \
                              1.5 s latency for 10 s"
                .into(),
            Fault::RunnerKilled { times, seed } => format!(
                "kill -9 the runner {times}x (seed {seed}), restarted{}",
                self.state_window.map_or(String::new(), |s| format!("; state in {s} s tumbling windows"))
            ),
            Fault::IngesterKilled => "kill -9 the ingester + restart; IRC connection cut; RECONNECT".into(),
            Fault::IngesterReplaced { overlap } => {
                format!("a second ingester started, the first stopped (SIGTERM) {overlap} s later, as a deploy")
            }
            Fault::EmulatorRestarted { provision_after } => format!(
                "kill -9 the AWS emulator, start an empty one; `highlights local provision` {provision_after} s later"
            ),
        }
    }
}

/// The scenarios of a full run (`short`: the CI variant, smaller and shorter).
pub fn all(short: bool) -> Vec<Scenario> {
    let (seconds, channels) = if short { (50, 3) } else { (90, 6) };
    let scale = |full: u32, small: u32| if short { small } else { full };
    vec![
        Scenario { name: "baseline", fault: Fault::None, seconds, channels, state_window: None },
        Scenario {
            name: "aws-cut",
            fault: Fault::AwsCut { seconds: scale(30, 12) },
            seconds,
            channels,
            state_window: None,
        },
        Scenario {
            name: "aws-cut-windowed",
            fault: Fault::AwsCut { seconds: scale(30, 12) },
            seconds,
            channels,
            state_window: Some(2),
        },
        Scenario {
            name: "postgres-stopped",
            fault: Fault::PostgresStopped { seconds: scale(60, 15) },
            seconds: seconds.max(FAULT_AT + scale(60, 15) + 15),
            channels,
            state_window: None,
        },
        Scenario { name: "twitch-errors", fault: Fault::Twitch, seconds, channels, state_window: None },
        Scenario {
            name: "runner-killed",
            fault: Fault::RunnerKilled { times: scale(10, 4), seed: 7 },
            seconds,
            channels,
            state_window: None,
        },
        Scenario {
            name: "runner-killed-windowed",
            fault: Fault::RunnerKilled { times: scale(10, 4), seed: 11 },
            seconds,
            channels,
            state_window: Some(2),
        },
        Scenario {
            name: "ingester-killed",
            fault: Fault::IngesterKilled,
            seconds,
            channels,
            state_window: None,
        },
        Scenario {
            name: "ingester-replaced",
            fault: Fault::IngesterReplaced { overlap: scale(10, 5) },
            seconds,
            channels,
            state_window: None,
        },
        Scenario {
            name: "emulator-restarted",
            fault: Fault::EmulatorRestarted { provision_after: scale(20, 12) },
            seconds: seconds.max(RESTART_AT + scale(20, 12) + 25),
            channels,
            state_window: None,
        },
    ]
}

/// One scenario's figures.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub name: String,
    pub how: String,
    pub sent: u64,
    /// Chat Twitch could not deliver: nobody was connected (the ingester was restarting).
    pub undelivered: u64,
    /// Delivered to the ingester but never in Kinesis.
    pub chat_dropped: i64,
    /// What may be dropped: 0, or when the ingester is killed, the chat of the two seconds
    /// before (what it may still hold unsent: the batch being filled and the put in flight).
    pub chat_dropped_at_most: u64,
    pub metrics: Metrics,
    /// Chat two ingesters may both have received (the overlap of a replacement).
    pub received_twice_at_most: u64,
    pub runner_kills: u64,
    pub chat_shards: u64,
    pub channels: u64,
    /// Whether the components said what happened where a user must act (the emulator restart).
    pub said_clearly: bool,
    /// Channels live in the `streamers` table at the end, and how many should be.
    pub live_channels: (i64, i64),
    /// Messages in Kinesis more than once (a put retried after an answer was lost).
    pub kinesis_repeats: u64,
    /// `MessagesProcessed` summed over the detector's metrics lines.
    pub counted_by_detector: u64,
    /// `StateWrites` summed likewise: the detector's writes to its state table (once per
    /// invocation and channel, or once per window with the state in a tumbling window).
    pub detector_state_writes: u64,
    /// Chat messages in Kinesis, repeats included: what the detector's metrics should sum to.
    pub messages_in_kinesis: u64,
    /// How many metrics lines a SIGKILL may have taken with it, at most: the invocations in
    /// flight (one per chat shard) at each kill, each of at most [`RUNNER_BATCH`] records.
    pub metrics_lost_at_most: u64,
    pub reference_detections: usize,
    pub detections: usize,
    /// Detections the system made that the reference did not (or with other figures).
    pub unexpected_detections: usize,
    pub create_calls: usize,
    pub clips_made: usize,
    pub rows: usize,
    pub confirmed_rows: usize,
    pub api_listed: usize,
    pub moments_lost: usize,
    pub duplicate_clips: usize,
    /// From the fault's end to the first clip row written after it.
    pub recovery: Option<Duration>,
    /// Anything the row's figures do not say: settle timeouts, exit codes, lost moments' reasons.
    pub notes: Vec<String>,
}

/// Records per detector invocation (`highlights local run`'s default batch size).
const RUNNER_BATCH: u64 = 100;

/// The components' own metrics (their EMF lines summed over every process, killed ones too).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Ingester: `messages_received`, `messages_sent`.
    pub ingester_received: u64,
    pub ingester_sent: u64,
    /// Detector: `anomalies_detected`.
    pub detections: u64,
    /// Clipper: `clips_created` + `clips_reconciled` (clips it made, and clips of unknown
    /// outcome it found and adopted).
    pub clips: u64,
}

/// Highlights per clipper invocation (the clipper mapping's batch size).
const CLIPPER_BATCH: u64 = 10;

impl Row {
    /// Each component's metrics against the durable counts. Exact, except that a SIGKILL takes
    /// the metrics not yet printed with it, so the sums may fall short by at most:
    /// - the ingester: the chat of the last seconds before the kill (its metrics go out every
    ///   second), the same bound as the chat it may drop;
    /// - the detector: the messages, and the detections, of the invocation in flight (one per
    ///   chat shard) at each kill (records it applied are skipped on restart, the others are
    ///   counted when redone);
    /// - the clipper: the highlights of the invocation in flight at each kill.
    pub fn metrics_within_bound(&self) -> bool {
        let kills = self.runner_kills;
        let within = |counted: u64, durable: u64, lost_at_most: u64| {
            counted <= durable && counted + lost_at_most >= durable
        };
        let delivered = self.sent;
        let in_kinesis = self.sent.saturating_sub(self.chat_dropped.max(0) as u64);
        // While two ingesters overlap (a deploy), both receive and send the same chat: their
        // counts exceed the chat by at most the chat of the overlap.
        let twice = self.received_twice_at_most;
        let ingester = if twice > 0 {
            (delivered..=delivered + twice).contains(&self.metrics.ingester_received)
                && self.metrics.ingester_sent == self.messages_in_kinesis
        } else {
            within(self.metrics.ingester_received, delivered, self.chat_dropped_at_most)
                && within(self.metrics.ingester_sent, in_kinesis, self.chat_dropped_at_most)
        };
        within(self.counted_by_detector, self.messages_in_kinesis, self.metrics_lost_at_most)
            && ingester
            && within(
                self.metrics.detections,
                self.detections as u64,
                kills * self.chat_shards * self.channels,
            )
            && within(self.metrics.clips, self.clips_made as u64, kills * CLIPPER_BATCH)
    }

    /// The figures every scenario must meet.
    pub fn lossless(&self) -> bool {
        self.moments_lost == 0
            && self.duplicate_clips == 0
            && self.chat_dropped >= 0
            && self.chat_dropped as u64 <= self.chat_dropped_at_most
            && self.live_channels.0 == self.live_channels.1
            && self.said_clearly
            && self.unexpected_detections == 0
            && self.api_listed == self.rows
            && self.reference_detections > 0
    }
}

/// Clip rows seen over time, polled from the database by the harness.
type RowTimeline = Arc<Mutex<Vec<(Instant, usize)>>>;

pub async fn run(binaries: &Binaries, scenario: &Scenario, run_id: u32) -> anyhow::Result<Row> {
    let plan = ChatPlan::new(scenario.channels, scenario.seconds);
    let mut world = World::build(binaries, scenario.name, plan.clone()).await?;
    if let Some(seconds) = scenario.state_window {
        world.runner_flags = vec!["--detector-state-window".into(), seconds.to_string()];
    }
    let outcome = run_in(&mut world, scenario, run_id).await;
    let dir = world.dir.clone();
    drop(world);
    if outcome.as_ref().is_ok_and(|row| row.lossless() && row.metrics_within_bound()) {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("chaos: {}: logs kept in {}", scenario.name, dir.display());
    }
    outcome
}

async fn run_in(world: &mut World, scenario: &Scenario, run_id: u32) -> anyhow::Result<Row> {
    let mut row =
        Row { name: scenario.name.into(), how: scenario.how(), said_clearly: true, ..Row::default() };
    if scenario.fault == Fault::Twitch {
        world.twitch.script(&[
            CreateAnswer::Status(500),
            CreateAnswer::Status(503),
            CreateAnswer::Accept,
            CreateAnswer::RateLimited { reset_in_s: 2 },
            CreateAnswer::Accept,
            CreateAnswer::AcceptThenReset,
            CreateAnswer::AcceptThen500,
            CreateAnswer::AcceptThenHang,
        ]);
        world.twitch.list_after_lookups(2);
        world.twitch.publish_after_polls(3);
    }
    world.start_product().await?;
    let timeline: RowTimeline = Arc::default();
    let watcher = tokio::spawn(watch_rows(world.postgres.url("highlights"), timeline.clone()));

    let kill_seconds = match scenario.fault {
        Fault::RunnerKilled { times, seed } => {
            seeded_seconds(times, seed, FAULT_AT - 5, scenario.seconds - 3)
        }
        _ => BTreeSet::new(),
    };
    let mut log = SendLog::default();
    let begin = tokio::time::Instant::now();
    let mut fault_end = None;
    let mut during = DuringFault::default();
    for second in 0..scenario.seconds {
        tokio::time::sleep_until(begin + Duration::from_secs(u64::from(second))).await;
        if let Some(ended) = inject(world, scenario, second, &kill_seconds, &mut during).await? {
            fault_end = Some(ended);
        }
        send_second(&world.irc, &world.plan, second, run_id, &mut log);
    }
    row.sent = log.delivered;
    row.undelivered = log.undelivered;
    if let Fault::IngesterReplaced { overlap } = scenario.fault {
        let during_overlap = &log.per_second[FAULT_AT as usize..(FAULT_AT + overlap) as usize];
        row.received_twice_at_most = during_overlap.iter().sum();
    }
    if scenario.fault == Fault::IngesterKilled {
        let before_kill = &log.per_second[(FAULT_AT - 2) as usize..FAULT_AT as usize];
        row.chat_dropped_at_most = before_kill.iter().sum();
    }

    // On SIGTERM the ingester stops reading chat at once (what is still in the socket is lost, as
    // when ECS stops a task): first let it read what was sent, as its per-second metrics tell,
    // or until they stop moving (chat lost to a kill never arrives).
    let received = || observe::metric_sum(&world.ingester_outputs, "messages_received").0 as u64;
    let (mut last, mut moved_at) = (received(), Instant::now());
    while last < log.delivered && moved_at.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = received();
        if now != last {
            (last, moved_at) = (now, Instant::now());
        }
    }
    // The ingester drains what it holds and exits 0 when everything reached Kinesis.
    if let Some(ingester) = world.ingester.take()
        && !tokio::task::spawn_blocking(move || ingester.terminate()).await?
    {
        row.notes.push("the ingester exited non-zero (chat given up at the drain deadline)".into());
    }
    let stream = observe::read_chat_stream(world).await?;
    let mut reference = observe::reference_detections(&stream, &world.detector_flags).await?;
    // Chat and moments of a restarted emulator's old incarnation count too: read before the kill.
    let mut earlier = Vec::new();
    let (mut ids, mut messages) = (stream.ids.clone(), stream.messages);
    if let Some(probe) = during.api_while_database_down.take()
        && let answer = probe.await?
        && answer != Some(503)
    {
        row.said_clearly = false;
        row.notes.push(format!("with PostgreSQL down the API answered {answer:?}, not 503"));
    }
    if let Some(old) = &during.before_restart {
        let BeforeRestart { stream: old_stream, detections } = old;
        ids.extend(old_stream.ids.iter().cloned());
        messages += old_stream.messages;
        reference.extend(observe::reference_detections(old_stream, &world.detector_flags).await?);
        earlier.clone_from(detections);
    }
    row.chat_dropped = row.sent as i64 - ids.len() as i64;
    row.kinesis_repeats = messages - ids.len() as u64;
    row.messages_in_kinesis = messages;
    row.metrics_lost_at_most =
        kill_seconds.len() as u64 * stream.shards.len() as u64 * RUNNER_BATCH * stream.max_record_messages;
    row.reference_detections = reference.len();

    let settled = settle(world, &stream, &reference, &earlier).await;
    if let Err(error) = &settled {
        row.notes.push(format!("not settled: {error}"));
    }
    if let Some((_, url)) = &world.server {
        row.api_listed = api_count(url).await.unwrap_or_else(|e| {
            row.notes.push(format!("the API did not list clips: {e}"));
            0
        });
    }
    if let Some(runner) = world.runner.take()
        && !tokio::task::spawn_blocking(move || runner.terminate()).await?
    {
        row.notes.push("the runner exited non-zero on SIGTERM".into());
    }
    watcher.abort();

    let mut system = observe::system_detections(world).await?;
    system.extend(earlier);
    let db = world.database().await?;
    let rows = observe::clip_rows(&db).await?;
    let live = db.query_one("SELECT count(*) FROM streamers WHERE is_live", &[]).await?.get::<_, i64>(0);
    let late = matches!(scenario.fault, Fault::PostgresStopped { .. });
    row.live_channels = (live, scenario.channels as i64 + i64::from(late));
    if matches!(scenario.fault, Fault::EmulatorRestarted { .. }) {
        let said = std::fs::read_to_string(world.dir.join("runner-1.log")).unwrap_or_default();
        for (what, text) in [
            ("that the chat stream is gone", "the source cannot be found or reached"),
            ("that it reads the new stream from its start", "deleted and created anew"),
        ] {
            if !said.contains(text) {
                row.said_clearly = false;
                row.notes.push(format!("the runner never said {what}"));
            }
        }
    }
    if live != row.live_channels.1 {
        row.notes.push(format!("{live} channels live in Postgres, {} expected", row.live_channels.1));
    }
    count(&mut row, &reference, &system, &rows, world);
    let sum = |files: &[std::path::PathBuf], name: &str| observe::metric_sum(files, name).0 as u64;
    row.counted_by_detector = sum(&world.runner_outputs, "MessagesProcessed");
    row.detector_state_writes = sum(&world.runner_outputs, "StateWrites");
    row.metrics = Metrics {
        ingester_received: sum(&world.ingester_outputs, "messages_received"),
        ingester_sent: sum(&world.ingester_outputs, "messages_sent"),
        detections: sum(&world.runner_outputs, "anomalies_detected"),
        clips: sum(&world.runner_outputs, "clips_created") + sum(&world.runner_outputs, "clips_reconciled"),
    };
    row.runner_kills = kill_seconds.len() as u64;
    row.chat_shards = stream.shards.len() as u64;
    row.channels = scenario.channels as u64;
    if let Some(ended) = fault_end {
        let timeline = timeline.lock().expect("not poisoned");
        let before = timeline.iter().take_while(|(at, _)| *at <= ended).last().map_or(0, |(_, n)| *n);
        row.recovery = timeline.iter().find(|(at, n)| *at > ended && *n > before).map(|(at, _)| *at - ended);
    }
    Ok(row)
}

/// Injects the scenario's fault at `second`; returns when the fault ended, the second it does.
async fn inject(
    world: &mut World,
    scenario: &Scenario,
    second: u32,
    kill_seconds: &BTreeSet<u32>,
    during: &mut DuringFault,
) -> anyhow::Result<Option<Instant>> {
    let ended = Some(Instant::now());
    match scenario.fault {
        Fault::None => {}
        Fault::AwsCut { seconds } => {
            if second == FAULT_AT {
                world.aws_proxy.set(ProxyFault::Blackhole);
            } else if second == FAULT_AT + seconds {
                world.aws_proxy.set(ProxyFault::Reset);
            } else if second == FAULT_AT + seconds + 2 {
                world.aws_proxy.set(ProxyFault::Pass);
                return Ok(ended);
            }
        }
        Fault::PostgresStopped { seconds } => {
            if second == FAULT_AT {
                let postgres = &world.postgres;
                postgres.stop().map_err(|e| anyhow::anyhow!("cannot stop PostgreSQL: {e}"))?;
            } else if second == FAULT_AT + 2 {
                world.go_live_late_channel();
            } else if second == FAULT_AT + 3
                && let Some((_, url)) = &world.server
            {
                let (client, url) = (
                    highlights_adapters::tls::http_client_builder()
                        .timeout(Duration::from_secs(5))
                        .build()?,
                    url.clone(),
                );
                during.api_while_database_down = Some(tokio::spawn(async move {
                    let answer = client.get(format!("{url}v1.0/clip")).send().await;
                    answer.ok().map(|r| r.status().as_u16())
                }));
            } else if second == FAULT_AT + seconds {
                world.postgres.resume().map_err(|e| anyhow::anyhow!("cannot restart PostgreSQL: {e}"))?;
                return Ok(ended);
            }
        }
        Fault::Twitch => {
            if second == FAULT_AT {
                world.twitch.revoke_tokens();
            } else if second == FAULT_AT + 10 {
                world.helix_proxy.set(ProxyFault::Latency(Duration::from_millis(1500)));
            } else if second == FAULT_AT + 20 {
                world.helix_proxy.set(ProxyFault::Pass);
                return Ok(ended);
            }
        }
        Fault::RunnerKilled { .. } => {
            if kill_seconds.contains(&second) {
                if let Some(runner) = world.runner.take() {
                    runner.kill9();
                }
                world.start_runner()?;
                if kill_seconds.last() == Some(&second) {
                    return Ok(ended);
                }
            }
        }
        Fault::EmulatorRestarted { provision_after } => {
            if second == RESTART_AT {
                // Nothing more reaches the old emulator: puts and reads in flight fail and are
                // retried against the new one, so the snapshot is all it ever held.
                world.aws_proxy.set(ProxyFault::Blackhole);
                let stream = observe::read_chat_stream(world).await?;
                let detections = observe::system_detections(world).await?;
                during.before_restart = Some(BeforeRestart { stream, detections });
                world.restart_emulator().await?;
                // Connections to the dead emulator are cut, as its death would have cut them.
                world.aws_proxy.set(ProxyFault::Reset);
            } else if second == RESTART_AT + 1 {
                world.aws_proxy.set(ProxyFault::Pass);
            } else if second == RESTART_AT + provision_after {
                world.provision().await?;
                return Ok(ended);
            }
        }
        Fault::IngesterReplaced { overlap } => {
            if second == FAULT_AT {
                during.replaced_ingester = world.ingester.take();
                world.start_ingester()?;
            } else if second == FAULT_AT + overlap
                && let Some(old) = during.replaced_ingester.take()
            {
                if !tokio::task::spawn_blocking(move || old.terminate()).await? {
                    anyhow::bail!("the replaced ingester did not drain and exit 0");
                }
                return Ok(ended);
            }
        }
        Fault::IngesterKilled => {
            if second == FAULT_AT {
                if let Some(ingester) = world.ingester.take() {
                    ingester.kill9();
                }
                world.start_ingester()?;
            } else if second == FAULT_AT + 10 {
                world.irc.drop_connections();
            } else if second == FAULT_AT + 20 {
                world.irc.send_reconnect();
                return Ok(ended);
            }
        }
    }
    Ok(None)
}

/// `times` distinct seconds in `from..to`, the same for the same seed.
fn seeded_seconds(times: u32, seed: u64, from: u32, to: u32) -> BTreeSet<u32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut seconds = BTreeSet::new();
    while seconds.len() < times as usize && seconds.len() < (to - from) as usize {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        seconds.insert(from + ((state >> 33) % u64::from(to - from)) as u32);
    }
    seconds
}

async fn watch_rows(url: String, timeline: RowTimeline) {
    let mut db: Option<tokio_postgres::Client> = None;
    loop {
        if db.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            // The server may be down (the PostgreSQL scenario): connect again until it is back.
            db = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    Some(client)
                }
                Err(_) => None,
            };
        }
        if let Some(client) = &db
            && let Ok(row) = client.query_one("SELECT count(*) FROM clips", &[]).await
        {
            let n = row.get::<_, i64>(0) as usize;
            let mut timeline = timeline.lock().expect("not poisoned");
            if timeline.last().is_none_or(|(_, last)| *last != n) {
                timeline.push((Instant::now(), n));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the runner has read every record, every reference moment is detected, and every
/// detection has a clip row or a final failure.
async fn settle(
    world: &World,
    stream: &observe::ChatStream,
    reference: &[highlights_core::Detection],
    earlier: &[(highlights_core::Detection, Option<String>)],
) -> anyhow::Result<()> {
    let ends = stream.ends(&world.resources.chat_stream.name, &world.resources.detector_dlq.name);
    let checkpoints = world.dir.join("checkpoints.json");
    let expected: BTreeSet<String> = reference.iter().map(key).collect();
    let waiting_for = Mutex::new(String::new());
    let database = tokio::sync::Mutex::new(None::<tokio_postgres::Client>);
    let settled = poll(Duration::from_secs(180), "the pipeline to settle", || async {
        let why = |what: String| {
            *waiting_for.lock().expect("not poisoned") = what;
            false
        };
        let read: BTreeMap<String, String> = std::fs::read(&checkpoints)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let caught_up = ends.iter().all(|(shard, last)| {
            read.get(shard).is_some_and(|at| at.len() > last.len() || (at.len() == last.len() && at >= last))
        });
        if !caught_up {
            return why(format!("the runner to read to {ends:?} (checkpoints {read:?})"));
        }
        let mut system = match observe::system_detections(world).await {
            Ok(system) => system,
            Err(error) => return why(format!("the highlights table ({error:#})")),
        };
        system.extend_from_slice(earlier);
        let found: BTreeSet<String> = system.iter().map(|(d, _)| key(d)).collect();
        // One connection for the whole wait, opened again only once it broke.
        let mut db = database.lock().await;
        if db.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            *db = world.database().await.ok();
        }
        let rows = match db.as_ref() {
            Some(db) => observe::clip_rows(db).await,
            None => Err(anyhow::anyhow!("no connection")),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => return why(format!("the clips table ({error:#})")),
        };
        let clipped: BTreeSet<(u64, i64)> =
            rows.iter().map(|r| (r.broadcaster_id, r.detected_at_s)).collect();
        let missing: Vec<&String> = expected.difference(&found).collect();
        if !missing.is_empty() {
            return why(format!("detections {missing:?}"));
        }
        let unclipped: Vec<String> = system
            .iter()
            .filter(|(d, status)| {
                !clipped.contains(&(d.broadcaster_id, d.peak_second)) && status.as_deref() != Some("failed")
            })
            .map(|(d, status)| format!("{} at {} ({status:?})", d.broadcaster_id, d.peak_second))
            .collect();
        unclipped.is_empty() || why(format!("clip rows for {unclipped:?}"))
    })
    .await;
    settled
        .map_err(|e| anyhow::anyhow!("{e}: still waiting for {}", waiting_for.lock().expect("not poisoned")))
}

async fn api_count(url: &str) -> anyhow::Result<usize> {
    let page: serde_json::Value = highlights_adapters::tls::http_client()
        .get(format!("{url}v1.0/clip?limit=100"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(page["clips"].as_array().map_or(0, Vec::len))
}

fn count(
    row: &mut Row,
    reference: &[highlights_core::Detection],
    system: &[(highlights_core::Detection, Option<String>)],
    rows: &[ClipRow],
    world: &World,
) {
    let expected: BTreeSet<String> = reference.iter().map(key).collect();
    let found: BTreeSet<String> = system.iter().map(|(d, _)| key(d)).collect();
    row.detections = system.len();
    row.unexpected_detections = found.difference(&expected).count();
    let mut per_moment: BTreeMap<(u64, i64), usize> = BTreeMap::new();
    for clip in rows {
        *per_moment.entry((clip.broadcaster_id, clip.detected_at_s)).or_default() += 1;
    }
    let undetected = expected.difference(&found).count();
    let unclipped: Vec<String> = system
        .iter()
        .filter(|(d, _)| !per_moment.contains_key(&(d.broadcaster_id, d.peak_second)))
        .map(|(d, status)| {
            format!(
                "{} at {} ({})",
                d.broadcaster_id,
                d.peak_second,
                status.as_deref().unwrap_or("no status")
            )
        })
        .collect();
    row.moments_lost = undetected + unclipped.len();
    if !unclipped.is_empty() {
        row.notes.push(format!("moments without a clip row: {}", unclipped.join(", ")));
    }
    if undetected > 0 {
        row.notes.push(format!("{undetected} reference moments never detected"));
    }
    let made = world.twitch.clips_made();
    row.create_calls = world.twitch.create_calls().len();
    row.clips_made = made.len();
    row.rows = rows.len();
    row.confirmed_rows = rows.iter().filter(|r| r.confirmed).count();
    let stored: BTreeSet<&str> = rows.iter().map(|r| r.clip_id.as_str()).collect();
    // Per channel: clips made on Twitch and stored nowhere are the lost moments' clips, as many
    // as it lost moments; any beyond are duplicates, as are second rows of one moment.
    let mut orphans: BTreeMap<u64, usize> = BTreeMap::new();
    for (id, broadcaster) in &made {
        if !stored.contains(id.as_str()) {
            *orphans.entry(broadcaster.parse().unwrap_or_default()).or_default() += 1;
        }
    }
    let mut unclipped_per_channel: BTreeMap<u64, usize> = BTreeMap::new();
    for (d, _) in system.iter().filter(|(d, _)| !per_moment.contains_key(&(d.broadcaster_id, d.peak_second)))
    {
        *unclipped_per_channel.entry(d.broadcaster_id).or_default() += 1;
    }
    let extra_on_twitch: usize = orphans
        .iter()
        .map(|(channel, n)| n.saturating_sub(unclipped_per_channel.get(channel).copied().unwrap_or(0)))
        .sum();
    let doubled: usize = per_moment.values().map(|n| n - 1).sum();
    row.duplicate_clips = extra_on_twitch + doubled;
    let orphans: usize = orphans.values().sum();
    if orphans > 0 {
        row.notes.push(format!("{orphans} clips made on Twitch but stored nowhere"));
    }
}
