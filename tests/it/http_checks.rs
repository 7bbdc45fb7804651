//! HTTP checks end to end: the real binary against in-process targets.

use std::time::Duration;

use serde_json::json;

use crate::daemon::{warden, write_config, Daemon};
use crate::target::HttpTarget;

fn healthy_body() -> serde_json::Value {
    json!({"status": "healthy", "model_loaded": true, "components": {"database": "healthy", "redis": "healthy"}, "queue": {"depth": 3}})
}

fn once_config(target: &HttpTarget) -> String {
    format!(
        r#"
[[check]]
name = "api"
kind = "http"
url = "{url}"
interval = "1s"
timeout = "500ms"
assert = ['status == "healthy"', 'model_loaded == true', 'components.database == "healthy"']
extract = {{ queue_depth = "queue.depth" }}

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1", count = 4 }}

[[rule]]
name = "api-queue"
check = "api"
value = "queue_depth"
on_error = "unknown"
warning = {{ when = "> 10" }}
critical = {{ when = "> 100" }}
"#,
        url = target.url("/health")
    )
}

fn once_json(config: &str) -> (i32, serde_json::Value) {
    let (_dir, path) = write_config(config);
    let out = warden(&["once", "-c", path.to_str().unwrap(), "--format", "json"]);
    let code = out.status.code().expect("exit code");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "once printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, status)
}

fn rule<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no rule {name}"))
}

#[test]
fn once_exit_codes_follow_nagios() {
    let target = HttpTarget::start();
    let config = once_config(&target);

    target.set_json("/health", 200, healthy_body());
    let (code, status) = once_json(&config);
    assert_eq!(code, 0, "{status:#}");
    assert_eq!(rule(&status, "api-queue")["value"], 3.0);

    let mut busy = healthy_body();
    busy["queue"]["depth"] = json!(42);
    target.set_json("/health", 200, busy);
    let (code, status) = once_json(&config);
    assert_eq!(code, 1, "queue depth 42 is a warning: {status:#}");
    assert_eq!(rule(&status, "api-queue")["state"], "warning");

    // A failing health check is critical right away in `once`, though the daemon would
    // wait for four failures in a row.
    let mut degraded = healthy_body();
    degraded["components"]["database"] = json!("degraded");
    target.set_json("/health", 200, degraded);
    let (code, status) = once_json(&config);
    assert_eq!(code, 2, "{status:#}");
    assert_eq!(rule(&status, "api-down")["state"], "critical");
    let err = status["checks"][0]["last_error"].clone();
    assert_eq!(err["kind"], "assertion");
    let msg = err["message"].as_str().unwrap();
    assert!(
        msg.contains(r#"components.database == "healthy": got "degraded""#),
        "the failure explains itself: {msg}"
    );

    // Only an unknown: the value rule cannot be evaluated and no rule says critical.
    let unknown_only = format!(
        r#"
[[check]]
name = "api"
kind = "http"
url = "{}"
timeout = "500ms"

[[rule]]
name = "api-latency"
check = "api"
value = "duration_seconds"
warning = {{ when = "> 0.5" }}
"#,
        target.url("/nowhere")
    );
    let (code, status) = once_json(&unknown_only);
    assert_eq!(code, 3, "{status:#}");
    assert_eq!(rule(&status, "api-latency")["state"], "unknown");
}

#[test]
fn json_assertions_and_status_codes() {
    let target = HttpTarget::start();
    let config = once_config(&target);
    let cases = [
        (200, healthy_body(), 0, None),
        (503, healthy_body(), 2, Some("protocol")),
        (
            200,
            json!({"status": "healthy", "model_loaded": false, "components": {"database": "healthy"}}),
            2,
            Some("assertion"),
        ),
        (200, json!({"status": "healthy"}), 2, Some("assertion")),
    ];
    for (code, body, expect_exit, expect_kind) in cases {
        target.set_json("/health", code, body.clone());
        let (exit, status) = once_json(&config);
        assert_eq!(exit, expect_exit, "status {code} body {body}: {status:#}");
        let kind = status["checks"][0]["last_error"]["kind"]
            .as_str()
            .map(String::from);
        assert_eq!(kind.as_deref(), expect_kind, "status {code} body {body}");
    }
    target.set(
        "/health",
        crate::target::Reply {
            status: 200,
            body: "<html>oops</html>".into(),
            delay: Duration::ZERO,
        },
    );
    let (exit, status) = once_json(&config);
    assert_eq!(exit, 2);
    assert_eq!(status["checks"][0]["last_error"]["kind"], "bad_body");
}

#[test]
fn slow_target_times_out_and_counts_as_failed() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, healthy_body());
    target.set_delay("/health", Duration::from_secs(3));
    let (exit, status) = once_json(&once_config(&target));
    assert_eq!(exit, 2, "{status:#}");
    assert_eq!(status["checks"][0]["last_error"]["kind"], "timeout");
    let took = status["checks"][0]["duration_seconds"].as_f64().unwrap();
    assert!(
        took < 1.5,
        "the 500ms timeout bounds the probe, took {took}s"
    );
}

#[test]
fn daemon_health_failing_more_than_three_times_is_critical_then_recovers() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, healthy_body());
    let config = once_config(&target)
        .replace("interval = \"1s\"", "interval = \"200ms\"")
        .replace("timeout = \"500ms\"", "timeout = \"200ms\"");
    let d = Daemon::start(&config);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    target.set_json("/health", 500, json!({"status": "unhealthy"}));
    let r = d.wait_rule_state("api-down", "critical", Duration::from_secs(10));
    assert_eq!(r["last_transition"]["reason"], "threshold_crossed");
    assert_eq!(r["value"], 0.0);
    assert!(r["last_transition"]["at"].as_str().is_some(), "{r:#}");
    let c = d.check("api");
    assert_eq!(c["state"], "down");
    assert_eq!(c["last_error"]["kind"], "protocol");
    assert_eq!(c["values"]["status_code"], 500.0);

    target.set_json("/health", 200, healthy_body());
    let r = d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    assert_eq!(r["last_transition"]["reason"], "recovered");
}

#[test]
fn body_larger_than_the_limit_is_a_bad_body() {
    let target = HttpTarget::start();
    target.set_json(
        "/health",
        200,
        json!({"status": "healthy", "padding": "x".repeat(4096)}),
    );
    let config = once_config(&target).replace(
        "timeout = \"500ms\"",
        "timeout = \"500ms\"\nmax_body_bytes = 1024",
    );
    let (exit, status) = once_json(&config);
    assert_eq!(exit, 2, "{status:#}");
    let err = &status["checks"][0]["last_error"];
    assert_eq!(err["kind"], "bad_body");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes (1024)"),
        "{err}"
    );
}

#[test]
fn https_verifies_certificates_by_default() {
    let pki = crate::harness::Pki::new();
    let target = HttpTarget::start_tls(&pki.leaf("localhost", 90 * 86_400));
    target.set_json("/health", 200, healthy_body());
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let config = |extra: &str| {
        format!(
            r#"
[[check]]
name = "api"
kind = "http"
url = "{}"
timeout = "2s"
{extra}
"#,
            target.https_url("/health")
        )
    };
    // Default: verification on, and the test CA is unknown to the system roots.
    let (exit, status) = once_json(&config(""));
    assert_eq!(exit, 2, "{status:#}");
    assert_eq!(
        status["checks"][0]["last_error"]["kind"], "tls",
        "{status:#}"
    );
    // Trusting the CA makes it pass; so does turning verification off explicitly.
    let (exit, status) = once_json(&config(&format!("ca_file = \"{}\"", ca.display())));
    assert_eq!(exit, 0, "{status:#}");
    let (exit, status) = once_json(&config("tls_verify = false"));
    assert_eq!(exit, 0, "{status:#}");
}

/// A field of `/proc/<pid>/status` in kB (`VmHWM:` is the peak resident set).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Issue 12: `max_body_bytes` had no ceiling, and a target with an endless body drove warden
/// to an allocation failure. Now the limit has a ceiling (64 MiB, see the `limits` config
/// fixture) and the body is read chunk by chunk against it, kept only when an assertion or an
/// extracted value needs it: at the ceiling, an endless body fails the probe as `bad_body`,
/// warden stays up, and its memory does not grow by the body.
#[test]
fn an_endless_body_fails_the_probe_at_the_limit_and_warden_stays_up() {
    let target = crate::target::EndlessTarget::start();
    let limit = 64 * 1024 * 1024;
    let mut d = Daemon::start(&format!(
        r#"
[[check]]
name = "endless"
kind = "http"
url = "{url}"
interval = "20s"
timeout = "20s"
max_body_bytes = {limit}

[[rule]]
name = "endless-up"
check = "endless"
critical = {{ when = "< 1" }}
"#,
        url = target.url("/health")
    ));
    let pid = d.child.id();
    let baseline = proc_status_kb(pid, "VmHWM:");
    // Reading 64 MiB takes a debug build about 8 s here: the 20 s timeout leaves room on a
    // slower machine, and the first run comes within one interval.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let check = loop {
        let check = d.check("endless");
        if check["runs"].as_u64().unwrap_or(0) >= 1 {
            break check;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the endless check did not finish a run within 60 s: {check:#}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let error = &check["last_error"];
    assert_eq!(error["kind"], "bad_body", "{check:#}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("body larger than max_body_bytes ({limit})")),
        "{message}"
    );
    assert!(
        target.sent() > limit,
        "the target sent only {} bytes",
        target.sent()
    );
    assert!(d.child.try_wait().unwrap().is_none(), "warden exited");
    let (code, _, _) = crate::daemon::get(&d.url("/healthz")).expect("GET /healthz");
    assert_eq!(code, 200);
    // Nothing asks for the body, so none of it is kept (the old probe held up to the limit).
    let grown_kb = proc_status_kb(pid, "VmHWM:").saturating_sub(baseline);
    assert!(
        grown_kb < 16 * 1024,
        "warden's peak RSS grew by {grown_kb} kB reading a body it does not keep"
    );
}
