//! The alerting part of the config: what `good/alerting.toml` compiles to, exactly, and the
//! `[state]` path's defaults. Its bad fixtures (`bad/alerting_*.toml`) run with the others in
//! `tests.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::hook::{HookCommand, HookConfig};
use super::notifier::{
    AlertmanagerConfig, EmailConfig, EmailTls, NotifierConfig, NotifierKind, PagerDutyConfig,
    SlackConfig, WebhookConfig, WebhookFormat, PAGERDUTY_EVENTS_URL,
};
use super::tests::{fake_env, FIXTURES, SECRETS};
use super::*;
use crate::alert::Severity;
use crate::secret::Secret;

/// Loads with `env`, and with this machine's name read as `web-1`.
fn load_as_web_1(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Diagnostics> {
    let read = |p: &Path| {
        if p == Path::new("/proc/sys/kernel/hostname") {
            Ok(b"web-1\n".to_vec())
        } else {
            std::fs::read(p)
        }
    };
    load_with_host(path, &compile::Host { env, read: &read })
}

/// The fixtures' environment, plus systemd's `STATE_DIRECTORY` (two entries) and a `HOME`.
fn service_env(name: &str) -> Option<String> {
    match name {
        "STATE_DIRECTORY" => Some("/var/lib/warden:/var/lib/warden-extra".into()),
        "HOME" => Some("/home/warden".into()),
        _ => fake_env(name),
    }
}

fn good_alerting() -> Config {
    let path = Path::new(FIXTURES).join("good/alerting.toml");
    match load_as_web_1(&path, &service_env) {
        Ok(config) => config,
        Err(diags) => panic!("good alerting fixture failed:\n{diags}"),
    }
}

fn notifier(name: &str, kind: NotifierKind) -> NotifierConfig {
    NotifierConfig {
        name: name.into(),
        timeout: Duration::from_secs(10),
        kind,
    }
}

fn webhook(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: Secret::new(url),
        headers: Vec::new(),
        format: WebhookFormat::Warden,
        template: None,
        external_url: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn route(warning: &[&str], critical: &[&str]) -> Route {
    Route {
        warning: strings(warning),
        critical: strings(critical),
    }
}

fn trigger(hook: &str, on: Severity, after: Duration) -> HookTrigger {
    HookTrigger {
        hook: hook.into(),
        on,
        after,
        confirm: Vec::new(),
        verify: None,
    }
}

fn expected_notifiers() -> Vec<NotifierConfig> {
    let s = Duration::from_secs;
    vec![
        notifier(
            "chat",
            NotifierKind::Slack(SlackConfig {
                webhook_url: Secret::new(
                    "https://hooks.slack.com/services/T000/B000/slack-f1le-s3cr3t",
                ),
                channel: Some("#ops".into()),
                username: Some("warden".into()),
            }),
        ),
        notifier(
            "oncall",
            NotifierKind::PagerDuty(PagerDutyConfig {
                routing_key: Secret::new("pd-1nline-routing-key"),
                url: PAGERDUTY_EVENTS_URL.into(),
                source: "web-1".into(),
                component: None,
                group: None,
                class: None,
            }),
        ),
        NotifierConfig {
            timeout: s(20),
            ..notifier(
                "oncall-eu",
                NotifierKind::PagerDuty(PagerDutyConfig {
                    routing_key: Secret::new("pd-f1le-routing-key"),
                    url: "https://events.eu.pagerduty.com/v2/enqueue".into(),
                    source: "api-prod".into(),
                    component: Some("api".into()),
                    group: Some("web".into()),
                    class: Some("health".into()),
                }),
            )
        },
        notifier(
            "sink",
            NotifierKind::Webhook(webhook(
                "https://hooks.example.com/warden?token=wh-1nline-s3cr3t",
            )),
        ),
        NotifierConfig {
            timeout: s(3),
            ..notifier(
                "am-receiver",
                NotifierKind::Webhook(WebhookConfig {
                    headers: vec![
                        (
                            "Authorization".into(),
                            Secret::new("Bearer abc-secret-token"),
                        ),
                        ("X-Env".into(), Secret::new("prod")),
                    ],
                    format: WebhookFormat::Alertmanager,
                    external_url: Some("https://warden.example.com".into()),
                    ..webhook("https://receiver.example.com/alertmanager/wh-f1le-s3cr3t")
                }),
            )
        },
        notifier(
            "templated",
            NotifierKind::Webhook(WebhookConfig {
                template: Some(r#"{"text": "{{summary}}", "team": "{{ labels.team }}"}"#.into()),
                ..webhook("http://127.0.0.1:8080/alert")
            }),
        ),
        notifier(
            "am",
            NotifierKind::Alertmanager(AlertmanagerConfig {
                url: "http://127.0.0.1:9093".into(),
                resend_every: s(60),
                generator_url: None,
            }),
        ),
        notifier(
            "am-ha",
            NotifierKind::Alertmanager(AlertmanagerConfig {
                url: "http://am.internal:9093/".into(),
                resend_every: s(30),
                generator_url: Some("https://warden.example.com/status".into()),
            }),
        ),
        notifier(
            "mail",
            NotifierKind::Email(EmailConfig {
                smtp: "mail.example.com".into(),
                tls: EmailTls::StartTls,
                username: Some("warden".into()),
                password: Some(Secret::new("smtp-f1le-passw0rd")),
                from: "warden <warden@example.com>".into(),
                to: strings(&["oncall@example.com", "ops@example.com"]),
                ca_file: Some(PathBuf::from(
                    "tests/fixtures/config/good/alerting/mail-ca.pem",
                )),
                accept_invalid_certs: false,
            }),
        ),
        notifier(
            "relay",
            NotifierKind::Email(EmailConfig {
                smtp: "127.0.0.1:2525".into(),
                tls: EmailTls::None,
                username: None,
                password: None,
                from: "warden@example.com".into(),
                to: strings(&["ops@example.com"]),
                ca_file: None,
                accept_invalid_certs: true,
            }),
        ),
        notifier(
            "ops-hook",
            NotifierKind::Webhook(webhook("http://127.0.0.1:8080/hook")),
        ),
    ]
}

fn expected_hooks() -> Vec<HookSpec> {
    let argv = |items: &[&str]| HookCommand::Argv(strings(items));
    let collect = HookConfig::new(
        "collect-logs",
        argv(&[
            "tests/fixtures/config/good/alerting/scripts/collect.sh",
            "--since",
            "10m",
        ]),
    );
    let mut rollback = HookConfig::new(
        "rollback-api",
        argv(&["kubectl", "rollout", "undo", "deployment/api", "-n", "prod"]),
    );
    rollback.timeout = Duration::from_secs(120);
    rollback.cooldown = Duration::ZERO;
    rollback.dry_run = true;
    rollback.env = BTreeMap::from([("KUBECONFIG".into(), Secret::new("/etc/warden/kube"))]);
    rollback.workdir = Some(PathBuf::from("tests/fixtures/config/good/alerting/work"));
    rollback.max_output_bytes = 1024;
    let restart = HookConfig::new(
        "restart",
        HookCommand::Shell("systemctl restart api && sleep 1".into()),
    );
    vec![
        HookSpec {
            config: collect,
            diagnostic: true,
            notify: Some(Vec::new()),
        },
        HookSpec {
            config: rollback,
            diagnostic: false,
            notify: Some(strings(&["chat", "ops-hook"])),
        },
        HookSpec {
            config: restart,
            diagnostic: false,
            notify: None,
        },
    ]
}

#[test]
fn good_alerting_fixture_compiles_to_exactly_this() {
    let config = good_alerting();
    let s = Duration::from_secs;
    let rules = BTreeMap::from([
        (
            "api-down".to_string(),
            RuleActions {
                route: Some(route(&[], &["oncall", "chat"])),
                hooks: vec![
                    trigger("collect-logs", Severity::Critical, Duration::ZERO),
                    trigger("rollback-api", Severity::Critical, s(300)),
                    trigger("restart", Severity::Warning, s(90)),
                ],
            },
        ),
        (
            "api-slow".to_string(),
            RuleActions {
                route: Some(route(&["sink", "mail"], &["sink", "mail"])),
                hooks: Vec::new(),
            },
        ),
        (
            "api-errors".to_string(),
            RuleActions {
                route: Some(route(&[], &[])),
                hooks: Vec::new(),
            },
        ),
        (
            "api-flaky".to_string(),
            RuleActions {
                route: None,
                hooks: vec![trigger("collect-logs", Severity::Warning, Duration::ZERO)],
            },
        ),
    ]);
    let want = AlertingConfig {
        notifiers: expected_notifiers(),
        hooks: expected_hooks(),
        dry_run: true,
        instance: None,
        route: route(&["chat"], &["chat", "oncall"]),
        rules,
        dependencies: BTreeMap::new(),
        policies: BTreeMap::new(),
        rule_policies: BTreeMap::new(),
        severity_policies: Default::default(),
        routes: Vec::new(),
        external_url: None,
        ack_link_ttl: crate::config::DEFAULT_ACK_LINK_TTL,
        ..AlertingConfig::default()
    };
    // Field by field first, for a readable failure.
    assert_eq!(config.alerting.notifiers, want.notifiers);
    assert_eq!(config.alerting.hooks, want.hooks);
    assert_eq!(config.alerting.rules, want.rules);
    assert_eq!(config.alerting, want);
    assert_eq!(
        config.state,
        StateConfig {
            path: PathBuf::from("/var/lib/warden/alerting.db"),
            legacy: Some(PathBuf::from("/var/lib/warden/warden.db")),
        },
        "the first entry of STATE_DIRECTORY wins"
    );
}

#[test]
fn rules_without_their_own_notify_use_the_default_route() {
    let config = good_alerting();
    let a = &config.alerting;
    // "script" is an exec check's implicit status rule: never an entry of its own; nor is a
    // rule without notify or hooks, or with only `hooks = []`.
    assert!(config.rules.iter().any(|r| r.name == "script"));
    for rule in ["api-default", "script", "api-empty-hooks"] {
        assert!(!a.rules.contains_key(rule), "{rule}");
    }
    for rule in ["api-default", "script", "api-flaky", "api-empty-hooks"] {
        assert!(!a.rules.contains_key(rule) || a.rules[rule].route.is_none());
        assert_eq!(a.route_of(rule, Severity::Warning), ["chat"]);
        assert_eq!(a.route_of(rule, Severity::Critical), ["chat", "oncall"]);
    }
    assert!(a.hooks_of("api-default").is_empty());
    assert!(a.route_of("api-down", Severity::Warning).is_empty());
    assert!(a.route_of("api-errors", Severity::Critical).is_empty());
}

#[test]
fn good_alerting_fixture_debug_output_holds_no_secret() {
    let printed = format!("{:?}", good_alerting());
    let from_files = [
        "slack-f1le-s3cr3t",
        "pd-f1le-routing-key",
        "smtp-f1le-passw0rd",
        "wh-f1le-s3cr3t",
    ];
    for secret in SECRETS.iter().chain(&from_files) {
        assert!(!printed.contains(secret), "{secret:?} printed in {printed}");
    }
}

#[test]
fn pagerduty_source_defaults_to_warden_without_a_readable_host_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(
        &main,
        "[[notifier]]\nname = \"pd\"\nkind = \"pagerduty\"\nrouting_key = \"k-1234\"\n",
    )
    .expect("temp dir is writable");
    let read = |p: &Path| {
        if p.starts_with("/proc") {
            Err(std::io::Error::from(std::io::ErrorKind::NotFound))
        } else {
            std::fs::read(p)
        }
    };
    let config = load_with_host(
        &main,
        &compile::Host {
            env: &fake_env,
            read: &read,
        },
    )
    .expect("valid config");
    let NotifierKind::PagerDuty(pd) = &config.alerting.notifiers[0].kind else {
        panic!("pd is a pagerduty notifier")
    };
    assert_eq!(pd.source, "warden");
}

/// The state path a config compiles to, for `[state]` text and an environment.
fn state_path(state: &str, env: &[(&str, &str)]) -> Result<PathBuf, String> {
    state_path_of("warden.toml", state, env)
}

/// As [`state_path`], for a main file named `file`.
fn state_path_of(file: &str, state: &str, env: &[(&str, &str)]) -> Result<PathBuf, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join(file);
    std::fs::write(&main, state).expect("temp dir is writable");
    let lookup = |name: &str| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    };
    let shown = |p: PathBuf| {
        p.strip_prefix(dir.path())
            .map_or(p.clone(), |rel| Path::new("<dir>").join(rel))
    };
    match load_with_env(&main, &lookup) {
        Ok(config) => Ok(shown(config.state.path)),
        Err(diags) => Err(diags
            .0
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect()),
    }
}

#[test]
fn state_path_defaults_follow_systemd_then_xdg_then_home() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("STATE_DIRECTORY", "/var/lib/warden"), ("HOME", "/root")],
            "/var/lib/warden/warden.db",
        ),
        (
            &[("STATE_DIRECTORY", "/a:/b"), ("XDG_STATE_HOME", "/x")],
            "/a/warden.db",
        ),
        (
            &[("STATE_DIRECTORY", ""), ("XDG_STATE_HOME", "/x/state")],
            "/x/state/warden/warden.db",
        ),
        (
            &[("XDG_STATE_HOME", "relative"), ("HOME", "/home/u")],
            "/home/u/.local/state/warden/warden.db",
        ),
        (&[("HOME", "")], "<dir>/warden-state.db"),
        (&[], "<dir>/warden-state.db"),
    ];
    for (env, want) in cases {
        assert_eq!(state_path("", env), Ok(PathBuf::from(want)), "{env:?}");
    }
}

#[test]
fn default_state_file_is_named_after_the_config_so_two_run_side_by_side() {
    let systemd = [("STATE_DIRECTORY", "/var/lib/warden")];
    let home = [("HOME", "/home/u")];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Env, &str)] = &[
        ("warden.toml", &systemd, "/var/lib/warden/warden.db"),
        ("nuvie.toml", &systemd, "/var/lib/warden/nuvie.db"),
        ("nuvie.toml", &home, "/home/u/.local/state/warden/nuvie.db"),
        ("redcube.toml", &[], "<dir>/redcube-state.db"),
        ("config", &systemd, "/var/lib/warden/config.db"),
        (".hidden.toml", &systemd, "/var/lib/warden/warden.db"),
    ];
    for (file, env, want) in cases {
        assert_eq!(
            state_path_of(file, "", env),
            Ok(PathBuf::from(want)),
            "{file} {env:?}"
        );
    }
    // An example's `path = "${NUVIE_STATE_PATH:-}"`: unset is the default, set moves it.
    let text = "[state]\npath = \"${NUVIE_STATE_PATH:-}\"\n";
    assert_eq!(
        state_path_of("nuvie.toml", text, &systemd),
        Ok(PathBuf::from("/var/lib/warden/nuvie.db"))
    );
    assert_eq!(
        state_path_of(
            "nuvie.toml",
            text,
            &[("NUVIE_STATE_PATH", "/srv/n.db"), systemd[0]]
        ),
        Ok(PathBuf::from("/srv/n.db"))
    );
    // A literal empty path is still a mistake.
    assert!(state_path_of("nuvie.toml", "[state]\npath = \"\"\n", &systemd).is_err());
}

#[test]
fn state_path_is_relative_to_the_main_file() {
    let home = [("HOME", "/home/u"), ("DB", "/srv/warden.db")];
    let cases: &[(&str, Result<PathBuf, String>)] = &[
        (
            "[state]\npath = \"data/warden.db\"\n",
            Ok(PathBuf::from("<dir>/data/warden.db")),
        ),
        (
            "[state]\npath = \"${DB}\"\n",
            Ok(PathBuf::from("/srv/warden.db")),
        ),
        (
            "[state]\n",
            Ok(PathBuf::from("/home/u/.local/state/warden/warden.db")),
        ),
        (
            "[state]\npath = \"data/\"\n",
            Err(r#"2:8: state path must name a file, e.g. "/var/lib/warden/warden.db""#.into()),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(&state_path(text, &home), want, "{text:?}");
    }
}

#[test]
fn secrets_never_reach_a_diagnostic() {
    // Every secret below sits where an error is reported: in a bad URL, a bad header value,
    // a password without a user, a URL with credentials, a file whose text is no URL.
    let secret = "Zq9-unmistakable-s3cret-Zq9";
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("temp dir is writable")
    };
    write("url.secret", &format!("{secret}\n"));
    write(
        "warden.toml",
        r#"[server]
listen = "0.0.0.0:9731"
token = "${S}"
token_file = "url.secret"

[[notifier]]
name = "a"
kind = "webhook"
url_file = "url.secret"
headers = { "X Bad" = "${S}", X-Token = "${S}\r\n" }

[[notifier]]
name = "b"
kind = "slack"
webhook_url = "https://${S}@"

[[notifier]]
name = "c"
kind = "alertmanager"
url = "http://u:${S}@:bad"

[[notifier]]
name = "d"
kind = "email"
smtp = "mail.example.com"
from = "warden@example.com"
to = ["ops@example.com"]
password = "${S}"

[[notifier]]
name = "e"
kind = "pagerduty"
routing_key = "${S}"
routing_key_file = "url.secret"
url = "https://u:${S}@"
"#,
    );
    let env = |name: &str| (name == "S").then(|| secret.to_string());
    let diags = load_with_env(&dir.path().join("warden.toml"), &env)
        .expect_err("every notifier is invalid")
        .to_string();
    assert!(
        !diags.contains(secret),
        "a diagnostic leaks the secret:\n{diags}"
    );
    assert!(!diags.contains("unmistakable"), "{diags}");
    let shown = diags.replace(&dir.path().display().to_string(), "<dir>");
    let want = [
        "<dir>/warden.toml:4:1: set server.token or server.token_file, not both",
        "<dir>/warden.toml:9:12: the url in url_file must be an http:// or https:// URL with a host",
        r#"<dir>/warden.toml:10:13: invalid header name "X Bad": use letters, digits and - (an HTTP token)"#,
        r#"<dir>/warden.toml:10:41: value of header "X-Token" must not contain line breaks or NUL"#,
        "<dir>/warden.toml:15:15: webhook_url must be an http:// or https:// URL with a host",
        r#"<dir>/warden.toml:20:7: invalid url "http://<secret>@:bad": expected http:// or https:// followed by a host"#,
        r#"<dir>/warden.toml:22:1: notifier "d": username and password go together"#,
        "<dir>/warden.toml:34:1: set routing_key or routing_key_file, not both",
        r#"<dir>/warden.toml:35:7: invalid url "https://<secret>@": expected http:// or https:// followed by a host"#,
    ];
    assert_eq!(shown.lines().collect::<Vec<_>>(), want);
}

#[test]
fn an_email_ca_file_that_does_not_parse_fails_check_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\n!!! not base64 !!!\n-----END CERTIFICATE-----\n",
    )
    .expect("temp dir is writable");
    std::fs::write(
        &main,
        "[[notifier]]\nname = \"mail\"\nkind = \"email\"\nsmtp = \"mail.example.com\"\n\
         from = \"warden@example.com\"\nto = [\"oncall@example.com\"]\nca_file = \"ca.pem\"\n",
    )
    .expect("temp dir is writable");
    let diags = load_with_env(&main, &fake_env).expect_err("a broken CA bundle");
    let messages: Vec<String> = diags
        .0
        .iter()
        .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
        .collect();
    let ca = dir.path().join("ca.pem");
    assert_eq!(
        messages,
        [format!(
            "1:1: notifier \"mail\": parse ca_file {}: tls error: invalid certificates",
            ca.display()
        )]
    );
}

#[test]
fn business_hours_take_their_values_from_the_environment_like_every_string() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.toml");
    std::fs::write(
        &path,
        r#"
[[notifier]]
name = "chat"
kind = "webhook"
url = "http://127.0.0.1:9/chat"

[[policy]]
name = "P2"
[[policy.step]]
notify = ["chat"]
hours = { days = "${DAYS:-mon-fri}", from = "${FROM}", to = "${TO:-17:00}", tz = "${TZ_NAME}" }
"#,
    )
    .unwrap();
    let env = |name: &str| match name {
        "FROM" => Some("08:30".to_string()),
        "TZ_NAME" => Some("Europe/Berlin".to_string()),
        _ => None,
    };
    let config = crate::config::load_with_env(&path, &env).unwrap();
    let hours = config.alerting.policies["P2"].steps[0]
        .hours
        .clone()
        .unwrap();
    assert_eq!((hours.from, hours.to), (8 * 60 + 30, 17 * 60));
    assert_eq!(hours.tz, "Europe/Berlin");
    assert_eq!(hours.days, [true, true, true, true, true, false, false]);
    // An unset variable without a default is named, at its place.
    let err = crate::config::load_with_env(&path, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("FROM"), "{err}");
    assert!(err.contains("warden.toml:"), "{err}");
}
