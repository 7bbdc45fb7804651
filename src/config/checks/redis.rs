//! `kind = "redis"`: `PING` and `INFO`, memory and clients, extra numeric `INFO` fields.

use std::path::PathBuf;

use super::{builtin_values, KindSpec};
use crate::config::compile::{Compiler, Span};
use crate::config::raw::RawCheck;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct RedisCheck {
    /// `redis://[:password@]host:port[/db]` or `rediss://...`.
    pub url: Secret,
    /// Extra numeric `INFO` fields exposed as values, e.g. `instantaneous_ops_per_sec`.
    pub info_fields: Vec<String>,
    /// CA certificates (PEM) to trust for `rediss://` instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl KindSpec for RedisCheck {
    const NAME: &'static str = "redis";
    const KEYS: &'static [&'static str] = &["url", "info_fields", "ca_file"];
    const VALUES: &'static [&'static str] = &[
        "used_memory",
        "maxmemory",
        "memory_ratio",
        "connected_clients",
        "blocked_clients",
    ];

    fn more_values(&self) -> Vec<String> {
        self.info_fields.clone()
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.url]
    }
}

impl Compiler<'_> {
    pub(in crate::config) fn redis(&mut self, r: &RawCheck, header: &Span) -> Option<RedisCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", RedisCheck::NAME)
            .and_then(|v| {
                let text = self.text(v)?;
                let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
                if !schemes.iter().any(|s| text.starts_with(s)) {
                    // The URL may hold a password: name the field, not the value.
                    self.error(v.span(), "redis url must start with redis:// or rediss://");
                }
                Some(Secret::new(text))
            });
        let builtin = builtin_values::<RedisCheck>();
        let mut info_fields: Vec<String> = Vec::new();
        for v in r.info_fields.iter().flat_map(|l| l.get_ref().iter()) {
            let name = v.get_ref();
            if !self.value_name(name, v.span(), "info field") {
                continue;
            }
            if builtin.contains(name) {
                self.error(
                    v.span(),
                    format!("info field {name:?} is already a built-in value of redis checks"),
                );
            } else if info_fields.contains(name) {
                self.error(v.span(), format!("info field {name:?} is listed twice"));
            } else {
                info_fields.push(name.clone());
            }
        }
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let (url, ca_file) = (url?, ca_file?);
        (self.problems.len() == before).then_some(RedisCheck {
            url,
            info_fields,
            ca_file,
        })
    }
}
