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

/// A target whose `/health` answers 200 with a JSON body that never ends (a broken proxy, a
/// runaway stream), counting what it sent.
pub struct EndlessTarget {
    server: HttpServer,
}

impl EndlessTarget {
    pub fn start() -> Self {
        let server = HttpServer::start(|_| {
            crate::harness::http::Reply::endless(200).header("content-type", "application/json")
        });
        EndlessTarget { server }
    }

    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    /// Bytes written to clients so far.
    pub fn sent(&self) -> u64 {
        self.server.streamed()
    }
}
