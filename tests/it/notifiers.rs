//! Every notifier against a real receiver on loopback: in-process HTTP receivers that record
//! what arrives (webhook, Slack, PagerDuty), a real `prometheus-alertmanager`, and a real
//! aiosmtpd SMTP sink (plain, STARTTLS with AUTH, implicit TLS). Bodies are compared with the
//! golden fixtures in `tests/fixtures/notify/` (the same ones the unit tests render), and one
//! helper proves that no notifier shows a secret in `Debug`, a delivery reason or an error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;
use warden::alert::{Delivery, Event, Severity, Sink};
use warden::clock::{Clock, Timestamp};
use warden::config::notifier::{
    AlertmanagerConfig, EmailConfig, EmailTls, NotifierConfig, NotifierKind, PagerDutyConfig,
    SlackConfig, WebhookConfig, WebhookFormat,
};
use warden::notify::{alertmanager, Notifier};
use warden::secret::Secret;

use crate::harness::alertmanager::Alertmanager;
use crate::harness::notify_receiver::{Answer, Receiver};
use crate::harness::smtp::{Mail, SmtpSink};
use crate::harness::{free_port, Pki};

const TIMEOUT: Duration = Duration::from_secs(5);
/// The timeout of notifiers aimed at a receiver that hangs.
const SHORT: Duration = Duration::from_millis(500);
/// No single send in these tests may take longer than this, whatever the notifier does.
const BOUND: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(10);

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notify")
}

fn events() -> BTreeMap<String, Event> {
    let text = std::fs::read_to_string(fixtures().join("events.json")).expect("events.json");
    serde_json::from_str(&text).expect("events.json holds events")
}

fn fixture(stem: &str) -> Json {
    let path = fixtures().join(format!("{stem}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn notifier(name: &str, timeout: Duration, kind: NotifierKind) -> Notifier {
    let config = NotifierConfig {
        name: name.to_string(),
        timeout,
        kind,
    };
    Notifier::new(&config, &Clock::system()).unwrap_or_else(|e| panic!("build {name}: {e}"))
}

async fn send(n: &Notifier, event: &Event) -> Delivery {
    tokio::time::timeout(BOUND, n.send(event))
        .await
        .unwrap_or_else(|_| panic!("{} did not return within {BOUND:?}", n.name()))
}

fn webhook(url: String, format: WebhookFormat, template: Option<&str>) -> NotifierKind {
    NotifierKind::Webhook(WebhookConfig {
        url: Secret::new(url),
        headers: vec![
            ("X-Api-Key".into(), Secret::new("key-SECRET-1")),
            ("Authorization".into(), Secret::new("Bearer tok-SECRET-2")),
        ],
        format,
        template: template.map(str::to_string),
        external_url: Some("http://warden.example:9731".into()),
    })
}

fn slack(url: String) -> NotifierKind {
    NotifierKind::Slack(SlackConfig {
        webhook_url: Secret::new(url),
        channel: Some("#ops".into()),
        username: Some("warden".into()),
    })
}

const ROUTING_KEY: &str = "R0UT1NGKEY0123456789abcdef";

fn pagerduty(url: String, routing_key: &str) -> NotifierKind {
    NotifierKind::PagerDuty(PagerDutyConfig {
        routing_key: Secret::new(routing_key),
        url,
        source: "warden.prod-1".into(),
        component: None,
        group: Some("redcube".into()),
        class: None,
    })
}

fn alertmanager_kind(url: String) -> NotifierKind {
    NotifierKind::Alertmanager(AlertmanagerConfig {
        url,
        resend_every: Duration::from_secs(60),
        generator_url: Some("http://warden.example:9731/api/v1/status".into()),
    })
}

const KINDS: [&str; 5] = ["firing", "warning", "resolved", "hook", "test"];

#[tokio::test(flavor = "multi_thread")]
async fn webhook_posts_the_warden_payload_with_custom_headers() {
    let rx = Receiver::start(Answer::status(200, ""));
    let n = notifier(
        "ops-webhook",
        TIMEOUT,
        webhook(
            rx.url("/hooks/T0K3N-SECRET?sig=abc123"),
            WebhookFormat::Warden,
            None,
        ),
    );
    let events = events();
    for kind in KINDS {
        rx.clear();
        assert_eq!(send(&n, &events[kind]).await, Delivery::Ok, "{kind}");
        let got = rx.only();
        assert_eq!(got.method, "POST");
        assert_eq!(got.target, "/hooks/T0K3N-SECRET?sig=abc123");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.header("x-api-key"), Some("key-SECRET-1"));
        assert_eq!(got.header("authorization"), Some("Bearer tok-SECRET-2"));
        assert!(got
            .header("user-agent")
            .unwrap_or("")
            .starts_with("warden/"));
        assert_eq!(got.json(), fixture(&format!("webhook-{kind}")), "{kind}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_alertmanager_format_is_what_alertmanager_receivers_expect() {
    let rx = Receiver::start(Answer::status(200, ""));
    let n = notifier(
        "ops-webhook",
        TIMEOUT,
        webhook(rx.url("/alerts"), WebhookFormat::Alertmanager, None),
    );
    let events = events();
    for kind in KINDS {
        rx.clear();
        assert_eq!(send(&n, &events[kind]).await, Delivery::Ok, "{kind}");
        let body = rx.only().json();
        assert_eq!(
            body,
            fixture(&format!("webhook-alertmanager-{kind}")),
            "{kind}"
        );
        assert_eq!(body["version"], "4");
    }
    let firing = fixture("webhook-alertmanager-firing");
    assert_eq!(firing["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        fixture("webhook-alertmanager-resolved")["status"],
        "resolved"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_template_is_rendered_and_headers_may_override_the_content_type() {
    let rx = Receiver::start(Answer::status(204, ""));
    let template = r#"{"text": "{{summary}}", "key": "{{dedup_key}}", "team": "{{labels.team}}", "note": "{{description}}"}"#;
    let mut kind = webhook(rx.url("/t"), WebhookFormat::Warden, Some(template));
    if let NotifierKind::Webhook(c) = &mut kind {
        c.headers.push((
            "Content-Type".into(),
            Secret::new("application/vnd.team+json"),
        ));
    }
    let n = notifier("templated", TIMEOUT, kind);
    let event = &events()["firing"];
    assert_eq!(send(&n, event).await, Delivery::Ok);
    let got = rx.only();
    assert_eq!(
        got.header("content-type"),
        Some("application/vnd.team+json")
    );
    assert_eq!(
        got.json(),
        serde_json::json!({
            "text": "CRITICAL: redis-memory on redis — memory_ratio 0.97 > 0.95",
            "key": "warden/redis-memory/1795304100000",
            "team": "cache",
            "note": event.description.clone().unwrap(),
        })
    );

    let bad = NotifierConfig {
        name: "bad".into(),
        timeout: TIMEOUT,
        kind: webhook(
            rx.url("/t"),
            WebhookFormat::Warden,
            Some("{{alert}} {{nope}}"),
        ),
    };
    let err = Notifier::new(&bad, &Clock::system()).unwrap_err();
    assert!(
        err.starts_with("notifier \"bad\": template: unknown placeholder {{nope}} at byte 10"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn slack_posts_the_golden_message() {
    let rx = Receiver::start(Answer::status(200, "ok"));
    let n = notifier(
        "ops-slack",
        TIMEOUT,
        slack(rx.url("/services/T0/B0/SLACKSECRET")),
    );
    let events = events();
    for kind in KINDS {
        rx.clear();
        assert_eq!(send(&n, &events[kind]).await, Delivery::Ok, "{kind}");
        let got = rx.only();
        assert_eq!(got.target, "/services/T0/B0/SLACKSECRET");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.json(), fixture(&format!("slack-{kind}")), "{kind}");
    }
    assert_eq!(
        fixture("slack-firing")["attachments"][0]["color"],
        "#E01E5A"
    );
    assert_eq!(
        fixture("slack-warning")["attachments"][0]["color"],
        "#ECB22E"
    );
    assert_eq!(
        fixture("slack-resolved")["attachments"][0]["color"],
        "#2EB67D"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pagerduty_posts_events_v2() {
    let rx = Receiver::start(Answer::status(
        202,
        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
    ));
    let n = notifier("pd", TIMEOUT, pagerduty(rx.url("/v2/enqueue"), ROUTING_KEY));
    let events = events();
    for kind in KINDS {
        rx.clear();
        assert_eq!(send(&n, &events[kind]).await, Delivery::Ok, "{kind}");
        let got = rx.only();
        assert_eq!(got.target, "/v2/enqueue");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(got.json(), fixture(&format!("pagerduty-{kind}")), "{kind}");
    }
    let resolve = fixture("pagerduty-resolved");
    assert_eq!(resolve.as_object().unwrap().len(), 3, "{resolve}");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(fixture("pagerduty-test")["payload"]["severity"], "info");
}

/// How a delivery came out, for the classification table.
#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    Retry(Option<Duration>),
    Permanent,
}

fn outcome(d: &Delivery) -> Outcome {
    match d {
        Delivery::Ok => Outcome::Ok,
        Delivery::Retryable { retry_after, .. } => Outcome::Retry(*retry_after),
        Delivery::Permanent { .. } => Outcome::Permanent,
    }
}

fn reason(d: &Delivery) -> &str {
    match d {
        Delivery::Ok => "",
        Delivery::Retryable { reason, .. } | Delivery::Permanent { reason } => reason,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn http_notifiers_classify_every_outcome() {
    // (kind, path the receiver must be asked at, a 2xx body the receiver accepts with)
    type Make = fn(String) -> NotifierKind;
    let kinds: [(&str, &str, Make, &str); 4] = [
        (
            "webhook",
            "/hook",
            |u| webhook(u, WebhookFormat::Warden, None),
            "",
        ),
        ("slack", "/services/T/B/X", slack, "ok"),
        (
            "pagerduty",
            "/v2/enqueue",
            |u| pagerduty(u, ROUTING_KEY),
            "{}",
        ),
        ("alertmanager", "/api/v2/alerts", alertmanager_kind, ""),
    ];
    let event = events()["firing"].clone();
    let retry_at = httpdate::fmt_http_date(
        std::time::UNIX_EPOCH
            + Duration::from_millis(
                (Clock::system().now() + Duration::from_secs(3600)).as_millis() as u64,
            ),
    );
    for (kind, path, make, ok_body) in kinds {
        let rx = Receiver::start(Answer::status(200, ok_body));
        // The Alertmanager notifier appends /api/v2/alerts to its base URL.
        let url = if kind == "alertmanager" {
            rx.url("")
        } else {
            rx.url(path)
        };
        let n = notifier(kind, SHORT, make(url));
        let cases: Vec<(&str, Answer, Outcome)> = vec![
            ("200", Answer::status(200, ok_body), Outcome::Ok),
            ("202", Answer::status(202, ok_body), Outcome::Ok),
            (
                "301",
                Answer::status(301, "").header("location", "http://example.invalid/"),
                Outcome::Permanent,
            ),
            (
                "400",
                Answer::status(400, r#"{"error":"bad event"}"#),
                Outcome::Permanent,
            ),
            ("404", Answer::status(404, "no_service"), Outcome::Permanent),
            (
                "429 seconds",
                Answer::status(429, "slow down").header("retry-after", "7"),
                Outcome::Retry(Some(Duration::from_secs(7))),
            ),
            (
                "429 no header",
                Answer::status(429, ""),
                Outcome::Retry(None),
            ),
            ("500", Answer::status(500, "boom"), Outcome::Retry(None)),
            (
                "503 retry-after",
                Answer::status(503, "").header("retry-after", "120"),
                Outcome::Retry(Some(Duration::from_secs(120))),
            ),
            (
                "hang",
                Answer::status(200, ok_body).delay(Duration::from_secs(5)),
                Outcome::Retry(None),
            ),
        ];
        for (case, answer, want) in cases {
            rx.set(answer);
            rx.clear();
            let got = send(&n, &event).await;
            assert_eq!(outcome(&got), want, "{kind} {case}: {got:?}");
            let received = rx.received();
            assert_eq!(received.len(), 1, "{kind} {case}: sent once, never retried");
            assert_eq!(
                received[0].target.split('?').next(),
                Some(path),
                "{kind} {case}"
            );
            if case == "hang" {
                assert!(reason(&got).contains("timed out"), "{kind}: {got:?}");
            }
            if case == "400" {
                assert!(reason(&got).contains("status 400"), "{kind}: {got:?}");
                assert!(reason(&got).contains("bad event"), "{kind}: {got:?}");
            }
        }
        // Retry-After as an HTTP-date: about an hour (the receiver's and our clock agree).
        rx.set(Answer::status(429, "").header("retry-after", &retry_at));
        match send(&n, &event).await {
            Delivery::Retryable {
                retry_after: Some(d),
                ..
            } => assert!(
                d > Duration::from_secs(3000) && d <= Duration::from_secs(3600),
                "{kind}: {d:?}"
            ),
            other => panic!("{kind} 429 with an http-date: {other:?}"),
        }
        // Slack: a 200 whose body is not "ok" is Slack's error string.
        if kind == "slack" {
            rx.set(Answer::status(200, "invalid_payload"));
            let got = send(&n, &event).await;
            assert_eq!(outcome(&got), Outcome::Permanent, "{got:?}");
            assert!(reason(&got).contains("invalid_payload"), "{got:?}");
        }
        drop(rx);
        // Connection refused: nothing listens on a port that was free a moment ago.
        let port = free_port();
        let url = if kind == "alertmanager" {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://127.0.0.1:{port}{path}")
        };
        let refused = notifier(kind, SHORT, make(url));
        let got = send(&refused, &event).await;
        assert_eq!(
            outcome(&got),
            Outcome::Retry(None),
            "{kind} refused: {got:?}"
        );
        assert!(reason(&got).contains("connect"), "{kind} refused: {got:?}");
    }
}

/// Moves an event's times next to the real clock (a real Alertmanager compares them with
/// its own).
fn at_now(mut event: Event, since_ago: Duration, at_ago: Duration) -> Event {
    let now = Clock::system().now();
    event.since = (now - since_ago).to_rfc3339();
    event.at = (now - at_ago).to_rfc3339();
    event
}

/// The active alerts named `alertname`, from the real Alertmanager's API.
async fn active_alerts(am: &Alertmanager, alertname: &str) -> Vec<Json> {
    let url = format!("{}/api/v2/alerts?active=true", am.url());
    let body: Json = serde_json::from_slice(
        &reqwest::Client::new()
            .get(&url)
            .timeout(TIMEOUT)
            .send()
            .await
            .expect("GET /api/v2/alerts")
            .bytes()
            .await
            .expect("alerts body"),
    )
    .expect("alerts are JSON");
    body.as_array()
        .expect("an array of alerts")
        .iter()
        .filter(|a| a["labels"]["alertname"] == alertname)
        .cloned()
        .collect()
}

fn severities(alerts: &[Json]) -> Vec<String> {
    let mut s: Vec<String> = alerts
        .iter()
        .map(|a| a["labels"]["severity"].as_str().unwrap_or("").to_string())
        .collect();
    s.sort();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_holds_pushed_alerts_until_they_resolve() {
    let am = Alertmanager::start();
    let n = notifier("am", TIMEOUT, alertmanager_kind(am.url()));
    let events = events();
    let five_min = Duration::from_secs(300);

    // A warning fires: Alertmanager holds it with our labels, annotations and fingerprint.
    let warning = at_now(events["warning"].clone(), five_min, Duration::from_secs(1));
    assert_eq!(send(&n, &warning).await, Delivery::Ok, "{}", am.log());
    let held = active_alerts(&am, "redis-memory").await;
    assert_eq!(severities(&held), ["warning"], "{held:#?}");
    let labels = alertmanager::labels(&warning, Severity::Warning);
    assert_eq!(held[0]["labels"], serde_json::to_value(&labels).unwrap());
    assert_eq!(
        held[0]["annotations"],
        serde_json::to_value(alertmanager::annotations(&warning)).unwrap()
    );
    assert_eq!(held[0]["fingerprint"], alertmanager::fingerprint(&labels));
    assert_eq!(
        held[0]["generatorURL"],
        "http://warden.example:9731/api/v1/status"
    );
    // endsAt = now + 4 × resend_every (60 s): about four minutes ahead of the send.
    let ends = humantime::parse_rfc3339_weak(held[0]["endsAt"].as_str().unwrap())
        .expect("endsAt is RFC 3339");
    let ends_ms = ends
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ahead = Timestamp::from_millis(ends_ms).since(Clock::system().now());
    assert!(
        ahead > Duration::from_secs(200) && ahead <= Duration::from_secs(240),
        "endsAt {ahead:?} ahead"
    );

    // It escalates: the critical alert replaces the warning in the same push.
    let critical = at_now(events["firing"].clone(), five_min, Duration::ZERO);
    assert_eq!(send(&n, &critical).await, Delivery::Ok);
    let held = active_alerts(&am, "redis-memory").await;
    assert_eq!(severities(&held), ["critical"], "{held:#?}");
    assert_eq!(
        held[0]["annotations"]["summary"],
        "CRITICAL: redis-memory on redis — memory_ratio 0.97 > 0.95"
    );

    // It resolves: gone from the active alerts.
    let resolved = at_now(events["resolved"].clone(), five_min, Duration::ZERO);
    assert_eq!(send(&n, &resolved).await, Delivery::Ok);
    let mut left = active_alerts(&am, "redis-memory").await;
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = active_alerts(&am, "redis-memory").await;
    }
    assert!(left.is_empty(), "still active after resolve: {left:#?}");

    // A hook outcome is its own alert, and a bad push is rejected for good.
    let hook = at_now(events["hook"].clone(), five_min, Duration::ZERO);
    assert_eq!(send(&n, &hook).await, Delivery::Ok);
    let hooks = active_alerts(&am, "WardenHook").await;
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["labels"]["hook"], "rollback");
    assert_eq!(hooks[0]["labels"]["outcome"], "ok");
    let mut bad = at_now(events["firing"].clone(), five_min, Duration::ZERO);
    bad.since = "not a time".into();
    let got = send(&n, &bad).await;
    assert_eq!(outcome(&got), Outcome::Permanent, "{got:?}");
    assert!(reason(&got).contains("status 400"), "{got:?}");
}

// ---- email ---------------------------------------------------------------------------

const SMTP_PASSWORD: &str = "smtp-SECRET-pass";

fn email_kind(smtp: String, tls: EmailTls, auth: bool, ca: Option<PathBuf>) -> NotifierKind {
    NotifierKind::Email(EmailConfig {
        smtp,
        tls,
        username: auth.then(|| "warden".to_string()),
        password: auth.then(|| Secret::new(SMTP_PASSWORD)),
        from: "warden <warden@example.com>".into(),
        to: vec!["oncall@example.com".into(), "sre@example.com".into()],
        ca_file: ca,
        accept_invalid_certs: false,
    })
}

/// The message as the golden fixture says it must read.
fn assert_reads_as_fixture(mail: &Mail, kind: &str) {
    let want = fixture(&format!("email-{kind}"));
    assert_eq!(mail.subject, want["subject"], "{kind}");
    let body: Vec<&str> = want["body"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert_eq!(mail.body.trim_end_matches('\n'), body.join("\n"), "{kind}");
    assert_eq!(
        mail.header("Message-ID"),
        want["message_id"].as_str(),
        "{kind}"
    );
    assert_eq!(
        mail.header("In-Reply-To"),
        want["thread"].as_str(),
        "{kind}"
    );
    assert_eq!(mail.header("References"), want["thread"].as_str(), "{kind}");
    for (name, value) in want["headers"].as_object().unwrap() {
        assert_eq!(mail.header(name), value.as_str(), "{kind} {name}");
    }
    assert_eq!(mail.header("From"), Some("warden <warden@example.com>"));
    assert_eq!(
        mail.header("To"),
        Some("oncall@example.com, sre@example.com")
    );
    assert!(mail.header("Date").is_some(), "{kind}: no Date");
    let content_type = mail
        .header("Content-Type")
        .unwrap_or("")
        .to_ascii_lowercase()
        .replace('"', "");
    assert!(
        content_type.starts_with("text/plain; charset=utf-8"),
        "{content_type}"
    );
    assert_eq!(mail.mail_from, "warden@example.com");
    assert_eq!(mail.rcpt_tos, ["oncall@example.com", "sre@example.com"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn email_over_plain_smtp_reads_at_3am_and_threads_the_incident() {
    let sink = SmtpSink::start();
    let n = notifier(
        "ops-mail",
        TIMEOUT,
        email_kind(sink.address(), EmailTls::None, false, None),
    );
    let events = events();
    for kind in KINDS {
        assert_eq!(
            send(&n, &events[kind]).await,
            Delivery::Ok,
            "{kind}: {}",
            sink.log()
        );
    }
    let mails = sink.wait_for(KINDS.len(), WAIT);
    assert_eq!(mails.len(), KINDS.len(), "{}", sink.log());
    for (mail, kind) in mails.iter().zip(KINDS) {
        assert_reads_as_fixture(mail, kind);
        assert_eq!(mail.tls, "none");
        assert!(mail.auth.is_none());
    }
    // One incident, one thread: firing, warning, resolved and hook share References.
    let threads: Vec<_> = mails[..4].iter().map(|m| m.header("References")).collect();
    assert!(threads.iter().all(|t| *t == threads[0]), "{threads:?}");
    assert_ne!(mails[4].header("References"), threads[0]);
}

struct TlsFiles {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

fn tls_files() -> TlsFiles {
    let dir = tempfile::tempdir().expect("tls dir");
    let pki = Pki::new();
    let (cert, key) = pki.write_leaf(dir.path(), "localhost", 30 * 86_400);
    let ca = pki.write_ca(dir.path());
    TlsFiles {
        _dir: dir,
        cert,
        key,
        ca,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn email_over_starttls_authenticates_with_plain_and_login() {
    let tls = tls_files();
    for mechanism in ["PLAIN", "LOGIN"] {
        let sink = SmtpSink::with()
            .starttls(&tls.cert, &tls.key)
            .auth("warden", SMTP_PASSWORD)
            .mechanisms(&[mechanism])
            .start();
        let smtp = format!("localhost:{}", sink.port());
        let n = notifier(
            "ops-mail",
            TIMEOUT,
            email_kind(smtp.clone(), EmailTls::StartTls, true, Some(tls.ca.clone())),
        );
        let events = events();
        assert_eq!(
            send(&n, &events["firing"]).await,
            Delivery::Ok,
            "{}",
            sink.log()
        );
        assert_eq!(send(&n, &events["resolved"]).await, Delivery::Ok);
        let mails = sink.wait_for(2, WAIT);
        assert_eq!(mails.len(), 2, "{}", sink.log());
        assert_reads_as_fixture(&mails[0], "firing");
        assert_reads_as_fixture(&mails[1], "resolved");
        for mail in &mails {
            assert_eq!(mail.tls, "starttls");
            assert_eq!(
                mail.auth,
                Some(serde_json::json!({"login": "warden", "mechanism": mechanism}))
            );
        }

        // A wrong password is refused for good (535), and says so without the password.
        let mut wrong = email_kind(smtp.clone(), EmailTls::StartTls, true, Some(tls.ca.clone()));
        if let NotifierKind::Email(c) = &mut wrong {
            c.password = Some(Secret::new("not-the-password"));
        }
        let got = send(&notifier("ops-mail", TIMEOUT, wrong), &events["firing"]).await;
        assert_eq!(outcome(&got), Outcome::Permanent, "{got:?}");
        assert!(reason(&got).contains("535"), "{got:?}");
        // No credentials where the relay demands them: permanent too (530).
        let anonymous = email_kind(
            smtp.clone(),
            EmailTls::StartTls,
            false,
            Some(tls.ca.clone()),
        );
        let got = send(&notifier("ops-mail", TIMEOUT, anonymous), &events["firing"]).await;
        assert_eq!(outcome(&got), Outcome::Permanent, "{got:?}");
        // A certificate we do not trust: retryable (it may be rotated), nothing sent.
        let untrusted = email_kind(smtp, EmailTls::StartTls, true, None);
        let got = send(&notifier("ops-mail", TIMEOUT, untrusted), &events["firing"]).await;
        assert_eq!(outcome(&got), Outcome::Retry(None), "{got:?}");
        assert!(reason(&got).contains("certificate"), "{got:?}");
        assert_eq!(sink.mails().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn email_over_implicit_tls() {
    let tls = tls_files();
    let sink = SmtpSink::with().smtps(&tls.cert, &tls.key).start();
    let smtp = format!("localhost:{}", sink.port());
    let verified = notifier(
        "ops-mail",
        TIMEOUT,
        email_kind(
            smtp.clone(),
            EmailTls::Implicit,
            false,
            Some(tls.ca.clone()),
        ),
    );
    let events = events();
    assert_eq!(
        send(&verified, &events["firing"]).await,
        Delivery::Ok,
        "{}",
        sink.log()
    );
    // accept_invalid_certs: no CA given, verification off (test relays only).
    let mut kind = email_kind(smtp, EmailTls::Implicit, false, None);
    if let NotifierKind::Email(c) = &mut kind {
        c.accept_invalid_certs = true;
    }
    let unverified = notifier("ops-mail", TIMEOUT, kind);
    assert_eq!(send(&unverified, &events["resolved"]).await, Delivery::Ok);
    let mails = sink.wait_for(2, WAIT);
    assert_eq!(mails.len(), 2, "{}", sink.log());
    assert_reads_as_fixture(&mails[0], "firing");
    assert_reads_as_fixture(&mails[1], "resolved");
    assert!(mails.iter().all(|m| m.tls == "implicit"));
}

#[tokio::test(flavor = "multi_thread")]
async fn email_classifies_smtp_replies_and_transport_failures() {
    let sink = SmtpSink::start();
    let event = events()["firing"].clone();
    let to = |addr: &str| {
        let mut kind = email_kind(sink.address(), EmailTls::None, false, None);
        if let NotifierKind::Email(c) = &mut kind {
            c.to = vec![addr.to_string()];
        }
        notifier("ops-mail", TIMEOUT, kind)
    };
    let got = send(&to("reject@example.com"), &event).await;
    assert_eq!(outcome(&got), Outcome::Permanent, "{got:?}");
    assert!(reason(&got).contains("550"), "{got:?}");
    let got = send(&to("later@example.com"), &event).await;
    assert_eq!(outcome(&got), Outcome::Retry(None), "{got:?}");
    assert!(reason(&got).contains("451"), "{got:?}");
    assert!(sink.mails().is_empty());

    // A relay that accepts the connection and never greets: the send is cut at the timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().unwrap().to_string();
    let n = notifier(
        "ops-mail",
        SHORT,
        email_kind(addr, EmailTls::None, false, None),
    );
    let got = send(&n, &event).await;
    assert_eq!(outcome(&got), Outcome::Retry(None), "{got:?}");
    assert!(reason(&got).contains("timed out"), "{got:?}");

    // Nothing listening.
    let n = notifier(
        "ops-mail",
        SHORT,
        email_kind(
            format!("127.0.0.1:{}", free_port()),
            EmailTls::None,
            false,
            None,
        ),
    );
    let got = send(&n, &event).await;
    assert_eq!(outcome(&got), Outcome::Retry(None), "{got:?}");

    // Credentials are never sent in the clear: refused when the notifier is built.
    let config = NotifierConfig {
        name: "clear".into(),
        timeout: TIMEOUT,
        kind: email_kind(sink.address(), EmailTls::None, true, None),
    };
    let err = Notifier::new(&config, &Clock::system()).unwrap_err();
    assert!(err.contains("never sent in the clear"), "{err}");
}

// ---- secrets ---------------------------------------------------------------------------

/// Proves `secrets` appear nowhere in what a person or a log could see of this notifier: the
/// config's and the notifier's `Debug`, and the reasons of `deliveries`. `scrubbed` says
/// that at least one reason had a secret echoed back by the receiver (so the check is not
/// vacuous) and must show `<secret>` instead.
fn assert_hides_secrets(
    config: &NotifierConfig,
    notifier: &Notifier,
    deliveries: &[Delivery],
    secrets: &[&str],
    scrubbed: bool,
) {
    let mut seen = vec![
        ("config Debug", format!("{config:?}")),
        ("notifier Debug", format!("{notifier:?}")),
    ];
    for d in deliveries {
        seen.push(("delivery", format!("{d:?}")));
    }
    for (what, text) in &seen {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{} {what} shows secret {secret:?}: {text}",
                config.name
            );
        }
    }
    if scrubbed {
        assert!(
            deliveries.iter().any(|d| reason(d).contains("<secret>")),
            "{}: no reason shows <secret>: {deliveries:?}",
            config.name
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_notifier_shows_a_secret() {
    let events = events();
    let clock = Clock::system();
    let echo = Receiver::start(Answer::status(400, "").echo());
    let refused = free_port();

    // (config against the echoing receiver, the same against a refused port, its secrets)
    let url_token = "/hooks/T0K3N-SECRET?sig=abc123-SECRET";
    let slack_token = "/services/T0/B0/SLACKSECRET";
    let pd_key = "R0UT1NG-SECRET-KEY";
    let am_password = "am-SECRET-pw";
    let webhook_secrets = [
        "T0K3N-SECRET",
        "abc123-SECRET",
        "key-SECRET-1",
        "tok-SECRET-2",
    ];
    let cases: Vec<(NotifierKind, NotifierKind, Vec<&str>, bool)> = vec![
        (
            webhook(echo.url(url_token), WebhookFormat::Warden, None),
            webhook(
                format!("http://127.0.0.1:{refused}{url_token}"),
                WebhookFormat::Warden,
                None,
            ),
            webhook_secrets.to_vec(),
            true,
        ),
        (
            slack(echo.url(slack_token)),
            slack(format!("http://127.0.0.1:{refused}{slack_token}")),
            vec!["SLACKSECRET"],
            true,
        ),
        (
            pagerduty(echo.url("/v2/enqueue"), pd_key),
            pagerduty(format!("http://127.0.0.1:{refused}/v2/enqueue"), pd_key),
            vec![pd_key],
            true,
        ),
        (
            alertmanager_kind(
                echo.url("")
                    .replace("http://", &format!("http://warden:{am_password}@")),
            ),
            alertmanager_kind(format!("http://warden:{am_password}@127.0.0.1:{refused}")),
            // The client sends the credentials as `Authorization: Basic base64(user:pw)`;
            // the echoing receiver sends that back.
            vec![am_password, "d2FyZGVuOmFtLVNFQ1JFVC1wdw=="],
            true,
        ),
    ];
    for (against_echo, against_nothing, secrets, scrubbed) in cases {
        let config = NotifierConfig {
            name: "leaky".into(),
            timeout: SHORT,
            kind: against_echo,
        };
        let n = Notifier::new(&config, &clock).expect("build");
        let mut deliveries = Vec::new();
        for kind in KINDS {
            deliveries.push(send(&n, &events[kind]).await);
        }
        let config_down = NotifierConfig {
            name: "leaky-down".into(),
            timeout: SHORT,
            kind: against_nothing,
        };
        let down = Notifier::new(&config_down, &clock).expect("build");
        deliveries.push(send(&down, &events["firing"]).await);
        assert_hides_secrets(&config, &n, &deliveries, &secrets, scrubbed);
        assert_hides_secrets(&config_down, &down, &deliveries, &secrets, false);
    }

    // Email: the password, against a relay that refuses it and against nothing at all.
    let tls = tls_files();
    let sink = SmtpSink::with()
        .starttls(&tls.cert, &tls.key)
        .auth("warden", "the-right-one")
        .start();
    let config = NotifierConfig {
        name: "leaky-mail".into(),
        timeout: TIMEOUT,
        kind: email_kind(
            format!("localhost:{}", sink.port()),
            EmailTls::StartTls,
            true,
            Some(tls.ca.clone()),
        ),
    };
    let n = Notifier::new(&config, &clock).expect("build");
    let config_down = NotifierConfig {
        name: "leaky-mail-down".into(),
        timeout: SHORT,
        kind: email_kind(
            format!("127.0.0.1:{refused}"),
            EmailTls::StartTls,
            true,
            None,
        ),
    };
    let down = Notifier::new(&config_down, &clock).expect("build");
    let deliveries = vec![
        send(&n, &events["firing"]).await,
        send(&down, &events["firing"]).await,
    ];
    assert_eq!(
        outcome(&deliveries[0]),
        Outcome::Permanent,
        "{deliveries:?}"
    );
    assert_hides_secrets(&config, &n, &deliveries, &[SMTP_PASSWORD], false);
    assert_hides_secrets(&config_down, &down, &deliveries, &[SMTP_PASSWORD], false);

    // Config errors never quote a secret either.
    let bad_configs = vec![
        webhook(
            "htp:/not a url T0K3N-SECRET".into(),
            WebhookFormat::Warden,
            None,
        ),
        NotifierKind::Webhook(WebhookConfig {
            url: Secret::new("http://127.0.0.1/x"),
            headers: vec![("X-Api-Key".into(), Secret::new("bad\nkey-SECRET-1"))],
            format: WebhookFormat::Warden,
            template: None,
            external_url: None,
        }),
        slack("not a url SLACKSECRET".into()),
        email_kind("127.0.0.1:25".into(), EmailTls::None, true, None),
    ];
    for kind in bad_configs {
        let config = NotifierConfig {
            name: "bad".into(),
            timeout: TIMEOUT,
            kind,
        };
        let err = Notifier::new(&config, &clock).unwrap_err();
        for secret in ["T0K3N-SECRET", "key-SECRET-1", "SLACKSECRET", SMTP_PASSWORD] {
            assert!(!err.contains(secret), "error shows {secret:?}: {err}");
            assert!(!format!("{config:?}").contains(secret), "{config:?}");
        }
    }
}

/// Issue 12: a receiver's error body was cut to 200 bytes before secrets were redacted, so a
/// secret straddling the cut showed its first half. `warden notify-test` prints the reason as
/// the log and the state file's `outbox.last_error` would hold it: no part of the secret.
#[test]
fn a_secret_straddling_the_quoted_body_cut_shows_no_part_of_itself() {
    let secret = "T0K3N-S3CR3T-STRADDLES-THE-CUT";
    // Quoted bodies are cut at 200 bytes: the secret starts 10 bytes before.
    let body = format!("{}/hooks/{secret} was refused", "x".repeat(183));
    let receiver = Receiver::start(Answer::status(400, &body));
    let (_dir, path) = crate::daemon::write_config(&format!(
        r#"
[[notifier]]
name = "ops"
kind = "webhook"
url = "{url}"
"#,
        url = receiver.url(&format!("/hooks/{secret}"))
    ));
    let out = crate::daemon::warden(&[
        "notify-test",
        "-c",
        path.to_str().unwrap(),
        "--notifier",
        "ops",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("status 400: xxx"), "{said}");
    assert!(!said.contains("T0K3N"), "part of the secret shows: {said}");
}
