//! The ingester's whole chat path over a real socket: a fake Twitch IRC server writes blocks of
//! 100,000 chat lines (the real chat logs in ../shared/data/chat, with Twitch's tags) into a TCP
//! connection on 127.0.0.1; the ingester (twitch-irc with our transport, the event queue, the
//! batcher, the producer) reads, parses, batches and encodes them and hands the records to a
//! sink that only counts. One iteration = one block, until the producer has handed every
//! message to the sink (flushing every 10 ms). The fake server and the ingester share the
//! machine's cores. Run: `scripts/bench ingest`.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use highlights_adapters::kinesis_out::OutRecord;
use highlights_test_support::irc::FakeIrc;
use ingest_fargate::irc_client::{CONFIRM_JOINS_WITHIN, ChatClient, IrcLogin, JoinLimit};
use ingest_fargate::metrics::Counters;
use ingest_fargate::producer::{EntryResults, ProducerSettings, RecordSink, SinkError};

mod chat_logs;

const BLOCK: usize = 100_000;

/// Kinesis that accepts everything at once.
struct CountingSink;

impl RecordSink for CountingSink {
    async fn put(&self, records: &[&OutRecord]) -> Result<EntryResults, SinkError> {
        Ok(vec![None; records.len()])
    }
}

struct Rig {
    runtime: tokio::runtime::Runtime,
    irc: FakeIrc,
    counters: Arc<Counters>,
    block: String,
}

fn chat_block() -> String {
    chat_logs::twitch_lines(BLOCK, "bench", 42).join("\r\n")
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        let counters = Arc::new(Counters::default());
        let irc = runtime.block_on(async {
            let irc = FakeIrc::start(&[("bench", 42)]).await;
            let client = ChatClient {
                address: irc.url().parse().unwrap(),
                login: IrcLogin::Anonymous,
                join_limit: JoinLimit::default(),
                confirm_joins_within: CONFIRM_JOINS_WITHIN,
                counters: counters.clone(),
            };
            let (channels, wanted) = tokio::sync::watch::channel(BTreeSet::from(["bench".to_owned()]));
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let settings =
                ProducerSettings { flush_every: Duration::from_millis(10), ..ProducerSettings::default() };
            tokio::spawn(async move {
                // Kept alive for the whole run.
                let _keep = (channels, stop);
                ingest_fargate::run(client, wanted, Arc::new(CountingSink), settings, shutdown).await
            });
            assert!(irc.wait_joined(&["bench"], Duration::from_secs(20)).await, "never joined");
            irc
        });
        Rig { runtime, irc, counters, block: chat_block() }
    })
}

fn main() {
    let rig = rig();
    eprintln!(
        "blocks of {BLOCK} lines, {:.0} bytes per line on the wire",
        (rig.block.len() + 2) as f64 / BLOCK as f64
    );
    divan::main();
}

#[divan::bench(sample_count = 20, sample_size = 1)]
fn socket_to_records(bencher: divan::Bencher) {
    let rig = rig();
    bencher.counter(divan::counter::ItemsCount::new(BLOCK)).bench(|| {
        rig.runtime.block_on(async {
            let target = rig.counters.messages_sent.load(Ordering::Relaxed) + BLOCK as u64;
            rig.irc.send_raw(Some("bench"), &rig.block);
            while rig.counters.messages_sent.load(Ordering::Relaxed) < target {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    });
    assert_eq!(rig.counters.malformed.load(Ordering::Relaxed), 0, "the bench lines must all parse");
}
