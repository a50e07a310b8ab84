//! The SQL of the API: the page and capped-total statements of `GET /v1.0/clip`, and the typed
//! rows it returns. Every value is a bound parameter; only fixed fragments become SQL text.

use serde::Serialize;
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;

use crate::query::{ApiError, ClipQuery, parse_query};

/// `total_count` counts at most this many clips (`total_count_capped` says when there are more):
/// an exact COUNT(*) over a million rows costs tens of milliseconds per request.
pub const TOTAL_COUNT_CAP: i64 = 10_000;

/// The columns of [`Clip::from_row`], from `clips c`. The streamer's names are not here: they
/// come from [`crate::names::StreamerNames`] (a join made the planner hash the whole `streamers`
/// table for every page, and per-row subqueries doubled the query's cost).
pub(crate) const CLIP_COLUMNS: &str = "c.id, c.clip_id, c.broadcaster_id, c.url, c.embed_url, c.thumbnail_url, \
     c.title, c.duration, c.vod_offset, (extract(epoch FROM c.detected_at) * 1000000)::bigint, \
     (extract(epoch FROM c.created_at) * 1000000)::bigint, c.intensity, c.message_count, c.view_count, \
     c.confirmed, c.curve, c.video_id, c.phrases, c.phrase_counts";

/// One clip as the API returns it (the seed's fields and more).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Clip {
    /// Our row id (stable, increasing with insertion).
    pub id: i64,
    /// `clip`: a Twitch clip. `moment`: a detected moment stored without a Twitch clip
    /// (`highlights dev` without Twitch credentials); its Twitch fields are null.
    #[schema(example = "clip")]
    pub kind: String,
    /// Twitch's clip id; for a moment, a stable id of its own (`moment-<broadcaster>-<unix second>`).
    pub clip_id: String,
    /// Twitch user id of the channel.
    pub broadcaster_id: String,
    /// The clip's page on Twitch (absent until Twitch confirms the clip).
    pub url: Option<String>,
    /// The player URL; add `&parent=<your host>` to embed it.
    pub embed_url: Option<String>,
    pub thumbnail_url: Option<String>,
    pub title: Option<String>,
    /// Seconds.
    pub duration: Option<f32>,
    /// Seconds into the VOD, when Twitch knows it (for a moment: when the chat was replayed from a
    /// VOD's chat export).
    pub vod_offset: Option<i32>,
    /// The moment in the recording on Twitch (`https://www.twitch.tv/videos/<id>?t=1h2m3s`), when
    /// the VOD and the offset are known.
    pub vod_url: Option<String>,
    /// The detection's peak second (RFC 3339).
    #[schema(format = DateTime)]
    pub detected_at: String,
    /// When Twitch created the clip (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// How far chat rose above its baseline, in standard deviations.
    pub intensity: f64,
    /// Messages in the detection's window.
    pub message_count: i32,
    pub view_count: Option<i32>,
    /// Twitch's Get Clips has returned the clip.
    pub confirmed: bool,
    /// Chat messages per second up to the second the moment was reported, oldest first (at most
    /// 30): the shape of the burst. Null for clips stored before curves existed.
    #[schema(example = json!([3, 2, 4, 3, 41, 58, 60]))]
    pub curve: Option<Vec<i32>>,
    /// The phrases chat repeated most around the moment, most said first (at most 3): `count` is
    /// how many said it at least (one voice per chatter and second). Null for clips stored before
    /// phrases existed.
    pub phrases: Option<Vec<ChatPhrase>>,
    pub streamer_login: Option<String>,
    pub streamer_name: Option<String>,
}

impl Clip {
    /// A row selected with [`CLIP_COLUMNS`] (streamer names still empty); also returns the
    /// row's cursor position.
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> (Self, (i64, i64)) {
        let detected_us: i64 = row.get(9);
        let clip = Self {
            id: row.get(0),
            kind: "clip".to_owned(),
            clip_id: row.get(1),
            broadcaster_id: row.get(2),
            url: row.get(3),
            embed_url: row.get(4),
            thumbnail_url: row.get(5),
            title: row.get(6),
            duration: row.get(7),
            vod_offset: row.get(8),
            detected_at: rfc3339_from_us(detected_us),
            created_at: rfc3339_from_us(row.get(10)),
            intensity: row.get(11),
            message_count: row.get(12),
            view_count: row.get(13),
            confirmed: row.get(14),
            curve: row.get(15),
            vod_url: vod_url(row.get(16), row.get(8)),
            phrases: chat_phrases(row.get(17), row.get(18)),
            streamer_login: None,
            streamer_name: None,
        };
        let position = (detected_us, clip.id);
        (clip, position)
    }
}

/// A phrase chat repeated, and how many said it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ChatPhrase {
    #[schema(example = "KEKW")]
    pub phrase: String,
    #[schema(example = 23)]
    pub count: i32,
}

/// The phrases of a clip from its two stored columns (texts, counts; same order).
pub fn chat_phrases(phrases: Option<Vec<String>>, counts: Option<Vec<i32>>) -> Option<Vec<ChatPhrase>> {
    Some(phrases?.into_iter().zip(counts?).map(|(phrase, count)| ChatPhrase { phrase, count }).collect())
}

/// The link to second `offset` of VOD `video_id` on Twitch.
pub fn vod_url(video_id: Option<String>, offset: Option<i32>) -> Option<String> {
    let (video_id, offset) = (video_id.filter(|v| !v.is_empty())?, offset?.max(0));
    Some(format!(
        "https://www.twitch.tv/videos/{video_id}?t={}h{}m{}s",
        offset / 3600,
        offset / 60 % 60,
        offset % 60
    ))
}

/// RFC 3339 text of a Unix time in microseconds.
pub fn rfc3339_from_us(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The SQL of one `GET /v1.0/clip` request: the page and its (capped) total, with their parameters.
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

    /// Identifies the set of clips the total counts (same filters, any page): the cache key of
    /// [`crate::totals::TotalCounts`].
    pub fn count_key(&self) -> String {
        format!("{}|{:?}", self.count_sql, &self.params[..self.count_params])
    }
}

/// Validates the raw query string and builds the statements.
pub fn list_statement(raw_query: Option<&str>) -> Result<ListStatement, ApiError> {
    let (query, position) = parse_query(raw_query)?;
    Ok(statement_for(query, position))
}

/// The statements of a validated query, after the keyset `position` (microseconds, id).
pub fn statement_for(query: ClipQuery, position: Option<(i64, i64)>) -> ListStatement {
    // Clips Twitch never published (marked a day after they were made) are kept but not listed.
    let mut filters = vec!["c.intensity >= $1".to_owned(), "NOT c.unpublished".to_owned()];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(query.min_intensity)];
    let bind =
        |sql: &str, value: Box<dyn ToSql + Sync + Send>, params: &mut Vec<Box<dyn ToSql + Sync + Send>>| {
            params.push(value);
            sql.replace('?', &format!("${}", params.len()))
        };
    if let Some(id) = &query.broadcaster_id {
        filters.push(bind("c.broadcaster_id = ?", Box::new(id.clone()), &mut params));
    }
    if let Some(login) = &query.streamer {
        filters.push(bind(
            // A scalar subquery is resolved once, so the page walks clips_by_broadcaster; `IN`
            // let the planner walk every clip and test each one (190 ms at a million clips).
            "c.broadcaster_id = (SELECT broadcaster_id FROM streamers WHERE lower(login) = ? \
             ORDER BY broadcaster_id LIMIT 1)",
            Box::new(login.clone()),
            &mut params,
        ));
    }
    if let Some(since) = query.since {
        filters.push(bind("c.detected_at >= to_timestamp(?::bigint)", Box::new(since), &mut params));
    }
    if let Some(until) = query.until {
        filters.push(bind("c.detected_at <= to_timestamp(?::bigint)", Box::new(until), &mut params));
    }
    let count_sql = format!(
        "SELECT count(*) FROM (SELECT 1 FROM clips c WHERE {} LIMIT {}) AS capped",
        filters.join(" AND "),
        TOTAL_COUNT_CAP + 1
    );
    let count_params = params.len();
    // Insertion order (new clips since the client's newest id) or newest detection first.
    let order = if let Some(after) = query.after_id {
        params.push(Box::new(after));
        filters.push(format!("c.id > ${}", params.len()));
        "c.id ASC"
    } else {
        "c.detected_at DESC, c.id DESC"
    };
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
    // The page is chosen from `clips` alone and only its rows are projected: OFFSET then skips
    // rows without computing their output columns (twice as fast at the deepest offset).
    let sql = format!(
        "SELECT {CLIP_COLUMNS} FROM (SELECT * FROM clips c WHERE {} \
             ORDER BY {order} LIMIT ${limit_at} OFFSET ${}) AS c \
         ORDER BY {order}",
        filters.join(" AND "),
        limit_at + 1
    );
    ListStatement { query, sql, count_sql, params, count_params }
}
