//! Silences, maintenance windows and inhibition: what keeps an alert's pages back.
//!
//! The rule is the issue's: **suppress paging, never evaluation, never resolves.** A
//! suppressed alert is still evaluated, recorded, shown (`GET /api/v1/alerts` names what
//! suppresses it) and resolved; what is held back is the notification of a firing state:
//!
//! - an alert that opens, escalates or de-escalates while suppressed tells nobody; its record
//!   says so (`Firing::muted`) and its resolve goes only to whoever was told before (nobody,
//!   when it fired only while suppressed: nobody hears of an alert they never heard of);
//! - re-sends (to receivers that forget alerts, Alertmanager) stop while it is suppressed, so
//!   the receiver lets the alert lapse instead of repeating it; the resolve still goes;
//! - when nothing suppresses a muted alert any more (its silence expired or was expired, the
//!   maintenance window closed, the inhibiting alert resolved) and it still fires, it is paged
//!   then, to its severity's route, as Alertmanager does ([`Alerts::unmute`], each tick);
//! - hooks: silences and inhibition mute notifications, not hooks (a rollback still runs for
//!   a silenced alert; its outcome goes to the hook's `notify`, else to whoever the alert
//!   reached). A maintenance window holds hooks too: while one matches a firing alert, its
//!   hooks are not due (they come due at the window's end if the alert still fires and their
//!   `after` has passed).
//!
//! The labels they match (`match_labels`): the event's labels (the series' labels, the rule's
//! labels, `check`, `severity`; a window's alert: `window`, `service`, `deploy`, `version`,
//! `severity`) plus `alertname` and `rule`, both the rule's name (`alertname` as the
//! Alertmanager notifier sends it), which win over a series or rule label of those names.
//!
//! Inhibition is Alertmanager's: a firing alert (silenced or not) matching an `[[inhibit]]`'s
//! source matchers keeps back the pages of other alerts matching its target matchers whose
//! `equal` labels have the same values (missing in both counts as equal); an alert matching
//! both sides is not inhibited by one that does too. It applies to pages decided while the
//! source fires: a target that paged before its source fired stays paged (and resolves).
//!
//! Pure: `now` is a parameter. The driver stores silences (`state/silences.rs`) and hands
//! them here.

use serde::{Deserialize, Serialize};

use super::{Alerts, Firing, Plan};
use crate::alert::{AlertId, Event};
use crate::clock::Timestamp;
use crate::config::suppression::{InhibitRule, Maintenance};
use crate::labels::Labels;
use crate::matcher::{all_match, Matcher};

/// How long an expired silence stays listed (and stored), as Alertmanager's retention.
pub const EXPIRED_RETENTION: std::time::Duration = std::time::Duration::from_secs(5 * 24 * 3600);
/// The most silences kept (expired ones within their retention included).
pub const MAX_SILENCES: usize = 10_000;
/// The most matchers one silence may have.
pub const MAX_MATCHERS: usize = 64;
/// The longest author or comment.
pub const MAX_TEXT: usize = 4096;

/// A silence: while `starts_at <= now < ends_at`, alerts matching every matcher are not paged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: u64,
    pub matchers: Vec<Matcher>,
    /// Milliseconds since the epoch.
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
    pub created_at: i64,
    /// Set when it was expired before its end (`warden silence expire`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: Timestamp) -> SilenceState {
        let now = now.as_millis();
        if now >= self.ends_at {
            SilenceState::Expired
        } else if now < self.starts_at {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    pub fn mutes(&self, labels: &Labels, now: Timestamp) -> bool {
        self.state(now) == SilenceState::Active && all_match(&self.matchers, labels)
    }

    /// As the API shows it: times also in RFC 3339, and its state at `now`.
    pub fn view(&self, now: Timestamp) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "matchers": self.matchers,
            "starts_at": Timestamp(self.starts_at).to_rfc3339(),
            "ends_at": Timestamp(self.ends_at).to_rfc3339(),
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": Timestamp(self.created_at).to_rfc3339(),
            "state": self.state(now).as_str(),
        })
    }
}

/// The body of `POST /api/v1/silences`: matchers (`name="value"` strings), an end
/// (`ends_at`, RFC 3339) or a `duration` (`2h`), an optional start (default now), and who and
/// why (both required, as Alertmanager asks). Alertmanager's camelCase names are accepted too.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    pub matchers: Vec<String>,
    #[serde(default, alias = "startsAt", skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[serde(default, alias = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, alias = "createdBy")]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

impl SilenceRequest {
    /// The silence it asks for, numbered `id`, or why not.
    pub fn into_silence(self, id: u64, now: Timestamp) -> Result<Silence, String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher, e.g. rule=\"api-p95\"".into());
        }
        if self.matchers.len() > MAX_MATCHERS {
            return Err(format!("a silence has at most {MAX_MATCHERS} matchers"));
        }
        let matchers = self
            .matchers
            .iter()
            .map(|m| Matcher::parse(m))
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.iter().all(Matcher::matches_empty) {
            return Err(
                "every matcher also matches an alert without its label, so this silence would \
                 mute (nearly) every alert; add one that names a value, e.g. rule=\"api-p95\""
                    .into(),
            );
        }
        let time = |what: &str, s: &str| -> Result<i64, String> {
            s.parse::<jiff::Timestamp>()
                .map(|t| t.as_millisecond())
                .map_err(|e| format!("{what} {s:?} is not an RFC 3339 time: {e}"))
        };
        let starts_at = match &self.starts_at {
            Some(s) => time("starts_at", s)?.max(now.as_millis()),
            None => now.as_millis(),
        };
        let ends_at = match (&self.ends_at, &self.duration) {
            (Some(e), None) => time("ends_at", e)?,
            (None, Some(d)) => {
                let d =
                    crate::config::parse_duration(d).map_err(|e| format!("duration {d:?}: {e}"))?;
                (Timestamp(starts_at) + d).as_millis()
            }
            (Some(_), Some(_)) => return Err("give ends_at or duration, not both".into()),
            (None, None) => {
                return Err("a silence needs an end: ends_at (RFC 3339) or duration (2h)".into())
            }
        };
        if ends_at <= starts_at {
            return Err("a silence must end after it starts (and after now)".into());
        }
        let text = |what: &str, s: String| -> Result<String, String> {
            let s = s.trim().to_string();
            if s.is_empty() {
                return Err(format!("a silence needs {what}"));
            }
            if s.len() > MAX_TEXT {
                return Err(format!("{what} is at most {MAX_TEXT} bytes"));
            }
            Ok(s)
        };
        Ok(Silence {
            id,
            matchers,
            starts_at,
            ends_at,
            created_by: text("created_by (who adds it)", self.created_by)?,
            comment: text("a comment (why)", self.comment)?,
            created_at: now.as_millis(),
            expired_at: None,
        })
    }
}

/// Ends `silence` at `now` (a pending one never starts). `Err`: it has already ended.
pub fn expire(silence: &mut Silence, now: Timestamp) -> Result<(), String> {
    if silence.state(now) == SilenceState::Expired {
        return Err(format!("silence {} has already ended", silence.id));
    }
    silence.ends_at = now.as_millis();
    silence.starts_at = silence.starts_at.min(silence.ends_at);
    silence.expired_at = Some(now.as_millis());
    Ok(())
}

/// What keeps an alert's pages back at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suppression {
    /// Active silences matching it, by id.
    pub silenced_by: Vec<u64>,
    /// Maintenance windows on and matching it, by name (these also hold its hooks).
    pub maintenance: Vec<String>,
    /// Firing alerts inhibiting it, as titles (`rule{labels}`).
    pub inhibited_by: Vec<String>,
}

impl Suppression {
    pub fn suppressed(&self) -> bool {
        !(self.silenced_by.is_empty()
            && self.maintenance.is_empty()
            && self.inhibited_by.is_empty())
    }
}

/// The silences the stage knows, and what it last published of them.
#[derive(Debug, Default)]
pub(super) struct Book {
    pub silences: Vec<Silence>,
    /// The latest `now` seen (for `Alerts::view`, which takes none).
    pub now: Timestamp,
    /// Active silences and maintenance windows when last looked at: when these change, the
    /// published views are stale.
    active: (Vec<u64>, Vec<String>),
    stale: bool,
}

/// The labels silences, maintenance windows and inhibition rules match on an alert.
pub fn match_labels(alert: &AlertId, event: &Event) -> Labels {
    let mut labels = event.labels.clone();
    labels.insert("alertname".into(), alert.rule.clone());
    labels.insert("rule".into(), alert.rule.clone());
    labels
}

/// Active silences matching `labels`, by id.
pub fn silenced_by(silences: &[Silence], labels: &Labels, now: Timestamp) -> Vec<u64> {
    silences
        .iter()
        .filter(|s| s.mutes(labels, now))
        .map(|s| s.id)
        .collect()
}

/// Maintenance windows on at `now` and matching `labels`, by name.
pub fn maintenance_of(windows: &[Maintenance], labels: &Labels, now: Timestamp) -> Vec<String> {
    windows
        .iter()
        .filter(|m| all_match(&m.matchers, labels) && m.schedule.active(now))
        .map(|m| m.name.clone())
        .collect()
}

/// Whether `source` (firing) inhibits `target` under `rule`.
pub fn inhibits(rule: &InhibitRule, source: &Labels, target: &Labels) -> bool {
    if !all_match(&rule.target, target) || !all_match(&rule.source, source) {
        return false;
    }
    // An alert on both sides is not inhibited by another that is on both sides too.
    if all_match(&rule.source, target) && all_match(&rule.target, source) {
        return false;
    }
    rule.equal.iter().all(|name| {
        source.get(name).map_or("", String::as_str) == target.get(name).map_or("", String::as_str)
    })
}

impl Alerts {
    /// What keeps `alert`'s pages back at `now`, `event` being its firing event.
    pub fn suppression(&self, alert: &AlertId, event: &Event, now: Timestamp) -> Suppression {
        let labels = match_labels(alert, event);
        let mut out = Suppression {
            silenced_by: silenced_by(&self.book.silences, &labels, now),
            maintenance: maintenance_of(&self.alerting.maintenance, &labels, now),
            inhibited_by: Vec::new(),
        };
        let rules: Vec<&InhibitRule> = self
            .alerting
            .inhibit
            .iter()
            .filter(|r| all_match(&r.target, &labels))
            .collect();
        if !rules.is_empty() {
            for (id, record) in &self.records {
                let Some(f) = record.firing.as_ref().filter(|_| id != alert) else {
                    continue;
                };
                let source = match_labels(id, &f.event);
                if rules.iter().any(|r| inhibits(r, &source, &labels)) {
                    out.inhibited_by.push(f.event.title());
                }
            }
        }
        out
    }

    /// Whether a maintenance window holds the hooks of `alert` (firing as `event`) at `now`.
    pub(super) fn hooks_held(&self, alert: &AlertId, event: &Event, now: Timestamp) -> bool {
        let labels = match_labels(alert, event);
        !maintenance_of(&self.alerting.maintenance, &labels, now).is_empty()
    }

    /// Pages the muted alerts nothing suppresses any more, to their severity's route; marks
    /// the views stale when the active silences or maintenance windows changed.
    pub(super) fn unmute(&mut self, now: Timestamp) -> Plan {
        self.book.now = now;
        let active = (
            self.book
                .silences
                .iter()
                .filter(|s| s.state(now) == SilenceState::Active)
                .map(|s| s.id)
                .collect(),
            self.alerting
                .maintenance
                .iter()
                .filter(|m| m.schedule.active(now))
                .map(|m| m.name.clone())
                .collect(),
        );
        if active != self.book.active {
            self.book.active = active;
            self.book.stale = true;
        }
        let muted: Vec<AlertId> = self
            .records
            .iter()
            .filter(|(_, r)| r.firing.as_ref().is_some_and(|f| f.muted))
            .map(|(id, _)| id.clone())
            .collect();
        let mut plan = Plan::default();
        for id in muted {
            let Some(f) = self.records.get(&id).and_then(|r| r.firing.as_ref()) else {
                continue;
            };
            if self.suppression(&id, &f.event, now).suppressed() {
                continue;
            }
            // Under an on-call policy, what is owed is the steps already due (the later ones
            // come from `policy_steps`); else the severity's route.
            let route = match &f.policy {
                Some(p) => self
                    .alerting
                    .policies
                    .get(&p.name)
                    .map(|policy| {
                        let mut names: Vec<String> = Vec::new();
                        for step in p.sent.iter().filter_map(|i| policy.steps.get(*i)) {
                            for n in &step.notify {
                                if !names.contains(n) {
                                    names.push(n.clone());
                                }
                            }
                        }
                        names
                    })
                    .unwrap_or_default(),
                None => self.alerting.route_of(&id.rule, f.severity).to_vec(),
            };
            let to = self.existing(route, &id, &mut plan);
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            let Some(f) = record.firing.as_mut() else {
                continue;
            };
            f.muted = false;
            f.notified.extend(to.iter().cloned());
            let mut event = f.event.clone();
            event.at = now.to_rfc3339();
            plan.records.push((id.clone(), record.clone()));
            for n in &to {
                self.sent.insert((id.clone(), n.clone()), now);
            }
            if !to.is_empty() {
                plan.events.push((event, to));
            }
        }
        plan
    }

    /// Whether the published views (alerts, silences) are stale since the last call.
    pub fn take_stale(&mut self) -> bool {
        std::mem::take(&mut self.book.stale)
    }

    /// Adds `silence` (the driver stored it); expired ones past their retention are dropped.
    pub fn add_silence(&mut self, silence: Silence, now: Timestamp) {
        self.book.silences.retain(|s| s.id != silence.id);
        self.book.silences.push(silence);
        self.forget_expired(now);
        self.book.stale = true;
    }

    /// Every silence kept (from the store at start).
    pub fn set_silences(&mut self, silences: Vec<Silence>, now: Timestamp) {
        self.book.silences = silences;
        self.forget_expired(now);
        self.book.stale = true;
    }

    /// Whether another silence may be added.
    pub fn silences_full(&self) -> bool {
        self.book.silences.len() >= MAX_SILENCES
    }

    /// Silence `id`, if kept.
    pub fn silence(&self, id: u64) -> Option<&Silence> {
        self.book.silences.iter().find(|s| s.id == id)
    }

    fn forget_expired(&mut self, now: Timestamp) {
        let horizon = (now - EXPIRED_RETENTION).as_millis();
        self.book.silences.retain(|s| s.ends_at >= horizon);
        self.book.silences.sort_by_key(|s| s.id);
    }

    /// `GET /api/v1/silences`: every silence kept, newest first, with its state and the
    /// firing alerts it mutes now.
    pub fn silences_view(&self, now: Timestamp) -> serde_json::Value {
        let firing: Vec<(String, Labels)> = self
            .records
            .iter()
            .filter_map(|(id, r)| Some((id, r.firing.as_ref()?)))
            .map(|(id, f)| (f.event.title(), match_labels(id, &f.event)))
            .collect();
        let silences: Vec<serde_json::Value> = self
            .book
            .silences
            .iter()
            .rev()
            .map(|s| {
                let mut v = s.view(now);
                let muting: Vec<&String> = firing
                    .iter()
                    .filter(|(_, labels)| s.mutes(labels, now))
                    .map(|(title, _)| title)
                    .collect();
                v["silencing"] = serde_json::json!(muting);
                v
            })
            .collect();
        serde_json::json!({ "silences": silences })
    }

    /// Adds what suppresses a firing alert to its `GET /api/v1/alerts` entry.
    pub(super) fn annotate(&self, alert: &AlertId, f: &Firing, view: &mut serde_json::Value) {
        let s = self.suppression(alert, &f.event, self.book.now);
        if !s.silenced_by.is_empty() || !s.maintenance.is_empty() {
            let by: Vec<String> = s
                .silenced_by
                .iter()
                .map(|id| format!("silence {id}"))
                .chain(s.maintenance.iter().map(|m| format!("maintenance {m}")))
                .collect();
            view["silenced_by"] = serde_json::json!(by);
        }
        if !s.inhibited_by.is_empty() {
            view["inhibited_by"] = serde_json::json!(s.inhibited_by);
        }
        if f.muted {
            view["muted"] = serde_json::json!(true);
        }
    }
}

#[cfg(test)]
#[path = "tests_silences.rs"]
mod tests;
