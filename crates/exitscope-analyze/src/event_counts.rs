//! Records per event name.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

/// Names looked up by a scan before the map: a trace has a handful of event names and every
/// event record bumps one, and comparing lengths then bytes of a few beats hashing the name.
const SCANNED: usize = 8;

/// How many records each event name had.
#[derive(Debug, Default)]
pub(crate) struct EventCounts {
    first: Vec<(String, u64)>,
    rest: FxHashMap<String, u64>,
}

impl EventCounts {
    /// One more record of `name`.
    #[inline]
    pub(crate) fn bump(&mut self, name: &str) {
        self.add(name, 1);
    }

    pub(crate) fn add(&mut self, name: &str, n: u64) {
        if let Some((_, c)) =
            self.first.iter_mut().find(|(k, _)| k.len() == name.len() && k == name)
        {
            *c += n;
        } else if let Some(c) = self.rest.get_mut(name) {
            *c += n;
        } else if self.first.len() < SCANNED {
            self.first.push((name.to_owned(), n));
        } else {
            self.rest.insert(name.to_owned(), n);
        }
    }

    /// Adds `other`'s counts.
    pub(crate) fn merge(&mut self, other: EventCounts) {
        for (k, n) in other.first.into_iter().chain(other.rest) {
            self.add(&k, n);
        }
    }

    /// The counts by name.
    pub(crate) fn into_sorted(self) -> BTreeMap<String, u64> {
        self.first.into_iter().chain(self.rest).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_a_map() {
        let mut names: Vec<String> = ["kvm_exit", "kvm_entry", "kvm_exit", "a", "", "a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // More names than are scanned, some seen again after the map took over.
        names.extend((0..20).map(|i| format!("ev{}", i % 13)));
        let mut c = EventCounts::default();
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for n in &names {
            c.bump(n);
            *want.entry(n.clone()).or_insert(0) += 1;
        }
        let mut other = EventCounts::default();
        for (k, n) in [("ev12", 5), ("new", 2), ("kvm_exit", 1)] {
            other.add(k, n);
            *want.entry(k.to_owned()).or_insert(0) += n;
        }
        c.merge(other);
        assert_eq!(c.into_sorted(), want);
    }
}
