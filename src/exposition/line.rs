//! One line of a body, lexed as Prometheus 2.42's lexers (`promlex.l`, `openmetricslex.l`) lex
//! it, and what it holds: a sample, a `HELP`/`TYPE`/`UNIT`, a comment or nothing.
//!
//! Text 0.0.4 is lenient about blanks: spaces and tabs may stand before the line, between any
//! two tokens, inside the braces and after the last token; the comma between two labels may be
//! left out; a value may follow the metric name or the `}` without a blank at all (`a-1` is `a`
//! with value -1). OpenMetrics is not: one space before the value, the timestamp and the
//! exemplar, none anywhere else, commas between labels, no blank lines, no comments but
//! `HELP`, `TYPE`, `UNIT` and `EOF`.
//!
//! Where this lexer is stricter than Prometheus 2.42, on purpose:
//! - a label value never spans lines (Prometheus' text lexer lets a raw newline into one);
//! - a NUL byte at the start of a line is an error (Prometheus takes it as the end of the body
//!   and silently drops the rest);
//! - a text `HELP`/`TYPE` needs a blank between the metric name and the text (Prometheus drops
//!   whatever one character follows the name, so `# TYPE a-counter` types `a`);
//! - an OpenMetrics escape other than `\\`, `\"`, `\n` in a label value or help text is an
//!   error, as the OpenMetrics spec says (Prometheus keeps the backslash, as it does, and so
//!   does this lexer, in text 0.0.4).

use std::borrow::Cow;

use super::{Format, Limits, Meta, MetricType, SampleLine};
use crate::labels::Labels;

/// What one line holds.
pub(super) enum Line<'a> {
    Blank,
    Comment,
    Meta(Meta<'a>),
    Sample(SampleLine<'a>),
}

/// One line of text 0.0.4 (its newline removed).
pub(super) fn text<'a>(line: &'a str, limits: &Limits) -> Result<Line<'a>, String> {
    let mut c = Cursor::new(line);
    c.skip_blanks();
    match c.peek() {
        None => return Ok(Line::Blank),
        Some(b'#') => return text_comment(c),
        Some(_) => {}
    }
    let Some(name) = c.metric_name() else {
        return Err(format!(
            "expected a metric name or a comment, got {}",
            got(c.rest())
        ));
    };
    c.skip_blanks();
    let mut labels = Labels::new();
    if c.eat(b'{') {
        label_set(&mut c, Format::Text004, limits, &mut labels)?;
        c.skip_blanks();
    }
    let token = c.take_while(|b| !matches!(b, b'{' | b' ' | b'\t'));
    if token.is_empty() {
        return Err(format!(
            "expected a value after metric {name}, got {}",
            got(c.rest())
        ));
    }
    let value = float(token)?;
    c.skip_blanks();
    let mut timestamp_ms = None;
    if !c.at_end() {
        let digits = c.take_while(|b| b.is_ascii_digit());
        if digits.is_empty() {
            return Err(format!(
                "expected a timestamp (integer milliseconds) or the end of the line, got {}",
                got(c.rest())
            ));
        }
        let ms = digits
            .parse::<i64>()
            .map_err(|_| format!("timestamp {} out of range", show(digits)))?;
        c.skip_blanks();
        if !c.at_end() {
            return Err(format!(
                "expected the end of the line after the timestamp, got {}",
                got(c.rest())
            ));
        }
        timestamp_ms = Some(ms);
    }
    Ok(Line::Sample(SampleLine {
        name,
        labels,
        value,
        timestamp_ms,
    }))
}

/// A text 0.0.4 line starting (after blanks) with `#`: `# HELP`, `# TYPE` or a comment.
fn text_comment(mut c: Cursor<'_>) -> Result<Line<'_>, String> {
    c.i += 1;
    if c.skip_blanks() == 0 {
        return Ok(Line::Comment);
    }
    let keyword = if c.eat_str("HELP") {
        "HELP"
    } else if c.eat_str("TYPE") {
        "TYPE"
    } else {
        return Ok(Line::Comment);
    };
    // `# HELP` alone or `# HELPER ...` is a comment, as in Prometheus.
    if c.skip_blanks() == 0 {
        return Ok(Line::Comment);
    }
    let Some(name) = c.metric_name() else {
        return Err(format!(
            "expected a metric name after {keyword}, got {}",
            got(c.rest())
        ));
    };
    // The text is the rest of the line after one blank, further blanks kept.
    let text = match c.peek() {
        None => "",
        Some(b' ' | b'\t') => &c.rest()[1..],
        Some(_) => {
            return Err(format!(
                "expected a blank after metric name {name} in {keyword}, got {}",
                got(c.rest())
            ))
        }
    };
    if keyword == "HELP" {
        return Ok(Line::Meta(Meta::Help(
            name,
            unescape_help(text, Format::Text004)?,
        )));
    }
    match MetricType::from_word(text, Format::Text004) {
        Some(kind) => Ok(Line::Meta(Meta::Type(name, kind))),
        None => Err(format!(
            "invalid metric type {} for {name} (counter, gauge, histogram, summary or untyped)",
            show(text)
        )),
    }
}

/// One OpenMetrics line (its newline removed), `# EOF` excepted: the caller handles that.
pub(super) fn open_metrics<'a>(line: &'a str, limits: &Limits) -> Result<Line<'a>, String> {
    let mut c = Cursor::new(line);
    match c.peek() {
        None => return Err("empty line (OpenMetrics allows none)".into()),
        Some(b'#') => return open_metrics_comment(c),
        Some(_) => {}
    }
    let Some(name) = c.metric_name() else {
        return Err(format!("expected a metric name, got {}", got(c.rest())));
    };
    let mut labels = Labels::new();
    if c.eat(b'{') {
        label_set(&mut c, Format::OpenMetrics, limits, &mut labels)?;
    }
    if !c.eat(b' ') {
        return Err(format!(
            "expected one space and a value after metric {name}, got {}",
            got(c.rest())
        ));
    }
    let value = float(c.take_while(|b| b != b' '))?;
    let mut timestamp_ms = None;
    let mut exemplar_follows = false;
    if c.eat(b' ') {
        exemplar_follows = c.eat_str("# {");
        if !exemplar_follows {
            timestamp_ms = Some(open_metrics_timestamp(c.take_while(|b| b != b' '))?);
            if c.eat(b' ') {
                exemplar_follows = c.eat_str("# {");
                if !exemplar_follows {
                    return Err(format!(
                        "expected an exemplar or the end of the line after the timestamp, got {}",
                        got(c.rest())
                    ));
                }
            }
        }
    }
    if exemplar_follows {
        exemplar(&mut c, limits)?;
    }
    if !c.at_end() {
        return Err(format!(
            "expected the end of the line, got {}",
            got(c.rest())
        ));
    }
    Ok(Line::Sample(SampleLine {
        name,
        labels,
        value,
        timestamp_ms,
    }))
}

/// An exemplar after ` # {`: its labels, value and optional timestamp, checked and dropped.
fn exemplar(c: &mut Cursor<'_>, limits: &Limits) -> Result<(), String> {
    let mut labels = Labels::new();
    label_set(c, Format::OpenMetrics, limits, &mut labels).map_err(|e| format!("exemplar: {e}"))?;
    if !c.eat(b' ') {
        return Err(format!(
            "expected one space and a value after the exemplar's labels, got {}",
            got(c.rest())
        ));
    }
    float(c.take_while(|b| b != b' ')).map_err(|e| format!("exemplar: {e}"))?;
    if c.eat(b' ') {
        open_metrics_timestamp(c.take_while(|b| b != b' '))
            .map_err(|e| format!("exemplar: {e}"))?;
    }
    Ok(())
}

/// An OpenMetrics line starting with `#`: `# HELP`, `# TYPE` or `# UNIT`.
fn open_metrics_comment(mut c: Cursor<'_>) -> Result<Line<'_>, String> {
    let keyword = if c.eat_str("# HELP ") {
        "HELP"
    } else if c.eat_str("# TYPE ") {
        "TYPE"
    } else if c.eat_str("# UNIT ") {
        "UNIT"
    } else if c.rest().starts_with("# EOF") {
        return Err("unexpected data after # EOF".into());
    } else {
        return Err(format!(
            "invalid comment {} (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF)",
            show(c.rest())
        ));
    };
    let Some(name) = c.metric_name() else {
        return Err(format!(
            "expected a metric name after {keyword}, got {}",
            got(c.rest())
        ));
    };
    if !c.eat(b' ') {
        return Err(format!(
            "expected one space and text after metric name {name} in {keyword}, got {}",
            got(c.rest())
        ));
    }
    let text = c.rest();
    match keyword {
        "HELP" => Ok(Line::Meta(Meta::Help(
            name,
            unescape_help(text, Format::OpenMetrics)?,
        ))),
        "TYPE" => match MetricType::from_word(text, Format::OpenMetrics) {
            Some(kind) => Ok(Line::Meta(Meta::Type(name, kind))),
            None => Err(format!(
                "invalid metric type {} for {name} (counter, gauge, histogram, gaugehistogram, \
                 summary, info, stateset or unknown)",
                show(text)
            )),
        },
        _ => {
            let suffix_ok = text.is_empty()
                || (name.len() > text.len()
                    && name.ends_with(text)
                    && name.as_bytes()[name.len() - text.len() - 1] == b'_');
            if suffix_ok {
                Ok(Line::Meta(Meta::Unit))
            } else {
                Err(format!(
                    "unit {} is not a suffix of metric {name}",
                    show(text)
                ))
            }
        }
    }
}

/// The labels after `{`, up to and including `}`, into `labels`.
fn label_set(
    c: &mut Cursor<'_>,
    format: Format,
    limits: &Limits,
    labels: &mut Labels,
) -> Result<(), String> {
    let text = format == Format::Text004;
    loop {
        if text {
            c.skip_blanks();
        }
        if c.eat(b'}') {
            return Ok(());
        }
        let Some(name) = c.label_name() else {
            return Err(format!(
                "expected a label name or '}}', got {}",
                got(c.rest())
            ));
        };
        if text {
            c.skip_blanks();
        }
        if !c.eat(b'=') {
            return Err(format!(
                "expected '=' after label name {name}, got {}",
                got(c.rest())
            ));
        }
        if text {
            c.skip_blanks();
        }
        if !c.eat(b'"') {
            return Err(format!(
                "expected a quoted value for label {name}, got {}",
                got(c.rest())
            ));
        }
        let value = c
            .quoted(format)
            .map_err(|e| format!("{e} in the value of label {name}"))?;
        if name.len() > limits.max_label_name_len {
            return Err(format!(
                "label_name_length_limit {} exceeded by label {} ({} bytes)",
                limits.max_label_name_len,
                show(name),
                name.len()
            ));
        }
        if value.len() > limits.max_label_value_len {
            return Err(format!(
                "label_value_length_limit {} exceeded by the value of label {name} ({} bytes)",
                limits.max_label_value_len,
                value.len()
            ));
        }
        if name == "__name__" {
            return Err(
                "label __name__ is reserved: the metric name goes before the braces".into(),
            );
        }
        if labels.contains_key(name) {
            return Err(format!("duplicate label name {name}"));
        }
        if labels.len() >= limits.max_labels {
            return Err(format!("label_limit {} exceeded", limits.max_labels));
        }
        labels.insert(name.to_string(), value.into_owned());
        if text {
            c.skip_blanks();
            c.eat(b',');
        } else if !c.eat(b',') && c.peek() != Some(b'}') {
            return Err(format!(
                "expected ',' or '}}' after the value of label {name}, got {}",
                got(c.rest())
            ));
        }
    }
}

/// An OpenMetrics timestamp: seconds as a float, to whole milliseconds (truncated, as
/// Prometheus does).
fn open_metrics_timestamp(token: &str) -> Result<i64, String> {
    if token.is_empty() {
        return Err("expected a timestamp, got nothing".into());
    }
    let seconds = float(token)?;
    if !seconds.is_finite() {
        return Err(format!("invalid timestamp {}", show(token)));
    }
    let ms = seconds * 1000.0;
    // i64::MAX is not an f64; 2^63 is the first value past it.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&ms) {
        return Err(format!("timestamp {} out of range", show(token)));
    }
    Ok(ms as i64)
}

/// A sample value, by Prometheus' rules (Go's `strconv.ParseFloat` without hex floats and
/// `_`): decimal floats and integers with an optional sign and exponent, `Inf`/`Infinity` with
/// an optional sign and `NaN` without one, in any case. A finite number too large for an f64
/// is an error, as in Go.
pub(super) fn float(token: &str) -> Result<f64, String> {
    let bytes = token.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        // Fast path: at most 15 digits are exact in an f64.
        let n = bytes.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        return Ok(n as f64);
    }
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    let invalid = || {
        if token.is_empty() {
            "expected a value, got nothing".to_string()
        } else {
            format!("invalid value {}", show(token))
        }
    };
    match unsigned.as_bytes().first() {
        Some(b'i' | b'I') => {
            if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
                Ok(if token.starts_with('-') {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                })
            } else {
                Err(invalid())
            }
        }
        Some(b'n' | b'N') if unsigned.len() == token.len() => {
            if unsigned.eq_ignore_ascii_case("nan") {
                Ok(f64::NAN)
            } else {
                Err(invalid())
            }
        }
        _ => {
            let decimal = unsigned
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
            let value: f64 = if decimal {
                token.parse().map_err(|_| invalid())?
            } else {
                return Err(invalid());
            };
            if value.is_infinite() {
                return Err(format!("value {} out of range", show(token)));
            }
            Ok(value)
        }
    }
}

/// Help text, unescaped: `\\` and `\n` in text 0.0.4 (any other backslash kept, as
/// Prometheus does); `\\`, `\"` and `\n` in OpenMetrics, any other escape an error.
fn unescape_help(text: &str, format: Format) -> Result<String, String> {
    if !text.contains('\\') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        let rest = chars.as_str();
        match (rest.chars().next(), format) {
            (Some('\\'), _) => out.push('\\'),
            (Some('n'), _) => out.push('\n'),
            (Some('"'), Format::OpenMetrics) => out.push('"'),
            (Some(other), Format::OpenMetrics) => {
                return Err(format!("invalid escape \\{other} in help text"))
            }
            (None, Format::OpenMetrics) => return Err("help text ends in a lone backslash".into()),
            (_, Format::Text004) => {
                out.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Ok(out)
}

/// `token` quoted, cut to a readable length.
fn show(token: &str) -> String {
    const MAX: usize = 40;
    if token.len() <= MAX {
        return format!("{token:?}");
    }
    let mut end = MAX;
    while !token.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}...", &token[..end])
}

/// What was found instead of what was expected.
fn got(rest: &str) -> String {
    if rest.is_empty() {
        "the end of the line".into()
    } else {
        show(rest)
    }
}

const METRIC_START: u8 = 1;
const METRIC_CHAR: u8 = 2;
const LABEL_START: u8 = 4;
const LABEL_CHAR: u8 = 8;

/// Character classes of names: metric names `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let alpha = c.is_ascii_alphabetic() || c == b'_';
        let mut class = 0;
        if alpha || c == b':' {
            class |= METRIC_START | METRIC_CHAR;
        }
        if c.is_ascii_digit() {
            class |= METRIC_CHAR | LABEL_CHAR;
        }
        if alpha {
            class |= LABEL_START | LABEL_CHAR;
        }
        table[b] = class;
        b += 1;
    }
    table
};

/// A position in one line. It only ever stops on ASCII bytes or after a whole run of
/// non-ASCII ones, so every slice it takes is on a character boundary.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor { s, i: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.i += 1;
        }
        found
    }

    fn eat_str(&mut self, prefix: &str) -> bool {
        let found = self.rest().starts_with(prefix);
        if found {
            self.i += prefix.len();
        }
        found
    }

    /// Skips spaces and tabs; how many.
    fn skip_blanks(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    /// The run of bytes from here for which `keep` holds. `keep` must hold for every
    /// non-ASCII byte or for none, so the run ends on a character boundary.
    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let bytes = self.s.as_bytes();
        let start = self.i;
        let mut i = start;
        while i < bytes.len() && keep(bytes[i]) {
            i += 1;
        }
        self.i = i;
        &self.s[start..i]
    }

    fn name(&mut self, start_class: u8, char_class: u8) -> Option<&'a str> {
        let bytes = self.s.as_bytes();
        let start = self.i;
        if CLASS[usize::from(*bytes.get(start)?)] & start_class == 0 {
            return None;
        }
        let mut i = start + 1;
        while i < bytes.len() && CLASS[usize::from(bytes[i])] & char_class != 0 {
            i += 1;
        }
        self.i = i;
        Some(&self.s[start..i])
    }

    fn metric_name(&mut self) -> Option<&'a str> {
        self.name(METRIC_START, METRIC_CHAR)
    }

    fn label_name(&mut self) -> Option<&'a str> {
        self.name(LABEL_START, LABEL_CHAR)
    }

    /// A quoted label value after its opening `"`, up to and including the closing one,
    /// unescaped: `\\`, `\"` and `\n`; any other escape is kept as written in text 0.0.4
    /// and an error in OpenMetrics. Borrowed when it holds no escape.
    fn quoted(&mut self, format: Format) -> Result<Cow<'a, str>, String> {
        let bytes = self.s.as_bytes();
        let start = self.i;
        let unterminated = || "missing closing quote".to_string();
        let mut k =
            start + memchr::memchr2(b'"', b'\\', &bytes[start..]).ok_or_else(unterminated)?;
        if bytes[k] == b'"' {
            self.i = k + 1;
            return Ok(Cow::Borrowed(&self.s[start..k]));
        }
        let mut out = String::with_capacity(k - start + 16);
        let mut segment = start;
        loop {
            out.push_str(&self.s[segment..k]);
            if bytes[k] == b'"' {
                self.i = k + 1;
                return Ok(Cow::Owned(out));
            }
            segment = k + 2;
            match bytes.get(k + 1) {
                None => return Err(unterminated()),
                Some(b'\\') => out.push('\\'),
                Some(b'"') => out.push('"'),
                Some(b'n') => out.push('\n'),
                Some(_) if format == Format::Text004 => {
                    out.push('\\');
                    segment = k + 1;
                }
                Some(_) => {
                    let escaped = self.s[k + 1..].chars().next().unwrap_or(' ');
                    return Err(format!("invalid escape \\{escaped}"));
                }
            }
            k = segment
                + memchr::memchr2(b'"', b'\\', &bytes[segment..]).ok_or_else(unterminated)?;
        }
    }
}
