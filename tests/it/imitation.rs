//! In-process imitations of the HTTP services of the five runbooks in `seeds/`: each answers
//! the paths its runbook curls with the bodies the runbook shows, byte for byte where it shows
//! one, and a test breaks it the way the runbook fears: an error status, an unhealthy component
//! in the JSON, an answer slower than the probe's timeout, a closed port (connection refused).
//!
//! Only the systems' own HTTP code is imitated; their Redis, Postgres and certificates are the
//! real servers of `harness`. Each imitation listens on its own loopback port on its own thread
//! and runtime, so it answers whatever the test thread does; `down` drops the runtime, which
//! closes the listener and every open connection, and `up` listens again on the same port.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const JSON: &str = "application/json";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one path answers.
#[derive(Clone, Debug)]
struct Route {
    status: u16,
    body: String,
    content_type: &'static str,
    delay: Duration,
    /// When set, a request without `Authorization: Bearer <token>` gets 401.
    bearer: Option<String>,
}

impl Route {
    fn json(body: &str) -> Route {
        Route {
            status: 200,
            body: body.to_string(),
            content_type: JSON,
            delay: Duration::ZERO,
            bearer: None,
        }
    }

    fn metrics(body: &str) -> Route {
        Route {
            content_type: PROMETHEUS_TEXT,
            ..Route::json(body)
        }
    }
}

/// Per path: the answer now, what the next requests get instead (a failure budget), and how
/// many requests were answered.
#[derive(Default)]
struct Table {
    routes: HashMap<String, Route>,
    failing: HashMap<String, (u32, Route)>,
    served: HashMap<String, u64>,
}

type Routes = Arc<Mutex<Table>>;

/// One imitated HTTP service on `127.0.0.1:PORT`. Unknown paths answer 404.
pub struct Imitation {
    port: u16,
    routes: Routes,
    /// The runbook's answers, put back by [`Imitation::restore`].
    healthy: Vec<(String, Route)>,
    serving: Option<Serving>,
}

struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Imitation {
    fn start(routes: Vec<(&str, Route)>) -> Imitation {
        let healthy: Vec<(String, Route)> = routes
            .into_iter()
            .map(|(path, route)| (path.to_string(), route))
            .collect();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let mut imitation = Imitation {
            port,
            routes: Arc::default(),
            healthy,
            serving: None,
        };
        imitation.restore();
        imitation.serve(listener);
        imitation
    }

    /// `http://127.0.0.1:PORT`, the base URL an example's `*_URL` variable takes.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `path` answers `status` with this JSON body from now on.
    pub fn set(&self, path: &str, status: u16, body: &str) {
        let mut table = self.routes.lock().expect("routes lock");
        let route = table
            .routes
            .entry(path.to_string())
            .or_insert_with(|| Route::json(body));
        route.status = status;
        route.body = body.to_string();
    }

    /// `path` answers only after `delay`.
    pub fn set_delay(&self, path: &str, delay: Duration) {
        let mut table = self.routes.lock().expect("routes lock");
        table.routes.get_mut(path).expect("a known path").delay = delay;
    }

    /// The next `n` requests to `path` get `status` with this body, the ones after them the
    /// usual answer again: exactly `n` failures in a row, whatever the timing.
    pub fn fail_next(&self, path: &str, n: u32, status: u16, body: &str) {
        let mut table = self.routes.lock().expect("routes lock");
        let route = table.routes.get(path).expect("a known path").clone();
        let failure = Route {
            status,
            body: body.to_string(),
            ..route
        };
        table.failing.insert(path.to_string(), (n, failure));
    }

    /// How many requests to `path` were answered.
    pub fn served(&self, path: &str) -> u64 {
        let table = self.routes.lock().expect("routes lock");
        table.served.get(path).copied().unwrap_or(0)
    }

    /// Every path answers as the runbook shows again, at once.
    pub fn restore(&self) {
        let mut table = self.routes.lock().expect("routes lock");
        table.routes.clear();
        table.failing.clear();
        table.routes.extend(self.healthy.iter().cloned());
    }

    /// Closes the port and every open connection: probes get "connection refused".
    pub fn down(&mut self) {
        if let Some(serving) = self.serving.take() {
            let _ = serving.stop.send(());
            let _ = serving.thread.join();
        }
    }

    /// Listens again on the same port.
    pub fn up(&mut self) {
        if self.serving.is_none() {
            let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))
                .unwrap_or_else(|e| panic!("bind 127.0.0.1:{} again: {e}", self.port));
            self.serve(listener);
        }
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let routes = self.routes.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("imitation runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let routes = routes.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let routes = routes.clone();
                            async move { Ok::<_, Infallible>(answer(&routes, &req).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            // Dropping the runtime here cancels every connection task: their sockets close.
        });
        self.serving = Some(Serving { stop, thread });
    }
}

impl Drop for Imitation {
    fn drop(&mut self) {
        self.down();
    }
}

async fn answer(routes: &Routes, req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let route = {
        let mut table = routes.lock().expect("routes lock");
        let failure = match table.failing.get_mut(path) {
            Some((left, failure)) if *left > 0 => {
                *left -= 1;
                Some(failure.clone())
            }
            _ => None,
        };
        let route = failure.or_else(|| table.routes.get(path).cloned());
        if route.is_some() {
            *table.served.entry(path.to_string()).or_default() += 1;
        }
        route
    };
    let route = route.unwrap_or_else(|| Route {
        status: 404,
        ..Route::json(r#"{"error":"not found"}"#)
    });
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let authorized = route.bearer.as_ref().is_none_or(|token| {
        req.headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(format!("Bearer {token}").as_str())
    });
    let (status, body, content_type) = if authorized {
        (route.status, route.body, route.content_type)
    } else {
        (401, r#"{"error":"unauthorized"}"#.to_string(), JSON)
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("a valid status");
    response.headers_mut().insert(
        "content-type",
        content_type.parse().expect("a valid header value"),
    );
    response
}

/// Nuvie's backend API (nuvie-runbook.md, Health Checks, Endpoint Definitions). The runbook
/// elides the readiness body's `checks` (`{...}`); two named dependencies stand in.
pub fn nuvie_api() -> Imitation {
    Imitation::start(vec![
        ("/health", Route::json(r#"{"status":"healthy"}"#)),
        (
            "/ready",
            Route::json(r#"{"status":"ready","checks":{"database":"ok","redis":"ok"}}"#),
        ),
        (
            "/metrics",
            Route::metrics("# TYPE circuit_breaker_open gauge\ncircuit_breaker_open 0\n"),
        ),
    ])
}

/// Nuvie's AI service (nuvie-runbook.md, AI Service Deployment, Step 3), its body verbatim,
/// `"version":"..."` included.
pub fn nuvie_ai() -> Imitation {
    Imitation::start(vec![(
        "/health",
        Route::json(r#"{"status":"healthy","model_loaded":true,"version":"..."}"#),
    )])
}

/// Redcube's content service behind its gateway (redcube-runbook.md, Phase 3, Test 1: the
/// runbook's health check is this listing, and only its HTTP 200 is shown).
pub fn redcube() -> Imitation {
    Imitation::start(vec![(
        "/api/content/interview-intel/experiences",
        Route::json(r#"{"experiences":[]}"#),
    )])
}

/// Nova Streaming's user service (nova-streaming-runbook.md, Step 2.2's health body verbatim,
/// Step 2.3's metrics and Step 3.3's authenticated `streams/active` with its `total_count`).
pub fn nova_streaming(api_token: &str) -> Imitation {
    Imitation::start(vec![
        ("/health", Route::json(r#"{"status": "healthy"}"#)),
        (
            "/metrics",
            Route::metrics(
                "# TYPE nova_streaming_active_streams gauge\nnova_streaming_active_streams 3\n",
            ),
        ),
        (
            "/api/v1/streams/active",
            Route {
                bearer: Some(api_token.to_string()),
                ..Route::json(r#"{"streams":[],"total_count":3}"#)
            },
        ),
    ])
}

/// The AI SaaS API gateway (ai-saas-runbook.md, Post-Deployment Verification, Step 2).
pub fn ai_saas() -> Imitation {
    Imitation::start(vec![("/health", Route::json(r#"{"status":"ok"}"#))])
}

/// NovaCron's API (novacron-runbook.md, Health Check Procedures: bodies verbatim). The runbook
/// shows no body for /health/db, /health/cache and /api/v1/info, only `curl -f` (any 2xx).
pub fn novacron() -> Imitation {
    Imitation::start(vec![
        (
            "/health",
            Route::json(r#"{"status": "healthy", "timestamp": "2025-11-10T15:30:00Z"}"#),
        ),
        (
            "/health/detailed",
            Route::json(
                r#"{
  "status": "healthy",
  "components": {
    "database": "healthy",
    "cache": "healthy",
    "dwcp": "healthy"
  }
}"#,
            ),
        ),
        ("/health/db", Route::json(r#"{"status": "healthy"}"#)),
        ("/health/cache", Route::json(r#"{"status": "healthy"}"#)),
        ("/api/v1/info", Route::json(r#"{"version": "v1.6.0"}"#)),
        (
            "/api/v1/dwcp/status",
            Route::json(
                r#"{
  "status": "active",
  "active_streams": 15,
  "bandwidth_allocated": 1000000000,
  "compression_ratio": 2.5
}"#,
            ),
        ),
        (
            "/metrics",
            Route::metrics("# TYPE dwcp_active_streams gauge\ndwcp_active_streams 15\n"),
        ),
    ])
}
