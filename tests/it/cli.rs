//! The command line: check-config on shipped and broken configs, --help, SIGTERM.

use std::path::Path;
use std::time::Duration;

use crate::daemon::{mkfifo, warden, warden_within, write_config, Daemon};

fn shipped_configs() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut configs = vec![root.join("config/warden.toml")];
    if let Ok(entries) = std::fs::read_dir(root.join("config/examples")) {
        let mut examples: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        examples.sort();
        configs.extend(examples);
    }
    configs
}

#[test]
fn every_shipped_config_passes_check_config() {
    for config in shipped_configs() {
        let out = warden(&["check-config", "-c", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{} failed check-config (or warned):\n{stderr}",
            config.display(),
        );
    }
}

#[test]
fn check_config_reports_every_error_with_its_position() {
    let (_dir, path) = write_config(
        r#"[[check]]
name = "api"
kind = "http"
url = "http://127.0.0.1:1/health"
interval = "5 minutes"

[[rule]]
name = "r"
check = "apii"
critical = { when = "< 1" }
"#,
    );
    let out = warden(&["check-config", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "both errors are reported:\n{stderr}");
    assert!(
        lines[0].starts_with(&format!("{shown}:5:12: ")) && lines[0].contains("5 minutes"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with(&format!("{shown}:9:9: ")) && lines[1].contains("apii"),
        "{stderr}"
    );
}

#[test]
fn check_config_reports_alerting_errors_with_their_positions() {
    let (dir, path) = write_config(
        r#"[alerting]
critical = ["pager"]

[[notifier]]
name = "chat"
kind = "slack"
webhook_url_file = "slack.url"

[[hook]]
name = "rollback"
command = ["true"]
timeout = "0s"

[[check]]
name = "api"
kind = "tcp"
address = "127.0.0.1:1"

[[rule]]
name = "api-down"
check = "api"
critical = { when = "< 1" }
hooks = [{ hook = "rollbak" }]
"#,
    );
    std::fs::write(dir.path().join("slack.url"), "not-a-url-s3cret\n").expect("write secret");
    let out = warden(&["check-config", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let shown = path.display().to_string();
    let want = [
        format!(r#"{shown}:2:13: unknown notifier "pager"; known notifiers: "chat""#),
        format!("{shown}:7:20: the webhook_url in webhook_url_file must be an http:// or https:// URL with a host"),
        format!(r#"{shown}:12:11: timeout must be greater than 0, got "0s""#),
        format!(r#"{shown}:23:19: unknown hook "rollbak"; known hooks: "rollback""#),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want, "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn help_names_every_command() {
    let out = warden(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "check-config", "once"] {
        assert!(help.contains(cmd), "--help lacks {cmd}:\n{help}");
    }
    let out = warden(&["once", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Nagios") && help.contains("--format"),
        "{help}"
    );
}

#[test]
fn sigterm_stops_the_daemon_promptly() {
    let mut d = Daemon::start(
        r#"
[[check]]
name = "blackhole"
kind = "tcp"
address = "127.0.0.1:1"
interval = "200ms"
timeout = "100ms"
"#,
    );
    let code = d.terminate(Duration::from_secs(12));
    assert_eq!(code, Some(0), "warden did not exit cleanly:\n{}", d.log());
    assert!(d.log().contains("shutting down"), "{}", d.log());
}

const TCP_CHECK: &str = "[[check]]\nname = \"x\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";

/// Issue 12, item 5: an include naming a FIFO with no writer used to hang check-config (and
/// `run`) in open(2). It is refused from its metadata, at once, naming the include.
#[test]
fn an_include_naming_a_fifo_is_refused_at_once() {
    let (dir, path) = write_config(&format!("include = [\"pipe.toml\"]\n{TCP_CHECK}"));
    mkfifo(&dir.path().join("pipe.toml"));
    let shown = path.display().to_string();
    let want = format!(
        "{shown}:1:12: included file \"pipe.toml\" is a FIFO; only regular files can be included"
    );
    for command in ["check-config", "run"] {
        let out = warden_within(&[command, "-c", &shown], Duration::from_secs(10))
            .unwrap_or_else(|| panic!("warden {command} hung on a FIFO include"));
        assert_eq!(out.status.code(), Some(1), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end(), want, "{command}");
    }
}

/// Issue 12, item 5: a pattern like `/**/*.toml`, or `**` over a symlink loop, walked for
/// ever. The walk is bounded and the error names the pattern.
#[test]
fn an_include_pattern_that_would_walk_for_ever_fails_at_once() {
    let (dir, path) = write_config(&format!(
        "include = [\"loop/**/*.toml\", \"/**/*.toml\"]\n{TCP_CHECK}"
    ));
    let tree = dir.path().join("loop");
    std::fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(".", tree.join("a")).unwrap();
    std::os::unix::fs::symlink(".", tree.join("b")).unwrap();
    let shown = path.display().to_string();
    let out = warden_within(&["check-config", "-c", &shown], Duration::from_secs(10))
        .expect("check-config walked for ever");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let want = [
        format!("{shown}:1:12: include pattern \"loop/**/*.toml\" looks through more than 10000 directory entries; name a narrower directory"),
        format!("{shown}:1:30: include pattern \"/**/*.toml\" looks through more than 10000 directory entries; name a narrower directory"),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want, "{stderr}");
}

/// Issue 12, item 8: an empty config, or one of comments only, passed as `ok (0 checks)` and
/// `run` started on it with nothing to do. check-config now warns (still exit 0: the config
/// is valid) and `run` refuses it (exit 1), saying why.
#[test]
fn a_config_without_checks_is_warned_about_and_not_run() {
    for text in ["", "# warden config\n\n# checks go here\n"] {
        let (_dir, path) = write_config(text);
        let shown = path.display().to_string();
        let why = format!(
            "{shown} (with its includes) defines no checks: warden would have nothing to do"
        );
        let out = warden(&["check-config", "-c", &shown]);
        assert_eq!(out.status.code(), Some(0), "{text:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(": ok (0 checks,"), "{text:?}: {stdout}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.trim_end(),
            format!("warning: {why}; `warden run` refuses to start on it"),
            "{text:?}"
        );

        let out = warden_within(&["run", "-c", &shown], Duration::from_secs(10))
            .unwrap_or_else(|| panic!("warden run kept running on {text:?}"));
        assert_eq!(out.status.code(), Some(1), "{text:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("warden: {why}; add a [[check]]")),
            "{text:?}: {stderr}"
        );
    }
}
