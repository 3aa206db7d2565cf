//! Committed entries of a RocksDB store kept in a hash map, so that a point
//! read of a recently written or read key costs a hash lookup instead of a
//! memtable search.
//!
//! Why: a store's memtable is a skip list of every version written since its
//! last flush. With many distinct keys it holds hundreds of thousands of
//! entries, and a get walks some twenty levels of it, a cache miss each:
//! on word count over a million distinct words, memtable searches for gets
//! and for the commit's inserts took 40% of the CPU. Kafka Streams' record
//! cache keeps flushed entries for its reads in the same way.
//!
//! What it is not: a write buffer. The cache only ever holds what the
//! backend has committed (entries are added after a commit's write succeeds,
//! or read through from RocksDB), so it needs no flush, an abort leaves it
//! alone, and losing it loses nothing.
//!
//! Eviction is by generations: entries go into the young map; once it has
//! taken half of the store's share of the budget (or the caches of all
//! stores together have taken the whole budget and this one holds more than
//! its share), the old map is dropped and the young one becomes old. A read
//! that finds an entry in the old map moves it to the young one. Every
//! operation is O(1), and the entries read or written within the last
//! generation survive the next rotation, as in an LRU cache.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes an entry is charged beyond its key and value: two heap blocks'
/// headers and rounding, and its slot in the hash table (with room for the
/// table's growth by doubling).
const ENTRY_OVERHEAD: usize = 96;

/// The byte budget that the read caches of every store opened with one
/// [`RocksDbConfig`](crate::RocksDbConfig) share.
#[derive(Debug)]
pub(crate) struct ReadCacheBudget {
    limit: usize,
    used: AtomicUsize,
    /// Caches open against the budget: each store's share is `limit / stores`.
    stores: AtomicUsize,
}

impl ReadCacheBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self { limit, used: AtomicUsize::new(0), stores: AtomicUsize::new(0) }
    }

    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes the caches hold now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn share(&self) -> usize {
        self.limit / self.stores.load(Ordering::Relaxed).max(1)
    }

    fn over(&self) -> bool {
        self.used() > self.limit
    }

    fn charge(&self, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }
}

type Map = HashMap<Box<[u8]>, Box<[u8]>, foldhash::fast::RandomState>;

/// One store's cache of committed entries.
pub(crate) struct ReadCache {
    young: Map,
    old: Map,
    young_bytes: usize,
    old_bytes: usize,
    budget: Arc<ReadCacheBudget>,
}

impl fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadCache")
            .field("entries", &(self.young.len() + self.old.len()))
            .field("bytes", &(self.young_bytes + self.old_bytes))
            .finish()
    }
}

fn charge_of(key: &[u8], value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

impl ReadCache {
    pub(crate) fn new(budget: Arc<ReadCacheBudget>) -> Self {
        budget.stores.fetch_add(1, Ordering::Relaxed);
        Self { young: Map::default(), old: Map::default(), young_bytes: 0, old_bytes: 0, budget }
    }

    /// The committed value of `key`, if cached.
    pub(crate) fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(v) = self.young.get(key) {
            return Some(v.to_vec());
        }
        let (k, v) = self.old.remove_entry(key)?;
        let found = v.to_vec();
        let bytes = charge_of(&k, &v);
        self.old_bytes -= bytes;
        self.young_bytes += bytes;
        self.young.insert(k, v);
        self.rotate_if_full();
        Some(found)
    }

    /// Caches `value` as the committed value of `key`.
    pub(crate) fn insert(&mut self, key: Box<[u8]>, value: Box<[u8]>) {
        let bytes = charge_of(&key, &value);
        if bytes > self.budget.share() / 2 {
            // Would not fit a generation: not cached, and no older value may stay.
            self.remove(&key);
            return;
        }
        // A key is in one generation at most: reads move it to the young one.
        let stale = match self.young.entry(key) {
            Entry::Occupied(mut e) => {
                let stale = charge_of(e.key(), e.get());
                self.young_bytes -= stale;
                e.insert(value);
                stale
            }
            Entry::Vacant(e) => {
                let stale = self.old.remove(e.key()).map_or(0, |v| charge_of(e.key(), &v));
                self.old_bytes -= stale;
                e.insert(value);
                stale
            }
        };
        self.budget.release(stale);
        self.young_bytes += bytes;
        self.budget.charge(bytes);
        self.rotate_if_full();
    }

    /// Forgets `key` (deleted, or too large to cache).
    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some((k, v)) = self.young.remove_entry(key) {
            let bytes = charge_of(&k, &v);
            self.young_bytes -= bytes;
            self.budget.release(bytes);
        }
        if let Some((k, v)) = self.old.remove_entry(key) {
            let bytes = charge_of(&k, &v);
            self.old_bytes -= bytes;
            self.budget.release(bytes);
        }
    }

    /// Forgets everything (the backend was written around the cache).
    pub(crate) fn clear(&mut self) {
        self.budget.release(self.young_bytes + self.old_bytes);
        // New maps rather than `clear()`, which would keep the tables' memory.
        self.young = Map::default();
        self.old = Map::default();
        self.young_bytes = 0;
        self.old_bytes = 0;
    }

    fn rotate_if_full(&mut self) {
        // Over the shared budget, only a store above its share gives way: one
        // that filled up while fewer stores were open and then went idle must
        // not make every other store rotate at each insert.
        let share = self.budget.share();
        if self.young_bytes > share / 2 || (self.budget.over() && self.young_bytes + self.old_bytes > share) {
            self.budget.release(self.old_bytes);
            self.old = std::mem::take(&mut self.young);
            self.old_bytes = std::mem::replace(&mut self.young_bytes, 0);
        }
    }
}

impl Drop for ReadCache {
    fn drop(&mut self) {
        self.budget.release(self.young_bytes + self.old_bytes);
        self.budget.stores.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Box<[u8]> {
        s.as_bytes().into()
    }

    #[test]
    fn serves_what_was_inserted_until_removed() {
        let budget = Arc::new(ReadCacheBudget::new(1 << 20));
        let mut c = ReadCache::new(Arc::clone(&budget));
        c.insert(bytes("k"), bytes("v1"));
        c.insert(bytes("k"), bytes("v2"));
        assert_eq!(c.get(b"k"), Some(b"v2".to_vec()));
        assert_eq!(budget.used(), charge_of(b"k", b"v2"));
        c.remove(b"k");
        assert_eq!(c.get(b"k"), None);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn recently_used_entries_survive_a_rotation_and_the_budget_holds() {
        // Room for about 8 entries a generation.
        let entry = charge_of(b"k00", b"v");
        let budget = Arc::new(ReadCacheBudget::new(16 * entry + 1));
        let mut c = ReadCache::new(Arc::clone(&budget));
        for i in 0..100 {
            c.insert(bytes(&format!("k{i:02}")), bytes("v"));
            // The hot key is read between inserts: it is never evicted.
            if i > 0 {
                assert_eq!(c.get(b"k00"), Some(b"v".to_vec()), "after {i} inserts");
            }
            assert!(budget.used() <= budget.limit() + entry, "{} over {}", budget.used(), budget.limit());
        }
        assert_eq!(c.get(b"k01"), None, "a key untouched for many generations is gone");
        assert_eq!(c.get(b"k99"), Some(b"v".to_vec()));
        drop(c);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn stores_share_the_budget() {
        let entry = charge_of(b"k00", b"v");
        let budget = Arc::new(ReadCacheBudget::new(40 * entry));
        let mut a = ReadCache::new(Arc::clone(&budget));
        let mut b = ReadCache::new(Arc::clone(&budget));
        for i in 0..100 {
            a.insert(bytes(&format!("k{i:02}")), bytes("v"));
            b.insert(bytes(&format!("k{i:02}")), bytes("v"));
            // Each store keeps to its half: generations of a quarter, each
            // rotated once it is past that (by one entry at most).
            assert!(a.young_bytes + a.old_bytes <= 20 * entry + 2 * entry);
            assert!(budget.used() <= budget.limit() + 4 * entry);
        }
        let held = b.young_bytes + b.old_bytes;
        a.clear();
        assert_eq!(a.get(b"k99"), None);
        assert_eq!(budget.used(), held, "what is left is the other store's");
    }

    #[test]
    fn an_idle_store_over_its_share_does_not_starve_the_others() {
        let entry = charge_of(b"k00", b"v");
        let budget = Arc::new(ReadCacheBudget::new(40 * entry));
        let mut idle = ReadCache::new(Arc::clone(&budget));
        for i in 0..40 {
            idle.insert(bytes(&format!("k{i:02}")), bytes("v"));
        }
        // A second store halves the idle one's share, which it now exceeds.
        let mut busy = ReadCache::new(Arc::clone(&budget));
        for i in 0..10 {
            busy.insert(bytes(&format!("k{i:02}")), bytes("v"));
        }
        assert!(budget.used() > budget.limit(), "the idle store keeps what it has");
        assert!((0..10).all(|i| busy.get(format!("k{i:02}").as_bytes()).is_some()), "the busy store caches its share");
    }

    #[test]
    fn an_entry_larger_than_a_generation_is_not_cached() {
        let budget = Arc::new(ReadCacheBudget::new(400));
        let mut c = ReadCache::new(Arc::clone(&budget));
        c.insert(bytes("k"), bytes("small"));
        c.insert(bytes("k"), vec![0u8; 500].into());
        assert_eq!(c.get(b"k"), None, "the older value must not be served");
        assert_eq!(budget.used(), 0);
    }
}
