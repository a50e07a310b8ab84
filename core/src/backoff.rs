//! The one back-off schedule every retry loop uses: a first pause that doubles with each
//! consecutive failure, up to a cap, optionally with "equal jitter" (between half and all of it).
//!
//! Pure arithmetic: no clock, no sleeping, no randomness of its own. Callers bring the failure
//! count and, for jitter, any noise value; that keeps the schedule testable and lets loops that
//! sleep, loops that compute a deadline and SQL schedules share it.

use std::time::Duration;

/// Exponential back-off: `first`, `2 × first`, `4 × first`, ..., never more than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    /// The pause after `failures` consecutive failures: none after 0, `first` after 1, then
    /// doubling, capped at `max`. Saturates instead of overflowing for any count.
    pub fn after(&self, failures: u32) -> Duration {
        match failures {
            0 => Duration::ZERO,
            n => self.first.saturating_mul(1 << (n - 1).min(30)).min(self.max),
        }
    }

    /// [`Self::after`] with equal jitter: between half and all of it, placed by `noise` (any
    /// value, e.g. random bits or a clock's nanoseconds). Spreads the retries of many clients
    /// that failed together without ever waiting less than half the schedule.
    pub fn jittered(&self, failures: u32, noise: u64) -> Duration {
        let ceiling = self.after(failures);
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let half = ceiling_ns / 2;
        Duration::from_nanos(half + noise % (ceiling_ns - half + 1))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn doubles_from_the_first_pause_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        let pauses: Vec<u128> = (0..=8).map(|n| backoff.after(n).as_millis()).collect();
        assert_eq!(pauses, [0, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(backoff.after(u32::MAX), Duration::from_secs(5));
    }

    proptest! {
        #[test]
        fn jitter_stays_between_half_and_all_of_the_pause(failures in 0u32..100, noise: u64, first_ms in 1u64..10_000, cap_s in 1u64..3_600) {
            let backoff = Backoff::new(Duration::from_millis(first_ms), Duration::from_secs(cap_s));
            let pause = backoff.jittered(failures, noise);
            let ceiling = backoff.after(failures);
            prop_assert!(pause <= ceiling);
            prop_assert!(pause >= ceiling / 2);
        }

        #[test]
        fn never_shrinks_as_failures_grow(failures in 0u32..1_000, first_ms in 1u64..10_000, cap_s in 1u64..3_600) {
            let backoff = Backoff::new(Duration::from_millis(first_ms), Duration::from_secs(cap_s));
            prop_assert!(backoff.after(failures) <= backoff.after(failures + 1));
        }
    }
}
