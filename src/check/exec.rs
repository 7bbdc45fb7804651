//! `exec`: run a command and read its verdict the way Nagios reads a plugin's.
//!
//! Exit 0, 1 and 2 are ok, warning and critical; 3, any other code and death by a signal are
//! unknown. Values: `status` (0, 1 or 2; absent when unknown), `exit_code` (absent after a
//! signal) and every perfdata item of the output ([`parse_output`]). Exit 1 and 2 fail the
//! probe as `assertion` *with* the values attached, so the check's status rule and user rules
//! still read them; unknown fails it as `protocol`; a command that outlives the timeout fails
//! as `timeout`. The message is the first line of the output (stderr's when stdout has none),
//! trimmed and cut at 200 characters.
//!
//! The child runs without a shell (unless the check says `shell`, run by `/bin/sh -c`), with
//! stdin from `/dev/null`, stdout and stderr piped and kept up to `max_output_bytes` each (the
//! rest is read and discarded, so a flood neither fills memory nor blocks the child), in a
//! process group of its own, and without systemd's `NOTIFY_SOCKET` and `WATCHDOG_*`. When the
//! timeout expires, or the probe is dropped, SIGKILL goes to the whole group, so a plugin's
//! own children die with it; the command itself is then reaped.
//!
//! This module must not run anything through a shell unasked, leave a process of a timed-out
//! command behind, or put an `env` value in a message.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::time::Instant;

use super::{Probe, ProbeError, ProbeErrorKind, Values};
use crate::config::{ExecCheck, ExecProgram};
use crate::secret::{Redactor, Secret};

const SHELL: &str = "/bin/sh";
/// `PATH` used when neither the check's `env` nor warden's environment has one.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Variables a child must not inherit: it would talk to systemd in warden's name.
const STRIPPED_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];
/// Longest message taken from a plugin's output, in characters.
const MESSAGE_CHARS: usize = 200;
/// After the command exited, how long to wait for the rest of its output: a child it left
/// behind may hold the pipes open. Such a child is killed with the group.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// The part of the timeout kept for killing and reaping, so that the probe, not the outer
/// guard of `Prober::observe`, notices the timeout and reaps the command.
const REAP_RESERVE: Duration = Duration::from_millis(100);
/// How long to wait for a SIGKILLed command to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(1);
/// Read buffer per stream.
const CHUNK: usize = 64 * 1024;
/// Value names the probe sets itself; perfdata items with these names are dropped.
const RESERVED: [&str; 4] = ["status", "exit_code", "up", "duration_seconds"];

pub struct ExecProbe {
    /// `command[0]`, or `/bin/sh` for a shell script.
    program: String,
    args: Vec<String>,
    /// The program as people name it, for messages (never the arguments).
    name: String,
    env: Vec<(String, Secret)>,
    /// The `env` values, scrubbed from every message (a plugin may echo its credentials).
    secrets: Redactor,
    workdir: Option<PathBuf>,
    max_output: usize,
    timeout: Duration,
}

impl ExecProbe {
    pub fn new(spec: &ExecCheck, timeout: Duration) -> Self {
        let (program, args) = match &spec.program {
            ExecProgram::Argv(argv) => match argv.split_first() {
                Some((program, args)) => (program.clone(), args.to_vec()),
                // Compile rejects an empty command; an empty program fails at spawn time.
                None => (String::new(), Vec::new()),
            },
            ExecProgram::Shell(script) => (SHELL.to_string(), vec!["-c".into(), script.clone()]),
        };
        ExecProbe {
            program,
            args,
            name: spec.program_name().to_string(),
            env: spec.env.clone(),
            secrets: Redactor::new(spec.env.iter().map(|(_, v)| v.expose().to_string())),
            workdir: spec.workdir.clone(),
            max_output: spec.max_output_bytes,
            timeout,
        }
    }

    /// The executable to spawn: a bare name is looked up in `PATH` (the check's own, if its
    /// `env` sets one), now rather than at startup, so installing a plugin needs no reload.
    fn resolve(&self) -> Result<PathBuf, ProbeError> {
        if self.program.contains('/') {
            let path = PathBuf::from(&self.program);
            // The child changes to `workdir` before exec: a relative path must not move with it.
            return Ok(match std::env::current_dir() {
                Ok(cwd) if path.is_relative() => cwd.join(path),
                _ => path,
            });
        }
        let path_var = self
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| OsString::from(v.expose()))
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_else(|| DEFAULT_PATH.into());
        find_in_path(&self.program, &path_var).ok_or_else(|| {
            ProbeError::new(
                ProbeErrorKind::Setup,
                format!("executable {:?} not found in PATH", self.program),
            )
        })
    }

    async fn execute(&self) -> Result<Values, ProbeError> {
        let program = self.resolve()?;
        let mut command = Command::new(&program);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for var in STRIPPED_ENV {
            command.env_remove(var);
        }
        for (key, value) in &self.env {
            command.env(key, value.expose());
        }
        if let Some(dir) = &self.workdir {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .map_err(|e| self.spawn_error(&program, &e))?;
        // From here on, dropping this probe's future kills the whole group.
        let mut group = GroupKill::new(child.id());
        let (mut stdout_pipe, mut stderr_pipe) = (child.stdout.take(), child.stderr.take());
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + self.timeout.saturating_sub(reserve(self.timeout));

        let finished = {
            let reads = async {
                tokio::join!(
                    read_bounded(stdout_pipe.as_mut(), &mut stdout, self.max_output),
                    read_bounded(stderr_pipe.as_mut(), &mut stderr, self.max_output),
                )
            };
            tokio::pin!(reads);
            let exited = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    status = child.wait() => (status, false),
                    _ = &mut reads => (child.wait().await, true),
                }
            })
            .await;
            match exited {
                Ok((status, false)) => {
                    // The command exited; a child it left behind may hold the pipes open.
                    // Wait for the rest of the output briefly, never past the deadline.
                    let grace = (Instant::now() + EXIT_GRACE).min(deadline);
                    let drained = tokio::time::timeout_at(grace, &mut reads).await.is_ok();
                    Ok((status, drained))
                }
                other => other,
            }
        };

        let status = match finished {
            Ok((Ok(status), drained)) => {
                if drained {
                    // The command exited and nothing holds its output: leave the group be.
                    group.disarm();
                }
                status
            }
            Ok((Err(e), _)) => {
                return Err(ProbeError::new(
                    ProbeErrorKind::Setup,
                    format!("wait for {}: {e}", self.name),
                ))
            }
            Err(_) => {
                group.kill();
                // SIGKILL cannot be caught: the command exits at once and is reaped here.
                let _ = tokio::time::timeout(REAP_WAIT, child.wait()).await;
                return Err(ProbeError::new(
                    ProbeErrorKind::Timeout,
                    format!(
                        "{} did not finish within {}; killed its process group",
                        self.name,
                        humantime::format_duration(self.timeout)
                    ),
                ));
            }
        };
        // Kills whatever of the group still held the pipes after the grace period.
        drop(group);

        let exit = match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(-1),
        };
        let stdout = String::from_utf8_lossy(&stdout);
        let stderr = String::from_utf8_lossy(&stderr);
        verdict_redacted(&self.name, exit, &stdout, &stderr, &self.secrets).map_err(|mut e| {
            e.message = self.secrets.redact(&e.message);
            e
        })
    }

    fn spawn_error(&self, program: &Path, err: &std::io::Error) -> ProbeError {
        let detail = match &self.workdir {
            Some(dir) if !dir.is_dir() => format!("workdir {} is not a directory", dir.display()),
            _ => err.to_string(),
        };
        ProbeError::new(
            ProbeErrorKind::Setup,
            format!("cannot run {}: {detail}", program.display()),
        )
    }
}

impl Probe for ExecProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        self.execute().await
    }
}

/// The part of `timeout` kept for killing and reaping.
fn reserve(timeout: Duration) -> Duration {
    (timeout / 10).min(REAP_RESERVE)
}

/// SIGKILL to a process group when dropped, unless disarmed.
struct GroupKill(Option<Pid>);

impl GroupKill {
    fn new(pid: Option<u32>) -> Self {
        // Never 0 or 1: kill(-1) would signal every process warden may signal.
        let pid = pid
            .filter(|&p| p > 1)
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        GroupKill(pid)
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (the group is already gone) is fine.
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `reader` to its end, keeping the first `max` bytes in `kept` and discarding the rest.
/// Writes as it goes, so a caller that stops waiting still has what was read.
async fn read_bounded<R: AsyncRead + Unpin>(reader: Option<R>, kept: &mut Vec<u8>, max: usize) {
    let Some(mut reader) = reader else { return };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// The first executable file named `name` in a `PATH` value. Relative entries (including the
/// empty one, meaning ".") are skipped: a check's program must not depend on a directory.
fn find_in_path(name: &str, path_var: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

/// The probe's result from how the command ended and what it printed (Nagios' convention).
/// `name` names the program in messages that have no output line to show.
pub fn verdict(name: &str, exit: Exit, stdout: &str, stderr: &str) -> Result<Values, ProbeError> {
    verdict_redacted(name, exit, stdout, stderr, &Redactor::new([]))
}

/// [`verdict`], with `secrets` scrubbed from the quoted output line *before* it is cut to
/// [`MESSAGE_CHARS`], so a secret straddling the cut shows no part of itself. Perfdata are
/// parsed from the output as printed.
pub fn verdict_redacted(
    name: &str,
    exit: Exit,
    stdout: &str,
    stderr: &str,
    secrets: &Redactor,
) -> Result<Values, ProbeError> {
    let output = parse_output(stdout);
    let mut values = Values::new();
    for item in &output.perfdata {
        let Some(key) = value_name(&item.label) else {
            continue;
        };
        if RESERVED.contains(&key.as_str()) || values.contains_key(&key) {
            continue;
        }
        values.insert(key, item.value);
    }
    let line = if output.summary.is_empty() {
        stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
    } else {
        output.summary.as_str()
    };
    let line = bounded(&secrets.redact(line), MESSAGE_CHARS);
    let code = match exit {
        Exit::Code(code) => code,
        Exit::Signal(signal) => {
            let message = if line.is_empty() {
                format!("{name} was killed by signal {signal}")
            } else {
                format!("killed by signal {signal}: {line}")
            };
            return Err(ProbeError::new(ProbeErrorKind::Protocol, message).with_values(values));
        }
    };
    values.insert("exit_code".into(), f64::from(code));
    let or_status = |what: &str| {
        if line.is_empty() {
            format!("{name} exited with status {code} ({what}) and printed nothing")
        } else {
            line.clone()
        }
    };
    match code {
        0 => {
            values.insert("status".into(), 0.0);
            Ok(values)
        }
        1 | 2 => {
            values.insert("status".into(), f64::from(code));
            let what = if code == 1 { "warning" } else { "critical" };
            Err(ProbeError::new(ProbeErrorKind::Assertion, or_status(what)).with_values(values))
        }
        3 => {
            Err(ProbeError::new(ProbeErrorKind::Protocol, or_status("unknown")).with_values(values))
        }
        _ => {
            let message = if line.is_empty() {
                format!("{name} exited with status {code} (unknown) and printed nothing")
            } else {
                format!("exit status {code}: {line}")
            };
            Err(ProbeError::new(ProbeErrorKind::Protocol, message).with_values(values))
        }
    }
}

/// `text` trimmed and cut at `max` characters (an ellipsis marks the cut).
fn bounded(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", text[..i].trim_end()),
        None => text.to_string(),
    }
}

/// A plugin's output: the summary (the first line, before any `|`) and its perfdata.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginOutput {
    pub summary: String,
    pub perfdata: Vec<PerfItem>,
}

/// One perfdata item, `'label'=value[UOM];[warn];[crit];[min];[max]`. Thresholds and bounds
/// are not kept; the value is the number as printed, the unit is not applied (`5ms` is 5).
#[derive(Debug, Clone, PartialEq)]
pub struct PerfItem {
    pub label: String,
    pub value: f64,
    pub uom: String,
}

/// Splits plugin output per the Nagios plugin guidelines:
///
/// ```text
/// TEXT OUTPUT | OPTIONAL PERFDATA
/// LONG TEXT LINE 1
/// LONG TEXT LINE N | PERFDATA LINE 2
/// PERFDATA LINE 3
/// ```
///
/// Perfdata follows the first `|` of the first line, and the first `|` of a later line; once
/// that second part starts, every following line is perfdata.
pub fn parse_output(text: &str) -> PluginOutput {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let (summary, perf) = match first.split_once('|') {
        Some((summary, perf)) => (summary, Some(perf)),
        None => (first, None),
    };
    let mut perfdata: Vec<PerfItem> = perf.map(parse_perfdata).unwrap_or_default();
    let mut in_perfdata = false;
    for line in lines {
        if in_perfdata {
            perfdata.extend(parse_perfdata(line));
        } else if let Some((_, perf)) = line.split_once('|') {
            in_perfdata = true;
            perfdata.extend(parse_perfdata(perf));
        }
    }
    PluginOutput {
        summary: summary.trim().to_string(),
        perfdata,
    }
}

/// Parses space-separated perfdata items. Labels may be single-quoted (then they may hold
/// spaces and `=`; `''` is a quote). Items without `=`, with an empty label, or whose value is
/// `U` or not a number are skipped; an unterminated quote ends the parse. Never panics.
pub fn parse_perfdata(text: &str) -> Vec<PerfItem> {
    let mut items = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return items;
        }
        let (label, after) = if let Some(quoted) = rest.strip_prefix('\'') {
            match quoted_label(quoted) {
                Some(split) => split,
                None => return items,
            }
        } else {
            let end = rest
                .find(|c: char| c == '=' || c.is_whitespace())
                .unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        let Some(datum) = after.strip_prefix('=') else {
            // Not an item: skip to the next space. `after` is never `rest` here (a label or a
            // quote was consumed, or `rest` started with `=`, which is handled above).
            rest = after.find(char::is_whitespace).map_or("", |i| &after[i..]);
            continue;
        };
        let end = datum.find(char::is_whitespace).unwrap_or(datum.len());
        let (datum, next) = datum.split_at(end);
        rest = next;
        let value = datum.split(';').next().unwrap_or("");
        if let (false, Some((value, uom))) = (label.is_empty(), parse_value(value)) {
            items.push(PerfItem {
                label,
                value,
                uom: uom.to_string(),
            });
        }
    }
}

/// A quoted label after its opening quote: the label (`''` unescaped) and the text after
/// the closing quote; `None` when the quote is not closed.
fn quoted_label(text: &str) -> Option<(String, &str)> {
    let mut label = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            label.push(c);
        } else if chars.peek().is_some_and(|&(_, next)| next == '\'') {
            label.push('\'');
            chars.next();
        } else {
            return Some((label, &text[i + 1..]));
        }
    }
    None
}

/// A perfdata value: a decimal number (`,` accepted as the decimal separator) followed by a
/// unit that holds no digit, sign or separator. `U` (undetermined) and anything else is `None`.
fn parse_value(text: &str) -> Option<(f64, &str)> {
    let b = text.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits(i);
    let mut seen_digit = int_end > i;
    i = int_end;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let frac_end = digits(i + 1);
        seen_digit |= frac_end > i + 1;
        i = frac_end;
    }
    if !seen_digit {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let exp_end = digits(i + 1 + sign);
        if exp_end > i + 1 + sign {
            i = exp_end;
        }
    }
    // Every byte so far is ASCII, so `i` is a char boundary.
    let (number, uom) = text.split_at(i);
    if uom.contains(|c: char| c.is_ascii_digit() || matches!(c, '.' | ',' | '+' | '-')) {
        return None;
    }
    let value: f64 = number.replace(',', ".").parse().ok()?;
    value.is_finite().then_some((value, uom))
}

/// The value name of a perfdata label: every character outside `[A-Za-z0-9_]` becomes `_`,
/// and a leading digit gets a `_` in front (`/var/log` → `_var_log`, `5xx` → `_5xx`).
/// `None` for an empty label.
pub fn value_name(label: &str) -> Option<String> {
    if label.is_empty() {
        return None;
    }
    let mut name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(label, value, uom)` of one item.
    type Item = (String, f64, String);

    /// `(stdout, summary, values)` of a captured plugin run.
    type Captured<'a> = (&'a str, &'a str, &'a [(&'a str, f64)]);

    /// `(label, value, uom)` of every item, for compact expectations.
    fn items(text: &str) -> Vec<Item> {
        parse_perfdata(text)
            .into_iter()
            .map(|i| (i.label, i.value, i.uom))
            .collect()
    }

    fn item(label: &str, value: f64, uom: &str) -> Item {
        (label.to_string(), value, uom.to_string())
    }

    fn values(result: &Result<Values, ProbeError>) -> Vec<(&str, f64)> {
        let values = match result {
            Ok(v) => v,
            Err(e) => &e.partial,
        };
        values.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }

    #[test]
    fn perfdata_item_forms() {
        let cases: &[(&str, Vec<Item>)] = &[
            (
                "time=0.000090s;;;0.000000;10.000000",
                vec![item("time", 0.00009, "s")],
            ),
            (
                "a=1 b=2.5% c=-3",
                vec![item("a", 1.0, ""), item("b", 2.5, "%"), item("c", -3.0, "")],
            ),
            ("'with space'=5c", vec![item("with space", 5.0, "c")]),
            (
                "'it''s'=1 'a=b'=2",
                vec![item("it's", 1.0, ""), item("a=b", 2.0, "")],
            ),
            ("x=1.5e3ms;2;3", vec![item("x", 1500.0, "ms")]),
            (
                "x=+7 y=.5 z=5.",
                vec![item("x", 7.0, ""), item("y", 0.5, ""), item("z", 5.0, "")],
            ),
            ("comma=0,75", vec![item("comma", 0.75, "")]),
            ("temp=21°C", vec![item("temp", 21.0, "°C")]),
            (
                "  spaced=1   other=2  ",
                vec![item("spaced", 1.0, ""), item("other", 2.0, "")],
            ),
            // Skipped: undetermined, not a number, no '=', empty label, infinite, bad unit.
            (
                "u=U;1;2 n=abc s= noequals =4 ''=5 big=1e999 v=1.2.3 ok=1",
                vec![item("ok", 1.0, "")],
            ),
            ("x=-", vec![]),
            ("x=.", vec![]),
            ("'unterminated=1 b=2", vec![]),
            ("'closed'nothing b=2", vec![item("b", 2.0, "")]),
            ("", vec![]),
        ];
        for (text, want) in cases {
            assert_eq!(&items(text), want, "{text:?}");
        }
    }

    #[test]
    fn value_names_are_identifiers() {
        let cases = [
            ("time", Some("time")),
            ("/", Some("_")),
            ("/var/log", Some("_var_log")),
            ("5xx", Some("_5xx")),
            ("with space", Some("with_space")),
            ("it's", Some("it_s")),
            ("scaled_load1", Some("scaled_load1")),
            ("température", Some("temp_rature")),
            ("", None),
        ];
        for (label, want) in cases {
            assert_eq!(value_name(label).as_deref(), want, "{label:?}");
        }
    }

    #[test]
    fn real_plugin_outputs() {
        // Captured from monitoring-plugins-basic 2.3 on Debian 12.
        let cases: &[Captured] = &[
            (
                "TCP OK - 0.000 second response time on 127.0.0.1 port 47307|time=0.000090s;;;0.000000;10.000000\n",
                "TCP OK - 0.000 second response time on 127.0.0.1 port 47307",
                &[("time", 0.00009)],
            ),
            (
                "connect to address 127.0.0.1 and port 1: Connection refused\n",
                "connect to address 127.0.0.1 and port 1: Connection refused",
                &[],
            ),
            (
                "HTTP WARNING: HTTP/1.0 404 File not found - 520 bytes in 0.004 second response time |time=0.003627s;;;0.000000;10.000000 size=520B;;;0;\n",
                "HTTP WARNING: HTTP/1.0 404 File not found - 520 bytes in 0.004 second response time",
                &[("size", 520.0), ("time", 0.003627)],
            ),
            (
                "LOAD OK - total load average: 0.49, 1.01, 0.98|load1=0.490;5.000;10.000;0; load5=1.010;4.000;8.000;0; load15=0.980;3.000;6.000;0; \n",
                "LOAD OK - total load average: 0.49, 1.01, 0.98",
                &[("load1", 0.49), ("load15", 0.98), ("load5", 1.01)],
            ),
            (
                "DISK OK - free space: / 62857MiB (67% inode=97%); /dev/shm 24105MiB (100% inode=99%);| /=31661752320B;243497277849;257024904396;0;270552530944 /dev/shm=0B;22748332032;24012128256;0;25275924480\n",
                "DISK OK - free space: / 62857MiB (67% inode=97%); /dev/shm 24105MiB (100% inode=99%);",
                &[("_", 31661752320.0), ("_dev_shm", 0.0)],
            ),
            (
                "SWAP CRITICAL - 0% free (0MB out of 0MB) - Swap is either disabled, not present, or of zero size. |swap=0B;0;0;0;0\n",
                "SWAP CRITICAL - 0% free (0MB out of 0MB) - Swap is either disabled, not present, or of zero size.",
                &[("swap", 0.0)],
            ),
            ("PROCS OK: 71 processes | procs=71;;;0;\n", "PROCS OK: 71 processes", &[("procs", 71.0)]),
            ("UNKNOWN: hello\n", "UNKNOWN: hello", &[]),
        ];
        for (stdout, summary, want) in cases {
            let output = parse_output(stdout);
            assert_eq!(output.summary, *summary);
            let result = verdict("plugin", Exit::Code(0), stdout, "");
            let got: Vec<(&str, f64)> = values(&result)
                .into_iter()
                .filter(|(k, _)| !matches!(*k, "status" | "exit_code"))
                .collect();
            assert_eq!(got, *want, "{stdout:?}");
        }
    }

    #[test]
    fn long_output_carries_more_perfdata() {
        // The example of the Nagios plugin guidelines ("Plugin Output for Nagios").
        let stdout = "DISK OK - free space: / 3326 MB (56%); | /=2643MB;5948;5958;0;5968\n\
            / 15272 MB (77%);\n\
            /boot 68 MB (69%);\n\
            /home 69357 MB (27%);\n\
            /var/log 819 MB (84%); | /boot=68MB;88;93;0;98\n\
            /home=69357MB;253404;253409;0;253414 \n\
            /var/log=818MB;970;975;0;980\n";
        let output = parse_output(stdout);
        assert_eq!(output.summary, "DISK OK - free space: / 3326 MB (56%);");
        let labels: Vec<(&str, f64)> = output
            .perfdata
            .iter()
            .map(|i| (i.label.as_str(), i.value))
            .collect();
        assert_eq!(
            labels,
            [
                ("/", 2643.0),
                ("/boot", 68.0),
                ("/home", 69357.0),
                ("/var/log", 818.0)
            ]
        );
        // Long text without a `|` holds no perfdata.
        let output = parse_output("OK\nfree=1 is text here\n");
        assert!(output.perfdata.is_empty());
    }

    #[test]
    fn exit_codes_map_to_outcomes() {
        let stdout = "DISK WARNING - low | used=93%;90;95 status=7 up=0";
        let ok = verdict("check_disk", Exit::Code(0), "OK | used=3%", "");
        assert_eq!(
            values(&ok),
            [("exit_code", 0.0), ("status", 0.0), ("used", 3.0)]
        );
        assert!(ok.is_ok());

        let warn = verdict("check_disk", Exit::Code(1), stdout, "").unwrap_err();
        assert_eq!(warn.kind, ProbeErrorKind::Assertion);
        assert_eq!(warn.message, "DISK WARNING - low");
        // Perfdata named like a built-in value does not replace it.
        assert_eq!(
            values(&Err(warn)),
            [("exit_code", 1.0), ("status", 1.0), ("used", 93.0)]
        );

        let crit = verdict("check_disk", Exit::Code(2), "", "").unwrap_err();
        assert_eq!(crit.kind, ProbeErrorKind::Assertion);
        assert_eq!(
            crit.message,
            "check_disk exited with status 2 (critical) and printed nothing"
        );
        assert_eq!(crit.partial.get("status"), Some(&2.0));

        let unknown = verdict("x", Exit::Code(3), "UNKNOWN - no such host|t=1", "").unwrap_err();
        // A secret straddling the 200-character cut shows no part of itself.
        let token = "tok-3f9a1c77e0b24d51";
        let long = format!("CRITICAL - {} {token} rest|t=1", "x".repeat(180));
        let secrets = Redactor::new([token.to_string()]);
        let cut = verdict_redacted("x", Exit::Code(2), &long, "", &secrets).unwrap_err();
        assert!(!cut.message.contains("tok-"), "{}", cut.message);
        assert!(
            cut.message.contains("<secret>") || cut.message.contains("<sec"),
            "{}",
            cut.message
        );
        let unredacted = verdict("x", Exit::Code(2), &long, "").unwrap_err();
        assert!(
            unredacted.message.contains("tok-"),
            "the cut falls inside the token"
        );
        assert_eq!(unknown.kind, ProbeErrorKind::Protocol);
        assert_eq!(unknown.message, "UNKNOWN - no such host");
        assert_eq!(values(&Err(unknown)), [("exit_code", 3.0), ("t", 1.0)]);

        let other = verdict("x", Exit::Code(127), "", "sh: 1: nope: not found\n").unwrap_err();
        assert_eq!(other.kind, ProbeErrorKind::Protocol);
        assert_eq!(other.message, "exit status 127: sh: 1: nope: not found");
        assert_eq!(other.partial.get("status"), None);

        let killed = verdict("x", Exit::Signal(9), "", "").unwrap_err();
        assert_eq!(killed.kind, ProbeErrorKind::Protocol);
        assert_eq!(killed.message, "x was killed by signal 9");
        assert!(killed.partial.is_empty());
    }

    #[test]
    fn messages_are_the_first_line_bounded() {
        let long = format!("CRITICAL {}|x=1\nsecond line", "é".repeat(300));
        let err = verdict("p", Exit::Code(2), &long, "").unwrap_err();
        assert_eq!(err.message.chars().count(), MESSAGE_CHARS + 1);
        assert!(err.message.ends_with('…'));
        // Stdout without a summary: stderr's first non-empty line.
        let err = verdict(
            "p",
            Exit::Code(1),
            "|x=1\n",
            "\n  oops: disk slow  \nmore\n",
        )
        .unwrap_err();
        assert_eq!(err.message, "oops: disk slow");
    }

    #[test]
    fn reserve_keeps_part_of_the_timeout_for_reaping() {
        assert_eq!(reserve(Duration::from_secs(10)), REAP_RESERVE);
        assert_eq!(
            reserve(Duration::from_millis(200)),
            Duration::from_millis(20)
        );
    }

    #[test]
    fn path_lookup_finds_executables_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        let path_var = OsString::from(format!("relative:{}:/bin", dir.path().display()));
        assert_eq!(find_in_path("plain", &path_var), None, "not executable");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(find_in_path("plain", &path_var), Some(plain));
        assert_eq!(
            find_in_path("sh", &path_var),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find_in_path("no-such-program-here", &path_var), None);
    }

    proptest::proptest! {
        #[test]
        fn perfdata_parsing_never_panics(text in "\\PC{0,200}") {
            let _ = parse_output(&text);
            let _ = verdict("p", Exit::Code(2), &text, &text);
        }

        #[test]
        fn perfdata_like_text_never_panics(
            text in "([ '=;|\n]|[a-z]{1,3}|[0-9.,eE+-]{1,4}|U|%|µ){0,40}"
        ) {
            for item in parse_output(&text).perfdata {
                proptest::prop_assert!(item.value.is_finite());
                proptest::prop_assert!(!item.label.is_empty());
            }
        }

        #[test]
        fn printed_numbers_parse_back(value in -1e12f64..1e12, uom in "(|s|ms|%|B|KB|c)") {
            let text = format!("'x y'={value}{uom};1;2;0;100");
            let got = parse_perfdata(&text);
            proptest::prop_assert_eq!(got.len(), 1);
            proptest::prop_assert_eq!(got[0].value, value);
            proptest::prop_assert_eq!(&got[0].uom, &uom);
        }
    }
}
