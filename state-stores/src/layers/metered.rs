//! The metered layer: the outermost wrapper of every store a task builds,
//! as Kafka Streams' `MeteredKeyValueStore`. It counts each operation and,
//! when asked (`metrics.recording.level=DEBUG` in `streams-core`), the time
//! spent in it.
//!
//! Timing is optional because two clock reads per operation cost more than a
//! cached `get` does; counting is always on and costs two plain memory
//! writes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{
    ChangelogRecord, EntryIter, KeyValueStore, RocksDbFigures, SessionEntry, SessionStore, StateStore, StoreError,
    WindowEntry, WindowStore,
};

/// An operation on a state store, as the metered layer counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum StoreOperation {
    /// A key-value read of one key.
    Get,
    /// A write of one key (key-value, window or session store).
    Put,
    /// A key-value write that keeps an existing value.
    PutIfAbsent,
    /// A key-value delete.
    Delete,
    /// A key-value range, prefix or full scan (the time is the scan's opening).
    Range,
    /// A window or session store read (one window, a time range, or a scan).
    Fetch,
    /// A session removed.
    Remove,
    /// The task's writes applied to the committed state at a task commit.
    Commit,
    /// Committed state made durable on disk.
    Flush,
    /// A batch of changelog records restored.
    Restore,
}

impl StoreOperation {
    /// Every operation, in the order of the metrics output.
    pub const ALL: [StoreOperation; 10] = [
        Self::Get,
        Self::Put,
        Self::PutIfAbsent,
        Self::Delete,
        Self::Range,
        Self::Fetch,
        Self::Remove,
        Self::Commit,
        Self::Flush,
        Self::Restore,
    ];

    /// The name used in metrics (`operation` label), as Kafka Streams names
    /// its store metrics (`put`, `put-if-absent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Put => "put",
            Self::PutIfAbsent => "put-if-absent",
            Self::Delete => "delete",
            Self::Range => "range",
            Self::Fetch => "fetch",
            Self::Remove => "remove",
            Self::Commit => "commit",
            Self::Flush => "flush",
            Self::Restore => "restore",
        }
    }
}

impl fmt::Display for StoreOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often one operation ran on a store, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationMetrics {
    /// The operation.
    pub operation: StoreOperation,
    /// Calls so far.
    pub count: u64,
    /// Time spent in those calls; `None` unless `metrics.recording.level`
    /// is `DEBUG` or `TRACE`.
    pub total_time: Option<Duration>,
}

/// One store instance's counters, shared by its metered layer (the writer)
/// and whoever reports them.
#[derive(Debug)]
pub struct StoreMeters {
    timed: bool,
    counts: [AtomicU64; StoreOperation::ALL.len()],
    nanos: [AtomicU64; StoreOperation::ALL.len()],
}

/// Adds `n` without a locked instruction: only the metered layer writes,
/// and it runs under its store's lock, so there is one writer at a time;
/// readers may see a value one operation old.
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl StoreMeters {
    /// Counters at 0; `timed` adds the time of each operation.
    pub fn new(timed: bool) -> Self {
        Self { timed, counts: Default::default(), nanos: Default::default() }
    }

    fn record<R>(&self, op: StoreOperation, f: impl FnOnce() -> R) -> R {
        let i = op as usize;
        bump(&self.counts[i], 1);
        if !self.timed {
            return f();
        }
        let start = Instant::now();
        let out = f();
        bump(&self.nanos[i], u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
        out
    }

    /// The calls of `operation` so far.
    pub fn count(&self, operation: StoreOperation) -> u64 {
        self.counts[operation as usize].load(Ordering::Relaxed)
    }

    /// The figures of the operations that ran, in the order of
    /// [`StoreOperation::ALL`].
    pub fn snapshot(&self) -> Vec<OperationMetrics> {
        StoreOperation::ALL
            .iter()
            .map(|&operation| {
                let i = operation as usize;
                OperationMetrics {
                    operation,
                    count: self.count(operation),
                    total_time: self.timed.then(|| Duration::from_nanos(self.nanos[i].load(Ordering::Relaxed))),
                }
            })
            .filter(|o| o.count > 0)
            .collect()
    }
}

/// The metered layer over a store of kind `S` (a boxed key-value, window
/// or session store): the same store, counting into its [`StoreMeters`].
///
/// ```
/// use std::sync::Arc;
/// use state_stores::{KeyValueStore, KvStore, Metered, StoreMeters, StoreOperation};
///
/// let meters = Arc::new(StoreMeters::new(false));
/// let inner: Box<dyn KeyValueStore> = Box::new(KvStore::in_memory("counts"));
/// let mut store = Metered::new(inner, Arc::clone(&meters));
/// store.put(b"apple", b"3")?;
/// assert_eq!(store.get(b"apple")?, Some(b"3".to_vec()));
/// assert_eq!(meters.count(StoreOperation::Put), 1);
/// # Ok::<(), state_stores::StoreError>(())
/// ```
pub struct Metered<S: ?Sized> {
    inner: Box<S>,
    meters: Arc<StoreMeters>,
}

impl<S: ?Sized> Metered<S> {
    /// `inner`, counting into `meters`.
    pub fn new(inner: Box<S>, meters: Arc<StoreMeters>) -> Self {
        Self { inner, meters }
    }
}

impl<S: ?Sized + fmt::Debug> fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered").field("inner", &self.inner).finish()
    }
}

impl<S: ?Sized + StateStore> StateStore for Metered<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn commit(&mut self, changelog_offset: Option<u64>) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Commit, || inner.commit(changelog_offset))
    }

    fn abort(&mut self) {
        self.inner.abort()
    }

    fn has_pending_writes(&self) -> bool {
        self.inner.has_pending_writes()
    }

    fn checkpoint(&self) -> Option<u64> {
        self.inner.checkpoint()
    }

    fn restore_batch(
        &mut self,
        records: &mut dyn Iterator<Item = ChangelogRecord>,
        changelog_offset: u64,
    ) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Restore, || inner.restore_batch(records, changelog_offset))
    }

    fn set_change_logging(&mut self, on: bool) {
        self.inner.set_change_logging(on)
    }

    fn take_changes(&mut self, into: &mut Vec<ChangelogRecord>) {
        self.inner.take_changes(into)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Flush, || inner.flush())
    }

    fn close(&mut self) -> Result<(), StoreError> {
        self.inner.close()
    }

    fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    fn rocksdb_figures(&self) -> Option<RocksDbFigures> {
        self.inner.rocksdb_figures()
    }
}

impl KeyValueStore for Metered<dyn KeyValueStore> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.meters.record(StoreOperation::Get, || self.inner.get(key))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Put, || inner.put(key, value))
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::PutIfAbsent, || inner.put_if_absent(key, value))
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Delete, || inner.delete(key))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<EntryIter<'_>, StoreError> {
        self.meters.record(StoreOperation::Range, || self.inner.range(from, to))
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<EntryIter<'_>, StoreError> {
        self.meters.record(StoreOperation::Range, || self.inner.prefix_scan(prefix))
    }

    fn all(&self) -> Result<EntryIter<'_>, StoreError> {
        self.meters.record(StoreOperation::Range, || self.inner.all())
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.inner.approximate_num_entries()
    }
}

impl WindowStore for Metered<dyn WindowStore> {
    fn put(&mut self, key: &[u8], value: Option<&[u8]>, window_start: i64) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Put, || inner.put(key, value, window_start))
    }

    fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch(key, window_start))
    }

    fn fetch_range(&self, key: &[u8], time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch_range(key, time_from, time_to))
    }

    fn fetch_key_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        time_from: i64,
        time_to: i64,
    ) -> Result<Vec<WindowEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch_key_range(key_from, key_to, time_from, time_to))
    }

    fn fetch_all(&self, time_from: i64, time_to: i64) -> Result<Vec<WindowEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch_all(time_from, time_to))
    }

    fn all(&self) -> Result<Vec<WindowEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.all())
    }

    fn observed_stream_time(&self) -> i64 {
        self.inner.observed_stream_time()
    }

    fn expired_writes(&self) -> u64 {
        self.inner.expired_writes()
    }
}

impl SessionStore for Metered<dyn SessionStore> {
    fn put(&mut self, key: &[u8], start: i64, end: i64, value: &[u8]) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Put, || inner.put(key, start, end, value))
    }

    fn remove(&mut self, key: &[u8], start: i64, end: i64) -> Result<(), StoreError> {
        let inner = &mut self.inner;
        self.meters.record(StoreOperation::Remove, || inner.remove(key, start, end))
    }

    fn fetch_session(&self, key: &[u8], start: i64, end: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch_session(key, start, end))
    }

    fn find_sessions(&self, key: &[u8], earliest_end: i64, latest_start: i64) -> Result<Vec<SessionEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.find_sessions(key, earliest_end, latest_start))
    }

    fn find_sessions_in_range(
        &self,
        key_from: Option<&[u8]>,
        key_to: Option<&[u8]>,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || {
            self.inner.find_sessions_in_range(key_from, key_to, earliest_end, latest_start)
        })
    }

    fn fetch(&self, key: &[u8]) -> Result<Vec<SessionEntry>, StoreError> {
        self.meters.record(StoreOperation::Fetch, || self.inner.fetch(key))
    }

    fn observed_stream_time(&self) -> i64 {
        self.inner.observed_stream_time()
    }

    fn expired_writes(&self) -> u64 {
        self.inner.expired_writes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KvStore, Retention, SegmentedSessionStore, SegmentedWindowStore};

    fn kv(timed: bool) -> (Metered<dyn KeyValueStore>, Arc<StoreMeters>) {
        let meters = Arc::new(StoreMeters::new(timed));
        (Metered::new(Box::new(KvStore::in_memory("counts")), Arc::clone(&meters)), meters)
    }

    #[test]
    fn each_key_value_operation_is_counted_once() -> Result<(), StoreError> {
        let (mut store, meters) = kv(false);
        store.put(b"a", b"1")?;
        store.put(b"b", b"2")?;
        assert_eq!(store.get(b"a")?, Some(b"1".to_vec()));
        assert_eq!(store.put_if_absent(b"a", b"9")?, Some(b"1".to_vec()));
        assert_eq!(store.delete(b"b")?, Some(b"2".to_vec()));
        assert_eq!(store.all()?.count(), 1);
        assert_eq!(store.prefix_scan(b"a")?.count(), 1);
        store.commit(Some(7))?;
        store.restore_batch(&mut vec![(b"c".to_vec(), Some(b"3".to_vec()))].into_iter(), 8)?;
        let m = meters.snapshot();
        let counts: Vec<(StoreOperation, u64)> = m.iter().map(|o| (o.operation, o.count)).collect();
        assert_eq!(
            counts,
            [
                (StoreOperation::Get, 1),
                (StoreOperation::Put, 2),
                (StoreOperation::PutIfAbsent, 1),
                (StoreOperation::Delete, 1),
                (StoreOperation::Range, 2),
                (StoreOperation::Commit, 1),
                (StoreOperation::Restore, 1),
            ]
        );
        assert!(m.iter().all(|o| o.total_time.is_none()), "untimed");
        assert_eq!(meters.count(StoreOperation::Fetch), 0);
        // The layer is transparent: the restored key and the checkpoint are the inner store's.
        assert_eq!(store.get(b"c")?, Some(b"3".to_vec()));
        assert_eq!(store.checkpoint(), Some(8));
        Ok(())
    }

    #[test]
    fn timing_adds_the_time_of_each_call() -> Result<(), StoreError> {
        let (mut store, meters) = kv(true);
        for i in 0..100u32 {
            store.put(&i.to_be_bytes(), b"v")?;
        }
        let m = meters.snapshot();
        let put = m.iter().find(|o| o.operation == StoreOperation::Put).map(|o| (o.count, o.total_time));
        assert!(matches!(put, Some((100, Some(_)))), "{put:?}");
        Ok(())
    }

    #[test]
    fn window_and_session_reads_count_as_fetches() -> Result<(), StoreError> {
        let meters = Arc::new(StoreMeters::new(false));
        let mut w: Metered<dyn WindowStore> = Metered::new(
            Box::new(SegmentedWindowStore::in_memory("w", Retention::new(60_000), false)),
            Arc::clone(&meters),
        );
        w.put(b"k", Some(b"1"), 0)?;
        assert_eq!(w.fetch(b"k", 0)?, Some(b"1".to_vec()));
        assert_eq!(w.fetch_range(b"k", 0, 10)?.len(), 1);
        assert_eq!(w.fetch_all(0, 10)?.len(), 1);
        let mut s: Metered<dyn SessionStore> =
            Metered::new(Box::new(SegmentedSessionStore::in_memory("s", Retention::new(60_000))), Arc::clone(&meters));
        s.put(b"k", 0, 5, b"x")?;
        assert_eq!(s.fetch(b"k")?.len(), 1);
        s.remove(b"k", 0, 5)?;
        assert_eq!(
            [StoreOperation::Put, StoreOperation::Fetch, StoreOperation::Remove].map(|op| meters.count(op)),
            [2, 4, 1]
        );
        Ok(())
    }
}
