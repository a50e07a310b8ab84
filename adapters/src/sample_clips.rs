//! Sample clips for demos, browser tests and load tests: `sample_N` streamers and `SampleN`
//! clips, generated inside PostgreSQL in one statement (a million rows in seconds).
//!
//! Never for a production database: the rows look real to the API. Inserts are idempotent
//! (`ON CONFLICT DO NOTHING`, on the clip id or the highlight), so loading the same sample twice
//! adds nothing.

use tokio_postgres::Client;

/// What to generate. Clip `g` (1-based) belongs to streamer `sample_{g % channels}` (broadcaster
/// id `900000000 + g % channels`), was detected `g` seconds after `first_detected_unix`, and has
/// intensity `4 + (g % 100) / 10` (4.0 to 13.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleClips {
    pub count: u64,
    pub channels: u32,
    pub first_detected_unix: i64,
}

pub const SAMPLE_BROADCASTER_BASE: i64 = 900_000_000;

impl SampleClips {
    /// The broadcaster id of sample clip `g`.
    pub fn broadcaster_of(&self, g: u64) -> String {
        (SAMPLE_BROADCASTER_BASE + (g % u64::from(self.channels.max(1))) as i64).to_string()
    }

    /// Inserts the streamers and clips; returns how many clips were new. Runs `ANALYZE clips`
    /// so the planner sees the new size at once.
    pub async fn insert(&self, client: &Client) -> Result<u64, tokio_postgres::Error> {
        let channels = i64::from(self.channels.max(1));
        client
            .execute(
                "INSERT INTO streamers (broadcaster_id, login, display_name) \
                 SELECT ($1::bigint + c)::text, 'sample_' || c, 'Sample ' || c \
                 FROM generate_series(0, $2::bigint - 1) AS c ON CONFLICT (broadcaster_id) DO NOTHING",
                &[&SAMPLE_BROADCASTER_BASE, &channels],
            )
            .await?;
        let inserted = client
            .execute(
                "INSERT INTO clips (clip_id, broadcaster_id, url, embed_url, title, duration, detected_at, \
                     fired_at, created_at, intensity, message_count, baseline_mean, baseline_std, confirmed, curve, \
                     video_id, vod_offset, phrases, phrase_counts) \
                 SELECT 'Sample' || g, ($1::bigint + g % $2::bigint)::text, \
                     'https://clips.twitch.tv/Sample' || g, 'https://clips.twitch.tv/embed?clip=Sample' || g, \
                     'Sample clip ' || g, 30, to_timestamp($3::bigint + g), to_timestamp($3::bigint + g + 5), \
                     to_timestamp($3::bigint + g + 6), 4 + (g % 100) / 10.0, 20 + g % 200, 2, 1, TRUE, \
                     ARRAY[2, 3, 1, 2, 4, 2, 3, (20 + g % 200) / 4, (20 + g % 200) / 2, 20 + g % 200, 9, 5], \
                     '1900000000', 60 * g + 3, ARRAY['KEKW', 'W'], ARRAY[(20 + g % 200) / 3, 4] \
                 FROM generate_series(1, $4::bigint) AS g ON CONFLICT DO NOTHING",
                &[&SAMPLE_BROADCASTER_BASE, &channels, &self.first_detected_unix, &(self.count as i64)],
            )
            .await?;
        client.batch_execute("ANALYZE clips").await?;
        Ok(inserted)
    }
}
