//! Issue 15, "Bad input": a scrape target answering a malformed or truncated exposition, a
//! body past `max_body_bytes`, more series than `sample_limit`, a duplicate series, a metric
//! changing TYPE, invalid UTF-8 or nothing at all fails its scrape with an error naming the
//! line or the limit; out-of-order timestamps are dropped and NaN/±Inf stored, as Prometheus
//! does. In every case the other checks keep their schedule, nothing of the bad body is
//! stored, the store keeps answering, and the daemon stays up.
//!
//! One setup for all: the scrape check `app` (interval 200ms) against a target whose answer
//! the test switches, a healthy `tcp` check `beat` (interval 200ms) on another in-process
//! server, and an `expr` rule over `queue_depth` so the samples are stored. Each test starts
//! from a good body (`queue_depth{queue="a"} 7`), switches to the bad one, whose first line
//! is `queue_depth{queue="a"} 999` (999 must never be stored), and asserts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::daemon::{get, Daemon};
use crate::harness::http::{HttpServer, Reply};

const TEXT: &str = "text/plain; version=0.0.4";
const GOOD: &str = "# TYPE queue_depth gauge\nqueue_depth{queue=\"a\"} 7\n";
/// Every bad body starts with it: a sample that must never be stored.
const POISON: &str = "queue_depth{queue=\"a\"} 999\n";
/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(20);

/// A text 0.0.4 answer with `body`.
fn text(body: impl Into<Vec<u8>>) -> Reply {
    Reply::status(200).header("content-type", TEXT).body(body)
}

/// The `app` check's settings that differ between tests.
struct App<'a> {
    interval: &'a str,
    timeout: &'a str,
    /// More keys of the check (`sample_limit = 1000`).
    extra: &'a str,
}

const FAST: App<'static> = App {
    interval: "200ms",
    timeout: "150ms",
    extra: "",
};

struct Setup {
    /// What the target answers now.
    answer: Arc<Mutex<Reply>>,
    target: HttpServer,
    _beat: HttpServer,
    d: Daemon,
    /// `app` runs every 200ms (and so more than once in a second).
    fast: bool,
}

impl Setup {
    fn start(app: App) -> Setup {
        let answer = Arc::new(Mutex::new(text(GOOD)));
        let a = answer.clone();
        let target = HttpServer::start(move |_| a.lock().unwrap().clone());
        let beat = HttpServer::start(|_| Reply::status(200));
        let d = Daemon::start(&format!(
            r#"
[[check]]
name = "app"
kind = "scrape"
url = "{metrics}"
interval = "{interval}"
timeout = "{timeout}"
{extra}

[[check]]
name = "beat"
kind = "tcp"
address = "127.0.0.1:{beat}"
interval = "200ms"
timeout = "150ms"

[[rule]]
name = "deep"
check = "app"
expr = "queue_depth"
warning = {{ when = "> 1000" }}
"#,
            metrics = target.url("/metrics"),
            interval = app.interval,
            timeout = app.timeout,
            extra = app.extra,
            beat = beat.port(),
        ));
        let s = Setup {
            answer,
            target,
            _beat: beat,
            d,
            fast: app.interval == "200ms",
        };
        s.wait_value("queue_depth", "7");
        s
    }

    fn set(&self, reply: Reply) {
        *self.answer.lock().unwrap() = reply;
    }

    /// `GET path` on the daemon: status and JSON body.
    fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, _, body) = get(&self.d.url(path)).expect("GET");
        let json = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {code} not JSON ({e}): {body}"));
        (code, json)
    }

    /// An instant query now: the `[labels, value]` of each series of the vector.
    fn query(&self, expr: &str) -> Vec<(serde_json::Value, String)> {
        let (code, body) = self.get_json(&format!("/api/v1/query?query={}", enc(expr)));
        assert_eq!(code, 200, "{expr}: {body}");
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("{expr}: {body}"))
            .iter()
            .map(|s| {
                (
                    s["metric"].clone(),
                    s["value"][1].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Waits until `expr` is exactly one series with `value`.
    fn wait_value(&self, expr: &str, value: &str) {
        self.d.wait_for(&format!("{expr} = {value}"), || {
            let got = self.query(expr);
            (got.len() == 1 && got[0].1 == value).then_some(())
        });
    }

    fn runs(&self, check: &str) -> u64 {
        self.d.check(check)["runs"].as_u64().unwrap_or(0)
    }

    /// Waits until a run of `app` that started after now failed with `kind`, its message
    /// containing every one of `needles`; returns the message.
    fn wait_error(&self, kind: &str, needles: &[&str]) -> String {
        let after = self.runs("app");
        let deadline = Instant::now() + WAIT;
        loop {
            let c = self.d.check("app");
            let e = &c["last_error"];
            // A run that ended after now; one that began before the switch succeeded.
            if c["runs"].as_u64().unwrap_or(0) > after && e["kind"] == kind {
                let message = e["message"].as_str().unwrap_or_default().to_string();
                assert!(
                    needles.iter().all(|n| message.contains(n)),
                    "expected {needles:?} in {message:?}"
                );
                assert_eq!(c["state"], "down", "{c:#}");
                assert_eq!(c["values"]["up"], 0.0, "{c:#}");
                return message;
            }
            assert!(
                Instant::now() < deadline,
                "no {kind} error within {WAIT:?}; last: {c:#}\nlog:\n{}",
                self.d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// While the bad body is served: `beat` keeps its schedule (its runs, read 1.2 s apart,
    /// grew by at least 3 of the 6 planned), `app` keeps failing on its own schedule, and no
    /// query ever sees 999.
    fn others_keep_their_schedule(&self) {
        let (beat, app) = (self.runs("beat"), self.runs("app"));
        let until = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < until {
            self.assert_no_poison();
            std::thread::sleep(Duration::from_millis(100));
        }
        let (beat2, app2) = (self.runs("beat"), self.runs("app"));
        assert!(
            beat2 >= beat + 3,
            "beat ran {beat} → {beat2} times in 1.2 s at a 200ms interval"
        );
        if self.fast {
            assert!(app2 >= app + 3, "app ran {app} → {app2} times in 1.2 s");
        }
        let c = self.d.check("beat");
        assert_eq!(c["state"], "up", "{c:#}");
        assert!(c["last_error"].is_null(), "{c:#}");
    }

    /// `queue_depth` now is the last good value or nothing (stale), never 999.
    fn assert_no_poison(&self) {
        for (labels, value) in self.query("queue_depth") {
            assert_eq!(value, "7", "{labels}");
        }
    }

    /// Nothing stored was corrupted: the daemon is up, the store answers, what it holds of
    /// `queue_depth` is the good body's value only, and a good body is stored again.
    fn nothing_corrupted(&self, then: u32) {
        let (code, _, body) = get(&self.d.url("/healthz")).expect("GET /healthz");
        assert_eq!(code, 200, "{body}");
        self.assert_no_poison();
        // Every sample of the target held over the last 5 minutes (staleness markers are
        // not samples): the good body's only.
        let (code, body) =
            self.get_json(&format!("/api/v1/query?query={}", enc("{job=\"app\"}[5m]")));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["data"]["resultType"], "matrix", "{body}");
        let series = body["data"]["result"].as_array().unwrap();
        assert_eq!(series.len(), 1, "only queue_depth{{queue=\"a\"}}: {body}");
        assert_eq!(series[0]["metric"]["__name__"], "queue_depth", "{body}");
        assert_eq!(series[0]["metric"]["queue"], "a", "{body}");
        let values = series[0]["values"].as_array().unwrap();
        assert!(
            !values.is_empty() && values.iter().all(|v| v[1] == "7"),
            "{body}"
        );
        // The store takes a good body again.
        self.set(text(format!("queue_depth{{queue=\"a\"}} {then}\n")));
        self.wait_value("queue_depth", &then.to_string());
        self.d.wait_for("app up again", || {
            let c = self.d.check("app");
            (c["state"] == "up" && c["last_error"].is_null()).then_some(())
        });
    }
}

/// Percent-encodes a query parameter.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body ends inside a line: `queue_depth{queue="a` at EOF.
#[test]
fn scrape_bad_input_a_truncated_body_fails_naming_its_last_line() {
    let s = Setup::start(FAST);
    s.set(text(format!(
        "{POISON}queue_depth{{queue=\"b\"}} 1\nqueue_depth{{queue=\"a"
    )));
    let message = s.wait_error("bad_body", &["line 3"]);
    assert!(message.starts_with("scrape http://127.0.0.1:"), "{message}");
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// An HTML error page answered as metrics.
#[test]
fn scrape_bad_input_garbage_fails_naming_the_line() {
    let s = Setup::start(FAST);
    s.set(text(format!(
        "{POISON}<html><body>502 Bad Gateway</body></html>\n"
    )));
    s.wait_error("bad_body", &["line 2"]);
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// A body past the check's `max_body_bytes`, declared (Content-Length) or streamed
/// (chunked, endless): refused naming the limit, the rest never read.
#[test]
fn scrape_bad_input_a_body_past_max_body_bytes_fails_naming_the_limit() {
    let s = Setup::start(App {
        extra: "max_body_bytes = 1048576",
        ..FAST
    });
    // 1 MiB and a bit of valid samples, with a Content-Length.
    let mut body = String::from(POISON);
    let mut i = 0;
    while body.len() <= 1024 * 1024 {
        body.push_str(&format!("filler{{i=\"{i}\"}} 1\n"));
        i += 1;
    }
    s.set(text(body));
    s.wait_error("bad_body", &["max_body_bytes (1048576)"]);
    s.target.clear();
    // An endless chunked body: 100 MB would never fit; warden stops at 1 MiB.
    s.set(Reply::endless(200).header("content-type", TEXT));
    s.d.wait_for("an endless answer", || {
        (s.target.streamed() > 0).then_some(())
    });
    s.wait_error("bad_body", &["max_body_bytes (1048576)"]);
    s.others_keep_their_schedule();
    let streamed = s.target.streamed();
    let scrapes = s.target.count("/metrics").max(1);
    // Each scrape stops reading past 1 MiB (plus what the sockets buffer on the way).
    assert!(
        streamed / scrapes < 16 * 1024 * 1024,
        "{streamed} bytes sent over {scrapes} scrapes"
    );
    s.nothing_corrupted(8);
}

/// The default bound (16 MiB) stops an endless body too.
#[test]
fn scrape_bad_input_an_endless_body_fails_at_the_default_max_body_bytes() {
    // Reading 16 MiB takes longer than 150ms on a busy machine: a longer timeout, so the
    // limit, not the clock, is what stops it.
    let s = Setup::start(App {
        interval: "3s",
        timeout: "3s",
        extra: "",
    });
    s.set(Reply::endless(200).header("content-type", TEXT));
    s.wait_error("bad_body", &["max_body_bytes (16777216)"]);
    let (streamed, scrapes) = (s.target.streamed(), s.target.count("/metrics"));
    assert!(
        streamed < scrapes * 32 * 1024 * 1024,
        "{streamed} bytes sent over {scrapes} scrapes"
    );
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// `sample_limit = 1000` and 2,000 series: refused at the 1,001st, naming the limit.
#[test]
fn scrape_bad_input_more_series_than_sample_limit_fails_naming_the_limit() {
    let s = Setup::start(App {
        extra: "sample_limit = 1000",
        ..FAST
    });
    let mut body = String::from(POISON);
    for i in 0..2000 {
        body.push_str(&format!("many{{i=\"{i}\"}} 1\n"));
    }
    s.set(text(body));
    let message = s.wait_error("bad_body", &["line 1001", "sample_limit 1000"]);
    assert!(
        message.ends_with("line 1001: sample_limit 1000 exceeded"),
        "{message}"
    );
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// 1,000,000 series against the default `sample_limit` (200,000). The default
/// `max_body_bytes` (16 MiB) would refuse this ~21 MB body first, so the check allows the
/// 64 MiB ceiling: the sample limit is what stops it.
#[test]
fn scrape_bad_input_a_million_series_fail_at_the_default_sample_limit() {
    let s = Setup::start(App {
        interval: "2s",
        timeout: "2s",
        extra: "max_body_bytes = 67108864",
    });
    let mut body = String::with_capacity(24 * 1_000_000);
    body.push_str(POISON);
    for i in 0..1_000_000 {
        body.push_str(&format!("million{{i=\"{i}\"}} 1\n"));
    }
    s.set(text(body));
    s.wait_error("bad_body", &["line 200001: sample_limit 200000 exceeded"]);
    // The harness keeps every answer it gave: forget the 21 MB ones.
    s.target.clear();
    s.others_keep_their_schedule();
    s.target.clear();
    s.nothing_corrupted(8);
}

/// A body of 1,000,000 series takes a while to parse (its 200,000 samples up to the limit: about
/// half a second in a debug build). The parse runs on the blocking pool, so the runtime worker
/// that serves `/healthz` and runs every other probe is free meanwhile: `/healthz` answers far
/// faster than a scrape takes (it stalled for the whole parse when the parse ran on the worker).
/// Compared as a ratio to the scrape's own duration, which a loaded machine stretches alike.
#[test]
fn scrape_bad_input_a_million_series_do_not_stall_the_other_checks() {
    let s = Setup::start(App {
        interval: "1s",
        timeout: "1s",
        extra: "max_body_bytes = 67108864",
    });
    let mut body = String::with_capacity(24 * 1_000_000);
    for i in 0..1_000_000 {
        body.push_str(&format!("million{{i=\"{i}\"}} 1\n"));
    }
    s.set(text(body));
    s.wait_error("bad_body", &["sample_limit 200000 exceeded"]);
    s.target.clear();
    // Three scrapes of the big body, /healthz asked every 20 ms meanwhile.
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let t = Instant::now();
        let (code, _, _) = get(&s.d.url("/healthz")).expect("GET /healthz");
        assert_eq!(code, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    let scrape = s.d.check("app")["duration_seconds"]
        .as_f64()
        .expect("the scrape's duration");
    assert!(
        worst.as_secs_f64() < scrape / 2.0,
        "/healthz took {worst:?} while a scrape of {scrape:.3} s parsed its body"
    );
}

/// The same series twice in one body.
#[test]
fn scrape_bad_input_a_duplicate_series_fails_naming_both_lines() {
    let s = Setup::start(FAST);
    s.set(text(format!(
        "{POISON}queue_depth{{queue=\"b\"}} 1\nqueue_depth{{queue=\"a\"}} 998\n"
    )));
    s.wait_error(
        "bad_body",
        &["line 3", "duplicate series", "(first at line 1)"],
    );
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// A metric declared a counter, then a gauge, in one body.
#[test]
fn scrape_bad_input_a_metric_changing_type_fails_naming_the_line() {
    let s = Setup::start(FAST);
    s.set(text(format!(
        "{POISON}# TYPE jobs counter\njobs 1\n# TYPE jobs gauge\n"
    )));
    s.wait_error(
        "bad_body",
        &["line 4", "changes TYPE from counter to gauge"],
    );
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// A label value that is not UTF-8 (a Latin-1 `é`).
#[test]
fn scrape_bad_input_invalid_utf8_fails_naming_the_line() {
    let s = Setup::start(FAST);
    let mut body = POISON.as_bytes().to_vec();
    body.extend_from_slice(b"queue_depth{queue=\"caf\xe9\"} 1\n");
    s.set(text(body));
    s.wait_error("bad_body", &["line 2", "invalid UTF-8"]);
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// An endpoint that accepts and never answers: the scrape times out at its timeout.
#[test]
fn scrape_bad_input_a_hung_endpoint_times_out() {
    let s = Setup::start(FAST);
    s.set(Reply::hang());
    s.wait_error("timeout", &[]);
    let c = s.d.check("app");
    let took = c["duration_seconds"].as_f64().unwrap();
    assert!(
        (0.14..1.0).contains(&took),
        "timed out after {took} s, timeout 150ms"
    );
    s.others_keep_their_schedule();
    s.nothing_corrupted(8);
}

/// Explicit timestamps going backwards across two scrapes: no error (Prometheus takes the
/// scrape and drops the older sample as out of order), and only the newer sample is stored.
#[test]
fn scrape_bad_input_an_out_of_order_timestamp_is_dropped() {
    let s = Setup::start(FAST);
    // Now, by the daemon's clock.
    let now_ms = (s.query("vector(time())")[0].1.parse::<f64>().unwrap() * 1000.0) as i64;
    let (newer, older) = (now_ms - 2_000, now_ms - 10_000);
    s.set(text(format!("{GOOD}stamped 5 {newer}\n")));
    s.wait_value("stamped", "5");
    s.set(text(format!("{GOOD}stamped 4 {older}\n")));
    // Scrapes of the older sample succeed.
    let after = s.runs("app");
    s.d.wait_for("three more scrapes", || {
        (s.runs("app") >= after + 3).then_some(())
    });
    let c = s.d.check("app");
    assert!(c["last_error"].is_null(), "{c:#}");
    assert_eq!(c["values"]["up"], 1.0, "{c:#}");
    assert_eq!(c["values"]["samples"], 2.0, "{c:#}");
    // Only the newer sample is held.
    assert_eq!(s.query("count_over_time(stamped[5m])")[0].1, "1");
    assert_eq!(s.query("stamped")[0].1, "5");
    let (code, range) = s.get_json(&format!(
        "/api/v1/query_range?query=stamped&start={}&end={}&step=1",
        (older - 1_000) / 1_000,
        now_ms / 1_000 + 5
    ));
    assert_eq!(code, 200, "{range}");
    let values = range["data"]["result"][0]["values"].as_array().unwrap();
    assert!(!values.is_empty(), "{range}");
    assert!(
        values.iter().all(|v| v[1] == "5"),
        "the older sample must not be stored: {range}"
    );
    let first = values[0][0].as_f64().unwrap();
    assert!(first * 1000.0 >= newer as f64 - 1000.0, "{range}");
    s.others_keep_their_schedule();
}

/// NaN and ±Inf are valid values: stored, and answered as Prometheus writes them.
#[test]
fn scrape_bad_input_nan_and_inf_are_valid_values() {
    let s = Setup::start(FAST);
    s.set(text(
        "queue_depth{queue=\"a\"} 7\nodd{v=\"nan\"} NaN\nodd{v=\"pinf\"} +Inf\n\
         odd{v=\"minf\"} -Inf\nodd{v=\"inf\"} Inf\n",
    ));
    let odd = s.d.wait_for("four odd series", || {
        let got = s.query("odd");
        (got.len() == 4).then_some(got)
    });
    let value = |v: &str| {
        odd.iter()
            .find(|(l, _)| l["v"] == v)
            .map(|(_, x)| x.clone())
            .unwrap_or_else(|| panic!("no odd{{v={v:?}}} in {odd:?}"))
    };
    assert_eq!(value("nan"), "NaN");
    assert_eq!(value("pinf"), "+Inf");
    assert_eq!(value("minf"), "-Inf");
    assert_eq!(value("inf"), "+Inf");
    // The status is a snapshot published every 500ms: it may lag the store.
    let c = s.d.wait_for("a published successful scrape", || {
        let c = s.d.check("app");
        (c["values"]["samples"] == 5.0).then_some(c)
    });
    assert!(c["last_error"].is_null(), "{c:#}");
    assert_eq!(c["state"], "up", "{c:#}");
    // A NaN sample is a sample (not a staleness marker): it is still there a scrape later.
    let after = s.runs("app");
    s.d.wait_for("two more scrapes", || {
        (s.runs("app") >= after + 2).then_some(())
    });
    assert_eq!(s.query("odd{v=\"nan\"}")[0].1, "NaN");
    assert_eq!(s.query("count_over_time(odd{v=\"nan\"}[5m])").len(), 1);
    s.others_keep_their_schedule();
}
