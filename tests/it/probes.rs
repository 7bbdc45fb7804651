//! The redis, postgres and tls probes against real servers.

use std::time::Duration;

use tokio::time::Instant;
use warden::check::postgres::PostgresProbe;
use warden::check::redis::RedisProbe;
use warden::check::tls::TlsProbe;
use warden::check::{Probe, ProbeError, ProbeErrorKind, Values};
use warden::config::{NamedQuery, PostgresCheck, QueryResult, RedisCheck, TlsCheck};
use warden::secret::Secret;

use crate::harness::{free_port, Pki, PostgresServer, RedisServer, RenewableTlsServer, TlsServer};

const TIMEOUT: Duration = Duration::from_secs(2);
/// How much later than its own timeout a probe may give up.
const MARGIN: Duration = Duration::from_secs(1);

/// Runs a probe under an outer guard (timeout + margin), like `Prober::observe` does.
async fn run(probe: &impl Probe, timeout: Duration) -> Result<Values, ProbeError> {
    match tokio::time::timeout(timeout + MARGIN, probe.run()).await {
        Ok(result) => result,
        Err(_) => panic!("the probe did not give up within {timeout:?} + {MARGIN:?}"),
    }
}

fn ok(result: Result<Values, ProbeError>) -> Values {
    result.unwrap_or_else(|e| panic!("probe failed: {e}"))
}

fn err(result: Result<Values, ProbeError>) -> ProbeError {
    match result {
        Ok(values) => panic!("probe succeeded with {values:?}"),
        Err(e) => e,
    }
}

// ---- redis ----

fn redis_probe(url: &str, info_fields: &[&str], timeout: Duration) -> RedisProbe {
    let spec = RedisCheck {
        url: Secret::new(url),
        info_fields: info_fields.iter().map(|s| s.to_string()).collect(),
        ca_file: None,
    };
    RedisProbe::new(&spec, timeout).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn rediss_with_a_ca_file_and_an_unknown_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let ca = pki.write_ca(dir.path());
    let (cert, key) = pki.write_leaf(dir.path(), "127.0.0.1", 30 * 86_400);
    let server = RedisServer::with().tls(&cert, &key, &ca).start();
    let spec = |ca_file: Option<std::path::PathBuf>| RedisCheck {
        url: Secret::new(server.tls_url()),
        info_fields: Vec::new(),
        ca_file,
    };
    let timeout = Duration::from_secs(2);
    let probe = RedisProbe::new(&spec(Some(ca)), timeout).unwrap_or_else(|e| panic!("{e}"));
    let values = probe
        .run()
        .await
        .unwrap_or_else(|e| panic!("rediss probe failed: {e}"));
    assert!(values["connected_clients"] >= 1.0, "{values:?}");

    // The system roots do not know the test CA: the handshake must fail, not pass silently.
    let probe = RedisProbe::new(&spec(None), timeout).unwrap_or_else(|e| panic!("{e}"));
    let err = probe.run().await.expect_err("an unknown CA must fail");
    assert_eq!(err.kind, ProbeErrorKind::Tls, "{err}");
}

#[tokio::test]
async fn redis_ping_and_info_values() {
    let server = RedisServer::with().maxmemory(64 * 1024 * 1024).start();
    let fields = [
        "instantaneous_ops_per_sec",
        "redis_version",
        "no_such_field",
    ];
    let probe = redis_probe(&server.url(), &fields, TIMEOUT);
    let values = ok(run(&probe, TIMEOUT).await);

    assert_eq!(values.get("maxmemory"), Some(&(64.0 * 1024.0 * 1024.0)));
    let used = values["used_memory"];
    assert!(used > 0.0, "{values:?}");
    assert_eq!(values["memory_ratio"], used / (64.0 * 1024.0 * 1024.0));
    assert!(values["connected_clients"] >= 1.0, "{values:?}");
    assert_eq!(values.get("blocked_clients"), Some(&0.0));
    assert!(
        values.contains_key("instantaneous_ops_per_sec"),
        "{values:?}"
    );
    // Non-numeric ("7.0.15") and absent fields are absent values, not errors.
    assert!(!values.contains_key("redis_version"), "{values:?}");
    assert!(!values.contains_key("no_such_field"), "{values:?}");
}

#[tokio::test]
async fn redis_without_maxmemory_has_no_memory_ratio() {
    let server = RedisServer::start();
    let values = ok(run(&redis_probe(&server.url(), &[], TIMEOUT), TIMEOUT).await);
    assert_eq!(values.get("maxmemory"), Some(&0.0));
    assert!(!values.contains_key("memory_ratio"), "{values:?}");
}

#[tokio::test]
async fn redis_password_right_wrong_and_missing() {
    let password = "s3cret-Pa55word";
    let server = RedisServer::with().password(password).start();
    ok(run(&redis_probe(&server.url(), &[], TIMEOUT), TIMEOUT).await);

    let wrong = "wr0ng-Pa55word";
    let e = err(run(
        &redis_probe(&server.url_with_password(wrong), &[], TIMEOUT),
        TIMEOUT,
    )
    .await);
    assert_eq!(e.kind, ProbeErrorKind::Protocol, "{e}");
    assert!(e.message.contains("authentication failed"), "{e}");
    assert!(!e.message.contains(wrong), "{e}");
    assert!(e.message.contains("<secret>"), "{e}");

    let missing = format!("redis://127.0.0.1:{}/", server.port());
    let e = err(run(&redis_probe(&missing, &[], TIMEOUT), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Protocol, "{e}");
    assert!(e.message.contains("authentication failed"), "{e}");
}

#[tokio::test]
async fn redis_killed_is_connect_error_and_restart_recovers() {
    let password = "kill-me-Pa55";
    let mut server = RedisServer::with().password(password).start();
    let probe = redis_probe(&server.url(), &[], TIMEOUT);
    ok(run(&probe, TIMEOUT).await);

    server.kill();
    let e = err(run(&probe, TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Connect, "{e}");
    assert!(!e.message.contains(password), "{e}");

    server.restart();
    ok(run(&probe, TIMEOUT).await);
}

#[tokio::test]
async fn redis_paused_times_out_within_the_timeout() {
    let server = RedisServer::start();
    let timeout = Duration::from_millis(500);
    let probe = redis_probe(&server.url(), &[], timeout);
    ok(run(&probe, timeout).await);

    server.pause();
    let started = Instant::now();
    let e = err(run(&probe, timeout).await);
    let elapsed = started.elapsed();
    server.resume();
    assert_eq!(e.kind, ProbeErrorKind::Timeout, "{e}");
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    ok(run(&probe, timeout).await);
}

#[tokio::test]
async fn redis_nothing_listening_is_connect_error() {
    let url = format!("redis://:pw-not-shown@127.0.0.1:{}/", free_port());
    let e = err(run(&redis_probe(&url, &[], TIMEOUT), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Connect, "{e}");
    assert!(!e.message.contains("pw-not-shown"), "{e}");
}

// ---- postgres ----

fn query(name: &str, sql: &str, result: QueryResult) -> NamedQuery {
    NamedQuery {
        name: name.into(),
        sql: sql.into(),
        result,
    }
}

fn postgres_probe(url: &str, queries: Vec<NamedQuery>, timeout: Duration) -> PostgresProbe {
    let spec = PostgresCheck {
        url: Secret::new(url),
        queries,
    };
    PostgresProbe::new(&spec, timeout).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn postgres_select_one_and_connection_values() {
    let server = PostgresServer::start_with(10).await;
    let values = ok(run(&postgres_probe(&server.url(), vec![], TIMEOUT), TIMEOUT).await);
    assert_eq!(values.get("max_connections"), Some(&10.0));
    // The probe's own connection is counted, as psql would show it.
    let connections = values["connections"];
    assert!(connections >= 1.0, "{values:?}");
    assert_eq!(values["connections_ratio"], connections / 10.0);
}

#[tokio::test]
async fn postgres_connections_ratio_rises_with_open_connections() {
    let server = PostgresServer::start_with(10).await;
    let probe = postgres_probe(&server.url(), vec![], TIMEOUT);
    let before = ok(run(&probe, TIMEOUT).await)["connections_ratio"];

    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(server.connect().await);
    }
    let values = ok(run(&probe, TIMEOUT).await);
    assert!(values["connections_ratio"] >= 0.8, "{values:?}");
    assert!(
        values["connections_ratio"] > before,
        "{values:?}, before {before}"
    );
    drop(held);
}

#[tokio::test]
async fn postgres_named_queries_scalar_and_rows() {
    let server = PostgresServer::start().await;
    server
        .execute(
            "CREATE TABLE users (id int PRIMARY KEY, synced bool NOT NULL);
             CREATE VIEW v_user_sync_missing AS SELECT id FROM users WHERE NOT synced;
             INSERT INTO users VALUES (1, true);",
        )
        .await;
    let queries = vec![
        query(
            "sync_missing_rows",
            "SELECT * FROM v_user_sync_missing",
            QueryResult::Rows,
        ),
        query(
            "sync_missing",
            "SELECT count(*) FROM v_user_sync_missing",
            QueryResult::Scalar,
        ),
        query("price", "SELECT 12.50::numeric", QueryResult::Scalar),
    ];
    let probe = postgres_probe(&server.url(), queries, TIMEOUT);
    let values = ok(run(&probe, TIMEOUT).await);
    assert_eq!(values.get("sync_missing_rows"), Some(&0.0), "{values:?}");
    assert_eq!(values.get("sync_missing"), Some(&0.0), "{values:?}");
    assert_eq!(values.get("price"), Some(&12.5), "{values:?}");

    server
        .execute("INSERT INTO users VALUES (2, false), (3, false);")
        .await;
    let values = ok(run(&probe, TIMEOUT).await);
    assert_eq!(values.get("sync_missing_rows"), Some(&2.0), "{values:?}");
    assert_eq!(values.get("sync_missing"), Some(&2.0), "{values:?}");
}

#[tokio::test]
async fn postgres_sql_error_is_protocol_naming_the_query() {
    let server = PostgresServer::start().await;
    let queries = vec![query(
        "missing_table",
        "SELECT count(*) FROM no_such_table",
        QueryResult::Scalar,
    )];
    let e = err(run(&postgres_probe(&server.url(), queries, TIMEOUT), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Protocol, "{e}");
    assert!(e.message.contains("missing_table"), "{e}");
    assert!(e.message.contains("no_such_table"), "{e}");
    // Values read before the failing query are kept.
    assert!(e.partial.contains_key("connections"), "{:?}", e.partial);
}

#[tokio::test]
async fn postgres_null_or_no_row_scalar_is_protocol() {
    let server = PostgresServer::start().await;
    for sql in ["SELECT NULL::int", "SELECT 1 WHERE false"] {
        let queries = vec![query("q", sql, QueryResult::Scalar)];
        let e = err(run(&postgres_probe(&server.url(), queries, TIMEOUT), TIMEOUT).await);
        assert_eq!(e.kind, ProbeErrorKind::Protocol, "{sql}: {e}");
        assert!(e.message.contains("query q"), "{e}");
    }
}

#[tokio::test]
async fn postgres_session_is_read_only() {
    let server = PostgresServer::start().await;
    server.execute("CREATE TABLE t (x int);").await;
    let queries = vec![query(
        "write",
        "INSERT INTO t VALUES (1)",
        QueryResult::Rows,
    )];
    let e = err(run(&postgres_probe(&server.url(), queries, TIMEOUT), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Protocol, "{e}");
    assert!(e.message.contains("read-only"), "{e}");
}

#[tokio::test]
async fn postgres_paused_times_out_within_the_timeout() {
    let server = PostgresServer::start().await;
    let timeout = Duration::from_millis(500);
    let probe = postgres_probe(&server.url(), vec![], timeout);
    ok(run(&probe, timeout).await);

    server.pause();
    let started = Instant::now();
    let result = run(&probe, timeout).await;
    let elapsed = started.elapsed();
    server.resume();
    let e = err(result);
    assert_eq!(e.kind, ProbeErrorKind::Timeout, "{e}");
    assert!(elapsed >= timeout, "gave up after {elapsed:?}");
    ok(run(&probe, TIMEOUT).await);
}

#[tokio::test]
async fn postgres_stopped_is_connect_error_without_password() {
    let mut server = PostgresServer::start().await;
    let url = format!(
        "postgres://postgres:pg-Pa55word@127.0.0.1:{}/postgres",
        server.port()
    );
    let probe = postgres_probe(&url, vec![], TIMEOUT);
    ok(run(&probe, TIMEOUT).await);
    server.stop();
    let e = err(run(&probe, TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Connect, "{e}");
    assert!(!e.message.contains("pg-Pa55word"), "{e}");
}

// ---- tls ----

const DAY: i64 = 86_400;

fn tls_probe(address: &str, ca_file: Option<std::path::PathBuf>, verify: bool) -> TlsProbe {
    tls_probe_named(address, "localhost", ca_file, verify)
}

fn tls_probe_named(
    address: &str,
    server_name: &str,
    ca_file: Option<std::path::PathBuf>,
    verify: bool,
) -> TlsProbe {
    let spec = TlsCheck {
        address: address.into(),
        server_name: server_name.into(),
        verify,
        ca_file,
    };
    TlsProbe::new(&spec, TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn tls_days_left_with_the_ca_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new();
    let server = TlsServer::start(&pki.leaf("localhost", 10 * DAY)).await;
    let probe = tls_probe(&server.address(), Some(pki.write_ca(dir.path())), true);
    let values = ok(run(&probe, TIMEOUT).await);
    let days = values["days_left"];
    assert!((days - 10.0).abs() < 0.01, "days_left = {days}");
}

#[tokio::test]
async fn tls_unknown_ca_is_tls_error() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki.leaf("localhost", 10 * DAY)).await;
    let e = err(run(&tls_probe(&server.address(), None, true), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Tls, "{e}");
    assert!(e.message.contains("UnknownIssuer"), "{e}");
}

#[tokio::test]
async fn tls_without_verification_still_reads_days_left() {
    let pki = Pki::new();
    let server = TlsServer::start(&pki.leaf("localhost", 10 * DAY)).await;
    let values = ok(run(&tls_probe(&server.address(), None, false), TIMEOUT).await);
    assert!((values["days_left"] - 10.0).abs() < 0.01, "{values:?}");

    // An expired certificate too, with a negative count.
    let expired = TlsServer::start(&pki.leaf("localhost", -2 * DAY)).await;
    let values = ok(run(&tls_probe(&expired.address(), None, false), TIMEOUT).await);
    assert!((values["days_left"] + 2.0).abs() < 0.01, "{values:?}");
}

#[tokio::test]
async fn tls_expired_or_wrong_name_is_tls_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new();
    let ca = pki.write_ca(dir.path());

    let expired = TlsServer::start(&pki.leaf("localhost", -DAY)).await;
    let e = err(run(
        &tls_probe(&expired.address(), Some(ca.clone()), true),
        TIMEOUT,
    )
    .await);
    assert_eq!(e.kind, ProbeErrorKind::Tls, "{e}");
    assert!(e.message.to_lowercase().contains("expired"), "{e}");

    let server = TlsServer::start(&pki.leaf("localhost", 10 * DAY)).await;
    let probe = tls_probe_named(&server.address(), "db.example.com", Some(ca), true);
    let e = err(run(&probe, TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Tls, "{e}");
    assert!(e.message.contains("db.example.com"), "{e}");
}

/// Found by the runbook tests: a TLS 1.2 server resumes a cached session without sending its
/// certificate, so a probe that kept sessions went on reporting the old certificate after a
/// renewal (and never verified an untrusted replacement). Every probe is a full handshake.
#[tokio::test]
async fn tls_probe_sees_a_renewed_certificate_on_a_server_that_resumes_sessions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pki = Pki::new();
    let server = RenewableTlsServer::start_tls12(&pki.leaf("localhost", 90 * DAY)).await;
    let address = format!("localhost:{}", server.port());
    let probe = tls_probe(&address, Some(pki.write_ca(dir.path())), true);
    let values = ok(run(&probe, TIMEOUT).await);
    assert!((values["days_left"] - 90.0).abs() < 0.01, "{values:?}");

    server.renew(&pki.leaf("localhost", 10 * DAY));
    let values = ok(run(&probe, TIMEOUT).await);
    assert!((values["days_left"] - 10.0).abs() < 0.01, "{values:?}");

    server.renew(&Pki::new().leaf("localhost", 90 * DAY));
    let e = err(run(&probe, TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Tls, "{e}");
}

#[tokio::test]
async fn tls_nothing_listening_is_connect_error() {
    let address = format!("127.0.0.1:{}", free_port());
    let e = err(run(&tls_probe(&address, None, true), TIMEOUT).await);
    assert_eq!(e.kind, ProbeErrorKind::Connect, "{e}");
}
