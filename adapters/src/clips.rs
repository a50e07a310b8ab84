//! The `clips` table in PostgreSQL, written by the clipper.
//!
//! A clip row is inserted as soon as Twitch returned its id (URLs derived from the id). One row
//! per highlight: the row is keyed by the highlight (`broadcaster_id`, `detected_at`) as well as
//! by `clip_id`, and the insert is an upsert on the highlight that answers the clip id the row
//! holds, so a retried highlight never writes a second row, and a second Twitch clip for the same
//! highlight (which the clipper works never to make) would be noticed rather than listed.
//! Confirming (Get Clips found it) fills in thumbnail, duration, VOD offset and title.

use std::future::Future;
use std::sync::Mutex;

use highlights_core::{BroadcasterId, Detection};

use crate::twitch::ClipInfo;

#[cfg(feature = "postgres")]
pub use crate::postgres::clips::PgClips;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("clips database unavailable: {0}")]
pub struct ClipStoreError(pub String);

/// The port the clipper uses.
pub trait ClipStore: Send + Sync {
    /// Inserts the clip of `detection` unless the highlight already has a row; returns the clip
    /// id the highlight's row holds (`clip_id`, or the one stored before).
    fn insert(
        &self,
        clip_id: &str,
        detection: &Detection,
    ) -> impl Future<Output = Result<String, ClipStoreError>> + Send;
    /// The clip id stored for `detection`'s highlight, if any.
    fn clip_of(
        &self,
        detection: &Detection,
    ) -> impl Future<Output = Result<Option<String>, ClipStoreError>> + Send;
    /// Fills in what Get Clips reported and marks the clip confirmed.
    /// Returns the highlight the clip belongs to (broadcaster, key second), when the row exists.
    fn confirm(
        &self,
        info: &ClipInfo,
    ) -> impl Future<Output = Result<Option<HighlightKey>, ClipStoreError>> + Send;
    /// Twitch answered 403: remember that this channel does not allow our clips.
    fn mark_clipping_restricted(
        &self,
        broadcaster_id: BroadcasterId,
    ) -> impl Future<Output = Result<(), ClipStoreError>> + Send;
    /// Ids of unconfirmed clips whose next check is due, longest due first (each clip has its own
    /// back-off, see [`ClipStore::not_published_yet`]). Clips made more than a day ago and still
    /// unconfirmed are marked unpublished first: kept, never asked about again, not listed.
    fn unconfirmed(&self, limit: u32) -> impl Future<Output = Result<Vec<String>, ClipStoreError>> + Send;
    /// Get Clips did not find `clip_id` yet: ask again later, each time twice as late (10 min
    /// doubling up to 4 h).
    fn not_published_yet(&self, clip_id: &str) -> impl Future<Output = Result<(), ClipStoreError>> + Send;
}

impl<T: ClipStore> ClipStore for std::sync::Arc<T> {
    fn insert(
        &self,
        clip_id: &str,
        detection: &Detection,
    ) -> impl Future<Output = Result<String, ClipStoreError>> + Send {
        T::insert(self, clip_id, detection)
    }
    fn clip_of(
        &self,
        detection: &Detection,
    ) -> impl Future<Output = Result<Option<String>, ClipStoreError>> + Send {
        T::clip_of(self, detection)
    }
    fn confirm(
        &self,
        info: &ClipInfo,
    ) -> impl Future<Output = Result<Option<HighlightKey>, ClipStoreError>> + Send {
        T::confirm(self, info)
    }
    fn mark_clipping_restricted(
        &self,
        broadcaster_id: BroadcasterId,
    ) -> impl Future<Output = Result<(), ClipStoreError>> + Send {
        T::mark_clipping_restricted(self, broadcaster_id)
    }
    fn unconfirmed(&self, limit: u32) -> impl Future<Output = Result<Vec<String>, ClipStoreError>> + Send {
        T::unconfirmed(self, limit)
    }
    fn not_published_yet(&self, clip_id: &str) -> impl Future<Output = Result<(), ClipStoreError>> + Send {
        T::not_published_yet(self, clip_id)
    }
}

/// Which highlight a clip row (or a highlight item's progress) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HighlightKey {
    pub broadcaster_id: BroadcasterId,
    /// The detection's key second (`detected_at`).
    pub peak_second: i64,
}

impl HighlightKey {
    pub fn of(detection: &Detection) -> Self {
        Self { broadcaster_id: detection.broadcaster_id, peak_second: detection.peak_second }
    }
}

/// The URLs of a clip follow from its id.
pub fn clip_urls(clip_id: &str) -> (String, String) {
    (format!("https://clips.twitch.tv/{clip_id}"), format!("https://clips.twitch.tv/embed?clip={clip_id}"))
}

/// In-memory [`ClipStore`] for unit tests; can be switched "down".
#[derive(Debug, Default)]
pub struct MemoryClips {
    pub rows: Mutex<Vec<(String, Detection, bool)>>,
    pub restricted: Mutex<Vec<BroadcasterId>>,
    pub down: std::sync::atomic::AtomicBool,
}

impl MemoryClips {
    fn check(&self) -> Result<(), ClipStoreError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ClipStoreError("injected outage".into()));
        }
        Ok(())
    }
}

impl ClipStore for MemoryClips {
    async fn insert(&self, clip_id: &str, detection: &Detection) -> Result<String, ClipStoreError> {
        self.check()?;
        let mut rows = self.rows.lock().expect("not poisoned");
        let same_highlight = |d: &Detection| {
            d.broadcaster_id == detection.broadcaster_id && d.peak_second == detection.peak_second
        };
        if let Some((stored, _, _)) = rows.iter().find(|(_, d, _)| same_highlight(d)) {
            return Ok(stored.clone());
        }
        if rows.iter().any(|(id, _, _)| id == clip_id) {
            return Err(ClipStoreError(format!("clip {clip_id} already belongs to another highlight")));
        }
        rows.push((clip_id.to_owned(), *detection, false));
        Ok(clip_id.to_owned())
    }

    async fn clip_of(&self, detection: &Detection) -> Result<Option<String>, ClipStoreError> {
        self.check()?;
        let rows = self.rows.lock().expect("not poisoned");
        Ok(rows
            .iter()
            .find(|(_, d, _)| {
                d.broadcaster_id == detection.broadcaster_id && d.peak_second == detection.peak_second
            })
            .map(|(id, _, _)| id.clone()))
    }

    async fn confirm(&self, info: &ClipInfo) -> Result<Option<HighlightKey>, ClipStoreError> {
        self.check()?;
        let mut key = None;
        for row in self.rows.lock().expect("not poisoned").iter_mut().filter(|(id, _, _)| *id == info.id) {
            row.2 = true;
            key = Some(HighlightKey { broadcaster_id: row.1.broadcaster_id, peak_second: row.1.peak_second });
        }
        Ok(key)
    }

    async fn mark_clipping_restricted(&self, broadcaster_id: BroadcasterId) -> Result<(), ClipStoreError> {
        self.check()?;
        self.restricted.lock().expect("not poisoned").push(broadcaster_id);
        Ok(())
    }

    async fn not_published_yet(&self, clip_id: &str) -> Result<(), ClipStoreError> {
        self.check()?;
        // Asked about last, as a later next check would order it in Postgres.
        let mut rows = self.rows.lock().expect("not poisoned");
        if let Some(at) = rows.iter().position(|(id, _, _)| id == clip_id) {
            let row = rows.remove(at);
            rows.push(row);
        }
        Ok(())
    }

    async fn unconfirmed(&self, limit: u32) -> Result<Vec<String>, ClipStoreError> {
        self.check()?;
        let rows = self.rows.lock().expect("not poisoned");
        Ok(rows
            .iter()
            .filter(|(_, _, confirmed)| !confirmed)
            .take(limit as usize)
            .map(|(id, _, _)| id.clone())
            .collect())
    }
}
