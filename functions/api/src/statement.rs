//! The SQL of the API: the page and capped-total statements of `GET /v1.0/clip`, and the typed
//! rows it returns. Every value is a bound parameter; only fixed fragments become SQL text.

use tokio_postgres::types::ToSql;

use crate::clip::{Clip, TOTAL_COUNT_CAP, chat_phrases, rfc3339_from_us, vod_url};
use crate::query::{ApiError, ClipQuery, parse_query};

/// The columns of [`Clip::from_row`], from `clips c`. The streamer's names are not here: they
/// come from [`crate::names::StreamerNames`] (a join made the planner hash the whole `streamers`
/// table for every page, and per-row subqueries doubled the query's cost).
pub(crate) const CLIP_COLUMNS: &str = "c.id, c.clip_id, c.broadcaster_id, c.url, c.embed_url, c.thumbnail_url, \
     c.title, c.duration, c.vod_offset, (extract(epoch FROM c.detected_at) * 1000000)::bigint, \
     (extract(epoch FROM c.created_at) * 1000000)::bigint, c.intensity, c.message_count, c.view_count, \
     c.confirmed, c.curve, c.video_id, c.phrases, c.phrase_counts";

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
