//! Test harness: real servers on free loopback ports, in temp dirs, killed on drop.
//!
//! Nothing here mocks a watched system: `RedisServer` runs `redis-server`, `PostgresServer`
//! runs `initdb` + `postgres` (as the `postgres` OS user when the tests run as root), and
//! `TlsServer` (fixed certificate) and `RenewableTlsServer` (replaceable certificate) are rustls
//! servers with certificates made by [`tls::Pki`]. Every in-process HTTP server (probe targets,
//! notification receivers, the runbooks' imitations) is an [`http::HttpServer`] with a handler,
//! but for connection tests' [`raw_http::RawHttpServer`], which counts connections and closes
//! them the ways real servers do.
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
pub mod prometheus;
pub mod raw_http;
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

/// `text` with every dedup key in it written the short way, without the instance and the
/// state file's epoch: `warden/<instance>/<rule>[/<series>]/<epoch>-<n>[/hook/<h>]` becomes
/// `warden/<rule>[/<series>]/<n>[/hook/<h>]`. Tests that follow one incident through pages,
/// hooks and logs compare keys this way (the epoch is the state file's creation time, and
/// the instance the host's name); `series::` tests check the full form.
pub fn short_keys(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("warden/") {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | ',' | ']'))
            .unwrap_or(tail.len());
        out.push_str(&short_key(&tail[..end]));
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// One key, as [`short_keys`]; anything else unchanged.
pub fn short_key(key: &str) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    let numbered = |p: &str| {
        p.split_once('-').is_some_and(|(epoch, n)| {
            !epoch.is_empty()
                && epoch
                    .chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit())
        })
    };
    // warden / instance / rule / [series /] epoch-n / ...
    let Some(at) = (3..parts.len().min(5)).find(|&i| numbered(parts[i])) else {
        return key.to_string();
    };
    let n = parts[at].split_once('-').map_or("", |(_, n)| n);
    let mut short: Vec<&str> = vec!["warden"];
    short.extend(&parts[2..at]);
    short.push(n);
    short.extend(&parts[at + 1..]);
    short.join("/")
}

#[test]
fn short_keys_drop_the_instance_and_the_epoch() {
    assert_eq!(
        short_key("warden/vm/api-down/tpn4xo-1"),
        "warden/api-down/1"
    );
    assert_eq!(
        short_key("warden/vm/api-down/tpn4xo-12/hook/rollback"),
        "warden/api-down/12/hook/rollback"
    );
    assert_eq!(
        short_key("warden/vm/q/0123456789abcdef/tpn4xo-2"),
        "warden/q/0123456789abcdef/2"
    );
    assert_eq!(short_key("warden/api-down/1"), "warden/api-down/1");
    assert_eq!(
        short_keys("diag warden/w-1/api-down/x9-2 critical\n\"warden/w/a/x-1\""),
        "diag warden/api-down/2 critical\n\"warden/a/1\""
    );
}
