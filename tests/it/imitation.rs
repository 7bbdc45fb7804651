//! In-process imitations of the HTTP services of the five runbooks in `seeds/`: each answers
//! the paths its runbook curls with the bodies the runbook shows, byte for byte where it shows
//! one, and a test breaks it the way the runbook fears: an error status, an unhealthy component
//! in the JSON, an answer slower than the probe's timeout, a closed port (connection refused).
//!
//! Each system's `/metrics` as a scrape target is an imitation of its own ([`metrics`]): its
//! counters grow in real time at the rate and error share the test sets, its histograms
//! observe the latency the test sets, its gauges read what the test sets ([`Traffic`]).
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
    /// When set, the body is these traffics' metrics as of the request (`body` is unused): one
    /// per version of the service, each series labelled with its version.
    live: Vec<Live>,
}

impl Route {
    fn json(body: &str) -> Route {
        Route {
            status: 200,
            body: body.to_string(),
            content_type: JSON,
            delay: Duration::ZERO,
            bearer: None,
            live: Vec::new(),
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
        route.live = Vec::new();
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
            live: Vec::new(),
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
    let body = if route.live.is_empty() {
        route.body
    } else {
        render(&route.live)
    };
    let (status, body, content_type) = if authorized {
        (route.status, body, route.content_type)
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

/// What a system's `/metrics` exports, in the runbook's own names where it gives them (each
/// system's spec below says which names are conventional): a request counter, split by a
/// status label or paired with an errors counter, latency histograms, and gauges.
pub struct MetricsSpec {
    /// The request counter (`http_requests_total`).
    pub requests: &'static str,
    /// Its status-code label (`status`, or `code` as Go's promhttp names it); `None` when the
    /// errors are a counter of their own.
    pub status_label: Option<&'static str>,
    /// A separate errors counter (nova-streaming's `nova_http_errors_total`).
    pub errors: Option<&'static str>,
    /// Classic histograms (`<name>_bucket{le=...}`, `_sum`, `_count`), in seconds.
    pub histograms: &'static [&'static str],
    /// Gauges: name, labels as exported (`{service="ai"}` or empty), starting value.
    pub gauges: &'static [(&'static str, &'static str, f64)],
}

/// Python's prometheus_client default buckets (also client_golang's, less 0.075/0.75/7.5).
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

type Live = Arc<Mutex<TrafficState>>;

/// The counters as of the last scrape and what the traffic is now.
#[derive(Debug)]
struct TrafficState {
    spec_requests: &'static str,
    status_label: Option<&'static str>,
    errors_name: Option<&'static str>,
    /// The label every series of this traffic carries (`version="canary"`), if any.
    version: Option<(&'static str, &'static str)>,
    last: std::time::Instant,
    /// Requests per second.
    rate: f64,
    /// The share of them answered 5xx.
    error_share: f64,
    ok: f64,
    errors: f64,
    /// Per histogram: every request takes this long; observations per bucket (not
    /// cumulative; the last is +Inf), sum and count.
    histograms: Vec<(&'static str, f64, Vec<f64>, f64, f64)>,
    gauges: Vec<(&'static str, &'static str, f64)>,
}

/// One metric family of a body: name, type, HELP (if any) and its sample lines.
type Family = (&'static str, &'static str, Option<&'static str>, String);

/// The body of a `/metrics` serving `lives` (each advanced to now), in text format 0.0.4:
/// each family once, with the samples of every traffic under it.
fn render(lives: &[Live]) -> String {
    let mut families: Vec<Family> = Vec::new();
    for live in lives {
        let mut state = live.lock().expect("traffic lock");
        state.advance();
        state.families(&mut families);
    }
    let mut out = String::new();
    for (name, kind, help, lines) in families {
        if let Some(help) = help {
            out.push_str(&format!("# HELP {name} {help}\n"));
        }
        out.push_str(&format!("# TYPE {name} {kind}\n{lines}"));
    }
    out
}

impl TrafficState {
    /// Advances the counters to now.
    fn advance(&mut self) {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = std::time::Instant::now();
        let n = self.rate * dt;
        self.errors += n * self.error_share;
        self.ok += n * (1.0 - self.error_share);
        for (_, latency, buckets, sum, count) in &mut self.histograms {
            let i = BUCKETS
                .iter()
                .position(|le| *latency <= *le)
                .unwrap_or(BUCKETS.len());
            buckets[i] += n;
            *sum += n * *latency;
            *count += n;
        }
    }

    /// `{version="canary",extra}`: this traffic's version label, then `extra`.
    fn labels(&self, extra: &str) -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((name, value)) = self.version {
            parts.push(format!("{name}=\"{value}\""));
        }
        let extra = extra.trim_start_matches('{').trim_end_matches('}');
        if !extra.is_empty() {
            parts.push(extra.to_string());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    }

    /// Adds this traffic's samples to `families` (a family already there gets them appended).
    fn families(&self, families: &mut Vec<Family>) {
        let mut add = |name: &'static str, kind, help, lines: String| match families
            .iter_mut()
            .find(|f| f.0 == name)
        {
            Some(f) => f.3.push_str(&lines),
            None => families.push((name, kind, help, lines)),
        };
        let name = self.spec_requests;
        let mut lines = String::new();
        match (self.status_label, self.errors_name) {
            (Some(label), _) => {
                let l = self.labels(&format!("{label}=\"200\""));
                lines.push_str(&format!("{name}{l} {}\n", self.ok));
                // Like a client library's labelled child, the 5xx series exists from the
                // first error on.
                if self.errors > 0.0 {
                    let l = self.labels(&format!("{label}=\"500\""));
                    lines.push_str(&format!("{name}{l} {}\n", self.errors));
                }
                add(name, "counter", Some("Requests served."), lines);
            }
            (None, errors) => {
                let l = self.labels("");
                lines.push_str(&format!("{name}{l} {}\n", self.ok + self.errors));
                add(name, "counter", Some("Requests served."), lines);
                if let Some(errors) = errors {
                    add(
                        errors,
                        "counter",
                        None,
                        format!("{errors}{l} {}\n", self.errors),
                    );
                }
            }
        }
        for (name, _, buckets, sum, count) in &self.histograms {
            let mut lines = String::new();
            let mut cumulative = 0.0;
            for (le, n) in BUCKETS.iter().zip(buckets) {
                cumulative += n;
                let l = self.labels(&format!("le=\"{le}\""));
                lines.push_str(&format!("{name}_bucket{l} {cumulative}\n"));
            }
            let l = self.labels("le=\"+Inf\"");
            lines.push_str(&format!("{name}_bucket{l} {count}\n"));
            let l = self.labels("");
            lines.push_str(&format!("{name}_sum{l} {sum}\n{name}_count{l} {count}\n"));
            add(name, "histogram", None, lines);
        }
        for (name, labels, value) in &self.gauges {
            let l = self.labels(labels);
            add(name, "gauge", None, format!("{name}{l} {value}\n"));
        }
    }
}

/// The handle a test steers an imitation's `/metrics` with: the traffic changes at once, the
/// counters grow from the last scrape on at the new rate and share.
#[derive(Clone)]
pub struct Traffic(Live);

impl Traffic {
    fn with(&self, f: impl FnOnce(&mut TrafficState)) {
        let mut state = self.0.lock().expect("traffic lock");
        // What was served until now was served at the old rate and share.
        state.advance();
        f(&mut state);
    }

    /// This share of the requests answers 5xx from now on.
    pub fn set_error_share(&self, share: f64) {
        self.with(|s| s.error_share = share);
    }

    /// Requests per second from now on.
    pub fn set_rate(&self, rate: f64) {
        self.with(|s| s.rate = rate);
    }

    /// Every request observed in `histogram` takes `seconds` from now on.
    pub fn set_latency(&self, histogram: &str, seconds: f64) {
        self.with(|s| {
            let h = s
                .histograms
                .iter_mut()
                .find(|h| h.0 == histogram)
                .unwrap_or_else(|| panic!("no histogram {histogram}"));
            h.1 = seconds;
        });
    }

    /// Every series of gauge `name` reads `value` from now on.
    pub fn set_gauge(&self, name: &str, value: f64) {
        self.with(|s| {
            let mut found = false;
            for g in s.gauges.iter_mut().filter(|g| g.0 == name) {
                g.2 = value;
                found = true;
            }
            assert!(found, "no gauge {name}");
        });
    }

    /// The runbook's healthy traffic again: 100 requests/s, no errors, 20 ms answers, the
    /// gauges at their starting values.
    pub fn restore(&self, spec: &MetricsSpec) {
        self.with(|s| {
            s.rate = 100.0;
            s.error_share = 0.0;
            for h in &mut s.histograms {
                h.1 = 0.02;
            }
            s.gauges = spec.gauges.to_vec();
        });
    }
}

/// A system's `/metrics` (`spec`) with healthy traffic, on a port of its own: the scrape
/// target a test points `<SYSTEM>_METRICS_URL` at. (The system's other imitation keeps its
/// static `/metrics` for the http checks that probe it, so a test failing exactly N of those
/// probes counts only theirs.)
pub fn metrics(spec: &MetricsSpec) -> (Imitation, Traffic) {
    let live = traffic_state(spec, None);
    let route = Route {
        live: vec![live.clone()],
        ..Route::metrics("")
    };
    (Imitation::start(vec![("/metrics", route)]), Traffic(live))
}

/// A system's `/metrics` (`spec`) served by several versions of it at once (a canary beside
/// the stable, green beside blue): each of `versions` has a traffic of its own, healthy at
/// first, and every series carries its `label` (`version="canary"`). The traffics are
/// returned in the order of `versions`.
pub fn versioned_metrics(
    spec: &MetricsSpec,
    label: &'static str,
    versions: &[&'static str],
) -> (Imitation, Vec<Traffic>) {
    let lives: Vec<Live> = versions
        .iter()
        .map(|v| traffic_state(spec, Some((label, v))))
        .collect();
    let route = Route {
        live: lives.clone(),
        ..Route::metrics("")
    };
    (
        Imitation::start(vec![("/metrics", route)]),
        lives.into_iter().map(Traffic).collect(),
    )
}

fn traffic_state(spec: &MetricsSpec, version: Option<(&'static str, &'static str)>) -> Live {
    Arc::new(Mutex::new(TrafficState {
        spec_requests: spec.requests,
        status_label: spec.status_label,
        errors_name: spec.errors,
        version,
        last: std::time::Instant::now(),
        rate: 100.0,
        error_share: 0.0,
        ok: 0.0,
        errors: 0.0,
        histograms: spec
            .histograms
            .iter()
            .map(|name| (*name, 0.02, vec![0.0; BUCKETS.len() + 1], 0.0, 0.0))
            .collect(),
        gauges: spec.gauges.to_vec(),
    }))
}

/// Nuvie's backend (nuvie-runbook.md, Monitoring & Alerts): the alert rules' own
/// `http_requests_total{status}` and `http_request_duration_seconds`, and the circuit breaker
/// `curl .../metrics | grep circuit` looks for (the runbook names no metric: the conventional
/// `circuit_breaker_open`, 1 while open, one series per breaker).
pub const NUVIE_METRICS: MetricsSpec = MetricsSpec {
    requests: "http_requests_total",
    status_label: Some("status"),
    errors: None,
    histograms: &["http_request_duration_seconds"],
    gauges: &[("circuit_breaker_open", "{breaker=\"ai-service\"}", 0.0)],
};

/// Redcube's content service: the runbook reads error rate and latency from logs
/// (`"status":500`, `duration_ms`) and names no metric; the conventional names.
pub const REDCUBE_METRICS: MetricsSpec = MetricsSpec {
    requests: "http_requests_total",
    status_label: Some("status"),
    errors: None,
    histograms: &["http_request_duration_seconds"],
    gauges: &[],
};

/// Nova Streaming's API (nova-streaming-runbook.md, Monitoring and Validation): its queries'
/// `nova_http_request_duration_seconds`, `nova_http_errors_total`,
/// `nova_streaming_websocket_connections`, `pg_query_duration_seconds`; the request counter
/// the error rate divides by is unnamed there (`nova_http_requests_total`, conventional).
pub const NOVA_STREAMING_METRICS: MetricsSpec = MetricsSpec {
    requests: "nova_http_requests_total",
    status_label: None,
    errors: Some("nova_http_errors_total"),
    histograms: &[
        "nova_http_request_duration_seconds",
        "pg_query_duration_seconds",
    ],
    gauges: &[
        ("nova_streaming_websocket_connections", "", 1200.0),
        ("nova_streaming_active_streams", "", 3.0),
    ],
};

/// The AI SaaS gateway: the runbook's `http_requests_total` (its Prometheus query);
/// `http_request_duration_seconds` for its P95/P99, conventional.
pub const AI_SAAS_METRICS: MetricsSpec = MetricsSpec {
    requests: "http_requests_total",
    status_label: Some("status"),
    errors: None,
    histograms: &["http_request_duration_seconds"],
    gauges: &[],
};

/// NovaCron's API, a Go service (`go_memstats` in its runbook): its runbook's
/// `http_requests_total` and `http_request_duration_seconds`, the status label `code` as Go's
/// promhttp names it, and the `dwcp_` gauges its metrics check greps for.
pub const NOVACRON_METRICS: MetricsSpec = MetricsSpec {
    requests: "http_requests_total",
    status_label: Some("code"),
    errors: None,
    histograms: &["http_request_duration_seconds"],
    gauges: &[("dwcp_active_streams", "", 15.0)],
};
