//! Clips and moments on SQLite, and the API's [`ClipReader`] over them. A moment is a detection
//! stored without a Twitch clip (no credentials, or a recorded chat): kind `moment`, a stable id
//! of its own, the Twitch fields null.

use api_function::clip::rfc3339_from_us;
use api_function::reader::{ClipReader, ClipRows, ReadError};
use api_function::{Clip, ClipQuery, Streamer, TOTAL_COUNT_CAP};
use highlights_core::title::TitleRules;
use highlights_core::{BroadcasterId, Detection};
use rusqlite::types::Value;

use crate::{Embedded, EmbeddedError, set_position_in};

/// The id a moment is listed under: stable across restarts and replays.
pub fn moment_id(detection: &Detection) -> String {
    format!("moment-{}-{}", detection.broadcaster_id, detection.peak_second)
}

const COLUMNS: &str = "c.id, c.kind, c.clip_id, c.broadcaster_id, c.url, c.embed_url, c.thumbnail_url, c.title, \
     c.duration, c.vod_offset, c.detected_at, c.created_at_ms, c.intensity, c.message_count, c.view_count, \
     c.confirmed, s.login, s.display_name, c.curve, c.video_id, c.phrases";
const FROM: &str = "clips c LEFT JOIN streamers s ON s.broadcaster_id = c.broadcaster_id";

fn clip_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Clip, (i64, i64))> {
    let id: i64 = row.get(0)?;
    let detected_us = row.get::<_, i64>(10)? * 1_000_000;
    let login: Option<String> = row.get(16)?;
    let clip = Clip {
        id,
        kind: row.get(1)?,
        clip_id: row.get(2)?,
        broadcaster_id: row.get(3)?,
        url: row.get(4)?,
        embed_url: row.get(5)?,
        thumbnail_url: row.get(6)?,
        title: row.get(7)?,
        duration: row.get::<_, Option<f64>>(8)?.map(|d| d as f32),
        vod_offset: row.get(9)?,
        detected_at: rfc3339_from_us(detected_us),
        created_at: rfc3339_from_us(row.get::<_, i64>(11)? * 1000),
        intensity: row.get(12)?,
        message_count: row.get(13)?,
        view_count: row.get(14)?,
        confirmed: row.get(15)?,
        streamer_login: login.filter(|l| !l.is_empty()),
        streamer_name: row.get(17)?,
        vod_url: api_function::clip::vod_url(row.get(19)?, row.get(9)?),
        curve: {
            let text: Option<String> = row.get(18)?;
            text.map(|t| crate::state::curve_from_text(Some(&t)).counts().iter().map(|&c| c as i32).collect())
        },
        phrases: row.get::<_, Option<String>>(20)?.map(|text| {
            crate::state::phrases_from_text(Some(&text))
                .entries()
                .map(|e| api_function::ChatPhrase {
                    phrase: e.phrase.as_str().to_owned(),
                    count: i32::try_from(e.count).unwrap_or(i32::MAX),
                })
                .collect()
        }),
    };
    Ok((clip, (detected_us, id)))
}

impl Embedded {
    /// Stores `moments` and moves consumer `consumer` to `position`, in one transaction. Returns
    /// how many were new (a moment already stored, or a highlight with a clip, is left as it is).
    /// A moment is titled, and its phrases kept, by `titles`, as a clip would be.
    pub fn store_moments(
        &self,
        consumer: &str,
        moments: &[Detection],
        position: i64,
        now_ms: i64,
        titles: &TitleRules,
    ) -> Result<usize, EmbeddedError> {
        let mut connection = self.writer();
        let transaction = connection.transaction()?;
        let mut stored = 0;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO clips (kind, clip_id, broadcaster_id, detected_at, fired_at, created_at_ms, \
                     intensity, message_count, baseline_mean, baseline_std, curve, video_id, vod_offset, phrases, \
                     title) \
                 SELECT 'moment', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, v.video_id, ?3 - v.started_at, ?11, ?12 \
                 FROM (SELECT 1) LEFT JOIN vods v ON v.broadcaster_id = ?2 \
                     AND ?3 BETWEEN v.started_at AND v.started_at + v.length_s",
            )?;
            for detection in moments {
                stored += insert.execute(rusqlite::params![
                    moment_id(detection),
                    detection.broadcaster_id.to_string(),
                    detection.peak_second,
                    detection.fired_second,
                    now_ms,
                    detection.intensity,
                    detection.message_count as i64,
                    detection.baseline_mean,
                    detection.baseline_std,
                    crate::state::curve_text(&detection.curve),
                    crate::state::phrases_text(&titles.shown(&detection.phrases)),
                    titles.title_for(detection)
                ])?;
            }
        }
        set_position_in(&transaction, consumer, position)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// Records a VOD whose chat is replayed: moments within it link to their second in it.
    pub fn upsert_vod(
        &self,
        video_id: &str,
        broadcaster_id: BroadcasterId,
        started_at_s: i64,
        length_s: i64,
    ) -> Result<(), EmbeddedError> {
        self.writer().execute(
            "INSERT INTO vods (video_id, broadcaster_id, started_at, length_s) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (video_id) DO UPDATE SET broadcaster_id = excluded.broadcaster_id, \
                 started_at = excluded.started_at, length_s = excluded.length_s",
            rusqlite::params![video_id, broadcaster_id.to_string(), started_at_s, length_s],
        )?;
        Ok(())
    }

    /// Records a channel's login (and display name), as the lifecycle consumer does in the cloud.
    pub fn upsert_streamer(
        &self,
        broadcaster_id: BroadcasterId,
        login: &str,
        display_name: Option<&str>,
        is_live: bool,
    ) -> Result<(), EmbeddedError> {
        self.writer().execute(
            "INSERT INTO streamers (broadcaster_id, login, display_name, is_live) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (broadcaster_id) DO UPDATE SET login = excluded.login, \
                 display_name = coalesce(excluded.display_name, streamers.display_name), is_live = excluded.is_live",
            rusqlite::params![broadcaster_id.to_string(), login, display_name, is_live],
        )?;
        Ok(())
    }

    fn list(&self, query: &ClipQuery, position: Option<(i64, i64)>) -> Result<ClipRows, EmbeddedError> {
        let mut filters = vec!["c.intensity >= ?".to_owned(), "NOT c.unpublished".to_owned()];
        let mut params = vec![Value::Real(query.min_intensity)];
        if let Some(id) = &query.broadcaster_id {
            filters.push("c.broadcaster_id = ?".into());
            params.push(Value::Text(id.clone()));
        }
        if let Some(login) = &query.streamer {
            filters.push(
                "c.broadcaster_id = (SELECT broadcaster_id FROM streamers WHERE lower(login) = ? \
                 ORDER BY broadcaster_id LIMIT 1)"
                    .into(),
            );
            params.push(Value::Text(login.clone()));
        }
        if let Some(since) = query.since {
            filters.push("c.detected_at >= ?".into());
            params.push(Value::Integer(since));
        }
        if let Some(until) = query.until {
            filters.push("c.detected_at <= ?".into());
            params.push(Value::Integer(until));
        }
        let connection = self.reader();
        let count_sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM clips c WHERE {} LIMIT {})",
            filters.join(" AND "),
            TOTAL_COUNT_CAP + 1
        );
        let total: i64 = connection
            .prepare_cached(&count_sql)?
            .query_row(rusqlite::params_from_iter(&params), |row| row.get(0))?;
        // Insertion order (new clips since the client's newest id) or newest detection first.
        let order = if let Some(after) = query.after_id {
            filters.push("c.id > ?".into());
            params.push(Value::Integer(after));
            "c.id ASC"
        } else {
            "c.detected_at DESC, c.id DESC"
        };
        if let Some((us, id)) = position {
            filters.push("(c.detected_at * 1000000, c.id) < (?, ?)".into());
            params.extend([Value::Integer(us), Value::Integer(id)]);
        }
        params.extend([Value::Integer(query.limit + 1), Value::Integer(query.offset)]);
        let sql = format!(
            "SELECT {COLUMNS} FROM {FROM} WHERE {} ORDER BY {order} LIMIT ? OFFSET ?",
            filters.join(" AND ")
        );
        let mut select = connection.prepare_cached(&sql)?;
        let clips = select
            .query_map(rusqlite::params_from_iter(&params), clip_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(ClipRows { clips, total })
    }

    fn one(&self, clip_id: &str) -> Result<Option<Clip>, EmbeddedError> {
        let connection = self.reader();
        let mut select =
            connection.prepare_cached(&format!("SELECT {COLUMNS} FROM {FROM} WHERE c.clip_id = ?1"))?;
        let mut rows = select.query_map([clip_id], clip_from_row)?;
        Ok(rows.next().transpose()?.map(|(clip, _)| clip))
    }

    fn all_streamers(&self) -> Result<Vec<Streamer>, EmbeddedError> {
        let connection = self.reader();
        let mut select = connection.prepare_cached(
            "SELECT broadcaster_id, login, display_name, is_live, allows_clipping, \
                 (SELECT count(*) FROM clips c WHERE c.broadcaster_id = s.broadcaster_id) \
             FROM streamers s WHERE login <> '' ORDER BY lower(login) LIMIT 1000",
        )?;
        let rows = select.query_map([], |row| {
            Ok(Streamer {
                broadcaster_id: row.get(0)?,
                login: row.get(1)?,
                display_name: row.get(2)?,
                is_live: row.get(3)?,
                allows_clipping: row.get(4)?,
                clip_count: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// The API's reads, on the embedded store. Reads take microseconds on the indexes, so they
/// run in place rather than on a blocking thread.
#[async_trait::async_trait]
impl ClipReader for Embedded {
    async fn page(&self, query: &ClipQuery, position: Option<(i64, i64)>) -> Result<ClipRows, ReadError> {
        self.list(query, position).map_err(ReadError::new)
    }

    async fn clip(&self, clip_id: &str) -> Result<Option<Clip>, ReadError> {
        self.one(clip_id).map_err(ReadError::new)
    }

    async fn streamers(&self) -> Result<Vec<Streamer>, ReadError> {
        self.all_streamers().map_err(ReadError::new)
    }

    async fn ping(&self) -> bool {
        self.reader().query_row("SELECT 1", [], |_| Ok(())).is_ok()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::temporary;

    fn detection(broadcaster_id: BroadcasterId, peak: i64, intensity: f64) -> Detection {
        Detection {
            broadcaster_id,
            peak_second: peak,
            fired_second: peak + 3,
            intensity,
            message_count: 40,
            baseline_mean: 2.0,
            baseline_std: 1.0,
            curve: Default::default(),
            phrases: Default::default(),
        }
    }

    pub(crate) fn query(limit: i64) -> ClipQuery {
        ClipQuery {
            min_intensity: 0.0,
            limit,
            offset: 0,
            broadcaster_id: None,
            streamer: None,
            since: None,
            until: None,
            cursor: None,
            after_id: None,
        }
    }

    #[tokio::test]
    async fn moments_are_stored_once_with_the_consumer_position_and_listed_newest_first() {
        let (store, dir) = temporary();
        let store = Arc::new(store);
        let batch = [detection(5, 100, 6.0), detection(6, 300, 9.0), detection(5, 200, 4.0)];
        assert_eq!(store.store_moments("moments", &batch, 3, 1_000, &TitleRules::default()).unwrap(), 3);
        assert_eq!(
            store.store_moments("moments", &batch[..1], 1, 1_000, &TitleRules::default()).unwrap(),
            0,
            "stored once"
        );
        assert_eq!(store.position("moments").unwrap(), 1);
        store.upsert_streamer(5, "five", Some("Five"), true).unwrap();

        let page = store.page(&query(2), None).await.unwrap();
        assert_eq!(page.total, 3);
        let ids: Vec<&str> = page.clips.iter().map(|(c, _)| c.clip_id.as_str()).collect();
        assert_eq!(ids, ["moment-6-300", "moment-5-200", "moment-5-100"], "limit + 1 rows");
        let (second, position) = &page.clips[1];
        assert_eq!((second.kind.as_str(), second.streamer_login.as_deref()), ("moment", Some("five")));
        assert_eq!(second.detected_at, "1970-01-01T00:03:20Z");
        assert_eq!(second.url, None);
        let after = store.page(&query(2), Some(*position)).await.unwrap();
        assert_eq!(after.clips.iter().map(|(c, _)| c.clip_id.as_str()).collect::<Vec<_>>(), ["moment-5-100"]);
        let strong = store.page(&ClipQuery { min_intensity: 5.0, ..query(10) }, None).await.unwrap();
        assert_eq!(strong.total, 2);
        let by_login =
            store.page(&ClipQuery { streamer: Some("five".into()), ..query(10) }, None).await.unwrap();
        assert_eq!(by_login.total, 2);

        assert_eq!(store.clip("moment-6-300").await.unwrap().unwrap().intensity, 9.0);
        assert!(store.clip("nope").await.unwrap().is_none());
        let streamers = store.streamers().await.unwrap();
        assert_eq!((streamers.len(), streamers[0].clip_count), (1, 2));
        assert!(store.ping().await);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
