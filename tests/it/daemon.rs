//! Drives the real `warden` binary: writes a config, starts `warden run`, reads its HTTP API,
//! and runs the one-shot commands. The process is killed when the guard drops.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::free_port;

pub const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// Writes `text` as `warden.toml` in a fresh temp dir.
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

/// Runs `warden ARGS` to completion (bounded by 60 s) and returns its output.
pub fn warden(args: &[&str]) -> Output {
    warden_within(args, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("warden {args:?} did not finish within 60 s"))
}

/// Runs `warden ARGS` and returns its output, or `None` (the process killed) when it has not
/// finished within `within`. Its output goes to files, so a full pipe never stalls it.
pub fn warden_within(args: &[&str], within: Duration) -> Option<Output> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(WARDEN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn warden");
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(Output {
                status,
                stdout: std::fs::read(&out).expect("stdout"),
                stderr: std::fs::read(&err).expect("stderr"),
            });
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Makes a FIFO at `path` (with no writer, opening it for reading blocks).
pub fn mkfifo(path: &std::path::Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A running `warden run` process.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Daemon {
    /// Starts warden on `config_body` (everything but `[server]`, which is added with a free
    /// port) and waits until `/readyz` answers 200.
    pub fn start(config_body: &str) -> Daemon {
        Daemon::start_with(config_body, &[], &[])
    }

    /// [`Daemon::start`] with extra environment variables and `warden run` arguments.
    pub fn start_with(config_body: &str, env: &[(&str, &str)], args: &[&str]) -> Daemon {
        let port = free_port();
        let text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n{config_body}");
        let (dir, config) = write_config(&text);
        Daemon::spawn(&config, port, dir, env, args, None)
    }

    /// [`Daemon::start_with`] listening on `host` (e.g. `0.0.0.0`) with `server_extra` lines
    /// added to `[server]`.
    pub fn start_listening(
        host: &str,
        server_extra: &str,
        config_body: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let text = format!("[server]\nlisten = \"{host}:{port}\"\n{server_extra}\n\n{config_body}");
        let (dir, config) = write_config(&text);
        Daemon::spawn(&config, port, dir, env, &[], None)
    }

    /// Starts warden on a config file as it is, with `env` added to its environment, and
    /// waits until `/readyz` answers 200. The file must take its listen address from
    /// `${WARDEN_LISTEN}` (as `config/examples/*.toml` do), which is set to a free port here.
    pub fn start_file(path: &std::path::Path, env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec![("WARDEN_LISTEN", listen.as_str())];
        all.extend_from_slice(env);
        let dir = tempfile::tempdir().expect("temp dir");
        Daemon::spawn(path, port, dir, &all, &[], None)
    }

    /// [`Daemon::start`] with its soft `RLIMIT_NOFILE` lowered to `soft` (the hard limit
    /// kept), as a service manager's default of 1024 would leave it.
    pub fn start_with_soft_nofile(config_body: &str, soft: u64) -> Daemon {
        let port = free_port();
        let text = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n{config_body}");
        let (dir, config) = write_config(&text);
        Daemon::spawn(&config, port, dir, &[], &[], Some(soft))
    }

    /// Runs `warden run -c config ARGS` listening on `port`, logging into `dir`, and waits
    /// until `/readyz` answers 200.
    fn spawn(
        config: &std::path::Path,
        port: u16,
        dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
        soft_nofile: Option<u64>,
    ) -> Daemon {
        let log = dir.path().join("warden.log");
        let mut command = Command::new(WARDEN);
        if let Some(soft) = soft_nofile {
            use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
            use std::os::unix::process::CommandExt;
            let hard = getrlimit(Resource::Nofile).maximum;
            let lowered = Rlimit {
                current: Some(soft),
                maximum: hard,
            };
            // SAFETY: between fork and exec the child only makes one prlimit64 system call
            // (async-signal-safe, no allocation, no lock).
            unsafe {
                command.pre_exec(move || {
                    setrlimit(Resource::Nofile, lowered).map_err(std::io::Error::from)
                });
            }
        }
        let child = command
            .args(["run", "-c"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "warden=debug")
            // Each daemon its own state store (one warden per store), unless a test says.
            .env("STATE_DIRECTORY", dir.path())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn warden run");
        let mut d = Daemon {
            child,
            port,
            _dir: dir,
            log,
        };
        d.wait_http_ok("/readyz", Duration::from_secs(20));
        d
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The config file the daemon runs on (`warden.toml` in its temp dir).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("warden.toml")
    }

    /// Sends `signal` (a `kill` name like `HUP`) to the daemon.
    pub fn signal(&self, signal: &str) {
        assert!(
            crate::harness::process::signal(self.child.id(), signal),
            "kill -{signal} failed"
        );
    }

    /// Polls `f` every 50 ms until it returns `Some`, or panics naming `what`, with the log,
    /// after 30 s.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {limit:?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_http_ok(&mut self, path: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("warden exited early with {status}:\n{}", self.log());
            }
            if let Ok((200, _, _)) = get(&self.url(path)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "warden did not answer {path} within {within:?}:\n{}",
            self.log()
        );
    }

    pub fn status(&self) -> serde_json::Value {
        let (code, _, body) = get(&self.url("/api/v1/status")).expect("GET status");
        assert_eq!(code, 200, "status endpoint answered {code}: {body}");
        serde_json::from_str(&body).expect("status is JSON")
    }

    pub fn rule(&self, name: &str) -> serde_json::Value {
        let status = self.status();
        status["rules"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no rule {name} in status: {status:#}"))
    }

    pub fn check(&self, name: &str) -> serde_json::Value {
        let status = self.status();
        status["checks"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == name).cloned())
            .unwrap_or_else(|| panic!("no check {name} in status: {status:#}"))
    }

    /// Polls the rule until its state is `state`, or panics after `within` with the status.
    pub fn wait_rule_state(&self, rule: &str, state: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self.rule(rule);
            if r["state"] == state {
                return r;
            }
            if Instant::now() > deadline {
                panic!(
                    "rule {rule} did not reach {state} within {within:?}; last: {r:#}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn metrics(&self) -> (String, String) {
        let (code, content_type, body) = get(&self.url("/metrics")).expect("GET /metrics");
        assert_eq!(code, 200);
        (content_type, body)
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking GET on a fresh runtime-free client: (status, content-type, body).
pub fn get(url: &str) -> Result<(u16, String, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client.get(url).send().await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((code, ct, body))
    })
}

/// A blocking POST with an optional bearer token: (status, body).
pub fn post(url: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(70))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let mut req = client.post(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok((code, body))
    })
}
