//! Lambda event payloads built the way Lambda's event-source mappings build them, so the local
//! runner and tests hand handlers exactly what production hands them. The structs of
//! `aws_lambda_events` cannot be constructed directly (`#[non_exhaustive]`): the payloads are
//! made as JSON and deserialised, which is also what the Lambda runtime does.

use std::collections::HashMap;

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisTimeWindowEvent};
use serde_json::{Value, json};

/// One Kinesis record as read from a shard.
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisRecordIn {
    pub shard_id: String,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    /// Seconds since the epoch, as Kinesis reports it.
    pub approximate_arrival_s: f64,
}

/// The `KinesisEvent` a Lambda event-source mapping on `stream_arn` would deliver.
///
/// One record is made through JSON (what the runtime does) and the others are copies of it with
/// their own fields: going through JSON and base64 for every record cost half of
/// `highlights dev`'s time at full speed.
pub fn kinesis_event(stream_arn: &str, region: &str, records: &[KinesisRecordIn]) -> KinesisEvent {
    let Some(first) = records.first() else {
        return serde_json::from_value(json!({ "Records": [] })).expect("the Lambda Kinesis event shape");
    };
    let template = json!({
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": first.partition_key,
            "sequenceNumber": first.sequence_number,
            "data": "",
            "approximateArrivalTimestamp": first.approximate_arrival_s,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/highlights-local",
        "awsRegion": region,
        "eventSourceARN": stream_arn,
    });
    let mut event: KinesisEvent =
        serde_json::from_value(json!({ "Records": [template] })).expect("the Lambda Kinesis event shape");
    let template = event.records.pop().expect("one record");
    event.records = records
        .iter()
        .map(|r| {
            let mut record = template.clone();
            record.kinesis.partition_key.clone_from(&r.partition_key);
            record.kinesis.sequence_number.clone_from(&r.sequence_number);
            record.kinesis.data.0.clone_from(&r.data);
            record.kinesis.approximate_arrival_timestamp =
                aws_lambda_events::encodings::SecondTimestamp(seconds_to_time(r.approximate_arrival_s));
            record.event_id = Some(format!("{}:{}", r.shard_id, r.sequence_number));
            record
        })
        .collect();
    event
}

/// Where an invocation stands in a tumbling window (`TumblingWindowInSeconds` on the mapping).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WindowIn {
    /// The window's bounds, Unix seconds.
    pub start_s: i64,
    pub end_s: i64,
    /// What the window's previous invocation returned (empty at its first).
    pub state: HashMap<String, String>,
    pub shard_id: String,
    pub is_final: bool,
    pub terminated_early: bool,
}

/// The `KinesisTimeWindowEvent` a mapping with a tumbling window would deliver: the records of
/// [`kinesis_event`] plus the window's properties.
pub fn kinesis_window_event(
    stream_arn: &str,
    region: &str,
    records: &[KinesisRecordIn],
    window: &WindowIn,
) -> KinesisTimeWindowEvent {
    let properties = json!({
        "window": { "start": seconds_to_time(window.start_s as f64), "end": seconds_to_time(window.end_s as f64) },
        "state": window.state,
        "shardId": window.shard_id,
        "eventSourceARN": stream_arn,
        "isFinalInvokeForWindow": window.is_final,
        "isWindowTerminatedEarly": window.terminated_early,
    });
    let mut event: KinesisTimeWindowEvent = serde_json::from_value(
        json!({ "Records": [] }).as_object().cloned().map_or(Value::Null, |mut object| {
            object.extend(properties.as_object().cloned().unwrap_or_default());
            Value::Object(object)
        }),
    )
    .expect("the Lambda Kinesis time-window event shape");
    event.kinesis_event = kinesis_event(stream_arn, region, records);
    event
}

fn seconds_to_time(seconds: f64) -> chrono::DateTime<chrono::Utc> {
    let millis = (seconds * 1000.0).round() as i64;
    chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_events_carry_the_window_and_its_state() {
        let record = KinesisRecordIn {
            shard_id: "shardId-000000000001".into(),
            sequence_number: "42".into(),
            partition_key: "7".into(),
            data: vec![1, 2, 3],
            // A whole second: aws_lambda_events 1.2 writes 0.5 s back as 0.005 s when it
            // serialises (reading what Lambda sends is right).
            approximate_arrival_s: 1_700_000_000.0,
        };
        let window = WindowIn {
            start_s: 1_700_000_000,
            end_s: 1_700_000_060,
            state: HashMap::from([("7".to_owned(), "{}".to_owned())]),
            shard_id: "shardId-000000000001".into(),
            is_final: true,
            terminated_early: false,
        };
        let event = kinesis_window_event("arn:stream", "us-east-1", &[record], &window);
        let properties = &event.time_window_properties;
        assert_eq!(properties.state, window.state);
        assert!(properties.is_final_invoke_for_window && !properties.is_window_terminated_early);
        assert_eq!(properties.window.end.timestamp(), 1_700_000_060);
        assert_eq!(properties.shard_id.as_deref(), Some("shardId-000000000001"));
        assert_eq!(event.kinesis_event.records[0].kinesis.data.0, vec![1, 2, 3]);
        // What Lambda sends deserialises into the same type (the runtime's path).
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["isFinalInvokeForWindow"], true, "{json}");
        let back: KinesisTimeWindowEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn events_carry_the_bytes_and_sequence_numbers() {
        let record = KinesisRecordIn {
            shard_id: "shardId-000000000000".into(),
            sequence_number: "49590338271490256608559692538361571095921575989136588898".into(),
            partition_key: "42".into(),
            data: vec![1, 0, 42, 0xff],
            approximate_arrival_s: 1_700_000_000.5,
        };
        let event = kinesis_event(
            "arn:aws:kinesis:us-east-1:000000000000:stream/chat-messages",
            "us-east-1",
            std::slice::from_ref(&record),
        );
        assert_eq!(event.records.len(), 1);
        assert_eq!(event.records[0].kinesis.data.0, record.data);
        assert_eq!(event.records[0].kinesis.sequence_number, record.sequence_number);
        assert_eq!(event.records[0].kinesis.partition_key, "42");
        assert_eq!(
            event.records[0].event_source_arn.as_deref(),
            Some("arn:aws:kinesis:us-east-1:000000000000:stream/chat-messages")
        );
    }

    #[test]
    fn every_record_keeps_its_own_fields() {
        let records: Vec<KinesisRecordIn> = (0..3u8)
            .map(|i| KinesisRecordIn {
                shard_id: "shardId-000000000001".into(),
                sequence_number: format!("10{i}"),
                partition_key: format!("7{i}"),
                data: vec![i; usize::from(i) + 1],
                approximate_arrival_s: 1_700_000_000.0 + f64::from(i),
            })
            .collect();
        let event = kinesis_event("arn:aws:kinesis:local:0:stream/s", "local", &records);
        assert!(kinesis_event("arn", "local", &[]).records.is_empty());
        for (record, sent) in event.records.iter().zip(&records) {
            assert_eq!(record.kinesis.sequence_number, sent.sequence_number);
            assert_eq!(record.kinesis.partition_key, sent.partition_key);
            assert_eq!(record.kinesis.data.0, sent.data);
            assert_eq!(
                record.kinesis.approximate_arrival_timestamp.0.timestamp(),
                sent.approximate_arrival_s as i64
            );
            assert_eq!(
                record.event_id.as_deref(),
                Some(format!("shardId-000000000001:{}", sent.sequence_number).as_str())
            );
        }
        assert_eq!(event.records.len(), 3);
    }
}

/// One DynamoDB stream record as read from a stream shard, its image already in DynamoDB JSON
/// (`{"S": "..."}`, `{"N": "..."}`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoRecordIn {
    pub event_id: String,
    /// `INSERT`, `MODIFY` or `REMOVE`.
    pub event_name: String,
    pub sequence_number: String,
    pub keys: Value,
    pub new_image: Value,
    pub approximate_creation_s: i64,
}

/// The DynamoDB stream `Event` a Lambda event-source mapping on `stream_arn` would deliver.
pub fn dynamodb_event(
    stream_arn: &str,
    region: &str,
    records: &[DynamoRecordIn],
) -> aws_lambda_events::event::dynamodb::Event {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "eventID": r.event_id,
                "eventName": r.event_name,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
                "dynamodb": {
                    "ApproximateCreationDateTime": r.approximate_creation_s,
                    "Keys": r.keys,
                    "NewImage": r.new_image,
                    "SequenceNumber": r.sequence_number,
                    "SizeBytes": r.new_image.to_string().len(),
                    "StreamViewType": "NEW_IMAGE",
                },
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("the Lambda DynamoDB stream event shape")
}

/// DynamoDB JSON of an item, as a stream record's image carries it (for tests and tools).
pub fn item_json(item: &serde_dynamo::Item) -> Value {
    serde_json::to_value(item).expect("an item is JSON")
}
