//! The local pipeline end to end, through the real binaries against the local stack:
//! `highlights local replay` -> Kinesis -> `highlights local run` (the detector and lifecycle
//! handlers) -> DynamoDB highlights / Postgres streamers, compared with `highlights backtest`;
//! and from Twitch chat (a fake IRC server, the ingester) to a clip that `highlights serve` lists.
//!
//! Each test provisions its own suffixed resources and its own database, so they run in
//! parallel on one stack. Start the stack with `localstack/up` (`scripts/test` does).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use highlights_adapters::aws;
use highlights_adapters::detector_state::{DynamoStateStore, StateStore, StoredState};
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::kinesis_out::{OutRecord, put_all};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::{StackEnv, url_as_user};
use highlights_core::{LifecycleEvent, StreamOffline, StreamOnline};

mod common;

const DEADLINE: Duration = Duration::from_secs(60);

/// One isolated environment on the shared stack.
struct Isolated {
    vars: Vec<(String, String)>,
    resources: Resources,
    stack: StackEnv,
    dir: PathBuf,
}

impl Drop for Isolated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn isolated(name: &str) -> Isolated {
    isolated_shaped(name, |resources| resources)
}

/// [`isolated`] with its resources reshaped first (the starter profile's one stream).
fn isolated_shaped(name: &str, shape: impl FnOnce(Resources) -> Resources) -> Isolated {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let suffix = format!("{name}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let resources = shape(Resources::defaults().with_suffix(&suffix));
    let mut vars: Vec<(String, String)> = stack.vars.clone().into_iter().collect();
    vars.extend(resources.env_pairs());
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap().to_owned();
    let database = format!("pipeline_{}", suffix.replace('-', "_"));
    let url = format!("{server}/{database}");
    // Each component as its own login user, as in `.local/stack/env`: the pipeline works with
    // only the rights each one is granted.
    for user in &resources.database_users {
        vars.push((user.url_env.clone(), url_as_user(&url, &user.user).unwrap()));
    }
    vars.push(("DATABASE_URL".into(), url));
    let dir = std::env::temp_dir().join(format!("highlights-pipeline-{suffix}"));
    std::fs::create_dir_all(&dir).unwrap();
    let env = Isolated { vars, resources, stack, dir };
    ok(&env.highlights(&["migrate", "--create-database"]));
    ok(&env.highlights(&["local", "provision"]));
    env
}

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Isolated {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_highlights"));
        command.args(args).envs(self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
    }

    fn highlights(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn runner(&self, extra: &[&str]) -> Child {
        let checkpoints = self.dir.join("checkpoints.json");
        let mut args = vec!["local", "run", "--poll-ms", "5", "--checkpoints", checkpoints.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.command(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        aws::local(&self.stack.aws().unwrap()).await
    }

    async fn highlights_of(&self, broadcasters: &[u64]) -> BTreeSet<String> {
        let table = DynamoHighlights::new(
            aws_sdk_dynamodb::Client::new(&self.sdk().await),
            &self.resources.highlights_table.name,
        );
        let mut all = BTreeSet::new();
        for &id in broadcasters {
            for d in table.list(id).await.unwrap() {
                all.insert(format!(
                    "{} {} {} {} {}",
                    d.broadcaster_id, d.peak_second, d.fired_second, d.intensity, d.message_count
                ));
            }
        }
        all
    }

    async fn database(&self) -> tokio_postgres::Client {
        let url = &self.vars.iter().rev().find(|(k, _)| k == "DATABASE_URL").unwrap().1;
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

/// An isolated environment whose Twitch is a fake that accepts the provisioned user token.
async fn isolated_with_fake_twitch(name: &str) -> (highlights_test_support::FakeTwitch, Isolated) {
    let fake = highlights_test_support::FakeTwitch::start().await;
    fake.accept_token("local-access");
    let mut env = isolated(name);
    env.vars.push(("TWITCH_HELIX_URL".into(), fake.helix_url()));
    env.vars.push(("TWITCH_OAUTH2_URL".into(), fake.oauth_url()));
    let (app, token) = (env.path("app.json"), env.path("token.json"));
    std::fs::write(&app, r#"{"client_id":"local-client","client_secret":"local-secret"}"#).unwrap();
    std::fs::write(&token, r#"{"access_token":"local-access","refresh_token":"local-refresh"}"#).unwrap();
    ok(&env.highlights(&["local", "provision", "--twitch-app-file", &app, "--user-token-file", &token]));
    (fake, env)
}

/// Backtest detections as the same strings `highlights_of` produces.
fn backtest(env: &Isolated, chat: &str) -> BTreeSet<String> {
    ok(&env.highlights(&["backtest", chat, "--summary", "none"]))
        .lines()
        .map(|line| {
            let d: serde_json::Value = serde_json::from_str(line).unwrap();
            format!(
                "{} {} {} {} {}",
                d["broadcaster_id"].as_str().unwrap(),
                d["peak_at"],
                d["fired_at"],
                d["intensity"],
                d["message_count"]
            )
        })
        .collect()
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`wait_until`] for work whose amount is large (thousands of runner invocations): on a
/// loaded machine it may take longer than [`DEADLINE`] while going well. It fails only when the
/// runner's checkpoints stop moving for [`DEADLINE`] (stalled, not slow), or after ten deadlines.
async fn wait_for_runner<F, Fut>(env: &Isolated, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let checkpoints = env.dir.join("checkpoints.json");
    let started = Instant::now();
    let (mut last_seen, mut moved_at) = (None, Instant::now());
    while !check().await {
        let now = std::fs::read_to_string(&checkpoints).ok();
        if now != last_seen {
            (last_seen, moved_at) = (now, Instant::now());
        }
        assert!(moved_at.elapsed() < DEADLINE, "the runner stalled while waiting for {what}");
        assert!(started.elapsed() < DEADLINE * 10, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn stop(mut child: Child) {
    // SIGTERM: the runner finishes the batches in flight and exits 0.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "runner exited with {status}");
}

const CHANNELS: [u64; 4] = [100_000, 100_001, 100_002, 100_003];

fn synth(env: &Isolated) -> String {
    let chat = env.path("chat.jsonl");
    ok(&env.highlights(&[
        "synth",
        "--channels",
        "4",
        "--duration",
        "1500",
        "--bursts-per-hour",
        "6",
        "--seed",
        "11",
        "--out",
        &chat,
    ]));
    chat
}

#[tokio::test]
async fn replayed_chat_becomes_the_highlights_backtest_reports() {
    let env = isolated("match");
    let chat = synth(&env);
    let expected = backtest(&env, &chat);
    assert!(expected.len() >= 4, "{expected:?}");
    ok(&env.highlights(&["local", "replay", &chat]));
    // A poison record in the middle of the stream is skipped, not retried forever.
    let client = aws_sdk_kinesis::Client::new(&env.sdk().await);
    put_all(
        &client,
        &env.resources.chat_stream.name,
        &[OutRecord { partition_key: "100000".into(), data: vec![7, 7, 7] }],
        3,
    )
    .await
    .unwrap();
    let runner = env.runner(&[]);
    wait_for_runner(&env, "the highlights", || async {
        env.highlights_of(&CHANNELS).await.len() >= expected.len()
    })
    .await;
    stop(runner);
    assert_eq!(env.highlights_of(&CHANNELS).await, expected);
}

/// The starter profile's shape: lifecycle events on the chat stream, read there by both the
/// detector and the lifecycle handler. The detector finds what the backtest finds, and the
/// lifecycle handler applies the events, each ignoring the other's records.
#[tokio::test]
async fn on_one_stream_chat_and_lifecycle_events_each_reach_their_handler() {
    let env = isolated_shaped("onestream", |mut resources| {
        resources.lifecycle_stream.name = resources.chat_stream.name.clone();
        resources
    });
    let chat = synth(&env);
    let expected = backtest(&env, &chat);
    ok(&env.highlights(&["local", "replay", &chat]));
    // A channel the chat does not have (a reset of a replayed one would change its detections).
    let online = LifecycleEvent::Online(StreamOnline {
        broadcaster_id: 77,
        broadcaster_login: "seventyseven".into(),
        broadcaster_name: "SeventySeven".into(),
        stream_id: "s1".into(),
        title: "one stream".into(),
        game_id: "509658".into(),
        game_name: "Just Chatting".into(),
        started_at_ms: 1_000_000,
        viewer_count: 5,
        observed_at_ms: 1_001_000,
    });
    let record = OutRecord { partition_key: "77".into(), data: serde_json::to_vec(&online).unwrap() };
    let kinesis = aws_sdk_kinesis::Client::new(&env.sdk().await);
    put_all(&kinesis, &env.resources.chat_stream.name, &[record], 3).await.unwrap();
    let runner = env.runner(&[]);
    let db = env.database().await;
    wait_for_runner(&env, "the highlights and the stream online", || async {
        env.highlights_of(&CHANNELS).await.len() >= expected.len()
            && db
                .query_opt("SELECT 1 FROM streamers WHERE broadcaster_id = '77' AND is_live", &[])
                .await
                .unwrap()
                .is_some()
    })
    .await;
    stop(runner);
    assert_eq!(env.highlights_of(&CHANNELS).await, expected);
    env.assert_nothing_dead_lettered(&[&env.resources.detector_dlq.name, &env.resources.lifecycle_dlq.name])
        .await;
}

#[tokio::test]
async fn a_runner_killed_mid_stream_resumes_without_loss_or_duplicates() {
    let env = isolated("kill");
    let chat = synth(&env);
    let expected = backtest(&env, &chat);
    ok(&env.highlights(&["local", "replay", &chat]));
    // Small batches: many invocations, so the kill lands in the middle of the stream.
    let mut first = env.runner(&["--batch-size", "5"]);
    wait_for_runner(&env, "the first highlight", || async { !env.highlights_of(&CHANNELS).await.is_empty() })
        .await;
    first.kill().unwrap(); // SIGKILL: no chance to finish the batch in flight
    first.wait().unwrap();
    let at_kill = env.highlights_of(&CHANNELS).await.len();
    let second = env.runner(&["--batch-size", "5"]);
    wait_for_runner(&env, "the remaining highlights", || async {
        env.highlights_of(&CHANNELS).await.len() >= expected.len()
    })
    .await;
    stop(second);
    assert_eq!(env.highlights_of(&CHANNELS).await, expected, "killed after {at_kill} highlights");
}

/// Chaos: the runner's path to the AWS endpoint is cut (a blackhole: requests hang, as in a
/// partition), then refused (resets), then healed, in the middle of the stream. Every highlight
/// arrives once and nothing is dead-lettered.
#[tokio::test]
async fn the_aws_endpoint_cut_off_then_back_loses_and_doubles_nothing() {
    use highlights_test_support::fault_proxy::{Fault, FaultProxy};
    let env = isolated("cut");
    let chat = synth(&env);
    let expected = backtest(&env, &chat);
    ok(&env.highlights(&["local", "replay", &chat]));
    let endpoint = env.stack.aws().unwrap().endpoint_url;
    let emulator: std::net::SocketAddr =
        endpoint.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
    let proxy = FaultProxy::start(emulator).await.unwrap();
    let through_proxy = format!("http://{}", proxy.address());
    let runner = env
        .command(&[
            "local",
            "run",
            "--poll-ms",
            "5",
            "--batch-size",
            "5",
            "--checkpoints",
            &env.path("checkpoints.json"),
        ])
        .env("AWS_ENDPOINT_URL", &through_proxy)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_runner(&env, "the first highlight", || async { !env.highlights_of(&CHANNELS).await.is_empty() })
        .await;
    proxy.set(Fault::Blackhole);
    let swallowed = || proxy.counters().bytes_swallowed.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("requests lost in the blackhole", || async { swallowed() > 0 }).await;
    let before = swallowed();
    wait_until("more requests lost in the blackhole", || async { swallowed() > before }).await;
    proxy.set(Fault::Reset);
    let resets = || proxy.counters().resets.load(std::sync::atomic::Ordering::Relaxed);
    wait_until("connections refused", || async { resets() > 2 }).await;
    proxy.set(Fault::Pass);
    wait_for_runner(&env, "every highlight after the cut", || async {
        env.highlights_of(&CHANNELS).await.len() >= expected.len()
    })
    .await;
    stop(runner);
    assert_eq!(env.highlights_of(&CHANNELS).await, expected);
    env.assert_nothing_dead_lettered(&[&env.resources.detector_dlq.name, &env.resources.clipper_dlq.name])
        .await;
}

impl Isolated {
    async fn assert_nothing_dead_lettered(&self, queues: &[&str]) {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk().await);
        for queue in queues {
            let url = sqs.get_queue_url().queue_name(*queue).send().await.unwrap();
            let attributes = sqs
                .get_queue_attributes()
                .queue_url(url.queue_url().unwrap())
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .unwrap();
            let waiting = attributes
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages))
                .cloned();
            assert_eq!(waiting.as_deref(), Some("0"), "nothing dead-lettered in {queue}");
        }
    }
}

#[tokio::test]
async fn lifecycle_events_update_streamers_and_reset_the_detector() {
    let env = isolated("lifecycle");
    let sdk = env.sdk().await;
    let states =
        DynamoStateStore::new(aws_sdk_dynamodb::Client::new(&sdk), &env.resources.detector_state_table.name);
    let seeded = StoredState {
        broadcaster_id: 77,
        version: 1,
        detector: Some(vec![1, 2, 3]),
        last_sequence: Some("5".into()),
        ..StoredState::default()
    };
    states.save(&seeded, 0).await.unwrap();
    let online = |stream: &str, at: i64| {
        LifecycleEvent::Online(StreamOnline {
            broadcaster_id: 77,
            broadcaster_login: "seventyseven".into(),
            broadcaster_name: "SeventySeven".into(),
            stream_id: stream.into(),
            title: format!("stream {stream}"),
            game_id: "509658".into(),
            game_name: "Just Chatting".into(),
            started_at_ms: at - 1_000,
            viewer_count: 5,
            observed_at_ms: at,
        })
    };
    let offline = |at: i64| {
        LifecycleEvent::Offline(StreamOffline {
            broadcaster_id: 77,
            broadcaster_login: "seventyseven".into(),
            observed_at_ms: at,
        })
    };
    // online s1, offline, a redelivered online s1 (stale), online s2, and an older offline.
    let events = [
        online("s1", 1_000_000),
        offline(2_000_000),
        online("s1", 1_000_000),
        online("s2", 3_000_000),
        offline(2_500_000),
    ];
    let records: Vec<OutRecord> = events
        .iter()
        .map(|e| OutRecord { partition_key: "77".into(), data: serde_json::to_vec(e).unwrap() })
        .collect();
    put_all(&aws_sdk_kinesis::Client::new(&sdk), &env.resources.lifecycle_stream.name, &records, 3)
        .await
        .unwrap();
    let runner = env.runner(&[]);
    let db = env.database().await;
    wait_until("stream s2 online", || async {
        db.query_opt("SELECT 1 FROM streamers WHERE broadcaster_id = '77' AND stream_id = 's2'", &[])
            .await
            .unwrap()
            .is_some()
    })
    .await;
    // The last event (an older offline) must not have turned the channel offline; wait until the
    // runner has consumed everything before looking.
    let checkpoints = env.dir.join("checkpoints.json");
    wait_until("all lifecycle records", || async {
        std::fs::read_to_string(&checkpoints).is_ok_and(|t| t.contains(&env.resources.lifecycle_stream.name))
            && db.query_one("SELECT 1", &[]).await.is_ok()
    })
    .await;
    stop(runner);
    let row = db
        .query_one("SELECT login, display_name, is_live, stream_id, title, game_name FROM streamers WHERE broadcaster_id = '77'", &[])
        .await
        .unwrap();
    let (login, name, live, stream, title, game): (
        String,
        Option<String>,
        bool,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    assert_eq!(
        (login.as_str(), name.as_deref(), live, stream.as_deref(), title.as_deref(), game.as_deref()),
        ("seventyseven", Some("SeventySeven"), true, Some("s2"), Some("stream s2"), Some("Just Chatting"))
    );
    let state = states.load_many(&[77]).await.unwrap().remove(&77).unwrap();
    assert_eq!(state.detector, None, "a new stream resets the detector");
    assert_eq!(state.last_sequence.as_deref(), Some("5"), "the reset keeps the replay guard");
    assert_eq!(state.version, 3, "two new streams, two resets");
}

/// Resting chat for 330 s, a 6-second burst, calm again, ending a few seconds ago: the whole path from chat to a
/// clip row, with a fake Twitch answering Create Clip and Get Clips, and the confirmed clip
/// announced by the announcer's handler on the highlights table's modifications.
#[tokio::test]
async fn a_live_burst_becomes_a_clip_in_postgres() {
    let (fake, env) = isolated_with_fake_twitch("clip").await;
    let webhook = highlights_test_support::webhook::FakeWebhook::start(&[]).await;

    let now_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let lines: String = resting_chat_with_a_burst(now_s - 365)
        .iter()
        .map(|sent_at| {
            format!("{{\"broadcaster_id\":\"424242\",\"sent_at\":{sent_at},\"text\":\"PogChamp\"}}\n")
        })
        .collect();
    let chat = env.path("live.jsonl");
    std::fs::write(&chat, lines).unwrap();
    let expected = backtest(&env, &chat);
    assert_eq!(expected.len(), 1, "{expected:?}");

    ok(&env.highlights(&["local", "replay", &chat]));
    let runner = env.runner(&[
        "--announce-url",
        webhook.url(),
        "--announce-format",
        "json",
        "--announce-signing-key",
        "k",
    ]);
    let db = env.database().await;
    wait_until("a clip row", || async {
        db.query_opt("SELECT 1 FROM clips WHERE broadcaster_id = '424242' AND confirmed", &[])
            .await
            .unwrap()
            .is_some()
    })
    .await;
    assert!(webhook.wait_for(DEADLINE, |seen| !seen.is_empty()).await, "the clip was never announced");
    stop(runner);
    let seen = webhook.seen();
    assert_eq!(seen.len(), 1, "one announcement for one clip: {seen:?}");
    let (headers, body) = &seen[0];
    assert_eq!(body["idempotency_key"], "clip-FakeClip1", "{body}");
    assert_eq!(body["clip"]["clip_id"], "FakeClip1", "{body}");
    assert!(headers.get("x-highlights-signature").is_some());
    let calls = fake.create_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].broadcaster_id, "424242");
    let row = db
        .query_one("SELECT clip_id, embed_url FROM clips WHERE broadcaster_id = '424242'", &[])
        .await
        .unwrap();
    let (clip_id, embed): (String, String) = (row.get(0), row.get(1));
    assert_eq!(clip_id, "FakeClip1");
    assert!(embed.contains("clip=FakeClip1"), "{embed}");
}

/// Resting chat for 330 s, a 6-second burst, calm again for 24 s: the `sent_at` (ms) of each
/// message, starting at `start_s`.
fn resting_chat_with_a_burst(start_s: i64) -> Vec<i64> {
    let mut sent_at = Vec::new();
    for second in 0..360i64 {
        let count = if (330..336).contains(&second) { 60 } else { [1, 2, 0, 3][(second % 4) as usize] };
        for i in 0..count {
            sent_at.push((start_s + second) * 1000 + i * 1000 / count.max(1));
        }
    }
    sent_at
}

/// The whole product, Twitch to screen: chat from a fake Twitch IRC server, the ingester (its
/// library with the real Kinesis sink) into the local Kinesis, `highlights local run` detecting
/// and clipping against a fake Helix, the clip in Postgres, and `highlights serve` listing it.
#[tokio::test]
async fn twitch_chat_becomes_a_clip_the_api_lists() {
    use highlights_test_support::irc::FakeIrc;
    use ingest_fargate::irc_client::{CONFIRM_JOINS_WITHIN, ChatClient, IrcLogin, JoinLimit};
    use ingest_fargate::metrics::Counters;
    use ingest_fargate::producer::{KinesisSink, ProducerSettings};

    let (fake, env) = isolated_with_fake_twitch("twitch").await;

    let irc = FakeIrc::start(&[("burstychannel", 434343)]).await;
    let kinesis = aws_sdk_kinesis::Client::new(&env.sdk().await);
    let sink = Arc::new(KinesisSink { client: kinesis, stream: env.resources.chat_stream.name.clone() });
    let counters = Arc::new(Counters::default());
    let chat_client = ChatClient {
        address: irc.url().parse().unwrap(),
        login: IrcLogin::Anonymous,
        join_limit: JoinLimit::default(),
        confirm_joins_within: CONFIRM_JOINS_WITHIN,
        counters: counters.clone(),
    };
    let (_channels, channels) = tokio::sync::watch::channel(BTreeSet::from(["burstychannel".to_owned()]));
    let (stop_ingester, shutdown) = tokio::sync::watch::channel(false);
    let ingester =
        tokio::spawn(ingest_fargate::run(chat_client, channels, sink, ProducerSettings::default(), shutdown));
    assert!(irc.wait_joined(&["burstychannel"], DEADLINE).await, "the ingester never joined");
    // Chat stamped now, as Twitch stamps it (backdated chat would race the ingester's
    // wall-clock watermarks), with a detector quick enough for seconds of it.
    let runner = env.runner(&common::QUICK_DETECTOR);
    let (_, sent) = common::send_live_chat_with_a_burst(&irc, "burstychannel", 434343).await;
    let db = env.database().await;
    wait_until("a confirmed clip row", || async {
        db.query_opt("SELECT 1 FROM clips WHERE broadcaster_id = '434343' AND confirmed", &[])
            .await
            .unwrap()
            .is_some()
    })
    .await;
    stop(runner);
    stop_ingester.send(true).unwrap();
    assert_eq!(ingester.await.unwrap().unsent_messages, 0);
    assert_eq!(counters.totals().messages_received, sent);
    let calls = fake.create_calls();
    assert_eq!(calls.len(), 1, "one burst, one Create Clip: {calls:?}");
    assert_eq!(calls[0].broadcaster_id, "434343");

    let database_url = env.vars.iter().rev().find(|(k, _)| k == "DATABASE_URL").unwrap().1.clone();
    let server = common::serve(&database_url, &common::repository().join("web"));
    let page = common::get_json(&format!("{}v1.0/clip?broadcaster_id=434343", server.url)).await;
    let clips = page["clips"].as_array().unwrap();
    assert_eq!(clips.len(), 1, "{page}");
    assert_eq!(clips[0]["clip_id"], "FakeClip1");
    assert!(clips[0]["embed_url"].as_str().unwrap().contains("clip=FakeClip1"), "{page}");
    assert!(clips[0]["intensity"].as_f64().unwrap() >= 4.0, "{page}");
    // What chat said travels with the highlight to the clip: its title and its card.
    let said = &clips[0]["phrases"][0];
    assert_eq!(said["phrase"], "KEKW", "{page}");
    let title = format!("KEKW ×{}", said["count"]);
    assert_eq!(calls[0].title.as_deref(), Some(title.as_str()), "Create Clip was asked for it");
    assert_eq!(clips[0]["title"], title, "and Twitch's clip carries it: {page}");
}

// Multi-threaded: the fake Twitch answers while the test waits for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_settings_are_set_by_login_in_the_deployments_table() {
    let (fake, env) = isolated_with_fake_twitch("channel").await;
    fake.add_user("SomeStreamer", 4242);
    let set =
        env.highlights(&["channel", "set", "SomeStreamer", "--cloud", "--k", "4.5", "--min-chatters", "8"]);
    assert_eq!(ok(&set), "somestreamer (4242): k 4.5, min chatters 8\n");
    assert!(fake.app_tokens_issued() >= 1, "the login was looked up with the app's token");
    let unknown = env.highlights(&["channel", "set", "nobody_here", "--cloud", "--k", "4"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("Twitch has no channel \"nobody_here\""));
    // The detector reads what the command wrote, from the table the deployment names.
    let table = highlights_adapters::channel_settings::DynamoChannelSettings::new(
        aws_sdk_dynamodb::Client::new(&env.sdk().await),
        &env.resources.channel_settings_table.name,
    );
    use highlights_adapters::channel_settings::ChannelSettingsStore as _;
    let read = table.load_many(&[4242, 1]).await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!((read[&4242].k, read[&4242].min_chatters), (Some(4.5), Some(8)));
    // A later change merges by the stored login, with no lookup.
    let issued = fake.app_tokens_issued();
    ok(&env.highlights(&["channel", "set", "somestreamer", "--cloud", "--cooldown", "120"]));
    assert_eq!(fake.app_tokens_issued(), issued);
    assert_eq!(
        ok(&env.highlights(&["channel", "show", "--cloud"])),
        "somestreamer (4242): k 4.5, cooldown 120 s, min chatters 8\n"
    );
    let cleared = env.highlights(&["channel", "clear", "somestreamer", "--cloud"]);
    assert!(String::from_utf8_lossy(&cleared.stderr).contains("runs on the deployment's settings again"));
    assert!(table.list().await.unwrap().is_empty());
}
