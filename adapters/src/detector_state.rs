//! Where the detector keeps each broadcaster's state between invocations: the
//! `detector-state` DynamoDB table, one item per broadcaster, written with optimistic
//! concurrency (a `version` attribute).
//!
//! The port is [`StateStore`]; [`DynamoStateStore`] is the real adapter and [`MemoryStateStore`]
//! the in-memory one for unit tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use highlights_core::BroadcasterId;

use crate::resources::keys;

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

/// The DynamoDB adapter.
#[derive(Debug, Clone)]
pub struct DynamoStateStore {
    client: Client,
    table: String,
}

const VERSION: &str = "version";
const DETECTOR: &str = "detector";
const LAST_SEQUENCE: &str = "last_sequence";
const UPDATED_AT: &str = "updated_at";
const LAST_FIRE: &str = "last_fire";

/// BatchGetItem accepts at most 100 keys.
const BATCH_GET_LIMIT: usize = 100;

/// The key of a table with one item per broadcaster.
pub(crate) fn broadcaster_key(id: BroadcasterId) -> HashMap<String, AttributeValue> {
    HashMap::from([(keys::BROADCASTER_ID.to_owned(), AttributeValue::S(id.to_string()))])
}

/// The items of `ids` that exist in `table` (keyed by broadcaster), in batches of 100; keys
/// DynamoDB leaves unprocessed (throttling) are asked again, at most `attempts` times in all.
pub(crate) async fn batch_get_by_broadcaster(
    client: &Client,
    table: &str,
    ids: &[BroadcasterId],
    consistent: bool,
    attempts: u32,
) -> Result<Vec<HashMap<String, AttributeValue>>, String> {
    let describe = |error: &dyn std::error::Error| DisplayErrorContext(error).to_string();
    let mut found = Vec::new();
    for chunk in ids.chunks(BATCH_GET_LIMIT) {
        let mut pending = KeysAndAttributes::builder()
            .set_keys(Some(chunk.iter().map(|&id| broadcaster_key(id)).collect()))
            .consistent_read(consistent)
            .build()
            .map_err(|e| describe(&e))?;
        for attempt in 0..attempts {
            let response = client
                .batch_get_item()
                .request_items(table, pending.clone())
                .send()
                .await
                .map_err(|e| describe(&e))?;
            found.extend(response.responses().and_then(|r| r.get(table)).into_iter().flatten().cloned());
            match response.unprocessed_keys().and_then(|u| u.get(table)) {
                Some(rest) if !rest.keys().is_empty() => {
                    if attempt + 1 == attempts {
                        return Err("BatchGetItem kept returning unprocessed keys".into());
                    }
                    pending = rest.clone();
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                }
                _ => break,
            }
        }
    }
    Ok(found)
}

impl DynamoStateStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn parse(item: &HashMap<String, AttributeValue>) -> Option<StoredState> {
        let broadcaster_id = item.get(keys::BROADCASTER_ID)?.as_s().ok()?.parse().ok()?;
        let (version, broken) = match item.get(VERSION) {
            None => (0, Some(BrokenVersion::Missing)),
            Some(AttributeValue::N(text)) => match text.parse::<u64>() {
                Ok(version) if version > 0 => (version, None),
                _ => (0, Some(BrokenVersion::NotAVersion(text.clone()))),
            },
            Some(other) => (0, Some(BrokenVersion::WrongType(format!("{other:?}")))),
        };
        Some(StoredState {
            broadcaster_id,
            version,
            detector: item.get(DETECTOR).and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec()),
            last_sequence: item.get(LAST_SEQUENCE).and_then(|v| v.as_s().ok()).cloned(),
            last_fire: item.get(LAST_FIRE).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()),
            broken,
        })
    }

    /// The item for `state`, without its condition.
    fn put(
        &self,
        state: &StoredState,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::BROADCASTER_ID, AttributeValue::S(state.broadcaster_id.to_string()))
            .item(VERSION, AttributeValue::N(state.version.to_string()))
            .item(UPDATED_AT, AttributeValue::N(now_ms().to_string()));
        if let Some(detector) = &state.detector {
            request = request.item(DETECTOR, AttributeValue::B(Blob::new(detector.clone())));
        }
        if let Some(sequence) = &state.last_sequence {
            request = request.item(LAST_SEQUENCE, AttributeValue::S(sequence.clone()));
        }
        if let Some(fired) = state.last_fire {
            request = request.item(LAST_FIRE, AttributeValue::N(fired.to_string()));
        }
        request
    }
}

fn unavailable<E: std::error::Error + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}

/// The outcome of a conditional DynamoDB write: `Ok(false)` when its condition did not hold.
pub(crate) fn condition_held<O, E, R>(
    result: Result<O, aws_sdk_dynamodb::error::SdkError<E, R>>,
) -> Result<bool, StoreError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException") =>
        {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl StateStore for DynamoStateStore {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, StoredState>, StoreError> {
        // Consistent reads: the state must be the one the last invocation saved.
        let items = batch_get_by_broadcaster(&self.client, &self.table, ids, true, 8)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(items.iter().filter_map(Self::parse).map(|state| (state.broadcaster_id, state)).collect())
    }

    async fn save(&self, state: &StoredState, expected_version: u64) -> Result<(), StoreError> {
        let mut request = self.put(state);
        request = if expected_version == 0 {
            request
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", keys::BROADCASTER_ID)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":expected", AttributeValue::N(expected_version.to_string()))
        };
        if condition_held(request.send().await)? { Ok(()) } else { Err(StoreError::Conflict) }
    }

    async fn replace_broken(&self, state: &StoredState, broken: &BrokenVersion) -> Result<(), StoreError> {
        let request = self.put(state).expression_attribute_names("#version", VERSION);
        let request = match broken {
            BrokenVersion::Missing => request.condition_expression("attribute_not_exists(#version)"),
            BrokenVersion::NotAVersion(text) => request
                .condition_expression("#version = :broken")
                .expression_attribute_values(":broken", AttributeValue::N(text.clone())),
            // Any other type: still not a number.
            BrokenVersion::WrongType(_) => request
                .condition_expression("attribute_exists(#version) AND NOT attribute_type(#version, :number)")
                .expression_attribute_values(":number", AttributeValue::S("N".into())),
        };
        if condition_held(request.send().await)? { Ok(()) } else { Err(StoreError::Conflict) }
    }

    async fn reset(&self, id: BroadcasterId) -> Result<(), StoreError> {
        // A broken item (its version unusable) cannot simply be bumped: it is replaced once, as
        // the detector would, keeping its sequence and cooldown. A few rounds, in case the
        // detector writes it at the same moment.
        for _ in 0..3 {
            let current = self.load_many(&[id]).await?.remove(&id);
            if let Some((current, broken)) = current.and_then(|c| c.broken.clone().map(|b| (c, b))) {
                let fresh = StoredState { version: 1, detector: None, broken: None, ..current };
                match self.replace_broken(&fresh, &broken).await {
                    Err(StoreError::Conflict) => continue,
                    other => return other,
                }
            }
            let bumped = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(broadcaster_key(id)))
                .update_expression(
                    "SET #version = if_not_exists(#version, :zero) + :one, #updated = :now REMOVE #detector",
                )
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_names("#updated", UPDATED_AT)
                .expression_attribute_names("#detector", DETECTOR)
                .expression_attribute_values(":zero", AttributeValue::N("0".into()))
                .expression_attribute_values(":one", AttributeValue::N("1".into()))
                .expression_attribute_values(":now", AttributeValue::N(now_ms().to_string()))
                .send()
                .await;
            match bumped {
                Ok(_) => return Ok(()),
                // Broken since it was read (the version is no longer a number): look again.
                Err(error)
                    if aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&error)
                        == Some("ValidationException") =>
                {
                    continue;
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(StoreError::Conflict)
    }
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
