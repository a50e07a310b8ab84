//! The clip budget: at most `clips_per_hour` detections of a channel in any hour of event time,
//! decided online, since a live clip cannot wait for the hour to end.
//!
//! Rule, for a detection with key second `S` and intensity `I`, with `used` the detections
//! reported in the hour before it (`S − 3600 < s <= S`) and `limit` the channel's
//! `clips_per_hour`:
//! - `used >= limit`: not reported;
//! - the budget is low (`2 × used >= limit`): reported only when `I` is at least the lower median
//!   of the intensities of those `used` detections, so the rest of the hour goes to moments
//!   stronger than the usual ones;
//! - otherwise reported.
//!
//! A detection not reported still counts for the detector's cooldown (it was the same burst) but
//! not for the budget. Without a budget nothing is remembered. The state keeps at most `limit`
//! (second, intensity) pairs.
//!
//! This module must stay free of clocks and I/O.

use crate::config::MAX_CLIPS_PER_HOUR;
use crate::varint::{self, Reader};

use super::{PLAUSIBLE_SECONDS, StateDecodeError};

/// The span the budget counts over.
pub const BUDGET_SECONDS: i64 = 3_600;

/// The detections reported in the last hour, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipBudget {
    reported: Vec<(i64, f64)>,
}

impl ClipBudget {
    /// Whether a detection at `second` with `intensity` may be reported under `clips_per_hour`
    /// (`None`: no budget); remembers it when it may.
    pub fn admit(&mut self, clips_per_hour: Option<u32>, second: i64, intensity: f64) -> bool {
        let Some(limit) = clips_per_hour else { return true };
        self.reported.retain(|&(reported, _)| second.saturating_sub(reported) < BUDGET_SECONDS);
        let used = self.reported.len();
        let limit = limit as usize;
        if used >= limit {
            return false;
        }
        if 2 * used >= limit && used > 0 {
            let mut intensities: Vec<f64> = self.reported.iter().map(|&(_, i)| i).collect();
            intensities.sort_by(f64::total_cmp);
            if intensity < intensities[(used - 1) / 2] {
                return false;
            }
        }
        self.reported.push((second, intensity));
        true
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        varint::put_u64(out, self.reported.len() as u64);
        for &(second, intensity) in &self.reported {
            varint::put_i64(out, second);
            out.extend_from_slice(&intensity.to_le_bytes());
        }
    }

    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<Self, StateDecodeError> {
        use StateDecodeError as E;
        let count = reader.u64().map_err(|_| E::Truncated("budget"))?;
        if count > u64::from(MAX_CLIPS_PER_HOUR) {
            return Err(E::OutOfRange("budget"));
        }
        let mut reported = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let second = reader.i64().map_err(|_| E::Truncated("budget second"))?;
            let bytes = reader.take(8).ok_or(E::Truncated("budget intensity"))?;
            let intensity = f64::from_le_bytes(bytes.try_into().expect("eight bytes"));
            let in_order = reported.last().is_none_or(|&(last, _)| last <= second);
            if !PLAUSIBLE_SECONDS.contains(&second) || !intensity.is_finite() || !in_order {
                return Err(E::OutOfRange("budget"));
            }
            reported.push((second, intensity));
        }
        Ok(Self { reported })
    }
}

/// The budget after the fact (the moments of a recorded VOD): the strongest of `moments`
/// (second, intensity) such that no hour (`s − 3600 < t <= s`) holds more than `clips_per_hour`,
/// chosen strongest first (ties: earlier first). Returns their indices in time order.
pub fn strongest_within_budget(moments: &[(i64, f64)], clips_per_hour: u32) -> Vec<usize> {
    let limit = clips_per_hour as usize;
    let mut by_strength: Vec<usize> = (0..moments.len()).collect();
    by_strength.sort_by(|&a, &b| moments[b].1.total_cmp(&moments[a].1).then(moments[a].0.cmp(&moments[b].0)));
    // Chosen so far, by second.
    let mut chosen: Vec<usize> = Vec::new();
    for candidate in by_strength {
        let second = moments[candidate].0;
        let at = chosen.partition_point(|&c| moments[c].0 <= second);
        chosen.insert(at, candidate);
        // Only windows of `limit + 1` consecutive choices that contain the new one can break.
        let fits = (at.saturating_sub(limit)..=at)
            .filter(|&first| first + limit < chosen.len())
            .all(|first| moments[chosen[first + limit]].0 - moments[chosen[first]].0 >= BUDGET_SECONDS);
        if limit == 0 || !fits {
            chosen.remove(at);
        }
    }
    chosen
}

/// The budget applied to a detector's detections afterwards, as the specification reads: what a
/// detector with the budget reports.
#[cfg(test)]
pub(crate) fn reference_budget(
    clips_per_hour: Option<u32>,
    detections: Vec<super::Detection>,
) -> Vec<super::Detection> {
    let Some(limit) = clips_per_hour else { return detections };
    let mut reported: Vec<super::Detection> = Vec::new();
    for detection in detections {
        let hour: Vec<f64> = reported
            .iter()
            .filter(|r| detection.peak_second - r.peak_second < BUDGET_SECONDS)
            .map(|r| r.intensity)
            .collect();
        let mut sorted = hour.clone();
        sorted.sort_by(f64::total_cmp);
        let low = 2 * hour.len() >= limit as usize && !hour.is_empty();
        if hour.len() < limit as usize && !(low && detection.intensity < sorted[(hour.len() - 1) / 2]) {
            reported.push(detection);
        }
    }
    reported
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn after_the_fact_the_strongest_moments_fill_each_hour() {
        let moments = [(0, 5.0), (100, 9.0), (200, 7.0), (3_650, 4.0), (3_700, 8.0), (9_000, 1.0)];
        // Two an hour: 9.0 (100) and 7.0 (200); then 8.0 (3700), whose hour holds only 200;
        // 5.0 (0) would make three with 100 and 200, 4.0 (3650) three with 100, 200 and itself.
        assert_eq!(strongest_within_budget(&moments, 2), vec![1, 2, 4, 5]);
        // Three an hour: every hour then holds three at most (the one ending at 3700 holds 200,
        // 3650 and 3700; 100 left it at 3700 exactly).
        assert_eq!(strongest_within_budget(&moments, 3), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(strongest_within_budget(&moments, 1), vec![1, 4, 5]);
        assert_eq!(strongest_within_budget(&moments, 60), vec![0, 1, 2, 3, 4, 5]);
        assert!(strongest_within_budget(&moments, 0).is_empty());
        assert!(strongest_within_budget(&[], 4).is_empty());
    }

    proptest! {
        /// No hour holds more than the budget, and nothing left out would fit beside the rest
        /// while being stronger than something chosen (the choice is greedy by strength).
        #[test]
        fn no_hour_holds_more_than_the_budget(
            moments in proptest::collection::vec((0i64..20_000, 0.0f64..20.0), 0..40),
            limit in 1u32..5,
        ) {
            let chosen = strongest_within_budget(&moments, limit);
            let seconds: Vec<i64> = chosen.iter().map(|&i| moments[i].0).collect();
            prop_assert!(seconds.windows(2).all(|w| w[0] <= w[1]));
            for (i, &s) in seconds.iter().enumerate() {
                let in_hour = seconds[..=i].iter().filter(|&&t| s - t < BUDGET_SECONDS).count();
                prop_assert!(in_hour <= limit as usize, "{seconds:?}");
            }
            // Every moment left out would overfill an hour if added.
            for left_out in (0..moments.len()).filter(|i| !chosen.contains(i)) {
                let mut with: Vec<i64> = seconds.clone();
                with.push(moments[left_out].0);
                with.sort_unstable();
                let overfull = with.iter().enumerate().any(|(i, &s)| {
                    with[..=i].iter().filter(|&&t| s - t < BUDGET_SECONDS).count() > limit as usize
                });
                prop_assert!(overfull, "{left_out} fits: {seconds:?}");
            }
        }
    }

    #[test]
    fn the_hour_fills_then_only_strong_moments_pass_then_none() {
        let mut budget = ClipBudget::default();
        let limit = Some(4);
        assert!(budget.admit(limit, 0, 5.0));
        assert!(budget.admit(limit, 100, 7.0));
        // Half spent: at least the lower median (5.0) of 5.0 and 7.0.
        assert!(!budget.admit(limit, 200, 4.9));
        assert!(budget.admit(limit, 300, 5.0));
        assert!(budget.admit(limit, 400, 9.0));
        assert!(!budget.admit(limit, 500, 50.0), "four in the hour: full");
        // An hour after the first, it has left the budget.
        assert!(budget.admit(limit, 3_600, 7.0));
        assert!(budget.admit(None, 3_601, 0.1), "no budget, no limit");
        let mut saved = Vec::new();
        budget.encode(&mut saved);
        assert_eq!(ClipBudget::decode(&mut Reader::new(&saved)).unwrap(), budget);
    }
}
