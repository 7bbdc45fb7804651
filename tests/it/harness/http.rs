//! The one in-process HTTP server of the tests: it listens on a loopback port (a free one, or
//! one given), hands every request to the test's handler, answers what the handler says
//! (status, headers, body, after a delay, or never), and records each request with its arrival
//! time and the answer it got. Targets that warden probes, receivers that warden's notifiers
//! post to and the runbooks' imitated services are thin wrappers over it.
//!
//! It runs on its own thread and runtime, so it answers (or hangs) whatever the test's thread
//! or runtime does. [`HttpServer::down`] closes the listener and every open connection (hung
//! ones included), [`HttpServer::up`] listens again on the same port, and `Drop` does `down`.
//! It decides nothing about what an answer means: a test asks what was answered.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use super::process::{steps, STEP};

/// One request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When its body had arrived (before any delay of the answer).
    pub at: Instant,
}

impl Request {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, showing it, when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} {} is not JSON ({e}): {}",
                self.method,
                self.target,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// What the server answers one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never answer: the connection stays open until the client leaves or the server stops.
    pub hang: bool,
    /// Answer `status` with a chunked body that never ends (64 KiB chunks of spaces), until
    /// the client leaves; [`HttpServer::streamed`] counts the bytes.
    pub endless: bool,
}

impl Reply {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delay: Duration::ZERO,
            hang: false,
            endless: false,
        }
    }

    /// `status` with a body that never ends.
    pub fn endless(status: u16) -> Reply {
        Reply {
            endless: true,
            ..Reply::status(status)
        }
    }

    /// No answer at all.
    pub fn hang() -> Reply {
        Reply {
            hang: true,
            ..Reply::status(200)
        }
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Retry-After: secs`.
    pub fn retry_after(self, secs: u64) -> Reply {
        self.header("retry-after", &secs.to_string())
    }

    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// A request and the answer the server gave it (or, when it hangs, is not giving it).
#[derive(Clone, Debug)]
pub struct Exchange {
    pub request: Request,
    pub reply: Reply,
}

impl Exchange {
    /// The status the server answered; `None` when it never answers.
    pub fn answered(&self) -> Option<u16> {
        (!self.reply.hang).then_some(self.reply.status)
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;
type Log = Arc<Mutex<Vec<Exchange>>>;

pub struct HttpServer {
    addr: SocketAddr,
    handler: Handler,
    tls: Option<tokio_rustls::TlsAcceptor>,
    log: Log,
    /// Bytes of endless bodies sent so far.
    streamed: Arc<AtomicU64>,
    serving: Option<Serving>,
}

struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl HttpServer {
    /// Serves `handler` on a free loopback port.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> HttpServer {
        Self::start_on(0, handler)
    }

    /// Serves `handler` on `port` (0: a free one).
    pub fn start_on(
        port: u16,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        Self::launch(port, None, Arc::new(handler))
    }

    /// Serves `handler` over TLS with `leaf`'s certificate, on a free loopback port.
    pub fn start_tls(
        leaf: &super::tls::Leaf,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> HttpServer {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(leaf.chain.clone(), leaf.key.clone_key())
        .expect("server cert");
        let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::launch(0, Some(tls), Arc::new(handler))
    }

    fn launch(port: u16, tls: Option<tokio_rustls::TlsAcceptor>, handler: Handler) -> HttpServer {
        let listener = bind(port);
        let addr = listener.local_addr().expect("local addr of a bound socket");
        let mut server = HttpServer {
            addr,
            handler,
            tls,
            log: Arc::default(),
            streamed: Arc::default(),
            serving: None,
        };
        server.serve(listener);
        server
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request so far with its answer, in arrival order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("log lock").clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.exchanges().into_iter().map(|e| e.request).collect()
    }

    /// Bytes of endless bodies ([`Reply::endless`]) sent so far.
    pub fn streamed(&self) -> u64 {
        self.streamed.load(Ordering::Relaxed)
    }

    /// How many requests to `path` arrived.
    pub fn count(&self, path: &str) -> u64 {
        let log = self.log.lock().expect("log lock");
        log.iter().filter(|e| e.request.path() == path).count() as u64
    }

    /// Forgets every request so far.
    pub fn clear(&self) {
        self.log.lock().expect("log lock").clear();
    }

    /// Waits (bounded) until at least `n` requests arrived; returns them.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Request> {
        for _ in 0..steps(limit) {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(STEP);
        }
        self.requests()
    }

    /// Closes the port and every open connection: clients get "connection refused".
    pub fn down(&mut self) {
        if let Some(serving) = self.serving.take() {
            let _ = serving.stop.send(());
            let _ = serving.thread.join();
        }
    }

    /// Listens again on the same port.
    pub fn up(&mut self) {
        if self.serving.is_none() {
            let listener = bind(self.addr.port());
            self.serve(listener);
        }
    }

    fn serve(&mut self, listener: std::net::TcpListener) {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (handler, log, tls) = (self.handler.clone(), self.log.clone(), self.tls.clone());
        let streamed = self.streamed.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("http server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let (handler, log, tls) = (handler.clone(), log.clone(), tls.clone());
                    let streamed = streamed.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let (handler, log) = (handler.clone(), log.clone());
                            let streamed = streamed.clone();
                            async move {
                                Ok::<_, Infallible>(respond(req, &handler, &log, streamed).await)
                            }
                        });
                        match tls {
                            None => {
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                            // A client that rejects the certificate aborts the handshake.
                            Some(acceptor) => {
                                if let Ok(stream) = acceptor.accept(stream).await {
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                }
                            }
                        }
                    });
                }
            });
            // Shutting the runtime down cancels every connection task, hung ones included:
            // their sockets close.
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        self.serving = Some(Serving { stop, thread });
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.down();
    }
}

fn bind(port: u16) -> std::net::TcpListener {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    listener
}

/// A body that never ends: 64 KiB chunks of spaces, counted as they are taken.
struct Endless {
    chunk: Bytes,
    sent: Arc<AtomicU64>,
}

impl hyper::body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.sent
            .fetch_add(self.chunk.len() as u64, Ordering::Relaxed);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(self.chunk.clone()))))
    }
}

type Body = Either<Full<Bytes>, Endless>;

async fn respond(
    req: hyper::Request<hyper::body::Incoming>,
    handler: &Handler,
    log: &Mutex<Vec<Exchange>>,
    streamed: Arc<AtomicU64>,
) -> hyper::Response<Body> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    let request = Request {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    };
    let reply = handler(&request);
    log.lock().expect("log lock").push(Exchange {
        request,
        reply: reply.clone(),
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if reply.hang {
        std::future::pending::<()>().await;
    }
    let body = if reply.endless {
        Either::Right(Endless {
            chunk: Bytes::from(vec![b' '; 64 * 1024]),
            sent: streamed,
        })
    } else {
        Either::Left(Full::new(Bytes::from(reply.body)))
    };
    let mut response = hyper::Response::new(body);
    *response.status_mut() = hyper::StatusCode::from_u16(reply.status).expect("a valid status");
    for (name, value) in &reply.headers {
        response.headers_mut().append(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("a header name"),
            value.parse().expect("a header value"),
        );
    }
    response
}
