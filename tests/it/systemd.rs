//! The sd_notify protocol as systemd sees it: a Unix datagram socket named by `NOTIFY_SOCKET`
//! receives READY=1 once the config is live, RELOADING=1/READY=1 around a reload, WATCHDOG=1
//! keep-alives while warden is on time (and not after it was frozen), STOPPING=1 on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::metrics_matcher::sample;

struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket {
            socket,
            path: path.display().to_string(),
            _dir: dir,
        }
    }

    /// Every message that arrives within `within`.
    fn drain(&self, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    /// Reads until a message containing `what` arrives (bounded); returns all messages read.
    fn until(&self, what: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.contains(what);
                out.push(msg);
                if done {
                    return out;
                }
            }
        }
        panic!("no {what:?} within {within:?}; got {out:?}");
    }
}

fn count(messages: &[String], what: &str) -> usize {
    messages.iter().filter(|m| m.contains(what)).count()
}

#[test]
fn ready_reload_watchdog_and_stopping_reach_the_notify_socket() {
    let notify = NotifySocket::bind();
    // A 2 s watchdog: keep-alives every 0.5 s, withheld when anything is 1 s late.
    let mut d = Daemon::start_with(
        "[[check]]\nname = \"self\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\n",
        &[
            ("NOTIFY_SOCKET", notify.path.as_str()),
            ("WATCHDOG_USEC", "2000000"),
        ],
        &["--no-watch-config"],
    );
    let first = notify.until("READY=1", Duration::from_secs(5));
    assert!(
        first.iter().any(|m| m.contains("STATUS=watching 1 checks")),
        "{first:?}"
    );
    let healthy = notify.drain(Duration::from_millis(2200));
    assert!(count(&healthy, "WATCHDOG=1") >= 3, "{healthy:?}");

    // A reload is bracketed by RELOADING=1 (with the monotonic time) and READY=1.
    d.signal("HUP");
    let reload = notify.until("READY=1", Duration::from_secs(5));
    let reloading = reload
        .iter()
        .find(|m| m.contains("RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 in {reload:?}"));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");

    // Frozen for 3 s (longer than the watchdog period): nothing is sent, and on waking the
    // late timer means the first keep-alive is withheld rather than sent as if all was well.
    d.signal("STOP");
    let frozen = notify.drain(Duration::from_secs(3));
    d.signal("CONT");
    assert!(frozen.is_empty(), "{frozen:?}");
    let woke = notify.until("WATCHDOG=1", Duration::from_secs(5));
    let skipped = sample(&d.metrics().1, "warden_watchdog_skipped_total", &[]).unwrap();
    assert!(
        skipped >= 1.0,
        "no keep-alive was withheld after the freeze: {woke:?}"
    );
    assert!(d
        .log()
        .contains("withholding the systemd watchdog keep-alive"));

    let pid = d.child.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    notify.until("STOPPING=1", Duration::from_secs(5));
    assert_eq!(d.terminate(Duration::from_secs(15)), Some(0));
}

#[test]
fn without_notify_socket_nothing_breaks() {
    // The same binary runs outside systemd (sidecar, by hand): no socket, no watchdog.
    let mut d =
        Daemon::start("[[check]]\nname = \"port\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n");
    assert!(!d.log().contains("cannot notify systemd"), "{}", d.log());
    assert!(!d.log().contains("systemd watchdog enabled"));
    assert_eq!(d.terminate(Duration::from_secs(15)), Some(0));
}

/// The shipped unit passes `systemd-analyze verify` (pointed at the binary under test) and
/// keeps its hardening: the exposure score must not regress above the recorded 1.1.
#[test]
fn the_unit_file_verifies_and_stays_hardened() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/warden.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/warden run -c /etc/warden/warden.toml"));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("warden.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/warden", crate::daemon::WARDEN),
    )
    .unwrap();
    let out = crate::harness::process::run_bounded(
        std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "verify failed: {stderr}");
    assert!(
        !stderr.contains("warden.service:"),
        "verify warned: {stderr}"
    );

    let out = crate::harness::process::run_bounded(
        std::process::Command::new("systemd-analyze")
            .args(["security", "--offline=true"])
            .arg(&copy),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for warden.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 1.1, "exposure rose to {score}:\n{text}");
}
