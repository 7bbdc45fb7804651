//! Criterion benchmarks of the paths every check run goes through, at the scale of the load
//! target (10,000 checks): the rule step, the engine applying one observation, metric
//! recording, the `/metrics` and `/api/v1/status` renderings, and one HTTP probe of a
//! loopback target end to end, and the paging path (the alert stage, the state store's commit).
//!
//! `cargo bench --bench hot_paths` (or `bash scripts/bench.sh --criterion`). These measure
//! CPU time per operation; the load harness (`examples/load.rs`) measures the daemon whole.

// `iter_custom` times only the snapshot, not the observations applied before it: that needs
// wall time, and benches are not product code (paused tokio time has no say here).
#![allow(clippy::disallowed_types)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use warden::actions::Alerts;
use warden::check::{Observation, Prober, Values};
use warden::clock::{Clock, Timestamp};
use warden::config::Config;
use warden::engine::{Engine, RuleTransition};
use warden::rule::{self, RuleState, Sample, State, Transition, TransitionReason};
use warden::state::{Batch, Store};
use warden::telemetry::Metrics;

const CHECKS: usize = 10_000;

/// A config of `n` http checks with one "down 3 times in a row" rule each, as the load
/// harness generates; loaded through the real loader.
fn config(n: usize, url: &str) -> Config {
    let mut s = String::from("[defaults]\ninterval = \"10s\"\ntimeout = \"5s\"\n\n");
    for i in 0..n {
        s.push_str(&format!(
            "[[check]]\nname = \"t{i:06}\"\nkind = \"http\"\nurl = \"{url}\"\n\
             assert = ['status == \"healthy\"']\n\n\
             [[rule]]\nname = \"t{i:06}-down\"\ncheck = \"t{i:06}\"\n\
             critical = {{ when = \"< 1\", count = 3 }}\n\n"
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, s).expect("write config");
    warden::config::load_with_env(&path, &|_| None).expect("generated config is valid")
}

fn observation(check: &str, at: Timestamp) -> Observation {
    let mut values = Values::new();
    values.insert("status_code".into(), 200.0);
    values.insert("up".into(), 1.0);
    values.insert("duration_seconds".into(), 0.0004);
    Observation {
        check: check.to_string(),
        at,
        duration: Duration::from_micros(400),
        outcome: Ok(()),
        values,
        vectors: Default::default(),
        scraped: None,
    }
}

fn rule_step(c: &mut Criterion) {
    let cfg = config(1, "http://127.0.0.1:1/health");
    let rule = &cfg.rules[0];
    let mut state = RuleState::new(Timestamp(0));
    let mut now = Timestamp(0);
    c.bench_function("rule::step (count rule, ok sample)", |b| {
        b.iter(|| {
            now = now + Duration::from_secs(10);
            rule::step(rule, &mut state, Sample::Value(1.0), now)
        })
    });
}

fn engine(c: &mut Criterion) {
    let cfg = config(CHECKS, "http://127.0.0.1:1/health");
    let mut engine = Engine::new(&cfg, Timestamp(0));
    for (i, check) in cfg.checks.iter().enumerate() {
        engine.apply(
            observation(&check.name, Timestamp(i as i64)),
            Timestamp(i as i64),
        );
    }
    let mut now = Timestamp(1_000_000);
    let name = cfg.checks[CHECKS / 2].name.clone();
    c.bench_function("Engine::apply (one observation, 10k checks)", |b| {
        let at = std::cell::Cell::new(now);
        b.iter_batched(
            || observation(&name, at.get()),
            |obs| {
                at.set(at.get() + Duration::from_secs(10));
                engine.apply(obs, at.get())
            },
            BatchSize::SmallInput,
        );
        now = at.get();
    });
    // What the evaluator does every 500 ms at 1,000 checks/s: 500 observations since the
    // previous snapshot, then a new snapshot of all 10k checks and rules.
    let mut g = c.benchmark_group("status");
    g.sample_size(20);
    let names: Vec<String> = cfg.checks.iter().map(|c| c.name.clone()).collect();
    let mut next = 0;
    let mut snapshot_after = |changed: usize, b: &mut criterion::Bencher| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for _ in 0..changed {
                    now = now + Duration::from_millis(1);
                    engine.apply(observation(&names[next % CHECKS], now), now);
                    next += 1;
                }
                let started = Instant::now();
                std::hint::black_box(engine.status(now));
                total += started.elapsed();
            }
            total
        })
    };
    g.bench_function(
        "Engine::status (10k checks, 500 changed since the last)",
        |b| snapshot_after(500, b),
    );
    g.bench_function(
        "Engine::status (10k checks, all changed since the last)",
        |b| snapshot_after(CHECKS, b),
    );
    g.finish();
    let status = engine.status(now);
    c.bench_function("/api/v1/status JSON (10k checks and rules)", |b| {
        b.iter(|| serde_json::to_vec_pretty(&status).expect("serializable"))
    });
}

fn metrics(c: &mut Criterion) {
    let cfg = config(CHECKS, "http://127.0.0.1:1/health");
    let metrics = Metrics::new();
    let handles: Vec<_> = cfg
        .checks
        .iter()
        .map(|c| {
            (
                metrics.table.check(&c.name, "http"),
                metrics.check_duration.with_label_values(&["http"]),
            )
        })
        .collect();
    let record = |row: &warden::telemetry::table::CheckRow, duration: &prometheus::Histogram| {
        row.up.store(1, std::sync::atomic::Ordering::Relaxed);
        duration.observe(0.0004);
        row.last_duration.set(0.0004);
        row.last_run.set(1.0);
        row.run("ok");
    };
    for (row, duration) in &handles {
        record(row, duration);
    }
    let (row, duration) = &handles[CHECKS / 2];
    c.bench_function("metrics: record one observation (10k checks)", |b| {
        b.iter(|| {
            record(row, duration);
            metrics.scheduler_lateness.observe(0.0002);
        })
    });
    let mut g = c.benchmark_group("scrape");
    g.sample_size(10);
    g.bench_function("Metrics::encode (/metrics at 10k checks)", |b| {
        b.iter(|| metrics.encode())
    });
    g.finish();
}

/// A keep-alive loopback HTTP target on its own thread and runtime.
fn start_target() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(|_req| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            br#"{"status":"healthy"}"#,
                        ))))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

fn http_probe(c: &mut Criterion) {
    let addr = start_target();
    let cfg = config(1, &format!("http://{addr}/health"));
    let check = &cfg.checks[0];
    let clock = Clock::system();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let prober = Prober::new(check).expect("probe builds");
    let obs = rt.block_on(prober.observe(&check.name, check.timeout, &clock));
    assert!(obs.is_up(), "target answers: {:?}", obs.outcome);
    c.bench_function(
        "http probe of a loopback target (observe, end to end)",
        |b| b.iter(|| rt.block_on(prober.observe(&check.name, check.timeout, &clock))),
    );
    c.bench_function("http probe setup (Prober::new)", |b| {
        b.iter(|| Prober::new(check).expect("probe builds"))
    });
}

fn transition(rule: &str, from: State, to: State, at: Timestamp) -> RuleTransition {
    RuleTransition {
        rule: rule.to_string(),
        labels: Default::default(),
        check: String::new(),
        transition: Transition {
            from,
            to,
            at,
            value: Some(0.0),
            reason: TransitionReason::ThresholdCrossed,
        },
    }
}

/// The alert stage (pure) and the state store's commit, which is where a page waits for the
/// disk: one fsync per transaction (`synchronous=FULL`).
fn paging(c: &mut Criterion) {
    let cfg = config(CHECKS, "http://127.0.0.1:1/health");
    let (mut alerts, _) = Alerts::new(
        &cfg,
        Default::default(),
        warden::alert::Identity {
            instance: "bench".into(),
            epoch: "0".into(),
        },
        Timestamp(0),
    );
    let mut now = Timestamp(0);
    c.bench_function("actions: fire and resolve one alert (10,000 rules)", |b| {
        b.iter(|| {
            now = now + Duration::from_secs(1);
            let rule = "t000042-down";
            let fire = alerts.transition(&transition(rule, State::Ok, State::Critical, now), now);
            let ok = alerts.transition(&transition(rule, State::Critical, State::Ok, now), now);
            (fire, ok)
        })
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _) = Store::open(&dir.path().join("bench.db"), Timestamp(0)).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // A plan as the stage makes it: the record and the page to two notifiers.
    let mut page = |i: usize, now: Timestamp| {
        let rule = format!("t{i:06}-down");
        let plan = alerts.transition(&transition(&rule, State::Ok, State::Critical, now), now);
        alerts.transition(&transition(&rule, State::Critical, State::Ok, now), now);
        let mut batch = Batch::default();
        for (rule, record) in plan.records {
            batch
                .alerts
                .push((rule, serde_json::to_value(record).expect("record encodes")));
        }
        for (event, _) in plan.events {
            batch
                .events
                .push((event, vec!["chat".into(), "pager".into()]));
        }
        batch
    };
    let mut n = 0;
    c.bench_function("store: commit one page (record + 2 rows, one fsync)", |b| {
        b.iter_batched(
            || {
                n += 1;
                page(n % CHECKS, Timestamp(n as i64))
            },
            |batch| rt.block_on(store.commit(batch, Timestamp(0), u64::MAX)),
            BatchSize::SmallInput,
        )
    });
    c.bench_function(
        "store: commit a burst of 256 pages in one transaction",
        |b| {
            b.iter_batched(
                || {
                    let mut burst = Batch::default();
                    for _ in 0..256 {
                        n += 1;
                        let one = page(n % CHECKS, Timestamp(n as i64));
                        burst.alerts.extend(one.alerts);
                        burst.events.extend(one.events);
                    }
                    burst
                },
                |batch| rt.block_on(store.commit(batch, Timestamp(0), u64::MAX)),
                BatchSize::SmallInput,
            )
        },
    );
}

criterion_group!(benches, rule_step, engine, metrics, http_probe, paging);
criterion_main!(benches);
