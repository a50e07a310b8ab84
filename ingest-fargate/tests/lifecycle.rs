//! Live/offline polling against the fake Helix (Get Streams, client-credentials tokens) and the
//! fake IRC server: changes become `stream-lifecycle` events (in-memory Kinesis port) and JOIN /
//! PART on the chat connection.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use highlights_adapters::twitch::{AppCredentials, Secret};
use highlights_adapters::twitch_streams::{HelixStreams, StreamsApi};
use highlights_core::model::LifecycleEvent;
use highlights_test_support::FakeStream;
use highlights_test_support::FakeTwitch;
use highlights_test_support::irc::FakeIrc;
use ingest_fargate::irc_client::{CONFIRM_JOINS_WITHIN, ChatClient, IrcLogin, JoinLimit};
use ingest_fargate::lifecycle::{LiveState, NoChannelSource, Poller, PollerSettings};
use ingest_fargate::metrics::Counters;
use ingest_fargate::producer::ProducerSettings;
use tokio::sync::watch;

mod common;
use common::MemorySink;

const WAIT: Duration = Duration::from_secs(20);

fn helix(twitch: &FakeTwitch) -> HelixStreams {
    let app = AppCredentials { client_id: "fake-client".into(), client_secret: Secret::new("fake-secret") };
    HelixStreams::new(highlights_adapters::tls::http_client(), &twitch.helix_url(), &twitch.oauth_url(), app)
}

fn events(sink: &MemorySink) -> Vec<(String, String)> {
    sink.stored
        .lock()
        .unwrap()
        .iter()
        .map(|record| {
            let event: LifecycleEvent = serde_json::from_slice(&record.data).unwrap();
            let kind = match &event {
                LifecycleEvent::Online(online) => format!("online {}", online.stream_id),
                LifecycleEvent::Offline(_) => "offline".to_owned(),
            };
            assert_eq!(record.partition_key, event.broadcaster_id().to_string());
            (kind, record.partition_key.clone())
        })
        .collect()
}

#[tokio::test]
async fn get_streams_batches_by_100_with_one_app_token() {
    let twitch = FakeTwitch::start().await;
    let logins: Vec<String> = (0..250).map(|n| format!("channel{n}")).collect();
    let busy = FakeStream { started_at_s: 1_733_097_600, ..FakeStream::new("channel240", 240, "s240", 99) };
    twitch.set_live(&[FakeStream::new("channel3", 3, "s3", 10), busy]);
    let api = helix(&twitch);
    let live = api.live(&logins).await.unwrap();
    let mut ids: Vec<u64> = live.iter().map(|s| s.broadcaster_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [3, 240]);
    let calls = twitch.streams_calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|q| q.iter().filter(|(k, _)| k == "user_login").count() <= 100));
    assert_eq!(twitch.app_tokens_issued(), 1);
    assert_eq!(live.iter().find(|s| s.broadcaster_id == 240).unwrap().started_at_ms, 1_733_097_600_000);
}

#[tokio::test]
async fn a_revoked_app_token_is_replaced_once() {
    let twitch = FakeTwitch::start().await;
    twitch.set_live(&[FakeStream::new("alpha", 11, "a1", 10)]);
    let api = helix(&twitch);
    let logins = ["alpha".to_owned()];
    assert_eq!(api.live(&logins).await.unwrap().len(), 1);
    twitch.revoke_tokens();
    assert_eq!(api.live(&logins).await.unwrap().len(), 1, "renewed after the 401");
    assert_eq!(twitch.app_tokens_issued(), 2);
    assert_eq!(twitch.streams_calls().len(), 3);
}

#[tokio::test]
async fn the_top_streams_follow_the_cursor_and_a_429_is_waited_out() {
    let twitch = FakeTwitch::start().await;
    let streams: Vec<FakeStream> =
        (0..150).map(|n| FakeStream::new(&format!("c{n}"), n, &format!("s{n}"), 1000 - n)).collect();
    twitch.set_live(&streams);
    twitch.rate_limit_streams_once(0);
    let top = helix(&twitch).top(120).await.unwrap();
    assert_eq!(top.len(), 120);
    assert_eq!((top[0].login.as_str(), top[119].login.as_str()), ("c0", "c119"));
    // 429, then the first page again, then the page after the cursor.
    assert_eq!(twitch.streams_calls().len(), 3);
}

#[tokio::test]
async fn live_and_offline_changes_become_events_and_join_or_part_chat() {
    let twitch = FakeTwitch::start().await;
    let irc = FakeIrc::start(&[("alpha", 11), ("beta", 22)]).await;
    twitch.set_live(&[FakeStream::new("alpha", 11, "a1", 50)]);
    let counters = Arc::new(Counters::default());
    let lifecycle_sink = Arc::new(MemorySink::default());
    let poller = Poller {
        api: helix(&twitch),
        channels: NoChannelSource,
        sink: lifecycle_sink.clone(),
        settings: PollerSettings {
            configured: BTreeSet::from(["alpha".to_owned(), "beta".to_owned()]),
            top_n: 0,
            every: Duration::from_secs(3600),
        },
        counters: counters.clone(),
    };
    let (join_tx, join_rx) = watch::channel(BTreeSet::new());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let chat = ChatClient {
        address: irc.url().parse().unwrap(),
        login: IrcLogin::Anonymous,
        join_limit: JoinLimit::default(),
        confirm_joins_within: CONFIRM_JOINS_WITHIN,
        counters: counters.clone(),
    };
    let chat_sink = Arc::new(MemorySink::default());
    let ingester = tokio::spawn(ingest_fargate::run(
        chat,
        join_rx,
        chat_sink.clone(),
        ProducerSettings { flush_every: Duration::from_millis(20), ..ProducerSettings::default() },
        shutdown_rx,
    ));

    // Round by round, as the poller's loop would call it.
    let (mut state, mut monitored, mut unsent) = (LiveState::default(), BTreeSet::new(), Vec::new());
    poller.poll_once(&mut state, &mut monitored, &mut unsent).await;
    join_tx.send(state.live_logins()).unwrap();
    assert!(irc.wait_joined(&["alpha"], WAIT).await, "alpha is live: joined");
    let records_of = |id: u64| chat_sink.batches().iter().filter(|b| b.broadcaster_id == id).count();
    let deadline = tokio::time::Instant::now() + WAIT;
    while records_of(11) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no watermark for joined alpha");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(events(&lifecycle_sink), [("online a1".to_owned(), "11".to_owned())]);

    twitch.set_live(&[FakeStream::new("beta", 22, "b1", 70)]);
    poller.poll_once(&mut state, &mut monitored, &mut unsent).await;
    join_tx.send(state.live_logins()).unwrap();
    assert!(irc.wait_joined(&["beta"], WAIT).await, "alpha went offline: parted; beta joined");
    assert_eq!(
        events(&lifecycle_sink)[1..],
        [("online b1".to_owned(), "22".to_owned()), ("offline".to_owned(), "11".to_owned())]
    );
    assert_eq!(irc.commands(), ["JOIN #alpha", "PART #alpha", "JOIN #beta"]);
    // Parted: alpha's watermark records stop while beta's go on. (Alpha's PART event is queued
    // before beta's JOIN event: once beta has a record, the producer knows alpha left.)
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut alpha_then = None;
    while records_of(22) < 4 {
        assert!(tokio::time::Instant::now() < deadline, "beta's watermarks never came");
        if alpha_then.is_none() && records_of(22) >= 1 {
            alpha_then = Some(records_of(11));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let alpha_then = alpha_then.unwrap_or_else(|| records_of(11));
    assert_eq!(records_of(11), alpha_then, "watermarks for a parted channel");

    // Nothing changed: no event.
    poller.poll_once(&mut state, &mut monitored, &mut unsent).await;
    assert_eq!(events(&lifecycle_sink).len(), 3);
    // Helix fails: no channel is declared offline.
    twitch.fail_streams(Some(503));
    twitch.set_live(&[]);
    let produced = poller.poll_once(&mut state, &mut monitored, &mut unsent).await;
    assert!(produced.is_empty());
    assert_eq!(state.live_logins(), BTreeSet::from(["beta".to_owned()]));

    shutdown_tx.send(true).unwrap();
    ingester.await.unwrap();
}

#[tokio::test]
async fn monitored_channels_come_from_postgres() {
    let stack =
        highlights_adapters::stack_env::StackEnv::discover(std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap_or_else(|e| panic!("{e}"));
    let (server, _) = stack.database_url().unwrap().rsplit_once('/').unwrap();
    let database = highlights_adapters::postgres::Database::from_url(&format!(
        "{server}/ingest_monitored_{}",
        std::process::id()
    ))
    .unwrap();
    database.create_if_missing().await.unwrap();
    database.migrate().await.unwrap();
    database
        .connect()
        .await
        .unwrap()
        .batch_execute(
            "TRUNCATE streamers; INSERT INTO streamers (broadcaster_id, login, monitored) VALUES \
             ('33', 'Gamma', TRUE), ('44', 'delta', FALSE)",
        )
        .await
        .unwrap();
    let twitch = FakeTwitch::start().await;
    twitch.set_live(&[FakeStream::new("gamma", 33, "g1", 5), FakeStream::new("delta", 44, "d1", 5)]);
    let sink = Arc::new(MemorySink::default());
    let poller = Poller {
        api: helix(&twitch),
        channels: highlights_adapters::streamers::PgStreamers::new(database.pool(1).unwrap()),
        sink: sink.clone(),
        settings: PollerSettings { configured: BTreeSet::new(), top_n: 0, every: Duration::from_secs(3600) },
        counters: Arc::new(Counters::default()),
    };
    let (mut state, mut monitored, mut unsent) = (LiveState::default(), BTreeSet::new(), Vec::new());
    poller.poll_once(&mut state, &mut monitored, &mut unsent).await;
    assert_eq!(events(&sink), [("online g1".to_owned(), "33".to_owned())]);
    let asked: Vec<String> = twitch.streams_calls()[0]
        .iter()
        .filter(|(key, _)| key == "user_login")
        .map(|(_, login)| login.clone())
        .collect();
    assert_eq!(asked, ["gamma"]);
}
