//! IRC line to encoded Kinesis record, on one core: parse (IRCv3 tags), batch per broadcaster,
//! seal every 2,500 messages (250 ms at 10,000 messages/s) and take the PutRecords call.
//! Lines are built from the real chat logs in ../shared/data/chat (TwitchDownloader JSON) with
//! the tags Twitch sends. Before the benchmarks it prints the records/s and bytes/s one channel
//! at 10,000 messages/s produces. Run: `scripts/bench ingest`.

use std::path::Path;

use highlights_core::irc::parse_line;
use ingest_fargate::batcher::Batcher;

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

/// Runs the lines through the ingester's path; returns (records, bytes).
fn ingest(lines: &[String]) -> (usize, usize) {
    let mut batcher = Batcher::new(1 << 30);
    let (mut records, mut bytes) = (0, 0);
    for (n, line) in lines.iter().enumerate() {
        if let Ok(Some(chat)) = parse_line(line) {
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
    let (records, bytes) = ingest(&lines);
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
    bencher.counter(divan::counter::ItemsCount::new(LINES)).bench(|| ingest(divan::black_box(&lines)));
}
