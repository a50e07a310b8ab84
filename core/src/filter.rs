//! The bot-command filter: messages matching `^![a-zA-Z0-9]+` are commands addressed to chat
//! bots (`!uptime`, `!discord`), not reactions to the stream, so the detector does not count them.

/// True when `text` is a bot command: `!` followed by at least one ASCII letter or digit.
///
/// Equivalent to the regular expression `^![a-zA-Z0-9]+` (what follows the first alphanumeric
/// character does not matter), without the cost of a regex engine on the hot path.
#[inline]
pub fn is_command(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 2 && bytes[0] == b'!' && bytes[1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::is_command;

    #[test]
    fn commands_are_recognised() {
        for text in ["!uptime", "!a", "!9", "!Discord now", "!so @friend", "!ab!cd"] {
            assert!(is_command(text), "{text:?} should be a command");
        }
    }

    #[test]
    fn reactions_are_not_commands() {
        for text in ["", "!", "! space", "!!", "!-x", " !uptime", "KEKW !uptime", "!é", "PogChamp"] {
            assert!(!is_command(text), "{text:?} should not be a command");
        }
    }
}
