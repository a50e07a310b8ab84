//! The `streamers` table in PostgreSQL, kept up to date from lifecycle events.
//!
//! Events of one broadcaster may arrive twice or out of order: the row remembers the observation
//! time of the newest event applied (`last_event_at`) and ignores anything not newer. A new
//! stream going online resets the broadcaster's detector state (so its baseline warms up afresh)
//! before the row is committed: if the reset fails the row is not updated and the event is
//! retried; if the commit fails after the reset, the retry resets again, which is harmless.

use std::future::Future;
use std::sync::Mutex;

use deadpool_postgres::Pool;
use highlights_core::{BroadcasterId, LifecycleEvent};

use crate::detector_state::StateStore;

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// An event at least as old as the newest one applied: ignored.
    Stale,
    /// The row was updated; `new_stream` when a stream we had not seen went online.
    Updated { new_stream: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("streamers database unavailable: {0}")]
    Database(String),
    #[error("detector state reset failed: {0}")]
    Reset(String),
}

/// The port the lifecycle handler uses.
pub trait StreamerDirectory: Send + Sync {
    fn apply<S: StateStore>(
        &self,
        event: &LifecycleEvent,
        states: &S,
    ) -> impl Future<Output = Result<Applied, DirectoryError>> + Send;
}

/// The PostgreSQL adapter.
#[derive(Clone)]
pub struct PgStreamers {
    pool: Pool,
}

impl PgStreamers {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn db_error(error: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Database(error.to_string())
}

impl PgStreamers {
    /// Logins of the channels marked `monitored` (the ingester joins them while they are live).
    pub async fn monitored_logins(&self) -> Result<Vec<String>, DirectoryError> {
        let client = self.pool.get().await.map_err(db_error)?;
        let rows = client
            .query("SELECT lower(login) FROM streamers WHERE monitored AND login <> '' ORDER BY 1", &[])
            .await
            .map_err(db_error)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

impl StreamerDirectory for PgStreamers {
    async fn apply<S: StateStore>(
        &self,
        event: &LifecycleEvent,
        states: &S,
    ) -> Result<Applied, DirectoryError> {
        let mut client = self.pool.get().await.map_err(db_error)?;
        let transaction = client.transaction().await.map_err(db_error)?;
        let id = event.broadcaster_id().to_string();
        let observed_at = event.observed_at_ms();
        let current = transaction
            .query_opt(
                "SELECT stream_id, (extract(epoch FROM last_event_at) * 1000)::bigint \
                 FROM streamers WHERE broadcaster_id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(db_error)?;
        let (current_stream, last_event_ms): (Option<String>, Option<i64>) =
            current.map_or((None, None), |row| (row.get(0), row.get(1)));
        if last_event_ms.is_some_and(|last| last >= observed_at) {
            return Ok(Applied::Stale);
        }
        let new_stream = match event {
            LifecycleEvent::Online(online) => {
                let new_stream = current_stream.as_deref() != Some(online.stream_id.as_str());
                if new_stream {
                    states
                        .reset(online.broadcaster_id)
                        .await
                        .map_err(|e| DirectoryError::Reset(e.to_string()))?;
                }
                transaction
                    .execute(
                        "INSERT INTO streamers (broadcaster_id, login, display_name, is_live, stream_id, title, \
                             game_id, game_name, started_at, last_seen_at, last_event_at) \
                         VALUES ($1, $2, NULLIF($3, ''), TRUE, $4, $5, NULLIF($6, ''), NULLIF($7, ''), \
                             to_timestamp($8::bigint / 1000.0), to_timestamp($9::bigint / 1000.0), \
                             to_timestamp($9::bigint / 1000.0)) \
                         ON CONFLICT (broadcaster_id) DO UPDATE SET \
                             login = EXCLUDED.login, \
                             display_name = COALESCE(EXCLUDED.display_name, streamers.display_name), \
                             is_live = TRUE, stream_id = EXCLUDED.stream_id, title = EXCLUDED.title, \
                             game_id = EXCLUDED.game_id, game_name = EXCLUDED.game_name, \
                             started_at = EXCLUDED.started_at, last_seen_at = EXCLUDED.last_seen_at, \
                             last_event_at = EXCLUDED.last_event_at",
                        &[
                            &id,
                            &online.broadcaster_login,
                            &online.broadcaster_name,
                            &online.stream_id,
                            &online.title,
                            &online.game_id,
                            &online.game_name,
                            &online.started_at_ms,
                            &observed_at,
                        ],
                    )
                    .await
                    .map_err(db_error)?;
                new_stream
            }
            LifecycleEvent::Offline(offline) => {
                transaction
                    .execute(
                        "INSERT INTO streamers (broadcaster_id, login, is_live, last_seen_at, last_event_at) \
                         VALUES ($1, $2, FALSE, to_timestamp($3::bigint / 1000.0), to_timestamp($3::bigint / 1000.0)) \
                         ON CONFLICT (broadcaster_id) DO UPDATE SET \
                             login = COALESCE(NULLIF(EXCLUDED.login, ''), streamers.login), \
                             is_live = FALSE, last_seen_at = EXCLUDED.last_seen_at, \
                             last_event_at = EXCLUDED.last_event_at",
                        &[&id, &offline.broadcaster_login, &observed_at],
                    )
                    .await
                    .map_err(db_error)?;
                false
            }
        };
        transaction.commit().await.map_err(db_error)?;
        Ok(Applied::Updated { new_stream })
    }
}

/// `(current stream id, last event ms, is live)` of one broadcaster in [`MemoryStreamers`].
pub type MemoryRow = (Option<String>, i64, bool);

/// In-memory [`StreamerDirectory`] for unit tests: the same staleness and new-stream rules.
#[derive(Debug, Default)]
pub struct MemoryStreamers {
    rows: Mutex<std::collections::HashMap<BroadcasterId, MemoryRow>>,
}

impl MemoryStreamers {
    pub fn get(&self, id: BroadcasterId) -> Option<MemoryRow> {
        self.rows.lock().expect("not poisoned").get(&id).cloned()
    }
}

impl StreamerDirectory for MemoryStreamers {
    async fn apply<S: StateStore>(
        &self,
        event: &LifecycleEvent,
        states: &S,
    ) -> Result<Applied, DirectoryError> {
        let id = event.broadcaster_id();
        let current = self.get(id);
        if current.as_ref().is_some_and(|(_, last, _)| *last >= event.observed_at_ms()) {
            return Ok(Applied::Stale);
        }
        let previous_stream = current.and_then(|(stream, _, _)| stream);
        let (stream, live, new_stream) = match event {
            LifecycleEvent::Online(online) => {
                let new_stream = previous_stream.as_deref() != Some(online.stream_id.as_str());
                if new_stream {
                    states.reset(id).await.map_err(|e| DirectoryError::Reset(e.to_string()))?;
                }
                (Some(online.stream_id.clone()), true, new_stream)
            }
            LifecycleEvent::Offline(_) => (previous_stream, false, false),
        };
        self.rows.lock().expect("not poisoned").insert(id, (stream, event.observed_at_ms(), live));
        Ok(Applied::Updated { new_stream })
    }
}
