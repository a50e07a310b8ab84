//! A short-lived, bounded, per-process cache of `total_count` values, keyed by filter set.
//!
//! The page itself is always read fresh; only the total may be up to [`TOTAL_TTL`] old, the same
//! age the response's `Cache-Control` allows a CDN. Without it every request pays a count over up
//! to [`crate::TOTAL_COUNT_CAP`] index entries, a multiple of the page query's cost.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TOTAL_TTL: Duration = Duration::from_secs(5);
/// Distinct filter sets remembered at once; a client varying filters cannot grow memory.
const MAX_ENTRIES: usize = 1024;

#[derive(Default)]
pub struct TotalCounts {
    entries: Mutex<HashMap<String, (Instant, i64)>>,
}

impl TotalCounts {
    pub fn get(&self, key: &str, now: Instant) -> Option<i64> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(at, _)| now.duration_since(*at) < TOTAL_TTL).map(|(_, total)| *total)
    }

    pub fn put(&self, key: String, total: i64, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| now.duration_since(*at) < TOTAL_TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (now, total));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_expire_and_the_cache_stays_bounded() {
        let cache = TotalCounts::default();
        let start = Instant::now();
        cache.put("a".into(), 7, start);
        assert_eq!(cache.get("a", start + Duration::from_secs(4)), Some(7));
        assert_eq!(cache.get("a", start + TOTAL_TTL), None);
        assert_eq!(cache.get("b", start), None);
        for n in 0..(3 * MAX_ENTRIES) {
            cache.put(n.to_string(), 1, start);
        }
        assert!(cache.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
