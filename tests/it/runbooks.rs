//! The five runbooks as configs: `config/examples/<system>.toml` (with `alerts/<system>.toml`)
//! run as shipped, pointed at loopback by environment only, against an imitation of the
//! system's HTTP services (`imitation`) and real Redis, Postgres and TLS servers. Each test
//! waits until every rule is ok, then injects the failures the runbook describes, one at a
//! time, and waits for the rule the runbook names to reach the level it gives, then for every
//! rule to be ok again.
//!
//! Intervals, timeouts and `for` durations are shortened through the examples' own
//! environment variables (`NUVIE_INTERVAL`, `NUVIE_REDIS_CRITICAL_FOR`, ...); counts are the
//! examples' own, so "3 consecutive failures" is tested as written.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::daemon::{warden, Daemon};
use crate::harness::{Pki, PostgresServer, RedisServer, RenewableTlsServer};
use crate::imitation;

const SYSTEMS: [&str; 5] = ["nuvie", "redcube", "nova-streaming", "ai-saas", "novacron"];

/// How long any single state change may take to show (generous: the machine is shared).
const LIMIT: Duration = Duration::from_secs(20);
const DAY: i64 = 86_400;

fn example(system: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("config/examples/{system}.toml"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits until every rule of the daemon is `ok`, and checks that every check and rule is named
/// `<system>-<thing>`. Returns the rule names.
fn all_rules_ok(d: &Daemon, system: &str) -> Vec<String> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let status = d.status();
        let rules = status["rules"].as_array().expect("rules array").clone();
        assert!(!rules.is_empty(), "no rules: {status:#}");
        let checks = status["checks"].as_array().expect("checks array");
        for name in checks.iter().chain(rules.iter()).map(|x| &x["name"]) {
            let name = name.as_str().expect("a name");
            assert!(
                name.starts_with(&format!("{system}-")),
                "{name} is not named {system}-<thing>"
            );
        }
        let not_ok: Vec<&serde_json::Value> = rules.iter().filter(|r| r["state"] != "ok").collect();
        if not_ok.is_empty() {
            return rules
                .iter()
                .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                .collect();
        }
        if Instant::now() > deadline {
            panic!(
                "rules not ok within {LIMIT:?}: {not_ok:#?}\nchecks: {checks:#?}\nlog:\n{}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `rule` to reach `state` and returns it.
fn reaches(d: &Daemon, rule: &str, state: &str) -> serde_json::Value {
    d.wait_rule_state(rule, state, LIMIT)
}

/// The last error kind of a check (`connect`, `timeout`, `assertion`, ...).
fn error_kind(d: &Daemon, check: &str) -> String {
    let c = d.check(check);
    c["last_error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("{check} has no error: {c:#}"))
        .to_string()
}

#[test]
fn every_runbook_example_passes_check_config_as_shipped() {
    for system in SYSTEMS {
        let path = example(system);
        assert!(path.exists(), "{} is missing", path.display());
        let out = warden(&["check-config", "-c", path.to_str().expect("utf-8 path")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} failed check-config:\n{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Each example includes its system's rule set from alerts/.
        assert!(stdout.contains("2 files"), "{system}: {stdout}");
        let text = std::fs::read_to_string(&path).expect("read example");
        assert!(
            text.contains("# Not yet expressed here"),
            "{system}: no \"Not yet expressed here\" block"
        );
    }
}

#[test]
fn nuvie_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let mut api = imitation::nuvie_api();
    let ai = imitation::nuvie_ai();
    let mut redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let cert_address = format!("localhost:{}", tls.port());
    let d = Daemon::start_file(
        &example("nuvie"),
        &[
            ("NUVIE_API_URL", &api.base_url()),
            ("NUVIE_AI_URL", &ai.base_url()),
            ("NUVIE_DATABASE_URL", &pg.url()),
            ("NUVIE_REDIS_URL", &redis.url()),
            ("NUVIE_API_TLS_ADDRESS", &cert_address),
            ("NUVIE_AI_TLS_ADDRESS", &cert_address),
            ("NUVIE_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NUVIE_INTERVAL", "300ms"),
            ("NUVIE_READY_INTERVAL", "300ms"),
            ("NUVIE_TIMEOUT", "250ms"),
            ("NUVIE_REDIS_CRITICAL_FOR", "1s"),
            ("NUVIE_AI_CRITICAL_FOR", "1s"),
            ("NUVIE_SLOW_FOR", "1s"),
        ],
    );
    all_rules_ok(&d, "nuvie");

    // Incident Response, P1 "API down": /health answers 503.
    api.set("/health", 503, r#"{"status":"unhealthy"}"#);
    reaches(&d, "nuvie-api-down", "critical");
    api.restore();
    all_rules_ok(&d, "nuvie");

    // ... or answers so slowly that the probe times out.
    api.set_delay("/health", Duration::from_secs(1));
    reaches(&d, "nuvie-api-down", "critical");
    assert_eq!(error_kind(&d, "nuvie-api-health"), "timeout");
    api.restore();
    all_rules_ok(&d, "nuvie");

    // ... or its port is closed.
    api.down();
    reaches(&d, "nuvie-api-down", "critical");
    assert_eq!(error_kind(&d, "nuvie-api-health"), "connect");
    // The readiness probe goes with it: a warning of its own.
    reaches(&d, "nuvie-api-not-ready", "warning");
    api.up();
    all_rules_ok(&d, "nuvie");

    // P2 partial failure: not ready, /health still fine.
    api.set(
        "/ready",
        503,
        r#"{"status":"not_ready","checks":{"database":"down","redis":"ok"}}"#,
    );
    reaches(&d, "nuvie-api-not-ready", "warning");
    assert_eq!(d.rule("nuvie-api-down")["state"], "ok");
    api.restore();
    all_rules_ok(&d, "nuvie");

    // The AI service is up but its model is not loaded: a warning at once (circuit breaker
    // "Any"), critical once it lasts (NUVIE_AI_CRITICAL_FOR, 5m in production).
    ai.set(
        "/health",
        200,
        r#"{"status":"healthy","model_loaded":false,"version":"..."}"#,
    );
    let warned = reaches(&d, "nuvie-ai-down", "warning");
    assert_eq!(error_kind(&d, "nuvie-ai-health"), "assertion");
    let critical = reaches(&d, "nuvie-ai-down", "critical");
    assert_ne!(warned["since"], critical["since"]);
    ai.restore();
    all_rules_ok(&d, "nuvie");

    // "Redis connection | Any failure | >1min": warning at the first failure, critical after
    // NUVIE_REDIS_CRITICAL_FOR.
    redis.kill();
    reaches(&d, "nuvie-redis-down", "warning");
    reaches(&d, "nuvie-redis-down", "critical");
    redis.restart();
    all_rules_ok(&d, "nuvie");

    // The database hangs (every backend stopped): probes time out, the API is down.
    pg.pause();
    reaches(&d, "nuvie-db-down", "critical");
    assert_eq!(error_kind(&d, "nuvie-db"), "timeout");
    pg.resume();
    all_rules_ok(&d, "nuvie");

    // "SSL certificates valid (>30 days)": a renewal that left 10 days is a warning ...
    tls.renew(&pki.leaf("localhost", 10 * DAY));
    let r = reaches(&d, "nuvie-api-cert-expiry", "warning");
    let days = r["value"].as_f64().expect("days_left");
    assert!((9.9..=10.0).contains(&days), "10 days left, got {days}");
    reaches(&d, "nuvie-ai-cert-expiry", "warning");
    // ... a certificate from an unknown CA fails verification: critical.
    tls.renew(&Pki::new().leaf("localhost", 90 * DAY));
    reaches(&d, "nuvie-api-cert-expiry", "critical");
    assert_eq!(error_kind(&d, "nuvie-api-cert"), "tls");
    tls.renew(&pki.leaf("localhost", 90 * DAY));
    all_rules_ok(&d, "nuvie");
}
