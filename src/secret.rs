//! A value that must never be printed: passwords, tokens, URLs with credentials.
//!
//! `Debug` and `Display` print `<secret>`; the value is reached only through
//! [`Secret::expose`], at the one place that hands it to a client library. [`Redactor`]
//! removes secret values from text that came from elsewhere (a receiver's error body, a hook's
//! or a plugin's output) before it is stored, logged or sent.

use std::fmt;
use std::sync::Arc;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Call only where it is handed to a client, never to log or format.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// What [`Redactor`] puts where a secret was.
pub const REDACTED: &str = "<secret>";

/// Replaces secret values in text with [`REDACTED`]: every whole occurrence, and, where the
/// text was cut short, a tail that begins a secret (the rest of it may be what was cut off).
///
/// Redact first, then shorten: cutting first can split a secret so that no whole occurrence is
/// left to find, and its first half gets out. Values shorter than [`Redactor::MIN_LEN`] bytes
/// are not redacted (scrubbing a `"2"` would mangle every message holding the digit 2; such
/// values are not credentials anyone should use).
#[derive(Clone, Default)]
pub struct Redactor(Arc<[String]>);

impl Redactor {
    pub const MIN_LEN: usize = 4;

    pub fn new(secrets: impl IntoIterator<Item = String>) -> Redactor {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= Self::MIN_LEN)
            .collect();
        // Longest first, so a URL is replaced whole before its path is.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor(secrets.into())
    }

    /// `text` with every whole secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.0.iter() {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        text
    }

    /// [`Redactor::redact`] for text that was cut short at its end: a tail that is the
    /// beginning of a secret is replaced too.
    pub fn redact_cut(&self, text: &str) -> String {
        let mut text = self.redact(text);
        let longest_tail = self
            .0
            .iter()
            .filter_map(|secret| {
                (1..secret.len())
                    .rev()
                    .filter(|&k| secret.is_char_boundary(k))
                    .find(|&k| text.ends_with(&secret[..k]))
            })
            .max();
        if let Some(k) = longest_tail {
            text.truncate(text.len() - k);
            text.push_str(REDACTED);
        }
        text
    }

    /// True when there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A redactor of these secrets and `more`.
    pub fn with(&self, more: impl IntoIterator<Item = String>) -> Redactor {
        Redactor::new(self.0.iter().cloned().chain(more))
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.0.len())
    }
}

/// The first `max` bytes (at most) of redacted text, cut on a char boundary and never inside a
/// [`REDACTED`] marker (a half marker would read like text).
pub fn shorten_redacted(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let from = end.saturating_sub(REDACTED.len() - 1);
    let from = (from..=end)
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(end);
    if let Some(at) = text[from..].find(REDACTED) {
        if from + at < end {
            end = from + at;
        }
    }
    &text[..end]
}

/// Replaces the password (and a bare username) of a URL with `<secret>` so it can be logged.
/// `redis://:pw@host:6379/0` becomes `redis://<secret>@host:6379/0`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://<secret>@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
        assert_eq!(s.expose(), "hunter2");
    }

    /// Issue 12: a secret straddling a cut must not show its first half.
    #[test]
    fn redaction_comes_before_the_cut_and_covers_a_secret_cut_in_half() {
        let r = Redactor::new(["s3cr3t-T0KEN".to_string(), "ab".to_string()]);
        // Whole occurrences; short values are left alone.
        assert_eq!(r.redact("key=s3cr3t-T0KEN ab"), "key=<secret> ab");
        // A body cut (by a read bound) inside the secret: its beginning is redacted.
        assert_eq!(r.redact_cut("key=s3cr3t-T0"), "key=<secret>");
        assert_eq!(r.redact_cut("key=s"), "key=<secret>");
        assert_eq!(r.redact_cut("key=x"), "key=x");
        assert_eq!(r.redact_cut("s3cr3t-T0KEN s3c"), "<secret> <secret>");
        // Redact, then shorten: the cut never falls inside the marker.
        let text = format!("{}s3cr3t-T0KEN tail", "x".repeat(10));
        let redacted = r.redact(&text);
        for max in 0..redacted.len() + 2 {
            let short = shorten_redacted(&redacted, max);
            assert!(short.len() <= max, "{max}: {short}");
            assert!(!short.contains("s3c"), "{max}: {short}");
            assert!(
                short.len() <= 10 || short.len() >= 18,
                "{max}: a half marker in {short:?}"
            );
        }
        assert_eq!(shorten_redacted(&redacted, 14), "x".repeat(10));
        assert_eq!(
            shorten_redacted(&redacted, 18),
            format!("{}<secret>", "x".repeat(10))
        );
        assert_eq!(shorten_redacted("héllo", 2), "h");
        assert_eq!(format!("{r:?}"), "Redactor(1 secrets)");
    }

    #[test]
    fn redacts_credentials_in_urls() {
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://<secret>@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://u:p@h/db?x=@"),
            "postgres://<secret>@h/db?x=@"
        );
        assert_eq!(redact_url("http://h/p@x"), "http://h/p@x");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
