//! Issue 14 part 1, labelled series and alert identity, through the real daemon against a real
//! postgres. A named query with `result = "series"` yields one series per row (every column
//! but the last a label, the last the value): `backlog{queue="a"}`. Each series has its own
//! rule state, incident and dedup key (`warden/<instance>/<rule>/<fingerprint>/<epoch>-<n>`),
//! and its labels reach every surface: the webhook, Slack, PagerDuty, Alertmanager and email
//! notifiers, a hook's environment, `/api/v1/status`, `/api/v1/alerts`, `/metrics` and
//! `warden once`.
//!
//! The daemon tests play the issue's scenario: queues a=7 and b=9 are over the threshold (two
//! incidents, two keys); b drops to 1 and resolves while a fires on under its key, never paged
//! twice; a's row is deleted and a resolves after `gone_after`, saying it disappeared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

use crate::daemon::{get, warden, write_config, Daemon};
use crate::harness::alertmanager::Alertmanager;
use crate::harness::notify_receiver::{Answer, Receiver as HttpReceiver};
use crate::harness::receiver::Receiver;
use crate::harness::smtp::SmtpSink;
use crate::harness::PostgresServer;
use crate::paging::wait;

/// `[alerting] instance` of every daemon here: part of every dedup key.
const INSTANCE: &str = "test-warden";
/// Bound of every wait for something the daemon does within a few 200 ms probes.
const WAIT: Duration = Duration::from_secs(15);

/// `jobs(queue, depth)` with a=7 and b=9: both over `backlog-high`'s `> 5`.
const JOBS: &str = "CREATE TABLE jobs (queue text PRIMARY KEY, depth int NOT NULL);
     INSERT INTO jobs VALUES ('a', 7), ('b', 9);";
/// b drops below the threshold: its series resolves by value.
const B_RECOVERS: &str = "UPDATE jobs SET depth = 1 WHERE queue = 'b'";
/// a's row goes: its series resolves once it has been absent for `gone_after`.
const A_GOES: &str = "DELETE FROM jobs WHERE queue = 'a'";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A real postgres and the runtime that holds the test's own connections to it.
struct Db {
    pg: PostgresServer,
    rt: tokio::runtime::Runtime,
}

impl Db {
    /// A fresh server with `setup` run on it.
    fn start(setup: &str) -> Db {
        let rt = runtime();
        let pg = rt.block_on(PostgresServer::start());
        if !setup.is_empty() {
            rt.block_on(pg.execute(setup));
        }
        Db { pg, rt }
    }

    fn execute(&self, sql: &str) {
        self.rt.block_on(self.pg.execute(sql));
    }

    fn url(&self) -> String {
        self.pg.url()
    }

    /// A connection to `database`, held open while the client lives.
    fn connect_to(&self, database: &str) -> Client {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.pg.port()
        );
        self.rt.block_on(async {
            let connect = tokio_postgres::connect(&url, NoTls);
            let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
                .await
                .unwrap_or_else(|_| panic!("connect to {url}: no answer within 10 s"))
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            tokio::spawn(connection);
            client
        })
    }
}

/// What a test adds to the config [`backlog_config`] writes.
#[derive(Default)]
struct Setup<'a> {
    /// The notifiers `[alerting] critical` routes to (no route when empty).
    route: &'a [&'a str],
    /// More `[[check.query]]` tables of the `pg` check.
    queries: &'a str,
    /// More lines of the `backlog-high` rule (e.g. its `hooks`).
    rule: &'a str,
    /// Anything after it: notifiers, hooks, more rules.
    rest: &'a str,
}

/// `[alerting]` with instance `test-warden`, the `pg` check on `url` every 200 ms with the
/// `backlog` series query (`SELECT queue, depth FROM jobs`), and `backlog-high`: critical when
/// a queue's depth is `> 5`, a series gone for 1 s resolved.
fn backlog_config(url: &str, setup: &Setup) -> String {
    let route = if setup.route.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = setup.route.iter().map(|n| format!("{n:?}")).collect();
        format!("critical = [{}]", names.join(", "))
    };
    format!(
        r#"
[alerting]
instance = "{INSTANCE}"
{route}

[[check]]
name = "pg"
kind = "postgres"
url = "{url}"
interval = "200ms"
timeout = "200ms"

[[check.query]]
name = "backlog"
sql = "SELECT queue, depth FROM jobs"
result = "series"
{queries}
[[rule]]
name = "backlog-high"
check = "pg"
value = "backlog"
critical = {{ when = "> 5" }}
gone_after = "1s"
{rule}
{rest}"#,
        queries = setup.queries,
        rule = setup.rule,
        rest = setup.rest,
    )
}

/// A webhook notifier `name` (warden's own JSON body) posting to `url`.
fn webhook(name: &str, url: &str) -> String {
    format!(
        r#"
[[notifier]]
name = "{name}"
kind = "webhook"
url = "{url}"
"#
    )
}

/// `{"queue": q}`: the series of queue `q`, as every JSON surface shows it.
fn queue(q: &str) -> Value {
    json!({ "queue": q })
}

/// `rule{queue="q"}`: the alert as people read it (Slack, PagerDuty, email, `warden once`).
fn title(rule: &str, q: &str) -> String {
    format!(r#"{rule}{{queue="{q}"}}"#)
}

// ---- dedup keys --------------------------------------------------------------------------

/// `warden/test-warden/<rule>/<fingerprint>/`: what every key of `rule`'s series `labels`
/// starts with (then `<epoch>-<n>`). The fingerprint is `warden::labels::fingerprint`, the
/// one function that hashes a label set.
fn series_key_prefix(rule: &str, labels: &[(&str, &str)]) -> String {
    let labels: warden::labels::Labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    format!(
        "warden/{INSTANCE}/{rule}/{}/",
        warden::labels::fingerprint(&labels)
    )
}

/// The epoch and incident number of `key`, which must be `prefix` then `<epoch>-<n>`: the
/// epoch lowercase base 36, `n` a number.
fn epoch_and_number(key: &str, prefix: &str) -> (String, u64) {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("dedup key {key:?} does not start with {prefix:?}"));
    let (epoch, n) = rest
        .split_once('-')
        .unwrap_or_else(|| panic!("dedup key {key:?} does not end in <epoch>-<n>"));
    assert!(
        !epoch.is_empty()
            && epoch
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
        "the epoch of {key:?} is not lowercase base 36"
    );
    let n = n
        .parse()
        .unwrap_or_else(|_| panic!("the incident of {key:?} is not a number"));
    (epoch.to_string(), n)
}

fn key_of(body: &Value) -> String {
    body["dedup_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no dedup_key in {body:#}"))
        .to_string()
}

// ---- the daemon's API --------------------------------------------------------------------

/// The `GET /api/v1/status` entries of `rule` (one per series).
fn entries(d: &Daemon, rule: &str) -> Vec<Value> {
    let status = d.status();
    status["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("no rules list in status: {status:#}"))
        .iter()
        .filter(|r| r["name"] == rule)
        .cloned()
        .collect()
}

/// The status entry of `rule`'s series `series` (`None`: the unlabelled one, without a
/// `series` key), if listed.
fn entry(d: &Daemon, rule: &str, series: Option<&Value>) -> Option<Value> {
    entries(d, rule)
        .into_iter()
        .find(|r| r.get("series") == series)
}

/// Waits until `rule`'s series `series` is in `state`; returns its status entry.
fn wait_series_state(d: &Daemon, rule: &str, series: Option<&Value>, state: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = entry(d, rule, series);
        if found.as_ref().is_some_and(|r| r["state"] == state) {
            return found.unwrap();
        }
        if Instant::now() > deadline {
            panic!(
                "{rule} {series:?} did not reach {state} within {WAIT:?}; status: {:#}\nlog:\n{}",
                d.status(),
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /api/v1/alerts`: the alerts firing now.
fn alerts(d: &Daemon) -> Vec<Value> {
    let (code, _, body) = get(&d.url("/api/v1/alerts")).expect("GET alerts");
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("alerts are JSON");
    doc["alerts"].as_array().expect("an alerts array").clone()
}

/// The firing alerts of `rule` in `GET /api/v1/alerts`.
fn alerts_of(d: &Daemon, rule: &str) -> Vec<Value> {
    alerts(d)
        .into_iter()
        .filter(|a| a["alert"] == rule)
        .collect()
}

/// Waits until `/metrics` has every line of `lines`, exactly as written.
fn wait_metric_lines(d: &Daemon, lines: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, text) = d.metrics();
        let missing: Vec<&&str> = lines
            .iter()
            .filter(|l| !text.lines().any(|t| t == **l))
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let ours: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("warden_rule_"))
                .collect();
            panic!(
                "/metrics lacks {missing:#?} after {WAIT:?}; its rule lines:\n{}",
                ours.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---- the webhook -------------------------------------------------------------------------

/// The warden JSON bodies `r` accepted with `status`, for alert `rule`'s series `series`
/// (`None`: the unlabelled series, a body without `series`), with when each arrived.
fn events(r: &Receiver, status: &str, rule: &str, series: Option<&Value>) -> Vec<(Value, Instant)> {
    r.received()
        .into_iter()
        .filter(|x| x.status.is_some_and(|s| (200..300).contains(&s)))
        .filter(|x| {
            x.body["status"] == status && x.body["alert"] == rule && x.body.get("series") == series
        })
        .map(|x| (x.body, x.at))
        .collect()
}

/// Waits for the first body `events` would return.
fn wait_event(r: &Receiver, status: &str, rule: &str, series: Option<&Value>) -> (Value, Instant) {
    wait(
        WAIT,
        &format!("the {status} event of {rule} {series:?}"),
        || events(r, status, rule, series).into_iter().next(),
    )
}

/// The issue's scenario on the webhook, the status and alerts APIs and `/metrics`, beside an
/// unlabelled rule on the same check (`backlog-total`, a scalar query) whose key, status entry
/// and metric lines keep the unlabelled form, and a series whose labels are named like
/// warden's own metric labels (`rule`, `state`), exported as `exported_rule`/`exported_state`.
#[test]
fn each_series_fires_and_resolves_on_its_own_in_the_webhook_the_api_and_metrics() {
    let db = Db::start(JOBS);
    let receiver = Receiver::start();
    let config = backlog_config(
        &db.url(),
        &Setup {
            route: &["ops"],
            queries: r#"
[[check.query]]
name = "clash"
sql = "SELECT queue AS rule, queue AS state, depth FROM jobs"
result = "series"

[[check.query]]
name = "backlog_total"
sql = "SELECT sum(depth) FROM jobs"
"#,
            rule: "",
            rest: &format!(
                r#"
[[rule]]
name = "backlog-total"
check = "pg"
value = "backlog_total"
critical = {{ when = "> 5" }}

[[rule]]
name = "backlog-clash"
check = "pg"
value = "clash"
critical = {{ when = "> 5" }}
{ops}"#,
                ops = webhook("ops", &receiver.url())
            ),
        },
    );
    let d = Daemon::start(&config);
    let (a, b) = (queue("a"), queue("b"));

    // Both queues are over: two incidents, two keys, each naming its series.
    let (fired_a, _) = wait_event(&receiver, "firing", "backlog-high", Some(&a));
    let (fired_b, _) = wait_event(&receiver, "firing", "backlog-high", Some(&b));
    for (body, q) in [(&fired_a, "a"), (&fired_b, "b")] {
        assert_eq!(body["alert"], "backlog-high", "{body:#}");
        assert_eq!(body["series"], queue(q), "{body:#}");
        assert_eq!(body["labels"]["queue"], q, "{body:#}");
        assert_eq!(body["labels"]["check"], "pg", "{body:#}");
        assert_eq!(body["labels"]["severity"], "critical", "{body:#}");
    }
    let (key_a, key_b) = (key_of(&fired_a), key_of(&fired_b));
    assert_ne!(key_a, key_b, "two series, two keys");
    let (epoch, _) = epoch_and_number(
        &key_a,
        &series_key_prefix("backlog-high", &[("queue", "a")]),
    );
    let (epoch_b, _) = epoch_and_number(
        &key_b,
        &series_key_prefix("backlog-high", &[("queue", "b")]),
    );
    assert_eq!(epoch, epoch_b, "one state file, one epoch");
    // The unlabelled rule: no `series`, and its key has no fingerprint.
    let (total, _) = wait_event(&receiver, "firing", "backlog-total", None);
    let (epoch_total, _) = epoch_and_number(
        &key_of(&total),
        &format!("warden/{INSTANCE}/backlog-total/"),
    );
    assert_eq!(epoch_total, epoch);

    // The status lists one entry per series, each with its own state and value; the
    // unlabelled rule's entry has no `series` key.
    let status_a = wait_series_state(&d, "backlog-high", Some(&a), "critical");
    let status_b = wait_series_state(&d, "backlog-high", Some(&b), "critical");
    assert_eq!(status_a["value"].as_f64(), Some(7.0), "{status_a:#}");
    assert_eq!(status_b["value"].as_f64(), Some(9.0), "{status_b:#}");
    assert_eq!(entries(&d, "backlog-high").len(), 2, "{:#}", d.status());
    let status_total = wait_series_state(&d, "backlog-total", None, "critical");
    assert_eq!(
        status_total["value"].as_f64(),
        Some(16.0),
        "{status_total:#}"
    );
    assert_eq!(entries(&d, "backlog-total").len(), 1, "{:#}", d.status());

    // The alerts API: one alert per series, under the key it was paged with.
    let firing = alerts_of(&d, "backlog-high");
    let by_series: BTreeMap<String, String> = firing
        .iter()
        .map(|x| {
            (
                x["series"]["queue"].as_str().unwrap_or("?").to_string(),
                key_of(x),
            )
        })
        .collect();
    let want = BTreeMap::from([
        ("a".to_string(), key_a.clone()),
        ("b".to_string(), key_b.clone()),
    ]);
    assert_eq!(by_series, want, "{firing:#?}");

    // /metrics: the series' labels beside warden's own, sorted by name; the unlabelled rule's
    // lines as they always were; a clashing label name exported under another name.
    wait_metric_lines(
        &d,
        &[
            r#"warden_rule_state{queue="a",rule="backlog-high",state="critical"} 1"#,
            r#"warden_rule_state{queue="b",rule="backlog-high",state="critical"} 1"#,
            r#"warden_rule_value{queue="a",rule="backlog-high"} 7"#,
            r#"warden_rule_value{queue="b",rule="backlog-high"} 9"#,
            r#"warden_rule_state{rule="backlog-total",state="critical"} 1"#,
            r#"warden_rule_value{rule="backlog-total"} 16"#,
            r#"warden_rule_state{exported_rule="a",exported_state="a",rule="backlog-clash",state="critical"} 1"#,
            r#"warden_rule_value{exported_rule="b",exported_state="b",rule="backlog-clash"} 9"#,
        ],
    );

    // b drops below the threshold: b resolves under its key, a fires on.
    db.execute(B_RECOVERS);
    let (resolved_b, _) = wait_event(&receiver, "resolved", "backlog-high", Some(&b));
    assert_eq!(key_of(&resolved_b), key_b);
    assert_eq!(resolved_b["series"], b);
    assert!(
        events(&receiver, "resolved", "backlog-high", Some(&a)).is_empty(),
        "a resolved with b"
    );
    let status_b = wait_series_state(&d, "backlog-high", Some(&b), "ok");
    assert_eq!(status_b["value"].as_f64(), Some(1.0), "{status_b:#}");
    assert_eq!(
        entry(&d, "backlog-high", Some(&a)).unwrap()["state"],
        "critical"
    );
    wait(WAIT, "b to leave the alerts API", || {
        let firing = alerts_of(&d, "backlog-high");
        (firing.len() == 1).then_some(())
    });
    let firing = alerts_of(&d, "backlog-high");
    assert_eq!(firing[0]["series"], a, "{firing:#?}");
    assert_eq!(key_of(&firing[0]), key_a, "a's key is unchanged");
    wait_metric_lines(
        &d,
        &[
            r#"warden_rule_state{queue="b",rule="backlog-high",state="ok"} 1"#,
            r#"warden_rule_state{queue="a",rule="backlog-high",state="critical"} 1"#,
        ],
    );

    // a's row goes: a resolves once it has been absent for gone_after (1 s), saying so.
    let deleted = Instant::now();
    db.execute(A_GOES);
    let (resolved_a, at) = wait_event(&receiver, "resolved", "backlog-high", Some(&a));
    assert_eq!(key_of(&resolved_a), key_a);
    let description = resolved_a["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("disappeared"),
        "the resolve says the series disappeared: {resolved_a:#}"
    );
    // It was last seen at most one 200 ms interval before the DELETE.
    let after = at.duration_since(deleted);
    assert!(
        after >= Duration::from_millis(800),
        "a resolved {after:?} after its row went: before gone_after"
    );
    wait(WAIT, "a to leave the alerts API", || {
        alerts_of(&d, "backlog-high").is_empty().then_some(())
    });

    // Each series paged once and resolved once, nothing more.
    for series in [&a, &b] {
        for status in ["firing", "resolved"] {
            let got = events(&receiver, status, "backlog-high", Some(series));
            assert_eq!(got.len(), 1, "{status} events of {series}: {got:#?}");
        }
    }
}

// ---- Slack, PagerDuty, email -------------------------------------------------------------

/// The texts of a Slack message's `fields` (`*Labels*\n...`, ...).
fn slack_fields(body: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for attachment in body["attachments"].as_array().into_iter().flatten() {
        for block in attachment["blocks"].as_array().into_iter().flatten() {
            for field in block["fields"].as_array().into_iter().flatten() {
                out.push(field["text"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    out
}

/// The JSON bodies `r` received whose text (as sent) contains `needle`.
fn bodies_containing(r: &HttpReceiver, needle: &str) -> Vec<Value> {
    r.received()
        .iter()
        .map(|x| x.json())
        .filter(|b| b.to_string().contains(&needle.replace('"', "\\\"")))
        .collect()
}

/// The PagerDuty events `pager` received with `action` and `dedup_key` (any when `None`).
fn pd_events(pager: &HttpReceiver, action: &str, key: Option<&str>) -> Vec<Value> {
    pager
        .received()
        .iter()
        .map(|x| x.json())
        .filter(|b| b["event_action"] == action && key.is_none_or(|k| b["dedup_key"] == k))
        .collect()
}

/// The scenario through Slack, PagerDuty and email: each names the series
/// (`backlog-high{queue="a"}`) and lists its labels; PagerDuty gets one key per series and
/// resolves each under its own.
#[test]
fn slack_pagerduty_and_email_name_the_series_and_list_its_labels() {
    let db = Db::start(JOBS);
    let chat = HttpReceiver::start(Answer::status(200, "ok"));
    let pager = HttpReceiver::start(Answer::status(202, r#"{"status":"success"}"#));
    let sink = SmtpSink::start();
    let config = backlog_config(
        &db.url(),
        &Setup {
            route: &["chat", "pager", "mail"],
            rest: &format!(
                r#"
[[notifier]]
name = "chat"
kind = "slack"
webhook_url = "{chat}"

[[notifier]]
name = "pager"
kind = "pagerduty"
routing_key = "R0UTING-KEY-0123456789"
url = "{pager}"
source = "warden-test"

[[notifier]]
name = "mail"
kind = "email"
smtp = "{smtp}"
tls = "none"
from = "warden <warden@example.com>"
to = ["oncall@example.com"]
"#,
                chat = chat.url("/services/T000/B000/XXXX"),
                pager = pager.url("/v2/enqueue"),
                smtp = sink.address(),
            ),
            ..Setup::default()
        },
    );
    let d = Daemon::start(&config);

    // Both fire.
    let triggers = wait(WAIT, "two PagerDuty triggers", || {
        let t = pd_events(&pager, "trigger", None);
        (t.len() >= 2).then_some(t)
    });
    assert_eq!(triggers.len(), 2, "{triggers:#?}");
    let mut pd_keys = BTreeMap::new();
    for t in &triggers {
        let q = t["payload"]["custom_details"]["labels"]["queue"]
            .as_str()
            .unwrap_or_else(|| panic!("no queue label in {t:#}"))
            .to_string();
        let summary = t["payload"]["summary"].as_str().unwrap_or_default();
        assert!(summary.contains(&title("backlog-high", &q)), "{t:#}");
        epoch_and_number(
            &key_of(t),
            &series_key_prefix("backlog-high", &[("queue", &q)]),
        );
        pd_keys.insert(q, key_of(t));
    }
    assert_eq!(
        pd_keys.keys().collect::<Vec<_>>(),
        ["a", "b"],
        "{triggers:#?}"
    );
    assert_ne!(pd_keys["a"], pd_keys["b"]);

    for q in ["a", "b"] {
        let name = title("backlog-high", q);
        let message = wait(WAIT, &format!("the Slack message of {name}"), || {
            bodies_containing(&chat, &name).into_iter().next()
        });
        assert!(
            message["text"].as_str().unwrap_or_default().contains(&name),
            "the headline names {name}: {message:#}"
        );
        let fields = slack_fields(&message);
        let labels = fields
            .iter()
            .find(|f| f.starts_with("*Labels*"))
            .unwrap_or_else(|| panic!("no Labels field: {message:#}"));
        assert!(labels.contains(&format!("queue={q}")), "{labels}");
    }

    let mails = sink.wait_for(2, WAIT);
    for q in ["a", "b"] {
        let name = title("backlog-high", q);
        let mail = mails
            .iter()
            .find(|m| m.subject.contains(&name))
            .unwrap_or_else(|| {
                let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
                panic!("no mail's subject names {name}: {subjects:#?}")
            });
        assert!(
            mail.body
                .lines()
                .any(|l| l.trim() == format!("queue = {q}")),
            "the body lists the label queue:\n{}",
            mail.body
        );
    }

    // b recovers: resolved under b's key everywhere; a is not triggered again.
    db.execute(B_RECOVERS);
    let resolve_b = wait(WAIT, "b's PagerDuty resolve", || {
        pd_events(&pager, "resolve", Some(&pd_keys["b"]))
            .into_iter()
            .next()
    });
    assert_eq!(resolve_b["dedup_key"], pd_keys["b"]);
    assert!(pd_events(&pager, "resolve", Some(&pd_keys["a"])).is_empty());
    let name_b = title("backlog-high", "b");
    wait(WAIT, "b's Slack resolve", || {
        bodies_containing(&chat, &name_b)
            .into_iter()
            .find(|m| m["text"].as_str().unwrap_or_default().contains("RESOLVED"))
    });
    wait(WAIT, "b's resolve mail", || {
        sink.mails()
            .into_iter()
            .find(|m| m.subject.contains(&name_b) && m.subject.contains("RESOLVED"))
    });

    // a's row goes: resolved under a's key once gone_after has passed.
    db.execute(A_GOES);
    wait(WAIT, "a's PagerDuty resolve", || {
        pd_events(&pager, "resolve", Some(&pd_keys["a"]))
            .into_iter()
            .next()
    });
    let name_a = title("backlog-high", "a");
    wait(WAIT, "a's Slack resolve", || {
        bodies_containing(&chat, &name_a)
            .into_iter()
            .find(|m| m["text"].as_str().unwrap_or_default().contains("RESOLVED"))
    });
    assert_eq!(
        pd_events(&pager, "trigger", None).len(),
        2,
        "a series was triggered twice\n{}",
        d.log()
    );
}

// ---- Alertmanager ------------------------------------------------------------------------

/// The alerts named `backlog-high` a real Alertmanager holds as active.
fn active_in(am: &Alertmanager) -> Vec<Value> {
    let url = format!("{}/api/v2/alerts?active=true", am.url());
    let (_, _, body) = get(&url).expect("GET /api/v2/alerts");
    serde_json::from_str::<Vec<Value>>(&body)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == "backlog-high")
        .collect()
}

/// The queues of `alerts` (their `queue` label), sorted.
fn queues(alerts: &[Value]) -> Vec<String> {
    let mut q: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["queue"].as_str().unwrap_or("?").to_string())
        .collect();
    q.sort();
    q
}

/// The alerts `rx` was posted (each POST to `/api/v2/alerts` is an array) for queue `q`.
fn posted(rx: &HttpReceiver, q: &str) -> Vec<Value> {
    rx.received()
        .iter()
        .filter(|x| x.path() == "/api/v2/alerts")
        .flat_map(|x| x.json().as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["queue"] == q)
        .collect()
}

/// The scenario through the Alertmanager notifier: two series are two alerts (their label
/// sets differ in `queue`); a resolved one is posted with `endsAt` at its resolve and leaves
/// a real Alertmanager while the other stays.
#[test]
fn alertmanager_holds_one_alert_per_series_and_each_leaves_on_its_resolve() {
    let db = Db::start(JOBS);
    let am = Alertmanager::start();
    let rx = HttpReceiver::start(Answer::status(200, ""));
    let config = backlog_config(
        &db.url(),
        &Setup {
            route: &["am", "am-recorded"],
            rest: &format!(
                r#"
[[notifier]]
name = "am"
kind = "alertmanager"
url = "{am}"
resend_every = "1s"

[[notifier]]
name = "am-recorded"
kind = "alertmanager"
url = "{rx}"
resend_every = "1s"
"#,
                am = am.url(),
                rx = rx.url(""),
            ),
            ..Setup::default()
        },
    );
    let d = Daemon::start(&config);

    let held = wait(WAIT, "two alerts in Alertmanager", || {
        let held = active_in(&am);
        (queues(&held) == ["a", "b"]).then_some(held)
    });
    for alert in &held {
        assert_eq!(alert["labels"]["check"], "pg", "{alert:#}");
        assert_eq!(alert["labels"]["severity"], "critical", "{alert:#}");
    }
    assert_ne!(
        held[0]["fingerprint"], held[1]["fingerprint"],
        "two label sets, two alerts: {held:#?}"
    );
    for q in ["a", "b"] {
        let sent = posted(&rx, q);
        assert!(!sent.is_empty(), "nothing posted for queue {q}");
        let keys: BTreeSet<String> = sent
            .iter()
            .map(|a| {
                a["annotations"]["dedup_key"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        assert_eq!(keys.len(), 1, "one key per series: {keys:?}");
        let key = keys.into_iter().next().unwrap();
        epoch_and_number(&key, &series_key_prefix("backlog-high", &[("queue", q)]));
    }

    // b recovers: posted with endsAt at its resolve, gone from Alertmanager; a stays.
    db.execute(B_RECOVERS);
    wait(WAIT, "only a in Alertmanager", || {
        (queues(&active_in(&am)) == ["a"]).then_some(())
    });
    let resolved_b = wait(WAIT, "b's resolve posted", || {
        posted(&rx, "b").into_iter().find(|a| {
            a["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("RESOLVED"))
        })
    });
    let ends = resolved_b["endsAt"]
        .as_str()
        .unwrap_or_else(|| panic!("a resolved alert without endsAt: {resolved_b:#}"));
    let ends = humantime::parse_rfc3339(ends).unwrap_or_else(|e| panic!("endsAt {ends}: {e}"));
    let ends_ms = ends.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    assert!(
        ends_ms <= warden::clock::Clock::system().now().0,
        "a resolved alert ends at its resolve, not later: {resolved_b:#}"
    );

    // a's row goes: it leaves too, its resolve saying it disappeared.
    db.execute(A_GOES);
    wait(WAIT, "no alert in Alertmanager", || {
        active_in(&am).is_empty().then_some(())
    });
    let resolved_a = wait(WAIT, "a's resolve posted", || {
        posted(&rx, "a").into_iter().find(|a| {
            a["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("RESOLVED"))
        })
    });
    assert!(
        resolved_a["annotations"]["description"]
            .as_str()
            .unwrap_or_default()
            .contains("disappeared"),
        "{resolved_a:#}\n{}",
        d.log()
    );
}

// ---- hooks -------------------------------------------------------------------------------

/// The environments the hook wrote, one `run.<pid>` file per run, as name → value.
fn hook_runs(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("read the hook dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("run."))
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A hook on `backlog-high` runs once per series incident, with the series' labels in its
/// environment: two series, two runs; b resolving and a firing on run nothing more; b's
/// second incident runs it again, for b.
#[test]
fn a_hook_runs_once_per_series_incident_with_the_series_labels() {
    let db = Db::start(JOBS);
    let runs = tempfile::tempdir().unwrap();
    let dir = runs.path().display().to_string();
    let config = backlog_config(
        &db.url(),
        &Setup {
            rule: r#"hooks = [{ hook = "h", on = "critical" }]"#,
            rest: &format!(
                r#"
[[hook]]
name = "h"
shell = "env > {dir}/tmp.$$ && mv {dir}/tmp.$$ {dir}/run.$$"
cooldown = "0s"
timeout = "10s"
"#
            ),
            ..Setup::default()
        },
    );
    let d = Daemon::start(&config);

    let first = wait(WAIT, "two hook runs", || {
        let r = hook_runs(runs.path());
        (r.len() >= 2).then_some(r)
    });
    assert_eq!(first.len(), 2, "{first:#?}");
    let mut keys = BTreeMap::new();
    for env in &first {
        assert_eq!(
            env.get("WARDEN_ALERT").map(String::as_str),
            Some("backlog-high")
        );
        let q = env
            .get("WARDEN_LABEL_QUEUE")
            .unwrap_or_else(|| panic!("no WARDEN_LABEL_QUEUE: {env:#?}"))
            .clone();
        let key = env.get("WARDEN_DEDUP_KEY").cloned().unwrap_or_default();
        epoch_and_number(&key, &series_key_prefix("backlog-high", &[("queue", &q)]));
        keys.insert(q, key);
    }
    assert_eq!(keys.keys().collect::<Vec<_>>(), ["a", "b"], "{first:#?}");

    // b resolves, a fires on: no run.
    db.execute(B_RECOVERS);
    wait_series_state(&d, "backlog-high", Some(&queue("b")), "ok");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        hook_runs(runs.path()).len(),
        2,
        "{:#?}",
        hook_runs(runs.path())
    );

    // b's second incident: a run for b under its next key.
    db.execute("UPDATE jobs SET depth = 9 WHERE queue = 'b'");
    let all = wait(WAIT, "the run of b's second incident", || {
        let r = hook_runs(runs.path());
        (r.len() >= 3).then_some(r)
    });
    let new: Vec<&BTreeMap<String, String>> = all
        .iter()
        .filter(|env| {
            !keys
                .values()
                .any(|k| env.get("WARDEN_DEDUP_KEY") == Some(k))
        })
        .collect();
    assert_eq!(new.len(), 1, "{all:#?}");
    assert_eq!(
        new[0].get("WARDEN_LABEL_QUEUE").map(String::as_str),
        Some("b")
    );
    let prefix = series_key_prefix("backlog-high", &[("queue", "b")]);
    let (epoch, first_n) = epoch_and_number(&keys["b"], &prefix);
    let (epoch_again, second_n) = epoch_and_number(&new[0]["WARDEN_DEDUP_KEY"], &prefix);
    assert_eq!(epoch_again, epoch);
    assert!(
        second_n > first_n,
        "{} after {}",
        new[0]["WARDEN_DEDUP_KEY"],
        keys["b"]
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        hook_runs(runs.path()).len(),
        3,
        "{:#?}",
        hook_runs(runs.path())
    );
}

// ---- warden once -------------------------------------------------------------------------

/// `warden once` evaluates each series: a table line per series naming it, and the status
/// shape (`series` on labelled entries only) in JSON. Exit 2: a series is critical.
#[test]
fn warden_once_prints_a_line_and_an_entry_per_series() {
    let db = Db::start(&format!("{JOBS}\n{B_RECOVERS};"));
    let (_dir, path) = write_config(&backlog_config(
        &db.url(),
        &Setup {
            queries: r#"
[[check.query]]
name = "backlog_total"
sql = "SELECT sum(depth) FROM jobs"
"#,
            rest: r#"
[[rule]]
name = "backlog-total"
check = "pg"
value = "backlog_total"
critical = { when = "> 100" }
"#,
            ..Setup::default()
        },
    ));
    let path = path.to_str().unwrap();

    let out = warden(&["once", "-c", path]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let said = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{said}");
    for (q, state, value) in [("a", "critical", "7"), ("b", "ok", "1")] {
        let name = title("backlog-high", q);
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no line for {name}:\n{said}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((words[1], words[2]), (state, value), "{line}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some("backlog-total")),
        "{said}"
    );

    let out = warden(&["once", "-c", path, "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let status: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let rules = status["rules"].as_array().expect("a rules list");
    let of = |name: &str| -> Vec<&Value> { rules.iter().filter(|r| r["name"] == name).collect() };
    let high = of("backlog-high");
    assert_eq!(high.len(), 2, "{status:#}");
    for (q, state, value) in [("a", "critical", 7.0), ("b", "ok", 1.0)] {
        let e = high
            .iter()
            .find(|r| r["series"] == queue(q))
            .unwrap_or_else(|| panic!("no entry for queue {q}: {status:#}"));
        assert_eq!(e["state"], state, "{e:#}");
        assert_eq!(e["value"].as_f64(), Some(value), "{e:#}");
    }
    let total = of("backlog-total");
    assert_eq!(total.len(), 1, "{status:#}");
    assert!(total[0].get("series").is_none(), "{:#}", total[0]);
    assert_eq!(total[0]["value"].as_f64(), Some(8.0));
}

// ---- the issue's own query ---------------------------------------------------------------

/// The issue's example: connections per database from `pg_stat_activity`, critical above 3.
/// Two databases hold one connection each; four to `orders` fire `orders` alone, and it
/// resolves when they close. The probe's own connection is to `postgres`, so it counts there,
/// never in the databases under test.
#[test]
fn connections_per_database_fire_only_the_crowded_database() {
    const LIMIT: usize = 3;
    let db = Db::start("");
    db.execute("CREATE DATABASE orders");
    db.execute("CREATE DATABASE billing");
    // One each, so both databases have a row (a database without a connection has none).
    let _baseline = [db.connect_to("orders"), db.connect_to("billing")];
    let d = Daemon::start(&format!(
        r#"
[alerting]
instance = "{INSTANCE}"

[[check]]
name = "pg"
kind = "postgres"
url = "{url}"
interval = "200ms"
timeout = "200ms"

[[check.query]]
name = "connections_by_db"
sql = "SELECT datname, count(*) FROM pg_stat_activity WHERE datname IS NOT NULL GROUP BY datname"
result = "series"

[[rule]]
name = "too-many-connections"
check = "pg"
value = "connections_by_db"
critical = {{ when = "> {LIMIT}" }}
"#,
        url = db.url()
    ));
    const RULE: &str = "too-many-connections";
    let (orders, billing, postgres) = (
        json!({"datname": "orders"}),
        json!({"datname": "billing"}),
        json!({"datname": "postgres"}),
    );
    for series in [&orders, &billing, &postgres] {
        wait_series_state(&d, RULE, Some(series), "ok");
    }
    assert_eq!(
        entry(&d, RULE, Some(&orders)).unwrap()["value"].as_f64(),
        Some(1.0)
    );

    let crowd: Vec<Client> = (0..LIMIT).map(|_| db.connect_to("orders")).collect();
    let fired = wait_series_state(&d, RULE, Some(&orders), "critical");
    assert_eq!(
        fired["value"].as_f64(),
        Some((LIMIT + 1) as f64),
        "{fired:#}"
    );
    for series in [&billing, &postgres] {
        let e = entry(&d, RULE, Some(series)).unwrap();
        assert_eq!(e["state"], "ok", "{e:#}");
    }
    let firing = alerts_of(&d, RULE);
    assert_eq!(firing.len(), 1, "{firing:#?}");
    assert_eq!(firing[0]["series"], orders);
    epoch_and_number(
        &key_of(&firing[0]),
        &series_key_prefix(RULE, &[("datname", "orders")]),
    );

    drop(crowd);
    let resolved = wait_series_state(&d, RULE, Some(&orders), "ok");
    assert_eq!(resolved["value"].as_f64(), Some(1.0), "{resolved:#}");
    wait(WAIT, "the alert to resolve", || {
        alerts_of(&d, RULE).is_empty().then_some(())
    });
}

// ---- config errors -----------------------------------------------------------------------

/// `[alerting] instance` is part of every dedup key: one with a space is refused by
/// `check-config` (exit 1, its documented code for an invalid config), naming its line.
#[test]
fn an_alerting_instance_with_a_space_is_refused_naming_its_line() {
    let (_dir, path) = write_config(
        r#"[alerting]
instance = "has space"

[[check]]
name = "x"
kind = "tcp"
address = "127.0.0.1:1"
"#,
    );
    let shown = path.display().to_string();
    let out = warden(&["check-config", "-c", &shown]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{shown}:2:")) && lines[0].contains("instance"),
        "{stderr}"
    );
}
