//! A hand-written HTTP/1.1 server for connection tests: it counts the connections it accepts
//! and holds open, and does to an idle or reused connection what real servers do (close it
//! after an idle timeout, half-close it, drop a request that arrives as it closes, answer
//! `Connection: close`). hyper's server hides those moments; here each is one match arm.
//!
//! It answers every request `200` with `{"status":"healthy"}` (whatever the method and path),
//! runs on its own thread and runtime, and stops (closing every connection) on `Drop`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{steps, STEP};

const BODY: &str = r#"{"status":"healthy"}"#;

/// What the server does with its connections.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Answers every request and keeps the connection open until the client closes it.
    KeepAlive,
    /// Closes a connection that has been idle this long (Node's 5 s, nginx's 75 s).
    CloseIdleAfter(Duration),
    /// Shuts down its sending half of a connection idle this long and keeps reading until
    /// the client closes: a half-closed socket.
    HalfCloseIdleAfter(Duration),
    /// Answers the first request of a connection and closes the connection when the second
    /// arrives, without an answer: the race a client loses when it reuses a connection just
    /// as the server closes it for idleness. `reset`: with a TCP reset instead of a FIN.
    DropSecondRequest { reset: bool },
    /// Answers with `Connection: close` and closes.
    ConnectionClose,
}

#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    closed: AtomicU64,
    answered: AtomicU64,
    dropped: AtomicU64,
}

pub struct RawHttpServer {
    port: u16,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawHttpServer {
    /// Serves on a free loopback port.
    pub fn start(behaviour: Behaviour) -> RawHttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let counts = Arc::new(Counts::default());
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = {
            let counts = counts.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("raw http server runtime");
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
                        counts.accepted.fetch_add(1, Ordering::SeqCst);
                        let counts = counts.clone();
                        tokio::spawn(async move {
                            serve(stream, behaviour, &counts).await;
                            counts.closed.fetch_add(1, Ordering::SeqCst);
                        });
                    }
                });
                // Dropping the runtime cancels every connection task: their sockets close.
                rt.shutdown_timeout(Duration::from_millis(100));
            })
        };
        RawHttpServer {
            port,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now (accepted and not yet closed by either side).
    pub fn open(&self) -> u64 {
        self.accepted() - self.counts.closed.load(Ordering::SeqCst)
    }

    /// Requests answered (or being answered) so far.
    pub fn answered(&self) -> u64 {
        self.counts.answered.load(Ordering::SeqCst)
    }

    /// Requests whose connection was closed instead of an answer ([`Behaviour::DropSecondRequest`]).
    pub fn dropped(&self) -> u64 {
        self.counts.dropped.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at most `n` connections are open; returns how many are.
    pub fn wait_open_at_most(&self, n: u64, limit: Duration) -> u64 {
        for _ in 0..steps(limit) {
            if self.open() <= n {
                break;
            }
            std::thread::sleep(STEP);
        }
        self.open()
    }

    /// Waits (bounded) until at least `n` requests were answered; returns how many were.
    pub fn wait_answered(&self, n: u64, limit: Duration) -> u64 {
        for _ in 0..steps(limit) {
            if self.answered() >= n {
                break;
            }
            std::thread::sleep(STEP);
        }
        self.answered()
    }
}

impl Drop for RawHttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves one connection until either side closes it.
async fn serve(mut stream: TcpStream, behaviour: Behaviour, counts: &Counts) {
    let idle = match behaviour {
        Behaviour::CloseIdleAfter(d) | Behaviour::HalfCloseIdleAfter(d) => Some(d),
        _ => None,
    };
    let mut buf = Vec::new();
    let mut served = 0u32;
    loop {
        let request = match idle {
            Some(limit) => {
                match tokio::time::timeout(limit, read_request(&mut stream, &mut buf)).await {
                    Ok(request) => request,
                    Err(_) => {
                        if let Behaviour::HalfCloseIdleAfter(_) = behaviour {
                            let _ = stream.shutdown().await;
                            // Keep reading (and discarding) until the client closes.
                            let mut sink = [0u8; 1024];
                            while let Ok(n) = stream.read(&mut sink).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                        return;
                    }
                }
            }
            None => read_request(&mut stream, &mut buf).await,
        };
        if !request {
            return;
        }
        served += 1;
        match behaviour {
            Behaviour::DropSecondRequest { reset } if served == 2 => {
                counts.dropped.fetch_add(1, Ordering::SeqCst);
                if reset {
                    let _ = stream.set_zero_linger();
                }
                return;
            }
            // Counted before the answer goes out: the client may act on it at once.
            Behaviour::ConnectionClose => {
                counts.answered.fetch_add(1, Ordering::SeqCst);
                let _ = stream
                    .write_all(answer("connection: close\r\n").as_bytes())
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
            _ => {
                counts.answered.fetch_add(1, Ordering::SeqCst);
                if stream.write_all(answer("").as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn answer(extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{BODY}",
        BODY.len()
    )
}

/// Reads one request (head and a `content-length` body) off `stream`, keeping what follows
/// it in `buf`; false when the client closed the connection first.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let total = end + 4 + length;
            if buf.len() >= total {
                buf.drain(..total);
                return true;
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}
