//! `slack`: a Slack incoming-webhook message per event.
//!
//! The body ([`render`]) has the headline as `text` (`🔴 CRITICAL: redis-memory on redis —
//! memory_ratio 0.97 > 0.95`: the message line, and what phone notifications show) and one
//! attachment coloured by tone (critical and failed hooks red, warning amber, resolved green,
//! tests and hooks blue) holding Block Kit blocks: the description, fields (status, severity,
//! value, condition, check, since, deploy, labels; or the hook's command, exit and duration)
//! and a context line with the time and dedup key. User text is escaped for mrkdwn (`&`, `<`,
//! `>`).
//! Examples: `tests/fixtures/notify/slack-*.json`.
//!
//! Success is a 2xx with the body `ok` (or a JSON `{"ok": true}` from workflow webhooks); a
//! 2xx with any other body is Slack's error string and permanent. Otherwise the shared HTTP
//! classification applies (429 honours `Retry-After`). The webhook URL is the credential:
//! messages show only its origin.

use std::time::Duration;

use serde_json::{json, Value as Json};

use super::{
    format_seconds, format_value, headline, http, origin_of, status_word, SlackConfig, Tone,
};
use crate::alert::{Delivery, Event, EventKind};
use crate::clock::Clock;
use crate::secret::Redactor;
use crate::secret::Secret;

#[derive(Debug)]
pub struct SlackNotifier {
    client: reqwest::Client,
    webhook_url: Secret,
    shown: String,
    channel: Option<String>,
    username: Option<String>,
    timeout: Duration,
    clock: Clock,
    /// Secret values, redacted from what the receiver answers before it is quoted.
    redactor: Redactor,
}

impl SlackNotifier {
    pub(crate) fn new(
        config: &SlackConfig,
        timeout: Duration,
        clock: Clock,
        redactor: Redactor,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(config.webhook_url.expose())
            .map_err(|_| "webhook_url is not a valid URL".to_string())?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("webhook_url must be http or https".into());
        }
        Ok(SlackNotifier {
            client: http::client(timeout)?,
            webhook_url: config.webhook_url.clone(),
            shown: origin_of(config.webhook_url.expose()),
            channel: config.channel.clone(),
            username: config.username.clone(),
            timeout,
            clock,
            redactor,
        })
    }

    pub(crate) async fn send(&self, event: &Event) -> Delivery {
        let body = render(event, self.channel.as_deref(), self.username.as_deref());
        let reply = match http::post(
            &self.client,
            self.webhook_url.expose(),
            &self.shown,
            Default::default(),
            body.to_string().into_bytes(),
            self.timeout,
            &self.redactor,
        )
        .await
        {
            Ok(reply) => reply,
            Err(delivery) => return delivery,
        };
        match http::classify(&self.shown, &reply, self.clock.now()) {
            Delivery::Ok if !body_says_ok(&reply.body) => Delivery::Permanent {
                reason: format!(
                    "POST {}: status {} but slack answered: {}",
                    self.shown,
                    reply.status,
                    http::excerpt(&reply.text)
                ),
            },
            other => other,
        }
    }
}

fn body_says_ok(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    text == "ok"
        || serde_json::from_str::<Json>(text)
            .ok()
            .and_then(|j| j.get("ok").and_then(Json::as_bool))
            .unwrap_or(false)
}

/// The incoming-webhook body for `event` (see the module doc).
pub fn render(event: &Event, channel: Option<&str>, username: Option<&str>) -> Json {
    let h = headline(event);
    let (color, emoji) = match (h.tone, event.kind) {
        (Tone::Critical, _) => ("#E01E5A", "🔴"),
        (Tone::Warning, _) => ("#ECB22E", "🟠"),
        (Tone::Resolved, _) => ("#2EB67D", "✅"),
        (Tone::Failed, _) => ("#E01E5A", "❌"),
        (Tone::Info, EventKind::Test) => ("#36C5F0", "🧪"),
        (Tone::Info, _) => ("#36C5F0", "🔧"),
    };
    let text = format!("{emoji} {}: {}", h.label, escape(&h.text));

    // Slack shows `text` above the attachment: the attachment holds the details only.
    let mut blocks = Vec::new();
    if let Some(d) = &event.description {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": escape(d) },
        }));
    }
    if let Some(url) = &event.ack_url {
        blocks.push(json!({
            "type": "section",
            "text": { "type": "mrkdwn", "text": format!("<{url}|Acknowledge>") },
        }));
    }
    let fields: Vec<Json> = fields(event)
        .into_iter()
        .take(10) // Slack's limit per section
        .map(|(name, value)| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") }))
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("warden · {} · dedup key `{}`", escape(&event.at), escape(&event.dedup_key)),
        }],
    }));

    let mut body = json!({
        "text": text,
        "attachments": [{
            "color": color,
            "fallback": text,
            "blocks": blocks,
        }],
    });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    if let Some(u) = username {
        body["username"] = json!(u);
    }
    body
}

/// Name/value pairs for the fields section, already escaped.
fn fields(event: &Event) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let (EventKind::Hook, Some(hook)) = (event.kind, &event.hook) {
        out.push(("Hook", escape(&hook.hook)));
        out.push(("Alert", escape(&event.alert)));
        out.push(("Command", format!("`{}`", escape(&hook.command))));
        if let Some(reason) = &hook.skipped {
            out.push(("Not run", escape(reason)));
        } else if let Some(finding) = &hook.not_helped {
            out.push(("Did not help", escape(finding)));
        } else {
            let exit = match (hook.dry_run, hook.timed_out, hook.exit_code) {
                (true, _, _) => "dry run, not run".to_string(),
                (_, true, _) => "timed out (killed)".to_string(),
                (_, _, Some(code)) => code.to_string(),
                (_, _, None) => "killed by a signal".to_string(),
            };
            out.push(("Exit", exit));
            out.push(("Duration", format_seconds(hook.duration_seconds)));
        }
    } else {
        out.push(("Status", status_word(event.kind).to_string()));
        out.push(("Severity", event.severity.as_str().to_string()));
        if let Some(v) = event.value {
            let name = event.value_name.as_deref().unwrap_or("value");
            out.push(("Value", format!("{} {}", escape(name), format_value(v))));
        }
        if let Some(c) = &event.condition {
            out.push(("Condition", escape(c)));
        }
        out.push(("Check", escape(&event.check)));
        out.push(("Since", escape(&event.since)));
    }
    if let Some(d) = &event.deploy {
        out.push(("Deploy", escape(d)));
    }
    let labels: Vec<String> = event
        .labels
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "check" | "severity"))
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect();
    if !labels.is_empty() {
        out.push(("Labels", labels.join(", ")));
    }
    out
}

/// Escapes the three characters Slack's mrkdwn reserves.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
