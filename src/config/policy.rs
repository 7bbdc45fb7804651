//! `[[policy]]`: on-call policies, the runbooks' P0-P3 as config.
//!
//! A policy is a list of steps, each telling some notifiers once the alert has been firing (at
//! its severity) for the step's `after`, unacknowledged, optionally only within business
//! hours in a time zone, and a `repeat` interval at which everyone told so far is told again
//! while the alert fires unacknowledged. So "page now" is a step with `after = "0s"`, "page if
//! still firing after 15 minutes" one with `after = "15m"`, "business hours only" a step with
//! `hours`, "Slack, then PagerDuty after 10 minutes" two steps. A rule picks a policy with
//! `policy = "P1"`, `[alerting] policy = { critical = "P0", warning = "P2" }` sets the default
//! per severity; without either, the plain routes (`notify`, `[alerting] warning/critical`)
//! apply as before.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::alerting::Catalog;
use super::compile::Compiler;
use super::raw::*;
use crate::alert::Severity;
use crate::clock::Timestamp;

/// `[alerting] policy = { critical = "P0", warning = "P2" }`: the policy of rules without
/// their own, per severity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeverityPolicies {
    pub warning: Option<String>,
    pub critical: Option<String>,
}

impl SeverityPolicies {
    pub fn at(&self, severity: Severity) -> Option<&String> {
        match severity {
            Severity::Warning => self.warning.as_ref(),
            Severity::Critical => self.critical.as_ref(),
        }
    }
}

/// A validated `[[route]]`: matchers over an alert's labels, and the policy they pick.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRoute {
    pub matchers: Vec<crate::matcher::Matcher>,
    pub policy: String,
}

/// A validated `[[policy]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// In the order written; each is sent at most once per incident and severity.
    pub steps: Vec<PolicyStep>,
    /// Re-send to everyone told so far this often while firing and unacknowledged.
    pub repeat: Option<Duration>,
    /// `group_by`, `group_wait`, `group_interval`: alerts of this policy with the same values
    /// of these labels reach each notifier as one notification (`None`: one per alert).
    pub grouping: Option<Grouping>,
}

/// How a policy groups its alerts, per notifier: the first notification of a group waits
/// `wait` for others to join; after that, changes (alerts joining, resolving, repeats) are
/// sent at most once per `interval`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// Label names (`alertname`, `severity`, `check` and the alert's labels); empty: every
    /// alert of the policy in one group.
    pub by: Vec<String>,
    pub wait: Duration,
    pub interval: Duration,
}

impl Grouping {
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);
}

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStep {
    /// How long the alert must have fired (at its severity) first.
    pub after: Duration,
    pub notify: Vec<String>,
    /// Only within these hours (the step waits for them).
    pub hours: Option<Hours>,
}

/// Weekday and time-of-day hours in a time zone: `{ days = "mon-fri", from = "09:00",
/// to = "18:00", tz = "Europe/Berlin" }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Hours {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight, local time; `from < to`.
    pub from: u16,
    pub to: u16,
    /// An IANA time zone name (the database is compiled in).
    pub tz: String,
}

impl Hours {
    /// Whether `t` falls within these hours, in their time zone (DST included).
    pub fn contains(&self, t: Timestamp) -> bool {
        let Ok(tz) = jiff::tz::TimeZone::get(&self.tz) else {
            return false;
        };
        let Ok(ts) = jiff::Timestamp::from_millisecond(t.as_millis()) else {
            return false;
        };
        let local = ts.to_zoned_datetime(tz);
        let day = local.weekday().to_monday_zero_offset() as usize;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.days[day] && self.from <= minute && minute < self.to
    }
}

/// Parses `mon-fri`, `sat,sun`, `mon-wed,fri`.
fn parse_days(text: &str) -> Result<[bool; 7], String> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let index = |s: &str| {
        NAMES
            .iter()
            .position(|n| *n == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("invalid day {s:?}: use mon, tue, wed, thu, fri, sat, sun"))
    };
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (index(a)?, index(b)?);
                if a > b {
                    return Err(format!("invalid day range {part:?}: write it Monday first"));
                }
                days[a..=b].iter_mut().for_each(|d| *d = true);
            }
            None => days[index(part)?] = true,
        }
    }
    Ok(days)
}

/// Parses `HH:MM` (24 h) into minutes after midnight; `24:00` is the end of the day.
fn parse_time(text: &str) -> Result<u16, String> {
    let invalid = || format!("invalid time {text:?}: use HH:MM, e.g. \"09:00\"");
    let (h, m) = text.split_once(':').ok_or_else(invalid)?;
    let (h, m): (u16, u16) = (
        h.parse().map_err(|_| invalid())?,
        m.parse().map_err(|_| invalid())?,
    );
    if m >= 60 || h > 24 || (h == 24 && m > 0) || h.to_string().len() > 2 || m.to_string().len() > 2
    {
        return Err(invalid());
    }
    Ok(h * 60 + m)
}

impl Compiler<'_> {
    /// One `[[policy]]`.
    pub(super) fn policy(&mut self, raw: &Spanned<RawPolicy>, catalog: &Catalog) -> Option<Policy> {
        let header = raw.span();
        let p = raw.get_ref();
        let before = self.problems.len();
        self.unknown_keys(&p.unknown, "in [[policy]]", RawPolicy::KEYS);
        let name = self.name(p.name.as_ref(), &header, "policy");
        let repeat = match &p.repeat {
            None => Some(None),
            Some(v) => self.positive_duration(v, "repeat").map(Some),
        };
        let mut steps = Vec::new();
        let raw_steps = p.step.as_deref().unwrap_or_default();
        if raw_steps.is_empty() {
            self.error(
                header.clone(),
                "a [[policy]] needs at least one [[policy.step]] (after, notify, hours)",
            );
        }
        for s in raw_steps {
            let r = s.get_ref();
            self.unknown_keys(&r.unknown, "in [[policy.step]]", RawPolicyStep::KEYS);
            let after = match &r.after {
                None => Some(Duration::ZERO),
                Some(v) => self.duration(v, "after", Duration::ZERO),
            };
            let notify = match &r.notify {
                Some(list) if !list.get_ref().is_empty() => {
                    let mut names = Vec::new();
                    for v in list.get_ref() {
                        if let Some(n) = self.known_name(
                            v,
                            "notifier",
                            catalog.notifier_names(),
                            catalog.is_complete(),
                        ) {
                            names.push(n);
                        }
                    }
                    Some(names)
                }
                _ => {
                    self.missing(s.span(), "notify", "[[policy.step]] (who is told)");
                    None
                }
            };
            let hours = match &r.hours {
                None => Some(None),
                Some(h) => self.hours(h).map(Some),
            };
            if let (Some(after), Some(notify), Some(hours)) = (after, notify, hours) {
                steps.push(PolicyStep {
                    after,
                    notify,
                    hours,
                });
            }
        }
        let grouping = self.grouping(p, &header, &steps, catalog);
        if self.problems.len() != before {
            return None;
        }
        Some(Policy {
            name: name?.into_inner(),
            steps,
            repeat: repeat?,
            grouping: grouping?,
        })
    }

    /// A policy's `group_by`, `group_wait`, `group_interval`.
    fn grouping(
        &mut self,
        p: &RawPolicy,
        header: &std::ops::Range<usize>,
        steps: &[PolicyStep],
        catalog: &Catalog,
    ) -> Option<Option<Grouping>> {
        let Some(list) = &p.group_by else {
            for (key, v) in [
                ("group_wait", &p.group_wait),
                ("group_interval", &p.group_interval),
            ] {
                if let Some(v) = v {
                    self.error(
                        v.span(),
                        format!("{key} needs group_by (the labels that make a group, e.g. group_by = [\"service\"])"),
                    );
                }
            }
            return Some(None);
        };
        let mut by: Vec<String> = Vec::new();
        for v in list.get_ref() {
            let name = v.get_ref();
            if !crate::labels::is_valid_name(name) {
                self.error(v.span(), format!("invalid label name {name:?} in group_by"));
            } else if by.contains(name) {
                self.error(v.span(), format!("{name:?} is twice in group_by"));
            } else {
                by.push(name.clone());
            }
        }
        for step in steps {
            for n in step
                .notify
                .iter()
                .filter(|n| catalog.notifier_is_alertmanager(n))
            {
                self.error(
                    header.clone(),
                    format!(
                        "policy with group_by notifies {n:?}, an Alertmanager, which groups alerts itself: send it ungrouped alerts (a policy without group_by) and set group_by in its route"
                    ),
                );
            }
        }
        let wait = match &p.group_wait {
            None => Some(Grouping::DEFAULT_WAIT),
            Some(v) => self.duration(v, "group_wait", Duration::ZERO),
        };
        let interval = match &p.group_interval {
            None => Some(Grouping::DEFAULT_INTERVAL),
            Some(v) => self.positive_duration(v, "group_interval"),
        };
        Some(Some(Grouping {
            by,
            wait: wait?,
            interval: interval?,
        }))
    }

    fn hours(&mut self, v: &Spanned<RawHours>) -> Option<Hours> {
        let h = v.get_ref();
        let before = self.problems.len();
        self.unknown_keys(&h.unknown, "in hours", RawHours::KEYS);
        // Every value is interpolated (`${NAME}`, `${NAME:-default}`) as other strings are.
        let mut parsed = |key: &str,
                          field: Option<&Spanned<String>>,
                          f: &dyn Fn(&str) -> Result<u16, String>|
         -> Option<u16> {
            match field {
                None => {
                    self.missing(v.span(), key, "hours");
                    None
                }
                Some(s) => match f(&self.text(s)?) {
                    Ok(x) => Some(x),
                    Err(e) => {
                        self.error(s.span(), e);
                        None
                    }
                },
            }
        };
        let from = parsed("from", h.from.as_ref(), &parse_time);
        let to = parsed("to", h.to.as_ref(), &parse_time);
        let days = match &h.days {
            None => Some([true; 7]),
            Some(s) => match self.text(s).map(|t| parse_days(&t)) {
                None => None,
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    self.error(s.span(), e);
                    None
                }
            },
        };
        let tz = match &h.tz {
            None => {
                self.missing(
                    v.span(),
                    "tz",
                    "hours (an IANA zone, e.g. \"Europe/Berlin\")",
                );
                None
            }
            Some(s) => match self.text(s) {
                None => None,
                Some(name) => match jiff::tz::TimeZone::get(&name) {
                    Ok(_) => Some(name),
                    Err(_) => {
                        self.error(
                            s.span(),
                            format!(
                                "unknown time zone {name:?}: use an IANA name, e.g. \"Europe/Berlin\" or \"UTC\""
                            ),
                        );
                        None
                    }
                },
            },
        };
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                self.error(
                    v.span(),
                    "hours: from must be before to (for hours across midnight, use two steps)",
                );
            }
        }
        (self.problems.len() == before).then(|| Hours {
            days: days.unwrap_or_default(),
            from: from.unwrap_or_default(),
            to: to.unwrap_or_default(),
            tz: tz.unwrap_or_default(),
        })
    }

    /// The rules' `policy` and `[alerting] policy`, checked against the policies defined.
    pub(super) fn policy_choices(
        &mut self,
        files: &[super::load::FileUnit],
        policies: &BTreeMap<String, Policy>,
    ) -> (BTreeMap<String, String>, SeverityPolicies, Vec<PolicyRoute>) {
        // Every policy defined, valid or not: one with errors is reported there, not here too.
        let mut names: Vec<String> = policies.keys().cloned().collect();
        for unit in files {
            for p in unit.raw.iter().flat_map(|r| r.policy.iter().flatten()) {
                if let Some(n) = &p.get_ref().name {
                    names.push(n.get_ref().clone());
                }
            }
        }
        names.sort();
        names.dedup();
        let mut by_rule = BTreeMap::new();
        for (index, unit) in files.iter().enumerate() {
            let Some(raw) = &unit.raw else { continue };
            self.file = index;
            for raw_rule in raw.rule.iter().flatten() {
                let r = raw_rule.get_ref();
                let (Some(name), Some(p)) = (&r.name, &r.policy) else {
                    continue;
                };
                if let Some(span) = r.key_span("notify") {
                    self.error(span, "a rule has notify or policy, not both");
                }
                if let Some(found) = self.known_name(p, "policy", &names, true) {
                    by_rule.insert(name.get_ref().clone(), found);
                }
            }
        }
        self.file = 0;
        let mut by_severity = SeverityPolicies::default();
        let main = files.first().and_then(|f| f.raw.as_ref());
        let table = main
            .and_then(|r| r.alerting.as_ref())
            .and_then(|a| a.get_ref().policy.as_ref());
        for (key, v) in table.iter().flat_map(|m| &m.get_ref().0) {
            let severity = match key.get_ref().as_str() {
                "warning" => Severity::Warning,
                "critical" => Severity::Critical,
                other => {
                    self.error(
                        key.span(),
                        format!(
                            "invalid severity {other:?} in [alerting] policy: warning or critical"
                        ),
                    );
                    continue;
                }
            };
            if let Some(found) = self.known_name(v, "policy", &names, true) {
                match severity {
                    Severity::Warning => by_severity.warning = Some(found),
                    Severity::Critical => by_severity.critical = Some(found),
                }
            }
        }
        let mut routes = Vec::new();
        for (index, unit) in files.iter().enumerate() {
            let Some(raw) = &unit.raw else { continue };
            self.file = index;
            for r in raw.route.iter().flatten() {
                let header = r.span();
                let route = r.get_ref();
                self.unknown_keys(&route.unknown, "in [[route]]", RawRoute::KEYS);
                let matchers = self.matchers(
                    route.matchers.as_ref(),
                    &header,
                    "matchers",
                    "[[route]]",
                    false,
                );
                let policy = match &route.policy {
                    None => {
                        self.missing(header.clone(), "policy", "[[route]]");
                        None
                    }
                    Some(p) => self.known_name(p, "policy", &names, true),
                };
                if let (Some(matchers), Some(policy)) = (matchers, policy) {
                    routes.push(PolicyRoute { matchers, policy });
                }
            }
        }
        self.file = 0;
        (by_rule, by_severity, routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> Timestamp {
        let ts: jiff::Timestamp = text.parse().unwrap();
        Timestamp(ts.as_millisecond())
    }

    #[test]
    fn business_hours_follow_the_zone_across_a_weekend_and_dst() {
        let h = Hours {
            days: parse_days("mon-fri").unwrap(),
            from: parse_time("09:00").unwrap(),
            to: parse_time("18:00").unwrap(),
            tz: "Europe/Berlin".into(),
        };
        // Friday 2026-03-27 17:59 Berlin (CET, UTC+1) is in; 18:00 is out.
        assert!(h.contains(utc("2026-03-27T16:59:00Z")));
        assert!(!h.contains(utc("2026-03-27T17:00:00Z")));
        // The weekend (DST starts Sunday 2026-03-29 02:00) is out, all of it.
        assert!(!h.contains(utc("2026-03-28T10:00:00Z")));
        assert!(!h.contains(utc("2026-03-29T10:00:00Z")));
        // Monday 2026-03-30, now CEST (UTC+2): 09:00 local is 07:00 UTC.
        assert!(!h.contains(utc("2026-03-30T06:59:00Z")));
        assert!(h.contains(utc("2026-03-30T07:00:00Z")));
        // Before the change the same UTC time was 08:00 local: out.
        assert!(!h.contains(utc("2026-03-23T07:00:00Z")));
    }

    #[test]
    fn days_and_times_parse_and_refuse() {
        assert_eq!(
            parse_days("mon-wed,fri").unwrap(),
            [true, true, true, false, true, false, false]
        );
        assert!(parse_days("fri-mon").is_err());
        assert!(parse_days("funday").is_err());
        assert_eq!(parse_time("24:00").unwrap(), 1440);
        assert!(parse_time("9").is_err());
        assert!(parse_time("12:60").is_err());
    }
}
