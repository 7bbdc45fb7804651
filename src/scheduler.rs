//! The scheduler: runs every check on its own interval, forever, until cancelled.
//!
//! One task holds every check's schedule: a heap of due times, one entry per check that is
//! not running. When a check is due the scheduler spawns its probe as a short task of its own,
//! so a hung or slow target delays nothing but itself, and plans the check's next run only
//! when that probe has returned: a check never runs twice at once, and a probe is bounded by
//! its timeout. A check asleep between runs costs its slot (about a hundred bytes) and a heap
//! entry, not a task, a timer and a span: 100,000 checks are 100,000 slots and one timer.
//! First runs are spread over the interval by a stable hash of the check name, so 10,000
//! checks with one interval do not fire in one burst. Runs that an overrunning probe made
//! impossible are skipped and counted, never queued up. A probe that panics is counted and
//! its check runs again one interval later.
//!
//! The scheduler does not evaluate anything: it sends observations down a channel.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::check::{Observation, Prober};
use crate::clock::Clock;
use crate::config::{CheckConfig, Retry};
use crate::telemetry::Metrics;

/// A check ready to run: what the scheduler needs of its config, and its prepared probe.
/// Only these: 100,000 checks keep no copy of their config here.
pub struct ScheduledCheck<P = Prober> {
    pub name: String,
    /// The check's kind, as its metric rows name it.
    pub kind: &'static str,
    pub interval: Duration,
    pub timeout: Duration,
    pub retry: Option<Retry>,
    pub prober: Arc<P>,
}

impl ScheduledCheck {
    pub fn new(config: &CheckConfig, prober: Prober) -> Self {
        ScheduledCheck {
            name: config.name.clone(),
            kind: config.kind.name(),
            interval: config.interval,
            timeout: config.timeout,
            retry: config.retry,
            prober: Arc::new(prober),
        }
    }
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

/// How many probes the scheduler starts before it lets the worker run them (see `run`).
const DISPATCH_BATCH: usize = 64;

/// How the scheduler runs a check's probe; [`Prober`] in the daemon. The scheduler's timing
/// is tested through it with probes whose time and outcome the test chooses.
pub trait Observe: Send + Sync + 'static {
    fn observe<'a>(
        &'a self,
        check: &'a str,
        timeout: Duration,
        clock: &'a Clock,
    ) -> impl std::future::Future<Output = Observation> + Send + 'a;
}

impl Observe for Prober {
    fn observe<'a>(
        &'a self,
        check: &'a str,
        timeout: Duration,
        clock: &'a Clock,
    ) -> impl std::future::Future<Output = Observation> + Send + 'a {
        Prober::observe(self, check, timeout, clock)
    }
}

/// What the daemon asks of the scheduler task.
enum Command<P> {
    Start(Vec<ScheduledCheck<P>>),
    /// Stop these checks; the sender is dropped once every one of them has stopped.
    Stop(Vec<String>, Arc<oneshot::Sender<()>>),
}

/// The daemon's end of the scheduler task: starts and stops checks.
pub struct Handle<P = Prober> {
    commands: mpsc::UnboundedSender<Command<P>>,
}

impl<P: Observe> Handle<P> {
    /// Starts `checks`; each first runs at its spread offset from now.
    pub fn start(&self, checks: Vec<ScheduledCheck<P>>) {
        let _ = self.commands.send(Command::Start(checks));
    }

    /// Stops the checks named in `names` and returns once they have stopped: a probe running
    /// is cancelled and has returned, and none of them sends another observation. Unknown
    /// names are ignored.
    pub async fn stop(&self, names: Vec<String>) {
        let (stopped, wait) = oneshot::channel();
        if self
            .commands
            .send(Command::Stop(names, Arc::new(stopped)))
            .is_ok()
        {
            // Resolves (with an error: nobody sends) when the last holder drops the sender.
            let _ = wait.await;
        }
    }
}

/// Starts the scheduler task on `tracker`, with no checks; it and every probe it started stop
/// when `cancel` fires or the receiving end of the observations is dropped.
pub fn spawn<P: Observe>(
    ctx: &Context,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Handle<P> {
    let (commands, received) = mpsc::unbounded_channel();
    let (done, finished) = mpsc::unbounded_channel();
    let scheduler = Scheduler {
        slots: Vec::new(),
        free: Vec::new(),
        by_name: HashMap::new(),
        due: BinaryHeap::new(),
        done,
        ctx: ctx.clone(),
        panics: ctx.metrics.task_panics.with_label_values(&["check"]),
        cancel,
        tracker: tracker.clone(),
    };
    tracker.spawn(async move {
        // Every check's schedule is in this one task: a bug that panicked it would leave a
        // warden that answers /healthz and runs no check. Crash instead, loudly, so the
        // service manager restarts it (the unit's Restart=on-failure); pages and windows are
        // in the state store and resume.
        let run = std::panic::AssertUnwindSafe(scheduler.run(received, finished));
        if run.catch_unwind().await.is_err() {
            tracing::error!("the scheduler panicked; aborting so that warden is restarted");
            std::process::abort();
        }
    });
    Handle { commands }
}

/// What a check's probe runs with, shared by its slot and the probe task running it.
struct Job<P> {
    name: String,
    timeout: Duration,
    prober: Arc<P>,
    /// Cancels a probe of this check that is running (stop, shutdown).
    cancel: CancellationToken,
}

/// One check's place in the scheduler.
struct Slot<P> {
    job: Arc<Job<P>>,
    interval: Duration,
    retry: Option<Retry>,
    /// The planned start of the next run (or of the run in progress).
    planned: Instant,
    /// The check's current slot of its interval grid (see [`NextRun::grid`]).
    grid: Instant,
    /// Probes failed in a row.
    failures: u32,
    /// Told when the check's skipped runs grow.
    row: Arc<crate::telemetry::table::CheckRow>,
    /// Its probe is running: no heap entry until it returns.
    running: bool,
    /// Stopped while its probe was running: freed when it returns, which drops this.
    stopping: Option<Arc<oneshot::Sender<()>>>,
}

/// A probe task's report: which slot, and how its run ended.
struct Done {
    slot: SlotId,
    ended: Ended,
}

enum Ended {
    Ran {
        up: bool,
    },
    /// Cancelled before it finished, or its observation found no receiver.
    Stopped,
    Panicked,
}

/// A slot's index and the generation it was filled in, so a heap entry or a report about a
/// check that has since been stopped (its slot reused) is recognised and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SlotId {
    index: u32,
    generation: u32,
}

struct Scheduler<P> {
    slots: Vec<(u32, Option<Slot<P>>)>,
    free: Vec<u32>,
    by_name: HashMap<String, u32>,
    /// When each check that is not running is due, earliest first.
    due: BinaryHeap<Reverse<(Instant, SlotId)>>,
    done: mpsc::UnboundedSender<Done>,
    ctx: Context,
    panics: prometheus::IntCounter,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl<P: Observe> Scheduler<P> {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command<P>>,
        mut finished: mpsc::UnboundedReceiver<Done>,
    ) {
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        loop {
            if let Some(Reverse((at, _))) = self.due.peek() {
                if sleep.deadline() != *at {
                    sleep.as_mut().reset(*at);
                }
            }
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                Some(done) = finished.recv() => self.finished(done),
                Some(command) = commands.recv() => match command {
                    Command::Start(checks) => checks.into_iter().for_each(|c| self.start(c)),
                    Command::Stop(names, stopped) => {
                        names.iter().for_each(|n| self.stop(n, &stopped));
                    }
                },
                () = &mut sleep, if !self.due.is_empty() => {
                    if self.dispatch() {
                        // More are due: let the probes just started (and everything else the
                        // worker has) run first. An overloaded worker thus starts probes only
                        // as fast as it runs them; the rest wait here, are reported late, and
                        // skip the runs they missed, instead of queueing as started probes
                        // whose timeouts would run out before they were ever polled.
                        tokio::task::yield_now().await;
                    }
                }
            }
            if self.ctx.observations.is_closed() {
                return;
            }
        }
    }

    fn start(&mut self, check: ScheduledCheck<P>) {
        let ScheduledCheck {
            name,
            kind,
            interval,
            timeout,
            retry,
            prober,
        } = check;
        let first = Instant::now() + spread_offset(&name, interval);
        let row = self.ctx.metrics.table.check(&name, kind);
        if let Some(index) = self.by_name.get(&name).copied() {
            // Started again without a stop: the new one replaces it.
            self.release(index);
        }
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 checks")
            }
        };
        let (generation, place) = &mut self.slots[index as usize];
        *generation = generation.wrapping_add(1);
        let id = SlotId {
            index,
            generation: *generation,
        };
        *place = Some(Slot {
            job: Arc::new(Job {
                name: name.clone(),
                timeout,
                prober,
                cancel: self.cancel.child_token(),
            }),
            interval,
            retry,
            planned: first,
            grid: first,
            failures: 0,
            row,
            running: false,
            stopping: None,
        });
        self.by_name.insert(name, index);
        self.due.push(Reverse((first, id)));
    }

    fn stop(&mut self, name: &str, stopped: &Arc<oneshot::Sender<()>>) {
        let Some(index) = self.by_name.remove(name) else {
            return;
        };
        let Some(slot) = self.slots[index as usize].1.as_mut() else {
            return;
        };
        if slot.running {
            slot.job.cancel.cancel();
            slot.stopping = Some(stopped.clone());
        } else {
            self.release(index);
        }
    }

    /// Frees a slot: its heap entry, if any, is ignored from now on (its generation moves on
    /// when the slot is filled again; an empty slot matches nothing).
    fn release(&mut self, index: u32) {
        if let Some(slot) = self.slots[index as usize].1.take() {
            slot.job.cancel.cancel();
            if self.by_name.get(&slot.job.name) == Some(&index) {
                self.by_name.remove(&slot.job.name);
            }
            self.free.push(index);
        }
    }

    fn slot(&mut self, id: SlotId) -> Option<&mut Slot<P>> {
        match self.slots.get_mut(id.index as usize) {
            Some((generation, Some(slot))) if *generation == id.generation => Some(slot),
            _ => None,
        }
    }

    /// Starts the probes of the checks that are due, at most [`DISPATCH_BATCH`]; returns
    /// whether more are due.
    fn dispatch(&mut self) -> bool {
        let now = Instant::now();
        let mut started = 0;
        while let Some(Reverse((at, id))) = self.due.peek().copied() {
            if at > now {
                return false;
            }
            if started == DISPATCH_BATCH {
                return true;
            }
            self.due.pop();
            let Some(slot) = self.slot(id) else { continue };
            if slot.running || slot.planned != at {
                continue;
            }
            slot.running = true;
            let job = slot.job.clone();
            let lateness = now.saturating_duration_since(at);
            self.ctx
                .metrics
                .scheduler_lateness
                .observe(lateness.as_secs_f64());
            self.ctx.pulse.record(lateness);
            started += 1;
            self.tracker.spawn(probe(
                job,
                id,
                self.ctx.observations.clone(),
                self.ctx.clock.clone(),
                self.done.clone(),
            ));
        }
        false
    }

    /// A probe returned: plans its check's next run, or frees a check stopped meanwhile.
    fn finished(&mut self, done: Done) {
        let now = Instant::now();
        let id = done.slot;
        let panics = self.panics.clone();
        let Some(slot) = self.slot(id) else {
            return;
        };
        slot.running = false;
        let up = match done.ended {
            _ if slot.stopping.is_some() => return self.release(id.index),
            Ended::Stopped => return self.release(id.index),
            Ended::Ran { up } => up,
            Ended::Panicked => {
                panics.inc();
                tracing::error!(
                    check = %slot.job.name,
                    "probe panicked; running it again in one interval"
                );
                slot.planned = now + slot.interval;
                slot.grid = slot.planned;
                slot.failures = 0;
                let at = slot.planned;
                self.due.push(Reverse((at, id)));
                return;
            }
        };
        slot.failures = if up {
            0
        } else {
            slot.failures.saturating_add(1)
        };
        let next = plan_next(
            slot.planned,
            slot.grid,
            slot.interval,
            slot.retry,
            slot.failures,
            now,
        );
        if next.skipped > 0 {
            slot.row.skipped.fetch_add(next.skipped, Ordering::Relaxed);
            tracing::debug!(
                check = %slot.job.name,
                missed = next.skipped,
                "probe overran its interval, runs skipped"
            );
        }
        if next.at != next.grid {
            tracing::debug!(
                check = %slot.job.name,
                failures = slot.failures,
                "probe failed: re-checking at the retry interval"
            );
        }
        slot.planned = next.at;
        slot.grid = next.grid;
        self.due.push(Reverse((next.at, id)));
    }
}

/// One run of a check: its probe (cancelled with the check), its observation sent, and the
/// report back to the scheduler, panic or not.
async fn probe<P: Observe>(
    job: Arc<Job<P>>,
    slot: SlotId,
    observations: mpsc::Sender<Observation>,
    clock: Clock,
    done: mpsc::UnboundedSender<Done>,
) {
    let span = tracing::info_span!("check", check = %job.name);
    let run = async {
        let obs = tokio::select! {
            biased;
            _ = job.cancel.cancelled() => return Ended::Stopped,
            obs = job.prober.observe(&job.name, job.timeout, &clock) => obs,
        };
        let up = obs.is_up();
        match observations.send(obs).await {
            Ok(()) => Ended::Ran { up },
            Err(_) => Ended::Stopped,
        }
    };
    let ended = std::panic::AssertUnwindSafe(run.instrument(span))
        .catch_unwind()
        .await
        .unwrap_or(Ended::Panicked);
    let _ = done.send(Done { slot, ended });
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

    /// A probe whose time and outcome the test chooses; it records when each run started.
    struct Fake {
        runs: std::sync::Mutex<Vec<Instant>>,
        takes: Duration,
        up: bool,
        /// Runs (0-based) that panic.
        panic_on: Vec<usize>,
    }

    impl Fake {
        fn new(takes: Duration, up: bool) -> Arc<Self> {
            Arc::new(Fake {
                runs: Default::default(),
                takes,
                up,
                panic_on: Vec::new(),
            })
        }

        /// When each run started, from `t0`, to the millisecond below: the runtime's timers
        /// fire on whole milliseconds, so a run planned at x.3 ms starts at x+1 ms.
        fn starts(&self, t0: Instant) -> Vec<Duration> {
            let runs = self.runs.lock().unwrap();
            runs.iter()
                .map(|r| ms_below(*r - t0 - Duration::from_micros(999)))
                .collect()
        }
    }

    impl Observe for Fake {
        async fn observe(&self, check: &str, _timeout: Duration, clock: &Clock) -> Observation {
            {
                let n = {
                    let mut runs = self.runs.lock().unwrap();
                    runs.push(Instant::now());
                    runs.len() - 1
                };
                assert!(!self.panic_on.contains(&n), "probe bug on run {n}");
                tokio::time::sleep(self.takes).await;
                let outcome = if self.up {
                    Ok(())
                } else {
                    Err(crate::check::ProbeError::new(
                        crate::check::ProbeErrorKind::Connect,
                        "refused",
                    ))
                };
                Observation {
                    check: check.to_string(),
                    at: clock.now(),
                    duration: self.takes,
                    outcome,
                    values: Default::default(),
                    vectors: Default::default(),
                    scraped: None,
                }
            }
        }
    }

    fn ms_below(d: Duration) -> Duration {
        Duration::from_millis(d.as_millis() as u64)
    }

    /// Planned starts as [`Fake::starts`] reports them.
    fn planned(offset: Duration, after: &[u64]) -> Vec<Duration> {
        after
            .iter()
            .map(|a| ms_below(offset + Duration::from_millis(*a)))
            .collect()
    }

    fn fake(
        name: &str,
        interval: Duration,
        retry: Option<Retry>,
        probe: &Arc<Fake>,
    ) -> ScheduledCheck<Fake> {
        ScheduledCheck {
            name: name.into(),
            kind: "http",
            interval,
            timeout: Duration::from_secs(5),
            retry,
            prober: probe.clone(),
        }
    }

    /// A scheduler with nothing started, and the receiving end of its observations.
    struct Rig {
        handle: Handle<Fake>,
        observed: mpsc::Receiver<Observation>,
        metrics: Metrics,
        pulse: Arc<Pulse>,
        cancel: CancellationToken,
        tracker: TaskTracker,
    }

    /// A scheduler's context on a manual clock, and the receiving end of its observations.
    fn context() -> (Context, mpsc::Receiver<Observation>) {
        let (tx, observed) = mpsc::channel(100_000);
        let ctx = Context {
            observations: tx,
            clock: Clock::manual(crate::clock::Timestamp(0)),
            metrics: Metrics::new(),
            pulse: Arc::new(Pulse::default()),
        };
        (ctx, observed)
    }

    fn rig() -> Rig {
        let (ctx, observed) = context();
        let (metrics, pulse) = (ctx.metrics.clone(), ctx.pulse.clone());
        let cancel = CancellationToken::new();
        let tracker = TaskTracker::new();
        let handle = spawn(&ctx, cancel.clone(), &tracker);
        Rig {
            handle,
            observed,
            metrics,
            pulse,
            cancel,
            tracker,
        }
    }

    fn drain(observed: &mut mpsc::Receiver<Observation>) -> Vec<String> {
        std::iter::from_fn(|| observed.try_recv().ok())
            .map(|o| o.check)
            .collect()
    }

    /// Lets time run (paused: jumps straight to each timer) until `t0 + to`.
    async fn until(t0: Instant, to: Duration) {
        tokio::time::sleep_until(t0 + to).await;
    }

    #[tokio::test(start_paused = true)]
    async fn checks_run_at_their_offset_then_every_interval_on_time() {
        let mut rig = rig();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let probes: Vec<_> = (0..3)
            .map(|_| Fake::new(Duration::from_millis(40), true))
            .collect();
        let names = ["api", "db", "cache"];
        rig.handle.start(
            names
                .iter()
                .zip(&probes)
                .map(|(n, p)| fake(n, s(10), None, p))
                .collect(),
        );
        until(t0, s(35)).await;
        for (name, probe) in names.iter().zip(&probes) {
            let offset = spread_offset(name, s(10));
            let want: Vec<u64> = (0..4)
                .map(|k| k * 10_000)
                .filter(|t| offset + Duration::from_millis(*t) <= s(35))
                .collect();
            assert_eq!(probe.starts(t0), planned(offset, &want), "check {name}");
        }
        let seen = drain(&mut rig.observed);
        assert_eq!(
            seen.len(),
            probes.iter().map(|p| p.starts(t0).len()).sum::<usize>()
        );
        // Late by less than the timer's millisecond, every run.
        assert!(rig.pulse.take(PulseReader::Watchdog) < Duration::from_millis(1));
        assert!(rig.metrics.scheduler_lateness.get_sample_count() >= 9);
        rig.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_overrunning_probe_skips_runs_and_never_runs_twice_at_once() {
        let mut rig = rig();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Takes 25 s of a 10 s interval: the runs at +10 and +20 are impossible.
        let slow = Fake::new(s(25), true);
        rig.handle.start(vec![fake("slow", s(10), None, &slow)]);
        let o = spread_offset("slow", s(10));
        until(t0, o + s(65)).await;
        assert_eq!(slow.starts(t0), planned(o, &[0, 30_000, 60_000]));
        let row = rig.metrics.table.check("slow", "http");
        assert_eq!(row.skipped.load(Ordering::Relaxed), 4);
        assert_eq!(drain(&mut rig.observed).len(), 2);
        rig.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_check_is_rechecked_then_returns_to_its_grid() {
        let rig = rig();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let down = Fake::new(Duration::ZERO, false);
        let retry = Some(Retry {
            interval: s(2),
            attempts: 3,
        });
        rig.handle.start(vec![fake("down", s(10), retry, &down)]);
        let o = spread_offset("down", s(10));
        until(t0, o + s(21)).await;
        assert_eq!(
            down.starts(t0),
            planned(o, &[0, 2_000, 4_000, 10_000, 20_000])
        );
        rig.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_probe_is_counted_and_runs_again_an_interval_later() {
        let mut rig = rig();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let buggy = Arc::new(Fake {
            runs: Default::default(),
            takes: Duration::ZERO,
            up: true,
            panic_on: vec![0, 2],
        });
        let fine = Fake::new(Duration::ZERO, true);
        rig.handle.start(vec![
            fake("buggy", s(10), None, &buggy),
            fake("fine", s(10), None, &fine),
        ]);
        let o = spread_offset("buggy", s(10));
        until(t0, o + s(35)).await;
        assert_eq!(buggy.starts(t0), planned(o, &[0, 10_000, 20_000, 30_000]));
        assert_eq!(fine.starts(t0).len(), 4, "the other check is not disturbed");
        let panics = rig.metrics.task_panics.with_label_values(&["check"]).get();
        assert_eq!(panics, 2);
        let seen = drain(&mut rig.observed);
        assert_eq!(seen.iter().filter(|c| *c == "buggy").count(), 2);
        assert_eq!(seen.iter().filter(|c| *c == "fine").count(), 4);
        rig.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_check_stops_mid_probe_and_never_runs_again_until_started() {
        let mut rig = rig();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let probe = Fake::new(s(3), true);
        let idle = Fake::new(Duration::ZERO, true);
        rig.handle.start(vec![
            fake("busy", s(10), None, &probe),
            fake("idle", s(10), None, &idle),
        ]);
        let o = spread_offset("busy", s(10));
        // Mid-probe: the stop cancels it and returns once it has.
        until(t0, o + s(1)).await;
        let asked = Instant::now();
        rig.handle
            .stop(vec!["busy".into(), "idle".into(), "unknown".into()])
            .await;
        assert_eq!(
            Instant::now(),
            asked,
            "the probe was cancelled, not waited out"
        );
        until(t0, s(60)).await;
        assert_eq!(probe.starts(t0), planned(o, &[0]));
        assert!(idle.starts(t0).len() <= 1);
        assert!(drain(&mut rig.observed).iter().all(|c| c != "busy"));
        // Started again: from its offset after the start.
        let t1 = Instant::now();
        rig.handle.start(vec![fake("busy", s(10), None, &probe)]);
        until(t1, o + s(4)).await;
        let restarted = ms_below(t1 - t0 + o);
        assert_eq!(probe.starts(t0), [ms_below(o), restarted]);
        assert_eq!(drain(&mut rig.observed), ["busy"]);
        rig.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_scheduler_and_every_probe() {
        let rig = rig();
        let s = Duration::from_secs;
        let hung = Fake::new(s(3600), true);
        rig.handle.start(vec![fake("hung", s(10), None, &hung)]);
        tokio::time::sleep(s(11)).await;
        assert_eq!(hung.runs.lock().unwrap().len(), 1);
        rig.cancel.cancel();
        rig.tracker.close();
        tokio::time::timeout(s(1), rig.tracker.wait())
            .await
            .expect("the scheduler and the hung probe stop at once");
    }

    #[tokio::test(start_paused = true)]
    async fn due_probes_are_started_in_batches_so_an_overloaded_worker_runs_them_first() {
        let (ctx, _observed) = context();
        let metrics = ctx.metrics.clone();
        let tracker = TaskTracker::new();
        let (done, _finished) = mpsc::unbounded_channel();
        let mut scheduler = Scheduler {
            slots: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            due: BinaryHeap::new(),
            done,
            panics: metrics.task_panics.with_label_values(&["check"]),
            ctx,
            cancel: CancellationToken::new(),
            tracker: tracker.clone(),
        };
        let probe = Fake::new(Duration::from_secs(1), true);
        // A 1 ns interval puts every first run at the start: 200 probes due at once.
        for i in 0..200 {
            scheduler.start(fake(
                &format!("c{i}"),
                Duration::from_nanos(1),
                None,
                &probe,
            ));
        }
        let mut batches = Vec::new();
        loop {
            let before = tracker.len();
            let more = scheduler.dispatch();
            batches.push(tracker.len() - before);
            if !more {
                break;
            }
        }
        assert_eq!(batches, [64, 64, 64, 8]);
        scheduler.cancel.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_check_costs_a_slot_not_a_task() {
        // 10,000 checks asleep between runs are 10,000 slots in one task, not 10,000 tasks
        // (each with its future, timer and span).
        let rig = rig();
        let probe = Fake::new(Duration::ZERO, true);
        let s = Duration::from_secs;
        rig.handle.start(
            (0..10_000)
                .map(|i| fake(&format!("c{i}"), s(3600), None, &probe))
                .collect(),
        );
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(tasks, 1, "only the scheduler's task");
        let slot = std::mem::size_of::<(u32, Option<Slot<Prober>>)>()
            + std::mem::size_of::<Reverse<(Instant, SlotId)>>();
        assert!(slot <= 160, "a check's slot and heap entry: {slot} bytes");
        rig.cancel.cancel();
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
