//! A real postgres (`initdb` + `postgres`) on a free loopback port, in a temp dir.
//!
//! postgres refuses to run as root, so when the tests run as root the temp dir is given to
//! the `postgres` OS user and `initdb`/`postgres` run as that user (through
//! `CommandExt::uid`, so the child we hold *is* the postmaster). Trust auth, user
//! `postgres`, unix socket in the temp dir, `fsync=off`. Dropping the server stops the
//! postmaster and its backends (immediate shutdown, then SIGKILL) and removes the dir.
//!
//! Pausing: SIGSTOP on the postmaster alone already makes *new* connections hang (the
//! kernel completes the TCP handshake from the listen backlog, but no backend is forked to
//! answer the startup message), while existing backends keep serving. [`pause`] stops the
//! postmaster and every backend, so new and existing connections both hang; a probe then
//! fails only by its own timeout, since tokio-postgres bounds just the TCP connect.
//!
//! [`pause`]: PostgresServer::pause

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

use super::process::{self, steps, STEP};

const INITDB_LIMIT: Duration = Duration::from_secs(60);
const READY_LIMIT: Duration = Duration::from_secs(20);
const STOP_LIMIT: Duration = Duration::from_secs(5);
const SQL_LIMIT: Duration = Duration::from_secs(10);

pub struct PostgresServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl PostgresServer {
    /// A server with `max_connections = 20`.
    pub async fn start() -> PostgresServer {
        Self::start_with(20).await
    }

    /// A server with the given `max_connections` (at least 4: 3 are reserved for superusers
    /// by default, and the test user `postgres` is a superuser, so it may use all of them).
    pub async fn start_with(max_connections: u32) -> PostgresServer {
        let bin = bin_dir();
        let owner = if process::running_as_root() {
            Some(process::user_ids("postgres").expect(
                "no `postgres` OS user: run scripts/install-test-deps.sh (postgres refuses root)",
            ))
        } else {
            None
        };
        // As root, /tmp rather than $TMPDIR: the postgres user must be able to reach the dir.
        let mut builder = tempfile::Builder::new();
        builder.prefix("warden-pg-");
        let dir = if owner.is_some() {
            builder.tempdir_in("/tmp")
        } else {
            builder.tempdir()
        }
        .expect("create a temp dir for postgres");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("chown the postgres temp dir");
        }
        let data = dir.path().join("data");

        let mut initdb = as_owner(Command::new(bin.join("initdb")), owner, dir.path());
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        let output = process::run_bounded(&mut initdb, INITDB_LIMIT);
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        let port = super::free_port();
        let log_path = dir.path().join("postgres.log");
        let log = File::create(&log_path).expect("create the postgres log");
        let mut postgres = as_owner(Command::new(bin.join("postgres")), owner, dir.path());
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1"])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", &format!("max_connections={max_connections}")])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "synchronous_commit=off", "-c", "shared_buffers=16MB"])
            .args(["-c", "wal_level=minimal", "-c", "max_wal_senders=0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = postgres
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.join("postgres").display()));
        let mut server = PostgresServer {
            child: Some(child),
            port,
            dir,
        };
        server.wait_ready().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's pid; panics when it was stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("postgres is not running").id()
    }

    /// SIGSTOPs the postmaster, then every backend: new and open connections hang.
    pub fn pause(&self) {
        let pid = self.pid();
        assert!(process::signal(pid, "STOP"), "SIGSTOP postmaster");
        for child in process::children(pid) {
            process::signal(child, "STOP");
        }
    }

    /// SIGCONTs the backends, then the postmaster.
    pub fn resume(&self) {
        let pid = self.pid();
        for child in process::children(pid) {
            process::signal(child, "CONT");
        }
        assert!(process::signal(pid, "CONT"), "SIGCONT postmaster");
    }

    /// A new connection as `postgres`, its connection future spawned on the current runtime.
    /// Hold the client to keep the backend (and its slot in `max_connections`) alive.
    pub async fn connect(&self) -> Client {
        let url = self.url();
        let connect = tokio_postgres::connect(&url, NoTls);
        let (client, connection) = match tokio::time::timeout(SQL_LIMIT, connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => panic!("connect to {url}: {e}"),
            Err(_) => panic!("connect to {url}: no answer within {SQL_LIMIT:?}"),
        };
        tokio::spawn(connection);
        client
    }

    /// Runs `sql` (one or more statements) on a fresh connection, for test setup.
    pub async fn execute(&self, sql: &str) {
        let client = self.connect().await;
        match tokio::time::timeout(SQL_LIMIT, client.batch_execute(sql)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{sql}: {e:?}"),
            Err(_) => panic!("{sql}: no answer within {SQL_LIMIT:?}"),
        }
    }

    /// Stops the server: immediate shutdown (SIGQUIT), then SIGKILL for what is left.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let backends = process::children(pid);
        // A stopped process ignores everything but SIGKILL until continued.
        for backend in &backends {
            process::signal(*backend, "CONT");
        }
        process::signal(pid, "CONT");
        process::signal(pid, "QUIT");
        if process::wait_bounded(&mut child, STOP_LIMIT).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for backend in backends {
            process::signal(backend, "KILL");
        }
    }

    async fn wait_ready(&mut self) {
        let url = self.url();
        for _ in 0..steps(READY_LIMIT) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "postgres on port {} exited with {status}:\n{}",
                        self.port,
                        process::tail(&self.dir.path().join("postgres.log"), 30)
                    );
                }
            }
            if select_one(&url).await {
                return;
            }
            std::thread::sleep(STEP);
        }
        self.stop();
        panic!(
            "postgres on port {} did not answer SELECT 1 within {READY_LIMIT:?}:\n{}",
            self.port,
            process::tail(&self.dir.path().join("postgres.log"), 30)
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `SELECT 1` over a fresh connection, bounded.
async fn select_one(url: &str) -> bool {
    let attempt = async {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.ok()?;
        let driver = tokio::spawn(connection);
        let ok = client.simple_query("SELECT 1").await.is_ok();
        drop(client);
        let _ = driver.await;
        Some(ok)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(true))
    )
}

/// `initdb`/`postgres` run as `owner` (uid, gid) when given, in `dir`.
fn as_owner(mut command: Command, owner: Option<(u32, u32)>, dir: &Path) -> Command {
    command.current_dir(dir).env("LC_ALL", "C");
    if let Some((uid, gid)) = owner {
        // std drops supplementary groups when root switches uid.
        command.uid(uid).gid(gid);
    }
    command
}

/// The newest `/usr/lib/postgresql/*/bin`, or `$WARDEN_PG_BIN`, or `$PATH` (empty path).
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WARDEN_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_default()
}
