//! `kind = "system"`: CPU, memory and load of the host or warden's cgroup, a file system's
//! space.

use std::path::{Path, PathBuf};

use super::KindSpec;
use crate::config::compile::Compiler;
use crate::config::raw::RawCheck;

#[derive(Debug, Clone, PartialEq)]
pub struct SystemCheck {
    pub scope: SystemScope,
    /// Adds `disk_ratio` and `disk_free_bytes` for the file system holding this (absolute) path.
    pub disk_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemScope {
    /// The cgroup when warden's own cgroup v2 (or an ancestor) sets a memory or CPU limit,
    /// else the host. Decided at every probe.
    Auto,
    Host,
    Cgroup,
}

impl KindSpec for SystemCheck {
    const NAME: &'static str = "system";
    const KEYS: &'static [&'static str] = &["scope", "disk_path"];
    const VALUES: &'static [&'static str] = &[
        "cpu_ratio",
        "memory_ratio",
        "memory_used_bytes",
        "memory_limit_bytes",
        "load1",
    ];

    fn more_values(&self) -> Vec<String> {
        match self.disk_path {
            Some(_) => vec!["disk_ratio".to_string(), "disk_free_bytes".to_string()],
            None => Vec::new(),
        }
    }
}

impl Compiler<'_> {
    pub(in crate::config) fn system(&mut self, r: &RawCheck) -> Option<SystemCheck> {
        let scope = match &r.scope {
            None => Some(SystemScope::Auto),
            Some(v) => self.one_of(
                v,
                "scope",
                &[
                    ("auto", SystemScope::Auto),
                    ("host", SystemScope::Host),
                    ("cgroup", SystemScope::Cgroup),
                ],
            ),
        };
        let disk_path = match &r.disk_path {
            None => Some(None),
            Some(v) => self.text(v).and_then(|text| {
                if Path::new(&text).is_absolute() {
                    Some(Some(PathBuf::from(text)))
                } else {
                    self.error(
                        v.span(),
                        format!(r#"disk_path must be an absolute path, e.g. "/" or "/var/lib/warden", got {text:?}"#),
                    );
                    None
                }
            }),
        };
        Some(SystemCheck {
            scope: scope?,
            disk_path: disk_path?,
        })
    }
}
