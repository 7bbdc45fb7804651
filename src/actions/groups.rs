//! Notification groups (`[[policy]] group_by`, `group_wait`, `group_interval`): alerts of a
//! policy with the same values of its `group_by` labels reach each notifier as one
//! notification, so a database outage that fires twenty rules is one page, not twenty.
//!
//! The stage plans pages per alert as always; [`Alerts::grouped`], which the driver applies
//! to every plan before it commits it, moves the firing and resolved events of grouped alerts
//! into their groups (one per policy, notifier and label values), and [`Alerts::tick`] sends
//! a group's notification when it is due:
//!
//! - the first one `group_wait` after the group opened (others that fire meanwhile join it);
//! - after that, when something changed (an alert joined, resolved, got worse, a repeat came
//!   due), at most once per `group_interval`;
//! - `firing` while any of its alerts fires, listing them (most severe first) and those
//!   resolved since the previous notification; `resolved` once none fires. Its dedup key is
//!   the group's, stable from the group's first notification to its resolve, so a receiver
//!   that deduplicates (PagerDuty) holds one incident per group.
//!
//! Every page gets its resolve: an alert's resolve goes to the group that told of it, and a
//! group that told of firing alerts sends its own resolve when the last one resolves. A group
//! whose alerts all resolved before its first notification tells nobody (nothing was paged).
//! An alert whose policy no longer groups (a reload, a change of severity) leaves its group
//! (the group tells that at its next notification) and is paged on its own.
//!
//! Groups are persisted (state table `notification_groups`) in the transaction of the plan
//! that changed them, so a restart neither loses a page waiting in a group nor forgets a
//! resolve owed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Alerts, Plan};
use crate::alert::{AlertId, Event, EventKind, Group, Severity};
use crate::clock::Timestamp;
use crate::config::policy::Grouping;
use crate::labels::{self, Labels};

/// A group of alerts for one notifier. Persisted as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    pub policy: String,
    pub notifier: String,
    /// The `group_by` labels' values.
    pub labels: Labels,
    /// ms since the epoch: when this incident of the group opened (its dedup key names it).
    pub opened: i64,
    /// The latest event of each alert in the group, by the alert's dedup key: `firing`, or
    /// `resolved` until the next notification tells it.
    pub members: BTreeMap<String, Event>,
    /// Something changed since the last notification: one is owed.
    pub dirty: bool,
    /// ms since the epoch: when the last notification went out (`None`: not yet).
    pub last_sent: Option<i64>,
    /// A firing notification went out and its resolve did not yet.
    pub told: bool,
    /// The group's dedup key, fixed when it opened.
    pub dedup_key: String,
}

/// The key of a group: policy, notifier and label values.
fn group_key(policy: &str, notifier: &str, labels: &Labels) -> String {
    format!("{policy}/{notifier}{}", labels::render(labels))
}

impl Alerts {
    /// Takes the groups a previous process left (from the state file).
    pub fn set_groups(&mut self, groups: Vec<(String, GroupState)>) {
        self.groups = groups.into_iter().collect();
    }

    /// The notification groups, for `GET /api/v1/alerts`.
    pub fn groups_view(&self) -> Vec<serde_json::Value> {
        self.groups
            .values()
            .map(|g| {
                serde_json::json!({
                    "policy": g.policy,
                    "notifier": g.notifier,
                    "labels": g.labels,
                    "dedup_key": g.dedup_key,
                    "alerts": g.members.values().map(|e| serde_json::json!({
                        "alert": e.title(),
                        "status": if e.kind == EventKind::Firing { "firing" } else { "resolved" },
                        "severity": e.severity.as_str(),
                    })).collect::<Vec<_>>(),
                    "told": g.told,
                    "pending": g.dirty,
                })
            })
            .collect()
    }

    /// The grouping of the policy an alert fires under, if that policy groups.
    fn grouping_of(&self, alert: &AlertId) -> Option<(&str, &Grouping)> {
        let firing = self.records.get(alert)?.firing.as_ref()?;
        let name = &firing.policy.as_ref()?.name;
        let policy = self.alerting.policies.get(name)?;
        Some((name.as_str(), policy.grouping.as_ref()?))
    }

    /// Moves the plan's events of grouped alerts into their groups, and sends the groups'
    /// notifications that are due now. The driver applies this to every plan it commits.
    pub fn grouped(&mut self, mut plan: Plan, now: Timestamp) -> Plan {
        let events = std::mem::take(&mut plan.events);
        for (event, to) in events {
            if event.group.is_some()
                || !matches!(event.kind, EventKind::Firing | EventKind::Resolved)
            {
                plan.events.push((event, to));
                continue;
            }
            let mut direct = Vec::new();
            for notifier in to {
                if !self.join(&event, &notifier, now) {
                    direct.push(notifier);
                }
            }
            if !direct.is_empty() {
                plan.events.push((event, direct));
            }
        }
        // An event that joined a group made it exist; a group that empties is removed only here.
        if !self.groups.is_empty() {
            plan.extend(self.flush_groups(now));
        }
        plan
    }

    /// Puts `event` into its group for `notifier`; `false`: it goes on its own.
    fn join(&mut self, event: &Event, notifier: &str, now: Timestamp) -> bool {
        let member = event.dedup_key.clone();
        let holding: Option<String> = self
            .groups
            .iter()
            .find(|(_, g)| g.notifier == notifier && g.members.contains_key(&member))
            .map(|(k, _)| k.clone());
        if event.kind == EventKind::Resolved {
            // Resolved where it was told; an alert never grouped is resolved on its own.
            let Some(key) = holding else {
                return false;
            };
            let g = self.groups.get_mut(&key).expect("found above");
            g.members.insert(member, event.clone());
            g.dirty = true;
            self.dirty_groups.insert(key);
            return true;
        }
        let id = event.id();
        let target = self.grouping_of(&id).map(|(policy, grouping)| {
            let have = super::silences::match_labels(&id, event);
            let values: Labels = grouping
                .by
                .iter()
                .filter_map(|l| Some((l.clone(), have.get(l)?.clone())))
                .collect();
            (policy.to_string(), values)
        });
        let target_key = target
            .as_ref()
            .map(|(policy, values)| group_key(policy, notifier, values));
        // Left its group (another policy or label values now): that group tells so next time.
        if let Some(key) = holding.filter(|k| Some(k) != target_key.as_ref()) {
            if let Some(g) = self.groups.get_mut(&key) {
                g.members.remove(&member);
                g.dirty = true;
                self.dirty_groups.insert(key);
            }
        }
        let (Some((policy, values)), Some(key)) = (target, target_key) else {
            return false;
        };
        let identity = &self.identity;
        let g = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| GroupState {
                dedup_key: format!(
                    "warden/{}/group/{policy}/{}/{}-{}",
                    identity.instance,
                    labels::fingerprint(&values),
                    identity.epoch,
                    now.as_millis()
                ),
                policy,
                notifier: notifier.to_string(),
                labels: values,
                opened: now.as_millis(),
                members: BTreeMap::new(),
                dirty: false,
                last_sent: None,
                told: false,
            });
        g.members.insert(member, event.clone());
        g.dirty = true;
        self.dirty_groups.insert(key);
        true
    }

    /// Sends every group notification that is due, and persists the groups that changed.
    pub(super) fn flush_groups(&mut self, now: Timestamp) -> Plan {
        let mut plan = Plan::default();
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        for key in keys {
            let g = &self.groups[&key];
            if !g.dirty {
                continue;
            }
            // A policy removed or no longer grouping: what the group holds goes out now.
            let (wait, interval) = self
                .alerting
                .policies
                .get(&g.policy)
                .and_then(|p| p.grouping.as_ref())
                .map_or((0, 0), |gr| {
                    (gr.wait.as_millis() as i64, gr.interval.as_millis() as i64)
                });
            let due = match g.last_sent {
                None => now.as_millis() >= g.opened + wait,
                Some(last) => now.as_millis() >= last + interval,
            };
            if !due {
                continue;
            }
            let g = self.groups.get_mut(&key).expect("listed above");
            let firing = g.members.values().any(|e| e.kind == EventKind::Firing);
            if firing || g.told {
                let event = group_event(g, now);
                let notifier = g.notifier.clone();
                if self.alerting.notifier(&notifier).is_some() || self.retired.contains(&notifier) {
                    plan.events.push((event, vec![notifier]));
                } else {
                    plan.gone.push((
                        AlertId::new(format!("group/{}", g.policy), g.labels.clone()),
                        notifier,
                    ));
                }
                g.last_sent = Some(now.as_millis());
                g.told = firing;
            }
            g.members.retain(|_, e| e.kind == EventKind::Firing);
            g.dirty = false;
            self.dirty_groups.insert(key.clone());
            if g.members.is_empty() {
                self.groups.remove(&key);
            }
        }
        for key in std::mem::take(&mut self.dirty_groups) {
            let saved = self
                .groups
                .get(&key)
                .map(|g| serde_json::to_string(g).expect("a group encodes as JSON"));
            plan.groups.push((key, saved));
        }
        plan
    }
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Warning => 0,
        Severity::Critical => 1,
    }
}

/// A group's notification: one event listing its alerts (see [`Group`]).
fn group_event(g: &GroupState, now: Timestamp) -> Event {
    let mut firing: Vec<&Event> = g
        .members
        .values()
        .filter(|e| e.kind == EventKind::Firing)
        .collect();
    firing.sort_by(|a, b| {
        rank(b.severity)
            .cmp(&rank(a.severity))
            .then_with(|| a.title().cmp(&b.title()))
    });
    let resolved: Vec<&Event> = g
        .members
        .values()
        .filter(|e| e.kind == EventKind::Resolved)
        .collect();
    let severity = firing
        .iter()
        .chain(resolved.iter())
        .map(|e| e.severity)
        .max_by_key(|s| rank(*s))
        .unwrap_or(Severity::Warning);
    let kind = if firing.is_empty() {
        EventKind::Resolved
    } else {
        EventKind::Firing
    };
    let line = |e: &Event| {
        let word = match e.kind {
            EventKind::Resolved => "RESOLVED",
            _ if e.severity == Severity::Critical => "CRITICAL",
            _ => "WARNING",
        };
        let mut line = format!("{word} {}", e.title());
        if let Some(v) = e.value {
            let name = e.value_name.as_deref().unwrap_or("value");
            line.push_str(&format!(": {name} {v}"));
            if let (Some(c), EventKind::Firing) = (&e.condition, e.kind) {
                line.push_str(&format!(" {c}"));
            }
        }
        if let Some(url) = &e.ack_url {
            line.push_str(&format!(" (acknowledge: {url})"));
        }
        line
    };
    let mut description = match (firing.len(), resolved.len()) {
        (0, _) => "every alert of the group resolved".to_string(),
        (f, 0) => format!("{f} firing"),
        (f, r) => format!("{f} firing, {r} resolved"),
    };
    for e in firing.iter().chain(resolved.iter()) {
        description.push('\n');
        description.push_str(&line(e));
    }
    let mut labels = g.labels.clone();
    labels.insert("policy".into(), g.policy.clone());
    labels.insert("severity".into(), severity.as_str().into());
    let checks: std::collections::BTreeSet<&str> =
        g.members.values().map(|e| e.check.as_str()).collect();
    let since = firing
        .iter()
        .map(|e| e.since.as_str())
        .min()
        .map(str::to_string)
        .unwrap_or_else(|| Timestamp(g.opened).to_rfc3339());
    Event {
        kind,
        alert: g.policy.clone(),
        series: g.labels.clone(),
        check: checks.into_iter().collect::<Vec<_>>().join(","),
        severity,
        value: None,
        value_name: None,
        threshold: None,
        condition: None,
        description: Some(description),
        labels,
        since,
        at: now.to_rfc3339(),
        deploy: g.members.values().find_map(|e| e.deploy.clone()),
        dedup_key: g.dedup_key.clone(),
        hook: None,
        ack_url: None,
        group: Some(Group {
            policy: g.policy.clone(),
            labels: g.labels.clone(),
            alerts: firing.into_iter().chain(resolved).cloned().collect(),
        }),
    }
}

#[cfg(test)]
#[path = "tests_groups.rs"]
mod tests;
