//! Chat messages and the per-broadcaster batches that the ingester writes to Kinesis.

use serde::{Deserialize, Serialize};

/// A Twitch user id (`room-id` / `user-id` in IRC tags, `broadcaster_id` in Helix).
///
/// Twitch sends ids as decimal strings; they are numeric, and a `u64` keeps hashing and the wire
/// format cheap. Render with `to_string()` wherever Twitch or the API expects a string.
pub type BroadcasterId = u64;

/// One chat message as the detector and the wire format see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Twitch's message id (a UUID in the `id` tag); may be empty when the source has none.
    pub id: String,
    /// The sender's Twitch user id (0 when unknown).
    pub user_id: u64,
    /// The sender's login (lower-case name).
    pub login: String,
    /// When Twitch received the message: `tmi-sent-ts`, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The message text.
    pub text: String,
    /// How many emotes the message contains.
    pub emote_count: u32,
}

impl ChatMessage {
    /// A message with only the fields the detector needs; handy for tests and benchmarks.
    pub fn new(sent_at_ms: i64, text: impl Into<String>) -> Self {
        Self {
            id: String::new(),
            user_id: 0,
            login: String::new(),
            sent_at_ms,
            text: text.into(),
            emote_count: 0,
        }
    }
}

/// The content of one `chat-messages` record: chat of one broadcaster, plus a watermark.
///
/// The watermark says "event time has reached this instant for this broadcaster"; the ingester
/// sends a batch at least once a second while it is joined, even an empty one, so the detector's
/// windows close when chat is quiet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChatBatch {
    pub broadcaster_id: BroadcasterId,
    /// Event time in Unix milliseconds that this batch vouches for.
    pub watermark_ms: i64,
    /// Messages in the order the ingester received them.
    pub messages: Vec<ChatMessage>,
}

/// A change of a channel's live state, as the ingester writes it to the `stream-lifecycle`
/// stream (JSON, one event per record, partition key = broadcaster id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum LifecycleEvent {
    #[serde(rename = "stream.online")]
    Online(StreamOnline),
    #[serde(rename = "stream.offline")]
    Offline(StreamOffline),
}

impl LifecycleEvent {
    pub fn broadcaster_id(&self) -> BroadcasterId {
        match self {
            Self::Online(online) => online.broadcaster_id,
            Self::Offline(offline) => offline.broadcaster_id,
        }
    }

    /// When the ingester observed the change (Unix ms): orders events of one broadcaster.
    pub fn observed_at_ms(&self) -> i64 {
        match self {
            Self::Online(online) => online.observed_at_ms,
            Self::Offline(offline) => offline.observed_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOnline {
    #[serde(with = "id_as_string")]
    pub broadcaster_id: BroadcasterId,
    pub broadcaster_login: String,
    #[serde(default)]
    pub broadcaster_name: String,
    /// Twitch's id of this broadcast; a new id means a new stream.
    pub stream_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub game_id: String,
    #[serde(default)]
    pub game_name: String,
    /// When the stream started (Unix ms).
    pub started_at_ms: i64,
    #[serde(default)]
    pub viewer_count: u64,
    pub observed_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOffline {
    #[serde(with = "id_as_string")]
    pub broadcaster_id: BroadcasterId,
    #[serde(default)]
    pub broadcaster_login: String,
    pub observed_at_ms: i64,
}

/// Twitch ids are strings on the outside (JSON, APIs) and numbers inside; accepts both.
pub mod id_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Id<'a> {
            Number(u64),
            Text(std::borrow::Cow<'a, str>),
        }
        match Id::deserialize(deserializer)? {
            Id::Number(id) => Ok(id),
            Id::Text(text) => {
                text.parse().map_err(|_| serde::de::Error::custom(format!("{text:?} is not a Twitch id")))
            }
        }
    }
}

/// Who sent a message, as the detector counts people: the Twitch user id when known, else a hash
/// of the login (some exports carry only logins), else [`UNKNOWN_CHATTER`].
pub type ChatterKey = u64;

/// The chatter of a message whose source carries neither a user id nor a login.
pub const UNKNOWN_CHATTER: ChatterKey = 0;

/// The [`ChatterKey`] of a message. Logins hash into the upper half of the key space, so a login
/// never collides with a numeric user id (Twitch's ids are far below 2^63).
pub fn chatter_key(user_id: u64, login: &str) -> ChatterKey {
    if user_id != 0 {
        return user_id;
    }
    if login.is_empty() {
        return UNKNOWN_CHATTER;
    }
    // FNV-1a: fixed forever, so a key never changes between builds (saved sketches stay valid).
    let hash = login.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(0x0100_0000_01b3)
    });
    hash | 1 << 63
}

impl ChatMessage {
    /// The sender as the detector counts people.
    pub fn chatter(&self) -> ChatterKey {
        chatter_key(self.user_id, &self.login)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatter_keys_prefer_ids_then_logins() {
        assert_eq!(chatter_key(42, "someone"), 42);
        assert_eq!(chatter_key(0, ""), UNKNOWN_CHATTER);
        assert_eq!(chatter_key(0, "Someone"), chatter_key(0, "someone"));
        assert_ne!(chatter_key(0, "someone"), chatter_key(0, "someone_else"));
        assert!(chatter_key(0, "a") >= 1 << 63);
    }
}
