//! The evaluator: an expression at one instant, over a [`Source`]. Each rule is Prometheus
//! 2.42's (`promql/engine.go`), named where it is applied.

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet, HashTable};
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{
    AggregateExpr, BinaryExpr, Expr, LabelModifier, VectorMatchCardinality, VectorSelector,
};

use super::functions;
use super::{is_stale, Sample, Series, SeriesLabels, Source, Value, LOOKBACK, METRIC_NAME};

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
    Ok(match (Evaluator { source, t }).eval(expr)? {
        Val::Scalar(v) => Value::Scalar(v),
        Val::String(s) => Value::String(s),
        Val::Vector(v) => Value::Vector(
            v.into_iter()
                .map(|e| Sample {
                    labels: e.labels.to_labels(),
                    value: e.value,
                })
                .collect(),
        ),
        Val::Matrix(m) => Value::Matrix(
            m.series
                .iter()
                .map(|(labels, range)| Series {
                    labels: labels.to_labels(),
                    points: m.points[range.clone()].to_vec(),
                })
                .collect(),
        ),
    })
}

/// One element of an instant vector, as the evaluator carries it.
#[derive(Debug, Clone)]
pub(super) struct Elem {
    pub labels: SeriesLabels,
    pub value: f64,
}

/// A range vector: each series' points are a range of one buffer (one allocation for the
/// whole selection, not one per series).
#[derive(Debug, Default)]
pub(super) struct Matrix {
    pub series: Vec<(SeriesLabels, Range<usize>)>,
    pub points: Vec<(i64, f64)>,
}

impl Matrix {
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

/// What an expression evaluates to, inside the evaluator ([`Value`] outside).
pub(super) enum Val {
    Scalar(f64),
    Vector(Vec<Elem>),
    Matrix(Matrix),
    String(String),
}

/// Groups label sets by what `keep` keeps of them (`by`, `without`, all but `le`), in the
/// order the groups are first seen, without building a key for each member.
pub(super) struct Grouper<F> {
    hasher: DefaultHashBuilder,
    table: HashTable<usize>,
    /// Each group's labels, by group index.
    pub keys: Vec<SeriesLabels>,
    keep: F,
}

impl<F: Fn(&str) -> bool> Grouper<F> {
    pub fn new(keep: F) -> Self {
        Grouper {
            hasher: DefaultHashBuilder::default(),
            table: HashTable::new(),
            keys: Vec::new(),
            keep,
        }
    }

    /// The index of `labels`' group, and whether the group is new.
    pub fn group_of(&mut self, labels: &SeriesLabels) -> (usize, bool) {
        let keep = &self.keep;
        let hash = labels.hash_retained(&self.hasher, keep);
        let keys = &self.keys;
        if let Some(&i) = self
            .table
            .find(hash, |&i| labels.retained_equals(keep, &keys[i]))
        {
            return (i, false);
        }
        let i = self.keys.len();
        self.keys.push(labels.retain(keep));
        let (keys, hasher) = (&self.keys, &self.hasher);
        self.table
            .insert_unique(hash, i, |&j| hasher.hash_one(&keys[j]));
        (i, true)
    }
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

impl Evaluator<'_> {
    pub(super) fn eval(&self, expr: &Expr) -> Result<Val, EvalError> {
        match expr {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Val::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(v) => unique(Val::Vector(
                    v.into_iter()
                        .map(|s| Elem {
                            labels: s.labels.without_name(),
                            value: -s.value,
                        })
                        .collect(),
                )),
                _ => err("unary minus applies only to scalars and instant vectors"),
            },
            Expr::VectorSelector(vs) => Ok(Val::Vector(
                self.instant(vs)
                    .into_iter()
                    .map(|(labels, _, value)| Elem { labels, value })
                    .collect(),
            )),
            Expr::MatrixSelector(ms) => Ok(Val::Matrix(self.range(&ms.vs, ms.range))),
            Expr::Call(call) => unique(functions::call(self, call)?),
            Expr::Aggregate(a) => self.aggregate(a),
            Expr::Binary(b) => unique(self.binary(b)?),
            Expr::Subquery(_) | Expr::Extension(_) => {
                err("unsupported expression (refused when parsed)")
            }
        }
    }

    pub(super) fn eval_vector(&self, expr: &Expr) -> Result<Vec<Elem>, EvalError> {
        match self.eval(expr)? {
            Val::Vector(v) => Ok(v),
            _ => err(format!("expected an instant vector: {expr}")),
        }
    }

    pub(super) fn eval_scalar(&self, expr: &Expr) -> Result<f64, EvalError> {
        match self.eval(expr)? {
            Val::Scalar(v) => Ok(v),
            _ => err(format!("expected a scalar: {expr}")),
        }
    }

    /// An instant selector (engine.go `vectorSelectorSingle`): per series, the newest sample
    /// at or before `t - offset` and no older than the lookback (both ends included), unless
    /// it is a staleness marker; with its time.
    pub(super) fn instant(&self, vs: &VectorSelector) -> Vec<(SeriesLabels, i64, f64)> {
        let at = self.t - offset_ms(vs);
        let mint = at - millis(LOOKBACK);
        let mut out = Vec::new();
        self.source
            .select(&matchers_of(vs), mint, at, &mut |labels, points| {
                if let Some(&(t, v)) = points.iter().rev().find(|(t, _)| *t <= at && *t >= mint) {
                    if !is_stale(v) {
                        out.push((labels, t, v));
                    }
                }
            });
        out
    }

    /// A range selector (2.42 `matrixIterSlice`): the points in `[t - offset - range,
    /// t - offset]`, both ends included, staleness markers left out; series without points
    /// are left out.
    pub(super) fn range(&self, vs: &VectorSelector, range: std::time::Duration) -> Matrix {
        let mut m = Matrix::default();
        self.each_range(vs, range, |labels, points| {
            let start = m.points.len();
            m.points.extend_from_slice(points);
            m.series.push((labels, start..m.points.len()));
        });
        m
    }

    /// [`range`](Self::range), handed to `f` one series at a time (its points lent for the
    /// call), so a function of each series' points needs no copy of the whole selection.
    pub(super) fn each_range(
        &self,
        vs: &VectorSelector,
        range: std::time::Duration,
        mut f: impl FnMut(SeriesLabels, &[(i64, f64)]),
    ) {
        let maxt = self.t - offset_ms(vs);
        let mint = maxt - millis(range);
        let mut kept: Vec<(i64, f64)> = Vec::new();
        self.source
            .select(&matchers_of(vs), mint, maxt, &mut |labels, points| {
                let wanted = |(t, v): &(i64, f64)| *t >= mint && *t <= maxt && !is_stale(*v);
                // Most series have nothing to leave out: their points are lent on as they are.
                let points = if points.iter().all(wanted) {
                    points
                } else {
                    kept.clear();
                    kept.extend(points.iter().filter(|p| wanted(p)));
                    &kept
                };
                if !points.is_empty() {
                    f(labels, points);
                }
            });
    }

    fn aggregate(&self, a: &AggregateExpr) -> Result<Val, EvalError> {
        let op = a.op.to_string();
        let input = self.eval_vector(&a.expr)?;
        let param = match &a.param {
            Some(p) if op != "count_values" => Some(self.eval_scalar(p)?),
            _ => None,
        };
        Ok(Val::Vector(aggregate(
            &op,
            input,
            param,
            a.modifier.as_ref(),
        )?))
    }

    fn binary(&self, b: &BinaryExpr) -> Result<Val, EvalError> {
        let op = b.op.to_string();
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let return_bool = b.return_bool();
        match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => {
                let (v, keep) = elem_binop(&op, l, r)?;
                // Comparisons between scalars need `bool` (the parser insists).
                Ok(Val::Scalar(if is_comparison(&op) {
                    f64::from(u8::from(keep))
                } else {
                    v
                }))
            }
            (Val::Vector(l), Val::Scalar(r)) => {
                Ok(Val::Vector(vector_scalar(&op, l, r, false, return_bool)?))
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Ok(Val::Vector(vector_scalar(&op, r, l, true, return_bool)?))
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let modifier = b.modifier.as_ref();
                let card = modifier
                    .map(|m| m.card.clone())
                    .unwrap_or(VectorMatchCardinality::OneToOne);
                let matching = modifier.and_then(|m| m.matching.clone());
                if matches!(op.as_str(), "and" | "or" | "unless") {
                    return Ok(Val::Vector(set_op(&op, l, r, matching.as_ref())));
                }
                Ok(Val::Vector(vector_vector(
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
fn unique(value: Val) -> Result<Val, EvalError> {
    if let Val::Vector(v) = &value {
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
    v: Vec<Elem>,
    scalar: f64,
    swap: bool,
    return_bool: bool,
) -> Result<Vec<Elem>, EvalError> {
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
                s.labels = s.labels.without_name();
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// The labels two samples are matched on (engine.go `signatureFunc`): `on(...)` those labels,
/// `ignoring(...)` (or no modifier) all but those and the metric name.
fn signature(labels: &SeriesLabels, matching: Option<&LabelModifier>) -> SeriesLabels {
    match matching {
        Some(LabelModifier::Include(on)) => labels.retain(|k| on.labels.iter().any(|l| l == k)),
        Some(LabelModifier::Exclude(ignoring)) => {
            labels.retain(|k| k != METRIC_NAME && !ignoring.labels.iter().any(|l| l == k))
        }
        None => labels.clone().without_name(),
    }
}

/// `and`, `or`, `unless` (engine.go `VectorAnd`/`VectorOr`/`VectorUnless`).
fn set_op(op: &str, l: Vec<Elem>, r: Vec<Elem>, matching: Option<&LabelModifier>) -> Vec<Elem> {
    let right: HashSet<SeriesLabels> = r.iter().map(|s| signature(&s.labels, matching)).collect();
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
            let left: HashSet<SeriesLabels> =
                l.iter().map(|s| signature(&s.labels, matching)).collect();
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
    lhs: Vec<Elem>,
    rhs: Vec<Elem>,
    card: &VectorMatchCardinality,
    matching: Option<&LabelModifier>,
    return_bool: bool,
) -> Result<Vec<Elem>, EvalError> {
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    // The "many" side is iterated, the "one" side looked up.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let mut right: HashMap<SeriesLabels, Elem> = HashMap::with_capacity(one.len());
    for s in one {
        let sig = signature(&s.labels, matching);
        if right.contains_key(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            return err(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side",
                sig.render()
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
    let mut matched: HashMap<SeriesLabels, SeriesLabels> = HashMap::new();
    let mut seen_results: HashSet<(SeriesLabels, SeriesLabels)> = HashSet::new();
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
            metric = metric.without_name();
        }
        if one_to_one {
            match matching {
                Some(LabelModifier::Include(on)) => {
                    metric = metric.retain(|k| on.labels.iter().any(|l| l == k))
                }
                Some(LabelModifier::Exclude(ignoring)) => {
                    metric = metric.retain(|k| !ignoring.labels.iter().any(|l| l == k))
                }
                None => {}
            }
        }
        for name in &include {
            let value = rs.labels.get(name).filter(|v| !v.is_empty());
            metric = metric.with(name, value);
        }
        if return_bool {
            metric = metric.without_name();
        }
        if one_to_one {
            // One-to-one: each match group at most once.
            if matched.insert(sig.clone(), metric.clone()).is_some() {
                return err(format!(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right): {}",
                    sig.render()
                ));
            }
        } else if !seen_results.insert((sig.clone(), metric.clone())) {
            return err(format!(
                "multiple matches for labels: grouping labels must ensure unique matches: {}",
                metric.render()
            ));
        }
        out.push(Elem {
            labels: metric,
            value,
        });
    }
    Ok(out)
}

/// Whether a label is in an aggregation's group key (engine.go `aggregation`): `by` keeps
/// those labels, `without` drops those and the metric name, none keeps nothing.
fn in_group_key(label: &str, modifier: Option<&LabelModifier>) -> bool {
    match modifier {
        Some(LabelModifier::Include(by)) => by.labels.iter().any(|l| l == label),
        Some(LabelModifier::Exclude(without)) => {
            label != METRIC_NAME && !without.labels.iter().any(|l| l == label)
        }
        None => false,
    }
}

struct Group {
    value: f64,
    mean: f64,
    count: f64,
    /// quantile: the values.
    values: Vec<f64>,
    /// topk/bottomk: the samples kept.
    heap: Vec<Elem>,
}

/// engine.go `aggregation` for the supported operators.
fn aggregate(
    op: &str,
    input: Vec<Elem>,
    param: Option<f64>,
    modifier: Option<&LabelModifier>,
) -> Result<Vec<Elem>, EvalError> {
    let k = match (op, param) {
        ("topk" | "bottomk", Some(p)) => {
            if p.is_nan() || p < 1.0 {
                return Ok(Vec::new());
            }
            p.min(i64::MAX as f64) as usize
        }
        _ => 0,
    };
    let mut grouper = Grouper::new(|label: &str| in_group_key(label, modifier));
    let mut groups: Vec<Group> = Vec::new();
    for s in input {
        let (i, new) = grouper.group_of(&s.labels);
        if new {
            let g = Group {
                value: s.value,
                mean: s.value,
                count: 1.0,
                values: if op == "quantile" {
                    vec![s.value]
                } else {
                    Vec::new()
                },
                heap: Vec::new(),
            };
            let mut g = match op {
                "stddev" | "stdvar" => Group { value: 0.0, ..g },
                "group" => Group { value: 1.0, ..g },
                _ => g,
            };
            if matches!(op, "topk" | "bottomk") {
                g.heap.push(s);
            }
            groups.push(g);
            continue;
        }
        let g = &mut groups[i];
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
    for (g, labels) in groups.into_iter().zip(grouper.keys) {
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
        out.push(Elem { labels, value });
    }
    Ok(out)
}

/// The `k` highest (or lowest) samples; NaN sorts below every number for `topk` and above
/// for `bottomk`, as Prometheus' heaps do.
fn top(highest: bool, k: usize, mut samples: Vec<Elem>) -> Vec<Elem> {
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
