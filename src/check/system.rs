//! `system`: CPU and memory use of the host, or of warden's cgroup when it runs under a cgroup
//! v2 limit (a container, a systemd unit with `MemoryMax=` or `CPUQuota=`), and optionally the
//! fill of one file system.
//!
//! Values: `cpu_ratio` (0..1, busy share of the CPU available to the scope since this check's
//! previous probe; the first probe measures over min(timeout/4, 250 ms) so it has a value at
//! once), `memory_used_bytes`, `memory_limit_bytes`, `memory_ratio`, `load1` (host only), and
//! with `disk_path`: `disk_ratio` (used / (used + available to unprivileged users), like `df`)
//! and `disk_free_bytes` (that available space).
//!
//! Sources. Host: `/proc/stat` (busy = total − idle − iowait), `/proc/meminfo` (used =
//! MemTotal − MemAvailable), `/proc/loadavg`. Cgroup v2, found from `/proc/self/cgroup`'s
//! `0::/path` under `/sys/fs/cgroup` (pure v2) or `/sys/fs/cgroup/unified` (hybrid): memory is
//! `memory.current` against `memory.max` and CPU is `cpu.stat` `usage_usec` per wall-clock
//! microsecond against the CPUs `cpu.max` allows (quota / period; the cpuset or the online
//! CPUs when unlimited). A limit may sit on an ancestor (a slice, a pod): the nearest cgroup
//! on the path up that sets `memory.max` (or `cpu.max`) is the one measured, usage and limit
//! both. Without a memory limit the host's MemTotal is the limit; a limit above it counts as
//! MemTotal. A cgroup without the memory controller has no memory values.
//!
//! `scope = "auto"` picks the cgroup when one on that path sets a memory or CPU limit, else
//! the host, at every probe (a limit may be added at run time). Parsing is pure (functions
//! over file contents); every path is read under a root directory that tests point at a fake
//! hierarchy. File reads and `statvfs` run on the blocking pool, so a hung file system stalls
//! only this check (and its timeout reports it). This module never writes anything.

use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::{SystemCheck, SystemScope};

/// Longest first-probe measuring window.
const FIRST_WINDOW: Duration = Duration::from_millis(250);

pub struct SystemProbe {
    scope: SystemScope,
    disk_path: Option<PathBuf>,
    timeout: Duration,
    root: PathBuf,
    /// The previous CPU reading, for the next probe's delta.
    last: Mutex<Option<CpuMark>>,
}

impl SystemProbe {
    pub fn new(spec: &SystemCheck, timeout: Duration) -> Self {
        Self::with_root(spec, timeout, PathBuf::from("/"))
    }

    /// A probe reading `/proc` and `/sys` (and `disk_path`) under `root` instead of `/`.
    pub fn with_root(spec: &SystemCheck, timeout: Duration, root: PathBuf) -> Self {
        SystemProbe {
            scope: spec.scope,
            disk_path: spec.disk_path.clone(),
            timeout,
            root,
            last: Mutex::new(None),
        }
    }

    async fn read(&self) -> Result<Reading, ProbeError> {
        let fs = Fs {
            root: self.root.clone(),
        };
        let (scope, disk) = (self.scope, self.disk_path.clone());
        tokio::task::spawn_blocking(move || read(&fs, scope, disk.as_deref()))
            .await
            .unwrap_or_else(|e| {
                Err(ProbeError::new(
                    ProbeErrorKind::Setup,
                    format!("system reading failed: {e}"),
                ))
            })
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<CpuMark>> {
        // A panic while holding the lock leaves a valid Option behind.
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn probe(&self) -> Result<Values, ProbeError> {
        let mut reading = self.read().await?;
        let previous = self.last().clone();
        let previous = match previous.filter(|p| p.source == reading.cpu.source) {
            Some(p) => Some(p),
            None => {
                // First probe (or the scope changed): measure over a short window now.
                let start = reading.cpu.clone();
                tokio::time::sleep((self.timeout / 4).min(FIRST_WINDOW)).await;
                reading = self.read().await?;
                Some(start).filter(|s| s.source == reading.cpu.source)
            }
        };
        let cpu = previous.and_then(|p| {
            let wall = reading.cpu.at.saturating_duration_since(p.at);
            cpu_ratio(p.counters, reading.cpu.counters, wall)
        });
        *self.last() = Some(reading.cpu.clone());

        let mut values = Values::new();
        if let Some(cpu) = cpu {
            values.insert("cpu_ratio".into(), cpu);
        }
        if let Some(m) = reading.memory {
            values.insert("memory_used_bytes".into(), m.used as f64);
            values.insert("memory_limit_bytes".into(), m.limit as f64);
            if m.limit > 0 {
                values.insert("memory_ratio".into(), m.used as f64 / m.limit as f64);
            }
        }
        if let Some(load1) = reading.load1 {
            values.insert("load1".into(), load1);
        }
        match reading.disk {
            None => {}
            Some(Ok(disk)) => {
                values.insert("disk_ratio".into(), disk.ratio());
                values.insert("disk_free_bytes".into(), disk.available as f64);
            }
            Some(Err(e)) => return Err(e.with_values(values)),
        }
        Ok(values)
    }
}

impl Probe for SystemProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        super::within(self.timeout, "system", self.probe()).await
    }
}

/// Files under an injectable root.
struct Fs {
    root: PathBuf,
}

impl Fs {
    /// `path` (absolute, as on a real system) under the root.
    fn path(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn read(&self, path: &Path) -> Result<String, ProbeError> {
        std::fs::read_to_string(self.path(path)).map_err(|e| {
            ProbeError::new(
                ProbeErrorKind::Setup,
                format!("cannot read {}: {e}", path.display()),
            )
        })
    }

    /// Contents of a file that may be absent (a controller not enabled, the root cgroup).
    fn read_optional(&self, path: &Path) -> Option<String> {
        std::fs::read_to_string(self.path(path)).ok()
    }
}

/// What a probe saw at one instant.
struct Reading {
    cpu: CpuMark,
    memory: Option<Memory>,
    load1: Option<f64>,
    disk: Option<Result<Disk, ProbeError>>,
}

/// A CPU counter reading and where it came from.
#[derive(Debug, Clone)]
struct CpuMark {
    source: CpuSource,
    at: Instant,
    counters: CpuCounters,
}

/// Counters of different sources are not comparable.
#[derive(Debug, Clone, PartialEq)]
enum CpuSource {
    Host,
    /// The cgroup directory whose `cpu.stat` was read.
    Cgroup(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CpuCounters {
    /// `/proc/stat` jiffies summed over CPUs.
    Host { busy: u64, total: u64 },
    /// `cpu.stat` `usage_usec`, and the CPUs the cgroup may use.
    Cgroup { usage_usec: u64, cpus: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    pub used: u64,
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Disk {
    pub used: u64,
    pub available: u64,
}

impl Disk {
    /// Like `df`'s Use%: used / (used + available to unprivileged users).
    pub fn ratio(&self) -> f64 {
        let total = self.used as f64 + self.available as f64;
        if total > 0.0 {
            self.used as f64 / total
        } else {
            0.0
        }
    }
}

/// The CPU utilisation between two readings: for the host, busy jiffies over all jiffies; for
/// a cgroup, CPU time over wall time times the CPUs available. Clamped to 0..1 (cgroup
/// accounting may run slightly ahead of its quota over a short window). `None` when the
/// readings are not comparable or no time passed.
pub fn cpu_ratio(previous: CpuCounters, current: CpuCounters, wall: Duration) -> Option<f64> {
    let ratio = match (previous, current) {
        (
            CpuCounters::Host {
                busy: b0,
                total: t0,
            },
            CpuCounters::Host {
                busy: b1,
                total: t1,
            },
        ) => {
            let total = t1.checked_sub(t0).filter(|&t| t > 0)?;
            b1.saturating_sub(b0) as f64 / total as f64
        }
        (
            CpuCounters::Cgroup { usage_usec: u0, .. },
            CpuCounters::Cgroup {
                usage_usec: u1,
                cpus,
            },
        ) => {
            let available = wall.as_secs_f64() * 1e6 * cpus;
            if available <= 0.0 {
                return None;
            }
            u1.checked_sub(u0)? as f64 / available
        }
        _ => return None,
    };
    Some(ratio.clamp(0.0, 1.0))
}

/// One reading of everything `scope` needs.
fn read(fs: &Fs, scope: SystemScope, disk_path: Option<&Path>) -> Result<Reading, ProbeError> {
    let meminfo_text = fs.read(Path::new("/proc/meminfo"))?;
    let host_memory = parse_meminfo(&meminfo_text).ok_or_else(|| {
        ProbeError::new(
            ProbeErrorKind::BadBody,
            "/proc/meminfo has no MemTotal line",
        )
    })?;
    let cgroup = match scope {
        SystemScope::Host => None,
        SystemScope::Auto => find_cgroup(fs).filter(|cg| cg.has_limit(fs)),
        SystemScope::Cgroup => Some(find_cgroup(fs).ok_or_else(|| {
            ProbeError::new(
                ProbeErrorKind::Setup,
                "no cgroup v2 for warden: /proc/self/cgroup has no 0:: entry, or its directory \
                 is not under /sys/fs/cgroup or /sys/fs/cgroup/unified",
            )
        })?),
    };
    let (cpu, memory, load1) = match cgroup {
        None => {
            let stat = fs.read(Path::new("/proc/stat"))?;
            let (busy, total) = parse_proc_stat(&stat).ok_or_else(|| {
                ProbeError::new(ProbeErrorKind::BadBody, "/proc/stat has no cpu line")
            })?;
            let at = Instant::now();
            let load1 = fs
                .read_optional(Path::new("/proc/loadavg"))
                .and_then(|t| parse_loadavg(&t));
            let cpu = CpuMark {
                source: CpuSource::Host,
                at,
                counters: CpuCounters::Host { busy, total },
            };
            (cpu, Some(host_memory.host_usage()), load1)
        }
        Some(cg) => {
            let cpu = cg.cpu(fs)?;
            let memory = cg.memory(fs, host_memory.total);
            (cpu, memory, None)
        }
    };
    let disk = disk_path.map(|p| statvfs(&fs.path(p), p));
    Ok(Reading {
        cpu,
        memory,
        load1,
        disk,
    })
}

fn statvfs(path: &Path, shown: &Path) -> Result<Disk, ProbeError> {
    let st = rustix::fs::statvfs(path).map_err(|e| {
        ProbeError::new(
            ProbeErrorKind::Setup,
            format!("statvfs {}: {e}", shown.display()),
        )
    })?;
    let frsize = st.f_frsize;
    Ok(Disk {
        used: st
            .f_blocks
            .saturating_sub(st.f_bfree)
            .saturating_mul(frsize),
        available: st.f_bavail.saturating_mul(frsize),
    })
}

/// Warden's cgroup v2 directory and its ancestors up to the hierarchy's root.
struct Cgroup {
    /// Warden's own cgroup first, then each parent, the mount point last (absolute paths as
    /// on a real system, read through `Fs`).
    chain: Vec<PathBuf>,
}

impl Cgroup {
    /// The nearest cgroup on the chain for which `limit` reads a limit, with that limit.
    fn nearest<T>(
        &self,
        fs: &Fs,
        file: &str,
        limit: impl Fn(&str) -> Option<Option<T>>,
    ) -> Option<(&Path, T)> {
        self.chain.iter().find_map(|dir| {
            let text = fs.read_optional(&dir.join(file))?;
            limit(&text).flatten().map(|l| (dir.as_path(), l))
        })
    }

    fn has_limit(&self, fs: &Fs) -> bool {
        self.nearest(fs, "memory.max", parse_memory_max).is_some()
            || self.nearest(fs, "cpu.max", parse_cpu_max).is_some()
    }

    fn own(&self) -> &Path {
        // `find_cgroup` never builds an empty chain.
        self.chain.first().map_or(Path::new("/"), PathBuf::as_path)
    }

    fn cpu(&self, fs: &Fs) -> Result<CpuMark, ProbeError> {
        let cpuset = fs
            .read_optional(&self.own().join("cpuset.cpus.effective"))
            .and_then(|t| parse_cpu_list(&t));
        let online = fs
            .read_optional(Path::new("/sys/devices/system/cpu/online"))
            .and_then(|t| parse_cpu_list(&t))
            .or_else(|| {
                fs.read_optional(Path::new("/proc/stat"))
                    .map(|t| count_stat_cpus(&t))
            })
            .filter(|&n| n > 0)
            .unwrap_or(1);
        let cpus = cpuset.unwrap_or(online) as f64;
        let (dir, cpus) = match self.nearest(fs, "cpu.max", parse_cpu_max) {
            Some((dir, quota)) => (dir, quota.min(cpus)),
            None => (self.own(), cpus),
        };
        let stat_path = dir.join("cpu.stat");
        let stat = fs.read(&stat_path)?;
        let usage_usec = parse_cpu_stat_usage(&stat).ok_or_else(|| {
            ProbeError::new(
                ProbeErrorKind::BadBody,
                format!("{} has no usage_usec line", stat_path.display()),
            )
        })?;
        Ok(CpuMark {
            source: CpuSource::Cgroup(dir.to_path_buf()),
            at: Instant::now(),
            counters: CpuCounters::Cgroup { usage_usec, cpus },
        })
    }

    /// `None` when the memory controller is not enabled for the cgroup.
    fn memory(&self, fs: &Fs, host_total: u64) -> Option<Memory> {
        let (dir, limit) = match self.nearest(fs, "memory.max", parse_memory_max) {
            Some((dir, limit)) => (dir, limit.min(host_total)),
            None => (self.own(), host_total),
        };
        let current = fs.read_optional(&dir.join("memory.current"))?;
        let used = current.trim().parse::<u64>().ok()?;
        Some(Memory { used, limit })
    }
}

/// Warden's cgroup v2, if it can be found under the injectable root.
fn find_cgroup(fs: &Fs) -> Option<Cgroup> {
    let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|m| fs.path(&m.join("cgroup.controllers")).is_file())?;
    let own = parse_self_cgroup(&fs.read_optional(Path::new("/proc/self/cgroup"))?)?;
    let relative = Path::new(own.trim_start_matches('/'));
    // A path outside warden's cgroup namespace shows as `/../..`: not ours to read.
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let dir = mount.join(relative);
    if !fs.path(&dir).is_dir() {
        return None;
    }
    let chain: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| d.starts_with(mount))
        .map(Path::to_path_buf)
        .collect();
    Some(Cgroup { chain })
}

/// Host memory from `/proc/meminfo`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemInfo {
    pub total: u64,
    pub available: u64,
}

impl MemInfo {
    fn host_usage(&self) -> Memory {
        Memory {
            used: self.total.saturating_sub(self.available),
            limit: self.total,
        }
    }
}

/// `MemTotal` and `MemAvailable` (kernels before 3.14 lack it: then MemFree + Buffers +
/// Cached) of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> Option<MemInfo> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            match parts.next() {
                Some("kB") => n.checked_mul(1024),
                None => Some(n),
                Some(_) => None,
            }
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| {
        Some(field("MemFree")? + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0))
    })?;
    Some(MemInfo {
        total,
        available: available.min(total),
    })
}

/// Busy and total jiffies of `/proc/stat`'s aggregate `cpu` line. Total is user + nice +
/// system + idle + iowait + irq + softirq + steal (guest time is already in user and nice);
/// busy is total − idle − iowait.
pub fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// The number of `cpuN` lines of `/proc/stat`.
fn count_stat_cpus(text: &str) -> usize {
    text.lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count()
}

/// The 1-minute load average of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The cgroup v2 path of `/proc/self/cgroup` (its `0::` line).
pub fn parse_self_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

/// `memory.max`: `Some(None)` for `max` (no limit), `Some(Some(bytes))` for a limit.
pub fn parse_memory_max(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// `cpu.max` (`$QUOTA $PERIOD`) as CPUs: `Some(None)` for `max`, `Some(Some(quota / period))`.
pub fn parse_cpu_max(text: &str) -> Option<Option<f64>> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period: f64 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 100_000.0,
    };
    if quota == "max" {
        return Some(None);
    }
    let quota: f64 = quota.parse().ok()?;
    (period > 0.0 && quota > 0.0).then_some(Some(quota / period))
}

/// `usage_usec` of a cgroup's `cpu.stat`.
pub fn parse_cpu_stat_usage(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// The number of CPUs in a list like `0-3,8,10-11` (`/sys/devices/system/cpu/online`,
/// `cpuset.cpus.effective`); `None` when empty or malformed.
pub fn parse_cpu_list(text: &str) -> Option<usize> {
    let mut count = 0usize;
    for part in text.trim().split(',') {
        let part = part.trim();
        let n = match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
        count = count.checked_add(n)?;
    }
    (count > 0).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:        8029868 kB\nMemFree:          443720 kB\n\
        MemAvailable:    5046364 kB\nBuffers:          301264 kB\nCached:          4390548 kB\n\
        SwapCached:            0 kB\nHugePages_Total:       0\n";

    const PROC_STAT: &str = "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n\
        cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n\
        cpu1 1335555 38059 476236 13371437 5019 0 3036 0 25362 0\n\
        intr 1462898 0 0\nctxt 2374385\nbtime 1700000000\nprocs_running 2\n";

    #[test]
    fn meminfo_in_bytes() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some(MemInfo {
                total: 8029868 * 1024,
                available: 5046364 * 1024
            })
        );
        // Before MemAvailable: free + buffers + cached.
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(
            parse_meminfo(old),
            Some(MemInfo {
                total: 1_024_000,
                available: 409_600
            })
        );
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo(""), None);
    }

    #[test]
    fn proc_stat_busy_and_total() {
        let (busy, total) = parse_proc_stat(PROC_STAT).expect("parses");
        let fields = [10132153u64, 290696, 3084719, 46828483, 16683, 0, 25195, 0];
        let sum: u64 = fields.iter().sum();
        assert_eq!((busy, total), (sum - 46828483 - 16683, sum));
        assert_eq!(count_stat_cpus(PROC_STAT), 2);
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4\n"), None);
        assert_eq!(parse_proc_stat("cpu  a b c d\n"), None);
        // Old kernels print only four fields.
        assert_eq!(parse_proc_stat("cpu  1 2 3 4\n"), Some((6, 10)));
    }

    #[test]
    fn small_files() {
        assert_eq!(parse_loadavg("0.49 1.01 0.98 2/311 12345\n"), Some(0.49));
        assert_eq!(parse_loadavg(""), None);
        let cgroup = "12:memory:/x\n1:name=systemd:/\n0::/system.slice/warden.service\n";
        assert_eq!(
            parse_self_cgroup(cgroup).as_deref(),
            Some("/system.slice/warden.service")
        );
        assert_eq!(parse_self_cgroup("4:memory:/x\n"), None);
        assert_eq!(parse_memory_max("max\n"), Some(None));
        assert_eq!(parse_memory_max("536870912\n"), Some(Some(536_870_912)));
        assert_eq!(parse_memory_max("lots"), None);
        assert_eq!(parse_cpu_max("max 100000\n"), Some(None));
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(Some(0.5)));
        assert_eq!(parse_cpu_max("150000 100000"), Some(Some(1.5)));
        assert_eq!(parse_cpu_max("200000"), Some(Some(2.0)));
        assert_eq!(parse_cpu_max("x 1"), None);
        assert_eq!(parse_cpu_max("1 0"), None);
        let cpu_stat = "usage_usec 1417254721\nuser_usec 1132618810\nsystem_usec 284635910\n";
        assert_eq!(parse_cpu_stat_usage(cpu_stat), Some(1_417_254_721));
        assert_eq!(parse_cpu_stat_usage("user_usec 1\n"), None);
        for (list, want) in [
            ("0-1\n", Some(2)),
            ("0", Some(1)),
            ("0-3,8,10-11", Some(7)),
            ("", None),
            ("3-1", None),
            ("a-b", None),
        ] {
            assert_eq!(parse_cpu_list(list), want, "{list:?}");
        }
    }

    #[test]
    fn cpu_ratios() {
        let host = |busy, total| CpuCounters::Host { busy, total };
        let cg = |usage_usec, cpus| CpuCounters::Cgroup { usage_usec, cpus };
        let s = Duration::from_secs;
        assert_eq!(cpu_ratio(host(100, 1000), host(150, 1100), s(1)), Some(0.5));
        assert_eq!(cpu_ratio(host(100, 1000), host(100, 1000), s(1)), None);
        assert_eq!(cpu_ratio(host(100, 1000), host(50, 900), s(1)), None);
        // Half a CPU allowed, a quarter CPU-second used in one second: 50 %.
        assert_eq!(cpu_ratio(cg(0, 0.5), cg(250_000, 0.5), s(1)), Some(0.5));
        assert_eq!(cpu_ratio(cg(0, 2.0), cg(3_000_000, 2.0), s(1)), Some(1.0));
        assert_eq!(cpu_ratio(cg(0, 1.0), cg(10, 1.0), Duration::ZERO), None);
        assert_eq!(cpu_ratio(host(0, 0), cg(1, 1.0), s(1)), None);
        assert_eq!(
            Disk {
                used: 30,
                available: 70
            }
            .ratio(),
            0.3
        );
        assert_eq!(
            Disk {
                used: 0,
                available: 0
            }
            .ratio(),
            0.0
        );
    }

    /// A fake root laid out like a host with a cgroup v2 hierarchy.
    struct FakeRoot {
        dir: tempfile::TempDir,
    }

    impl FakeRoot {
        fn new(mount: &str, own: &str) -> Self {
            let root = FakeRoot {
                dir: tempfile::tempdir().expect("temp dir"),
            };
            root.write("proc/meminfo", MEMINFO);
            root.write("proc/stat", PROC_STAT);
            root.write("proc/loadavg", "0.49 1.01 0.98 2/311 12345\n");
            root.write("proc/self/cgroup", &format!("0::{own}\n"));
            root.write("sys/devices/system/cpu/online", "0-3\n");
            root.write(&format!("{mount}/cgroup.controllers"), "cpu memory\n");
            root.write(&format!("{mount}/cpu.stat"), "usage_usec 99\n");
            root.write(&format!("{mount}{own}/cpu.stat"), "usage_usec 1000\n");
            root.write(&format!("{mount}{own}/memory.current"), "268435456\n");
            root.write(&format!("{mount}{own}/memory.max"), "max\n");
            root.write(&format!("{mount}{own}/cpu.max"), "max 100000\n");
            root
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.dir.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }

        fn probe(&self, scope: SystemScope) -> SystemProbe {
            let spec = SystemCheck {
                scope,
                disk_path: Some(PathBuf::from("/")),
            };
            SystemProbe::with_root(&spec, Duration::from_millis(2000), self.dir.path().into())
        }
    }

    const OWN: &str = "/system.slice/warden.service";
    const MEM_TOTAL: f64 = 8029868.0 * 1024.0;

    async fn values(probe: &SystemProbe) -> Values {
        probe
            .run()
            .await
            .unwrap_or_else(|e| panic!("probe failed: {e}"))
    }

    #[tokio::test]
    async fn cgroup_memory_limit_gives_the_ratio() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        root.write(&format!("/sys/fs/cgroup{OWN}/memory.max"), "536870912\n");
        let v = values(&root.probe(SystemScope::Auto)).await;
        assert_eq!(v["memory_used_bytes"], 268435456.0);
        assert_eq!(v["memory_limit_bytes"], 536870912.0);
        assert_eq!(v["memory_ratio"], 0.5);
        assert_eq!(v["cpu_ratio"], 0.0, "usage_usec did not move");
        assert!(!v.contains_key("load1"), "no load average for a cgroup");
        assert!(v["disk_ratio"] >= 0.0 && v["disk_ratio"] <= 1.0, "{v:?}");
    }

    #[tokio::test]
    async fn cgroup_cpu_quota_counts_as_cpus() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        root.write(&format!("/sys/fs/cgroup{OWN}/cpu.max"), "50000 100000\n");
        let fs = Fs {
            root: root.dir.path().into(),
        };
        let cg = find_cgroup(&fs).expect("cgroup found");
        assert!(cg.has_limit(&fs));
        let mark = cg.cpu(&fs).expect("cpu read");
        assert_eq!(
            mark.counters,
            CpuCounters::Cgroup {
                usage_usec: 1000,
                cpus: 0.5
            }
        );
        // Without a memory limit, the host's memory is the limit.
        let v = values(&root.probe(SystemScope::Auto)).await;
        assert_eq!(v["memory_limit_bytes"], MEM_TOTAL);
        assert_eq!(v["memory_ratio"], 268435456.0 / MEM_TOTAL);
    }

    #[tokio::test]
    async fn a_limit_on_an_ancestor_is_the_one_measured() {
        // Hybrid layout (v2 under unified), limit on the slice, not on the service.
        let root = FakeRoot::new("/sys/fs/cgroup/unified", OWN);
        let slice = "/sys/fs/cgroup/unified/system.slice";
        root.write(&format!("{slice}/memory.max"), "1073741824\n");
        root.write(&format!("{slice}/memory.current"), "805306368\n");
        root.write(&format!("{slice}/cpu.max"), "200000 100000\n");
        root.write(&format!("{slice}/cpu.stat"), "usage_usec 5000\n");
        let fs = Fs {
            root: root.dir.path().into(),
        };
        let cg = find_cgroup(&fs).expect("cgroup found");
        let mark = cg.cpu(&fs).expect("cpu read");
        assert_eq!(mark.source, CpuSource::Cgroup(PathBuf::from(slice)));
        assert_eq!(
            mark.counters,
            CpuCounters::Cgroup {
                usage_usec: 5000,
                cpus: 2.0
            }
        );
        let v = values(&root.probe(SystemScope::Cgroup)).await;
        assert_eq!(v["memory_ratio"], 0.75);
    }

    #[tokio::test]
    async fn auto_without_limits_is_the_host() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        let v = values(&root.probe(SystemScope::Auto)).await;
        assert_eq!(v["memory_limit_bytes"], MEM_TOTAL);
        assert_eq!(v["memory_used_bytes"], (8029868.0 - 5046364.0) * 1024.0);
        assert_eq!(v["load1"], 0.49);
        // The fake /proc/stat does not move: no busy time between the two readings, and no
        // time at all, so no ratio.
        assert!(!v.contains_key("cpu_ratio"), "{v:?}");
    }

    #[tokio::test]
    async fn cgroup_scope_without_a_cgroup_fails_setup() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        root.write("proc/self/cgroup", "0::/../../elsewhere\n");
        let err = root.probe(SystemScope::Cgroup).run().await.unwrap_err();
        assert_eq!(err.kind, ProbeErrorKind::Setup, "{err}");
        // Auto falls back to the host instead.
        let v = values(&root.probe(SystemScope::Auto)).await;
        assert_eq!(v["load1"], 0.49);
    }

    #[tokio::test]
    async fn a_cgroup_without_the_memory_controller_has_no_memory_values() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        root.write(&format!("/sys/fs/cgroup{OWN}/cpu.max"), "100000 100000\n");
        std::fs::remove_file(
            root.dir
                .path()
                .join(format!("sys/fs/cgroup{OWN}/memory.current")),
        )
        .expect("remove");
        let v = values(&root.probe(SystemScope::Auto)).await;
        assert!(v.contains_key("cpu_ratio"));
        assert!(!v.contains_key("memory_ratio"), "{v:?}");
    }

    #[tokio::test]
    async fn a_missing_disk_path_fails_with_the_other_values() {
        let root = FakeRoot::new("/sys/fs/cgroup", OWN);
        let spec = SystemCheck {
            scope: SystemScope::Host,
            disk_path: Some(PathBuf::from("/no/such/dir")),
        };
        let probe =
            SystemProbe::with_root(&spec, Duration::from_millis(2000), root.dir.path().into());
        let err = probe.run().await.unwrap_err();
        assert_eq!(err.kind, ProbeErrorKind::Setup);
        assert!(err.message.contains("/no/such/dir"), "{err}");
        assert_eq!(err.partial.get("load1"), Some(&0.49));
    }
}
