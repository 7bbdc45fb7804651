//! An in-process HTTP target whose status, body and latency a test changes while warden
//! watches it: a route table over the harness's [`HttpServer`], so it answers whatever the
//! test does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::http::{self, HttpServer};

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
}

type Routes = Arc<Mutex<HashMap<String, Reply>>>;

pub struct HttpTarget {
    server: HttpServer,
    routes: Routes,
}

impl HttpTarget {
    /// Starts a target on a free loopback port. Unknown paths answer 404.
    pub fn start() -> Self {
        let routes = Routes::default();
        let server = HttpServer::start(answer(routes.clone()));
        HttpTarget { server, routes }
    }

    /// Starts an HTTPS target serving `leaf`'s certificate.
    pub fn start_tls(leaf: &crate::harness::tls::Leaf) -> Self {
        let routes = Routes::default();
        let server = HttpServer::start_tls(leaf, answer(routes.clone()));
        HttpTarget { server, routes }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// `https://localhost:PORT/path` (the test certificates are issued for `localhost`).
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr().port(), path)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    pub fn set_json(&self, path: &str, status: u16, body: serde_json::Value) {
        self.set(path, Reply::json(status, body));
    }

    pub fn set_delay(&self, path: &str, delay: Duration) {
        if let Some(r) = self.routes.lock().unwrap().get_mut(path) {
            r.delay = delay;
        }
    }

    pub fn hits(&self, path: &str) -> u64 {
        self.server.count(path)
    }
}

/// The route's reply as JSON, or 404 for a path without one.
fn answer(routes: Routes) -> impl Fn(&http::Request) -> http::Reply + Send + Sync + 'static {
    move |request| {
        let reply = routes.lock().unwrap().get(request.path()).cloned();
        let reply = reply.unwrap_or(Reply {
            status: 404,
            body: "not found".into(),
            delay: Duration::ZERO,
        });
        http::Reply::status(reply.status)
            .header("content-type", "application/json")
            .body(reply.body)
            .delay(reply.delay)
    }
}

/// A target whose every answer is `200` with a chunked body that never ends: it writes until
/// the client goes away or the target is dropped, and counts what it wrote.
pub struct EndlessTarget {
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EndlessTarget {
    pub fn start() -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind endless target");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (s, n) = (stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let (s, n) = (s.clone(), n.clone());
                // Each connection writes until its client leaves or the target stops; the
                // timeouts make it notice `stop` within a second either way.
                std::thread::spawn(move || {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(k) => head.extend_from_slice(&buf[..k]),
                        }
                    }
                    let header = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                    if stream.write_all(header.as_bytes()).is_err() {
                        return;
                    }
                    let payload = vec![b' '; 64 * 1024];
                    let mut chunk = format!("{:x}\r\n", payload.len()).into_bytes();
                    chunk.extend_from_slice(&payload);
                    chunk.extend_from_slice(b"\r\n");
                    while !s.load(Ordering::Relaxed) {
                        match stream.write(&chunk) {
                            Ok(0) => return,
                            Ok(k) => {
                                n.fetch_add(k as u64, Ordering::Relaxed);
                                if stream.write_all(&chunk[k..]).is_err() {
                                    return;
                                }
                                n.fetch_add((chunk.len() - k) as u64, Ordering::Relaxed);
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                            Err(_) => return,
                        }
                    }
                });
            }
        });
        EndlessTarget {
            addr,
            stop,
            sent,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Bytes written to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for EndlessTarget {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
