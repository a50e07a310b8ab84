//! The clips API: one axum router, served by `lambda_http` behind API Gateway and by
//! `highlights serve` locally (with the static site, see [`site_router`]). Compatible with the
//! seed's `GET /v1.0/clip` contract, plus filters and a keyset cursor.
//!
//! Validation happens before any SQL ([`query`]): unknown parameters are rejected with 400 so
//! that a typo (`min_intesity`) is not silently ignored, and every value is bound as a statement
//! parameter ([`statement`]). The OpenAPI 3.1 document is generated from the handlers below and
//! served at `/v1.0/openapi.json`; `docs/openapi.json` is a committed copy kept identical by a test.

pub mod clip;
#[cfg(feature = "postgres")]
pub mod names;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod query;
pub mod reader;
#[cfg(feature = "postgres")]
pub mod statement;
#[cfg(feature = "postgres")]
pub mod totals;

use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use clip::{ChatPhrase, Clip, TOTAL_COUNT_CAP};
pub use query::{ApiError, ClipQuery, DEFAULT_LIMIT, ErrorBody, MAX_LIMIT, MAX_OFFSET};
pub use reader::{ClipReader, ClipRows, ReadError};
#[cfg(feature = "postgres")]
pub use statement::{ListStatement, list_statement};

/// What the handlers share: the store they read clips from.
#[derive(Clone)]
pub struct ApiState {
    reader: Arc<dyn ClipReader>,
}

impl ApiState {
    /// The API over PostgreSQL (the Lambda, `highlights serve`).
    #[cfg(feature = "postgres")]
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        Self::from_reader(Arc::new(postgres::PgClipReader::new(pool)))
    }

    /// The API over any store (`highlights dev` shares its embedded one with the pipeline).
    pub fn from_reader(reader: Arc<dyn ClipReader>) -> Self {
        Self { reader }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Twitch Highlights API",
        description = "Clips of the moments when Twitch chat exploded. Read-only; JSON; CORS for the \
                       configured site origin. Unknown query parameters are rejected with 400."
    ),
    tags((name = "clips", description = "Clips and the streamers they belong to"))
)]
struct ApiDoc;

fn documented_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_clips))
        .routes(routes!(one_clip))
        .routes(routes!(list_streamers))
        .routes(routes!(health))
}

/// The OpenAPI 3.1 document of the routes (what `/v1.0/openapi.json` serves), pretty-printed.
pub fn openapi_json() -> String {
    pretty(&documented_routes().into_openapi())
}

fn pretty(document: &utoipa::openapi::OpenApi) -> String {
    let mut text = document.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

/// The routes, CORS for `site_origin` (the static site's origin, e.g.
/// `https://clips.example.com`; `None` allows none), and one JSON log line per request.
pub fn router_with_cors(state: ApiState, site_origin: Option<&str>) -> Router {
    let mut cors = tower_http::cors::CorsLayer::new().allow_methods([axum::http::Method::GET]);
    if let Some(origin) = site_origin.and_then(|o| o.parse::<HeaderValue>().ok()) {
        cors = cors.allow_origin(origin);
    }
    let (routes, api) = documented_routes().split_for_parts();
    let document: Arc<str> = pretty(&api).into();
    routes
        .route(
            "/v1.0/openapi.json",
            axum::routing::get(move || {
                let document = document.clone();
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, "application/json"),
                            (header::CACHE_CONTROL, "public, max-age=300"),
                        ],
                        document.to_string(),
                    )
                }
            }),
        )
        .with_state(state)
        .fallback(not_found)
        .layer(cors)
        .layer(axum::middleware::from_fn(log_request))
}

/// Any other path: the seed's answer, `{"error": "Not found"}` with 404.
async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "Not found" }))).into_response()
}

/// The routes without CORS (same-origin use, tests).
pub fn router(state: ApiState) -> Router {
    router_with_cors(state, None)
}

/// The API and, for every other path, the static site in `web_dir` (same origin, so no CORS):
/// what `highlights serve` runs locally.
pub fn site_router(state: ApiState, web_dir: &FsPath) -> Router {
    let live = Router::new().route("/v1.0/live", axum::routing::get(live_clips)).with_state(state.clone());
    let site = tower_http::services::ServeDir::new(web_dir)
        .not_found_service(axum::routing::get(not_found).with_state::<()>(()));
    router(state).merge(live).fallback_service(site)
}

/// How often the live stream looks for new clips.
const LIVE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /v1.0/live`: clips stored after `after_id` (required), as Server-Sent Events (`event:
/// clip`, one clip's JSON each, oldest first, then new ones as they are stored), with the filters
/// of `GET /v1.0/clip`. Only where the server streams (`highlights serve`, `highlights dev`): API
/// Gateway does not, and there the page polls `GET /v1.0/clip?after_id=`.
async fn live_clips(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let (mut query, _) = query::parse_query(raw.as_deref())?;
    let Some(start) = query.after_id else {
        return Err(ApiError::bad("after_id", "is required: the newest clip id the page has (0 for none)"));
    };
    query.limit = MAX_LIMIT;
    let events = futures::stream::unfold((state, query, start), |(state, mut query, mut last)| async move {
        loop {
            query.after_id = Some(last);
            match state.reader.page(&query, None).await {
                Ok(rows) if !rows.clips.is_empty() => {
                    let events: Vec<_> = rows
                        .clips
                        .into_iter()
                        .map(|(clip, _)| {
                            last = last.max(clip.id);
                            let json = serde_json::to_string(&clip).unwrap_or_default();
                            Ok(Event::default().event("clip").id(clip.id.to_string()).data(json))
                        })
                        .collect();
                    return Some((futures::stream::iter(events), (state, query, last)));
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "live clips: the store did not answer"),
            }
            tokio::time::sleep(LIVE_POLL).await;
        }
    });
    Ok(Sse::new(futures::StreamExt::flatten(events)).keep_alive(KeepAlive::default()))
}

/// Method, path, status and latency of every request, as one JSON log line (no query string:
/// keep logs about routes, not about what people searched for).
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The query parameters of `GET /v1.0/clip` (documentation; parsing is in [`query`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ClipParams {
    /// Only clips at least this intense (standard deviations above the channel's baseline).
    #[param(minimum = 0, default = 0)]
    min_intensity: Option<f64>,
    /// Clips per page, 1 to 100; as in the seed, a value outside is clamped (the value used is
    /// echoed in `query.limit`).
    #[param(default = 24)]
    limit: Option<i64>,
    /// Clips to skip (the seed's paging; not with `cursor`). A negative value counts as 0, as in
    /// the seed; past 10000 it is refused (400): use `cursor` for deeper pages.
    #[param(maximum = 10000, default = 0)]
    offset: Option<i64>,
    /// Only this channel (Twitch user id).
    #[param(pattern = "^[0-9]{1,20}$")]
    broadcaster_id: Option<String>,
    /// Only this channel (Twitch login, case-insensitive).
    #[param(pattern = "^[A-Za-z0-9_]{1,25}$")]
    streamer: Option<String>,
    /// Only clips detected at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only clips detected at or before this time (RFC 3339); not before `since`.
    #[param(format = DateTime)]
    until: Option<String>,
    /// `next_cursor` of the previous page: the page after it, stable while new clips arrive.
    #[param(min_length = 1)]
    cursor: Option<String>,
    /// Insertion order: only clips stored after the clip with this `id`, oldest `id` first (how
    /// a page polls for new clips: a clip can be stored after a later one's `detected_at`). Not
    /// with `cursor` or `offset`; `next_cursor` is then null: ask again with the newest `id`.
    #[param(minimum = 0)]
    after_id: Option<i64>,
}

/// A page of clips, newest `detected_at` first.
#[derive(Serialize, ToSchema)]
pub struct ClipPage {
    pub clips: Vec<Clip>,
    /// Clips on this page.
    pub count: usize,
    /// Clips matching the filters, counted up to 10000 and at most 5 s old.
    pub total_count: i64,
    /// More than `total_count` clips match.
    pub total_count_capped: bool,
    /// Another page follows.
    pub has_more: bool,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// The validated parameters.
    pub query: ClipQuery,
}

#[utoipa::path(
    get,
    path = "/v1.0/clip",
    tag = "clips",
    params(ClipParams),
    responses(
        (status = 200, description = "A page of clips", body = ClipPage),
        (status = 400, description = "A parameter is invalid or unknown", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
async fn list_clips(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let (query, position) = query::parse_query(raw.as_deref())?;
    let ClipRows { clips: rows, total } =
        state.reader.page(&query, position).await.map_err(ApiError::unavailable)?;
    let has_more = rows.len() as i64 > query.limit;
    let mut clips = Vec::with_capacity(rows.len());
    let mut last_position = None;
    for (clip, position) in rows.into_iter().take(query.limit as usize) {
        clips.push(clip);
        last_position = Some(position);
    }
    let next_cursor = if has_more && query.after_id.is_none() {
        last_position.map(|(us, id)| query::encode_cursor(us, id))
    } else {
        None
    };
    let page = ClipPage {
        count: clips.len(),
        clips,
        total_count: total.min(TOTAL_COUNT_CAP),
        total_count_capped: total > TOTAL_COUNT_CAP,
        has_more,
        next_cursor,
        query,
    };
    Ok(([(header::CACHE_CONTROL, "public, max-age=5")], Json(page)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1.0/clip/{clip_id}",
    tag = "clips",
    params(("clip_id" = String, Path, description = "Twitch's clip id", pattern = "^[A-Za-z0-9_-]{1,100}$")),
    responses(
        (status = 200, description = "The clip", body = Clip),
        (status = 400, description = "Not a clip id", body = ErrorBody),
        (status = 404, description = "No such clip", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
async fn one_clip(State(state): State<ApiState>, Path(clip_id): Path<String>) -> Result<Response, ApiError> {
    if clip_id.is_empty()
        || clip_id.len() > 100
        || !clip_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad("clip_id", "is not a Twitch clip id"));
    }
    match state.reader.clip(&clip_id).await.map_err(ApiError::unavailable)? {
        Some(clip) => Ok(([(header::CACHE_CONTROL, "public, max-age=60")], Json(clip)).into_response()),
        None => Err(ApiError::not_found("clip_id", "no such clip")),
    }
}

/// A channel we know of.
#[derive(Serialize, ToSchema)]
pub struct Streamer {
    pub broadcaster_id: String,
    pub login: String,
    pub display_name: Option<String>,
    pub is_live: bool,
    /// False after Twitch refused a clip (403); null when unknown.
    pub allows_clipping: Option<bool>,
    pub clip_count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct StreamerList {
    /// By login, at most 1000.
    pub streamers: Vec<Streamer>,
}

#[utoipa::path(
    get,
    path = "/v1.0/streamers",
    tag = "clips",
    responses(
        (status = 200, description = "Known channels, for the site's filter", body = StreamerList),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
async fn list_streamers(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let streamers = state.reader.streamers().await.map_err(ApiError::unavailable)?;
    Ok(([(header::CACHE_CONTROL, "public, max-age=30")], Json(StreamerList { streamers })).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `healthy` or `unhealthy` (the seed's words).
    pub status: String,
    /// `ok` or `unreachable`.
    pub database: String,
}

#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
    )
)]
async fn health(State(state): State<ApiState>) -> Response {
    let ok = state.reader.ping().await;
    let (status, body) = if ok {
        (StatusCode::OK, Health { status: "healthy".into(), database: "ok".into() })
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Health { status: "unhealthy".into(), database: "unreachable".into() },
        )
    };
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
