//! Twitch over HTTP: Helix clips (Create Clip, Create Clip From VOD, Get Clips, and the Get
//! Streams / Get Videos calls that find a live stream's VOD, through `twitch_api`) and OAuth tokens
//! (refresh through `twitch_oauth2`; code exchange and app tokens), with base URLs per client so
//! tests point each instance at its own fake server (`TWITCH_HELIX_URL`, `TWITCH_OAUTH2_URL` in
//! production configuration). `twitch_api` sends through [`crate::twitch_http::RewritingClient`],
//! whose module docs say why.
//!
//! Tokens never appear in `Debug`, `Display`, logs or errors.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use highlights_core::clip_policy::{AttemptResult, ClipFailure, Cut};
use twitch_api::HelixClient;
use twitch_api::helix::clips::{CreateClipFromVodRequest, CreateClipRequest, GetClipsRequest};
use twitch_api::helix::streams::GetStreamsRequest;
use twitch_api::helix::videos::{GetVideosRequest, VideoTypeFilter};
use twitch_api::helix::{ClientRequestError, EmptyBody, HelixRequestGetError, HelixRequestPostError};

use super::*;
use crate::twitch_http::{RewriteError, RewritingClient, with_rate_limit_capture};

/// Helix through `twitch_api` (request types, response parsing), sent by
/// [`RewritingClient`] so the base URL is this client's (a fake Twitch in tests).
#[derive(Clone)]
pub struct HelixClips {
    helix: HelixClient<'static, RewritingClient>,
    client_id: String,
}

impl std::fmt::Debug for HelixClips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelixClips").field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

impl HelixClips {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>, client_id: impl Into<String>) -> Self {
        let client =
            RewritingClient::new(http, &base_url.into(), DEFAULT_OAUTH2_URL, Duration::from_secs(10));
        Self { helix: HelixClient::with_client(client), client_id: client_id.into() }
    }

    /// `twitch_api` wants a token type; only the access token and client id are sent.
    fn bearer(&self, token: &Secret) -> twitch_oauth2::UserToken {
        twitch_oauth2::UserToken::from_existing_unchecked(
            twitch_oauth2::AccessToken::new(token.expose().to_owned()),
            None,
            twitch_oauth2::ClientId::new(self.client_id.clone()),
            None,
            // Not sent with Helix requests: the token's owner is not needed to call as it.
            twitch_api::types::UserName::new("highlights".to_owned()),
            twitch_api::types::UserId::new("0".to_owned()),
            None,
            None,
        )
    }
}

impl HelixClips {
    /// One Helix GET, its errors classified (`what` names the call in them).
    async fn get<R, D>(&self, token: &Secret, request: R, what: &'static str) -> Result<D, TwitchError>
    where
        R: twitch_api::helix::Request<Response = D> + twitch_api::helix::RequestGet,
        D: serde::de::DeserializeOwned + PartialEq,
    {
        let bearer = self.bearer(token);
        let response = tokio::time::timeout(Duration::from_secs(5), self.helix.req_get(request, &bearer))
            .await
            .map_err(|_| TwitchError::Unreachable { what, reason: "timed out".into() })?;
        match response {
            Ok(response) => Ok(response.data),
            Err(ClientRequestError::HelixRequestGetError(HelixRequestGetError::Error { status, .. })) => {
                Err(TwitchError::Status { what, status: status.as_u16() })
            }
            Err(ClientRequestError::RequestError(error)) => {
                Err(TwitchError::Unreachable { what, reason: error.to_string() })
            }
            Err(error) => Err(TwitchError::Malformed { what, reason: error.to_string() }),
        }
    }
}

/// How long until the Unix second `reset_s`.
pub(crate) fn reset_in(reset_s: u64) -> Option<Duration> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset_s.saturating_sub(now)))
}

/// Create Clip's answer, classified for the retry policy by its status.
fn classify(status: u16, reset_s: Option<u64>) -> AttemptResult {
    match status {
        400 => AttemptResult::Rejected(ClipFailure::NotClippable),
        401 => AttemptResult::Unauthorized,
        403 => AttemptResult::Rejected(ClipFailure::ClippingRestricted),
        404 => AttemptResult::Rejected(ClipFailure::NotLive),
        429 => AttemptResult::RateLimited { reset_after: reset_s.and_then(reset_in) },
        _ => AttemptResult::ServerError(status),
    }
}

impl ClipsApi for HelixClips {
    async fn create_clip(&self, token: &Secret, order: &ClipOrder<'_>, timeout: Duration) -> AttemptResult {
        let broadcaster_id = order.broadcaster_id;
        let broadcaster = twitch_api::types::UserId::new(broadcaster_id.to_string());
        let bearer = self.bearer(token);
        let (result, limit) = match order.cut {
            Cut::Live { duration_s } => {
                let mut request = CreateClipRequest::broadcaster_id(broadcaster).duration(*duration_s as f32);
                if let Some(title) = order.title {
                    request = request.title(title.to_owned());
                }
                let call = async { self.helix.req_post(request, EmptyBody, &bearer).await.map(|r| r.data) };
                with_rate_limit_capture(tokio::time::timeout(timeout, call)).await
            }
            Cut::Vod { video_id, end_offset_s, duration_s } => {
                let Some(editor_id) = order.editor_id else {
                    tracing::warn!(broadcaster_id, "a clip from a VOD needs the token's user as its editor");
                    return AttemptResult::Rejected(ClipFailure::Unauthorized);
                };
                let request = CreateClipFromVodRequest::new(
                    twitch_api::types::UserId::new(editor_id.to_owned()),
                    broadcaster,
                    twitch_api::types::VideoId::new(video_id.clone()),
                    *end_offset_s,
                    // Twitch requires a title here; its own default would be the VOD's.
                    order.title.unwrap_or("Highlight").to_owned(),
                )
                .duration(*duration_s as f32);
                let call = async { self.helix.req_post(request, EmptyBody, &bearer).await.map(|r| r.data) };
                with_rate_limit_capture(tokio::time::timeout(timeout, call)).await
            }
        };
        let reset_s = limit.reset_s;
        match result {
            Err(_) => {
                tracing::warn!(broadcaster_id, "Create Clip timed out");
                AttemptResult::Unreachable
            }
            Ok(Ok(created)) => {
                AttemptResult::Created { clip_id: created.id.to_string(), edit_url: created.edit_url }
            }
            Ok(Err(ClientRequestError::HelixRequestPostError(HelixRequestPostError::Error {
                status,
                ..
            }))) => classify(status.as_u16(), reset_s),
            Ok(Err(ClientRequestError::RequestError(RewriteError::NotSent(reason)))) => {
                tracing::warn!(broadcaster_id, %reason, "Create Clip could not connect");
                AttemptResult::NotSent
            }
            Ok(Err(ClientRequestError::RequestError(error))) => {
                tracing::warn!(broadcaster_id, %error, "Create Clip did not get an answer");
                AttemptResult::Unreachable
            }
            Ok(Err(error)) => {
                tracing::warn!(broadcaster_id, error = %error, "Create Clip's answer was not understood");
                AttemptResult::ServerError(502)
            }
        }
    }

    async fn get_clip(&self, token: &Secret, clip_id: &str) -> Result<Option<ClipInfo>, TwitchError> {
        const WHAT: &str = "Get Clips";
        let ids = [twitch_api::types::ClipId::new(clip_id.to_owned())];
        let request = GetClipsRequest::clip_ids(&ids[..]);
        let clips = self.get(token, request, WHAT).await?;
        Ok(clips.into_iter().next().map(|clip| ClipInfo {
            id: clip.id.to_string(),
            url: clip.url,
            embed_url: clip.embed_url,
            thumbnail_url: clip.thumbnail_url,
            title: clip.title,
            duration: clip.duration,
            vod_offset: clip.vod_offset,
            view_count: clip.view_count,
            video_id: clip.video_id.to_string(),
        }))
    }

    async fn live_archive(
        &self,
        token: &Secret,
        broadcaster_id: u64,
    ) -> Result<Option<VideoInfo>, TwitchError> {
        let user = [twitch_api::types::UserId::new(broadcaster_id.to_string())];
        let streams: Vec<twitch_api::helix::streams::Stream> =
            self.get(token, GetStreamsRequest::user_ids(&user[..]), "Get Streams").await?;
        let Some(stream) = streams.into_iter().next() else { return Ok(None) };
        let started_at_s = unix_s(stream.started_at.as_str())
            .ok_or_else(|| TwitchError::Malformed { what: "Get Streams", reason: "started_at".into() })?;
        let mut request = GetVideosRequest::user_id(&user[0]);
        request.type_ = Some(VideoTypeFilter::Archive);
        request.first = Some(5);
        let videos: Vec<twitch_api::helix::videos::Video> = self.get(token, request, "Get Videos").await?;
        // The archive being recorded is the one of this very stream.
        Ok(videos.into_iter().find(|video| video.stream_id.as_ref() == Some(&stream.id)).map(|video| {
            VideoInfo {
                video_id: video.id.to_string(),
                broadcaster_id,
                started_at_s,
                length_s: now_s() - started_at_s,
            }
        }))
    }

    async fn clips_since(
        &self,
        token: &Secret,
        broadcaster_id: u64,
        since_s: i64,
    ) -> Result<Vec<ListedClip>, TwitchError> {
        const WHAT: &str = "Get Clips by broadcaster";
        let since = time::OffsetDateTime::from_unix_timestamp(since_s)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .ok_or_else(|| TwitchError::Malformed { what: WHAT, reason: format!("time {since_s}") })?;
        let since = twitch_api::types::Timestamp::new(since)
            .map_err(|e| TwitchError::Malformed { what: WHAT, reason: e.to_string() })?;
        let mut request =
            GetClipsRequest::broadcaster_id(twitch_api::types::UserId::new(broadcaster_id.to_string()))
                .started_at(since);
        request.first = Some(100);
        let clips: Vec<twitch_api::helix::clips::Clip> = self.get(token, request, WHAT).await?;
        Ok(clips
            .into_iter()
            .filter_map(|clip| {
                Some(ListedClip {
                    created_at_s: unix_s(clip.created_at.as_str())?,
                    id: clip.id.to_string(),
                    creator_id: clip.creator_id.to_string(),
                })
            })
            .collect())
    }
}

impl HelixClips {
    /// Get Videos by id: a recorded VOD (its broadcaster, start and length), `None` when Twitch
    /// knows no such video.
    pub async fn video(&self, token: &Secret, video_id: &str) -> Result<Option<VideoInfo>, TwitchError> {
        const WHAT: &str = "Get Videos";
        let ids = [twitch_api::types::VideoId::new(video_id.to_owned())];
        let videos: Vec<twitch_api::helix::videos::Video> =
            self.get(token, GetVideosRequest::ids(&ids[..]), WHAT).await?;
        let Some(video) = videos.into_iter().next() else { return Ok(None) };
        let malformed = |field: &str| TwitchError::Malformed { what: WHAT, reason: field.to_owned() };
        Ok(Some(VideoInfo {
            video_id: video.id.to_string(),
            broadcaster_id: video.user_id.as_str().parse().map_err(|_| malformed("user_id"))?,
            started_at_s: unix_s(video.created_at.as_str()).ok_or_else(|| malformed("created_at"))?,
            length_s: twitch_duration_s(&video.duration).ok_or_else(|| malformed("duration"))?,
        }))
    }
}

/// An RFC 3339 time as a Unix second.
fn unix_s(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Twitch's video durations ("3h8m33s", "52m1s", "59s") in seconds.
fn twitch_duration_s(text: &str) -> Option<i64> {
    let (mut total, mut number) = (0i64, None::<i64>);
    for c in text.chars() {
        match c {
            '0'..='9' => {
                number = Some(number.unwrap_or(0).checked_mul(10)?.checked_add(i64::from(c as u8 - b'0'))?)
            }
            'h' | 'm' | 's' => {
                let unit = match c {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.checked_add(number.take()?.checked_mul(unit)?)?;
            }
            _ => return None,
        }
    }
    (number.is_none() && !text.is_empty()).then_some(total)
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

/// Twitch's OAuth endpoints, through `twitch_oauth2` (app token, code exchange, refresh,
/// validation).
#[derive(Clone)]
pub struct TwitchOAuth {
    base_url: String,
    /// `twitch_oauth2` sends its requests through this: Twitch's URLs become this client's.
    oauth2: HelixClient<'static, RewritingClient>,
}

impl std::fmt::Debug for TwitchOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwitchOAuth").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl TwitchOAuth {
    pub fn new(http: reqwest::Client, base_url: impl Into<String>) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        let client =
            RewritingClient::new(http.clone(), DEFAULT_HELIX_URL, &base_url, Duration::from_secs(10));
        Self { base_url, oauth2: HelixClient::with_client(client) }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// An app access token (client credentials grant, through `twitch_oauth2`) and when it
    /// expires (Unix seconds).
    pub async fn app_token(&self, app: &AppCredentials) -> Result<(Secret, i64), TwitchError> {
        use twitch_oauth2::TwitchToken as _;
        use twitch_oauth2::tokens::errors::AppAccessTokenError;
        const WHAT: &str = "app token";
        let token = twitch_oauth2::AppAccessToken::get_app_access_token(
            &self.oauth2,
            twitch_oauth2::ClientId::new(app.client_id.clone()),
            twitch_oauth2::ClientSecret::new(app.client_secret.expose().to_owned()),
            vec![],
        )
        .await
        .map_err(|error| match error {
            AppAccessTokenError::Request(e) => TwitchError::Unreachable { what: WHAT, reason: e.to_string() },
            AppAccessTokenError::RequestParseError(twitch_oauth2::RequestParseError::TwitchError(answer)) => {
                TwitchError::Status { what: WHAT, status: answer.status.as_u16() }
            }
            // Nothing else carries a secret: the messages name what was missing.
            other => TwitchError::Malformed { what: WHAT, reason: other.to_string() },
        })?;
        Ok((Secret::new(token.access_token.secret()), now_s() + token.expires_in().as_secs() as i64))
    }

    /// Exchanges the stored token's refresh token for a new access token (and a new refresh
    /// token, to persist) through `twitch_oauth2`.
    pub async fn refresh(&self, app: &AppCredentials, stored: &UserToken) -> Result<UserToken, TwitchError> {
        const WHAT: &str = "token refresh";
        let refresh = twitch_oauth2::RefreshToken::new(stored.refresh_token.expose().to_owned());
        let client_id = twitch_oauth2::ClientId::new(app.client_id.clone());
        let secret = twitch_oauth2::ClientSecret::new(app.client_secret.expose().to_owned());
        let (access, expires_in, next) = refresh
            .refresh_token(&self.oauth2, &client_id, Some(&secret))
            .await
            .map_err(|error| match error {
                twitch_oauth2::tokens::errors::RefreshTokenError::RequestError(e) => {
                    TwitchError::Unreachable { what: WHAT, reason: e.to_string() }
                }
                twitch_oauth2::tokens::errors::RefreshTokenError::RequestParseError(
                    twitch_oauth2::RequestParseError::TwitchError(answer),
                ) => TwitchError::Status { what: WHAT, status: answer.status.as_u16() },
                // Nothing else carries a secret: the messages name what was missing.
                other => TwitchError::Malformed { what: WHAT, reason: other.to_string() },
            })?;
        Ok(UserToken {
            access_token: Secret::new(access.secret()),
            refresh_token: next.map_or_else(|| stored.refresh_token.clone(), |r| Secret::new(r.secret())),
            expires_at: Some(now_s() + expires_in.as_secs() as i64),
            scopes: stored.scopes.clone(),
            user_id: stored.user_id.clone(),
        })
    }

    /// The id of the user `access` belongs to (`/oauth2/validate`).
    pub async fn user_id(&self, access: &Secret) -> Result<String, TwitchError> {
        const WHAT: &str = "token validation";
        let token = twitch_oauth2::AccessToken::new(access.expose().to_owned());
        let validated = token.validate_token(&self.oauth2).await.map_err(|error| match error {
            twitch_oauth2::tokens::errors::ValidationError::NotAuthorized => {
                TwitchError::Status { what: WHAT, status: 401 }
            }
            twitch_oauth2::tokens::errors::ValidationError::Request(e) => {
                TwitchError::Unreachable { what: WHAT, reason: e.to_string() }
            }
            // Nothing else carries a secret: the messages name what was missing.
            other => TwitchError::Malformed { what: WHAT, reason: other.to_string() },
        })?;
        validated
            .user_id
            .map(|id| id.to_string())
            .ok_or(TwitchError::Malformed { what: WHAT, reason: "an app token, not a user token".into() })
    }

    /// Starts the authorization code flow for `scopes` (through `twitch_oauth2`'s
    /// `UserTokenBuilder`, which draws the CSRF state the redirect must bring back).
    pub fn code_flow(
        &self,
        app: &AppCredentials,
        redirect_uri: &str,
        scopes: &[&str],
    ) -> Result<CodeFlow, TwitchError> {
        let redirect = url::Url::parse(redirect_uri)
            .map_err(|e| TwitchError::Malformed { what: "the redirect URL", reason: e.to_string() })?;
        let mut builder = twitch_oauth2::tokens::UserTokenBuilder::new(
            twitch_oauth2::ClientId::new(app.client_id.clone()),
            twitch_oauth2::ClientSecret::new(app.client_secret.expose().to_owned()),
            redirect,
        )
        .set_scopes(scopes.iter().map(|scope| twitch_oauth2::Scope::parse(scope.to_string())).collect());
        let (url, _state) = builder.generate_url();
        // twitch_oauth2 builds the URL on a process-wide base (Twitch's, or an environment
        // variable read once per process); this client's base is its own, since tests run a fake
        // Twitch each. So the base is swapped here, and only here.
        let twitch_base = twitch_oauth2::AUTH_URL.as_str();
        let authorize_url = match url.as_str().strip_prefix(twitch_base) {
            Some(rest) => format!("{}/authorize{rest}", self.base_url),
            None => url.to_string(),
        };
        Ok(CodeFlow { builder, authorize_url })
    }
}

/// One run of the authorization code flow: the URL to open, then the exchange of the code the
/// redirect brings, which requires the state this flow drew.
pub struct CodeFlow {
    builder: twitch_oauth2::tokens::UserTokenBuilder,
    authorize_url: String,
}

impl std::fmt::Debug for CodeFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeFlow").field("authorize_url", &self.authorize_url).finish_non_exhaustive()
    }
}

impl CodeFlow {
    /// The URL the user opens to grant the scopes.
    pub fn authorize_url(&self) -> &str {
        &self.authorize_url
    }

    /// Whether a redirect's (decoded) `state` is the one this flow drew.
    pub fn state_matches(&self, state: &str) -> bool {
        self.builder.csrf_is_valid(state)
    }

    /// The flow's last step: refuses a `state` other than this flow's before anything is sent,
    /// exchanges `code`, and validates the new token (which names its user).
    pub async fn exchange(
        self,
        oauth: &TwitchOAuth,
        state: &str,
        code: &str,
    ) -> Result<UserToken, TwitchError> {
        use twitch_oauth2::TwitchToken as _;
        use twitch_oauth2::tokens::errors::UserTokenExchangeError;
        const WHAT: &str = "authorization code exchange";
        let token =
            self.builder.get_user_token(&oauth.oauth2, state, code).await.map_err(|error| match error {
                UserTokenExchangeError::StateMismatch => TwitchError::Malformed {
                    what: WHAT,
                    reason: "the redirect's state is not this run's".into(),
                },
                UserTokenExchangeError::RequestError(e) => {
                    TwitchError::Unreachable { what: WHAT, reason: e.to_string() }
                }
                UserTokenExchangeError::RequestParseError(twitch_oauth2::RequestParseError::TwitchError(
                    answer,
                )) => TwitchError::Status { what: WHAT, status: answer.status.as_u16() },
                // Nothing else carries a secret: the messages name what was missing.
                other => TwitchError::Malformed { what: WHAT, reason: other.to_string() },
            })?;
        let refresh_token = token
            .refresh_token
            .as_ref()
            .map(|refresh| Secret::new(refresh.secret()))
            .ok_or(TwitchError::Malformed { what: WHAT, reason: "no refresh token".into() })?;
        Ok(UserToken {
            access_token: Secret::new(token.access_token.secret()),
            refresh_token,
            expires_at: Some(now_s() + token.expires_in().as_secs() as i64),
            scopes: token.scopes().iter().map(ToString::to_string).collect(),
            user_id: Some(token.user_id.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_asks_for_the_scopes_on_this_clients_server_with_a_fresh_state() {
        let app = AppCredentials { client_id: "abc".into(), client_secret: Secret::new("shh") };
        let oauth = TwitchOAuth::new(crate::tls::http_client(), "http://127.0.0.1:9/oauth2/");
        let flow = oauth
            .code_flow(&app, "http://localhost:17563/callback", &["clips:edit", "editor:manage:clips"])
            .unwrap();
        let url = url::Url::parse(flow.authorize_url()).unwrap();
        assert_eq!(&url[..url::Position::AfterPath], "http://127.0.0.1:9/oauth2/authorize");
        let query: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(query["response_type"], "code");
        assert_eq!(query["client_id"], "abc");
        assert_eq!(query["redirect_uri"], "http://localhost:17563/callback");
        assert_eq!(query["scope"], "clips:edit editor:manage:clips");
        assert!(flow.state_matches(&query["state"]));
        assert!(!flow.state_matches("forged"));
        assert!(!format!("{flow:?}").contains("shh"));
        let other = oauth.code_flow(&app, "http://localhost:17563/callback", &["clips:edit"]).unwrap();
        assert!(!other.state_matches(&query["state"]), "each flow draws its own state");
        assert!(oauth.code_flow(&app, "not a url", &["clips:edit"]).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_an_error_that_carries_no_secret() {
        // twitch_oauth2 puts the client secret in the token request's query string.
        let oauth = TwitchOAuth::new(crate::tls::http_client(), "http://127.0.0.1:9/oauth2");
        let app = AppCredentials { client_id: "abc".into(), client_secret: Secret::new("hunter2-secret") };
        let error = oauth.app_token(&app).await.unwrap_err();
        assert!(matches!(error, TwitchError::Unreachable { what: "app token", .. }), "{error:?}");
        assert!(!format!("{error} {error:?}").contains("hunter2"), "{error}");
    }

    #[test]
    fn video_durations_read_as_seconds() {
        assert_eq!(twitch_duration_s("3h8m33s"), Some(3 * 3600 + 8 * 60 + 33));
        assert_eq!(twitch_duration_s("52m1s"), Some(52 * 60 + 1));
        assert_eq!(twitch_duration_s("59s"), Some(59));
        for bad in ["", "12", "1x", "h", "99999999999999999999h"] {
            assert_eq!(twitch_duration_s(bad), None, "{bad}");
        }
    }
}
