//! warden's own telemetry: the Prometheus registry and the log subscriber.
//!
//! Metrics live on an explicit [`prometheus::Registry`] owned by [`Metrics`] (no globals, so
//! every test gets its own). Names follow Prometheus conventions: `warden_` prefix, base units,
//! `_total` counters, bounded labels (check and rule names come from the config, never URLs
//! or error strings). This module decides nothing; drivers call it to record.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::config::LogFormat;
#[path = "telemetry_table.rs"]
pub mod table;

pub use table::{SeriesGauge, Table};

use prometheus::proto::{MetricFamily, MetricType};

mod process;
pub use process::ProcessCollector;

/// The Content-Type of the text exposition format 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric warden exports. Cheap to clone (handles are reference counted).
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub check_duration: HistogramVec,
    pub scheduler_lateness: Histogram,
    pub task_panics: IntCounterVec,
    /// The per-check and per-rule families (`warden_check_up`, `warden_rule_state`, ...),
    /// kept compactly and rendered as text (see `telemetry::table`).
    pub table: Table,
    pub last_evaluation: Gauge,
    pub checks_configured: IntGauge,
    pub rules_configured: IntGauge,
    pub start_time: Gauge,
    pub config_reload_ok: IntGauge,
    pub config_reload_time: Gauge,
    pub config_hash: Gauge,
    pub config_reloads: IntCounterVec,
    pub watchdog_skipped: IntCounter,
    /// `warden_heartbeats_total{result}`: outbound heartbeats (src/heartbeat.rs).
    pub heartbeats: IntCounterVec,
    pub heartbeat_last_success: Gauge,

    // --- Outbox and hooks (src/outbox, src/hook.rs) ---
    pub notifications: IntCounterVec,
    pub notification_latency: HistogramVec,
    pub outbox_depth: IntGaugeVec,
    pub outbox_oldest_age: GaugeVec,
    /// When each notifier's delivery task is due to have looked at the store again (wall
    /// time); past it, the task is stuck (read by `vitals`).
    pub outbox_next_poll: GaugeVec,
    pub hook_runs: IntCounterVec,
    pub hook_duration: HistogramVec,

    // --- Alerts (src/actions) ---
    pub alerts_firing: IntGaugeVec,
    /// `warden_window_state{window,state}`: 1 for the state of each window's latest run.
    pub window_state: IntGaugeVec,
    /// `warden_window_marks_total{window,result}`.
    pub window_marks: IntCounterVec,
    pub state_write_failures: IntCounter,

    // --- SLOs (src/slo) ---
    pub slo_budget_remaining: GaugeVec,
    pub slo_burn_rate: GaugeVec,

    // --- Its own cost (the `process_*` series come from [`ProcessCollector`]) ---
    /// `warden_metrics_series`: the series the last `/metrics` rendering held, itself included
    /// (set by [`Metrics::encode`]).
    pub metrics_series: IntGauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and label sets below are literals checked by the tests: creation and
    // registration can only fail on a programming error, never on input.
    r.expect("static metric definition is valid")
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| must(registry.register(c));

        let build_info = must(IntGaugeVec::new(
            Opts::new("warden_build_info", "warden build, value is always 1"),
            &["version"],
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        reg(Box::new(build_info));

        // By kind, not by check: 16 series per check made /metrics 60% histogram at scale
        // (10,000 checks: 160,000 series). Per check, the last duration is a gauge.
        let check_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "warden_check_duration_seconds",
                "Duration of check probes by kind, including failed ones",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["kind"],
        ));
        let scheduler_lateness = must(Histogram::with_opts(
            HistogramOpts::new(
                "warden_scheduler_lateness_seconds",
                "Actual minus planned start time of check runs",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
        ));
        let task_panics = must(IntCounterVec::new(
            Opts::new(
                "warden_task_panics_total",
                "Tasks that panicked and were restarted, by task kind",
            ),
            &["task"],
        ));
        let last_evaluation = must(Gauge::new(
            "warden_last_successful_evaluation_timestamp_seconds",
            "Unix time warden last evaluated an observation; page on staleness",
        ));
        let checks_configured = must(IntGauge::new(
            "warden_checks_configured",
            "Checks in the running config",
        ));
        let rules_configured = must(IntGauge::new(
            "warden_rules_configured",
            "Rules in the running config",
        ));
        let start_time = must(Gauge::new(
            "warden_start_time_seconds",
            "Unix time warden started",
        ));
        let config_reload_ok = must(IntGauge::new(
            "warden_config_last_reload_successful",
            "1 if the last config (re)load succeeded, 0 if it failed and the previous config still runs",
        ));
        let config_reload_time = must(Gauge::new(
            "warden_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful config (re)load",
        ));
        let config_hash = must(Gauge::new(
            "warden_config_hash",
            "Hash of the running config's files (48 bits, exact as a float); changes on every applied edit",
        ));
        let config_reloads = must(IntCounterVec::new(
            Opts::new(
                "warden_config_reloads_total",
                "Config reload attempts by result (applied, unchanged, failed)",
            ),
            &["result"],
        ));
        let watchdog_skipped = must(IntCounter::new(
            "warden_watchdog_skipped_total",
            "systemd watchdog keep-alives withheld because the scheduler or evaluator was behind",
        ));
        reg(Box::new(check_duration.clone()));
        reg(Box::new(scheduler_lateness.clone()));
        reg(Box::new(task_panics.clone()));
        reg(Box::new(last_evaluation.clone()));
        reg(Box::new(checks_configured.clone()));
        reg(Box::new(rules_configured.clone()));
        reg(Box::new(start_time.clone()));
        reg(Box::new(config_reload_ok.clone()));
        reg(Box::new(config_reload_time.clone()));
        reg(Box::new(config_hash.clone()));
        reg(Box::new(config_reloads.clone()));
        reg(Box::new(watchdog_skipped.clone()));
        let heartbeats = must(IntCounterVec::new(
            Opts::new(
                "warden_heartbeats_total",
                "Outbound heartbeats by result: sent (2xx), failed (no 2xx answer), skipped (warden's own pipeline was behind)",
            ),
            &["result"],
        ));
        let heartbeat_last_success = must(Gauge::new(
            "warden_heartbeat_last_success_timestamp_seconds",
            "Unix time of the last outbound heartbeat the receiver answered with a 2xx",
        ));
        reg(Box::new(heartbeats.clone()));
        reg(Box::new(heartbeat_last_success.clone()));
        for result in ["applied", "unchanged", "failed"] {
            config_reloads.with_label_values(&[result]);
        }

        // --- Outbox and hooks (src/outbox, src/hook.rs) ---
        let notifications = must(IntCounterVec::new(
            Opts::new(
                "warden_notifications_total",
                "Notification attempts by notifier and result (sent, retry, failed, dropped)",
            ),
            &["notifier", "result"],
        ));
        let notification_latency = must(HistogramVec::new(
            HistogramOpts::new(
                "warden_notification_latency_seconds",
                "Time from enqueue to delivery of notifications, retries included",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
            ]),
            &["notifier"],
        ));
        let outbox_depth = must(IntGaugeVec::new(
            Opts::new(
                "warden_outbox_depth",
                "Notifications waiting in the outbox, by notifier",
            ),
            &["notifier"],
        ));
        let outbox_oldest_age = must(GaugeVec::new(
            Opts::new(
                "warden_outbox_oldest_age_seconds",
                "Age of the oldest notification waiting in the outbox (0 when empty)",
            ),
            &["notifier"],
        ));
        let hook_runs = must(IntCounterVec::new(
            Opts::new(
                "warden_hook_runs_total",
                "Hook runs by outcome (success, failure, timeout, error, dry_run, skipped, interrupted)",
            ),
            &["hook", "outcome"],
        ));
        let hook_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "warden_hook_duration_seconds",
                "Wall time of hook runs that executed",
            )
            .buckets(vec![
                0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
            ]),
            &["hook"],
        ));
        reg(Box::new(notifications.clone()));
        reg(Box::new(notification_latency.clone()));
        reg(Box::new(outbox_depth.clone()));
        reg(Box::new(outbox_oldest_age.clone()));
        let outbox_next_poll = must(GaugeVec::new(
            Opts::new(
                "warden_outbox_next_poll_timestamp_seconds",
                "Unix time by which the notifier's delivery task is due to look at the state store again; a time in the past means the task is stuck",
            ),
            &["notifier"],
        ));
        reg(Box::new(outbox_next_poll.clone()));
        reg(Box::new(hook_runs.clone()));
        reg(Box::new(hook_duration.clone()));
        let alerts_firing = must(IntGaugeVec::new(
            Opts::new(
                "warden_alerts_firing",
                "Alerts firing now, by severity (persisted across restarts)",
            ),
            &["severity"],
        ));
        for severity in ["warning", "critical"] {
            alerts_firing.with_label_values(&[severity]).set(0);
        }
        let state_write_failures = must(IntCounter::new(
            "warden_state_write_failures_total",
            "Attempts to write alert states and notifications to the state store that failed (each is retried)",
        ));
        reg(Box::new(alerts_firing.clone()));
        reg(Box::new(state_write_failures.clone()));
        let window_state = must(IntGaugeVec::new(
            Opts::new(
                "warden_window_state",
                "1 for the state of each validation window's latest run (running, passed, failed, inconclusive, aborted, superseded), else 0",
            ),
            &["window", "state"],
        ));
        let window_marks = must(IntCounterVec::new(
            Opts::new(
                "warden_window_marks_total",
                "Validation window marks judged, by window and result (passed, failed, inconclusive)",
            ),
            &["window", "result"],
        ));
        reg(Box::new(window_state.clone()));
        reg(Box::new(window_marks.clone()));
        let slo_budget_remaining = must(GaugeVec::new(
            Opts::new(
                "warden_slo_error_budget_remaining_ratio",
                "The share of the SLO's error budget left over its period (1 untouched, below 0 overspent)",
            ),
            &["slo"],
        ));
        let slo_burn_rate = must(GaugeVec::new(
            Opts::new(
                "warden_slo_burn_rate",
                "How fast the SLO spends its error budget over the window (1: exactly the budget over the period)",
            ),
            &["slo", "window"],
        ));
        reg(Box::new(slo_budget_remaining.clone()));
        reg(Box::new(slo_burn_rate.clone()));

        // --- Its own cost ---
        reg(Box::<ProcessCollector>::default());
        let metrics_series = must(IntGauge::new(
            "warden_metrics_series",
            "Series in warden's own /metrics at its last rendering, this one included (a histogram counts its buckets, _sum and _count)",
        ));
        reg(Box::new(metrics_series.clone()));

        Metrics {
            registry,
            check_duration,
            scheduler_lateness,
            task_panics,
            table: Table::default(),
            last_evaluation,
            checks_configured,
            rules_configured,
            start_time,
            config_reload_ok,
            config_reload_time,
            config_hash,
            config_reloads,
            watchdog_skipped,
            heartbeats,
            heartbeat_last_success,
            notifications,
            notification_latency,
            outbox_depth,
            outbox_oldest_age,
            outbox_next_poll,
            hook_runs,
            hook_duration,
            alerts_firing,
            state_write_failures,
            window_state,
            window_marks,
            slo_budget_remaining,
            slo_burn_rate,
            metrics_series,
        }
    }

    /// The registry in the text exposition format 0.0.4, with `warden_metrics_series` set to
    /// the series this rendering holds.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        self.encode_chunked(usize::MAX, &mut |chunk| {
            out.extend_from_slice(&chunk);
            true
        });
        out
    }

    /// `/metrics` in pieces, for a streamed response: the registry's families (warden's own,
    /// a few hundred series whatever the config) as the first piece, then the per-check and
    /// per-rule families in chunks of about `chunk` bytes ([`Table::render_chunked`]). Stops
    /// when `send` returns `false`. `warden_metrics_series` says the series of this rendering:
    /// the registry's and the table's (counted just before it renders).
    pub fn encode_chunked(&self, chunk: usize, send: &mut dyn FnMut(Vec<u8>) -> bool) {
        let mut head = Vec::with_capacity(16 * 1024);
        let mut families = self.registry.gather();
        let series = series_in(&families) + self.table.series_count();
        self.metrics_series.set(series as i64);
        // The gather read the previous count: this rendering says its own.
        if let Some(f) = families
            .iter_mut()
            .find(|f| f.name() == "warden_metrics_series")
        {
            for m in f.mut_metric() {
                let mut g = prometheus::proto::Gauge::default();
                g.set_value(series as f64);
                m.set_gauge(g);
            }
        }
        if let Err(e) = TextEncoder::new().encode(&families, &mut head) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        if send(head) {
            self.table.render_chunked(chunk, send);
        }
    }
}

/// The sample lines the text format writes for `families`: one per counter, gauge or untyped
/// series; a histogram's buckets (plus `+Inf` when absent), `_sum` and `_count`; a summary's
/// quantiles, `_sum` and `_count`.
fn series_in(families: &[MetricFamily]) -> usize {
    families
        .iter()
        .map(|f| {
            let kind = f.get_field_type();
            f.get_metric()
                .iter()
                .map(|m| match kind {
                    MetricType::HISTOGRAM => {
                        let buckets = m.get_histogram().get_bucket();
                        let inf = buckets.iter().any(|b| b.upper_bound() == f64::INFINITY);
                        buckets.len() + usize::from(!inf) + 2
                    }
                    MetricType::SUMMARY => m.get_summary().get_quantile().len() + 2,
                    _ => 1,
                })
                .sum::<usize>()
        })
        .sum()
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Installs the global log subscriber. `RUST_LOG` overrides `level`.
/// Logs go to stderr so `warden once` keeps stdout for its report.
/// Colour (ANSI escapes) only when the log goes to a terminal, and never when `NO_COLOR` is
/// set to anything but the empty string (<https://no-color.org>): a file or journald gets
/// plain text.
pub fn log_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(log_colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    // A second init (tests, `once` after `check-config`) is harmless: keep the first.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::{log_colour, Metrics};

    #[test]
    fn metrics_series_counts_the_lines_of_its_own_rendering() {
        let m = Metrics::new();
        m.check_duration.with_label_values(&["http"]).observe(0.02);
        // The table's series count too.
        m.table.check("api", "http").run("ok");
        m.table.rule("api-down", true, [None, Some(1.0)]);
        for _ in 0..2 {
            let text = String::from_utf8(m.encode()).unwrap();
            let samples = text.lines().filter(|l| !l.starts_with('#')).count();
            let said = text
                .lines()
                .find_map(|l| l.strip_prefix("warden_metrics_series "))
                .expect("warden_metrics_series is rendered");
            assert_eq!(said, samples.to_string(), "{text}");
            assert_eq!(m.metrics_series.get(), samples as i64);
            for name in [
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "process_virtual_memory_bytes",
                "process_open_fds",
                "process_max_fds",
                "process_start_time_seconds",
            ] {
                assert!(
                    text.lines().any(|l| l.starts_with(&format!("{name} "))),
                    "{name} missing"
                );
            }
        }
    }

    #[test]
    fn colour_only_on_a_terminal_and_never_under_no_color() {
        let cases = [
            (true, None, true),
            (false, None, false),
            (true, Some("1"), false),
            (true, Some(""), true),
            (false, Some("1"), false),
        ];
        for (terminal, no_color, want) in cases {
            assert_eq!(
                log_colour(terminal, no_color.map(OsStr::new)),
                want,
                "{terminal} {no_color:?}"
            );
        }
    }
}
