//! Twitch over HTTP: Helix clips (Create Clip, Get Clips) and OAuth tokens (refresh, code
//! exchange), with base URLs per client so tests point each instance at its own fake server
//! (`TWITCH_HELIX_URL`, `TWITCH_OAUTH2_URL` in production configuration).
//!
//! Why not `twitch_api`'s HelixClient: its URL override is one process-wide static read from the
//! environment, which cannot give each test its own fake server without mutating the
//! environment of a multi-threaded process; the Helix calls the product needs are three small
//! JSON requests.
//!
//! Tokens never appear in `Debug`, `Display`, logs or errors.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use highlights_core::clip_policy::{AttemptResult, ClipFailure};
use serde::{Deserialize, Serialize};

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
}

impl UserToken {
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

/// The clips part of Helix, as the clipper needs it (the port).
pub trait ClipsApi: Send + Sync {
    /// One Create Clip call, classified for the retry policy.
    fn create_clip(
        &self,
        token: &Secret,
        broadcaster_id: u64,
        title: Option<&str>,
        timeout: Duration,
    ) -> impl Future<Output = AttemptResult> + Send;

    /// Get Clips by id: `None` while Twitch has not published it yet.
    fn get_clip(
        &self,
        token: &Secret,
        clip_id: &str,
    ) -> impl Future<Output = Result<Option<ClipInfo>, TwitchError>> + Send;
}

/// Helix over reqwest.
#[derive(Debug, Clone)]
pub struct HelixClips {
    http: reqwest::Client,
    base_url: String,
    client_id: String,
}

impl HelixClips {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned(), client_id: client_id.into() }
    }
}

pub(crate) fn reset_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let reset_s: u64 = headers
        .get("ratelimit-helixclipscreation-reset")
        .or_else(|| headers.get("ratelimit-reset"))?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset_s.saturating_sub(now)))
}

#[derive(Deserialize)]
struct DataList<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct CreatedClip {
    id: String,
    #[serde(default)]
    edit_url: String,
}

impl ClipsApi for HelixClips {
    async fn create_clip(
        &self,
        token: &Secret,
        broadcaster_id: u64,
        title: Option<&str>,
        timeout: Duration,
    ) -> AttemptResult {
        let mut query = vec![("broadcaster_id", broadcaster_id.to_string())];
        if let Some(title) = title {
            query.push(("title", title.to_owned()));
        }
        let sent = self
            .http
            .post(format!("{}/clips", self.base_url))
            .query(&query)
            .bearer_auth(token.expose())
            .header("Client-Id", &self.client_id)
            .timeout(timeout)
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(broadcaster_id, error = %without_url(&error), "Create Clip did not get an answer");
                return AttemptResult::Unreachable;
            }
        };
        let status = response.status().as_u16();
        match status {
            200..=299 => match response.json::<DataList<CreatedClip>>().await {
                Ok(mut body) if !body.data.is_empty() => {
                    let clip = body.data.swap_remove(0);
                    AttemptResult::Created { clip_id: clip.id, edit_url: clip.edit_url }
                }
                _ => AttemptResult::ServerError(status),
            },
            400 => AttemptResult::Rejected(ClipFailure::NotClippable),
            401 => AttemptResult::Unauthorized,
            403 => AttemptResult::Rejected(ClipFailure::ClippingRestricted),
            404 => AttemptResult::Rejected(ClipFailure::NotLive),
            429 => AttemptResult::RateLimited { reset_after: reset_after(response.headers()) },
            _ => AttemptResult::ServerError(status),
        }
    }

    async fn get_clip(&self, token: &Secret, clip_id: &str) -> Result<Option<ClipInfo>, TwitchError> {
        const WHAT: &str = "Get Clips";
        let response = self
            .http
            .get(format!("{}/clips", self.base_url))
            .query(&[("id", clip_id)])
            .bearer_auth(token.expose())
            .header("Client-Id", &self.client_id)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| TwitchError::Unreachable { what: WHAT, reason: without_url(&e) })?;
        if !response.status().is_success() {
            return Err(TwitchError::Status { what: WHAT, status: response.status().as_u16() });
        }
        let mut body: DataList<ClipInfo> = response
            .json()
            .await
            .map_err(|e| TwitchError::Malformed { what: WHAT, reason: without_url(&e) })?;
        Ok((!body.data.is_empty()).then(|| body.data.swap_remove(0)))
    }
}

/// reqwest errors print the URL, which carries no secret here, but keep messages short.
pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "");
    }
    if error.is_timeout() {
        return "timed out".into();
    }
    text
}

/// Twitch's OAuth endpoints.
#[derive(Debug, Clone)]
pub struct TwitchOAuth {
    http: reqwest::Client,
    base_url: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    refresh_token: Secret,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    scope: Vec<String>,
}

pub fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl TwitchOAuth {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        Self { http, base_url: base_url.into().trim_end_matches('/').to_owned() }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// POSTs `form` to the token endpoint and parses the answer.
    async fn post_token<T: serde::de::DeserializeOwned>(
        &self,
        what: &'static str,
        form: &[(&str, &str)],
    ) -> Result<T, TwitchError> {
        let response = self
            .http
            .post(format!("{}/token", self.base_url))
            .form(form)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| TwitchError::Unreachable { what, reason: without_url(&e) })?;
        if !response.status().is_success() {
            return Err(TwitchError::Status { what, status: response.status().as_u16() });
        }
        response
            .json()
            .await
            .map_err(|_| TwitchError::Malformed { what, reason: "not a token response".into() })
    }

    async fn token_request(
        &self,
        what: &'static str,
        form: &[(&str, &str)],
    ) -> Result<UserToken, TwitchError> {
        let token: TokenResponse = self.post_token(what, form).await?;
        Ok(UserToken {
            access_token: token.access_token,
            refresh_token: token.refresh_token,
            expires_at: token.expires_in.map(|seconds| now_s() + seconds),
            scopes: token.scope,
        })
    }

    /// An app access token (client credentials grant) and when it expires (Unix seconds).
    pub async fn app_token(&self, app: &AppCredentials) -> Result<(Secret, i64), TwitchError> {
        #[derive(Deserialize)]
        struct AppToken {
            access_token: Secret,
            #[serde(default)]
            expires_in: Option<i64>,
        }
        let token: AppToken = self
            .post_token(
                "app token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &app.client_id),
                    ("client_secret", app.client_secret.expose()),
                ],
            )
            .await?;
        Ok((token.access_token, now_s() + token.expires_in.unwrap_or(3600)))
    }

    /// Exchanges a refresh token for a new access token (and a new refresh token, to persist).
    pub async fn refresh(
        &self,
        app: &AppCredentials,
        refresh_token: &Secret,
    ) -> Result<UserToken, TwitchError> {
        self.token_request(
            "token refresh",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.expose()),
            ],
        )
        .await
    }

    /// The authorization code flow's last step.
    pub async fn exchange_code(
        &self,
        app: &AppCredentials,
        code: &str,
        redirect_uri: &str,
    ) -> Result<UserToken, TwitchError> {
        self.token_request(
            "authorization code exchange",
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.expose()),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    /// The URL a user opens to grant `scopes`.
    pub fn authorize_url(&self, client_id: &str, redirect_uri: &str, scopes: &[&str], state: &str) -> String {
        let query = [
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", &scopes.join(" ")),
            ("state", state),
        ];
        let encoded: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", url_encode(v))).collect();
        format!("{}/authorize?{}", self.base_url, encoded.join("&"))
    }
}

fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
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
        };
        let shown = format!("{token:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // The secret's JSON keeps the values, of course.
        assert!(serde_json::to_string(&token).unwrap().contains("at-hunter2"));
    }

    #[test]
    fn the_authorize_url_asks_for_clips_edit() {
        let oauth = TwitchOAuth::new(reqwest::Client::new(), "https://id.twitch.tv/oauth2/");
        let url = oauth.authorize_url("abc", "http://localhost:17563/callback", &["clips:edit"], "s1");
        assert_eq!(
            url,
            "https://id.twitch.tv/oauth2/authorize?response_type=code&client_id=abc&redirect_uri=http%3A%2F%2Flocalhost%3A17563%2Fcallback&scope=clips%3Aedit&state=s1"
        );
    }

    #[test]
    fn expiry_has_a_minute_of_margin() {
        let token = |expires_at| UserToken {
            access_token: Secret::new("a"),
            refresh_token: Secret::new("r"),
            expires_at,
            scopes: vec![],
        };
        assert!(token(Some(1_000)).is_expiring(950));
        assert!(!token(Some(1_000)).is_expiring(900));
        assert!(!token(None).is_expiring(i64::MAX));
    }
}
