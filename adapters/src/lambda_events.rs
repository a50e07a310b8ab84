//! Lambda event payloads built the way Lambda's event-source mappings build them, so the local
//! runner and tests hand handlers exactly what production hands them. The structs of
//! `aws_lambda_events` cannot be constructed directly (`#[non_exhaustive]`): the payloads are
//! made as JSON and deserialised, which is also what the Lambda runtime does.

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
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
pub fn kinesis_event(stream_arn: &str, region: &str, records: &[KinesisRecordIn]) -> KinesisEvent {
    let records: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.approximate_arrival_s,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", r.shard_id, r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::000000000000:role/highlights-local",
                "awsRegion": region,
                "eventSourceARN": stream_arn,
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).expect("the Lambda Kinesis event shape")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
