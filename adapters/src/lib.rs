//! The I/O edges of Twitch Highlights: AWS services, PostgreSQL, resource names and the local
//! stack's environment.
//!
//! Entry points (the `highlights` CLI, the Lambda functions, the ingester) build clients here
//! once and hand them to handlers. Domain logic does not belong here: it lives in
//! `highlights-core`, which this crate only feeds.
//!
//! Feature `aws` adds the AWS SDK adapters and `postgres` the PostgreSQL ones; without them
//! (what `highlights dev` builds) the crate has the ports, item layouts and the adapters that
//! need no cloud.

pub mod announce;
#[cfg(feature = "aws")]
pub mod aws;
pub mod channel_settings;
pub mod clips;
pub mod detector_state;
#[cfg(feature = "aws")]
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
pub mod tokens;
pub mod twitch;
pub mod twitch_http;
pub mod twitch_streams;
