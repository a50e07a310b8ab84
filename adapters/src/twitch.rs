//! What Twitch is to the rest of the system: secrets, app credentials, user tokens, clips and
//! VODs, and the clips port ([`ClipsApi`]). No HTTP here: the Helix and OAuth adapters are in
//! [`helix`] (feature `twitch`), so what only reads these types (the detector, the API, the
//! embedded store) builds without `twitch_api` and reqwest.
//!
//! Tokens never appear in `Debug`, `Display`, logs or errors.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use highlights_core::clip_policy::{AttemptResult, Cut};
use serde::{Deserialize, Serialize};

#[cfg(feature = "twitch")]
pub mod helix;
#[cfg(feature = "twitch")]
pub use helix::{CodeFlow, HelixClips, TwitchOAuth};

pub const DEFAULT_HELIX_URL: &str = "https://api.twitch.tv/helix";
pub const DEFAULT_OAUTH2_URL: &str = "https://id.twitch.tv/oauth2";

/// A secret string: shown as `<redacted>` everywhere.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The app's credentials (the `twitch-app` secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: Secret,
}

/// A user token with `clips:edit` (the `twitch-user-token` secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToken {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Unix seconds after which the access token is expired, when known.
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The Twitch user the token belongs to (from `/oauth2/validate`): the creator of our clips,
    /// which is how the clipper recognises its own clip after an unknown outcome.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Either scope lets a token cut clips from a channel's VODs (Create Clip From VOD): the
/// broadcaster's own, or an editor's.
pub const VOD_CLIP_SCOPES: [&str; 2] = ["editor:manage:clips", "channel:manage:clips"];

impl UserToken {
    /// Whether Twitch granted a scope that cuts clips from VODs.
    pub fn can_clip_vods(&self) -> bool {
        self.scopes.iter().any(|scope| VOD_CLIP_SCOPES.contains(&scope.as_str()))
    }

    /// Expired, or expiring within a minute.
    pub fn is_expiring(&self, now_s: i64) -> bool {
        self.expires_at.is_some_and(|at| at - 60 <= now_s)
    }
}

/// A clip as Get Clips describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ClipInfo {
    pub id: String,
    pub url: String,
    pub embed_url: String,
    #[serde(default)]
    pub thumbnail_url: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub duration: f64,
    #[serde(default)]
    pub vod_offset: Option<i64>,
    #[serde(default)]
    pub view_count: i64,
    /// The VOD the clip was cut from ("" when Twitch keeps none).
    #[serde(default)]
    pub video_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TwitchError {
    #[error("Twitch answered {status} to {what}")]
    Status { what: &'static str, status: u16 },
    #[error("Twitch could not be reached for {what}: {reason}")]
    Unreachable { what: &'static str, reason: String },
    #[error("Twitch's answer to {what} was not understood: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// A clip found by listing a broadcaster's recent clips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedClip {
    pub id: String,
    pub creator_id: String,
    /// When Twitch made it, Unix seconds.
    pub created_at_s: i64,
}

/// One clip to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipOrder<'a> {
    pub broadcaster_id: u64,
    /// Twitch's default (the stream's title) when `None`.
    pub title: Option<&'a str>,
    pub cut: &'a Cut,
    /// The token's user, who makes a clip from a VOD as the channel's editor (or broadcaster).
    pub editor_id: Option<&'a str>,
}

/// A VOD on Twitch: the archive of a live stream, or a recording looked up by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    pub video_id: String,
    pub broadcaster_id: u64,
    /// Unix second of the VOD's second 0 (for a live stream's archive: the stream's start).
    pub started_at_s: i64,
    /// Its length so far, seconds.
    pub length_s: i64,
}

/// The clips part of Helix, as the clipper needs it (the port).
pub trait ClipsApi: Send + Sync {
    /// One Create Clip call (or Create Clip From VOD, for a [`Cut::Vod`]), classified for the
    /// retry policy.
    fn create_clip(
        &self,
        token: &Secret,
        order: &ClipOrder<'_>,
        timeout: Duration,
    ) -> impl Future<Output = AttemptResult> + Send;

    /// The VOD the broadcaster's live stream is being recorded to: `None` when the channel is
    /// not live or keeps no archive of this stream.
    fn live_archive(
        &self,
        token: &Secret,
        broadcaster_id: u64,
    ) -> impl Future<Output = Result<Option<VideoInfo>, TwitchError>> + Send;

    /// Get Clips by broadcaster: the clips Twitch lists as made at or after `since_s` (Unix
    /// seconds; it lists new clips with a lag).
    fn clips_since(
        &self,
        token: &Secret,
        broadcaster_id: u64,
        since_s: i64,
    ) -> impl Future<Output = Result<Vec<ListedClip>, TwitchError>> + Send;

    /// Get Clips by id: `None` while Twitch has not published it yet.
    fn get_clip(
        &self,
        token: &Secret,
        clip_id: &str,
    ) -> impl Future<Output = Result<Option<ClipInfo>, TwitchError>> + Send;
}

pub fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let token = UserToken {
            access_token: Secret::new("at-hunter2"),
            refresh_token: Secret::new("rt-hunter2"),
            expires_at: Some(10),
            scopes: vec!["clips:edit".into()],
            user_id: Some("42".into()),
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // The secret's JSON keeps the values, of course.
        assert!(serde_json::to_string(&token).unwrap().contains("at-hunter2"));
    }

    #[test]
    fn expiry_has_a_minute_of_margin() {
        let token = |expires_at| UserToken {
            access_token: Secret::new("a"),
            refresh_token: Secret::new("r"),
            expires_at,
            scopes: vec![],
            user_id: None,
        };
        assert!(token(Some(1_000)).is_expiring(950));
        assert!(!token(Some(1_000)).is_expiring(900));
        assert!(!token(None).is_expiring(i64::MAX));
    }
}
