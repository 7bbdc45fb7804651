//! Same numbers as Prometheus: warden's PromQL evaluator against a real Prometheus 2.42 on
//! exactly the same samples.
//!
//! The data set is generated here, deterministically: an hour of samples at 15 s ending a few
//! minutes before now (counters with resets, gaps, jittered timestamps, series that appear
//! late or stop early; gauges with a NaN and a +Inf; classic histograms with a counter reset,
//! a bucket missing for a while, non-monotonic bucket counts, no `+Inf` bucket, no
//! observations, and a sparse bucket layout; `up` and `build_info` for matching). It is
//! written as OpenMetrics with explicit timestamps, backfilled into Prometheus with
//! `promtool`, and held in memory for warden. Every expression is then evaluated by both at
//! the same instants, on the 15 s grid and off it, and the results must agree: the same label
//! sets, values equal to 1e-9 relative (NaN equals NaN, infinities equal themselves), the same
//! points for range vectors, and an error from both or from neither.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use warden::labels::Labels;
use warden::promql::{Query, Series, Value, METRIC_NAME};

use crate::harness::prometheus::Prometheus;

/// Seconds between samples.
const STEP: i64 = 15;
/// Steps in the data set: 0..=LAST, an hour.
const LAST: i64 = 240;
const RELATIVE_TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------------------
// The data set
// ---------------------------------------------------------------------------------------

/// A deterministic generator (splitmix64), so every run has the same shape of data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One OpenMetrics family: its name, type and series (sample names included in labels).
struct Family {
    name: &'static str,
    kind: &'static str,
    series: Vec<Series>,
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert(METRIC_NAME.into(), name.into());
    l
}

/// How one counter of `req_total` behaves.
struct Counter {
    job: &'static str,
    instance: &'static str,
    route: &'static str,
    status: &'static str,
    /// Mean increment per step.
    mean: f64,
    /// Increments in quarters rather than whole numbers.
    fractional: bool,
    start: f64,
    first: i64,
    last: i64,
    /// Steps at which the counter restarts from its increment (a process restart).
    resets: &'static [i64],
    /// Steps with no sample.
    gap: Option<(i64, i64)>,
    /// Seconds added to every timestamp (another scraper's phase).
    phase: i64,
    /// A further -2..=2 s per sample (irregular intervals).
    jitter: bool,
}

const COUNTER: Counter = Counter {
    job: "api",
    instance: "a:9090",
    route: "/users",
    status: "200",
    mean: 1.0,
    fractional: false,
    start: 0.0,
    first: 0,
    last: LAST,
    resets: &[],
    gap: None,
    phase: 0,
    jitter: false,
};

fn counters() -> Vec<Counter> {
    let b = Counter {
        instance: "b:9090",
        phase: 7,
        jitter: true,
        ..COUNTER
    };
    vec![
        Counter {
            mean: 30.0,
            start: 1000.0,
            resets: &[120],
            ..COUNTER
        },
        Counter {
            status: "500",
            mean: 1.5,
            start: 10.0,
            ..COUNTER
        },
        // Mostly flat: many windows without an increase; starts at 0 (the zero clamp).
        Counter {
            status: "404",
            mean: 0.3,
            ..COUNTER
        },
        Counter {
            route: "/orders",
            mean: 12.0,
            fractional: true,
            start: 50.5,
            ..COUNTER
        },
        // Resets to exactly 0.
        Counter {
            route: "/orders",
            status: "500",
            mean: 2.0,
            resets: &[160],
            ..COUNTER
        },
        Counter {
            route: "/orders",
            status: "503",
            mean: 0.8,
            ..COUNTER
        },
        Counter {
            route: "/health",
            mean: 4.0,
            start: 4.0,
            ..COUNTER
        },
        // A short gap (45 s).
        Counter {
            route: "/health",
            status: "500",
            mean: 0.4,
            gap: Some((100, 102)),
            ..COUNTER
        },
        // Two resets a minute apart.
        Counter {
            mean: 25.0,
            start: 300.0,
            resets: &[60, 64],
            ..b
        },
        Counter {
            status: "500",
            mean: 3.0,
            ..b
        },
        // A gap longer than the lookback: the last sample before it at 997 s, the next at
        // 1507 s (no jitter, so the lookback's edge is known: 1297 s).
        Counter {
            route: "/orders",
            mean: 10.0,
            gap: Some((67, 99)),
            jitter: false,
            ..b
        },
        Counter {
            route: "/orders",
            status: "500",
            mean: 1.0,
            ..b
        },
        Counter {
            route: "/orders",
            status: "503",
            mean: 0.5,
            fractional: true,
            ..b
        },
        Counter {
            route: "/health",
            mean: 4.5,
            ..b
        },
        // Late series: from 40 min, one starting at 3 (the zero clamp matters), one at 0.
        Counter {
            instance: "c:9090",
            mean: 20.0,
            start: 3.0,
            first: 160,
            ..COUNTER
        },
        Counter {
            instance: "c:9090",
            status: "500",
            mean: 0.5,
            first: 161,
            ..COUNTER
        },
        // A large counter with a reset, and one that stops at 50 min.
        Counter {
            job: "worker",
            instance: "w:9100",
            route: "/jobs",
            mean: 100.0,
            start: 1e6,
            resets: &[200],
            ..COUNTER
        },
        Counter {
            job: "worker",
            instance: "w:9100",
            route: "/jobs",
            status: "500",
            mean: 1.0,
            last: 200,
            ..COUNTER
        },
    ]
}

fn counter_series(rng: &mut Rng, start_s: i64, c: &Counter) -> Series {
    let mut points = Vec::new();
    let mut value = c.start;
    for k in c.first..=c.last {
        let raw = c.mean * 2.0 * rng.unit();
        let inc = if c.fractional {
            (raw * 4.0).round() / 4.0
        } else {
            raw.round()
        };
        if k > c.first {
            value += inc;
        }
        if c.resets.contains(&k) {
            value = if c.status == "500" { 0.0 } else { inc };
        }
        if c.gap.is_some_and(|(from, to)| (from..=to).contains(&k)) {
            continue;
        }
        let jitter = if c.jitter { (k * 7) % 5 - 2 } else { 0 };
        let t = start_s + k * STEP + c.phase + jitter;
        points.push((t * 1000, value));
    }
    Series {
        labels: labels(
            "req_total",
            &[
                ("job", c.job),
                ("instance", c.instance),
                ("route", c.route),
                ("status", c.status),
            ],
        ),
        points,
    }
}

/// A gauge sampled every step from `first`, `f(k)` its value.
fn gauge(
    start_s: i64,
    name: &str,
    pairs: &[(&str, &str)],
    first: i64,
    f: impl Fn(i64) -> f64,
) -> Series {
    Series {
        labels: labels(name, pairs),
        points: (first..=LAST)
            .map(|k| ((start_s + k * STEP) * 1000, f(k)))
            .collect(),
    }
}

const LES: [&str; 7] = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];

/// How one classic histogram of `request_duration_seconds` behaves.
struct Histogram {
    instance: &'static str,
    route: &'static str,
    /// Observations per step: `min + rng * spread`.
    min: f64,
    spread: f64,
    /// Counts at the start (cumulative per bucket, in `les` order).
    initial: f64,
    /// All buckets, `_sum` and `_count` restart at this step.
    reset: Option<i64>,
    /// This bucket has no samples during these steps.
    missing: Option<(&'static str, i64, i64)>,
    /// This bucket is frozen during these steps (its count falls below the one before it).
    frozen: Option<(&'static str, i64, i64)>,
    /// The bucket bounds written.
    les: &'static [&'static str],
}

const HISTOGRAM: Histogram = Histogram {
    instance: "a:9090",
    route: "/users",
    min: 20.0,
    spread: 40.0,
    initial: 0.0,
    reset: None,
    missing: None,
    frozen: None,
    les: &LES,
};

fn histograms() -> Vec<Histogram> {
    vec![
        HISTOGRAM,
        Histogram {
            instance: "b:9090",
            min: 10.0,
            spread: 30.0,
            reset: Some(140),
            ..HISTOGRAM
        },
        Histogram {
            route: "/orders",
            min: 5.0,
            spread: 15.0,
            missing: Some(("0.25", 130, 170)),
            ..HISTOGRAM
        },
        Histogram {
            instance: "b:9090",
            route: "/orders",
            min: 5.0,
            spread: 15.0,
            frozen: Some(("0.5", 80, 120)),
            ..HISTOGRAM
        },
        // No observations at all: every rate is 0.
        Histogram {
            route: "/health",
            min: 0.0,
            spread: 0.0,
            initial: 10.0,
            ..HISTOGRAM
        },
        // Sparse bounds, one spelled `1.0`: `sum by (le)` then holds two buckets with the
        // same bound (`1` elsewhere), which are coalesced.
        Histogram {
            instance: "b:9090",
            route: "/health",
            min: 1.0,
            spread: 6.0,
            les: &["0.1", "1.0", "+Inf"],
            ..HISTOGRAM
        },
        // No +Inf bucket.
        Histogram {
            route: "/legacy",
            min: 1.0,
            spread: 4.0,
            les: &["0.05", "0.1", "0.25", "0.5", "1", "2.5"],
            ..HISTOGRAM
        },
    ]
}

/// The `_bucket`, `_sum` and `_count` series of one histogram.
fn histogram_series(rng: &mut Rng, start_s: i64, h: &Histogram) -> Vec<Series> {
    let bounds: Vec<f64> = h
        .les
        .iter()
        .map(|le| {
            if *le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            }
        })
        .collect();
    // Where observations fall, relative weights over LES' intervals.
    let weights = [0.3, 0.25, 0.2, 0.12, 0.08, 0.04, 0.01];
    let all: Vec<f64> = LES
        .iter()
        .map(|le| {
            if *le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            }
        })
        .collect();
    let mut counts = vec![h.initial; bounds.len()];
    let mut sum = h.initial * 0.1;
    let mut count = h.initial;
    let mut buckets: Vec<Vec<(i64, f64)>> = vec![Vec::new(); bounds.len()];
    let mut sums = Vec::new();
    let mut totals = Vec::new();
    let mut frozen_value = 0.0;
    for k in 0..=LAST {
        if h.reset == Some(k) {
            counts.iter_mut().for_each(|c| *c = 0.0);
            sum = 0.0;
            count = 0.0;
        }
        let n = if k == 0 {
            0
        } else {
            (h.min + rng.unit() * h.spread).round() as usize
        };
        for _ in 0..n {
            let mut u = rng.unit();
            let mut i = 0;
            while i + 1 < weights.len() && u >= weights[i] {
                u -= weights[i];
                i += 1;
            }
            let lower = if i == 0 { 0.0 } else { all[i - 1] };
            let upper = if all[i].is_infinite() { 5.0 } else { all[i] };
            let v = lower + (upper - lower) * rng.unit();
            for (j, b) in bounds.iter().enumerate() {
                if v <= *b {
                    counts[j] += 1.0;
                }
            }
            sum += v;
            count += 1.0;
        }
        let t = (start_s + k * STEP) * 1000;
        for (j, le) in h.les.iter().enumerate() {
            if h.missing
                .is_some_and(|(m, from, to)| m == *le && (from..=to).contains(&k))
            {
                continue;
            }
            let mut v = counts[j];
            if let Some((f, from, to)) = h.frozen {
                if f == *le {
                    if k == from {
                        frozen_value = v;
                    }
                    if (from..=to).contains(&k) {
                        v = frozen_value;
                    }
                }
            }
            buckets[j].push((t, v));
        }
        sums.push((t, sum));
        totals.push((t, count));
    }
    let base = [("job", "api"), ("instance", h.instance), ("route", h.route)];
    let mut out: Vec<Series> = h
        .les
        .iter()
        .zip(buckets)
        .map(|(le, points)| {
            let mut pairs = base.to_vec();
            pairs.push(("le", le));
            Series {
                labels: labels("request_duration_seconds_bucket", &pairs),
                points,
            }
        })
        .collect();
    out.push(Series {
        labels: labels("request_duration_seconds_sum", &base),
        points: sums,
    });
    out.push(Series {
        labels: labels("request_duration_seconds_count", &base),
        points: totals,
    });
    out
}

/// The whole data set, steps from `start_s` (seconds).
fn dataset(start_s: i64) -> Vec<Family> {
    let mut rng = Rng(0x5741_5244_454e);
    let requests = counters()
        .iter()
        .map(|c| counter_series(&mut rng, start_s, c))
        .collect();
    let histogram = histograms()
        .iter()
        .flat_map(|h| histogram_series(&mut rng, start_s, h))
        .collect();

    let noise: Vec<f64> = (0..=LAST)
        .map(|_| (rng.unit() * 100.0).round() / 100.0)
        .collect();
    let cpu = gauge(
        start_s,
        "temperature_celsius",
        &[("job", "api"), ("instance", "a:9090"), ("sensor", "cpu")],
        0,
        |k| {
            if k == 120 {
                f64::NAN
            } else {
                40.0 + 8.0 * (k as f64 / 9.0).sin() + noise[k as usize]
            }
        },
    );
    let ambient = gauge(
        start_s,
        "temperature_celsius",
        &[
            ("job", "api"),
            ("instance", "b:9090"),
            ("sensor", "ambient"),
        ],
        0,
        |k| {
            if k == 200 {
                f64::INFINITY
            } else {
                -3.0 + 4.0 * (k as f64 / 13.0).cos() - noise[(LAST - k) as usize]
            }
        },
    );
    let mut depth = 5.0;
    let depths: Vec<f64> = (0..=LAST)
        .map(|_| {
            let u = rng.unit();
            if u < 0.25 {
                depth = f64::max(depth - 1.0, 0.0);
            } else if u > 0.7 {
                depth = f64::min(depth + 1.0, 10.0);
            }
            depth
        })
        .collect();
    let queue = gauge(
        start_s,
        "queue_depth",
        &[("job", "worker"), ("instance", "w:9100")],
        0,
        |k| depths[k as usize],
    );

    let up = vec![
        gauge(
            start_s,
            "up",
            &[("job", "api"), ("instance", "a:9090")],
            0,
            |_| 1.0,
        ),
        gauge(
            start_s,
            "up",
            &[("job", "api"), ("instance", "b:9090")],
            0,
            |k| {
                if (150..=170).contains(&k) {
                    0.0
                } else {
                    1.0
                }
            },
        ),
        gauge(
            start_s,
            "up",
            &[("job", "api"), ("instance", "c:9090")],
            160,
            |_| 1.0,
        ),
        gauge(
            start_s,
            "up",
            &[("job", "worker"), ("instance", "w:9100")],
            0,
            |_| 1.0,
        ),
    ];
    let build = |instance: &str, job: &str, version: &str, first: i64| {
        gauge(
            start_s,
            "build_info",
            &[("job", job), ("instance", instance), ("version", version)],
            first,
            |_| 1.0,
        )
    };
    let build_info = vec![
        build("a:9090", "api", "1.2.3", 0),
        build("b:9090", "api", "1.2.4", 0),
        build("c:9090", "api", "1.2.4", 160),
        build("w:9100", "worker", "0.9.0", 0),
    ];
    // The same label sets as `up`: once the metric name is dropped, the two collide.
    let probe_success = up
        .iter()
        .map(|s| Series {
            labels: labels(
                "probe_success",
                &[
                    ("job", &s.labels["job"]),
                    ("instance", &s.labels["instance"]),
                ],
            ),
            points: s.points.clone(),
        })
        .collect();
    // A label value with a newline: in 2.42 a regex `.` does not match it.
    let motd = gauge(
        start_s,
        "motd_info",
        &[("job", "worker"), ("instance", "w:9100"), ("text", "a\nb")],
        0,
        |_| 1.0,
    );

    vec![
        Family {
            name: "req",
            kind: "counter",
            series: requests,
        },
        Family {
            name: "request_duration_seconds",
            kind: "histogram",
            series: histogram,
        },
        Family {
            name: "temperature_celsius",
            kind: "gauge",
            series: vec![cpu, ambient],
        },
        Family {
            name: "queue_depth",
            kind: "gauge",
            series: vec![queue],
        },
        Family {
            name: "up",
            kind: "gauge",
            series: up,
        },
        Family {
            name: "build_info",
            kind: "gauge",
            series: build_info,
        },
        Family {
            name: "probe_success",
            kind: "gauge",
            series: probe_success,
        },
        Family {
            name: "motd_info",
            kind: "gauge",
            series: vec![motd],
        },
    ]
}

/// A value as Go's `strconv.ParseFloat` reads it back exactly (Rust's `Display` of an f64 is
/// the shortest text that round-trips).
fn go_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// The data set as OpenMetrics text with explicit timestamps (whole seconds).
fn openmetrics(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        writeln!(out, "# TYPE {} {}", f.name, f.kind).unwrap();
        for s in &f.series {
            let name = &s.labels[METRIC_NAME];
            let rendered: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != METRIC_NAME)
                .map(|(k, v)| {
                    let v = v
                        .replace('\\', r"\\")
                        .replace('"', "\\\"")
                        .replace('\n', r"\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            for (t, v) in &s.points {
                assert_eq!(t % 1000, 0, "timestamps are whole seconds");
                writeln!(
                    out,
                    "{name}{{{}}} {} {}",
                    rendered.join(","),
                    go_float(*v),
                    t / 1000
                )
                .unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// warden's view of the same samples: its own series store, as the daemon reads it.
fn store_of(series: Vec<Series>) -> warden::series::Store {
    let mut store = warden::series::Store::new(std::time::Duration::from_secs(10 * 86_400));
    for s in series {
        for (t, v) in s.points {
            store.append(s.labels.clone(), t, v);
        }
    }
    store
}

// ---------------------------------------------------------------------------------------
// What is compared
// ---------------------------------------------------------------------------------------

/// Seconds after the first sample (ms precision): on the 15 s grid and off it, at the
/// lookback's edge after a gap (997 + 300) and after the end (3600 + 300), before the late
/// series appears and just after.
const TIMES: &[f64] = &[
    30.0, 67.3, 300.0, 615.0, 912.5, 1200.0, 1297.0, 1297.001, 1503.3, 1800.0, 1807.3, 2100.001,
    2407.3, 2700.0, 3007.3, 3301.7, 3600.0, 3750.0, 3900.0, 3900.001,
];

fn expressions() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |e: &str| out.push(e.to_string());

    // Selectors, instant and range.
    for e in [
        "req_total",
        r#"req_total{status=~"5.."}"#,
        r#"req_total{route!="/users", status!~"2.."}"#,
        "temperature_celsius",
        "queue_depth offset 5m",
        "up",
        r#"request_duration_seconds_bucket{route="/orders", le="0.25"}"#,
        r#"req_total{instance="b:9090", route="/orders"}[2m]"#,
        "temperature_celsius[1m]",
        "up[30s] offset 1m",
    ] {
        add(e);
    }

    // Counter functions, three ranges, with and without offset.
    for f in [
        "rate", "irate", "increase", "delta", "deriv", "resets", "changes",
    ] {
        for r in ["1m", "5m", "15m"] {
            add(&format!("{f}(req_total[{r}])"));
        }
    }
    for e in [
        "rate(req_total[5m] offset 10m)",
        "increase(req_total[15m] offset 5m)",
        "irate(req_total[1m] offset 1m)",
        "delta(req_total[5m] offset 30m)",
        "deriv(req_total[15m] offset 15m)",
        "resets(req_total[15m] offset 30m)",
        "changes(req_total[5m] offset 2m)",
        "rate(req_total[2h])",
        "increase(req_total[45s])",
        "rate(request_duration_seconds_bucket[5m])",
        "increase(request_duration_seconds_count[15m])",
        // On gauges.
        "delta(temperature_celsius[5m])",
        "deriv(temperature_celsius[15m])",
        "rate(temperature_celsius[5m])",
        "irate(queue_depth[1m])",
        "deriv(queue_depth[5m])",
        "changes(queue_depth[15m])",
        "resets(queue_depth[15m])",
        "increase(queue_depth[5m])",
    ] {
        add(e);
    }

    // *_over_time.
    for m in ["temperature_celsius", "queue_depth"] {
        for r in ["1m", "5m", "15m"] {
            for f in [
                "avg", "sum", "min", "max", "count", "stddev", "stdvar", "last", "present",
            ] {
                add(&format!("{f}_over_time({m}[{r}])"));
            }
        }
    }
    for f in [
        "avg", "sum", "min", "max", "count", "stddev", "stdvar", "last", "present",
    ] {
        add(&format!(
            r#"{f}_over_time(req_total{{instance="b:9090"}}[5m])"#
        ));
    }
    for e in [
        "quantile_over_time(0.5, temperature_celsius[5m])",
        "quantile_over_time(0.9, temperature_celsius[15m])",
        "quantile_over_time(0, queue_depth[15m])",
        "quantile_over_time(1, queue_depth[15m])",
        "quantile_over_time(0.75, req_total[15m])",
        "quantile_over_time(1.5, queue_depth[5m])",
        "quantile_over_time(-1, queue_depth[5m])",
        "avg_over_time(temperature_celsius[5m] offset 20m)",
    ] {
        add(e);
    }

    // Histograms.
    for q in ["0.5", "0.95", "0.99"] {
        add(&format!(
            "histogram_quantile({q}, sum by (le) (rate(request_duration_seconds_bucket[5m])))"
        ));
        add(&format!(
            "histogram_quantile({q}, sum by (route, le) (rate(request_duration_seconds_bucket[5m])))"
        ));
    }
    for e in [
        "histogram_quantile(0.9, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.5, rate(request_duration_seconds_bucket[1m]))",
        "histogram_quantile(0.99, rate(request_duration_seconds_bucket[15m]))",
        "histogram_quantile(0.5, request_duration_seconds_bucket)",
        "histogram_quantile(0.999, request_duration_seconds_bucket)",
        "histogram_quantile(0, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(1, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(1.5, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(-0.5, rate(request_duration_seconds_bucket[5m]))",
        "histogram_quantile(0.99, sum by (le) (increase(request_duration_seconds_bucket[15m])))",
        "histogram_quantile(0.9, sum by (instance, le) (rate(request_duration_seconds_bucket{route=\"/orders\"}[5m])))",
        "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
    ] {
        add(e);
    }

    // Aggregations.
    for e in [
        "sum(rate(req_total[5m]))",
        "sum by (route) (rate(req_total[5m]))",
        "sum without (instance, status) (rate(req_total[5m]))",
        "sum(rate(req_total[5m])) by (job)",
        "avg by (route) (rate(req_total[5m]))",
        "avg(temperature_celsius)",
        "min by (status) (rate(req_total[5m]))",
        "max without (status) (rate(req_total[5m]))",
        "max(temperature_celsius)",
        "min(temperature_celsius)",
        "sum(temperature_celsius)",
        "count(temperature_celsius)",
        "count by (status) (req_total)",
        "count(req_total)",
        "count without (route) (rate(req_total[1m]))",
        "topk(3, rate(req_total[5m]))",
        "bottomk(2, req_total{status=\"200\"})",
        "topk by (route) (1, rate(req_total{status=\"200\"}[5m]))",
        "topk(1, temperature_celsius)",
        "bottomk(1, temperature_celsius)",
        "topk(0, req_total)",
        "quantile(0.5, rate(req_total[5m]))",
        "quantile by (route) (0.9, rate(req_total[5m]))",
        "quantile(0.5, temperature_celsius)",
        "stddev(rate(req_total[5m]))",
        "stddev by (job) (rate(req_total[5m]))",
        "stdvar without (status) (rate(req_total[5m]))",
        "group by (job) (req_total)",
        "sum by (le) (request_duration_seconds_bucket)",
        "sum(nonexistent)",
    ] {
        add(e);
    }

    // Error ratios and arithmetic.
    for e in [
        r#"sum by (route) (rate(req_total{status=~"5.."}[5m])) / sum by (route) (rate(req_total[5m]))"#,
        r#"(1 - sum(rate(req_total{status=~"5.."}[5m])) / sum(rate(req_total[5m]))) * 100"#,
        r#"rate(req_total{status=~"5.."}[5m]) / ignoring(status) group_left sum without (status) (rate(req_total[5m]))"#,
        "req_total * 2",
        "2 - req_total",
        "-rate(req_total[5m])",
        "rate(req_total[5m]) * 60",
        "temperature_celsius / 0",
        "0 / temperature_celsius",
        "queue_depth % 3",
        "temperature_celsius % -7",
        "queue_depth ^ 2",
        "2 ^ queue_depth",
        "queue_depth - queue_depth offset 1m",
        "1 + 2 * 3",
        "2 ^ 10",
        "7 % 3",
        "-(1)",
    ] {
        add(e);
    }

    // Comparisons, with and without bool.
    for e in [
        "rate(req_total[5m]) > 1",
        "rate(req_total[5m]) > bool 1",
        "1 < rate(req_total[5m])",
        "1 < bool rate(req_total[5m])",
        "temperature_celsius >= 40",
        "temperature_celsius <= bool 40",
        "queue_depth == 5",
        "queue_depth == bool 5",
        "up == 0",
        "up != bool 1",
        "temperature_celsius == temperature_celsius",
        "temperature_celsius != bool temperature_celsius",
        r#"rate(req_total{status="500"}[5m]) > ignoring(status) rate(req_total{status="503"}[5m])"#,
        r#"rate(req_total{status="500"}[5m]) < bool ignoring(status) rate(req_total{status="200"}[5m])"#,
        "sum by (route) (rate(req_total[5m])) > on(route) sum by (route) (rate(req_total[15m]))",
        "2 > bool 1",
        "1 >= bool 2",
    ] {
        add(e);
    }

    // Set operators and vector matching.
    for e in [
        "req_total and on(job, instance) up == 1",
        "req_total unless on(job, instance) up == 0",
        "up or vector(0)",
        "sum(up) or vector(0)",
        "rate(req_total[1m]) or rate(req_total[15m])",
        r#"req_total{route="/users"} or req_total{route="/orders"}"#,
        "temperature_celsius unless temperature_celsius > 40",
        "up and ignoring(version) build_info",
        "build_info unless on(instance) up == 0",
        "up and nonexistent",
        "rate(req_total[5m]) * on(job, instance) group_left(version) build_info",
        "up * on(instance) group_left(version) build_info",
        "build_info * on(job, instance) group_right(version) rate(req_total[5m])",
        "sum by (job, instance) (rate(req_total[5m])) / on(job, instance) up",
        "sum by (job, instance) (rate(req_total[5m])) + ignoring(version) group_left build_info",
    ] {
        add(e);
    }

    // absent, clamps, abs, scalar, vector, time, timestamp.
    for e in [
        "absent(nonexistent)",
        r#"absent(nonexistent{job="api", instance=~"a.*"})"#,
        "absent(req_total)",
        r#"absent(req_total{instance="c:9090"})"#,
        "absent(sum(nonexistent))",
        r#"absent_over_time(req_total{instance="c:9090"}[5m])"#,
        r#"absent_over_time(nonexistent{job="x"}[1m])"#,
        r#"absent_over_time(req_total{instance="b:9090", route="/orders", status="200"}[1m])"#,
        "clamp_min(temperature_celsius, 40)",
        "clamp_max(rate(req_total[5m]), 1)",
        "clamp(temperature_celsius, 35, 45)",
        "clamp(temperature_celsius, 45, 35)",
        "abs(temperature_celsius)",
        "abs(delta(temperature_celsius[5m]))",
        "abs(-req_total)",
        "scalar(sum(up))",
        "scalar(up)",
        "scalar(nonexistent)",
        "req_total / scalar(sum(req_total))",
        r#"scalar(up{instance="a:9090"}) * 2"#,
        "vector(1)",
        "vector(time())",
        "vector(scalar(sum(rate(req_total[5m]))))",
        "time()",
        "time() - 1000",
        "timestamp(req_total)",
        "time() - timestamp(up)",
        "timestamp(req_total offset 5m)",
        "timestamp(temperature_celsius)",
    ] {
        add(e);
    }

    // Edges: regex anchoring and newlines, empty matchers, metric-name selection and
    // collisions once the name is dropped, NaN ordering, many-to-many, literals.
    for e in [
        r#"req_total{route=~"/user"}"#,
        r#"req_total{status=~"5"}"#,
        r#"req_total{nonexistent=""}"#,
        r#"req_total{instance=""}"#,
        r#"count by (__name__) ({job="api"})"#,
        r#"{__name__=~"req_.*", status="500"}"#,
        r#"motd_info{text=~"a.b"}"#,
        r#"motd_info{text=~"a\\nb"}"#,
        r#"motd_info{text!~"a.b"}"#,
        r#"abs({__name__=~"up|probe_success"})"#,
        r#"{__name__=~"up|probe_success"} * 2"#,
        r#"rate({__name__=~"up|probe_success"}[5m])"#,
        r#"sum by (job) ({__name__=~"up|probe_success"})"#,
        "quantile(0.5, temperature_celsius or vector(41))",
        "quantile(0.25, temperature_celsius or vector(41) or vector(39))",
        "quantile(0.5, vector(41) or temperature_celsius)",
        "changes(temperature_celsius[5m])",
        "resets(temperature_celsius[15m])",
        "stddev(temperature_celsius)",
        "stdvar(temperature_celsius)",
        "clamp_max(temperature_celsius, NaN)",
        "clamp_min(temperature_celsius, -Inf)",
        "req_total * on(job) up",
        "req_total + on(instance) group_left build_info",
        "up + on() group_left sum(up)",
        "max(sum by (route) (rate(req_total[5m])))",
        "rate(req_total[5m]) > 0 and rate(req_total[5m]) < 1",
        r#"absent(req_total{job="api"} offset 2h)"#,
        "absent(rate(nonexistent[5m]))",
        "count_over_time(up[5m] offset 1h)",
        "last_over_time(req_total[1h])",
        r#"sum_over_time(req_total{job="worker"}[15m])"#,
        r#"avg_over_time(req_total{job="worker"}[15m])"#,
        r#"stddev_over_time(req_total{job="worker"}[15m])"#,
        "up offset 1h",
        "NaN",
        "-Inf",
        "1 / 0",
    ] {
        add(e);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Results side by side
// ---------------------------------------------------------------------------------------

/// One engine's answer, in a shape both map to.
#[derive(Debug, Clone)]
enum Answer {
    Scalar(f64),
    Vector(BTreeMap<Labels, Vec<f64>>),
    Matrix(BTreeMap<Labels, Vec<Vec<(i64, f64)>>>),
    String(String),
    Error(String),
}

fn warden_answer(
    query: &Result<Query, String>,
    source: &warden::series::Store,
    t_ms: i64,
) -> Answer {
    let query = match query {
        Ok(q) => q,
        Err(e) => return Answer::Error(format!("refused: {e}")),
    };
    match query.eval(source, t_ms) {
        Err(e) => Answer::Error(e.to_string()),
        Ok(Value::Scalar(v)) => Answer::Scalar(v),
        Ok(Value::String(s)) => Answer::String(s),
        Ok(Value::Vector(v)) => {
            let mut out: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for s in v {
                out.entry(s.labels).or_default().push(s.value);
            }
            Answer::Vector(out)
        }
        Ok(Value::Matrix(m)) => {
            let mut out: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
            for s in m {
                out.entry(s.labels).or_default().push(s.points);
            }
            Answer::Matrix(out)
        }
    }
}

fn prom_float(v: &serde_json::Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a value string: {v}"));
    match s {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}")),
    }
}

fn prom_ms(v: &serde_json::Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("a timestamp: {v}")) * 1000.0).round() as i64
}

fn prom_labels(v: &serde_json::Value) -> Labels {
    v.as_object()
        .unwrap_or_else(|| panic!("a label set: {v}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn prometheus_answer(result: Result<serde_json::Value, String>) -> Answer {
    let data = match result {
        Err(e) => {
            assert!(!e.starts_with("transport"), "querying Prometheus: {e}");
            return Answer::Error(e);
        }
        Ok(d) => d,
    };
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => Answer::Scalar(prom_float(&result[1])),
        Some("string") => Answer::String(result[1].as_str().unwrap_or_default().to_string()),
        Some("vector") => {
            let mut out: BTreeMap<Labels, Vec<f64>> = BTreeMap::new();
            for s in result.as_array().expect("a vector") {
                out.entry(prom_labels(&s["metric"]))
                    .or_default()
                    .push(prom_float(&s["value"][1]));
            }
            Answer::Vector(out)
        }
        Some("matrix") => {
            let mut out: BTreeMap<Labels, Vec<Vec<(i64, f64)>>> = BTreeMap::new();
            for s in result.as_array().expect("a matrix") {
                let points = s["values"]
                    .as_array()
                    .expect("points")
                    .iter()
                    .map(|p| (prom_ms(&p[0]), prom_float(&p[1])))
                    .collect();
                out.entry(prom_labels(&s["metric"]))
                    .or_default()
                    .push(points);
            }
            Answer::Matrix(out)
        }
        other => panic!("unexpected resultType {other:?}: {data}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= RELATIVE_TOLERANCE * a.abs().max(b.abs())
}

fn close_all(a: &[f64], b: &[f64]) -> bool {
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|x, y| x.total_cmp(y));
        v
    };
    a.len() == b.len() && sorted(a).iter().zip(sorted(b)).all(|(x, y)| close(*x, y))
}

fn values(v: Option<&Vec<f64>>) -> String {
    match v {
        None => "—".into(),
        Some(v) => v
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn points(v: Option<&Vec<Vec<(i64, f64)>>>, origin_ms: i64) -> String {
    match v {
        None => "—".into(),
        Some(v) => v
            .iter()
            .map(|pts| {
                pts.iter()
                    .map(|(t, x)| format!("{x}@{}", (t - origin_ms) as f64 / 1000.0))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

fn label_text(l: &Labels) -> String {
    if l.is_empty() {
        "{}".into()
    } else {
        warden::labels::render(l)
    }
}

/// The rows (labels, warden, prometheus) where the answers differ; empty when they agree.
fn differences(w: &Answer, p: &Answer, origin_ms: i64) -> Vec<(String, String, String)> {
    match (w, p) {
        (Answer::Error(_), Answer::Error(_)) => Vec::new(),
        (Answer::Scalar(a), Answer::Scalar(b)) if close(*a, *b) => Vec::new(),
        (Answer::Scalar(a), Answer::Scalar(b)) => {
            vec![("scalar".into(), a.to_string(), b.to_string())]
        }
        (Answer::String(a), Answer::String(b)) if a == b => Vec::new(),
        (Answer::Vector(a), Answer::Vector(b)) => {
            let mut rows = Vec::new();
            let keys: std::collections::BTreeSet<&Labels> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k), b.get(k));
                let same = match (x, y) {
                    (Some(x), Some(y)) => close_all(x, y),
                    _ => false,
                };
                if !same {
                    rows.push((label_text(k), values(x), values(y)));
                }
            }
            rows
        }
        (Answer::Matrix(a), Answer::Matrix(b)) => {
            let mut rows = Vec::new();
            let keys: std::collections::BTreeSet<&Labels> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (a.get(k), b.get(k));
                let same = match (x, y) {
                    (Some(x), Some(y)) => {
                        x.len() == y.len()
                            && x.iter().zip(y).all(|(p, q)| {
                                p.len() == q.len()
                                    && p.iter().zip(q).all(|(m, n)| m.0 == n.0 && close(m.1, n.1))
                            })
                    }
                    _ => false,
                };
                if !same {
                    rows.push((label_text(k), points(x, origin_ms), points(y, origin_ms)));
                }
            }
            rows
        }
        _ => vec![("(result)".into(), summary(w), summary(p))],
    }
}

fn summary(a: &Answer) -> String {
    match a {
        Answer::Scalar(v) => format!("scalar {v}"),
        Answer::Vector(v) => format!("vector of {}", v.len()),
        Answer::Matrix(m) => format!("matrix of {}", m.len()),
        Answer::String(s) => format!("string {s:?}"),
        Answer::Error(e) => format!("error: {e}"),
    }
}

#[test]
fn evaluator_matches_a_real_prometheus_on_the_same_samples() {
    let started = std::time::Instant::now();
    // An hour of samples ending 10 minutes before now, on a minute boundary: inside
    // Prometheus' retention, and every evaluation time (up to end + 5 min) in the past.
    // The real wall clock, as Prometheus' retention is measured against it.
    #[allow(clippy::disallowed_methods)]
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let start_s = now_s / 60 * 60 - 600 - LAST * STEP;
    let families = dataset(start_s);
    let prometheus = Prometheus::start_with_openmetrics(&openmetrics(&families));
    let all: Vec<Series> = families.into_iter().flat_map(|f| f.series).collect();
    let series_count = all.len();
    let source = store_of(all);
    let origin_ms = start_s * 1000;

    // Prometheus holds every series (the backfill took all of them).
    let end_ms = origin_ms + LAST * STEP * 1000;
    let held = prometheus
        .query("count(last_over_time({__name__=~\".+\"}[2h]))", end_ms)
        .map(|d| {
            d["result"][0]["value"][1]
                .as_str()
                .unwrap_or("0")
                .to_string()
        });
    assert_eq!(
        held.as_deref(),
        Ok(series_count.to_string().as_str()),
        "Prometheus should hold all {series_count} backfilled series:\n{}",
        prometheus.log()
    );

    let exprs = expressions();
    let cases: Vec<(usize, i64)> = exprs
        .iter()
        .enumerate()
        .flat_map(|(i, _)| {
            TIMES
                .iter()
                .map(move |t| (i, origin_ms + (t * 1000.0).round() as i64))
        })
        .collect();

    // Prometheus' answers, a few queries at a time.
    let workers = 8;
    let mut answers: Vec<Option<Answer>> = vec![None; cases.len()];
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (cases, exprs, prometheus) = (&cases, &exprs, &prometheus);
                scope.spawn(move || {
                    cases
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .map(|(n, (i, t))| (n, prometheus_answer(prometheus.query(&exprs[*i], *t))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (n, a) in h.join().expect("a query worker") {
                answers[n] = Some(a);
            }
        }
    });

    let queries: Vec<Result<Query, String>> = exprs.iter().map(|e| Query::parse(e)).collect();
    let mut table = String::new();
    let mut failed_cases = 0;
    let mut failed_exprs: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, (i, t)) in cases.iter().enumerate() {
        let w = warden_answer(&queries[*i], &source, *t);
        let p = answers[n].take().expect("every case answered");
        let rows = differences(&w, &p, origin_ms);
        if rows.is_empty() {
            continue;
        }
        failed_cases += 1;
        *failed_exprs.entry(exprs[*i].as_str()).or_default() += 1;
        for (labels, wv, pv) in rows {
            writeln!(
                table,
                "{} | t={:.3}s ({t} ms) | {labels} | warden: {wv} | prometheus: {pv}",
                exprs[*i],
                (t - origin_ms) as f64 / 1000.0
            )
            .unwrap();
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "{} expressions x {} times = {} cases compared in {elapsed:?}",
        exprs.len(),
        TIMES.len(),
        cases.len()
    );
    assert!(
        failed_cases == 0,
        "warden disagrees with Prometheus in {failed_cases} of {} cases \
         (t relative to the first sample at {start_s} s; — means no sample):\n\
         expr | time | labels | warden | prometheus\n{table}\nby expression:\n{}",
        cases.len(),
        failed_exprs
            .iter()
            .map(|(e, n)| format!("{n:>3}  {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
