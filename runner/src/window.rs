//! A Kinesis mapping with a tumbling window (`TumblingWindowInSeconds`), run the way Lambda runs
//! it: records are cut into windows by the time they reached the stream (windows aligned on
//! multiples of their length since the epoch); every invocation gets the state map the window's
//! previous one returned; the window's last invocation is flagged final — with the window's last
//! records when the next window's first record is already read, or without records once the
//! window's end has passed on the clock — and its answer ends the window.
//!
//! The map is checkpointed together with the shard position, in one atomic write of the
//! checkpoints file, so a killed runner resumes inside the window with the map that goes with
//! the last completed batch (what Lambda guarantees). A failed invocation is retried whole, with
//! the same records and the same map; a record that fails for too long is dead-lettered alone and
//! the window goes on with the map it had.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use highlights_adapters::lambda_events::WindowIn;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{PollerContext, Read, Reader, Retries, Shard, dead_letter, pause};

/// The window in progress, as checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OpenWindow {
    start_s: i64,
    state: HashMap<String, String>,
}

/// The checkpoint key of a shard's open window.
fn window_key(shard_key: &str) -> String {
    format!("{shard_key}#window")
}

/// The start of the window `arrival_s` falls in.
fn window_start(arrival_s: f64, length_s: i64) -> i64 {
    (arrival_s.floor() as i64).div_euclid(length_s) * length_s
}

fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The mapping loop of one shard with a tumbling window of `length`.
pub(crate) async fn poll<S: Shard>(
    shard: S,
    context: PollerContext,
    mut stop: watch::Receiver<bool>,
    length: Duration,
) {
    let options = &context.options;
    let key = shard.key().to_owned();
    let length_s = length.as_secs().max(1) as i64;
    let mut window: Option<OpenWindow> = context.checkpoints.get(&window_key(&key)).and_then(|text| {
        serde_json::from_str(&text)
            .map_err(
                |error| tracing::error!(shard = %key, %error, "ignoring an unreadable window checkpoint"),
            )
            .ok()
    });
    let mut reader = Reader::new();
    let mut retries = Retries::default();
    while !*stop.borrow() {
        let read = reader.fill(&shard, &context, &mut stop).await;
        if matches!(read, Read::Closed) && window.is_none() {
            return;
        }
        let first_start = reader.buffer.front().map(|r| window_start(S::arrival_s(r), length_s));
        // The window in progress ends when a record of a later window is in line, or when its
        // end has passed and nothing of it is left to read.
        let ends_now = |w: &OpenWindow| match first_start {
            Some(start) => start > w.start_s,
            None => now_s() >= (w.start_s + length_s) as f64 || matches!(read, Read::Closed),
        };
        let batch: Vec<S::Record> = match (&window, first_start) {
            (Some(w), _) if ends_now(w) => Vec::new(),
            (_, None) => {
                pause(&mut stop, options.poll_interval).await;
                continue;
            }
            (_, Some(start)) => reader
                .buffer
                .iter()
                .take(options.batch_size)
                .take_while(|r| window_start(S::arrival_s(r), length_s) == start)
                .cloned()
                .collect(),
        };
        let open = window.get_or_insert_with(|| OpenWindow {
            start_s: first_start.unwrap_or_default(),
            state: HashMap::new(),
        });
        let next_in_line = reader.buffer.get(batch.len()).map(|r| window_start(S::arrival_s(r), length_s));
        let is_final = batch.is_empty() || next_in_line.is_some_and(|start| start > open.start_s);
        let event = WindowIn {
            start_s: open.start_s,
            end_s: open.start_s + length_s,
            state: open.state.clone(),
            shard_id: key.clone(),
            is_final,
            terminated_early: false,
        };
        let answer = shard.invoke_window(&batch, &event).await;
        context.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let (done, next_state) = match answer {
            Ok(state) => {
                retries = Retries::default();
                (batch.len(), Some(state))
            }
            Err(message) => {
                context.stats.failed_invocations.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(shard = %key, %message, "the invocation failed; retrying it whole");
                // A window's last invocation without records has nothing to set aside: it is
                // retried until it succeeds, as Lambda holds the shard until it does.
                if retries.failed(0, options) && !batch.is_empty() {
                    dead_letter(&shard, &context, &batch[..1]).await;
                    (1, None)
                } else {
                    (0, None)
                }
            }
        };
        if is_final && next_state.is_some() {
            window = None;
        } else if let (Some(state), Some(open)) = (next_state, window.as_mut()) {
            open.state = state;
        }
        let position = done.checked_sub(1).map(|last| S::sequence(&batch[last]).to_owned());
        if done > 0 || (is_final && window.is_none()) {
            reader.buffer.drain(..done);
            context.stats.records.fetch_add(done as u64, Ordering::Relaxed);
            let window_text = window.as_ref().map(|w| serde_json::to_string(w).expect("a window serialises"));
            let mut writes = vec![(window_key(&key), window_text)];
            if let Some(position) = position {
                writes.push((key.clone(), Some(position)));
            }
            if let Err(error) = context.checkpoints.set_many(&writes) {
                tracing::error!(%error, "cannot write the checkpoint");
            }
        }
        if retries.attempts > 0 {
            pause(&mut stop, options.retry_backoff.after(retries.attempts)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_on_their_length() {
        assert_eq!(window_start(1_700_000_059.9, 60), 1_700_000_040);
        assert_eq!(window_start(1_700_000_039.9, 60), 1_699_999_980);
        assert_eq!(window_start(1_699_999_980.0, 60), 1_699_999_980);
        assert_eq!(window_start(1_700_000_040.0, 60), 1_700_000_040);
        assert_eq!(window_start(7.5, 1), 7);
    }
}
