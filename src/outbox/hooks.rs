//! Hook policy and durability: at most once per incident, never two runs of one hook at once,
//! a cooldown between runs, and a `started` record committed before the process is spawned.
//!
//! Hooks are at-most-once (pages are at-least-once): a run that was `started` when warden died
//! is marked `interrupted` by `Store::open` and never re-run, because running a rollback twice
//! can do more harm than a rollback that a person has to finish. [`HookGuard::report_interrupted`]
//! logs each such run at error level, counts it, and returns events to notify.
//!
//! Whether a hook may run is `state::admit`'s decision, a pure function of what the store
//! knows; the store takes it inside the transaction that records the start, so two callers can
//! never both be admitted. This module runs what was admitted and records how it ended; it uses
//! `state`, never the other way round.

use std::time::Duration;

use prometheus::{HistogramVec, IntCounterVec};

use crate::alert::Event;
use crate::clock::{Clock, Timestamp};
use crate::hook::{self, HookConfig, HookRun};
use crate::secret::Redactor;
use crate::state::{Admission, HookFinish, HookRunRecord, Recovery, SkipReason, Store, StoreError};
use crate::telemetry::Metrics;

/// Attempts to record a hook run's end (500 ms, doubling: about 15 s in all).
const FINISH_ATTEMPTS: u32 = 5;

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
    /// The running config's secret values, redacted from every hook's output (set by the
    /// actions driver at start and on reload; shared by the guard's clones).
    secrets: std::sync::Arc<std::sync::RwLock<Redactor>>,
}

impl HookGuard {
    pub fn new(store: Store, clock: Clock, metrics: &Metrics) -> Self {
        HookGuard {
            store,
            clock,
            runs: metrics.hook_runs.clone(),
            duration: metrics.hook_duration.clone(),
            secrets: Default::default(),
        }
    }

    /// The config's secret values (the config's `secret_values`), redacted
    /// from the output of every hook run from now on.
    pub fn set_secrets(&self, secrets: Vec<String>) {
        if let Ok(mut s) = self.secrets.write() {
            *s = Redactor::new(secrets);
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
        let secrets = self.secrets.read().map(|s| s.clone()).unwrap_or_default();
        let run = hook::run(hook, trigger, global_dry_run, &secrets).await;
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
        not_helped: None,
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
        series: Default::default(),
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
        ack_url: None,
        group: None,
    });
    hook::hook_event(&trigger, &run, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventKind, Severity};
    use crate::hook::HookCommand;

    fn trigger(incident: u32) -> Event {
        Event {
            value_name: None,
            kind: EventKind::Firing,
            alert: "api-down".into(),
            series: Default::default(),
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
            ack_url: None,
            group: None,
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
        use crate::state::HookRunState::Finished;
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
