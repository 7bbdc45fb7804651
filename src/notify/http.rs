//! The HTTP side every HTTP notifier shares: one client setup (connect and total timeouts,
//! no redirects) and one classification of what came back.
//!
//! | outcome | delivery |
//! |---|---|
//! | 2xx | `Ok` (the caller may look closer: Slack wants the body `ok`) |
//! | 429 | `Retryable`, `retry_after` from `Retry-After` (seconds or HTTP-date) |
//! | 408, 5xx | `Retryable` (`Retry-After` honoured when given) |
//! | connect error, timeout, broken response | `Retryable` |
//! | 3xx | `Permanent`: redirects are not followed, fix the URL |
//! | other 4xx | `Permanent`, with the status and the body's first 200 bytes |
//!
//! A body is quoted only after the notifier's secrets are redacted from it, and is shortened
//! after that (a secret cut in half by the shortening would no longer be found).
//!
//! Messages name the endpoint as the caller shows it (an origin for secret URLs) and never
//! print reqwest's own URL.

use std::time::{Duration, UNIX_EPOCH};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};

use crate::alert::Delivery;
use crate::clock::Timestamp;
use crate::secret::{shorten_redacted, Redactor};

/// How much of a response body is kept for classification and reasons.
const BODY_KEEP: usize = 4096;
/// How much of a body a reason quotes.
const REASON_BODY: usize = 200;

/// A client for one notifier: connect and total timeouts, no redirects, rustls.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(1)
        .user_agent(concat!("warden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("build http client: {}", chain(&e.without_url())))
}

/// What came back, as much as classification needs.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The body's first [`BODY_KEEP`] bytes, for classification.
    pub body: Vec<u8>,
    /// The same, lossily decoded with the notifier's secrets redacted: the only form quoted.
    pub text: String,
}

impl Reply {
    /// A reply whose `body` is all there was (`cut`: false) or its first part.
    pub(crate) fn new(
        status: u16,
        retry_after: Option<String>,
        body: Vec<u8>,
        cut: bool,
        redactor: &Redactor,
    ) -> Reply {
        let decoded = String::from_utf8_lossy(&body);
        let text = if cut {
            redactor.redact_cut(&decoded)
        } else {
            redactor.redact(&decoded)
        };
        Reply {
            status,
            retry_after,
            body,
            text,
        }
    }
}

/// One POST of a JSON (or templated) body. `shown` names the endpoint in messages; what the
/// receiver answers is quoted only with `redactor`'s secrets removed.
/// `Err` is the delivery for a request that got no complete reply.
pub(crate) async fn post(
    client: &reqwest::Client,
    url: &str,
    shown: &str,
    headers: HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Reply, Delivery> {
    // User headers replace the defaults of the same name (e.g. the content type).
    let mut all = HeaderMap::new();
    all.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for name in headers.keys() {
        all.remove(name);
    }
    for (name, value) in headers.iter() {
        all.append(name, value.clone());
    }
    let request = client.post(url).headers(all);
    let send = async {
        let mut response = request.body(body).send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut kept = Vec::new();
        let mut cut = false;
        while kept.len() < BODY_KEEP {
            match response.chunk().await? {
                Some(chunk) => kept.extend_from_slice(&chunk),
                None => break,
            }
        }
        if kept.len() >= BODY_KEEP {
            // What followed is unknown: a secret may straddle the bound.
            cut = true;
            kept.truncate(BODY_KEEP);
        }
        Ok::<_, reqwest::Error>(Reply::new(status, retry_after, kept, cut, redactor))
    };
    // reqwest's own timeout bounds the request; this one also bounds the body read loop.
    match tokio::time::timeout(timeout + Duration::from_millis(100), send).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(request_failed(shown, &e, timeout)),
        Err(_) => Err(Delivery::Retryable {
            reason: format!("POST {shown}: timed out after {}", show(timeout)),
            retry_after: None,
        }),
    }
}

/// Builds a header map from configured pairs, marking every value sensitive.
pub(crate) fn header_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        // Never print the value: it is a secret.
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| format!("header {name:?}: value is not a valid header value"))?;
        v.set_sensitive(true);
        map.append(header, v);
    }
    Ok(map)
}

/// The generic classification of a reply (see the module table).
pub(crate) fn classify(shown: &str, reply: &Reply, now: Timestamp) -> Delivery {
    let status = reply.status;
    let said = || {
        let excerpt = excerpt(&reply.text);
        if excerpt.is_empty() {
            format!("POST {shown}: status {status}")
        } else {
            format!("POST {shown}: status {status}: {excerpt}")
        }
    };
    match status {
        200..=299 => Delivery::Ok,
        429 | 408 | 500..=599 => Delivery::Retryable {
            reason: said(),
            retry_after: reply
                .retry_after
                .as_deref()
                .and_then(|v| retry_after(v, now)),
        },
        300..=399 => Delivery::Permanent {
            reason: format!("{} (redirects are not followed; fix the url)", said()),
        },
        _ => Delivery::Permanent { reason: said() },
    }
}

/// `Retry-After`: delay-seconds (`120`) or an HTTP-date, as a delay from `now` (zero when the
/// date has passed). `None` when it is neither.
pub(crate) fn retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(UNIX_EPOCH).ok()?.as_millis();
    let at_ms = i64::try_from(at_ms).ok()?;
    Some(Timestamp::from_millis(at_ms).since(now))
}

/// The first [`REASON_BODY`] bytes of a reply's redacted text ([`Reply::text`]) as one
/// printable line, cut on a char boundary and never inside a redaction marker.
pub(crate) fn excerpt(redacted: &str) -> String {
    let text = redacted.trim();
    let short = shorten_redacted(text, REASON_BODY);
    let mut out: String = short
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if short.len() < text.len() {
        out.push('…');
    }
    out
}

/// A request that got no complete reply: always retryable except a request that could not
/// even be built (a bad URL, caught by `new` in practice).
pub(crate) fn request_failed(shown: &str, e: &reqwest::Error, timeout: Duration) -> Delivery {
    if e.is_builder() {
        return Delivery::Permanent {
            reason: format!("POST {shown}: invalid request: {}", chain(e)),
        };
    }
    let what = if e.is_timeout() {
        format!("timed out after {}", show(timeout))
    } else if e.is_connect() {
        format!("connect error: {}", chain(e))
    } else {
        format!("request failed: {}", chain(e))
    };
    Delivery::Retryable {
        reason: format!("POST {shown}: {what}"),
        retry_after: None,
    }
}

/// An error's source chain, without reqwest's URL (which may hold a secret).
fn chain(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p: &String| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        // The top-level message without its URL.
        let mut text = e.to_string();
        if let Some(url) = e.url() {
            text = text.replace(url.as_str(), "<url>");
        }
        parts.push(text);
    }
    parts.join(": ")
}

pub(crate) fn show(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, retry: Option<&str>, body: &str) -> Reply {
        Reply::new(
            status,
            retry.map(str::to_string),
            body.as_bytes().to_vec(),
            false,
            &Redactor::default(),
        )
    }

    #[test]
    fn classifies_statuses() {
        // 2026-11-21T23:40:00Z
        let now = Timestamp::from_millis(1_795_304_400_000);
        let cases: &[(u16, Option<&str>, &str, &str)] = &[
            (200, None, "ok", "Ok"),
            (202, None, "", "Ok"),
            (204, None, "", "Ok"),
            (
                301,
                None,
                "",
                "Permanent: POST R: status 301 (redirects are not followed; fix the url)",
            ),
            (
                400,
                None,
                r#"{"status":"invalid event"}"#,
                r#"Permanent: POST R: status 400: {"status":"invalid event"}"#,
            ),
            (
                404,
                None,
                "no_service\n",
                "Permanent: POST R: status 404: no_service",
            ),
            (408, None, "", "Retryable(None): POST R: status 408"),
            (
                429,
                Some("7"),
                "slow down",
                "Retryable(Some(7s)): POST R: status 429: slow down",
            ),
            (
                429,
                Some("Sat, 21 Nov 2026 23:41:30 GMT"),
                "",
                "Retryable(Some(90s)): POST R: status 429",
            ),
            (
                429,
                Some("Sat, 21 Nov 2026 23:00:00 GMT"),
                "",
                "Retryable(Some(0ns)): POST R: status 429",
            ),
            (429, Some("soon"), "", "Retryable(None): POST R: status 429"),
            (
                500,
                None,
                "boom",
                "Retryable(None): POST R: status 500: boom",
            ),
            (
                503,
                Some("120"),
                "",
                "Retryable(Some(120s)): POST R: status 503",
            ),
        ];
        for (status, retry, body, want) in cases {
            let got = match classify("R", &reply(*status, *retry, body), now) {
                Delivery::Ok => "Ok".to_string(),
                Delivery::Retryable {
                    reason,
                    retry_after,
                } => {
                    format!("Retryable({retry_after:?}): {reason}")
                }
                Delivery::Permanent { reason } => format!("Permanent: {reason}"),
            };
            assert_eq!(&got, want, "status {status}");
        }
    }

    #[test]
    fn excerpts_are_short_printable_and_cut_on_char_boundaries() {
        let text = |body: &[u8]| reply(400, None, "").text_of(body);
        let long = "é".repeat(300);
        let e = excerpt(&text(long.as_bytes()));
        assert!(e.len() <= REASON_BODY + '…'.len_utf8(), "{}", e.len());
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(&text(b"a\nb\tc")), "a b c");
        assert_eq!(excerpt(&text(b"\xff\xfeok")), "\u{fffd}\u{fffd}ok");
    }

    impl Reply {
        fn text_of(&self, body: &[u8]) -> String {
            Reply::new(
                self.status,
                None,
                body.to_vec(),
                false,
                &Redactor::default(),
            )
            .text
        }
    }

    /// Issue 12: the body was cut to 200 bytes before secrets were redacted, so a secret
    /// straddling the cut showed its first half. Redacted first, then cut: none of it shows,
    /// wherever the cut falls, and a secret cut by the 4 KiB read bound goes too.
    #[test]
    fn a_secret_straddling_the_cut_shows_no_part_of_itself() {
        let secret = "R0UTING-KEY-0123456789abcdef";
        let redactor = Redactor::new([secret.to_string()]);
        let now = Timestamp::from_millis(0);
        for start in REASON_BODY - secret.len()..REASON_BODY + 2 {
            let body = format!("{}{secret} and more", "x".repeat(start));
            let r = Reply::new(400, None, body.into_bytes(), false, &redactor);
            let Delivery::Permanent { reason } = classify("R", &r, now) else {
                panic!("400 is permanent");
            };
            assert!(!reason.contains("R0UT"), "at {start}: {reason}");
        }
        let body = format!("{}{}", "x".repeat(BODY_KEEP - 10), &secret[..10]);
        let r = Reply::new(400, None, body.into_bytes(), true, &redactor);
        assert!(
            r.text.ends_with("x<secret>"),
            "{}",
            &r.text[r.text.len() - 20..]
        );
    }

    #[test]
    fn header_values_are_sensitive_and_never_in_errors() {
        let map = header_map([("X-Api-Key", "hunter2-token")]).unwrap();
        assert!(map.get("x-api-key").unwrap().is_sensitive());
        assert!(!format!("{map:?}").contains("hunter2"));
        let err = header_map([("X-Api-Key", "bad\nhunter2")]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(header_map([("bad header", "v")]).is_err());
    }
}
