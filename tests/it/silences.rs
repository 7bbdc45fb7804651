//! Silences and inhibition through the real daemon to a real receiver: `warden silence` adds
//! and expires silences over the API, pages are held back and come when nothing holds them
//! any more, resolves always go out, and silences survive a restart.

use std::time::Duration;

use serde_json::json;

use crate::daemon::{get, warden_within, Daemon};
use crate::harness::receiver::Receiver;
use crate::paging::wait;
use crate::target::HttpTarget;

const LIMIT: Duration = Duration::from_secs(15);

/// `ops` (warden's JSON webhook at `url`) gets every critical; check `api` on `health` every
/// 200 ms; rule `api-down` critical when it fails.
fn config(url: &str, health: &str) -> String {
    format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"

[[check]]
name = "api"
kind = "http"
url = "{health}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-down"
check = "api"
labels = {{ service = "api" }}
critical = {{ when = "< 1" }}
"#
    )
}

/// `warden silence ARGS` against the daemon; (exit code, stdout, stderr).
fn silence(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let config = d.config_path();
    let url = d.url("");
    let mut all = vec![
        "silence",
        "-c",
        config.to_str().unwrap(),
        "--url",
        url.trim_end_matches('/'),
    ];
    all.extend_from_slice(args);
    let out = warden_within(&all, Duration::from_secs(30)).expect("warden silence ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The bodies `r` accepted for `alert` with `status` (firing, resolved).
fn pages(r: &Receiver, alert: &str, status: &str) -> Vec<serde_json::Value> {
    r.accepted()
        .into_iter()
        .filter(|b| b["alert"] == alert && b["status"] == status)
        .collect()
}

/// The daemon's `GET /api/v1/alerts` entry for `alert`.
fn alert_view(d: &Daemon, alert: &str) -> Option<serde_json::Value> {
    let (_, _, body) = get(&d.url("/api/v1/alerts")).ok()?;
    let all: serde_json::Value = serde_json::from_str(&body).ok()?;
    all["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["alert"] == alert)
        .cloned()
}

#[test]
fn a_silence_added_by_the_cli_mutes_the_page_until_it_is_expired_then_the_page_comes() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let ops = Receiver::start();
    let d = Daemon::start(&config(&ops.url(), &target.url("/health")));
    d.wait_rule_state("api-down", "ok", LIMIT);

    let (code, out, err) = silence(
        &d,
        &[
            "add",
            r#"rule="api-down""#,
            r#"service=~"a.*""#,
            "--duration",
            "1h",
            "--comment",
            "deploying api",
            "--author",
            "ci",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("silence 1 added, active until "), "{out}");

    target.set_json("/health", 503, json!({}));
    d.wait_rule_state("api-down", "critical", LIMIT);
    let view = wait(LIMIT, "the alert shown as silenced", || {
        alert_view(&d, "api-down").filter(|v| v["silenced_by"].is_array())
    });
    assert_eq!(view["silenced_by"], json!(["silence 1"]), "{view}");
    // Evaluated and recorded, not paged.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        pages(&ops, "api-down", "firing").is_empty(),
        "{:?}",
        ops.accepted()
    );

    let (code, out, _) = silence(&d, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("active") && out.contains(r#"rule="api-down",service=~"a.*""#),
        "{out}"
    );
    assert!(out.contains("deploying api") && out.contains("ci"), "{out}");
    let (_, _, body) = get(&d.url("/api/v1/silences")).unwrap();
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed["silences"][0]["silencing"],
        json!(["api-down"]),
        "{listed}"
    );

    let (code, out, err) = silence(&d, &["expire", "1"]);
    assert_eq!((code, out.as_str()), (0, "silence 1 expired\n"), "{err}");
    let paged = wait(LIMIT, "the page once the silence is expired", || {
        pages(&ops, "api-down", "firing").into_iter().next()
    });
    assert_eq!(paged["severity"], "critical");
    // Expiring it again is refused, and it is listed only with --all.
    let (code, _, err) = silence(&d, &["expire", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("already ended"), "{err}");
    assert_eq!(silence(&d, &["list"]).1, "no silences\n");
    assert!(silence(&d, &["list", "--all"]).1.contains("expired"));

    target.set_json("/health", 200, json!({}));
    wait(LIMIT, "the resolve", || {
        pages(&ops, "api-down", "resolved").into_iter().next()
    });
    assert_eq!(pages(&ops, "api-down", "firing").len(), 1);
}

#[test]
fn an_alert_paged_before_its_silence_still_gets_its_resolve() {
    let target = HttpTarget::start();
    target.set_json("/health", 503, json!({}));
    let ops = Receiver::start();
    let d = Daemon::start(&config(&ops.url(), &target.url("/health")));
    wait(LIMIT, "the page", || {
        pages(&ops, "api-down", "firing").into_iter().next()
    });
    let (code, out, err) = silence(
        &d,
        &[
            "add",
            r#"alertname="api-down""#,
            "--comment",
            "known",
            "--author",
            "me",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    wait(LIMIT, "the alert shown as silenced", || {
        alert_view(&d, "api-down").filter(|v| v["silenced_by"].is_array())
    });
    target.set_json("/health", 200, json!({}));
    let resolved = wait(LIMIT, "the resolve while silenced", || {
        pages(&ops, "api-down", "resolved").into_iter().next()
    });
    assert_eq!(
        resolved["dedup_key"],
        pages(&ops, "api-down", "firing")[0]["dedup_key"]
    );
}

#[test]
fn an_alert_that_fired_and_ended_while_silenced_sends_nothing() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let ops = Receiver::start();
    let d = Daemon::start(&config(&ops.url(), &target.url("/health")));
    d.wait_rule_state("api-down", "ok", LIMIT);
    let (code, _, err) = silence(
        &d,
        &["add", r#"check="api""#, "--comment", "x", "--author", "me"],
    );
    assert_eq!(code, 0, "{err}");
    target.set_json("/health", 503, json!({}));
    d.wait_rule_state("api-down", "critical", LIMIT);
    target.set_json("/health", 200, json!({}));
    d.wait_rule_state("api-down", "ok", LIMIT);
    let (code, _, _) = silence(&d, &["expire", "1"]);
    assert_eq!(code, 0);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ops.accepted().is_empty(), "{:?}", ops.accepted());
}

#[test]
fn silences_survive_a_restart() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let ops = Receiver::start();
    let text = config(&ops.url(), &target.url("/health"));
    let mut d = Daemon::start(&text);
    let (code, _, err) = silence(
        &d,
        &[
            "add",
            r#"rule="api-down""#,
            "--duration",
            "2h",
            "--comment",
            "db migration",
            "--author",
            "me",
        ],
    );
    assert_eq!(code, 0, "{err}");
    d.terminate(Duration::from_secs(10));
    let state = d._dir.path().to_str().unwrap().to_string();
    target.set_json("/health", 503, json!({}));
    let d2 = Daemon::start_with(&text, &[("STATE_DIRECTORY", &state)], &[]);
    let (_, out, _) = silence(&d2, &["list"]);
    assert!(
        out.contains("db migration") && out.contains("active"),
        "{out}"
    );
    d2.wait_rule_state("api-down", "critical", LIMIT);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(pages(&ops, "api-down", "firing").is_empty());
    // Ids go on from the stored ones.
    let (_, out, _) = silence(
        &d2,
        &["add", r#"rule="other""#, "--comment", "x", "--author", "me"],
    );
    assert!(out.starts_with("silence 2 added"), "{out}");
    assert_eq!(silence(&d2, &["expire", "1"]).0, 0);
    wait(LIMIT, "the page once the stored silence is expired", || {
        pages(&ops, "api-down", "firing").into_iter().next()
    });
}

#[test]
fn an_inhibition_holds_the_p95_page_while_health_is_critical() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    target.set_json("/stats", 200, json!({"p95": 0.5}));
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
name = "health"
kind = "http"
url = "{health}"
interval = "200ms"
timeout = "150ms"

[[check]]
name = "stats"
kind = "http"
url = "{stats}"
interval = "200ms"
timeout = "150ms"
extract = {{ p95 = "p95" }}

[[rule]]
name = "api-health"
check = "health"
labels = {{ service = "api" }}
critical = {{ when = "< 1" }}

[[rule]]
name = "api-p95"
check = "stats"
value = "p95"
labels = {{ service = "api" }}
critical = {{ when = "> 2", count = 3 }}

[[inhibit]]
source_matchers = ['rule="api-health"', 'severity="critical"']
target_matchers = ['rule="api-p95"']
equal = ["service"]
"#,
        ops = ops.url(),
        health = target.url("/health"),
        stats = target.url("/stats"),
    );
    let d = Daemon::start(&text);
    d.wait_rule_state("api-health", "ok", LIMIT);
    d.wait_rule_state("api-p95", "ok", LIMIT);
    // The service goes down: health pages at once, p95 (three samples later) is inhibited.
    target.set_json("/health", 503, json!({}));
    wait(LIMIT, "the health page", || {
        pages(&ops, "api-health", "firing").into_iter().next()
    });
    target.set_json("/stats", 200, json!({"p95": 5.0}));
    d.wait_rule_state("api-p95", "critical", LIMIT);
    let view = wait(LIMIT, "p95 shown as inhibited", || {
        alert_view(&d, "api-p95").filter(|v| v["inhibited_by"].is_array())
    });
    assert_eq!(view["inhibited_by"], json!(["api-health"]), "{view}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        pages(&ops, "api-p95", "firing").is_empty(),
        "{:?}",
        ops.accepted()
    );
    // Health recovers while p95 is still bad: health resolves, and p95 is paged then.
    target.set_json("/health", 200, json!({}));
    wait(LIMIT, "the health resolve", || {
        pages(&ops, "api-health", "resolved").into_iter().next()
    });
    wait(LIMIT, "the p95 page once health recovered", || {
        pages(&ops, "api-p95", "firing").into_iter().next()
    });
    target.set_json("/stats", 200, json!({"p95": 0.5}));
    wait(LIMIT, "the p95 resolve", || {
        pages(&ops, "api-p95", "resolved").into_iter().next()
    });
}

#[test]
fn silence_changes_need_the_token_when_one_is_set() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let ops = Receiver::start();
    let d = Daemon::start_listening(
        "127.0.0.1",
        r#"token = "s3cret-token""#,
        &config(&ops.url(), &target.url("/health")),
        &[],
    );
    let (code, body) = crate::daemon::post(&d.url("/api/v1/silences"), None).unwrap();
    assert_eq!(code, 401, "{body}");
    let (code, body) = crate::daemon::post(&d.url("/api/v1/silences/1/expire"), None).unwrap();
    assert_eq!(code, 401, "{body}");
    // The CLI takes the config's token; a bad body is refused with the reason.
    let (code, out, err) = silence(
        &d,
        &[
            "add",
            r#"rule="api-down""#,
            "--comment",
            "x",
            "--author",
            "me",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, body) =
        crate::daemon::post(&d.url("/api/v1/silences"), Some("s3cret-token")).unwrap();
    assert_eq!(code, 400, "{body}");
    // Reading is open.
    let (code, _, body) = get(&d.url("/api/v1/silences/1")).unwrap();
    assert_eq!(code, 200);
    assert!(body.contains(r#""created_by":"me""#), "{body}");
}
