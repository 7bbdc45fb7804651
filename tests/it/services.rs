//! The daemon against real Redis, Postgres and TLS servers: kills, pauses, real connections.

use std::time::{Duration, Instant};

use crate::daemon::Daemon;
use crate::harness::{Pki, PostgresServer, RedisServer, TlsServer};
use crate::target::HttpTarget;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn millis(rfc3339: &serde_json::Value) -> i64 {
    let s = rfc3339.as_str().expect("timestamp string");
    let t = humantime::parse_rfc3339(s).expect("rfc3339");
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn redis_killed_is_critical_after_its_for_and_ok_after_restart() {
    let mut redis = RedisServer::start();
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "redis"
kind = "redis"
url = "{}"
interval = "200ms"
timeout = "200ms"

[[rule]]
name = "redis-down"
check = "redis"
warning = {{ when = "< 1" }}
critical = {{ when = "< 1", for = "1500ms" }}
"#,
        redis.url()
    ));
    d.wait_rule_state("redis-down", "ok", Duration::from_secs(10));

    redis.kill();
    let warned = d.wait_rule_state("redis-down", "warning", Duration::from_secs(5));
    let check = d.check("redis");
    assert_eq!(check["last_error"]["kind"], "connect", "{check:#}");
    let down_since = millis(&check["since"]);
    let critical = d.wait_rule_state("redis-down", "critical", Duration::from_secs(10));
    let critical_at = millis(&critical["since"]);
    assert!(
        critical_at - down_since >= 1500,
        "critical only after failing for 1.5 s: down at {down_since}, critical at {critical_at}"
    );
    assert!(millis(&warned["since"]) < critical_at);

    redis.restart();
    let ok = d.wait_rule_state("redis-down", "ok", Duration::from_secs(10));
    assert_eq!(ok["last_transition"]["reason"], "recovered");
    assert_eq!(d.check("redis")["state"], "up");
}

#[test]
fn paused_redis_and_postgres_time_out_while_other_checks_stay_on_schedule() {
    let rt = runtime();
    let redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    let target = HttpTarget::start();
    target.set_json("/health", 200, serde_json::json!({"status": "healthy"}));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "redis"
kind = "redis"
url = "{redis}"
interval = "1s"
timeout = "400ms"

[[check]]
name = "pg"
kind = "postgres"
url = "{pg}"
interval = "1s"
timeout = "400ms"

[[check]]
name = "api"
kind = "http"
url = "{api}"
interval = "100ms"
timeout = "100ms"
"#,
        redis = redis.url(),
        pg = pg.url(),
        api = target.url("/health")
    ));
    let deadline = Instant::now() + Duration::from_secs(15);
    while d.check("redis")["state"] != "up" || d.check("pg")["state"] != "up" {
        assert!(
            Instant::now() < deadline,
            "redis and pg never came up: {:#}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    redis.pause();
    pg.pause();
    let before = target.hits("/health");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    loop {
        let (r, p) = (d.check("redis"), d.check("pg"));
        if r["last_error"]["kind"] == "timeout" && p["last_error"]["kind"] == "timeout" {
            for c in [&r, &p] {
                let took = c["duration_seconds"].as_f64().unwrap();
                assert!(
                    (0.35..1.0).contains(&took),
                    "a paused server fails by the 400ms timeout, took {took}s: {c:#}"
                );
                assert_eq!(c["state"], "down");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "paused servers never timed out: {r:#} {p:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the paused probes time out a few more times while the HTTP check keeps its 100ms pace.
    std::thread::sleep(Duration::from_secs(2));
    let elapsed = started.elapsed().as_secs_f64();
    let hits = target.hits("/health") - before;
    let expected = elapsed / 0.1;
    redis.resume();
    pg.resume();
    assert!(
        hits as f64 >= expected * 0.8,
        "the http check fell behind while redis and pg hung: {hits} runs in {elapsed:.1}s, expected ~{expected:.0}"
    );
}

#[test]
fn connections_ratio_crosses_80_percent_with_real_connections() {
    let rt = runtime();
    let pg = rt.block_on(PostgresServer::start_with(10));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "pg"
kind = "postgres"
url = "{}"
interval = "300ms"
timeout = "300ms"

[[rule]]
name = "pg-connections"
check = "pg"
value = "connections_ratio"
warning = {{ when = "> 0.8", clear = "< 0.7" }}
critical = {{ when = "> 0.95" }}
"#,
        pg.url()
    ));
    let r = d.wait_rule_state("pg-connections", "ok", Duration::from_secs(10));
    assert!(r["value"].as_f64().unwrap() <= 0.2, "{r:#}");

    // 8 held connections + the probe's own = 9 of 10 = 0.9.
    let held: Vec<_> = (0..8).map(|_| rt.block_on(pg.connect())).collect();
    let r = d.wait_rule_state("pg-connections", "warning", Duration::from_secs(10));
    assert!(r["value"].as_f64().unwrap() > 0.8, "{r:#}");
    let c = d.check("pg");
    assert_eq!(c["values"]["max_connections"], 10.0, "{c:#}");

    // Dropping one (8 of 10 = 0.8) is inside the hysteresis band: still warning.
    let mut held = held;
    held.truncate(7);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(d.rule("pg-connections")["state"], "warning");
    held.clear();
    d.wait_rule_state("pg-connections", "ok", Duration::from_secs(10));
}

#[test]
fn named_query_row_count_drives_a_rule() {
    let rt = runtime();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute(
        "CREATE TABLE users (id int primary key, synced bool not null);
         CREATE VIEW v_user_sync_missing AS SELECT id FROM users WHERE NOT synced;
         CREATE TABLE reputation_events (at timestamptz not null);
         INSERT INTO users VALUES (1, true), (2, true);
         INSERT INTO reputation_events VALUES (now());",
    ));
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "db"
kind = "postgres"
url = "{}"
interval = "300ms"
timeout = "300ms"

[[check.query]]
name = "user_sync_missing"
sql = "SELECT id FROM v_user_sync_missing"
result = "rows"

[[check.query]]
name = "reputation_events_last_hour"
sql = "SELECT count(*) FROM reputation_events WHERE at > now() - interval '1 hour'"

[[rule]]
name = "user-sync"
check = "db"
value = "user_sync_missing"
critical = {{ when = "> 0" }}

[[rule]]
name = "reputation-flow"
check = "db"
value = "reputation_events_last_hour"
warning = {{ when = "< 1" }}
"#,
        pg.url()
    ));
    d.wait_rule_state("user-sync", "ok", Duration::from_secs(10));
    d.wait_rule_state("reputation-flow", "ok", Duration::from_secs(10));

    rt.block_on(pg.execute(
        "INSERT INTO users VALUES (3, false), (4, false);
         DELETE FROM reputation_events;",
    ));
    let r = d.wait_rule_state("user-sync", "critical", Duration::from_secs(10));
    assert_eq!(r["value"], 2.0, "two users are missing their sync: {r:#}");
    d.wait_rule_state("reputation-flow", "warning", Duration::from_secs(10));

    // The sync catches up (written by the test, not the probe: its session is read-only,
    // see probes::postgres_session_is_read_only): the rule recovers.
    rt.block_on(pg.execute("UPDATE users SET synced = true"));
    d.wait_rule_state("user-sync", "ok", Duration::from_secs(10));
}

#[test]
fn certificate_expiry_from_a_generated_certificate() {
    let rt = runtime();
    let pki = Pki::new();
    let leaf = pki.leaf("localhost", 10 * 86_400);
    let server = rt.block_on(TlsServer::start(&leaf));
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let d = Daemon::start(&format!(
        r#"
[[check]]
name = "cert"
kind = "tls"
address = "{}"
server_name = "localhost"
ca_file = "{}"
interval = "500ms"
timeout = "400ms"

[[rule]]
name = "cert-expiry"
check = "cert"
value = "days_left"
warning = {{ when = "< 30" }}
critical = {{ when = "< 7" }}
"#,
        server.address(),
        ca.display()
    ));
    let r = d.wait_rule_state("cert-expiry", "warning", Duration::from_secs(10));
    let days = r["value"].as_f64().unwrap();
    assert!((9.9..=10.0).contains(&days), "10 days left, got {days}");
    drop(server);
}
