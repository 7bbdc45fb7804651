//! What a newcomer meets in the first hour (issue 11): `once` on the default config, `watch`,
//! two configs side by side, the install layout, and logs that say what failed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::{warden, Daemon, WARDEN};
use crate::harness::free_port;
use crate::target::HttpTarget;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `warden ARGS` with `env` added, to completion (bounded by 60 s).
fn warden_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(WARDEN)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn warden");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("warden {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The default config's host thresholds moved out of reach: this test is about what `once`
/// says of warden itself, not about how busy the shared CI machine is.
const CALM_HOST: [(&str, &str); 6] = [
    ("WARDEN_CPU_WARNING", "2"),
    ("WARDEN_CPU_CRITICAL", "2"),
    ("WARDEN_MEMORY_WARNING", "2"),
    ("WARDEN_MEMORY_CRITICAL", "2"),
    ("WARDEN_DISK_WARNING", "2"),
    ("WARDEN_DISK_CRITICAL", "2"),
];

#[test]
fn once_on_the_default_config_skips_warden_itself_and_reports_the_host() {
    let config = root().join("config/warden.toml");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut env = CALM_HOST.to_vec();
    env.push(("WARDEN_LISTEN", &listen));
    let out = warden_env(
        &["once", "-c", config.to_str().unwrap(), "--format", "json"],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a healthy host reads ok:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(status["state"], "ok");
    assert_eq!(
        status["skipped"],
        json!([{
            "check": "warden-self",
            "rules": ["warden-self-down", "warden-self-slow"],
            "reason": format!("probes warden's own listener {listen}, which only `warden run` serves"),
        }])
    );
    let rules: Vec<&str> = status["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["host-cpu", "host-memory", "host-disk"]);
    for rule in status["rules"].as_array().unwrap() {
        assert_eq!(rule["state"], "ok", "{rule:#}");
        assert!(rule["value"].as_f64().is_some(), "{rule:#}");
    }

    // The table says the same, in words, with values a person can read.
    let out = warden_env(&["once", "-c", config.to_str().unwrap()], &env);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    let skipped = table
        .lines()
        .find(|l| l.starts_with("warden-self "))
        .unwrap_or_else(|| panic!("no warden-self line:\n{table}"));
    assert!(
        skipped.contains("skipped") && skipped.contains("only `warden run` serves"),
        "{table}"
    );
    for line in table.lines().filter(|l| l.starts_with("host-")) {
        let value = line.split_whitespace().nth(2).unwrap();
        assert!(value.len() <= 7, "value not rounded for people: {line}");
    }
}

#[test]
fn once_names_on_error_when_it_set_the_level() {
    let (_dir, path) = crate::daemon::write_config(
        r#"[[check]]
name = "gone"
kind = "tcp"
address = "127.0.0.1:1"
timeout = "1s"

[[rule]]
name = "gone-down"
check = "gone"
value = "duration_seconds"
on_error = "critical"
warning = { when = "> 1" }
"#,
    );
    let out = warden(&["once", "-c", path.to_str().unwrap()]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{table}");
    let line = table.lines().find(|l| l.starts_with("gone-down")).unwrap();
    assert!(
        line.contains("critical by on_error: the probe failed (connect: "),
        "{table}"
    );
}

/// An upgrade from a release whose default state file was `warden.db` for every config: a
/// config named otherwise must not start on an empty store while that file, unheld, may hold
/// its incidents; it says how to go on. Naming its file explicitly starts it.
#[test]
fn an_unclaimed_state_file_of_an_earlier_release_stops_a_fresh_start() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("warden.db"), b"").unwrap();
    let shared = state.path().to_str().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let nuvie = root().join("config/examples/nuvie.toml");
    let out = warden_env(
        &["run", "-c", nuvie.to_str().unwrap()],
        &[("STATE_DIRECTORY", shared), ("WARDEN_LISTEN", &listen)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nuvie.db does not exist, but")
            && stderr.contains("warden.db does: earlier releases kept every config's state"),
        "{stderr}"
    );
    assert!(
        !state.path().join("nuvie.db").exists(),
        "no empty store was created"
    );

    let own = state.path().join("nuvie.db");
    let d = Daemon::start_file(
        &nuvie,
        &[
            ("STATE_DIRECTORY", shared),
            ("NUVIE_STATE_PATH", own.to_str().unwrap()),
            // Loopback only: every target of the example on a closed local port.
            ("NUVIE_API_URL", "http://127.0.0.1:9/health"),
            ("NUVIE_AI_URL", "http://127.0.0.1:9/health"),
            ("NUVIE_METRICS_URL", "http://127.0.0.1:9/metrics"),
            ("NUVIE_API_TLS_ADDRESS", "127.0.0.1:9"),
            ("NUVIE_AI_TLS_ADDRESS", "127.0.0.1:9"),
            ("NUVIE_DATABASE_URL", "postgres://nuvie@127.0.0.1:9/nuvie"),
            ("NUVIE_REDIS_URL", "redis://127.0.0.1:9"),
            ("NUVIE_PAGERDUTY_URL", "http://127.0.0.1:9/enqueue"),
            ("NUVIE_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/slack"),
        ],
    );
    let (code, _, _) = crate::daemon::get(&d.url("/healthz")).unwrap();
    assert_eq!(code, 200);
    assert!(own.exists());
}

/// A `retry_interval` that cannot re-check (no rule on `up` wants more than one failure) is
/// valid but said to be useless; one that can is not mentioned.
#[test]
fn a_retry_interval_without_effect_is_warned_about() {
    let (_dir, path) = crate::daemon::write_config(
        r#"[[check]]
name = "useless"
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "1s"
retry_interval = "2s"

[[rule]]
name = "useless-down"
check = "useless"
critical = { when = "< 1" }

[[check]]
name = "useful"
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "1s"
retry_interval = "2s"

[[rule]]
name = "useful-down"
check = "useful"
critical = { when = "< 1", count = 3 }
"#,
    );
    let out = warden(&["check-config", "-c", path.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: check \"useless\": retry_interval has no effect"),
        "{stderr}"
    );
}

#[test]
fn two_configs_run_side_by_side_with_their_own_state() {
    let state = tempfile::tempdir().unwrap();
    let shared = state.path().to_str().unwrap();
    let mut env = CALM_HOST.to_vec();
    env.push(("STATE_DIRECTORY", shared));
    let default = Daemon::start_file(&root().join("config/warden.toml"), &env);
    let nuvie = Daemon::start_file(&root().join("config/examples/nuvie.toml"), &env);
    for d in [&default, &nuvie] {
        let (code, _, _) = crate::daemon::get(&d.url("/healthz")).unwrap();
        assert_eq!(code, 200, "{}", d.log());
    }
    assert!(state.path().join("warden.db").exists());
    assert!(state.path().join("nuvie.db").exists());
}

/// `warden watch URL`, its stdout lines delivered through a channel.
struct Watch {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(args: &[&str]) -> Watch {
        let mut child = Command::new(WARDEN)
            .arg("watch")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn warden watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next line, within `within`.
    fn next(&self, within: Duration) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no line from warden watch within {within:?}: {e}"))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_each_state_change_and_nothing_else() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let url = target.url("/health");
    let mut w = Watch::start(&[&url, "--interval", "200ms"]);
    let first = w.next(Duration::from_secs(10));
    assert!(first.ends_with("127.0.0.1  unknown -> ok"), "{first}");

    // Down: one line with the reason, however many probes fail.
    target.set_json("/health", 503, json!({"status": "down"}));
    let down = w.next(Duration::from_secs(10));
    assert!(
        down.contains("127.0.0.1  ok -> critical  (protocol: ") && down.contains("503"),
        "{down}"
    );
    let hits = target.hits("/health");
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.hits("/health") < hits + 3 {
        assert!(Instant::now() < deadline, "watch stopped probing");
        std::thread::sleep(Duration::from_millis(50));
    }
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let up = w.next(Duration::from_secs(10));
    assert!(up.ends_with("127.0.0.1  critical -> ok"), "{up}");
    // Several healthy probes later, still nothing new: one line per change, not per probe.
    let hits = target.hits("/health");
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.hits("/health") < hits + 3 {
        assert!(Instant::now() < deadline, "watch stopped probing");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        w.lines.recv_timeout(Duration::from_millis(300)).is_err(),
        "only state changes are printed"
    );

    // Ctrl-C (SIGINT) stops it cleanly.
    assert!(crate::harness::process::signal(w.child.id(), "INT"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = w.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "watch did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

#[test]
fn watch_print_config_is_the_config_file_to_start_from() {
    let out = warden(&[
        "watch",
        "https://my-app.example/health",
        "--interval",
        "30s",
        "--print-config",
    ]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my-app.toml");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = warden(&["check-config", "-c", path.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{said}");
    assert!(said.contains("ok (1 checks, 1 rules"), "{said}");

    let bad = warden(&["watch", "my-app/health"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("invalid URL \"my-app/health\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_failing_check_is_logged_once_per_change_in_plain_text() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "flaky"
kind = "http"
url = "{}"
interval = "200ms"
timeout = "190ms"
"#,
        target.url("/health")
    ));
    let runs = |d: &Daemon| d.check("flaky")["runs"].as_u64().unwrap_or(0);
    let wait_runs = |d: &Daemon, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while runs(d) < n {
            assert!(Instant::now() < deadline, "{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_runs(&d, 2);
    target.set_json("/health", 503, json!({"status": "down"}));
    let failing_from = runs(&d);
    wait_runs(&d, failing_from + 6);
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("check recovered") {
        assert!(Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = d.log();
    // (A probe slow enough to time out on a loaded machine is a change of its own: only the
    // 503s are counted.)
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("check failed") && l.contains("flaky") && l.contains("protocol"))
        .collect();
    assert_eq!(failed.len(), 1, "one line per change, not per run:\n{log}");
    assert!(
        failed[0].contains("WARN") && failed[0].contains("protocol") && failed[0].contains("503"),
        "the reason is in the line: {}",
        failed[0]
    );
    // The log goes to a file here: no colour codes in it.
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log:?}"
    );
}

/// Runs `scripts/install.sh --destdir DEST` with the binary under test; it must succeed.
fn install_into(dest: &Path) {
    let out = Command::new("bash")
        .arg(root().join("scripts/install.sh"))
        .args(["--destdir", dest.to_str().unwrap(), "--binary", WARDEN])
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/install.sh");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_installed_layout_loads_as_installed() {
    let dest = tempfile::tempdir().unwrap();
    install_into(dest.path());
    let etc: PathBuf = dest.path().join("etc/warden");
    // The default config with its local-services include switched on, as README suggests.
    let config = etc.join("warden.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let enabled = text.replace(
        "# include = [\"alerts/local-services.toml\"]",
        "include = [\"alerts/local-services.toml\"]",
    );
    assert_ne!(text, enabled, "the default config offers the include");
    std::fs::write(&config, enabled).unwrap();
    for file in [
        config,
        etc.join("examples/nuvie.toml"),
        etc.join("examples/redcube.toml"),
    ] {
        let out = warden(&["check-config", "-c", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Installing again keeps what was edited (the config above), the shipped copy beside it.
    install_into(dest.path());
    assert!(std::fs::read_to_string(etc.join("warden.toml"))
        .unwrap()
        .contains("\ninclude = [\"alerts/local-services.toml\"]"));
    assert!(etc.join("warden.toml.new").exists());
    assert!(
        !etc.join("alerts/nuvie.toml.new").exists(),
        "unchanged files are not doubled"
    );
    let unit =
        std::fs::read_to_string(dest.path().join("etc/systemd/system/warden.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/warden run -c /etc/warden/warden.toml"));
    assert!(dest.path().join("usr/local/bin/warden").exists());
}
