//! The five runbooks' on-call policies: each `config/examples/<system>.toml` as shipped (no
//! variable set), its alerts driven through the pure alert stage ([`Alerts`]) on a manual
//! [`Clock`], so "page if still firing after 15 minutes" and "business hours only" are tested
//! in microseconds, at the minute the runbook gives and not a second earlier.
//!
//! [`RUNBOOK_POLICIES`] is the ledger: every policy of every example with its steps, the
//! runbook line it follows, and every rule level (and validation window failure) it takes. Each
//! level is fired through the stage, so the policy checked is the one a page would follow
//! (the rule's own, the first `[[route]]` matching, `[alerting] policy`); a rule or a level
//! added without a priority, or a policy changed, fails until the ledger names the runbook line.
//! The timing tests below walk each system's levels through the clock: who is told at once,
//! who after the runbook's minutes, who never; an acknowledgement stops what is still due.
//!
//! The daemon tests (`runbooks`, `runbook_windows`) run the same examples in real time and
//! hold the pages the policies send at once (P0's page, a failed window's); the steps that wait
//! 15 minutes, an hour or a weekend are held here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use warden::actions::Alerts;
use warden::alert::{EventKind, Identity, Severity};
use warden::clock::{Clock, Timestamp};
use warden::config::{format_duration, Config, MissingPolicy};
use warden::engine::RuleTransition;
use warden::rule::{State, Transition, TransitionReason};
use warden::window::{Run, RunState};

use crate::runbooks::example;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const SECOND: Duration = Duration::from_secs(1);

/// A UTC time as warden's clock reads it.
fn utc(text: &str) -> Timestamp {
    let ts: jiff::Timestamp = text.parse().expect("an RFC 3339 time");
    Timestamp::from_millis(ts.as_millisecond())
}

/// A Tuesday, 10:00 UTC: inside any business hours, so only the steps' delays count.
fn tuesday() -> Timestamp {
    utc("2026-03-24T10:00:00Z")
}

fn shipped(system: &str) -> Config {
    warden::config::load_with_env(&example(system), &|_| None)
        .unwrap_or_else(|e| panic!("{system}: {e}"))
}

/// What the stage sent: the event's kind, its dedup key and who got it.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    kind: EventKind,
    severity: Severity,
    key: String,
    to: Vec<String>,
}

/// One example's alert stage on a manual clock.
struct Stage {
    config: Config,
    alerts: Alerts,
    clock: Clock,
    start: Timestamp,
}

impl Stage {
    fn new(system: &str, start: Timestamp) -> Stage {
        let config = shipped(system);
        let clock = Clock::manual(start);
        let identity = Identity {
            instance: "runbook-policies".into(),
            epoch: "e".into(),
        };
        let (alerts, plan) = Alerts::new(&config, BTreeMap::new(), identity, clock.now());
        assert!(
            plan.events.is_empty(),
            "{system}: a fresh start sent {plan:?}"
        );
        Stage {
            config,
            alerts,
            clock,
            start,
        }
    }

    fn sent(plan: warden::actions::Plan) -> Vec<Sent> {
        plan.events
            .into_iter()
            .map(|(e, to)| Sent {
                kind: e.kind,
                severity: e.severity,
                key: e.dedup_key,
                to,
            })
            .collect()
    }

    /// The rule moves from `from` to `to` now, as the engine reports it.
    fn transition(&mut self, rule: &str, from: State, to: State) -> Vec<Sent> {
        let config = self
            .config
            .rules
            .iter()
            .find(|r| r.name == rule)
            .unwrap_or_else(|| panic!("no rule {rule}"));
        // A rule reading labelled series has one alert per series: one here.
        let mut labels = warden::labels::Labels::new();
        if config.series.is_some() {
            labels.insert("instance".into(), "test".into());
        }
        let now = self.clock.now();
        let t = RuleTransition {
            rule: rule.to_string(),
            labels,
            check: config.check.clone(),
            transition: Transition {
                from,
                to,
                at: now,
                value: None,
                reason: match to {
                    State::Ok => TransitionReason::Recovered,
                    _ => TransitionReason::ThresholdCrossed,
                },
            },
        };
        Self::sent(self.alerts.transition(&t, now))
    }

    /// The rule reaches `severity` from ok now; who is told at once.
    fn fire(&mut self, rule: &str, severity: Severity) -> Vec<Sent> {
        self.transition(rule, State::Ok, state(severity))
    }

    /// A run of the window `name` (deploy `v2`) failed now; who is told at once.
    fn window_fails(&mut self, name: &str) -> Vec<Sent> {
        let now = self.clock.now();
        let w = self
            .config
            .windows
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no window {name}"));
        let run = Run {
            id: 1,
            window: w.name.clone(),
            service: w.service.clone(),
            deploy: "v2".into(),
            version: Some("v2".into()),
            labels: BTreeMap::new(),
            started_at: now.as_millis(),
            state: RunState::Failed,
            reason: Some("a rollback trigger fired".into()),
            ended_at: Some(now.as_millis()),
            baseline: BTreeMap::new(),
            marks: Vec::new(),
            steps_started: 0,
            warnings: Vec::new(),
            timeline: Vec::new(),
            overrides: Default::default(),
        };
        Self::sent(self.alerts.window_ended(&run, now))
    }

    /// Time passes to `offset` after the start; what the stage sends then.
    fn at(&mut self, offset: Duration) -> Vec<Sent> {
        self.clock.set(self.start + offset);
        Self::sent(self.alerts.tick(self.clock.now()))
    }

    /// Time passes to `t`; what the stage sends then.
    fn at_time(&mut self, t: Timestamp) -> Vec<Sent> {
        self.clock.set(t);
        Self::sent(self.alerts.tick(self.clock.now()))
    }

    /// `warden ack` of the firing alert of `rule` (by its dedup key: a rule reading labelled
    /// series is named with its series otherwise).
    fn ack(&mut self, rule: &str) {
        let key = self.firing(rule)["dedup_key"]
            .as_str()
            .expect("a dedup key")
            .to_string();
        self.alerts
            .ack(&key, "on-call", self.clock.now())
            .unwrap_or_else(|e| panic!("ack {rule}: {e}"));
    }

    /// The firing alert of `rule`, as `GET /api/v1/alerts` shows it.
    fn firing(&self, rule: &str) -> serde_json::Value {
        let view = self.alerts.view();
        view["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .find(|a| a["alert"] == rule)
            .unwrap_or_else(|| panic!("{rule} is not firing: {view:#}"))
            .clone()
    }

    /// The policy the firing alert of `rule` follows.
    fn policy(&self, rule: &str) -> Option<String> {
        self.firing(rule)["policy"]["name"]
            .as_str()
            .map(str::to_string)
    }
}

fn state(severity: Severity) -> State {
    match severity {
        Severity::Warning => State::Warning,
        Severity::Critical => State::Critical,
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The one firing event sent, to `to`.
#[track_caller]
fn told(sent: &[Sent], to: &[&str]) -> Sent {
    let firing: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.kind == EventKind::Firing)
        .collect();
    assert_eq!(firing.len(), 1, "one page, to {to:?}: {sent:#?}");
    assert_eq!(firing[0].to, names(to), "{sent:#?}");
    firing[0].clone()
}

/// Nothing was sent.
#[track_caller]
fn quiet(sent: &[Sent], when: &str) {
    assert!(sent.is_empty(), "{when}: {sent:#?}");
}

// ---------------------------------------------------------------------------------------------
// The ledger.

/// `(policy, its steps, the runbook line, the rule levels and windows it takes)`.
type Policies = &'static [(
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
)];

/// Every example's policies as shipped, each with the runbook line it follows and what it
/// takes: `rule warning`, `rule critical` (a level the rule reaches, by a threshold or by
/// `on_error`/`on_missing`), or `window/<name>` (a failed run). Steps read `notifiers at once`,
/// `notifiers after 15m`, `notifiers in mon-fri 09:00-17:00 UTC`.
const RUNBOOK_POLICIES: [(&str, Policies); 5] = [
    (
        "redcube",
        &[
            (
                "redcube-p0",
                "oncall, slack at once",
                "Incident Response: \"P0 - Critical (Rollback immediately)\": service completely \
                 down; When to Rollback; Incident Checklist \"3. Communicate (1 min): Notify team \
                 on Slack/Discord\"",
                &[
                    "redcube-content-down critical",
                    "redcube-content-slow critical",
                    "redcube-db-down critical",
                    "redcube-smoke critical",
                    "redcube-p95 critical",
                    "window/redcube-post-deploy",
                ],
            ),
            (
                "redcube-p1",
                "slack at once; oncall after 15m",
                "\"P1 - High (Rollback within 15 min)\": \"Error rate > 10%\", \"Database sync \
                 failing\"",
                &[
                    "redcube-users-db-down critical",
                    "redcube-user-sync critical",
                    "redcube-error-rate critical",
                ],
            ),
            (
                "redcube-p2",
                "slack at once; oncall after 1h",
                "\"P2 - Medium (Fix within 1 hour)\": \"Minor feature broken\", \"Error rate \
                 5-10%\", \"Performance degraded\"",
                &[
                    "redcube-content-slow warning",
                    "redcube-reputation-inactive warning",
                    "redcube-smoke warning",
                    "redcube-error-rate warning",
                    "redcube-p95 warning",
                ],
            ),
            (
                "redcube-p3",
                "tickets at once",
                "\"P3 - Low (Fix in next deploy)\"; Key Metrics to Monitor's capacity rows \
                 (\"Scale database\", \"Scale horizontally\", \"Investigate memory leaks\")",
                &[
                    "redcube-db-connections warning",
                    "redcube-cpu warning",
                    "redcube-memory warning",
                ],
            ),
        ],
    ),
    (
        "nuvie",
        &[
            (
                "nuvie-p1",
                "pagerduty, slack at once; eng-manager after 15m",
                "Severity Levels: \"P1 - Critical | Complete outage | 15 min\"; Contact List: \
                 \"On-call Engineer | PagerDuty | Auto-escalate 15min\", \"Engineering Manager | \
                 Slack @eng-manager\"",
                &[
                    "nuvie-api-down critical",
                    "nuvie-ai-down critical",
                    "nuvie-redis-down critical",
                    "nuvie-db-down critical",
                    "nuvie-api-slow critical",
                    "nuvie-api-cert-expiry critical",
                    "nuvie-ai-cert-expiry critical",
                    "nuvie-cpu critical",
                    "nuvie-memory critical",
                    "nuvie-smoke critical",
                    "nuvie-high-error-rate critical",
                    "nuvie-error-rate critical",
                    "nuvie-p95 critical",
                    "nuvie-circuit-breaker critical",
                    "window/nuvie-post-deploy",
                ],
            ),
            (
                "nuvie-p2",
                "slack at once; pagerduty after 1h",
                "\"P2 - Major | Significant degradation | 1 hour | Slow responses, partial \
                 failures\"",
                &[
                    "nuvie-api-not-ready warning",
                    "nuvie-redis-down warning",
                    "nuvie-api-slow warning",
                    "nuvie-cpu warning",
                    "nuvie-memory warning",
                    "nuvie-smoke warning",
                    "nuvie-slow-response-time warning",
                    "nuvie-error-rate warning",
                    "nuvie-p95 warning",
                ],
            ),
            (
                "nuvie-p3",
                "slack at once; pagerduty after 4h",
                "\"P3 - Minor | Limited impact | 4 hours | Single feature broken\": the AI \
                 service behind an open circuit breaker (\"Circuit breaker open | Any\")",
                &["nuvie-ai-down warning", "nuvie-circuit-breaker warning"],
            ),
            (
                "nuvie-p4",
                "slack at once; pagerduty after 1d",
                "\"P4 - Low | Minimal impact | 24 hours\"; Pre-Deployment Checklist \"SSL \
                 certificates valid (>30 days)\"",
                &["nuvie-api-cert-expiry warning", "nuvie-ai-cert-expiry warning"],
            ),
        ],
    ),
    (
        "nova-streaming",
        &[
            (
                "nova-streaming-critical",
                "oncall, slack at once; infra-lead after 5m",
                "Escalation procedure: \"CRITICAL (API down, data loss) -> Immediate rollback (< 5 \
                 min)\"; War Room Setup; Support \"4. For escalation: Notify infrastructure team \
                 lead\"",
                &[
                    "nova-streaming-api-down critical",
                    "window/nova-streaming-post-switch",
                ],
            ),
            (
                "nova-streaming-high",
                "oncall, slack at once; infra-lead after 10m",
                "\"HIGH (Errors > 5%, WebSocket failures) -> Investigate (5 min), then rollback if \
                 needed\"; Immediate Rollback (< 5 minutes)",
                &[
                    "nova-streaming-db-down critical",
                    "nova-streaming-redis-down critical",
                    "nova-streaming-api-cert-expiry critical",
                    "nova-streaming-smoke critical",
                    "nova-streaming-error-rate critical",
                    "nova-streaming-websocket-drop critical",
                ],
            ),
            (
                "nova-streaming-medium",
                "slack at once; oncall after 30m",
                "\"MEDIUM (Errors 1-5%, performance degradation) -> Investigate (30 min), \
                 continue monitoring\"",
                &[
                    "nova-streaming-api-slow warning",
                    "nova-streaming-api-metrics-down warning",
                    "nova-streaming-streams-failing warning",
                    "nova-streaming-smoke warning",
                    "nova-streaming-p95 warning",
                    "nova-streaming-error-rate warning",
                    "nova-streaming-websocket-drop warning",
                    "nova-streaming-db-query-p95 warning",
                ],
            ),
            (
                "nova-streaming-low",
                "tickets at once",
                "\"LOW (Error rate < 1%, warnings in logs) -> Monitor, fix in next release\"; \
                 Support \"3. For improvements: File ticket in issue tracker\"; Capacity planning",
                &[
                    "nova-streaming-db-connections warning",
                    "nova-streaming-cache-capacity warning",
                    "nova-streaming-api-cert-expiry warning",
                    "nova-streaming-cpu warning",
                    "nova-streaming-memory warning",
                ],
            ),
        ],
    ),
    (
        "ai-saas",
        &[
            (
                "ai-saas-rollback",
                "oncall, slack at once",
                "Rollback Procedures: \"Automatic Rollback (If Health Checks Fail)\"; \"Ensure \
                 on-call engineer is available\"; On-Call Runbook \"4. Notify Team - Post in \
                 #incidents\" (no severity levels, no escalation)",
                &[
                    "ai-saas-api-down critical",
                    "ai-saas-db-down critical",
                    "ai-saas-redis-down critical",
                    "ai-saas-smoke critical",
                    "window/ai-saas-canary",
                ],
            ),
            (
                "ai-saas-targets",
                "slack at once",
                "Post-Deployment Verification, Step 4's \"should be\" targets; Performance \
                 Degradation \"1. Check metrics\"",
                &[
                    "ai-saas-api-slow warning",
                    "ai-saas-redis-memory warning",
                    "ai-saas-memory warning",
                    "ai-saas-smoke warning",
                    "ai-saas-error-rate warning",
                    "ai-saas-p95 warning",
                    "ai-saas-p99 warning",
                    "ai-saas-db-connections-rising warning",
                ],
            ),
        ],
    ),
    (
        "novacron",
        &[
            (
                "novacron-p0",
                "pagerduty, slack at once",
                "Severity Levels: \"P0 (Critical) - Full outage\", \"Response time: Immediate\", \
                 \"Actions: Page on-call engineer, initiate rollback\"; Immediate rollback \
                 triggers",
                &[
                    "novacron-health-failing critical",
                    "novacron-components-unhealthy critical",
                    "novacron-health-db-failing critical",
                    "novacron-api-info-failing critical",
                    "novacron-dwcp-failing critical",
                    "novacron-db-down critical",
                    "novacron-cert-expiry critical",
                    "novacron-smoke critical",
                    "novacron-error-rate critical",
                    "novacron-5xx-per-minute critical",
                    "novacron-latency-vs-baseline critical",
                    "window/novacron-traffic-shift",
                ],
            ),
            (
                "novacron-p1",
                "slack at once; pagerduty after 15m",
                "\"P1 (High) - Partial outage\", \"Response time: Within 15 minutes\", \
                 \"Actions: Alert on-call, investigate and resolve\"",
                &[
                    "novacron-health-cache-failing critical",
                    "novacron-cache-component-unhealthy critical",
                    "novacron-redis-down critical",
                ],
            ),
            (
                "novacron-p2",
                "slack in mon-fri 09:00-17:00 UTC",
                "\"P2 (Medium) - Performance degradation\", \"Actions: Investigate during \
                 business hours\" (the runbook's times are UTC)",
                &[
                    "novacron-metrics-down warning",
                    "novacron-slow warning",
                    "novacron-memory warning",
                    "novacron-smoke warning",
                    "novacron-high-response-time warning",
                ],
            ),
            (
                "novacron-p3",
                "tickets at once",
                "\"P3 (Low) - Minor issues\", \"Response time: Next business day\", \"Actions: \
                 Create ticket, fix in next release\"",
                &["novacron-cert-expiry warning"],
            ),
        ],
    ),
];

/// A policy's steps in the ledger's words (also `runbook_windows`' ledger).
pub(crate) fn steps_of(policy: &warden::config::policy::Policy) -> String {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    let mut steps: Vec<String> = policy
        .steps
        .iter()
        .map(|s| {
            let mut text = s.notify.join(", ");
            if s.after.is_zero() && s.hours.is_none() {
                text.push_str(" at once");
            }
            if !s.after.is_zero() {
                text.push_str(&format!(" after {}", format_duration(s.after)));
            }
            if let Some(h) = &s.hours {
                let days: Vec<&str> = (0..7).filter(|d| h.days[*d]).map(|d| DAYS[d]).collect();
                let days = if h.days == [true, true, true, true, true, false, false] {
                    "mon-fri".to_string()
                } else {
                    days.join(",")
                };
                text.push_str(&format!(
                    " in {days} {}-{} {}",
                    hhmm(h.from),
                    hhmm(h.to),
                    h.tz
                ));
            }
            text
        })
        .collect();
    if let Some(every) = policy.repeat {
        steps.push(format!("repeat every {}", format_duration(every)));
    }
    steps.join("; ")
}

/// Every level each rule of `config` can reach (`rule warning`, `rule critical`) and every
/// window's failure (`window/<name>`).
fn levels(config: &Config) -> Vec<(String, Option<Severity>)> {
    let mut out = Vec::new();
    for r in &config.rules {
        let by_probe = |s: MissingPolicy| [r.on_error, r.on_missing].contains(&s);
        if r.warning.is_some() || by_probe(MissingPolicy::Warning) {
            out.push((r.name.clone(), Some(Severity::Warning)));
        }
        if r.critical.is_some() || by_probe(MissingPolicy::Critical) {
            out.push((r.name.clone(), Some(Severity::Critical)));
        }
    }
    for w in &config.windows {
        out.push((w.name.clone(), None));
    }
    out
}

#[test]
fn every_runbook_level_follows_the_policy_of_its_runbook_line() {
    for (system, ledger) in RUNBOOK_POLICIES {
        let config = shipped(system);
        let mut wrong = Vec::new();
        // The policies, their steps and nothing else.
        let defined: BTreeSet<&str> = config
            .alerting
            .policies
            .keys()
            .map(String::as_str)
            .collect();
        let listed: BTreeSet<&str> = ledger.iter().map(|(name, ..)| *name).collect();
        if defined != listed {
            wrong.push(format!("policies {defined:?}, the ledger lists {listed:?}"));
        }
        for (name, want, line, _) in ledger {
            if let Some(p) = config.alerting.policies.get(*name) {
                let got = steps_of(p);
                if got != *want {
                    wrong.push(format!(
                        "{name}: {got}\n    the runbook ({line}) gives: {want}"
                    ));
                }
            }
        }
        // Each level fired alone, through the stage: the policy it follows.
        let mut taken: BTreeMap<String, String> = BTreeMap::new();
        for (name, severity) in levels(&config) {
            let mut stage = Stage::new(system, tuesday());
            let (what, alert) = match severity {
                Some(s) => {
                    stage.fire(&name, s);
                    (format!("{name} {}", s.as_str()), name.clone())
                }
                None => {
                    stage.window_fails(&name);
                    let rule = format!("window/{name}");
                    (rule.clone(), rule)
                }
            };
            let policy = stage.policy(&alert).unwrap_or_else(|| "(none)".into());
            taken.insert(what, policy);
        }
        for (what, policy) in &taken {
            match ledger
                .iter()
                .find(|(_, _, _, members)| members.contains(&what.as_str()))
            {
                None => wrong.push(format!("{what}: {policy}, not in the ledger")),
                Some((want, ..)) if want != policy => {
                    wrong.push(format!("{what}: {policy}, the ledger gives {want}"))
                }
                Some(_) => {}
            }
        }
        for (name, _, _, members) in ledger {
            for m in *members {
                if !taken.contains_key(*m) {
                    wrong.push(format!(
                        "{m}: in the ledger under {name}, not in the example"
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{system}:\n{}", wrong.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// The timing, per system.

/// Redcube, Incident Response: P0 pages now; P1 tells Slack and pages only if still firing,
/// unacknowledged, after 15 minutes; P2 after the hour; P3 is a ticket, nobody paged.
#[test]
fn redcube_p0_pages_now_p1_after_15_minutes_p2_after_the_hour_p3_is_a_ticket() {
    // P0 "Service completely down": on-call and Slack at once, and nothing more (no escalation
    // named) however long it lasts; the resolve goes to both.
    let mut s = Stage::new("redcube", tuesday());
    let page = told(
        &s.fire("redcube-content-down", Severity::Critical),
        &["oncall", "slack"],
    );
    for t in [MINUTE, 15 * MINUTE, HOUR, 24 * HOUR] {
        quiet(&s.at(t), "P0 after its page");
    }
    let ok = s.transition("redcube-content-down", State::Critical, State::Ok);
    assert_eq!(ok.len(), 1, "{ok:#?}");
    assert_eq!(
        (ok[0].kind, &ok[0].key, &ok[0].to),
        (EventKind::Resolved, &page.key, &names(&["oncall", "slack"]))
    );

    // A failed post-deploy window (it rolled back): P0 too.
    let mut s = Stage::new("redcube", tuesday());
    let window = told(&s.window_fails("redcube-post-deploy"), &["oncall", "slack"]);
    assert_eq!(window.severity, Severity::Critical);

    // P1 "Database sync failing": Slack at once; on-call when the 15 minutes are up, not a
    // second before, under the same incident.
    let mut s = Stage::new("redcube", tuesday());
    let chat = told(&s.fire("redcube-user-sync", Severity::Critical), &["slack"]);
    quiet(&s.at(15 * MINUTE - SECOND), "P1 before its 15 minutes");
    let paged = told(&s.at(15 * MINUTE), &["oncall"]);
    assert_eq!(paged.key, chat.key, "one incident");
    quiet(&s.at(HOUR), "each step once");
    // The resolve goes to everyone it reached.
    let ok = s.transition("redcube-user-sync", State::Critical, State::Ok);
    assert_eq!(ok[0].to, names(&["oncall", "slack"]));

    // P1 "Error rate > 10%", acknowledged at 10 minutes: on-call is not paged.
    let mut s = Stage::new("redcube", tuesday());
    told(
        &s.fire("redcube-error-rate", Severity::Critical),
        &["slack"],
    );
    s.at(10 * MINUTE);
    s.ack("redcube-error-rate");
    quiet(&s.at(15 * MINUTE), "an acknowledged P1");
    quiet(&s.at(2 * HOUR), "an acknowledged P1");
    // Recovered before the 15 minutes: on-call never hears of it.
    let mut s = Stage::new("redcube", tuesday());
    told(
        &s.fire("redcube-users-db-down", Severity::Critical),
        &["slack"],
    );
    s.at(14 * MINUTE);
    let ok = s.transition("redcube-users-db-down", State::Critical, State::Ok);
    assert_eq!(ok[0].to, names(&["slack"]));
    quiet(&s.at(15 * MINUTE), "a resolved P1");

    // P2 "Error rate 5-10%": Slack at once, on-call when the hour is up. Worse, "Error rate >
    // 10%", is P1 from then: Slack again at once, and on-call 15 minutes after it got worse.
    let mut s = Stage::new("redcube", tuesday());
    let warn = told(&s.fire("redcube-error-rate", Severity::Warning), &["slack"]);
    quiet(&s.at(HOUR - SECOND), "P2 before its hour");
    told(&s.at(HOUR), &["oncall"]);
    let mut s = Stage::new("redcube", tuesday());
    told(&s.fire("redcube-error-rate", Severity::Warning), &["slack"]);
    s.at(20 * MINUTE);
    let worse = s.transition("redcube-error-rate", State::Warning, State::Critical);
    let worse = told(&worse, &["slack"]);
    assert_eq!(worse.key, warn.key, "the same incident");
    assert_eq!(worse.severity, Severity::Critical);
    quiet(
        &s.at(35 * MINUTE - SECOND),
        "P1's 15 minutes count from critical",
    );
    told(&s.at(35 * MINUTE), &["oncall"]);

    // P3 "Fix in next deploy": the capacity rows open a ticket, and nobody is paged, ever.
    for rule in ["redcube-cpu", "redcube-memory", "redcube-db-connections"] {
        let mut s = Stage::new("redcube", tuesday());
        told(&s.fire(rule, Severity::Warning), &["tickets"]);
        for t in [15 * MINUTE, HOUR, 24 * HOUR, 7 * 24 * HOUR] {
            quiet(&s.at(t), rule);
        }
    }
}

/// Nuvie, Incident Response and the Contact List: P1 pages PagerDuty and #infra at once and
/// escalates to the engineering manager after 15 minutes unacknowledged; P2, P3 and P4 tell
/// #infra and page when their response time (1 hour, 4 hours, 24 hours) passes.
#[test]
fn nuvie_p1_escalates_after_15_minutes_and_p2_to_p4_page_after_their_response_time() {
    // P1 "API down": PagerDuty and #infra; "Auto-escalate 15min" to @eng-manager.
    let mut s = Stage::new("nuvie", tuesday());
    let page = told(
        &s.fire("nuvie-api-down", Severity::Critical),
        &["pagerduty", "slack"],
    );
    quiet(&s.at(15 * MINUTE - SECOND), "P1 before its 15 minutes");
    let up = told(&s.at(15 * MINUTE), &["eng-manager"]);
    assert_eq!(up.key, page.key, "one incident");
    quiet(&s.at(24 * HOUR), "each step once");
    let ok = s.transition("nuvie-api-down", State::Critical, State::Ok);
    assert_eq!(ok[0].to, names(&["eng-manager", "pagerduty", "slack"]));
    // Acknowledged within the 15 minutes: no escalation.
    let mut s = Stage::new("nuvie", tuesday());
    s.fire("nuvie-db-down", Severity::Critical);
    s.at(14 * MINUTE);
    s.ack("nuvie-db-down");
    quiet(&s.at(15 * MINUTE), "an acknowledged P1");

    // P2 "partial failures" (not ready): #infra, then PagerDuty at the hour.
    let mut s = Stage::new("nuvie", tuesday());
    told(
        &s.fire("nuvie-api-not-ready", Severity::Warning),
        &["slack"],
    );
    quiet(&s.at(HOUR - SECOND), "P2 before its hour");
    told(&s.at(HOUR), &["pagerduty"]);

    // P3 "Single feature broken": the AI service down, its breaker open. #infra, PagerDuty
    // after 4 hours; but after 5 minutes it is P1 ("Circuit breaker open | >5min"): paged at
    // once, and escalated 15 minutes after that.
    let mut s = Stage::new("nuvie", tuesday());
    told(
        &s.fire("nuvie-circuit-breaker", Severity::Warning),
        &["slack"],
    );
    quiet(&s.at(4 * HOUR - SECOND), "P3 before its 4 hours");
    told(&s.at(4 * HOUR), &["pagerduty"]);
    let mut s = Stage::new("nuvie", tuesday());
    told(&s.fire("nuvie-ai-down", Severity::Warning), &["slack"]);
    s.at(5 * MINUTE);
    let worse = s.transition("nuvie-ai-down", State::Warning, State::Critical);
    told(&worse, &["pagerduty", "slack"]);
    quiet(
        &s.at(20 * MINUTE - SECOND),
        "P1's 15 minutes count from critical",
    );
    told(&s.at(20 * MINUTE), &["eng-manager"]);

    // P4 "Minimal impact": a certificate with 30 days left. #infra, PagerDuty after a day.
    let mut s = Stage::new("nuvie", tuesday());
    told(
        &s.fire("nuvie-api-cert-expiry", Severity::Warning),
        &["slack"],
    );
    quiet(&s.at(24 * HOUR - SECOND), "P4 before its 24 hours");
    told(&s.at(24 * HOUR), &["pagerduty"]);
}

/// Nova Streaming, Emergency Procedures' escalation tree: CRITICAL and HIGH page on-call and
/// the war room at once and reach the infrastructure team lead after 5 and 10 minutes; MEDIUM
/// tells the war room and pages after 30; LOW files a ticket.
#[test]
fn nova_streaming_walks_the_escalation_tree() {
    // CRITICAL "API down": on-call and #nova-incident, the team lead at 5 minutes.
    let mut s = Stage::new("nova-streaming", tuesday());
    let page = told(
        &s.fire("nova-streaming-api-down", Severity::Critical),
        &["oncall", "slack"],
    );
    quiet(&s.at(5 * MINUTE - SECOND), "CRITICAL before its 5 minutes");
    assert_eq!(told(&s.at(5 * MINUTE), &["infra-lead"]).key, page.key);
    // A failed post-switch window (it switched back to blue) is CRITICAL.
    let mut s = Stage::new("nova-streaming", tuesday());
    told(
        &s.window_fails("nova-streaming-post-switch"),
        &["oncall", "slack"],
    );
    told(&s.at(5 * MINUTE), &["infra-lead"]);

    // HIGH "database down": the team lead after the 5 minutes' investigation and the
    // rollback's 5.
    let mut s = Stage::new("nova-streaming", tuesday());
    told(
        &s.fire("nova-streaming-db-down", Severity::Critical),
        &["oncall", "slack"],
    );
    quiet(&s.at(10 * MINUTE - SECOND), "HIGH before its 10 minutes");
    told(&s.at(10 * MINUTE), &["infra-lead"]);
    // Acknowledged: the lead is not bothered.
    let mut s = Stage::new("nova-streaming", tuesday());
    s.fire("nova-streaming-redis-down", Severity::Critical);
    s.at(3 * MINUTE);
    s.ack("nova-streaming-redis-down");
    quiet(&s.at(HOUR), "an acknowledged HIGH");

    // Down the tree and up: errors at 1-5% are MEDIUM (the war room; on-call at 30 minutes);
    // above 5% at 12 minutes they are HIGH (on-call and the war room at once, the lead 10
    // minutes later).
    let mut s = Stage::new("nova-streaming", tuesday());
    told(
        &s.fire("nova-streaming-error-rate", Severity::Warning),
        &["slack"],
    );
    s.at(12 * MINUTE);
    let high = s.transition("nova-streaming-error-rate", State::Warning, State::Critical);
    told(&high, &["oncall", "slack"]);
    quiet(
        &s.at(22 * MINUTE - SECOND),
        "HIGH's 10 minutes count from HIGH",
    );
    told(&s.at(22 * MINUTE), &["infra-lead"]);
    let mut s = Stage::new("nova-streaming", tuesday());
    told(&s.fire("nova-streaming-p95", Severity::Warning), &["slack"]);
    quiet(&s.at(30 * MINUTE - SECOND), "MEDIUM before its 30 minutes");
    told(&s.at(30 * MINUTE), &["oncall"]);

    // LOW: a capacity requirement of the next release, a ticket; nobody paged, ever.
    for rule in ["nova-streaming-cpu", "nova-streaming-cache-capacity"] {
        let mut s = Stage::new("nova-streaming", tuesday());
        told(&s.fire(rule, Severity::Warning), &["tickets"]);
        for t in [30 * MINUTE, 24 * HOUR, 7 * 24 * HOUR] {
            quiet(&s.at(t), rule);
        }
    }
}

/// AI SaaS has no severity levels, times or escalation: what it rolls back for pages on-call
/// and #incidents at once, its "should be" targets go to #incidents, and nothing follows.
#[test]
fn ai_saas_pages_what_it_rolls_back_for_and_posts_the_rest() {
    let mut s = Stage::new("ai-saas", tuesday());
    told(
        &s.fire("ai-saas-api-down", Severity::Critical),
        &["oncall", "slack"],
    );
    for t in [5 * MINUTE, 15 * MINUTE, HOUR, 24 * HOUR] {
        quiet(&s.at(t), "no escalation is named");
    }
    let mut s = Stage::new("ai-saas", tuesday());
    told(&s.window_fails("ai-saas-canary"), &["oncall", "slack"]);
    let mut s = Stage::new("ai-saas", tuesday());
    told(&s.fire("ai-saas-p95", Severity::Warning), &["slack"]);
    for t in [HOUR, 24 * HOUR] {
        quiet(&s.at(t), "a target is not paged");
    }
}

/// NovaCron, Severity Levels: P0 pages now; P1 alerts in Slack and pages at 15 minutes; P2 is
/// investigated in business hours (a warning raised on Saturday at 03:00 UTC is posted on
/// Monday at 09:00, not before); P3 creates a ticket.
#[test]
fn novacron_p2_waits_for_business_hours_and_p1_pages_after_15_minutes() {
    // P0 "Full outage": PagerDuty and Slack at once, at any hour.
    let saturday = utc("2026-03-28T03:00:00Z");
    let mut s = Stage::new("novacron", saturday);
    told(
        &s.fire("novacron-health-failing", Severity::Critical),
        &["pagerduty", "slack"],
    );
    let mut s = Stage::new("novacron", saturday);
    told(
        &s.window_fails("novacron-traffic-shift"),
        &["pagerduty", "slack"],
    );

    // P1 "Partial outage" (the cache down): "Alert on-call" in Slack, PagerDuty when the 15
    // minutes are up, at night too.
    let mut s = Stage::new("novacron", saturday);
    told(
        &s.fire("novacron-redis-down", Severity::Critical),
        &["slack"],
    );
    quiet(&s.at(15 * MINUTE - SECOND), "P1 before its 15 minutes");
    told(&s.at(15 * MINUTE), &["pagerduty"]);

    // P2 "Investigate during business hours", raised Saturday 03:00 UTC: nobody all weekend,
    // Slack on Monday at 09:00 (the incident recorded all along).
    let mut s = Stage::new("novacron", saturday);
    let fired = s.fire("novacron-slow", Severity::Warning);
    quiet(&fired, "P2 on a Saturday night");
    assert_eq!(s.policy("novacron-slow").as_deref(), Some("novacron-p2"));
    let monday = utc("2026-03-30T09:00:00Z");
    let mut t = saturday;
    while t < monday {
        quiet(&s.at_time(t), &format!("P2 at {t} (the weekend)"));
        t = t + HOUR;
    }
    quiet(&s.at_time(monday - SECOND), "P2 at Monday 08:59:59");
    let posted = told(&s.at_time(monday), &["slack"]);
    assert_eq!(posted.severity, Severity::Warning);
    quiet(&s.at_time(monday + HOUR), "each step once");
    // One that recovers before Monday reaches nobody, its resolve included.
    let mut s = Stage::new("novacron", saturday);
    s.fire("novacron-memory", Severity::Warning);
    s.at(20 * HOUR);
    quiet(
        &s.transition("novacron-memory", State::Warning, State::Ok),
        "a P2 resolved before business hours",
    );
    quiet(&s.at_time(monday), "a resolved P2");
    // Raised on a weekday in business hours: at once. After 17:00 (the end is exclusive):
    // the next morning at 09:00.
    let mut s = Stage::new("novacron", tuesday());
    told(
        &s.fire("novacron-high-response-time", Severity::Warning),
        &["slack"],
    );
    let evening = utc("2026-03-24T17:00:00Z");
    let mut s = Stage::new("novacron", evening);
    quiet(
        &s.fire("novacron-metrics-down", Severity::Warning),
        "P2 at 17:00",
    );
    quiet(
        &s.at_time(utc("2026-03-25T08:59:59Z")),
        "P2 before Wednesday 09:00",
    );
    told(&s.at_time(utc("2026-03-25T09:00:00Z")), &["slack"]);

    // P3 "Create ticket": at once, Saturday night included (a ticket wakes nobody), and
    // nobody paged.
    let mut s = Stage::new("novacron", saturday);
    told(
        &s.fire("novacron-cert-expiry", Severity::Warning),
        &["tickets"],
    );
    quiet(&s.at_time(monday), "P3 is a ticket only");
}
