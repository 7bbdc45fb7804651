//! Evaluation time of the runbook expressions over 10,000 series: warden's evaluator on its
//! own series store against a real Prometheus (2.42, the Debian package) holding exactly the
//! same samples (issue 15). Reports and asserts nothing.
//!
//! ```sh
//! cargo run --release --example promql_bench            # N = 20 rounds
//! cargo run --release --example promql_bench -- 40      # N = 40
//! ```
//!
//! 1. Generates 10,000 series, an hour at 15 s ending a few minutes before now:
//!    `http_requests_total{job,instance,route,status}` counters (20 x 50 x 4 = 4,000, one
//!    instance restarting mid-hour), `http_request_duration_seconds_bucket{job,instance,route,
//!    le}` classic histograms (10 instances x 50 routes x 10 buckets = 5,000) and gauges
//!    (`db_connections`, `websocket_connections`, `process_open_fds` per instance and
//!    `queue_depth{instance,queue}`: 1,000).
//! 2. Writes them as OpenMetrics with explicit timestamps, backfills them with `promtool tsdb
//!    create-blocks-from openmetrics` and starts `prometheus` over the blocks (scraping
//!    nothing), waiting for `/-/ready`.
//! 3. Appends the same samples to a `warden::series::Store`.
//! 4. For each expression, at the same evaluation time (the newest sample's), N rounds, each
//!    round timing warden's `Query::eval` (parsed once, the result dropped outside the timed
//!    region) then Prometheus' own `data.stats.timings.evalTotalTime` from
//!    `/api/v1/query?..&stats=all` (its engine's time: series selection, chunk decoding,
//!    evaluation and sorting, without parsing, JSON encoding or HTTP). The HTTP round trip of
//!    the same request and of the trivial query `1` are measured too, as a cross-check.
//!    Both sides run 3 unmeasured warm-up rounds first; rounds interleave the two, so a
//!    neighbour's load lands on both.
//! 5. Prints one table: series out (warden / Prometheus), whether every value agrees (1e-9
//!    relative), best and median of N for both, and the ratio of medians.

// A benchmark of wall time against the real clock (Prometheus' retention is measured against
// it); not product code.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use warden::labels::Labels;
use warden::promql::{Query, Value, METRIC_NAME};
use warden::series::Store;

/// Seconds between samples.
const STEP_S: i64 = 15;
/// Steps: 0..=LAST, an hour.
const LAST: i64 = 240;
const INSTANCES: usize = 20;
const ROUTES: usize = 50;
const STATUSES: [&str; 4] = ["200", "404", "500", "503"];
/// Instances exposing the latency histogram.
const HISTOGRAM_INSTANCES: usize = 10;
const BUCKETS: [f64; 10] = [
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    f64::INFINITY,
];
const QUEUES: usize = 47;
const WARMUP: usize = 3;

const EXPRESSIONS: &[(&str, &str)] = &[
    (
        "error ratio by route",
        r#"sum by (route) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (route) (rate(http_requests_total[5m]))"#,
    ),
    (
        "p95 latency",
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "p99 latency by route",
        "histogram_quantile(0.99, sum by (route, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "5xx in the last minute > 10",
        r#"sum(increase(http_requests_total{status=~"5.."}[1m])) > 10"#,
    ),
    (
        "queue depth 5m avg > 2x the hour's",
        "avg_over_time(queue_depth[5m]) > 2 * avg_over_time(queue_depth[1h] offset 5m)",
    ),
    ("db connections rising", "deriv(db_connections[15m]) > 0"),
    (
        "websocket drop ratio",
        "(websocket_connections offset 5m - websocket_connections) / websocket_connections offset 5m > 0.2",
    ),
    ("raw rate, counters", "rate(http_requests_total[5m])"),
    ("raw rate, both http families", r#"rate({__name__=~"http_.+"}[5m])"#),
];

/// One series: labels (with `__name__`) and `(seconds, value)` points.
struct Series {
    labels: Labels,
    points: Vec<(i64, f64)>,
}

/// One OpenMetrics family.
struct Family {
    name: &'static str,
    kind: &'static str,
    series: Vec<Series>,
}

fn labels(name: &str, pairs: &[(&str, String)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    l.insert(METRIC_NAME.into(), name.into());
    l.insert("job".into(), "api".into());
    l
}

fn instance(i: usize) -> String {
    format!("10.0.{}.{}:8080", i / 8, 10 + i)
}

fn route(r: usize) -> String {
    const PARTS: [&str; 10] = [
        "users", "orders", "items", "carts", "payments", "sessions", "search", "reviews", "stock",
        "prices",
    ];
    format!("/api/v{}/{}/{{id}}", 1 + r / 10, PARTS[r % 10])
}

/// The data set, deterministic but for its start time.
fn dataset(start_s: i64) -> Vec<Family> {
    let mut rng = fastrand::Rng::with_seed(15);
    let times: Vec<i64> = (0..=LAST).map(|k| start_s + k * STEP_S).collect();

    // Requests: per route a base rate, split by status; instance 7 restarts at step 150
    // (its counters reset); routes 3 and 17 fail more in the last 10 minutes.
    let mut requests = Vec::new();
    for i in 0..INSTANCES {
        for r in 0..ROUTES {
            let base = 0.5 + 20.0 * ((r * 37 % ROUTES) as f64 / ROUTES as f64).powi(2);
            for (s, status) in STATUSES.iter().enumerate() {
                let share = [0.9, 0.06, 0.03, 0.01][s];
                let mut v = (rng.f64() * 1000.0).floor();
                let points = times
                    .iter()
                    .enumerate()
                    .map(|(k, &t)| {
                        if i == 7 && k == 150 {
                            v = 0.0;
                        }
                        let burst = if s >= 2 && (r == 3 || r == 17) && k > LAST as usize - 40 {
                            20.0
                        } else {
                            1.0
                        };
                        let mean = base * share * burst * STEP_S as f64;
                        v += (mean * (0.5 + rng.f64())).round();
                        (t, v)
                    })
                    .collect();
                requests.push(Series {
                    labels: labels(
                        "http_requests_total",
                        &[
                            ("instance", instance(i)),
                            ("route", route(r)),
                            ("status", status.to_string()),
                        ],
                    ),
                    points,
                });
            }
        }
    }

    // Latency: per route a log-normal with its own median; cumulative buckets from the CDF,
    // so every bucket count is monotonic in `le` and in time.
    let mut buckets = Vec::new();
    for i in 0..HISTOGRAM_INSTANCES {
        for r in 0..ROUTES {
            let median = 0.01 * (1.0 + (r % 13) as f64 * 3.0);
            let sigma = 0.6 + (r % 5) as f64 * 0.2;
            let mut counts = [0.0f64; BUCKETS.len()];
            let mut per_bucket: Vec<Vec<(i64, f64)>> = vec![Vec::new(); BUCKETS.len()];
            for &t in &times {
                let n = (STEP_S as f64 * 4.0 * (0.5 + rng.f64())).round();
                for (b, &le) in BUCKETS.iter().enumerate() {
                    let cdf = if le.is_infinite() {
                        1.0
                    } else {
                        normal_cdf((le / median).ln() / sigma)
                    };
                    counts[b] += (n * cdf).floor();
                    per_bucket[b].push((t, counts[b]));
                }
            }
            for (b, points) in per_bucket.into_iter().enumerate() {
                buckets.push(Series {
                    labels: labels(
                        "http_request_duration_seconds_bucket",
                        &[
                            ("instance", instance(i)),
                            ("route", route(r)),
                            ("le", go_float(BUCKETS[b])),
                        ],
                    ),
                    points,
                });
            }
        }
    }

    // Gauges.
    let gauge = |rng: &mut fastrand::Rng,
                 name: &str,
                 pairs: &[(&str, String)],
                 f: &dyn Fn(usize, f64) -> f64| Series {
        labels: labels(name, pairs),
        points: times
            .iter()
            .enumerate()
            .map(|(k, &t)| (t, f(k, rng.f64())))
            .collect(),
    };
    let mut db = Vec::new();
    let mut ws = Vec::new();
    let mut fds = Vec::new();
    let mut queues = Vec::new();
    for i in 0..INSTANCES {
        let inst = [("instance", instance(i))];
        // A pool leaking on every fourth instance.
        let leak = if i % 4 == 0 { 0.2 } else { 0.0 };
        db.push(gauge(&mut rng, "db_connections", &inst, &|k, u| {
            (40.0 + leak * k as f64 + 6.0 * u).round()
        }));
        // Instances 2 and 11 drop most of their websockets in the last 5 minutes.
        let drops = i == 2 || i == 11;
        ws.push(gauge(&mut rng, "websocket_connections", &inst, &|k, u| {
            let level = 1000.0 + 200.0 * (k as f64 / 40.0).sin() + 30.0 * u;
            if drops && k > LAST as usize - 20 {
                (level * 0.4).round()
            } else {
                level.round()
            }
        }));
        fds.push(gauge(&mut rng, "process_open_fds", &inst, &|_, u| {
            (200.0 + 10.0 * u).round()
        }));
        for q in 0..QUEUES {
            let spike = q == 5 && i % 5 == 0;
            queues.push(gauge(
                &mut rng,
                "queue_depth",
                &[("instance", instance(i)), ("queue", format!("q{q:02}"))],
                &|k, u| {
                    let depth = 10.0 + 5.0 * u;
                    if spike && k > LAST as usize - 20 {
                        (depth * 4.0).round()
                    } else {
                        depth.round()
                    }
                },
            ));
        }
    }

    vec![
        Family {
            name: "http_requests",
            kind: "counter",
            series: requests,
        },
        Family {
            name: "http_request_duration_seconds",
            kind: "histogram",
            series: buckets,
        },
        Family {
            name: "db_connections",
            kind: "gauge",
            series: db,
        },
        Family {
            name: "websocket_connections",
            kind: "gauge",
            series: ws,
        },
        Family {
            name: "process_open_fds",
            kind: "gauge",
            series: fds,
        },
        Family {
            name: "queue_depth",
            kind: "gauge",
            series: queues,
        },
    ]
}

/// The standard normal CDF (Abramowitz and Stegun 7.1.26, good to 1e-7: a data shape).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// A value as Go's `strconv.ParseFloat` reads it back exactly.
fn go_float(v: f64) -> String {
    if v == f64::INFINITY {
        "+Inf".into()
    } else {
        format!("{v}")
    }
}

/// The data set as OpenMetrics text with explicit timestamps (seconds), ending `# EOF`.
fn write_openmetrics(families: &[Family], path: &Path) -> std::io::Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for f in families {
        writeln!(out, "# TYPE {} {}", f.name, f.kind)?;
        for s in &f.series {
            let rendered: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != METRIC_NAME)
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            let head = format!("{}{{{}}}", s.labels[METRIC_NAME], rendered.join(","));
            for (t, v) in &s.points {
                writeln!(out, "{head} {} {t}", go_float(*v))?;
            }
        }
    }
    out.write_all(b"# EOF\n")?;
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

// ---------------------------------------------------------------------------------------
// Prometheus (the harness of tests/it/harness/prometheus.rs, trimmed)
// ---------------------------------------------------------------------------------------

struct Prometheus {
    child: Child,
    port: u16,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CONFIG: &str = "\
global:
  scrape_interval: 1h
  evaluation_interval: 1h
scrape_configs: []
";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start_prometheus(dir: &Path, openmetrics: &Path) -> Prometheus {
    let storage = dir.join("data");
    std::fs::create_dir(&storage).expect("create the storage dir");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(openmetrics)
        .arg(&storage)
        .output()
        .expect("run promtool (scripts/install-test-deps.sh installs it)");
    assert!(
        out.status.success(),
        "promtool failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("prometheus.yml");
    std::fs::write(&config, CONFIG).expect("write prometheus.yml");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", storage.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--storage.tsdb.retention.time=3650d")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    let mut prom = Prometheus { child, port };
    for _ in 0..600 {
        if let Ok(Some(status)) = prom.child.try_wait() {
            panic!(
                "prometheus exited with {status}: {}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
        }
        if ready(port) {
            return prom;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("prometheus not ready within 60 s");
}

fn ready(port: u16) -> bool {
    http_get(port, "/-/ready")
        .map(|(status, _)| status == 200)
        .unwrap_or(false)
}

/// Everything but RFC 3986's unreserved characters, percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over HTTP/1.0 on a fresh loopback connection: the status and the body.
fn http_get(port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    let limit = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(limit)
        .and_then(|()| stream.set_write_timeout(limit))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no header end")?;
    let status = std::str::from_utf8(&response[..at.min(12)])
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, response[at + 4..].to_vec()))
}

/// One instant query with `stats=all`: the HTTP round trip and the parsed JSON.
fn prom_query(port: u16, expr: &str, t_ms: i64) -> (Duration, serde_json::Value) {
    let path = format!(
        "/api/v1/query?query={}&time={}.{:03}&stats=all",
        percent_encode(expr),
        t_ms / 1000,
        t_ms % 1000
    );
    let started = Instant::now();
    let (_, body) = http_get(port, &path).expect("query prometheus");
    let took = started.elapsed();
    let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON answer");
    assert_eq!(json["status"], "success", "{expr}: {json}");
    (took, json)
}

/// Prometheus' result as label set -> value (vectors; a scalar under the empty label set).
fn prom_values(data: &serde_json::Value) -> BTreeMap<Labels, f64> {
    let float = |v: &serde_json::Value| match v.as_str().unwrap_or("NaN") {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect();
                (labels, float(&s["value"][1]))
            })
            .collect(),
        Some("scalar") => [(Labels::new(), float(&data["result"][1]))].into(),
        other => panic!("unexpected result type {other:?}"),
    }
}

fn warden_values(v: &Value) -> BTreeMap<Labels, f64> {
    match v {
        Value::Vector(v) => v.iter().map(|s| (s.labels.clone(), s.value)).collect(),
        Value::Scalar(x) => [(Labels::new(), *x)].into(),
        other => panic!("unexpected value {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("N, a number of rounds"))
        .unwrap_or(20);
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    // Ends 5 minutes before now, on a minute boundary.
    let start_s = now_s / 60 * 60 - 300 - LAST * STEP_S;
    let eval_ms = (start_s + LAST * STEP_S) * 1000;

    let started = Instant::now();
    let families = dataset(start_s);
    let series: usize = families.iter().map(|f| f.series.len()).sum();
    let samples: usize = families
        .iter()
        .flat_map(|f| &f.series)
        .map(|s| s.points.len())
        .sum();
    eprintln!(
        "generated {series} series, {samples} samples in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::Builder::new()
        .prefix("warden-promql-bench-")
        .tempdir()
        .expect("a temp dir");
    let om = dir.path().join("samples.om");
    let bytes = write_openmetrics(&families, &om).expect("write OpenMetrics");
    eprintln!("wrote {:.0} MB of OpenMetrics", bytes as f64 / 1e6);
    let started = Instant::now();
    let prom = start_prometheus(dir.path(), &om);
    let _ = std::fs::remove_file(&om);
    eprintln!(
        "backfilled and started prometheus in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut store = Store::new(Duration::from_secs(2 * 3600));
    for f in families {
        for s in f.series {
            for (t, v) in s.points {
                store.append(s.labels.clone(), t * 1000, v);
            }
        }
    }
    eprintln!(
        "warden store: {} series, {} samples",
        store.series_count(),
        store.sample_count()
    );

    let queries: Vec<Query> = EXPRESSIONS
        .iter()
        .map(|(_, e)| Query::parse(e).unwrap_or_else(|err| panic!("{e}: {err}")))
        .collect();
    let n = EXPRESSIONS.len();
    let mut warden_ms = vec![Vec::new(); n];
    let mut prom_eval_ms = vec![Vec::new(); n];
    let mut prom_http_ms = vec![Vec::new(); n];
    let mut empty_http_ms = Vec::new();
    let mut checks = vec![(0usize, 0usize, 0usize); n];
    let mut timings_seen = None;
    for round in 0..WARMUP + rounds {
        let measured = round >= WARMUP;
        let (rt, _) = prom_query(prom.port, "1", eval_ms);
        if measured {
            empty_http_ms.push(ms(rt));
        }
        for (i, q) in queries.iter().enumerate() {
            let t0 = Instant::now();
            let value = q.eval(&store, eval_ms).expect("warden evaluates");
            let took = t0.elapsed();
            let (rt, json) = prom_query(prom.port, EXPRESSIONS[i].1, eval_ms);
            let timings = &json["data"]["stats"]["timings"];
            let eval_s = timings["evalTotalTime"]
                .as_f64()
                .unwrap_or_else(|| panic!("no data.stats.timings.evalTotalTime in {timings}"));
            if timings_seen.is_none() {
                timings_seen = Some(timings.clone());
            }
            if round == 0 {
                let w = warden_values(&value);
                let p = prom_values(&json["data"]);
                let differ = w
                    .iter()
                    .filter(|(l, v)| !p.get(*l).is_some_and(|pv| close(**v, *pv)))
                    .count()
                    + p.keys().filter(|l| !w.contains_key(*l)).count();
                checks[i] = (w.len(), p.len(), differ);
            }
            drop(value);
            if measured {
                warden_ms[i].push(ms(took));
                prom_eval_ms[i].push(eval_s * 1000.0);
                prom_http_ms[i].push(ms(rt));
            }
        }
    }
    drop(prom);

    let empty = median(&mut empty_http_ms);
    println!(
        "{series} series, {samples} samples; evaluated at the newest sample; N = {rounds} rounds \
         after {WARMUP} warm-up rounds; Prometheus' time is data.stats.timings.evalTotalTime"
    );
    println!(
        "Prometheus' timings fields (first answer): {}",
        timings_seen.unwrap_or_default()
    );
    println!("HTTP round trip of the query `1`: median {empty:.3} ms\n");
    println!(
        "| expression | series out (warden / prometheus) | values agree | warden best (ms) | warden median (ms) | prometheus best (ms) | prometheus median (ms) | prometheus HTTP median - `1`'s (ms) | ratio prometheus / warden (medians) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for i in 0..n {
        let (w_out, p_out, differ) = checks[i];
        let wm = median(&mut warden_ms[i]);
        let pm = median(&mut prom_eval_ms[i]);
        let hm = median(&mut prom_http_ms[i]);
        println!(
            "| {} `{}` | {w_out} / {p_out} | {} | {:.3} | {wm:.3} | {:.3} | {pm:.3} | {:.3} | {:.2} |",
            EXPRESSIONS[i].0,
            EXPRESSIONS[i].1.replace('|', "\\|"),
            if differ == 0 {
                "yes".to_string()
            } else {
                format!("{differ} differ")
            },
            best(&warden_ms[i]),
            best(&prom_eval_ms[i]),
            hm - empty,
            pm / wm,
        );
    }
}
