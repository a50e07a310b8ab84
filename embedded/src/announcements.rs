//! Which confirmed clips were announced to the webhook, and how it went: `delivered`, or
//! `failed` (dead-lettered, with the reason). A clip is announced at least once: the row is
//! written after the delivery, so a process that dies in between announces it again.

use highlights_adapters::announce::ClipAnnouncement;

use crate::{Embedded, EmbeddedError};

impl Embedded {
    /// Confirmed Twitch clips created at or after `since_ms` and not announced yet, oldest first.
    pub fn clips_to_announce(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<ClipAnnouncement>, EmbeddedError> {
        let connection = self.writer();
        let mut select = connection.prepare_cached(
            "SELECT c.clip_id, c.url, coalesce(c.title, ''), c.broadcaster_id, \
                 coalesce(s.display_name, s.login), c.detected_at, c.intensity \
             FROM clips c LEFT JOIN streamers s ON s.broadcaster_id = c.broadcaster_id \
             WHERE c.kind = 'clip' AND c.confirmed AND c.created_at_ms >= ?1 \
                 AND NOT EXISTS (SELECT 1 FROM announcements a WHERE a.clip_id = c.clip_id) \
             ORDER BY c.id LIMIT ?2",
        )?;
        let rows = select.query_map(rusqlite::params![since_ms, limit as i64], |row| {
            let clip_id: String = row.get(0)?;
            let url: Option<String> = row.get(1)?;
            Ok(ClipAnnouncement {
                url: url.unwrap_or_else(|| highlights_adapters::clips::clip_urls(&clip_id).0),
                clip_id,
                title: row.get(2)?,
                broadcaster_id: row.get(3)?,
                streamer: row.get::<_, Option<String>>(4)?.filter(|s| !s.is_empty()),
                detected_at: row.get(5)?,
                intensity: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Records how announcing `clip_id` ended (`reason`: why it failed; `None`: delivered).
    pub fn record_announcement(
        &self,
        clip_id: &str,
        attempts: u32,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<(), EmbeddedError> {
        self.writer().execute(
            "INSERT INTO announcements (clip_id, status, attempts, at_ms, reason) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (clip_id) DO UPDATE SET status = excluded.status, attempts = excluded.attempts, \
                 at_ms = excluded.at_ms, reason = excluded.reason",
            rusqlite::params![clip_id, if reason.is_some() { "failed" } else { "delivered" }, attempts, now_ms, reason],
        )?;
        Ok(())
    }

    /// Announcements by status, e.g. `[("delivered", 3), ("failed", 1)]`.
    pub fn announcement_counts(&self) -> Result<Vec<(String, u64)>, EmbeddedError> {
        let connection = self.writer();
        let mut select = connection
            .prepare_cached("SELECT status, count(*) FROM announcements GROUP BY status ORDER BY status")?;
        let rows = select.query_map([], |row| Ok((row.get(0)?, row.get::<_, i64>(1)? as u64)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
