//! A real `redis-server` on a free loopback port, in a temp dir, killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{self, steps, STEP};

/// How long `start` and `restart` wait for the server to answer `PING`.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// Options for [`RedisServer`]; `RedisServer::start()` is `RedisOptions::default().start()`.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `requirepass`.
    pub password: Option<String>,
    /// `maxmemory` in bytes.
    pub maxmemory: Option<u64>,
    /// Also serve TLS on a second port: (cert file, key file, CA file).
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)>,
}

impl RedisOptions {
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_string());
        self
    }

    pub fn maxmemory(mut self, bytes: u64) -> Self {
        self.maxmemory = Some(bytes);
        self
    }

    /// Serves TLS on [`RedisServer::tls_port`] besides plain TCP (clients need no certificate).
    pub fn tls(
        mut self,
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: &std::path::Path,
    ) -> Self {
        self.tls = Some((cert.to_path_buf(), key.to_path_buf(), ca.to_path_buf()));
        self
    }

    pub fn start(self) -> RedisServer {
        let dir = tempfile::Builder::new()
            .prefix("warden-redis-")
            .tempdir()
            .expect("create a temp dir for redis");
        let mut server = RedisServer {
            child: None,
            port: super::free_port(),
            tls_port: super::free_port(),
            dir,
            options: self,
        };
        server.spawn();
        server
    }
}

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls_port: u16,
    dir: TempDir,
    options: RedisOptions,
}

impl RedisServer {
    /// A server without password or memory limit.
    pub fn start() -> RedisServer {
        RedisOptions::default().start()
    }

    pub fn with() -> RedisOptions {
        RedisOptions::default()
    }

    /// `redis://127.0.0.1:PORT/`, with the password when one is required.
    pub fn url(&self) -> String {
        match &self.options.password {
            Some(password) => self.url_with_password(password),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    /// The URL with a password of the caller's choice (e.g. a wrong one).
    pub fn url_with_password(&self, password: &str) -> String {
        format!("redis://:{password}@127.0.0.1:{}/", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://127.0.0.1:TLS_PORT/` (only with [`RedisOptions::tls`]).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}/", self.tls_port)
    }

    /// `host:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server's pid; panics when it was killed.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// SIGKILLs the server and waits for it to exit. The port stays reserved for `restart`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server if it runs, then starts it again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the kernel still accepts connections, but nothing answers.
    pub fn pause(&self) {
        assert!(process::signal(self.pid(), "STOP"), "SIGSTOP redis-server");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        assert!(process::signal(self.pid(), "CONT"), "SIGCONT redis-server");
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.log")
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.log_path());
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        if let Some(bytes) = self.options.maxmemory {
            command.args(["--maxmemory", &bytes.to_string()]);
        }
        if let Some((cert, key, ca)) = &self.options.tls {
            command
                .args(["--tls-port", &self.tls_port.to_string()])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .arg("--tls-ca-cert-file")
                .arg(ca)
                .args(["--tls-auth-clients", "no"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn redis-server (is it installed?): {e}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the server answers `PING` (`+PONG`, or `-NOAUTH` with a password).
    fn wait_ready(&mut self) {
        for _ in 0..steps(READY_LIMIT) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "redis-server on port {} exited with {status}:\n{}",
                        self.port,
                        process::tail(&self.log_path(), 20)
                    );
                }
            }
            if ping(self.port) {
                return;
            }
            sleep(STEP);
        }
        self.kill();
        panic!(
            "redis-server on port {} did not answer PING within {READY_LIMIT:?}:\n{}",
            self.port,
            process::tail(&self.log_path(), 20)
        );
    }
}

/// One inline `PING` over a fresh connection, bounded by short socket timeouts.
fn ping(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let limit = Some(Duration::from_millis(500));
    if stream.set_read_timeout(limit).is_err() || stream.set_write_timeout(limit).is_err() {
        return false;
    }
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
