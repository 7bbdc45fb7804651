//! Validation windows at run time: pure, synchronous, `now` passed in.
//!
//! A [`Run`] is one window started for one deploy: its baseline (the window's named
//! expressions, evaluated once at the start over the data from before the deploy), one
//! [`MarkResult`] per mark, filled in as the marks come due, a timeline, and a state that
//! ends `passed`, `failed`, `inconclusive`, `aborted` or `superseded`. [`Windows`] holds the
//! runs and the window configs and turns what happens into [`Effects`] for the driver
//! (`actions::run`), which persists every changed run in the same transaction as the pages
//! it implies and runs the step hooks:
//!
//! - a mark comes due at `start + at` (later once if it was extended). Its verdict is
//!   `failed` when a required rule has a series at warning (unless `allow_warning`), critical
//!   or flapping, or an expectation is off its bound; `inconclusive` when one has no data (a
//!   rule with no series or an `unknown` one, an expression with no result, a baseline with
//!   no value, an evaluation error); else `passed`. No data is never a pass: the window's
//!   `extend` looks once more later, then its `no_data` policy decides (fail, pass with a
//!   warning in the timeline, or end inconclusive);
//! - a rule in `never_critical` at critical fails a running window at once (seen from the
//!   rule transitions and again at every tick, so one critical at the start counts too);
//! - a mark evaluated more than [`LATE`] after it was due (warden was down) is marked `late`:
//!   it is judged on the data there is;
//! - a canary step starts its traffic weight (`step_hook`, once per step per run) at its
//!   `from`, and the pages of the window's `hold` rules are held for `hold_for` from the start
//!   of the window and of each step;
//! - one run per service at a time: a second start is refused, or supersedes the first when
//!   asked.
//!
//! What to do about a verdict (the page, the rollback hooks, the success message) is the alert
//! stage's: a failed run is the alert `window/<name>{deploy="..."}` firing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::config::window::{Bound, NoData, WindowConfig};
use crate::config::Config;
use crate::labels::{self, Labels};
use crate::rule::State;

/// A mark evaluated this much after it was due is marked late.
pub const LATE: Duration = Duration::from_secs(15);
/// After a restart or a reload (rules restart from `unknown`, the series store may be empty),
/// how long a running run's marks that would be inconclusive wait for data before they are
/// judged: a mark with a verdict on real data is judged at once.
pub const WARM_UP: Duration = Duration::from_secs(120);
/// Finished runs kept in memory (and shown by `GET /api/v1/windows`); older ones stay only in
/// the state file.
pub const KEEP_FINISHED: usize = 100;

/// What a window run reads: the rules' states and the series store.
pub trait Facts {
    /// Every series of rule `name` now: labels, state, value. Empty: nothing reported yet.
    fn rule(&self, name: &str) -> Vec<(Labels, State, Option<f64>)>;
    /// `expr` evaluated at `t_ms`: its one value, `None` when it has no result.
    fn eval(&self, expr: &str, t_ms: i64) -> Result<Option<f64>, String>;
    /// Every SLO with its error budget remaining (`None` before its first evaluation).
    fn budgets(&self) -> Vec<(String, Option<f64>)> {
        Vec::new()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Running,
    Passed,
    Failed,
    Inconclusive,
    Aborted,
    Superseded,
}

impl RunState {
    pub const ALL: [RunState; 6] = [
        RunState::Running,
        RunState::Passed,
        RunState::Failed,
        RunState::Inconclusive,
        RunState::Aborted,
        RunState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Passed => "passed",
            RunState::Failed => "failed",
            RunState::Inconclusive => "inconclusive",
            RunState::Aborted => "aborted",
            RunState::Superseded => "superseded",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Passed => "passed",
            Verdict::Failed => "failed",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// One thing judged at a mark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `rule api-health`, `rule error-rate{route="/a"}`, `expect p95`.
    pub what: String,
    pub value: Option<f64>,
    /// The rule's state (`ok`, `warning`, ...), or for an expectation `ok`, `off` or
    /// `no_data`.
    pub level: String,
    /// For an expectation: the bound as written and as computed (`<= 1.2 * baseline.p95
    /// (0.36)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<String>,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A mark of a run: planned, then judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkResult {
    /// The offset as configured (`30m`).
    pub at: String,
    /// When it is (or was) due, ms since the epoch (moved by an extension).
    pub due: i64,
    /// For a canary step: its weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_at: Option<i64>,
    #[serde(default)]
    pub late: bool,
    #[serde(default)]
    pub extended: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    #[serde(default)]
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// ms since the epoch.
    pub at: i64,
    pub what: String,
}

/// One window run for one deploy. Stored as JSON in the state file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub window: String,
    pub service: String,
    pub deploy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub started_at: i64,
    pub state: RunState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Baseline values by name; `None`: no data at the start.
    #[serde(default)]
    pub baseline: BTreeMap<String, Option<f64>>,
    pub marks: Vec<MarkResult>,
    /// Steps whose weight hook was started.
    #[serde(default)]
    pub steps_started: usize,
    /// Passes with a warning (a mark passed for want of data under `no_data = "pass"`).
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub timeline: Vec<Entry>,
    /// What the start overrode of its window.
    #[serde(default)]
    pub overrides: Overrides,
}

impl Run {
    /// The placeholders its expressions and messages fill: `deploy`, `version`, `window` and
    /// the start's labels.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = self.labels.clone();
        vars.insert("deploy".into(), self.deploy.clone());
        vars.insert("version".into(), self.version.clone().unwrap_or_default());
        vars.insert("window".into(), self.window.clone());
        vars
    }

    /// The labels of this run's failure alert (`window/<name>`).
    pub fn alert_labels(&self) -> Labels {
        let mut l = Labels::new();
        l.insert("deploy".into(), self.deploy.clone());
        l
    }

    pub fn is_running(&self) -> bool {
        self.state == RunState::Running
    }

    fn note(&mut self, at: Timestamp, what: impl Into<String>) {
        self.timeline.push(Entry {
            at: at.as_millis(),
            what: what.into(),
        });
    }

    fn end(&mut self, state: RunState, reason: impl Into<String>, now: Timestamp) {
        let reason = reason.into();
        self.note(now, format!("{}: {reason}", state.as_str()));
        self.state = state;
        self.reason = Some(reason);
        self.ended_at = Some(now.as_millis());
    }
}

/// A request to start a window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Start {
    pub window: String,
    pub deploy: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Supersede a running window of the same service instead of being refused.
    #[serde(default)]
    pub supersede: bool,
    /// This run's own no-data policy and extension, instead of the window's.
    #[serde(default)]
    pub overrides: Overrides,
}

/// What a start may change of its window for this run only: what a mark without data does
/// (`no_data`: fail, pass, inconclusive) and the one extension (`extend`, e.g. "10m").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend: Option<String>,
}

impl Overrides {
    fn no_data(&self) -> Result<Option<NoData>, String> {
        match self.no_data.as_deref() {
            None => Ok(None),
            Some("fail") => Ok(Some(NoData::Fail)),
            Some("pass") => Ok(Some(NoData::Pass)),
            Some("inconclusive") => Ok(Some(NoData::Inconclusive)),
            Some(other) => Err(format!(
                "overrides.no_data {other:?}: expected fail, pass or inconclusive"
            )),
        }
    }

    fn extend(&self) -> Result<Option<Duration>, String> {
        match self.extend.as_deref() {
            None => Ok(None),
            Some(text) => match crate::config::parse_duration(text) {
                Ok(d) if !d.is_zero() => Ok(Some(d)),
                _ => Err(format!(
                    "overrides.extend {text:?}: expected a duration above 0, e.g. \"10m\""
                )),
            },
        }
    }
}

/// Why a window did not start.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// No such `[[window]]`.
    Unknown(String),
    /// A run of the same service is running (and `supersede` was not asked).
    Busy { running: u64, window: String },
    /// The request is malformed (a label name, a value).
    Invalid(String),
    /// An SLO has less error budget left than the window's `budget_floor`.
    Budget(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unknown(w) => write!(f, "no [[window]] named {w:?} in the config"),
            Refused::Busy { running, window } => write!(
                f,
                "window {running} ({window}) of the same service is running; abort it, wait \
                 for it, or start with supersede"
            ),
            Refused::Invalid(why) | Refused::Budget(why) => f.write_str(why),
        }
    }
}

/// A step's weight to set.
#[derive(Debug, Clone, PartialEq)]
pub struct StepHook {
    pub run: u64,
    pub step: usize,
    pub hook: String,
    pub weight: u32,
}

/// What the driver must do after a change.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// Runs that changed: persist them (with the plan their verdicts imply).
    pub changed: Vec<Run>,
    /// Runs that ended with a verdict this time (failed, passed, inconclusive).
    pub ended: Vec<Run>,
    pub step_hooks: Vec<StepHook>,
    /// (run, hook): `on_success` hooks of runs that passed, to run once.
    pub success_hooks: Vec<(u64, String)>,
    /// Hold pages of (rule) until (ms).
    pub hold: Vec<(String, i64)>,
    /// Marks judged: (window, verdict), for `warden_window_marks_total`.
    pub marks: Vec<(String, Verdict)>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty()
            && self.step_hooks.is_empty()
            && self.success_hooks.is_empty()
            && self.hold.is_empty()
    }

    fn changed(&mut self, run: &Run) {
        self.changed.retain(|r| r.id != run.id);
        self.changed.push(run.clone());
    }
}

/// The windows of the config and their runs.
pub struct Windows {
    configs: BTreeMap<String, Arc<WindowConfig>>,
    runs: BTreeMap<u64, Run>,
    next_id: u64,
    /// Running runs whose facts are fresh only since a restart or reload: until when an
    /// inconclusive mark waits instead of being judged ([`WARM_UP`]).
    warming: BTreeMap<u64, i64>,
}

impl Windows {
    /// From the runs the state file holds (`next_id`: one past the highest id ever used).
    pub fn new(config: &Config, runs: Vec<Run>, next_id: u64) -> Windows {
        let next = runs
            .iter()
            .map(|r| r.id + 1)
            .max()
            .unwrap_or(1)
            .max(next_id);
        let mut w = Windows {
            configs: BTreeMap::new(),
            runs: runs.into_iter().map(|r| (r.id, r)).collect(),
            next_id: next,
            warming: BTreeMap::new(),
        };
        w.set_config(config);
        w.trim();
        w
    }

    fn set_config(&mut self, config: &Config) {
        self.configs = config
            .windows
            .iter()
            .map(|w| (w.name.clone(), Arc::new(w.clone())))
            .collect();
    }

    /// Switches to `config`: a running window whose `[[window]]` was removed, or whose marks
    /// or baseline changed, is aborted (its marks would no longer mean what they meant at its
    /// start); the others warm up ([`WARM_UP`]: the rules restart from unknown).
    pub fn reconfigure(&mut self, config: &Config, now: Timestamp) -> Effects {
        self.set_config(config);
        self.resume(now)
    }

    /// After a restart (and a reload): aborts the running runs the config no longer fits, and
    /// lets the others warm up before an inconclusive mark is judged.
    pub fn resume(&mut self, now: Timestamp) -> Effects {
        let mut fx = Effects::default();
        for run in self.runs.values_mut().filter(|r| r.is_running()) {
            if let Some(why) = misfit(run, self.configs.get(&run.window).map(|c| &**c)) {
                run.end(RunState::Aborted, why, now);
                fx.changed(run);
                continue;
            }
            self.warming
                .insert(run.id, now.as_millis() + WARM_UP.as_millis() as i64);
        }
        fx
    }

    /// After a restart: the weight each running canary run's current step set, to be set
    /// again (a weight hook is idempotent; the previous process may have died between saving
    /// the step and running its hook).
    pub fn resume_steps(&self) -> Vec<StepHook> {
        let mut out = Vec::new();
        for run in self.runs.values().filter(|r| r.is_running()) {
            let Some(config) = self.configs.get(&run.window) else {
                continue;
            };
            let (Some(hook), Some(i)) = (&config.step_hook, run.steps_started.checked_sub(1))
            else {
                continue;
            };
            if let Some(step) = config.marks.get(i).and_then(|m| m.step) {
                out.push(StepHook {
                    run: run.id,
                    step: i,
                    hook: hook.clone(),
                    weight: step.weight,
                });
            }
        }
        out
    }

    pub fn get(&self, id: u64) -> Option<&Run> {
        self.runs.get(&id)
    }

    pub fn config(&self, window: &str) -> Option<&Arc<WindowConfig>> {
        self.configs.get(window)
    }

    /// Every run kept, newest first.
    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.runs.values().rev()
    }

    /// Runs in each state, per window of the config.
    pub fn states(&self) -> Vec<(String, Option<RunState>)> {
        self.configs
            .keys()
            .map(|name| {
                let latest = self.runs.values().rev().find(|r| &r.window == name);
                (name.clone(), latest.map(|r| r.state))
            })
            .collect()
    }

    /// Starts a run: takes the baseline, and with `supersede` ends the service's running one.
    pub fn start(
        &mut self,
        req: &Start,
        now: Timestamp,
        facts: &dyn Facts,
    ) -> Result<(u64, Effects), Refused> {
        let config = self
            .configs
            .get(&req.window)
            .cloned()
            .ok_or_else(|| Refused::Unknown(req.window.clone()))?;
        validate_start(req)?;
        if let Some(floor) = config.budget_floor {
            for (slo, left) in facts.budgets() {
                if !config.slos.is_empty() && !config.slos.contains(&slo) {
                    continue;
                }
                match left {
                    Some(left) if left < floor => {
                        return Err(Refused::Budget(format!(
                            "SLO {slo} has {:.1} % of its error budget left, below the window's \
                             floor of {:.1} %: not started (no traffic moved)",
                            left * 100.0,
                            floor * 100.0
                        )))
                    }
                    Some(_) => {}
                    None => {
                        return Err(Refused::Budget(format!(
                            "SLO {slo} has no error budget figure yet (no events counted): the \
                             window's budget_floor cannot be checked, not started"
                        )))
                    }
                }
            }
        }
        let mut fx = Effects::default();
        let running: Vec<u64> = self
            .runs
            .values()
            .filter(|r| r.is_running() && r.service == config.service)
            .map(|r| r.id)
            .collect();
        if let Some(&first) = running.first() {
            if !req.supersede {
                return Err(Refused::Busy {
                    running: first,
                    window: self.runs[&first].window.clone(),
                });
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        for old in running {
            let run = self.runs.get_mut(&old).expect("listed above");
            run.end(
                RunState::Superseded,
                format!("superseded by window {id} (deploy {})", req.deploy),
                now,
            );
            fx.changed(run);
        }
        let start = now.as_millis();
        let mut run = Run {
            id,
            window: config.name.clone(),
            service: config.service.clone(),
            deploy: req.deploy.clone(),
            version: req.version.clone(),
            labels: req.labels.clone(),
            started_at: start,
            state: RunState::Running,
            reason: None,
            ended_at: None,
            baseline: BTreeMap::new(),
            marks: config
                .marks
                .iter()
                .map(|m| MarkResult {
                    at: crate::config::format_duration(m.at),
                    due: start + m.at.as_millis() as i64,
                    weight: m.step.map(|s| s.weight),
                    evaluated_at: None,
                    late: false,
                    extended: false,
                    verdict: None,
                    items: Vec::new(),
                })
                .collect(),
            steps_started: 0,
            warnings: Vec::new(),
            timeline: Vec::new(),
            overrides: req.overrides.clone(),
        };
        let vars = run.vars();
        for (name, template) in &config.baseline {
            let value = match facts.eval(&template.render(&vars), start) {
                Ok(v) => v.filter(|v| v.is_finite()),
                Err(e) => {
                    run.note(now, format!("baseline {name}: {e}"));
                    None
                }
            };
            run.baseline.insert(name.clone(), value);
        }
        let base = if run.baseline.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = run
                .baseline
                .iter()
                .map(|(k, v)| format!("{k}={}", v.map_or("no data".to_string(), fmt)))
                .collect();
            format!("; baseline {}", parts.join(", "))
        };
        run.note(
            now,
            format!(
                "started for deploy {}{}{base}",
                run.deploy,
                run.version
                    .as_ref()
                    .map(|v| format!(" (version {v})"))
                    .unwrap_or_default()
            ),
        );
        for rule in &config.hold {
            fx.hold
                .push((rule.clone(), start + config.hold_for.as_millis() as i64));
        }
        self.runs.insert(id, run);
        self.advance(id, now, facts, &mut fx);
        let run = &self.runs[&id];
        fx.changed(run);
        self.trim();
        Ok((id, fx))
    }

    /// A step's weight hook ended: a failure (the traffic did not move as asked) fails the
    /// run.
    pub fn step_done(
        &mut self,
        id: u64,
        step: usize,
        ok: bool,
        summary: &str,
        now: Timestamp,
    ) -> Effects {
        let mut fx = Effects::default();
        let Some(run) = self.runs.get_mut(&id) else {
            return fx;
        };
        if !run.is_running() {
            return fx;
        }
        if ok {
            run.note(now, format!("step {}: {summary}", step + 1));
        } else {
            run.end(
                RunState::Failed,
                format!("step {}: the weight hook failed: {summary}", step + 1),
                now,
            );
            fx.ended.push(run.clone());
        }
        fx.changed(run);
        fx
    }

    /// An `on_success` hook of a passed run ended: its timeline says how.
    pub fn success_hook_done(&mut self, id: u64, summary: &str, now: Timestamp) -> Effects {
        let mut fx = Effects::default();
        if let Some(run) = self.runs.get_mut(&id) {
            run.note(now, format!("on_success: {summary}"));
            fx.changed(run);
        }
        fx
    }

    /// Aborts a running window: no verdict, no actions.
    pub fn abort(&mut self, id: u64, now: Timestamp, who: &str) -> Result<Effects, String> {
        let run = self
            .runs
            .get_mut(&id)
            .ok_or_else(|| format!("no window run {id}"))?;
        if !run.is_running() {
            return Err(format!(
                "window run {id} is not running (it {})",
                run.state.as_str()
            ));
        }
        run.end(RunState::Aborted, format!("aborted by {who}"), now);
        let mut fx = Effects::default();
        fx.changed(run);
        Ok(fx)
    }

    /// A rule changed state: a `never_critical` rule at critical fails the windows watching it.
    pub fn transition(
        &mut self,
        rule: &str,
        series: &Labels,
        to: State,
        value: Option<f64>,
        now: Timestamp,
    ) -> Effects {
        let mut fx = Effects::default();
        if to != State::Critical {
            return fx;
        }
        for run in self.runs.values_mut().filter(|r| r.is_running()) {
            let Some(config) = self.configs.get(&run.window) else {
                continue;
            };
            if config.never_critical.iter().any(|r| r == rule) {
                let value = value.map(|v| format!(" at {}", fmt(v))).unwrap_or_default();
                let why = format!(
                    "rule {rule}{} went critical{value} (never_critical)",
                    labels::render(series)
                );
                run.end(RunState::Failed, why, now);
                fx.changed(run);
                fx.ended.push(run.clone());
            }
        }
        fx
    }

    /// Time passes: steps start, marks come due, `never_critical` rules are looked at.
    pub fn tick(&mut self, now: Timestamp, facts: &dyn Facts) -> Effects {
        let mut fx = Effects::default();
        let running: Vec<u64> = self
            .runs
            .values()
            .filter(|r| r.is_running())
            .map(|r| r.id)
            .collect();
        for id in running {
            self.advance(id, now, facts, &mut fx);
        }
        self.trim();
        fx
    }

    fn advance(&mut self, id: u64, now: Timestamp, facts: &dyn Facts, fx: &mut Effects) {
        let warming = self
            .warming
            .get(&id)
            .is_some_and(|until| now.as_millis() < *until);
        if !warming {
            self.warming.remove(&id);
        }
        let Some(run) = self.runs.get_mut(&id) else {
            return;
        };
        let config = self.configs.get(&run.window).cloned();
        if let Some(why) = misfit(run, config.as_deref()) {
            run.end(RunState::Aborted, why, now);
            fx.changed(run);
            return;
        }
        let Some(config) = config else {
            return;
        };
        let before = run.clone();
        // A never_critical rule at critical now (already at the start, or a missed transition).
        for rule in &config.never_critical {
            let critical = facts
                .rule(rule)
                .into_iter()
                .find(|(_, s, _)| *s == State::Critical);
            if let Some((series, _, value)) = critical {
                let value = value.map(|v| format!(" at {}", fmt(v))).unwrap_or_default();
                let why = format!(
                    "rule {rule}{} is critical{value} (never_critical)",
                    labels::render(&series)
                );
                run.end(RunState::Failed, why, now);
                fx.changed(run);
                fx.ended.push(run.clone());
                return;
            }
        }
        start_steps(run, &config, now, fx);
        // Marks due, in order.
        while let Some(i) = run.marks.iter().position(|m| m.verdict.is_none()) {
            if now.as_millis() < run.marks[i].due {
                break;
            }
            let items = judge(&config, i, run, now, facts);
            let mut verdict = overall(&items);
            // Just restarted or reloaded: no data may only mean "not yet"; wait (bounded).
            if verdict == Verdict::Inconclusive && warming {
                break;
            }
            let mark = &mut run.marks[i];
            mark.late = now.as_millis() - mark.due > LATE.as_millis() as i64;
            mark.evaluated_at = Some(now.as_millis());
            mark.items = items;
            let at = mark.at.clone();
            let late = if mark.late {
                " (late: warden was not running when it was due; judged on the data there is)"
            } else {
                ""
            };
            if verdict == Verdict::Inconclusive {
                let extend = run.overrides.extend().ok().flatten().or(config.extend);
                let mark = &mut run.marks[i];
                if let (Some(extend), false) = (extend, mark.extended) {
                    mark.extended = true;
                    mark.due = now.as_millis() + extend.as_millis() as i64;
                    let missing = missing_items(&mark.items);
                    run.note(
                        now,
                        format!(
                            "mark {at}: no data for {missing}{late}; extended by {}",
                            crate::config::format_duration(extend)
                        ),
                    );
                    fx.changed(run);
                    continue;
                }
            }
            run.marks[i].verdict = Some(verdict);
            fx.marks.push((run.window.clone(), verdict));
            let summary = summarize(&run.marks[i].items);
            run.note(
                now,
                format!("mark {at}: {} ({summary}){late}", verdict.as_str()),
            );
            if verdict == Verdict::Inconclusive {
                let missing = missing_items(&run.marks[i].items);
                let policy = run.overrides.no_data().ok().flatten();
                match policy.unwrap_or(config.no_data) {
                    NoData::Pass => {
                        run.warnings
                            .push(format!("mark {at} passed without data for {missing}"));
                        verdict = Verdict::Passed;
                    }
                    NoData::Fail => {
                        run.end(
                            RunState::Failed,
                            format!("mark {at}: no data for {missing} (no_data = \"fail\")"),
                            now,
                        );
                        fx.ended.push(run.clone());
                        break;
                    }
                    NoData::Inconclusive => {
                        run.end(
                            RunState::Inconclusive,
                            format!("mark {at}: no data for {missing}"),
                            now,
                        );
                        fx.ended.push(run.clone());
                        break;
                    }
                }
            }
            if verdict == Verdict::Failed {
                run.end(RunState::Failed, format!("mark {at}: {summary}"), now);
                fx.ended.push(run.clone());
                break;
            }
            if run.marks.iter().all(|m| m.verdict.is_some()) {
                let warned = if run.warnings.is_empty() {
                    String::new()
                } else {
                    format!(" with {} warning(s)", run.warnings.len())
                };
                run.end(RunState::Passed, format!("every mark passed{warned}"), now);
                fx.ended.push(run.clone());
                for hook in config.on_success.iter().flat_map(|s| &s.hooks) {
                    fx.success_hooks.push((id, hook.clone()));
                }
                break;
            }
        }
        if run.is_running() {
            start_steps(run, &config, now, fx);
        }
        if *run != before {
            fx.changed(run);
        }
    }

    /// Keeps every running run and the newest [`KEEP_FINISHED`] finished ones.
    fn trim(&mut self) {
        let finished: Vec<u64> = self
            .runs
            .values()
            .filter(|r| !r.is_running())
            .map(|r| r.id)
            .collect();
        if finished.len() > KEEP_FINISHED {
            for id in &finished[..finished.len() - KEEP_FINISHED] {
                self.runs.remove(id);
            }
        }
    }
}

/// Starts the steps whose time has come and whose previous step passed: their weight hook,
/// and the hold of the window's `hold` rules.
fn start_steps(run: &mut Run, config: &WindowConfig, now: Timestamp, fx: &mut Effects) {
    let id = run.id;
    while run.steps_started < config.marks.len() {
        let i = run.steps_started;
        let Some(step) = config.marks[i].step else {
            break;
        };
        if now.as_millis() < run.started_at + step.from.as_millis() as i64 {
            break;
        }
        // A step starts only once the previous one passed.
        if i > 0 && run.marks[i - 1].verdict.is_none() {
            break;
        }
        run.steps_started += 1;
        run.note(now, format!("step {}: weight {}", i + 1, step.weight));
        if let Some(hook) = &config.step_hook {
            fx.step_hooks.push(StepHook {
                run: id,
                step: i,
                hook: hook.clone(),
                weight: step.weight,
            });
        }
        if i > 0 {
            for rule in &config.hold {
                fx.hold.push((
                    rule.clone(),
                    now.as_millis() + config.hold_for.as_millis() as i64,
                ));
            }
        }
    }
}

/// Why `run` can no longer go on under `config` (its window removed, or its marks or baseline
/// changed since it started); `None` when it fits.
fn misfit(run: &Run, config: Option<&WindowConfig>) -> Option<&'static str> {
    let Some(config) = config else {
        return Some("its [[window]] was removed from the config");
    };
    let marks_fit = run.marks.len() == config.marks.len()
        && run.marks.iter().zip(&config.marks).all(|(r, c)| {
            r.at == crate::config::format_duration(c.at) && r.weight == c.step.map(|s| s.weight)
        });
    let baseline_fit = run.baseline.len() == config.baseline.len()
        && config
            .baseline
            .iter()
            .all(|(name, _)| run.baseline.contains_key(name));
    (!marks_fit || !baseline_fit)
        .then_some("its [[window]]'s marks or baseline changed in the config")
}

fn validate_start(req: &Start) -> Result<(), Refused> {
    let printable =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic());
    if !printable(&req.deploy) {
        return Err(Refused::Invalid(
            "deploy must be 1 to 128 printable ASCII characters without spaces".into(),
        ));
    }
    if let Some(v) = &req.version {
        if !printable(v) {
            return Err(Refused::Invalid(
                "version must be 1 to 128 printable ASCII characters without spaces".into(),
            ));
        }
    }
    req.overrides.no_data().map_err(Refused::Invalid)?;
    req.overrides.extend().map_err(Refused::Invalid)?;
    if req.labels.len() > 32 {
        return Err(Refused::Invalid("at most 32 labels".into()));
    }
    for (k, v) in &req.labels {
        let ident = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident || matches!(k.as_str(), "deploy" | "version" | "window") {
            return Err(Refused::Invalid(format!(
                "label name {k:?}: use letters, digits and _ (not deploy, version or window)"
            )));
        }
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(Refused::Invalid(format!(
                "label {k}: at most 256 characters, no control characters"
            )));
        }
    }
    Ok(())
}

/// Judges mark `i` of `run` now.
fn judge(
    config: &WindowConfig,
    i: usize,
    run: &Run,
    now: Timestamp,
    facts: &dyn Facts,
) -> Vec<Item> {
    let mark = &config.marks[i];
    let mut items = Vec::new();
    for rule in &mark.require {
        let series = facts.rule(rule);
        if series.is_empty() {
            items.push(Item {
                what: format!("rule {rule}"),
                value: None,
                level: "no_data".into(),
                bound: None,
                verdict: Verdict::Inconclusive,
                note: Some("the rule has reported nothing".into()),
            });
        }
        for (labels, state, value) in series {
            let verdict = match state {
                State::Ok => Verdict::Passed,
                State::Warning if mark.allow_warning => Verdict::Passed,
                State::Warning | State::Critical | State::Flapping => Verdict::Failed,
                State::Unknown => Verdict::Inconclusive,
            };
            items.push(Item {
                what: format!("rule {rule}{}", labels::render(&labels)),
                value,
                level: state.as_str().into(),
                bound: None,
                verdict,
                note: None,
            });
        }
    }
    let vars = run.vars();
    for e in &mark.expect {
        let (bound, bound_text) = match &e.bound {
            Bound::Value(v) => (Some(*v), e.when.clone()),
            Bound::Baseline { name, factor } => {
                let b = run
                    .baseline
                    .get(name)
                    .copied()
                    .flatten()
                    .map(|b| b * factor);
                let shown = b.map_or("no baseline".into(), fmt);
                (b, format!("{} ({shown})", e.when))
            }
        };
        let (value, note) = match facts.eval(&e.expr.render(&vars), now.as_millis()) {
            Ok(v) => (v.filter(|v| !v.is_nan()), None),
            Err(err) => (None, Some(err)),
        };
        let verdict = match (value, bound) {
            (Some(v), Some(b)) if e.op.compare_f64(v, b) => Verdict::Passed,
            (Some(_), Some(_)) => Verdict::Failed,
            _ => Verdict::Inconclusive,
        };
        let note = note.or_else(|| match (value, bound) {
            (None, _) => Some("the expression has no result".into()),
            (_, None) => Some("the baseline had no data at the start".into()),
            _ => None,
        });
        items.push(Item {
            what: format!("expect {}", e.name),
            value,
            level: match verdict {
                Verdict::Passed => "ok",
                Verdict::Failed => "off",
                Verdict::Inconclusive => "no_data",
            }
            .into(),
            bound: Some(bound_text),
            verdict,
            note,
        });
    }
    items
}

fn overall(items: &[Item]) -> Verdict {
    if items.iter().any(|i| i.verdict == Verdict::Failed) {
        Verdict::Failed
    } else if items.iter().any(|i| i.verdict == Verdict::Inconclusive) {
        Verdict::Inconclusive
    } else {
        Verdict::Passed
    }
}

fn missing_items(items: &[Item]) -> String {
    let v: Vec<&str> = items
        .iter()
        .filter(|i| i.verdict == Verdict::Inconclusive)
        .map(|i| i.what.as_str())
        .collect();
    v.join(", ")
}

/// `rule error-rate critical (0.05); expect p95 0.9 off <= 1.2 * baseline.p95 (0.36)`: the
/// failing items, else every item.
fn summarize(items: &[Item]) -> String {
    let failing: Vec<&Item> = items
        .iter()
        .filter(|i| i.verdict == Verdict::Failed)
        .collect();
    let shown: Vec<&Item> = if failing.is_empty() {
        items.iter().collect()
    } else {
        failing
    };
    let parts: Vec<String> = shown
        .iter()
        .map(|i| {
            let value = i.value.map(|v| format!(" {}", fmt(v))).unwrap_or_default();
            let bound = i
                .bound
                .as_ref()
                .map(|b| format!(" vs {b}"))
                .unwrap_or_default();
            format!("{} {}{value}{bound}", i.what, i.level)
        })
        .collect();
    parts.join("; ")
}

/// A value for people: up to 6 significant digits.
pub fn fmt(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests;
