//! [`ClipReader`] over PostgreSQL: the statements of [`crate::statement`], prepared once per
//! connection, the capped total cached briefly ([`TotalCounts`]) and streamer names cached
//! per process ([`StreamerNames`]).

use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;

use crate::Streamer;
use crate::clip::Clip;
use crate::names::StreamerNames;
use crate::query::ClipQuery;
use crate::reader::{ClipReader, ClipRows, ReadError};
use crate::statement::{CLIP_COLUMNS, statement_for};
use crate::totals::TotalCounts;

pub struct PgClipReader {
    pool: Pool,
    totals: Arc<TotalCounts>,
    names: Arc<StreamerNames>,
}

impl PgClipReader {
    pub fn new(pool: Pool) -> Self {
        Self { pool, totals: Arc::default(), names: Arc::default() }
    }
}

#[async_trait::async_trait]
impl ClipReader for PgClipReader {
    async fn page(&self, query: &ClipQuery, position: Option<(i64, i64)>) -> Result<ClipRows, ReadError> {
        let statement = statement_for(query.clone(), position);
        let client = self.pool.get().await.map_err(ReadError::new)?;
        let refs = statement.param_refs();
        let count_key = statement.count_key();
        let cached_total = self.totals.get(&count_key, Instant::now());
        // Statements are prepared once per connection (a round trip and a plan saved per
        // request), and both go out on the one connection together (tokio-postgres pipelines them).
        let page = async {
            let prepared = client.prepare_cached(&statement.sql).await?;
            client.query(&prepared, &refs).await
        };
        let total = async {
            match cached_total {
                Some(total) => Ok(total),
                None => {
                    let prepared = client.prepare_cached(&statement.count_sql).await?;
                    client.query_one(&prepared, &refs[..statement.count_params]).await.map(|r| r.get(0))
                }
            }
        };
        let (rows, total) = tokio::try_join!(page, total).map_err(ReadError::new)?;
        if cached_total.is_none() {
            self.totals.put(count_key, total, Instant::now());
        }
        let (mut clips, positions): (Vec<Clip>, Vec<(i64, i64)>) = rows.iter().map(Clip::from_row).unzip();
        self.names.fill(&client, &mut clips).await.map_err(ReadError::new)?;
        Ok(ClipRows { clips: clips.into_iter().zip(positions).collect(), total })
    }

    async fn clip(&self, clip_id: &str) -> Result<Option<Clip>, ReadError> {
        let client = self.pool.get().await.map_err(ReadError::new)?;
        let prepared = client
            .prepare_cached(&format!("SELECT {CLIP_COLUMNS} FROM clips c WHERE c.clip_id = $1"))
            .await
            .map_err(ReadError::new)?;
        let Some(row) = client.query_opt(&prepared, &[&clip_id]).await.map_err(ReadError::new)? else {
            return Ok(None);
        };
        let mut clip = [Clip::from_row(&row).0];
        self.names.fill(&client, &mut clip).await.map_err(ReadError::new)?;
        let [clip] = clip;
        Ok(Some(clip))
    }

    async fn streamers(&self) -> Result<Vec<Streamer>, ReadError> {
        let client = self.pool.get().await.map_err(ReadError::new)?;
        let rows = client
            .query(
                "SELECT broadcaster_id, login, display_name, is_live, allows_clipping, \
                     (SELECT count(*) FROM clips c WHERE c.broadcaster_id = s.broadcaster_id) \
                 FROM streamers s WHERE login <> '' ORDER BY lower(login) LIMIT 1000",
                &[],
            )
            .await
            .map_err(ReadError::new)?;
        Ok(rows
            .iter()
            .map(|r| Streamer {
                broadcaster_id: r.get(0),
                login: r.get(1),
                display_name: r.get(2),
                is_live: r.get(3),
                allows_clipping: r.get(4),
                clip_count: r.get(5),
            })
            .collect())
    }

    async fn ping(&self) -> bool {
        match self.pool.get().await {
            Ok(client) => client.query_one("SELECT 1", &[]).await.is_ok(),
            Err(_) => false,
        }
    }
}
