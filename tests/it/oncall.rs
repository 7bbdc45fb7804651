//! On-call policies through the real daemon: steps (tell chat now, page if still firing and
//! unacknowledged after a delay) and `warden ack`, to real receivers. The timing of steps,
//! repeats and business hours across a weekend and a DST change is the unit tests'
//! (controllable clock, `src/actions/tests.rs`, `src/config/policy.rs`).

use std::time::Duration;

use serde_json::json;

use crate::daemon::{warden_within, Daemon};
use crate::harness::receiver::Receiver;
use crate::paging::wait;
use crate::target::HttpTarget;

fn config(chat: &str, pager: &str, target: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "chat"
kind = "webhook"
url = "{chat}"

[[notifier]]
name = "pager"
kind = "webhook"
url = "{pager}"

[[policy]]
name = "P1"
[[policy.step]]
notify = ["chat"]
[[policy.step]]
after = "3s"
notify = ["pager"]

[[check]]
name = "api"
kind = "http"
url = "{target}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
policy = "P1"
"#
    )
}

fn firing(r: &Receiver) -> Vec<serde_json::Value> {
    r.accepted()
        .into_iter()
        .filter(|b| b["status"] == "firing")
        .collect()
}

#[test]
fn a_p1_alert_tells_chat_at_once_and_pages_when_still_firing_unacknowledged() {
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let (chat, pager) = (Receiver::start(), Receiver::start());
    let d = Daemon::start(&config(&chat.url(), &pager.url(), &target.url("/health")));
    let told = wait(Duration::from_secs(10), "chat", || {
        firing(&chat).into_iter().next()
    });
    let paged = wait(
        Duration::from_secs(15),
        "the escalation to the pager",
        || firing(&pager).into_iter().next(),
    );
    assert_eq!(paged["dedup_key"], told["dedup_key"], "one incident");
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/alerts")).unwrap();
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alerts["alerts"][0]["policy"]["steps_sent"], json!([0, 1]));
    // Both hear the resolve.
    target.set_json("/health", 200, json!({}));
    for r in [&chat, &pager] {
        wait(Duration::from_secs(10), "the resolve", || {
            r.accepted().into_iter().find(|b| b["status"] == "resolved")
        });
    }
}

#[test]
fn an_acknowledged_alert_is_not_escalated() {
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let (chat, pager) = (Receiver::start(), Receiver::start());
    let d = Daemon::start(&config(&chat.url(), &pager.url(), &target.url("/health")));
    wait(Duration::from_secs(10), "chat", || {
        firing(&chat).into_iter().next()
    });
    let out = warden_within(
        &[
            "ack",
            "-c",
            d.config_path().to_str().unwrap(),
            "--by",
            "alice",
            "api-down",
        ],
        Duration::from_secs(20),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("acknowledged api-down (by alice)"),
        "{stdout}"
    );
    // Past the 3 s step: the alert stays acknowledged with only its first step sent.
    let alert = wait(
        Duration::from_secs(15),
        "the escalation time to pass",
        || {
            let (_, _, body) = crate::daemon::get(&d.url("/api/v1/alerts")).ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            let since = v["alerts"][0]["since"].as_str()?.to_string();
            let started = humantime::parse_rfc3339(&since).ok()?;
            let elapsed = warden::clock::Clock::system().now().as_millis()
                - started
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_millis() as i64;
            (elapsed > 5_000).then_some(v["alerts"][0].clone())
        },
    );
    assert_eq!(alert["ack"]["by"], "alice");
    assert_eq!(alert["policy"]["steps_sent"], json!([0]));
    assert!(
        pager.accepted().is_empty(),
        "acknowledged: the pager was not woken"
    );
    // An acknowledged incident still resolves, to whoever it reached.
    target.set_json("/health", 200, json!({}));
    wait(
        Duration::from_secs(10),
        "the resolve of the acknowledged alert",
        || {
            chat.accepted()
                .into_iter()
                .find(|b| b["status"] == "resolved")
        },
    );
    assert!(pager.accepted().is_empty());
    // An unknown alert is refused.
    let out = warden_within(
        &["ack", "-c", d.config_path().to_str().unwrap(), "nope"],
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no firing alert \"nope\""));
}

#[test]
fn the_link_in_a_page_acknowledges_it_with_a_post_never_a_get() {
    let target = HttpTarget::start();
    target.set_json("/health", 500, json!({}));
    let (chat, pager) = (Receiver::start(), Receiver::start());
    // The listen address comes from WARDEN_LISTEN, which `start_file` sets to a free port.
    let text = format!(
        "[server]\nlisten = \"${{WARDEN_LISTEN}}\"\n\n[alerting]\nexternal_url = \"http://${{WARDEN_LISTEN}}\"\n{}",
        config(&chat.url(), &pager.url(), &target.url("/health"))
    );
    let (_dir, path) = crate::daemon::write_config(&text);
    let d = Daemon::start_file(&path, &[]);
    let port = d.port;
    let page = wait(Duration::from_secs(10), "chat", || {
        firing(&chat).into_iter().next()
    });
    let url = page["ack_url"]
        .as_str()
        .expect("the page carries the link")
        .to_string();
    assert!(
        url.starts_with(&format!("http://127.0.0.1:{port}/api/v1/ack?key=")),
        "{url}"
    );
    // A GET (a chat app unfurling the link) shows a button and acknowledges nothing.
    let (code, ct, body) = crate::daemon::get(&url).unwrap();
    assert_eq!(code, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(body.contains("<form method=\"post\""), "{body}");
    let (_, _, alerts) = crate::daemon::get(&d.url("/api/v1/alerts")).unwrap();
    assert!(!alerts.contains("\"ack\""), "{alerts}");
    // A tampered link is refused; the real one acknowledges, without a token.
    let (code, _) = crate::daemon::post(&url.replace("&sig=", "&sig=0"), None).unwrap();
    assert_eq!(code, 403);
    let (code, body) = crate::daemon::post(&url, None).unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, _, alerts) = crate::daemon::get(&d.url("/api/v1/alerts")).unwrap();
    let alerts: serde_json::Value = serde_json::from_str(&alerts).unwrap();
    assert_eq!(alerts["alerts"][0]["ack"]["by"], "an acknowledgement link");
}

/// Two rules of one team behind a policy grouping by team, each reading its own target.
fn grouped_config(chat: &str, db: &str, replica: &str, wait: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "chat"
kind = "webhook"
url = "{chat}"

[[policy]]
name = "db-team"
group_by = ["team"]
group_wait = "{wait}"
group_interval = "1s"
[[policy.step]]
notify = ["chat"]

[[check]]
name = "db"
kind = "http"
url = "{db}"
interval = "200ms"
timeout = "150ms"

[[check]]
name = "replica"
kind = "http"
url = "{replica}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "db-down"
check = "db"
labels = {{ team = "db" }}
critical = {{ when = "< 1" }}
policy = "db-team"

[[rule]]
name = "replica-down"
check = "replica"
labels = {{ team = "db" }}
critical = {{ when = "< 1" }}
policy = "db-team"
"#
    )
}

/// A target whose health endpoint answers 500.
fn failing_target() -> HttpTarget {
    let t = HttpTarget::start();
    t.set_json("/health", 500, json!({}));
    t
}

/// What a page of the group says while both its alerts fire.
fn both_firing() -> Vec<(String, String)> {
    ["db-down", "replica-down"]
        .map(|a| (a.to_string(), "firing".to_string()))
        .to_vec()
}

fn members(body: &serde_json::Value) -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = body["group"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["alert"].as_str().unwrap_or_default().to_string(),
                        e["status"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    m.sort();
    m
}

#[test]
fn alerts_of_one_group_reach_the_receiver_as_one_page_and_one_resolve() {
    let (db, replica) = (failing_target(), failing_target());
    let chat = Receiver::start();
    let d = Daemon::start(&grouped_config(
        &chat.url(),
        &db.url("/health"),
        &replica.url("/health"),
        "2s",
    ));
    let page = wait(Duration::from_secs(15), "the group's page", || {
        firing(&chat).into_iter().next()
    });
    assert_eq!(members(&page), both_firing(), "{page}");
    assert_eq!(page["group"]["labels"], json!({"team": "db"}));
    let key = page["dedup_key"].as_str().unwrap().to_string();
    assert!(key.contains("/group/db-team/"), "{key}");
    let (_, _, body) = crate::daemon::get(&d.url("/api/v1/alerts")).unwrap();
    let alerts: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alerts["groups"][0]["dedup_key"], json!(key));
    db.set_json("/health", 200, json!({}));
    replica.set_json("/health", 200, json!({}));
    let resolve = wait(Duration::from_secs(15), "the group's resolve", || {
        chat.accepted()
            .into_iter()
            .find(|b| b["status"] == "resolved")
    });
    assert_eq!(resolve["dedup_key"], json!(key), "the page's own resolve");
    let firing_pages = firing(&chat);
    assert!(
        firing_pages.iter().all(|b| b["dedup_key"] == json!(key)),
        "every page of the two alerts is the group's: {firing_pages:?}"
    );
    // Each alert is told resolved exactly once, in some notification of the group.
    let resolved: Vec<(String, String)> = chat
        .accepted()
        .iter()
        .flat_map(members)
        .filter(|(_, s)| s == "resolved")
        .collect();
    assert_eq!(resolved.len(), 2, "{resolved:?}");
}

#[test]
fn a_page_waiting_in_its_group_is_sent_after_a_restart() {
    let (db, replica) = (failing_target(), failing_target());
    let chat = Receiver::start();
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap().to_string();
    // A long group_wait: the group is pending when warden stops.
    let text = grouped_config(
        &chat.url(),
        &db.url("/health"),
        &replica.url("/health"),
        "6s",
    );
    let mut first = Daemon::start_with(&text, &[("STATE_DIRECTORY", &state_dir)], &[]);
    first.wait_for("both alerts in the pending group", || {
        let (_, _, body) = crate::daemon::get(&first.url("/api/v1/alerts")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (v["groups"][0]["alerts"].as_array()?.len() == 2).then_some(())
    });
    assert!(firing(&chat).is_empty(), "group_wait has not passed");
    assert!(first.terminate(Duration::from_secs(10)).is_some());
    // Both still fail: the restarted warden must send the page it owed, once.
    let _second = Daemon::start_with(&text, &[("STATE_DIRECTORY", &state_dir)], &[]);
    let page = wait(Duration::from_secs(20), "the page owed from before", || {
        firing(&chat).into_iter().next()
    });
    assert_eq!(members(&page), both_firing());
    assert_eq!(firing(&chat).len(), 1, "one page for the group");
}
