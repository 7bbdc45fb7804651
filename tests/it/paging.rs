//! Paging and rollback through the real daemon: `warden run` watches in-process HTTP targets,
//! rules fire, and pages go through the config's notifiers to real receivers (in-process HTTP
//! receivers, a real Alertmanager, a real SMTP sink); hooks run real shell commands. Includes
//! the crash test: kill -9 warden mid-burst, restart it on the same state, count what arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::{get, post, Daemon};
use crate::harness::alertmanager::Alertmanager;
use crate::harness::notify_receiver::{Answer as NotifyAnswer, Receiver as HttpReceiver};
use crate::harness::receiver::Receiver;
use crate::harness::smtp::SmtpSink;
use crate::harness::{free_port, short_key, short_keys};
use crate::metrics_matcher::sample;
use crate::target::HttpTarget;

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` after `limit`.
pub(crate) fn wait<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The warden JSON bodies a receiver accepted with `status` (firing, resolved, hook).
fn with_status(r: &Receiver, status: &str) -> Vec<serde_json::Value> {
    r.accepted()
        .into_iter()
        .filter(|b| b["status"] == status)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The lines of `path` with their dedup keys in the short form ([`short_keys`]).
fn short_lines(path: &Path) -> Vec<String> {
    lines(path).iter().map(|l| short_keys(l)).collect()
}

/// `body["dedup_key"]` in the short form ([`short_key`]); empty when it has none.
fn short_dedup(body: &serde_json::Value) -> String {
    short_key(body["dedup_key"].as_str().unwrap_or_default())
}

fn metric(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&d.metrics().1, name, labels)
}

/// One HTTP check on `url` every 200 ms and a rule `api-down` that is critical at once when
/// it fails.
fn api_check(url: &str) -> String {
    format!(
        r#"
[[check]]
name = "api"
kind = "http"
url = "{url}"
interval = "200ms"
timeout = "150ms"
"#
    )
}

/// `[alerting]` sending every critical to `ops`, a webhook notifier at `url` (warden's JSON).
pub fn ops_pager(url: &str) -> String {
    format!(
        r#"
[alerting]
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"
"#
    )
}

/// A webhook notifier `ops` at `url` for every critical, and `api-down` (critical when the
/// check on `target` fails).
fn paged_api(url: &str, target: &str) -> String {
    format!(
        r#"
{ops}{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
"#,
        ops = ops_pager(url),
        check = api_check(target),
    )
}

#[test]
fn warnings_go_to_chat_criticals_to_the_pager_and_both_hear_the_resolve() {
    let target = HttpTarget::start();
    target.set_json("/stats", 200, json!({"queue": 1}));
    let chat = HttpReceiver::start(NotifyAnswer::status(200, "ok"));
    let pager = HttpReceiver::start(NotifyAnswer::status(202, r#"{"status":"success"}"#));
    let config = format!(
        r#"
[[notifier]]
name = "chat"
kind = "slack"
webhook_url = "{chat}"

[[notifier]]
name = "pager"
kind = "pagerduty"
routing_key = "${{PD_ROUTING_KEY}}"
url = "{pager}"
source = "warden-test"

[[check]]
name = "api"
kind = "http"
url = "{stats}"
interval = "200ms"
timeout = "150ms"
extract = {{ queue = "queue" }}

[[rule]]
name = "queue-deep"
check = "api"
value = "queue"
warning = {{ when = "> 10" }}
critical = {{ when = "> 100" }}
notify = {{ warning = ["chat"], critical = ["pager"] }}
"#,
        chat = chat.url("/services/T000/B000/XXXX"),
        pager = pager.url("/v2/enqueue"),
        stats = target.url("/stats"),
    );
    let key = "R0UTING-KEY-0123456789";
    let d = Daemon::start_with(&config, &[("PD_ROUTING_KEY", key)], &[]);
    d.wait_rule_state("queue-deep", "ok", Duration::from_secs(10));

    target.set_json("/stats", 200, json!({"queue": 50}));
    let slack = chat.wait_for(1, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&slack[0].body).to_string();
    assert!(
        text.contains("WARNING") && text.contains("queue-deep"),
        "{text}"
    );
    assert!(pager.received().is_empty(), "a warning must not page");

    target.set_json("/stats", 200, json!({"queue": 500}));
    let pd = pager.wait_for(1, Duration::from_secs(10))[0].json();
    assert_eq!(pd["event_action"], "trigger");
    assert_eq!(pd["routing_key"], key);
    assert_eq!(short_dedup(&pd), "warden/queue-deep/1");
    // In full: warden/<instance>/<rule>/<epoch>-<n>, with the instance and the epoch this
    // warden logged at start.
    let logged = |field: &str| -> String {
        let log = d.log();
        let line = log
            .lines()
            .find(|l| l.contains("dedup keys name this warden"))
            .unwrap_or_else(|| panic!("no identity line in the log:\n{log}"))
            .to_string();
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{field}=")))
            .unwrap_or_else(|| panic!("no {field}= in {line}"))
            .to_string()
    };
    let full = format!(
        "warden/{}/queue-deep/{}-1",
        logged("instance"),
        logged("epoch")
    );
    assert_eq!(pd["dedup_key"], full.as_str());
    assert_eq!(pd["payload"]["severity"], "critical");
    assert_eq!(pd["payload"]["custom_details"]["value"], 500.0);

    target.set_json("/stats", 200, json!({"queue": 0}));
    let pd = pager.wait_for(2, Duration::from_secs(10))[1].json();
    assert_eq!(pd["event_action"], "resolve");
    assert_eq!(
        pd["dedup_key"],
        full.as_str(),
        "the resolve names the trigger's key"
    );
    let slack = chat.wait_for(2, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&slack[1].body).to_string();
    assert!(text.contains("RESOLVED"), "{text}");
    assert_eq!(
        chat.received().len(),
        2,
        "chat never heard the critical (not its route)"
    );

    let sent = |n: &str| {
        metric(
            &d,
            "warden_notifications_total",
            &[("notifier", n), ("result", "sent")],
        )
    };
    // The receivers saw the requests before warden read the answers: wait for the counts.
    wait(Duration::from_secs(10), "both deliveries counted", || {
        ((sent("chat"), sent("pager")) == (Some(2.0), Some(2.0))).then_some(())
    });
    // The routing key never shows in the API, the metrics or the log.
    let (_, metrics) = d.metrics();
    let status = d.status().to_string();
    for (what, text) in [("metrics", metrics), ("status", status), ("log", d.log())] {
        assert!(!text.contains(key), "the routing key leaked into {what}");
    }
}

#[test]
fn a_receiver_that_is_down_gets_the_page_once_it_is_back() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let port = free_port();
    let config = paged_api(
        &format!("http://127.0.0.1:{port}/notify"),
        &target.url("/health"),
    );
    let d = Daemon::start(&config);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    target.set_json("/health", 503, json!({}));
    d.wait_rule_state("api-down", "critical", Duration::from_secs(10));
    wait(
        Duration::from_secs(15),
        "a failed delivery to be retried",
        || {
            let retries = metric(
                &d,
                "warden_notifications_total",
                &[("notifier", "ops"), ("result", "retry")],
            )?;
            (retries >= 2.0).then_some(())
        },
    );
    let receiver = Receiver::start_on(port);
    let firing = wait(
        Duration::from_secs(30),
        "the page after the receiver came back",
        || {
            let f = with_status(&receiver, "firing");
            (!f.is_empty()).then_some(f)
        },
    );
    assert_eq!(short_dedup(&firing[0]), "warden/api-down/1");
    assert_eq!(firing[0]["alert"], "api-down");
    // The receiver saw the page before warden read the answer: wait for the outbox to drain.
    wait(Duration::from_secs(10), "the outbox to drain", || {
        let depth = metric(&d, "warden_outbox_depth", &[("notifier", "ops")])?;
        (depth == 0.0).then_some(())
    });
}

/// Hooks `collect-logs` (diagnostic, writes its line after 1.5 s) and `rollback` (after 1 s,
/// cooldown 1 h) on `api-down`, both writing a line to `hooks.log` in `dir`; outcomes and pages
/// go to `url`. The rollback comes due while the diagnostic still runs: its line comes second
/// only if it waited.
fn hooks_config(dir: &Path, url: &str, target: &str) -> String {
    let log = dir.join("hooks.log");
    format!(
        r#"
{ops}
[[hook]]
name = "rollback"
command = ["/bin/sh", "-c", "echo rollback $WARDEN_DEDUP_KEY $WARDEN_SEVERITY >> {log}"]
cooldown = "1h"
timeout = "10s"

[[hook]]
name = "collect-logs"
shell = "sleep 1.5; echo diag $WARDEN_DEDUP_KEY >> {log}"
diagnostic = true
cooldown = "0s"
{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
hooks = [
  {{ hook = "rollback", on = "critical", after = "1s" }},
  {{ hook = "collect-logs" }},
]
"#,
        ops = ops_pager(url),
        log = log.display(),
        check = api_check(target),
    )
}

#[test]
fn hooks_run_after_their_delay_diagnostics_first_once_per_incident_within_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    let d = Daemon::start(&hooks_config(
        dir.path(),
        &receiver.url(),
        &target.url("/health"),
    ));
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    target.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(15), "both hooks", || {
        (lines(&log).len() >= 2).then_some(())
    });
    assert_eq!(
        short_lines(&log),
        [
            "diag warden/api-down/1",
            "rollback warden/api-down/1 critical"
        ]
    );
    let outcomes = wait(Duration::from_secs(10), "both hook outcomes", || {
        let h = with_status(&receiver, "hook");
        (h.len() >= 2).then_some(h)
    });
    let ran: BTreeMap<String, serde_json::Value> = outcomes
        .iter()
        .map(|b| {
            (
                b["hook"]["hook"].as_str().unwrap().to_string(),
                b["hook"]["exit_code"].clone(),
            )
        })
        .collect();
    assert_eq!(ran["rollback"], 0);
    assert_eq!(ran["collect-logs"], 0);
    assert!(
        outcomes
            .iter()
            .all(|b| short_dedup(b).starts_with("warden/api-down/1/hook/")),
        "{outcomes:#?}"
    );

    // Still critical: neither runs again in this incident.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&log).len(), 2);

    target.set_json("/health", 200, json!({}));
    wait(Duration::from_secs(10), "the resolve", || {
        (!with_status(&receiver, "resolved").is_empty()).then_some(())
    });
    // A second incident: the diagnostic runs, the rollback is in its 1 h cooldown.
    target.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(15), "the second diagnostic", || {
        short_lines(&log)
            .iter()
            .any(|l| l == "diag warden/api-down/2")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(lines(&log).len(), 3, "{:?}", lines(&log));
    let runs = |outcome: &str| {
        metric(
            &d,
            "warden_hook_runs_total",
            &[("hook", "rollback"), ("outcome", outcome)],
        )
    };
    assert_eq!(runs("success"), Some(1.0));
    assert!(runs("skipped").unwrap_or(0.0) >= 1.0);
    let firing: Vec<String> = with_status(&receiver, "firing")
        .iter()
        .map(short_dedup)
        .collect();
    assert_eq!(firing, ["warden/api-down/1", "warden/api-down/2"]);
    assert!(
        d.log().contains("cooling_down"),
        "the skip is logged with its reason"
    );
}

/// Issue 12 item 7: a hook shared by several rules ran for one alert at a time and the others
/// were asked again 10 s later. Ten rules on one check share one 0.3 s hook and fire together:
/// each run must start as soon as the one before it ends (never two at once), all ten within
/// seconds, where the 10 s retry needed 90.
#[test]
fn a_hook_shared_by_ten_rules_runs_for_each_as_soon_as_the_last_run_ends() {
    const RULES: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    let mut config = format!(
        r#"
{ops}
[[hook]]
name = "restart-api"
shell = "echo start $WARDEN_ALERT $(date +%s%N) >> {log}; sleep 0.3; echo end $WARDEN_ALERT $(date +%s%N) >> {log}"
cooldown = "0s"
timeout = "10s"
{check}"#,
        ops = ops_pager(&receiver.url()),
        log = log.display(),
        check = api_check(&target.url("/health")),
    );
    for i in 0..RULES {
        config.push_str(&format!(
            r#"
[[rule]]
name = "r{i}"
check = "api"
critical = {{ when = "< 1" }}
hooks = [{{ hook = "restart-api" }}]
"#
        ));
    }
    let d = Daemon::start(&config);
    for i in 0..RULES {
        d.wait_rule_state(&format!("r{i}"), "ok", Duration::from_secs(10));
    }
    target.set_json("/health", 500, json!({}));
    // Bounded well below the old behaviour's 90 s, and generously above the expected ~4 s.
    wait(Duration::from_secs(30), "ten hook runs to end", || {
        let ended = lines(&log).iter().filter(|l| l.starts_with("end ")).count();
        (ended >= RULES).then_some(())
    });
    // (alert, start, end) in nanoseconds, in start order.
    let mut runs: Vec<(String, u128, u128)> = Vec::new();
    for line in lines(&log) {
        let parts: Vec<&str> = line.split(' ').collect();
        let (what, alert, ns) = (parts[0], parts[1].to_string(), parts[2].parse().unwrap());
        match what {
            "start" => runs.push((alert, ns, 0)),
            _ => {
                let run = runs.iter_mut().find(|r| r.0 == alert).expect("a start");
                run.2 = ns;
            }
        }
    }
    runs.sort_by_key(|r| r.1);
    let alerts: BTreeSet<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        (runs.len(), alerts.len()),
        (RULES, RULES),
        "one run per alert: {runs:?}"
    );
    let ms = |ns: u128| ns as f64 / 1e6;
    for pair in runs.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        assert!(
            next.1 >= prev.2,
            "{} started before {} ended: two runs of one hook at once",
            next.0,
            prev.0
        );
        let gap = ms(next.1 - prev.2);
        assert!(
            gap < 2000.0,
            "{} waited {gap:.0} ms after {} ended; runs: {runs:?}\n{}",
            next.0,
            prev.0,
            d.log()
        );
    }
    let span = ms(runs[RULES - 1].2 - runs[0].1);
    assert!(span < 10_000.0, "ten 0.3 s runs took {span:.0} ms");
    let runs_of = |outcome: &str| {
        metric(
            &d,
            "warden_hook_runs_total",
            &[("hook", "restart-api"), ("outcome", outcome)],
        )
    };
    // A hook writes its line before it exits; its run is counted just after.
    wait(Duration::from_secs(10), "every run counted", || {
        (runs_of("success") == Some(RULES as f64)).then_some(())
    });
    assert_eq!(
        runs_of("skipped"),
        None,
        "no job was started only to find the hook busy"
    );
    eprintln!("ten runs of one 0.3 s hook in {span:.0} ms");
}

/// `api-down` paging `ops` at `url` and running hook `record` (which appends the alert's
/// dedup key and `$WARDEN_DEPLOY` to `log`) when the check on `target` fails.
fn deploy_config(log: &Path, url: &str, target: &str) -> String {
    format!(
        r#"
{ops}
[[hook]]
name = "record"
shell = "echo $WARDEN_DEDUP_KEY $WARDEN_DEPLOY >> {log}"
cooldown = "0s"
{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
hooks = [{{ hook = "record" }}]
"#,
        ops = ops_pager(url),
        log = log.display(),
        check = api_check(target),
    )
}

/// The one webhook body with `status` and `dedup_key` (waits for it).
fn page(r: &Receiver, status: &str, key: &str) -> serde_json::Value {
    wait(
        Duration::from_secs(15),
        &format!("the {status} page of {key}"),
        || {
            with_status(r, status)
                .into_iter()
                .find(|b| short_dedup(b) == key)
        },
    )
}

/// Issue 11 item 4: the deploy id could not be set. `--deploy` (over `WARDEN_DEPLOY`) names
/// the deploy in pages and in hooks' environment; `POST /-/reload?deploy=v2` (token required)
/// marks the next deploy without a restart, and an incident keeps the deploy it opened in,
/// resolve included.
#[test]
fn the_deploy_id_reaches_pages_and_hooks_and_a_reload_marks_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    // Before any table: it lands in the [server] table the harness writes first.
    let config = format!(
        "token = \"s3cret-token\"\n{}",
        deploy_config(&log, &receiver.url(), &target.url("/health"))
    );
    let d = Daemon::start_with(
        &config,
        &[("WARDEN_DEPLOY", "from-env")],
        &["--deploy", "v1"],
    );
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    target.set_json("/health", 500, json!({}));
    let firing = page(&receiver, "firing", "warden/api-down/1");
    assert_eq!(firing["deploy"], "v1", "the flag wins over the environment");
    wait(Duration::from_secs(15), "the hook's line", || {
        (!lines(&log).is_empty()).then_some(())
    });
    assert_eq!(short_lines(&log), ["warden/api-down/1 v1"]);
    let outcome = page(&receiver, "hook", "warden/api-down/1/hook/record");
    assert_eq!(outcome["deploy"], "v1");

    // The deploy script marks v2 while incident 1 is open.
    let reload = |query: &str, token: Option<&str>| {
        post(&d.url(&format!("/-/reload{query}")), token).expect("POST /-/reload")
    };
    let (code, body) = reload("?deploy=v2", None);
    assert_eq!(code, 401, "the token rules of reload apply: {body}");
    let (code, body) = reload("?deploy=v2%0AX-Injected:%201", Some("s3cret-token"));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("deploy id has '\\\\n' at character 3"),
        "a clear error: {body}"
    );
    let (code, body) = reload("?deploy=v2", Some("s3cret-token"));
    assert_eq!(code, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&answer["result"], &answer["deploy"]),
        (&json!("unchanged"), &json!("v2"))
    );

    // Incident 1 resolves as what it was: opened in v1.
    target.set_json("/health", 200, json!({}));
    assert_eq!(
        page(&receiver, "resolved", "warden/api-down/1")["deploy"],
        "v1"
    );
    // The next incident is v2's, in its page, its hook and the alerts API.
    target.set_json("/health", 500, json!({}));
    assert_eq!(
        page(&receiver, "firing", "warden/api-down/2")["deploy"],
        "v2"
    );
    wait(Duration::from_secs(15), "the second hook's line", || {
        (lines(&log).len() >= 2).then_some(())
    });
    assert_eq!(
        short_lines(&log),
        ["warden/api-down/1 v1", "warden/api-down/2 v2"]
    );
    assert_eq!(alerts(&d)[0]["deploy"], "v2");
}

/// Without `--deploy`, `WARDEN_DEPLOY` names the deploy; an invalid id is refused at start.
#[test]
fn warden_deploy_in_the_environment_names_the_deploy_and_a_bad_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let receiver = Receiver::start();
    let config = deploy_config(&log, &receiver.url(), &target.url("/health"));
    let d = Daemon::start_with(&config, &[("WARDEN_DEPLOY", "redcube-v2.3.1")], &[]);
    let firing = page(&receiver, "firing", "warden/api-down/1");
    assert_eq!(firing["deploy"], "redcube-v2.3.1");
    wait(Duration::from_secs(15), "the hook's line", || {
        (!lines(&log).is_empty()).then_some(())
    });
    assert_eq!(short_lines(&log), ["warden/api-down/1 redcube-v2.3.1"]);

    let path = d.config_path();
    let path = path.to_str().unwrap();
    for (bad, why) in [
        ("", "deploy id is empty"),
        ("v2\u{1b}[31m", "deploy id has '\\u{1b}' at character 3"),
        (&"v".repeat(129), "deploy id is 129 characters long"),
    ] {
        let out = crate::daemon::warden(&["run", "-c", path, "--deploy", bad]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
    // In the environment, a bad id is refused too; an empty one is no deploy (a unit file's
    // `Environment=WARDEN_DEPLOY=`), so warden starts.
    let bad = std::process::Command::new(crate::daemon::WARDEN)
        .args(["run", "-c", path])
        .env("WARDEN_DEPLOY", "v2\n")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("WARDEN_DEPLOY: deploy id has"));
    drop(d);
    let empty = Daemon::start_with(&config, &[("WARDEN_DEPLOY", "")], &[]);
    let (code, _, _) = get(&empty.url("/healthz")).unwrap();
    assert_eq!(code, 200);
}

#[test]
fn dry_run_records_and_reports_what_would_run_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let receiver = Receiver::start();
    let d = Daemon::start_with(
        &hooks_config(dir.path(), &receiver.url(), &target.url("/health")),
        &[],
        &["--dry-run"],
    );
    let outcomes = wait(Duration::from_secs(15), "two dry-run outcomes", || {
        let h = with_status(&receiver, "hook");
        (h.len() >= 2).then_some(h)
    });
    for b in &outcomes {
        assert_eq!(b["hook"]["dry_run"], true, "{b:#}");
        assert_eq!(b["hook"]["exit_code"], serde_json::Value::Null);
    }
    assert!(
        !dir.path().join("hooks.log").exists(),
        "a dry run ran a command"
    );
    assert_eq!(
        metric(
            &d,
            "warden_hook_runs_total",
            &[("hook", "rollback"), ("outcome", "dry_run")]
        ),
        Some(1.0)
    );
}

#[test]
fn a_restart_resumes_a_firing_alert_without_paging_again() {
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let receiver = Receiver::start();
    let config = paged_api(&receiver.url(), &target.url("/health"));
    let env = [("STATE_DIRECTORY", state_dir)];
    let mut first = Daemon::start_with(&config, &env, &[]);
    wait(Duration::from_secs(15), "the page", || {
        (!with_status(&receiver, "firing").is_empty()).then_some(())
    });
    let paged = with_status(&receiver, "firing")[0]["dedup_key"].clone();
    assert_eq!(first.terminate(Duration::from_secs(20)), Some(0));
    assert!(
        with_status(&receiver, "resolved").is_empty(),
        "a shutdown must not resolve"
    );

    let second = Daemon::start_with(&config, &env, &[]);
    second.wait_rule_state("api-down", "critical", Duration::from_secs(10));
    assert_eq!(
        metric(&second, "warden_alerts_firing", &[("severity", "critical")]),
        Some(1.0)
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        with_status(&receiver, "firing").len(),
        1,
        "paged again after a restart"
    );

    target.set_json("/health", 200, json!({}));
    let resolved = wait(Duration::from_secs(10), "the resolve", || {
        let r = with_status(&receiver, "resolved");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(short_dedup(&resolved[0]), "warden/api-down/1");
    assert_eq!(
        resolved[0]["dedup_key"], paged,
        "the resolve after the restart names the page's key"
    );
    assert!(alerts(&second).is_empty());
}

/// `GET /api/v1/alerts`: the alerts firing now.
fn alerts(d: &Daemon) -> Vec<serde_json::Value> {
    let (code, _, body) = get(&d.url("/api/v1/alerts")).expect("GET alerts");
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("alerts are JSON");
    doc["alerts"].as_array().expect("an alerts array").clone()
}

#[test]
fn alertmanager_holds_the_alert_while_it_fires_and_hears_the_resolve() {
    let am = Alertmanager::start();
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let config = format!(
        r#"
[alerting]
critical = ["am"]

[[notifier]]
name = "am"
kind = "alertmanager"
url = "{am}"
resend_every = "1s"
{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
labels = {{ team = "web" }}
"#,
        am = am.url(),
        check = api_check(&target.url("/health")),
    );
    let d = Daemon::start(&config);
    let alerts_url = format!("{}/api/v2/alerts?active=true", am.url());
    let active = |am_url: &str| -> Vec<serde_json::Value> {
        let (_, _, body) = get(am_url).expect("GET alerts");
        serde_json::from_str::<Vec<serde_json::Value>>(&body).unwrap_or_default()
    };
    let alert = wait(Duration::from_secs(15), "the alert in Alertmanager", || {
        active(&alerts_url)
            .into_iter()
            .find(|a| a["labels"]["alertname"] == "api-down")
    });
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["team"], "web");
    wait(Duration::from_secs(10), "re-sends", || {
        let sent = metric(
            &d,
            "warden_notifications_total",
            &[("notifier", "am"), ("result", "sent")],
        )?;
        (sent >= 3.0).then_some(())
    });
    target.set_json("/health", 200, json!({}));
    wait(
        Duration::from_secs(15),
        "the alert to leave Alertmanager",
        || {
            (!active(&alerts_url)
                .iter()
                .any(|a| a["labels"]["alertname"] == "api-down"))
            .then_some(())
        },
    );
}

#[test]
fn email_pages_reach_a_real_smtp_sink() {
    let sink = SmtpSink::start();
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let config = format!(
        r#"
[alerting]
critical = ["mail"]

[[notifier]]
name = "mail"
kind = "email"
smtp = "{smtp}"
tls = "none"
from = "warden <warden@example.com>"
to = ["oncall@example.com"]
{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
"#,
        smtp = sink.address(),
        check = api_check(&target.url("/health")),
    );
    let _d = Daemon::start(&config);
    let mails = sink.wait_for(1, Duration::from_secs(20));
    let subject = mails[0].header("Subject").unwrap_or_default().to_string();
    assert!(
        subject.contains("CRITICAL") && subject.contains("api-down"),
        "{subject}"
    );
}

/// `rules` HTTP checks and rules, each with its own hook writing one line; kill -9 warden
/// while pages are being delivered (the receiver is slow) and hooks run, restart it on the
/// same state, and count.
#[test]
fn kill_9_mid_burst_loses_no_page_and_runs_no_hook_twice() {
    const RULES: usize = 24;
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_string();
    let log = state.path().join("hooks.log");
    let target = HttpTarget::start();
    for i in 0..RULES {
        target.set_json(&format!("/s{i}"), 200, json!({}));
    }
    let receiver = Receiver::start();
    receiver.delay(Duration::from_millis(150));
    let mut config = ops_pager(&receiver.url());
    for i in 0..RULES {
        config.push_str(&format!(
            r#"
[[hook]]
name = "h{i}"
shell = "echo s{i}-down $WARDEN_DEDUP_KEY >> {log}; sleep 1"
cooldown = "0s"
timeout = "20s"

[[check]]
name = "s{i}"
kind = "http"
url = "{url}"
interval = "300ms"
timeout = "250ms"

[[rule]]
name = "s{i}-down"
check = "s{i}"
critical = {{ when = "< 1" }}
hooks = [{{ hook = "h{i}" }}]
"#,
            log = log.display(),
            url = target.url(&format!("/s{i}")),
        ));
    }
    let env = [("STATE_DIRECTORY", state_dir.as_str())];
    let mut first = Daemon::start_with(&config, &env, &[]);
    for i in 0..RULES {
        first.wait_rule_state(&format!("s{i}-down"), "ok", Duration::from_secs(20));
    }
    for i in 0..RULES {
        target.set_json(&format!("/s{i}"), 500, json!({}));
    }
    wait(Duration::from_secs(20), "the burst to be under way", || {
        (with_status(&receiver, "firing").len() >= 4).then_some(())
    });
    first.child.kill().expect("kill -9 warden");
    let _ = first.child.wait();
    let at_kill = (with_status(&receiver, "firing").len(), lines(&log).len());

    let second = Daemon::start_with(&config, &env, &[]);
    let expected: BTreeSet<String> = (0..RULES).map(|i| format!("warden/s{i}-down/1")).collect();
    // Alerts whose hook was reported interrupted: its run was recorded `started` before the
    // kill and is never run again (at most once), whether or not its process got to run.
    let interrupted = || -> BTreeSet<String> {
        with_status(&receiver, "hook")
            .iter()
            .filter(|b| b["hook"]["exit_code"].is_null())
            .map(|b| b["alert"].as_str().unwrap().to_string())
            .collect()
    };
    // Each alert's hook either ran (its line) or was reported interrupted.
    let accounted = || -> bool {
        let ran = lines(&log);
        let reported = interrupted();
        (0..RULES).all(|i| {
            let alert = format!("s{i}-down");
            reported.contains(&alert) || ran.iter().any(|l| l.starts_with(&format!("{alert} ")))
        })
    };
    // Bounded; whatever is missing then is named by the assertions below.
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let keys: BTreeSet<String> = with_status(&receiver, "firing")
            .iter()
            .map(short_dedup)
            .collect();
        if keys.is_superset(&expected) && accounted() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let stragglers (a page twice, a hook twice) show up if they were going to.
    std::thread::sleep(Duration::from_secs(3));
    let log_tail = || {
        let log = second.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };

    let firing = with_status(&receiver, "firing");
    let full: BTreeSet<String> = firing
        .iter()
        .map(|b| b["dedup_key"].as_str().unwrap().to_string())
        .collect();
    let keys: BTreeSet<String> = full.iter().map(|k| short_key(k)).collect();
    assert_eq!(
        keys,
        expected,
        "every alert paged, none paged as a new incident after the restart\n{}",
        log_tail()
    );
    // The restart kept the instance and the epoch: one full key per alert.
    assert_eq!(full.len(), keys.len(), "{full:#?}");
    // At least once: a page whose delivery was in flight at the kill may arrive twice (at
    // most the outbox's concurrency); receivers collapse those by dedup key.
    let duplicates = firing.len() - keys.len();
    assert!(duplicates <= 4, "{duplicates} duplicate pages");

    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for line in short_lines(&log) {
        *runs.entry(line).or_default() += 1;
    }
    // At most once: no hook ran twice; one that never ran was reported interrupted (its start
    // was recorded just before the kill, its process never spawned).
    let reported = interrupted();
    for i in 0..RULES {
        let alert = format!("s{i}-down");
        let ran = runs
            .get(&format!("{alert} warden/{alert}/1"))
            .copied()
            .unwrap_or(0);
        assert!(ran <= 1, "the hook of {alert} ran {ran} times");
        assert!(
            ran == 1 || reported.contains(&alert),
            "the hook of {alert} never ran and was not reported interrupted\n{}",
            log_tail()
        );
    }
    assert_eq!(runs.len(), runs.values().sum::<usize>(), "{runs:?}");
    assert_eq!(
        metric(&second, "warden_alerts_firing", &[("severity", "critical")]),
        Some(RULES as f64)
    );
    eprintln!(
        "kill -9 after {} pages and {} hook starts; {duplicates} duplicate pages; {} interrupted hook runs reported",
        at_kill.0,
        at_kill.1,
        reported.len()
    );
}

#[test]
fn notify_test_sends_one_test_page_and_says_how_it_went() {
    let receiver = Receiver::start();
    let closed = free_port();
    let (_dir, path) = crate::daemon::write_config(&format!(
        r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"

[[notifier]]
name = "gone"
kind = "webhook"
url = "http://127.0.0.1:{closed}/notify"
timeout = "2s"
"#,
        url = receiver.url()
    ));
    let path = path.to_str().unwrap();
    let out = crate::daemon::warden(&["notify-test", "-c", path, "--notifier", "ops"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("accepted"), "{stdout}");
    let test = with_status(&receiver, "test");
    assert_eq!(test.len(), 1);
    assert_eq!(test[0]["alert"], "warden-notify-test");
    assert!(test[0]["dedup_key"]
        .as_str()
        .unwrap()
        .starts_with("warden/notify-test/ops/"));

    let out = crate::daemon::warden(&["notify-test", "-c", path, "--notifier", "gone"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not delivered") && stderr.contains("gone"),
        "{stderr}"
    );

    let out = crate::daemon::warden(&["notify-test", "-c", path, "--notifier", "nope"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("configured: ops, gone"), "{stderr}");
}

#[test]
fn a_reload_moves_a_notifier_and_the_resolve_follows_it() {
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let (old, new) = (Receiver::start(), Receiver::start());
    let config = |url: &str| paged_api(url, &target.url("/health"));
    let d = Daemon::start(&config(&old.url()));
    let paged = wait(Duration::from_secs(15), "the page", || {
        with_status(&old, "firing").into_iter().next()
    });
    let port = d.port;
    let moved = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        config(&new.url())
    );
    std::fs::write(d.config_path(), moved).unwrap();
    d.signal("HUP");
    wait(Duration::from_secs(15), "the reload", || {
        let applied = metric(&d, "warden_config_reloads_total", &[("result", "applied")])?;
        (applied >= 1.0).then_some(())
    });
    target.set_json("/health", 200, json!({}));
    let resolved = wait(
        Duration::from_secs(15),
        "the resolve at the new URL",
        || {
            let r = with_status(&new, "resolved");
            (!r.is_empty()).then_some(r)
        },
    );
    assert_eq!(short_dedup(&resolved[0]), "warden/api-down/1");
    assert_eq!(
        resolved[0]["dedup_key"], paged["dedup_key"],
        "the resolve names the page's key"
    );
    assert!(
        with_status(&new, "firing").is_empty(),
        "a reload must not page again"
    );
    assert_eq!(old.accepted().len(), 1);
}

/// `silent` (no `notify`, no `[alerting]` route) and `routed` (`notify = ["ops"]`) on one
/// check; `description` is added to `silent` to change it in a reload.
fn unrouted_config(url: &str, target: &str, description: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"
{check}
[[rule]]
name = "routed"
check = "api"
critical = {{ when = "< 1" }}
notify = ["ops"]

[[rule]]
name = "silent"
check = "api"
critical = {{ when = "< 1" }}
{description}
"#,
        check = api_check(target),
    )
}

/// Issue 11 item 5: an alert that fired with no notifier on its route reached nobody, and
/// nothing said so. The incident that opens unrouted is logged once at warning level, with
/// the rule, the severity and where to route it; re-evaluations (a reload that changed the
/// rule restarts it from unknown) do not log it again, and a routed rule never logs it.
#[test]
fn an_alert_with_nobody_to_tell_is_warned_about_once() {
    const WARNING: &str = "alert fired with no notifier on its route: nobody is told";
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    let config =
        |description: &str| unrouted_config(&receiver.url(), &target.url("/health"), description);
    let d = Daemon::start(&config(""));
    d.wait_rule_state("silent", "ok", Duration::from_secs(10));
    let warnings = || -> Vec<String> {
        d.log()
            .lines()
            .filter(|l| l.contains(WARNING))
            .map(str::to_string)
            .collect()
    };
    assert!(warnings().is_empty());

    target.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(15), "routed's page", || {
        (!with_status(&receiver, "firing").is_empty()).then_some(())
    });
    let found = wait(Duration::from_secs(10), "the warning", || {
        let w = warnings();
        (!w.is_empty()).then_some(w)
    });
    assert_eq!(found.len(), 1, "{found:?}");
    let line = &found[0];
    assert!(line.contains("WARN"), "{line}");
    let short = short_keys(line);
    for part in [
        "alert=silent",
        "severity=critical",
        "warden/silent/1",
        "[alerting] critical",
        "notify",
    ] {
        assert!(short.contains(part), "{part:?} missing from {line}");
    }

    // A reload that changes `silent` restarts it from unknown; it is evaluated critical again.
    let port = d.port;
    let changed = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        config(r#"description = "changed""#)
    );
    std::fs::write(d.config_path(), changed).unwrap();
    d.signal("HUP");
    wait(Duration::from_secs(15), "the reload", || {
        let applied = metric(&d, "warden_config_reloads_total", &[("result", "applied")])?;
        (applied >= 1.0).then_some(())
    });
    d.wait_rule_state("silent", "critical", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(warnings().len(), 1, "{:?}", warnings());
    let firing: Vec<String> = with_status(&receiver, "firing")
        .iter()
        .map(|b| b["alert"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        firing,
        ["routed"],
        "the routed rule paged once, silent nobody"
    );
}

/// `rollback-backend` (cooldown 1 h, writes a line to `log`) on `api-down`; pages and hook
/// outcomes go to the webhook at `url`.
fn cooldown_config(log: &Path, url: &str, target: &str) -> String {
    format!(
        r#"
{ops}
[[hook]]
name = "rollback-backend"
shell = "echo rollback $WARDEN_DEDUP_KEY >> {log}"
cooldown = "1h"
timeout = "10s"
{check}
[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
hooks = [{{ hook = "rollback-backend" }}]
"#,
        ops = ops_pager(url),
        log = log.display(),
        check = api_check(target),
    )
}

/// The `hooks` of the alert `rule` in `GET /api/v1/alerts`, once it shows `incident` with a
/// note for every hook in `want`.
fn alert_hooks(d: &Daemon, incident: u64, want: usize) -> Vec<serde_json::Value> {
    wait(Duration::from_secs(10), "the hooks on the alert", || {
        let a = alerts(d).into_iter().find(|a| a["incident"] == incident)?;
        let hooks = a["hooks"].as_array()?.clone();
        (hooks.len() >= want).then_some(hooks)
    })
}

/// Issue 13 item 3: a rollback suppressed by its cooldown ran nothing and told nobody (one
/// warning in the log). The second incident within the cooldown now notifies the receivers
/// the page reached, through the outbox, with when the cooldown ends and which run it counts
/// from; `GET /api/v1/alerts` shows it on the alert, and a restart keeps it without telling
/// anyone again.
#[test]
fn a_rollback_skipped_for_its_cooldown_is_notified_and_shown_on_the_alert() {
    let state = tempfile::tempdir().unwrap();
    let env = [("STATE_DIRECTORY", state.path().to_str().unwrap())];
    let log = state.path().join("hooks.log");
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    let config = cooldown_config(&log, &receiver.url(), &target.url("/health"));
    let mut d = Daemon::start_with(&config, &env, &[]);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));

    // Incident 1: the rollback runs, and its outcome is told and shown.
    target.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(15), "the first rollback", || {
        (lines(&log).len() == 1).then_some(())
    });
    let first = wait(Duration::from_secs(10), "its outcome", || {
        with_status(&receiver, "hook").into_iter().next()
    });
    assert_eq!(
        short_dedup(&first),
        "warden/api-down/1/hook/rollback-backend"
    );
    assert_eq!(first["hook"]["exit_code"], 0);
    assert!(first["hook"].get("skipped").is_none(), "{first}");
    let hooks = alert_hooks(&d, 1, 1);
    assert_eq!(hooks[0]["hook"], "rollback-backend");
    assert_eq!(hooks[0]["outcome"], "success");

    target.set_json("/health", 200, json!({}));
    wait(Duration::from_secs(10), "the resolve", || {
        (!with_status(&receiver, "resolved").is_empty()).then_some(())
    });

    // Incident 2, within the cooldown: nothing runs, and the receiver hears why.
    target.set_json("/health", 500, json!({}));
    let skipped = wait(Duration::from_secs(15), "the skip's notification", || {
        with_status(&receiver, "hook")
            .into_iter()
            .find(|b| short_dedup(b) == "warden/api-down/2/hook/rollback-backend")
    });
    let reason = skipped["hook"]["skipped"].as_str().expect("a reason");
    assert!(
        reason.starts_with("cooldown until ")
            && short_keys(reason).contains(", for warden/api-down/1)"),
        "{reason}"
    );
    let summary = skipped["summary"].as_str().unwrap();
    assert_eq!(
        summary,
        format!("HOOK NOT RUN: rollback-backend for api-down not run: {reason}")
    );
    assert_eq!(skipped["alert"], "api-down");
    assert_eq!(
        short_lines(&log),
        ["rollback warden/api-down/1"],
        "nothing ran"
    );
    let hooks = alert_hooks(&d, 2, 1);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["hook"], "rollback-backend");
    assert_eq!(hooks[0]["outcome"], "skipped");
    assert_eq!(hooks[0]["reason"], reason);
    assert_eq!(
        metric(
            &d,
            "warden_hook_runs_total",
            &[("hook", "rollback-backend"), ("outcome", "skipped")]
        ),
        Some(1.0)
    );

    // A restart on the same state: the alert still shows it, and nobody is told twice.
    assert_eq!(d.terminate(Duration::from_secs(20)), Some(0));
    let d = Daemon::start_with(&config, &env, &[]);
    d.wait_rule_state("api-down", "critical", Duration::from_secs(10));
    assert_eq!(alert_hooks(&d, 2, 1)[0]["reason"], reason);
    std::thread::sleep(Duration::from_secs(2));
    let hook_events = with_status(&receiver, "hook");
    assert_eq!(hook_events.len(), 2, "{hook_events:?}");
    assert_eq!(lines(&log).len(), 1);
}

#[test]
fn a_notifier_renamed_by_a_reload_still_resolves_what_it_paged() {
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let r = Receiver::start();
    let d = Daemon::start(&paged_api(&r.url(), &target.url("/health")));
    let paged = wait(Duration::from_secs(15), "the page", || {
        with_status(&r, "firing").into_iter().next()
    });
    // The reload renames `ops` to `pager` (same receiver): `ops` is no longer configured.
    let port = d.port;
    let renamed = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n{}",
        paged_api(&r.url(), &target.url("/health"))
            .replace("critical = [\"ops\"]", "critical = [\"pager\"]")
            .replace("name = \"ops\"", "name = \"pager\"")
    );
    std::fs::write(d.config_path(), renamed).unwrap();
    d.signal("HUP");
    wait(Duration::from_secs(15), "the reload", || {
        let applied = metric(&d, "warden_config_reloads_total", &[("result", "applied")])?;
        (applied >= 1.0).then_some(())
    });
    target.set_json("/health", 200, json!({}));
    let resolved = wait(Duration::from_secs(15), "the resolve", || {
        with_status(&r, "resolved").into_iter().next()
    });
    assert_eq!(resolved["dedup_key"], paged["dedup_key"]);
    assert!(
        !d.log().contains("notifier no longer configured; not told"),
        "{}",
        d.log()
    );
}

#[test]
fn a_rule_blocked_by_its_dependency_is_evaluated_not_paged_and_named_on_the_parent_page() {
    let db = HttpTarget::start();
    db.set_json("/health", 200, json!({}));
    let api = HttpTarget::start();
    api.set_json("/health", 200, json!({}));
    let r = Receiver::start();
    let text = format!(
        r#"{ops}
[[check]]
name = "db"
kind = "http"
url = "{db}"
interval = "200ms"
timeout = "150ms"

[[check]]
name = "api"
kind = "http"
url = "{api}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "db-down"
check = "db"
critical = {{ when = "< 1" }}

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
depends_on = ["db-down"]
"#,
        ops = ops_pager(&r.url()),
        db = db.url("/health"),
        api = api.url("/health"),
    );
    let d = Daemon::start(&text);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    // Postgres goes down, and the API with it.
    db.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(10), "the db page", || {
        with_status(&r, "firing")
            .into_iter()
            .find(|b| b["alert"] == "db-down")
    });
    api.set_json("/health", 500, json!({}));
    // Evaluated: the API rule is critical, shown blocked, and the db page names it.
    d.wait_rule_state("api-down", "critical", Duration::from_secs(10));
    let named = wait(
        Duration::from_secs(10),
        "the db page naming the API",
        || {
            with_status(&r, "firing").into_iter().find(|b| {
                b["alert"] == "db-down"
                    && b["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("held while this fires (depends_on): api-down"))
            })
        },
    );
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/alerts")).unwrap();
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alerts["blocked"][0]["alert"], "api-down", "{alerts}");
    assert_eq!(alerts["blocked"][0]["blocked_by"][0], "db-down");
    // Both recover: the db page resolves, the API was never paged.
    db.set_json("/health", 200, json!({}));
    api.set_json("/health", 200, json!({}));
    let resolved = wait(Duration::from_secs(10), "the db resolve", || {
        with_status(&r, "resolved")
            .into_iter()
            .find(|b| b["alert"] == "db-down")
    });
    assert_eq!(resolved["dedup_key"], named["dedup_key"]);
    d.wait_rule_state("api-down", "ok", Duration::from_secs(10));
    // The API failing on its own pages at once.
    api.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(10), "the API's own page", || {
        with_status(&r, "firing")
            .into_iter()
            .find(|b| b["alert"] == "api-down")
    });
    let api_pages = with_status(&r, "firing")
        .into_iter()
        .filter(|b| b["alert"] == "api-down")
        .count();
    assert_eq!(api_pages, 1, "the API was paged once: on its own failure");
}
