//! The table: one row per scenario, in Markdown (what `docs/reliability.md` holds).

use crate::scenario::Row;

const HEADER: &str = "| fault | injected how | messages sent | not delivered by IRC | chat dropped (at most) | repeats in Kinesis | counted by the detector (in Kinesis) | detections (reference) | Create Clip calls | clips made | rows in Postgres (confirmed) | API lists | moments lost | duplicate clips | time to recover | metrics: ingester received/sent, detections, clips |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(HEADER);
    for row in rows {
        let recovery = row.recovery.map_or("–".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        out.push_str(&format!(
            "\n| {} | {} | {} | {} | {} ({}) | {} | {} ({}) | {} ({}) | {} | {} | {} ({}) | {} | {} | {} | {} | {}/{}, {}, {} {} |",
            row.name,
            row.how,
            row.sent,
            row.undelivered,
            row.chat_dropped,
            row.chat_dropped_at_most,
            row.kinesis_repeats,
            row.counted_by_detector,
            row.messages_in_kinesis,
            row.detections,
            row.reference_detections,
            row.create_calls,
            row.clips_made,
            row.rows,
            row.confirmed_rows,
            row.api_listed,
            row.moments_lost,
            row.duplicate_clips,
            recovery,
            row.metrics.ingester_received,
            row.metrics.ingester_sent,
            row.metrics.detections,
            row.metrics.clips,
            if row.metrics_within_bound() { "(within bound)" } else { "(OUT OF BOUND)" },
        ));
    }
    for row in rows.iter().filter(|r| !r.notes.is_empty()) {
        out.push_str(&format!("\n\n{}: {}", row.name, row.notes.join("; ")));
    }
    out
}
