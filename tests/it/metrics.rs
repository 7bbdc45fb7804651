//! warden's own /metrics: content type, names, values, and promtool's verdict.

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::daemon::Daemon;
use crate::metrics_matcher::{metric, parse};
use crate::target::HttpTarget;

#[test]
fn metrics_are_valid_and_carry_checks_rules_and_thresholds() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "api"
kind = "http"
url = "{}"
interval = "200ms"
timeout = "150ms"

[[check]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:1"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-latency"
check = "api"
value = "duration_seconds"
warning = {{ when = "> 0.5" }}
critical = {{ when = "> 2" }}

[[rule]]
name = "closed-port-down"
check = "closed-port"
critical = {{ when = "< 1", count = 2 }}

# A value the target never sends: the series must stay absent, not read 0.
[[check]]
name = "api-queue"
kind = "http"
url = "{}"
interval = "200ms"
timeout = "150ms"
extract = {{ queue_depth = "queue.depth" }}

[[rule]]
name = "queue-deep"
check = "api-queue"
value = "queue_depth"
on_missing = "unknown"
warning = {{ when = "> 100" }}
"#,
        target.url("/health"),
        target.url("/health")
    ));
    d.wait_rule_state("closed-port-down", "critical", Duration::from_secs(10));
    d.wait_rule_state("api-latency", "ok", Duration::from_secs(10));
    // Two runs of the check whose value never comes, so the rule has evaluated it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.check("api-queue")["runs"].as_u64().unwrap_or(0) < 2 {
        assert!(std::time::Instant::now() < deadline, "{:#}", d.status());
        std::thread::sleep(Duration::from_millis(50));
    }

    let (content_type, text) = d.metrics();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let samples = parse(&text);
    assert_eq!(
        metric(&samples, "warden_check_up")
            .label("check", "api")
            .value(),
        1.0
    );
    assert_eq!(
        metric(&samples, "warden_check_up")
            .label("check", "closed-port")
            .label("kind", "tcp")
            .value(),
        0.0
    );
    assert_eq!(
        metric(&samples, "warden_rule_state")
            .label("rule", "closed-port-down")
            .label("state", "critical")
            .value(),
        1.0
    );
    assert_eq!(
        metric(&samples, "warden_rule_state")
            .label("rule", "closed-port-down")
            .label("state", "ok")
            .value(),
        0.0
    );
    assert_eq!(
        metric(&samples, "warden_rule_threshold")
            .label("rule", "api-latency")
            .label("level", "warning")
            .value(),
        0.5
    );
    assert_eq!(
        metric(&samples, "warden_rule_threshold")
            .label("rule", "api-latency")
            .label("level", "critical")
            .value(),
        2.0
    );
    assert!(
        metric(&samples, "warden_rule_value")
            .label("rule", "api-latency")
            .value()
            < 0.5
    );
    assert_eq!(
        metric(&samples, "warden_rule_value")
            .label("rule", "queue-deep")
            .count(),
        0,
        "warden_rule_value must stay absent for a value never seen"
    );
    assert!(
        metric(&samples, "warden_check_runs_total")
            .label("check", "closed-port")
            .label("result", "connect")
            .value()
            >= 2.0
    );
    assert!(
        metric(&samples, "warden_check_duration_seconds_count")
            .label("kind", "http")
            .value()
            >= 1.0
    );
    // Per check, the last duration is a gauge; the histogram is per kind only (cardinality).
    assert!(
        metric(&samples, "warden_check_last_duration_seconds")
            .label("check", "api")
            .value()
            > 0.0
    );
    assert_eq!(
        metric(&samples, "warden_check_duration_seconds_count")
            .label("check", "api")
            .count(),
        0
    );
    assert!(metric(&samples, "warden_scheduler_lateness_seconds_count").value() >= 2.0);
    assert_eq!(metric(&samples, "warden_build_info").count(), 1);
    assert!(
        metric(
            &samples,
            "warden_last_successful_evaluation_timestamp_seconds"
        )
        .value()
            > 1.7e9
    );

    // promtool is the reference linter; the test command installs it (Debian's prometheus).
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool must be installed (scripts/install-test-deps.sh installs it)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn health_endpoints_and_status_answer() {
    let d = Daemon::start(
        r#"
[[check]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:1"
interval = "1s"
timeout = "100ms"
"#,
    );
    // Wait until the watched target is seen down: warden itself must stay healthy and ready.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while d.check("closed-port")["state"] != "down" {
        assert!(std::time::Instant::now() < deadline, "{:#}", d.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    for path in ["/healthz", "/-/healthy", "/readyz", "/-/ready"] {
        let (code, _, _) = crate::daemon::get(&d.url(path)).unwrap();
        assert_eq!(code, 200, "{path}");
    }
    let (code, _, body) = crate::daemon::get(&d.url("/metrics")).unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains(r#"warden_check_up{check="closed-port",kind="tcp"} 0"#),
        "{body}"
    );
    let (code, _, body) = crate::daemon::get(&d.url("/nope")).unwrap();
    assert_eq!(code, 404, "{body}");
}

/// `/metrics` is streamed: at a few thousand checks it arrives in chunks, complete and valid,
/// and a reader that stops half-way does not stop warden from answering the next one.
#[test]
fn metrics_at_thousands_of_checks_are_streamed_complete() {
    use std::io::{Read, Write};
    const CHECKS: usize = 3000;
    let mut config = String::new();
    for i in 0..CHECKS {
        // Run rarely: the series exist from the start, the probes are not the point.
        config.push_str(&format!(
            "[[check]]\nname = \"c{i:04}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"1h\"\n\n[[rule]]\nname = \"r{i:04}\"\ncheck = \"c{i:04}\"\ncritical = {{ when = \"< 1\" }}\n\n"
        ));
    }
    let d = Daemon::start(&config);
    // A reader that asks and reads one piece, then goes away.
    let mut gone = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    gone.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    gone.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = gone.read(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("transfer-encoding: chunked"),
        "streamed, not one body: {head}"
    );
    drop(gone);
    // The next reader gets all of it.
    let (code, ct, body) = crate::daemon::get(&d.url("/metrics")).unwrap();
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let samples = parse(&body);
    for i in [0, CHECKS / 2, CHECKS - 1] {
        let check = format!("c{i:04}");
        let rule = format!("r{i:04}");
        let up = metric(&samples, "warden_check_up")
            .label("check", &check)
            .label("kind", "tcp");
        assert_eq!(up.count(), 1, "warden_check_up of {check}");
        let threshold = metric(&samples, "warden_rule_threshold")
            .label("rule", &rule)
            .label("level", "critical")
            .value();
        assert_eq!(threshold, 1.0);
    }
    let ups = body
        .lines()
        .filter(|l| l.starts_with("warden_check_up{"))
        .count();
    assert_eq!(ups, CHECKS, "every check once");
    assert!(
        body.len() > 4 * 64 * 1024,
        "several chunks: {} bytes",
        body.len()
    );
}
