//! `${NAME}` interpolation of config strings from the environment.
//!
//! A pure function over a lookup closure: it never reads the process environment itself
//! (the caller passes `std::env::var` or a test table). Error messages name the variable,
//! never a value, so a secret cannot leak through them.

/// Replaces `${NAME}` with the variable's value, `${NAME:-default}` with the value or, when the
/// variable is unset or empty, `default` (taken literally up to the closing `}`), and `$${` with
/// a literal `${`. Every problem in the string is reported (an unset variable without a
/// default, an unterminated or malformed reference).
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(close) = after.find('}') else {
                errors.push(
                    r#"unterminated "${" (write "${NAME}", or "$${" for a literal "${")"#
                        .to_string(),
                );
                rest = "";
                break;
            };
            let reference = &after[..close];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if is_var_name(name) {
                match (env(name), default) {
                    (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                    (Some(value), _) => out.push_str(&value),
                    (None, Some(default)) => out.push_str(default),
                    (None, None) => {
                        errors.push(format!("environment variable {name:?} is not set"))
                    }
                }
            } else {
                errors.push(format!(
                    "invalid environment variable name {name:?}: use letters, digits and _, not starting with a digit"
                ));
            }
            rest = &after[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            "DOLLAR" => Some("${TOKEN}".into()),
            _ => None,
        }
    }

    #[test]
    fn interpolates() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("", ""),
            ("Bearer ${TOKEN}", "Bearer s3cret"),
            ("${TOKEN}${TOKEN}", "s3crets3cret"),
            ("a${EMPTY}b", "ab"),
            ("$${TOKEN}", "${TOKEN}"),
            ("$$${TOKEN}", "$${TOKEN}"), // read left to right: `$`, then `$${`
            ("cost $5 and $", "cost $5 and $"),
            ("$TOKEN", "$TOKEN"),
            ("${DOLLAR}", "${TOKEN}"), // values are not interpolated again
            ("é${TOKEN}é", "és3creté"),
            (
                "${NOPE:-http://127.0.0.1:8080}/health",
                "http://127.0.0.1:8080/health",
            ),
            ("${TOKEN:-fallback}", "s3cret"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${NOPE:-}", ""),
            ("${NOPE:-a:-b}", "a:-b"),
        ];
        for (input, want) in cases {
            assert_eq!(interpolate(input, &env).as_deref(), Ok(*want), "{input:?}");
        }
    }

    #[test]
    fn reports_every_problem() {
        let cases: &[(&str, &[&str])] = &[
            ("${NOPE}", &[r#"environment variable "NOPE" is not set"#]),
            (
                "${A} and ${B}",
                &[
                    r#"environment variable "A" is not set"#,
                    r#"environment variable "B" is not set"#,
                ],
            ),
            (
                "${TOKEN",
                &[r#"unterminated "${" (write "${NAME}", or "$${" for a literal "${")"#],
            ),
            (
                "${1X}",
                &[
                    r#"invalid environment variable name "1X": use letters, digits and _, not starting with a digit"#,
                ],
            ),
            (
                "${1X:-default}",
                &[
                    r#"invalid environment variable name "1X": use letters, digits and _, not starting with a digit"#,
                ],
            ),
            (
                "${}",
                &[
                    r#"invalid environment variable name "": use letters, digits and _, not starting with a digit"#,
                ],
            ),
        ];
        for (input, want) in cases {
            let got = interpolate(input, &env).unwrap_err();
            assert_eq!(
                got,
                want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{input:?}"
            );
        }
    }
}
