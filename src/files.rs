//! Reading the files a config names: regular files only, bounded in size, never blocking.
//!
//! Config files, included files, secret and CA files, and the file watcher's look at them all
//! read through [`read_regular`]. A FIFO with no writer, a device or a directory is refused
//! from its metadata before anything opens it (and opening is non-blocking, so one swapped in
//! meanwhile is caught by `fstat` instead of hanging the reader); a file larger than the
//! caller's limit is refused after reading at most one byte more than the limit.
//!
//! This module reads what it is asked to and decides nothing about configs.

use std::fs::{File, FileType, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Reads `path` (following symlinks) if it is a regular file of at most `limit` bytes.
///
/// Errors are ordinary `io::Error`s whose message reads after a path: "is a FIFO, not a
/// regular file", "is larger than 1048576 bytes".
pub fn read_regular(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    refuse_special(std::fs::metadata(path)?.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    refuse_special(file.metadata()?.file_type())?;
    read_bounded(file, limit)
}

fn read_bounded(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("is larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// An error for anything but a regular file, naming what it is.
pub fn refuse_special(kind: FileType) -> io::Result<()> {
    match special_kind(kind) {
        None => Ok(()),
        Some(what) => Err(io::Error::other(format!("is {what}, not a regular file"))),
    }
}

/// What a non-regular file is ("a FIFO", "a directory"...); `None` for a regular file.
pub fn special_kind(kind: FileType) -> Option<&'static str> {
    if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let ok = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs")
            .success();
        assert!(ok, "mkfifo {}", path.display());
    }

    #[test]
    fn reads_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "x = 1\n").unwrap();
        assert_eq!(read_regular(&file, 6).unwrap(), b"x = 1\n");
        let e = read_regular(&file, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "is larger than 5 bytes");
        // Through a symlink, as a ConfigMap's files are.
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular(&link, 100).unwrap(), b"x = 1\n");
    }

    #[test]
    fn refuses_fifos_devices_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.toml");
        mkfifo(&fifo);
        // A FIFO with no writer: opening it for reading would block forever.
        let cases: [(&Path, &str); 3] = [
            (&fifo, "is a FIFO, not a regular file"),
            (
                Path::new("/dev/zero"),
                "is a character device, not a regular file",
            ),
            (dir.path(), "is a directory, not a regular file"),
        ];
        for (path, want) in cases {
            let e = read_regular(path, 1 << 20).unwrap_err();
            assert_eq!(e.to_string(), want, "{}", path.display());
        }
    }
}
