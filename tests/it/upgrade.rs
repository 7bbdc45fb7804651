//! Upgrades: a state file written by an earlier warden, opened by this one. The file under
//! `tests/fixtures/state/` was written by a real earlier build (its README says how); the
//! store-level checks of the migration are in `src/state/tests.rs`, this is the daemon's side:
//! the incident it left open keeps its key to the resolve, and the next one gets a key of
//! today's form.

use crate::daemon::Daemon;
use crate::harness::receiver::Receiver;

const FIXTURE: &str = "tests/fixtures/state/v1-open-incident.db";

fn bodies(r: &Receiver, status: &str) -> Vec<serde_json::Value> {
    r.accepted()
        .into_iter()
        .filter(|b| b["status"] == status)
        .collect()
}

/// Issue 14: `api-down` fired in incident 1 under a version-1 warden (`warden/api-down/1`),
/// with its page still pending. This warden migrates the file, delivers that page, resolves
/// the incident under the same key once the check is up, and opens the next incident under a
/// key of today's form (instance, epoch, number 2), never reusing number 1.
#[test]
fn an_incident_open_before_the_upgrade_resolves_under_its_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("upgraded.db");
    std::fs::copy(FIXTURE, &state).expect("copy the fixture");
    let receiver = Receiver::start();
    // The check is up: the listener accepts at the kernel level while it lives.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let config = |address: std::net::SocketAddr| {
        format!(
            r#"
[state]
path = "{state}"

[alerting]
instance = "upgraded-1"
critical = ["ops"]

[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"

[[check]]
name = "api"
kind = "tcp"
address = "{address}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1" }}
"#,
            state = state.display(),
            url = receiver.url(),
        )
    };
    let d = Daemon::start(&config(address));

    // The page the old process could not deliver goes out, then the resolve, both under the
    // old key.
    let resolved = d.wait_for("resolve of incident 1", || {
        bodies(&receiver, "resolved").into_iter().next()
    });
    assert_eq!(resolved["dedup_key"], "warden/api-down/1");
    assert_eq!(resolved["alert"], "api-down");
    let firing = bodies(&receiver, "firing");
    assert_eq!(firing.len(), 1, "only the pending page: {firing:?}");
    assert_eq!(firing[0]["dedup_key"], "warden/api-down/1");

    // The check goes down: incident 2, in today's form.
    drop(listener);
    let next = d.wait_for("incident 2", || {
        bodies(&receiver, "firing")
            .into_iter()
            .find(|b| b["dedup_key"] != "warden/api-down/1")
    });
    let key = next["dedup_key"].as_str().unwrap().to_string();
    let rest = key
        .strip_prefix("warden/upgraded-1/api-down/")
        .unwrap_or_else(|| panic!("today's form: {key}"));
    let (epoch, n) = rest.split_once('-').expect("<epoch>-<n>");
    assert!(
        !epoch.is_empty() && epoch.chars().all(|c| c.is_ascii_alphanumeric()),
        "{key}"
    );
    assert_eq!(n, "2", "numbering goes on from the old incident: {key}");
}
