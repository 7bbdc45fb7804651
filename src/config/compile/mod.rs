//! Compiling raw files into the validated [`Config`]: defaults, interpolation, per-kind rules,
//! name resolution. Every problem is collected, each at the most precise span, and the config is
//! built only when there are none.
//!
//! Its only I/O goes through [`Host`] (environment lookups, reading `ca_file`, `*_file`
//! secrets and the host name), so it is testable without touching the process. Messages name
//! fields, never secret values. This file holds the [`compile`] driver, the [`Compiler`] and
//! the value helpers every part shares (durations, secrets, names, URLs, commands); each part
//! adds its own methods to the [`Compiler`]: `server.rs` (`[server]`, `[log]`, `[defaults]`),
//! `checks.rs` (`[[check]]`: what every check has, and the dispatch to its kind), `rules.rs`
//! (`[[rule]]`: levels, conditions, flapping) and, beside this directory, each kind's file in
//! `../checks/` (its keys and compile method; exec's implicit status rule) and
//! `../alerting.rs` (`[state]`, `[alerting]`, notifiers, hooks, a rule's `notify` and `hooks`).

mod checks;
mod heartbeat;
mod rules;
mod server;
mod slo;
mod suppression;

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use toml::Spanned;

use super::checks::status_rule;
use super::diag::Problem;
use super::duration::{format_duration, parse_duration};
use super::env::interpolate;
use super::load::FileUnit;
use super::model::*;
use super::raw::*;
use crate::secret::{redact_url, Secret};
use checks::Kind;

pub(super) type Span = Range<usize>;

/// What compiling may read from outside: the environment and small files.
pub(crate) struct Host<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub read: &'a dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
}

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `[defaults] keep_alive_targets`: how many origins may keep an idle connection open.
const DEFAULT_KEEP_ALIVE_TARGETS: usize = 1000;
/// Its ceiling: a descriptor and ~24 KB each.
const MAX_KEEP_ALIVE_TARGETS: i64 = 1_000_000;
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MIN_TIMEOUT: Duration = Duration::from_millis(10);
/// Upper bound for an exec check's (or a hook's) kept output per stream.
pub(super) const MAX_OUTPUT_BYTES: i64 = 16 * 1024 * 1024;
/// Upper bound for sample counts and windows, so a rule's memory stays bounded.
const MAX_SAMPLES: i64 = 10_000;

/// The keys of a table whose valid keys depend on its `kind` (`[[check]]`, `[[notifier]]`).
pub(super) struct KindKeys<K: 'static> {
    /// How messages name the tables: `checks`.
    pub plural: &'static str,
    /// Every key of the raw table.
    pub all: &'static [&'static str],
    /// Whether a table of a kind takes a key (every kind takes the keys all tables have).
    pub takes: fn(K, &str) -> bool,
}

impl<K: Copy> KindKeys<K> {
    fn keys_of(&self, kind: K) -> Vec<&'static str> {
        self.all
            .iter()
            .copied()
            .filter(|key| (self.takes)(kind, key))
            .collect()
    }
}

/// Where a name was first defined, for duplicate messages.
pub(super) struct Defined {
    pub file: usize,
    pub offset: usize,
}

/// A check as rules see it: where it is, and its value names if it compiled.
struct KnownCheck {
    at: Defined,
    kind: Option<&'static str>,
    values: Option<Vec<String>>,
    /// Rules may read any value name (exec perfdata).
    open_values: bool,
    /// Value names that are labelled series, and the check's interval (a series' default
    /// `gone_after`).
    series: Vec<String>,
    interval: Duration,
}

struct Defaults {
    interval: Duration,
    timeout: Duration,
    keep_alive_targets: usize,
}

/// Compiles the loaded files. `Err` holds every problem found (possibly none new, when the
/// loader's problems already explain why a file is missing).
pub(crate) fn compile(
    main: &Path,
    files: &[FileUnit],
    host: &Host<'_>,
) -> Result<Config, Vec<Problem>> {
    let mut c = Compiler {
        host,
        files,
        file: 0,
        problems: Vec::new(),
    };
    // A file that failed to parse may define checks: unknown-check errors would be noise.
    let complete = files.iter().all(|f| f.raw.is_some());

    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        c.unknown_keys(&raw.unknown, "at the top level", RawFile::KEYS);
        if index > 0 {
            let main_only = [
                ("server", raw.server.as_ref().map(Spanned::span)),
                ("log", raw.log.as_ref().map(Spanned::span)),
                ("defaults", raw.defaults.as_ref().map(Spanned::span)),
                ("state", raw.state.as_ref().map(Spanned::span)),
                ("alerting", raw.alerting.as_ref().map(Spanned::span)),
                ("heartbeat", raw.heartbeat.as_ref().map(Spanned::span)),
            ];
            for (section, span) in main_only {
                if let Some(span) = span {
                    c.error(
                        span,
                        format!(
                            "[{section}] is only allowed in the main file, not in an included one"
                        ),
                    );
                }
            }
        }
    }

    c.file = 0;
    let main_raw = files.first().and_then(|f| f.raw.as_ref());
    let server = c.server(main_raw.and_then(|r| r.server.as_ref()));
    let log = c.log(main_raw.and_then(|r| r.log.as_ref()));
    let defaults = c.defaults(main_raw.and_then(|r| r.defaults.as_ref()));
    let state = c.state(main_raw.and_then(|r| r.state.as_ref()));
    let heartbeat = c.heartbeat(main_raw.and_then(|r| r.heartbeat.as_ref()));

    let mut checks = Vec::new();
    let mut known: HashMap<String, KnownCheck> = HashMap::new();
    let mut check_order: Vec<String> = Vec::new();
    // Exec checks' implicit status rules, named like their checks, listed before user rules.
    let mut implicit_rules: Vec<RuleConfig> = Vec::new();
    let mut status_rules: HashMap<String, Defined> = HashMap::new();
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_check in raw.check.iter().flatten() {
            let (name, kind, config) = c.check(raw_check, &defaults);
            let Some(name) = name else { continue };
            if let Some(first) = known.get(name.get_ref()) {
                let message = format!(
                    "duplicate check name {:?}: first defined at {}",
                    name.get_ref(),
                    c.place(&first.at)
                );
                c.error(name.span(), message);
                continue;
            }
            known.insert(
                name.get_ref().clone(),
                KnownCheck {
                    at: Defined {
                        file: index,
                        offset: name.span().start,
                    },
                    kind: kind.map(Kind::name),
                    values: config.as_ref().map(|k: &CheckConfig| k.kind.value_names()),
                    open_values: config.as_ref().is_some_and(|k| k.kind.open_values()),
                    series: config
                        .as_ref()
                        .map(|k| k.kind.series_values())
                        .unwrap_or_default(),
                    interval: config.as_ref().map_or(Duration::ZERO, |k| k.interval),
                },
            );
            check_order.push(name.get_ref().clone());
            if let Some(rule) = config.as_ref().and_then(status_rule) {
                status_rules.insert(
                    rule.name.clone(),
                    Defined {
                        file: index,
                        offset: name.span().start,
                    },
                );
                implicit_rules.push(rule);
            }
            checks.extend(config);
        }
    }

    let catalog = c.catalog(complete);
    c.file = 0;
    let settings = c.alerting_settings(main_raw.and_then(|r| r.alerting.as_ref()), &catalog);

    let mut rules = implicit_rules;
    let mut rule_actions: BTreeMap<String, RuleActions> = BTreeMap::new();
    let mut rule_names: HashMap<String, Defined> = HashMap::new();
    let checks_known = CheckIndex {
        known: &known,
        order: &check_order,
        complete,
    };
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_rule in raw.rule.iter().flatten() {
            let (name, config) = c.rule(raw_rule, &checks_known);
            let actions = c.rule_actions(raw_rule.get_ref(), &catalog);
            let Some(name) = name else { continue };
            if let Some(check) = status_rules.get(name.get_ref()) {
                let message = format!(
                    "rule name {n:?} is taken by the status rule of exec check {n:?} (defined at {}); \
                     set status_rule = false on check {n:?} or rename the rule",
                    c.place(check),
                    n = name.get_ref(),
                );
                c.error(name.span(), message);
                continue;
            }
            if let Some(first) = rule_names.get(name.get_ref()) {
                let message = format!(
                    "duplicate rule name {:?}: first defined at {}",
                    name.get_ref(),
                    c.place(first)
                );
                c.error(name.span(), message);
                continue;
            }
            rule_names.insert(
                name.get_ref().clone(),
                Defined {
                    file: index,
                    offset: name.span().start,
                },
            );
            rules.extend(config);
            if let Some(actions) = actions.flatten() {
                rule_actions.insert(name.into_inner(), actions);
            }
        }
    }

    // Each SLO adds its rule, named like it.
    let mut slos = Vec::new();
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_slo in raw.slo.iter().flatten() {
            let (name, built) = c.slo(raw_slo, &checks_known);
            let r = raw_slo.get_ref();
            let actions = c.actions(r.notify.as_ref(), r.hooks.as_ref(), &catalog);
            let Some(name) = name else { continue };
            let taken = status_rules
                .get(name.get_ref())
                .or_else(|| rule_names.get(name.get_ref()));
            if let Some(first) = taken {
                let message = format!(
                    "SLO name {:?} is taken: an SLO alerts through a rule of its name, and a rule \
                     (or SLO) of that name is defined at {}",
                    name.get_ref(),
                    c.place(first)
                );
                c.error(name.span(), message);
                continue;
            }
            rule_names.insert(
                name.get_ref().clone(),
                Defined {
                    file: index,
                    offset: name.span().start,
                },
            );
            if let Some((slo, rule)) = built {
                slos.push(slo);
                rules.push(rule);
            }
            if let Some(actions) = actions.flatten() {
                rule_actions.insert(name.into_inner(), actions);
            }
        }
    }

    // A hook's `confirm` names another rule or SLO, defined anywhere.
    // Through a set: `names.contains` per rule was quadratic (20 s at 100,000 rules).
    let mut names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
    let seen: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    let more: Vec<String> = rule_names
        .keys()
        .filter(|n| !seen.contains(n.as_str()))
        .cloned()
        .collect();
    names.extend(more);
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for r in raw.rule.iter().flatten().map(Spanned::get_ref) {
            if let Some(owner) = &r.name {
                c.confirm_refs(owner.get_ref(), r.hooks.as_ref(), &names, complete);
            }
        }
        for r in raw.slo.iter().flatten().map(Spanned::get_ref) {
            if let Some(owner) = &r.name {
                c.confirm_refs(owner.get_ref(), r.hooks.as_ref(), &names, complete);
            }
        }
    }

    retry_attempts(&mut checks, &rules);
    let dependencies = c.dependencies(files, &rules);
    let mut policies = BTreeMap::new();
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_policy in raw.policy.iter().flatten() {
            if let Some(p) = c.policy(raw_policy, &catalog) {
                if policies.contains_key(&p.name) {
                    let span = raw_policy
                        .get_ref()
                        .name
                        .as_ref()
                        .map_or(raw_policy.span(), Spanned::span);
                    c.error(span, format!("duplicate policy name {:?}", p.name));
                } else {
                    policies.insert(p.name.clone(), p);
                }
            }
        }
    }
    let (rule_policies, severity_policies, routes) = c.policy_choices(files, &policies);

    let mut windows: Vec<super::window::WindowConfig> = Vec::new();
    let mut window_names: HashMap<String, Defined> = HashMap::new();
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_window in raw.window.iter().flatten() {
            let Some((window, actions)) = c.window(raw_window, &rules, &slos, &catalog) else {
                continue;
            };
            let span = raw_window
                .get_ref()
                .name
                .as_ref()
                .map_or(raw_window.span(), Spanned::span);
            if let Some(first) = window_names.get(&window.name) {
                let message = format!(
                    "duplicate window name {:?}: first defined at {}",
                    window.name,
                    c.place(first)
                );
                c.error(span, message);
                continue;
            }
            window_names.insert(
                window.name.clone(),
                Defined {
                    file: index,
                    offset: span.start,
                },
            );
            if let Some(actions) = actions {
                rule_actions.insert(window.alert_rule(), actions);
            }
            windows.push(window);
        }
    }

    // Maintenance windows (names unique) and inhibition rules, from every file.
    let mut maintenance: Vec<super::suppression::Maintenance> = Vec::new();
    let mut maintenance_names: HashMap<String, Defined> = HashMap::new();
    let mut inhibit = Vec::new();
    for (index, unit) in files.iter().enumerate() {
        let Some(raw) = &unit.raw else { continue };
        c.file = index;
        for raw_m in raw.maintenance.iter().flatten() {
            let Some(m) = c.maintenance(raw_m) else {
                continue;
            };
            let span = raw_m
                .get_ref()
                .name
                .as_ref()
                .map_or(raw_m.span(), Spanned::span);
            if let Some(first) = maintenance_names.get(&m.name) {
                let message = format!(
                    "duplicate maintenance name {:?}: first defined at {}",
                    m.name,
                    c.place(first)
                );
                c.error(span, message);
                continue;
            }
            maintenance_names.insert(
                m.name.clone(),
                Defined {
                    file: index,
                    offset: span.start,
                },
            );
            maintenance.push(m);
        }
        inhibit.extend(raw.inhibit.iter().flatten().filter_map(|r| c.inhibit(r)));
    }

    match (server, log, state, settings, heartbeat) {
        (Some(server), Some(log), Some(state), Some(settings), Some(heartbeat))
            if c.problems.is_empty() && complete =>
        {
            Ok(Config {
                path: main.to_path_buf(),
                files: files.iter().map(|f| f.source.path.clone()).collect(),
                server,
                log,
                keep_alive_targets: defaults.keep_alive_targets,
                checks: checks.into_iter().map(Arc::new).collect(),
                rules: rules.into_iter().map(Arc::new).collect(),
                state,
                windows,
                alerting: {
                    let mut alerting =
                        catalog.into_config(settings.dry_run, settings.route, rule_actions);
                    alerting.instance = settings.instance;
                    alerting.external_url = settings.external_url;
                    alerting.ack_link_ttl = settings.ack_link_ttl;
                    alerting.dependencies = dependencies;
                    alerting.policies = policies;
                    alerting.rule_policies = rule_policies;
                    alerting.severity_policies = severity_policies;
                    alerting.routes = routes;
                    alerting.maintenance = maintenance;
                    alerting.inhibit = inhibit;
                    alerting
                },
                slos,
                heartbeat,
            })
        }
        _ => Err(c.problems),
    }
}

/// Sets each re-checked check's `attempts`: the most that any level a failed probe breaches
/// needs (a level of a rule reading `up` whose condition holds at 0), so the re-checks go on
/// until every such rule could have confirmed the failure, and no longer. Other rules (a
/// latency `for = "5m"`, a gauge) do not see a failed probe as a breach and set no pace.
fn retry_attempts(checks: &mut [CheckConfig], rules: &[RuleConfig]) {
    for check in checks {
        let Some(retry) = check.retry.as_mut() else {
            continue;
        };
        retry.attempts = rules
            .iter()
            .filter(|r| r.check == check.name && r.value == "up")
            .flat_map(|r| [&r.warning, &r.critical])
            .flatten()
            .filter(|level| level.when.holds(0.0))
            .map(|level| Retry::attempts_for(&level.trigger, retry.interval))
            .max()
            .unwrap_or(1)
            .max(1);
    }
}

struct CheckIndex<'a> {
    known: &'a HashMap<String, KnownCheck>,
    /// Check names in definition order, for listing them.
    order: &'a [String],
    /// Every file parsed: an unknown check is really unknown.
    complete: bool,
}

pub(super) struct Compiler<'a> {
    pub host: &'a Host<'a>,
    pub files: &'a [FileUnit],
    /// The file being compiled (index into `files`).
    pub file: usize,
    pub problems: Vec<Problem>,
}

impl Compiler<'_> {
    pub(super) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.problems.push(Problem {
            file: self.file,
            offset: span.start,
            message: message.into(),
        });
    }

    /// `file:line` of a definition.
    pub(super) fn place(&self, at: &Defined) -> String {
        let source = &self.files[at.file].source;
        let (line, _) = source.position(at.offset);
        format!("{}:{line}", source.path.display())
    }

    pub(super) fn dir(&self) -> &Path {
        &self.files[self.file].dir
    }

    /// A string value with `${NAME}` interpolated.
    pub(super) fn text(&mut self, s: &Spanned<String>) -> Option<String> {
        match interpolate(s.get_ref(), self.host.env) {
            Ok(text) => Some(text),
            Err(errors) => {
                for e in errors {
                    self.error(s.span(), e);
                }
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        s: &Spanned<String>,
        what: &str,
        min: Duration,
    ) -> Option<Duration> {
        let text = self.text(s)?;
        match parse_duration(&text) {
            Err(e) => {
                self.error(s.span(), e);
                None
            }
            Ok(d) if d < min => {
                self.error(
                    s.span(),
                    format!(
                        "{what} must be at least {}, got {text:?}",
                        format_duration(min)
                    ),
                );
                None
            }
            Ok(d) => Some(d),
        }
    }

    /// A duration that must be greater than zero (a timeout, a resend interval).
    pub(super) fn positive_duration(
        &mut self,
        s: &Spanned<String>,
        what: &str,
    ) -> Option<Duration> {
        let d = self.duration(s, what, Duration::ZERO)?;
        if d.is_zero() {
            let text = self.text(s).unwrap_or_default();
            self.error(
                s.span(),
                format!("{what} must be greater than 0, got {text:?}"),
            );
            return None;
        }
        Some(d)
    }

    /// A secret set inline (`what = "..."`) or read from a file (`what_file = "path"`, relative
    /// to this file's directory, read through [`Host`], trailing newline trimmed); `file`
    /// carries the span of its key for the not-both error. Returns the secret and the span of
    /// the value it came from; `Some(None)` when neither is set, `None` on error (empty,
    /// unreadable, or both set). Messages name the key, never the value.
    pub(super) fn secret(
        &mut self,
        what: &str,
        inline: Option<&Spanned<String>>,
        file: Option<(&Spanned<String>, Span)>,
    ) -> Option<Option<(Secret, Span)>> {
        let mut secret = None;
        let mut ok = true;
        if let Some(v) = inline {
            match self.text(v) {
                Some(text) if text.is_empty() => {
                    self.error(v.span(), format!("{what} is empty"));
                    ok = false;
                }
                Some(text) => secret = Some((Secret::new(text), v.span())),
                None => ok = false,
            }
        }
        match file {
            None => {}
            Some((_, key)) if inline.is_some() => {
                self.error(key, format!("set {what} or {what}_file, not both"));
                ok = false;
            }
            Some((v, _)) => {
                let text = self.text(v)?;
                let path = self.dir().join(&text);
                match (self.host.read)(&path).map(String::from_utf8) {
                    Ok(Ok(content)) => {
                        let value = content.trim_end_matches(['\n', '\r']);
                        if value.is_empty() {
                            self.error(v.span(), format!("{what}_file {text:?} is empty"));
                            ok = false;
                        }
                        secret = Some((Secret::new(value), v.span()));
                    }
                    Ok(Err(_)) => {
                        self.error(v.span(), format!("{what}_file {text:?} is not UTF-8 text"));
                        ok = false;
                    }
                    Err(e) => {
                        self.error(v.span(), format!("cannot read {what}_file {text:?}: {e}"));
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(secret)
    }

    pub(super) fn int(&mut self, v: &Spanned<i64>, what: &str, min: i64, max: i64) -> Option<i64> {
        let n = *v.get_ref();
        if n < min {
            self.error(v.span(), format!("{what} must be at least {min}, got {n}"));
            None
        } else if n > max {
            self.error(v.span(), format!("{what} must be at most {max}, got {n}"));
            None
        } else {
            Some(n)
        }
    }

    fn count(&mut self, v: &Spanned<i64>, what: &str, min: i64) -> Option<u32> {
        self.int(v, what, min, MAX_SAMPLES)
            .and_then(|n| u32::try_from(n).ok())
    }

    pub(super) fn one_of<T: Copy>(
        &mut self,
        s: &Spanned<String>,
        what: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let text = self.text(s)?;
        match options.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => Some(*value),
            None => {
                let valid: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                self.error(
                    s.span(),
                    format!(
                        "invalid {what} {text:?}: expected one of {}",
                        valid.join(", ")
                    ),
                );
                None
            }
        }
    }

    pub(super) fn unknown_keys(
        &mut self,
        unknown: &[Spanned<String>],
        section: &str,
        valid: &[&str],
    ) {
        for key in unknown {
            let k = key.get_ref();
            let message = match suggest(k, valid.iter().copied()) {
                Some(close) => format!("unknown key {k:?} {section}, did you mean {close:?}?"),
                None => format!(
                    "unknown key {k:?} {section}; valid keys: {}",
                    valid.join(", ")
                ),
            };
            self.error(key.span(), message);
        }
    }

    /// `kind = "..."` of a `[[what]]` table: present and one of `kinds`.
    pub(super) fn kind<K: Copy>(
        &mut self,
        v: Option<&Spanned<String>>,
        header: &Span,
        what: &str,
        kinds: &[(&str, K)],
    ) -> Option<K> {
        let Some(v) = v else {
            let names: Vec<&str> = kinds.iter().map(|(n, _)| *n).collect();
            self.error(
                header.clone(),
                format!(
                    r#"missing required key "kind" in [[{what}]]; expected one of {}"#,
                    names.join(", ")
                ),
            );
            return None;
        };
        self.one_of(v, &format!("{what} kind"), kinds)
    }

    /// The unknown keys of a `[[what]]` table (suggesting among its kind's keys, or all keys
    /// when the kind is not known), and the keys it has that belong to other kinds.
    pub(super) fn kind_keys<K: Copy>(
        &mut self,
        spec: &KindKeys<K>,
        what: &str,
        kind: Option<(K, &str)>,
        present: &[Spanned<String>],
        unknown: &[Spanned<String>],
    ) {
        let Some((kind, kind_name)) = kind else {
            self.unknown_keys(unknown, &format!("in [[{what}]]"), spec.all);
            return;
        };
        let section = format!("in [[{what}]] of kind {kind_name:?}");
        self.unknown_keys(unknown, &section, &spec.keys_of(kind));
        for key in present {
            if !(spec.takes)(kind, key.get_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "field {:?} is not used by {} of kind {kind_name:?}",
                        key.get_ref(),
                        spec.plural,
                    ),
                );
            }
        }
    }

    pub(super) fn missing(&mut self, header: Span, key: &str, section: &str) {
        self.error(header, format!("missing required key {key:?} in {section}"));
    }

    /// A check, rule, notifier or hook name: present and made of `[A-Za-z0-9_.:-]`.
    pub(super) fn name(
        &mut self,
        v: Option<&Spanned<String>>,
        header: &Span,
        what: &str,
    ) -> Option<Spanned<String>> {
        let Some(v) = v else {
            self.missing(header.clone(), "name", &format!("[[{what}]]"));
            return None;
        };
        let name = v.get_ref();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
        if !valid {
            self.error(
                v.span(),
                format!("invalid {what} name {name:?}: use letters, digits and _ . : -"),
            );
            return None;
        }
        Some(v.clone())
    }

    /// A value name (`extract` key, info field, query name), also fine as a label name.
    pub(super) fn value_name(&mut self, name: &str, span: Span, what: &str) -> bool {
        if is_identifier(name) {
            true
        } else {
            self.error(
                span,
                format!(
                    "invalid {what} {name:?}: use letters, digits and _, not starting with a digit"
                ),
            );
            false
        }
    }

    fn labels(&mut self, map: Option<&Spanned<StringMap>>) -> Option<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (key, value) in map.iter().flat_map(|m| m.get_ref().0.iter()) {
            ok &= self.value_name(key.get_ref(), key.span(), "label name");
            match self.text(value) {
                Some(v) => {
                    out.insert(key.get_ref().clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// An `http://` or `https://` URL with a host; shown with its credentials redacted.
    pub(super) fn http_url(&mut self, v: &Spanned<String>, key: &str) -> Option<String> {
        let text = self.text(v)?;
        if !is_http_url(&text) {
            self.error(
                v.span(),
                format!(
                    "invalid {key} {:?}: expected http:// or https:// followed by a host",
                    redact_url(&text)
                ),
            );
            return None;
        }
        Some(text)
    }

    /// Request headers (of an http check or a webhook): HTTP token names, values secret and
    /// free of line breaks. Messages name the header, never the value.
    pub(super) fn headers(&mut self, map: Option<&Spanned<StringMap>>) -> Vec<(String, Secret)> {
        let mut headers = Vec::new();
        for (key, value) in map.iter().flat_map(|m| m.get_ref().0.iter()) {
            let name = key.get_ref();
            if name.is_empty() || !name.chars().all(is_token_char) {
                self.error(
                    key.span(),
                    format!(
                        "invalid header name {name:?}: use letters, digits and - (an HTTP token)"
                    ),
                );
            }
            if let Some(text) = self.text(value) {
                if text.contains(['\r', '\n', '\0']) {
                    self.error(
                        value.span(),
                        format!("value of header {name:?} must not contain line breaks or NUL"),
                    );
                }
                headers.push((name.clone(), Secret::new(text)));
            }
        }
        headers
    }

    /// `Some(None)` when absent or empty after interpolation (so `ca_file = "${CA_FILE:-}"`
    /// makes the CA optional per deployment), `Some(Some(path))` when readable PEM, `None` on
    /// error.
    pub(super) fn ca_file(&mut self, v: Option<&Spanned<String>>) -> Option<Option<PathBuf>> {
        let Some(v) = v else { return Some(None) };
        let text = self.text(v)?;
        if text.is_empty() {
            return Some(None);
        }
        let path = self.dir().join(&text);
        match (self.host.read)(&path) {
            Err(e) => {
                self.error(v.span(), format!("cannot read ca_file {text:?}: {e}"));
                None
            }
            Ok(bytes) if !contains(&bytes, b"-----BEGIN CERTIFICATE-----") => {
                self.error(
                    v.span(),
                    format!(
                        "ca_file {text:?} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    ),
                );
                None
            }
            Ok(_) => Some(Some(path)),
        }
    }

    /// `command = [...]` or `shell = "..."`, exactly one (of an exec check or a hook);
    /// `shell_key` is the span of the `shell` key, `missing_in` ends the message when neither
    /// is set (the table, and an example).
    pub(super) fn program(
        &mut self,
        command: Option<&Spanned<Vec<Spanned<String>>>>,
        shell: Option<&Spanned<String>>,
        shell_key: Option<Span>,
        header: &Span,
        missing_in: &str,
    ) -> Option<ExecProgram> {
        match (command, shell) {
            (Some(_), Some(shell)) => {
                self.error(
                    shell_key.unwrap_or_else(|| shell.span()),
                    "set command or shell, not both (command runs the program directly, shell runs /bin/sh -c)",
                );
                None
            }
            (None, None) => {
                self.error(
                    header.clone(),
                    format!(r#"missing required key "command" (or "shell") in {missing_in}"#),
                );
                None
            }
            (Some(command), None) => self.command(command).map(ExecProgram::Argv),
            (None, Some(shell)) => self.text(shell).and_then(|script| {
                if script.trim().is_empty() {
                    self.error(shell.span(), "shell must not be empty");
                    None
                } else if script.contains('\0') {
                    self.error(shell.span(), "shell must not contain NUL");
                    None
                } else {
                    Some(ExecProgram::Shell(script))
                }
            }),
        }
    }

    /// `env = { NAME = "value" }` of an exec check or a hook, interpolated. Values may be
    /// credentials: messages name the variable, never the value.
    pub(super) fn env(&mut self, map: Option<&Spanned<StringMap>>) -> Vec<(String, Secret)> {
        let mut env = Vec::new();
        for (key, value) in map.iter().flat_map(|m| m.get_ref().0.iter()) {
            let name = key.get_ref();
            self.value_name(name, key.span(), "environment variable name");
            if let Some(text) = self.text(value) {
                if text.contains('\0') {
                    self.error(
                        value.span(),
                        format!("value of environment variable {name:?} must not contain NUL"),
                    );
                }
                env.push((name.clone(), Secret::new(text)));
            }
        }
        env
    }

    /// `workdir = "..."`, joined to this file's directory when relative. `Some(None)` when
    /// absent, `None` on error.
    pub(super) fn workdir(&mut self, v: Option<&Spanned<String>>) -> Option<Option<PathBuf>> {
        let Some(v) = v else { return Some(None) };
        let text = self.text(v)?;
        if text.is_empty() || text.contains('\0') {
            self.error(
                v.span(),
                r#"workdir must name a directory, e.g. "/var/lib/warden""#,
            );
            return None;
        }
        Some(Some(self.dir().join(text)))
    }

    /// `command = [...]`: the argv, interpolated. A relative program path with a `/` is taken
    /// relative to the config file's directory (like `ca_file`); a bare name is looked up in
    /// `PATH` when the check runs.
    pub(super) fn command(&mut self, v: &Spanned<Vec<Spanned<String>>>) -> Option<Vec<String>> {
        let items = v.get_ref();
        let Some(first) = items.first() else {
            self.error(
                v.span(),
                r#"command must not be empty: the program, then its arguments, e.g. ["check_tcp", "-H", "127.0.0.1", "-p", "6379"]"#,
            );
            return None;
        };
        let mut argv = Vec::with_capacity(items.len());
        for item in items {
            let text = self.text(item)?;
            if text.contains('\0') {
                self.error(item.span(), "command arguments must not contain NUL");
                return None;
            }
            argv.push(text);
        }
        if argv[0].trim().is_empty() {
            self.error(
                first.span(),
                "command[0] must name the program to run, e.g. \"/usr/lib/nagios/plugins/check_tcp\"",
            );
            return None;
        }
        if argv[0].contains('/') && Path::new(&argv[0]).is_relative() {
            argv[0] = self.dir().join(&argv[0]).to_string_lossy().into_owned();
        }
        Some(argv)
    }
}

/// `unknown check "apii"; known checks: "api", ...`: the known names of a kind (`check`,
/// `notifier`, `hook`), closest first.
pub(super) fn unknown_name_message(what: &str, wanted: &str, known: &[String]) -> String {
    let whats = match what.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{what}s"),
    };
    if known.is_empty() {
        return format!("unknown {what} {wanted:?}; no {whats} are defined");
    }
    let mut ranked: Vec<(usize, usize, &String)> = known
        .iter()
        .enumerate()
        .map(|(i, name)| (edit_distance(wanted, name), i, name))
        .collect();
    ranked.sort();
    let shown: Vec<String> = ranked
        .iter()
        .take(5)
        .map(|(_, _, n)| format!("{n:?}"))
        .collect();
    let mut message = format!(
        "unknown {what} {wanted:?}; known {whats}: {}",
        shown.join(", ")
    );
    if known.len() > 5 {
        message.push_str(&format!(" (and {} more)", known.len() - 5));
    }
    message
}

/// The closest valid key, if close enough to be a typo.
pub(super) fn suggest<'v>(key: &str, valid: impl Iterator<Item = &'v str>) -> Option<&'v str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    valid
        .map(|v| (edit_distance(key, v), v))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Levenshtein distance in characters.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(super) fn is_http_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit('@').next().unwrap_or_default();
    !host.is_empty() && !host.starts_with(':') && !url.contains(char::is_whitespace)
}

/// The host of a `host:port` address (without IPv6 brackets), if the port is numeric.
fn split_host_port(s: &str) -> Option<&str> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':')?;
        if host.contains(':') {
            return None;
        }
        (host, port)
    };
    let valid_port =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok();
    (!host.is_empty() && !host.contains(char::is_whitespace) && valid_port).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("127.0.0.1:5432", Some("127.0.0.1")),
            ("db.internal:6379", Some("db.internal")),
            ("[::1]:443", Some("::1")),
            ("localhost", None),
            ("localhost:", None),
            ("localhost:http", None),
            (":80", None),
            ("::1:443", None),
            ("h:70000", None),
        ];
        for (input, host) in cases {
            assert_eq!(split_host_port(input), *host, "{input:?}");
        }
    }

    #[test]
    fn recognizes_urls() {
        for (url, ok) in [
            ("http://127.0.0.1:8080/health", true),
            ("https://user:pw@example.com", true),
            ("http://", false),
            ("ftp://x", false),
            ("http://:80/", false),
            ("http://a b/", false),
        ] {
            assert_eq!(is_http_url(url), ok, "{url:?}");
        }
    }

    #[test]
    fn suggests_close_keys() {
        let keys = ["url", "interval", "timeout", "expect_status"];
        let cases: &[(&str, Option<&str>)] = &[
            ("urll", Some("url")),
            ("intervall", Some("interval")),
            ("expected_status", Some("expect_status")),
            ("timout", Some("timeout")),
            ("zzz", None),
            ("colour", None),
        ];
        for (key, want) in cases {
            assert_eq!(suggest(key, keys.iter().copied()), *want, "{key:?}");
        }
    }
}
