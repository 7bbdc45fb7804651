//! `pagerduty`: PagerDuty Events API v2 (`POST /v2/enqueue`).
//!
//! | event | `event_action` | `payload.severity` |
//! |---|---|---|
//! | firing | `trigger` | the alert's (`critical`, `warning`) |
//! | resolved | `resolve` (only `routing_key`, `event_action`, `dedup_key`) | — |
//! | hook | `trigger` | the alert's |
//! | test | `trigger` | `info` |
//!
//! A warning that becomes critical is a new `trigger` with the same `dedup_key`: PagerDuty
//! updates the open alert. Hook outcomes are triggers too, with the event's `dedup_key`: sent
//! with the incident's key they land in the open incident's timeline rather than paging
//! anew (Events v2 has no "annotate" action). A test page opens an `info` incident that must
//! be resolved by hand (or by a resolve with its key).
//!
//! `dedup_key` is at most 255 bytes: a longer key keeps its first 238 bytes (on a char
//! boundary) and appends `~` and 16 hex digits of its FNV-1a hash, so trigger and resolve
//! still agree. `payload.summary` is at most 1024 characters (cut with `…`). `component`
//! defaults to the event's check; `group` and `class` are sent only when configured.
//! `custom_details` carries alert, check, status, value, value_name, threshold, condition,
//! description, labels, since, at, deploy and the hook outcome.
//! Examples: `tests/fixtures/notify/pagerduty-*.json`.
//!
//! 202 (any 2xx) is ok, 400 permanent (PagerDuty rejects the event), 429 and 5xx retryable.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{fnv1a64, http, status_word, summary, truncate_chars, PagerDutyConfig, FNV_OFFSET};
use crate::alert::{Delivery, Event, EventKind};
use crate::clock::Clock;
use crate::secret::Redactor;
use crate::secret::{redact_url, Secret};

const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;

pub struct PagerDutyNotifier {
    client: reqwest::Client,
    routing_key: Secret,
    url: String,
    shown: String,
    options: Options,
    timeout: Duration,
    clock: Clock,
    /// Secret values, redacted from what the receiver answers before it is quoted.
    redactor: Redactor,
}

/// What the config adds to every event.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: String,
    pub component: Option<String>,
    pub group: Option<String>,
    pub class: Option<String>,
}

impl std::fmt::Debug for PagerDutyNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `url` may hold credentials: only the redacted form is shown.
        f.debug_struct("PagerDutyNotifier")
            .field("routing_key", &self.routing_key)
            .field("url", &self.shown)
            .field("options", &self.options)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl PagerDutyNotifier {
    pub(crate) fn new(
        config: &PagerDutyConfig,
        timeout: Duration,
        clock: Clock,
        redactor: Redactor,
    ) -> Result<Self, String> {
        let shown = redact_url(&config.url);
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("url {shown:?} is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url {shown:?} must be http or https"));
        }
        Ok(PagerDutyNotifier {
            client: http::client(timeout)?,
            routing_key: config.routing_key.clone(),
            url: config.url.clone(),
            shown,
            options: Options {
                source: config.source.clone(),
                component: config.component.clone(),
                group: config.group.clone(),
                class: config.class.clone(),
            },
            timeout,
            clock,
            redactor,
        })
    }

    pub(crate) async fn send(&self, event: &Event) -> Delivery {
        let body = render(event, self.routing_key.expose(), &self.options);
        match http::post(
            &self.client,
            &self.url,
            &self.shown,
            Default::default(),
            body.to_string().into_bytes(),
            self.timeout,
            &self.redactor,
        )
        .await
        {
            Ok(reply) => http::classify(&self.shown, &reply, self.clock.now()),
            Err(delivery) => delivery,
        }
    }
}

/// The Events API v2 body for `event` (see the module doc).
pub fn render(event: &Event, routing_key: &str, options: &Options) -> Json {
    let dedup_key = dedup_key(&event.dedup_key);
    let (action, severity) = match event.kind {
        EventKind::Resolved => {
            return json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": dedup_key,
            });
        }
        EventKind::Firing | EventKind::Hook => ("trigger", event.severity.as_str()),
        EventKind::Test | EventKind::Notice => ("trigger", "info"),
    };
    let mut payload = json!({
        "summary": truncate_chars(&summary(event), MAX_SUMMARY),
        "source": options.source,
        "severity": severity,
        "timestamp": event.at,
        "component": options.component.as_deref().unwrap_or(&event.check),
        "custom_details": {
            "alert": event.alert,
            "check": event.check,
            "status": status_word(event.kind),
            "value": event.value,
            "value_name": event.value_name,
            "threshold": event.threshold,
            "condition": event.condition,
            "description": event.description,
            "labels": event.labels,
            "since": event.since,
            "at": event.at,
            "deploy": event.deploy,
            "hook": event.hook,
        },
    });
    if !event.series.is_empty() {
        payload["custom_details"]["series"] = json!(event.series);
    }
    if let Some(g) = &options.group {
        payload["group"] = json!(g);
    }
    if let Some(c) = &options.class {
        payload["class"] = json!(c);
    }
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
        "client": "warden",
        "payload": payload,
    });
    if let Some(url) = &event.ack_url {
        body["links"] = json!([{ "href": url, "text": "Acknowledge in warden" }]);
    }
    body
}

/// `key` if it fits PagerDuty's 255 bytes, else a stable shortened form (see the module doc).
pub fn dedup_key(key: &str) -> String {
    if key.len() <= MAX_DEDUP_KEY {
        return key.to_string();
    }
    let mut end = MAX_DEDUP_KEY - 17;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}~{:016x}",
        &key[..end],
        fnv1a64(key.as_bytes(), FNV_OFFSET)
    )
}
