//! Clipper handler tests with in-memory ports and paused tokio time: the retry schedule is
//! asserted on the virtual clock, never on the wall clock.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use highlights_adapters::clips::{HighlightKey, MemoryClips};
use highlights_adapters::highlights::{HighlightOutbox, MemoryHighlights, detection_item};
use highlights_adapters::lambda_events::{DynamoRecordIn, dynamodb_event, item_json};
use highlights_adapters::tokens::TokenError;
use highlights_adapters::twitch::{ClipInfo, ListedClip, Secret, TwitchError};
use highlights_core::clip_policy::Cut;

use super::*;

/// Our token's user, as `Tokens` reports it.
const US: &str = "42";

/// Create Clip answers taken from a script (an answer may follow a clip made and not reported);
/// Get Clips finds the clip after `publish_after` polls, and lists the broadcaster's clips from
/// lookup `list_from` on.
struct ScriptedTwitch {
    answers: Mutex<VecDeque<(AttemptResult, Option<&'static str>)>>,
    calls: Mutex<Vec<(Duration, String)>>,
    cuts: Mutex<Vec<Cut>>,
    titles: Mutex<Vec<Option<String>>>,
    /// The editor of each call (`None` for live clips without one).
    editors: Mutex<Vec<Option<String>>>,
    /// What Get Streams and Get Videos say the broadcaster's live stream is recorded to.
    archive: Mutex<Option<VideoInfo>>,
    /// Every clip Twitch made: (broadcaster, clip), as the listing shows it.
    made: Mutex<Vec<(u64, ListedClip)>>,
    lookups: AtomicU32,
    list_from: u32,
    start: Instant,
    publish_after: u32,
    polls: AtomicU32,
}

impl ScriptedTwitch {
    fn new(answers: Vec<AttemptResult>) -> Self {
        Self::with_lost(answers.into_iter().map(|a| (a, None)).collect())
    }
    /// `(answer, Some(id))`: Twitch made clip `id`, then the caller got `answer`.
    fn with_lost(answers: Vec<(AttemptResult, Option<&'static str>)>) -> Self {
        Self {
            answers: Mutex::new(answers.into()),
            calls: Mutex::new(Vec::new()),
            cuts: Mutex::new(Vec::new()),
            titles: Mutex::new(Vec::new()),
            editors: Mutex::new(Vec::new()),
            archive: Mutex::new(None),
            made: Mutex::new(Vec::new()),
            lookups: AtomicU32::new(0),
            list_from: 1,
            start: Instant::now(),
            publish_after: 2,
            polls: AtomicU32::new(0),
        }
    }
    fn call_times(&self) -> Vec<Duration> {
        self.calls.lock().unwrap().iter().map(|(at, _)| *at).collect()
    }
    fn make(&self, broadcaster_id: u64, id: &str, creator: &str) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let clip = ListedClip { id: id.into(), creator_id: creator.into(), created_at_s: now };
        self.made.lock().unwrap().push((broadcaster_id, clip));
    }
}

impl ClipsApi for ScriptedTwitch {
    async fn create_clip(&self, token: &Secret, order: &ClipOrder<'_>, _: Duration) -> AttemptResult {
        let broadcaster_id = order.broadcaster_id;
        self.calls.lock().unwrap().push((self.start.elapsed(), token.expose().to_owned()));
        self.titles.lock().unwrap().push(order.title.map(str::to_owned));
        self.cuts.lock().unwrap().push(order.cut.clone());
        self.editors.lock().unwrap().push(order.editor_id.map(str::to_owned));
        let (answer, lost) = self.answers.lock().unwrap().pop_front().expect("no more scripted answers");
        if let AttemptResult::Created { clip_id, .. } = &answer {
            self.make(broadcaster_id, clip_id, US);
        }
        if let Some(id) = lost {
            self.make(broadcaster_id, id, US);
        }
        answer
    }
    async fn clips_since(
        &self,
        _: &Secret,
        broadcaster_id: u64,
        since_s: i64,
    ) -> Result<Vec<ListedClip>, TwitchError> {
        if self.lookups.fetch_add(1, Ordering::SeqCst) + 1 < self.list_from {
            return Ok(Vec::new());
        }
        Ok(self
            .made
            .lock()
            .unwrap()
            .iter()
            .filter(|(b, clip)| *b == broadcaster_id && clip.created_at_s >= since_s)
            .map(|(_, clip)| clip.clone())
            .collect())
    }
    async fn live_archive(&self, _: &Secret, broadcaster_id: u64) -> Result<Option<VideoInfo>, TwitchError> {
        Ok(self.archive.lock().unwrap().clone().filter(|video| video.broadcaster_id == broadcaster_id))
    }
    async fn get_clip(&self, _: &Secret, clip_id: &str) -> Result<Option<ClipInfo>, TwitchError> {
        if self.polls.fetch_add(1, Ordering::SeqCst) + 1 < self.publish_after {
            return Ok(None);
        }
        Ok(Some(ClipInfo {
            id: clip_id.into(),
            url: format!("https://clips.twitch.tv/{clip_id}"),
            embed_url: format!("https://clips.twitch.tv/embed?clip={clip_id}"),
            thumbnail_url: "https://thumb".into(),
            title: "t".into(),
            duration: 30.0,
            vod_offset: Some(100),
            view_count: 1,
            video_id: "1000".into(),
        }))
    }
}

/// Hands out "old" until refreshed, then "new"; with `vod`, its scopes let it cut VODs.
#[derive(Default)]
struct Tokens {
    refreshes: AtomicU64,
    vod: bool,
}

impl TokenSource for Tokens {
    async fn access_token(&self) -> Result<Secret, TokenError> {
        Ok(Secret::new(if self.refreshes.load(Ordering::SeqCst) == 0 { "old" } else { "new" }))
    }
    async fn refresh_after_rejection(&self, _: &Secret) -> Result<Secret, TokenError> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new("new"))
    }
    fn refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::SeqCst)
    }
    async fn user_id(&self) -> Result<Option<String>, TokenError> {
        Ok(Some(US.into()))
    }
    async fn vod_editor(&self) -> Result<Option<String>, TokenError> {
        Ok(self.vod.then(|| US.into()))
    }
}

type Handler = ClipperHandler<ScriptedTwitch, Tokens, MemoryClips, MemoryHighlights>;

fn handler(answers: Vec<AttemptResult>) -> Handler {
    ClipperHandler::new(
        ScriptedTwitch::new(answers),
        Tokens::default(),
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    )
}

fn detection(broadcaster_id: u64) -> Detection {
    let fired = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    Detection {
        broadcaster_id,
        peak_second: fired - 3,
        fired_second: fired,
        intensity: 6.5,
        message_count: 80,
        baseline_mean: 2.0,
        baseline_std: 1.5,
        curve: Default::default(),
        phrases: Default::default(),
    }
}

/// The stream event of `detections` inserted into the highlights table.
fn insert_event_of(detections: &[Detection]) -> DynamoEvent {
    let records: Vec<DynamoRecordIn> = detections
        .iter()
        .enumerate()
        .map(|(i, d)| DynamoRecordIn {
            event_id: format!("e{i}"),
            event_name: "INSERT".into(),
            sequence_number: format!("{}", 100 + i),
            keys: serde_json::json!({}),
            new_image: item_json(&detection_item(d, 0)),
            approximate_creation_s: 0,
        })
        .collect();
    dynamodb_event("arn:aws:dynamodb:us-east-1:000000000000:table/highlights/stream/x", "us-east-1", &records)
}

/// Writes `detections` as the detector would and returns their stream event.
async fn insert_event(handler: &Handler, detections: &[Detection]) -> DynamoEvent {
    for d in detections {
        handler.progress().record(d).await.unwrap();
    }
    insert_event_of(detections)
}

/// The progress `store` holds for `detection`'s highlight (which must be there).
async fn progress_of(
    store: &impl HighlightProgress,
    detection: &Detection,
) -> highlights_adapters::highlights::Progress {
    store.progress(HighlightKey::of(detection)).await.unwrap().unwrap()
}

fn created(id: &str) -> AttemptResult {
    AttemptResult::Created { clip_id: id.into(), edit_url: String::new() }
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(start_paused = true)]
async fn success_on_the_first_attempt_is_stored_and_confirmed() {
    let handler = handler(vec![created("Clip1")]);
    let event = insert_event(&handler, &[detection(7)]).await;
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.clips_created, report.create_attempts, report.unconfirmed), (1, 1, 0));
    assert_eq!(handler.api().call_times(), vec![S(0)]);
    let rows = handler.clips().rows.lock().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].2), ("Clip1", true));
    assert_eq!(progress_of(handler.progress(), &detection(7)).await.status, "stored");
}

#[tokio::test(start_paused = true)]
async fn the_title_quotes_what_chat_said_unless_it_is_blocked() {
    let phrases: highlights_core::TopPhrases = serde_json::from_value(
        serde_json::json!([{"phrase": "KEKW", "count": 23}, {"phrase": "W", "count": 9}]),
    )
    .unwrap();
    let said = Detection { phrases, ..detection(7) };
    let quiet = Detection { phrases: Default::default(), ..detection(8) };
    for (rules, expected) in [
        (TitleRules::default(), ["KEKW ×23", "Chat exploded (6.5σ)"]),
        (TitleRules::extended("kekw"), ["W ×9", "Chat exploded (6.5σ)"]),
    ] {
        let handler = handler(vec![created("Clip1"), created("Clip2")]).with_title_rules(rules);
        // Through the highlight item and its stream image, as in the cloud.
        let event = insert_event(&handler, &[said, quiet]).await;
        handler.handle(&event).await;
        let titles = handler.api().titles.lock().unwrap().clone();
        assert_eq!(titles, expected.map(|t| Some(t.to_owned())));
    }
}

#[tokio::test(start_paused = true)]
async fn connections_refused_are_retried_at_zero_three_and_six_seconds() {
    let handler = handler(vec![AttemptResult::NotSent, AttemptResult::NotSent, created("Clip2")]);
    let event = insert_event(&handler, &[detection(7)]).await;
    let (_, report) = handler.handle(&event).await;
    assert_eq!(handler.api().call_times(), vec![S(0), S(3), S(6)]);
    assert_eq!((report.clips_created, report.create_attempts), (1, 3));
}

#[tokio::test(start_paused = true)]
async fn a_server_error_is_not_repeated_before_the_lookups_find_nothing() {
    let handler = handler(vec![AttemptResult::ServerError(500), created("Clip2")]);
    let event = insert_event(&handler, &[detection(7)]).await;
    let (_, report) = handler.handle(&event).await;
    // Lookups at 0, 1, 2.5, 4.75, 8.125 and 12.125 s find nothing: then one new clip. Both reach
    // 5 s before the peak (3 s before the wall clock, which paused time does not move; no curve,
    // so the burst begins at the peak): 8 s, so the shortest clip.
    assert_eq!(handler.api().call_times(), vec![S(0), Duration::from_millis(12_125)]);
    assert_eq!(*handler.api().cuts.lock().unwrap(), vec![Cut::Live { duration_s: 10 }; 2]);
    assert_eq!(handler.api().lookups.load(Ordering::SeqCst), 6);
    assert_eq!(
        (report.clips_created, report.clips_recreated_after_unknown, report.clips_reconciled),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_clip_made_but_its_answer_lost_is_adopted_not_made_again() {
    for lost in [AttemptResult::Unreachable, AttemptResult::ServerError(503)] {
        let mut twitch = ScriptedTwitch::with_lost(vec![(lost.clone(), Some("Lost1"))]);
        // Twitch lists it only at the third lookup.
        twitch.list_from = 3;
        let handler = ClipperHandler::new(
            twitch,
            Tokens::default(),
            MemoryClips::default(),
            MemoryHighlights::default(),
            ClipPolicy::default(),
        );
        let event = insert_event(&handler, &[detection(7)]).await;
        let (response, report) = handler.handle(&event).await;
        assert!(response.batch_item_failures.is_empty(), "{lost:?}");
        assert_eq!(handler.api().call_times().len(), 1, "{lost:?}: one Create Clip");
        assert_eq!((report.clips_reconciled, report.clips_created), (1, 0), "{lost:?}");
        let rows = handler.clips().rows.lock().unwrap().clone();
        assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["Lost1"], "{lost:?}");
        let progress = progress_of(handler.progress(), &detection(7)).await;
        assert_eq!((progress.status.as_str(), progress.clip_id.as_deref()), ("stored", Some("Lost1")));
    }
}

#[tokio::test(start_paused = true)]
async fn a_redelivery_after_a_crash_mid_call_adopts_the_clip() {
    // The earlier delivery recorded its intent, Twitch made the clip, and the process died.
    let handler = handler(vec![]);
    let d = detection(7);
    let event = insert_event(&handler, &[d]).await;
    let intent_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(handler.progress().record_intent(HighlightKey::of(&d), 1, intent_at).await.unwrap());
    handler.api().make(7, "Made1", US);
    // Someone else's clip of the same moment is not ours.
    handler.api().make(7, "Viewer1", "777");
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(handler.api().call_times().is_empty(), "no second Create Clip");
    assert_eq!(report.clips_reconciled, 1);
    assert_eq!(handler.clips().rows.lock().unwrap()[0].0, "Made1");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_outcome_too_late_for_another_clip_fails_without_a_call() {
    let handler = handler(vec![]);
    let mut d = detection(7);
    // A clip made now would have to reach back 63 s: longer than Twitch makes them.
    d.peak_second = d.fired_second - 58;
    let event = insert_event(&handler, &[d]).await;
    let intent_at = (d.fired_second - 30) * 1000;
    assert!(handler.progress().record_intent(HighlightKey::of(&d), 1, intent_at).await.unwrap());
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(handler.api().call_times().is_empty());
    assert_eq!(report.failures, vec![ClipFailure::OutcomeUnknown]);
    let progress = progress_of(handler.progress(), &d).await;
    assert_eq!(progress.reason.as_deref(), Some("outcome_unknown"));
}

#[tokio::test(start_paused = true)]
async fn a_clip_stored_but_never_recorded_on_the_item_is_not_made_again() {
    let handler = handler(vec![]);
    let d = detection(7);
    let event = insert_event(&handler, &[d]).await;
    assert!(handler.progress().record_intent(HighlightKey::of(&d), 1, 1).await.unwrap());
    handler.clips().insert("Stored1", &d).await.unwrap();
    let (_, report) = handler.handle(&event).await;
    assert!(handler.api().call_times().is_empty());
    assert_eq!(handler.api().lookups.load(Ordering::SeqCst), 0, "Postgres knew: no lookup");
    assert_eq!(report.failures, vec![]);
    assert_eq!(progress_of(handler.progress(), &d).await.clip_id.as_deref(), Some("Stored1"));
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_reset_inside_the_deadline_is_honoured_and_one_outside_is_not() {
    let inside = handler(vec![AttemptResult::RateLimited { reset_after: Some(S(5)) }, created("Clip3")]);
    let event = insert_event(&inside, &[detection(7)]).await;
    inside.handle(&event).await;
    assert_eq!(inside.api().call_times(), vec![S(0), S(5)]);

    let outside = handler(vec![AttemptResult::RateLimited { reset_after: Some(S(40)) }]);
    let event = insert_event(&outside, &[detection(7)]).await;
    let (_, report) = outside.handle(&event).await;
    assert_eq!(outside.api().call_times(), vec![S(0)]);
    assert_eq!(report.failures, vec![ClipFailure::RateLimited]);
    assert_eq!(progress_of(outside.progress(), &detection(7)).await.reason.as_deref(), Some("rate_limited"));
}

#[tokio::test(start_paused = true)]
async fn a_401_refreshes_the_token_once_and_retries_at_once() {
    let handler = handler(vec![AttemptResult::Unauthorized, created("Clip4")]);
    let event = insert_event(&handler, &[detection(7)]).await;
    let (_, report) = handler.handle(&event).await;
    let calls = handler.api().calls.lock().unwrap().clone();
    assert_eq!(calls, vec![(S(0), "old".to_owned()), (S(0), "new".to_owned())]);
    assert_eq!((report.token_refreshes, report.clips_created), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_403_is_final_and_marks_the_streamer() {
    let handler = handler(vec![AttemptResult::Rejected(ClipFailure::ClippingRestricted)]);
    let event = insert_event(&handler, &[detection(9)]).await;
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(handler.api().call_times(), vec![S(0)]);
    assert_eq!(report.failures, vec![ClipFailure::ClippingRestricted]);
    assert_eq!(*handler.clips().restricted.lock().unwrap(), vec![9]);
    assert!(handler.clips().rows.lock().unwrap().is_empty());
}

/// Every Create Clip call hangs for 4 s (and then times out as unreachable).
struct SlowTwitch(ScriptedTwitch);

impl ClipsApi for SlowTwitch {
    async fn create_clip(&self, token: &Secret, order: &ClipOrder<'_>, timeout: Duration) -> AttemptResult {
        tokio::time::sleep(timeout.min(S(4))).await;
        self.0.create_clip(token, order, timeout).await
    }
    async fn live_archive(&self, token: &Secret, id: u64) -> Result<Option<VideoInfo>, TwitchError> {
        self.0.live_archive(token, id).await
    }
    async fn clips_since(
        &self,
        token: &Secret,
        id: u64,
        since_s: i64,
    ) -> Result<Vec<ListedClip>, TwitchError> {
        self.0.clips_since(token, id, since_s).await
    }
    async fn get_clip(&self, token: &Secret, clip_id: &str) -> Result<Option<ClipInfo>, TwitchError> {
        self.0.get_clip(token, clip_id).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_ten_second_deadline_ends_slow_attempts() {
    // Connections that time out before they are made: nothing was sent, so retrying is safe.
    let answers = vec![AttemptResult::NotSent; 3];
    let handler = ClipperHandler::new(
        SlowTwitch(ScriptedTwitch::new(answers)),
        Tokens::default(),
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    );
    let d = detection(7);
    handler.progress().record(&d).await.unwrap();
    let started = Instant::now();
    let event = insert_event_of(&[d]);
    let (_, report) = handler.handle(&event).await;
    // Attempts answer at 4 s and 8 s; the third may only use the 2 s left.
    assert_eq!(handler.api().0.call_times(), vec![S(4), S(8), S(10)]);
    assert!(started.elapsed() <= S(10) + Duration::from_millis(1));
    assert_eq!(report.failures.len(), 1);
    assert!(matches!(report.failures[0], ClipFailure::Unreachable | ClipFailure::DeadlineExceeded));
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_highlight_creates_one_clip_and_one_row() {
    let handler = handler(vec![created("Clip5")]);
    let event = insert_event(&handler, &[detection(7)]).await;
    handler.handle(&event).await;
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.already_done, report.create_attempts), (1, 0));
    assert_eq!(handler.api().call_times().len(), 1);
    assert_eq!(handler.clips().rows.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_database_outage_is_retried_without_a_second_clip() {
    let handler = handler(vec![created("Clip6")]);
    handler.clips().down.store(true, Ordering::SeqCst);
    let event = insert_event(&handler, &[detection(7)]).await;
    let (response, report) = handler.handle(&event).await;
    assert_eq!(response.batch_item_failures.len(), 1, "reported for a retry");
    assert_eq!(report.retried_later, 1);
    assert_eq!(progress_of(handler.progress(), &detection(7)).await.clip_id.as_deref(), Some("Clip6"));
    handler.clips().down.store(false, Ordering::SeqCst);
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.create_attempts, 0, "the clip id was remembered");
    assert_eq!(handler.api().call_times().len(), 1);
    assert_eq!(handler.clips().rows.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_clip_not_published_in_time_is_stored_unconfirmed() {
    let mut twitch = ScriptedTwitch::new(vec![created("Clip7")]);
    twitch.publish_after = u32::MAX;
    let handler = ClipperHandler::new(
        twitch,
        Tokens::default(),
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    );
    let event = insert_event(&handler, &[detection(7)]).await;
    let started = Instant::now();
    let (_, report) = handler.handle(&event).await;
    assert_eq!(report.unconfirmed, 1);
    assert!(started.elapsed() <= S(61), "polled within Twitch's 60 s");
    let rows = handler.clips().rows.lock().unwrap().clone();
    assert_eq!((rows.len(), rows[0].2), (1, false));
}

#[tokio::test(start_paused = true)]
async fn one_highlight_never_outlives_the_inline_budget() {
    // A 5xx that made no clip (15 s of lookups), then a clip Twitch does not publish: the
    // confirmation stops at the budget, inside the function's timeout, and leaves it to the sweep.
    let mut twitch = ScriptedTwitch::new(vec![AttemptResult::ServerError(500), created("Clip8")]);
    twitch.publish_after = u32::MAX;
    let policy = ClipPolicy { inline_budget: S(30), ..ClipPolicy::default() };
    let handler = ClipperHandler::new(
        twitch,
        Tokens::default(),
        MemoryClips::default(),
        MemoryHighlights::default(),
        policy,
    );
    let event = insert_event(&handler, &[detection(7)]).await;
    let started = Instant::now();
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((report.clips_created, report.unconfirmed), (1, 1));
    assert!(started.elapsed() <= S(30), "took {:?}", started.elapsed());
    assert!(
        started.elapsed() >= S(20),
        "the budget, not the confirm window, ended it: {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweep_confirms_clips_published_late() {
    let mut twitch = ScriptedTwitch::new(vec![created("Late")]);
    twitch.publish_after = u32::MAX;
    let handler = ClipperHandler::new(
        twitch,
        Tokens::default(),
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    );
    let late = detection(7);
    let event = insert_event(&handler, &[late]).await;
    handler.handle(&event).await;
    // Twitch publishes it afterwards.
    let polls_so_far = handler.api().polls.load(Ordering::SeqCst);
    let mut republished = ScriptedTwitch::new(vec![]);
    republished.publish_after = 0;
    let report = confirm_unconfirmed(&republished, handler.tokens(), handler.clips(), 10).await.unwrap();
    let key = HighlightKey { broadcaster_id: 7, peak_second: late.peak_second };
    assert_eq!(report, SweepReport { checked: 1, confirmed: 1, highlights: vec![key] });
    assert!(handler.clips().rows.lock().unwrap()[0].2);
    assert!(polls_so_far > 5, "the clipper polled within its window first");
    let report = confirm_unconfirmed(&republished, handler.tokens(), handler.clips(), 10).await.unwrap();
    assert_eq!(report.checked, 0);
}

#[tokio::test(start_paused = true)]
async fn old_highlights_are_not_clipped() {
    let handler = handler(vec![]);
    let mut old = detection(7);
    old.fired_second -= 3_600;
    let event = insert_event(&handler, &[old]).await;
    let (_, report) = handler.handle(&event).await;
    assert_eq!(report.failures, vec![ClipFailure::DeadlineExceeded]);
    assert!(handler.api().call_times().is_empty());
}

#[tokio::test(start_paused = true)]
async fn highlights_of_one_batch_are_clipped_concurrently() {
    let handler = handler(vec![AttemptResult::NotSent, created("A"), created("B")]);
    let event = insert_event(&handler, &[detection(1), detection(2)]).await;
    let (_, report) = handler.handle(&event).await;
    assert_eq!(report.clips_created, 2);
    // The second highlight's first call does not wait for the first highlight's retry.
    assert_eq!(handler.api().call_times(), vec![S(0), S(0), S(3)]);
}

#[test]
fn scheduled_events_are_told_from_stream_batches() {
    let schedule = serde_json::json!({
        "version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-27T10:00:00Z", "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/confirm"], "detail": {}
    });
    let batch = serde_json::json!({"Records": [{"eventName": "INSERT", "eventSource": "aws:dynamodb"}]});
    assert!(crate::is_scheduled_event(&schedule));
    assert!(!crate::is_scheduled_event(&batch));
}

/// The highlights table, except that recording a clip id fails while `fail_record_clip` is set.
#[derive(Default)]
struct ForgetfulProgress {
    inner: MemoryHighlights,
    fail_record_clip: std::sync::atomic::AtomicBool,
}

impl HighlightOutbox for ForgetfulProgress {
    async fn record(
        &self,
        detection: &Detection,
    ) -> Result<bool, highlights_adapters::detector_state::StoreError> {
        self.inner.record(detection).await
    }
}

impl HighlightProgress for ForgetfulProgress {
    async fn progress(
        &self,
        highlight: HighlightKey,
    ) -> Result<
        Option<highlights_adapters::highlights::Progress>,
        highlights_adapters::detector_state::StoreError,
    > {
        self.inner.progress(highlight).await
    }
    async fn record_intent(
        &self,
        highlight: HighlightKey,
        attempt: u32,
        at_ms: i64,
    ) -> Result<bool, highlights_adapters::detector_state::StoreError> {
        self.inner.record_intent(highlight, attempt, at_ms).await
    }
    async fn record_clip(
        &self,
        highlight: HighlightKey,
        clip_id: &str,
        attempts: u32,
    ) -> Result<(), highlights_adapters::detector_state::StoreError> {
        if self.fail_record_clip.load(Ordering::SeqCst) {
            return Err(highlights_adapters::detector_state::StoreError::Unavailable("injected".into()));
        }
        self.inner.record_clip(highlight, clip_id, attempts).await
    }
    async fn record_failure(
        &self,
        highlight: HighlightKey,
        reason: &str,
        attempts: u32,
    ) -> Result<(), highlights_adapters::detector_state::StoreError> {
        self.inner.record_failure(highlight, reason, attempts).await
    }
    async fn record_stored(
        &self,
        highlight: HighlightKey,
        confirmed: bool,
    ) -> Result<(), highlights_adapters::detector_state::StoreError> {
        self.inner.record_stored(highlight, confirmed).await
    }
}

#[tokio::test(start_paused = true)]
async fn the_clip_id_lost_twice_by_the_item_and_by_postgres_is_found_on_twitch_not_made_again() {
    let progress = ForgetfulProgress::default();
    progress.fail_record_clip.store(true, Ordering::SeqCst);
    let handler = ClipperHandler::new(
        ScriptedTwitch::new(vec![created("Made1")]),
        Tokens::default(),
        MemoryClips::default(),
        progress,
        ClipPolicy::default(),
    );
    handler.clips().down.store(true, Ordering::SeqCst);
    let d = detection(7);
    handler.progress().record(&d).await.unwrap();
    let event = insert_event_of(&[d]);
    // Twitch made the clip; neither the item nor Postgres kept its id.
    let (response, report) = handler.handle(&event).await;
    assert_eq!((report.clips_created, report.retried_later), (1, 1));
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(progress_of(handler.progress(), &d).await.clip_id, None);
    // Both are back; Lambda delivers the record again.
    handler.progress().fail_record_clip.store(false, Ordering::SeqCst);
    handler.clips().down.store(false, Ordering::SeqCst);
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.clips_reconciled, 1);
    assert_eq!(handler.api().call_times().len(), 1, "one Create Clip in all");
    let rows = handler.clips().rows.lock().unwrap().clone();
    assert_eq!(rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["Made1"]);
}

fn vod_handler(answers: Vec<AttemptResult>) -> Handler {
    ClipperHandler::new(
        ScriptedTwitch::new(answers),
        Tokens { vod: true, ..Tokens::default() },
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    )
}

fn archive(broadcaster_id: u64, started_at_s: i64) -> VideoInfo {
    VideoInfo { video_id: "555".into(), broadcaster_id, started_at_s, length_s: 0 }
}

#[tokio::test(start_paused = true)]
async fn a_token_that_may_cut_vods_clips_the_live_stream_s_archive_at_the_moment() {
    let handler = vod_handler(vec![created("Vod1")]);
    let d = detection(7);
    *handler.api().archive.lock().unwrap() = Some(archive(7, d.peak_second - 600));
    let event = insert_event(&handler, &[d]).await;
    let (response, report) = handler.handle(&event).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(report.clips_created, 1);
    // The peak was 3 s ago: the archive holds the stream up to now, so the clip ends now, 603 s
    // into the VOD, and reaches back to 5 s before the burst (the peak: no curve), 10 s at least.
    assert_eq!(
        *handler.api().cuts.lock().unwrap(),
        vec![Cut::Vod { video_id: "555".into(), end_offset_s: 603, duration_s: 10 }]
    );
    assert_eq!(*handler.api().editors.lock().unwrap(), vec![Some(US.to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn without_a_vod_scope_or_an_archive_holding_the_moment_the_live_stream_is_clipped() {
    let d = detection(7);
    // The token cannot cut VODs: the archive is not even looked at.
    let live_only = handler(vec![created("Live1")]);
    *live_only.api().archive.lock().unwrap() = Some(archive(7, d.peak_second - 600));
    // The archive began after the peak (a new stream): it does not hold the moment.
    let new_stream = vod_handler(vec![created("Live2")]);
    *new_stream.api().archive.lock().unwrap() = Some(archive(7, d.peak_second + 1));
    for handler in [live_only, new_stream] {
        let event = insert_event(&handler, &[d]).await;
        let (_, report) = handler.handle(&event).await;
        assert_eq!(report.clips_created, 1);
        assert!(matches!(handler.api().cuts.lock().unwrap()[..], [Cut::Live { .. }]));
    }
}

#[tokio::test(start_paused = true)]
async fn a_vod_clip_refused_is_made_from_the_live_stream_at_once() {
    let handler = vod_handler(vec![AttemptResult::Rejected(ClipFailure::NotClippable), created("Live1")]);
    let d = detection(7);
    *handler.api().archive.lock().unwrap() = Some(archive(7, d.peak_second - 600));
    let event = insert_event(&handler, &[d]).await;
    let (_, report) = handler.handle(&event).await;
    assert_eq!(report.clips_created, 1);
    assert_eq!(handler.api().call_times(), vec![S(0), S(0)], "no pause: the moment is live now");
    let cuts = handler.api().cuts.lock().unwrap().clone();
    assert!(matches!(cuts[..], [Cut::Vod { .. }, Cut::Live { duration_s: 10 }]), "{cuts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_highlight_too_old_for_a_live_clip_is_still_cut_from_the_vod() {
    let mut d = detection(7);
    d.peak_second -= 600;
    d.fired_second -= 600;
    let live = handler(vec![]);
    let event = insert_event(&live, &[d]).await;
    let (_, report) = live.handle(&event).await;
    assert_eq!(report.failures, vec![ClipFailure::DeadlineExceeded]);

    let vod = vod_handler(vec![created("Vod1")]);
    *vod.api().archive.lock().unwrap() = Some(archive(7, d.peak_second - 60));
    let event = insert_event(&vod, &[d]).await;
    let (_, report) = vod.handle(&event).await;
    assert_eq!((report.clips_created, report.failures.len()), (1, 0));
    assert_eq!(
        *vod.api().cuts.lock().unwrap(),
        vec![Cut::Vod { video_id: "555".into(), end_offset_s: 65, duration_s: 10 }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_vod_clip_whose_answer_was_lost_is_adopted_not_made_again() {
    let handler = ClipperHandler::new(
        ScriptedTwitch::with_lost(vec![(AttemptResult::ServerError(502), Some("Vod1"))]),
        Tokens { vod: true, ..Tokens::default() },
        MemoryClips::default(),
        MemoryHighlights::default(),
        ClipPolicy::default(),
    );
    let d = detection(7);
    *handler.api().archive.lock().unwrap() = Some(archive(7, d.peak_second - 600));
    let event = insert_event(&handler, &[d]).await;
    let (_, report) = handler.handle(&event).await;
    assert_eq!((report.clips_reconciled, report.clips_created), (1, 0));
    assert_eq!(handler.api().call_times().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_recorded_vod_is_clipped_once_and_only_with_a_token_that_may() {
    let mut d = detection(7);
    d.peak_second -= 86_400;
    d.fired_second -= 86_400;
    let vod = VideoInfo { length_s: 7_200, ..archive(7, d.peak_second - 1_000) };

    let not_allowed = handler(vec![]);
    not_allowed.progress().record(&d).await.unwrap();
    assert_eq!(
        not_allowed.clip_one(&d, &Source::Recorded(vod.clone())).await,
        Clipped::Failed(ClipFailure::Unauthorized)
    );
    assert!(not_allowed.api().call_times().is_empty());

    let handler = vod_handler(vec![created("Vod1")]);
    handler.progress().record(&d).await.unwrap();
    let first = handler.clip_one(&d, &Source::Recorded(vod.clone())).await;
    assert_eq!(first, Clipped::Clip { clip_id: "Vod1".into(), confirmed: true });
    // Run again (the command restarted): the same clip, no second call.
    assert_eq!(handler.clip_one(&d, &Source::Recorded(vod)).await, first);
    assert_eq!(handler.api().call_times().len(), 1);
    assert_eq!(
        *handler.api().cuts.lock().unwrap(),
        vec![Cut::Vod { video_id: "555".into(), end_offset_s: 1_005, duration_s: 10 }]
    );
}
