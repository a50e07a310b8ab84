//! Helix Get Streams with an app access token (client credentials), for the ingester's
//! live/offline polling: the live streams among up to 100 logins per call, and the top live
//! streams by viewers.
//!
//! The app token is fetched when first needed, again when it is about to expire or Helix answers
//! 401, and never logged. When Helix says the rate-limit bucket is empty (`Ratelimit-Remaining:
//! 0`), the next call waits for `Ratelimit-Reset` (at most [`MAX_RATE_LIMIT_WAIT`]).

use std::future::Future;
use std::time::Duration;

use highlights_core::model::BroadcasterId;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::twitch::{AppCredentials, Secret, TwitchError, TwitchOAuth, now_s, reset_after, without_url};

/// Logins per Get Streams call (Helix's limit).
pub const LOGINS_PER_CALL: usize = 100;
pub const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
const WHAT: &str = "Get Streams";

/// A live stream as Helix reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStream {
    pub broadcaster_id: BroadcasterId,
    pub login: String,
    pub name: String,
    pub stream_id: String,
    pub title: String,
    pub game_id: String,
    pub game_name: String,
    pub started_at_ms: i64,
    pub viewer_count: u64,
}

/// The port the ingester's poller uses.
pub trait StreamsApi: Send + Sync {
    /// The live streams among `logins` (any number; batched by 100).
    fn live(&self, logins: &[String]) -> impl Future<Output = Result<Vec<LiveStream>, TwitchError>> + Send;
    /// The `n` most-watched live streams.
    fn top(&self, n: usize) -> impl Future<Output = Result<Vec<LiveStream>, TwitchError>> + Send;
}

#[derive(Deserialize)]
struct StreamJson {
    id: String,
    user_id: String,
    user_login: String,
    #[serde(default)]
    user_name: String,
    #[serde(default)]
    game_id: String,
    #[serde(default)]
    game_name: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    viewer_count: u64,
    started_at: String,
}

#[derive(Deserialize)]
struct Page {
    data: Vec<StreamJson>,
    #[serde(default)]
    pagination: Pagination,
}

#[derive(Deserialize, Default)]
struct Pagination {
    cursor: Option<String>,
}

struct AppToken {
    access_token: Secret,
    expires_at: i64,
}

pub struct HelixStreams {
    http: reqwest::Client,
    helix_url: String,
    oauth: TwitchOAuth,
    app: AppCredentials,
    token: Mutex<Option<AppToken>>,
    /// Set when Helix reported an empty bucket: no call before this instant.
    wait_until: Mutex<Option<tokio::time::Instant>>,
}

impl HelixStreams {
    pub fn new(http: reqwest::Client, helix_url: &str, oauth_url: &str, app: AppCredentials) -> Self {
        Self {
            oauth: TwitchOAuth::new(http.clone(), oauth_url),
            http,
            helix_url: helix_url.trim_end_matches('/').to_owned(),
            app,
            token: Mutex::new(None),
            wait_until: Mutex::new(None),
        }
    }

    async fn token(&self, renew: bool) -> Result<Secret, TwitchError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && !renew
            && token.expires_at > now_s() + 60
        {
            return Ok(token.access_token.clone());
        }
        let (access_token, expires_at) = self.oauth.app_token(&self.app).await?;
        let token = AppToken { access_token, expires_at };
        let secret = token.access_token.clone();
        *cached = Some(token);
        Ok(secret)
    }

    /// One Get Streams call with `query`; renews the token once on 401, waits out an empty
    /// rate-limit bucket (before the call, or once after a 429).
    async fn page(&self, query: &[(&str, String)]) -> Result<Page, TwitchError> {
        let mut renewed = false;
        let mut waited = false;
        loop {
            if let Some(until) = *self.wait_until.lock().await {
                tokio::time::sleep_until(until).await;
            }
            let token = self.token(false).await?;
            let response = self
                .http
                .get(format!("{}/streams", self.helix_url))
                .query(query)
                .bearer_auth(token.expose())
                .header("Client-Id", &self.app.client_id)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| TwitchError::Unreachable { what: WHAT, reason: without_url(&e) })?;
            let remaining = response
                .headers()
                .get("ratelimit-remaining")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let reset = reset_after(response.headers()).map(|wait| wait.min(MAX_RATE_LIMIT_WAIT));
            *self.wait_until.lock().await = match (remaining, reset) {
                (Some(0), Some(wait)) => Some(tokio::time::Instant::now() + wait),
                _ => None,
            };
            match response.status().as_u16() {
                200 => {
                    return response
                        .json()
                        .await
                        .map_err(|e| TwitchError::Malformed { what: WHAT, reason: without_url(&e) });
                }
                401 if !renewed => {
                    renewed = true;
                    self.token(true).await?;
                }
                429 if !waited => {
                    waited = true;
                    let wait = reset.unwrap_or(Duration::from_secs(1));
                    *self.wait_until.lock().await = Some(tokio::time::Instant::now() + wait);
                }
                status => return Err(TwitchError::Status { what: WHAT, status }),
            }
        }
    }
}

fn live_stream(json: StreamJson) -> Option<LiveStream> {
    let started =
        time::OffsetDateTime::parse(&json.started_at, &time::format_description::well_known::Rfc3339).ok()?;
    Some(LiveStream {
        broadcaster_id: json.user_id.parse().ok()?,
        login: json.user_login.to_lowercase(),
        name: json.user_name,
        stream_id: json.id,
        title: json.title,
        game_id: json.game_id,
        game_name: json.game_name,
        started_at_ms: (started.unix_timestamp_nanos() / 1_000_000) as i64,
        viewer_count: json.viewer_count,
    })
}

impl StreamsApi for HelixStreams {
    async fn live(&self, logins: &[String]) -> Result<Vec<LiveStream>, TwitchError> {
        let mut live = Vec::new();
        for chunk in logins.chunks(LOGINS_PER_CALL) {
            let mut query: Vec<(&str, String)> =
                chunk.iter().map(|login| ("user_login", login.clone())).collect();
            query.push(("first", LOGINS_PER_CALL.to_string()));
            live.extend(self.page(&query).await?.data.into_iter().filter_map(live_stream));
        }
        Ok(live)
    }

    async fn top(&self, n: usize) -> Result<Vec<LiveStream>, TwitchError> {
        let mut top = Vec::new();
        let mut cursor: Option<String> = None;
        while top.len() < n {
            let mut query =
                vec![("first", (n - top.len()).min(LOGINS_PER_CALL).to_string()), ("type", "live".into())];
            if let Some(after) = cursor.take() {
                query.push(("after", after));
            }
            let page = self.page(&query).await?;
            let empty = page.data.is_empty();
            top.extend(page.data.into_iter().filter_map(live_stream));
            cursor = page.pagination.cursor;
            if empty || cursor.is_none() {
                break;
            }
        }
        top.truncate(n);
        Ok(top)
    }
}
