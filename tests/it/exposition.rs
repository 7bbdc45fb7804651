//! The fuzz seed corpus (`fuzz/corpus/exposition/`) through the exposition parser in the
//! normal suite: every seed, as either format, with default and tight limits, is answered at
//! once, within the limits, without a panic; the realistic seeds parse in their own format
//! (`.prom` text 0.0.4, `.om` OpenMetrics) and the `bad_*` ones are refused.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use warden::exposition::{parse, Format, Limits};

fn seeds() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/exposition");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_seed_is_answered_within_limits() {
    let tight = Limits {
        max_samples: 8,
        max_labels: 3,
        max_label_name_len: 8,
        max_label_value_len: 16,
        max_line_len: 128,
    };
    let files = seeds();
    assert!(files.len() >= 10, "the seed corpus is missing: {files:?}");
    for file in &files {
        let body = std::fs::read(file).unwrap();
        for format in [Format::Text004, Format::OpenMetrics] {
            for limits in [Limits::default(), tight.clone()] {
                let started = Instant::now();
                let result = parse(&body, format, &limits);
                assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "{}: {:?} took {:?}",
                    file.display(),
                    format,
                    started.elapsed()
                );
                let Ok(parsed) = result else { continue };
                assert!(parsed.samples.len() <= limits.max_samples);
                for s in &parsed.samples {
                    assert!(s.labels.len() <= limits.max_labels);
                    assert!(s
                        .labels
                        .keys()
                        .all(|k| k.len() <= limits.max_label_name_len));
                    assert!(s
                        .labels
                        .values()
                        .all(|v| v.len() <= limits.max_label_value_len));
                }
            }
        }
    }
}

#[test]
fn realistic_seeds_parse_and_bad_ones_are_refused() {
    for file in seeds() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let format = if name.ends_with(".om") {
            Format::OpenMetrics
        } else {
            Format::Text004
        };
        let body = std::fs::read(&file).unwrap();
        let result = parse(&body, format, &Limits::default());
        if name.starts_with("bad_") {
            assert!(result.is_err(), "{name} parsed: {result:?}");
        } else {
            match result {
                Ok(parsed) => assert!(!parsed.samples.is_empty(), "{name} has no samples"),
                Err(err) => panic!("{name}: {err}"),
            }
        }
    }
}
