//! `webhook`: one JSON POST per event to any URL, with custom headers.
//!
//! Three bodies:
//! - **warden** (default), [`render_warden`]: `version` `"1"`, `status`
//!   (`firing`|`resolved`|`hook`|`test`), `alert`, `check`, `severity`, `summary`, `value`,
//!   `value_name`, `threshold`, `condition`, `description`, `labels`, `since`, `at`, `deploy`,
//!   `dedup_key`, `hook` (the hook's outcome on `hook` events, else `null`). Absent values
//!   are `null`. A group's notification (`[[policy]] group_by`) adds `group`: `policy`,
//!   `labels` and `alerts`, each alert in this same shape. Examples:
//!   `tests/fixtures/notify/webhook-*.json`.
//! - **alertmanager**, [`render_alertmanager`]: the Alertmanager webhook payload
//!   (`version` `"4"`), so receivers built for Alertmanager work unchanged; a group's
//!   notification carries one alert per alert of the group. Examples:
//!   `tests/fixtures/notify/webhook-alertmanager-*.json`.
//! - a user **template**, [`Template`] (parsed by `config::notifier`, rendered here): any
//!   text with `{{placeholder}}`s (see [`PLACEHOLDERS`](crate::config::notifier::PLACEHOLDERS)), each replaced by the value escaped for the inside of a JSON string
//!   (no quotes added: write `"{{alert}}"`); absent values become empty. An unknown
//!   placeholder is a config error.
//!
//! Classification is the shared HTTP one (`notify::http`): 2xx ok, 429/408/5xx and transport
//! errors retryable, other statuses permanent. The URL is a secret: messages show its origin.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::{json, Value as Json};

use super::{alertmanager, http, origin_of, status_word, summary, WebhookConfig, WebhookFormat};
use crate::alert::{Delivery, Event, EventKind};
use crate::clock::Clock;
use crate::config::notifier::{Field, Part, Template};
use crate::secret::Redactor;
use crate::secret::Secret;

pub struct WebhookNotifier {
    client: reqwest::Client,
    url: Secret,
    /// The URL's origin, for messages.
    shown: String,
    headers: HeaderMap,
    body: Body,
    timeout: Duration,
    clock: Clock,
    /// Secret values, redacted from what the receiver answers before it is quoted.
    redactor: Redactor,
}

#[derive(Debug)]
enum Body {
    Warden,
    Alertmanager {
        receiver: String,
        external_url: Option<String>,
    },
    Template(Template),
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &self.url)
            .field("shown", &self.shown)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("body", &self.body)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    pub(crate) fn new(
        config: &WebhookConfig,
        timeout: Duration,
        name: &str,
        clock: Clock,
        redactor: Redactor,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(config.url.expose())
            .map_err(|_| "url is not a valid URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url must be http or https, got {:?}", url.scheme()));
        }
        let headers =
            http::header_map(config.headers.iter().map(|(n, v)| (n.as_str(), v.expose())))?;
        let body = match (&config.template, config.format) {
            (Some(text), _) => Body::Template(Template::parse(text)?),
            (None, WebhookFormat::Warden) => Body::Warden,
            (None, WebhookFormat::Alertmanager) => Body::Alertmanager {
                receiver: name.to_string(),
                external_url: config.external_url.clone(),
            },
        };
        Ok(WebhookNotifier {
            client: http::client(timeout)?,
            url: config.url.clone(),
            shown: origin_of(config.url.expose()),
            headers,
            body,
            timeout,
            clock,
            redactor,
        })
    }

    /// The request body for `event`.
    pub fn render(&self, event: &Event) -> Vec<u8> {
        match &self.body {
            Body::Warden => render_warden(event).to_string().into_bytes(),
            Body::Alertmanager {
                receiver,
                external_url,
            } => render_alertmanager(event, receiver, external_url.as_deref())
                .to_string()
                .into_bytes(),
            Body::Template(t) => t.render(event).into_bytes(),
        }
    }

    pub(crate) async fn send(&self, event: &Event) -> Delivery {
        let body = self.render(event);
        match http::post(
            &self.client,
            self.url.expose(),
            &self.shown,
            self.headers.clone(),
            body,
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

/// warden's own payload (see the module doc).
pub fn render_warden(event: &Event) -> Json {
    let mut body = json!({
        "version": "1",
        "status": status_word(event.kind),
        "alert": event.alert,
        "check": event.check,
        "severity": event.severity.as_str(),
        "summary": summary(event),
        "value": event.value,
        "value_name": event.value_name,
        "threshold": event.threshold,
        "condition": event.condition,
        "description": event.description,
        "labels": event.labels,
        "since": event.since,
        "at": event.at,
        "deploy": event.deploy,
        "dedup_key": event.dedup_key,
        "hook": event.hook,
    });
    if !event.series.is_empty() {
        body["series"] = json!(event.series);
    }
    if let Some(url) = &event.ack_url {
        body["ack_url"] = json!(url);
    }
    if let Some(group) = &event.group {
        body["group"] = json!({
            "policy": group.policy,
            "labels": group.labels,
            "alerts": group.alerts.iter().map(render_warden).collect::<Vec<_>>(),
        });
    }
    body
}

/// The Alertmanager webhook payload of a group's notification: one alert per alert of the
/// group, `groupLabels` the group's labels, `commonLabels` those every alert shares.
fn render_alertmanager_group(
    event: &Event,
    group: &crate::alert::Group,
    receiver: &str,
    external_url: Option<&str>,
) -> Json {
    let status = status_word(event.kind);
    let alerts: Vec<Json> = group
        .alerts
        .iter()
        .map(|member| {
            let mut one = render_alertmanager(member, receiver, external_url);
            one["alerts"][0].take()
        })
        .collect();
    let mut common: Option<serde_json::Map<String, Json>> = None;
    for a in &alerts {
        let labels = a["labels"].as_object().cloned().unwrap_or_default();
        common = Some(match common {
            None => labels,
            Some(c) => c
                .into_iter()
                .filter(|(k, v)| labels.get(k) == Some(v))
                .collect(),
        });
    }
    let group_labels: serde_json::Map<String, Json> = group
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let group_key = format!(
        "{{}}:{{policy={}}}{}",
        Json::String(group.policy.clone()),
        crate::labels::render(&group.labels)
    );
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common.unwrap_or_default(),
        "commonAnnotations": {},
        "externalURL": external_url.unwrap_or(""),
        "alerts": alerts,
    })
}

/// The Alertmanager webhook payload (`version: "4"`) for one event: one alert, grouped by
/// `alertname`. Firing, hook and test events are `firing` with `endsAt`
/// `0001-01-01T00:00:00Z`; resolved events end at the event's time.
pub fn render_alertmanager(event: &Event, receiver: &str, external_url: Option<&str>) -> Json {
    if let Some(group) = &event.group {
        return render_alertmanager_group(event, group, receiver, external_url);
    }
    let labels = alertmanager::labels(event, event.severity);
    let annotations = alertmanager::annotations(event);
    let resolved = event.kind == EventKind::Resolved;
    let status = if resolved { "resolved" } else { "firing" };
    let ends_at = if resolved {
        event.at.as_str()
    } else {
        "0001-01-01T00:00:00Z"
    };
    let alertname = labels.get("alertname").cloned().unwrap_or_default();
    let group_key = format!("{{}}:{{alertname={}}}", Json::String(alertname.clone()));
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": { "alertname": alertname },
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url.unwrap_or(""),
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": alertmanager::starts_at(event),
            "endsAt": ends_at,
            "generatorURL": external_url.unwrap_or(""),
            "fingerprint": alertmanager::fingerprint(&labels),
        }],
    })
}

impl Template {
    /// The template with every placeholder replaced by its JSON-string-escaped value.
    pub fn render(&self, event: &Event) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(&json_escape(&field_value(f, event))),
            }
        }
        out
    }
}

fn field_value(field: &Field, e: &Event) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    match field {
        Field::Alert => e.alert.clone(),
        Field::Check => e.check.clone(),
        Field::Status => status_word(e.kind).to_string(),
        Field::Severity => e.severity.as_str().to_string(),
        Field::Summary => summary(e),
        Field::Value => num(e.value),
        Field::ValueName => opt(&e.value_name),
        Field::Threshold => num(e.threshold),
        Field::Condition => opt(&e.condition),
        Field::Description => opt(&e.description),
        Field::Since => e.since.clone(),
        Field::At => e.at.clone(),
        Field::Deploy => opt(&e.deploy),
        Field::DedupKey => e.dedup_key.clone(),
        Field::Hook => e.hook.as_ref().map(|h| h.hook.clone()).unwrap_or_default(),
        Field::HookExitCode => e
            .hook
            .as_ref()
            .and_then(|h| h.exit_code)
            .map(|c| c.to_string())
            .unwrap_or_default(),
        Field::Label(name) => e.labels.get(name).cloned().unwrap_or_default(),
    }
}

/// `text` escaped for the inside of a JSON string (no surrounding quotes).
fn json_escape(text: &str) -> String {
    let quoted = Json::String(text.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}
