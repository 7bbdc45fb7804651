//! `[[window]]`: post-deploy validation windows, their validated model and their compile step.
//!
//! A window names, for a deploy, what must hold and when: marks (offsets from the start) with
//! the rules that must be ok there and the expressions that must keep a bound (absolute, or a
//! multiple of the window's baseline, evaluated at the start over the data before the
//! deploy); rules that must never reach critical while it runs; what a mark without data
//! does; and what happens on failure (a page at a severity, rollback hooks: an alert of its
//! own, `window/<name>`, so routing, dedup, hooks once per incident and cooldowns are the
//! alert stage's) and on success (a message). Canary windows have steps instead of marks: a
//! traffic weight set by `step_hook` at the step's start, a hold, and the step's checks at
//! its end. The runtime is the `window` module.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::alerting::Catalog;
use super::compile::Compiler;
use super::model::*;
use super::raw::*;
use crate::alert::Severity;

/// The most marks (or steps) a window may have.
pub const MAX_MARKS: usize = 64;
/// The longest window: marks beyond a week are a dashboard's job.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A validated `[[window]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowConfig {
    pub name: String,
    /// Windows of one service never run at once (default: the window's name).
    pub service: String,
    /// In time order; the last one ends the window.
    pub marks: Vec<MarkConfig>,
    /// Rules that fail the window the moment any of their series turns critical.
    pub never_critical: Vec<String>,
    /// Named expressions evaluated once, at the start.
    pub baseline: Vec<(String, ExprTemplate)>,
    /// What a mark whose rules or expressions have no data does.
    pub no_data: NoData,
    /// With it, an inconclusive mark is looked at once more this much later first.
    pub extend: Option<Duration>,
    /// The severity of the failure page (default critical).
    pub severity: Severity,
    /// The hook that sets a step's traffic weight (`WARDEN_WEIGHT`).
    pub step_hook: Option<String>,
    /// Rules whose pages are held during the first `hold_for` of the window (and of each
    /// step): the expected blip of a traffic switch. Never one of `never_critical`.
    pub hold: Vec<String>,
    pub hold_for: Duration,
    /// A run is refused (`warden gate` exits 2 before any traffic moves) while one of `slos`
    /// (empty: every `[[slo]]`) has less error budget left than this ratio.
    pub budget_floor: Option<f64>,
    pub slos: Vec<String>,
    pub on_success: Option<OnSuccess>,
}

impl WindowConfig {
    /// The alert rule name of this window's failure: `window/<name>` (a `/` no rule name has).
    pub fn alert_rule(&self) -> String {
        alert_rule(&self.name)
    }

    /// How long the window runs (its last mark), without an extension.
    pub fn length(&self) -> Duration {
        self.marks.last().map_or(Duration::ZERO, |m| m.at)
    }

    /// How far back the window's expressions read, for the series store's retention.
    pub fn reach(&self) -> Duration {
        let expects = self
            .marks
            .iter()
            .flat_map(|m| &m.expect)
            .map(|e| e.expr.reach);
        let baseline = self.baseline.iter().map(|(_, t)| t.reach);
        expects.chain(baseline).max().unwrap_or_default()
    }

    /// Whether the window evaluates any expression (the series store must be written).
    pub fn has_expressions(&self) -> bool {
        !self.baseline.is_empty() || self.marks.iter().any(|m| !m.expect.is_empty())
    }
}

/// `window/<name>`: the alert a window's failure is.
pub fn alert_rule(window: &str) -> String {
    format!("window/{window}")
}

/// A mark, or a step's end.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkConfig {
    /// Offset from the window's start.
    pub at: Duration,
    /// Set for a canary step: the weight its hook sets, and when the step starts.
    pub step: Option<Step>,
    /// Rules whose every series must be ok here (or warning, with `allow_warning`).
    pub require: Vec<String>,
    pub allow_warning: bool,
    pub expect: Vec<Expect>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub weight: u32,
    /// Offset from the window's start.
    pub from: Duration,
}

/// An expression that must keep a bound at a mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Expect {
    /// For people and the timeline (default: `expect<N>`).
    pub name: String,
    pub expr: ExprTemplate,
    pub op: CmpOp,
    pub bound: Bound,
    /// The condition as written (`<= 1.2 * baseline.p95`).
    pub when: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    Value(f64),
    /// `factor * baseline.<name>`.
    Baseline {
        name: String,
        factor: f64,
    },
}

/// What an inconclusive mark (no data, too little traffic) does to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoData {
    /// The window fails, with its failure actions (the default: no data is not a pass).
    Fail,
    /// The mark passes with a warning in the timeline.
    Pass,
    /// The window ends inconclusive: no rollback; `warden gate` exits 3.
    Inconclusive,
}

impl NoData {
    pub fn as_str(self) -> &'static str {
        match self {
            NoData::Fail => "fail",
            NoData::Pass => "pass",
            NoData::Inconclusive => "inconclusive",
        }
    }
}

/// `on_success = { notify = [...], message = "...", hooks = [...] }`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnSuccess {
    pub notify: Vec<String>,
    /// `$deploy`, `$version`, `$window` and the start's labels are filled in.
    pub message: String,
    /// Hooks run once when a run passes (e.g. promoting the release), with the window's facts
    /// in their environment; how each went is in the run's timeline.
    pub hooks: Vec<String>,
}

/// A PromQL expression with `$deploy`, `$version`, `$window` and `$<label>` placeholders,
/// filled in when a window starts. Checked when the config loads with every placeholder
/// filled with a dummy value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprTemplate {
    pub text: String,
    /// How far back it reads.
    pub reach: Duration,
}

impl ExprTemplate {
    /// The text with each `$name` of `vars` replaced by its value (`"` and `\` escaped, as
    /// the values go into label matchers); other `$name`s are left as they are.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        fill(&self.text, vars, true)
    }
}

/// `text` with `$name` placeholders of `vars` replaced; `escape` escapes `"` and `\`.
pub fn fill(text: &str, vars: &BTreeMap<String, String>, escape: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(after.len(), |(n, _)| n);
        match vars.get(&after[..len]) {
            Some(value) if len > 0 => {
                for c in value.chars() {
                    if escape && matches!(c, '"' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            _ => {
                out.push('$');
                out.push_str(&after[..len]);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Every `$name` in `text` filled with `x`, to check the expression's shape.
fn dummy(text: &str) -> String {
    let mut vars = BTreeMap::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        let after = &rest[i + 1..];
        let len = after
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(after.len(), |(n, _)| n);
        vars.insert(after[..len].to_string(), "x".to_string());
        rest = &after[len..];
    }
    fill(text, &vars, true)
}

/// Parses `when` of an expect: `OP NUMBER`, `OP baseline.NAME`, `OP NUMBER * baseline.NAME`
/// or `OP baseline.NAME * NUMBER`.
pub fn parse_bound(text: &str) -> Result<(CmpOp, Bound), String> {
    let invalid = || {
        format!(
            "invalid condition {text:?}: expected an operator and a number or a baseline, e.g. \
             \"< 0.01\", \"<= baseline.p95\" or \"<= 1.2 * baseline.p95\""
        )
    };
    let t = text.trim();
    let ops = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ];
    let (op, len) = ops
        .iter()
        .find(|(s, _)| t.starts_with(s))
        .map(|(s, op)| (*op, s.len()))
        .ok_or_else(invalid)?;
    let rhs = t[len..].trim();
    let number = |s: &str| {
        let s = s.trim();
        let ok = !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
        s.parse::<f64>()
            .ok()
            .filter(|v| ok && v.is_finite())
            .ok_or_else(invalid)
    };
    let baseline = |s: &str| {
        let name = s.trim().strip_prefix("baseline.").ok_or_else(invalid)?;
        if is_ident(name) {
            Ok(name.to_string())
        } else {
            Err(invalid())
        }
    };
    if !rhs.contains("baseline.") {
        return Ok((op, Bound::Value(number(rhs)?)));
    }
    let bound = match rhs.split_once('*') {
        None => Bound::Baseline {
            name: baseline(rhs)?,
            factor: 1.0,
        },
        Some((a, b)) if a.contains("baseline.") => Bound::Baseline {
            name: baseline(a)?,
            factor: number(b)?,
        },
        Some((a, b)) => Bound::Baseline {
            name: baseline(b)?,
            factor: number(a)?,
        },
    };
    Ok((op, bound))
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Compiler<'_> {
    /// One `[[window]]`, its failure actions (`notify`, `hooks`, to be the alert stage's
    /// actions of `window/<name>`) beside it. `rules` are every rule of the config.
    pub(super) fn window(
        &mut self,
        raw: &Spanned<RawWindow>,
        rules: &[RuleConfig],
        slo_list: &[super::slo::SloConfig],
        catalog: &Catalog,
    ) -> Option<(WindowConfig, Option<RuleActions>)> {
        let header = raw.span();
        let w = raw.get_ref();
        let before = self.problems.len();
        self.unknown_keys(&w.unknown, "in [[window]]", RawWindow::KEYS);
        let name = self.name(w.name.as_ref(), &header, "window");
        let service = match &w.service {
            Some(v) => self.name(Some(v), &header, "window service"),
            None => name.clone(),
        };
        let rule_list = |c: &mut Self, list: Option<&NameList>| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for v in list.map(|l| l.get_ref().as_slice()).unwrap_or_default() {
                if !rules.iter().any(|r| &r.name == v.get_ref()) {
                    let names: Vec<String> = rules.iter().map(|r| r.name.clone()).collect();
                    c.error(
                        v.span(),
                        super::compile::unknown_name_message("rule", v.get_ref(), &names),
                    );
                } else if out.contains(v.get_ref()) {
                    c.error(v.span(), format!("rule {:?} is listed twice", v.get_ref()));
                } else {
                    out.push(v.get_ref().clone());
                }
            }
            out
        };
        let never_critical = rule_list(self, w.never_critical.as_ref());
        let hold = rule_list(self, w.hold.as_ref());
        for v in w.hold.iter().flat_map(|l| l.get_ref()) {
            if never_critical.contains(v.get_ref()) {
                self.error(
                    v.span(),
                    format!(
                        "rule {:?} is in never_critical: a window never holds the pages of \
                         what fails it",
                        v.get_ref()
                    ),
                );
            }
        }
        let hold_for = match &w.hold_for {
            Some(v) => self.duration(v, "hold_for", Duration::ZERO),
            None if w.hold.is_some() => {
                self.missing(header.clone(), "hold_for", "[[window]] with hold");
                None
            }
            None => Some(Duration::ZERO),
        };
        let mut baseline = Vec::new();
        for (key, v) in w.baseline.iter().flat_map(|m| &m.get_ref().0) {
            if !is_ident(key.get_ref()) {
                self.error(
                    key.span(),
                    format!(
                        "invalid baseline name {:?}: use letters, digits and _",
                        key.get_ref()
                    ),
                );
                continue;
            }
            if let Some(t) = self.expr_template(v) {
                baseline.push((key.get_ref().clone(), t));
            }
        }
        let no_data = match &w.no_data {
            None => Some(NoData::Fail),
            Some(v) => self.one_of(
                v,
                "no_data",
                &[
                    ("fail", NoData::Fail),
                    ("pass", NoData::Pass),
                    ("inconclusive", NoData::Inconclusive),
                ],
            ),
        };
        let extend = match &w.extend {
            None => Some(None),
            Some(v) => self.positive_duration(v, "extend").map(Some),
        };
        let severity = match &w.severity {
            None => Some(Severity::Critical),
            Some(v) => self.one_of(
                v,
                "severity",
                &[
                    ("warning", Severity::Warning),
                    ("critical", Severity::Critical),
                ],
            ),
        };
        let step_hook = match &w.step_hook {
            None => Some(None),
            Some(v) => self
                .known_name(v, "hook", catalog.hook_names(), catalog.is_complete())
                .map(Some),
        };
        let budget_floor = match &w.budget_floor {
            None => Some(None),
            Some(v) if (0.0..=1.0).contains(v.get_ref()) => Some(Some(*v.get_ref())),
            Some(v) => {
                self.error(
                    v.span(),
                    format!(
                        "budget_floor must be a ratio from 0 to 1 (0.25: a quarter of the \
                         error budget left), got {}",
                        v.get_ref()
                    ),
                );
                None
            }
        };
        let mut slos: Vec<String> = Vec::new();
        for v in w.slos.iter().flat_map(|l| l.get_ref()) {
            if slo_list.iter().any(|s| &s.name == v.get_ref()) {
                slos.push(v.get_ref().clone());
            } else {
                let names: Vec<String> = slo_list.iter().map(|s| s.name.clone()).collect();
                self.error(
                    v.span(),
                    super::compile::unknown_name_message("SLO", v.get_ref(), &names),
                );
            }
        }
        if let (Some(span), true) = (w.key_span("budget_floor"), slo_list.is_empty()) {
            self.error(
                span,
                "budget_floor needs an [[slo]] in the config (the budget it guards)",
            );
        }
        if let (Some(span), None) = (w.key_span("slos"), &w.budget_floor) {
            self.error(
                span,
                "slos names the SLOs whose budget_floor the gate checks: set budget_floor",
            );
        }
        let on_success = match &w.on_success {
            None => Some(None),
            Some(v) => self.on_success(v, catalog).map(Some),
        };

        let raw_marks = w.mark.as_deref().unwrap_or_default();
        let raw_steps = w.step.as_deref().unwrap_or_default();
        if !raw_marks.is_empty() && !raw_steps.is_empty() {
            self.error(
                header.clone(),
                "a [[window]] has [[window.mark]] or [[window.step]], not both",
            );
        }
        let mut marks = Vec::new();
        let mut at = Duration::ZERO;
        for m in raw_marks {
            let r = m.get_ref();
            let keys: Vec<&str> = RawMark::KEYS
                .iter()
                .copied()
                .filter(|k| !matches!(*k, "weight" | "hold"))
                .collect();
            self.unknown_keys(&r.unknown, "in [[window.mark]]", &keys);
            for key in ["weight", "hold"] {
                if let Some(span) = r.key_span(key) {
                    self.error(
                        span,
                        format!("{key:?} belongs in a [[window.step]], not a [[window.mark]]"),
                    );
                }
            }
            let Some(v) = &r.at else {
                self.missing(m.span(), "at", "[[window.mark]]");
                continue;
            };
            let Some(t) = self.positive_duration(v, "at") else {
                continue;
            };
            if t <= at {
                self.error(v.span(), "marks must be in increasing order of at");
                continue;
            }
            at = t;
            if let Some(mark) = self.mark(r, t, None, &rule_list, &baseline) {
                marks.push(mark);
            }
        }
        for m in raw_steps {
            let r = m.get_ref();
            let keys: Vec<&str> = RawMark::KEYS
                .iter()
                .copied()
                .filter(|k| *k != "at")
                .collect();
            self.unknown_keys(&r.unknown, "in [[window.step]]", &keys);
            if let Some(span) = r.key_span("at") {
                self.error(
                    span,
                    "a [[window.step]] has hold (how long it lasts), not at",
                );
            }
            let weight = match &r.weight {
                Some(v) => self.int(v, "weight", 0, 100).map(|n| n as u32),
                None => {
                    self.missing(m.span(), "weight", "[[window.step]]");
                    None
                }
            };
            let hold = match &r.hold {
                Some(v) => self.positive_duration(v, "hold"),
                None => {
                    self.missing(m.span(), "hold", "[[window.step]]");
                    None
                }
            };
            let (Some(weight), Some(hold)) = (weight, hold) else {
                continue;
            };
            let from = at;
            at += hold;
            if let Some(mark) = self.mark(r, at, Some(Step { weight, from }), &rule_list, &baseline)
            {
                marks.push(mark);
            }
        }
        if raw_marks.is_empty() && raw_steps.is_empty() {
            self.error(
                header.clone(),
                "a [[window]] needs at least one [[window.mark]] (at, require, expect) or [[window.step]]",
            );
        }
        if !raw_steps.is_empty() && w.step_hook.is_none() {
            self.missing(
                header.clone(),
                "step_hook",
                "[[window]] with steps (the hook that sets the weight)",
            );
        }
        if marks.len() > MAX_MARKS {
            self.error(
                header.clone(),
                format!("a window has at most {MAX_MARKS} marks or steps"),
            );
        }
        if at > MAX_WINDOW {
            self.error(header.clone(), "a window lasts at most 7d (its last mark)");
        }

        // The failure's route and hooks: the alert stage's actions of `window/<name>`.
        let severity_ = severity.unwrap_or(Severity::Critical);
        let route = match &w.notify {
            None => Some(None),
            Some(v) => self.rule_route(v, catalog).map(Some),
        };
        let mut hooks = Vec::new();
        for v in w.hooks.iter().flat_map(|l| l.get_ref()) {
            if hooks.iter().any(|h: &HookTrigger| &h.hook == v.get_ref()) {
                self.error(v.span(), format!("hook {:?} is listed twice", v.get_ref()));
            } else if let Some(hook) =
                self.known_name(v, "hook", catalog.hook_names(), catalog.is_complete())
            {
                hooks.push(HookTrigger {
                    hook,
                    on: severity_,
                    after: Duration::ZERO,
                    confirm: Vec::new(),
                    verify: None,
                });
            }
        }
        if self.problems.len() != before {
            return None;
        }
        let route = route?;
        let actions =
            (route.is_some() || !hooks.is_empty()).then_some(RuleActions { route, hooks });
        Some((
            WindowConfig {
                name: name?.into_inner(),
                service: service?.into_inner(),
                marks,
                never_critical,
                baseline,
                no_data: no_data?,
                extend: extend?,
                severity: severity?,
                step_hook: step_hook?,
                hold,
                hold_for: hold_for?,
                budget_floor: budget_floor?,
                slos,
                on_success: on_success?,
            },
            actions,
        ))
    }

    fn mark(
        &mut self,
        r: &RawMark,
        at: Duration,
        step: Option<Step>,
        rule_list: &dyn Fn(&mut Self, Option<&NameList>) -> Vec<String>,
        baseline: &[(String, ExprTemplate)],
    ) -> Option<MarkConfig> {
        let before = self.problems.len();
        let require = rule_list(self, r.require.as_ref());
        let mut expect = Vec::new();
        for (n, e) in r.expect.iter().flatten().enumerate() {
            let x = e.get_ref();
            self.unknown_keys(&x.unknown, "in an expect", RawExpect::KEYS);
            let name = match &x.name {
                Some(v) if is_ident(v.get_ref()) => v.get_ref().clone(),
                Some(v) => {
                    self.error(v.span(), "an expect's name uses letters, digits and _");
                    continue;
                }
                None => format!("expect{}", n + 1),
            };
            let expr = match &x.expr {
                Some(v) => self.expr_template(v),
                None => {
                    self.missing(e.span(), "expr", "an expect");
                    None
                }
            };
            let when = match &x.when {
                Some(v) => match parse_bound(v.get_ref()) {
                    Ok((op, bound)) => {
                        if let Bound::Baseline { name, .. } = &bound {
                            if !baseline.iter().any(|(b, _)| b == name) {
                                self.error(
                                    v.span(),
                                    format!("baseline.{name} is not in the window's baseline"),
                                );
                            }
                        }
                        Some((op, bound, v.get_ref().trim().to_string()))
                    }
                    Err(e) => {
                        self.error(v.span(), e);
                        None
                    }
                },
                None => {
                    self.missing(e.span(), "when", "an expect");
                    None
                }
            };
            if let (Some(expr), Some((op, bound, when))) = (expr, when) {
                expect.push(Expect {
                    name,
                    expr,
                    op,
                    bound,
                    when,
                });
            }
        }
        if require.is_empty() && expect.is_empty() && self.problems.len() == before {
            self.error(
                r.key_span("at")
                    .or_else(|| r.key_span("weight"))
                    .unwrap_or(0..0),
                "a mark needs require (rules that must be ok) or an expect",
            );
        }
        (self.problems.len() == before).then_some(MarkConfig {
            at,
            step,
            require,
            allow_warning: r.allow_warning.as_ref().is_some_and(|v| *v.get_ref()),
            expect,
        })
    }

    fn expr_template(&mut self, v: &Spanned<String>) -> Option<ExprTemplate> {
        let text = self.text(v)?;
        match crate::promql::Query::parse(&dummy(&text)) {
            Ok(q) => Some(ExprTemplate {
                reach: q.reach(),
                text,
            }),
            Err(e) => {
                self.error(v.span(), format!("invalid expression: {e}"));
                None
            }
        }
    }

    fn on_success(&mut self, v: &Spanned<RawOnSuccess>, catalog: &Catalog) -> Option<OnSuccess> {
        let r = v.get_ref();
        let before = self.problems.len();
        self.unknown_keys(&r.unknown, "in on_success", RawOnSuccess::KEYS);
        let mut notify = Vec::new();
        for n in r.notify.iter().flat_map(|l| l.get_ref()) {
            let Some(name) = self.known_name(
                n,
                "notifier",
                catalog.notifier_names(),
                catalog.is_complete(),
            ) else {
                continue;
            };
            if catalog.notifier_pages(&name) {
                self.error(
                    n.span(),
                    format!(
                        "notifier {name:?} opens incidents (pagerduty, alertmanager): a success \
                         message goes to a webhook, slack or email notifier"
                    ),
                );
            } else {
                notify.push(name);
            }
        }
        let mut hooks = Vec::new();
        for h in r.hooks.iter().flat_map(|l| l.get_ref()) {
            if let Some(name) =
                self.known_name(h, "hook", catalog.hook_names(), catalog.is_complete())
            {
                hooks.push(name);
            }
        }
        let message = match &r.message {
            Some(m) => self.text(m),
            None if !notify.is_empty() => {
                self.missing(v.span(), "message", "on_success with notify");
                None
            }
            None => Some(String::new()),
        };
        if notify.is_empty() && hooks.is_empty() && self.problems.len() == before {
            self.error(
                v.span(),
                "on_success needs notify (who gets the message) or hooks (what runs)",
            );
        }
        (self.problems.len() == before).then_some(OnSuccess {
            notify,
            message: message?,
            hooks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse() {
        assert_eq!(
            parse_bound("< 0.01").unwrap(),
            (CmpOp::Lt, Bound::Value(0.01))
        );
        assert_eq!(
            parse_bound("<= 1.2 * baseline.p95").unwrap(),
            (
                CmpOp::Le,
                Bound::Baseline {
                    name: "p95".into(),
                    factor: 1.2
                }
            )
        );
        assert_eq!(
            parse_bound("<= baseline.err * 2").unwrap(),
            (
                CmpOp::Le,
                Bound::Baseline {
                    name: "err".into(),
                    factor: 2.0
                }
            )
        );
        assert!(parse_bound("<= baseline.").is_err());
        assert!(parse_bound("1.2").is_err());
        assert!(parse_bound("< inf").is_err());
    }

    #[test]
    fn templates_fill_known_names_and_escape() {
        let vars: BTreeMap<String, String> = [
            ("version".to_string(), "v2\"x".to_string()),
            ("deploy".to_string(), "d-1".to_string()),
        ]
        .into();
        let t = r#"rate(e{version="$version",d="$deploy"}[5m]) + $other"#;
        assert_eq!(
            fill(t, &vars, true),
            r#"rate(e{version="v2\"x",d="d-1"}[5m]) + $other"#
        );
        assert_eq!(
            fill("deploy $deploy done$", &vars, false),
            "deploy d-1 done$"
        );
        assert_eq!(dummy(r#"up{v="$version"}"#), r#"up{v="x"}"#);
    }
}
