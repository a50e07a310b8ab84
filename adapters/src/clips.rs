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

use deadpool_postgres::Pool;
use highlights_core::{BroadcasterId, Detection};

use crate::twitch::ClipInfo;

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

/// A curve as the `clips.curve` column holds it (`NULL` when empty).
fn curve_column(curve: &highlights_core::ChatCurve) -> Option<Vec<i32>> {
    (!curve.is_empty())
        .then(|| curve.counts().iter().map(|&c| i32::try_from(c).unwrap_or(i32::MAX)).collect())
}

/// Top phrases as the `clips.phrases` and `clips.phrase_counts` columns hold them.
fn phrase_columns(phrases: &highlights_core::TopPhrases) -> (Vec<&str>, Vec<i32>) {
    phrases.entries().map(|e| (e.phrase.as_str(), i32::try_from(e.count).unwrap_or(i32::MAX))).unzip()
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

#[derive(Clone)]
pub struct PgClips {
    pool: Pool,
}

impl PgClips {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn unavailable(error: impl std::fmt::Display) -> ClipStoreError {
    ClipStoreError(error.to_string())
}

impl ClipStore for PgClips {
    async fn insert(&self, clip_id: &str, detection: &Detection) -> Result<String, ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let (url, embed_url) = clip_urls(clip_id);
        let message_count = i32::try_from(detection.message_count).unwrap_or(i32::MAX);
        let (phrases, phrase_counts) = phrase_columns(&detection.phrases);
        // The no-op update makes RETURNING answer the row that was already there.
        let row = client
            .query_one(
                "INSERT INTO clips (clip_id, broadcaster_id, url, embed_url, detected_at, fired_at, intensity, \
                     message_count, baseline_mean, baseline_std, curve, phrases, phrase_counts) \
                 VALUES ($1, $2, $3, $4, to_timestamp($5::bigint), to_timestamp($6::bigint), $7, $8, $9, $10, $11, \
                     $12, $13) \
                 ON CONFLICT (broadcaster_id, detected_at) DO UPDATE SET clip_id = clips.clip_id \
                 RETURNING clip_id",
                &[
                    &clip_id,
                    &detection.broadcaster_id.to_string(),
                    &url,
                    &embed_url,
                    &detection.peak_second,
                    &detection.fired_second,
                    &detection.intensity,
                    &message_count,
                    &detection.baseline_mean,
                    &detection.baseline_std,
                    &curve_column(&detection.curve),
                    &phrases,
                    &phrase_counts,
                ],
            )
            .await
            .map_err(unavailable)?;
        let stored: String = row.get(0);
        if stored != clip_id {
            tracing::error!(
                broadcaster_id = detection.broadcaster_id,
                detected_at = detection.peak_second,
                %stored,
                second = %clip_id,
                "this highlight already has a clip: a second Twitch clip was made for it and is not listed"
            );
        }
        Ok(stored)
    }

    async fn clip_of(&self, detection: &Detection) -> Result<Option<String>, ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "SELECT clip_id FROM clips WHERE broadcaster_id = $1 AND detected_at = to_timestamp($2::bigint)",
                &[&detection.broadcaster_id.to_string(), &detection.peak_second],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn confirm(&self, info: &ClipInfo) -> Result<Option<HighlightKey>, ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let row = client
            .query_opt(
                "UPDATE clips SET url = $2, embed_url = $3, thumbnail_url = NULLIF($4, ''), title = NULLIF($5, ''), \
                     duration = $6, vod_offset = $7, view_count = $8, video_id = NULLIF($9, ''), confirmed = TRUE \
                 WHERE clip_id = $1 RETURNING broadcaster_id, extract(epoch FROM detected_at)::bigint",
                &[
                    &info.id,
                    &info.url,
                    &info.embed_url,
                    &info.thumbnail_url,
                    &info.title,
                    &(info.duration as f32),
                    &info.vod_offset.and_then(|v| i32::try_from(v).ok()),
                    &i32::try_from(info.view_count).ok(),
                    &info.video_id,
                ],
            )
            .await
            .map_err(unavailable)?;
        Ok(row.and_then(|row| {
            Some(HighlightKey {
                broadcaster_id: row.get::<_, String>(0).parse().ok()?,
                peak_second: row.get(1),
            })
        }))
    }

    async fn mark_clipping_restricted(&self, broadcaster_id: BroadcasterId) -> Result<(), ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        client
            .execute(
                "INSERT INTO streamers (broadcaster_id, login, allows_clipping) VALUES ($1, '', FALSE) \
                 ON CONFLICT (broadcaster_id) DO UPDATE SET allows_clipping = FALSE",
                &[&broadcaster_id.to_string()],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn unconfirmed(&self, limit: u32) -> Result<Vec<String>, ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        let given_up = client
            .execute(
                "UPDATE clips SET unpublished = TRUE \
                 WHERE NOT confirmed AND NOT unpublished AND created_at < now() - interval '1 day'",
                &[],
            )
            .await
            .map_err(unavailable)?;
        if given_up > 0 {
            tracing::warn!(
                clips = given_up,
                "clips Twitch never published within a day: marked unpublished, not listed"
            );
        }
        let rows = client
            .query(
                "SELECT clip_id FROM clips WHERE NOT confirmed AND NOT unpublished AND next_confirm_at <= now() \
                 ORDER BY next_confirm_at, id LIMIT $1",
                &[&i64::from(limit)],
            )
            .await
            .map_err(unavailable)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn not_published_yet(&self, clip_id: &str) -> Result<(), ClipStoreError> {
        let client = self.pool.get().await.map_err(unavailable)?;
        client
            .execute(
                "UPDATE clips SET confirm_attempts = confirm_attempts + 1, \
                     next_confirm_at = now() + LEAST(interval '10 minutes' * power(2, LEAST(confirm_attempts, 10)), \
                                                     interval '4 hours') \
                 WHERE clip_id = $1",
                &[&clip_id],
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }
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
