//! warden's own health, as evidence: what the systemd watchdog (`systemd::watchdog`) and the
//! outbound heartbeat (`heartbeat::run`) both judge before saying "warden is alive".
//!
//! [`Vitals::gather`] is the one place that collects the evidence: how late the asking task's
//! own timer fired (the runtime is not starved), how long since the evaluator last made
//! progress (`Shared::heartbeat_age`), the worst check start lateness since this reader's last
//! look (`scheduler::Pulse`, one slot per reader), and how far past its planned next look at
//! the state store the most overdue notifier delivery task is
//! (`warden_outbox_next_poll_timestamp_seconds`, which the outbox sets). [`verdict`] is the
//! pure decision: every piece under its limit, or the first [`Refusal`] that is not.
//!
//! The outbox counts as stuck only when a delivery task stops making progress (a store call
//! that hangs or fails, an outcome it cannot record), never because a receiver answers 5xx or
//! pages wait for a receiver that is down: a receiver down for hours is the receiver's alert,
//! and a watchdog that went silent with it would page for the wrong system.
//!
//! This module reads evidence and decides; it sends nothing and logs nothing.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus::core::Collector;

use crate::clock::{Clock, Timestamp};
use crate::scheduler::{Pulse, PulseReader};
use crate::server::Shared;
use crate::telemetry::Metrics;

/// What one look at warden's own pipeline saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// How late the asking task's own timer fired.
    pub timer_lateness: Duration,
    /// Time since the evaluator last made progress.
    pub evaluator_age: Duration,
    /// The worst start lateness of any check since this reader's previous look.
    pub worst_check_lateness: Duration,
    /// How far past its planned next look at the store the most overdue notifier delivery
    /// task is (zero when every task is on time or idle).
    pub outbox_overdue: Duration,
}

/// The bounds [`verdict`] holds the evidence to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// For the timer, the evaluator and the checks.
    pub lateness: Duration,
    /// For the outbox; `None`: not judged.
    pub outbox: Option<Duration>,
}

/// Why warden does not vouch for itself right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refusal {
    /// The asking task's own timer fired this late: the runtime is starved.
    Starved(Duration),
    /// The evaluator made no progress for this long.
    EvaluatorSilent(Duration),
    /// A check started this late.
    CheckLate(Duration),
    /// A notifier's delivery task is this far past its planned next look at the store.
    OutboxStuck(Duration),
}

impl Refusal {
    /// The kind of refusal, without its measurement: a log line per change of reason, not
    /// per look.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Starved(_) => "runtime_starved",
            Refusal::EvaluatorSilent(_) => "evaluator_silent",
            Refusal::CheckLate(_) => "check_late",
            Refusal::OutboxStuck(_) => "outbox_stuck",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = |d: &Duration| format!("{:.1}s", d.as_secs_f64());
        match self {
            Refusal::Starved(d) => write!(
                f,
                "the runtime is starved: the timer fired {} late",
                secs(d)
            ),
            Refusal::EvaluatorSilent(d) => {
                write!(f, "the evaluator made no progress for {}", secs(d))
            }
            Refusal::CheckLate(d) => write!(f, "a check started {} late", secs(d)),
            Refusal::OutboxStuck(d) => write!(
                f,
                "a notifier's delivery task is stuck: {} past its next look at the state store",
                secs(d)
            ),
        }
    }
}

/// Whether warden may vouch for itself: every piece of evidence under its limit. Pure.
pub fn verdict(e: &Evidence, limits: &Limits) -> Result<(), Refusal> {
    let limit = limits.lateness;
    if e.timer_lateness >= limit {
        return Err(Refusal::Starved(e.timer_lateness));
    }
    if e.evaluator_age >= limit {
        return Err(Refusal::EvaluatorSilent(e.evaluator_age));
    }
    if e.worst_check_lateness >= limit {
        return Err(Refusal::CheckLate(e.worst_check_lateness));
    }
    if limits.outbox.is_some_and(|l| e.outbox_overdue >= l) {
        return Err(Refusal::OutboxStuck(e.outbox_overdue));
    }
    Ok(())
}

/// Where the evidence comes from, for one reader.
pub struct Vitals {
    pub shared: Arc<Shared>,
    pub pulse: Arc<Pulse>,
    pub reader: PulseReader,
    pub metrics: Metrics,
    pub clock: Clock,
}

impl Vitals {
    /// The evidence now, for a timer tick that was due at `scheduled`. Takes this reader's
    /// check lateness (the next look starts from zero).
    pub fn gather(&self, scheduled: tokio::time::Instant) -> Evidence {
        Evidence {
            timer_lateness: tokio::time::Instant::now().saturating_duration_since(scheduled),
            evaluator_age: self.shared.heartbeat_age(),
            worst_check_lateness: self.pulse.take(self.reader),
            outbox_overdue: outbox_overdue(
                &self.metrics.outbox_next_poll.collect(),
                self.clock.now(),
            ),
        }
    }
}

/// The most any notifier's delivery task is past its planned next look (the gauge values are
/// unix seconds), at `now`.
fn outbox_overdue(families: &[prometheus::proto::MetricFamily], now: Timestamp) -> Duration {
    let now = now.as_secs_f64();
    families
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| now - m.get_gauge().get_value())
        .filter(|late| late.is_finite() && *late > 0.0)
        .map(Duration::from_secs_f64)
        .max()
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON_TIME: Evidence = Evidence {
        timer_lateness: Duration::from_millis(3),
        evaluator_age: Duration::from_millis(400),
        worst_check_lateness: Duration::from_millis(20),
        outbox_overdue: Duration::ZERO,
    };

    #[test]
    fn vouches_only_when_everything_is_on_time() {
        let limits = Limits {
            lateness: Duration::from_secs(15),
            outbox: Some(Duration::from_secs(15)),
        };
        assert_eq!(verdict(&ON_TIME, &limits), Ok(()));
        let cases = [
            (
                Evidence {
                    timer_lateness: Duration::from_secs(16),
                    ..ON_TIME
                },
                "the runtime is starved: the timer fired 16.0s late",
            ),
            (
                Evidence {
                    evaluator_age: Duration::from_secs(15),
                    ..ON_TIME
                },
                "the evaluator made no progress for 15.0s",
            ),
            (
                Evidence {
                    worst_check_lateness: Duration::from_secs(40),
                    ..ON_TIME
                },
                "a check started 40.0s late",
            ),
            (
                Evidence {
                    outbox_overdue: Duration::from_secs(20),
                    ..ON_TIME
                },
                "a notifier's delivery task is stuck: 20.0s past its next look at the state store",
            ),
        ];
        for (evidence, why) in cases {
            let refusal = verdict(&evidence, &limits).unwrap_err();
            assert_eq!(refusal.to_string(), why);
        }
    }

    #[test]
    fn the_first_late_piece_is_the_reason() {
        let limits = Limits {
            lateness: Duration::from_secs(2),
            outbox: Some(Duration::from_secs(2)),
        };
        let all_late = Evidence {
            timer_lateness: Duration::from_secs(3),
            evaluator_age: Duration::from_secs(3),
            worst_check_lateness: Duration::from_secs(3),
            outbox_overdue: Duration::from_secs(3),
        };
        assert_eq!(
            verdict(&all_late, &limits).map_err(|r| r.reason()),
            Err("runtime_starved")
        );
        // The reason names the kind, not the measurement: one log line per change.
        assert_eq!(
            Refusal::EvaluatorSilent(Duration::from_secs(3)).reason(),
            Refusal::EvaluatorSilent(Duration::from_secs(9)).reason()
        );
    }

    #[test]
    fn an_unjudged_outbox_never_refuses() {
        let limits = Limits {
            lateness: Duration::from_secs(2),
            outbox: None,
        };
        let stuck = Evidence {
            outbox_overdue: Duration::from_secs(3600),
            ..ON_TIME
        };
        assert_eq!(verdict(&stuck, &limits), Ok(()));
    }

    #[test]
    fn outbox_overdue_is_the_worst_task_past_its_next_poll() {
        let metrics = Metrics::new();
        let now = Timestamp::from_millis(1_000_000);
        assert_eq!(
            outbox_overdue(&metrics.outbox_next_poll.collect(), now),
            Duration::ZERO,
            "no notifier, nothing overdue"
        );
        let next = |name: &str, secs: f64| {
            metrics
                .outbox_next_poll
                .with_label_values(&[name])
                .set(secs)
        };
        next("chat", 1_001.0); // due in a second: on time
        next("pager", 990.0); // ten seconds overdue
        next("mail", 997.5);
        assert_eq!(
            outbox_overdue(&metrics.outbox_next_poll.collect(), now),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn each_pulse_reader_sees_every_lateness_once() {
        let pulse = Pulse::default();
        pulse.record(Duration::from_millis(300));
        pulse.record(Duration::from_millis(100));
        assert_eq!(
            pulse.take(PulseReader::Heartbeat),
            Duration::from_millis(300)
        );
        assert_eq!(pulse.take(PulseReader::Heartbeat), Duration::ZERO);
        // The watchdog's look was not taken by the heartbeat's.
        assert_eq!(
            pulse.take(PulseReader::Watchdog),
            Duration::from_millis(300)
        );
    }
}
