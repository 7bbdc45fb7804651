//! The load harness: the real `warden` binary watching N loopback HTTP targets.
//!
//! ```sh
//! cargo build --release --bins --examples
//! target/release/examples/load run --checks 10000 --interval 10s
//! # or: bash scripts/bench.sh 1000 10000 100000
//! ```
//!
//! `run` does, in order:
//! 1. starts the targets in separate processes (`load targets`, up to `--per-shard` each,
//!    because one process may hold only `ulimit -n` descriptors): every target is its own
//!    listener on its own loopback address `127.1.x.y:PORT`, so N checks mean N distinct
//!    hosts, N connection pools and up to N connections, as N real services would;
//! 2. writes a config of N `http` checks (each asserting `status == "healthy"` on the JSON
//!    body, with one rule "down 3 times in a row") and starts `target/release/warden run` on
//!    it, as a user would;
//! 3. waits for `/readyz`, lets it warm up (at least one full interval), then measures a
//!    steady-state window: warden's CPU from `/proc/<pid>/stat` (utime + stime), its RSS
//!    (`VmRSS` sampled every second, `VmHWM` at the end), runs and skipped runs and the
//!    `warden_scheduler_lateness_seconds` histogram from its own `/metrics` (deltas over the
//!    window), and, independently, the lateness of every request's arrival at its target
//!    against the scheduler's plan. The targets' CPU is measured the same way and reported
//!    apart: it is the load generator's cost, not warden's. warden's CPU and RSS are read
//!    again from its own `process_cpu_seconds_total` and `process_resident_memory_bytes` on
//!    `/metrics` and reported beside the /proc figures, saying whether they agree within 10 %.
//!
//! `run --scrape-targets 100 --series 1000 --interval 15s --expr-rules 20` is the scrape
//! mode (issue 15): the targets serve a text-0.0.4 `/metrics` of `--series` series whose
//! counters grow (`metrics_body`), the config has one `scrape` check per target and
//! `--expr-rules` `expr` rules over them (`generate_scrape_config`), and the report adds the
//! series store's size, asked through warden's own `/api/v1/query`.
//!
//! `run --checks 10000 --compare monit,blackbox` then measures references on the same running
//! targets, one after another once warden has stopped, each warmed up and measured for the same
//! window: monit (one `check host` per target, `set daemon` = the interval, `monit -I` on a
//! generated monitrc) and blackbox_exporter with a Prometheus scraping `/probe?target=` for every
//! target. Besides CPU and RSS (per process and summed) and the targets' CPU, each gets its
//! real period: the time between consecutive requests to one target (`arrival_gaps`), which
//! shows a probe loop that stretches its interval or falls behind; warden's is reported too.
//!
//! It prints a table and appends one JSON line per run to `--out`. Nothing here is a test:
//! it asserts nothing and is not part of `scripts/test.sh`.

// The harness measures wall time of its own windows; it is not product code, and paused
// tokio time would be wrong here.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use warden::config::{format_duration, parse_duration};
use warden::scheduler::spread_offset;

const USAGE: &str = "\
usage: load run [--checks N] [--interval 10s] [--timeout 5s] [--warmup DUR] [--measure 60s]
                [--port 18080] [--listen 127.0.0.1:19731] [--per-shard 8000]
                [--scrape-every 15s|0s] [--warden PATH] [--workdir DIR] [--out FILE]
                [--label TEXT] [--wrap 'PROFILER ARGS']
                [--fail-every K] [--retry-interval DUR] [--keep-alive N]
                [--compare monit[,blackbox]] [--blackbox-listen ADDR] [--prometheus-listen ADDR]
       load run --scrape-targets 100 [--series 1000] [--interval 15s] [--expr-rules 20] ...
       load targets --first I --count N --port P --interval DUR [--fail-every K]
                    [--series S]                                   (started by `run`)
  --scrape-targets N  scrape mode: N targets serving /metrics (text 0.0.4, --series series
                      each), N `scrape` checks and --expr-rules `expr` rules over them
  --fail-every K      every target answers 503 to every K-th request it gets (0: never)
  --retry-interval D  each check re-checks a failure after D (retry_interval; default none)
  --keep-alive N      [defaults] keep_alive_targets = N (0: a fresh connection per probe;
                      default: warden's own default)
  --compare LIST      after warden, against the same targets: `monit` (Debian's, one `check
                      host` per target, `set daemon` = the interval) and/or `blackbox`
                      (blackbox_exporter + Prometheus scraping `/probe?target=` every interval);
                      each warmed up and measured like warden, side by side in the table
  --blackbox-listen   blackbox_exporter's address (default: --listen's port + 1)
  --prometheus-listen Prometheus's address (default: --listen's port + 2)";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(Args::parse(&args[1..])),
        Some("targets") => targets(Args::parse(&args[1..])),
        _ => Err(USAGE.to_string()),
    };
    if let Err(e) = result {
        eprintln!("load: {e}");
        std::process::exit(2);
    }
}

/// `--key value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Args {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let Some(key) = k.strip_prefix("--") else {
                eprintln!("load: unexpected argument {k}\n{USAGE}");
                std::process::exit(2);
            };
            let Some(v) = it.next() else {
                eprintln!("load: --{key} needs a value\n{USAGE}");
                std::process::exit(2);
            };
            map.insert(key.to_string(), v.clone());
        }
        Args(map)
    }

    fn str(&self, key: &str, default: &str) -> String {
        self.0.get(key).cloned().unwrap_or_else(|| default.into())
    }

    fn num(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|e| format!("--{key} {v}: {e}")),
        }
    }

    fn dur(&self, key: &str, default: &str) -> Result<Duration, String> {
        let v = self.str(key, default);
        if v == "0" || v == "0s" {
            return Ok(Duration::ZERO);
        }
        parse_duration(&v).map_err(|e| format!("--{key} {v}: {e}"))
    }
}

/// Target `i`'s address: `127.1.0.1` upwards, skipping `.0` and `.255` in the last octet.
fn target_addr(i: usize) -> Ipv4Addr {
    let host = i / 254;
    let last = (i % 254) + 1;
    let third = host % 256;
    let second = 1 + host / 256;
    Ipv4Addr::new(127, second as u8, third as u8, last as u8)
}

fn check_name(i: usize) -> String {
    format!("t{i:06}")
}

// ---------------------------------------------------------------------------------------
// targets: one process serving a slice of the targets
// ---------------------------------------------------------------------------------------

/// The health document every target serves, as the runbooks' services do.
const HEALTH_BODY: &str = r#"{"status":"healthy","components":{"database":"healthy"}}"#;

struct Arrivals {
    base: Instant,
    /// (target index, nanoseconds since `base`) of every request since the last reset.
    seen: Mutex<Vec<(u32, u64)>>,
}

fn targets(args: Args) -> Result<(), String> {
    let first = args.num("first", 0)?;
    let count = args.num("count", 1000)?;
    let port = args.num("port", 18080)? as u16;
    let interval = args.dur("interval", "10s")?;
    let fail_every = args.num("fail-every", 0)? as u64;
    let series = args.num("series", 0)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let arrivals = Arc::new(Arrivals {
        base: Instant::now(),
        seen: Mutex::new(Vec::with_capacity(1 << 16)),
    });
    rt.block_on(async {
        for i in first..first + count {
            let addr = SocketAddr::from((target_addr(i), port));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("bind {addr}: {e}"))?;
            tokio::spawn(serve_target(
                listener,
                i as u32,
                arrivals.clone(),
                fail_every,
                series,
            ));
        }
        Ok::<(), String>(())
    })?;
    println!("ready");
    let _ = std::io::stdout().flush();

    // Commands from `run` on stdin; the runtime keeps serving on its own thread.
    std::thread::spawn(move || rt.block_on(std::future::pending::<()>()));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        match words.next() {
            Some("reset") => {
                arrivals
                    .seen
                    .lock()
                    .expect("no panics hold the lock")
                    .clear();
                println!("ok");
            }
            Some("dump") => {
                // `dump LATENESS_FILE [GAPS_FILE]`: answers `ok REQUESTS TARGETS_PROBED`.
                let late_path = words.next().unwrap_or("/dev/null");
                let gaps_path = words.next().unwrap_or("/dev/null");
                let seen = std::mem::take(&mut *arrivals.seen.lock().expect("no panics"));
                write_numbers(late_path, &arrival_lateness(&seen, interval))?;
                let (gaps, probed) = arrival_gaps(&seen);
                write_numbers(gaps_path, &gaps)?;
                println!("ok {} {probed}", seen.len());
            }
            _ => println!("unknown command"),
        }
        let _ = std::io::stdout().flush();
    }
    // stdin closed: `run` is done with us.
    std::process::exit(0);
}

/// Serves one target. With `fail_every` K > 0, every K-th request gets a 503 (the check's
/// probe fails), the others the healthy document; with `series` > 0, a `/metrics` body of
/// that many series instead (`metrics_body`).
async fn serve_target(
    listener: tokio::net::TcpListener,
    index: u32,
    arrivals: Arc<Arrivals>,
    fail_every: u64,
    series: usize,
) {
    let requests = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let arrivals = arrivals.clone();
        let requests = requests.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                let ns = arrivals.base.elapsed().as_nanos() as u64;
                if let Ok(mut seen) = arrivals.seen.lock() {
                    seen.push((index, ns));
                }
                let n = requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let fail = fail_every > 0 && n.is_multiple_of(fail_every);
                // Counters advance with the target process's clock, from 1,000 s on.
                let secs = 1000.0 + arrivals.base.elapsed().as_secs_f64();
                async move {
                    let (body, content_type) = if series > 0 {
                        (
                            Bytes::from(metrics_body(index, series, secs)),
                            "text/plain; version=0.0.4; charset=utf-8",
                        )
                    } else {
                        (
                            Bytes::from_static(HEALTH_BODY.as_bytes()),
                            "application/json",
                        )
                    };
                    let mut resp = Response::new(Full::new(body));
                    if fail {
                        *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    resp.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(content_type),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A service's `/metrics` in text format 0.0.4, exactly `series` series, as an HTTP service's
/// exporter would serve it at `secs` seconds of uptime: request counters by method, route and
/// status (2 % of them 5xx), a request latency histogram by method and route, a database query
/// histogram, job and cache counters, process metrics, then queue depth gauges to fill up to
/// `series`. Counters are rates × `secs`, so they grow between scrapes; histogram buckets
/// follow an exponential latency distribution, so `histogram_quantile` has something to do.
fn metrics_body(target: u32, series: usize, secs: f64) -> String {
    use std::fmt::Write as _;
    const ROUTES: [&str; 10] = [
        "/",
        "/login",
        "/api/orders",
        "/api/orders/:id",
        "/api/users",
        "/api/users/:id",
        "/api/search",
        "/api/cart",
        "/api/checkout",
        "/static/*",
    ];
    const METHODS: [&str; 2] = ["GET", "POST"];
    const STATUSES: [(&str, f64); 5] = [
        ("200", 0.90),
        ("201", 0.05),
        ("404", 0.03),
        ("500", 0.015),
        ("503", 0.005),
    ];
    const LE: [f64; 11] = [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    struct Out {
        text: String,
        left: usize,
    }
    impl Out {
        fn family(&mut self, name: &str, kind: &str, help: &str) {
            if self.left > 0 {
                let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
        }
        fn sample(&mut self, name: &str, labels: &str, value: f64) {
            if self.left > 0 {
                self.left -= 1;
                if labels.is_empty() {
                    let _ = writeln!(self.text, "{name} {value}");
                } else {
                    let _ = writeln!(self.text, "{name}{{{labels}}} {value}");
                }
            }
        }
        /// A classic histogram of `count` observations with mean `mean`: 12 buckets, sum, count.
        fn histogram(&mut self, name: &str, labels: &str, count: f64, mean: f64) {
            for le in LE {
                let share = 1.0 - (-le / mean).exp();
                self.sample(
                    &format!("{name}_bucket"),
                    &format!("{labels},le=\"{le}\""),
                    (count * share).floor(),
                );
            }
            self.sample(
                &format!("{name}_bucket"),
                &format!("{labels},le=\"+Inf\""),
                count,
            );
            self.sample(
                &format!("{name}_sum"),
                labels,
                (count * mean * 1000.0).round() / 1000.0,
            );
            self.sample(&format!("{name}_count"), labels, count);
        }
    }
    let mut o = Out {
        text: String::with_capacity(series * 100),
        left: series,
    };
    let load = 1.0 + f64::from(target % 7) / 7.0;
    o.family("http_requests_total", "counter", "HTTP requests handled.");
    for (ri, route) in ROUTES.iter().enumerate() {
        for method in METHODS {
            for (status, share) in STATUSES {
                let rate = (2.0 + ri as f64) * load * share;
                o.sample(
                    "http_requests_total",
                    &format!("method=\"{method}\",route=\"{route}\",status=\"{status}\""),
                    (rate * secs).floor(),
                );
            }
        }
    }
    o.family(
        "http_request_duration_seconds",
        "histogram",
        "HTTP request latency.",
    );
    for (ri, route) in ROUTES.iter().enumerate() {
        for method in METHODS {
            let rate = (2.0 + ri as f64) * load;
            o.histogram(
                "http_request_duration_seconds",
                &format!("method=\"{method}\",route=\"{route}\""),
                (rate * secs).floor(),
                0.02 * (1.0 + ri as f64 / 3.0),
            );
        }
    }
    o.family(
        "db_query_duration_seconds",
        "histogram",
        "Database query latency.",
    );
    for q in 0..10 {
        o.histogram(
            "db_query_duration_seconds",
            &format!("query=\"q{q}\""),
            (3.0 * load * secs).floor(),
            0.004 * (1.0 + f64::from(q)),
        );
    }
    o.family(
        "worker_jobs_total",
        "counter",
        "Background jobs by outcome.",
    );
    for q in 0..20 {
        for (outcome, share) in [("done", 0.97), ("retried", 0.02), ("failed", 0.01)] {
            o.sample(
                "worker_jobs_total",
                &format!("queue=\"queue{q}\",outcome=\"{outcome}\""),
                (0.5 * load * share * secs).floor(),
            );
        }
    }
    for (name, share) in [("cache_hits_total", 0.9), ("cache_misses_total", 0.1)] {
        o.family(name, "counter", "Cache lookups.");
        for c in 0..20 {
            o.sample(
                name,
                &format!("cache=\"cache{c}\""),
                (4.0 * share * secs).floor(),
            );
        }
    }
    o.family("process_cpu_seconds_total", "counter", "CPU time.");
    o.sample(
        "process_cpu_seconds_total",
        "",
        (0.05 * secs * 100.0).floor() / 100.0,
    );
    o.family("process_resident_memory_bytes", "gauge", "RSS.");
    o.sample(
        "process_resident_memory_bytes",
        "",
        2e8 + (secs * 1e3) % 1e7,
    );
    o.family("queue_depth", "gauge", "Items waiting, by queue.");
    let mut q = 0;
    while o.left > 0 {
        let depth = (50.0 * (1.0 + (secs / 60.0 + f64::from(q)).sin())).round();
        o.sample("queue_depth", &format!("queue=\"q{q:04}\""), depth);
        q += 1;
    }
    o.text
}

/// `numbers` to `path`, one a line.
fn write_numbers(path: &str, numbers: &[u64]) -> Result<(), String> {
    let mut out = String::with_capacity(numbers.len() * 12);
    for n in numbers {
        out.push_str(&n.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| format!("write {path}: {e}"))
}

/// The time between consecutive requests to the same target, in ns, and how many targets
/// were requested at all: the real period of whatever probes them, whatever its plan.
fn arrival_gaps(seen: &[(u32, u64)]) -> (Vec<u64>, usize) {
    let mut sorted = seen.to_vec();
    sorted.sort_unstable();
    let gaps = sorted
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| w[1].1 - w[0].1)
        .collect();
    let probed =
        sorted.windows(2).filter(|w| w[0].0 != w[1].0).count() + usize::from(!sorted.is_empty());
    (gaps, probed)
}

/// How late each request arrived at its target against the scheduler's plan, in ns.
///
/// warden plans check `i`'s runs at `S + offset_i + k × interval` (`offset_i` is
/// `spread_offset(name_i)`, `S` the scheduler's start, unknown here). So `(t − offset_i) mod
/// interval` is `S mod interval` plus that run's lateness. `S mod interval` is taken as the
/// start of the cluster these residues form on the circle (after the widest gap), so the
/// result is lateness relative to the earliest arrival of the window: it includes the
/// scheduler's lateness and the probe's own time to send, minus the smallest such time.
fn arrival_lateness(seen: &[(u32, u64)], interval: Duration) -> Vec<u64> {
    let t = interval.as_nanos() as u64;
    if seen.is_empty() || t == 0 {
        return Vec::new();
    }
    let mut offsets: HashMap<u32, u64> = HashMap::new();
    let residues: Vec<u64> = seen
        .iter()
        .map(|&(i, ns)| {
            let off = *offsets.entry(i).or_insert_with(|| {
                spread_offset(&check_name(i as usize), interval).as_nanos() as u64
            });
            (ns + t * 1_000_000 - off) % t
        })
        .collect();
    let mut sorted = residues.clone();
    sorted.sort_unstable();
    // The widest gap between neighbours on the circle; the cluster starts right after it.
    let mut start = sorted[0];
    let mut widest = sorted[0] + t - sorted[sorted.len() - 1];
    for w in sorted.windows(2) {
        if w[1] - w[0] > widest {
            widest = w[1] - w[0];
            start = w[1];
        }
    }
    residues.iter().map(|r| (r + t - start) % t).collect()
}

// ---------------------------------------------------------------------------------------
// run: targets + warden, measured
// ---------------------------------------------------------------------------------------

struct Shard {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Shard {
    fn command(&mut self, cmd: &str) -> Result<String, String> {
        writeln!(self.stdin, "{cmd}").map_err(|e| format!("targets: {e}"))?;
        self.stdin.flush().map_err(|e| format!("targets: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("targets: {e}"))?;
        Ok(line.trim().to_string())
    }
}

/// Kills and reaps child processes on every way out of `run`.
struct Reaper(Vec<u32>);

impl Reaper {
    /// `pid` has been reaped: its number may be someone else's now.
    fn forget(&mut self, pid: u32) {
        self.0.retain(|p| *p != pid);
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    // Scrape mode: N targets serving /metrics, N `scrape` checks, `expr` rules over them.
    let scrape_targets = args.num("scrape-targets", 0)?;
    let series = if scrape_targets > 0 {
        args.num("series", 1000)?
    } else {
        0
    };
    let expr_rules = args.num("expr-rules", 20)?;
    let checks = if scrape_targets > 0 {
        scrape_targets
    } else {
        args.num("checks", 10_000)?
    };
    let interval = args.dur("interval", if scrape_targets > 0 { "15s" } else { "10s" })?;
    let timeout = args.dur("timeout", "5s")?;
    let warmup = args.dur(
        "warmup",
        &format_duration(interval + Duration::from_secs(5)),
    )?;
    let measure = args.dur("measure", "60s")?;
    let port = args.num("port", 18080)? as u16;
    let listen = args.str("listen", "127.0.0.1:19731");
    let per_shard = args.num("per-shard", 8000)?.max(1);
    let scrape_every = args.dur("scrape-every", "15s")?;
    let label = args.str("label", "");
    let fail_every = args.num("fail-every", 0)?;
    let retry_interval = match args.str("retry-interval", "").as_str() {
        "" => None,
        text => Some(parse_duration(text).map_err(|e| format!("--retry-interval {text}: {e}"))?),
    };
    let compare = parse_compare(&args, &listen)?;
    if !compare.is_empty() && series > 0 {
        return Err("--compare runs in checks mode only, not with --scrape-targets".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let default_warden = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("warden"))
        .unwrap_or_else(|| PathBuf::from("warden"));
    let warden_bin = PathBuf::from(args.str("warden", &default_warden.to_string_lossy()));
    let workdir = PathBuf::from(args.str("workdir", "target/load"));
    let out = args.str("out", "target/load/results.jsonl");
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    // Absolute, for the references' configs (monit and Prometheus are given paths in it).
    let workdir =
        std::fs::canonicalize(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    if warmup < interval {
        return Err(format!(
            "--warmup must be at least one interval ({})",
            format_duration(interval)
        ));
    }
    let nofile = open_files_limit();
    eprintln!(
        "load: {checks} checks every {}, {} target process(es), ulimit -n {nofile}",
        format_duration(interval),
        checks.div_ceil(per_shard)
    );

    // 1. Targets, in their own processes.
    let mut reaper = Reaper(Vec::new());
    let mut shards = Vec::new();
    let started = Instant::now();
    for first in (0..checks).step_by(per_shard) {
        let count = per_shard.min(checks - first);
        let mut child = Command::new(&exe)
            .args(["targets", "--first", &first.to_string(), "--count"])
            .arg(count.to_string())
            .args(["--port", &port.to_string(), "--interval"])
            .arg(format_duration(interval))
            .args(["--fail-every", &fail_every.to_string()])
            .args(["--series", &series.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start targets: {e}"))?;
        reaper.0.push(child.id());
        let stdin = child.stdin.take().expect("piped above");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped above"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .map_err(|e| format!("targets: {e}"))?;
        if line.trim() != "ready" {
            return Err(format!("targets {first}..{} did not start", first + count));
        }
        shards.push(Shard {
            child,
            stdin,
            stdout,
        });
    }
    eprintln!(
        "load: targets up in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // 2. The config and the real daemon.
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        return Err(format!("{addr} is taken: is another warden still running?"));
    }
    let kind = if series > 0 { "scrape" } else { "http" };
    let config = workdir.join(format!("load-{kind}-{checks}.toml"));
    let text = if series > 0 {
        generate_scrape_config(checks, expr_rules, interval, timeout, port, &listen)
    } else {
        generate_config(checks, interval, timeout, retry_interval, port, &listen)
    };
    let text = with_keep_alive(text, &args.str("keep-alive", ""))?;
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let log_path = workdir.join(format!("warden-{kind}-{checks}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let started = Instant::now();
    // `--wrap "heaptrack -o FILE"` runs warden under a profiler (figures then include it).
    let wrap = args.str("wrap", "");
    let mut words = wrap.split_whitespace();
    let mut warden = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(&warden_bin);
            c
        }
        None => Command::new(&warden_bin),
    };
    let mut warden = warden
        .arg("run")
        .arg("-c")
        .arg(&config)
        .env("STATE_DIRECTORY", &workdir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("start {}: {e}", warden_bin.display()))?;
    let wrapper = warden.id();
    reaper.0.push(wrapper);
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    loop {
        if let Ok(Some(status)) = warden.try_wait() {
            return Err(format!(
                "warden exited: {status}; see {}",
                log_path.display()
            ));
        }
        if http_get(addr, "/readyz").is_ok_and(|(code, _)| code == 200) {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("warden not ready after 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let startup = started.elapsed();
    // Under `--wrap`, the daemon is a descendant of the wrapper: measure that one.
    let pid = if wrap.is_empty() {
        wrapper
    } else {
        descendant_named(wrapper, "warden").ok_or("no warden process under the wrapper")?
    };
    if pid != wrapper {
        reaper.0.push(pid);
    }
    let startup_rss = proc_status(pid, "VmRSS:").unwrap_or(0);
    eprintln!(
        "load: warden ready in {:.1}s (RSS {} MB); warming up for {}",
        startup.as_secs_f64(),
        startup_rss / 1024,
        format_duration(warmup)
    );

    // A Prometheus-like scraper, if asked: real deployments scrape warden.
    let scrapes = Arc::new(Mutex::new(Vec::<(f64, usize)>::new()));
    if !scrape_every.is_zero() {
        let scrapes = scrapes.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(scrape_every);
            let t = Instant::now();
            match http_get(addr, "/metrics") {
                Ok((_, body)) => scrapes
                    .lock()
                    .expect("no panics")
                    .push((t.elapsed().as_secs_f64(), body.len())),
                Err(_) => return,
            }
        });
    }
    // Warm-up, with warden's RSS every 30 s (the series store fills for its retention).
    warm_up(&[("warden", pid)], warmup, started);

    // 3. The measurement window.
    let load_before = loadavg();
    let reset_at = reset_arrivals(&mut shards)?;
    let (m0, m0_at) = Scrape::take_timed(addr)?;
    let usage = measure_usage(&[pid], &shards, measure)?;
    // warden's own view of its RSS is read at the scrape: /proc on either side of it.
    let rss_end_before = proc_status(pid, "VmRSS:").unwrap_or(0);
    let (m1, m1_at) = Scrape::take_timed(addr)?;
    let rss_end_after = proc_status(pid, "VmRSS:").unwrap_or(0);
    let scraped_over = (m1_at - m0_at).as_secs_f64();
    let load_after = loadavg();
    let seen = collect_arrivals(&mut shards, &workdir, reset_at)?;
    // Peak RSS before the harness's own queries below (they cost warden memory too).
    let hwm = proc_status(pid, "VmHWM:").unwrap_or(0);
    // The series store's size, through warden's own query API (scrape mode).
    let ask = |q: &str| {
        query_scalar(addr, q).unwrap_or_else(|e| {
            eprintln!("load: {e}");
            f64::NAN
        })
    };
    let (store_series, store_samples) = if series > 0 {
        (
            ask(r#"count({__name__=~".+"})"#),
            // `count_over_time` drops the name, so `{__name__=~".+"}` at once would collide
            // (`_sum` and `_count` of one label set): one query per name.
            [
                "http_requests_total",
                "http_request_duration_seconds_bucket",
                "http_request_duration_seconds_sum",
                "http_request_duration_seconds_count",
                "db_query_duration_seconds_bucket",
                "db_query_duration_seconds_sum",
                "db_query_duration_seconds_count",
                "worker_jobs_total",
                "cache_hits_total",
                "cache_misses_total",
                "process_cpu_seconds_total",
                "process_resident_memory_bytes",
                "queue_depth",
                "up",
                "duration_seconds",
                "samples",
            ]
            .iter()
            .map(|name| ask(&format!("sum(count_over_time({name}[15m]))")))
            .sum(),
        )
    } else {
        (f64::NAN, f64::NAN)
    };
    if series > 0 {
        eprintln!(
            "load: after the store queries: VmHWM {} MB",
            proc_status(pid, "VmHWM:").unwrap_or(0) / 1024
        );
    }
    let threads = proc_status(pid, "Threads:").unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    // The same figures as warden exports them (`process_*`, issue 18), to set beside /proc's.
    let (metrics_fds, metrics_series) = match Scrape::take(addr) {
        Ok(m) => (m.sum("process_open_fds"), m.sum("warden_metrics_series")),
        Err(_) => (f64::NAN, f64::NAN),
    };

    // Stop warden the way systemd does and time it.
    if let Ok(Some(status)) = warden.try_wait() {
        return Err(format!("warden exited during the run: {status}"));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let stopping = Instant::now();
    let _ = warden.wait();
    let stop = stopping.elapsed();
    reaper.forget(pid);
    reaper.forget(wrapper);

    // 4. The references, one after another, on the same targets, measured the same way.
    let bench = Bench {
        checks,
        port,
        interval,
        timeout,
        warmup,
        measure,
        workdir: &workdir,
    };
    let compare: Vec<Side> = compare
        .iter()
        .map(|r| run_reference(*r, &bench, &mut shards, &mut reaper))
        .collect();
    for s in &mut shards {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    drop(reaper);

    // 5. Figures.
    let cpu = usage.each[0].cpu_pct;
    // From warden's own `process_cpu_seconds_total`, between the two scrapes that bracket
    // the window (their own rendering is inside this span, not inside /proc's).
    let metrics_cpu = (m1.sum("process_cpu_seconds_total") - m0.sum("process_cpu_seconds_total"))
        / scraped_over
        * 100.0;
    let metrics_rss = m1.sum("process_resident_memory_bytes") / 1024.0 / 1024.0;
    // /proc's RSS at the scrape: the nearer of the readings on either side of it.
    let proc_rss_end = [rss_end_before, rss_end_after]
        .into_iter()
        .map(|kb| kb as f64 / 1024.0)
        .min_by(|a, b| (a - metrics_rss).abs().total_cmp(&(b - metrics_rss).abs()))
        .unwrap_or(f64::NAN);
    let runs = m1.sum("warden_check_runs_total") - m0.sum("warden_check_runs_total");
    let ok = m1.sum_where("warden_check_runs_total", "result=\"ok\"")
        - m0.sum_where("warden_check_runs_total", "result=\"ok\"");
    let skipped = m1.sum("warden_scheduler_skipped_runs_total")
        - m0.sum("warden_scheduler_skipped_runs_total");
    let lateness = m1.histogram_delta(&m0, "warden_scheduler_lateness_seconds");
    let probe_mean_ms = (m1.sum("warden_check_duration_seconds_sum")
        - m0.sum("warden_check_duration_seconds_sum"))
        / (m1.sum("warden_check_duration_seconds_count")
            - m0.sum("warden_check_duration_seconds_count"))
        * 1000.0;
    let planned = checks as f64 / interval.as_secs_f64();
    let scraped = scrapes.lock().expect("no panics").clone();
    let scrape_ms = scraped.iter().map(|s| s.0).fold(0.0, f64::max) * 1000.0;
    let scrape_bytes = scraped.last().map(|s| s.1).unwrap_or(0);
    let q = |p: f64| nearest_rank(&seen.late, p) / 1e6;
    let report = Report {
        label,
        kind: if series > 0 {
            format!("scrape checks ({series} series each, {expr_rules} expr rules)")
        } else {
            "http checks".into()
        },
        checks,
        interval_s: interval.as_secs_f64(),
        window_s: usage.window_s,
        load_before,
        load_after,
        startup_s: startup.as_secs_f64(),
        stop_s: stop.as_secs_f64(),
        planned_per_s: planned,
        achieved_per_s: runs / scraped_over,
        ok_ratio: if runs > 0.0 { ok / runs } else { 0.0 },
        skipped,
        served_per_s: seen.requests as f64 / seen.over_s,
        lateness_p50_ms: lateness.quantile(0.5) * 1000.0,
        lateness_p99_ms: lateness.quantile(0.99) * 1000.0,
        lateness_le_20ms: lateness.fraction_le(0.02),
        lateness_max_bucket: lateness.max_bucket(),
        arrival_p50_ms: q(0.5),
        arrival_p99_ms: q(0.99),
        arrival_max_ms: q(1.0),
        cpu_pct: cpu,
        metrics_cpu_pct: metrics_cpu,
        proc_rss_end_mb: proc_rss_end,
        metrics_rss_mb: metrics_rss,
        metrics_fds,
        metrics_series,
        rss_mb: usage.each[0].rss_mean_mb,
        rss_max_mb: usage.each[0].rss_max_mb,
        hwm_mb: hwm as f64 / 1024.0,
        startup_rss_mb: startup_rss as f64 / 1024.0,
        threads,
        fds,
        generator_cpu_pct: usage.targets_cpu_pct,
        scrape_max_ms: scrape_ms,
        scrape_bytes,
        probe_mean_ms,
        store_series,
        store_samples,
        period: Period::of(&seen.gaps),
        probed: seen.probed,
        compare,
    };
    report.print();
    if let Some(dir) = Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out)
        .map_err(|e| format!("{out}: {e}"))?;
    writeln!(f, "{}", report.json()).map_err(|e| format!("{out}: {e}"))?;
    Ok(())
}

fn generate_config(
    checks: usize,
    interval: Duration,
    timeout: Duration,
    retry_interval: Option<Duration>,
    port: u16,
    listen: &str,
) -> String {
    let retry = retry_interval
        .map(|d| format!("retry_interval = \"{}\"\n", format_duration(d)))
        .unwrap_or_default();
    let mut s = format!(
        "# generated by examples/load.rs: {checks} http checks, one rule each\n\
         [server]\nlisten = \"{listen}\"\n\n[log]\nformat = \"human\"\nlevel = \"info\"\n\n\
         [defaults]\ninterval = \"{}\"\ntimeout = \"{}\"\n\n",
        format_duration(interval),
        format_duration(timeout)
    );
    for i in 0..checks {
        let name = check_name(i);
        s.push_str(&format!(
            "[[check]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"http://{}:{port}/health\"\n\
             {retry}assert = ['status == \"healthy\"']\n\n\
             [[rule]]\nname = \"{name}-down\"\ncheck = \"{name}\"\ncritical = {{ when = \"< 1\", count = 3 }}\n\n",
            target_addr(i)
        ));
    }
    s
}

/// `text` with `[defaults] keep_alive_targets = keep_alive` (connection reuse, issue 18), or
/// as it is when `keep_alive` is empty.
fn with_keep_alive(text: String, keep_alive: &str) -> Result<String, String> {
    if keep_alive.is_empty() {
        return Ok(text);
    }
    let n: usize = keep_alive
        .parse()
        .map_err(|e| format!("--keep-alive {keep_alive}: {e}"))?;
    Ok(text.replacen(
        "[defaults]\n",
        &format!("[defaults]\nkeep_alive_targets = {n}\n"),
        1,
    ))
}

/// The scrape mode's config: `checks` `scrape` checks of the targets' `/metrics` (warden
/// spreads them over the interval itself) and `rules` `expr` rules over what they scrape, as a
/// service's alerting would have them (error ratios, p95/p99 latency, rates, `sum by`), each
/// evaluated after a run of one of the scrape checks. Thresholds sit where the targets' steady
/// traffic keeps every rule ok: this measures the watching, not the paging.
fn generate_scrape_config(
    checks: usize,
    rules: usize,
    interval: Duration,
    timeout: Duration,
    port: u16,
    listen: &str,
) -> String {
    const EXPRS: [(&str, &str, &str); 10] = [
        (
            "error-ratio-by-route",
            r#"sum by (route) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (route) (rate(http_requests_total[5m]))"#,
            "> 0.05",
        ),
        (
            "error-ratio-by-job",
            r#"sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m]))"#,
            "> 0.05",
        ),
        (
            "p95-latency-by-route",
            "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket[5m])))",
            "> 2",
        ),
        (
            "p95-latency-by-job",
            "histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
            "> 2",
        ),
        (
            "db-p99-by-query",
            "histogram_quantile(0.99, sum by (le, query) (rate(db_query_duration_seconds_bucket[5m])))",
            "> 1",
        ),
        (
            "jobs-failing-by-queue",
            r#"sum by (queue) (rate(worker_jobs_total{outcome="failed"}[5m])) / sum by (queue) (rate(worker_jobs_total[5m]))"#,
            "> 0.1",
        ),
        (
            "cache-hit-ratio",
            "sum by (cache) (rate(cache_hits_total[5m])) / (sum by (cache) (rate(cache_hits_total[5m])) + sum by (cache) (rate(cache_misses_total[5m])))",
            "< 0.5",
        ),
        (
            "request-rate-by-job",
            "sum by (job) (rate(http_requests_total[1m]))",
            "< 0.01",
        ),
        (
            "queue-depth-max",
            "max by (job) (queue_depth)",
            "> 1000",
        ),
        (
            "5xx-per-minute-by-instance",
            r#"sum by (instance) (increase(http_requests_total{status=~"5.."}[1m]))"#,
            "> 10000",
        ),
    ];
    let mut s = format!(
        "# generated by examples/load.rs: {checks} scrape checks, {rules} expr rules\n\
         [server]\nlisten = \"{listen}\"\n\n[log]\nformat = \"human\"\nlevel = \"info\"\n\n\
         [defaults]\ninterval = \"{}\"\ntimeout = \"{}\"\n\n",
        format_duration(interval),
        format_duration(timeout)
    );
    for i in 0..checks {
        s.push_str(&format!(
            "[[check]]\nname = \"{}\"\nkind = \"scrape\"\nurl = \"http://{}:{port}/metrics\"\n\n",
            check_name(i),
            target_addr(i)
        ));
    }
    for r in 0..rules {
        let (name, expr, when) = EXPRS[r % EXPRS.len()];
        // Spread over the scrape checks: each rule runs after a different target's scrape.
        let check = check_name(r * checks / rules.max(1));
        let key = if when.starts_with('<') {
            "warning"
        } else {
            "critical"
        };
        s.push_str(&format!(
            "[[rule]]\nname = \"{name}-{r}\"\ncheck = \"{check}\"\nexpr = '{expr}'\n\
             {key} = {{ when = \"{when}\" }}\n\n"
        ));
    }
    s
}

// ---------------------------------------------------------------------------------------
// references: monit and blackbox_exporter + Prometheus on the same targets (`--compare`)
// ---------------------------------------------------------------------------------------

/// A watcher measured beside warden, after it, on the same running targets.
#[derive(Clone, Copy)]
enum Reference {
    /// Debian's monit: one `check host` per target, probed in serial passes with `set
    /// daemon` seconds between them.
    Monit,
    /// blackbox_exporter probing for a Prometheus that scrapes `/probe?target=` every interval.
    Blackbox {
        exporter: SocketAddr,
        prometheus: SocketAddr,
    },
}

const MONIT: &[&str] = &["monit"];
const BLACKBOX_EXPORTER: &[&str] = &["prometheus-blackbox-exporter", "blackbox_exporter"];
const PROMETHEUS: &[&str] = &["prometheus"];

impl Reference {
    fn name(self) -> &'static str {
        match self {
            Reference::Monit => "monit",
            Reference::Blackbox { .. } => "blackbox",
        }
    }
}

/// `--compare monit,blackbox`, checked before anything starts: the programs are installed
/// and the references' addresses are free.
fn parse_compare(args: &Args, listen: &str) -> Result<Vec<Reference>, String> {
    let base: SocketAddr = listen
        .parse()
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let near = |key: &str, offset: u16| -> Result<SocketAddr, String> {
        match args.0.get(key) {
            None => Ok(SocketAddr::new(base.ip(), base.port() + offset)),
            Some(v) => v.parse().map_err(|e| format!("--{key} {v}: {e}")),
        }
    };
    let mut list = Vec::new();
    for name in args.str("compare", "").split(',').map(str::trim) {
        let (reference, programs, addrs) = match name {
            "" => continue,
            "monit" => (Reference::Monit, vec![MONIT], vec![]),
            "blackbox" => {
                let (exporter, prometheus) =
                    (near("blackbox-listen", 1)?, near("prometheus-listen", 2)?);
                (
                    Reference::Blackbox {
                        exporter,
                        prometheus,
                    },
                    vec![BLACKBOX_EXPORTER, PROMETHEUS],
                    vec![exporter, prometheus],
                )
            }
            other => return Err(format!("--compare {other}: expected monit or blackbox")),
        };
        for names in programs {
            program(names)?;
        }
        for addr in addrs {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Err(format!("--compare {name}: {addr} is taken"));
            }
        }
        list.push(reference);
    }
    Ok(list)
}

/// The first of `names` found in `PATH`.
fn program(names: &[&str]) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "{} not found in PATH (Debian: apt-get install monit prometheus \
                 prometheus-blackbox-exporter)",
                names.join(" or ")
            )
        })
}

/// The version a program reports, from the first line of `PROGRAM ARG`.
fn version_of(program: &Path, arg: &str) -> String {
    let out = Command::new(program).arg(arg).output();
    let text = out
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    // "This is Monit version 5.33.0", "prometheus, version 2.42.0+ds (branch: ...)"
    line.split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

/// What warden was given, for the references to be given the same.
struct Bench<'a> {
    checks: usize,
    port: u16,
    interval: Duration,
    timeout: Duration,
    warmup: Duration,
    measure: Duration,
    /// Absolute: monit and Prometheus are given paths inside it.
    workdir: &'a Path,
}

/// A reference's process, its output in a log file in the workdir.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Spawns `command` into `daemons` (so it is stopped whatever happens next) and waits
    /// until it is ready (`wait_ready`).
    fn start(
        daemons: &mut Vec<Daemon>,
        name: &'static str,
        command: &mut Command,
        ready: Option<(SocketAddr, &str)>,
        workdir: &Path,
        reaper: &mut Reaper,
    ) -> Result<(), String> {
        let daemon = Daemon::spawn(name, command, workdir, reaper)?;
        daemons.push(daemon);
        daemons.last_mut().expect("pushed above").wait_ready(ready)
    }

    fn spawn(
        name: &'static str,
        command: &mut Command,
        workdir: &Path,
        reaper: &mut Reaper,
    ) -> Result<Daemon, String> {
        let log = workdir.join(format!("{name}.out"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {name}: {e}"))?;
        reaper.0.push(child.id());
        Ok(Daemon { name, child, log })
    }

    /// Waits until `ready` answers 200 (or, without one, until it has run for a second).
    fn wait_ready(&mut self, ready: Option<(SocketAddr, &str)>) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{} exited: {status}; see {}",
                    self.name,
                    self.log.display()
                ));
            }
            let up = match ready {
                Some((addr, path)) => http_get(addr, path).is_ok_and(|(code, _)| code == 200),
                None => started.elapsed() >= Duration::from_secs(1),
            };
            if up {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(300) {
                return Err(format!("{} not ready after 5 minutes", self.name));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts, warms up and measures one reference, then stops it the way systemd does and
/// times that. A reference that fails is reported as failed; the run goes on.
fn run_reference(
    reference: Reference,
    bench: &Bench,
    shards: &mut [Shard],
    reaper: &mut Reaper,
) -> Side {
    let mut daemons = Vec::new();
    let result = measure_reference(reference, bench, shards, reaper, &mut daemons);
    for d in &daemons {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(d.child.id().to_string())
            .status();
    }
    let stopping = Instant::now();
    for d in &mut daemons {
        while matches!(d.child.try_wait(), Ok(None)) && stopping.elapsed().as_secs() < 60 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = d.child.kill();
        let _ = d.child.wait();
        reaper.forget(d.child.id());
    }
    let stop_s = stopping.elapsed().as_secs_f64();
    match result {
        Ok(side) => Side { stop_s, ..side },
        Err(e) => {
            eprintln!("load: {}: {e}", reference.name());
            Side {
                error: Some(e),
                ..Side::empty(reference.name())
            }
        }
    }
}

fn measure_reference(
    reference: Reference,
    b: &Bench,
    shards: &mut [Shard],
    reaper: &mut Reaper,
    daemons: &mut Vec<Daemon>,
) -> Result<Side, String> {
    let started = Instant::now();
    let what = match reference {
        Reference::Monit => start_monit(b, reaper, daemons)?,
        Reference::Blackbox {
            exporter,
            prometheus,
        } => start_blackbox(b, exporter, prometheus, reaper, daemons)?,
    };
    let startup_s = started.elapsed().as_secs_f64();
    let named: Vec<(&str, u32)> = daemons.iter().map(|d| (d.name, d.child.id())).collect();
    eprintln!(
        "load: {} ready in {startup_s:.1}s; warming up for {}",
        reference.name(),
        format_duration(b.warmup)
    );
    warm_up(&named, b.warmup, started);

    let load_before = loadavg();
    // monit logs every failed test to its `set logfile`: what it writes in the window counts.
    let monit_log = b.workdir.join("monit.log");
    let monit_mark = std::fs::metadata(&monit_log).map(|m| m.len()).unwrap_or(0) as usize;
    let reset_at = reset_arrivals(shards)?;
    let pids: Vec<u32> = named.iter().map(|n| n.1).collect();
    let usage = measure_usage(&pids, shards, b.measure)?;
    let load_after = loadavg();
    let seen = collect_arrivals(shards, b.workdir, reset_at)?;
    let hwm: Vec<f64> = pids
        .iter()
        .map(|&p| proc_status(p, "VmHWM:").unwrap_or(0) as f64 / 1024.0)
        .collect();
    for d in daemons.iter_mut() {
        if let Ok(Some(status)) = d.child.try_wait() {
            return Err(format!(
                "{} exited during the window: {status}; see {}",
                d.name,
                d.log.display()
            ));
        }
    }

    // Whether the probes passed, as the reference itself saw it.
    let mut notes = Vec::new();
    let mut ok_share = f64::NAN;
    match reference {
        Reference::Monit => {
            let log = std::fs::read(&monit_log).unwrap_or_default();
            let text = String::from_utf8_lossy(&log[monit_mark.min(log.len())..]);
            notes.push((
                "error lines in monit's log during the window".to_string(),
                text.lines()
                    .filter(|l| l.contains("error"))
                    .count()
                    .to_string(),
            ));
        }
        Reference::Blackbox { prometheus, .. } => {
            let ask = |q: &str| query_scalar(prometheus, q).unwrap_or(f64::NAN);
            let succeeded = ask("sum(probe_success)");
            ok_share = succeeded / b.checks as f64;
            notes.push((
                "Prometheus: targets up / probe_success at the last scrape".into(),
                format!("{} / {succeeded}", ask("sum(up)")),
            ));
            if let Ok(m) = Scrape::take(prometheus) {
                let q = |quantile: &str| {
                    m.sum_where(
                        "prometheus_target_interval_length_seconds",
                        &format!("quantile=\"{quantile}\""),
                    )
                };
                notes.push((
                    "Prometheus's own scrape interval p50 / p99 (prometheus_target_interval_length_seconds)".into(),
                    format!("{:.3} s / {:.3} s", q("0.5"), q("0.99")),
                ));
                notes.push((
                    "Prometheus head series".into(),
                    m.sum("prometheus_tsdb_head_series").to_string(),
                ));
            }
        }
    }
    Ok(Side {
        what,
        window_s: usage.window_s,
        load_before,
        load_after,
        processes: named
            .iter()
            .zip(usage.each)
            .zip(hwm)
            .map(|((n, u), h)| (n.0.to_string(), u, h))
            .collect(),
        rss_sum_mean_mb: usage.rss_sum_mean_mb,
        rss_sum_max_mb: usage.rss_sum_max_mb,
        probes_per_s: seen.requests as f64 / seen.over_s,
        probed: seen.probed,
        checks: b.checks,
        period: Period::of(&seen.gaps),
        ok_share,
        targets_cpu_pct: usage.targets_cpu_pct,
        startup_s,
        notes,
        ..Side::empty(reference.name())
    })
}

/// monit in the foreground on a generated monitrc (checked with `monit -t` first).
fn start_monit(
    b: &Bench,
    reaper: &mut Reaper,
    daemons: &mut Vec<Daemon>,
) -> Result<String, String> {
    let monit = program(MONIT)?;
    let rc = b.workdir.join("monitrc");
    // A fresh state: monit restores services' state from its statefile.
    for f in ["monit.state", "monit.pid", "monit.log", "monit.id"] {
        let _ = std::fs::remove_file(b.workdir.join(f));
    }
    write_file(&rc, &monit_config(b))?;
    // monit refuses a control file that others may read.
    std::fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", rc.display()))?;
    let check = Command::new(&monit)
        .arg("-t")
        .arg("-c")
        .arg(&rc)
        .output()
        .map_err(|e| format!("monit -t: {e}"))?;
    if !check.status.success() {
        return Err(format!(
            "monit -t -c {}: {}{}",
            rc.display(),
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        ));
    }
    Daemon::start(
        daemons,
        "monit",
        Command::new(&monit).arg("-I").arg("-c").arg(&rc),
        None,
        b.workdir,
        reaper,
    )?;
    Ok(format!(
        "monit {}: {} `check host`, `set daemon {}`, GET /health, status 200, content \"healthy\", timeout {} s",
        version_of(&monit, "-V"),
        b.checks,
        b.interval.as_secs().max(1),
        b.timeout.as_secs().max(1)
    ))
}

/// One `check host` per target, each an HTTP test of `/health` as warden's check is (status
/// 200 and "healthy" in the body), with warden's timeout; a pass every interval; no httpd.
fn monit_config(b: &Bench) -> String {
    let dir = b.workdir.display();
    let mut s = format!(
        "# generated by examples/load.rs (--compare monit): {} hosts\n\
         set daemon {}\nset logfile {dir}/monit.log\nset pidfile {dir}/monit.pid\n\
         set idfile {dir}/monit.id\nset statefile {dir}/monit.state\n\n",
        b.checks,
        b.interval.as_secs().max(1)
    );
    for i in 0..b.checks {
        s.push_str(&format!(
            "check host {} with address {}\n    if failed port {} protocol http request \"/health\" \
             status = 200 content = \"healthy\" with timeout {} seconds then alert\n",
            check_name(i),
            target_addr(i),
            b.port,
            b.timeout.as_secs().max(1)
        ));
    }
    s
}

/// blackbox_exporter, then a Prometheus that scrapes it for every target.
fn start_blackbox(
    b: &Bench,
    exporter: SocketAddr,
    prometheus: SocketAddr,
    reaper: &mut Reaper,
    daemons: &mut Vec<Daemon>,
) -> Result<String, String> {
    let (bb, prom) = (program(BLACKBOX_EXPORTER)?, program(PROMETHEUS)?);
    let bb_config = b.workdir.join("blackbox.yml");
    let prom_config = b.workdir.join("prometheus.yml");
    let data = b.workdir.join("prometheus-data");
    let _ = std::fs::remove_dir_all(&data);
    write_file(&bb_config, &blackbox_config(b.timeout))?;
    write_file(&prom_config, &prometheus_config(b, exporter))?;
    Daemon::start(
        daemons,
        "blackbox_exporter",
        Command::new(&bb)
            .arg(format!("--config.file={}", bb_config.display()))
            .arg(format!("--web.listen-address={exporter}")),
        Some((exporter, "/-/healthy")),
        b.workdir,
        reaper,
    )?;
    Daemon::start(
        daemons,
        "prometheus",
        Command::new(&prom)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={prometheus}")),
        Some((prometheus, "/-/ready")),
        b.workdir,
        reaper,
    )?;
    Ok(format!(
        "blackbox_exporter {} + Prometheus {}: {} targets via /probe?target=, http_2xx with body \
         regexp \"healthy\", scrape_interval {}, timeout {}",
        version_of(&bb, "--version"),
        version_of(&prom, "--version"),
        b.checks,
        format_duration(b.interval),
        format_duration(b.timeout.min(b.interval))
    ))
}

/// blackbox_exporter's `http_2xx` module, as warden's check: a 2xx and "healthy" in the body.
fn blackbox_config(timeout: Duration) -> String {
    format!(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: {}ms\n    http:\n      \
         preferred_ip_protocol: ip4\n      ip_protocol_fallback: false\n      \
         fail_if_body_not_matches_regexp: [\"healthy\"]\n",
        timeout.as_millis()
    )
}

/// The standard multi-target exporter pattern: every target's URL becomes `?target=` and
/// `instance`, and the scrape goes to the exporter.
fn prometheus_config(b: &Bench, exporter: SocketAddr) -> String {
    let mut s = format!(
        "# generated by examples/load.rs (--compare blackbox): {} targets\n\
         global:\n  scrape_interval: {}ms\n  scrape_timeout: {}ms\n\
         scrape_configs:\n  - job_name: blackbox\n    metrics_path: /probe\n    \
         params:\n      module: [http_2xx]\n    relabel_configs:\n      \
         - source_labels: [__address__]\n        target_label: __param_target\n      \
         - source_labels: [__param_target]\n        target_label: instance\n      \
         - target_label: __address__\n        replacement: {exporter}\n    \
         static_configs:\n      - targets:\n",
        b.checks,
        b.interval.as_millis(),
        b.timeout.min(b.interval).as_millis()
    );
    for i in 0..b.checks {
        s.push_str(&format!(
            "          - http://{}:{}/health\n",
            target_addr(i),
            b.port
        ));
    }
    s
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Sleeps through the warm-up, with the processes' RSS every 30 s.
fn warm_up(processes: &[(&str, u32)], warmup: Duration, started: Instant) {
    let warm = Instant::now();
    while warm.elapsed() < warmup {
        std::thread::sleep(Duration::from_secs(30).min(warmup.saturating_sub(warm.elapsed())));
        let rss: Vec<String> = processes
            .iter()
            .map(|(name, pid)| {
                format!(
                    "{name} RSS {} MB",
                    proc_status(*pid, "VmRSS:").unwrap_or(0) / 1024
                )
            })
            .collect();
        eprintln!(
            "load: {:>4.0} s: {}, load average {:.2}",
            started.elapsed().as_secs_f64(),
            rss.join(", "),
            loadavg()
        );
    }
}

/// One watcher's figures in the side-by-side table (`--compare`).
struct Side {
    name: String,
    /// What ran, with its version and configuration.
    what: String,
    /// Why it has no figures, if it failed.
    error: Option<String>,
    window_s: f64,
    load_before: f64,
    load_after: f64,
    /// Each process: its name, its usage in the window and its `VmHWM` (MB).
    processes: Vec<(String, ProcessUsage, f64)>,
    rss_sum_mean_mb: f64,
    rss_sum_max_mb: f64,
    /// Requests the targets received per second in the window.
    probes_per_s: f64,
    /// Targets requested at least once in the window, of `checks`.
    probed: usize,
    checks: usize,
    period: Period,
    /// The share of probes (or targets, for blackbox) that passed; NaN when not known.
    ok_share: f64,
    targets_cpu_pct: f64,
    startup_s: f64,
    stop_s: f64,
    notes: Vec<(String, String)>,
}

impl Side {
    fn empty(name: &str) -> Side {
        Side {
            name: name.to_string(),
            what: String::new(),
            error: None,
            window_s: f64::NAN,
            load_before: f64::NAN,
            load_after: f64::NAN,
            processes: Vec::new(),
            rss_sum_mean_mb: f64::NAN,
            rss_sum_max_mb: f64::NAN,
            probes_per_s: f64::NAN,
            probed: 0,
            checks: 0,
            period: Period::of(&[]),
            ok_share: f64::NAN,
            targets_cpu_pct: f64::NAN,
            startup_s: f64::NAN,
            stop_s: f64::NAN,
            notes: Vec::new(),
        }
    }

    fn cpu_pct(&self) -> f64 {
        self.processes.iter().map(|p| p.1.cpu_pct).sum()
    }

    fn hwm_mb(&self) -> f64 {
        self.processes.iter().map(|p| p.2).sum()
    }

    /// `total`, and each process's share after it when there is more than one.
    fn apart(
        &self,
        total: String,
        each: impl Fn(&(String, ProcessUsage, f64)) -> String,
    ) -> String {
        if self.processes.len() < 2 {
            return total;
        }
        let parts: Vec<String> = self
            .processes
            .iter()
            .map(|p| format!("{} {}", p.0, each(p)))
            .collect();
        format!("{total} ({})", parts.join(" + "))
    }

    fn rows(&self, planned_per_s: f64) -> Vec<(String, String)> {
        if let Some(e) = &self.error {
            return vec![("what ran".into(), format!("FAILED: {e}"))];
        }
        vec![
            ("what ran".into(), self.what.clone()),
            (
                "window (load average before / after)".into(),
                format!(
                    "{:.1} s ({:.2} / {:.2})",
                    self.window_s, self.load_before, self.load_after
                ),
            ),
            (
                "CPU, % of one core".into(),
                self.apart(format!("{:.1}%", self.cpu_pct()), |p| {
                    format!("{:.1}%", p.1.cpu_pct)
                }),
            ),
            (
                "RSS mean / max in the window".into(),
                self.apart(
                    format!(
                        "{:.1} / {:.1} MB",
                        self.rss_sum_mean_mb, self.rss_sum_max_mb
                    ),
                    |p| format!("{:.1} / {:.1}", p.1.rss_mean_mb, p.1.rss_max_mb),
                ),
            ),
            (
                "peak RSS (VmHWM, whole life)".into(),
                self.apart(format!("{:.1} MB", self.hwm_mb()), |p| {
                    format!("{:.1}", p.2)
                }),
            ),
            (
                format!("probes/s at the targets (planned {planned_per_s:.1})"),
                format!("{:.1}", self.probes_per_s),
            ),
            (
                "targets probed in the window".into(),
                format!(
                    "{} of {} ({:.1}%)",
                    self.probed,
                    self.checks,
                    100.0 * self.probed as f64 / self.checks.max(1) as f64
                ),
            ),
            (
                "real period mean / p50 / p99 (time between requests to one target)".into(),
                format!(
                    "{:.3} / {:.3} / {:.3} s ({} gaps)",
                    self.period.mean_s, self.period.p50_s, self.period.p99_s, self.period.gaps
                ),
            ),
            (
                "probes ok".into(),
                if self.ok_share.is_nan() {
                    "n/a".into()
                } else {
                    format!("{:.2}%", self.ok_share * 100.0)
                },
            ),
            (
                "start to ready / SIGTERM to exit".into(),
                format!("{:.2} s / {:.2} s", self.startup_s, self.stop_s),
            ),
            (
                "targets' CPU (load generator), apart".into(),
                format!("{:.1}%", self.targets_cpu_pct),
            ),
        ]
        .into_iter()
        .chain(self.notes.iter().cloned())
        .collect()
    }

    fn json(&self) -> serde_json::Value {
        let n = |v: f64| {
            if v.is_finite() {
                serde_json::json!((v * 1e4).round() / 1e4)
            } else {
                serde_json::Value::Null
            }
        };
        serde_json::json!({
            "what": self.what,
            "error": self.error,
            "window_s": n(self.window_s),
            "load_before": n(self.load_before),
            "load_after": n(self.load_after),
            "cpu_pct": n(self.cpu_pct()),
            "rss_mb": n(self.rss_sum_mean_mb),
            "rss_max_mb": n(self.rss_sum_max_mb),
            "hwm_mb": n(self.hwm_mb()),
            "processes": self.processes.iter().map(|(name, u, hwm)| serde_json::json!({
                "name": name,
                "cpu_pct": n(u.cpu_pct),
                "rss_mb": n(u.rss_mean_mb),
                "rss_max_mb": n(u.rss_max_mb),
                "hwm_mb": n(*hwm),
            })).collect::<Vec<_>>(),
            "probes_per_s": n(self.probes_per_s),
            "targets_probed": self.probed,
            "period_mean_s": n(self.period.mean_s),
            "period_p50_s": n(self.period.p50_s),
            "period_p99_s": n(self.period.p99_s),
            "period_gaps": self.period.gaps,
            "ok_share": n(self.ok_share),
            "targets_cpu_pct": n(self.targets_cpu_pct),
            "startup_s": n(self.startup_s),
            "stop_s": n(self.stop_s),
            "notes": self.notes.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// The side-by-side table: a row per figure, a column per watcher.
fn print_sides(title: &str, planned_per_s: f64, sides: &[&Side]) {
    println!("\n## {title}");
    let header: Vec<&str> = sides.iter().map(|s| s.name.as_str()).collect();
    println!("| figure | {} |", header.join(" | "));
    println!("|---|{}", "---|".repeat(sides.len()));
    let columns: Vec<Vec<(String, String)>> = sides.iter().map(|s| s.rows(planned_per_s)).collect();
    // Rows in the order they first appear, each column's value or a dash.
    let mut keys: Vec<&str> = Vec::new();
    for c in &columns {
        for (k, _) in c {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    for k in keys {
        let cells: Vec<&str> = columns
            .iter()
            .map(|c| {
                c.iter()
                    .find(|(ck, _)| ck == k)
                    .map_or("-", |(_, v)| v.as_str())
            })
            .collect();
        println!("| {k} | {} |", cells.join(" | "));
    }
}

/// An instant query through warden's own `/api/v1/query`, answering one number.
fn query_scalar(addr: SocketAddr, query: &str) -> Result<f64, String> {
    let mut enc = String::new();
    for b in query.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            enc.push(b as char);
        } else {
            enc.push_str(&format!("%{b:02X}"));
        }
    }
    let (code, body) = http_get(addr, &format!("/api/v1/query?query={enc}"))?;
    if code != 200 {
        return Err(format!("{query}: {code} {body}"));
    }
    // {"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[t,"N"]}]}}
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    json["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("{query}: no value in {body}"))
}

/// GET over a fresh connection; returns the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    // hyper answers with Content-Length for these bodies, never chunked.
    Ok((code, body.to_string()))
}

/// One scrape of warden's `/metrics`, as `series → value`.
struct Scrape(Vec<(String, f64)>);

impl Scrape {
    fn take(addr: SocketAddr) -> Result<Scrape, String> {
        let (code, body) = http_get(addr, "/metrics")?;
        if code != 200 {
            return Err(format!("/metrics answered {code}"));
        }
        Ok(Scrape(
            body.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (series, value) = l.rsplit_once(' ')?;
                    Some((series.to_string(), value.parse().ok()?))
                })
                .collect(),
        ))
    }

    /// Scrapes, and stamps the scrape with the middle of the time it took.
    fn take_timed(addr: SocketAddr) -> Result<(Scrape, Instant), String> {
        let before = Instant::now();
        let scrape = Scrape::take(addr)?;
        Ok((scrape, before + before.elapsed() / 2))
    }

    fn sum(&self, name: &str) -> f64 {
        self.sum_where(name, "")
    }

    fn sum_where(&self, name: &str, label: &str) -> f64 {
        self.0
            .iter()
            .filter(|(s, _)| {
                (s == name || s.starts_with(&format!("{name}{{"))) && s.contains(label)
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn histogram_delta(&self, before: &Scrape, name: &str) -> Buckets {
        let bucket = format!("{name}_bucket{{le=\"");
        let read = |s: &Scrape| -> Vec<(f64, f64)> {
            s.0.iter()
                .filter_map(|(series, v)| {
                    let le = series.strip_prefix(&bucket)?.strip_suffix("\"}")?;
                    let le = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().ok()?
                    };
                    Some((le, *v))
                })
                .collect()
        };
        let (a, b) = (read(self), read(before));
        Buckets(
            a.iter()
                .zip(b.iter())
                .map(|((le, x), (_, y))| (*le, x - y))
                .collect(),
        )
    }
}

/// Cumulative histogram buckets `(le, count)`.
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    /// `histogram_quantile`: linear interpolation inside the bucket the rank falls in.
    fn quantile(&self, q: f64) -> f64 {
        let Some(&(_, total)) = self.0.last() else {
            return f64::NAN;
        };
        if total <= 0.0 {
            return f64::NAN;
        }
        let rank = q * total;
        let mut prev = (0.0, 0.0);
        for &(le, c) in &self.0 {
            if c >= rank {
                if le.is_infinite() {
                    return prev.0;
                }
                let span = c - prev.1;
                let frac = if span > 0.0 {
                    (rank - prev.1) / span
                } else {
                    1.0
                };
                return prev.0 + (le - prev.0) * frac;
            }
            prev = (le, c);
        }
        f64::NAN
    }

    fn fraction_le(&self, bound: f64) -> f64 {
        let total = self.0.last().map(|b| b.1).unwrap_or(0.0);
        let c = self
            .0
            .iter()
            .find(|(le, _)| (*le - bound).abs() < 1e-12)
            .map(|b| b.1)
            .unwrap_or(f64::NAN);
        if total > 0.0 {
            c / total
        } else {
            f64::NAN
        }
    }

    /// The upper bound of the highest bucket that received an observation.
    fn max_bucket(&self) -> String {
        let mut prev = 0.0;
        let mut top = "none".to_string();
        for &(le, c) in &self.0 {
            if c > prev {
                top = if le.is_infinite() {
                    "+Inf".into()
                } else {
                    format!("{}ms", le * 1000.0)
                };
            }
            prev = c;
        }
        top
    }
}

/// USER_HZ, the unit of `utime` and `stime`: `getconf CLK_TCK` is 100 on Linux.
const TICKS_PER_S: f64 = 100.0;

/// Clears every target's record of arrivals; the window starts now.
fn reset_arrivals(shards: &mut [Shard]) -> Result<Instant, String> {
    for s in shards.iter_mut() {
        s.command("reset")?;
    }
    Ok(Instant::now())
}

/// One process's CPU and RSS over a window.
struct ProcessUsage {
    /// utime + stime over the window, as % of one core.
    cpu_pct: f64,
    /// `VmRSS` sampled every second: mean and max.
    rss_mean_mb: f64,
    rss_max_mb: f64,
}

/// Some processes' CPU and RSS over one window, and the targets' CPU beside them.
struct Usage {
    window_s: f64,
    each: Vec<ProcessUsage>,
    /// The processes' RSS added up at each sample: mean and max.
    rss_sum_mean_mb: f64,
    rss_sum_max_mb: f64,
    /// The target processes' CPU (the load generator's cost), % of one core.
    targets_cpu_pct: f64,
}

/// Measures `pids` for `measure`: CPU from `/proc/<pid>/stat` at either end, RSS every second.
fn measure_usage(pids: &[u32], shards: &[Shard], measure: Duration) -> Result<Usage, String> {
    let targets_cpu = || -> u64 {
        shards
            .iter()
            .map(|s| cpu_ticks(s.child.id()).unwrap_or(0))
            .sum()
    };
    let c0 = pids
        .iter()
        .map(|&p| cpu_ticks(p))
        .collect::<Result<Vec<_>, _>>()?;
    let t0 = targets_cpu();
    let w0 = Instant::now();
    let (mut max, mut sum) = (vec![0u64; pids.len()], vec![0u64; pids.len()]);
    let (mut all_max, mut all_sum, mut samples) = (0u64, 0u64, 0u64);
    while w0.elapsed() < measure {
        std::thread::sleep(Duration::from_secs(1).min(measure));
        let mut all = 0;
        for (k, &p) in pids.iter().enumerate() {
            let rss = proc_status(p, "VmRSS:").unwrap_or(0);
            max[k] = max[k].max(rss);
            sum[k] += rss;
            all += rss;
        }
        all_max = all_max.max(all);
        all_sum += all;
        samples += 1;
    }
    let c1 = pids
        .iter()
        .map(|&p| cpu_ticks(p))
        .collect::<Result<Vec<_>, _>>()?;
    let t1 = targets_cpu();
    let window_s = w0.elapsed().as_secs_f64();
    let pct = |ticks: u64| ticks as f64 / TICKS_PER_S / window_s * 100.0;
    let kb_mean = |kb: u64| kb as f64 / samples.max(1) as f64 / 1024.0;
    Ok(Usage {
        window_s,
        each: (0..pids.len())
            .map(|k| ProcessUsage {
                cpu_pct: pct(c1[k] - c0[k]),
                rss_mean_mb: kb_mean(sum[k]),
                rss_max_mb: max[k] as f64 / 1024.0,
            })
            .collect(),
        rss_sum_mean_mb: kb_mean(all_sum),
        rss_sum_max_mb: all_max as f64 / 1024.0,
        targets_cpu_pct: pct(t1 - t0),
    })
}

/// What the targets saw between `reset_arrivals` and `collect_arrivals`.
struct Seen {
    /// Requests, over `over_s` seconds since the reset.
    requests: u64,
    over_s: f64,
    /// Targets requested at least once.
    probed: usize,
    /// Every request's lateness against warden's plan (`arrival_lateness`), ns, sorted.
    late: Vec<u64>,
    /// The time between consecutive requests to one target (`arrival_gaps`), ns, sorted.
    gaps: Vec<u64>,
}

/// Asks every target process for its arrivals since the reset (and clears them).
fn collect_arrivals(
    shards: &mut [Shard],
    workdir: &Path,
    reset_at: Instant,
) -> Result<Seen, String> {
    let read = |path: &Path| -> Result<Vec<u64>, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _ = std::fs::remove_file(path);
        Ok(text.lines().filter_map(|l| l.parse().ok()).collect())
    };
    let mut seen = Seen {
        requests: 0,
        over_s: 0.0,
        probed: 0,
        late: Vec::new(),
        gaps: Vec::new(),
    };
    for (k, s) in shards.iter_mut().enumerate() {
        let late = workdir.join(format!("arrivals-{k}.txt"));
        let gaps = workdir.join(format!("gaps-{k}.txt"));
        let reply = s.command(&format!("dump {} {}", late.display(), gaps.display()))?;
        seen.over_s = seen.over_s.max(reset_at.elapsed().as_secs_f64());
        let mut counts = reply
            .strip_prefix("ok ")
            .unwrap_or_default()
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        seen.requests += counts.next().unwrap_or(0);
        seen.probed += counts.next().unwrap_or(0) as usize;
        seen.late.extend(read(&late)?);
        seen.gaps.extend(read(&gaps)?);
    }
    seen.late.sort_unstable();
    seen.gaps.sort_unstable();
    Ok(seen)
}

/// The `p` quantile of `sorted` by nearest rank (`p` = 1: the max); NaN when empty.
fn nearest_rank(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}

/// The real period of whatever probed the targets: the time between consecutive requests to
/// the same target in the window, in seconds.
#[derive(Clone, Copy)]
struct Period {
    mean_s: f64,
    p50_s: f64,
    p99_s: f64,
    /// How many such gaps were seen.
    gaps: usize,
}

impl Period {
    fn of(gaps: &[u64]) -> Period {
        let mean = if gaps.is_empty() {
            f64::NAN
        } else {
            gaps.iter().sum::<u64>() as f64 / gaps.len() as f64
        };
        Period {
            mean_s: mean / 1e9,
            p50_s: nearest_rank(gaps, 0.5) / 1e9,
            p99_s: nearest_rank(gaps, 0.99) / 1e9,
            gaps: gaps.len(),
        }
    }
}

fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("stat {pid}: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).ok_or("bad utime")?;
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).ok_or("bad stime")?;
    Ok(utime + stime)
}

/// A `kB` (or count) field of `/proc/<pid>/status`.
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The first process below `pid` whose command name is `name`.
fn descendant_named(pid: u32, name: &str) -> Option<u32> {
    let mut stack = vec![pid];
    while let Some(p) = stack.pop() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        if p != pid && comm.trim() == name {
            return Some(p);
        }
        let children =
            std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")).unwrap_or_default();
        stack.extend(
            children
                .split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok()),
        );
    }
    None
}

/// Whether two measures of one figure agree within 10 % of the larger.
fn agrees(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.1 * a.abs().max(b.abs())
}

fn agreement(proc: f64, metrics: f64) -> String {
    let off = if proc != 0.0 {
        (metrics - proc) / proc * 100.0
    } else {
        f64::NAN
    };
    if agrees(proc, metrics) {
        format!("agrees with /proc within 10 %: {off:+.1} %")
    } else {
        format!("DISAGREES with /proc ({proc:.1}): {off:+.1} %")
    }
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn open_files_limit() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        })
        .unwrap_or_else(|| "?".into())
}

struct Report {
    label: String,
    kind: String,
    checks: usize,
    interval_s: f64,
    window_s: f64,
    load_before: f64,
    load_after: f64,
    startup_s: f64,
    stop_s: f64,
    planned_per_s: f64,
    achieved_per_s: f64,
    ok_ratio: f64,
    skipped: f64,
    served_per_s: f64,
    lateness_p50_ms: f64,
    lateness_p99_ms: f64,
    lateness_le_20ms: f64,
    lateness_max_bucket: String,
    arrival_p50_ms: f64,
    arrival_p99_ms: f64,
    arrival_max_ms: f64,
    cpu_pct: f64,
    /// The same window's CPU from warden's `process_cpu_seconds_total` on `/metrics`.
    metrics_cpu_pct: f64,
    /// RSS at the last scrape: `VmRSS` from /proc and warden's `process_resident_memory_bytes`.
    proc_rss_end_mb: f64,
    metrics_rss_mb: f64,
    /// `process_open_fds` and `warden_metrics_series` after the window.
    metrics_fds: f64,
    metrics_series: f64,
    rss_mb: f64,
    rss_max_mb: f64,
    hwm_mb: f64,
    startup_rss_mb: f64,
    threads: u64,
    fds: usize,
    generator_cpu_pct: f64,
    scrape_max_ms: f64,
    scrape_bytes: usize,
    /// Mean `warden_check_duration_seconds` over the window (a probe or scrape, end to end).
    probe_mean_ms: f64,
    /// Series and samples in warden's series store at the end of the window (scrape mode).
    store_series: f64,
    store_samples: f64,
    /// The real period at the targets, and how many targets were requested in the window.
    period: Period,
    probed: usize,
    /// The references measured after warden on the same targets (`--compare`).
    compare: Vec<Side>,
}

impl Report {
    fn print(&self) {
        println!(
            "\n## warden, {} {} every {}s {}",
            self.checks, self.kind, self.interval_s, self.label
        );
        println!("| figure | value |\n|---|---|");
        let rows = [
            (
                "window",
                format!(
                    "{:.1} s (load average {:.2} before, {:.2} after)",
                    self.window_s, self.load_before, self.load_after
                ),
            ),
            (
                "checks/s planned / achieved",
                format!(
                    "{:.1} / {:.1} ({:.1}%)",
                    self.planned_per_s,
                    self.achieved_per_s,
                    100.0 * self.achieved_per_s / self.planned_per_s
                ),
            ),
            ("probes ok", format!("{:.2}%", self.ok_ratio * 100.0)),
            ("skipped runs", format!("{}", self.skipped)),
            (
                "requests served/s (targets)",
                format!("{:.1}", self.served_per_s),
            ),
            (
                "scheduler lateness p50 / p99 (histogram)",
                format!(
                    "{:.2} ms / {:.2} ms; {:.2}% ≤ 20 ms; highest bucket hit {}",
                    self.lateness_p50_ms,
                    self.lateness_p99_ms,
                    self.lateness_le_20ms * 100.0,
                    self.lateness_max_bucket
                ),
            ),
            (
                "arrival lateness p50 / p99 / max (at targets)",
                format!(
                    "{:.2} ms / {:.2} ms / {:.2} ms",
                    self.arrival_p50_ms, self.arrival_p99_ms, self.arrival_max_ms
                ),
            ),
            (
                "real period at the targets mean / p50 / p99; targets probed",
                format!(
                    "{:.3} / {:.3} / {:.3} s; {} of {}",
                    self.period.mean_s,
                    self.period.p50_s,
                    self.period.p99_s,
                    self.probed,
                    self.checks
                ),
            ),
            (
                "warden CPU (% of one core)",
                format!("{:.1}%", self.cpu_pct),
            ),
            (
                "warden CPU from /metrics (process_cpu_seconds_total)",
                format!(
                    "{:.1}% ({})",
                    self.metrics_cpu_pct,
                    agreement(self.cpu_pct, self.metrics_cpu_pct)
                ),
            ),
            (
                "warden RSS at the last scrape, /proc VmRSS / process_resident_memory_bytes",
                format!(
                    "{:.1} MB / {:.1} MB ({})",
                    self.proc_rss_end_mb,
                    self.metrics_rss_mb,
                    agreement(self.proc_rss_end_mb, self.metrics_rss_mb)
                ),
            ),
            (
                "warden RSS mean / max in window",
                format!("{:.1} MB / {:.1} MB", self.rss_mb, self.rss_max_mb),
            ),
            (
                "warden peak RSS (VmHWM, whole life)",
                format!("{:.1} MB", self.hwm_mb),
            ),
            (
                "warden startup to /readyz",
                format!(
                    "{:.2} s (RSS then {:.1} MB)",
                    self.startup_s, self.startup_rss_mb
                ),
            ),
            (
                "warden threads / open fds (/proc; process_open_fds)",
                format!("{} / {} ({})", self.threads, self.fds, self.metrics_fds),
            ),
            ("warden SIGTERM to exit", format!("{:.2} s", self.stop_s)),
            (
                "load generator CPU (targets, % of one core)",
                format!("{:.1}%", self.generator_cpu_pct),
            ),
            (
                "check run (probe or scrape) mean duration",
                format!("{:.2} ms", self.probe_mean_ms),
            ),
            (
                "series store: series / samples",
                format!("{} / {}", self.store_series, self.store_samples),
            ),
            (
                "/metrics scrape (slowest, size; warden_metrics_series)",
                format!(
                    "{:.1} ms, {} KB; {} series",
                    self.scrape_max_ms,
                    self.scrape_bytes / 1024,
                    self.metrics_series
                ),
            ),
        ];
        for (k, v) in rows {
            println!("| {k} | {v} |");
        }
        if !self.compare.is_empty() {
            let warden = self.side();
            let sides: Vec<&Side> = std::iter::once(&warden).chain(&self.compare).collect();
            print_sides(
                &format!(
                    "side by side: {} http targets every {}s, one after another on the same targets {}",
                    self.checks, self.interval_s, self.label
                ),
                self.planned_per_s,
                &sides,
            );
        }
    }

    /// warden's figures as a column of the side-by-side table.
    fn side(&self) -> Side {
        Side {
            what: "warden (this build): http checks asserting status == \"healthy\", one rule each"
                .into(),
            window_s: self.window_s,
            load_before: self.load_before,
            load_after: self.load_after,
            processes: vec![(
                "warden".into(),
                ProcessUsage {
                    cpu_pct: self.cpu_pct,
                    rss_mean_mb: self.rss_mb,
                    rss_max_mb: self.rss_max_mb,
                },
                self.hwm_mb,
            )],
            rss_sum_mean_mb: self.rss_mb,
            rss_sum_max_mb: self.rss_max_mb,
            probes_per_s: self.served_per_s,
            probed: self.probed,
            checks: self.checks,
            period: self.period,
            ok_share: self.ok_ratio,
            targets_cpu_pct: self.generator_cpu_pct,
            startup_s: self.startup_s,
            stop_s: self.stop_s,
            notes: vec![(
                "warden: scheduler lateness p99, skipped runs".into(),
                format!("{:.2} ms, {}", self.lateness_p99_ms, self.skipped),
            )],
            ..Side::empty("warden")
        }
    }

    fn json(&self) -> String {
        let num = |v: f64| {
            if v.is_finite() {
                format!("{v:.4}")
            } else {
                "null".into()
            }
        };
        format!(
            "{{\"label\":{:?},\"checks\":{},\"interval_s\":{},\"window_s\":{},\"load_before\":{},\"load_after\":{},\"startup_s\":{},\"stop_s\":{},\"planned_per_s\":{},\"achieved_per_s\":{},\"ok_ratio\":{},\"skipped\":{},\"served_per_s\":{},\"lateness_p50_ms\":{},\"lateness_p99_ms\":{},\"lateness_le_20ms\":{},\"lateness_max_bucket\":{:?},\"arrival_p50_ms\":{},\"arrival_p99_ms\":{},\"arrival_max_ms\":{},\"cpu_pct\":{},\"rss_mb\":{},\"rss_max_mb\":{},\"hwm_mb\":{},\"startup_rss_mb\":{},\"threads\":{},\"fds\":{},\"generator_cpu_pct\":{},\"scrape_max_ms\":{},\"scrape_bytes\":{},\"kind\":{:?},\"probe_mean_ms\":{},\"store_series\":{},\"store_samples\":{},\"metrics_cpu_pct\":{},\"proc_rss_end_mb\":{},\"metrics_rss_mb\":{},\"metrics_fds\":{},\"metrics_series\":{},\"metrics_agree\":{},\"period_mean_s\":{},\"period_p50_s\":{},\"period_p99_s\":{},\"targets_probed\":{},\"compare\":{}}}",
            self.label, self.checks, num(self.interval_s), num(self.window_s), num(self.load_before), num(self.load_after),
            num(self.startup_s), num(self.stop_s), num(self.planned_per_s), num(self.achieved_per_s), num(self.ok_ratio),
            num(self.skipped), num(self.served_per_s), num(self.lateness_p50_ms), num(self.lateness_p99_ms),
            num(self.lateness_le_20ms), self.lateness_max_bucket, num(self.arrival_p50_ms), num(self.arrival_p99_ms),
            num(self.arrival_max_ms), num(self.cpu_pct), num(self.rss_mb), num(self.rss_max_mb), num(self.hwm_mb),
            num(self.startup_rss_mb), self.threads, self.fds, num(self.generator_cpu_pct), num(self.scrape_max_ms),
            self.scrape_bytes, self.kind, num(self.probe_mean_ms), num(self.store_series), num(self.store_samples),
            num(self.metrics_cpu_pct), num(self.proc_rss_end_mb), num(self.metrics_rss_mb),
            num(self.metrics_fds), num(self.metrics_series),
            agrees(self.cpu_pct, self.metrics_cpu_pct) && agrees(self.proc_rss_end_mb, self.metrics_rss_mb),
            num(self.period.mean_s), num(self.period.p50_s), num(self.period.p99_s), self.probed,
            self.compare
                .iter()
                .map(|side| (side.name.clone(), side.json()))
                .collect::<serde_json::Value>()
        )
    }
}
