//! The `streamers` table in PostgreSQL, kept up to date from lifecycle events.
//!
//! Events of one broadcaster may arrive twice or out of order: the row remembers the observation
//! time of the newest event applied (`last_event_at`) and ignores anything not newer. A new
//! stream going online resets the broadcaster's detector state (so its baseline warms up afresh)
//! before the row is committed: if the reset fails the row is not updated and the event is
//! retried; if the commit fails after the reset, the retry resets again, which is harmless.

use std::future::Future;
use std::sync::Mutex;

use highlights_core::{BroadcasterId, LifecycleEvent};

use crate::detector_state::StateStore;

#[cfg(feature = "postgres")]
pub use crate::postgres::streamers::PgStreamers;

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
