//! IRC bytes to encoded Kinesis records, on one core, through the path the ingester runs: the
//! transport's line splitter (fed 16 KiB reads, as from a socket) and `route_line` (chat parsed
//! by `highlights_core::irc::parse_line`), batching per
//! broadcaster, sealing every 2,500 messages (250 ms at 10,000 messages/s) and taking the
//! PutRecords call. A second benchmark runs the same lines through twitch-irc's own parsing
//! (`IRCMessage::parse`, `ServerMessage::try_from`, the clone its connection loop makes of every
//! message): the reason chat bypasses it.
//! Lines are built from the real chat logs in ../shared/data/chat (TwitchDownloader JSON) with
//! the tags Twitch sends. Before the benchmarks it prints the records/s and bytes/s one channel
//! at 10,000 messages/s produces. Run: `scripts/bench ingest`.

use bytes::BytesMut;
use highlights_core::irc::IrcChat;
use highlights_core::model::ChatMessage;
use ingest_fargate::batcher::Batcher;
use ingest_fargate::irc_client::{ChatLine, ChatLineDecoder, Routed, route_line};
use tokio_util::codec::Decoder;
use twitch_irc::message::{IRCMessage, ServerMessage};

mod chat_logs;

const LINES: usize = 100_000;
const PER_FLUSH: usize = 2_500;

fn chat_lines() -> Vec<String> {
    chat_logs::twitch_lines(LINES, "theltwilson", 194_814_599)
}

fn chat_of(line: &str) -> Option<IrcChat> {
    match route_line(line.as_bytes()) {
        Routed::Chat(chat) => Some(chat),
        _ => None,
    }
}

/// The same through twitch-irc's message types.
fn chat_through_twitch_irc(line: &str) -> Option<IrcChat> {
    let message = ServerMessage::try_from(IRCMessage::parse(line).ok()?).ok()?;
    // twitch-irc's connection loop keeps a copy of each message it forwards.
    let forwarded = message.clone();
    drop(message);
    let ServerMessage::Privmsg(privmsg) = forwarded else { return None };
    Some(IrcChat {
        broadcaster_id: privmsg.channel_id.parse().ok()?,
        channel: privmsg.channel_login,
        message: ChatMessage {
            id: privmsg.message_id,
            user_id: privmsg.sender.id.parse().ok()?,
            login: privmsg.sender.login,
            sent_at_ms: privmsg.server_timestamp.timestamp_millis(),
            text: privmsg.message_text,
            emote_count: privmsg.emotes.len() as u32,
        },
    })
}

/// Batches chat as the producer does, sealing every [`PER_FLUSH`] messages; counts what would be
/// sent.
struct Producer {
    batcher: Batcher,
    messages: usize,
    records: usize,
    bytes: usize,
}

impl Producer {
    fn new() -> Self {
        Self { batcher: Batcher::new(1 << 30), messages: 0, records: 0, bytes: 0 }
    }

    fn push(&mut self, chat: IrcChat) {
        self.batcher.push(chat);
        self.messages += 1;
        if self.messages.is_multiple_of(PER_FLUSH) {
            self.batcher.seal(self.messages as i64);
            for pending in self.batcher.next_call() {
                self.records += 1;
                self.bytes += pending.record.data.len() + pending.record.partition_key.len();
            }
        }
    }
}

/// The ingester's path: bytes as the socket delivers them, split into lines, routed, batched.
/// Returns (records, bytes).
fn ingest_bytes(wire: &[u8]) -> (usize, usize) {
    let mut decoder = ChatLineDecoder::default();
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let mut producer = Producer::new();
    for read in wire.chunks(16 * 1024) {
        buffer.extend_from_slice(read);
        while let Ok(Some(line)) = decoder.decode(&mut buffer) {
            if let ChatLine::Line(line) = line
                && let Routed::Chat(chat) = route_line(&line)
            {
                producer.push(chat);
            }
        }
    }
    (producer.records, producer.bytes)
}

/// Line by line through twitch-irc's types.
fn ingest_through_twitch_irc(lines: &[String]) -> (usize, usize) {
    let mut producer = Producer::new();
    for chat in lines.iter().filter_map(|line| chat_through_twitch_irc(line)) {
        producer.push(chat);
    }
    (producer.records, producer.bytes)
}

fn main() {
    let lines = chat_lines();
    let wire = wire_bytes(&lines);
    let irc_bytes = wire.len();
    let (records, bytes) = ingest_bytes(&wire);
    assert_eq!(
        (records, bytes),
        ingest_through_twitch_irc(&lines),
        "the two paths produced different records"
    );
    for line in &lines {
        assert_eq!(chat_of(line), chat_through_twitch_irc(line), "the two parsers disagree on {line}");
    }
    let seconds = LINES as f64 / 10_000.0;
    eprintln!(
        "one channel at 10,000 messages/s: {:.0} records/s, {:.0} KB/s to Kinesis \
         ({:.1} bytes/message; IRC brought {:.0} bytes/message)",
        records as f64 / seconds,
        bytes as f64 / seconds / 1000.0,
        bytes as f64 / LINES as f64,
        irc_bytes as f64 / LINES as f64
    );
    divan::main();
}

fn wire_bytes(lines: &[String]) -> Vec<u8> {
    lines.iter().flat_map(|line| line.bytes().chain(*b"\r\n")).collect()
}

#[divan::bench]
fn irc_bytes_to_kinesis_records(bencher: divan::Bencher) {
    let wire = wire_bytes(&chat_lines());
    bencher.counter(divan::counter::ItemsCount::new(LINES)).bench(|| ingest_bytes(divan::black_box(&wire)));
}

#[divan::bench]
fn irc_lines_to_kinesis_records_through_twitch_irc_types(bencher: divan::Bencher) {
    let lines = chat_lines();
    bencher
        .counter(divan::counter::ItemsCount::new(LINES))
        .bench(|| ingest_through_twitch_irc(divan::black_box(&lines)));
}
