//! The alert-state stage: observations in, rule transitions and a status snapshot out.
//!
//! [`Engine`] owns the latest observation of every check and a [`RuleState`] per series of
//! every rule, and feeds each observation to the rules that read its check. A rule reading a
//! scalar value has one series, without labels, for its whole life. A rule reading labelled
//! series (`RuleConfig::series`) has one state per label set its check reported: a series
//! appears with its first value, a failed probe steps every series it has (`on_error`), and a
//! series absent from the successful observations for the rule's `gone_after` (counted from
//! its last value or the last failed probe, which is no evidence either way) is dropped with
//! a transition to `ok` (reason `series_gone`), so its alert resolves and says why. It is synchronous and does
//! no I/O and no clock reads: the driver (`app`) passes `now` in, records metrics and logs,
//! and publishes [`Status`] snapshots for the HTTP server to read.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::check::Observation;
use crate::clock::Timestamp;
use crate::config::{
    CheckConfig, Config, LevelConfig, RuleConfig, Sli, SloConfig, MAX_SERIES_ROWS,
};
use crate::labels::{self, Labels};
use crate::rule::{self, RuleState, Sample, State, Transition, TransitionReason};
use crate::series;
use crate::slo;

/// How often the store drops samples its retention no longer needs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// How much history the store keeps: what the longest expression (of a rule or a validation
/// window) reads, plus a minute; none without expressions.
fn retention(config: &Config) -> std::time::Duration {
    let expressions = config
        .rules
        .iter()
        .filter_map(|r| r.expr.as_ref())
        .chain(config.slos.iter().flat_map(slo_expressions))
        .map(|e| e.0.reach())
        // A validation window reads its baseline and its marks' expressions from the store.
        .chain(
            config
                .windows
                .iter()
                .filter(|w| w.has_expressions())
                .map(|w| w.reach()),
        )
        .map(|reach| reach + std::time::Duration::from_secs(60))
        .max()
        .unwrap_or_default();
    // A scrape may ask to keep more (for queries reading further back than any rule).
    let asked = config
        .checks
        .iter()
        .filter_map(|c| match &c.kind {
            crate::config::CheckKind::Scrape(s) => s.retention,
            _ => None,
        })
        .max()
        .unwrap_or_default();
    expressions.max(asked)
}

/// The counter expressions an SLO reads (none for a probe SLI).
fn slo_expressions(slo: &SloConfig) -> Vec<&crate::config::RuleExpr> {
    match &slo.sli {
        Sli::Probes => Vec::new(),
        Sli::Counters { good, total } => vec![good, total],
    }
}

/// An SLO's history and last evaluation; its rule steps on the level it calls for.
struct SloEntry {
    config: SloConfig,
    /// Index into `Engine::rules` of the SLO's rule.
    rule: Option<usize>,
    history: slo::History,
    /// The counter expressions' last rows (`slo::counter_increase`).
    good: Vec<(Labels, f64)>,
    total: Vec<(Labels, f64)>,
    last: Option<slo::Evaluation>,
    /// Why the counter expressions could not be read last time.
    error: Option<String>,
}

impl SloEntry {
    /// Counts what `obs` says (a probe, or the counters' increases over `store`), drops what
    /// the period no longer covers, and evaluates.
    fn observe(&mut self, obs: &Observation, store: &series::Store, now: Timestamp) {
        match &self.config.sli {
            Sli::Probes => self
                .history
                .record(now, if obs.is_up() { 1.0 } else { 0.0 }, 1.0),
            Sli::Counters { good, total } => {
                let read =
                    |e: &crate::config::RuleExpr| e.0.eval(store, now.as_millis()).map(rows_of);
                match (read(good), read(total)) {
                    (Ok(g), Ok(t)) => {
                        let g = slo::counter_increase(&mut self.good, g);
                        let t = slo::counter_increase(&mut self.total, t);
                        self.history.record(now, g, t);
                        self.error = None;
                    }
                    (Err(e), _) | (_, Err(e)) => self.error = Some(e.to_string()),
                }
            }
        }
        self.history.prune(now, self.config.period);
        self.last = Some(slo::evaluate(&self.config, &self.history, now));
    }
}

/// A rule's transition, with the rule and the series it belongs to.
#[derive(Debug, Clone)]
pub struct RuleTransition {
    pub rule: String,
    /// The series' labels; empty for a rule reading a scalar value.
    pub labels: Labels,
    pub check: String,
    pub transition: Transition,
}

struct CheckEntry {
    config: Arc<CheckConfig>,
    last: Option<Observation>,
    /// When the check last went up or down.
    since: Option<Timestamp>,
    runs: u64,
    /// Probes failed in a row (0 while up).
    failures: u32,
    /// Indexes into `Engine::rules` of the rules that read this check.
    rules: Vec<usize>,
    /// This check's part of the status snapshot, built on demand and dropped whenever the
    /// entry changes, so a snapshot of 10,000 checks rebuilds only those that ran since the
    /// last one. Anything that changes the entry must `take()` it.
    snapshot: OnceCell<Arc<CheckStatus>>,
}

struct RuleEntry {
    config: Arc<RuleConfig>,
    /// One entry per series. A scalar rule has exactly one, with no labels, from the start.
    series: SeriesMap,
    /// A series rule: whether its check's last observation succeeded (`None`: none yet). Its
    /// state while it has no series: unknown until a probe succeeded, then ok.
    read_ok: Option<bool>,
    /// The snapshot of a series rule with no series; dropped whenever the rule steps.
    empty_snapshot: OnceCell<Arc<RuleStatus>>,
    /// An `expr` rule: why its last evaluation failed.
    last_error: Option<String>,
}

/// An expression's value as rows: a vector's samples without the metric name (as an
/// alerting rule's labels), a scalar as one unlabelled row.
fn rows_of(value: crate::promql::Value) -> Vec<(Labels, f64)> {
    match value {
        crate::promql::Value::Vector(v) => v
            .into_iter()
            .map(|s| {
                let mut labels = s.labels;
                labels.remove(crate::promql::METRIC_NAME);
                (labels, s.value)
            })
            .collect(),
        crate::promql::Value::Scalar(v) => vec![(Labels::new(), v)],
        _ => Vec::new(),
    }
}

struct SeriesEntry {
    state: RuleState,
    last_transition: Option<Transition>,
    /// When the series last had a value (or was created): `gone_after` counts from here.
    last_seen: Timestamp,
    /// As `CheckEntry::snapshot`: dropped whenever the series steps.
    snapshot: OnceCell<Arc<RuleStatus>>,
}

/// A rule's series by label set, sorted. A `Vec`, not a `BTreeMap`: nearly every rule has one
/// series, and a B-tree node reserves room for eleven (about 2.7 KB a rule at 10,000 rules).
#[derive(Default)]
struct SeriesMap(Vec<(Labels, SeriesEntry)>);

impl SeriesMap {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = (&Labels, &SeriesEntry)> {
        self.0.iter().map(|(l, e)| (l, e))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&Labels, &mut SeriesEntry)> {
        self.0.iter_mut().map(|(l, e)| (&*l, e))
    }

    fn values(&self) -> impl Iterator<Item = &SeriesEntry> {
        self.0.iter().map(|(_, e)| e)
    }

    fn into_keys(self) -> impl Iterator<Item = Labels> {
        self.0.into_iter().map(|(l, _)| l)
    }

    /// The entry of `labels`, made with `make` when absent.
    fn get_or_insert_with(
        &mut self,
        labels: &Labels,
        make: impl FnOnce() -> SeriesEntry,
    ) -> &mut SeriesEntry {
        let i = match self.0.binary_search_by(|(l, _)| l.cmp(labels)) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (labels.clone(), make()));
                i
            }
        };
        &mut self.0[i].1
    }

    fn insert(&mut self, labels: Labels, entry: SeriesEntry) {
        match self.0.binary_search_by(|(l, _)| l.cmp(&labels)) {
            Ok(i) => self.0[i].1 = entry,
            Err(i) => self.0.insert(i, (labels, entry)),
        }
    }

    fn retain(&mut self, mut keep: impl FnMut(&Labels, &mut SeriesEntry) -> bool) {
        self.0.retain_mut(|(l, e)| keep(l, e));
    }
}

impl SeriesEntry {
    fn new(now: Timestamp) -> Self {
        SeriesEntry {
            state: RuleState::new(now),
            last_transition: None,
            last_seen: now,
            snapshot: OnceCell::new(),
        }
    }
}

impl RuleEntry {
    fn new(config: &Arc<RuleConfig>, now: Timestamp) -> Self {
        // A scalar rule has exactly one series, for ever: no room for more (a `Vec` would
        // make room for four, a kilobyte per rule at 10,000 rules).
        let series = match config.series {
            None => SeriesMap(vec![(Labels::new(), SeriesEntry::new(now))]),
            Some(_) => SeriesMap::default(),
        };
        RuleEntry {
            config: config.clone(),
            series,
            read_ok: None,
            empty_snapshot: OnceCell::new(),
            last_error: None,
        }
    }

    /// The rule's state over its series: the worst, or for a series rule without series,
    /// unknown until its check was read and ok after.
    fn state(&self) -> State {
        if self.series.is_empty() {
            return match self.read_ok {
                Some(true) => State::Ok,
                _ => State::Unknown,
            };
        }
        worst(self.series.values().map(|s| s.state.state()))
    }

    /// Steps the rule's one series on `value` (an SLO's level).
    fn apply_value(
        &mut self,
        value: f64,
        check: &str,
        now: Timestamp,
        out: &mut Vec<RuleTransition>,
    ) {
        for (labels, entry) in self.series.iter_mut() {
            entry.snapshot.take();
            if let Some(t) = rule::step(&self.config, &mut entry.state, Sample::Value(value), now) {
                entry.last_transition = Some(t.clone());
                out.push(RuleTransition {
                    rule: self.config.name.clone(),
                    labels: labels.clone(),
                    check: check.to_string(),
                    transition: t,
                });
            }
        }
    }

    /// Steps the rule on `obs` (an `expr` rule on its expression's value over `store` at
    /// `now`), appending its series' transitions to `out`.
    fn apply(
        &mut self,
        obs: &Observation,
        store: &series::Store,
        now: Timestamp,
        out: &mut Vec<RuleTransition>,
    ) {
        let config = &self.config;
        let mut step = |labels: &Labels, entry: &mut SeriesEntry, sample: Sample| {
            entry.snapshot.take();
            if let Some(t) = rule::step(config, &mut entry.state, sample, now) {
                entry.last_transition = Some(t.clone());
                out.push(RuleTransition {
                    rule: config.name.clone(),
                    labels: labels.clone(),
                    check: obs.check.clone(),
                    transition: t,
                });
            }
        };
        let Some(gone_after) = config.series else {
            let sample = sample_for(config, obs);
            for (labels, entry) in self.series.iter_mut() {
                step(labels, entry, sample);
            }
            return;
        };
        self.empty_snapshot.take();
        // An expression: its value now, one row per label set; an empty result is the
        // unlabelled series' missing value (`on_missing`), as a scalar rule's absent value.
        let evaluated;
        let rows: &[(Labels, f64)] = match &config.expr {
            Some(expr) => match expr.0.eval(store, now.as_millis()).and_then(|v| {
                // One state, alert and metric series per result series: bounded, as a
                // postgres or prometheus series query is.
                match &v {
                    crate::promql::Value::Vector(s) if s.len() > MAX_SERIES_ROWS => {
                        Err(crate::promql::EvalError(format!(
                            "the expression gave {} series, more than {MAX_SERIES_ROWS}: \
                             aggregate it (sum by, topk)",
                            s.len()
                        )))
                    }
                    _ => Ok(v),
                }
            }) {
                Ok(value) => {
                    evaluated = rows_of(value);
                    self.read_ok = Some(true);
                    self.last_error = None;
                    if evaluated.is_empty() {
                        let entry = self
                            .series
                            .get_or_insert_with(&Labels::new(), || SeriesEntry::new(now));
                        entry.last_seen = now;
                        step(&Labels::new(), entry, Sample::Missing);
                    }
                    &evaluated
                }
                Err(e) => {
                    self.read_ok = Some(false);
                    self.last_error = Some(e.to_string());
                    for (labels, entry) in self.series.iter_mut() {
                        entry.last_seen = now;
                        step(labels, entry, Sample::Failed);
                    }
                    return;
                }
            },
            None => {
                self.read_ok = Some(obs.is_up());
                if obs.outcome.is_err() {
                    // A probe that could not read is no evidence that a series is gone:
                    // absence counts only across successful probes. With no series yet (it
                    // failed from the start), the rule's unlabelled series carries the
                    // failure, so `on_error` applies (and pages, when it says so); it goes
                    // like any series once successful probes stop showing it.
                    if self.series.is_empty() {
                        self.series.insert(Labels::new(), SeriesEntry::new(now));
                    }
                    for (labels, entry) in self.series.iter_mut() {
                        entry.last_seen = now;
                        step(labels, entry, Sample::Failed);
                    }
                    return;
                }
                match obs.vectors.get(&config.value) {
                    Some(rows) => rows.as_slice(),
                    // The probe read fine but did not produce the value (an empty answer of a
                    // `prometheus` source): the unlabelled series' missing value, as for an
                    // expression's empty result. A query with no rows (postgres) has its value,
                    // empty: no series, nothing missing.
                    None => {
                        let entry = self
                            .series
                            .get_or_insert_with(&Labels::new(), || SeriesEntry::new(now));
                        entry.last_seen = now;
                        step(&Labels::new(), entry, Sample::Missing);
                        &[]
                    }
                }
            }
        };
        for (labels, value) in rows {
            let entry = self
                .series
                .get_or_insert_with(labels, || SeriesEntry::new(now));
            entry.last_seen = now;
            step(labels, entry, Sample::Value(*value));
        }
        let mut present: std::collections::HashSet<&Labels> = rows.iter().map(|(l, _)| l).collect();
        let unlabelled = Labels::new();
        let missing = match &config.expr {
            Some(_) => rows.is_empty(),
            None => !obs.vectors.contains_key(&config.value),
        };
        if missing {
            present.insert(&unlabelled);
        }
        self.series.retain(|labels, entry| {
            if present.contains(labels) || now.since(entry.last_seen) < gone_after {
                return true;
            }
            let from = entry.state.state();
            if from != State::Ok {
                out.push(RuleTransition {
                    rule: config.name.clone(),
                    labels: labels.clone(),
                    check: obs.check.clone(),
                    transition: Transition {
                        from,
                        to: State::Ok,
                        at: now,
                        value: None,
                        reason: TransitionReason::SeriesGone,
                    },
                });
            }
            false
        });
    }
}

pub struct Engine {
    checks: Vec<CheckEntry>,
    rules: Vec<RuleEntry>,
    by_name: HashMap<String, usize>,
    /// Samples for `expr` rules: scrapes and every check's values. Empty (and not written)
    /// when no rule has an expression.
    store: series::Shared,
    /// When the store last dropped what its retention no longer needs.
    pruned: Timestamp,
    slos: Vec<SloEntry>,
}

/// How an observation changes its check, for the log: the log says when a check goes down
/// (with the probe's reason) or comes back, not at every run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckChange {
    /// Down for the first time, after being up, or for another kind of reason than before.
    Failed { kind: &'static str, message: String },
    /// Up again after being down.
    Recovered,
}

/// The sample a rule reads from an observation.
///
/// A value the probe produced is used even if the probe failed (an HTTP 503 still has a
/// `status_code`), except `duration_seconds`: a failed probe's duration is not a latency.
pub fn sample_for(rule: &RuleConfig, obs: &Observation) -> Sample {
    let failed = obs.outcome.is_err();
    match obs.values.get(&rule.value) {
        Some(_) if failed && rule.value == "duration_seconds" => Sample::Failed,
        Some(v) => Sample::Value(*v),
        None if failed => Sample::Failed,
        None => Sample::Missing,
    }
}

impl Engine {
    pub fn new(config: &Config, now: Timestamp) -> Self {
        let mut by_name = HashMap::with_capacity(config.checks.len());
        let mut checks: Vec<CheckEntry> = config
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                by_name.insert(c.name.clone(), i);
                CheckEntry {
                    config: c.clone(),
                    last: None,
                    since: None,
                    runs: 0,
                    failures: 0,
                    rules: Vec::new(),
                    snapshot: OnceCell::new(),
                }
            })
            .collect();
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if let Some(&c) = by_name.get(&r.check) {
                    checks[c].rules.push(i);
                }
                RuleEntry::new(r, now)
            })
            .collect();
        let slos = config
            .slos
            .iter()
            .map(|c| SloEntry {
                config: c.clone(),
                rule: config.rules.iter().position(|r| r.name == c.name),
                history: slo::History::new(),
                good: Vec::new(),
                total: Vec::new(),
                last: None,
                error: None,
            })
            .collect();
        Engine {
            slos,
            checks,
            rules,
            by_name,
            store: std::sync::Arc::new(std::sync::RwLock::new(series::Store::new(retention(
                config,
            )))),
            pruned: now,
        }
    }

    /// How many checks the config has.
    pub fn checks(&self) -> usize {
        self.checks.len()
    }

    /// Whether a rule with an expression is evaluated after `check`'s observations.
    pub fn has_expressions(&self, check: &str) -> bool {
        self.by_name.get(check).is_some_and(|&ci| {
            self.checks[ci]
                .rules
                .iter()
                .any(|&ri| self.rules[ri].config.expr.is_some())
        }) || self
            .slos
            .iter()
            .any(|s| s.config.check == check && !slo_expressions(&s.config).is_empty())
    }

    /// The samples `expr` rules read, as the query API shares them.
    pub fn store(&self) -> series::Shared {
        self.store.clone()
    }

    /// Switches to a new config, keeping what is still valid: a check whose config is unchanged
    /// keeps its last observation and run count; a rule whose config and check are unchanged
    /// keeps its state, history and last transition. Everything else starts fresh (a changed
    /// check is a different probe, so its old samples say nothing about the new one).
    pub fn reconfigure(&mut self, config: &Config, now: Timestamp) -> Reconfigured {
        let mut next = Engine::new(config, now);
        // The samples stay (a reload must not cost the expressions their history); the
        // retention follows the new expressions.
        self.store
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .set_retention(retention(config));
        next.store = self.store.clone();
        next.pruned = self.pruned;
        let mut old_checks: HashMap<String, CheckEntry> = std::mem::take(&mut self.checks)
            .into_iter()
            .map(|c| (c.config.name.clone(), c))
            .collect();
        let mut old_rules: HashMap<String, RuleEntry> = std::mem::take(&mut self.rules)
            .into_iter()
            .map(|r| (r.config.name.clone(), r))
            .collect();
        let mut summary = Reconfigured::default();
        let mut kept_checks = std::collections::HashSet::new();
        for entry in &mut next.checks {
            match old_checks.remove(&entry.config.name) {
                Some(old) if old.config.probes_like(&entry.config) => {
                    entry.last = old.last;
                    entry.since = old.since;
                    entry.runs = old.runs;
                    entry.failures = old.failures;
                    kept_checks.insert(entry.config.name.clone());
                    summary.checks_kept += 1;
                }
                Some(_) => summary.checks_changed += 1,
                None => summary.checks_added += 1,
            }
        }
        summary.checks_removed = old_checks.len();
        for entry in &mut next.rules {
            match old_rules.remove(&entry.config.name) {
                Some(old)
                    if old.config == entry.config && kept_checks.contains(&entry.config.check) =>
                {
                    entry.series = old.series;
                    entry.read_ok = old.read_ok;
                    summary.rules_kept += 1;
                }
                Some(old) => {
                    // Starts fresh, but remembers which labelled series it had: one that never
                    // comes back must still be dropped (and its alert resolved) after
                    // `gone_after`.
                    if entry.config.series.is_some() && old.config.series.is_some() {
                        for labels in old.series.into_keys() {
                            entry.series.insert(labels, SeriesEntry::new(now));
                        }
                    }
                    summary.rules_reset += 1;
                }
                None => summary.rules_added += 1,
            }
        }
        summary.rules_removed = old_rules.len();
        // An SLO's history is its name's: a reload keeps it (and the counters' last rows while
        // the expressions are the same).
        let mut old_slos: HashMap<String, SloEntry> = std::mem::take(&mut self.slos)
            .into_iter()
            .map(|s| (s.config.name.clone(), s))
            .collect();
        for entry in &mut next.slos {
            if let Some(old) = old_slos.remove(&entry.config.name) {
                entry.history = old.history;
                if old.config.sli == entry.config.sli {
                    entry.good = old.good;
                    entry.total = old.total;
                }
                entry.history.prune(now, entry.config.period);
                entry.last = Some(slo::evaluate(&entry.config, &entry.history, now));
            }
        }
        *self = next;
        summary
    }

    /// What `obs` would change about its check's up/down state (see [`CheckChange`]); `None`
    /// when it says what the previous observation said (or for an unknown check).
    pub fn check_change(&self, obs: &Observation) -> Option<CheckChange> {
        let entry = &self.checks[*self.by_name.get(&obs.check)?];
        let before = entry
            .last
            .as_ref()
            .map(|o| o.outcome.as_ref().map_err(|e| e.kind));
        match (&obs.outcome, before) {
            (Ok(()), Some(Err(_))) => Some(CheckChange::Recovered),
            (Ok(()), _) => None,
            (Err(e), Some(Err(kind))) if kind == e.kind => None,
            (Err(e), _) => Some(CheckChange::Failed {
                kind: e.kind.as_str(),
                message: e.message.clone(),
            }),
        }
    }

    /// Records `obs` and steps every rule reading its check. Returns the rules' transitions.
    pub fn apply(&mut self, mut obs: Observation, now: Timestamp) -> Vec<RuleTransition> {
        let Some(&ci) = self.by_name.get(&obs.check) else {
            return Vec::new();
        };
        let entry = &mut self.checks[ci];
        let scraped = obs.scraped.take();
        let mut store = self.store.write().unwrap_or_else(|e| e.into_inner());
        if !store.retention().is_zero() {
            let t = obs.at.as_millis();
            match scraped {
                Some(samples) => {
                    store.ingest(&obs.check, samples, t);
                }
                None if obs.outcome.is_err() => {
                    store.scrape_failed(&obs.check, t);
                }
                None => {}
            }
            // Every check's values are series too: `up{check="api"}`, ...
            for (name, value) in &obs.values {
                let mut labels = entry.config.labels.clone();
                labels.insert("check".into(), obs.check.clone());
                labels.insert(crate::promql::METRIC_NAME.into(), name.clone());
                store.append(labels, t, *value);
            }
            if now.since(self.pruned) >= PRUNE_EVERY {
                store.prune(now.as_millis());
                self.pruned = now;
            }
        }
        drop(store);
        let was_up = entry.last.as_ref().map(Observation::is_up);
        if was_up != Some(obs.is_up()) {
            entry.since = Some(obs.at);
        }
        entry.runs += 1;
        entry.failures = if obs.is_up() {
            0
        } else {
            entry.failures.saturating_add(1)
        };
        entry.snapshot.take();
        let mut out = Vec::new();
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        // SLOs count the observation first; their rules step on the level it leaves.
        let mut levels: Vec<(usize, f64)> = Vec::new();
        for s in self.slos.iter_mut().filter(|s| s.config.check == obs.check) {
            s.observe(&obs, &store, now);
            if let (Some(ri), Some(e)) = (s.rule, &s.last) {
                levels.push((ri, e.level.value()));
            }
        }
        for &ri in &entry.rules {
            match levels.iter().find(|(r, _)| *r == ri) {
                Some((_, level)) => self.rules[ri].apply_value(*level, &obs.check, now, &mut out),
                None => self.rules[ri].apply(&obs, &store, now, &mut out),
            }
        }
        drop(store);
        entry.last = Some(obs);
        out
    }

    /// Series a previous process (or config) left with an alert: `(rule, labels)` of labelled
    /// series not known here yet get a state (unknown), so that if they never come back they
    /// are dropped after their rule's `gone_after` like any series, and their alerts resolve.
    /// Labels of rules that read no labelled series are ignored.
    pub fn seed(&mut self, series: &[(String, Labels)], now: Timestamp) {
        for (rule, labels) in series {
            let Some(entry) = self.rules.iter_mut().find(|r| &r.config.name == rule) else {
                continue;
            };
            if entry.config.series.is_some() && !labels.is_empty() {
                entry
                    .series
                    .get_or_insert_with(labels, || SeriesEntry::new(now));
                entry.empty_snapshot.take();
            }
        }
    }

    /// The series of the rules that read `check`: each rule with its series' labels and
    /// states.
    pub fn rules_of(
        &self,
        check: &str,
    ) -> impl Iterator<Item = (&RuleConfig, impl Iterator<Item = (&Labels, &RuleState)>)> {
        let indexes = self
            .by_name
            .get(check)
            .map(|&ci| self.checks[ci].rules.as_slice())
            .unwrap_or_default();
        indexes.iter().map(|&ri| {
            let rule = &self.rules[ri];
            (
                &*rule.config,
                rule.series.iter().map(|(labels, s)| (labels, &s.state)),
            )
        })
    }

    /// Stored SLO history (per SLO name, its minutes) to start from: replaces what the SLO
    /// has, and counts nothing towards what is to be stored again. Unknown SLOs are ignored.
    pub fn load_slo_history(
        &mut self,
        history: impl IntoIterator<Item = (String, Vec<slo::Bucket>)>,
        now: Timestamp,
    ) {
        for (name, buckets) in history {
            if let Some(s) = self.slos.iter_mut().find(|s| s.config.name == name) {
                s.history = slo::History::from_buckets(buckets);
                s.history.prune(now, s.config.period);
                s.last = Some(slo::evaluate(&s.config, &s.history, now));
            }
        }
    }

    /// Every SLO's minutes that closed since the last call (see `slo::History::take_closed`),
    /// to be stored, with the oldest minute its period still needs.
    pub fn take_slo_minutes(&mut self, now: Timestamp) -> Vec<SloMinutes> {
        self.slos
            .iter_mut()
            .filter_map(|s| {
                let minutes = s.history.take_closed(now);
                (!minutes.is_empty()).then(|| SloMinutes {
                    slo: s.config.name.clone(),
                    keep_from: slo::minute_of(now).saturating_sub(slo::minutes(s.config.period)),
                    minutes,
                })
            })
            .collect()
    }

    /// The SLOs read after `check`'s observations, with their last evaluation.
    pub fn slos_of<'a>(
        &'a self,
        check: &'a str,
    ) -> impl Iterator<Item = (&'a SloConfig, Option<&'a slo::Evaluation>)> + 'a {
        self.slos
            .iter()
            .filter(move |s| s.config.check == check)
            .map(|s| (&s.config, s.last.as_ref()))
    }

    /// A point-in-time view of every check and rule. Entries unchanged since the previous
    /// snapshot are shared with it, not rebuilt.
    pub fn status(&self, now: Timestamp) -> Status {
        let checks: Vec<Arc<CheckStatus>> = self
            .checks
            .iter()
            .map(|e| {
                e.snapshot
                    .get_or_init(|| Arc::new(CheckStatus::of(e)))
                    .clone()
            })
            .collect();
        let mut rules: Vec<Arc<RuleStatus>> = Vec::with_capacity(self.rules.len());
        for e in &self.rules {
            if e.series.is_empty() {
                rules.push(
                    e.empty_snapshot
                        .get_or_init(|| {
                            let mut status = RuleStatus::empty(e);
                            status.error = e.last_error.clone();
                            Arc::new(status)
                        })
                        .clone(),
                );
            }
            for (labels, s) in e.series.iter() {
                rules.push(
                    s.snapshot
                        .get_or_init(|| {
                            let mut status = RuleStatus::of(&e.config, labels, s);
                            status.error = e.last_error.clone();
                            Arc::new(status)
                        })
                        .clone(),
                );
            }
        }
        let unruled = self
            .checks
            .iter()
            .zip(&checks)
            .filter(|(entry, _)| entry.rules.is_empty())
            .map(|(_, status)| status.state);
        let state = overall_state(unruled, self.rules.iter().map(RuleEntry::state));
        let slos = self
            .slos
            .iter()
            .map(|s| {
                let state = s.rule.map_or(State::Unknown, |ri| self.rules[ri].state());
                SloStatus::of(s, state)
            })
            .collect();
        Status {
            generated_at: now.to_rfc3339(),
            state,
            checks,
            rules,
            skipped: Vec::new(),
            slos,
        }
    }
}

/// An SLO's minutes to store, and the oldest minute its period still needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SloMinutes {
    pub slo: String,
    pub minutes: Vec<slo::Bucket>,
    /// Stored minutes before this one can go.
    pub keep_from: u32,
}

/// An SLO in `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct SloStatus {
    pub name: String,
    pub check: String,
    /// The state of the SLO's rule (its alert).
    pub state: State,
    /// Percent, as configured.
    pub objective: f64,
    pub period: String,
    /// 1 untouched, 0 spent, below 0 overspent; `None` before the first evaluation.
    pub error_budget_remaining: Option<f64>,
    /// Events over the period.
    pub events: SloEvents,
    /// Per distinct window of the alert table, shortest first.
    pub burn_rates: Vec<SloWindow>,
    pub alerts: Vec<SloAlertStatus>,
    /// Why the counter expressions could not be read last time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloEvents {
    pub good: f64,
    pub bad: f64,
    pub total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloWindow {
    pub window: String,
    pub burn_rate: f64,
    pub events: SloEvents,
}

#[derive(Debug, Clone, Serialize)]
pub struct SloAlertStatus {
    pub severity: &'static str,
    pub burn_rate: f64,
    pub long: String,
    pub short: String,
    /// The events its long window needs before it may fire.
    pub min_events: f64,
    pub firing: bool,
}

impl SloStatus {
    fn of(s: &SloEntry, state: State) -> Self {
        let c = &s.config;
        let events = |n: &slo::Counts| SloEvents {
            good: n.good,
            bad: n.bad(),
            total: n.total,
        };
        let e = s.last.as_ref();
        SloStatus {
            name: c.name.clone(),
            check: c.check.clone(),
            state,
            objective: crate::config::percent(c.objective),
            period: crate::config::period_text(c.period),
            error_budget_remaining: e.map(|e| e.budget_remaining),
            events: events(&e.map(|e| e.period).unwrap_or_default()),
            burn_rates: e
                .map(|e| {
                    e.windows
                        .iter()
                        .map(|w| SloWindow {
                            window: crate::config::format_duration(w.window),
                            burn_rate: w.burn_rate,
                            events: events(&w.counts),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            alerts: c
                .alerts
                .iter()
                .enumerate()
                .map(|(i, a)| SloAlertStatus {
                    severity: a.severity.as_str(),
                    burn_rate: a.burn_rate,
                    long: crate::config::format_duration(a.long),
                    short: crate::config::format_duration(a.short),
                    min_events: slo::min_events(c, a),
                    firing: e.is_some_and(|e| e.firing.contains(&i)),
                })
                .collect(),
            error: s.error.clone(),
        }
    }
}

/// What a [`Engine::reconfigure`] kept, changed, added and removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconfigured {
    pub checks_kept: usize,
    pub checks_changed: usize,
    pub checks_added: usize,
    pub checks_removed: usize,
    pub rules_kept: usize,
    pub rules_reset: usize,
    pub rules_added: usize,
    pub rules_removed: usize,
}

/// The worst state over all rules, and over checks that no rule reads (a failed probe there
/// counts as critical, a check not yet run as unknown). Order: critical > unknown > warning
/// (flapping counts as warning) > ok.
fn overall_state(
    unruled_checks: impl Iterator<Item = CheckState>,
    rule_states: impl Iterator<Item = State>,
) -> State {
    let from_checks = unruled_checks.map(|c| match c {
        CheckState::Up => State::Ok,
        CheckState::Down => State::Critical,
        CheckState::Pending => State::Unknown,
    });
    worst(rule_states.chain(from_checks))
}

/// The worst of `states` (ok when there are none); the order of [`overall_state`].
fn worst(states: impl Iterator<Item = State>) -> State {
    let rank = |s: State| match s {
        State::Ok => 0,
        State::Warning | State::Flapping => 1,
        State::Unknown => 2,
        State::Critical => 3,
    };
    states.max_by_key(|s| rank(*s)).unwrap_or(State::Ok)
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub generated_at: String,
    /// Worst state over rules and unruled checks.
    pub state: State,
    pub checks: Vec<Arc<CheckStatus>>,
    pub rules: Vec<Arc<RuleStatus>>,
    /// Checks (with the rules reading them) that were not run, and why: `warden once` does not
    /// probe warden's own listener, which only `warden run` serves. Empty in the daemon.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Every SLO: budget, burn rates, alerts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slos: Vec<SloStatus>,
}

/// A check left out of a [`Status`], with the rules that read it.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub check: String,
    pub rules: Vec<String>,
    pub reason: String,
}

impl Status {
    pub fn empty(now: Timestamp) -> Self {
        Status {
            generated_at: now.to_rfc3339(),
            state: State::Unknown,
            checks: Vec::new(),
            rules: Vec::new(),
            skipped: Vec::new(),
            slos: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Up,
    Down,
    /// Not run yet.
    Pending,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorStatus {
    pub kind: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckStatus {
    pub name: String,
    pub kind: &'static str,
    pub labels: BTreeMap<String, String>,
    pub state: CheckState,
    pub since: Option<String>,
    pub last_run: Option<String>,
    pub duration_seconds: Option<f64>,
    pub interval_seconds: f64,
    pub runs: u64,
    pub values: BTreeMap<String, f64>,
    pub last_error: Option<ErrorStatus>,
    /// While a check with `retry_interval` fails: how many probes in a row failed, of the
    /// attempts that confirm it (`failing 2/3`, soft; `3/3`, hard).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing: Option<Failing>,
}

/// A re-checked failure: `failed` probes in a row of the `attempts` that confirm it.
#[derive(Debug, Clone, Serialize)]
pub struct Failing {
    pub failed: u32,
    pub attempts: u32,
    /// `soft` while re-checking, `hard` once confirmed (Nagios' terms).
    pub state: &'static str,
    /// `failing 2/3`, for people.
    pub text: String,
}

impl CheckStatus {
    fn of(e: &CheckEntry) -> Self {
        let last = e.last.as_ref();
        CheckStatus {
            name: e.config.name.clone(),
            kind: e.config.kind.name(),
            labels: e.config.labels.clone(),
            state: match last {
                None => CheckState::Pending,
                Some(o) if o.is_up() => CheckState::Up,
                Some(_) => CheckState::Down,
            },
            since: e.since.map(Timestamp::to_rfc3339),
            last_run: last.map(|o| o.at.to_rfc3339()),
            duration_seconds: last.map(|o| o.duration.as_secs_f64()),
            interval_seconds: e.config.interval.as_secs_f64(),
            runs: e.runs,
            values: last.map(|o| o.values.clone()).unwrap_or_default(),
            last_error: last
                .and_then(|o| o.outcome.as_ref().err())
                .map(|err| ErrorStatus {
                    kind: err.kind.as_str(),
                    message: err.message.clone(),
                }),
            failing: match e.config.retry {
                Some(r) if e.failures > 0 => {
                    let failed = e.failures.min(r.attempts);
                    Some(Failing {
                        failed,
                        attempts: r.attempts,
                        state: if failed < r.attempts { "soft" } else { "hard" },
                        text: format!("failing {failed}/{}", r.attempts),
                    })
                }
                _ => None,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    pub op: &'static str,
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clear: Option<String>,
}

impl Threshold {
    pub fn of(level: &LevelConfig) -> Self {
        Threshold {
            op: level.when.op.symbol(),
            value: level.when.threshold,
            clear: level
                .clear
                .map(|c| format!("{} {}", c.op.symbol(), c.threshold)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TransitionStatus {
    pub from: State,
    pub to: State,
    pub at: String,
    pub value: Option<f64>,
    pub reason: rule::TransitionReason,
}

/// One series of a rule: a scalar rule has one entry, without `series`; a rule reading
/// labelled series has one per series (`series` its labels), or while it has none one entry
/// with `series = {}`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStatus {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Labels>,
    pub check: String,
    pub value_name: String,
    pub state: State,
    pub since: String,
    pub value: Option<f64>,
    pub samples: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub warning: Option<Threshold>,
    pub critical: Option<Threshold>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flap_percent: Option<f64>,
    pub last_transition: Option<TransitionStatus>,
    /// An `expr` rule whose last evaluation failed: why (its series then read `on_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RuleStatus {
    /// The name as people read it: `rule`, or `rule{name="value"}` for a series.
    pub fn title(&self) -> String {
        match &self.series {
            Some(labels) => format!("{}{}", self.name, labels::render(labels)),
            None => self.name.clone(),
        }
    }

    /// A series rule that has no series.
    fn empty(e: &RuleEntry) -> Self {
        let c = &e.config;
        RuleStatus {
            name: c.name.clone(),
            series: Some(Labels::new()),
            check: c.check.clone(),
            value_name: c.value.clone(),
            state: e.state(),
            since: String::new(),
            value: None,
            samples: 0,
            description: c.description.clone(),
            labels: c.labels.clone(),
            warning: c.warning.as_ref().map(Threshold::of),
            critical: c.critical.as_ref().map(Threshold::of),
            flap_percent: None,
            last_transition: None,
            error: None,
        }
    }

    fn of(c: &RuleConfig, labels: &Labels, e: &SeriesEntry) -> Self {
        RuleStatus {
            name: c.name.clone(),
            series: c.series.map(|_| labels.clone()),
            check: c.check.clone(),
            value_name: c.value.clone(),
            state: e.state.state(),
            since: e.state.since().to_rfc3339(),
            value: e.state.value(),
            samples: e.state.samples(),
            description: c.description.clone(),
            labels: c.labels.clone(),
            warning: c.warning.as_ref().map(Threshold::of),
            critical: c.critical.as_ref().map(Threshold::of),
            flap_percent: c.flapping.map(|_| e.state.flap_percent()),
            last_transition: e.last_transition.as_ref().map(|t| TransitionStatus {
                from: t.from,
                to: t.to,
                at: t.at.to_rfc3339(),
                value: t.value,
                reason: t.reason,
            }),
            error: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::check::{ProbeError, ProbeErrorKind, Values};
    use crate::config::{CmpOp, Condition, LevelConfig, MissingPolicy, RuleConfig, Trigger};
    use crate::rule::TransitionReason;

    fn rule(value: &str) -> RuleConfig {
        RuleConfig {
            name: "r".into(),
            check: "c".into(),
            value: value.into(),
            description: None,
            labels: BTreeMap::new(),
            warning: None,
            critical: None,
            on_error: MissingPolicy::Unknown,
            on_missing: MissingPolicy::Unknown,
            min_samples: 1,
            flapping: None,
            series: None,
            expr: None,
        }
    }

    fn obs(ok: bool, values: &[(&str, f64)]) -> Observation {
        let values: Values = values.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        Observation {
            check: "c".into(),
            at: Timestamp(0),
            duration: Duration::from_millis(5),
            outcome: if ok {
                Ok(())
            } else {
                Err(ProbeError::new(ProbeErrorKind::Protocol, "status 503"))
            },
            values,
            vectors: Default::default(),
            scraped: None,
        }
    }

    #[test]
    fn samples_distinguish_failed_from_missing() {
        let failed = obs(
            false,
            &[
                ("up", 0.0),
                ("duration_seconds", 0.005),
                ("status_code", 503.0),
            ],
        );
        let passed = obs(true, &[("up", 1.0), ("duration_seconds", 0.005)]);
        let cases = [
            ("up", &failed, Sample::Value(0.0)),
            // What a failing probe did read is still a value.
            ("status_code", &failed, Sample::Value(503.0)),
            // A failed probe's duration is not a latency.
            ("duration_seconds", &failed, Sample::Failed),
            ("queue_depth", &failed, Sample::Failed),
            ("duration_seconds", &passed, Sample::Value(0.005)),
            ("queue_depth", &passed, Sample::Missing),
        ];
        for (value, o, expected) in cases {
            assert_eq!(sample_for(&rule(value), o), expected, "{value}");
        }
    }

    /// A config of one tcp check `c` (re-checked per `retry`) and `rules`.
    fn one_check_config(retry: Option<crate::config::Retry>, rules: Vec<RuleConfig>) -> Config {
        use crate::config::{
            AlertingConfig, CheckKind, LogConfig, LogFormat, ServerConfig, StateConfig, TcpCheck,
        };
        Config {
            path: "w.toml".into(),
            files: Vec::new(),
            server: ServerConfig {
                listen: "127.0.0.1:9731".parse().unwrap(),
                token: None,
            },
            log: LogConfig {
                format: LogFormat::Human,
                level: "info".into(),
            },
            keep_alive_targets: 0,
            checks: vec![Arc::new(CheckConfig {
                name: "c".into(),
                interval: Duration::from_secs(1),
                timeout: Duration::from_secs(1),
                retry,
                labels: BTreeMap::new(),
                kind: CheckKind::Tcp(TcpCheck {
                    address: "127.0.0.1:1".into(),
                }),
            })],
            rules: rules.into_iter().map(Arc::new).collect(),
            state: StateConfig {
                path: "w.db".into(),
                legacy: None,
            },
            alerting: AlertingConfig::default(),
            windows: Vec::new(),
            slos: Vec::new(),
            heartbeat: None,
        }
    }

    /// A rule on check `c` reading `value`, one level (`critical` or else `warning`).
    fn level_rule(
        name: &str,
        value: &str,
        severity: &str,
        when: (CmpOp, f64),
        trigger: Trigger,
    ) -> RuleConfig {
        let level = LevelConfig {
            when: Condition {
                op: when.0,
                threshold: when.1,
            },
            clear: None,
            trigger,
            recover: Default::default(),
        };
        let mut r = rule(value);
        r.name = name.into();
        if severity == "critical" {
            r.critical = Some(level);
        } else {
            r.warning = Some(level);
        }
        r
    }

    /// Issue 13 review: a rule's `count` decides how often a failing check is re-checked; a
    /// reload changing it must not reset the check's other rules (a latency `for` timer).
    #[test]
    fn a_reload_changing_only_the_retry_attempts_keeps_the_other_rules() {
        use crate::config::Retry;
        let retry = |attempts| {
            Some(Retry {
                interval: Duration::from_millis(200),
                attempts,
            })
        };
        let latency = level_rule(
            "slow",
            "duration_seconds",
            "warning",
            (CmpOp::Gt, 0.001),
            Trigger::Immediate,
        );
        let down = |count| {
            level_rule(
                "down",
                "up",
                "critical",
                (CmpOp::Lt, 1.0),
                Trigger::Consecutive(count),
            )
        };
        let before = one_check_config(retry(3), vec![latency.clone(), down(3)]);
        let mut engine = Engine::new(&before, Timestamp(0));
        engine.apply(
            obs(true, &[("up", 1.0), ("duration_seconds", 0.005)]),
            Timestamp(1),
        );
        let slow_state = |e: &Engine| {
            e.rules_of("c")
                .find(|(r, _)| r.name == "slow")
                .unwrap()
                .1
                .next()
                .unwrap()
                .1
                .state()
        };
        assert_eq!(slow_state(&engine), State::Warning);

        let after = one_check_config(retry(5), vec![latency, down(5)]);
        let summary = engine.reconfigure(&after, Timestamp(2));
        assert_eq!(
            (summary.checks_kept, summary.rules_kept, summary.rules_reset),
            (1, 1, 1)
        );
        assert_eq!(
            slow_state(&engine),
            State::Warning,
            "the latency rule kept its state"
        );
    }

    #[test]
    fn check_changes_are_reported_once_not_every_run() {
        let config = one_check_config(None, Vec::new());
        let mut engine = Engine::new(&config, Timestamp(0));
        let timeout = |mut o: Observation| {
            o.outcome = Err(ProbeError::new(ProbeErrorKind::Timeout, "no answer in 2s"));
            o
        };
        let up = obs(true, &[("up", 1.0)]);
        let down = obs(false, &[("up", 0.0)]);
        let failed = |kind, message: &str| {
            Some(CheckChange::Failed {
                kind,
                message: message.into(),
            })
        };
        // (observation, what the log must say about it)
        let timeline = [
            (up.clone(), None),
            (up.clone(), None),
            (down.clone(), failed("protocol", "status 503")),
            (down.clone(), None),
            (timeout(down.clone()), failed("timeout", "no answer in 2s")),
            (up.clone(), Some(CheckChange::Recovered)),
            (up.clone(), None),
        ];
        for (i, (o, expected)) in timeline.into_iter().enumerate() {
            assert_eq!(engine.check_change(&o), expected, "step {i}");
            engine.apply(o, Timestamp(0));
        }
        // A check that starts down says so at once.
        let mut engine = Engine::new(&config, Timestamp(0));
        assert_eq!(engine.check_change(&down), failed("protocol", "status 503"));
        engine.apply(down.clone(), Timestamp(0));
        assert_eq!(engine.check_change(&down), None);
    }

    /// A rule on `backlog`, a series value of check `c`, critical above 5, gone after 10 s.
    fn series_rule() -> RuleConfig {
        let mut r = level_rule(
            "backlog-high",
            "backlog",
            "critical",
            (CmpOp::Gt, 5.0),
            Trigger::Immediate,
        );
        r.series = Some(Duration::from_secs(10));
        r
    }

    fn queue(name: &str) -> Labels {
        [("queue".to_string(), name.to_string())].into()
    }

    /// A successful observation of `c` at `t` seconds with one `backlog` row per `(queue, depth)`.
    fn rows(t: i64, rows: &[(&str, f64)]) -> Observation {
        let mut o = obs(true, &[("up", 1.0)]);
        o.at = Timestamp(t * 1000);
        o.vectors.insert(
            "backlog".into(),
            rows.iter().map(|(q, v)| (queue(q), *v)).collect(),
        );
        o
    }

    /// (labels, from, to, reason) of each transition.
    fn moves(ts: &[RuleTransition]) -> Vec<(Labels, State, State, TransitionReason)> {
        ts.iter()
            .map(|t| {
                let tr = &t.transition;
                (t.labels.clone(), tr.from, tr.to, tr.reason)
            })
            .collect()
    }

    #[test]
    fn each_series_has_its_own_state_and_a_vanished_one_is_dropped_after_gone_after() {
        use TransitionReason::*;
        let config = one_check_config(None, vec![series_rule()]);
        let mut engine = Engine::new(&config, Timestamp(0));
        assert_eq!(engine.status(Timestamp(0)).rules[0].state, State::Unknown);

        let first = engine.apply(rows(1, &[("a", 7.0), ("b", 1.0)]), Timestamp(1000));
        assert_eq!(
            moves(&first),
            [
                (
                    queue("a"),
                    State::Unknown,
                    State::Critical,
                    ThresholdCrossed
                ),
                (queue("b"), State::Unknown, State::Ok, Recovered),
            ]
        );
        let status = engine.status(Timestamp(1000));
        let titles: Vec<String> = status.rules.iter().map(|r| r.title()).collect();
        assert_eq!(
            titles,
            [r#"backlog-high{queue="a"}"#, r#"backlog-high{queue="b"}"#]
        );
        assert_eq!(status.state, State::Critical);

        // A failed probe steps every series it has (on_error: unknown), none is dropped.
        let mut failed = obs(false, &[("up", 0.0)]);
        failed.at = Timestamp(20_000);
        let during = engine.apply(failed, Timestamp(20_000));
        assert_eq!(during.len(), 2, "both series went unknown: {during:?}");
        assert_eq!(engine.status(Timestamp(20_000)).rules.len(), 2);

        // b is back and high; a is absent, but only for 1 s of successful probes so far.
        let back = engine.apply(rows(21, &[("b", 9.0)]), Timestamp(21_000));
        assert_eq!(
            moves(&back),
            [(
                queue("b"),
                State::Unknown,
                State::Critical,
                ThresholdCrossed
            )]
        );
        // a is absent from the probes that succeeded since the failure at 20 s: 10 s later,
        // at 30 s, it is dropped.
        let gone = engine.apply(rows(30, &[("b", 9.0)]), Timestamp(30_000));
        assert_eq!(
            moves(&gone),
            [(queue("a"), State::Unknown, State::Ok, SeriesGone)]
        );
        let status = engine.status(Timestamp(30_000));
        let titles: Vec<String> = status.rules.iter().map(|r| r.title()).collect();
        assert_eq!(titles, [r#"backlog-high{queue="b"}"#]);

        // Within gone_after a missing series is held, not dropped.
        let held = engine.apply(rows(35, &[]), Timestamp(35_000));
        assert!(held.is_empty(), "{held:?}");
        let dropped = engine.apply(rows(41, &[]), Timestamp(41_000));
        assert_eq!(
            moves(&dropped),
            [(queue("b"), State::Critical, State::Ok, SeriesGone)]
        );
        // No series left, the check read fine: the rule is ok, shown as one empty entry.
        let status = engine.status(Timestamp(41_000));
        assert_eq!(status.rules.len(), 1);
        assert_eq!(status.rules[0].series, Some(Labels::new()));
        assert_eq!(status.rules[0].state, State::Ok);
        // An ok series that vanishes is dropped without a transition.
        engine.apply(rows(50, &[("c", 1.0)]), Timestamp(50_000));
        let quiet = engine.apply(rows(70, &[]), Timestamp(70_000));
        assert!(quiet.is_empty(), "{quiet:?}");
    }

    /// A series rule whose probe fails before it ever saw a series still reports the
    /// failure: its unlabelled series takes `on_error` (here critical), and goes once the
    /// probe reads again.
    #[test]
    fn a_series_rule_failing_from_the_start_applies_on_error() {
        let mut rule = series_rule();
        rule.on_error = MissingPolicy::Critical;
        let config = one_check_config(None, vec![rule]);
        let mut engine = Engine::new(&config, Timestamp(0));
        let mut failed = obs(false, &[("up", 0.0)]);
        failed.at = Timestamp(1000);
        let t = engine.apply(failed, Timestamp(1000));
        assert_eq!(
            moves(&t),
            [(
                Labels::new(),
                State::Unknown,
                State::Critical,
                TransitionReason::ProbeFailed
            )]
        );
        // Reading again, with a row: the row's series appears; the unlabelled one goes after
        // gone_after (10 s) with a resolve.
        engine.apply(rows(2, &[("a", 1.0)]), Timestamp(2000));
        let gone = engine.apply(rows(12, &[("a", 1.0)]), Timestamp(12_000));
        assert_eq!(
            moves(&gone),
            [(
                Labels::new(),
                State::Critical,
                State::Ok,
                TransitionReason::SeriesGone
            )]
        );
    }

    /// A series rule whose probe read fine but produced no value at all (an empty answer of a
    /// `prometheus` source) reads no data (`on_missing`), not ok; an empty row set (a
    /// postgres query) is no series, quietly.
    #[test]
    fn a_series_value_missing_from_a_good_read_is_on_missing() {
        let mut rule = series_rule();
        rule.on_missing = MissingPolicy::Warning;
        let config = one_check_config(None, vec![rule]);
        let mut engine = Engine::new(&config, Timestamp(0));
        let mut nothing = obs(true, &[("up", 1.0)]);
        nothing.at = Timestamp(1000);
        let t = engine.apply(nothing, Timestamp(1000));
        assert_eq!(
            moves(&t),
            [(
                Labels::new(),
                State::Unknown,
                State::Warning,
                TransitionReason::ValueMissing
            )]
        );
        let mut engine = Engine::new(&config, Timestamp(0));
        let t = engine.apply(rows(1, &[]), Timestamp(1000));
        assert!(t.is_empty(), "{t:?}");
        assert_eq!(engine.status(Timestamp(1000)).rules[0].state, State::Ok);
    }

    #[test]
    fn seeded_and_reconfigured_series_are_dropped_if_they_never_come_back() {
        let config = one_check_config(None, vec![series_rule()]);
        let mut engine = Engine::new(&config, Timestamp(0));
        // A previous process left an alert for a; b is not a series rule's label set.
        engine.seed(
            &[
                ("backlog-high".into(), queue("a")),
                ("nope".into(), queue("x")),
            ],
            Timestamp(0),
        );
        assert_eq!(engine.status(Timestamp(0)).rules.len(), 1);
        let gone = engine.apply(rows(11, &[("b", 1.0)]), Timestamp(11_000));
        assert_eq!(
            moves(&gone)[1],
            (
                queue("a"),
                State::Unknown,
                State::Ok,
                TransitionReason::SeriesGone
            )
        );

        // A changed rule starts fresh but keeps its series' labels.
        engine.apply(rows(12, &[("b", 9.0)]), Timestamp(12_000));
        let mut changed = series_rule();
        changed.description = Some("changed".into());
        engine.reconfigure(&one_check_config(None, vec![changed]), Timestamp(13_000));
        let status = engine.status(Timestamp(13_000));
        assert_eq!(status.rules[0].state, State::Unknown);
        assert_eq!(status.rules[0].title(), r#"backlog-high{queue="b"}"#);
        let gone = engine.apply(rows(30, &[]), Timestamp(30_000));
        assert_eq!(moves(&gone)[0].3, TransitionReason::SeriesGone);
    }

    #[test]
    fn worst_state_orders_critical_unknown_warning_ok() {
        use CheckState::*;
        let worst = |checks: &[CheckState], rules: &[State]| {
            overall_state(checks.iter().copied(), rules.iter().copied())
        };
        assert_eq!(worst(&[], &[]), State::Ok);
        // Flapping ranks with warning and keeps its name (exit code 1).
        assert_eq!(worst(&[Up], &[State::Ok, State::Flapping]), State::Flapping);
        assert_eq!(State::Flapping.exit_code(), 1);
        assert_eq!(
            worst(&[Up], &[State::Warning, State::Unknown]),
            State::Unknown
        );
        assert_eq!(worst(&[Pending], &[State::Warning]), State::Unknown);
        assert_eq!(worst(&[Down], &[State::Unknown]), State::Critical);
        assert_eq!(worst(&[], &[State::Critical, State::Ok]), State::Critical);
    }

    /// A probe SLO on check `c` (90 %, 1 h, critical on 2x over 10 m and 1 m), with its rule
    /// as config compiles it.
    fn slo_config() -> Config {
        let rule = level_rule(
            "avail",
            crate::config::SLO_LEVEL_VALUE,
            "critical",
            (CmpOp::Ge, 2.0),
            Trigger::Immediate,
        );
        let mut config = one_check_config(None, vec![rule]);
        config.slos = vec![crate::config::SloConfig {
            name: "avail".into(),
            sli: crate::config::Sli::Probes,
            check: "c".into(),
            objective: 0.9,
            period: Duration::from_secs(3600),
            min_events: None,
            alerts: vec![crate::config::AlertConfig {
                // The workbook's first alert pages: critical.
                severity: crate::config::AlertConfig::workbook()[0].severity,
                burn_rate: 2.0,
                long: Duration::from_secs(600),
                short: Duration::from_secs(60),
            }],
        }];
        config
    }

    #[test]
    fn an_slo_rule_steps_on_the_burn_rate_level_and_closed_minutes_go_to_the_store() {
        let config = slo_config();
        // Probes every 10 s from a minute boundary: 10 minutes up (60 good events).
        let t0 = Timestamp(29_000_000 * 60_000);
        let at = |i: i64| t0 + Duration::from_secs(10 * i as u64);
        let mut engine = Engine::new(&config, t0);
        for i in 0..60 {
            engine.apply(obs(true, &[]), at(i));
        }
        let stored = engine.take_slo_minutes(at(60));
        assert_eq!(stored[0].slo, "avail");
        assert_eq!(stored[0].minutes.len(), 10);
        assert!(stored[0]
            .minutes
            .iter()
            .all(|b| b.good == 6.0 && b.total == 6.0));
        // Then down. The 10 m window at minute 12 holds minutes 2..=12: 48 good; 2x of a 10 %
        // budget is 20 % bad, first over at the 13th failure (13 of 61), the 12th being 12 of
        // 66 in minute 11's window.
        let mut paged = None;
        for k in 1..=20 {
            let ts = engine.apply(obs(false, &[]), at(59 + k));
            if ts.iter().any(|t| t.transition.to == State::Critical) {
                paged = Some(k);
                break;
            }
        }
        assert_eq!(paged, Some(13));
        let status = engine.status(at(72));
        assert_eq!(status.slos[0].state, State::Critical);
        // A reload keeps the history (and so the alert).
        engine.reconfigure(&config, at(72));
        let e = engine.slos[0].last.as_ref().unwrap();
        assert_eq!(e.level, slo::Level::Critical);
        // A restart from stored minutes too.
        let mut fresh = Engine::new(&config, at(72));
        let minutes: Vec<slo::Bucket> = engine.slos[0].history.buckets().copied().collect();
        fresh.load_slo_history([("avail".to_string(), minutes)], at(72));
        assert_eq!(
            fresh.slos[0].last.as_ref().unwrap().level,
            slo::Level::Critical
        );
        assert!(
            fresh.take_slo_minutes(at(80)).is_empty(),
            "loaded minutes are stored already"
        );
    }
}
