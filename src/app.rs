//! Wiring: the one place that builds the pipeline and spawns long-lived tasks.
//!
//! `run` is the daemon: bind the listener, prepare probes, start the scheduler, the evaluator
//! and the HTTP server, apply config reloads one at a time, and stop everything within a grace
//! period when cancelled. `once` runs every check a single time and evaluates rules on that one
//! sample. Stages never spawn tasks or own sockets of their own accord; they are handed what
//! they need here.
//!
//! A reload builds and validates the new config, prepares probes for the checks that are new or
//! changed, stops the tasks of changed and removed checks (and waits for them), hands the new
//! config to the evaluator (which keeps the state of everything unchanged), then starts the new
//! tasks. Any failure before the swap leaves the running config untouched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::actions::{self, Actions, ActionsOptions};
use crate::check::http::{self, HttpClients, KeepAlive};
use crate::check::Prober;
use crate::clock::Clock;
use crate::command::Command;
use crate::config::{self, CheckConfig, CheckKind, Config};
use crate::engine::{RuleTransition, Skipped, Status};
use crate::evaluator::{self, single_sample_rule, Control, Evaluator};
use crate::reload::{self, DeployId, Outcome};
use crate::scheduler::{self, Pulse, PulseReader, ScheduledCheck};
use crate::server::{self, Shared};
use crate::systemd;
use crate::telemetry::Metrics;
use crate::vitals::Vitals;

/// How long in-flight work may take to finish after SIGTERM.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long loading a config (reading, parsing and validating its files) may take, at startup
/// and on each reload. Loading reads only regular files within `config`'s limits, so only a
/// hung file system gets here; the load is then abandoned on its thread.
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Abandoned loads that may still be running while a new one starts; past that a reload fails
/// at once instead of starting yet another thread that may hang.
const ABANDONED_LOADS: usize = 2;
/// How often the evaluator publishes a fresh status snapshot (when something changed).
/// Observations buffered between the scheduler and the evaluator.
const OBSERVATION_QUEUE: usize = 4096;

/// Prepares a probe for every check; all setup errors are reported together. HTTP checks
/// that may keep their connection take their places from `keep_alive`.
pub fn prepare_checks(
    config: &Config,
    keep_alive: &KeepAlive,
) -> anyhow::Result<Vec<ScheduledCheck>> {
    prepare(config.checks.iter().map(|c| &**c), keep_alive)
}

/// The places for kept HTTP connections of a process running `config`: its
/// `keep_alive_targets`, within half the soft descriptor limit as it is now (read once, at
/// start: anything that raises the limit must do so before), and that limit.
pub fn keep_alive(config: &Config) -> (KeepAlive, Option<u64>) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let places = http::keep_alive_bound(config.keep_alive_targets, limit);
    (KeepAlive::new(places), limit)
}

fn prepare<'c>(
    checks: impl Iterator<Item = &'c CheckConfig>,
    keep_alive: &KeepAlive,
) -> anyhow::Result<Vec<ScheduledCheck>> {
    let mut prepared = Vec::new();
    let mut errors = Vec::new();
    let mut clients = HttpClients::new(keep_alive);
    for c in checks {
        match Prober::with_clients(c, &mut clients) {
            Ok(p) => prepared.push(ScheduledCheck::new(c, p)),
            Err(e) => errors.push(format!("check {}: {}", c.name, e.message)),
        }
    }
    if errors.is_empty() {
        Ok(prepared)
    } else {
        anyhow::bail!("{}", errors.join("\n"))
    }
}

/// Why a config could not be loaded.
#[derive(Debug)]
pub enum LoadFailure {
    /// The files were read and the config is not valid: every error, as `file:line:col`.
    Invalid(config::Diagnostics),
    /// Loading did not finish in time; it was abandoned.
    TimedOut(Duration),
    /// Earlier loads are still stuck; no new one was started.
    Stuck,
    /// Loading panicked (a bug).
    Panicked(String),
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadFailure::Invalid(diags) => write!(f, "{diags}"),
            LoadFailure::TimedOut(limit) => write!(
                f,
                "loading the config did not finish within {} s (a config file on a hung file system?)",
                limit.as_secs_f64()
            ),
            LoadFailure::Stuck => write!(
                f,
                "earlier config loads are still stuck reading files; not starting another"
            ),
            LoadFailure::Panicked(e) => write!(f, "loading the config panicked: {e}"),
        }
    }
}

/// Loads the config at `path` on a thread of its own and waits at most `within` for it. For
/// the command line, before any runtime exists: when it times out the process exits, and the
/// thread with it.
pub fn load_config(path: &std::path::Path, within: Duration) -> Result<Config, LoadFailure> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("warden-load".into())
        .spawn(move || {
            let _ = tx.send(config::load(&path));
        });
    if let Err(e) = spawned {
        return Err(LoadFailure::Panicked(format!("cannot start a thread: {e}")));
    }
    match rx.recv_timeout(within) {
        Ok(loaded) => loaded.map_err(LoadFailure::Invalid),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(LoadFailure::TimedOut(within)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(LoadFailure::Panicked("the loading thread stopped".into()))
        }
    }
}

/// Runs blocking `work` (a config load) on the blocking pool and waits at most `within` for
/// it. Each run holds one of `slots` until it really ends, so loads that were abandoned but
/// still run are counted: when none is left, this fails at once.
async fn bounded_load<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    within: Duration,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Result<T, LoadFailure> {
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        return Err(LoadFailure::Stuck);
    };
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    });
    match tokio::time::timeout(within, task).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => Err(LoadFailure::Panicked(e.to_string())),
        Err(_) => Err(LoadFailure::TimedOut(within)),
    }
}

/// Drops a runtime without waiting for blocking work that is still running (a config load
/// stuck on a hung file system must not hold up the exit). Call it after everything that
/// matters was awaited: `run` waits for its tasks within [`SHUTDOWN_GRACE`] before returning.
pub fn shut_down(runtime: tokio::runtime::Runtime) {
    runtime.shutdown_background();
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, so the daemon may hold as many
/// descriptors as its host grants it: one per probe in flight (each HTTP or TCP probe opens a
/// fresh connection), plus the listener, API clients, the state store and the file watcher.
/// The default soft limit (1024 on most hosts) is far below what thousands of checks with
/// slow targets can need. Logs the limit before and after at info; never fails: a refusal is
/// a warning and warden runs on with the limit it had. Children (hooks, exec checks) inherit
/// the raised limit.
pub fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let show = |v: Option<u64>| v.map_or_else(|| "unlimited".to_string(), |n| n.to_string());
    let before = getrlimit(Resource::Nofile);
    if before.current == before.maximum {
        tracing::info!(
            soft = %show(before.current),
            hard = %show(before.maximum),
            "open file descriptor limit already at its hard limit"
        );
        return;
    }
    let raised = Rlimit {
        current: before.maximum,
        maximum: before.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(
            before = %show(before.current),
            after = %show(getrlimit(Resource::Nofile).current),
            hard = %show(before.maximum),
            "raised the soft open file descriptor limit to the hard limit"
        ),
        Err(e) => tracing::warn!(
            soft = %show(before.current),
            hard = %show(before.maximum),
            error = %e,
            "could not raise the open file descriptor limit; running with the soft limit"
        ),
    }
}

/// Why `config` would give the daemon nothing to do, if it would: without a check nothing is
/// probed, evaluated or paged (an empty file, one of comments only, a truncated one). The
/// daemon refuses such a config at startup and on reload; `check-config` warns.
pub fn nothing_to_do(config: &Config) -> Option<String> {
    config.checks.is_empty().then(|| {
        format!(
            "{} (with its includes) defines no checks: warden would have nothing to do",
            config.path.display()
        )
    })
}

/// Why warden must not start on the default state file: it does not exist yet, but the file
/// earlier releases used by default for every config (`warden.db`) is there and no warden
/// holds it, so it may hold this config's open incidents, pending pages and hook cooldowns.
/// Starting on an empty store would re-number incidents into dedup keys already used and
/// could run a rollback again inside its cooldown. A legacy file another warden holds is that
/// warden's: this config starts its own.
pub fn unclaimed_legacy_state(state: &config::StateConfig) -> Option<String> {
    let legacy = state.legacy.as_ref()?;
    if state.path.exists() || !legacy.exists() || crate::state::held_by_a_warden(legacy) {
        return None;
    }
    Some(format!(
        "state file {path} does not exist, but {legacy} does: earlier releases kept every \
         config's state there by default. If it holds this config's state, move it (with its \
         -wal and -shm files) to {path}, or set [state] path = \"{legacy}\"; if it belongs to \
         another config, give this one its own file: [state] path = \"{path}\"",
        path = state.path.display(),
        legacy = legacy.display(),
    ))
}

/// Daemon settings that come from the command line rather than the config.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Reload when a config file changes (default). SIGHUP and `POST /-/reload` always work.
    pub watch_config: bool,
    /// `--dry-run`: hooks record what they would run and run nothing.
    pub dry_run: bool,
    /// `--deploy` (or `WARDEN_DEPLOY`): the deploy new incidents name until a reload marks
    /// another.
    pub deploy: Option<DeployId>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            watch_config: true,
            dry_run: false,
            deploy: None,
        }
    }
}

/// Loads every SLO's stored minutes into the evaluator, and starts the task that stores
/// them as they close (batched: one transaction for whatever closed meanwhile, off the
/// runtime). A write that fails is logged and the minutes are lost to the next restart,
/// never to the running budget. The minute in progress at shutdown is not stored.
async fn keep_slo_history(
    config: &Config,
    evaluator: &mut Evaluator,
    store: crate::state::Store,
    clock: &Clock,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let now = clock.now();
    let keep: Vec<(String, u32)> = config
        .slos
        .iter()
        .map(|s| {
            let from = crate::slo::minute_of(now).saturating_sub(crate::slo::minutes(s.period));
            (s.name.clone(), from)
        })
        .collect();
    let stored = store
        .load_slo_minutes(keep)
        .await
        .context("reading SLO history")?;
    evaluator.load_slo_history(
        stored.into_iter().map(|(slo, rows)| {
            let buckets = rows
                .into_iter()
                .map(|(minute, good, total)| crate::slo::Bucket {
                    minute,
                    good,
                    total,
                })
                .collect();
            (slo, buckets)
        }),
        now,
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<crate::engine::SloMinutes>>();
    evaluator.keep_slo_minutes(tx);
    let cancel = shutdown.clone();
    tracker.spawn(async move {
        loop {
            let first = tokio::select! {
                _ = cancel.cancelled() => break,
                batch = rx.recv() => match batch {
                    Some(b) => b,
                    None => break,
                },
            };
            let mut rows: Vec<crate::state::SloRows> = Vec::new();
            let mut add = |batch: Vec<crate::engine::SloMinutes>| {
                rows.extend(batch.into_iter().map(|m| crate::state::SloRows {
                    slo: m.slo,
                    minutes: m.minutes.iter().map(|b| (b.minute, b.good, b.total)).collect(),
                    keep_from: m.keep_from,
                }));
            };
            add(first);
            while let Ok(more) = rx.try_recv() {
                add(more);
            }
            if let Err(e) = store.save_slo_minutes(rows).await {
                tracing::warn!(error = %e, "storing SLO minutes failed; the budget keeps them until restart");
            }
        }
    });
    Ok(())
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    options: RunOptions,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(why) = nothing_to_do(&config) {
        anyhow::bail!("{why}; add a [[check]]");
    }
    for warning in config.warnings() {
        tracing::warn!(%warning, "config");
    }
    if let Some(why) = unclaimed_legacy_state(&config.state) {
        anyhow::bail!("{why}");
    }
    let metrics = Metrics::new();
    metrics.start_time.set(clock.now().as_secs_f64());
    let (keep_alive, descriptor_limit) = keep_alive(&config);
    log_keep_alive(&config, &keep_alive, descriptor_limit);
    let checks = prepare_checks(&config, &keep_alive)?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listen on {}", config.server.listen))?;
    let listen = listener.local_addr().unwrap_or(config.server.listen);

    let mut evaluator = Evaluator::recording(&config, &metrics, clock.now());
    let shared = Arc::new(Shared::new(evaluator.status(clock.now()), metrics.clone()));
    shared.token.store(Arc::new(config.server.token.clone()));
    let _ = shared.series.set((evaluator.store(), clock.clone()));

    let tracker = TaskTracker::new();
    let (actions, firing_series, store) = actions::spawn(
        &config,
        ActionsOptions {
            dry_run: options.dry_run,
            publish: Some(shared.alerts.clone()),
            deploy: options.deploy.map(DeployId::into_string),
            facts: Some(actions::WindowFacts {
                status: {
                    let shared = shared.clone();
                    Arc::new(move || shared.status.load_full())
                },
                store: evaluator.store(),
            }),
            publish_windows: Some(shared.windows.clone()),
            publish_silences: Some(shared.silences.clone()),
        },
        clock.clone(),
        &metrics,
        &tracker,
        shutdown.clone(),
    )
    .await?;
    evaluator.seed(&firing_series, clock.now());
    keep_slo_history(&config, &mut evaluator, store, &clock, &tracker, &shutdown).await?;
    // The SLOs' budgets as the stored history has them, for a window's budget floor before
    // the SLOs' checks report again.
    shared.status.store(Arc::new(evaluator.status(clock.now())));
    let (observations, observed) = mpsc::channel(OBSERVATION_QUEUE);
    let (control, controlled) = mpsc::channel(1);
    let (reload_tx, mut reload_rx) = mpsc::channel(8);
    let (command_tx, mut command_rx) = mpsc::channel(8);
    let _ = shared.commands.set(command_tx);
    serve_on_own_thread(listener, shared.clone(), shutdown.clone(), &tracker)?;
    tracker.spawn(evaluator::run(
        evaluator,
        observed,
        controlled,
        actions.clone(),
        shared.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    let pulse = Arc::new(Pulse::default());
    let ctx = scheduler::Context {
        observations,
        clock: clock.clone(),
        metrics: metrics.clone(),
        pulse: pulse.clone(),
    };
    let (files_tx, files_rx) = watch::channel(config.files.clone());
    tracker.spawn(reload::on_sighup(reload_tx.clone(), shutdown.clone()));
    let (armed_tx, armed) = oneshot::channel();
    if options.watch_config {
        tracker.spawn(reload::watch_files(
            files_rx,
            reload_tx,
            shutdown.clone(),
            armed_tx,
        ));
    } else {
        drop(armed_tx);
    }
    if let Some(period) = systemd::watchdog_period() {
        tracker.spawn(systemd::watchdog(
            period,
            Vitals {
                shared: shared.clone(),
                pulse: pulse.clone(),
                reader: PulseReader::Watchdog,
                metrics: metrics.clone(),
                clock: clock.clone(),
            },
            shutdown.clone(),
        ));
    }
    // The outbound heartbeat: idle without `[heartbeat]`, reconfigured by reloads.
    let (heartbeat, heartbeat_config) = watch::channel(config.heartbeat.clone());
    tracker.spawn(crate::heartbeat::run(
        heartbeat_config,
        Vitals {
            shared: shared.clone(),
            pulse: pulse.clone(),
            reader: PulseReader::Heartbeat,
            metrics: metrics.clone(),
            clock: clock.clone(),
        },
        shutdown.clone(),
    ));
    let scheduler = scheduler::spawn(&ctx, shutdown.child_token(), &tracker);
    tracker.spawn(trim_memory(TRIM_EVERY, shutdown.clone()));
    let mut daemon = Daemon {
        config,
        heartbeat,
        scheduler,
        metrics: metrics.clone(),
        control,
        actions,
        listen,
        loads: Arc::new(tokio::sync::Semaphore::new(1 + ABANDONED_LOADS)),
        keep_alive,
    };
    daemon.scheduler.start(checks);
    let hash = reload::fingerprint(&daemon.config.files);
    daemon.loaded(&clock, hash);
    // Ready once a config change from now on is seen (the watcher armed; bounded: a watcher
    // that cannot start has logged why, and SIGHUP and /-/reload still work).
    let _ = tokio::time::timeout(Duration::from_secs(5), armed).await;
    shared.ready.store(true, Ordering::Release);
    tracing::info!(
        %listen,
        checks = daemon.config.checks.len(),
        rules = daemon.config.rules.len(),
        config = %daemon.config.path.display(),
        config_hash = %format!("{hash:012x}"),
        "warden is running"
    );
    systemd::ready(&daemon.summary());

    loop {
        // Reloads from SIGHUP and the file watcher, and commands from the HTTP API, one at a
        // time in arrival order. A source that has stopped (no SIGHUP handler, no watcher) is
        // just not listened to any more.
        let request = tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(request) = reload_rx.recv() => request,
            Some(command) = command_rx.recv() => match command {
                Command::Reload(request) => request,
                // Answered by the actions task once the run is stored.
                Command::Window(command) => {
                    daemon.actions.window(command).await;
                    continue;
                }
                Command::Ack { key, by, reply } => {
                    daemon.actions.ack(key, by, reply).await;
                    continue;
                }
                Command::AckLink { key, exp, sig, reply } => {
                    daemon.actions.ack_link(key, exp, sig, reply).await;
                    continue;
                }
                // Answered by the actions task once the silence is stored.
                Command::Silence(command) => {
                    daemon.actions.silence(command).await;
                    continue;
                }
            },
        };
        systemd::reloading();
        // A reload never holds up shutdown (the load it waits on may be stuck).
        let outcome = tokio::select! {
            outcome = daemon.reload(request.trigger, &clock) => outcome,
            _ = shutdown.cancelled() => break,
        };
        if let Some(deploy) = request.deploy {
            daemon.mark_deploy(deploy, &outcome).await;
        }
        files_tx.send_replace(daemon.config.files.clone());
        systemd::ready(&daemon.summary());
        if let Some(reply) = request.reply {
            let _ = reply.send(outcome);
        }
    }
    systemd::stopping();
    tracing::info!("shutting down");
    tracker.close();
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

/// Logs how many origins may keep their HTTP connection, and why fewer than configured.
fn log_keep_alive(config: &Config, keep_alive: &KeepAlive, descriptor_limit: Option<u64>) {
    let limit = descriptor_limit.map_or_else(|| "unlimited".to_string(), |l| l.to_string());
    if keep_alive.total() < config.keep_alive_targets {
        tracing::warn!(
            keep_alive_targets = config.keep_alive_targets,
            places = keep_alive.total(),
            descriptor_limit = %limit,
            "fewer HTTP targets keep their connection than keep_alive_targets asks: at most \
             half the descriptor limit less {} go to kept connections; raise LimitNOFILE",
            http::DESCRIPTOR_RESERVE
        );
    } else {
        tracing::info!(
            places = keep_alive.total(),
            descriptor_limit = %limit,
            "HTTP targets probed at least every {}s keep their connection, up to this many",
            http::KEEP_ALIVE_MAX_INTERVAL.as_secs()
        );
    }
}

/// The running config and the tasks of its checks.
struct Daemon {
    config: Config,
    /// The heartbeat task's config; a reload sends it only when it changed.
    heartbeat: watch::Sender<Option<config::HeartbeatConfig>>,
    /// Runs the checks; told which start and stop.
    scheduler: scheduler::Handle,
    metrics: Metrics,
    control: mpsc::Sender<Control>,
    /// Where a reload's deploy id goes.
    actions: Actions,
    /// The address the server is bound to. `server.listen` changes only at restart, so this,
    /// not the reloaded config's `listen`, decides whether a token is required.
    listen: std::net::SocketAddr,
    /// Config loads running, abandoned ones included (see [`bounded_load`]).
    loads: Arc<tokio::sync::Semaphore>,
    /// The places for kept HTTP connections, shared by every config generation: a reload's
    /// new probes take the places its replaced probes gave back.
    keep_alive: KeepAlive,
}

impl Daemon {
    /// Records a successfully loaded config (its files hashing to `hash`) in the metrics.
    fn loaded(&self, clock: &Clock, hash: u64) {
        let m = &self.metrics;
        m.config_reload_ok.set(1);
        m.config_reload_time.set(clock.now().as_secs_f64());
        m.config_hash.set(hash as f64);
        release_freed_memory();
    }

    /// One line for `systemctl status`.
    fn summary(&self) -> String {
        format!(
            "watching {} checks with {} rules",
            self.config.checks.len(),
            self.config.rules.len()
        )
    }

    /// Loads the config again and, if it is valid and different, switches to it.
    async fn reload(&mut self, trigger: reload::Trigger, clock: &Clock) -> Outcome {
        let outcome = match self.try_reload(clock).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.metrics.config_reload_ok.set(0);
                tracing::error!(
                    trigger = trigger.as_str(),
                    config = %self.config.path.display(),
                    "config reload failed; the running config stays in effect:\n{error}"
                );
                Outcome::Failed { error }
            }
        };
        self.metrics
            .config_reloads
            .with_label_values(&[outcome.result()])
            .inc();
        if let Outcome::Unchanged { .. } = outcome {
            tracing::info!(
                trigger = trigger.as_str(),
                "config unchanged; nothing to reload"
            );
        }
        outcome
    }

    /// After a reload that asked for it: incidents opened from now on name `deploy`. A failed
    /// reload changes nothing, the deploy included. Queued before the reload is answered, so
    /// every transition the evaluator sends after that answer names the new deploy.
    async fn mark_deploy(&self, deploy: DeployId, outcome: &Outcome) {
        if let Outcome::Failed { .. } = outcome {
            tracing::warn!(deploy = %deploy.as_str(), "deploy not marked: the reload failed");
            return;
        }
        tracing::info!(deploy = %deploy.as_str(), "deploy marked: new incidents name it");
        self.actions.set_deploy(deploy.into_string()).await;
    }

    async fn try_reload(&mut self, clock: &Clock) -> Result<Outcome, String> {
        let path = self.config.path.clone();
        // Reading and hashing files is blocking work: off the runtime, and bounded in time.
        let loaded = bounded_load(
            move || {
                config::load(&path).map(|c| {
                    let hash = reload::fingerprint(&c.files);
                    (c, hash)
                })
            },
            LOAD_TIMEOUT,
            &self.loads,
        )
        .await
        .map_err(|e| e.to_string())?;
        let (new, hash) = loaded.map_err(|diags| diags.to_string())?;
        token_guards(self.listen, &new.server)?;
        if let Some(why) = nothing_to_do(&new) {
            return Err(why);
        }
        if new == self.config {
            self.loaded(clock, hash);
            return Ok(Outcome::Unchanged { hash });
        }
        if new.server.listen != self.config.server.listen {
            tracing::warn!(
                running = %self.config.server.listen,
                configured = %new.server.listen,
                "server.listen changed; it takes effect when warden restarts"
            );
        }
        if new.keep_alive_targets != self.config.keep_alive_targets {
            tracing::warn!(
                running = self.keep_alive.total(),
                configured = new.keep_alive_targets,
                "keep_alive_targets changed; it takes effect when warden restarts"
            );
        }
        if new.log != self.config.log {
            tracing::warn!("log settings changed; they take effect when warden restarts");
        }
        if new.state != self.config.state {
            tracing::warn!(
                running = %self.config.state.path.display(),
                configured = %new.state.path.display(),
                "state.path changed; it takes effect when warden restarts"
            );
        }
        let old_checks: HashMap<&str, &Arc<CheckConfig>> = self
            .config
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c))
            .collect();
        let fresh: Vec<&CheckConfig> = new
            .checks
            .iter()
            .filter(|c| old_checks.get(c.name.as_str()) != Some(c))
            .map(|c| &**c)
            .collect();
        let prepared = prepare(fresh.into_iter(), &self.keep_alive).map_err(|e| e.to_string())?;

        // Nothing can fail from here on: stop what goes away, swap, start what is new.
        // By name through a map: a linear `Config::check` per check is quadratic, minutes
        // at 100,000 checks.
        let new_checks: HashMap<&str, &Arc<CheckConfig>> =
            new.checks.iter().map(|c| (c.name.as_str(), c)).collect();
        let stale: Vec<String> = self
            .config
            .checks
            .iter()
            .filter(|c| new_checks.get(c.name.as_str()) != Some(c))
            .map(|c| c.name.clone())
            .collect();
        self.stop_checks(stale).await;
        let (done, summary) = oneshot::channel();
        let swap = Control::Reconfigure {
            old: Box::new(self.config.clone()),
            new: Box::new(new.clone()),
            done,
        };
        if self.control.send(swap).await.is_err() {
            return Err("the evaluator has stopped".into());
        }
        let summary = summary.await.unwrap_or_default();
        self.scheduler.start(prepared);
        self.heartbeat.send_if_modified(|h| {
            let changed = *h != new.heartbeat;
            if changed {
                h.clone_from(&new.heartbeat);
            }
            changed
        });
        self.config = new;
        self.loaded(clock, hash);
        tracing::info!(
            checks_kept = summary.checks_kept,
            checks_changed = summary.checks_changed,
            checks_added = summary.checks_added,
            checks_removed = summary.checks_removed,
            rules_kept = summary.rules_kept,
            rules_reset = summary.rules_reset,
            rules_added = summary.rules_added,
            rules_removed = summary.rules_removed,
            config_hash = %format!("{hash:012x}"),
            "config reloaded"
        );
        for warning in self.config.warnings() {
            tracing::warn!(%warning, "config");
        }
        Ok(Outcome::Applied { hash })
    }

    /// Stops the checks of `names` and waits until they have stopped (each is bounded by its
    /// probe's timeout, so the wait is too).
    async fn stop_checks(&self, names: Vec<String>) {
        if names.is_empty() {
            return;
        }
        let n = names.len();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.scheduler.stop(names))
            .await
            .is_err()
        {
            tracing::warn!(
                checks = n,
                "old checks' probes did not stop within {} s",
                SHUTDOWN_GRACE.as_secs()
            );
        }
    }
}

/// The token rule of `check-config` (a listener beyond loopback requires `server.token`),
/// judged against the address the server is actually bound to. A reload cannot move the
/// socket, so a reloaded config with a loopback `listen` and no token must not drop the token
/// of a server that still listens on the network.
fn token_guards(bound: std::net::SocketAddr, server: &config::ServerConfig) -> Result<(), String> {
    if bound.ip().is_loopback() || server.token.is_some() {
        return Ok(());
    }
    Err(format!(
        "server.token: warden is listening on {bound}, beyond loopback (server.listen changes \
         only at restart), so the config must keep server.token or server.token_file"
    ))
}

/// Runs every check once, concurrently, and evaluates every rule on that sample.
///
/// A check of warden's own listener (`server.listen`) is not run: only `warden run` serves it,
/// so probing it here would report warden down on a healthy host. It is listed in
/// [`Status::skipped`] with the rules that read it.
pub async fn once(config: &Config, clock: &Clock) -> anyhow::Result<Status> {
    let mut single = config.clone();
    let (own, others): (Vec<Arc<CheckConfig>>, Vec<Arc<CheckConfig>>) = single
        .checks
        .drain(..)
        .partition(|c| probes_own_listener(c, config.server.listen));
    single.checks = others;
    let skipped: Vec<Skipped> = own
        .iter()
        .map(|c| Skipped {
            check: c.name.clone(),
            rules: config
                .rules
                .iter()
                .filter(|r| r.check == c.name)
                .map(|r| r.name.clone())
                .collect(),
            reason: format!(
                "probes warden's own listener {}, which only `warden run` serves",
                config.server.listen
            ),
        })
        .collect();
    single.rules = config
        .rules
        .iter()
        .filter(|r| single.check(&r.check).is_some())
        .map(|r| Arc::new(single_sample_rule(r)))
        .collect();
    // One probe per check: nothing to keep a connection for.
    let checks = prepare_checks(&single, &KeepAlive::none())?;
    let mut evaluator = Evaluator::quiet(&single, clock.now());
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = tokio::task::JoinSet::new();
    for check in checks {
        let clock = clock.clone();
        let limit = limit.clone();
        set.spawn(async move {
            let _permit = limit.acquire_owned().await;
            check
                .prober
                .observe(&check.name, check.timeout, &clock)
                .await
        });
    }
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(obs) => {
                evaluator.observe(obs, clock.now());
            }
            Err(e) => tracing::error!(error = %e, "probe task failed"),
        }
    }
    let mut status = evaluator.status(clock.now());
    status.skipped = skipped;
    Ok(status)
}

/// `warden query`: `rounds` rounds of every probe (the shortest check interval apart) into an
/// evaluator whose store keeps what `query` reads, then `query` at `at` (default: now, after
/// the last round). Returns the evaluation time and the value.
pub async fn query(
    config: &Config,
    clock: &Clock,
    query: &crate::promql::Query,
    at: Option<i64>,
    rounds: u32,
) -> anyhow::Result<(i64, crate::promql::Value)> {
    let checks = prepare_checks(config, &keep_alive(config).0)?;
    let every = config
        .checks
        .iter()
        .map(|c| c.interval)
        .min()
        .unwrap_or_default();
    let mut evaluator = Evaluator::quiet(config, clock.now());
    let store = evaluator.store();
    {
        let mut s = store.write().unwrap_or_else(|e| e.into_inner());
        let keep = s.retention().max(query.reach() + Duration::from_secs(60));
        s.set_retention(keep);
    }
    for round in 0..rounds {
        if round > 0 {
            tokio::time::sleep(every).await;
        }
        let mut set = tokio::task::JoinSet::new();
        for check in &checks {
            let (prober, name, timeout) = (check.prober.clone(), check.name.clone(), check.timeout);
            let clock = clock.clone();
            set.spawn(async move { prober.observe(&name, timeout, &clock).await });
        }
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(obs) => {
                    if let Err(e) = &obs.outcome {
                        eprintln!("warden: check {}: {e}", obs.check);
                    }
                    evaluator.observe(obs, clock.now());
                }
                Err(e) => tracing::error!(error = %e, "probe task failed"),
            }
        }
    }
    let t = at.unwrap_or_else(|| clock.now().as_millis());
    let value = query
        .eval(&*store, t)
        .map_err(|e| anyhow::anyhow!("evaluating {}: {e}", query.text()))?;
    Ok((t, value))
}

/// `warden watch`: probes every check of `config` in rounds, one interval (the first
/// check's) apart, in the foreground: no state store, no server, no paging. Each rule state
/// change goes to `report` with the probe's error when it failed. Returns when `cancel` fires.
pub async fn watch(
    config: &Config,
    clock: &Clock,
    cancel: &CancellationToken,
    mut report: impl FnMut(RuleTransition, Option<String>),
) -> anyhow::Result<()> {
    let checks = prepare_checks(config, &keep_alive(config).0)?;
    let Some(interval) = config.checks.iter().map(|c| c.interval).min() else {
        anyhow::bail!("nothing to watch: the config has no checks");
    };
    let mut evaluator = Evaluator::quiet(config, clock.now());
    let mut next = tokio::time::Instant::now();
    loop {
        for check in &checks {
            let probe = check.prober.observe(&check.name, check.timeout, clock);
            let obs = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                obs = probe => obs,
            };
            let error = obs
                .outcome
                .as_ref()
                .err()
                .map(|e| format!("{}: {}", e.kind.as_str(), e.message));
            for t in evaluator.observe(obs, clock.now()) {
                report(t, error.clone());
            }
        }
        // A round that overran its interval starts the next at once, never a burst to catch up.
        next = (next + interval).max(tokio::time::Instant::now());
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// Whether `check` probes warden's own HTTP listener: an `http` or `prometheus` URL (warden
/// answers `/api/v1/query` itself) or a `tcp` address on
/// `listen`'s port and address (any loopback name or address when `listen` is loopback or
/// unspecified).
pub fn probes_own_listener(check: &CheckConfig, listen: SocketAddr) -> bool {
    let url_of = |url: &str| match reqwest::Url::parse(url) {
        Ok(url) => match (url.host(), url.port_or_known_default()) {
            (Some(host), Some(port)) => Some((host.to_string(), port)),
            _ => None,
        },
        Err(_) => None,
    };
    let (host, port) = match &check.kind {
        CheckKind::Http(h) => match url_of(&h.url) {
            Some(hp) => hp,
            None => return false,
        },
        CheckKind::Prometheus(p) => match url_of(&p.url) {
            Some(hp) => hp,
            None => return false,
        },
        CheckKind::Tcp(t) => match t.address.rsplit_once(':') {
            Some((host, port)) => match port.parse::<u16>() {
                Ok(port) => (host.to_string(), port),
                Err(_) => return false,
            },
            None => return false,
        },
        _ => return false,
    };
    if port != listen.port() {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = listen.ip().is_loopback() || listen.ip().is_unspecified();
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == listen.ip() || (local && (ip.is_loopback() || ip.is_unspecified())),
        Err(_) => local && host.eq_ignore_ascii_case("localhost"),
    }
}

/// Runs the HTTP surface on a thread and a runtime of its own, so `/healthz`, `/metrics` and
/// the API answer while the worker that runs the probes is saturated (at 100,000 checks on two
/// cores a streamed `/metrics` otherwise waited for that worker once per piece: minutes). The
/// tracker waits for the thread at shutdown, as it waited for the task before.
fn serve_on_own_thread(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP thread's runtime")?;
    let listener = {
        let std = listener
            .into_std()
            .context("handing the listener to the HTTP thread")?;
        let _inside = runtime.enter();
        tokio::net::TcpListener::from_std(std).context("registering the listener")?
    };
    let thread = std::thread::Builder::new()
        .name("warden-http".into())
        .spawn(move || runtime.block_on(server::serve(listener, shared, shutdown)))
        .context("starting the HTTP thread")?;
    tracker.spawn(async move {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    });
    Ok(())
}

/// How often [`trim_memory`] hands freed heap back.
const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Every `every`, hands the heap freed since back to the kernel (on the blocking pool): each
/// probe, observation and scrape allocates and frees, and glibc keeps what they freed between
/// live allocations, so without it resident memory drifts up to the worst moment's.
async fn trim_memory(every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _ = tokio::task::spawn_blocking(release_freed_memory).await;
    }
}

/// Hands the heap that loading a config freed (the parsed TOML, the compiler's spans and
/// messages, the previous generation's checks after a reload) back to the kernel. glibc keeps
/// freed memory for reuse and returns only the top of its heap by itself, so without this a
/// warden of 10,000 checks carried the transient peak of its start for ever (about a third of
/// its resident memory). Once per load, never on a hot path.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) only releases free memory of the allocator's own arenas; it
    // reads and writes no memory of ours and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_of_warden_s_own_listener_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.toml");
        let mut text = String::from("[server]\nlisten = \"127.0.0.1:9731\"\n");
        let targets = [
            ("http", "url", "http://127.0.0.1:9731/healthz", true),
            ("http", "url", "http://localhost:9731/-/healthy", true),
            ("http", "url", "http://[::1]:9731/healthz", true),
            ("tcp", "address", "127.0.0.1:9731", true),
            ("tcp", "address", "localhost:9731", true),
            ("http", "url", "http://127.0.0.1:9732/healthz", false),
            ("http", "url", "http://10.0.0.1:9731/healthz", false),
            ("http", "url", "https://127.0.0.1/healthz", false),
            ("tcp", "address", "127.0.0.1:5432", false),
            // warden answers /api/v1/query itself.
            ("prometheus", "url", "http://127.0.0.1:9731", true),
            ("prometheus", "url", "http://127.0.0.1:9090", false),
        ];
        for (i, (kind, key, target, _)) in targets.iter().enumerate() {
            text.push_str(&format!(
                "[[check]]\nname = \"c{i}\"\nkind = \"{kind}\"\n{key} = \"{target}\"\n"
            ));
            if *kind == "prometheus" {
                text.push_str("expr = \"up\"\n");
            }
        }
        std::fs::write(&file, text).unwrap();
        let config = config::load_with_env(&file, &|_| None).unwrap();
        for (check, (_, _, target, own)) in config.checks.iter().zip(targets) {
            assert_eq!(
                probes_own_listener(check, config.server.listen),
                own,
                "{target}"
            );
        }
        // Listening on every address: any loopback name is warden itself.
        let any: SocketAddr = "0.0.0.0:9731".parse().unwrap();
        assert!(probes_own_listener(&config.checks[0], any));
        assert!(!probes_own_listener(&config.checks[5], any));
    }

    // Real threads blocked on a real FIFO, so real (short) time rather than paused time.

    fn mkfifo(path: &std::path::Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs")
            .success();
        assert!(ok, "mkfifo {}", path.display());
    }

    /// Opens the FIFO's write end and closes it: every reader blocked on it gets EOF.
    fn release(fifo: &std::path::Path) {
        let _ = std::fs::OpenOptions::new().write(true).open(fifo);
    }

    #[tokio::test]
    async fn a_stuck_load_is_abandoned_and_the_next_one_runs() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.toml");
        mkfifo(&fifo);
        // `std::fs::read` of a FIFO with no writer blocks in open(2): a load that never ends.
        let stuck = |fifo: &std::path::Path| {
            let fifo = fifo.to_path_buf();
            move || std::fs::read(&fifo).map(|b| b.len()).unwrap_or(0)
        };
        let slots = Arc::new(tokio::sync::Semaphore::new(2));
        let limit = Duration::from_millis(200);
        // The test's own bound: a load that is not abandoned would hang it.
        let abandoned = |got: Result<Result<usize, LoadFailure>, _>| match got {
            Ok(Err(LoadFailure::TimedOut(_))) => {}
            other => {
                release(&fifo);
                panic!("the stuck load was not abandoned: {other:?}");
            }
        };
        let bound = Duration::from_secs(5);
        abandoned(tokio::time::timeout(bound, bounded_load(stuck(&fifo), limit, &slots)).await);
        // The stuck load does not block the next one.
        assert_eq!(bounded_load(|| 7, limit, &slots).await.unwrap(), 7);
        // Once every slot is held by an abandoned load, a load fails at once.
        abandoned(tokio::time::timeout(bound, bounded_load(stuck(&fifo), limit, &slots)).await);
        let got = bounded_load(|| 7, limit, &slots).await;
        assert!(matches!(got, Err(LoadFailure::Stuck)), "{got:?}");
        // When the stuck loads end after all, their slots come back.
        release(&fifo);
        for _ in 0..100 {
            if slots.available_permits() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(slots.available_permits(), 2);
        assert_eq!(bounded_load(|| 8, limit, &slots).await.unwrap(), 8);
    }

    #[test]
    fn shutting_down_does_not_wait_for_a_stuck_load() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.toml");
        mkfifo(&fifo);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let reader = fifo.clone();
        // A load left running on the blocking pool, as `bounded_load` abandons one.
        runtime.spawn_blocking(move || std::fs::read(&reader).is_ok());
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            shut_down(runtime);
            let _ = done_tx.send(());
        });
        let finished = done.recv_timeout(Duration::from_secs(2));
        release(&fifo);
        assert!(
            finished.is_ok(),
            "shutting the runtime down waited for the stuck load"
        );
    }

    #[test]
    fn a_startup_load_runs_on_its_own_thread() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("warden.toml");
        std::fs::write(
            &config,
            "[[check]]\nname = \"x\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let loaded = load_config(&config, Duration::from_secs(10)).unwrap();
        assert_eq!(loaded.checks.len(), 1);
        let got = load_config(&dir.path().join("missing.toml"), Duration::from_secs(10));
        assert!(matches!(got, Err(LoadFailure::Invalid(_))), "{got:?}");
    }
}
