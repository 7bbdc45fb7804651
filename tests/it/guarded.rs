//! Guarded rollback through the real daemon (issue 17): `api-errors` rolls back only while
//! `api-health` agrees (`confirm`), and after the rollback warden checks that the alert
//! resolved within `verify`; if not, the alert's notifiers are paged that it did not help,
//! and it does not roll back again. The hook is a shell command appending to a file; pages go
//! to a webhook receiver.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::daemon::{get, Daemon};
use crate::harness::receiver::Receiver;
use crate::harness::{short_key, short_keys};
use crate::paging::{ops_pager, wait};
use crate::target::HttpTarget;

/// Two checks on `target` (`/errors`, `/health`), a rule on each (critical when the probe
/// fails), `rollback-api` on `api-errors` after 1 s, confirmed by `api-health`, verified for
/// 3 s; pages and outcomes go to `url`.
fn guarded_config(log: &Path, url: &str, target: &HttpTarget) -> String {
    format!(
        r#"
{ops}
[[hook]]
name = "rollback-api"
shell = "echo rollback $WARDEN_DEDUP_KEY >> {log}"
cooldown = "0s"
timeout = "10s"

[[check]]
name = "errors"
kind = "http"
url = "{errors}"
interval = "200ms"
timeout = "150ms"

[[check]]
name = "health"
kind = "http"
url = "{health}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-errors"
check = "errors"
critical = {{ when = "< 1" }}
hooks = [{{ hook = "rollback-api", on = "critical", after = "1s", confirm = ["api-health"], verify = "3s" }}]

[[rule]]
name = "api-health"
check = "health"
critical = {{ when = "< 1" }}
"#,
        ops = ops_pager(url),
        log = log.display(),
        errors = target.url("/errors"),
        health = target.url("/health"),
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(short_keys)
        .collect()
}

fn hook_events(r: &Receiver) -> Vec<serde_json::Value> {
    r.accepted()
        .into_iter()
        .filter(|b| b["status"] == "hook")
        .collect()
}

fn not_helped(r: &Receiver) -> Vec<serde_json::Value> {
    hook_events(r)
        .into_iter()
        .filter(|b| b["hook"].get("not_helped").is_some())
        .collect()
}

/// The `hooks` of the firing alert `rule` in `GET /api/v1/alerts`.
fn hooks_on(d: &Daemon, rule: &str) -> Option<Vec<serde_json::Value>> {
    let (code, _, body) = get(&d.url("/api/v1/alerts")).ok()?;
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).ok()?;
    let alert = doc["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["alert"] == rule)?
        .clone();
    alert["hooks"].as_array().cloned()
}

fn start(dir: &Path) -> (HttpTarget, Receiver, Daemon) {
    let target = HttpTarget::start();
    target.set_json("/errors", 200, json!({}));
    target.set_json("/health", 200, json!({}));
    let receiver = Receiver::start();
    let log = dir.join("hooks.log");
    let d = Daemon::start(&guarded_config(&log, &receiver.url(), &target));
    d.wait_rule_state("api-errors", "ok", Duration::from_secs(10));
    d.wait_rule_state("api-health", "ok", Duration::from_secs(10));
    (target, receiver, d)
}

/// Unconfirmed, the rollback waits; confirmed, it runs; still failing after `verify`, the
/// pager hears "did not help" under the incident's key, the alert shows it, and nothing runs
/// again.
#[test]
fn guarded_rollback_waits_for_confirmation_and_pages_when_it_did_not_help() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let (target, receiver, d) = start(dir.path());

    // The error rate alone: paged, never rolled back.
    target.set_json("/errors", 500, json!({}));
    d.wait_rule_state("api-errors", "critical", Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(3));
    assert!(lines(&log).is_empty(), "unconfirmed: {:?}", lines(&log));
    assert!(hook_events(&receiver).is_empty());

    // Health fails too: the rollback runs at once (its second has long passed), once.
    target.set_json("/health", 500, json!({}));
    wait(Duration::from_secs(10), "the rollback", || {
        (!lines(&log).is_empty()).then_some(())
    });
    assert_eq!(lines(&log), ["rollback warden/api-errors/1"]);
    let hooks = wait(Duration::from_secs(10), "the pending verification", || {
        hooks_on(&d, "api-errors").filter(|h| !h.is_empty())
    });
    assert_eq!(hooks[0]["outcome"], "success");
    assert_eq!(hooks[0]["verify"]["outcome"], "pending", "{hooks:?}");

    // Both still failing 3 s later: "did not help", once, under the incident's own key.
    let page = wait(Duration::from_secs(15), "the did-not-help page", || {
        not_helped(&receiver).into_iter().next()
    });
    assert_eq!(
        short_key(page["dedup_key"].as_str().unwrap()),
        "warden/api-errors/1"
    );
    assert_eq!(page["alert"], "api-errors");
    let summary = page["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("DID NOT HELP: rollback-api for api-errors ran at ")
            && summary.contains("and did not help: api-errors is still critical at ")
            && summary.contains("(and still firing: api-health)")
            && summary.ends_with("; not run again for this incident"),
        "{summary}"
    );
    let hooks = wait(Duration::from_secs(10), "the verdict on the alert", || {
        hooks_on(&d, "api-errors").filter(|h| h[0]["verify"]["outcome"] == "not_helped")
    });
    assert_eq!(hooks.len(), 1);

    // Still failing: no second rollback, no second page.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lines(&log), ["rollback warden/api-errors/1"]);
    assert_eq!(not_helped(&receiver).len(), 1);

    // Recovery resolves the incident as usual.
    target.set_json("/errors", 200, json!({}));
    target.set_json("/health", 200, json!({}));
    wait(Duration::from_secs(10), "the resolve", || {
        receiver
            .accepted()
            .iter()
            .any(|b| b["status"] == "resolved" && b["alert"] == "api-errors")
            .then_some(())
    });
}

/// A rollback after which both rules recover within `verify`: the incident resolves and
/// nobody hears "did not help".
#[test]
fn guarded_rollback_that_helped_pages_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hooks.log");
    let (target, receiver, d) = start(dir.path());

    target.set_json("/health", 500, json!({}));
    target.set_json("/errors", 500, json!({}));
    wait(Duration::from_secs(15), "the rollback", || {
        (!lines(&log).is_empty()).then_some(())
    });
    // The rollback worked.
    target.set_json("/errors", 200, json!({}));
    target.set_json("/health", 200, json!({}));
    d.wait_rule_state("api-errors", "ok", Duration::from_secs(10));
    wait(Duration::from_secs(10), "the resolve", || {
        receiver
            .accepted()
            .iter()
            .any(|b| b["status"] == "resolved" && b["alert"] == "api-errors")
            .then_some(())
    });
    // Past the 3 s verify time: nothing more.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        not_helped(&receiver).is_empty(),
        "{:?}",
        receiver.accepted()
    );
    assert_eq!(lines(&log), ["rollback warden/api-errors/1"]);
    let outcome = hook_events(&receiver);
    assert_eq!(outcome.len(), 1, "{outcome:?}");
    assert_eq!(outcome[0]["hook"]["exit_code"], 0);
}
