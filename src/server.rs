//! warden's own HTTP surface: `/metrics`, `/healthz`, `/readyz` (and Prometheus' `/-/healthy`,
//! `/-/ready`), `/api/v1/status`.
//!
//! Handlers only read [`Shared`]: the published status snapshot, the metrics registry and the
//! heartbeat. They never wait on a probe or on the evaluator. Connections are bounded in
//! number and in how long they may take to send their headers.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::engine::Status;
use crate::telemetry::{Metrics, METRICS_CONTENT_TYPE};

/// How stale the evaluator's heartbeat may get before `/healthz` reports warden wedged.
pub const HEARTBEAT_STALE_AFTER: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 256;

/// State the server reads and the daemon writes.
pub struct Shared {
    pub status: ArcSwap<Status>,
    pub metrics: Metrics,
    /// Set once the first config is live and its checks are scheduled.
    pub ready: AtomicBool,
    /// Last time the evaluator loop made progress.
    pub heartbeat: Mutex<Instant>,
}

impl Shared {
    pub fn new(status: Status, metrics: Metrics) -> Self {
        Shared {
            status: ArcSwap::from_pointee(status),
            metrics,
            ready: AtomicBool::new(false),
            heartbeat: Mutex::new(Instant::now()),
        }
    }

    pub fn beat(&self) {
        if let Ok(mut h) = self.heartbeat.lock() {
            *h = Instant::now();
        }
    }

    fn heartbeat_age(&self) -> Duration {
        self.heartbeat
            .lock()
            .map(|h| h.elapsed())
            .unwrap_or(Duration::MAX)
    }
}

/// Serves until `cancel` fires. The listener is bound by the caller, so a bind error is
/// reported before anything else starts.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, _peer) = tokio::select! {
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
        let shared = shared.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(route(&req, &shared).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                }
                _ = cancel.cancelled() => conn.as_mut().graceful_shutdown(),
            }
        });
    }
}

async fn route(req: &Request<Incoming>, shared: &Arc<Shared>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(
        path,
        "/metrics" | "/healthz" | "/-/healthy" | "/readyz" | "/-/ready" | "/api/v1/status"
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
        _ => {
            let encoded =
                off_runtime(shared, |s| serde_json::to_vec_pretty(&**s.status.load())).await;
            match encoded {
                Some(Ok(body)) => respond(StatusCode::OK, "application/json", body),
                Some(Err(e)) => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("encoding status: {e}"),
                ),
                None => json_error(StatusCode::INTERNAL_SERVER_ERROR, "encoding status failed"),
            }
        }
    }
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
