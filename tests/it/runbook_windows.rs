//! The five runbooks' post-deploy validation windows, end to end: each
//! `config/examples/<system>.toml` runs as shipped (pointed at loopback, its marks, holds and
//! metric ranges shortened to seconds by its own environment variables) against its
//! imitation (`imitation`: the runbook's health bodies, a `/metrics` whose traffic the test
//! steers, per version where the runbook's metrics carry one) and real Redis and Postgres, with
//! its notifiers pointed at local receivers and the tripwire `PATH` of [`Paging`].
//!
//! Each test plays two deploys through `warden gate --url` against the running daemon:
//! - a good one: every mark (or canary step) passes, the gate exits 0, nobody is paged for the
//!   window, and where the runbook sends a message on success (nova-streaming's "Notify team",
//!   novacron's Slack line) the chat gets it;
//! - a bad one, broken the way the runbook says to roll back for (nuvie: the error rate above
//!   its 1%; redcube: p95 past the 30-minute mark's 2 s; nova-streaming: health failing 3
//!   times; ai-saas: the canary's error rate at 25%; novacron: green's p95 past 2x the
//!   baseline): the window fails, the gate exits 2 once the failure's hooks have run, the
//!   runbook's rollback hooks ran exactly once for it (dry runs, as shipped: the run's
//!   `actions.hooks`, `warden_hook_runs_total` and the chat's "HOOK DRY RUN" line naming the
//!   runbook's command; the tripwire saw nothing executed), and the pager got the page
//!   `window/<name>` at critical for that deploy.
//!
//! [`RUNBOOK_WINDOWS`] holds each example's window as shipped (no variable set: the runbook's
//! own 10 minutes, 30 min / 1 h / 24 h, 5-minute steps) to the runbook lines it follows.

use std::process::Output;
use std::time::{Duration, Instant};

use crate::daemon::{get, warden_within, Daemon};
use crate::harness::{Pki, PostgresServer, RedisServer, RenewableTlsServer};
use crate::imitation;
use crate::metrics_matcher::{self, metric};
use crate::runbooks::{all_rules_ok, eventually, example, runtime, Pager, Paging, Smoke};

const DAY: i64 = 86_400;

/// `warden gate --url` for `window` and `deploy` on the running daemon, within 90 s.
fn gate(d: &Daemon, window: &str, deploy: &str, version: &str) -> Output {
    let config = d.config_path().display().to_string();
    let url = d.url("").trim_end_matches('/').to_string();
    warden_within(
        &[
            "gate",
            "-c",
            &config,
            "--url",
            &url,
            "--window",
            window,
            "--deploy",
            deploy,
            "--version",
            version,
        ],
        Duration::from_secs(90),
    )
    .expect("warden gate ends within 90 s")
}

/// [`gate`] on a thread of its own, for a test that breaks the deploy while it runs.
fn gate_in_background(
    d: &Daemon,
    window: &str,
    deploy: &str,
    version: &str,
) -> std::thread::JoinHandle<Output> {
    let config = d.config_path().display().to_string();
    let url = d.url("").trim_end_matches('/').to_string();
    let (window, deploy, version) = (window.to_string(), deploy.to_string(), version.to_string());
    std::thread::spawn(move || {
        warden_within(
            &[
                "gate",
                "-c",
                &config,
                "--url",
                &url,
                "--window",
                &window,
                "--deploy",
                &deploy,
                "--version",
                &version,
            ],
            Duration::from_secs(90),
        )
        .expect("warden gate ends within 90 s")
    })
}

/// The run of `deploy` as `GET /api/v1/windows` shows it, once it exists and `f` accepts it.
fn run_where(
    d: &Daemon,
    deploy: &str,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(d, what, || {
        let (code, _, body) = get(&d.url("/api/v1/windows")).ok()?;
        (code == 200).then_some(())?;
        let all: serde_json::Value = serde_json::from_str(&body).ok()?;
        all["windows"]
            .as_array()?
            .iter()
            .find(|r| r["deploy"] == deploy && f(r))
            .cloned()
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The pages the pager got for the alert `window/<window>`: `(action, severity, deploy)`
/// (`trigger`/`firing`, `resolve`/`resolved`).
fn window_pages(paging: &Paging, window: &str) -> Vec<(String, String, String)> {
    let alert = format!("window/{window}");
    match &paging.pager {
        Pager::PagerDuty(r) => r
            .received()
            .iter()
            .map(|r| r.json())
            .filter(|b| b["payload"]["custom_details"]["alert"] == alert.as_str())
            .map(|b| {
                let d = &b["payload"]["custom_details"];
                (
                    b["event_action"].as_str().unwrap_or_default().to_string(),
                    b["payload"]["severity"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    d["labels"]["deploy"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
        Pager::Webhook(r) => r
            .accepted()
            .into_iter()
            .filter(|b| b["alert"] == alert.as_str())
            .map(|b| {
                (
                    b["status"].as_str().unwrap_or_default().to_string(),
                    b["severity"].as_str().unwrap_or_default().to_string(),
                    b["labels"]["deploy"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect(),
    }
}

/// Runs of `hook` so far by outcome (`warden_hook_runs_total`): (outcomes seen, dry runs).
fn hook_runs(d: &Daemon, hook: &str) -> (usize, f64) {
    let (_, text) = d.metrics();
    let samples = metrics_matcher::parse(&text);
    let runs = || metric(&samples, "warden_hook_runs_total").label("hook", hook);
    let dry = runs().label("outcome", "dry_run");
    let dry = if dry.count() == 0 { 0.0 } else { dry.value() };
    (runs().count(), dry)
}

/// The good deploy: the gate exits 0 with every mark passed, and nobody is paged for it.
fn passes(d: &Daemon, paging: &Paging, window: &str, deploy: &str, version: &str) -> String {
    let out = gate(d, window, deploy, version);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\nlog:\n{}", d.log());
    assert!(stdout.contains("every mark passed"), "{stdout}");
    assert!(!stdout.contains(": failed"), "{stdout}");
    let run = run_where(d, deploy, "the passed run", |r| r["state"] == "passed");
    for mark in run["marks"].as_array().expect("marks") {
        assert_eq!(mark["verdict"], "passed", "{run:#}");
    }
    assert!(
        window_pages(paging, window).is_empty(),
        "a pass paged: {:?}",
        window_pages(paging, window)
    );
    stdout
}

/// The bad deploy's gate (`out`) and what it promises: failed (exit 2) for `why` (a piece of
/// its reason), the runbook's `hooks` (name, the command the runbook gives) run once each for
/// the window's alert, as dry runs naming their command, nothing executed, and the pager paged
/// at critical for `deploy`. Returns the run.
fn fails_rolls_back_once_and_pages(
    d: &Daemon,
    paging: &Paging,
    (window, deploy): (&str, &str),
    out: &Output,
    why: &str,
    hooks: &[(&str, &str)],
) -> serde_json::Value {
    let stdout = text(out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\nlog:\n{}", d.log());
    let run = run_where(d, deploy, "the failed run", |r| r["state"] == "failed");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(why),
        "failed for {reason:?}, not {why:?}: {run:#}"
    );
    assert_eq!(run["actions"]["pending"], false, "{run:#}");
    for (hook, command) in hooks {
        assert_eq!(
            run["actions"]["hooks"][hook]["outcome"], "dry_run",
            "{hook} for the window: {run:#}"
        );
        assert!(
            stdout.contains(&format!("hook {hook}: dry_run")),
            "{stdout}"
        );
        let line = format!("HOOK DRY RUN: {hook} for window/{window}");
        let said = eventually(d, &format!("{hook}'s outcome in the chat"), || {
            paging.chat_texts().into_iter().find(|t| t.contains(&line))
        });
        assert!(
            said.contains(command),
            "{hook} does not name {command:?}: {said}"
        );
    }
    let page = eventually(d, &format!("the page window/{window}"), || {
        window_pages(paging, window)
            .into_iter()
            .find(|(action, _, dep)| (action == "trigger" || action == "firing") && dep == deploy)
    });
    assert_eq!(page.1, "critical", "{page:?}");
    let ran = std::fs::read_to_string(paging.tripwire.path().join("ran")).unwrap_or_default();
    assert!(ran.is_empty(), "a dry-run hook executed: {ran}");
    run
}

/// Each of `hooks` ran exactly once in all, as a dry run.
fn ran_once(d: &Daemon, hooks: &[&str]) {
    for hook in hooks {
        assert_eq!(
            hook_runs(d, hook),
            (1, 1.0),
            "{hook} ran other than once, dry"
        );
    }
}

/// Nuvie: "Verify Deployment", the smoke suite, the AI service and Key Metrics at
/// NUVIE_VERIFY_AFTER (here 3 s); the bad deploy answers 3% 5xx, past "Error rate (5xx) > 1%:
/// check logs, consider rollback".
#[test]
fn nuvie_post_deploy_window_passes_a_good_deploy_and_rolls_back_a_bad_one() {
    let rt = runtime();
    let api = imitation::nuvie_api();
    let ai = imitation::nuvie_ai();
    let redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    let db_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let cert = format!("localhost:{}", tls.port());
    let smoke = Smoke::new();
    let (metrics, traffic) = imitation::metrics(&imitation::NUVIE_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let paging = Paging::pagerduty("NUVIE");
    let d = paging.start(
        &example("nuvie"),
        &[
            ("NUVIE_VERIFY_AFTER", "3s"),
            ("NUVIE_METRICS_URL", &metrics_url),
            ("NUVIE_METRICS_INTERVAL", "250ms"),
            ("NUVIE_METRICS_WINDOW", "2s"),
            ("NUVIE_METRICS_FOR", "1s"),
            ("NUVIE_BREAKER_FOR", "1s"),
            ("NUVIE_SMOKE_TEST", smoke.script()),
            ("NUVIE_SMOKE_INTERVAL", "300ms"),
            ("NUVIE_SMOKE_TIMEOUT", "250ms"),
            ("NUVIE_SYSTEM_INTERVAL", "300ms"),
            ("NUVIE_SYSTEM_TIMEOUT", "250ms"),
            ("NUVIE_CPU_WARNING", "1.01"),
            ("NUVIE_CPU_CRITICAL", "1.01"),
            ("NUVIE_MEMORY_WARNING", "1.01"),
            ("NUVIE_MEMORY_CRITICAL", "1.01"),
            ("NUVIE_API_URL", &api.base_url()),
            ("NUVIE_AI_URL", &ai.base_url()),
            ("NUVIE_DATABASE_URL", &db_url),
            ("NUVIE_REDIS_URL", &redis.url()),
            ("NUVIE_API_TLS_ADDRESS", &cert),
            ("NUVIE_AI_TLS_ADDRESS", &cert),
            ("NUVIE_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NUVIE_INTERVAL", "300ms"),
            ("NUVIE_RETRY_INTERVAL", "100ms"),
            ("NUVIE_READY_INTERVAL", "300ms"),
            ("NUVIE_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "nuvie");
    let window = "nuvie-post-deploy";

    let stdout = passes(&d, &paging, window, "v1.4.0", "v1.4.0");
    assert!(stdout.contains("mark 3s: passed"), "{stdout}");
    assert!(stdout.contains("expect error_rate ok 0"), "{stdout}");

    // The bad deploy: 3% of its answers are 5xx from the rollout on.
    let bad = gate_in_background(&d, window, "v1.4.1", "v1.4.1");
    run_where(&d, "v1.4.1", "the bad deploy's run", |r| {
        r["state"] == "running"
    });
    traffic.set_error_share(0.03);
    let out = bad.join().expect("gate thread");
    let run = fails_rolls_back_once_and_pages(
        &d,
        &paging,
        (window, "v1.4.1"),
        &out,
        "mark 3s: expect error_rate",
        &[
            (
                "nuvie-backend-logs",
                "kubectl logs -n nuvie-production -l app=nuvie-backend --since=5m",
            ),
            (
                "nuvie-rollback-backend",
                "kubectl rollout undo deployment/nuvie-backend -n nuvie-production",
            ),
        ],
    );
    let share = run["marks"][0]["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["what"] == "expect error_rate")
        .and_then(|i| i["value"].as_f64())
        .expect("the error rate at the mark");
    assert!((0.02..0.04).contains(&share), "error rate {share}: {run:#}");
    ran_once(&d, &["nuvie-backend-logs", "nuvie-rollback-backend"]);
}

/// Redcube: the 30-minute, 1-hour and 24-hour marks (here 2 s, 3 s, 4 s) against the baseline
/// taken before the deploy; the bad deploy's answers take 3 s, past the 30-minute mark's
/// "P95 latency < 2s".
#[test]
fn redcube_post_deploy_marks_pass_a_good_deploy_and_roll_back_a_slow_one() {
    let rt = runtime();
    let api = imitation::redcube();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute("CREATE DATABASE redcube_users;"));
    rt.block_on(pg.execute(
        "CREATE TABLE reputation_events (id serial PRIMARY KEY,
                                         created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO reputation_events DEFAULT VALUES;",
    ));
    let users_url = format!("postgres://postgres@127.0.0.1:{}/redcube_users", pg.port());
    rt.block_on(crate::runbooks::execute_at(
        &users_url,
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, synced bool NOT NULL);
         CREATE VIEW v_user_sync_missing AS SELECT id, email FROM users WHERE NOT synced;
         INSERT INTO users VALUES (1, 'deploy-test@example.com', true);",
    ));
    let db_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let smoke = Smoke::new();
    let paging = Paging::webhook("REDCUBE");
    let (metrics, traffic) = imitation::metrics(&imitation::REDCUBE_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("redcube"),
        &[
            ("REDCUBE_MARK_30M", "2s"),
            ("REDCUBE_MARK_1H", "3s"),
            ("REDCUBE_MARK_24H", "4s"),
            ("REDCUBE_BASELINE_RANGE", "3s"),
            ("REDCUBE_METRICS_URL", &metrics_url),
            ("REDCUBE_METRICS_INTERVAL", "250ms"),
            ("REDCUBE_METRICS_WINDOW", "2s"),
            ("REDCUBE_DIR", paging.scripts_dir()),
            ("REDCUBE_SMOKE_TEST", smoke.script()),
            ("REDCUBE_SMOKE_INTERVAL", "300ms"),
            ("REDCUBE_SMOKE_TIMEOUT", "250ms"),
            ("REDCUBE_SYSTEM_INTERVAL", "300ms"),
            ("REDCUBE_SYSTEM_TIMEOUT", "250ms"),
            ("REDCUBE_CPU_WARNING", "1.01"),
            ("REDCUBE_MEMORY_WARNING", "1.01"),
            ("REDCUBE_API_URL", &api.base_url()),
            ("REDCUBE_DATABASE_URL", &db_url),
            ("REDCUBE_USERS_DATABASE_URL", &users_url),
            ("REDCUBE_INTERVAL", "300ms"),
            ("REDCUBE_RETRY_INTERVAL", "100ms"),
            ("REDCUBE_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "redcube");
    // The baseline's range (3 s) of healthy traffic before the first deploy.
    std::thread::sleep(Duration::from_secs(3));
    let window = "redcube-post-deploy";

    let stdout = passes(&d, &paging, window, "rc-41", "2025.11.27");
    for at in ["2s", "3s", "4s"] {
        assert!(stdout.contains(&format!("mark {at}: passed")), "{stdout}");
    }
    let run = run_where(&d, "rc-41", "the good run", |r| r["state"] == "passed");
    let p95 = run["baseline"]["p95"].as_f64().expect("a p95 baseline");
    // 20 ms answers: the p95 is interpolated in the 10..25 ms bucket.
    assert!((0.01..=0.025).contains(&p95), "baseline p95 {p95}: {run:#}");
    assert_eq!(run["baseline"]["error_rate"], 0.0, "{run:#}");
    let last = &run["marks"][2]["items"];
    let vs = last
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["what"] == "expect p95")
        .expect("the 24-hour mark's p95");
    assert!(
        vs["bound"]
            .as_str()
            .unwrap_or_default()
            .starts_with("<= 1.2 * baseline.p95 ("),
        "{vs:#}"
    );

    // The bad deploy: every answer takes 3 s from the restart of the service on.
    let bad = gate_in_background(&d, window, "rc-42", "2025.11.28");
    run_where(&d, "rc-42", "the bad deploy's run", |r| {
        r["state"] == "running"
    });
    traffic.set_latency("http_request_duration_seconds", 3.0);
    let out = bad.join().expect("gate thread");
    let run = fails_rolls_back_once_and_pages(
        &d,
        &paging,
        (window, "rc-42"),
        &out,
        "mark 2s: expect p95",
        &[
            (
                "redcube-content-logs",
                "docker-compose logs --tail=100 content-service",
            ),
            (
                "redcube-rollback-content-service",
                "/scripts/rollback-deployment.sh content-service",
            ),
        ],
    );
    assert_eq!(
        run["marks"][1]["verdict"],
        serde_json::Value::Null,
        "{run:#}"
    );
    ran_once(
        &d,
        &["redcube-content-logs", "redcube-rollback-content-service"],
    );
    // The rule set's own rollback triggers never fired: the window alone rolled back.
    assert_eq!(hook_runs(&d, "redcube-full-rollback"), (0, 0.0));
}

/// Nova Streaming: the 10 minutes after the switch to green (here 4 s); the bad deploy's
/// health fails ("API down": 3 failed probes in a row), which fails the window at once.
#[test]
fn nova_streaming_post_switch_window_notifies_the_team_or_switches_back_to_blue() {
    let rt = runtime();
    let token = "nova-test-jwt";
    let api = imitation::nova_streaming(token);
    let redis = RedisServer::with().maxmemory(16 * 1024 * 1024).start();
    let pg = rt.block_on(PostgresServer::start_with(20));
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let smoke = Smoke::new();
    let paging = Paging::webhook("NOVA_STREAMING");
    let (metrics, _traffic) = imitation::metrics(&imitation::NOVA_STREAMING_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("nova-streaming"),
        &[
            ("NOVA_STREAMING_WATCH", "4s"),
            ("NOVA_STREAMING_METRICS_URL", &metrics_url),
            ("NOVA_STREAMING_METRICS_INTERVAL", "250ms"),
            ("NOVA_STREAMING_METRICS_WINDOW", "2s"),
            ("NOVA_STREAMING_WS_DROP_WINDOW", "2s"),
            ("NOVA_STREAMING_SMOKE_TEST", smoke.script()),
            ("NOVA_STREAMING_SMOKE_INTERVAL", "300ms"),
            ("NOVA_STREAMING_SMOKE_TIMEOUT", "250ms"),
            ("NOVA_STREAMING_SYSTEM_INTERVAL", "300ms"),
            ("NOVA_STREAMING_SYSTEM_TIMEOUT", "250ms"),
            ("NOVA_STREAMING_CPU_WARNING", "1.01"),
            ("NOVA_STREAMING_MEMORY_WARNING", "1.01"),
            ("NOVA_STREAMING_API_URL", &api.base_url()),
            ("NOVA_STREAMING_JWT_TOKEN", token),
            (
                "NOVA_STREAMING_DATABASE_URL",
                &format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port()),
            ),
            (
                "NOVA_STREAMING_REDIS_URL",
                &format!("redis://127.0.0.1:{}/", redis.port()),
            ),
            (
                "NOVA_STREAMING_TLS_ADDRESS",
                &format!("localhost:{}", tls.port()),
            ),
            ("NOVA_STREAMING_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NOVA_STREAMING_INTERVAL", "300ms"),
            ("NOVA_STREAMING_RETRY_INTERVAL", "100ms"),
            ("NOVA_STREAMING_TIMEOUT", "250ms"),
            // The API-down rule's own switch back to blue comes 30 s after its page as
            // shipped; here later than the test, so the window's failure is what runs it
            // (its 2-hour cooldown would turn the rule's away in any case).
            ("NOVA_STREAMING_ROLLBACK_AFTER", "1h"),
        ],
    );
    all_rules_ok(&d, "nova-streaming");
    let window = "nova-streaming-post-switch";

    let stdout = passes(&d, &paging, window, "v1.2.4-1", "v1.2.4");
    assert!(stdout.contains("mark 4s: passed"), "{stdout}");
    // Post-Deployment Tasks, "Notify team": green successful, traffic switched, all
    // systems operational.
    eventually(&d, "the team's notice in Slack", || {
        paging.chat_texts().into_iter().find(|t| {
            t.contains(
                "Nova Streaming v1.2.4: green deployment successful, traffic switched, all \
                 systems operational (deploy v1.2.4-1)",
            )
        })
    });

    // The bad deploy: green's /health stops saying healthy right after the switch.
    let bad = gate_in_background(&d, window, "v1.2.5-1", "v1.2.5");
    run_where(&d, "v1.2.5-1", "the bad deploy's run", |r| {
        r["state"] == "running"
    });
    let broke = Instant::now();
    api.set("/health", 503, r#"{"status": "unhealthy"}"#);
    let out = bad.join().expect("gate thread");
    let run = fails_rolls_back_once_and_pages(
        &d,
        &paging,
        (window, "v1.2.5-1"),
        &out,
        "rule nova-streaming-api-down went critical",
        &[
            (
                "nova-streaming-green-logs",
                "kubectl logs deployment/user-service-green -n production-green",
            ),
            (
                "nova-streaming-switch-to-blue",
                r#"kubectl patch ingress api-ingress -n production --type json -p '[{"op": "replace", "path": "/spec/rules/0/http/paths/0/backend/service/name", "value": "user-service-blue"}]'"#,
            ),
            (
                "nova-streaming-scale-up-blue",
                "kubectl scale deployment user-service-blue -n production --replicas=3",
            ),
        ],
    );
    // At once, not at the 10-minute mark.
    assert_eq!(
        run["marks"][0]["verdict"],
        serde_json::Value::Null,
        "{run:#}"
    );
    assert!(
        broke.elapsed() < Duration::from_secs(4),
        "{:?}",
        broke.elapsed()
    );
    ran_once(
        &d,
        &[
            "nova-streaming-switch-to-blue",
            "nova-streaming-scale-up-blue",
        ],
    );
    api.restore();
}

/// ai-saas: the canary ladder 5% -> 25% -> 50% -> 100%, each step held 2 s here (5 min as
/// shipped), judged on the canary's own series (`version="canary"`); the bad canary starts
/// answering 10% 5xx at 25%.
#[test]
fn ai_saas_canary_ladder_reaches_100_or_stops_at_25_and_rolls_back() {
    let rt = runtime();
    let api = imitation::ai_saas();
    let redis = RedisServer::with().maxmemory(16 * 1024 * 1024).start();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute("CREATE DATABASE ai_saas_prod;"));
    let db_url = format!("postgres://postgres@127.0.0.1:{}/ai_saas_prod", pg.port());
    let smoke = Smoke::new();
    let paging = Paging::webhook("AI_SAAS");
    let (metrics, traffic) = imitation::versioned_metrics(
        &imitation::AI_SAAS_METRICS,
        "version",
        &["stable", "canary"],
    );
    let canary = &traffic[1];
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("ai-saas"),
        &[
            ("AI_SAAS_CANARY_HOLD", "2s"),
            ("AI_SAAS_METRICS_URL", &metrics_url),
            ("AI_SAAS_METRICS_INTERVAL", "250ms"),
            ("AI_SAAS_METRICS_WINDOW", "2s"),
            ("AI_SAAS_DB_TREND_WINDOW", "3s"),
            ("AI_SAAS_DB_TREND_FOR", "3s"),
            ("AI_SAAS_SMOKE_TEST", smoke.script()),
            ("AI_SAAS_SMOKE_INTERVAL", "300ms"),
            ("AI_SAAS_SMOKE_TIMEOUT", "250ms"),
            ("AI_SAAS_SYSTEM_INTERVAL", "300ms"),
            ("AI_SAAS_SYSTEM_TIMEOUT", "250ms"),
            ("AI_SAAS_MEMORY_WARNING", "1.01"),
            ("AI_SAAS_API_URL", &api.base_url()),
            ("AI_SAAS_DATABASE_URL", &db_url),
            (
                "AI_SAAS_REDIS_URL",
                &format!("redis://127.0.0.1:{}/", redis.port()),
            ),
            ("AI_SAAS_INTERVAL", "300ms"),
            ("AI_SAAS_RETRY_INTERVAL", "100ms"),
            ("AI_SAAS_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "ai-saas");
    let window = "ai-saas-canary";
    let weight_hook = "ai-saas-set-canary-weight";

    let stdout = passes(&d, &paging, window, "v1.0.1", "1.0.1");
    for (step, weight) in [(1, 5), (2, 25), (3, 50), (4, 100)] {
        assert!(
            stdout.contains(&format!("step {step}: weight {weight}")),
            "{stdout}"
        );
    }
    // The runbook's VirtualService patch set each weight (a dry run as shipped).
    assert_eq!(hook_runs(&d, weight_hook), (1, 4.0));

    // The bad canary: once the 25% step has started, 10% of its answers are 5xx.
    let bad = gate_in_background(&d, window, "v1.0.2", "1.0.2");
    run_where(&d, "v1.0.2", "the 25% step", |r| {
        r["steps_started"].as_u64() >= Some(2)
    });
    canary.set_error_share(0.1);
    let out = bad.join().expect("gate thread");
    let stdout = text(&out);
    let run = fails_rolls_back_once_and_pages(
        &d,
        &paging,
        (window, "v1.0.2"),
        &out,
        "expect canary_error_rate",
        &[
            (
                "ai-saas-gateway-logs",
                "kubectl logs -n ai-saas deployment/api-gateway --since=10m",
            ),
            (
                "ai-saas-rollback-gateway",
                "kubectl rollout undo deployment/api-gateway -n ai-saas",
            ),
        ],
    );
    assert_eq!(run["marks"][0]["verdict"], "passed", "{run:#}");
    assert_eq!(run["marks"][1]["verdict"], "failed", "{run:#}");
    assert_eq!(run["marks"][1]["weight"], 25, "{run:#}");
    assert_eq!(run["steps_started"], 2, "{run:#}");
    assert!(
        !stdout.contains("weight 50"),
        "the ladder went on: {stdout}"
    );
    // 5 and 25 for this deploy: 50 and 100 were never set.
    assert_eq!(hook_runs(&d, weight_hook), (1, 6.0));
    ran_once(&d, &["ai-saas-gateway-logs", "ai-saas-rollback-gateway"]);
}

/// NovaCron: the traffic shift to green 5% -> 25% -> 100% (held 2 s each here), green's own
/// traffic against the p95 baseline of the blue traffic before it; a pass posts Step 7's
/// Slack line, the bad green answers three times slower than the baseline ("Response time >
/// 2x baseline").
#[test]
fn novacron_traffic_shift_posts_to_slack_or_switches_back_to_blue() {
    let rt = runtime();
    let api = imitation::novacron();
    let redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute("CREATE DATABASE novacron;"));
    let db_url = format!("postgres://postgres@127.0.0.1:{}/novacron", pg.port());
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let smoke = Smoke::new();
    let paging = Paging::pagerduty("NOVACRON");
    let (metrics, traffic) =
        imitation::versioned_metrics(&imitation::NOVACRON_METRICS, "version", &["blue", "green"]);
    let green = &traffic[1];
    // Before the shift green serves nothing.
    green.set_rate(0.0);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("novacron"),
        &[
            ("NOVACRON_CANARY_HOLD", "2s"),
            ("NOVACRON_METRICS_URL", &metrics_url),
            ("NOVACRON_METRICS_INTERVAL", "250ms"),
            ("NOVACRON_METRICS_WINDOW", "2s"),
            ("NOVACRON_5XX_WINDOW", "2s"),
            ("NOVACRON_BASELINE_WINDOW", "4s"),
            ("NOVACRON_SMOKE_TEST", smoke.script()),
            ("NOVACRON_SMOKE_INTERVAL", "300ms"),
            ("NOVACRON_SMOKE_TIMEOUT", "250ms"),
            ("NOVACRON_SYSTEM_INTERVAL", "300ms"),
            ("NOVACRON_SYSTEM_TIMEOUT", "250ms"),
            ("NOVACRON_MEMORY_WARNING", "1.01"),
            ("NOVACRON_URL", &api.base_url()),
            ("NOVACRON_DATABASE_URL", &db_url),
            ("NOVACRON_REDIS_URL", &redis.url()),
            ("NOVACRON_TLS_ADDRESS", &format!("localhost:{}", tls.port())),
            ("NOVACRON_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NOVACRON_INTERVAL", "300ms"),
            ("NOVACRON_RETRY_INTERVAL", "100ms"),
            ("NOVACRON_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "novacron");
    let window = "novacron-traffic-shift";
    let weight_hook = "novacron-shift-to-green";

    // The good deploy: green takes its share (5 requests/s beside blue's 100) as the shift
    // starts, at blue's 20 ms.
    let good = gate_in_background(&d, window, "v1.6.0-1", "v1.6.0");
    run_where(&d, "v1.6.0-1", "the shift's run", |r| {
        r["state"] == "running"
    });
    green.set_rate(5.0);
    let out = good.join().expect("gate thread");
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\nlog:\n{}", d.log());
    for (step, weight) in [(1, 5), (2, 25), (3, 100)] {
        assert!(
            stdout.contains(&format!("step {step}: weight {weight}")),
            "{stdout}"
        );
    }
    assert!(window_pages(&paging, window).is_empty());
    // Step 7, "Notify stakeholders", on $SLACK_WEBHOOK_URL.
    eventually(&d, "the success line in Slack", || {
        paging
            .chat_texts()
            .into_iter()
            .find(|t| t.contains("✅ NovaCron v1.6.0 deployed to production successfully!"))
    });
    assert_eq!(hook_runs(&d, weight_hook), (1, 3.0));

    // The bad deploy: green answers in 60 ms, three times blue's baseline.
    green.set_rate(0.0);
    let bad = gate_in_background(&d, window, "v1.6.1-1", "v1.6.1");
    let started = run_where(&d, "v1.6.1-1", "the shift's run", |r| {
        r["state"] == "running"
    });
    let baseline = started["baseline"]["p95"].as_f64().expect("a p95 baseline");
    assert!(
        (0.01..=0.025).contains(&baseline),
        "baseline p95 {baseline}"
    );
    green.set_latency("http_request_duration_seconds", 0.06);
    green.set_rate(5.0);
    let out = bad.join().expect("gate thread");
    let run = fails_rolls_back_once_and_pages(
        &d,
        &paging,
        (window, "v1.6.1-1"),
        &out,
        "expect green_p95",
        &[
            (
                "novacron-green-logs",
                "kubectl logs deployment/novacron-api-green -n novacron --tail=1000",
            ),
            (
                "novacron-switch-to-blue",
                r#"kubectl patch service novacron-api -n novacron -p '{"spec": {"selector": {"app": "novacron", "version": "blue"}}}'"#,
            ),
            (
                "novacron-scale-down-green",
                "kubectl scale deployment novacron-api-green -n novacron --replicas=0",
            ),
        ],
    );
    // At 5%, before any more traffic moved: green's p95 past twice the baseline, while the
    // totals (95% blue) stayed within the rule set's own 2x.
    assert_eq!(run["marks"][0]["verdict"], "failed", "{run:#}");
    assert_eq!(run["steps_started"], 1, "{run:#}");
    assert_eq!(hook_runs(&d, weight_hook), (1, 4.0));
    ran_once(
        &d,
        &[
            "novacron-green-logs",
            "novacron-switch-to-blue",
            "novacron-scale-down-green",
        ],
    );
    let texts = paging.chat_texts();
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("deployed to production successfully"))
            .count(),
        1,
        "a failed shift posted success: {texts:#?}"
    );
}

/// A window as its runbook reads: each mark (or step: weight and hold) with the rules it
/// requires and the bounds it expects, the rules that fail it at once, the baseline, the
/// failure's severity, on-call policy (or route) and hooks, and who hears a pass.
fn describe(config: &warden::config::Config, w: &warden::config::window::WindowConfig) -> String {
    use warden::config::format_duration as d;
    let mut out = Vec::new();
    for m in &w.marks {
        let when = match m.step {
            Some(s) => format!("step {}% held {}", s.weight, d(m.at - s.from)),
            None => format!("mark {}", d(m.at)),
        };
        let expects: Vec<String> = m
            .expect
            .iter()
            .map(|e| format!("{} {}", e.name, e.when))
            .collect();
        out.push(format!(
            "{when}: require [{}] expect [{}]",
            m.require.join(", "),
            expects.join(", ")
        ));
    }
    let rule = w.alert_rule();
    let hooks: Vec<&str> = config
        .alerting
        .hooks_of(&rule)
        .iter()
        .map(|h| h.hook.as_str())
        .collect();
    let baseline: Vec<&str> = w.baseline.iter().map(|(n, _)| n.as_str()).collect();
    out.push(format!("never_critical [{}]", w.never_critical.join(", ")));
    out.push(format!("baseline [{}]", baseline.join(", ")));
    // Who a failure pages: the on-call policy its alert's labels pick (as a failed run's alert
    // carries them: the window's facts, its severity, alertname and rule), else the route.
    let labels: warden::labels::Labels = [
        ("alertname", rule.as_str()),
        ("rule", rule.as_str()),
        ("window", w.name.as_str()),
        ("service", w.service.as_str()),
        ("severity", w.severity.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let to = match config.alerting.policy_of(&rule, w.severity, &labels) {
        Some(p) => format!(
            "policy {} ({})",
            p.name,
            crate::runbook_policies::steps_of(p)
        ),
        None => format!(
            "[{}]",
            config.alerting.route_of(&rule, w.severity).join(", ")
        ),
    };
    out.push(format!(
        "fails: {} to {to}, hooks [{}]",
        w.severity.as_str(),
        hooks.join(", ")
    ));
    if let Some(hook) = &w.step_hook {
        out.push(format!("step_hook {hook}"));
    }
    if let Some(s) = &w.on_success {
        out.push(format!("passes: [{}] {:?}", s.notify.join(", "), s.message));
    }
    out.join("\n")
}

/// Every example's windows as shipped (no variable set: the runbook's own times), each with
/// the runbook lines it follows. A window added, dropped or changed fails this until the
/// ledger names the line it follows.
const RUNBOOK_WINDOWS: [(&str, &str, &str); 5] = [
    (
        "nuvie",
        // Backend Step 3 "Verify Deployment", Step 4 smoke tests, AI Step 3 model health; Key
        // Metrics: error rate > 1% "consider rollback", p95 > 500 ms; P1 pages; `for: 5m`.
        "nuvie-post-deploy",
        "mark 5m: require [nuvie-api-down, nuvie-api-not-ready, nuvie-ai-down, nuvie-smoke, \
         nuvie-circuit-breaker] expect [error_rate <= 0.01, p95 <= 0.5]\n\
         never_critical [nuvie-api-down, nuvie-error-rate, nuvie-p95]\n\
         baseline []\n\
         fails: critical to policy nuvie-p1 (pagerduty, slack at once; eng-manager after 15m), \
         hooks [nuvie-backend-logs, nuvie-rollback-backend]",
    ),
    (
        "redcube",
        // Post-Deployment Validation: 30-Minute, 1-Hour and 24-Hour Marks; When to Rollback;
        // P0 "Rollback immediately" (the run rolled back); Option 2 "Deployment Rollback".
        "redcube-post-deploy",
        "mark 30m: require [redcube-user-sync] expect [error_rate < 0.01, p95 < 2]\n\
         mark 1h: require [redcube-content-down, redcube-smoke, redcube-user-sync, \
         redcube-users-db-down, redcube-reputation-inactive] expect []\n\
         mark 1d: require [redcube-content-down, redcube-smoke, redcube-user-sync, \
         redcube-reputation-inactive] expect [p95 <= 1.2 * baseline.p95, error_rate < 0.01]\n\
         never_critical [redcube-content-down, redcube-error-rate, redcube-p95, redcube-user-sync]\n\
         baseline [error_rate, p95]\n\
         fails: critical to policy redcube-p0 (oncall, slack at once), hooks \
         [redcube-content-logs, redcube-rollback-content-service]",
    ),
    (
        "nova-streaming",
        // Step 3.4 "Monitor for Issues (10 minutes)"; Real-Time Monitoring Dashboard; the
        // escalation's CRITICAL and HIGH; Immediate Rollback Option 1; "Notify team".
        "nova-streaming-post-switch",
        "mark 10m: require [nova-streaming-api-down, nova-streaming-p95, \
         nova-streaming-websocket-drop, nova-streaming-db-query-p95] expect [error_rate < 0.001]\n\
         never_critical [nova-streaming-api-down, nova-streaming-error-rate, \
         nova-streaming-websocket-drop]\n\
         baseline []\n\
         fails: critical to policy nova-streaming-critical (oncall, slack at once; infra-lead \
         after 5m), hooks [nova-streaming-green-logs, nova-streaming-switch-to-blue, \
         nova-streaming-scale-up-blue]\n\
         passes: [slack] \"Nova Streaming $version: green deployment successful, traffic \
         switched, all systems operational (deploy $deploy)\"",
    ),
    (
        "ai-saas",
        // Canary Deployment Strategy: 5%, 25%, 50%, 100%, `sleep 300` each, the
        // VirtualService patch; Post-Deployment Verification Step 4 on the canary's traffic;
        // Automatic Rollback (health checks); Manual Rollback.
        "ai-saas-canary",
        "step 5% held 5m: require [ai-saas-api-down] expect [canary_error_rate < 0.01, \
         canary_p95 < 0.5, canary_p99 < 1]\n\
         step 25% held 5m: require [ai-saas-api-down] expect [canary_error_rate < 0.01, \
         canary_p95 < 0.5, canary_p99 < 1]\n\
         step 50% held 5m: require [ai-saas-api-down] expect [canary_error_rate < 0.01, \
         canary_p95 < 0.5, canary_p99 < 1]\n\
         step 100% held 5m: require [ai-saas-api-down] expect [canary_error_rate < 0.01, \
         canary_p95 < 0.5, canary_p99 < 1]\n\
         never_critical [ai-saas-api-down]\n\
         baseline []\n\
         fails: critical to policy ai-saas-rollback (oncall, slack at once), hooks \
         [ai-saas-gateway-logs, ai-saas-rollback-gateway]\n\
         step_hook ai-saas-set-canary-weight",
    ),
    (
        "novacron",
        // Step 4 Traffic Switch: 5%, 25%, 100%, "Monitor metrics for 5 minutes"; When to
        // Rollback (error rate > 1%, response time > 2x baseline, health, DWCP); Quick
        // Rollback; Step 7 "Notify stakeholders".
        "novacron-traffic-shift",
        "step 5% held 5m: require [novacron-health-failing, novacron-components-unhealthy, \
         novacron-dwcp-failing] expect [green_error_rate <= 0.01, green_p95 <= 2 * baseline.p95]\n\
         step 25% held 5m: require [novacron-health-failing, novacron-components-unhealthy, \
         novacron-dwcp-failing] expect [green_error_rate <= 0.01, green_p95 <= 2 * baseline.p95]\n\
         step 100% held 5m: require [novacron-health-failing, novacron-components-unhealthy, \
         novacron-dwcp-failing] expect [green_error_rate <= 0.01, green_p95 <= 2 * baseline.p95]\n\
         never_critical [novacron-health-failing, novacron-components-unhealthy, \
         novacron-dwcp-failing, novacron-db-down, novacron-error-rate, novacron-5xx-per-minute, \
         novacron-latency-vs-baseline]\n\
         baseline [p95]\n\
         fails: critical to policy novacron-p0 (pagerduty, slack at once), hooks \
         [novacron-green-logs, novacron-switch-to-blue, novacron-scale-down-green]\n\
         step_hook novacron-shift-to-green\n\
         passes: [slack] \"✅ NovaCron $version deployed to production successfully!\"",
    ),
];

#[test]
fn every_runbook_window_keeps_its_runbook_times_as_shipped() {
    for (system, window, want) in RUNBOOK_WINDOWS {
        let config = warden::config::load_with_env(&example(system), &|_| None)
            .unwrap_or_else(|e| panic!("{system}: {e}"));
        let names: Vec<&str> = config.windows.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, [window], "{system}'s windows");
        let got = describe(&config, &config.windows[0]);
        assert_eq!(got, want, "{system}: {window} as shipped");
    }
}
