//! `kind = "scrape"` and `expr` rules end to end: warden scrapes an in-process `/metrics`
//! whose counters grow as real traffic would, evaluates the runbooks' error-rate expression
//! per route, pages the route that breaks (and only it) and resolves it when it heals; a
//! target answering garbage fails its scrape naming the line.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::daemon::Daemon;
use crate::harness::http::{HttpServer, Reply};
use crate::harness::receiver::Receiver;

/// Requests per second per route, and the share of them answered 5xx.
struct Traffic {
    last: Instant,
    /// (route, status) → count
    counts: Vec<((&'static str, &'static str), f64)>,
    error_share: Vec<(&'static str, f64)>,
}

impl Traffic {
    /// Advances the counters to now and renders them in text format 0.0.4.
    fn render(&mut self) -> String {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        for ((route, status), count) in &mut self.counts {
            let share = self
                .error_share
                .iter()
                .find(|(r, _)| r == route)
                .map_or(0.0, |(_, s)| *s);
            let part = if *status == "500" { share } else { 1.0 - share };
            *count += 100.0 * dt * part;
        }
        let mut out = String::from(
            "# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n",
        );
        for ((route, status), count) in &self.counts {
            out.push_str(&format!(
                "http_requests_total{{route=\"{route}\",status=\"{status}\"}} {}\n",
                count.floor()
            ));
        }
        out
    }
}

#[test]
fn an_error_ratio_per_route_pages_the_broken_route_only_and_resolves_it() {
    let traffic = Arc::new(Mutex::new(Traffic {
        last: Instant::now(),
        counts: ["/a", "/b"]
            .iter()
            .flat_map(|r| [((*r, "200"), 0.0), ((*r, "500"), 0.0)])
            .collect(),
        error_share: vec![("/a", 0.2), ("/b", 0.0)],
    }));
    let t = traffic.clone();
    let target = HttpServer::start(move |_| {
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(t.lock().unwrap().render())
    });
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

[[rule]]
name = "error-ratio"
expr = 'sum by (route) (rate(http_requests_total{{status=~"5.."}}[2s])) / sum by (route) (rate(http_requests_total[2s]))'
critical = {{ when = "> 0.05" }}
gone_after = "5s"
"#,
        hook = receiver.url(),
        metrics = target.url("/metrics"),
    ));

    let page = d.wait_for("a page for /a", || {
        receiver
            .accepted()
            .into_iter()
            .find(|b| b["status"] == "firing")
    });
    assert_eq!(page["alert"], "error-ratio");
    assert_eq!(page["series"], serde_json::json!({"route": "/a"}));
    let ratio = page["value"].as_f64().unwrap();
    assert!((0.1..0.3).contains(&ratio), "about 20 % errors: {ratio}");
    // /b is evaluated (ok), never paged.
    let b = d.wait_for("/b evaluated", || {
        d.status()["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["series"]["route"] == "/b" && r["state"] == "ok")
            .cloned()
    });
    assert!(b["value"].as_f64().unwrap() < 0.01, "{b}");
    // The scrape's own values: up and how many samples it read.
    let app = d.check("app");
    assert_eq!(app["values"]["samples"], 4.0, "{app}");

    // /a heals: its alert resolves under the same key.
    traffic.lock().unwrap().error_share = vec![("/a", 0.0), ("/b", 0.0)];
    let resolved = d.wait_for("the resolve of /a", || {
        receiver
            .accepted()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert_eq!(resolved["dedup_key"], page["dedup_key"]);
    let firing: Vec<_> = receiver
        .accepted()
        .into_iter()
        .filter(|b| b["status"] == "firing")
        .collect();
    assert_eq!(firing.len(), 1, "only /a paged: {firing:?}");
}

#[test]
fn a_target_answering_garbage_fails_its_scrape_naming_the_line() {
    let target = HttpServer::start(|_| {
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body("ok 1\nbroken{label=\"unterminated} 2\n")
    });
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "app-scrape"
check = "app"
critical = {{ when = "< 1" }}

[[rule]]
name = "anything"
expr = "ok"
warning = {{ when = "> 5" }}
"#,
        metrics = target.url("/metrics"),
    ));
    let check = d.wait_for("a failed scrape", || {
        let c = d.check("app");
        (c["runs"].as_u64().unwrap_or(0) >= 1).then_some(c)
    });
    let error = &check["last_error"];
    assert_eq!(error["kind"], "bad_body", "{check:#}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("line 2"), "{message}");
    // Nothing of the broken body was stored: the expression over it has no data.
    let rule = d.wait_for("the expr rule evaluated", || {
        d.status()["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "anything" && r["samples"].as_u64().unwrap_or(0) > 0)
            .cloned()
    });
    assert_eq!(rule["state"], "unknown", "no data is not ok: {rule}");
    assert!(rule["value"].is_null(), "{rule}");
}

/// `GET /api/v1/query[_range]`: what warden stored, in the Prometheus HTTP API's format.
#[test]
fn the_query_api_answers_over_the_stored_samples() {
    let target = HttpServer::start(|_| {
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body("# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 7\nqueue_depth{queue=\"b\"} 3\n")
    });
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "deep"
expr = "queue_depth > 5"
warning = {{ when = "> 5" }}
"#,
        metrics = target.url("/metrics"),
    ));
    let get = |path: &str| {
        let (code, _, body) = crate::daemon::get(&d.url(path)).expect("GET");
        (
            code,
            serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        )
    };
    let body = d.wait_for("a stored sample", || {
        let (code, body) = get("/api/v1/query?query=sum%28queue_depth%29");
        (code == 200
            && body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty()))
        .then_some(body)
    });
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["resultType"], "vector");
    assert_eq!(body["data"]["result"][0]["value"][1], "10");
    // The check's own values are series too.
    let (_, up) = get("/api/v1/query?query=up%7Bcheck%3D%22app%22%7D");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let (code, range) = get("/api/v1/query_range?query=queue_depth&start=0&end=0&step=15");
    assert_eq!(code, 200, "{range}");
    assert_eq!(range["data"]["resultType"], "matrix");
    let (code, bad) = get("/api/v1/query?query=sum%28");
    assert_eq!(code, 400);
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["errorType"], "bad_data");
}

/// `warden query`: a round of scrapes, then the expression over what they read.
#[test]
fn warden_query_prints_an_expression_over_one_round_of_scrapes() {
    let target = HttpServer::start(|_| {
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body("queue_depth{queue=\"a\"} 7\nqueue_depth{queue=\"b\"} 3\n")
    });
    let (_dir, config) = crate::daemon::write_config(&format!(
        r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
"#,
        metrics = target.url("/metrics"),
    ));
    let run = |args: &[&str]| {
        std::process::Command::new(crate::daemon::WARDEN)
            .args(["query", "-c"])
            .arg(&config)
            .args(args)
            .output()
            .expect("warden query runs")
    };
    let out = run(&["sum(queue_depth)"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "{} 10\n");
    // job and instance are attached to every scraped sample.
    let out = run(&["queue_depth > 5"]);
    let port = target.port();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("queue_depth{{instance=\"127.0.0.1:{port}\", job=\"app\", queue=\"a\"}} 7\n")
    );
    let out = run(&["--format", "json", "up{check=\"app\"}"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["resultType"], "vector");
    assert_eq!(json["result"][0]["value"][1], "1");
    let out = run(&["predict_linear(queue_depth[5m], 60)"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("predict_linear"),
        "{out:?}"
    );
}

/// `bearer_token_file`: the token goes as `Authorization: Bearer ...` and never shows in the
/// status; `retention` keeps the store on (and the query API answering) without any `expr`.
#[test]
fn a_scrape_authenticates_with_a_bearer_token_file_and_keeps_what_retention_asks() {
    let target = HttpServer::start(|req| {
        if req.header("authorization") == Some("Bearer s3cr3t-t0ken") {
            Reply::status(200)
                .header("content-type", "text/plain; version=0.0.4")
                .body("queue_depth 4\n")
        } else {
            Reply::status(401)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cr3t-t0ken\n").unwrap();
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "200ms"
timeout = "150ms"
bearer_token_file = "{token}"
retention = "2h"
"#,
        metrics = target.url("/metrics"),
        token = token.display(),
    ));
    let app = d.wait_for("an authenticated scrape", || {
        let c = d.check("app");
        (c["values"]["up"] == 1.0).then_some(c)
    });
    assert_eq!(app["values"]["samples"], 1.0, "{app}");
    let (_, _, status) = crate::daemon::get(&d.url("/api/v1/status")).unwrap();
    assert!(
        !status.contains("s3cr3t"),
        "the token leaked into the status"
    );
    let (code, _, body) =
        crate::daemon::get(&d.url("/api/v1/query?query=queue_depth")).expect("GET");
    assert_eq!(code, 200);
    assert!(
        body.contains("\"4\""),
        "stored without any expr rule: {body}"
    );
}

/// An expression giving more series than a rule may hold (1,000) is an evaluation error the
/// status shows, its rule at `on_error`; aggregated, the same data is fine.
#[test]
fn an_expression_giving_too_many_series_is_refused_and_says_why() {
    let mut body = String::new();
    for i in 0..1500 {
        body.push_str(&format!("wide{{i=\"{i}\"}} 1\n"));
    }
    let target = HttpServer::start(move |_| {
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(body.clone())
    });
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "every-one"
expr = "wide"
critical = {{ when = "> 5" }}

[[rule]]
name = "all-of-them"
expr = "sum(wide)"
critical = {{ when = "> 5000" }}
"#,
        metrics = target.url("/metrics"),
    ));
    let rules = d.wait_for("both rules evaluated", || {
        let rules = d.status()["rules"].as_array().unwrap().clone();
        let error = rules
            .iter()
            .find(|r| r["name"] == "every-one" && r["error"].is_string());
        let sum = rules
            .iter()
            .find(|r| r["name"] == "all-of-them" && r["state"] == "ok");
        (error.is_some() && sum.is_some()).then_some(rules)
    });
    let wide = rules.iter().find(|r| r["name"] == "every-one").unwrap();
    assert_eq!(wide["state"], "unknown", "{wide}");
    let error = wide["error"].as_str().unwrap();
    assert!(error.contains("1500 series, more than 1000"), "{error}");
    assert_eq!(
        rules.iter().filter(|r| r["name"] == "every-one").count(),
        1,
        "no state per series was made"
    );
    let sum = rules.iter().find(|r| r["name"] == "all-of-them").unwrap();
    assert_eq!(sum["value"], 1500.0);
}
