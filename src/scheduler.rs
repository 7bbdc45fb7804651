//! The scheduler: runs every check on its own interval, forever, until cancelled.
//!
//! One task per check, so a hung or slow target delays nothing but itself, and a check never
//! runs twice at once (the next run is planned only after the current one returned, and a
//! probe is bounded by its timeout). First runs are spread over the interval by a stable hash
//! of the check name, so 10,000 checks with one interval do not fire in one burst. Runs that
//! an overrunning probe made impossible are skipped and counted, never queued up.
//!
//! The scheduler does not evaluate anything: it sends observations down a channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::check::{Observation, Prober};
use crate::clock::Clock;
use crate::config::{CheckConfig, Retry};
use crate::telemetry::Metrics;

/// A check ready to run: its config and its prepared probe.
#[derive(Clone)]
pub struct ScheduledCheck {
    pub config: CheckConfig,
    pub prober: Arc<Prober>,
}

/// Where in `[0, interval)` a check's runs fall: a stable hash of its name (FNV-1a), so the
/// spread is even, the same across restarts, and independent of check order.
pub fn spread_offset(name: &str, interval: Duration) -> Duration {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let nanos = interval.as_nanos().max(1) as u64;
    Duration::from_nanos(hash % nanos)
}

/// Plans the run after one that was planned at `planned`, given that it is now `now`.
/// Returns the next planned start and how many planned runs were skipped because `now`
/// is already past them.
pub fn next_run(planned: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = planned + interval;
    if next >= now {
        return (next, 0);
    }
    let behind = now - next;
    let skipped = (behind.as_nanos() / interval.as_nanos().max(1)) as u64 + 1;
    (next + interval * skipped as u32, skipped)
}

/// When the run after one that just ended is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextRun {
    /// The next run's planned start.
    pub at: Instant,
    /// The check's own schedule: the latest slot of its interval grid (its first run plus a
    /// whole number of intervals) that is now or ahead. Re-checks leave it where it was, so
    /// the check returns to its spread offset afterwards.
    pub grid: Instant,
    /// Runs of the grid that an overrunning probe made impossible (counted, never queued).
    pub skipped: u64,
}

/// Plans the run after one that was planned at `planned` and ended at `now`, with `grid` the
/// check's current slot (equal to `planned` for a normal run). After a failed probe, while
/// fewer than `retry.attempts` probes in a row failed (`failures`), the next run is a
/// re-check `retry.interval` from now, or the next slot if that comes first; otherwise the
/// next slot of the grid. Only normal runs count skipped slots: a re-check stands in for
/// the slots it overlaps.
pub fn plan_next(
    planned: Instant,
    grid: Instant,
    interval: Duration,
    retry: Option<Retry>,
    failures: u32,
    now: Instant,
) -> NextRun {
    let (slot, skipped) = if planned == grid {
        next_run(grid, interval, now)
    } else if grid >= now {
        // A re-check ended before the slot it was planned ahead of.
        (grid, 0)
    } else {
        // A re-check ran past the slot: it stood in for it.
        (next_run(grid, interval, now).0, 0)
    };
    match retry {
        Some(r) if failures >= 1 && failures < r.attempts => NextRun {
            at: (now + r.interval).min(slot),
            grid: slot,
            skipped,
        },
        _ => NextRun {
            at: slot,
            grid: slot,
            skipped,
        },
    }
}

/// What every check task needs besides its check: where observations go, the clock, metrics,
/// and the pulse the systemd watchdog and the outbound heartbeat read.
#[derive(Clone)]
pub struct Context {
    pub observations: mpsc::Sender<Observation>,
    pub clock: Clock,
    pub metrics: Metrics,
    pub pulse: Arc<Pulse>,
}

/// Who reads a [`Pulse`]: each reader has its own slot, so one reader's look never hides
/// lateness from the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PulseReader {
    /// The systemd watchdog (`systemd::watchdog`).
    Watchdog = 0,
    /// The outbound heartbeat (`heartbeat::run`).
    Heartbeat = 1,
}

/// The worst scheduling lateness seen since a reader's last look: the evidence that checks
/// start on time. Lock-free; every run records into it.
#[derive(Debug, Default)]
pub struct Pulse {
    worst_lateness_us: [AtomicU64; 2],
}

impl Pulse {
    pub fn record(&self, lateness: Duration) {
        let us = u64::try_from(lateness.as_micros()).unwrap_or(u64::MAX);
        for slot in &self.worst_lateness_us {
            slot.fetch_max(us, Ordering::Relaxed);
        }
    }

    /// The worst lateness recorded since `reader`'s previous call, and resets its slot.
    pub fn take(&self, reader: PulseReader) -> Duration {
        Duration::from_micros(self.worst_lateness_us[reader as usize].swap(0, Ordering::Relaxed))
    }
}

/// Spawns one task per check on `tracker`, all stopped by `cancel`.
pub fn spawn(
    checks: Vec<ScheduledCheck>,
    ctx: &Context,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) {
    for check in checks {
        tracker.spawn(task(check, ctx, cancel.clone()));
    }
}

/// The task of one check, to be spawned by the caller. It stops when `cancel` fires or the
/// receiving end of the observations is dropped; a panic inside it is counted and the task
/// restarted. Its first run falls at its spread offset from the moment it is built.
pub fn task(
    check: ScheduledCheck,
    ctx: &Context,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!("check", check = %check.config.name);
    let interval = check.config.interval;
    let mut next_first = Instant::now() + spread_offset(&check.config.name, interval);
    let panics = ctx.metrics.task_panics.with_label_values(&["check"]);
    let task = Arc::new(CheckTask {
        skipped: ctx
            .metrics
            .table
            .check(&check.config.name, check.config.kind.name()),
        lateness: ctx.metrics.scheduler_lateness.clone(),
        pulse: ctx.pulse.clone(),
        check,
        observations: ctx.observations.clone(),
        clock: ctx.clock.clone(),
        cancel,
    });
    let run = move || {
        let first = next_first;
        // After a panic, resume one interval later rather than at once.
        next_first = Instant::now() + interval;
        run_check(task.clone(), first).in_current_span()
    };
    supervise(run, panics).instrument(span)
}

/// What one check's task holds for its whole life, behind one `Arc` so the task and its
/// supervisor stay small.
struct CheckTask {
    check: ScheduledCheck,
    observations: mpsc::Sender<Observation>,
    clock: Clock,
    cancel: CancellationToken,
    lateness: prometheus::Histogram,
    skipped: Arc<crate::telemetry::table::CheckRow>,
    pulse: Arc<Pulse>,
}

/// Runs the task `make` builds until it returns; a panic is logged, counted and the task
/// rebuilt and run again, so one bad probe cannot silently stop its check for good.
pub async fn supervise<F, Fut>(mut make: F, panics: prometheus::IntCounter)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match tokio::spawn(make()).await {
            Ok(()) => return,
            Err(e) if e.is_panic() => {
                panics.inc();
                tracing::error!("task panicked; restarting it");
            }
            Err(_) => return,
        }
    }
}

async fn run_check(task: Arc<CheckTask>, first: Instant) {
    let CheckTask {
        check,
        observations,
        clock,
        cancel,
        lateness,
        skipped,
        pulse,
    } = &*task;
    let name = check.config.name.as_str();
    let interval = check.config.interval;
    let timeout = check.config.timeout;
    let mut planned = first;
    let mut grid = first;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(planned) => {}
        }
        let lateness_now = Instant::now().saturating_duration_since(planned);
        lateness.observe(lateness_now.as_secs_f64());
        pulse.record(lateness_now);
        // Boxed: a probe's future (several KB for HTTP) then takes heap only while it runs,
        // and 10,000 check tasks asleep between runs stay a few hundred bytes each.
        let probe = Box::pin(check.prober.observe(name, timeout, clock));
        let obs = tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            obs = probe => obs,
        };
        failures = if obs.is_up() {
            0
        } else {
            failures.saturating_add(1)
        };
        if observations.send(obs).await.is_err() {
            return;
        }
        let next = plan_next(
            planned,
            grid,
            interval,
            check.config.retry,
            failures,
            Instant::now(),
        );
        if next.skipped > 0 {
            skipped
                .skipped
                .fetch_add(next.skipped, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(
                missed = next.skipped,
                "probe overran its interval, runs skipped"
            );
        }
        if next.at != next.grid {
            tracing::debug!(failures, "probe failed: re-checking at the retry interval");
        }
        planned = next.at;
        grid = next.grid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_spread_evenly_over_the_interval() {
        let interval = Duration::from_secs(10);
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            let off = spread_offset(&format!("check-{i}"), interval);
            assert!(off < interval);
            buckets[off.as_secs() as usize] += 1;
        }
        // 1,000 expected per one-second bucket; a burst would put thousands in one.
        for (second, n) in buckets.iter().enumerate() {
            assert!((800..1200).contains(n), "second {second} has {n} checks");
        }
    }

    #[test]
    fn offset_is_stable_for_a_name() {
        let i = Duration::from_secs(30);
        assert_eq!(spread_offset("api", i), spread_offset("api", i));
        assert_ne!(spread_offset("api", i), spread_offset("api2", i));
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_counted() {
        let panics = prometheus::IntCounter::new("p", "p").unwrap();
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = runs.clone();
        let make = move || {
            let n = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("probe bug {n}");
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), supervise(make, panics.clone()))
            .await
            .expect("supervise returns once the task returns");
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert_eq!(panics.get(), 2);
    }

    #[test]
    fn an_idle_check_task_is_small() {
        // Every check is a task; its future's size is held for as long as the check runs.
        // The probe's own future is boxed per run, so this stays small however big a probe
        // future grows (an HTTP probe's is several KB).
        let check = ScheduledCheck {
            config: crate::config::CheckConfig {
                name: "c".into(),
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(5),
                retry: None,
                labels: Default::default(),
                kind: crate::config::CheckKind::Tcp(crate::config::TcpCheck {
                    address: "127.0.0.1:1".into(),
                }),
            },
            prober: Arc::new(Prober::Tcp(crate::check::tcp::TcpProbe::new(
                &crate::config::TcpCheck {
                    address: "127.0.0.1:1".into(),
                },
                Duration::from_secs(1),
            ))),
        };
        let (tx, _rx) = mpsc::channel(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let metrics = Metrics::new();
        let task = Arc::new(CheckTask {
            check,
            observations: tx,
            clock: Clock::system(),
            cancel: CancellationToken::new(),
            lateness: metrics.scheduler_lateness.clone(),
            skipped: metrics.table.check("c", "tcp"),
            pulse: Arc::new(Pulse::default()),
        });
        let fut = run_check(task, Instant::now());
        let size = std::mem::size_of_val(&fut);
        assert!(size < 1024, "run_check future is {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_check_is_rechecked_at_the_retry_interval_until_confirmed() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let interval = s(10);
        let retry = Some(Retry {
            interval: s(2),
            attempts: 3,
        });
        // A 10 s check whose rule wants 3 failures: the fault starts just before the run at
        // t0. Each step: (run planned at, probe took, failures so far) -> next planned start.
        let mut planned = t0;
        let mut grid = t0;
        let mut starts = vec![];
        for (took, up) in [
            (s(0), false), // t0: first failure, soft 1/3
            (s(0), false), // t0+2: soft 2/3
            (s(0), false), // t0+4: hard 3/3: back to the grid
            (s(0), false), // t0+10: still down, normal interval
            (s(0), true),  // t0+20: answers again
            (s(0), true),  // t0+30
        ] {
            starts.push(planned - t0);
            tokio::time::advance(planned + took - Instant::now()).await;
            let failures = if up { 0 } else { starts.len() as u32 };
            let next = plan_next(planned, grid, interval, retry, failures, Instant::now());
            assert_eq!(next.skipped, 0);
            planned = next.at;
            grid = next.grid;
        }
        assert_eq!(starts, [s(0), s(2), s(4), s(10), s(20), s(30)]);

        // Paged after the third failure, 4 s after the first: before the second full interval.
        // A blip (one failure, then an answer) re-checks once and returns to the grid.
        let next = plan_next(t0, t0, interval, retry, 1, t0);
        assert_eq!((next.at, next.grid), (t0 + s(2), t0 + s(10)));
        let back = plan_next(next.at, next.grid, interval, retry, 0, t0 + s(2));
        assert_eq!(
            (back.at, back.grid, back.skipped),
            (t0 + s(10), t0 + s(10), 0)
        );

        // A re-check never runs later than the next slot, and a slow re-check skips nothing.
        let near = plan_next(t0 + s(9), t0 + s(10), interval, retry, 1, t0 + s(9));
        assert_eq!(near.at, t0 + s(10));
        let slow = plan_next(t0 + s(2), t0 + s(10), interval, retry, 2, t0 + s(25));
        assert_eq!(
            (slow.at, slow.grid, slow.skipped),
            (t0 + s(27), t0 + s(30), 0)
        );

        // Without retry_interval, or with nothing to confirm (attempts 1), nothing changes.
        for retry in [
            None,
            Some(Retry {
                interval: s(2),
                attempts: 1,
            }),
        ] {
            let next = plan_next(t0, t0, interval, retry, 1, t0 + s(1));
            assert_eq!((next.at, next.skipped), (t0 + s(10), 0));
        }
        // An overrun of a normal run is still counted as skipped runs, never a burst.
        let over = plan_next(t0, t0, interval, None, 1, t0 + s(25));
        assert_eq!((over.at, over.skipped), (t0 + s(30), 2));
    }

    #[tokio::test(start_paused = true)]
    async fn overrun_skips_runs_instead_of_bursting() {
        let t0 = Instant::now();
        let i = Duration::from_secs(10);
        assert_eq!(next_run(t0, i, t0 + Duration::from_secs(3)), (t0 + i, 0));
        assert_eq!(next_run(t0, i, t0 + i), (t0 + i, 0));
        // The probe finished 25 s after its planned start: runs at 10 s and 20 s are gone.
        assert_eq!(
            next_run(t0, i, t0 + Duration::from_secs(25)),
            (t0 + Duration::from_secs(30), 2)
        );
    }
}
