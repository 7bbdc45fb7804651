//! `system` checks on this very host: plausible values, rules over them, and a CPU reading
//! that follows real load.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::daemon::{warden, write_config, Daemon};
use crate::harness::process::{steps, STEP};

fn once_json(config: &str) -> (i32, serde_json::Value) {
    let (_dir, path) = write_config(config);
    let out = warden(&["once", "-c", path.to_str().unwrap(), "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "once printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), status)
}

fn find<'a>(status: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    status[list]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {list} entry {name} in {status:#}"))
}

fn mem_total_bytes() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("read /proc/meminfo");
    let kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kb * 1024.0
}

fn ratio(values: &serde_json::Value, name: &str) -> f64 {
    let v = values[name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {name} in {values:#}"));
    assert!((0.0..=1.0).contains(&v), "{name} = {v} is not a ratio");
    v
}

#[test]
fn host_values_are_plausible_and_rules_read_them() {
    let (code, status) = once_json(
        r#"
[[check]]
name = "host"
kind = "system"
scope = "host"
disk_path = "/"
timeout = "2s"

[[rule]]
name = "memory-used"
check = "host"
value = "memory_ratio"
critical = { when = "> 0" }

[[rule]]
name = "memory-impossible"
check = "host"
value = "memory_ratio"
critical = { when = "> 2" }
"#,
    );
    assert_eq!(code, 2, "memory_ratio > 0 is critical: {status:#}");
    let values = &find(&status, "checks", "host")["values"];
    ratio(values, "cpu_ratio");
    let memory = ratio(values, "memory_ratio");
    assert!(memory > 0.0, "{values:#}");
    ratio(values, "disk_ratio");
    assert_eq!(
        values["memory_limit_bytes"],
        mem_total_bytes(),
        "{values:#}"
    );
    let used = values["memory_used_bytes"].as_f64().unwrap();
    // The same quotient, up to float rounding (the product may divide in another order).
    let expected = used / mem_total_bytes();
    assert!(
        (expected - memory).abs() <= 1e-12,
        "memory_ratio {memory} is not used / total {expected}"
    );
    assert!(values["load1"].as_f64().unwrap() >= 0.0, "{values:#}");
    assert!(
        values["disk_free_bytes"].as_f64().unwrap() > 0.0,
        "{values:#}"
    );
    assert_eq!(find(&status, "rules", "memory-used")["state"], "critical");
    assert_eq!(find(&status, "rules", "memory-impossible")["state"], "ok");
}

#[test]
fn auto_scope_reads_this_host_or_its_limited_cgroup() {
    let (code, status) = once_json("[[check]]\nname = \"auto\"\nkind = \"system\"\n");
    assert_eq!(code, 0, "{status:#}");
    let values = &find(&status, "checks", "auto")["values"];
    ratio(values, "cpu_ratio");
    // Without the memory controller a cgroup has no memory values; with it, the limit is
    // the cgroup's or, at most, the host's memory.
    if values.get("memory_ratio").is_some() {
        ratio(values, "memory_ratio");
        let limit = values["memory_limit_bytes"].as_f64().unwrap();
        assert!(limit > 0.0 && limit <= mem_total_bytes(), "{values:#}");
    }
}

/// A child process spinning on one CPU, for at most `seconds` (coreutils' `timeout` puts
/// itself and the shell in a process group of their own; the whole group is killed on drop,
/// so no spinning shell outlives the test).
struct Burner(Child);

impl Burner {
    fn start(seconds: u32) -> Self {
        let child = Command::new("timeout")
            .args([&seconds.to_string(), "sh", "-c", "while :; do :; done"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn a CPU burner");
        Burner(child)
    }
}

impl Drop for Burner {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

/// cpu_ratio readings of the daemon's `host` check over `window`, one per probe.
fn cpu_readings(d: &Daemon, window: Duration) -> Vec<f64> {
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..steps(window) / 5 {
        let check = d.check("host");
        if let (Some(at), Some(cpu)) = (
            check["last_run"].as_str(),
            check["values"]["cpu_ratio"].as_f64(),
        ) {
            seen.insert(at.to_string(), cpu);
        }
        std::thread::sleep(STEP * 5);
    }
    seen.into_values().collect()
}

fn min(readings: &[f64]) -> f64 {
    readings.iter().copied().fold(f64::INFINITY, f64::min)
}

#[test]
fn cpu_ratio_rises_while_every_cpu_is_busy() {
    let d = Daemon::start(
        r#"
[[check]]
name = "host"
kind = "system"
scope = "host"
interval = "300ms"
timeout = "250ms"
"#,
    );
    // The host is shared with other builds: wait (bounded) for a moment it is not saturated,
    // or a busy loop of ours cannot raise the reading.
    let mut idle = cpu_readings(&d, Duration::from_millis(1500));
    for _ in 0..4 {
        if min(&idle) < 0.9 {
            break;
        }
        idle = cpu_readings(&d, Duration::from_millis(1500));
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let burners: Vec<Burner> = (0..cpus).map(|_| Burner::start(10)).collect();
    // Let the probe that spans the burners' start go by.
    std::thread::sleep(Duration::from_millis(400));
    let busy = cpu_readings(&d, Duration::from_millis(1500));
    drop(burners);
    assert!(
        idle.len() >= 2 && busy.len() >= 2,
        "too few probes: idle {idle:?}, busy {busy:?}"
    );
    for r in idle.iter().chain(&busy) {
        assert!((0.0..=1.0).contains(r), "{r}");
    }
    // With a burner on every CPU the host is busy whatever else runs: the reading must say so.
    let busy_max = busy.iter().copied().fold(0.0, f64::max);
    assert!(
        busy_max >= 0.9,
        "every CPU burns, yet cpu_ratio reads {busy_max}: idle {idle:?}, busy {busy:?}"
    );
    // And when the machine was ever less busy before, the reading rose from there.
    if min(&idle) < 0.9 {
        assert!(
            busy_max > min(&idle),
            "cpu_ratio did not rise under load: idle {idle:?}, busy {busy:?}"
        );
    }
}
