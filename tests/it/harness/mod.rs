//! Test harness: real servers on free loopback ports, in temp dirs, killed on drop.
//!
//! Nothing here mocks a watched system: `RedisServer` runs `redis-server`, `PostgresServer`
//! runs `initdb` + `postgres` (as the `postgres` OS user when the tests run as root), and
//! `TlsServer` (fixed certificate) and `RenewableTlsServer` (replaceable certificate) are rustls
//! servers with certificates made by [`tls::Pki`]. Every in-process HTTP server (probe targets,
//! notification receivers, the runbooks' imitations) is an [`http::HttpServer`] with a handler.
//! Every wait is bounded, and every process is stopped by `Drop`, so a failing test leaves
//! nothing running (a test binary killed by SIGKILL cannot run `Drop`; nothing can help that).

// Helpers are shared by every test module; not every module uses every one.
#![allow(dead_code)]

pub mod alertmanager;
pub mod gate;
pub mod http;
pub mod notify_receiver;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod redis;
pub mod smtp;
pub mod tls;

pub use gate::Gate;
pub use postgres::PostgresServer;
pub use redis::RedisServer;
pub use tls::{Pki, RenewableTlsServer, TlsServer};

use std::net::TcpListener;

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local addr of a bound socket")
        .port()
}
