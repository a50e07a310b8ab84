//! [`DynamoHighlights`]: the `highlights` table, the detector's outbox and the clipper's
//! progress on each highlight. The item's layout is `crate::highlights`' (the clipper reads the
//! same layout from the table's stream).

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use highlights_core::{BroadcasterId, Detection};
use serde_dynamo::Item;

use super::{condition_held, now_ms, unavailable};
use crate::clips::HighlightKey;
use crate::detector_state::StoreError;
use crate::highlights::{
    HighlightOutbox, HighlightProgress, Progress, STATUS, detection_item, parse_detection,
};
use crate::resources::keys;

// The clipper's progress: attributes only the table holds (the stream image of a new item has
// none of them).
const CLIP_ID: &str = "clip_id";
const ATTEMPTS: &str = "attempts";
const REASON: &str = "reason";
const INTENT_AT: &str = "intent_at";

#[derive(Debug, Clone)]
pub struct DynamoHighlights {
    client: Client,
    table: String,
}

impl DynamoHighlights {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Every detection of `broadcaster_id`, oldest peak first (for tests and tools).
    pub async fn list(&self, broadcaster_id: BroadcasterId) -> Result<Vec<Detection>, StoreError> {
        let mut detections = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#id = :id")
                .expression_attribute_names("#id", keys::BROADCASTER_ID)
                .expression_attribute_values(":id", AttributeValue::S(broadcaster_id.to_string()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            detections
                .extend(page.items().iter().filter_map(|item| parse_detection(&Item::from(item.clone()))));
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(detections),
            }
        }
    }
}

impl DynamoHighlights {
    fn key(highlight: HighlightKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (keys::BROADCASTER_ID.to_owned(), AttributeValue::S(highlight.broadcaster_id.to_string())),
            (keys::PEAK_AT.to_owned(), AttributeValue::N(highlight.peak_second.to_string())),
        ])
    }

    async fn update(
        &self,
        highlight: HighlightKey,
        expression: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(highlight)))
            .update_expression(expression)
            // Never creates an item: one gone (its TTL) stays gone rather than coming back as a
            // bare key that no stream consumer can read.
            .condition_expression("attribute_exists(#peak)")
            .expression_attribute_names("#peak", keys::PEAK_AT)
            .expression_attribute_names("#status", STATUS);
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }
}

impl HighlightProgress for DynamoHighlights {
    async fn progress(&self, highlight: HighlightKey) -> Result<Option<Progress>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(highlight)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(item.item().map(|item| {
            let text = |key: &str| item.get(key).and_then(|v| v.as_s().ok()).cloned();
            Progress {
                status: text(STATUS).unwrap_or_else(|| "pending".into()),
                clip_id: text(CLIP_ID),
                attempts: item
                    .get(ATTEMPTS)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0),
                reason: text(REASON),
                intent_at_ms: item.get(INTENT_AT).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()),
            }
        }))
    }

    async fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let written = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(highlight)))
            .update_expression("SET #status = :creating, intent_at = :at, attempts = :attempt")
            .condition_expression(
                "attribute_exists(#peak) AND attribute_not_exists(clip_id) AND NOT #status IN (:stored, :failed)",
            )
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#peak", keys::PEAK_AT)
            .expression_attribute_values(":creating", AttributeValue::S("creating".into()))
            .expression_attribute_values(":stored", AttributeValue::S("stored".into()))
            .expression_attribute_values(":failed", AttributeValue::S("failed".into()))
            .expression_attribute_values(":at", AttributeValue::N(at_ms.to_string()))
            .expression_attribute_values(":attempt", AttributeValue::N(attempt.to_string()))
            .send()
            .await;
        condition_held(written)
    }

    async fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.update(
            highlight,
            "SET #status = :status, clip_id = :clip, attempts = :attempts",
            vec![
                (":status", AttributeValue::S("created".into())),
                (":clip", AttributeValue::S(clip_id.to_owned())),
                (":attempts", AttributeValue::N(attempts.to_string())),
            ],
        )
        .await
    }

    async fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.update(
            highlight,
            "SET #status = :status, reason = :reason, attempts = :attempts",
            vec![
                (":status", AttributeValue::S("failed".into())),
                (":reason", AttributeValue::S(reason.to_owned())),
                (":attempts", AttributeValue::N(attempts.to_string())),
            ],
        )
        .await
    }

    async fn record_stored(&self, highlight: HighlightKey, confirmed: bool) -> Result<(), StoreError> {
        self.update(
            highlight,
            "SET #status = :status, confirmed = :confirmed",
            vec![
                (":status", AttributeValue::S("stored".into())),
                (":confirmed", AttributeValue::Bool(confirmed)),
            ],
        )
        .await
    }
}

impl HighlightOutbox for DynamoHighlights {
    async fn record(&self, detection: &Detection) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(detection_item(detection, now_ms()).into()))
            .condition_expression("attribute_not_exists(#peak)")
            .expression_attribute_names("#peak", keys::PEAK_AT)
            .send()
            .await;
        condition_held(put)
    }
}
