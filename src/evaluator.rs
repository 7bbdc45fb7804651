//! The evaluator: observations in, rule transitions and status snapshots out, with warden's
//! own metrics and logs on the way. One [`Evaluator`] per process runs the pipeline's
//! deciding half the same way for `warden run` (with metrics, logs and the actions task),
//! `warden once` and `warden watch` (quiet, in the foreground), and a future `warden gate`.
//!
//! [`Evaluator`] is synchronous: it wraps the [`Engine`] (the pure state), the metric handles
//! of the current config ([`Recorder`]) and the check-change log. [`run`] is the daemon's task
//! around it: it drains the observation channel, hands transitions to the actions task,
//! publishes status snapshots for the HTTP server, and switches configs when `app` says so.
//! It never probes, never touches the store and never waits on the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::check::Observation;
use crate::clock::{Clock, Timestamp};
use crate::config::{Config, RuleConfig, Trigger};
use crate::engine::{CheckChange, Engine, Reconfigured, RuleTransition, SloMinutes, Status};
use crate::rule::State;
use crate::server::Shared;
use crate::telemetry::table::{CheckRow, RuleRow};
use crate::telemetry::{Metrics, SeriesGauge};

/// How often the daemon's evaluator looks whether to publish a status snapshot, and beats.
const PUBLISH_EVERY: Duration = Duration::from_millis(500);

/// How old the published status may grow with `checks` checks (when something changed): every
/// look up to 2,500 checks, then 200 µs a check (2 s at 10,000), at most 10 s. A snapshot
/// walks every check and rule, so at 10,000 checks one every 500 ms was a tenth of warden's
/// CPU (perf, docs/performance.md).
pub fn status_every(checks: usize) -> Duration {
    (Duration::from_micros(200) * u32::try_from(checks).unwrap_or(u32::MAX))
        .clamp(PUBLISH_EVERY, Duration::from_secs(10))
}

/// The engine plus what the daemon records around it.
pub struct Evaluator {
    engine: Engine,
    /// Metric handles of the current config; `None` for `once` and `watch`.
    recorder: Option<Recorder>,
    /// Log checks going down and coming back (the daemon); `once` and `watch` print instead.
    log_changes: bool,
    /// Where SLO minutes go as they close, to be stored (the daemon); `None`: not kept.
    slo_minutes: Option<mpsc::UnboundedSender<Vec<SloMinutes>>>,
}

impl Evaluator {
    /// The daemon's evaluator: records into `metrics` and logs check changes.
    pub fn recording(config: &Config, metrics: &Metrics, now: Timestamp) -> Evaluator {
        Evaluator {
            engine: Engine::new(config, now),
            recorder: Some(Recorder::new(config, metrics)),
            log_changes: true,
            slo_minutes: None,
        }
    }

    /// A foreground evaluator (`once`, `watch`): no metrics, no logs.
    pub fn quiet(config: &Config, now: Timestamp) -> Evaluator {
        Evaluator {
            engine: Engine::new(config, now),
            recorder: None,
            log_changes: false,
            slo_minutes: None,
        }
    }

    /// Applies one observation: metrics and the check-change log first, then every rule of
    /// its check steps. Returns the rules' transitions.
    pub fn observe(&mut self, obs: Observation, now: Timestamp) -> Vec<RuleTransition> {
        if let Some(r) = &self.recorder {
            r.observation(&obs);
        }
        if self.log_changes {
            log_check_change(self.engine.check_change(&obs), &obs.check);
        }
        let check = obs.check.clone();
        let transitions = self.engine.apply(obs, now);
        if let Some(tx) = &self.slo_minutes {
            let closed = self.engine.take_slo_minutes(now);
            if !closed.is_empty() {
                let _ = tx.send(closed);
            }
        }
        if let Some(r) = &self.recorder {
            for t in &transitions {
                r.transition(t);
            }
            r.evaluated(&self.engine, &check, now);
        }
        transitions
    }

    /// Switches to `new` (see [`Engine::reconfigure`]); stale metric series are removed.
    pub fn reconfigure(&mut self, old: &Config, new: &Config, now: Timestamp) -> Reconfigured {
        let summary = self.engine.reconfigure(new, now);
        if let Some(r) = self.recorder.take() {
            self.recorder = Some(r.reconfigure(old, new, &self.engine));
        }
        summary
    }

    pub fn status(&self, now: Timestamp) -> Status {
        self.engine.status(now)
    }

    /// How many checks the config has.
    pub fn checks(&self) -> usize {
        self.engine.checks()
    }

    /// The series store `expr` rules read (the same one across reloads), for the query API.
    pub fn store(&self) -> crate::series::Shared {
        self.engine.store()
    }

    /// Whether applying `obs` may take long: it carries a scrape's samples, or rules with
    /// expressions follow its check.
    pub fn is_heavy(&self, obs: &Observation) -> bool {
        obs.scraped.is_some() || self.engine.has_expressions(&obs.check)
    }

    /// SLO minutes are sent to `tx` as they close (to be stored).
    pub fn keep_slo_minutes(&mut self, tx: mpsc::UnboundedSender<Vec<SloMinutes>>) {
        self.slo_minutes = Some(tx);
    }

    /// See [`Engine::load_slo_history`].
    pub fn load_slo_history(
        &mut self,
        history: impl IntoIterator<Item = (String, Vec<crate::slo::Bucket>)>,
        now: Timestamp,
    ) {
        self.engine.load_slo_history(history, now);
    }

    /// See [`Engine::seed`].
    pub fn seed(&mut self, series: &[(String, crate::labels::Labels)], now: Timestamp) {
        self.engine.seed(series, now);
    }
}

/// Messages from the daemon to the evaluator.
pub(crate) enum Control {
    /// Switch the engine and the metric handles to `new`; reply with what was kept.
    Reconfigure {
        old: Box<Config>,
        new: Box<Config>,
        done: oneshot::Sender<Reconfigured>,
    },
}

/// The daemon's evaluator task: applies observations, hands transitions to the actions task,
/// publishes status snapshots, and switches configs when told to.
pub(crate) async fn run(
    mut evaluator: Evaluator,
    mut rx: mpsc::Receiver<Observation>,
    mut control: mpsc::Receiver<Control>,
    actions: Actions,
    shared: Arc<Shared>,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    let start = tokio::time::Instant::now();
    let mut published = start.checked_sub(PUBLISH_EVERY).unwrap_or(start);
    let multi_thread = tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            Some(Control::Reconfigure { old, new, done }) = control.recv() => {
                // Observations the stopped tasks sent before the swap belong to the old config.
                while let Ok(obs) = rx.try_recv() {
                    for t in evaluator.observe(obs, clock.now()) {
                        actions.transition(t).await;
                    }
                }
                let summary = evaluator.reconfigure(&old, &new, clock.now());
                actions.reconfigure(&new).await;
                shared.token.store(Arc::new(new.server.token.clone()));
                shared.status.store(Arc::new(evaluator.status(clock.now())));
                let _ = done.send(summary);
            }
            obs = rx.recv() => {
                let Some(obs) = obs else { break };
                let transitions = if evaluator.is_heavy(&obs) && multi_thread {
                    // A scrape's samples and the expressions over 100,000 series take tens of
                    // milliseconds: off the worker that runs every probe, which a replacement
                    // worker takes over meanwhile (checks stay on schedule).
                    tokio::task::block_in_place(|| evaluator.observe(obs, clock.now()))
                } else {
                    evaluator.observe(obs, clock.now())
                };
                for t in transitions {
                    actions.transition(t).await;
                }
                dirty = true;
            }
            tick = publish.tick() => {
                shared.beat();
                // On the ticks' own times, so `status_every` of 500 ms is every tick.
                if dirty && tick >= published + status_every(evaluator.checks()) {
                    shared.status.store(Arc::new(evaluator.status(clock.now())));
                    published = tick;
                    dirty = false;
                }
            }
        }
    }
    shared.status.store(Arc::new(evaluator.status(clock.now())));
}

/// Logs a check going down (with the probe's reason) or coming back; a check that stays as it
/// was logs nothing, so a target down for a day is one line, not one per run.
fn log_check_change(change: Option<CheckChange>, check: &str) {
    match change {
        Some(CheckChange::Failed { kind, message }) => {
            tracing::warn!(check = %check, kind, error = %message, "check failed")
        }
        Some(CheckChange::Recovered) => tracing::info!(check = %check, "check recovered"),
        None => {}
    }
}

/// Metric handles resolved once per config, so recording an observation does not hash labels.
struct Recorder {
    metrics: Metrics,
    checks: HashMap<String, CheckHandles>,
    rules: HashMap<String, RuleHandles>,
}

struct CheckHandles {
    row: Arc<CheckRow>,
    duration: prometheus::Histogram,
}

struct RuleHandles {
    row: Arc<RuleRow>,
}

/// `rule::State` as an index into `telemetry::table::STATES`.
fn state_index(s: State) -> usize {
    State::ALL.iter().position(|x| *x == s).unwrap_or(3)
}

impl Recorder {
    fn new(config: &Config, metrics: &Metrics) -> Self {
        metrics.checks_configured.set(config.checks.len() as i64);
        metrics.rules_configured.set(config.rules.len() as i64);
        let checks = config
            .checks
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    CheckHandles {
                        row: metrics.table.check(&c.name, c.kind.name()),
                        duration: metrics.check_duration.with_label_values(&[c.kind.name()]),
                    },
                )
            })
            .collect();
        let rules = config
            .rules
            .iter()
            .map(|r| {
                // A rule reading labelled series has no unlabelled series: its gauges are
                // the table's series, set per series in `refresh_rules`.
                let scalar = r.series.is_none();
                let thresholds = if scalar {
                    [&r.warning, &r.critical].map(|l| l.as_ref().map(|l| l.when.threshold))
                } else {
                    [None, None]
                };
                let row = metrics.table.rule(&r.name, scalar, thresholds);
                (r.name.clone(), RuleHandles { row })
            })
            .collect();
        Recorder {
            metrics: metrics.clone(),
            checks,
            rules,
        }
    }

    /// The recorder for `new`: series of checks and rules that are gone (or whose labels
    /// changed) are removed, thresholds re-exported, and every rule's gauges set from the
    /// engine, which already runs `new`.
    fn reconfigure(self, old: &Config, new: &Config, engine: &Engine) -> Recorder {
        let m = &self.metrics;
        // Series of checks and rules that are gone go; a check whose kind changed starts
        // over (`Table::check`), a rule keeps its state and transition counts, its thresholds
        // are the new ones and its value comes from the engine below.
        let checks: std::collections::HashSet<&str> =
            new.checks.iter().map(|c| c.name.as_str()).collect();
        let rules: std::collections::HashSet<&str> =
            new.rules.iter().map(|r| r.name.as_str()).collect();
        m.table
            .retain(|check| checks.contains(check), |rule| rules.contains(rule));
        for r in &old.rules {
            m.table.retain_series(&r.name, |_| false);
        }
        for slo in &old.slos {
            let _ = m.slo_budget_remaining.remove_label_values(&[&slo.name]);
            let mut windows: Vec<_> = slo.alerts.iter().flat_map(|a| [a.long, a.short]).collect();
            windows.dedup();
            for w in windows {
                let _ = m
                    .slo_burn_rate
                    .remove_label_values(&[&slo.name, &crate::config::format_duration(w)]);
            }
        }
        let recorder = Recorder::new(new, m);
        for check in &new.checks {
            recorder.refresh_rules(engine, &check.name);
            recorder.refresh_slos(engine, &check.name);
        }
        recorder
    }

    fn observation(&self, obs: &Observation) {
        let Some(h) = self.checks.get(&obs.check) else {
            return;
        };
        h.row
            .up
            .store(i64::from(obs.is_up()), std::sync::atomic::Ordering::Relaxed);
        h.duration.observe(obs.duration.as_secs_f64());
        h.row.last_duration.set(obs.duration.as_secs_f64());
        h.row.last_run.set(obs.at.as_secs_f64());
        h.row.run(match &obs.outcome {
            Ok(()) => "ok",
            Err(e) => e.kind.as_str(),
        });
        if let Err(e) = &obs.outcome {
            tracing::debug!(check = %obs.check, kind = e.kind.as_str(), error = %e.message, "probe failed");
        }
    }

    fn transition(&self, t: &RuleTransition) {
        let tr = &t.transition;
        if let Some(h) = self.rules.get(&t.rule) {
            h.row.transition(state_index(tr.to));
        }
        let value = tr
            .value
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into());
        let rule = format!("{}{}", t.rule, crate::labels::render(&t.labels));
        match tr.to {
            State::Ok => {
                tracing::info!(rule = %rule, check = %t.check, from = tr.from.as_str(), to = tr.to.as_str(), value = %value, reason = tr.reason.as_str(), "rule state changed")
            }
            _ => {
                tracing::warn!(rule = %rule, check = %t.check, from = tr.from.as_str(), to = tr.to.as_str(), value = %value, reason = tr.reason.as_str(), "rule state changed")
            }
        }
    }

    /// Refreshes the state and value gauges of the rules that read `check`, and the budget
    /// and burn rates of its SLOs.
    fn evaluated(&self, engine: &Engine, check: &str, now: Timestamp) {
        self.refresh_rules(engine, check);
        self.refresh_slos(engine, check);
        self.metrics.last_evaluation.set(now.as_secs_f64());
    }

    fn refresh_slos(&self, engine: &Engine, check: &str) {
        for (slo, evaluation) in engine.slos_of(check) {
            let Some(e) = evaluation else { continue };
            self.metrics
                .slo_budget_remaining
                .with_label_values(&[&slo.name])
                .set(e.budget_remaining);
            for w in &e.windows {
                self.metrics
                    .slo_burn_rate
                    .with_label_values(&[&slo.name, &crate::config::format_duration(w.window)])
                    .set(w.burn_rate);
            }
        }
    }

    fn refresh_rules(&self, engine: &Engine, check: &str) {
        for (rule, series) in engine.rules_of(check) {
            if rule.series.is_some() {
                let mut present = std::collections::HashSet::new();
                for (labels, state) in series {
                    let current = state.state();
                    let gauge = SeriesGauge {
                        states: State::ALL
                            .iter()
                            .map(|s| (s.as_str(), *s == current))
                            .collect(),
                        value: state.value(),
                    };
                    self.metrics.table.set_series(&rule.name, labels, gauge);
                    present.insert(labels);
                }
                self.metrics
                    .table
                    .retain_series(&rule.name, |labels| present.contains(labels));
                continue;
            }
            let Some((_, state)) = series.into_iter().next() else {
                continue;
            };
            if let Some(h) = self.rules.get(&rule.name) {
                h.row.set_state(state_index(state.state()));
                if let Some(v) = state.value() {
                    h.row.set_value(v);
                }
            }
        }
    }
}

/// The rule as `warden once` evaluates it: on a single sample, so every level triggers
/// immediately and recovers at once, and no warm-up or flap detection applies. A check failing
/// right now must not read "ok" because its rule wants four failures in a row.
pub fn single_sample_rule(rule: &RuleConfig) -> RuleConfig {
    let mut r = rule.clone();
    for level in [&mut r.warning, &mut r.critical].into_iter().flatten() {
        level.trigger = Trigger::Immediate;
        level.recover = Default::default();
    }
    r.min_samples = 1;
    r.flapping = None;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_of_many_checks_is_published_less_often_within_a_bound() {
        let ms = Duration::from_millis;
        assert_eq!(status_every(0), ms(500));
        assert_eq!(status_every(2_500), ms(500));
        assert_eq!(status_every(10_000), ms(2_000));
        assert_eq!(status_every(100_000), ms(10_000));
        assert_eq!(status_every(usize::MAX), ms(10_000));
    }

    #[test]
    fn the_table_indexes_states_as_the_rule_module_lists_them() {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, crate::telemetry::table::STATES);
        for s in State::ALL {
            assert_eq!(crate::telemetry::table::STATES[state_index(s)], s.as_str());
        }
    }
}
