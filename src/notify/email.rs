//! `email`: one plain-text message per event over SMTP (lettre, rustls): plain, STARTTLS
//! (required, never opportunistic) or implicit TLS; AUTH PLAIN or LOGIN when a username and
//! password are set (never over plain SMTP).
//!
//! Written to be read at 3 a.m. ([`render`]): the subject says what and how bad
//! (`[CRITICAL] redis-memory firing on redis: memory_ratio 0.97 > 0.95`,
//! `[RESOLVED] ...`, `[HOOK FAILED] ...`, `[TEST] ...`); the body repeats the headline and the
//! description, then every field on its own line, the labels, and the dedup key.
//! Threading: every message of one incident carries `References` and `In-Reply-To`
//! `<INCIDENT@DOMAIN>` (INCIDENT: a hash of the dedup key, DOMAIN: the `from` domain), and
//! its own `Message-ID` hashes the dedup key, kind, severity and event time, so a re-delivery
//! of the same event has the same id (receivers may drop the duplicate). Also set:
//! `Auto-Submitted: auto-generated`, `X-Warden-Status`, `X-Warden-Severity`,
//! `X-Warden-Dedup-Key`. Examples: `tests/fixtures/notify/email-*.json`.
//!
//! Outcomes: SMTP 5xx replies (a rejected recipient or sender, failed authentication) are
//! permanent; 4xx replies, connect, TLS and I/O errors, and timeouts are retryable. A
//! client-side refusal (no AUTH mechanism in common) is permanent. lettre's own timeout
//! bounds only the connect, so the whole send is wrapped in the notifier's timeout. Each send
//! opens a fresh connection (no pool: nothing idles out between pages).

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use super::{
    fnv1a64, format_seconds, format_value, headline, http::show, measurement, status_word, summary,
    EmailConfig, EmailTls, FNV_OFFSET,
};
use crate::alert::{Delivery, Event, EventKind};
use crate::clock::{Clock, Timestamp};
use crate::config::notifier::smtp_host_port;

pub struct EmailNotifier {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    /// `host:port`, for messages.
    shown: String,
    name: String,
    tls: EmailTls,
    timeout: Duration,
    clock: Clock,
}

impl fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("smtp", &self.shown)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    pub(crate) fn new(
        config: &EmailConfig,
        timeout: Duration,
        name: &str,
        clock: Clock,
    ) -> Result<Self, String> {
        let (host, port) = smtp_host_port(&config.smtp, config.tls)?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("from {:?} is not a valid address: {e}", config.from))?;
        let to = config
            .to
            .iter()
            .map(|t| {
                t.parse::<Mailbox>()
                    .map_err(|e| format!("to {t:?} is not a valid address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let tls = match config.tls {
            EmailTls::None => Tls::None,
            EmailTls::StartTls | EmailTls::Implicit => {
                let mut params = TlsParameters::builder(host.clone())
                    .dangerous_accept_invalid_certs(config.accept_invalid_certs);
                if let Some(path) = &config.ca_file {
                    let pem = std::fs::read(path)
                        .map_err(|e| format!("read ca_file {}: {e}", path.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| format!("parse ca_file {}: {e}", path.display()))?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| format!("tls setup for {host}: {e}"))?;
                if config.tls == EmailTls::StartTls {
                    Tls::Required(params)
                } else {
                    Tls::Wrapper(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(timeout))
            .tls(tls);
        // `check` (run by `Notifier::new`) has refused credentials without verified TLS.
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder
                .credentials(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(EmailNotifier {
            transport: builder.build(),
            from,
            to,
            shown: format!("{host}:{port}"),
            name: name.to_string(),
            tls: config.tls,
            timeout,
            clock,
        })
    }

    pub(crate) async fn send(&self, event: &Event) -> Delivery {
        let now = self.clock.now();
        let domain = self.from.email.domain().to_string();
        let rendered = render(event, &self.name, &domain);
        let message = match rendered.message(&self.from, &self.to, now) {
            Ok(m) => m,
            Err(e) => {
                return Delivery::Permanent {
                    reason: format!("SMTP {}: cannot build the message: {e}", self.shown),
                }
            }
        };
        let shown = &self.shown;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Delivery::Ok,
            Ok(Err(e)) => classify(shown, &e),
            Err(_) => Delivery::Retryable {
                reason: format!("SMTP {shown}: timed out after {}", show(self.timeout)),
                retry_after: None,
            },
        }
    }
}

fn classify(shown: &str, e: &lettre::transport::smtp::Error) -> Delivery {
    // lettre nests its own errors ("Connection error: Connection error: ..."): say it once.
    let mut parts: Vec<&str> = Vec::new();
    let text = e.to_string();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    let reason = format!("SMTP {shown}: {}", parts.join(": "));
    if e.is_permanent() || e.is_client() {
        Delivery::Permanent { reason }
    } else {
        Delivery::Retryable {
            reason,
            retry_after: None,
        }
    }
}

/// Everything warden decides about a message; lettre adds `From`, `To`, `Date`, MIME.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RenderedEmail {
    pub subject: String,
    pub message_id: String,
    /// `In-Reply-To` and `References`: the incident's thread id.
    pub thread: String,
    /// Extra headers, in order.
    pub headers: Vec<(String, String)>,
    /// Plain text, lines joined with `\n`.
    pub body: String,
}

impl RenderedEmail {
    fn message(&self, from: &Mailbox, to: &[Mailbox], now: Timestamp) -> Result<Message, String> {
        let date = UNIX_EPOCH + Duration::from_millis(now.as_millis().max(0) as u64);
        let mut builder = Message::builder()
            .from(from.clone())
            .subject(self.subject.clone())
            .date(date)
            .message_id(Some(self.message_id.clone()))
            .in_reply_to(self.thread.clone())
            .references(self.thread.clone())
            .header(ContentType::TEXT_PLAIN);
        for mailbox in to {
            builder = builder.to(mailbox.clone());
        }
        for (name, value) in &self.headers {
            let name = HeaderName::new_from_ascii(name.clone()).map_err(|e| e.to_string())?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        builder.body(self.body.clone()).map_err(|e| e.to_string())
    }
}

/// The message for `event` from notifier `notifier`; `domain` names the message ids.
pub fn render(event: &Event, notifier: &str, domain: &str) -> RenderedEmail {
    let h = headline(event);
    let on = format!("{} on {}", event.title(), event.check);
    let subject = match event.kind {
        EventKind::Firing => format!(
            "[{}] {} firing on {}: {}",
            h.label,
            event.title(),
            event.check,
            measurement(event)
        ),
        EventKind::Resolved => {
            let was = match &event.condition {
                Some(c) => format!(" ({} was {c})", event.severity.as_str()),
                None => format!(" (was {})", event.severity.as_str()),
            };
            format!(
                "[RESOLVED] {} resolved on {}: {}{was}",
                event.title(),
                event.check,
                measurement(event)
            )
        }
        EventKind::Hook => format!("[{}] {}", h.label, h.text),
        EventKind::Test => format!("[TEST] {on}: a test page from warden, no action needed"),
        EventKind::Notice => format!("[{}] {}", h.label, h.text),
    };

    let incident = fnv1a64(event.dedup_key.as_bytes(), FNV_OFFSET);
    let mut this = fnv1a64(event.dedup_key.as_bytes(), FNV_OFFSET);
    for part in [
        status_word(event.kind),
        event.severity.as_str(),
        event.at.as_str(),
    ] {
        this = fnv1a64(&[0], this);
        this = fnv1a64(part.as_bytes(), this);
    }
    let thread = format!("<warden.{incident:016x}@{domain}>");
    let message_id = format!("<warden.{incident:016x}.{this:016x}@{domain}>");

    let mut lines = vec![summary(event), String::new()];
    if let Some(d) = &event.description {
        lines.push(d.clone());
        lines.push(String::new());
    }
    if let Some(url) = &event.ack_url {
        lines.push(format!("Acknowledge: {url}"));
        lines.push(String::new());
    }
    let mut field =
        |name: &str, value: String| lines.push(format!("{:<12} {value}", format!("{name}:")));
    field("Status", status_word(event.kind).to_string());
    field("Severity", event.severity.as_str().to_string());
    field("Alert", event.alert.clone());
    field("Check", event.check.clone());
    if let (EventKind::Hook, Some(hook)) = (event.kind, &event.hook) {
        field("Hook", hook.hook.clone());
        field("Command", hook.command.clone());
        field(
            "Dry run",
            if hook.dry_run { "yes" } else { "no" }.to_string(),
        );
        if let Some(reason) = &hook.skipped {
            field("Not run", reason.clone());
        } else if let Some(finding) = &hook.not_helped {
            field("Not helped", finding.clone());
        } else {
            field(
                "Exit code",
                hook.exit_code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "none".into()),
            );
            field(
                "Timed out",
                if hook.timed_out { "yes" } else { "no" }.to_string(),
            );
            field("Duration", format_seconds(hook.duration_seconds));
        }
    }
    let name = event.value_name.as_deref().unwrap_or("value");
    field(
        "Value",
        match event.value {
            Some(v) => format!("{name} = {}", format_value(v)),
            None => format!("{name}: no value"),
        },
    );
    if let Some(t) = event.threshold {
        field("Threshold", format_value(t));
    }
    if let Some(c) = &event.condition {
        field("Condition", c.clone());
    }
    field("Since", event.since.clone());
    field("At", event.at.clone());
    if let Some(d) = &event.deploy {
        field("Deploy", d.clone());
    }
    field("Dedup key", event.dedup_key.clone());
    if !event.labels.is_empty() {
        lines.push("Labels:".to_string());
        for (k, v) in &event.labels {
            lines.push(format!("  {k} = {v}"));
        }
    }
    lines.push(String::new());
    lines.push("-- ".to_string());
    lines.push(format!("Sent by warden (notifier {notifier:?})."));

    RenderedEmail {
        subject,
        message_id,
        thread,
        headers: vec![
            ("Auto-Submitted".into(), "auto-generated".into()),
            ("X-Auto-Response-Suppress".into(), "All".into()),
            ("X-Warden-Status".into(), status_word(event.kind).into()),
            ("X-Warden-Severity".into(), event.severity.as_str().into()),
            ("X-Warden-Dedup-Key".into(), event.dedup_key.clone()),
        ],
        body: lines.join("\n"),
    }
}
