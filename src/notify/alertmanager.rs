//! `alertmanager`: push alerts into an Alertmanager (`POST {url}/api/v2/alerts`), so teams
//! with an Alertmanager keep their routing, silences and inhibitions.
//!
//! An Alertmanager holds an alert only until its `endsAt`: a firing alert is sent with
//! `endsAt = now + 4 × resend_every` and must be re-sent while it fires (every
//! `resend_every`, like Prometheus; scheduling that is the alert stage's job, not this
//! file's). A resolved alert is sent at once with `endsAt` = the time it resolved.
//!
//! Identity is the label set: `alertname` (the rule), `severity`, `check` and the rule's
//! labels (invalid label-name characters become `_`). Because `severity` is part of it, a
//! firing push also resolves the *other* severity's alert in the same request, so a warning
//! that escalates to critical does not linger as a stale warning (and back); a resolve
//! resolves both. Hook outcomes are pushed as a separate `alertname="WardenHook"` alert
//! (labels `alert`, `hook`, `outcome`) that expires on its own; test pages as a normal alert.
//! Examples: `tests/fixtures/notify/alertmanager-*.json`.
//!
//! [`labels`], [`annotations`] and [`fingerprint`] are shared with the webhook's Alertmanager
//! format. [`fingerprint`] is Alertmanager's own (FNV-1a 64 over sorted names and values,
//! each followed by byte 255), so it matches what Alertmanager reports for the alert.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{fnv1a64, format_value, http, measurement, summary, AlertmanagerConfig, FNV_OFFSET};
use crate::alert::{Delivery, Event, EventKind, Severity};
use crate::clock::{Clock, Timestamp};
use crate::secret::redact_url;
use crate::secret::Redactor;

pub struct AlertmanagerNotifier {
    client: reqwest::Client,
    endpoint: String,
    /// The endpoint with credentials redacted, for messages.
    shown: String,
    resend_every: Duration,
    generator_url: Option<String>,
    timeout: Duration,
    clock: Clock,
    /// Secret values, redacted from what the receiver answers before it is quoted.
    redactor: Redactor,
}

impl std::fmt::Debug for AlertmanagerNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `endpoint` may hold credentials: only the redacted form is shown.
        f.debug_struct("AlertmanagerNotifier")
            .field("endpoint", &self.shown)
            .field("resend_every", &self.resend_every)
            .field("generator_url", &self.generator_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AlertmanagerNotifier {
    pub(crate) fn new(
        config: &AlertmanagerConfig,
        timeout: Duration,
        clock: Clock,
        redactor: Redactor,
    ) -> Result<Self, String> {
        let shown_base = redact_url(&config.url);
        let base = reqwest::Url::parse(&config.url)
            .map_err(|e| format!("url {shown_base:?} is not a valid URL: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("url {shown_base:?} must be http or https"));
        }
        let endpoint = format!("{}/api/v2/alerts", config.url.trim_end_matches('/'));
        Ok(AlertmanagerNotifier {
            client: http::client(timeout)?,
            shown: redact_url(&endpoint),
            endpoint,
            resend_every: config.resend_every,
            generator_url: config.generator_url.clone(),
            timeout,
            clock,
            redactor,
        })
    }

    pub(crate) fn resend_every(&self) -> Duration {
        self.resend_every
    }

    pub(crate) async fn send(&self, event: &Event) -> Delivery {
        let now = self.clock.now();
        let body = render(event, now, self.resend_every, self.generator_url.as_deref());
        match http::post(
            &self.client,
            &self.endpoint,
            &self.shown,
            Default::default(),
            body.to_string().into_bytes(),
            self.timeout,
            &self.redactor,
        )
        .await
        {
            Ok(reply) => http::classify(&self.shown, &reply, now),
            Err(delivery) => delivery,
        }
    }
}

/// The `POST /api/v2/alerts` body for `event` sent at `now` (see the module doc).
pub fn render(
    event: &Event,
    now: Timestamp,
    resend_every: Duration,
    generator_url: Option<&str>,
) -> Json {
    let expires = (now + resend_every.saturating_mul(4)).to_rfc3339();
    let now_text = now.to_rfc3339();
    let alert = |severity: Severity, ends_at: &str| {
        let mut notes = annotations(event);
        if event.kind == EventKind::Firing && severity != event.severity {
            notes.insert(
                "summary".into(),
                format!(
                    "superseded: {} on {} is now {} — {}",
                    event.title(),
                    event.check,
                    event.severity.as_str(),
                    measurement(event)
                ),
            );
        }
        let mut a = json!({
            "labels": labels(event, severity),
            "annotations": notes,
            "startsAt": starts_at(event),
            "endsAt": ends_at,
        });
        if let Some(url) = generator_url {
            a["generatorURL"] = json!(url);
        }
        a
    };
    let other = match event.severity {
        Severity::Critical => Severity::Warning,
        Severity::Warning => Severity::Critical,
    };
    match event.kind {
        EventKind::Firing => json!([alert(event.severity, &expires), alert(other, &now_text)]),
        EventKind::Resolved => {
            let ended = if humantime::parse_rfc3339_weak(&event.at).is_ok() {
                event.at.as_str()
            } else {
                now_text.as_str()
            };
            json!([alert(event.severity, ended), alert(other, ended)])
        }
        EventKind::Hook | EventKind::Test | EventKind::Notice => {
            json!([alert(event.severity, &expires)])
        }
    }
}

/// The alert's identity: `alertname`, `severity`, `check` and the rule's labels; for hook
/// events `alertname="WardenHook"` with `alert`, `hook` and `outcome`.
pub fn labels(event: &Event, severity: Severity) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = event
        .labels
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    out.insert("check".into(), event.check.clone());
    out.insert("severity".into(), severity.as_str().into());
    match (&event.kind, &event.hook) {
        (EventKind::Hook, Some(hook)) => {
            out.insert("alertname".into(), "WardenHook".into());
            out.insert("alert".into(), event.alert.clone());
            out.insert("hook".into(), hook.hook.clone());
            let outcome = if hook.skipped.is_some() {
                "skipped"
            } else if hook.not_helped.is_some() {
                "not_helped"
            } else if hook.dry_run {
                "dry_run"
            } else if hook.timed_out {
                "timed_out"
            } else if hook.exit_code == Some(0) {
                "ok"
            } else {
                "failed"
            };
            out.insert("outcome".into(), outcome.into());
        }
        _ => {
            out.insert("alertname".into(), event.alert.clone());
        }
    }
    out
}

/// What a person reads: `summary`, `description`, `value`, `threshold`, `condition`,
/// `deploy`, `dedup_key` (absent values are left out).
pub fn annotations(event: &Event) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("summary".to_string(), summary(event));
    if let Some(d) = &event.description {
        out.insert("description".into(), d.clone());
    }
    if let Some(v) = event.value {
        let name = event.value_name.as_deref().unwrap_or("value");
        out.insert("value".into(), format!("{name} {}", format_value(v)));
    }
    if let Some(t) = event.threshold {
        out.insert("threshold".into(), format_value(t));
    }
    if let Some(c) = &event.condition {
        out.insert("condition".into(), c.clone());
    }
    if let Some(d) = &event.deploy {
        out.insert("deploy".into(), d.clone());
    }
    out.insert("dedup_key".into(), event.dedup_key.clone());
    if let Some(url) = &event.ack_url {
        out.insert("ack_url".into(), url.clone());
    }
    out
}

/// `startsAt`: when the alert started firing; a hook or test event's own time.
pub fn starts_at(event: &Event) -> &str {
    match event.kind {
        EventKind::Firing | EventKind::Resolved => &event.since,
        EventKind::Hook | EventKind::Test | EventKind::Notice => &event.at,
    }
}

/// Alertmanager's fingerprint of a label set: 16 hex digits.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = FNV_OFFSET;
    // BTreeMap iterates in byte order of the names, as Go's sort.Strings does.
    for (name, value) in labels {
        hash = fnv1a64(name.as_bytes(), hash);
        hash = fnv1a64(&[255], hash);
        hash = fnv1a64(value.as_bytes(), hash);
        hash = fnv1a64(&[255], hash);
    }
    format!("{hash:016x}")
}

/// A label name Alertmanager accepts: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}
