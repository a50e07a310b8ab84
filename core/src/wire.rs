//! Wire format v1 of `chat-messages` Kinesis records: one record = one [`ChatBatch`].
//!
//! Compact binary (varints, UUIDs as 16 bytes, timestamps as deltas) so a channel at 10,000
//! messages/s fits one shard. The byte layout is specified in `docs/wire-format.md`; keep the two
//! in step. Decoding validates everything and returns a typed [`DecodeError`]; it never panics,
//! whatever the input bytes.

use crate::model::{ChatBatch, ChatMessage};
use crate::varint::{self, Reader, VarintError};

/// The first byte of every v1 record.
pub const VERSION: u8 = 1;

/// What a record on a stream that carries both chat and lifecycle events (the starter profile's
/// one stream) holds, told by its first byte: a chat batch starts with [`VERSION`], a lifecycle
/// event (JSON, `docs/wire-format.md`) with `{`. Each consumer skips the other's kind without
/// counting it as malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    ChatBatch,
    LifecycleEvent,
    /// Neither: malformed for whoever reads it.
    Unknown,
}

impl RecordKind {
    pub fn of(data: &[u8]) -> Self {
        match data.first() {
            Some(&VERSION) => Self::ChatBatch,
            Some(b'{') => Self::LifecycleEvent,
            _ => Self::Unknown,
        }
    }
}

/// Kinesis accepts at most 1 MiB of data per record; a batch must encode below this.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The smallest possible encoded message (six one-byte fields), used to bound `message_count`
/// against the bytes actually present before allocating.
const MIN_MESSAGE_BYTES: usize = 6;

const ID_EMPTY: u8 = 0;
const ID_UUID: u8 = 1;
const ID_TEXT: u8 = 2;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error("unsupported wire format version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown flags {0:#04x} in a version 1 record")]
    UnknownFlags(u8),
    #[error("record ends inside {0}")]
    Truncated(&'static str),
    #[error("malformed varint in {0}")]
    BadVarint(&'static str),
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    #[error("unknown message id kind {0}")]
    UnknownIdKind(u8),
    #[error("{0} is out of range")]
    OutOfRange(&'static str),
    #[error("record declares {declared} messages but has room for at most {possible}")]
    TooManyMessages { declared: u64, possible: usize },
    #[error("{0} bytes left over after the last message")]
    TrailingBytes(usize),
}

/// Encodes `batch` as a v1 record, appending to `out`.
pub fn encode_into(batch: &ChatBatch, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(0); // flags: none defined in v1
    varint::put_u64(out, batch.broadcaster_id);
    varint::put_i64(out, batch.watermark_ms);
    varint::put_u64(out, batch.messages.len() as u64);
    let mut previous_ms = batch.watermark_ms;
    for message in &batch.messages {
        put_id(out, &message.id);
        varint::put_u64(out, message.user_id);
        put_str(out, &message.login);
        varint::put_i64(out, message.sent_at_ms.wrapping_sub(previous_ms));
        previous_ms = message.sent_at_ms;
        varint::put_u64(out, u64::from(message.emote_count));
        put_str(out, &message.text);
    }
}

/// Encodes `batch` as a v1 record.
pub fn encode(batch: &ChatBatch) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + batch.messages.iter().map(message_len_upper_bound).sum::<usize>());
    encode_into(batch, &mut out);
    out
}

/// An upper bound of the bytes `message` adds to a record, for size-based flushing.
pub fn message_len_upper_bound(message: &ChatMessage) -> usize {
    // id kind + id, user id, login, timestamp delta (at most 10), emote count, text
    1 + 1
        + message.id.len().max(16)
        + varint::len_u64(message.user_id)
        + varint::len_u64(message.login.len() as u64)
        + message.login.len()
        + 10
        + varint::len_u64(u64::from(message.emote_count))
        + varint::len_u64(message.text.len() as u64)
        + message.text.len()
}

/// Decodes a v1 record.
pub fn decode(bytes: &[u8]) -> Result<ChatBatch, DecodeError> {
    let mut reader = Reader::new(bytes);
    let version = reader.u8().ok_or(DecodeError::Empty)?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let flags = reader.u8().ok_or(DecodeError::Truncated("flags"))?;
    if flags != 0 {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let broadcaster_id = read_u64(&mut reader, "broadcaster id")?;
    let watermark_ms = reader.i64().map_err(|e| varint_error(e, "watermark"))?;
    let declared = read_u64(&mut reader, "message count")?;
    let possible = reader.remaining() / MIN_MESSAGE_BYTES;
    if declared > possible as u64 {
        return Err(DecodeError::TooManyMessages { declared, possible });
    }
    let mut messages = Vec::with_capacity(declared as usize);
    let mut previous_ms = watermark_ms;
    for _ in 0..declared {
        let id = read_id(&mut reader)?;
        let user_id = read_u64(&mut reader, "user id")?;
        let login = read_str(&mut reader, "login")?;
        let delta = reader.i64().map_err(|e| varint_error(e, "sent_at"))?;
        // Wrapping, like the encoder's subtraction, so every i64 round-trips.
        let sent_at_ms = previous_ms.wrapping_add(delta);
        previous_ms = sent_at_ms;
        let emote_count = u32::try_from(read_u64(&mut reader, "emote count")?)
            .map_err(|_| DecodeError::OutOfRange("emote count"))?;
        let text = read_str(&mut reader, "text")?;
        messages.push(ChatMessage { id, user_id, login, sent_at_ms, text, emote_count });
    }
    if reader.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(reader.remaining()));
    }
    Ok(ChatBatch { broadcaster_id, watermark_ms, messages })
}

fn varint_error(error: VarintError, what: &'static str) -> DecodeError {
    match error {
        VarintError::Truncated => DecodeError::Truncated(what),
        VarintError::TooLong => DecodeError::BadVarint(what),
    }
}

fn read_u64(reader: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    reader.u64().map_err(|e| varint_error(e, what))
}

fn read_str(reader: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let len = read_u64(reader, what)?;
    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated(what))?;
    let bytes = reader.take(len).ok_or(DecodeError::Truncated(what))?;
    std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| DecodeError::InvalidUtf8(what))
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    varint::put_u64(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn put_id(out: &mut Vec<u8>, id: &str) {
    if id.is_empty() {
        out.push(ID_EMPTY);
    } else if let Some(raw) = parse_canonical_uuid(id) {
        out.push(ID_UUID);
        out.extend_from_slice(&raw);
    } else {
        out.push(ID_TEXT);
        put_str(out, id);
    }
}

fn read_id(reader: &mut Reader<'_>) -> Result<String, DecodeError> {
    match reader.u8().ok_or(DecodeError::Truncated("message id"))? {
        ID_EMPTY => Ok(String::new()),
        ID_UUID => {
            let raw = reader.take(16).ok_or(DecodeError::Truncated("message id"))?;
            Ok(format_uuid(raw))
        }
        ID_TEXT => read_str(reader, "message id"),
        other => Err(DecodeError::UnknownIdKind(other)),
    }
}

/// Parses the lower-case hyphenated form Twitch uses (`8-4-4-4-12` hex digits). Anything else,
/// upper case included, is kept as text so that decoding gives back exactly what was encoded.
fn parse_canonical_uuid(id: &str) -> Option<[u8; 16]> {
    let bytes = id.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut raw = [0u8; 16];
    let mut nibbles = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if matches!(index, 8 | 13 | 18 | 23) {
            if byte != b'-' {
                return None;
            }
            continue;
        }
        let value = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        raw[nibbles / 2] |= value << (4 * (1 - nibbles % 2));
        nibbles += 1;
    }
    Some(raw)
}

fn format_uuid(raw: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(36);
    for (index, byte) in raw.iter().enumerate() {
        if matches!(index, 4 | 6 | 8 | 10) {
            text.push('-');
        }
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_tells_its_kind_by_its_first_byte() {
        assert_eq!(RecordKind::of(&encode(&sample())), RecordKind::ChatBatch);
        assert_eq!(RecordKind::of(br#"{"type":"stream.offline"}"#), RecordKind::LifecycleEvent);
        for other in [&b""[..], &[9, 9], b"[1]"] {
            assert_eq!(RecordKind::of(other), RecordKind::Unknown);
        }
    }

    fn sample() -> ChatBatch {
        ChatBatch {
            broadcaster_id: 194_814_599,
            watermark_ms: 1_733_092_608_357,
            messages: vec![
                ChatMessage {
                    id: "885196de-cb67-427a-baa8-82f9b0fcd05f".into(),
                    user_id: 53_862_903,
                    login: "ltrobot".into(),
                    sent_at_ms: 1_733_092_608_300,
                    text: "🔴 NOW LIVE: Just Chatting".into(),
                    emote_count: 0,
                },
                ChatMessage {
                    id: "NOT-A-UUID".into(),
                    user_id: 1,
                    login: "a".into(),
                    sent_at_ms: 1_733_092_608_100,
                    text: "KEKW KEKW".into(),
                    emote_count: 2,
                },
                ChatMessage::new(1_733_092_609_000, "!uptime"),
            ],
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let batch = sample();
        let bytes = encode(&batch);
        assert_eq!(bytes[0], VERSION);
        assert_eq!(decode(&bytes), Ok(batch));
    }

    #[test]
    fn uuid_ids_take_sixteen_bytes() {
        let batch = sample();
        let mut only_uuid = batch.clone();
        only_uuid.messages.truncate(1);
        let mut as_text = only_uuid.clone();
        as_text.messages[0].id = as_text.messages[0].id.to_uppercase();
        assert_eq!(encode(&as_text).len() - encode(&only_uuid).len(), 36 + 1 - 16);
    }

    #[test]
    fn upper_bound_is_an_upper_bound() {
        for message in sample().messages {
            let batch = ChatBatch { broadcaster_id: 1, watermark_ms: 0, messages: vec![message.clone()] };
            let header = encode(&ChatBatch { broadcaster_id: 1, watermark_ms: 0, messages: vec![] }).len();
            assert!(encode(&batch).len() - header <= message_len_upper_bound(&message));
        }
    }

    #[test]
    fn typed_errors_for_bad_records() {
        assert_eq!(decode(&[]), Err(DecodeError::Empty));
        assert_eq!(decode(&[2, 0]), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(decode(&[1, 4]), Err(DecodeError::UnknownFlags(4)));
        assert_eq!(decode(&[1]), Err(DecodeError::Truncated("flags")));
        assert_eq!(
            decode(&[1, 0, 1, 0, 100]),
            Err(DecodeError::TooManyMessages { declared: 100, possible: 0 })
        );
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
        let mut bad_kind = encode(&ChatBatch {
            broadcaster_id: 1,
            watermark_ms: 0,
            messages: vec![ChatMessage::new(0, "hi")],
        });
        bad_kind[5] = 9;
        assert_eq!(decode(&bad_kind), Err(DecodeError::UnknownIdKind(9)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes decoded");
        }
    }

    fn arb_message() -> impl Strategy<Value = ChatMessage> {
        (
            prop_oneof![
                Just(String::new()),
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                ".{0,40}"
            ],
            any::<u64>(),
            "[a-z0-9_]{0,25}",
            any::<i64>(),
            ".{0,200}",
            any::<u32>(),
        )
            .prop_map(|(id, user_id, login, sent_at_ms, text, emote_count)| ChatMessage {
                id,
                user_id,
                login,
                sent_at_ms,
                text,
                emote_count,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_batches_round_trip(
            broadcaster_id: u64,
            watermark_ms: i64,
            messages in proptest::collection::vec(arb_message(), 0..20),
        ) {
            let batch = ChatBatch { broadcaster_id, watermark_ms, messages };
            prop_assert_eq!(decode(&encode(&batch)), Ok(batch));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn mutated_records_never_panic(
            messages in proptest::collection::vec(arb_message(), 1..5),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut bytes = encode(&ChatBatch { broadcaster_id: 7, watermark_ms: 1, messages });
            for (index, value) in flips {
                let at = index.index(bytes.len());
                bytes[at] = value;
            }
            let _ = decode(&bytes);
        }
    }
}
