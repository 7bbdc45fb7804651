//! Compiling the main file's `[server]`, `[log]` and `[defaults]` (the check defaults).

use std::net::SocketAddr;

use toml::Spanned;

use super::{
    Compiler, Defaults, DEFAULT_INTERVAL, DEFAULT_KEEP_ALIVE_TARGETS, DEFAULT_TIMEOUT,
    MAX_KEEP_ALIVE_TARGETS, MIN_INTERVAL, MIN_TIMEOUT,
};
use crate::config::format_duration;
use crate::config::model::*;
use crate::config::raw::*;

impl Compiler<'_> {
    pub(super) fn server(&mut self, raw: Option<&Spanned<RawServer>>) -> Option<ServerConfig> {
        let default_listen = SocketAddr::from(([127, 0, 0, 1], 9731));
        let Some(raw) = raw else {
            return Some(ServerConfig {
                listen: default_listen,
                token: None,
            });
        };
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [server]", RawServer::KEYS);
        let listen = match &r.listen {
            None => Some(default_listen),
            Some(v) => self.text(v).and_then(|text| match text.parse::<SocketAddr>() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error(
                        v.span(),
                        format!(r#"invalid listen address {text:?}: expected ip:port, e.g. "127.0.0.1:9731""#),
                    );
                    None
                }
            }),
        };
        let token_file = r
            .token_file
            .as_ref()
            .map(|v| (v, r.key_span("token_file").unwrap_or_else(|| v.span())));
        let token = self.secret("server.token", r.token.as_ref(), token_file);
        // A client cannot send a token of only whitespace (HTTP trims it from the header).
        if let Some(Some((secret, span))) = &token {
            if secret.expose().trim().is_empty() {
                let message = match &r.token_file {
                    Some(file) if r.token.is_none() => format!(
                        "server.token_file {:?} holds only whitespace; a token must have visible characters",
                        file.get_ref()
                    ),
                    _ => "server.token is only whitespace; a token must have visible characters"
                        .to_string(),
                };
                self.error(span.clone(), message);
            }
        }
        if let (Some(addr), Some(v)) = (listen, &r.listen) {
            if !addr.ip().is_loopback() && r.token.is_none() && r.token_file.is_none() {
                self.error(
                    v.span(),
                    format!("listening on {addr} (not loopback) requires server.token or server.token_file"),
                );
            }
        }
        let (listen, token) = (listen?, token?);
        (self.problems.len() == before).then_some(ServerConfig {
            listen,
            token: token.map(|(secret, _)| secret),
        })
    }

    pub(super) fn log(&mut self, raw: Option<&Spanned<RawLog>>) -> Option<LogConfig> {
        let mut config = LogConfig {
            format: LogFormat::Human,
            level: "info".to_string(),
        };
        let Some(raw) = raw else { return Some(config) };
        let before = self.problems.len();
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [log]", RawLog::KEYS);
        if let Some(v) = &r.format {
            let formats = [("human", LogFormat::Human), ("json", LogFormat::Json)];
            if let Some(format) = self.one_of(v, "log format", &formats) {
                config.format = format;
            }
        }
        if let Some(v) = &r.level {
            if let Some(level) = self.text(v) {
                if level.trim().is_empty() {
                    self.error(
                        v.span(),
                        r#"log level must not be empty, e.g. "info" or "warden=debug,info""#,
                    );
                }
                config.level = level;
            }
        }
        (self.problems.len() == before).then_some(config)
    }

    /// Check defaults; on a bad value the built-in default stands in (the error is reported).
    pub(super) fn defaults(&mut self, raw: Option<&Spanned<RawDefaults>>) -> Defaults {
        let mut defaults = Defaults {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            keep_alive_targets: DEFAULT_KEEP_ALIVE_TARGETS,
        };
        let Some(raw) = raw else { return defaults };
        let r = raw.get_ref();
        self.unknown_keys(&r.unknown, "in [defaults]", RawDefaults::KEYS);
        if let Some(v) = &r.interval {
            if let Some(d) = self.duration(v, "interval", MIN_INTERVAL) {
                defaults.interval = d;
            }
        }
        if let Some(v) = &r.timeout {
            if let Some(d) = self.duration(v, "timeout", MIN_TIMEOUT) {
                if d > defaults.interval {
                    self.error(
                        v.span(),
                        format!(
                            "timeout {} must not exceed interval {}",
                            format_duration(d),
                            format_duration(defaults.interval)
                        ),
                    );
                } else {
                    defaults.timeout = d;
                }
            }
        }
        if let Some(v) = &r.keep_alive_targets {
            if let Some(n) = self.int(v, "keep_alive_targets", 0, MAX_KEEP_ALIVE_TARGETS) {
                defaults.keep_alive_targets = usize::try_from(n).unwrap_or(usize::MAX);
            }
        }
        defaults
    }
}
