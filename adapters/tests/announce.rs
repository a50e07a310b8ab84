//! The webhook sender against a local receiver on 127.0.0.1:0: signed bodies, retries of what may
//! pass later, no retry of a refusal, and no secret in errors.

use std::time::Duration;

use highlights_adapters::announce::{
    AnnounceError, AnnounceFormat, ClipAnnouncement, Delivered, DeliveryPolicy, Webhook,
};
use highlights_adapters::twitch::Secret;
use highlights_test_support::webhook::FakeWebhook;
use hmac::{Hmac, KeyInit, Mac};

fn quick() -> DeliveryPolicy {
    DeliveryPolicy {
        pauses: [Duration::from_millis(1); 4],
        attempt_timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(1),
    }
}

fn clip(title: &str) -> ClipAnnouncement {
    ClipAnnouncement {
        clip_id: "FakeClip7".into(),
        url: "https://clips.twitch.tv/FakeClip7".into(),
        title: title.into(),
        broadcaster_id: "515151".into(),
        streamer: Some("alpha".into()),
        detected_at: 1_796_190_352,
        intensity: 16.64,
    }
}

#[tokio::test]
async fn a_signed_body_is_retried_until_accepted_with_one_idempotency_key() {
    let receiver = FakeWebhook::start(&[500, 429, 503]).await;
    let webhook = Webhook::new(
        highlights_adapters::tls::http_client(),
        Secret::new(receiver.url()),
        AnnounceFormat::Json,
        Some(Secret::new("k3y")),
    )
    .with_policy(quick());
    assert_eq!(webhook.send(&clip("KEKW ×23")).await, Ok(Delivered { attempts: 4 }));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4, "three answers that may pass later, then accepted");
    for (headers, body) in &seen {
        assert_eq!(body["idempotency_key"], "clip-FakeClip7", "a repeat is recognisable: {body}");
        assert_eq!(body["clip"]["title"], "KEKW ×23");
        assert_eq!(body["clip"]["detected_at"], "2026-12-02T05:45:52Z");
        // The receiver's check, written from the documented scheme.
        let timestamp = headers["x-highlights-timestamp"].to_str().unwrap();
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"k3y").unwrap();
        mac.update(format!("{timestamp}.{}", serde_json::to_string(body).unwrap()).as_bytes());
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(headers["x-highlights-signature"].to_str().unwrap(), format!("sha256={expected}"));
    }
}

#[tokio::test]
async fn a_refusal_is_final_and_discord_is_told_to_ping_nobody() {
    let receiver = FakeWebhook::start(&[400]).await;
    let webhook = Webhook::new(
        highlights_adapters::tls::http_client(),
        Secret::new(receiver.url()),
        AnnounceFormat::Discord,
        None,
    )
    .with_policy(quick());
    assert_eq!(webhook.send(&clip("@everyone LUL")).await, Err(AnnounceError::Refused(400)));
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "a 400 is not tried again");
    let (headers, body) = &seen[0];
    assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]), "{body}");
    assert!(body["content"].as_str().unwrap().contains("https://clips.twitch.tv/FakeClip7"), "{body}");
    assert!(body["embeds"][0]["footer"]["text"].as_str().unwrap().contains("clip-FakeClip7"), "{body}");
    assert!(headers.get("x-highlights-signature").is_none(), "Discord's bodies are not signed");
}

#[tokio::test]
async fn an_unreachable_webhook_is_given_up_without_showing_its_url() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook/TOPSECRET", closed.local_addr().unwrap());
    drop(closed);
    let webhook =
        Webhook::new(highlights_adapters::tls::http_client(), Secret::new(&url), AnnounceFormat::Json, None)
            .with_policy(quick());
    let error = webhook.send(&clip("W")).await.unwrap_err();
    assert!(matches!(error, AnnounceError::GaveUp { attempts: 5, .. }), "{error}");
    assert!(
        !error.to_string().contains("TOPSECRET") && !format!("{error:?}").contains("TOPSECRET"),
        "{error}"
    );
    assert!(!format!("{webhook:?}").contains("TOPSECRET"));
}
