//! The alert stage's vocabulary: what a rule transition becomes on its way to a receiver.
//!
//! An [`Event`] is one thing worth telling someone: an alert firing at a severity, the same
//! alert resolved, a hook's outcome, or a test page. It carries everything a notifier renders
//! and a stable `dedup_key` (rule + incident, never the value, time or severity), so a
//! receiver can collapse repeats and an outbox can deliver each event at least once and a
//! receiver sees it once per key.
//!
//! A [`Sink`] (one per configured notifier) only renders and sends an event and classifies
//! the outcome as a [`Delivery`]; retry, backoff, dedup and ordering live once, in the outbox.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::labels::{self, Labels};

/// An alert's identity: the rule and the series' labels (empty for a rule reading a scalar
/// value, whose one series has none). Ordered by rule, then labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertId {
    pub rule: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
}

impl AlertId {
    pub fn new(rule: impl Into<String>, labels: Labels) -> Self {
        AlertId {
            rule: rule.into(),
            labels,
        }
    }

    /// The alert of a rule's unlabelled series.
    pub fn rule(rule: impl Into<String>) -> Self {
        Self::new(rule, Labels::new())
    }

    /// The dedup key of this alert's `incident`-th incident for `identity`:
    /// `warden/<instance>/<rule>/<epoch>-<n>`, with the labels' fingerprint before the number
    /// for a labelled series (`warden/<instance>/<rule>/<fingerprint>/<epoch>-<n>`). Stable per
    /// series and instance; the epoch (the state file's) keeps a new state file from numbering
    /// into keys an earlier one used.
    pub fn dedup_key(&self, identity: &Identity, incident: u64) -> String {
        let Identity { instance, epoch } = identity;
        let rule = &self.rule;
        if self.labels.is_empty() {
            format!("warden/{instance}/{rule}/{epoch}-{incident}")
        } else {
            let series = labels::fingerprint(&self.labels);
            format!("warden/{instance}/{rule}/{series}/{epoch}-{incident}")
        }
    }
}

/// `rule` or `rule{name="value", ...}`.
impl std::fmt::Display for AlertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.rule, labels::render(&self.labels))
    }
}

/// Who this warden is to receivers: part of every dedup key, so two wardens with the same
/// rule names never share keys. `instance` is configured (`[alerting] instance`), else the
/// one the state file remembers, else the host name; `epoch` is set once when the state file
/// is created (base 36 of its creation time in seconds), so numbering restarted by a lost
/// state file never repeats a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub instance: String,
    pub epoch: String,
}

/// How bad: the level of the rule that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The alert fires (or escalates/de-escalates) at `severity`.
    Firing,
    /// The alert is over.
    Resolved,
    /// A hook ran (or would have, in dry-run), or did not run for the incident (its
    /// cooldown); `hook` says how it went.
    Hook,
    /// `warden notify-test`: a page that proves the path works.
    Test,
    /// A message, not an alert: a validation window passed (its `on_success` message is the
    /// description). Never sent to receivers that open incidents (config refuses them).
    Notice,
}

/// A hook run's outcome, carried by [`EventKind::Hook`] events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookOutcome {
    pub hook: String,
    /// The argv (or shell line) as configured.
    pub command: String,
    pub dry_run: bool,
    /// `None` when killed by a signal or timeout, or in dry-run.
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub duration_seconds: f64,
    /// Set when the hook did not run for the incident: why, for people (`cooldown until
    /// 2026-12-07T10:00:00.000Z (last run ended 2026-12-06T10:00:00.000Z, for
    /// warden/api-down/1)`). Absent from payloads otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Set when the hook ran (successfully) for the incident and its `verify` time passed
    /// with the alert still firing: what was found, for people (`ran at ... and did not help:
    /// api-errors still critical 10m later; not run again for this incident`). Absent from
    /// payloads otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_helped: Option<String>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a dedup key's `/` too),
/// for a value in a URL's path or query.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signature of an acknowledgement link for incident `dedup_key`, valid until `exp` (unix
/// seconds): hex HMAC-SHA256 under `key` of `dedup_key`, a newline, `exp`.
pub fn ack_signature(key: &[u8], dedup_key: &str, exp: i64) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(dedup_key.as_bytes());
    mac.update(b"\n");
    mac.update(exp.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `sig` is the signature of (`dedup_key`, `exp`), compared in constant time.
pub fn ack_signature_valid(key: &[u8], dedup_key: &str, exp: i64, sig: &str) -> bool {
    let want = ack_signature(key, dedup_key, exp);
    want.len() == sig.len()
        && want
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The longest instance name.
pub const MAX_INSTANCE_LEN: usize = 64;

/// Whether `s` can name this warden in dedup keys (`warden/<instance>/...`): 1 to 64
/// characters of `[A-Za-z0-9._-]`, so never a `/`.
pub fn valid_instance(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_INSTANCE_LEN || !s.chars().all(instance_char) {
        return Err(format!(
            "instance {s:?} must be 1 to {MAX_INSTANCE_LEN} characters of letters, digits, \
             '.', '_' and '-' (it names this warden in every dedup key), e.g. \"web-1\""
        ));
    }
    Ok(())
}

pub fn instance_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// One thing to tell someone. Serialisable, because the outbox stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub kind: EventKind,
    /// The rule's name (the alert's name).
    pub alert: String,
    /// The series' labels (empty for a rule reading a scalar value). Also in `labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub series: Labels,
    /// The check the rule reads.
    pub check: String,
    pub severity: Severity,
    /// The value that caused the transition, if there was one.
    pub value: Option<f64>,
    /// What `value` measures: the rule's observed value name (`memory_ratio`, `status_code`),
    /// so a page reads "memory_ratio 0.97 > 0.95" rather than a bare number.
    #[serde(default)]
    pub value_name: Option<String>,
    /// The threshold of the level that fired (for `Resolved`, the one that had fired).
    pub threshold: Option<f64>,
    /// The condition as written (`> 0.8`), for people.
    pub condition: Option<String>,
    pub description: Option<String>,
    /// The series' labels, then the rule's labels (which win over a series label of the same
    /// name, as in Prometheus), then `check`, `severity`.
    pub labels: BTreeMap<String, String>,
    /// RFC 3339: when the alert started firing (for `Resolved`, when it had started).
    pub since: String,
    /// RFC 3339: when this event was produced.
    pub at: String,
    /// The deploy (validation window) this happened in, if any.
    pub deploy: Option<String>,
    /// Stable per alert incident: `warden/<rule>/<incident>`. Never contains the value, time
    /// or severity, so a warning that becomes critical updates the same page.
    pub dedup_key: String,
    /// Set for `Hook` events.
    pub hook: Option<HookOutcome>,
    /// A signed, expiring link that acknowledges this incident (`[alerting] external_url`
    /// set): no admin token travels in a chat message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
    /// Set on a group's notification (`[[policy]] group_by`): the alerts it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<Group>,
}

/// What a group's notification is about (`[[policy]] group_by`). The notification itself is
/// an [`Event`] whose `alert` is the policy, `series` the group's label values, `dedup_key`
/// the group's (stable while any alert of the group fires), `kind` `firing` while one does
/// and `resolved` once none does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The policy that groups.
    pub policy: String,
    /// The `group_by` labels' values.
    pub labels: Labels,
    /// The group's alerts, each its own event: the firing ones (most severe first), then those
    /// resolved since the group's previous notification.
    pub alerts: Vec<Event>,
}

impl Event {
    /// The alert as people name it: `rule`, or `rule{name="value", ...}` for a labelled series.
    pub fn title(&self) -> String {
        format!("{}{}", self.alert, labels::render(&self.series))
    }

    pub fn id(&self) -> AlertId {
        AlertId::new(self.alert.clone(), self.series.clone())
    }
}

/// A send's outcome, as the outbox needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// The receiver accepted the event.
    Ok,
    /// Try again later (connect error, timeout, 5xx, 429); `retry_after` honours the
    /// receiver's `Retry-After` when it gave one.
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help (4xx other than 429, a payload the receiver rejects); reported.
    Permanent { reason: String },
}

/// A boxed future, so sinks can be trait objects without a macro crate.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A configured notifier: renders and sends one event, classifies the outcome. It must bound
/// its own time (connect and total timeouts) and never retry: the outbox does.
pub trait Sink: Send + Sync {
    /// The notifier's name from the config.
    fn name(&self) -> &str;
    /// The notifier's kind (`webhook`, `slack`, `pagerduty`, `alertmanager`, `email`).
    fn kind(&self) -> &'static str;
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Delivery>;
}
