//! Hooks: run a configured command (a rollback, a log collector) for an alert event.
//!
//! [`run`] executes one hook once: as argv (`/bin/sh -c` only when the hook asks for a
//! shell), in its own process group, with the alert in `WARDEN_*` environment variables and
//! without warden's own systemd variables ([`CHILD_ENV_REMOVE`]), stdout and stderr captured
//! up to a byte bound each (the rest is read and discarded, so a chatty hook never blocks on
//! a full pipe), and a timeout after which the whole process group is SIGKILLed and the child
//! reaped. Its output is redacted of the values of its configured `env` (the rules of
//! `secret::Redactor`, as for an exec check) before anyone stores, logs or sends it. In
//! dry-run it records what it would have run (argv and environment *names*) and
//! runs nothing. [`hook_event`] turns the result into an [`Event`] of kind `Hook`, and
//! [`skipped_event`] says that a hook did not run for an incident, and why.
//!
//! A hook that exits on its own is not followed further: background processes it started keep
//! running (only the timeout kills the group), and their output is no longer read once the hook
//! has been gone for a second.
//!
//! This module decides nothing about *whether* to run: cooldown, once per incident and never
//! two at once are `outbox::HookGuard`'s job, which records every run durably around [`run`].
//! It never reads the config, the store or the network.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::alert::{Event, EventKind, HookOutcome};
use crate::clock::Timestamp;
use crate::secret::Redactor;

// The hook's validated config lives in `config`; re-exported because `outbox`, which runs
// hooks through `HookGuard`, never imports `config`.
pub use crate::config::hook::{HookCommand, HookConfig};

/// Environment variables a hook must not inherit from warden: systemd's notify socket and
/// watchdog, so a hook cannot report readiness or keep-alives on warden's behalf.
pub const CHILD_ENV_REMOVE: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// How long output is still read after the hook's process exited (a background process it
/// left behind may hold the pipes open; warden stops reading rather than hang).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// One execution (or dry run) of a hook.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRun {
    pub outcome: HookOutcome,
    /// What was (or, in dry-run, would have been) executed.
    pub argv: Vec<String>,
    /// The environment variables warden set for it (names only: values may be secrets).
    pub env_names: Vec<String>,
    /// Captured output, lossily decoded, at most `max_output_bytes` each, with the values of
    /// the hook's `env` redacted.
    pub stdout: String,
    pub stderr: String,
    /// True when output beyond the bound was discarded.
    pub truncated: bool,
    /// Why it could not run at all (e.g. the program does not exist).
    pub error: Option<String>,
}

impl HookRun {
    /// A closed label for metrics and logs.
    pub fn result(&self) -> &'static str {
        if self.outcome.dry_run {
            "dry_run"
        } else if self.error.is_some() {
            "error"
        } else if self.outcome.timed_out {
            "timeout"
        } else if self.outcome.exit_code == Some(0) {
            "success"
        } else {
            "failure"
        }
    }
}

fn kind_str(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Firing => "firing",
        EventKind::Resolved => "resolved",
        EventKind::Hook => "hook",
        EventKind::Test => "test",
        EventKind::Notice => "notice",
    }
}

/// `WARDEN_LABEL_<NAME>`: the label name upper-cased, anything but `A-Z0-9_` made `_`.
pub fn label_var(name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("WARDEN_LABEL_{tail}")
}

/// The alert, as the hook sees it. Every variable is set (empty when not applicable), so a
/// script under `set -u` can read them all.
pub fn alert_env(event: &Event) -> Vec<(String, String)> {
    let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut env = vec![
        ("WARDEN_ALERT".to_string(), event.alert.clone()),
        ("WARDEN_CHECK".to_string(), event.check.clone()),
        (
            "WARDEN_SEVERITY".to_string(),
            event.severity.as_str().to_string(),
        ),
        (
            "WARDEN_STATUS".to_string(),
            kind_str(event.kind).to_string(),
        ),
        ("WARDEN_VALUE".to_string(), num(event.value)),
        ("WARDEN_THRESHOLD".to_string(), num(event.threshold)),
        ("WARDEN_DEDUP_KEY".to_string(), event.dedup_key.clone()),
        ("WARDEN_SINCE".to_string(), event.since.clone()),
        (
            "WARDEN_DEPLOY".to_string(),
            event.deploy.clone().unwrap_or_default(),
        ),
        // `{name="value", ...}` of a labelled series, empty otherwise; each label is also
        // `WARDEN_LABEL_<NAME>` below.
        (
            "WARDEN_SERIES".to_string(),
            crate::labels::render(&event.series),
        ),
    ];
    for (name, value) in &event.labels {
        env.push((label_var(name), value.clone()));
    }
    // A validation window's hooks (the rollback, a canary step's weight) also get the
    // window's facts under their own names.
    if event.alert.starts_with("window/") {
        for (label, var) in [
            ("window", "WARDEN_WINDOW"),
            ("version", "WARDEN_VERSION"),
            ("weight", "WARDEN_WEIGHT"),
        ] {
            if let Some(value) = event.labels.get(label) {
                env.push((var.to_string(), value.clone()));
            }
        }
    }
    env
}

/// Bytes read from one pipe, up to a bound; the rest is counted and discarded.
#[derive(Default)]
struct Capture {
    kept: Vec<u8>,
    discarded: u64,
}

fn capture<R>(reader: Option<R>, limit: usize) -> (Arc<Mutex<Capture>>, tokio::task::JoinHandle<()>)
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    let cap = Arc::new(Mutex::new(Capture::default()));
    let out = cap.clone();
    let task = tokio::spawn(async move {
        let Some(mut reader) = reader else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut c = out.lock().unwrap_or_else(|p| p.into_inner());
                    let room = limit.saturating_sub(c.kept.len()).min(n);
                    c.kept.extend_from_slice(&buf[..room]);
                    c.discarded += (n - room) as u64;
                }
            }
        }
    });
    (cap, task)
}

fn take(cap: &Arc<Mutex<Capture>>) -> (String, bool) {
    let c = cap.lock().unwrap_or_else(|p| p.into_inner());
    (
        String::from_utf8_lossy(&c.kept).into_owned(),
        c.discarded > 0,
    )
}

/// Kills the hook's process group if the run is abandoned (its future dropped at shutdown)
/// before the child was reaped.
struct GroupKill {
    pgid: Option<i32>,
}

impl GroupKill {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // SAFETY: kill(2) with a negative pid signals that process group; it touches no
            // memory of ours. The group is the hook's own (process_group(0) made its leader's
            // pid the group id) and the leader is not yet reaped, so the id is not reused.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `hook` for `event` once (or records a dry run when the hook or `global_dry_run` asks
/// for it). Never fails: a hook that cannot start comes back with `error` set.
/// `secrets` are the config's other secret values: a hook inherits warden's environment, so
/// its output is redacted of those too, not only of its own `env`.
pub async fn run(
    hook: &HookConfig,
    event: &Event,
    global_dry_run: bool,
    secrets: &Redactor,
) -> HookRun {
    let argv = hook.argv();
    let alert = alert_env(event);
    let mut env_names: Vec<String> = alert.iter().map(|(k, _)| k.clone()).collect();
    env_names.extend(
        hook.env
            .keys()
            .filter(|k| !env_names.contains(k) && !CHILD_ENV_REMOVE.contains(&k.as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let dry_run = hook.dry_run || global_dry_run;
    let mut result = HookRun {
        outcome: HookOutcome {
            hook: hook.name.clone(),
            command: hook.display_command(),
            dry_run,
            exit_code: None,
            timed_out: false,
            duration_seconds: 0.0,
            skipped: None,
            not_helped: None,
        },
        argv: argv.clone(),
        env_names,
        stdout: String::new(),
        stderr: String::new(),
        truncated: false,
        error: None,
    };
    if dry_run {
        return result;
    }
    let Some((program, args)) = argv.split_first() else {
        result.error = Some("the hook's command is empty".into());
        return result;
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0);
    // Configured env first: WARDEN_* wins over it, and warden's systemd variables are
    // removed last, whoever set them.
    cmd.envs(hook.env.iter().map(|(k, v)| (k, v.expose())));
    cmd.envs(alert);
    for name in CHILD_ENV_REMOVE {
        cmd.env_remove(name);
    }
    if let Some(dir) = &hook.workdir {
        cmd.current_dir(dir);
    }
    let started = tokio::time::Instant::now();
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            result.error = Some(format!("cannot start {program}: {e}"));
            return result;
        }
    };
    let mut group = GroupKill {
        pgid: child.id().map(|pid| pid as i32),
    };
    let (out, out_task) = capture(child.stdout.take(), hook.max_output_bytes);
    let (err, err_task) = capture(child.stderr.take(), hook.max_output_bytes);
    let status = match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(status) => {
            // Reaped: the group id may be reused from now on, so never signal it again.
            group.pgid = None;
            status.ok()
        }
        Err(_) => {
            result.outcome.timed_out = true;
            group.kill();
            child.wait().await.ok()
        }
    };
    result.outcome.duration_seconds = started.elapsed().as_secs_f64();
    result.outcome.exit_code = status.and_then(|s| s.code());
    for task in [out_task, err_task] {
        let abort = task.abort_handle();
        if tokio::time::timeout(DRAIN_AFTER_EXIT, task).await.is_err() {
            abort.abort();
        }
    }
    let (stdout, t1) = take(&out);
    let (stderr, t2) = take(&err);
    // A hook may print its own credentials (`set -x`, a failing `curl -v`): never kept as is.
    let redactor = secrets.with(hook.env.values().map(|v| v.expose().to_string()));
    let redact = |text: String, cut: bool| {
        if cut {
            redactor.redact_cut(&text)
        } else {
            redactor.redact(&text)
        }
    };
    result.stdout = redact(stdout, t1);
    result.stderr = redact(stderr, t2);
    result.truncated = t1 || t2;
    result
}

/// The event that tells people how a hook run went ("rollback ran: exit 0 in 12.0 s").
/// Its dedup key is the trigger's plus `/hook/<name>`, so it never replaces the alert's page.
pub fn hook_event(trigger: &Event, run: &HookRun, at: Timestamp) -> Event {
    let o = &run.outcome;
    let summary = if o.dry_run {
        format!("{} (dry run): would have run {}", o.hook, o.command)
    } else if let Some(error) = &run.error {
        format!("{} could not run: {error}", o.hook)
    } else if o.timed_out {
        format!(
            "{} timed out after {:.1} s; its process group was killed",
            o.hook, o.duration_seconds
        )
    } else {
        match o.exit_code {
            Some(code) => format!("{} ran: exit {code} in {:.1} s", o.hook, o.duration_seconds),
            None => format!(
                "{} was killed by a signal after {:.1} s",
                o.hook, o.duration_seconds
            ),
        }
    };
    outcome_event(trigger, o.clone(), summary, at)
}

/// A `hook` event about `outcome` for the incident of `trigger`: the trigger's alert, with
/// the dedup key `<alert's key>/hook/<hook>` and `description` as its text.
fn outcome_event(
    trigger: &Event,
    outcome: HookOutcome,
    description: String,
    at: Timestamp,
) -> Event {
    Event {
        value_name: None,
        kind: EventKind::Hook,
        alert: trigger.alert.clone(),
        series: Default::default(),
        check: trigger.check.clone(),
        severity: trigger.severity,
        value: trigger.value,
        threshold: trigger.threshold,
        condition: trigger.condition.clone(),
        description: Some(description),
        labels: trigger.labels.clone(),
        since: trigger.since.clone(),
        at: at.to_rfc3339(),
        deploy: trigger.deploy.clone(),
        dedup_key: format!("{}/hook/{}", trigger.dedup_key, outcome.hook),
        hook: Some(outcome),
        ack_url: None,
        group: None,
    }
}

/// The event that tells people a hook did not run for the trigger's incident, and why
/// (`reason`, e.g. its cooldown). Same dedup key as a run's outcome would have.
pub fn skipped_event(
    trigger: &Event,
    hook: &HookConfig,
    dry_run: bool,
    reason: &str,
    at: Timestamp,
) -> Event {
    let outcome = HookOutcome {
        hook: hook.name.clone(),
        command: hook.display_command(),
        dry_run,
        exit_code: None,
        timed_out: false,
        duration_seconds: 0.0,
        skipped: Some(reason.to_string()),
        not_helped: None,
    };
    let description = format!("{} not run for this incident: {reason}", hook.name);
    outcome_event(trigger, outcome, description, at)
}

/// The page that says a hook ran for the trigger's incident and did not help: the alert still
/// fires its `verify` time after the run (`finding` says what was found). Unlike a run's
/// outcome it is a page, under the incident's own dedup key: a pager updates the open
/// incident (and the alert's resolve closes it), a chat shows "DID NOT HELP".
pub fn not_helped_event(trigger: &Event, hook: &HookConfig, finding: &str, at: Timestamp) -> Event {
    let outcome = HookOutcome {
        hook: hook.name.clone(),
        command: hook.display_command(),
        dry_run: false,
        exit_code: Some(0),
        timed_out: false,
        duration_seconds: 0.0,
        skipped: None,
        not_helped: Some(finding.to_string()),
    };
    let description = format!("{} {finding}", hook.name);
    let mut event = outcome_event(trigger, outcome, description, at);
    event.dedup_key = trigger.dedup_key.clone();
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Severity;
    use crate::secret::Secret;

    fn event() -> Event {
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
            labels: [
                ("team".to_string(), "web".to_string()),
                ("k8s.ns".into(), "prod".into()),
            ]
            .into_iter()
            .collect(),
            since: "2026-01-01T00:00:00.000Z".into(),
            at: "2026-01-01T00:05:00.000Z".into(),
            deploy: Some("v42".into()),
            dedup_key: "warden/api-down/7".into(),
            hook: None,
            ack_url: None,
            group: None,
        }
    }

    fn shell(line: &str) -> HookConfig {
        let mut h = HookConfig::new("test", HookCommand::Shell(line.into()));
        h.timeout = Duration::from_secs(10);
        h
    }

    #[tokio::test]
    async fn the_alert_is_in_the_environment() {
        let run = run(
            &shell("env | grep ^WARDEN_ | sort"),
            &event(),
            false,
            &Redactor::default(),
        )
        .await;
        assert_eq!(run.result(), "success", "{run:?}");
        expect_test::expect![[r#"
            WARDEN_ALERT=api-down
            WARDEN_CHECK=api
            WARDEN_DEDUP_KEY=warden/api-down/7
            WARDEN_DEPLOY=v42
            WARDEN_LABEL_K8S_NS=prod
            WARDEN_LABEL_TEAM=web
            WARDEN_SERIES=
            WARDEN_SEVERITY=critical
            WARDEN_SINCE=2026-01-01T00:00:00.000Z
            WARDEN_STATUS=firing
            WARDEN_THRESHOLD=1
            WARDEN_VALUE=0
        "#]]
        .assert_eq(&run.stdout);
    }

    #[tokio::test]
    async fn argv_is_not_a_shell() {
        let h = HookConfig::new(
            "echo",
            HookCommand::Argv(vec!["echo".into(), "$HOME; rm -rf /".into()]),
        );
        let run = run(&h, &event(), false, &Redactor::default()).await;
        assert_eq!(run.stdout, "$HOME; rm -rf /\n");
        assert_eq!(run.outcome.command, "echo '$HOME; rm -rf /'");
        assert_eq!(run.outcome.exit_code, Some(0));
    }

    #[tokio::test]
    async fn exit_codes_workdir_and_configured_env() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = shell("pwd; echo \"$TARGET\" >&2; exit 3");
        h.workdir = Some(dir.path().to_path_buf());
        h.env.insert("TARGET".into(), Secret::new("deployment/api"));
        h.env.insert("WARDEN_ALERT".into(), Secret::new("spoofed"));
        let run = run(&h, &event(), false, &Redactor::default()).await;
        assert_eq!(run.outcome.exit_code, Some(3));
        assert_eq!(run.result(), "failure");
        let canonical = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(run.stdout.trim_end(), canonical.to_str().unwrap());
        // Configured env values are secrets: the hook saw the value, its output shows none.
        assert_eq!(run.stderr, "<secret>\n");
        assert!(run.env_names.contains(&"TARGET".to_string()));
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_not_a_panic() {
        let h = HookConfig::new(
            "nope",
            HookCommand::Argv(vec!["/nonexistent/rollback".into()]),
        );
        let run = run(&h, &event(), false, &Redactor::default()).await;
        assert_eq!(run.result(), "error");
        assert!(run
            .error
            .as_deref()
            .unwrap()
            .starts_with("cannot start /nonexistent/rollback: "));
        let ev = hook_event(&event(), &run, Timestamp(0));
        assert!(ev.description.unwrap().starts_with("nope could not run"));
    }

    #[tokio::test]
    async fn dry_run_records_and_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let mut h = HookConfig::new(
            "rollback",
            HookCommand::Argv(vec!["touch".into(), marker.to_str().unwrap().into()]),
        );
        h.env
            .insert("KUBECONFIG".into(), Secret::new("/secret/path"));
        for (hook_dry, global) in [(true, false), (false, true)] {
            h.dry_run = hook_dry;
            let run = run(&h, &event(), global, &Redactor::default()).await;
            assert!(run.outcome.dry_run);
            assert_eq!(run.result(), "dry_run");
            assert_eq!(run.argv, ["touch", marker.to_str().unwrap()]);
            assert!(run.env_names.contains(&"KUBECONFIG".to_string()));
            assert!(run.env_names.contains(&"WARDEN_ALERT".to_string()));
            assert!(!format!("{run:?}").contains("/secret/path"));
            assert!(!marker.exists());
        }
        let ev = hook_event(
            &event(),
            &run(&h, &event(), true, &Redactor::default()).await,
            Timestamp(0),
        );
        assert_eq!(ev.kind, EventKind::Hook);
        assert_eq!(ev.dedup_key, "warden/api-down/7/hook/rollback");
        assert!(ev
            .description
            .unwrap()
            .starts_with("rollback (dry run): would have run touch /"));
    }

    #[tokio::test]
    async fn output_beyond_the_bound_is_discarded_without_blocking() {
        let mut h = shell("head -c 1000000 /dev/zero | tr '\\0' x; echo done >&2");
        h.max_output_bytes = 100;
        let run = run(&h, &event(), false, &Redactor::default()).await;
        assert_eq!(run.outcome.exit_code, Some(0), "{run:?}");
        assert_eq!(run.stdout, "x".repeat(100));
        assert_eq!(run.stderr, "done\n");
        assert!(run.truncated);
    }

    #[tokio::test]
    async fn timeout_kills_and_reports() {
        let mut h = shell("echo started; exec sleep 30");
        h.timeout = Duration::from_millis(300);
        let run = run(&h, &event(), false, &Redactor::default()).await;
        assert!(run.outcome.timed_out);
        assert_eq!(run.outcome.exit_code, None);
        assert_eq!(run.result(), "timeout");
        assert_eq!(run.stdout, "started\n");
        assert!(run.outcome.duration_seconds < 30.0);
        let ev = hook_event(&event(), &run, Timestamp(0));
        assert!(ev.description.unwrap().contains("timed out"));
    }

    #[tokio::test]
    async fn a_background_process_holding_the_pipes_does_not_hang_the_run() {
        // The background job keeps stdout open after the hook exits; warden stops reading
        // shortly after the exit instead of waiting for it.
        let run = run(
            &shell("(sleep 5; echo late) & echo early"),
            &event(),
            false,
            &Redactor::default(),
        )
        .await;
        assert_eq!(run.result(), "success", "{run:?}");
        assert_eq!(run.stdout, "early\n");
    }

    #[test]
    fn label_names_become_variable_names() {
        assert_eq!(label_var("team"), "WARDEN_LABEL_TEAM");
        assert_eq!(
            label_var("app.kubernetes.io/name"),
            "WARDEN_LABEL_APP_KUBERNETES_IO_NAME"
        );
    }
}
