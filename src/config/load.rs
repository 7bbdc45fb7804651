//! Reading the file tree: the main file, then its includes depth first, each parsed into a
//! [`RawFile`]. This is the only part of config that touches the file system for config files.
//!
//! It resolves `include` globs relative to the including file's directory, guards against
//! cycles, and records syntax and I/O problems with their positions. It never validates
//! anything but the include list.
//!
//! What it reads is bounded ([`Limits`]): regular files only (a FIFO, a device or a directory
//! is refused from its metadata, so nothing here blocks on one), at most so many files and
//! bytes in all, and at most so many directory entries looked through per include pattern
//! (a pattern like `/**/*.toml`, or a symlink loop under `**`, fails at once instead of
//! walking the machine). Time is not bounded here (config reads no clock): the callers that
//! load a config bound that.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::diag::{Problem, SourceFile};
use super::env::interpolate;
use super::raw::RawFile;

/// What loading one config may read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Config files in all: the main file and every include.
    pub files: usize,
    /// Bytes of all config files together.
    pub bytes: u64,
    /// Directory entries one include pattern may look through.
    pub glob_entries: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        files: super::MAX_CONFIG_FILES,
        bytes: super::MAX_CONFIG_BYTES,
        glob_entries: super::MAX_GLOB_ENTRIES,
    };
}

/// One file read while loading.
pub(crate) struct FileUnit {
    pub source: SourceFile,
    /// `None` when the file could not be read or parsed (a problem says why).
    pub raw: Option<RawFile>,
    /// The directory relative paths in this file are resolved against.
    pub dir: PathBuf,
}

/// The files of one config in load order (main first, then includes depth first).
pub(crate) struct Tree {
    pub files: Vec<FileUnit>,
    pub problems: Vec<Problem>,
}

pub(crate) fn load_tree(main: &Path, env: &dyn Fn(&str) -> Option<String>, limits: Limits) -> Tree {
    let mut loader = Loader {
        env,
        files: Vec::new(),
        problems: Vec::new(),
        seen: HashSet::new(),
        limits,
        bytes: 0,
        over_limit: false,
    };
    loader.visit(main.to_path_buf(), &mut Vec::new(), None);
    Tree {
        files: loader.files,
        problems: loader.problems,
    }
}

struct Loader<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    files: Vec<FileUnit>,
    problems: Vec<Problem>,
    /// Canonical paths already loaded: a file included twice (not in a cycle) is read once.
    seen: HashSet<PathBuf>,
    limits: Limits,
    /// Bytes of config files read so far.
    bytes: u64,
    /// A limit on files or bytes was reached: nothing more is read.
    over_limit: bool,
}

/// A file on the include stack: canonical path (for identity) and path as opened (for messages).
type StackEntry = (PathBuf, PathBuf);

impl Loader<'_> {
    fn problem(&mut self, file: usize, offset: usize, message: String) {
        self.problems.push(Problem {
            file,
            offset,
            message,
        });
    }

    /// Loads `path` and its includes; `from` is the include (file index, offset) naming it.
    fn visit(&mut self, path: PathBuf, stack: &mut Vec<StackEntry>, from: Option<(usize, usize)>) {
        if self.over_limit {
            return;
        }
        let (at_file, at) = from.unwrap_or((0, 0));
        if self.files.len() >= self.limits.files {
            self.over_limit = true;
            self.problem(
                at_file,
                at,
                format!(
                    "cannot include {}: a config may have at most {} files (the main file and its includes)",
                    path.display(),
                    self.limits.files
                ),
            );
            return;
        }
        let canonical = canonical_path(&path);
        self.seen.insert(canonical.clone());
        let index = self.files.len();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let left = self.limits.bytes.saturating_sub(self.bytes);
        let bytes = match crate::files::read_regular(&path, left) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge && from.is_some() => {
                self.over_limit = true;
                self.problem(
                    at_file,
                    at,
                    format!(
                        "cannot include {}: a config's files may add up to at most {} bytes",
                        path.display(),
                        self.limits.bytes
                    ),
                );
                return;
            }
            Err(e) => {
                let message = if e.kind() == std::io::ErrorKind::FileTooLarge {
                    self.over_limit = true;
                    format!(
                        "cannot read file: a config's files may add up to at most {} bytes",
                        self.limits.bytes
                    )
                } else {
                    format!("cannot read file: {e}")
                };
                self.files.push(FileUnit {
                    source: SourceFile::new(path, String::new()),
                    raw: None,
                    dir,
                });
                self.problem(index, 0, message);
                return;
            }
        };
        self.bytes += bytes.len() as u64;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                // Placed at the first invalid byte: the bytes before it are the same in the
                // lossy text, so the position is exact.
                let at = e.utf8_error().valid_up_to();
                let byte = e.as_bytes()[at];
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                self.files.push(FileUnit {
                    source: SourceFile::new(path, text),
                    raw: None,
                    dir,
                });
                self.problem(
                    index,
                    at,
                    format!("invalid UTF-8 (byte 0x{byte:02x}); config files must be UTF-8 text"),
                );
                return;
            }
        };
        let raw = match toml::from_str::<RawFile>(&text) {
            Ok(raw) => Some(raw),
            Err(e) => {
                let offset = e.span().map_or(0, |span| span.start);
                let message = e.message().trim().replace('\n', "; ");
                self.problem(index, offset, message);
                None
            }
        };
        let includes: Vec<Spanned<String>> = raw
            .as_ref()
            .and_then(|raw| raw.include.as_ref())
            .map(|list| list.get_ref().clone())
            .unwrap_or_default();
        self.files.push(FileUnit {
            source: SourceFile::new(path.clone(), text),
            raw,
            dir: dir.clone(),
        });
        stack.push((canonical, path));
        for include in &includes {
            let at = include.span().start;
            let pattern = match interpolate(include.get_ref(), self.env) {
                Ok(pattern) => pattern,
                Err(errors) => {
                    for e in errors {
                        self.problem(index, at, e);
                    }
                    continue;
                }
            };
            let is_glob = pattern.contains(['*', '?', '[']);
            for target in self.resolve(index, at, &pattern, &dir) {
                let target_canonical = canonical_path(&target);
                if is_glob && stack.last().is_some_and(|(c, _)| *c == target_canonical) {
                    // `include = ["*.toml"]` beside the including file matches that file.
                    continue;
                }
                if let Some(pos) = stack.iter().position(|(c, _)| *c == target_canonical) {
                    let cycle: Vec<String> = stack[pos..]
                        .iter()
                        .map(|(_, p)| p.display().to_string())
                        .chain(std::iter::once(target.display().to_string()))
                        .collect();
                    self.problem(index, at, format!("include cycle: {}", cycle.join(" -> ")));
                } else if !self.seen.contains(&target_canonical) {
                    self.visit(target, stack, Some((index, at)));
                }
            }
        }
        stack.pop();
    }

    /// The files an include pattern names, sorted; problems are placed at the pattern.
    fn resolve(&mut self, file: usize, at: usize, pattern: &str, dir: &Path) -> Vec<PathBuf> {
        if !pattern.contains(['*', '?', '[']) {
            let path = dir.join(pattern);
            return match fs::metadata(&path) {
                Ok(meta) => match crate::files::special_kind(meta.file_type()) {
                    None => vec![path],
                    Some(what) => {
                        self.problem(
                            file,
                            at,
                            format!("included file {pattern:?} is {what}; only regular files can be included"),
                        );
                        Vec::new()
                    }
                },
                Err(e) => {
                    self.problem(
                        file,
                        at,
                        format!("cannot read included file {pattern:?}: {e}"),
                    );
                    Vec::new()
                }
            };
        }
        let expansion = match expand(dir, pattern, self.limits) {
            Ok(expansion) => expansion,
            Err(message) => {
                self.problem(file, at, message);
                return Vec::new();
            }
        };
        for (path, e) in expansion.unreadable {
            self.problem(file, at, format!("cannot read {}: {e}", path.display()));
        }
        let mut paths = Vec::new();
        for path in expansion.matches {
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) => match crate::files::special_kind(meta.file_type()) {
                    None => paths.push(path),
                    Some(what) => self.problem(
                        file,
                        at,
                        format!(
                            "include pattern {pattern:?} matches {}, which is {what}; only regular files can be included",
                            path.display()
                        ),
                    ),
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => self.problem(file, at, format!("cannot read {}: {e}", path.display())),
            }
        }
        if paths.is_empty() {
            self.problem(
                file,
                at,
                format!("include pattern {pattern:?} matches no files"),
            );
        }
        paths
    }
}

/// What an include pattern matched (sorted), and the directories that could not be listed.
struct Expansion {
    matches: BTreeSet<PathBuf>,
    unreadable: Vec<(PathBuf, std::io::Error)>,
}

/// One component of an include pattern.
enum Part {
    Literal(String),
    /// `**`: this directory and every directory below it.
    Recursive,
    Wildcard(glob::Pattern),
}

/// Expands `pattern` against `dir` (unless it is absolute) as `glob::glob` does with its default
/// options (`*` and `?` match a leading dot, `**` follows symlinked directories), but looking
/// through at most `limits.glob_entries` directory entries and returning at most
/// `limits.files` paths. Matches are not checked to exist; missing directories match nothing.
fn expand(dir: &Path, pattern: &str, limits: Limits) -> Result<Expansion, String> {
    let (root, rest) = match pattern.strip_prefix('/') {
        Some(rest) => (PathBuf::from("/"), rest),
        None => (dir.to_path_buf(), pattern),
    };
    let mut parts = Vec::new();
    for component in rest.split('/').filter(|c| !c.is_empty()) {
        parts.push(if component == "**" {
            Part::Recursive
        } else if component.contains(['*', '?', '[']) {
            let compiled = glob::Pattern::new(component)
                .map_err(|e| format!("invalid include pattern {pattern:?}: {}", e.msg))?;
            Part::Wildcard(compiled)
        } else {
            Part::Literal(component.to_string())
        });
    }
    let options = glob::MatchOptions::new();
    let mut out = Expansion {
        matches: BTreeSet::new(),
        unreadable: Vec::new(),
    };
    let mut looked = 0usize;
    let mut list = |dir: &Path, out: &mut Expansion| -> Result<Vec<(String, PathBuf)>, String> {
        let readable = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let entries = match fs::read_dir(readable) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new())
            }
            Err(e) => {
                out.unreadable.push((dir.to_path_buf(), e));
                return Ok(Vec::new());
            }
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            looked += 1;
            if looked > limits.glob_entries {
                return Err(format!(
                    "include pattern {pattern:?} looks through more than {} directory entries; name a narrower directory",
                    limits.glob_entries
                ));
            }
            if let Some(name) = entry.file_name().to_str() {
                names.push((name.to_string(), dir.join(name)));
            }
        }
        Ok(names)
    };
    let mut todo = vec![(root, 0usize)];
    while let Some((path, i)) = todo.pop() {
        let Some(part) = parts.get(i) else {
            out.matches.insert(path);
            if out.matches.len() > limits.files {
                return Err(format!(
                    "include pattern {pattern:?} matches more than {} files",
                    limits.files
                ));
            }
            continue;
        };
        match part {
            Part::Literal(name) => todo.push((path.join(name), i + 1)),
            Part::Recursive => {
                todo.push((path.clone(), i + 1));
                for (_, entry) in list(&path, &mut out)? {
                    if entry.is_dir() {
                        todo.push((entry, i));
                    }
                }
            }
            Part::Wildcard(compiled) => {
                for (name, entry) in list(&path, &mut out)? {
                    if compiled.matches_with(&name, options) {
                        todo.push((entry, i + 1));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn canonical_path(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
