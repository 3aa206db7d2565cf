//! Writing restored changelog batches into their stores on a thread of
//! their own, while the stream thread reads the next ones (Kafka Streams
//! moved restoring off its stream threads, into a state updater, for the
//! same reason).
//!
//! R1's profile on one core: reading the changelogs took about 40% of the
//! stream thread's restore and writing them into RocksDB (the memtable's
//! skip-list inserts) about 50%, one after the other. The writer takes the
//! second half: each store's batches are written in the order they were
//! handed over (one thread, one queue), and each write's outcome comes back
//! to the stream thread, which alone reports progress and decides when a
//! store is restored. At most [`QUEUED`] batches wait, so memory stays
//! bounded: a batch that finds the queue full comes back to the reader,
//! which keeps it and stops reading (past what it already fetched) until
//! the writer has room. So a stream thread with tasks to run does not wait
//! on a write (R2: a write held up by RocksDB held up the running tasks'
//! records behind it), except to close a restoring task, whose stores must
//! not close with writes pending.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::StreamsError;
use crate::store::StoreEntry;
use crate::task_engine::TaskId;

/// Batches handed over and not yet being written: with the one being
/// written and the ones being filled, what a restore holds in memory.
const QUEUED: usize = 2;

/// One batch of a store's changelog records, up to (not including) `offset`.
pub(crate) struct Batch {
    pub(crate) task: TaskId,
    /// The store's place among its task's restoring stores.
    pub(crate) store_index: usize,
    pub(crate) store: StoreEntry,
    pub(crate) records: Vec<state_stores::ChangelogRecord>,
    pub(crate) offset: i64,
}

/// How a batch's write went.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) task: TaskId,
    pub(crate) store_index: usize,
    /// The store's checkpoint now (on success).
    pub(crate) offset: i64,
    pub(crate) records: u64,
    pub(crate) result: Result<(), StreamsError>,
}

/// The writer thread of one stream thread's restores, started at the first
/// batch and stopped (after the batches handed over) when dropped.
pub(crate) struct RestoreWriter {
    name: String,
    running: Option<Running>,
    /// Batches handed over whose outcome was not taken yet.
    in_flight: usize,
    /// A batch found the queue full, and no outcome came back since.
    full: bool,
}

struct Running {
    batches: SyncSender<Batch>,
    written: Receiver<Written>,
    thread: JoinHandle<()>,
}

impl std::fmt::Debug for RestoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreWriter")
            .field("name", &self.name)
            .field("in_flight", &self.in_flight)
            .field("full", &self.full)
            .finish()
    }
}

impl RestoreWriter {
    /// A writer whose thread, once started, is called `name`.
    pub(crate) fn new(name: String) -> Self {
        Self { name, running: None, in_flight: 0, full: false }
    }

    /// Batches handed over whose outcome was not taken yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the last batch offered found the queue full and no outcome
    /// was taken since: one offered now would most likely come back too.
    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    /// Forgets that the queue was full: the next batch is offered (the
    /// writer may have taken one from the queue though no outcome was
    /// taken yet, as when it started late).
    pub(crate) fn forget_full(&mut self) {
        self.full = false;
    }

    /// Hands a batch over without waiting; gives it back (`Some`) while
    /// [`QUEUED`] others wait.
    pub(crate) fn try_submit(&mut self, batch: Batch) -> Result<Option<Batch>, StreamsError> {
        match self.running()?.batches.try_send(batch) {
            Ok(()) => {
                self.in_flight += 1;
                self.full = false;
                Ok(None)
            }
            Err(TrySendError::Full(batch)) => {
                self.full = true;
                Ok(Some(batch))
            }
            Err(TrySendError::Disconnected(_)) => Err(stopped()),
        }
    }

    /// Hands a batch over, waiting while [`QUEUED`] others wait (see
    /// [`super::store::Handover::Wait`]).
    pub(crate) fn submit(&mut self, batch: Batch) -> Result<(), StreamsError> {
        self.running()?.batches.send(batch).map_err(|_| stopped())?;
        self.in_flight += 1;
        Ok(())
    }

    fn running(&mut self) -> Result<&mut Running, StreamsError> {
        match self.running {
            Some(ref mut r) => Ok(r),
            None => Ok(self.running.insert(start(&self.name)?)),
        }
    }

    /// The outcomes of the batches written since the last call, waiting up
    /// to `wait` for the first when there is none yet (and batches are in
    /// flight).
    pub(crate) fn take(&mut self, wait: Duration, out: &mut Vec<Written>) -> Result<(), StreamsError> {
        let Some(running) = &self.running else { return Ok(()) };
        if self.in_flight == 0 {
            return Ok(());
        }
        let first = match running.written.try_recv() {
            Ok(w) => Some(w),
            Err(TryRecvError::Empty) if wait.is_zero() => None,
            Err(TryRecvError::Empty) => match running.written.recv_timeout(wait) {
                Ok(w) => Some(w),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Err(stopped()),
            },
            Err(TryRecvError::Disconnected) => return Err(stopped()),
        };
        let Some(first) = first else { return Ok(()) };
        let before = out.len();
        out.push(first);
        out.extend(running.written.try_iter());
        self.in_flight -= (out.len() - before).min(self.in_flight);
        self.full = false;
        Ok(())
    }

    /// The outcomes of every batch in flight, waiting for them all.
    pub(crate) fn take_all(&mut self, out: &mut Vec<Written>) -> Result<(), StreamsError> {
        let Some(running) = &self.running else { return Ok(()) };
        while self.in_flight > 0 {
            let w = running.written.recv().map_err(|_| stopped())?;
            out.push(w);
            self.in_flight -= 1;
            self.full = false;
        }
        Ok(())
    }
}

impl Drop for RestoreWriter {
    fn drop(&mut self) {
        if let Some(Running { batches, written, thread }) = self.running.take() {
            // The batches handed over are written; then the thread ends.
            drop(batches);
            drop(written);
            if thread.join().is_err() {
                tracing::error!(thread = %self.name, "the restore writer panicked");
            }
        }
    }
}

fn start(name: &str) -> Result<Running, StreamsError> {
    let (batches, todo) = mpsc::sync_channel::<Batch>(QUEUED);
    let (done, written) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            // After a failed write, nothing more is written: a later batch
            // of the same store would move its checkpoint past the records
            // that were lost. The failure ends the stream thread, and the
            // restore starts again from the checkpoints as they are.
            let mut failed = false;
            for batch in todo {
                let outcome = if failed { refuse(batch) } else { write(batch) };
                failed |= outcome.result.is_err();
                // The reader is gone: what is still queued is written all
                // the same (each batch carries its checkpoint).
                let _ = done.send(outcome);
            }
        })
        .map_err(|e| StreamsError::IllegalState(format!("cannot start the restore writer thread {name}: {e}")))?;
    Ok(Running { batches, written, thread })
}

/// Writes one batch with its checkpoint; a panic in the store is its error.
fn write(batch: Batch) -> Written {
    let Batch { task, store_index, store, records, offset } = batch;
    let n = records.len() as u64;
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        store.restore_batch(&mut records.into_iter(), u64::try_from(offset).unwrap_or(0))
    }))
    .unwrap_or_else(|p| {
        Err(StreamsError::IllegalState(format!(
            "restoring store `{}` of task {task} panicked: {}",
            store.name(),
            crate::error::panic_message(&*p)
        )))
    });
    Written { task, store_index, offset, records: n, result }
}

/// A batch not written because an earlier one failed.
fn refuse(batch: Batch) -> Written {
    let Batch { task, store_index, store, records, offset } = batch;
    let error = StreamsError::IllegalState(format!(
        "restoring store `{}` of task {task}: not written, an earlier restore write of this thread failed",
        store.name()
    ));
    Written { task, store_index, offset, records: records.len() as u64, result: Err(error) }
}

fn stopped() -> StreamsError {
    StreamsError::IllegalState("the restore writer thread stopped; restoring cannot go on".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;
    use crate::store::{StoreContext, Stores};

    /// Hands `batch` over, taking outcomes into `out` while the queue is full.
    fn submit(writer: &mut RestoreWriter, mut batch: Batch, out: &mut Vec<Written>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Some(back) = writer.try_submit(batch).unwrap() {
            assert!(writer.is_full());
            assert!(std::time::Instant::now() < deadline, "the writer took no batch");
            writer.take(Duration::from_millis(100), out).unwrap();
            batch = back;
        }
        assert!(!writer.is_full());
    }

    fn store(name: &str) -> StoreEntry {
        let ctx = StoreContext {
            task_dir: std::env::temp_dir().join("restore-writer-test-unused"),
            rocksdb: Default::default(),
            cache_max_bytes: 0,
            timed_operations: false,
        };
        Stores::key_value_store_builder(Stores::in_memory_key_value_store(name), StringSerde, StringSerde)
            .build(&ctx, format!("app-{name}-changelog"))
            .unwrap()
    }

    #[test]
    fn batches_are_written_in_order_with_their_checkpoints_and_each_outcome_comes_back() {
        let s = store("s");
        let task = TaskId { subtopology: 0, partition: 3 };
        let mut writer = RestoreWriter::new("restore-writer-test".into());
        assert_eq!(writer.in_flight(), 0);
        let mut out = Vec::new();
        // Ten batches, more than are queued: later ones overwrite earlier keys.
        for b in 0..10i64 {
            let records =
                (0..100).map(|i| (format!("k{i}").into_bytes(), Some(format!("v{b}").into_bytes()))).collect();
            submit(
                &mut writer,
                Batch { task, store_index: 1, store: s.clone(), records, offset: (b + 1) * 100 },
                &mut out,
            );
        }
        writer.take_all(&mut out).unwrap();
        assert_eq!(writer.in_flight(), 0);
        let offsets: Vec<i64> = out.iter().map(|w| w.offset).collect();
        assert_eq!(offsets, (1..=10).map(|b| b * 100).collect::<Vec<_>>(), "outcomes in the order handed over");
        assert!(out.iter().all(|w| w.task == task && w.store_index == 1 && w.records == 100 && w.result.is_ok()));
        assert_eq!(s.checkpoint(), Some(1_000), "the last batch's checkpoint");
        let handle = s.key_value::<String, String>().unwrap();
        assert_eq!(handle.get(&"k7".to_owned()).unwrap().as_deref(), Some("v9"), "the last batch's value");
        // Nothing in flight: taking waits for nothing.
        out.clear();
        writer.take(Duration::from_secs(5), &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_failed_write_comes_back_as_its_batchs_error_and_nothing_after_it_is_written() {
        let s = store("closed");
        s.close().unwrap();
        let task = TaskId { subtopology: 1, partition: 0 };
        let mut writer = RestoreWriter::new("restore-writer-test".into());
        let records = vec![(b"k".to_vec(), Some(b"v".to_vec()))];
        let mut out = Vec::new();
        submit(&mut writer, Batch { task, store_index: 0, store: s, records, offset: 1 }, &mut out);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while out.is_empty() {
            assert!(std::time::Instant::now() < deadline, "no outcome");
            writer.take(Duration::from_millis(100), &mut out).unwrap();
        }
        let err = out.remove(0).result.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        assert_eq!(writer.in_flight(), 0);
        // Nothing is written after a failure, whatever the store: its
        // checkpoint would otherwise pass what was lost.
        let open = store("open");
        let records = vec![(b"k".to_vec(), Some(b"v".to_vec()))];
        submit(&mut writer, Batch { task, store_index: 1, store: open.clone(), records, offset: 7 }, &mut out);
        writer.take_all(&mut out).unwrap();
        let err = out.remove(0).result.unwrap_err();
        assert!(err.to_string().contains("not written"), "{err}");
        assert_eq!(open.checkpoint(), None);
    }
}
