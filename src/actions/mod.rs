//! The actions stage: rule transitions in, pages and hook runs out.
//!
//! [`Alerts`] keeps one [`AlertRecord`] per alert, `(rule, labels)` ([`AlertId`]: a rule
//! reading a scalar value has one alert, without labels; a rule reading labelled series one per
//! series), persisted by the driver in the state store, and reconciles it with what the rule
//! reports for that series, so the decision to page is a comparison, not a reaction to one
//! event:
//!
//! - a rule at `warning` or `critical` wants its alert firing at that severity; `ok` wants it
//!   resolved; `unknown` and `flapping` change nothing (a probe that cannot see, or a rule that
//!   keeps changing its mind, neither pages nor resolves);
//! - a firing alert that is already recorded at the wanted severity sends nothing. That is
//!   what keeps a restart or a reload (which restart rules from `unknown`) from paging again;
//! - a new alert opens an incident (dedup key `warden/<instance>/<rule>[/<series>]/<epoch>-<n>`,
//!   see [`AlertId::dedup_key`]; `n` counts per alert and is never reused), sent to the route
//!   of its severity. An escalation or de-escalation sends the new
//!   severity to that severity's route under the same dedup key. A resolve goes to every
//!   notifier the incident went to. An incident that opens at a severity whose route names
//!   no notifier is reported in the plan ([`Unrouted`]) for the driver to warn about, once;
//! - notifiers whose receivers forget alerts (Alertmanager) get a firing alert again every
//!   `resend_every` ([`Alerts::tick`]);
//! - a rule's hooks run once its alert has been at the hook's level (or worse) for the hook's
//!   `after`, diagnostic hooks first; a non-diagnostic hook waits while a diagnostic hook of
//!   the same alert is still running. Once per incident and the cooldown are enforced by the
//!   store (`outbox::HookGuard`). A hook that comes due inside its cooldown does not run for
//!   this incident at all (a rollback deferred to the cooldown's end could undo the first
//!   one): the driver notifies that like an outcome, and the record keeps how each hook went
//!   for the incident ([`HookNote`], shown by [`Alerts::view`]);
//! - a hook is one process at a time across all alerts: while a job holds it (from the plan
//!   that starts the job until the job reports the hook's end), other alerts wait for it, and
//!   the end admits the one whose hook came due first ([`Alerts::hook_finished`]), at once.
//!   Only a refusal this stage cannot foresee (the store failed, or still holds a run whose
//!   end it could not record) is asked again [`HOOK_RETRY`] later;
//! - a rule removed from the config resolves its alerts, and so does a rule that no longer
//!   reads the kind of value (scalar or labelled series) its alerts were of; a series that
//!   disappeared (transition reason `series_gone`) resolves its alert saying so;
//! - a new incident names the deploy current when it opens ([`Alerts::set_deploy`]); every
//!   event of the incident (escalations, re-sends, the resolve, its hooks) keeps that one.
//!
//! Everything here is synchronous and pure: the driver (`run`) passes `now`, commits each
//! [`Plan`] (records and events in one transaction) and then starts its hook jobs.

mod groups;
mod guarded;
mod run;
pub mod silences;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertId, Event, EventKind, Identity, Severity};
use crate::clock::Timestamp;
use crate::config::window::WindowConfig;
use crate::config::{AlertingConfig, Config, HookSpec, RuleConfig};
use crate::engine::RuleTransition;
use crate::labels::{self, Labels};
use crate::rule::{State, TransitionReason};
use crate::window::{Run, RunState};

pub use groups::GroupState;
pub use run::{spawn, Actions, ActionsOptions, WindowFacts};
pub use silences::{Silence, SilenceRequest, Suppression};

/// A dependent held by a parent that resolved is paged only if it still fires this much later:
/// it usually recovers with its parent (the API once Postgres is back), a little after it.
pub const DEPENDENCY_GRACE: Duration = Duration::from_secs(60);

/// After the store did not admit a hook for a reason that passes (it could not record the
/// start, or it still holds a run whose end it could not record), how long until it is
/// tried again. A hook busy for another alert of this process is not retried: it is handed
/// on when that run ends.
pub const HOOK_RETRY: Duration = Duration::from_secs(10);

/// What warden remembers about an alert across restarts. Stored as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The number of the alert's latest incident (0: it never fired).
    pub incident: u64,
    /// Set while the alert fires.
    pub firing: Option<Firing>,
}

/// A firing alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub severity: Severity,
    /// Milliseconds since the epoch: when the incident started.
    pub since: i64,
    /// When the alert last became critical, while it is critical.
    pub critical_since: Option<i64>,
    /// Every notifier told about this incident; the resolve goes to each.
    pub notified: BTreeSet<String>,
    /// The last firing event sent: the base of re-sends, resolves and hook triggers.
    pub event: Event,
    /// Hooks finished with for this incident: run, dry-run, or skipped for their cooldown.
    /// Persisted, so a restart never runs them for this incident again.
    #[serde(default)]
    pub hooks_done: BTreeSet<String>,
    /// How each hook went for this incident, by hook name, for `GET /api/v1/alerts`.
    #[serde(default)]
    pub hook_notes: BTreeMap<String, HookNote>,
    /// The current firing state is owed to its severity's route but was kept back by a
    /// silence, maintenance window or inhibition: paged when nothing suppresses it any more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub muted: bool,
    /// The on-call policy's progress at the current severity (`None`: the plain route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyProgress>,
    /// Who acknowledged the incident: no repeats and no further policy steps until it
    /// resolves or gets worse (to critical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

/// How far an incident went through its policy's steps. Persisted: a restart neither repeats
/// a step nor forgets one that is due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyProgress {
    pub name: String,
    /// ms since the epoch: when the alert reached its current severity (steps count from here).
    pub since: i64,
    /// The steps sent, by index.
    pub sent: BTreeSet<usize>,
    /// ms since the epoch: when the incident was last sent (the base of `repeat`).
    pub last_sent: i64,
}

/// An acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub by: String,
    /// RFC 3339.
    pub at: String,
}

/// How a hook went for an incident, as `GET /api/v1/alerts` shows it on the alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookNote {
    /// `success`, `failure`, `timeout`, `error`, `dry_run` (as in `warden_hook_runs_total`),
    /// or `skipped` (it did not run for this incident).
    pub outcome: String,
    /// Why it was skipped or could not run (`cooldown until ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339: when it ended, or was skipped.
    pub at: String,
    /// After a successful run of a hook with `verify`: whether the alert resolved in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<Verification>,
}

/// Whether a hook that ran helped: the alert must resolve by `until`. Kept in the alert's
/// record, so a restart during the verify time still verifies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Milliseconds since the epoch: the alert must have resolved by then.
    pub until: i64,
    pub outcome: VerifyOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// The verify time has not passed (or it passed while nobody saw the alert).
    Pending,
    /// The alert still fired at `until`: "did not help" was paged; the hook does not run
    /// again for the incident. (An alert that resolved in time has no note left to show: its
    /// incident is over.)
    NotHelped,
}

impl VerifyOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyOutcome::Pending => "pending",
            VerifyOutcome::NotHelped => "not_helped",
        }
    }
}

/// What the driver must do, in this order: commit `records` and `events` together, then
/// warn about `unrouted` and start `hooks`.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub records: Vec<(AlertId, AlertRecord)>,
    pub events: Vec<(Event, Vec<String>)>,
    pub hooks: Vec<HookJob>,
    /// Incidents that opened at a severity whose route names no notifier: nobody is told.
    pub unrouted: Vec<Unrouted>,
    /// (alert, notifier): a notifier an alert should tell that is no longer configured
    /// (renamed or removed by a reload): it is not told. The driver logs these.
    pub gone: Vec<(AlertId, String)>,
    /// Validation window runs to save, in the same transaction.
    pub windows: Vec<Run>,
    /// Notification groups to save (`Some`: as JSON) or delete, by key (`groups`).
    pub groups: Vec<(String, Option<String>)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.events.is_empty()
            && self.hooks.is_empty()
            && self.unrouted.is_empty()
            && self.gone.is_empty()
            && self.windows.is_empty()
            && self.groups.is_empty()
    }

    pub fn extend(&mut self, other: Plan) {
        self.records.extend(other.records);
        self.events.extend(other.events);
        self.hooks.extend(other.hooks);
        self.unrouted.extend(other.unrouted);
        self.gone.extend(other.gone);
        self.windows.extend(other.windows);
        self.groups.extend(other.groups);
    }
}

/// An incident opened with nobody to tell: its severity's route is empty. Reported once, when
/// the incident opens (not on re-evaluations, escalations or restarts).
#[derive(Debug, Clone, PartialEq)]
pub struct Unrouted {
    pub alert: AlertId,
    pub severity: Severity,
    pub dedup_key: String,
    /// Where the route comes from: the rule's own `notify`, else `[alerting]`.
    pub route: RouteSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// `[alerting] warning` / `critical`.
    Alerting,
    /// The rule's `notify`.
    Rule,
}

impl Unrouted {
    /// What to change so the next incident reaches someone.
    pub fn fix(&self) -> String {
        let level = self.severity.as_str();
        match self.route {
            RouteSource::Alerting => format!(
                "name a notifier in [alerting] {level} (e.g. {level} = [\"oncall\"]) or in the rule's notify"
            ),
            RouteSource::Rule => format!(
                "the rule's notify names no notifier for {level}: add one (e.g. notify = {{ {level} = [\"oncall\"] }})"
            ),
        }
    }
}

/// Hooks to run one after the other for one alert.
#[derive(Debug, Clone, PartialEq)]
pub struct HookJob {
    pub alert: AlertId,
    pub incident: u64,
    /// The alert as the hooks see it (`WARDEN_*`); its dedup key is the incident.
    pub trigger: Event,
    /// In run order, each with the notifiers its outcome goes to.
    pub hooks: Vec<(HookSpec, Vec<String>)>,
}

/// How a hook of a job ended, as the stage needs it.
#[derive(Debug, Clone, PartialEq)]
pub enum HookResult {
    /// Done with for this incident: it ran (or dry-ran) or was skipped for its cooldown, as
    /// the note says; `None` when the store says it already ran for this incident.
    Done(Option<HookNote>),
    /// Not admitted now (the store failed, or still holds a run whose end it could not
    /// record); ask again then.
    RetryAt(Timestamp),
    /// Not run: by the time its turn came the alert no longer fired at its level (or the
    /// hook was removed). It becomes due again only if its conditions hold again.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Progress {
    Running,
    Done,
    RetryAt(Timestamp),
}

/// The stage. See the module doc.
pub struct Alerts {
    rules: HashMap<String, Arc<RuleConfig>>,
    alerting: AlertingConfig,
    records: BTreeMap<AlertId, AlertRecord>,
    /// Names this warden in the dedup keys of new incidents.
    identity: Identity,
    /// When each (alert, notifier) last got the firing alert, for re-sends. Not persisted:
    /// after a restart every re-send is due at once, which receivers that need them shrug off.
    sent: HashMap<(AlertId, String), Timestamp>,
    /// Hook progress per (alert, hook) in the incident `.0`.
    hooks: HashMap<(AlertId, String), (u64, Progress)>,
    /// Hooks held by a job that has not reported their end: hook → (alert, incident). Kept
    /// across reloads (a job of a removed rule still runs until it reports).
    busy: HashMap<String, (AlertId, u64)>,
    /// The level each alert was last *seen* at by this process, and since when. Hooks count
    /// their `after` only from here: not from a record loaded at start-up, and not across an
    /// `unknown` or `flapping` stretch (nobody saw the alert still firing then).
    seen: HashMap<AlertId, (Severity, Timestamp)>,
    /// The deploy new incidents name (`warden run --deploy`, `POST /-/reload?deploy=`).
    deploy: Option<String>,
    /// The validation windows by their alert's rule name (`window/<name>`).
    windows: HashMap<String, WindowConfig>,
    /// Rules whose pages a running window holds, until when (the expected blip of a traffic
    /// switch).
    held: HashMap<String, Timestamp>,
    /// Transitions of held rules that would have paged: applied when the hold ends, unless
    /// the rule recovered meanwhile.
    deferred: BTreeMap<AlertId, RuleTransition>,
    /// Silences (see `silences`).
    book: silences::Book,
    /// Notifiers a reload removed (or renamed): never paged again, but the resolves of the
    /// incidents they were told about still go to them (the driver keeps their senders until
    /// warden stops).
    retired: BTreeSet<String>,
    /// The key that signs acknowledgement links (from the state file); with
    /// `[alerting] external_url`, pages carry one.
    ack_key: Option<Vec<u8>>,
    /// Alerts that would open an incident while a rule they depend on (`depends_on`,
    /// transitively) fires: held, not paged (nor their hooks run). Each with the transition to
    /// apply once released, since when, and when its blockers all resolved (it is released
    /// [`DEPENDENCY_GRACE`] later if it still fires).
    blocked: BTreeMap<AlertId, Blocked>,
    /// Notification groups by key (see `groups`).
    groups: BTreeMap<String, GroupState>,
    /// Groups changed since they were last handed to a plan to persist.
    dirty_groups: BTreeSet<String>,
}

/// A dependent alert held by its parents.
#[derive(Debug, Clone)]
struct Blocked {
    transition: RuleTransition,
    by: Vec<String>,
    since: Timestamp,
    clear_since: Option<Timestamp>,
}

impl Alerts {
    /// Starts from the persisted records; the plan resolves alerts of rules no longer
    /// configured. New incidents' dedup keys name `identity`.
    pub fn new(
        config: &Config,
        records: BTreeMap<AlertId, AlertRecord>,
        identity: Identity,
        now: Timestamp,
    ) -> (Alerts, Plan) {
        let mut alerts = Alerts {
            rules: HashMap::new(),
            alerting: AlertingConfig::default(),
            records,
            identity,
            sent: HashMap::new(),
            hooks: HashMap::new(),
            busy: HashMap::new(),
            seen: HashMap::new(),
            deploy: None,
            windows: HashMap::new(),
            held: HashMap::new(),
            deferred: BTreeMap::new(),
            retired: BTreeSet::new(),
            blocked: BTreeMap::new(),
            ack_key: None,
            book: silences::Book::default(),
            groups: BTreeMap::new(),
            dirty_groups: BTreeSet::new(),
        };
        let plan = alerts.reconfigure(config, now);
        // A failed window's alert has no rule to report it again: it is seen firing from the
        // start, so hooks it has not done (the process died before running its rollback) run.
        let windows: Vec<(AlertId, Severity)> = alerts
            .records
            .iter()
            .filter(|(id, _)| alerts.windows.contains_key(&id.rule))
            .filter_map(|(id, r)| Some((id.clone(), r.firing.as_ref()?.severity)))
            .collect();
        for (id, severity) in windows {
            alerts.seen.insert(id, (severity, now));
        }
        (alerts, plan)
    }

    /// The key acknowledgement links are signed with.
    pub fn set_ack_key(&mut self, key: Vec<u8>) {
        self.ack_key = Some(key);
    }

    /// The acknowledgement link of incident `dedup_key` made `now`, when the config names an
    /// `external_url` and a key is set.
    fn ack_link(&self, dedup_key: &str, now: Timestamp) -> Option<String> {
        let base = self.alerting.external_url.as_ref()?;
        let key = self.ack_key.as_ref()?;
        let exp = (now + self.alerting.ack_link_ttl).as_millis() / 1000;
        let sig = crate::alert::ack_signature(key, dedup_key, exp);
        Some(format!(
            "{base}/api/v1/ack?key={}&exp={exp}&sig={sig}",
            crate::alert::percent_encode(dedup_key)
        ))
    }

    /// Acknowledges by a link from a page: the signature must be this warden's for that
    /// incident and the link not expired.
    pub fn ack_by_link(
        &mut self,
        dedup_key: &str,
        exp: i64,
        sig: &str,
        now: Timestamp,
    ) -> Result<(AlertId, Plan), String> {
        let key = self
            .ack_key
            .as_ref()
            .ok_or("acknowledgement links are off")?;
        if !crate::alert::ack_signature_valid(key, dedup_key, exp, sig) {
            return Err(
                "the link's signature does not match (altered, or from another warden)".into(),
            );
        }
        if now.as_millis() / 1000 > exp {
            return Err("the link has expired: use warden ack or the API".into());
        }
        self.ack(dedup_key, "an acknowledgement link", now)
    }

    /// Incidents opened from now on name `deploy`; those open keep theirs.
    pub fn set_deploy(&mut self, deploy: Option<String>) {
        self.deploy = deploy;
    }

    pub fn record(&self, alert: &AlertId) -> Option<&AlertRecord> {
        self.records.get(alert)
    }

    /// The labelled series whose alerts fire: the engine keeps a state for each, so one that
    /// never comes back is still dropped after its `gone_after` and its alert resolved.
    pub fn firing_series(&self) -> Vec<(String, Labels)> {
        self.records
            .iter()
            .filter(|(id, r)| !id.labels.is_empty() && r.firing.is_some())
            .map(|(id, _)| (id.rule.clone(), id.labels.clone()))
            .collect()
    }

    /// The alerts firing now, for `GET /api/v1/alerts`: most severe first, then oldest.
    pub fn view(&self) -> serde_json::Value {
        let mut firing: Vec<(&AlertId, &AlertRecord, &Firing)> = self
            .records
            .iter()
            .filter_map(|(id, r)| r.firing.as_ref().map(|f| (id, r, f)))
            .collect();
        firing.sort_by_key(|(id, _, f)| (f.severity == Severity::Warning, f.since, *id));
        let alerts: Vec<serde_json::Value> = firing
            .into_iter()
            .map(|(id, record, f)| {
                let mut alert = serde_json::json!({
                    "alert": id.rule,
                    "check": f.event.check,
                    "severity": f.severity,
                    "since": f.event.since,
                    "incident": record.incident,
                    "dedup_key": f.event.dedup_key,
                    "value": f.event.value,
                    "value_name": f.event.value_name,
                    "condition": f.event.condition,
                    "deploy": f.event.deploy,
                    "notified": f.notified,
                    "hooks": hook_list(f),
                });
                if let Some(ack) = &f.ack {
                    alert["ack"] = serde_json::json!(ack);
                }
                if let Some(p) = &f.policy {
                    alert["policy"] = serde_json::json!({"name": p.name, "steps_sent": p.sent});
                }
                if !id.labels.is_empty() {
                    alert["series"] = serde_json::json!(id.labels);
                }
                self.annotate(id, f, &mut alert);
                alert
            })
            .collect();
        let blocked: Vec<serde_json::Value> = self
            .blocked
            .iter()
            .map(|(id, b)| {
                let mut v = serde_json::json!({
                    "alert": id.rule,
                    "blocked_by": b.by,
                    "since": b.since.to_rfc3339(),
                    "state": b.transition.transition.to.as_str(),
                });
                if !id.labels.is_empty() {
                    v["series"] = serde_json::json!(id.labels);
                }
                v
            })
            .collect();
        serde_json::json!({ "alerts": alerts, "blocked": blocked, "groups": self.groups_view() })
    }

    /// Firing alerts by severity (warning, critical).
    pub fn firing_counts(&self) -> (usize, usize) {
        let mut counts = (0, 0);
        for f in self.records.values().filter_map(|r| r.firing.as_ref()) {
            match f.severity {
                Severity::Warning => counts.0 += 1,
                Severity::Critical => counts.1 += 1,
            }
        }
        counts
    }

    /// Switches to `config`. Alerts of removed rules are resolved; everything else carries
    /// over (a changed route applies from the next event on).
    pub fn reconfigure(&mut self, config: &Config, now: Timestamp) -> Plan {
        // A changed rule restarts from unknown in the engine: it is not seen at a level. A
        // failed window's alert has no rule: it stays as it was while its window exists.
        let old = std::mem::take(&mut self.rules);
        let windows: Vec<String> = config.windows.iter().map(|w| w.alert_rule()).collect();
        self.rules = config
            .rules
            .iter()
            .map(|r| (r.name.clone(), r.clone()))
            .collect();
        // Through the maps: a scan of the rules per alert seen is quadratic at 100,000.
        let rules = &self.rules;
        self.seen.retain(|id, _| {
            windows.contains(&id.rule)
                || rules
                    .get(&id.rule)
                    .is_some_and(|r| old.get(&id.rule) == Some(r))
        });
        for n in &self.alerting.notifiers {
            if config.alerting.notifier(&n.name).is_none() {
                self.retired.insert(n.name.clone());
            }
        }
        for n in &config.alerting.notifiers {
            self.retired.remove(&n.name);
        }
        self.alerting = config.alerting.clone();
        self.windows = config
            .windows
            .iter()
            .map(|w| (w.alert_rule(), w.clone()))
            .collect();
        let rules = &self.rules;
        let windows = &self.windows;
        let kept = |rule: &str| rules.contains_key(rule) || windows.contains_key(rule);
        self.sent.retain(|(id, _), _| kept(&id.rule));
        self.hooks.retain(|(id, _), _| kept(&id.rule));
        let gone: Vec<(AlertId, &'static str)> = self
            .records
            .iter()
            .filter(|(_, r)| r.firing.is_some())
            .filter_map(|(id, _)| {
                let why = match self.rules.get(&id.rule) {
                    None if self.windows.contains_key(&id.rule) => return None,
                    None if id.rule.starts_with("window/") => {
                        "the validation window was removed from the config"
                    }
                    None => "the rule was removed from the config",
                    Some(r) if r.series.is_some() == id.labels.is_empty() => {
                        "the rule no longer reads this kind of value (scalar or labelled series)"
                    }
                    Some(_) => return None,
                };
                Some((id.clone(), why))
            })
            .collect();
        let mut plan = Plan::default();
        for (id, why) in gone {
            plan.extend(self.resolve(&id, now, Some(why.to_string())));
        }
        plan
    }

    /// Applies one rule transition.
    pub fn transition(&mut self, t: &RuleTransition, now: Timestamp) -> Plan {
        let wanted = match t.transition.to {
            State::Ok => None,
            State::Warning => Some(Severity::Warning),
            State::Critical => Some(Severity::Critical),
            State::Unknown | State::Flapping => {
                let id = AlertId::new(t.rule.clone(), t.labels.clone());
                // A held page waits for a level it no longer is at.
                self.deferred.remove(&id);
                self.blocked.remove(&id);
                self.seen.remove(&id);
                return Plan::default();
            }
        };
        let Some(rule) = self.rules.get(&t.rule) else {
            return Plan::default();
        };
        let id = AlertId::new(t.rule.clone(), t.labels.clone());
        // A window holds this rule's pages (the expected blip of a traffic switch): a page it
        // would open waits for the hold's end, and is dropped if the rule recovers first.
        // Never a resolve, never an alert already firing.
        let firing_now = self.records.get(&id).is_some_and(|r| r.firing.is_some());
        match wanted {
            Some(_) if !firing_now && self.held.get(&t.rule).is_some_and(|until| now < *until) => {
                self.deferred.insert(id, t.clone());
                return Plan::default();
            }
            _ => {
                self.deferred.remove(&id);
            }
        }
        // A rule it depends on fires: evaluated, shown, not paged (and no hook); the parent's
        // page names it. Never a resolve, never an alert already firing.
        match wanted {
            Some(_) if !firing_now => {
                let by = self.blockers(&t.rule);
                if !by.is_empty() {
                    let since = self.blocked.get(&id).map_or(now, |b| b.since);
                    self.blocked.insert(
                        id,
                        Blocked {
                            transition: t.clone(),
                            by: by.clone(),
                            since,
                            clear_since: None,
                        },
                    );
                    let mut plan = Plan::default();
                    for parent in by {
                        plan.extend(self.name_dependents(&parent, now));
                    }
                    return plan;
                }
            }
            _ => {
                self.blocked.remove(&id);
            }
        }
        match wanted {
            Some(severity) => {
                let at = t.transition.at.min(now);
                self.seen.insert(id.clone(), (severity, at));
            }
            None => {
                self.seen.remove(&id);
            }
        }
        let current = self
            .records
            .get(&id)
            .and_then(|r| r.firing.as_ref())
            .map(|f| f.severity);
        let mut plan = match (current, wanted) {
            (None, None) => return Plan::default(),
            (Some(a), Some(b)) if a == b => Plan::default(),
            (Some(_), None) => {
                let why = (t.transition.reason == TransitionReason::SeriesGone).then(|| {
                    format!(
                        "the series {} disappeared: check {} has not reported it for {}",
                        labels::render(&id.labels),
                        t.check,
                        humantime::format_duration(rule.series.unwrap_or_default())
                    )
                });
                self.resolve(&id, now, why)
            }
            (_, Some(severity)) => {
                let deploy = self.deploy.clone();
                let event =
                    firing_event(rule, &id.labels, severity, t.transition.value, deploy, now);
                self.fire(&id, severity, event, now)
            }
        };
        plan.extend(self.due_hooks(now, Some(&id)));
        plan
    }

    /// Holds the pages of `rule` until `until` (a validation window's `hold`).
    pub fn hold(&mut self, rule: &str, until: Timestamp) {
        let entry = self.held.entry(rule.to_string()).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The rules `rule` depends on, transitively, whose alerts fire now (any series).
    fn blockers(&self, rule: &str) -> Vec<String> {
        let deps = &self.alerting.dependencies;
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = deps
            .get(rule)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        while let Some(parent) = todo.pop() {
            if seen.insert(parent) {
                todo.extend(deps.get(parent).into_iter().flatten().map(String::as_str));
            }
        }
        seen.into_iter()
            .filter(|parent| {
                self.records
                    .iter()
                    .any(|(id, r)| id.rule == *parent && r.firing.is_some())
            })
            .map(str::to_string)
            .collect()
    }

    /// Updates the pages of `parent`'s firing alerts to name the dependents they hold, when
    /// that list changed: the same incident (dedup key) re-sent to whoever it reached.
    fn name_dependents(&mut self, parent: &str, now: Timestamp) -> Plan {
        let mut held: Vec<String> = self
            .blocked
            .iter()
            .filter(|(_, b)| b.by.iter().any(|p| p == parent))
            .map(|(id, _)| id.to_string())
            .collect();
        held.sort();
        let base = self.rules.get(parent).and_then(|r| r.description.clone());
        let description = if held.is_empty() {
            base
        } else {
            let line = format!(
                "Also failing, held while this fires (depends_on): {}",
                held.join(", ")
            );
            Some(match base {
                Some(b) => format!("{b}\n{line}"),
                None => line,
            })
        };
        let ids: Vec<AlertId> = self
            .records
            .iter()
            .filter(|(id, r)| id.rule == parent && r.firing.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let mut plan = Plan::default();
        for id in ids {
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            let Some(firing) = record.firing.as_mut() else {
                continue;
            };
            if firing.event.description == description {
                continue;
            }
            firing.event.description = description.clone();
            firing.event.at = now.to_rfc3339();
            let event = firing.event.clone();
            let notified: Vec<String> = firing.notified.iter().cloned().collect();
            plan.records.push((id.clone(), record.clone()));
            let to = self.existing(notified, &id, &mut plan);
            if !to.is_empty() {
                plan.events.push((event, to));
            }
        }
        plan
    }

    /// Held dependents whose blockers all resolved are paged [`DEPENDENCY_GRACE`] later if
    /// they still fire (a transition to ok meanwhile drops them).
    fn release_blocked(&mut self, now: Timestamp) -> Plan {
        let mut due = Vec::new();
        let ids: Vec<AlertId> = self.blocked.keys().cloned().collect();
        for id in ids {
            let by = self.blockers(&id.rule);
            let Some(b) = self.blocked.get_mut(&id) else {
                continue;
            };
            if !by.is_empty() {
                b.by = by;
                b.clear_since = None;
                continue;
            }
            let since = *b.clear_since.get_or_insert(now);
            if now >= since + DEPENDENCY_GRACE {
                due.push(id);
            }
        }
        let mut plan = Plan::default();
        for id in due {
            if let Some(b) = self.blocked.remove(&id) {
                plan.extend(self.transition(&b.transition, now));
            }
        }
        plan
    }

    /// Policy steps that came due, and repeats, for the firing unacknowledged incidents.
    fn policy_steps(&mut self, now: Timestamp) -> Plan {
        let ids: Vec<AlertId> = self
            .records
            .iter()
            .filter(|(_, r)| {
                r.firing
                    .as_ref()
                    .is_some_and(|f| f.policy.is_some() && f.ack.is_none() && !f.muted)
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut plan = Plan::default();
        for id in ids {
            // Silenced, in maintenance or inhibited: its steps and repeats wait.
            let suppressed = self
                .records
                .get(&id)
                .and_then(|r| r.firing.as_ref())
                .is_some_and(|f| self.suppression(&id, &f.event, now).suppressed());
            if suppressed {
                continue;
            }
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            let Some(firing) = record.firing.as_mut() else {
                continue;
            };
            let Some(progress) = firing.policy.as_mut() else {
                continue;
            };
            let Some(policy) = self.alerting.policies.get(&progress.name) else {
                continue;
            };
            let mut to = due_steps(policy, progress, now);
            if let Some(every) = policy.repeat {
                if now.as_millis() >= progress.last_sent + every.as_millis() as i64 {
                    for n in &firing.notified {
                        if !to.contains(n) {
                            to.push(n.clone());
                        }
                    }
                }
            }
            if to.is_empty() {
                continue;
            }
            progress.last_sent = now.as_millis();
            firing.notified.extend(to.iter().cloned());
            let mut event = firing.event.clone();
            event.at = now.to_rfc3339();
            plan.records.push((id.clone(), record.clone()));
            let to = self.existing(to, &id, &mut plan);
            if !to.is_empty() {
                plan.events.push((event, to));
            }
        }
        plan
    }

    /// Acknowledges the firing incident named by `key` (its dedup key, or the alert as
    /// people name it: `rule` or `rule{name="value"}`): its repeats and further policy steps
    /// stop until it resolves or becomes critical. The plan persists it.
    pub fn ack(&mut self, key: &str, by: &str, now: Timestamp) -> Result<(AlertId, Plan), String> {
        let id = self
            .records
            .iter()
            .find(|(id, r)| {
                r.firing
                    .as_ref()
                    .is_some_and(|f| f.event.dedup_key == key || id.to_string() == key)
            })
            .map(|(id, _)| id.clone())
            .ok_or_else(|| format!("no firing alert {key:?} (give its dedup key or its name, e.g. api-down or queue{{name=\"a\"}})"))?;
        let record = self.records.get_mut(&id).expect("found above");
        let firing = record.firing.as_mut().expect("firing, found above");
        firing.ack = Some(Ack {
            by: by.to_string(),
            at: now.to_rfc3339(),
        });
        let plan = Plan {
            records: vec![(id.clone(), record.clone())],
            ..Plan::default()
        };
        Ok((id, plan))
    }

    /// Ends the holds of `rules` (their window's run ended): pages they held go out at the
    /// next tick if the rules still fire.
    pub fn release(&mut self, rules: &[String]) {
        for rule in rules {
            self.held.remove(rule);
        }
    }

    /// Time passes: held pages whose hold ended, re-sends and hooks that came due.
    pub fn tick(&mut self, now: Timestamp) -> Plan {
        let mut plan = Plan::default();
        self.held.retain(|_, until| now < *until);
        let released: Vec<AlertId> = self
            .deferred
            .keys()
            .filter(|id| !self.held.contains_key(&id.rule))
            .cloned()
            .collect();
        for id in released {
            if let Some(t) = self.deferred.remove(&id) {
                plan.extend(self.transition(&t, now));
            }
        }
        plan.extend(self.release_blocked(now));
        plan.extend(self.policy_steps(now));
        plan.extend(self.unmute(now));
        for (id, record) in &self.records {
            let Some(firing) = &record.firing else {
                continue;
            };
            let mut due = Vec::new();
            let route = self.alerting.route_of(&id.rule, firing.severity);
            // Under a policy, everyone its steps told is on the route.
            let on_route = |n: &String| firing.policy.is_some() || route.contains(n);
            for name in firing.notified.iter().filter(|n| on_route(n)) {
                let Some(every) = self.resend_every(name) else {
                    continue;
                };
                let key = (id.clone(), name.clone());
                if self.sent.get(&key).is_none_or(|last| now >= *last + every) {
                    due.push(name.clone());
                }
            }
            // No re-sends while a silence, maintenance window or inhibition holds the alert.
            if due.is_empty() || self.suppression(id, &firing.event, now).suppressed() {
                continue;
            }
            for name in &due {
                self.sent.insert((id.clone(), name.clone()), now);
            }
            {
                let mut event = firing.event.clone();
                event.at = now.to_rfc3339();
                plan.events.push((event, due));
            }
        }
        plan.extend(self.due_verifies(now));
        plan.extend(self.due_hooks(now, None));
        plan
    }

    /// Records how a hook of a job ended, and hands the hook (now free) to the alert that has
    /// waited for it longest: the plan persists a hook done with for the incident in the
    /// alert's record and starts the jobs that are due now.
    pub fn hook_finished(
        &mut self,
        alert: &AlertId,
        incident: u64,
        hook: &str,
        result: HookResult,
        now: Timestamp,
    ) -> Plan {
        if self
            .busy
            .get(hook)
            .is_some_and(|(a, n)| a == alert && *n == incident)
        {
            self.busy.remove(hook);
        }
        let result = self.verifying(alert, hook, result, now);
        let mut plan = self.hook_recorded(alert, incident, hook, result);
        plan.extend(self.due_hooks(now, None));
        plan
    }

    fn hook_recorded(
        &mut self,
        alert: &AlertId,
        incident: u64,
        hook: &str,
        result: HookResult,
    ) -> Plan {
        let key = (alert.clone(), hook.to_string());
        if let Some((n, progress)) = self.hooks.get_mut(&key) {
            if *n == incident {
                match &result {
                    HookResult::Done(_) => *progress = Progress::Done,
                    HookResult::RetryAt(t) => *progress = Progress::RetryAt(*t),
                    HookResult::Cancelled => {
                        self.hooks.remove(&key);
                    }
                }
            }
        }
        let Some(record) = self.records.get_mut(alert) else {
            return Plan::default();
        };
        let HookResult::Done(note) = result else {
            return Plan::default();
        };
        let changed = match &mut record.firing {
            Some(f) if record.incident == incident => {
                let done = f.hooks_done.insert(hook.to_string());
                let noted = match note {
                    Some(note) => f.hook_notes.insert(hook.to_string(), note.clone()) != Some(note),
                    None => false,
                };
                done || noted
            }
            _ => false,
        };
        if !changed {
            return Plan::default();
        }
        Plan {
            records: vec![(alert.clone(), record.clone())],
            ..Plan::default()
        }
    }

    /// A hook job asks before each hook: the hook as configured now, if the alert's rule
    /// still lists it, the alert still fires in `incident` at the hook's level as last seen,
    /// and it is not done with for the incident. `None`: do not run it.
    pub fn permit(&self, alert: &AlertId, incident: u64, hook: &str) -> Option<HookSpec> {
        let trigger = self
            .alerting
            .hooks_of(&alert.rule)
            .iter()
            .find(|t| t.hook == hook)?;
        let done = self
            .records
            .get(alert)
            .and_then(|r| r.firing.as_ref())
            .is_some_and(|f| f.hooks_done.contains(hook));
        if done || !self.still_firing(alert, incident, trigger.on) || !self.confirmed(trigger) {
            return None;
        }
        self.alerting.hook(hook).cloned()
    }

    /// Whether `alert` fires in `incident` at `on` or worse right now, as last seen.
    pub fn still_firing(&self, alert: &AlertId, incident: u64, on: Severity) -> bool {
        let firing = self
            .records
            .get(alert)
            .filter(|r| r.incident == incident)
            .and_then(|r| r.firing.as_ref());
        let seen = self.seen.get(alert).map(|(s, _)| *s);
        match (firing, seen) {
            (Some(f), Some(seen)) => at_least(f.severity, on) && at_least(seen, on),
            _ => false,
        }
    }

    /// Where the outcome of `hook`, run for `alert`, is notified.
    pub fn hook_notifiers(&self, alert: &AlertId, hook: &str) -> Vec<String> {
        if let Some(list) = self.alerting.hook(hook).and_then(|h| h.notify.clone()) {
            return list;
        }
        let told: Vec<String> = match self.records.get(alert).and_then(|r| r.firing.as_ref()) {
            Some(f) => f.notified.iter().cloned().collect(),
            None => self
                .alerting
                .route_of(&alert.rule, Severity::Critical)
                .to_vec(),
        };
        told.into_iter()
            .filter(|n| {
                self.alerting
                    .notifier(n)
                    .is_some_and(|c| !c.kind.opens_alerts())
            })
            .collect()
    }

    /// An incident of `alert` at `severity` that nobody is told of, and where its route is set.
    fn unrouted(
        alerting: &AlertingConfig,
        alert: &AlertId,
        severity: Severity,
        dedup_key: &str,
    ) -> Unrouted {
        let own = alerting
            .rules
            .get(&alert.rule)
            .is_some_and(|r| r.route.is_some());
        Unrouted {
            alert: alert.clone(),
            severity,
            dedup_key: dedup_key.to_string(),
            route: if own {
                RouteSource::Rule
            } else {
                RouteSource::Alerting
            },
        }
    }

    fn resend_every(&self, notifier: &str) -> Option<Duration> {
        self.alerting.notifier(notifier)?.kind.resend_every()
    }

    /// Only notifiers that exist: a resolve for a notifier removed from the config would
    /// wait in the outbox forever. The others go to `plan.gone`.
    fn existing(
        &self,
        names: impl IntoIterator<Item = String>,
        alert: &AlertId,
        plan: &mut Plan,
    ) -> Vec<String> {
        let (known, gone): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|n| self.alerting.notifier(n).is_some());
        plan.gone
            .extend(gone.into_iter().map(|n| (alert.clone(), n)));
        known
    }

    /// A validation window run ended with a verdict. Failed: its alert (`window/<name>`
    /// with the deploy as label) fires at the window's severity to the window's route, and
    /// its hooks (the rollback) run once for the incident like any alert's. Passed: the
    /// failures of earlier runs of the window resolve, and the success message goes out.
    /// Inconclusive: no page, no rollback (the run's timeline and `warden gate` say so).
    pub fn window_ended(&mut self, run: &Run, now: Timestamp) -> Plan {
        let rule = crate::config::window::alert_rule(&run.window);
        let Some(config) = self.windows.get(&rule).cloned() else {
            return Plan::default();
        };
        let id = AlertId::new(rule.clone(), run.alert_labels());
        let mut event = window_event(run, config.severity, now);
        match run.state {
            RunState::Failed => {
                event.description = Some(format!(
                    "validation window {} ({}) failed for deploy {}: {}",
                    run.id,
                    run.window,
                    run.deploy,
                    run.reason.as_deref().unwrap_or("failed")
                ));
                event
                    .labels
                    .insert("severity".into(), config.severity.as_str().into());
                self.seen.insert(id.clone(), (config.severity, now));
                let mut plan = self.fire(&id, config.severity, event, now);
                plan.extend(self.due_hooks(now, Some(&id)));
                plan
            }
            RunState::Passed => {
                let open: Vec<AlertId> = self
                    .records
                    .iter()
                    .filter(|(a, r)| a.rule == rule && r.firing.is_some())
                    .map(|(a, _)| a.clone())
                    .collect();
                let mut plan = Plan::default();
                for a in open {
                    self.seen.remove(&a);
                    let why = format!(
                        "validation window {} ({}) passed for deploy {}",
                        run.id, run.window, run.deploy
                    );
                    plan.extend(self.resolve(&a, now, Some(why)));
                }
                if let Some(success) = &config.on_success {
                    event.kind = EventKind::Notice;
                    event.severity = Severity::Warning;
                    event.labels.insert("verdict".into(), "passed".into());
                    event.description = Some(crate::config::window::fill(
                        &success.message,
                        &run.vars(),
                        false,
                    ));
                    event.dedup_key = format!(
                        "warden/{}/{rule}/{}/passed-{}",
                        self.identity.instance, self.identity.epoch, run.id
                    );
                    let to = self.existing(success.notify.clone(), &id, &mut plan);
                    if !to.is_empty() {
                        plan.events.push((event, to));
                    }
                }
                plan
            }
            // No verdict for want of data: no page, no rollback; the people who would have
            // heard the success message hear that it will not come, and why.
            RunState::Inconclusive => {
                let mut plan = Plan::default();
                let Some(success) = &config.on_success else {
                    return plan;
                };
                event.kind = EventKind::Notice;
                event.severity = Severity::Warning;
                event.labels.insert("verdict".into(), "inconclusive".into());
                event.description = Some(format!(
                    "validation window {} ({}) for deploy {} is inconclusive: {}",
                    run.id,
                    run.window,
                    run.deploy,
                    run.reason.as_deref().unwrap_or("no data")
                ));
                event.dedup_key = format!(
                    "warden/{}/{rule}/{}/inconclusive-{}",
                    self.identity.instance, self.identity.epoch, run.id
                );
                let to = self.existing(success.notify.clone(), &id, &mut plan);
                if !to.is_empty() {
                    plan.events.push((event, to));
                }
                plan
            }
            _ => Plan::default(),
        }
    }

    /// The `[[hook]]` named `name`, as configured now.
    pub fn hook_spec(&self, name: &str) -> Option<HookSpec> {
        self.alerting.hook(name).cloned()
    }

    /// The event a canary step's weight hook runs for (`WARDEN_WEIGHT`, `WARDEN_WINDOW`, ...).
    pub fn step_event(&self, run: &Run, step: usize, weight: u32, now: Timestamp) -> Event {
        let mut event = window_event(run, Severity::Warning, now);
        event.kind = EventKind::Notice;
        event.labels.insert("weight".into(), weight.to_string());
        event.description = Some(format!(
            "validation window {} ({}) for deploy {}: step {} sets the weight to {weight}",
            run.id,
            run.window,
            run.deploy,
            step + 1
        ));
        event.dedup_key = format!(
            "warden/{}/{}/{}/step-{}-{}",
            self.identity.instance,
            event.alert,
            self.identity.epoch,
            run.id,
            step + 1
        );
        event
    }

    /// The event an `on_success` hook runs for (`WARDEN_WINDOW`, `WARDEN_VERSION`, ...).
    pub fn success_event(&self, run: &Run, now: Timestamp) -> Event {
        let mut event = window_event(run, Severity::Warning, now);
        event.kind = EventKind::Notice;
        event.labels.insert("verdict".into(), "passed".into());
        event.description = Some(format!(
            "validation window {} ({}) passed for deploy {}",
            run.id, run.window, run.deploy
        ));
        event.dedup_key = format!(
            "warden/{}/{}/{}/passed-{}",
            self.identity.instance, event.alert, self.identity.epoch, run.id
        );
        event
    }

    /// What a failed run's alert did: its dedup key, how each of the window's hooks went
    /// for it, and whether one is still to run or running (`pending`): `warden gate` exits
    /// only once nothing is.
    pub fn window_actions(&self, run: &Run) -> Option<serde_json::Value> {
        if run.state != RunState::Failed {
            return None;
        }
        let rule = crate::config::window::alert_rule(&run.window);
        let id = AlertId::new(rule.clone(), run.alert_labels());
        let record = self.records.get(&id)?;
        let firing = record.firing.as_ref();
        let hooks = self.alerting.hooks_of(&rule);
        let pending = firing.is_some_and(|f| hooks.iter().any(|h| !f.hooks_done.contains(&h.hook)));
        Some(serde_json::json!({
            "alert": id.to_string(),
            "dedup_key": firing.map(|f| f.event.dedup_key.clone()),
            "firing": firing.is_some(),
            "notified": firing.map(|f| f.notified.iter().cloned().collect::<Vec<_>>()).unwrap_or_default(),
            "hooks": firing.map(|f| serde_json::to_value(&f.hook_notes).unwrap_or_default()),
            "pending": pending,
        }))
    }

    fn fire(
        &mut self,
        alert: &AlertId,
        severity: Severity,
        mut event: Event,
        now: Timestamp,
    ) -> Plan {
        // With an on-call policy, the steps due now (no delay, within their hours) are the
        // route; later ones are `tick`'s.
        let labels = silences::match_labels(alert, &event);
        // The acknowledgement link, computed before the record is borrowed: the key is the
        // incident's (known below), the rest is fixed now.
        let link = |s: &Self, key: &str| s.ack_link(key, now);
        let next_key = alert.dedup_key(
            &self.identity,
            self.records.get(alert).map_or(0, |r| r.incident) + 1,
        );
        let current_key = self
            .records
            .get(alert)
            .and_then(|r| r.firing.as_ref())
            .map(|f| f.event.dedup_key.clone());
        let ack_url = link(self, current_key.as_deref().unwrap_or(&next_key));
        let policy = self
            .alerting
            .policy_of(&alert.rule, severity, &labels)
            .cloned();
        let (route, progress) = match &policy {
            None => (self.alerting.route_of(&alert.rule, severity).to_vec(), None),
            Some(p) => {
                let mut progress = PolicyProgress {
                    name: p.name.clone(),
                    since: now.as_millis(),
                    sent: BTreeSet::new(),
                    last_sent: now.as_millis(),
                };
                let route = due_steps(p, &mut progress, now);
                (route, Some(progress))
            }
        };
        // A silence, maintenance window or inhibition keeps the page back (`silences`).
        self.book.now = self.book.now.max(now);
        let muted = !route.is_empty() && self.suppression(alert, &event, now).suppressed();
        let paged = if muted { Vec::new() } else { route.clone() };
        let record = self.records.entry(alert.clone()).or_insert(AlertRecord {
            incident: 0,
            firing: None,
        });
        let mut dropped = Vec::new();
        let mut unrouted = None;
        let firing = match record.firing.take() {
            Some(mut f) => {
                // Receivers that hold alerts by re-sends (Alertmanager) and are not on the new
                // severity's route get the old severity resolved, not a stale alert.
                let mut resolved = f.event.clone();
                resolved.kind = EventKind::Resolved;
                resolved.at = now.to_rfc3339();
                let to: Vec<String> = f
                    .notified
                    .iter()
                    .filter(|n| !route.contains(n))
                    .filter(|n| {
                        self.alerting
                            .notifier(n)
                            .is_some_and(|c| c.kind.resend_every().is_some())
                    })
                    .cloned()
                    .collect();
                if !to.is_empty() {
                    dropped.push((resolved, to));
                }
                event.since = f.event.since.clone();
                event.dedup_key = f.event.dedup_key.clone();
                event.ack_url = ack_url.clone();
                event.deploy = f.event.deploy.clone();
                // Escalated to critical with nobody on the critical route: the warning reached
                // someone, the critical does not.
                if severity == Severity::Critical
                    && f.severity != severity
                    && route.is_empty()
                    && policy.is_none()
                {
                    unrouted = Some(Self::unrouted(
                        &self.alerting,
                        alert,
                        severity,
                        &event.dedup_key,
                    ));
                }
                f.critical_since = match severity {
                    Severity::Critical => Some(now.as_millis()),
                    Severity::Warning => None,
                };
                // Worse is news: an acknowledgement does not cover a critical.
                if severity == Severity::Critical && f.severity != severity {
                    f.ack = None;
                }
                f.severity = severity;
                f.notified.extend(paged.iter().cloned());
                f.muted = muted;
                f.event = event;
                f.policy = progress;
                f
            }
            None => {
                record.incident += 1;
                event.since = now.to_rfc3339();
                event.dedup_key = alert.dedup_key(&self.identity, record.incident);
                event.ack_url = ack_url.clone();
                if route.is_empty() && policy.is_none() {
                    unrouted = Some(Self::unrouted(
                        &self.alerting,
                        alert,
                        severity,
                        &event.dedup_key,
                    ));
                }
                Firing {
                    severity,
                    since: now.as_millis(),
                    critical_since: (severity == Severity::Critical).then_some(now.as_millis()),
                    notified: paged.iter().cloned().collect(),
                    event,
                    hooks_done: BTreeSet::new(),
                    hook_notes: BTreeMap::new(),
                    policy: progress,
                    ack: None,
                    muted,
                }
            }
        };
        let event = firing.event.clone();
        record.firing = Some(firing);
        let record = record.clone();
        for name in &paged {
            self.sent.insert((alert.clone(), name.clone()), now);
        }
        let mut plan = Plan {
            records: vec![(alert.clone(), record)],
            events: dropped,
            unrouted: unrouted.into_iter().collect(),
            ..Plan::default()
        };
        let to = self.existing(paged, alert, &mut plan);
        if !to.is_empty() {
            plan.events.push((event, to));
        }
        plan
    }

    fn resolve(&mut self, alert: &AlertId, now: Timestamp, why: Option<String>) -> Plan {
        let Some(record) = self.records.get_mut(alert) else {
            return Plan::default();
        };
        let Some(firing) = record.firing.take() else {
            return Plan::default();
        };
        let record = record.clone();
        let mut event = firing.event;
        event.kind = EventKind::Resolved;
        event.at = now.to_rfc3339();
        if let Some(why) = why {
            event.description = Some(why);
        }
        self.sent.retain(|(a, _), _| a != alert);
        let mut plan = Plan {
            records: vec![(alert.clone(), record)],
            ..Plan::default()
        };
        // Every notifier the page reached hears the resolve, one a reload removed included.
        let retired = &self.retired;
        let (to, gone): (Vec<String>, Vec<String>) = firing
            .notified
            .into_iter()
            .partition(|n| self.alerting.notifier(n).is_some() || retired.contains(n));
        plan.gone
            .extend(gone.into_iter().map(|n| (alert.clone(), n)));
        if !to.is_empty() {
            plan.events.push((event, to));
        }
        plan
    }

    /// Hooks of firing alerts whose time has come (of `only` when given).
    ///
    /// First, per alert, the hooks due and not held back by their own progress (running, done,
    /// waiting for a retry). Then the alerts take them oldest due first: a hook held by another
    /// job waits (see `busy`), and a due diagnostic that waits, runs or waits for its retry
    /// holds back the alert's other hooks. Each job is the alert's hooks taken now,
    /// diagnostics first.
    fn due_hooks(&mut self, now: Timestamp, only: Option<&AlertId>) -> Plan {
        struct Wanted {
            alert: AlertId,
            incident: u64,
            trigger: Event,
            /// When the earliest of `hooks` came due: the order in which alerts take hooks.
            due: Timestamp,
            /// Due and ready as far as this alert goes, in the rule's order.
            hooks: Vec<HookSpec>,
            /// A due diagnostic is running or waits for its retry.
            held: bool,
        }
        let mut wanted: Vec<Wanted> = Vec::new();
        let firing = self.records.iter().filter_map(|(id, record)| {
            let actions = self.alerting.rules.get(&id.rule)?;
            let wanted = only.is_none_or(|o| o == id) && !actions.hooks.is_empty();
            Some((id, record, record.firing.as_ref()?, actions))
                .filter(|_| wanted)
                // A maintenance window holds hooks too (`silences`).
                .filter(|(id, _, f, _)| !self.hooks_held(id, &f.event, now))
        });
        for (id, record, firing, actions) in firing {
            let incident = record.incident;
            let progress = |hooks: &HashMap<(AlertId, String), (u64, Progress)>, hook: &str| {
                hooks
                    .get(&(id.clone(), hook.to_string()))
                    .filter(|(n, _)| *n == incident)
                    .map(|(_, p)| *p)
            };
            let Some((seen_level, seen_since)) = self.seen.get(id).copied() else {
                continue;
            };
            let mut w = Wanted {
                alert: id.clone(),
                incident,
                trigger: firing.event.clone(),
                due: now,
                hooks: Vec::new(),
                held: false,
            };
            for trigger in &actions.hooks {
                let Some(spec) = self.alerting.hook(&trigger.hook) else {
                    continue;
                };
                if firing.hooks_done.contains(&trigger.hook) || !at_least(seen_level, trigger.on) {
                    continue;
                }
                // The alert has been at the hook's level, as this process saw it, since...
                let level_since = match trigger.on {
                    Severity::Critical => firing.critical_since,
                    Severity::Warning => Some(firing.since),
                };
                let Some(level_since) = level_since else {
                    continue;
                };
                let due = Timestamp::from_millis(level_since).max(seen_since) + trigger.after;
                // Unconfirmed, it waits; it is due at once when the confirmation comes.
                if now < due || !self.confirmed(trigger) {
                    continue;
                }
                let ready = match progress(&self.hooks, &trigger.hook) {
                    None => true,
                    Some(Progress::RetryAt(t)) => now >= t,
                    Some(Progress::Running | Progress::Done) => false,
                };
                if spec.diagnostic && progress(&self.hooks, &trigger.hook) != Some(Progress::Done) {
                    w.held |= !ready;
                }
                if ready {
                    w.due = w.due.min(due);
                    w.hooks.push(spec.clone());
                }
            }
            if !w.hooks.is_empty() {
                wanted.push(w);
            }
        }
        wanted.sort_by(|a, b| (a.due, &a.alert).cmp(&(b.due, &b.alert)));
        let mut plan = Plan::default();
        for w in wanted {
            let free = |spec: &HookSpec| !self.busy.contains_key(&spec.config.name);
            // A diagnostic that waits for its hook holds back the rest; one that is free goes
            // first in this job, which stops before the others if it cannot run.
            let held = w.held || w.hooks.iter().any(|s| s.diagnostic && !free(s));
            let mut take: Vec<HookSpec> = w
                .hooks
                .into_iter()
                .filter(|s| free(s) && (s.diagnostic || !held))
                .collect();
            if take.is_empty() {
                continue;
            }
            // Diagnostics first, each group in the rule's order.
            take.sort_by_key(|spec| !spec.diagnostic);
            let mut trigger = w.trigger;
            trigger.at = now.to_rfc3339();
            let mut job = HookJob {
                alert: w.alert,
                incident: w.incident,
                trigger,
                hooks: Vec::new(),
            };
            for spec in take {
                let name = spec.config.name.clone();
                self.hooks.insert(
                    (job.alert.clone(), name.clone()),
                    (job.incident, Progress::Running),
                );
                self.busy.insert(name, (job.alert.clone(), job.incident));
                job.hooks.push((spec, Vec::new()));
            }
            plan.hooks.push(job);
        }
        for job in &mut plan.hooks {
            for (spec, to) in &mut job.hooks {
                *to = self.hook_notifiers(&job.alert, &spec.config.name);
            }
        }
        plan
    }
}

/// The alert's hooks in the order they ended: `[{"hook", "outcome", "reason"?, "at"}]`.
/// The notifiers of `policy`'s steps due at `now` and not sent yet (marked sent in
/// `progress`): their `after` passed since the alert reached its severity, and `now` is within
/// their hours.
fn due_steps(
    policy: &crate::config::policy::Policy,
    progress: &mut PolicyProgress,
    now: Timestamp,
) -> Vec<String> {
    let mut to: Vec<String> = Vec::new();
    for (i, step) in policy.steps.iter().enumerate() {
        if progress.sent.contains(&i) {
            continue;
        }
        let due = now.as_millis() >= progress.since + step.after.as_millis() as i64;
        if due && step.hours.as_ref().is_none_or(|h| h.contains(now)) {
            progress.sent.insert(i);
            for n in &step.notify {
                if !to.contains(n) {
                    to.push(n.clone());
                }
            }
        }
    }
    to
}

/// An event about a window run: alert `window/<name>{deploy="..."}`, the run's facts as
/// labels (`window`, `service`, `deploy`, `version`, the start's labels), kind `Firing` (the
/// caller changes what differs).
fn window_event(run: &Run, severity: Severity, now: Timestamp) -> Event {
    let rule = crate::config::window::alert_rule(&run.window);
    let mut labels = BTreeMap::new();
    labels.insert("window".to_string(), run.window.clone());
    labels.insert("service".to_string(), run.service.clone());
    labels.insert("deploy".to_string(), run.deploy.clone());
    if let Some(v) = &run.version {
        labels.insert("version".to_string(), v.clone());
    }
    for (k, v) in &run.labels {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Event {
        kind: EventKind::Firing,
        alert: rule,
        series: run.alert_labels(),
        check: run.service.clone(),
        severity,
        value: None,
        value_name: None,
        threshold: None,
        condition: None,
        description: None,
        labels,
        since: now.to_rfc3339(),
        at: now.to_rfc3339(),
        deploy: Some(run.deploy.clone()),
        dedup_key: String::new(),
        hook: None,
        ack_url: None,
        group: None,
    }
}

fn hook_list(f: &Firing) -> Vec<serde_json::Value> {
    let mut notes: Vec<(&String, &HookNote)> = f.hook_notes.iter().collect();
    notes.sort_by(|a, b| (&a.1.at, a.0).cmp(&(&b.1.at, b.0)));
    notes
        .into_iter()
        .map(|(hook, note)| {
            let mut v = serde_json::json!({ "hook": hook, "outcome": note.outcome, "at": note.at });
            if let Some(reason) = &note.reason {
                v["reason"] = serde_json::json!(reason);
            }
            if let Some(verify) = &note.verify {
                v["verify"] = serde_json::json!({
                    "outcome": verify.outcome.as_str(),
                    "until": Timestamp::from_millis(verify.until).to_rfc3339(),
                });
            }
            v
        })
        .collect()
}

/// Whether `level` is `on` or worse.
fn at_least(level: Severity, on: Severity) -> bool {
    on == Severity::Warning || level == Severity::Critical
}

/// The firing event of `rule`'s series `series` at `severity` in `deploy`; the caller sets
/// `since` and `dedup_key` (and, for an incident already open, its deploy). Its labels are the
/// series', then the rule's (which win, as in Prometheus), then `check` and `severity`.
fn firing_event(
    rule: &RuleConfig,
    series: &Labels,
    severity: Severity,
    value: Option<f64>,
    deploy: Option<String>,
    now: Timestamp,
) -> Event {
    let level = match severity {
        Severity::Warning => rule.warning.as_ref(),
        Severity::Critical => rule.critical.as_ref(),
    };
    let mut labels = series.clone();
    labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels.insert("check".into(), rule.check.clone());
    labels.insert("severity".into(), severity.as_str().into());
    Event {
        kind: EventKind::Firing,
        alert: rule.name.clone(),
        series: series.clone(),
        check: rule.check.clone(),
        severity,
        value,
        value_name: Some(rule.value.clone()),
        threshold: level.map(|l| l.when.threshold),
        condition: level.map(|l| format!("{} {}", l.when.op.symbol(), l.when.threshold)),
        description: rule.description.clone(),
        labels,
        since: String::new(),
        at: now.to_rfc3339(),
        deploy,
        dedup_key: String::new(),
        hook: None,
        ack_url: None,
        group: None,
    }
}

#[cfg(test)]
mod tests;
