//! The DynamoDB adapters of the ports in `detector_state`, `highlights` and
//! `channel_settings`, and what they share: one item per broadcaster, batched reads,
//! conditional writes.
//!
//! Only with the `aws` feature: `highlights dev` and the other embedded paths build without the
//! AWS SDK. Item layouts that other code reads too (the highlight image the clipper gets from the
//! table's stream) live with their port, not here.

pub mod channel_settings;
pub mod highlights;
pub mod state;

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use highlights_core::BroadcasterId;

use crate::detector_state::StoreError;
use crate::resources::keys;

/// The key of a table with one item per broadcaster.
pub(crate) fn broadcaster_key(id: BroadcasterId) -> HashMap<String, AttributeValue> {
    HashMap::from([(keys::BROADCASTER_ID.to_owned(), AttributeValue::S(id.to_string()))])
}

/// BatchGetItem accepts at most 100 keys.
const BATCH_GET_LIMIT: usize = 100;

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

pub(crate) fn unavailable<E: std::error::Error + 'static>(error: E) -> StoreError {
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

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
