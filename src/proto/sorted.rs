//! A small map kept as a sorted vector: lookups by binary search, no hashing.
//!
//! The server's tables of sites (by key id, by link and session id, by prefix) change only on
//! handshakes and reloads and are read for every datagram. A sorted vector answers in
//! `log2(n)` comparisons (12 for 4096 sites) with no hasher to seed or defend against chosen
//! keys, and costs the router binary a fraction of what a hash table's code does.

/// Keys to values, sorted by key.
#[derive(Debug, Clone)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap { entries: Vec::new() }
    }
}

impl<K: Ord + Copy, V: Copy> SortedMap<K, V> {
    fn find(&self, k: K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(e, _)| e.cmp(&k))
    }

    pub fn get(&self, k: K) -> Option<V> {
        self.find(k).ok().map(|i| self.entries[i].1)
    }

    /// Sets `k` to `v`; returns the value it replaced.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        match self.find(k) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, v)),
            Err(i) => {
                self.entries.insert(i, (k, v));
                None
            }
        }
    }

    /// Sets `k` to `v` unless it is set; returns the value already there.
    pub fn insert_first(&mut self, k: K, v: V) -> Option<V> {
        match self.find(k) {
            Ok(i) => Some(self.entries[i].1),
            Err(i) => {
                self.entries.insert(i, (k, v));
                None
            }
        }
    }

    /// Keeps the entries `keep` says to.
    pub fn retain(&mut self, mut keep: impl FnMut(K, V) -> bool) {
        self.entries.retain(|&(k, v)| keep(k, v));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_replaces_keeps_first_and_retains() {
        let mut m = SortedMap::default();
        for k in [5u32, 1, 9, 3] {
            assert_eq!(m.insert(k, k * 10), None);
        }
        assert_eq!(m.entries.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 3, 5, 9]);
        assert_eq!(m.get(9), Some(90));
        assert_eq!(m.get(4), None);
        assert_eq!(m.insert(3, 31), Some(30));
        assert_eq!(m.insert_first(3, 32), Some(31), "the first value stays");
        assert_eq!(m.get(3), Some(31));
        m.retain(|k, _| k != 3);
        assert_eq!(m.get(3), None);
        assert_eq!(m.entries.len(), 3);
        m.clear();
        assert_eq!(m.get(1), None);
    }
}
