//! [`ChannelSettingsStore`] on SQLite: `highlights channel set` writes here while `highlights
//! dev` runs, and its detector reads the change within a minute, as in the cloud.

use std::collections::HashMap;

use highlights_adapters::channel_settings::{ChannelEntry, ChannelSettingsStore, SettingsStoreError};
use highlights_core::{BroadcasterId, ChannelSettings};
use rusqlite::OptionalExtension as _;

use crate::{Embedded, EmbeddedError};

fn unavailable(error: impl std::fmt::Display) -> SettingsStoreError {
    SettingsStoreError::Unavailable(error.to_string())
}

const COLUMNS: &str = "broadcaster_id, login, k, cooldown_seconds, min_chatters, clips_per_hour, updated_at";

fn entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<ChannelEntry> {
    Ok(ChannelEntry {
        broadcaster_id: row.get::<_, i64>(0)? as u64,
        login: row.get(1)?,
        settings: ChannelSettings {
            k: row.get(2)?,
            cooldown_seconds: row.get(3)?,
            min_chatters: row.get(4)?,
            clips_per_hour: row.get(5)?,
        },
        updated_at_ms: row.get(6)?,
    })
}

impl Embedded {
    /// The broadcaster id of a channel `highlights dev` has seen (demo, replay or live), by login.
    pub fn broadcaster_id_of(&self, login: &str) -> Result<Option<BroadcasterId>, EmbeddedError> {
        let found: Option<String> = self
            .reader()
            .query_row(
                "SELECT broadcaster_id FROM streamers WHERE lower(login) = lower(?1)",
                [login],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.and_then(|id| id.parse().ok()))
    }
}

impl ChannelSettingsStore for Embedded {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError> {
        let connection = self.reader();
        let mut statement = connection
            .prepare_cached(&format!("SELECT {COLUMNS} FROM channel_settings WHERE broadcaster_id = ?1"))
            .map_err(unavailable)?;
        let mut found = HashMap::new();
        for &id in ids {
            if let Some(entry) = statement.query_row([id as i64], entry).optional().map_err(unavailable)? {
                found.insert(id, entry.settings);
            }
        }
        Ok(found)
    }

    async fn list(&self) -> Result<Vec<ChannelEntry>, SettingsStoreError> {
        let connection = self.reader();
        let mut statement = connection
            .prepare(&format!("SELECT {COLUMNS} FROM channel_settings ORDER BY lower(login), broadcaster_id"))
            .map_err(unavailable)?;
        statement.query_map([], entry).map_err(unavailable)?.collect::<Result<_, _>>().map_err(unavailable)
    }

    async fn put(&self, entry: &ChannelEntry) -> Result<(), SettingsStoreError> {
        let settings = &entry.settings;
        self.writer()
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO channel_settings ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                rusqlite::params![
                    entry.broadcaster_id as i64,
                    entry.login,
                    settings.k,
                    settings.cooldown_seconds,
                    settings.min_chatters,
                    settings.clips_per_hour,
                    entry.updated_at_ms,
                ],
            )
            .map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, id: BroadcasterId) -> Result<bool, SettingsStoreError> {
        let removed = self
            .writer()
            .execute("DELETE FROM channel_settings WHERE broadcaster_id = ?1", [id as i64])
            .map_err(unavailable)?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_survive_a_reopen_and_are_found_by_login() {
        let (store, dir) = crate::temporary();
        store.upsert_streamer(42, "XqcOW", None, false).unwrap();
        assert_eq!(store.broadcaster_id_of("xqcow").unwrap(), Some(42));
        assert_eq!(store.broadcaster_id_of("nobody").unwrap(), None);
        let entry = ChannelEntry {
            broadcaster_id: 42,
            login: "xqcow".into(),
            settings: ChannelSettings { k: Some(4.5), min_chatters: Some(8), ..ChannelSettings::default() },
            updated_at_ms: 7,
        };
        store.put(&entry).await.unwrap();
        drop(store);
        let store = Embedded::open(&dir).unwrap();
        assert_eq!(store.list().await.unwrap(), vec![entry.clone()]);
        assert_eq!(store.load_many(&[42, 43]).await.unwrap(), HashMap::from([(42, entry.settings)]));
        assert!(store.remove(42).await.unwrap());
        assert!(!store.remove(42).await.unwrap());
        assert!(store.list().await.unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
