//! An in-process HTTP receiver that records every request (method, path, headers, body) and
//! answers what the test says (status, headers, body, delay): the far end of a webhook,
//! Slack, PagerDuty or Alertmanager notifier. A thin wrapper over the harness's
//! [`HttpServer`], so it answers (or hangs) whatever the test's runtime does. Stopped on drop.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http::{self, HttpServer};

/// What the receiver answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a hanging receiver).
    pub delay: Duration,
    /// Answer with what was received (path, headers, body) as the body, after `body`.
    pub echo: bool,
}

impl Answer {
    pub fn status(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
            echo: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }

    /// Echo everything received, secrets included, so a test can prove they are scrubbed.
    pub fn echo(mut self) -> Answer {
        self.echo = true;
        self
    }
}

/// One request as received.
pub type Received = http::Request;

pub struct Receiver {
    server: HttpServer,
    answer: Arc<Mutex<Answer>>,
}

impl Receiver {
    /// A receiver on a free loopback port answering `answer` to every request.
    pub fn start(answer: Answer) -> Receiver {
        let answer = Arc::new(Mutex::new(answer));
        let current = answer.clone();
        let server = HttpServer::start(move |request| {
            let answer = current.lock().expect("answer lock").clone();
            reply(&answer, request)
        });
        Receiver { server, answer }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub fn set(&self, answer: Answer) {
        *self.answer.lock().expect("answer lock") = answer;
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.server.requests()
    }

    /// The single request received so far; panics unless there is exactly one.
    pub fn only(&self) -> Received {
        let all = self.received();
        assert_eq!(all.len(), 1, "expected one request, got {all:#?}");
        all.into_iter().next().unwrap()
    }

    pub fn clear(&self) {
        self.server.clear();
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        self.server.wait_for(n, limit)
    }
}

fn reply(answer: &Answer, received: &Received) -> http::Reply {
    let mut body = answer.body.clone();
    if answer.echo {
        // Compact, secrets first, so they fall inside a reason's 200-byte excerpt.
        let header_values: Vec<&str> = received
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-") || n == "authorization")
            .map(|(_, v)| v.as_str())
            .collect();
        body.push_str(&format!(
            "{} {} {}",
            received.target,
            header_values.join(" "),
            String::from_utf8_lossy(&received.body)
        ));
    }
    let mut reply = http::Reply::status(answer.status)
        .body(body)
        .delay(answer.delay);
    for (name, value) in &answer.headers {
        reply = reply.header(name, value);
    }
    reply
}
