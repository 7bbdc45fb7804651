//! `warden watch URL`: the quick start without a config file.
//!
//! It writes the config a newcomer would have written for one URL (an `http` check and a rule
//! that is critical while the URL does not answer with a 2xx), so `watch` runs through the
//! same compile step as any config and `--print-config` shows the file to start from. This
//! module only builds text and lines to print; `app::watch` runs the loop, `main` prints.

use std::time::Duration;

use crate::config::{format_duration, parse_duration};
use crate::engine::RuleTransition;

/// What `warden watch` was asked to watch, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchSpec {
    pub url: String,
    /// The check's name: the URL's host, made a valid name.
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
}

impl WatchSpec {
    /// Validates the command line: an http(s) URL, durations in warden's grammar. Without a
    /// timeout, it is 5 s or the interval, whichever is shorter (a probe never overlaps the
    /// next one).
    pub fn new(url: &str, interval: &str, timeout: Option<&str>) -> Result<WatchSpec, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "invalid URL {url:?}: warden watch probes http:// or https:// URLs"
            ));
        }
        let interval = parse_duration(interval)
            .map_err(|e| format!("invalid --interval {interval:?}: {e}"))?;
        if interval < Duration::from_millis(100) {
            return Err(format!(
                "--interval must be at least 100ms, got {:?}",
                format_duration(interval)
            ));
        }
        let timeout = match timeout {
            Some(t) => parse_duration(t).map_err(|e| format!("invalid --timeout {t:?}: {e}"))?,
            None => interval.min(Duration::from_secs(5)),
        };
        if timeout.is_zero() || timeout > interval {
            return Err(format!(
                "--timeout must be more than 0 and at most --interval ({}), got {:?}",
                format_duration(interval),
                format_duration(timeout)
            ));
        }
        let host = parsed.host_str().unwrap_or("target");
        let name: String = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let name = if name.trim_matches('-').is_empty() {
            "target".to_string()
        } else {
            name
        };
        Ok(WatchSpec {
            // As parsed: no whitespace or line break survives into the config text.
            url: parsed.as_str().to_string(),
            name,
            interval,
            timeout,
        })
    }

    /// The rule whose state `watch` prints.
    pub fn rule_name(&self) -> String {
        format!("{}-down", self.name)
    }

    /// The config file `watch` runs: paste it into a file and `warden run -c` it.
    pub fn config_text(&self) -> String {
        // Quoted for TOML, and `${` written `$${` so that nothing in the URL is taken from the
        // environment when the config is loaded.
        let quote = |s: &str| toml::Value::String(s.replace("${", "$${")).to_string();
        format!(
            r#"# What `warden watch {url} --interval {interval}` runs, as a config file.
# Save it (e.g. as my-app.toml), then: warden run -c my-app.toml
# Add more [[check]]s and [[rule]]s, or routes to Slack and PagerDuty: see README.

[[check]]
name = {name}
kind = "http"
url = {url_q}
interval = "{interval}"
timeout = "{timeout}"

[[rule]]
name = {rule}
check = {name}
description = {description}
critical = {{ when = "< 1" }}
"#,
            url = self.url,
            url_q = quote(&self.url),
            name = quote(&self.name),
            rule = quote(&self.rule_name()),
            interval = format_duration(self.interval),
            timeout = format_duration(self.timeout),
            description = quote(&format!("{} does not answer with a 2xx", self.url)),
        )
    }
}

/// One line of `watch` output for a rule's state change: when, what, from and to, the value
/// and, when the probe failed, why.
pub fn change_line(t: &RuleTransition, at: &str, error: Option<&str>) -> String {
    let tr = &t.transition;
    let mut line = format!(
        "{at}  {}  {} -> {}",
        t.check,
        tr.from.as_str(),
        tr.to.as_str()
    );
    if let Some(e) = error {
        line.push_str(&format!("  ({e})"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_validates_the_command_line() {
        let s = WatchSpec::new("https://my-app.example:8443/health", "10s", None).unwrap();
        assert_eq!(s.name, "my-app.example");
        assert_eq!(s.timeout, Duration::from_secs(5));
        let s = WatchSpec::new("http://127.0.0.1:8080/h", "2s", None).unwrap();
        assert_eq!(
            (s.name.as_str(), s.timeout),
            ("127.0.0.1", Duration::from_secs(2))
        );
        let s = WatchSpec::new("http://[::1]:8080/h", "2s", Some("1s")).unwrap();
        assert_eq!(s.name, "::1");
        for (url, interval, timeout, error) in [
            (
                "my-app/health",
                "10s",
                None,
                "invalid URL \"my-app/health\": relative URL without a base",
            ),
            (
                "ftp://x/",
                "10s",
                None,
                "invalid URL \"ftp://x/\": warden watch probes http:// or https:// URLs",
            ),
            ("http://x/", "ten", None, "invalid --interval \"ten\""),
            (
                "http://x/",
                "10ms",
                None,
                "--interval must be at least 100ms, got \"10ms\"",
            ),
            (
                "http://x/",
                "1s",
                Some("2s"),
                "--timeout must be more than 0 and at most --interval (1s), got \"2s\"",
            ),
        ] {
            let got = WatchSpec::new(url, interval, timeout).unwrap_err();
            assert!(got.starts_with(error), "{got}");
        }
    }

    #[test]
    fn config_text_quotes_what_it_is_given() {
        let s = WatchSpec::new("http://127.0.0.1:1/a\"b?x=1", "1s", None).unwrap();
        let text = s.config_text();
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert_eq!(parsed["check"][0]["url"].as_str(), Some(s.url.as_str()));
        assert_eq!(parsed["rule"][0]["check"].as_str(), Some("127.0.0.1"));

        // A line break cannot carry a section into the file, and `${` is no interpolation.
        let s = WatchSpec::new(
            "http://127.0.0.1:1/h?x=${HOME}\n[server]\nlisten = \"0.0.0.0:1\"",
            "1s",
            None,
        )
        .unwrap();
        let text = s.config_text();
        assert!(!text.contains("\n[server]"), "{text}");
        let parsed: toml::Value = toml::from_str(&text).expect("valid TOML");
        assert!(parsed.get("server").is_none(), "{text}");
        let url = parsed["check"][0]["url"].as_str().unwrap();
        assert!(url.contains("$${HOME}"), "{url}");
    }
}
