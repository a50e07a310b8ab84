//! [`DynamoStateStore`]: the `detector-state` table, one item per broadcaster, written with
//! optimistic concurrency on its `version` attribute.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use highlights_core::BroadcasterId;

use super::{batch_get_by_broadcaster, broadcaster_key, condition_held, now_ms, unavailable};
use crate::detector_state::{BrokenVersion, StateStore, StoreError, StoredState};
use crate::resources::keys;

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
