//! The chaos suite (`scripts/chaos`, and its short variant in `scripts/test`): the whole local
//! pipeline as separate processes — fake Twitch IRC → `ingest-fargate` → Kinesis in the AWS
//! emulator → `highlights local run` (detector, lifecycle, clipper) → fake Helix → PostgreSQL →
//! `highlights serve` — broken on purpose, one row of figures per fault; and the load row
//! ([`load`]), which drives `highlights dev` (in-process stream and state) with many channels.
//!
//! Test code: it drives the product's binaries from outside and links none of them, except the
//! detector handler it runs as the fault-free reference.

pub mod chat;
pub mod load;
pub mod observe;
pub mod report;
pub mod scenario;
pub mod world;
