//! Compiling `[[rule]]`: the check and value it reads, its warning and critical levels
//! (conditions, `for`, counts), recovery and flapping.

use std::time::Duration;

use toml::Spanned;

use super::{is_identifier, unknown_name_message, CheckIndex, Compiler};
use crate::config::model::*;
use crate::config::parse_condition;
use crate::config::raw::*;

impl Compiler<'_> {
    /// Every rule's `depends_on`, checked once all rules are known: each a rule of the config,
    /// not the rule itself, listed once, and no cycle (a rule depending on itself through
    /// others would hold its own pages for ever).
    pub(super) fn dependencies(
        &mut self,
        files: &[super::FileUnit],
        rules: &[RuleConfig],
    ) -> std::collections::BTreeMap<String, Vec<String>> {
        let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
        let mut graph = std::collections::BTreeMap::new();
        let mut spans = std::collections::BTreeMap::new();
        for (index, unit) in files.iter().enumerate() {
            let Some(raw) = &unit.raw else { continue };
            self.file = index;
            for raw_rule in raw.rule.iter().flatten() {
                let r = raw_rule.get_ref();
                let (Some(name), Some(list)) = (&r.name, &r.depends_on) else {
                    continue;
                };
                let mut parents: Vec<String> = Vec::new();
                for v in list.get_ref() {
                    let parent = v.get_ref();
                    if parent == name.get_ref() {
                        self.error(v.span(), format!("rule {parent:?} cannot depend on itself"));
                    } else if !names.contains(parent) {
                        let message = unknown_name_message("rule", parent, &names);
                        self.error(v.span(), message);
                    } else if parents.contains(parent) {
                        self.error(v.span(), format!("rule {parent:?} is listed twice"));
                    } else {
                        parents.push(parent.clone());
                    }
                }
                if !parents.is_empty() {
                    graph.insert(name.get_ref().clone(), parents);
                    spans.insert(name.get_ref().clone(), (index, list.span()));
                }
            }
        }
        // A cycle: a rule reachable from itself. Reported once per rule on it.
        for (rule, (file, span)) in &spans {
            let mut stack: Vec<(&String, Vec<&String>)> = vec![(rule, vec![rule])];
            let mut seen = std::collections::BTreeSet::new();
            let mut cycle = None;
            while let Some((at, path)) = stack.pop() {
                for next in graph.get(at).into_iter().flatten() {
                    if next == rule {
                        cycle = Some(path.clone());
                        break;
                    }
                    if seen.insert(next) {
                        let mut p = path.clone();
                        p.push(next);
                        stack.push((next, p));
                    }
                }
                if cycle.is_some() {
                    break;
                }
            }
            if let Some(path) = cycle {
                self.file = *file;
                let shown: Vec<&str> = path.iter().map(|s| s.as_str()).collect();
                self.error(
                    span.clone(),
                    format!("depends_on makes a cycle: {} -> {rule}", shown.join(" -> ")),
                );
            }
        }
        self.file = 0;
        graph
    }

    pub(super) fn rule(
        &mut self,
        raw: &Spanned<RawRule>,
        checks: &CheckIndex<'_>,
    ) -> (Option<Spanned<String>>, Option<RuleConfig>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [[rule]]", RawRule::KEYS);
        let name = self.name(r.name.as_ref(), &header, "rule");

        let expr = r.expr.as_ref().and_then(|e| self.expr(e, r));
        let check = match &r.check {
            None if r.expr.is_some() => self.expr_check(&header, checks),
            None => {
                self.missing(header.clone(), "check", "[[rule]]");
                None
            }
            Some(v) => {
                let wanted = v.get_ref();
                match checks.known.get(wanted) {
                    Some(known) => Some((v.get_ref().clone(), known)),
                    None => {
                        if checks.complete {
                            let message = unknown_name_message("check", wanted, checks.order);
                            self.error(v.span(), message);
                        }
                        None
                    }
                }
            }
        };
        let value = match (&r.value, &expr) {
            (_, Some(e)) => e.0.text().to_string(),
            (None, None) => "up".to_string(),
            (Some(v), None) => v.get_ref().clone(),
        };
        if let (Some((check_name, known)), Some(values), None) = (
            &check,
            check.as_ref().and_then(|(_, k)| k.values.as_ref()),
            &r.expr,
        ) {
            if known.open_values {
                if !is_identifier(&value) {
                    let span = r.value.as_ref().map_or(header.clone(), Spanned::span);
                    self.error(
                        span,
                        format!(
                            "invalid value name {value:?} for {} check {check_name:?}: perfdata \
                             labels become value names with every character outside \
                             [A-Za-z0-9_] replaced by _, e.g. \"time\" or \"_tmp\"",
                            known.kind.unwrap_or("?"),
                        ),
                    );
                }
            } else if !values.contains(&value) {
                let span = r.value.as_ref().map_or(header.clone(), Spanned::span);
                let mut message = format!(
                    "check {check_name:?} (kind {}) has no value {value:?}; valid values: {}",
                    known.kind.unwrap_or("?"),
                    values.join(", ")
                );
                if known.kind == Some("system") && value.starts_with("disk_") {
                    message.push_str(" (disk values need disk_path on the check)");
                }
                self.error(span, message);
            }
        }

        let description = r.description.as_ref().and_then(|v| self.text(v));
        let labels = self.labels(r.labels.as_ref());
        let warning = r.warning.as_ref().map(|l| self.level(l, "warning"));
        let critical = r.critical.as_ref().map(|l| self.level(l, "critical"));
        if warning.is_none() && critical.is_none() {
            let span = r.name.as_ref().map_or(header.clone(), Spanned::span);
            self.error(
                span,
                r#"a rule needs a warning or critical level, e.g. critical = { when = "< 1" }"#,
            );
        }
        let policies = [
            ("unknown", MissingPolicy::Unknown),
            ("warning", MissingPolicy::Warning),
            ("critical", MissingPolicy::Critical),
        ];
        let on_error = r
            .on_error
            .as_ref()
            .map_or(Some(MissingPolicy::Unknown), |v| {
                self.one_of(v, "on_error", &policies)
            });
        let on_missing = r
            .on_missing
            .as_ref()
            .map_or(Some(MissingPolicy::Unknown), |v| {
                self.one_of(v, "on_missing", &policies)
            });
        let min_samples = r
            .min_samples
            .as_ref()
            .map_or(Some(1), |v| self.count(v, "min_samples", 1));
        let flapping = match &r.flapping {
            None => Some(None),
            Some(v) => self.flapping(v),
        };
        let series = match (&r.expr, &r.gone_after, check.as_ref()) {
            // An expression's result is labelled series, whatever it reads.
            (Some(_), Some(v), _) => self.positive_duration(v, "gone_after").map(Some),
            (Some(_), None, Some((_, k))) => Some(Some(k.interval)),
            (Some(_), None, None) => Some(None),
            (None, ..) => self.series_grace(r, check.as_ref().map(|(_, k)| *k), &value),
        };

        let config = (|| {
            Some(RuleConfig {
                name: name.as_ref()?.get_ref().clone(),
                check: check?.0,
                value,
                description,
                labels: labels?,
                warning: warning.map_or(Some(None), |l| l.map(Some))?,
                critical: critical.map_or(Some(None), |l| l.map(Some))?,
                on_error: on_error?,
                on_missing: on_missing?,
                min_samples: min_samples?,
                flapping: flapping?,
                series: series?,
                expr: expr.clone(),
            })
        })();
        let config = config.filter(|_| self.problems.len() == before);
        (name, config)
    }

    /// The rule's `series` grace: `Some(Some(gone_after or the check's interval))` for a rule
    /// reading a labelled series value, `Some(None)` for a scalar one; `None` on error
    /// (`gone_after` on a scalar value, which has no series to lose).
    fn series_grace(
        &mut self,
        r: &RawRule,
        check: Option<&super::KnownCheck>,
        value: &str,
    ) -> Option<Option<Duration>> {
        let is_series = check.is_some_and(|k| k.series.iter().any(|s| s == value));
        match (&r.gone_after, check) {
            (None, Some(k)) if is_series => Some(Some(k.interval)),
            (None, _) => Some(None),
            (Some(v), _) if is_series => self.positive_duration(v, "gone_after").map(Some),
            (Some(v), Some(_)) => {
                self.error(
                    v.span(),
                    format!(
                        "gone_after applies only to a rule reading labelled series (a postgres \
                         query with result = \"series\", a prometheus check's result); value \
                         {value:?} is one number"
                    ),
                );
                None
            }
            // The check did not compile: its errors say why.
            (Some(_), None) => Some(None),
        }
    }

    /// `expr = "..."`: parsed and checked; an unsupported construct is named at the
    /// expression's position. Refused beside `value` (one or the other).
    fn expr(&mut self, e: &Spanned<String>, r: &RawRule) -> Option<RuleExpr> {
        if let Some(v) = &r.value {
            self.error(
                v.span(),
                "a rule reads either `value` (of its check) or `expr`, not both",
            );
            return None;
        }
        let text = self.text(e)?;
        match crate::promql::Query::parse(&text) {
            Ok(q) => Some(RuleExpr(std::sync::Arc::new(q))),
            Err(why) => {
                let why = why.trim().replace('\n', "; ");
                self.error(e.span(), format!("invalid expr {text:?}: {why}"));
                None
            }
        }
    }

    /// The check after whose observations an `expr` rule without `check` is evaluated: the
    /// config's one `scrape` check.
    fn expr_check<'c>(
        &mut self,
        header: &std::ops::Range<usize>,
        checks: &CheckIndex<'c>,
    ) -> Option<(String, &'c super::KnownCheck)> {
        let scrapes: Vec<&String> = checks
            .order
            .iter()
            .filter(|n| {
                checks
                    .known
                    .get(*n)
                    .is_some_and(|k| k.kind == Some("scrape"))
            })
            .collect();
        match scrapes.as_slice() {
            [one] => Some(((*one).clone(), &checks.known[*one])),
            _ => {
                if checks.complete {
                    self.error(
                        header.clone(),
                        format!(
                            "an expr rule needs `check`: the check after whose runs it is \
                             evaluated (defaults to the config's one scrape check; it has {})",
                            scrapes.len()
                        ),
                    );
                }
                None
            }
        }
    }

    /// `None` inside the outer `Option`: the level has an error.
    fn level(&mut self, raw: &Spanned<RawLevel>, which: &str) -> Option<LevelConfig> {
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, &format!("in the {which} level"), RawLevel::KEYS);
        let when = match &r.when {
            None => {
                self.error(
                    raw.span(),
                    format!(
                        r#"missing required key "when" in the {which} level, e.g. when = "> 0.8""#
                    ),
                );
                None
            }
            Some(v) => self.condition(v),
        };
        let clear = match &r.clear {
            None => Some(None),
            Some(v) => self.condition(v).map(Some),
        };
        let for_ = r
            .for_
            .as_ref()
            .and_then(|v| self.duration(v, "for", Duration::ZERO));
        let count = r.count.as_ref().and_then(|v| self.count(v, "count", 1));
        let window = r.window.as_ref().and_then(|v| self.count(v, "window", 1));
        if let (Some(_), Some(v)) = (&r.for_, &r.count) {
            self.error(
                v.span(),
                format!(r#"use "for" or "count" in the {which} level, not both"#),
            );
        }
        if let Some(v) = &r.window {
            if r.count.is_none() {
                self.error(
                    v.span(),
                    format!(r#""window" needs "count" in the {which} level (count breaching samples out of the last window)"#),
                );
            } else if let (Some(count), Some(window)) = (count, window) {
                if window < count {
                    self.error(
                        v.span(),
                        format!("window must be at least count ({count}), got {window}"),
                    );
                }
            }
        }
        let trigger = match (for_, count, window) {
            (Some(d), _, _) => Trigger::For(d),
            (None, Some(count), Some(window)) => Trigger::OutOf { count, window },
            (None, Some(count), None) => Trigger::Consecutive(count),
            (None, None, _) => Trigger::Immediate,
        };
        let recover_count = r
            .recover_count
            .as_ref()
            .map_or(Some(1), |v| self.count(v, "recover_count", 1));
        let recover_for = r.recover_for.as_ref().map_or(Some(Duration::ZERO), |v| {
            self.duration(v, "recover_for", Duration::ZERO)
        });
        let level = LevelConfig {
            when: when?,
            clear: clear?,
            trigger,
            recover: Recovery {
                count: recover_count?,
                for_: recover_for?,
            },
        };
        (self.problems.len() == before).then_some(level)
    }

    fn condition(&mut self, v: &Spanned<String>) -> Option<Condition> {
        let text = self.text(v)?;
        match parse_condition(&text) {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(v.span(), e);
                None
            }
        }
    }

    fn flapping(&mut self, v: &Spanned<RawFlapping>) -> Option<Option<FlapConfig>> {
        let t = match v.get_ref() {
            RawFlapping::Enabled(true) => return Some(Some(FlapConfig::default())),
            RawFlapping::Enabled(false) => return Some(None),
            RawFlapping::Table(t) => t,
        };
        let before = self.problems.len();
        self.unknown_keys(&t.unknown, "in flapping", RawFlapTable::KEYS);
        let mut config = FlapConfig::default();
        if let Some(w) = &t.window {
            if let Some(window) = self.int(w, "flapping window", 2, 100) {
                config.window = u32::try_from(window).unwrap_or(21);
            }
        }
        for (value, what, slot) in [
            (&t.high, "flapping high", &mut config.high),
            (&t.low, "flapping low", &mut config.low),
        ] {
            if let Some(value) = value {
                let x = *value.get_ref();
                if (0.0..=100.0).contains(&x) {
                    *slot = x;
                } else {
                    self.error(
                        value.span(),
                        format!("{what} must be between 0 and 100, got {x}"),
                    );
                }
            }
        }
        if self.problems.len() == before && config.low >= config.high {
            let span = t
                .low
                .as_ref()
                .or(t.high.as_ref())
                .map_or(v.span(), Spanned::span);
            self.error(
                span,
                format!(
                    "flapping low ({}) must be below high ({})",
                    config.low, config.high
                ),
            );
        }
        (self.problems.len() == before).then_some(Some(config))
    }
}
