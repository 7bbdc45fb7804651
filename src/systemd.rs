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

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::scheduler::Pulse;
use crate::server::Shared;
use crate::telemetry::Metrics;

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

/// What the watchdog saw over one of its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// How late the watchdog's own timer fired.
    pub timer_lateness: Duration,
    /// Time since the evaluator last made progress.
    pub heartbeat_age: Duration,
    /// The worst start lateness of any check since the previous tick.
    pub worst_check_lateness: Duration,
}

/// Whether to send a keep-alive: every piece of evidence must be under `limit` (half the
/// watchdog period). Returns why not, for the log.
pub fn verdict(e: &Evidence, limit: Duration) -> Result<(), String> {
    let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
    if e.timer_lateness >= limit {
        return Err(format!(
            "the runtime is starved: the watchdog timer fired {} late",
            secs(e.timer_lateness)
        ));
    }
    if e.heartbeat_age >= limit {
        return Err(format!(
            "the evaluator made no progress for {}",
            secs(e.heartbeat_age)
        ));
    }
    if e.worst_check_lateness >= limit {
        return Err(format!(
            "a check started {} late",
            secs(e.worst_check_lateness)
        ));
    }
    Ok(())
}

/// Sends `WATCHDOG=1` every `period / 4` while [`verdict`] allows it, until `cancel` fires.
pub async fn watchdog(
    period: Duration,
    shared: Arc<Shared>,
    pulse: Arc<Pulse>,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let limit = period / 2;
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
        let evidence = Evidence {
            timer_lateness: tokio::time::Instant::now().saturating_duration_since(scheduled),
            heartbeat_age: shared.heartbeat_age(),
            worst_check_lateness: pulse.take(),
        };
        match verdict(&evidence, limit) {
            Ok(()) => send(&[NotifyState::Watchdog]),
            Err(why) => {
                metrics.watchdog_skipped.inc();
                tracing::error!(reason = %why, "withholding the systemd watchdog keep-alive");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_only_when_everything_is_on_time() {
        let limit = Duration::from_secs(15);
        let ok = Evidence {
            timer_lateness: Duration::from_millis(3),
            heartbeat_age: Duration::from_millis(400),
            worst_check_lateness: Duration::from_millis(20),
        };
        assert_eq!(verdict(&ok, limit), Ok(()));
        let cases = [
            (
                Evidence {
                    timer_lateness: Duration::from_secs(16),
                    ..ok
                },
                "runtime is starved",
            ),
            (
                Evidence {
                    heartbeat_age: Duration::from_secs(15),
                    ..ok
                },
                "evaluator made no progress for 15.0s",
            ),
            (
                Evidence {
                    worst_check_lateness: Duration::from_secs(40),
                    ..ok
                },
                "a check started 40.0s late",
            ),
        ];
        for (evidence, why) in cases {
            let err = verdict(&evidence, limit).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
    }
}
