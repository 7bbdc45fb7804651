//! The series store: samples in memory, for expressions to read.
//!
//! Scrapes append what a target exposed, every other check's values are appended as series
//! too (`warden_check_<value>{check="..."}`), and [`promql`](crate::promql) reads the store
//! through [`Source`]. It keeps what the longest expression needs ([`Store::retention`]) and
//! drops older samples as it goes. Prometheus' scrape semantics, 2.42:
//!
//! - a sample's own timestamp is honoured; without one it is stamped with the scrape time;
//! - an exact repeat of `(series, timestamp)` is stored once; a sample older than the
//!   series' newest is out of order and dropped (reported in [`Ingested`]; not exported as a
//!   metric yet);
//! - a series that a target exposed in its previous scrape and no longer does gets a
//!   staleness marker at the scrape time, so an instant selector stops seeing it at once
//!   rather than for the 5-minute lookback; series exposed with explicit timestamps get none
//!   (Prometheus does not write markers for them either);
//! - a failed scrape marks every series of the target stale (as Prometheus does when `up`
//!   becomes 0).
//!
//! Pure and synchronous: the caller passes the times.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use promql_parser::label::{MatchOp, Matcher};

use crate::labels::Labels;
use crate::promql::{self, Series, Source, METRIC_NAME};

/// A series' label set as the store keeps it: interned `(name, value)` pairs sorted by name
/// (the metric name among them), so 10,000 series repeating `job="api"` hold that string
/// once. Ordered as `Labels` is (pairwise by name, then value).
type Key = Arc<[(Arc<str>, Arc<str>)]>;

fn get<'k>(key: &'k Key, name: &str) -> Option<&'k str> {
    key.binary_search_by(|(n, _)| (**n).cmp(name))
        .ok()
        .map(|i| &*key[i].1)
}

fn labels_of(key: &Key) -> Labels {
    key.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// One series' samples, oldest first: times as milliseconds after `base` (4 bytes each),
/// values beside them (8 bytes each).
#[derive(Debug, Default)]
struct Data {
    base: i64,
    times: Vec<u32>,
    values: Vec<f64>,
}

impl Data {
    fn newest(&self) -> Option<i64> {
        self.times.last().map(|t| self.base + i64::from(*t))
    }

    fn len(&self) -> usize {
        self.times.len()
    }

    fn time(&self, i: usize) -> i64 {
        self.base + i64::from(self.times[i])
    }

    /// Appends `(t, v)`, `t` after every stored time. A span past `u32` milliseconds (49
    /// days) moves `base` up to the oldest sample; samples still too old for it are dropped
    /// (no retention keeps 49 days).
    fn push(&mut self, t: i64, v: f64) {
        if self.times.is_empty() {
            self.base = t;
        }
        if u32::try_from(t - self.base).is_err() {
            let oldest_kept = t - i64::from(u32::MAX);
            let from = (0..self.len())
                .find(|&i| self.time(i) >= oldest_kept)
                .unwrap_or(self.len());
            let times: Vec<i64> = (from..self.len()).map(|i| self.time(i)).collect();
            self.values.drain(..from);
            self.base = times.first().copied().unwrap_or(t);
            self.times = times
                .into_iter()
                .map(|x| u32::try_from(x - self.base).unwrap_or(u32::MAX))
                .collect();
        }
        self.times
            .push(u32::try_from(t - self.base).unwrap_or(u32::MAX));
        self.values.push(v);
    }

    /// Index of the first sample at or after `t`.
    fn at_or_after(&self, t: i64) -> usize {
        let offset = t - self.base;
        if offset <= 0 {
            return 0;
        }
        match u32::try_from(offset) {
            Ok(o) => self.times.partition_point(|x| *x < o),
            Err(_) => self.len(),
        }
    }

    /// Index past the last sample at or before `t`.
    fn up_to(&self, t: i64) -> usize {
        let offset = t - self.base;
        if offset < 0 {
            return 0;
        }
        match u32::try_from(offset) {
            Ok(o) => self.times.partition_point(|x| *x <= o),
            Err(_) => self.len(),
        }
    }
}

/// What one scrape's samples did to the store.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub appended: usize,
    /// Exact repeats of a stored `(series, timestamp)`, stored once.
    pub duplicates: usize,
    /// Older than the series' newest sample: dropped.
    pub out_of_order: usize,
    /// Series the target no longer exposes, marked stale.
    pub stale: usize,
}

/// The store. See the module doc.
#[derive(Debug, Default)]
pub struct Store {
    /// Series by metric name, then labels (metric name included).
    by_name: HashMap<Arc<str>, HashMap<Key, Data>>,
    /// Per target: the series its last scrape exposed without a timestamp (staleness).
    exposed: HashMap<String, HashSet<Key>>,
    /// Every label name and value held, once.
    strings: HashSet<Arc<str>>,
    retention: Duration,
}

/// One sample a scrape read: labels (with `__name__`), its own timestamp if it had one, and
/// the value.
pub type Scraped = (Labels, Option<i64>, f64);

impl Store {
    /// A store keeping at least `retention` of history.
    pub fn new(retention: Duration) -> Store {
        Store {
            retention,
            ..Store::default()
        }
    }

    pub fn retention(&self) -> Duration {
        self.retention
    }

    pub fn set_retention(&mut self, retention: Duration) {
        self.retention = retention;
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.by_name.values().map(HashMap::len).sum()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.by_name
            .values()
            .flat_map(HashMap::values)
            .map(Data::len)
            .sum()
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(held) = self.strings.get(s) {
            return held.clone();
        }
        let held: Arc<str> = Arc::from(s);
        self.strings.insert(held.clone());
        held
    }

    fn key(&mut self, labels: &Labels) -> Key {
        labels
            .iter()
            .map(|(n, v)| (self.intern(n), self.intern(v)))
            .collect::<Vec<_>>()
            .into()
    }

    /// Appends one sample, counting it in `report` as appended, a duplicate or out of order.
    fn push(&mut self, key: Key, t: i64, v: f64, report: &mut Ingested) {
        let name = key
            .binary_search_by(|(n, _)| (**n).cmp(METRIC_NAME))
            .map(|i| key[i].1.clone())
            .unwrap_or_else(|_| Arc::from(""));
        let data = self
            .by_name
            .entry(name)
            .or_default()
            .entry(key)
            .or_default();
        match data.newest() {
            Some(newest) if t == newest => {
                // An exact repeat is stored once; a different value at the same time is a
                // duplicate Prometheus would reject too.
                report.duplicates += 1;
            }
            Some(newest) if t < newest => report.out_of_order += 1,
            _ => {
                data.push(t, v);
                report.appended += 1;
            }
        }
    }

    /// Appends a scrape of `target` taken at `at` (ms): see the module doc.
    pub fn ingest(&mut self, target: &str, samples: Vec<Scraped>, at: i64) -> Ingested {
        let mut report = Ingested::default();
        let mut exposed: HashSet<Key> = HashSet::with_capacity(samples.len());
        for (labels, ts, v) in samples {
            let key = self.key(&labels);
            if ts.is_none() {
                exposed.insert(key.clone());
            }
            self.push(key, ts.unwrap_or(at), v, &mut report);
        }
        let before = self.exposed.insert(target.to_string(), exposed);
        if let Some(before) = before {
            let now = &self.exposed[target];
            let gone: Vec<Key> = before.difference(now).cloned().collect();
            for key in gone {
                self.mark_stale(key, at, &mut report);
            }
        }
        report
    }

    /// A failed scrape of `target` at `at`: every series it exposed goes stale.
    pub fn scrape_failed(&mut self, target: &str, at: i64) -> Ingested {
        let mut report = Ingested::default();
        for key in self.exposed.remove(target).unwrap_or_default() {
            self.mark_stale(key, at, &mut report);
        }
        report
    }

    fn mark_stale(&mut self, key: Key, at: i64, report: &mut Ingested) {
        let mut pushed = Ingested::default();
        self.push(key, at, promql::stale_nan(), &mut pushed);
        report.stale += pushed.appended;
    }

    /// Appends `value` at `t` to the series `labels` (another check's value).
    pub fn append(&mut self, labels: Labels, t: i64, value: f64) {
        let mut report = Ingested::default();
        let key = self.key(&labels);
        self.push(key, t, value, &mut report);
    }

    /// Drops samples older than `now - retention`, series left without samples, and label
    /// strings no series holds any more.
    pub fn prune(&mut self, now: i64) {
        let cutoff = now - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        for series in self.by_name.values_mut() {
            series.retain(|_, d| {
                let keep_from = d.at_or_after(cutoff);
                d.times.drain(..keep_from);
                d.values.drain(..keep_from);
                !d.times.is_empty()
            });
        }
        self.by_name.retain(|_, s| !s.is_empty());
        // Held only here (and by a map key of a removed name): no series uses it.
        self.strings.retain(|s| Arc::strong_count(s) > 1);
    }
}

impl Source for Store {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Series> {
        let name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.as_str());
        let candidates: Box<dyn Iterator<Item = (&Key, &Data)>> = match name {
            Some(n) => match self.by_name.get(n) {
                Some(series) => Box::new(series.iter()),
                None => return Vec::new(),
            },
            None => Box::new(self.by_name.values().flat_map(|s| s.iter())),
        };
        let mut picked: Vec<(&Key, &Data, usize, usize)> = candidates
            .filter(|(key, _)| {
                matchers
                    .iter()
                    .all(|m| m.is_match(get(key, &m.name).unwrap_or("")))
            })
            .filter_map(|(key, d)| {
                let (from, to) = (d.at_or_after(mint), d.up_to(maxt));
                (from < to).then_some((key, d, from, to))
            })
            .collect();
        // In label order, as Prometheus' index returns series: `topk` and `bottomk` keep the
        // first of equal values, so the order decides ties. Interned pairs sorted by name
        // compare as the label sets do, without building them first.
        picked.sort_unstable_by(|a, b| a.0.cmp(b.0));
        picked
            .into_iter()
            .map(|(key, d, from, to)| Series {
                labels: labels_of(key),
                points: (from..to).map(|i| (d.time(i), d.values[i])).collect(),
            })
            .collect()
    }
}

/// The store as the evaluator and the HTTP server share it: the evaluator writes, queries read.
pub type Shared = Arc<std::sync::RwLock<Store>>;

/// Reading through the lock one selection at a time, so a long query never holds the
/// evaluator's writes back for more than a copy of the series it selects.
impl Source for std::sync::RwLock<Store> {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Series> {
        let store = self.read().unwrap_or_else(|e| e.into_inner());
        store.select(matchers, mint, maxt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::{Query, Value};

    fn l(name: &str, pairs: &[(&str, &str)]) -> Labels {
        let mut out: Labels = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.insert(METRIC_NAME.into(), name.into());
        out
    }

    fn values(store: &Store, expr: &str, t: i64) -> Vec<f64> {
        match Query::parse(expr).unwrap().eval(store, t).unwrap() {
            Value::Vector(v) => v.into_iter().map(|s| s.value).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_series_gone_from_a_scrape_is_stale_at_once() {
        let mut s = Store::new(Duration::from_secs(600));
        let a = l("up_a", &[]);
        let b = l("up_b", &[]);
        s.ingest("t", vec![(a.clone(), None, 1.0), (b.clone(), None, 1.0)], 0);
        let r = s.ingest("t", vec![(a.clone(), None, 2.0)], 15_000);
        assert_eq!(r.stale, 1);
        assert_eq!(values(&s, "up_a", 15_000), [2.0]);
        assert!(values(&s, "up_b", 15_000).is_empty(), "stale at once");
        // Without the marker it would still be seen for five minutes.
        assert_eq!(values(&s, "up_b", 14_999), [1.0]);
        // A failed scrape marks the rest stale.
        assert_eq!(s.scrape_failed("t", 30_000).stale, 1);
        assert!(values(&s, "up_a", 30_000).is_empty());
    }

    #[test]
    fn explicit_timestamps_are_honoured_repeats_stored_once_and_old_samples_dropped() {
        let mut s = Store::new(Duration::from_secs(600));
        let c = l("c_total", &[("job", "x")]);
        let r = s.ingest("t", vec![(c.clone(), Some(1_000), 5.0)], 9_000);
        assert_eq!(r.appended, 1);
        let r = s.ingest("t", vec![(c.clone(), Some(1_000), 5.0)], 24_000);
        assert_eq!((r.appended, r.duplicates), (0, 1));
        let r = s.ingest("t", vec![(c.clone(), Some(500), 4.0)], 39_000);
        assert_eq!(r.out_of_order, 1);
        // Gone from the scrape, but it had its own timestamp: no marker.
        let r = s.ingest("t", vec![], 54_000);
        assert_eq!(r.stale, 0);
        assert_eq!(values(&s, "c_total", 60_000), [5.0]);
        assert_eq!(s.sample_count(), 1);
    }

    /// Times are 32-bit offsets from a base: a series spanning more than that moves its base
    /// up and keeps the samples that still fit, in order.
    #[test]
    fn a_span_past_32_bits_of_milliseconds_moves_the_base() {
        let mut d = Data::default();
        let day = 86_400_000i64;
        for i in 0..60 {
            d.push(i * day, i as f64);
        }
        // 49.7 days fit: the oldest samples went, the newest are all there, in order.
        assert_eq!(d.newest(), Some(59 * day));
        let times: Vec<i64> = (0..d.len()).map(|i| d.time(i)).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        assert!(times[0] >= 59 * day - i64::from(u32::MAX), "{}", times[0]);
        assert_eq!(d.values.last(), Some(&59.0));
        assert_eq!(d.up_to(59 * day), d.len());
        assert_eq!(d.at_or_after(59 * day), d.len() - 1);
    }

    /// Label strings are held once, and let go when no series holds them.
    #[test]
    fn label_strings_are_shared_and_released() {
        let mut s = Store::new(Duration::from_secs(60));
        for i in 0..100 {
            s.append(
                l("up", &[("job", "api"), ("instance", &format!("h{i}"))]),
                0,
                1.0,
            );
        }
        // "up", "__name__", "job", "api", "instance" and 100 instance names.
        assert_eq!(s.strings.len(), 105);
        s.prune(1_000_000);
        assert_eq!(s.series_count(), 0);
        assert!(s.strings.is_empty(), "{:?}", s.strings);
    }

    #[test]
    fn prune_keeps_the_retention() {
        let mut s = Store::new(Duration::from_secs(60));
        let g = l("g", &[]);
        for i in 0..10 {
            s.append(g.clone(), i * 15_000, i as f64);
        }
        s.prune(135_000);
        // Kept: samples at or after 75 s.
        assert_eq!(s.sample_count(), 5);
        s.prune(1_000_000);
        assert_eq!(s.series_count(), 0);
    }
}
