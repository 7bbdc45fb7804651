//! The Prometheus exposition formats, parsed: text 0.0.4 and OpenMetrics 1.0 bodies into
//! samples, their `TYPE`s and `HELP`s.
//!
//! Strict and pure: one pass over the bytes of a body the caller has already read (and bounded),
//! no I/O, no clock, no regex. Prometheus 2.42's parsers (`model/textparse`) are the reference
//! for what is accepted, line by line; on top of them this parser refuses, as one scrape would
//! have to be refused as a whole, a duplicate series, a duplicate label name, a label named
//! `__name__`, a second `TYPE` or `HELP` for a metric, a `TYPE` after the metric's samples, and
//! invalid UTF-8 anywhere. Every error names the 1-based line it is about. Input never panics,
//! and what a body makes it allocate is bounded by [`Limits`] (samples and their labels) and a
//! small multiple of the body's own size (`TYPE` and `HELP` entries).
//!
//! It must not do I/O, read a clock, log, or decide anything about the values (histogram
//! buckets, counter resets are the evaluator's); it imports nothing of warden but `labels`.
//! Where it knowingly differs from Prometheus, `line.rs` and the tests say so.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crate::labels::Labels;

mod line;
#[cfg(test)]
mod tests;

/// The dialect of a body, chosen by the caller from the response's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`, and what Prometheus assumes for anything it does not know.
    Text004,
    /// `application/openmetrics-text; version=1.0.0`: single spaces, timestamps in seconds,
    /// `# EOF` at the end.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics for the media type `application/openmetrics-text` (any parameters, any
    /// case), text 0.0.4 for everything else, an empty or malformed header included: the choice
    /// Prometheus 2.42 makes (`textparse.New`).
    pub fn from_content_type(content_type: &str) -> Format {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text004
        }
    }
}

/// Bounds on what one body may hold. Each one exceeded is an error naming it and the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Samples in the body (`sample_limit` in errors, as Prometheus names its own).
    pub max_samples: usize,
    /// Labels of one sample, the metric name not counted (`label_limit`).
    pub max_labels: usize,
    /// Bytes of one label name (`label_name_length_limit`).
    pub max_label_name_len: usize,
    /// Bytes of one label value, unescaped (`label_value_length_limit`).
    pub max_label_value_len: usize,
    /// Bytes of one line, its newline not counted (`line_length_limit`).
    pub max_line_len: usize,
}

impl Default for Limits {
    /// Generous for any real exporter (a busy node_exporter exposes a few thousand series,
    /// Kubernetes' kube-state-metrics tens of thousands), small enough that a hostile or broken
    /// target cannot make one scrape cost more than a few hundred megabytes.
    fn default() -> Self {
        Limits {
            max_samples: 200_000,
            max_labels: 64,
            max_label_name_len: 256,
            max_label_value_len: 4096,
            max_line_len: 64 * 1024,
        }
    }
}

/// One sample of a body: a series (name and labels) and its value, with the timestamp the
/// target gave it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name as written (`http_requests_total`, `foo_bucket`, `job:rate:5m`).
    pub name: String,
    /// The labels, `__name__` never among them; `le` and `quantile` values kept as written.
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch: as written in text 0.0.4, seconds × 1000 (truncated) in
    /// OpenMetrics.
    pub timestamp_ms: Option<i64>,
}

/// A metric family's type, from its `TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    /// Text 0.0.4's `untyped`.
    Untyped,
    GaugeHistogram,
    StateSet,
    Info,
    /// OpenMetrics' `unknown`.
    Unknown,
}

impl MetricType {
    /// The word a `TYPE` line uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
            MetricType::GaugeHistogram => "gaugehistogram",
            MetricType::StateSet => "stateset",
            MetricType::Info => "info",
            MetricType::Unknown => "unknown",
        }
    }

    fn from_word(word: &str, format: Format) -> Option<MetricType> {
        Some(match (word, format) {
            ("counter", _) => MetricType::Counter,
            ("gauge", _) => MetricType::Gauge,
            ("histogram", _) => MetricType::Histogram,
            ("summary", _) => MetricType::Summary,
            ("untyped", Format::Text004) => MetricType::Untyped,
            ("gaugehistogram", Format::OpenMetrics) => MetricType::GaugeHistogram,
            ("stateset", Format::OpenMetrics) => MetricType::StateSet,
            ("info", Format::OpenMetrics) => MetricType::Info,
            ("unknown", Format::OpenMetrics) => MetricType::Unknown,
            _ => return None,
        })
    }

    /// The suffixes a family of this type adds to its name in its samples' names (a
    /// histogram `foo` is sampled as `foo_bucket`, `foo_sum`, ...), besides the bare name.
    fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            MetricType::Counter => &["_total", "_created"],
            MetricType::Histogram => &["_bucket", "_count", "_sum", "_created"],
            MetricType::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            MetricType::Summary => &["_count", "_sum", "_created"],
            MetricType::Info => &["_info"],
            MetricType::Gauge
            | MetricType::Untyped
            | MetricType::StateSet
            | MetricType::Unknown => &[],
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a body holds: its samples in the order written, and the families' types and help
/// texts keyed by family name (as written on the `TYPE` and `HELP` lines).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, MetricType>,
    pub help: BTreeMap<String, String>,
}

/// Why a body was refused, and the 1-based line where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ParseError {}

/// Parses a whole body. Nothing of it is returned unless all of it is valid: a scrape is
/// taken or refused as one, as Prometheus does.
pub fn parse(body: &[u8], format: Format, limits: &Limits) -> Result<Parsed, ParseError> {
    let mut parser = Parser::new(limits, body.len());
    let mut rest = body;
    let mut number = 0;
    loop {
        number += 1;
        let (bytes, terminated) = match memchr::memchr(b'\n', rest) {
            Some(i) => {
                let (line, after) = rest.split_at(i);
                rest = &after[1..];
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        let fail = |reason: String| ParseError {
            line: number,
            reason,
        };
        if bytes.len() > limits.max_line_len {
            return Err(fail(format!(
                "line_length_limit {} exceeded ({} bytes)",
                limits.max_line_len,
                bytes.len()
            )));
        }
        let line = std::str::from_utf8(bytes).map_err(|e| {
            fail(format!(
                "invalid UTF-8 at byte {} of the line",
                e.valid_up_to() + 1
            ))
        })?;
        match format {
            Format::Text004 => {
                if !terminated && line.is_empty() {
                    break;
                }
                parser.text_line(line, number).map_err(fail)?;
                if !terminated {
                    break;
                }
            }
            Format::OpenMetrics => {
                if line == "# EOF" {
                    if !rest.is_empty() {
                        return Err(ParseError {
                            line: number + 1,
                            reason: "unexpected data after # EOF".into(),
                        });
                    }
                    break;
                }
                if !terminated {
                    return Err(fail("data does not end with # EOF".into()));
                }
                parser.open_metrics_line(line, number).map_err(fail)?;
            }
        }
    }
    Ok(parser.finish())
}

/// What a sample line was found to hold, borrowing from the body.
struct SampleLine<'a> {
    name: &'a str,
    labels: Labels,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// A `# HELP`, `# TYPE` or `# UNIT` line.
enum Meta<'a> {
    Help(&'a str, String),
    Type(&'a str, MetricType),
    Unit,
}

/// The state kept across lines: the result so far and what the cross-line rules need.
struct Parser<'a, 'l> {
    limits: &'l Limits,
    parsed: Parsed,
    /// The line of each sample, for "first at line" in a duplicate's error.
    sample_lines: Vec<usize>,
    /// First line of each `TYPE` and `HELP`, by family name.
    type_lines: HashMap<&'a str, usize>,
    help_lines: HashMap<&'a str, usize>,
    /// First line of each sample name, to refuse a `TYPE` after its samples.
    names_seen: HashMap<&'a str, usize>,
    last_name: &'a str,
    /// Series fingerprint (keyed, so a target cannot choose collisions) → index of the first
    /// sample with it.
    series: HashMap<u64, usize, BuildHasherDefault<Prehashed>>,
    keys: RandomState,
    scratch: String,
}

impl<'a, 'l> Parser<'a, 'l> {
    /// Sized for a body of `len` bytes: a sample line of a real exporter is rarely under
    /// 64 bytes, so this reserves little more than it will use, and never past the limit.
    fn new(limits: &'l Limits, len: usize) -> Self {
        let expected = (len / 64).min(limits.max_samples);
        Parser {
            limits,
            parsed: Parsed {
                samples: Vec::with_capacity(expected),
                ..Parsed::default()
            },
            sample_lines: Vec::with_capacity(expected),
            type_lines: HashMap::new(),
            help_lines: HashMap::new(),
            names_seen: HashMap::new(),
            last_name: "",
            series: HashMap::with_capacity_and_hasher(expected, Default::default()),
            keys: RandomState::new(),
            scratch: String::new(),
        }
    }

    fn finish(self) -> Parsed {
        self.parsed
    }

    fn text_line(&mut self, line: &'a str, number: usize) -> Result<(), String> {
        match line::text(line, self.limits)? {
            line::Line::Blank | line::Line::Comment => Ok(()),
            line::Line::Meta(meta) => self.meta(meta, number),
            line::Line::Sample(sample) => self.sample(sample, number),
        }
    }

    fn open_metrics_line(&mut self, line: &'a str, number: usize) -> Result<(), String> {
        match line::open_metrics(line, self.limits)? {
            line::Line::Blank | line::Line::Comment => Ok(()),
            line::Line::Meta(meta) => self.meta(meta, number),
            line::Line::Sample(sample) => self.sample(sample, number),
        }
    }

    fn meta(&mut self, meta: Meta<'a>, number: usize) -> Result<(), String> {
        match meta {
            Meta::Unit => Ok(()),
            Meta::Help(name, text) => {
                if let Some(first) = self.help_lines.insert(name, number) {
                    return Err(format!(
                        "second HELP line for metric {name} (first at line {first})"
                    ));
                }
                self.parsed.help.insert(name.to_string(), text);
                Ok(())
            }
            Meta::Type(name, kind) => {
                if let Some(&first) = self.type_lines.get(name) {
                    let was = self.parsed.types[name];
                    return Err(if was == kind {
                        format!("second TYPE line for metric {name} (first at line {first})")
                    } else {
                        format!(
                            "metric {name} changes TYPE from {was} to {kind} (first TYPE at line {first})"
                        )
                    });
                }
                for suffix in std::iter::once(&"").chain(kind.sample_suffixes()) {
                    self.scratch.clear();
                    self.scratch.push_str(name);
                    self.scratch.push_str(suffix);
                    if let Some(first) = self.names_seen.get(self.scratch.as_str()) {
                        return Err(format!(
                            "TYPE line for metric {name} after its samples (first sample {} at line {first})",
                            self.scratch
                        ));
                    }
                }
                self.type_lines.insert(name, number);
                self.parsed.types.insert(name.to_string(), kind);
                Ok(())
            }
        }
    }

    fn sample(&mut self, sample: SampleLine<'a>, number: usize) -> Result<(), String> {
        if self.parsed.samples.len() >= self.limits.max_samples {
            return Err(format!("sample_limit {} exceeded", self.limits.max_samples));
        }
        if sample.name != self.last_name {
            self.names_seen.entry(sample.name).or_insert(number);
            self.last_name = sample.name;
        }
        let sample = Sample {
            name: sample.name.to_string(),
            labels: sample.labels,
            value: sample.value,
            timestamp_ms: sample.timestamp_ms,
        };
        let fingerprint = self.keys.hash_one((&sample.name, &sample.labels));
        let index = self.parsed.samples.len();
        if let Some(&other) = self.series.get(&fingerprint) {
            // Equal fingerprints: the same series, or (one chance in 2^64 per pair) a
            // collision, in which case look further.
            let same = |s: &Sample| s.name == sample.name && s.labels == sample.labels;
            let first = if same(&self.parsed.samples[other]) {
                Some(other)
            } else {
                self.parsed.samples.iter().position(same)
            };
            if let Some(first) = first {
                return Err(format!(
                    "duplicate series {}{} (first at line {})",
                    sample.name,
                    crate::labels::render(&sample.labels),
                    self.sample_lines[first]
                ));
            }
        } else {
            self.series.insert(fingerprint, index);
        }
        self.parsed.samples.push(sample);
        self.sample_lines.push(number);
        Ok(())
    }
}

/// A hasher for keys that are already hashes (the series fingerprints).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed with it; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
