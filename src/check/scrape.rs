//! `scrape`: fetch a Prometheus exposition endpoint and hand its samples to the series store.
//!
//! The request asks for OpenMetrics first and text 0.0.4 after (the `Accept` header
//! Prometheus sends), and the response's Content-Type picks the parser
//! (`exposition::Format::from_content_type`). The body is read against `max_body_bytes` as it
//! arrives, then parsed strictly within the check's limits (`sample_limit`, `label_limit`,
//! label name and value lengths): a body that breaks any of them fails the scrape with the
//! line and the reason, and nothing of it is stored. Every sample gets `job` and `instance`
//! unless it carries its own; its own timestamp is kept when `honor_timestamps` (the default).
//!
//! Values: `samples` (how many the scrape read), besides `up` and `duration_seconds`.

use std::time::Duration;

use super::http::{classify, read_body, ClientSettings, Connections, HttpClients, Target};
use super::{Probe, ProbeError, ProbeErrorKind, Reading, Values};
use crate::config::ScrapeCheck;
use crate::exposition::{self, Format, Limits};
use crate::promql::METRIC_NAME;
use crate::secret::redact_url;

/// What Prometheus 2.42 asks a target for.
const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

pub struct ScrapeProbe {
    connections: Connections,
    spec: ScrapeCheck,
    shown_url: String,
    limits: Limits,
}

impl ScrapeProbe {
    pub fn with_clients(
        spec: &ScrapeCheck,
        timeout: Duration,
        interval: Duration,
        clients: &mut HttpClients,
    ) -> Result<Self, ProbeError> {
        let connections = clients.connections(
            ClientSettings {
                timeout,
                tls_verify: spec.tls_verify,
                ca_file: spec.ca_file.clone(),
                follow_redirects: false,
            },
            &Target {
                url: &spec.url,
                interval,
                idempotent: true,
            },
        )?;
        Ok(ScrapeProbe {
            connections,
            shown_url: redact_url(&spec.url),
            limits: Limits {
                max_samples: spec.sample_limit,
                max_labels: spec.label_limit,
                max_label_name_len: spec.label_name_length_limit,
                max_label_value_len: spec.label_value_length_limit,
                ..Limits::default()
            },
            spec: spec.clone(),
        })
    }

    fn fail(&self, kind: ProbeErrorKind, what: impl std::fmt::Display) -> ProbeError {
        ProbeError::new(kind, format!("scrape {}: {what}", self.shown_url))
    }
}

impl Probe for ScrapeProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        self.read().await.map(|r| r.values)
    }

    async fn read(&self) -> Result<Reading, ProbeError> {
        let request = |client: &reqwest::Client| {
            let mut request = client
                .get(&self.spec.url)
                .header("accept", ACCEPT)
                .header("x-prometheus-scrape-timeout-seconds", "10");
            for (name, value) in &self.spec.headers {
                request = request.header(name.as_str(), value.expose());
            }
            if let Some(token) = &self.spec.bearer_token {
                request = request.bearer_auth(token.expose());
            }
            request
        };
        let mut response = self
            .connections
            .send(request)
            .await
            .map_err(|e| classify(&e, "GET", &self.shown_url))?;
        let status = response.status().as_u16();
        let mut values = Values::new();
        values.insert("status_code".into(), f64::from(status));
        if !(200..300).contains(&status) {
            return Err(self.fail(
                ProbeErrorKind::Protocol,
                format!("status {status}, expected 2xx"),
            ));
        }
        let format = Format::from_content_type(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let limit = self.spec.max_body_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(self.fail(
                ProbeErrorKind::BadBody,
                format!("body larger than max_body_bytes ({limit})"),
            ));
        }
        let body = match read_body(&mut response, limit, true).await {
            Ok(body) => body,
            Err(None) => {
                return Err(self.fail(
                    ProbeErrorKind::BadBody,
                    format!("body larger than max_body_bytes ({limit})"),
                ))
            }
            Err(Some(e)) => return Err(classify(&e, "GET", &self.shown_url)),
        };
        // Parsing a large body takes a while (a 16 MiB body ~ 60 ms in release, far more in a
        // debug build): on the blocking pool, never on the runtime worker that runs every
        // other probe and the HTTP server.
        let limits = self.limits.clone();
        let parsed = tokio::task::spawn_blocking(move || exposition::parse(&body, format, &limits))
            .await
            .map_err(|e| self.fail(ProbeErrorKind::Setup, format!("parser task failed: {e}")))?
            .map_err(|e| self.fail(ProbeErrorKind::BadBody, e))?;
        let mut values = Values::new();
        values.insert("samples".into(), parsed.samples.len() as f64);
        let scraped = parsed
            .samples
            .into_iter()
            .map(|s| {
                let mut labels = s.labels;
                labels
                    .entry("job".into())
                    .or_insert_with(|| self.spec.job.clone());
                labels
                    .entry("instance".into())
                    .or_insert_with(|| self.spec.instance.clone());
                labels.insert(METRIC_NAME.into(), s.name);
                let ts = s.timestamp_ms.filter(|_| self.spec.honor_timestamps);
                (labels, ts, s.value)
            })
            .collect();
        Ok(Reading {
            values,
            scraped: Some(scraped),
            ..Reading::default()
        })
    }
}
