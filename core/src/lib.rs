//! The domain of Twitch Highlights, with no I/O and no AWS or Twitch client types.
//!
//! Everything here is pure and deterministic: the detector is driven by event time that the
//! caller supplies, never by a clock, so the Lambda, the local runner and `highlights backtest`
//! produce identical detections for identical input, and detector state can be saved between
//! Lambda invocations and restored without changing any output.
//!
//! Modules:
//! - [`model`]: chat messages and per-broadcaster batches.
//! - [`wire`]: wire format v1 of `chat-messages` Kinesis records (see `docs/wire-format.md`).
//! - [`filter`]: the bot-command filter.
//! - [`config`]: detector settings, validated when built.
//! - [`detector`]: the two detectors (`seed`: messages per second; `v2`: people per second),
//!   event time, sliding windows, scoring, hold and cooldown.
//! - [`reaction`]: what a message's text says (reaction, plain, copypasta), for `v2`.
//! - [`title`]: clip titles from what chat said around a moment.
//! - [`irc`]: parsing of raw Twitch IRC `PRIVMSG` lines with IRCv3 tags.
//! - [`backoff`]: the one retry schedule (exponential, capped, optional jitter).
//!
//! What must not live here: network or file access, clocks, randomness, logging setup.

pub mod backoff;
pub mod clip_policy;
pub mod config;
pub mod detector;
pub mod filter;
pub mod irc;
pub mod model;
pub mod reaction;
pub mod title;
mod varint;
pub mod wire;

pub use backoff::Backoff;
pub use config::{ChannelSettings, ConfigError, DetectorConfig, DetectorMode};
pub use detector::{
    BroadcasterMap, ChannelDetector, ChatCurve, Detection, Detector, Outcome, PhraseCount, StateDecodeError,
    Tally, TopPhrases,
};
pub use model::{
    BroadcasterId, ChatBatch, ChatMessage, ChatterKey, LifecycleEvent, StreamOffline, StreamOnline,
    UNKNOWN_CHATTER, chatter_key,
};
