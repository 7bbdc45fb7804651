//! The standard process metrics (`process_*`), as Prometheus' own client libraries export
//! them, read from `/proc/self` at every gather: what warden itself costs.
//!
//! Not the `prometheus` crate's `process` feature: its `ProcessCollector` keeps CPU time in an
//! integer counter of whole seconds (a 60 s window at 2 % of a core reads 1 s or 2 s, off by
//! up to 100 %), truncates the start time to whole seconds, and pulls in `procfs`. This one
//! reports CPU in seconds with the kernel's tick resolution (10 ms), and reads the same files
//! Prometheus' Go client reads.
//!
//! A file that cannot be read (not Linux, `/proc` hidden) leaves its series out of the
//! gather; nothing here fails or logs.

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

/// The series and their help texts (client_golang's, so dashboards built for any Prometheus
/// client read them the same way).
const CPU: (&str, &str) = (
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
);
const RSS: (&str, &str) = (
    "process_resident_memory_bytes",
    "Resident memory size in bytes",
);
const VSIZE: (&str, &str) = (
    "process_virtual_memory_bytes",
    "Virtual memory size in bytes",
);
const OPEN_FDS: (&str, &str) = ("process_open_fds", "Number of open file descriptors");
const MAX_FDS: (&str, &str) = (
    "process_max_fds",
    "Maximum number of open file descriptors (the soft RLIMIT_NOFILE)",
);
const START: (&str, &str) = (
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds",
);

/// `process_*` for the process warden runs in.
pub struct ProcessCollector {
    descs: Vec<Desc>,
    /// `USER_HZ`: the unit of the times in `/proc/self/stat`.
    ticks_per_second: f64,
    page_size: f64,
    /// Fixed for the life of the process: read once.
    start_time: Option<f64>,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let descs = [CPU, RSS, VSIZE, OPEN_FDS, MAX_FDS, START]
            .iter()
            .map(|(name, help)| {
                super::must(Desc::new(
                    name.to_string(),
                    help.to_string(),
                    Vec::new(),
                    HashMap::new(),
                ))
            })
            .collect();
        let ticks_per_second = rustix::param::clock_ticks_per_second().max(1) as f64;
        let start_time = (|| {
            let stat = parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
            let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
            Some(boot as f64 + stat.start_ticks as f64 / ticks_per_second)
        })();
        ProcessCollector {
            descs,
            ticks_per_second,
            page_size: rustix::param::page_size() as f64,
            start_time,
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut out = Vec::with_capacity(6);
        if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s))
        {
            let cpu = (stat.user_ticks + stat.system_ticks) as f64 / self.ticks_per_second;
            out.push(family(CPU, MetricType::COUNTER, cpu));
            out.push(family(
                RSS,
                MetricType::GAUGE,
                stat.rss_pages as f64 * self.page_size,
            ));
            out.push(family(VSIZE, MetricType::GAUGE, stat.vsize_bytes as f64));
        }
        // The directory's own descriptor is counted too, as client_golang and procfs count it.
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            out.push(family(OPEN_FDS, MetricType::GAUGE, dir.count() as f64));
        }
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        out.push(family(
            MAX_FDS,
            MetricType::GAUGE,
            limit.current.map_or(f64::INFINITY, |n| n as f64),
        ));
        if let Some(start) = self.start_time {
            out.push(family(START, MetricType::GAUGE, start));
        }
        out
    }
}

fn family((name, help): (&str, &str), kind: MetricType, value: f64) -> MetricFamily {
    let mut m = Metric::default();
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        m.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        m.set_gauge(g);
    }
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.mut_metric().push(m);
    f
}

/// What `process_*` needs of `/proc/<pid>/stat` (proc(5)).
#[derive(Debug, PartialEq)]
struct Stat {
    user_ticks: u64,
    system_ticks: u64,
    /// Since boot, in clock ticks.
    start_ticks: u64,
    vsize_bytes: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so the fields are counted from after its last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, rest) = text.rsplit_once(')')?;
    // `rest` starts at field 3 (state): field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(Stat {
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The boot time (`btime`, unix seconds) from `/proc/stat`.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with spaces and a parenthesis, as a thread may be named.
        let line = "4242 (tokio) (x 1) S 1 4242 4242 0 -1 4194560 1203 0 0 0 \
                    157 42 0 0 20 0 3 0 886411 12345678 2048 18446744073709551615 1 1 0 0 0 0 0 \
                    4096 17003 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                user_ticks: 157,
                system_ticks: 42,
                start_ticks: 886411,
                vsize_bytes: 12345678,
                rss_pages: 2048,
            })
        );
        assert_eq!(parse_stat("4242 (short) S 1 2 3"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_is_the_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5 6\nctxt 99\nbtime 1767225600\nprocesses 7\n";
        assert_eq!(parse_boot_time(text), Some(1_767_225_600));
        assert_eq!(parse_boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn collects_the_six_series_of_this_process() {
        let families = ProcessCollector::new().collect();
        let value = |name: &str| -> f64 {
            let f = families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            let m = &f.get_metric()[0];
            match f.get_field_type() {
                MetricType::COUNTER => m.get_counter().get_value(),
                _ => m.get_gauge().get_value(),
            }
        };
        assert_eq!(families.len(), 6);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        // Absolute (unix seconds, after 2020), not seconds since boot.
        assert!(value("process_start_time_seconds") > 1_577_836_800.0);
    }
}
