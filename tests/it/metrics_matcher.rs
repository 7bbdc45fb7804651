//! A small reader of the Prometheus text format for assertions:
//! `metric(&text, "warden_check_up").label("check", "api").value()`.

use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses sample lines (comments skipped). Panics on a malformed line: the exposition is ours.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels {line:?}"));
                (name.to_string(), parse_labels(body))
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(body: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(
            chars.next(),
            Some('"'),
            "label value must be quoted in {body:?}"
        );
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

pub struct Query<'a> {
    samples: Vec<&'a Sample>,
    name: String,
}

pub fn metric<'a>(samples: &'a [Sample], name: &str) -> Query<'a> {
    Query {
        samples: samples.iter().filter(|s| s.name == name).collect(),
        name: name.to_string(),
    }
}

impl<'a> Query<'a> {
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.samples
            .retain(|s| s.labels.get(key).map(String::as_str) == Some(value));
        self
    }

    pub fn value(&self) -> f64 {
        match self.samples.as_slice() {
            [one] => one.value,
            [] => panic!("no sample of {} matches", self.name),
            many => panic!("{} samples of {} match: {many:?}", many.len(), self.name),
        }
    }

    pub fn count(&self) -> usize {
        self.samples.len()
    }
}

/// The value of the one sample of `name` with `labels` in exposition `text`; `None` when no
/// sample matches. Panics when several do (the labels were not specific enough).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let samples = parse(text);
    let mut q = metric(&samples, name);
    for (k, v) in labels {
        q = q.label(k, v);
    }
    match q.count() {
        0 => None,
        _ => Some(q.value()),
    }
}
