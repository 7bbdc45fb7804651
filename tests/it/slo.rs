//! `[[slo]]` end to end: warden scrapes an imitation `/metrics` whose request counters the
//! test raises, counts the SLO's good and total events from them, pages through a real
//! webhook when the burn rate is over the alert's rate on both windows, and resolves when
//! good traffic brings the burn rate down; the budget and burn rates are on `/metrics` and in
//! `/api/v1/status`. The 1 h / 6 h / 3 d windows of the SRE workbook are the unit tests'
//! (`src/slo/tests.rs`, with `now` in hand); here the alert reads 2 m and 1 m windows, and
//! the test never waits for a minute to pass: each step is a counter change the next scrape
//! shows.

use std::sync::{Arc, Mutex};

use crate::daemon::Daemon;
use crate::harness::http::{HttpServer, Reply};
use crate::harness::receiver::Receiver;
use crate::metrics_matcher::sample;

/// `http_requests_total` by code: (2xx, 5xx).
type Counters = Arc<Mutex<(u64, u64)>>;

fn imitation(counters: Counters) -> HttpServer {
    HttpServer::start(move |_| {
        let (ok, failed) = *counters.lock().unwrap();
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(format!(
                "# TYPE http_requests_total counter\n\
                 http_requests_total{{code=\"200\"}} {ok}\n\
                 http_requests_total{{code=\"500\"}} {failed}\n"
            ))
    })
}

fn slo(d: &Daemon) -> serde_json::Value {
    d.status()["slos"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "checkout").cloned())
        .unwrap_or_default()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn a_burning_error_budget_pages_and_resolves_when_good_traffic_cools_it() {
    let counters: Counters = Arc::new(Mutex::new((0, 0)));
    let target = imitation(counters.clone());
    let receiver = Receiver::start();
    let d = Daemon::start(&format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{hook}"

[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "200ms"
timeout = "150ms"

[[slo]]
name = "checkout"
good = 'http_requests_total{{code!~"5.."}}'
total = "http_requests_total"
objective = 99
period = "1h"

[[slo.alert]]
severity = "critical"
burn_rate = 2
long = "2m"
short = "1m"
"#,
        hook = receiver.url(),
        metrics = target.url("/metrics"),
    ));

    // The first read of the counters is their baseline: nothing counted, nothing spent.
    let first = d.wait_for("the SLO evaluated", || {
        let s = slo(&d);
        (s["state"] == "ok").then_some(s)
    });
    assert_eq!(first["objective"], 99.0);
    assert_eq!(first["period"], "1h");
    assert_eq!(first["events"]["total"], 0.0);
    assert_eq!(first["error_budget_remaining"], 1.0);

    // 1,000 requests, 50 of them failed: 5 % bad against a 1 % budget burns at 5x, over 2x
    // on both windows, with 1,000 events over the 50 the alert needs (⌈1 / (2 × 1 %)⌉).
    *counters.lock().unwrap() = (950, 50);
    let page = d.wait_for("the burn-rate page", || {
        receiver
            .accepted()
            .into_iter()
            .find(|b| b["status"] == "firing")
    });
    assert_eq!(page["alert"], "checkout");
    assert_eq!(page["severity"], "critical");
    assert_eq!(page["labels"]["slo"], "checkout");
    assert_eq!(page["value"], 2.0);
    // The status snapshot follows within its publishing interval.
    let s = d.wait_for("the SLO critical in the status", || {
        let s = slo(&d);
        (s["state"] == "critical").then_some(s)
    });
    assert_eq!(s["events"]["total"], 1000.0);
    assert_eq!(s["events"]["bad"], 50.0);
    assert_eq!(s["alerts"][0]["min_events"], 50.0);
    assert_eq!(s["alerts"][0]["firing"], true);
    let windows: Vec<&str> = s["burn_rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["window"].as_str().unwrap())
        .collect();
    assert_eq!(windows, ["1m", "2m"]);
    for w in s["burn_rates"].as_array().unwrap() {
        assert!(close(w["burn_rate"].as_f64().unwrap(), 5.0), "{w}");
    }
    // Overspent fourfold: 1 − 5.
    assert!(
        close(s["error_budget_remaining"].as_f64().unwrap(), -4.0),
        "{s}"
    );
    let (_, text) = d.metrics();
    let budget = sample(
        &text,
        "warden_slo_error_budget_remaining_ratio",
        &[("slo", "checkout")],
    );
    assert!(close(budget.unwrap(), -4.0), "{budget:?}");
    for window in ["1m", "2m"] {
        let rate = sample(
            &text,
            "warden_slo_burn_rate",
            &[("slo", "checkout"), ("window", window)],
        );
        assert!(close(rate.unwrap(), 5.0), "{window}: {rate:?}");
    }

    // 99,000 good requests more: 50 bad of 100,000 is 0.05 %, a burn rate of 0.05x; the page
    // resolves under its key, and 95 % of the budget is left.
    counters.lock().unwrap().0 += 99_000;
    let resolved = d.wait_for("the resolve", || {
        receiver
            .accepted()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert_eq!(resolved["dedup_key"], page["dedup_key"]);
    let s = d.wait_for("the SLO ok in the status", || {
        let s = slo(&d);
        (s["state"] == "ok").then_some(s)
    });
    assert_eq!(s["events"]["total"], 100_000.0);
    assert!(
        close(s["error_budget_remaining"].as_f64().unwrap(), 0.95),
        "{s}"
    );
    let (_, text) = d.metrics();
    let budget = sample(
        &text,
        "warden_slo_error_budget_remaining_ratio",
        &[("slo", "checkout")],
    );
    assert!(close(budget.unwrap(), 0.95), "{budget:?}");
    let firing = receiver
        .accepted()
        .into_iter()
        .filter(|b| b["status"] == "firing")
        .count();
    assert_eq!(firing, 1, "paged once");
}

#[test]
fn a_probe_slo_counts_each_probe_as_an_event() {
    let up = Arc::new(Mutex::new(true));
    let u = up.clone();
    let target =
        HttpServer::start(move |_| Reply::status(if *u.lock().unwrap() { 200 } else { 503 }));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "api"
kind = "http"
url = "{url}"
interval = "100ms"
timeout = "100ms"

[[slo]]
name = "api-availability"
check = "api"
objective = 99.5
"#,
        url = target.url("/health"),
    ));
    let s = d.wait_for("probes counted", || {
        let s = d.status()["slos"][0].clone();
        (s["events"]["total"].as_f64().unwrap_or(0.0) >= 3.0).then_some(s)
    });
    assert_eq!(s["name"], "api-availability");
    assert_eq!(s["period"], "30d");
    assert_eq!(s["events"]["bad"], 0.0);
    // The workbook's seven distinct windows, each on /metrics.
    assert_eq!(s["burn_rates"].as_array().unwrap().len(), 7);
    let (_, text) = d.metrics();
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        assert_eq!(
            sample(
                &text,
                "warden_slo_burn_rate",
                &[("slo", "api-availability"), ("window", window)]
            ),
            Some(0.0),
            "{window}"
        );
    }
    // Failing probes are bad events.
    *up.lock().unwrap() = false;
    d.wait_for("a failed probe counted as bad", || {
        let s = d.status()["slos"][0].clone();
        (s["events"]["bad"].as_f64().unwrap_or(0.0) >= 1.0).then_some(())
    });
}
