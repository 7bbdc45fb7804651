//! Durations as written in configs, in Prometheus' grammar: `30s`, `5m`, `1h30m`, `500ms`, `2w`.
//!
//! Pure string functions: no clock, no I/O. Units are `y` (365d), `w`, `d` (24h), `h`, `m`, `s`
//! and `ms`, each at most once and from largest to smallest; `0` and `0s` are zero.

use std::time::Duration;

const MS_PER_DAY: u64 = 24 * 60 * 60 * 1000;

/// Units from largest to smallest, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * MS_PER_DAY),
    ("w", 7 * MS_PER_DAY),
    ("d", MS_PER_DAY),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

const EXAMPLES: &str = r#"expected e.g. "30s", "5m", "1h30m""#;

/// Parses a Prometheus-style duration. The error message quotes the input and shows examples.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {s:?}: {why}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid(EXAMPLES));
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(EXAMPLES));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large"))?;
        rest = &rest[digits..];
        // `ms` must be tried before `m`.
        let unit = if rest.starts_with("ms") {
            UNITS.len() - 1
        } else {
            match UNITS[..UNITS.len() - 1]
                .iter()
                .position(|(name, _)| rest.starts_with(name))
            {
                Some(unit) => unit,
                None => return Err(invalid(EXAMPLES)),
            }
        };
        if previous_unit.is_some_and(|previous| unit <= previous) {
            return Err(invalid(
                r#"units must go from largest to smallest, each at most once, e.g. "1h30m""#,
            ));
        }
        previous_unit = Some(unit);
        let (name, ms) = UNITS[unit];
        total = number
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| invalid("too large"))?;
        rest = &rest[name.len()..];
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it, to the millisecond:
/// `1m30s`, `500ms`, `0s`. Sub-millisecond parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        let n = ms / unit_ms;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            ms -= n * unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_durations() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("0s", 0),
            ("0ms", 0),
            ("500ms", 500),
            ("30s", 30_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("1m30s", 90_000),
            ("1d", 86_400_000),
            ("2w", 14 * 86_400_000),
            ("1y", 365 * 86_400_000),
            ("1h1m1s1ms", 3_661_001),
            ("90s", 90_000),
            (
                "1y2w3d4h5m6s7ms",
                ((365 + 14 + 3) * 86_400 + 4 * 3600 + 5 * 60 + 6) * 1000 + 7,
            ),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*ms)),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn rejects_invalid_durations() {
        let order = r#"units must go from largest to smallest, each at most once, e.g. "1h30m""#;
        let cases: &[(&str, &str)] = &[
            ("", EXAMPLES),
            ("5 minutes", EXAMPLES),
            ("30", EXAMPLES),
            ("s", EXAMPLES),
            ("1.5s", EXAMPLES),
            ("-1s", EXAMPLES),
            (" 1s", EXAMPLES),
            ("1s ", EXAMPLES),
            ("1x", EXAMPLES),
            ("30s1m", order),
            ("1m1m", order),
            ("1ms1s", order),
            ("99999999999999999999s", "number too large"),
            ("999999999999y", "too large"),
        ];
        for (text, why) in cases {
            assert_eq!(
                parse_duration(text),
                Err(format!("invalid duration {text:?}: {why}")),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn formats_durations() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (500, "500ms"),
            (1_000, "1s"),
            (90_000, "1m30s"),
            (3_600_000, "1h"),
            (86_400_000, "1d"),
            (7 * 86_400_000, "1w"),
            (3_661_001, "1h1m1s1ms"),
        ];
        for (ms, text) in cases {
            let d = Duration::from_millis(*ms);
            assert_eq!(format_duration(d), *text);
            assert_eq!(parse_duration(text), Ok(d), "round trip of {text:?}");
        }
        assert_eq!(format_duration(Duration::from_micros(1_500)), "1ms");
    }
}
