//! A series' label set as the evaluator carries it ([`SeriesLabels`]): the metric name held
//! apart (dropping it, as every function and arithmetic operator does, is free) and the other
//! labels one shared, sorted slice of shared strings, so that selecting 10,000 series hands
//! out 10,000 reference counts, not 10,000 copies of every name and value. It compares,
//! hashes and orders as the [`Labels`] it stands for, so what is computed over it is what was
//! computed over `Labels`; results leave the evaluator as `Labels` again.
//!
//! It owns nothing but the representation: no I/O, no knowledge of the store.

use std::cmp::Ordering;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::{Arc, LazyLock};

use super::METRIC_NAME;
use crate::labels::Labels;

/// One label: its name and value.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Label {
    pub name: Box<str>,
    pub value: Box<str>,
}

/// One label, shared: a store holds one allocation for a label thousands of series carry
/// (`job="api"`), and each series' set is a slice of pointers to them.
pub type Pair = Arc<Label>;

/// A new label.
pub fn pair(name: &str, value: &str) -> Pair {
    Arc::new(Label {
        name: name.into(),
        value: value.into(),
    })
}

/// The one allocation every label set without labels (but the name) shares.
static NO_PAIRS: LazyLock<Arc<[Pair]>> = LazyLock::new(|| Arc::from(Vec::new()));

/// A label set: see the module doc. `rest` is sorted by label name and never holds
/// `__name__`; `name` is the `__name__` label's value, if the set has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesLabels {
    name: Option<Arc<str>>,
    rest: Arc<[Pair]>,
}

impl Default for SeriesLabels {
    fn default() -> Self {
        SeriesLabels {
            name: None,
            rest: NO_PAIRS.clone(),
        }
    }
}

impl SeriesLabels {
    /// `rest` must be sorted by name, names unique, `__name__` not among them (the store's
    /// keys are).
    pub fn new(name: Option<Arc<str>>, rest: Arc<[Pair]>) -> SeriesLabels {
        debug_assert!(rest.windows(2).all(|w| w[0].name < w[1].name));
        debug_assert!(rest.iter().all(|p| &*p.name != METRIC_NAME));
        SeriesLabels { name, rest }
    }

    /// From sorted pairs that may hold `__name__` (built by the evaluator).
    fn from_pairs(pairs: Vec<Pair>) -> SeriesLabels {
        let mut name = None;
        let mut rest = Vec::with_capacity(pairs.len());
        for p in pairs {
            if &*p.name == METRIC_NAME {
                name = Some(Arc::from(&*p.value));
            } else {
                rest.push(p);
            }
        }
        SeriesLabels {
            name,
            rest: shared(rest),
        }
    }

    pub fn from_labels(labels: &Labels) -> SeriesLabels {
        SeriesLabels::from_pairs(labels.iter().map(|(n, v)| pair(n, v)).collect())
    }

    pub fn to_labels(&self) -> Labels {
        self.iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// The `__name__` label's value.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn get(&self, label: &str) -> Option<&str> {
        if label == METRIC_NAME {
            return self.name();
        }
        self.rest
            .binary_search_by(|p| (*p.name).cmp(label))
            .ok()
            .map(|i| &*self.rest[i].value)
    }

    pub fn contains(&self, label: &str) -> bool {
        self.get(label).is_some()
    }

    /// The same labels but `__name__` (free: nothing is copied).
    pub fn without_name(mut self) -> SeriesLabels {
        self.name = None;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.rest.is_empty()
    }

    /// Every label, `__name__` among them, sorted by name (as `Labels` iterates).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        Merged {
            name: self.name.as_deref(),
            rest: self.rest.iter(),
        }
    }

    /// The labels `keep` keeps (called with each label's name, `__name__` included).
    /// Shares the set when `keep` keeps every label of `rest`.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) -> SeriesLabels {
        let name = self.name.clone().filter(|_| keep(METRIC_NAME));
        if self.rest.iter().all(|p| keep(&p.name)) {
            return SeriesLabels {
                name,
                rest: self.rest.clone(),
            };
        }
        let rest: Vec<Pair> = self
            .rest
            .iter()
            .filter(|p| keep(&p.name))
            .cloned()
            .collect();
        SeriesLabels {
            name,
            rest: shared(rest),
        }
    }

    /// The hash `hasher` gives the set that [`retain`](Self::retain)`(keep)` would build,
    /// without building it.
    pub fn hash_retained(&self, hasher: &impl BuildHasher, keep: impl Fn(&str) -> bool) -> u64 {
        let mut h = hasher.build_hasher();
        hash_parts(
            self.name.as_deref().filter(|_| keep(METRIC_NAME)),
            self.rest.iter().filter(|p| keep(&p.name)),
            &mut h,
        );
        h.finish()
    }

    /// Whether `other` is what [`retain`](Self::retain)`(keep)` would build, without
    /// building it.
    pub fn retained_equals(&self, keep: impl Fn(&str) -> bool, other: &SeriesLabels) -> bool {
        self.name.as_deref().filter(|_| keep(METRIC_NAME)) == other.name.as_deref()
            && self
                .rest
                .iter()
                .filter(|p| keep(&p.name))
                .eq(other.rest.iter())
    }

    /// A copy with `label` set to `value` (added or replaced); `None` removes it.
    pub fn with(&self, label: &str, value: Option<&str>) -> SeriesLabels {
        if label == METRIC_NAME {
            return SeriesLabels {
                name: value.map(Arc::from),
                rest: self.rest.clone(),
            };
        }
        let at = self.rest.binary_search_by(|p| (*p.name).cmp(label));
        let mut rest: Vec<Pair> = self.rest.to_vec();
        match (at, value) {
            (Ok(i), Some(v)) => rest[i] = pair(label, v),
            (Ok(i), None) => {
                rest.remove(i);
            }
            (Err(i), Some(v)) => rest.insert(i, pair(label, v)),
            (Err(_), None) => return self.clone(),
        }
        SeriesLabels {
            name: self.name.clone(),
            rest: rest.into(),
        }
    }

    /// `{name="value", ...}` as [`crate::labels::render`] prints it.
    pub fn render(&self) -> String {
        crate::labels::render(&self.to_labels())
    }
}

/// `rest` as a shared slice; the empty one shares one allocation.
fn shared(rest: Vec<Pair>) -> Arc<[Pair]> {
    if rest.is_empty() {
        NO_PAIRS.clone()
    } else {
        rest.into()
    }
}

fn hash_parts<'a, H: Hasher>(name: Option<&str>, rest: impl Iterator<Item = &'a Pair>, h: &mut H) {
    name.hash(h);
    for p in rest {
        (*p.name).hash(h);
        (*p.value).hash(h);
    }
}

impl Hash for SeriesLabels {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_parts(self.name.as_deref(), self.rest.iter(), h);
    }
}

impl Ord for SeriesLabels {
    /// As `Labels` orders: pairwise by name then value, `__name__` in its place.
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.rest, &other.rest) && self.name == other.name {
            return Ordering::Equal;
        }
        self.iter().cmp(other.iter())
    }
}

impl PartialOrd for SeriesLabels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `rest` with the name merged in at its sorted place.
struct Merged<'a> {
    name: Option<&'a str>,
    rest: std::slice::Iter<'a, Pair>,
}

impl<'a> Iterator for Merged<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(value) = self.name {
            let name_first = match self.rest.as_slice().first() {
                Some(p) => METRIC_NAME < &*p.name,
                None => true,
            };
            if name_first {
                self.name = None;
                return Some((METRIC_NAME, value));
            }
        }
        self.rest.next().map(|p| (&*p.name, &*p.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Label names below and above `__name__` (upper case sorts first), a prefix of another
    /// set, the empty set: ordered, compared and hashed as `Labels` are.
    #[test]
    fn orders_and_compares_as_the_labels_it_stands_for() {
        let sets = [
            l(&[]),
            l(&[("__name__", "a")]),
            l(&[("__name__", "a"), ("A", "x")]),
            l(&[("__name__", "a"), ("A", "x"), ("B", "y")]),
            l(&[("__name__", "b"), ("A", "x")]),
            l(&[("__name__", "a"), ("z", "1")]),
            l(&[("A", "x")]),
            l(&[("A", "x"), ("b", "1")]),
            l(&[("_a", "x"), ("__name__", "a")]),
            l(&[("__a", "x")]),
        ];
        let shared: Vec<SeriesLabels> = sets.iter().map(SeriesLabels::from_labels).collect();
        let state = std::hash::RandomState::new();
        for (i, a) in sets.iter().enumerate() {
            assert_eq!(&shared[i].to_labels(), a);
            for (j, b) in sets.iter().enumerate() {
                assert_eq!(shared[i].cmp(&shared[j]), a.cmp(b), "{a:?} vs {b:?}");
                assert_eq!(shared[i] == shared[j], a == b);
                if a == b {
                    assert_eq!(state.hash_one(&shared[i]), state.hash_one(&shared[j]));
                }
            }
        }
    }

    #[test]
    fn retained_sets_hash_and_compare_as_if_built() {
        let s = SeriesLabels::from_labels(&l(&[
            ("__name__", "m"),
            ("job", "api"),
            ("le", "0.5"),
            ("route", "/"),
        ]));
        let state = std::hash::RandomState::new();
        let keeps: [&dyn Fn(&str) -> bool; 4] = [
            &|n| n == "route",
            &|n| n != "le" && n != METRIC_NAME,
            &|_| true,
            &|_| false,
        ];
        for keep in keeps {
            let built = s.retain(keep);
            assert_eq!(s.hash_retained(&state, keep), state.hash_one(&built));
            assert!(s.retained_equals(keep, &built));
        }
        assert_eq!(s.retain(|n| n == "route").to_labels(), l(&[("route", "/")]));
        assert!(!s.retained_equals(|n| n == "job", &s.retain(|n| n == "route")));
        assert_eq!(
            s.with("le", None).with("x", Some("1")).to_labels(),
            l(&[
                ("__name__", "m"),
                ("job", "api"),
                ("route", "/"),
                ("x", "1")
            ])
        );
        assert_eq!(s.clone().without_name().get(METRIC_NAME), None);
        assert_eq!(s.get("job"), Some("api"));
    }
}
