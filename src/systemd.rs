//! systemd integration: `Type=notify` readiness, reload and stop notifications, and the
//! watchdog.
//!
//! Every function here is a no-op when warden does not run under systemd (`NOTIFY_SOCKET`
//! unset), so the same binary runs as a sidecar or by hand. The watchdog keep-alive is sent
//! only while warden is demonstrably doing its job: the watchdog's own timer fires on time
//! (the runtime is not starved), the evaluator's heartbeat is fresh, and no check started
//! later than half the watchdog period since the last keep-alive. A keep-alive from a timer
//! that pings regardless would keep a wedged daemon alive forever.
//!
//! Children (exec checks, hooks) must not inherit `NOTIFY_SOCKET` or `WATCHDOG_*`: they
//! could otherwise report readiness or keep-alives on warden's behalf; `hook::CHILD_ENV_REMOVE`
//! and the exec check's own list strip them.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::vitals::{verdict, Limits, Vitals};

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` plus a one-line status for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` with the monotonic timestamp systemd requires alongside it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the config"),
        ]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The watchdog period systemd expects keep-alives within, if it enabled one for us.
pub fn watchdog_period() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Sends `WATCHDOG=1` every `period / 4` while [`verdict`] allows it (every piece of evidence
/// under half the period; the outbox is not judged here, the outbound heartbeat judges it),
/// until `cancel` fires.
pub async fn watchdog(period: Duration, vitals: Vitals, cancel: CancellationToken) {
    let limits = Limits {
        lateness: period / 2,
        outbox: None,
    };
    let mut tick = tokio::time::interval(period / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        period_seconds = period.as_secs_f64(),
        "systemd watchdog enabled"
    );
    loop {
        let scheduled = tokio::select! {
            _ = cancel.cancelled() => return,
            t = tick.tick() => t,
        };
        match verdict(&vitals.gather(scheduled), &limits) {
            Ok(()) => send(&[NotifyState::Watchdog]),
            Err(why) => {
                vitals.metrics.watchdog_skipped.inc();
                tracing::error!(reason = %why, "withholding the systemd watchdog keep-alive");
            }
        }
    }
}
