//! Compiling `[[maintenance]]` (matchers, a weekly schedule in a time zone) and `[[inhibit]]`
//! (source and target matchers, `equal` labels).

use toml::Spanned;

use super::{Compiler, Span};
use crate::config::raw::*;
use crate::config::suppression::{InhibitRule, Maintenance, Schedule};
use crate::matcher::{is_label_name, Matcher};

impl Compiler<'_> {
    /// A list of matchers; at least one, and (`selective`) at least one that does not match
    /// an alert without its label, so a typo never silences everything.
    pub(crate) fn matchers(
        &mut self,
        list: Option<&NameList>,
        header: &Span,
        key: &str,
        section: &str,
        selective: bool,
    ) -> Option<Vec<Matcher>> {
        let Some(list) = list else {
            self.missing(header.clone(), key, section);
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for item in list.get_ref() {
            let text = self.text(item)?;
            match Matcher::parse(&text) {
                Ok(m) => out.push(m),
                Err(e) => {
                    self.error(item.span(), e);
                    ok = false;
                }
            }
        }
        if !ok {
            return None;
        }
        if out.is_empty() {
            self.error(
                list.span(),
                format!("{key} needs at least one matcher, e.g. ['rule=\"api-p95\"']"),
            );
            return None;
        }
        if selective && out.iter().all(Matcher::matches_empty) {
            self.error(
                list.span(),
                format!(
                    "{key}: every matcher also matches an alert without its label, so this \
                     would select (nearly) every alert; add one that names a value, e.g. \
                     'rule=\"api-p95\"'"
                ),
            );
            return None;
        }
        Some(out)
    }

    /// A `[[maintenance]]`; `None` on any error.
    pub(super) fn maintenance(&mut self, raw: &Spanned<RawMaintenance>) -> Option<Maintenance> {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [[maintenance]]", RawMaintenance::KEYS);
        let name = self.name(r.name.as_ref(), &header, "maintenance");
        let matchers = self.matchers(
            r.matchers.as_ref(),
            &header,
            "matchers",
            "[[maintenance]]",
            true,
        );
        let (zone_name, zone) = match &r.time_zone {
            None => ("UTC".to_string(), Some(jiff::tz::TimeZone::UTC)),
            Some(v) => {
                let text = self.text(v)?;
                match jiff::tz::db().get(&text) {
                    Ok(zone) => (text, Some(zone)),
                    Err(_) => {
                        self.error(
                            v.span(),
                            format!(
                                "unknown time zone {text:?}: use an IANA name, e.g. \
                                 \"Europe/Berlin\" or \"America/New_York\""
                            ),
                        );
                        (text, None)
                    }
                }
            }
        };
        let mut weekdays: Vec<u8> = Vec::new();
        for item in r
            .weekdays
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            let Some(text) = self.text(item) else {
                continue;
            };
            match Schedule::weekdays_of(&text) {
                Ok(days) => weekdays.extend(days),
                Err(e) => self.error(item.span(), e),
            }
        }
        weekdays.sort_unstable();
        weekdays.dedup();
        let mut times = Vec::new();
        for item in r
            .times
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            let Some(text) = self.text(item) else {
                continue;
            };
            match Schedule::range_of(&text) {
                Ok(range) => times.push(range),
                Err(e) => self.error(item.span(), e),
            }
        }
        let comment = r.comment.as_ref().and_then(|v| self.text(v));
        if self.problems.len() != before {
            return None;
        }
        Some(Maintenance {
            name: name?.into_inner(),
            matchers: matchers?,
            schedule: Schedule {
                zone_name,
                zone: zone?,
                weekdays,
                times,
            },
            comment,
        })
    }

    /// An `[[inhibit]]`; `None` on any error.
    pub(super) fn inhibit(&mut self, raw: &Spanned<RawInhibit>) -> Option<InhibitRule> {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [[inhibit]]", RawInhibit::KEYS);
        let source = self.matchers(
            r.source_matchers.as_ref(),
            &header,
            "source_matchers",
            "[[inhibit]]",
            false,
        );
        let target = self.matchers(
            r.target_matchers.as_ref(),
            &header,
            "target_matchers",
            "[[inhibit]]",
            true,
        );
        let mut equal = Vec::new();
        for item in r
            .equal
            .as_ref()
            .map(|l| l.get_ref().as_slice())
            .unwrap_or_default()
        {
            if is_label_name(item.get_ref()) {
                equal.push(item.get_ref().clone());
            } else {
                self.error(
                    item.span(),
                    format!(
                        "invalid label name {:?}: use letters, digits and _, not starting with a digit",
                        item.get_ref()
                    ),
                );
            }
        }
        if self.problems.len() != before {
            return None;
        }
        Some(InhibitRule {
            source: source?,
            target: target?,
            equal,
        })
    }
}
