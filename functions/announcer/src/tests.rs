//! The handler on stream events shaped as the clipper writes them, announcing through the real
//! webhook sender to a local receiver.

use std::time::Duration;

use highlights_adapters::announce::{AnnounceFormat, DeliveryPolicy, Webhook};
use highlights_adapters::highlights::detection_item;
use highlights_adapters::lambda_events::{DynamoRecordIn, dynamodb_event, item_json};
use highlights_adapters::twitch::Secret;
use highlights_core::Detection;
use highlights_test_support::webhook::FakeWebhook;

use super::*;

fn detection(peak: i64) -> Detection {
    Detection {
        broadcaster_id: 515151,
        peak_second: peak,
        fired_second: peak,
        intensity: 9.25,
        message_count: 80,
        baseline_mean: 2.0,
        baseline_std: 1.0,
        curve: Default::default(),
        phrases: serde_json::from_value(serde_json::json!([{"phrase": "KEKW", "count": 23}])).unwrap(),
    }
}

/// A record of the highlights stream: the detector's item with `changes` applied.
fn record(sequence: u32, name: &str, detection: &Detection, changes: serde_json::Value) -> DynamoRecordIn {
    let mut image = item_json(&detection_item(detection, 0));
    for (key, value) in changes.as_object().unwrap() {
        image[key] = value.clone();
    }
    DynamoRecordIn {
        event_id: format!("e{sequence}"),
        event_name: name.into(),
        sequence_number: sequence.to_string(),
        keys: serde_json::json!({}),
        new_image: image,
        approximate_creation_s: 0,
    }
}

fn stored(clip: &str) -> serde_json::Value {
    serde_json::json!({"status": {"S": "stored"}, "confirmed": {"BOOL": true}, "clip_id": {"S": clip}})
}

fn event(records: &[DynamoRecordIn]) -> DynamoEvent {
    dynamodb_event("arn:aws:dynamodb:us-east-1:000000000000:table/highlights/stream/x", "us-east-1", records)
}

fn webhook(receiver: &FakeWebhook) -> Webhook {
    Webhook::new(
        highlights_adapters::tls::http_client(),
        Secret::new(receiver.url()),
        AnnounceFormat::Json,
        Some(Secret::new("k")),
    )
    .with_policy(DeliveryPolicy {
        pauses: [Duration::from_millis(1); 4],
        attempt_timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(1),
    })
}

#[tokio::test]
async fn only_a_newly_stored_confirmed_clip_is_announced_with_the_clipper_s_title() {
    let receiver = FakeWebhook::start(&[]).await;
    let handler = AnnouncerHandler::new(Some(webhook(&receiver)), TitleRules::default());
    let records = [
        record(1, "INSERT", &detection(100), serde_json::json!({})),
        record(
            2,
            "MODIFY",
            &detection(100),
            serde_json::json!({"clip_id": {"S": "Clip1"}, "status": {"S": "pending"}}),
        ),
        record(3, "MODIFY", &detection(100), stored("Clip1")),
        record(
            4,
            "MODIFY",
            &detection(200),
            serde_json::json!({"status": {"S": "stored"}, "confirmed": {"BOOL": false}, "clip_id": {"S": "Clip2"}}),
        ),
        record(5, "MODIFY", &detection(300), serde_json::json!({"status": {"S": "failed"}})),
    ];
    let (response, report) = handler.handle(&event(&records)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report, AnnouncerReport { announced: 1, failed: 0, skipped: 4 });
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    let body = &seen[0].1;
    assert_eq!(body["idempotency_key"], "clip-Clip1");
    assert_eq!(body["clip"]["url"], "https://clips.twitch.tv/Clip1");
    assert_eq!(body["clip"]["title"], "KEKW ×23", "the title the clipper asked Twitch for");
    assert_eq!(body["clip"]["broadcaster_id"], "515151");
    let blocked = AnnouncerHandler::new(Some(webhook(&receiver)), TitleRules::extended("kekw"));
    blocked.handle(&event(&[record(6, "MODIFY", &detection(100), stored("Clip1"))])).await;
    assert_eq!(receiver.seen()[1].1["clip"]["title"], "Chat exploded (9.2σ)", "nor a blocked phrase");
}

#[tokio::test]
async fn a_refused_announcement_and_every_later_one_are_handed_back_in_order() {
    let receiver = FakeWebhook::start(&[204, 400]).await;
    let handler = AnnouncerHandler::new(Some(webhook(&receiver)), TitleRules::default());
    let records = [
        record(1, "MODIFY", &detection(100), stored("Clip1")),
        record(2, "MODIFY", &detection(200), stored("Clip2")),
        record(3, "MODIFY", &detection(300), stored("Clip3")),
    ];
    let (response, report) = handler.handle(&event(&records)).await;
    let handed_back: Vec<_> =
        response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(handed_back, [Some("2".to_owned()), Some("3".to_owned())]);
    assert_eq!((report.announced, report.failed), (1, 2));
    assert_eq!(receiver.seen().len(), 2, "the third is not tried after the second failed");
}

#[tokio::test]
async fn without_a_webhook_every_record_is_acknowledged() {
    let handler = AnnouncerHandler::<Webhook>::new(None, TitleRules::default());
    let (response, report) =
        handler.handle(&event(&[record(1, "MODIFY", &detection(100), stored("Clip1"))])).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.skipped, 1);
}
