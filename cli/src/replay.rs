//! `highlights local replay`: feeds recorded chat into the `chat-messages` stream as the
//! ingester would (wire format v1, one batch per broadcaster per second of event time, the
//! watermark at the end of that second), then closes every broadcaster with a final watermark,
//! so the local pipeline sees exactly what `highlights backtest` sees.
//!
//! The batching in event time ([`stream_batches`], as the files are read) is
//! `highlights dev --replay`'s too; only the Kinesis side needs the `cloud` feature.

use std::collections::BTreeSet;
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
    crate::runtime()?.block_on(async {
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
#[cfg(feature = "cloud")]
pub struct Replay {
    pub batches: Vec<ChatBatch>,
    /// Messages in the batches.
    pub messages: u64,
}

/// Recorded chat as the ingester batches it, in event time: one batch per broadcaster per second
/// of chat (the watermark at the end of that second), then a closing watermark per broadcaster
/// (`lateness_ms` past its last second), so a consumer sees exactly what `backtest` sees. Bad
/// records are reported on stderr and skipped.
#[cfg(feature = "cloud")]
pub fn event_time_batches(files: &[PathBuf], format: Format, lateness_ms: u32) -> anyhow::Result<Replay> {
    let mut batches = Vec::new();
    let messages = stream_batches(files, format, lateness_ms, usize::MAX, &mut |item| {
        if let ReplayItem::Batches(more) = item {
            batches.extend(more);
        }
        true
    })?;
    Ok(Replay { batches, messages })
}

/// What [`stream_batches`] hands on, in this order: a channel's login before its first batch,
/// a VOD before the batches of its chat.
pub enum ReplayItem<B = ChatBatch> {
    Channel(BroadcasterId, String),
    Vod(input::Vod),
    /// Batches in stream order (a consumer may hand them on in another form, `B`).
    Batches(Vec<B>),
}

/// [`event_time_batches`] as the files are read: batches go to `send` in chunks of `chunk` as
/// they close, so a consumer works while the rest is read. A TwitchDownloader file's batches wait
/// for the end of the file, where its VOD is known (a moment is linked to its VOD when stored).
/// Returns the messages read; stops early when `send` returns false.
pub fn stream_batches(
    files: &[PathBuf],
    format: Format,
    lateness_ms: u32,
    chunk: usize,
    send: &mut dyn FnMut(ReplayItem) -> bool,
) -> anyhow::Result<u64> {
    let mut batcher = EventTimeBatcher::new(lateness_ms);
    let mut closed: Vec<ChatBatch> = Vec::new();
    let mut known: BTreeSet<BroadcasterId> = BTreeSet::new();
    let mut open = true;
    for path in files {
        let whole_file = input::resolve_format(path, format)? == Format::TwitchDownloader;
        let stats = input::read_file(
            path,
            format,
            &mut |event| {
                if !open {
                    return;
                }
                if let Some(channel) = event.channel
                    && known.insert(event.broadcaster_id)
                {
                    open = send(ReplayItem::Channel(event.broadcaster_id, channel.to_owned()));
                }
                batcher.push(&event, &mut closed);
                if !whole_file && closed.len() >= chunk {
                    open = open && send(ReplayItem::Batches(std::mem::take(&mut closed)));
                }
            },
            &mut |bad| eprintln!("{}: {}: {}", path.display(), bad.position, bad.reason),
            &mut |_| {},
        )?;
        if !open {
            return Ok(batcher.messages);
        }
        if let Some(vod) = stats.vod
            && !send(ReplayItem::Vod(vod))
        {
            return Ok(batcher.messages);
        }
        if whole_file && !closed.is_empty() && !send(ReplayItem::Batches(std::mem::take(&mut closed))) {
            return Ok(batcher.messages);
        }
    }
    let messages = batcher.messages;
    batcher.finish(&mut closed);
    if !closed.is_empty() {
        send(ReplayItem::Batches(closed));
    }
    Ok(messages)
}

/// Chat batched in event time, one message at a time: a broadcaster's batch closes when its chat
/// moves to a later second.
struct EventTimeBatcher {
    /// Open batches per broadcaster: (second, batch).
    open: BroadcasterMap<(i64, ChatBatch)>,
    lateness_ms: u32,
    messages: u64,
}

impl EventTimeBatcher {
    fn new(lateness_ms: u32) -> Self {
        Self { open: BroadcasterMap::default(), lateness_ms, messages: 0 }
    }

    fn empty(broadcaster_id: BroadcasterId, second: i64) -> ChatBatch {
        ChatBatch { broadcaster_id, watermark_ms: second * 1000 + 999, messages: vec![] }
    }

    /// Adds one message; the batch it closes, if any, goes to `closed`.
    fn push(&mut self, event: &input::ChatEvent<'_>, closed: &mut Vec<ChatBatch>) {
        self.messages += 1;
        let second = event.sent_at_ms.div_euclid(1000);
        let id = event.broadcaster_id;
        let entry = self.open.entry(id).or_insert_with(|| (second, Self::empty(id, second)));
        if second > entry.0 {
            closed.push(std::mem::replace(entry, (second, Self::empty(id, second))).1);
        }
        // The chatter key stands in for the user id: `chatter_key` gives it back as is, so the
        // detector downstream counts the same people as `backtest`.
        entry
            .1
            .messages
            .push(ChatMessage { user_id: event.chatter, ..ChatMessage::new(event.sent_at_ms, event.text) });
    }

    /// Closes every open batch, then adds each broadcaster's closing watermark: every second with
    /// chat is then past the lateness.
    fn finish(mut self, closed: &mut Vec<ChatBatch>) {
        let mut ids: Vec<u64> = self.open.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let (second, batch) = self.open.remove(&id).expect("listed above");
            closed.push(batch);
            let closing = (second + 1) * 1000 + i64::from(self.lateness_ms);
            closed.push(ChatBatch { broadcaster_id: id, watermark_ms: closing, messages: vec![] });
        }
    }
}
