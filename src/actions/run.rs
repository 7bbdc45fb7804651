//! The actions driver: owns the [`Alerts`] stage, the outbox and the hook guard, commits each
//! plan, and runs hook jobs.
//!
//! One task applies transitions, reconfigurations and ticks in order. A plan's records and
//! events are committed in one transaction before anything else happens; when the store
//! cannot write, the same batch is retried (1 s, doubling to 30 s) and nothing after it is
//! applied, so the order of pages is never changed and none is skipped. Hook jobs run in
//! their own tasks (one hook after the other within a job) and report back how each ended.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{AlertRecord, Alerts, HookJob, HookNote, HookResult, Plan, HOOK_RETRY};
use crate::alert::{AlertId, Event, Sink};
use crate::clock::{Clock, Timestamp};
use crate::command::{SilenceCommand, WindowCommand, WindowError};
use crate::config::notifier::NotifierConfig;
use crate::config::Config;
use crate::config::HookSpec;
use crate::engine::RuleTransition;
use crate::engine::Status;
use crate::hook;
use crate::labels::Labels;
use crate::notify;
use crate::outbox::{Fired, HookGuard, Outbox, OutboxConfig};
use crate::rule::State;
use crate::secret::Redactor;
use crate::series;
use crate::state::WindowRow;
use crate::state::{Batch, SkipReason, Store};
use crate::telemetry::Metrics;
use crate::window::{Effects, Facts, Refused, Run, RunState, StepHook, Windows};

/// Transitions waiting for the actions task; the evaluator waits when it is full.
const QUEUE: usize = 4096;
/// Transitions applied (and committed in one transaction) at most per batch.
const BATCH: usize = 256;
/// How often re-sends and delayed hooks are looked at.
const TICK: Duration = Duration::from_secs(1);
/// Retrying a batch the store would not take: first delay, and the cap.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
const COMMIT_RETRY_MAX: Duration = Duration::from_secs(30);

/// How `warden run` was started, beyond the config.
#[derive(Clone, Default)]
pub struct ActionsOptions {
    /// `--dry-run`: every hook records what it would run and runs nothing.
    pub dry_run: bool,
    /// Where the firing alerts are published (`Alerts::view`) after every change.
    pub publish: Option<Arc<ArcSwap<serde_json::Value>>>,
    /// `--deploy`: the deploy new incidents name, until `Actions::set_deploy`.
    pub deploy: Option<String>,
    /// What validation windows read (the rules' published states, the series store); without
    /// it every rule reads as not reported and every expression as without a result.
    pub facts: Option<WindowFacts>,
    /// Where the validation window runs are published (`GET /api/v1/windows`).
    pub publish_windows: Option<Arc<ArcSwap<serde_json::Value>>>,
    /// Where the silences are published (`GET /api/v1/silences`).
    pub publish_silences: Option<Arc<ArcSwap<serde_json::Value>>>,
}

/// Where validation windows read the rules' states and the scraped series.
#[derive(Clone)]
pub struct WindowFacts {
    /// The status snapshot the evaluator last published.
    pub status: Arc<dyn Fn() -> Arc<Status> + Send + Sync>,
    pub store: series::Shared,
}

/// [`Facts`] over one status snapshot and the store.
struct LiveFacts {
    status: Option<Arc<Status>>,
    store: Option<series::Shared>,
}

impl Facts for LiveFacts {
    fn rule(&self, name: &str) -> Vec<(Labels, State, Option<f64>)> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        status
            .rules
            .iter()
            .filter(|r| r.name == name)
            .map(|r| (r.series.clone().unwrap_or_default(), r.state, r.value))
            .collect()
    }

    fn eval(&self, expr: &str, t_ms: i64) -> Result<Option<f64>, String> {
        let Some(store) = &self.store else {
            return Ok(None);
        };
        let query = crate::promql::Query::parse(expr)?;
        let value = query
            .eval(&**store, t_ms)
            .map_err(|e| format!("evaluating {expr:?}: {e}"))?;
        match value {
            crate::promql::Value::Scalar(v) => Ok(Some(v)),
            crate::promql::Value::Vector(v) if v.is_empty() => Ok(None),
            crate::promql::Value::Vector(v) if v.len() == 1 => Ok(Some(v[0].value)),
            crate::promql::Value::Vector(v) => Err(format!(
                "{expr:?} returned {} series; a window's expression must return one (wrap it \
                 in sum(...) or max(...))",
                v.len()
            )),
            _ => Err(format!("{expr:?} is not an instant vector or a scalar")),
        }
    }

    fn budgets(&self) -> Vec<(String, Option<f64>)> {
        let Some(status) = &self.status else {
            return Vec::new();
        };
        status
            .slos
            .iter()
            .map(|s| (s.name.clone(), s.error_budget_remaining))
            .collect()
    }
}

enum Input {
    Transition(RuleTransition),
    Reconfigure(Box<Config>),
    Deploy(String),
    Window(WindowCommand),
    Ack {
        key: String,
        by: String,
        reply: crate::command::WindowReply,
    },
    AckLink {
        key: String,
        exp: i64,
        sig: String,
        reply: crate::command::WindowReply,
    },
    Silence(SilenceCommand),
}

/// A window hook ended: a canary step's weight hook (`step`), or an `on_success` hook (`None`).
struct StepDone {
    run: u64,
    step: Option<usize>,
    ok: bool,
    summary: String,
}

/// The evaluator's handle on the actions task.
#[derive(Clone)]
pub struct Actions {
    tx: mpsc::Sender<Input>,
}

impl Actions {
    /// Hands a transition over; waits while the queue is full (the store is slow or failing).
    pub async fn transition(&self, t: RuleTransition) {
        let _ = self.tx.send(Input::Transition(t)).await;
    }

    /// Switches notifiers, hooks and routes to `config`, after the transitions already sent.
    pub async fn reconfigure(&self, config: &Config) {
        let _ = self
            .tx
            .send(Input::Reconfigure(Box::new(config.clone())))
            .await;
    }

    /// Incidents opened by the transitions sent after this one name `deploy`.
    pub async fn set_deploy(&self, deploy: String) {
        let _ = self.tx.send(Input::Deploy(deploy)).await;
    }

    /// Acknowledges by a signed link; the reply comes once the acknowledgement is stored.
    pub async fn ack_link(
        &self,
        key: String,
        exp: i64,
        sig: String,
        reply: crate::command::WindowReply,
    ) {
        let _ = self
            .tx
            .send(Input::AckLink {
                key,
                exp,
                sig,
                reply,
            })
            .await;
    }

    /// Acknowledges a firing alert; the reply comes once the acknowledgement is stored.
    pub async fn ack(&self, key: String, by: String, reply: crate::command::WindowReply) {
        let _ = self.tx.send(Input::Ack { key, by, reply }).await;
    }

    /// Starts or aborts a validation window; the command's reply says how it went once the
    /// run is durably stored.
    pub async fn window(&self, command: WindowCommand) {
        let _ = self.tx.send(Input::Window(command)).await;
    }

    /// Adds or expires a silence; the command's reply says how it went once it is stored.
    pub async fn silence(&self, command: SilenceCommand) {
        let _ = self.tx.send(Input::Silence(command)).await;
    }
}

/// Opens the state store, starts the outbox with `config`'s notifiers, reports hook runs a
/// previous process left unfinished, and starts the actions task. Returns its handle and the
/// labelled series whose alerts fire (for `Engine::seed`), and the store (SLO history, which
/// `app` keeps). Fails when the store cannot
/// be opened (another warden holds it, the disk is unwritable): warden must not run without
/// the memory that keeps it from paging twice.
pub async fn spawn(
    config: &Config,
    options: ActionsOptions,
    clock: Clock,
    metrics: &Metrics,
    tracker: &TaskTracker,
    shutdown: CancellationToken,
) -> anyhow::Result<(Actions, Vec<(String, Labels)>, Store)> {
    let path = config.state.path.clone();
    let now = clock.now();
    let (store, recovery) = tokio::task::spawn_blocking(move || {
        create_parent(&path)?;
        Store::open(&path, now).map_err(anyhow::Error::from)
    })
    .await
    .context("opening the state store panicked")??;
    let records: BTreeMap<AlertId, AlertRecord> = store
        .load_alerts::<AlertRecord>()
        .await
        .context("reading alert states")?
        .into_iter()
        .collect();
    let (rows, next_window) = store
        .load_windows()
        .await
        .context("reading validation windows")?;
    let runs: Vec<Run> = rows
        .into_iter()
        .filter_map(|row| match serde_json::from_str::<Run>(&row.run) {
            Ok(run) => Some(run),
            Err(e) => {
                tracing::error!(id = row.id, window = %row.window, error = %e, "a stored validation window run does not decode; left out");
                None
            }
        })
        .collect();
    let windows = Windows::new(config, runs, next_window);
    for run in windows.runs().filter(|r| r.is_running()) {
        tracing::info!(id = run.id, window = %run.window, deploy = %run.deploy, "validation window resumes");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let instance = config.alerting.instance.clone();
    let identity = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.identity(instance.as_deref(), host.trim(), now))
            .await
            .context("reading the instance id panicked")??
    };
    tracing::info!(instance = %identity.instance, epoch = %identity.epoch, "dedup keys name this warden");
    // The key that signs acknowledgement links: drawn once from the kernel, kept in the file.
    let ack_key = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            use std::io::Read as _;
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .context("reading /dev/urandom for the acknowledgement link key")?;
            let fresh: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            Ok(store.ack_key(fresh)?)
        })
        .await
        .context("reading the acknowledgement key panicked")??
    };
    for (notifier, rows) in &recovery.pending {
        tracing::info!(notifier = %notifier, rows, "notifications left pending by the last run will be delivered");
    }
    let outbox = Outbox::new(
        store.clone(),
        OutboxConfig::default(),
        clock.clone(),
        metrics,
        tracker,
        shutdown.clone(),
    );
    let horizon = (now - super::silences::EXPIRED_RETENTION).as_millis();
    let (rows, next_silence) = store
        .load_silences(horizon)
        .await
        .context("reading silences")?;
    let silences: Vec<super::Silence> = rows
        .into_iter()
        .filter_map(|row| match serde_json::from_str(&row.silence) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(id = row.id, error = %e, "a stored silence does not decode; left out");
                None
            }
        })
        .collect();
    let groups: Vec<(String, super::GroupState)> = store
        .load_groups()
        .await
        .context("reading notification groups")?
        .into_iter()
        .filter_map(|(key, json)| match serde_json::from_str(&json) {
            Ok(g) => Some((key, g)),
            Err(e) => {
                tracing::error!(group = %key, error = %e, "a stored notification group does not decode; left out");
                None
            }
        })
        .collect();
    let opened = store.clone();
    let silence_store = store.clone();
    let guard = HookGuard::new(store, clock.clone(), metrics);
    guard.set_secrets(config.secret_values());
    let (mut alerts, mut plan) = Alerts::new(config, records, identity, clock.now());
    alerts.set_ack_key(ack_key.into_bytes());
    alerts.set_silences(silences, clock.now());
    alerts.set_groups(groups);
    let firing_series = alerts.firing_series();
    alerts.set_deploy(options.deploy);
    for event in guard.report_interrupted(&recovery) {
        let hook = event
            .hook
            .as_ref()
            .map(|h| h.hook.clone())
            .unwrap_or_default();
        let to = alerts.hook_notifiers(&event.id(), &hook);
        if !to.is_empty() {
            plan.events.push((event, to));
        }
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let (steps_tx, steps) = mpsc::unbounded_channel();
    let mut driver = Driver {
        windows,
        facts: options.facts,
        publish_windows: options.publish_windows,
        publish_silences: options.publish_silences,
        store: silence_store,
        next_silence,
        steps: steps_tx,
        pending_steps: Vec::new(),
        pending_success: Vec::new(),
        fed_baselines: Vec::new(),
        secrets: Redactor::new(config.secret_values()),
        alerts,
        outbox,
        guard,
        sinks: HashMap::new(),
        retired: HashMap::new(),
        dry_run: options.dry_run,
        forced_dry_run: options.dry_run,
        publish: options.publish,
        clock,
        metrics: metrics.clone(),
        tracker: tracker.clone(),
        jobs: jobs_tx,
        shutdown: shutdown.clone(),
    };
    driver.set_notifiers(config);
    // Runs the config no longer fits end now; the others warm up before judging no data.
    let now = driver.clock.now();
    let fx = driver.windows.resume(now);
    plan.extend(driver.window_effects(fx, now));
    driver.count_firing();
    let (warning, critical) = driver.alerts.firing_counts();
    tracing::info!(
        state = %config.state.path.display(),
        notifiers = config.alerting.notifiers.len(),
        hooks = config.alerting.hooks.len(),
        firing_warning = warning,
        firing_critical = critical,
        "alerting is running"
    );
    driver.execute(plan).await;
    // Supervised: if the task ever stops while warden runs (a panic), nothing pages any more.
    // Exit, so that the service manager restarts warden and the next start picks up from the
    // state file, rather than run on green and mute.
    driver.publish_windows();
    driver.publish_silences();
    for step in driver.windows.resume_steps() {
        tracing::info!(
            id = step.run,
            step = step.step + 1,
            weight = step.weight,
            "validation window resumes: setting its step's weight again"
        );
        driver.start_step(step);
    }
    let task = tokio::spawn(driver.drive(rx, jobs, steps));
    tracker.spawn(async move {
        let ended = task.await;
        if !shutdown.is_cancelled() {
            tracing::error!(
                outcome = ?ended.err(),
                "the actions task stopped: warden cannot page; exiting (status 70) to be restarted"
            );
            std::process::exit(70);
        }
    });
    Ok((Actions { tx }, firing_series, opened))
}

fn create_parent(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the state directory {}", dir.display()))?;
            tracing::info!(dir = %dir.display(), "created the state directory");
        }
    }
    Ok(())
}

/// What a hook job tells the driver.
pub(super) enum JobMsg {
    /// May `hook` run now for (rule, incident)? The answer is the hook as configured now and
    /// the dry-run setting, or `None`.
    Ask {
        alert: AlertId,
        incident: u64,
        hook: String,
        reply: oneshot::Sender<Option<(HookSpec, bool)>>,
    },
    /// How it ended.
    Finished {
        alert: AlertId,
        incident: u64,
        hook: String,
        result: HookResult,
    },
}

struct Driver {
    windows: Windows,
    facts: Option<WindowFacts>,
    publish_windows: Option<Arc<ArcSwap<serde_json::Value>>>,
    publish_silences: Option<Arc<ArcSwap<serde_json::Value>>>,
    /// Where silences are stored.
    store: Store,
    /// The id the next silence gets.
    next_silence: u64,
    steps: mpsc::UnboundedSender<StepDone>,
    /// Step hooks of runs not yet committed: started by `execute` after the commit.
    pending_steps: Vec<StepHook>,
    /// `on_success` hooks of runs whose pass is not yet committed: (run, hook).
    pending_success: Vec<(u64, String)>,
    /// Baseline series written for running runs (run id, labels), to mark stale at their end.
    fed_baselines: Vec<(u64, Labels)>,
    /// The config's secrets, redacted from step hooks' output.
    secrets: Redactor,
    alerts: Alerts,
    outbox: Outbox,
    guard: HookGuard,
    /// The running notifiers, kept while their config is unchanged.
    sinks: HashMap<String, (NotifierConfig, Arc<dyn Sink>)>,
    /// Notifiers a reload removed, kept for the resolves they are owed.
    retired: HashMap<String, (NotifierConfig, Arc<dyn Sink>)>,
    dry_run: bool,
    forced_dry_run: bool,
    publish: Option<Arc<ArcSwap<serde_json::Value>>>,
    clock: Clock,
    metrics: Metrics,
    tracker: TaskTracker,
    jobs: mpsc::UnboundedSender<JobMsg>,
    shutdown: CancellationToken,
}

impl Driver {
    async fn drive(
        mut self,
        mut rx: mpsc::Receiver<Input>,
        mut jobs: mpsc::UnboundedReceiver<JobMsg>,
        mut steps: mpsc::UnboundedReceiver<StepDone>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => break,
                Some(msg) = jobs.recv() => match msg {
                    JobMsg::Ask { alert, incident, hook, reply } => {
                        let permit = self.alerts.permit(&alert, incident, &hook);
                        let _ = reply.send(permit.map(|spec| (spec, self.dry_run)));
                    }
                    // The hook is free again: the plan starts the job that waited for it.
                    JobMsg::Finished { alert, incident, hook, result } => {
                        let now = self.clock.now();
                        let plan = self.alerts.hook_finished(&alert, incident, &hook, result, now);
                        self.execute(plan).await;
                    }
                },
                Some(done) = steps.recv() => {
                    let now = self.clock.now();
                    let fx = match done.step {
                        Some(step) => self.windows.step_done(done.run, step, done.ok, &done.summary, now),
                        None => self.windows.success_hook_done(done.run, &done.summary, now),
                    };
                    let plan = self.window_effects(fx, now);
                    self.execute(plan).await;
                }
                // Before new transitions: a stream of them must not starve re-sends.
                _ = tick.tick() => {
                    let now = self.clock.now();
                    let mut plan = self.alerts.tick(now);
                    self.feed_baselines(now);
                    let facts = self.facts();
                    let fx = self.windows.tick(now, &facts);
                    plan.extend(self.window_effects(fx, now));
                    self.execute(plan).await;
                    // A silence or maintenance window started or ended.
                    if self.alerts.take_stale() {
                        self.publish_silences();
                        self.count_firing();
                    }
                }
                input = rx.recv() => {
                    let Some(input) = input else { break };
                    // A burst (a network partition fails every check at once) is committed in
                    // batches: one fsync for up to BATCH inputs, applied in their order.
                    let mut plan = Plan::default();
                    let mut next = Some(input);
                    let mut taken = 0;
                    while let Some(input) = next.take() {
                        let now = self.clock.now();
                        match input {
                            Input::Transition(t) => {
                                plan.extend(self.alerts.transition(&t, now));
                                let tr = &t.transition;
                                let fx = self.windows.transition(&t.rule, &t.labels, tr.to, tr.value, now);
                                plan.extend(self.window_effects(fx, now));
                            }
                            Input::Reconfigure(config) => {
                                self.execute(std::mem::take(&mut plan)).await;
                                self.set_notifiers(&config);
                                self.guard.set_secrets(config.secret_values());
                                self.secrets = Redactor::new(config.secret_values());
                                plan = self.alerts.reconfigure(&config, now);
                                let fx = self.windows.reconfigure(&config, now);
                                plan.extend(self.window_effects(fx, now));
                            }
                            Input::Deploy(deploy) => self.alerts.set_deploy(Some(deploy)),
                            // Answered once the run is stored: apply what came before first.
                            Input::Window(command) => {
                                self.execute(std::mem::take(&mut plan)).await;
                                self.window_command(command, now).await;
                            }
                            Input::AckLink { key, exp, sig, reply } => {
                                self.execute(std::mem::take(&mut plan)).await;
                                let answer = match self.alerts.ack_by_link(&key, exp, &sig, now) {
                                    Ok((id, ack)) => {
                                        self.execute(ack).await;
                                        tracing::info!(alert = %id, "alert acknowledged by its link");
                                        Ok(serde_json::json!({"alert": id.to_string(), "acknowledged_by": "an acknowledgement link", "at": now.to_rfc3339()}))
                                    }
                                    Err(message) => Err(WindowError { status: 403, message }),
                                };
                                let _ = reply.send(answer);
                            }
                            Input::Ack { key, by, reply } => {
                                self.execute(std::mem::take(&mut plan)).await;
                                let answer = match self.alerts.ack(&key, &by, now) {
                                    Ok((id, ack)) => {
                                        self.execute(ack).await;
                                        tracing::info!(alert = %id, %by, "alert acknowledged: no repeats or further policy steps until it resolves or turns critical");
                                        Ok(serde_json::json!({"alert": id.to_string(), "acknowledged_by": by, "at": now.to_rfc3339()}))
                                    }
                                    Err(message) => Err(WindowError { status: 404, message }),
                                };
                                let _ = reply.send(answer);
                            }
                            Input::Silence(command) => {
                                self.execute(std::mem::take(&mut plan)).await;
                                self.silence_command(command, now).await;
                            }
                        }
                        taken += 1;
                        if taken < BATCH {
                            next = rx.try_recv().ok();
                        }
                    }
                    self.execute(plan).await;
                }
            }
        }
    }

    fn facts(&self) -> LiveFacts {
        LiveFacts {
            status: self.facts.as_ref().map(|f| (f.status)()),
            store: self.facts.as_ref().map(|f| f.store.clone()),
        }
    }

    /// Writes each running run's baseline into the series store as
    /// `warden_window_baseline{window, name, deploy}`, and the run itself as
    /// `warden_window_running{window, deploy, version} 1`, once a tick, so that rules can compare
    /// with it (`... > 2 * scalar(warden_window_baseline{window="post-deploy", name="p95"})`).
    /// Nothing is written while the store keeps no history (no expressions). A run that ended
    /// gets staleness markers, so its baseline stops matching at once.
    fn feed_baselines(&mut self, now: Timestamp) {
        let Some(facts) = &self.facts else {
            return;
        };
        let mut samples = Vec::new();
        let windows = &self.windows;
        self.fed_baselines.retain(|(id, labels)| {
            let running = windows.get(*id).is_some_and(|r| r.is_running());
            if !running {
                samples.push((labels.clone(), crate::promql::stale_nan()));
            }
            running
        });
        for run in self.windows.runs().filter(|r| r.is_running()) {
            // The deploy under way, so rules can select its version:
            // `... and on(version) warden_window_running{window="canary"}`.
            let mut running = Labels::new();
            running.insert(
                crate::promql::METRIC_NAME.into(),
                "warden_window_running".into(),
            );
            running.insert("window".into(), run.window.clone());
            running.insert("deploy".into(), run.deploy.clone());
            running.insert("version".into(), run.version.clone().unwrap_or_default());
            if !self.fed_baselines.iter().any(|(_, l)| *l == running) {
                self.fed_baselines.push((run.id, running.clone()));
            }
            samples.push((running, 1.0));
            for (name, value) in &run.baseline {
                let Some(value) = value else { continue };
                let mut labels = Labels::new();
                labels.insert(
                    crate::promql::METRIC_NAME.into(),
                    "warden_window_baseline".into(),
                );
                labels.insert("window".into(), run.window.clone());
                labels.insert("name".into(), name.clone());
                labels.insert("deploy".into(), run.deploy.clone());
                if !self.fed_baselines.iter().any(|(_, l)| *l == labels) {
                    self.fed_baselines.push((run.id, labels.clone()));
                }
                samples.push((labels, *value));
            }
        }
        if samples.is_empty() {
            return;
        }
        let mut store = facts.store.write().unwrap_or_else(|e| e.into_inner());
        if store.retention().is_zero() {
            return;
        }
        for (labels, value) in samples {
            store.append(labels, now.as_millis(), value);
        }
    }

    /// Turns what the windows did into a plan: verdicts become pages, hooks and messages
    /// (the alert stage's), holds go to the alert stage, changed runs are saved with them,
    /// and step hooks wait for the commit.
    fn window_effects(&mut self, fx: Effects, now: Timestamp) -> Plan {
        let mut plan = Plan::default();
        if fx.is_empty() && fx.ended.is_empty() && fx.marks.is_empty() {
            return plan;
        }
        for (window, verdict) in &fx.marks {
            self.metrics
                .window_marks
                .with_label_values(&[window, verdict.as_str()])
                .inc();
        }
        for (rule, until) in fx.hold {
            self.alerts.hold(&rule, Timestamp(until));
        }
        // A run that ended (with a verdict, aborted, superseded) holds no page any more.
        for run in fx.changed.iter().filter(|r| !r.is_running()) {
            if let Some(config) = self.windows.config(&run.window) {
                let still_held: Vec<String> = self
                    .windows
                    .runs()
                    .filter(|r| r.is_running() && r.id != run.id)
                    .filter_map(|r| self.windows.config(&r.window))
                    .flat_map(|c| c.hold.iter().cloned())
                    .collect();
                let release: Vec<String> = config
                    .hold
                    .iter()
                    .filter(|r| !still_held.contains(r))
                    .cloned()
                    .collect();
                self.alerts.release(&release);
            }
        }
        for run in &fx.ended {
            let reason = run.reason.as_deref().unwrap_or_default();
            match run.state {
                RunState::Passed => {
                    tracing::info!(id = run.id, window = %run.window, deploy = %run.deploy, %reason, "validation window passed")
                }
                RunState::Failed => {
                    tracing::warn!(id = run.id, window = %run.window, deploy = %run.deploy, %reason, "validation window failed")
                }
                _ => {
                    tracing::warn!(id = run.id, window = %run.window, deploy = %run.deploy, state = run.state.as_str(), %reason, "validation window ended without a verdict")
                }
            }
            plan.extend(self.alerts.window_ended(run, now));
        }
        plan.windows.extend(fx.changed);
        self.pending_steps.extend(fx.step_hooks);
        self.pending_success.extend(fx.success_hooks);
        plan
    }

    async fn window_command(&mut self, command: WindowCommand, now: Timestamp) {
        match command {
            WindowCommand::Start { start, reply } => {
                let facts = self.facts();
                let result = self.windows.start(&start, now, &facts);
                match result {
                    Ok((id, fx)) => {
                        let plan = self.window_effects(fx, now);
                        self.execute(plan).await;
                        if let Some(run) = self.windows.get(id) {
                            tracing::info!(id, window = %run.window, deploy = %run.deploy, "validation window started");
                        }
                        let _ = reply.send(Ok(self.run_view(id)));
                    }
                    Err(refused) => {
                        let status = match refused {
                            Refused::Unknown(_) => 404,
                            Refused::Busy { .. } => 409,
                            Refused::Invalid(_) => 400,
                            // The gate's verdict before any traffic moves: exit 2.
                            Refused::Budget(_) => 412,
                        };
                        let _ = reply.send(Err(WindowError {
                            status,
                            message: refused.to_string(),
                        }));
                    }
                }
            }
            WindowCommand::Abort { id, who, reply } => match self.windows.abort(id, now, &who) {
                Ok(fx) => {
                    let plan = self.window_effects(fx, now);
                    self.execute(plan).await;
                    tracing::info!(id, %who, "validation window aborted");
                    let _ = reply.send(Ok(self.run_view(id)));
                }
                Err(message) => {
                    let status = if self.windows.get(id).is_some() {
                        409
                    } else {
                        404
                    };
                    let _ = reply.send(Err(WindowError { status, message }));
                }
            },
        }
    }

    /// Adds or expires a silence: stored first, then applied (an expired one pages the alerts
    /// it muted that still fire, at once), then answered.
    async fn silence_command(&mut self, command: SilenceCommand, now: Timestamp) {
        let refuse = |status: u16, message: String| Err(WindowError { status, message });
        let (silence, reply) = match command {
            SilenceCommand::Add { request, reply } => {
                let request: super::SilenceRequest = match serde_json::from_value(request) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = reply.send(refuse(400, format!("the body is not a silence: {e}")));
                        return;
                    }
                };
                if self.alerts.silences_full() {
                    let message = format!(
                        "warden keeps at most {} silences (expired ones for 5 days); expire some",
                        super::silences::MAX_SILENCES
                    );
                    let _ = reply.send(refuse(409, message));
                    return;
                }
                match request.into_silence(self.next_silence, now) {
                    Ok(s) => (s, reply),
                    Err(e) => {
                        let _ = reply.send(refuse(400, e));
                        return;
                    }
                }
            }
            SilenceCommand::Expire { id, reply } => {
                // Changed on a copy: nothing changes unless it is stored.
                let Some(mut silence) = self.alerts.silence(id).cloned() else {
                    let _ = reply.send(refuse(404, format!("no silence {id}")));
                    return;
                };
                if let Err(e) = super::silences::expire(&mut silence, now) {
                    let _ = reply.send(refuse(409, e));
                    return;
                }
                (silence, reply)
            }
        };
        let row = crate::state::SilenceRow {
            id: silence.id,
            ends_at: silence.ends_at,
            silence: serde_json::to_string(&silence).unwrap_or_default(),
        };
        let horizon = (now - super::silences::EXPIRED_RETENTION).as_millis();
        if let Err(e) = self.store.save_silence(row, horizon).await {
            tracing::error!(error = %e, id = silence.id, "cannot store the silence");
            let _ = reply.send(refuse(503, format!("cannot store the silence: {e}")));
            return;
        }
        self.next_silence = self.next_silence.max(silence.id + 1);
        let view = silence.view(now);
        tracing::info!(
            id = silence.id,
            matchers = %silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            state = silence.state(now).as_str(),
            ends = %Timestamp(silence.ends_at),
            by = %silence.created_by,
            "silence stored"
        );
        self.alerts.add_silence(silence, now);
        let plan = self.alerts.unmute(now);
        self.execute(plan).await;
        self.publish_silences();
        self.count_firing();
        let _ = reply.send(Ok(view));
    }

    fn publish_silences(&self) {
        if let Some(publish) = &self.publish_silences {
            publish.store(Arc::new(self.alerts.silences_view(self.clock.now())));
        }
    }

    /// A run as the API shows it: the stored run, times also as RFC 3339, and for a failed
    /// run what its alert did (`actions`).
    fn run_view(&self, id: u64) -> serde_json::Value {
        let Some(run) = self.windows.get(id) else {
            return serde_json::Value::Null;
        };
        let mut v = serde_json::to_value(run).unwrap_or_default();
        if let Some(obj) = v.as_object_mut() {
            obj.insert(
                "started".into(),
                Timestamp(run.started_at).to_rfc3339().into(),
            );
            if let Some(end) = run.ended_at {
                obj.insert("ended".into(), Timestamp(end).to_rfc3339().into());
            }
            if let Some(config) = self.windows.config(&run.window) {
                obj.insert(
                    "ends".into(),
                    Timestamp(run.started_at + config.length().as_millis() as i64)
                        .to_rfc3339()
                        .into(),
                );
            }
            if let Some(actions) = self.alerts.window_actions(run) {
                obj.insert("actions".into(), actions);
            }
        }
        v
    }

    fn publish_windows(&self) {
        for (window, latest) in self.windows.states() {
            for state in RunState::ALL {
                self.metrics
                    .window_state
                    .with_label_values(&[&window, state.as_str()])
                    .set(i64::from(latest == Some(state)));
            }
        }
        if let Some(publish) = &self.publish_windows {
            let runs: Vec<serde_json::Value> =
                self.windows.runs().map(|r| self.run_view(r.id)).collect();
            publish.store(Arc::new(serde_json::json!({ "windows": runs })));
        }
    }

    /// Runs a canary step's weight hook (`WARDEN_WEIGHT`) in its own task; how it ended comes
    /// back as a [`StepDone`]. Not through the hook guard: setting a weight is not a
    /// once-per-incident action, and each step sets its own.
    fn start_step(&self, step: StepHook) {
        let Some(run) = self.windows.get(step.run) else {
            return;
        };
        let event = self
            .alerts
            .step_event(run, step.step, step.weight, self.clock.now());
        let what = format!("set weight {}", step.weight);
        self.spawn_window_hook(step.run, Some(step.step), &step.hook, event, what);
    }

    /// Runs a passed run's `on_success` hook (not through the guard: once per pass, recorded
    /// in the run's timeline, which is saved).
    fn start_success_hook(&self, run_id: u64, hook: &str) {
        let Some(run) = self.windows.get(run_id) else {
            return;
        };
        let event = self.alerts.success_event(run, self.clock.now());
        self.spawn_window_hook(run_id, None, hook, event, "ran".into());
    }

    /// Runs a window's hook in its own task; how it ended comes back as a [`StepDone`].
    fn spawn_window_hook(
        &self,
        run: u64,
        step: Option<usize>,
        hook: &str,
        event: Event,
        what: String,
    ) {
        let Some(spec) = self.alerts_hook(hook) else {
            let _ = self.steps.send(StepDone {
                run,
                step,
                ok: false,
                summary: format!("hook {hook:?} is not configured"),
            });
            return;
        };
        let dry_run = self.dry_run;
        let secrets = self.secrets.clone();
        let tx = self.steps.clone();
        let metrics = self.metrics.clone();
        self.tracker.spawn(async move {
            let out = hook::run(&spec.config, &event, dry_run, &secrets).await;
            let result = out.result();
            metrics
                .hook_runs
                .with_label_values(&[&spec.config.name, result])
                .inc();
            let ok = out.error.is_none()
                && !out.outcome.timed_out
                && (out.outcome.dry_run || out.outcome.exit_code == Some(0));
            let name = &spec.config.name;
            let summary = match (&out.error, out.outcome.exit_code) {
                (Some(e), _) => format!("{name} could not run: {e}"),
                (None, _) if out.outcome.timed_out => format!("{name} timed out"),
                (None, Some(code)) => format!("{name} {what} ({result}, exit {code})"),
                (None, None) => format!("{name} {what} ({result})"),
            };
            let _ = tx.send(StepDone {
                run,
                step,
                ok,
                summary,
            });
        });
    }

    fn alerts_hook(&self, name: &str) -> Option<HookSpec> {
        self.alerts.hook_spec(name)
    }

    /// Builds the notifiers of `config` (keeping unchanged ones) and hands them to the outbox.
    /// A notifier that cannot be built keeps its previous version, if any.
    fn set_notifiers(&mut self, config: &Config) {
        self.dry_run = self.forced_dry_run || config.alerting.dry_run;
        let mut next = HashMap::new();
        for nc in &config.alerting.notifiers {
            match self.sinks.remove(&nc.name) {
                Some((old, sink)) if old == *nc => {
                    next.insert(nc.name.clone(), (old, sink));
                }
                previous => match notify::build(nc, &self.clock) {
                    Ok(sink) => {
                        next.insert(nc.name.clone(), (nc.clone(), Arc::from(sink)));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start notifier; its notifications wait in the outbox");
                        if let Some(previous) = previous {
                            next.insert(nc.name.clone(), previous);
                        }
                    }
                },
            }
        }
        // A notifier the reload removed keeps its sender (until warden stops): the incidents it
        // was told about get their resolves, and rows it had pending are delivered.
        for (name, (config, sink)) in std::mem::take(&mut self.sinks) {
            if !next.contains_key(&name) {
                tracing::info!(notifier = %name, "notifier removed from the config: it gets the resolves of what it was told, nothing new");
                self.retired.insert(name, (config, sink));
            }
        }
        for name in next.keys() {
            self.retired.remove(name);
        }
        self.sinks = next;
        let senders = self
            .sinks
            .values()
            .chain(self.retired.values())
            .map(|(_, s)| s.clone())
            .collect();
        self.outbox.set_sinks(senders);
    }

    fn count_firing(&self) {
        let (warning, critical) = self.alerts.firing_counts();
        let firing = &self.metrics.alerts_firing;
        firing.with_label_values(&["warning"]).set(warning as i64);
        firing.with_label_values(&["critical"]).set(critical as i64);
        if let Some(publish) = &self.publish {
            publish.store(Arc::new(self.alerts.view()));
        }
    }

    /// Commits the plan's records and events (retrying until the store takes them), then
    /// starts its hook jobs.
    async fn execute(&mut self, plan: Plan) {
        // Grouped alerts' pages join their groups; the groups' due notifications go out.
        let plan = self.alerts.grouped(plan, self.clock.now());
        if plan.is_empty() {
            return;
        }
        let Plan {
            records,
            events,
            hooks,
            unrouted,
            gone,
            windows,
            groups,
        } = plan;
        for (alert, notifier) in gone {
            tracing::warn!(alert = %alert, notifier = %notifier, "notifier no longer configured; not told");
        }
        let windows_changed = !windows.is_empty();
        if !records.is_empty() || !events.is_empty() || windows_changed || !groups.is_empty() {
            let batch = Batch {
                alerts: records
                    .into_iter()
                    .map(|(id, record)| (id, serde_json::to_value(record).unwrap_or_default()))
                    .collect(),
                events,
                windows: windows.iter().map(window_row).collect(),
                groups,
            };
            for (event, to) in &batch.events {
                tracing::info!(
                    alert = %event.title(),
                    kind = ?event.kind,
                    severity = event.severity.as_str(),
                    dedup_key = %event.dedup_key,
                    notifiers = %to.join(","),
                    "notification queued"
                );
            }
            if !commit(&self.outbox, batch, &self.metrics, &self.shutdown).await {
                return;
            }
        }
        self.count_firing();
        self.publish_windows();
        for step in std::mem::take(&mut self.pending_steps) {
            self.start_step(step);
        }
        for (run, hook) in std::mem::take(&mut self.pending_success) {
            self.start_success_hook(run, &hook);
        }
        for u in unrouted {
            tracing::warn!(
                alert = %u.alert,
                severity = %u.severity.as_str(),
                dedup_key = %u.dedup_key,
                fix = %u.fix(),
                "alert fired with no notifier on its route: nobody is told"
            );
        }
        for job in hooks {
            self.tracker.spawn(run_job(
                job,
                self.guard.clone(),
                self.outbox.clone(),
                self.clock.clone(),
                self.metrics.clone(),
                self.jobs.clone(),
                self.shutdown.clone(),
            ));
        }
    }
}

/// Commits `batch`, retrying while the store refuses it. `false` only when shutdown came
/// first (the batch is then not written: the next start derives it again from the rules).
async fn commit(
    outbox: &Outbox,
    batch: Batch,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> bool {
    let mut delay = COMMIT_RETRY;
    loop {
        match outbox.commit(batch.clone()).await {
            Ok(_) => return true,
            Err(e) => {
                metrics.state_write_failures.inc();
                tracing::error!(
                    error = %e,
                    retry_in_seconds = delay.as_secs(),
                    "cannot write alert states and notifications; retrying, nothing after them is applied until then"
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => {
                tracing::error!("shutting down with alert states unwritten; the next start re-evaluates them");
                return false;
            }
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(COMMIT_RETRY_MAX);
    }
}

/// The hooks a job holds and has not reported the end of. A job that ends without reporting
/// one (it panicked, or its task was dropped) would leave that hook busy in the stage until a
/// restart, and every alert sharing it waiting: on drop, each one still held is reported as
/// to be asked again [`HOOK_RETRY`] later, which frees it for the other alerts at once.
pub(super) struct Held {
    alert: AlertId,
    incident: u64,
    /// Not reported yet, in run order.
    hooks: Vec<String>,
    clock: Clock,
    driver: mpsc::UnboundedSender<JobMsg>,
    panics: prometheus::IntCounter,
}

impl Held {
    pub(super) fn new(
        job: &HookJob,
        clock: Clock,
        driver: mpsc::UnboundedSender<JobMsg>,
        metrics: &Metrics,
    ) -> Held {
        Held {
            alert: job.alert.clone(),
            incident: job.incident,
            hooks: job
                .hooks
                .iter()
                .map(|(s, _)| s.config.name.clone())
                .collect(),
            clock,
            driver,
            panics: metrics.task_panics.with_label_values(&["hook_job"]),
        }
    }

    /// Reports how `hook` ended; the job no longer holds it.
    pub(super) fn finish(&mut self, hook: &str, result: HookResult) {
        self.hooks.retain(|h| h != hook);
        let _ = self.driver.send(JobMsg::Finished {
            alert: self.alert.clone(),
            incident: self.incident,
            hook: hook.to_string(),
            result,
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.hooks.is_empty() {
            return;
        }
        if std::thread::panicking() {
            self.panics.inc();
            tracing::error!(
                alert = %self.alert,
                incident = self.incident,
                hooks = %self.hooks.join(","),
                "a hook job panicked before reporting its hooks; they are released and asked again later"
            );
        } else {
            // Dropped, not panicked: warden is stopping while the job ran (a hook outliving
            // the grace period is reported `interrupted` at the next start).
            tracing::info!(
                alert = %self.alert,
                incident = self.incident,
                hooks = %self.hooks.join(","),
                "a hook job stopped with warden before reporting its hooks"
            );
        }
        let retry = self.clock.now() + HOOK_RETRY;
        for hook in std::mem::take(&mut self.hooks) {
            let _ = self.driver.send(JobMsg::Finished {
                alert: self.alert.clone(),
                incident: self.incident,
                hook,
                result: HookResult::RetryAt(retry),
            });
        }
    }
}

/// Runs a job's hooks one after the other, notifies each outcome, reports each back. Before
/// each hook it asks the driver whether the alert still fires at the hook's level and how the
/// hook is configured now (a reload may have removed it or made it a dry run). A diagnostic
/// hook that could not run holds back the rest of the job: they are asked again later, after
/// it. Every hook of the job is reported exactly once, even if the job panics ([`Held`]).
async fn run_job(
    job: HookJob,
    guard: HookGuard,
    outbox: Outbox,
    clock: Clock,
    metrics: Metrics,
    driver: mpsc::UnboundedSender<JobMsg>,
    shutdown: CancellationToken,
) {
    let mut held = Held::new(&job, clock.clone(), driver.clone(), &metrics);
    let mut diagnosis_missing = false;
    for (spec, notify) in &job.hooks {
        let name = spec.config.name.clone();
        if diagnosis_missing && !spec.diagnostic {
            held.finish(&name, HookResult::RetryAt(clock.now() + HOOK_RETRY));
            continue;
        }
        let (reply, answer) = oneshot::channel();
        let ask = JobMsg::Ask {
            alert: job.alert.clone(),
            incident: job.incident,
            hook: name.clone(),
            reply,
        };
        let permit = match driver.send(ask) {
            Ok(()) => answer.await.ok().flatten(),
            Err(_) => None,
        };
        let Some((current, dry_run)) = permit else {
            tracing::info!(
                hook = %name,
                alert = %job.alert,
                incident = %job.trigger.dedup_key,
                "hook not run: the alert no longer fires at its level, or the hook was removed"
            );
            held.finish(&name, HookResult::Cancelled);
            diagnosis_missing |= spec.diagnostic;
            continue;
        };
        let result = match guard.fire(&current.config, &job.trigger, dry_run).await {
            Ok(Fired::Ran { run, event, .. }) => {
                let note = HookNote {
                    outcome: run.result().to_string(),
                    reason: run.error.clone(),
                    at: event.at.clone(),
                    verify: None,
                };
                notify_outcome(&outbox, event, notify, &metrics, &shutdown).await;
                HookResult::Done(Some(note))
            }
            Ok(Fired::Skipped(SkipReason::AlreadyRanForIncident { .. })) => HookResult::Done(None),
            // Not run for this incident at all: the people the page reached hear it, as they
            // would have heard the run's outcome, and the alert shows it.
            Ok(Fired::Skipped(reason @ SkipReason::CoolingDown { .. })) => {
                let why = reason.to_string();
                tracing::warn!(
                    hook = %name,
                    alert = %job.alert,
                    incident = %job.trigger.dedup_key,
                    reason = %why,
                    "hook not run for this incident: it ran less than its cooldown ago"
                );
                let now = clock.now();
                let dry = dry_run || current.config.dry_run;
                let event = hook::skipped_event(&job.trigger, &current.config, dry, &why, now);
                notify_outcome(&outbox, event, notify, &metrics, &shutdown).await;
                HookResult::Done(Some(HookNote {
                    outcome: "skipped".into(),
                    reason: Some(why),
                    at: now.to_rfc3339(),
                    verify: None,
                }))
            }
            // The stage hands a hook to one job at a time, so the store failed or still holds
            // a run whose end it could not record: ask again later.
            Ok(Fired::Skipped(SkipReason::AlreadyRunning { .. })) | Err(_) => {
                diagnosis_missing |= spec.diagnostic;
                HookResult::RetryAt(clock.now() + HOOK_RETRY)
            }
        };
        held.finish(&name, result);
    }
}

async fn notify_outcome(
    outbox: &Outbox,
    event: Event,
    to: &[String],
    metrics: &Metrics,
    shutdown: &CancellationToken,
) {
    if to.is_empty() {
        return;
    }
    let batch = Batch {
        alerts: Vec::new(),
        events: vec![(event, to.to_vec())],
        ..Batch::default()
    };
    commit(outbox, batch, metrics, shutdown).await;
}

fn window_row(run: &Run) -> WindowRow {
    WindowRow {
        id: run.id,
        window: run.window.clone(),
        state: run.state.as_str().to_string(),
        started_at: run.started_at,
        // A run of strings, numbers and maps always serialises.
        run: serde_json::to_string(run).expect("a window run encodes as JSON"),
    }
}
