//! `exec` checks end to end: the real binary running real Nagios plugins (Debian's
//! monitoring-plugins-basic) and scripts of our own, against real sockets and HTTP targets.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::daemon::{write_config, Daemon, WARDEN};
use crate::harness::free_port;
use crate::harness::process::{run_bounded, steps, STEP};
use crate::target::HttpTarget;

const PLUGINS: &str = "/usr/lib/nagios/plugins";

/// Runs `warden once --format json` on `config` with extra environment variables; returns the
/// exit code and the status document.
fn once_with_env(config: &str, env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let (_dir, path) = write_config(config);
    let mut command = Command::new(WARDEN);
    command.args(["once", "-c", path.to_str().unwrap(), "--format", "json"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = run_bounded(&mut command, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let status = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "once printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), status)
}

fn once(config: &str) -> (i32, serde_json::Value) {
    once_with_env(config, &[])
}

fn find<'a>(status: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    status[list]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {list} entry {name} in {status:#}"))
}

/// Writes an executable `/bin/sh` script into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn exec_check(name: &str, command: &[&str], extra: &str) -> String {
    let argv: Vec<String> = command.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[[check]]\nname = \"{name}\"\nkind = \"exec\"\ncommand = [{}]\n{extra}\n",
        argv.join(", ")
    )
}

#[test]
fn check_tcp_against_a_listening_socket_is_ok_with_its_time() {
    // The kernel completes the handshake from the backlog; nobody needs to accept().
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port().to_string();
    let check_tcp = format!("{PLUGINS}/check_tcp");
    let config = exec_check(
        "port",
        &[&check_tcp, "-H", "127.0.0.1", "-p", &port],
        "timeout = \"5s\"",
    );
    let (code, status) = once(&config);
    assert_eq!(code, 0, "{status:#}");
    let check = find(&status, "checks", "port");
    assert_eq!(check["state"], "up", "{check:#}");
    assert_eq!(check["values"]["status"], 0.0);
    assert_eq!(check["values"]["exit_code"], 0.0);
    let time = check["values"]["time"].as_f64().expect("perfdata time");
    assert!((0.0..5.0).contains(&time), "{check:#}");
    let rule = find(&status, "rules", "port");
    assert_eq!(rule["state"], "ok");
    assert_eq!(
        rule["description"],
        format!("exit status of {check_tcp}"),
        "{rule:#}"
    );
}

#[test]
fn check_tcp_against_a_closed_port_is_critical() {
    let port = free_port().to_string();
    let config = exec_check(
        "port",
        &[
            &format!("{PLUGINS}/check_tcp"),
            "-H",
            "127.0.0.1",
            "-p",
            &port,
        ],
        "timeout = \"5s\"",
    );
    let (code, status) = once(&config);
    assert_eq!(code, 2, "{status:#}");
    let check = find(&status, "checks", "port");
    assert_eq!(check["state"], "down");
    assert_eq!(check["values"]["status"], 2.0);
    assert_eq!(check["last_error"]["kind"], "assertion");
    let message = check["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("Connection refused"), "{message}");
    assert_eq!(find(&status, "rules", "port")["state"], "critical");
}

#[test]
fn check_http_follows_the_target_status() {
    let target = HttpTarget::start();
    let port = target
        .url("/")
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let config = exec_check(
        "web",
        &[
            &format!("{PLUGINS}/check_http"),
            "-H",
            "127.0.0.1",
            "-p",
            &port,
            "-u",
            "/health",
        ],
        "timeout = \"5s\"",
    );
    let cases = [(200, 0, "ok"), (404, 1, "warning"), (500, 2, "critical")];
    for (http_status, exit, state) in cases {
        target.set_json("/health", http_status, serde_json::json!({"status": "x"}));
        let (code, status) = once(&config);
        assert_eq!(code, exit, "HTTP {http_status}: {status:#}");
        assert_eq!(find(&status, "rules", "web")["state"], state);
        let check = find(&status, "checks", "web");
        assert_eq!(check["values"]["status"], f64::from(exit));
        assert!(check["values"]["size"].as_f64().unwrap() > 0.0, "{check:#}");
        assert!(check["values"].get("time").is_some(), "{check:#}");
        if exit > 0 {
            let message = check["last_error"]["message"].as_str().unwrap();
            assert!(message.contains(&http_status.to_string()), "{message}");
        }
    }
    assert_eq!(target.hits("/health"), 3);
}

#[test]
fn script_exit_codes_are_ok_warning_critical_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (0, "ok", "OK - fine"),
        (1, "warning", "WARNING - meh"),
        (2, "critical", "CRITICAL - bad"),
        (3, "unknown", "UNKNOWN - no idea"),
        (7, "unknown", "odd code"),
    ];
    for (exit, state, line) in cases {
        let plugin = script(
            dir.path(),
            &format!("exit{exit}"),
            &format!("echo '{line} | items=5;;;0'\nexit {exit}"),
        );
        let (code, status) = once(&exec_check("s", &[plugin.to_str().unwrap()], ""));
        assert_eq!(code, exit.min(3), "{status:#}");
        assert_eq!(find(&status, "rules", "s")["state"], state, "{status:#}");
        let check = find(&status, "checks", "s");
        let values = &check["values"];
        assert_eq!(values["exit_code"], f64::from(exit));
        assert_eq!(
            values["items"], 5.0,
            "perfdata is kept whatever the exit: {check:#}"
        );
        match exit {
            0 => assert!(check["last_error"].is_null()),
            1 | 2 => {
                assert_eq!(values["status"], f64::from(exit));
                assert_eq!(check["last_error"]["kind"], "assertion");
                assert_eq!(check["last_error"]["message"], line);
            }
            _ => {
                assert!(values.get("status").is_none(), "{check:#}");
                assert_eq!(check["last_error"]["kind"], "protocol");
                let message = check["last_error"]["message"].as_str().unwrap();
                assert!(message.contains(line), "{message}");
            }
        }
    }
}

#[test]
fn perfdata_drives_a_user_rule_in_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let depth = dir.path().join("depth");
    std::fs::write(&depth, "3").unwrap();
    let plugin = script(
        dir.path(),
        "queue",
        &format!(
            "echo \"QUEUE OK | 'queue depth'=$(cat {})items;10;100;0\"",
            depth.display()
        ),
    );
    let d = Daemon::start(&format!(
        "{}\n[[rule]]\nname = \"queue-deep\"\ncheck = \"queue\"\nvalue = \"queue_depth\"\n\
         warning = {{ when = \"> 10\" }}\ncritical = {{ when = \"> 100\" }}\n",
        exec_check(
            "queue",
            &[plugin.to_str().unwrap()],
            "interval = \"300ms\"\ntimeout = \"300ms\"",
        )
    ));
    let ok = d.wait_rule_state("queue-deep", "ok", Duration::from_secs(10));
    assert_eq!(ok["value"], 3.0);
    std::fs::write(&depth, "42").unwrap();
    let warning = d.wait_rule_state("queue-deep", "warning", Duration::from_secs(10));
    assert_eq!(warning["value"], 42.0);
    std::fs::write(&depth, "500").unwrap();
    d.wait_rule_state("queue-deep", "critical", Duration::from_secs(10));
    // The plugin itself still exits 0: its status rule stays ok.
    assert_eq!(d.rule("queue")["state"], "ok");
    let (_, metrics) = d.metrics();
    assert!(
        metrics.contains("warden_check_up{check=\"queue\",kind=\"exec\"} 1"),
        "{metrics}"
    );
}

/// Whether `pid` is gone: no `/proc` entry, or a zombie (killed, waiting for a parent that
/// may not reap it, such as a container's init).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

fn wait_gone(pids: &[u32], limit: Duration) -> bool {
    for _ in 0..steps(limit) {
        if pids.iter().all(|&p| gone(p)) {
            return true;
        }
        std::thread::sleep(STEP);
    }
    pids.iter().all(|&p| gone(p))
}

#[test]
fn a_timeout_kills_the_plugin_and_the_child_it_forked() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let plugin = script(
        dir.path(),
        "hang",
        &format!(
            "echo $$ > {pids}\nsleep 60 &\necho $! >> {pids}\nexec sleep 60",
            pids = pids.display()
        ),
    );
    let (code, status) = once(&exec_check(
        "hang",
        &[plugin.to_str().unwrap()],
        "timeout = \"700ms\"",
    ));
    assert_eq!(code, 3, "a timed-out plugin is unknown: {status:#}");
    let check = find(&status, "checks", "hang");
    assert_eq!(check["last_error"]["kind"], "timeout", "{check:#}");
    let recorded: Vec<u32> = std::fs::read_to_string(&pids)
        .expect("the plugin recorded its pids")
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        wait_gone(&recorded, Duration::from_secs(5)),
        "still running after the timeout: {recorded:?}"
    );
}

#[test]
fn an_output_flood_is_bounded_and_does_not_hang() {
    // 50 MB in one line on stdout, then a warning: read and discarded past 8 KiB.
    let config = r#"
[[check]]
name = "flood"
kind = "exec"
shell = "head -c 50000000 /dev/zero | tr '\\0' x; exit 1"
interval = "1m"
timeout = "20s"
"#;
    let (code, status) = once(config);
    assert_eq!(code, 1, "{status:#}");
    let check = find(&status, "checks", "flood");
    let message = check["last_error"]["message"].as_str().unwrap();
    assert!(message.starts_with("xxxx"), "{message:.80}");
    assert!(
        message.chars().count() <= 201,
        "bounded: {} chars",
        message.len()
    );

    // Endless output: cut off by the timeout, nothing left running.
    let (code, status) = once(
        "[[check]]\nname = \"yes\"\nkind = \"exec\"\ncommand = [\"yes\"]\ntimeout = \"500ms\"\n",
    );
    assert_eq!(code, 3, "{status:#}");
    assert_eq!(
        find(&status, "checks", "yes")["last_error"]["kind"],
        "timeout"
    );
}

#[test]
fn command_arguments_are_literal_and_shell_is_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let echo = script(dir.path(), "echo1", "echo \"WARNING [$1] [$#]\"\nexit 1");
    let (code, status) = once(&exec_check(
        "argv",
        &[
            echo.to_str().unwrap(),
            "$HOME; echo pwned `id` && exit 0 > /tmp/x",
        ],
        "",
    ));
    assert_eq!(code, 1, "{status:#}");
    assert_eq!(
        find(&status, "checks", "argv")["last_error"]["message"],
        "WARNING [$HOME; echo pwned `id` && exit 0 > /tmp/x] [1]"
    );

    let config = "[[check]]\nname = \"sh\"\nkind = \"exec\"\n\
        shell = \"echo WARNING $((40 + 2)) $HOME | tr a-z A-Z; exit 1\"\n";
    let (code, status) = once_with_env(config, &[("HOME", "/home/plugin")]);
    assert_eq!(code, 1, "{status:#}");
    assert_eq!(
        find(&status, "checks", "sh")["last_error"]["message"],
        "WARNING 42 /HOME/PLUGIN"
    );
}

#[test]
fn environment_drops_systemd_variables_and_adds_the_checks_own() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = script(
        dir.path(),
        "env",
        "echo \"WARNING notify=${NOTIFY_SOCKET:-unset} usec=${WATCHDOG_USEC:-unset} \
         pid=${WATCHDOG_PID:-unset} inherited=$INHERITED extra=$EXTRA token=$TOKEN\"\nexit 1",
    );
    let config = exec_check(
        "env",
        &[plugin.to_str().unwrap()],
        "env = { EXTRA = \"yes\", TOKEN = \"s3cr3t-t0ken\" }",
    );
    let (code, status) = once_with_env(
        &config,
        &[
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
            ("WATCHDOG_USEC", "30000000"),
            ("WATCHDOG_PID", "1"),
            ("INHERITED", "kept"),
        ],
    );
    assert_eq!(code, 1, "{status:#}");
    assert_eq!(
        find(&status, "checks", "env")["last_error"]["message"],
        "WARNING notify=unset usec=unset pid=unset inherited=kept extra=yes token=<secret>"
    );
}

#[test]
fn workdir_and_a_relative_program_path() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("marker"), "here").unwrap();
    // The config lives in `dir`; `./plugins/pwd` is relative to it, whatever the workdir.
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    script(
        &dir.path().join("plugins"),
        "pwd",
        "echo \"CRITICAL $(pwd) $(cat marker)\"\nexit 2",
    );
    let config_path = dir.path().join("warden.toml");
    std::fs::write(
        &config_path,
        exec_check("cwd", &["./plugins/pwd"], "workdir = \"work\""),
    )
    .unwrap();
    let out = run_bounded(
        Command::new(WARDEN).args([
            "once",
            "--format",
            "json",
            "-c",
            config_path.to_str().unwrap(),
        ]),
        Duration::from_secs(60),
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(out.status.code(), Some(2), "{status:#}");
    let message = find(&status, "checks", "cwd")["last_error"]["message"].clone();
    let real = std::fs::canonicalize(&work).unwrap();
    assert_eq!(message, format!("CRITICAL {} here", real.display()));
}

#[test]
fn a_missing_program_is_a_setup_error() {
    let (code, status) = once(&exec_check("missing", &["no-such-plugin-4711"], ""));
    assert_eq!(code, 3, "{status:#}");
    let check = find(&status, "checks", "missing");
    assert_eq!(check["last_error"]["kind"], "setup");
    assert_eq!(
        check["last_error"]["message"],
        "executable \"no-such-plugin-4711\" not found in PATH"
    );
    assert_eq!(find(&status, "rules", "missing")["state"], "unknown");

    let (code, status) = once(&exec_check("absent", &["/no/such/plugin"], ""));
    assert_eq!(code, 3, "{status:#}");
    let message = find(&status, "checks", "absent")["last_error"]["message"].clone();
    assert!(
        message
            .as_str()
            .unwrap()
            .starts_with("cannot run /no/such/plugin: "),
        "{message}"
    );
}

#[test]
fn stopping_the_daemon_kills_a_running_plugin() {
    // A long interval and timeout, so only the shutdown can end the plugin; the name is one
    // whose first run falls within the first second of the interval.
    let interval = Duration::from_secs(60);
    let name = (0..10_000)
        .map(|i| format!("hang-{i}"))
        .find(|n| warden::scheduler::spread_offset(n, interval) < Duration::from_secs(1))
        .expect("some name runs early");
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let plugin = script(
        dir.path(),
        "hang",
        &format!(
            "sleep 120 &\necho $! >> {pids}\necho $$ >> {pids}\nexec sleep 120",
            pids = pids.display()
        ),
    );
    let mut d = Daemon::start(&exec_check(
        &name,
        &[plugin.to_str().unwrap()],
        "interval = \"1m\"\ntimeout = \"50s\"",
    ));
    let mut recorded: Vec<u32> = Vec::new();
    for _ in 0..steps(Duration::from_secs(10)) {
        recorded = std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if recorded.len() == 2 {
            break;
        }
        std::thread::sleep(STEP);
    }
    assert_eq!(recorded.len(), 2, "the plugin did not start:\n{}", d.log());
    assert!(
        !recorded.iter().any(|&p| gone(p)),
        "running before the stop"
    );
    assert_eq!(d.terminate(Duration::from_secs(12)), Some(0), "{}", d.log());
    assert!(
        wait_gone(&recorded, Duration::from_secs(5)),
        "still running after warden stopped: {recorded:?}"
    );
}

#[test]
fn a_child_left_holding_the_output_does_not_turn_a_verdict_into_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The background sleep inherits stdout and keeps the pipe open after the plugin exits.
    let plugin = script(
        dir.path(),
        "leaver",
        &format!(
            "sleep 60 &\necho $! > {pids}\necho 'WARNING - left a child | n=1'\nexit 1",
            pids = pids.display()
        ),
    );
    let (code, status) = once(&exec_check(
        "leaver",
        &[plugin.to_str().unwrap()],
        "timeout = \"10s\"\ninterval = \"1m\"",
    ));
    assert_eq!(code, 1, "{status:#}");
    let check = find(&status, "checks", "leaver");
    assert_eq!(check["last_error"]["message"], "WARNING - left a child");
    assert_eq!(check["values"]["n"], 1.0);
    let child: u32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_gone(&[child], Duration::from_secs(5)),
        "the child holding the pipe was not killed: {child}"
    );
}

#[test]
fn death_by_a_signal_is_unknown() {
    let config =
        "[[check]]\nname = \"dies\"\nkind = \"exec\"\nshell = \"echo dying; kill -KILL $$\"\n";
    let (code, status) = once(config);
    assert_eq!(code, 3, "{status:#}");
    let check = find(&status, "checks", "dies");
    assert_eq!(check["last_error"]["kind"], "protocol");
    assert_eq!(check["last_error"]["message"], "killed by signal 9: dying");
    assert!(check["values"].get("exit_code").is_none(), "{check:#}");
    assert_eq!(find(&status, "rules", "dies")["state"], "unknown");
}
