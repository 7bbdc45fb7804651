//! `kind = "redis"`: `PING` and `INFO`, memory and clients, extra numeric `INFO` fields.

use std::path::PathBuf;

use super::KindSpec;
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
