//! Streamer names (login, display name) for clip responses, cached per process.
//!
//! Looking them up in the page query cost half of PostgreSQL's time per request (two subplans
//! per row); names change rarely, so each broadcaster's are kept for [`NAMES_TTL`] and only
//! missing or expired ones are fetched, in one query per page. Bounded: past [`MAX_NAMES`]
//! entries the cache starts over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clip::Clip;

pub const NAMES_TTL: Duration = Duration::from_secs(60);
const MAX_NAMES: usize = 100_000;

type Names = (Option<String>, Option<String>);

#[derive(Default)]
pub struct StreamerNames {
    entries: Mutex<HashMap<String, (Instant, Names)>>,
}

impl StreamerNames {
    /// Sets `streamer_login` and `streamer_name` of every clip.
    pub async fn fill(
        &self,
        client: &tokio_postgres::Client,
        clips: &mut [Clip],
    ) -> Result<(), tokio_postgres::Error> {
        let now = Instant::now();
        let mut missing: Vec<String> = {
            let entries = self.lock();
            clips
                .iter()
                .filter(|clip| {
                    entries
                        .get(&clip.broadcaster_id)
                        .is_none_or(|(at, _)| now.duration_since(*at) >= NAMES_TTL)
                })
                .map(|clip| clip.broadcaster_id.clone())
                .collect()
        };
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let rows = client
                .query("SELECT broadcaster_id, login, display_name FROM streamers WHERE broadcaster_id = ANY($1)", &[&missing])
                .await?;
            let mut entries = self.lock();
            if entries.len() + missing.len() > MAX_NAMES {
                entries.clear();
            }
            // Unknown broadcasters are remembered too (as no names), so they cost one query per TTL.
            for id in &missing {
                entries.insert(id.clone(), (now, (None, None)));
            }
            for row in rows {
                let login: String = row.get(1);
                let names = ((!login.is_empty()).then_some(login), row.get(2));
                entries.insert(row.get(0), (now, names));
            }
        }
        let entries = self.lock();
        for clip in clips {
            if let Some((_, (login, name))) = entries.get(&clip.broadcaster_id) {
                clip.streamer_login.clone_from(login);
                clip.streamer_name.clone_from(name);
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Names)>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
