//! The `ingest-fargate` binary against the fake IRC and Helix servers and the local stack's
//! Kinesis and Secrets Manager: chat arrives in `chat-messages` in order, SIGTERM flushes
//! everything received before it and exits 0, and live/offline changes become
//! `stream-lifecycle` events and JOIN/PART.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use highlights_adapters::aws;
use highlights_adapters::stack_env::StackEnv;
use highlights_core::model::LifecycleEvent;
use highlights_core::wire;
use highlights_test_support::irc::FakeIrc;
use highlights_test_support::{FakeStream, FakeTwitch};

const WAIT: Duration = Duration::from_secs(30);

async fn poll<T>(what: &str, mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sigterm_flushes_everything_received_into_kinesis_and_exits_0() {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let kinesis = aws_sdk_kinesis::Client::new(&aws::local(&stack.aws().unwrap()).await);
    let stream = format!("ingest-test-{}", std::process::id());
    kinesis.create_stream().stream_name(&stream).shard_count(1).send().await.unwrap();

    let irc = FakeIrc::start(&[("alpha", 11)]).await;
    let mut child = ingester(&stack, &irc, 0)
        .env("CHAT_STREAM_NAME", &stream)
        .env("INGEST_CHANNELS", "Alpha")
        // Nothing is sent before SIGTERM: the drain alone must deliver the chat.
        .env("INGEST_FLUSH_MS", "600000")
        .env("INGEST_METRICS_SECONDS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Port 0 (a port picked beforehand could be taken by then): the ingester logs which it got.
    let health_port = health_port_logged(child.stderr.take().unwrap());
    // EMF metrics come on stdout.
    let metrics = read_in_background(child.stdout.take().unwrap());
    assert!(irc.wait_joined(&["alpha"], WAIT).await, "the ingester never joined #alpha");
    for n in 0..100 {
        let line = FakeIrc::chat_line(
            "alpha",
            11,
            ("viewer", 7),
            1_733_000_000_000 + n,
            &format!("m{n}"),
            &format!("hello {n}"),
        );
        irc.send_raw(Some("alpha"), &line);
    }
    let http = highlights_adapters::tls::http_client();
    let base = format!("http://127.0.0.1:{health_port}");
    poll("100 messages received", async || {
        let status = http.get(format!("{base}/status")).send().await.ok()?.text().await.ok()?;
        status.contains("messages_received: 100,").then_some(())
    })
    .await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // The container health check the image runs: healthy now, unhealthy with nothing listening.
    let check = |port: u16| {
        Command::new(env!("CARGO_BIN_EXE_ingest-fargate"))
            .arg("--health-check")
            .env("INGEST_HEALTH_ADDR", format!("0.0.0.0:{port}"))
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(check(health_port), Some(0));
    assert_eq!(check(free_port()), Some(1));

    terminate(&child);
    let exit = poll("the ingester to exit", async || child.try_wait().unwrap()).await;
    assert_eq!(exit.code(), Some(0));

    let mut texts = Vec::new();
    for (key, data) in read_all(&kinesis, &stream).await {
        assert_eq!(key, "11");
        texts.extend(wire::decode(&data).unwrap().messages.into_iter().map(|m| m.text));
    }
    assert_eq!(texts, (0..100).map(|n| format!("hello {n}")).collect::<Vec<_>>());
    kinesis.delete_stream().stream_name(&stream).send().await.unwrap();

    // The EMF records add up to what happened, the drain after SIGTERM included.
    let records: Vec<serde_json::Value> =
        metrics.join().unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(!records.is_empty(), "no EMF records on stdout");
    for record in &records {
        let emf = &record["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(
            (emf["Namespace"].as_str(), record["Service"].as_str()),
            (Some("TwitchHighlights"), Some("ingest-fargate"))
        );
    }
    let total = |name: &str| records.iter().map(|r| r[name].as_f64().unwrap()).sum::<f64>();
    assert_eq!(
        (total("messages_received"), total("messages_sent"), total("malformed_lines")),
        (100.0, 100.0, 0.0)
    );
    assert!(total("records_put") >= 1.0);
}

/// Every record of a one-shard stream: (partition key, data).
async fn read_all(kinesis: &aws_sdk_kinesis::Client, stream: &str) -> Vec<(String, Vec<u8>)> {
    let shard =
        kinesis.list_shards().stream_name(stream).send().await.unwrap().shards()[0].shard_id().to_owned();
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .map(str::to_owned);
    let mut records = Vec::new();
    while let Some(current) = iterator.take() {
        let page = kinesis.get_records().shard_iterator(current).send().await.unwrap();
        for record in page.records() {
            records.push((
                record.partition_key().unwrap_or_default().to_owned(),
                record.data().as_ref().to_vec(),
            ));
        }
        if !page.records().is_empty() {
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    records
}

fn ingester(stack: &StackEnv, irc: &FakeIrc, health_port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ingest-fargate"));
    for (key, value) in &stack.vars {
        command.env(key, value);
    }
    command
        .env("TWITCH_IRC_ADDR", irc.url())
        .env("INGEST_HEALTH_ADDR", format!("127.0.0.1:{health_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Reads a child's output to the end on a thread, so a full pipe never blocks the child.
fn read_in_background(mut output: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        output.read_to_string(&mut text).unwrap();
        text
    })
}

/// The port of the ingester's health endpoint, from its JSON log line; the rest of its log is
/// read and dropped in the background, so a full pipe never blocks it.
fn health_port_logged(stderr: std::process::ChildStderr) -> u16 {
    use std::io::BufRead as _;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let port = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            let entry: serde_json::Value = serde_json::from_str(&line).ok()?;
            (entry["fields"]["message"] == "health endpoint listening")
                .then(|| entry["fields"]["address"].as_str()?.rsplit_once(':')?.1.parse().ok())?
        })
        .expect("the ingester logs its health endpoint");
    std::thread::spawn(move || lines.for_each(drop));
    port
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn terminate(child: &std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn live_and_offline_from_get_streams_become_lifecycle_records_and_join_part() {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let sdk = aws::local(&stack.aws().unwrap()).await;
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let lifecycle = format!("ingest-lifecycle-{}", std::process::id());
    kinesis.create_stream().stream_name(&lifecycle).shard_count(1).send().await.unwrap();
    let secret = format!("ingest-test-app-{}", std::process::id());
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&secret)
        .secret_string(r#"{"client_id":"fake-client","client_secret":"fake-secret"}"#)
        .send()
        .await
        .unwrap();

    let twitch = FakeTwitch::start().await;
    twitch.set_live(&[FakeStream::new("alpha", 11, "a1", 10)]);
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22)]).await;
    let mut child = ingester(&stack, &irc, 0)
        .env("LIFECYCLE_STREAM_NAME", &lifecycle)
        .env("TWITCH_APP_SECRET_ID", &secret)
        .env("TWITCH_HELIX_URL", twitch.helix_url())
        .env("TWITCH_OAUTH2_URL", twitch.oauth_url())
        .env("INGEST_CHANNELS", "alpha,beta")
        .env("INGEST_POLL_SECONDS", "1")
        .env_remove("DATABASE_URL")
        .spawn()
        .unwrap();
    assert!(irc.wait_joined(&["alpha"], WAIT).await, "live alpha was not joined");
    twitch.set_live(&[]);
    assert!(irc.wait_joined(&[], WAIT).await, "offline alpha was not parted");
    terminate(&child);
    let exit = poll("the ingester to exit", async || child.try_wait().unwrap()).await;
    assert_eq!(exit.code(), Some(0));

    let events: Vec<(String, LifecycleEvent)> = read_all(&kinesis, &lifecycle)
        .await
        .into_iter()
        .map(|(key, data)| (key, serde_json::from_slice(&data).unwrap()))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        matches!(&events[0], (key, LifecycleEvent::Online(online)) if key == "11" && online.stream_id == "a1")
    );
    assert!(
        matches!(&events[1], (key, LifecycleEvent::Offline(offline)) if key == "11" && offline.broadcaster_login == "alpha")
    );
    assert_eq!(irc.commands(), ["JOIN #alpha", "PART #alpha"]);
    assert_eq!(twitch.app_tokens_issued(), 1);
    kinesis.delete_stream().stream_name(&lifecycle).send().await.unwrap();
}

#[tokio::test]
async fn a_refused_chat_token_is_refreshed_written_back_and_never_logged() {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let secrets = aws_sdk_secretsmanager::Client::new(&aws::local(&stack.aws().unwrap()).await);
    let (app, token) = (
        format!("ingest-login-app-{}", std::process::id()),
        format!("ingest-login-token-{}", std::process::id()),
    );
    for (name, value) in [
        (&app, r#"{"client_id":"fake-client","client_secret":"fake-client-secret"}"#),
        (&token, r#"{"access_token":"stale-access-token","refresh_token":"first-refresh-token"}"#),
    ] {
        secrets.create_secret().name(name).secret_string(value).send().await.unwrap();
    }
    let twitch = FakeTwitch::start().await;
    twitch.allow_refresh("first-refresh-token", "fresh-access-token", "second-refresh-token");
    let irc = FakeIrc::start(&[("alpha", 11)]).await;
    irc.require_token("fresh-access-token");

    let mut child = ingester(&stack, &irc, 0)
        .env("INGEST_CHAT_LOGIN", "HighlightsBot")
        .env("INGEST_CHANNELS", "alpha")
        .env("TWITCH_APP_SECRET_ID", &app)
        .env("TWITCH_USER_TOKEN_SECRET_ID", &token)
        .env("TWITCH_OAUTH2_URL", twitch.oauth_url())
        // The app secret enables polling: point Helix at the fake, which reports alpha live.
        .env("TWITCH_HELIX_URL", twitch.helix_url())
        // The most verbose level: twitch-irc traces every line it sends, PASS included.
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = read_in_background(child.stderr.take().unwrap());
    twitch.set_live(&[FakeStream::new("alpha", 11, "a1", 10)]);
    if !irc.wait_joined(&["alpha"], WAIT).await {
        let _ = child.kill();
        panic!("never joined with the refreshed token; logs:\n{}", logs.join().unwrap());
    }
    let passes: Vec<String> = irc.received().into_iter().filter(|l| l.starts_with("PASS ")).collect();
    assert_eq!(passes, ["PASS oauth:stale-access-token", "PASS oauth:fresh-access-token"]);
    assert!(irc.received().contains(&"NICK highlightsbot".to_owned()));
    let stored = secrets.get_secret_value().secret_id(&token).send().await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(
        (stored["access_token"].as_str(), stored["refresh_token"].as_str()),
        (Some("fresh-access-token"), Some("second-refresh-token"))
    );

    terminate(&child);
    let exit = poll("the ingester to exit", async || child.try_wait().unwrap()).await;
    assert_eq!(exit.code(), Some(0));
    let logs = logs.join().unwrap();
    assert!(logs.contains("chat token refreshed"), "{logs}");
    for secret in [
        "stale-access-token",
        "fresh-access-token",
        "first-refresh-token",
        "second-refresh-token",
        "fake-client-secret",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
