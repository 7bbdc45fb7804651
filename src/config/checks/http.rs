//! `kind = "http"`: a request, its status and JSON body checked; values extracted from the body.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{builtin_values, KindSpec};
use crate::config::compile::{Compiler, Span};
use crate::config::model::{JsonAssertion, JsonPath};
use crate::config::raw::RawCheck;
use crate::config::{parse_assertion, parse_path};
use crate::secret::Secret;

const DEFAULT_MAX_BODY_BYTES: i64 = 1024 * 1024;
/// Upper bound for an http check's `max_body_bytes`: a body is read into memory up to it.
const MAX_BODY_BYTES: i64 = 64 * 1024 * 1024;

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

impl Compiler<'_> {
    pub(in crate::config) fn http(&mut self, r: &RawCheck, header: &Span) -> Option<HttpCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", HttpCheck::NAME)
            .and_then(|v| self.http_url(v, "url"));
        let method = match &r.method {
            None => Some("GET".to_string()),
            Some(v) => self.text(v).map(|text| {
                if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphabetic()) {
                    self.error(
                        v.span(),
                        format!("invalid method {text:?}: expected an HTTP method such as GET, HEAD or POST"),
                    );
                }
                text.to_ascii_uppercase()
            }),
        };
        let headers = self.headers(r.headers.as_ref());
        let body = r.body.as_ref().and_then(|v| self.text(v));
        let mut expect_status = Vec::new();
        for v in r.expect_status.iter().flat_map(|l| l.get_ref().iter()) {
            if let Some(code) = self.int(v, "expect_status", 100, 599) {
                expect_status.extend(u16::try_from(code).ok());
            }
        }
        let mut assertions = Vec::new();
        for v in r.assert.iter().flat_map(|l| l.get_ref().iter()) {
            if let Some(text) = self.text(v) {
                match parse_assertion(&text) {
                    Ok(a) => assertions.push(a),
                    Err(e) => self.error(v.span(), e),
                }
            }
        }
        let builtin = builtin_values::<HttpCheck>();
        let mut extract = BTreeMap::new();
        for (key, value) in r.extract.iter().flat_map(|m| m.get_ref().0.iter()) {
            let name = key.get_ref();
            if self.value_name(name, key.span(), "value name") && builtin.contains(name) {
                self.error(
                    key.span(),
                    format!(
                        "value name {name:?} is already a built-in value of http checks ({})",
                        builtin.join(", ")
                    ),
                );
            }
            if let Some(text) = self.text(value) {
                match parse_path(&text) {
                    Ok(path) => {
                        extract.insert(name.clone(), path);
                    }
                    Err(e) => self.error(value.span(), e),
                }
            }
        }
        let max_body_bytes = match &r.max_body_bytes {
            None => Some(DEFAULT_MAX_BODY_BYTES),
            Some(v) => self.int(v, "max_body_bytes", 1, MAX_BODY_BYTES),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let (url, method, max_body_bytes, ca_file) = (url?, method?, max_body_bytes?, ca_file?);
        (self.problems.len() == before).then(|| HttpCheck {
            url,
            method,
            headers,
            body,
            expect_status,
            assertions,
            extract,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            tls_verify: r.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
            follow_redirects: r.follow_redirects.as_ref().is_some_and(|v| *v.get_ref()),
        })
    }
}
