//! Scoring detections against labelled bursts: precision, recall and detection delay.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use highlights_core::Detection;
use highlights_core::model::id_as_string;
use serde::{Deserialize, Serialize};

/// A labelled span of one broadcaster's chat, `start` through `end` (Unix seconds): a highlight
/// the detector should report, or a distractor (`"distractor": true`) it must not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    #[serde(with = "id_as_string")]
    pub broadcaster_id: u64,
    pub start: i64,
    pub end: i64,
    /// What happened (`reaction`, `hype`, `small`, `spam`, ...); `burst` when the file says nothing.
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub distractor: bool,
}

fn default_kind() -> String {
    "burst".to_owned()
}

impl Label {
    /// A highlight of kind `burst`.
    pub fn burst(broadcaster_id: u64, start: i64, end: i64) -> Self {
        Self { broadcaster_id, start, end, kind: default_kind(), distractor: false }
    }
}

/// How detections compare with labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    /// Highlights labelled, and distractors labelled.
    pub labels: usize,
    pub distractors: usize,
    pub detections: usize,
    /// Detections that are the first to match a highlight.
    pub true_positives: usize,
    /// Further detections of a highlight already found (neither true nor counted as found).
    pub repeats: usize,
    pub labels_found: usize,
    pub precision: f64,
    pub recall: f64,
    /// Per highlight kind: labelled, found, recall.
    pub recall_by_kind: BTreeMap<String, KindRecall>,
    /// Detections matching no highlight, by the distractor they fell in (`unlabelled` if none).
    pub false_positives_by_kind: BTreeMap<String, usize>,
    /// Seconds from a found label's start to its first matching detection's fired second.
    pub delay_mean_s: Option<f64>,
    pub delay_p50_s: Option<i64>,
    pub delay_max_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindRecall {
    pub labels: usize,
    pub found: usize,
    pub recall: f64,
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

/// A detection matches a label of its broadcaster when its key second lies in
/// `[start, end + slack_s]`: a window ending shortly after the burst still mostly covers it.
pub fn score(labels: &[Label], detections: &[Detection], slack_s: i64) -> Score {
    let matches = |label: &Label, detection: &Detection| {
        detection.broadcaster_id == label.broadcaster_id
            && (label.start..=label.end + slack_s).contains(&detection.peak_second)
    };
    let highlights: Vec<&Label> = labels.iter().filter(|l| !l.distractor).collect();
    let mut found = vec![false; highlights.len()];
    let (mut true_positives, mut repeats) = (0, 0);
    let mut false_positives_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for detection in detections {
        match highlights.iter().position(|label| matches(label, detection)) {
            Some(index) if !found[index] => {
                found[index] = true;
                true_positives += 1;
            }
            Some(_) => repeats += 1,
            None => {
                let kind = labels
                    .iter()
                    .find(|label| label.distractor && matches(label, detection))
                    .map_or("unlabelled", |label| label.kind.as_str());
                *false_positives_by_kind.entry(kind.to_owned()).or_default() += 1;
            }
        }
    }
    let ratio = |part: usize, whole: usize| if whole == 0 { 0.0 } else { part as f64 / whole as f64 };
    let mut recall_by_kind: BTreeMap<String, KindRecall> = BTreeMap::new();
    for (label, &was_found) in highlights.iter().zip(&found) {
        let entry = recall_by_kind.entry(label.kind.clone()).or_insert(KindRecall {
            labels: 0,
            found: 0,
            recall: 0.0,
        });
        entry.labels += 1;
        entry.found += usize::from(was_found);
        entry.recall = ratio(entry.found, entry.labels);
    }
    for label in labels.iter().filter(|l| l.distractor) {
        false_positives_by_kind.entry(label.kind.clone()).or_default();
    }
    let mut delays: Vec<i64> = highlights
        .iter()
        .filter_map(|label| {
            detections.iter().filter(|d| matches(label, d)).map(|d| d.fired_second - label.start).min()
        })
        .collect();
    delays.sort_unstable();
    Score {
        labels: highlights.len(),
        distractors: labels.len() - highlights.len(),
        detections: detections.len(),
        true_positives,
        repeats,
        labels_found: delays.len(),
        precision: ratio(true_positives, detections.len()),
        recall: ratio(delays.len(), highlights.len()),
        recall_by_kind,
        false_positives_by_kind,
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
            curve: Default::default(),
            phrases: Default::default(),
        }
    }

    #[test]
    fn precision_recall_and_delay() {
        let labels = [
            Label::burst(1, 100, 110),
            Label::burst(1, 500, 505),
            Label::burst(2, 100, 110),
            Label { kind: "spam".into(), distractor: true, ..Label::burst(1, 290, 310) },
        ];
        let detections = [
            detection(1, 104, 112), // matches label 1
            detection(1, 300, 301), // false positive
            detection(2, 113, 120), // matches label 3 thanks to the slack
            detection(3, 104, 112), // other broadcaster: false positive
            detection(1, 106, 113), // label 1 again: a repeat
        ];
        let score = score(&labels, &detections, 5);
        assert_eq!((score.true_positives, score.labels_found, score.repeats), (2, 2, 1));
        assert_eq!((score.labels, score.distractors), (3, 1));
        assert_eq!(score.precision, 0.4);
        assert_eq!(score.false_positives_by_kind.get("spam"), Some(&1));
        assert_eq!(score.false_positives_by_kind.get("unlabelled"), Some(&1));
        assert_eq!(score.recall_by_kind["burst"].found, 2);
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
