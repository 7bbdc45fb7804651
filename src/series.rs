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

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use promql_parser::label::{MatchOp, Matcher};

use crate::labels::Labels;
use crate::promql::{self, EachSeries, Pair, SeriesLabels, Source, METRIC_NAME};

/// A series' labels but its name, as the store keeps them: pointers to interned labels,
/// sorted by name, so 10,000 series repeating `job="api"` hold that label once (8 bytes
/// each), and the evaluator is handed the same allocation ([`SeriesLabels`]), not a copy.
type Key = Arc<[Pair]>;

fn get<'k>(key: &'k Key, name: &str) -> Option<&'k str> {
    key.binary_search_by(|p| (*p.name).cmp(name))
        .ok()
        .map(|i| &*key[i].value)
}

/// The hash of a label set but its name, from the pairs in name order. A scraped `Labels`
/// and a stored [`Key`] with the same pairs hash the same.
fn hash_pairs<'a>(
    hasher: &DefaultHashBuilder,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let mut h = hasher.build_hasher();
    for (n, v) in pairs {
        n.hash(&mut h);
        v.hash(&mut h);
    }
    h.finish()
}

/// A stored key's pairs, in name order.
fn pairs_of(key: &Key) -> impl Iterator<Item = (&str, &str)> {
    key.iter().map(|p| (&*p.name, &*p.value))
}

/// A scraped label set's pairs but `__name__`, in name order.
fn rest_of(labels: &Labels) -> impl Iterator<Item = (&str, &str)> + Clone {
    labels
        .iter()
        .filter(|(n, _)| n.as_str() != METRIC_NAME)
        .map(|(n, v)| (n.as_str(), v.as_str()))
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
        if self.times.len() == self.times.capacity() {
            // Grown by an eighth, not doubled: a series holds about as many samples as its
            // retention spans, and what it grows into it keeps (prune drains the front).
            let more = (self.times.len() / 8).max(4);
            self.times.reserve_exact(more);
            self.values.reserve_exact(more);
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

/// Puts `item` in a free place of `places` (one `free` names) or a new one; its number.
fn place<T>(places: &mut Vec<Option<T>>, free: &mut Vec<u32>, item: T) -> u32 {
    match free.pop() {
        Some(i) => {
            places[i as usize] = Some(item);
            i
        }
        None => {
            places.push(Some(item));
            (places.len() - 1) as u32
        }
    }
}

/// One series in its family's slot.
#[derive(Debug)]
struct Slot {
    key: Key,
    /// Never given to another series: tells this one from a later one in the same slot.
    serial: u64,
    /// The ingest that last saw the series exposed without a timestamp (staleness).
    exposed_in: u64,
    data: Data,
}

/// A scraped series, as a target's exposed list remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SeriesId {
    family: u32,
    slot: u32,
    serial: u64,
}

/// The series of one metric name.
#[derive(Debug)]
struct Family {
    /// `None`: the series without a `__name__` label.
    name: Option<Arc<str>>,
    /// `None`: a free slot (its series was pruned), reused by the next new series.
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slot numbers by the hash of their key.
    index: HashTable<u32>,
    /// The live slots in label order, worked out when a selection first needs it after a
    /// series came or went (series come at a target's first scrapes, then rarely).
    order: OnceLock<Vec<u32>>,
}

impl Family {
    fn new(name: Option<Arc<str>>) -> Family {
        Family {
            name,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            order: OnceLock::new(),
        }
    }

    fn live(&self) -> impl Iterator<Item = (u32, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((i as u32, s.as_ref()?)))
    }

    fn labels(&self, slot: &Slot) -> SeriesLabels {
        SeriesLabels::new(self.name.clone(), slot.key.clone())
    }

    fn order(&self) -> &[u32] {
        self.order.get_or_init(|| {
            // The label order of the whole set, the name merged in at its place (a label
            // named `A` sorts before `__name__`), as `Labels` orders.
            let mut keyed: Vec<(SeriesLabels, u32)> =
                self.live().map(|(i, s)| (self.labels(s), i)).collect();
            keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            keyed.into_iter().map(|(_, i)| i).collect()
        })
    }
}

/// The store. See the module doc.
#[derive(Debug, Default)]
pub struct Store {
    /// Families by number; `None`: a free number.
    families: Vec<Option<Family>>,
    free_families: Vec<u32>,
    /// Family numbers by metric name.
    by_name: HashMap<Arc<str>, u32>,
    /// The family of series without a name, if any.
    unnamed: Option<u32>,
    /// Per target: the series its last scrape exposed without a timestamp (staleness).
    exposed: HashMap<String, Vec<SeriesId>>,
    /// Every label held, once.
    labels: HashTable<Pair>,
    hasher: DefaultHashBuilder,
    /// The last serial given to a series.
    serial: u64,
    /// The number of the last ingest (a scrape's samples).
    ingests: u64,
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

    fn live_families(&self) -> impl Iterator<Item = (u32, &Family)> {
        self.families
            .iter()
            .enumerate()
            .filter_map(|(i, f)| Some((i as u32, f.as_ref()?)))
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.live_families().map(|(_, f)| f.live().count()).sum()
    }

    /// Number of samples held.
    pub fn sample_count(&self) -> usize {
        self.live_families()
            .flat_map(|(_, f)| f.live())
            .map(|(_, s)| s.data.len())
            .sum()
    }

    fn intern(&mut self, name: &str, value: &str) -> Pair {
        let hash = hash_pairs(&self.hasher, std::iter::once((name, value)));
        let held = self
            .labels
            .find(hash, |l| &*l.name == name && &*l.value == value);
        if let Some(held) = held {
            return held.clone();
        }
        let new = promql::pair(name, value);
        let hasher = &self.hasher;
        self.labels.insert_unique(hash, new.clone(), |l| {
            hash_pairs(hasher, std::iter::once((&*l.name, &*l.value)))
        });
        new
    }

    /// The family of `name` (`None`: no `__name__` label), made if new.
    fn family_of(&mut self, name: Option<&str>) -> u32 {
        let found = match name {
            Some(n) => self.by_name.get(n).copied(),
            None => self.unnamed,
        };
        if let Some(f) = found {
            return f;
        }
        let interned: Option<Arc<str>> = name.map(Arc::from);
        let family = Family::new(interned.clone());
        let f = place(&mut self.families, &mut self.free_families, family);
        match interned {
            Some(n) => {
                self.by_name.insert(n, f);
            }
            None => self.unnamed = Some(f),
        }
        f
    }

    /// The series `labels` names, made if new. Its pairs are hashed once and compared with
    /// what is held; labels are interned only for a new series.
    fn series_of(&mut self, labels: &Labels) -> SeriesId {
        let f = self.family_of(labels.get(METRIC_NAME).map(String::as_str));
        let hash = hash_pairs(&self.hasher, rest_of(labels));
        let family = self.families[f as usize]
            .as_ref()
            .expect("family_of returns a live family");
        let found = family.index.find(hash, |&i| {
            family.slots[i as usize]
                .as_ref()
                .is_some_and(|s| pairs_of(&s.key).eq(rest_of(labels)))
        });
        if let Some(&slot) = found {
            let serial = family.slots[slot as usize].as_ref().map_or(0, |s| s.serial);
            return SeriesId {
                family: f,
                slot,
                serial,
            };
        }
        let key: Key = rest_of(labels)
            .map(|(n, v)| self.intern(n, v))
            .collect::<Vec<_>>()
            .into();
        self.serial += 1;
        let serial = self.serial;
        let family = self.families[f as usize]
            .as_mut()
            .expect("family_of returns a live family");
        let new = Slot {
            key,
            serial,
            exposed_in: 0,
            data: Data::default(),
        };
        let slot = place(&mut family.slots, &mut family.free, new);
        let (slots, hasher) = (&family.slots, &self.hasher);
        family.index.insert_unique(hash, slot, |&i| {
            let key = slots[i as usize].as_ref().map(|s| &s.key);
            hash_pairs(hasher, key.into_iter().flat_map(pairs_of))
        });
        family.order.take();
        SeriesId {
            family: f,
            slot,
            serial,
        }
    }

    fn slot_mut(&mut self, id: SeriesId) -> Option<&mut Slot> {
        self.families
            .get_mut(id.family as usize)?
            .as_mut()?
            .slots
            .get_mut(id.slot as usize)?
            .as_mut()
            .filter(|s| s.serial == id.serial)
    }

    /// Appends one sample, counting it in `report` as appended, a duplicate or out of order.
    fn push(&mut self, id: SeriesId, t: i64, v: f64, report: &mut Ingested) {
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        let data = &mut slot.data;
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
        self.ingests += 1;
        let this = self.ingests;
        let mut exposed: Vec<SeriesId> = Vec::with_capacity(samples.len());
        for (labels, ts, v) in samples {
            let id = self.series_of(&labels);
            if ts.is_none() {
                if let Some(slot) = self.slot_mut(id) {
                    if slot.exposed_in != this {
                        slot.exposed_in = this;
                        exposed.push(id);
                    }
                }
            }
            self.push(id, ts.unwrap_or(at), v, &mut report);
        }
        let before = self.exposed.insert(target.to_string(), exposed);
        for id in before.unwrap_or_default() {
            // Gone from this scrape: not marked exposed by it.
            if self.slot_mut(id).is_some_and(|s| s.exposed_in != this) {
                self.mark_stale(id, at, &mut report);
            }
        }
        report
    }

    /// A failed scrape of `target` at `at`: every series it exposed goes stale.
    pub fn scrape_failed(&mut self, target: &str, at: i64) -> Ingested {
        let mut report = Ingested::default();
        for id in self.exposed.remove(target).unwrap_or_default() {
            self.mark_stale(id, at, &mut report);
        }
        report
    }

    fn mark_stale(&mut self, id: SeriesId, at: i64, report: &mut Ingested) {
        let mut pushed = Ingested::default();
        self.push(id, at, promql::stale_nan(), &mut pushed);
        report.stale += pushed.appended;
    }

    /// Appends `value` at `t` to the series `labels` (another check's value).
    pub fn append(&mut self, labels: Labels, t: i64, value: f64) {
        let mut report = Ingested::default();
        let id = self.series_of(&labels);
        self.push(id, t, value, &mut report);
    }

    /// Drops samples older than `now - retention`, series left without samples, and labels
    /// no series holds any more.
    pub fn prune(&mut self, now: i64) {
        let cutoff = now - i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX);
        let hasher = &self.hasher;
        let mut emptied = Vec::new();
        for (f, family) in self.families.iter_mut().enumerate() {
            let Some(family) = family else { continue };
            let mut removed = false;
            for (i, entry) in family.slots.iter_mut().enumerate() {
                let Some(slot) = entry else { continue };
                let d = &mut slot.data;
                let keep_from = d.at_or_after(cutoff);
                d.times.drain(..keep_from);
                d.values.drain(..keep_from);
                if d.times.is_empty() {
                    let hash = hash_pairs(hasher, pairs_of(&slot.key));
                    if let Ok(e) = family.index.find_entry(hash, |&j| j as usize == i) {
                        e.remove();
                    }
                    *entry = None;
                    family.free.push(i as u32);
                    removed = true;
                }
            }
            if removed {
                family.order.take();
                if family.index.is_empty() {
                    emptied.push(f as u32);
                }
            }
        }
        for f in emptied {
            if let Some(family) = self.families[f as usize].take() {
                match family.name {
                    Some(n) => {
                        self.by_name.remove(&n);
                    }
                    None => self.unnamed = None,
                }
                self.free_families.push(f);
            }
        }
        // Held only here: no series uses it.
        self.labels.retain(|l| Arc::strong_count(l) > 1);
    }

    /// Calls `each` with the series of `family` that `matchers` match, in label order.
    fn each_matching<'s>(
        &'s self,
        family: &'s Family,
        matchers: &[Matcher],
        each: &mut impl FnMut(&'s Family, &'s Slot),
    ) {
        let name = family.name.as_deref().unwrap_or("");
        for &i in family.order() {
            let Some(slot) = family.slots[i as usize].as_ref() else {
                continue;
            };
            let matches = matchers.iter().all(|m| {
                let value = if m.name == METRIC_NAME {
                    name
                } else {
                    get(&slot.key, &m.name).unwrap_or("")
                };
                m.is_match(value)
            });
            if matches {
                each(family, slot);
            }
        }
    }
}

impl Source for Store {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, each: &mut EachSeries<'_>) {
        let name = matchers
            .iter()
            .find(|m| m.name == METRIC_NAME && matches!(m.op, MatchOp::Equal))
            .map(|m| m.value.as_str());
        let mut points: Vec<(i64, f64)> = Vec::new();
        let mut emit = |family: &Family, slot: &Slot| {
            let d = &slot.data;
            let (from, to) = (d.at_or_after(mint), d.up_to(maxt));
            if from < to {
                points.clear();
                points.extend((from..to).map(|i| (d.time(i), d.values[i])));
                each(family.labels(slot), &points);
            }
        };
        // One name: its family, already in label order. An empty name is also what a series
        // without a name has.
        let families: Vec<&Family> = match name {
            Some(n) => {
                let mut fs: Vec<&Family> = self
                    .by_name
                    .get(n)
                    .and_then(|&f| self.families[f as usize].as_ref())
                    .into_iter()
                    .collect();
                if n.is_empty() {
                    fs.extend(
                        self.unnamed
                            .and_then(|f| self.families[f as usize].as_ref()),
                    );
                }
                fs
            }
            None => self.live_families().map(|(_, f)| f).collect(),
        };
        if let [family] = families.as_slice() {
            self.each_matching(family, matchers, &mut |f, s| emit(f, s));
            return;
        }
        // Several families: in label order across them, as Prometheus' index returns series
        // (`topk` and `bottomk` keep the first of equal values, so the order decides ties).
        let mut picked: Vec<(&Family, &Slot, SeriesLabels)> = Vec::new();
        for family in families {
            self.each_matching(family, matchers, &mut |f, s| {
                picked.push((f, s, f.labels(s)))
            });
        }
        picked.sort_by(|a, b| a.2.cmp(&b.2));
        for (family, slot, _) in picked {
            emit(family, slot);
        }
    }
}

/// The store as the evaluator and the HTTP server share it: the evaluator writes, queries read.
pub type Shared = Arc<std::sync::RwLock<Store>>;

/// Reading through the lock one selection at a time, so a long query never holds the
/// evaluator's writes back for more than one selection.
impl Source for std::sync::RwLock<Store> {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, each: &mut EachSeries<'_>) {
        let store = self.read().unwrap_or_else(|e| e.into_inner());
        store.select(matchers, mint, maxt, each)
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

    /// Labels are held once, and let go when no series holds them.
    #[test]
    fn labels_are_shared_and_released() {
        let mut s = Store::new(Duration::from_secs(60));
        for i in 0..100 {
            s.append(
                l("up", &[("job", "api"), ("instance", &format!("h{i}"))]),
                0,
                1.0,
            );
        }
        // job="api" and 100 instance labels.
        assert_eq!(s.labels.len(), 101);
        s.prune(1_000_000);
        assert_eq!(s.series_count(), 0);
        assert!(s.labels.is_empty(), "{:?}", s.labels);
    }

    /// A series' buffers grow by an eighth (at least 4 samples), so one holding the 25
    /// samples of a 6-minute retention at 15 s keeps room for 28, not 32.
    #[test]
    fn sample_buffers_grow_by_an_eighth() {
        let mut d = Data::default();
        for i in 0..25 {
            d.push(i * 15_000, i as f64);
        }
        assert_eq!((d.times.capacity(), d.values.capacity()), (28, 28));
        for i in 25..240 {
            d.push(i * 15_000, i as f64);
        }
        assert!(
            d.times.capacity() - d.len() <= 240 / 8,
            "{}",
            d.times.capacity()
        );
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
