//! Key-value stores: the byte-level trait and its transactional implementation
//! over RocksDB or memory.

use std::path::Path;

use crate::backend::memory::MemoryBackend;
use crate::backend::rocks::{RocksBackend, RocksDbConfig};
use crate::encoding::{prefix_end, successor};
use crate::tx::{Change, ChangelogRecord, EntryIter, StateStore, TxCore};
use crate::StoreError;

/// A key-value store over bytes, ordered by key (lexicographic byte order).
///
/// Writes go to the open batch (see [`StateStore`]); reads see them at once.
pub trait KeyValueStore: StateStore {
    /// The value stored for `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` for `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Stores `value` for `key` only when the key has no value; returns the
    /// value that was already there (and then leaves it unchanged).
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => {
                self.put(key, value)?;
                Ok(None)
            }
        }
    }

    /// Removes `key`; returns the value it had.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// All entries with `from <= key <= to` (both bounds inclusive, as in Kafka
    /// Streams), in ascending key order. `None` leaves that side open.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<EntryIter<'_>, StoreError>;

    /// All entries whose key starts with `prefix`, in ascending key order.
    fn prefix_scan(&self, prefix: &[u8]) -> Result<EntryIter<'_>, StoreError>;

    /// Every entry, in ascending key order.
    fn all(&self) -> Result<EntryIter<'_>, StoreError> {
        self.range(None, None)
    }

    /// An estimate of the number of entries (RocksDB's estimate plus pending puts).
    fn approximate_num_entries(&self) -> Result<u64, StoreError>;
}

/// The key-value store: a transactional ordered map over RocksDB or memory.
/// Both behave identically; only durability differs.
#[derive(Debug)]
pub struct KvStore {
    core: TxCore,
}

impl KvStore {
    /// An empty in-memory store.
    pub fn in_memory(name: &str) -> Self {
        Self { core: TxCore::new(name, Box::<MemoryBackend>::default()) }
    }

    /// A RocksDB store in directory `dir` (created if missing), reopened with
    /// its committed state and checkpoint if it exists.
    pub fn rocksdb(name: &str, dir: &Path, config: &RocksDbConfig) -> Result<Self, StoreError> {
        Ok(Self { core: TxCore::new(name, Box::new(RocksBackend::open(name, dir, config)?)) })
    }
}

/// Implements [`StateStore`] for a store type with a [`TxCore`] at the given field path and a
/// `fn restore_records(&mut self, records, offset) -> Result<(), StoreError>`.
macro_rules! impl_state_store {
    ($t:ty, $($field:ident).+) => {
        impl $crate::tx::StateStore for $t {
            fn name(&self) -> &str {
                &self.$($field).+.name
            }
            fn commit(&mut self, changelog_offset: Option<u64>) -> Result<(), StoreError> {
                self.$($field).+.commit(changelog_offset)
            }
            fn abort(&mut self) {
                self.$($field).+.abort();
                self.after_abort();
            }
            fn has_pending_writes(&self) -> bool {
                self.$($field).+.has_pending()
            }
            fn checkpoint(&self) -> Option<u64> {
                self.$($field).+.checkpoint()
            }
            fn restore_batch(
                &mut self,
                records: &mut dyn Iterator<Item = $crate::tx::ChangelogRecord>,
                changelog_offset: u64,
            ) -> Result<(), StoreError> {
                self.$($field).+.check_open()?;
                if self.$($field).+.has_pending() {
                    return Err(StoreError::PendingWrites { store: self.$($field).+.name.clone() });
                }
                self.restore_records(records, changelog_offset)
            }
            fn set_change_logging(&mut self, on: bool) {
                self.$($field).+.set_logging(on)
            }
            fn take_changes(&mut self, into: &mut Vec<$crate::tx::ChangelogRecord>) {
                self.$($field).+.take_changes(into)
            }
            fn flush(&mut self) -> Result<(), StoreError> {
                self.$($field).+.flush()
            }
            fn close(&mut self) -> Result<(), StoreError> {
                self.$($field).+.close();
                Ok(())
            }
            fn is_open(&self) -> bool {
                self.$($field).+.is_open()
            }
            fn persistent(&self) -> bool {
                self.$($field).+.persistent()
            }
            fn rocksdb_figures(&self) -> Option<$crate::tx::RocksDbFigures> {
                self.$($field).+.rocksdb_figures()
            }
        }
    };
}
pub(crate) use impl_state_store;

impl KvStore {
    /// Key-value changelog records are the store's own keys: stream them
    /// straight into one backend write, without an intermediate map.
    fn restore_records(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        offset: u64,
    ) -> Result<(), StoreError> {
        self.core.restore_direct(records, offset)
    }

    fn after_abort(&mut self) {}
}

impl_state_store!(KvStore, core);

impl KeyValueStore for KvStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.core.get(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.core.write(key, Some(value), Some(Change { key, value: Some(value) }))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let old = self.core.get(key)?;
        if old.is_some() {
            self.core.write(key, None, Some(Change { key, value: None }))?;
        }
        Ok(old)
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<EntryIter<'_>, StoreError> {
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(StoreError::InvalidRange { store: self.core.name.clone() });
            }
        }
        let end = to.map(successor);
        self.core.scan(from.unwrap_or(&[]), end.as_deref())
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<EntryIter<'_>, StoreError> {
        let end = prefix_end(prefix);
        self.core.scan(prefix, end.as_deref())
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.core.estimate_num_entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(iter: EntryIter<'_>) -> Result<Vec<Vec<u8>>, StoreError> {
        iter.map(|r| r.map(|(k, _)| k)).collect()
    }

    #[test]
    fn range_bounds_are_inclusive_and_ordered() -> Result<(), StoreError> {
        let mut s = KvStore::in_memory("s");
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            s.put(k, b"v")?;
        }
        assert_eq!(keys(s.range(Some(b"b"), Some(b"c"))?)?, vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(s.range(None, Some(b"a"))?)?, vec![b"a".to_vec()]);
        assert!(matches!(s.range(Some(b"d"), Some(b"a")), Err(StoreError::InvalidRange { .. })));
        Ok(())
    }

    #[test]
    fn prefix_scan_handles_ff_bytes() -> Result<(), StoreError> {
        let mut s = KvStore::in_memory("s");
        s.put(&[0xff], b"1")?;
        s.put(&[0xff, 0x00], b"2")?;
        s.put(&[0xfe, 0xff], b"3")?;
        s.commit(None)?;
        assert_eq!(keys(s.prefix_scan(&[0xff])?)?, vec![vec![0xff], vec![0xff, 0x00]]);
        assert_eq!(keys(s.prefix_scan(&[0xfe])?)?, vec![vec![0xfe, 0xff]]);
        Ok(())
    }

    #[test]
    fn put_if_absent_and_delete() -> Result<(), StoreError> {
        let mut s = KvStore::in_memory("s");
        assert_eq!(s.put_if_absent(b"k", b"1")?, None);
        assert_eq!(s.put_if_absent(b"k", b"2")?, Some(b"1".to_vec()));
        assert_eq!(s.delete(b"k")?, Some(b"1".to_vec()));
        assert_eq!(s.approximate_num_entries()?, 0);
        s.close()?;
        assert!(matches!(s.get(b"k"), Err(StoreError::Closed { .. })));
        Ok(())
    }

    #[test]
    fn the_change_log_holds_each_write_until_taken_and_drops_aborted_ones() -> Result<(), StoreError> {
        let mut s = KvStore::in_memory("s");
        s.put(b"before", b"0")?;
        s.set_change_logging(true);
        s.put(b"a", b"1")?;
        s.put(b"a", b"2")?;
        s.delete(b"a")?;
        s.delete(b"missing")?;
        let mut taken = Vec::new();
        s.take_changes(&mut taken);
        assert_eq!(
            taken,
            vec![(b"a".to_vec(), Some(b"1".to_vec())), (b"a".to_vec(), Some(b"2".to_vec())), (b"a".to_vec(), None)],
            "every write since logging began, in order; a delete of nothing is not a write"
        );
        s.put(b"b", b"1")?;
        s.take_changes(&mut taken);
        assert_eq!(taken.len(), 4, "a second take appends to a non-empty vector");
        s.put(b"c", b"1")?;
        s.abort();
        let mut after_abort = Vec::new();
        s.take_changes(&mut after_abort);
        assert!(after_abort.is_empty(), "an abort drops the log with the batch: {after_abort:?}");
        s.set_change_logging(false);
        s.put(b"d", b"1")?;
        s.take_changes(&mut after_abort);
        assert!(after_abort.is_empty(), "nothing is logged with logging off");
        Ok(())
    }
}
