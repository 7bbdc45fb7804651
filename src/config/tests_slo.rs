//! `[[slo]]`: what it compiles to (the SLO and its rule), and every mistake reported at its
//! place (the golden fixture `bad/slo.toml`).

use std::time::Duration;

use super::tests::fake_env;
use super::*;
use crate::alert::Severity;

fn compile(text: &str) -> Result<Config, Diagnostics> {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("w.toml");
    std::fs::write(&main, text).unwrap();
    load_with_env(&main, &fake_env)
}

const CHECKS: &str = r#"
[[notifier]]
name = "oncall"
kind = "webhook"
url = "http://127.0.0.1:1/hook"

[[hook]]
name = "rollback"
command = ["true"]

[[check]]
name = "api"
kind = "tcp"
address = "127.0.0.1:1"

[[check]]
name = "app"
kind = "scrape"
url = "http://127.0.0.1:1/metrics"
"#;

#[test]
fn a_probe_slo_gets_the_workbook_alerts_and_a_rule_of_its_name() {
    let config = compile(&format!(
        r#"{CHECKS}
[[slo]]
name = "api-availability"
check = "api"
objective = 99.5
notify = ["oncall"]
hooks = [{{ hook = "rollback", on = "critical" }}]
"#
    ))
    .unwrap();
    let slo = &config.slos[0];
    assert_eq!(slo.name, "api-availability");
    assert_eq!(slo.sli, Sli::Probes);
    assert_eq!(slo.check, "api");
    assert!((slo.objective - 0.995).abs() < 1e-12);
    assert_eq!(slo.period, Duration::from_secs(30 * 86_400));
    assert_eq!(slo.min_events, None);
    assert_eq!(slo.alerts, AlertConfig::workbook());
    let h = |n: u64| Duration::from_secs(n * 3600);
    assert_eq!(
        slo.alerts[0],
        AlertConfig {
            severity: Severity::Critical,
            burn_rate: 14.4,
            long: h(1),
            short: Duration::from_secs(300),
        }
    );
    assert_eq!(slo.alerts[3].long, h(72));
    // Its rule: named like it, on its check, reading its level, warning at 1, critical at 2.
    let rule = config
        .rules
        .iter()
        .find(|r| r.name == "api-availability")
        .unwrap();
    assert_eq!(rule.check, "api");
    assert_eq!(rule.value, SLO_LEVEL_VALUE);
    assert_eq!(rule.labels["slo"], "api-availability");
    assert_eq!(rule.warning.as_ref().unwrap().when.threshold, 1.0);
    assert_eq!(rule.critical.as_ref().unwrap().when.threshold, 2.0);
    assert_eq!(rule.critical.as_ref().unwrap().trigger, Trigger::Immediate);
    assert_eq!(
        rule.description.as_deref(),
        Some("SLO api-availability: 99.5% over 30d")
    );
    // Routed and hooked as a rule.
    assert_eq!(
        config
            .alerting
            .route_of("api-availability", Severity::Critical),
        ["oncall"]
    );
    assert_eq!(
        config.alerting.hooks_of("api-availability")[0].hook,
        "rollback"
    );
}

#[test]
fn a_counter_slo_reads_after_the_one_scrape_with_its_own_alert_table() {
    let config = compile(&format!(
        r#"{CHECKS}
[[slo]]
name = "requests"
good = 'http_requests_total{{code!~"5.."}}'
total = "http_requests_total"
objective = 99
period = "1h"
min_events = 10

[[slo.alert]]
severity = "critical"
burn_rate = 10
long = "2m"
short = "1m"
"#
    ))
    .unwrap();
    let slo = &config.slos[0];
    assert_eq!(slo.check, "app");
    let Sli::Counters { good, total } = &slo.sli else {
        panic!("{:?}", slo.sli)
    };
    assert_eq!(good.0.text(), r#"http_requests_total{code!~"5.."}"#);
    assert_eq!(total.0.text(), "http_requests_total");
    assert_eq!(slo.period, Duration::from_secs(3600));
    assert_eq!(slo.min_events, Some(10.0));
    assert_eq!(
        slo.alerts,
        [AlertConfig {
            severity: Severity::Critical,
            burn_rate: 10.0,
            long: Duration::from_secs(120),
            short: Duration::from_secs(60),
        }]
    );
    let rule = config.rules.iter().find(|r| r.name == "requests").unwrap();
    assert_eq!(rule.check, "app");
    // Only critical alerts: the rule has no warning level.
    assert!(rule.warning.is_none());
}

#[test]
fn slo_mistakes_are_reported_at_their_place() {
    let err = compile(&format!(
        r#"{CHECKS}
[[rule]]
name = "taken"
check = "api"
critical = {{ when = "< 1" }}

[[slo]]
name = "taken"
check = "api"
objective = 99.5

[[slo]]
name = "bad-keys"
check = "nope"
objective = 100
period = "90s"
colour = "red"

[[slo]]
name = "half-a-ratio"
good = "x"
objective = 99

[[slo]]
name = "short-period"
check = "api"
objective = 99
period = "1d"

[[slo]]
name = "alerts"
check = "api"
objective = 99
period = "1d"
[[slo.alert]]
severity = "page"
burn_rate = 0
long = "5m"
short = "1h"
[[slo.alert]]
severity = "warning"
burn_rate = 2
long = "2d"
short = "30s"
depth = 1
"#
    ))
    .unwrap_err()
    .to_string();
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        (":27:8:", r#"SLO name "taken" is taken"#),
        (":33:9:", r#"check "nope""#),
        (
            ":34:13:",
            "objective is a percent between 0 and 100 (exclusive), e.g. 99.5, got 100",
        ),
        (
            ":35:10:",
            r#"period must be whole minutes (SLOs count events per minute), got "1m30s""#,
        ),
        (":36:1:", r#"unknown key "colour" in [[slo]]"#),
        (":40:8:", "an SLO counts with both `good` and `total`"),
        (
            ":47:10:",
            r#"period "1d" is shorter than the default alerts' longest window (3d)"#,
        ),
        (
            ":55:12:",
            r#"invalid severity "page": expected one of warning, critical"#,
        ),
        (":56:13:", "burn_rate must be greater than 0, got 0"),
        (":58:9:", "short (1h) must not be longer than long (5m)"),
        (
            ":62:8:",
            "long (2d) must not be longer than the period (1d)",
        ),
        (":63:9:", r#"short must be at least 1m, got "30s""#),
        (":64:1:", r#"unknown key "depth" in [[slo.alert]]"#),
    ];
    for (place, message) in expected {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(place) && l.contains(message)),
            "no {place} {message:?} in:\n{err}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "{err}");
}
