//! DynamoDB stream shards as runner sources: the records of one kind of change (INSERT for the
//! clipper, MODIFY for the announcer) become Lambda DynamoDB `Event`s; other records are dropped,
//! as the mappings' filter criteria drop them in AWS.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_dynamodbstreams::error::DisplayErrorContext;
use aws_sdk_dynamodbstreams::types::{AttributeValue, OperationType, ShardIteratorType};
use base64::Engine as _;
use highlights_adapters::lambda_events::{DynamoRecordIn, dynamodb_event};
use serde_json::{Value, json};

use crate::{Discovered, DynamoConsumer, RunnerError, Shard, TableChange};

pub(crate) struct DynamoShard {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    shard_id: String,
    region: String,
    key: String,
    change: TableChange,
    consumer: Arc<dyn DynamoConsumer>,
}

/// Every shard of the latest stream of `table`.
pub(crate) async fn shards(
    sdk: &SdkConfig,
    table: &str,
    change: TableChange,
    consumer: Arc<dyn DynamoConsumer>,
    region: &str,
) -> Result<Discovered<DynamoShard>, RunnerError> {
    let error =
        |action, message: String| RunnerError::Source { action, source_name: table.to_owned(), message };
    let described = aws_sdk_dynamodb::Client::new(sdk)
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| error("describe", aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string()))?;
    let Some(arn) = described.table().and_then(|t| t.latest_stream_arn()).map(str::to_owned) else {
        return Err(error(
            "read the stream of",
            "the table has no stream (run `highlights local provision`)".into(),
        ));
    };
    // The stream's label (its creation time): a table deleted and created again may reuse shard
    // ids (the emulator does), so the label is part of the checkpoint keys.
    let label = arn.rsplit_once("/stream/").map_or(arn.as_str(), |(_, label)| label).to_owned();
    let client = aws_sdk_dynamodbstreams::Client::new(sdk);
    let stream = client
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .map_err(|e| error("describe the stream of", DisplayErrorContext(&e).to_string()))?;
    let shards = stream.stream_description().map(|d| d.shards().to_vec()).unwrap_or_default();
    let shards = shards
        .iter()
        .filter_map(|shard| shard.shard_id())
        .map(|shard_id| DynamoShard {
            client: client.clone(),
            stream_arn: arn.clone(),
            shard_id: shard_id.to_owned(),
            region: region.to_owned(),
            // Each kind of change is its own mapping, with its own position in the shard.
            key: match change {
                TableChange::Insert => format!("dynamodb/{table}@{label}/{shard_id}"),
                TableChange::Modify => format!("dynamodb-modify/{table}@{label}/{shard_id}"),
            },
            change,
            consumer: consumer.clone(),
        })
        .collect();
    // The stream ARN names its creation (a label per stream): a new table is a new identity.
    Ok(Discovered { identity: arn, name: table.to_owned(), shards })
}

/// DynamoDB JSON (`{"S": ...}`) of a stream attribute value.
fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) }),
        AttributeValue::L(list) => json!({ "L": list.iter().map(attribute_json).collect::<Vec<_>>() }),
        AttributeValue::M(map) => json!({ "M": image_json(map) }),
        AttributeValue::Ss(set) => json!({ "SS": set }),
        AttributeValue::Ns(set) => json!({ "NS": set }),
        _ => Value::Null,
    }
}

fn image_json(image: &std::collections::HashMap<String, AttributeValue>) -> Value {
    Value::Object(image.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect())
}

impl Shard for DynamoShard {
    type Record = DynamoRecordIn;

    fn key(&self) -> &str {
        &self.key
    }

    fn sequence(record: &DynamoRecordIn) -> &str {
        &record.sequence_number
    }

    async fn iterator(&self, after: Option<&str>) -> Result<Option<String>, String> {
        let request = self.client.get_shard_iterator().stream_arn(&self.stream_arn).shard_id(&self.shard_id);
        let request = match after {
            Some(sequence) => {
                request.shard_iterator_type(ShardIteratorType::AfterSequenceNumber).sequence_number(sequence)
            }
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let response = request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(response.shard_iterator().map(str::to_owned))
    }

    async fn fetch(
        &self,
        iterator: String,
        limit: usize,
    ) -> Result<(Vec<DynamoRecordIn>, Option<String>), String> {
        let page = self
            .client
            .get_records()
            .shard_iterator(iterator)
            .limit(limit as i32)
            .send()
            .await
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        let records = page
            .records()
            .iter()
            .filter(|r| match self.change {
                TableChange::Insert => r.event_name() == Some(&OperationType::Insert),
                TableChange::Modify => r.event_name() == Some(&OperationType::Modify),
            })
            .filter_map(|r| {
                let change = r.dynamodb()?;
                Some(DynamoRecordIn {
                    event_id: r.event_id().unwrap_or_default().to_owned(),
                    event_name: match self.change {
                        TableChange::Insert => "INSERT".into(),
                        TableChange::Modify => "MODIFY".into(),
                    },
                    sequence_number: change.sequence_number()?.to_owned(),
                    keys: change.keys().map_or(Value::Null, image_json),
                    new_image: change.new_image().map_or(Value::Null, image_json),
                    approximate_creation_s: change.approximate_creation_date_time().map_or(0, |t| t.secs()),
                })
            })
            .collect();
        Ok((records, page.next_shard_iterator().map(str::to_owned)))
    }

    async fn invoke(&self, batch: &[DynamoRecordIn]) -> Vec<String> {
        self.consumer.invoke(dynamodb_event(&self.stream_arn, &self.region, batch)).await
    }

    fn dead_letter_body(&self, records: &[DynamoRecordIn]) -> Value {
        json!({
            "reason": "retries exhausted",
            "source": "dynamodb",
            "stream_arn": self.stream_arn,
            "shard_id": self.shard_id,
            "records": records.iter().map(|r| json!({
                "sequence_number": r.sequence_number,
                "keys": r.keys,
                "new_image": r.new_image,
            })).collect::<Vec<_>>(),
        })
    }
}
