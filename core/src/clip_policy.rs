//! When and how often to call Twitch's Create Clip, and how long to wait for a clip to appear.
//!
//! Create Clip captures the stream around the moment of the call, so attempts must come fast:
//! up to three, at 0 s, 3 s and 6 s after the first, all inside a 10-second deadline. 429 and a
//! connection that could not be made are retried on that schedule (a 429's reset time is
//! honoured when it fits the deadline); 400, 403 and 404 are final.
//!
//! Create Clip is not idempotent: after a timeout, a connection cut mid-answer or a 5xx, Twitch
//! may have made the clip anyway (the outcome is unknown). Such an attempt is never simply
//! repeated: the caller first looks for the clip ([`ClipPolicy::reconcile_pauses`], about 15 s,
//! since Twitch lists new clips late) and creates again only when none turned up and a clip made
//! now still reaches back to the moment ([`ClipPolicy::duration_for`]).
//!
//! Timing: Create Clip keeps the last `duration` seconds of the stream before the call, so each
//! call asks for just enough to begin [`ClipPolicy::lead`] before the burst began ([`burst_start`],
//! read from the detection's chat curve) and to end now, after the peak: a clip on the moment
//! rather than Twitch's default 30 s wherever the moment fell in them.
//!
//! VOD-precise clips: with a token that may cut clips from the channel's VODs (an editor's or the
//! broadcaster's), Create Clip From VOD cuts the clip at an exact offset instead
//! ([`ClipPolicy::cut`]): it ends [`ClipPolicy::tail`] after the peak (or where the recording
//! ends so far) and reaches back the same lead before the burst. Such a clip does not depend on
//! when the call is made, so an older highlight can still be clipped precisely.
//!
//! Creation is asynchronous: the clip is polled with Get Clips, with a growing pause, for up to
//! Twitch's documented 60 s.
//!
//! Pure: the caller supplies "time since the first attempt"; nothing here sleeps or reads a clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a detection ended without a clip, or why an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClipFailure {
    /// 404: the channel is not live.
    NotLive,
    /// 403: clipping is restricted (followers/subscribers only, disabled, or we are banned).
    ClippingRestricted,
    /// 400: the category cannot be clipped, or the title was rejected.
    NotClippable,
    /// 401 even after refreshing the token.
    Unauthorized,
    /// 429 with a reset beyond the deadline, or on the last attempt.
    RateLimited,
    /// 5xx on the last attempt.
    ServerError,
    /// No answer in time, or the connection failed, on the last attempt.
    Unreachable,
    /// The 10-second budget ran out.
    DeadlineExceeded,
    /// Twitch may have made a clip (no clear answer), none could be found, and a clip made now
    /// would no longer hold the moment: never risk a second clip.
    OutcomeUnknown,
}

impl ClipFailure {
    /// The label used in metrics, logs and the highlight item.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLive => "not_live",
            Self::ClippingRestricted => "clipping_restricted",
            Self::NotClippable => "not_clippable",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::ServerError => "server_error",
            Self::Unreachable => "unreachable",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::OutcomeUnknown => "outcome_unknown",
        }
    }

    /// The failure [`ClipFailure::as_str`] names.
    pub fn parse(label: &str) -> Option<Self> {
        [
            Self::NotLive,
            Self::ClippingRestricted,
            Self::NotClippable,
            Self::Unauthorized,
            Self::RateLimited,
            Self::ServerError,
            Self::Unreachable,
            Self::DeadlineExceeded,
            Self::OutcomeUnknown,
        ]
        .into_iter()
        .find(|failure| failure.as_str() == label)
    }
}

/// How one Create Clip call ended, as the HTTP adapter classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    Created {
        clip_id: String,
        edit_url: String,
    },
    /// 5xx: worth another attempt.
    ServerError(u16),
    /// 429; `reset_after` is how long until the rate-limit bucket refills, when Twitch said.
    RateLimited {
        reset_after: Option<Duration>,
    },
    /// Timed out, or the connection broke after the request was sent: Twitch may have made
    /// the clip.
    Unreachable,
    /// The connection could not be made: the request never reached Twitch, so no clip exists.
    NotSent,
    /// 401: the token must be refreshed (the caller does so once, then retries at once).
    Unauthorized,
    /// 400, 403, 404: final.
    Rejected(ClipFailure),
}

impl AttemptResult {
    /// Twitch may have made the clip although the call did not say so: look before creating
    /// again.
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::ServerError(_) | Self::Unreachable)
    }
}

/// The retry schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipPolicy {
    /// Offsets of the attempts from the first one.
    pub attempts: [Duration; 3],
    /// Every attempt must start and finish within this budget from the first.
    pub deadline: Duration,
    /// How long to poll Get Clips for a created clip.
    pub confirm_window: Duration,
    /// First pause between Get Clips polls; it grows by half each time, up to `confirm_max_pause`.
    pub confirm_first_pause: Duration,
    pub confirm_max_pause: Duration,
    /// A highlight older than this (from its fired second) is not clipped any more: the clip
    /// would capture the wrong moment of the stream.
    pub max_highlight_age: Duration,
    /// How long to look for a clip whose Create Clip call had an unknown outcome (Twitch lists
    /// new clips late), and the first pause between lookups (it grows by half, up to 4 s).
    pub reconcile_window: Duration,
    pub reconcile_first_pause: Duration,
    /// The longest clip Create Clip makes (`duration`, 5–60 s) and the shortest we ask for.
    pub longest_clip: Duration,
    pub shortest_clip: Duration,
    /// How long before the burst began a clip should begin: chat reacts a few seconds after what
    /// it reacts to (viewers' delay, then typing), so the cause is in the clip.
    pub lead: Duration,
    /// How long after the peak a clip cut from a VOD ends: the reaction is in the clip too.
    pub tail: Duration,
    /// How long one highlight's work (creating, looking for an unknown outcome, confirming) may
    /// take within one invocation: inside the clipper's 90 s timeout, with room for the writes.
    /// Lookups cut short hand the record back; confirmation cut short leaves it to the sweep.
    pub inline_budget: Duration,
}

impl Default for ClipPolicy {
    fn default() -> Self {
        Self {
            attempts: [Duration::ZERO, Duration::from_secs(3), Duration::from_secs(6)],
            deadline: Duration::from_secs(10),
            confirm_window: Duration::from_secs(60),
            confirm_first_pause: Duration::from_secs(1),
            confirm_max_pause: Duration::from_secs(8),
            max_highlight_age: Duration::from_secs(60),
            reconcile_window: Duration::from_secs(15),
            reconcile_first_pause: Duration::from_secs(1),
            longest_clip: Duration::from_secs(60),
            shortest_clip: Duration::from_secs(10),
            lead: Duration::from_secs(5),
            tail: Duration::from_secs(5),
            inline_budget: Duration::from_secs(80),
        }
    }
}

/// What to do after an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again this long after the first attempt.
    RetryAt(Duration),
    /// Stop: the detection fails with this reason.
    GiveUp(ClipFailure),
}

impl ClipPolicy {
    /// After attempt `index` (0-based) failed with `result` at `elapsed` since the first attempt.
    pub fn after_failure(&self, index: usize, result: &AttemptResult, elapsed: Duration) -> NextStep {
        let last_reason = match result {
            AttemptResult::Created { .. } => unreachable!("a created clip is not a failure"),
            AttemptResult::Rejected(reason) => return NextStep::GiveUp(*reason),
            AttemptResult::Unauthorized => return NextStep::GiveUp(ClipFailure::Unauthorized),
            AttemptResult::ServerError(_) => ClipFailure::ServerError,
            AttemptResult::Unreachable | AttemptResult::NotSent => ClipFailure::Unreachable,
            AttemptResult::RateLimited { .. } => ClipFailure::RateLimited,
        };
        let Some(&scheduled) = self.attempts.get(index + 1) else {
            return NextStep::GiveUp(last_reason);
        };
        let mut at = scheduled.max(elapsed);
        if let AttemptResult::RateLimited { reset_after: Some(reset) } = result {
            at = at.max(elapsed + *reset);
        }
        if at >= self.deadline {
            return NextStep::GiveUp(if matches!(result, AttemptResult::RateLimited { .. }) {
                ClipFailure::RateLimited
            } else {
                ClipFailure::DeadlineExceeded
            });
        }
        NextStep::RetryAt(at)
    }

    /// The HTTP timeout for an attempt starting at `elapsed`: whatever is left of the budget.
    pub fn attempt_timeout(&self, elapsed: Duration) -> Option<Duration> {
        self.deadline.checked_sub(elapsed).filter(|left| !left.is_zero())
    }

    /// The pauses between Get Clips polls, within the confirm window.
    pub fn confirm_pauses(&self) -> impl Iterator<Item = Duration> + use<> {
        growing_pauses(self.confirm_first_pause, self.confirm_max_pause, self.confirm_window)
    }

    /// The pauses between lookups for a clip whose creation had an unknown outcome, after a
    /// first lookup at once.
    pub fn reconcile_pauses(&self) -> impl Iterator<Item = Duration> + use<> {
        growing_pauses(self.reconcile_first_pause, Duration::from_secs(4), self.reconcile_window)
    }

    /// Create Clip's `duration` for a call at `now_s`: from [`ClipPolicy::lead`] before the burst
    /// of `detection` began to now, at least `shortest_clip`, at most `longest_clip`; `None` when
    /// even the longest clip made now would begin after the peak (lead included).
    pub fn duration_for(&self, detection: &crate::Detection, now_s: i64) -> Option<u32> {
        let lead = self.lead.as_secs() as i64;
        let longest = self.longest_clip.as_secs() as i64;
        let reaching_peak = now_s.saturating_sub(detection.peak_second).saturating_add(lead);
        if !(0..=longest).contains(&reaching_peak) {
            return None;
        }
        let wanted = now_s.saturating_sub(burst_start(detection)).saturating_add(lead);
        Some(wanted.clamp(self.shortest_clip.as_secs() as i64, longest) as u32)
    }
}

/// What a clip can be cut from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footage {
    /// The live stream at the moment of the call (Create Clip).
    Live,
    /// A VOD (Create Clip From VOD).
    Vod(VodFootage),
}

/// A VOD: its second 0 is the Unix second `started_at_s`, and it holds the stream up to
/// `recorded_until_s` (now, for the archive of a stream still live).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodFootage {
    pub video_id: String,
    pub started_at_s: i64,
    pub recorded_until_s: i64,
}

/// Where and how long one clip is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// Create Clip now, keeping the last `duration_s` seconds.
    Live { duration_s: u32 },
    /// Create Clip From VOD: the clip ends `end_offset_s` into the VOD (Twitch's `vod_offset`)
    /// and lasts `duration_s`.
    Vod { video_id: String, end_offset_s: u64, duration_s: u32 },
}

impl Cut {
    pub fn duration_s(&self) -> u32 {
        match self {
            Self::Live { duration_s } | Self::Vod { duration_s, .. } => *duration_s,
        }
    }
}

impl ClipPolicy {
    /// The cut of a clip of `detection` made at `now_s` from `footage`; `None` when the moment
    /// cannot be clipped from it (live: a clip made now would begin after the peak; VOD: the
    /// peak is not in the recording, or less than 5 s of it precede the clip's end).
    pub fn cut(&self, detection: &crate::Detection, footage: &Footage, now_s: i64) -> Option<Cut> {
        match footage {
            Footage::Live => self.duration_for(detection, now_s).map(|duration_s| Cut::Live { duration_s }),
            Footage::Vod(vod) => {
                let peak = detection.peak_second;
                if peak < vod.started_at_s || peak > vod.recorded_until_s {
                    return None;
                }
                let end = peak.saturating_add(self.tail.as_secs() as i64).min(vod.recorded_until_s);
                let end_offset = end.checked_sub(vod.started_at_s)?;
                let wanted =
                    end.saturating_sub(burst_start(detection)).saturating_add(self.lead.as_secs() as i64);
                let duration = wanted
                    .clamp(self.shortest_clip.as_secs() as i64, self.longest_clip.as_secs() as i64)
                    .min(end_offset);
                // Twitch's shortest clip; a clip may not begin before the VOD does.
                (duration >= 5).then(|| Cut::Vod {
                    video_id: vod.video_id.clone(),
                    end_offset_s: end_offset as u64,
                    duration_s: duration as u32,
                })
            }
        }
    }
}

/// The second a detection's burst began, read from its chat curve (which ends at the fired
/// second): walking back from the peak, the earliest second of the unbroken run of seconds above
/// the calm level, where calm is the curve's median and "above" is more than twice it and at
/// least 2 messages more. The peak itself without a curve (older items).
pub fn burst_start(detection: &crate::Detection) -> i64 {
    let counts = detection.curve.counts();
    let back_from_fired = detection.fired_second.saturating_sub(detection.peak_second);
    let Some(peak_index) =
        usize::try_from(back_from_fired).ok().and_then(|back| counts.len().checked_sub(back + 1))
    else {
        return detection.peak_second;
    };
    let mut sorted = counts.to_vec();
    sorted.sort_unstable();
    let calm = sorted[sorted.len() / 2];
    let above = |count: u32| count > calm.saturating_mul(2).max(calm.saturating_add(2));
    let mut start = peak_index;
    while start > 0 && above(counts[start - 1]) {
        start -= 1;
    }
    detection.peak_second - (peak_index - start) as i64
}

/// Pauses starting at `first`, each half as long again as the one before up to `max`, adding up
/// to at most `window`.
fn growing_pauses(first: Duration, max: Duration, window: Duration) -> impl Iterator<Item = Duration> {
    let mut pause = first;
    let mut total = Duration::ZERO;
    std::iter::from_fn(move || {
        if pause.is_zero() || total + pause > window {
            return None;
        }
        let this = pause;
        total += pause;
        pause = (pause + pause / 2).min(max);
        Some(this)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn server_errors_are_retried_at_three_and_six_seconds() {
        let policy = ClipPolicy::default();
        let error = AttemptResult::ServerError(500);
        assert_eq!(policy.after_failure(0, &error, Duration::from_millis(120)), NextStep::RetryAt(S(3)));
        assert_eq!(policy.after_failure(1, &error, Duration::from_millis(3_200)), NextStep::RetryAt(S(6)));
        assert_eq!(
            policy.after_failure(2, &error, Duration::from_millis(6_100)),
            NextStep::GiveUp(ClipFailure::ServerError)
        );
    }

    #[test]
    fn final_answers_are_not_retried() {
        let policy = ClipPolicy::default();
        for reason in [ClipFailure::NotLive, ClipFailure::ClippingRestricted, ClipFailure::NotClippable] {
            assert_eq!(
                policy.after_failure(0, &AttemptResult::Rejected(reason), S(0)),
                NextStep::GiveUp(reason)
            );
        }
    }

    #[test]
    fn rate_limit_resets_are_honoured_inside_the_deadline_only() {
        let policy = ClipPolicy::default();
        let soon = AttemptResult::RateLimited { reset_after: Some(S(4)) };
        assert_eq!(policy.after_failure(0, &soon, S(0)), NextStep::RetryAt(S(4)));
        let late = AttemptResult::RateLimited { reset_after: Some(S(30)) };
        assert_eq!(policy.after_failure(0, &late, S(0)), NextStep::GiveUp(ClipFailure::RateLimited));
        let unknown = AttemptResult::RateLimited { reset_after: None };
        assert_eq!(policy.after_failure(0, &unknown, S(0)), NextStep::RetryAt(S(3)));
    }

    #[test]
    fn slow_attempts_cannot_push_past_the_deadline() {
        let policy = ClipPolicy::default();
        // The second attempt hung until 9.5 s: the third would start after the deadline.
        assert_eq!(
            policy.after_failure(1, &AttemptResult::Unreachable, Duration::from_millis(10_000)),
            NextStep::GiveUp(ClipFailure::DeadlineExceeded)
        );
        assert_eq!(policy.attempt_timeout(Duration::from_millis(6_000)), Some(S(4)));
        assert_eq!(policy.attempt_timeout(S(10)), None);
    }

    #[test]
    fn confirm_polls_back_off_within_sixty_seconds() {
        let pauses: Vec<Duration> = ClipPolicy::default().confirm_pauses().collect();
        assert_eq!(
            pauses[..4],
            [S(1), Duration::from_millis(1_500), Duration::from_millis(2_250), Duration::from_millis(3_375)]
        );
        assert!(pauses.iter().sum::<Duration>() <= S(60));
        assert!(pauses.iter().all(|p| *p <= S(8)));
        assert!(pauses.len() >= 8);
    }

    #[test]
    fn only_answers_that_leave_the_clip_in_doubt_are_unknown() {
        assert!(AttemptResult::ServerError(503).outcome_unknown());
        assert!(AttemptResult::Unreachable.outcome_unknown());
        for clear in [
            AttemptResult::NotSent,
            AttemptResult::Unauthorized,
            AttemptResult::RateLimited { reset_after: None },
            AttemptResult::Rejected(ClipFailure::NotLive),
        ] {
            assert!(!clear.outcome_unknown(), "{clear:?}");
        }
    }

    #[test]
    fn lookups_after_an_unknown_outcome_last_about_fifteen_seconds() {
        let pauses: Vec<Duration> = ClipPolicy::default().reconcile_pauses().collect();
        let total: Duration = pauses.iter().sum();
        assert!(total <= S(15) && total >= S(10), "{pauses:?}");
        assert_eq!(pauses[0], S(1));
    }

    fn detection(peak: i64, fired: i64, curve: &[u32]) -> crate::Detection {
        crate::Detection {
            broadcaster_id: 1,
            peak_second: peak,
            fired_second: fired,
            intensity: 6.0,
            message_count: 40,
            baseline_mean: 2.0,
            baseline_std: 1.0,
            curve: crate::ChatCurve::from_counts(curve),
            phrases: Default::default(),
        }
    }

    #[test]
    fn the_burst_begins_where_chat_left_its_calm_level_before_the_peak() {
        // Calm 2–3 a second, a build-up from 990, the peak at 993, reported at 995.
        let curve = [2, 3, 2, 2, 3, 2, 9, 20, 40, 60, 30, 3];
        assert_eq!(curve.len(), 12);
        assert_eq!(burst_start(&detection(993, 995, &curve)), 990, "9 a second is above calm 2–3");
        // v2 reports at the first elevated second: the peak is the last second of the curve.
        assert_eq!(burst_start(&detection(995, 995, &[1, 0, 1, 1, 14, 22])), 994);
        // A quiet channel: one second of 7 among zeros and ones.
        assert_eq!(burst_start(&detection(24, 25, &[0, 1, 0, 0, 7, 1])), 24);
        // No curve (an item written before curves) or a peak outside it: the peak.
        assert_eq!(burst_start(&detection(500, 501, &[])), 500);
        assert_eq!(burst_start(&detection(500, 540, &[5, 5])), 500);
    }

    #[test]
    fn a_clip_begins_a_lead_before_the_burst_and_ends_at_the_call() {
        let policy = ClipPolicy::default();
        let build_up = detection(993, 995, &[2, 3, 2, 2, 3, 2, 9, 20, 40, 60, 30, 3]);
        // Called at 998: from 990 - 5 = 985 to 998.
        assert_eq!(policy.duration_for(&build_up, 998), Some(13));
        // A sharp burst called at once still gets the shortest clip.
        let sharp = detection(995, 995, &[1, 0, 1, 1, 14, 22]);
        assert_eq!(policy.duration_for(&sharp, 996), Some(10));
        // Later calls reach back further, up to 60 s, while the peak (with its lead) is in reach.
        assert_eq!(policy.duration_for(&sharp, 1_040), Some(51));
        assert_eq!(policy.duration_for(&sharp, 1_050), Some(60));
        assert_eq!(policy.duration_for(&sharp, 1_051), None);
        // Out-of-range seconds neither overflow nor allow a clip.
        assert_eq!(policy.duration_for(&detection(i64::MIN, i64::MIN, &[]), i64::MAX), None);
        assert_eq!(policy.duration_for(&detection(i64::MAX, i64::MAX, &[]), i64::MIN), None);
    }

    #[test]
    fn a_vod_clip_ends_a_tail_after_the_peak_whenever_it_is_made() {
        let policy = ClipPolicy::default();
        let build_up = detection(993, 995, &[2, 3, 2, 2, 3, 2, 9, 20, 40, 60, 30, 3]);
        let vod = |started_at_s, recorded_until_s| {
            Footage::Vod(VodFootage { video_id: "v1".into(), started_at_s, recorded_until_s })
        };
        let cut = |footage: &Footage, now_s| policy.cut(&build_up, footage, now_s);
        // From 990 - 5 = 985 to 993 + 5 = 998, 98 s into a VOD that began at 900: ends at 98.
        let expected = Cut::Vod { video_id: "v1".into(), end_offset_s: 98, duration_s: 13 };
        assert_eq!(cut(&vod(900, 2_000), 2_000), Some(expected.clone()));
        // An hour later, the same cut: a VOD clip does not depend on the call's time.
        assert_eq!(cut(&vod(900, 5_600), 5_600), Some(expected));
        // The live archive holds the stream up to now only: the clip ends there.
        assert_eq!(
            cut(&vod(900, 996), 996),
            Some(Cut::Vod { video_id: "v1".into(), end_offset_s: 96, duration_s: 11 })
        );
        // A VOD that began during the burst: the clip begins with the VOD.
        assert_eq!(
            cut(&vod(988, 2_000), 2_000),
            Some(Cut::Vod { video_id: "v1".into(), end_offset_s: 10, duration_s: 10 })
        );
        // Too little before the clip's end, or a peak outside the recording: no cut.
        assert_eq!(cut(&vod(992, 995), 995), None, "3 s of VOD before the clip would end");
        assert_eq!(cut(&vod(994, 2_000), 2_000), None, "the peak at 993 is before the VOD");
        assert_eq!(cut(&vod(0, 990), 990), None, "the peak at 993 is not recorded yet");
        // Live footage is Create Clip's timing.
        assert_eq!(cut(&Footage::Live, 998), Some(Cut::Live { duration_s: 13 }));
        assert_eq!(cut(&Footage::Live, 2_000), None);
    }
}
