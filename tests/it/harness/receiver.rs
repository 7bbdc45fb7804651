//! A notification receiver: a thin wrapper over the harness's [`HttpServer`] that records
//! every POSTed JSON body and answers as a test tells it (accept, an error status, 429 with
//! `Retry-After`, or hang), and [`webhook_sink`], warden's own webhook notifier aimed at it, so
//! what counts as delivered is decided by warden and what was accepted by what the receiver
//! answered. Also [`rerun_self`], to run one test of this binary as a child process that a
//! test can `kill -9`.

use std::collections::VecDeque;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warden::clock::Clock;
use warden::config::notifier::{NotifierConfig, NotifierKind, WebhookConfig, WebhookFormat};
use warden::notify::Notifier;
use warden::secret::Secret;

use super::http::{self, HttpServer};

/// How the receiver answers a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 202 Accepted.
    Accept,
    /// This status, no `Retry-After`.
    Status(u16),
    /// 429 with `Retry-After: N` (seconds).
    TooManyRequests(u64),
    /// Never answer (the connection stays open).
    Hang,
}

impl Answer {
    fn reply(&self) -> http::Reply {
        match self {
            Answer::Accept => http::Reply::status(202),
            Answer::Status(code) => http::Reply::status(*code),
            Answer::TooManyRequests(secs) => http::Reply::status(429).retry_after(*secs),
            Answer::Hang => http::Reply::hang(),
        }
        .body("{}")
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: serde_json::Value,
    pub at: Instant,
    /// The status the receiver answered; `None` while it hangs.
    pub status: Option<u16>,
}

struct State {
    default: Answer,
    script: VecDeque<Answer>,
    delay: Duration,
}

pub struct Receiver {
    server: HttpServer,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Starts on a free loopback port, accepting everything.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts on `port` (0: any free port).
    pub fn start_on(port: u16) -> Self {
        let state = Arc::new(Mutex::new(State {
            default: Answer::Accept,
            script: VecDeque::new(),
            delay: Duration::ZERO,
        }));
        let shared = state.clone();
        let server = HttpServer::start_on(port, move |_| {
            let mut s = shared.lock().expect("receiver lock");
            let answer = s.script.pop_front().unwrap_or_else(|| s.default.clone());
            answer.reply().delay(s.delay)
        });
        Receiver { server, state }
    }

    pub fn url(&self) -> String {
        self.server.url("/notify")
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The answer to every request not covered by [`Receiver::script`].
    pub fn answer(&self, answer: Answer) {
        self.state.lock().expect("receiver lock").default = answer;
    }

    /// Answers for the next requests, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.state.lock().expect("receiver lock").script = answers.into();
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().expect("receiver lock").delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.server
            .exchanges()
            .into_iter()
            .map(|e| Received {
                body: serde_json::from_slice(&e.request.body).unwrap_or(serde_json::Value::Null),
                at: e.request.at,
                status: e.answered(),
            })
            .collect()
    }

    /// The bodies this receiver answered with a 2xx, in order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|r| r.body)
            .collect()
    }
}

/// warden's webhook notifier (warden's own payload) named `name`, posting to `url`.
pub fn webhook_sink(name: &str, url: &str, timeout: Duration) -> Arc<Notifier> {
    let config = NotifierConfig {
        name: name.to_string(),
        timeout,
        kind: NotifierKind::Webhook(WebhookConfig {
            url: Secret::new(url.to_string()),
            headers: Vec::new(),
            format: WebhookFormat::Warden,
            template: None,
            external_url: None,
        }),
    };
    let notifier = Notifier::new(&config, &Clock::system())
        .unwrap_or_else(|e| panic!("build the webhook notifier {name}: {e}"));
    Arc::new(notifier)
}

/// A command that runs the one test `test` of this very test binary (e.g.
/// `outbox::crash_child`) in a child process; the test reads what to do from `env`.
pub fn rerun_self(test: &str, env: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().expect("path of the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
