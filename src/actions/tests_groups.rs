//! Notification groups (`[[policy]] group_by`, `group_wait`, `group_interval`) in the alert
//! stage, on the controllable clock: the plans go through [`Alerts::grouped`] as the driver
//! sends them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::actions::{AlertRecord, Alerts, GroupState, Plan};
use crate::alert::{AlertId, Event, EventKind, Identity, Severity};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::engine::RuleTransition;
use crate::labels::Labels;
use crate::rule::{State, Transition, TransitionReason};

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

/// Four rules of two teams, a `db` policy grouping by team (30 s wait, 5 min interval) to
/// `chat`, and `extra`.
fn config_with(extra: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let text = r#"
[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/health"

[[notifier]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/chat"

[[notifier]]
name = "pager"
kind = "pagerduty"
routing_key = "0123456789abcdef0123456789abcdef"

[[policy]]
name = "grouped"
group_by = ["team"]
[[policy.step]]
notify = ["chat"]
[[policy.step]]
after = "10m"
notify = ["pager"]

[[rule]]
name = "pg-down"
check = "api"
labels = { team = "db" }
critical = { when = "< 1" }
policy = "grouped"

[[rule]]
name = "pg-connections"
check = "api"
value = "duration_seconds"
labels = { team = "db" }
warning = { when = "> 1" }
policy = "grouped"

[[rule]]
name = "pg-replication"
check = "api"
value = "duration_seconds"
labels = { team = "db" }
critical = { when = "> 5" }
policy = "grouped"

[[rule]]
name = "api-slow"
check = "api"
value = "duration_seconds"
labels = { team = "web" }
warning = { when = "> 2" }
policy = "grouped"
"#;
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    crate::config::load_with_env(&path, &|_| None).map_err(|e| e.to_string())
}

fn config() -> Config {
    config_with("").unwrap()
}

fn ident() -> Identity {
    Identity {
        instance: "w1".into(),
        epoch: "e".into(),
    }
}

fn tr(rule: &str, to: State, when: Timestamp) -> RuleTransition {
    RuleTransition {
        rule: rule.into(),
        labels: Labels::new(),
        check: "api".into(),
        transition: Transition {
            from: State::Ok,
            to,
            at: when,
            value: Some(9.0),
            reason: TransitionReason::ThresholdCrossed,
        },
    }
}

/// Applies `t` at `when` as the driver does: the stage's plan, then grouping.
fn step(a: &mut Alerts, rule: &str, to: State, when: Timestamp) -> Plan {
    let plan = a.transition(&tr(rule, to, when), when);
    a.grouped(plan, when)
}

fn tick(a: &mut Alerts, when: Timestamp) -> Plan {
    let plan = a.tick(when);
    a.grouped(plan, when)
}

/// A group notification as sent: (notifier, kind, dedup key, [(alert, status)]).
type Note = (String, EventKind, String, Vec<(String, EventKind)>);

/// The group notifications of a plan.
fn notes(plan: &Plan) -> Vec<Note> {
    plan.events
        .iter()
        .map(|(e, to)| {
            assert_eq!(to.len(), 1, "a group notification goes to its one notifier");
            let members = e
                .group
                .as_ref()
                .expect("every page of a grouped policy is a group's")
                .alerts
                .iter()
                .map(|m| (m.alert.clone(), m.kind))
                .collect();
            (to[0].clone(), e.kind, e.dedup_key.clone(), members)
        })
        .collect()
}

fn fresh(config: &Config) -> Alerts {
    Alerts::new(config, BTreeMap::new(), ident(), T0).0
}

fn firing(names: &[&str]) -> Vec<(String, EventKind)> {
    names
        .iter()
        .map(|n| (n.to_string(), EventKind::Firing))
        .collect()
}

#[test]
fn alerts_of_one_group_that_fire_within_group_wait_are_one_notification() {
    let config = config();
    let mut a = fresh(&config);
    assert!(step(&mut a, "pg-down", State::Critical, at(0))
        .events
        .is_empty());
    assert!(step(&mut a, "pg-connections", State::Warning, at(10))
        .events
        .is_empty());
    assert!(step(&mut a, "api-slow", State::Warning, at(20))
        .events
        .is_empty());
    assert!(tick(&mut a, at(29)).events.is_empty(), "group_wait is 30 s");
    let plan = tick(&mut a, at(30));
    let sent = notes(&plan);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (to, kind, key, members) = &sent[0];
    assert_eq!((to.as_str(), *kind), ("chat", EventKind::Firing));
    // Most severe first.
    assert_eq!(members, &firing(&["pg-down", "pg-connections"]));
    assert!(key.starts_with("warden/w1/group/grouped/"), "{key}");
    let event = &plan.events[0].0;
    assert_eq!(event.severity, Severity::Critical);
    assert_eq!(event.series.get("team").map(String::as_str), Some("db"));
    let text = event.description.as_deref().unwrap();
    assert!(text.starts_with("2 firing"), "{text}");
    assert!(text.contains("CRITICAL pg-down") && text.contains("WARNING pg-connections"));
    // The web team's group opened at 20 s: its own notification, 30 s later.
    assert!(tick(&mut a, at(49)).events.is_empty());
    let web = notes(&tick(&mut a, at(50)));
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].3, firing(&["api-slow"]));
    assert_ne!(web[0].2, *key, "another group, another dedup key");
}

#[test]
fn after_the_first_notification_changes_go_out_at_most_once_per_group_interval() {
    let config = config();
    let mut a = fresh(&config);
    step(&mut a, "pg-down", State::Critical, at(0));
    let first = notes(&tick(&mut a, at(30)));
    let key = first[0].2.clone();
    // Joins at 60 s; the interval (5 min) counts from the first notification at 30 s.
    assert!(step(&mut a, "pg-replication", State::Critical, at(60))
        .events
        .is_empty());
    assert!(tick(&mut a, at(329)).events.is_empty());
    let update = notes(&tick(&mut a, at(330)));
    assert_eq!(update.len(), 1);
    assert_eq!(update[0].2, key, "the same group incident");
    assert_eq!(update[0].3, firing(&["pg-down", "pg-replication"]));
    // Nothing changed: nothing more is sent.
    assert!(tick(&mut a, at(1000)).events.is_empty());
}

#[test]
fn resolves_are_told_in_the_group_and_the_last_one_resolves_the_group() {
    let config = config();
    let mut a = fresh(&config);
    step(&mut a, "pg-down", State::Critical, at(0));
    step(&mut a, "pg-replication", State::Critical, at(1));
    let key = notes(&tick(&mut a, at(30)))[0].2.clone();
    assert!(step(&mut a, "pg-down", State::Ok, at(100))
        .events
        .is_empty());
    let partly = notes(&tick(&mut a, at(330)));
    assert_eq!(partly.len(), 1);
    assert_eq!(partly[0].1, EventKind::Firing);
    assert_eq!(
        partly[0].3,
        vec![
            ("pg-replication".to_string(), EventKind::Firing),
            ("pg-down".to_string(), EventKind::Resolved)
        ]
    );
    // The resolved alert is told once.
    step(&mut a, "pg-replication", State::Ok, at(400));
    assert!(tick(&mut a, at(629)).events.is_empty());
    let done = tick(&mut a, at(630));
    let last = notes(&done);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].1, EventKind::Resolved, "the group's own resolve");
    assert_eq!(last[0].2, key);
    assert_eq!(
        last[0].3,
        vec![("pg-replication".to_string(), EventKind::Resolved)]
    );
    // Over: the group is deleted from the state file; the next incident opens a new one.
    assert!(done.groups.iter().any(|(_, g)| g.is_none()));
    step(&mut a, "pg-down", State::Critical, at(700));
    let next = notes(&tick(&mut a, at(730)));
    assert_ne!(next[0].2, key);
}

#[test]
fn a_group_whose_alerts_resolved_before_its_first_notification_tells_nobody() {
    let config = config();
    let mut a = fresh(&config);
    step(&mut a, "pg-down", State::Critical, at(0));
    let plan = step(&mut a, "pg-down", State::Ok, at(10));
    assert!(plan.events.is_empty());
    let later = tick(&mut a, at(30));
    assert!(later.events.is_empty(), "{:?}", later.events);
    assert!(a.groups_view().is_empty());
}

#[test]
fn escalation_steps_and_repeats_reach_their_notifier_as_that_notifier_s_group() {
    let config = config();
    let mut a = fresh(&config);
    step(&mut a, "pg-down", State::Critical, at(0));
    step(&mut a, "pg-replication", State::Critical, at(5));
    assert_eq!(notes(&tick(&mut a, at(30)))[0].0, "chat");
    // Ten minutes after each fired: the pager's step, one group notification for both.
    assert!(tick(&mut a, at(600)).events.is_empty(), "waits group_wait");
    assert!(tick(&mut a, at(629)).events.is_empty());
    let paged = notes(&tick(&mut a, at(630)));
    assert_eq!(paged.len(), 1, "{paged:?}");
    assert_eq!(paged[0].0, "pager");
    assert_eq!(paged[0].3, firing(&["pg-down", "pg-replication"]));
}

#[test]
fn a_group_waiting_for_its_first_notification_survives_a_restart() {
    let config = config();
    let mut a = fresh(&config);
    let mut saved_records = BTreeMap::new();
    let mut saved_groups: BTreeMap<String, String> = BTreeMap::new();
    let mut keep = |plan: &Plan| {
        for (id, r) in &plan.records {
            saved_records.insert(id.clone(), r.clone());
        }
        for (k, g) in &plan.groups {
            match g {
                Some(json) => saved_groups.insert(k.clone(), json.clone()),
                None => saved_groups.remove(k),
            };
        }
    };
    keep(&step(&mut a, "pg-down", State::Critical, at(0)));
    keep(&step(&mut a, "pg-connections", State::Warning, at(10)));
    drop(a);
    // A new process: the records and the groups from the state file.
    let records: BTreeMap<AlertId, AlertRecord> = saved_records;
    let (mut b, _) = Alerts::new(&config, records, ident(), at(20));
    let groups: Vec<(String, GroupState)> = saved_groups
        .iter()
        .map(|(k, json)| (k.clone(), serde_json::from_str(json).unwrap()))
        .collect();
    assert_eq!(groups.len(), 1);
    b.set_groups(groups);
    let sent = notes(&tick(&mut b, at(30)));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].3, firing(&["pg-down", "pg-connections"]));
}

#[test]
fn an_alert_whose_policy_does_not_group_is_paged_on_its_own() {
    let config = config_with(
        r#"
[[policy]]
name = "plain"
[[policy.step]]
notify = ["chat"]

[[rule]]
name = "disk"
check = "api"
value = "duration_seconds"
warning = { when = "> 3" }
policy = "plain"
"#,
    )
    .unwrap();
    let mut a = fresh(&config);
    let plan = step(&mut a, "disk", State::Warning, at(0));
    assert_eq!(plan.events.len(), 1);
    let e: &Event = &plan.events[0].0;
    assert!(e.group.is_none());
    assert_eq!(e.alert, "disk");
}

#[test]
fn grouping_is_checked_when_the_config_is_loaded() {
    let err = config_with(
        r#"
[[policy]]
name = "bad"
group_wait = "10s"
[[policy.step]]
notify = ["chat"]
"#,
    )
    .unwrap_err();
    assert!(err.contains("group_wait needs group_by"), "{err}");
    assert!(err.contains("warden.toml:"), "names file:line:col: {err}");
    let err = config_with(
        r#"
[[notifier]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"

[[policy]]
name = "bad"
group_by = ["team", "9x", "team"]
[[policy.step]]
notify = ["am"]
"#,
    )
    .unwrap_err();
    assert!(
        err.contains("an Alertmanager, which groups alerts itself"),
        "{err}"
    );
    assert!(err.contains("invalid label name \"9x\""), "{err}");
    assert!(err.contains("\"team\" is twice in group_by"), "{err}");
}
