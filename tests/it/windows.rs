//! Validation windows through the real daemon: `warden gate` (attached with `--url`, and
//! standalone), `POST /api/v1/windows`, `warden window list|show|abort`, a restart
//! mid-window, and a canary ladder whose weight hook drives an imitation that starts failing
//! at 25 %. Marks are seconds long; the 24-hour timing is the unit tests' (controllable clock).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::daemon::{warden_within, Daemon};
use crate::harness::http::{HttpServer, Reply};
use crate::harness::receiver::Receiver;
use crate::paging::wait;

/// A health endpoint the test switches between 200 and 503.
fn health(up: Arc<AtomicBool>) -> HttpServer {
    HttpServer::start(move |_| {
        if up.load(Ordering::SeqCst) {
            Reply::status(200).body(r#"{"status":"healthy"}"#)
        } else {
            Reply::status(503).body(r#"{"status":"unhealthy"}"#)
        }
    })
}

/// api-health every 200 ms, `api-down` critical when it fails, `ops` (webhook) on the
/// critical route and `chat` (webhook) for the success message, a rollback hook appending
/// its environment to `rollback.log`, and a window `post-deploy` with marks at 2 s and 4 s.
fn config(dir: &Path, target: &str, ops: &str, chat: &str) -> String {
    let log = dir.join("rollback.log");
    let promoted = dir.join("promoted.log");
    format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{ops}"

[[notifier]]
name = "chat"
kind = "webhook"
url = "{chat}"

[[check]]
name = "api"
kind = "http"
url = "{target}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1", count = 3 }}

[[hook]]
name = "rollback"
shell = 'echo "$WARDEN_DEPLOY $WARDEN_VERSION $WARDEN_WINDOW $WARDEN_ALERT" >> {log}'
cooldown = "0s"

[[hook]]
name = "promote"
shell = 'echo "$WARDEN_DEPLOY $WARDEN_VERSION $WARDEN_WINDOW" >> {promoted}'

[[window]]
name = "post-deploy"
hooks = ["rollback"]
on_success = {{ notify = ["chat"], message = "Deploy $version ($deploy) validated", hooks = ["promote"] }}

[[window.mark]]
at = "2s"
require = ["api-down"]

[[window.mark]]
at = "4s"
require = ["api-down"]
"#,
        log = log.display(),
        promoted = promoted.display()
    )
}

/// `warden gate --url` against `d` for `window` and `deploy`, with `extra` arguments.
fn gate_on(d: &Daemon, window: &str, deploy: &str, extra: &[&str]) -> std::process::Output {
    let url = d.url("");
    let config = d.config_path();
    let mut args = vec![
        "gate",
        "-c",
        config.to_str().unwrap(),
        "--url",
        url.trim_end_matches('/'),
        "--window",
        window,
        "--deploy",
        deploy,
    ];
    args.extend_from_slice(extra);
    warden_within(&args, Duration::from_secs(60)).expect("warden gate ends within a minute")
}

fn gate(d: &Daemon, deploy: &str, version: &str) -> std::process::Output {
    gate_on(d, "post-deploy", deploy, &["--version", version])
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_good_deploy_passes_with_its_message_and_a_bad_one_rolls_back_once_and_pages() {
    let up = Arc::new(AtomicBool::new(true));
    let target = health(up.clone());
    let ops = Receiver::start();
    let chat = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&config(
        dir.path(),
        &target.url("/health"),
        &ops.url(),
        &chat.url(),
    ));
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    // The good deploy: both marks pass, the gate exits 0 and the message goes to chat.
    let out = gate(&d, "d-1", "v1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", d.log());
    assert!(
        stdout.contains("started for deploy d-1 (version v1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mark 2s: passed (rule api-down ok 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("mark 4s: passed"), "{stdout}");
    assert!(
        stdout.contains("window run 1 passed: every mark passed"),
        "{stdout}"
    );
    let message = wait(Duration::from_secs(10), "the success message", || {
        chat.accepted()
            .into_iter()
            .find(|b| b["status"] == "notice")
    });
    assert_eq!(message["description"], "Deploy v1 (d-1) validated");
    assert_eq!(message["labels"]["window"], "post-deploy");
    assert!(ops.accepted().is_empty(), "a pass pages nobody");
    // The success hook ran once, with the window's facts, and the timeline says so.
    let promoted = dir.path().join("promoted.log");
    wait(Duration::from_secs(10), "the success hook", || {
        (!lines(&promoted).is_empty()).then_some(())
    });
    assert_eq!(lines(&promoted), vec!["d-1 v1 post-deploy".to_string()]);
    let run = wait(Duration::from_secs(10), "the hook in the timeline", || {
        let (_, _, body) = crate::daemon::get(&d.url("/api/v1/windows/1")).ok()?;
        (body.contains("on_success: promote ran (success")).then_some(body)
    });
    assert!(run.contains("\"state\": \"passed\""), "{run}");

    // The bad deploy: health fails 3 times in a row before the 2 s mark.
    let failing = up.clone();
    let breaker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        failing.store(false, Ordering::SeqCst);
    });
    let out = gate(&d, "d-2", "v2");
    breaker.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", d.log());
    assert!(
        stdout.contains("mark 2s: failed (rule api-down critical 0)"),
        "{stdout}"
    );
    assert!(stdout.contains("hook rollback: success"), "{stdout}");
    // The rollback ran once, for this deploy, with the window's facts.
    let rollback = dir.path().join("rollback.log");
    assert_eq!(
        lines(&rollback),
        vec!["d-2 v2 post-deploy window/post-deploy".to_string()]
    );
    // The page: critical, naming the window, the deploy and why.
    let page = wait(Duration::from_secs(10), "the failure page", || {
        ops.accepted()
            .into_iter()
            .find(|b| b["status"] == "firing" && b["alert"] == "window/post-deploy")
    });
    assert_eq!(page["severity"], "critical");
    assert_eq!(page["labels"]["deploy"], "d-2");
    assert_eq!(page["labels"]["version"], "v2");
    let description = page["description"].as_str().unwrap();
    assert!(
        description
            .starts_with("validation window 2 (post-deploy) failed for deploy d-2: mark 2s:"),
        "{description}"
    );
    // The run keeps its timeline and what its alert did.
    let (code, _, body) = crate::daemon::get(&d.url("/api/v1/windows/2")).unwrap();
    assert_eq!(code, 200);
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(run["state"], "failed");
    assert_eq!(run["marks"][0]["verdict"], "failed");
    assert_eq!(run["marks"][0]["items"][0]["level"], "critical");
    assert_eq!(run["actions"]["hooks"]["rollback"]["outcome"], "success");
    assert_eq!(run["actions"]["pending"], false);
    let (_, metrics) = d.metrics();
    assert!(
        metrics.contains(r#"warden_window_state{state="failed",window="post-deploy"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warden_window_marks_total{result="passed",window="post-deploy"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"warden_window_marks_total{result="failed",window="post-deploy"} 1"#),
        "{metrics}"
    );

    // Health back, the next deploy passes: the failed window's page resolves.
    up.store(true, Ordering::SeqCst);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    let out = gate(&d, "d-3", "v3");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let resolved = wait(Duration::from_secs(10), "the failure's resolve", || {
        ops.accepted()
            .into_iter()
            .find(|b| b["status"] == "resolved" && b["alert"] == "window/post-deploy")
    });
    assert_eq!(resolved["dedup_key"], page["dedup_key"]);
    assert_eq!(lines(&rollback).len(), 1, "one rollback in all");
    assert_eq!(
        lines(&promoted),
        vec![
            "d-1 v1 post-deploy".to_string(),
            "d-3 v3 post-deploy".to_string()
        ],
        "promoted after each pass, never after the failure"
    );

    // `warden window list` shows the three runs, newest first.
    let out = warden_within(
        &["window", "-c", d.config_path().to_str().unwrap(), "list"],
        Duration::from_secs(20),
    )
    .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    let states: Vec<&str> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap_or_default())
        .collect();
    assert_eq!(states, vec!["passed", "failed", "passed"], "{list}");
}

/// POSTs `body` to the daemon's windows API.
fn start_window(d: &Daemon, body: &str) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(d.url("/api/v1/windows"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    })
}

#[test]
fn the_api_refuses_a_second_window_of_the_service_supersedes_on_request_and_aborts() {
    let target = health(Arc::new(AtomicBool::new(true)));
    let ops = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &target.url("/health"), &ops.url(), &ops.url())
        .replace("at = \"4s\"", "at = \"10m\"");
    let d = Daemon::start(&text);
    let (code, first) = start_window(&d, r#"{"window": "post-deploy", "deploy": "d-1"}"#);
    assert_eq!(code, 201, "{first}");
    assert_eq!(first["state"], "running");
    // /api/v1/status shows the running run and its next mark.
    let status = d.status();
    assert_eq!(status["windows"][0]["id"], 1, "{status}");
    assert_eq!(status["windows"][0]["next_mark"], "2s");
    let (code, refused) = start_window(&d, r#"{"window": "post-deploy", "deploy": "d-2"}"#);
    assert_eq!(code, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("of the same service is running"),
        "{refused}"
    );
    let (code, second) = start_window(
        &d,
        r#"{"window": "post-deploy", "deploy": "d-2", "supersede": true}"#,
    );
    assert_eq!(code, 201, "{second}");
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/windows/1")).unwrap();
    let old: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(old["state"], "superseded");
    assert_eq!(old["reason"], "superseded by window 2 (deploy d-2)");
    // Bad requests say what is wrong.
    let (code, bad) = start_window(&d, r#"{"window": "nope", "deploy": "d"}"#);
    assert_eq!(code, 404, "{bad}");
    let (code, bad) = start_window(&d, r#"{"deploy": "d"}"#);
    assert_eq!(code, 400, "{bad}");
    let (code, bad) = start_window(&d, r#"{"window": "post-deploy", "deploy": "has space"}"#);
    assert_eq!(code, 400, "{bad}");
    // Abort through the CLI.
    let out = warden_within(
        &[
            "window",
            "-c",
            d.config_path().to_str().unwrap(),
            "abort",
            "2",
        ],
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["state"], "aborted");
    assert!(ops.accepted().is_empty(), "an abort pages nobody");
}

#[test]
fn a_window_survives_a_restart_and_finishes_under_the_same_id() {
    let target = health(Arc::new(AtomicBool::new(true)));
    let ops = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &target.url("/health"), &ops.url(), &ops.url())
        .replace("at = \"2s\"", "at = \"3s\"")
        .replace("at = \"4s\"", "at = \"8s\"");
    let mut d = Daemon::start(&text);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    let (code, run) = start_window(&d, r#"{"window": "post-deploy", "deploy": "d-1"}"#);
    assert_eq!(code, 201, "{run}");
    let id = run["id"].as_u64().unwrap();
    // Killed mid-window, after the first mark.
    wait(Duration::from_secs(10), "the first mark", || {
        let (_, _, body) = crate::daemon::get(&d.url(&format!("/api/v1/windows/{id}"))).ok()?;
        let run: serde_json::Value = serde_json::from_str(&body).ok()?;
        (run["marks"][0]["verdict"] == "passed").then_some(())
    });
    d.signal("KILL");
    let _ = d.child.wait();
    // Down across the second mark (8 s after the start): the next process sees it overdue
    // before its rules have reported anything, and must wait for them, not fail for no data.
    let started = run["started_at"].as_i64().unwrap();
    let now = || warden::clock::Clock::system().now().as_millis();
    let gap = (started + 9_000 - now()).max(0) as u64;
    std::thread::sleep(Duration::from_millis(gap));
    // The same state file, a new process.
    let d2 = Daemon::start_with(
        &text,
        &[("STATE_DIRECTORY", d._dir.path().to_str().unwrap())],
        &[],
    );
    let run = wait(Duration::from_secs(20), "the resumed run to end", || {
        let (_, _, body) = crate::daemon::get(&d2.url(&format!("/api/v1/windows/{id}"))).ok()?;
        let run: serde_json::Value = serde_json::from_str(&body).ok()?;
        (run["state"] != "running").then_some(run)
    });
    assert_eq!(run["state"], "passed", "{run}");
    assert!(run["marks"][1]["evaluated_at"].as_i64().unwrap() >= started + 9_000);
    assert!(
        d2.log().contains("validation window resumes"),
        "{}",
        d2.log()
    );
    let (_, _, body) = crate::daemon::get(&d2.url("/api/v1/windows")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(all["windows"].as_array().unwrap().len(), 1, "{all}");
}

/// An imitation of ai-saas' canary: `/metrics` serves request counters for `stable` and
/// `canary`; the canary's 5xx grow with each scrape once the weight file says 25 or more.
fn canary_target(weight_file: std::path::PathBuf) -> HttpServer {
    let scrapes = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    HttpServer::start(move |_| {
        let n = scrapes.fetch_add(1, Ordering::SeqCst) + 1;
        let weight: u64 = std::fs::read_to_string(&weight_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let e = if weight >= 25 {
            errors.fetch_add(30, Ordering::SeqCst) + 30
        } else {
            errors.load(Ordering::SeqCst)
        };
        let body = format!(
            "# TYPE http_requests_total counter\n\
             http_requests_total{{version=\"stable\",code=\"200\"}} {}\n\
             http_requests_total{{version=\"canary\",code=\"200\"}} {}\n\
             http_requests_total{{version=\"canary\",code=\"500\"}} {e}\n",
            n * 1000,
            n * 100
        );
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(body)
    })
}

#[test]
fn a_canary_ladder_stops_at_the_step_whose_error_rate_rises_and_rolls_back_once() {
    let dir = tempfile::tempdir().unwrap();
    let weight = dir.path().join("weight");
    let weights = dir.path().join("weights.log");
    let rollback = dir.path().join("rollback.log");
    let target = canary_target(weight.clone());
    let ops = Receiver::start();
    let text = format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{ops}"

[[check]]
name = "metrics"
kind = "scrape"
url = "{target}"
interval = "500ms"
timeout = "400ms"

[[rule]]
name = "canary-errors"
expr = 'sum(rate(http_requests_total{{version="canary",code=~"5.."}}[3s])) / sum(rate(http_requests_total{{version="canary"}}[3s]))'
critical = {{ when = "> 0.05" }}

[[hook]]
name = "set-weight"
shell = 'echo "$WARDEN_WEIGHT" > {weight} && echo "$WARDEN_WEIGHT" >> {weights}'

[[hook]]
name = "rollback"
shell = 'echo 0 > {weight} && echo "rollback $WARDEN_DEPLOY" >> {rollback}'

[[window]]
name = "canary"
step_hook = "set-weight"
hooks = ["rollback"]

[[window.step]]
weight = 5
hold = "4s"
require = ["canary-errors"]

[[window.step]]
weight = 25
hold = "4s"
require = ["canary-errors"]

[[window.step]]
weight = 50
hold = "4s"
require = ["canary-errors"]

[[window.step]]
weight = 100
hold = "4s"
require = ["canary-errors"]
"#,
        ops = ops.url(),
        target = target.url("/metrics"),
        weight = weight.display(),
        weights = weights.display(),
        rollback = rollback.display(),
    );
    let d = Daemon::start(&text);
    d.wait_rule_state("canary-errors", "ok", Duration::from_secs(15));
    let out = gate_on(&d, "canary", "canary-7", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", d.log());
    assert!(stdout.contains("step 1: weight 5"), "{stdout}");
    assert!(stdout.contains("step 2: weight 25"), "{stdout}");
    assert!(
        stdout.contains("mark 8s: failed (rule canary-errors critical"),
        "{stdout}"
    );
    // 5 then 25; never 50 or 100; one rollback, which set the weight back.
    assert_eq!(lines(&weights), vec!["5", "25"]);
    assert_eq!(lines(&rollback), vec!["rollback canary-7"]);
    assert_eq!(std::fs::read_to_string(&weight).unwrap().trim(), "0");
    let page = wait(Duration::from_secs(10), "the failure page", || {
        ops.accepted()
            .into_iter()
            .find(|b| b["status"] == "firing" && b["alert"] == "window/canary")
    });
    assert_eq!(page["labels"]["deploy"], "canary-7");
}

#[test]
fn gate_without_url_runs_warden_itself_for_the_window() {
    let target = health(Arc::new(AtomicBool::new(true)));
    let ops = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::harness::free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[state]\npath = \"{}\"\n{}",
        dir.path().join("gate.db").display(),
        config(dir.path(), &target.url("/health"), &ops.url(), &ops.url())
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, text).unwrap();
    let out = warden_within(
        &[
            "gate",
            "-c",
            path.to_str().unwrap(),
            "--window",
            "post-deploy",
            "--deploy",
            "d-9",
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mark 4s: passed"), "{stdout}");
    // Unknown window: a usage error, before anything runs.
    let out = warden_within(
        &[
            "gate",
            "-c",
            path.to_str().unwrap(),
            "--window",
            "nope",
            "--deploy",
            "d",
        ],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [[window]] named \"nope\""));
}

#[test]
fn the_gate_refuses_to_start_below_the_error_budget_floor() {
    let target = health(Arc::new(AtomicBool::new(false)));
    let ops = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &target.url("/health"), &ops.url(), &ops.url()).replace(
        "hooks = [\"rollback\"]\non_success",
        "hooks = [\"rollback\"]\nbudget_floor = 0.5\non_success",
    ) + r#"
[[slo]]
name = "availability"
check = "api"
objective = 99.0
"#;
    let d = Daemon::start(&text);
    // Every probe fails: the budget is soon overspent.
    wait(Duration::from_secs(15), "the budget to fall", || {
        let status = d.status();
        let left = status["slos"][0]["error_budget_remaining"].as_f64()?;
        (left < 0.5).then_some(())
    });
    let out = gate(&d, "d-1", "v1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", d.log());
    assert!(
        stdout.contains("not started: SLO availability has")
            && stdout.contains("below the window's floor of 50.0 %"),
        "{stdout}"
    );
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/windows")).unwrap();
    assert!(
        body.contains("\"windows\": []"),
        "no run was started: {body}"
    );
    assert!(!dir.path().join("rollback.log").exists(), "nothing ran");
}

#[test]
fn a_rule_compares_with_the_window_baseline_two_times_baseline_latency_fails_the_mark() {
    // The imitation's latency gauge, in microseconds.
    let latency = Arc::new(AtomicU64::new(100_000));
    let served = latency.clone();
    let target = HttpServer::start(move |_| {
        let seconds = served.load(Ordering::SeqCst) as f64 / 1e6;
        Reply::status(200)
            .header("content-type", "text/plain; version=0.0.4")
            .body(format!(
                "# TYPE latency_seconds gauge\nlatency_seconds {seconds}\n"
            ))
    });
    let ops = Receiver::start();
    let text = format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{ops}"

[[check]]
name = "metrics"
kind = "scrape"
url = "{target}"
interval = "300ms"
timeout = "250ms"

# "2x baseline latency": the rule reads the running window's baseline from the store.
[[rule]]
name = "latency-vs-baseline"
expr = 'max(latency_seconds) / max(warden_window_baseline{{window="post-deploy", name="latency"}})'
critical = {{ when = ">= 2" }}

[[window]]
name = "post-deploy"
baseline = {{ latency = 'max(latency_seconds)' }}

[[window.mark]]
at = "3s"
require = ["latency-vs-baseline"]
"#,
        ops = ops.url(),
        target = target.url("/metrics"),
    );
    let d = Daemon::start(&text);
    // No window, no baseline: the rule has no data (never a made-up ratio).
    d.wait_rule_state("latency-vs-baseline", "unknown", Duration::from_secs(10));
    wait(Duration::from_secs(10), "the first scrape", || {
        let (_, _, body) =
            crate::daemon::get(&d.url("/api/v1/query?query=latency_seconds")).ok()?;
        body.contains("0.1").then_some(())
    });
    let gate = |deploy: &str| gate_on(&d, "post-deploy", deploy, &[]);
    let out = gate_on(&d, "post-deploy", "good", &["--version", "v9"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", d.log());
    assert!(stdout.contains("baseline latency=0.1"), "{stdout}");
    // While it ran, the deploy and its version were a series rules can select on.
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/windows/1")).unwrap();
    let run: serde_json::Value = serde_json::from_str(&body).unwrap();
    let during = run["started_at"].as_i64().unwrap() as f64 / 1000.0 + 2.0;
    let (_, _, answer) = crate::daemon::get(&d.url(&format!(
        "/api/v1/query?query=warden_window_running%7Bversion%3D%22v9%22%7D&time={during}"
    )))
    .unwrap();
    assert!(
        answer.contains(r#""deploy":"good""#) && answer.contains(r#""window":"post-deploy""#),
        "{answer}"
    );
    assert!(
        stdout.contains("mark 3s: passed (rule latency-vs-baseline ok 1)"),
        "{stdout}"
    );
    // The ended run's baseline is stale at once: the rule has no data again.
    d.wait_rule_state("latency-vs-baseline", "unknown", Duration::from_secs(10));

    // The bad deploy: latency triples after the start.
    let slow = latency.clone();
    let breaker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        slow.store(300_000, Ordering::SeqCst);
    });
    let out = gate("slow");
    breaker.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", d.log());
    assert!(
        stdout.contains("mark 3s: failed (rule latency-vs-baseline critical 3)"),
        "{stdout}"
    );
}

#[test]
fn a_window_holds_the_expected_blip_and_pages_what_outlasts_the_hold() {
    let up = Arc::new(AtomicBool::new(true));
    let target = health(up.clone());
    let ops = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), &target.url("/health"), &ops.url(), &ops.url())
        .replace("count = 3", "count = 1")
        .replace(
            "hooks = [\"rollback\"]\non_success",
            "hooks = [\"rollback\"]\nhold = [\"api-down\"]\nhold_for = \"3s\"\non_success",
        )
        .replace("at = \"2s\"", "at = \"5s\"")
        .replace("at = \"4s\"", "at = \"6s\"");
    let d = Daemon::start(&text);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    // The blip: down for a second right after the switch, then healthy again.
    let (code, run) = start_window(&d, r#"{"window": "post-deploy", "deploy": "blip"}"#);
    assert_eq!(code, 201, "{run}");
    up.store(false, Ordering::SeqCst);
    d.wait_rule_state("api-down", "critical", Duration::from_secs(5));
    up.store(true, Ordering::SeqCst);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(5));
    let ended = wait(Duration::from_secs(20), "the blip's run to end", || {
        let (_, _, body) = crate::daemon::get(&d.url("/api/v1/windows/1")).ok()?;
        let run: serde_json::Value = serde_json::from_str(&body).ok()?;
        (run["state"] != "running").then_some(run)
    });
    assert_eq!(ended["state"], "passed", "{ended}");
    assert!(
        ops.accepted().iter().all(|b| b["alert"] != "api-down"),
        "the held blip paged: {:?}",
        ops.accepted()
    );

    // Down and staying down: paged once the hold ends, not before.
    let (code, run) = start_window(&d, r#"{"window": "post-deploy", "deploy": "down"}"#);
    assert_eq!(code, 201, "{run}");
    let started = run["started_at"].as_i64().unwrap();
    up.store(false, Ordering::SeqCst);
    let page = wait(Duration::from_secs(15), "the page after the hold", || {
        ops.accepted()
            .into_iter()
            .find(|b| b["status"] == "firing" && b["alert"] == "api-down")
    });
    let at = chrono_millis(page["at"].as_str().unwrap());
    assert!(
        at >= started + 3_000,
        "paged {} ms after the start, inside the hold",
        at - started
    );
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as warden writes it.
fn chrono_millis(rfc3339: &str) -> i64 {
    let t = humantime::parse_rfc3339(rfc3339).expect("an RFC 3339 time");
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn a_window_without_data_is_inconclusive_never_passed() {
    // The queue depth the rule reads is missing from every answer: no data.
    let target = HttpServer::start(|_| Reply::status(200).body(r#"{"status":"healthy"}"#));
    let chat = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let port = crate::harness::free_port();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"

[state]
path = "{state}"

[[notifier]]
name = "chat"
kind = "webhook"
url = "{chat}"

[[check]]
name = "api"
kind = "http"
url = "{target}"
interval = "200ms"
timeout = "150ms"
extract = {{ depth = "queue.depth" }}

[[rule]]
name = "queue-deep"
check = "api"
value = "depth"
critical = {{ when = "> 100" }}

# The window fails for want of data; this deploy's start says inconclusive instead.
[[window]]
name = "post-deploy"
on_success = {{ notify = ["chat"], message = "Deploy $deploy validated" }}

[[window.mark]]
at = "2s"
require = ["queue-deep"]
"#,
        state = dir.path().join("w.db").display(),
        chat = chat.url(),
        target = target.url("/health"),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, text).unwrap();
    let out = warden_within(
        &[
            "gate",
            "-c",
            path.to_str().unwrap(),
            "--window",
            "post-deploy",
            "--deploy",
            "d-1",
            "--no-data",
            "inconclusive",
        ],
        Duration::from_secs(60),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("window run 1 inconclusive: mark 2s: no data for rule queue-deep"),
        "{stdout}"
    );
    // Chat hears that no success message will come, and why; never a "validated".
    let notice = wait(Duration::from_secs(10), "the inconclusive notice", || {
        chat.accepted()
            .into_iter()
            .find(|b| b["status"] == "notice")
    });
    assert_eq!(notice["labels"]["verdict"], "inconclusive");
    assert!(notice["description"]
        .as_str()
        .unwrap()
        .contains("is inconclusive: mark 2s: no data for rule queue-deep"));
    assert!(chat.accepted().iter().all(|b| !b["description"]
        .as_str()
        .unwrap_or("")
        .contains("validated")));
}
