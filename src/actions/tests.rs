use std::time::Duration;

use super::*;
use crate::config::hook::{HookCommand, HookConfig};
use crate::config::notifier::{
    AlertmanagerConfig, NotifierConfig, NotifierKind, PagerDutyConfig, WebhookConfig, WebhookFormat,
};
use crate::config::{HookTrigger, Route, RuleActions};
use crate::engine::RuleTransition;
use crate::labels::Labels;
use crate::rule::{Transition, TransitionReason};
use crate::secret::Secret;

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn at(secs: u64) -> Timestamp {
    T0 + Duration::from_secs(secs)
}

fn webhook(name: &str) -> NotifierConfig {
    NotifierConfig {
        name: name.into(),
        timeout: Duration::from_secs(5),
        kind: NotifierKind::Webhook(WebhookConfig {
            url: Secret::new("http://127.0.0.1:9/hook"),
            headers: Vec::new(),
            format: WebhookFormat::Warden,
            template: None,
            external_url: None,
        }),
    }
}

fn pagerduty(name: &str) -> NotifierConfig {
    NotifierConfig {
        name: name.into(),
        timeout: Duration::from_secs(5),
        kind: NotifierKind::PagerDuty(PagerDutyConfig {
            routing_key: Secret::new("R0UTINGKEY"),
            url: "http://127.0.0.1:9/v2/enqueue".into(),
            source: "host".into(),
            component: None,
            group: None,
            class: None,
        }),
    }
}

fn alertmanager(name: &str) -> NotifierConfig {
    NotifierConfig {
        name: name.into(),
        timeout: Duration::from_secs(5),
        kind: NotifierKind::Alertmanager(AlertmanagerConfig {
            url: "http://127.0.0.1:9".into(),
            resend_every: Duration::from_secs(60),
            generator_url: None,
        }),
    }
}

fn hook(name: &str, diagnostic: bool) -> HookSpec {
    HookSpec {
        config: HookConfig::new(name, HookCommand::Argv(vec!["true".into()])),
        diagnostic,
        notify: None,
    }
}

/// Two rules on one check: `api-down` (critical < 1) and `api-slow` (warning > 1, critical
/// > 2); chat gets warnings, chat + pager + am get criticals.
fn config() -> Config {
    config_with("")
}

/// The test config, `extra` (TOML) added to its file.
fn config_with(extra: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let text = r#"
[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:9/health"

[[rule]]
name = "api-down"
check = "api"
critical = { when = "< 1" }

[[rule]]
name = "api-slow"
check = "api"
value = "duration_seconds"
description = "API answers slowly"
labels = { team = "web" }
warning = { when = "> 1" }
critical = { when = "> 2" }
"#;
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    let mut config = crate::config::load_with_env(&path, &|_| None).unwrap();
    config.alerting = AlertingConfig {
        notifiers: vec![webhook("chat"), pagerduty("pager"), alertmanager("am")],
        hooks: vec![hook("collect-logs", true), hook("rollback", false)],
        dry_run: false,
        instance: None,
        route: Route {
            warning: vec!["chat".into()],
            critical: vec!["chat".into(), "pager".into(), "am".into()],
        },
        rules: BTreeMap::new(),
        dependencies: BTreeMap::new(),
        policies: BTreeMap::new(),
        rule_policies: BTreeMap::new(),
        severity_policies: Default::default(),
        routes: Vec::new(),
        external_url: None,
        ack_link_ttl: crate::config::DEFAULT_ACK_LINK_TTL,
        ..AlertingConfig::default()
    };
    config
}

fn with_hooks(mut config: Config, rule: &str, hooks: Vec<HookTrigger>) -> Config {
    config
        .alerting
        .rules
        .insert(rule.into(), RuleActions { route: None, hooks });
    config
}

fn trigger(hook: &str, on: Severity, after: u64) -> HookTrigger {
    HookTrigger {
        hook: hook.into(),
        on,
        after: Duration::from_secs(after),
        confirm: Vec::new(),
        verify: None,
    }
}

fn tr(rule: &str, from: State, to: State, value: Option<f64>, when: Timestamp) -> RuleTransition {
    RuleTransition {
        rule: rule.into(),
        labels: Labels::new(),
        check: "api".into(),
        transition: Transition {
            from,
            to,
            at: when,
            value,
            reason: TransitionReason::ThresholdCrossed,
        },
    }
}

/// (kind, severity, dedup key, notifiers) of each event.
fn sent(plan: &Plan) -> Vec<(EventKind, Severity, String, Vec<String>)> {
    plan.events
        .iter()
        .map(|(e, to)| (e.kind, e.severity, e.dedup_key.clone(), to.clone()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The identity of the warden in these tests: keys are `warden/w1/<rule>/e-<n>`.
fn ident() -> Identity {
    Identity {
        instance: "w1".into(),
        epoch: "e".into(),
    }
}

fn id(rule: &str) -> AlertId {
    AlertId::rule(rule)
}

fn fresh(config: &Config) -> Alerts {
    let (alerts, plan) = Alerts::new(config, BTreeMap::new(), ident(), T0);
    assert!(plan.is_empty());
    alerts
}

#[test]
fn an_incident_pages_once_and_resolves_to_everyone_it_paged() {
    let config = config();
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr(
            "api-down",
            State::Unknown,
            State::Critical,
            Some(0.0),
            at(1),
        ),
        at(1),
    );
    assert_eq!(
        sent(&fire),
        [(
            EventKind::Firing,
            Severity::Critical,
            "warden/w1/api-down/e-1".into(),
            names(&["chat", "pager", "am"])
        )]
    );
    let event = &fire.events[0].0;
    assert_eq!(
        (event.value, event.threshold, event.condition.as_deref()),
        (Some(0.0), Some(1.0), Some("< 1"))
    );
    assert_eq!(event.since, at(1).to_rfc3339());
    assert_eq!(event.labels["check"], "api");
    assert_eq!(event.labels["severity"], "critical");
    // The record is persisted with the page, in the same plan.
    assert_eq!(fire.records.len(), 1);
    assert_eq!(fire.records[0].1.incident, 1);

    // Unknown and flapping hold; the same level again pages nobody.
    for (from, to) in [
        (State::Critical, State::Unknown),
        (State::Unknown, State::Critical),
        (State::Critical, State::Flapping),
        (State::Flapping, State::Critical),
    ] {
        let plan = a.transition(&tr("api-down", from, to, None, at(5)), at(5));
        assert!(plan.is_empty(), "{from} -> {to}: {plan:?}");
    }

    let ok = a.transition(
        &tr("api-down", State::Critical, State::Ok, Some(1.0), at(9)),
        at(9),
    );
    assert_eq!(
        sent(&ok),
        [(
            EventKind::Resolved,
            Severity::Critical,
            "warden/w1/api-down/e-1".into(),
            names(&["am", "chat", "pager"])
        )]
    );
    assert_eq!(ok.events[0].0.since, at(1).to_rfc3339());
    assert_eq!(a.record(&id("api-down")).unwrap().firing, None);

    // Ok again is nothing; the next incident has a new key.
    assert!(a
        .transition(&tr("api-down", State::Ok, State::Ok, None, at(10)), at(10))
        .is_empty());
    let again = a.transition(
        &tr("api-down", State::Ok, State::Critical, None, at(20)),
        at(20),
    );
    assert_eq!(again.events[0].0.dedup_key, "warden/w1/api-down/e-2");
}

#[test]
fn escalation_and_de_escalation_keep_the_key_and_follow_each_route() {
    let config = config();
    let mut a = fresh(&config);
    let warn = a.transition(
        &tr("api-slow", State::Ok, State::Warning, Some(1.5), at(1)),
        at(1),
    );
    assert_eq!(
        sent(&warn),
        [(
            EventKind::Firing,
            Severity::Warning,
            "warden/w1/api-slow/e-1".into(),
            names(&["chat"])
        )]
    );
    assert_eq!(
        warn.events[0].0.description.as_deref(),
        Some("API answers slowly")
    );
    assert_eq!(warn.events[0].0.labels["team"], "web");
    let crit = a.transition(
        &tr(
            "api-slow",
            State::Warning,
            State::Critical,
            Some(2.5),
            at(2),
        ),
        at(2),
    );
    assert_eq!(
        sent(&crit),
        [(
            EventKind::Firing,
            Severity::Critical,
            "warden/w1/api-slow/e-1".into(),
            names(&["chat", "pager", "am"])
        )]
    );
    assert_eq!(crit.events[0].0.threshold, Some(2.0));
    assert_eq!(
        crit.events[0].0.since,
        at(1).to_rfc3339(),
        "since is the incident's start"
    );
    let down = a.transition(
        &tr(
            "api-slow",
            State::Critical,
            State::Warning,
            Some(1.5),
            at(3),
        ),
        at(3),
    );
    assert_eq!(
        sent(&down),
        [
            // Alertmanager holds alerts by re-sends and is not on the warning route: its
            // critical alert is resolved rather than left to expire or turned into a warning.
            (
                EventKind::Resolved,
                Severity::Critical,
                "warden/w1/api-slow/e-1".into(),
                names(&["am"])
            ),
            (
                EventKind::Firing,
                Severity::Warning,
                "warden/w1/api-slow/e-1".into(),
                names(&["chat"])
            )
        ]
    );
    assert!(
        a.tick(at(500)).events.is_empty(),
        "no warning re-sent to a critical-only Alertmanager"
    );
    let ok = a.transition(
        &tr("api-slow", State::Warning, State::Ok, Some(0.1), at(4)),
        at(4),
    );
    assert_eq!(
        sent(&ok),
        [(
            EventKind::Resolved,
            Severity::Warning,
            "warden/w1/api-slow/e-1".into(),
            names(&["am", "chat", "pager"])
        )]
    );
}

#[test]
fn a_restart_resumes_without_paging_again() {
    let config = config();
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(1)),
        at(1),
    );
    let records: BTreeMap<AlertId, AlertRecord> = fire
        .records
        .iter()
        .map(|(rule, r)| {
            // Through JSON, as the store keeps it.
            let json = serde_json::to_value(r).unwrap();
            (rule.clone(), serde_json::from_value(json).unwrap())
        })
        .collect();

    let (mut b, plan) = Alerts::new(&config, records, ident(), at(100));
    assert!(plan.is_empty());
    assert_eq!(b.firing_counts(), (0, 1));
    assert!(b
        .transition(
            &tr("api-down", State::Unknown, State::Critical, None, at(101)),
            at(101)
        )
        .events
        .is_empty());
    let ok = b.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(102)),
        at(102),
    );
    assert_eq!(sent(&ok)[0].0, EventKind::Resolved);
    assert_eq!(sent(&ok)[0].2, "warden/w1/api-down/e-1");
    let next = b.transition(
        &tr("api-down", State::Ok, State::Critical, None, at(103)),
        at(103),
    );
    assert_eq!(
        sent(&next)[0].2,
        "warden/w1/api-down/e-2",
        "incident numbers are never reused"
    );
}

#[test]
fn a_removed_rule_resolves_and_a_removed_notifier_still_hears_the_resolves_it_is_owed() {
    let config = config();
    let mut a = fresh(&config);
    a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(1)),
        at(1),
    );
    a.transition(
        &tr("api-slow", State::Unknown, State::Critical, None, at(1)),
        at(1),
    );

    let mut smaller = config.clone();
    smaller.rules.retain(|r| r.name != "api-down");
    smaller.alerting.notifiers.retain(|n| n.name != "pager");
    let plan = a.reconfigure(&smaller, at(5));
    assert_eq!(
        sent(&plan),
        [(
            EventKind::Resolved,
            Severity::Critical,
            "warden/w1/api-down/e-1".into(),
            names(&["am", "chat", "pager"])
        )]
    );
    assert_eq!(
        plan.events[0].0.description.as_deref(),
        Some("the rule was removed from the config")
    );
    // The other alert keeps firing; its resolve reaches the removed notifier too.
    let ok = a.transition(
        &tr("api-slow", State::Critical, State::Ok, None, at(6)),
        at(6),
    );
    assert_eq!(sent(&ok)[0].3, names(&["am", "chat", "pager"]));
    assert!(ok.gone.is_empty() && plan.gone.is_empty());
    // A rule's own route replaces the default one.
    let mut routed = smaller.clone();
    routed.alerting.rules.insert(
        "api-slow".into(),
        RuleActions {
            route: Some(Route {
                warning: Vec::new(),
                critical: names(&["am"]),
            }),
            hooks: Vec::new(),
        },
    );
    a.reconfigure(&routed, at(7));
    assert!(a
        .transition(
            &tr("api-slow", State::Ok, State::Warning, None, at(8)),
            at(8)
        )
        .events
        .is_empty());
    assert_eq!(
        a.record(&id("api-slow"))
            .unwrap()
            .firing
            .as_ref()
            .unwrap()
            .severity,
        Severity::Warning
    );
}

#[test]
fn alertmanager_gets_the_firing_alert_again_until_it_resolves() {
    let config = config();
    let mut a = fresh(&config);
    a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(0)),
        at(0),
    );
    assert!(a.tick(at(59)).is_empty());
    let resend = a.tick(at(60));
    assert_eq!(
        sent(&resend),
        [(
            EventKind::Firing,
            Severity::Critical,
            "warden/w1/api-down/e-1".into(),
            names(&["am"])
        )]
    );
    assert_eq!(resend.events[0].0.at, at(60).to_rfc3339());
    assert!(resend.records.is_empty(), "a re-send changes no record");
    assert!(a.tick(at(90)).is_empty());
    assert_eq!(a.tick(at(121)).events.len(), 1);
    a.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(130)),
        at(130),
    );
    assert!(a.tick(at(500)).is_empty());
}

#[test]
fn hooks_wait_for_their_delay_and_diagnostics_go_first() {
    let config = with_hooks(
        config(),
        "api-down",
        vec![
            trigger("rollback", Severity::Critical, 300),
            trigger("collect-logs", Severity::Critical, 0),
        ],
    );
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(0)),
        at(0),
    );
    let jobs: Vec<Vec<&str>> = fire
        .hooks
        .iter()
        .map(|j| {
            j.hooks
                .iter()
                .map(|(h, _)| h.config.name.as_str())
                .collect()
        })
        .collect();
    assert_eq!(jobs, [["collect-logs"]]);
    assert_eq!(fire.hooks[0].trigger.dedup_key, "warden/w1/api-down/e-1");
    // The outcome goes to chat only: PagerDuty and Alertmanager would open new alerts.
    assert_eq!(fire.hooks[0].hooks[0].1, names(&["chat"]));

    // The rollback is due at 300 s but waits while the diagnostic still runs.
    assert!(a.tick(at(299)).hooks.is_empty());
    assert!(a.tick(at(300)).hooks.is_empty());
    // The diagnostic's end starts the rollback at once.
    let due = a.hook_finished(
        &id("api-down"),
        1,
        "collect-logs",
        HookResult::Done(None),
        at(301),
    );
    assert_eq!(due.hooks.len(), 1);
    assert_eq!(due.hooks[0].hooks[0].0.config.name, "rollback");
    // Running, then done: never again in this incident.
    assert!(a.tick(at(302)).hooks.is_empty());
    a.hook_finished(
        &id("api-down"),
        1,
        "rollback",
        HookResult::Done(None),
        at(303),
    );
    assert!(a.tick(at(900)).hooks.is_empty());

    // A new incident runs them again; both due at once run diagnostics first.
    a.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(1000)),
        at(1000),
    );
    assert!(a.tick(at(1001)).hooks.is_empty());
    a.transition(
        &tr("api-down", State::Ok, State::Critical, None, at(2000)),
        at(2000),
    );
    let retry = a.hook_finished(
        &id("api-down"),
        2,
        "collect-logs",
        HookResult::RetryAt(at(2400)),
        at(2001),
    );
    assert!(
        retry.hooks.is_empty(),
        "retried at the time given, not before"
    );
    let both = a.tick(at(2400));
    let order: Vec<&str> = both.hooks[0]
        .hooks
        .iter()
        .map(|(h, _)| h.config.name.as_str())
        .collect();
    assert_eq!(order, ["collect-logs", "rollback"]);
    assert_eq!(both.hooks[0].incident, 2);
}

#[test]
fn still_critical_means_without_interruption_and_refused_hooks_are_retried() {
    let config = with_hooks(
        config(),
        "api-slow",
        vec![
            trigger("rollback", Severity::Critical, 60),
            trigger("collect-logs", Severity::Warning, 0),
        ],
    );
    let mut a = fresh(&config);
    let warn = a.transition(
        &tr("api-slow", State::Ok, State::Warning, None, at(0)),
        at(0),
    );
    assert_eq!(warn.hooks.len(), 1, "collect-logs fires on warning");
    a.hook_finished(
        &id("api-slow"),
        1,
        "collect-logs",
        HookResult::Done(None),
        at(1),
    );
    a.transition(
        &tr("api-slow", State::Warning, State::Critical, None, at(10)),
        at(10),
    );
    a.transition(
        &tr("api-slow", State::Critical, State::Warning, None, at(50)),
        at(50),
    );
    assert!(a.tick(at(100)).hooks.is_empty(), "critical was interrupted");
    a.transition(
        &tr("api-slow", State::Warning, State::Critical, None, at(110)),
        at(110),
    );
    assert!(a.tick(at(169)).hooks.is_empty());
    let due = a.tick(at(170));
    assert_eq!(due.hooks[0].hooks[0].0.config.name, "rollback");
    // The store refused it (it failed, or still holds a run whose end it could not record):
    // asked again at the time given.
    a.hook_finished(
        &id("api-slow"),
        1,
        "rollback",
        HookResult::RetryAt(at(400)),
        at(171),
    );
    assert!(a.tick(at(399)).hooks.is_empty());
    assert_eq!(a.tick(at(400)).hooks.len(), 1);
    // A report for an older incident changes nothing.
    a.hook_finished(
        &id("api-slow"),
        0,
        "rollback",
        HookResult::Done(None),
        at(400),
    );
    assert!(a.tick(at(401)).hooks.is_empty(), "still running");
}

/// `rules` more rules like `api-down` (critical < 1 on `api`), named `r0`, `r1`, ..., each
/// with `hooks`.
fn sharing(mut config: Config, rules: usize, hooks: &[HookTrigger]) -> Config {
    let base = config.rules[0].clone();
    for i in 0..rules {
        let mut rule = (*base).clone();
        rule.name = format!("r{i}");
        config.rules.push(rule.into());
        config = with_hooks(config, &format!("r{i}"), hooks.to_vec());
    }
    config
}

/// (rule, incident, hooks in order) of each job.
fn jobs(plan: &Plan) -> Vec<(String, u64, Vec<String>)> {
    plan.hooks
        .iter()
        .map(|j| {
            let hooks = j.hooks.iter().map(|(h, _)| h.config.name.clone()).collect();
            (j.alert.to_string(), j.incident, hooks)
        })
        .collect()
}

fn job(rule: &str, incident: u64, hooks: &[&str]) -> (String, u64, Vec<String>) {
    (rule.into(), incident, names(hooks))
}

fn critical(a: &mut Alerts, rule: &str, secs: u64) -> Plan {
    a.transition(
        &tr(rule, State::Ok, State::Critical, Some(0.0), at(secs)),
        at(secs),
    )
}

#[test]
fn a_hook_shared_by_alerts_goes_to_the_next_waiting_one_as_soon_as_it_ends() {
    let config = sharing(config(), 4, &[trigger("rollback", Severity::Critical, 0)]);
    let mut a = fresh(&config);
    // r2 comes due first and takes the hook; the others wait, in the order they came due
    // (not by name), without a job that the store would only refuse.
    assert_eq!(
        jobs(&critical(&mut a, "r2", 0)),
        [job("r2", 1, &["rollback"])]
    );
    for (rule, secs) in [("r3", 1), ("r0", 2), ("r1", 3)] {
        assert!(critical(&mut a, rule, secs).hooks.is_empty(), "{rule}");
    }
    assert!(a.tick(at(60)).hooks.is_empty(), "waiting is not polling");
    // Each end hands the hook on in the same step, however it ended.
    let next = a.hook_finished(&id("r2"), 1, "rollback", HookResult::Done(None), at(61));
    assert_eq!(jobs(&next), [job("r3", 1, &["rollback"])]);
    assert_eq!(
        next.records.len(),
        1,
        "r2's rollback is persisted as done in the same plan"
    );
    // r3 resolves before its job gets to the hook: the job reports it cancelled.
    a.transition(&tr("r3", State::Critical, State::Ok, None, at(62)), at(62));
    let next = a.hook_finished(&id("r3"), 1, "rollback", HookResult::Cancelled, at(62));
    assert_eq!(jobs(&next), [job("r0", 1, &["rollback"])]);
    let next = a.hook_finished(
        &id("r0"),
        1,
        "rollback",
        HookResult::RetryAt(at(500)),
        at(63),
    );
    assert_eq!(jobs(&next), [job("r1", 1, &["rollback"])]);
    // Never two at once: while r1 holds it, r0's retry comes due and waits.
    assert!(a.tick(at(500)).hooks.is_empty());
    let next = a.hook_finished(&id("r1"), 1, "rollback", HookResult::Done(None), at(501));
    assert_eq!(jobs(&next), [job("r0", 1, &["rollback"])]);
    let last = a.hook_finished(&id("r0"), 1, "rollback", HookResult::Done(None), at(502));
    assert!(last.hooks.is_empty(), "nobody else waits");
    // Every incident done with: nothing more, and the hook is free for the next one.
    assert!(a.tick(at(900)).hooks.is_empty());
    a.transition(
        &tr("r2", State::Critical, State::Ok, None, at(901)),
        at(901),
    );
    assert_eq!(
        jobs(&critical(&mut a, "r2", 902)),
        [job("r2", 2, &["rollback"])]
    );
}

#[test]
fn a_diagnostic_waiting_for_its_hook_holds_back_the_rollback() {
    let config = with_hooks(
        sharing(
            config(),
            1,
            &[trigger("collect-logs", Severity::Critical, 0)],
        ),
        "api-down",
        vec![
            trigger("rollback", Severity::Critical, 0),
            trigger("collect-logs", Severity::Critical, 0),
        ],
    );
    let mut a = fresh(&config);
    assert_eq!(
        jobs(&critical(&mut a, "r0", 0)),
        [job("r0", 1, &["collect-logs"])]
    );
    // The rollback is free, but api-down's diagnostic is busy for r0: nothing runs yet.
    assert!(critical(&mut a, "api-down", 1).hooks.is_empty());
    assert!(a.tick(at(30)).hooks.is_empty());
    let next = a.hook_finished(&id("r0"), 1, "collect-logs", HookResult::Done(None), at(31));
    assert_eq!(
        jobs(&next),
        [job("api-down", 1, &["collect-logs", "rollback"])]
    );
}

#[test]
fn a_hook_stays_busy_until_its_run_ends_across_incidents_and_reloads() {
    let config = with_hooks(
        with_hooks(
            config(),
            "api-down",
            vec![trigger("rollback", Severity::Critical, 0)],
        ),
        "api-slow",
        vec![trigger("rollback", Severity::Critical, 0)],
    );
    let mut a = fresh(&config);
    assert_eq!(
        jobs(&critical(&mut a, "api-down", 0)),
        [job("api-down", 1, &["rollback"])]
    );
    // The incident resolves and a new one opens while incident 1's rollback still runs.
    a.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(1)),
        at(1),
    );
    assert!(critical(&mut a, "api-down", 2).hooks.is_empty());
    let next = a.hook_finished(
        &id("api-down"),
        1,
        "rollback",
        HookResult::Done(None),
        at(3),
    );
    assert_eq!(jobs(&next), [job("api-down", 2, &["rollback"])]);
    // A reload removes the rule whose job holds the hook: the run goes on, and so does the wait.
    let mut without = config.clone();
    without.rules.retain(|r| r.name != "api-down");
    without.alerting.rules.remove("api-down");
    a.reconfigure(&without, at(4));
    assert!(critical(&mut a, "api-slow", 5).hooks.is_empty());
    let next = a.hook_finished(
        &id("api-down"),
        2,
        "rollback",
        HookResult::Done(None),
        at(6),
    );
    assert_eq!(jobs(&next), [job("api-slow", 1, &["rollback"])]);
}

#[test]
fn an_incident_keeps_the_deploy_it_opened_in() {
    let config = with_hooks(
        config(),
        "api-slow",
        vec![trigger("rollback", Severity::Critical, 0)],
    );
    let mut a = fresh(&config);
    let deploys = |plan: &Plan| -> Vec<Option<String>> {
        let events = plan.events.iter().map(|(e, _)| e.deploy.clone());
        events
            .chain(plan.hooks.iter().map(|j| j.trigger.deploy.clone()))
            .collect()
    };
    let v = |id: &str| Some(id.to_string());
    let none = a.transition(
        &tr("api-down", State::Ok, State::Critical, None, at(0)),
        at(0),
    );
    assert_eq!(deploys(&none), [None], "no deploy set: none named");
    a.set_deploy(v("v1"));
    let warn = a.transition(
        &tr("api-slow", State::Ok, State::Warning, None, at(1)),
        at(1),
    );
    assert_eq!(deploys(&warn), [v("v1")]);
    a.set_deploy(v("v2"));
    // Escalation, its hook, a re-send, the resolve: still v1's incident.
    let crit = a.transition(
        &tr("api-slow", State::Warning, State::Critical, None, at(2)),
        at(2),
    );
    assert_eq!(deploys(&crit), [v("v1"), v("v1")]);
    a.hook_finished(
        &id("api-slow"),
        1,
        "rollback",
        HookResult::Done(None),
        at(3),
    );
    assert_eq!(deploys(&a.tick(at(120))), [None, v("v1")]);
    let ok = a.transition(
        &tr("api-slow", State::Critical, State::Ok, None, at(130)),
        at(130),
    );
    assert_eq!(deploys(&ok), [v("v1")]);
    // The next incident is v2's.
    let next = a.transition(
        &tr("api-slow", State::Ok, State::Critical, None, at(140)),
        at(140),
    );
    assert_eq!(next.events[0].0.dedup_key, "warden/w1/api-slow/e-2");
    assert_eq!(deploys(&next), [v("v2"), v("v2")]);
    let view = a.view();
    let slow = view["alerts"].as_array().unwrap().iter();
    let slow: Vec<_> = slow.filter(|x| x["alert"] == "api-slow").collect();
    assert_eq!(slow[0]["deploy"], "v2");
}

#[test]
fn a_hook_with_its_own_notify_list_reports_there() {
    let mut config = with_hooks(
        config(),
        "api-down",
        vec![trigger("rollback", Severity::Critical, 0)],
    );
    config.alerting.hooks[1].notify = Some(names(&["pager"]));
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(0)),
        at(0),
    );
    assert_eq!(fire.hooks[0].hooks[0].1, names(&["pager"]));
}

#[test]
fn hooks_wait_for_this_process_to_see_the_level_not_for_a_stale_record() {
    let config = with_hooks(
        config(),
        "api-down",
        vec![trigger("rollback", Severity::Critical, 900)],
    );
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(0)),
        at(0),
    );
    // Restarted at 1,200 s, 300 s past the delay: the record alone runs nothing.
    let records: BTreeMap<AlertId, AlertRecord> = fire.records.into_iter().collect();
    let (mut b, _) = Alerts::new(&config, records, ident(), at(1200));
    assert!(
        b.tick(at(1200)).hooks.is_empty(),
        "a rollback on a stale record"
    );
    assert_eq!(b.permit(&id("api-down"), 1, "rollback"), None);
    // Seen critical again: the delay counts from then.
    let confirmed = b.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(1210)),
        at(1210),
    );
    assert!(confirmed.events.is_empty() && confirmed.hooks.is_empty());
    assert!(b.tick(at(2109)).hooks.is_empty());
    // A probe that cannot see pauses it: unknown, then critical again restarts the wait.
    b.transition(
        &tr("api-down", State::Critical, State::Unknown, None, at(2000)),
        at(2000),
    );
    assert!(b.tick(at(2110)).hooks.is_empty());
    b.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(2200)),
        at(2200),
    );
    assert!(b.tick(at(3099)).hooks.is_empty());
    let due = b.tick(at(3100));
    assert_eq!(due.hooks.len(), 1);
    let spec = b
        .permit(&id("api-down"), 1, "rollback")
        .expect("still critical");
    assert_eq!(spec.config.name, "rollback");
    assert_eq!(
        b.permit(&id("api-down"), 2, "rollback"),
        None,
        "another incident"
    );
    // Done is persisted with the record: after another restart it is not run again.
    let plan = b.hook_finished(
        &id("api-down"),
        1,
        "rollback",
        HookResult::Done(None),
        at(3101),
    );
    assert_eq!(plan.records.len(), 1);
    let records: BTreeMap<AlertId, AlertRecord> = plan.records.into_iter().collect();
    let (mut c, _) = Alerts::new(&config, records, ident(), at(4000));
    c.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(4000)),
        at(4000),
    );
    assert!(c.tick(at(9000)).hooks.is_empty());
    assert_eq!(c.permit(&id("api-down"), 1, "rollback"), None);
}

#[test]
fn a_job_is_not_permitted_once_the_alert_resolved_or_the_hook_is_gone() {
    let config = with_hooks(
        config(),
        "api-down",
        vec![trigger("rollback", Severity::Critical, 0)],
    );
    let mut a = fresh(&config);
    a.transition(
        &tr("api-down", State::Unknown, State::Critical, None, at(0)),
        at(0),
    );
    assert!(a.permit(&id("api-down"), 1, "rollback").is_some());
    let mut without = config.clone();
    without.alerting.rules.clear();
    a.reconfigure(&without, at(1));
    assert_eq!(
        a.permit(&id("api-down"), 1, "rollback"),
        None,
        "hook removed"
    );
    a.reconfigure(&config, at(2));
    a.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(3)),
        at(3),
    );
    assert_eq!(a.permit(&id("api-down"), 1, "rollback"), None, "resolved");
}

/// A reviewer's finding: a hook job that panicked never reported its hooks, so the stage held
/// them busy until a restart and every alert sharing one waited for good. The job's `Held`
/// guard reports each hook it has not reported yet when the job dies, and the stage hands
/// the hook on at once.
#[tokio::test]
async fn a_hook_job_that_panics_releases_its_hooks() {
    use super::run::{Held, JobMsg};
    let config = with_hooks(
        sharing(config(), 1, &[trigger("rollback", Severity::Critical, 0)]),
        "api-down",
        vec![
            trigger("collect-logs", Severity::Critical, 0),
            trigger("rollback", Severity::Critical, 0),
        ],
    );
    let mut a = fresh(&config);
    let plan = critical(&mut a, "api-down", 0);
    assert_eq!(
        jobs(&plan),
        [job("api-down", 1, &["collect-logs", "rollback"])]
    );
    assert!(
        critical(&mut a, "r0", 1).hooks.is_empty(),
        "r0 waits for the rollback"
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let clock = crate::clock::Clock::manual(at(2));
    let metrics = crate::telemetry::Metrics::new();
    let running = plan.hooks[0].clone();
    let (c, m) = (clock.clone(), metrics.clone());
    // The job reports its diagnostic, then dies inside the rollback.
    let died = tokio::spawn(async move {
        let mut held = Held::new(&running, c, tx, &m);
        held.finish("collect-logs", HookResult::Done(None));
        panic!("a hook job panics while it runs the rollback");
    })
    .await;
    assert!(died.unwrap_err().is_panic());

    let mut reported = Vec::new();
    while let Ok(msg) = rx.try_recv() {
        let JobMsg::Finished {
            alert,
            incident,
            hook,
            result,
        } = msg
        else {
            panic!("the guard only reports ends");
        };
        reported.push((alert, incident, hook, result));
    }
    assert_eq!(
        reported,
        [
            (
                id("api-down"),
                1,
                "collect-logs".into(),
                HookResult::Done(None)
            ),
            (
                id("api-down"),
                1,
                "rollback".into(),
                HookResult::RetryAt(at(2) + HOOK_RETRY)
            ),
        ]
    );
    let panics = metrics.task_panics.with_label_values(&["hook_job"]).get();
    assert_eq!(panics, 1);
    // The stage hands the rollback to r0 at once, and asks api-down again after r0's run.
    let mut next = Plan::default();
    for (alert, incident, hook, result) in reported {
        next.extend(a.hook_finished(&alert, incident, &hook, result, at(2)));
    }
    assert_eq!(jobs(&next), [job("r0", 1, &["rollback"])]);
    let after = a.hook_finished(&id("r0"), 1, "rollback", HookResult::Done(None), at(20));
    assert_eq!(jobs(&after), [job("api-down", 1, &["rollback"])]);
}

/// Issue 11 item 5: an alert whose severity has no route reached nobody and nothing said so.
/// The incident that opens unrouted is reported once, not on re-evaluations, re-sends or
/// restarts; one that escalates into an empty critical route is reported then; a routed rule
/// is never reported.
#[test]
fn an_incident_with_nobody_to_tell_is_reported_once_when_it_opens() {
    let mut config = config();
    config.alerting.route.critical.clear();
    let config = {
        let mut c = config;
        c.alerting.rules.insert(
            "api-slow".into(),
            RuleActions {
                route: Some(Route {
                    warning: names(&["chat"]),
                    critical: Vec::new(),
                }),
                hooks: Vec::new(),
            },
        );
        c
    };
    let unrouted = |p: &Plan| -> Vec<(String, Severity, String, RouteSource)> {
        p.unrouted
            .iter()
            .map(|u| {
                (
                    u.alert.rule.clone(),
                    u.severity,
                    u.dedup_key.clone(),
                    u.route,
                )
            })
            .collect()
    };
    let mut a = fresh(&config);
    let opened = critical(&mut a, "api-down", 0);
    assert_eq!(
        unrouted(&opened),
        [(
            "api-down".into(),
            Severity::Critical,
            "warden/w1/api-down/e-1".into(),
            RouteSource::Alerting
        )]
    );
    assert!(opened.events.is_empty(), "nobody to tell");
    assert!(opened.unrouted[0].fix().contains("[alerting] critical"));
    // Re-evaluations (through unknown, as after a reload) and ticks: not again.
    a.transition(
        &tr("api-down", State::Critical, State::Unknown, None, at(1)),
        at(1),
    );
    assert!(unrouted(&critical(&mut a, "api-down", 2)).is_empty());
    assert!(unrouted(&a.tick(at(600))).is_empty());
    // A restart on the same records: not again.
    let records: BTreeMap<AlertId, AlertRecord> =
        [(id("api-down"), a.record(&id("api-down")).unwrap().clone())].into();
    let (mut b, plan) = Alerts::new(&config, records, ident(), at(700));
    assert!(plan.unrouted.is_empty());
    assert!(unrouted(&critical(&mut b, "api-down", 701)).is_empty());
    // The next incident is reported again.
    b.transition(
        &tr("api-down", State::Critical, State::Ok, None, at(702)),
        at(702),
    );
    assert_eq!(
        unrouted(&critical(&mut b, "api-down", 703))[0].2,
        "warden/w1/api-down/e-2"
    );
    // A routed warning that escalates into an empty critical route: the warning reached
    // someone, the critical reaches nobody, and that is said.
    let warn = b.transition(
        &tr("api-slow", State::Ok, State::Warning, Some(1.5), at(704)),
        at(704),
    );
    assert!(unrouted(&warn).is_empty());
    assert_eq!(sent(&warn)[0].3, names(&["chat"]));
    let esc = b.transition(
        &tr(
            "api-slow",
            State::Warning,
            State::Critical,
            Some(3.0),
            at(705),
        ),
        at(705),
    );
    assert_eq!(
        unrouted(&esc),
        [(
            "api-slow".into(),
            Severity::Critical,
            "warden/w1/api-slow/e-1".into(),
            RouteSource::Rule
        )]
    );
    // A rule whose own `notify` leaves the severity out is told so.
    b.transition(
        &tr("api-slow", State::Critical, State::Ok, None, at(706)),
        at(706),
    );
    let own = b.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(707)),
        at(707),
    );
    assert_eq!(
        unrouted(&own),
        [(
            "api-slow".into(),
            Severity::Critical,
            "warden/w1/api-slow/e-2".into(),
            RouteSource::Rule
        )]
    );
    assert!(own.unrouted[0].fix().contains("the rule's notify names"));
}

/// Issue 13 item 3: a hook skipped for its cooldown was only a log line. How each hook went
/// for the incident is kept in the alert's record (persisted with it) and shown on the alert.
#[test]
fn how_each_hook_went_is_kept_on_the_alert() {
    let config = with_hooks(
        config(),
        "api-down",
        vec![
            trigger("collect-logs", Severity::Critical, 0),
            trigger("rollback", Severity::Critical, 0),
        ],
    );
    let mut a = fresh(&config);
    critical(&mut a, "api-down", 0);
    let ran = HookNote {
        outcome: "success".into(),
        reason: None,
        at: at(1).to_rfc3339(),
        verify: None,
    };
    let skipped = HookNote {
        outcome: "skipped".into(),
        reason: Some("cooldown until 2027-01-15T08:00:00.000Z (last run ended 2027-01-14T08:00:00.000Z, for warden/api-down/0)".into()),
        at: at(2).to_rfc3339(),
        verify: None,
    };
    let plan = a.hook_finished(
        &id("api-down"),
        1,
        "collect-logs",
        HookResult::Done(Some(ran)),
        at(1),
    );
    assert_eq!(plan.records.len(), 1, "the note is persisted");
    let plan = a.hook_finished(
        &id("api-down"),
        1,
        "rollback",
        HookResult::Done(Some(skipped)),
        at(2),
    );
    let (_, record) = &plan.records[0];
    let firing = record.firing.as_ref().unwrap();
    let done: Vec<String> = firing.hooks_done.iter().cloned().collect();
    assert_eq!(done, names(&["collect-logs", "rollback"]));
    // The store saying "already ran" adds nothing and keeps the note.
    let plan = a.hook_finished(
        &id("api-down"),
        1,
        "rollback",
        HookResult::Done(None),
        at(3),
    );
    assert!(plan.records.is_empty());
    expect_test::expect![[r#"
        [
          {
            "at": "2027-01-15T08:00:01.000Z",
            "hook": "collect-logs",
            "outcome": "success"
          },
          {
            "at": "2027-01-15T08:00:02.000Z",
            "hook": "rollback",
            "outcome": "skipped",
            "reason": "cooldown until 2027-01-15T08:00:00.000Z (last run ended 2027-01-14T08:00:00.000Z, for warden/api-down/0)"
          }
        ]"#]]
    .assert_eq(&serde_json::to_string_pretty(&a.view()["alerts"][0]["hooks"]).unwrap());
    // A record written before notes existed still loads.
    let mut old = serde_json::to_value(a.record(&id("api-down")).unwrap()).unwrap();
    old["firing"].as_object_mut().unwrap().remove("hook_notes");
    let old: AlertRecord = serde_json::from_value(old).unwrap();
    assert!(old.firing.unwrap().hook_notes.is_empty());
}

/// A postgres check with a series query and `backlog-high` (critical > 5) on it; criticals
/// go to chat.
fn series_config(scalar: bool) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let (result, value) = if scalar {
        ("scalar", "total")
    } else {
        ("series", "backlog")
    };
    std::fs::write(
        &path,
        format!(
            r#"
[[check]]
name = "pg"
kind = "postgres"
url = "postgres://127.0.0.1:9/app"

  [[check.query]]
  name = "{value}"
  sql = "SELECT queue, depth FROM jobs"
  result = "{result}"

[[rule]]
name = "backlog-high"
check = "pg"
value = "{value}"
labels = {{ team = "jobs", queue = "overridden" }}
critical = {{ when = "> 5" }}
"#
        ),
    )
    .unwrap();
    let mut config = crate::config::load_with_env(&path, &|_| None).unwrap();
    config.alerting = AlertingConfig {
        notifiers: vec![webhook("chat")],
        route: Route {
            warning: vec![],
            critical: vec!["chat".into()],
        },
        ..AlertingConfig::default()
    };
    config
}

fn series_tr(queue: &str, from: State, to: State, reason: TransitionReason) -> RuleTransition {
    RuleTransition {
        rule: "backlog-high".into(),
        labels: [("queue".to_string(), queue.to_string())].into(),
        check: "pg".into(),
        transition: Transition {
            from,
            to,
            at: at(1),
            value: Some(7.0),
            reason,
        },
    }
}

/// Issue 14: each series of a rule is an alert of its own, with its own key; one resolves
/// while the other fires; a vanished series resolves saying so.
#[test]
fn each_series_is_an_alert_with_its_own_key() {
    use TransitionReason::*;
    let config = series_config(false);
    let mut a = fresh(&config);
    let fire_a = a.transition(
        &series_tr("a", State::Unknown, State::Critical, ThresholdCrossed),
        at(1),
    );
    let fire_b = a.transition(
        &series_tr("b", State::Unknown, State::Critical, ThresholdCrossed),
        at(1),
    );
    let key_a = &fire_a.events[0].0.dedup_key;
    let key_b = &fire_b.events[0].0.dedup_key;
    let series = |q: &str| Labels::from([("queue".to_string(), q.to_string())]);
    assert_eq!(
        *key_a,
        format!(
            "warden/w1/backlog-high/{}/e-1",
            crate::labels::fingerprint(&series("a"))
        )
    );
    assert_ne!(key_a, key_b);
    let event = &fire_a.events[0].0;
    assert_eq!(event.series, series("a"));
    assert_eq!(event.title(), r#"backlog-high{queue="a"}"#);
    // The rule's labels win over a series label of the same name, as in Prometheus.
    assert_eq!(event.labels["queue"], "overridden");
    assert_eq!(event.labels["team"], "jobs");
    assert_eq!(a.firing_counts(), (0, 2));
    let view = a.view();
    assert_eq!(
        view["alerts"][0]["series"],
        serde_json::json!({"queue": "a"})
    );

    // b recovers: only b resolves, under its key.
    let ok_b = a.transition(
        &series_tr("b", State::Critical, State::Ok, Recovered),
        at(2),
    );
    assert_eq!(
        sent(&ok_b),
        [(
            EventKind::Resolved,
            Severity::Critical,
            key_b.clone(),
            names(&["chat"])
        )]
    );
    assert_eq!(a.firing_counts(), (0, 1));
    // a vanishes: resolved, and the resolve says why.
    let gone = a.transition(
        &series_tr("a", State::Critical, State::Ok, SeriesGone),
        at(3),
    );
    let (resolved, _) = &gone.events[0];
    assert_eq!(
        (resolved.kind, &resolved.dedup_key),
        (EventKind::Resolved, key_a)
    );
    let why = resolved.description.as_deref().unwrap_or_default();
    assert!(why.contains(r#"series {queue="a"} disappeared"#), "{why}");
    // b fires again: a new incident, numbered on from its last.
    let again = a.transition(
        &series_tr("b", State::Ok, State::Critical, ThresholdCrossed),
        at(4),
    );
    assert!(again.events[0].0.dedup_key.ends_with("/e-2"));
    assert_eq!(
        a.firing_series(),
        [("backlog-high".to_string(), series("b"))]
    );
}

/// A rule that stops reading labelled series (or starts) resolves the alerts it can no
/// longer produce.
#[test]
fn a_rule_changing_between_scalar_and_series_resolves_the_alerts_it_cannot_produce() {
    let config = series_config(false);
    let mut a = fresh(&config);
    a.transition(
        &series_tr(
            "a",
            State::Unknown,
            State::Critical,
            TransitionReason::ThresholdCrossed,
        ),
        at(1),
    );
    let plan = a.reconfigure(&series_config(true), at(2));
    let (resolved, _) = &plan.events[0];
    assert_eq!(resolved.kind, EventKind::Resolved);
    assert_eq!(resolved.series["queue"], "a");
    assert!(resolved
        .description
        .as_deref()
        .is_some_and(|d| d.contains("no longer reads this kind of value")));
    assert_eq!(a.firing_counts(), (0, 0));
}

#[test]
fn a_held_rule_pages_only_if_it_still_fires_when_the_hold_ends() {
    let config = config();
    let mut a = fresh(&config);
    a.hold("api-slow", at(60));
    // The blip: warning inside the hold, ok again before it ends: nobody is paged.
    let p = a.transition(
        &tr("api-slow", State::Ok, State::Warning, Some(1.5), at(5)),
        at(5),
    );
    assert!(p.events.is_empty());
    let p = a.transition(
        &tr("api-slow", State::Warning, State::Ok, Some(0.2), at(10)),
        at(10),
    );
    assert!(p.events.is_empty());
    assert!(
        a.tick(at(61)).events.is_empty(),
        "a recovered blip never pages"
    );
    // Inside a new hold it fires and stays: the page goes out when the hold ends.
    a.hold("api-slow", at(120));
    let p = a.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(70)),
        at(70),
    );
    assert!(p.events.is_empty());
    assert!(a.tick(at(119)).events.is_empty());
    let p = a.tick(at(120));
    assert_eq!(
        sent(&p),
        [(
            EventKind::Firing,
            Severity::Critical,
            "warden/w1/api-slow/e-1".into(),
            names(&["chat", "pager", "am"])
        )]
    );
    // A hold never holds a resolve, nor another rule.
    a.hold("api-slow", at(300));
    let p = a.transition(
        &tr("api-slow", State::Critical, State::Ok, Some(0.1), at(130)),
        at(130),
    );
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].0.kind, EventKind::Resolved);
    let p = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(131)),
        at(131),
    );
    assert_eq!(p.events.len(), 1);
}

/// `config()` with a window `post-deploy` whose failure runs `rollback`.
fn window_config() -> Config {
    let config = config_with(
        r#"
[[window]]
name = "post-deploy"
[[window.mark]]
at = "10m"
require = ["api-down"]
"#,
    );
    with_hooks(
        config,
        "window/post-deploy",
        vec![trigger("rollback", Severity::Critical, 0)],
    )
}

fn failed_run() -> Run {
    Run {
        id: 7,
        window: "post-deploy".into(),
        service: "post-deploy".into(),
        deploy: "d-1".into(),
        version: Some("v2".into()),
        labels: BTreeMap::new(),
        started_at: T0.as_millis(),
        state: RunState::Failed,
        reason: Some("mark 10m: rule api-down critical 0".into()),
        ended_at: Some(at(600).as_millis()),
        baseline: BTreeMap::new(),
        marks: Vec::new(),
        steps_started: 0,
        warnings: Vec::new(),
        timeline: Vec::new(),
        overrides: Default::default(),
    }
}

#[test]
fn a_failed_window_still_rolls_back_after_a_restart_or_a_reload_before_its_hook_ran() {
    let config = window_config();
    let mut a = fresh(&config);
    let plan = a.window_ended(&failed_run(), at(600));
    assert_eq!(plan.hooks.len(), 1, "the rollback is due at once");
    assert_eq!(plan.events[0].0.alert, "window/post-deploy");
    // The process dies before the hook ran: the next one finds the record firing, hook not done.
    let records: BTreeMap<AlertId, AlertRecord> = plan.records.into_iter().collect();
    let (mut b, plan) = Alerts::new(&config, records.clone(), ident(), at(700));
    assert!(
        plan.is_empty(),
        "a reload or restart never resolves a window's failure"
    );
    let tick = b.tick(at(701));
    assert_eq!(tick.hooks.len(), 1, "the rollback runs after the restart");
    assert_eq!(tick.hooks[0].hooks[0].0.config.name, "rollback");
    // A reload in between keeps it due as well.
    let (mut c, _) = Alerts::new(&config, records, ident(), at(700));
    assert!(c.reconfigure(&config, at(701)).is_empty());
    assert_eq!(c.tick(at(702)).hooks.len(), 1);
}

#[test]
fn a_notifier_removed_by_a_reload_still_gets_the_resolve_of_what_it_was_told() {
    let config = config();
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(1)),
        at(1),
    );
    assert_eq!(fire.events[0].1, names(&["chat", "pager", "am"]));
    // The reload renames "pager" to "pd" (same receiver, new name).
    let mut renamed = config.clone();
    renamed.alerting.notifiers.retain(|n| n.name != "pager");
    renamed.alerting.notifiers.push(pagerduty("pd"));
    renamed.alerting.route.critical = names(&["chat", "pd", "am"]);
    assert!(a.reconfigure(&renamed, at(2)).is_empty());
    let resolve = a.transition(
        &tr("api-down", State::Critical, State::Ok, Some(1.0), at(3)),
        at(3),
    );
    assert_eq!(resolve.events.len(), 1);
    assert_eq!(resolve.events[0].0.kind, EventKind::Resolved);
    let mut to = resolve.events[0].1.clone();
    to.sort();
    assert_eq!(
        to,
        names(&["am", "chat", "pager"]),
        "the resolve goes where the page went"
    );
    assert!(resolve.gone.is_empty());
    // A new incident pages the new name only.
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(4)),
        at(4),
    );
    assert_eq!(fire.events[0].1, names(&["chat", "pd", "am"]));
}

#[test]
fn after_a_restart_a_notifier_no_longer_configured_is_reported_not_told() {
    let config = config();
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(1)),
        at(1),
    );
    let records: BTreeMap<AlertId, AlertRecord> = fire.records.into_iter().collect();
    // The next process runs a config without `pager`: it has no sender for it any more.
    let mut smaller = config.clone();
    smaller.alerting.notifiers.retain(|n| n.name != "pager");
    let (mut b, _) = Alerts::new(&smaller, records, ident(), at(10));
    let ok = b.transition(
        &tr("api-down", State::Critical, State::Ok, Some(1.0), at(11)),
        at(11),
    );
    assert_eq!(sent(&ok)[0].3, names(&["am", "chat"]));
    assert_eq!(ok.gone, [(id("api-down"), "pager".to_string())]);
}

fn with_dependency(mut config: Config, rule: &str, parents: &[&str]) -> Config {
    config
        .alerting
        .dependencies
        .insert(rule.into(), names(parents));
    config
}

#[test]
fn a_dependent_is_held_while_its_parent_fires_and_named_on_the_parent_page() {
    let config = with_dependency(config(), "api-slow", &["api-down"]);
    let mut a = fresh(&config);
    let parent = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(1)),
        at(1),
    );
    let key = parent.events[0].0.dedup_key.clone();
    // The dependent fails too: evaluated (it reaches critical) but not paged; the parent's
    // incident is updated to name it.
    let held = a.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(2)),
        at(2),
    );
    assert_eq!(held.events.len(), 1, "{:?}", sent(&held));
    let update = &held.events[0].0;
    assert_eq!(
        (update.alert.as_str(), update.dedup_key.as_str()),
        ("api-down", key.as_str())
    );
    assert_eq!(
        update.description.as_deref(),
        Some("Also failing, held while this fires (depends_on): api-slow")
    );
    assert!(held.hooks.is_empty());
    let view = a.view();
    assert_eq!(view["blocked"][0]["alert"], "api-slow");
    assert_eq!(view["blocked"][0]["blocked_by"][0], "api-down");
    // The parent recovers; the dependent recovers within the grace: nobody hears of it.
    let resolve = a.transition(
        &tr("api-down", State::Critical, State::Ok, Some(1.0), at(10)),
        at(10),
    );
    assert_eq!(sent(&resolve)[0].0, EventKind::Resolved);
    assert!(a.tick(at(11)).events.is_empty());
    a.transition(
        &tr("api-slow", State::Critical, State::Ok, Some(0.1), at(30)),
        at(30),
    );
    assert!(a.tick(at(80)).events.is_empty());
    assert!(a.view()["blocked"].as_array().unwrap().is_empty());

    // Again, but the dependent still fails a grace after the parent resolved: it pages then.
    a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(100)),
        at(100),
    );
    a.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(101)),
        at(101),
    );
    a.transition(
        &tr("api-down", State::Critical, State::Ok, Some(1.0), at(110)),
        at(110),
    );
    assert!(a.tick(at(111)).events.is_empty());
    assert!(a.tick(at(169)).events.is_empty());
    let late = a.tick(at(171));
    assert_eq!(
        sent(&late),
        [(
            EventKind::Firing,
            Severity::Critical,
            "warden/w1/api-slow/e-1".into(),
            names(&["chat", "pager", "am"])
        )]
    );
}

#[test]
fn a_dependency_never_holds_a_resolve_or_an_alert_already_firing_and_is_transitive() {
    let config = with_dependency(config(), "api-slow", &["api-down"]);
    let mut a = fresh(&config);
    // The dependent fired first: it is an incident of its own, kept, and resolves.
    let own = a.transition(
        &tr("api-slow", State::Ok, State::Warning, Some(1.5), at(1)),
        at(1),
    );
    assert_eq!(own.events.len(), 1);
    a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(2)),
        at(2),
    );
    let worse = a.transition(
        &tr(
            "api-slow",
            State::Warning,
            State::Critical,
            Some(3.0),
            at(3),
        ),
        at(3),
    );
    assert_eq!(
        sent(&worse)[0].0,
        EventKind::Firing,
        "an escalation of a paged alert goes out"
    );
    let ok = a.transition(
        &tr("api-slow", State::Critical, State::Ok, Some(0.1), at(4)),
        at(4),
    );
    assert_eq!(sent(&ok)[0].0, EventKind::Resolved);

    // Transitive: c depends on b, b on api-down; api-down fires, so c is held.
    let mut config = with_dependency(config.clone(), "api-slow", &["b"]);
    config = with_dependency(config, "b", &["api-down"]);
    let mut a = fresh(&config);
    a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(1)),
        at(1),
    );
    let held = a.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(2)),
        at(2),
    );
    assert!(
        held.events.iter().all(|(e, _)| e.alert == "api-down"),
        "{:?}",
        sent(&held)
    );
    assert_eq!(a.view()["blocked"][0]["blocked_by"][0], "api-down");
}

fn policy_config(policy: crate::config::policy::Policy) -> Config {
    let mut config = config();
    config
        .alerting
        .rule_policies
        .insert("api-down".into(), policy.name.clone());
    config.alerting.policies.insert(policy.name.clone(), policy);
    config
}

fn step(after: u64, notify: &[&str]) -> crate::config::policy::PolicyStep {
    crate::config::policy::PolicyStep {
        after: Duration::from_secs(after),
        notify: names(notify),
        hours: None,
    }
}

/// A UTC time as warden's clock reads it.
fn utc(text: &str) -> Timestamp {
    let ts: jiff::Timestamp = text.parse().unwrap();
    Timestamp(ts.as_millisecond())
}

#[test]
fn a_p1_policy_tells_chat_now_and_pages_if_still_firing_after_15_minutes_unless_acked() {
    let p1 = crate::config::policy::Policy {
        name: "P1".into(),
        steps: vec![step(0, &["chat"]), step(15 * 60, &["pager"])],
        repeat: None,
        grouping: None,
    };
    let config = policy_config(p1);
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(0)),
        at(0),
    );
    assert_eq!(sent(&fire)[0].3, names(&["chat"]));
    assert!(fire.unrouted.is_empty());
    let key = fire.events[0].0.dedup_key.clone();
    assert!(a.tick(at(15 * 60 - 1)).events.is_empty());
    let page = a.tick(at(15 * 60));
    assert_eq!(
        sent(&page),
        [(
            EventKind::Firing,
            Severity::Critical,
            key.clone(),
            names(&["pager"])
        )]
    );
    assert!(a.tick(at(20 * 60)).events.is_empty(), "each step once");
    // A restart keeps the progress: nothing is sent again.
    let records: BTreeMap<AlertId, AlertRecord> = page.records.into_iter().collect();
    let (mut b, _) = Alerts::new(&config, records, ident(), at(21 * 60));
    assert!(b.tick(at(21 * 60)).events.is_empty());
    let ok = b.transition(
        &tr(
            "api-down",
            State::Critical,
            State::Ok,
            Some(1.0),
            at(22 * 60),
        ),
        at(22 * 60),
    );
    assert_eq!(sent(&ok)[0].3, names(&["chat", "pager"]));

    // Acknowledged at 5 minutes: the 15-minute page never goes out.
    let mut a = fresh(&config);
    a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(0)),
        at(0),
    );
    let (id, plan) = a.ack("api-down", "alice", at(5 * 60)).unwrap();
    assert_eq!(id, AlertId::rule("api-down"));
    assert_eq!(plan.records.len(), 1, "the ack is persisted");
    assert!(a.tick(at(16 * 60)).events.is_empty());
    assert_eq!(a.view()["alerts"][0]["ack"]["by"], "alice");
    assert!(a.ack("nope", "alice", at(1)).is_err());
}

#[test]
fn repeats_go_to_everyone_told_until_acknowledged_and_a_critical_needs_a_new_ack() {
    let policy = crate::config::policy::Policy {
        name: "loud".into(),
        steps: vec![step(0, &["chat"])],
        repeat: Some(Duration::from_secs(3600)),
        grouping: None,
    };
    let mut config = policy_config(policy);
    config
        .alerting
        .rule_policies
        .insert("api-slow".into(), "loud".into());
    let mut a = fresh(&config);
    a.transition(
        &tr("api-slow", State::Ok, State::Warning, Some(1.5), at(0)),
        at(0),
    );
    assert!(a.tick(at(3599)).events.is_empty());
    let repeat = a.tick(at(3600));
    assert_eq!(sent(&repeat)[0].3, names(&["chat"]));
    a.ack("api-slow", "bob", at(3700)).unwrap();
    assert!(
        a.tick(at(7300)).events.is_empty(),
        "acknowledged: no repeat"
    );
    // Worse: critical clears the ack, the policy starts again at the new severity.
    let worse = a.transition(
        &tr(
            "api-slow",
            State::Warning,
            State::Critical,
            Some(3.0),
            at(7400),
        ),
        at(7400),
    );
    assert_eq!(sent(&worse)[0].3, names(&["chat"]));
    assert!(a.view()["alerts"][0].get("ack").is_none());
    assert_eq!(sent(&a.tick(at(7400 + 3600)))[0].3, names(&["chat"]));
}

#[test]
fn a_business_hours_step_waits_across_the_weekend_and_a_dst_change() {
    let mut office = step(0, &["chat"]);
    office.hours = Some(crate::config::policy::Hours {
        days: [true, true, true, true, true, false, false],
        from: 9 * 60,
        to: 18 * 60,
        tz: "Europe/Berlin".into(),
    });
    let p2 = crate::config::policy::Policy {
        name: "P2".into(),
        steps: vec![office],
        repeat: None,
        grouping: None,
    };
    let config = policy_config(p2);
    let mut a = fresh(&config);
    // Friday 2026-03-27 19:00 Berlin: after hours.
    let friday = utc("2026-03-27T18:00:00Z");
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), friday),
        friday,
    );
    assert!(fire.events.is_empty(), "nobody until office hours");
    assert_eq!(fire.records.len(), 1, "the incident is open and recorded");
    // The weekend passes (and the clocks go forward on Sunday): still nobody.
    for t in [
        "2026-03-28T09:00:00Z",
        "2026-03-29T08:00:00Z",
        "2026-03-30T06:59:00Z",
    ] {
        assert!(a.tick(utc(t)).events.is_empty(), "{t}");
    }
    // Monday 09:00 CEST = 07:00 UTC.
    let monday = a.tick(utc("2026-03-30T07:00:00Z"));
    assert_eq!(sent(&monday)[0].3, names(&["chat"]));
}

#[test]
fn a_route_picks_the_policy_by_the_alerts_labels() {
    let mut config = config();
    config.alerting.policies.insert(
        "P0".into(),
        crate::config::policy::Policy {
            name: "P0".into(),
            steps: vec![step(0, &["pager"])],
            repeat: None,
            grouping: None,
        },
    );
    config.alerting.policies.insert(
        "P3".into(),
        crate::config::policy::Policy {
            name: "P3".into(),
            steps: vec![step(0, &["am"])],
            repeat: None,
            grouping: None,
        },
    );
    // api-slow has labels { team = "web" }: the web team's criticals are P0.
    config
        .alerting
        .routes
        .push(crate::config::policy::PolicyRoute {
            matchers: vec![
                crate::matcher::Matcher::parse(r#"team="web""#).unwrap(),
                crate::matcher::Matcher::parse(r#"severity=~"crit.*""#).unwrap(),
            ],
            policy: "P0".into(),
        });
    config.alerting.severity_policies.critical = Some("P3".into());
    let mut a = fresh(&config);
    let web = a.transition(
        &tr("api-slow", State::Ok, State::Critical, Some(3.0), at(1)),
        at(1),
    );
    assert_eq!(sent(&web)[0].3, names(&["pager"]), "matched the route");
    let other = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(2)),
        at(2),
    );
    assert_eq!(sent(&other)[0].3, names(&["am"]), "the severity's default");
    // A warning of the web team matches no route and has no default policy: the plain route.
    let warn = a.transition(
        &tr(
            "api-slow",
            State::Critical,
            State::Warning,
            Some(1.5),
            at(3),
        ),
        at(3),
    );
    assert!(sent(&warn)
        .iter()
        .any(|(k, _, _, to)| *k == EventKind::Firing && *to == names(&["chat"])));
}

#[test]
fn a_page_carries_a_signed_expiring_ack_link_that_acknowledges_only_its_incident() {
    let mut config = config();
    config.alerting.external_url = Some("https://warden.example".into());
    let mut a = fresh(&config);
    a.set_ack_key(b"0123456789abcdef0123456789abcdef".to_vec());
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(0)),
        at(0),
    );
    let event = &fire.events[0].0;
    let url = event.ack_url.clone().expect("a link");
    let exp = (at(0).as_millis() / 1000) + 24 * 3600;
    let sig =
        crate::alert::ack_signature(b"0123456789abcdef0123456789abcdef", &event.dedup_key, exp);
    assert_eq!(
        url,
        format!(
            "https://warden.example/api/v1/ack?key={}&exp={exp}&sig={sig}",
            crate::alert::percent_encode(&event.dedup_key)
        )
    );
    // Tampered, or for another incident, or expired: refused.
    let other = a.ack_by_link("warden/w1/api-slow/e-1", exp, &sig, at(1));
    assert!(other.unwrap_err().contains("signature"));
    let mut bad = sig.clone();
    bad.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
    assert!(a.ack_by_link(&event.dedup_key, exp, &bad, at(1)).is_err());
    assert!(a
        .ack_by_link(&event.dedup_key, exp, &sig, Timestamp((exp + 1) * 1000))
        .unwrap_err()
        .contains("expired"));
    // The real one acknowledges.
    let (id, _) = a.ack_by_link(&event.dedup_key, exp, &sig, at(60)).unwrap();
    assert_eq!(id, AlertId::rule("api-down"));
    assert_eq!(
        a.view()["alerts"][0]["ack"]["by"],
        "an acknowledgement link"
    );
    // Without external_url, pages carry no link.
    let mut b = fresh(&super::tests::config());
    b.set_ack_key(b"k".repeat(32));
    let fire = b.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(0)),
        at(0),
    );
    assert!(fire.events[0].0.ack_url.is_none());
}

#[test]
fn an_alert_that_ends_while_flapping_is_resolved_to_everyone_it_paged() {
    let config = config();
    let mut a = fresh(&config);
    let fire = a.transition(
        &tr("api-down", State::Ok, State::Critical, Some(0.0), at(1)),
        at(1),
    );
    let key = fire.events[0].0.dedup_key.clone();
    assert!(a
        .transition(
            &tr("api-down", State::Critical, State::Flapping, None, at(5)),
            at(5)
        )
        .is_empty());
    // Flap detection ends with the series settled at ok: straight from flapping to ok.
    let ok = a.transition(
        &tr("api-down", State::Flapping, State::Ok, Some(1.0), at(60)),
        at(60),
    );
    assert_eq!(
        sent(&ok),
        [(
            EventKind::Resolved,
            Severity::Critical,
            key,
            names(&["am", "chat", "pager"])
        )]
    );
    assert_eq!(a.record(&id("api-down")).unwrap().firing, None);
}
