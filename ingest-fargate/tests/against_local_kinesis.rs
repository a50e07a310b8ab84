//! The `ingest-fargate` binary against the fake IRC server and the local stack's Kinesis: chat
//! arrives in `chat-messages` in order, and SIGTERM flushes everything received before it and
//! exits 0.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use highlights_adapters::aws;
use highlights_adapters::stack_env::StackEnv;
use highlights_core::wire;
use highlights_test_support::irc::FakeIrc;

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
    let health_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ingest-fargate"));
    for (key, value) in &stack.vars {
        command.env(key, value);
    }
    let mut child = command
        .env("CHAT_STREAM_NAME", &stream)
        .env("TWITCH_IRC_ADDR", irc.url())
        .env("INGEST_CHANNELS", "Alpha")
        // Nothing is sent before SIGTERM: the drain alone must deliver the chat.
        .env("INGEST_FLUSH_MS", "600000")
        .env("INGEST_HEALTH_ADDR", format!("127.0.0.1:{health_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(irc.wait_joined(&["alpha"], WAIT).await, "the ingester never joined #alpha");
    for n in 0..100 {
        let line =
            FakeIrc::chat_line("alpha", 11, ("viewer", 7), 1_733_000_000_000 + n, "", &format!("hello {n}"));
        irc.send_raw(Some("alpha"), &line);
    }
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{health_port}");
    poll("100 messages received", async || {
        let status = http.get(format!("{base}/status")).send().await.ok()?.text().await.ok()?;
        status.contains("messages_received: 100,").then_some(())
    })
    .await;
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let exit = poll("the ingester to exit", async || child.try_wait().unwrap()).await;
    assert_eq!(exit.code(), Some(0));

    let shard =
        kinesis.list_shards().stream_name(&stream).send().await.unwrap().shards()[0].shard_id().to_owned();
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_name(&stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .map(str::to_owned);
    let mut texts = Vec::new();
    while let Some(current) = iterator.take() {
        let page = kinesis.get_records().shard_iterator(current).send().await.unwrap();
        for record in page.records() {
            assert_eq!(record.partition_key(), Some("11"));
            let batch = wire::decode(record.data().as_ref()).unwrap();
            texts.extend(batch.messages.into_iter().map(|m| m.text));
        }
        if !page.records().is_empty() {
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    assert_eq!(texts, (0..100).map(|n| format!("hello {n}")).collect::<Vec<_>>());
    kinesis.delete_stream().stream_name(&stream).send().await.unwrap();
}
