//! The detector's ports on SQLite: [`StateStore`] (detector state with optimistic concurrency,
//! as the DynamoDB adapter) and [`HighlightOutbox`] (one row per broadcaster and peak second,
//! the conditional put of the cloud).

use std::collections::HashMap;

use highlights_adapters::detector_state::{BrokenVersion, StateStore, StoreError, StoredState};
use highlights_adapters::highlights::HighlightOutbox;
use highlights_core::{BroadcasterId, ChatCurve, Detection, TopPhrases};
use rusqlite::OptionalExtension as _;

use crate::{Embedded, EmbeddedError};

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

fn load(connection: &rusqlite::Connection, id: BroadcasterId) -> rusqlite::Result<Option<StoredState>> {
    connection
        .prepare_cached(
            "SELECT version, detector, last_sequence, last_fire FROM detector_state WHERE broadcaster_id = ?1",
        )?
        .query_row([id as i64], |row| {
            Ok(StoredState {
                broadcaster_id: id,
                version: row.get::<_, i64>(0)? as u64,
                detector: row.get(1)?,
                last_sequence: row.get(2)?,
                last_fire: row.get(3)?,
                broken: None,
            })
        })
        .optional()
}

impl StateStore for Embedded {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, StoredState>, StoreError> {
        let connection = self.writer();
        let mut found = HashMap::new();
        for &id in ids {
            if let Some(state) = load(&connection, id).map_err(unavailable)? {
                found.insert(id, state);
            }
        }
        Ok(found)
    }

    async fn save(&self, state: &StoredState, expected_version: u64) -> Result<(), StoreError> {
        let mut connection = self.writer();
        let transaction = connection.transaction().map_err(unavailable)?;
        let current = load(&transaction, state.broadcaster_id).map_err(unavailable)?.map_or(0, |s| s.version);
        if current != expected_version {
            return Err(StoreError::Conflict);
        }
        transaction
            .execute(
                "INSERT OR REPLACE INTO detector_state (broadcaster_id, version, detector, last_sequence, last_fire) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![
                    state.broadcaster_id as i64,
                    state.version as i64,
                    state.detector,
                    state.last_sequence,
                    state.last_fire
                ],
            )
            .map_err(unavailable)?;
        transaction.commit().map_err(unavailable)
    }

    async fn reset(&self, id: BroadcasterId) -> Result<(), StoreError> {
        self.writer()
            .execute(
                "INSERT INTO detector_state (broadcaster_id, version) VALUES (?1, 1) \
                 ON CONFLICT (broadcaster_id) DO UPDATE SET version = version + 1, detector = NULL",
                [id as i64],
            )
            .map(drop)
            .map_err(unavailable)
    }

    /// Rows here are typed: a version is never broken, so there is nothing to replace.
    async fn replace_broken(&self, _: &StoredState, _: &BrokenVersion) -> Result<(), StoreError> {
        Err(StoreError::Conflict)
    }
}

impl HighlightOutbox for Embedded {
    async fn record(&self, detection: &Detection) -> Result<bool, StoreError> {
        let inserted = self
            .writer()
            .prepare_cached(
                "INSERT OR IGNORE INTO highlights (broadcaster_id, peak_second, fired_second, intensity, \
                     message_count, baseline_mean, baseline_std, recorded_at_ms, curve, phrases) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )
            .and_then(|mut insert| {
                insert.execute(rusqlite::params![
                    detection.broadcaster_id as i64,
                    detection.peak_second,
                    detection.fired_second,
                    detection.intensity,
                    detection.message_count as i64,
                    detection.baseline_mean,
                    detection.baseline_std,
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64),
                    curve_text(&detection.curve),
                    phrases_text(&detection.phrases)
                ])
            })
            .map_err(unavailable)?;
        Ok(inserted == 1)
    }
}

/// A chat curve as stored: its counts separated by commas (`NULL`: none).
pub(crate) fn curve_text(curve: &ChatCurve) -> Option<String> {
    (!curve.is_empty()).then(|| curve.counts().iter().map(u32::to_string).collect::<Vec<_>>().join(","))
}

pub(crate) fn curve_from_text(text: Option<&str>) -> ChatCurve {
    let counts: Vec<u32> = text.unwrap_or("").split(',').filter_map(|c| c.parse().ok()).collect();
    ChatCurve::from_counts(&counts)
}

/// Top phrases as stored: their JSON (`NULL`: none).
pub(crate) fn phrases_text(phrases: &TopPhrases) -> Option<String> {
    (!phrases.is_empty()).then(|| serde_json::to_string(phrases).unwrap_or_default())
}

/// Stored phrases read back; absent or unreadable: none.
pub(crate) fn phrases_from_text(text: Option<&str>) -> TopPhrases {
    text.and_then(|text| serde_json::from_str(text).ok()).unwrap_or_default()
}

/// The detection in columns `at..at + 9` (broadcaster, peak, fired, intensity, messages, mean,
/// std, curve, phrases).
fn detection_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Detection> {
    Ok(Detection {
        broadcaster_id: row.get::<_, i64>(at)? as u64,
        peak_second: row.get(at + 1)?,
        fired_second: row.get(at + 2)?,
        intensity: row.get(at + 3)?,
        message_count: row.get::<_, i64>(at + 4)? as u64,
        baseline_mean: row.get(at + 5)?,
        baseline_std: row.get(at + 6)?,
        curve: curve_from_text(row.get::<_, Option<String>>(at + 7)?.as_deref()),
        phrases: phrases_from_text(row.get::<_, Option<String>>(at + 8)?.as_deref()),
    })
}

/// A highlight as recorded, with the clipper's status (for tools and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedHighlight {
    pub detection: Detection,
    /// When the detector recorded it (Unix ms; absent for rows older than schema 3).
    pub recorded_at_ms: Option<i64>,
    pub status: String,
}

impl Embedded {
    /// Every highlight, in the order they were recorded.
    pub fn recorded_highlights(&self) -> Result<Vec<RecordedHighlight>, EmbeddedError> {
        let connection = self.writer();
        let mut select = connection.prepare_cached(
            "SELECT broadcaster_id, peak_second, fired_second, intensity, message_count, baseline_mean, \
                 baseline_std, curve, phrases, recorded_at_ms, status FROM highlights ORDER BY seq",
        )?;
        let rows = select.query_map([], |row| {
            Ok(RecordedHighlight {
                detection: detection_from_row(row, 0)?,
                recorded_at_ms: row.get(9)?,
                status: row.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest highlight's row (0: none).
    pub fn highlights_end(&self) -> Result<i64, EmbeddedError> {
        Ok(self.writer().query_row("SELECT coalesce(max(seq), 0) FROM highlights", [], |row| row.get(0))?)
    }

    /// Up to `limit` highlights recorded after row `after`, in the order they were recorded.
    pub fn highlights_after(&self, after: i64, limit: usize) -> Result<Vec<(i64, Detection)>, EmbeddedError> {
        let connection = self.writer();
        let mut select = connection.prepare_cached(
            "SELECT seq, broadcaster_id, peak_second, fired_second, intensity, message_count, baseline_mean, \
                 baseline_std, curve, phrases FROM highlights WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = select.query_map(rusqlite::params![after, limit as i64], |row| {
            Ok((row.get(0)?, detection_from_row(row, 1)?))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporary;

    fn detection(peak: i64) -> Detection {
        Detection {
            broadcaster_id: 5,
            peak_second: peak,
            fired_second: peak + 3,
            intensity: 6.5,
            message_count: 40,
            baseline_mean: 2.0,
            baseline_std: 1.0,
            curve: Default::default(),
            phrases: Default::default(),
        }
    }

    #[tokio::test]
    async fn saves_are_conditional_on_the_version_and_a_reset_bumps_it() {
        let (store, dir) = temporary();
        let state = StoredState {
            broadcaster_id: 5,
            version: 1,
            detector: Some(vec![1, 2]),
            ..StoredState::default()
        };
        store.save(&state, 0).await.unwrap();
        assert_eq!(store.save(&state, 0).await, Err(StoreError::Conflict));
        store.reset(5).await.unwrap();
        let reset = store.load_many(&[5, 6]).await.unwrap();
        assert_eq!(reset.len(), 1);
        assert_eq!((reset[&5].version, reset[&5].detector.as_ref()), (2, None));
        assert_eq!(
            store.save(&StoredState { version: 3, ..state.clone() }, 1).await,
            Err(StoreError::Conflict)
        );
        store.save(&StoredState { version: 3, ..state }, 2).await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_highlight_is_recorded_once_and_read_back_in_order() {
        let (store, dir) = temporary();
        assert!(store.record(&detection(100)).await.unwrap());
        assert!(!store.record(&detection(100)).await.unwrap(), "the replay of a detection is a duplicate");
        assert!(store.record(&detection(50)).await.unwrap());
        let recorded = store.highlights_after(0, 10).unwrap();
        assert_eq!(recorded.iter().map(|(_, d)| d.peak_second).collect::<Vec<_>>(), vec![100, 50]);
        assert_eq!(recorded[0].1, detection(100));
        assert_eq!(store.highlights_after(recorded[0].0, 10).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
