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

use std::borrow::Borrow;
use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes an entry is charged beyond its key and value: its block's 4-byte
/// length prefix, the allocator's header and rounding (up to 22 bytes for
/// small entries with glibc's malloc, less with mimalloc), and its table
/// slot (a 16-byte pointer and a control byte) at the table's lowest load,
/// just after it doubled (7/16): 39 bytes.
const ENTRY_OVERHEAD: usize = 64;

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

/// A cached entry in one heap block: the key's length (4 bytes, little
/// endian), the key, the value. One block and a one-pointer slot per entry
/// instead of a block each for key and value: about two thirds of the
/// memory for word count's entries, so more of them fit the budget, and one
/// cache miss fewer on a hit.
struct Cached(Box<[u8]>);

/// Bytes of the key's length at the start of a [`Cached`] block.
const KEY_LEN_BYTES: usize = 4;

impl Cached {
    /// `None` for a key longer than `u32::MAX` bytes (never cached).
    fn new(key: &[u8], value: &[u8]) -> Option<Self> {
        let len = u32::try_from(key.len()).ok()?;
        let mut block = Vec::with_capacity(KEY_LEN_BYTES + key.len() + value.len());
        block.extend_from_slice(&len.to_le_bytes());
        block.extend_from_slice(key);
        block.extend_from_slice(value);
        Some(Self(block.into_boxed_slice()))
    }

    fn split(&self) -> (&[u8], &[u8]) {
        let (len, rest) = self.0.split_at(KEY_LEN_BYTES);
        let mut n = [0u8; KEY_LEN_BYTES];
        n.copy_from_slice(len);
        // `new` wrote the length of the key that follows it.
        rest.split_at(u32::from_le_bytes(n) as usize)
    }

    fn key(&self) -> &[u8] {
        self.split().0
    }

    fn value(&self) -> &[u8] {
        self.split().1
    }

    fn charge(&self) -> usize {
        self.0.len() - KEY_LEN_BYTES + ENTRY_OVERHEAD
    }
}

// Hashed and compared by key alone, as the key's own slice is (`Borrow`).
impl Hash for Cached {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Cached {}

impl Borrow<[u8]> for Cached {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

type Map = HashSet<Cached, foldhash::fast::RandomState>;

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
        if let Some(c) = self.young.get(key) {
            return Some(c.value().to_vec());
        }
        let c = self.old.take(key)?;
        let found = c.value().to_vec();
        let bytes = c.charge();
        self.old_bytes -= bytes;
        self.young_bytes += bytes;
        self.young.insert(c);
        self.rotate_if_full();
        Some(found)
    }

    /// Caches `value` as the committed value of `key`.
    pub(crate) fn insert(&mut self, key: &[u8], value: &[u8]) {
        let bytes = charge_of(key, value);
        let entry = if bytes <= self.budget.share() / 2 { Cached::new(key, value) } else { None };
        let Some(entry) = entry else {
            // Would not fit a generation: not cached, and no older value may stay.
            self.remove(key);
            return;
        };
        // A key is in one generation at most: reads move it to the young one.
        let stale = if let Some(stale) = self.young.replace(entry) {
            self.young_bytes -= stale.charge();
            stale.charge()
        } else {
            let stale = self.old.take(key).map_or(0, |c| c.charge());
            self.old_bytes -= stale;
            stale
        };
        self.budget.release(stale);
        self.young_bytes += bytes;
        self.budget.charge(bytes);
        self.rotate_if_full();
    }

    /// Forgets `key` (deleted, or too large to cache).
    pub(crate) fn remove(&mut self, key: &[u8]) {
        if let Some(c) = self.young.take(key) {
            self.young_bytes -= c.charge();
            self.budget.release(c.charge());
        }
        if let Some(c) = self.old.take(key) {
            self.old_bytes -= c.charge();
            self.budget.release(c.charge());
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
            // Sized as the generation it follows: it would reach that size
            // again, doubling (and rehashing) its way there.
            let young = Map::with_capacity_and_hasher(self.young.len(), Default::default());
            self.old = std::mem::replace(&mut self.young, young);
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

    #[test]
    fn serves_what_was_inserted_until_removed() {
        let budget = Arc::new(ReadCacheBudget::new(1 << 20));
        let mut c = ReadCache::new(Arc::clone(&budget));
        c.insert(b"k", b"v1");
        c.insert(b"k", b"v2");
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
            c.insert(format!("k{i:02}").as_bytes(), b"v");
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
            a.insert(format!("k{i:02}").as_bytes(), b"v");
            b.insert(format!("k{i:02}").as_bytes(), b"v");
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
            idle.insert(format!("k{i:02}").as_bytes(), b"v");
        }
        // A second store halves the idle one's share, which it now exceeds.
        let mut busy = ReadCache::new(Arc::clone(&budget));
        for i in 0..10 {
            busy.insert(format!("k{i:02}").as_bytes(), b"v");
        }
        assert!(budget.used() > budget.limit(), "the idle store keeps what it has");
        assert!((0..10).all(|i| busy.get(format!("k{i:02}").as_bytes()).is_some()), "the busy store caches its share");
    }

    #[test]
    fn an_entry_keeps_its_key_and_value_apart_in_one_block() {
        let budget = Arc::new(ReadCacheBudget::new(1 << 20));
        let mut c = ReadCache::new(Arc::clone(&budget));
        // Empty keys and values, and a key that is a prefix of another.
        c.insert(b"", b"");
        c.insert(b"ab", b"");
        c.insert(b"a", b"bc");
        assert_eq!(c.get(b""), Some(Vec::new()));
        assert_eq!(c.get(b"ab"), Some(Vec::new()));
        assert_eq!(c.get(b"a"), Some(b"bc".to_vec()));
        assert_eq!(c.get(b"abc"), None);
        assert_eq!(budget.used(), charge_of(b"", b"") + charge_of(b"ab", b"") + charge_of(b"a", b"bc"));
    }

    #[test]
    fn an_entry_larger_than_a_generation_is_not_cached() {
        let budget = Arc::new(ReadCacheBudget::new(400));
        let mut c = ReadCache::new(Arc::clone(&budget));
        c.insert(b"k", b"small");
        c.insert(b"k", &[0u8; 500]);
        assert_eq!(c.get(b"k"), None, "the older value must not be served");
        assert_eq!(budget.used(), 0);
    }
}
