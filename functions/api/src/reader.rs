//! The port the handlers read through: clips and streamers, whatever stores them. PostgreSQL in
//! AWS and `highlights serve` (`crate::postgres`); SQLite in `highlights dev`
//! (`highlights-embedded`). Validation happens before ([`crate::query`]); a reader only answers
//! validated queries and never builds SQL from client text.

use crate::Streamer;
use crate::clip::Clip;
use crate::query::ClipQuery;

/// A store failure; the API answers 503 and logs it, without showing it to clients.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

impl ReadError {
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// One page's rows: up to `limit + 1` clips (the extra one says another page follows), each with
/// its keyset position `(detected_at in microseconds, id)`, and the total matching the filters
/// (counted up to [`crate::TOTAL_COUNT_CAP`] + 1).
pub struct ClipRows {
    pub clips: Vec<(Clip, (i64, i64))>,
    pub total: i64,
}

#[async_trait::async_trait]
pub trait ClipReader: Send + Sync {
    /// Clips matching `query`, newest `detected_at` first (ties: newest id first), strictly
    /// after `position` when given, skipping `query.offset`.
    async fn page(&self, query: &ClipQuery, position: Option<(i64, i64)>) -> Result<ClipRows, ReadError>;
    /// One clip by its `clip_id`.
    async fn clip(&self, clip_id: &str) -> Result<Option<Clip>, ReadError>;
    /// Known channels with a login, by login, at most 1000.
    async fn streamers(&self) -> Result<Vec<Streamer>, ReadError>;
    /// Whether the store answers.
    async fn ping(&self) -> bool;
}
