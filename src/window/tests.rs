//! The window runtime on a controllable clock: a 24-hour window runs in microseconds.

use std::collections::BTreeMap;

use super::*;
use crate::config::window::alert_rule;

const H: i64 = 3_600_000;
const M: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;

fn config(windows: &str) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("warden.toml");
    let text = format!(
        r#"
[state]
path = "warden.db"

[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:1/health"

[[check]]
name = "metrics"
kind = "scrape"
url = "http://127.0.0.1:1/metrics"

[[rule]]
name = "api-health"
check = "api"
critical = {{ when = "< 1" }}

[[rule]]
name = "error-rate"
expr = "sum(rate(errors_total[5m]))"
warning = {{ when = "> 0.01" }}
critical = {{ when = "> 0.05" }}

[[rule]]
name = "p95"
expr = "histogram_quantile(0.95, rate(latency_bucket[5m]))"
warning = {{ when = "> 1" }}

[[hook]]
name = "set-weight"
command = ["true"]

[[hook]]
name = "rollback"
command = ["true"]

{windows}
"#
    );
    std::fs::write(&path, text).expect("write config");
    crate::config::load(&path).unwrap_or_else(|d| panic!("config: {d}"))
}

/// Rule states and expression values a test sets.
#[derive(Default)]
struct Fake {
    rules: BTreeMap<String, Vec<(Labels, State, Option<f64>)>>,
    exprs: BTreeMap<String, Option<f64>>,
    budgets: Vec<(String, Option<f64>)>,
}

impl Fake {
    fn set(&mut self, name: &str, state: State, value: f64) {
        self.rules
            .insert(name.into(), vec![(Labels::new(), state, Some(value))]);
    }
}

impl Facts for Fake {
    fn rule(&self, name: &str) -> Vec<(Labels, State, Option<f64>)> {
        self.rules.get(name).cloned().unwrap_or_default()
    }
    fn eval(&self, expr: &str, _t: i64) -> Result<Option<f64>, String> {
        self.exprs
            .get(expr)
            .copied()
            .ok_or_else(|| format!("unexpected expression {expr}"))
    }
    fn budgets(&self) -> Vec<(String, Option<f64>)> {
        self.budgets.clone()
    }
}

fn start(w: &mut Windows, window: &str, deploy: &str, at: i64, facts: &Fake) -> u64 {
    let req = Start {
        window: window.into(),
        deploy: deploy.into(),
        version: Some("v2".into()),
        ..Start::default()
    };
    w.start(&req, Timestamp(at), facts).expect("started").0
}

const REDCUBE: &str = r#"
[[slo]]
name = "availability"
check = "api"
objective = 99.5

[[slo]]
name = "other"
check = "api"
objective = 99.5

[[window]]
name = "post-deploy"
never_critical = ["api-health"]
baseline = { p95 = 'histogram_quantile(0.95, rate(latency_bucket{version!="$version"}[30m]))' }
hooks = ["rollback"]
budget_floor = 0.25
slos = ["availability"]

[[window.mark]]
at = "30m"
require = ["error-rate", "api-health"]
allow_warning = false

[[window.mark]]
at = "1h"
require = ["error-rate"]
[[window.mark.expect]]
name = "p95"
expr = 'histogram_quantile(0.95, rate(latency_bucket{version="$version"}[1h]))'
when = "<= 1.2 * baseline.p95"

[[window.mark]]
at = "24h"
require = ["error-rate", "api-health"]
"#;

fn redcube_facts() -> Fake {
    let mut f = Fake::default();
    f.set("api-health", State::Ok, 1.0);
    f.set("error-rate", State::Ok, 0.001);
    f.exprs.insert(
        r#"histogram_quantile(0.95, rate(latency_bucket{version!="v2"}[30m]))"#.into(),
        Some(0.5),
    );
    f.exprs.insert(
        r#"histogram_quantile(0.95, rate(latency_bucket{version="v2"}[1h]))"#.into(),
        Some(0.55),
    );
    f
}

#[test]
fn a_24_hour_window_passes_mark_by_mark() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    let run = w.get(id).unwrap();
    assert_eq!(
        run.baseline["p95"],
        Some(0.5),
        "baseline taken at the start"
    );
    assert_eq!(run.marks.len(), 3);

    // Nothing is due before 30 minutes.
    let fx = w.tick(Timestamp(T0 + 30 * M - 1), &facts);
    assert!(fx.marks.is_empty());
    let fx = w.tick(Timestamp(T0 + 30 * M), &facts);
    assert_eq!(fx.marks, vec![("post-deploy".to_string(), Verdict::Passed)]);
    assert!(fx.ended.is_empty());
    let fx = w.tick(Timestamp(T0 + H), &facts);
    assert_eq!(fx.marks, vec![("post-deploy".to_string(), Verdict::Passed)]);
    let p95 = &w.get(id).unwrap().marks[1].items[1];
    assert_eq!(p95.value, Some(0.55));
    assert_eq!(p95.bound.as_deref(), Some("<= 1.2 * baseline.p95 (0.6)"));
    // Hours pass without a mark.
    for h in 2..24 {
        assert!(w.tick(Timestamp(T0 + h * H), &facts).marks.is_empty());
    }
    let fx = w.tick(Timestamp(T0 + 24 * H), &facts);
    assert_eq!(fx.ended.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Passed);
    assert_eq!(run.ended_at, Some(T0 + 24 * H));
    assert!(run.marks.iter().all(|m| !m.late));
    assert!(
        run.timeline
            .iter()
            .any(|e| e.what.starts_with("mark 1d: passed")),
        "{:?}",
        run.timeline
    );
}

#[test]
fn a_mark_fails_on_a_rule_and_on_the_baseline() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let mut facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    w.tick(Timestamp(T0 + 30 * M), &facts);
    // p95 is 0.61, over 1.2 x the 0.5 baseline.
    facts.exprs.insert(
        r#"histogram_quantile(0.95, rate(latency_bucket{version="v2"}[1h]))"#.into(),
        Some(0.61),
    );
    let fx = w.tick(Timestamp(T0 + H), &facts);
    assert_eq!(fx.ended.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    let reason = run.reason.clone().unwrap();
    assert!(
        reason.starts_with("mark 1h: expect p95 off 0.61"),
        "{reason}"
    );
    assert!(reason.contains("baseline.p95 (0.6)"), "{reason}");

    // A warning where the mark does not allow one fails too.
    let mut w = Windows::new(&config, Vec::new(), 1);
    let mut facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-2", T0, &facts);
    facts.set("error-rate", State::Warning, 0.02);
    w.tick(Timestamp(T0 + 30 * M), &facts);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some("mark 30m: rule error-rate warning 0.02")
    );
}

#[test]
fn a_never_critical_rule_fails_the_window_at_once() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    // Another rule at critical does nothing.
    let fx = w.transition(
        "p95",
        &Labels::new(),
        State::Critical,
        Some(3.0),
        Timestamp(T0 + M),
    );
    assert!(fx.ended.is_empty());
    let fx = w.transition(
        "api-health",
        &Labels::new(),
        State::Critical,
        Some(0.0),
        Timestamp(T0 + 2 * M),
    );
    assert_eq!(fx.ended.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some("rule api-health went critical at 0 (never_critical)")
    );
    // Ended: later marks are not judged.
    assert!(w.tick(Timestamp(T0 + H), &facts).marks.is_empty());

    // Critical already when the window starts: the first tick fails it.
    let mut w = Windows::new(&config, Vec::new(), 1);
    let mut facts = redcube_facts();
    facts.set("api-health", State::Critical, 0.0);
    let id = start(&mut w, "post-deploy", "d-2", T0, &facts);
    assert_eq!(w.get(id).unwrap().state, RunState::Failed);
}

#[test]
fn no_data_is_not_a_pass() {
    let windows = |policy: &str| {
        format!(
            r#"
[[window]]
name = "w"
{policy}
[[window.mark]]
at = "10m"
require = ["error-rate"]
"#
        )
    };
    let mut facts = Fake::default();
    facts.set("error-rate", State::Unknown, f64::NAN);

    // Default: fail.
    let cfg = config(&windows(""));
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &facts);
    w.tick(Timestamp(T0 + 10 * M), &facts);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some("mark 10m: no data for rule error-rate (no_data = \"fail\")")
    );

    // A rule that never reported is no data as well.
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let empty = Fake::default();
    let id = start(&mut w, "w", "d", T0, &empty);
    w.tick(Timestamp(T0 + 10 * M), &empty);
    assert_eq!(w.get(id).unwrap().state, RunState::Failed);

    // Pass with a warning.
    let cfg = config(&windows(r#"no_data = "pass""#));
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &facts);
    w.tick(Timestamp(T0 + 10 * M), &facts);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Passed);
    assert_eq!(
        run.warnings,
        vec!["mark 10m passed without data for rule error-rate"]
    );
    assert_eq!(
        run.reason.as_deref(),
        Some("every mark passed with 1 warning(s)")
    );

    // Inconclusive.
    let cfg = config(&windows(r#"no_data = "inconclusive""#));
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &facts);
    w.tick(Timestamp(T0 + 10 * M), &facts);
    assert_eq!(w.get(id).unwrap().state, RunState::Inconclusive);

    // Extended once: data arrives in the extension and the mark passes.
    let cfg = config(&windows(r#"extend = "5m""#));
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let mut facts2 = Fake::default();
    facts2.set("error-rate", State::Unknown, f64::NAN);
    let id = start(&mut w, "w", "d", T0, &facts2);
    let fx = w.tick(Timestamp(T0 + 10 * M), &facts2);
    assert!(fx.ended.is_empty());
    let run = w.get(id).unwrap();
    assert!(run.marks[0].extended);
    assert_eq!(run.marks[0].due, T0 + 15 * M);
    facts2.set("error-rate", State::Ok, 0.0);
    assert!(w.tick(Timestamp(T0 + 15 * M - 1), &facts2).ended.is_empty());
    w.tick(Timestamp(T0 + 15 * M), &facts2);
    assert_eq!(w.get(id).unwrap().state, RunState::Passed);

    // Extended once only: still no data then, and the policy (fail) decides.
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &facts);
    w.tick(Timestamp(T0 + 10 * M), &facts);
    w.tick(Timestamp(T0 + 15 * M), &facts);
    assert_eq!(w.get(id).unwrap().state, RunState::Failed);
}

#[test]
fn an_expression_without_a_result_or_erroring_is_no_data() {
    let config = config(
        r#"
[[window]]
name = "w"
no_data = "inconclusive"
[[window.mark]]
at = "10m"
[[window.mark.expect]]
expr = "sum(rate(errors_total[5m]))"
when = "< 0.01"
"#,
    );
    let mut facts = Fake::default();
    facts
        .exprs
        .insert("sum(rate(errors_total[5m]))".into(), None);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &facts);
    w.tick(Timestamp(T0 + 10 * M), &facts);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Inconclusive);
    assert_eq!(
        run.marks[0].items[0].note.as_deref(),
        Some("the expression has no result")
    );
    // An evaluation error (here: the fake knows no such expression) is no data, with why.
    let empty = Fake::default();
    let mut w = Windows::new(&config, Vec::new(), 1);
    let id = start(&mut w, "w", "d", T0, &empty);
    w.tick(Timestamp(T0 + 10 * M), &empty);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Inconclusive);
    assert!(run.marks[0].items[0]
        .note
        .as_deref()
        .unwrap()
        .starts_with("unexpected expression"));
}

#[test]
fn one_window_per_service_unless_superseded() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 7);
    let facts = redcube_facts();
    let first = start(&mut w, "post-deploy", "d-1", T0, &facts);
    assert_eq!(first, 7, "ids continue from the state file's");
    let req = Start {
        window: "post-deploy".into(),
        deploy: "d-2".into(),
        ..Start::default()
    };
    let refused = w.start(&req, Timestamp(T0 + M), &facts).unwrap_err();
    assert_eq!(
        refused,
        Refused::Busy {
            running: 7,
            window: "post-deploy".into()
        }
    );
    let (second, fx) = w
        .start(
            &Start {
                supersede: true,
                ..req
            },
            Timestamp(T0 + M),
            &facts,
        )
        .unwrap();
    assert_eq!(second, 8);
    assert_eq!(w.get(first).unwrap().state, RunState::Superseded);
    assert_eq!(fx.changed.len(), 2, "both runs are persisted");
    assert!(fx.ended.is_empty(), "a superseded run has no verdict");

    let unknown = Start {
        window: "nope".into(),
        deploy: "d".into(),
        ..Start::default()
    };
    assert_eq!(
        w.start(&unknown, Timestamp(T0), &facts).unwrap_err(),
        Refused::Unknown("nope".into())
    );
    let bad = Start {
        window: "post-deploy".into(),
        deploy: "has space".into(),
        supersede: true,
        ..Start::default()
    };
    assert!(matches!(
        w.start(&bad, Timestamp(T0), &facts).unwrap_err(),
        Refused::Invalid(_)
    ));
    // Abort.
    w.abort(second, Timestamp(T0 + 2 * M), "admin").unwrap();
    assert_eq!(w.get(second).unwrap().state, RunState::Aborted);
    assert!(w.abort(second, Timestamp(T0 + 2 * M), "admin").is_err());
}

#[test]
fn a_run_resumed_after_a_restart_judges_missed_marks_late() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    w.tick(Timestamp(T0 + 30 * M), &facts);
    let saved = w.get(id).unwrap().clone();
    // Stored as JSON, read back by the next process two hours later.
    let json = serde_json::to_string(&saved).unwrap();
    let loaded: Run = serde_json::from_str(&json).unwrap();
    let mut w = Windows::new(&config, vec![loaded], 1);
    let fx = w.tick(Timestamp(T0 + 3 * H), &facts);
    assert_eq!(fx.marks.len(), 1, "the 1h mark, once");
    let run = w.get(id).unwrap();
    assert!(!run.marks[0].late);
    assert!(run.marks[1].late);
    assert_eq!(run.marks[1].evaluated_at, Some(T0 + 3 * H));
    assert!(run.marks[2].verdict.is_none());
    assert_eq!(run.state, RunState::Running);
    // A new run gets a fresh id.
    let other = Start {
        window: "post-deploy".into(),
        deploy: "d-2".into(),
        supersede: true,
        ..Start::default()
    };
    assert_eq!(
        w.start(&other, Timestamp(T0 + 3 * H), &facts).unwrap().0,
        id + 1
    );
}

#[test]
fn canary_steps_set_weights_in_order_and_hold_pages() {
    let config = config(
        r#"
[[window]]
name = "canary"
step_hook = "set-weight"
hooks = ["rollback"]
hold = ["p95"]
hold_for = "1m"
[[window.step]]
weight = 5
hold = "5m"
require = ["error-rate"]
[[window.step]]
weight = 25
hold = "5m"
require = ["error-rate"]
[[window.step]]
weight = 100
hold = "5m"
require = ["error-rate"]
"#,
    );
    let mut w = Windows::new(&config, Vec::new(), 1);
    let mut facts = Fake::default();
    facts.set("error-rate", State::Ok, 0.0);
    let req = Start {
        window: "canary".into(),
        deploy: "d".into(),
        ..Start::default()
    };
    let (id, fx) = w.start(&req, Timestamp(T0), &facts).unwrap();
    assert_eq!(
        fx.step_hooks,
        vec![StepHook {
            run: id,
            step: 0,
            hook: "set-weight".into(),
            weight: 5
        }]
    );
    assert_eq!(fx.hold, vec![("p95".to_string(), T0 + M)]);
    // The second step starts when the first passed, at 5 minutes.
    let fx = w.tick(Timestamp(T0 + 5 * M), &facts);
    assert_eq!(fx.marks.len(), 1);
    assert_eq!(fx.step_hooks.len(), 1);
    assert_eq!(fx.step_hooks[0].weight, 25);
    assert_eq!(fx.hold, vec![("p95".to_string(), T0 + 6 * M)]);
    // The canary's error rate rises at 25 %: the step fails, 100 % is never set.
    facts.set("error-rate", State::Critical, 0.2);
    let fx = w.tick(Timestamp(T0 + 10 * M), &facts);
    assert!(fx.step_hooks.is_empty());
    assert_eq!(fx.ended.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(run.steps_started, 2);
    assert_eq!(run.marks[1].weight, Some(25));
    assert_eq!(config.windows[0].alert_rule(), alert_rule("canary"));

    // A restart during the second step sets its weight again, and nothing else.
    let mut w = Windows::new(&config, Vec::new(), 1);
    facts.set("error-rate", State::Ok, 0.0);
    let (id, _) = w.start(&req, Timestamp(T0), &facts).unwrap();
    w.tick(Timestamp(T0 + 5 * M), &facts);
    let saved = w.get(id).unwrap().clone();
    let resumed = Windows::new(&config, vec![saved], 1);
    assert_eq!(
        resumed.resume_steps(),
        vec![StepHook {
            run: id,
            step: 1,
            hook: "set-weight".into(),
            weight: 25
        }]
    );
}

#[test]
fn removing_a_window_from_the_config_aborts_its_run() {
    let config1 = config(REDCUBE);
    let mut w = Windows::new(&config1, Vec::new(), 1);
    let facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    // Same window: nothing happens.
    assert!(w
        .reconfigure(&config1, Timestamp(T0 + M))
        .changed
        .is_empty());
    let config2 = config("");
    let fx = w.reconfigure(&config2, Timestamp(T0 + 2 * M));
    assert_eq!(fx.changed.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Aborted);
    assert_eq!(
        run.reason.as_deref(),
        Some("its [[window]] was removed from the config")
    );
}

#[test]
fn a_window_does_not_start_below_its_error_budget_floor() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let mut facts = redcube_facts();
    let req = Start {
        window: "post-deploy".into(),
        deploy: "d-1".into(),
        ..Start::default()
    };
    // Another SLO's budget does not count; this one's 10 % does, under the 25 % floor.
    facts.budgets = vec![
        ("other".into(), Some(-3.0)),
        ("availability".into(), Some(0.1)),
    ];
    let refused = w.start(&req, Timestamp(T0), &facts).unwrap_err();
    assert_eq!(
        refused,
        Refused::Budget(
            "SLO availability has 10.0 % of its error budget left, below the window's floor \
             of 25.0 %: not started (no traffic moved)"
                .into()
        )
    );
    assert!(w.runs().next().is_none(), "nothing started");
    // No figure yet: refused too (the floor cannot be checked).
    facts.budgets = vec![("availability".into(), None)];
    assert!(matches!(
        w.start(&req, Timestamp(T0), &facts),
        Err(Refused::Budget(_))
    ));
    // Enough budget: started.
    facts.budgets = vec![("availability".into(), Some(0.8))];
    assert!(w.start(&req, Timestamp(T0), &facts).is_ok());
}

#[test]
fn after_a_restart_no_data_waits_for_the_rules_then_the_warm_up_bound() {
    let config = config(REDCUBE);
    let mut w = Windows::new(&config, Vec::new(), 1);
    let facts = redcube_facts();
    let id = start(&mut w, "post-deploy", "d-1", T0, &facts);
    let saved = w.get(id).unwrap().clone();
    // Warden was down across the 30 min mark; the new process has seen nothing yet.
    let restart = T0 + 40 * M;
    let mut w = Windows::new(&config, vec![saved.clone()], 1);
    assert!(w.resume(Timestamp(restart)).changed.is_empty());
    let empty = Fake::default();
    assert!(
        w.tick(Timestamp(restart + 1_000), &empty).marks.is_empty(),
        "waits"
    );
    // The rules report: the mark is judged on them, late.
    let fx = w.tick(Timestamp(restart + 30_000), &facts);
    assert_eq!(fx.marks, vec![("post-deploy".to_string(), Verdict::Passed)]);
    assert!(w.get(id).unwrap().marks[0].late);

    // Still nothing after the warm-up: judged as no data (the default policy fails it).
    let mut w = Windows::new(&config, vec![saved.clone()], 1);
    w.resume(Timestamp(restart));
    assert!(w
        .tick(Timestamp(restart + WARM_UP.as_millis() as i64 - 1), &empty)
        .ended
        .is_empty());
    let fx = w.tick(Timestamp(restart + WARM_UP.as_millis() as i64), &empty);
    assert_eq!(fx.ended.len(), 1);
    assert_eq!(w.get(id).unwrap().state, RunState::Failed);

    // Real evidence is judged at once, warm-up or not.
    let mut w = Windows::new(&config, vec![saved.clone()], 1);
    w.resume(Timestamp(restart));
    let mut bad = redcube_facts();
    bad.set("error-rate", State::Critical, 0.2);
    let fx = w.tick(Timestamp(restart + 1_000), &bad);
    assert_eq!(fx.ended.len(), 1);

    // A config whose marks changed while warden was down: the run is aborted, not judged
    // against marks it did not start with (and nothing panics).
    let changed = config_text_without_24h_mark();
    let mut w = Windows::new(&changed, vec![saved], 1);
    let fx = w.resume(Timestamp(restart));
    assert_eq!(fx.changed.len(), 1);
    let run = w.get(id).unwrap();
    assert_eq!(run.state, RunState::Aborted);
    assert_eq!(
        run.reason.as_deref(),
        Some("its [[window]]'s marks or baseline changed in the config")
    );
    assert!(w.tick(Timestamp(restart + H), &facts).marks.is_empty());
}

fn config_text_without_24h_mark() -> Config {
    let text = REDCUBE.replace(
        "[[window.mark]]\nat = \"24h\"\nrequire = [\"error-rate\", \"api-health\"]\n",
        "",
    );
    assert_ne!(text, REDCUBE);
    config(&text)
}

#[test]
fn a_start_overrides_the_no_data_policy_for_its_run_only_and_a_pass_runs_the_success_hooks() {
    let cfg = config(
        r#"
[[window]]
name = "w"
on_success = { hooks = ["set-weight"] }
[[window.mark]]
at = "10m"
require = ["error-rate"]
"#,
    );
    let mut facts = Fake::default();
    facts.set("error-rate", State::Unknown, f64::NAN);
    let mut w = Windows::new(&cfg, Vec::new(), 1);
    let req = Start {
        window: "w".into(),
        deploy: "d".into(),
        overrides: Overrides {
            no_data: Some("pass".into()),
            extend: None,
        },
        ..Start::default()
    };
    let (id, _) = w.start(&req, Timestamp(T0), &facts).unwrap();
    let fx = w.tick(Timestamp(T0 + 10 * M), &facts);
    assert_eq!(
        w.get(id).unwrap().state,
        RunState::Passed,
        "the run's own policy"
    );
    assert_eq!(fx.success_hooks, vec![(id, "set-weight".to_string())]);
    // The next run without the override fails as the window says; no success hook.
    let plain = Start {
        window: "w".into(),
        deploy: "d2".into(),
        ..Start::default()
    };
    let (id2, _) = w.start(&plain, Timestamp(T0), &facts).unwrap();
    let fx = w.tick(Timestamp(T0 + 10 * M), &facts);
    assert_eq!(w.get(id2).unwrap().state, RunState::Failed);
    assert!(fx.success_hooks.is_empty());
    // A bad override is refused before anything starts.
    let bad = Start {
        window: "w".into(),
        deploy: "d3".into(),
        overrides: Overrides {
            no_data: Some("maybe".into()),
            extend: Some("0s".into()),
        },
        ..Start::default()
    };
    assert!(matches!(
        w.start(&bad, Timestamp(T0), &facts),
        Err(Refused::Invalid(_))
    ));
}
