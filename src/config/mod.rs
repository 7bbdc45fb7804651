//! Configuration: TOML files in, a validated [`Config`] out.
//!
//! Two types, two steps (see ARCHITECTURE.md): raw serde structs that mirror the file
//! (`raw`), read with their includes by `load`, and the validated model that the rest of
//! warden runs on (`model`), built by `compile`. Compiling collects every error as
//! `file:line:col: message` ([`Diagnostics`]). This module reads files and the environment
//! and nothing else: no sockets, no clocks. It owns every validated config type, the
//! notifiers' (`notifier`) and the hooks' (`hook`) included: `notify` and `hook` import
//! them from here, and this module imports neither.

mod alerting;
mod assertion;
mod checks;
mod compile;
mod diag;
mod duration;
mod env;
pub mod hook;
mod load;
pub mod model;
pub mod notifier;
pub mod policy;
mod raw;
pub mod slo;
pub mod suppression;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_alerting;
#[cfg(test)]
mod tests_limits;
#[cfg(test)]
mod tests_slo;
pub mod window;

use std::path::Path;

pub use alerting::DEFAULT_ACK_LINK_TTL;
pub use assertion::{parse_assertion, parse_condition, parse_path};
pub use checks::*;
pub use diag::{Diagnostic, Diagnostics};
pub use duration::{format_duration, parse_duration};
pub use model::*;
pub use slo::{percent, period_text, AlertConfig, Sli, SloConfig, SLO_LEVEL_VALUE};

/// The most files a config may have: the main file and every include.
pub const MAX_CONFIG_FILES: usize = 1_000;
/// The most bytes a config's files may add up to.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;
/// The most directory entries one include pattern may look through.
pub const MAX_GLOB_ENTRIES: usize = 10_000;
/// The largest file a config may name (a token, a CA bundle, a secret).
pub const MAX_NAMED_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Loads and validates a config, reading `${NAME}` from the process environment.
pub fn load(path: &Path) -> Result<Config, Diagnostics> {
    load_with_env(path, &|name| std::env::var(name).ok())
}

/// Loads and validates a config, reading `${NAME}` through `env`.
pub fn load_with_env(
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Diagnostics> {
    let read = |p: &Path| crate::files::read_regular(p, MAX_NAMED_FILE_BYTES);
    load_with_host(path, &compile::Host { env, read: &read })
}

/// Loads and validates a config; everything compiling reads (the environment, secrets, CA
/// files, the host name) goes through `host`.
fn load_with_host(path: &Path, host: &compile::Host<'_>) -> Result<Config, Diagnostics> {
    load_within(path, host, load::Limits::DEFAULT)
}

/// [`load_with_host`] reading at most what `limits` allow.
fn load_within(
    path: &Path,
    host: &compile::Host<'_>,
    limits: load::Limits,
) -> Result<Config, Diagnostics> {
    let tree = load::load_tree(path, host.env, limits);
    let compiled = compile::compile(path, &tree.files, host);
    let mut problems = tree.problems;
    match compiled {
        Ok(config) if problems.is_empty() => return Ok(config),
        Ok(_) => {}
        Err(more) => problems.extend(more),
    }
    let sources: Vec<diag::SourceFile> = tree.files.into_iter().map(|f| f.source).collect();
    Err(diag::place(&sources, problems))
}
