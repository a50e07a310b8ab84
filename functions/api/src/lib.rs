//! The clips API: one axum router, served by `lambda_http` behind API Gateway and (later) by
//! `highlights` locally. Compatible with the seed's `GET /v1.0/clip` contract, plus filters and a
//! keyset cursor.
//!
//! Validation happens before any SQL: every parameter is parsed into a typed [`ClipQuery`] and
//! bound as a query parameter, never spliced into SQL text. Unknown parameters are rejected with
//! 400 so that a typo (`min_intesity`) is not silently ignored. Errors are JSON naming the
//! parameter.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use deadpool_postgres::Pool;
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;

pub const DEFAULT_LIMIT: i64 = 24;
pub const MAX_LIMIT: i64 = 100;
/// OFFSET paging is kept for the seed's front end; deep pages should use the cursor.
pub const MAX_OFFSET: i64 = 10_000;

#[derive(Clone)]
pub struct ApiState {
    pub pool: Pool,
}

/// The routes, CORS for `site_origin` (the static site's origin, e.g.
/// `https://clips.example.com`; `None` allows none), and one JSON log line per request.
pub fn router_with_cors(state: ApiState, site_origin: Option<&str>) -> Router {
    let mut cors = tower_http::cors::CorsLayer::new().allow_methods([axum::http::Method::GET]);
    if let Some(origin) = site_origin.and_then(|o| o.parse::<axum::http::HeaderValue>().ok()) {
        cors = cors.allow_origin(origin);
    }
    Router::new()
        .route("/v1.0/clip", get(list_clips))
        .route("/v1.0/clip/{clip_id}", get(one_clip))
        .route("/v1.0/streamers", get(streamers))
        .route("/health", get(health))
        .with_state(state)
        .layer(cors)
        .layer(axum::middleware::from_fn(log_request))
}

/// The routes without CORS (same-origin use, tests).
pub fn router(state: ApiState) -> Router {
    router_with_cors(state, None)
}

/// Method, path, status and latency of every request, as one JSON log line (no query string:
/// it could carry a cursor, which is harmless, but keep logs about routes).
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
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

/// A 400 naming the parameter, or a 5xx without internals.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    parameter: Option<String>,
    message: String,
}

impl ApiError {
    fn bad(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            parameter: Some(parameter.to_owned()),
            message: message.into(),
        }
    }
    fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "database unavailable");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            parameter: None,
            message: "the clip database is unavailable".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": self.message, "parameter": self.parameter, "status": self.status.as_u16()});
        (self.status, Json(body)).into_response()
    }
}

/// The validated parameters of `GET /v1.0/clip`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipQuery {
    pub min_intensity: f64,
    pub limit: i64,
    pub offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broadcaster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub streamer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

const KNOWN: &[&str] =
    &["min_intensity", "limit", "offset", "broadcaster_id", "streamer", "since", "until", "cursor"];

fn parse_query(raw: Option<&str>) -> Result<(ClipQuery, Option<(i64, i64)>), ApiError> {
    let mut params: HashMap<String, String> = HashMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(key).ok_or_else(|| ApiError::bad(key, "is not valid percent-encoded UTF-8"))?;
        let value = decode(value).ok_or_else(|| ApiError::bad(&key, "is not valid percent-encoded UTF-8"))?;
        if !KNOWN.contains(&key.as_str()) {
            return Err(ApiError::bad(
                &key,
                format!("is not a parameter of this endpoint (known: {})", KNOWN.join(", ")),
            ));
        }
        if params.insert(key.clone(), value).is_some() {
            return Err(ApiError::bad(&key, "is given more than once"));
        }
    }
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| v.parse::<i64>().map_err(|_| ApiError::bad(name, "must be an integer")))
            .transpose()
    };
    let min_intensity = match params.get("min_intensity") {
        None => 0.0,
        Some(v) => match v.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => x,
            _ => return Err(ApiError::bad("min_intensity", "must be a number >= 0")),
        },
    };
    let limit = number("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let offset = number("offset")?.unwrap_or(0);
    if !(0..=MAX_OFFSET).contains(&offset) {
        return Err(ApiError::bad(
            "offset",
            format!("must be between 0 and {MAX_OFFSET} (use cursor for deeper pages)"),
        ));
    }
    let broadcaster_id = params.get("broadcaster_id").cloned();
    if broadcaster_id
        .as_ref()
        .is_some_and(|id| id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::bad("broadcaster_id", "must be a Twitch user id (digits)"));
    }
    let streamer = params.get("streamer").map(|s| s.to_ascii_lowercase());
    if streamer.as_ref().is_some_and(|s| {
        s.is_empty() || s.len() > 25 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }) {
        return Err(ApiError::bad("streamer", "must be a Twitch login (letters, digits, _; at most 25)"));
    }
    let time = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| parse_time(v).ok_or_else(|| ApiError::bad(name, "must be RFC 3339 or Unix seconds")))
            .transpose()
    };
    let (since, until) = (time("since")?, time("until")?);
    if let (Some(since), Some(until)) = (since, until)
        && since > until
    {
        return Err(ApiError::bad("since", "must not be after until"));
    }
    let cursor = params.get("cursor").cloned();
    let position = cursor
        .as_deref()
        .map(|c| decode_cursor(c).ok_or_else(|| ApiError::bad("cursor", "is not a cursor from this API")))
        .transpose()?;
    if position.is_some() && offset != 0 {
        return Err(ApiError::bad("offset", "cannot be combined with cursor"));
    }
    Ok((ClipQuery { min_intensity, limit, offset, broadcaster_id, streamer, since, until, cursor }, position))
}

fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The cursor is the last row's (detected_at in µs, id), base64url; opaque to clients.
fn encode_cursor(detected_us: i64, id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{detected_us}:{id}"))
}

fn decode_cursor(cursor: &str) -> Option<(i64, i64)> {
    let text =
        String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (us, id) = text.split_once(':')?;
    Some((us.parse().ok()?, id.parse().ok()?))
}

fn rfc3339_from_us(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

const CLIP_COLUMNS: &str = "c.id, c.clip_id, c.broadcaster_id, c.url, c.embed_url, c.thumbnail_url, c.title, \
     c.duration, c.vod_offset, (extract(epoch FROM c.detected_at) * 1000000)::bigint, \
     (extract(epoch FROM c.created_at) * 1000000)::bigint, c.intensity, c.message_count, c.view_count, \
     c.confirmed, s.login, s.display_name";

fn clip_json(row: &tokio_postgres::Row) -> Value {
    json!({
        "id": row.get::<_, i64>(0),
        "clip_id": row.get::<_, String>(1),
        "broadcaster_id": row.get::<_, String>(2),
        "url": row.get::<_, Option<String>>(3),
        "embed_url": row.get::<_, Option<String>>(4),
        "thumbnail_url": row.get::<_, Option<String>>(5),
        "title": row.get::<_, Option<String>>(6),
        "duration": row.get::<_, Option<f32>>(7),
        "vod_offset": row.get::<_, Option<i32>>(8),
        "detected_at": rfc3339_from_us(row.get(9)),
        "created_at": rfc3339_from_us(row.get(10)),
        "intensity": row.get::<_, f64>(11),
        "message_count": row.get::<_, i32>(12),
        "view_count": row.get::<_, Option<i32>>(13),
        "confirmed": row.get::<_, bool>(14),
        "streamer_login": row.get::<_, Option<String>>(15),
        "streamer_name": row.get::<_, Option<String>>(16),
    })
}

/// The SQL of one `GET /v1.0/clip` request: the page and its total, with their parameters.
pub struct ListStatement {
    pub query: ClipQuery,
    pub sql: String,
    pub count_sql: String,
    pub params: Vec<Box<dyn ToSql + Sync + Send>>,
    /// The count statement uses the first this many parameters.
    pub count_params: usize,
}

impl ListStatement {
    pub fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// Validates the raw query string and builds the statement; every value is a bound parameter.
pub fn list_statement(raw_query: Option<&str>) -> Result<ListStatement, ApiError> {
    let (query, position) = parse_query(raw_query)?;
    let mut filters = vec!["c.intensity >= $1".to_owned()];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(query.min_intensity)];
    let bind =
        |sql: String, value: Box<dyn ToSql + Sync + Send>, params: &mut Vec<Box<dyn ToSql + Sync + Send>>| {
            params.push(value);
            sql.replace('?', &format!("${}", params.len()))
        };
    if let Some(id) = &query.broadcaster_id {
        filters.push(bind("c.broadcaster_id = ?".into(), Box::new(id.clone()), &mut params));
    }
    if let Some(login) = &query.streamer {
        filters.push(bind(
            "c.broadcaster_id IN (SELECT broadcaster_id FROM streamers WHERE lower(login) = ?)".into(),
            Box::new(login.clone()),
            &mut params,
        ));
    }
    if let Some(since) = query.since {
        filters.push(bind("c.detected_at >= to_timestamp(?::bigint)".into(), Box::new(since), &mut params));
    }
    if let Some(until) = query.until {
        filters.push(bind("c.detected_at <= to_timestamp(?::bigint)".into(), Box::new(until), &mut params));
    }
    let count_sql = format!("SELECT count(*) FROM clips c WHERE {}", filters.join(" AND "));
    let count_params = params.len();
    if let Some((us, id)) = position {
        params.push(Box::new(us));
        params.push(Box::new(id));
        filters.push(format!(
            "(c.detected_at, c.id) < (TIMESTAMPTZ 'epoch' + ${}::bigint * INTERVAL '1 microsecond', ${}::bigint)",
            params.len() - 1,
            params.len()
        ));
    }
    params.push(Box::new(query.limit + 1));
    let limit_at = params.len();
    params.push(Box::new(query.offset));
    let sql = format!(
        "SELECT {CLIP_COLUMNS} FROM clips c LEFT JOIN streamers s ON s.broadcaster_id = c.broadcaster_id \
         WHERE {} ORDER BY c.detected_at DESC, c.id DESC LIMIT ${limit_at} OFFSET ${}",
        filters.join(" AND "),
        limit_at + 1
    );
    Ok(ListStatement { query, sql, count_sql, params, count_params })
}

async fn list_clips(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let statement = list_statement(raw.as_deref())?;
    let query = &statement.query;
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let refs = statement.param_refs();
    let mut rows = client.query(&statement.sql, &refs).await.map_err(ApiError::unavailable)?;
    let total: i64 = client
        .query_one(&statement.count_sql, &refs[..statement.count_params])
        .await
        .map_err(ApiError::unavailable)?
        .get(0);
    let has_more = rows.len() as i64 > query.limit;
    rows.truncate(query.limit as usize);
    let next_cursor = has_more.then(|| rows.last().map(|r| encode_cursor(r.get(9), r.get(0)))).flatten();
    let clips: Vec<Value> = rows.iter().map(clip_json).collect();
    let body = json!({
        "clips": clips,
        "count": clips.len(),
        "total_count": total,
        "has_more": has_more,
        "next_cursor": next_cursor,
        "query": query,
    });
    Ok((StatusCode::OK, [("cache-control", "public, max-age=5")], Json(body)).into_response())
}

async fn one_clip(State(state): State<ApiState>, Path(clip_id): Path<String>) -> Result<Response, ApiError> {
    if clip_id.is_empty()
        || clip_id.len() > 100
        || !clip_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad("clip_id", "is not a Twitch clip id"));
    }
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let row = client
        .query_opt(
            &format!("SELECT {CLIP_COLUMNS} FROM clips c LEFT JOIN streamers s ON s.broadcaster_id = c.broadcaster_id WHERE c.clip_id = $1"),
            &[&clip_id],
        )
        .await
        .map_err(ApiError::unavailable)?;
    match row {
        Some(row) => Ok((StatusCode::OK, [("cache-control", "public, max-age=60")], Json(clip_json(&row)))
            .into_response()),
        None => Ok((
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such clip", "parameter": "clip_id", "status": 404})),
        )
            .into_response()),
    }
}

async fn streamers(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let client = state.pool.get().await.map_err(ApiError::unavailable)?;
    let rows = client
        .query(
            "SELECT broadcaster_id, login, display_name, is_live, allows_clipping, \
                 (SELECT count(*) FROM clips c WHERE c.broadcaster_id = s.broadcaster_id) \
             FROM streamers s WHERE login <> '' ORDER BY lower(login) LIMIT 1000",
            &[],
        )
        .await
        .map_err(ApiError::unavailable)?;
    let streamers: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "broadcaster_id": r.get::<_, String>(0),
                "login": r.get::<_, String>(1),
                "display_name": r.get::<_, Option<String>>(2),
                "is_live": r.get::<_, bool>(3),
                "allows_clipping": r.get::<_, Option<bool>>(4),
                "clip_count": r.get::<_, i64>(5),
            })
        })
        .collect();
    Ok((StatusCode::OK, [("cache-control", "public, max-age=30")], Json(json!({"streamers": streamers})))
        .into_response())
}

async fn health(State(state): State<ApiState>) -> Response {
    let ok = match state.pool.get().await {
        Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
        Err(_) => false,
    };
    if ok {
        (StatusCode::OK, Json(json!({"status": "ok", "database": "ok"}))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "database": "unreachable"})))
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let (query, position) = parse_query(None).unwrap();
        assert_eq!((query.limit, query.offset, query.min_intensity, position), (24, 0, 0.0, None));
        for (raw, parameter) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=abc", "limit"),
            ("offset=-1", "offset"),
            ("min_intensity=-1", "min_intensity"),
            ("min_intensity=NaN", "min_intensity"),
            ("min_intensity=inf", "min_intensity"),
            ("broadcaster_id=12a", "broadcaster_id"),
            ("streamer=a%20b", "streamer"),
            ("since=yesterday", "since"),
            ("since=200&until=100", "since"),
            ("cursor=%%%", "cursor"),
            ("cursor=bm9wZQ", "cursor"),
            ("min_intesity=3", "min_intesity"),
            ("limit=5&limit=6", "limit"),
        ] {
            let error = parse_query(Some(raw)).unwrap_err();
            assert_eq!(error.parameter.as_deref(), Some(parameter), "{raw}: {error:?}");
            assert_eq!(error.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn cursors_round_trip_and_times_parse() {
        let cursor = encode_cursor(1_733_098_531_000_000, 42);
        assert_eq!(decode_cursor(&cursor), Some((1_733_098_531_000_000, 42)));
        assert_eq!(parse_time("2024-12-02T00:15:31Z"), Some(1_733_098_531));
        assert_eq!(parse_time("1733098531"), Some(1_733_098_531));
        let (query, _) =
            parse_query(Some("streamer=TheLtWilson&min_intensity=4.5&since=2024-12-02T00%3A15%3A31Z"))
                .unwrap();
        assert_eq!(
            (query.streamer.as_deref(), query.min_intensity, query.since),
            (Some("theltwilson"), 4.5, Some(1_733_098_531))
        );
    }
}
