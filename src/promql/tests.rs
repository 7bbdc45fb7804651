//! Evaluator tests in the shape of Prometheus' own test files: samples loaded at a step
//! (`0+10x10` is 0, 10, ..., 100), then an instant evaluation and the exact result. Values
//! worked out by hand from Prometheus 2.42's rules; the conformance test in `tests/it` holds
//! the evaluator to a real Prometheus on the same samples.

use promql_parser::label::Matcher;

use super::*;

/// A fixed set of series.
struct Fixed(Vec<Series>);

impl Source for Fixed {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, each: &mut EachSeries<'_>) {
        for s in &self.0 {
            let matches = matchers
                .iter()
                .all(|m| m.is_match(s.labels.get(&m.name).map(String::as_str).unwrap_or("")));
            let points: Vec<(i64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|(t, _)| *t >= mint && *t <= maxt)
                .collect();
            if matches && !points.is_empty() {
                each(SeriesLabels::from_labels(&s.labels), &points);
            }
        }
    }
}

/// `name{a="b"}` into labels.
fn labels_of(text: &str) -> Labels {
    let (name, rest) = text.split_once('{').unwrap_or((text, "}"));
    let mut out = Labels::new();
    if !name.is_empty() {
        out.insert(METRIC_NAME.into(), name.to_string());
    }
    for pair in rest
        .trim_end_matches('}')
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap();
        out.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
    }
    out
}

/// `0+10x3 _ 5 stale` at `step_s` seconds: 0, 10, 20, 30, (gap), 5, a staleness marker.
fn load(step_s: i64, series: &[(&str, &str)]) -> Fixed {
    Fixed(
        series
            .iter()
            .map(|(l, values)| {
                let mut points = Vec::new();
                let mut i = 0i64;
                for item in values.split_whitespace() {
                    if item == "_" {
                        i += 1;
                        continue;
                    }
                    if item == "stale" {
                        points.push((i * step_s * 1000, stale_nan()));
                        i += 1;
                        continue;
                    }
                    let (start, rest) = match item.find(['+', '-']).filter(|&p| p > 0) {
                        Some(p) => (&item[..p], Some(&item[p..])),
                        None => (item, None),
                    };
                    let start: f64 = functions::parse_go_float(start).unwrap();
                    match rest {
                        None => {
                            points.push((i * step_s * 1000, start));
                            i += 1;
                        }
                        Some(rest) => {
                            let (inc, n) = rest.split_once('x').unwrap();
                            let inc: f64 = inc.parse().unwrap();
                            let n: i64 = n.parse().unwrap();
                            for k in 0..=n {
                                points.push((i * step_s * 1000, start + inc * k as f64));
                                i += 1;
                            }
                        }
                    }
                }
                Series {
                    labels: labels_of(l),
                    points,
                }
            })
            .collect(),
    )
}

/// Evaluates `expr` at `at_s` seconds and renders the result sorted: `{labels} value` lines.
fn eval(data: &Fixed, at_s: i64, expr: &str) -> Vec<String> {
    let q = Query::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
    match q
        .eval(data, at_s * 1000)
        .unwrap_or_else(|e| panic!("{expr}: {e}"))
    {
        Value::Scalar(v) => vec![format!("scalar {v}")],
        Value::Vector(v) => {
            let mut out: Vec<String> = v
                .into_iter()
                .map(|s| {
                    let mut l = s.labels;
                    let name = l.remove(METRIC_NAME).unwrap_or_default();
                    format!("{name}{} {}", render_or_empty(&l), s.value)
                })
                .collect();
            out.sort();
            out
        }
        other => panic!("{other:?}"),
    }
}

fn render_or_empty(l: &Labels) -> String {
    if l.is_empty() {
        "{}".into()
    } else {
        crate::labels::render(l)
    }
}

const M5: i64 = 300;

fn requests() -> Fixed {
    load(
        M5,
        &[
            (r#"http_requests{path="/foo"}"#, "0+10x10"),
            (r#"http_requests{path="/bar"}"#, "0+10x5 0+10x5"),
            ("testcounter_reset_middle", "0+10x4 0+10x5"),
        ],
    )
}

#[test]
fn increase_and_rate_add_resets_back_and_extrapolate() {
    let d = requests();
    assert_eq!(
        eval(&d, 50 * 60, "increase(http_requests[50m])"),
        [r#"{path="/bar"} 90"#, r#"{path="/foo"} 100"#]
    );
    // The range starts before the first sample: extrapolated by half an interval at most,
    // and never below zero for a counter starting at 0.
    assert_eq!(
        eval(&d, 50 * 60, "increase(http_requests[100m])"),
        [r#"{path="/bar"} 90"#, r#"{path="/foo"} 100"#]
    );
    assert_eq!(
        eval(&d, 50 * 60, "rate(testcounter_reset_middle[50m])"),
        ["{} 0.03"]
    );
    assert_eq!(
        eval(&d, 50 * 60, "resets(testcounter_reset_middle[50m])"),
        ["{} 1"]
    );
    assert_eq!(
        eval(&d, 50 * 60, "changes(testcounter_reset_middle[50m])"),
        ["{} 10"]
    );
    // Off the grid: 12 m 30 s, range 10 m holds the samples at 5 m and 10 m.
    // result 10, sampled 300 s, avg 300 s; to_start 150 s < 330 → +150; to_end 150 → +150.
    assert_eq!(
        eval(&d, 750, r#"increase(http_requests{path="/foo"}[10m])"#),
        [r#"{path="/foo"} 20"#]
    );
    // irate: the last two samples.
    assert_eq!(
        eval(&d, 50 * 60, r#"irate(http_requests{path="/foo"}[10m])"#),
        [r#"{path="/foo"} 0.03333333333333333"#]
    );
}

#[test]
fn instant_selectors_look_back_five_minutes_and_stop_at_a_staleness_marker() {
    let d = load(
        60,
        &[("a", "1 2 _ _ _ _ _ _"), ("b", "1 stale"), ("c", "7")],
    );
    assert_eq!(eval(&d, 60, "a"), ["a{} 2"]);
    // Last sample at 60 s: still seen at 360 s (lookback includes its start), gone at 361 s.
    assert_eq!(eval(&d, 360, "a"), ["a{} 2"]);
    assert!(eval(&d, 361, "a").is_empty());
    assert!(eval(&d, 60, "b").is_empty(), "a stale series has no value");
    assert_eq!(eval(&d, 60, "c offset 1m"), ["c{} 7"]);
    assert!(eval(&d, 0, "c offset 1m").is_empty());
}

#[test]
fn aggregations_group_by_and_without() {
    let d = load(
        60,
        &[
            (r#"x{job="a",instance="1"}"#, "1"),
            (r#"x{job="a",instance="2"}"#, "3"),
            (r#"x{job="b",instance="1"}"#, "10"),
        ],
    );
    assert_eq!(eval(&d, 0, "sum(x)"), ["{} 14"]);
    assert_eq!(
        eval(&d, 0, "sum by (job) (x)"),
        [r#"{job="a"} 4"#, r#"{job="b"} 10"#]
    );
    assert_eq!(
        eval(&d, 0, "max without (instance) (x)"),
        [r#"{job="a"} 3"#, r#"{job="b"} 10"#]
    );
    assert_eq!(
        eval(&d, 0, "avg by (job) (x)"),
        [r#"{job="a"} 2"#, r#"{job="b"} 10"#]
    );
    assert_eq!(eval(&d, 0, "count(x)"), ["{} 3"]);
    assert_eq!(
        eval(&d, 0, "topk(1, x)"),
        [r#"x{instance="1", job="b"} 10"#]
    );
    assert_eq!(
        eval(&d, 0, "bottomk by (job) (1, x)"),
        [
            r#"x{instance="1", job="a"} 1"#,
            r#"x{instance="1", job="b"} 10"#
        ]
    );
    assert_eq!(eval(&d, 0, "quantile(0.5, x)"), ["{} 3"]);
}

#[test]
fn binary_operators_match_on_labels() {
    let d = load(
        60,
        &[
            (r#"errors{route="/a",code="500"}"#, "5"),
            (r#"errors{route="/b",code="500"}"#, "1"),
            (r#"requests{route="/a"}"#, "100"),
            (r#"requests{route="/b"}"#, "200"),
            (r#"limit{}"#, "0.02"),
        ],
    );
    assert_eq!(
        eval(&d, 0, "errors / ignoring(code) requests"),
        [r#"{route="/a"} 0.05"#, r#"{route="/b"} 0.005"#]
    );
    // Many-to-one keeps the many side's labels; a label named in group_left is taken from
    // the one side (requests has no `code`, so it goes).
    assert_eq!(
        eval(&d, 0, "errors / on(route) group_left requests"),
        [
            r#"{code="500", route="/a"} 0.05"#,
            r#"{code="500", route="/b"} 0.005"#
        ]
    );
    assert_eq!(
        eval(&d, 0, "errors / on(route) group_left(code) requests"),
        [r#"{route="/a"} 0.05"#, r#"{route="/b"} 0.005"#]
    );
    // A comparison filters and keeps the left value and name; `bool` gives 0/1 without it.
    assert_eq!(
        eval(&d, 0, "errors / ignoring(code) requests > 0.01"),
        [r#"{route="/a"} 0.05"#]
    );
    assert_eq!(
        eval(&d, 0, "requests > bool 150"),
        [r#"{route="/a"} 0"#, r#"{route="/b"} 1"#]
    );
    assert_eq!(
        eval(&d, 0, "150 < requests"),
        [r#"requests{route="/b"} 200"#]
    );
    assert_eq!(eval(&d, 0, "scalar(limit) * 100"), ["scalar 2"]);
    assert_eq!(
        eval(&d, 0, r#"requests and on(route) errors{route="/a"}"#),
        [r#"requests{route="/a"} 100"#]
    );
    assert_eq!(
        eval(&d, 0, r#"requests unless on(route) errors{route="/a"}"#),
        [r#"requests{route="/b"} 200"#]
    );
    assert_eq!(
        eval(&d, 0, r#"absent(nothing{job="x"})"#),
        [r#"{job="x"} 1"#]
    );
    assert!(eval(&d, 0, "absent(requests)").is_empty());
    // Duplicates on the one side are an error, not a silent pick.
    let q = Query::parse("requests / on() errors").unwrap();
    assert!(q.eval(&d, 0).is_err());
}

#[test]
fn histogram_quantile_interpolates_within_the_bucket() {
    let d = load(
        60,
        &[
            (r#"lat_bucket{le="0.1"}"#, "50"),
            (r#"lat_bucket{le="0.5"}"#, "90"),
            (r#"lat_bucket{le="1"}"#, "95"),
            (r#"lat_bucket{le="+Inf"}"#, "100"),
            // Non-monotonic counts are raised; no +Inf bucket is NaN.
            (r#"bad_bucket{le="1"}"#, "10"),
            (r#"bad_bucket{le="2"}"#, "5"),
        ],
    );
    // rank 0.95 * 100 = 95 falls in (0.5, 1]: 0.5 + 0.5 * (95 - 90) / 5 = 1.
    assert_eq!(
        eval(&d, 0, "histogram_quantile(0.95, lat_bucket)"),
        ["{} 1"]
    );
    // rank 50 in the first bucket [0, 0.1]: 0.1.
    assert_eq!(
        eval(&d, 0, "histogram_quantile(0.5, lat_bucket)"),
        ["{} 0.1"]
    );
    // rank 99 in +Inf: the highest finite bound.
    assert_eq!(
        eval(&d, 0, "histogram_quantile(0.99, lat_bucket)"),
        ["{} 1"]
    );
    assert_eq!(
        eval(&d, 0, "histogram_quantile(0.5, bad_bucket)"),
        ["{} NaN"]
    );
}

#[test]
fn over_time_functions() {
    let d = load(60, &[("g", "1 5 3 9"), ("up", "1 0 1 1")]);
    assert_eq!(eval(&d, 180, "avg_over_time(g[3m])"), ["{} 4.5"]);
    assert_eq!(eval(&d, 180, "max_over_time(g[2m])"), ["{} 9"]);
    assert_eq!(eval(&d, 180, "min_over_time(g[2m])"), ["{} 3"]);
    assert_eq!(eval(&d, 180, "sum_over_time(g[1m])"), ["{} 12"]);
    assert_eq!(eval(&d, 180, "count_over_time(g[10m])"), ["{} 4"]);
    assert_eq!(eval(&d, 180, "quantile_over_time(0.5, g[3m])"), ["{} 4"]);
    assert_eq!(eval(&d, 180, "deriv(g[1m])"), ["{} 0.1"]);
    assert_eq!(eval(&d, 180, "avg_over_time(up[3m])"), ["{} 0.75"]);
    assert_eq!(eval(&d, 180, "absent_over_time(nope[1m])"), ["{} 1"]);
    assert_eq!(eval(&d, 180, "delta(g[3m])"), ["{} 8"]);
    assert_eq!(eval(&d, 180, "clamp_max(g, 4)"), ["{} 4"]);
    assert_eq!(eval(&d, 180, "time()"), ["scalar 180"]);
}

#[test]
fn unsupported_constructs_are_named() {
    for (expr, says) in [
        ("rate(x[5m:1m])", "subqueries"),
        ("x @ 100", "@ modifier"),
        ("predict_linear(x[5m], 60)", r#"function "predict_linear""#),
        ("count_values(\"v\", x)", r#"aggregation "count_values""#),
    ] {
        let e = Query::parse(expr).unwrap_err();
        assert!(e.contains(says), "{expr}: {e}");
    }
    assert!(Query::parse("sum(").is_err());
    assert_eq!(
        Query::parse("rate(x[5m] offset 1h) > avg_over_time(y[1d])")
            .unwrap()
            .reach(),
        std::time::Duration::from_secs(86_400)
    );
}

/// The runbooks' relative thresholds, each as an expression over 15-second samples.
#[test]
fn relative_thresholds_of_the_runbooks() {
    // Latency: 0.2 s for the first hour, then 0.5 s for the last 5 minutes.
    let mut latency = String::new();
    for i in 0..=260 {
        latency.push_str(if i < 240 { "0.2 " } else { "0.5 " });
    }
    // Websocket connections: 1000 steady, then 600 for the last two minutes.
    let mut sockets = String::new();
    for i in 0..=260 {
        sockets.push_str(if i < 252 { "1000 " } else { "600 " });
    }
    let d = load(
        15,
        &[
            ("latency_seconds", latency.as_str()),
            ("websocket_connections", sockets.as_str()),
            // DB connections creeping up by 1 per 15 s; the pool size steady.
            ("db_connections", "10+1x260"),
            ("pool_size", "50+0x260"),
            // 5xx: 12 in the last minute (3 per 15 s), 0 before.
            (r#"http_requests_total{status="500"}"#, "0+0x256 3+3x3"),
        ],
    );
    let now = 260 * 15;
    // "response time > 2x baseline": the last 5 minutes against the hour before them.
    assert_eq!(
        eval(
            &d,
            now,
            "avg_over_time(latency_seconds[5m]) > 2 * avg_over_time(latency_seconds[1h] offset 5m)"
        ),
        ["{} 0.5"]
    );
    // "websocket connections: no sudden drop" (> 30 % in 5 m).
    assert_eq!(
        eval(
            &d,
            now,
            "(websocket_connections offset 5m - websocket_connections) / websocket_connections offset 5m > 0.3"
        ),
        ["{} 0.4"]
    );
    // "DB connections stable, not increasing": a positive trend over 15 m (the rule holds it
    // `for = "15m"`); the steady pool has none.
    assert_eq!(
        eval(&d, now, "deriv(db_connections[15m]) > 0"),
        ["{} 0.06666666666666667"]
    );
    assert!(eval(&d, now, "deriv(pool_size[15m]) > 0").is_empty());
    // "5xx > 10 per minute".
    assert_eq!(
        eval(
            &d,
            now,
            r#"sum(increase(http_requests_total{status=~"5.."}[1m])) > 10"#
        ),
        ["{} 12"]
    );
}

/// "A window with 3 requests does not read as a 33 % error rate": the error ratio is kept only
/// while a companion expression sees enough requests (`and on() (... >= N)`); below, the result
/// is empty, which a rule reads as no data (`on_missing`), not as ok and not as a page.
#[test]
fn a_minimum_request_count_guards_an_error_ratio() {
    let ratio = r#"sum(rate(req_total{status="500"}[5m])) / sum(rate(req_total[5m])) and on() (sum(increase(req_total[5m])) >= 100)"#;
    let quiet = load(
        60,
        &[
            (r#"req_total{status="500"}"#, "0 0 0 0 0 1"),
            (r#"req_total{status="200"}"#, "0 0 1 1 2 2"),
        ],
    );
    assert!(
        eval(&quiet, 300, ratio).is_empty(),
        "3 requests: no verdict"
    );
    let busy = load(
        60,
        &[
            (r#"req_total{status="500"}"#, "0+10x5"),
            (r#"req_total{status="200"}"#, "0+90x5"),
        ],
    );
    assert_eq!(eval(&busy, 300, ratio), ["{} 0.1"]);
}
