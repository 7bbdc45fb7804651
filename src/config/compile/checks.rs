//! Compiling `[[check]]`: what every check has (name, kind, interval, timeout, retry_interval,
//! labels, the keys its kind does not take) and the dispatch to the kinds ([`Kind`]), whose
//! compile steps live beside their specs in `../checks/`. [`compile`](super::compile) drives.

use toml::Spanned;

use super::{split_host_port, Compiler, Defaults, KindKeys, Span, MIN_INTERVAL, MIN_TIMEOUT};
use crate::config::checks::*;
use crate::config::format_duration;
use crate::config::model::*;
use crate::config::raw::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Http,
    Tcp,
    Tls,
    Redis,
    Postgres,
    Exec,
    System,
    Scrape,
    Prometheus,
}

impl Kind {
    /// Every kind, in the order messages list them.
    const ALL: [Kind; 9] = [
        Kind::Http,
        Kind::Tcp,
        Kind::Tls,
        Kind::Redis,
        Kind::Postgres,
        Kind::Exec,
        Kind::System,
        Kind::Scrape,
        Kind::Prometheus,
    ];

    /// The kind's name and its own `[[check]]` keys, from its [`KindSpec`].
    fn spec(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Kind::Http => (HttpCheck::NAME, HttpCheck::KEYS),
            Kind::Tcp => (TcpCheck::NAME, TcpCheck::KEYS),
            Kind::Tls => (TlsCheck::NAME, TlsCheck::KEYS),
            Kind::Redis => (RedisCheck::NAME, RedisCheck::KEYS),
            Kind::Postgres => (PostgresCheck::NAME, PostgresCheck::KEYS),
            Kind::Exec => (ExecCheck::NAME, ExecCheck::KEYS),
            Kind::System => (SystemCheck::NAME, SystemCheck::KEYS),
            Kind::Scrape => (ScrapeCheck::NAME, ScrapeCheck::KEYS),
            Kind::Prometheus => (PrometheusCheck::NAME, PrometheusCheck::KEYS),
        }
    }

    pub(super) fn name(self) -> &'static str {
        self.spec().0
    }
}

/// The keys every `[[check]]` has, whatever its kind.
const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "interval",
    "timeout",
    "retry_interval",
    "labels",
];

const CHECK_KEYS: KindKeys<Kind> = KindKeys {
    plural: "checks",
    all: RawCheck::KEYS,
    takes: takes_key,
};

/// Whether a `[[check]]` of `kind` takes `key`: a key every check has, or one of its kind's.
fn takes_key(kind: Kind, key: &str) -> bool {
    COMMON_KEYS.contains(&key) || kind.spec().1.contains(&key)
}

impl Compiler<'_> {
    /// Returns the check's valid name (even when the rest is invalid), its kind, and the
    /// compiled check when it has no error.
    pub(super) fn check(
        &mut self,
        raw: &Spanned<RawCheck>,
        defaults: &Defaults,
    ) -> (Option<Spanned<String>>, Option<Kind>, Option<CheckConfig>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        let name = self.name(r.name.as_ref(), &header, "check");
        let kinds = Kind::ALL.map(|k| (k.name(), k));
        let kind = self.kind(r.kind.as_ref(), &header, "check", &kinds);
        self.kind_keys(
            &CHECK_KEYS,
            "check",
            kind.map(|k| (k, k.name())),
            &r.keys,
            &r.unknown,
        );

        let interval = match &r.interval {
            Some(v) => self.duration(v, "interval", MIN_INTERVAL),
            None => Some(defaults.interval),
        };
        let timeout = match &r.timeout {
            Some(v) => self.duration(v, "timeout", MIN_TIMEOUT),
            None => Some(defaults.timeout),
        };
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout > interval {
                let mut message = format!(
                    "timeout {} must not exceed interval {}",
                    format_duration(timeout),
                    format_duration(interval)
                );
                if r.timeout.is_none() {
                    message.push_str(" (the timeout comes from [defaults] or the built-in 10s)");
                }
                let span = r
                    .timeout
                    .as_ref()
                    .or(r.interval.as_ref())
                    .map_or(header.clone(), Spanned::span);
                self.error(span, message);
            }
        }
        let retry_interval = match (&r.retry_interval, interval) {
            (None, _) => Ok(None),
            (Some(v), interval) => match self.duration(v, "retry_interval", MIN_INTERVAL) {
                Some(d) if interval.is_some_and(|i| d >= i) => {
                    self.error(
                        v.span(),
                        format!(
                            "retry_interval {} must be shorter than interval {}: it re-checks a \
                             failing target sooner",
                            format_duration(d),
                            format_duration(interval.unwrap_or_default())
                        ),
                    );
                    Err(())
                }
                Some(d) => Ok(Some(d)),
                None => Err(()),
            },
        };
        let labels = self.labels(r.labels.as_ref());

        let compiled = match kind {
            Some(Kind::Http) => self.http(r, &header).map(CheckKind::Http),
            Some(Kind::Tcp) => self.tcp(r, &header).map(CheckKind::Tcp),
            Some(Kind::Tls) => self.tls(r, &header).map(CheckKind::Tls),
            Some(Kind::Redis) => self.redis(r, &header).map(CheckKind::Redis),
            Some(Kind::Postgres) => self.postgres(r, &header).map(CheckKind::Postgres),
            Some(Kind::Exec) => self.exec(r, &header).map(CheckKind::Exec),
            Some(Kind::System) => self.system(r).map(CheckKind::System),
            Some(Kind::Scrape) => {
                let check = name
                    .as_ref()
                    .map(|n| n.get_ref().clone())
                    .unwrap_or_default();
                self.scrape(r, &header, &check).map(CheckKind::Scrape)
            }
            Some(Kind::Prometheus) => self.prometheus(r, &header).map(CheckKind::Prometheus),
            None => None,
        };

        let config = match (&name, interval, timeout, retry_interval, labels, compiled) {
            (Some(name), Some(interval), Some(timeout), Ok(retry), Some(labels), Some(kind))
                if self.problems.len() == before =>
            {
                Some(CheckConfig {
                    name: name.get_ref().clone(),
                    interval,
                    timeout,
                    // `attempts` is known once the rules are: see `retry_attempts`.
                    retry: retry.map(|interval| Retry {
                        interval,
                        attempts: 1,
                    }),
                    labels,
                    kind,
                })
            }
            _ => None,
        };
        (name, kind, config)
    }

    /// A key a kind requires (`url`, `address`), `kind` its name.
    pub(in crate::config) fn required<'r>(
        &mut self,
        v: &'r Option<Spanned<String>>,
        header: &Span,
        key: &str,
        kind: &str,
    ) -> Option<&'r Spanned<String>> {
        if v.is_none() {
            self.missing(header.clone(), key, &format!("[[check]] of kind {kind:?}"));
        }
        v.as_ref()
    }

    /// A `host:port` address (of a tcp or tls check); returns it and its host (without IPv6
    /// brackets).
    pub(in crate::config) fn address(&mut self, v: &Spanned<String>) -> Option<(String, String)> {
        let text = self.text(v)?;
        match split_host_port(&text) {
            Some(host) => {
                let host = host.to_string();
                Some((text, host))
            }
            None => {
                self.error(
                    v.span(),
                    format!(r#"invalid address {text:?}: expected host:port with a numeric port, e.g. "127.0.0.1:5432""#),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RawCheck` stays one flat table of every kind's keys: each of its keys is one every
    /// check has or one a kind takes, and each key a kind takes is one of its fields.
    #[test]
    fn every_check_key_belongs_to_all_checks_or_to_kinds() {
        for key in RawCheck::KEYS {
            let kinds: Vec<&str> = Kind::ALL
                .iter()
                .filter(|k| k.spec().1.contains(key))
                .map(|k| k.name())
                .collect();
            let common = COMMON_KEYS.contains(key);
            assert!(
                common == kinds.is_empty(),
                "key {key:?} must be common to every check or taken by kinds, not both or neither \
                 (common: {common}, kinds: {kinds:?})"
            );
        }
        for kind in Kind::ALL {
            for key in kind.spec().1 {
                assert!(
                    RawCheck::KEYS.contains(key),
                    "kind {:?} takes {key:?}, which RawCheck lacks",
                    kind.name()
                );
            }
        }
    }
}
