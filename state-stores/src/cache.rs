//! A per-store record cache: collapses repeated updates of a key between
//! commits so that downstream sees one update per key per flush, bounded by bytes.

use std::collections::BTreeMap;

use foldhash::HashMap;

/// A dirty entry leaving the cache: to write to the store and emit downstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirtyEntry {
    /// The key.
    pub key: Vec<u8>,
    /// The latest value; `None` is a delete.
    pub value: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Entry {
    value: Option<Vec<u8>>,
    dirty: bool,
    /// Position in the LRU order (larger: more recent).
    tick: u64,
}

/// A byte-bounded LRU cache of the latest value per key.
///
/// `put` marks an entry dirty; `flush` hands back every dirty entry once (in
/// the order they were last written) and keeps them as clean cached reads.
/// When the cache grows past its size, least recently used entries are evicted;
/// dirty ones among them are returned from `put` so that the caller writes and
/// emits them at once, as Kafka Streams' caching stores do.
#[derive(Debug)]
pub struct RecordCache {
    max_bytes: usize,
    bytes: usize,
    next_tick: u64,
    entries: HashMap<Vec<u8>, Entry>,
    lru: BTreeMap<u64, Vec<u8>>,
    hits: u64,
    misses: u64,
}

fn cost(key: &[u8], value: Option<&Vec<u8>>) -> usize {
    // Key and value bytes plus a fixed overhead per entry for the maps.
    key.len() * 2 + value.map_or(0, Vec::len) + 64
}

impl RecordCache {
    /// A cache holding at most `max_bytes` (approximately: keys, values and
    /// per-entry overhead).
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            bytes: 0,
            next_tick: 0,
            entries: HashMap::default(),
            lru: BTreeMap::new(),
            hits: 0,
            misses: 0,
        }
    }

    fn touch(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.get_mut(key) {
            self.lru.remove(&e.tick);
            e.tick = self.next_tick;
            self.lru.insert(self.next_tick, key.to_vec());
            self.next_tick += 1;
        }
    }

    /// The cached value: `Some(Some(v))` a value, `Some(None)` a cached delete,
    /// `None` not cached (read the store).
    pub fn get(&mut self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let found = self.entries.get(key).map(|e| e.value.clone());
        if found.is_some() {
            self.hits += 1;
            self.touch(key);
        } else {
            self.misses += 1;
        }
        found
    }

    /// Records a write; returns dirty entries evicted to stay within size.
    pub fn put(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Vec<DirtyEntry> {
        self.insert(key, value, true)
    }

    /// Caches a value read from the store (clean: not emitted on flush).
    pub fn put_clean(&mut self, key: &[u8], value: Option<Vec<u8>>) -> Vec<DirtyEntry> {
        self.insert(key, value, false)
    }

    fn insert(&mut self, key: &[u8], value: Option<Vec<u8>>, dirty: bool) -> Vec<DirtyEntry> {
        let new_cost = cost(key, value.as_ref());
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= cost(key, old.value.as_ref());
            self.lru.remove(&old.tick);
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.entries.insert(key.to_vec(), Entry { value, dirty, tick });
        self.lru.insert(tick, key.to_vec());
        self.bytes += new_cost;
        self.evict()
    }

    fn evict(&mut self) -> Vec<DirtyEntry> {
        let mut evicted = Vec::new();
        while self.bytes > self.max_bytes {
            let Some((_, key)) = self.lru.pop_first() else { break };
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= cost(&key, e.value.as_ref());
                if e.dirty {
                    evicted.push(DirtyEntry { key, value: e.value });
                }
            }
        }
        evicted
    }

    /// Every dirty entry, once, oldest write first; they stay cached, clean.
    pub fn flush(&mut self) -> Vec<DirtyEntry> {
        let mut out = Vec::new();
        for key in self.lru.values() {
            if let Some(e) = self.entries.get_mut(key) {
                if e.dirty {
                    e.dirty = false;
                    out.push(DirtyEntry { key: key.clone(), value: e.value.clone() });
                }
            }
        }
        out
    }

    /// Forgets everything (after an aborted transaction).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.lru.clear();
        self.bytes = 0;
    }

    /// Approximate bytes in use.
    pub fn size_bytes(&self) -> usize {
        self.bytes
    }

    /// The number of cached keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reads served from the cache and reads that missed it.
    pub fn hit_ratio(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_updates_between_flushes() {
        let mut c = RecordCache::new(1 << 20);
        assert!(c.put(b"a", Some(b"1".to_vec())).is_empty());
        c.put(b"b", Some(b"1".to_vec()));
        c.put(b"a", Some(b"2".to_vec()));
        c.put(b"b", None);
        let flushed = c.flush();
        assert_eq!(
            flushed,
            vec![
                DirtyEntry { key: b"a".to_vec(), value: Some(b"2".to_vec()) },
                DirtyEntry { key: b"b".to_vec(), value: None }
            ]
        );
        assert!(c.flush().is_empty(), "each dirty entry is handed back once");
        assert_eq!(c.get(b"a"), Some(Some(b"2".to_vec())));
        assert_eq!(c.get(b"b"), Some(None));
        assert_eq!(c.get(b"zzz"), None);
    }

    #[test]
    fn evicts_least_recently_used_and_returns_dirty_victims() {
        let mut c = RecordCache::new(3 * cost(b"k1", Some(&b"v".to_vec())));
        c.put(b"k1", Some(b"v".to_vec()));
        c.put_clean(b"k2", Some(b"v".to_vec()));
        c.put(b"k3", Some(b"v".to_vec()));
        let _ = c.get(b"k1");
        // k2 is the LRU but clean: evicted silently; then k3 (dirty) goes.
        assert!(c.put(b"k4", Some(b"v".to_vec())).is_empty());
        let evicted = c.put(b"k5", Some(b"v".to_vec()));
        assert_eq!(evicted, vec![DirtyEntry { key: b"k3".to_vec(), value: Some(b"v".to_vec()) }]);
        assert!(c.size_bytes() <= 3 * cost(b"k1", Some(&b"v".to_vec())));
    }
}
