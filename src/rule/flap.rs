//! Nagios-style flap detection over a rule's recent underlying levels.
//!
//! Owns the level history and the flapping flag with its high/low hysteresis. It only sees
//! levels (never samples or thresholds); it does no I/O and reads no clock.

use std::collections::VecDeque;

use super::State;
use crate::config::model::FlapConfig;

/// What one recorded level did to the flapping flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlapChange {
    Started,
    Stopped,
}

#[derive(Debug, Clone, Default)]
pub(super) struct FlapHistory {
    /// The last `window` underlying levels, oldest first.
    levels: VecDeque<State>,
    flapping: bool,
    percent: f64,
}

impl FlapHistory {
    pub(super) fn is_flapping(&self) -> bool {
        self.flapping
    }

    pub(super) fn percent(&self) -> f64 {
        self.percent
    }

    /// Forgets everything (flap detection is off for the rule).
    pub(super) fn clear(&mut self) {
        *self = FlapHistory::default();
    }

    /// Appends `level` and re-evaluates the flapping flag.
    pub(super) fn record(&mut self, config: &FlapConfig, level: State) -> Option<FlapChange> {
        let window = config.window.max(1) as usize;
        self.levels.push_back(level);
        while self.levels.len() > window {
            self.levels.pop_front();
        }
        self.percent = change_percent(&self.levels, window);
        // Flapping needs some change (a `high` of 0 does not make a steady rule flap), and
        // stopping needs `percent < high` too, so a `low >= high` cannot make it oscillate.
        if !self.flapping && self.percent > 0.0 && self.percent >= config.high {
            self.flapping = true;
            Some(FlapChange::Started)
        } else if self.flapping && self.percent <= config.low && self.percent < config.high {
            self.flapping = false;
            Some(FlapChange::Stopped)
        } else {
            None
        }
    }
}

/// Percent state change over `levels` (at most `window` entries, oldest first).
///
/// A full window has `window - 1` pairs; pair `i` (0 = oldest) weighs
/// `0.75 + 0.5 * i / (pairs - 1)`, and `percent = Σ weights of differing pairs × 100 / pairs`.
/// A shorter history is aligned to the newest end (its newest pair weighs 1.25) and still
/// divided by `window - 1`: exactly as if the window had been padded with its oldest level, so
/// a young history never reads as more changeable than a full one.
pub(super) fn change_percent(levels: &VecDeque<State>, window: usize) -> f64 {
    let pairs = window.saturating_sub(1);
    if pairs == 0 {
        return 0.0;
    }
    let present = levels.len().saturating_sub(1).min(pairs);
    let offset = pairs - present;
    let weighted: f64 = levels
        .iter()
        .zip(levels.iter().skip(1))
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(j, _)| weight(offset + j, pairs))
        .fold(0.0, |sum, w| sum + w); // not `sum()`: an empty f64 sum is -0.0
    weighted * 100.0 / pairs as f64
}

/// Weight of pair `i` (0 = oldest) out of `pairs`.
fn weight(i: usize, pairs: usize) -> f64 {
    if pairs <= 1 {
        1.0
    } else {
        0.75 + 0.5 * i as f64 / (pairs - 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(levels: &[State], window: usize) -> f64 {
        change_percent(&levels.iter().copied().collect(), window)
    }

    #[test]
    fn nagios_weights() {
        use State::{Critical as C, Ok as O};
        // 21 states, every pair differs: the weights average 1, so 100 %.
        let all: Vec<State> = (0..21).map(|i| if i % 2 == 0 { O } else { C }).collect();
        assert!((percent(&all, 21) - 100.0).abs() < 1e-9);
        // Steady: 0 %.
        assert_eq!(percent(&[O; 21], 21), 0.0);
        // Only the newest pair differs: 1.25 × 100 / 20.
        let mut newest = vec![O; 20];
        newest.push(C);
        assert!((percent(&newest, 21) - 6.25).abs() < 1e-9);
        // Only the oldest pair differs: 0.75 × 100 / 20.
        let mut oldest = vec![C];
        oldest.extend([O; 20]);
        assert!((percent(&oldest, 21) - 3.75).abs() < 1e-9);
        // A young history is read as padded with its oldest level.
        assert!((percent(&[O, C], 21) - 6.25).abs() < 1e-9);
        // Degenerate windows do not divide by zero.
        assert_eq!(percent(&[O], 1), 0.0);
        assert_eq!(percent(&[O, C], 2), 100.0);
    }
}
