//! The retry schedule: exponential backoff with jitter, like Alertmanager's (500 ms × 1.5,
//! ± 50 %, capped at 60 s), plus the receiver's own `Retry-After` when it gave one.
//!
//! Pure: the random draw is a parameter, so the schedule is tested exactly.

use std::time::Duration;

/// The backoff knobs (part of `OutboxConfig`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The delay after the first failed attempt, before jitter.
    pub initial: Duration,
    /// Each further failure multiplies the delay by this.
    pub multiplier: f64,
    /// No delay exceeds this (jitter included), except a receiver's `Retry-After`.
    pub max: Duration,
    /// The delay is drawn uniformly from `base × [1 − jitter, 1 + jitter]`.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            multiplier: 1.5,
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The un-jittered delay after `failures` failed attempts (1 = the first failure).
    pub fn base(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(1_000) as i32;
        let secs = self.initial.as_secs_f64() * self.multiplier.max(1.0).powi(exp);
        Duration::from_secs_f64(secs.min(self.max.as_secs_f64()).max(0.0))
    }

    /// The delay before the next attempt after `failures` failures; `draw` is uniform in
    /// `[0, 1)`. A `retry_after` from the receiver is honoured as a lower bound (it may
    /// exceed `max`: the receiver asked for it).
    pub fn delay(&self, failures: u32, draw: f64, retry_after: Option<Duration>) -> Duration {
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + jitter * (2.0 * draw.clamp(0.0, 1.0) - 1.0);
        let jittered = (self.base(failures).as_secs_f64() * factor).min(self.max.as_secs_f64());
        let delay = Duration::from_secs_f64(jittered.max(0.0));
        match retry_after {
            Some(asked) => delay.max(asked),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_the_multiplier_up_to_the_cap() {
        let b = Backoff::default();
        let bases: Vec<u128> = (1..=14).map(|n| b.base(n).as_millis()).collect();
        assert_eq!(
            bases,
            [
                500, 750, 1125, 1687, 2531, 3796, 5695, 8542, 12814, 19221, 28832, 43248, 60000,
                60000
            ]
        );
        assert_eq!(b.base(u32::MAX), Duration::from_secs(60));
        assert_eq!(b.base(0), Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_within_half_either_side_and_under_the_cap() {
        let b = Backoff::default();
        for failures in 1..=20 {
            let base = b.base(failures).as_secs_f64();
            let low = b.delay(failures, 0.0, None).as_secs_f64();
            let mid = b.delay(failures, 0.5, None).as_secs_f64();
            let high = b.delay(failures, 0.999_999, None).as_secs_f64();
            assert!(
                (low - base * 0.5).abs() < 1e-6,
                "{failures}: {low} vs {base}"
            );
            assert!((mid - base).abs() < 1e-6, "{failures}: {mid} vs {base}");
            assert!(high <= (base * 1.5).min(60.0) + 1e-6, "{failures}: {high}");
            assert!(high >= mid);
        }
        // Many random draws: all in bounds.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let failures = rng.u32(1..30);
            let d = b.delay(failures, rng.f64(), None).as_secs_f64();
            let base = b.base(failures).as_secs_f64();
            assert!(d >= base * 0.5 - 1e-9 && d <= (base * 1.5).min(60.0) + 1e-9);
        }
    }

    #[test]
    fn retry_after_is_a_floor_even_beyond_the_cap() {
        let b = Backoff::default();
        let asked = Some(Duration::from_secs(3));
        assert_eq!(b.delay(1, 0.5, asked), Duration::from_secs(3));
        assert_eq!(
            b.delay(1, 0.5, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        // A Retry-After shorter than the backoff does not shorten it.
        assert_eq!(
            b.delay(20, 0.5, Some(Duration::from_secs(1))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn configurable() {
        let b = Backoff {
            initial: Duration::from_millis(10),
            multiplier: 2.0,
            max: Duration::from_millis(50),
            jitter: 0.0,
        };
        let d: Vec<u128> = (1..=5).map(|n| b.delay(n, 0.9, None).as_millis()).collect();
        assert_eq!(d, [10, 20, 40, 50, 50]);
    }
}
