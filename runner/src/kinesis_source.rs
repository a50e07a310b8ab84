//! Kinesis shards as runner sources: `GetRecords` pages become Lambda `KinesisEvent`s.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::types::ShardIteratorType;
use base64::Engine as _;
use highlights_adapters::lambda_events::{KinesisRecordIn, WindowIn, kinesis_event, kinesis_window_event};

use crate::{Discovered, KinesisConsumer, RunnerError, Shard, WindowAnswer};

pub(crate) struct KinesisShard {
    client: aws_sdk_kinesis::Client,
    stream: String,
    stream_arn: String,
    shard_id: String,
    region: String,
    key: String,
    /// The key before keys named their mapping, still read once (see [`checkpoint_key`]).
    legacy_key: String,
    consumer: Arc<dyn KinesisConsumer>,
    tumbling_window: Option<Duration>,
}

/// The checkpoint key of `mapping`'s position in a shard of one incarnation of `stream` (created
/// at `created_ms`, Unix milliseconds): a stream deleted and created again reuses shard ids and
/// sequence numbers, so its creation time is part of the key; two mappings may read one stream
/// (the starter profile's detector and lifecycle functions), each at its own position, as Lambda
/// keeps one per event-source mapping. `mapping` is the mapping's dead-letter queue, one per
/// mapping.
pub fn checkpoint_key(stream: &str, created_ms: i64, shard_id: &str, mapping: &str) -> String {
    format!("{}#{mapping}", legacy_checkpoint_key(stream, created_ms, shard_id))
}

/// The key of checkpoint files written before keys named their mapping (one mapping per stream
/// then): taken over when the mapping's own key is absent, so an upgrade resumes where it stopped.
fn legacy_checkpoint_key(stream: &str, created_ms: i64, shard_id: &str) -> String {
    format!("kinesis/{stream}@{created_ms}/{shard_id}")
}

/// When the stream was created, Unix milliseconds: tells its incarnations apart.
pub fn created_ms(summary: &aws_sdk_kinesis::types::StreamDescriptionSummary) -> i64 {
    let at = summary.stream_creation_timestamp();
    at.secs() * 1000 + i64::from(at.subsec_nanos() / 1_000_000)
}

/// Every shard of `stream`.
pub(crate) async fn shards(
    sdk: &SdkConfig,
    stream: &str,
    mapping: &str,
    consumer: Arc<dyn KinesisConsumer>,
    region: &str,
    tumbling_window: Option<Duration>,
) -> Result<Discovered<KinesisShard>, RunnerError> {
    let client = aws_sdk_kinesis::Client::new(sdk);
    let error = |action, e: &dyn std::error::Error| RunnerError::Source {
        action,
        source_name: stream.to_owned(),
        message: DisplayErrorContext(e).to_string(),
    };
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| error("describe", &e))?;
    let described = summary.stream_description_summary();
    let arn = described.map(|s| s.stream_arn().to_owned()).unwrap_or_default();
    let created_ms = described.map_or(0, created_ms);
    let listed =
        client.list_shards().stream_name(stream).send().await.map_err(|e| error("list the shards of", &e))?;
    let shards = listed
        .shards()
        .iter()
        .map(|shard| KinesisShard {
            client: client.clone(),
            stream: stream.to_owned(),
            stream_arn: arn.clone(),
            shard_id: shard.shard_id().to_owned(),
            region: region.to_owned(),
            key: checkpoint_key(stream, created_ms, shard.shard_id(), mapping),
            legacy_key: legacy_checkpoint_key(stream, created_ms, shard.shard_id()),
            consumer: consumer.clone(),
            tumbling_window,
        })
        .collect();
    Ok(Discovered { identity: format!("{arn}@{created_ms}"), name: stream.to_owned(), shards })
}

impl Shard for KinesisShard {
    type Record = KinesisRecordIn;

    fn key(&self) -> &str {
        &self.key
    }

    fn legacy_key(&self) -> Option<&str> {
        Some(&self.legacy_key)
    }

    fn sequence(record: &KinesisRecordIn) -> &str {
        &record.sequence_number
    }

    async fn iterator(&self, after: Option<&str>) -> Result<Option<String>, String> {
        // Stream names throughout: the emulator wants one addressing style per iterator.
        let request = self.client.get_shard_iterator().stream_name(&self.stream).shard_id(&self.shard_id);
        let request = match after {
            Some(sequence) => request
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(sequence),
            None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
        };
        let response = request.send().await.map_err(|e| DisplayErrorContext(&e).to_string())?;
        Ok(response.shard_iterator().map(str::to_owned))
    }

    async fn fetch(
        &self,
        iterator: String,
        limit: usize,
    ) -> Result<(Vec<KinesisRecordIn>, Option<String>), String> {
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
            .map(|r| KinesisRecordIn {
                shard_id: self.shard_id.clone(),
                sequence_number: r.sequence_number().to_owned(),
                partition_key: r.partition_key().unwrap_or_default().to_owned(),
                data: r.data().as_ref().to_vec(),
                approximate_arrival_s: r.approximate_arrival_timestamp().map_or(0.0, |t| t.as_secs_f64()),
            })
            .collect();
        Ok((records, page.next_shard_iterator().map(str::to_owned)))
    }

    async fn invoke(&self, batch: &[KinesisRecordIn]) -> Vec<String> {
        self.consumer.invoke(kinesis_event(&self.stream_arn, &self.region, batch)).await
    }

    fn tumbling_window(&self) -> Option<Duration> {
        self.tumbling_window
    }

    fn arrival_s(record: &KinesisRecordIn) -> f64 {
        record.approximate_arrival_s
    }

    async fn invoke_window(&self, batch: &[KinesisRecordIn], window: &WindowIn) -> WindowAnswer {
        let window = WindowIn { shard_id: self.shard_id.clone(), ..window.clone() };
        self.consumer
            .invoke_window(kinesis_window_event(&self.stream_arn, &self.region, batch, &window))
            .await
    }

    fn dead_letter_body(&self, records: &[KinesisRecordIn]) -> serde_json::Value {
        serde_json::json!({
            "reason": "retries exhausted",
            "source": "kinesis",
            "stream": self.stream,
            "shard_id": self.shard_id,
            "records": records.iter().map(|r| serde_json::json!({
                "sequence_number": r.sequence_number,
                "partition_key": r.partition_key,
                "data_base64": base64::engine::general_purpose::STANDARD.encode(&r.data),
            })).collect::<Vec<_>>(),
        })
    }
}
