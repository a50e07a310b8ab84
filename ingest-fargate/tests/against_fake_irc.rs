//! The ingester (twitch-irc over our transport) against a fake Twitch IRC server on 127.0.0.1:0,
//! with an in-memory Kinesis port (partial failures and throttling injected there): order and
//! fields, malformed lines, RECONNECT and dropped connections, JOIN pacing, JOINs Twitch never
//! answers, and a full event queue. The real Kinesis path is covered by
//! `against_local_kinesis.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_test_support::irc::FakeIrc;
use ingest_fargate::irc_client::{CONFIRM_JOINS_WITHIN, ChatClient, ChatEvent, IrcLogin, JoinLimit};
use ingest_fargate::metrics::Counters;
use ingest_fargate::producer::ProducerSettings;
use tokio::sync::{mpsc, watch};

mod common;
use common::MemorySink;

const WAIT: Duration = Duration::from_secs(20);

/// Twitch's own limit (20 per 10 s) also spaces new connections 10 s apart, which the reconnect
/// test would spend waiting: the same share, ten times faster.
const JOIN_LIMIT: JoinLimit = JoinLimit { joins: 20, per: Duration::from_secs(1) };

struct Running {
    sink: Arc<MemorySink>,
    counters: Arc<Counters>,
    shutdown: watch::Sender<bool>,
    channels: watch::Sender<BTreeSet<String>>,
    task: tokio::task::JoinHandle<ingest_fargate::producer::DrainReport>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

async fn start(irc: &FakeIrc, channels: &[&str], sink: Arc<MemorySink>) -> Running {
    start_with(irc, channels, sink, JOIN_LIMIT, CONFIRM_JOINS_WITHIN).await
}

async fn start_with(
    irc: &FakeIrc,
    channels: &[&str],
    sink: Arc<MemorySink>,
    join_limit: JoinLimit,
    confirm_joins_within: Duration,
) -> Running {
    let turn = common::one_chat_client_at_a_time().await;
    let counters = Arc::new(Counters::default());
    let chat = ChatClient {
        address: irc.url().parse().unwrap(),
        login: IrcLogin::Anonymous,
        join_limit,
        confirm_joins_within,
        counters: counters.clone(),
    };
    let (channels_tx, channels_rx) = watch::channel(channels.iter().map(|c| (*c).to_owned()).collect());
    let (shutdown, shutdown_rx) = watch::channel(false);
    let settings = ProducerSettings { flush_every: Duration::from_millis(20), ..ProducerSettings::default() };
    let task = tokio::spawn(ingest_fargate::run(chat, channels_rx, sink.clone(), settings, shutdown_rx));
    Running { sink, counters, shutdown, channels: channels_tx, task, _turn: turn }
}

async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn chat(irc: &FakeIrc, channel: &str, room: u64, n: i64) {
    let line = FakeIrc::chat_line(
        channel,
        room,
        ("viewer", 5_000 + n as u64),
        1_733_000_000_000 + n,
        &format!("00000000-0000-4000-8000-{n:012}"),
        &format!("{channel} says {n}"),
    );
    irc.send_raw(Some(channel), &line);
}

#[tokio::test]
async fn chat_reaches_the_sink_in_order_with_every_field() {
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22)]).await;
    let running = start(&irc, &["alpha", "beta"], Arc::new(MemorySink::default())).await;
    assert!(irc.wait_joined(&["alpha", "beta"], WAIT).await);
    let handshake = irc.received();
    assert_eq!(handshake[0], "CAP REQ :twitch.tv/tags twitch.tv/commands");
    assert!(handshake[1].starts_with("NICK justinfan"), "{handshake:?}");
    for n in 0..200 {
        chat(&irc, "alpha", 11, n);
        chat(&irc, "beta", 22, n);
    }
    until("400 messages", || running.sink.texts(11).len() == 200 && running.sink.texts(22).len() == 200)
        .await;
    assert_eq!(running.sink.texts(11), (0..200).map(|n| format!("alpha says {n}")).collect::<Vec<_>>());
    let first = running
        .sink
        .batches()
        .into_iter()
        .find(|b| b.broadcaster_id == 22 && !b.messages.is_empty())
        .unwrap();
    let message = &first.messages[0];
    assert_eq!(
        (message.id.as_str(), message.user_id, message.login.as_str(), message.sent_at_ms),
        ("00000000-0000-4000-8000-000000000000", 5_000, "viewer", 1_733_000_000_000)
    );
    assert!(
        running
            .sink
            .stored
            .lock()
            .unwrap()
            .iter()
            .all(|r| r.partition_key == "11" || r.partition_key == "22")
    );
    // Silent joined channels still get watermark records.
    let watermarks = running.sink.batches().iter().filter(|b| b.messages.is_empty()).count();
    until("watermarks while silent", || {
        running.sink.batches().iter().filter(|b| b.messages.is_empty()).count() > watermarks + 1
    })
    .await;
    running.shutdown.send(true).unwrap();
    assert_eq!(running.task.await.unwrap().unsent_messages, 0);
}

#[tokio::test]
async fn malformed_lines_are_counted_and_skipped() {
    let irc = FakeIrc::start(&[("alpha", 11)]).await;
    let running = start(&irc, &["alpha"], Arc::new(MemorySink::default())).await;
    assert!(irc.wait_joined(&["alpha"], WAIT).await);
    chat(&irc, "alpha", 11, 1);
    irc.send_raw(Some("alpha"), "@room-id=11 :x!x@x PRIVMSG #alpha :no timestamp tag");
    irc.send_raw(Some("alpha"), "@room-id=abc;tmi-sent-ts=1 :x!x@x PRIVMSG #alpha :bad room");
    irc.send_raw(Some("alpha"), "@just-tags");
    chat(&irc, "alpha", 11, 2);
    until("the two good messages", || running.sink.texts(11).len() == 2).await;
    assert_eq!(running.counters.malformed.load(Ordering::Relaxed), 3);
    assert_eq!(running.sink.texts(11), ["alpha says 1", "alpha says 2"]);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn reconnect_and_dropped_connections_rejoin_and_lose_nothing_received() {
    let irc = FakeIrc::start(&[("alpha", 11)]).await;
    let running = start(&irc, &["alpha"], Arc::new(MemorySink::default())).await;
    assert!(irc.wait_joined(&["alpha"], WAIT).await);
    // 50 messages per connection; between them Twitch's RECONNECT, then a dropped connection.
    for (connection, interruption) in [(1, Some(true)), (2, Some(false)), (3, None)] {
        for n in (connection - 1) * 50..connection * 50 {
            chat(&irc, "alpha", 11, n as i64);
        }
        until("this connection's 50 messages", || running.sink.texts(11).len() == connection * 50).await;
        match interruption {
            Some(true) => irc.send_reconnect(),
            Some(false) => irc.drop_connections(),
            None => break,
        }
        until("a new connection", || irc.accepted() == connection + 1).await;
        assert!(irc.wait_joined(&["alpha"], WAIT).await);
    }
    assert_eq!(running.sink.texts(11), (0..150).map(|n| format!("alpha says {n}")).collect::<Vec<_>>());
    assert_eq!(running.counters.reconnects.load(Ordering::Relaxed), 2);
    assert!(running.counters.irc_connected.load(Ordering::Relaxed), "ready again after reconnecting");
    assert_eq!(irc.commands().iter().filter(|c| *c == "JOIN #alpha").count(), 3);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn partial_failures_and_throttling_are_retried_without_loss_or_duplicates() {
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22), ("gamma", 33)]).await;
    let sink = Arc::new(MemorySink::default());
    {
        let mut script = sink.script.lock().unwrap();
        script.push(Err(()));
        script.push(Ok(vec![Some("ProvisionedThroughputExceededException"), None, Some("InternalFailure")]));
        script.push(Ok(vec![None, Some("ProvisionedThroughputExceededException")]));
        script.push(Err(()));
    }
    let running = start(&irc, &["alpha", "beta", "gamma"], sink.clone()).await;
    assert!(irc.wait_joined(&["alpha", "beta", "gamma"], WAIT).await);
    for n in 0..100 {
        chat(&irc, "alpha", 11, n);
        chat(&irc, "beta", 22, n);
        chat(&irc, "gamma", 33, n);
    }
    until("every message", || [11, 22, 33].iter().all(|id| sink.texts(*id).len() >= 100)).await;
    for (id, name) in [(11, "alpha"), (22, "beta"), (33, "gamma")] {
        assert_eq!(
            sink.texts(id),
            (0..100).map(|n| format!("{name} says {n}")).collect::<Vec<_>>(),
            "{name}"
        );
    }
    assert!(running.counters.throttled.load(Ordering::Relaxed) >= 2);
    assert!(running.counters.put_failures.load(Ordering::Relaxed) >= 1);
    running.shutdown.send(true).unwrap();
    assert_eq!(running.task.await.unwrap().unsent_messages, 0);
}

#[tokio::test]
async fn joins_wait_for_the_join_limit() {
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22), ("gamma", 33)]).await;
    // Two JOINs per hour: the third channel has to wait.
    let limit = JoinLimit { joins: 2, per: Duration::from_secs(3600) };
    let sink = Arc::new(MemorySink::default());
    let running = start_with(&irc, &["alpha", "beta", "gamma"], sink, limit, CONFIRM_JOINS_WITHIN).await;
    assert!(irc.wait_joined(&["alpha", "beta"], WAIT).await);
    // A change the client acts on at once: PART alpha. gamma still waits for its slot.
    running.channels.send(["beta", "gamma"].iter().map(|c| (*c).to_owned()).collect()).unwrap();
    assert!(irc.wait_joined(&["beta"], WAIT).await);
    assert_eq!(irc.commands(), ["JOIN #alpha", "JOIN #beta", "PART #alpha"]);
    assert_eq!(running.counters.channels_joined.load(Ordering::Relaxed), 1);
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_full_event_queue_holds_the_socket_and_loses_nothing() {
    let irc = FakeIrc::start(&[("alpha", 11)]).await;
    let _turn = common::one_chat_client_at_a_time().await;
    let counters = Arc::new(Counters::default());
    let client = ChatClient {
        address: irc.url().parse().unwrap(),
        login: IrcLogin::Anonymous,
        join_limit: JOIN_LIMIT,
        confirm_joins_within: CONFIRM_JOINS_WITHIN,
        counters: counters.clone(),
    };
    // A queue of one: the transport may run ahead of its reader by that one event, no more.
    let (events_tx, mut events) = mpsc::channel(1);
    let (_channels, channels_rx) = watch::channel(BTreeSet::from(["alpha".to_owned()]));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(async move { client.run(channels_rx, events_tx, shutdown_rx).await });
    assert!(irc.wait_joined(&["alpha"], WAIT).await);
    for n in 0..2_000 {
        chat(&irc, "alpha", 11, n);
    }
    let mut texts = Vec::new();
    while texts.len() < 2_000 {
        let event = tokio::time::timeout(WAIT, events.recv()).await.expect("chat stopped").unwrap();
        if let ChatEvent::Chat(chat) = event {
            texts.push(chat.message.text);
        }
        let ahead = counters.messages_received.load(Ordering::Relaxed) - texts.len() as u64;
        assert!(ahead <= 1, "{ahead} messages read past a full queue");
    }
    assert_eq!(texts, (0..2_000).map(|n| format!("alpha says {n}")).collect::<Vec<_>>());
    shutdown.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn a_join_twitch_never_answers_is_sent_again() {
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22)]).await;
    // Twitch drops JOINs past its limit without a word; beta's first two go that way.
    irc.leave_joins_unanswered("beta", 2);
    let sink = Arc::new(MemorySink::default());
    let running = start_with(&irc, &["alpha", "beta"], sink, JOIN_LIMIT, Duration::from_millis(500)).await;
    // Between its retries beta shows up in the gauge operators watch.
    until("beta counted as unconfirmed", || {
        running.counters.channels_unconfirmed.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(irc.wait_joined(&["alpha", "beta"], WAIT).await, "beta was never joined");
    let joins = |channel: &str| irc.commands().iter().filter(|c| **c == format!("JOIN #{channel}")).count();
    assert_eq!((joins("alpha"), joins("beta")), (1, 3));
    until("no channel left unconfirmed", || {
        running.counters.channels_unconfirmed.load(Ordering::Relaxed) == 0
    })
    .await;
    chat(&irc, "beta", 22, 1);
    until("beta's chat", || running.sink.texts(22) == ["beta says 1"]).await;
    running.shutdown.send(true).unwrap();
    running.task.await.unwrap();
}
