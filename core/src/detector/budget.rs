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
