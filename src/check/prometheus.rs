//! `prometheus`: one instant query (`expr`) to a Prometheus server's `/api/v1/query`, its
//! answer read as labelled series.
//!
//! The request is `GET {url}/api/v1/query?query=..&timeout=..` with the check's headers (the
//! server's own `timeout` is the check's, so it stops evaluating when warden stops waiting),
//! over the clients `http` shares, the body read against [`MAX_BODY_BYTES`] as it arrives.
//! The answer ([`parse_answer`], pure):
//! - `"status": "success"` with an instant vector: one row per element, its labels without
//!   `__name__`, its value the sample's (`"NaN"`, `"+Inf"` and `"-Inf"` included); a scalar
//!   answer is one row without labels. A range vector (matrix), a string, a native histogram
//!   sample, two elements with the same labels once `__name__` is dropped or more than
//!   [`MAX_SERIES_ROWS`] elements fail the probe, naming what;
//! - `"status": "error"` (Prometheus answers a bad query 400, a failed evaluation 422, an
//!   unready server 503, each with this JSON body): a `protocol` error carrying the server's
//!   `errorType` and `error` text, so a check's `last_error` says why;
//! - any other non-2xx answer: a `protocol` error with the status.
//!
//! Values: `result` (the rows, a series value; absent when the answer is empty, so its rules
//! read no data as `on_missing`, never as ok) and `result_series` (how many), besides `up`
//! and `duration_seconds`. A refused connection is `connect`, no answer in time `timeout`:
//! rules map every failure to `on_error` (unknown by default).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::http::{classify, read_body, ClientSettings, Connections, HttpClients, Target};
use super::{Probe, ProbeError, ProbeErrorKind, Reading, Values};
use crate::config::{PrometheusCheck, MAX_SERIES_ROWS};
use crate::labels::{self, Labels};
use crate::promql::METRIC_NAME;
use crate::secret::redact_url;

/// An answer is read into memory up to this: 1,000 series of 30 labels each come to well
/// under 1 MiB, so a larger answer is a query far past what a rule can take.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub struct PrometheusProbe {
    connections: Connections,
    spec: PrometheusCheck,
    /// `{url}/api/v1/query`
    endpoint: String,
    /// The server's own evaluation timeout: the check's, as a Prometheus duration.
    server_timeout: String,
    /// The base URL without credentials, for messages.
    shown_url: String,
}

impl PrometheusProbe {
    pub fn with_clients(
        spec: &PrometheusCheck,
        timeout: Duration,
        interval: Duration,
        clients: &mut HttpClients,
    ) -> Result<Self, ProbeError> {
        let endpoint = format!("{}/api/v1/query", spec.url);
        let connections = clients.connections(
            ClientSettings {
                timeout,
                tls_verify: spec.tls_verify,
                ca_file: spec.ca_file.clone(),
                follow_redirects: false,
            },
            &Target {
                url: &endpoint,
                interval,
                idempotent: true,
            },
        )?;
        Ok(PrometheusProbe {
            connections,
            endpoint,
            server_timeout: format!("{}ms", timeout.as_millis().max(1)),
            shown_url: redact_url(&spec.url),
            spec: spec.clone(),
        })
    }

    fn fail(&self, kind: ProbeErrorKind, what: impl std::fmt::Display) -> ProbeError {
        ProbeError::new(kind, format!("query {}: {what}", self.shown_url))
    }
}

impl Probe for PrometheusProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        self.read().await.map(|r| r.values)
    }

    async fn read(&self) -> Result<Reading, ProbeError> {
        let request = |client: &reqwest::Client| {
            let mut request = client
                .get(&self.endpoint)
                .query(&[
                    ("query", self.spec.expr.as_str()),
                    ("timeout", self.server_timeout.as_str()),
                ])
                .header("accept", "application/json");
            for (name, value) in &self.spec.headers {
                request = request.header(name.as_str(), value.expose());
            }
            request
        };
        let shown = format!("{}/api/v1/query", self.shown_url);
        let mut response = self
            .connections
            .send(request)
            .await
            .map_err(|e| classify(&e, "GET", &shown))?;
        let status = response.status().as_u16();
        let too_large = || format!("answer larger than {MAX_BODY_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(self.fail(ProbeErrorKind::BadBody, too_large()));
        }
        let body = match read_body(&mut response, MAX_BODY_BYTES, true).await {
            Ok(body) => body,
            Err(None) => return Err(self.fail(ProbeErrorKind::BadBody, too_large())),
            Err(Some(e)) => return Err(classify(&e, "GET", &shown)),
        };
        let rows = parse_answer(status, &body).map_err(|(kind, what)| self.fail(kind, what))?;
        let mut values = Values::new();
        values.insert("result_series".into(), rows.len() as f64);
        let mut reading = Reading::from(values);
        // An empty answer is no data, not "no series": without `result` its rules read a
        // missing value (`on_missing`), as an `expr` rule's empty result does.
        if !rows.is_empty() {
            reading.vectors.insert("result".into(), rows);
        }
        Ok(reading)
    }
}

/// The `/api/v1/query` envelope.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Vector(Vec<Element>),
    Scalar(Point),
    Matrix(IgnoredAny),
    String(IgnoredAny),
}

/// One element of an instant vector: a float sample (`value`) or a native histogram.
#[derive(Deserialize)]
struct Element {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: Option<Point>,
    histogram: Option<IgnoredAny>,
}

/// `[<unix seconds>, "<value>"]`
#[derive(Deserialize)]
struct Point(#[allow(dead_code)] IgnoredAny, String);

/// The rows of an answer with HTTP status `status` and body `body`, or the error kind and
/// what went wrong (see the module doc).
pub fn parse_answer(
    status: u16,
    body: &[u8],
) -> Result<Vec<(Labels, f64)>, (ProbeErrorKind, String)> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if !(200..300).contains(&status) => {
            return Err((
                ProbeErrorKind::Protocol,
                format!("status {status}, expected 2xx"),
            ))
        }
        Err(e) => {
            return Err((
                ProbeErrorKind::BadBody,
                format!("answer is not a Prometheus API response: {e}"),
            ))
        }
    };
    if envelope.status != "success" {
        let error_type = envelope.error_type.as_deref().unwrap_or("error");
        let error = envelope.error.as_deref().unwrap_or("(no error text)");
        return Err((
            ProbeErrorKind::Protocol,
            format!("status {status}: {error_type}: {error}"),
        ));
    }
    if !(200..300).contains(&status) {
        return Err((
            ProbeErrorKind::Protocol,
            format!("status {status}, expected 2xx"),
        ));
    }
    let bad = |what: String| Err((ProbeErrorKind::BadBody, what));
    match envelope.data {
        None => bad("answer has no data".into()),
        Some(Data::Scalar(point)) => Ok(vec![(Labels::new(), number(&point.1)?)]),
        Some(Data::Matrix(_)) => Err((
            ProbeErrorKind::Protocol,
            "the expression gave a range vector (matrix); it must give an instant vector or a \
             scalar"
                .into(),
        )),
        Some(Data::String(_)) => Err((
            ProbeErrorKind::Protocol,
            "the expression gave a string; it must give an instant vector or a scalar".into(),
        )),
        Some(Data::Vector(elements)) => {
            if elements.len() > MAX_SERIES_ROWS {
                return bad(format!(
                    "the answer has {} series, more than {MAX_SERIES_ROWS}",
                    elements.len()
                ));
            }
            let mut rows: Vec<(Labels, f64)> = Vec::with_capacity(elements.len());
            let mut seen = std::collections::HashSet::new();
            for mut element in elements {
                element.metric.remove(METRIC_NAME);
                let labels = element.metric;
                let value = match (&element.value, &element.histogram) {
                    (Some(point), _) => number(&point.1)?,
                    (None, Some(_)) => {
                        return bad(format!(
                            "{} is a native histogram sample; the expression must give float \
                             samples",
                            shown(&labels)
                        ))
                    }
                    (None, None) => return bad(format!("{} has no value", shown(&labels))),
                };
                if !seen.insert(labels.clone()) {
                    return bad(format!(
                        "two series are {} once __name__ is dropped; aggregate or relabel them \
                         apart",
                        shown(&labels)
                    ));
                }
                rows.push((labels, value));
            }
            Ok(rows)
        }
    }
}

/// A label set for a message: `{}` for the empty one.
fn shown(labels: &Labels) -> String {
    match labels::render(labels) {
        s if s.is_empty() => "{}".into(),
        s => s,
    }
}

/// A sample value as Prometheus' API writes it: a Go float (`"1.5"`, `"1e+06"`, `"NaN"`,
/// `"+Inf"`, `"-Inf"`).
fn number(text: &str) -> Result<f64, (ProbeErrorKind, String)> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().map_err(|_| {
            (
                ProbeErrorKind::BadBody,
                format!(
                    "sample value {:?} is not a number",
                    text.chars().take(64).collect::<String>()
                ),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(status: u16, body: &str) -> Result<Vec<(Labels, f64)>, (ProbeErrorKind, String)> {
        parse_answer(status, body.as_bytes())
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_vector_is_one_row_per_element_without_the_metric_name() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"queue_depth","queue":"a"},"value":[1700000000.123,"7"]},
            {"metric":{"__name__":"queue_depth","queue":"b"},"value":[1700000000.123,"1.5e+00"]}
        ]}}"#;
        assert_eq!(
            rows(200, body).unwrap(),
            vec![
                (labels(&[("queue", "a")]), 7.0),
                (labels(&[("queue", "b")]), 1.5)
            ]
        );
    }

    #[test]
    fn an_empty_vector_is_no_row() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(rows(200, body).unwrap(), vec![]);
    }

    #[test]
    fn a_scalar_is_one_unlabelled_row() {
        let body =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"42"]}}"#;
        assert_eq!(rows(200, body).unwrap(), vec![(Labels::new(), 42.0)]);
    }

    #[test]
    fn nan_and_infinities_are_read_as_go_writes_them() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"x":"nan"},"value":[1,"NaN"]},
            {"metric":{"x":"pos"},"value":[1,"+Inf"]},
            {"metric":{"x":"neg"},"value":[1,"-Inf"]}
        ]}}"#;
        let got = rows(200, body).unwrap();
        assert!(got[0].1.is_nan());
        assert_eq!(got[1].1, f64::INFINITY);
        assert_eq!(got[2].1, f64::NEG_INFINITY);
    }

    #[test]
    fn an_error_envelope_carries_the_server_s_text() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected end of input"}"#;
        assert_eq!(
            rows(400, body).unwrap_err(),
            (
                ProbeErrorKind::Protocol,
                "status 400: bad_data: invalid parameter \"query\": 1:5: parse error: unexpected \
                 end of input"
                    .into()
            )
        );
    }

    #[test]
    fn a_range_vector_or_a_string_is_refused() {
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]}}"#;
        let (kind, what) = rows(200, matrix).unwrap_err();
        assert_eq!(kind, ProbeErrorKind::Protocol);
        assert!(what.contains("range vector (matrix)"), "{what}");
        let string = r#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#;
        let (kind, what) = rows(200, string).unwrap_err();
        assert_eq!(kind, ProbeErrorKind::Protocol);
        assert!(what.contains("gave a string"), "{what}");
    }

    #[test]
    fn a_non_api_answer_names_the_status_or_the_body() {
        assert_eq!(
            rows(502, "<html>bad gateway</html>").unwrap_err(),
            (ProbeErrorKind::Protocol, "status 502, expected 2xx".into())
        );
        let (kind, what) = rows(200, "<html>a login page</html>").unwrap_err();
        assert_eq!(kind, ProbeErrorKind::BadBody);
        assert!(
            what.starts_with("answer is not a Prometheus API response"),
            "{what}"
        );
        let (kind, what) = rows(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"many"]}]}}"#,
        )
        .unwrap_err();
        assert_eq!(kind, ProbeErrorKind::BadBody);
        assert_eq!(what, r#"sample value "many" is not a number"#);
    }

    #[test]
    fn series_equal_without_their_names_or_too_many_are_refused() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"a","job":"x"},"value":[1,"1"]},
            {"metric":{"__name__":"b","job":"x"},"value":[1,"2"]}
        ]}}"#;
        let (kind, what) = rows(200, body).unwrap_err();
        assert_eq!(kind, ProbeErrorKind::BadBody);
        assert!(
            what.starts_with(r#"two series are {job="x"} once __name__"#),
            "{what}"
        );

        let elements: Vec<String> = (0..=MAX_SERIES_ROWS)
            .map(|i| format!(r#"{{"metric":{{"i":"{i}"}},"value":[1,"1"]}}"#))
            .collect();
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            elements.join(",")
        );
        let (kind, what) = rows(200, &body).unwrap_err();
        assert_eq!(kind, ProbeErrorKind::BadBody);
        assert!(what.contains("more than 1000"), "{what}");
    }

    #[test]
    fn a_native_histogram_sample_is_refused() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"le":"x"},"histogram":[1,{"count":"1","sum":"1","buckets":[]}]}]}}"#;
        let (kind, what) = rows(200, body).unwrap_err();
        assert_eq!(kind, ProbeErrorKind::BadBody);
        assert!(what.contains("native histogram"), "{what}");
    }
}
