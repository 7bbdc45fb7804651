//! Golden payloads and the pure helpers. `UPDATE_EXPECT=1 cargo nextest run notify` rewrites
//! the fixtures under `tests/fixtures/notify/` (review the diff).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use expect_test::expect;
use serde_json::{json, Value as Json};

use super::*;
use crate::clock::Timestamp;
use crate::config::notifier::{Template, DEFAULT_TIMEOUT, PAGERDUTY_EVENTS_URL, PLACEHOLDERS};
use crate::secret::Secret;

/// The sample events every golden payload is rendered from (shared with `tests/it`).
pub(crate) fn events() -> BTreeMap<String, Event> {
    serde_json::from_str(include_str!("../../tests/fixtures/notify/events.json"))
        .expect("tests/fixtures/notify/events.json holds events")
}

/// The send time of the golden Alertmanager pushes: 2026-11-21T23:40:00Z.
const NOW: Timestamp = Timestamp::from_millis(1_795_304_400_000);

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notify")
}

/// Every golden payload: file stem → rendered JSON.
fn rendered() -> Vec<(String, Json)> {
    let options = pagerduty::Options {
        source: "warden.prod-1".into(),
        component: None,
        group: Some("redcube".into()),
        class: None,
    };
    let mut out = Vec::new();
    for (name, event) in events() {
        out.push((format!("webhook-{name}"), webhook::render_warden(&event)));
        out.push((
            format!("webhook-alertmanager-{name}"),
            webhook::render_alertmanager(&event, "ops-webhook", Some("http://warden.example:9731")),
        ));
        out.push((
            format!("slack-{name}"),
            slack::render(&event, Some("#ops"), Some("warden")),
        ));
        out.push((
            format!("pagerduty-{name}"),
            pagerduty::render(&event, "R0UT1NGKEY0123456789abcdef", &options),
        ));
        out.push((
            format!("alertmanager-{name}"),
            alertmanager::render(
                &event,
                NOW,
                Duration::from_secs(60),
                Some("http://warden.example:9731/api/v1/status"),
            ),
        ));
        let mail = email::render(&event, "ops-mail", "example.com");
        let mut mail = serde_json::to_value(&mail).unwrap();
        // Lines read better than one string with \n in a fixture.
        let lines: Vec<Json> = mail["body"]
            .as_str()
            .unwrap()
            .split('\n')
            .map(|l| json!(l))
            .collect();
        mail["body"] = Json::Array(lines);
        let headers: serde_json::Map<String, Json> = mail["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| (pair[0].as_str().unwrap().to_string(), pair[1].clone()))
            .collect();
        mail["headers"] = Json::Object(headers);
        out.push((format!("email-{name}"), mail));
    }
    out
}

#[test]
fn payloads_match_golden_fixtures() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut mismatched = Vec::new();
    for (stem, got) in rendered() {
        let path = fixture_dir().join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != text {
            mismatched.push(format!("{}:\n{text}", path.display()));
        }
    }
    assert!(
        mismatched.is_empty(),
        "rendered payloads differ from their fixtures (UPDATE_EXPECT=1 rewrites them):\n{}",
        mismatched.join("\n")
    );
}

#[test]
fn headlines_read_at_3am() {
    let events = events();
    let lines: Vec<String> = [
        "firing",
        "warning",
        "resolved",
        "hook",
        "hook-skipped",
        "hook-not-helped",
        "test",
    ]
    .iter()
    .map(|k| {
        let e = &events[*k];
        format!(
            "{k}: {}\n  slack: {}\n  email: {}",
            summary(e),
            slack::render(e, None, None)["text"].as_str().unwrap(),
            email::render(e, "n", "example.com").subject
        )
    })
    .collect();
    expect![[r#"
        firing: CRITICAL: redis-memory on redis — memory_ratio 0.97 > 0.95
          slack: 🔴 CRITICAL: redis-memory on redis — memory_ratio 0.97 &gt; 0.95
          email: [CRITICAL] redis-memory firing on redis: memory_ratio 0.97 > 0.95
        warning: WARNING: redis-memory on redis — memory_ratio 0.91 > 0.9
          slack: 🟠 WARNING: redis-memory on redis — memory_ratio 0.91 &gt; 0.9
          email: [WARNING] redis-memory firing on redis: memory_ratio 0.91 > 0.9
        resolved: RESOLVED: redis-memory on redis — memory_ratio 0.41 (critical was > 0.95)
          slack: ✅ RESOLVED: redis-memory on redis — memory_ratio 0.41 (critical was &gt; 0.95)
          email: [RESOLVED] redis-memory resolved on redis: memory_ratio 0.41 (critical was > 0.95)
        hook: HOOK: rollback for redis-memory ran: exit 0 in 12.3 s
          slack: 🔧 HOOK: rollback for redis-memory ran: exit 0 in 12.3 s
          email: [HOOK] rollback for redis-memory ran: exit 0 in 12.3 s
        hook-skipped: HOOK NOT RUN: rollback for redis-memory not run: cooldown until 2026-11-22T08:10:00.000Z (last run ended 2026-11-21T08:10:00.000Z, for warden/redis-memory/1795248000000)
          slack: ❌ HOOK NOT RUN: rollback for redis-memory not run: cooldown until 2026-11-22T08:10:00.000Z (last run ended 2026-11-21T08:10:00.000Z, for warden/redis-memory/1795248000000)
          email: [HOOK NOT RUN] rollback for redis-memory not run: cooldown until 2026-11-22T08:10:00.000Z (last run ended 2026-11-21T08:10:00.000Z, for warden/redis-memory/1795248000000)
        hook-not-helped: DID NOT HELP: rollback for redis-memory ran at 2026-11-21T23:35:00.000Z and did not help: redis-memory is still critical at 2026-11-21T23:45:00.000Z; not run again for this incident
          slack: 🔴 DID NOT HELP: rollback for redis-memory ran at 2026-11-21T23:35:00.000Z and did not help: redis-memory is still critical at 2026-11-21T23:45:00.000Z; not run again for this incident
          email: [DID NOT HELP] rollback for redis-memory ran at 2026-11-21T23:35:00.000Z and did not help: redis-memory is still critical at 2026-11-21T23:45:00.000Z; not run again for this incident
        test: TEST: warden-test on warden — a test page from warden, no action needed
          slack: 🧪 TEST: warden-test on warden — a test page from warden, no action needed
          email: [TEST] warden-test on warden: a test page from warden, no action needed"#]]
    .assert_eq(&lines.join("\n"));
}

#[test]
fn hook_outcomes_say_what_happened() {
    let base = events()["hook"].clone();
    let cases = [
        (Some(0), false, false, 12.3),
        (Some(2), false, false, 1.04),
        (None, true, false, 30.0),
        (None, false, false, 0.2),
        (None, false, true, 0.0),
        (Some(0), false, false, 125.0),
    ];
    let lines: Vec<String> = cases
        .iter()
        .map(|(exit_code, timed_out, dry_run, secs)| {
            let mut e = base.clone();
            let h = e.hook.as_mut().unwrap();
            h.exit_code = *exit_code;
            h.timed_out = *timed_out;
            h.dry_run = *dry_run;
            h.duration_seconds = *secs;
            summary(&e)
        })
        .collect();
    expect![[r#"
        HOOK: rollback for redis-memory ran: exit 0 in 12.3 s
        HOOK FAILED: rollback for redis-memory failed: exit 2 in 1 s
        HOOK FAILED: rollback for redis-memory timed out after 30 s
        HOOK FAILED: rollback for redis-memory was killed after 0.2 s
        HOOK DRY RUN: rollback for redis-memory (dry run) would run: kubectl rollout undo deployment/redcube -n prod
        HOOK: rollback for redis-memory ran: exit 0 in 2m 5s"#]]
    .assert_eq(&lines.join("\n"));
}

#[test]
fn values_format_for_people() {
    let got: Vec<String> = [
        0.97,
        12.0,
        -3.0,
        0.123456,
        1.0 / 3.0,
        0.00012,
        1e20,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]
    .iter()
    .map(|v| format_value(*v))
    .collect();
    assert_eq!(
        got,
        ["0.97", "12", "-3", "0.1235", "0.3333", "1.2e-4", "1e20", "NaN", "+Inf", "-Inf"]
    );
    let mut e = events()["firing"].clone();
    e.value = None;
    assert_eq!(
        summary(&e),
        "CRITICAL: redis-memory on redis — memory_ratio: no value"
    );
}

#[test]
fn template_replaces_placeholders_with_json_escaped_values() {
    let t = Template::parse(
        r#"{"text": "{{ summary }}", "alert": "{{alert}}", "v": "{{value}}", "team": "{{labels.team}}", "none": "{{labels.nope}}{{deploy}}", "d": "{{description}}"}"#,
    )
    .unwrap();
    let body = t.render(&events()["firing"]);
    let parsed: Json = serde_json::from_str(&body).expect("the rendered template is JSON");
    expect![[r#"
        {
          "alert": "redis-memory",
          "d": "Redis used_memory / maxmemory is above 95%: evictions & OOM errors come next. Runbook: <https://runbooks.example.com/redis#memory> \"step 3\"",
          "none": "redcube-v2.3.1",
          "team": "cache",
          "text": "CRITICAL: redis-memory on redis — memory_ratio 0.97 > 0.95",
          "v": "0.97"
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&parsed).unwrap());
    // Every documented placeholder parses.
    for p in PLACEHOLDERS {
        let name = p.replace("NAME", "team");
        Template::parse(&format!("{{{{{name}}}}}")).unwrap();
    }
}

#[test]
fn template_errors_say_where_and_what_is_known() {
    expect![[r#"template: unknown placeholder {{alert_name}} at byte 8; known: alert, check, status, severity, summary, value, value_name, threshold, condition, description, since, at, deploy, dedup_key, hook, hook_exit_code, labels.NAME"#]]
    .assert_eq(&Template::parse(r#"{"a": "x{{alert_name}}"}"#).unwrap_err());
    expect!["template: unclosed {{ at byte 6"]
        .assert_eq(&Template::parse(r#"{"a": {{alert"#).unwrap_err());
    assert!(Template::parse("{{labels.}}").is_err());
}

#[test]
fn pagerduty_limits_hold() {
    let mut e = events()["firing"].clone();
    e.dedup_key = format!("warden/{}/1", "é".repeat(200));
    e.alert = "x".repeat(2000);
    let options = pagerduty::Options {
        source: "s".into(),
        component: Some("c".into()),
        group: None,
        class: Some("memory".into()),
    };
    let body = pagerduty::render(&e, "k", &options);
    let key = body["dedup_key"].as_str().unwrap();
    assert!(key.len() <= 255, "{}", key.len());
    assert_eq!(key, pagerduty::dedup_key(&e.dedup_key), "stable");
    let mut other = e.clone();
    other.dedup_key.push('2');
    assert_ne!(pagerduty::dedup_key(&other.dedup_key), key, "distinct");
    let summary = body["payload"]["summary"].as_str().unwrap();
    assert_eq!(summary.chars().count(), 1024);
    assert!(summary.ends_with('…'));
    assert_eq!(body["payload"]["component"], "c");
    assert_eq!(body["payload"]["class"], "memory");
    assert!(body["payload"].get("group").is_none());
}

#[test]
fn alertmanager_fingerprint_is_alertmanagers() {
    // Values computed by Alertmanager's model.LabelSet.Fingerprint() (prometheus/common):
    // the empty set hashes to the FNV offset; the integration test also compares with a real
    // Alertmanager's answer.
    assert_eq!(
        alertmanager::fingerprint(&BTreeMap::new()),
        "cbf29ce484222325"
    );
    let labels: BTreeMap<String, String> = [("alertname", "a"), ("b", "c")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let fp = alertmanager::fingerprint(&labels);
    assert_eq!(fp.len(), 16);
    assert_eq!(fp, alertmanager::fingerprint(&labels.clone()));
}

#[test]
fn alertmanager_push_resolves_the_other_severity() {
    let events = events();
    let firing = alertmanager::render(&events["firing"], NOW, Duration::from_secs(60), None);
    let states: Vec<(String, String)> = firing
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["labels"]["severity"].as_str().unwrap().to_string(),
                a["endsAt"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (
                "critical".to_string(),
                "2026-11-21T23:44:00.000Z".to_string()
            ),
            (
                "warning".to_string(),
                "2026-11-21T23:40:00.000Z".to_string()
            ),
        ]
    );
    let resolved = alertmanager::render(&events["resolved"], NOW, Duration::from_secs(60), None);
    for a in resolved.as_array().unwrap() {
        assert_eq!(a["endsAt"], "2026-11-21T23:52:30.000Z");
    }
}

#[test]
fn label_names_become_valid_for_alertmanager() {
    let mut e = events()["firing"].clone();
    e.labels.insert("app.kubernetes.io/name".into(), "x".into());
    e.labels.insert("1st".into(), "y".into());
    let labels = alertmanager::labels(&e, e.severity);
    assert_eq!(labels["app_kubernetes_io_name"], "x");
    assert_eq!(labels["_1st"], "y");
}

#[test]
fn redactor_scrubs_secret_values_from_reasons() {
    let r = Redactor::new(
        secrets_of(&NotifierKind::Slack(SlackConfig {
            webhook_url: Secret::new("https://hooks.slack.com/services/T0/B0/SECRETTOKEN?x=y"),
            channel: None,
            username: None,
        }))
        .into_iter()
        .chain(["abc".to_string()]),
    );
    let d = scrub(&r, Delivery::Permanent {
        reason: "POST https://hooks.slack.com: /services/T0/B0/SECRETTOKEN?x=y and https://hooks.slack.com/services/T0/B0/SECRETTOKEN?x=y abc".into(),
    });
    assert_eq!(
        d,
        Delivery::Permanent {
            reason: "POST https://hooks.slack.com: <secret> and <secret> abc".into()
        }
    );
}

#[test]
fn origins_hide_paths_and_credentials() {
    assert_eq!(
        origin_of("https://u:p@hooks.example.com:8443/a/b?c=d"),
        "https://hooks.example.com:8443"
    );
    assert_eq!(origin_of("not a url SECRET"), "<invalid url>");
}

#[test]
fn truncation_respects_char_boundaries() {
    assert_eq!(truncate_chars("héllo", 10), "héllo");
    assert_eq!(truncate_chars("héllo", 3), "hé…");
}

fn config(kind: NotifierKind) -> NotifierConfig {
    NotifierConfig {
        name: "n".into(),
        timeout: DEFAULT_TIMEOUT,
        kind,
    }
}

fn webhook_config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: Secret::new(url),
        headers: Vec::new(),
        format: WebhookFormat::Warden,
        template: None,
        external_url: None,
    }
}

fn email_config() -> EmailConfig {
    EmailConfig {
        smtp: "mail.example.com:587".into(),
        tls: EmailTls::StartTls,
        username: None,
        password: None,
        from: "warden <warden@example.com>".into(),
        to: vec!["oncall@example.com".into()],
        ca_file: None,
        accept_invalid_certs: false,
    }
}

#[test]
fn config_errors_name_the_notifier_and_say_what_is_valid() {
    let am = |url: &str, every: u64| {
        NotifierKind::Alertmanager(AlertmanagerConfig {
            url: url.into(),
            resend_every: Duration::from_secs(every),
            generator_url: None,
        })
    };
    let pd = |key: &str, source: &str| {
        NotifierKind::PagerDuty(PagerDutyConfig {
            routing_key: Secret::new(key),
            url: PAGERDUTY_EVENTS_URL.into(),
            source: source.into(),
            component: None,
            group: None,
            class: None,
        })
    };
    let mut kinds = vec![
        NotifierKind::Webhook(webhook_config("ftp://h/SECRET")),
        NotifierKind::Webhook(webhook_config("no url SECRET")),
        NotifierKind::Webhook(WebhookConfig {
            headers: vec![("X Bad".into(), Secret::new("SECRET"))],
            ..webhook_config("http://h/")
        }),
        NotifierKind::Slack(SlackConfig {
            webhook_url: Secret::new("hooks.slack.com/SECRET"),
            channel: None,
            username: None,
        }),
        pd(" ", "warden"),
        pd("SECRETKEY", ""),
        am("http://u:SECRET@:bad", 60),
        am("http://127.0.0.1:9093", 0),
    ];
    let mail = |f: &dyn Fn(&mut EmailConfig)| {
        let mut c = email_config();
        f(&mut c);
        NotifierKind::Email(c)
    };
    kinds.push(mail(&|c| c.smtp = "mail.example.com:0".into()));
    kinds.push(mail(&|c| c.smtp = "[::1".into()));
    kinds.push(mail(&|c| c.from = "not an address".into()));
    kinds.push(mail(&|c| c.to.clear()));
    kinds.push(mail(&|c| c.username = Some("u".into())));
    kinds.push(mail(&|c| {
        c.tls = EmailTls::None;
        c.username = Some("u".into());
        c.password = Some(Secret::new("SECRET"));
    }));
    kinds.push(mail(&|c| {
        c.accept_invalid_certs = true;
        c.username = Some("u".into());
        c.password = Some(Secret::new("SECRET-pw"));
    }));
    kinds.push(mail(&|c| c.ca_file = Some("/nonexistent/ca.pem".into())));
    let clock = Clock::system();
    let mut lines: Vec<String> = kinds
        .into_iter()
        .map(|k| Notifier::new(&config(k), &clock).unwrap_err())
        .collect();
    let zero = NotifierConfig {
        timeout: Duration::ZERO,
        ..config(NotifierKind::Webhook(webhook_config("http://h/")))
    };
    lines.push(Notifier::new(&zero, &clock).unwrap_err());
    let text = lines.join("\n");
    assert!(!text.contains("SECRET"), "{text}");
    expect![[r#"
        notifier "n": url must be http or https, got "ftp"
        notifier "n": url is not a valid URL
        notifier "n": invalid header name "X Bad"
        notifier "n": webhook_url is not a valid URL
        notifier "n": routing_key is empty
        notifier "n": source is empty
        notifier "n": url "http://<secret>@:bad" is not a valid URL: empty host
        notifier "n": resend_every must be greater than 0
        notifier "n": smtp "mail.example.com:0" must be host or host:port (port 1-65535)
        notifier "n": smtp "[::1" must be host or host:port (port 1-65535)
        notifier "n": from "not an address" is not a valid address: Invalid input
        notifier "n": to needs at least one address
        notifier "n": username and password go together
        notifier "n": username and password need tls = "starttls" or "implicit": credentials are never sent in the clear
        notifier "n": username and password are never sent with accept_invalid_certs = true: whoever sits in the middle would get them
        notifier "n": read ca_file /nonexistent/ca.pem: No such file or directory (os error 2)
        notifier "n": timeout must be greater than 0"#]].assert_eq(&text);
}

#[test]
fn only_alertmanager_asks_to_be_resent() {
    let clock = Clock::system();
    let am = Notifier::new(
        &config(NotifierKind::Alertmanager(AlertmanagerConfig {
            url: "http://127.0.0.1:9093".into(),
            resend_every: Duration::from_secs(30),
            generator_url: None,
        })),
        &clock,
    )
    .unwrap();
    assert_eq!(am.resend_every(), Some(Duration::from_secs(30)));
    assert_eq!(am.kind(), "alertmanager");
    let hook = Notifier::new(
        &config(NotifierKind::Webhook(webhook_config("http://h/"))),
        &clock,
    )
    .unwrap();
    assert_eq!(hook.resend_every(), None);
    assert_eq!((hook.name(), hook.kind()), ("n", "webhook"));
}
