//! The small languages inside config strings: JSON paths (`items[0].status`), JSON assertions
//! (`components.database == "healthy"`) and rule conditions (`> 0.8`).
//!
//! Pure parsers from a string to model types. Errors are full messages that quote the text as
//! written and say what was expected; they never evaluate anything against a body.

use super::model::{CmpOp, Condition, JsonAssertion, JsonPath, PathSegment};

const OPERATORS: &str = "==, !=, <, <=, >, >=";

/// Parses a JSON path: keys separated by `.`, `[N]` indexes, keys quoted with `"` when they
/// hold dots, spaces or brackets: `"a.b".c`, `items[0].ok`, `[2]`.
pub fn parse_path(text: &str) -> Result<JsonPath, String> {
    let invalid = |why: String| format!("invalid JSON path {text:?}: {why}");
    let (segments, end) = path_prefix(text).map_err(invalid)?;
    if end < text.len() {
        return Err(invalid(format!(
            "unexpected {:?} after {:?}",
            &text[end..],
            &text[..end]
        )));
    }
    Ok(JsonPath {
        text: text.to_string(),
        segments,
    })
}

/// Parses `<path> <op> <JSON literal>`. Ordering operators need a number literal.
pub fn parse_assertion(text: &str) -> Result<JsonAssertion, String> {
    let invalid = |why: String| format!("invalid assertion {text:?}: {why}");
    let start = text.len() - text.trim_start().len();
    let (segments, path_end) = path_prefix(&text[start..]).map_err(invalid)?;
    let path_end = start + path_end;
    let path_text = &text[start..path_end];
    let op_start = path_end + (text[path_end..].len() - text[path_end..].trim_start().len());
    let Some((op, op_len)) = operator_prefix(&text[op_start..]) else {
        return Err(invalid(format!(
            "expected an operator ({OPERATORS}) after {path_text:?}"
        )));
    };
    let literal = text[op_start + op_len..].trim();
    let expected = match serde_json::from_str::<serde_json::Value>(literal) {
        Ok(v) if !v.is_array() && !v.is_object() => v,
        _ => {
            return Err(invalid(format!(
                "expected a JSON literal (a double-quoted string, a number, true, false or null) after {:?}",
                op.symbol()
            )))
        }
    };
    let ordering = matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge);
    if ordering && !expected.is_number() {
        return Err(invalid(format!(
            "operator {:?} compares numbers, got {expected}",
            op.symbol()
        )));
    }
    Ok(JsonAssertion {
        text: text.to_string(),
        path: JsonPath {
            text: path_text.to_string(),
            segments,
        },
        op,
        expected,
    })
}

/// Parses a rule condition `<op> <number>`: `> 0.8`, `< 1`, `>= 1e3`, `== -1`.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let invalid = || {
        format!(
            r#"invalid condition {text:?}: expected an operator ({OPERATORS}) and a number, e.g. "> 0.8""#
        )
    };
    let trimmed = text.trim();
    let (op, op_len) = operator_prefix(trimmed).ok_or_else(invalid)?;
    let number = trimmed[op_len..].trim();
    // `f64::from_str` also takes `inf` and `NaN`; a threshold must be an ordinary number.
    let numeric = !number.is_empty()
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'));
    match number.parse::<f64>() {
        Ok(threshold) if numeric && threshold.is_finite() => Ok(Condition { op, threshold }),
        _ => Err(invalid()),
    }
}

/// The operator at the start of `s` and its length in bytes.
fn operator_prefix(s: &str) -> Option<(CmpOp, usize)> {
    const TABLE: [(&str, CmpOp); 6] = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        ("<=", CmpOp::Le),
        (">=", CmpOp::Ge),
        ("<", CmpOp::Lt),
        (">", CmpOp::Gt),
    ];
    TABLE
        .iter()
        .find(|(symbol, _)| s.starts_with(symbol))
        .map(|(symbol, op)| (*op, symbol.len()))
}

/// Characters that end an unquoted key.
fn ends_key(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | '[' | ']' | '"' | '=' | '!' | '<' | '>')
}

/// Reads a path from the start of `s`; returns its segments and the byte offset where it ends.
fn path_prefix(s: &str) -> Result<(Vec<PathSegment>, usize), String> {
    let mut segments = Vec::new();
    let mut pos = 0;
    let mut need_key = !s.starts_with('[');
    loop {
        if need_key {
            let (key, len) = key_at(&s[pos..]).ok_or_else(|| {
                if pos == 0 {
                    r#"expected a JSON path such as "status" or "items[0].ok""#.to_string()
                } else {
                    format!("expected a key after {:?}", &s[..pos])
                }
            })?;
            segments.push(PathSegment::Key(key));
            pos += len;
        }
        let rest = &s[pos..];
        if let Some(after) = rest.strip_prefix('[') {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index = after[..digits].parse::<usize>().ok();
            match (index, after[digits..].starts_with(']')) {
                (Some(index), true) => {
                    segments.push(PathSegment::Index(index));
                    pos += digits + 2;
                    need_key = false;
                }
                _ => {
                    return Err(if pos == 0 {
                        "expected an index like [0]".to_string()
                    } else {
                        format!("expected an index like [0] after {:?}", &s[..pos])
                    })
                }
            }
        } else if rest.starts_with('.') {
            pos += 1;
            need_key = true;
        } else {
            return Ok((segments, pos));
        }
    }
}

/// A key at the start of `s` (quoted or bare) and its length in bytes.
fn key_at(s: &str) -> Option<(String, usize)> {
    if s.starts_with('"') {
        let mut escaped = false;
        for (i, c) in s.char_indices().skip(1) {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    let key = serde_json::from_str::<String>(&s[..=i]).ok()?;
                    return Some((key, i + 1));
                }
                _ => escaped = false,
            }
        }
        None
    } else {
        let len = s.find(ends_key).unwrap_or(s.len());
        (len > 0).then(|| (s[..len].to_string(), len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(k: &str) -> PathSegment {
        PathSegment::Key(k.to_string())
    }

    #[test]
    fn parses_paths() {
        use PathSegment::Index;
        let cases: Vec<(&str, Vec<PathSegment>)> = vec![
            ("status", vec![key("status")]),
            (
                "components.database",
                vec![key("components"), key("database")],
            ),
            ("items[0].ok", vec![key("items"), Index(0), key("ok")]),
            ("a[1][2]", vec![key("a"), Index(1), Index(2)]),
            ("[3].x", vec![Index(3), key("x")]),
            (r#""a.b".c"#, vec![key("a.b"), key("c")]),
            (
                r#"x."with space"[0]"#,
                vec![key("x"), key("with space"), Index(0)],
            ),
            (r#""q\"uote""#, vec![key("q\"uote")]),
            ("snake_case-and:colon", vec![key("snake_case-and:colon")]),
        ];
        for (text, segments) in cases {
            assert_eq!(
                parse_path(text),
                Ok(JsonPath {
                    text: text.to_string(),
                    segments
                }),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn rejects_bad_paths() {
        let cases: &[(&str, &str)] = &[
            (
                "",
                r#"invalid JSON path "": expected a JSON path such as "status" or "items[0].ok""#,
            ),
            (
                "a..b",
                r#"invalid JSON path "a..b": expected a key after "a.""#,
            ),
            ("a.", r#"invalid JSON path "a.": expected a key after "a.""#),
            (
                "a[x]",
                r#"invalid JSON path "a[x]": expected an index like [0] after "a""#,
            ),
            (
                "a[1",
                r#"invalid JSON path "a[1": expected an index like [0] after "a""#,
            ),
            (
                "a b",
                r#"invalid JSON path "a b": unexpected " b" after "a""#,
            ),
            (
                r#""open"#,
                r#"invalid JSON path "\"open": expected a JSON path such as "status" or "items[0].ok""#,
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse_path(text).unwrap_err(), *message, "parsing {text:?}");
        }
    }

    #[test]
    fn parses_assertions() {
        let cases: Vec<(&str, &str, CmpOp, serde_json::Value)> = vec![
            (
                r#"status == "healthy""#,
                "status",
                CmpOp::Eq,
                json!("healthy"),
            ),
            (
                r#"components.database == "healthy""#,
                "components.database",
                CmpOp::Eq,
                json!("healthy"),
            ),
            (
                "model_loaded == true",
                "model_loaded",
                CmpOp::Eq,
                json!(true),
            ),
            ("queue.depth < 100", "queue.depth", CmpOp::Lt, json!(100)),
            (
                "items[0].ok != false",
                "items[0].ok",
                CmpOp::Ne,
                json!(false),
            ),
            ("ratio>=0.5", "ratio", CmpOp::Ge, json!(0.5)),
            ("x <= -1e3", "x", CmpOp::Le, json!(-1e3)),
            ("x > 2", "x", CmpOp::Gt, json!(2)),
            ("error == null", "error", CmpOp::Eq, json!(null)),
            (r#"msg != "a\"b\u00e9""#, "msg", CmpOp::Ne, json!("a\"bé")),
        ];
        for (text, path, op, expected) in cases {
            let a = parse_assertion(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(a.text, text);
            assert_eq!(a.path, parse_path(path).unwrap(), "{text:?}");
            assert_eq!(a.op, op, "{text:?}");
            assert_eq!(a.expected, expected, "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_assertions() {
        let literal =
            "expected a JSON literal (a double-quoted string, a number, true, false or null)";
        let cases: Vec<(&str, String)> = vec![
            (
                "status = healthy",
                format!("expected an operator ({OPERATORS}) after \"status\""),
            ),
            (
                "status",
                format!("expected an operator ({OPERATORS}) after \"status\""),
            ),
            ("status == healthy", format!("{literal} after \"==\"")),
            ("status ==", format!("{literal} after \"==\"")),
            ("a == [1]", format!("{literal} after \"==\"")),
            (
                r#"depth < "5""#,
                r#"operator "<" compares numbers, got "5""#.to_string(),
            ),
            (
                "ok >= true",
                r#"operator ">=" compares numbers, got true"#.to_string(),
            ),
            (
                "== 1",
                r#"expected a JSON path such as "status" or "items[0].ok""#.to_string(),
            ),
            ("a. == 1", r#"expected a key after "a.""#.to_string()),
        ];
        for (text, why) in cases {
            assert_eq!(
                parse_assertion(text).unwrap_err(),
                format!("invalid assertion {text:?}: {why}"),
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn parses_conditions() {
        let cases: &[(&str, CmpOp, f64)] = &[
            ("> 0.8", CmpOp::Gt, 0.8),
            ("< 1", CmpOp::Lt, 1.0),
            (">=1e3", CmpOp::Ge, 1000.0),
            ("== -1", CmpOp::Eq, -1.0),
            ("!= 0", CmpOp::Ne, 0.0),
            ("  <= 2.5  ", CmpOp::Le, 2.5),
        ];
        for (text, op, threshold) in cases {
            assert_eq!(
                parse_condition(text),
                Ok(Condition {
                    op: *op,
                    threshold: *threshold
                }),
                "parsing {text:?}"
            );
        }
        for text in [
            "", "0.8", "> ", "> x", "> 5m", "> inf", "> NaN", "=> 1", "= 1", "> 1 2",
        ] {
            assert_eq!(
                parse_condition(text).unwrap_err(),
                format!(
                    r#"invalid condition {text:?}: expected an operator (==, !=, <, <=, >, >=) and a number, e.g. "> 0.8""#
                ),
                "parsing {text:?}"
            );
        }
    }
}
