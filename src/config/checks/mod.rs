//! Check kinds, one file each: the kind's validated spec, the `[[check]]` keys it takes and
//! the values and secrets its checks have ([`KindSpec`]), and its compile step (an
//! `impl Compiler` block, which `compile/checks.rs` calls once it has compiled what every
//! check has). [`CheckKind`] is the closed set of kinds; its methods dispatch to the kind
//! through one match ([`CheckKind::spec`]).
//!
//! Like the rest of `config`: no I/O but through the compiler's `Host`; nothing downstream
//! re-validates a spec.

mod exec;
mod http;
mod postgres;
mod prometheus;
mod redis;
mod scrape;
mod system;
mod tcp;
mod tls;

pub(super) use exec::status_rule;
pub use exec::ExecCheck;
pub use http::HttpCheck;
pub use postgres::{NamedQuery, PostgresCheck, QueryResult, MAX_SERIES_ROWS};
pub use prometheus::PrometheusCheck;
pub use redis::RedisCheck;
pub use scrape::ScrapeCheck;
pub use system::{SystemCheck, SystemScope};
pub use tcp::TcpCheck;
pub use tls::TlsCheck;

use crate::secret::Secret;

/// What config asks of a check kind. Each kind's spec implements it in its own file.
pub trait KindSpec {
    /// The kind's name as written in the config (`kind = "http"`).
    const NAME: &'static str;
    /// The `[[check]]` keys of this kind, besides those every check has (`name`, `kind`,
    /// `interval`, `timeout`, `retry_interval`, `labels`). Each is a field of `RawCheck`.
    const KEYS: &'static [&'static str];
    /// The values every check of this kind has, besides `up` and `duration_seconds`.
    const VALUES: &'static [&'static str];
    /// Whether a rule may read any value name: values only known at run time (an `exec`
    /// check's perfdata), so a value missing then is the rule's `on_missing`.
    const OPEN_VALUES: bool = false;

    /// This check's values besides the kind's own (extracts, info fields, queries).
    fn more_values(&self) -> Vec<String> {
        Vec::new()
    }

    /// The value names that are labelled series; every other value is one number.
    fn series_values(&self) -> Vec<String> {
        Vec::new()
    }

    /// The check's secret values (header values, URLs that may hold passwords, env values).
    fn secrets(&self) -> Vec<&Secret> {
        Vec::new()
    }
}

/// The values every check of kind `K` has: `up` (1 or 0), `duration_seconds`, then the
/// kind's own.
fn builtin_values<K: KindSpec>() -> Vec<String> {
    let mut names: Vec<String> = vec!["up".into(), "duration_seconds".into()];
    names.extend(K::VALUES.iter().map(|s| s.to_string()));
    names
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Tls(TlsCheck),
    Redis(RedisCheck),
    Postgres(PostgresCheck),
    Exec(ExecCheck),
    System(SystemCheck),
    Scrape(ScrapeCheck),
    Prometheus(PrometheusCheck),
}

impl CheckKind {
    /// The one dispatch over kinds: every method below goes through it.
    fn spec(&self) -> &dyn Spec {
        match self {
            CheckKind::Http(c) => c,
            CheckKind::Tcp(c) => c,
            CheckKind::Tls(c) => c,
            CheckKind::Redis(c) => c,
            CheckKind::Postgres(c) => c,
            CheckKind::Exec(c) => c,
            CheckKind::System(c) => c,
            CheckKind::Scrape(c) => c,
            CheckKind::Prometheus(c) => c,
        }
    }

    /// The kind's name as written in the config (`kind = "http"`).
    pub fn name(&self) -> &'static str {
        self.spec().name()
    }

    /// Whether a rule may read any value name: an `exec` check's perfdata labels are only
    /// known at run time, so a value missing then is the rule's `on_missing`.
    pub fn open_values(&self) -> bool {
        self.spec().open_values()
    }

    /// The value names that are labelled series (a postgres query with `result = "series"`,
    /// a prometheus check's `result`);
    /// every other value is one number.
    pub fn series_values(&self) -> Vec<String> {
        self.spec().series_values()
    }

    /// Names of the values an observation of this check can carry, for rules to read.
    /// Every kind has `up` (1 or 0) and `duration_seconds`.
    pub fn value_names(&self) -> Vec<String> {
        self.spec().value_names()
    }

    /// The check's secret values, for `Config::secret_values`.
    pub fn secrets(&self) -> Vec<&Secret> {
        self.spec().secrets()
    }
}

/// [`KindSpec`] as a trait object (its constants make it none), for [`CheckKind::spec`].
trait Spec {
    fn name(&self) -> &'static str;
    fn open_values(&self) -> bool;
    fn value_names(&self) -> Vec<String>;
    fn series_values(&self) -> Vec<String>;
    fn secrets(&self) -> Vec<&Secret>;
}

impl<K: KindSpec> Spec for K {
    fn name(&self) -> &'static str {
        K::NAME
    }

    fn open_values(&self) -> bool {
        K::OPEN_VALUES
    }

    fn value_names(&self) -> Vec<String> {
        let mut names = builtin_values::<K>();
        names.extend(self.more_values());
        names
    }

    fn series_values(&self) -> Vec<String> {
        KindSpec::series_values(self)
    }

    fn secrets(&self) -> Vec<&Secret> {
        KindSpec::secrets(self)
    }
}
