//! The per-check and per-rule series of `/metrics`, from a compact table.
//!
//! A `prometheus` Vec metric keeps one object per series, each with its own copy of the
//! family's descriptor and its label pairs: about 1 KB per series, 15 series per check and
//! rule, so at 10,000 checks most of warden's heap was metric objects. Here a check is one
//! [`CheckRow`] (a few atomics) and a rule one [`RuleRow`]; the families' series (`state`
//! one per state, `result` one per result seen) are derived when `/metrics` is rendered, as
//! text written straight into the response, never as protobuf objects.
//!
//! The families and label names are unchanged: `warden_check_up{check,kind}`,
//! `warden_check_last_duration_seconds{check,kind}`,
//! `warden_check_last_run_timestamp_seconds{check,kind}`,
//! `warden_check_runs_total{check,kind,result}`, `warden_scheduler_skipped_runs_total{check}`,
//! `warden_rule_state{rule,state}` (and, for rules reading labelled series, the series'
//! labels), `warden_rule_value{rule}`, `warden_rule_threshold{rule,level}`,
//! `warden_rule_transitions_total{rule,to}`. Rows are resolved once per config by the
//! evaluator and the scheduler, so recording an observation hashes nothing and allocates
//! nothing.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::labels::Labels;

/// The rule states in the order [`RuleRow`] indexes them (`rule::State::ALL`; the evaluator's
/// tests hold the two lists together).
pub const STATES: [&str; 5] = ["ok", "warning", "critical", "unknown", "flapping"];

/// An `f64` in an atomic.
#[derive(Debug, Default)]
pub struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// One check's series.
#[derive(Debug)]
pub struct CheckRow {
    pub kind: &'static str,
    /// `warden_check_up`: 1 if the last probe succeeded.
    pub up: AtomicI64,
    pub last_duration: AtomicF64,
    pub last_run: AtomicF64,
    /// `warden_check_runs_total` by result, in the order results were first seen.
    runs: Mutex<Vec<(&'static str, u64)>>,
    /// `warden_scheduler_skipped_runs_total`.
    pub skipped: AtomicU64,
}

impl CheckRow {
    fn new(kind: &'static str) -> Self {
        CheckRow {
            kind,
            up: AtomicI64::new(0),
            last_duration: AtomicF64::default(),
            last_run: AtomicF64::default(),
            runs: Mutex::new(Vec::new()),
            skipped: AtomicU64::new(0),
        }
    }

    /// Counts a probe with `result` (`ok` or the probe error kind).
    pub fn run(&self, result: &'static str) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.iter_mut().find(|(r, _)| *r == result) {
            Some((_, n)) => *n += 1,
            None => runs.push((result, 1)),
        }
    }

    pub fn runs(&self, result: &str) -> u64 {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.iter()
            .find(|(r, _)| *r == result)
            .map_or(0, |(_, n)| *n)
    }
}

/// One rule's series.
#[derive(Debug)]
pub struct RuleRow {
    /// A rule reading labelled series has no unlabelled state or value: its series are in
    /// [`Table::series`].
    pub scalar: bool,
    /// Index into [`STATES`].
    state: AtomicU8,
    value: AtomicF64,
    has_value: AtomicBool,
    /// `warden_rule_threshold{level="warning"|"critical"}`.
    thresholds: [Option<f64>; 2],
    /// `warden_rule_transitions_total` by the state entered, indexed as [`STATES`].
    transitions: [AtomicU64; 5],
}

impl RuleRow {
    /// Sets the current state (an index into [`STATES`]).
    pub fn set_state(&self, state: usize) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    pub fn state(&self) -> &'static str {
        STATES[usize::from(self.state.load(Ordering::Relaxed)).min(STATES.len() - 1)]
    }

    /// Sets `warden_rule_value` (absent until the first).
    pub fn set_value(&self, v: f64) {
        self.value.set(v);
        self.has_value.store(true, Ordering::Relaxed);
    }

    pub fn value(&self) -> Option<f64> {
        self.has_value
            .load(Ordering::Relaxed)
            .then(|| self.value.get())
    }

    /// Counts a transition into `state` (an index into [`STATES`]).
    pub fn transition(&self, state: usize) {
        if let Some(n) = self.transitions.get(state) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What `/metrics` says of one labelled series of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesGauge {
    /// The state names and which one is current (`warden_rule_state`, 1 for the current).
    pub states: Vec<(&'static str, bool)>,
    /// `warden_rule_value`, absent until the series had a value.
    pub value: Option<f64>,
}

#[derive(Default)]
struct Rows {
    checks: BTreeMap<Arc<str>, Arc<CheckRow>>,
    rules: BTreeMap<Arc<str>, Arc<RuleRow>>,
}

/// The table. Cheap to clone; clones share it.
#[derive(Clone, Default)]
pub struct Table {
    rows: Arc<RwLock<Rows>>,
    /// `warden_rule_state{rule, <series labels>, state}` and `warden_rule_value{rule, <series
    /// labels>}` of rules reading labelled series. The label policy: the series' own labels
    /// (at most `config::MAX_SERIES_ROWS` per rule), a name warden uses itself (`rule`,
    /// `state`) exported as `exported_<name>`, as Prometheus does for a target's clashing
    /// labels.
    series: Arc<Mutex<BTreeMap<(String, Labels), SeriesGauge>>>,
}

impl Table {
    /// The row of check `name`, created (all zero) if it has none or its kind changed.
    pub fn check(&self, name: &str, kind: &'static str) -> Arc<CheckRow> {
        if let Some(row) = self.read().checks.get(name) {
            if row.kind == kind {
                return row.clone();
            }
        }
        let mut rows = self.write();
        match rows.checks.get(name) {
            Some(row) if row.kind == kind => row.clone(),
            _ => {
                let row = Arc::new(CheckRow::new(kind));
                rows.checks.insert(Arc::from(name), row.clone());
                row
            }
        }
    }

    /// The row of rule `name` with these thresholds (warning, critical). A rule that had a
    /// row keeps its state and transition counts; its value is gone until the next one.
    pub fn rule(&self, name: &str, scalar: bool, thresholds: [Option<f64>; 2]) -> Arc<RuleRow> {
        let mut rows = self.write();
        let old = rows.rules.get(name).cloned();
        let state = old.as_ref().map_or(3, |r| r.state.load(Ordering::Relaxed));
        let row = Arc::new(RuleRow {
            scalar,
            state: AtomicU8::new(state),
            value: AtomicF64::default(),
            has_value: AtomicBool::new(false),
            thresholds,
            transitions: std::array::from_fn(|i| {
                AtomicU64::new(
                    old.as_ref()
                        .map_or(0, |r| r.transitions[i].load(Ordering::Relaxed)),
                )
            }),
        });
        rows.rules.insert(Arc::from(name), row.clone());
        row
    }

    /// Keeps only the checks and rules `keep_check` and `keep_rule` accept (a reload).
    pub fn retain(&self, keep_check: impl Fn(&str) -> bool, keep_rule: impl Fn(&str) -> bool) {
        let mut rows = self.write();
        rows.checks.retain(|name, _| keep_check(name));
        rows.rules.retain(|name, _| keep_rule(name));
        drop(rows);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series.retain(|(rule, _), _| keep_rule(rule));
    }

    pub fn set_series(&self, rule: &str, labels: &Labels, gauge: SeriesGauge) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&(rule.to_string(), labels.clone())) {
            Some(g) => *g = gauge,
            None => {
                map.insert((rule.to_string(), labels.clone()), gauge);
            }
        }
    }

    /// Drops the series of `rule` that `keep` refuses.
    pub fn retain_series(&self, rule: &str, mut keep: impl FnMut(&Labels) -> bool) {
        let mut map = self.series.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(r, labels), _| r != rule || keep(labels));
    }

    /// How many series [`Table::render`] writes now.
    pub fn series_count(&self) -> usize {
        let rows = self.read();
        let checks: usize = rows
            .checks
            .values()
            .map(|c| 4 + c.runs.lock().map_or(0, |r| r.len()))
            .sum();
        let rules: usize = rows
            .rules
            .values()
            .map(|r| {
                let scalar = if r.scalar {
                    STATES.len() + usize::from(r.value().is_some())
                } else {
                    0
                };
                scalar
                    + r.thresholds.iter().flatten().count()
                    + r.transitions
                        .iter()
                        .filter(|n| n.load(Ordering::Relaxed) > 0)
                        .count()
            })
            .sum();
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let labelled: usize = series
            .values()
            .map(|g| g.states.len() + usize::from(g.value.is_some()))
            .sum();
        checks + rules + labelled
    }

    /// Writes every family in the text exposition format (0.0.4).
    pub fn render(&self, out: &mut Vec<u8>) {
        self.render_chunked(usize::MAX, &mut |chunk| {
            out.extend_from_slice(&chunk);
            true
        });
    }

    /// [`Table::render`] in chunks of about `chunk` bytes, each handed to `send` as soon as it
    /// is full; stops early when `send` returns `false` (the reader went away). Holds no lock
    /// while sending: the rows are listed first (two pointers per check and rule), so a slow
    /// reader delays nobody, and at most one chunk is buffered here.
    pub fn render_chunked(&self, chunk: usize, send: &mut dyn FnMut(Vec<u8>) -> bool) {
        let (checks, rules) = {
            let rows = self.read();
            let checks: Vec<(Arc<str>, Arc<CheckRow>)> = rows
                .checks
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let rules: Vec<(Arc<str>, Arc<RuleRow>)> = rows
                .rules
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (checks, rules)
        };
        // Bounded: at most `MAX_SERIES_ROWS` series per rule reading labelled series.
        let series: Vec<((String, Labels), SeriesGauge)> = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut w = Out {
            buf: Vec::with_capacity(chunk.min(1 << 16)),
            chunk,
            send,
            open: true,
        };
        if render_rows(&mut w, &checks, &rules, &series) && !w.buf.is_empty() {
            let rest = std::mem::take(&mut w.buf);
            (w.send)(rest);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rows> {
        self.rows.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where rendering goes: a buffer handed on whenever it holds `chunk` bytes.
struct Out<'a> {
    buf: Vec<u8>,
    chunk: usize,
    send: &'a mut dyn FnMut(Vec<u8>) -> bool,
    open: bool,
}

impl Out<'_> {
    /// After a row: hands the buffer on if full; `false` once the reader is gone.
    fn row_done(&mut self) -> bool {
        if self.open && self.buf.len() >= self.chunk {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.chunk));
            self.open = (self.send)(full);
        }
        self.open
    }
}

/// Every family of the table, row by row; `false` if the reader went away.
fn render_rows(
    w: &mut Out<'_>,
    checks: &[(Arc<str>, Arc<CheckRow>)],
    rules: &[(Arc<str>, Arc<RuleRow>)],
    series: &[((String, Labels), SeriesGauge)],
) -> bool {
    type CheckValue = fn(&CheckRow) -> f64;
    let gauges: [(&str, &str, CheckValue); 3] = [
        (
            "warden_check_up",
            "1 if the check's last probe succeeded, 0 if it failed",
            |r| r.up.load(Ordering::Relaxed) as f64,
        ),
        (
            "warden_check_last_duration_seconds",
            "Duration of the check's last probe, including a failed one",
            |r| r.last_duration.get(),
        ),
        (
            "warden_check_last_run_timestamp_seconds",
            "Unix time the check's last probe started",
            |r| r.last_run.get(),
        ),
    ];
    for (name, help, value) in gauges {
        header(&mut w.buf, name, help, "gauge");
        for (check, row) in checks {
            let labels = [("check", &**check), ("kind", row.kind)];
            sample(&mut w.buf, name, &labels, value(row));
            if !w.row_done() {
                return false;
            }
        }
    }
    let name = "warden_check_runs_total";
    let help = "Check probes run, by result (ok or the probe error kind)";
    header(&mut w.buf, name, help, "counter");
    for (check, row) in checks {
        let mut runs = row.runs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        runs.sort();
        for (result, n) in runs {
            let labels = [("check", &**check), ("kind", row.kind), ("result", result)];
            sample(&mut w.buf, name, &labels, n as f64);
        }
        if !w.row_done() {
            return false;
        }
    }
    let name = "warden_scheduler_skipped_runs_total";
    let help = "Planned check runs skipped because the previous run overran its interval";
    header(&mut w.buf, name, help, "counter");
    for (check, row) in checks {
        let n = row.skipped.load(Ordering::Relaxed);
        sample(&mut w.buf, name, &[("check", check)], n as f64);
        if !w.row_done() {
            return false;
        }
    }

    let name = "warden_rule_state";
    let help = "1 for the rule's current state, 0 for the others";
    header(&mut w.buf, name, help, "gauge");
    for (rule, row) in rules.iter().filter(|(_, r)| r.scalar) {
        let current = row.state();
        for state in STATES {
            let v = if state == current { 1.0 } else { 0.0 };
            sample(&mut w.buf, name, &[("rule", rule), ("state", state)], v);
        }
        if !w.row_done() {
            return false;
        }
    }
    for ((rule, labels), g) in series {
        for (state, current) in &g.states {
            let pairs = series_labels(rule, labels, Some(("state", state)));
            let v = if *current { 1.0 } else { 0.0 };
            sample_owned(&mut w.buf, name, &pairs, v);
        }
        if !w.row_done() {
            return false;
        }
    }
    let name = "warden_rule_value";
    let help = "The last value the rule evaluated (absent until one was seen)";
    header(&mut w.buf, name, help, "gauge");
    for (rule, row) in rules.iter().filter(|(_, r)| r.scalar) {
        if let Some(v) = row.value() {
            sample(&mut w.buf, name, &[("rule", rule)], v);
        }
        if !w.row_done() {
            return false;
        }
    }
    for ((rule, labels), g) in series {
        if let Some(v) = g.value {
            sample_owned(&mut w.buf, name, &series_labels(rule, labels, None), v);
        }
        if !w.row_done() {
            return false;
        }
    }
    let name = "warden_rule_threshold";
    header(
        &mut w.buf,
        name,
        "The rule's threshold for entering a level",
        "gauge",
    );
    for (rule, row) in rules {
        for (level, t) in ["warning", "critical"].iter().zip(row.thresholds) {
            if let Some(t) = t {
                sample(&mut w.buf, name, &[("level", level), ("rule", rule)], t);
            }
        }
        if !w.row_done() {
            return false;
        }
    }
    let name = "warden_rule_transitions_total";
    let help = "Rule state changes, by the state entered";
    header(&mut w.buf, name, help, "counter");
    for (rule, row) in rules {
        for (state, n) in STATES.iter().zip(&row.transitions) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                sample(&mut w.buf, name, &[("rule", rule), ("to", state)], n as f64);
            }
        }
        if !w.row_done() {
            return false;
        }
    }
    true
}

/// A labelled series' label pairs: its own (clashing names exported as `exported_<name>`),
/// `rule`, and `extra`, sorted by name.
fn series_labels(
    rule: &str,
    labels: &Labels,
    extra: Option<(&str, &str)>,
) -> Vec<(String, String)> {
    let mut pairs: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| {
            let name = if matches!(k.as_str(), "rule" | "state") {
                format!("exported_{k}")
            } else {
                k.clone()
            };
            (name, v.clone())
        })
        .collect();
    pairs.insert("rule".into(), rule.to_string());
    if let Some((k, v)) = extra {
        pairs.insert(k.into(), v.into());
    }
    pairs.into_iter().collect()
}

fn header(out: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut Vec<u8>, name: &str, labels: &[(&str, &str)], value: f64) {
    out.extend_from_slice(name.as_bytes());
    out.push(b'{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        label(out, k, v);
    }
    out.extend_from_slice(b"} ");
    number(out, value);
    out.push(b'\n');
}

fn sample_owned(out: &mut Vec<u8>, name: &str, labels: &[(String, String)], value: f64) {
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sample(out, name, &pairs, value);
}

/// `name="value"`, the value escaped as the text format wants (`\\`, `\"`, `\n`).
fn label(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"=\"");
    for c in value.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '"' => out.extend_from_slice(b"\\\""),
            '\n' => out.extend_from_slice(b"\\n"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// A sample value as the `prometheus` crate's text encoder writes it.
fn number(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"+Inf");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &Table) -> String {
        let mut out = Vec::new();
        t.render(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rows_render_as_the_families_they_replace() {
        let t = Table::default();
        let api = t.check("api", "http");
        api.up.store(1, Ordering::Relaxed);
        api.last_duration.set(0.25);
        api.last_run.set(1_700_000_000.5);
        api.run("ok");
        api.run("ok");
        api.run("timeout");
        let rule = t.rule("api-down", true, [None, Some(1.0)]);
        rule.set_state(2);
        rule.transition(2);
        rule.set_value(0.0);
        let mut labels = Labels::new();
        labels.insert("queue".into(), "a\"b".into());
        labels.insert("rule".into(), "clash".into());
        t.rule("queues", false, [Some(5.0), None]);
        t.set_series(
            "queues",
            &labels,
            SeriesGauge {
                states: vec![("ok", false), ("warning", true)],
                value: Some(7.0),
            },
        );
        let out = text(&t);
        for line in [
            "warden_check_up{check=\"api\",kind=\"http\"} 1",
            "warden_check_last_duration_seconds{check=\"api\",kind=\"http\"} 0.25",
            "warden_check_last_run_timestamp_seconds{check=\"api\",kind=\"http\"} 1700000000.5",
            "warden_check_runs_total{check=\"api\",kind=\"http\",result=\"ok\"} 2",
            "warden_check_runs_total{check=\"api\",kind=\"http\",result=\"timeout\"} 1",
            "warden_scheduler_skipped_runs_total{check=\"api\"} 0",
            "warden_rule_state{rule=\"api-down\",state=\"critical\"} 1",
            "warden_rule_state{rule=\"api-down\",state=\"ok\"} 0",
            "warden_rule_value{rule=\"api-down\"} 0",
            "warden_rule_threshold{level=\"critical\",rule=\"api-down\"} 1",
            "warden_rule_transitions_total{rule=\"api-down\",to=\"critical\"} 1",
            "warden_rule_state{exported_rule=\"clash\",queue=\"a\\\"b\",rule=\"queues\",state=\"warning\"} 1",
            "warden_rule_value{exported_rule=\"clash\",queue=\"a\\\"b\",rule=\"queues\"} 7",
            "warden_rule_threshold{level=\"warning\",rule=\"queues\"} 5",
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // A labelled-series rule has no unlabelled state; nothing is absent that was seen.
        assert!(!out.contains("warden_rule_state{rule=\"queues\",state"));
        assert!(!out.contains("to=\"ok\""), "counters appear once counted");
        let samples = out.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, t.series_count(), "{out}");
    }

    #[test]
    fn chunked_rendering_is_the_same_text_in_bounded_pieces_and_stops_when_the_reader_goes() {
        let t = Table::default();
        for i in 0..500 {
            let row = t.check(&format!("check-{i:03}"), "http");
            row.run("ok");
            t.rule(&format!("rule-{i:03}"), true, [Some(1.0), None])
                .set_value(i as f64);
        }
        let whole = text(&t);
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        t.render_chunked(4096, &mut |c| {
            chunks.push(c);
            true
        });
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        // A chunk is handed on once it holds 4 KiB: never more than that and one row more.
        assert!(chunks.iter().all(|c| c.len() < 4096 + 1024));
        assert_eq!(String::from_utf8(chunks.concat()).unwrap(), whole);
        let mut sent = 0;
        t.render_chunked(4096, &mut |_| {
            sent += 1;
            sent < 3
        });
        assert_eq!(sent, 3, "nothing is rendered for a reader that went away");
    }

    #[test]
    fn a_reload_keeps_counts_of_what_stays_and_drops_what_went() {
        let t = Table::default();
        t.check("api", "http").run("ok");
        t.check("db", "tcp").run("ok");
        t.rule("api-down", true, [None, Some(1.0)]).transition(0);
        // The kind changed: a new series, counted from zero.
        assert_eq!(t.check("db", "postgres").runs("ok"), 0);
        assert_eq!(t.check("api", "http").runs("ok"), 1);
        let again = t.rule("api-down", true, [None, Some(2.0)]);
        assert_eq!(again.state(), "unknown");
        assert!(again.value().is_none());
        t.retain(|c| c == "api", |_| false);
        let out = text(&t);
        assert!(out.contains("check=\"api\""));
        assert!(!out.contains("check=\"db\""));
        assert!(!out.contains("api-down"));
    }
}
