//! The outbox against real HTTP receivers on loopback: down, hanging, rate limiting (429 with
//! Retry-After), rejecting (400), and a kill -9 of the process that delivers.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warden::alert::{Event, EventKind, Severity, Sink};
use warden::clock::Clock;
use warden::outbox::{Backoff, Outbox, OutboxConfig};
use warden::state::{RowState, Store};
use warden::telemetry::Metrics;

use crate::harness::free_port;
use crate::harness::process::{signal, wait_bounded};
use crate::harness::receiver::{rerun_self, webhook_sink, Answer, Receiver};

fn event(alert: &str, seq: u64) -> Event {
    Event {
        value_name: None,
        kind: EventKind::Firing,
        alert: alert.to_string(),
        series: Default::default(),
        check: "api".into(),
        severity: Severity::Critical,
        value: Some(seq as f64),
        threshold: Some(1.0),
        condition: Some("< 1".into()),
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

fn config() -> OutboxConfig {
    OutboxConfig {
        backoff: Backoff {
            initial: Duration::from_millis(100),
            multiplier: 1.5,
            max: Duration::from_secs(1),
            jitter: 0.5,
        },
        poll_interval: Duration::from_millis(100),
        send_timeout: Duration::from_secs(5),
        shutdown_grace: Duration::from_secs(1),
        ..OutboxConfig::default()
    }
}

struct Running {
    outbox: Outbox,
    metrics: Metrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Running {
    fn start(db: &Path, config: OutboxConfig, sinks: Vec<Arc<dyn Sink>>) -> Running {
        let clock = Clock::system();
        let (store, _) = Store::open(db, clock.now()).expect("open the state store");
        let metrics = Metrics::new();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let outbox = Outbox::new(store, config, clock, &metrics, &tracker, shutdown.clone());
        outbox.set_sinks(sinks);
        Running {
            outbox,
            metrics,
            tracker,
            shutdown,
        }
    }

    async fn send(&self, event: &Event, sinks: &[&str]) {
        let sinks: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
        self.outbox.enqueue(event, &sinks).await.expect("enqueue");
    }

    fn count(&self, notifier: &str, result: &str) -> u64 {
        self.metrics
            .notifications
            .with_label_values(&[notifier, result])
            .get()
    }

    async fn stop(self) -> Store {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(Duration::from_secs(10), self.tracker.wait())
            .await
            .expect("the outbox stops within its grace");
        self.outbox.store().clone()
    }
}

/// Waits until `done` holds, at most `limit`.
async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let step = Duration::from_millis(20);
    for _ in 0..(limit.as_millis() / step.as_millis()) {
        if done() {
            return;
        }
        tokio::time::sleep(step).await;
    }
    assert!(done(), "timed out after {limit:?} waiting until {what}");
}

/// (alert, seq) of each body, in the order received.
fn seqs(bodies: &[serde_json::Value]) -> Vec<(String, u64)> {
    bodies
        .iter()
        .map(|b| {
            (
                b["alert"].as_str().unwrap_or_default().to_string(),
                b["value"].as_f64().unwrap_or(-1.0) as u64,
            )
        })
        .collect()
}

/// Per alert, the sequence numbers never go backwards.
fn assert_ordered_per_key(got: &[(String, u64)]) {
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (alert, seq) in got {
        let prev = last.insert(alert, *seq);
        assert!(
            prev.is_none_or(|p| p <= *seq),
            "{alert}: {seq} after {prev:?} in {got:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_the_page_once_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/notify");
    let sink = webhook_sink("webhook", &url, Duration::from_secs(2));
    let run = Running::start(&dir.path().join("w.db"), config(), vec![sink]);
    run.send(&event("api-down", 1), &["webhook"]).await;
    until("two refused attempts", Duration::from_secs(10), || {
        run.count("webhook", "retry") >= 2
    })
    .await;
    let receiver = Receiver::start_on(port);
    until("delivered", Duration::from_secs(15), || {
        receiver.accepted().len() == 1
    })
    .await;
    assert_eq!(seqs(&receiver.accepted()), [("api-down".to_string(), 1)]);
    // The receiver saw the request before warden read the answer: wait for warden to count it.
    let latency = run
        .metrics
        .notification_latency
        .with_label_values(&["webhook"]);
    until("the delivery counted", Duration::from_secs(10), || {
        run.count("webhook", "sent") == 1 && latency.get_sample_count() == 1
    })
    .await;
    let store = run.stop().await;
    let row = &store.rows_blocking("webhook").unwrap()[0];
    assert_eq!(row.state, RowState::Delivered);
    assert!(row.attempts >= 3, "{row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script(vec![Answer::Status(500), Answer::Status(503)]);
    let sink = webhook_sink("webhook", &receiver.url(), Duration::from_secs(2));
    let run = Running::start(&dir.path().join("w.db"), config(), vec![sink]);
    run.send(&event("api-down", 1), &["webhook"]).await;
    until("delivered", Duration::from_secs(15), || {
        receiver.accepted().len() == 1
    })
    .await;
    assert_eq!(receiver.received().len(), 3);
    until("the delivery counted", Duration::from_secs(10), || {
        run.count("webhook", "sent") == 1
    })
    .await;
    assert_eq!(run.count("webhook", "retry"), 2);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_another_notifier() {
    let dir = tempfile::tempdir().unwrap();
    let hung = Receiver::start();
    hung.answer(Answer::Hang);
    let fine = Receiver::start();
    let sinks: Vec<Arc<dyn Sink>> = vec![
        webhook_sink("slow", &hung.url(), Duration::from_millis(500)),
        webhook_sink("fast", &fine.url(), Duration::from_secs(5)),
    ];
    let run = Running::start(&dir.path().join("w.db"), config(), sinks);
    for seq in 1..=2 {
        for key in 0..5 {
            run.send(&event(&format!("k{key}"), seq), &["slow", "fast"])
                .await;
        }
    }
    until("fast got all ten", Duration::from_secs(10), || {
        fine.accepted().len() == 10
    })
    .await;
    assert!(hung.accepted().is_empty());
    assert_ordered_per_key(&seqs(&fine.accepted()));
    // The hung receiver's sends time out and are retried...
    until(
        "slow timed out and retried",
        Duration::from_secs(10),
        || run.count("slow", "retry") >= 1,
    )
    .await;
    let depth = run.metrics.outbox_depth.with_label_values(&["slow"]);
    until("slow's depth shows", Duration::from_secs(5), || {
        depth.get() == 10
    })
    .await;
    // ...and everything arrives, in order per key, once it answers again.
    hung.answer(Answer::Accept);
    until("slow got all ten", Duration::from_secs(30), || {
        hung.accepted().len() >= 10
    })
    .await;
    let got = seqs(&hung.accepted());
    assert_ordered_per_key(&got);
    let distinct: BTreeSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), 10);
    until("slow's depth is 0", Duration::from_secs(5), || {
        depth.get() == 0
    })
    .await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_429_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.script(vec![Answer::TooManyRequests(2)]);
    let sink = webhook_sink("slack", &receiver.url(), Duration::from_secs(2));
    let run = Running::start(&dir.path().join("w.db"), config(), vec![sink]);
    run.send(&event("api-down", 1), &["slack"]).await;
    until("delivered", Duration::from_secs(15), || {
        receiver.accepted().len() == 1
    })
    .await;
    let r = receiver.received();
    assert_eq!(r.len(), 2);
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert_eq!(run.count("slack", "retry"), 1);
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_failed_reported_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start();
    receiver.answer(Answer::Status(400));
    let sink = webhook_sink("pagerduty", &receiver.url(), Duration::from_secs(2));
    let run = Running::start(&dir.path().join("w.db"), config(), vec![sink]);
    run.send(&event("api-down", 1), &["pagerduty"]).await;
    until("failed", Duration::from_secs(10), || {
        run.count("pagerduty", "failed") == 1
    })
    .await;
    // Several retry periods later, still one request.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), 1);
    let text = String::from_utf8(run.metrics.encode()).unwrap();
    assert!(
        text.contains(r#"warden_notifications_total{notifier="pagerduty",result="failed"} 1"#),
        "{text}"
    );
    let store = run.stop().await;
    let row = &store.rows_blocking("pagerduty").unwrap()[0];
    assert_eq!(row.state, RowState::Failed);
    // The webhook notifier's own reason: the URL (no path), the status and the body.
    let reason = row.last_error.as_deref().unwrap_or_default();
    assert!(reason.ends_with(": status 400: {}"), "{reason}");
}

const CHILD: &str = "WARDEN_IT_OUTBOX_CHILD";
const BURST: u64 = 300;
const KEYS: u64 = 20;
const CONCURRENCY: usize = 4;
/// The burst child is killed once the receiver has this many events.
const KILL_AFTER: usize = 40;

/// When this process is the re-executed child of the crash test (`WARDEN_IT_OUTBOX_CHILD` set
/// to `burst` or `resume`), plays it and returns true; the test then returns.
fn crash_child() -> bool {
    let Ok(mode) = std::env::var(CHILD) else {
        return false;
    };
    let db = std::env::var("WARDEN_IT_DB").expect("WARDEN_IT_DB");
    let url = std::env::var("WARDEN_IT_URL").expect("WARDEN_IT_URL");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let sink = webhook_sink("webhook", &url, Duration::from_secs(5));
        let run = Running::start(
            Path::new(&db),
            OutboxConfig {
                concurrency: CONCURRENCY,
                ..config()
            },
            vec![sink],
        );
        match mode.as_str() {
            "burst" => {
                for n in 0..BURST {
                    let (key, seq) = (n % KEYS, n / KEYS);
                    run.send(&event(&format!("k{key}"), seq), &["webhook"])
                        .await;
                    // Only what was committed is reported, so the parent knows it is owed.
                    println!("enqueued k{key} {seq}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                println!("burst done");
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            _ => {
                let depth = run.metrics.outbox_depth.with_label_values(&["webhook"]);
                let store = run.outbox.store().clone();
                for _ in 0..1500 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let pending = store.pending_by_sink().await.expect("count pending");
                    if pending.is_empty() && depth.get() == 0 {
                        break;
                    }
                }
                run.stop().await;
                println!("drained");
            }
        }
    });
    true
}

#[test]
fn kill_9_mid_burst_loses_no_page_and_resends_at_most_the_in_flight() {
    if crash_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warden.db");
    let receiver = Receiver::start();
    receiver.delay(Duration::from_millis(30));
    let env = |mode: &'static str| {
        vec![
            (CHILD, mode),
            ("WARDEN_IT_DB", db.to_str().unwrap()),
            ("WARDEN_IT_URL", Box::leak(receiver.url().into_boxed_str())),
        ]
    };
    let mut child = rerun_self(
        "outbox::kill_9_mid_burst_loses_no_page_and_resends_at_most_the_in_flight",
        &env("burst"),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn the burst child");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let reader = {
        let lines = lines.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    let started = Instant::now();
    while receiver.accepted().len() < KILL_AFTER && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        receiver.accepted().len() >= KILL_AFTER,
        "the child delivered too little"
    );
    assert!(signal(child.id(), "KILL"));
    let status = wait_bounded(&mut child, Duration::from_secs(10)).expect("the child died");
    assert!(!status.success());
    reader.join().unwrap();
    let before_kill = receiver.accepted().len();
    let enqueued: BTreeSet<(String, u64)> = lines
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let mut parts = l.strip_prefix("enqueued ")?.split(' ');
            Some((parts.next()?.to_string(), parts.next()?.parse().ok()?))
        })
        .collect();
    assert!(
        (enqueued.len() as u64) < BURST,
        "the kill came after the burst ({} enqueued)",
        enqueued.len()
    );

    let mut resume = rerun_self(
        "outbox::kill_9_mid_burst_loses_no_page_and_resends_at_most_the_in_flight",
        &env("resume"),
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn the resume child");
    let status = wait_bounded(&mut resume, Duration::from_secs(60)).expect("resume finishes");
    assert!(status.success());
    let mut out = String::new();
    std::io::Read::read_to_string(resume.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(out.contains("drained"), "{out}");

    let got = seqs(&receiver.accepted());
    assert!(
        got.len() > before_kill,
        "nothing was delivered after the restart"
    );
    let distinct: BTreeSet<(String, u64)> = got.iter().cloned().collect();
    let missing: Vec<_> = enqueued.difference(&distinct).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
    // Nothing arrives that was never generated.
    assert!(distinct
        .iter()
        .all(|(k, s)| k.starts_with('k') && *s < BURST / KEYS));
    // Order per key holds across the crash, and each key ends on its newest event.
    assert_ordered_per_key(&got);
    for key in 0..KEYS {
        let key = format!("k{key}");
        let newest = enqueued
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, s)| *s)
            .max();
        let last = got.iter().rev().find(|(k, _)| *k == key).map(|(_, s)| *s);
        assert!(
            last >= newest,
            "{key}: last received {last:?}, newest enqueued {newest:?}"
        );
    }
    // At-least-once: only what was in flight at the kill may arrive twice.
    let duplicates = got.len() - distinct.len();
    eprintln!(
        "enqueued before the kill: {}, delivered before: {before_kill}, after: {}, duplicates: {duplicates}",
        enqueued.len(),
        got.len() - before_kill
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} duplicates, more than the {CONCURRENCY} sends in flight"
    );
}
