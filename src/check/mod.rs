//! Checks: one probe of one target, producing an [`Observation`].
//!
//! A check knows how to reach a target and what it saw, nothing more: it never reads a
//! threshold, never decides a state, never sleeps between runs (the scheduler does). Every
//! probe runs under a timeout, and a failed probe is an observation with an error kind, never
//! a panic. One file per kind, one [`Probe`] trait, a closed [`Prober`] enum to dispatch.

pub mod exec;
pub mod http;
pub mod postgres;
pub mod prometheus;
pub mod redis;
pub mod scrape;
pub mod system;
pub mod tcp;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::clock::{Clock, Timestamp};
use crate::config::{CheckConfig, CheckKind};
use crate::labels::Labels;

/// Named numeric values a probe saw (`up`, `duration_seconds`, `memory_ratio`, ...).
pub type Values = BTreeMap<String, f64>;

/// Named labelled values: one value per label set (a postgres `result = "series"` query's
/// rows, a prometheus check's `result`). A name is either in [`Values`] or here, never both.
pub type Vectors = BTreeMap<String, Vec<(Labels, f64)>>;

/// Everything one successful probe read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub values: Values,
    pub vectors: Vectors,
    /// A scrape's samples, for the series store.
    pub scraped: Option<Vec<crate::series::Scraped>>,
}

impl From<Values> for Reading {
    fn from(values: Values) -> Self {
        Reading {
            values,
            ..Reading::default()
        }
    }
}

/// What one run of one check saw.
#[derive(Debug, Clone)]
pub struct Observation {
    pub check: String,
    /// When the probe started (wall clock).
    pub at: Timestamp,
    pub duration: Duration,
    pub outcome: Result<(), ProbeError>,
    /// Always holds `up` (1 or 0) and `duration_seconds`; a failed probe may hold others it
    /// read before failing (e.g. `status_code` of a failed JSON assertion).
    pub values: Values,
    /// Labelled values of a successful probe (empty when it failed).
    pub vectors: Vectors,
    /// A successful scrape's samples; the engine moves them into its series store.
    pub scraped: Option<Vec<crate::series::Scraped>>,
}

impl Observation {
    pub fn is_up(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Why a probe failed. Rules map a failed probe to `unknown` or a severity of their choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeErrorKind {
    /// The probe did not finish within the check's timeout.
    Timeout,
    /// Could not connect: refused, unreachable, DNS.
    Connect,
    /// TLS handshake or certificate verification failed.
    Tls,
    /// The target answered but not as the protocol requires (bad status, bad PONG, SQL error).
    Protocol,
    /// The target answered properly but an assertion on the answer failed.
    Assertion,
    /// The response body could not be used: too large, not JSON, not a number.
    BadBody,
    /// The probe could not be set up (bad CA file, unparsable URL).
    Setup,
}

impl ProbeErrorKind {
    pub const ALL: [ProbeErrorKind; 7] = [
        ProbeErrorKind::Timeout,
        ProbeErrorKind::Connect,
        ProbeErrorKind::Tls,
        ProbeErrorKind::Protocol,
        ProbeErrorKind::Assertion,
        ProbeErrorKind::BadBody,
        ProbeErrorKind::Setup,
    ];

    /// Stable label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeErrorKind::Timeout => "timeout",
            ProbeErrorKind::Connect => "connect",
            ProbeErrorKind::Tls => "tls",
            ProbeErrorKind::Protocol => "protocol",
            ProbeErrorKind::Assertion => "assertion",
            ProbeErrorKind::BadBody => "bad_body",
            ProbeErrorKind::Setup => "setup",
        }
    }
}

/// A failed probe: a kind and a message naming the target, lowercase, no secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeError {
    pub kind: ProbeErrorKind,
    pub message: String,
    /// Values read before the failure (e.g. `status_code`), kept on the observation.
    pub partial: Values,
}

impl ProbeError {
    pub fn new(kind: ProbeErrorKind, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            message: message.into(),
            partial: Values::new(),
        }
    }

    pub fn with_values(mut self, values: Values) -> Self {
        self.partial = values;
        self
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ProbeError {}

/// Runs `probe` under `timeout`; on expiry, a `timeout` error naming `target`.
pub async fn within<T>(
    timeout: Duration,
    target: &str,
    probe: impl std::future::Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    match tokio::time::timeout(timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err(ProbeError::new(
            ProbeErrorKind::Timeout,
            format!(
                "no answer from {target} within {}",
                humantime::format_duration(timeout)
            ),
        )),
    }
}

/// Whether `err` (or anything in its source chain) is a TLS failure: a rustls error, possibly
/// wrapped in an `io::Error`, or a message about certificates or the handshake. Client
/// libraries wrap TLS errors differently; probes use this to report them as [`ProbeErrorKind::Tls`].
pub fn is_tls_failure(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            if inner.is::<rustls::Error>() {
                return true;
            }
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("handshake") {
            return true;
        }
        current = e.source();
    }
    false
}

/// One kind of probe, built once per config generation and run many times.
///
/// `run` should bound its own connects by the timeout it was built with; [`Prober::observe`]
/// wraps it in the check's timeout as well, so a probe that hangs anyway is cut off.
pub trait Probe: Sync {
    fn run(&self) -> impl std::future::Future<Output = Result<Values, ProbeError>> + Send;

    /// The run with labelled values too; kinds that read series override it.
    fn read(&self) -> impl std::future::Future<Output = Result<Reading, ProbeError>> + Send {
        async { self.run().await.map(Reading::from) }
    }
}

/// Dispatch over the probe kinds; the compiler checks that every kind is handled.
pub enum Prober {
    Http(Box<http::HttpProbe>),
    Tcp(tcp::TcpProbe),
    Tls(self::tls::TlsProbe),
    Redis(self::redis::RedisProbe),
    Postgres(self::postgres::PostgresProbe),
    Exec(exec::ExecProbe),
    System(system::SystemProbe),
    Scrape(Box<scrape::ScrapeProbe>),
    Prometheus(Box<prometheus::PrometheusProbe>),
}

impl Prober {
    /// Prepares the probe for `check` (HTTP clients, TLS configs). Fails only on local setup
    /// problems such as an unreadable CA file. Its HTTP probes connect anew every time.
    pub fn new(check: &CheckConfig) -> Result<Prober, ProbeError> {
        Self::with_clients(check, &mut http::HttpClients::default())
    }

    /// Like [`Prober::new`], with HTTP clients shared through `clients`: prepare every check
    /// of a config with one [`http::HttpClients`], so 10,000 HTTP checks build a handful of
    /// clients rather than 10,000, and checks that may keep their connection take places
    /// from its [`http::KeepAlive`].
    pub fn with_clients(
        check: &CheckConfig,
        clients: &mut http::HttpClients,
    ) -> Result<Prober, ProbeError> {
        let (timeout, interval) = (check.timeout, check.interval);
        Ok(match &check.kind {
            CheckKind::Http(spec) => Prober::Http(Box::new(http::HttpProbe::with_clients(
                spec, timeout, interval, clients,
            )?)),
            CheckKind::Tcp(spec) => Prober::Tcp(tcp::TcpProbe::new(spec, timeout)),
            CheckKind::Tls(spec) => Prober::Tls(self::tls::TlsProbe::new(spec, timeout)?),
            CheckKind::Redis(spec) => Prober::Redis(self::redis::RedisProbe::new(spec, timeout)?),
            CheckKind::Postgres(spec) => {
                Prober::Postgres(self::postgres::PostgresProbe::new(spec, timeout)?)
            }
            CheckKind::Exec(spec) => Prober::Exec(exec::ExecProbe::new(spec, timeout)),
            CheckKind::System(spec) => Prober::System(system::SystemProbe::new(spec, timeout)),
            CheckKind::Scrape(spec) => Prober::Scrape(Box::new(scrape::ScrapeProbe::with_clients(
                spec, timeout, interval, clients,
            )?)),
            CheckKind::Prometheus(spec) => Prober::Prometheus(Box::new(
                prometheus::PrometheusProbe::with_clients(spec, timeout, interval, clients)?,
            )),
        })
    }

    async fn run(&self) -> Result<Reading, ProbeError> {
        match self {
            Prober::Http(p) => p.read().await,
            Prober::Tcp(p) => p.read().await,
            Prober::Tls(p) => p.read().await,
            Prober::Redis(p) => p.read().await,
            Prober::Postgres(p) => p.read().await,
            Prober::Exec(p) => p.read().await,
            Prober::System(p) => p.read().await,
            Prober::Scrape(p) => p.read().await,
            Prober::Prometheus(p) => p.read().await,
        }
    }

    /// Runs the probe once under `timeout` and records what it saw.
    pub async fn observe(&self, check: &str, timeout: Duration, clock: &Clock) -> Observation {
        let at = clock.now();
        let started = tokio::time::Instant::now();
        let result = match tokio::time::timeout(timeout, self.run()).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::new(
                ProbeErrorKind::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            )),
        };
        let duration = started.elapsed();
        let (outcome, mut values, vectors, scraped) = match result {
            Ok(reading) => (Ok(()), reading.values, reading.vectors, reading.scraped),
            Err(mut err) => {
                let values = std::mem::take(&mut err.partial);
                (Err(err), values, Vectors::new(), None)
            }
        };
        values.insert("up".into(), if outcome.is_ok() { 1.0 } else { 0.0 });
        values.insert("duration_seconds".into(), duration.as_secs_f64());
        Observation {
            check: check.to_string(),
            at,
            duration,
            outcome,
            values,
            vectors,
            scraped,
        }
    }
}
