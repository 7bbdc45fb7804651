//! A real `prometheus` (Debian package, 2.42) on a free loopback port, over samples backfilled
//! with `promtool tsdb create-blocks-from openmetrics` (so a test needs no real-time waiting:
//! the samples carry their own timestamps), scraping nothing. Killed on drop.
//!
//! [`Prometheus::query`] is an instant query (`/api/v1/query?query=..&time=..`) over a fresh
//! HTTP/1.0 connection with bounded socket timeouts; the answer is the JSON `data` object, or
//! Prometheus' error text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use tempfile::TempDir;

use super::alertmanager::ready;
use super::process::{self, steps, STEP};

const BINARY: &str = "prometheus";
const PROMTOOL: &str = "promtool";
const READY_LIMIT: Duration = Duration::from_secs(20);
const BACKFILL_LIMIT: Duration = Duration::from_secs(60);
const QUERY_LIMIT: Duration = Duration::from_secs(10);

/// Scrapes nothing: every sample comes from the backfilled blocks.
const CONFIG: &str = "\
global:
  scrape_interval: 1h
  evaluation_interval: 1h
scrape_configs: []
";

pub struct Prometheus {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl Prometheus {
    /// Backfills `openmetrics` (OpenMetrics text with explicit timestamps in seconds, ending
    /// `# EOF`) into blocks with `promtool`, then starts Prometheus over them and waits until
    /// `/-/ready`. Panics (with promtool's or Prometheus' output) if either fails.
    pub fn start_with_openmetrics(openmetrics: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("warden-prometheus-")
            .tempdir()
            .expect("create a temp dir for prometheus");
        let input = dir.path().join("samples.om");
        std::fs::write(&input, openmetrics).expect("write the OpenMetrics file");
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).expect("create the storage dir");
        let out = process::run_bounded(
            Command::new(PROMTOOL)
                .args(["tsdb", "create-blocks-from", "openmetrics"])
                .arg(&input)
                .arg(&storage),
            BACKFILL_LIMIT,
        );
        assert!(
            out.status.success(),
            "{PROMTOOL} tsdb create-blocks-from openmetrics failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, CONFIG).expect("write prometheus.yml");
        let port = super::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // The backfilled blocks are recent, but a long retention keeps them whatever
            // the data set's age.
            .arg("--storage.tsdb.retention.time=3650d")
            .arg("--log.level=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("spawn {BINARY} (run scripts/install-test-deps.sh to install it): {e}")
            });
        let mut prom = Prometheus {
            child: Some(child),
            port,
            dir,
        };
        prom.wait_ready();
        prom
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        process::tail(&self.dir.path().join("prometheus.log"), 30)
    }

    /// An instant query of `expr` at `t_ms` (milliseconds since the epoch): the response's
    /// `data` (`{"resultType": .., "result": ..}`), or `Err` with Prometheus' error (or the
    /// transport's).
    pub fn query(&self, expr: &str, t_ms: i64) -> Result<serde_json::Value, String> {
        let time = format!("{}.{:03}", t_ms.div_euclid(1000), t_ms.rem_euclid(1000));
        let path = format!("/api/v1/query?query={}&time={time}", percent_encode(expr));
        let body = http_get(self.port, &path)?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "transport: response is not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        match json["status"].as_str() {
            Some("success") => Ok(json["data"].clone()),
            _ => Err(format!(
                "{}: {}",
                json["errorType"].as_str().unwrap_or("?"),
                json["error"].as_str().unwrap_or("?")
            )),
        }
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

/// Everything but RFC 3986's unreserved characters, percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET path` over HTTP/1.0 (so the body is neither chunked nor kept alive): the body of any
/// status (Prometheus answers errors with a JSON body too).
fn http_get(port: u16, path: &str) -> Result<Vec<u8>, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("transport: connect: {e}"))?;
    stream
        .set_read_timeout(Some(QUERY_LIMIT))
        .and_then(|()| stream.set_write_timeout(Some(QUERY_LIMIT)))
        .map_err(|e| format!("transport: {e}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("transport: write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("transport: read: {e}"))?;
    let Some(at) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Err(format!(
            "transport: no header end in {:?}",
            String::from_utf8_lossy(&response)
        ));
    };
    Ok(response[at + 4..].to_vec())
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
