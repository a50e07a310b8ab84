//! The I/O edges of Twitch Highlights: AWS services, PostgreSQL, resource names and the local
//! stack's environment.
//!
//! Entry points (the `highlights` CLI, the Lambda functions, the ingester) build clients here
//! once and hand them to handlers. Domain logic does not belong here: it lives in
//! `highlights-core`, which this crate only feeds.
//!
//! Features add the adapters of one service each (`dynamodb`, `kinesis`, `secrets`, `sqs`, or
//! `aws` for all of them; `postgres`; `twitch`; `http`; `cli` for clap flags; Cargo.toml says
//! what each holds); without them the crate has the ports, item layouts and the adapters that
//! need no cloud. A Lambda asks only for what it talks to.

#[cfg(feature = "http")]
pub mod announce;
#[cfg(feature = "sdk")]
pub mod aws;
pub mod channel_settings;
pub mod clips;
pub mod detector_state;
#[cfg(feature = "dynamodb")]
mod dynamo;
pub mod highlights;
pub mod kinesis_out;
pub mod lambda_events;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "aws")]
pub mod provision;
pub mod resources;
#[cfg(feature = "postgres")]
pub mod sample_clips;
pub mod settings;
pub mod stack_env;
pub mod streamers;
pub mod telemetry;
pub mod tls;
#[cfg(feature = "twitch")]
pub mod tokens;
pub mod twitch;
#[cfg(feature = "twitch")]
pub mod twitch_http;
#[cfg(feature = "twitch")]
pub mod twitch_streams;
