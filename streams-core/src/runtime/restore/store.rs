//! One store's restore: where it stands, and the steps that move it on
//! (begin reading, hand batches to the writer, end or be suspended).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::writer::{Batch, RestoreWriter};
use super::{RestoreContext, FLUSH_RECORDS};
use crate::error::StreamsError;
use crate::runtime::listener::Counters;
use crate::store::StoreEntry;
use crate::task_engine::TaskId;

/// Where one store's restore stands.
pub(super) enum Phase {
    /// Under exactly-once: the changelog has a transaction open that was
    /// written before the restore looked (see [`super::ChangelogReader::register`]);
    /// its stable end is checked again at `next_check`.
    AwaitingStable {
        written: i64,
        since: Instant,
        next_check: Instant,
        backoff: Duration,
    },
    /// Reading `start..end`.
    Reading,
    /// Read to the end; batches are still being written, or the last one
    /// waits for room at the writer.
    Applying,
    Done,
}

pub(super) struct StoreRestore {
    pub(super) store: StoreEntry,
    pub(super) topic: String,
    pub(super) phase: Phase,
    /// Where the restore began and where it ends (the stable end).
    pub(super) start: i64,
    pub(super) end: i64,
    /// The next offset to read.
    pub(super) next: i64,
    pub(super) batch: Vec<state_stores::ChangelogRecord>,
    /// Records written into the store.
    pub(super) restored: u64,
    /// Batches handed to the writer and not written yet.
    pub(super) queued: usize,
    /// The store's checkpoint once its queued batches are written.
    pub(super) submitted: Option<i64>,
}

/// A checkpoint past the changelog's end means the local state is not the
/// changelog's: the task is corrupted.
pub(super) fn check_checkpoint(task: TaskId, s: &StoreRestore, end: i64) -> Result<(), StreamsError> {
    match s.store.checkpoint().and_then(|c| i64::try_from(c).ok()) {
        Some(c) if c > end => Err(StreamsError::TaskCorrupted {
            task: task.to_string(),
            reason: format!(
                "store `{}` is checkpointed at offset {c}, past the end ({end}) of {}-{}",
                s.store.name(),
                s.topic,
                task.partition
            ),
        }),
        _ => Ok(()),
    }
}

/// The changelog's bounds are known: reads from the checkpoint (or the
/// start) to `end`, or is done at once.
pub(super) fn begin_reading(
    task: TaskId,
    s: &mut StoreRestore,
    low: i64,
    end: i64,
    cx: RestoreContext<'_>,
) -> Result<(), StreamsError> {
    check_checkpoint(task, s, end)?;
    let checkpoint = s.store.checkpoint().and_then(|c| i64::try_from(c).ok());
    let start = checkpoint.unwrap_or(low).max(low);
    (s.start, s.end, s.next, s.submitted) = (start, end, start, checkpoint);
    if start >= end {
        s.phase = Phase::Done;
        return Ok(());
    }
    s.phase = Phase::Reading;
    cx.report(task, s);
    tracing::info!(%task, store = s.store.name(), changelog = s.topic, start, end, "restoring");
    if let Some(l) = cx.listener {
        l.on_restore_start(task, s.store.name(), start, end);
    }
    Counters::add(&cx.retry.counters.restore_total, u64::try_from(end - start).unwrap_or(0));
    Ok(())
}

/// How [`apply`] hands a batch over when the writer's queue is full.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// The batch stays in the store's, for a later step.
    Offer,
    /// The stream thread waits for room: only where it waits for the writer
    /// anyway (a restoring task being closed).
    Wait,
}

/// Hands what is read of a store (the `index`th of its task's), up to
/// `offset`, to the writer: one write with its checkpoint. Returns whether
/// it was handed over: with [`Handover::Offer`], while the writer's queue
/// is full it stays in the store's batch, for a later step (see
/// [`hand_over_pending`]).
pub(super) fn apply(
    writer: &mut RestoreWriter,
    task: TaskId,
    index: usize,
    s: &mut StoreRestore,
    offset: i64,
    how: Handover,
) -> Result<bool, StreamsError> {
    if s.batch.is_empty() && s.submitted == Some(offset) {
        return Ok(true);
    }
    if how == Handover::Offer && writer.is_full() {
        return Ok(false);
    }
    let capacity = s.batch.len().min(FLUSH_RECORDS);
    let batch =
        Batch { task, store_index: index, store: s.store.clone(), records: std::mem::take(&mut s.batch), offset };
    match how {
        Handover::Wait => writer.submit(batch)?,
        Handover::Offer => {
            if let Some(refused) = writer.try_submit(batch)? {
                s.batch = refused.records;
                return Ok(false);
            }
        }
    }
    // The next batch of a store still being read is most likely as long.
    if offset < s.end {
        s.batch = Vec::with_capacity(capacity);
    }
    s.queued += 1;
    s.submitted = Some(offset);
    Ok(true)
}

/// A store read to its end: hands the rest of its changelog, up to the
/// end, to the writer (if the writer has room); the restore ends with its
/// last write.
pub(super) fn finish(
    writer: &mut RestoreWriter,
    task: TaskId,
    index: usize,
    s: &mut StoreRestore,
    cx: RestoreContext<'_>,
) -> Result<(), StreamsError> {
    s.phase = Phase::Applying;
    if apply(writer, task, index, s, s.end, Handover::Offer)? && s.queued == 0 {
        end(task, s, cx);
    }
    Ok(())
}

/// Offers the writer what a store could not hand over when its queue was
/// full: a full batch of a store being read, or the rest of one read to
/// its end.
pub(super) fn hand_over_pending(
    writer: &mut RestoreWriter,
    task: TaskId,
    index: usize,
    s: &mut StoreRestore,
    cx: RestoreContext<'_>,
) -> Result<(), StreamsError> {
    match s.phase {
        Phase::Reading if s.batch.len() >= FLUSH_RECORDS => {
            apply(writer, task, index, s, s.next, Handover::Offer)?;
        }
        Phase::Applying if !s.handed_over() => finish(writer, task, index, s, cx)?,
        _ => {}
    }
    Ok(())
}

/// A store read to its end whose last batch found the writer's queue full,
/// its task being closed: hands that batch over, waiting for room. So the
/// store keeps what it read, with its checkpoint at the changelog's end, as
/// a store whose last batch went over at once does; opened again, it does
/// not read that last stretch again (where a position left from this
/// assignment, still reported until librdkafka has stopped its fetch, could
/// pass for the end).
pub(super) fn hand_over_rest_waiting(
    writer: &mut RestoreWriter,
    task: TaskId,
    index: usize,
    s: &mut StoreRestore,
) -> Result<(), StreamsError> {
    if matches!(s.phase, Phase::Applying) {
        apply(writer, task, index, s, s.end, Handover::Wait)?;
    }
    Ok(())
}

impl StoreRestore {
    /// Applying: whether everything up to the end went to the writer.
    pub(super) fn handed_over(&self) -> bool {
        self.batch.is_empty() && self.submitted == Some(self.end)
    }
}

/// A store's restore ended: every record up to its changelog's end is written.
pub(super) fn end(task: TaskId, s: &mut StoreRestore, cx: RestoreContext<'_>) {
    uncount_unread(s, cx.retry.counters);
    s.phase = Phase::Done;
    cx.report(task, s);
    tracing::info!(%task, store = s.store.name(), restored = s.restored, "restored");
    if let Some(l) = cx.listener {
        l.on_restore_end(task, s.store.name(), s.restored);
    }
}

/// Ends a store's restore before its changelog's end (its task closes, or
/// could not be registered): what it did not read is no longer "to
/// restore". A store that was not reading is left as it is.
pub(super) fn suspend(task: TaskId, s: &mut StoreRestore, cx: RestoreContext<'_>) {
    // Applying: a write of its failed.
    if !matches!(s.phase, Phase::Reading | Phase::Applying) {
        return;
    }
    uncount_unread(s, cx.retry.counters);
    s.phase = Phase::Done;
    cx.report(task, s);
    tracing::info!(%task, store = s.store.name(), restored = s.restored, "restore suspended");
}

/// Aborted transactions and their markers take offsets but restore no
/// record, and a suspended restore reads no more: what was expected but not
/// restored is not left "to restore".
pub(super) fn uncount_unread(s: &StoreRestore, counters: &Counters) {
    let unread = u64::try_from(s.end - s.start).unwrap_or(0).saturating_sub(s.restored);
    // Never below zero, even if the counters were reset meanwhile.
    let _ = counters
        .restore_total
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| Some(total.saturating_sub(unread)));
}
