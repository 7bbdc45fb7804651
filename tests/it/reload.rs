//! Config reload against the real daemon: SIGHUP, `POST /-/reload` and file changes (an
//! editor's rename-on-save, a Kubernetes ConfigMap symlink swap). A bad config is reported and
//! the running one stays; unchanged checks and rules keep their state, changed ones restart.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::daemon::{mkfifo, post, Daemon};
use crate::metrics_matcher::sample;
use crate::target::HttpTarget;

/// The `[[check]]` + `[[rule]]` pair for an HTTP check named `name` on `url`.
fn http_check(name: &str, url: &str) -> String {
    format!(
        r#"
[[check]]
name = "{name}"
kind = "http"
url = "{url}"
interval = "100ms"
timeout = "100ms"

[[rule]]
name = "{name}-up"
check = "{name}"
critical = {{ when = "< 1" }}
"#
    )
}

/// Rewrites the daemon's config (keeping its `[server]` section) with `body`, atomically:
/// written to a temp file and renamed over, as editors and config managers do.
fn rewrite(d: &Daemon, body: &str) {
    let path = d.config_path();
    let old = std::fs::read_to_string(&path).unwrap();
    let server: String = old.split("\n\n").next().unwrap().to_string();
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, format!("{server}\n\n{body}")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn names(d: &Daemon, section: &str) -> Vec<String> {
    d.status()[section]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Polls until the status lists exactly `want` checks (in config order).
fn wait_checks(d: &Daemon, want: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = names(d, "checks");
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "checks are {got:?}, wanted {want:?} within {within:?}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn metric(d: &Daemon, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&d.metrics().1, name, labels)
}

fn wait_runs(d: &Daemon, check: &str, at_least: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let runs = d.check(check)["runs"].as_u64().unwrap();
        if runs >= at_least {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "check {check} ran {runs} times, wanted {at_least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_keeps_unchanged_state_restarts_changed_and_adds_new() {
    let target = HttpTarget::start();
    target.set_json("/down", 503, serde_json::json!({"status": "unhealthy"}));
    target.set_json("/b", 200, serde_json::json!({"status": "ok"}));
    target.set_json("/b2", 200, serde_json::json!({"status": "ok"}));
    target.set_json("/c", 200, serde_json::json!({"status": "ok"}));
    let keep = http_check("keep", &target.url("/down"));
    // Without the file watcher, so that only the signal can reload.
    let mut d = Daemon::start_with(
        &format!(
            "{keep}{}{}",
            http_check("change", &target.url("/b")),
            http_check("drop", &target.url("/b"))
        ),
        &[],
        &["--no-watch-config"],
    );
    let critical = d.wait_rule_state("keep-up", "critical", Duration::from_secs(10));
    let change_runs = wait_runs(&d, "change", 10, Duration::from_secs(10));
    let hash_before = metric(&d, "warden_config_hash", &[]).unwrap();

    rewrite(
        &d,
        &format!(
            "{keep}{}{}",
            http_check("change", &target.url("/b2")),
            http_check("added", &target.url("/c"))
        ),
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        names(&d, "checks"),
        ["keep", "change", "drop"],
        "reloaded without a signal"
    );
    d.signal("HUP");
    wait_checks(&d, &["keep", "change", "added"], Duration::from_secs(10));
    assert!(d.log().contains("SIGHUP received"));

    // The unchanged rule kept its state and history: still critical since the same moment.
    let kept = d.rule("keep-up");
    assert_eq!(kept["state"], "critical");
    assert_eq!(
        kept["since"], critical["since"],
        "state restarted: {kept:#}"
    );
    assert!(kept["samples"].as_u64() >= critical["samples"].as_u64());
    // The changed check restarted against its new URL; the new one runs.
    let changed = d.check("change");
    assert!(
        changed["runs"].as_u64().unwrap() < change_runs,
        "changed check kept its old history: {changed:#}"
    );
    wait_runs(&d, "added", 3, Duration::from_secs(10));
    let b2_hits = target.hits("/b2");
    assert!(b2_hits > 0, "the changed check does not probe its new URL");
    d.wait_rule_state("added-up", "ok", Duration::from_secs(10));

    let text = d.metrics().1;
    assert_eq!(
        sample(&text, "warden_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "warden_config_reloads_total",
            &[("result", "applied")]
        ),
        Some(1.0)
    );
    assert_ne!(sample(&text, "warden_config_hash", &[]), Some(hash_before));
    // The removed check's and rule's series are gone; the others are there.
    assert!(!text.contains("check=\"drop\""), "stale series:\n{text}");
    assert!(!text.contains("rule=\"drop-up\""), "stale series:\n{text}");
    assert!(sample(&text, "warden_check_up", &[("check", "added")]).is_some());
    assert_eq!(
        sample(
            &text,
            "warden_rule_state",
            &[("rule", "keep-up"), ("state", "critical")]
        ),
        Some(1.0)
    );
    assert_eq!(sample(&text, "warden_checks_configured", &[]), Some(3.0));
    // The dropped check stopped probing.
    let drop_hits = target.hits("/b");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(target.hits("/b"), drop_hits, "a removed check still runs");
    assert!(d.log().contains("config reloaded"));
    assert_eq!(d.terminate(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_bad_config_is_reported_whole_and_the_running_one_stays() {
    let target = HttpTarget::start();
    target.set_json("/ok", 200, serde_json::json!({"status": "ok"}));
    let good = http_check("api", &target.url("/ok"));
    let d = Daemon::start(&good);
    wait_runs(&d, "api", 3, Duration::from_secs(10));

    // Two errors in the new file: both are reported with file:line:col.
    rewrite(
        &d,
        &format!("{good}\n[[check]]\nname = \"broken\"\nkind = \"http\"\nurl = \"ftp://x\"\ninterval = \"soon\"\n"),
    );
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 400, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let error = body["error"].as_str().unwrap();
    let config = d.config_path();
    let file = config.display().to_string();
    assert!(
        error.contains(&format!("{file}:")),
        "no file:line:col in {error}"
    );
    assert!(error.contains(r#"invalid duration "soon""#), "{error}");
    assert!(error.contains(r#"invalid url "ftp://x""#), "{error}");
    assert_eq!(
        metric(&d, "warden_config_last_reload_successful", &[]),
        Some(0.0)
    );
    assert!(d.log().contains("config reload failed"), "{}", d.log());

    // The old config keeps running.
    let before = d.check("api")["runs"].as_u64().unwrap();
    wait_runs(&d, "api", before + 3, Duration::from_secs(10));
    assert_eq!(names(&d, "checks"), ["api"]);

    // Fixed: the next reload applies; reloading again changes nothing.
    rewrite(
        &d,
        &format!("{good}{}", http_check("second", &target.url("/ok"))),
    );
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"applied\""), "{body}");
    assert_eq!(names(&d, "checks"), ["api", "second"]);
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"unchanged\""), "{body}");
    let text = d.metrics().1;
    assert_eq!(
        sample(&text, "warden_config_last_reload_successful", &[]),
        Some(1.0)
    );
    // The file watcher may have reloaded too (the files changed), so count at least ours.
    for result in ["failed", "applied", "unchanged"] {
        let n = sample(&text, "warden_config_reloads_total", &[("result", result)]).unwrap();
        assert!(n >= 1.0, "{result}: {n}");
    }
}

#[test]
fn reload_endpoint_requires_the_token_when_one_is_set() {
    let d = Daemon::start_with(
        "[defaults]\ninterval = \"1s\"\ntimeout = \"100ms\"\n\n[[check]]\nname = \"port\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n",
        &[("WARDEN_TEST_TOKEN", "s3cret-token")],
        &[],
    );
    // Daemon::start puts [server] first; add the token there and restart-free reload it.
    let path = d.config_path();
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[server]\n",
        "[server]\ntoken = \"${WARDEN_TEST_TOKEN}\"\n",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    // The token is live now.
    for wrong in [None, Some("nope"), Some("s3cret-token-and-more"), Some("")] {
        let (code, body) = post(&d.url("/-/reload"), wrong).unwrap();
        assert_eq!(code, 401, "{wrong:?}: {body}");
    }
    let (code, body) = post(&d.url("/-/reload"), Some("s3cret-token")).unwrap();
    assert_eq!(code, 200, "{body}");
    // GET is refused; the token never shows in the status or the metrics.
    let (code, _, _) = crate::daemon::get(&d.url("/-/reload")).unwrap();
    assert_eq!(code, 405);
    assert!(!d.metrics().1.contains("s3cret"));
    assert!(!d.status().to_string().contains("s3cret"));
    assert!(!d.log().contains("s3cret"));
}

/// This host's address on the network (the source address of its default route; no packet
/// is sent), or `None` on a host with loopback only.
fn network_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// Issue 12: a reload to a loopback `listen` without a token was applied while the socket
/// stayed on the network (listen changes only at restart), and `/-/reload` was then open to
/// anyone. The token rule is judged against the bound address: such a reload is refused.
#[test]
fn a_reload_cannot_drop_the_token_of_a_server_beyond_loopback() {
    let body = "[defaults]\ninterval = \"1s\"\n\n[[check]]\nname = \"closed\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ntimeout = \"100ms\"\n";
    let d = Daemon::start_listening(
        "0.0.0.0",
        "token = \"${WARDEN_TEST_TOKEN}\"",
        body,
        &[("WARDEN_TEST_TOKEN", "s3cret-token")],
    );
    // Reach the server the way a stranger would: through the host's network address when it
    // has one (the 0.0.0.0 socket answers there), else through loopback; the server makes no
    // difference between them, only the token does.
    let host = network_address().map_or("127.0.0.1".to_string(), |ip| ip.to_string());
    let reload_url = format!("http://{host}:{}/-/reload", d.port);
    let (code, body_text) = post(&reload_url, None).unwrap();
    assert_eq!(code, 401, "{body_text}");

    // The new config says loopback, and no token.
    std::fs::write(
        d.config_path(),
        format!("[server]\nlisten = \"127.0.0.1:{}\"\n\n{body}", d.port),
    )
    .unwrap();
    let (code, answer) = post(&reload_url, Some("s3cret-token")).unwrap();
    assert_eq!(code, 400, "the reload was applied: {answer}");
    assert!(
        answer.contains("server.token") && answer.contains("beyond loopback"),
        "{answer}"
    );
    assert_eq!(
        metric(&d, "warden_config_last_reload_successful", &[]),
        Some(0.0)
    );
    // The old config, token included, keeps running: strangers are still refused.
    let (code, answer) = post(&reload_url, None).unwrap();
    assert_eq!(code, 401, "an unauthenticated reload got through: {answer}");
    assert!(d.log().contains("beyond loopback"), "{}", d.log());
}

/// Waits until `check` appears in the status, without any signal or request.
fn wait_for_check(d: &Daemon, check: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !names(d, "checks").iter().any(|n| n == check) {
        assert!(
            Instant::now() < deadline,
            "no reload picked up {check}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn file_changes_reload_by_themselves() {
    let target = HttpTarget::start();
    target.set_json("/ok", 200, serde_json::json!({"status": "ok"}));
    let d = Daemon::start(&http_check("first", &target.url("/ok")));
    let dir = d.config_path().parent().unwrap().to_path_buf();

    // An editor's save: a new file renamed over the old one.
    rewrite(
        &d,
        &format!(
            "{}{}",
            http_check("first", &target.url("/ok")),
            http_check("renamed", &target.url("/ok"))
        ),
    );
    wait_for_check(&d, "renamed");

    // An in-place write (truncate + write), like `echo >>` or an editor without backups.
    let path = d.config_path();
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&http_check("appended", &target.url("/ok")));
    std::fs::write(&path, &text).unwrap();
    wait_for_check(&d, "appended");

    // A Kubernetes ConfigMap volume: warden.toml -> ..data/warden.toml, ..data -> ..v1; an
    // update writes ..v2 and swaps the ..data symlink atomically.
    let server = text.split("\n\n").next().unwrap().to_string();
    // `text` holds the whole file, [server] included.
    let version = |name: &str, whole: &str| {
        let v = dir.join(name);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("warden.toml"), whole).unwrap();
    };
    let swap = |to: &str| {
        let tmp = dir.join("..data_tmp");
        std::os::unix::fs::symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
    };
    version(
        "..v1",
        &format!("{text}{}", http_check("k8s-v1", &target.url("/ok"))),
    );
    swap("..v1");
    let link = dir.join("warden.toml.new");
    std::os::unix::fs::symlink(Path::new("..data/warden.toml"), &link).unwrap();
    std::fs::rename(&link, &path).unwrap();
    wait_for_check(&d, "k8s-v1");
    version(
        "..v2",
        &format!("{text}{}", http_check("k8s-v2", &target.url("/ok"))),
    );
    swap("..v2");
    wait_for_check(&d, "k8s-v2");
    assert!(!names(&d, "checks").iter().any(|n| n == "k8s-v1"));

    // A half-written config is rejected and the running one stays; the complete one applies.
    let broken = dir.join("..v3");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("warden.toml"),
        format!("{server}\n\n[[check]]\nname = "),
    )
    .unwrap();
    swap("..v3");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&d, "warden_config_last_reload_successful", &[]) != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "the broken config was not noticed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(names(&d, "checks").iter().any(|n| n == "k8s-v2"));
    let reloads = metric(&d, "warden_config_reloads_total", &[("result", "applied")]).unwrap();
    assert!(reloads >= 4.0, "applied reloads: {reloads}");
}

/// Every config reload so far, whatever its result.
fn reloads(d: &Daemon) -> f64 {
    let text = d.metrics().1;
    ["applied", "unchanged", "failed"]
        .iter()
        .filter_map(|r| sample(&text, "warden_config_reloads_total", &[("result", r)]))
        .sum()
}

/// Asserts that the reload count stays at `want` for `quiet`.
fn assert_reloads_stay(d: &Daemon, want: f64, quiet: Duration, after: &str) {
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        let got = reloads(d);
        assert_eq!(
            got,
            want,
            "{after}: {got} reloads, wanted {want}\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls until the status lists `check` (or, with `present` false, no longer does).
fn wait_check_presence(d: &Daemon, check: &str, present: bool, after: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(d, "checks").iter().any(|n| n == check) != present {
        assert!(
            Instant::now() < deadline,
            "{after}: check {check} present = {}, wanted {present}\nlog:\n{}",
            !present,
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 12, item 0: inotify reports opens and read-only closes too, and warden's own read
/// during a reload used to trigger the next one, forever. Reading the config (with `cat`,
/// with warden's own reload, with an open for append that writes nothing) must not reload
/// it; each kind of real change (in-place write, rename over, new file an include glob
/// matches, removal, ConfigMap `..data` swap) reloads it, and then the count settles.
#[test]
fn reading_the_config_never_reloads_it_and_each_change_reloads_once() {
    let target = HttpTarget::start();
    target.set_json("/ok", 200, serde_json::json!({"status": "ok"}));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    let main = dir.path().join("warden.toml");
    let main_text = "include = [\"conf.d/*.toml\"]\n\n[server]\nlisten = \"${WARDEN_LISTEN}\"\n";
    std::fs::write(&main, main_text).unwrap();
    let a = conf.join("a.toml");
    std::fs::write(&a, http_check("a", &target.url("/ok"))).unwrap();
    let d = Daemon::start_file(&main, &[]);
    wait_check_presence(&d, "a", true, "start");
    assert_eq!(reloads(&d), 0.0);

    // Readers: cat (open, read, close without writing), an open for append that writes
    // nothing, and warden's own reload, which reads every file.
    for _ in 0..3 {
        for file in [&main, &a] {
            let out = std::process::Command::new("cat")
                .arg(file)
                .output()
                .unwrap();
            assert!(out.status.success());
        }
    }
    std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"unchanged\""), "{body}");
    assert_reloads_stay(&d, 1.0, Duration::from_secs(2), "reads and one POST");

    let mut count = 1.0;
    let mut changed = |what: &str, check: &str, present: bool, exactly_one: bool| {
        wait_check_presence(&d, check, present, what);
        if exactly_one {
            count += 1.0;
        } else {
            count = reloads(&d);
            assert!(count >= 2.0, "{what}: {count} reloads");
        }
        assert_reloads_stay(&d, count, Duration::from_millis(1500), what);
    };

    // In place (truncate and write), as `echo >>` or an editor without backups does.
    let mut text = std::fs::read_to_string(&a).unwrap();
    text.push_str(&http_check("a2", &target.url("/ok")));
    std::fs::write(&a, &text).unwrap();
    changed("in-place write", "a2", true, true);

    // Written beside and renamed over, as editors save.
    let tmp = dir.path().join("warden.toml.swp");
    std::fs::write(
        &tmp,
        format!("{main_text}{}", http_check("m", &target.url("/ok"))),
    )
    .unwrap();
    std::fs::rename(&tmp, &main).unwrap();
    changed("rename over", "m", true, true);

    // A new file the include glob matches, then its removal.
    let b = conf.join("b.toml");
    std::fs::write(&b, http_check("b", &target.url("/ok"))).unwrap();
    changed("new file matching the include glob", "b", true, true);
    std::fs::remove_file(&b).unwrap();
    changed("removal of an included file", "b", false, true);

    // A ConfigMap volume: c.toml -> ..data/c.toml, ..data -> ..v1, updated by swapping ..data.
    let version = |name: &str, check: &str| {
        let v = conf.join(name);
        std::fs::create_dir(&v).unwrap();
        std::fs::write(v.join("c.toml"), http_check(check, &target.url("/ok"))).unwrap();
    };
    let swap = |to: &str| {
        let tmp = conf.join("..data_tmp");
        std::os::unix::fs::symlink(to, &tmp).unwrap();
        std::fs::rename(&tmp, conf.join("..data")).unwrap();
    };
    version("..v1", "c1");
    swap("..v1");
    std::os::unix::fs::symlink("..data/c.toml", conf.join("c.toml")).unwrap();
    changed("ConfigMap mounted", "c1", true, false);
    version("..v2", "c2");
    swap("..v2");
    changed("..data symlink swap", "c2", true, false);
    assert!(!names(&d, "checks").iter().any(|n| n == "c1"));
}

/// Issue 12, item 5: a reload whose include matched a FIFO with no writer hung in open(2):
/// every later reload queued behind it (504 after 60 s) and SIGTERM no longer stopped warden.
/// Now the FIFO is refused at once, a later valid reload applies, and a reload never holds up
/// shutdown.
#[test]
fn a_reload_including_a_fifo_fails_at_once_and_blocks_neither_reloads_nor_shutdown() {
    let target = HttpTarget::start();
    target.set_json("/ok", 200, serde_json::json!({"status": "ok"}));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    let main = dir.path().join("warden.toml");
    std::fs::write(
        &main,
        "include = [\"conf.d/*.toml\"]\n\n[server]\nlisten = \"${WARDEN_LISTEN}\"\n",
    )
    .unwrap();
    std::fs::write(conf.join("a.toml"), http_check("a", &target.url("/ok"))).unwrap();
    let mut d = Daemon::start_file(&main, &[]);
    wait_check_presence(&d, "a", true, "start");

    // The glob now matches a FIFO: the file watcher and a SIGHUP both reload, and fail.
    let fifo = conf.join("pipe.toml");
    mkfifo(&fifo);
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&d, "warden_config_reloads_total", &[("result", "failed")]) < Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the reload including a FIFO did not fail within 10 s\nlog:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = d.log();
    assert!(
        log.contains("pipe.toml, which is a FIFO; only regular files can be included"),
        "{log}"
    );
    assert!(names(&d, "checks") == ["a"]);

    // A later valid config applies.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::write(conf.join("b.toml"), http_check("b", &target.url("/ok"))).unwrap();
    let (code, body) = post(&d.url("/-/reload"), None).unwrap();
    assert_eq!(code, 200, "{body}");
    wait_check_presence(&d, "b", true, "a valid reload after the failed one");

    // A FIFO again, and SIGTERM right behind the reload it causes: warden stops in time.
    mkfifo(&fifo);
    d.signal("HUP");
    assert_eq!(
        d.terminate(Duration::from_secs(10)),
        Some(0),
        "warden did not stop within 10 s of SIGTERM\nlog:\n{}",
        d.log()
    );
}

/// Issue 12, item 8: a config with no checks (an empty file, comments only, a file caught
/// truncated) would leave warden with nothing to do. A reload to one is refused and the
/// running config stays.
#[test]
fn a_reload_to_a_config_without_checks_is_refused() {
    let target = HttpTarget::start();
    target.set_json("/ok", 200, serde_json::json!({"status": "ok"}));
    let d = Daemon::start_with(
        &http_check("api", &target.url("/ok")),
        &[],
        &["--no-watch-config"],
    );
    let path = d.config_path();
    for text in ["", "# nothing here yet\n\n# still nothing\n"] {
        std::fs::write(&path, text).unwrap();
        let (code, body) = post(&d.url("/-/reload"), None).unwrap();
        assert_eq!(code, 400, "{text:?}: {body}");
        assert!(body.contains("defines no checks"), "{text:?}: {body}");
        assert_eq!(names(&d, "checks"), ["api"]);
    }
}
