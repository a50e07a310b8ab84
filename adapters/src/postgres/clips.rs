//! [`PgClips`]: the `clips` table behind [`ClipStore`] (see `crate::clips` for what a row is).

use deadpool_postgres::Pool;
use highlights_core::{BroadcasterId, Detection};

use crate::clips::{ClipStore, ClipStoreError, HighlightKey, clip_urls};
use crate::twitch::ClipInfo;

/// A curve as the `clips.curve` column holds it (`NULL` when empty).
fn curve_column(curve: &highlights_core::ChatCurve) -> Option<Vec<i32>> {
    (!curve.is_empty())
        .then(|| curve.counts().iter().map(|&c| i32::try_from(c).unwrap_or(i32::MAX)).collect())
}

/// Top phrases as the `clips.phrases` and `clips.phrase_counts` columns hold them.
fn phrase_columns(phrases: &highlights_core::TopPhrases) -> (Vec<&str>, Vec<i32>) {
    phrases.entries().map(|e| (e.phrase.as_str(), i32::try_from(e.count).unwrap_or(i32::MAX))).unzip()
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
        // highlights_core::Backoff's doubling, in SQL so that the update stays one statement.
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
