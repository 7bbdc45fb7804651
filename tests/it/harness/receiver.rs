//! A notification receiver: an in-process HTTP server that records every POSTed JSON body and
//! answers as a test tells it (accept, an error status, 429 with `Retry-After`, or hang), and
//! [`PostSink`], a minimal notifier that POSTs an event to it and classifies the answer the way
//! warden's real notifiers do. Also [`rerun_self`], to run one test of this binary as a child
//! process that a test can `kill -9`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use warden::alert::{BoxFuture, Delivery, Event, Sink};

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

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: serde_json::Value,
    pub at: Instant,
    pub answer: Answer,
}

#[derive(Default)]
struct State {
    default: Option<Answer>,
    script: VecDeque<Answer>,
    delay: Duration,
    log: Vec<Received>,
}

pub struct Receiver {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free loopback port, accepting everything.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts on `port` (0: any free port).
    pub fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State {
            default: Some(Answer::Accept),
            ..State::default()
        }));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let (stream, _) = tokio::select! {
                        _ = &mut stop_rx => return,
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    };
                    let state = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(answer(req, state).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
            // Dropping the runtime drops every connection, hung ones included.
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        Receiver {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The answer to every request not covered by [`Receiver::script`].
    pub fn answer(&self, answer: Answer) {
        self.state.lock().unwrap().default = Some(answer);
    }

    /// Answers for the next requests, in order.
    pub fn script(&self, answers: Vec<Answer>) {
        self.state.lock().unwrap().script = answers.into();
    }

    /// Waits this long before answering each request.
    pub fn delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().log.clone()
    }

    /// The bodies this receiver accepted (answered 202), in order.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|r| r.answer == Answer::Accept)
            .map(|r| r.body)
            .collect()
    }
}

async fn answer(
    req: Request<hyper::body::Incoming>,
    state: Arc<Mutex<State>>,
) -> Response<Full<Bytes>> {
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let (answer, delay) = {
        let mut s = state.lock().unwrap();
        let answer = s
            .script
            .pop_front()
            .or_else(|| s.default.clone())
            .unwrap_or(Answer::Accept);
        s.log.push(Received {
            body,
            at: Instant::now(),
            answer: answer.clone(),
        });
        (answer, s.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(b"{}")));
    match answer {
        Answer::Accept => *resp.status_mut() = hyper::StatusCode::ACCEPTED,
        Answer::Status(code) => {
            *resp.status_mut() = hyper::StatusCode::from_u16(code).expect("valid status")
        }
        Answer::TooManyRequests(secs) => {
            *resp.status_mut() = hyper::StatusCode::TOO_MANY_REQUESTS;
            resp.headers_mut().insert(
                "retry-after",
                secs.to_string().parse().expect("header value"),
            );
        }
        Answer::Hang => std::future::pending::<()>().await,
    }
    resp
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A minimal webhook notifier: POSTs the event as JSON, classifies like the real ones
/// (2xx ok; 429 and 5xx and connection errors retryable, with `Retry-After`; other 4xx
/// permanent).
pub struct PostSink {
    name: String,
    url: String,
    client: reqwest::Client,
}

impl PostSink {
    pub fn new(name: &str, url: &str, timeout: Duration) -> Arc<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .expect("http client");
        Arc::new(PostSink {
            name: name.into(),
            url: url.into(),
            client,
        })
    }
}

impl Sink for PostSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Delivery> {
        Box::pin(async move {
            let body = serde_json::to_vec(event).expect("an event serialises");
            let request = self
                .client
                .post(&self.url)
                .header("content-type", "application/json")
                .body(body);
            let resp = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    return Delivery::Retryable {
                        reason: format!("{}", e.without_url()),
                        retry_after: None,
                    }
                }
            };
            let status = resp.status();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if status.is_success() {
                Delivery::Ok
            } else if status.as_u16() == 429 || status.is_server_error() {
                Delivery::Retryable {
                    reason: status.to_string(),
                    retry_after,
                }
            } else {
                Delivery::Permanent {
                    reason: status.to_string(),
                }
            }
        })
    }
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
