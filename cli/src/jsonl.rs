//! One line of chat JSONL (`{"broadcaster_id","sent_at","text"}`, optionally `user_id`, `login`,
//! `channel`), parsed fast.
//!
//! Most lines are flat objects of plain strings and integers. Those are read by a small scanner
//! that borrows every value from the line; anything it is not sure about (an escape, a float, a
//! nested value, a missing or repeated field) goes to serde_json, which also writes the error
//! message of a bad line. The scanner only ever accepts lines serde_json reads the same way
//! (property-tested below), so the fast path changes speed, never results.

use std::borrow::Cow;

use highlights_core::{ChatterKey, chatter_key};
use serde::Deserialize;

/// A chat line's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonlRecord<'a> {
    pub broadcaster_id: u64,
    pub sent_at: i64,
    pub text: Cow<'a, str>,
    pub user_id: Option<UserId<'a>>,
    pub login: Option<Cow<'a, str>>,
    pub channel: Option<Cow<'a, str>>,
}

/// A `user_id`: Twitch's number, or a string (digits, or a name when the source has only names).
#[derive(Debug, Clone, PartialEq)]
pub enum UserId<'a> {
    Number(u64),
    Text(Cow<'a, str>),
}

impl JsonlRecord<'_> {
    /// Who wrote it: a numeric user id, else the `user_id` text or the `login` as a name.
    pub fn chatter(&self) -> ChatterKey {
        let login = self.login.as_deref().unwrap_or("");
        match &self.user_id {
            Some(UserId::Number(id)) if *id != 0 => *id,
            Some(UserId::Text(text)) => match text.parse::<u64>() {
                Ok(id) if id != 0 => id,
                _ if !text.is_empty() => chatter_key(0, text),
                _ => chatter_key(0, login),
            },
            _ => chatter_key(0, login),
        }
    }
}

/// Parses one line; the error says what is wrong with it.
pub fn parse_line(line: &[u8]) -> Result<JsonlRecord<'_>, String> {
    match scan(line) {
        Some(record) => Ok(record),
        None => with_serde(line),
    }
}

#[derive(Deserialize)]
struct SerdeLine<'a> {
    #[serde(deserialize_with = "crate::input::twitch_id")]
    broadcaster_id: u64,
    sent_at: i64,
    #[serde(borrow)]
    text: Cow<'a, str>,
    #[serde(default, borrow)]
    user_id: Option<SerdeUserId<'a>>,
    #[serde(default, borrow)]
    login: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    channel: Option<Cow<'a, str>>,
}

/// `user_id` as a number or a string, without serde's buffering of untagged enums.
struct SerdeUserId<'a>(UserId<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for SerdeUserId<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UserId<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a user id (a non-negative integer or a string)")
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                Ok(UserId::Number(value))
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                u64::try_from(value)
                    .map(UserId::Number)
                    .map_err(|_| E::custom("a user id cannot be negative"))
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(UserId::Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(UserId::Text(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_any(Visitor).map(SerdeUserId)
    }
}

fn with_serde(line: &[u8]) -> Result<JsonlRecord<'_>, String> {
    let parsed: SerdeLine<'_> = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    Ok(JsonlRecord {
        broadcaster_id: parsed.broadcaster_id,
        sent_at: parsed.sent_at,
        text: parsed.text,
        user_id: parsed.user_id.map(|u| u.0),
        login: parsed.login,
        channel: parsed.channel,
    })
}

/// The scanner's position in a line (valid UTF-8, checked once for the whole line).
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// A string without escapes or control characters.
    fn raw_string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let rest = &self.bytes()[self.at..];
        // Values are short: a plain loop beats a vectorised search's set-up, and checks for
        // control characters on the way.
        let end = rest.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[end] != b'"' {
            return None;
        }
        let start = self.at;
        self.at += end + 1;
        // Quotes are ASCII, so both ends are character boundaries of the valid line.
        self.text.get(start..start + end)
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.raw_string().map(Cow::Borrowed)
    }

    /// The digits of an integer as JSON writes it (`-?(0|[1-9][0-9]*)`, no fraction, no
    /// exponent), with its sign.
    fn integer(&mut self) -> Option<(bool, &'a [u8])> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.at += 1;
        }
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.bytes()[start..self.at];
        let well_formed = !digits.is_empty() && (digits[0] != b'0' || digits.len() == 1);
        let ends = matches!(self.peek(), Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r'));
        (well_formed && ends).then_some((negative, digits))
    }

    fn unsigned(&mut self) -> Option<u64> {
        match self.integer()? {
            (false, digits) => digits_value(digits),
            (true, _) => None,
        }
    }

    fn signed(&mut self) -> Option<i64> {
        let (negative, digits) = self.integer()?;
        let magnitude = i64::try_from(digits_value(digits)?).ok()?;
        Some(if negative { -magnitude } else { magnitude })
    }

    /// Skips the value of a field nobody reads, when it is a plain string, integer or literal.
    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.raw_string().map(drop),
            b't' | b'f' | b'n' => {
                let rest = &self.bytes()[self.at..];
                let literal = [&b"true"[..], b"false", b"null"].into_iter().find(|l| rest.starts_with(l))?;
                self.at += literal.len();
                Some(())
            }
            _ => self.integer().map(drop),
        }
    }
}

/// The value of ASCII digits, `None` past `u64::MAX`.
fn digits_value(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| value.checked_mul(10)?.checked_add(u64::from(digit - b'0')))
}

/// The fast path: `Some` only for lines whose every part it understands.
fn scan(line: &[u8]) -> Option<JsonlRecord<'_>> {
    let whole = std::str::from_utf8(line).ok()?;
    let mut cursor = Cursor { text: whole, at: 0 };
    let (mut broadcaster_id, mut sent_at, mut text) = (None, None, None);
    let (mut user_id, mut login, mut channel) = (None, None, None);
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    loop {
        cursor.skip_whitespace();
        let key = cursor.raw_string()?;
        cursor.skip_whitespace();
        cursor.expect(b':')?;
        cursor.skip_whitespace();
        // A repeated field is serde's to refuse.
        fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
            if slot.is_some() {
                return None;
            }
            *slot = Some(value?);
            Some(())
        }
        match key.as_bytes() {
            b"broadcaster_id" => {
                // As `twitch_id` reads it: a non-negative integer, or a string Rust parses as u64.
                let id =
                    if cursor.peek()? == b'"' { cursor.string()?.parse().ok() } else { cursor.unsigned() };
                once(&mut broadcaster_id, id)?;
            }
            b"sent_at" => once(&mut sent_at, cursor.signed())?,
            b"text" => once(&mut text, cursor.string())?,
            b"user_id" => {
                let id = if cursor.peek()? == b'"' {
                    cursor.string().map(UserId::Text)
                } else {
                    cursor.unsigned().map(UserId::Number)
                };
                once(&mut user_id, id)?;
            }
            b"login" => once(&mut login, cursor.string())?,
            b"channel" => once(&mut channel, cursor.string())?,
            _ => cursor.skip_value()?,
        }
        cursor.skip_whitespace();
        match cursor.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    cursor.skip_whitespace();
    if cursor.at != line.len() {
        return None;
    }
    Some(JsonlRecord {
        broadcaster_id: broadcaster_id?,
        sent_at: sent_at?,
        text: text?,
        user_id,
        login,
        channel,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn plain_lines_take_the_fast_path_and_odd_ones_still_parse() {
        let plain = br#"{"broadcaster_id":"100000","sent_at":1700000000395,"user_id":42,"login":"viewer2386","channel":"xqcow","text":"Pog"}"#;
        let record = scan(plain).expect("the fast path");
        assert_eq!(record.broadcaster_id, 100_000);
        assert_eq!(record.user_id, Some(UserId::Number(42)));
        assert_eq!(record.chatter(), 42);
        assert_eq!(record, with_serde(plain).unwrap());
        // An escape: serde's job, same result shape.
        let escaped = br#"{"broadcaster_id":1,"sent_at":2,"text":"h\u00e9 \"you\""}"#;
        assert!(scan(escaped).is_none());
        assert_eq!(parse_line(escaped).unwrap().text, "hé \"you\"");
        let named = br#"{"broadcaster_id":1,"sent_at":2,"user_id":"someone","text":"a"}"#;
        assert_eq!(parse_line(named).unwrap().chatter(), chatter_key(0, "someone"));
        let error = parse_line(br#"{"broadcaster_id":-1,"sent_at":2,"text":"a"}"#).unwrap_err();
        assert!(error.contains("cannot be negative"), "{error}");
        let error = parse_line(br#"{"broadcaster_id":1,"sent_at":2.5,"text":"a"}"#).unwrap_err();
        assert!(error.contains("floating point"), "{error}");
    }

    /// A value as JSON text, of every kind a line may hold.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{1,20}",
            "-[0-9]{1,20}",
            "0[0-9]{1,3}",
            "[0-9]{1,4}\\.[0-9]{1,3}",
            "[0-9]{1,3}e[0-9]",
            "\"[0-9]{1,21}\"",
            "\"\\+?[0-9]{1,5}\"",
            "\"[a-zA-Z0-9 é_]{0,12}\"",
            "\"[a-z]{0,4}\\\\[n\"\\\\/][a-z]{0,4}\"",
            "\"[a-z]{0,4}\\\\u00e9\"",
            Just("\"tab\there\"".to_owned()),
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just("[1,2]".to_owned()),
            Just("{\"a\":1}".to_owned()),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("broadcaster_id"),
            Just("sent_at"),
            Just("text"),
            Just("user_id"),
            Just("login"),
            Just("channel"),
            Just("extra"),
        ]
        .prop_map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]
        #[test]
        fn the_fast_path_reads_exactly_what_serde_reads(
            fields in (
                prop_oneof![3 => "[1-9][0-9]{0,10}".boxed(), 3 => "\"[0-9]{1,12}\"".boxed(), 1 => value().boxed()],
                prop_oneof![3 => "-?[1-9][0-9]{0,12}".boxed(), 1 => value().boxed()],
                prop_oneof![3 => "\"[a-zA-Z0-9 é_]{0,12}\"".boxed(), 1 => value().boxed()],
                proptest::collection::vec((key(), value()), 0..5),
            )
                .prop_flat_map(|(id, at, text, extra)| {
                    let mut fields = vec![("broadcaster_id".to_owned(), id), ("sent_at".to_owned(), at), ("text".to_owned(), text)];
                    fields.extend(extra);
                    Just(fields).prop_shuffle()
                }),
            spaced in any::<bool>(),
            trailer in prop_oneof![Just(""), Just("\n"), Just("\r\n"), Just(" x"), Just("}")],
        ) {
            let gap = if spaced { " " } else { "" };
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\"{gap}:{gap}{v}")).collect();
            let line = format!("{{{gap}{}{gap}}}{trailer}", body.join(&format!(",{gap}")));
            if let Some(fast) = scan(line.as_bytes()) {
                prop_assert_eq!(Ok(fast), with_serde(line.as_bytes()), "{}", line);
            }
        }

        #[test]
        fn well_formed_plain_lines_are_all_fast(
            id in 0u64..u64::MAX, at in -1_000_000_000_000i64..4_000_000_000_000, user in 1u64..u64::MAX,
            text in "[a-zA-Z0-9 !?é]{0,40}",
        ) {
            let line = format!(r#"{{"broadcaster_id":"{id}","sent_at":{at},"user_id":{user},"text":"{text}"}}"#);
            let fast = scan(line.as_bytes());
            prop_assert!(fast.is_some(), "{}", line);
            prop_assert_eq!(Ok(fast.unwrap()), with_serde(line.as_bytes()));
        }
    }
}
