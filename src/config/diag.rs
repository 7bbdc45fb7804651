//! Diagnostics: `file:line:col: message`, the one shape every config error takes.
//!
//! Positions are computed from byte offsets against the file's text (1-based line, column in
//! characters). This module formats and orders; it never reads files or decides validity.

use std::fmt;
use std::path::PathBuf;

/// One config error at one place.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file as it was opened (the main file as given; includes joined to its directory).
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Lowercase, no trailing period, says what is valid. Never holds a secret.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// Every error of a config, in file order then position order.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The text of one config file, for turning byte offsets into line and column.
#[derive(Debug, Clone)]
pub(crate) struct SourceFile {
    pub path: PathBuf,
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(path: PathBuf, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset; offsets past the end or
    /// inside a character are clamped.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let col = self.text[start..offset].chars().count() + 1;
        (line, col)
    }
}

/// An error found while loading, before it is placed: file index (load order) and byte offset.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub file: usize,
    pub offset: usize,
    pub message: String,
}

/// Places and orders problems: file order (the order files were loaded), then position.
pub(crate) fn place(files: &[SourceFile], mut problems: Vec<Problem>) -> Diagnostics {
    problems.sort_by_key(|p| (p.file, p.offset));
    Diagnostics(
        problems
            .into_iter()
            .map(|p| {
                let file = &files[p.file];
                let (line, col) = file.position(p.offset);
                Diagnostic {
                    file: file.path.clone(),
                    line,
                    col,
                    message: p.message,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let file = SourceFile::new("x.toml".into(), "ab\né = \"x\"\n\nz".into());
        let cases: &[(usize, (usize, usize))] = &[
            (0, (1, 1)),
            (1, (1, 2)),
            (2, (1, 3)),
            (3, (2, 1)),
            (5, (2, 2)), // after the two-byte `é`
            (4, (2, 1)), // inside `é`: clamped back
            (12, (3, 1)),
            (13, (4, 1)),
            (999, (4, 2)),
        ];
        for (offset, want) in cases {
            assert_eq!(file.position(*offset), *want, "offset {offset}");
        }
    }

    #[test]
    fn displays_one_error_per_line_in_order() {
        let files = vec![
            SourceFile::new("a.toml".into(), "x\ny\n".into()),
            SourceFile::new("b.toml".into(), "z".into()),
        ];
        let problems = vec![
            Problem {
                file: 1,
                offset: 0,
                message: "third".into(),
            },
            Problem {
                file: 0,
                offset: 2,
                message: "second".into(),
            },
            Problem {
                file: 0,
                offset: 0,
                message: "first".into(),
            },
        ];
        assert_eq!(
            place(&files, problems).to_string(),
            "a.toml:1:1: first\na.toml:2:1: second\nb.toml:1:1: third"
        );
    }
}
