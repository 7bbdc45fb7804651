//! The store against real SQLite files in temp dirs: migration (from an empty file and from
//! a file an earlier warden wrote), locking, the outbox bound and order, restart recovery,
//! pruning, alert records by `(rule, labels)` and those that no longer decode, and the
//! identity the file remembers.

use super::*;
use crate::alert::{EventKind, Identity, Severity};
use crate::state::LOAD_FINISHED;

pub(crate) fn event(key: &str, n: u32) -> Event {
    Event {
        value_name: None,
        kind: EventKind::Firing,
        alert: key.to_string(),
        series: Default::default(),
        check: "api".into(),
        severity: Severity::Critical,
        value: Some(n as f64),
        threshold: Some(1.0),
        condition: Some("> 1".into()),
        description: None,
        labels: BTreeMap::new(),
        since: "2026-01-01T00:00:00.000Z".into(),
        at: "2026-01-01T00:00:00.000Z".into(),
        deploy: None,
        dedup_key: format!("warden/{key}/1"),
        hook: None,
        ack_url: None,
        group: None,
    }
}

fn open(dir: &tempfile::TempDir) -> (Store, Recovery) {
    Store::open(&dir.path().join("warden.db"), Timestamp(1_000)).expect("open store")
}

#[tokio::test]
async fn migrates_an_empty_file_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    std::fs::write(&path, b"").unwrap();
    let (store, recovery) = Store::open(&path, Timestamp(0)).expect("empty file migrates");
    assert!(recovery.interrupted_hooks.is_empty() && recovery.pending.is_empty());
    let (version, mode, sync): (i64, String, i64) = store
        .blocking("inspect", |c| {
            Ok((
                c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
            ))
        })
        .unwrap();
    assert_eq!(
        (version, mode.as_str(), sync),
        (MIGRATIONS.len() as i64, "wal", 2)
    );
    drop(store);
    // Opening again is a no-op migration.
    let (store, _) = Store::open(&path, Timestamp(0)).expect("reopen");
    let newer = MIGRATIONS.len() as i64 + 1;
    store
        .blocking("bump", |c| c.pragma_update(None, "user_version", newer))
        .unwrap();
    drop(store);
    let err = Store::open(&path, Timestamp(0)).unwrap_err().to_string();
    assert!(
        err.contains(&format!("schema version {newer} is newer")) && err.contains("warden.db"),
        "{err}"
    );
}

#[test]
fn one_process_per_state_file_and_garbage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let (first, _) = Store::open(&path, Timestamp(0)).unwrap();
    let err = Store::open(&path, Timestamp(0)).unwrap_err().to_string();
    assert!(
        err.contains(
            "warden.db.lock is held by another process; is another warden using this state file?"
        ),
        "{err}"
    );
    drop(first);
    Store::open(&path, Timestamp(0)).expect("the lock went with the first store");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
    let err = Store::open(&junk, Timestamp(0)).unwrap_err().to_string();
    assert!(
        err.contains("junk.db") && err.contains("not a database"),
        "{err}"
    );
}

#[test]
fn a_missing_directory_is_named() {
    let err = Store::open(Path::new("/nonexistent/dir/warden.db"), Timestamp(0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "state store /nonexistent/dir/warden.db: open: directory /nonexistent/dir does not exist"
    );
}

#[tokio::test]
async fn only_the_head_of_each_key_is_due_and_busy_keys_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let sinks = vec!["pd".to_string()];
    let batch = Batch {
        alerts: vec![],
        events: vec![
            (event("a", 1), sinks.clone()),
            (event("b", 1), sinks.clone()),
            (event("a", 2), sinks.clone()),
        ],
        windows: Vec::new(),
        groups: Vec::new(),
    };
    let c = store.commit(batch, Timestamp(5_000), 100).await.unwrap();
    assert_eq!(c.ids.len(), 3);
    let p = store
        .poll("pd", Timestamp(5_000), vec![], 10)
        .await
        .unwrap();
    let keys: Vec<_> = p.due.iter().map(|r| (r.dedup_key.as_str(), r.id)).collect();
    assert_eq!(keys, [("warden/a/1", c.ids[0]), ("warden/b/1", c.ids[1])]);
    assert_eq!((p.depth, p.oldest), (3, Some(Timestamp(5_000))));
    // Key a is in flight: only b is due.
    let p = store
        .poll("pd", Timestamp(5_000), vec!["warden/a/1".into()], 10)
        .await
        .unwrap();
    assert_eq!(p.due.len(), 1);
    assert_eq!(p.due[0].dedup_key, "warden/b/1");
    // a's head waits for a retry: a's second event is not due before it, b is.
    store
        .mark_retry(c.ids[0], Timestamp(9_000), "503".into())
        .await
        .unwrap();
    let p = store
        .poll("pd", Timestamp(6_000), vec![], 10)
        .await
        .unwrap();
    let ids: Vec<_> = p.due.iter().map(|r| r.id).collect();
    assert_eq!(ids, [c.ids[1]]);
    assert_eq!(p.next_due, Some(Timestamp(9_000)));
    // Once a's head is delivered, its second event becomes the head.
    store
        .mark_delivered(c.ids[0], Timestamp(9_000))
        .await
        .unwrap();
    let p = store
        .poll("pd", Timestamp(9_000), vec![], 10)
        .await
        .unwrap();
    let ids: Vec<_> = p.due.iter().map(|r| r.id).collect();
    assert_eq!(ids, [c.ids[1], c.ids[2]]);
    // Another sink's rows are its own.
    let p = store
        .poll("slack", Timestamp(9_000), vec![], 10)
        .await
        .unwrap();
    assert_eq!((p.due.len(), p.depth), (0, 0));
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_pending_rows_of_that_sink() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let mut ids = Vec::new();
    for n in 0..5 {
        let batch = Batch {
            alerts: vec![],
            events: vec![(event(&format!("k{n}"), n), vec!["pd".into()])],
            windows: Vec::new(),
            groups: Vec::new(),
        };
        let c = store
            .commit(batch, Timestamp(1_000 + n as i64), 3)
            .await
            .unwrap();
        if n < 3 {
            assert!(c.dropped.is_empty());
        } else {
            let d: Vec<_> = c.dropped.iter().map(|d| d.id).collect();
            assert_eq!(d, [ids[n as usize - 3]], "event {n}");
            assert_eq!(c.dropped[0].sink, "pd");
        }
        ids.extend(c.ids);
    }
    // Another sink is not affected by pd's bound.
    let c = store
        .commit(
            Batch {
                alerts: vec![],
                events: vec![(event("x", 0), vec!["slack".into()])],
                windows: Vec::new(),
                groups: Vec::new(),
            },
            Timestamp(2_000),
            3,
        )
        .await
        .unwrap();
    assert!(c.dropped.is_empty());
    let states: Vec<_> = store
        .rows_blocking("pd")
        .unwrap()
        .into_iter()
        .map(|r| r.state)
        .collect();
    use RowState::*;
    assert_eq!(states, [Dropped, Dropped, Pending, Pending, Pending]);
}

#[tokio::test]
async fn one_batch_beyond_the_bound_keeps_its_newest_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let events = (0..5)
        .map(|n| (event(&format!("k{n}"), n), vec!["pd".to_string()]))
        .collect();
    let c = store
        .commit(
            Batch {
                alerts: vec![],
                events,
                windows: Vec::new(),
                groups: Vec::new(),
            },
            Timestamp(1_000),
            3,
        )
        .await
        .unwrap();
    let dropped: Vec<_> = c.dropped.iter().map(|d| d.id).collect();
    assert_eq!(dropped, c.ids[..2]);
    let p = store
        .poll("pd", Timestamp(1_000), vec![], 10)
        .await
        .unwrap();
    assert_eq!(p.depth, 3);
}

#[tokio::test]
async fn restart_resumes_pending_rows_and_interrupts_started_hook_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let c = store
        .commit(
            Batch {
                alerts: vec![(
                    AlertId::rule("api-down"),
                    serde_json::json!({"incident": 3}),
                )],
                events: vec![(event("a", 1), vec!["pd".into(), "slack".into()])],
                windows: Vec::new(),
                groups: Vec::new(),
            },
            Timestamp(1_000),
            100,
        )
        .await
        .unwrap();
    store
        .mark_delivered(c.ids[1], Timestamp(1_100))
        .await
        .unwrap();
    let admitted = store
        .begin_hook_run(
            "rollback",
            "warden/a/1",
            Timestamp(1_200),
            Duration::ZERO,
            false,
            &["kubectl".into()],
            &event("a", 1),
        )
        .await
        .unwrap();
    assert!(matches!(admitted, Admission::Started { .. }));
    drop(store);

    let (store, recovery) =
        Store::open(&dir.path().join("warden.db"), Timestamp(5_000)).expect("reopen");
    assert_eq!(
        recovery.pending.into_iter().collect::<Vec<_>>(),
        [("pd".to_string(), 1)]
    );
    assert_eq!(recovery.interrupted_hooks.len(), 1);
    let run = &recovery.interrupted_hooks[0];
    assert_eq!(
        (run.hook.as_str(), run.state, run.finished_at),
        (
            "rollback",
            HookRunState::Interrupted,
            Some(Timestamp(5_000))
        )
    );
    assert_eq!(run.event.as_ref().map(|e| e.alert.as_str()), Some("a"));
    let p = store
        .poll("pd", Timestamp(5_000), vec![], 10)
        .await
        .unwrap();
    assert_eq!(p.due.len(), 1);
    let alerts: BTreeMap<AlertId, serde_json::Value> = store.load_alerts().await.unwrap();
    assert_eq!(alerts[&AlertId::rule("api-down")]["incident"], 3);
    // The interrupted run still counts for its incident: it is never re-run.
    let again = store
        .begin_hook_run(
            "rollback",
            "warden/a/1",
            Timestamp(6_000),
            Duration::ZERO,
            false,
            &[],
            &event("a", 1),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Admission::Skipped(SkipReason::AlreadyRanForIncident { run: run.id })
    );
}

#[tokio::test]
async fn prune_deletes_only_finished_rows_past_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let batch = Batch {
        alerts: vec![],
        events: vec![
            (event("a", 1), vec!["pd".into()]),
            (event("b", 1), vec!["pd".into()]),
        ],
        windows: Vec::new(),
        groups: Vec::new(),
    };
    let c = store.commit(batch, Timestamp(1_000), 100).await.unwrap();
    store
        .mark_delivered(c.ids[0], Timestamp(2_000))
        .await
        .unwrap();
    let started = store
        .begin_hook_run(
            "h",
            "i",
            Timestamp(2_000),
            Duration::ZERO,
            false,
            &[],
            &event("a", 1),
        )
        .await
        .unwrap();
    let Admission::Started { run } = started else {
        panic!("{started:?}")
    };
    // Too early for the rows, and a started hook run is never pruned.
    assert_eq!(
        store
            .prune(Timestamp(2_000), Timestamp(9_000))
            .await
            .unwrap(),
        0
    );
    store
        .finish_hook_run(run, Timestamp(3_000), HookFinish::default())
        .await
        .unwrap();
    assert_eq!(
        store
            .prune(Timestamp(2_001), Timestamp(3_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .prune(Timestamp(9_000), Timestamp(3_001))
            .await
            .unwrap(),
        1
    );
    let left: Vec<_> = store
        .rows_blocking("pd")
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [c.ids[1]]);
    assert!(store.hook_runs("h").await.unwrap().is_empty());
}

fn labelled(rule: &str, pairs: &[(&str, &str)]) -> AlertId {
    let labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AlertId::new(rule, labels)
}

#[tokio::test]
async fn undecodable_alert_state_is_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let good = AlertId::rule("good");
    store
        .save_alert(&good, &serde_json::json!({"n": 1}), Timestamp(1))
        .await
        .unwrap();
    store
        .save_alert(&AlertId::rule("bad"), &"a string", Timestamp(1))
        .await
        .unwrap();
    // Labels that are not a label set: left out whatever the record says.
    store
        .blocking("insert", |c| {
            c.execute(
                "INSERT INTO alerts (rule, labels, state, updated_at)
                 VALUES ('odd', '[1]', '{\"n\": 2}', 1)",
                [],
            )
        })
        .unwrap();
    #[derive(serde::Deserialize)]
    struct S {
        n: u32,
    }
    let loaded: BTreeMap<AlertId, S> = store.load_alerts().await.unwrap();
    assert_eq!(loaded.keys().collect::<Vec<_>>(), [&good]);
    assert_eq!(loaded[&good].n, 1);
    store.delete_alert(&good).await.unwrap();
    let loaded: BTreeMap<AlertId, serde_json::Value> = store.load_alerts().await.unwrap();
    assert_eq!(loaded.keys().collect::<Vec<_>>(), [&AlertId::rule("bad")]);
}

#[tokio::test]
async fn each_series_of_a_rule_is_its_own_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let whole = AlertId::rule("pg-conns");
    let orders = labelled("pg-conns", &[("datname", "orders"), ("app", "api")]);
    let users = labelled("pg-conns", &[("datname", "users")]);
    let batch = Batch {
        alerts: vec![
            (whole.clone(), serde_json::json!(0)),
            (orders.clone(), serde_json::json!(1)),
            (users.clone(), serde_json::json!(2)),
        ],
        events: vec![],
        windows: Vec::new(),
        groups: Vec::new(),
    };
    store.commit(batch, Timestamp(1), 100).await.unwrap();
    store
        .save_alert(&orders, &serde_json::json!(3), Timestamp(2))
        .await
        .unwrap();
    store.delete_alert(&users).await.unwrap();
    let loaded: BTreeMap<AlertId, serde_json::Value> = store.load_alerts().await.unwrap();
    assert_eq!(
        loaded.into_iter().collect::<Vec<_>>(),
        [
            (whole, serde_json::json!(0)),
            (orders, serde_json::json!(3))
        ]
    );
    // The labels column is the canonical JSON: names sorted, no spaces; `{}` for none.
    let labels: Vec<String> = store
        .blocking("labels", |c| {
            c.prepare("SELECT labels FROM alerts ORDER BY labels")?
                .query_map([], |r| r.get(0))?
                .collect()
        })
        .unwrap();
    assert_eq!(labels, [r#"{"app":"api","datname":"orders"}"#, "{}"]);
}

/// A state file `warden run` of commit 6351b73 (schema version 1) left with `api-down`
/// firing and its page pending: see `tests/fixtures/state/README.md`.
fn v1_open_incident(dir: &tempfile::TempDir) -> PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state/v1-open-incident.db");
    let path = dir.path().join("warden.db");
    std::fs::copy(&fixture, &path).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    path
}

#[tokio::test]
async fn a_version_1_file_keeps_its_open_incident() {
    let dir = tempfile::tempdir().unwrap();
    let path = v1_open_incident(&dir);
    let (store, recovery) = Store::open(&path, Timestamp(1_800_000_000_000)).expect("migrates");
    assert_eq!(
        recovery.pending.into_iter().collect::<Vec<_>>(),
        [("ops".to_string(), 1)]
    );
    let version: i64 = store
        .blocking("version", |c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        })
        .unwrap();
    assert_eq!(
        version,
        crate::state::MIGRATIONS.len() as i64,
        "migrated to the latest"
    );
    let api_down = AlertId::rule("api-down");
    let alerts: BTreeMap<AlertId, serde_json::Value> = store.load_alerts().await.unwrap();
    assert_eq!(alerts.keys().collect::<Vec<_>>(), [&api_down]);
    let record = &alerts[&api_down];
    assert_eq!(record["incident"], 1);
    assert_eq!(record["firing"]["severity"], "critical");
    // The open incident keeps the key it was paged under: its resolve updates that page.
    assert_eq!(record["firing"]["event"]["dedup_key"], "warden/api-down/1");
    let (labels, updated_at): (String, i64) = store
        .blocking("row", |c| {
            c.query_row("SELECT labels, updated_at FROM alerts", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .unwrap();
    assert_eq!((labels.as_str(), updated_at), ("{}", 1_796_588_382_686));
    // A migrated row is the unlabelled series' row: saving it replaces it.
    store
        .save_alert(&api_down, &serde_json::json!({"incident": 2}), Timestamp(5))
        .await
        .unwrap();
    let alerts: BTreeMap<AlertId, serde_json::Value> = store.load_alerts().await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[&api_down]["incident"], 2);

    // A file from before the identity gets its epoch when first asked.
    let first = store
        .identity(None, "web-1", Timestamp(1_800_000_000_000))
        .unwrap();
    assert_eq!(
        first,
        Identity {
            instance: "web-1".into(),
            epoch: "tro8w0".into()
        }
    );
    drop(store);
    let (store, _) = Store::open(&path, Timestamp(1_900_000_000_000)).expect("reopen");
    let again = store
        .identity(None, "renamed", Timestamp(1_900_000_000_000))
        .unwrap();
    assert_eq!(again, first);
}

#[test]
fn identity_prefers_configured_then_remembered_then_host() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let id = |configured, host, at| store.identity(configured, host, Timestamp(at)).unwrap();
    let first = id(None, "db host.example", 36_000);
    assert_eq!(
        first,
        Identity {
            instance: "db-host.example".into(),
            epoch: "10".into()
        }
    );
    // The host name was remembered: renaming the host changes nothing.
    assert_eq!(id(None, "elsewhere", 72_000), first);
    // A configured instance wins and is remembered; the epoch never changes.
    let configured = id(Some("web-1"), "elsewhere", 108_000);
    assert_eq!(
        (configured.instance.as_str(), configured.epoch.as_str()),
        ("web-1", "10")
    );
    assert_eq!(id(None, "elsewhere", 144_000), configured);
    let err = store
        .identity(Some("web/1"), "elsewhere", Timestamp(0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("identity: instance \"web/1\" must be"),
        "{err}"
    );
    // A remembered instance edited into something invalid is replaced by the host's.
    store
        .blocking("edit", |c| {
            c.execute("UPDATE meta SET value = 'a b' WHERE key = 'instance'", [])
        })
        .unwrap();
    assert_eq!(id(None, "web-2", 180_000).instance, "web-2");
    assert_eq!(id(None, "web-3", 180_000).instance, "web-2");
}

fn window_row(id: u64, state: &str) -> crate::state::WindowRow {
    crate::state::WindowRow {
        id,
        window: "post-deploy".into(),
        state: state.into(),
        started_at: 1_000 * id as i64,
        run: format!(r#"{{"id":{id},"state":"{state}"}}"#),
    }
}

#[tokio::test]
async fn window_runs_survive_reopening_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(&dir);
        assert_eq!(store.load_windows().await.unwrap(), (Vec::new(), 1));
        let mut windows: Vec<_> = (1..=(LOAD_FINISHED as u64 + 5))
            .map(|id| window_row(id, "passed"))
            .collect();
        windows[1] = window_row(2, "running");
        let batch = Batch {
            windows,
            ..Batch::default()
        };
        store.commit(batch, Timestamp(5_000), 100).await.unwrap();
        // A later commit replaces a run by id.
        let batch = Batch {
            windows: vec![window_row(3, "failed")],
            ..Batch::default()
        };
        store.commit(batch, Timestamp(6_000), 100).await.unwrap();
    }
    let (store, _) = open(&dir);
    let (rows, next) = store.load_windows().await.unwrap();
    assert_eq!(next, LOAD_FINISHED as u64 + 6);
    // The running one, however old, and the newest finished ones.
    assert_eq!(rows.len(), LOAD_FINISHED as usize + 1);
    assert_eq!(rows[0], window_row(2, "running"));
    assert_eq!(rows[1].id, 6);
    assert_eq!(
        store.load_window(3).await.unwrap(),
        Some(window_row(3, "failed"))
    );
    assert_eq!(store.load_window(999).await.unwrap(), None);
}

#[tokio::test]
async fn a_full_outbox_never_drops_a_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let resolved = |key: &str| Event {
        kind: EventKind::Resolved,
        ..event(key, 0)
    };
    // Two resolves and a page fill a bound of 3; two more pages come.
    let events = vec![
        (resolved("r1"), vec!["pd".to_string()]),
        (event("p1", 1), vec!["pd".to_string()]),
        (resolved("r2"), vec!["pd".to_string()]),
        (event("p2", 2), vec!["pd".to_string()]),
        (event("p3", 3), vec!["pd".to_string()]),
    ];
    let batch = Batch {
        events,
        ..Batch::default()
    };
    let c = store.commit(batch, Timestamp(1_000), 3).await.unwrap();
    let dropped: Vec<&str> = c.dropped.iter().map(|d| d.dedup_key.as_str()).collect();
    assert_eq!(
        dropped,
        ["warden/p1/1", "warden/p2/1"],
        "the oldest pages, no resolve"
    );
    let pending: Vec<String> = store
        .rows_blocking("pd")
        .unwrap()
        .into_iter()
        .filter(|r| r.state == RowState::Pending)
        .map(|r| r.dedup_key)
        .collect();
    assert_eq!(pending, ["warden/r1/1", "warden/r2/1", "warden/p3/1"]);
    // Only resolves pending and a new resolve: the bound gives way, the resolve is kept.
    let batch = Batch {
        events: vec![(resolved("r3"), vec!["pd".to_string()])],
        ..Batch::default()
    };
    let c = store.commit(batch, Timestamp(2_000), 3).await.unwrap();
    let dropped: Vec<&str> = c.dropped.iter().map(|d| d.dedup_key.as_str()).collect();
    assert_eq!(dropped, ["warden/p3/1"]);
    let batch = Batch {
        events: vec![(resolved("r4"), vec!["pd".to_string()])],
        ..Batch::default()
    };
    let c = store.commit(batch, Timestamp(3_000), 3).await.unwrap();
    assert!(c.dropped.is_empty());
    let pending = store
        .rows_blocking("pd")
        .unwrap()
        .into_iter()
        .filter(|r| r.state == RowState::Pending)
        .count();
    assert_eq!(pending, 4, "four resolves, over the bound of 3");
}

#[tokio::test]
async fn old_finished_window_runs_are_pruned_but_the_newest_and_running_ones_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let total = LOAD_FINISHED as u64 + 10;
    let mut windows: Vec<_> = (1..=total).map(|id| window_row(id, "passed")).collect();
    windows[0] = window_row(1, "running");
    let batch = Batch {
        windows,
        ..Batch::default()
    };
    store.commit(batch, Timestamp(5_000), 100).await.unwrap();
    // Everything started before the cut: the oldest finished beyond the newest 100 go.
    let cut = Timestamp(1_000 * total as i64 + 1);
    let gone = store.prune(Timestamp(0), cut).await.unwrap();
    assert_eq!(gone, 9, "ids 2..=10: finished and not among the newest 100");
    let (rows, next) = store.load_windows().await.unwrap();
    assert_eq!(
        rows[0],
        window_row(1, "running"),
        "a running run is never pruned"
    );
    assert_eq!(rows.len(), LOAD_FINISHED as usize + 1);
    assert_eq!(next, total + 1, "ids are still never reused");
}
