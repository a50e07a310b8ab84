//! Pipeline benchmark against the local stack (`localstack/up` first):
//! 1. throughput: chat of many channels is put into Kinesis, then the runner with the real
//!    detector handler (DynamoDB state and outbox in the emulator) drains it; messages/s;
//! 2. hand-off latency: for bursts on several channels, the time from putting the record whose
//!    watermark makes the detector report, to the highlight item being readable in DynamoDB;
//! 3. detection to Create Clip: the clipper (real adapters, a fake Twitch on 127.0.0.1:0) is fed
//!    by the runner from the highlights table stream; the time from the item's `created_at` to
//!    the fake receiving Create Clip; and the clipper's init time (clients, two secrets).
//!
//! Run: `scripts/bench pipeline` (= `cargo run --release -p highlights-runner --example pipeline_bench`).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::kinesis::KinesisEvent;
use clipper_function::ClipperHandler;
use detector_function::DetectorHandler;
use highlights_adapters::clips::PgClips;
use highlights_adapters::detector_state::{DynamoStateStore, StateStore};
use highlights_adapters::highlights::DynamoHighlights;
use highlights_adapters::kinesis_out::{OutRecord, put_all};
use highlights_adapters::postgres::Database;
use highlights_adapters::provision::{ProvisionOptions, provision};
use highlights_adapters::resources::Resources;
use highlights_adapters::stack_env::StackEnv;
use highlights_adapters::tokens::{SecretsTokenSource, TokenSource};
use highlights_adapters::twitch::{HelixClips, TwitchOAuth};
use highlights_core::clip_policy::ClipPolicy;
use highlights_core::{ChatBatch, ChatMessage, DetectorConfig, wire};
use highlights_runner::{
    Checkpoints, DynamoConsumer, KinesisConsumer, Mapping, RunnerOptions, Source, TableChange,
};

struct Consumer(DetectorHandler<DynamoStateStore, DynamoHighlights>);

struct ClipConsumer(ClipperHandler<HelixClips, SecretsTokenSource, PgClips, DynamoHighlights>);

impl DynamoConsumer for ClipConsumer {
    fn invoke(&self, event: DynamoEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, _) = self.0.handle(&event).await;
            response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
        })
    }
}

impl KinesisConsumer for Consumer {
    fn invoke(&self, event: KinesisEvent) -> Pin<Box<dyn Future<Output = Vec<String>> + Send + '_>> {
        Box::pin(async move {
            let (response, _) = self.0.handle(&event).await;
            response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect()
        })
    }
}

/// Event time starts 420 s ago, so the bursts (at 320 s and later) are fresh enough to clip.
static START_S: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - 420
});

fn second_batch(id: u64, second: i64, count: i64) -> OutRecord {
    let batch = ChatBatch {
        broadcaster_id: id,
        watermark_ms: (*START_S + second) * 1000 + 999,
        messages: (0..count)
            .map(|i| ChatMessage::new((*START_S + second) * 1000 + i * 1000 / count.max(1), "KEKW"))
            .collect(),
    };
    OutRecord { partition_key: id.to_string(), data: wire::encode(&batch) }
}

fn resting(second: i64, channel: u64) -> i64 {
    [1, 3, 2, 0, 4][((second + channel as i64) % 5) as usize]
}

#[tokio::main]
async fn main() {
    let stack = StackEnv::discover(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap_or_else(|e| panic!("{e}"));
    let sdk = highlights_adapters::aws::local(&stack.aws().unwrap()).await;
    let resources = Resources::defaults().with_suffix(&format!("bench-{}", std::process::id()));
    provision(&sdk, &resources, &ProvisionOptions::default()).await.unwrap();
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let kinesis = aws_sdk_kinesis::Client::new(&sdk);
    let outbox = DynamoHighlights::new(dynamodb.clone(), &resources.highlights_table.name);
    let handler = DetectorHandler::new(
        DetectorConfig::default(),
        DynamoStateStore::new(dynamodb.clone(), &resources.detector_state_table.name),
        DynamoHighlights::new(dynamodb.clone(), &resources.highlights_table.name),
    );
    let checkpoints_path = std::env::temp_dir().join(format!("highlights-bench-{}.json", std::process::id()));
    let checkpoints = Arc::new(Checkpoints::open(&checkpoints_path).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mapping = Mapping {
        source: Source::Kinesis {
            stream: resources.chat_stream.name.clone(),
            consumer: Arc::new(Consumer(handler)),
            tumbling_window: None,
        },
        dead_letter_queue: resources.detector_dlq.name.clone(),
    };
    let options = RunnerOptions { poll_interval: Duration::from_millis(5), ..RunnerOptions::default() };

    // The clipper against a fake Twitch, fed from the highlights stream.
    let fake = highlights_test_support::FakeTwitch::start().await;
    fake.accept_token("bench-access");
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    for (name, value) in [
        (&resources.twitch_app_secret.name, r#"{"client_id":"bench","client_secret":"bench-secret"}"#),
        (
            &resources.twitch_user_token_secret.name,
            r#"{"access_token":"bench-access","refresh_token":"bench-refresh"}"#,
        ),
    ] {
        secrets.put_secret_value().secret_id(name).secret_string(value).send().await.unwrap();
    }
    let init_started = Instant::now();
    let pool = Database::from_url(stack.database_url().unwrap()).unwrap().pool(2).unwrap();
    let http = highlights_adapters::tls::http_client();
    let tokens = SecretsTokenSource::new(
        secrets.clone(),
        &resources.twitch_app_secret.name,
        &resources.twitch_user_token_secret.name,
        TwitchOAuth::new(http.clone(), fake.oauth_url()),
    );
    let app = tokens.app().await.unwrap();
    tokens.access_token().await.unwrap();
    let clipper = ClipperHandler::new(
        HelixClips::new(http, fake.helix_url(), app.client_id),
        tokens,
        PgClips::new(pool),
        DynamoHighlights::new(dynamodb.clone(), &resources.highlights_table.name),
        // The bursts' event time is minutes old by the time they are put; clip them anyway.
        ClipPolicy { max_highlight_age: Duration::from_secs(3600), ..ClipPolicy::default() },
    );
    let clipper_init = init_started.elapsed();
    let clip_mapping = Mapping {
        source: Source::Dynamo {
            change: TableChange::Insert,
            table: resources.highlights_table.name.clone(),
            consumer: Arc::new(ClipConsumer(clipper)),
        },
        dead_letter_queue: resources.clipper_dlq.name.clone(),
    };

    // 1. Throughput: 50 channels x 320 s of resting chat (warms every baseline up), put first,
    //    then drained.
    let channels: Vec<u64> = (0..50).map(|c| 200_000 + c).collect();
    let mut warmup = Vec::new();
    for second in 0..320 {
        for &id in &channels {
            warmup.push(second_batch(id, second, resting(second, id) * 10));
        }
    }
    let messages: i64 = (0..320).flat_map(|s| channels.iter().map(move |&id| resting(s, id) * 10)).sum();
    put_all(&kinesis, &resources.chat_stream.name, &warmup, 8).await.unwrap();
    let checkpoint_key_prefix = format!("kinesis/{}@", resources.chat_stream.name);
    let runner = {
        let sdk = sdk.clone();
        let checkpoints = checkpoints.clone();
        tokio::spawn(async move {
            highlights_runner::run(&sdk, vec![mapping, clip_mapping], checkpoints, options, stopped).await
        })
    };
    let started = Instant::now();
    let total = warmup.len() as u64;
    let drained = loop {
        let done = std::fs::read_to_string(&checkpoints_path).ok().map_or(0, |text| {
            let map: std::collections::BTreeMap<String, String> =
                serde_json::from_str(&text).unwrap_or_default();
            map.iter()
                .filter(|(k, _)| k.starts_with(&checkpoint_key_prefix))
                .map(|(_, v)| v.parse::<u64>().unwrap_or(0))
                .sum::<u64>()
        });
        if done >= total {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "throughput: {} records, {messages} messages drained in {:.2} s = {:.0} messages/s ({:.0} records/s)",
        total,
        drained.as_secs_f64(),
        messages as f64 / drained.as_secs_f64(),
        total as f64 / drained.as_secs_f64()
    );

    // 2. Hand-off latency: per channel a 6-second burst, then calm seconds one by one until the
    //    highlight item exists; timed from the put of the record that made the detector report.
    let mut latencies = Vec::new();
    for &id in channels.iter().take(20) {
        let mut second = 320;
        let burst: Vec<OutRecord> = (0..6).map(|i| second_batch(id, second + i, 200)).collect();
        put_all(&kinesis, &resources.chat_stream.name, &burst, 8).await.unwrap();
        second += 6;
        let mut found = None;
        while found.is_none() && second < 400 {
            let record = second_batch(id, second, resting(second, id) * 10);
            let put_at = Instant::now();
            put_all(&kinesis, &resources.chat_stream.name, &[record], 8).await.unwrap();
            // Wait long enough for this record to be processed, polling the table.
            while put_at.elapsed() < Duration::from_millis(1500) {
                if !outbox.list(id).await.unwrap().is_empty() {
                    found = Some(put_at.elapsed());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            second += 1;
        }
        latencies.push(found.expect("the burst is detected"));
    }
    latencies.sort();
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    println!(
        "hand-off latency over {} bursts: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(&latencies[latencies.len() / 2]),
        ms(&latencies[latencies.len() * 9 / 10]),
        ms(latencies.last().unwrap())
    );
    // Detection (item created) to the Create Clip call, for the bursts above.
    let mut to_create = Vec::new();
    let started = Instant::now();
    while fake.create_calls().len() < 20 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for call in fake.create_calls() {
        let id: u64 = call.broadcaster_id.parse().unwrap();
        let item = outbox.list(id).await.unwrap();
        let created = dynamodb
            .get_item()
            .table_name(&resources.highlights_table.name)
            .key("broadcaster_id", aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()))
            .key("peak_at", aws_sdk_dynamodb::types::AttributeValue::N(item[0].peak_second.to_string()))
            .send()
            .await
            .unwrap();
        let created_ms: u128 = created.item().unwrap()["created_at"].as_n().unwrap().parse().unwrap();
        to_create.push(call.at_unix_ms.saturating_sub(created_ms) as f64);
    }
    to_create.sort_by(f64::total_cmp);
    println!(
        "detection to Create Clip over {} highlights: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; clipper init {:.1} ms",
        to_create.len(),
        to_create[to_create.len() / 2],
        to_create[(to_create.len() * 99 / 100).min(to_create.len() - 1)],
        to_create[to_create.len() - 1],
        clipper_init.as_secs_f64() * 1000.0
    );

    let states = DynamoStateStore::new(dynamodb.clone(), &resources.detector_state_table.name);
    let saved = states.load_many(&channels).await.unwrap();
    let mut sizes: Vec<usize> = saved.values().filter_map(|s| s.detector.as_ref().map(Vec::len)).collect();
    sizes.sort_unstable();
    println!(
        "detector state blob per broadcaster (resting 0-40 messages/s): min {} B, median {} B, max {} B",
        sizes[0],
        sizes[sizes.len() / 2],
        sizes[sizes.len() - 1]
    );
    stop.send(true).unwrap();
    let stats = runner.await.unwrap().unwrap();
    println!("runner: {} invocations", stats.invocations.load(Ordering::Relaxed));
    let _ = std::fs::remove_file(&checkpoints_path);
}
