//! The durable outbox: every notification is committed to the state store before anyone is
//! told it was sent, and delivered from there with retries, so neither a slow receiver nor a
//! crash loses a page.
//!
//! - **One delivery task per notifier** ([`Sink`]): a receiver that hangs or is down only
//!   delays its own notifications. Each task runs at most `concurrency` sends at once, each
//!   bounded by `send_timeout` on top of the sink's own timeouts.
//! - **Order per alert**: per notifier, only the oldest pending row of a `dedup_key` is ever
//!   tried, so a resolve never overtakes its firing; other keys go on while one key waits for
//!   its retry.
//! - **Retry** ([`Backoff`]): 500 ms × 1.5 per failure, ± 50 % jitter, capped at 60 s, all
//!   configurable; a receiver's `Retry-After` is a floor for that row *and* pauses the whole
//!   notifier until then (a 429 is about the receiver, not one alert). A permanent outcome
//!   (a 4xx other than 429) marks the row `failed`, logs it at error level and counts it. A
//!   row still failing after `max_age` (24 h by default) or `max_attempts` (unlimited by
//!   default) is marked `failed` the same way.
//! - **Bounded**: per notifier at most `max_pending` rows wait (10,000 by default); a new row
//!   beyond that marks the *oldest* pending row `dropped`, logged at error level and counted in
//!   `warden_notifications_total{result="dropped"}`, never silently. The bound is per notifier
//!   so that one dead receiver cannot push out the pages of a healthy one.
//! - **At least once**: rows still pending at a restart are delivered by the next process. A
//!   crash between a receiver accepting an event and the `delivered` commit resends that event
//!   once (at most `concurrency` events per notifier); receivers collapse it by `dedup_key`.
//! - **Progress**: each delivery task publishes when it is next due to look at the store
//!   (`warden_outbox_next_poll_timestamp_seconds`): after a look that succeeded with every
//!   outcome since recorded, the time it plans to sleep until; while a store call hangs or
//!   fails, or an outcome could not be recorded, the time stays where it was and falls into the
//!   past. A receiver that is down does not stop it (retries are on schedule); a stuck store
//!   or task does. `vitals` reads it for the outbound heartbeat.
//! - **Shutdown**: on cancellation no new send starts; sends in flight get `shutdown_grace` to
//!   finish and be recorded, then are abandoned and stay pending for the next start.
//!
//! The outbox decides nothing about *what* to send or to whom: the alert stage hands it events
//! and notifier names. It never renders payloads (sinks do) and never reads the config.

mod backoff;
pub mod hooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{Gauge, Histogram, IntCounter, IntGauge};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{Delivery, Event, Sink};
use crate::clock::{Clock, Timestamp};
use crate::state::{Batch, Committed, Store, StoreError};
use crate::telemetry::Metrics;

pub use backoff::Backoff;
pub use hooks::{Fired, HookGuard};

/// The outbox's knobs. The defaults are what a production daemon wants.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxConfig {
    pub backoff: Backoff,
    /// Pending rows kept per notifier before the oldest are dropped.
    pub max_pending: u64,
    /// A row still undelivered this long after it was enqueued is marked failed at its next
    /// failed attempt. `None`: retry forever.
    pub max_age: Option<Duration>,
    /// A row that failed this many attempts is marked failed. `None`: no limit.
    pub max_attempts: Option<u32>,
    /// The outbox's own deadline around one send, on top of the sink's timeouts.
    pub send_timeout: Duration,
    /// Sends in flight at once per notifier (different dedup keys).
    pub concurrency: usize,
    /// After cancellation, how long sends in flight may take to finish.
    pub shutdown_grace: Duration,
    /// Delivered, failed and dropped rows are deleted this long after they finished.
    pub retention: Duration,
    /// Hook runs are deleted this long after they finished. Once-per-incident is remembered
    /// only this long, so keep it longer than any incident lasts.
    pub hook_retention: Duration,
    /// The longest a delivery task sleeps while rows are pending (it re-reads the store and
    /// refreshes `warden_outbox_oldest_age_seconds` at least this often).
    pub poll_interval: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            backoff: Backoff::default(),
            max_pending: 10_000,
            max_age: Some(Duration::from_secs(24 * 3600)),
            max_attempts: None,
            send_timeout: Duration::from_secs(30),
            concurrency: 4,
            shutdown_grace: Duration::from_secs(5),
            retention: Duration::from_secs(7 * 24 * 3600),
            hook_retention: Duration::from_secs(90 * 24 * 3600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// How long an idle delivery task (nothing pending) sleeps between looks at the store; an
/// enqueue wakes it at once, so this is only a safety net.
const IDLE_POLL: Duration = Duration::from_secs(30);
/// How often finished rows older than `retention` are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

struct SinkTask {
    sink: Arc<dyn Sink>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

struct Inner {
    store: Store,
    config: OutboxConfig,
    clock: Clock,
    metrics: Metrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    running: HashMap<String, SinkTask>,
    /// Tasks of removed or replaced notifiers that may still be finishing their sends.
    retired: HashMap<String, JoinHandle<()>>,
}

/// The dispatcher. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl Outbox {
    /// Starts the outbox on `store`; its tasks run on `tracker` until `shutdown` is cancelled.
    /// It delivers nothing until [`Outbox::set_sinks`] names the notifiers.
    pub fn new(
        store: Store,
        config: OutboxConfig,
        clock: Clock,
        metrics: &Metrics,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Outbox {
        let inner = Arc::new(Inner {
            store,
            config,
            clock,
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            shutdown,
            tasks: Mutex::new(Tasks::default()),
        });
        tracker.spawn(prune(inner.clone()));
        Outbox { inner }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Makes `sinks` the running notifiers: a task starts for each new one, a removed one's
    /// task stops (its rows stay pending), and a changed one (a different `Arc` under the same
    /// name) is restarted. A new task waits for the old task of its name to finish first, so
    /// one row is never sent twice at once.
    pub fn set_sinks(&self, sinks: Vec<Arc<dyn Sink>>) {
        let inner = &self.inner;
        let mut tasks = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted: HashMap<String, Arc<dyn Sink>> = sinks
            .into_iter()
            .map(|s| (s.name().to_string(), s))
            .collect();
        let names: Vec<String> = tasks.running.keys().cloned().collect();
        for name in names {
            let unchanged = match (wanted.get(&name), tasks.running.get(&name)) {
                (Some(new), Some(old)) => Arc::ptr_eq(new, &old.sink),
                _ => false,
            };
            if unchanged {
                wanted.remove(&name);
                continue;
            }
            if let Some(old) = tasks.running.remove(&name) {
                old.stop.cancel();
                tasks.retired.insert(name.clone(), old.handle);
            }
            if !wanted.contains_key(&name) {
                let _ = inner.metrics.outbox_depth.remove_label_values(&[&name]);
                let _ = inner
                    .metrics
                    .outbox_oldest_age
                    .remove_label_values(&[&name]);
                let _ = inner.metrics.outbox_next_poll.remove_label_values(&[&name]);
            }
        }
        tasks.retired.retain(|_, handle| !handle.is_finished());
        for (name, sink) in wanted {
            let previous = tasks.retired.remove(&name);
            let wake = Arc::new(Notify::new());
            let stop = inner.shutdown.child_token();
            for result in ["sent", "retry", "failed", "dropped"] {
                inner
                    .metrics
                    .notifications
                    .with_label_values(&[&name, result]);
            }
            let handle = inner.tracker.spawn(deliver(
                inner.clone(),
                sink.clone(),
                wake.clone(),
                stop.clone(),
                previous,
            ));
            tasks.running.insert(
                name,
                SinkTask {
                    sink,
                    wake,
                    stop,
                    handle,
                },
            );
        }
    }

    /// Enqueues `event` for each of `sinks` (notifier names); returns once the rows are
    /// durably committed. Returns the new row ids.
    pub async fn enqueue(&self, event: &Event, sinks: &[String]) -> Result<Vec<i64>, StoreError> {
        let batch = Batch {
            alerts: Vec::new(),
            events: vec![(event.clone(), sinks.to_vec())],
            ..Batch::default()
        };
        Ok(self.commit(batch).await?.ids)
    }

    /// Commits alert states and events in one transaction, then wakes the notifiers' tasks.
    /// Rows dropped to respect the bound are logged at error level and counted.
    pub async fn commit(&self, batch: Batch) -> Result<Committed, StoreError> {
        let inner = &self.inner;
        let mut named: Vec<String> = batch
            .events
            .iter()
            .flat_map(|(_, sinks)| sinks.iter().cloned())
            .collect();
        named.sort();
        named.dedup();
        let committed = inner
            .store
            .commit(batch, inner.clock.now(), inner.config.max_pending)
            .await?;
        for d in &committed.dropped {
            inner
                .metrics
                .notifications
                .with_label_values(&[&d.sink, "dropped"])
                .inc();
            tracing::error!(
                notifier = %d.sink,
                dedup_key = %d.dedup_key,
                enqueued_at = %d.enqueued_at,
                attempts = d.attempts,
                max_pending = inner.config.max_pending,
                "outbox full: dropped the oldest pending notification"
            );
        }
        let tasks = inner.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for name in named {
            match tasks.running.get(&name) {
                Some(t) => t.wake.notify_one(),
                None => tracing::warn!(
                    notifier = %name,
                    "no such notifier is running; the notification waits in the outbox"
                ),
            }
        }
        Ok(committed)
    }
}

/// Deletes finished rows past the retention, now and every hour.
async fn prune(inner: Arc<Inner>) {
    loop {
        let now = inner.clock.now();
        let (rows, hooks) = (
            now - inner.config.retention,
            now - inner.config.hook_retention,
        );
        match inner.store.prune(rows, hooks).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned finished outbox rows and hook runs"),
            Err(e) => tracing::warn!(error = %e, "cannot prune the state store"),
        }
        tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
    }
}

/// The metric handles of one notifier.
struct SinkMetrics {
    sent: IntCounter,
    retry: IntCounter,
    failed: IntCounter,
    latency: Histogram,
    depth: IntGauge,
    oldest_age: Gauge,
    next_poll: Gauge,
}

impl SinkMetrics {
    fn new(m: &Metrics, name: &str) -> Self {
        SinkMetrics {
            sent: m.notifications.with_label_values(&[name, "sent"]),
            retry: m.notifications.with_label_values(&[name, "retry"]),
            failed: m.notifications.with_label_values(&[name, "failed"]),
            latency: m.notification_latency.with_label_values(&[name]),
            depth: m.outbox_depth.with_label_values(&[name]),
            oldest_age: m.outbox_oldest_age.with_label_values(&[name]),
            next_poll: m.outbox_next_poll.with_label_values(&[name]),
        }
    }
}

/// A row being sent: what is needed to record the outcome.
#[derive(Debug, Clone)]
struct InFlight {
    id: i64,
    dedup_key: String,
    enqueued_at: Timestamp,
    attempts: u32,
}

/// One notifier's delivery loop.
async fn deliver(
    inner: Arc<Inner>,
    sink: Arc<dyn Sink>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        let _ = previous.await;
    }
    let name = sink.name().to_string();
    let config = &inner.config;
    let metrics = SinkMetrics::new(&inner.metrics, &name);
    let mut state = Loop {
        inner: inner.clone(),
        name: name.clone(),
        metrics,
        in_flight: HashMap::new(),
        hold_until: None,
        unrecorded: false,
    };
    state.metrics.next_poll.set(inner.clock.now().as_secs_f64());
    let mut sends: JoinSet<Delivery> = JoinSet::new();
    while !stop.is_cancelled() {
        let now = inner.clock.now();
        // Looking now: due now at the latest (a time already past stays, so a stall that
        // began before keeps counting).
        let due = state.metrics.next_poll.get().min(now.as_secs_f64());
        state.metrics.next_poll.set(due);
        let held = state.hold_until.is_some_and(|h| now < h);
        let room = if held {
            0
        } else {
            config.concurrency.max(1).saturating_sub(sends.len())
        };
        let busy: Vec<String> = state
            .in_flight
            .values()
            .map(|f| f.dedup_key.clone())
            .collect();
        let mut wait = config.poll_interval;
        match inner.store.poll(&name, now, busy, room).await {
            Ok(poll) => {
                state.metrics.depth.set(poll.depth as i64);
                state.metrics.oldest_age.set(
                    poll.oldest
                        .map(|t| now.since(t).as_secs_f64())
                        .unwrap_or(0.0),
                );
                for row in poll.due {
                    let event: Event = match serde_json::from_str(&row.event) {
                        Ok(e) => e,
                        Err(e) => {
                            let reason = format!("the stored event does not decode: {e}");
                            state.fail(row.id, &row.dedup_key, &reason, now).await;
                            continue;
                        }
                    };
                    let flight = InFlight {
                        id: row.id,
                        dedup_key: row.dedup_key,
                        enqueued_at: row.enqueued_at,
                        attempts: row.attempts,
                    };
                    let (sink, timeout) = (sink.clone(), config.send_timeout);
                    let handle = sends.spawn(async move {
                        match tokio::time::timeout(timeout, sink.send(&event)).await {
                            Ok(delivery) => delivery,
                            Err(_) => Delivery::Retryable {
                                reason: format!("no answer within {}s", timeout.as_secs_f64()),
                                retry_after: None,
                            },
                        }
                    });
                    state.in_flight.insert(handle.id(), flight);
                }
                // While the notifier is held, nothing goes out before the hold ends.
                let next = match state.hold_until.filter(|_| held) {
                    Some(h) => Some(h),
                    None => poll.next_due,
                };
                let idle = poll.depth == 0 && sends.is_empty();
                wait = match next {
                    Some(t) => t.since(now).min(config.poll_interval),
                    None if idle => IDLE_POLL,
                    None => config.poll_interval,
                };
                // Nothing pending: no outcome is left to record.
                state.unrecorded &= poll.depth > 0;
                if !state.unrecorded {
                    state.metrics.next_poll.set((now + wait).as_secs_f64());
                }
            }
            Err(e) => tracing::error!(notifier = %name, error = %e, "cannot read the outbox"),
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(done) = sends.join_next_with_id(), if !sends.is_empty() => state.record(done).await,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    // Shutting down: let sends in flight finish within the grace, record them, abandon the
    // rest (they stay pending and go out after the next start).
    let grace = tokio::time::sleep(config.shutdown_grace);
    tokio::pin!(grace);
    while !sends.is_empty() {
        tokio::select! {
            _ = &mut grace => break,
            Some(done) = sends.join_next_with_id() => state.record(done).await,
        }
    }
    if !sends.is_empty() {
        tracing::warn!(
            notifier = %name,
            in_flight = sends.len(),
            "sends still in flight at shutdown; they stay pending"
        );
        sends.abort_all();
    }
}

/// The delivery loop's bookkeeping.
struct Loop {
    inner: Arc<Inner>,
    name: String,
    metrics: SinkMetrics,
    in_flight: HashMap<tokio::task::Id, InFlight>,
    /// The notifier asked (Retry-After) not to be called before this.
    hold_until: Option<Timestamp>,
    /// An outcome could not be recorded since the last one that was: the task is not making
    /// progress, however its looks at the store go.
    unrecorded: bool,
}

impl Loop {
    async fn record(&mut self, done: Result<(tokio::task::Id, Delivery), tokio::task::JoinError>) {
        let (id, delivery) = match done {
            Ok(d) => d,
            Err(e) => (
                e.id(),
                Delivery::Retryable {
                    reason: if e.is_panic() {
                        "the notifier panicked".into()
                    } else {
                        "the send was cancelled".into()
                    },
                    retry_after: None,
                },
            ),
        };
        let Some(f) = self.in_flight.remove(&id) else {
            return;
        };
        let inner = self.inner.clone();
        let now = inner.clock.now();
        let written = match delivery {
            Delivery::Ok => {
                self.metrics.sent.inc();
                self.metrics
                    .latency
                    .observe(now.since(f.enqueued_at).as_secs_f64());
                tracing::debug!(notifier = %self.name, dedup_key = %f.dedup_key, "notification delivered");
                let written = inner.store.mark_delivered(f.id, now).await;
                self.unrecorded = written.is_err();
                written
            }
            Delivery::Permanent { reason } => {
                self.fail(f.id, &f.dedup_key, &reason, now).await;
                Ok(())
            }
            Delivery::Retryable {
                reason,
                retry_after,
            } => {
                let failures = f.attempts + 1;
                let age = now.since(f.enqueued_at);
                let config = &inner.config;
                let too_old = config.max_age.is_some_and(|max| age >= max);
                let too_many = config.max_attempts.is_some_and(|max| failures >= max);
                if let Some(asked) = retry_after {
                    let until = now + asked;
                    self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
                }
                if too_old || too_many {
                    let reason = format!(
                        "gave up after {failures} attempts in {}s: {reason}",
                        age.as_secs()
                    );
                    self.fail(f.id, &f.dedup_key, &reason, now).await;
                    Ok(())
                } else {
                    let delay = config.backoff.delay(failures, fastrand::f64(), retry_after);
                    self.metrics.retry.inc();
                    tracing::warn!(
                        notifier = %self.name,
                        dedup_key = %f.dedup_key,
                        attempt = failures,
                        retry_in_seconds = delay.as_secs_f64(),
                        reason = %reason,
                        "notification not delivered; will retry"
                    );
                    let written = inner.store.mark_retry(f.id, now + delay, reason).await;
                    self.unrecorded = written.is_err();
                    written
                }
            }
        };
        if let Err(e) = written {
            // Do not hammer the receiver while the store cannot record outcomes.
            self.hold_until = Some(now + inner.config.poll_interval);
            tracing::error!(notifier = %self.name, error = %e, "cannot record a delivery outcome");
        }
    }

    async fn fail(&mut self, id: i64, dedup_key: &str, reason: &str, now: Timestamp) {
        self.metrics.failed.inc();
        tracing::error!(
            notifier = %self.name,
            dedup_key = %dedup_key,
            reason = %reason,
            "notification failed; not retried"
        );
        let written = self
            .inner
            .store
            .mark_failed(id, now, reason.to_string())
            .await;
        self.unrecorded = written.is_err();
        if let Err(e) = written {
            self.hold_until = Some(now + self.inner.config.poll_interval);
            tracing::error!(notifier = %self.name, error = %e, "cannot record a delivery outcome");
        }
    }
}

#[cfg(test)]
mod tests;
