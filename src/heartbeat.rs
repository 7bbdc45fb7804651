//! Who watches the watchdog: the outbound heartbeat to a dead man's switch (`[heartbeat]`).
//!
//! Every `interval` one request (GET by default, as healthchecks.io, Dead Man's Snitch,
//! Cronitor and receivers of Alertmanager's `Watchdog` alert take it) goes to the configured
//! URL, but only while `vitals::verdict` vouches for warden's own pipeline: this task's timer
//! fired on time, the evaluator made progress, no check started late and no notifier's
//! delivery task is stuck, each within [`tolerance`]. When the evidence refuses, the beat is
//! skipped: the receiver hears nothing and pages, which is the point. A beat that fails (no
//! 2xx answer within `timeout`) is not retried: the next one is due an interval later.
//!
//! Each beat counts in `warden_heartbeats_total{result="sent|failed|skipped"}`; a sent one
//! sets `warden_heartbeat_last_success_timestamp_seconds`. The log says when the outcome
//! changes (skipped for another reason, failing, back to normal), not every interval.
//!
//! The URL is a secret (a dead man's switch URL is its own credential): it never reaches a
//! log line or an error; the request error is printed without it and redacted again.
//! This module decides nothing about warden's health itself (`vitals` does), never retries,
//! and sends nothing but the beat.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{HeartbeatConfig, HeartbeatMethod};
use crate::secret::Redactor;
use crate::vitals::{verdict, Limits, Refusal, Vitals};

/// Below this, a busy moment (the evaluator publishes every 500 ms) would read as a stall.
const MIN_TOLERANCE: Duration = Duration::from_secs(2);
/// Above this, `/healthz` would already call the evaluator wedged (`server::HEARTBEAT_STALE_AFTER`).
const MAX_TOLERANCE: Duration = Duration::from_secs(30);

/// How late any piece of evidence may be for a beat to go out: the interval, within 2 s and
/// 30 s. A shorter interval judges more tightly; a long one never tolerates more than the
/// 30 s after which `/healthz` reports warden wedged.
pub fn tolerance(interval: Duration) -> Duration {
    interval.clamp(MIN_TOLERANCE, MAX_TOLERANCE)
}

/// The limits a beat every `interval` is held to (the outbox included).
pub fn limits(interval: Duration) -> Limits {
    let t = tolerance(interval);
    Limits {
        lateness: t,
        outbox: Some(t),
    }
}

/// What became of one beat.
#[derive(Debug, Clone, PartialEq)]
pub enum Beat {
    /// The receiver answered 2xx.
    Sent,
    /// No 2xx answer: the status, or why there was none (the URL left out).
    Failed(String),
    /// Not sent: warden's own pipeline is behind.
    Skipped(Refusal),
}

impl Beat {
    /// The `result` label of `warden_heartbeats_total`.
    pub fn result(&self) -> &'static str {
        match self {
            Beat::Sent => "sent",
            Beat::Failed(_) => "failed",
            Beat::Skipped(_) => "skipped",
        }
    }

    /// What the log tracks: the result and, for a skip, its reason (not its measurement).
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            Beat::Skipped(r) => ("skipped", r.reason()),
            other => (other.result(), ""),
        }
    }
}

/// Whether `beat` deserves a log line after `previous` (none before the first beat): the
/// first beat that is not sent, a change of outcome or of skip reason, and the first beat sent
/// after others were not. A failure's text may vary (a status, then a timeout) without a new
/// line: the count is in the metrics.
pub fn worth_logging(previous: Option<&Beat>, beat: &Beat) -> bool {
    match previous {
        None => *beat != Beat::Sent,
        Some(p) => p.kind() != beat.kind(),
    }
}

/// The beat's HTTP client: connect and total timeouts, no redirects (a dead man's switch URL
/// answers itself; following one would send the beat somewhere not configured).
fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            format!(
                "cannot build the heartbeat's http client: {}",
                e.without_url()
            )
        })
}

/// Sends one beat and classifies the answer.
async fn send(client: &reqwest::Client, config: &HeartbeatConfig, redactor: &Redactor) -> Beat {
    let method = match config.method {
        HeartbeatMethod::Get => reqwest::Method::GET,
        HeartbeatMethod::Post => reqwest::Method::POST,
    };
    let mut request = client.request(method, config.url.expose());
    for (name, value) in &config.headers {
        request = request.header(name, value.expose());
    }
    // reqwest's own timeout bounds the request; this one bounds everything around it too.
    match tokio::time::timeout(config.timeout, request.send()).await {
        Ok(Ok(answer)) if answer.status().is_success() => Beat::Sent,
        Ok(Ok(answer)) => Beat::Failed(format!("the receiver answered {}", answer.status())),
        Ok(Err(e)) => {
            let e = e.without_url();
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            Beat::Failed(redactor.redact(&text))
        }
        Err(_) => Beat::Failed(format!(
            "no answer within {}s",
            config.timeout.as_secs_f64()
        )),
    }
}

/// The heartbeat task: beats per the config `config` holds (none: idle until a reload sets
/// one), until `cancel` fires. A new config (a reload) starts a new cycle at once.
pub async fn run(
    mut config: watch::Receiver<Option<HeartbeatConfig>>,
    vitals: Vitals,
    cancel: CancellationToken,
) {
    let heartbeats = &vitals.metrics.heartbeats;
    loop {
        let current = config.borrow_and_update().clone();
        let Some(current) = current else {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = config.changed() => if changed.is_err() { return },
            }
            continue;
        };
        for result in ["sent", "failed", "skipped"] {
            heartbeats.with_label_values(&[result]);
        }
        let client = match client(current.timeout) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "heartbeat disabled");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = config.changed() => if changed.is_err() { return },
                }
                continue;
            }
        };
        let redactor = Redactor::new(
            crate::config::notifier::url_fragments(current.url.expose())
                .into_iter()
                .chain(current.headers.iter().map(|(_, v)| v.expose().to_string())),
        );
        let limits = limits(current.interval);
        tracing::info!(
            interval_seconds = current.interval.as_secs_f64(),
            tolerance_seconds = limits.lateness.as_secs_f64(),
            method = current.method.as_str(),
            "heartbeat enabled"
        );
        let mut previous: Option<Beat> = None;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = config.changed() => {
                    if changed.is_err() { return }
                    break;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            let beat = match verdict(&vitals.gather(next), &limits) {
                Ok(()) => send(&client, &current, &redactor).await,
                Err(refusal) => Beat::Skipped(refusal),
            };
            heartbeats.with_label_values(&[beat.result()]).inc();
            if beat == Beat::Sent {
                vitals
                    .metrics
                    .heartbeat_last_success
                    .set(vitals.clock.now().as_secs_f64());
            }
            if worth_logging(previous.as_ref(), &beat) {
                match &beat {
                    Beat::Sent => tracing::info!("heartbeat sent again"),
                    Beat::Failed(why) => {
                        tracing::warn!(error = %why, "heartbeat not accepted; the next one is due an interval later")
                    }
                    Beat::Skipped(refusal) => tracing::error!(
                        reason = %refusal,
                        "withholding the heartbeat: warden's own pipeline is behind"
                    ),
                }
            }
            previous = Some(beat);
            // The next beat an interval after this one was due; a beat that took its whole
            // timeout (at most the interval) is not counted as timer lateness.
            next += current.interval;
            next = next.max(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_follows_the_interval_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(tolerance(Duration::from_millis(500)), s(2));
        assert_eq!(tolerance(s(1)), s(2));
        assert_eq!(tolerance(s(10)), s(10));
        assert_eq!(tolerance(s(60)), s(30));
        assert_eq!(tolerance(s(3600)), s(30));
        assert_eq!(limits(s(10)).outbox, Some(s(10)));
    }

    #[test]
    fn the_log_follows_changes_not_intervals() {
        let late = |secs| Beat::Skipped(Refusal::EvaluatorSilent(Duration::from_secs(secs)));
        let stuck = Beat::Skipped(Refusal::OutboxStuck(Duration::from_secs(5)));
        let timeline = [
            (Beat::Sent, false), // a first beat that goes out is said by "heartbeat enabled"
            (Beat::Sent, false),
            (late(3), true),
            (late(4), false), // still the evaluator: one line for the whole stall
            (late(9), false),
            (stuck.clone(), true), // another reason
            (stuck, false),
            (Beat::Sent, true), // back
            (Beat::Failed("the receiver answered 503".into()), true),
            (Beat::Failed("no answer within 10s".into()), false),
            (Beat::Sent, true),
        ];
        let mut previous: Option<Beat> = None;
        let mut logged = Vec::new();
        for (beat, _) in &timeline {
            logged.push(worth_logging(previous.as_ref(), beat));
            previous = Some(beat.clone());
        }
        let expected: Vec<bool> = timeline.iter().map(|(_, e)| *e).collect();
        assert_eq!(logged, expected);
        assert!(
            worth_logging(None, &late(3)),
            "a first beat skipped is said"
        );
    }

    #[test]
    fn results_are_the_metric_labels() {
        assert_eq!(Beat::Sent.result(), "sent");
        assert_eq!(Beat::Failed(String::new()).result(), "failed");
        assert_eq!(
            Beat::Skipped(Refusal::CheckLate(Duration::ZERO)).result(),
            "skipped"
        );
    }
}
