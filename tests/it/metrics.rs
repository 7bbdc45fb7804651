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

/// A field of `/proc/<pid>/status`, its first number (`VmRSS:  1234 kB` gives 1234).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// utime + stime of `/proc/<pid>/stat`, in seconds.
fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[0] + fields[1]) as f64 / rustix::param::clock_ticks_per_second() as f64
}

fn proc_open_fds(pid: u32) -> f64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as f64
}

/// The soft and hard `Max open files` of `/proc/<pid>/limits`.
fn proc_nofile(pid: u32) -> (f64, f64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .unwrap_or_else(|| panic!("no Max open files in {limits}"));
    let mut words = line.split_whitespace().map(|w| w.parse::<f64>().unwrap());
    (words.next().unwrap(), words.next().unwrap())
}

#[test]
fn process_metrics_agree_with_proc_and_the_descriptor_limit_is_raised() {
    let clock = warden::clock::Clock::system();
    let started = clock.now().as_secs_f64();
    // A soft limit far below the hard one, as a service manager's default leaves it.
    let d = Daemon::start_with_soft_nofile(
        r#"
[[check]]
name = "closed-port"
kind = "tcp"
address = "127.0.0.1:1"
interval = "1s"
timeout = "500ms"
"#,
        256,
    );
    let ready = clock.now().as_secs_f64();
    let pid = d.child.id();

    // Raised at start to the hard limit, and said so.
    let (soft, hard) = proc_nofile(pid);
    assert_eq!(
        soft, hard,
        "soft RLIMIT_NOFILE not raised to the hard limit"
    );
    assert!(
        d.log()
            .contains("raised the soft open file descriptor limit to the hard limit"),
        "{}",
        d.log()
    );

    // /proc before and after one scrape: the daemon's own figures fall between them.
    let rss_before = proc_status(pid, "VmRSS:") as f64 * 1024.0;
    let cpu_before = proc_cpu_seconds(pid);
    let fds_before = proc_open_fds(pid);
    let (_, text) = d.metrics();
    let rss_after = proc_status(pid, "VmRSS:") as f64 * 1024.0;
    let cpu_after = proc_cpu_seconds(pid);
    let fds_after = proc_open_fds(pid);
    let samples = parse(&text);
    let value = |name: &str| {
        let m = metric(&samples, name);
        assert_eq!(m.count(), 1, "{name} once, without labels:\n{text}");
        m.value()
    };

    let rss = value("process_resident_memory_bytes");
    let (low, high) = (rss_before.min(rss_after), rss_before.max(rss_after));
    assert!(
        rss >= low * 0.9 - 2e6 && rss <= high * 1.1 + 2e6,
        "process_resident_memory_bytes {rss} against VmRSS {rss_before}..{rss_after}"
    );
    assert!(value("process_virtual_memory_bytes") >= rss);

    // The kernel's tick is the resolution of both.
    let cpu = value("process_cpu_seconds_total");
    assert!(
        cpu >= cpu_before - 0.011 && cpu <= cpu_after + 0.011,
        "process_cpu_seconds_total {cpu} against /proc {cpu_before}..{cpu_after}"
    );

    // The scrape's own connection and the daemon's look at its fd directory are counted
    // inside, not outside; a probe's socket may come and go between.
    let fds = value("process_open_fds");
    assert!(
        fds >= fds_before.min(fds_after) - 3.0 && fds <= fds_before.max(fds_after) + 5.0,
        "process_open_fds {fds} against /proc/{pid}/fd {fds_before}..{fds_after}"
    );
    assert_eq!(value("process_max_fds"), hard);

    // Absolute unix time, from the kernel's start time and boot time (whole seconds).
    let start = value("process_start_time_seconds");
    assert!(
        start >= started - 2.0 && start <= ready + 2.0,
        "process_start_time_seconds {start}, daemon started between {started} and {ready}"
    );

    // The series count is of this very rendering.
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(value("warden_metrics_series"), lines as f64);
}

#[test]
fn a_streamed_status_is_the_status_as_json_in_bounded_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    let mut text = String::new();
    for i in 0..300 {
        text.push_str(&format!(
                "[[check]]\nname = \"c{i}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n\n[[rule]]\nname = \"r{i}\"\ncheck = \"c{i}\"\ncritical = {{ when = \"< 1\" }}\ndescription = \"quote \\\" and newline\\n\"\n\n"
            ));
    }
    std::fs::write(&path, text).unwrap();
    let config = warden::config::load_with_env(&path, &|_| None).unwrap();
    let status = warden::engine::Engine::new(&config, warden::clock::Timestamp(1_700_000_000_000))
        .status(warden::clock::Timestamp(1_700_000_000_000));
    let windows = serde_json::json!([{"id": 1}]);
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    warden::server::write_status(&status, windows.clone(), 4096, &mut |p| {
        pieces.push(p);
        true
    });
    assert!(pieces.len() > 10, "{} pieces", pieces.len());
    assert!(pieces.iter().all(|p| p.len() < 4096 + 2048));
    let streamed: serde_json::Value = serde_json::from_slice(&pieces.concat()).unwrap();
    let mut whole = serde_json::to_value(&status).unwrap();
    whole["windows"] = windows;
    assert_eq!(streamed, whole);
    assert_eq!(streamed["checks"].as_array().unwrap().len(), 300);
    // A reader that goes away: nothing more is rendered.
    let mut sent = 0;
    warden::server::write_status(&status, serde_json::Value::Null, 4096, &mut |_| {
        sent += 1;
        sent < 2
    });
    assert_eq!(sent, 2);
}
