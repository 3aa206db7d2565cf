//! Where committed state lives: an ordered byte map that applies a whole
//! write set and its checkpoint atomically.

pub(crate) mod memory;
pub(crate) mod read_cache;
pub(crate) mod rocks;

use std::collections::BTreeMap;
use std::fmt;

use crate::StoreError;

/// The uncommitted writes of one store: puts and deletes by key, plus range
/// deletes (whole expired segments). Range deletes apply first, then the ops,
/// so an op written after a range delete survives it.
#[derive(Debug, Default, Clone)]
pub(crate) struct WriteSet {
    pub(crate) ops: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// `[start, end)` ranges.
    pub(crate) range_deletes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl WriteSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.range_deletes.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.ops.clear();
        self.range_deletes.clear();
    }

    pub(crate) fn range_deleted(&self, key: &[u8]) -> bool {
        self.range_deletes.iter().any(|(s, e)| key >= s.as_slice() && key < e.as_slice())
    }

    pub(crate) fn delete_range(&mut self, start: &[u8], end: &[u8]) {
        let doomed: Vec<Vec<u8>> = self.ops.range(start.to_vec()..end.to_vec()).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.ops.remove(&k);
        }
        self.range_deletes.push((start.to_vec(), end.to_vec()));
    }
}

/// A fallible iterator over committed entries, in key order.
pub(crate) type BackendIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

pub(crate) trait Backend: Send + fmt::Debug {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries with `from <= key < to` (`to: None`: to the end).
    fn scan(&self, from: &[u8], to: Option<&[u8]>) -> Result<BackendIter<'_>, StoreError>;
    /// Applies `writes` and records `checkpoint` (when given) atomically.
    fn commit(&mut self, writes: &mut WriteSet, checkpoint: Option<u64>) -> Result<(), StoreError>;
    /// Applies changelog records (key, value or tombstone) and the checkpoint
    /// in one atomic write.
    fn restore(
        &mut self,
        records: &mut dyn Iterator<Item = crate::tx::ChangelogRecord>,
        checkpoint: u64,
    ) -> Result<(), StoreError>;
    fn checkpoint(&self) -> Option<u64>;
    fn estimate_num_entries(&self) -> Result<u64, StoreError>;
    fn persistent(&self) -> bool;
    /// Makes committed data durable on disk (a memtable flush for RocksDB).
    fn flush(&mut self) -> Result<(), StoreError>;
    /// RocksDB's figures; `None` for other backends.
    fn rocksdb_figures(&self) -> Option<crate::tx::RocksDbFigures> {
        None
    }
}
