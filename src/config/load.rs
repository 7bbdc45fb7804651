//! Reading the file tree: the main file, then its includes depth first, each parsed into a
//! [`RawFile`]. This is the only part of config that touches the file system for config files.
//!
//! It resolves `include` globs relative to the including file's directory, guards against
//! cycles, and records syntax and I/O problems with their positions. It never validates
//! anything but the include list.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::diag::{Problem, SourceFile};
use super::env::interpolate;
use super::raw::RawFile;

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

pub(crate) fn load_tree(main: &Path, env: &dyn Fn(&str) -> Option<String>) -> Tree {
    let mut loader = Loader {
        env,
        files: Vec::new(),
        problems: Vec::new(),
        seen: HashSet::new(),
    };
    loader.visit(main.to_path_buf(), &mut Vec::new());
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

    fn visit(&mut self, path: PathBuf, stack: &mut Vec<StackEntry>) {
        let canonical = canonical_path(&path);
        self.seen.insert(canonical.clone());
        let index = self.files.len();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                self.files.push(FileUnit {
                    source: SourceFile::new(path, String::new()),
                    raw: None,
                    dir,
                });
                self.problem(index, 0, format!("cannot read file: {e}"));
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
                    self.visit(target, stack);
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
                Ok(_) => vec![path],
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
        let full = if Path::new(pattern).is_absolute() || dir.as_os_str().is_empty() {
            pattern.to_string()
        } else {
            let dir = glob::Pattern::escape(&dir.to_string_lossy());
            format!("{}/{pattern}", dir.trim_end_matches('/'))
        };
        let entries = match glob::glob(&full) {
            Ok(entries) => entries,
            Err(e) => {
                self.problem(
                    file,
                    at,
                    format!("invalid include pattern {pattern:?}: {}", e.msg),
                );
                return Vec::new();
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(path) if path.is_dir() => {}
                Ok(path) => paths.push(path),
                Err(e) => self.problem(
                    file,
                    at,
                    format!("cannot read {}: {}", e.path().display(), e.error()),
                ),
            }
        }
        paths.sort();
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

fn canonical_path(path: &Path) -> PathBuf {
    fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}
