//! Service level objectives, the arithmetic: per-minute event counts in, error budget and
//! multi-window multi-burn-rate levels out.
//!
//! An SLO's history is one [`Bucket`] per minute (good and total events counted in that
//! minute), kept for the SLO's period and no longer: at most `period / 1m + 1` buckets (43,201
//! for 30 days, 24 bytes each), the minute in progress included. Over that history:
//!
//! - the **error budget remaining** is `1 − (bad / total) / (1 − objective)` over the period:
//!   1.0 with nothing spent (and with no events at all: nothing was spent), 0.0 with exactly
//!   the budget spent, and *below zero* once it is overspent (−0.5: half a budget more than
//!   allowed). It is not clamped below, so an overspent budget says by how much; it cannot
//!   exceed 1.
//! - the **burn rate** over a window is `(bad / total) / (1 − objective)` over its events (0
//!   with none): 1.0 spends the budget in exactly the period.
//! - an [`AlertConfig`] (SRE workbook: 14.4x over 1 h and 5 m pages) holds when the burn rate
//!   is *above* its rate over both its long and its short window, and its long window has at
//!   least its minimum of events (see [`SloConfig::min_events`]): the short window makes an
//!   alert stop soon after the burning stops, the minimum keeps three requests at night from
//!   paging.
//!
//! A window of `w` covers the minute in progress and the `w / 1m` minutes before it, so it
//! spans between `w` and `w + 1m` of time (the last `w` of closed minutes, plus what the
//! current minute has counted so far).
//!
//! Pure: no I/O, no clock (`now` is a parameter), no logging.

use std::collections::VecDeque;
use std::time::Duration;

use crate::alert::Severity;
use crate::clock::Timestamp;
use crate::config::{AlertConfig, SloConfig};
use crate::labels::Labels;

const MINUTE_MS: i64 = 60_000;

/// Minutes since the Unix epoch: the key of a bucket.
pub fn minute_of(t: Timestamp) -> u32 {
    u32::try_from(t.as_millis().max(0) / MINUTE_MS).unwrap_or(u32::MAX)
}

/// Whole minutes in `d` (config only accepts whole minutes for SLO durations).
pub fn minutes(d: Duration) -> u32 {
    u32::try_from(d.as_secs() / 60).unwrap_or(u32::MAX)
}

/// The events of one minute.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Minutes since the Unix epoch.
    pub minute: u32,
    pub good: f64,
    pub total: f64,
}

/// Event counts over a span of minutes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Counts {
    pub good: f64,
    pub total: f64,
}

impl Counts {
    /// Events that were not good (never negative, even if an expression's good count ran
    /// ahead of its total).
    pub fn bad(&self) -> f64 {
        (self.total - self.good).max(0.0)
    }

    /// `(bad / total) / (1 − objective)`; 0 without events.
    pub fn burn_rate(&self, objective: f64) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        (self.bad() / self.total) / (1.0 - objective)
    }
}

/// An SLO's per-minute history, oldest first, at most one bucket per minute.
#[derive(Debug, Clone, Default)]
pub struct History {
    buckets: VecDeque<Bucket>,
    /// The oldest minute changed since [`History::take_closed`] last handed it out.
    dirty_from: Option<u32>,
}

impl History {
    pub fn new() -> Self {
        History::default()
    }

    /// A history made of stored buckets (any order; repeated minutes add up), none of them
    /// waiting to be stored again.
    pub fn from_buckets(buckets: impl IntoIterator<Item = Bucket>) -> Self {
        let mut h = History::new();
        for b in buckets {
            h.add(b.minute, b.good, b.total);
        }
        h.dirty_from = None;
        h
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.buckets.iter()
    }

    /// Counts `good` of `total` events at `at` (into its minute's bucket). Negative or
    /// non-finite counts are ignored; `good` is capped at `total`.
    pub fn record(&mut self, at: Timestamp, good: f64, total: f64) {
        if !(good.is_finite() && total.is_finite()) || good < 0.0 || total <= 0.0 {
            return;
        }
        self.add(minute_of(at), good.min(total), total);
    }

    fn add(&mut self, minute: u32, good: f64, total: f64) {
        match self.buckets.back_mut() {
            Some(b) if b.minute == minute => {
                b.good += good;
                b.total += total;
            }
            Some(b) if b.minute > minute => {
                // Older than the newest: in place (stored buckets loaded out of order).
                match self.buckets.binary_search_by(|b| b.minute.cmp(&minute)) {
                    Ok(i) => {
                        self.buckets[i].good += good;
                        self.buckets[i].total += total;
                    }
                    Err(i) => self.buckets.insert(
                        i,
                        Bucket {
                            minute,
                            good,
                            total,
                        },
                    ),
                }
            }
            _ => self.buckets.push_back(Bucket {
                minute,
                good,
                total,
            }),
        }
        self.dirty_from = Some(self.dirty_from.map_or(minute, |d| d.min(minute)));
    }

    /// Drops the buckets older than `period` before `now`'s minute.
    pub fn prune(&mut self, now: Timestamp, period: Duration) {
        let from = minute_of(now).saturating_sub(minutes(period));
        while self.buckets.front().is_some_and(|b| b.minute < from) {
            self.buckets.pop_front();
        }
    }

    /// The events of `now`'s minute and the `window / 1m` minutes before it.
    pub fn window(&self, now: Timestamp, window: Duration) -> Counts {
        let now_minute = minute_of(now);
        let from = now_minute.saturating_sub(minutes(window));
        let mut c = Counts::default();
        for b in self.buckets.iter().rev() {
            if b.minute < from {
                break;
            }
            if b.minute <= now_minute {
                c.good += b.good;
                c.total += b.total;
            }
        }
        c
    }

    /// The buckets of closed minutes (before `now`'s) changed since the last call: what is
    /// final and not yet stored. The minute in progress stays until it closes.
    pub fn take_closed(&mut self, now: Timestamp) -> Vec<Bucket> {
        let Some(from) = self.dirty_from else {
            return Vec::new();
        };
        let now_minute = minute_of(now);
        if from >= now_minute {
            return Vec::new();
        }
        let out: Vec<Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.minute >= from && b.minute < now_minute)
            .copied()
            .collect();
        self.dirty_from = self
            .buckets
            .back()
            .filter(|b| b.minute >= now_minute)
            .map(|b| b.minute);
        out
    }
}

/// The alert level an SLO's burn rates call for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Critical,
}

impl Level {
    /// The value the SLO's rule reads: 0 ok, 1 warning (a ticket), 2 critical (a page).
    pub fn value(self) -> f64 {
        match self {
            Level::Ok => 0.0,
            Level::Warning => 1.0,
            Level::Critical => 2.0,
        }
    }
}

/// One window's events and burn rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowBurn {
    pub window: Duration,
    pub counts: Counts,
    pub burn_rate: f64,
}

/// An SLO at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The worst level of the alerts that hold.
    pub level: Level,
    /// See the module doc: 1 untouched, 0 spent, below 0 overspent.
    pub budget_remaining: f64,
    /// Events over the period.
    pub period: Counts,
    /// Every distinct window of the alert table, shortest first.
    pub windows: Vec<WindowBurn>,
    /// The alerts (indexes into [`SloConfig::alerts`]) that hold.
    pub firing: Vec<usize>,
}

/// The fewest events an alert's long window needs before it may fire: `min_events` when
/// configured, else enough that one bad event alone stays at or below the alert's burn rate
/// (`⌈1 / (burn_rate × (1 − objective))⌉`: 14 for 14.4x at 99.5 %, 200 for 1x).
pub fn min_events(slo: &SloConfig, alert: &AlertConfig) -> f64 {
    match slo.min_events {
        Some(n) => n,
        None => (1.0 / (alert.burn_rate * (1.0 - slo.objective))).ceil(),
    }
}

/// Error budget, burn rates and alert level of `slo` over `history` at `now`.
pub fn evaluate(slo: &SloConfig, history: &History, now: Timestamp) -> Evaluation {
    let period = history.window(now, slo.period);
    let budget_remaining = 1.0 - period.burn_rate(slo.objective);
    let mut distinct: Vec<Duration> = slo.alerts.iter().flat_map(|a| [a.long, a.short]).collect();
    distinct.sort();
    distinct.dedup();
    let windows: Vec<WindowBurn> = distinct
        .into_iter()
        .map(|w| {
            let counts = history.window(now, w);
            WindowBurn {
                window: w,
                counts,
                burn_rate: counts.burn_rate(slo.objective),
            }
        })
        .collect();
    let of = |w: Duration| {
        windows
            .iter()
            .find(|b| b.window == w)
            .copied()
            .expect("every alert window is among the distinct windows")
    };
    let mut level = Level::Ok;
    let mut firing = Vec::new();
    for (i, alert) in slo.alerts.iter().enumerate() {
        let (long, short) = (of(alert.long), of(alert.short));
        let holds = long.counts.total >= min_events(slo, alert)
            && long.burn_rate > alert.burn_rate
            && short.burn_rate > alert.burn_rate;
        if holds {
            firing.push(i);
            level = level.max(match alert.severity {
                Severity::Warning => Level::Warning,
                Severity::Critical => Level::Critical,
            });
        }
    }
    Evaluation {
        level,
        budget_remaining,
        period,
        windows,
        firing,
    }
}

/// Events counted by a counter expression between two evaluations: per row (label set), the
/// increase since the row's previous value (its whole value after a counter reset, when it
/// went down); a row seen for the first time is a baseline and counts nothing. `previous`
/// becomes `rows`. Non-finite values are left out.
pub fn counter_increase(previous: &mut Vec<(Labels, f64)>, mut rows: Vec<(Labels, f64)>) -> f64 {
    rows.retain(|(_, v)| v.is_finite());
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sum = 0.0;
    for (labels, value) in &rows {
        if let Ok(i) = previous.binary_search_by(|(l, _)| l.cmp(labels)) {
            let before = previous[i].1;
            sum += if *value >= before {
                value - before
            } else {
                *value
            };
        }
    }
    *previous = rows;
    sum
}

#[cfg(test)]
mod tests;
