//! The validated configuration: what the rest of warden runs on.
//!
//! Every value here has passed validation (see `compile/`): names are unique, references
//! resolve, durations are in range, assertions parsed. Nothing downstream re-validates, and
//! nothing here does I/O. Secrets are [`Secret`]s and never print.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::checks::CheckKind;
use super::hook::HookConfig;
use super::notifier::{secrets_of, url_fragments, NotifierConfig};
use crate::alert::Severity;
use crate::secret::Secret;

/// A whole, valid configuration (the main file plus its includes).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main file as given on the command line.
    pub path: PathBuf,
    /// Every file read to build this config: the main file first, then includes in order.
    pub files: Vec<PathBuf>,
    pub server: ServerConfig,
    pub log: LogConfig,
    /// `[defaults] keep_alive_targets`: how many origins of `http`, `scrape` and `prometheus`
    /// checks may keep a connection open between probes (each holds a descriptor); the
    /// daemon also keeps it within half its descriptor limit. 0: every probe connects anew.
    /// Read at start; a reload that changes it takes effect at restart.
    pub keep_alive_targets: usize,
    /// Shared, never copied: the engine, the alert stage and reloads hold these `Arc`s.
    pub checks: Vec<Arc<CheckConfig>>,
    pub rules: Vec<Arc<RuleConfig>>,
    pub state: StateConfig,
    pub alerting: AlertingConfig,
    /// Every `[[window]]`, names unique.
    pub windows: Vec<super::window::WindowConfig>,
    /// Every `[[slo]]`; each has a rule of its name in `rules`.
    pub slos: Vec<super::slo::SloConfig>,
    /// `[heartbeat]`: the outbound heartbeat, if configured.
    pub heartbeat: Option<HeartbeatConfig>,
}

impl Config {
    pub fn window(&self, name: &str) -> Option<&super::window::WindowConfig> {
        self.windows.iter().find(|w| w.name == name)
    }

    pub fn check(&self, name: &str) -> Option<&CheckConfig> {
        self.checks.iter().find(|c| c.name == name).map(|c| &**c)
    }

    /// Every secret value of the config (the admin token, check headers and DSNs, exec and
    /// hook env values, notifier URLs, keys and passwords), for redacting text warden did not
    /// write: a hook inherits warden's environment and may print any of them.
    pub fn secret_values(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |s: &Secret| out.push(s.expose().to_string());
        if let Some(t) = &self.server.token {
            add(t);
        }
        for check in &self.checks {
            check.kind.secrets().into_iter().for_each(&mut add);
        }
        for hook in &self.alerting.hooks {
            hook.config.env.values().for_each(&mut add);
        }
        for notifier in &self.alerting.notifiers {
            out.extend(secrets_of(&notifier.kind));
        }
        if let Some(h) = &self.heartbeat {
            out.extend(url_fragments(h.url.expose()));
            out.extend(h.headers.iter().map(|(_, v)| v.expose().to_string()));
        }
        out
    }

    /// What is valid but probably not what was meant: `check-config` prints these and `run`
    /// logs them. Today: a `retry_interval` that never re-checks, because no rule reading the
    /// check's `up` needs more than one failure.
    pub fn warnings(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.retry.is_some_and(|r| r.attempts <= 1))
            .map(|c| {
                format!(
                    "check {:?}: retry_interval has no effect: no rule reading its `up` needs more \
                     than one failure in a row (a `count` or `for` on `when = \"< 1\"`)",
                    c.name
                )
            })
            .collect()
    }
}

/// `[state]`: where alert states, the notification outbox and hook runs are kept.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// The SQLite file. `path` in the config is relative to the main file's directory; an
    /// interpolation that comes out empty (`"${NUVIE_STATE_PATH:-}"` unset) means the default.
    /// The default is named after the main file (`NAME.toml` → `NAME.db`):
    /// `$STATE_DIRECTORY/NAME.db` (the first directory when systemd lists several), else
    /// `$XDG_STATE_HOME/warden/NAME.db`, else `$HOME/.local/state/warden/NAME.db`, else
    /// `NAME-state.db` beside the main file.
    pub path: PathBuf,
    /// Where warden kept this config's state before the default file was named after the
    /// config: `warden.db` beside the default `path`, when the path is the default and another
    /// name. `app` refuses to start on a missing `path` while this file exists and no warden
    /// holds it, rather than start on an empty store (see [`StateConfig::path`]).
    pub legacy: Option<PathBuf>,
}

/// Notifiers, hooks, and which rule sends what where (`[alerting]`, `[[notifier]]`,
/// `[[hook]]`, and a rule's `notify` and `hooks`). Kept apart from [`RuleConfig`] so that a
/// routing change on reload does not reset a rule's state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertingConfig {
    /// Every `[[notifier]]`, names unique.
    pub notifiers: Vec<NotifierConfig>,
    /// Every `[[hook]]`, names unique.
    pub hooks: Vec<HookSpec>,
    /// `[alerting] dry_run`: every hook records what it would run and runs nothing
    /// (`warden run --dry-run` sets it too).
    pub dry_run: bool,
    /// `[alerting] instance`: names this warden in every dedup key. `None`: the one the state
    /// file remembers, else the host name.
    pub instance: Option<String>,
    /// `[alerting] warning` / `critical`: the route of rules without their own `notify`.
    pub route: Route,
    /// Rules with their own `notify` or `hooks`, by rule name. Others use `route`, no hooks.
    pub rules: BTreeMap<String, RuleActions>,
    /// `depends_on` of each rule that has one: rule → the rules it depends on (existing, no
    /// cycle).
    pub dependencies: BTreeMap<String, Vec<String>>,
    /// Every `[[policy]]` by name.
    pub policies: BTreeMap<String, super::policy::Policy>,
    /// Rules' own `policy`, by rule.
    pub rule_policies: BTreeMap<String, String>,
    /// `[alerting] external_url`: how people reach this warden (`https://warden.example`); set,
    /// pages carry a signed acknowledgement link.
    pub external_url: Option<String>,
    /// How long an acknowledgement link works (`ack_link_ttl`, default 24h).
    pub ack_link_ttl: std::time::Duration,
    /// `[alerting] policy`: the default per severity.
    pub severity_policies: super::policy::SeverityPolicies,
    /// `[[route]]`s in order: the first whose matchers all match an alert's labels picks its
    /// policy (after the rule's own).
    pub routes: Vec<super::policy::PolicyRoute>,
    /// Every `[[maintenance]]`, names unique: recurring silences that also hold hooks.
    pub maintenance: Vec<super::suppression::Maintenance>,
    /// Every `[[inhibit]]`.
    pub inhibit: Vec<super::suppression::InhibitRule>,
}

impl AlertingConfig {
    pub fn notifier(&self, name: &str) -> Option<&NotifierConfig> {
        self.notifiers.iter().find(|n| n.name == name)
    }

    pub fn hook(&self, name: &str) -> Option<&HookSpec> {
        self.hooks.iter().find(|h| h.config.name == name)
    }

    /// The notifiers a rule's alert goes to at `severity`.
    pub fn route_of(&self, rule: &str, severity: Severity) -> &[String] {
        let route = self
            .rules
            .get(rule)
            .and_then(|r| r.route.as_ref())
            .unwrap_or(&self.route);
        route.at(severity)
    }

    /// The on-call policy of a rule's alert at `severity` with `labels` (the alert's, as
    /// silences match them), if any: the rule's own, else the first `[[route]]` matching,
    /// else the severity's default. Without one, the plain route applies.
    pub fn policy_of(
        &self,
        rule: &str,
        severity: Severity,
        labels: &crate::labels::Labels,
    ) -> Option<&super::policy::Policy> {
        let name = self
            .rule_policies
            .get(rule)
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| crate::matcher::all_match(&r.matchers, labels))
                    .map(|r| &r.policy)
            })
            .or_else(|| self.severity_policies.at(severity))?;
        self.policies.get(name)
    }

    /// The hooks a rule fires, in the order it lists them.
    pub fn hooks_of(&self, rule: &str) -> &[HookTrigger] {
        self.rules.get(rule).map_or(&[], |r| r.hooks.as_slice())
    }
}

/// Notifier names per severity. `notify = ["a"]` in a rule means `a` for both levels.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Route {
    pub warning: Vec<String>,
    pub critical: Vec<String>,
}

impl Route {
    pub fn at(&self, severity: Severity) -> &[String] {
        match severity {
            Severity::Warning => &self.warning,
            Severity::Critical => &self.critical,
        }
    }
}

/// A `[[hook]]`: the command (run by `hook::run`) plus how the alert stage uses it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookSpec {
    pub config: HookConfig,
    /// Diagnostic hooks (collect logs, a heap dump) run before the other hooks that are due
    /// for the same alert at the same time, so the evidence is taken before a rollback.
    pub diagnostic: bool,
    /// Where the hook's outcome is notified. `None`: the notifiers the alert went to,
    /// except `pagerduty` and `alertmanager` ones (an outcome there would open a new alert).
    pub notify: Option<Vec<String>>,
}

/// A rule's own routing and hooks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleActions {
    /// `None`: `[alerting]`'s route.
    pub route: Option<Route>,
    pub hooks: Vec<HookTrigger>,
}

/// `hooks = [{ hook = "rollback", on = "critical", after = "5m" }]` in a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct HookTrigger {
    /// A `[[hook]]` name.
    pub hook: String,
    /// The level (or worse) the alert must be at; default critical.
    pub on: Severity,
    /// How long the alert must have been at `on` or worse, without interruption, before the
    /// hook runs ("still critical after 5 minutes"); zero runs it at once.
    pub after: Duration,
    /// Rules that must agree (`confirm = ["api-health"]`): the hook runs only while an alert
    /// of each of them is also at `on` or worse, as this process saw it; until then it
    /// waits, its `after` still counted from its own alert. Empty: no confirmation needed
    /// (always empty for a window's hooks).
    pub confirm: Vec<String>,
    /// `verify = "10m"`: after a successful run, the alert must resolve within this long;
    /// if it still fires then, its notifiers are paged that the hook did not help, and the
    /// hook is not run again for the incident. `None`: no verification.
    pub verify: Option<Duration>,
}

/// `[heartbeat]`: a request to a dead man's switch every `interval`, sent only while warden's
/// own pipeline is on time (`heartbeat`, `vitals`).
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatConfig {
    /// http or https; secret (a dead man's switch URL is its credential).
    pub url: Secret,
    /// Default 60s.
    pub interval: Duration,
    /// Default 10s (or the interval, if shorter); never more than the interval.
    pub timeout: Duration,
    pub method: HeartbeatMethod,
    /// Values secret.
    pub headers: Vec<(String, Secret)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatMethod {
    /// The default: what healthchecks.io, Dead Man's Snitch and Cronitor accept.
    Get,
    Post,
}

impl HeartbeatMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatMethod::Get => "GET",
            HeartbeatMethod::Post => "POST",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Default `127.0.0.1:9731`.
    pub listen: SocketAddr,
    /// Bearer token for endpoints that change state; required when `listen` is not loopback.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// An `EnvFilter` directive, default `"info"`. `RUST_LOG` overrides it.
    pub level: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CheckConfig {
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// `retry_interval`: re-check a failing target sooner than `interval` (Nagios' SOFT
    /// state), until the failure is confirmed or the target answers.
    pub retry: Option<Retry>,
    pub labels: BTreeMap<String, String>,
    pub kind: CheckKind,
}

impl CheckConfig {
    /// Whether `other` probes the same target the same way, on the same schedule: equal but
    /// for `retry.attempts`, which the rules decide. A reload that changes only a rule's
    /// `count` restarts the check's task (to pace re-checks anew) but keeps what the engine
    /// knows of the check, and so the state of its other rules.
    pub fn probes_like(&self, other: &CheckConfig) -> bool {
        let attempts_aside = |c: &CheckConfig| {
            let mut c = c.clone();
            if let Some(r) = c.retry.as_mut() {
                r.attempts = 0;
            }
            c
        };
        attempts_aside(self) == attempts_aside(other)
    }
}

/// Re-checks after a failed probe: the next probe runs `interval` after the failure, while
/// fewer than `attempts` probes in a row have failed; then the check's own interval resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub interval: Duration,
    /// Consecutive failures that confirm the failure for every rule a failed probe breaches
    /// (a HARD state): among the levels of the check's rules reading `up` that hold at 0, the
    /// largest `count`, or for a `for` level the number of re-checks that span it plus one.
    /// At least 1 (then no re-check happens).
    pub attempts: u32,
}

impl Retry {
    /// The consecutive failures a level needs before it can fire, re-checked every
    /// `retry_interval`.
    pub fn attempts_for(trigger: &Trigger, retry_interval: Duration) -> u32 {
        match *trigger {
            Trigger::Immediate => 1,
            Trigger::Consecutive(n) => n,
            Trigger::OutOf { count, .. } => count,
            Trigger::For(d) => {
                let step = retry_interval.as_nanos().max(1);
                let spans = d.as_nanos().div_ceil(step);
                u32::try_from(spans).unwrap_or(u32::MAX).saturating_add(1)
            }
        }
    }
}

/// A path into a JSON document: `components.database`, `items[0].status`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    /// The path as written, for messages.
    pub text: String,
    pub segments: Vec<PathSegment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathSegment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    pub fn compare_f64(self, left: f64, right: f64) -> bool {
        match self {
            CmpOp::Eq => left == right,
            CmpOp::Ne => left != right,
            CmpOp::Lt => left < right,
            CmpOp::Le => left <= right,
            CmpOp::Gt => left > right,
            CmpOp::Ge => left >= right,
        }
    }
}

/// `components.database == "healthy"`: a JSON path, an operator and a JSON literal.
/// Ordering operators (`<`, `<=`, `>`, `>=`) only take number literals.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonAssertion {
    /// The assertion as written, for messages.
    pub text: String,
    pub path: JsonPath,
    pub op: CmpOp,
    pub expected: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExecProgram {
    /// `command = [...]`: run directly, no shell. Never empty. A bare `argv[0]` (no `/`) is
    /// looked up in `PATH` at spawn time; a relative one with a `/` was joined to the config
    /// file's directory.
    Argv(Vec<String>),
    /// `shell = "..."`: run by `/bin/sh -c`.
    Shell(String),
}

/// The severity a rule reports for a failed probe or a missing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingPolicy {
    Unknown,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    /// The check whose observations feed this rule (exists in `Config::checks`).
    pub check: String,
    /// The observed value read (one of the check kind's `value_names`), default `up`.
    pub value: String,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub warning: Option<LevelConfig>,
    pub critical: Option<LevelConfig>,
    /// State when the probe failed and so the value is absent. Default unknown.
    pub on_error: MissingPolicy,
    /// State when the probe succeeded but did not produce the value. Default unknown.
    pub on_missing: MissingPolicy,
    /// Until this many samples were seen, the rule reports unknown instead of ok. Default 1.
    pub min_samples: u32,
    pub flapping: Option<FlapConfig>,
    /// Set when the rule reads a value with labelled series (a postgres `result = "series"`
    /// query): one state per series, and a series absent from successful observations for
    /// longer than this (`gone_after`, default the check's interval) is resolved and dropped.
    /// `None` for a scalar value (its one series has no labels).
    pub series: Option<Duration>,
    /// `expr = "..."`: the rule reads this PromQL expression's result (one series per label
    /// set of the result, `series` always set), evaluated after each observation of `check`;
    /// `value` then holds the expression's text.
    pub expr: Option<RuleExpr>,
}

/// A rule's PromQL expression, parsed and checked when the config is loaded.
#[derive(Debug, Clone)]
pub struct RuleExpr(pub std::sync::Arc<crate::promql::Query>);

/// Two expressions are the same when their text is.
impl PartialEq for RuleExpr {
    fn eq(&self, other: &Self) -> bool {
        self.0.text() == other.0.text()
    }
}

/// One severity level of a rule: when it is entered and when it is left.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelConfig {
    /// The breach condition, e.g. `> 0.8`.
    pub when: Condition,
    /// Leave the level only when this holds (value hysteresis, e.g. `< 0.7`).
    /// `None`: leave when `when` no longer holds.
    pub clear: Option<Condition>,
    pub trigger: Trigger,
    pub recover: Recovery,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Condition {
    pub op: CmpOp,
    pub threshold: f64,
}

impl Condition {
    pub fn holds(&self, value: f64) -> bool {
        self.op.compare_f64(value, self.threshold)
    }
}

/// How long a breach must last before the level is entered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trigger {
    /// On the first breaching sample.
    Immediate,
    /// Breaching continuously for at least this long (first breach to now).
    For(Duration),
    /// This many consecutive breaching samples.
    Consecutive(u32),
    /// At least `count` breaching samples among the last `window` samples.
    OutOf { count: u32, window: u32 },
}

/// Recovery hysteresis: how long the clear condition must hold before the level is left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recovery {
    /// Consecutive clearing samples needed, at least 1 (default 1).
    pub count: u32,
    /// Clearing continuously for at least this long (default zero).
    pub for_: Duration,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            count: 1,
            for_: Duration::ZERO,
        }
    }
}

/// Nagios-style flap detection over the rule's last `window` states.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlapConfig {
    /// States kept, default 21.
    pub window: u32,
    /// Start flapping at or above this percent state change (default 20).
    pub high: f64,
    /// Stop flapping at or below this percent (default 5).
    pub low: f64,
}

impl Default for FlapConfig {
    fn default() -> Self {
        FlapConfig {
            window: 21,
            high: 20.0,
            low: 5.0,
        }
    }
}
