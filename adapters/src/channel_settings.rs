//! Each channel's own detector settings ([`ChannelSettings`]): where they are stored, and how the
//! detector reads them without a database connection and without a read per batch.
//!
//! - [`ChannelSettingsStore`] is the port: the `channel-settings` DynamoDB table in the cloud
//!   ([`DynamoChannelSettings`]), the embedded SQLite store in `highlights dev`, and
//!   [`MemoryChannelSettings`] in unit tests.
//! - [`CachedChannelSettings`] keeps what it read for a while (a minute in production), so a
//!   change made with `highlights channel set` reaches the detector within that time and a busy
//!   channel costs one read a minute, not one per batch.
//!
//! Settings never stop detection: a store that cannot be read leaves the channel on the settings
//! it had (or the deployment's), an item that cannot be parsed is skipped with a warning, and
//! this module must not decide anything about detections.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use highlights_core::{BroadcasterId, ChannelSettings};
use tokio::time::Instant;

#[cfg(feature = "dynamodb")]
pub use crate::dynamo::channel_settings::DynamoChannelSettings;

/// One channel's stored settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelEntry {
    pub broadcaster_id: BroadcasterId,
    /// For people: the detector only reads the id.
    pub login: String,
    pub settings: ChannelSettings,
    /// When it was last set (Unix ms).
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsStoreError {
    #[error("channel settings store unavailable: {0}")]
    Unavailable(String),
}

/// The port: read by the detector ([`load_many`](Self::load_many)), written by
/// `highlights channel`.
pub trait ChannelSettingsStore: Send + Sync {
    /// The settings of those of `ids` that have any.
    fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> impl Future<Output = Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError>> + Send;

    /// Every stored entry, by login.
    fn list(&self) -> impl Future<Output = Result<Vec<ChannelEntry>, SettingsStoreError>> + Send;

    /// Stores `entry`, replacing the channel's previous settings.
    fn put(&self, entry: &ChannelEntry) -> impl Future<Output = Result<(), SettingsStoreError>> + Send;

    /// Forgets a channel's settings (it runs on the deployment's again); false when it had none.
    fn remove(&self, id: BroadcasterId) -> impl Future<Output = Result<bool, SettingsStoreError>> + Send;
}

impl<T: ChannelSettingsStore> ChannelSettingsStore for std::sync::Arc<T> {
    fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> impl Future<Output = Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError>> + Send
    {
        T::load_many(self, ids)
    }
    fn list(&self) -> impl Future<Output = Result<Vec<ChannelEntry>, SettingsStoreError>> + Send {
        T::list(self)
    }
    fn put(&self, entry: &ChannelEntry) -> impl Future<Output = Result<(), SettingsStoreError>> + Send {
        T::put(self, entry)
    }
    fn remove(&self, id: BroadcasterId) -> impl Future<Output = Result<bool, SettingsStoreError>> + Send {
        T::remove(self, id)
    }
}

/// No per-channel settings: every channel runs on the deployment's (tools and tests that do not
/// need them).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChannelSettings;

impl ChannelSettingsStore for NoChannelSettings {
    async fn load_many(
        &self,
        _ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError> {
        Ok(HashMap::new())
    }
    async fn list(&self) -> Result<Vec<ChannelEntry>, SettingsStoreError> {
        Ok(Vec::new())
    }
    async fn put(&self, _entry: &ChannelEntry) -> Result<(), SettingsStoreError> {
        Err(SettingsStoreError::Unavailable("this deployment keeps no channel settings".into()))
    }
    async fn remove(&self, _id: BroadcasterId) -> Result<bool, SettingsStoreError> {
        Ok(false)
    }
}

/// How long the detector trusts settings it read: `highlights channel set` takes effect within it.
pub const SETTINGS_REFRESH: Duration = Duration::from_secs(60);

/// A read-through cache in front of a store, for the detector: each channel's settings are read
/// again once they are older than `refresh`. Unknown channels are read in one batched call.
#[derive(Debug)]
pub struct CachedChannelSettings<S> {
    store: S,
    refresh: Duration,
    cached: Mutex<HashMap<BroadcasterId, (Instant, ChannelSettings)>>,
}

impl<S: ChannelSettingsStore> CachedChannelSettings<S> {
    pub fn new(store: S, refresh: Duration) -> Self {
        Self { store, refresh, cached: Mutex::new(HashMap::new()) }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings of each of `ids` (the default for channels without any). Never fails: when
    /// the store cannot be read, channels keep what was read last, logged as a warning.
    pub async fn settings_of(&self, ids: &[BroadcasterId]) -> HashMap<BroadcasterId, ChannelSettings> {
        let now = Instant::now();
        let mut found = HashMap::with_capacity(ids.len());
        let mut stale = Vec::new();
        {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            for &id in ids {
                match cached.get(&id) {
                    Some((read_at, settings)) => {
                        found.insert(id, *settings);
                        if now.duration_since(*read_at) >= self.refresh {
                            stale.push(id);
                        }
                    }
                    None => stale.push(id),
                }
            }
        }
        if stale.is_empty() {
            return found;
        }
        match self.store.load_many(&stale).await {
            Ok(mut read) => {
                let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
                for id in stale {
                    let settings = read.remove(&id).unwrap_or_default();
                    let previous = cached.insert(id, (now, settings)).map(|(_, s)| s);
                    if previous.is_some_and(|p| p != settings) {
                        tracing::info!(broadcaster_id = id, ?settings, "channel settings changed");
                    }
                    found.insert(id, settings);
                }
            }
            Err(error) => {
                tracing::warn!(%error, channels = stale.len(), "cannot read channel settings; keeping the last known");
                for id in stale {
                    found.entry(id).or_default();
                }
            }
        }
        found
    }
}

/// In-memory [`ChannelSettingsStore`] for unit tests; counts its reads.
#[derive(Debug, Default)]
pub struct MemoryChannelSettings {
    entries: Mutex<HashMap<BroadcasterId, ChannelEntry>>,
    reads: std::sync::atomic::AtomicUsize,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryChannelSettings {
    /// Calls to `load_many` so far.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes every call fail (or work again), as a store that cannot be reached.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::Relaxed);
    }

    fn check(&self) -> Result<(), SettingsStoreError> {
        if self.down.load(std::sync::atomic::Ordering::Relaxed) {
            Err(SettingsStoreError::Unavailable("down on purpose".into()))
        } else {
            Ok(())
        }
    }
}

impl ChannelSettingsStore for MemoryChannelSettings {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.check()?;
        let entries = self.entries.lock().expect("not poisoned");
        Ok(ids.iter().filter_map(|id| entries.get(id).map(|e| (*id, e.settings))).collect())
    }
    async fn list(&self) -> Result<Vec<ChannelEntry>, SettingsStoreError> {
        self.check()?;
        let mut entries: Vec<_> = self.entries.lock().expect("not poisoned").values().cloned().collect();
        entries.sort_by(|a, b| (&a.login, a.broadcaster_id).cmp(&(&b.login, b.broadcaster_id)));
        Ok(entries)
    }
    async fn put(&self, entry: &ChannelEntry) -> Result<(), SettingsStoreError> {
        self.check()?;
        self.entries.lock().expect("not poisoned").insert(entry.broadcaster_id, entry.clone());
        Ok(())
    }
    async fn remove(&self, id: BroadcasterId) -> Result<bool, SettingsStoreError> {
        self.check()?;
        Ok(self.entries.lock().expect("not poisoned").remove(&id).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: BroadcasterId, k: f64) -> ChannelEntry {
        ChannelEntry {
            broadcaster_id: id,
            login: format!("user{id}"),
            settings: ChannelSettings { k: Some(k), ..ChannelSettings::default() },
            updated_at_ms: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_is_seen_once_the_refresh_time_has_passed_and_reads_are_batched() {
        let cache = CachedChannelSettings::new(MemoryChannelSettings::default(), SETTINGS_REFRESH);
        cache.store().put(&entry(1, 5.0)).await.unwrap();
        let first = cache.settings_of(&[1, 2]).await;
        assert_eq!(first[&1].k, Some(5.0));
        assert_eq!(first[&2], ChannelSettings::default());
        assert_eq!(cache.store().reads(), 1);

        cache.store().put(&entry(1, 6.0)).await.unwrap();
        tokio::time::advance(SETTINGS_REFRESH / 2).await;
        assert_eq!(cache.settings_of(&[1, 2]).await[&1].k, Some(5.0), "still cached");
        assert_eq!(cache.store().reads(), 1);

        tokio::time::advance(SETTINGS_REFRESH / 2).await;
        assert_eq!(cache.settings_of(&[1, 2]).await[&1].k, Some(6.0), "read again after a minute");
        assert_eq!(cache.store().reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_cannot_be_read_leaves_channels_on_what_was_read_last() {
        let cache = CachedChannelSettings::new(MemoryChannelSettings::default(), SETTINGS_REFRESH);
        cache.store().put(&entry(1, 5.0)).await.unwrap();
        cache.settings_of(&[1]).await;
        cache.store().set_down(true);
        tokio::time::advance(SETTINGS_REFRESH * 2).await;
        let read = cache.settings_of(&[1, 3]).await;
        assert_eq!(read[&1].k, Some(5.0));
        assert_eq!(read[&3], ChannelSettings::default());
        cache.store().set_down(false);
        cache.store().remove(1).await.unwrap();
        assert_eq!(
            cache.settings_of(&[1]).await[&1],
            ChannelSettings::default(),
            "read again once it is back"
        );
    }
}
