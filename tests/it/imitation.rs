//! In-process imitations of the HTTP services of the five runbooks in `seeds/`: each answers
//! the paths its runbook curls with the bodies the runbook shows, byte for byte where it shows
//! one, and a test breaks it the way the runbook fears: an error status, an unhealthy component
//! in the JSON, an answer slower than the probe's timeout, a closed port (connection refused).
//!
//! Only the systems' own HTTP code is imitated; their Redis, Postgres and certificates are the
//! real servers of `harness`. Each imitation is a route table over the harness's
//! [`HttpServer`] on its own loopback port, so it answers whatever the test thread does; `down`
//! closes the listener and every open connection, and `up` listens again on the same port.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::http::{self, HttpServer};

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
    server: HttpServer,
    routes: Routes,
    /// The runbook's answers, put back by [`Imitation::restore`].
    healthy: Vec<(String, Route)>,
}

impl Imitation {
    fn start(routes: Vec<(&str, Route)>) -> Imitation {
        let healthy: Vec<(String, Route)> = routes
            .into_iter()
            .map(|(path, route)| (path.to_string(), route))
            .collect();
        let routes = Routes::default();
        let table = routes.clone();
        let imitation = Imitation {
            server: HttpServer::start(move |request| answer(&table, request)),
            routes,
            healthy,
        };
        imitation.restore();
        imitation
    }

    /// `http://127.0.0.1:PORT`, the base URL an example's `*_URL` variable takes.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
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
        self.server.down();
    }

    /// Listens again on the same port.
    pub fn up(&mut self) {
        self.server.up();
    }
}

fn answer(routes: &Routes, req: &http::Request) -> http::Reply {
    let path = req.path();
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
    let authorized = route.bearer.as_ref().is_none_or(|token| {
        req.header("authorization") == Some(format!("Bearer {token}").as_str())
    });
    let (status, body, content_type) = if authorized {
        (route.status, route.body, route.content_type)
    } else {
        (401, r#"{"error":"unauthorized"}"#.to_string(), JSON)
    };
    http::Reply::status(status)
        .header("content-type", content_type)
        .body(body)
        .delay(route.delay)
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
