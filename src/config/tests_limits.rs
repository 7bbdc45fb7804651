//! What loading a config may read (issue 12, item 5): regular files only, a bounded number of
//! files and bytes, a bounded walk per include pattern. Every case runs on real files in a
//! temp dir (FIFOs with no writer, symlink loops) and must return, not hang.

use std::path::{Path, PathBuf};

use super::load::Limits;
use super::*;

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs")
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// A temp dir with `main.toml` holding `text`.
fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let main = dir.path().join("main.toml");
    std::fs::write(&main, text).expect("temp dir is writable");
    (dir, main)
}

/// The diagnostics of loading `main` within `limits`, with the temp dir shown as `DIR`.
fn errors(dir: &Path, main: &Path, limits: Limits) -> String {
    let env = |_: &str| None;
    let read = |p: &Path| crate::files::read_regular(p, MAX_NAMED_FILE_BYTES);
    match load_within(
        main,
        &compile::Host {
            env: &env,
            read: &read,
        },
        limits,
    ) {
        Ok(_) => "(loaded without errors)".to_string(),
        Err(diags) => diags.to_string().replace(&dir.display().to_string(), "DIR"),
    }
}

const CHECK: &str = "[[check]]\nname = \"x\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\n";

#[test]
fn fifos_are_refused_where_they_are_named() {
    let (dir, main) = config("include = [\"pipe.toml\", \"conf.d/*.toml\"]\n");
    mkfifo(&dir.path().join("pipe.toml"));
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    mkfifo(&dir.path().join("conf.d/p.toml"));
    std::fs::write(dir.path().join("conf.d/ok.toml"), CHECK).unwrap();
    assert_eq!(
        errors(dir.path(), &main, Limits::DEFAULT),
        "DIR/main.toml:1:12: included file \"pipe.toml\" is a FIFO; only regular files can be included\n\
         DIR/main.toml:1:25: include pattern \"conf.d/*.toml\" matches DIR/conf.d/p.toml, which is a FIFO; only regular files can be included"
    );

    // The main file itself, and a file the config names (a token).
    let fifo = dir.path().join("main-fifo.toml");
    mkfifo(&fifo);
    assert_eq!(
        errors(dir.path(), &fifo, Limits::DEFAULT),
        "DIR/main-fifo.toml:1:1: cannot read file: is a FIFO, not a regular file"
    );
    let (dir, main) = config(&format!(
        "[server]\nlisten = \"0.0.0.0:9731\"\ntoken_file = \"token\"\n\n{CHECK}"
    ));
    mkfifo(&dir.path().join("token"));
    assert_eq!(
        errors(dir.path(), &main, Limits::DEFAULT),
        "DIR/main.toml:3:14: cannot read server.token_file \"token\": is a FIFO, not a regular file"
    );
}

#[test]
fn devices_and_directories_are_refused_as_includes() {
    let (dir, main) = config("include = [\"/dev/zero\", \"conf.d\"]\n");
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    assert_eq!(
        errors(dir.path(), &main, Limits::DEFAULT),
        "DIR/main.toml:1:12: included file \"/dev/zero\" is a character device; only regular files can be included\n\
         DIR/main.toml:1:25: included file \"conf.d\" is a directory; only regular files can be included"
    );
}

#[test]
fn a_pattern_that_would_walk_forever_is_cut_short() {
    // `a` and `b` both lead back to `loop`: `**` would walk 2^40 paths before the kernel's
    // symlink limit stops it. The walk stops at the entry limit instead.
    let (dir, main) = config(&format!("include = [\"loop/**/*.toml\"]\n{CHECK}"));
    let tree = dir.path().join("loop");
    std::fs::create_dir(&tree).unwrap();
    std::os::unix::fs::symlink(".", tree.join("a")).unwrap();
    std::os::unix::fs::symlink(".", tree.join("b")).unwrap();
    assert_eq!(
        errors(dir.path(), &main, Limits::DEFAULT),
        "DIR/main.toml:1:12: include pattern \"loop/**/*.toml\" looks through more than 10000 directory entries; name a narrower directory"
    );
    // The whole machine, from the root.
    let (dir, main) = config(&format!("include = [\"/**/*.toml\"]\n{CHECK}"));
    let got = errors(dir.path(), &main, Limits::DEFAULT);
    assert!(
        got.ends_with("include pattern \"/**/*.toml\" looks through more than 10000 directory entries; name a narrower directory"),
        "{got}"
    );
}

#[test]
fn files_and_bytes_are_bounded() {
    let (dir, main) = config(&format!("include = [\"conf.d/*.toml\"]\n{CHECK}"));
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    for i in 0..4 {
        std::fs::write(conf.join(format!("{i}.toml")), "# nothing\n").unwrap();
    }
    let limits = |files, bytes| Limits {
        files,
        bytes,
        glob_entries: 100,
    };
    assert_eq!(
        errors(dir.path(), &main, limits(5, 1000)),
        "(loaded without errors)"
    );
    assert_eq!(
        errors(dir.path(), &main, limits(3, 1000)),
        "DIR/main.toml:1:12: include pattern \"conf.d/*.toml\" matches more than 3 files"
    );
    // Four matches are allowed, but not five files in all.
    assert_eq!(
        errors(dir.path(), &main, limits(4, 1000)),
        "DIR/main.toml:1:12: cannot include DIR/conf.d/3.toml: a config may have at most 4 files (the main file and its includes)"
    );
    // main.toml is 86 bytes and each include 10: the fourth include goes past 125.
    assert_eq!(
        errors(dir.path(), &main, limits(5, 125)),
        "DIR/main.toml:1:12: cannot include DIR/conf.d/3.toml: a config's files may add up to at most 125 bytes"
    );
    assert_eq!(
        errors(dir.path(), &main, limits(5, 50)),
        "DIR/main.toml:1:1: cannot read file: a config's files may add up to at most 50 bytes"
    );
    assert_eq!(
        errors(dir.path(), &main, Limits { glob_entries: 3, ..limits(5, 1000) }),
        "DIR/main.toml:1:12: include pattern \"conf.d/*.toml\" looks through more than 3 directory entries; name a narrower directory"
    );
}
