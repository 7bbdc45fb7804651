//! PromQL: the expressions of rules over stored samples, evaluated as Prometheus 2.42 does.
//!
//! Parsing is `promql-parser`'s (a maintained crate); [`Query::parse`] then refuses, by name,
//! every construct warden does not evaluate (subqueries, `@`, functions and aggregations it
//! does not know), so an expression that is accepted is one the evaluator answers. The
//! evaluator ([`eval`]) is ours, pure and synchronous: it reads samples through a [`Source`]
//! and takes the evaluation time as a parameter. Where it computes what Prometheus computes,
//! it follows Prometheus 2.42 (the version installed here; the conformance test runs against
//! it): range selectors include both ends `[t - range, t]`, an instant selector takes the
//! newest sample within the 5-minute lookback unless that sample is a staleness marker,
//! `rate`/`increase` extrapolate to the range edges and never below zero, `.` in a regex does
//! not match a newline. See FIELD-NOTES and the functions' docs for each rule.

mod eval;
mod functions;
mod labelset;

use std::time::Duration;

use promql_parser::label::Matcher;
use promql_parser::parser::{self, Expr};

pub use eval::{evaluate, EvalError};
pub use labelset::{pair, Label, Pair, SeriesLabels};

use crate::labels::Labels;

/// The label holding a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// How far back an instant selector looks for a sample (Prometheus' default lookback delta).
pub const LOOKBACK: Duration = Duration::from_secs(300);

/// The bit pattern of a staleness marker: a NaN that says "this series ended here".
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker (not any NaN: a sample may be NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN
}

/// A staleness marker value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN)
}

/// One series of a range: its labels (with `__name__`) and `(ms, value)` points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Labels,
    pub value: f64,
}

/// What an expression evaluates to.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    String(String),
}

/// What [`Source::select`] calls with each series: its labels and its points, lent for the
/// call.
pub type EachSeries<'a> = dyn FnMut(SeriesLabels, &[(i64, f64)]) + 'a;

/// Where samples come from: the scrape store, or a test's fixed data.
pub trait Source {
    /// Calls `each` with every series whose labels match all of `matchers`, and its samples
    /// whose time is in `[mint, maxt]` (milliseconds, both ends included) as `(ms, value)`, in
    /// time order, staleness markers included. Series without such samples may be left out.
    /// The points are lent for the call: the evaluator copies what it keeps.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, each: &mut EachSeries<'_>);
}

/// A parsed expression that warden can evaluate.
#[derive(Debug, Clone)]
pub struct Query {
    expr: Expr,
    text: String,
}

impl Query {
    /// Parses `text` and checks that every construct in it is supported; the error names the
    /// construct (`subqueries are not supported`, `function "predict_linear" is not
    /// supported`), or is the parser's message.
    pub fn parse(text: &str) -> Result<Query, String> {
        let expr = parser::parse(text)?;
        check_supported(&expr)?;
        Ok(Query {
            expr,
            text: text.to_string(),
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates the expression at `t_ms` over `source`.
    pub fn eval(&self, source: &dyn Source, t_ms: i64) -> Result<Value, EvalError> {
        evaluate(&self.expr, source, t_ms)
    }

    /// How far back the expression reads: its longest range plus offset, plus the lookback
    /// of instant selectors. A store keeping this much history answers it.
    pub fn reach(&self) -> Duration {
        reach(&self.expr)
    }
}

fn offset_of(offset: &Option<parser::Offset>) -> Duration {
    match offset {
        Some(parser::Offset::Pos(d)) => *d,
        _ => Duration::ZERO,
    }
}

fn reach(expr: &Expr) -> Duration {
    match expr {
        Expr::VectorSelector(vs) => offset_of(&vs.offset) + LOOKBACK,
        Expr::MatrixSelector(ms) => offset_of(&ms.vs.offset) + ms.range,
        Expr::Aggregate(a) => {
            let param = a.param.as_deref().map(reach).unwrap_or_default();
            reach(&a.expr).max(param)
        }
        Expr::Unary(u) => reach(&u.expr),
        Expr::Binary(b) => reach(&b.lhs).max(reach(&b.rhs)),
        Expr::Paren(p) => reach(&p.expr),
        Expr::Call(c) => c
            .args
            .args
            .iter()
            .map(|a| reach(a))
            .max()
            .unwrap_or_default(),
        Expr::Subquery(s) => reach(&s.expr) + s.range + offset_of(&s.offset),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Duration::ZERO,
    }
}

/// The functions the evaluator implements.
pub const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg_over_time",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "deriv",
    "histogram_quantile",
    "increase",
    "irate",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "present_over_time",
    "quantile_over_time",
    "rate",
    "resets",
    "scalar",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "time",
    "timestamp",
    "vector",
];

/// The aggregations the evaluator implements.
pub const AGGREGATIONS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "topk", "bottomk", "quantile", "stddev", "stdvar", "group",
];

fn check_supported(expr: &Expr) -> Result<(), String> {
    match expr {
        Expr::Subquery(_) => Err("subqueries (expr[range:step]) are not supported".into()),
        Expr::Extension(_) => Err("extension expressions are not supported".into()),
        Expr::VectorSelector(vs) => selector_supported(vs),
        Expr::MatrixSelector(ms) => selector_supported(&ms.vs),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Ok(()),
        Expr::Paren(p) => check_supported(&p.expr),
        Expr::Unary(u) => check_supported(&u.expr),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            if op == "atan2" {
                return Err("the atan2 operator is not supported".into());
            }
            check_supported(&b.lhs)?;
            check_supported(&b.rhs)
        }
        Expr::Aggregate(a) => {
            let op = a.op.to_string();
            if !AGGREGATIONS.contains(&op.as_str()) {
                return Err(format!(
                    "aggregation {op:?} is not supported (supported: {})",
                    AGGREGATIONS.join(", ")
                ));
            }
            if let Some(p) = &a.param {
                check_supported(p)?;
            }
            check_supported(&a.expr)
        }
        Expr::Call(c) => {
            if !FUNCTIONS.contains(&c.func.name) {
                return Err(format!(
                    "function {:?} is not supported (supported: {})",
                    c.func.name,
                    FUNCTIONS.join(", ")
                ));
            }
            c.args.args.iter().try_for_each(|a| check_supported(a))
        }
    }
}

fn selector_supported(vs: &parser::VectorSelector) -> Result<(), String> {
    if vs.at.is_some() {
        return Err("the @ modifier is not supported".into());
    }
    if !vs.matchers.or_matchers.is_empty() {
        return Err("`or` inside a selector's braces is not supported".into());
    }
    if matches!(vs.offset, Some(parser::Offset::Neg(_))) {
        return Err("a negative offset is not supported".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
