//! The validated `[[slo]]`: what an SLO counts (its SLI), its objective and period, and the
//! burn-rate alerts that page or ticket on it. Compiled by `compile/slo.rs`, which also adds
//! the SLO's rule (named like the SLO) to `Config::rules`, so the rest of warden alerts on an
//! SLO as on any rule.

use std::time::Duration;

use super::model::RuleExpr;
use crate::alert::Severity;

/// The value name of an SLO's rule: 0 ok, 1 a warning alert holds, 2 a critical one does.
pub const SLO_LEVEL_VALUE: &str = "slo_alert_level";

/// One `[[slo]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SloConfig {
    pub name: String,
    pub sli: Sli,
    /// The check after whose observations the SLO is counted and evaluated: the SLI's check,
    /// or for expressions `check` (default: the config's one scrape check).
    pub check: String,
    /// The objective as a ratio, strictly between 0 and 1 (`objective = 99.5` is 0.995).
    pub objective: f64,
    /// Whole minutes, at least every alert's long window.
    pub period: Duration,
    /// `min_events`: the events an alert's long window needs before it may fire. `None`: per
    /// alert, enough that one bad event alone cannot fire it (see `slo::min_events`).
    pub min_events: Option<f64>,
    /// Never empty (the SRE workbook's four by default).
    pub alerts: Vec<AlertConfig>,
}

/// What an SLO counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// `check = "api"`: each probe of the check is an event, good when it is up.
    Probes,
    /// `good = "..."`, `total = "..."`: counter expressions over the scraped series; the
    /// events between two evaluations are their rows' increases (see `slo::counter_increase`).
    Counters { good: RuleExpr, total: RuleExpr },
}

/// `[[slo.alert]]`: fires when the burn rate is above `burn_rate` over both windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertConfig {
    pub severity: Severity,
    pub burn_rate: f64,
    pub long: Duration,
    pub short: Duration,
}

impl AlertConfig {
    /// The SRE workbook's table for a 30-day SLO: page on 14.4x over 1 h and 5 m, or 6x over
    /// 6 h and 30 m; ticket on 3x over 1 d and 2 h, or 1x over 3 d and 6 h.
    pub fn workbook() -> Vec<AlertConfig> {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let m = |n: u64| Duration::from_secs(n * 60);
        let a = |severity, burn_rate, long, short| AlertConfig {
            severity,
            burn_rate,
            long,
            short,
        };
        vec![
            a(Severity::Critical, 14.4, h(1), m(5)),
            a(Severity::Critical, 6.0, h(6), m(30)),
            a(Severity::Warning, 3.0, h(24), h(2)),
            a(Severity::Warning, 1.0, h(72), h(6)),
        ]
    }
}

/// An objective ratio as the percent it was written as (0.995 → 99.5, not 99.49999999999999).
pub fn percent(objective: f64) -> f64 {
    (objective * 100.0 * 1e9).round() / 1e9
}

/// A period as people write it: whole days in days (`30d`, not `4w2d`), else as durations are.
pub fn period_text(period: Duration) -> String {
    let secs = period.as_secs();
    if secs > 0 && secs.is_multiple_of(86_400) && period.subsec_nanos() == 0 {
        format!("{}d", secs / 86_400)
    } else {
        super::format_duration(period)
    }
}
