//! The clipper handler: new `highlights` items (DynamoDB stream, INSERT only) become Twitch
//! clips stored in Postgres.
//!
//! Per highlight, all highlights of a batch concurrently (each has its own 10-second budget):
//! 1. Read the item's progress; a stored or failed highlight is done (redelivery), and one that
//!    already has a clip id never calls Create Clip again.
//! 2. Too old to clip (the moment is gone): recorded as failed, `deadline_exceeded`.
//! 3. Create Clip on the [`ClipPolicy`] schedule (0 s, 3 s, 6 s, inside 10 s); a 401 refreshes
//!    the token once; the clip id is recorded on the item the moment Twitch returns it. A 403
//!    marks the streamer as not allowing clips.
//! 4. Insert the clip row (URLs derived from the id) — if Postgres is down the record is
//!    reported as a batch item failure and retried later, without a second Create Clip.
//! 5. Poll Get Clips with back-off until the clip is published (up to 60 s), then fill in the
//!    row. A clip not confirmed in time stays `confirmed = false` (see docs: a later sweep
//!    confirms it); it is never dropped.

use std::time::{Instant as WallInstant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use highlights_adapters::clips::ClipStore;
use highlights_adapters::highlights::HighlightProgress;
use highlights_adapters::telemetry::{MetricRecord, Unit};
use highlights_adapters::tokens::TokenSource;
use highlights_adapters::twitch::ClipsApi;
use highlights_core::Detection;
use highlights_core::clip_policy::{AttemptResult, ClipFailure, ClipPolicy, NextStep, clip_title};
use serde::Deserialize;
use tokio::time::Instant;

/// What one invocation did; becomes EMF metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipperReport {
    pub records: usize,
    pub clips_created: u64,
    pub create_attempts: u64,
    pub already_done: u64,
    pub failures: Vec<ClipFailure>,
    pub unparsable: u64,
    pub retried_later: u64,
    pub unconfirmed: u64,
    /// Milliseconds from the detection's fired second to Twitch returning the clip id.
    pub detection_to_clip_ms: Vec<f64>,
    pub confirm_ms: Vec<f64>,
    pub token_refreshes: u64,
    pub duration_ms: f64,
}

impl ClipperReport {
    pub fn metrics(&self) -> Vec<MetricRecord> {
        let mut records = vec![
            MetricRecord::new("Function", "clipper")
                .count("BatchSize", self.records as u64)
                .count("clips_created", self.clips_created)
                .count("clip_create_attempts", self.create_attempts)
                .count("clip_failures", self.failures.len() as u64)
                .count("AlreadyDone", self.already_done)
                .count("RetriedLater", self.retried_later)
                .count("Unconfirmed", self.unconfirmed)
                .count("token_refreshes", self.token_refreshes)
                .metric("HandlerDuration", Unit::Milliseconds, self.duration_ms),
        ];
        for latency in &self.detection_to_clip_ms {
            records.push(MetricRecord::new("Function", "clipper").metric(
                "detection_to_clip",
                Unit::Milliseconds,
                *latency,
            ));
        }
        for latency in &self.confirm_ms {
            records.push(MetricRecord::new("Function", "clipper").metric(
                "clip_confirm",
                Unit::Milliseconds,
                *latency,
            ));
        }
        for reason in &self.failures {
            records.push(
                MetricRecord::new("Function", "clipper")
                    .dimension("Reason", reason.as_str())
                    .count("clip_failures", 1),
            );
        }
        records
    }
}

/// The item image as the detector wrote it.
#[derive(Deserialize)]
struct HighlightImage {
    broadcaster_id: String,
    peak_at: i64,
    fired_at: i64,
    intensity: f64,
    message_count: u64,
    baseline_mean: f64,
    baseline_std: f64,
}

/// How one highlight ended in this invocation.
#[derive(Debug, Default)]
struct Outcome {
    created: bool,
    attempts: u64,
    already_done: bool,
    failure: Option<ClipFailure>,
    retry_later: bool,
    unconfirmed: bool,
    detection_to_clip_ms: Option<f64>,
    confirm_ms: Option<f64>,
}

pub struct ClipperHandler<A, T, C, P> {
    api: A,
    tokens: T,
    clips: C,
    progress: P,
    policy: ClipPolicy,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl<A: ClipsApi, T: TokenSource, C: ClipStore, P: HighlightProgress> ClipperHandler<A, T, C, P> {
    pub fn new(api: A, tokens: T, clips: C, progress: P, policy: ClipPolicy) -> Self {
        Self { api, tokens, clips, progress, policy }
    }

    /// [`confirm_unconfirmed`] with this handler's clients (the scheduled invocation in AWS).
    pub async fn confirm_sweep(&self, limit: u32) -> Result<SweepReport, String> {
        confirm_unconfirmed(&self.api, &self.tokens, &self.clips, limit).await
    }

    pub fn api(&self) -> &A {
        &self.api
    }
    pub fn clips(&self) -> &C {
        &self.clips
    }
    pub fn progress(&self) -> &P {
        &self.progress
    }
    pub fn tokens(&self) -> &T {
        &self.tokens
    }

    pub async fn handle(&self, event: &DynamoEvent) -> (DynamoDbEventResponse, ClipperReport) {
        let started = WallInstant::now();
        let refreshes_before = self.tokens.refreshes();
        let mut report = ClipperReport { records: event.records.len(), ..ClipperReport::default() };
        let mut work = Vec::new();
        for record in &event.records {
            if record.event_name != "INSERT" {
                continue;
            }
            match serde_dynamo::from_item::<_, HighlightImage>(record.change.new_image.clone()) {
                Ok(image) => match image.broadcaster_id.parse() {
                    Ok(broadcaster_id) => {
                        let detection = Detection {
                            broadcaster_id,
                            peak_second: image.peak_at,
                            fired_second: image.fired_at,
                            intensity: image.intensity,
                            message_count: image.message_count,
                            baseline_mean: image.baseline_mean,
                            baseline_std: image.baseline_std,
                        };
                        work.push((record.change.sequence_number.clone(), detection));
                    }
                    Err(_) => report.unparsable += 1,
                },
                Err(error) => {
                    report.unparsable += 1;
                    tracing::warn!(event_id = %record.event_id, %error, "skipping a highlight image that cannot be read");
                }
            }
        }
        let outcomes =
            futures::future::join_all(work.iter().map(|(_, detection)| self.clip(detection))).await;
        let mut response = DynamoDbEventResponse::default();
        for ((sequence, _), outcome) in work.iter().zip(outcomes) {
            report.create_attempts += outcome.attempts;
            report.clips_created += u64::from(outcome.created);
            report.already_done += u64::from(outcome.already_done);
            report.unconfirmed += u64::from(outcome.unconfirmed);
            report.failures.extend(outcome.failure);
            report.detection_to_clip_ms.extend(outcome.detection_to_clip_ms);
            report.confirm_ms.extend(outcome.confirm_ms);
            if outcome.retry_later {
                report.retried_later += 1;
                if let Some(sequence) = sequence {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = Some(sequence.clone());
                    response.batch_item_failures.push(failure);
                }
            }
        }
        report.token_refreshes = self.tokens.refreshes() - refreshes_before;
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        (response, report)
    }

    async fn clip(&self, detection: &Detection) -> Outcome {
        let id = detection.broadcaster_id;
        let mut outcome = Outcome::default();
        let progress = match self.progress.progress(detection).await {
            Ok(progress) => progress.unwrap_or_default(),
            Err(error) => {
                tracing::error!(broadcaster_id = id, %error, "cannot read the highlight's progress");
                outcome.retry_later = true;
                return outcome;
            }
        };
        if progress.is_final() {
            outcome.already_done = true;
            return outcome;
        }
        let clip_id = match progress.clip_id {
            Some(clip_id) => clip_id,
            None => {
                let age_ms = now_ms() - detection.fired_second * 1000;
                if age_ms > self.policy.max_highlight_age.as_millis() as i64 {
                    tracing::warn!(broadcaster_id = id, age_ms, "highlight too old to clip");
                    return self.fail(detection, ClipFailure::DeadlineExceeded, 0, outcome).await;
                }
                match self.create(detection, &mut outcome).await {
                    Ok(clip_id) => {
                        outcome.created = true;
                        outcome.detection_to_clip_ms =
                            Some((now_ms() - detection.fired_second * 1000) as f64);
                        if let Err(error) =
                            self.progress.record_clip(detection, &clip_id, outcome.attempts as u32).await
                        {
                            // The clip exists; without its id on the item a retry could create
                            // a second one, so keep going and let the Postgres row carry it.
                            tracing::error!(broadcaster_id = id, %clip_id, %error, "cannot record the clip id on the highlight");
                        }
                        tracing::info!(broadcaster_id = id, %clip_id, attempts = outcome.attempts, "clip created");
                        clip_id
                    }
                    Err(reason) => {
                        let attempts = outcome.attempts as u32;
                        return self.fail(detection, reason, attempts, outcome).await;
                    }
                }
            }
        };
        if let Err(error) = self.clips.insert(&clip_id, detection).await {
            tracing::error!(broadcaster_id = id, %clip_id, %error, "cannot store the clip; retrying later");
            outcome.retry_later = true;
            return outcome;
        }
        let confirm_started = Instant::now();
        match self.confirm(&clip_id).await {
            Some(info) => {
                outcome.confirm_ms = Some(confirm_started.elapsed().as_secs_f64() * 1000.0);
                if let Err(error) = self.clips.confirm(&info).await {
                    tracing::error!(broadcaster_id = id, %clip_id, %error, "cannot store the clip's details; retrying later");
                    outcome.retry_later = true;
                    return outcome;
                }
            }
            None => {
                tracing::warn!(broadcaster_id = id, %clip_id, "clip not published within the confirm window; stored unconfirmed");
                outcome.unconfirmed = true;
            }
        }
        if let Err(error) = self.progress.record_stored(detection, !outcome.unconfirmed).await {
            tracing::warn!(broadcaster_id = id, %clip_id, %error, "cannot mark the highlight stored");
        }
        outcome
    }

    async fn fail(
        &self,
        detection: &Detection,
        reason: ClipFailure,
        attempts: u32,
        mut outcome: Outcome,
    ) -> Outcome {
        let id = detection.broadcaster_id;
        tracing::warn!(broadcaster_id = id, reason = reason.as_str(), attempts, "no clip for this highlight");
        if reason == ClipFailure::ClippingRestricted
            && let Err(error) = self.clips.mark_clipping_restricted(id).await
        {
            tracing::warn!(broadcaster_id = id, %error, "cannot mark the streamer as restricting clips");
        }
        if let Err(error) = self.progress.record_failure(detection, reason.as_str(), attempts).await {
            tracing::error!(broadcaster_id = id, %error, "cannot record the failure; retrying later");
            outcome.retry_later = true;
        }
        outcome.failure = Some(reason);
        outcome
    }

    /// Create Clip on the policy's schedule; the clip id, or why there is none.
    async fn create(&self, detection: &Detection, outcome: &mut Outcome) -> Result<String, ClipFailure> {
        let mut token = self.tokens.access_token().await.map_err(|error| {
            tracing::error!(%error, "no usable Twitch token");
            ClipFailure::Unauthorized
        })?;
        let first = Instant::now();
        let title = clip_title("", detection.intensity);
        let mut refreshed = false;
        let mut index = 0;
        loop {
            let Some(timeout) = self.policy.attempt_timeout(first.elapsed()) else {
                return Err(ClipFailure::DeadlineExceeded);
            };
            outcome.attempts += 1;
            let result = self.api.create_clip(&token, detection.broadcaster_id, Some(&title), timeout).await;
            match result {
                AttemptResult::Created { clip_id, .. } => return Ok(clip_id),
                AttemptResult::Unauthorized if !refreshed => {
                    refreshed = true;
                    token = self.tokens.refresh_after_rejection(&token).await.map_err(|error| {
                        tracing::error!(%error, "the Twitch token was rejected and could not be refreshed");
                        ClipFailure::Unauthorized
                    })?;
                    continue;
                }
                failed => match self.policy.after_failure(index, &failed, first.elapsed()) {
                    NextStep::RetryAt(at) => {
                        tracing::info!(
                            broadcaster_id = detection.broadcaster_id,
                            ?failed,
                            retry_in_ms = (at.saturating_sub(first.elapsed())).as_millis() as u64,
                            "Create Clip failed; retrying"
                        );
                        tokio::time::sleep_until(first + at).await;
                        index += 1;
                    }
                    NextStep::GiveUp(reason) => return Err(reason),
                },
            }
        }
    }

    async fn confirm(&self, clip_id: &str) -> Option<highlights_adapters::twitch::ClipInfo> {
        for pause in self.policy.confirm_pauses() {
            tokio::time::sleep(pause).await;
            let token = self.tokens.access_token().await.ok()?;
            match self.api.get_clip(&token, clip_id).await {
                Ok(Some(info)) => return Some(info),
                Ok(None) => {}
                Err(error) => tracing::warn!(%clip_id, %error, "Get Clips failed; polling on"),
            }
        }
        None
    }
}

/// What a confirm sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub checked: usize,
    pub confirmed: usize,
}

/// The later confirmation of clips the clipper stored unconfirmed (Twitch had not published
/// them within its window): one Get Clips per clip, run on a schedule (`highlights clips
/// confirm`; in AWS an EventBridge schedule invokes the clipper, see its `main.rs`). Clips older
/// than a day are left alone.
pub async fn confirm_unconfirmed<A: ClipsApi, T: TokenSource, C: ClipStore>(
    api: &A,
    tokens: &T,
    clips: &C,
    limit: u32,
) -> Result<SweepReport, String> {
    let pending = clips.unconfirmed(limit).await.map_err(|e| e.to_string())?;
    let token = tokens.access_token().await.map_err(|e| e.to_string())?;
    let mut report = SweepReport { checked: pending.len(), confirmed: 0 };
    for clip_id in pending {
        match api.get_clip(&token, &clip_id).await {
            Ok(Some(info)) => {
                clips.confirm(&info).await.map_err(|e| e.to_string())?;
                report.confirmed += 1;
            }
            Ok(None) => tracing::info!(%clip_id, "still not published"),
            Err(error) => tracing::warn!(%clip_id, %error, "Get Clips failed"),
        }
    }
    Ok(report)
}

/// An EventBridge scheduled event (the confirm sweep's trigger) rather than a stream batch.
pub fn is_scheduled_event(payload: &serde_json::Value) -> bool {
    payload.get("source").and_then(serde_json::Value::as_str) == Some("aws.events")
}

#[cfg(test)]
mod tests;
