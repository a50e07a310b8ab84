//! [`PgStreamers`]: the `streamers` table behind [`StreamerDirectory`] (see `crate::streamers`
//! for how events are applied).

use deadpool_postgres::Pool;
use highlights_core::LifecycleEvent;

use crate::detector_state::StateStore;
use crate::streamers::{Applied, DirectoryError, StreamerDirectory};

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
