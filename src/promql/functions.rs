//! The functions (Prometheus 2.42 `promql/functions.go`), each named where it is implemented.

use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::eval::{err, Elem, EvalError, Evaluator, Grouper, Matrix, Val};
use super::{SeriesLabels, METRIC_NAME};
use crate::labels::Labels;

pub(super) fn call(ev: &Evaluator<'_>, call: &Call) -> Result<Val, EvalError> {
    let args = &call.args.args;
    let name = call.func.name;
    let arg = |i: usize| -> Result<&Expr, EvalError> {
        match args.get(i) {
            Some(a) => Ok(a),
            None => err(format!("{name}: missing argument {}", i + 1)),
        }
    };
    let vector = |v: Vec<Elem>| Ok(Val::Vector(v));
    let vector_of = |v: Result<Vec<Elem>, EvalError>| v.map(Val::Vector);
    match name {
        "time" => Ok(Val::Scalar(ev.t as f64 / 1000.0)),
        "vector" => vector(vec![Elem {
            labels: SeriesLabels::default(),
            value: ev.eval_scalar(arg(0)?)?,
        }]),
        "scalar" => {
            let v = ev.eval_vector(arg(0)?)?;
            Ok(Val::Scalar(match v.as_slice() {
                [one] => one.value,
                _ => f64::NAN,
            }))
        }
        "abs" => vector(map_values(ev.eval_vector(arg(0)?)?, f64::abs)),
        "clamp_min" => {
            let v = ev.eval_vector(arg(0)?)?;
            let min = ev.eval_scalar(arg(1)?)?;
            vector(map_values(v, |x| x.max(min).max_nan(x, min)))
        }
        "clamp_max" => {
            let v = ev.eval_vector(arg(0)?)?;
            let max = ev.eval_scalar(arg(1)?)?;
            vector(map_values(v, |x| x.min(max).max_nan(x, max)))
        }
        "clamp" => {
            let v = ev.eval_vector(arg(0)?)?;
            let min = ev.eval_scalar(arg(1)?)?;
            let max = ev.eval_scalar(arg(2)?)?;
            // functions.go funcClamp: an empty range (max < min) returns nothing.
            if max < min {
                return vector(Vec::new());
            }
            vector(map_values(v, |x| {
                x.max(min).max_nan(x, min).min(max).max_nan(x, max)
            }))
        }
        "timestamp" => {
            // The time of each sample an instant selector picked (its offset applied); of
            // any other expression, the evaluation time.
            match strip_parens(arg(0)?) {
                Expr::VectorSelector(vs) => vector(
                    ev.instant(vs)
                        .into_iter()
                        .map(|(labels, t, _)| Elem {
                            labels: labels.without_name(),
                            value: t as f64 / 1000.0,
                        })
                        .collect(),
                ),
                other => {
                    let t = ev.t as f64 / 1000.0;
                    vector(map_values(ev.eval_vector(other)?, |_| t))
                }
            }
        }
        "absent" => {
            let v = ev.eval_vector(arg(0)?)?;
            if !v.is_empty() {
                return vector(Vec::new());
            }
            vector(vec![Elem {
                labels: SeriesLabels::from_labels(&absent_labels(arg(0)?)),
                value: 1.0,
            }])
        }
        "absent_over_time" => {
            let m = matrix(ev, arg(0)?)?;
            if !m.is_empty() {
                return vector(Vec::new());
            }
            vector(vec![Elem {
                labels: SeriesLabels::from_labels(&absent_labels(arg(0)?)),
                value: 1.0,
            }])
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(0)?)?;
            vector(histogram_quantile(q, ev.eval_vector(arg(1)?)?))
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(0)?)?;
            vector(over_range(ev, arg(1)?, false, |points| {
                Some(quantile(q, points.iter().map(|p| p.1).collect()))
            })?)
        }
        "rate" | "increase" | "delta" => {
            let a = arg(0)?;
            let ((start, end), range) = (edges(ev, a), range_of(a));
            let (is_counter, is_rate) = (name != "delta", name == "rate");
            vector(over_range(ev, a, false, |points| {
                extrapolate(points, start, end, range, is_counter, is_rate)
            })?)
        }
        "irate" => vector_of(over_range(ev, arg(0)?, false, irate)),
        "deriv" => vector_of(over_range(ev, arg(0)?, false, |p| {
            (p.len() >= 2).then(|| linear_regression(p, p[0].0).0)
        })),
        "resets" => vector_of(over_range(ev, arg(0)?, false, |p| {
            Some(p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64)
        })),
        "changes" => vector_of(over_range(ev, arg(0)?, false, |p| {
            Some(
                p.windows(2)
                    .filter(|w| !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan())))
                    .count() as f64,
            )
        })),
        "avg_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| Some(avg(p)))),
        "sum_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| {
            Some(kahan_sum(p.iter().map(|x| x.1)))
        })),
        "count_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| Some(p.len() as f64))),
        "min_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| {
            let mut min = p[0].1;
            for &(_, v) in p {
                if v < min || min.is_nan() {
                    min = v;
                }
            }
            Some(min)
        })),
        "max_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| {
            let mut max = p[0].1;
            for &(_, v) in p {
                if v > max || max.is_nan() {
                    max = v;
                }
            }
            Some(max)
        })),
        "last_over_time" => vector_of(over_range(ev, arg(0)?, true, |p| p.last().map(|x| x.1))),
        "present_over_time" => vector_of(over_range(ev, arg(0)?, false, |_| Some(1.0))),
        "stddev_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| Some(stdvar(p).sqrt()))),
        "stdvar_over_time" => vector_of(over_range(ev, arg(0)?, false, |p| Some(stdvar(p)))),
        other => err(format!("function {other} is not supported")),
    }
}

trait NanAware {
    /// `f64::max`/`min` return the other operand for a NaN; Go's `math.Max`/`Min` return
    /// NaN. Keep NaN when either input was NaN.
    fn max_nan(self, a: f64, b: f64) -> f64;
}

impl NanAware for f64 {
    fn max_nan(self, a: f64, b: f64) -> f64 {
        if a.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            self
        }
    }
}

fn strip_parens(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip_parens(&p.expr),
        other => other,
    }
}

fn map_values(v: Vec<Elem>, f: impl Fn(f64) -> f64) -> Vec<Elem> {
    v.into_iter()
        .map(|s| Elem {
            labels: s.labels.without_name(),
            value: f(s.value),
        })
        .collect()
}

fn matrix(ev: &Evaluator<'_>, e: &Expr) -> Result<Matrix, EvalError> {
    match ev.eval(e)? {
        Val::Matrix(m) => Ok(m),
        _ => err(format!("expected a range vector: {e}")),
    }
}

fn range_of(e: &Expr) -> std::time::Duration {
    match strip_parens(e) {
        Expr::MatrixSelector(ms) => ms.range,
        _ => std::time::Duration::ZERO,
    }
}

/// A function of each series' points; the metric name is dropped, a `None` drops the series.
fn over_time(m: Matrix, f: impl Fn(&[(i64, f64)]) -> Option<f64>) -> Vec<Elem> {
    let Matrix { series, points } = m;
    series
        .into_iter()
        .filter_map(|(labels, range)| {
            Some(Elem {
                value: f(&points[range])?,
                labels: labels.without_name(),
            })
        })
        .collect()
}

/// A function of each series' points in the range `e` selects (`over_time` of it): the
/// metric name dropped unless `keep_name`, a `None` drops the series. A range selector's
/// series are read one at a time as the store lends them, without copying the selection.
fn over_range(
    ev: &Evaluator<'_>,
    e: &Expr,
    keep_name: bool,
    f: impl Fn(&[(i64, f64)]) -> Option<f64>,
) -> Result<Vec<Elem>, EvalError> {
    let Expr::MatrixSelector(ms) = strip_parens(e) else {
        let out = over_time(matrix(ev, e)?, f);
        return Ok(out);
    };
    let mut out = Vec::new();
    ev.each_range(&ms.vs, ms.range, |labels, points| {
        if let Some(value) = f(points) {
            let labels = if keep_name {
                labels
            } else {
                labels.without_name()
            };
            out.push(Elem { labels, value });
        }
    });
    Ok(out)
}

/// functions.go `extrapolatedRate` (2.42): `rate`, `increase` (counters: resets added back,
/// never extrapolated below zero) and `delta`, over the range `[start, end]` (ms) the points
/// were selected from (`extrapolate`, per series).
/// The `[start, end]` (ms) a range selector argument selects from at the evaluation time.
fn edges(ev: &Evaluator<'_>, e: &Expr) -> (i64, i64) {
    let (offset, range) = match strip_parens(e) {
        Expr::MatrixSelector(ms) => (
            match &ms.vs.offset {
                Some(promql_parser::parser::Offset::Pos(d)) => d.as_millis() as i64,
                Some(promql_parser::parser::Offset::Neg(d)) => -(d.as_millis() as i64),
                None => 0,
            },
            ms.range.as_millis() as i64,
        ),
        _ => (0, 0),
    };
    let end = ev.t - offset;
    (end - range, end)
}

fn extrapolate(
    points: &[(i64, f64)],
    range_start: i64,
    range_end: i64,
    range: std::time::Duration,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.1 - first.1;
    if is_counter {
        let mut prev = first.1;
        for &(_, v) in &points[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let average = sampled / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    let threshold = average * 1.1;
    let mut interval = sampled;
    interval += if to_start < threshold {
        to_start
    } else {
        average / 2.0
    };
    interval += if to_end < threshold {
        to_end
    } else {
        average / 2.0
    };
    let mut factor = interval / sampled;
    if is_rate {
        factor /= range.as_secs_f64();
    }
    Some(result * factor)
}

/// functions.go `instantValue` for `irate`: the last two points; a drop is a reset.
fn irate(points: &[(i64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let last = points[points.len() - 1];
    let prev = points[points.len() - 2];
    let result = if last.1 < prev.1 {
        last.1
    } else {
        last.1 - prev.1
    };
    let interval = last.0 - prev.0;
    if interval == 0 {
        return None;
    }
    Some(result / (interval as f64 / 1000.0))
}

/// functions.go `linearRegression`: (slope, intercept) with x in seconds from `intercept_ms`.
fn linear_regression(points: &[(i64, f64)], intercept_ms: i64) -> (f64, f64) {
    let first = points[0].1;
    if points.iter().all(|p| p.1 == first) {
        if first.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, first);
    }
    let (mut n, mut sum_x, mut sum_y, mut sum_xy, mut sum_x2) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut cx, mut cy, mut cxy, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    for &(t, v) in points {
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        (sum_x, cx) = kahan_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_inc(v, sum_y, cy);
        (sum_xy, cxy) = kahan_inc(x * v, sum_xy, cxy);
        (sum_x2, cx2) = kahan_inc(x * x, sum_x2, cx2);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    (slope, sum_y / n - slope * sum_x / n)
}

/// functions.go `kahanSumInc`.
fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn kahan_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// functions.go `funcAvgOverTime`: the running mean, Kahan-compensated.
fn avg(points: &[(i64, f64)]) -> f64 {
    let (mut mean, mut count, mut c) = (0.0f64, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_inc(v / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

/// functions.go `funcStdvarOverTime`.
fn stdvar(points: &[(i64, f64)]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in points {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// quantile.go `quantile`: the φ-quantile of `values`, interpolated between ranks.
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort.Float64s: NaN before every number.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// functions.go `funcHistogramQuantile` over classic buckets (quantile.go `bucketQuantile`):
/// grouped by every label but `le` (the metric name dropped); a sample whose `le` is not a
/// number is ignored.
fn histogram_quantile(q: f64, v: Vec<Elem>) -> Vec<Elem> {
    let mut grouper = Grouper::new(|label: &str| label != "le" && label != METRIC_NAME);
    let mut groups: Vec<Vec<(f64, f64)>> = Vec::new();
    for s in v {
        let Some(le) = s.labels.get("le").and_then(parse_go_float) else {
            continue;
        };
        let (i, new) = grouper.group_of(&s.labels);
        if new {
            groups.push(Vec::new());
        }
        groups[i].push((le, s.value));
    }
    groups
        .into_iter()
        .zip(grouper.keys)
        .map(|(buckets, labels)| Elem {
            labels,
            value: bucket_quantile(q, buckets),
        })
        .collect()
}

/// quantile.go `bucketQuantile`.
fn bucket_quantile(q: f64, mut buckets: Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if !buckets.last().is_some_and(|b| b.0 == f64::INFINITY) {
        return f64::NAN;
    }
    // coalesceBuckets: equal upper bounds are one bucket.
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for b in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == b.0 => last.1 += b.1,
            _ => merged.push(b),
        }
    }
    let mut buckets = merged;
    // ensureMonotonic
    let mut max = f64::NEG_INFINITY;
    for b in &mut buckets {
        if b.1 > max {
            max = b.1;
        } else if b.1 < max {
            b.1 = max;
        }
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search over all but the +Inf bucket: the first whose count >= rank.
    let n = buckets.len() - 1;
    let b = (0..n).find(|&i| buckets[i].1 >= rank).unwrap_or(n);
    if b == n {
        return buckets[n - 1].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// Go's `strconv.ParseFloat` for the forms an `le` label takes (`0.5`, `1e3`, `+Inf`, `Inf`,
/// `NaN`).
pub(super) fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// functions.go `createLabelsForAbsentFunction`: the equality matchers' labels, except the
/// metric name and a label matched more than once or otherwise.
fn absent_labels(e: &Expr) -> Labels {
    let vs = match strip_parens(e) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::new(),
    };
    let mut out = Labels::new();
    let mut drop = Vec::new();
    for m in &vs.matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if matches!(m.op, MatchOp::Equal) && !out.contains_key(&m.name) {
            out.insert(m.name.clone(), m.value.clone());
        } else {
            drop.push(m.name.clone());
        }
    }
    for name in drop {
        out.remove(&name);
    }
    out
}
