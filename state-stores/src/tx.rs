//! The transactional core every store is built on: committed state in a
//! backend, uncommitted writes in a [`WriteSet`] that reads see at once, and
//! commits that apply the set with its changelog checkpoint atomically.

use std::collections::btree_map;
use std::iter::Peekable;
use std::ops::Bound;

use crate::backend::{Backend, BackendIter, WriteSet};
use crate::StoreError;

/// One write in changelog form, as a store kind encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change<'a> {
    /// The key as the store's changelog carries it (what
    /// [`StateStore::restore_batch`] takes back).
    pub(crate) key: &'a [u8],
    /// The value; `None` is a tombstone.
    pub(crate) value: Option<&'a [u8]>,
}

/// A changelog record to restore: key and value (`None`: tombstone).
pub type ChangelogRecord = (Vec<u8>, Option<Vec<u8>>);

/// What every store offers: transactions, checkpoints, restore and lifecycle.
pub trait StateStore: Send + std::fmt::Debug {
    /// The store's name.
    fn name(&self) -> &str;

    /// Applies the open batch to the committed state, together with the
    /// changelog offset it reaches (stored as the checkpoint when given), in one
    /// atomic write. The batch is then empty.
    fn commit(&mut self, changelog_offset: Option<u64>) -> Result<(), StoreError>;

    /// Drops the open batch: reads see the committed state again.
    fn abort(&mut self);

    /// Whether the open batch holds writes.
    fn has_pending_writes(&self) -> bool;

    /// The changelog offset of the last commit that gave one (after a reopen,
    /// the one stored on disk).
    fn checkpoint(&self) -> Option<u64>;

    /// Applies changelog records straight to the committed state in one bulk
    /// write and stores `changelog_offset` as the checkpoint. Fails when the
    /// open batch holds writes.
    fn restore_batch(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        changelog_offset: u64,
    ) -> Result<(), StoreError>;

    /// Turns the change log on or off. While it is on, every write also
    /// enters the log in changelog form (the key as
    /// [`restore_batch`](StateStore::restore_batch) takes it back, the value
    /// or a tombstone), in order, until [`take_changes`](StateStore::take_changes)
    /// hands it out; [`abort`](StateStore::abort) drops the log with the batch.
    /// Writes dropped as expired and whole expired segments are not logged:
    /// changelog retention removes them on the broker's side.
    fn set_change_logging(&mut self, on: bool);

    /// Hands out the writes logged since the last call, oldest first: swaps
    /// them with `into` when it is empty (so that neither side allocates once
    /// both have grown), appends them to it otherwise.
    fn take_changes(&mut self, into: &mut Vec<ChangelogRecord>);

    /// Makes committed state durable on disk (no-op in memory).
    fn flush(&mut self) -> Result<(), StoreError>;

    /// Drops the open batch and releases resources; later calls fail with
    /// [`StoreError::Closed`].
    fn close(&mut self) -> Result<(), StoreError>;

    /// Whether [`close`](StateStore::close) has not been called.
    fn is_open(&self) -> bool;

    /// Whether the store keeps its data on disk.
    fn persistent(&self) -> bool;

    /// RocksDB's own figures for the store (memory, key estimate); `None`
    /// in memory or once closed.
    fn rocksdb_figures(&self) -> Option<RocksDbFigures> {
        None
    }
}

/// What RocksDB reports about one store: what it holds in memory and an
/// estimate of its keys (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RocksDbFigures {
    /// Bytes in memtables (active, unflushed immutable and pinned).
    pub memtable_bytes: u64,
    /// Bytes of the block cache in use (shared caches count once per store).
    pub block_cache_usage_bytes: u64,
    /// Bytes of index and filter blocks read into memory outside the cache.
    pub table_readers_bytes: u64,
    /// RocksDB's estimate of the number of keys.
    pub estimated_keys: u64,
}

/// An ordered byte map with an open transaction over a backend.
pub(crate) struct TxCore {
    pub(crate) name: String,
    backend: Box<dyn Backend>,
    pending: WriteSet,
    /// Writes not yet handed out, in changelog form, while logging is on.
    log: Option<Vec<ChangelogRecord>>,
    open: bool,
}

impl std::fmt::Debug for TxCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxCore")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .field("pending_ops", &self.pending.ops.len())
            .finish()
    }
}

/// A fallible iterator over entries in key order.
pub type EntryIter<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + 'a>;

impl TxCore {
    pub(crate) fn new(name: &str, backend: Box<dyn Backend>) -> Self {
        Self { name: name.to_owned(), backend, pending: WriteSet::default(), log: None, open: true }
    }

    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.open {
            Ok(())
        } else {
            Err(StoreError::Closed { store: self.name.clone() })
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_open()?;
        if let Some(v) = self.pending.ops.get(key) {
            return Ok(v.clone());
        }
        if self.pending.range_deleted(key) {
            return Ok(None);
        }
        self.backend.get(key)
    }

    /// Writes into the open batch; `change` is what the change log records.
    pub(crate) fn write(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        change: Option<Change<'_>>,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        self.pending.ops.insert(key.to_vec(), value.map(<[u8]>::to_vec));
        if let (Some(log), Some(change)) = (self.log.as_mut(), change) {
            log.push((change.key.to_vec(), change.value.map(<[u8]>::to_vec)));
        }
        Ok(())
    }

    /// Deletes `[start, end)` in the open batch (whole expired segments; not
    /// logged: changelog retention removes them on the broker's side).
    pub(crate) fn delete_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), StoreError> {
        self.check_open()?;
        if start < end {
            self.pending.delete_range(start, end);
        }
        Ok(())
    }

    /// Entries with `from <= key < to`, pending writes merged over committed state.
    pub(crate) fn scan(&self, from: &[u8], to: Option<&[u8]>) -> Result<EntryIter<'_>, StoreError> {
        self.check_open()?;
        if let Some(t) = to {
            if t <= from {
                return Ok(Box::new(std::iter::empty()));
            }
        }
        let upper = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        let over = self.pending.ops.range((Bound::Included(from.to_vec()), upper)).peekable();
        let base = self.backend.scan(from, to)?.peekable();
        Ok(Box::new(Merge { base, over, pending: &self.pending }))
    }

    pub(crate) fn commit(&mut self, offset: Option<u64>) -> Result<(), StoreError> {
        self.check_open()?;
        if self.pending.is_empty() && offset.is_none_or(|o| Some(o) == self.backend.checkpoint()) {
            return Ok(());
        }
        self.backend.commit(&mut self.pending, offset)?;
        self.pending.clear();
        Ok(())
    }

    pub(crate) fn abort(&mut self) {
        self.pending.clear();
        if let Some(log) = &mut self.log {
            log.clear();
        }
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub(crate) fn checkpoint(&self) -> Option<u64> {
        self.backend.checkpoint()
    }

    /// Commits a write set built outside the open batch (restore).
    pub(crate) fn apply_direct(&mut self, writes: &mut WriteSet, offset: u64) -> Result<(), StoreError> {
        self.check_open()?;
        if self.has_pending() {
            return Err(StoreError::PendingWrites { store: self.name.clone() });
        }
        self.backend.commit(writes, Some(offset))
    }

    /// Restores changelog records straight into the backend (one write, no
    /// intermediate map), with the checkpoint.
    pub(crate) fn restore_direct(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        offset: u64,
    ) -> Result<(), StoreError> {
        self.check_open()?;
        if self.has_pending() {
            return Err(StoreError::PendingWrites { store: self.name.clone() });
        }
        self.backend.restore(records, offset)
    }

    pub(crate) fn set_logging(&mut self, on: bool) {
        match (on, &self.log) {
            (true, None) => self.log = Some(Vec::new()),
            (false, _) => self.log = None,
            (true, Some(_)) => {}
        }
    }

    pub(crate) fn take_changes(&mut self, into: &mut Vec<ChangelogRecord>) {
        match &mut self.log {
            Some(log) if into.is_empty() => std::mem::swap(log, into),
            Some(log) => into.append(log),
            None => {}
        }
    }

    pub(crate) fn estimate_num_entries(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        let base = self.backend.estimate_num_entries()?;
        let added = self.pending.ops.values().filter(|v| v.is_some()).count() as u64;
        Ok(base.saturating_add(added))
    }

    pub(crate) fn flush(&mut self) -> Result<(), StoreError> {
        self.check_open()?;
        self.backend.flush()
    }

    pub(crate) fn close(&mut self) {
        self.pending.clear();
        self.log = None;
        self.open = false;
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    pub(crate) fn persistent(&self) -> bool {
        self.backend.persistent()
    }

    pub(crate) fn rocksdb_figures(&self) -> Option<RocksDbFigures> {
        if self.open {
            self.backend.rocksdb_figures()
        } else {
            None
        }
    }
}

/// Merges pending writes over committed entries: pending wins on equal keys,
/// pending tombstones and range deletes hide committed entries.
struct Merge<'a> {
    base: Peekable<BackendIter<'a>>,
    over: Peekable<btree_map::Range<'a, Vec<u8>, Option<Vec<u8>>>>,
    pending: &'a WriteSet,
}

impl Iterator for Merge<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_over = match (self.base.peek(), self.over.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => return self.base.next(),
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((bk, _))), Some((ok, _))) => {
                    if bk.as_slice() == ok.as_slice() {
                        // Shadowed by the pending write.
                        self.base.next();
                        true
                    } else {
                        ok.as_slice() < bk.as_slice()
                    }
                }
            };
            if take_over {
                let (k, v) = self.over.next()?;
                if let Some(v) = v {
                    return Some(Ok((k.clone(), v.clone())));
                }
            } else {
                match self.base.next()? {
                    Ok((k, v)) => {
                        if !self.pending.range_deleted(&k) {
                            return Some(Ok((k, v)));
                        }
                    }
                    Err(e) => return Some(Err(e)),
                }
            }
        }
    }
}
