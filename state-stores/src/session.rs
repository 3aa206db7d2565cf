//! Session stores: values per (key, session start, session end), found by
//! overlap for merging, retained by session end.

use std::path::Path;

use crate::backend::memory::MemoryBackend;
use crate::backend::rocks::{RocksBackend, RocksDbConfig};
use crate::encoding::{read_ts, ts_bytes};
use crate::segmented::{Decoded, Segmented};
use crate::tx::{ChangelogRecord, StateStore, TxCore};
use crate::window::Retention;
use crate::StoreError;

/// One stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEntry {
    /// The record key.
    pub key: Vec<u8>,
    /// The session's first record time, ms.
    pub start: i64,
    /// The session's last record time, ms.
    pub end: i64,
    /// The value (the session's aggregate).
    pub value: Vec<u8>,
}

/// A store of session windows.
pub trait SessionStore: StateStore {
    /// Stores the aggregate of session `[start, end]` of `key`. Writes whose
    /// end is past retention are dropped and counted.
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StoreError>;

    /// Removes session `[start, end]` of `key` (merged into another one, say).
    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StoreError>;

    /// The value of exactly session `[start, end]` of `key`.
    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The sessions of `key` with `end >= earliest_end` and
    /// `start <= latest_start`: those a record at time t overlaps (with gap g)
    /// when called with `(t - g, t + g)`. Ordered by end, then start.
    fn find_sessions(&self, key: &[u8], earliest_end: i64, latest_start: i64) -> Result<Vec<SessionEntry>, StoreError>;

    /// As [`find_sessions`](SessionStore::find_sessions) over keys in
    /// `[key_from, key_to]` (open when `None`), ordered by key, then end.
    fn find_sessions_in_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionEntry>, StoreError>;

    /// Every retained session of `key`.
    fn fetch(&self, key: &[u8]) -> Result<Vec<SessionEntry>, StoreError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// The largest session end written so far (`i64::MIN` when empty).
    fn observed_stream_time(&self) -> i64;

    /// How many writes were dropped because their session had expired.
    fn expired_writes(&self) -> u64;
}

/// The session store over RocksDB or memory.
#[derive(Debug)]
pub struct SegmentedSessionStore {
    core: Segmented,
}

impl SegmentedSessionStore {
    /// An in-memory session store.
    pub fn in_memory(name: &str, retention: Retention) -> Self {
        let core = TxCore::new(name, Box::<MemoryBackend>::default());
        Self { core: Segmented::new(core, retention.retention_ms, retention.segment_interval_ms) }
    }

    /// A RocksDB session store in `dir`.
    pub fn rocksdb(name: &str, dir: &Path, config: &RocksDbConfig, retention: Retention) -> Result<Self, StoreError> {
        let core = TxCore::new(name, Box::new(RocksBackend::open(name, dir, config)?));
        let mut core = Segmented::new(core, retention.retention_ms, retention.segment_interval_ms);
        core.reload()?;
        Ok(Self { core })
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

    fn entries(found: Vec<Decoded>, latest_start: i64) -> Vec<SessionEntry> {
        found
            .into_iter()
            .filter_map(|d| {
                let start = read_ts(&d.extra)?;
                (start <= latest_start).then_some(SessionEntry { key: d.key, start, end: d.time, value: d.value })
            })
            .collect()
    }
}

crate::key_value::impl_state_store!(SegmentedSessionStore, core.core);

impl SessionStore for SegmentedSessionStore {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StoreError> {
        self.core.write(key, end, &ts_bytes(start), Some(value)).map(|_| ())
    }

    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StoreError> {
        self.core.write(key, end, &ts_bytes(start), None).map(|_| ())
    }

    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.core.get(key, end, &ts_bytes(start))
    }

    fn find_sessions(&self, key: &[u8], earliest_end: i64, latest_start: i64) -> Result<Vec<SessionEntry>, StoreError> {
        let mut found = Self::entries(self.core.scan(Some(key), Some(key), earliest_end, i64::MAX)?, latest_start);
        found.sort_by(|a, b| a.end.cmp(&b.end).then(a.start.cmp(&b.start)));
        Ok(found)
    }

    fn find_sessions_in_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionEntry>, StoreError> {
        if let (Some(f), Some(t)) = (key_from, key_to) {
            if f > t {
                return Err(StoreError::InvalidRange { store: self.core.core.name.clone() });
            }
        }
        let mut found = Self::entries(self.core.scan(key_from, key_to, earliest_end, i64::MAX)?, latest_start);
        found.sort_by(|a, b| a.key.cmp(&b.key).then(a.end.cmp(&b.end)).then(a.start.cmp(&b.start)));
        Ok(found)
    }

    fn observed_stream_time(&self) -> i64 {
        self.core.observed_stream_time()
    }

    fn expired_writes(&self) -> u64 {
        self.core.expired_writes()
    }
}
