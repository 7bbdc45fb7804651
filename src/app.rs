//! Wiring: the one place that builds the pipeline and spawns long-lived tasks.
//!
//! `run` is the daemon: bind the listener, prepare probes, start the scheduler, the evaluator
//! and the HTTP server, and stop them all within a grace period when cancelled. `once` runs
//! every check a single time and evaluates rules on that one sample. Stages never spawn
//! tasks or own sockets of their own accord; they are handed what they need here.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use prometheus::{GaugeVec, IntGauge};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::check::{Observation, Prober};
use crate::clock::Clock;
use crate::config::{Config, RuleConfig, Trigger};
use crate::engine::{Engine, RuleTransition, Status};
use crate::rule::State;
use crate::scheduler::{self, ScheduledCheck};
use crate::server::{self, Shared};
use crate::telemetry::Metrics;

/// How long in-flight work may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How often the evaluator publishes a fresh status snapshot (when something changed).
const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Observations buffered between the scheduler and the evaluator.
const OBSERVATION_QUEUE: usize = 4096;

/// Prepares a probe for every check; all setup errors are reported together.
pub fn prepare_checks(config: &Config) -> anyhow::Result<Vec<ScheduledCheck>> {
    let mut checks = Vec::with_capacity(config.checks.len());
    let mut errors = Vec::new();
    let mut clients = crate::check::http::HttpClients::default();
    for c in &config.checks {
        match Prober::with_clients(c, &mut clients) {
            Ok(p) => checks.push(ScheduledCheck {
                config: c.clone(),
                prober: Arc::new(p),
            }),
            Err(e) => errors.push(format!("check {}: {}", c.name, e.message)),
        }
    }
    if errors.is_empty() {
        Ok(checks)
    } else {
        anyhow::bail!("{}", errors.join("\n"))
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(config: Config, clock: Clock, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    metrics.start_time.set(clock.now().as_secs_f64());
    let checks = prepare_checks(&config)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listen on {}", config.server.listen))?;
    let listen = listener.local_addr().unwrap_or(config.server.listen);

    let engine = Engine::new(&config, clock.now());
    let shared = Arc::new(Shared::new(engine.status(clock.now()), metrics.clone()));
    let recorder = Recorder::new(&config, &metrics);

    let tracker = TaskTracker::new();
    let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
    tracker.spawn(server::serve(listener, shared.clone(), shutdown.clone()));
    tracker.spawn(evaluate(
        engine,
        rx,
        recorder,
        shared.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    scheduler::spawn(
        checks,
        tx,
        clock.clone(),
        metrics.clone(),
        shutdown.clone(),
        &tracker,
    );
    tracker.close();
    shared.ready.store(true, Ordering::Release);
    tracing::info!(
        %listen,
        checks = config.checks.len(),
        rules = config.rules.len(),
        config = %config.path.display(),
        "warden is running"
    );

    shutdown.cancelled().await;
    tracing::info!("shutting down");
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = SHUTDOWN_GRACE.as_secs(),
            "tasks did not stop within the grace period"
        );
    }
    Ok(())
}

/// The evaluator: applies observations to the engine, records metrics and logs transitions,
/// publishes status snapshots.
async fn evaluate(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Observation>,
    recorder: Recorder,
    shared: Arc<Shared>,
    clock: Clock,
    cancel: CancellationToken,
) {
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            obs = rx.recv() => {
                let Some(obs) = obs else { break };
                let now = clock.now();
                recorder.observation(&obs);
                let check = obs.check.clone();
                for t in engine.apply(obs, now) {
                    recorder.transition(&t);
                }
                recorder.evaluated(&engine, &check, now);
                dirty = true;
            }
            _ = publish.tick() => {
                shared.beat();
                if dirty {
                    shared.status.store(Arc::new(engine.status(clock.now())));
                    dirty = false;
                }
            }
        }
    }
    shared.status.store(Arc::new(engine.status(clock.now())));
}

/// Metric handles resolved once per config, so recording an observation does not hash labels.
struct Recorder {
    metrics: Metrics,
    checks: HashMap<String, CheckHandles>,
    rules: HashMap<String, RuleHandles>,
}

struct CheckHandles {
    kind: &'static str,
    up: IntGauge,
    duration: prometheus::Histogram,
    last_duration: prometheus::Gauge,
    last_run: prometheus::Gauge,
}

struct RuleHandles {
    states: Vec<(State, IntGauge)>,
    value: prometheus::Gauge,
}

impl Recorder {
    fn new(config: &Config, metrics: &Metrics) -> Self {
        metrics.checks_configured.set(config.checks.len() as i64);
        metrics.rules_configured.set(config.rules.len() as i64);
        let checks = config
            .checks
            .iter()
            .map(|c| {
                let labels = [c.name.as_str(), c.kind.name()];
                (
                    c.name.clone(),
                    CheckHandles {
                        kind: c.kind.name(),
                        up: metrics.check_up.with_label_values(&labels),
                        duration: metrics.check_duration.with_label_values(&[c.kind.name()]),
                        last_duration: metrics.check_last_duration.with_label_values(&labels),
                        last_run: metrics.check_last_run.with_label_values(&labels),
                    },
                )
            })
            .collect();
        let rules = config
            .rules
            .iter()
            .map(|r| {
                set_thresholds(&metrics.rule_threshold, r);
                let states: Vec<(State, IntGauge)> = State::ALL
                    .iter()
                    .map(|s| {
                        let g = metrics.rule_state.with_label_values(&[&r.name, s.as_str()]);
                        g.set(i64::from(*s == State::Unknown));
                        (*s, g)
                    })
                    .collect();
                (
                    r.name.clone(),
                    RuleHandles {
                        states,
                        value: metrics.rule_value.with_label_values(&[&r.name]),
                    },
                )
            })
            .collect();
        Recorder {
            metrics: metrics.clone(),
            checks,
            rules,
        }
    }

    fn observation(&self, obs: &Observation) {
        let Some(h) = self.checks.get(&obs.check) else {
            return;
        };
        h.up.set(i64::from(obs.is_up()));
        h.duration.observe(obs.duration.as_secs_f64());
        h.last_duration.set(obs.duration.as_secs_f64());
        h.last_run.set(obs.at.as_secs_f64());
        let result = match &obs.outcome {
            Ok(()) => "ok",
            Err(e) => e.kind.as_str(),
        };
        self.metrics
            .check_runs
            .with_label_values(&[&obs.check, h.kind, result])
            .inc();
        if let Err(e) = &obs.outcome {
            tracing::debug!(check = %obs.check, kind = e.kind.as_str(), error = %e.message, "probe failed");
        }
    }

    fn transition(&self, t: &RuleTransition) {
        let tr = &t.transition;
        self.metrics
            .rule_transitions
            .with_label_values(&[&t.rule, tr.to.as_str()])
            .inc();
        let value = tr
            .value
            .map(|v| v.to_string())
            .unwrap_or_else(|| "none".into());
        match tr.to {
            State::Ok => {
                tracing::info!(rule = %t.rule, check = %t.check, from = tr.from.as_str(), to = tr.to.as_str(), value = %value, reason = ?tr.reason, "rule state changed")
            }
            _ => {
                tracing::warn!(rule = %t.rule, check = %t.check, from = tr.from.as_str(), to = tr.to.as_str(), value = %value, reason = ?tr.reason, "rule state changed")
            }
        }
    }

    /// Refreshes the state and value gauges of the rules that read `check`.
    fn evaluated(&self, engine: &Engine, check: &str, now: crate::clock::Timestamp) {
        for (rule, state) in engine.rules_of(check) {
            if let Some(h) = self.rules.get(&rule.name) {
                let current = state.state();
                for (s, g) in &h.states {
                    g.set(i64::from(*s == current));
                }
                if let Some(v) = state.value() {
                    h.value.set(v);
                }
            }
        }
        self.metrics.last_evaluation.set(now.as_secs_f64());
    }
}

fn set_thresholds(gauge: &GaugeVec, rule: &RuleConfig) {
    for (level, cfg) in [("warning", &rule.warning), ("critical", &rule.critical)] {
        if let Some(l) = cfg {
            gauge
                .with_label_values(&[&rule.name, level])
                .set(l.when.threshold);
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

/// Runs every check once, concurrently, and evaluates every rule on that sample.
pub async fn once(config: &Config, clock: &Clock) -> anyhow::Result<Status> {
    let checks = prepare_checks(config)?;
    let mut single = config.clone();
    single.rules = config.rules.iter().map(single_sample_rule).collect();
    let mut engine = Engine::new(&single, clock.now());
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for check in checks {
        let clock = clock.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            check
                .prober
                .observe(&check.config.name, check.config.timeout, &clock)
                .await
        });
    }
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(obs) => {
                engine.apply(obs, clock.now());
            }
            Err(e) => tracing::error!(error = %e, "probe task failed"),
        }
    }
    Ok(engine.status(clock.now()))
}
