//! The validated hook config: what a `[[hook]]` compiles to ([`HookConfig`], its
//! [`HookCommand`]) and its defaults. `hook` runs it (and re-exports these types for
//! `outbox`); this module runs nothing, does no I/O (the tidy test holds it to that) and
//! imports nothing of `hook`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookCommand {
    /// Executed directly, no shell: `["kubectl", "rollout", "undo", "deployment/api"]`.
    Argv(Vec<String>),
    /// Run as `/bin/sh -c LINE`; only when the config asks for a shell explicitly.
    Shell(String),
}

/// One hook, as the validated config describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    pub name: String,
    pub command: HookCommand,
    /// After this the whole process group is killed.
    pub timeout: Duration,
    /// Minimum time between the end of one run of this hook and the start of the next.
    pub cooldown: Duration,
    /// Record what would run, run nothing.
    pub dry_run: bool,
    /// Extra environment; names are recorded, values never are (put secrets here, not in argv).
    pub env: BTreeMap<String, Secret>,
    pub workdir: Option<PathBuf>,
    /// Per stream (stdout, stderr); output beyond it is discarded.
    pub max_output_bytes: usize,
}

impl HookConfig {
    /// A hook with the defaults for everything but its name and command.
    pub fn new(name: &str, command: HookCommand) -> Self {
        HookConfig {
            name: name.to_string(),
            command,
            timeout: Duration::from_secs(300),
            cooldown: Duration::from_secs(600),
            dry_run: false,
            env: BTreeMap::new(),
            workdir: None,
            max_output_bytes: 64 * 1024,
        }
    }

    /// The argv that is executed.
    pub fn argv(&self) -> Vec<String> {
        match &self.command {
            HookCommand::Argv(argv) => argv.clone(),
            HookCommand::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
        }
    }

    /// The command as configured, for people: argv shell-quoted, or the shell line.
    pub fn display_command(&self) -> String {
        match &self.command {
            HookCommand::Argv(argv) => argv.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
            HookCommand::Shell(line) => line.clone(),
        }
    }
}

fn quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_shell_quoted() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }
}
