//! `kind = "scrape"`: a Prometheus exposition endpoint (`/metrics`), its samples kept in the
//! series store for `expr` rules.

use super::KindSpec;
use crate::config::compile::{Compiler, Span};
use crate::config::raw::RawCheck;
use crate::secret::Secret;

/// A scrape body is read into memory up to this by default (Prometheus has no default
/// bound; a body this size is far past any exporter's).
const DEFAULT_MAX_BODY_BYTES: i64 = 16 * 1024 * 1024;
/// The ceiling of `max_body_bytes`.
const MAX_BODY_BYTES: i64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeCheck {
    pub url: String,
    /// Extra request headers (`Authorization = "Bearer ${TOKEN}"`); values are secrets.
    pub headers: Vec<(String, Secret)>,
    /// `bearer_token` or `bearer_token_file`: sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// History to keep of this target's samples at least, beyond what the expressions read
    /// (`retention = "1d"` for an `offset 1d` baseline read by a query): `None`, only that.
    pub retention: Option<std::time::Duration>,
    pub max_body_bytes: usize,
    pub tls_verify: bool,
    pub ca_file: Option<std::path::PathBuf>,
    /// Keep the samples' own timestamps (default true, as Prometheus' `honor_timestamps`).
    pub honor_timestamps: bool,
    /// `job` and `instance` labels added to every sample that does not carry its own:
    /// default the check's name and the URL's `host:port`.
    pub job: String,
    pub instance: String,
    /// Prometheus' `sample_limit`, `label_limit`, `label_name_length_limit` and
    /// `label_value_length_limit`: a scrape exceeding one fails, naming it.
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

impl KindSpec for ScrapeCheck {
    const NAME: &'static str = "scrape";
    const KEYS: &'static [&'static str] = &[
        "url",
        "headers",
        "max_body_bytes",
        "tls_verify",
        "ca_file",
        "honor_timestamps",
        "job",
        "instance",
        "sample_limit",
        "label_limit",
        "label_name_length_limit",
        "label_value_length_limit",
        "bearer_token",
        "bearer_token_file",
        "retention",
    ];
    /// `samples`: how many samples the last scrape read.
    const VALUES: &'static [&'static str] = &["samples"];

    fn secrets(&self) -> Vec<&Secret> {
        self.headers
            .iter()
            .map(|(_, v)| v)
            .chain(self.bearer_token.as_ref())
            .collect()
    }
}

impl Compiler<'_> {
    pub(in crate::config) fn scrape(
        &mut self,
        r: &RawCheck,
        header: &Span,
        name: &str,
    ) -> Option<ScrapeCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", ScrapeCheck::NAME)
            .and_then(|v| self.http_url(v, "url"));
        let headers = self.headers(r.headers.as_ref());
        let token_file = r.bearer_token_file.as_ref().map(|v| {
            (
                v,
                r.key_span("bearer_token_file").unwrap_or_else(|| v.span()),
            )
        });
        let bearer_token = self
            .secret("bearer_token", r.bearer_token.as_ref(), token_file)
            .map(|t| t.map(|(secret, _)| secret));
        let retention = match &r.retention {
            None => Some(None),
            Some(v) => self.positive_duration(v, "retention").map(Some),
        };
        let max_body_bytes = match &r.max_body_bytes {
            None => Some(DEFAULT_MAX_BODY_BYTES),
            Some(v) => self.int(v, "max_body_bytes", 1, MAX_BODY_BYTES),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let defaults = crate::exposition::Limits::default();
        let limit =
            |c: &mut Self, v: &Option<toml::Spanned<i64>>, what: &str, default: usize| match v {
                None => Some(default),
                Some(v) => c
                    .int(v, what, 1, i64::from(u32::MAX))
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            };
        let sample_limit = limit(self, &r.sample_limit, "sample_limit", defaults.max_samples);
        let label_limit = limit(self, &r.label_limit, "label_limit", defaults.max_labels);
        let name_len = limit(
            self,
            &r.label_name_length_limit,
            "label_name_length_limit",
            defaults.max_label_name_len,
        );
        let value_len = limit(
            self,
            &r.label_value_length_limit,
            "label_value_length_limit",
            defaults.max_label_value_len,
        );
        let job = match &r.job {
            None => Some(name.to_string()),
            Some(v) => self.text(v),
        };
        let instance = match (&r.instance, &url) {
            (Some(v), _) => self.text(v),
            (None, Some(url)) => Some(host_port(url)),
            (None, None) => None,
        };
        let (url, max_body_bytes, ca_file) = (url?, max_body_bytes?, ca_file?);
        let (bearer_token, retention) = (bearer_token?, retention?);
        (self.problems.len() == before).then(|| ScrapeCheck {
            url,
            headers,
            bearer_token,
            retention,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            tls_verify: r.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
            honor_timestamps: r.honor_timestamps.as_ref().is_none_or(|v| *v.get_ref()),
            job: job.unwrap_or_default(),
            instance: instance.unwrap_or_default(),
            sample_limit: sample_limit.unwrap_or_default(),
            label_limit: label_limit.unwrap_or_default(),
            label_name_length_limit: name_len.unwrap_or_default(),
            label_value_length_limit: value_len.unwrap_or_default(),
        })
    }
}

/// `host:port` of an http(s) URL, the port the scheme's default when absent (Prometheus'
/// `instance`).
fn host_port(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_string()
    } else {
        let port = if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            80
        };
        format!("{authority}:{port}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn instance_is_host_and_port() {
        assert_eq!(
            super::host_port("http://127.0.0.1:9100/metrics"),
            "127.0.0.1:9100"
        );
        assert_eq!(
            super::host_port("https://app.example.com/metrics"),
            "app.example.com:443"
        );
        assert_eq!(super::host_port("http://u:p@h/m"), "h:80");
        assert_eq!(super::host_port("http://[::1]:8080/"), "[::1]:8080");
    }
}
