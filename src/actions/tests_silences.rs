//! Silences, maintenance windows and inhibition in the alert stage: each keeps pages back
//! and never a resolve, and a page kept back goes out when nothing keeps it back any more.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::actions::silences::{expire, Silence, SilenceRequest};
use crate::actions::{AlertRecord, Alerts, Plan};
use crate::alert::{AlertId, EventKind, Identity, Severity};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::engine::RuleTransition;
use crate::labels::Labels;
use crate::matcher::Matcher;
use crate::rule::{State, Transition, TransitionReason};

/// Friday 2027-01-15 08:00:00 UTC.
const T0: Timestamp = Timestamp(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// `api-down` (critical below 1, hook `rollback` at once) and `api-slow` (warning above 1,
/// critical above 2) on check `api`, `db-down` on check `db`; chat gets warnings, chat and
/// am (an Alertmanager, re-sent every minute) criticals. `extra` is appended.
fn config(extra: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[alerting]
warning = ["chat"]
critical = ["chat", "am"]

[[notifier]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/hook"

[[notifier]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9"
resend_every = "1m"

[[hook]]
name = "rollback"
command = ["true"]

[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/health"
labels = {{ service = "api" }}

[[check]]
name = "db"
kind = "tcp"
address = "127.0.0.1:9"

[[rule]]
name = "api-down"
check = "api"
labels = {{ service = "api" }}
critical = {{ when = "< 1" }}
hooks = [{{ hook = "rollback" }}]

[[rule]]
name = "api-slow"
check = "api"
value = "duration_seconds"
labels = {{ service = "api" }}
warning = {{ when = "> 1" }}
critical = {{ when = "> 2" }}

[[rule]]
name = "db-down"
check = "db"
critical = {{ when = "< 1" }}
{extra}
"#
        ),
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

fn fresh(config: &Config) -> Alerts {
    let (alerts, plan) = Alerts::new(config, BTreeMap::new(), ident(), T0);
    assert!(plan.is_empty());
    alerts
}

fn tr(rule: &str, to: State, when: Timestamp) -> RuleTransition {
    RuleTransition {
        rule: rule.into(),
        labels: Labels::new(),
        check: if rule == "db-down" { "db" } else { "api" }.into(),
        transition: Transition {
            from: State::Unknown,
            to,
            at: when,
            value: Some(0.0),
            reason: TransitionReason::ThresholdCrossed,
        },
    }
}

/// (kind, alert, severity, notifiers sorted) of each event.
fn sent(plan: &Plan) -> Vec<(EventKind, String, Severity, Vec<String>)> {
    plan.events
        .iter()
        .map(|(e, to)| {
            let mut to = to.clone();
            to.sort();
            (e.kind, e.alert.clone(), e.severity, to)
        })
        .collect()
}

/// An expected event; notifiers in any order.
fn page(
    kind: EventKind,
    alert: &str,
    severity: Severity,
    to: &[&str],
) -> (EventKind, String, Severity, Vec<String>) {
    let mut to: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    to.sort();
    (kind, alert.into(), severity, to)
}

fn silence(id: u64, matchers: &[&str], from: Timestamp, to: Timestamp) -> Silence {
    Silence {
        id,
        matchers: matchers
            .iter()
            .map(|m| Matcher::parse(m).unwrap())
            .collect(),
        starts_at: from.as_millis(),
        ends_at: to.as_millis(),
        created_by: "ops".into(),
        comment: "test".into(),
        created_at: from.as_millis(),
        expired_at: None,
    }
}

fn view_of(a: &Alerts, rule: &str) -> serde_json::Value {
    a.view()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["alert"] == rule)
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_silence_mutes_a_new_page_and_its_end_pages_the_alert_still_firing() {
    let config = config("");
    let mut a = fresh(&config);
    a.add_silence(silence(1, &[r#"rule="api-down""#], T0, at(60)), T0);
    let fire = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    assert_eq!(sent(&fire), []);
    // Evaluated and recorded all the same, and shown as silenced.
    let record = a.record(&AlertId::rule("api-down")).unwrap();
    let firing = record.firing.as_ref().unwrap();
    assert!(firing.muted && firing.notified.is_empty());
    let view = view_of(&a, "api-down");
    assert_eq!(view["silenced_by"], serde_json::json!(["silence 1"]));
    assert_eq!(view["muted"], true);
    // Another alert is not silenced.
    let db = a.transition(&tr("db-down", State::Critical, at(2)), at(2));
    assert_eq!(
        sent(&db),
        [page(
            EventKind::Firing,
            "db-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    // No re-send while silenced (am's is due every minute), nothing at all until the end.
    let tick = a.tick(at(59));
    assert!(
        sent(&tick)
            .iter()
            .all(|(_, alert, _, _)| alert != "api-down"),
        "{:?}",
        sent(&tick)
    );
    // The silence ends: the alert still fires, so it is paged now.
    let end = a.tick(at(60));
    let pages: Vec<_> = sent(&end)
        .into_iter()
        .filter(|p| p.1 == "api-down")
        .collect();
    assert_eq!(
        pages,
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    let firing = a
        .record(&AlertId::rule("api-down"))
        .unwrap()
        .firing
        .clone()
        .unwrap();
    assert!(!firing.muted);
    assert_eq!(firing.event.dedup_key, "warden/w1/api-down/e-1");
    assert!(view_of(&a, "api-down").get("silenced_by").is_none());
    // Once: the next tick sends nothing new to chat.
    let next = a.tick(at(61));
    assert!(sent(&next).iter().all(|p| p.1 != "api-down"));
    // And its resolve goes to both.
    let ok = a.transition(&tr("api-down", State::Ok, at(70)), at(70));
    assert_eq!(
        sent(&ok),
        [page(
            EventKind::Resolved,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
}

#[test]
fn an_alert_that_fired_and_ended_while_silenced_tells_nobody() {
    let config = config("");
    let mut a = fresh(&config);
    a.add_silence(silence(1, &[r#"check="api""#], T0, at(600)), T0);
    let fire = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    assert_eq!(sent(&fire), []);
    let ok = a.transition(&tr("api-down", State::Ok, at(30)), at(30));
    assert_eq!(sent(&ok), []);
    // The record was written both times (the incident is counted), and nothing is owed.
    assert_eq!(ok.records.len(), 1);
    assert_eq!(ok.records[0].1.firing, None);
    assert!(sent(&a.tick(at(600))).is_empty());
}

#[test]
fn an_alert_paged_before_its_silence_still_resolves_while_silenced() {
    let config = config("");
    let mut a = fresh(&config);
    let fire = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    assert_eq!(
        sent(&fire),
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    a.add_silence(silence(1, &[r#"rule="api-down""#], at(5), at(600)), at(5));
    // Silenced: am's re-send stops (it lets the alert lapse rather than repeat it).
    assert!(sent(&a.tick(at(120))).is_empty());
    let ok = a.transition(&tr("api-down", State::Ok, at(200)), at(200));
    assert_eq!(
        sent(&ok),
        [page(
            EventKind::Resolved,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
}

#[test]
fn an_escalation_while_silenced_is_kept_back_and_paged_at_the_end() {
    let config = config("");
    let mut a = fresh(&config);
    let warn = a.transition(&tr("api-slow", State::Warning, at(1)), at(1));
    assert_eq!(
        sent(&warn),
        [page(
            EventKind::Firing,
            "api-slow",
            Severity::Warning,
            &["chat"]
        )]
    );
    a.add_silence(
        silence(
            7,
            &[r#"service="api""#, r#"severity=~"crit.*""#],
            T0,
            at(100),
        ),
        T0,
    );
    // The warning is not silenced (severity warning), the critical is.
    let crit = a.transition(&tr("api-slow", State::Critical, at(10)), at(10));
    assert_eq!(sent(&crit), []);
    assert_eq!(
        view_of(&a, "api-slow")["silenced_by"],
        serde_json::json!(["silence 7"])
    );
    let end = a.tick(at(100));
    assert_eq!(
        sent(&end),
        [page(
            EventKind::Firing,
            "api-slow",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
}

#[test]
fn expiring_a_silence_ends_it_at_once_and_a_pending_one_never_starts() {
    let config = config("");
    let mut a = fresh(&config);
    a.add_silence(silence(1, &[r#"rule="api-down""#], T0, at(3600)), T0);
    a.add_silence(silence(2, &[r#"rule="db-down""#], at(3000), at(3600)), T0);
    assert_eq!(
        sent(&a.transition(&tr("api-down", State::Critical, at(1)), at(1))),
        []
    );
    let mut s = a.silence(1).unwrap().clone();
    expire(&mut s, at(10)).unwrap();
    assert!(expire(&mut s, at(11)).is_err(), "expired twice");
    a.add_silence(s, at(10));
    let plan = a.tick(at(10));
    assert_eq!(
        sent(&plan),
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    let mut pending = a.silence(2).unwrap().clone();
    expire(&mut pending, at(20)).unwrap();
    assert!(pending.ends_at <= at(20).as_millis() && pending.starts_at <= pending.ends_at);
    let view = a.silences_view(at(20));
    assert_eq!(view["silences"][0]["id"], 2);
    assert_eq!(view["silences"][1]["state"], "expired");
}

#[test]
fn a_muted_alert_is_paged_after_a_restart_once_its_silence_is_gone() {
    let config = config("");
    let mut a = fresh(&config);
    a.add_silence(silence(1, &[r#"rule="api-down""#], T0, at(60)), T0);
    let fire = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    let records: BTreeMap<AlertId, AlertRecord> = fire.records.into_iter().collect();
    // A restart after the silence ended: the muted record is paged at the first tick.
    let (mut b, plan) = Alerts::new(&config, records.clone(), ident(), at(90));
    assert!(plan.is_empty());
    b.set_silences(
        vec![silence(1, &[r#"rule="api-down""#], T0, at(60))],
        at(90),
    );
    assert_eq!(
        sent(&b.tick(at(90))),
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    // A restart while it lasts: nothing until its end.
    let (mut c, _) = Alerts::new(&config, records, ident(), at(30));
    c.set_silences(
        vec![silence(1, &[r#"rule="api-down""#], T0, at(60))],
        at(30),
    );
    assert!(sent(&c.tick(at(30))).is_empty());
    assert_eq!(sent(&c.tick(at(61))).len(), 1);
}

const INHIBIT: &str = r#"
[[inhibit]]
source_matchers = ['rule="api-down"']
target_matchers = ['rule="api-slow"']
equal = ["service"]
"#;

#[test]
fn an_inhibition_holds_the_target_while_the_source_fires() {
    let config = config(INHIBIT);
    let mut a = fresh(&config);
    let down = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    assert_eq!(
        sent(&down),
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    let slow = a.transition(&tr("api-slow", State::Critical, at(2)), at(2));
    assert_eq!(sent(&slow), []);
    assert_eq!(
        view_of(&a, "api-slow")["inhibited_by"],
        serde_json::json!(["api-down"])
    );
    // Still held while the source fires.
    assert!(sent(&a.tick(at(30))).iter().all(|p| p.1 != "api-slow"));
    // The source resolves: its resolve goes out, and the target, still firing, is paged.
    let up = a.transition(&tr("api-down", State::Ok, at(40)), at(40));
    assert_eq!(
        sent(&up),
        [page(
            EventKind::Resolved,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    let tick = a.tick(at(41));
    assert_eq!(
        sent(&tick),
        [page(
            EventKind::Firing,
            "api-slow",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
}

#[test]
fn an_inhibited_alert_that_ends_first_tells_nobody_and_a_target_paged_before_still_resolves() {
    let config = config(INHIBIT);
    let mut a = fresh(&config);
    // Paged before its source fired: stays paged, resolves.
    let slow = a.transition(&tr("api-slow", State::Critical, at(1)), at(1));
    assert_eq!(sent(&slow).len(), 1);
    a.transition(&tr("api-down", State::Critical, at(2)), at(2));
    let ok = a.transition(&tr("api-slow", State::Ok, at(3)), at(3));
    assert_eq!(
        sent(&ok),
        [page(
            EventKind::Resolved,
            "api-slow",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    // Fires again while inhibited, ends while inhibited: nothing.
    assert_eq!(
        sent(&a.transition(&tr("api-slow", State::Warning, at(4)), at(4))),
        []
    );
    assert_eq!(
        sent(&a.transition(&tr("api-slow", State::Ok, at(5)), at(5))),
        []
    );
}

#[test]
fn inhibition_needs_equal_labels_and_never_holds_the_source_itself() {
    let config = config(
        r#"
[[inhibit]]
source_matchers = ['severity="critical"']
target_matchers = ['severity="critical"']
equal = ["service"]

[[inhibit]]
source_matchers = ['rule="db-down"']
target_matchers = ['rule="api-slow"']
equal = ["service"]
"#,
    );
    let mut a = fresh(&config);
    // db-down has no `service` label, api-slow has service="api": not equal.
    assert_eq!(
        sent(&a.transition(&tr("db-down", State::Critical, at(1)), at(1))).len(),
        1
    );
    assert_eq!(
        sent(&a.transition(&tr("api-slow", State::Critical, at(2)), at(2))).len(),
        1
    );
    // Alerts on both sides of a rule do not inhibit each other.
    assert_eq!(
        sent(&a.transition(&tr("api-down", State::Critical, at(3)), at(3))).len(),
        1
    );
}

/// Friday 08:00-09:00 UTC, matching the api check's alerts.
const MAINTENANCE: &str = r#"
[[maintenance]]
name = "deploys"
matchers = ['check="api"']
time_zone = "UTC"
weekdays = ["fri"]
times = ["08:00-09:00"]
"#;

#[test]
fn a_maintenance_window_holds_pages_and_hooks_until_it_closes() {
    let config = config(MAINTENANCE);
    let mut a = fresh(&config);
    let fire = a.transition(&tr("api-down", State::Critical, at(60)), at(60));
    assert_eq!(sent(&fire), []);
    assert!(fire.hooks.is_empty(), "a maintenance window holds hooks");
    assert_eq!(
        view_of(&a, "api-down")["silenced_by"],
        serde_json::json!(["maintenance deploys"])
    );
    // Other checks' alerts are paged.
    assert_eq!(
        sent(&a.transition(&tr("db-down", State::Critical, at(61)), at(61))).len(),
        1
    );
    let during = a.tick(at(3599));
    assert!(during.hooks.is_empty());
    assert!(sent(&during).iter().all(|p| p.1 != "api-down"));
    // 09:00: the page and the rollback.
    let after = a.tick(at(3600));
    assert_eq!(
        sent(&after)
            .into_iter()
            .filter(|p| p.1 == "api-down")
            .collect::<Vec<_>>(),
        [page(
            EventKind::Firing,
            "api-down",
            Severity::Critical,
            &["chat", "am"]
        )]
    );
    assert_eq!(after.hooks.len(), 1);
    assert_eq!(after.hooks[0].hooks[0].0.config.name, "rollback");
}

#[test]
fn a_silence_mutes_pages_but_not_hooks() {
    let config = config("");
    let mut a = fresh(&config);
    a.add_silence(silence(1, &[r#"rule="api-down""#], T0, at(600)), T0);
    let fire = a.transition(&tr("api-down", State::Critical, at(1)), at(1));
    assert_eq!(sent(&fire), []);
    assert_eq!(
        fire.hooks.len(),
        1,
        "the rollback runs for a silenced alert"
    );
}

#[test]
fn silence_requests_are_checked() {
    let req = |v: serde_json::Value| {
        serde_json::from_value::<SilenceRequest>(v)
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_silence(3, T0))
    };
    let ok = req(serde_json::json!({
        "matchers": ["rule=\"api-down\"", "severity=~\"crit.*\""],
        "duration": "2h", "created_by": "ops", "comment": "deploy"
    }))
    .unwrap();
    assert_eq!(
        (ok.id, ok.starts_at, ok.ends_at),
        (3, T0.as_millis(), at(7200).as_millis())
    );
    // Alertmanager's names, an explicit window.
    let am = req(serde_json::json!({
        "matchers": ["rule=\"api-down\""], "startsAt": "2027-01-15T09:00:00Z",
        "endsAt": "2027-01-15T10:00:00Z", "createdBy": "ops", "comment": "x"
    }))
    .unwrap();
    assert_eq!(
        (am.starts_at, am.ends_at),
        (at(3600).as_millis(), at(7200).as_millis())
    );
    let err = |v: serde_json::Value| req(v).unwrap_err();
    let base = |k: &str, v: serde_json::Value| {
        let mut b = serde_json::json!({
            "matchers": ["rule=\"api-down\""], "duration": "1h",
            "created_by": "ops", "comment": "why"
        });
        b[k] = v;
        b
    };
    assert!(err(base("matchers", serde_json::json!([]))).contains("at least one matcher"));
    assert!(err(base("matchers", serde_json::json!(["team!=\"db\""]))).contains("every alert"));
    assert!(err(base("matchers", serde_json::json!(["rule"]))).contains("not a matcher"));
    assert!(err(base("comment", serde_json::json!(" "))).contains("comment"));
    assert!(err(base("created_by", serde_json::json!(""))).contains("created_by"));
    assert!(err(base("duration", serde_json::json!("soon"))).contains("duration"));
    assert!(err(base("ends_at", serde_json::json!("2027-01-15T09:00:00Z"))).contains("not both"));
    assert!(err(base("surprise", serde_json::json!(1))).contains("unknown field"));
    let mut past = base("ends_at", serde_json::json!("2020-01-01T00:00:00Z"));
    past.as_object_mut().unwrap().remove("duration");
    assert!(err(past).contains("end after"));
}

#[test]
fn config_refuses_bad_maintenance_and_inhibit_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        r#"
[[check]]
name = "api"
kind = "tcp"
address = "127.0.0.1:9"

[[maintenance]]
name = "m"
matchers = ['team!="db"']
time_zone = "Mars/Olympus"
weekdays = ["someday"]
times = ["25:00-26:00"]

[[maintenance]]
name = "dup"
matchers = ['check="api"']

[[maintenance]]
name = "dup"
matchers = ['check="api"']

[[inhibit]]
source_matchers = ['rule=~"("']
target_matchers = []
equal = ["1bad"]
"#,
    )
    .unwrap();
    let err = crate::config::load_with_env(&path, &|_| None)
        .unwrap_err()
        .to_string();
    for want in [
        "every matcher also matches an alert without its label",
        "unknown time zone \"Mars/Olympus\"",
        "\"someday\" is not a weekday",
        "is not a time of day",
        "duplicate maintenance name \"dup\"",
        "invalid regex",
        "target_matchers needs at least one matcher",
        "invalid label name \"1bad\"",
    ] {
        assert!(err.contains(want), "{want:?} not in:\n{err}");
    }
}
