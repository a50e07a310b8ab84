//! `highlights local replay`: feeds recorded chat into the `chat-messages` stream as the
//! ingester would (wire format v1, one batch per broadcaster per second of event time, the
//! watermark at the end of that second), then closes every broadcaster with a final watermark,
//! so the local pipeline sees exactly what `highlights backtest` sees.
//!
//! The batching in event time ([`event_time_batches`]) is `highlights dev --replay`'s too; only
//! the Kinesis side needs the `cloud` feature.

use std::collections::BTreeMap;
use std::path::PathBuf;

#[cfg(feature = "cloud")]
use anyhow::Context as _;
#[cfg(feature = "cloud")]
use highlights_adapters::{
    kinesis_out::{self, OutRecord},
    resources::Resources,
    settings::DetectorSettings,
};
#[cfg(feature = "cloud")]
use highlights_core::wire;
use highlights_core::{BroadcasterId, BroadcasterMap, ChatBatch, ChatMessage};

use crate::input::{self, Format};

#[cfg(feature = "cloud")]
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// Recorded chat files (same formats as `backtest`).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// The detector's lateness, to size the closing watermark (DETECTOR_LATENESS_MS).
    #[arg(long, env = "DETECTOR_LATENESS_MS", default_value_t = DetectorSettings::default_lateness_ms())]
    lateness_ms: u32,
}

#[cfg(feature = "cloud")]
pub fn run(args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        std::env::var_os("AWS_ENDPOINT_URL").is_some(),
        "AWS_ENDPOINT_URL is not set: start the local stack (localstack/up) and `. .local/stack/env`"
    );
    let stream = Resources::from_env().chat_stream.name;
    let Replay { batches, messages, .. } = event_time_batches(&args.files, args.format, args.lateness_ms)?;
    let records: Vec<OutRecord> = batches
        .iter()
        .map(|batch| OutRecord { partition_key: batch.broadcaster_id.to_string(), data: wire::encode(batch) })
        .collect();
    crate::stack::runtime()?.block_on(async {
        let sdk = highlights_adapters::aws::from_env().await;
        let client = aws_sdk_kinesis::Client::new(&sdk);
        let retried = kinesis_out::put_all(&client, &stream, &records, 8)
            .await
            .context("cannot replay into Kinesis")?;
        eprintln!(
            "replayed {messages} messages as {} records into {stream} ({retried} entries retried)",
            records.len()
        );
        anyhow::Ok(())
    })
}

/// Recorded chat, batched in event time.
pub struct Replay {
    pub batches: Vec<ChatBatch>,
    /// Messages in the batches.
    pub messages: u64,
    /// The channels' logins, where the files name them.
    pub channels: BTreeMap<BroadcasterId, String>,
    /// The VODs the files are the chat of (TwitchDownloader exports).
    pub vods: Vec<input::Vod>,
}

/// Recorded chat as the ingester batches it, in event time: one batch per broadcaster per second
/// of chat (the watermark at the end of that second), then a closing watermark per broadcaster
/// (`lateness_ms` past its last second), so a consumer sees exactly what `backtest` sees. Bad
/// records are reported on stderr and skipped.
pub fn event_time_batches(files: &[PathBuf], format: Format, lateness_ms: u32) -> anyhow::Result<Replay> {
    // Open batches per broadcaster: (second, batch). A batch is closed when the broadcaster's
    // chat moves to a later second.
    let mut open: BroadcasterMap<(i64, ChatBatch)> = BroadcasterMap::default();
    let mut batches: Vec<ChatBatch> = Vec::new();
    let mut messages = 0u64;
    let mut channels = BTreeMap::new();
    let mut vods = Vec::new();
    let empty = |broadcaster_id, second: i64| ChatBatch {
        broadcaster_id,
        watermark_ms: second * 1000 + 999,
        messages: vec![],
    };
    for path in files {
        let stats = input::read_file(
            path,
            format,
            &mut |event| {
                messages += 1;
                let second = event.sent_at_ms.div_euclid(1000);
                let entry = open
                    .entry(event.broadcaster_id)
                    .or_insert_with(|| (second, empty(event.broadcaster_id, second)));
                if second > entry.0 {
                    let closed = std::mem::replace(entry, (second, empty(event.broadcaster_id, second)));
                    batches.push(closed.1);
                }
                // The chatter key stands in for the user id: `chatter_key` gives it back as is,
                // so the detector downstream counts the same people as `backtest`.
                let message =
                    ChatMessage { user_id: event.chatter, ..ChatMessage::new(event.sent_at_ms, event.text) };
                entry.1.messages.push(message);
                if let Some(channel) = event.channel {
                    channels.entry(event.broadcaster_id).or_insert_with(|| channel.to_owned());
                }
            },
            &mut |bad| eprintln!("{}: {}: {}", path.display(), bad.position, bad.reason),
            &mut |_| {},
        )?;
        vods.extend(stats.vod);
    }
    let mut ids: Vec<u64> = open.keys().copied().collect();
    ids.sort_unstable();
    for id in ids {
        let (second, batch) = open.remove(&id).expect("listed above");
        batches.push(batch);
        // The closing watermark: every second with chat is now past the lateness.
        let closing = (second + 1) * 1000 + i64::from(lateness_ms);
        batches.push(ChatBatch { broadcaster_id: id, watermark_ms: closing, messages: vec![] });
    }
    Ok(Replay { batches, messages, channels, vods })
}
