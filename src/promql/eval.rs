//! The evaluator: an expression at one instant, over a [`Source`]. Each rule is Prometheus
//! 2.42's (`promql/engine.go`), named where it is applied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Expr, LabelModifier, VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::{is_stale, Sample, Series, Source, Value, LOOKBACK, METRIC_NAME};
use crate::labels::Labels;

/// Why an expression could not be evaluated (its data, not its syntax: that is refused when
/// it is parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EvalError {}

pub(super) fn err<T>(message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError(message.into()))
}

/// Evaluates `expr` at `t` (milliseconds since the epoch).
pub fn evaluate(expr: &Expr, source: &dyn Source, t: i64) -> Result<Value, EvalError> {
    Evaluator { source, t }.eval(expr)
}

pub(super) struct Evaluator<'a> {
    pub source: &'a dyn Source,
    pub t: i64,
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(vs: &VectorSelector) -> i64 {
    match &vs.offset {
        Some(promql_parser::parser::Offset::Pos(d)) => millis(*d),
        Some(promql_parser::parser::Offset::Neg(d)) => -millis(*d),
        None => 0,
    }
}

/// The selector's matchers, its metric name (`foo{...}`) as a `__name__` matcher.
pub(super) fn matchers_of(vs: &VectorSelector) -> Vec<Matcher> {
    let mut out = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        if !out.iter().any(|m| m.name == METRIC_NAME) {
            out.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
        }
    }
    out
}

/// Labels without the metric name (what arithmetic, functions and `bool` return).
pub(super) fn drop_name(mut labels: Labels) -> Labels {
    labels.remove(METRIC_NAME);
    labels
}

impl Evaluator<'_> {
    pub(super) fn eval(&self, expr: &Expr) -> Result<Value, EvalError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Value::Scalar(v) => Ok(Value::Scalar(-v)),
                Value::Vector(v) => unique(Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            labels: drop_name(s.labels),
                            value: -s.value,
                        })
                        .collect(),
                )),
                _ => err("unary minus applies only to scalars and instant vectors"),
            },
            Expr::VectorSelector(vs) => Ok(Value::Vector(
                self.instant(vs)
                    .into_iter()
                    .map(|(labels, _, value)| Sample { labels, value })
                    .collect(),
            )),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.range(&ms.vs, ms.range))),
            Expr::Call(call) => unique(functions::call(self, call)?),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => unique(self.binary(b)?),
            Expr::Subquery(_) | Expr::Extension(_) => {
                err("unsupported expression (refused when parsed)")
            }
        }
    }

    pub(super) fn eval_vector(&self, expr: &Expr) -> Result<Vec<Sample>, EvalError> {
        match self.eval(expr)? {
            Value::Vector(v) => Ok(v),
            _ => err(format!("expected an instant vector: {expr}")),
        }
    }

    pub(super) fn eval_scalar(&self, expr: &Expr) -> Result<f64, EvalError> {
        match self.eval(expr)? {
            Value::Scalar(v) => Ok(v),
            _ => err(format!("expected a scalar: {expr}")),
        }
    }

    /// An instant selector (engine.go `vectorSelectorSingle`): per series, the newest sample
    /// at or before `t - offset` and no older than the lookback (both ends included), unless
    /// it is a staleness marker; with its time.
    pub(super) fn instant(&self, vs: &VectorSelector) -> Vec<(Labels, i64, f64)> {
        let at = self.t - offset_ms(vs);
        let mint = at - millis(LOOKBACK);
        self.source
            .select(&matchers_of(vs), mint, at)
            .into_iter()
            .filter_map(|s| {
                let &(t, v) = s
                    .points
                    .iter()
                    .rev()
                    .find(|(t, _)| *t <= at && *t >= mint)?;
                (!is_stale(v)).then_some((s.labels, t, v))
            })
            .collect()
    }

    /// A range selector (2.42 `matrixIterSlice`): the points in `[t - offset - range,
    /// t - offset]`, both ends included, staleness markers left out; series without points
    /// are left out.
    pub(super) fn range(&self, vs: &VectorSelector, range: std::time::Duration) -> Vec<Series> {
        let maxt = self.t - offset_ms(vs);
        let mint = maxt - millis(range);
        self.source
            .select(&matchers_of(vs), mint, maxt)
            .into_iter()
            .filter_map(|mut s| {
                s.points
                    .retain(|(t, v)| *t >= mint && *t <= maxt && !is_stale(*v));
                (!s.points.is_empty()).then_some(s)
            })
            .collect()
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Value, EvalError> {
        let op = a.op.to_string();
        let input = self.eval_vector(&a.expr)?;
        let param = match &a.param {
            Some(p) if op != "count_values" => Some(self.eval_scalar(p)?),
            _ => None,
        };
        Ok(Value::Vector(aggregate(
            &op,
            input,
            param,
            a.modifier.as_ref(),
        )?))
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Value, EvalError> {
        let op = b.op.to_string();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let return_bool = b.return_bool();
        match (lhs, rhs) {
            (Value::Scalar(l), Value::Scalar(r)) => {
                let (v, keep) = elem_binop(&op, l, r)?;
                // Comparisons between scalars need `bool` (the parser insists).
                Ok(Value::Scalar(if is_comparison(&op) {
                    f64::from(u8::from(keep))
                } else {
                    v
                }))
            }
            (Value::Vector(l), Value::Scalar(r)) => {
                Ok(Value::Vector(vector_scalar(&op, l, r, false, return_bool)?))
            }
            (Value::Scalar(l), Value::Vector(r)) => {
                Ok(Value::Vector(vector_scalar(&op, r, l, true, return_bool)?))
            }
            (Value::Vector(l), Value::Vector(r)) => {
                let modifier = b.modifier.as_ref();
                let card = modifier
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                let matching = modifier.and_then(|m| m.matching.clone());
                if matches!(op.as_str(), "and" | "or" | "unless") {
                    return Ok(Value::Vector(set_op(&op, l, r, matching.as_ref())));
                }
                Ok(Value::Vector(vector_vector(
                    &op,
                    l,
                    r,
                    &card,
                    matching.as_ref(),
                    return_bool,
                )?))
            }
            _ => err(format!("operator {op} needs scalars or instant vectors")),
        }
    }
}

/// engine.go: a function's, an operator's or a negation's result may not hold one label set
/// twice (`up * 2` and `probe_success * 2` with the same labels, once the names are gone).
fn unique(value: Value) -> Result<Value, EvalError> {
    if let Value::Vector(v) = &value {
        let mut seen = HashSet::with_capacity(v.len());
        if !v.iter().all(|s| seen.insert(&s.labels)) {
            return err("vector cannot contain metrics with the same labelset");
        }
    }
    Ok(value)
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "==" | "!=" | ">" | "<" | ">=" | "<=")
}

/// engine.go `shouldDropMetricName`: arithmetic drops the metric name, comparison keeps it.
fn drops_name(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^")
}

/// engine.go `vectorElemBinop`: the value and, for comparisons, whether the sample is kept.
fn elem_binop(op: &str, l: f64, r: f64) -> Result<(f64, bool), EvalError> {
    Ok(match op {
        "+" => (l + r, true),
        "-" => (l - r, true),
        "*" => (l * r, true),
        "/" => (l / r, true),
        "^" => (l.powf(r), true),
        "%" => (go_mod(l, r), true),
        "==" => (l, l == r),
        "!=" => (l, l != r),
        ">" => (l, l > r),
        "<" => (l, l < r),
        ">=" => (l, l >= r),
        "<=" => (l, l <= r),
        other => return err(format!("operator {other} is not supported")),
    })
}

/// Go's `math.Mod`: the remainder with the sign of `x` (Rust's `%` on f64 is the same, but
/// spelled out for the special cases Go documents).
fn go_mod(x: f64, y: f64) -> f64 {
    if y == 0.0 || x.is_infinite() || x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    x % y
}

/// engine.go `VectorscalarBinop`: the vector is `v`; `swap` when the scalar was on the left.
fn vector_scalar(
    op: &str,
    v: Vec<Sample>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Sample>, EvalError> {
    let mut out = Vec::with_capacity(v.len());
    for mut s in v {
        let (mut l, mut r) = (s.value, scalar);
        if swap {
            std::mem::swap(&mut l, &mut r);
        }
        let (mut value, mut keep) = elem_binop(op, l, r)?;
        // A comparison with the scalar on the left keeps the vector's value.
        if is_comparison(op) && swap {
            value = r;
        }
        if return_bool {
            value = f64::from(u8::from(keep));
            keep = true;
        }
        if keep {
            s.value = value;
            if drops_name(op) || return_bool {
                s.labels = drop_name(s.labels);
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// The labels two samples are matched on (engine.go `signatureFunc`): `on(...)` those labels,
/// `ignoring(...)` (or no modifier) all but those and the metric name.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => labels
            .iter()
            .filter(|(k, _)| on.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(ignoring)) => labels
            .iter()
            .filter(|(k, _)| *k != METRIC_NAME && !ignoring.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => drop_name(labels.clone()),
    }
}

/// `and`, `or`, `unless` (engine.go `VectorAnd`/`VectorOr`/`VectorUnless`).
fn set_op(
    op: &str,
    l: Vec<Sample>,
    r: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    let right: HashSet<Labels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
    match op {
        "and" => l
            .into_iter()
            .filter(|s| right.contains(&signature(&s.labels, matching)))
            .collect(),
        "unless" => l
            .into_iter()
            .filter(|s| !right.contains(&signature(&s.labels, matching)))
            .collect(),
        _ => {
            let left: HashSet<Labels> = l.iter().map(|s| signature(&s.labels, matching)).collect();
            let mut out = l;
            out.extend(
                r.into_iter()
                    .filter(|s| !left.contains(&signature(&s.labels, matching))),
            );
            out
        }
    }
}

/// engine.go `VectorBinop` with `resultMetric`.
fn vector_vector(
    op: &str,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    card: &VectorMatchCardinality,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Sample>, EvalError> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    // The "many" side is iterated, the "one" side looked up.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<Labels, Sample> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels, matching);
        if right.contains_key(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                crate::labels::render(&sig)
            ));
        }
        right.insert(sig, s);
    }
    let include: Vec<String> = match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => {
            l.labels.clone()
        }
        _ => Vec::new(),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<Labels, Labels> = HashMap::new();
    let mut seen_results: HashSet<(Labels, Labels)> = HashSet::new();
    let mut out = Vec::new();
    for ls in many {
        let sig = signature(&ls.labels, matching);
        let Some(rs) = right.get(&sig) else {
            continue;
        };
        let (mut vl, mut vr) = (ls.value, rs.value);
        if one_to_many {
            std::mem::swap(&mut vl, &mut vr);
        }
        let (mut value, keep) = elem_binop(op, vl, vr)?;
        if return_bool {
            value = f64::from(u8::from(keep));
        } else if !keep {
            continue;
        }
        // resultMetric
        let mut metric = ls.labels.clone();
        if drops_name(op) {
            metric.remove(METRIC_NAME);
        }
        if one_to_one {
            match matching {
                Some(LabelModifier::Include(on)) => {
                    metric.retain(|k, _| on.labels.iter().any(|l| l == k))
                }
                Some(LabelModifier::Exclude(ignoring)) => {
                    metric.retain(|k, _| !ignoring.labels.iter().any(|l| l == k))
                }
                None => {}
            }
        }
        for name in &include {
            match rs.labels.get(name) {
                Some(v) if !v.is_empty() => {
                    metric.insert(name.clone(), v.clone());
                }
                _ => {
                    metric.remove(name);
                }
            }
        }
        if return_bool {
            metric.remove(METRIC_NAME);
        }
        if one_to_one {
            // One-to-one: each match group at most once.
            if matched.insert(sig.clone(), metric.clone()).is_some() {
                return err(format!(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right): {}",
                    crate::labels::render(&sig)
                ));
            }
        } else if !seen_results.insert((sig.clone(), metric.clone())) {
            return err(format!(
                "multiple matches for labels: grouping labels must ensure unique matches: {}",
                crate::labels::render(&metric)
            ));
        }
        out.push(Sample {
            labels: metric,
            value,
        });
    }
    Ok(out)
}

/// An aggregation's group key (engine.go `aggregation`): `by` keeps those labels, `without`
/// drops those and the metric name, none keeps nothing.
fn group_key(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(by)) => labels
            .iter()
            .filter(|(k, _)| by.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .iter()
            .filter(|(k, _)| *k != METRIC_NAME && !without.labels.iter().any(|l| l == *k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        None => Labels::new(),
    }
}

struct Group {
    labels: Labels,
    value: f64,
    mean: f64,
    count: f64,
    values: Vec<f64>,
    /// topk/bottomk: the samples kept.
    heap: Vec<Sample>,
}

/// engine.go `aggregation` for the supported operators.
fn aggregate(
    op: &str,
    input: Vec<Sample>,
    param: Option<f64>,
    modifier: Option<&LabelModifier>,
) -> Result<Vec<Sample>, EvalError> {
    let k = match (op, param) {
        ("topk" | "bottomk", Some(p)) => {
            if p.is_nan() || p < 1.0 {
                return Ok(Vec::new());
            }
            p.min(i64::MAX as f64) as usize
        }
        _ => 0,
    };
    let mut order: Vec<Labels> = Vec::new();
    let mut groups: BTreeMap<Labels, Group> = BTreeMap::new();
    for s in input {
        let key = group_key(&s.labels, modifier);
        let Some(g) = groups.get_mut(&key) else {
            order.push(key.clone());
            let g = Group {
                labels: key.clone(),
                value: s.value,
                mean: s.value,
                count: 1.0,
                values: vec![s.value],
                heap: vec![s.clone()],
            };
            let g = match op {
                "stddev" | "stdvar" => Group { value: 0.0, ..g },
                "group" => Group { value: 1.0, ..g },
                _ => g,
            };
            groups.insert(key, g);
            continue;
        };
        match op {
            "sum" => g.value += s.value,
            "avg" => {
                g.count += 1.0;
                if g.mean.is_infinite() {
                    if s.value.is_infinite() && (g.mean > 0.0) == (s.value > 0.0) {
                        continue;
                    }
                    if !s.value.is_infinite() && !s.value.is_nan() {
                        continue;
                    }
                }
                g.mean += s.value / g.count - g.mean / g.count;
            }
            "count" => g.count += 1.0,
            "min" => {
                if g.value > s.value || g.value.is_nan() {
                    g.value = s.value;
                }
            }
            "max" => {
                if g.value < s.value || g.value.is_nan() {
                    g.value = s.value;
                }
            }
            "stddev" | "stdvar" => {
                g.count += 1.0;
                let delta = s.value - g.mean;
                g.mean += delta / g.count;
                g.value += delta * (s.value - g.mean);
            }
            "quantile" => g.values.push(s.value),
            "group" => {}
            "topk" | "bottomk" => g.heap.push(s),
            other => return err(format!("aggregation {other} is not supported")),
        }
    }
    let mut out = Vec::new();
    for key in order {
        let Some(g) = groups.remove(&key) else {
            continue;
        };
        let value = match op {
            "avg" => g.mean,
            "count" => g.count,
            "stdvar" => g.value / g.count,
            "stddev" => (g.value / g.count).sqrt(),
            "quantile" => functions::quantile(param.unwrap_or(f64::NAN), g.values),
            "topk" | "bottomk" => {
                out.extend(top(op == "topk", k, g.heap));
                continue;
            }
            _ => g.value,
        };
        out.push(Sample {
            labels: g.labels,
            value,
        });
    }
    Ok(out)
}

/// The `k` highest (or lowest) samples; NaN sorts below every number for `topk` and above
/// for `bottomk`, as Prometheus' heaps do.
fn top(highest: bool, k: usize, mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.sort_by(|a, b| {
        let (x, y) = (a.value, b.value);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => {
                if highest {
                    y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal)
                } else {
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                }
            }
        }
    });
    samples.truncate(k);
    samples
}
