//! What a scenario counts, each from its own source of truth: the chat that reached Kinesis (read
//! back from the emulator), what the detector should have found in it (the same handler, run
//! without faults on those very records, with in-memory state: `highlights backtest` for a
//! stream), what the system found (DynamoDB), the clip rows (PostgreSQL), and what the
//! components' metrics say (their EMF lines).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context as _;
use aws_sdk_kinesis::types::ShardIteratorType;
use clap::Parser as _;
use detector_function::DetectorHandler;
use highlights_adapters::clips::HighlightKey;
use highlights_adapters::detector_state::MemoryStateStore;
use highlights_adapters::highlights::{DynamoHighlights, HighlightProgress as _, MemoryHighlights};
use highlights_adapters::lambda_events::{KinesisRecordIn, kinesis_event};
use highlights_adapters::settings::DetectorSettings;
use highlights_core::{Detection, wire};

use crate::world::World;

/// A detection as the comparisons see it: every field the detector decides.
pub fn key(d: &Detection) -> String {
    format!("{} {} {} {} {}", d.broadcaster_id, d.peak_second, d.fired_second, d.intensity, d.message_count)
}

/// The chat stream as it is in the emulator.
#[derive(Debug, Default)]
pub struct ChatStream {
    /// Records of each shard, in order.
    pub shards: BTreeMap<String, Vec<KinesisRecordIn>>,
    pub stream_arn: String,
    /// When the stream was created (Unix ms): part of the runner's checkpoint keys.
    pub created_ms: i64,
    /// Chat messages in all records, repeats included.
    pub messages: u64,
    /// Distinct message ids.
    pub ids: BTreeSet<String>,
    /// The most messages one record holds.
    pub max_record_messages: u64,
}

impl ChatStream {
    /// Adds `record` to its shard, counting the chat it carries.
    pub fn push(&mut self, record: KinesisRecordIn) {
        if let Ok(batch) = wire::decode(&record.data) {
            self.messages += batch.messages.len() as u64;
            self.max_record_messages = self.max_record_messages.max(batch.messages.len() as u64);
            self.ids.extend(batch.messages.into_iter().map(|m| m.id));
        }
        self.shards.entry(record.shard_id.clone()).or_default().push(record);
    }

    /// The runner's checkpoint key for `mapping` (its dead-letter queue) and the last sequence
    /// number of each non-empty shard.
    pub fn ends(&self, stream: &str, mapping: &str) -> BTreeMap<String, String> {
        self.shards
            .iter()
            .filter_map(|(shard, records)| {
                let key = highlights_runner::kinesis_checkpoint_key(stream, self.created_ms, shard, mapping);
                Some((key, records.last()?.sequence_number.clone()))
            })
            .collect()
    }
}

pub async fn read_chat_stream(world: &World) -> anyhow::Result<ChatStream> {
    let client = aws_sdk_kinesis::Client::new(world.sdk());
    let stream = &world.resources.chat_stream.name;
    let summary = client.describe_stream_summary().stream_name(stream).send().await?;
    let described = summary.stream_description_summary();
    let mut contents = ChatStream {
        stream_arn: described.map(|s| s.stream_arn().to_owned()).unwrap_or_default(),
        created_ms: described.map_or(0, highlights_runner::kinesis_stream_created_ms),
        ..ChatStream::default()
    };
    let shards = client.list_shards().stream_name(stream).send().await?;
    for shard in shards.shards() {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await?
            .shard_iterator
            .context("no shard iterator")?;
        contents.shards.entry(shard.shard_id().to_owned()).or_default();
        loop {
            let page = client.get_records().shard_iterator(&iterator).limit(10_000).send().await?;
            if page.records().is_empty() {
                break;
            }
            for record in page.records() {
                contents.push(KinesisRecordIn {
                    shard_id: shard.shard_id().to_owned(),
                    sequence_number: record.sequence_number().to_owned(),
                    partition_key: record.partition_key().unwrap_or_default().to_owned(),
                    data: record.data().as_ref().to_vec(),
                    approximate_arrival_s: record
                        .approximate_arrival_timestamp()
                        .map_or(0.0, |t| t.as_secs_f64()),
                });
            }
            match page.next_shard_iterator() {
                Some(next) => iterator = next.to_owned(),
                None => break,
            }
        }
    }
    Ok(contents)
}

/// The detector's settings from the same flags the runner was given.
pub fn detector_config(flags: &[String]) -> anyhow::Result<highlights_core::DetectorConfig> {
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        detector: DetectorSettings,
    }
    let flags = Flags::try_parse_from(std::iter::once("reference".to_owned()).chain(flags.iter().cloned()))?;
    Ok(flags.detector.config()?)
}

/// What the detector finds in `stream` when nothing fails: the same handler on the same
/// records, one invocation per shard, with in-memory state.
pub async fn reference_detections(stream: &ChatStream, flags: &[String]) -> anyhow::Result<Vec<Detection>> {
    let handler = DetectorHandler::new(
        detector_config(flags)?,
        MemoryStateStore::default(),
        MemoryHighlights::default(),
    );
    for records in stream.shards.values() {
        let (response, _) = handler.handle(&kinesis_event(&stream.stream_arn, "us-east-1", records)).await;
        anyhow::ensure!(response.batch_item_failures.is_empty(), "the reference detector failed a record");
    }
    Ok(handler.outbox().all())
}

/// The highlights the system wrote (DynamoDB), with the clipper's progress on each.
pub async fn system_detections(world: &World) -> anyhow::Result<Vec<(Detection, Option<String>)>> {
    let table = DynamoHighlights::new(
        aws_sdk_dynamodb::Client::new(world.sdk()),
        &world.resources.highlights_table.name,
    );
    let mut all = Vec::new();
    for channel in &world.plan.channels {
        for detection in table.list(channel.room_id).await? {
            let status = table.progress(HighlightKey::of(&detection)).await?.map(|p| p.status);
            all.push((detection, status));
        }
    }
    Ok(all)
}

/// One row of the `clips` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipRow {
    pub broadcaster_id: u64,
    pub detected_at_s: i64,
    pub clip_id: String,
    pub confirmed: bool,
}

pub async fn clip_rows(db: &tokio_postgres::Client) -> anyhow::Result<Vec<ClipRow>> {
    let rows = db
        .query(
            "SELECT broadcaster_id, extract(epoch FROM detected_at)::bigint, clip_id, confirmed FROM clips",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ClipRow {
            broadcaster_id: row.get::<_, String>(0).parse().unwrap_or_default(),
            detected_at_s: row.get(1),
            clip_id: row.get(2),
            confirmed: row.get(3),
        })
        .collect())
}

/// The sum of metric `name` over every EMF line in `files`, and the number of lines it was in.
pub fn metric_sum(files: &[PathBuf], name: &str) -> (f64, u64) {
    let (mut sum, mut lines) = (0.0, 0);
    for file in files {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines() {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
                && let Some(n) = value.get(name).and_then(serde_json::Value::as_f64)
            {
                sum += n;
                lines += 1;
            }
        }
    }
    (sum, lines)
}
