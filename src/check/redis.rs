//! `redis`: open a fresh connection, `PING` (must answer `PONG`), then read `INFO`.
//!
//! Values: `used_memory`, `maxmemory`, `memory_ratio` (only when `maxmemory` > 0),
//! `connected_clients`, `blocked_clients`, and each configured `info_fields` entry that is
//! present and numeric (absent or non-numeric fields are absent values, not errors).
//!
//! Every probe opens its own connection inside the timeout and drops it afterwards: a pooled
//! or reconnecting connection would hide the outage the probe exists to see. The URL is a
//! secret and never appears in a message: targets are named by [`redact_url`], and any
//! message from the client library is scrubbed of the password. `rediss://` is TLS (rustls,
//! ring), verified against the system's roots or, with `ca_file`, against that CA.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ErrorKind, RedisError};

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::RedisCheck;
use crate::secret::{redact_url, Secret};

/// INFO fields always exposed (when the server reports them).
const FIXED_FIELDS: [&str; 4] = [
    "used_memory",
    "maxmemory",
    "connected_clients",
    "blocked_clients",
];

pub struct RedisProbe {
    client: redis::Client,
    /// The URL with its credentials replaced, for messages.
    target: String,
    /// The URL's password (or bare username), scrubbed from library messages.
    secrets: Vec<String>,
    info_fields: Vec<String>,
    timeout: Duration,
}

impl RedisProbe {
    /// Fails (`setup`) only when the URL cannot be parsed or uses an unsupported scheme.
    pub fn new(spec: &RedisCheck, timeout: Duration) -> Result<Self, ProbeError> {
        let target = redact_url(spec.url.expose());
        let secrets = url_secrets(&spec.url);
        let setup = |msg: String| ProbeError::new(ProbeErrorKind::Setup, scrub(&msg, &secrets));
        let client = match &spec.ca_file {
            None => redis::Client::open(spec.url.expose()),
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|e| setup(format!("read ca_file {}: {e}", path.display())))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(spec.url.expose(), certs)
            }
        }
        .map_err(|e| setup(format!("redis url {target}: {e}")))?;
        Ok(RedisProbe {
            client,
            target,
            secrets,
            info_fields: spec.info_fields.clone(),
            timeout,
        })
    }

    async fn probe(&self) -> Result<Values, ProbeError> {
        // The library's own timeouts turn a silent server into an I/O timeout error rather
        // than a hang; the outer timeout in `run` bounds the whole probe regardless.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.error("connect to", &e))?;

        let pong: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("ping", &e))?;
        if pong != "PONG" {
            return Err(ProbeError::new(
                ProbeErrorKind::Protocol,
                format!(
                    "ping {}: expected PONG, got {:?}",
                    self.target,
                    truncate(&pong, 64)
                ),
            ));
        }

        let info = info(&mut conn).await.map_err(|e| self.error("info", &e))?;
        Ok(info_values(&info, &self.info_fields))
    }

    fn error(&self, action: &str, err: &RedisError) -> ProbeError {
        let (kind, detail) = classify(err);
        let detail = match kind {
            ProbeErrorKind::Timeout => format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ),
            _ => detail,
        };
        ProbeError::new(
            kind,
            scrub(
                &format!("{action} {}: {detail}", self.target),
                &self.secrets,
            ),
        )
    }
}

impl Probe for RedisProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        super::within(self.timeout, &self.target, self.probe()).await
    }
}

async fn info(conn: &mut MultiplexedConnection) -> Result<String, RedisError> {
    redis::cmd("INFO").query_async(conn).await
}

/// Maps a client error to a probe error kind and a message (not yet scrubbed).
fn classify(err: &RedisError) -> (ProbeErrorKind, String) {
    let auth = err.kind() == ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("NOAUTH" | "WRONGPASS"));
    if auth {
        return (
            ProbeErrorKind::Protocol,
            format!("authentication failed: {err}"),
        );
    }
    if err.is_timeout() {
        return (ProbeErrorKind::Timeout, err.to_string());
    }
    if super::is_tls_failure(err) {
        return (ProbeErrorKind::Tls, err.to_string());
    }
    if err.is_connection_refusal() || err.is_io_error() {
        return (ProbeErrorKind::Connect, err.to_string());
    }
    match err.kind() {
        ErrorKind::InvalidClientConfig => (ProbeErrorKind::Setup, err.to_string()),
        _ => (ProbeErrorKind::Protocol, err.to_string()),
    }
}

/// Parses `INFO` output (`key:value` lines, `#` section headers) into the probe's values.
fn info_values(info: &str, extra: &[String]) -> Values {
    let number = |key: &str| -> Option<f64> {
        info.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.trim_end().split_once(':'))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    };
    let mut values = Values::new();
    for key in FIXED_FIELDS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        if let Some(v) = number(key) {
            values.insert(key.to_string(), v);
        }
    }
    if let (Some(used), Some(max)) = (values.get("used_memory"), values.get("maxmemory")) {
        if *max > 0.0 {
            values.insert("memory_ratio".into(), used / max);
        }
    }
    values
}

/// The credentials in a URL's userinfo (`user:password@`), to scrub from messages.
fn url_secrets(url: &Secret) -> Vec<String> {
    let url = url.expose();
    let Some(scheme_end) = url.find("://") else {
        return Vec::new();
    };
    let rest = &url[scheme_end + 3..];
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else {
        return Vec::new();
    };
    let userinfo = &authority[..at];
    let mut secrets: Vec<String> = match userinfo.split_once(':') {
        Some((_, password)) => vec![password.to_string()],
        None => vec![userinfo.to_string()],
    };
    // Also the percent-decoded form, which is what a library would echo back.
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replaces every occurrence of a secret in `message` with `<secret>`.
fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |m, s| {
        m.replace(s.as_str(), "<secret>")
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Server\r\nredis_version:7.0.15\r\n\r\n# Clients\r\n\
        connected_clients:3\r\nblocked_clients:0\r\n# Memory\r\nused_memory:1000\r\n\
        used_memory_human:1000B\r\nmaxmemory:4000\r\n# Stats\r\ninstantaneous_ops_per_sec:7\r\n";

    #[test]
    fn info_values_reads_fixed_and_extra_fields() {
        let extra = vec![
            "instantaneous_ops_per_sec".to_string(),
            "used_memory_human".to_string(),
            "no_such_field".to_string(),
        ];
        let values = info_values(INFO, &extra);
        let got: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            got,
            vec![
                ("blocked_clients", 0.0),
                ("connected_clients", 3.0),
                ("instantaneous_ops_per_sec", 7.0),
                ("maxmemory", 4000.0),
                ("memory_ratio", 0.25),
                ("used_memory", 1000.0),
            ]
        );
    }

    #[test]
    fn memory_ratio_is_absent_without_maxmemory() {
        let values = info_values("used_memory:10\r\nmaxmemory:0\r\n", &[]);
        assert_eq!(values.get("maxmemory"), Some(&0.0));
        assert_eq!(values.get("memory_ratio"), None);
    }

    #[test]
    fn secrets_are_found_and_scrubbed() {
        let secrets = url_secrets(&Secret::new("redis://user:p%40ss@host:6379/0"));
        assert_eq!(secrets, vec!["p%40ss".to_string(), "p@ss".to_string()]);
        assert_eq!(
            scrub("auth p@ss and p%40ss failed", &secrets),
            "auth <secret> and <secret> failed"
        );
        assert!(url_secrets(&Secret::new("redis://host:6379")).is_empty());
    }
}
