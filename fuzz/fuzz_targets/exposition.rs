//! Any bytes, as either format, with default and tight limits: an answer, never a panic, and
//! within the limits; what parses, written out again, parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::exposition::{parse, Format, Limits, Parsed};

fuzz_target!(|data: &[u8]| {
    let tight = Limits {
        max_samples: 8,
        max_labels: 3,
        max_label_name_len: 8,
        max_label_value_len: 16,
        max_line_len: 128,
    };
    for format in [Format::Text004, Format::OpenMetrics] {
        for limits in [Limits::default(), tight.clone()] {
            match parse(data, format, &limits) {
                Ok(parsed) => {
                    within(&parsed, &limits);
                    round_trip(&parsed, &limits);
                }
                Err(err) => {
                    let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
                    assert!(err.line >= 1 && err.line <= lines + 1, "{err}");
                }
            }
        }
    }
});

fn within(parsed: &Parsed, limits: &Limits) {
    assert!(parsed.samples.len() <= limits.max_samples);
    for s in &parsed.samples {
        assert!(s.labels.len() <= limits.max_labels);
        assert!(!s.labels.contains_key("__name__"));
        for (name, value) in &s.labels {
            assert!(name.len() <= limits.max_label_name_len);
            assert!(value.len() <= limits.max_label_value_len);
        }
    }
}

/// The samples as canonical text 0.0.4 parse back to themselves.
fn round_trip(parsed: &Parsed, limits: &Limits) {
    let mut body = String::new();
    for s in &parsed.samples {
        body.push_str(&s.name);
        body.push_str(&warden::labels::render(&s.labels));
        body.push(' ');
        if s.value.is_nan() {
            body.push_str("NaN");
        } else if s.value.is_infinite() {
            body.push_str(if s.value > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            body.push_str(&format!("{:e}", s.value));
        }
        // Text 0.0.4 has no negative timestamps; OpenMetrics ones can be.
        if let Some(ts) = s.timestamp_ms.filter(|ts| *ts >= 0) {
            body.push_str(&format!(" {ts}"));
        }
        body.push('\n');
    }
    let relaxed = Limits {
        max_line_len: usize::MAX,
        ..limits.clone()
    };
    let again =
        parse(body.as_bytes(), Format::Text004, &relaxed).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(again.samples.len(), parsed.samples.len());
    for (a, b) in again.samples.iter().zip(&parsed.samples) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.labels, b.labels);
        assert!(a.value.to_bits() == b.value.to_bits() || (a.value.is_nan() && b.value.is_nan()));
    }
}
