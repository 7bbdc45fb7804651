//! The dispatcher against in-memory sinks whose answers a test scripts per dedup key.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::alert::{AlertId, BoxFuture, Delivery, Event, EventKind, Severity, Sink};
use crate::state::RowState;

fn event(alert: &str, seq: u32) -> Event {
    Event {
        value_name: None,
        kind: EventKind::Firing,
        alert: alert.to_string(),
        series: Default::default(),
        check: "api".into(),
        severity: Severity::Critical,
        value: Some(seq as f64),
        threshold: None,
        condition: None,
        description: None,
        labels: BTreeMap::new(),
        since: "2026-01-01T00:00:00.000Z".into(),
        at: "2026-01-01T00:00:00.000Z".into(),
        deploy: None,
        dedup_key: format!("warden/{alert}/1"),
        hook: None,
        ack_url: None,
        group: None,
    }
}

/// A sink that answers from a per-alert script (then `Ok`), or never answers.
struct Scripted {
    name: String,
    hang: bool,
    script: Mutex<HashMap<String, VecDeque<Delivery>>>,
    /// (alert, seq, when, answer) per attempt.
    log: Mutex<Vec<(String, u32, Instant, Delivery)>>,
}

impl Scripted {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Scripted {
            name: name.into(),
            hang: false,
            script: Mutex::default(),
            log: Mutex::default(),
        })
    }

    fn hanging(name: &str) -> Arc<Self> {
        Arc::new(Scripted {
            name: name.into(),
            hang: true,
            script: Mutex::default(),
            log: Mutex::default(),
        })
    }

    fn answer(&self, alert: &str, answers: Vec<Delivery>) {
        self.script
            .lock()
            .unwrap()
            .insert(alert.into(), answers.into());
    }

    fn delivered(&self) -> Vec<(String, u32)> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, _, d)| *d == Delivery::Ok)
            .map(|(a, s, _, _)| (a.clone(), *s))
            .collect()
    }

    fn attempts(&self, alert: &str) -> Vec<Instant> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(a, ..)| a == alert)
            .map(|(_, _, t, _)| *t)
            .collect()
    }
}

impl Sink for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "test"
    }
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            if self.hang {
                self.log.lock().unwrap().push((
                    event.alert.clone(),
                    0,
                    Instant::now(),
                    Delivery::Permanent {
                        reason: "hung".into(),
                    },
                ));
                std::future::pending::<()>().await;
            }
            let answer = self
                .script
                .lock()
                .unwrap()
                .get_mut(&event.alert)
                .and_then(|q| q.pop_front())
                .unwrap_or(Delivery::Ok);
            let seq = event.value.unwrap_or(0.0) as u32;
            self.log.lock().unwrap().push((
                event.alert.clone(),
                seq,
                Instant::now(),
                answer.clone(),
            ));
            answer
        })
    }
}

fn retryable() -> Delivery {
    Delivery::Retryable {
        reason: "503 Service Unavailable".into(),
        retry_after: None,
    }
}

fn fast() -> OutboxConfig {
    OutboxConfig {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            multiplier: 1.5,
            max: Duration::from_millis(100),
            jitter: 0.5,
        },
        poll_interval: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(200),
        ..OutboxConfig::default()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    outbox: Outbox,
    metrics: Metrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Harness {
    fn start(config: OutboxConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::system();
        let (store, _) = Store::open(&dir.path().join("warden.db"), clock.now()).unwrap();
        Self::on(dir, store, config)
    }

    fn on(dir: tempfile::TempDir, store: Store, config: OutboxConfig) -> Self {
        let metrics = Metrics::new();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let outbox = Outbox::new(
            store,
            config,
            Clock::system(),
            &metrics,
            &tracker,
            shutdown.clone(),
        );
        Harness {
            _dir: dir,
            outbox,
            metrics,
            tracker,
            shutdown,
        }
    }

    async fn send(&self, alert: &str, seq: u32, sinks: &[&str]) {
        let sinks: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
        self.outbox
            .enqueue(&event(alert, seq), &sinks)
            .await
            .unwrap();
    }

    fn count(&self, sink: &str, result: &str) -> u64 {
        self.metrics
            .notifications
            .with_label_values(&[sink, result])
            .get()
    }

    async fn stop(self) -> (tempfile::TempDir, Store) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(5), self.tracker.wait())
            .await
            .expect("outbox tasks stop within the grace");
        let store = self.outbox.store().clone();
        (self._dir, store)
    }
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..250 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn order_per_key_holds_while_another_key_retries() {
    let h = Harness::start(fast());
    let sink = Scripted::new("pd");
    sink.answer("a", vec![retryable(); 1000]);
    h.outbox.set_sinks(vec![sink.clone()]);
    h.send("a", 1, &["pd"]).await;
    h.send("b", 1, &["pd"]).await;
    h.send("a", 2, &["pd"]).await;
    h.send("b", 2, &["pd"]).await;
    // b is not held up by a's retries.
    until("b's events are delivered", || {
        sink.delivered() == [("b".to_string(), 1), ("b".to_string(), 2)]
    })
    .await;
    until("a was retried three times", || {
        sink.attempts("a").len() >= 4
    })
    .await;
    sink.answer("a", vec![]);
    until("all four are delivered", || sink.delivered().len() == 4).await;
    let got = sink.delivered();
    assert_eq!(got[2..], [("a".to_string(), 1), ("a".to_string(), 2)]);
    // a2 was never tried before a1 was delivered.
    let log = sink.log.lock().unwrap().clone();
    let first_a2 = log
        .iter()
        .position(|(a, s, ..)| a == "a" && *s == 2)
        .unwrap();
    let a1_ok = log
        .iter()
        .position(|(a, s, _, d)| a == "a" && *s == 1 && *d == Delivery::Ok)
        .unwrap();
    assert_eq!(first_a2, a1_ok + 1);
    let a1_attempts = (a1_ok + 1 - 2) as u32;
    assert_eq!(h.count("pd", "sent"), 4);
    assert_eq!(h.count("pd", "retry"), u64::from(a1_attempts) - 1);
    // The retries backed off: each gap at least half the base delay of its attempt.
    let t = sink.attempts("a");
    for (n, w) in t.windows(2).take(3).enumerate() {
        let min = fast().backoff.base(n as u32 + 1).mul_f64(0.5);
        assert!(w[1] - w[0] >= min, "gap {n}: {:?} < {min:?}", w[1] - w[0]);
    }
    let (_dir, store) = h.stop().await;
    let states: Vec<_> = store
        .rows_blocking("pd")
        .unwrap()
        .iter()
        .map(|r| (r.state, r.attempts))
        .collect();
    use RowState::Delivered;
    assert_eq!(
        states,
        [
            (Delivered, a1_attempts),
            (Delivered, 1),
            (Delivered, 1),
            (Delivered, 1)
        ]
    );
}

#[tokio::test]
async fn retry_after_delays_the_row_and_pauses_the_notifier() {
    let h = Harness::start(fast());
    let sink = Scripted::new("slack");
    let asked = Duration::from_millis(400);
    sink.answer(
        "a",
        vec![Delivery::Retryable {
            reason: "429 Too Many Requests".into(),
            retry_after: Some(asked),
        }],
    );
    h.outbox.set_sinks(vec![sink.clone()]);
    h.send("a", 1, &["slack"]).await;
    until("the 429 came back", || !sink.attempts("a").is_empty()).await;
    h.send("b", 1, &["slack"]).await;
    until("both are delivered", || sink.delivered().len() == 2).await;
    let first = sink.attempts("a")[0];
    let again = sink.attempts("a")[1];
    let b = sink.attempts("b")[0];
    assert!(
        again - first >= asked,
        "a retried after {:?}",
        again - first
    );
    assert!(
        b - first >= asked,
        "b went out {:?} after the 429",
        b - first
    );
    h.stop().await;
}

#[tokio::test]
async fn permanent_failure_is_recorded_counted_and_not_retried() {
    let h = Harness::start(fast());
    let sink = Scripted::new("pd");
    sink.answer(
        "a",
        vec![Delivery::Permanent {
            reason: "400 Bad Request: invalid routing key".into(),
        }],
    );
    h.outbox.set_sinks(vec![sink.clone()]);
    h.send("a", 1, &["pd"]).await;
    h.send("a", 2, &["pd"]).await;
    until("the next event of the key went out", || {
        sink.delivered() == [("a".to_string(), 2)]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.attempts("a").len(), 2, "the failed event was retried");
    assert_eq!((h.count("pd", "failed"), h.count("pd", "sent")), (1, 1));
    let (_dir, store) = h.stop().await;
    let rows = store.rows_blocking("pd").unwrap();
    assert_eq!(rows[0].state, RowState::Failed);
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("400 Bad Request: invalid routing key")
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts() {
    let h = Harness::start(OutboxConfig {
        max_attempts: Some(3),
        ..fast()
    });
    let sink = Scripted::new("pd");
    sink.answer("a", vec![retryable(); 10]);
    h.outbox.set_sinks(vec![sink.clone()]);
    h.send("a", 1, &["pd"]).await;
    until("the row failed", || h.count("pd", "failed") == 1).await;
    assert_eq!(sink.attempts("a").len(), 3);
    assert_eq!(h.count("pd", "retry"), 2);
    let (_dir, store) = h.stop().await;
    let row = &store.rows_blocking("pd").unwrap()[0];
    assert_eq!((row.state, row.attempts), (RowState::Failed, 3));
    assert!(row
        .last_error
        .as_deref()
        .unwrap()
        .starts_with("gave up after 3 attempts"));
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_and_says_so() {
    let h = Harness::start(OutboxConfig {
        max_pending: 3,
        ..fast()
    });
    // No notifier runs: everything waits.
    for n in 0..5 {
        h.send(&format!("k{n}"), n, &["pd"]).await;
    }
    assert_eq!(h.count("pd", "dropped"), 2);
    let (_dir, store) = h.stop().await;
    let rows = store.rows_blocking("pd").unwrap();
    let kept: Vec<_> = rows
        .iter()
        .filter(|r| r.state == RowState::Pending)
        .map(|r| r.dedup_key.as_str())
        .collect();
    assert_eq!(kept, ["warden/k2/1", "warden/k3/1", "warden/k4/1"]);
}

#[tokio::test]
async fn a_restart_delivers_what_was_pending() {
    let h = Harness::start(fast());
    let down = Scripted::new("pd");
    down.answer("a", vec![retryable(); 1000]);
    h.outbox.set_sinks(vec![down.clone()]);
    h.send("a", 1, &["pd"]).await;
    h.send("b", 1, &["pd"]).await;
    until("a was tried and b delivered", || {
        !down.attempts("a").is_empty() && down.delivered() == [("b".to_string(), 1)]
    })
    .await;
    let (dir, store) = h.stop().await;
    drop(store);

    let (store, recovery) =
        Store::open(&dir.path().join("warden.db"), Clock::system().now()).unwrap();
    assert_eq!(recovery.pending.get("pd"), Some(&1), "b went out before");
    let h = Harness::on(dir, store, fast());
    let up = Scripted::new("pd");
    h.outbox.set_sinks(vec![up.clone()]);
    until("a is delivered after the restart", || {
        up.delivered() == [("a".to_string(), 1)]
    })
    .await;
    let gauge = h.metrics.outbox_depth.with_label_values(&["pd"]);
    until("the depth gauge is 0", || gauge.get() == 0).await;
    h.stop().await;
}

#[tokio::test]
async fn shutdown_bounds_a_hanging_send_and_keeps_its_row() {
    let h = Harness::start(fast());
    let hung = Scripted::hanging("pd");
    let fine = Scripted::new("slack");
    h.outbox.set_sinks(vec![hung.clone(), fine.clone()]);
    h.send("a", 1, &["pd", "slack"]).await;
    until("both were tried", || {
        !hung.attempts("a").is_empty() && fine.delivered().len() == 1
    })
    .await;
    let started = Instant::now();
    let (_dir, store) = h.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let row = &store.rows_blocking("pd").unwrap()[0];
    assert_eq!((row.state, row.attempts), (RowState::Pending, 0));
    assert_eq!(
        store.rows_blocking("slack").unwrap()[0].state,
        RowState::Delivered
    );
}

#[tokio::test]
async fn replacing_a_sink_restarts_its_task_and_removing_one_keeps_its_rows() {
    let h = Harness::start(fast());
    let old = Scripted::new("pd");
    h.outbox.set_sinks(vec![old.clone()]);
    h.send("a", 1, &["pd"]).await;
    until("old delivered", || old.delivered().len() == 1).await;
    let new = Scripted::new("pd");
    h.outbox.set_sinks(vec![new.clone()]);
    h.send("a", 2, &["pd"]).await;
    until("new delivered", || new.delivered().len() == 1).await;
    assert_eq!(old.delivered().len(), 1);
    h.outbox.set_sinks(vec![]);
    h.send("a", 3, &["pd"]).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(new.delivered().len(), 1);
    let (_dir, store) = h.stop().await;
    let pending = store.pending_by_sink().await.unwrap();
    assert_eq!(pending.get("pd"), Some(&1));
}

#[tokio::test]
async fn alert_states_and_pages_commit_together() {
    let h = Harness::start(fast());
    let batch = Batch {
        alerts: vec![(
            AlertId::rule("api-down"),
            serde_json::json!({"incident": 1, "paged": true}),
        )],
        events: vec![(event("api-down", 1), vec!["pd".into(), "slack".into()])],
        windows: Vec::new(),
        groups: Vec::new(),
    };
    let committed = h.outbox.commit(batch).await.unwrap();
    assert_eq!(committed.ids.len(), 2);
    let alerts: BTreeMap<AlertId, serde_json::Value> =
        h.outbox.store().load_alerts().await.unwrap();
    assert_eq!(alerts[&AlertId::rule("api-down")]["paged"], true);
    h.stop().await;
}
