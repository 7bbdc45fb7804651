//! `Gate`: a loopback TCP relay in front of a real server (Redis, Postgres) that can drop
//! exactly the next `n` connections, so a test can give a probe that opens one connection per
//! run (every warden probe does) exactly `n` failures in a row, whatever the timing: the
//! runbooks' "3 consecutive failures" held to its count on the real server, not on a mock.
//!
//! Every other connection is relayed byte for byte to the server, so pausing or killing the
//! server behind the gate fails the probe the way it would without one. A dropped connection is
//! accepted and closed at once: the client sees its connection closed before any answer.

use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    /// Connections still to drop.
    drop_next: u32,
    /// Connections accepted so far (dropped or relayed).
    accepted: u64,
}

pub struct Gate {
    port: u16,
    counts: Arc<Mutex<Counts>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gate {
    /// Relays `127.0.0.1:<port()>` to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Gate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let counts: Arc<Mutex<Counts>> = Arc::default();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = counts.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("gate runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let mut client = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let dropped = {
                        let mut c = shared.lock().expect("gate lock");
                        c.accepted += 1;
                        let drop_it = c.drop_next > 0;
                        c.drop_next = c.drop_next.saturating_sub(1);
                        drop_it
                    };
                    if dropped {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(async move {
                        let Ok(mut server) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    });
                }
            });
            // Dropping the runtime closes every relayed connection.
        });
        Gate {
            port,
            counts,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next `n` connections are closed as soon as they are accepted.
    pub fn drop_next(&self, n: u32) {
        self.counts.lock().expect("gate lock").drop_next = n;
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counts.lock().expect("gate lock").accepted
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
