//! Guarded rollback at the stage's level: confirmed or not, recovered in time or not, and a
//! restart during the verify time. Time is passed in; nothing sleeps.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::actions::{AlertRecord, Alerts, HookJob, HookNote, HookResult, Plan, VerifyOutcome};
use crate::alert::{AlertId, EventKind, Identity};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::engine::RuleTransition;
use crate::labels::Labels;
use crate::rule::{State, Transition, TransitionReason};

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// `api-errors` (critical above 2) rolls back after 5 minutes if `api-health` (critical below
/// 1) agrees, and verifies for 10 minutes; criticals go to `chat` (webhook) and `pager`.
fn config() -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        r#"
[alerting]
critical = ["chat", "pager"]

[[notifier]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[[notifier]]
name = "pager"
kind = "pagerduty"
routing_key = "R0UTINGKEY"

[[hook]]
name = "rollback-api"
command = ["true"]

[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/health"

[[rule]]
name = "api-errors"
check = "api"
value = "duration_seconds"
critical = { when = "> 2" }
hooks = [{ hook = "rollback-api", on = "critical", after = "5m", confirm = ["api-health"], verify = "10m" }]

[[rule]]
name = "api-health"
check = "api"
critical = { when = "< 1" }
"#,
    )
    .unwrap();
    crate::config::load_with_env(&path, &|_| None).unwrap()
}

fn ident() -> Identity {
    Identity {
        instance: "w1".into(),
        epoch: "e".into(),
    }
}

fn tr(rule: &str, to: State, secs: u64) -> RuleTransition {
    RuleTransition {
        rule: rule.into(),
        labels: Labels::new(),
        check: "api".into(),
        transition: Transition {
            from: State::Unknown,
            to,
            at: at(secs),
            value: Some(if rule == "api-health" { 0.0 } else { 3.0 }),
            reason: TransitionReason::ThresholdCrossed,
        },
    }
}

fn errors() -> AlertId {
    AlertId::rule("api-errors")
}

/// The jobs of a plan as (rule, hooks).
fn jobs(plan: &Plan) -> Vec<(String, Vec<String>)> {
    plan.hooks
        .iter()
        .map(|j: &HookJob| {
            let hooks = j.hooks.iter().map(|(s, _)| s.config.name.clone()).collect();
            (j.alert.rule.clone(), hooks)
        })
        .collect()
}

fn ran(a: &mut Alerts, job: &HookJob, outcome: &str, secs: u64) -> Plan {
    let note = HookNote {
        outcome: outcome.into(),
        reason: None,
        at: at(secs).to_rfc3339(),
        verify: None,
    };
    a.hook_finished(
        &job.alert,
        job.incident,
        "rollback-api",
        HookResult::Done(Some(note)),
        at(secs),
    )
}

/// api-errors critical at 0 s; api-health critical at `health` s (if at all); the rollback's
/// job, once one comes, by `limit` s (ticks every 10 s).
fn until_rollback(a: &mut Alerts, health: Option<u64>, limit: u64) -> Option<(u64, HookJob)> {
    let mut plan = a.transition(&tr("api-errors", State::Critical, 0), at(0));
    let mut secs = 0;
    loop {
        if let Some(job) = plan.hooks.first() {
            return Some((secs, job.clone()));
        }
        secs += 10;
        if secs > limit {
            return None;
        }
        plan = Plan::default();
        if health == Some(secs) {
            plan.extend(a.transition(&tr("api-health", State::Critical, secs), at(secs)));
        }
        plan.extend(a.tick(at(secs)));
    }
}

fn fresh() -> Alerts {
    let (alerts, plan) = Alerts::new(&config(), BTreeMap::new(), ident(), T0);
    assert!(plan.is_empty());
    alerts
}

#[test]
fn an_unconfirmed_rollback_waits_and_never_runs() {
    let mut a = fresh();
    // Error rate critical for an hour, health fine: no rollback.
    assert_eq!(until_rollback(&mut a, None, 3600).map(|(s, _)| s), None);
    assert!(a.permit(&errors(), 1, "rollback-api").is_none());
    // Health at warning does not confirm a hook on critical either.
    let mut health = tr("api-health", State::Warning, 3700);
    health.transition.to = State::Warning;
    a.transition(&health, at(3700));
    assert!(jobs(&a.tick(at(3710))).is_empty());
}

#[test]
fn a_confirmed_rollback_runs_once_its_after_passed_and_the_second_rule_agrees() {
    // Health fails after 2 minutes: the rollback waits for its own 5 minutes.
    let mut a = fresh();
    let (secs, job) = until_rollback(&mut a, Some(120), 3600).expect("a rollback");
    assert_eq!(secs, 300);
    assert_eq!(
        jobs(&Plan {
            hooks: vec![job],
            ..Plan::default()
        }),
        [("api-errors".to_string(), vec!["rollback-api".to_string()])]
    );
    assert!(a.permit(&errors(), 1, "rollback-api").is_some());

    // Health fails only after 20 minutes: the rollback runs at once then, its 5 minutes
    // counted from the error rate's critical.
    let mut a = fresh();
    let (secs, job) = until_rollback(&mut a, Some(1200), 3600).expect("a rollback");
    assert_eq!(secs, 1200);
    // Health recovers before the job's turn: the hook is not permitted, and waits again.
    let mut ok = tr("api-health", State::Ok, 1201);
    ok.transition.to = State::Ok;
    a.transition(&ok, at(1201));
    assert!(a.permit(&job.alert, job.incident, "rollback-api").is_none());
    let plan = a.hook_finished(
        &job.alert,
        job.incident,
        "rollback-api",
        HookResult::Cancelled,
        at(1201),
    );
    assert!(plan.hooks.is_empty());
    assert!(jobs(&a.tick(at(1300))).is_empty());
    a.transition(&tr("api-health", State::Critical, 1400), at(1400));
    assert_eq!(jobs(&a.tick(at(1400))).len(), 1);
}

/// A rollback that ran at 300 s (verify 10 min: until 900 s).
fn rolled_back() -> (Alerts, HookJob) {
    let mut a = fresh();
    a.transition(&tr("api-health", State::Critical, 0), at(0));
    let (secs, job) = until_rollback(&mut a, None, 3600).expect("a rollback");
    assert_eq!(secs, 300);
    let plan = ran(&mut a, &job, "success", 300);
    let f = plan.records[0].1.firing.clone().unwrap();
    let verify = f.hook_notes["rollback-api"]
        .verify
        .clone()
        .expect("verifying");
    assert_eq!(verify.until, at(900).as_millis());
    assert_eq!(verify.outcome, VerifyOutcome::Pending);
    (a, job)
}

fn not_helped(plan: &Plan) -> Vec<(EventKind, String, Vec<String>, String)> {
    plan.events
        .iter()
        .filter(|(e, _)| e.hook.as_ref().is_some_and(|h| h.not_helped.is_some()))
        .map(|(e, to)| {
            let finding = e.hook.as_ref().unwrap().not_helped.clone().unwrap();
            (e.kind, e.dedup_key.clone(), to.clone(), finding)
        })
        .collect()
}

#[test]
fn a_rollback_that_helped_pages_nothing_more() {
    let (mut a, _) = rolled_back();
    let mut ok = tr("api-errors", State::Ok, 600);
    ok.transition.to = State::Ok;
    let resolve = a.transition(&ok, at(600));
    assert_eq!(resolve.events.len(), 1);
    assert_eq!(resolve.events[0].0.kind, EventKind::Resolved);
    for secs in (610..2000).step_by(10) {
        let plan = a.tick(at(secs));
        assert!(plan.events.is_empty() && plan.hooks.is_empty(), "{plan:?}");
    }
}

#[test]
fn a_rollback_that_did_not_help_pages_once_and_never_runs_again() {
    let (mut a, _) = rolled_back();
    assert!(a.tick(at(899)).is_empty());
    let plan = a.tick(at(900));
    let pages = not_helped(&plan);
    assert_eq!(pages.len(), 1, "{plan:?}");
    let (kind, key, to, finding) = &pages[0];
    assert_eq!(*kind, EventKind::Hook);
    assert_eq!(key, "warden/w1/api-errors/e-1", "the incident's own key");
    assert_eq!(to, &["chat".to_string(), "pager".to_string()]);
    assert_eq!(
        finding,
        &format!(
            "ran at {} and did not help: api-errors is still critical at {} (and still firing: \
             api-health); not run again for this incident",
            at(300).to_rfc3339(),
            at(900).to_rfc3339()
        )
    );
    let f = a.record(&errors()).unwrap().firing.clone().unwrap();
    assert_eq!(
        f.hook_notes["rollback-api"]
            .verify
            .as_ref()
            .unwrap()
            .outcome,
        VerifyOutcome::NotHelped
    );
    let view = a.view();
    assert_eq!(
        view["alerts"][0]["hooks"][0]["verify"],
        serde_json::json!({ "outcome": "not_helped", "until": at(900).to_rfc3339() })
    );
    // Never again for this incident: not on later ticks, not after a de- and re-escalation.
    for secs in (910..3000).step_by(10) {
        let plan = a.tick(at(secs));
        assert!(plan.events.is_empty() && plan.hooks.is_empty(), "{plan:?}");
    }
    assert!(a.permit(&errors(), 1, "rollback-api").is_none());
    let mut unknown = tr("api-errors", State::Unknown, 3000);
    unknown.transition.from = State::Critical;
    assert!(a.transition(&unknown, at(3000)).is_empty());
    let plan = a.transition(&tr("api-errors", State::Critical, 3010), at(3010));
    assert!(plan.hooks.is_empty(), "{plan:?}");
    for secs in (3010..5000).step_by(10) {
        let plan = a.tick(at(secs));
        assert!(plan.events.is_empty() && plan.hooks.is_empty(), "{plan:?}");
    }
}

#[test]
fn a_restart_during_the_verify_time_still_verifies() {
    let (a, _) = rolled_back();
    let records: BTreeMap<AlertId, AlertRecord> = [errors(), AlertId::rule("api-health")]
        .into_iter()
        .map(|id| {
            let record = a.record(&id).unwrap().clone();
            // Through the store's JSON, as a restart reads it.
            let json = serde_json::to_value(&record).unwrap();
            (id, serde_json::from_value(json).unwrap())
        })
        .collect();
    drop(a);

    // Back at 800 s: the deadline passes before the rule reports again; nothing is judged
    // on the stale record.
    let (mut b, plan) = Alerts::new(&config(), records.clone(), ident(), at(800));
    assert!(plan.is_empty());
    assert!(b.tick(at(950)).is_empty());
    // The rule reports critical: "did not help", once; no rollback.
    let mut plan = b.transition(&tr("api-errors", State::Critical, 960), at(960));
    plan.extend(b.tick(at(961)));
    assert_eq!(not_helped(&plan).len(), 1, "{plan:?}");
    assert!(plan.hooks.is_empty());
    assert!(b.tick(at(2000)).events.is_empty());

    // Or it reports ok: resolved, nothing more.
    let (mut c, _) = Alerts::new(&config(), records, ident(), at(800));
    let mut ok = tr("api-errors", State::Ok, 960);
    ok.transition.to = State::Ok;
    let plan = c.transition(&ok, at(960));
    assert_eq!(plan.events[0].0.kind, EventKind::Resolved);
    assert!(not_helped(&c.tick(at(961))).is_empty());
}

#[test]
fn only_a_successful_run_is_verified() {
    for outcome in ["failure", "timeout", "error", "dry_run"] {
        let mut a = fresh();
        a.transition(&tr("api-health", State::Critical, 0), at(0));
        let (_, job) = until_rollback(&mut a, None, 3600).expect("a rollback");
        let plan = ran(&mut a, &job, outcome, 300);
        let f = plan.records[0].1.firing.clone().unwrap();
        assert_eq!(f.hook_notes["rollback-api"].verify, None, "{outcome}");
        assert!(a.tick(at(5000)).events.is_empty(), "{outcome}");
    }
}
