//! Rule evaluation: turns a rule's stream of samples into its state.
//!
//! This module owns the pure state machine [`step`]`(rule, state, sample, now)`: thresholds,
//! entry triggers, recovery hysteresis, failed/missing policies, the warm-up and flap
//! detection. It must not do I/O, spawn tasks, read a clock (`now` is always a parameter) or know
//! about notifications: it reports transitions, others decide what to send.
//!
//! # The contract
//!
//! **Levels.** Each configured level (warning, critical) is tracked independently from every
//! `Value` sample `v`: `breach = when.holds(v)`, `cleared = clear.map_or(!breach, |c| c.holds(v))`.
//! - An *inactive* level is entered by its trigger, and only ever on a breaching sample.
//!   `Immediate`: the first breaching sample. `For(d)`: a breach run starts at its first
//!   breaching sample; the level is entered on a breaching sample once `now - first >= d`; a
//!   non-breaching sample ends the run. `Consecutive(n)`: the n-th breaching sample in a row.
//!   `OutOf { count, window }`: the last `window` breach booleans are kept; entered when at least
//!   `count` of them are breaches.
//! - An *active* level is left by its recovery. A clearing sample extends the clear run (count
//!   and start time); any other sample resets it, including, with value hysteresis, a sample
//!   between `clear` and `when`, which keeps the level active. The level is left when the run
//!   holds `>= recover.count` samples (0 reads as 1) and `now - run start >= recover.for_`.
//!   Entering or leaving a level resets all of its tracking.
//!
//! **Underlying level** ([`RuleState::level`]) after a `Value` sample: `Critical` if critical is
//! active, else `Warning` if warning is active, else `Ok`; but `Unknown` while fewer than
//! `rule.min_samples` `Value` samples were seen (the warm-up). Levels track during the warm-up
//! too, so a breach that lasts through it is reported as soon as it ends. A sample that breaches
//! some level's `when` never moves the rule *to* `Ok`: while that breach is pending (its `for` or
//! `count` not yet met) the rule holds the level it had, so a Redis that is down at start-up
//! reads `Unknown` until its rule fires, never `Ok`.
//!
//! **Failed and missing.** A `Failed` sample (the probe failed) sets the underlying level to
//! `rule.on_error`, a `Missing` sample (probe ok, value absent) to `rule.on_missing`. Neither
//! touches the level trackers (they are frozen: neither breach nor clear, so a `For` breach run
//! spans the gap), and neither counts toward `min_samples`. The policies apply during the warm-up
//! too: a failed probe is a fact about now, not a lack of history. The next `Value` sample
//! recomputes the level from the frozen trackers. No path turns a `Failed` or `Missing` sample
//! into `Ok`.
//!
//! **NaN.** A NaN value is treated as `Missing` (`on_missing`, reason `value_missing`, value
//! `None`). Comparing it would be wrong both ways: it satisfies no ordering condition, so with
//! no `clear` condition it would *clear* an active level (a silent ok), yet it satisfies `!=`.
//! Infinities compare normally.
//!
//! **Flapping** (only when `rule.flapping` is set). After every sample that is not part of the
//! warm-up, the underlying level is appended to a history of the last `window` levels, and the
//! Nagios percent state change is computed over it: pairs of neighbours that differ are summed
//! with weights rising linearly from 0.75 (oldest pair) to 1.25 (newest pair), times
//! `100 / (window - 1)`. A history that is not full yet is aligned to the newest end and still
//! divided by `window - 1`, i.e. read as if padded with its oldest level; that already makes a
//! young history conservative, so no minimum history length is imposed (one would only let more
//! pages through before flapping is noticed). The warm-up's `Unknown`s are not recorded: they
//! are not a change of the target. Not flapping and `percent >= high` (and `> 0`): flapping
//! starts. Flapping and `percent <= low` (and `< high`, so a bad `low >= high` cannot oscillate):
//! it stops. While flapping the reported state is `Flapping`, the underlying level keeps being
//! tracked, and level changes return no transition; when flapping stops the reported state is
//! the current underlying level.
//!
//! **Transitions.** [`step`] returns a [`Transition`] exactly when the reported state
//! ([`RuleState::state`]) changes; `since` becomes `now`. Its `value` is the sample's value
//! (`None` for failed, missing and NaN). Its reason: `flapping_started` / `flapping_stopped`
//! when flapping begins or ends; otherwise `probe_failed` or `value_missing` for those samples;
//! for a value sample, `not_enough_samples` into the warm-up's `Unknown`, `recovered` to `Ok`
//! (also the first `Ok` after start-up) or from critical down to warning, and
//! `threshold_crossed` into warning or critical otherwise (including back from an `on_error`
//! state into a level that was still active). A level the rule no longer configures (after a
//! reload) is dropped from the state on the next value sample.

mod flap;
mod level;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::config::model::{MissingPolicy, RuleConfig};

use flap::{FlapChange, FlapHistory};
use level::LevelTracker;

/// A rule's state as reported to operators (and the underlying severity levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Ok,
    Warning,
    Critical,
    Unknown,
    Flapping,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Ok,
        State::Warning,
        State::Critical,
        State::Unknown,
        State::Flapping,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Critical => "critical",
            State::Unknown => "unknown",
            State::Flapping => "flapping",
        }
    }

    /// The Nagios plugin exit code: ok 0, warning 1, critical 2, unknown 3; flapping 1.
    pub fn exit_code(self) -> i32 {
        match self {
            State::Ok => 0,
            State::Warning | State::Flapping => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<MissingPolicy> for State {
    fn from(policy: MissingPolicy) -> State {
        match policy {
            MissingPolicy::Unknown => State::Unknown,
            MissingPolicy::Warning => State::Warning,
            MissingPolicy::Critical => State::Critical,
        }
    }
}

/// One observation of the rule's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    Value(f64),
    /// The probe failed, so the value is absent.
    Failed,
    /// The probe succeeded but did not produce the value.
    Missing,
}

/// Everything a rule remembers between samples. Create with [`RuleState::new`], advance with
/// [`step`].
#[derive(Debug, Clone)]
pub struct RuleState {
    reported: State,
    level: State,
    since: Timestamp,
    value: Option<f64>,
    samples: u64,
    value_samples: u64,
    warning: LevelTracker,
    critical: LevelTracker,
    flap: FlapHistory,
}

impl RuleState {
    /// `Unknown` since `now`, no sample seen.
    pub fn new(now: Timestamp) -> Self {
        RuleState {
            reported: State::Unknown,
            level: State::Unknown,
            since: now,
            value: None,
            samples: 0,
            value_samples: 0,
            warning: LevelTracker::default(),
            critical: LevelTracker::default(),
            flap: FlapHistory::default(),
        }
    }

    /// The reported state: `Flapping` while flapping, else [`RuleState::level`].
    pub fn state(&self) -> State {
        self.reported
    }

    /// The underlying `Ok`/`Warning`/`Critical`/`Unknown`, also while flapping.
    pub fn level(&self) -> State {
        self.level
    }

    /// When the reported state was entered.
    pub fn since(&self) -> Timestamp {
        self.since
    }

    /// The last sample's value (`None` if it was failed, missing or NaN).
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// Samples seen, of every kind (only values count toward `min_samples`).
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The current percent state change (0 when flap detection is off).
    pub fn flap_percent(&self) -> f64 {
        self.flap.percent()
    }
}

/// A change of a rule's reported state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Serialized as milliseconds since the Unix epoch.
    #[serde(serialize_with = "serialize_millis")]
    pub at: Timestamp,
    pub value: Option<f64>,
    pub reason: TransitionReason,
}

/// Why the reported state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    /// Warning or critical was entered.
    ThresholdCrossed,
    /// A level was left: to ok, or from critical down to warning.
    Recovered,
    /// `on_error` was applied to a failed probe.
    ProbeFailed,
    /// `on_missing` was applied to an absent (or NaN) value.
    ValueMissing,
    /// Fewer than `min_samples` values seen.
    NotEnoughSamples,
    FlappingStarted,
    FlappingStopped,
    /// A labelled series was absent from its check's successful observations for the rule's
    /// `gone_after`: it is over, and its state is dropped.
    SeriesGone,
}

impl TransitionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionReason::ThresholdCrossed => "threshold_crossed",
            TransitionReason::Recovered => "recovered",
            TransitionReason::ProbeFailed => "probe_failed",
            TransitionReason::ValueMissing => "value_missing",
            TransitionReason::NotEnoughSamples => "not_enough_samples",
            TransitionReason::FlappingStarted => "flapping_started",
            TransitionReason::FlappingStopped => "flapping_stopped",
            TransitionReason::SeriesGone => "series_gone",
        }
    }
}

impl fmt::Display for TransitionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn serialize_millis<S: serde::Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(at.as_millis())
}

/// What set the underlying level on this sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Value,
    WarmUp,
    ProbeFailed,
    ValueMissing,
}

/// Feeds one sample; returns the transition of the reported state, if it changed.
pub fn step(
    rule: &RuleConfig,
    state: &mut RuleState,
    sample: Sample,
    now: Timestamp,
) -> Option<Transition> {
    state.samples = state.samples.saturating_add(1);
    let (level, cause, value) = match sample {
        Sample::Value(v) if !v.is_nan() => {
            state.value_samples = state.value_samples.saturating_add(1);
            let warning = state.warning.observe(rule.warning.as_ref(), v, now);
            let critical = state.critical.observe(rule.critical.as_ref(), v, now);
            let (level, cause) = if state.value_samples < u64::from(rule.min_samples) {
                (State::Unknown, Cause::WarmUp)
            } else if critical {
                (State::Critical, Cause::Value)
            } else if warning {
                (State::Warning, Cause::Value)
            } else if state.level != State::Ok && breach_pending(rule, v) {
                // A breaching sample never reads as ok: while its `for`/`count` is pending,
                // hold the level the rule had (unknown at start-up or after a failed probe,
                // critical while a warning is still pending on the way down).
                (state.level, Cause::Value)
            } else {
                (State::Ok, Cause::Value)
            };
            (level, cause, Some(v))
        }
        Sample::Failed => (State::from(rule.on_error), Cause::ProbeFailed, None),
        Sample::Value(_) | Sample::Missing => {
            (State::from(rule.on_missing), Cause::ValueMissing, None)
        }
    };
    state.value = value;
    state.level = level;

    let flap_change = match &rule.flapping {
        Some(config) if cause != Cause::WarmUp => state.flap.record(config, level),
        Some(_) => None,
        None => {
            state.flap.clear();
            None
        }
    };
    let to = if state.flap.is_flapping() {
        State::Flapping
    } else {
        level
    };
    let from = state.reported;
    if to == from {
        return None;
    }
    let reason = match flap_change {
        Some(FlapChange::Started) => TransitionReason::FlappingStarted,
        Some(FlapChange::Stopped) => TransitionReason::FlappingStopped,
        // Flapping was switched off for the rule (a reload dropped `flapping`).
        None if from == State::Flapping => TransitionReason::FlappingStopped,
        None => match cause {
            Cause::ProbeFailed => TransitionReason::ProbeFailed,
            Cause::ValueMissing => TransitionReason::ValueMissing,
            Cause::WarmUp => TransitionReason::NotEnoughSamples,
            Cause::Value => value_reason(from, to),
        },
    };
    state.reported = to;
    state.since = now;
    Some(Transition {
        from,
        to,
        at: now,
        value,
        reason,
    })
}

/// Whether `v` breaches a configured level's `when` (entered or not).
fn breach_pending(rule: &RuleConfig, v: f64) -> bool {
    [&rule.warning, &rule.critical]
        .into_iter()
        .flatten()
        .any(|level| level.when.holds(v))
}

/// The reason for a change to `to` caused by a value (outside the warm-up).
fn value_reason(from: State, to: State) -> TransitionReason {
    match (from, to) {
        (_, State::Ok) | (State::Critical, State::Warning) => TransitionReason::Recovered,
        _ => TransitionReason::ThresholdCrossed,
    }
}
