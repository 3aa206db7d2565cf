//! Window stores: values per (key, window start), retained for a period and
//! expired a whole segment at a time.

use std::path::Path;

use crate::backend::memory::MemoryBackend;
use crate::backend::rocks::{RocksBackend, RocksDbConfig};
use crate::segmented::Segmented;
use crate::tx::{ChangelogRecord, StateStore, TxCore};
use crate::StoreError;

/// One stored window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEntry {
    /// The record key.
    pub key: Vec<u8>,
    /// The window's start time, ms.
    pub window_start: i64,
    /// The value.
    pub value: Vec<u8>,
}

/// A store of values per key and window start time.
pub trait WindowStore: StateStore {
    /// Stores `value` for `(key, window_start)`; `None` deletes it. With
    /// duplicates retained (stream-stream joins) every put adds an entry and
    /// `None` is ignored. Writes older than the retention period are dropped
    /// and counted ([`expired_writes`](WindowStore::expired_writes)).
    fn put(&mut self, key: &[u8], value: Option<&[u8]>, window_start: i64) -> Result<(), StoreError>;

    /// The value of one window.
    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The windows of `key` starting in `[time_from, time_to]`, in time order.
    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError>;

    /// The windows of keys in `[key_from, key_to]` (open when `None`) starting
    /// in `[time_from, time_to]`, ordered by key, then time.
    fn fetch_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<WindowEntry>, StoreError>;

    /// Every window starting in `[time_from, time_to]`, in time order (then key).
    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError>;

    /// Every retained window, in time order (then key).
    fn all(&self) -> Result<Vec<WindowEntry>, StoreError> {
        self.fetch_all(i64::MIN, i64::MAX)
    }

    /// The largest window start written so far (`i64::MIN` when empty).
    fn observed_stream_time(&self) -> i64;

    /// How many writes were dropped because their window had expired.
    fn expired_writes(&self) -> u64;
}

/// Retention settings of a window or session store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// How long data is kept behind the observed stream time, ms.
    pub retention_ms: i64,
    /// The width of one segment, ms (Kafka Streams: max(retention / 2, 60 s)).
    pub segment_interval_ms: i64,
}

impl Retention {
    /// Kafka Streams' default segment interval for this retention.
    pub fn new(retention_ms: i64) -> Self {
        Self { retention_ms, segment_interval_ms: (retention_ms / 2).max(60_000) }
    }

    /// With an explicit segment interval.
    pub fn with_segment_interval(mut self, ms: i64) -> Self {
        self.segment_interval_ms = ms.max(1);
        self
    }
}

/// The window store over RocksDB or memory.
#[derive(Debug)]
pub struct SegmentedWindowStore {
    core: Segmented,
    retain_duplicates: bool,
    seq: u32,
}

impl SegmentedWindowStore {
    /// An in-memory window store.
    pub fn in_memory(name: &str, retention: Retention, retain_duplicates: bool) -> Self {
        // A new in-memory map holds nothing to reload.
        let core = TxCore::new(name, Box::<MemoryBackend>::default());
        Self {
            core: Segmented::new(core, retention.retention_ms, retention.segment_interval_ms),
            retain_duplicates,
            seq: 0,
        }
    }

    /// A RocksDB window store in `dir`.
    pub fn rocksdb(
        name: &str,
        dir: &Path,
        config: &RocksDbConfig,
        retention: Retention,
        retain_duplicates: bool,
    ) -> Result<Self, StoreError> {
        let core = TxCore::new(name, Box::new(RocksBackend::open(name, dir, config)?));
        Self::with_core(core, retention, retain_duplicates)
    }

    fn with_core(core: TxCore, retention: Retention, retain_duplicates: bool) -> Result<Self, StoreError> {
        let mut core = Segmented::new(core, retention.retention_ms, retention.segment_interval_ms);
        core.reload()?;
        Ok(Self { core, retain_duplicates, seq: 0 })
    }

    fn restore_records(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        offset: u64,
    ) -> Result<(), StoreError> {
        self.core.restore_records(records, offset)
    }

    fn after_abort(&mut self) {
        self.core.after_abort();
    }

    fn entries(found: Vec<crate::segmented::Decoded>) -> Vec<WindowEntry> {
        found.into_iter().map(|d| WindowEntry { key: d.key, window_start: d.time, value: d.value }).collect()
    }
}

crate::key_value::impl_state_store!(SegmentedWindowStore, core.core);

impl WindowStore for SegmentedWindowStore {
    fn put(&mut self, key: &[u8], value: Option<&[u8]>, window_start: i64) -> Result<(), StoreError> {
        if self.retain_duplicates {
            let Some(value) = value else { return Ok(()) };
            self.seq = self.seq.wrapping_add(1);
            self.core.write(key, window_start, &self.seq.to_be_bytes(), Some(value))?;
        } else {
            self.core.write(key, window_start, &0u32.to_be_bytes(), value)?;
        }
        Ok(())
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        if self.retain_duplicates {
            return Ok(self.fetch_range(key, window_start, window_start)?.into_iter().next().map(|e| e.value));
        }
        self.core.get(key, window_start, &0u32.to_be_bytes())
    }

    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        Ok(Self::entries(self.core.scan(Some(key), Some(key), time_from, time_to)?))
    }

    fn fetch_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<WindowEntry>, StoreError> {
        if let (Some(f), Some(t)) = (key_from, key_to) {
            if f > t {
                return Err(StoreError::InvalidRange { store: self.core.core.name.clone() });
            }
        }
        let mut entries = Self::entries(self.core.scan(key_from, key_to, time_from, time_to)?);
        // Stable: duplicates keep their insertion order.
        entries.sort_by(|a, b| a.key.cmp(&b.key).then(a.window_start.cmp(&b.window_start)));
        Ok(entries)
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        let mut entries = Self::entries(self.core.scan(None, None, time_from, time_to)?);
        entries.sort_by(|a, b| a.window_start.cmp(&b.window_start).then(a.key.cmp(&b.key)));
        Ok(entries)
    }

    fn observed_stream_time(&self) -> i64 {
        self.core.observed_stream_time()
    }

    fn expired_writes(&self) -> u64 {
        self.core.expired_writes()
    }
}
