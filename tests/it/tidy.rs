//! Conventions the compiler does not check: the pipeline is the import graph (ARCHITECTURE.md),
//! pure stages stay pure, and nothing is left ignored or unimplemented.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of `src/<module>`: `src/<module>.rs` and everything under `src/<module>/` (a module
/// may be a file, a directory with `mod.rs`, or a file with its submodules beside it).
fn module_files(module: &str) -> Vec<PathBuf> {
    let dir = root().join("src").join(module);
    let file = root().join("src").join(format!("{module}.rs"));
    let mut files = if dir.is_dir() {
        rust_files(&dir)
    } else {
        Vec::new()
    };
    if file.is_file() {
        files.insert(0, file);
    }
    assert!(!files.is_empty(), "no module src/{module}");
    files
}

#[test]
fn stages_import_only_what_feeds_them() {
    // module -> the crate modules it may use
    let allowed: &[(&str, &[&str])] = &[
        ("clock", &[]),
        ("secret", &[]),
        ("files", &[]),
        // `config` owns every validated config type, the notifiers' and hooks' included:
        // `notify` and `hook` import it, never the reverse.
        // It parses expressions (`promql`) and knows the exposition parser's limits: pure leaves.
        (
            "config",
            &[
                "config",
                "files",
                "secret",
                "clock",
                "alert",
                "promql",
                "exposition",
                // `[[maintenance]]` and `[[inhibit]]` select alerts with matchers.
                "matcher",
            ],
        ),
        ("telemetry", &["config"]),
        (
            "check",
            &[
                "check",
                "config",
                "secret",
                "clock",
                "exposition",
                "promql",
                "series",
            ],
        ),
        ("rule", &["rule", "config", "clock"]),
        // SLO arithmetic: per-minute counts in, budget and burn-rate levels out.
        ("slo", &["slo", "config", "clock", "alert"]),
        // The engine keeps the series store its `expr` rules read.
        (
            "engine",
            &[
                "check", "config", "clock", "rule", "promql", "series", "slo",
            ],
        ),
        ("scheduler", &["check", "config", "clock", "telemetry"]),
        // The evaluator drives the engine and hands on to the actions task and the server's
        // snapshot; it sits above them as a driver, below `app`.
        (
            "evaluator",
            &[
                "actions",
                "check",
                "clock",
                "config",
                "engine",
                "rule",
                "series",
                "server",
                "slo",
                "telemetry",
            ],
        ),
        ("watch", &["config", "engine"]),
        ("reload", &["files"]),
        // `labels` is a leaf: the label sets an alert's identity and its events carry.
        ("labels", &[]),
        // Alertmanager's label matchers over a label set: silences, maintenance, inhibition.
        ("matcher", &["labels"]),
        // The exposition parser is a leaf too: bytes in, samples (label sets) out.
        ("exposition", &["exposition"]),
        ("alert", &["labels"]),
        // Expressions and the samples they read: the evaluator knows only its `Source`, the
        // store only the evaluator's types.
        ("promql", &["promql"]),
        ("series", &["promql"]),
        (
            "actions",
            &[
                "actions",
                "alert",
                "clock",
                // Window commands come in with their replies.
                "command",
                "config",
                "engine",
                "hook",
                // Silences, maintenance windows and inhibition match alerts' labels.
                "matcher",
                "notify",
                "outbox",
                // Validation windows read the rules' states and the series store (their
                // expressions) through the driver's `Facts`.
                "promql",
                "rule",
                "secret",
                "series",
                "state",
                "telemetry",
                "window",
            ],
        ),
        ("hook", &["alert", "clock", "config", "secret"]),
        // The state store keeps facts (the events it stores, their times) and knows nothing of
        // who delivers or runs them: `outbox` and `actions` use it, never the other way round.
        ("state", &["alert", "clock", "state"]),
        (
            "outbox",
            &[
                "alert",
                "clock",
                "hook",
                "outbox",
                "secret",
                "state",
                "telemetry",
            ],
        ),
        ("notify", &["alert", "clock", "config", "notify", "secret"]),
        ("command", &["reload", "window"]),
        // Validation windows at run time: pure, over the rules' states and a `Facts` source.
        ("window", &["clock", "config", "rule", "window"]),
        (
            "server",
            &[
                "clock",
                "command",
                "engine",
                "query_api",
                "reload",
                "secret",
                "series",
                "telemetry",
                "window",
            ],
        ),
        // The query API formats what the evaluator computes: pure.
        ("query_api", &["config", "promql", "series"]),
        // warden's own health evidence (the scheduler's pulse, the evaluator's heartbeat in
        // `Shared`, the outbox's next-poll gauge) and the pure verdict on it.
        ("vitals", &["clock", "scheduler", "server", "telemetry"]),
        ("systemd", &["vitals"]),
        // The outbound heartbeat: its config, the evidence, nothing of the stages it watches.
        ("heartbeat", &["config", "secret", "vitals"]),
    ];
    let mut violations = Vec::new();
    for (module, may_use) in allowed {
        for file in module_files(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                let mut rest = line;
                while let Some(i) = rest.find("crate::") {
                    let used: String = rest[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    // `labels` is a leaf of vocabulary (a label set, its text and hash) that
                    // every stage may speak.
                    if used != "labels" && !may_use.contains(&used.as_str()) {
                        violations.push(format!(
                            "{}:{}: {module} uses crate::{used}",
                            file.strip_prefix(root()).unwrap().display(),
                            n + 1
                        ));
                    }
                    rest = &rest[i + 7..];
                }
            }
        }
    }
    // `super::super::` would reach another module without naming it `crate::`, out of this
    // table's sight (the way `outbox/store.rs` and `outbox/hooks.rs` once imported each other).
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.contains("super::super::") {
                violations.push(format!(
                    "{}:{}: super::super:: (name the module with crate::)",
                    file.strip_prefix(root()).unwrap().display(),
                    n + 1
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the pipeline:\n{}",
        violations.join("\n")
    );
}

#[test]
fn pure_stages_do_no_io_and_read_no_clock() {
    let banned = [
        "tokio::",
        "std::net",
        "std::fs",
        "SystemTime",
        "Instant",
        "rusqlite",
        // Logging is output too: a pure stage returns what happened (a plan, a reason) and its
        // driver logs it.
        "tracing::",
    ];
    let mut violations = Vec::new();
    for module in [
        "rule",
        "slo",
        "engine",
        "state/admission",
        "config/notifier",
        "config/hook",
        // The alert stage's reconciliation (`Alerts`); its driver is `actions/run.rs`.
        "actions/mod",
        // Guarded hooks (confirm, verify): part of `Alerts`.
        "actions/guarded",
        // Silences, maintenance windows, inhibition: what keeps pages back.
        "actions/silences",
        "config/suppression",
        "matcher",
        "window/mod",
        "promql",
        "series",
        "exposition",
        "query_api",
    ] {
        for file in module_files(module) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for b in banned {
                    if line.contains(b) && !line.trim_start().starts_with("//") {
                        violations.push(format!(
                            "{}:{}: {b}",
                            file.strip_prefix(root()).unwrap().display(),
                            n + 1
                        ));
                    }
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "pure code doing I/O or reading clocks:\n{}",
        violations.join("\n")
    );
}

#[test]
fn nothing_is_ignored_or_left_unimplemented() {
    let needles = [
        concat!("#[", "ignore"),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
        concat!("#[", "should_panic"),
    ];
    let mut found = Vec::new();
    for dir in ["src", "tests", "benches"] {
        let dir = root().join(dir);
        if !dir.is_dir() {
            continue;
        }
        for file in rust_files(&dir) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                for needle in needles {
                    if line.contains(needle) {
                        found.push(format!("{}:{}", file.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "placeholders or ignored tests:\n{}",
        found.join("\n")
    );
}
