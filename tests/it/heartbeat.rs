//! Who watches the watchdog: the outbound heartbeat (`[heartbeat]`) through the real daemon to
//! a real receiver. Beats arrive every interval, go on while a pager receiver answers 503 (a
//! receiver that is down is not warden's stall), stop while warden's outbox cannot make
//! progress and resume when it can.
//!
//! The stall is real, not a test hook: another connection holds the state file's write lock
//! (`BEGIN EXCLUSIVE`), so the delivery task cannot record the outcome of its retries (each
//! write waits out the store's 5 s busy timeout, then fails), as with a store on a hung disk.
//! Only the outbox part of the evidence is exercised here; the evaluator, check lateness and
//! timer parts of the same verdict are unit-tested in `src/vitals.rs`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::harness::receiver::{Answer, Receiver};
use crate::metrics_matcher::sample;

fn metric(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&d.metrics().1, name, labels).unwrap_or(0.0)
}

/// Waits (bounded) until `f` holds.
fn until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("not within {within:?}: {what}");
}

fn state_file(d: &Daemon) -> PathBuf {
    std::fs::read_dir(d._dir.path())
        .expect("the daemon's directory")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "db"))
        .expect("the daemon's state file")
}

#[test]
fn heartbeat_stops_while_the_outbox_is_stuck_and_resumes_after() {
    let beats = Receiver::start();
    let pager = Receiver::start();
    pager.answer(Answer::Status(503));
    let mut d = Daemon::start(&format!(
        r#"
[[check]]
name = "gone"
kind = "tcp"
address = "127.0.0.1:1"
interval = "1s"
timeout = "500ms"

[[rule]]
name = "gone-down"
check = "gone"
critical = {{ when = "< 1" }}

[alerting]
critical = ["pager"]

[[notifier]]
name = "pager"
kind = "webhook"
url = "{pager}"
timeout = "1s"

[heartbeat]
url = "{beats}"
interval = "1s"
"#,
        pager = pager.url(),
        beats = beats.url(),
    ));

    // Beats arrive while the pager's receiver is down: its page waits, retried on schedule.
    until(
        "3 beats and 2 refused pages",
        Duration::from_secs(20),
        || beats.received().len() >= 3 && pager.received().len() >= 2,
    );
    assert!(metric(&d, "warden_heartbeats_total", &[("result", "sent")]) >= 3.0);
    assert!(metric(&d, "warden_heartbeat_last_success_timestamp_seconds", &[]) > 0.0);
    assert_eq!(
        metric(&d, "warden_heartbeats_total", &[("result", "skipped")]),
        0.0,
        "a receiver that is down does not stop the heartbeat:\n{}",
        d.log()
    );

    // Another connection takes the state file's write lock: the delivery task cannot record
    // its retries any more.
    let lock = rusqlite::Connection::open(state_file(&d)).expect("open the state file");
    lock.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    lock.execute_batch("BEGIN EXCLUSIVE")
        .expect("take the write lock");
    let locked = Instant::now();
    until("the heartbeat is withheld", Duration::from_secs(30), || {
        metric(&d, "warden_heartbeats_total", &[("result", "skipped")]) >= 2.0
    });
    // Withheld, not sent: nothing arrives for several intervals.
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let during: Vec<_> = beats
        .received()
        .into_iter()
        .filter(|r| r.at >= quiet_from)
        .collect();
    assert!(
        during.is_empty(),
        "{} beats arrived while the outbox was stuck (locked {:?} ago)",
        during.len(),
        locked.elapsed()
    );

    // The lock goes: the delivery task records again and the beats come back.
    lock.execute_batch("ROLLBACK").expect("release the lock");
    drop(lock);
    let released = Instant::now();
    until("beats resume", Duration::from_secs(30), || {
        beats.received().iter().any(|r| r.at >= released)
    });

    let log = d.log();
    assert_eq!(
        log.matches("withholding the heartbeat").count(),
        1,
        "one line for the whole stall, not one per interval:\n{log}"
    );
    assert!(log.contains("delivery task is stuck"), "{log}");
    assert!(log.contains("heartbeat sent again"), "{log}");
    assert!(
        !log.contains(&beats.url()),
        "the heartbeat URL is secret:\n{log}"
    );
    d.terminate(Duration::from_secs(10));
}
