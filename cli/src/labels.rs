//! Scoring detections against labelled bursts: precision, recall and detection delay.

use std::path::Path;

use anyhow::Context as _;
use highlights_core::Detection;
use highlights_core::model::id_as_string;
use serde::{Deserialize, Serialize};

/// A known highlight: chat of `broadcaster_id` exploded from `start` through `end` (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Label {
    #[serde(with = "id_as_string")]
    pub broadcaster_id: u64,
    pub start: i64,
    pub end: i64,
}

/// How detections compare with labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub labels: usize,
    pub detections: usize,
    pub true_positives: usize,
    pub labels_found: usize,
    pub precision: f64,
    pub recall: f64,
    /// Seconds from a found label's start to its first matching detection's fired second.
    pub delay_mean_s: Option<f64>,
    pub delay_p50_s: Option<i64>,
    pub delay_max_s: Option<i64>,
}

/// Reads a labels file (JSONL); any bad line is an error naming it, since a silently skipped
/// label would make the scores wrong.
pub fn read(path: &Path) -> anyhow::Result<Vec<Label>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read labels {}", path.display()))?;
    let mut labels = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let label: Label = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}: not a label", path.display(), index + 1))?;
        anyhow::ensure!(
            label.start <= label.end,
            "{}: line {}: start {} is after end {}",
            path.display(),
            index + 1,
            label.start,
            label.end
        );
        labels.push(label);
    }
    Ok(labels)
}

/// A detection matches a label of its broadcaster when its peak lies in
/// `[start, end + slack_s]`: a window ending shortly after the burst still mostly covers it.
pub fn score(labels: &[Label], detections: &[Detection], slack_s: i64) -> Score {
    let matches = |label: &Label, detection: &Detection| {
        detection.broadcaster_id == label.broadcaster_id
            && (label.start..=label.end + slack_s).contains(&detection.peak_second)
    };
    let true_positives = detections.iter().filter(|d| labels.iter().any(|l| matches(l, d))).count();
    let mut delays: Vec<i64> = labels
        .iter()
        .filter_map(|label| {
            detections.iter().filter(|d| matches(label, d)).map(|d| d.fired_second - label.start).min()
        })
        .collect();
    delays.sort_unstable();
    let ratio = |part: usize, whole: usize| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
    Score {
        labels: labels.len(),
        detections: detections.len(),
        true_positives,
        labels_found: delays.len(),
        precision: ratio(true_positives, detections.len()),
        recall: ratio(delays.len(), labels.len()),
        delay_mean_s: (!delays.is_empty()).then(|| delays.iter().sum::<i64>() as f64 / delays.len() as f64),
        delay_p50_s: delays.get(delays.len().saturating_sub(1) / 2).copied(),
        delay_max_s: delays.last().copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(broadcaster_id: u64, peak_second: i64, fired_second: i64) -> Detection {
        Detection {
            broadcaster_id,
            peak_second,
            fired_second,
            intensity: 5.0,
            message_count: 10,
            baseline_mean: 1.0,
            baseline_std: 1.0,
        }
    }

    #[test]
    fn precision_recall_and_delay() {
        let labels = [
            Label { broadcaster_id: 1, start: 100, end: 110 },
            Label { broadcaster_id: 1, start: 500, end: 505 },
            Label { broadcaster_id: 2, start: 100, end: 110 },
        ];
        let detections = [
            detection(1, 104, 112), // matches label 1
            detection(1, 300, 301), // false positive
            detection(2, 113, 120), // matches label 3 thanks to the slack
            detection(3, 104, 112), // other broadcaster: false positive
        ];
        let score = score(&labels, &detections, 5);
        assert_eq!((score.true_positives, score.labels_found), (2, 2));
        assert_eq!(score.precision, 0.5);
        assert!((score.recall - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(score.delay_mean_s, Some(16.0));
        assert_eq!((score.delay_p50_s, score.delay_max_s), (Some(12), Some(20)));
    }

    #[test]
    fn empty_inputs_score_zero_without_dividing_by_zero() {
        let score = score(&[], &[], 5);
        assert_eq!((score.precision, score.recall, score.delay_mean_s), (0.0, 0.0, None));
    }
}
