//! Validation of `GET /v1.0/clip` parameters into a typed [`ClipQuery`], and the opaque keyset
//! cursor. Pure: no SQL, no I/O. Everything a client sends passes through here before it can
//! reach a statement, and every rejection names the parameter.

use std::collections::HashMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::Serialize;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: i64 = 24;
pub const MAX_LIMIT: i64 = 100;
/// OFFSET paging is kept for the seed's front end; deep pages should use the cursor.
pub const MAX_OFFSET: i64 = 10_000;

/// A 400 naming the parameter, or a 5xx without internals.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) parameter: Option<String>,
    message: String,
}

impl ApiError {
    pub(crate) fn bad(parameter: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            parameter: Some(parameter.to_owned()),
            message: message.into(),
        }
    }
    pub(crate) fn not_found(parameter: &str, message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, parameter: Some(parameter.to_owned()), message: message.into() }
    }
    pub(crate) fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "database unavailable");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            parameter: None,
            message: "the clip database is unavailable".into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What is wrong, for people.
    pub error: String,
    /// The offending parameter, when one is to blame.
    pub parameter: Option<String>,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.message, parameter: self.parameter, status: self.status.as_u16() };
        (self.status, Json(body)).into_response()
    }
}

/// The validated parameters of `GET /v1.0/clip`, echoed in the response as `query`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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
    /// Insertion order: only clips stored after the one with this `id`, oldest `id` first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_id: Option<i64>,
}

const KNOWN: &[&str] = &[
    "min_intensity",
    "limit",
    "offset",
    "broadcaster_id",
    "streamer",
    "since",
    "until",
    "cursor",
    "after_id",
];

pub(crate) fn parse_query(raw: Option<&str>) -> Result<(ClipQuery, Option<(i64, i64)>), ApiError> {
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
    // `min_intensity`, `limit` and `offset` are the seed's parameters: its clients get its
    // answers (its error texts; out-of-range limits and negative offsets clamped, the values
    // used echoed in `query`). Only an offset past MAX_OFFSET is refused, pointing to the cursor.
    let seed_number = |name: &str| -> Result<Option<i64>, ApiError> {
        params
            .get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| ApiError::bad(name, format!("Invalid {name} parameter")))
            })
            .transpose()
    };
    let min_intensity = match params.get("min_intensity") {
        None => 0.0,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => x,
            Ok(x) if x < 0.0 => {
                return Err(ApiError::bad("min_intensity", "min_intensity must be non-negative"));
            }
            _ => return Err(ApiError::bad("min_intensity", "Invalid min_intensity parameter")),
        },
    };
    let limit = seed_number("limit")?.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let offset = seed_number("offset")?.unwrap_or(0).max(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::bad(
            "offset",
            format!("Invalid offset parameter: at most {MAX_OFFSET} (use cursor for deeper pages)"),
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
            .map(|v| {
                parse_time(v)
                    .ok_or_else(|| ApiError::bad(name, "must be an RFC 3339 time, like 2024-12-02T00:15:31Z"))
            })
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
    let after_id = number("after_id")?;
    if after_id.is_some_and(|id| id < 0) {
        return Err(ApiError::bad("after_id", "must be an id >= 0"));
    }
    if after_id.is_some() && (position.is_some() || offset != 0) {
        return Err(ApiError::bad("after_id", "lists in insertion order: not with cursor or offset"));
    }
    Ok((
        ClipQuery { min_intensity, limit, offset, broadcaster_id, streamer, since, until, cursor, after_id },
        position,
    ))
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

/// RFC 3339 only, as the OpenAPI document says (`format: date-time`).
fn parse_time(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// The cursor is the last row's (detected_at in µs, id), base64url; opaque to clients.
pub(crate) fn encode_cursor(detected_us: i64, id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{detected_us}:{id}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<(i64, i64)> {
    let text =
        String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (us, id) = text.split_once(':')?;
    Some((us.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let (query, position) = parse_query(None).unwrap();
        assert_eq!((query.limit, query.offset, query.min_intensity, position), (24, 0, 0.0, None));
        // The seed's parameters clamp what is out of range, as the seed does.
        for (raw, limit, offset) in [
            ("limit=0", 1, 0),
            ("limit=500", 100, 0),
            ("limit=-3", 1, 0),
            ("offset=-1", 24, 0),
            ("limit=%2050", 50, 0),
        ] {
            let (query, _) = parse_query(Some(raw)).unwrap();
            assert_eq!((query.limit, query.offset), (limit, offset), "{raw}");
        }
        // ... and answer the seed's error texts, naming the parameter as ours do.
        for (raw, parameter, text) in [
            ("limit=abc", "limit", "Invalid limit parameter"),
            ("offset=1.5", "offset", "Invalid offset parameter"),
            ("min_intensity=high", "min_intensity", "Invalid min_intensity parameter"),
            ("min_intensity=-1", "min_intensity", "min_intensity must be non-negative"),
        ] {
            let error = parse_query(Some(raw)).unwrap_err();
            assert_eq!(
                (error.parameter.as_deref(), error.message.as_str()),
                (Some(parameter), text),
                "{raw}"
            );
        }
        for (raw, parameter) in [
            ("limit=abc", "limit"),
            ("offset=10001", "offset"),
            ("min_intensity=-1", "min_intensity"),
            ("min_intensity=NaN", "min_intensity"),
            ("min_intensity=inf", "min_intensity"),
            ("broadcaster_id=12a", "broadcaster_id"),
            ("streamer=a%20b", "streamer"),
            ("since=yesterday", "since"),
            ("since=1733098531", "since"),
            ("since=2024-12-02T00%3A15%3A31Z&until=2024-12-01T00%3A00%3A00Z", "since"),
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
        assert_eq!(parse_time("1733098531"), None, "Unix seconds are not RFC 3339");
        let (query, _) =
            parse_query(Some("streamer=TheLtWilson&min_intensity=4.5&since=2024-12-02T00%3A15%3A31Z"))
                .unwrap();
        assert_eq!(
            (query.streamer.as_deref(), query.min_intensity, query.since),
            (Some("theltwilson"), 4.5, Some(1_733_098_531))
        );
    }
}
