//! `kind = "prometheus"`: an instant query (`expr`) sent to a Prometheus server's
//! `/api/v1/query`, its answer a labelled series value (`result`) for rules.

use super::KindSpec;
use crate::config::compile::{Compiler, Span};
use crate::config::raw::RawCheck;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusCheck {
    /// The server's base URL (`http://127.0.0.1:9090`, or with a path prefix), no trailing
    /// `/`; the probe appends `/api/v1/query`.
    pub url: String,
    /// The PromQL expression, sent as is: the server may evaluate more than warden does, so
    /// config only requires it non-empty and the server judges it.
    pub expr: String,
    /// Extra request headers (`Authorization = "Bearer ${TOKEN}"`); values are secrets.
    pub headers: Vec<(String, Secret)>,
    pub tls_verify: bool,
    pub ca_file: Option<std::path::PathBuf>,
}

impl KindSpec for PrometheusCheck {
    const NAME: &'static str = "prometheus";
    const KEYS: &'static [&'static str] = &["url", "expr", "headers", "tls_verify", "ca_file"];
    /// `result`: the answer, one series per element of the returned vector (a scalar answer
    /// is one unlabelled series); `result_series`: how many series it had.
    const VALUES: &'static [&'static str] = &["result", "result_series"];

    fn series_values(&self) -> Vec<String> {
        vec!["result".into()]
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.headers.iter().map(|(_, v)| v).collect()
    }
}

impl Compiler<'_> {
    pub(in crate::config) fn prometheus(
        &mut self,
        r: &RawCheck,
        header: &Span,
    ) -> Option<PrometheusCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", PrometheusCheck::NAME)
            .and_then(|v| {
                let url = self.http_url(v, "url")?;
                if url.contains(['?', '#']) {
                    self.error(
                        v.span(),
                        "url is the server's base URL (e.g. \"http://127.0.0.1:9090\"), \
                         without a query or fragment: the probe appends /api/v1/query",
                    );
                    return None;
                }
                Some(url.trim_end_matches('/').to_string())
            });
        let expr = self
            .required(&r.expr, header, "expr", PrometheusCheck::NAME)
            .and_then(|v| {
                let text = self.text(v)?;
                if text.trim().is_empty() {
                    self.error(
                        v.span(),
                        "expr must not be empty: a PromQL expression, e.g. \"up\"",
                    );
                    return None;
                }
                Some(text)
            });
        let headers = self.headers(r.headers.as_ref());
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let (url, expr, ca_file) = (url?, expr?, ca_file?);
        (self.problems.len() == before).then(|| PrometheusCheck {
            url,
            expr,
            headers,
            tls_verify: r.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
        })
    }
}
