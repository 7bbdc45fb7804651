//! Hook policy and durability: at most once per incident, never two runs of one hook at once,
//! a cooldown between runs, and a `started` record committed before the process is spawned.
//!
//! Hooks are at-most-once (pages are at-least-once): a run that was `started` when warden died
//! is marked `interrupted` by `Store::open` and never re-run, because running a rollback twice
//! can do more harm than a rollback that a person has to finish. [`HookGuard::report_interrupted`]
//! logs each such run at error level, counts it, and returns events to notify.
//!
//! [`admit`] is the decision, a pure function of what the store knows; the store runs it inside
//! the transaction that records the start, so two callers can never both be admitted.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec};

use crate::alert::Event;
use crate::clock::{Clock, Timestamp};
use crate::hook::{self, HookConfig, HookRun};
use crate::telemetry::Metrics;

use super::store::{HookFinish, HookRunRecord, Recovery, Store, StoreError};

/// Attempts to record a hook run's end (500 ms, doubling: about 15 s in all).
const FINISH_ATTEMPTS: u32 = 5;

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

/// What [`HookGuard::fire`] did.
// One value per hook run, moved once: its size does not matter, boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Fired {
    /// The hook ran (or dry-ran); `event` tells people how it went.
    Ran {
        record: i64,
        run: HookRun,
        event: Event,
    },
    Skipped(SkipReason),
}

/// Runs hooks under the policy, recording each run in the store.
#[derive(Clone)]
pub struct HookGuard {
    store: Store,
    clock: Clock,
    runs: IntCounterVec,
    duration: HistogramVec,
}

impl HookGuard {
    pub fn new(store: Store, clock: Clock, metrics: &Metrics) -> Self {
        HookGuard {
            store,
            clock,
            runs: metrics.hook_runs.clone(),
            duration: metrics.hook_duration.clone(),
        }
    }

    /// Runs `hook` for `trigger` unless the policy says no. The incident is the trigger's
    /// dedup key. The run is recorded `started` (durably) before the process is spawned; if
    /// that write fails, nothing runs.
    pub async fn fire(
        &self,
        hook: &HookConfig,
        trigger: &Event,
        global_dry_run: bool,
    ) -> Result<Fired, StoreError> {
        let dry_run = hook.dry_run || global_dry_run;
        let admission = self
            .store
            .begin_hook_run(
                &hook.name,
                &trigger.dedup_key,
                self.clock.now(),
                hook.cooldown,
                dry_run,
                &hook.argv(),
                trigger,
            )
            .await;
        let record = match admission {
            Ok(Admission::Started { run }) => run,
            Ok(Admission::Skipped(reason)) => {
                self.runs.with_label_values(&[&hook.name, "skipped"]).inc();
                tracing::info!(
                    hook = %hook.name,
                    incident = %trigger.dedup_key,
                    reason = reason.as_str(),
                    "hook not run"
                );
                return Ok(Fired::Skipped(reason));
            }
            Err(e) => {
                self.runs.with_label_values(&[&hook.name, "error"]).inc();
                tracing::error!(hook = %hook.name, error = %e, "hook not run: cannot record its start");
                return Err(e);
            }
        };
        tracing::info!(
            hook = %hook.name,
            incident = %trigger.dedup_key,
            dry_run,
            command = %hook.display_command(),
            "running hook"
        );
        let run = hook::run(hook, trigger, global_dry_run).await;
        let result = run.result();
        self.runs.with_label_values(&[&hook.name, result]).inc();
        if !run.outcome.dry_run && run.error.is_none() {
            self.duration
                .with_label_values(&[&hook.name])
                .observe(run.outcome.duration_seconds);
        }
        match result {
            "success" | "dry_run" => tracing::info!(
                hook = %hook.name,
                result,
                exit_code = ?run.outcome.exit_code,
                duration_seconds = run.outcome.duration_seconds,
                "hook finished"
            ),
            _ => tracing::error!(
                hook = %hook.name,
                result,
                exit_code = ?run.outcome.exit_code,
                duration_seconds = run.outcome.duration_seconds,
                error = run.error.as_deref().unwrap_or(""),
                "hook failed"
            ),
        }
        let finish = HookFinish {
            exit_code: run.outcome.exit_code,
            timed_out: run.outcome.timed_out,
            stdout: run.stdout.clone(),
            stderr: run.stderr.clone(),
            error: run.error.clone(),
        };
        let now = self.clock.now();
        // Retried: a run left `started` blocks the hook ("already running") until a restart.
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=FINISH_ATTEMPTS {
            match self
                .store
                .finish_hook_run(record, now, finish.clone())
                .await
            {
                Ok(()) => break,
                Err(e) if attempt == FINISH_ATTEMPTS => {
                    // The row stays `started`: the next start marks it interrupted, never
                    // re-runs it; until then the hook counts as running.
                    tracing::error!(hook = %hook.name, error = %e, attempts = attempt, "cannot record the hook's end");
                }
                Err(e) => {
                    tracing::warn!(hook = %hook.name, error = %e, attempt, "cannot record the hook's end; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        let event = hook::hook_event(trigger, &run, now);
        Ok(Fired::Ran { record, run, event })
    }

    /// Logs and counts the runs a previous process left `started` (now `interrupted`), and
    /// returns one `Hook` event per run for the lead's notifiers.
    pub fn report_interrupted(&self, recovery: &Recovery) -> Vec<Event> {
        recovery
            .interrupted_hooks
            .iter()
            .map(|r| {
                self.runs.with_label_values(&[&r.hook, "interrupted"]).inc();
                tracing::error!(
                    hook = %r.hook,
                    incident = %r.incident,
                    started_at = %r.started_at,
                    "hook run was interrupted by a warden restart; it is not run again"
                );
                interrupted_event(r, self.clock.now())
            })
            .collect()
    }
}

fn interrupted_event(r: &HookRunRecord, now: Timestamp) -> Event {
    let outcome = crate::alert::HookOutcome {
        hook: r.hook.clone(),
        command: r.argv.join(" "),
        dry_run: r.dry_run,
        exit_code: None,
        timed_out: false,
        duration_seconds: now.since(r.started_at).as_secs_f64(),
        skipped: None,
    };
    let run = HookRun {
        outcome,
        argv: r.argv.clone(),
        env_names: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        error: Some(format!(
            "interrupted: warden stopped while it ran (started {}); not run again",
            r.started_at
        )),
    };
    let trigger = r.event.clone().unwrap_or_else(|| Event {
        value_name: None,
        kind: crate::alert::EventKind::Hook,
        alert: String::new(),
        check: String::new(),
        severity: crate::alert::Severity::Critical,
        value: None,
        threshold: None,
        condition: None,
        description: None,
        labels: Default::default(),
        since: r.started_at.to_rfc3339(),
        at: now.to_rfc3339(),
        deploy: None,
        dedup_key: r.incident.clone(),
        hook: None,
    });
    hook::hook_event(&trigger, &run, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventKind, Severity};
    use crate::hook::HookCommand;

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

    fn trigger(incident: u32) -> Event {
        Event {
            value_name: None,
            kind: EventKind::Firing,
            alert: "api-down".into(),
            check: "api".into(),
            severity: Severity::Critical,
            value: None,
            threshold: None,
            condition: None,
            description: None,
            labels: Default::default(),
            since: "2026-01-01T00:00:00.000Z".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            deploy: None,
            dedup_key: format!("warden/api-down/{incident}"),
            hook: None,
        }
    }

    #[tokio::test]
    async fn policy_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(Timestamp(1_000_000));
        let (store, _) = Store::open(&dir.path().join("w.db"), clock.now()).unwrap();
        let metrics = Metrics::new();
        let guard = HookGuard::new(store.clone(), clock.clone(), &metrics);
        let mut hook = HookConfig::new("rollback", HookCommand::Argv(vec!["true".into()]));
        hook.cooldown = Duration::from_secs(60);

        let first = guard.fire(&hook, &trigger(1), false).await.unwrap();
        let Fired::Ran { run, event, .. } = first else {
            panic!("first run skipped: {first:?}")
        };
        assert_eq!(run.result(), "success");
        assert_eq!(event.dedup_key, "warden/api-down/1/hook/rollback");
        // Same incident, even long after: never again.
        clock.advance(Duration::from_secs(3600));
        assert!(matches!(
            guard.fire(&hook, &trigger(1), false).await.unwrap(),
            Fired::Skipped(SkipReason::AlreadyRanForIncident { .. })
        ));
        // A new incident runs; the one after it waits out the cooldown.
        assert!(matches!(
            guard.fire(&hook, &trigger(2), false).await.unwrap(),
            Fired::Ran { .. }
        ));
        clock.advance(Duration::from_secs(30));
        assert!(matches!(
            guard.fire(&hook, &trigger(3), false).await.unwrap(),
            Fired::Skipped(SkipReason::CoolingDown { .. })
        ));
        // A dry run is counted apart and does not use up the real run.
        assert!(matches!(
            guard.fire(&hook, &trigger(3), true).await.unwrap(),
            Fired::Ran { .. }
        ));
        clock.advance(Duration::from_secs(31));
        assert!(matches!(
            guard.fire(&hook, &trigger(3), false).await.unwrap(),
            Fired::Ran { .. }
        ));
        let runs = store.hook_runs("rollback").await.unwrap();
        let summary: Vec<_> = runs
            .iter()
            .map(|r| (r.incident.as_str(), r.dry_run, r.state, r.exit_code))
            .collect();
        use super::super::store::HookRunState::Finished;
        assert_eq!(
            summary,
            [
                ("warden/api-down/1", false, Finished, Some(0)),
                ("warden/api-down/2", false, Finished, Some(0)),
                ("warden/api-down/3", true, Finished, None),
                ("warden/api-down/3", false, Finished, Some(0)),
            ]
        );
        let count = |o: &str| metrics.hook_runs.with_label_values(&["rollback", o]).get();
        assert_eq!(
            (count("success"), count("skipped"), count("dry_run")),
            (3, 2, 1)
        );
    }
}
