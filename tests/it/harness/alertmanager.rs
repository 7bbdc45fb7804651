//! A real `prometheus-alertmanager` (Debian package) on a free loopback port, with a minimal
//! config (one route to a receiver that sends nothing), storage in a temp dir and clustering
//! off. Killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use tempfile::TempDir;

use super::process::{self, steps, STEP};

const BINARY: &str = "prometheus-alertmanager";
const READY_LIMIT: Duration = Duration::from_secs(20);

const CONFIG: &str = "\
route:
  receiver: blackhole
  group_by: [alertname]
  group_wait: 1h
  group_interval: 1h
  repeat_interval: 4h
receivers:
  - name: blackhole
";

pub struct Alertmanager {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        let dir = tempfile::Builder::new()
            .prefix("warden-alertmanager-")
            .tempdir()
            .expect("create a temp dir for alertmanager");
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, CONFIG).expect("write alertmanager.yml");
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).expect("create the storage dir");
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn {BINARY} (run scripts/install-test-deps.sh to install it): {e}")
            });
        let mut am = Alertmanager {
            child: Some(child),
            port,
            dir,
        };
        am.wait_ready();
        am
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        process::tail(&self.dir.path().join("alertmanager.log"), 30)
    }

    fn wait_ready(&mut self) {
        for _ in 0..steps(READY_LIMIT) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("{BINARY} exited with {status}:\n{}", self.log());
                }
            }
            if ready(self.port) {
                return;
            }
            sleep(STEP);
        }
        panic!(
            "{BINARY} on port {} not ready within {READY_LIMIT:?}:\n{}",
            self.port,
            self.log()
        );
    }
}

/// `GET /-/ready` answers 200, over a fresh connection with short socket timeouts (the readiness
/// endpoint of Alertmanager and Prometheus alike).
pub(super) fn ready(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let limit = Some(Duration::from_millis(500));
    if stream.set_read_timeout(limit).is_err() || stream.set_write_timeout(limit).is_err() {
        return false;
    }
    let request = "GET /-/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 32];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"HTTP/1.1 200"),
        Err(_) => false,
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
