//! The command line: check-config on shipped and broken configs, --help, SIGTERM.

use std::path::Path;
use std::time::Duration;

use crate::daemon::{warden, write_config, Daemon};

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
        assert!(
            out.status.success(),
            "{} failed check-config:\n{}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
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
