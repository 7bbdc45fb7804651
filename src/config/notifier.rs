//! The validated notifier config: what a `[[notifier]]` compiles to ([`NotifierConfig`], one
//! [`NotifierKind`] per receiver), the parsed webhook body [`Template`], the pure checks of
//! what only a notifier's settings as a whole tell ([`check`]: URLs, header values,
//! templates, the e-mail server, addresses and credentials; [`check_ca_pem`] for an e-mail CA
//! bundle's text), so `check-config` reports them without building a notifier, and
//! [`secrets_of`] (a notifier's secret values, for redaction).
//!
//! `notify` builds its notifiers from these types and imports them from here; this module
//! imports nothing of `notify`. It does no I/O: no file, no socket, no clock (the tidy test
//! holds it to that).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::{redact_url, Secret};

/// The total time one send may take when the config does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
/// How often a firing alert is re-sent to an Alertmanager when the config does not say
/// (Prometheus' default `resend_delay`).
pub const DEFAULT_RESEND_EVERY: Duration = Duration::from_secs(60);

/// One configured notifier, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// The name rules route to; unique in a config.
    pub name: String,
    /// Bounds one whole send (connect, request, response); [`DEFAULT_TIMEOUT`] by default.
    pub timeout: Duration,
    pub kind: NotifierKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    PagerDuty(PagerDutyConfig),
    Alertmanager(AlertmanagerConfig),
    Email(EmailConfig),
}

impl NotifierKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            NotifierKind::Webhook(_) => "webhook",
            NotifierKind::Slack(_) => "slack",
            NotifierKind::PagerDuty(_) => "pagerduty",
            NotifierKind::Alertmanager(_) => "alertmanager",
            NotifierKind::Email(_) => "email",
        }
    }

    /// How often a firing alert must be sent again for the receiver to keep it: Alertmanager
    /// forgets an alert whose `endsAt` has passed. `None`: the receiver keeps a page until it
    /// is resolved.
    pub fn resend_every(&self) -> Option<Duration> {
        match self {
            NotifierKind::Alertmanager(c) => Some(c.resend_every),
            NotifierKind::Webhook(_)
            | NotifierKind::Slack(_)
            | NotifierKind::PagerDuty(_)
            | NotifierKind::Email(_) => None,
        }
    }

    /// Whether every event sent here opens (or updates) an alert of its own, as a pager does:
    /// a hook's outcome sent there would page again, so outcomes go elsewhere by default.
    pub fn opens_alerts(&self) -> bool {
        match self {
            NotifierKind::PagerDuty(_) | NotifierKind::Alertmanager(_) => true,
            NotifierKind::Webhook(_) | NotifierKind::Slack(_) | NotifierKind::Email(_) => false,
        }
    }
}

/// `webhook`: a JSON POST to any URL.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// The whole URL is a secret: tokens often live in its path or query.
    pub url: Secret,
    /// Extra request headers (`Authorization`, `X-Api-Key`, ...); values are secrets.
    pub headers: Vec<(String, Secret)>,
    pub format: WebhookFormat,
    /// A body template with `{{placeholder}}`s (see [`PLACEHOLDERS`]); replaces the
    /// format's body. `None`: the format's JSON.
    pub template: Option<String>,
    /// `externalURL` and `generatorURL` in the Alertmanager format (e.g. warden's status page).
    pub external_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// warden's own documented payload (`version: "1"`).
    Warden,
    /// The Alertmanager webhook payload (`version: "4"`), for receivers built for Alertmanager.
    Alertmanager,
}

/// `slack`: a Slack incoming webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackConfig {
    /// `https://hooks.slack.com/services/T…/B…/…`: the path is the credential.
    pub webhook_url: Secret,
    /// Overrides the webhook's channel (legacy webhooks only honour it).
    pub channel: Option<String>,
    pub username: Option<String>,
}

/// `pagerduty`: PagerDuty Events API v2.
#[derive(Clone, PartialEq)]
pub struct PagerDutyConfig {
    /// The integration's routing key (the service's "Integration Key").
    pub routing_key: Secret,
    /// [`PAGERDUTY_EVENTS_URL`] unless pointed elsewhere (a proxy, a test receiver).
    pub url: String,
    /// `payload.source`: the affected system, e.g. the host warden watches from.
    pub source: String,
    /// `payload.component`; the event's check when `None`.
    pub component: Option<String>,
    /// `payload.group`, omitted when `None`.
    pub group: Option<String>,
    /// `payload.class`, omitted when `None`.
    pub class: Option<String>,
}

/// `alertmanager`: push alerts into an Alertmanager's `POST /api/v2/alerts`.
#[derive(Clone, PartialEq)]
pub struct AlertmanagerConfig {
    /// The base URL, e.g. `http://127.0.0.1:9093` (`/api/v2/alerts` is appended).
    pub url: String,
    /// How often the alert stage re-sends a firing alert (an Alertmanager forgets an alert
    /// whose `endsAt` passed); a firing alert's `endsAt` is `now + 4 × resend_every`.
    pub resend_every: Duration,
    /// `generatorURL` of every alert (a link back to warden); omitted when `None`.
    pub generator_url: Option<String>,
}

// URLs may carry credentials (`http://user:pw@host`): Debug shows them redacted.
impl fmt::Debug for PagerDutyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PagerDutyConfig")
            .field("routing_key", &self.routing_key)
            .field("url", &redact_url(&self.url))
            .field("source", &self.source)
            .field("component", &self.component)
            .field("group", &self.group)
            .field("class", &self.class)
            .finish()
    }
}

impl fmt::Debug for AlertmanagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerConfig")
            .field("url", &redact_url(&self.url))
            .field("resend_every", &self.resend_every)
            .field("generator_url", &self.generator_url)
            .finish()
    }
}

/// `email`: SMTP via lettre.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    /// `host:port`; without a port, 25 (plain), 587 (STARTTLS) or 465 (implicit TLS).
    pub smtp: String,
    pub tls: EmailTls,
    /// AUTH PLAIN or LOGIN when set (with `password`).
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `From:`, e.g. `warden <warden@example.com>`.
    pub from: String,
    /// `To:`, at least one address.
    pub to: Vec<String>,
    /// A PEM bundle of extra trusted CA certificates (a private mail relay's CA).
    pub ca_file: Option<PathBuf>,
    /// Skip certificate verification. For test relays only.
    pub accept_invalid_certs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// Plain SMTP; credentials are refused without TLS.
    None,
    /// Plain connection upgraded by STARTTLS (required, never opportunistic); port 587.
    StartTls,
    /// TLS from the first byte (SMTPS); port 465.
    Implicit,
}

/// What only a notifier's settings can tell, checked without building it (no client, no
/// file read): URLs, header names and values, the body template, the e-mail server,
/// addresses and credentials. The message names the notifier and never a secret; the order
/// of the checks is the order in which building the notifier meets them.
pub fn check(config: &NotifierConfig) -> Result<(), String> {
    let name = &config.name;
    let fail = |e: String| format!("notifier {name:?}: {e}");
    if config.timeout.is_zero() {
        return Err(fail("timeout must be greater than 0".into()));
    }
    match &config.kind {
        NotifierKind::Webhook(c) => check_webhook(c),
        NotifierKind::Slack(c) => check_slack(c),
        NotifierKind::PagerDuty(c) => check_pagerduty(c),
        NotifierKind::Alertmanager(c) => check_alertmanager(c),
        NotifierKind::Email(c) => check_email(c),
    }
    .map_err(fail)
}

fn check_webhook(c: &WebhookConfig) -> Result<(), String> {
    let url =
        reqwest::Url::parse(c.url.expose()).map_err(|_| "url is not a valid URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("url must be http or https, got {:?}", url.scheme()));
    }
    for (name, value) in &c.headers {
        check_header(name, value.expose())?;
    }
    if let Some(text) = &c.template {
        Template::parse(text)?;
    }
    Ok(())
}

/// A request header the HTTP client accepts; the value is never printed (it is a secret).
fn check_header(name: &str, value: &str) -> Result<(), String> {
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("header {name:?}: value is not a valid header value"))?;
    Ok(())
}

fn check_slack(c: &SlackConfig) -> Result<(), String> {
    let url = reqwest::Url::parse(c.webhook_url.expose())
        .map_err(|_| "webhook_url is not a valid URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("webhook_url must be http or https".into());
    }
    Ok(())
}

/// An http(s) URL that may carry credentials: messages show it redacted.
fn check_plain_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("url {shown:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("url {shown:?} must be http or https"));
    }
    Ok(())
}

fn check_pagerduty(c: &PagerDutyConfig) -> Result<(), String> {
    check_plain_url(&c.url)?;
    if c.routing_key.expose().trim().is_empty() {
        return Err("routing_key is empty".into());
    }
    if c.source.trim().is_empty() {
        return Err("source is empty".into());
    }
    Ok(())
}

fn check_alertmanager(c: &AlertmanagerConfig) -> Result<(), String> {
    check_plain_url(&c.url)?;
    if c.resend_every.is_zero() {
        return Err("resend_every must be greater than 0".into());
    }
    Ok(())
}

/// Everything about an `email` notifier but its CA bundle's certificates (read and parsed
/// when the notifier is built; compiling has checked the file is readable PEM).
fn check_email(c: &EmailConfig) -> Result<(), String> {
    smtp_host_port(&c.smtp, c.tls)?;
    c.from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| format!("from {:?} is not a valid address: {e}", c.from))?;
    if c.to.is_empty() {
        return Err("to needs at least one address".into());
    }
    for t in &c.to {
        t.parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("to {t:?} is not a valid address: {e}"))?;
    }
    check_credentials(c)
}

/// The certificates of an `email` notifier's `ca_file` (its text, `pem`) parse as the
/// notifier will parse them. Compiling reads the file through its `Host` and asks this, so a
/// bundle with a certificate marker but a broken body fails `check-config`, as before.
pub fn check_ca_pem(c: &NotifierConfig, path: &Path, pem: &[u8]) -> Result<(), String> {
    lettre::transport::smtp::client::Certificate::from_pem(pem)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "notifier {:?}: parse ca_file {}: {e}",
                c.name,
                path.display()
            )
        })
}

/// Credentials go together, and only over verified TLS.
fn check_credentials(c: &EmailConfig) -> Result<(), String> {
    match (&c.username, &c.password) {
        (Some(_), Some(_)) => {
            if c.accept_invalid_certs {
                return Err(
                    "username and password are never sent with accept_invalid_certs = true: whoever sits in the middle would get them"
                        .into(),
                );
            }
            if c.tls == EmailTls::None {
                return Err(
                    "username and password need tls = \"starttls\" or \"implicit\": credentials are never sent in the clear"
                        .into(),
                );
            }
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err("username and password go together".into()),
    }
}

/// `host:port` or `[v6]:port` or `host` (port from the TLS mode): the e-mail server.
pub fn smtp_host_port(text: &str, tls: EmailTls) -> Result<(String, u16), String> {
    let default = match tls {
        EmailTls::None => 25,
        EmailTls::StartTls => 587,
        EmailTls::Implicit => 465,
    };
    let bad = || format!("smtp {text:?} must be host or host:port (port 1-65535)");
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad()),
        }
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        None => default,
    };
    Ok((host.to_string(), port))
}

/// The placeholders a template may use. `labels.NAME` reads one label (empty when absent).
pub const PLACEHOLDERS: &[&str] = &[
    "alert",
    "check",
    "status",
    "severity",
    "summary",
    "value",
    "value_name",
    "threshold",
    "condition",
    "description",
    "since",
    "at",
    "deploy",
    "dedup_key",
    "hook",
    "hook_exit_code",
    "labels.NAME",
];

/// A parsed body template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub(crate) parts: Vec<Part>,
}

/// A piece of a [`Template`]; `notify::webhook` renders them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Alert,
    Check,
    Status,
    Severity,
    Summary,
    Value,
    ValueName,
    Threshold,
    Condition,
    Description,
    Since,
    At,
    Deploy,
    DedupKey,
    Hook,
    HookExitCode,
    Label(String),
}

impl Template {
    /// Parses `{{name}}` placeholders (spaces inside the braces are allowed). An unknown name
    /// or an unclosed `{{` is an error that says where and what is known.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!("template: unclosed {{{{ at byte {}", offset + open));
            };
            let name = after[..close].trim();
            let field = match name {
                "alert" => Field::Alert,
                "check" => Field::Check,
                "status" => Field::Status,
                "severity" => Field::Severity,
                "summary" => Field::Summary,
                "value" => Field::Value,
                "value_name" => Field::ValueName,
                "threshold" => Field::Threshold,
                "condition" => Field::Condition,
                "description" => Field::Description,
                "since" => Field::Since,
                "at" => Field::At,
                "deploy" => Field::Deploy,
                "dedup_key" => Field::DedupKey,
                "hook" => Field::Hook,
                "hook_exit_code" => Field::HookExitCode,
                other => match other.strip_prefix("labels.") {
                    Some(label) if !label.is_empty() => Field::Label(label.to_string()),
                    _ => {
                        return Err(format!(
                            "template: unknown placeholder {{{{{other}}}}} at byte {}; known: {}",
                            offset + open,
                            PLACEHOLDERS.join(", ")
                        ))
                    }
                },
            };
            parts.push(Part::Field(field));
            let consumed = open + 2 + close + 2;
            offset += consumed;
            rest = &rest[consumed..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }
}

/// The secret values of a notifier's config (and the parts of a secret URL that identify it),
/// for redaction: a receiver or a library may echo any of them.
pub fn secrets_of(kind: &NotifierKind) -> Vec<String> {
    let mut secrets = Vec::new();
    match kind {
        NotifierKind::Webhook(c) => {
            secrets.extend(url_fragments(c.url.expose()));
            secrets.extend(c.headers.iter().map(|(_, v)| v.expose().to_string()));
        }
        NotifierKind::Slack(c) => secrets.extend(url_fragments(c.webhook_url.expose())),
        NotifierKind::PagerDuty(c) => {
            secrets.push(c.routing_key.expose().to_string());
            secrets.extend(url_password(&c.url));
        }
        NotifierKind::Alertmanager(c) => secrets.extend(url_password(&c.url)),
        NotifierKind::Email(c) => secrets.extend(c.password.iter().map(|p| p.expose().to_string())),
    }
    secrets
}

/// The pieces of a secret URL worth scrubbing: the URL, its path-and-query and query, and
/// its password (user names are not secrets).
pub(crate) fn url_fragments(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    if let Ok(parsed) = reqwest::Url::parse(url) {
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            out.push(q.to_string());
            path = format!("{path}?{q}");
        }
        if path.len() > 1 {
            out.push(path);
        }
        out.extend(url_password(url));
    }
    out
}

/// The password of a URL with credentials (`http://user:pw@host`), and the `Basic` token
/// the HTTP client makes of them (a receiver may echo the `Authorization` header back).
fn url_password(url: &str) -> Vec<String> {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let Some(password) = parsed.password() else {
        return Vec::new();
    };
    let decode = |s: &str| percent_decode(s).unwrap_or_else(|| s.to_string());
    let basic = base64(format!("{}:{}", decode(parsed.username()), decode(password)).as_bytes());
    vec![password.to_string(), decode(password), basic]
}

/// `%xx` decoding of URL userinfo; `None` when it is not valid UTF-8 afterwards.
fn percent_decode(s: &str) -> Option<String> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Standard base64 with padding (for the `Basic` token only).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_scrubbed_in_every_form() {
        // reqwest sends URL credentials as `Authorization: Basic base64(user:password)`.
        assert_eq!(
            url_password("http://warden:am-SECRET-pw@127.0.0.1:9093"),
            [
                "am-SECRET-pw",
                "am-SECRET-pw",
                "d2FyZGVuOmFtLVNFQ1JFVC1wdw=="
            ]
        );
        assert_eq!(
            url_password("http://u:p%40ss@h/"),
            ["p%40ss", "p@ss", "dTpwQHNz"]
        );
        assert!(url_password("http://h/").is_empty());
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(percent_decode("%zz%4"), Some("%zz%4".into()));
    }
}
