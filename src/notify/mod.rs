//! Notifiers: one file per receiver kind, each a [`Sink`] that renders one [`Event`], sends
//! it once and classifies the outcome as a [`Delivery`].
//!
//! This module builds each notifier from its validated config ([`NotifierConfig`], owned by
//! `config::notifier`) and owns [`Notifier`] (the closed enum that dispatches to `webhook`, `slack`, `pagerduty`,
//! `alertmanager` and `email`), the words shared by every rendering (summaries, value
//! formatting) and, in `http`, the one HTTP client setup and status classification.
//!
//! It must not retry, sleep, deduplicate or remember anything between sends: the outbox does
//! that, once, for every notifier. It knows nothing of rules or checks beyond what an
//! [`Event`] carries. Render functions are pure (the send time is a parameter) and tested
//! against golden JSON in `tests/fixtures/notify/`. Every send is bounded by the notifier's
//! `timeout`. Secret values never reach a `Debug` output, an error or a [`Delivery`] reason:
//! [`Notifier`] also scrubs every reason of its secrets' values before handing it on.

pub mod alertmanager;
pub mod email;
mod http;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::fmt;
use std::time::Duration;

use crate::alert::{BoxFuture, Delivery, Event, EventKind, HookOutcome, Severity, Sink};
use crate::clock::{Clock, Timestamp};
// The kinds' configs, for this module's files (`super::WebhookConfig`, ...).
use crate::config::notifier::{
    check, secrets_of, AlertmanagerConfig, EmailConfig, EmailTls, NotifierConfig, NotifierKind,
    PagerDutyConfig, SlackConfig, WebhookConfig, WebhookFormat,
};
use crate::secret::Redactor;

/// A configured notifier, ready to send: the closed set of kinds behind one [`Sink`].
pub struct Notifier {
    name: String,
    target: Target,
    redactor: Redactor,
}

#[derive(Debug)]
enum Target {
    Webhook(webhook::WebhookNotifier),
    Slack(slack::SlackNotifier),
    PagerDuty(pagerduty::PagerDutyNotifier),
    Alertmanager(alertmanager::AlertmanagerNotifier),
    Email(email::EmailNotifier),
}

impl Notifier {
    /// Checks the settings ([`check`], as compiling did), reads the CA files and
    /// prepares the client. Errors name the notifier and never print a secret.
    pub fn new(config: &NotifierConfig, clock: &Clock) -> Result<Notifier, String> {
        // Each kind's constructor below relies on this having passed.
        check(config)?;
        let name = &config.name;
        let fail = |e: String| format!("notifier {name:?}: {e}");
        let redactor = Redactor::new(secrets_of(&config.kind));
        let r = || redactor.clone();
        let timeout = config.timeout;
        let target = match &config.kind {
            NotifierKind::Webhook(c) => Target::Webhook(
                webhook::WebhookNotifier::new(c, timeout, name, clock.clone(), r())
                    .map_err(fail)?,
            ),
            NotifierKind::Slack(c) => Target::Slack(
                slack::SlackNotifier::new(c, timeout, clock.clone(), r()).map_err(fail)?,
            ),
            NotifierKind::PagerDuty(c) => Target::PagerDuty(
                pagerduty::PagerDutyNotifier::new(c, timeout, clock.clone(), r()).map_err(fail)?,
            ),
            NotifierKind::Alertmanager(c) => Target::Alertmanager(
                alertmanager::AlertmanagerNotifier::new(c, timeout, clock.clone(), r())
                    .map_err(fail)?,
            ),
            NotifierKind::Email(c) => Target::Email(
                email::EmailNotifier::new(c, timeout, name, clock.clone()).map_err(fail)?,
            ),
        };
        Ok(Notifier {
            name: name.clone(),
            target,
            redactor,
        })
    }

    /// How often the alert stage must re-send a firing alert to this notifier: `Some` for
    /// `alertmanager` (which forgets alerts whose `endsAt` passed), `None` for the others
    /// (their receivers keep a page open until it is resolved).
    pub fn resend_every(&self) -> Option<Duration> {
        match &self.target {
            Target::Alertmanager(n) => Some(n.resend_every()),
            _ => None,
        }
    }

    /// Renders, sends once, classifies. Never panics, never retries; bounded by the timeout.
    pub async fn deliver(&self, event: &Event) -> Delivery {
        let delivery = match &self.target {
            Target::Webhook(n) => n.send(event).await,
            Target::Slack(n) => n.send(event).await,
            Target::PagerDuty(n) => n.send(event).await,
            Target::Alertmanager(n) => n.send(event).await,
            Target::Email(n) => n.send(event).await,
        };
        scrub(&self.redactor, delivery)
    }
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("name", &self.name)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Sink for Notifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        match &self.target {
            Target::Webhook(_) => "webhook",
            Target::Slack(_) => "slack",
            Target::PagerDuty(_) => "pagerduty",
            Target::Alertmanager(_) => "alertmanager",
            Target::Email(_) => "email",
        }
    }

    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Delivery> {
        Box::pin(self.deliver(event))
    }
}

/// The event `warden notify-test` sends through `notifier`: kind `Test`, a dedup key of its
/// own (so it never touches a real incident), and words that say no action is needed.
pub fn test_event(notifier: &str, now: Timestamp) -> Event {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("notifier".to_string(), notifier.to_string());
    Event {
        kind: EventKind::Test,
        alert: "warden-notify-test".into(),
        series: Default::default(),
        check: "notify-test".into(),
        severity: Severity::Warning,
        value: None,
        value_name: None,
        threshold: None,
        condition: None,
        description: Some(format!(
            "A test page sent by `warden notify-test --notifier {notifier}`. If you can read this, the path from warden to you works."
        )),
        labels,
        since: now.to_rfc3339(),
        at: now.to_rfc3339(),
        deploy: None,
        dedup_key: format!("warden/notify-test/{notifier}/{}", now.as_millis()),
        hook: None,
        ack_url: None,
        group: None,
    }
}

/// [`Notifier::new`] as a trait object, for the outbox.
pub fn build(config: &NotifierConfig, clock: &Clock) -> Result<Box<dyn Sink>, String> {
    Ok(Box::new(Notifier::new(config, clock)?))
}

/// Replaces any secret value that slipped into a reason (a library printing a URL) with
/// `<secret>`. Defence in depth: reasons are built without secrets in the first place, and a
/// receiver's body is redacted before it is quoted ([`http::Reply::text`]).
fn scrub(redactor: &Redactor, delivery: Delivery) -> Delivery {
    match delivery {
        Delivery::Ok => Delivery::Ok,
        Delivery::Retryable {
            reason,
            retry_after,
        } => Delivery::Retryable {
            reason: redactor.redact(&reason),
            retry_after,
        },
        Delivery::Permanent { reason } => Delivery::Permanent {
            reason: redactor.redact(&reason),
        },
    }
}

/// `scheme://host[:port]` of a URL, for messages about a secret URL; `<invalid url>` when it
/// does not parse (the text itself is never shown).
pub(crate) fn origin_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<invalid url>".to_string(),
    }
}

// ---- Words shared by every rendering ----------------------------------------------------

/// `firing`, `resolved`, `hook`, `test`: the status word of payloads.
pub(crate) fn status_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Firing => "firing",
        EventKind::Resolved => "resolved",
        EventKind::Hook => "hook",
        EventKind::Test => "test",
        EventKind::Notice => "notice",
    }
}

/// A number as a person reads it at 3 a.m.: `0.97`, `12`, `0.1235`, `1.2e-7`, `NaN`.
/// (Payload fields carry the exact `f64`; this is for text only.)
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let a = v.abs();
    if (1e-3..1e15).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    format!("{v:e}")
}

/// `12 s`, `0.3 s`, `2m 5s`: a hook's duration.
pub(crate) fn format_seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "? s".into();
    }
    if secs < 60.0 {
        let s = format!("{secs:.1}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return format!("{s} s");
    }
    humantime::format_duration(Duration::from_secs(secs.round() as u64)).to_string()
}

/// `memory_ratio 0.97 > 0.95`: what was measured against what. Without a value (a failed
/// probe), `memory_ratio: no value`.
pub(crate) fn measurement(event: &Event) -> String {
    // A group's notification: how many of its alerts fire and resolved.
    if let Some(group) = &event.group {
        let firing = group
            .alerts
            .iter()
            .filter(|a| a.kind == EventKind::Firing)
            .count();
        let resolved = group.alerts.len() - firing;
        return match (firing, resolved) {
            (0, _) => format!("{resolved} resolved, none firing"),
            (f, 0) => format!("{f} firing"),
            (f, r) => format!("{f} firing, {r} resolved"),
        };
    }
    let name = event.value_name.as_deref().unwrap_or("value");
    match (event.value, &event.condition) {
        (Some(v), Some(c)) if event.kind != EventKind::Resolved => {
            format!("{name} {} {c}", format_value(v))
        }
        (Some(v), _) => format!("{name} {}", format_value(v)),
        (None, _) => format!("{name}: no value"),
    }
}

/// How a hook run went, for people: whether it failed, and one line.
pub(crate) fn hook_line(event: &Event, hook: &HookOutcome) -> (bool, String) {
    let who = format!("{} for {}", hook.hook, event.title());
    let took = format_seconds(hook.duration_seconds);
    if let Some(reason) = &hook.skipped {
        return (true, format!("{who} not run: {reason}"));
    }
    if let Some(finding) = &hook.not_helped {
        return (true, format!("{who} {finding}"));
    }
    if hook.dry_run {
        return (
            false,
            format!("{who} (dry run) would run: {}", hook.command),
        );
    }
    if hook.timed_out {
        return (true, format!("{who} timed out after {took}"));
    }
    match hook.exit_code {
        Some(0) => (false, format!("{who} ran: exit 0 in {took}")),
        Some(code) => (true, format!("{who} failed: exit {code} in {took}")),
        None => (true, format!("{who} was killed after {took}")),
    }
}

/// The headline of an event: a label (`CRITICAL`, `RESOLVED`, `HOOK FAILED`, ...) and the
/// rest of one line. Every notifier builds its title from this.
pub(crate) struct Headline {
    pub label: &'static str,
    pub text: String,
    /// The tone, for colours and emoji.
    pub tone: Tone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tone {
    Critical,
    Warning,
    Resolved,
    Info,
    Failed,
}

pub(crate) fn headline(event: &Event) -> Headline {
    let on = format!("{} on {}", event.title(), event.check);
    match event.kind {
        EventKind::Firing => {
            let (label, tone) = match event.severity {
                Severity::Critical => ("CRITICAL", Tone::Critical),
                Severity::Warning => ("WARNING", Tone::Warning),
            };
            Headline {
                label,
                text: format!("{on} — {}", measurement(event)),
                tone,
            }
        }
        EventKind::Resolved => {
            let was = match &event.condition {
                Some(c) => format!(" ({} was {c})", event.severity.as_str()),
                None => format!(" (was {})", event.severity.as_str()),
            };
            Headline {
                label: "RESOLVED",
                text: format!("{on} — {}{was}", measurement(event)),
                tone: Tone::Resolved,
            }
        }
        EventKind::Hook => match &event.hook {
            Some(h) => {
                let (failed, line) = hook_line(event, h);
                let (label, tone) = match (failed, h.dry_run) {
                    // The incident goes on without what the hook was for (a rollback).
                    _ if h.skipped.is_some() => ("HOOK NOT RUN", Tone::Failed),
                    // A page: the incident goes on although the hook (a rollback) ran.
                    _ if h.not_helped.is_some() => ("DID NOT HELP", Tone::Critical),
                    (true, _) => ("HOOK FAILED", Tone::Failed),
                    (false, true) => ("HOOK DRY RUN", Tone::Info),
                    (false, false) => ("HOOK", Tone::Info),
                };
                Headline {
                    label,
                    text: line,
                    tone,
                }
            }
            None => Headline {
                label: "HOOK",
                text: format!("a hook for {} reported no outcome", event.title()),
                tone: Tone::Info,
            },
        },
        EventKind::Notice => {
            let inconclusive = event
                .labels
                .get("verdict")
                .is_some_and(|v| v == "inconclusive");
            Headline {
                label: if inconclusive {
                    "INCONCLUSIVE"
                } else {
                    "PASSED"
                },
                text: event
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("{} passed", event.title())),
                tone: if inconclusive {
                    Tone::Warning
                } else {
                    Tone::Resolved
                },
            }
        }
        EventKind::Test => Headline {
            label: "TEST",
            text: format!("{on} — a test page from warden, no action needed"),
            tone: Tone::Info,
        },
    }
}

/// `LABEL: text`, the one-line summary used where no decoration fits.
pub(crate) fn summary(event: &Event) -> String {
    let h = headline(event);
    format!("{}: {}", h.label, h.text)
}

/// Cuts `text` to at most `max` characters, ending in `…` when cut (never inside a char).
pub(crate) fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let mut out: String = text.chars().take(keep).collect();
    out.push('…');
    out
}

/// 64-bit FNV-1a, the hash Prometheus and Alertmanager use for label fingerprints.
pub(crate) fn fnv1a64(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[cfg(test)]
mod tests;
