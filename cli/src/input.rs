//! Readers for recorded chat: JSONL, TwitchDownloader chat JSON, and raw Twitch IRC lines.
//!
//! Each reader streams [`ChatEvent`]s to a callback and reports bad records to another one with
//! their position, then goes on: a bad line never stops a backtest. JSONL and IRC are read line
//! by line, so memory does not grow with the file; a TwitchDownloader file is one JSON document
//! and is read whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use highlights_core::{ChatterKey, chatter_key, irc};
use serde::Deserialize;

/// One chat message as the backtest needs it.
#[derive(Debug, Clone, Copy)]
pub struct ChatEvent<'a> {
    pub broadcaster_id: u64,
    pub sent_at_ms: i64,
    /// Who wrote it ([`highlights_core::UNKNOWN_CHATTER`] when the source does not say).
    pub chatter: ChatterKey,
    pub text: &'a str,
    /// The channel's login, when the source says (JSONL `channel`, the IRC `#channel`, a
    /// TwitchDownloader file's streamer).
    pub channel: Option<&'a str>,
}

/// A record that could not be read, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRecord {
    /// "line 12" or "comment 3".
    pub position: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Look at the start of the file.
    Auto,
    /// One `{"broadcaster_id", "sent_at" (ms), "text"}` object per line, optionally with the
    /// chatter's `user_id` (a number, or a string when the source has only names) and `login`.
    Jsonl,
    /// A TwitchDownloader chat export (`{"comments": [...]}`).
    TwitchDownloader,
    /// Raw IRC lines with IRCv3 tags (`@...;room-id=...;tmi-sent-ts=... :u!u@u PRIVMSG #c :text`).
    Irc,
}

/// Counts of what a reader did besides emitting events.
#[derive(Debug, Default, Clone)]
pub struct ReadStats {
    pub bad: u64,
    /// Lines that are valid but not chat (IRC `PING`, `JOIN`, blank lines).
    pub ignored: u64,
    /// The recording the chat belongs to, when the file says (a TwitchDownloader export of a VOD).
    pub vod: Option<Vod>,
}

/// A VOD on Twitch: a moment at Unix second `s` is at `s - started_at_s` into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vod {
    pub broadcaster_id: u64,
    pub video_id: String,
    pub started_at_s: i64,
    pub length_s: i64,
}

const READ_BUFFER: usize = 1 << 20;

/// Reads `path` in `format`, calling `on_event` per message and `on_bad` per bad record;
/// `on_progress` gets the bytes consumed so far now and then.
pub fn read_file(
    path: &Path,
    format: Format,
    on_event: &mut dyn FnMut(ChatEvent<'_>),
    on_bad: &mut dyn FnMut(BadRecord),
    on_progress: &mut dyn FnMut(u64),
) -> anyhow::Result<ReadStats> {
    use anyhow::Context as _;
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let format = match format {
        Format::Auto => detect(&mut reader).with_context(|| format!("cannot read {}", path.display()))?,
        chosen => chosen,
    };
    let stats = match format {
        Format::Jsonl | Format::Irc => read_lines(&mut reader, format, on_event, on_bad, on_progress),
        Format::TwitchDownloader => read_twitch_downloader(&mut reader, on_event, on_bad),
        Format::Auto => unreachable!("resolved above"),
    }
    .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(stats)
}

/// The format `read_file` reads `path` in (`format`, or the one guessed from its first line).
pub fn resolve_format(path: &Path, format: Format) -> anyhow::Result<Format> {
    use anyhow::Context as _;
    if format != Format::Auto {
        return Ok(format);
    }
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    detect(&mut BufReader::new(file)).with_context(|| format!("cannot read {}", path.display()))
}

/// Guesses the format from the first line without consuming it.
fn detect(reader: &mut BufReader<File>) -> std::io::Result<Format> {
    let head = reader.fill_buf()?;
    let text = String::from_utf8_lossy(head);
    let first_line = text.trim_start().lines().next().unwrap_or("");
    Ok(if first_line.starts_with('@') || first_line.starts_with(':') {
        Format::Irc
    } else if serde_json::from_str::<serde_json::Value>(first_line)
        .is_ok_and(|value| value.get("sent_at").is_some())
    {
        Format::Jsonl
    } else {
        Format::TwitchDownloader
    })
}

fn read_lines(
    reader: &mut impl BufRead,
    format: Format,
    on_event: &mut dyn FnMut(ChatEvent<'_>),
    on_bad: &mut dyn FnMut(BadRecord),
    on_progress: &mut dyn FnMut(u64),
) -> std::io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    let mut consumed = 0u64;
    let mut line_number = 0u64;
    for_each_line(reader, |line| {
        consumed += line.len() as u64;
        line_number += 1;
        if line_number.is_multiple_of(65_536) {
            on_progress(consumed);
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            stats.ignored += 1;
            return;
        }
        let bad = |reason: String| BadRecord { position: format!("line {line_number}"), reason };
        match format {
            Format::Jsonl => match crate::jsonl::parse_line(line) {
                Ok(record) => on_event(ChatEvent {
                    broadcaster_id: record.broadcaster_id,
                    sent_at_ms: record.sent_at,
                    chatter: record.chatter(),
                    text: &record.text,
                    channel: record.channel.as_deref().filter(|c| !c.is_empty()),
                }),
                Err(reason) => {
                    stats.bad += 1;
                    on_bad(bad(reason));
                }
            },
            _ => match std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(|text| irc::parse_line(text).map_err(|e| e.to_string()))
            {
                Ok(Some(chat)) => on_event(ChatEvent {
                    broadcaster_id: chat.broadcaster_id,
                    sent_at_ms: chat.message.sent_at_ms,
                    chatter: chat.message.chatter(),
                    text: &chat.message.text,
                    channel: Some(chat.channel.as_str()).filter(|c| !c.is_empty()),
                }),
                Ok(None) => stats.ignored += 1,
                Err(reason) => {
                    stats.bad += 1;
                    on_bad(bad(reason));
                }
            },
        }
    })?;
    on_progress(consumed);
    Ok(stats)
}

/// Calls `each` with every line of `reader` (its `\n` included). Lines that lie whole in the
/// reader's buffer are handed over in place; only a line cut by a refill is copied.
fn for_each_line(reader: &mut impl BufRead, mut each: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut cut = Vec::new();
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            if !cut.is_empty() {
                each(&cut);
            }
            return Ok(());
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', buffer) {
            if cut.is_empty() {
                each(&buffer[start..=end]);
            } else {
                cut.extend_from_slice(&buffer[start..=end]);
                each(&cut);
                cut.clear();
            }
            start = end + 1;
        }
        cut.extend_from_slice(&buffer[start..]);
        let length = buffer.len();
        reader.consume(length);
    }
}

#[derive(Deserialize)]
struct DownloaderFile {
    #[serde(default)]
    streamer: Option<DownloaderStreamer>,
    #[serde(default)]
    video: Option<DownloaderVideo>,
    comments: Vec<serde_json::Value>,
}

/// The exported video: a VOD (numeric id) whose second 0 is `created_at`.
#[derive(Deserialize)]
struct DownloaderVideo {
    #[serde(default)]
    id: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    length: i64,
}

#[derive(Deserialize)]
struct DownloaderStreamer {
    #[serde(deserialize_with = "twitch_id")]
    id: u64,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct DownloaderComment {
    created_at: String,
    #[serde(default, deserialize_with = "optional_twitch_id")]
    channel_id: Option<u64>,
    #[serde(default)]
    commenter: Option<DownloaderCommenter>,
    message: DownloaderMessage,
}

#[derive(Deserialize)]
struct DownloaderCommenter {
    #[serde(default, rename = "_id", deserialize_with = "optional_twitch_id")]
    id: Option<u64>,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct DownloaderMessage {
    body: String,
}

fn read_twitch_downloader(
    reader: &mut impl Read,
    on_event: &mut dyn FnMut(ChatEvent<'_>),
    on_bad: &mut dyn FnMut(BadRecord),
) -> std::io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    let file: DownloaderFile = serde_json::from_reader(reader).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a TwitchDownloader chat file ({error}); for other files pass --format"),
        )
    })?;
    // A display name is the login with other capitals, unless it is localised (then no login).
    let channel = file
        .streamer
        .as_ref()
        .map(|s| s.name.to_ascii_lowercase())
        .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    let fallback_id = file.streamer.as_ref().map(|s| s.id);
    // A clip's export names a clip's slug, not a VOD's number: only VODs can be linked to.
    stats.vod = file.video.as_ref().zip(fallback_id).and_then(|(video, broadcaster_id)| {
        let numeric = !video.id.is_empty() && video.id.bytes().all(|b| b.is_ascii_digit());
        let started_at_ms = parse_rfc3339_ms(&video.created_at).ok()?;
        numeric.then(|| Vod {
            broadcaster_id,
            video_id: video.id.clone(),
            started_at_s: started_at_ms.div_euclid(1000),
            length_s: video.length.max(0),
        })
    });
    for (index, value) in file.comments.into_iter().enumerate() {
        let bad = |reason: String| BadRecord { position: format!("comment {}", index + 1), reason };
        let comment = match serde_json::from_value::<DownloaderComment>(value) {
            Ok(comment) => comment,
            Err(error) => {
                stats.bad += 1;
                on_bad(bad(error.to_string()));
                continue;
            }
        };
        let Some(broadcaster_id) = comment.channel_id.or(fallback_id) else {
            stats.bad += 1;
            on_bad(bad("no channel_id and no streamer.id".into()));
            continue;
        };
        match parse_rfc3339_ms(&comment.created_at) {
            Ok(sent_at_ms) => {
                let chatter = comment
                    .commenter
                    .as_ref()
                    .map_or(highlights_core::UNKNOWN_CHATTER, |c| chatter_key(c.id.unwrap_or(0), &c.name));
                let channel = channel.as_deref().filter(|_| Some(broadcaster_id) == fallback_id);
                on_event(ChatEvent {
                    broadcaster_id,
                    sent_at_ms,
                    chatter,
                    text: &comment.message.body,
                    channel,
                })
            }
            Err(reason) => {
                stats.bad += 1;
                on_bad(bad(reason));
            }
        }
    }
    Ok(stats)
}

fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|error| format!("created_at {text:?}: {error}"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("created_at {text:?} out of range"))
}

/// Twitch ids arrive as strings in most APIs and as numbers in some exports: accept both.
pub(crate) fn twitch_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a Twitch id (a non-negative integer or a string of digits)")
        }
        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }
        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::custom("a Twitch id cannot be negative"))
        }
        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<u64, E> {
            value.parse().map_err(|_| E::custom(format!("{value:?} is not a Twitch id")))
        }
    }
    deserializer.deserialize_any(Visitor)
}

fn optional_twitch_id<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    twitch_id(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(contents: &str, format: Format) -> (Vec<(u64, i64, String)>, Vec<BadRecord>, ReadStats) {
        let (events, bad, stats) = collect_channels(contents, format);
        (events.into_iter().map(|(id, at, text, _)| (id, at, text)).collect(), bad, stats)
    }

    type Event = (u64, i64, String, Option<String>);

    fn collect_channels(contents: &str, format: Format) -> (Vec<Event>, Vec<BadRecord>, ReadStats) {
        let path = std::env::temp_dir().join(format!(
            "highlights-input-{}-{:?}-{}",
            std::process::id(),
            format,
            contents.len()
        ));
        std::fs::File::create(&path).unwrap().write_all(contents.as_bytes()).unwrap();
        let mut events = Vec::new();
        let mut bad = Vec::new();
        let stats = read_file(
            &path,
            format,
            &mut |e| {
                events.push((e.broadcaster_id, e.sent_at_ms, e.text.to_owned(), e.channel.map(str::to_owned)))
            },
            &mut |b| bad.push(b),
            &mut |_| {},
        )
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        (events, bad, stats)
    }

    #[test]
    fn jsonl_accepts_string_and_number_ids_and_reports_bad_lines() {
        let contents = "{\"broadcaster_id\":\"12\",\"sent_at\":1000,\"text\":\"hi \\\"you\\\"\",\"extra\":1}\n\
                        not json\n\
                        \n\
                        {\"broadcaster_id\":13,\"sent_at\":2000,\"text\":\"yo\"}\n\
                        {\"broadcaster_id\":-1,\"sent_at\":2000,\"text\":\"yo\"}\n";
        let (events, bad, stats) = collect(contents, Format::Auto);
        assert_eq!(events, vec![(12, 1000, "hi \"you\"".into()), (13, 2000, "yo".into())]);
        assert_eq!(bad.iter().map(|b| b.position.as_str()).collect::<Vec<_>>(), ["line 2", "line 5"]);
        assert_eq!((stats.bad, stats.ignored), (2, 1));
    }

    #[test]
    fn irc_lines_are_detected_and_parsed() {
        let contents = "@room-id=7;tmi-sent-ts=1500;id=x :a!a@a PRIVMSG #a :Kappa\n\
                        PING :tmi.twitch.tv\n\
                        @room-id=7 :a!a@a PRIVMSG #a :no time\n";
        let (events, bad, stats) = collect(contents, Format::Auto);
        assert_eq!(events, vec![(7, 1500, "Kappa".into())]);
        assert_eq!(bad.len(), 1);
        assert!(bad[0].reason.contains("tmi-sent-ts"), "{:?}", bad[0]);
        assert_eq!(stats.ignored, 1);
    }

    #[test]
    fn twitch_downloader_comments_use_created_at_and_channel_id() {
        let contents = r#"{"streamer":{"name":"X","id":99},"comments":[
            {"created_at":"2024-12-01T22:36:48.357Z","channel_id":"194814599","message":{"body":"Oh god"}},
            {"created_at":"2024-12-01T22:36:49Z","message":{"body":"no channel id"}},
            {"created_at":"yesterday","channel_id":"1","message":{"body":"bad time"}},
            {"channel_id":"1"}
        ]}"#;
        let (events, bad, _) = collect(contents, Format::Auto);
        assert_eq!(
            events,
            vec![
                (194_814_599, 1_733_092_608_357, "Oh god".into()),
                (99, 1_733_092_609_000, "no channel id".into())
            ]
        );
        assert_eq!(bad.iter().map(|b| b.position.as_str()).collect::<Vec<_>>(), ["comment 3", "comment 4"]);
    }

    #[test]
    fn each_format_names_the_channel_when_it_can() {
        let channel_of = |contents: &str| {
            collect_channels(contents, Format::Auto).0.into_iter().map(|e| e.3).collect::<Vec<_>>()
        };
        assert_eq!(
            channel_of(
                "{\"broadcaster_id\":1,\"channel\":\"xqcow\",\"sent_at\":1,\"text\":\"a\"}\n\
                 {\"broadcaster_id\":1,\"sent_at\":2,\"text\":\"b\"}\n"
            ),
            [Some("xqcow".to_owned()), None]
        );
        assert_eq!(
            channel_of("@room-id=7;tmi-sent-ts=1500 :a!a@a PRIVMSG #ronni :Kappa\n"),
            [Some("ronni".to_owned())]
        );
        let downloader = |name: &str| {
            format!(
                r#"{{"streamer":{{"name":"{name}","id":99}},"comments":[
                {{"created_at":"2024-12-01T22:36:48Z","message":{{"body":"a"}}}},
                {{"created_at":"2024-12-01T22:36:49Z","channel_id":"5","message":{{"body":"b"}}}}]}}"#
            )
        };
        assert_eq!(channel_of(&downloader("TheLtWilson")), [Some("theltwilson".to_owned()), None]);
        assert_eq!(channel_of(&downloader("한국어")), [None, None]);
    }

    #[test]
    fn lines_cut_by_a_buffer_refill_are_whole_again() {
        let text = "first line\n\nsecond, longer line\nno newline at the end";
        for capacity in [1, 3, 7, 64] {
            let mut reader = std::io::BufReader::with_capacity(capacity, text.as_bytes());
            let mut lines = Vec::new();
            for_each_line(&mut reader, |line| lines.push(String::from_utf8(line.to_vec()).unwrap())).unwrap();
            assert_eq!(
                lines,
                ["first line\n", "\n", "second, longer line\n", "no newline at the end"],
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn a_file_that_is_not_chat_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("highlights-not-chat-{}", std::process::id()));
        std::fs::write(&path, "hello\nworld\n").unwrap();
        let error = read_file(&path, Format::Auto, &mut |_| {}, &mut |_| {}, &mut |_| {}).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(format!("{error:#}").contains("--format"), "{error:#}");
    }
}
