//! Parsing of raw Twitch IRC lines (IRCv3 tags) into chat messages.
//!
//! Only `PRIVMSG` lines carry chat; other commands (`PING`, `JOIN`, `USERNOTICE`, numerics) are
//! not errors, they parse to `Ok(None)`. The parser borrows from the line and never panics.

use crate::model::{BroadcasterId, ChatMessage};

/// A chat message read from IRC, with the broadcaster it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcChat {
    pub broadcaster_id: BroadcasterId,
    /// The channel name without `#`.
    pub channel: String,
    pub message: ChatMessage,
}

/// Why a `PRIVMSG` line could not become a chat message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IrcError {
    #[error("line is empty")]
    Empty,
    #[error("line has tags but no command")]
    NoCommand,
    #[error("PRIVMSG has no channel or text")]
    NoText,
    #[error("PRIVMSG lacks the {0} tag (request the twitch.tv/tags capability)")]
    MissingTag(&'static str),
    #[error("tag {0} is not a number")]
    BadNumber(&'static str),
}

/// Parses one line (a trailing `\r\n` is ignored).
pub fn parse_line(line: &str) -> Result<Option<IrcChat>, IrcError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Err(IrcError::Empty);
    }
    let (tags, rest) = match line.strip_prefix('@') {
        Some(tagged) => tagged.split_once(' ').ok_or(IrcError::NoCommand)?,
        None => ("", line),
    };
    let rest = rest.trim_start_matches(' ');
    let (prefix, rest) = match rest.strip_prefix(':') {
        Some(prefixed) => prefixed.split_once(' ').ok_or(IrcError::NoCommand)?,
        None => ("", rest),
    };
    let rest = rest.trim_start_matches(' ');
    let (command, params) = rest.split_once(' ').unwrap_or((rest, ""));
    if command.is_empty() {
        return Err(IrcError::NoCommand);
    }
    if command != "PRIVMSG" {
        return Ok(None);
    }
    let (channel, text) = params.split_once(" :").ok_or(IrcError::NoText)?;
    let channel = channel.trim().trim_start_matches('#');
    let text = text.strip_prefix("\u{1}ACTION ").map_or(text, |action| action.trim_end_matches('\u{1}'));

    // One pass over the tags for the five this needs (a lookup per tag scanned them five times).
    let mut wanted = ChatTags::default();
    for pair in tags.split(';') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "room-id" => &mut wanted.room_id,
            "tmi-sent-ts" => &mut wanted.sent_at,
            "user-id" => &mut wanted.user_id,
            "id" => &mut wanted.id,
            "emotes" => &mut wanted.emotes,
            _ => continue,
        };
        // The first occurrence counts, as a lookup would have found it.
        slot.get_or_insert(value);
    }
    let number = |name: &'static str, value: Option<&str>| -> Result<Option<i64>, IrcError> {
        match value {
            None | Some("") => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| IrcError::BadNumber(name)),
        }
    };
    let broadcaster_id = number("room-id", wanted.room_id)?.ok_or(IrcError::MissingTag("room-id"))?;
    let sent_at_ms = number("tmi-sent-ts", wanted.sent_at)?.ok_or(IrcError::MissingTag("tmi-sent-ts"))?;
    let user_id = number("user-id", wanted.user_id)?.unwrap_or(0);
    let login = prefix.split_once('!').map_or(prefix, |(nick, _)| nick);
    Ok(Some(IrcChat {
        broadcaster_id: u64::try_from(broadcaster_id).map_err(|_| IrcError::BadNumber("room-id"))?,
        channel: channel.to_owned(),
        message: ChatMessage {
            id: wanted.id.unwrap_or("").to_owned(),
            user_id: u64::try_from(user_id).map_err(|_| IrcError::BadNumber("user-id"))?,
            login: login.to_owned(),
            sent_at_ms,
            text: text.to_owned(),
            emote_count: wanted.emotes.map_or(0, count_emotes),
        },
    }))
}

/// The tags of a PRIVMSG that become a chat message.
#[derive(Default)]
struct ChatTags<'a> {
    room_id: Option<&'a str>,
    sent_at: Option<&'a str>,
    user_id: Option<&'a str>,
    id: Option<&'a str>,
    emotes: Option<&'a str>,
}

/// Counts emote occurrences in an `emotes` tag: `25:0-4,12-16/1902:6-10` holds three.
pub fn count_emotes(tag: &str) -> u32 {
    if tag.is_empty() {
        return 0;
    }
    tag.split('/')
        .map(|emote| emote.split_once(':').map_or(0, |(_, ranges)| ranges.split(',').count() as u32))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LINE: &str = "@badge-info=;badges=broadcaster/1;color=#0000FF;display-name=Ronni;emotes=25:0-4,12-16/1902:6-10;id=885196de-cb67-427a-baa8-82f9b0fcd05f;mod=0;room-id=1337;subscriber=0;tmi-sent-ts=1507246572675;turbo=1;user-id=1337;user-type=global_mod :ronni!ronni@ronni.tmi.twitch.tv PRIVMSG #ronni :Kappa Keepo Kappa\r\n";

    #[test]
    fn parses_a_tagged_privmsg() {
        let chat = parse_line(LINE).unwrap().unwrap();
        assert_eq!(chat.broadcaster_id, 1337);
        assert_eq!(chat.channel, "ronni");
        assert_eq!(chat.message.id, "885196de-cb67-427a-baa8-82f9b0fcd05f");
        assert_eq!(chat.message.user_id, 1337);
        assert_eq!(chat.message.login, "ronni");
        assert_eq!(chat.message.sent_at_ms, 1_507_246_572_675);
        assert_eq!(chat.message.text, "Kappa Keepo Kappa");
        assert_eq!(chat.message.emote_count, 3);
    }

    #[test]
    fn the_first_of_repeated_tags_counts_and_keys_match_whole() {
        let line = "@user-id-x=9;room-id=1;room-id=2;tmi-sent-ts=3;id=;user-id=4 :a!a@a PRIVMSG #a :hi";
        let chat = parse_line(line).unwrap().unwrap();
        assert_eq!((chat.broadcaster_id, chat.message.sent_at_ms, chat.message.user_id), (1, 3, 4));
        assert_eq!((chat.message.id.as_str(), chat.message.emote_count), ("", 0));
    }

    #[test]
    fn actions_are_unwrapped() {
        let line = "@room-id=1;tmi-sent-ts=5 :a!a@a PRIVMSG #a :\u{1}ACTION dances\u{1}";
        assert_eq!(parse_line(line).unwrap().unwrap().message.text, "dances");
    }

    #[test]
    fn other_commands_are_not_chat() {
        for line in [
            "PING :tmi.twitch.tv",
            ":tmi.twitch.tv 001 justinfan1 :Welcome",
            ":a!a@a JOIN #a",
            "@msg-id=sub :tmi.twitch.tv USERNOTICE #a :hi",
        ] {
            assert_eq!(parse_line(line), Ok(None), "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert_eq!(parse_line(""), Err(IrcError::Empty));
        assert_eq!(parse_line("@a=b"), Err(IrcError::NoCommand));
        assert_eq!(parse_line(":a!a@a PRIVMSG #a :hi"), Err(IrcError::MissingTag("room-id")));
        assert_eq!(parse_line("@room-id=1 :a!a@a PRIVMSG #a :hi"), Err(IrcError::MissingTag("tmi-sent-ts")));
        assert_eq!(
            parse_line("@room-id=x;tmi-sent-ts=1 :a PRIVMSG #a :hi"),
            Err(IrcError::BadNumber("room-id"))
        );
        assert_eq!(parse_line("@room-id=1;tmi-sent-ts=1 :a PRIVMSG #a"), Err(IrcError::NoText));
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in ".{0,300}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn arbitrary_tag_soup_never_panics(tags in "[a-z=;0-9-]{0,80}", text in ".{0,40}") {
            let _ = parse_line(&format!("@{tags} :x!x@x PRIVMSG #x :{text}"));
        }
    }
}
