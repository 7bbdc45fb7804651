//! Label matchers as Alertmanager writes them: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"`, over an alert's label set.
//!
//! Silences, maintenance windows and inhibition rules select alerts with these. Semantics are
//! Alertmanager's: a regex is anchored at both ends (`=~"api.*"` is `^(?:api.*)$`), and a
//! label the alert does not have reads as the empty string (so `team!="db"` matches an alert
//! without `team`, and `team=""` matches only those). A leaf: no I/O, no clock; imports only
//! `labels`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::labels::Labels;

/// The longest matcher text accepted (a silence's matchers come from the API).
pub const MAX_MATCHER_LEN: usize = 4096;
/// The most memory one compiled regex may take.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Regex,
    /// `!~`
    NotRegex,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Equal => "=",
            Op::NotEqual => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
        }
    }
}

/// One matcher. Compares (and serializes) as its text, `name="value"`.
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: Op,
    pub value: String,
    /// The anchored regex of `=~` and `!~`.
    re: Option<regex::Regex>,
}

impl Matcher {
    pub fn new(name: &str, op: Op, value: &str) -> Result<Matcher, String> {
        if !is_label_name(name) {
            return Err(format!(
                "invalid label name {name:?}: use letters, digits and _, not starting with a digit"
            ));
        }
        let re = match op {
            Op::Regex | Op::NotRegex => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| {
                        // The regex crate's message draws the pattern over three lines; a
                        // diagnostic is one line: keep its last (the reason).
                        let text = e.to_string();
                        let why = text
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim_start_matches("error: ");
                        format!("invalid regex {value:?}: {why}")
                    })?,
            ),
            Op::Equal | Op::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            re,
        })
    }

    /// Parses `name="value"` (also `name=value` unquoted, as `amtool` takes it; a quoted
    /// value takes the escapes `\"`, `\\` and `\n`).
    pub fn parse(text: &str) -> Result<Matcher, String> {
        if text.len() > MAX_MATCHER_LEN {
            return Err(format!(
                "a matcher is at most {MAX_MATCHER_LEN} bytes, got {}",
                text.len()
            ));
        }
        let s = text.trim();
        let at = s.find(['=', '!']).ok_or_else(|| {
            format!("{text:?} is not a matcher: expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\"")
        })?;
        let name = s[..at].trim();
        let rest = &s[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (Op::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (Op::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (Op::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (Op::Equal, v)
        } else {
            return Err(format!(
                "{text:?} is not a matcher: the operator is one of = != =~ !~"
            ));
        };
        let value = unquote(value.trim()).map_err(|e| format!("{text:?}: {e}"))?;
        Matcher::new(name, op, &value).map_err(|e| format!("{text:?}: {e}"))
    }

    /// Whether the label set matches (a missing label reads as `""`).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        match (&self.op, &self.re) {
            (Op::Equal, _) => v == self.value,
            (Op::NotEqual, _) => v != self.value,
            (Op::Regex, Some(re)) => re.is_match(v),
            (Op::NotRegex, Some(re)) => !re.is_match(v),
            (Op::Regex | Op::NotRegex, None) => false,
        }
    }

    /// Whether it matches an alert without the label: such a matcher alone would select
    /// (nearly) every alert, which Alertmanager refuses for a silence.
    pub fn matches_empty(&self) -> bool {
        self.matches(&Labels::new())
    }
}

/// Whether every matcher matches (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.name, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Matcher::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Prometheus' label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        if v.contains(['"', '\\']) {
            return Err("an unquoted value cannot hold \" or \\".into());
        }
        return Ok(v.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err("the value's closing quote is missing".into());
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => {
                    return Err(format!(
                        "unknown escape \\{} in the value",
                        other.map(String::from).unwrap_or_default()
                    ))
                }
            },
            '"' => return Err("a \" inside the value must be escaped as \\\"".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_match_as_alertmanager_does() {
        let l = labels(&[("rule", "api_p95"), ("severity", "critical")]);
        let m = |s: &str| Matcher::parse(s).unwrap().matches(&l);
        assert!(m(r#"rule="api_p95""#));
        assert!(!m(r#"rule="api""#));
        assert!(m(r#"rule!="api""#));
        assert!(!m(r#"rule!="api_p95""#));
        // Anchored at both ends.
        assert!(m(r#"rule=~"api.*""#));
        assert!(!m(r#"rule=~"api""#));
        assert!(!m(r#"rule=~"p95""#));
        assert!(m(r#"rule!~"db.*""#));
        assert!(!m(r#"severity!~"crit.*""#));
        // A missing label is the empty string.
        assert!(m(r#"team!="db""#));
        assert!(m(r#"team="""#));
        assert!(m(r#"team=~"|x""#));
        assert!(!m(r#"team=~".+""#));
        // Unquoted, with blanks, as amtool takes them.
        assert!(m("rule = api_p95"));
        assert!(m("severity=~crit.*"));
    }

    #[test]
    fn text_round_trips_with_escapes() {
        let m = Matcher::parse(r#"msg="say \"hi\"\\now""#).unwrap();
        assert_eq!(m.value, "say \"hi\"\\now");
        assert_eq!(m.to_string(), r#"msg="say \"hi\"\\now""#);
        assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
        let json = serde_json::to_string(&m).unwrap();
        let back: Matcher = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn bad_matchers_say_why() {
        let err = |s: &str| Matcher::parse(s).unwrap_err();
        assert!(err("rule").contains("not a matcher"), "{}", err("rule"));
        assert!(err(r#"1rule="x""#).contains("invalid label name"));
        assert!(err(r#"rule=~"(""#).contains("invalid regex"));
        assert!(err(r#"rule="x"#).contains("closing quote"));
        assert!(err(r#"rule="a"b""#).contains("escaped"));
        assert!(err(&format!("rule=\"{}\"", "x".repeat(MAX_MATCHER_LEN))).contains("at most"));
    }

    #[test]
    fn matchers_that_match_the_empty_label_are_told_apart() {
        assert!(Matcher::parse(r#"team!="db""#).unwrap().matches_empty());
        assert!(Matcher::parse(r#"x=~".*""#).unwrap().matches_empty());
        assert!(!Matcher::parse(r#"rule="api""#).unwrap().matches_empty());
        assert!(!Matcher::parse(r#"rule=~".+""#).unwrap().matches_empty());
    }
}
