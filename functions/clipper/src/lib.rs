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
//!
//!    At most one Create Clip per highlight whose outcome is unknown. Before each call the intent
//!    (attempt, time) is written on the item; no intent, no call. A timeout, a connection cut
//!    mid-answer or a 5xx leaves it open whether Twitch made the clip, and so does a redelivery
//!    that finds an intent and no clip id (the process died, or the clip id could not be kept).
//!    Then the clipper looks first: the clip row in Postgres, else the broadcaster's clips that
//!    Twitch lists since the intent, made by our token's user, for about 15 s (Twitch lists new
//!    clips late). A clip found is adopted (`clips_reconciled`). Only when none turned up and a
//!    clip made now still reaches back to the moment (`duration` up to 60 s) is another one made
//!    (`clips_recreated_after_unknown`); otherwise the highlight fails with `outcome_unknown`.
//!    Within an invocation, one broadcaster's highlights make their clips one at a time, so a
//!    lookup never adopts a clip made for a sibling highlight.
//! 4. Insert the clip row (URLs derived from the id) — if Postgres is down the record is
//!    reported as a batch item failure and retried later, without a second Create Clip.
//! 5. Poll Get Clips with back-off until the clip is published (up to 60 s), then fill in the
//!    row. A clip not confirmed in time stays `confirmed = false` (see docs: a later sweep
//!    confirms it); it is never dropped.

use std::time::{Instant as WallInstant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::dynamodb::Event as DynamoEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use highlights_adapters::clips::{ClipStore, HighlightKey};
use highlights_adapters::highlights::HighlightProgress;
use highlights_adapters::telemetry::{MetricRecord, Unit};
use highlights_adapters::tokens::TokenSource;
use highlights_adapters::twitch::{ClipOrder, ClipsApi, VideoInfo};
use highlights_core::Detection;
use highlights_core::clip_policy::{AttemptResult, ClipFailure, ClipPolicy, Footage, NextStep, VodFootage};
use highlights_core::title::TitleRules;
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
    /// Clips found after an unknown outcome and adopted, instead of made again.
    pub clips_reconciled: u64,
    /// Clips made again after an unknown outcome, once lookups found none.
    pub clips_recreated_after_unknown: u64,
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
                .count("clips_reconciled", self.clips_reconciled)
                .count("clips_recreated_after_unknown", self.clips_recreated_after_unknown)
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
    /// Absent from items written before curves existed.
    #[serde(default)]
    curve: highlights_core::ChatCurve,
    /// Absent from items written before phrases existed.
    #[serde(default)]
    phrases: highlights_core::TopPhrases,
}

/// What a highlight's clip is cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The live stream: Create Clip From VOD on the stream's archive when the token may cut
    /// VODs and the archive holds the moment, else Create Clip.
    Live,
    /// A recorded VOD (`highlights clips from-vod`): Create Clip From VOD only.
    Recorded(VideoInfo),
}

/// The footage one highlight's attempts use.
#[derive(Debug, Clone)]
struct Footing {
    footage: Footage,
    /// The archive of a stream still live: it holds the stream up to the call.
    growing: bool,
    /// A refused clip from the live stream's archive may still be made from the live stream.
    may_fall_back: bool,
    /// The token's user, Create Clip From VOD's editor.
    editor_id: Option<String>,
}

impl Footing {
    const LIVE: Self = Self { footage: Footage::Live, growing: false, may_fall_back: false, editor_id: None };

    fn at(&self, now_s: i64) -> Footage {
        match &self.footage {
            Footage::Vod(vod) if self.growing => {
                Footage::Vod(VodFootage { recorded_until_s: now_s, ..vod.clone() })
            }
            footage => footage.clone(),
        }
    }

    fn is_vod(&self) -> bool {
        matches!(self.footage, Footage::Vod(_))
    }
}

/// How one highlight ended, for a caller clipping highlights one at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clipped {
    /// Made, adopted, or already there; `confirmed` once Twitch published it.
    Clip {
        clip_id: String,
        confirmed: bool,
    },
    Failed(ClipFailure),
    /// Not finished (a store or Twitch was unavailable): try the same highlight again later.
    RetryLater,
}

/// How one highlight ended in this invocation.
#[derive(Debug, Default)]
struct Outcome {
    clip_id: Option<String>,
    created: bool,
    attempts: u64,
    already_done: bool,
    failure: Option<ClipFailure>,
    retry_later: bool,
    unconfirmed: bool,
    detection_to_clip_ms: Option<f64>,
    confirm_ms: Option<f64>,
    reconciled: bool,
    recreated_after_unknown: u64,
    /// Lookups and in-line confirmation stop here, well inside the function's timeout.
    deadline: Option<Instant>,
}

/// Why no clip id came out of [`ClipperHandler::obtain_clip`].
#[derive(Debug)]
enum NoClip {
    Failed(ClipFailure),
    RetryLater,
    /// Another delivery finished this highlight meanwhile.
    AlreadyDone,
}

/// How a run of Create Clip attempts ended.
enum CreateEnd {
    Created(String),
    /// The attempt whose intent was recorded at this Unix ms may have made a clip.
    Unknown {
        intent_at_ms: i64,
    },
    /// Another delivery holds a clip id or finished the highlight: read its progress again.
    Superseded,
    Stop(NoClip),
}

/// What looking for our own clip after an unknown outcome found.
enum Lookup {
    Found(String),
    NotFound,
    /// Twitch never answered the lookups: nothing can be concluded.
    Unavailable,
}

/// How long finding a live stream's VOD may take before the clip is made from the live stream.
const ARCHIVE_LOOKUP: std::time::Duration = std::time::Duration::from_secs(2);

/// Unknown outcomes followed by a fresh attempt, at most, per highlight and delivery.
const MAX_UNKNOWN_ROUNDS: usize = 3;

/// Clip ids this invocation made or adopted: a lookup for another highlight never adopts them.
type Claimed = std::sync::Mutex<std::collections::HashSet<String>>;

pub struct ClipperHandler<A, T, C, P> {
    api: A,
    tokens: T,
    clips: C,
    progress: P,
    policy: ClipPolicy,
    titles: TitleRules,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl<A: ClipsApi, T: TokenSource, C: ClipStore, P: HighlightProgress> ClipperHandler<A, T, C, P> {
    pub fn new(api: A, tokens: T, clips: C, progress: P, policy: ClipPolicy) -> Self {
        Self { api, tokens, clips, progress, policy, titles: TitleRules::default() }
    }

    /// The rules titles and listed phrases follow.
    pub fn titles(&self) -> &TitleRules {
        &self.titles
    }

    /// Titles checked against `titles` (the built-in blocklist by default).
    pub fn with_title_rules(mut self, titles: TitleRules) -> Self {
        self.titles = titles;
        self
    }

    /// [`confirm_unconfirmed`] with this handler's clients (the scheduled invocation in AWS);
    /// each clip it confirms is marked confirmed on its highlight too, which is what announces it.
    pub async fn confirm_sweep(&self, limit: u32) -> Result<SweepReport, String> {
        let report = confirm_unconfirmed(&self.api, &self.tokens, &self.clips, limit).await?;
        for key in &report.highlights {
            // A highlight item gone (30-day TTL) or unreachable costs only its announcement,
            // never the clip.
            if let Err(error) = self.progress.record_stored(*key, true).await {
                tracing::warn!(broadcaster_id = key.broadcaster_id, peak = key.peak_second, %error, "cannot mark the highlight confirmed");
            }
        }
        Ok(report)
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
                            curve: image.curve,
                            // Only what may be shown is kept (and stored with the clip).
                            phrases: self.titles.shown(&image.phrases),
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
        let mut turns: std::collections::HashMap<u64, tokio::sync::Mutex<()>> =
            std::collections::HashMap::new();
        for (_, detection) in &work {
            turns.entry(detection.broadcaster_id).or_default();
        }
        let claimed = Claimed::default();
        let outcomes = futures::future::join_all(work.iter().map(|(_, detection)| {
            self.clip(detection, &Source::Live, &turns[&detection.broadcaster_id], &claimed)
        }))
        .await;
        let mut response = DynamoDbEventResponse::default();
        for ((sequence, _), outcome) in work.iter().zip(outcomes) {
            report.create_attempts += outcome.attempts;
            report.clips_created += u64::from(outcome.created);
            report.already_done += u64::from(outcome.already_done);
            report.unconfirmed += u64::from(outcome.unconfirmed);
            report.failures.extend(outcome.failure);
            report.detection_to_clip_ms.extend(outcome.detection_to_clip_ms);
            report.confirm_ms.extend(outcome.confirm_ms);
            report.clips_reconciled += u64::from(outcome.reconciled);
            report.clips_recreated_after_unknown += outcome.recreated_after_unknown;
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

    /// Clips one highlight (written to the progress store first, as the detector writes it) from
    /// `source`, with the same guarantees as a stream batch: at most one clip, whatever fails.
    pub async fn clip_one(&self, detection: &Detection, source: &Source) -> Clipped {
        let turn = tokio::sync::Mutex::new(());
        let outcome = self.clip(detection, source, &turn, &Claimed::default()).await;
        match (outcome.clip_id, outcome.failure) {
            _ if outcome.retry_later => Clipped::RetryLater,
            (Some(clip_id), _) => Clipped::Clip { clip_id, confirmed: !outcome.unconfirmed },
            (None, Some(reason)) => Clipped::Failed(reason),
            // Finished by an earlier run: read what it ended with.
            (None, None) => match self.progress.progress(HighlightKey::of(detection)).await {
                Ok(Some(progress)) => match progress.clip_id {
                    Some(clip_id) => Clipped::Clip { clip_id, confirmed: true },
                    None => Clipped::Failed(
                        progress
                            .reason
                            .as_deref()
                            .and_then(ClipFailure::parse)
                            .unwrap_or(ClipFailure::OutcomeUnknown),
                    ),
                },
                Ok(None) | Err(_) => Clipped::RetryLater,
            },
        }
    }

    async fn clip(
        &self,
        detection: &Detection,
        source: &Source,
        turn: &tokio::sync::Mutex<()>,
        claimed: &Claimed,
    ) -> Outcome {
        let id = detection.broadcaster_id;
        let mut outcome =
            Outcome { deadline: Some(Instant::now() + self.policy.inline_budget), ..Outcome::default() };
        let progress = match self.progress.progress(HighlightKey::of(detection)).await {
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
        let clip_id = match progress.clip_id.clone() {
            Some(clip_id) => clip_id,
            None => {
                let _turn = turn.lock().await;
                match self.obtain_clip(detection, source, &progress, &mut outcome, claimed).await {
                    Ok(clip_id) => clip_id,
                    Err(NoClip::Failed(reason)) => {
                        let attempts = outcome.attempts as u32;
                        return self.fail(detection, reason, attempts, outcome).await;
                    }
                    Err(NoClip::RetryLater) => {
                        outcome.retry_later = true;
                        return outcome;
                    }
                    Err(NoClip::AlreadyDone) => {
                        outcome.already_done = true;
                        return outcome;
                    }
                }
            }
        };
        let clip_id = match self.clips.insert(&clip_id, detection).await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::error!(broadcaster_id = id, %clip_id, %error, "cannot store the clip; retrying later");
                outcome.retry_later = true;
                return outcome;
            }
        };
        let confirm_started = Instant::now();
        match self.confirm(&clip_id, outcome.deadline).await {
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
        if let Err(error) =
            self.progress.record_stored(HighlightKey::of(detection), !outcome.unconfirmed).await
        {
            tracing::warn!(broadcaster_id = id, %clip_id, %error, "cannot mark the highlight stored");
        }
        outcome.clip_id = Some(clip_id);
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
        if let Err(error) =
            self.progress.record_failure(HighlightKey::of(detection), reason.as_str(), attempts).await
        {
            tracing::error!(broadcaster_id = id, %error, "cannot record the failure; retrying later");
            outcome.retry_later = true;
        }
        outcome.failure = Some(reason);
        outcome
    }

    /// The clip id of a highlight that has none on its item yet: adopted from Postgres or from
    /// Twitch after an unknown outcome, or made by Create Clip.
    async fn obtain_clip(
        &self,
        detection: &Detection,
        source: &Source,
        progress: &highlights_adapters::highlights::Progress,
        outcome: &mut Outcome,
        claimed: &Claimed,
    ) -> Result<String, NoClip> {
        let id = detection.broadcaster_id;
        // After an earlier call, the clip may be stored although the item never heard of it
        // (its update failed). Postgres being down is no reason to wait: Twitch is asked next.
        if progress.intent_at_ms.is_some() {
            match self.clips.clip_of(detection).await {
                Ok(Some(clip_id)) => {
                    tracing::info!(broadcaster_id = id, %clip_id, "the highlight's clip is already stored");
                    self.keep_clip_id(detection, &clip_id, progress.attempts).await;
                    return Ok(clip_id);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(broadcaster_id = id, %error, "cannot look for a stored clip"),
            }
        }
        let mut footing = self.footing(detection, source).await?;
        let mut unknown_since = progress.intent_at_ms;
        if let Some(intent_at_ms) = unknown_since {
            tracing::warn!(broadcaster_id = id, intent_at_ms, "an earlier Create Clip has no known outcome");
        } else if !footing.is_vod() {
            let age_ms = now_ms() - detection.fired_second.saturating_mul(1000);
            if age_ms > self.policy.max_highlight_age.as_millis() as i64 {
                tracing::warn!(broadcaster_id = id, age_ms, "highlight too old to clip");
                return Err(NoClip::Failed(ClipFailure::DeadlineExceeded));
            }
        }
        let mut attempts = progress.attempts;
        for _round in 0..MAX_UNKNOWN_ROUNDS {
            if let Some(intent_at_ms) = unknown_since {
                match self.find_own_clip(detection, intent_at_ms, claimed, outcome.deadline).await {
                    Lookup::Found(clip_id) => {
                        tracing::info!(broadcaster_id = id, %clip_id, "found the clip of an unknown outcome; adopting it");
                        outcome.reconciled = true;
                        claimed.lock().expect("not poisoned").insert(clip_id.clone());
                        self.keep_clip_id(detection, &clip_id, attempts).await;
                        return Ok(clip_id);
                    }
                    Lookup::Unavailable => {
                        let now_s = now_ms() / 1000;
                        let reachable = self.policy.cut(detection, &footing.at(now_s), now_s);
                        tracing::warn!(
                            broadcaster_id = id,
                            "Twitch did not answer the lookups for an unknown outcome"
                        );
                        return Err(match reachable {
                            Some(_) => NoClip::RetryLater,
                            None => NoClip::Failed(ClipFailure::OutcomeUnknown),
                        });
                    }
                    Lookup::NotFound => {
                        match self.policy.cut(detection, &footing.at(now_ms() / 1000), now_ms() / 1000) {
                            Some(cut) => {
                                tracing::warn!(
                                    broadcaster_id = id,
                                    duration = cut.duration_s(),
                                    "no clip found after an unknown outcome; making one"
                                );
                                outcome.recreated_after_unknown += 1;
                            }
                            None => {
                                tracing::warn!(
                                    broadcaster_id = id,
                                    "no clip found after an unknown outcome, and too late for another"
                                );
                                return Err(NoClip::Failed(ClipFailure::OutcomeUnknown));
                            }
                        }
                    }
                }
            }
            match self.create(detection, &mut footing, &mut attempts, outcome).await {
                CreateEnd::Created(clip_id) => {
                    outcome.created = true;
                    outcome.detection_to_clip_ms =
                        Some((now_ms() - detection.fired_second.saturating_mul(1000)) as f64);
                    claimed.lock().expect("not poisoned").insert(clip_id.clone());
                    tracing::info!(broadcaster_id = id, %clip_id, attempts = outcome.attempts, "clip created");
                    self.keep_clip_id(detection, &clip_id, attempts).await;
                    return Ok(clip_id);
                }
                CreateEnd::Unknown { intent_at_ms } => unknown_since = Some(intent_at_ms),
                CreateEnd::Superseded => {
                    return match self.progress.progress(HighlightKey::of(detection)).await {
                        Ok(Some(now)) if now.clip_id.is_some() => Ok(now.clip_id.unwrap_or_default()),
                        Ok(Some(now)) if now.is_final() => Err(NoClip::AlreadyDone),
                        Ok(_) | Err(_) => Err(NoClip::RetryLater),
                    };
                }
                CreateEnd::Stop(no_clip) => return Err(no_clip),
            }
        }
        Err(NoClip::Failed(ClipFailure::OutcomeUnknown))
    }

    /// Records the clip id on the item. A failure is logged only: the intent stays on the item,
    /// so a redelivery looks for this clip before it could make another.
    async fn keep_clip_id(&self, detection: &Detection, clip_id: &str, attempts: u32) {
        if let Err(error) = self.progress.record_clip(HighlightKey::of(detection), clip_id, attempts).await {
            tracing::error!(broadcaster_id = detection.broadcaster_id, %clip_id, %error, "cannot record the clip id on the highlight");
        }
    }

    /// What the highlight's attempts cut from: a recorded VOD needs a token that may cut VODs;
    /// a live stream's archive is used when the token may and the archive holds the peak, with
    /// the live stream as the fallback (an archive that cannot be read is no reason to lose the
    /// moment).
    async fn footing(&self, detection: &Detection, source: &Source) -> Result<Footing, NoClip> {
        let id = detection.broadcaster_id;
        let editor_id = match self.tokens.vod_editor().await {
            Ok(editor) => editor,
            Err(error) => {
                tracing::warn!(broadcaster_id = id, %error, "cannot tell whether the token may cut VODs");
                None
            }
        };
        let vod = |video: &VideoInfo, recorded_until_s| {
            Footage::Vod(VodFootage {
                video_id: video.video_id.clone(),
                started_at_s: video.started_at_s,
                recorded_until_s,
            })
        };
        match source {
            Source::Recorded(video) => {
                if editor_id.is_none() {
                    tracing::error!(
                        broadcaster_id = id,
                        "clips from a VOD need a token with editor:manage:clips or channel:manage:clips"
                    );
                    return Err(NoClip::Failed(ClipFailure::Unauthorized));
                }
                let footage = vod(video, video.started_at_s.saturating_add(video.length_s));
                Ok(Footing { footage, growing: false, may_fall_back: false, editor_id })
            }
            Source::Live if editor_id.is_none() => Ok(Footing::LIVE),
            Source::Live => {
                let Ok(token) = self.tokens.access_token().await else { return Ok(Footing::LIVE) };
                // A slow lookup must not use up the live clip's window, its fallback.
                let lookup = tokio::time::timeout(ARCHIVE_LOOKUP, self.api.live_archive(&token, id)).await;
                let lookup = lookup.unwrap_or_else(|_| {
                    Err(highlights_adapters::twitch::TwitchError::Unreachable {
                        what: "Get Streams / Get Videos",
                        reason: "timed out".into(),
                    })
                });
                match lookup {
                    Ok(Some(video)) if video.started_at_s <= detection.peak_second => Ok(Footing {
                        footage: vod(&video, now_ms() / 1000),
                        growing: true,
                        may_fall_back: true,
                        editor_id,
                    }),
                    Ok(_) => Ok(Footing::LIVE),
                    Err(error) => {
                        tracing::warn!(broadcaster_id = id, %error, "cannot find the stream's VOD; clipping live");
                        Ok(Footing::LIVE)
                    }
                }
            }
        }
    }

    /// Create Clip (or From VOD) on the policy's schedule, each call preceded by its recorded
    /// intent and timed on the moment (live: `duration` from before the burst to the call; VOD:
    /// from before the burst to after the peak). `attempts` counts this highlight's calls across
    /// deliveries.
    async fn create(
        &self,
        detection: &Detection,
        footing: &mut Footing,
        attempts: &mut u32,
        outcome: &mut Outcome,
    ) -> CreateEnd {
        let id = detection.broadcaster_id;
        let mut token = match self.tokens.access_token().await {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "no usable Twitch token");
                return CreateEnd::Stop(NoClip::Failed(ClipFailure::Unauthorized));
            }
        };
        let first = Instant::now();
        let title = self.titles.title_for(detection);
        let mut refreshed = false;
        let mut index = 0;
        loop {
            let Some(timeout) = self.policy.attempt_timeout(first.elapsed()) else {
                return CreateEnd::Stop(NoClip::Failed(ClipFailure::DeadlineExceeded));
            };
            let intent_at_ms = now_ms();
            let Some(cut) = self.policy.cut(detection, &footing.at(intent_at_ms / 1000), intent_at_ms / 1000)
            else {
                tracing::warn!(broadcaster_id = id, vod = footing.is_vod(), "no clip can reach the moment");
                return CreateEnd::Stop(NoClip::Failed(ClipFailure::DeadlineExceeded));
            };
            match self.progress.record_intent(HighlightKey::of(detection), *attempts + 1, intent_at_ms).await
            {
                Ok(true) => {}
                Ok(false) => return CreateEnd::Superseded,
                Err(error) => {
                    // Never call Create Clip without a recorded intent.
                    tracing::error!(broadcaster_id = id, %error, "cannot record the intent to clip; retrying later");
                    return CreateEnd::Stop(NoClip::RetryLater);
                }
            }
            *attempts += 1;
            outcome.attempts += 1;
            let order = ClipOrder {
                broadcaster_id: id,
                title: Some(&title),
                cut: &cut,
                editor_id: footing.editor_id.as_deref(),
            };
            let result = self.api.create_clip(&token, &order, timeout).await;
            match result {
                AttemptResult::Created { clip_id, .. } => return CreateEnd::Created(clip_id),
                AttemptResult::Unauthorized if !refreshed => {
                    refreshed = true;
                    match self.tokens.refresh_after_rejection(&token).await {
                        Ok(fresh) => token = fresh,
                        Err(error) => {
                            tracing::error!(%error, "the Twitch token was rejected and could not be refreshed");
                            return CreateEnd::Stop(NoClip::Failed(ClipFailure::Unauthorized));
                        }
                    }
                }
                unknown if unknown.outcome_unknown() => {
                    tracing::warn!(broadcaster_id = id, result = ?unknown, "Create Clip gave no clear answer");
                    return CreateEnd::Unknown { intent_at_ms };
                }
                // A clear refusal made no clip: the live stream may still be clipped, at once.
                refused @ (AttemptResult::Rejected(_) | AttemptResult::Unauthorized)
                    if footing.is_vod() && footing.may_fall_back =>
                {
                    tracing::warn!(
                        broadcaster_id = id,
                        ?refused,
                        "Create Clip From VOD refused; clipping the live stream"
                    );
                    *footing = Footing::LIVE;
                }
                failed => match self.policy.after_failure(index, &failed, first.elapsed()) {
                    NextStep::RetryAt(at) => {
                        tracing::info!(
                            broadcaster_id = id,
                            ?failed,
                            retry_in_ms = (at.saturating_sub(first.elapsed())).as_millis() as u64,
                            "Create Clip failed; retrying"
                        );
                        tokio::time::sleep_until(first + at).await;
                        index += 1;
                    }
                    NextStep::GiveUp(reason) => return CreateEnd::Stop(NoClip::Failed(reason)),
                },
            }
        }
    }

    /// Looks, for the policy's reconcile window, for the clip an attempt at `intent_at_ms` may
    /// have made: the broadcaster's earliest clip listed since then, made by our token's user,
    /// that this invocation has not already given to another highlight.
    async fn find_own_clip(
        &self,
        detection: &Detection,
        intent_at_ms: i64,
        claimed: &Claimed,
        deadline: Option<Instant>,
    ) -> Lookup {
        let id = detection.broadcaster_id;
        let Ok(token) = self.tokens.access_token().await else {
            return Lookup::Unavailable;
        };
        let creator = match self.tokens.user_id().await {
            Ok(Some(user)) => Some(user),
            Ok(None) | Err(_) => {
                tracing::warn!(
                    broadcaster_id = id,
                    "the token's user is unknown: any clip made since the call counts as ours"
                );
                None
            }
        };
        // Twitch's times are whole seconds, and its clock is not ours.
        let since_s = intent_at_ms.div_euclid(1000) - 2;
        let mut answered = false;
        for pause in std::iter::once(std::time::Duration::ZERO).chain(self.policy.reconcile_pauses()) {
            if deadline.is_some_and(|at| Instant::now() + pause > at) {
                // Cut short, the lookups prove nothing: the record is retried with a new budget.
                tracing::warn!(broadcaster_id = id, "out of time while looking for the clip");
                return Lookup::Unavailable;
            }
            tokio::time::sleep(pause).await;
            match self.api.clips_since(&token, id, since_s).await {
                Ok(clips) => {
                    answered = true;
                    let claimed = claimed.lock().expect("not poisoned");
                    let ours = clips
                        .into_iter()
                        .filter(|clip| clip.created_at_s >= since_s && !claimed.contains(&clip.id))
                        .filter(|clip| creator.as_ref().is_none_or(|user| &clip.creator_id == user))
                        .min_by_key(|clip| clip.created_at_s);
                    if let Some(clip) = ours {
                        return Lookup::Found(clip.id);
                    }
                }
                Err(error) => {
                    tracing::warn!(broadcaster_id = id, %error, "cannot list the broadcaster's clips")
                }
            }
        }
        if answered { Lookup::NotFound } else { Lookup::Unavailable }
    }

    /// Polls Get Clips until the clip is published, the confirm window ends, or `deadline`
    /// would pass (the clip is then stored unconfirmed, for the sweep).
    async fn confirm(
        &self,
        clip_id: &str,
        deadline: Option<Instant>,
    ) -> Option<highlights_adapters::twitch::ClipInfo> {
        for pause in self.policy.confirm_pauses() {
            if deadline.is_some_and(|at| Instant::now() + pause > at) {
                return None;
            }
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub checked: usize,
    pub confirmed: usize,
    /// The highlights of the clips confirmed.
    pub highlights: Vec<HighlightKey>,
}

/// The later confirmation of clips the clipper stored unconfirmed (Twitch had not published
/// them within its window): one Get Clips per clip whose next check is due, run on a schedule
/// (`highlights clips confirm`; in AWS an EventBridge schedule invokes the clipper, see its
/// `main.rs`). A clip still unpublished is asked about again later, on its own back-off, so
/// clips Twitch never publishes do not starve newer ones; after a day it is marked unpublished
/// and no longer listed.
pub async fn confirm_unconfirmed<A: ClipsApi, T: TokenSource, C: ClipStore>(
    api: &A,
    tokens: &T,
    clips: &C,
    limit: u32,
) -> Result<SweepReport, String> {
    let pending = clips.unconfirmed(limit).await.map_err(|e| e.to_string())?;
    let token = tokens.access_token().await.map_err(|e| e.to_string())?;
    let mut report = SweepReport { checked: pending.len(), confirmed: 0, highlights: Vec::new() };
    for clip_id in pending {
        match api.get_clip(&token, &clip_id).await {
            Ok(Some(info)) => {
                if let Some(key) = clips.confirm(&info).await.map_err(|e| e.to_string())? {
                    report.highlights.push(key);
                }
                report.confirmed += 1;
            }
            Ok(None) => {
                tracing::info!(%clip_id, "still not published");
                clips.not_published_yet(&clip_id).await.map_err(|e| e.to_string())?;
            }
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
