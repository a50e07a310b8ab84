//! What the API returns for a clip, whatever store it comes from (PostgreSQL's rows in
//! [`crate::statement`], SQLite's in `highlights-embedded`).

use serde::Serialize;
use utoipa::ToSchema;

/// `total_count` counts at most this many clips (`total_count_capped` says when there are more):
/// an exact COUNT(*) over a million rows costs tens of milliseconds per request.
pub const TOTAL_COUNT_CAP: i64 = 10_000;

/// One clip as the API returns it (the seed's fields and more).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Clip {
    /// Our row id (stable, increasing with insertion).
    pub id: i64,
    /// `clip`: a Twitch clip. `moment`: a detected moment stored without a Twitch clip
    /// (`highlights dev` without Twitch credentials); its Twitch fields are null.
    #[schema(example = "clip")]
    pub kind: String,
    /// Twitch's clip id; for a moment, a stable id of its own (`moment-<broadcaster>-<unix second>`).
    pub clip_id: String,
    /// Twitch user id of the channel.
    pub broadcaster_id: String,
    /// The clip's page on Twitch (absent until Twitch confirms the clip).
    pub url: Option<String>,
    /// The player URL; add `&parent=<your host>` to embed it.
    pub embed_url: Option<String>,
    pub thumbnail_url: Option<String>,
    pub title: Option<String>,
    /// Seconds.
    pub duration: Option<f32>,
    /// Seconds into the VOD, when Twitch knows it (for a moment: when the chat was replayed from a
    /// VOD's chat export).
    pub vod_offset: Option<i32>,
    /// The moment in the recording on Twitch (`https://www.twitch.tv/videos/<id>?t=1h2m3s`), when
    /// the VOD and the offset are known.
    pub vod_url: Option<String>,
    /// The detection's peak second (RFC 3339).
    #[schema(format = DateTime)]
    pub detected_at: String,
    /// When Twitch created the clip (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// How far chat rose above its baseline, in standard deviations.
    pub intensity: f64,
    /// Messages in the detection's window.
    pub message_count: i32,
    pub view_count: Option<i32>,
    /// Twitch's Get Clips has returned the clip.
    pub confirmed: bool,
    /// Chat messages per second up to the second the moment was reported, oldest first (at most
    /// 30): the shape of the burst. Null for clips stored before curves existed.
    #[schema(example = json!([3, 2, 4, 3, 41, 58, 60]))]
    pub curve: Option<Vec<i32>>,
    /// The phrases chat repeated most around the moment, most said first (at most 3): `count` is
    /// how many said it at least (one voice per chatter and second). Null for clips stored before
    /// phrases existed.
    pub phrases: Option<Vec<ChatPhrase>>,
    pub streamer_login: Option<String>,
    pub streamer_name: Option<String>,
}

/// A phrase chat repeated, and how many said it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChatPhrase {
    #[schema(example = "KEKW")]
    pub phrase: String,
    #[schema(example = 23)]
    pub count: i32,
}

/// The phrases of a clip from its two stored columns (texts, counts; same order).
pub fn chat_phrases(phrases: Option<Vec<String>>, counts: Option<Vec<i32>>) -> Option<Vec<ChatPhrase>> {
    Some(phrases?.into_iter().zip(counts?).map(|(phrase, count)| ChatPhrase { phrase, count }).collect())
}

/// The link to second `offset` of VOD `video_id` on Twitch.
pub fn vod_url(video_id: Option<String>, offset: Option<i32>) -> Option<String> {
    let (video_id, offset) = (video_id.filter(|v| !v.is_empty())?, offset?.max(0));
    Some(format!(
        "https://www.twitch.tv/videos/{video_id}?t={}h{}m{}s",
        offset / 3600,
        offset / 60 % 60,
        offset % 60
    ))
}

/// RFC 3339 text of a Unix time in microseconds.
pub fn rfc3339_from_us(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
