//! Guarded hooks, the part of [`Alerts`] that makes a rollback ask for a second opinion
//! before it runs and check afterwards that it helped. Pure, like the rest of the stage: no
//! I/O, no clock (`now` is passed), no logging.
//!
//! - **Confirmation** (`confirm = ["api-health"]` on a rule's hook): the hook runs only while
//!   every confirming rule has an alert at the hook's `on` level or worse, as this process
//!   saw it (the `seen` levels: a record loaded at start-up, or an `unknown`/`flapping`
//!   stretch, confirms nothing). Unconfirmed, the hook waits; its `after` still counts from
//!   when its own alert reached the level, so it runs at the first tick after the
//!   confirmation comes if that time has passed. The job asks again before the hook runs
//!   ([`Alerts::permit`]): a confirmation gone meanwhile cancels the run until it holds again.
//! - **Verification** (`verify = "10m"`): a run that succeeded (exit 0; not a dry run, a
//!   failure or a skip) leaves a [`Verification`] in the hook's note, persisted with the
//!   record: the alert must resolve by then. If it still fires at that time, as this process
//!   sees it, its notifiers (every one the incident reached, and the hook's own `notify`) are
//!   paged that the hook did not help ([`crate::hook::not_helped_event`], under the incident's
//!   dedup key), once; the note says `not_helped`. Nothing runs again: the hook stays done
//!   with for the incident. A deadline that passes while the alert is not seen (a restart,
//!   `unknown`) is judged when the alert is seen at a level again, or dropped with the
//!   incident when it resolves.

use std::collections::BTreeSet;

use super::{at_least, Alerts, HookResult, Plan, Verification, VerifyOutcome};
use crate::alert::AlertId;
use crate::clock::Timestamp;
use crate::config::hook::{HookCommand, HookConfig};
use crate::config::HookTrigger;

impl Alerts {
    /// Whether every rule `trigger` names in `confirm` has an alert this process saw at the
    /// trigger's level or worse (any of its series, for a labelled rule).
    pub(super) fn confirmed(&self, trigger: &HookTrigger) -> bool {
        trigger.confirm.iter().all(|rule| {
            self.seen
                .iter()
                .any(|(id, (level, _))| id.rule == *rule && at_least(*level, trigger.on))
        })
    }

    /// A hook of `alert` ended with `result`: a successful run of a hook whose trigger has
    /// `verify` starts its verification (the note carries the deadline).
    pub(super) fn verifying(
        &self,
        alert: &AlertId,
        hook: &str,
        result: HookResult,
        now: Timestamp,
    ) -> HookResult {
        let HookResult::Done(Some(mut note)) = result else {
            return result;
        };
        let verify = self
            .alerting
            .hooks_of(&alert.rule)
            .iter()
            .find(|t| t.hook == hook)
            .and_then(|t| t.verify);
        if let (Some(verify), "success") = (verify, note.outcome.as_str()) {
            note.verify = Some(Verification {
                until: (now + verify).as_millis(),
                outcome: VerifyOutcome::Pending,
            });
        }
        HookResult::Done(Some(note))
    }

    /// Verifications whose time came with the alert still firing (and seen at a level by
    /// this process): each pages "did not help" once, and its note says so.
    pub(super) fn due_verifies(&mut self, now: Timestamp) -> Plan {
        let mut due: Vec<(AlertId, String)> = Vec::new();
        for (id, record) in &self.records {
            let Some(firing) = &record.firing else {
                continue;
            };
            if !self.seen.contains_key(id) {
                continue;
            }
            for (hook, note) in &firing.hook_notes {
                let pending = note.verify.as_ref().is_some_and(|v| {
                    v.outcome == VerifyOutcome::Pending && now >= Timestamp::from_millis(v.until)
                });
                if pending {
                    due.push((id.clone(), hook.clone()));
                }
            }
        }
        let mut plan = Plan::default();
        for (id, hook) in due {
            let confirm: Vec<String> = self
                .alerting
                .hooks_of(&id.rule)
                .iter()
                .find(|t| t.hook == hook)
                .map(|t| t.confirm.clone())
                .unwrap_or_default();
            // Confirming rules that still fire, for the page's text.
            let still: BTreeSet<String> = confirm
                .into_iter()
                .filter(|rule| {
                    self.records
                        .iter()
                        .any(|(a, r)| a.rule == *rule && r.firing.is_some())
                })
                .collect();
            let config = self.alerting.hook(&hook).map_or_else(
                || HookConfig::new(&hook, HookCommand::Argv(Vec::new())),
                |spec| spec.config.clone(),
            );
            let own = self
                .alerting
                .hook(&hook)
                .and_then(|spec| spec.notify.clone())
                .unwrap_or_default();
            let Some(record) = self.records.get_mut(&id) else {
                continue;
            };
            let Some(firing) = record.firing.as_mut() else {
                continue;
            };
            let Some(note) = firing.hook_notes.get_mut(&hook) else {
                continue;
            };
            let Some(verify) = note.verify.as_mut() else {
                continue;
            };
            verify.outcome = VerifyOutcome::NotHelped;
            let mut finding = format!(
                "ran at {} and did not help: {id} is still {} at {}",
                note.at,
                firing.severity.as_str(),
                Timestamp::from_millis(verify.until).to_rfc3339(),
            );
            if !still.is_empty() {
                let list: Vec<&str> = still.iter().map(String::as_str).collect();
                finding.push_str(&format!(" (and still firing: {})", list.join(", ")));
            }
            finding.push_str("; not run again for this incident");
            let event = crate::hook::not_helped_event(&firing.event, &config, &finding, now);
            let mut to: BTreeSet<String> = firing.notified.clone();
            to.extend(own);
            let record = record.clone();
            plan.records.push((id.clone(), record));
            let to = self.existing(to, &id, &mut plan);
            if !to.is_empty() {
                plan.events.push((event, to));
            }
        }
        plan
    }
}

#[cfg(test)]
#[path = "tests_guarded.rs"]
mod tests;
