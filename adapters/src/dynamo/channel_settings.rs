//! [`DynamoChannelSettings`]: the `channel-settings` table behind [`ChannelSettingsStore`].

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use highlights_core::{BroadcasterId, ChannelSettings};

use super::{batch_get_by_broadcaster, broadcaster_key};
use crate::channel_settings::{ChannelEntry, ChannelSettingsStore, SettingsStoreError};
use crate::resources::keys;

/// The DynamoDB adapter: table `channel-settings`, key `broadcaster_id` (S), one number
/// attribute per setting that is set, `login` and `updated_at`.
#[derive(Debug, Clone)]
pub struct DynamoChannelSettings {
    client: Client,
    table: String,
}

const LOGIN: &str = "login";
const UPDATED_AT: &str = "updated_at";
const K: &str = "k";
const COOLDOWN: &str = "cooldown_seconds";
const MIN_CHATTERS: &str = "min_chatters";
const CLIPS_PER_HOUR: &str = "clips_per_hour";

fn unavailable<E: std::error::Error + 'static>(error: E) -> SettingsStoreError {
    SettingsStoreError::Unavailable(DisplayErrorContext(&error).to_string())
}

impl DynamoChannelSettings {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// An item as stored; `Err` says what is wrong with one written by hand.
    fn parse(item: &HashMap<String, AttributeValue>) -> Result<ChannelEntry, String> {
        let id = item.get(keys::BROADCASTER_ID).and_then(|v| v.as_s().ok()).ok_or("no broadcaster_id")?;
        let broadcaster_id = id.parse().map_err(|_| format!("broadcaster_id {id:?} is not a number"))?;
        fn number<T: std::str::FromStr>(
            item: &HashMap<String, AttributeValue>,
            name: &str,
        ) -> Result<Option<T>, String> {
            match item.get(name) {
                None | Some(AttributeValue::Null(_)) => Ok(None),
                Some(AttributeValue::N(text)) => {
                    text.parse().map(Some).map_err(|_| format!("{name} = {text} is out of range"))
                }
                Some(other) => Err(format!("{name} is not a number: {other:?}")),
            }
        }
        Ok(ChannelEntry {
            broadcaster_id,
            login: item.get(LOGIN).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
            settings: ChannelSettings {
                k: number(item, K)?,
                cooldown_seconds: number(item, COOLDOWN)?,
                min_chatters: number(item, MIN_CHATTERS)?,
                clips_per_hour: number(item, CLIPS_PER_HOUR)?,
            },
            updated_at_ms: number(item, UPDATED_AT)?.unwrap_or(0),
        })
    }

    fn parse_logged(item: &HashMap<String, AttributeValue>) -> Option<ChannelEntry> {
        Self::parse(item)
            .inspect_err(
                |reason| tracing::warn!(%reason, "ignoring a channel-settings item that cannot be read"),
            )
            .ok()
    }
}

impl ChannelSettingsStore for DynamoChannelSettings {
    async fn load_many(
        &self,
        ids: &[BroadcasterId],
    ) -> Result<HashMap<BroadcasterId, ChannelSettings>, SettingsStoreError> {
        // Eventually consistent and few retries: settings are not worth waiting for, the cache
        // keeps the last known, and a minute's delay is what `channel set` promises anyway.
        let items = batch_get_by_broadcaster(&self.client, &self.table, ids, false, 4)
            .await
            .map_err(SettingsStoreError::Unavailable)?;
        Ok(items.iter().filter_map(Self::parse_logged).map(|e| (e.broadcaster_id, e.settings)).collect())
    }

    async fn list(&self) -> Result<Vec<ChannelEntry>, SettingsStoreError> {
        let mut entries = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            entries.extend(page.items().iter().filter_map(Self::parse_logged));
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        entries.sort_by(|a, b| (&a.login, a.broadcaster_id).cmp(&(&b.login, b.broadcaster_id)));
        Ok(entries)
    }

    async fn put(&self, entry: &ChannelEntry) -> Result<(), SettingsStoreError> {
        let settings = &entry.settings;
        let numbers = [
            (K, settings.k.map(|k| k.to_string())),
            (COOLDOWN, settings.cooldown_seconds.map(|n| n.to_string())),
            (MIN_CHATTERS, settings.min_chatters.map(|n| n.to_string())),
            (CLIPS_PER_HOUR, settings.clips_per_hour.map(|n| n.to_string())),
            (UPDATED_AT, Some(entry.updated_at_ms.to_string())),
        ];
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(keys::BROADCASTER_ID, AttributeValue::S(entry.broadcaster_id.to_string()))
            .item(LOGIN, AttributeValue::S(entry.login.clone()));
        for (name, value) in numbers {
            if let Some(value) = value {
                request = request.item(name, AttributeValue::N(value));
            }
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn remove(&self, id: BroadcasterId) -> Result<bool, SettingsStoreError> {
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(broadcaster_key(id)))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(removed.attributes().is_some_and(|a| !a.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_items_that_cannot_be_read_say_why() {
        let mut item = HashMap::from([
            (keys::BROADCASTER_ID.to_owned(), AttributeValue::S("42".into())),
            (K.to_owned(), AttributeValue::N("4.5".into())),
            (MIN_CHATTERS.to_owned(), AttributeValue::N("7".into())),
        ]);
        let parsed = DynamoChannelSettings::parse(&item).unwrap();
        assert_eq!(parsed.settings.k, Some(4.5));
        assert_eq!(parsed.settings.min_chatters, Some(7));
        item.insert(COOLDOWN.to_owned(), AttributeValue::S("soon".into()));
        assert!(
            DynamoChannelSettings::parse(&item).unwrap_err().contains("cooldown_seconds is not a number")
        );
        item.insert(COOLDOWN.to_owned(), AttributeValue::N("-3".into()));
        assert!(DynamoChannelSettings::parse(&item).unwrap_err().contains("out of range"));
        item.insert(keys::BROADCASTER_ID.to_owned(), AttributeValue::S("abc".into()));
        assert!(DynamoChannelSettings::parse(&item).unwrap_err().contains("not a number"));
    }
}
