//! IRC line to encoded Kinesis record, on one core, through the path the ingester runs: the
//! transport's `route_line` (chat parsed by `highlights_core::irc::parse_line`), batching per
//! broadcaster, sealing every 2,500 messages (250 ms at 10,000 messages/s) and taking the
//! PutRecords call. A second benchmark runs the same lines through twitch-irc's own parsing
//! (`IRCMessage::parse`, `ServerMessage::try_from`, the clone its connection loop makes of every
//! message): the reason chat bypasses it.
//! Lines are built from the real chat logs in ../shared/data/chat (TwitchDownloader JSON) with
//! the tags Twitch sends. Before the benchmarks it prints the records/s and bytes/s one channel
//! at 10,000 messages/s produces. Run: `scripts/bench ingest`.

use std::path::Path;

use highlights_core::irc::IrcChat;
use highlights_core::model::ChatMessage;
use ingest_fargate::batcher::Batcher;
use ingest_fargate::irc_client::{Routed, route_line};
use twitch_irc::message::{IRCMessage, ServerMessage};

const LINES: usize = 100_000;
const PER_FLUSH: usize = 2_500;

fn chat_lines() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/chat");
    let mut bodies = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the chat logs live in ../shared/data/chat)", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for comment in json["comments"].as_array().into_iter().flatten() {
            bodies.push((
                comment["commenter"]["name"].as_str().unwrap_or("viewer").to_owned(),
                comment["commenter"]["_id"].as_str().unwrap_or("1").to_owned(),
                comment["_id"].as_str().unwrap_or("").to_owned(),
                comment["message"]["body"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    assert!(!bodies.is_empty(), "no chat in {}", dir.display());
    (0..LINES)
        .map(|n| {
            let (login, user_id, id, text) = &bodies[n % bodies.len()];
            format!(
                "@badge-info=subscriber/14;badges=subscriber/12,premium/1;client-nonce=3f1b7a9c2e;color=#8A2BE2;\
                 display-name={login};emotes=;first-msg=0;flags=;id={id};mod=0;returning-chatter=0;\
                 room-id=194814599;subscriber=1;tmi-sent-ts={};turbo=0;user-id={user_id};user-type= \
                 :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #theltwilson :{text}",
                1_733_000_000_000 + n as i64 / 10
            )
        })
        .collect()
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

/// Runs the lines through the ingester's path; returns (records, bytes).
fn ingest(lines: &[String], chat_of: fn(&str) -> Option<IrcChat>) -> (usize, usize) {
    let mut batcher = Batcher::new(1 << 30);
    let (mut records, mut bytes) = (0, 0);
    for (n, line) in lines.iter().enumerate() {
        if let Some(chat) = chat_of(line) {
            batcher.push(chat);
        }
        if (n + 1) % PER_FLUSH == 0 {
            batcher.seal(n as i64);
            for pending in batcher.next_call() {
                records += 1;
                bytes += pending.record.data.len() + pending.record.partition_key.len();
            }
        }
    }
    (records, bytes)
}

fn main() {
    let lines = chat_lines();
    let irc_bytes: usize = lines.iter().map(|l| l.len() + 2).sum();
    let (records, bytes) = ingest(&lines, chat_of);
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

#[divan::bench]
fn irc_line_to_kinesis_record(bencher: divan::Bencher) {
    let lines = chat_lines();
    bencher
        .counter(divan::counter::ItemsCount::new(LINES))
        .bench(|| ingest(divan::black_box(&lines), chat_of));
}

#[divan::bench]
fn irc_line_to_kinesis_record_through_twitch_irc_types(bencher: divan::Bencher) {
    let lines = chat_lines();
    bencher
        .counter(divan::counter::ItemsCount::new(LINES))
        .bench(|| ingest(divan::black_box(&lines), chat_through_twitch_irc));
}
