//! A real SMTP sink: aiosmtpd (Debian's python3-aiosmtpd) run by `smtp_sink.py` on a free
//! loopback port, optionally with STARTTLS, implicit TLS (SMTPS) and AUTH. Every accepted
//! message lands as JSON in a temp dir (see the script's doc). Killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use super::process::{self, steps, STEP};

const PYTHON: &str = "/usr/bin/python3";
const READY_LIMIT: Duration = Duration::from_secs(15);

/// Options for [`SmtpSink`].
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS (and require it before MAIL) with this cert and key.
    pub starttls: Option<(PathBuf, PathBuf)>,
    /// Speak TLS from the first byte with this cert and key.
    pub smtps: Option<(PathBuf, PathBuf)>,
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
    /// The AUTH mechanisms offered, e.g. `["LOGIN"]`; both PLAIN and LOGIN by default.
    pub mechanisms: Vec<String>,
}

impl SmtpOptions {
    pub fn starttls(mut self, cert: &Path, key: &Path) -> Self {
        self.starttls = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    pub fn smtps(mut self, cert: &Path, key: &Path) -> Self {
        self.smtps = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }

    pub fn mechanisms(mut self, mechanisms: &[&str]) -> Self {
        self.mechanisms = mechanisms.iter().map(|m| m.to_string()).collect();
        self
    }

    pub fn start(self) -> SmtpSink {
        let dir = tempfile::Builder::new()
            .prefix("warden-smtp-")
            .tempdir()
            .expect("create a temp dir for the smtp sink");
        let port = super::free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/harness/smtp_sink.py");
        let log = std::fs::File::create(dir.path().join("sink.log")).expect("sink log");
        let mut command = Command::new(PYTHON);
        command
            .arg(&script)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--out")
            .arg(dir.path());
        if let Some((cert, key)) = &self.starttls {
            command.arg("--starttls").arg(cert).arg(key);
        }
        if let Some((cert, key)) = &self.smtps {
            command.arg("--smtps").arg(cert).arg(key);
        }
        if let Some((user, password)) = &self.auth {
            command.args(["--auth", &format!("{user}:{password}")]);
        }
        if !self.mechanisms.is_empty() {
            command.args(["--auth-mechanisms", &self.mechanisms.join(",")]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("sink log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PYTHON} smtp_sink.py (python3-aiosmtpd): {e}"));
        let mut sink = SmtpSink {
            child: Some(child),
            port,
            dir,
        };
        sink.wait_ready();
        sink
    }
}

/// One message as the sink decoded it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// `none`, `starttls` or `implicit`.
    pub tls: String,
    /// `{"login": ..., "mechanism": ...}` when the client authenticated.
    pub auth: Option<serde_json::Value>,
    pub headers: Vec<(String, String)>,
    pub subject: String,
    pub body: String,
    pub raw: String,
}

impl Mail {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct SmtpSink {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpOptions::default().start()
    }

    pub fn with() -> SmtpOptions {
        SmtpOptions::default()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, in arrival order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the sink dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read a mail record");
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
            })
            .collect()
    }

    /// Waits (bounded) until at least `n` messages arrived.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Mail> {
        for _ in 0..steps(limit) {
            let mails = self.mails();
            if mails.len() >= n {
                return mails;
            }
            sleep(STEP);
        }
        self.mails()
    }

    pub fn log(&self) -> String {
        process::tail(&self.dir.path().join("sink.log"), 30)
    }

    fn wait_ready(&mut self) {
        let ready = self.dir.path().join("ready");
        for _ in 0..steps(READY_LIMIT) {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!("smtp_sink.py exited with {status}:\n{}", self.log());
                }
            }
            if ready.exists() {
                return;
            }
            sleep(STEP);
        }
        panic!(
            "smtp_sink.py on port {} not ready within {READY_LIMIT:?}:\n{}",
            self.port,
            self.log()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
