//! The Prometheus HTTP query API over warden's own series store: `GET /api/v1/query` and
//! `GET /api/v1/query_range`, in Prometheus' response format, so a person, a script or
//! Grafana's Prometheus data source can look at what warden sees.
//!
//! Pure: parameters in, a status code and a JSON body out; the server runs it on the blocking
//! pool and passes the current time. Errors use Prometheus' envelope (`status: "error"`,
//! `errorType` `bad_data` with 400 for a bad request, `execution` with 422 when evaluation
//! failed).

use serde_json::{json, Value as Json};

use crate::labels::Labels;
use crate::promql::{Query, Sample, Series, Source, Value};

/// Prometheus' bound on a range query's points per series.
pub const MAX_POINTS: i64 = 11_000;

/// An answer: the HTTP status and the JSON body.
pub type Answer = (u16, Json);

fn bad_data(message: impl Into<String>) -> Answer {
    (
        400,
        json!({"status": "error", "errorType": "bad_data", "error": message.into()}),
    )
}

fn execution(message: impl Into<String>) -> Answer {
    (
        422,
        json!({"status": "error", "errorType": "execution", "error": message.into()}),
    )
}

/// `application/x-www-form-urlencoded` pairs of a query string, decoded.
pub fn params(
    query: &str,
    decode: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match (decode(k), decode(v)) {
                (Some(k), Some(v)) => Ok((k, v)),
                _ => Err(format!(
                    "query parameter {k:?} is not valid percent-encoded UTF-8"
                )),
            }
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A time as Prometheus takes it: unix seconds (a float) or RFC 3339; in milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() {
            return Ok((secs * 1000.0).round() as i64);
        }
    }
    let t = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("cannot parse {text:?} to a valid timestamp"))?;
    let ms = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    Ok(ms)
}

/// A step or duration: seconds (a float) or Prometheus' duration grammar; in milliseconds.
fn parse_step(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok((secs * 1000.0).round() as i64);
        }
    }
    crate::config::parse_duration(text)
        .ok()
        .filter(|d| !d.is_zero())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .ok_or_else(|| format!("cannot parse {text:?} to a valid duration"))
}

/// Prometheus' number format: shortest form, `NaN`, `+Inf`, `-Inf`.
pub fn format_value(v: f64) -> String {
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

fn seconds(ms: i64) -> Json {
    json!(ms as f64 / 1000.0)
}

fn metric(labels: &Labels) -> Json {
    json!(labels)
}

/// `GET /api/v1/query?query=...&time=...` at `now` (ms) when no time is given.
pub fn instant(params: &[(String, String)], source: &dyn Source, now: i64) -> Answer {
    let Some(text) = param(params, "query") else {
        return bad_data("missing query parameter \"query\"");
    };
    let t = match param(params, "time") {
        None => now,
        Some(t) => match parse_time(t) {
            Ok(t) => t,
            Err(e) => return bad_data(format!("invalid parameter \"time\": {e}")),
        },
    };
    let query = match Query::parse(text) {
        Ok(q) => q,
        Err(e) => return bad_data(e),
    };
    let value = match query.eval(source, t) {
        Ok(v) => v,
        Err(e) => return execution(e.to_string()),
    };
    (
        200,
        json!({"status": "success", "data": value_json(t, &value)}),
    )
}

/// The `data` of an instant query's answer: `resultType` and `result`.
pub fn value_json(t: i64, value: &Value) -> Json {
    match value {
        Value::Scalar(v) => {
            json!({"resultType": "scalar", "result": [seconds(t), format_value(*v)]})
        }
        Value::String(s) => json!({"resultType": "string", "result": [seconds(t), s]}),
        Value::Vector(v) => json!({
            "resultType": "vector",
            "result": v.iter().map(|Sample { labels, value }| json!({
                "metric": metric(labels),
                "value": [seconds(t), format_value(*value)],
            })).collect::<Vec<_>>(),
        }),
        Value::Matrix(m) => json!({"resultType": "matrix", "result": matrix_json(m)}),
    }
}

fn matrix_json(m: &[Series]) -> Vec<Json> {
    m.iter()
        .map(|s| {
            json!({
                "metric": metric(&s.labels),
                "values": s.points.iter().map(|(t, v)| json!([seconds(*t), format_value(*v)])).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// `GET /api/v1/query_range?query=...&start=...&end=...&step=...`: the expression at every
/// step from start to end, each series' values collected.
pub fn range(params: &[(String, String)], source: &dyn Source) -> Answer {
    let Some(text) = param(params, "query") else {
        return bad_data("missing query parameter \"query\"");
    };
    let mut times = [0i64; 2];
    for (i, name) in ["start", "end"].iter().enumerate() {
        match param(params, name).map(parse_time) {
            Some(Ok(t)) => times[i] = t,
            Some(Err(e)) => return bad_data(format!("invalid parameter \"{name}\": {e}")),
            None => return bad_data(format!("missing query parameter \"{name}\"")),
        }
    }
    let [start, end] = times;
    if end < start {
        return bad_data("invalid parameter \"end\": end timestamp must not be before start time");
    }
    let step = match param(params, "step").map(parse_step) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return bad_data(format!("invalid parameter \"step\": {e}")),
        None => return bad_data("missing query parameter \"step\""),
    };
    if (end - start) / step >= MAX_POINTS {
        return bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        );
    }
    let query = match Query::parse(text) {
        Ok(q) => q,
        Err(e) => return bad_data(e),
    };
    let mut series: std::collections::BTreeMap<Labels, Vec<(i64, f64)>> = Default::default();
    let mut scalar = false;
    let mut t = start;
    while t <= end {
        match query.eval(source, t) {
            Ok(Value::Vector(v)) => {
                for s in v {
                    series.entry(s.labels).or_default().push((t, s.value));
                }
            }
            Ok(Value::Scalar(v)) => {
                scalar = true;
                series.entry(Labels::new()).or_default().push((t, v));
            }
            Ok(_) => {
                return bad_data(format!(
                "invalid expression type for range query, must be Scalar or instant Vector: {text}"
            ))
            }
            Err(e) => return execution(e.to_string()),
        }
        t += step;
    }
    let _ = scalar;
    let result: Vec<Series> = series
        .into_iter()
        .map(|(labels, points)| Series { labels, points })
        .collect();
    (
        200,
        json!({"status": "success", "data": {"resultType": "matrix", "result": matrix_json(&result)}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Store;

    fn store() -> Store {
        let mut s = Store::new(std::time::Duration::from_secs(3600));
        let mut l = Labels::new();
        l.insert("__name__".into(), "up".into());
        l.insert("check".into(), "api".into());
        for i in 0..10 {
            s.append(l.clone(), i * 15_000, if i == 5 { 0.0 } else { 1.0 });
        }
        s
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_instant_query_answers_in_prometheus_format() {
        let (code, body) = instant(&p(&[("query", "up"), ("time", "30")]), &store(), 0);
        assert_eq!(code, 200);
        assert_eq!(
            body,
            json!({"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"__name__": "up", "check": "api"}, "value": [30.0, "1"]}
            ]}})
        );
        let (_, body) = instant(&p(&[("query", "1/0")]), &store(), 5_000);
        assert_eq!(body["data"]["result"], json!([5.0, "+Inf"]));
    }

    #[test]
    fn a_range_query_collects_each_step() {
        let (code, body) = range(
            &p(&[
                ("query", "up"),
                ("start", "60"),
                ("end", "90"),
                ("step", "15s"),
            ]),
            &store(),
        );
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            body["data"]["result"][0]["values"],
            json!([[60.0, "1"], [75.0, "0"], [90.0, "1"]])
        );
    }

    #[test]
    fn errors_use_the_prometheus_envelope() {
        let (code, body) = instant(&p(&[("query", "sum(")]), &store(), 0);
        assert_eq!((code, &body["errorType"]), (400, &json!("bad_data")));
        let (code, _) = instant(&p(&[("query", "up"), ("time", "yesterday")]), &store(), 0);
        assert_eq!(code, 400);
        let (code, body) = range(
            &p(&[
                ("query", "up"),
                ("start", "0"),
                ("end", "1000000"),
                ("step", "1"),
            ]),
            &store(),
        );
        assert_eq!(code, 400, "{body}");
        // Two series on the one side: many-to-many, an execution error.
        let (code, body) = instant(
            &p(&[("query", "up / on() (up or vector(1))")]),
            &store(),
            30_000,
        );
        assert_eq!(
            (code, &body["errorType"]),
            (422, &json!("execution")),
            "{body}"
        );
    }
}
