//! `kind = "exec"`: a Nagios-style plugin run, its exit status and perfdata.

use std::path::PathBuf;

use super::KindSpec;
use crate::config::model::ExecProgram;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct ExecCheck {
    pub program: ExecProgram,
    /// Extra environment for the child; values may hold credentials, so they are secrets.
    pub env: Vec<(String, Secret)>,
    /// Working directory of the child (relative paths were joined to the config file's
    /// directory); `None`: warden's own.
    pub workdir: Option<PathBuf>,
    /// Output kept per stream (stdout, stderr); the rest is read and discarded. Default 8 KiB.
    pub max_output_bytes: usize,
    /// Add the implicit rule named like the check that maps the exit status to a state
    /// (compile adds it to `Config::rules`). Default true.
    pub status_rule: bool,
}

impl ExecCheck {
    /// The program as people name it, for messages and the status rule's description:
    /// `command[0]`, or the first word of a shell script. Never the arguments (they may carry
    /// interpolated credentials).
    pub fn program_name(&self) -> &str {
        match &self.program {
            ExecProgram::Argv(argv) => argv.first().map_or("", String::as_str),
            ExecProgram::Shell(script) => script.split_whitespace().next().unwrap_or("sh"),
        }
    }
}

impl KindSpec for ExecCheck {
    const NAME: &'static str = "exec";
    const KEYS: &'static [&'static str] = &[
        "command",
        "shell",
        "env",
        "workdir",
        "max_output_bytes",
        "status_rule",
    ];
    const VALUES: &'static [&'static str] = &["status", "exit_code"];
    /// Perfdata labels are only known at run time.
    const OPEN_VALUES: bool = true;

    fn secrets(&self) -> Vec<&Secret> {
        self.env.iter().map(|(_, v)| v).collect()
    }
}
