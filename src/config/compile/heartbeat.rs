//! Compiling the main file's `[heartbeat]`: the outbound heartbeat to a dead man's switch.

use std::time::Duration;

use toml::Spanned;

use super::{is_http_url, Compiler};
use crate::config::format_duration;
use crate::config::model::*;
use crate::config::raw::*;

/// A beat a minute: what dead man's switch services expect by default.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a beat may wait for its answer unless set (never more than the interval).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Compiler<'_> {
    /// `Some(None)` without a `[heartbeat]`, `None` on error.
    pub(super) fn heartbeat(
        &mut self,
        raw: Option<&Spanned<RawHeartbeat>>,
    ) -> Option<Option<HeartbeatConfig>> {
        let Some(raw) = raw else { return Some(None) };
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [heartbeat]", RawHeartbeat::KEYS);
        let file = r
            .url_file
            .as_ref()
            .map(|v| (v, r.key_span("url_file").unwrap_or_else(|| v.span())));
        let url = match self.secret("heartbeat.url", r.url.as_ref(), file) {
            None => None,
            Some(None) => {
                self.error(
                    raw.span(),
                    r#"missing required key "url" (or "url_file") in [heartbeat]"#,
                );
                None
            }
            // The message names the key, never the URL: its path is often the credential.
            Some(Some((secret, span))) if !is_http_url(secret.expose()) => {
                let what = match &r.url {
                    Some(_) => "heartbeat.url",
                    None => "the heartbeat.url in heartbeat.url_file",
                };
                self.error(
                    span,
                    format!("{what} must be an http:// or https:// URL with a host"),
                );
                None
            }
            Some(Some((secret, _))) => Some(secret),
        };
        let interval = match &r.interval {
            None => Some(DEFAULT_INTERVAL),
            Some(v) => self.positive_duration(v, "heartbeat interval"),
        };
        let timeout = match (&r.timeout, interval) {
            (None, interval) => Some(DEFAULT_TIMEOUT.min(interval.unwrap_or(DEFAULT_TIMEOUT))),
            (Some(v), interval) => match self.positive_duration(v, "heartbeat timeout") {
                Some(t) if interval.is_some_and(|i| t > i) => {
                    let i = interval.unwrap_or_default();
                    self.error(
                        v.span(),
                        format!(
                            "heartbeat timeout {} must not exceed its interval {}",
                            format_duration(t),
                            format_duration(i)
                        ),
                    );
                    None
                }
                t => t,
            },
        };
        let method = match &r.method {
            None => Some(HeartbeatMethod::Get),
            Some(v) => self.one_of(
                v,
                "heartbeat method",
                &[
                    ("GET", HeartbeatMethod::Get),
                    ("POST", HeartbeatMethod::Post),
                ],
            ),
        };
        let headers = self.headers(r.headers.as_ref());
        let config = HeartbeatConfig {
            url: url?,
            interval: interval?,
            timeout: timeout?,
            method: method?,
            headers,
        };
        (self.problems.len() == before).then_some(Some(config))
    }
}
