//! Connection reuse of HTTP probes (issue 18): a check run often keeps one connection to its
//! target while places last, every other probe connects anew, the connections a target sees
//! stay bounded, a target that closes connections (idle, half-closed, under a request,
//! `Connection: close`) never fails a probe, and a reload closes the connections of the checks
//! it replaced. Connections are counted at the server.

use std::time::Duration;

use warden::check::http::{HttpClients, HttpProbe, KeepAlive};
use warden::check::{Probe, ProbeError};
use warden::config::HttpCheck;

use crate::daemon::{post, Daemon};
use crate::harness::http::{HttpServer, Reply};
use crate::harness::raw_http::{Behaviour, RawHttpServer};
use crate::target::HttpTarget;

const TIMEOUT: Duration = Duration::from_secs(2);
/// An interval short enough to keep a connection (at most 60s).
const OFTEN: Duration = Duration::from_secs(10);
/// How long a test waits for the server to see connections close.
const SETTLE: Duration = Duration::from_secs(10);

fn spec(url: &str) -> HttpCheck {
    HttpCheck {
        url: url.to_string(),
        method: "GET".into(),
        headers: Vec::new(),
        body: None,
        expect_status: Vec::new(),
        assertions: vec![warden::config::parse_assertion(r#"status == "healthy""#).unwrap()],
        extract: Default::default(),
        max_body_bytes: 1024 * 1024,
        tls_verify: true,
        ca_file: None,
        follow_redirects: false,
    }
}

fn probe(spec: &HttpCheck, interval: Duration, clients: &mut HttpClients) -> HttpProbe {
    HttpProbe::with_clients(spec, TIMEOUT, interval, clients).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `probe` `runs` times, each after `pause` (as its schedule would); returns the failures.
async fn run(probe: &HttpProbe, runs: usize, pause: Duration) -> Vec<ProbeError> {
    let mut failures = Vec::new();
    for _ in 0..runs {
        tokio::time::sleep(pause).await;
        match tokio::time::timeout(TIMEOUT * 2, probe.run()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(e),
            Err(_) => panic!("the probe did not give up within twice its timeout"),
        }
    }
    failures
}

/// Before each probe (a real interval is seconds; this only lets the previous probe's finished
/// response hand its connection back to the pool, which hyper does on a task of its own).
const PAUSE: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_carries_every_probe_of_its_target() {
    let server = RawHttpServer::start(Behaviour::KeepAlive);
    let keep_alive = KeepAlive::new(10);
    let mut clients = HttpClients::new(&keep_alive);
    let health = probe(&spec(&server.url("/health")), OFTEN, &mut clients);
    let ready = probe(&spec(&server.url("/ready")), OFTEN, &mut clients);
    assert!(run(&health, 5, PAUSE).await.is_empty());
    assert!(run(&ready, 5, PAUSE).await.is_empty());
    assert_eq!(server.answered(), 10);
    assert_eq!(
        server.accepted(),
        1,
        "10 probes of two checks of one origin: one connection"
    );
    assert_eq!(keep_alive.taken(), 1, "one origin, one place");
    assert_eq!(server.open(), 1, "kept between probes");
    drop((health, ready, clients));
    assert_eq!(
        keep_alive.taken(),
        0,
        "the place is given back with the probes"
    );
    assert_eq!(
        server.wait_open_at_most(0, SETTLE),
        0,
        "the pool closes its connection with the last probe"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_place_every_probe_connects_anew() {
    let post = HttpCheck {
        method: "POST".into(),
        body: Some("{}".into()),
        ..spec("")
    };
    // (what, places, the check, its interval)
    let cases: [(&str, usize, HttpCheck, Duration); 3] = [
        ("keep_alive_targets = 0", 0, spec(""), OFTEN),
        ("a POST (not sent twice)", 10, post, OFTEN),
        ("run every 2m", 10, spec(""), Duration::from_secs(120)),
    ];
    for (what, places, check, interval) in cases {
        let server = RawHttpServer::start(Behaviour::KeepAlive);
        let keep_alive = KeepAlive::new(places);
        let mut clients = HttpClients::new(&keep_alive);
        let check = HttpCheck {
            url: server.url("/health"),
            ..check
        };
        let p = probe(&check, interval, &mut clients);
        let failures = run(&p, 5, PAUSE).await;
        assert!(failures.is_empty(), "{what}: {failures:?}");
        assert_eq!(server.accepted(), 5, "{what}: a connection per probe");
        assert_eq!(keep_alive.taken(), 0, "{what}");
        assert_eq!(
            server.wait_open_at_most(0, SETTLE),
            0,
            "{what}: each closed after its probe"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_bound_checks_connect_anew_and_connections_stay_bounded() {
    let servers: Vec<RawHttpServer> = (0..6)
        .map(|_| RawHttpServer::start(Behaviour::KeepAlive))
        .collect();
    let keep_alive = KeepAlive::new(2);
    let mut clients = HttpClients::new(&keep_alive);
    let probes: Vec<HttpProbe> = servers
        .iter()
        .map(|s| probe(&spec(&s.url("/health")), OFTEN, &mut clients))
        .collect();
    for round in 0..4 {
        for (i, p) in probes.iter().enumerate() {
            let failures = run(p, 1, PAUSE).await;
            assert!(
                failures.is_empty(),
                "round {round}, target {i}: {failures:?}"
            );
        }
        tokio::time::sleep(PAUSE).await;
        let open = |servers: &[RawHttpServer]| servers.iter().map(|s| s.open()).sum::<u64>();
        for s in &servers {
            s.wait_open_at_most(1, SETTLE);
        }
        for _ in 0..(SETTLE.as_millis() / 20) {
            if open(&servers) <= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            open(&servers),
            2,
            "round {round}: only the two kept connections stay open"
        );
    }
    let mut accepted: Vec<u64> = servers.iter().map(|s| s.accepted()).collect();
    accepted.sort();
    assert_eq!(
        accepted,
        [1, 1, 4, 4, 4, 4],
        "the two first probed keep one connection, the other four connect each round"
    );
    assert_eq!(keep_alive.taken(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_closes_idle_connections_never_fails_a_probe() {
    // The server closes (or half-closes) a connection idle for 1s; the check runs every 2s.
    let idle = Duration::from_secs(1);
    let interval = Duration::from_secs(2);
    let closing = RawHttpServer::start(Behaviour::CloseIdleAfter(idle));
    let half_closing = RawHttpServer::start(Behaviour::HalfCloseIdleAfter(idle));
    let keep_alive = KeepAlive::new(10);
    let mut clients = HttpClients::new(&keep_alive);
    let a = probe(&spec(&closing.url("/health")), interval, &mut clients);
    let b = probe(&spec(&half_closing.url("/health")), interval, &mut clients);
    let (fa, fb) = tokio::join!(run(&a, 4, interval), run(&b, 4, interval));
    assert!(fa.is_empty(), "closed when idle: {fa:?}");
    assert!(fb.is_empty(), "half-closed when idle: {fb:?}");
    // Every kept connection was closed by the server before the next probe: the case was real.
    assert_eq!((closing.answered(), closing.accepted()), (4, 4));
    assert_eq!((half_closing.answered(), half_closing.accepted()), (4, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_races_the_close_is_sent_again_on_a_fresh_connection() {
    for reset in [false, true] {
        let server = RawHttpServer::start(Behaviour::DropSecondRequest { reset });
        let keep_alive = KeepAlive::new(10);
        let mut clients = HttpClients::new(&keep_alive);
        let p = probe(&spec(&server.url("/health")), OFTEN, &mut clients);
        let failures = run(&p, 6, PAUSE).await;
        assert!(failures.is_empty(), "reset {reset}: {failures:?}");
        // Probes 2, 4 and 6 went over the kept connection and lost it under the request; each
        // was sent again on a fresh connection, and the next probe kept a new one.
        assert_eq!(server.dropped(), 3, "reset {reset}");
        assert_eq!(server.answered(), 6, "reset {reset}");
        assert_eq!(server.accepted(), 6, "reset {reset}");
    }
    // A POST is never sent twice, so it never goes over a kept connection at all.
    let server = RawHttpServer::start(Behaviour::DropSecondRequest { reset: false });
    let mut clients = HttpClients::new(&KeepAlive::new(10));
    let check = HttpCheck {
        method: "POST".into(),
        body: Some("{}".into()),
        ..spec(&server.url("/health"))
    };
    let p = probe(&check, OFTEN, &mut clients);
    let failures = run(&p, 4, PAUSE).await;
    assert!(failures.is_empty(), "POST: {failures:?}");
    assert_eq!((server.dropped(), server.accepted()), (0, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_close_redirects_and_tls_work_with_kept_connections() {
    let keep_alive = KeepAlive::new(10);
    let mut clients = HttpClients::new(&keep_alive);

    let closing = RawHttpServer::start(Behaviour::ConnectionClose);
    let p = probe(&spec(&closing.url("/health")), OFTEN, &mut clients);
    let failures = run(&p, 3, PAUSE).await;
    assert!(failures.is_empty(), "Connection: close: {failures:?}");
    assert_eq!(closing.accepted(), 3, "a connection per answer");
    assert_eq!(closing.wait_open_at_most(0, SETTLE), 0);

    let target = HttpTarget::start();
    target.set_json("/health", 200, serde_json::json!({"status": "healthy"}));
    let redirecting = HttpServer::start({
        let to = target.url("/health");
        move |_| Reply::status(301).header("location", &to)
    });
    let check = HttpCheck {
        follow_redirects: true,
        ..spec(&redirecting.url("/old"))
    };
    let p = probe(&check, OFTEN, &mut clients);
    let failures = run(&p, 3, PAUSE).await;
    assert!(failures.is_empty(), "redirected: {failures:?}");
    assert_eq!(target.hits("/health"), 3);

    let pki = crate::harness::Pki::new();
    let tls = HttpTarget::start_tls(&pki.leaf("localhost", 90 * 86_400));
    tls.set_json("/health", 200, serde_json::json!({"status": "healthy"}));
    let dir = tempfile::tempdir().unwrap();
    let check = HttpCheck {
        ca_file: Some(pki.write_ca(dir.path())),
        ..spec(&tls.https_url("/health"))
    };
    let p = probe(&check, OFTEN, &mut clients);
    let failures = run(&p, 3, PAUSE).await;
    assert!(failures.is_empty(), "https: {failures:?}");
    assert_eq!(tls.hits("/health"), 3);
}

/// The config body of one http check per server, labelled with `generation` (a new label
/// makes every check a changed one: a reload replaces all their probes).
fn generation(servers: &[RawHttpServer], generation: u32) -> String {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "[[check]]\nname = \"t{i}\"\nkind = \"http\"\nurl = \"{}\"\ninterval = \"200ms\"\n\
                 timeout = \"200ms\"\nlabels = {{ generation = \"g{generation}\" }}\n\n",
                s.url("/health")
            )
        })
        .collect()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_reload_closes_the_connections_of_the_checks_it_replaced() {
    let servers: Vec<RawHttpServer> = (0..4)
        .map(|_| RawHttpServer::start(Behaviour::KeepAlive))
        .collect();
    let d = Daemon::start(&generation(&servers, 0));
    let answered =
        |servers: &[RawHttpServer]| -> Vec<u64> { servers.iter().map(|s| s.answered()).collect() };
    for s in &servers {
        s.wait_answered(3, SETTLE);
    }
    let descriptors = open_descriptors(d.child.id());
    for g in 1..=5 {
        let before = answered(&servers);
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\n\n{}",
            d.port,
            generation(&servers, g)
        );
        let path = d.config_path();
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let (code, body) = post(&d.url("/-/reload"), None).unwrap();
        assert_eq!(code, 200, "reload {g}: {body}\nlog:\n{}", d.log());
        for (s, b) in servers.iter().zip(&before) {
            s.wait_answered(b + 3, SETTLE);
        }
    }
    for (i, s) in servers.iter().enumerate() {
        assert!(
            s.accepted() >= 2,
            "target {i}: each generation has a pool of its own ({} connections)",
            s.accepted()
        );
        assert!(
            s.wait_open_at_most(1, SETTLE) <= 1,
            "target {i}: {} connections open after 5 reloads; the replaced pools leaked",
            s.open()
        );
    }
    let after = open_descriptors(d.child.id());
    assert!(
        after <= descriptors + 2,
        "warden held {descriptors} descriptors before the reloads, {after} after"
    );
}
