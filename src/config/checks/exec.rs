//! `kind = "exec"`: a Nagios-style plugin run, its exit status and perfdata.

use std::path::PathBuf;

use super::{CheckKind, KindSpec};
use crate::config::compile::{Compiler, Span, MAX_OUTPUT_BYTES};
use crate::config::model::{
    CheckConfig, CmpOp, Condition, ExecProgram, LevelConfig, MissingPolicy, Recovery, RuleConfig,
    Trigger,
};
use crate::config::raw::RawCheck;
use crate::secret::Secret;

const DEFAULT_MAX_OUTPUT_BYTES: i64 = 8 * 1024;

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

impl Compiler<'_> {
    pub(in crate::config) fn exec(&mut self, r: &RawCheck, header: &Span) -> Option<ExecCheck> {
        let before = self.problems.len();
        let program = self.program(
            r.command.as_ref(),
            r.shell.as_ref(),
            r.key_span("shell"),
            header,
            r#"[[check]] of kind "exec", e.g. command = ["check_tcp", "-H", "127.0.0.1", "-p", "6379"]"#,
        );
        let env = self.env(r.env.as_ref());
        let workdir = self.workdir(r.workdir.as_ref());
        let max_output_bytes = match &r.max_output_bytes {
            None => Some(DEFAULT_MAX_OUTPUT_BYTES),
            Some(v) => self.int(v, "max_output_bytes", 1, MAX_OUTPUT_BYTES),
        };
        let (program, workdir, max_output_bytes) = (program?, workdir?, max_output_bytes?);
        (self.problems.len() == before).then(|| ExecCheck {
            program,
            env,
            workdir,
            max_output_bytes: usize::try_from(max_output_bytes).unwrap_or(usize::MAX),
            status_rule: r.status_rule.as_ref().is_none_or(|v| *v.get_ref()),
        })
    }
}

/// The implicit rule of an exec check with `status_rule`, named like the check: the plugin's
/// exit status read the way Nagios reads it (1 warning, 2 critical, a failed run unknown).
pub(in crate::config) fn status_rule(check: &CheckConfig) -> Option<RuleConfig> {
    let CheckKind::Exec(exec) = &check.kind else {
        return None;
    };
    if !exec.status_rule {
        return None;
    }
    let level = |threshold| LevelConfig {
        when: Condition {
            op: CmpOp::Ge,
            threshold,
        },
        clear: None,
        trigger: Trigger::Immediate,
        recover: Recovery::default(),
    };
    Some(RuleConfig {
        name: check.name.clone(),
        check: check.name.clone(),
        value: "status".into(),
        description: Some(format!("exit status of {}", exec.program_name())),
        labels: check.labels.clone(),
        warning: Some(level(1.0)),
        critical: Some(level(2.0)),
        on_error: MissingPolicy::Unknown,
        on_missing: MissingPolicy::Unknown,
        min_samples: 1,
        flapping: None,
        series: None,
        expr: None,
    })
}
