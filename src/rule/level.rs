//! One severity level's tracker: entry by trigger, exit by recovery.
//!
//! Owns the per-level memory (breach runs, the out-of window, the clear run) and nothing else.
//! It only ever sees `Value` samples; it does no I/O and reads no clock.

use std::collections::VecDeque;

use crate::clock::Timestamp;
use crate::config::model::{LevelConfig, Trigger};

/// Tracking for one level (warning or critical) of one rule.
#[derive(Debug, Clone, Default)]
pub(super) struct LevelTracker {
    active: bool,
    /// Breaching samples in a row (`Consecutive`).
    breach_run: u32,
    /// First sample of the current breach run (`For`).
    breach_since: Option<Timestamp>,
    /// The last `window` breach booleans, oldest first (`OutOf`).
    recent: VecDeque<bool>,
    /// Clearing samples in a row while active.
    clear_run: u32,
    /// First sample of the current clear run while active.
    clear_since: Option<Timestamp>,
}

impl LevelTracker {
    /// Feeds one value; returns whether the level is active afterwards.
    ///
    /// `None` (the level is not configured) keeps the tracker empty and inactive, so a level
    /// removed by a reload can never be reported.
    pub(super) fn observe(
        &mut self,
        level: Option<&LevelConfig>,
        value: f64,
        now: Timestamp,
    ) -> bool {
        let Some(level) = level else {
            *self = LevelTracker::default();
            return false;
        };
        let breach = level.when.holds(value);
        if self.active {
            let cleared = level.clear.map_or(!breach, |c| c.holds(value));
            if cleared {
                self.clear_run = self.clear_run.saturating_add(1);
                let since = *self.clear_since.get_or_insert(now);
                // A recovery count of 0 is read as 1: only a clearing sample can end a level.
                if self.clear_run >= level.recover.count && now.since(since) >= level.recover.for_ {
                    *self = LevelTracker::default();
                }
            } else {
                // Breaching, or between `clear` and `when` (value hysteresis): stay, and the
                // clear run starts over.
                self.clear_run = 0;
                self.clear_since = None;
            }
        } else if self.entered(level.trigger, breach, now) {
            *self = LevelTracker {
                active: true,
                ..LevelTracker::default()
            };
        }
        self.active
    }

    /// Updates entry tracking for an inactive level; true when the trigger fires.
    /// A level is only ever entered on a breaching sample.
    fn entered(&mut self, trigger: Trigger, breach: bool, now: Timestamp) -> bool {
        match trigger {
            Trigger::Immediate => breach,
            Trigger::For(duration) => {
                if breach {
                    let since = *self.breach_since.get_or_insert(now);
                    now.since(since) >= duration
                } else {
                    self.breach_since = None;
                    false
                }
            }
            Trigger::Consecutive(count) => {
                self.breach_run = if breach {
                    self.breach_run.saturating_add(1)
                } else {
                    0
                };
                breach && self.breach_run >= count
            }
            Trigger::OutOf { count, window } => {
                self.recent.push_back(breach);
                while self.recent.len() > window.max(1) as usize {
                    self.recent.pop_front();
                }
                let breaches = self.recent.iter().filter(|b| **b).count();
                breach && breaches >= count as usize
            }
        }
    }
}
