//! The five runbooks as configs: `config/examples/<system>.toml` (with `alerts/<system>.toml`)
//! run as shipped, pointed at loopback by environment only, against an imitation of the
//! system's HTTP services (`imitation`) and real Redis, Postgres and TLS servers. Each test
//! waits until every rule is ok, then injects the failures the runbook describes, one at a
//! time, and waits for the rule the runbook names to reach the level it gives, then for every
//! rule to be ok again.
//!
//! Intervals, timeouts and `for` durations are shortened through the examples' own
//! environment variables (`NUVIE_INTERVAL`, `NUVIE_REDIS_CRITICAL_FOR`, ...); counts are the
//! examples' own, so "3 consecutive failures" is tested as written: N - 1 failures in a row
//! stay below the level, the N-th reaches it (an imitation's path, or a [`Gate`] in front of
//! the real Postgres or Redis, fails exactly N probes); a `for` level is reached no earlier
//! than its duration, and an "any failure" level at the first one. The ledger
//! ([`RUNBOOK_LEVELS`]) holds every rule's configured levels and hooks to its runbook line.
//!
//! Each example's metric rules (`expr` over a `scrape` of the system's `/metrics`) run with
//! their ranges shortened to seconds through the examples' `<SYSTEM>_METRICS_WINDOW`-style
//! variables, against an imitation whose traffic the test steers
//! ([`metric_rules_reach_their_levels`]): each rule reaches the level its runbook line gives,
//! on the series it names, and is ok again once the traffic heals.
//!
//! Each example's notifiers are pointed by environment at local receivers ([`Paging`]), and
//! each test first takes one rule the runbook rolls back for to critical: the pager gets the
//! page its on-call policy sends at once and, once the rule recovers, its resolve (the
//! policies' later steps, which wait minutes to hours, are held on a manual clock in
//! `runbook_policies`); the chat gets both and the outcome of every hook, a dry run naming the
//! runbook's command; and nothing ran (a tripwire `kubectl`, `docker-compose` and the
//! runbook's scripts lead the hooks' `PATH`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::daemon::{warden, Daemon};
use crate::harness::notify_receiver::{Answer, Receiver as HttpReceiver};
use crate::harness::receiver::Receiver;
use crate::harness::{short_key, Gate, Pki, PostgresServer, RedisServer, RenewableTlsServer};
use crate::imitation::{self, Imitation};
use crate::metrics_matcher::{self, metric};

const SYSTEMS: [&str; 5] = ["nuvie", "redcube", "nova-streaming", "ai-saas", "novacron"];

/// How long any single state change may take to show (generous: the machine is shared).
const LIMIT: Duration = Duration::from_secs(20);
const DAY: i64 = 86_400;

pub(crate) fn example(system: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("config/examples/{system}.toml"))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Waits until every rule of the daemon is `ok`, and checks that every check and rule is named
/// `<system>-<thing>`.
pub(crate) fn all_rules_ok(d: &Daemon, system: &str) {
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
            return;
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

/// How many times `rule` entered `state` (`warden_rule_transitions_total`).
fn entered(d: &Daemon, rule: &str, state: &str) -> f64 {
    let (_, text) = d.metrics();
    let samples = metrics_matcher::parse(&text);
    let q = metric(&samples, "warden_rule_transitions_total")
        .label("rule", rule)
        .label("to", state);
    if q.count() == 0 {
        0.0
    } else {
        q.value()
    }
}

/// Something a test can fail exactly `n` times in a row: one path of an imitation (each probe
/// is one request) or a [`Gate`] in front of a real server (each probe is one connection).
trait Failable {
    /// The next `n` requests (connections) fail.
    fn fail_next(&self, n: u32);
    /// Requests (connections) answered so far.
    fn served(&self) -> u64;
    fn name(&self) -> String;
}

/// One path of an imitation, failing with a 503.
struct Route<'a>(&'a Imitation, &'a str);

impl Failable for Route<'_> {
    fn fail_next(&self, n: u32) {
        self.0
            .fail_next(self.1, n, 503, r#"{"status":"unavailable"}"#);
    }
    fn served(&self) -> u64 {
        self.0.served(self.1)
    }
    fn name(&self) -> String {
        self.1.to_string()
    }
}

impl Failable for Gate {
    fn fail_next(&self, n: u32) {
        self.drop_next(n);
    }
    fn served(&self) -> u64 {
        self.accepted()
    }
    fn name(&self) -> String {
        format!("the gate on port {}", self.port())
    }
}

/// The runbook's count, exactly, whatever the timing: `n - 1` failures in a row of `target`
/// leave `rule` short of `state`, the `n`-th takes it there.
fn enters_on_the_nth_failure(
    d: &Daemon,
    target: &dyn Failable,
    (rule, state): (&str, &str),
    n: u32,
) {
    let before = entered(d, rule, state);
    let served = target.served();
    let what = target.name();
    target.fail_next(n - 1);
    // The failures, then two good answers: the last failure has been evaluated by then.
    let deadline = Instant::now() + LIMIT;
    while target.served() < served + u64::from(n - 1) + 2 {
        assert!(Instant::now() < deadline, "{what} was not probed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        entered(d, rule, state),
        before,
        "{} failures in a row of {what} took {rule} to {state}",
        n - 1
    );
    // The n-th failure: the rule enters the state, and leaves it at the next good answer,
    // which may come before a status poll would see it; the transition counter keeps it.
    target.fail_next(n);
    let deadline = Instant::now() + LIMIT;
    while entered(d, rule, state) < before + 1.0 {
        assert!(
            Instant::now() < deadline,
            "{n} failures in a row of {what} did not take {rule} to {state}: {:#}\nlog:\n{}",
            d.rule(rule),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Failed probes of `check` so far (`warden_check_runs_total` with a result other than ok).
fn failed_probes(d: &Daemon, check: &str) -> f64 {
    let (_, text) = d.metrics();
    metrics_matcher::parse(&text)
        .iter()
        .filter(|s| s.name == "warden_check_runs_total")
        .filter(|s| s.labels.get("check").map(String::as_str) == Some(check))
        .filter(|s| s.labels.get("result").map(String::as_str) != Some("ok"))
        .map(|s| s.value)
        .sum()
}

/// Hook runs so far, of every hook and outcome (`warden_hook_runs_total`, dry runs included).
fn hook_runs(d: &Daemon) -> f64 {
    let (_, text) = d.metrics();
    metrics_matcher::parse(&text)
        .iter()
        .filter(|s| s.name == "warden_hook_runs_total")
        .map(|s| s.value)
        .sum()
}

/// The runbook's count where one failure cannot be dealt to one check alone (two checks read
/// the same path): `fail` breaks `check` for good, and `rule` must not be in `state` while the
/// check has failed `n - 1` times, and must get there once it has failed `n` times. Failed
/// probes are read before and after the transitions, so a reading of exactly `n - 1` with no
/// transition in between is proof; if the test never catches that moment (a stalled machine)
/// it tries again, up to 3 times.
fn enters_on_the_nth_failed_probe(
    d: &Daemon,
    (check, system): (&str, &str),
    (rule, state): (&str, &str),
    n: u32,
    fail: impl Fn(),
    restore: impl Fn(),
) {
    let short = f64::from(n - 1);
    for _ in 0..3 {
        let before = entered(d, rule, state);
        let base = failed_probes(d, check);
        fail();
        let mut held_short = false;
        let deadline = Instant::now() + LIMIT;
        loop {
            let first = failed_probes(d, check) - base;
            let now = entered(d, rule, state);
            let then = failed_probes(d, check) - base;
            if now > before {
                assert!(
                    then >= f64::from(n),
                    "{rule} reached {state} after {then} failed probes of {check}, before the {n}th"
                );
                break;
            }
            if first == short && then == short {
                held_short = true;
            }
            assert!(
                Instant::now() < deadline,
                "{n} failed probes of {check} did not take {rule} to {state}: {:#}",
                d.rule(rule)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        restore();
        all_rules_ok(d, system);
        if held_short {
            return;
        }
    }
    panic!("never read {check} at exactly {short} failed probes (3 tries)");
}

/// `rule` stays ok while `check` runs `n` more probes: a value short of the runbook's level
/// does not reach it. Returns the check as last seen.
fn stays_ok_for_probes(d: &Daemon, check: &str, rule: &str, n: u64) -> serde_json::Value {
    let runs = |c: &serde_json::Value| c["runs"].as_u64().expect("runs");
    let start = runs(&d.check(check));
    let deadline = Instant::now() + LIMIT;
    loop {
        let status = d.status();
        let find = |kind: &str, name: &str| {
            status[kind]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["name"] == name))
                .cloned()
                .unwrap_or_else(|| panic!("no {name} in {kind}"))
        };
        let (c, r) = (find("checks", check), find("rules", rule));
        assert_eq!(r["state"], "ok", "{rule} left ok: {r:#}\n{check}: {c:#}");
        if runs(&c) >= start + n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{check} was not probed {n} times"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp from the status API.
fn millis(rfc3339: &serde_json::Value) -> i64 {
    let s = rfc3339.as_str().expect("timestamp string");
    let t = humantime::parse_rfc3339(s).expect("rfc3339");
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    i64::try_from(ms).expect("fits")
}

/// Polls `f` every 50 ms until it returns `Some`, or panics with `what` (and the log) after
/// [`LIMIT`].
pub(crate) fn eventually<T>(d: &Daemon, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {LIMIT:?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where an example pages: its chat, a Slack incoming webhook (`<PREFIX>_SLACK_WEBHOOK_URL`),
/// and its pager, PagerDuty's Events API (`<PREFIX>_PAGERDUTY_URL` and `_ROUTING_KEY`) or a
/// webhook taking warden's JSON (`<PREFIX>_ONCALL_WEBHOOK_URL`), both local receivers. And a
/// tripwire: executables named like the hooks' programs, first in the daemon's `PATH` (and, for
/// redcube's scripts, in [`Paging::scripts_dir`]), that record any run.
pub(crate) struct Paging {
    chat: HttpReceiver,
    pub(crate) pager: Pager,
    pub(crate) tripwire: tempfile::TempDir,
    env: Vec<(String, String)>,
}

pub(crate) enum Pager {
    PagerDuty(HttpReceiver),
    Webhook(Receiver),
}

const ROUTING_KEY: &str = "R0UTING-KEY-runbooks";

impl Paging {
    /// The example's notifiers `slack` and `pagerduty` (nuvie, novacron).
    pub(crate) fn pagerduty(prefix: &str) -> Paging {
        let pager = HttpReceiver::start(Answer::status(202, r#"{"status":"success"}"#));
        let env = vec![
            (format!("{prefix}_PAGERDUTY_URL"), pager.url("/v2/enqueue")),
            (
                format!("{prefix}_PAGERDUTY_ROUTING_KEY"),
                ROUTING_KEY.to_string(),
            ),
        ];
        Paging::with(prefix, Pager::PagerDuty(pager), env)
    }

    /// The example's notifiers `slack` and `oncall`, a webhook (redcube, nova-streaming,
    /// ai-saas).
    pub(crate) fn webhook(prefix: &str) -> Paging {
        let pager = Receiver::start();
        let env = vec![(format!("{prefix}_ONCALL_WEBHOOK_URL"), pager.url())];
        Paging::with(prefix, Pager::Webhook(pager), env)
    }

    fn with(prefix: &str, pager: Pager, mut env: Vec<(String, String)>) -> Paging {
        use std::os::unix::fs::PermissionsExt;
        let chat = HttpReceiver::start(Answer::status(200, "ok"));
        env.push((
            format!("{prefix}_SLACK_WEBHOOK_URL"),
            chat.url("/services/T000/B000/XXXX"),
        ));
        let tripwire = tempfile::tempdir().expect("temp dir");
        let ran = tripwire.path().join("ran");
        for program in [
            "bin/kubectl",
            "bin/docker-compose",
            "scripts/rollback-deployment.sh",
            "scripts/full-rollback.sh",
        ] {
            let path = tripwire.path().join(program);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
            let script = format!("#!/bin/sh\necho \"$0 $*\" >> '{}'\n", ran.display());
            std::fs::write(&path, script).expect("write tripwire");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let path = format!(
            "{}:{}",
            tripwire.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        env.push(("PATH".to_string(), path));
        Paging {
            chat,
            pager,
            tripwire,
            env,
        }
    }

    /// The directory holding `scripts/` for an example that runs the runbook's scripts.
    pub(crate) fn scripts_dir(&self) -> &str {
        self.tripwire.path().to_str().expect("utf-8 path")
    }

    /// [`Daemon::start_file`] on `example` with `env` and the notifiers pointed here.
    pub(crate) fn start(&self, example: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        let mut all = env.to_vec();
        all.extend(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        Daemon::start_file(example, &all)
    }

    /// The pager's events for `dedup_key` (in the short form, [`short_key`]) so far, as
    /// `(action, body)`: PagerDuty's `event_action` (`trigger`, `resolve`) or warden's
    /// `status` (`firing`, `hook`, `resolved`). Hook outcomes carry `<dedup_key>/hook/<hook>`.
    fn paged(&self, dedup_key: &str) -> Vec<(String, serde_json::Value)> {
        let bodies: Vec<serde_json::Value> = match &self.pager {
            Pager::PagerDuty(r) => r.received().iter().map(|r| r.json()).collect(),
            Pager::Webhook(r) => r.accepted(),
        };
        bodies
            .into_iter()
            .filter(|b| {
                b["dedup_key"]
                    .as_str()
                    .map(short_key)
                    .is_some_and(|k| k == dedup_key || k.starts_with(&format!("{dedup_key}/")))
            })
            .map(|b| {
                let action = match &self.pager {
                    Pager::PagerDuty(_) => &b["event_action"],
                    Pager::Webhook(_) => &b["status"],
                };
                (action.as_str().unwrap_or_default().to_string(), b)
            })
            .collect()
    }

    /// The `text` of every Slack message so far (the headline).
    pub(crate) fn chat_texts(&self) -> Vec<String> {
        self.chat
            .received()
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The runbook's critical path through pages and hooks. `fail` takes `rule` critical for
    /// the first time: the pager gets the page under the rule's first incident,
    /// `warden/<rule>/1`, and the chat the critical, both at once (the first step of the
    /// rule's on-call policy, its runbook's "page now": redcube's and novacron's P0, nuvie's
    /// P1, nova-streaming's CRITICAL, ai-saas' rollback policy; the later steps are
    /// `runbook_policies`'); each of `hooks` (name, the runbook's command) reports to the chat
    /// as a dry run naming its command, once, and runs nothing. `restore` makes the rule ok:
    /// the pager and the chat hear the resolve.
    fn pages_and_rolls_back_dry(
        &self,
        d: &Daemon,
        rule: &str,
        hooks: &[(&str, &str)],
        fail: impl FnOnce(),
        restore: impl FnOnce(),
    ) {
        let key = format!("warden/{rule}/1");
        let (fired, resolved) = match self.pager {
            Pager::PagerDuty(_) => ("trigger", "resolve"),
            Pager::Webhook(_) => ("firing", "resolved"),
        };
        fail();
        let page = eventually(d, &format!("page {key}"), || {
            let paged = self.paged(&key);
            paged.into_iter().find(|(a, _)| a == fired).map(|(_, b)| b)
        });
        match self.pager {
            Pager::PagerDuty(_) => {
                assert_eq!(page["routing_key"], ROUTING_KEY, "{page:#}");
                assert_eq!(page["payload"]["severity"], "critical", "{page:#}");
                assert_eq!(page["payload"]["custom_details"]["alert"], rule, "{page:#}");
            }
            Pager::Webhook(_) => {
                assert_eq!(page["severity"], "critical", "{page:#}");
                assert_eq!(page["alert"], rule, "{page:#}");
            }
        }
        let critical = format!("CRITICAL: {rule} on ");
        for (hook, command) in hooks {
            let line = format!("HOOK DRY RUN: {hook} for {rule} (dry run) would run: ");
            let text = eventually(d, &format!("{hook}'s outcome in the chat"), || {
                self.chat_texts().into_iter().find(|t| t.contains(&line))
            });
            assert!(
                text.contains(command),
                "{hook} does not name {command:?}: {text}"
            );
        }
        let texts = self.chat_texts();
        assert!(
            texts.iter().any(|t| t.contains(&critical)),
            "the chat did not hear the critical: {texts:#?}"
        );
        restore();
        eventually(d, &format!("the resolve of {key}"), || {
            let paged = self.paged(&key);
            paged.iter().any(|(a, _)| a == resolved).then_some(())
        });
        let heard = format!("RESOLVED: {rule} on ");
        eventually(d, &format!("the resolve of {key} in the chat"), || {
            self.chat_texts()
                .iter()
                .any(|t| t.contains(&heard))
                .then_some(())
        });

        let paged = self.paged(&key);
        let actions: Vec<&str> = paged.iter().map(|(a, _)| a.as_str()).collect();
        match self.pager {
            // Hook outcomes never go to PagerDuty (each would open an incident of its own).
            Pager::PagerDuty(_) => assert_eq!(actions, [fired, resolved], "{paged:#?}"),
            // A webhook hears them, under the hook's own key.
            Pager::Webhook(_) => {
                for (hook, command) in hooks {
                    let outcome = paged
                        .iter()
                        .find(|(a, b)| a == "hook" && b["hook"]["hook"] == *hook)
                        .map(|(_, b)| b)
                        .unwrap_or_else(|| panic!("no outcome of {hook}: {paged:#?}"));
                    let full = outcome["dedup_key"].as_str().unwrap_or_default();
                    assert_eq!(short_key(full), format!("{key}/hook/{hook}"));
                    assert_eq!(outcome["hook"]["dry_run"], true, "{outcome:#}");
                    assert_eq!(outcome["hook"]["exit_code"], serde_json::Value::Null);
                    let shown = outcome["hook"]["command"].as_str().unwrap_or_default();
                    assert!(shown.contains(command), "{shown}");
                }
                // The page and its hooks' outcomes are under different keys, so the outbox
                // may deliver them in either order (it orders per key): of the alert's own
                // events, the firing comes first and the resolve last.
                let own: Vec<&str> = actions.iter().copied().filter(|a| *a != "hook").collect();
                assert_eq!(own.first(), Some(&fired), "{paged:#?}");
                assert_eq!(own.last(), Some(&resolved), "{paged:#?}");
            }
        }
        // Each hook was a dry run, once, and nothing was executed.
        let (_, text) = d.metrics();
        let samples = metrics_matcher::parse(&text);
        for (hook, _) in hooks {
            let runs = metric(&samples, "warden_hook_runs_total").label("hook", hook);
            assert_eq!(runs.count(), 1, "{hook} ran other than as a dry run");
            assert_eq!(runs.label("outcome", "dry_run").value(), 1.0, "{hook}");
        }
        let ran = std::fs::read_to_string(self.tripwire.path().join("ran")).unwrap_or_default();
        assert!(ran.is_empty(), "a dry-run hook executed: {ran}");
    }
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
        // An example pages and rolls back, but never for real as shipped: every hook is a
        // dry run of its own (not only under `warden run --dry-run`).
        let parsed: toml::Table = text.parse().expect("an example is TOML");
        let hooks = parsed["hook"].as_array().expect("[[hook]] tables");
        assert!(!hooks.is_empty(), "{system}: no hooks");
        for hook in hooks {
            assert_eq!(
                hook.get("dry_run").and_then(toml::Value::as_bool),
                Some(true),
                "{system}: hook {} is not dry_run = true",
                hook["name"]
            );
        }
        assert!(
            parsed.contains_key("alerting") && parsed.contains_key("notifier"),
            "{system}: no [alerting] routes or [[notifier]]"
        );
    }
}

/// `(rule, its levels and hooks, the runbook line)`.
type Ledger = &'static [(&'static str, &'static str, &'static str)];

/// Every rule of every example as its runbook line gives it, with that line: the level's
/// condition on its value, its count (`x3`: that many failed probes in a row) or duration
/// (`for 5m`), the state a failed probe takes (`on_error`), and the hooks it runs; an `expr`
/// rule's expression (as shipped: every window at its default) ahead of its levels. A rule not
/// listed here, or listed but absent, fails the test, so a rule cannot be added, dropped or
/// moved to another level without naming the runbook line it follows. The examples are read
/// with no variable set: these are the shipped defaults. The behaviour of each level (reached
/// on the N-th failure and not the N-1-th, after its duration and not before) is held by the
/// `*_runbook_failures_reach_the_runbook_levels` tests below.
const RUNBOOK_LEVELS: [(&str, Ledger); 5] = [
    (
        "nuvie",
        &[
            (
                "nuvie-api-down",
                "critical up < 1 x3; hooks nuvie-backend-logs, nuvie-rollback-backend after 15m",
                "Incident Response, Severity Levels: \"P1 - Critical | Complete outage | 15 min | \
                 API down\"; the liveness probe's default failureThreshold, 3; Rollback \
                 Procedures, Backend Rollback",
            ),
            (
                "nuvie-api-not-ready",
                "warning up < 1 x3",
                "Incident Response: \"P2 - Major | Significant degradation | ... partial \
                 failures\"; Health Checks: /ready is the readiness probe",
            ),
            (
                "nuvie-ai-down",
                "warning up < 1 at once; critical up < 1 for 5m",
                "Monitoring & Alerts: \"Circuit breaker open | Any | >5min | Check AI service\"",
            ),
            (
                "nuvie-redis-down",
                "warning up < 1 at once; critical up < 1 for 1m",
                "Monitoring & Alerts: \"Redis connection | Any failure | >1min\"",
            ),
            (
                "nuvie-db-down",
                "critical up < 1 x3",
                "Deployment Overview, Architecture (PostgreSQL under both services): API down, \
                 P1",
            ),
            (
                "nuvie-api-slow",
                "warning duration_seconds > 0.5 for 5m; critical duration_seconds > 2 for 5m",
                "Monitoring & Alerts: \"Response time (p95) | >500ms | >2000ms\"; SlowResponseTime \
                 `for: 5m`",
            ),
            (
                "nuvie-api-cert-expiry",
                "warning days_left <= 30 at once; on_error critical",
                "Pre-Deployment Checklist: \"SSL certificates valid (>30 days)\"",
            ),
            (
                "nuvie-ai-cert-expiry",
                "warning days_left <= 30 at once; on_error critical",
                "Pre-Deployment Checklist: \"SSL certificates valid (>30 days)\"",
            ),
            (
                "nuvie-cpu",
                "warning cpu_ratio > 0.7 for 5m; critical cpu_ratio > 0.9 for 5m",
                "Monitoring & Alerts: \"CPU utilization | >70% | >90%\"",
            ),
            (
                "nuvie-memory",
                "warning memory_ratio > 0.8 for 5m; critical memory_ratio > 0.95 for 5m",
                "Monitoring & Alerts: \"Memory utilization | >80% | >95%\"",
            ),
            (
                "nuvie-smoke",
                "warning status >= 1 at once; critical status >= 2 at once",
                "Backend Deployment, Step 4: ./scripts/smoke-test-backend.sh",
            ),
            (
                "nuvie-high-error-rate",
                "expr rate(http_requests_total{status=~\"5..\"}[5m]) or on() (0 * \
                 sum(rate(http_requests_total[5m]))); critical > 0.05 for 5m",
                "Alert Configuration: HighErrorRate `rate(http_requests_total{status=~\"5..\"}[5m]) \
                 > 0.05`, `for: 5m`, `severity: critical`",
            ),
            (
                "nuvie-slow-response-time",
                "expr histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])); \
                 warning > 2 for 5m",
                "Alert Configuration: SlowResponseTime `histogram_quantile(0.95, \
                 rate(http_request_duration_seconds_bucket[5m])) > 2`, `for: 5m`, `severity: \
                 warning`",
            ),
            (
                "nuvie-error-rate",
                "expr (sum(rate(http_requests_total{status=~\"5..\"}[5m])) or vector(0)) / \
                 sum(rate(http_requests_total[5m])); warning > 0.01 for 5m; critical > 0.05 for 5m",
                "Monitoring & Alerts: \"Error rate (5xx) | >1% | >5%\"",
            ),
            (
                "nuvie-p95",
                "expr histogram_quantile(0.95, sum by (le) \
                 (rate(http_request_duration_seconds_bucket[5m]))); warning > 0.5 for 5m; \
                 critical > 2 for 5m",
                "Monitoring & Alerts: \"Response time (p95) | >500ms | >2000ms\"",
            ),
            (
                "nuvie-circuit-breaker",
                "expr circuit_breaker_open; warning > 0 at once; critical > 0 for 5m",
                "Monitoring & Alerts: \"Circuit breaker open | Any | >5min\"; `curl \
                 .../metrics | grep circuit`",
            ),
        ],
    ),
    (
        "redcube",
        &[
            (
                "redcube-content-down",
                "critical up < 1 x3; hooks redcube-content-logs, redcube-rollback-content-service after 30s",
                "Incident Response: \"P0 - Critical (Rollback immediately): Service completely \
                 down\"; Emergency Rollback, Option 2",
            ),
            (
                "redcube-content-slow",
                "warning duration_seconds >= 2 x3; critical duration_seconds > 5 x3; \
                 hooks redcube-content-logs, redcube-rollback-content-service",
                "When to Rollback: \"Response time > 5 seconds (p95)\"; 30-Minute Mark: \"P95 \
                 latency < 2s\"",
            ),
            (
                "redcube-db-down",
                "critical up < 1 x3",
                "Appendix: Emergency Procedures, \"Database Connection Lost\"",
            ),
            (
                "redcube-users-db-down",
                "critical up < 1 x3",
                "Appendix: \"Database Connection Lost\"; P1 \"Database sync failing\"",
            ),
            (
                "redcube-db-connections",
                "warning connections_ratio > 0.8 at once, clear < 0.7",
                "Key Metrics to Monitor: \"Database Connections | > 80% of max | Scale database\"",
            ),
            (
                "redcube-user-sync",
                "critical user_sync_missing > 0 at once; hooks redcube-full-rollback after 15m",
                "Key Metrics to Monitor: \"User Sync Failures | > 0\"; P1 \"Database sync \
                 failing\" (rollback within 15 min); Option 3",
            ),
            (
                "redcube-reputation-inactive",
                "warning reputation_events_last_hour < 1 at once",
                "1-Hour Mark: \"Reputation system active\"",
            ),
            (
                "redcube-cpu",
                "warning cpu_ratio > 0.8 for 5m",
                "Key Metrics to Monitor: \"CPU Usage | > 80%\"",
            ),
            (
                "redcube-memory",
                "warning memory_ratio > 0.85 for 5m",
                "Key Metrics to Monitor: \"Memory Usage | > 85%\"",
            ),
            (
                "redcube-smoke",
                "warning status >= 1 at once; critical status >= 2 at once",
                "Phase 3: Smoke Tests, \"All tests return HTTP 200\"",
            ),
            (
                "redcube-error-rate",
                "expr (sum(rate(http_requests_total{status=~\"5..\"}[5m])) or vector(0)) / sum(rate(http_requests_total[5m])); warning > 0.05 at once; critical > 0.1 at once",
                "Key Metrics to Monitor: \"Error Rate | > 5%\"; Incident Response: P2 \"Error rate 5-10%\", P1 \"Error rate > 10%\"",
            ),
            (
                "redcube-p95",
                "expr histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))); warning >= 2 at once; critical > 5 at once; hooks redcube-content-logs, redcube-rollback-content-service",
                "When to Rollback: \"Response time > 5 seconds (p95)\"; 30-Minute Mark: \"P95 latency < 2s\"",
            ),
        ],
    ),
    (
        "nova-streaming",
        &[
            (
                "nova-streaming-api-down",
                "critical up < 1 x3; hooks nova-streaming-green-logs, \
                 nova-streaming-switch-to-blue after 30s, nova-streaming-scale-up-blue after 30s",
                "Emergency Procedures: \"CRITICAL (API down, data loss) -> Immediate rollback \
                 (< 5 min)\"; Option 1: Switch Back to Blue",
            ),
            (
                "nova-streaming-api-slow",
                "warning duration_seconds >= 0.2 x3",
                "Monitoring and Validation: \"API Response Times ... Threshold: < 200ms\"; MEDIUM",
            ),
            (
                "nova-streaming-api-metrics-down",
                "warning up < 1 x3",
                "Step 2.3: \"Metrics endpoint\"; MEDIUM",
            ),
            (
                "nova-streaming-streams-failing",
                "warning up < 1 x3",
                "Step 3.3: \"Validate Green in Production\"; MEDIUM",
            ),
            (
                "nova-streaming-db-down",
                "critical up < 1 x3; hooks nova-streaming-green-logs, \
                 nova-streaming-switch-to-blue after 5m, nova-streaming-scale-up-blue after 5m",
                "Pre-Deployment Checklist: \"Database health\"; HIGH: \"Investigate (5 min), then \
                 rollback if needed\"",
            ),
            (
                "nova-streaming-db-connections",
                "warning connections_ratio >= 0.7 at once",
                "Step 1.1: \"Expected: Active connections < max_connections * 0.7\"",
            ),
            (
                "nova-streaming-redis-down",
                "critical up < 1 x3",
                "Pre-Deployment Checklist: \"Cache health\"",
            ),
            (
                "nova-streaming-cache-capacity",
                "warning memory_ratio >= 0.5 at once",
                "Capacity planning: \"Cache capacity: > 50% free space\"",
            ),
            (
                "nova-streaming-api-cert-expiry",
                "warning days_left <= 30 at once; on_error critical",
                "Post-Deployment Tasks, Security validation: \"Verify SSL/TLS certificates valid\"",
            ),
            (
                "nova-streaming-cpu",
                "warning cpu_ratio >= 0.6 for 5m",
                "Step 1.1: \"Expected: CPU < 60%\"",
            ),
            (
                "nova-streaming-memory",
                "warning memory_ratio >= 0.7 for 5m",
                "Step 1.1: \"Expected: ... Memory < 70%\"",
            ),
            (
                "nova-streaming-smoke",
                "warning status >= 1 at once; critical status >= 2 at once",
                "Step 2.4: Run Extended Tests Against Green",
            ),
            (
                "nova-streaming-p95",
                "expr histogram_quantile(0.95, sum by (le) (rate(nova_http_request_duration_seconds_bucket[5m]))); warning >= 0.2 at once",
                "Monitoring and Validation, API Response Times: `histogram_quantile(0.95, nova_http_request_duration_seconds)`, \"Threshold: < 200ms\"",
            ),
            (
                "nova-streaming-error-rate",
                "expr sum(rate(nova_http_errors_total[5m])) / sum(rate(nova_http_requests_total[5m])); warning >= 0.01 at once; critical > 0.05 at once",
                "Error Rate: `rate(nova_http_errors_total[5m])`; escalation: MEDIUM \"Errors 1-5%\", HIGH \"Errors > 5%\"",
            ),
            (
                "nova-streaming-websocket-drop",
                "expr sum(nova_streaming_websocket_connections) / sum(nova_streaming_websocket_connections offset 5m); warning < 0.8 at once; critical < 0.5 at once",
                "WebSocket Connections: `nova_streaming_websocket_connections`, \"Stable (no sudden drops)\"; HIGH \"WebSocket failures\" (the numbers: the rule set's own)",
            ),
            (
                "nova-streaming-db-query-p95",
                "expr histogram_quantile(0.95, sum by (le) (rate(pg_query_duration_seconds_bucket[5m]))); warning >= 0.1 at once",
                "Database Query Latency: `histogram_quantile(0.95, pg_query_duration_seconds)`, \"Threshold: < 100ms\"",
            ),
        ],
    ),
    (
        "ai-saas",
        &[
            (
                "ai-saas-api-down",
                "critical up < 1 x3; hooks ai-saas-gateway-logs, ai-saas-rollback-gateway after 30s",
                "Rollback Procedures: \"Automatic Rollback (If Health Checks Fail)\"; Manual \
                 Rollback",
            ),
            (
                "ai-saas-api-slow",
                "warning duration_seconds >= 0.5 x3",
                "Post-Deployment Verification, Step 4: \"P95 < 500ms\"",
            ),
            (
                "ai-saas-db-down",
                "critical up < 1 x3",
                "Step 3 smoke test: \"Database connectivity\"",
            ),
            (
                "ai-saas-redis-down",
                "critical up < 1 x3",
                "Step 3 smoke test: \"Redis connectivity\"",
            ),
            (
                "ai-saas-redis-memory",
                "warning memory_ratio >= 0.8 at once",
                "Post-Deployment Verification, Step 4: \"Redis memory ... Should be < 80% of max\"",
            ),
            (
                "ai-saas-memory",
                "warning memory_ratio > 0.9 for 5m",
                "Troubleshooting, Memory Issues (no number given: the rule set's own)",
            ),
            (
                "ai-saas-smoke",
                "warning status >= 1 at once; critical status >= 2 at once",
                "Post-Deployment Verification, Step 3: `npm run test:smoke`",
            ),
            (
                "ai-saas-error-rate",
                "expr (sum(rate(http_requests_total{status=~\"5..\"}[5m])) or vector(0)) / sum(rate(http_requests_total[5m])); warning >= 0.01 at once",
                "Post-Deployment Verification, Step 4: \"Check error rates # Should be < 1% (99.5% uptime)\"",
            ),
            (
                "ai-saas-p95",
                "expr histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))); warning >= 0.5 at once",
                "Step 4: \"Check latency # P95 < 500ms\"",
            ),
            (
                "ai-saas-p99",
                "expr histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))); warning >= 1 at once",
                "Step 4: \"Check latency # ... P99 < 1000ms\"",
            ),
            (
                "ai-saas-db-connections-rising",
                "expr deriv(connections{check=\"ai-saas-db\"}[15m]); warning > 0 for 15m",
                "Step 4: \"Check database connections # Should be stable, not increasing\"",
            ),
        ],
    ),
    (
        "novacron",
        &[
            (
                "novacron-health-failing",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue after \
                 30s, novacron-scale-down-green after 30s",
                "Immediate rollback triggers: \"Health checks failing (> 3 consecutive \
                 failures)\"",
            ),
            (
                "novacron-components-unhealthy",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue after \
                 30s, novacron-scale-down-green after 30s",
                "Immediate rollback triggers: \"DWCP protocol failures\", \"Database connection \
                 issues\"",
            ),
            (
                "novacron-health-db-failing",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue, \
                 novacron-scale-down-green",
                "Immediate rollback triggers: \"Database connection issues\"",
            ),
            (
                "novacron-health-cache-failing",
                "critical up < 1 x4",
                "Incident Response, Step 2: \"Check cache connectivity\" (no rollback trigger)",
            ),
            (
                "novacron-cache-component-unhealthy",
                "critical up < 1 x4",
                "Detailed health check, components.cache (no rollback trigger)",
            ),
            (
                "novacron-api-info-failing",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue, \
                 novacron-scale-down-green",
                "Immediate rollback triggers: \"Health checks failing\"; scripts/health-check.sh \
                 \"API info\"",
            ),
            (
                "novacron-dwcp-failing",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue, \
                 novacron-scale-down-green",
                "Immediate rollback triggers: \"DWCP protocol failures\"",
            ),
            (
                "novacron-metrics-down",
                "warning up < 1 x4",
                "Step 5: \"Metrics endpoint\"",
            ),
            (
                "novacron-slow",
                "warning duration_seconds > 1 x4",
                "Troubleshooting, High Latency: \"Response time > 1 second\"; P2",
            ),
            (
                "novacron-db-down",
                "critical up < 1 x4; hooks novacron-green-logs, novacron-switch-to-blue, \
                 novacron-scale-down-green",
                "Immediate rollback triggers: \"Database connection issues\"",
            ),
            (
                "novacron-redis-down",
                "critical up < 1 x4",
                "Health Check Procedures, Cache health (no rollback trigger)",
            ),
            (
                "novacron-cert-expiry",
                "warning days_left < 30 at once; on_error critical",
                "Maintenance Procedures, Certificate Renewal (cert-manager)",
            ),
            (
                "novacron-memory",
                "warning memory_ratio > 0.88 for 5m",
                "Troubleshooting, High Memory Usage: \"1800Mi/2048Mi\"",
            ),
            (
                "novacron-smoke",
                "warning status >= 1 at once; critical status >= 2 at once",
                "Step 3: ./scripts/smoke-tests.sh",
            ),
            (
                "novacron-error-rate",
                "expr (sum(rate(http_requests_total{code=~\"5..\"}[5m])) or vector(0)) / sum(rate(http_requests_total[5m])); critical > 0.01 at once; hooks novacron-green-logs, novacron-switch-to-blue, novacron-scale-down-green",
                "Immediate rollback triggers: \"Error rate > 1% of requests\"",
            ),
            (
                "novacron-5xx-per-minute",
                "expr sum(increase(http_requests_total{code=~\"5..\"}[1m])) or (0 * sum(increase(http_requests_total[1m]))); critical > 10 at once; hooks novacron-green-logs, novacron-switch-to-blue, novacron-scale-down-green",
                "Immediate rollback triggers: \"5xx errors > 10 per minute\"",
            ),
            (
                "novacron-latency-vs-baseline",
                "expr histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))) / histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[1h] offset 5m))); critical > 2 at once; hooks novacron-green-logs, novacron-switch-to-blue, novacron-scale-down-green",
                "Immediate rollback triggers: \"Response time > 2x baseline\" (baseline: the hour before)",
            ),
            (
                "novacron-high-response-time",
                "expr histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m]))); warning > 1 at once",
                "Troubleshooting, High Latency: \"Response time > 1 second\", \"Prometheus alert: HighResponseTime\"; P2",
            ),
        ],
    ),
];

/// A rule's levels and hooks in the ledger's words.
fn levels_of(config: &warden::config::Config, rule: &warden::config::RuleConfig) -> String {
    use warden::config::{format_duration, LevelConfig, MissingPolicy, Trigger};
    let level = |name: &str, l: &LevelConfig| {
        let trigger = match l.trigger {
            Trigger::Immediate => "at once".to_string(),
            Trigger::For(d) => format!("for {}", format_duration(d)),
            Trigger::Consecutive(n) => format!("x{n}"),
            Trigger::OutOf { count, window } => format!("{count} of {window}"),
        };
        let clear = l
            .clear
            .map(|c| format!(", clear {} {}", c.op.symbol(), c.threshold))
            .unwrap_or_default();
        // An expression is named once, ahead of the levels; a value at each.
        let value = if rule.expr.is_some() {
            String::new()
        } else {
            format!("{} ", rule.value)
        };
        format!(
            "{name} {value}{} {} {trigger}{clear}",
            l.when.op.symbol(),
            l.when.threshold
        )
    };
    let mut parts = Vec::new();
    if rule.expr.is_some() {
        parts.push(format!("expr {}", rule.value));
    }
    if let Some(w) = &rule.warning {
        parts.push(level("warning", w));
    }
    if let Some(c) = &rule.critical {
        parts.push(level("critical", c));
    }
    match rule.on_error {
        MissingPolicy::Unknown => {}
        MissingPolicy::Warning => parts.push("on_error warning".into()),
        MissingPolicy::Critical => parts.push("on_error critical".into()),
    }
    let hooks: Vec<String> = config
        .alerting
        .hooks_of(&rule.name)
        .iter()
        .map(|h| {
            let on = match h.on {
                warden::alert::Severity::Critical => String::new(),
                warden::alert::Severity::Warning => " on warning".into(),
            };
            let after = if h.after.is_zero() {
                String::new()
            } else {
                format!(" after {}", format_duration(h.after))
            };
            format!("{}{on}{after}", h.hook)
        })
        .collect();
    if !hooks.is_empty() {
        parts.push(format!("hooks {}", hooks.join(", ")));
    }
    parts.join("; ")
}

#[test]
fn every_runbook_rule_has_the_level_its_runbook_line_gives() {
    for (system, ledger) in RUNBOOK_LEVELS {
        let path = example(system);
        let config = warden::config::load_with_env(&path, &|_| None)
            .unwrap_or_else(|e| panic!("{system}: {e}"));
        let mut wrong = Vec::new();
        for rule in &config.rules {
            let got = levels_of(&config, rule);
            match ledger.iter().find(|(name, _, _)| *name == rule.name) {
                None => wrong.push(format!("{}: not in the ledger: {got}", rule.name)),
                Some((_, want, line)) if got != *want => wrong.push(format!(
                    "{}: {got}\n    the runbook ({line}) gives: {want}",
                    rule.name
                )),
                Some(_) => {}
            }
        }
        for (name, _, _) in ledger {
            if !config.rules.iter().any(|r| r.name == *name) {
                wrong.push(format!("{name}: in the ledger, not in the example"));
            }
        }
        assert!(wrong.is_empty(), "{system}:\n{}", wrong.join("\n"));
    }
}

/// Issue 13: where a runbook calls a failed health check critical, the example re-checks a
/// failed probe at its `retry_interval`, so the page comes seconds after the fault, not
/// `count` intervals later; and only there (a database gauge keeps its own pace).
#[test]
fn critical_health_checks_are_rechecked_until_their_count_confirms() {
    /// (check, re-check seconds, attempts that confirm)
    type Rechecked<'a> = &'a [(&'a str, u64, u32)];
    let rechecked: &[(&str, Rechecked)] = &[
        ("nuvie", &[("nuvie-api-health", 2, 3)]),
        ("redcube", &[("redcube-content", 2, 3)]),
        ("nova-streaming", &[("nova-streaming-api-health", 5, 3)]),
        ("ai-saas", &[("ai-saas-api-health", 5, 3)]),
        (
            "novacron",
            &[
                ("novacron-health", 2, 4),
                ("novacron-health-detailed", 2, 4),
            ],
        ),
    ];
    for (system, checks) in rechecked {
        let config = warden::config::load_with_env(&example(system), &|_| None)
            .unwrap_or_else(|e| panic!("{system}: {e}"));
        for check in &config.checks {
            let want = checks.iter().find(|(name, _, _)| *name == check.name);
            let got = check.retry.map(|r| (r.interval.as_secs(), r.attempts));
            assert_eq!(
                got,
                want.map(|(_, secs, attempts)| (*secs, *attempts)),
                "{system}: {}",
                check.name
            );
        }
    }
}

#[test]
fn nuvie_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let mut api = imitation::nuvie_api();
    let ai = imitation::nuvie_ai();
    let mut redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    // The daemon reaches Postgres through a gate that can drop exactly N probes' connections.
    let pg_gate = Gate::start(pg.port());
    let db_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg_gate.port());
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let cert_address = format!("localhost:{}", tls.port());
    let smoke = Smoke::new();
    let (metrics, traffic) = imitation::metrics(&imitation::NUVIE_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let paging = Paging::pagerduty("NUVIE");
    let d = paging.start(
        &example("nuvie"),
        &[
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
            ("NUVIE_API_TLS_ADDRESS", &cert_address),
            ("NUVIE_AI_TLS_ADDRESS", &cert_address),
            ("NUVIE_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NUVIE_INTERVAL", "300ms"),
            ("NUVIE_RETRY_INTERVAL", "100ms"),
            ("NUVIE_READY_INTERVAL", "300ms"),
            ("NUVIE_TIMEOUT", "250ms"),
            ("NUVIE_REDIS_CRITICAL_FOR", "1s"),
            ("NUVIE_AI_CRITICAL_FOR", "1s"),
            ("NUVIE_SLOW_FOR", "1s"),
            ("NUVIE_ROLLBACK_AFTER", "1s"),
        ],
    );
    all_rules_ok(&d, "nuvie");

    // P1 "API down" pages the on-call engineer through PagerDuty and posts to Slack #infra;
    // the backend's logs are kept at once, the rollout undo once it has lasted
    // NUVIE_ROLLBACK_AFTER (the P1 response time, 15 min; here 1 s).
    paging.pages_and_rolls_back_dry(
        &d,
        "nuvie-api-down",
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
        || api.set("/health", 503, r#"{"status":"unhealthy"}"#),
        || api.restore(),
    );
    all_rules_ok(&d, "nuvie");

    smoke_and_host(&d, &smoke, "nuvie");

    // Monitoring & Alerts over the scrape of /metrics (100 requests/s, 20 ms each, when
    // healthy; ranges of 2 s, `for`s of 1 s). 3% of answers 5xx: the Key Metrics' > 1% warns,
    // and HighErrorRate's 3 a second (> 0.05/s) is critical on the 5xx series; 10%: > 5%
    // critical. p95 about 1 s (all in the 0.75..1 bucket): > 500 ms warns, SlowResponseTime's
    // > 2 s does not; about 4.9 s: > 2000 ms critical and SlowResponseTime's warning.
    metric_rules_reach_their_levels(
        &d,
        "nuvie",
        (&traffic, &imitation::NUVIE_METRICS),
        &[
            (
                "3% of answers 5xx",
                &|t| t.set_error_share(0.03),
                &[
                    ("nuvie-error-rate", "warning", &[]),
                    ("nuvie-high-error-rate", "critical", &[("status", "500")]),
                ],
            ),
            (
                "10% of answers 5xx",
                &|t| t.set_error_share(0.1),
                &[("nuvie-error-rate", "critical", &[])],
            ),
            (
                "answers take 0.9 s",
                &|t| t.set_latency("http_request_duration_seconds", 0.9),
                &[("nuvie-p95", "warning", &[])],
            ),
            (
                "answers take 3 s",
                &|t| t.set_latency("http_request_duration_seconds", 3.0),
                &[
                    ("nuvie-p95", "critical", &[]),
                    ("nuvie-slow-response-time", "warning", &[]),
                ],
            ),
        ],
    );
    // "Circuit breaker open | Any | >5min": a warning at the first scrape that sees it open,
    // critical once it has stayed open NUVIE_BREAKER_FOR (here 1 s), not before.
    traffic.set_gauge("circuit_breaker_open", 1.0);
    let warned = series_reaches(&d, "nuvie-circuit-breaker", "warning");
    assert_eq!(warned["series"]["breaker"], "ai-service", "{warned:#}");
    let critical = series_reaches(&d, "nuvie-circuit-breaker", "critical");
    let after = millis(&critical["since"]) - millis(&warned["since"]);
    assert!(
        after >= 1000,
        "critical {after} ms after the first scrape that saw the breaker open"
    );
    traffic.restore(&imitation::NUVIE_METRICS);
    all_rules_ok(&d, "nuvie");

    // Incident Response, P1 "API down": /health answers 503, three times in a row (the
    // probes' failureThreshold), and then for good.
    enters_on_the_nth_failure(
        &d,
        &Route(&api, "/health"),
        ("nuvie-api-down", "critical"),
        3,
    );
    all_rules_ok(&d, "nuvie");
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

    // P2 partial failure: not ready 3 times in a row (the readiness probe's failureThreshold)
    // warns, twice does not ...
    enters_on_the_nth_failure(
        &d,
        &Route(&api, "/ready"),
        ("nuvie-api-not-ready", "warning"),
        3,
    );
    all_rules_ok(&d, "nuvie");
    // ... and /health still fine is no P1.
    api.set(
        "/ready",
        503,
        r#"{"status":"not_ready","checks":{"database":"down","redis":"ok"}}"#,
    );
    reaches(&d, "nuvie-api-not-ready", "warning");
    assert_eq!(d.rule("nuvie-api-down")["state"], "ok");
    api.restore();
    all_rules_ok(&d, "nuvie");

    // "Circuit breaker open | Any | >5min": the AI service is up but its model is not loaded.
    // A warning at its first failed probe ("Any"), critical only once it has lasted
    // NUVIE_AI_CRITICAL_FOR (5m in production), not before.
    ai.set(
        "/health",
        200,
        r#"{"status":"healthy","model_loaded":false,"version":"..."}"#,
    );
    let warned = reaches(&d, "nuvie-ai-down", "warning");
    assert_eq!(error_kind(&d, "nuvie-ai-health"), "assertion");
    let down_since = millis(&d.check("nuvie-ai-health")["since"]);
    let lag = millis(&warned["since"]) - down_since;
    assert!(
        (0..300).contains(&lag),
        "warning {lag} ms after the first failure, not at it"
    );
    let critical = reaches(&d, "nuvie-ai-down", "critical");
    let after = millis(&critical["since"]) - down_since;
    assert!(
        after >= 1000,
        "critical {after} ms after the first failure, before its 1s"
    );
    ai.restore();
    all_rules_ok(&d, "nuvie");

    // "Redis connection | Any failure | >1min": warning at the first failure, critical after
    // NUVIE_REDIS_CRITICAL_FOR.
    redis.kill();
    let warned = reaches(&d, "nuvie-redis-down", "warning");
    let down_since = millis(&d.check("nuvie-redis")["since"]);
    // The rule's clock reads `now` when it evaluates; the check's `since` is the probe's own
    // time, a moment earlier. Both are the first failure.
    let lag = millis(&warned["since"]) - down_since;
    assert!(
        (0..300).contains(&lag),
        "warning {lag} ms after the first failure"
    );
    let critical = reaches(&d, "nuvie-redis-down", "critical");
    let after = millis(&critical["since"]) - down_since;
    assert!(
        after >= 1000,
        "critical {after} ms after the first failure, before its 1s"
    );
    redis.restart();
    all_rules_ok(&d, "nuvie");

    // The database fails 3 probes in a row (the count the rule set gives it, as the health
    // probes' failureThreshold), not 2 ...
    enters_on_the_nth_failure(&d, &pg_gate, ("nuvie-db-down", "critical"), 3);
    all_rules_ok(&d, "nuvie");
    // ... or hangs (every backend stopped), the API is down. (Through the gate the probe's
    // error is the relay's; probes.rs holds a hung server's error kind.)
    pg.pause();
    reaches(&d, "nuvie-db-down", "critical");
    pg.resume();
    all_rules_ok(&d, "nuvie");

    // "SSL certificates valid (>30 days)": 31 days left (30.99) is valid, 30 (29.99) is not:
    // a warning ...
    tls.renew(&pki.leaf("localhost", 31 * DAY));
    let c = stays_ok_for_probes(&d, "nuvie-api-cert", "nuvie-api-cert-expiry", 3);
    let days = c["values"]["days_left"].as_f64().expect("days_left");
    assert!((30.0..31.0).contains(&days), "31 days left, got {days}");
    tls.renew(&pki.leaf("localhost", 30 * DAY));
    reaches(&d, "nuvie-api-cert-expiry", "warning");
    tls.renew(&pki.leaf("localhost", 90 * DAY));
    all_rules_ok(&d, "nuvie");
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

/// Runs `sql` on a fresh connection to `url` (a database other than the harness's default).
pub(crate) async fn execute_at(url: &str, sql: &str) {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .unwrap_or_else(|_| panic!("connect to {url}: no answer"))
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let driver = tokio::spawn(connection);
    tokio::time::timeout(Duration::from_secs(10), client.batch_execute(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: no answer"))
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    drop(client);
    let _ = driver.await;
}

/// Holds `n` real client connections to `pg` until the vector is dropped.
fn hold_connections(
    rt: &tokio::runtime::Runtime,
    pg: &PostgresServer,
    n: usize,
) -> Vec<tokio_postgres::Client> {
    (0..n).map(|_| rt.block_on(pg.connect())).collect()
}

/// `used_memory / maxmemory` as Redis reports it.
fn redis_memory_ratio(con: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(con)
        .expect("INFO memory");
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in INFO memory:\n{info}"))
    };
    field("used_memory") / field("maxmemory")
}

/// Writes 256 KiB values into Redis until `used_memory / maxmemory` is at least `ratio` (the
/// way a cache fills up), bounded to 1000 writes. Returns the ratio reached.
fn fill_redis(url: &str, ratio: f64) -> f64 {
    let client = redis::Client::open(url).expect("redis url");
    let mut con = client.get_connection().expect("connect to redis");
    let value = vec![b'x'; 256 * 1024];
    for i in 0..1000 {
        let now = redis_memory_ratio(&mut con);
        if now >= ratio {
            return now;
        }
        redis::cmd("SET")
            .arg(format!("fill:{i}"))
            .arg(&value)
            .query::<()>(&mut con)
            .unwrap_or_else(|e| panic!("SET fill:{i} at memory ratio {now:.2}: {e}"));
    }
    panic!("redis memory did not reach {ratio} after 1000 writes");
}

fn flush_redis(url: &str) {
    let client = redis::Client::open(url).expect("redis url");
    let mut con = client.get_connection().expect("connect to redis");
    redis::cmd("FLUSHALL")
        .query::<()>(&mut con)
        .expect("FLUSHALL");
}

#[test]
fn redcube_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let api = imitation::redcube();
    let pg = rt.block_on(PostgresServer::start_with(20));
    // The two databases of the runbook: `postgres` holds reputation_events, `redcube_users`
    // the users and the sync views (here a plain flag stands in for the dblink comparison).
    rt.block_on(pg.execute("CREATE DATABASE redcube_users;"));
    rt.block_on(pg.execute(
        "CREATE TABLE reputation_events (id serial PRIMARY KEY,
                                         created_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO reputation_events DEFAULT VALUES;",
    ));
    let users_url = format!("postgres://postgres@127.0.0.1:{}/redcube_users", pg.port());
    rt.block_on(execute_at(
        &users_url,
        "CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL, synced bool NOT NULL);
         CREATE VIEW v_user_sync_missing AS SELECT id, email FROM users WHERE NOT synced;
         INSERT INTO users VALUES (1, 'deploy-test@example.com', true);",
    ));
    // The `postgres` database through a gate that can drop exactly N probes' connections.
    let pg_gate = Gate::start(pg.port());
    let db_url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg_gate.port());
    let smoke = Smoke::new();
    let paging = Paging::webhook("REDCUBE");
    let (metrics, traffic) = imitation::metrics(&imitation::REDCUBE_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("redcube"),
        &[
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
            ("REDCUBE_CPU_CRITICAL", "1.01"),
            ("REDCUBE_MEMORY_WARNING", "1.01"),
            ("REDCUBE_MEMORY_CRITICAL", "1.01"),
            ("REDCUBE_API_URL", &api.base_url()),
            ("REDCUBE_DATABASE_URL", &db_url),
            ("REDCUBE_USERS_DATABASE_URL", &users_url),
            ("REDCUBE_INTERVAL", "300ms"),
            ("REDCUBE_ROLLBACK_AFTER", "0s"),
            ("REDCUBE_RETRY_INTERVAL", "100ms"),
            ("REDCUBE_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "redcube");

    // P0 "Service completely down" ("Rollback immediately") pages on-call and posts to Slack;
    // the content service's logs, then ./scripts/rollback-deployment.sh content-service.
    let path = "/api/content/interview-intel/experiences";
    paging.pages_and_rolls_back_dry(
        &d,
        "redcube-content-down",
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
        || api.set(path, 503, r#"{"error":"service unavailable"}"#),
        || api.restore(),
    );
    all_rules_ok(&d, "redcube");

    smoke_and_host(&d, &smoke, "redcube");

    // Key Metrics, When to Rollback and the P1/P2 error bands, over the scrape of /metrics
    // (100 requests/s, 20 ms each, when healthy; ranges of 2 s): 7% 5xx is P2's 5-10%, a
    // warning; 15% is P1's > 10%, critical. p95 about 4.9 s (the 2.5..5 bucket) is past the
    // 30-minute mark's 2 s; about 7.4 s is the rollback trigger's > 5 s.
    metric_rules_reach_their_levels(
        &d,
        "redcube",
        (&traffic, &imitation::REDCUBE_METRICS),
        &[
            (
                "7% of answers 5xx",
                &|t| t.set_error_share(0.07),
                &[("redcube-error-rate", "warning", &[])],
            ),
            (
                "15% of answers 5xx",
                &|t| t.set_error_share(0.15),
                &[("redcube-error-rate", "critical", &[])],
            ),
            (
                "answers take 3 s",
                &|t| t.set_latency("http_request_duration_seconds", 3.0),
                &[("redcube-p95", "warning", &[])],
            ),
            (
                "answers take 7 s",
                &|t| t.set_latency("http_request_duration_seconds", 7.0),
                &[("redcube-p95", "critical", &[])],
            ),
        ],
    );

    // P0 "Service completely down": the health check does not return HTTP 200, confirmed
    // over 3 probes.
    enters_on_the_nth_failure(
        &d,
        &Route(&api, path),
        ("redcube-content-down", "critical"),
        3,
    );
    all_rules_ok(&d, "redcube");
    api.set(path, 503, r#"{"error":"service unavailable"}"#);
    reaches(&d, "redcube-content-down", "critical");
    assert_eq!(d.check("redcube-content")["values"]["status_code"], 503.0);
    api.restore();
    all_rules_ok(&d, "redcube");

    // ... or does not answer within the timeout.
    api.set_delay(path, Duration::from_secs(1));
    reaches(&d, "redcube-content-down", "critical");
    assert_eq!(error_kind(&d, "redcube-content"), "timeout");
    api.restore();
    all_rules_ok(&d, "redcube");

    // "User Sync Failures > 0": two users registered but not synced.
    rt.block_on(execute_at(
        &users_url,
        "INSERT INTO users VALUES (2, 'a@example.com', false), (3, 'b@example.com', false);",
    ));
    let r = reaches(&d, "redcube-user-sync", "critical");
    assert_eq!(r["value"], 2.0, "{r:#}");
    rt.block_on(execute_at(&users_url, "UPDATE users SET synced = true;"));
    all_rules_ok(&d, "redcube");

    // "Reputation system active": no event in the last hour.
    rt.block_on(
        pg.execute("UPDATE reputation_events SET created_at = now() - interval '2 hours';"),
    );
    reaches(&d, "redcube-reputation-inactive", "warning");
    rt.block_on(pg.execute("INSERT INTO reputation_events DEFAULT VALUES;"));
    all_rules_ok(&d, "redcube");

    // "Database Connections > 80% of max": 16 held of 20, plus the probes' own.
    let held = hold_connections(&rt, &pg, 16);
    let r = reaches(&d, "redcube-db-connections", "warning");
    assert!(r["value"].as_f64().expect("ratio") > 0.8, "{r:#}");
    drop(held);
    all_rules_ok(&d, "redcube");

    // "Database Connection Lost": 3 failed probes in a row page, 2 do not ...
    enters_on_the_nth_failure(&d, &pg_gate, ("redcube-db-down", "critical"), 3);
    all_rules_ok(&d, "redcube");
    // ... and the server hangs; both databases' probes fail.
    pg.pause();
    reaches(&d, "redcube-db-down", "critical");
    reaches(&d, "redcube-users-db-down", "critical");
    assert_eq!(error_kind(&d, "redcube-users-db"), "timeout");
    pg.resume();
    all_rules_ok(&d, "redcube");
}

#[test]
fn nova_streaming_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let token = "nova-test-jwt";
    let api = imitation::nova_streaming(token);
    let mut redis = RedisServer::with().maxmemory(16 * 1024 * 1024).start();
    let pg = rt.block_on(PostgresServer::start_with(20));
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let smoke = Smoke::new();
    // The daemon reaches Postgres and Redis through gates that can drop exactly N probes.
    let pg_gate = Gate::start(pg.port());
    let redis_gate = Gate::start(redis.port());
    let paging = Paging::webhook("NOVA_STREAMING");
    let (metrics, traffic) = imitation::metrics(&imitation::NOVA_STREAMING_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("nova-streaming"),
        &[
            ("NOVA_STREAMING_METRICS_URL", &metrics_url),
            ("NOVA_STREAMING_METRICS_INTERVAL", "500ms"),
            ("NOVA_STREAMING_METRICS_WINDOW", "3s"),
            ("NOVA_STREAMING_WS_DROP_WINDOW", "3s"),
            ("NOVA_STREAMING_SMOKE_TEST", smoke.script()),
            ("NOVA_STREAMING_SMOKE_INTERVAL", "300ms"),
            ("NOVA_STREAMING_SMOKE_TIMEOUT", "250ms"),
            ("NOVA_STREAMING_SYSTEM_INTERVAL", "300ms"),
            ("NOVA_STREAMING_SYSTEM_TIMEOUT", "250ms"),
            ("NOVA_STREAMING_CPU_WARNING", "1.01"),
            ("NOVA_STREAMING_CPU_CRITICAL", "1.01"),
            ("NOVA_STREAMING_MEMORY_WARNING", "1.01"),
            ("NOVA_STREAMING_MEMORY_CRITICAL", "1.01"),
            ("NOVA_STREAMING_API_URL", &api.base_url()),
            ("NOVA_STREAMING_JWT_TOKEN", token),
            (
                "NOVA_STREAMING_DATABASE_URL",
                &format!("postgres://postgres@127.0.0.1:{}/postgres", pg_gate.port()),
            ),
            (
                "NOVA_STREAMING_REDIS_URL",
                &format!("redis://127.0.0.1:{}/", redis_gate.port()),
            ),
            (
                "NOVA_STREAMING_TLS_ADDRESS",
                &format!("localhost:{}", tls.port()),
            ),
            ("NOVA_STREAMING_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NOVA_STREAMING_INTERVAL", "500ms"),
            ("NOVA_STREAMING_ROLLBACK_AFTER", "0s"),
            ("NOVA_STREAMING_RETRY_INTERVAL", "150ms"),
            ("NOVA_STREAMING_TIMEOUT", "450ms"),
        ],
    );
    all_rules_ok(&d, "nova-streaming");

    // CRITICAL "API down" ("Immediate rollback") pages on-call and posts to #nova-incident:
    // the war room's logs of green, then Option 1, the ingress back to blue and blue scaled up.
    paging.pages_and_rolls_back_dry(
        &d,
        "nova-streaming-api-down",
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
        || api.set("/health", 200, r#"{"status": "degraded"}"#),
        || api.restore(),
    );
    all_rules_ok(&d, "nova-streaming");

    smoke_and_host(&d, &smoke, "nova-streaming");

    // The Real-Time Monitoring Dashboard over the scrape of /metrics (100 requests/s, 20 ms
    // each, queries 20 ms, 1200 WebSocket connections, when healthy; ranges of 3 s): 2% errors
    // is MEDIUM (1-5%), 10% HIGH (> 5%); answers of 0.3 s pass the 200 ms, queries of 0.15 s
    // the 100 ms; 800 connections of 1200 three seconds ago is a drop of a third (a warning),
    // 500 more than half (HIGH's WebSocket failures).
    metric_rules_reach_their_levels(
        &d,
        "nova-streaming",
        (&traffic, &imitation::NOVA_STREAMING_METRICS),
        &[
            (
                "2% of requests fail",
                &|t| t.set_error_share(0.02),
                &[("nova-streaming-error-rate", "warning", &[])],
            ),
            (
                "10% of requests fail",
                &|t| t.set_error_share(0.1),
                &[("nova-streaming-error-rate", "critical", &[])],
            ),
            (
                "answers take 0.3 s",
                &|t| t.set_latency("nova_http_request_duration_seconds", 0.3),
                &[("nova-streaming-p95", "warning", &[])],
            ),
            (
                "queries take 0.15 s",
                &|t| t.set_latency("pg_query_duration_seconds", 0.15),
                &[("nova-streaming-db-query-p95", "warning", &[])],
            ),
            (
                "800 of 1200 WebSocket connections stay",
                &|t| t.set_gauge("nova_streaming_websocket_connections", 800.0),
                &[("nova-streaming-websocket-drop", "warning", &[])],
            ),
            (
                "500 of 1200 WebSocket connections stay",
                &|t| t.set_gauge("nova_streaming_websocket_connections", 500.0),
                &[("nova-streaming-websocket-drop", "critical", &[])],
            ),
        ],
    );
    // The token reached the API (it answers 401 without it), and total_count is read.
    let streams = d.check("nova-streaming-streams-active");
    assert_eq!(streams["values"]["active_streams"], 3.0, "{streams:#}");

    // CRITICAL "API down", confirmed over 3 probes: 2 failures in a row are no rollback, the
    // 3rd is; so for the metrics endpoint and the streams API (MEDIUM, warnings) ...
    for (path, rule, state) in [
        ("/health", "nova-streaming-api-down", "critical"),
        ("/metrics", "nova-streaming-api-metrics-down", "warning"),
        (
            "/api/v1/streams/active",
            "nova-streaming-streams-failing",
            "warning",
        ),
    ] {
        enters_on_the_nth_failure(&d, &Route(&api, path), (rule, state), 3);
        all_rules_ok(&d, "nova-streaming");
    }
    // ... and for the database and the cache (critical).
    enters_on_the_nth_failure(&d, &pg_gate, ("nova-streaming-db-down", "critical"), 3);
    all_rules_ok(&d, "nova-streaming");
    enters_on_the_nth_failure(
        &d,
        &redis_gate,
        ("nova-streaming-redis-down", "critical"),
        3,
    );
    all_rules_ok(&d, "nova-streaming");

    // CRITICAL "API down": /health answers, but not healthy.
    api.set("/health", 200, r#"{"status": "degraded"}"#);
    reaches(&d, "nova-streaming-api-down", "critical");
    assert_eq!(error_kind(&d, "nova-streaming-api-health"), "assertion");
    api.restore();
    all_rules_ok(&d, "nova-streaming");

    // MEDIUM "performance degradation": healthy, but slower than the 200 ms p95.
    api.set_delay("/health", Duration::from_millis(300));
    let r = reaches(&d, "nova-streaming-api-slow", "warning");
    assert!(r["value"].as_f64().expect("seconds") > 0.2, "{r:#}");
    assert_eq!(d.rule("nova-streaming-api-down")["state"], "ok");
    api.restore();
    all_rules_ok(&d, "nova-streaming");

    // The metrics endpoint and the streams API fail while /health is fine.
    api.set("/metrics", 503, "unavailable");
    api.set("/api/v1/streams/active", 500, r#"{"error":"internal"}"#);
    reaches(&d, "nova-streaming-api-metrics-down", "warning");
    reaches(&d, "nova-streaming-streams-failing", "warning");
    api.restore();
    all_rules_ok(&d, "nova-streaming");

    // "Cache capacity: > 50% free space": fill Redis past half of maxmemory.
    let reached = fill_redis(&redis.url(), 0.6);
    let r = reaches(&d, "nova-streaming-cache-capacity", "warning");
    assert!(
        r["value"].as_f64().expect("ratio") > 0.5,
        "filled to {reached}: {r:#}"
    );
    flush_redis(&redis.url());
    all_rules_ok(&d, "nova-streaming");

    // "Cache health": Redis killed.
    redis.kill();
    reaches(&d, "nova-streaming-redis-down", "critical");
    assert_eq!(error_kind(&d, "nova-streaming-redis"), "connect");
    redis.restart();
    all_rules_ok(&d, "nova-streaming");

    // "Active connections < max_connections * 0.7": 12 held of 20 plus the probe's own (0.65)
    // is as expected; one more (0.7) is not: a warning.
    let mut held = hold_connections(&rt, &pg, 12);
    let c = stays_ok_for_probes(&d, "nova-streaming-db", "nova-streaming-db-connections", 3);
    assert_eq!(c["values"]["connections"], 13.0, "{c:#}");
    held.extend(hold_connections(&rt, &pg, 1));
    let r = reaches(&d, "nova-streaming-db-connections", "warning");
    assert_eq!(r["value"].as_f64().expect("ratio"), 0.7, "{r:#}");
    drop(held);
    all_rules_ok(&d, "nova-streaming");

    // "Database health": the database hangs.
    pg.pause();
    reaches(&d, "nova-streaming-db-down", "critical");
    pg.resume();
    all_rules_ok(&d, "nova-streaming");

    // "Verify SSL/TLS certificates valid": 10 days left warns.
    tls.renew(&pki.leaf("localhost", 10 * DAY));
    reaches(&d, "nova-streaming-api-cert-expiry", "warning");
    tls.renew(&pki.leaf("localhost", 90 * DAY));
    all_rules_ok(&d, "nova-streaming");
}

#[test]
fn ai_saas_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let mut api = imitation::ai_saas();
    let mut redis = RedisServer::with().maxmemory(16 * 1024 * 1024).start();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute("CREATE DATABASE ai_saas_prod;"));
    // The daemon reaches Postgres and Redis through gates that can drop exactly N probes.
    let pg_gate = Gate::start(pg.port());
    let db_url = format!(
        "postgres://postgres@127.0.0.1:{}/ai_saas_prod",
        pg_gate.port()
    );
    let redis_gate = Gate::start(redis.port());
    let redis_url = format!("redis://127.0.0.1:{}/", redis_gate.port());
    let smoke = Smoke::new();
    let paging = Paging::webhook("AI_SAAS");
    let (metrics, traffic) = imitation::metrics(&imitation::AI_SAAS_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("ai-saas"),
        &[
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
            ("AI_SAAS_CPU_WARNING", "1.01"),
            ("AI_SAAS_CPU_CRITICAL", "1.01"),
            ("AI_SAAS_MEMORY_WARNING", "1.01"),
            ("AI_SAAS_MEMORY_CRITICAL", "1.01"),
            ("AI_SAAS_API_URL", &api.base_url()),
            ("AI_SAAS_DATABASE_URL", &db_url),
            ("AI_SAAS_REDIS_URL", &redis_url),
            ("AI_SAAS_INTERVAL", "300ms"),
            ("AI_SAAS_ROLLBACK_AFTER", "0s"),
            ("AI_SAAS_RETRY_INTERVAL", "100ms"),
            ("AI_SAAS_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "ai-saas");

    // "Automatic Rollback (If Health Checks Fail)": on-call is paged, #incidents hears it; the
    // gateway's logs, then `kubectl rollout undo deployment/api-gateway -n ai-saas`.
    paging.pages_and_rolls_back_dry(
        &d,
        "ai-saas-api-down",
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
        || api.set("/health", 503, r#"{"status":"error"}"#),
        || api.restore(),
    );
    all_rules_ok(&d, "ai-saas");

    smoke_and_host(&d, &smoke, "ai-saas");

    // Post-Deployment Verification, Step 4, over the scrape of /metrics (100 requests/s, 20 ms
    // each, when healthy; ranges of 2 s): 2% 5xx is past "< 1%"; answers of 0.6 s put the p95
    // (about 0.74 s) past 500 ms but not the p99 past 1000 ms; answers of 1.5 s both.
    metric_rules_reach_their_levels(
        &d,
        "ai-saas",
        (&traffic, &imitation::AI_SAAS_METRICS),
        &[
            (
                "2% of answers 5xx",
                &|t| t.set_error_share(0.02),
                &[("ai-saas-error-rate", "warning", &[])],
            ),
            (
                "answers take 0.6 s",
                &|t| t.set_latency("http_request_duration_seconds", 0.6),
                &[("ai-saas-p95", "warning", &[])],
            ),
            (
                "answers take 1.5 s",
                &|t| t.set_latency("http_request_duration_seconds", 1.5),
                &[
                    ("ai-saas-p95", "warning", &[]),
                    ("ai-saas-p99", "warning", &[]),
                ],
            ),
        ],
    );
    // "Database connections: should be stable, not increasing": a connection more every 300 ms
    // (a leak) rises for longer than AI_SAAS_DB_TREND_FOR (here 3 s, the window's length, so a
    // one-off step up never reads as a trend) and warns; closed, the count falls and is stable.
    let mut leak = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while d.rule("ai-saas-db-connections-rising")["state"] != "warning" {
        assert!(
            Instant::now() < deadline && leak.len() < 60,
            "{} connections opened one by one did not warn: {:#}",
            leak.len(),
            d.rule("ai-saas-db-connections-rising")
        );
        leak.extend(hold_connections(&rt, &pg, 1));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(leak.len() >= 5, "warned after {} connections", leak.len());
    drop(leak);
    all_rules_ok(&d, "ai-saas");

    // "Automatic Rollback (If Health Checks Fail)": the gateway is gone (connection refused) ...
    api.down();
    reaches(&d, "ai-saas-api-down", "critical");
    assert_eq!(error_kind(&d, "ai-saas-api-health"), "connect");
    api.up();
    all_rules_ok(&d, "ai-saas");

    // ... answers 503 (3 in a row) ...
    enters_on_the_nth_failure(
        &d,
        &Route(&api, "/health"),
        ("ai-saas-api-down", "critical"),
        3,
    );
    all_rules_ok(&d, "ai-saas");
    api.set("/health", 503, r#"{"status":"error"}"#);
    reaches(&d, "ai-saas-api-down", "critical");
    assert_eq!(error_kind(&d, "ai-saas-api-health"), "protocol");
    api.restore();
    all_rules_ok(&d, "ai-saas");

    // ... or hangs past the timeout.
    api.set_delay("/health", Duration::from_secs(1));
    reaches(&d, "ai-saas-api-down", "critical");
    assert_eq!(error_kind(&d, "ai-saas-api-health"), "timeout");
    api.restore();
    all_rules_ok(&d, "ai-saas");

    // "Check Redis memory: Should be < 80% of max".
    let reached = fill_redis(&redis.url(), 0.85);
    let r = reaches(&d, "ai-saas-redis-memory", "warning");
    assert!(
        r["value"].as_f64().expect("ratio") >= 0.8,
        "filled to {reached}: {r:#}"
    );
    flush_redis(&redis.url());
    all_rules_ok(&d, "ai-saas");

    // Smoke tests "Redis connectivity" and "Database connectivity", confirmed over 3 probes
    // like the health check: 2 failures in a row do not page, the 3rd does.
    enters_on_the_nth_failure(&d, &redis_gate, ("ai-saas-redis-down", "critical"), 3);
    all_rules_ok(&d, "ai-saas");
    enters_on_the_nth_failure(&d, &pg_gate, ("ai-saas-db-down", "critical"), 3);
    all_rules_ok(&d, "ai-saas");

    // Smoke test "Redis connectivity": Redis killed.
    redis.kill();
    reaches(&d, "ai-saas-redis-down", "critical");
    redis.restart();
    all_rules_ok(&d, "ai-saas");

    // Smoke test "Database connectivity": the database hangs. (Through the gate the probe's
    // error is the relay's; probes.rs holds a hung server's error kind.)
    pg.pause();
    reaches(&d, "ai-saas-db-down", "critical");
    pg.resume();
    all_rules_ok(&d, "ai-saas");
}

#[test]
fn novacron_runbook_failures_reach_the_runbook_levels() {
    let rt = runtime();
    let mut api = imitation::novacron();
    let mut redis = RedisServer::start();
    let pg = rt.block_on(PostgresServer::start());
    rt.block_on(pg.execute("CREATE DATABASE novacron;"));
    // The daemon reaches Postgres and Redis through gates that can drop exactly N probes.
    let pg_gate = Gate::start(pg.port());
    let db_url = format!("postgres://postgres@127.0.0.1:{}/novacron", pg_gate.port());
    let redis_gate = Gate::start(redis.port());
    let redis_url = format!("redis://127.0.0.1:{}/", redis_gate.port());
    let pki = Pki::new();
    let tls = rt.block_on(RenewableTlsServer::start(&pki.leaf("localhost", 90 * DAY)));
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.write_ca(dir.path());
    let smoke = Smoke::new();
    let paging = Paging::pagerduty("NOVACRON");
    let (metrics, traffic) = imitation::metrics(&imitation::NOVACRON_METRICS);
    let metrics_url = format!("{}/metrics", metrics.base_url());
    let d = paging.start(
        &example("novacron"),
        &[
            ("NOVACRON_METRICS_URL", &metrics_url),
            ("NOVACRON_METRICS_INTERVAL", "250ms"),
            ("NOVACRON_METRICS_WINDOW", "2s"),
            ("NOVACRON_5XX_WINDOW", "2s"),
            ("NOVACRON_BASELINE_WINDOW", "10s"),
            ("NOVACRON_SMOKE_TEST", smoke.script()),
            ("NOVACRON_SMOKE_INTERVAL", "300ms"),
            ("NOVACRON_SMOKE_TIMEOUT", "250ms"),
            ("NOVACRON_SYSTEM_INTERVAL", "300ms"),
            ("NOVACRON_SYSTEM_TIMEOUT", "250ms"),
            ("NOVACRON_CPU_WARNING", "1.01"),
            ("NOVACRON_CPU_CRITICAL", "1.01"),
            ("NOVACRON_MEMORY_WARNING", "1.01"),
            ("NOVACRON_MEMORY_CRITICAL", "1.01"),
            ("NOVACRON_URL", &api.base_url()),
            ("NOVACRON_DATABASE_URL", &db_url),
            ("NOVACRON_REDIS_URL", &redis_url),
            ("NOVACRON_TLS_ADDRESS", &format!("localhost:{}", tls.port())),
            ("NOVACRON_CA_FILE", ca.to_str().expect("utf-8 path")),
            ("NOVACRON_INTERVAL", "300ms"),
            ("NOVACRON_ROLLBACK_AFTER", "0s"),
            ("NOVACRON_RETRY_INTERVAL", "100ms"),
            ("NOVACRON_TIMEOUT", "250ms"),
        ],
    );
    all_rules_ok(&d, "novacron");

    // "Health checks failing (> 3 consecutive failures)", an immediate rollback trigger: P0
    // pages through PagerDuty and posts to $SLACK_WEBHOOK_URL; the Quick Rollback: green's
    // logs, the selector back to blue, green scaled to 0.
    paging.pages_and_rolls_back_dry(
        &d,
        "novacron-health-failing",
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
        || api.set("/health", 503, r#"{"status": "unhealthy"}"#),
        || api.restore(),
    );
    all_rules_ok(&d, "novacron");

    smoke_and_host(&d, &smoke, "novacron");
    // The DWCP numbers of the runbook's body are kept as values.
    let dwcp = d.check("novacron-dwcp");
    assert_eq!(dwcp["values"]["active_streams"], 15.0, "{dwcp:#}");
    assert_eq!(dwcp["values"]["compression_ratio"], 2.5, "{dwcp:#}");

    // "Health checks failing (> 3 consecutive failures)": 3 failures in a row are not a
    // rollback, the 4th is.
    enters_on_the_nth_failure(
        &d,
        &Route(&api, "/health"),
        ("novacron-health-failing", "critical"),
        4,
    );
    all_rules_ok(&d, "novacron");

    // Every other health check of the runbook is held to the same count: 3 failures in a
    // row are not a rollback, the 4th is. /health/db ("Database connection issues"),
    // /api/v1/info (scripts/health-check.sh) and /api/v1/dwcp/status ("DWCP protocol
    // failures") roll back; /health/cache pages, and /metrics warns, at the same count.
    for (path, rule, state) in [
        ("/health/db", "novacron-health-db-failing", "critical"),
        ("/api/v1/info", "novacron-api-info-failing", "critical"),
        ("/api/v1/dwcp/status", "novacron-dwcp-failing", "critical"),
        ("/health/cache", "novacron-health-cache-failing", "critical"),
        ("/metrics", "novacron-metrics-down", "warning"),
    ] {
        enters_on_the_nth_failure(&d, &Route(&api, path), (rule, state), 4);
        all_rules_ok(&d, "novacron");
    }

    // "Database connection issues" as /health/detailed reports it: the 4th probe in a row
    // with the database component unhealthy rolls back, the 3rd does not.
    let database_down = r#"{"status": "unhealthy", "components": {"database": "unhealthy", "cache": "healthy", "dwcp": "healthy"}}"#;
    enters_on_the_nth_failed_probe(
        &d,
        ("novacron-health-detailed", "novacron"),
        ("novacron-components-unhealthy", "critical"),
        4,
        || api.set("/health/detailed", 200, database_down),
        || api.restore(),
    );
    api.set("/health/detailed", 200, database_down);
    api.set("/health/db", 503, r#"{"status": "unhealthy"}"#);
    reaches(&d, "novacron-components-unhealthy", "critical");
    reaches(&d, "novacron-health-db-failing", "critical");
    let detailed = d.check("novacron-health-detailed");
    let message = detailed["last_error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("components.database"), "{detailed:#}");
    api.restore();
    all_rules_ok(&d, "novacron");

    // "DWCP protocol failures": the protocol is no longer active, or the detailed health says
    // DWCP is unhealthy.
    api.set(
        "/api/v1/dwcp/status",
        200,
        r#"{"status": "degraded", "active_streams": 0, "bandwidth_allocated": 0, "compression_ratio": 1.0}"#,
    );
    api.set(
        "/health/detailed",
        200,
        r#"{"status": "unhealthy", "components": {"database": "healthy", "cache": "healthy", "dwcp": "unhealthy"}}"#,
    );
    reaches(&d, "novacron-dwcp-failing", "critical");
    reaches(&d, "novacron-components-unhealthy", "critical");
    api.restore();
    all_rules_ok(&d, "novacron");

    // The cache is no immediate rollback trigger: the detailed health reporting the cache
    // unhealthy (its overall status with it) pages on the 4th probe, not the 3rd, and rolls
    // nothing back; the database/DWCP check reads the same body and stays ok. Nor does
    // /health/cache failing, or Redis down, roll back.
    // The hooks of the rollbacks above are all recorded (the count holds still).
    let hooks_before = eventually(&d, "hook runs settled", || {
        let runs = hook_runs(&d);
        std::thread::sleep(Duration::from_millis(500));
        (hook_runs(&d) == runs).then_some(runs)
    });
    let cache_down = r#"{"status": "unhealthy", "components": {"database": "healthy", "cache": "unhealthy", "dwcp": "healthy"}}"#;
    enters_on_the_nth_failed_probe(
        &d,
        ("novacron-health-detailed-cache", "novacron"),
        ("novacron-cache-component-unhealthy", "critical"),
        4,
        || api.set("/health/detailed", 200, cache_down),
        || api.restore(),
    );
    api.set("/health/detailed", 200, cache_down);
    reaches(&d, "novacron-cache-component-unhealthy", "critical");
    stays_ok_for_probes(
        &d,
        "novacron-health-detailed",
        "novacron-components-unhealthy",
        4,
    );
    api.set("/health/cache", 503, r#"{"status": "unhealthy"}"#);
    reaches(&d, "novacron-health-cache-failing", "critical");
    api.restore();
    all_rules_ok(&d, "novacron");
    // The cache hangs past the timeout.
    api.set_delay("/health/cache", Duration::from_secs(1));
    reaches(&d, "novacron-health-cache-failing", "critical");
    assert_eq!(error_kind(&d, "novacron-health-cache"), "timeout");
    api.restore();
    all_rules_ok(&d, "novacron");
    // Redis ("Cache health") fails 4 probes in a row, not 3: it pages, nothing rolls back.
    enters_on_the_nth_failure(&d, &redis_gate, ("novacron-redis-down", "critical"), 4);
    all_rules_ok(&d, "novacron");
    assert_eq!(
        hook_runs(&d),
        hooks_before,
        "a cache failure ran a hook:\n{}",
        d.log()
    );
    let rolled: Vec<String> = paging
        .chat_texts()
        .into_iter()
        .filter(|t| t.contains("HOOK") && (t.contains("cache") || t.contains("redis")))
        .collect();
    assert!(rolled.is_empty(), "a cache rule ran a hook: {rolled:#?}");

    // "Database connection issues": the database fails 4 probes in a row, not 3.
    enters_on_the_nth_failure(&d, &pg_gate, ("novacron-db-down", "critical"), 4);
    all_rules_ok(&d, "novacron");

    // P0 "Service completely unavailable": every API check fails, the metrics one warns.
    api.down();
    for rule in [
        "novacron-health-failing",
        "novacron-components-unhealthy",
        "novacron-health-db-failing",
        "novacron-health-cache-failing",
        "novacron-cache-component-unhealthy",
        "novacron-api-info-failing",
        "novacron-dwcp-failing",
    ] {
        reaches(&d, rule, "critical");
    }
    reaches(&d, "novacron-metrics-down", "warning");
    api.up();
    all_rules_ok(&d, "novacron");

    // Cache health: Redis killed.
    redis.kill();
    reaches(&d, "novacron-redis-down", "critical");
    redis.restart();
    all_rules_ok(&d, "novacron");

    // Database health: the database hangs.
    pg.pause();
    reaches(&d, "novacron-db-down", "critical");
    pg.resume();
    all_rules_ok(&d, "novacron");

    // Certificate Renewal: 31 days left (30.99) is a renewal still to come; 30 (29.99) means
    // cert-manager did not renew in time: a warning. Then a wrong certificate.
    tls.renew(&pki.leaf("localhost", 31 * DAY));
    let c = stays_ok_for_probes(&d, "novacron-cert", "novacron-cert-expiry", 3);
    let days = c["values"]["days_left"].as_f64().expect("days_left");
    assert!((30.0..31.0).contains(&days), "31 days left, got {days}");
    tls.renew(&pki.leaf("localhost", 30 * DAY));
    reaches(&d, "novacron-cert-expiry", "warning");
    tls.renew(&pki.leaf("novacron.example", 90 * DAY));
    reaches(&d, "novacron-cert-expiry", "critical");
    assert_eq!(error_kind(&d, "novacron-cert"), "tls");
    tls.renew(&pki.leaf("localhost", 90 * DAY));
    all_rules_ok(&d, "novacron");

    // When to Rollback and High Latency over the scrape of /metrics (100 requests/s, 20 ms
    // each, when healthy; the 5-minute and 1-minute ranges 2 s, the baseline's hour 10 s):
    // 3% 5xx is past "> 1% of requests" while 6 in the window stay under 10; 0.5% of 4000
    // requests/s is 40 in the window, past "> 10 per minute", at an error rate under 1%; answers
    // of 60 ms triple the p95 against the baseline (20 ms); 1.5 s passes "> 1 second".
    metric_rules_reach_their_levels(
        &d,
        "novacron",
        (&traffic, &imitation::NOVACRON_METRICS),
        &[
            (
                "3% of answers 5xx",
                &|t| t.set_error_share(0.03),
                &[("novacron-error-rate", "critical", &[])],
            ),
            (
                "0.5% of 4000 answers a second 5xx",
                &|t| {
                    t.set_rate(4000.0);
                    t.set_error_share(0.005);
                },
                &[("novacron-5xx-per-minute", "critical", &[])],
            ),
            (
                "answers take 60 ms",
                &|t| t.set_latency("http_request_duration_seconds", 0.06),
                &[("novacron-latency-vs-baseline", "critical", &[])],
            ),
            (
                "answers take 1.5 s",
                &|t| t.set_latency("http_request_duration_seconds", 1.5),
                &[("novacron-high-response-time", "warning", &[])],
            ),
        ],
    );
}

/// The parts every example shares: the smoke suite (an exec check, Nagios exit codes) warns on
/// 1, pages on 2 and clears on 0; the host check reads real values (the tests move its
/// thresholds above 1, as this machine's load is not the system's;
/// `runbook_host_thresholds_read_the_real_host` crosses them).
fn smoke_and_host(d: &Daemon, smoke: &Smoke, system: &str) {
    let host = d.check(&format!("{system}-host"));
    let memory = host["values"]["memory_ratio"].as_f64();
    assert!(
        memory.is_some_and(|m| m > 0.0 && m <= 1.0),
        "no memory_ratio: {host:#}"
    );
    for (code, state) in [(1, "warning"), (2, "critical"), (0, "ok")] {
        smoke.exit_with(code);
        reaches(d, &format!("{system}-smoke"), state);
    }
    all_rules_ok(d, system);
}

/// A smoke-test script that exits with the code last given to `exit_with` (0 at first).
pub(crate) struct Smoke {
    _dir: tempfile::TempDir,
    state: PathBuf,
    script: String,
}

impl Smoke {
    pub(crate) fn new() -> Smoke {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("exit-code");
        let script = dir.path().join("smoke.sh");
        std::fs::write(&state, "0").expect("write state");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncode=$(cat '{}')\necho \"smoke exit $code | failures=$code\"\nexit $code\n",
                state.display()
            ),
        )
        .expect("write script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Smoke {
            script: script.display().to_string(),
            state,
            _dir: dir,
        }
    }

    pub(crate) fn script(&self) -> &str {
        &self.script
    }

    pub(crate) fn exit_with(&self, code: i32) {
        std::fs::write(&self.state, code.to_string()).expect("write state");
    }
}

/// The runbooks' CPU and memory rules against this machine's real readings: with the
/// warning threshold moved to 0 (any use breaches) memory warns, with critical at 0 it pages,
/// and with the runbook's own numbers it reads whatever this host is (never unknown).
#[test]
fn runbook_host_thresholds_read_the_real_host() {
    let base = [
        ("NUVIE_METRICS_URL", "http://127.0.0.1:9/metrics"),
        ("NUVIE_SYSTEM_INTERVAL", "200ms"),
        ("NUVIE_SYSTEM_TIMEOUT", "150ms"),
        ("NUVIE_MEMORY_FOR", "1s"),
        ("NUVIE_CPU_FOR", "1s"),
    ];
    let run = |extra: &[(&str, &str)], rule: &str, state: &str| {
        let env: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        let d = Daemon::start_file(&example("nuvie"), &env);
        reaches(&d, rule, state);
    };
    run(&[("NUVIE_MEMORY_WARNING", "0")], "nuvie-memory", "warning");
    run(
        &[
            ("NUVIE_MEMORY_WARNING", "0"),
            ("NUVIE_MEMORY_CRITICAL", "0"),
        ],
        "nuvie-memory",
        "critical",
    );
    run(
        &[("NUVIE_CPU_WARNING", "-1"), ("NUVIE_CPU_CRITICAL", "-1")],
        "nuvie-cpu",
        "critical",
    );
}

/// Every series of the `expr` rule `rule` in the status API, each with its `series` labels.
fn series_of(d: &Daemon, rule: &str) -> Vec<serde_json::Value> {
    d.status()["rules"]
        .as_array()
        .expect("rules array")
        .iter()
        .filter(|r| r["name"] == rule)
        .cloned()
        .collect()
}

/// Waits for a series of `rule` to be in `state` (for `ok`: every series of it) and returns it.
fn series_reaches(d: &Daemon, rule: &str, state: &str) -> serde_json::Value {
    eventually(d, &format!("{rule} {state}"), || {
        let series = series_of(d, rule);
        if state == "ok" {
            (!series.is_empty() && series.iter().all(|s| s["state"] == "ok"))
                .then(|| series[0].clone())
        } else {
            series.into_iter().find(|s| s["state"] == state)
        }
    })
}

/// What a step of a metric phase does to the traffic.
type Drive<'a> = &'a dyn Fn(&imitation::Traffic);
/// The rules a step takes to a level: (rule, state, labels its series must carry).
type Expect<'a> = &'a [(&'a str, &'a str, &'a [(&'a str, &'a str)])];

/// A system's metric rules, table-driven: from healthy traffic (every rule ok), each step
/// changes the traffic (`what`, the runbook's line) and waits for each named rule to reach its
/// level, with the series labels it must carry where the result is labelled; then the traffic
/// heals and every rule is ok again.
fn metric_rules_reach_their_levels(
    d: &Daemon,
    system: &str,
    (traffic, spec): (&imitation::Traffic, &imitation::MetricsSpec),
    steps: &[(&str, Drive, Expect)],
) {
    for (what, drive, expect) in steps {
        all_rules_ok(d, system);
        drive(traffic);
        for (rule, state, labels) in *expect {
            let s = series_reaches(d, rule, state);
            for (name, value) in *labels {
                assert_eq!(
                    s["series"][name], *value,
                    "{what}: {rule} {state} on the wrong series: {s:#}"
                );
            }
        }
        traffic.restore(spec);
        for (rule, _, _) in *expect {
            series_reaches(d, rule, "ok");
        }
    }
    all_rules_ok(d, system);
}
