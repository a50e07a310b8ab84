//! Fake Twitch for tests: a Helix (`/helix/clips`, `/helix/videos`, `/helix/videos/clips`,
//! `/helix/streams`, `/helix/users`) and OAuth (`/oauth2/token`, `/oauth2/authorize`,
//! `/oauth2/validate`) server on 127.0.0.1:0 that speaks Twitch's JSON, validates bearer tokens
//! (and, for Create Clip From VOD, their scopes), follows a per-test script of Create Clip
//! answers (including making the clip and then losing the answer; shared by both ways of making
//! a clip) and records every call. Every user token belongs to user [`OUR_USER_ID`]; Get Clips
//! by broadcaster lists the clips made so far, as late as told. A live stream may be recorded to
//! a VOD (its archive, growing with the wall clock); recorded VODs are added by tests.
//!
//! [`irc::FakeIrc`] is the chat side: Twitch IRC over plain TCP on 127.0.0.1:0.
//! [`postgres::TempPostgres`] is a throwaway PostgreSQL server a test may stop and start, and
//! [`fault_proxy::FaultProxy`] breaks a TCP path on purpose (latency, blackhole, reset).
//!
//! Test code only: it is never linked into a product binary.

pub mod fault_proxy;
pub mod irc;
pub mod postgres;
pub mod webhook;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Query, RawQuery, State};
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
    /// Makes the clip, then never answers (the caller times out).
    AcceptThenHang,
    /// Makes the clip, then cuts the connection in the middle of the answer.
    AcceptThenReset,
    /// Makes the clip, then answers 500 anyway.
    AcceptThen500,
}

/// The Twitch user every user token of the fake belongs to (`/oauth2/validate`, `creator_id`).
pub const OUR_USER_ID: &str = "1";

/// The VOD every clip of the fake is cut from, at `vod_offset` 1234.
pub const FAKE_VOD_ID: &str = "2000000001";

/// A recorded Create Clip (or Create Clip From VOD) call.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateCall {
    pub broadcaster_id: String,
    pub token: String,
    pub title: Option<String>,
    pub duration: Option<f32>,
    /// Create Clip From VOD's `vod_id`, `vod_offset` (where the clip ends) and `editor_id`.
    pub vod: Option<(String, u64, String)>,
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
    /// Every clip made, in order: (id, broadcaster id, creator id, Unix seconds made).
    made: Vec<(String, String, String, i64)>,
    /// The title Create Clip was given, by clip id (Twitch otherwise uses the stream's title).
    clip_titles: HashMap<String, String>,
    /// Clips cut from a VOD, by clip id: (VOD id, where the clip starts in it, duration).
    clip_cuts: HashMap<String, (String, u64, f32)>,
    /// Recorded VODs tests added.
    videos: Vec<FakeVideo>,
    /// Access tokens granted a scope that cuts VODs (`editor:manage:clips`).
    vod_tokens: Vec<String>,
    /// The scopes a user granted, by authorization code.
    code_scopes: HashMap<String, Vec<String>>,
    /// Get Clips by broadcaster lists a clip only from this lookup on after it was made.
    list_after_lookups: u32,
    /// Get Clips by broadcaster calls so far.
    list_calls: u32,
    publish_after_polls: u32,
    valid_access_tokens: Vec<String>,
    /// refresh token -> the next (access, refresh) pair it yields
    refreshes: HashMap<String, (String, String)>,
    refresh_calls: u32,
    /// authorization code -> (access, refresh)
    codes: HashMap<String, (String, String)>,
    next_clip: u32,
    /// What Get Streams reports as live, most-watched first.
    live: Vec<FakeStream>,
    /// The query of every Get Streams call.
    streams_calls: Vec<Vec<(String, String)>>,
    app_tokens_issued: u32,
    /// The next Get Streams answers 429 once, with `Ratelimit-Reset` now + this many seconds.
    streams_rate_limited: Option<u64>,
    /// Every Get Streams call answers this status.
    streams_failure: Option<u16>,
    /// Users Get Users knows besides the live ones: (login, id).
    users: Vec<(String, u64)>,
}

impl World {
    /// Twitch's 401 when the request's bearer token is not one the fake accepts.
    fn refuse_token(&self, headers: &HeaderMap) -> Option<Response> {
        (!self.valid_access_tokens.contains(&bearer(headers))).then(|| error(401, "Invalid OAuth token"))
    }
}

/// A live stream Get Streams reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStream {
    pub login: String,
    pub user_id: u64,
    pub stream_id: String,
    pub title: String,
    pub viewer_count: u64,
    /// Unix second the stream began (an hour before [`FakeStream::new`] by default).
    pub started_at_s: i64,
    /// The VOD the stream is recorded to (none by default: VODs are a channel setting).
    pub vod_id: Option<String>,
}

impl FakeStream {
    pub fn new(login: &str, user_id: u64, stream_id: &str, viewer_count: u64) -> Self {
        Self {
            login: login.to_owned(),
            user_id,
            stream_id: stream_id.to_owned(),
            title: format!("{login} live"),
            viewer_count,
            started_at_s: unix_now_s() - 3600,
            vod_id: None,
        }
    }

    /// Recorded to VOD `vod_id`, which began with the stream.
    pub fn recorded_to(mut self, vod_id: &str) -> Self {
        self.vod_id = Some(vod_id.to_owned());
        self
    }
}

/// A recorded VOD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeVideo {
    pub id: String,
    pub user_id: u64,
    pub created_at_s: i64,
    pub length_s: i64,
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
            .route("/helix/videos", get(get_videos))
            .route("/helix/videos/clips", post(create_clip_from_vod))
            .route("/helix/streams", get(get_streams))
            .route("/helix/users", get(get_users))
            .route("/oauth2/token", post(token))
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/validate", get(validate))
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

    /// Accepts `access` as a valid bearer token granted `editor:manage:clips` too.
    pub fn accept_vod_token(&self, access: &str) {
        self.with(|w| {
            w.valid_access_tokens.push(access.to_owned());
            w.vod_tokens.push(access.to_owned());
        });
    }

    /// A recorded VOD Get Videos knows.
    pub fn add_video(&self, video: FakeVideo) {
        self.with(|w| w.videos.push(video));
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

    /// Get Clips by broadcaster shows a new clip only at the `lookups`-th lookup after it was
    /// made (Twitch lists new clips late).
    pub fn list_after_lookups(&self, lookups: u32) {
        self.with(|w| w.list_after_lookups = lookups);
    }

    /// Someone else (user 999) clipped `broadcaster_id` just now.
    pub fn clip_by_someone_else(&self, broadcaster_id: u64) -> String {
        self.with(|w| make_clip(w, &broadcaster_id.to_string(), "999"))
    }

    /// Every clip made so far: (clip id, broadcaster id).
    pub fn clips_made(&self) -> Vec<(String, String)> {
        self.with(|w| w.made.iter().map(|(id, b, _, _)| (id.clone(), b.clone())).collect())
    }

    pub fn create_calls(&self) -> Vec<CreateCall> {
        self.with(|w| w.create_calls.clone())
    }

    /// What Get Streams reports as live from now on.
    /// A user Get Users knows (every live stream's user is known too).
    pub fn add_user(&self, login: &str, user_id: u64) {
        self.world.lock().expect("not poisoned").users.push((login.to_lowercase(), user_id));
    }

    pub fn set_live(&self, streams: &[FakeStream]) {
        let mut live = streams.to_vec();
        live.sort_by_key(|s| std::cmp::Reverse(s.viewer_count));
        self.world.lock().expect("not poisoned").live = live;
    }

    /// The query pairs of every Get Streams call so far.
    pub fn streams_calls(&self) -> Vec<Vec<(String, String)>> {
        self.world.lock().expect("not poisoned").streams_calls.clone()
    }

    /// App access tokens issued (client credentials grants).
    pub fn app_tokens_issued(&self) -> u32 {
        self.world.lock().expect("not poisoned").app_tokens_issued
    }

    /// Every Get Streams call answers `status` (until `None`).
    pub fn fail_streams(&self, status: Option<u16>) {
        self.world.lock().expect("not poisoned").streams_failure = status;
    }

    /// The next Get Streams call answers 429 with a reset `reset_in_s` from now.
    pub fn rate_limit_streams_once(&self, reset_in_s: u64) {
        self.world.lock().expect("not poisoned").streams_rate_limited = Some(reset_in_s);
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

/// Get Streams: `user_login` (repeated, at most 100) picks channels; without it, the top live
/// streams, `first` per page with a numeric `after` cursor.
async fn get_streams(
    State(world): Shared,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let mut world = world.lock().expect("not poisoned");
    world.streams_calls.push(query.clone());
    if let Some(refused) = world.refuse_token(&headers) {
        return refused;
    }
    if headers.get("client-id").is_none() {
        return error(401, "Client-Id header required");
    }
    let reset = |in_s: u64| {
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() + in_s).to_string()
    };
    if let Some(status) = world.streams_failure {
        return error(status, "scripted failure");
    }
    if let Some(in_s) = world.streams_rate_limited.take() {
        let mut response = error(429, "Too Many Requests");
        response.headers_mut().insert("ratelimit-remaining", "0".parse().expect("a header value"));
        response.headers_mut().insert("ratelimit-reset", reset(in_s).parse().expect("a header value"));
        return response;
    }
    let logins: Vec<&str> =
        query.iter().filter(|(k, _)| k == "user_login").map(|(_, v)| v.as_str()).collect();
    let user_ids: Vec<&str> = query.iter().filter(|(k, _)| k == "user_id").map(|(_, v)| v.as_str()).collect();
    if logins.len() + user_ids.len() > 100 {
        return error(400, "too many user_login values");
    }
    let first: usize =
        query.iter().find(|(k, _)| k == "first").and_then(|(_, v)| v.parse().ok()).unwrap_or(20);
    let after: usize =
        query.iter().find(|(k, _)| k == "after").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let everyone = logins.is_empty() && user_ids.is_empty();
    let matching: Vec<&FakeStream> = if everyone {
        world.live.iter().skip(after).take(first).collect()
    } else {
        world
            .live
            .iter()
            .filter(|s| {
                logins.contains(&s.login.as_str()) || user_ids.contains(&s.user_id.to_string().as_str())
            })
            .collect()
    };
    let next = (everyone && after + first < world.live.len()).then(|| (after + first).to_string());
    let data: Vec<serde_json::Value> = matching
        .iter()
        .map(|s| {
            json!({
                "id": s.stream_id, "user_id": s.user_id.to_string(), "user_login": s.login,
                "user_name": s.login.to_uppercase(), "game_id": "509658", "game_name": "Just Chatting",
                "type": "live", "title": s.title, "viewer_count": s.viewer_count,
                "started_at": rfc3339(s.started_at_s), "language": "en", "thumbnail_url": "", "tag_ids": [],
                "tags": [], "is_mature": false
            })
        })
        .collect();
    let mut response =
        Json(json!({"data": data, "pagination": next.map_or(json!({}), |c| json!({"cursor": c}))}))
            .into_response();
    response.headers_mut().insert("ratelimit-limit", "800".parse().expect("a header value"));
    response.headers_mut().insert("ratelimit-remaining", "799".parse().expect("a header value"));
    response.headers_mut().insert("ratelimit-reset", reset(60).parse().expect("a header value"));
    response
}

/// Get Users by `login` (up to 100), with an app or user token.
async fn get_users(
    State(world): Shared,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let world = world.lock().expect("not poisoned");
    if let Some(refused) = world.refuse_token(&headers) {
        return refused;
    }
    let logins: Vec<String> =
        query.iter().filter(|(k, _)| k == "login").map(|(_, v)| v.to_lowercase()).collect();
    if logins.len() > 100 {
        return error(400, "too many login values");
    }
    let known = world.users.iter().cloned().chain(world.live.iter().map(|s| (s.login.clone(), s.user_id)));
    let data: Vec<serde_json::Value> = known
        .filter(|(login, _)| logins.contains(login))
        .map(|(login, id)| {
            json!({
                "id": id.to_string(), "login": login, "display_name": login.to_uppercase(), "type": "",
                "broadcaster_type": "", "description": "", "profile_image_url": "", "offline_image_url": "",
                "created_at": "2016-12-14T20:32:28Z"
            })
        })
        .collect();
    Json(json!({"data": data})).into_response()
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
    duration: Option<f32>,
}

fn rfc3339(unix_s: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

fn unix_now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs() as i64
}

fn make_clip(world: &mut World, broadcaster_id: &str, creator_id: &str) -> String {
    world.next_clip += 1;
    let id = format!("FakeClip{}", world.next_clip);
    world.clips.insert(id.clone(), (broadcaster_id.to_owned(), 0));
    world.made.push((id.clone(), broadcaster_id.to_owned(), creator_id.to_owned(), unix_now_s()));
    id
}

async fn create_clip(State(world): Shared, headers: HeaderMap, Query(query): Query<CreateQuery>) -> Response {
    let call = CreateCall {
        broadcaster_id: query.broadcaster_id,
        token: bearer(&headers),
        title: query.title,
        duration: query.duration,
        vod: None,
        at: Instant::now(),
        at_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis(),
    };
    scripted_create(&world, &headers, call, StatusCode::ACCEPTED, |_| None).await
}

#[derive(Deserialize)]
struct CreateFromVodQuery {
    editor_id: String,
    broadcaster_id: String,
    vod_id: String,
    vod_offset: u64,
    title: String,
    duration: Option<f32>,
}

/// Create Clip From VOD: checked as Twitch documents it (a token with a VOD scope, the editor
/// being the token's user, the VOD the broadcaster's, 5–60 s ending inside what is recorded),
/// then answered from the same script as Create Clip.
async fn create_clip_from_vod(
    State(world): Shared,
    headers: HeaderMap,
    Query(query): Query<CreateFromVodQuery>,
) -> Response {
    let duration = query.duration.unwrap_or(30.0);
    let call = CreateCall {
        broadcaster_id: query.broadcaster_id.clone(),
        token: bearer(&headers),
        title: Some(query.title.clone()),
        duration: query.duration,
        vod: Some((query.vod_id.clone(), query.vod_offset, query.editor_id.clone())),
        at: Instant::now(),
        at_unix_ms: SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis(),
    };
    let token = call.token.clone();
    // 200, where Create Clip answers 202: what `twitch_api` (which follows Twitch's reference)
    // accepts for this endpoint.
    scripted_create(&world, &headers, call, StatusCode::OK, move |world| {
        if !world.vod_tokens.contains(&token) {
            return Some(error(401, "Missing scope: editor:manage:clips or channel:manage:clips"));
        }
        if query.editor_id != OUR_USER_ID {
            return Some(error(403, "The editor is not the token's user"));
        }
        let Some(video) = all_videos(world).into_iter().find(|v| v.id == query.vod_id) else {
            return Some(error(404, "VOD not found"));
        };
        if video.user_id.to_string() != query.broadcaster_id {
            return Some(error(400, "The VOD is not the broadcaster's"));
        }
        if !(5.0..=60.0).contains(&duration)
            || f64::from(duration) > query.vod_offset as f64
            || query.vod_offset as i64 > video.length_s
        {
            return Some(error(400, "Invalid vod_offset or duration"));
        }
        None
    })
    .await
}

/// Records `call`, checks its token (then `refuse`), and answers from the script: a clip made
/// (and, if the call was for a VOD, cut from it) unless the scripted answer is a failure.
async fn scripted_create(
    world: &Arc<Mutex<World>>,
    headers: &HeaderMap,
    call: CreateCall,
    success: StatusCode,
    refuse: impl FnOnce(&World) -> Option<Response>,
) -> Response {
    let answer = {
        let mut world = world.lock().expect("not poisoned");
        world.create_calls.push(call.clone());
        if headers.get("client-id").is_none() || !world.valid_access_tokens.contains(&call.token) {
            return error(401, "Invalid OAuth token");
        }
        if let Some(refused) = refuse(&world) {
            return refused;
        }
        let answer = world.script.pop_front().unwrap_or(CreateAnswer::Accept);
        match answer {
            CreateAnswer::Status(status) => return error(status, "scripted"),
            CreateAnswer::RateLimited { reset_in_s } => {
                let reset = unix_now_s() as u64 + reset_in_s;
                let mut response = error(429, "Too Many Requests");
                let headers = response.headers_mut();
                headers.insert("ratelimit-limit", "800".parse().expect("a header value"));
                headers.insert("ratelimit-remaining", "0".parse().expect("a header value"));
                headers.insert("ratelimit-reset", reset.to_string().parse().expect("a header value"));
                return response;
            }
            _ => {}
        }
        let id = make_clip(&mut world, &call.broadcaster_id, OUR_USER_ID);
        if let Some(title) = call.title {
            world.clip_titles.insert(id.clone(), title);
        }
        if let Some((vod_id, end, _)) = call.vod {
            let duration = call.duration.unwrap_or(30.0);
            let start = end.saturating_sub(duration.ceil() as u64);
            world.clip_cuts.insert(id.clone(), (vod_id, start, duration));
        }
        (answer, id)
    };
    match answer {
        (CreateAnswer::AcceptThenHang, _) => std::future::pending().await,
        (CreateAnswer::AcceptThenReset, _) => {
            // The status line goes out, then the body fails: hyper drops the connection.
            let body = axum::body::Body::from_stream(futures::stream::once(async {
                Err::<bytes::Bytes, _>(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))
            }));
            (success, body).into_response()
        }
        (CreateAnswer::AcceptThen500, _) => error(500, "Internal Server Error"),
        (_, id) => {
            let body =
                json!({"data": [{"id": id, "edit_url": format!("https://clips.twitch.tv/{id}/edit")}]});
            (success, Json(body)).into_response()
        }
    }
}

/// Recorded VODs, and the archives of live streams recorded so far.
fn all_videos(world: &World) -> Vec<FakeVideo> {
    let now = unix_now_s();
    let archives = world.live.iter().filter_map(|s| {
        Some(FakeVideo {
            id: s.vod_id.clone()?,
            user_id: s.user_id,
            created_at_s: s.started_at_s,
            length_s: now - s.started_at_s,
        })
    });
    archives.chain(world.videos.iter().cloned()).collect()
}

/// Twitch's video duration format ("1h2m3s").
fn video_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Get Videos by `id`, or by `user_id` (newest first; `type=archive` keeps archives, which all
/// the fake's videos are).
async fn get_videos(
    State(world): Shared,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let world = world.lock().expect("not poisoned");
    if let Some(refused) = world.refuse_token(&headers) {
        return refused;
    }
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let ids: Vec<&str> = query.iter().filter(|(k, _)| k == "id").map(|(_, v)| v.as_str()).collect();
    let mut videos: Vec<FakeVideo> = match (ids.is_empty(), param("user_id")) {
        (false, None) => all_videos(&world).into_iter().filter(|v| ids.contains(&v.id.as_str())).collect(),
        (true, Some(user)) => {
            all_videos(&world).into_iter().filter(|v| v.user_id.to_string() == user).collect()
        }
        _ => return error(400, "Exactly one of id, user_id or game_id is required"),
    };
    videos.sort_by_key(|v| std::cmp::Reverse(v.created_at_s));
    let stream_of = |video: &FakeVideo| {
        world
            .live
            .iter()
            .find(|s| s.vod_id.as_deref() == Some(video.id.as_str()))
            .map(|s| s.stream_id.clone())
    };
    let data: Vec<serde_json::Value> = videos
        .iter()
        .map(|v| {
            json!({
                "id": v.id, "stream_id": stream_of(v), "user_id": v.user_id.to_string(),
                "user_login": "fake", "user_name": "Fake", "title": "Fake VOD", "description": "",
                "created_at": rfc3339(v.created_at_s), "published_at": rfc3339(v.created_at_s),
                "url": format!("https://www.twitch.tv/videos/{}", v.id), "thumbnail_url": "",
                "viewable": "public", "view_count": 1, "language": "en", "type": "archive",
                "duration": video_duration(v.length_s), "muted_segments": null
            })
        })
        .collect();
    Json(json!({"data": data, "pagination": {}})).into_response()
}

#[derive(Deserialize)]
struct GetQuery {
    id: Option<String>,
    broadcaster_id: Option<String>,
    started_at: Option<String>,
}

fn clip_json(world: &World, id: &str, broadcaster: &str, creator: &str, made_s: i64) -> serde_json::Value {
    let created_at = time::OffsetDateTime::from_unix_timestamp(made_s)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default();
    json!({
        "id": id,
        "url": format!("https://clips.twitch.tv/{id}"),
        "embed_url": format!("https://clips.twitch.tv/embed?clip={id}"),
        "broadcaster_id": broadcaster,
        "broadcaster_name": "Fake",
        "creator_id": creator,
        "creator_name": "highlights",
        "video_id": world.clip_cuts.get(id).map_or(FAKE_VOD_ID, |(vod, ..)| vod.as_str()),
        "game_id": "509658",
        "language": "en",
        "title": world.clip_titles.get(id).map_or("Fake stream", String::as_str),
        "view_count": 3,
        "created_at": created_at,
        "thumbnail_url": format!("https://clips-media-assets2.twitch.tv/{id}-preview-480x272.jpg"),
        "duration": world.clip_cuts.get(id).map_or(30.0, |(.., duration)| *duration),
        "vod_offset": world.clip_cuts.get(id).map_or(1234, |(_, start, _)| *start),
        "is_featured": false
    })
}

async fn get_clips(State(world): Shared, headers: HeaderMap, Query(query): Query<GetQuery>) -> Response {
    let mut world = world.lock().expect("not poisoned");
    if let Some(refused) = world.refuse_token(&headers) {
        return refused;
    }
    if let Some(broadcaster) = &query.broadcaster_id {
        let since = query
            .started_at
            .as_deref()
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .map_or(i64::MIN, |t| t.unix_timestamp());
        world.list_calls += 1;
        let listed: Vec<serde_json::Value> = if world.list_calls < world.list_after_lookups {
            Vec::new()
        } else {
            world
                .made
                .iter()
                .filter(|(_, b, _, made)| b == broadcaster && *made >= since)
                .map(|(id, b, creator, made)| clip_json(&world, id, b, creator, *made))
                .collect()
        };
        return Json(json!({"data": listed, "pagination": {}})).into_response();
    }
    let Some(id) = query.id else {
        return error(400, "Missing required parameter");
    };
    let publish_after = world.publish_after_polls;
    let Some((broadcaster, polls)) = world.clips.get_mut(&id) else {
        return Json(json!({"data": [], "pagination": {}})).into_response();
    };
    *polls += 1;
    if *polls < publish_after {
        return Json(json!({"data": [], "pagination": {}})).into_response();
    }
    let broadcaster = broadcaster.clone();
    let made = world.made.iter().find(|(m, ..)| *m == id).map_or(0, |(.., made)| *made);
    Json(json!({"data": [clip_json(&world, &id, &broadcaster, OUR_USER_ID, made)], "pagination": {}}))
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

/// `/oauth2/token`. Twitch takes the parameters in the query string (twitch_oauth2 sends the
/// code exchange and the app token so) or as a form body (its refresh).
async fn token(State(world): Shared, RawQuery(query): RawQuery, body: bytes::Bytes) -> Response {
    let source = if body.is_empty() { query.unwrap_or_default().into_bytes() } else { body.to_vec() };
    let Ok(form) = serde_urlencoded::from_bytes::<TokenForm>(&source) else {
        return error(400, "missing parameters");
    };
    let mut world = world.lock().expect("not poisoned");
    if form.client_id.is_empty() || form.client_secret.is_empty() {
        return error(400, "missing client credentials");
    }
    if form.grant_type == "client_credentials" {
        world.app_tokens_issued += 1;
        let access = format!("app-token-{}", world.app_tokens_issued);
        world.valid_access_tokens.push(access.clone());
        return Json(json!({"access_token": access, "expires_in": 5_000_000, "token_type": "bearer"}))
            .into_response();
    }
    let mut scopes = vec!["clips:edit".to_owned()];
    let pair = match form.grant_type.as_str() {
        "refresh_token" => {
            world.refresh_calls += 1;
            form.refresh_token.and_then(|r| world.refreshes.remove(&r))
        }
        "authorization_code" => form.code.and_then(|c| {
            if let Some(granted) = world.code_scopes.remove(&c) {
                scopes = granted;
            }
            world.codes.remove(&c)
        }),
        _ => None,
    };
    let Some((access, refresh)) = pair else {
        return error(400, "Invalid refresh token");
    };
    world.valid_access_tokens.push(access.clone());
    if scopes.iter().any(|s| s == "editor:manage:clips" || s == "channel:manage:clips") {
        world.vod_tokens.push(access.clone());
    }
    Json(json!({
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 14_400,
        "scope": scopes,
        "token_type": "bearer"
    }))
    .into_response()
}

/// `/oauth2/validate`: every valid token belongs to [`OUR_USER_ID`].
async fn validate(State(world): Shared, headers: HeaderMap) -> Response {
    let world = world.lock().expect("not poisoned");
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("OAuth ").or_else(|| v.strip_prefix("Bearer ")))
        .unwrap_or_default();
    if !world.valid_access_tokens.iter().any(|t| t == token) {
        return error(401, "invalid access token");
    }
    let mut scopes = vec!["clips:edit"];
    if world.vod_tokens.iter().any(|t| t == token) {
        scopes.push("editor:manage:clips");
    }
    Json(json!({"client_id": "cid", "login": "highlights", "scopes": scopes, "user_id": OUR_USER_ID, "expires_in": 14_000}))
        .into_response()
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    redirect_uri: String,
    state: String,
    scope: String,
}

/// A user who always clicks "Authorize": redirects back with code `fake-code`, granting the
/// scopes asked for.
async fn authorize(State(world): Shared, Query(query): Query<AuthorizeQuery>) -> Response {
    let scopes: Vec<String> = query.scope.split(' ').map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "clips:edit") {
        return error(400, "missing scope");
    }
    let granted = scopes.join(" ").replace(':', "%3A").replace(' ', "%20");
    world.lock().expect("not poisoned").code_scopes.insert("fake-code".into(), scopes);
    // Percent-encoded, as Twitch does: twitch_oauth2's state is base64 (`+`, `/`, `=`).
    let state: String = url::form_urlencoded::byte_serialize(query.state.as_bytes()).collect();
    Redirect::to(&format!("{}?code=fake-code&scope={granted}&state={state}", query.redirect_uri))
        .into_response()
}
