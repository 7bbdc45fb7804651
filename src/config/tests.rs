//! Golden tests: every bad fixture's exact diagnostics, and what the good fixture compiles to.
//!
//! Bad fixtures live in `tests/fixtures/config/bad/<name>.toml` with `<name>.expected` beside
//! them (files they include sit in `bad/include/`). `UPDATE_EXPECT=1 cargo test --lib config`
//! rewrites the `.expected` files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

pub(super) const FIXTURES: &str = "tests/fixtures/config";
/// Values no diagnostic may contain, because they come from secret-bearing variables.
pub(super) const SECRETS: [&str; 7] = [
    "hunter2",
    "sup3rs3cret",
    "abc-secret-token",
    "tok-from-file",
    "pd-1nline-routing-key",
    "wh-1nline-s3cr3t",
    "file-s3cr3t-not-a-url",
];

pub(super) fn fake_env(name: &str) -> Option<String> {
    let value = match name {
        "WARDEN_TOKEN" => "tok-123",
        "API_TOKEN" => "abc-secret-token",
        "REDIS_PASSWORD" => "hunter2",
        "SECRET_TOKEN" => "sup3rs3cret",
        "PD_ROUTING_KEY" => "pd-1nline-routing-key",
        "WEBHOOK_TOKEN" => "wh-1nline-s3cr3t",
        "DEPLOY_ENV" => "prod",
        _ => return None,
    };
    Some(value.to_string())
}

fn bad_fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(Path::new(FIXTURES).join("bad"))
        .expect("the bad fixtures directory exists in the repository")
        .map(|entry| entry.expect("readable fixtures directory").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn bad_fixtures_report_exact_diagnostics() {
    // Cargo runs unit tests from the package root, so these relative paths resolve and the
    // diagnostics show them as written.
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    let fixtures = bad_fixtures();
    assert!(fixtures.len() >= 15, "bad fixtures not found");
    for path in fixtures {
        let got = match load_with_env(&path, &fake_env) {
            Ok(_) => "(loaded without errors)\n".to_string(),
            Err(diags) => format!("{diags}\n"),
        };
        for secret in SECRETS {
            assert!(
                !got.contains(secret),
                "{}: a diagnostic leaks a secret:\n{got}",
                path.display()
            );
        }
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got == expected {
            continue;
        }
        if update {
            std::fs::write(&expected_path, &got).expect("fixture directory is writable");
        } else {
            failures.push(format!(
                "--- {}\n+++ actual\n{}",
                expected_path.display(),
                line_diff(&expected, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "diagnostics differ (rerun with UPDATE_EXPECT=1 to accept):\n{}",
        failures.join("\n")
    );
}

/// A minimal line diff: lines only in `expected` with `-`, only in `actual` with `+`.
fn line_diff(expected: &str, actual: &str) -> String {
    let mut out = String::new();
    for line in expected
        .lines()
        .filter(|l| !actual.lines().any(|a| a == *l))
    {
        out.push_str(&format!("-{line}\n"));
    }
    for line in actual
        .lines()
        .filter(|l| !expected.lines().any(|e| e == *l))
    {
        out.push_str(&format!("+{line}\n"));
    }
    out
}

#[test]
fn missing_main_file_is_reported_at_its_start() {
    let path = Path::new(FIXTURES).join("no-such-file.toml");
    let diags = load_with_env(&path, &fake_env).unwrap_err();
    assert_eq!(
        diags.to_string(),
        "tests/fixtures/config/no-such-file.toml:1:1: cannot read file: No such file or directory (os error 2)"
    );
}

fn good() -> Config {
    let path = Path::new(FIXTURES).join("good/warden.toml");
    match load_with_env(&path, &fake_env) {
        Ok(config) => config,
        Err(diags) => panic!("good fixture failed:\n{diags}"),
    }
}

#[test]
fn good_fixture_merges_includes_in_order() {
    let config = good();
    let files: Vec<String> = config
        .files
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "tests/fixtures/config/good/warden.toml",
            "tests/fixtures/config/good/rules/api.toml",
            "tests/fixtures/config/good/rules/db.toml",
        ]
    );
    let checks: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        checks,
        ["api-health", "db-port", "cert", "cache", "db", "api-ready"]
    );
    let rules: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        rules,
        [
            "api-health-down",
            "api-queue-deep",
            "user-sync-missing",
            "cert-expiring"
        ]
    );
}

#[test]
fn good_fixture_server_and_log() {
    let config = good();
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:9731");
    assert_eq!(
        config.server.token.as_ref().map(|t| t.expose()),
        Some("tok-from-file")
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "warden=debug,info");
}

#[test]
fn good_fixture_applies_defaults_and_durations() {
    let config = good();
    let timing = |name: &str| {
        let c = config.check(name).expect("check exists");
        (c.interval, c.timeout)
    };
    let s = Duration::from_secs;
    assert_eq!(timing("api-health"), (s(15), s(5)));
    assert_eq!(timing("db-port"), (s(90), s(5)));
    assert_eq!(timing("cert"), (s(3600), s(10)));
    assert_eq!(
        timing("api-ready"),
        (s(15), s(5)),
        "defaults reach included checks"
    );
    assert_eq!(config.keep_alive_targets, 250);
}

#[test]
fn good_fixture_http_check() {
    let config = good();
    let check = config.check("api-health").expect("check exists");
    assert_eq!(check.labels.get("env").map(String::as_str), Some("prod"));
    let CheckKind::Http(http) = &check.kind else {
        panic!("api-health is http")
    };
    assert_eq!(http.method, "POST");
    let headers: Vec<(&str, &str)> = http
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Authorization", "Bearer abc-secret-token"),
            ("X-Literal", "${NOT_A_VAR}")
        ]
    );
    assert_eq!(http.body.as_deref(), Some(r#"{"x":1}"#));
    assert_eq!(http.expect_status, [200, 204]);
    assert_eq!(http.assertions.len(), 5);
    assert_eq!(http.assertions[3].op, CmpOp::Lt);
    assert_eq!(
        http.extract["first_latency"].segments,
        [PathSegment::Key("latency.ms".into()), PathSegment::Index(0)]
    );
    assert_eq!(http.max_body_bytes, 1024 * 1024);
    assert!(http.tls_verify && http.follow_redirects);
    assert_eq!(
        http.ca_file.as_deref(),
        Some(Path::new("tests/fixtures/config/good/ca.pem"))
    );
    assert!(check
        .kind
        .value_names()
        .contains(&"queue_depth".to_string()));

    let CheckKind::Http(ready) = &config.check("api-ready").expect("exists").kind else {
        panic!("api-ready is http")
    };
    assert_eq!(ready.method, "GET");
    assert!(!ready.tls_verify && !ready.follow_redirects && ready.expect_status.is_empty());
}

#[test]
fn good_fixture_other_kinds() {
    let config = good();
    let CheckKind::Tls(tls) = &config.check("cert").expect("exists").kind else {
        panic!("cert is tls")
    };
    assert_eq!(
        (tls.address.as_str(), tls.server_name.as_str()),
        ("example.com:443", "example.com")
    );
    assert!(tls.verify);
    let CheckKind::Redis(redis) = &config.check("cache").expect("exists").kind else {
        panic!("cache is redis")
    };
    assert_eq!(redis.url.expose(), "redis://:hunter2@127.0.0.1:6379/0");
    assert_eq!(redis.info_fields, ["instantaneous_ops_per_sec"]);
    let CheckKind::Postgres(pg) = &config.check("db").expect("exists").kind else {
        panic!("db is postgres")
    };
    assert_eq!(pg.url.expose(), "host=127.0.0.1 port=5432 user=postgres");
    let queries: Vec<(&str, QueryResult)> = pg
        .queries
        .iter()
        .map(|q| (q.name.as_str(), q.result))
        .collect();
    assert_eq!(
        queries,
        [
            ("user_sync_missing", QueryResult::Scalar),
            ("stuck_jobs", QueryResult::Rows)
        ]
    );
}

#[test]
fn good_fixture_rules() {
    let config = good();
    let rule = |name: &str| {
        config
            .rules
            .iter()
            .find(|r| r.name == name)
            .expect("rule exists")
    };
    let down = rule("api-health-down");
    assert_eq!(
        (down.check.as_str(), down.value.as_str()),
        ("api-health", "up")
    );
    assert_eq!(down.description.as_deref(), Some("API /health failing"));
    assert_eq!(down.on_error, MissingPolicy::Critical);
    assert_eq!(down.on_missing, MissingPolicy::Unknown);
    assert_eq!(down.flapping, Some(FlapConfig::default()));
    assert!(down.warning.is_none());
    assert_eq!(
        down.critical,
        Some(LevelConfig {
            when: Condition {
                op: CmpOp::Lt,
                threshold: 1.0
            },
            clear: None,
            trigger: Trigger::OutOf {
                count: 3,
                window: 5
            },
            recover: Recovery {
                count: 2,
                for_: Duration::from_secs(60)
            },
        })
    );

    let deep = rule("api-queue-deep");
    let warning = deep.warning.as_ref().expect("has warning");
    assert_eq!(warning.trigger, Trigger::For(Duration::from_secs(300)));
    assert_eq!(
        warning.clear,
        Some(Condition {
            op: CmpOp::Lt,
            threshold: 0.7
        })
    );
    assert_eq!(warning.recover, Recovery::default());
    let critical = deep.critical.as_ref().expect("has critical");
    assert_eq!(
        critical.when,
        Condition {
            op: CmpOp::Ge,
            threshold: 1000.0
        }
    );
    assert_eq!(critical.trigger, Trigger::Consecutive(4));
    assert_eq!(
        (deep.on_missing, deep.min_samples),
        (MissingPolicy::Warning, 3)
    );
    assert_eq!(
        deep.flapping,
        Some(FlapConfig {
            window: 11,
            high: 30.0,
            low: 10.5
        })
    );

    assert_eq!(
        rule("user-sync-missing")
            .critical
            .as_ref()
            .map(|l| l.trigger),
        Some(Trigger::Immediate)
    );
    assert_eq!(rule("cert-expiring").flapping, None);
}

#[test]
fn good_fixture_debug_output_holds_no_secret() {
    let printed = format!("{:?}", good());
    for secret in SECRETS {
        assert!(!printed.contains(secret), "{secret:?} printed in {printed}");
    }
    assert!(printed.contains("<secret>"));
}

#[test]
fn a_glob_matching_its_own_file_is_not_a_cycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("temp dir is writable")
    };
    write(
        "main.toml",
        "include = [\"*.toml\"]\n[[check]]\nname = \"a\"\nkind = \"tcp\"\naddress = \"h:1\"\n",
    );
    write(
        "other.toml",
        "[[check]]\nname = \"b\"\nkind = \"tcp\"\naddress = \"h:2\"\n",
    );
    let config = load_with_env(&dir.path().join("main.toml"), &fake_env).expect("valid config");
    let names: Vec<&str> = config.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

fn good_exec() -> Config {
    let path = Path::new(FIXTURES).join("good/exec.toml");
    match load_with_env(&path, &fake_env) {
        Ok(config) => config,
        Err(diags) => panic!("good exec fixture failed:\n{diags}"),
    }
}

#[test]
fn exec_checks_compile_with_argv_shell_env_and_paths() {
    let config = good_exec();
    let exec = |name: &str| match &config.check(name).expect("check exists").kind {
        CheckKind::Exec(e) => e.clone(),
        other => panic!("{name} is {}", other.name()),
    };
    let tcp = exec("redis-port");
    assert_eq!(
        tcp.program,
        ExecProgram::Argv(
            [
                "/usr/lib/nagios/plugins/check_tcp",
                "-H",
                "127.0.0.1",
                "-p",
                "6379"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    assert_eq!(tcp.program_name(), "/usr/lib/nagios/plugins/check_tcp");
    assert_eq!(
        (tcp.max_output_bytes, tcp.status_rule, tcp.workdir.is_none()),
        (8192, true, true)
    );

    let pg = exec("pg-ready");
    assert_eq!(
        pg.program,
        ExecProgram::Shell("pg_isready -h 127.0.0.1 | grep -q accepting".into())
    );
    assert_eq!(pg.program_name(), "pg_isready");
    let env: Vec<(&str, &str)> = pg
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(env, [("PGCONNECT_TIMEOUT", "2"), ("PGPASSWORD", "hunter2")]);
    assert_eq!(
        pg.workdir.as_deref(),
        Some(Path::new("tests/fixtures/config/good/state")),
        "a relative workdir is relative to the config file"
    );
    assert_eq!((pg.max_output_bytes, pg.status_rule), (1024, false));

    let ExecProgram::Argv(argv) = exec("local-script").program else {
        panic!("local-script has a command")
    };
    assert_eq!(
        argv[0], "tests/fixtures/config/good/scripts/check_queue.sh",
        "a relative program path is relative to the config file"
    );

    let names = config
        .check("redis-port")
        .expect("exists")
        .kind
        .value_names();
    assert_eq!(names, ["up", "duration_seconds", "status", "exit_code"]);
    assert!(config
        .check("redis-port")
        .expect("exists")
        .kind
        .open_values());
}

#[test]
fn exec_checks_get_an_implicit_status_rule_unless_disabled() {
    let config = good_exec();
    let rules: Vec<(&str, &str, &str)> = config
        .rules
        .iter()
        .map(|r| (r.name.as_str(), r.check.as_str(), r.value.as_str()))
        .collect();
    assert_eq!(
        rules,
        [
            ("redis-port", "redis-port", "status"),
            ("local-script", "local-script", "status"),
            ("redis-port-slow", "redis-port", "time"),
            ("pg-ready", "pg-ready", "status"),
            ("disk-full", "container", "disk_ratio"),
        ]
    );
    let status = &config.rules[0];
    let level = |op, threshold| LevelConfig {
        when: Condition { op, threshold },
        clear: None,
        trigger: Trigger::Immediate,
        recover: Recovery::default(),
    };
    assert_eq!(status.warning, Some(level(CmpOp::Ge, 1.0)));
    assert_eq!(status.critical, Some(level(CmpOp::Ge, 2.0)));
    assert_eq!(
        (status.on_error, status.on_missing, status.min_samples),
        (MissingPolicy::Unknown, MissingPolicy::Unknown, 1)
    );
    assert_eq!(
        status.description.as_deref(),
        Some("exit status of /usr/lib/nagios/plugins/check_tcp")
    );
    assert_eq!(
        status.labels.get("team").map(String::as_str),
        Some("cache"),
        "the status rule carries the check's labels"
    );
    assert!(status.flapping.is_none());
}

#[test]
fn system_checks_compile_scope_and_disk_path() {
    let config = good_exec();
    let system = |name: &str| match &config.check(name).expect("check exists").kind {
        CheckKind::System(s) => s.clone(),
        other => panic!("{name} is {}", other.name()),
    };
    let host = system("host");
    assert_eq!(
        (host.scope, host.disk_path.as_deref()),
        (SystemScope::Auto, None)
    );
    let container = system("container");
    assert_eq!(
        (container.scope, container.disk_path.as_deref()),
        (SystemScope::Cgroup, Some(Path::new("/var/lib/warden")))
    );
    let names = |name: &str| config.check(name).expect("exists").kind.value_names();
    assert!(!names("host").contains(&"disk_ratio".to_string()));
    assert_eq!(
        names("container"),
        [
            "up",
            "duration_seconds",
            "cpu_ratio",
            "memory_ratio",
            "memory_used_bytes",
            "memory_limit_bytes",
            "load1",
            "disk_ratio",
            "disk_free_bytes"
        ]
    );
}

#[test]
fn exec_fixture_debug_output_holds_no_env_secret() {
    let printed = format!("{:?}", good_exec());
    assert!(!printed.contains("hunter2"), "{printed}");
}

#[test]
fn prometheus_checks_compile_url_expr_and_secret_headers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(
        &main,
        "[[check]]\nname = \"prom\"\nkind = \"prometheus\"\nurl = \"https://prom.example.com/sub/\"\n\
         expr = 'sum by (queue) (queue_depth{env=\"prod\"})'\ntls_verify = false\n\
         headers = { Authorization = \"Bearer ${API_TOKEN}\" }\n\n\
         [[rule]]\nname = \"deep\"\ncheck = \"prom\"\nvalue = \"result\"\ncritical = { when = \"> 5\" }\n",
    )
    .expect("temp dir is writable");
    let config = load_with_env(&main, &fake_env).expect("valid config");
    let check = config.check("prom").expect("exists");
    let CheckKind::Prometheus(prom) = &check.kind else {
        panic!("prom is prometheus")
    };
    assert_eq!(
        prom.url, "https://prom.example.com/sub",
        "trailing / dropped"
    );
    assert_eq!(prom.expr, r#"sum by (queue) (queue_depth{env="prod"})"#);
    assert!(!prom.tls_verify);
    assert_eq!(prom.headers[0].0, "Authorization");
    assert_eq!(check.kind.series_values(), ["result"]);
    assert_eq!(
        check.kind.value_names(),
        ["up", "duration_seconds", "result", "result_series"]
    );
    // A rule reading `result` has one state per series, dropped after the check's interval.
    assert_eq!(config.rules[0].series, Some(check.interval));
    assert!(config
        .secret_values()
        .iter()
        .any(|s| s.contains("abc-secret-token")));
    assert!(!format!("{config:?}").contains("abc-secret-token"));
}

#[test]
fn an_empty_ca_file_after_interpolation_means_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(
        &main,
        "[[check]]\nname = \"cert\"\nkind = \"tls\"\naddress = \"h:443\"\nca_file = \"${NO_CA_FILE:-}\"\n\n\
         [[check]]\nname = \"api\"\nkind = \"http\"\nurl = \"https://h/health\"\nca_file = \"${NO_CA_FILE}\"\n",
    )
    .expect("temp dir is writable");
    let env = |name: &str| (name == "NO_CA_FILE").then(String::new);
    let config = load_with_env(&main, &env).expect("valid config");
    let CheckKind::Tls(tls) = &config.check("cert").expect("exists").kind else {
        panic!("cert is tls")
    };
    assert_eq!(tls.ca_file, None);
    let CheckKind::Http(http) = &config.check("api").expect("exists").kind else {
        panic!("api is http")
    };
    assert_eq!(http.ca_file, None);
}

#[test]
fn retry_interval_rechecks_until_every_rule_of_the_check_could_confirm() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("w.toml");
    std::fs::write(
        &main,
        r#"
[[check]]
name = "api"
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "2s"
retry_interval = "2s"

[[check]]
name = "slow-confirm"
kind = "tcp"
address = "127.0.0.1:1"
interval = "30s"
timeout = "2s"
retry_interval = "5s"

[[check]]
name = "no-retry"
kind = "tcp"
address = "127.0.0.1:1"

[[check]]
name = "no-rules"
kind = "tcp"
address = "127.0.0.1:1"
interval = "10s"
timeout = "2s"
retry_interval = "1s"

[[rule]]
name = "api-down"
check = "api"
warning = { when = "< 1", count = 2 }
critical = { when = "< 1", count = 3 }

[[rule]]
name = "api-flaky"
check = "api"
warning = { when = "< 1", count = 2, window = 5 }

[[rule]]
name = "slow-down"
check = "slow-confirm"
critical = { when = "< 1", for = "12s" }

# A failed probe is no latency sample: this rule sets no pace for the re-checks.
[[rule]]
name = "api-slow"
check = "api"
value = "duration_seconds"
warning = { when = "> 0.5", for = "5m" }
"#,
    )
    .unwrap();
    let config = load_with_env(&main, &fake_env).unwrap();
    let retry = |name: &str| config.check(name).unwrap().retry;
    let s = Duration::from_secs;
    assert_eq!(
        retry("api"),
        Some(Retry {
            interval: s(2),
            attempts: 3
        })
    );
    // for = "12s" re-checked every 5 s: failures at 0, 5, 10, 15 s; the 4th confirms.
    assert_eq!(
        retry("slow-confirm"),
        Some(Retry {
            interval: s(5),
            attempts: 4
        })
    );
    assert_eq!(retry("no-retry"), None);
    // Nothing to confirm: one failure is all a rule could want.
    assert_eq!(retry("no-rules").map(|r| r.attempts), Some(1));
}

#[test]
fn heartbeat_compiles_with_defaults_and_a_secret_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let check = "[[check]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";
    let main = dir.path().join("main.toml");
    let load = |text: &str| {
        std::fs::write(&main, format!("{check}\n{text}")).expect("temp dir is writable");
        load_with_env(&main, &fake_env)
    };
    assert_eq!(load("").expect("valid").heartbeat, None);

    let config = load("[heartbeat]\nurl = \"https://hc.example.com/ping/${WEBHOOK_TOKEN}\"\n")
        .expect("valid");
    let h = config.heartbeat.clone().expect("configured");
    assert_eq!(
        h.url.expose(),
        "https://hc.example.com/ping/wh-1nline-s3cr3t"
    );
    assert_eq!(
        (h.interval, h.timeout, h.method),
        (
            Duration::from_secs(60),
            Duration::from_secs(10),
            HeartbeatMethod::Get
        )
    );
    assert!(config
        .secret_values()
        .iter()
        .any(|s| s.contains("wh-1nline-s3cr3t")));
    assert!(!format!("{config:?}").contains("wh-1nline-s3cr3t"));

    // A short interval shortens the default timeout; url_file, POST and secret headers.
    std::fs::write(dir.path().join("hb.url"), "http://127.0.0.1:9/beat\n").expect("writable");
    let config = load(
        "[heartbeat]\nurl_file = \"hb.url\"\ninterval = \"5s\"\nmethod = \"POST\"\n\
         headers = { Authorization = \"Bearer ${API_TOKEN}\" }\n",
    )
    .expect("valid");
    let h = config.heartbeat.clone().expect("configured");
    assert_eq!(h.url.expose(), "http://127.0.0.1:9/beat");
    assert_eq!(h.timeout, Duration::from_secs(5));
    assert_eq!(h.method, HeartbeatMethod::Post);
    let secrets = config.secret_values();
    assert!(secrets
        .iter()
        .any(|s| s == "abc-secret-token" || s == "Bearer abc-secret-token"));
    assert!(secrets.iter().any(|s| s == "http://127.0.0.1:9/beat"));

    let err = load("[heartbeat]\nurl = \"x\"\nurl_file = \"hb.url\"\n")
        .expect_err("not both")
        .to_string();
    assert!(
        err.contains("set heartbeat.url or heartbeat.url_file, not both"),
        "{err}"
    );
}

#[test]
fn heartbeat_is_only_allowed_in_the_main_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(
        &main,
        "include = [\"more.toml\"]\n[[check]]\nname = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
    )
    .expect("writable");
    std::fs::write(
        dir.path().join("more.toml"),
        "[heartbeat]\nurl = \"https://hc.example.com/ping/x\"\n",
    )
    .expect("writable");
    let err = load_with_env(&main, &fake_env)
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("[heartbeat] is only allowed in the main file, not in an included one"),
        "{err}"
    );
    assert!(!err.contains("ping/x"), "{err}");
}
