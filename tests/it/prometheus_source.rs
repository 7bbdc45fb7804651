//! `kind = "prometheus"` against a real Prometheus: an instant query's series get a rule state
//! each, a scalar answer is one series, a query the server refuses leaves its rule unknown with
//! Prometheus' own parse error on the check, a range vector is refused, and a stopped server
//! makes every series unknown with a `connect` error. Against an in-process server: what the
//! request carries (headers, the encoded query, the server's timeout, a path prefix) and a
//! server that never answers.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::daemon::Daemon;
use crate::harness::http::{HttpServer, Reply};
use crate::harness::prometheus::Prometheus;

/// `queue_depth{queue="a"}` 7 and `{queue="b"}` 1, a sample every 30 s for the last five
/// minutes, the last 20 s ago: well inside an instant query's 5-minute lookback for the
/// whole test.
fn queue_depths() -> String {
    // The real wall clock: Prometheus evaluates "now" by it.
    #[allow(clippy::disallowed_methods)]
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut out = String::from("# TYPE queue_depth gauge\n");
    for (queue, depth) in [("a", 7), ("b", 1)] {
        for ago in (20..=300).rev().step_by(30) {
            out.push_str(&format!(
                "queue_depth{{queue=\"{queue}\"}} {depth} {}\n",
                now_s - ago
            ));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The status entries of rule `name`, polled until `done` holds for them (30 s at most).
fn wait_entries(
    d: &Daemon,
    name: &str,
    what: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries: Vec<serde_json::Value> = d.status()["rules"]
            .as_array()
            .expect("rules is an array")
            .iter()
            .filter(|r| r["name"] == name)
            .cloned()
            .collect();
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "rule {name}: no {what} within 30 s; entries: {entries:#?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn state_of<'a>(entries: &'a [serde_json::Value], queue: &str) -> Option<&'a str> {
    entries
        .iter()
        .find(|e| e["series"]["queue"] == queue)
        .and_then(|e| e["state"].as_str())
}

#[test]
fn a_query_s_series_get_a_state_each_and_a_failed_query_is_unknown_with_the_server_s_error() {
    let prometheus = Prometheus::start_with_openmetrics(&queue_depths());
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "queues"
kind = "prometheus"
url = "{url}"
expr = "queue_depth"
headers = {{ Authorization = "Bearer not-checked-by-prometheus" }}
interval = "500ms"
timeout = "400ms"

[[check]]
name = "total"
kind = "prometheus"
url = "{url}/"
expr = "scalar(sum(queue_depth))"
interval = "500ms"
timeout = "400ms"

[[check]]
name = "broken"
kind = "prometheus"
url = "{url}"
expr = "sum("
interval = "500ms"
timeout = "400ms"

[[check]]
name = "range"
kind = "prometheus"
url = "{url}"
expr = "queue_depth[1m]"
interval = "500ms"
timeout = "400ms"

[[rule]]
name = "queue-deep"
check = "queues"
value = "result"
critical = {{ when = "> 5" }}

[[rule]]
name = "backlog"
check = "total"
value = "result"
warning = {{ when = "> 5" }}

[[rule]]
name = "broken-deep"
check = "broken"
value = "result"
critical = {{ when = "> 5" }}
"#,
        url = prometheus.url(),
    ));

    // One state per series of the answer, its labels without __name__.
    let entries = wait_entries(&d, "queue-deep", "states for both queues", |es| {
        state_of(es, "a").is_some() && state_of(es, "b").is_some()
    });
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let a = entries
        .iter()
        .find(|e| e["series"]["queue"] == "a")
        .unwrap();
    assert_eq!(a["series"], serde_json::json!({"queue": "a"}), "{a}");
    assert_eq!(a["state"], "critical", "{a}");
    assert_eq!(a["value"], 7.0, "{a}");
    let b = entries
        .iter()
        .find(|e| e["series"]["queue"] == "b")
        .unwrap();
    assert_eq!(b["state"], "ok", "{b}");
    assert_eq!(b["value"], 1.0, "{b}");
    let queues = d.check("queues");
    assert_eq!(queues["state"], "up", "{queues}");
    assert_eq!(queues["values"]["result_series"], 2.0, "{queues}");

    // A scalar answer is one series without labels.
    let backlog = wait_entries(&d, "backlog", "a value", |es| {
        es.len() == 1 && es[0]["value"].is_number()
    });
    assert_eq!(backlog[0]["series"], serde_json::json!({}), "{backlog:#?}");
    assert_eq!(backlog[0]["value"], 8.0, "{backlog:#?}");
    assert_eq!(backlog[0]["state"], "warning", "{backlog:#?}");

    // A query Prometheus refuses: the check is down with Prometheus' own parse error, and
    // its rule is unknown, never ok.
    let broken = wait_entries(&d, "broken-deep", "a probe", |_| {
        d.check("broken")["runs"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(broken.len(), 1, "{broken:#?}");
    assert_eq!(broken[0]["state"], "unknown", "{broken:#?}");
    let check = d.check("broken");
    assert_eq!(check["state"], "down", "{check}");
    assert_eq!(check["last_error"]["kind"], "protocol", "{check}");
    let message = check["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("status 400: bad_data: ") && message.contains("parse error"),
        "Prometheus' error text: {message}"
    );

    // A range vector is no instant answer: refused, saying what the expression must give.
    let range = wait_entries(&d, "range", "a probe", |_| {
        d.check("range")["runs"].as_u64().unwrap_or(0) > 0
    });
    assert!(range.is_empty(), "no rule reads it: {range:#?}");
    let check = d.check("range");
    assert_eq!(check["last_error"]["kind"], "protocol", "{check}");
    let message = check["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("range vector (matrix); it must give an instant vector or a scalar"),
        "{message}"
    );

    // The server stops: every series of the query is unknown, the check down on `connect`.
    drop(prometheus);
    let entries = wait_entries(&d, "queue-deep", "unknown for both queues", |es| {
        state_of(es, "a") == Some("unknown") && state_of(es, "b") == Some("unknown")
    });
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let queues = d.check("queues");
    assert_eq!(queues["state"], "down", "{queues}");
    assert_eq!(queues["last_error"]["kind"], "connect", "{queues}");
    let message = queues["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("/api/v1/query"), "{message}");
    assert!(
        !message.contains("not-checked-by-prometheus"),
        "no header value in errors: {message}"
    );
}

#[test]
fn the_request_carries_headers_the_encoded_query_and_the_timeout_and_a_silent_server_times_out() {
    let server = HttpServer::start(|_| {
        Reply::status(200)
            .header("content-type", "application/json")
            .body(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"api"},"value":[1700000000,"1"]}]}}"#)
    });
    let silent = HttpServer::start(|_| Reply::hang());
    let d = Daemon::start_with(
        &format!(
            r#"
[[check]]
name = "api"
kind = "prometheus"
url = "{prefixed}"
expr = 'sum by (job) (up{{job="api"}}) > 0'
headers = {{ Authorization = "Bearer ${{PROM_TOKEN}}", X-Scope-OrgID = "team-a" }}
interval = "500ms"
timeout = "400ms"

[[check]]
name = "silent"
kind = "prometheus"
url = "{silent}"
expr = "up"
interval = "500ms"
timeout = "300ms"
"#,
            prefixed = server.url("/prom/"),
            silent = silent.url(""),
        ),
        &[("PROM_TOKEN", "pr0m-s3cret-token")],
        &[],
    );

    let requests = server.wait_for(1, Duration::from_secs(20));
    let request = requests.first().expect("a query arrived");
    assert_eq!(request.method, "GET");
    assert_eq!(request.path(), "/prom/api/v1/query", "{request:?}");
    assert_eq!(
        request.header("authorization"),
        Some("Bearer pr0m-s3cret-token")
    );
    assert_eq!(request.header("x-scope-orgid"), Some("team-a"));
    // The expression form-encoded, the check's timeout the server's own.
    assert_eq!(
        request.target.split_once('?').map(|(_, q)| q),
        Some("query=sum+by+%28job%29+%28up%7Bjob%3D%22api%22%7D%29+%3E+0&timeout=400ms"),
        "{request:?}"
    );
    let wait_check = |name: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = d.check(name);
            if done(&c) {
                return c;
            }
            assert!(Instant::now() < deadline, "{c:#}\nlog:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let api = wait_check("api", &|c| c["state"] == "up");
    assert_eq!(api["values"]["result_series"], 1.0, "{api}");

    let silent = wait_check("silent", &|c| c["state"] == "down");
    assert_eq!(silent["last_error"]["kind"], "timeout", "{silent}");

    let status = serde_json::to_string(&d.status()).unwrap();
    assert!(!status.contains("pr0m-s3cret-token"), "{status}");
}
