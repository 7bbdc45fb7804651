//! warden's own HTTP surface: `/metrics`, `/healthz`, `/readyz` (and Prometheus' `/-/healthy`,
//! `/-/ready`), `/api/v1/status`, and `POST /-/reload`.
//!
//! Handlers only read [`Shared`]: the published status snapshot, the metrics registry and the
//! heartbeat. They never wait on a probe or on the evaluator; the one exception is
//! `/-/reload`, which hands a request to the daemon and waits (bounded) for its outcome;
//! `POST /-/reload?deploy=ID` also marks the deploy new incidents name (validated here).
//! Endpoints that change anything require the bearer token when one is configured.
//!
//! Connections are bounded: [`MAX_CONNECTIONS`] in all, [`MAX_CONNECTIONS_PER_CLIENT`] per peer
//! IP, and [`HEADER_READ_TIMEOUT`] to send a request's headers. A full table does not make a
//! newcomer wait: it evicts the connection that has been idle (waiting for headers, never
//! inside a handler) the longest, its own client's first. Idle and slowloris connections
//! therefore cannot keep a liveness probe out, however many there are; only connections
//! inside a handler hold their place, and handlers never wait on a probe.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;

use crate::query_api;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::command::Command;
use crate::engine::Status;
use crate::reload::{self, DeployId, Outcome, Trigger};
use crate::secret::Secret;
use crate::telemetry::{Metrics, METRICS_CONTENT_TYPE};

/// How stale the evaluator's heartbeat may get before `/healthz` reports warden wedged.
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(30);
/// Open connections at most; past it the longest-idle one is evicted for a newcomer.
pub const MAX_CONNECTIONS: usize = 256;
/// Open connections per peer IP at most; past it that client's longest-idle one is evicted.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;
/// How long a connection may take to send a request's headers (from when it opened or its
/// last response was sent); then it is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `POST /-/reload` waits for the reload to finish.
const RELOAD_WAIT: Duration = Duration::from_secs(60);

/// State the server reads and the daemon writes.
pub struct Shared {
    pub status: ArcSwap<Status>,
    pub metrics: Metrics,
    /// Set once the first config is live and its checks are scheduled.
    pub ready: AtomicBool,
    /// Last time the evaluator loop made progress.
    pub heartbeat: Mutex<Instant>,
    /// Bearer token for endpoints that change state; swapped on reload.
    pub token: ArcSwap<Option<Secret>>,
    /// Where `POST /-/reload` sends its request; unset until the daemon accepts reloads.
    pub commands: std::sync::OnceLock<tokio::sync::mpsc::Sender<Command>>,
    /// `GET /api/v1/alerts`: the alerts firing now, as the actions task last published them.
    pub alerts: Arc<ArcSwap<serde_json::Value>>,
    /// `GET /api/v1/windows`: the validation window runs, as the actions task last published
    /// them.
    pub windows: Arc<ArcSwap<serde_json::Value>>,
    /// `GET /api/v1/silences`: the silences, as the actions task last published them.
    pub silences: Arc<ArcSwap<serde_json::Value>>,
    /// `GET /api/v1/query[_range]`: the evaluator's series store and the clock that says
    /// "now"; unset until the daemon's evaluator exists.
    pub series: std::sync::OnceLock<(crate::series::Shared, crate::clock::Clock)>,
}

impl Shared {
    pub fn new(status: Status, metrics: Metrics) -> Self {
        Shared {
            status: ArcSwap::from_pointee(status),
            metrics,
            ready: AtomicBool::new(false),
            heartbeat: Mutex::new(Instant::now()),
            token: ArcSwap::from_pointee(None),
            commands: std::sync::OnceLock::new(),
            alerts: Arc::new(ArcSwap::from_pointee(serde_json::json!({"alerts": []}))),
            windows: Arc::new(ArcSwap::from_pointee(serde_json::json!({"windows": []}))),
            silences: Arc::new(ArcSwap::from_pointee(serde_json::json!({"silences": []}))),
            series: std::sync::OnceLock::new(),
        }
    }

    pub fn beat(&self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Instant::now();
        }
    }

    /// Time since the evaluator last made progress.
    pub fn heartbeat_age(&self) -> Duration {
        self.heartbeat
            .lock()
            .map(|h| h.elapsed())
            .unwrap_or(Duration::MAX)
    }
}

/// The open connections: who they come from, and which may be evicted for a newcomer.
#[derive(Default)]
struct Connections {
    next: u64,
    open: HashMap<u64, Connection>,
}

struct Connection {
    peer: IpAddr,
    /// Inside a handler: never evicted.
    busy: bool,
    /// When it last became idle (opened, or finished a request).
    idle_since: Instant,
    evict: CancellationToken,
}

/// What [`Connections::admit`] decided for a newcomer.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Admitted as `id`, after evicting `evicted` connections to make room.
    Open { id: u64, evicted: usize },
    /// Every place it could take is inside a handler.
    Refused,
}

impl Connections {
    /// Finds room for a connection from `peer`: its client's longest-idle connection goes if the
    /// client is at its limit, then the longest-idle connection of all if the table is full.
    fn admit(&mut self, peer: IpAddr, now: Instant) -> (Admission, CancellationToken) {
        let token = CancellationToken::new();
        let mut evicted = 0;
        let of_peer = self.open.values().filter(|c| c.peer == peer).count();
        if of_peer >= MAX_CONNECTIONS_PER_CLIENT {
            if !self.evict_longest_idle(Some(peer)) {
                return (Admission::Refused, token);
            }
            evicted += 1;
        }
        if self.open.len() >= MAX_CONNECTIONS {
            if !self.evict_longest_idle(None) {
                return (Admission::Refused, token);
            }
            evicted += 1;
        }
        let id = self.next;
        self.next += 1;
        self.open.insert(
            id,
            Connection {
                peer,
                busy: false,
                idle_since: now,
                evict: token.clone(),
            },
        );
        (Admission::Open { id, evicted }, token)
    }

    fn evict_longest_idle(&mut self, of: Option<IpAddr>) -> bool {
        let victim = self
            .open
            .iter()
            .filter(|(_, c)| !c.busy && of.is_none_or(|p| c.peer == p))
            .min_by_key(|(id, c)| (c.idle_since, **id))
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.open.remove(&id)) {
            Some(c) => {
                c.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn set_busy(&mut self, id: u64, busy: bool, now: Instant) {
        if let Some(c) = self.open.get_mut(&id) {
            c.busy = busy;
            if !busy {
                c.idle_since = now;
            }
        }
    }
}

/// Marks a connection busy while a handler runs (and idle again when it is dropped).
struct Busy {
    table: Arc<Mutex<Connections>>,
    id: u64,
}

impl Busy {
    fn new(table: &Arc<Mutex<Connections>>, id: u64) -> Busy {
        lock(table).set_busy(id, true, Instant::now());
        Busy {
            table: table.clone(),
            id,
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        lock(&self.table).set_busy(self.id, false, Instant::now());
    }
}

/// Removes a connection from the table when its task ends, however it ends.
struct Registered {
    table: Arc<Mutex<Connections>>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.table).open.remove(&self.id);
    }
}

fn lock(table: &Mutex<Connections>) -> std::sync::MutexGuard<'_, Connections> {
    // The table holds no invariant a panic could break halfway: keep using it.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

/// Serves until `cancel` fires. The listener is bound by the caller, so a bind error is
/// reported before anything else starts.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let table = Arc::new(Mutex::new(Connections::default()));
    loop {
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let peer = peer.ip().to_canonical();
        let (admission, evict) = lock(&table).admit(peer, Instant::now());
        let id = match admission {
            Admission::Open { id, evicted } => {
                if evicted > 0 {
                    tracing::debug!(%peer, evicted, "connection table full; evicted idle connections");
                }
                id
            }
            Admission::Refused => {
                tracing::debug!(%peer, "connection refused: every place is inside a handler");
                continue;
            }
        };
        let registered = Registered {
            table: table.clone(),
            id,
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _registered = registered;
            let table = _registered.table.clone();
            let service = service_fn(move |req| {
                let shared = shared.clone();
                let busy = Busy::new(&table, id);
                async move {
                    let get = req.method() == Method::GET;
                    let response = match req.uri().path() {
                        "/metrics" if get => metrics(&shared).map(Either::Right),
                        "/api/v1/status" if get => status(&shared).map(Either::Right),
                        _ => route(req, &shared, peer).await.map(Either::Left),
                    };
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                }
                // Dropping the connection closes it.
                _ = evict.cancelled() => {}
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

/// How big a piece of a streamed `/metrics` body is, and how many pieces wait for a slow
/// reader: the most `/metrics` holds at once besides the list of rows (two pointers per check
/// and rule) is `METRICS_CHUNK * (METRICS_CHUNKS_QUEUED + 1)` plus the registry's own part.
/// Each piece costs the connection's task one wake-up on the runtime that runs the probes:
/// 64 KiB pieces made an 80 MB page (100,000 checks) wait behind a saturated worker 1,200
/// times (186 s); 1 MiB pieces wait 80 times, for 3 MiB in flight.
const METRICS_CHUNK: usize = 1024 * 1024;
const METRICS_CHUNKS_QUEUED: usize = 2;

/// `GET /metrics`, streamed: rendered on the blocking pool in pieces of [`METRICS_CHUNK`]
/// bytes as the reader takes them, so at 100,000 checks neither the whole text nor protobuf
/// objects for every series are ever in memory. A reader that goes away stops the rendering.
fn metrics(shared: &Arc<Shared>) -> Response<ChannelBody> {
    stream(shared, METRICS_CONTENT_TYPE, |s, send| {
        s.metrics.encode_chunked(METRICS_CHUNK, send)
    })
}

/// `GET /api/v1/status`, streamed as `/metrics` is: the snapshot's fields, with `checks` and
/// `rules` written one entry at a time (one per line), never as one JSON tree or text.
fn status(shared: &Arc<Shared>) -> Response<ChannelBody> {
    stream(shared, "application/json", |s, send| {
        let status = s.status.load_full();
        let windows = running_windows(&s.windows.load());
        write_status(&status, windows, METRICS_CHUNK, send);
    })
}

/// Writes `status` as a JSON object in pieces of about `chunk` bytes: its small fields as
/// they serialise (so a field added to `Status` is never left out), then `checks` and `rules`
/// entry by entry, and `windows`. Stops when `send` returns `false`.
pub fn write_status(
    status: &Status,
    windows: serde_json::Value,
    chunk: usize,
    send: &mut dyn FnMut(Vec<u8>) -> bool,
) {
    // The entries are `Arc`s: the clone copies pointers, then drops them.
    let mut small = status.clone();
    small.checks = Vec::new();
    small.rules = Vec::new();
    let mut head = match serde_json::to_value(&small) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    head.remove("checks");
    head.remove("rules");
    head.insert("windows".into(), windows);
    let mut buf: Vec<u8> = Vec::with_capacity(chunk.min(1 << 16));
    buf.push(b'{');
    for (k, v) in &head {
        let _ = serde_json::to_writer(&mut buf, k);
        buf.push(b':');
        let _ = serde_json::to_writer(&mut buf, v);
        buf.extend_from_slice(b",\n");
    }
    let mut open = true;
    let mut flush = |buf: &mut Vec<u8>, open: &mut bool| {
        if *open && buf.len() >= chunk {
            *open = send(std::mem::take(buf));
        }
        *open
    };
    buf.extend_from_slice(b"\"checks\":[");
    for (i, c) in status.checks.iter().enumerate() {
        buf.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        let _ = serde_json::to_writer(&mut buf, &**c);
        if !flush(&mut buf, &mut open) {
            return;
        }
    }
    buf.extend_from_slice(b"],\n\"rules\":[");
    for (i, r) in status.rules.iter().enumerate() {
        buf.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        let _ = serde_json::to_writer(&mut buf, &**r);
        if !flush(&mut buf, &mut open) {
            return;
        }
    }
    buf.extend_from_slice(b"]}\n");
    send(buf);
}

/// A response of `content_type` whose body `render` writes on the blocking pool, in pieces
/// handed to its `send` (`false`: the reader went away), at most [`METRICS_CHUNKS_QUEUED`]
/// of them waiting for the reader.
fn stream(
    shared: &Arc<Shared>,
    content_type: &'static str,
    render: impl FnOnce(&Shared, &mut dyn FnMut(Vec<u8>) -> bool) + Send + 'static,
) -> Response<ChannelBody> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(METRICS_CHUNKS_QUEUED);
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        render(&shared, &mut |chunk| {
            tx.blocking_send(Bytes::from(chunk)).is_ok()
        });
    });
    let mut resp = Response::new(ChannelBody { rx });
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// A response body fed by a channel (a streamed `/metrics`); it ends when the sender does.
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok(http_body::Frame::data(c))))
    }
}

async fn route(
    req: Request<Incoming>,
    shared: &Arc<Shared>,
    peer: IpAddr,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let path = path.as_str();
    if path == "/-/reload" {
        return reload(&req, shared).await;
    }
    if path == "/api/v1/query" || path == "/api/v1/query_range" {
        return query(&req, shared, peer).await;
    }
    if path == "/api/v1/windows" || path.starts_with("/api/v1/windows/") {
        return windows(req, shared).await;
    }
    if path == "/api/v1/ack" {
        return ack_link(req, shared).await;
    }
    if path.starts_with("/api/v1/alerts/") && path.ends_with("/ack") {
        return ack(req, shared).await;
    }
    if path == "/api/v1/silences" || path.starts_with("/api/v1/silences/") {
        return silences(req, shared).await;
    }
    let req = &req;
    let known = matches!(
        path,
        "/metrics"
            | "/healthz"
            | "/-/healthy"
            | "/readyz"
            | "/-/ready"
            | "/api/v1/status"
            | "/api/v1/alerts"
    );
    if !known {
        return json_error(StatusCode::NOT_FOUND, &format!("no route for {path}"));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("{path} accepts GET only"),
        );
    }
    match path {
        "/metrics" => match off_runtime(shared, |s| s.metrics.encode()).await {
            Some(body) => respond(StatusCode::OK, METRICS_CONTENT_TYPE, body),
            None => json_error(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed"),
        },
        "/healthz" | "/-/healthy" => {
            let age = shared.heartbeat_age();
            if age < HEARTBEAT_STALE_AFTER {
                text(StatusCode::OK, "warden is healthy\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!(
                        "warden is wedged: evaluator silent for {}s\n",
                        age.as_secs()
                    ),
                )
            }
        }
        "/readyz" | "/-/ready" => {
            if shared.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "warden is ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "warden is starting\n")
            }
        }
        "/api/v1/alerts" => match serde_json::to_vec_pretty(&**shared.alerts.load()) {
            Ok(body) => respond(StatusCode::OK, "application/json", body),
            Err(e) => json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("encoding alerts: {e}"),
            ),
        },
        // `/api/v1/status` (a GET is streamed before routing; a HEAD gets the headers).
        _ => respond(StatusCode::OK, "application/json", Vec::new()),
    }
}

/// The running validation window runs, in brief, for `/api/v1/status`: id, window, deploy,
/// version, started, ends, and the next mark with when it is due.
fn running_windows(all: &serde_json::Value) -> serde_json::Value {
    let runs = all["windows"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let running: Vec<serde_json::Value> = runs
        .iter()
        .filter(|r| r["state"] == "running")
        .map(|r| {
            let next = r["marks"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["verdict"].is_null()));
            serde_json::json!({
                "id": r["id"],
                "window": r["window"],
                "deploy": r["deploy"],
                "version": r["version"],
                "started": r["started"],
                "ends": r["ends"],
                "next_mark": next.map(|m| m["at"].clone()),
                "next_mark_due": next.and_then(|m| m["due"].as_i64()).map(|ms| crate::clock::Timestamp(ms).to_rfc3339()),
            })
        })
        .collect();
    serde_json::Value::Array(running)
}

/// The longest `POST /api/v1/windows` body.
const WINDOW_BODY_MAX: usize = 64 * 1024;
/// How long a window command may take (it waits for the state store).
const WINDOW_WAIT: Duration = Duration::from_secs(30);

/// `GET /api/v1/windows[/ID]` (the runs the actions task last published), `POST
/// /api/v1/windows` (start one: `{"window", "deploy", "version", "labels", "supersede"}`) and
/// `POST /api/v1/windows/ID/abort`; the POSTs need the token as reload does.
async fn windows(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path.strip_prefix("/api/v1/windows").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match (parts.as_slice(), get, req.method() == Method::POST) {
        ([], true, _) => match serde_json::to_vec_pretty(&**shared.windows.load()) {
            Ok(body) => respond(StatusCode::OK, "application/json", body),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        ([id], true, _) => {
            let Ok(id) = id.parse::<u64>() else {
                return json_error(StatusCode::BAD_REQUEST, "a window run id is a number");
            };
            let all = shared.windows.load();
            let run = all["windows"]
                .as_array()
                .and_then(|runs| runs.iter().find(|r| r["id"].as_u64() == Some(id)));
            match run.map(serde_json::to_vec_pretty) {
                Some(Ok(body)) => respond(StatusCode::OK, "application/json", body),
                Some(Err(e)) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                None => json_error(
                    StatusCode::NOT_FOUND,
                    &format!("no window run {id} (running, or among the latest finished)"),
                ),
            }
        }
        ([], _, true) => {
            if let Some(denied) = unauthorised(&req, shared) {
                return denied;
            }
            let body = match read_body(req, WINDOW_BODY_MAX).await {
                Ok(b) => b,
                Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
            };
            let start: crate::window::Start = match serde_json::from_slice(&body) {
                Ok(s) => s,
                Err(e) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "the body must be JSON {{\"window\": NAME, \"deploy\": ID,                              \"version\": V, \"labels\": {{...}}, \"supersede\": false}}: {e}"
                        ),
                    )
                }
            };
            send_command(shared, StatusCode::CREATED, |reply| {
                Command::Window(crate::command::WindowCommand::Start { start, reply })
            })
            .await
        }
        ([id, "abort"], _, true) => {
            if let Some(denied) = unauthorised(&req, shared) {
                return denied;
            }
            let Ok(id) = id.parse::<u64>() else {
                return json_error(StatusCode::BAD_REQUEST, "a window run id is a number");
            };
            send_command(shared, StatusCode::OK, |reply| {
                Command::Window(crate::command::WindowCommand::Abort {
                    id,
                    who: "the API".into(),
                    reply,
                })
            })
            .await
        }
        ([] | [_] | [_, "abort"], _, _) => json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /api/v1/windows[/ID], POST /api/v1/windows, POST /api/v1/windows/ID/abort",
        ),
        _ => json_error(StatusCode::NOT_FOUND, &format!("no route for {path}")),
    }
}

/// `/api/v1/ack?key=KEY&exp=UNIX&sig=HEX`, the link in a page: `GET` shows a page with a
/// button (a chat app unfurling the link must not acknowledge anything), `POST` acknowledges.
/// No token: the signature (HMAC under the state file's key, expiring) is the credential.
async fn ack_link(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or("").to_string();
    let mut key = None;
    let mut exp = None;
    let mut sig = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match name {
            "key" => key = value,
            "exp" => exp = value.and_then(|v| v.parse::<i64>().ok()),
            "sig" => sig = value,
            _ => {}
        }
    }
    let (Some(key), Some(exp), Some(sig)) = (key, exp, sig) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "an acknowledgement link has key, exp and sig",
        );
    };
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let page = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Acknowledge</title></head>\
             <body><p>Acknowledge incident <code>{}</code>? Its repeats and escalations stop \
             until it resolves or turns critical.</p>\
             <form method=\"post\" action=\"/api/v1/ack?{}\"><button type=\"submit\">\
             Acknowledge</button></form></body></html>",
            escape(&key),
            escape(&query)
        );
        return respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page.into_bytes(),
        );
    }
    if req.method() != Method::POST {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET shows the page, POST acknowledges",
        );
    }
    send_command(shared, StatusCode::OK, |reply| Command::AckLink {
        key,
        exp,
        sig,
        reply,
    })
    .await
}

/// `POST /api/v1/alerts/KEY/ack[?by=NAME]`: acknowledges a firing alert (KEY: its dedup key or
/// its name, percent-encoded); the token rules of reload apply.
async fn ack(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return json_error(StatusCode::METHOD_NOT_ALLOWED, "ack accepts POST only");
    }
    if let Some(denied) = unauthorised(&req, shared) {
        return denied;
    }
    let path = req.uri().path();
    let raw = &path["/api/v1/alerts/".len()..path.len() - "/ack".len()];
    let Some(key) = percent_decode(raw).filter(|k| !k.is_empty()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "the alert is not valid percent-encoded UTF-8",
        );
    };
    let mut by = "the API".to_string();
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("by", v)) => match percent_decode(v) {
                Some(v) if !v.is_empty() && v.len() <= 128 && !v.chars().any(char::is_control) => {
                    by = v
                }
                _ => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        "by: 1 to 128 characters, no control characters",
                    )
                }
            },
            _ => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "unknown query parameter; known: by",
                )
            }
        }
    }
    send_command(shared, StatusCode::OK, |reply| Command::Ack {
        key,
        by,
        reply,
    })
    .await
}

/// `GET /api/v1/silences[/ID]` (as the actions task last published them), `POST
/// /api/v1/silences` (add one: `{"matchers": ["rule=\"api\""], "duration": "2h" | "ends_at":
/// RFC 3339, "starts_at"?, "created_by", "comment"}`), `DELETE /api/v1/silences/ID` and `POST
/// /api/v1/silences/ID/expire`; the changes need the token as reload does.
async fn silences(req: Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    use crate::command::SilenceCommand;
    let path = req.uri().path().trim_end_matches('/').to_string();
    let rest = path.strip_prefix("/api/v1/silences").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let id = |s: &str| s.parse::<u64>().ok();
    match (parts.as_slice(), get) {
        ([], true) => match serde_json::to_vec_pretty(&**shared.silences.load()) {
            Ok(body) => respond(StatusCode::OK, "application/json", body),
            Err(e) => json_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        ([n], true) => {
            let Some(n) = id(n) else {
                return json_error(StatusCode::BAD_REQUEST, "a silence id is a number");
            };
            let all = shared.silences.load();
            let found = all["silences"]
                .as_array()
                .and_then(|list| list.iter().find(|s| s["id"].as_u64() == Some(n)));
            match found {
                Some(s) => respond(StatusCode::OK, "application/json", s.to_string().into_bytes()),
                None => json_error(StatusCode::NOT_FOUND, &format!("no silence {n}")),
            }
        }
        ([], false) if method == Method::POST => {
            if let Some(denied) = unauthorised(&req, shared) {
                return denied;
            }
            let body = match read_body(req, WINDOW_BODY_MAX).await {
                Ok(b) => b,
                Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
            };
            let request: serde_json::Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        &format!("the body must be JSON {{\"matchers\": [...], \"duration\": \"2h\", \"created_by\": WHO, \"comment\": WHY}}: {e}"),
                    )
                }
            };
            send_command(shared, StatusCode::CREATED, |reply| {
                Command::Silence(SilenceCommand::Add { request, reply })
            })
            .await
        }
        ([n], false) | ([n, "expire"], false)
            if (parts.len() == 1 && method == Method::DELETE)
                || (parts.len() == 2 && method == Method::POST) =>
        {
            if let Some(denied) = unauthorised(&req, shared) {
                return denied;
            }
            let Some(n) = id(n) else {
                return json_error(StatusCode::BAD_REQUEST, "a silence id is a number");
            };
            send_command(shared, StatusCode::OK, |reply| {
                Command::Silence(SilenceCommand::Expire { id: n, reply })
            })
            .await
        }
        ([] | [_] | [_, "expire"], _) => json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "GET /api/v1/silences[/ID], POST /api/v1/silences, DELETE /api/v1/silences/ID, POST /api/v1/silences/ID/expire",
        ),
        _ => json_error(StatusCode::NOT_FOUND, &format!("no route for {path}")),
    }
}

/// Hands a command to the daemon and answers with its reply.
async fn send_command(
    shared: &Shared,
    ok: StatusCode,
    command: impl FnOnce(
        tokio::sync::oneshot::Sender<Result<serde_json::Value, crate::command::WindowError>>,
    ) -> Command,
) -> Response<Full<Bytes>> {
    let Some(commands) = shared.commands.get() else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "warden is starting");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if commands.send(command(tx)).await.is_err() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "warden is shutting down");
    }
    match tokio::time::timeout(WINDOW_WAIT, rx).await {
        Ok(Ok(Ok(run))) => respond(ok, "application/json", run.to_string().into_bytes()),
        Ok(Ok(Err(e))) => json_error(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            &e.message,
        ),
        Ok(Err(_)) => json_error(StatusCode::SERVICE_UNAVAILABLE, "warden is shutting down"),
        Err(_) => json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "the command did not finish within 30 s; see warden's log",
        ),
    }
}

/// The request body, at most `max` bytes, within [`WINDOW_WAIT`].
async fn read_body(req: Request<Incoming>, max: usize) -> Result<Bytes, String> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(req.into_body(), max);
    match tokio::time::timeout(WINDOW_WAIT, limited.collect()).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e)) => Err(format!("reading the body: {e} (at most {max} bytes)")),
        Err(_) => Err("the body did not arrive in time".into()),
    }
}

/// `GET /api/v1/query` and `/api/v1/query_range` over the series store (see `query_api`).
/// Read-only: open to loopback clients; others need the bearer token when one is set.
async fn query(
    req: &Request<Incoming>,
    shared: &Arc<Shared>,
    peer: IpAddr,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "the query API accepts GET only",
        );
    }
    if !peer.is_loopback() {
        if let Some(denied) = unauthorised(req, shared) {
            return denied;
        }
    }
    let params = match query_api::params(req.uri().query().unwrap_or(""), percent_decode) {
        Ok(p) => p,
        Err(e) => {
            let body = serde_json::json!({"status": "error", "errorType": "bad_data", "error": e});
            return respond(
                StatusCode::BAD_REQUEST,
                "application/json",
                body.to_string().into_bytes(),
            );
        }
    };
    let range = req.uri().path().ends_with("_range");
    let answer = off_runtime(shared, move |s| {
        let Some((store, clock)) = s.series.get() else {
            return (503, serde_json::json!({"status": "error", "errorType": "unavailable", "error": "warden is starting"}));
        };
        if range {
            query_api::range(&params, &**store)
        } else {
            query_api::instant(&params, &**store, clock.now().as_millis())
        }
    })
    .await;
    match answer {
        Some((code, body)) => respond(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "application/json",
            body.to_string().into_bytes(),
        ),
        None => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the query failed"),
    }
}

/// `POST /-/reload[?deploy=ID]`: authorise, hand the request to the daemon, answer with its
/// outcome.
async fn reload(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.method() != Method::POST && req.method() != Method::PUT {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "/-/reload accepts POST only",
        );
    }
    if let Some(denied) = unauthorised(req, shared) {
        return denied;
    }
    let deploy = match reload_query(req.uri().query()) {
        Ok(deploy) => deploy,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &e),
    };
    let Some(commands) = shared.commands.get() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "warden is not accepting reloads yet",
        );
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let request = reload::Request {
        trigger: Trigger::Http,
        deploy: deploy.clone(),
        reply: Some(tx),
    };
    if commands.send(Command::Reload(request)).await.is_err() {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "warden is shutting down");
    }
    match tokio::time::timeout(RELOAD_WAIT, rx).await {
        Ok(Ok(outcome)) => {
            let (code, body) = match &outcome {
                Outcome::Applied { hash } | Outcome::Unchanged { hash } => {
                    let mut body = serde_json::json!({
                        "status": "success",
                        "result": outcome.result(),
                        "config_hash": format!("{hash:012x}"),
                    });
                    if let Some(deploy) = &deploy {
                        body["deploy"] = deploy.as_str().into();
                    }
                    (StatusCode::OK, body)
                }
                Outcome::Failed { error } => (
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({
                        "status": "error",
                        "result": "failed",
                        "error": error,
                    }),
                ),
            };
            respond(code, "application/json", body.to_string().into_bytes())
        }
        Ok(Err(_)) => json_error(StatusCode::SERVICE_UNAVAILABLE, "warden is shutting down"),
        Err(_) => json_error(
            StatusCode::GATEWAY_TIMEOUT,
            "the reload did not finish within 60 s; see warden's log",
        ),
    }
}

/// The deploy id in `/-/reload`'s query (`deploy=ID`, percent-encoded), if any. Anything
/// else in the query is refused, so a typo never reloads without the deploy it meant to mark.
fn reload_query(query: Option<&str>) -> Result<Option<DeployId>, String> {
    let mut deploy = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name).unwrap_or_default();
        if name != "deploy" {
            return Err(format!(
                "unknown query parameter {name:?} for /-/reload; known: deploy"
            ));
        }
        if deploy.is_some() {
            return Err("deploy is given more than once".into());
        }
        let value = percent_decode(value).ok_or("deploy is not valid percent-encoded UTF-8")?;
        deploy = Some(DeployId::parse(&value).map_err(|e| e.to_string())?);
    }
    Ok(deploy)
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte. `None` on a
/// malformed escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
            }
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// The 401 answer when a token is configured and `Authorization: Bearer <token>` does not
/// carry it; `None` when the request may proceed.
fn unauthorised(req: &Request<Incoming>, shared: &Shared) -> Option<Response<Full<Bytes>>> {
    let token = shared.token.load();
    let token = token.as_ref().as_ref()?;
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
        None
    } else {
        let mut resp = json_error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        Some(resp)
    }
}

/// Compares without an early exit, so response timing does not reveal a token's prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

/// Renders a large body on the blocking pool. At 10,000 checks `/metrics` takes a few hundred
/// milliseconds to encode and `/api/v1/status` tens; on the runtime's worker that would hold
/// up every probe due meanwhile. `None` if the rendering panicked.
async fn off_runtime<T: Send + 'static>(
    shared: &Arc<Shared>,
    render: impl FnOnce(&Shared) -> T + Send + 'static,
) -> Option<T> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || render(&shared))
        .await
        .ok()
}

fn respond(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

fn text(code: StatusCode, body: &str) -> Response<Full<Bytes>> {
    respond(code, "text/plain; charset=utf-8", body.as_bytes().to_vec())
}

fn json_error(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "status": "error", "error": message });
    respond(code, "application/json", body.to_string().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reload_query_carries_only_a_valid_deploy_id() {
        let deploy = |q: Option<&str>| reload_query(q).map(|d| d.map(DeployId::into_string));
        assert_eq!(deploy(None), Ok(None));
        assert_eq!(deploy(Some("")), Ok(None));
        assert_eq!(deploy(Some("deploy=v2")), Ok(Some("v2".into())));
        assert_eq!(
            deploy(Some("deploy=release+%2342%20(canary)")),
            Ok(Some("release #42 (canary)".into()))
        );
        assert_eq!(
            deploy(Some("deploy=v2%0AX-Injected:%201")),
            Err(
                "deploy id has '\\n' at character 3; only printable ASCII (space to ~) is allowed"
                    .into()
            )
        );
        assert_eq!(
            deploy(Some("deploy=")),
            Err("deploy id is empty; give 1 to 128 printable ASCII characters".into())
        );
        assert_eq!(
            deploy(Some("deploy=v2%ZZ")),
            Err("deploy is not valid percent-encoded UTF-8".into())
        );
        assert_eq!(
            deploy(Some("deploy=%FF")),
            Err("deploy is not valid percent-encoded UTF-8".into())
        );
        assert_eq!(
            deploy(Some("deploy=v2&deploy=v3")),
            Err("deploy is given more than once".into())
        );
        assert_eq!(
            deploy(Some("depoly=v2")),
            Err("unknown query parameter \"depoly\" for /-/reload; known: deploy".into())
        );
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn open(table: &mut Connections, peer: IpAddr, at: Instant) -> (u64, usize) {
        match table.admit(peer, at).0 {
            Admission::Open { id, evicted } => (id, evicted),
            Admission::Refused => panic!("refused {peer}"),
        }
    }

    /// Issue 12: idle connections never keep a newcomer out; a client at its limit evicts its
    /// own longest-idle connection first; only connections inside a handler hold their place.
    #[tokio::test(start_paused = true)]
    async fn a_full_table_evicts_the_longest_idle_never_the_busy() {
        let mut table = Connections::default();
        let t0 = Instant::now();
        // One client fills its share; the next from it evicts its own oldest.
        let first = open(&mut table, ip(1), t0);
        for i in 1..MAX_CONNECTIONS_PER_CLIENT {
            open(&mut table, ip(1), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(open(&mut table, ip(1), t0 + Duration::from_secs(1)).1, 1);
        assert!(!table.open.contains_key(&first.0));
        assert_eq!(table.open.len(), MAX_CONNECTIONS_PER_CLIENT);
        // Many clients fill the table; a newcomer evicts the longest idle of all.
        let mut peer = 2;
        while table.open.len() < MAX_CONNECTIONS {
            for _ in 0..MAX_CONNECTIONS_PER_CLIENT.min(MAX_CONNECTIONS - table.open.len()) {
                open(&mut table, ip(peer), t0 + Duration::from_secs(2));
            }
            peer += 1;
        }
        let oldest = *table
            .open
            .iter()
            .min_by_key(|(id, c)| (c.idle_since, **id))
            .unwrap()
            .0;
        let (_, evicted) = open(&mut table, ip(200), t0 + Duration::from_secs(3));
        assert_eq!(evicted, 1);
        assert!(!table.open.contains_key(&oldest));
        assert_eq!(table.open.len(), MAX_CONNECTIONS);
        // Connections inside a handler are never evicted: when all are, a newcomer is refused.
        let ids: Vec<u64> = table.open.keys().copied().collect();
        for id in &ids {
            table.set_busy(*id, true, t0);
        }
        assert_eq!(table.admit(ip(201), t0).0, Admission::Refused);
        table.set_busy(ids[7], false, t0 + Duration::from_secs(4));
        let (_, evicted) = open(&mut table, ip(201), t0 + Duration::from_secs(5));
        assert_eq!(evicted, 1);
        assert!(!table.open.contains_key(&ids[7]));
    }
}
