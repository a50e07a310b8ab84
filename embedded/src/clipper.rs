//! The clipper's ports on SQLite: [`HighlightProgress`] on the `highlights` rows (the cloud keeps
//! it on the DynamoDB highlight item) and [`ClipStore`] on the `clips` table (PostgreSQL in the
//! cloud), with the same conditions, so that `highlights dev` with Twitch credentials runs the
//! clipper's handler unchanged and keeps its one-clip-per-moment guarantee.

use highlights_adapters::clips::{ClipStore, ClipStoreError, HighlightKey, clip_urls};
use highlights_adapters::detector_state::StoreError;
use highlights_adapters::highlights::{HighlightProgress, Progress};
use highlights_adapters::twitch::ClipInfo;
use highlights_core::{BroadcasterId, Detection};
use rusqlite::OptionalExtension as _;

use crate::{Embedded, EmbeddedError};

/// Unconfirmed clips are given up (kept, not listed) a day after they were made, as in the cloud.
const GIVE_UP_AFTER_MS: i64 = 24 * 3600 * 1000;
/// The first re-check of an unconfirmed clip; it doubles each time up to [`LAST_CHECK_GAP_MS`].
const FIRST_CHECK_GAP_MS: i64 = 10 * 60 * 1000;
const LAST_CHECK_GAP_MS: i64 = 4 * 3600 * 1000;

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn clips_unavailable(error: impl std::fmt::Display) -> ClipStoreError {
    ClipStoreError(error.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Embedded {
    /// `UPDATE highlights SET {set}` on `detection`'s row where `condition` holds; `values` fill
    /// `?1..`. Returns how many rows changed (0 or 1).
    fn update_highlight(
        &self,
        highlight: HighlightKey,
        set: &str,
        condition: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<usize, StoreError> {
        let (id, peak) = (highlight.broadcaster_id as i64, highlight.peak_second);
        let mut params: Vec<&dyn rusqlite::ToSql> = values.to_vec();
        params.extend([&id as &dyn rusqlite::ToSql, &peak]);
        let n = values.len();
        let sql = format!(
            "UPDATE highlights SET {set} WHERE broadcaster_id = ?{} AND peak_second = ?{} AND ({condition})",
            n + 1,
            n + 2
        );
        self.writer().execute(&sql, params.as_slice()).map_err(unavailable)
    }

    /// The progress of every highlight in `highlights` that ended without a clip (`failed`).
    pub fn failed_highlights(
        &self,
        highlights: &[(i64, Detection)],
    ) -> Result<Vec<(i64, Detection)>, EmbeddedError> {
        let connection = self.writer();
        let mut select = connection
            .prepare_cached("SELECT status FROM highlights WHERE broadcaster_id = ?1 AND peak_second = ?2")?;
        let mut failed = Vec::new();
        for (seq, detection) in highlights {
            let status: Option<String> = select
                .query_row(rusqlite::params![detection.broadcaster_id as i64, detection.peak_second], |row| {
                    row.get(0)
                })
                .optional()?;
            if status.as_deref() == Some("failed") {
                failed.push((*seq, *detection));
            }
        }
        Ok(failed)
    }
}

impl HighlightProgress for Embedded {
    async fn progress(&self, highlight: HighlightKey) -> Result<Option<Progress>, StoreError> {
        self.writer()
            .prepare_cached(
                "SELECT status, clip_id, attempts, reason, intent_at_ms FROM highlights \
                 WHERE broadcaster_id = ?1 AND peak_second = ?2",
            )
            .and_then(|mut select| {
                select
                    .query_row(
                        rusqlite::params![highlight.broadcaster_id as i64, highlight.peak_second],
                        |row| {
                            Ok(Progress {
                                status: row.get(0)?,
                                clip_id: row.get(1)?,
                                attempts: row.get::<_, i64>(2)?.try_into().unwrap_or(u32::MAX),
                                reason: row.get(3)?,
                                intent_at_ms: row.get(4)?,
                            })
                        },
                    )
                    .optional()
            })
            .map_err(unavailable)
    }

    async fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        // The cloud's condition: the highlight exists, has no clip id and is not final.
        let written = self.update_highlight(
            highlight,
            "status = 'creating', intent_at_ms = ?1, attempts = ?2",
            "clip_id IS NULL AND status NOT IN ('stored', 'failed')",
            &[&at_ms, &i64::from(attempt)],
        )?;
        Ok(written == 1)
    }

    async fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.update_highlight(
            highlight,
            "status = 'created', clip_id = ?1, attempts = ?2",
            "1",
            &[&clip_id, &i64::from(attempts)],
        )
        .map(drop)
    }

    async fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.update_highlight(
            highlight,
            "status = 'failed', reason = ?1, attempts = ?2",
            "1",
            &[&reason, &i64::from(attempts)],
        )
        .map(drop)
    }

    async fn record_stored(&self, highlight: HighlightKey, _confirmed: bool) -> Result<(), StoreError> {
        // Whether the clip is confirmed is the clip row's to say (`clips.confirmed`).
        self.update_highlight(highlight, "status = 'stored'", "1", &[]).map(drop)
    }
}

impl ClipStore for Embedded {
    async fn insert(&self, clip_id: &str, detection: &Detection) -> Result<String, ClipStoreError> {
        let (url, embed_url) = clip_urls(clip_id);
        let now = now_ms();
        let stored: String = self
            .writer()
            .prepare_cached(
                "INSERT INTO clips (kind, clip_id, broadcaster_id, url, embed_url, detected_at, fired_at, created_at_ms, \
                     intensity, message_count, baseline_mean, baseline_std, next_confirm_at_ms, curve, phrases) \
                 VALUES ('clip', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?7, ?12, ?13) \
                 ON CONFLICT (broadcaster_id, detected_at) DO UPDATE SET clip_id = clips.clip_id \
                 RETURNING clip_id",
            )
            .and_then(|mut insert| {
                insert.query_row(
                    rusqlite::params![
                        clip_id,
                        detection.broadcaster_id.to_string(),
                        url,
                        embed_url,
                        detection.peak_second,
                        detection.fired_second,
                        now,
                        detection.intensity,
                        detection.message_count as i64,
                        detection.baseline_mean,
                        detection.baseline_std,
                        crate::state::curve_text(&detection.curve),
                        crate::state::phrases_text(&detection.phrases)
                    ],
                    |row| row.get(0),
                )
            })
            .map_err(clips_unavailable)?;
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
        self.writer()
            .prepare_cached(
                "SELECT clip_id FROM clips WHERE broadcaster_id = ?1 AND detected_at = ?2 AND kind = 'clip'",
            )
            .and_then(|mut select| {
                select
                    .query_row(
                        rusqlite::params![detection.broadcaster_id.to_string(), detection.peak_second],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .map_err(clips_unavailable)
    }

    async fn confirm(&self, info: &ClipInfo) -> Result<Option<HighlightKey>, ClipStoreError> {
        self.writer()
            .query_row(
                "UPDATE clips SET url = ?2, embed_url = ?3, thumbnail_url = NULLIF(?4, ''), title = NULLIF(?5, ''), \
                     duration = ?6, vod_offset = ?7, view_count = ?8, video_id = NULLIF(?9, ''), confirmed = 1 \
                 WHERE clip_id = ?1 RETURNING broadcaster_id, detected_at",
                rusqlite::params![
                    info.id,
                    info.url,
                    info.embed_url,
                    info.thumbnail_url,
                    info.title,
                    info.duration,
                    info.vod_offset,
                    info.view_count,
                    info.video_id
                ],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()
            .map(|row| {
                row.and_then(|(id, peak_second)| Some(HighlightKey { broadcaster_id: id.parse().ok()?, peak_second }))
            })
            .map_err(clips_unavailable)
    }

    async fn mark_clipping_restricted(&self, broadcaster_id: BroadcasterId) -> Result<(), ClipStoreError> {
        self.writer()
            .execute(
                "INSERT INTO streamers (broadcaster_id, login, allows_clipping) VALUES (?1, '', 0) \
                 ON CONFLICT (broadcaster_id) DO UPDATE SET allows_clipping = 0",
                [broadcaster_id.to_string()],
            )
            .map(drop)
            .map_err(clips_unavailable)
    }

    async fn unconfirmed(&self, limit: u32) -> Result<Vec<String>, ClipStoreError> {
        let now = now_ms();
        let connection = self.writer();
        let given_up = connection
            .execute(
                "UPDATE clips SET unpublished = 1 \
                 WHERE kind = 'clip' AND NOT confirmed AND NOT unpublished AND created_at_ms < ?1",
                [now - GIVE_UP_AFTER_MS],
            )
            .map_err(clips_unavailable)?;
        if given_up > 0 {
            tracing::warn!(
                clips = given_up,
                "clips Twitch never published within a day: marked unpublished, not listed"
            );
        }
        let mut select = connection
            .prepare_cached(
                "SELECT clip_id FROM clips WHERE kind = 'clip' AND NOT confirmed AND NOT unpublished \
                     AND next_confirm_at_ms <= ?1 ORDER BY next_confirm_at_ms, id LIMIT ?2",
            )
            .map_err(clips_unavailable)?;
        let ids = select
            .query_map(rusqlite::params![now, i64::from(limit)], |row| row.get(0))
            .and_then(|rows| rows.collect::<Result<Vec<String>, _>>())
            .map_err(clips_unavailable)?;
        Ok(ids)
    }

    async fn not_published_yet(&self, clip_id: &str) -> Result<(), ClipStoreError> {
        // highlights_core::Backoff's doubling, in SQL so that the update stays one statement.
        self.writer()
            .execute(
                "UPDATE clips SET confirm_attempts = confirm_attempts + 1, \
                     next_confirm_at_ms = ?2 + min(?3 * (1 << min(confirm_attempts, 10)), ?4) \
                 WHERE clip_id = ?1",
                rusqlite::params![clip_id, now_ms(), FIRST_CHECK_GAP_MS, LAST_CHECK_GAP_MS],
            )
            .map(drop)
            .map_err(clips_unavailable)
    }
}

#[cfg(test)]
mod tests {
    use highlights_adapters::highlights::HighlightOutbox as _;

    use super::*;
    use crate::temporary;

    fn detection(peak: i64) -> Detection {
        Detection {
            broadcaster_id: 7,
            peak_second: peak,
            fired_second: peak + 3,
            intensity: 6.0,
            message_count: 40,
            baseline_mean: 2.0,
            baseline_std: 1.0,
            curve: Default::default(),
            phrases: Default::default(),
        }
    }

    #[tokio::test]
    async fn an_intent_is_written_only_while_the_highlight_has_no_clip_and_is_not_final() {
        let (store, dir) = temporary();
        let (first, second) = (detection(100), detection(200));
        assert!(
            !store.record_intent(HighlightKey::of(&first), 1, 5).await.unwrap(),
            "no highlight, no intent"
        );
        store.record(&first).await.unwrap();
        store.record(&second).await.unwrap();
        assert_eq!(store.progress(HighlightKey::of(&first)).await.unwrap().unwrap().status, "pending");
        assert!(store.record_intent(HighlightKey::of(&first), 1, 5).await.unwrap());
        assert!(
            store.record_intent(HighlightKey::of(&first), 2, 9).await.unwrap(),
            "a later attempt of the same delivery"
        );
        let creating = store.progress(HighlightKey::of(&first)).await.unwrap().unwrap();
        assert_eq!(
            (creating.status.as_str(), creating.attempts, creating.intent_at_ms),
            ("creating", 2, Some(9))
        );
        store.record_clip(HighlightKey::of(&first), "Clip1", 2).await.unwrap();
        assert!(!store.record_intent(HighlightKey::of(&first), 3, 12).await.unwrap(), "it has a clip id");
        store.record_failure(HighlightKey::of(&second), "not_live", 1).await.unwrap();
        assert!(!store.record_intent(HighlightKey::of(&second), 2, 12).await.unwrap(), "failed is final");
        let failed = store.failed_highlights(&[(1, first), (2, second)]).unwrap();
        assert_eq!(failed, vec![(2, second)]);
        store.record_stored(HighlightKey::of(&first), true).await.unwrap();
        let stored = store.progress(HighlightKey::of(&first)).await.unwrap().unwrap();
        assert!(stored.is_final() && stored.clip_id.as_deref() == Some("Clip1"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn one_clip_row_per_highlight_confirmed_later_with_a_growing_back_off() {
        let (store, dir) = temporary();
        let moment = detection(100);
        assert_eq!(store.insert("Clip1", &moment).await.unwrap(), "Clip1");
        assert_eq!(store.insert("Clip2", &moment).await.unwrap(), "Clip1", "the first clip stays");
        assert_eq!(store.clip_of(&moment).await.unwrap().as_deref(), Some("Clip1"));
        assert_eq!(store.clip_of(&detection(5)).await.unwrap(), None);
        assert_eq!(store.unconfirmed(10).await.unwrap(), ["Clip1"]);
        store.not_published_yet("Clip1").await.unwrap();
        assert!(store.unconfirmed(10).await.unwrap().is_empty(), "asked again 10 minutes later");
        let (attempts, next): (i64, i64) = store
            .writer()
            .query_row("SELECT confirm_attempts, next_confirm_at_ms FROM clips", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(attempts, 1);
        assert!((next - now_ms() - FIRST_CHECK_GAP_MS).abs() < 60_000, "{next}");
        let info = ClipInfo {
            id: "Clip1".into(),
            url: "https://clips.twitch.tv/Clip1".into(),
            embed_url: "https://clips.twitch.tv/embed?clip=Clip1".into(),
            thumbnail_url: "https://thumb/1.jpg".into(),
            title: "what a play".into(),
            duration: 30.0,
            vod_offset: Some(640),
            view_count: 3,
            video_id: "2316053889".into(),
        };
        store.confirm(&info).await.unwrap();
        let (confirmed, title): (bool, String) = store
            .writer()
            .query_row("SELECT confirmed, title FROM clips", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert!(confirmed && title == "what a play");
        store.mark_clipping_restricted(7).await.unwrap();
        let allows: bool = store
            .writer()
            .query_row("SELECT allows_clipping FROM streamers WHERE broadcaster_id = '7'", [], |r| r.get(0))
            .unwrap();
        assert!(!allows);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_clip_never_published_within_a_day_is_kept_but_not_listed() {
        use api_function::reader::ClipReader as _;
        let (store, dir) = temporary();
        store.insert("Old", &detection(100)).await.unwrap();
        store.insert("New", &detection(200)).await.unwrap();
        store
            .writer()
            .execute(
                "UPDATE clips SET created_at_ms = ?1 WHERE clip_id = 'Old'",
                [now_ms() - GIVE_UP_AFTER_MS - 1],
            )
            .unwrap();
        assert_eq!(store.unconfirmed(10).await.unwrap(), ["New"]);
        let query = crate::clips::tests::query(10);
        let listed = store.page(&query, None).await.unwrap();
        assert_eq!(listed.clips.iter().map(|(c, _)| c.clip_id.as_str()).collect::<Vec<_>>(), ["New"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
