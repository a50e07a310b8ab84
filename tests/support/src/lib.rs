//! Fake Twitch for tests: a Helix (`/helix/clips`) and OAuth (`/oauth2/token`,
//! `/oauth2/authorize`) server on 127.0.0.1:0 that speaks Twitch's JSON, validates bearer tokens,
//! follows a per-test script of Create Clip answers and records every call.
//!
//! [`irc::FakeIrc`] is the chat side: Twitch IRC over plain TCP on 127.0.0.1:0.
//!
//! Test code only: it is never linked into a product binary.

pub mod irc;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// One scripted answer to Create Clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateAnswer {
    /// 202 with a new clip id.
    Accept,
    /// An error status (400, 403, 404, 500, ...).
    Status(u16),
    /// 429 with `Ratelimit-Reset` this many seconds from now.
    RateLimited { reset_in_s: u64 },
}

/// A recorded Create Clip call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateCall {
    pub broadcaster_id: String,
    pub token: String,
    pub title: Option<String>,
    pub at: Instant,
    /// Wall-clock time of the call, Unix milliseconds (for latency measurements across processes).
    pub at_unix_ms: u128,
}

#[derive(Default)]
struct World {
    script: VecDeque<CreateAnswer>,
    create_calls: Vec<CreateCall>,
    /// clip id -> (broadcaster id, polls so far)
    clips: HashMap<String, (String, u32)>,
    publish_after_polls: u32,
    valid_access_tokens: Vec<String>,
    /// refresh token -> the next (access, refresh) pair it yields
    refreshes: HashMap<String, (String, String)>,
    refresh_calls: u32,
    /// authorization code -> (access, refresh)
    codes: HashMap<String, (String, String)>,
    next_clip: u32,
}

/// A running fake; dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeTwitch {
    pub addr: SocketAddr,
    world: Arc<Mutex<World>>,
}

impl FakeTwitch {
    /// Starts the server on 127.0.0.1:0 on the current tokio runtime.
    pub async fn start() -> Self {
        let world = Arc::new(Mutex::new(World { publish_after_polls: 1, ..World::default() }));
        let app = Router::new()
            .route("/helix/clips", post(create_clip).get(get_clips))
            .route("/oauth2/token", post(token))
            .route("/oauth2/authorize", get(authorize))
            .with_state(world.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("a local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("the fake Twitch server runs");
        });
        Self { addr, world }
    }

    pub fn helix_url(&self) -> String {
        format!("http://{}/helix", self.addr)
    }

    pub fn oauth_url(&self) -> String {
        format!("http://{}/oauth2", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().expect("not poisoned"))
    }

    /// Accepts `access` as a valid bearer token.
    pub fn accept_token(&self, access: &str) {
        self.with(|w| w.valid_access_tokens.push(access.to_owned()));
    }

    /// Revokes every access token (the next call gets a 401).
    pub fn revoke_tokens(&self) {
        self.with(|w| w.valid_access_tokens.clear());
    }

    /// `refresh` may be exchanged once for (`access`, `next_refresh`).
    pub fn allow_refresh(&self, refresh: &str, access: &str, next_refresh: &str) {
        self.with(|w| w.refreshes.insert(refresh.to_owned(), (access.to_owned(), next_refresh.to_owned())));
    }

    pub fn allow_code(&self, code: &str, access: &str, refresh: &str) {
        self.with(|w| w.codes.insert(code.to_owned(), (access.to_owned(), refresh.to_owned())));
    }

    /// The next Create Clip calls answer these, in order (then `Accept`).
    pub fn script(&self, answers: &[CreateAnswer]) {
        self.with(|w| w.script.extend(answers.iter().copied()));
    }

    /// Get Clips finds a clip after this many polls (`u32::MAX`: never).
    pub fn publish_after_polls(&self, polls: u32) {
        self.with(|w| w.publish_after_polls = polls);
    }

    pub fn create_calls(&self) -> Vec<CreateCall> {
        self.with(|w| w.create_calls.clone())
    }

    pub fn refresh_calls(&self) -> u32 {
        self.with(|w| w.refresh_calls)
    }
}

type Shared = State<Arc<Mutex<World>>>;

fn bearer(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

fn error(status: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(json!({"error": status.canonical_reason(), "status": status.as_u16(), "message": message})))
        .into_response()
}

#[derive(Deserialize)]
struct CreateQuery {
    broadcaster_id: String,
    title: Option<String>,
}

async fn create_clip(State(world): Shared, headers: HeaderMap, Query(query): Query<CreateQuery>) -> Response {
    let mut world = world.lock().expect("not poisoned");
    let token = bearer(&headers);
    world.create_calls.push(CreateCall {
        broadcaster_id: query.broadcaster_id.clone(),
        token: token.clone(),
        title: query.title,
        at: Instant::now(),
        at_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis(),
    });
    if headers.get("client-id").is_none() || !world.valid_access_tokens.contains(&token) {
        return error(401, "Invalid OAuth token");
    }
    match world.script.pop_front().unwrap_or(CreateAnswer::Accept) {
        CreateAnswer::Accept => {
            world.next_clip += 1;
            let id = format!("FakeClip{}", world.next_clip);
            world.clips.insert(id.clone(), (query.broadcaster_id, 0));
            let body =
                json!({"data": [{"id": id, "edit_url": format!("https://clips.twitch.tv/{id}/edit")}]});
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        CreateAnswer::Status(status) => error(status, "scripted"),
        CreateAnswer::RateLimited { reset_in_s } => {
            let reset =
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() + reset_in_s;
            let mut response = error(429, "Too Many Requests");
            let headers = response.headers_mut();
            headers.insert("ratelimit-limit", "800".parse().expect("a header value"));
            headers.insert("ratelimit-remaining", "0".parse().expect("a header value"));
            headers.insert("ratelimit-reset", reset.to_string().parse().expect("a header value"));
            response
        }
    }
}

#[derive(Deserialize)]
struct GetQuery {
    id: String,
}

async fn get_clips(State(world): Shared, headers: HeaderMap, Query(query): Query<GetQuery>) -> Response {
    let mut world = world.lock().expect("not poisoned");
    if !world.valid_access_tokens.contains(&bearer(&headers)) {
        return error(401, "Invalid OAuth token");
    }
    let publish_after = world.publish_after_polls;
    let Some((broadcaster, polls)) = world.clips.get_mut(&query.id) else {
        return Json(json!({"data": [], "pagination": {}})).into_response();
    };
    *polls += 1;
    if *polls < publish_after {
        return Json(json!({"data": [], "pagination": {}})).into_response();
    }
    let id = &query.id;
    Json(json!({"data": [{
        "id": id,
        "url": format!("https://clips.twitch.tv/{id}"),
        "embed_url": format!("https://clips.twitch.tv/embed?clip={id}"),
        "broadcaster_id": broadcaster,
        "broadcaster_name": "Fake",
        "creator_id": "1",
        "creator_name": "highlights",
        "video_id": "",
        "game_id": "509658",
        "language": "en",
        "title": "Chat exploded",
        "view_count": 3,
        "created_at": "2026-11-27T10:00:00Z",
        "thumbnail_url": format!("https://clips-media-assets2.twitch.tv/{id}-preview-480x272.jpg"),
        "duration": 30.0,
        "vod_offset": 1234,
        "is_featured": false
    }], "pagination": {}}))
    .into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    refresh_token: Option<String>,
    code: Option<String>,
    client_id: String,
    client_secret: String,
}

async fn token(State(world): Shared, Form(form): Form<TokenForm>) -> Response {
    let mut world = world.lock().expect("not poisoned");
    if form.client_id.is_empty() || form.client_secret.is_empty() {
        return error(400, "missing client credentials");
    }
    let pair = match form.grant_type.as_str() {
        "refresh_token" => {
            world.refresh_calls += 1;
            form.refresh_token.and_then(|r| world.refreshes.remove(&r))
        }
        "authorization_code" => form.code.and_then(|c| world.codes.remove(&c)),
        _ => None,
    };
    let Some((access, refresh)) = pair else {
        return error(400, "Invalid refresh token");
    };
    world.valid_access_tokens.push(access.clone());
    Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 14_400,
        "scope": ["clips:edit"],
        "token_type": "bearer"
    }))
    .into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
    scope: String,
}

/// A user who always clicks "Authorize": redirects back with code `fake-code`.
async fn authorize(Query(query): Query<AuthorizeQuery>) -> Response {
    if !query.scope.split(' ').any(|s| s == "clips:edit") {
        return error(400, "missing scope");
    }
    Redirect::to(&format!("{}?code=fake-code&scope=clips%3Aedit&state={}", query.redirect_uri, query.state))
        .into_response()
}
