//! `http`: one request, then status, body size, JSON assertions and extracted values.
//!
//! Values: `status_code`, plus one per `extract` entry (numbers as is, booleans as 1/0).
//! A failed assertion is an `assertion` error whose message prints the resolved value, so the
//! failure explains itself: `components.database == "healthy": got "degraded"`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::{CmpOp, HttpCheck, JsonAssertion, JsonPath, PathSegment};
use crate::secret::redact_url;

pub struct HttpProbe {
    client: reqwest::Client,
    spec: HttpCheck,
    method: reqwest::Method,
    /// The URL with credentials removed, for messages.
    shown_url: String,
}

/// The settings a reqwest client is built from; checks that agree on them share a client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientSettings {
    pub timeout: Duration,
    pub tls_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub follow_redirects: bool,
}

/// The HTTP clients of one config generation, one per distinct [`ClientSettings`].
///
/// A reqwest client owns a rustls config with its own root store and a connection pool:
/// about 16 KB before it connects anywhere. One per check cost 160 MB at 10,000 checks; one
/// per setting costs that once. Sharing changes nothing a probe sees: each probe opens its
/// own connection (no idle ones are kept), so checks of different targets never share a
/// connection, and each request still carries its check's own headers and body.
#[derive(Default)]
pub struct HttpClients {
    clients: HashMap<ClientSettings, reqwest::Client>,
}

impl HttpClients {
    pub(super) fn get(&mut self, settings: ClientSettings) -> Result<reqwest::Client, ProbeError> {
        if let Some(client) = self.clients.get(&settings) {
            return Ok(client.clone());
        }
        let client = build_client(&settings)?;
        self.clients.insert(settings, client.clone());
        Ok(client)
    }

    /// Distinct clients built so far.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

fn build_client(settings: &ClientSettings) -> Result<reqwest::Client, ProbeError> {
    let setup = |msg: String| ProbeError::new(ProbeErrorKind::Setup, msg);
    let redirect = if settings.follow_redirects {
        reqwest::redirect::Policy::limited(10)
    } else {
        reqwest::redirect::Policy::none()
    };
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .redirect(redirect)
        .no_proxy()
        // A fresh connection per probe, closed after it. Keeping one idle connection per
        // target held a descriptor and ~24 KB per check: 10,000 checks took 10,000 fds and
        // 240 MB, and past `ulimit -n` every probe and warden's own /healthz failed with
        // EMFILE. A fresh connection also tests what a health check should (the target
        // still accepts connections) and never races a server closing an idle one.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!settings.tls_verify);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| setup(format!("read ca_file {}: {e}", path.display())))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| setup(format!("parse ca_file {}: {e}", path.display())))?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| setup(format!("build http client: {e}")))
}

impl HttpProbe {
    /// A probe with a client of its own (for a single check; see [`HttpClients`]).
    pub fn new(spec: &HttpCheck, timeout: Duration) -> Result<Self, ProbeError> {
        Self::with_clients(spec, timeout, &mut HttpClients::default())
    }

    /// A probe sharing a client from `clients` with every check of the same settings.
    pub fn with_clients(
        spec: &HttpCheck,
        timeout: Duration,
        clients: &mut HttpClients,
    ) -> Result<Self, ProbeError> {
        let shown_url = redact_url(&spec.url);
        let client = clients.get(ClientSettings {
            timeout,
            tls_verify: spec.tls_verify,
            ca_file: spec.ca_file.clone(),
            follow_redirects: spec.follow_redirects,
        })?;
        let method = reqwest::Method::from_bytes(spec.method.as_bytes()).map_err(|_| {
            ProbeError::new(
                ProbeErrorKind::Setup,
                format!("invalid method {:?}", spec.method),
            )
        })?;
        Ok(HttpProbe {
            client,
            spec: spec.clone(),
            method,
            shown_url,
        })
    }

    fn classify(&self, err: &reqwest::Error) -> ProbeError {
        classify(err, self.method.as_str(), &self.shown_url)
    }
}

/// A request's error as a probe error: its kind, and the source chain on the redacted URL
/// (reqwest's own Display includes the URL as given).
pub(super) fn classify(err: &reqwest::Error, method: &str, shown_url: &str) -> ProbeError {
    {
        let kind = if err.is_timeout() {
            ProbeErrorKind::Timeout
        } else if super::is_tls_failure(err) {
            ProbeErrorKind::Tls
        } else if err.is_connect() {
            ProbeErrorKind::Connect
        } else if err.is_body() || err.is_decode() {
            ProbeErrorKind::BadBody
        } else {
            ProbeErrorKind::Protocol
        };
        // reqwest's Display includes the URL; print the source chain on our redacted URL instead.
        let mut msg = format!("{method} {shown_url}");
        let mut source = std::error::Error::source(err);
        if source.is_none() {
            msg.push_str(": request failed");
        }
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&redact_url(&s.to_string()));
            source = s.source();
        }
        ProbeError::new(kind, msg)
    }
}

impl Probe for HttpProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        let mut request = self.client.request(self.method.clone(), &self.spec.url);
        for (name, value) in &self.spec.headers {
            request = request.header(name.as_str(), value.expose());
        }
        if let Some(body) = &self.spec.body {
            request = request.body(body.clone());
        }
        let mut response = request.send().await.map_err(|e| self.classify(&e))?;
        let status = response.status().as_u16();
        let mut values = Values::new();
        values.insert("status_code".into(), f64::from(status));

        let status_ok = if self.spec.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.spec.expect_status.contains(&status)
        };
        if !status_ok {
            let expected = if self.spec.expect_status.is_empty() {
                "2xx".to_string()
            } else {
                format!("{:?}", self.spec.expect_status)
            };
            return Err(ProbeError::new(
                ProbeErrorKind::Protocol,
                format!(
                    "{} {}: status {status}, expected {expected}",
                    self.method, self.shown_url
                ),
            )
            .with_values(values));
        }

        // The body is read chunk by chunk against the limit and kept only when assertions or
        // extracted values need it: an endless body ends the probe at the limit, and memory
        // never exceeds the limit, however large it is set.
        let limit = self.spec.max_body_bytes;
        let too_large = || {
            ProbeError::new(
                ProbeErrorKind::BadBody,
                format!(
                    "{} {}: body larger than max_body_bytes ({limit})",
                    self.method, self.shown_url
                ),
            )
            .with_values(values.clone())
        };
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let keep = !self.spec.assertions.is_empty() || !self.spec.extract.is_empty();
        let body = match read_body(&mut response, limit, keep).await {
            Ok(body) => body,
            Err(None) => return Err(too_large()),
            Err(Some(e)) => return Err(self.classify(&e).with_values(values)),
        };
        if !keep {
            return Ok(values);
        }
        let doc: Json = serde_json::from_slice(&body).map_err(|e| {
            ProbeError::new(
                ProbeErrorKind::BadBody,
                format!("{} {}: body is not JSON: {e}", self.method, self.shown_url),
            )
            .with_values(values.clone())
        })?;
        for (name, path) in &self.spec.extract {
            if let Some(v) = lookup(&doc, path).and_then(as_number) {
                values.insert(name.clone(), v);
            }
        }
        let failures: Vec<String> = self
            .spec
            .assertions
            .iter()
            .filter_map(|a| check_assertion(a, &doc).err())
            .collect();
        if failures.is_empty() {
            Ok(values)
        } else {
            Err(ProbeError::new(
                ProbeErrorKind::Assertion,
                format!(
                    "{} {}: {}",
                    self.method,
                    self.shown_url,
                    failures.join("; ")
                ),
            )
            .with_values(values))
        }
    }
}

/// Reads `response`'s body chunk by chunk against `limit`, keeping it only when `keep`:
/// `Err(None)` when it is larger than `limit` (the rest is never read), `Err(Some(e))` when
/// the transfer failed.
pub(super) async fn read_body(
    response: &mut reqwest::Response,
    limit: usize,
    keep: bool,
) -> Result<Vec<u8>, Option<reqwest::Error>> {
    let mut body = Vec::new();
    let mut read = 0usize;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read = read.saturating_add(chunk.len());
                if read > limit {
                    return Err(None);
                }
                if keep {
                    append_bounded(&mut body, &chunk, limit);
                }
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(Some(e)),
        }
    }
}

/// Appends `chunk` to `body`, whose length plus `chunk`'s is at most `limit`. The capacity
/// doubles as usual but never past `limit`: `Vec`'s own growth would reserve up to twice what
/// the body holds, past any limit; nothing is reserved up front either.
fn append_bounded(body: &mut Vec<u8>, chunk: &[u8], limit: usize) {
    let needed = body.len() + chunk.len();
    if needed > body.capacity() {
        let grown = needed.max(body.capacity().saturating_mul(2)).min(limit);
        body.reserve_exact(grown.max(needed) - body.len());
    }
    body.extend_from_slice(chunk);
}

/// Follows `path` into `doc`.
pub fn lookup<'a>(doc: &'a Json, path: &JsonPath) -> Option<&'a Json> {
    path.segments
        .iter()
        .try_fold(doc, |node, seg| match (seg, node) {
            (PathSegment::Key(k), Json::Object(map)) => map.get(k),
            (PathSegment::Index(i), Json::Array(items)) => items.get(*i),
            _ => None,
        })
}

fn as_number(v: &Json) -> Option<f64> {
    match v {
        Json::Number(n) => n.as_f64(),
        Json::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    }
}

/// Evaluates one assertion; the error names the assertion and what was found instead.
pub fn check_assertion(assertion: &JsonAssertion, doc: &Json) -> Result<(), String> {
    let Some(actual) = lookup(doc, &assertion.path) else {
        return Err(format!(
            "{}: {} not found",
            assertion.text, assertion.path.text
        ));
    };
    let holds = match assertion.op {
        CmpOp::Eq => json_eq(actual, &assertion.expected),
        CmpOp::Ne => !json_eq(actual, &assertion.expected),
        op => match (actual.as_f64(), assertion.expected.as_f64()) {
            (Some(a), Some(b)) => op.compare_f64(a, b),
            _ => false,
        },
    };
    if holds {
        Ok(())
    } else {
        Err(format!("{}: got {}", assertion.text, short_json(actual)))
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn short_json(v: &Json) -> String {
    let mut s = v.to_string();
    if s.len() > 80 {
        let mut cut = 77;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(text: &str) -> JsonPath {
        let segments = text
            .split('.')
            .map(|part| match part.parse::<usize>() {
                Ok(i) => PathSegment::Index(i),
                Err(_) => PathSegment::Key(part.to_string()),
            })
            .collect();
        JsonPath {
            text: text.into(),
            segments,
        }
    }

    fn assertion(p: &str, op: CmpOp, expected: Json) -> JsonAssertion {
        JsonAssertion {
            text: format!("{p} {} {expected}", op.symbol()),
            path: path(p),
            op,
            expected,
        }
    }

    #[test]
    fn assertions_explain_themselves() {
        let doc = json!({
            "status": "healthy",
            "model_loaded": true,
            "components": {"database": "degraded"},
            "queue": {"depth": 12},
            "items": [{"ok": false}]
        });
        let cases = [
            (assertion("status", CmpOp::Eq, json!("healthy")), Ok(())),
            (assertion("model_loaded", CmpOp::Eq, json!(true)), Ok(())),
            (
                assertion("components.database", CmpOp::Eq, json!("healthy")),
                Err(r#"components.database == "healthy": got "degraded""#.to_string()),
            ),
            (assertion("queue.depth", CmpOp::Lt, json!(100)), Ok(())),
            (assertion("queue.depth", CmpOp::Eq, json!(12.0)), Ok(())),
            (
                assertion("queue.depth", CmpOp::Gt, json!(20)),
                Err("queue.depth > 20: got 12".to_string()),
            ),
            (
                assertion("status", CmpOp::Gt, json!(1)),
                Err(r#"status > 1: got "healthy""#.to_string()),
            ),
            (assertion("items.0.ok", CmpOp::Ne, json!(true)), Ok(())),
            (
                assertion("missing.field", CmpOp::Eq, json!(1)),
                Err("missing.field == 1: missing.field not found".to_string()),
            ),
        ];
        for (a, expected) in cases {
            assert_eq!(check_assertion(&a, &doc), expected, "{}", a.text);
        }
    }

    /// Issue 12: a body is kept within its limit, never reserved past it.
    #[test]
    fn a_kept_body_never_reserves_past_its_limit() {
        for limit in [1, 1000, 10_001, 48 * 1024 * 1024 + 7] {
            let mut body = Vec::new();
            let chunk = vec![b'x'; 8192.min(limit)];
            while body.len() + chunk.len() <= limit {
                append_bounded(&mut body, &chunk, limit);
                assert!(
                    body.capacity() <= limit,
                    "limit {limit}: capacity {} at length {}",
                    body.capacity(),
                    body.len()
                );
            }
            let rest = limit - body.len();
            append_bounded(&mut body, &chunk[..rest], limit);
            assert_eq!((body.len(), body.capacity()), (limit, limit));
        }
    }

    #[test]
    fn numbers_and_bools_extract_as_values() {
        let doc = json!({"a": {"b": 2.5}, "up": false, "s": "x"});
        assert_eq!(lookup(&doc, &path("a.b")).and_then(as_number), Some(2.5));
        assert_eq!(lookup(&doc, &path("up")).and_then(as_number), Some(0.0));
        assert_eq!(lookup(&doc, &path("s")).and_then(as_number), None);
        assert_eq!(lookup(&doc, &path("nope")), None);
    }
}
