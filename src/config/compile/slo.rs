//! Compiling `[[slo]]`: the SLI (a check's probes, or a good/total pair of counter
//! expressions), the objective, the period, the burn-rate alerts (`[[slo.alert]]`, the SRE
//! workbook's four by default), and the SLO's rule: named like the SLO, reading the level its
//! burn rates call for (`slo_alert_level`: 1 warning, 2 critical, immediate), so routing,
//! hooks, dedup, status and resolves are a rule's.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::{unknown_name_message, CheckIndex, Compiler, Span};
use crate::alert::Severity;
use crate::config::duration::format_duration;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::slo::{percent, period_text, AlertConfig, Sli, SloConfig, SLO_LEVEL_VALUE};

const MINUTE: Duration = Duration::from_secs(60);
/// The longest period: a year of minutes is 525,600 buckets (12.6 MB) for one SLO.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

impl Compiler<'_> {
    /// An SLO and its rule; `None` on any error.
    pub(super) fn slo(
        &mut self,
        raw: &Spanned<RawSlo>,
        checks: &CheckIndex<'_>,
    ) -> (Option<Spanned<String>>, Option<(SloConfig, RuleConfig)>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [[slo]]", RawSlo::KEYS);
        let name = self.name(r.name.as_ref(), &header, "slo");
        let description = r.description.as_ref().and_then(|v| self.text(v));

        let sli = match (&r.good, &r.total) {
            (None, None) => Some(Sli::Probes),
            (Some(good), Some(total)) => {
                let good = self.counter_expr(good, "good");
                let total = self.counter_expr(total, "total");
                good.zip(total)
                    .map(|(good, total)| Sli::Counters { good, total })
            }
            (Some(v), None) | (None, Some(v)) => {
                self.error(
                    v.span(),
                    "an SLO counts with both `good` and `total` (counter expressions), or with \
                     `check` alone (its probes)",
                );
                None
            }
        };
        let check = match (&r.check, &sli) {
            (Some(v), _) => match checks.known.get(v.get_ref()) {
                Some(_) => Some(v.get_ref().clone()),
                None => {
                    if checks.complete {
                        let message = unknown_name_message("check", v.get_ref(), checks.order);
                        self.error(v.span(), message);
                    }
                    None
                }
            },
            (None, Some(Sli::Probes)) => {
                self.error(
                    header.clone(),
                    r#"an SLO needs an SLI: check = "api" (each probe an event, good when up), or good and total (counter expressions)"#,
                );
                None
            }
            (None, _) => self.scrape_check(&header, checks),
        };

        let objective = match &r.objective {
            None => {
                self.missing(
                    header.clone(),
                    "objective",
                    "[[slo]] (a percent, e.g. 99.5)",
                );
                None
            }
            Some(v) => {
                let x = *v.get_ref();
                if x > 0.0 && x < 100.0 {
                    Some(x / 100.0)
                } else {
                    self.error(
                        v.span(),
                        format!("objective is a percent between 0 and 100 (exclusive), e.g. 99.5, got {x}"),
                    );
                    None
                }
            }
        };
        let period = match &r.period {
            None => Some(Duration::from_secs(30 * 24 * 3600)),
            Some(v) => self.minutes(v, "period"),
        };
        if let (Some(p), Some(v)) = (period, &r.period) {
            if p > MAX_PERIOD {
                self.error(
                    v.span(),
                    format!("period must be at most 366d, got {:?}", format_duration(p)),
                );
            }
        }
        let min_events = match &r.min_events {
            None => Some(None),
            Some(v) => self
                .int(v, "min_events", 0, i64::from(u32::MAX))
                .map(|n| Some(n as f64)),
        };
        let alerts = match &r.alert {
            None => Some(AlertConfig::workbook()),
            Some(list) => self.slo_alerts(list, period),
        };
        if let (Some(alerts), Some(p), None) = (&alerts, period, &r.alert) {
            // The default table reads up to 3 days back: a shorter period cannot hold it.
            if let Some(longest) = alerts.iter().map(|a| a.long).max().filter(|l| *l > p) {
                let span = r.period.as_ref().map_or(header.clone(), Spanned::span);
                self.error(
                    span,
                    format!(
                        "period {:?} is shorter than the default alerts' longest window ({}); \
                         lengthen it or set [[slo.alert]] tables",
                        format_duration(p),
                        format_duration(longest)
                    ),
                );
            }
        }

        let built = (|| {
            let name = name.as_ref()?.get_ref().clone();
            let slo = SloConfig {
                name: name.clone(),
                sli: sli?,
                check: check?,
                objective: objective?,
                period: period?,
                min_events: min_events?,
                alerts: alerts?,
            };
            let rule = slo_rule(&slo, description);
            Some((slo, rule))
        })();
        let built = built.filter(|_| self.problems.len() == before);
        (name, built)
    }

    /// `good` or `total`: a PromQL expression, parsed and checked.
    fn counter_expr(&mut self, v: &Spanned<String>, key: &str) -> Option<RuleExpr> {
        let text = self.text(v)?;
        match crate::promql::Query::parse(&text) {
            Ok(q) => Some(RuleExpr(std::sync::Arc::new(q))),
            Err(why) => {
                let why = why.trim().replace('\n', "; ");
                self.error(v.span(), format!("invalid {key} {text:?}: {why}"));
                None
            }
        }
    }

    /// The check an expression SLO without `check` is read after: the config's one scrape.
    fn scrape_check(&mut self, header: &Span, checks: &CheckIndex<'_>) -> Option<String> {
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
            [one] => Some((*one).clone()),
            _ => {
                if checks.complete {
                    self.error(
                        header.clone(),
                        format!(
                            "an SLO counting with good and total needs `check`: the check after \
                             whose runs they are read (defaults to the config's one scrape check; \
                             it has {})",
                            scrapes.len()
                        ),
                    );
                }
                None
            }
        }
    }

    /// A duration of whole minutes, at least one.
    fn minutes(&mut self, v: &Spanned<String>, what: &str) -> Option<Duration> {
        let d = self.duration(v, what, MINUTE)?;
        if d.as_millis() % MINUTE.as_millis() != 0 {
            self.error(
                v.span(),
                format!(
                    "{what} must be whole minutes (SLOs count events per minute), got {:?}",
                    format_duration(d)
                ),
            );
            return None;
        }
        Some(d)
    }

    fn slo_alerts(
        &mut self,
        list: &Spanned<Vec<Spanned<RawSloAlert>>>,
        period: Option<Duration>,
    ) -> Option<Vec<AlertConfig>> {
        let before = self.problems.len();
        if list.get_ref().is_empty() {
            self.error(list.span(), "an SLO needs at least one [[slo.alert]]");
        }
        let mut out = Vec::new();
        for entry in list.get_ref() {
            let a = entry.get_ref();
            self.unknown_keys(&a.unknown, "in [[slo.alert]]", RawSloAlert::KEYS);
            let severity = match &a.severity {
                None => {
                    self.missing(
                        entry.span(),
                        "severity",
                        "[[slo.alert]] (warning | critical)",
                    );
                    None
                }
                Some(v) => self.one_of(
                    v,
                    "severity",
                    &[
                        ("warning", Severity::Warning),
                        ("critical", Severity::Critical),
                    ],
                ),
            };
            let burn_rate = match &a.burn_rate {
                None => {
                    self.missing(entry.span(), "burn_rate", "[[slo.alert]] (e.g. 14.4)");
                    None
                }
                Some(v) if *v.get_ref() > 0.0 && v.get_ref().is_finite() => Some(*v.get_ref()),
                Some(v) => {
                    self.error(
                        v.span(),
                        format!("burn_rate must be greater than 0, got {}", v.get_ref()),
                    );
                    None
                }
            };
            let mut window = |key: &str, v: &Option<Spanned<String>>| match v {
                None => {
                    self.missing(
                        entry.span(),
                        key,
                        "[[slo.alert]] (e.g. long = \"1h\", short = \"5m\")",
                    );
                    None
                }
                Some(v) => self.minutes(v, key).map(|d| (d, v.span())),
            };
            let long = window("long", &a.long);
            let short = window("short", &a.short);
            if let (Some((l, _)), Some((s, span))) = (&long, &short) {
                if s > l {
                    self.error(
                        span.clone(),
                        format!(
                            "short ({}) must not be longer than long ({})",
                            format_duration(*s),
                            format_duration(*l)
                        ),
                    );
                }
            }
            if let (Some((l, span)), Some(p)) = (&long, period) {
                if *l > p {
                    self.error(
                        span.clone(),
                        format!(
                            "long ({}) must not be longer than the period ({})",
                            format_duration(*l),
                            format_duration(p)
                        ),
                    );
                }
            }
            if let (Some(severity), Some(burn_rate), Some((long, _)), Some((short, _))) =
                (severity, burn_rate, long, short)
            {
                out.push(AlertConfig {
                    severity,
                    burn_rate,
                    long,
                    short,
                });
            }
        }
        (self.problems.len() == before).then_some(out)
    }
}

/// The rule an SLO alerts through: named like it, on its check, reading its level (1 when a
/// warning alert holds, 2 when a critical one does), entering and leaving a level at once
/// (the burn-rate windows are the hysteresis). Labelled `slo = "<name>"`.
fn slo_rule(slo: &SloConfig, description: Option<String>) -> RuleConfig {
    let level = |at: f64| LevelConfig {
        when: Condition {
            op: CmpOp::Ge,
            threshold: at,
        },
        clear: None,
        trigger: Trigger::Immediate,
        recover: Recovery::default(),
    };
    let has = |s: Severity| slo.alerts.iter().any(|a| a.severity == s);
    RuleConfig {
        name: slo.name.clone(),
        check: slo.check.clone(),
        value: SLO_LEVEL_VALUE.to_string(),
        description: Some(description.unwrap_or_else(|| {
            format!(
                "SLO {}: {}% over {}",
                slo.name,
                percent(slo.objective),
                period_text(slo.period)
            )
        })),
        labels: BTreeMap::from([("slo".to_string(), slo.name.clone())]),
        warning: has(Severity::Warning).then(|| level(1.0)),
        critical: has(Severity::Critical).then(|| level(2.0)),
        on_error: MissingPolicy::Unknown,
        on_missing: MissingPolicy::Unknown,
        min_samples: 1,
        flapping: None,
        series: None,
        expr: None,
    }
}
