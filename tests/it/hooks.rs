//! Hooks as real processes: the timeout kills the whole process group, cooldown, once per
//! incident, never two at once, dry-run, no systemd variables leak in, output is bounded, and
//! a kill -9 of warden mid-hook leaves the run `interrupted`, never re-run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use warden::alert::{Event, EventKind, Severity};
use warden::clock::Clock;
use warden::config::hook::{HookCommand, HookConfig};
use warden::outbox::{Fired, HookGuard};
use warden::state::{HookRunState, SkipReason, Store};
use warden::telemetry::Metrics;

use crate::harness::process::{signal, wait_bounded};
use crate::harness::receiver::rerun_self;

fn trigger(incident: u32) -> Event {
    Event {
        value_name: None,
        kind: EventKind::Firing,
        alert: "api-down".into(),
        series: Default::default(),
        check: "api".into(),
        severity: Severity::Critical,
        value: Some(0.0),
        threshold: Some(1.0),
        condition: Some("< 1".into()),
        description: None,
        labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
        since: "2026-01-01T00:00:00.000Z".into(),
        at: "2026-01-01T00:00:00.000Z".into(),
        deploy: Some("v42".into()),
        dedup_key: format!("warden/api-down/{incident}"),
        hook: None,
        ack_url: None,
        group: None,
    }
}

fn shell(name: &str, line: &str) -> HookConfig {
    let mut h = HookConfig::new(name, HookCommand::Shell(line.into()));
    h.timeout = Duration::from_secs(20);
    h.cooldown = Duration::ZERO;
    h
}

fn guard(db: &Path) -> (HookGuard, Store, Metrics) {
    let clock = Clock::system();
    let (store, _) = Store::open(db, clock.now()).expect("open the state store");
    let metrics = Metrics::new();
    (
        HookGuard::new(store.clone(), clock, &metrics),
        store,
        metrics,
    )
}

fn ran(fired: Fired) -> warden::hook::HookRun {
    match fired {
        Fired::Ran { run, .. } => run,
        Fired::Skipped(reason) => panic!("skipped: {reason:?}"),
    }
}

/// Lines in a file the hooks append to (one per run).
fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// True once `pid` is gone or a zombie (dead, waiting for whoever inherited it to reap it).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(s) = std::fs::read_to_string(path) {
            if s.ends_with('\n') {
                return s;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{} did not appear within {limit:?}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let (guard, store, metrics) = guard(&dir.path().join("w.db"));
    // A grandchild in the background, and the hook itself waiting on it.
    let mut hook = shell(
        "rollback",
        &format!(
            "sleep 300 & echo $! > {p}.tmp; echo $$ >> {p}.tmp; mv {p}.tmp {p}; wait",
            p = pids.display()
        ),
    );
    hook.timeout = Duration::from_millis(500);
    let run = ran(guard.fire(&hook, &trigger(1), false).await.unwrap());
    assert!(run.outcome.timed_out, "{run:?}");
    assert_eq!(run.result(), "timeout");
    let text = std::fs::read_to_string(&pids).expect("the hook wrote its pids");
    let pids: Vec<u32> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2);
    for _ in 0..250 {
        if pids.iter().all(|p| dead(*p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in &pids {
        assert!(
            dead(*pid),
            "process {pid} of the hook's group survived the timeout"
        );
    }
    let record = &store.hook_runs("rollback").await.unwrap()[0];
    assert_eq!(
        (record.state, record.timed_out, record.exit_code),
        (HookRunState::Finished, true, None)
    );
    assert_eq!(
        metrics
            .hook_runs
            .with_label_values(&["rollback", "timeout"])
            .get(),
        1
    );
    assert_eq!(
        metrics
            .hook_duration
            .with_label_values(&["rollback"])
            .get_sample_count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_per_incident_and_cooldown_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let (guard, store, _) = guard(&dir.path().join("w.db"));
    let mut hook = shell(
        "rollback",
        &format!("echo \"$WARDEN_DEDUP_KEY\" >> {}", runs.display()),
    );
    hook.cooldown = Duration::from_millis(700);
    ran(guard.fire(&hook, &trigger(1), false).await.unwrap());
    assert_eq!(
        guard.fire(&hook, &trigger(1), false).await.unwrap(),
        Fired::Skipped(SkipReason::AlreadyRanForIncident {
            run: store.hook_runs("rollback").await.unwrap()[0].id
        })
    );
    let cooling = guard.fire(&hook, &trigger(2), false).await.unwrap();
    assert!(
        matches!(cooling, Fired::Skipped(SkipReason::CoolingDown { .. })),
        "{cooling:?}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    ran(guard.fire(&hook, &trigger(2), false).await.unwrap());
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "warden/api-down/1\nwarden/api-down/2\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_two_runs_of_one_hook_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let started = dir.path().join("started");
    let (guard, _store, _) = guard(&dir.path().join("w.db"));
    let hook = shell(
        "rollback",
        &format!(
            "echo x >> {}; echo up > {}; sleep 1",
            runs.display(),
            started.display()
        ),
    );
    let first = {
        let (guard, hook) = (guard.clone(), hook.clone());
        tokio::spawn(async move { guard.fire(&hook, &trigger(1), false).await })
    };
    let started_at = Instant::now();
    while !started.exists() && started_at.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = guard.fire(&hook, &trigger(2), false).await.unwrap();
    assert!(
        matches!(second, Fired::Skipped(SkipReason::AlreadyRunning { .. })),
        "{second:?}"
    );
    ran(first.await.unwrap().unwrap());
    assert_eq!(lines(&runs), 1);
    // Once the first is over, the other incident may run.
    ran(guard.fire(&hook, &trigger(2), false).await.unwrap());
    assert_eq!(lines(&runs), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_records_what_would_run_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("rolled-back");
    let (guard, store, metrics) = guard(&dir.path().join("w.db"));
    let mut hook = HookConfig::new(
        "rollback",
        HookCommand::Argv(vec!["touch".into(), marker.to_str().unwrap().to_string()]),
    );
    hook.env.insert(
        "KUBECONFIG".into(),
        warden::secret::Secret::new("/etc/secret-kubeconfig"),
    );
    hook.cooldown = Duration::ZERO;
    let fired = guard.fire(&hook, &trigger(1), true).await.unwrap();
    let Fired::Ran { run, event, .. } = fired else {
        panic!("dry run skipped")
    };
    assert!(run.outcome.dry_run);
    assert!(!marker.exists(), "a dry run ran the command");
    assert!(run.env_names.contains(&"KUBECONFIG".to_string()));
    assert_eq!(event.kind, EventKind::Hook);
    assert_eq!(event.hook.as_ref().map(|h| h.dry_run), Some(true));
    let record = &store.hook_runs("rollback").await.unwrap()[0];
    assert!(record.dry_run);
    assert_eq!(record.argv, ["touch", marker.to_str().unwrap()]);
    assert_eq!(
        metrics
            .hook_runs
            .with_label_values(&["rollback", "dry_run"])
            .get(),
        1
    );
    // The per-hook flag does the same without the global one.
    hook.dry_run = true;
    let fired = guard.fire(&hook, &trigger(2), false).await.unwrap();
    assert!(
        matches!(fired, Fired::Ran { ref run, .. } if run.outcome.dry_run),
        "{fired:?}"
    );
    assert!(!marker.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_bounded_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (guard, store, _) = guard(&dir.path().join("w.db"));
    let mut hook = shell(
        "collect-logs",
        "head -c 5000000 /dev/zero | tr '\\0' o; echo oops >&2; exit 1",
    );
    hook.max_output_bytes = 1000;
    let run = ran(guard.fire(&hook, &trigger(1), false).await.unwrap());
    assert_eq!(run.outcome.exit_code, Some(1));
    assert_eq!(run.result(), "failure");
    assert!(run.truncated);
    let record = &store.hook_runs("collect-logs").await.unwrap()[0];
    assert_eq!(record.stdout, "o".repeat(1000));
    assert_eq!(record.stderr, "oops\n");
}

const CHILD: &str = "WARDEN_IT_HOOK_CHILD";

/// When this process is a re-executed child (`WARDEN_IT_HOOK_CHILD` set), plays it (a
/// stand-in for warden running a hook) and returns true; the calling test then returns.
/// Each test that spawns a child re-runs itself, so no test passes by doing nothing.
fn hook_child() -> bool {
    let Ok(mode) = std::env::var(CHILD) else {
        return false;
    };
    let db = PathBuf::from(std::env::var("WARDEN_IT_DB").expect("WARDEN_IT_DB"));
    let line = std::env::var("WARDEN_IT_HOOK").expect("WARDEN_IT_HOOK");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let clock = Clock::system();
        let (store, recovery) = Store::open(&db, clock.now()).expect("open the state store");
        let metrics = Metrics::new();
        let guard = HookGuard::new(store, clock, &metrics);
        let events = guard.report_interrupted(&recovery);
        for e in &events {
            println!(
                "interrupted {} {}",
                e.dedup_key,
                e.description.as_deref().unwrap_or("")
            );
        }
        let hook = shell("rollback", &line);
        match guard.fire(&hook, &trigger(1), false).await.expect("fire") {
            Fired::Ran { run, .. } => {
                println!("ran {}", run.result());
                print!("{}", run.stdout);
            }
            Fired::Skipped(reason) => println!("skipped {}", reason.as_str()),
        }
        let _ = mode;
    });
    true
}

fn child_output(test: &str, db: &Path, hook: &str, env: &[(&str, &str)]) -> String {
    let mut all = vec![
        (CHILD, "run"),
        ("WARDEN_IT_DB", db.to_str().unwrap()),
        ("WARDEN_IT_HOOK", hook),
    ];
    all.extend_from_slice(env);
    let out =
        crate::harness::process::run_bounded(&mut rerun_self(test, &all), Duration::from_secs(60));
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn warden_systemd_variables_are_not_inherited() {
    if hook_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = child_output(
        "hooks::warden_systemd_variables_are_not_inherited",
        &dir.path().join("w.db"),
        "env | sort",
        &[
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("WATCHDOG_USEC", "30000000"),
            ("WATCHDOG_PID", "1"),
            ("KEEP_ME", "yes"),
        ],
    );
    assert!(out.contains("ran success"), "{out}");
    assert!(out.contains("WARDEN_ALERT=api-down\n"), "{out}");
    assert!(out.contains("WARDEN_LABEL_TEAM=web\n"), "{out}");
    assert!(out.contains("KEEP_ME=yes\n"), "{out}");
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        assert!(!out.contains(&format!("{name}=")), "{name} leaked: {out}");
    }
}

#[test]
fn kill_9_mid_hook_leaves_it_interrupted_and_never_reruns_it() {
    if hook_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let runs = dir.path().join("runs");
    let pid_file = dir.path().join("hook.pid");
    let line = format!(
        "echo started >> {runs}; echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; sleep 300",
        runs = runs.display(),
        pid = pid_file.display()
    );
    let mut child = rerun_self(
        "hooks::kill_9_mid_hook_leaves_it_interrupted_and_never_reruns_it",
        &[
            (CHILD, "run"),
            ("WARDEN_IT_DB", db.to_str().unwrap()),
            ("WARDEN_IT_HOOK", &line),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn the child");
    let hook_pid: u32 = wait_for_file(&pid_file, Duration::from_secs(30))
        .trim()
        .parse()
        .unwrap();
    assert!(signal(child.id(), "KILL"));
    wait_bounded(&mut child, Duration::from_secs(10)).expect("the child died");
    // The orphaned hook (its own process group) would run on; a test leaves nothing behind.
    assert!(signal(hook_pid, "KILL"));

    let out = child_output(
        "hooks::kill_9_mid_hook_leaves_it_interrupted_and_never_reruns_it",
        &db,
        &line,
        &[],
    );
    assert!(
        out.contains(
            "interrupted warden/api-down/1/hook/rollback rollback could not run: interrupted"
        ),
        "{out}"
    );
    assert!(out.contains("skipped already_ran_for_incident"), "{out}");
    assert_eq!(lines(&runs), 1, "the hook ran again");
    // A third start finds nothing more to report and still does not re-run it.
    let out = child_output(
        "hooks::kill_9_mid_hook_leaves_it_interrupted_and_never_reruns_it",
        &db,
        &line,
        &[],
    );
    assert!(!out.contains("interrupted warden/"), "{out}");
    assert!(out.contains("skipped already_ran_for_incident"), "{out}");
    assert_eq!(lines(&runs), 1);
}

/// Issue 12: a hook that printed a secret of its own env had it verbatim in `hook_runs`
/// (an exec check's output is redacted). Read from the state file itself: the secret is
/// redacted from both streams, and so is the beginning of one that the output bound cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_output_is_stored_with_its_env_secrets_redacted() {
    let secret = "DEPLOY-T0KEN-0123456789abc";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let (guard, _store, _) = guard(&db);
    let mut hook = shell(
        "rollback",
        r#"echo "token=$DEPLOY_TOKEN"; printf 'err: %s%s' "$DEPLOY_TOKEN" "$DEPLOY_TOKEN" >&2"#,
    );
    hook.env
        .insert("DEPLOY_TOKEN".into(), warden::secret::Secret::new(secret));
    // stdout (33 bytes) fits; stderr (57) is cut 9 bytes into the second secret.
    hook.max_output_bytes = 40;
    let run = ran(guard.fire(&hook, &trigger(1), false).await.unwrap());
    assert_eq!(run.outcome.exit_code, Some(0), "{run:?}");
    let conn = rusqlite::Connection::open(&db).expect("open the state file");
    let (stdout, stderr): (String, String) = conn
        .query_row(
            "SELECT stdout, stderr FROM hook_runs WHERE hook = 'rollback'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the run is recorded");
    assert_eq!(stdout, "token=<secret>\n");
    assert_eq!(stderr, "err: <secret><secret>");
    assert!(!format!("{run:?}").contains("T0KEN"), "{run:?}");
}

/// Review of issue 12.4: a hook inherits warden's environment, where the config's `${...}`
/// secrets come from (a Slack URL, a routing key): one it prints (`env`, `set -x`, `curl -v`)
/// is redacted too, not only its own `env` values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_output_is_redacted_of_every_secret_of_the_config() {
    let routing_key = "PD-R0UT1NG-KEY-abcdef0123";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let (guard, _store, _) = guard(&db);
    let config_file = dir.path().join("w.toml");
    std::fs::write(
        &config_file,
        format!(
            r#"[[check]]
name = "api"
kind = "tcp"
address = "127.0.0.1:1"

[[notifier]]
name = "pager"
kind = "pagerduty"
routing_key = "{routing_key}"
"#
        ),
    )
    .unwrap();
    let config = warden::config::load_with_env(&config_file, &|_| None).unwrap();
    guard.set_secrets(config.secret_values());
    let hook = shell("rollback", &format!("echo \"key={routing_key}\""));
    let run = ran(guard.fire(&hook, &trigger(1), false).await.unwrap());
    assert_eq!(run.outcome.exit_code, Some(0), "{run:?}");
    let conn = rusqlite::Connection::open(&db).expect("open the state file");
    let stdout: String = conn
        .query_row(
            "SELECT stdout FROM hook_runs WHERE hook = 'rollback'",
            [],
            |row| row.get(0),
        )
        .expect("the run is recorded");
    assert_eq!(stdout, "key=<secret>\n");
}
