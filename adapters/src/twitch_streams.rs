//! Helix Get Streams with an app access token (client credentials), for the ingester's
//! live/offline polling: the live streams among up to 100 logins per call, and the top live
//! streams by viewers; and Get Users, for tools that turn logins into broadcaster ids. Requests and answers are `twitch_api`'s, sent through
//! [`RewritingClient`] like the clipper's.
//!
//! The app token is fetched when first needed, again when it is about to expire or Helix answers
//! 401, and never logged. When Helix says the rate-limit bucket is empty (`Ratelimit-Remaining:
//! 0`), the next call waits for `Ratelimit-Reset` (at most [`MAX_RATE_LIMIT_WAIT`]).

use std::future::Future;
use std::time::Duration;

use highlights_core::model::BroadcasterId;
use tokio::sync::Mutex;
use twitch_api::helix::streams::{GetStreamsRequest, Stream};
use twitch_api::helix::users::{GetUsersRequest, User};
use twitch_api::helix::{self, ClientRequestError, HelixClient, HelixRequestGetError};
use twitch_api::types::UserName;

use crate::twitch::helix::reset_in;
use crate::twitch::{AppCredentials, Secret, TwitchError, TwitchOAuth, now_s};
use crate::twitch_http::{RewritingClient, with_rate_limit_capture};

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

struct AppToken {
    access_token: Secret,
    expires_at: i64,
}

pub struct HelixStreams {
    helix: HelixClient<'static, RewritingClient>,
    oauth: TwitchOAuth,
    app: AppCredentials,
    token: Mutex<Option<AppToken>>,
    /// Set when Helix reported an empty bucket: no call before this instant.
    wait_until: Mutex<Option<tokio::time::Instant>>,
}

impl HelixStreams {
    pub fn new(http: reqwest::Client, helix_url: &str, oauth_url: &str, app: AppCredentials) -> Self {
        let client = RewritingClient::new(http.clone(), helix_url, oauth_url, Duration::from_secs(10));
        Self {
            helix: HelixClient::with_client(client),
            oauth: TwitchOAuth::new(http, oauth_url),
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

    /// `twitch_api` wants a token type; only the access token and client id are sent.
    fn bearer(&self, token: &Secret) -> twitch_oauth2::AppAccessToken {
        twitch_oauth2::AppAccessToken::from_existing_unchecked(
            twitch_oauth2::AccessToken::new(token.expose().to_owned()),
            None,
            twitch_oauth2::ClientId::new(self.app.client_id.clone()),
            twitch_oauth2::ClientSecret::new(self.app.client_secret.expose().to_owned()),
            None,
            None,
        )
    }

    /// One Helix GET; renews the token once on 401, waits out an empty rate-limit bucket
    /// (before the call, or once after a 429). Returns the data and what says where the next
    /// page starts.
    async fn page<R, D>(&self, request: R, what: &'static str) -> Result<(D, R::PaginationData), TwitchError>
    where
        R: helix::Request<Response = D> + helix::RequestGet + Clone + Send + Sync,
        D: serde::de::DeserializeOwned + PartialEq + Send,
    {
        let mut renewed = false;
        let mut waited = false;
        loop {
            if let Some(until) = *self.wait_until.lock().await {
                tokio::time::sleep_until(until).await;
            }
            let bearer = self.bearer(&self.token(false).await?);
            let call = self.helix.req_get(request.clone(), &bearer);
            let (result, limit) = with_rate_limit_capture(call).await;
            let reset = limit.reset_s.and_then(reset_in).map(|wait| wait.min(MAX_RATE_LIMIT_WAIT));
            *self.wait_until.lock().await = match (limit.remaining, reset) {
                (Some(0), Some(wait)) => Some(tokio::time::Instant::now() + wait),
                _ => None,
            };
            let status = match result {
                Ok(response) => return Ok((response.data, response.pagination_data)),
                Err(ClientRequestError::HelixRequestGetError(HelixRequestGetError::Error {
                    status, ..
                })) => status.as_u16(),
                Err(ClientRequestError::RequestError(error)) => {
                    return Err(TwitchError::Unreachable { what, reason: error.to_string() });
                }
                Err(error) => return Err(TwitchError::Malformed { what, reason: error.to_string() }),
            };
            match status {
                401 if !renewed => {
                    renewed = true;
                    self.token(true).await?;
                }
                429 if !waited => {
                    waited = true;
                    let wait = reset.unwrap_or(Duration::from_secs(1));
                    *self.wait_until.lock().await = Some(tokio::time::Instant::now() + wait);
                }
                status => return Err(TwitchError::Status { what, status }),
            }
        }
    }
}

impl HelixStreams {
    /// Helix Get Users: the broadcaster id of each of `logins` that exists (lowercase logins).
    pub async fn user_ids(&self, logins: &[String]) -> Result<Vec<(String, BroadcasterId)>, TwitchError> {
        let mut found = Vec::new();
        for chunk in logins.chunks(LOGINS_PER_CALL) {
            let names: Vec<UserName> =
                chunk.iter().map(|login| UserName::new(login.to_lowercase())).collect();
            let request = GetUsersRequest::logins(&names[..]);
            let (users, _) = self.page::<_, Vec<User>>(request, "Get Users").await?;
            found.extend(users.into_iter().filter_map(|user| {
                Some((user.login.as_str().to_lowercase(), user.id.as_str().parse().ok()?))
            }));
        }
        Ok(found)
    }
}

fn live_stream(stream: Stream) -> Option<LiveStream> {
    let started = time::OffsetDateTime::parse(
        stream.started_at.as_str(),
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some(LiveStream {
        broadcaster_id: stream.user_id.as_str().parse().ok()?,
        login: stream.user_login.as_str().to_lowercase(),
        name: stream.user_name.to_string(),
        stream_id: stream.id.to_string(),
        title: stream.title,
        game_id: stream.game_id.to_string(),
        game_name: stream.game_name,
        started_at_ms: (started.unix_timestamp_nanos() / 1_000_000) as i64,
        viewer_count: stream.viewer_count as u64,
    })
}

impl StreamsApi for HelixStreams {
    async fn live(&self, logins: &[String]) -> Result<Vec<LiveStream>, TwitchError> {
        let mut live = Vec::new();
        for chunk in logins.chunks(LOGINS_PER_CALL) {
            let names: Vec<UserName> = chunk.iter().map(|login| UserName::new(login.clone())).collect();
            let mut request = GetStreamsRequest::user_logins(&names[..]);
            request.first = Some(LOGINS_PER_CALL);
            let (streams, _) = self.page::<_, Vec<Stream>>(request, WHAT).await?;
            live.extend(streams.into_iter().filter_map(live_stream));
        }
        Ok(live)
    }

    async fn top(&self, n: usize) -> Result<Vec<LiveStream>, TwitchError> {
        let mut top = Vec::new();
        let mut cursor: Option<helix::Cursor> = None;
        while top.len() < n {
            let mut request = GetStreamsRequest::default();
            request.first = Some((n - top.len()).min(LOGINS_PER_CALL));
            request.after = cursor.take().map(std::borrow::Cow::Owned);
            let (streams, pagination) = self.page::<_, Vec<Stream>>(request, WHAT).await?;
            let next = pagination.cursor;
            let empty = streams.is_empty();
            top.extend(streams.into_iter().filter_map(live_stream));
            cursor = next;
            if empty || cursor.is_none() {
                break;
            }
        }
        top.truncate(n);
        Ok(top)
    }
}
