//! Where the detector keeps each broadcaster's state between invocations: the
//! `detector-state` DynamoDB table, one item per broadcaster, written with optimistic
//! concurrency (a `version` attribute).
//!
//! The port is [`StateStore`]; [`DynamoStateStore`] is the real adapter and [`MemoryStateStore`]
//! the in-memory one for unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use highlights_core::BroadcasterId;

#[cfg(feature = "dynamodb")]
pub use crate::dynamo::state::DynamoStateStore;

/// A broadcaster's saved detector state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredState {
    pub broadcaster_id: BroadcasterId,
    /// Incremented by every write; 0 means "no item yet".
    pub version: u64,
    /// `ChannelDetector::encode_state`; absent after a reset (a new stream went online).
    pub detector: Option<Vec<u8>>,
    /// Kinesis sequence number of the last chat record applied (opaque, compared by
    /// [`sequence_after`](crate::detector_state::sequence_after)).
    pub last_sequence: Option<String>,
    /// The second of the last detection, kept beside the detector blob, so that a blob that
    /// cannot be restored does not take the cooldown with it.
    pub last_fire: Option<i64>,
    /// Set when the item's own `version` cannot be used: it can then be written only by
    /// [`StateStore::replace_broken`], on the condition that it is still broken this way.
    pub broken: Option<BrokenVersion>,
}

/// How an item's `version` attribute is broken (written by hand, or by an older format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokenVersion {
    Missing,
    /// A number that is not a version (negative, fractional, too large), as stored.
    NotAVersion(String),
    /// Not a number at all: its type and text, for the message.
    WrongType(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Someone else wrote the item since it was read.
    #[error("the item changed since it was read")]
    Conflict,
    #[error("state store unavailable: {0}")]
    Unavailable(String),
}

/// The port the detector handler uses.
pub trait StateStore: Send + Sync {
    /// The states of `ids` that exist (missing ones are simply absent).
    fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> impl Future<Output = Result<HashMap<BroadcasterId, StoredState>, StoreError>> + Send;

    /// Writes `state` if the stored version is still `expected_version` (0: no item yet).
    fn save(
        &self,
        state: &StoredState,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Forgets the detector state (keeps `last_sequence`) and bumps the version, so that an
    /// invocation in flight conflicts and reloads.
    fn reset(&self, id: BroadcasterId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Overwrites an item whose version is `broken` with `state`, once: the write is conditional
    /// on the item still being broken that way ([`StoreError::Conflict`] otherwise).
    fn replace_broken(
        &self,
        state: &StoredState,
        broken: &BrokenVersion,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// A store shared with others (`highlights dev` runs every handler on one embedded store).
impl<T: StateStore> StateStore for std::sync::Arc<T> {
    fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> impl Future<Output = Result<HashMap<BroadcasterId, StoredState>, StoreError>> + Send {
        T::load_many(self, ids)
    }
    fn save(
        &self,
        state: &StoredState,
        expected_version: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::save(self, state, expected_version)
    }
    fn reset(&self, id: BroadcasterId) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::reset(self, id)
    }
    fn replace_broken(
        &self,
        state: &StoredState,
        broken: &BrokenVersion,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        T::replace_broken(self, state, broken)
    }
}

/// True when Kinesis sequence number `a` comes after `b`. Sequence numbers are decimal strings
/// of varying length (short integers in the emulator, 56 digits in AWS).
pub fn sequence_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

/// In-memory [`StateStore`] for unit tests, with the same version semantics.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    items: Mutex<HashMap<BroadcasterId, StoredState>>,
}

impl MemoryStateStore {
    pub fn get(&self, id: BroadcasterId) -> Option<StoredState> {
        self.items.lock().expect("not poisoned").get(&id).cloned()
    }

    /// Stores `state` as it is, broken or not (tests of broken items).
    pub fn put_raw(&self, state: StoredState) {
        self.items.lock().expect("not poisoned").insert(state.broadcaster_id, state);
    }
}

impl StateStore for MemoryStateStore {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, StoredState>, StoreError> {
        let items = self.items.lock().expect("not poisoned");
        Ok(ids.iter().filter_map(|id| items.get(id).map(|s| (*id, s.clone()))).collect())
    }

    async fn save(&self, state: &StoredState, expected_version: u64) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("not poisoned");
        let current = items.get(&state.broadcaster_id);
        if current.map_or(0, |s| s.version) != expected_version || current.is_some_and(|s| s.broken.is_some())
        {
            return Err(StoreError::Conflict);
        }
        items.insert(state.broadcaster_id, state.clone());
        Ok(())
    }

    async fn reset(&self, id: BroadcasterId) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("not poisoned");
        let entry =
            items.entry(id).or_insert_with(|| StoredState { broadcaster_id: id, ..StoredState::default() });
        entry.version = if entry.broken.take().is_some() { 1 } else { entry.version + 1 };
        entry.detector = None;
        Ok(())
    }

    async fn replace_broken(&self, state: &StoredState, broken: &BrokenVersion) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("not poisoned");
        if items.get(&state.broadcaster_id).and_then(|s| s.broken.as_ref()) != Some(broken) {
            return Err(StoreError::Conflict);
        }
        items.insert(state.broadcaster_id, state.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("10", "9"));
        assert!(!sequence_after("9", "10"));
        assert!(!sequence_after("10", "10"));
        assert!(sequence_after(
            "49590338271490256608559692540925702759324208523137515619",
            "49590338271490256608559692538361571095921575989136588898"
        ));
        assert!(sequence_after("0011", "10"));
    }
}
