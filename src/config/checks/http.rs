//! `kind = "http"`: a request, its status and JSON body checked; values extracted from the body.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::KindSpec;
use crate::config::model::{JsonAssertion, JsonPath};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub url: String,
    /// Upper-case method name, default `GET`.
    pub method: String,
    /// Header values may hold credentials, so they are secrets.
    pub headers: Vec<(String, Secret)>,
    pub body: Option<String>,
    /// Accepted status codes; empty means any 2xx.
    pub expect_status: Vec<u16>,
    pub assertions: Vec<JsonAssertion>,
    /// Value name → JSON path of a number (or bool, as 1/0) in the body.
    pub extract: BTreeMap<String, JsonPath>,
    /// Bodies larger than this fail the probe (`bad-body`). Default 1 MiB, at most 64 MiB.
    pub max_body_bytes: usize,
    /// Verify the server certificate (default true).
    pub tls_verify: bool,
    /// Extra CA certificates (PEM) to trust.
    pub ca_file: Option<PathBuf>,
    /// Follow redirects (default false: a health endpoint that redirects is reported as such).
    pub follow_redirects: bool,
}

impl KindSpec for HttpCheck {
    const NAME: &'static str = "http";
    const KEYS: &'static [&'static str] = &[
        "url",
        "method",
        "headers",
        "body",
        "expect_status",
        "assert",
        "extract",
        "max_body_bytes",
        "tls_verify",
        "ca_file",
        "follow_redirects",
    ];
    const VALUES: &'static [&'static str] = &["status_code"];

    fn more_values(&self) -> Vec<String> {
        self.extract.keys().cloned().collect()
    }

    fn secrets(&self) -> Vec<&Secret> {
        self.headers.iter().map(|(_, v)| v).collect()
    }
}
