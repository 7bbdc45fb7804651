//! `http`: one request, then status, body size, JSON assertions and extracted values.
//!
//! Values: `status_code`, plus one per `extract` entry (numbers as is, booleans as 1/0).
//! A failed assertion is an `assertion` error whose message prints the resolved value, so the
//! failure explains itself: `components.database == "healthy": got "degraded"`.
//!
//! Connections ([`HttpClients`], shared with `scrape` and `prometheus`): a check run at most
//! [`KEEP_ALIVE_MAX_INTERVAL`] apart whose request may be sent twice keeps one connection to
//! its origin between probes, while the process-wide [`KeepAlive`] has a place for that
//! origin (`[defaults] keep_alive_targets`, at most half the descriptor limit); every other
//! probe opens a fresh connection and closes it. So descriptors are bounded by the places
//! plus the probes in flight, and a target holding a place pays no connect per probe. A kept
//! connection the target closed under a request is retried once on a fresh one, and every
//! [`FRESH_CONNECTION_EVERY`] a kept check connects anew anyway, so a target that no longer
//! accepts connections still fails.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value as Json;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::{CmpOp, HttpCheck, JsonAssertion, JsonPath, PathSegment};
use crate::secret::redact_url;

pub struct HttpProbe {
    connections: Connections,
    spec: HttpCheck,
    method: reqwest::Method,
    /// The URL with credentials removed, for messages.
    shown_url: String,
}

/// How long a kept connection may sit idle in its pool before warden closes it.
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(90);
/// Checks that run at most this far apart keep their connection between probes; a check that
/// runs less often would find it closed (by warden's [`KEEP_ALIVE_IDLE`], or by the target or a
/// firewall before that), so it connects anew every time.
pub const KEEP_ALIVE_MAX_INTERVAL: Duration = Duration::from_secs(60);
/// A check that keeps its connection still probes over a fresh one at least this often, so a
/// target that stops accepting connections, or serves a new certificate that does not
/// verify, fails within this time even while its kept connection still answers.
pub const FRESH_CONNECTION_EVERY: Duration = Duration::from_secs(300);

/// The settings a reqwest client is built from; checks that agree on them share a client.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct ClientSettings {
    pub timeout: Duration,
    pub tls_verify: bool,
    pub ca_file: Option<PathBuf>,
    pub follow_redirects: bool,
}

/// What decides whether a check's probes may reuse a connection: where they go, how often,
/// and whether a request may be sent twice.
pub(super) struct Target<'a> {
    pub url: &'a str,
    pub interval: Duration,
    /// The request may be sent again when a kept connection closed under it (an idempotent
    /// method: GET, HEAD, PUT, DELETE, OPTIONS, TRACE). Other requests never go over a kept
    /// connection: one that raced the target closing it could not be retried safely.
    pub idempotent: bool,
}

/// How many targets may keep a connection open between probes, process-wide: each kept
/// connection holds a descriptor and about 24 KB (hyper's buffers and connection task) while
/// idle. Shared by every config generation's [`HttpClients`]; a target takes a place at its
/// first probe and gives it back when its probes are dropped (a reload that changes or
/// removes its checks), so the places move to the targets of the new config.
#[derive(Clone)]
pub struct KeepAlive(Arc<Places>);

struct Places {
    total: usize,
    taken: AtomicUsize,
}

impl KeepAlive {
    /// Room for `total` kept connections; 0: every probe connects anew.
    pub fn new(total: usize) -> Self {
        KeepAlive(Arc::new(Places {
            total,
            taken: AtomicUsize::new(0),
        }))
    }

    /// No kept connections at all.
    pub fn none() -> Self {
        Self::new(0)
    }

    pub fn total(&self) -> usize {
        self.0.total
    }

    /// Places taken now.
    pub fn taken(&self) -> usize {
        self.0.taken.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<Place> {
        let places = &self.0;
        places
            .taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < places.total).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(self.0.clone()))
    }
}

/// Descriptors the kept connections always leave to everything else: warden's listener and
/// its clients, the state file, log and hook pipes.
pub const DESCRIPTOR_RESERVE: u64 = 64;

/// The places for kept connections when `configured` are asked for under a descriptor limit
/// of `limit` (the soft `RLIMIT_NOFILE`; `None`: unlimited): at most half the limit less
/// [`DESCRIPTOR_RESERVE`], so probes in flight (a fresh connection each), warden's own server
/// and its state file always find a descriptor, whatever the kept ones hold.
pub fn keep_alive_bound(configured: usize, limit: Option<u64>) -> usize {
    match limit {
        None => configured,
        Some(limit) => {
            let room = (limit / 2).saturating_sub(DESCRIPTOR_RESERVE);
            configured.min(usize::try_from(room).unwrap_or(usize::MAX))
        }
    }
}

/// One taken place of a [`KeepAlive`]; given back when dropped.
struct Place(Arc<Places>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One origin (scheme, host, port) of one keep-alive client: its pool keeps at most one idle
/// connection there, so the checks of that origin and setting share one place. (A check that
/// follows a redirect to another origin may leave one idle there too, outside the count.)
struct Lane {
    keep_alive: KeepAlive,
    place: OnceLock<Place>,
}

impl Lane {
    /// Whether this origin keeps its connection: it holds a place, or takes one now.
    fn kept(&self) -> bool {
        if self.place.get().is_some() {
            return true;
        }
        match self.keep_alive.take() {
            Some(place) => {
                // Another probe of this origin may have set it meanwhile: this place then
                // drops, given back at once.
                let _ = self.place.set(place);
                true
            }
            None => false,
        }
    }
}

/// The HTTP clients of one config generation: per distinct [`ClientSettings`], one that opens
/// a fresh connection per request and closes it after, and one that keeps one idle connection
/// per origin (for checks that may keep one, see [`HttpClients::connections`]).
///
/// A reqwest client owns a rustls config with its own root store and a connection pool:
/// about 16 KB before it connects anywhere. One per check cost 160 MB at 10,000 checks; one
/// per setting costs that once. Sharing changes nothing a probe sees: a kept connection only
/// ever carries the requests of its own origin (checks of different targets never share a
/// connection), and each request still carries its check's own headers and body.
///
/// A kept connection lives in its client's pool, not in a probe: it closes after
/// [`KEEP_ALIVE_IDLE`] unused, when the target closes it, or when the client is dropped with
/// the last probe of its generation (a reload drops the pools of the checks it replaced).
pub struct HttpClients {
    keep_alive: KeepAlive,
    fresh: HashMap<ClientSettings, reqwest::Client>,
    kept: HashMap<ClientSettings, reqwest::Client>,
    lanes: HashMap<(ClientSettings, String), Arc<Lane>>,
}

impl Default for HttpClients {
    /// Clients that never keep a connection.
    fn default() -> Self {
        Self::new(&KeepAlive::none())
    }
}

impl HttpClients {
    /// Clients whose kept connections take their places from `keep_alive`.
    pub fn new(keep_alive: &KeepAlive) -> Self {
        HttpClients {
            keep_alive: keep_alive.clone(),
            fresh: HashMap::new(),
            kept: HashMap::new(),
            lanes: HashMap::new(),
        }
    }

    /// What the probes of `target` send their requests over. A check that runs at most
    /// [`KEEP_ALIVE_MAX_INTERVAL`] apart with an idempotent request may keep its connection,
    /// while [`KeepAlive`] has room (decided at each probe until its origin holds a place);
    /// every other probe connects anew.
    pub(super) fn connections(
        &mut self,
        settings: ClientSettings,
        target: &Target<'_>,
    ) -> Result<Connections, ProbeError> {
        let timeout = settings.timeout;
        let fresh = client(&mut self.fresh, settings.clone(), Pool::Fresh)?;
        let origin = reqwest::Url::parse(target.url)
            .ok()
            .map(|url| url.origin().ascii_serialization());
        let eligible = self.keep_alive.total() > 0
            && target.idempotent
            && !target.interval.is_zero()
            && target.interval <= KEEP_ALIVE_MAX_INTERVAL;
        let kept = match origin {
            Some(origin) if eligible => {
                let client = client(&mut self.kept, settings.clone(), Pool::Kept)?;
                let keep_alive = &self.keep_alive;
                let lane = self
                    .lanes
                    .entry((settings, origin))
                    .or_insert_with(|| {
                        Arc::new(Lane {
                            keep_alive: keep_alive.clone(),
                            place: OnceLock::new(),
                        })
                    })
                    .clone();
                let every = FRESH_CONNECTION_EVERY.as_secs_f64() / target.interval.as_secs_f64();
                Some(Kept {
                    client,
                    lane,
                    fresh_every: (every.ceil() as u64).max(2),
                    runs: AtomicU64::new(0),
                })
            }
            _ => None,
        };
        Ok(Connections {
            fresh,
            kept,
            timeout,
        })
    }

    /// Distinct clients built so far (fresh and keep-alive ones).
    pub fn len(&self) -> usize {
        self.fresh.len() + self.kept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.kept.is_empty()
    }
}

/// What one check's requests go over: a fresh connection each, or, when the check may keep
/// one and its origin holds a place, the kept connection of its origin.
pub(super) struct Connections {
    fresh: reqwest::Client,
    kept: Option<Kept>,
    /// The client's request timeout: a second try gets what is left of it.
    timeout: Duration,
}

struct Kept {
    client: reqwest::Client,
    lane: Arc<Lane>,
    /// Every `fresh_every`-th probe goes over a fresh connection ([`FRESH_CONNECTION_EVERY`]).
    fresh_every: u64,
    runs: AtomicU64,
}

impl Connections {
    /// Sends the request `build` makes on the client this probe goes over. A request sent
    /// over a kept connection that failed because the connection closed under it (the target
    /// closed it as idle just as the request went out: no answer, a reset, a broken pipe) is
    /// sent once more over a fresh connection, within what is left of the timeout: a target
    /// that times out idle connections is not reported down for it.
    pub(super) async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let Some(kept) = self.kept.as_ref().filter(|k| k.now()) else {
            return build(&self.fresh).send().await;
        };
        let started = tokio::time::Instant::now();
        match build(&kept.client).send().await {
            Err(e) if closed_under_request(&e) => {
                let left = self.timeout.saturating_sub(started.elapsed());
                build(&self.fresh).timeout(left).send().await
            }
            sent => sent,
        }
    }

    /// Whether this probe's next request would go over a kept connection (for tests).
    #[cfg(test)]
    fn keeps(&self) -> bool {
        self.kept.is_some()
    }
}

impl Kept {
    /// Whether this run goes over the kept connection: not every `fresh_every`-th run, and
    /// only while the origin holds a place.
    fn now(&self) -> bool {
        let run = self.runs.fetch_add(1, Ordering::Relaxed) + 1;
        !run.is_multiple_of(self.fresh_every) && self.lane.kept()
    }
}

/// Whether `err` says the connection closed under the request, before any answer: hyper's
/// "connection closed before message completed", or a reset, abort or broken pipe. Never a
/// timeout: the time is spent.
fn closed_under_request(err: &reqwest::Error) -> bool {
    if err.is_timeout() {
        return false;
    }
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if e.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

#[derive(Clone, Copy)]
enum Pool {
    /// No idle connection is kept: each request opens its own and closes it after.
    Fresh,
    /// At most one idle connection per origin, closed after [`KEEP_ALIVE_IDLE`] unused.
    Kept,
}

fn client(
    clients: &mut HashMap<ClientSettings, reqwest::Client>,
    settings: ClientSettings,
    pool: Pool,
) -> Result<reqwest::Client, ProbeError> {
    if let Some(client) = clients.get(&settings) {
        return Ok(client.clone());
    }
    let client = build_client(&settings, pool)?;
    clients.insert(settings, client.clone());
    Ok(client)
}

fn build_client(settings: &ClientSettings, pool: Pool) -> Result<reqwest::Client, ProbeError> {
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
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(!settings.tls_verify);
    builder = match pool {
        // Keeping an idle connection per target for every check held a descriptor and ~24 KB
        // per check: 10,000 checks took 10,000 descriptors and 240 MB, and past `ulimit -n`
        // every probe and warden's own /healthz failed with EMFILE. So only the checks that
        // hold a place of the bounded [`KeepAlive`] keep one; the rest connect anew each time.
        Pool::Fresh => builder.pool_max_idle_per_host(0),
        Pool::Kept => builder
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(KEEP_ALIVE_IDLE),
    };
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
    /// A probe with a client of its own that connects anew for every probe (for a single
    /// check; see [`HttpClients`]).
    pub fn new(spec: &HttpCheck, timeout: Duration) -> Result<Self, ProbeError> {
        Self::with_clients(spec, timeout, Duration::ZERO, &mut HttpClients::default())
    }

    /// A probe sharing clients from `clients` with every check of the same settings, for a
    /// check that runs every `interval` (which decides whether it may keep its connection).
    pub fn with_clients(
        spec: &HttpCheck,
        timeout: Duration,
        interval: Duration,
        clients: &mut HttpClients,
    ) -> Result<Self, ProbeError> {
        let shown_url = redact_url(&spec.url);
        let method = reqwest::Method::from_bytes(spec.method.as_bytes()).map_err(|_| {
            ProbeError::new(
                ProbeErrorKind::Setup,
                format!("invalid method {:?}", spec.method),
            )
        })?;
        let connections = clients.connections(
            ClientSettings {
                timeout,
                tls_verify: spec.tls_verify,
                ca_file: spec.ca_file.clone(),
                follow_redirects: spec.follow_redirects,
            },
            &Target {
                url: &spec.url,
                interval,
                idempotent: method.is_idempotent(),
            },
        )?;
        Ok(HttpProbe {
            connections,
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
        let request = |client: &reqwest::Client| {
            let mut request = client.request(self.method.clone(), &self.spec.url);
            for (name, value) in &self.spec.headers {
                request = request.header(name.as_str(), value.expose());
            }
            if let Some(body) = &self.spec.body {
                request = request.body(body.clone());
            }
            request
        };
        let mut response = self
            .connections
            .send(request)
            .await
            .map_err(|e| self.classify(&e))?;
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
    fn kept_connections_take_at_most_half_the_descriptor_limit() {
        assert_eq!(keep_alive_bound(1000, None), 1000);
        assert_eq!(keep_alive_bound(1000, Some(20_000)), 1000);
        // systemd's default soft limit
        assert_eq!(keep_alive_bound(1000, Some(1024)), 512 - 64);
        assert_eq!(keep_alive_bound(100_000, Some(1_048_576)), 100_000);
        assert_eq!(keep_alive_bound(1000, Some(100)), 0);
        assert_eq!(keep_alive_bound(0, Some(1_048_576)), 0);
    }

    #[test]
    fn places_are_given_back_when_dropped() {
        let keep_alive = KeepAlive::new(2);
        let a = keep_alive.take().expect("a first place");
        let b = keep_alive.take().expect("a second place");
        assert!(keep_alive.take().is_none(), "only two places");
        assert_eq!(keep_alive.taken(), 2);
        drop(a);
        assert_eq!(keep_alive.taken(), 1);
        let _c = keep_alive.take().expect("the place given back");
        drop(b);
        assert_eq!(keep_alive.taken(), 1);
    }

    fn settings() -> ClientSettings {
        ClientSettings {
            timeout: Duration::from_secs(1),
            tls_verify: true,
            ca_file: None,
            follow_redirects: false,
        }
    }

    fn target(url: &str, interval_s: u64, idempotent: bool) -> Target<'_> {
        Target {
            url,
            interval: Duration::from_secs(interval_s),
            idempotent,
        }
    }

    /// Which checks may keep a connection, and that the checks of one origin share a place.
    #[test]
    fn who_keeps_a_connection() {
        let keep_alive = KeepAlive::new(2);
        let mut clients = HttpClients::new(&keep_alive);
        let mut connections = |url, interval_s, idempotent| {
            clients
                .connections(settings(), &target(url, interval_s, idempotent))
                .expect("clients build")
        };
        let often = connections("http://127.0.0.1:1/health", 10, true);
        let same_origin = connections("http://127.0.0.1:1/ready", 60, true);
        let rarely = connections("http://127.0.0.1:2/health", 61, true);
        let post = connections("http://127.0.0.1:3/health", 10, false);
        let second = connections("http://127.0.0.1:4/health", 10, true);
        let third = connections("http://127.0.0.1:5/health", 10, true);
        assert!(often.keeps() && same_origin.keeps());
        assert!(
            !rarely.keeps(),
            "a check run less often than every 60s connects anew"
        );
        assert!(
            !post.keeps(),
            "a request that cannot be sent twice connects anew"
        );
        assert!(
            second.keeps() && third.keeps(),
            "may keep, while places last"
        );

        let lane = |c: &Connections| c.kept.as_ref().map(|k| k.lane.kept());
        assert_eq!(lane(&often), Some(true));
        assert_eq!(
            lane(&same_origin),
            Some(true),
            "the same origin: the same place"
        );
        assert_eq!(keep_alive.taken(), 1);
        assert_eq!(lane(&second), Some(true));
        assert_eq!(lane(&third), Some(false), "two places, both taken");
        drop((often, same_origin));
        assert_eq!(
            keep_alive.taken(),
            2,
            "the origin's lane lives in `clients` too"
        );
        drop(clients);
        assert_eq!(
            keep_alive.taken(),
            1,
            "its last probe gone, the first origin's place is back"
        );
        assert_eq!(
            lane(&third),
            Some(true),
            "and taken by the next probe that asks"
        );
        assert_eq!(keep_alive.taken(), 2);
    }

    #[test]
    fn a_kept_check_still_connects_anew_every_five_minutes() {
        let keep_alive = KeepAlive::new(1);
        let mut clients = HttpClients::new(&keep_alive);
        let connections = clients
            .connections(settings(), &target("http://127.0.0.1:1/", 10, true))
            .expect("clients build");
        let kept = connections.kept.as_ref().expect("kept");
        let runs: Vec<bool> = (0..61).map(|_| kept.now()).collect();
        let fresh: Vec<usize> = (0..61).filter(|&i| !runs[i]).map(|i| i + 1).collect();
        assert_eq!(fresh, [30, 60], "every 30th run of a 10s check");
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
