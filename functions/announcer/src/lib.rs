//! The announcer handler: each clip the clipper confirmed is announced to the deployment's webhook
//! (`highlights_adapters::announce`: Discord's format or signed JSON, at least once, with an
//! idempotency key).
//!
//! Fed by the highlights table's stream, filtered to the modification that stores a confirmed clip
//! (`status = stored`, `confirmed = true`, a `clip_id`): the clipper writes it once per highlight.
//! It runs outside the VPC and needs no NAT: it reads the stream image and calls the webhook, never
//! the database, so it can never hold the clipper back.
//!
//! Records are announced in order. The first that cannot be delivered, and every later one, are
//! handed back (batch item failures): the event-source mapping retries them, then dead-letters
//! them to its on-failure queue. A record announced before one that failed is not handed back.
//! The title is the clipper's: the same rules (`TITLE_BLOCKLIST`) over the same phrases.

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use highlights_adapters::announce::{AnnounceError, ClipAnnouncement, Webhook};
use highlights_adapters::clips::clip_urls;
use highlights_core::TopPhrases;
use highlights_core::title::TitleRules;
use serde::Deserialize;

/// Where announcements go: the webhook, or a fake in tests.
pub trait Announce {
    fn announce(
        &self,
        clip: &ClipAnnouncement,
    ) -> impl std::future::Future<Output = Result<(), AnnounceError>> + Send;
}

impl Announce for Webhook {
    async fn announce(&self, clip: &ClipAnnouncement) -> Result<(), AnnounceError> {
        self.send(clip).await.map(drop)
    }
}

/// The stream image fields an announcement needs.
#[derive(Deserialize)]
struct StoredClip {
    broadcaster_id: String,
    peak_at: i64,
    intensity: f64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    confirmed: bool,
    clip_id: Option<String>,
    #[serde(default)]
    phrases: TopPhrases,
}

/// What one invocation did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnnouncerReport {
    pub announced: usize,
    pub failed: usize,
    /// Records that were not a newly confirmed clip, or no webhook is configured.
    pub skipped: usize,
}

pub struct AnnouncerHandler<A> {
    webhook: Option<A>,
    titles: TitleRules,
}

impl<A: Announce> AnnouncerHandler<A> {
    /// `webhook`: `None` when the deployment configured none (every record is acknowledged).
    pub fn new(webhook: Option<A>, titles: TitleRules) -> Self {
        Self { webhook, titles }
    }

    pub async fn handle(&self, event: &DynamoEvent) -> (DynamoDbEventResponse, AnnouncerReport) {
        let mut report = AnnouncerReport::default();
        let mut response = DynamoDbEventResponse::default();
        let mut failed = false;
        for record in &event.records {
            let Some(clip) = self.announcement(record) else {
                report.skipped += 1;
                continue;
            };
            let Some(webhook) = &self.webhook else {
                report.skipped += 1;
                continue;
            };
            // After a failure every later record goes back too, so that the order holds.
            let result = if failed { Err(None) } else { webhook.announce(&clip).await.map_err(Some) };
            match result {
                Ok(()) => report.announced += 1,
                Err(error) => {
                    if let Some(error) = error {
                        tracing::error!(clip_id = %clip.clip_id, %error, "announcement not delivered; handed back");
                    }
                    failed = true;
                    report.failed += 1;
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = record.change.sequence_number.clone();
                    response.batch_item_failures.push(failure);
                }
            }
        }
        (response, report)
    }

    /// The announcement of a record that stores a confirmed clip; `None` for any other record.
    fn announcement(
        &self,
        record: &aws_lambda_events::event::dynamodb::EventRecord,
    ) -> Option<ClipAnnouncement> {
        if record.event_name != "MODIFY" {
            return None;
        }
        let stored: StoredClip = match serde_dynamo::from_item(record.change.new_image.clone()) {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(event_id = %record.event_id, %error, "skipping an image that cannot be read");
                return None;
            }
        };
        let clip_id =
            stored.clip_id.filter(|id| !id.is_empty() && stored.confirmed && stored.status == "stored")?;
        Some(ClipAnnouncement {
            url: clip_urls(&clip_id).0,
            title: self.titles.title(&stored.phrases, stored.intensity),
            clip_id,
            broadcaster_id: stored.broadcaster_id,
            streamer: None,
            detected_at: stored.peak_at,
            intensity: stored.intensity,
        })
    }
}

#[cfg(test)]
mod tests;
