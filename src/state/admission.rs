//! The hook admission decision: may a hook run now? At most once per incident, never two runs
//! of one hook at once, and not again before its cooldown has passed since its last run ended.
//!
//! [`admit`] is a pure function of what the store knows about the hook's runs and of `now`:
//! no I/O, no clock reads, no SQLite. The store gathers its inputs and applies the [`Verdict`]
//! inside the transaction that records the start ([`super::Store::begin_hook_run`]), so two
//! callers can never both be admitted; what it did is an [`Admission`].

use std::time::Duration;

use crate::clock::Timestamp;

/// Why a hook did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Another run of this hook (recorded as `run`) has not finished.
    AlreadyRunning { run: i64 },
    /// The hook already ran (or started and was interrupted) for this incident.
    AlreadyRanForIncident { run: i64 },
    /// The last run ended too recently: it may run again at `until`.
    CoolingDown { until: Timestamp, last: LastRun },
}

impl SkipReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::AlreadyRunning { .. } => "already_running",
            SkipReason::AlreadyRanForIncident { .. } => "already_ran_for_incident",
            SkipReason::CoolingDown { .. } => "cooling_down",
        }
    }
}

/// For people: `cooldown until 2026-12-07T10:00:00.000Z (last run ended
/// 2026-12-06T10:00:00.000Z, for warden/api-down/1)`.
impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::AlreadyRunning { run } => {
                write!(f, "another run (#{run}) has not finished")
            }
            SkipReason::AlreadyRanForIncident { run } => {
                write!(f, "already ran for this incident (run #{run})")
            }
            SkipReason::CoolingDown { until, last } => write!(
                f,
                "cooldown until {until} (last run ended {}, for {})",
                last.ended, last.incident
            ),
        }
    }
}

/// The hook's latest run, the one its cooldown counts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// When it ended (when it started, if it never ended).
    pub ended: Timestamp,
    /// The incident (dedup key) it ran for.
    pub incident: String,
}

/// The decision on one request to run a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Run,
    Skip(SkipReason),
}

/// What the store did with a request: recorded a start (run `run`), or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Started { run: i64 },
    Skipped(SkipReason),
}

/// Decides whether a hook may run now. `running` is a started, unfinished run of the hook;
/// `same_incident` an earlier run for this incident in any state; `last` the hook's run that
/// ended (or started, if it never ended) last.
pub fn admit(
    now: Timestamp,
    cooldown: Duration,
    running: Option<i64>,
    same_incident: Option<i64>,
    last: Option<LastRun>,
) -> Verdict {
    if let Some(run) = running {
        return Verdict::Skip(SkipReason::AlreadyRunning { run });
    }
    if let Some(run) = same_incident {
        return Verdict::Skip(SkipReason::AlreadyRanForIncident { run });
    }
    if let Some(last) = last {
        let until = last.ended + cooldown;
        if now < until {
            return Verdict::Skip(SkipReason::CoolingDown { until, last });
        }
    }
    Verdict::Run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_checks_running_then_incident_then_cooldown() {
        let t = Timestamp(100_000);
        let cd = Duration::from_secs(60);
        assert_eq!(admit(t, cd, None, None, None), Verdict::Run);
        let last = |ms: i64| LastRun {
            ended: Timestamp(ms),
            incident: "warden/api-down/1".into(),
        };
        assert_eq!(
            admit(t, cd, Some(4), Some(3), Some(last(100_000))),
            Verdict::Skip(SkipReason::AlreadyRunning { run: 4 })
        );
        assert_eq!(
            admit(t, cd, None, Some(3), None),
            Verdict::Skip(SkipReason::AlreadyRanForIncident { run: 3 })
        );
        let cooling = admit(t, cd, None, None, Some(last(50_000)));
        assert_eq!(
            cooling,
            Verdict::Skip(SkipReason::CoolingDown {
                until: Timestamp(110_000),
                last: last(50_000),
            })
        );
        let Verdict::Skip(reason) = cooling else {
            unreachable!()
        };
        assert_eq!(
            reason.to_string(),
            "cooldown until 1970-01-01T00:01:50.000Z (last run ended 1970-01-01T00:00:50.000Z, for warden/api-down/1)"
        );
        // The cooldown is over exactly at its end.
        assert_eq!(admit(t, cd, None, None, Some(last(40_000))), Verdict::Run);
        assert_eq!(
            admit(t, Duration::ZERO, None, None, Some(last(100_000))),
            Verdict::Run
        );
    }
}
