//! Restoring tasks' stores from their changelogs beside processing (Kafka
//! Streams' changelog reader): a task's logged stores are read from each
//! store's checkpoint to the changelog's end (read_committed) in bounded
//! slices, between the stream thread's processing rounds, so a task that
//! restores a large store does not stop the thread's running tasks.
//!
//! A task is registered when it is created; [`ChangelogReader::step`] reads
//! and applies the next slice of every registered task's changelogs and says
//! which tasks are done. Until then the task does not process and is not
//! listed for interactive queries. Closing a task while it restores
//! ([`ChangelogReader::remove`]) keeps what was applied: its checkpoint
//! moves with every applied batch, so the next restore goes on from there.
//!
//! The stream thread reads; the batches it reads are written into their
//! stores by a [`RestoreWriter`] thread meanwhile, and a store is restored
//! once its last batch is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

use super::client::kafka_error;
use super::fetch::FetchQueue;
use super::listener::{Counters, StateRestoreListener};
use super::retry::RetryPolicy;
use crate::error::StreamsError;
use crate::store::StoreEntry;
use crate::task_engine::TaskId;
use crate::topology::RawRecord;
use writer::{RestoreWriter, Written};

mod store;
mod writer;

use store::{
    apply, begin_reading, check_checkpoint, end, finish, hand_over_pending, hand_over_rest_waiting, suspend, Handover,
    Phase, StoreRestore,
};

/// Records applied to a store in one write (and checkpoint): small enough
/// that one write does not hold up the running tasks for long.
const FLUSH_RECORDS: usize = 10_000;
/// Records taken from the fetch queue at a time.
const FETCH_BATCH: usize = 1_024;
/// How often a reader forwards its partitions to its fetch queue again (see
/// [`ChangelogReader::reattach`]).
const REATTACH_AFTER: Duration = Duration::from_millis(500);
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between checks of a changelog whose open transaction a
/// restore waits out.
const MAX_STABLE_BACKOFF: Duration = Duration::from_millis(500);
/// How long a restore waits for a changelog's open transaction to end. A
/// live one ends within `transaction.timeout.ms` (10 s for our producers)
/// plus the coordinator's abort sweep (10 s by default). One still open
/// after this is hanging: its coordinator will write no marker (seen after a
/// broker was killed mid-commit), so none will come until this task's own
/// next transaction on the partition ends it. The restore then stops at the
/// stable end, as a read_committed reader would, unless the store's
/// checkpoint lies inside the open transaction: a checkpoint follows a
/// commit, so the transaction is this task's own and committed, and the
/// store is kept as checkpointed.
const HANGING_TRANSACTION_AFTER: Duration = Duration::from_secs(60);

/// How a registered task came out of a step.
#[derive(Debug)]
pub(crate) enum Restored {
    /// Every logged store reached its changelog's end: the task may run.
    Done(TaskId),
    /// A store's checkpoint is past its changelog's end: the task's state
    /// must be wiped and restored from scratch. The task is unregistered.
    Corrupted(TaskId, String),
}

struct TaskRestore {
    stores: Vec<StoreRestore>,
    last_progress: Instant,
}

/// The clients and state of a thread's restores.
pub(crate) struct ChangelogReader {
    /// The assigned changelog partitions' records, a batch at a time (see
    /// [`super::fetch`]). Destroyed before `consumer` (see `Drop`).
    fetch: Option<FetchQueue>,
    /// Records taken from `fetch` (reused).
    fetched: Vec<RawRecord>,
    /// When the partitions were last forwarded to `fetch` again.
    attached: Instant,
    /// read_committed: aborted writes are never restored.
    consumer: BaseConsumer,
    /// read_uncommitted, under exactly-once only: how far a changelog is
    /// written, committed or not.
    probe: Option<BaseConsumer>,
    tasks: BTreeMap<TaskId, TaskRestore>,
    /// The consumer's assignment no longer matches the stores being read.
    reassign: bool,
    /// The changelog partitions the consumer has assigned. Changed
    /// partition by partition: the others go on fetching where they are,
    /// their fetched records kept.
    assignment: BTreeSet<(String, i32)>,
    /// The last step stopped at its budget, not for want of fetched
    /// records: more are very likely waiting.
    backlog: bool,
    writer: RestoreWriter,
    /// A write that failed while a task was being removed, for the next step.
    failed: Option<StreamsError>,
}

impl Drop for ChangelogReader {
    fn drop(&mut self) {
        // librdkafka requires a client's queues destroyed before the client.
        drop(self.fetch.take());
        if let Some(e) = self.failed.take() {
            tracing::error!(error = %e, "a restore write failed while its task was closed");
        }
    }
}

/// The listener and retry rules a restore reports to and runs under.
#[derive(Clone, Copy)]
pub(crate) struct RestoreContext<'a> {
    pub(crate) listener: Option<&'a dyn StateRestoreListener>,
    pub(crate) retry: RetryPolicy<'a>,
    /// (task, store) → records left to read, for `/metrics`.
    pub(crate) progress: &'a Mutex<BTreeMap<(TaskId, String), u64>>,
}

impl RestoreContext<'_> {
    fn report(&self, task: TaskId, s: &StoreRestore) {
        let remaining = u64::try_from(s.end - s.next).unwrap_or(0);
        let mut progress = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(s.phase, Phase::Reading) {
            progress.insert((task, s.store.name().to_owned()), remaining);
        } else {
            progress.remove(&(task, s.store.name().to_owned()));
        }
    }
}

impl ChangelogReader {
    /// A reader whose batches are written by a thread called `writer`.
    pub(crate) fn new(consumer: BaseConsumer, probe: Option<BaseConsumer>, writer: String) -> Self {
        // SAFETY: the reader's `Drop` destroys the queue before its fields,
        // the consumer among them, go.
        #[allow(unsafe_code)]
        let fetch = unsafe { FetchQueue::new(&consumer, FETCH_BATCH) }.map(FetchQueue::without_headers);
        Self {
            fetch,
            fetched: Vec::with_capacity(FETCH_BATCH),
            attached: Instant::now(),
            consumer,
            probe,
            tasks: BTreeMap::new(),
            reassign: false,
            assignment: BTreeSet::new(),
            backlog: false,
            writer: RestoreWriter::new(writer),
            failed: None,
        }
    }

    /// A write that failed while a task was removed, not reported yet: the
    /// stream thread fails with it (see [`ChangelogReader::remove`]).
    pub(crate) fn take_failure(&mut self) -> Option<StreamsError> {
        self.failed.take()
    }

    /// Whether any task is restoring.
    pub(crate) fn is_restoring(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// Whether fetched changelog records are likely waiting to be restored
    /// (the last step stopped at its budget): the thread should not then
    /// wait for input records, but come straight back for the next slice.
    pub(crate) fn has_backlog(&self) -> bool {
        self.backlog && self.is_restoring()
    }

    /// Registers a task's logged stores for restoring. `Ok(false)` when every
    /// store is already at its changelog's end (the task may run at once).
    ///
    /// Under exactly-once a changelog's read_committed end stops at the first
    /// transaction still open, and a transaction that committed stays "open"
    /// until the coordinator has written its markers, which after a broker
    /// restart can take seconds. Restoring to that end would lose the
    /// committed transaction's updates while the group's offsets already
    /// include its input; so the restore waits (without holding up the
    /// thread) until the stable end reaches what was written when it looked.
    /// Only this task's producers write its changelog: the wait is for our
    /// own last transaction, or at worst a dead instance's until
    /// `transaction.timeout.ms` aborts it; a transaction that outlives
    /// that by far is hanging, and the restore stops at the stable end
    /// (see [`HANGING_TRANSACTION_AFTER`]).
    pub(crate) fn register<'a>(
        &mut self,
        task: TaskId,
        changelogs: impl Iterator<Item = (&'a StoreEntry, &'a str)>,
        cx: RestoreContext<'_>,
    ) -> Result<bool, StreamsError> {
        let now = Instant::now();
        let mut stores = Vec::new();
        if let Err(e) = self.open_stores(task, changelogs, cx, now, &mut stores) {
            // The stores that began reading were counted "to restore" and
            // reported: not any more.
            for s in &mut stores {
                suspend(task, s, cx);
            }
            return Err(e);
        }
        if stores.is_empty() {
            return Ok(false);
        }
        self.reassign |= stores.iter().any(|s| matches!(s.phase, Phase::Reading));
        self.tasks.insert(task, TaskRestore { stores, last_progress: now });
        Ok(true)
    }

    /// The restores of a task's logged stores that have anything to read,
    /// into `stores`, as far as they got before an error.
    fn open_stores<'a>(
        &self,
        task: TaskId,
        changelogs: impl Iterator<Item = (&'a StoreEntry, &'a str)>,
        cx: RestoreContext<'_>,
        now: Instant,
        stores: &mut Vec<StoreRestore>,
    ) -> Result<(), StreamsError> {
        for (store, topic) in changelogs {
            let (low, stable) = self.watermarks(false, topic, task.partition, cx.retry)?;
            let written = match self.probe {
                Some(_) => self.watermarks(true, topic, task.partition, cx.retry)?.1,
                None => stable,
            };
            let mut s = StoreRestore {
                store: store.clone(),
                topic: topic.to_owned(),
                phase: Phase::Reading,
                start: low,
                end: stable,
                next: low,
                batch: Vec::new(),
                restored: 0,
                queued: 0,
                submitted: None,
            };
            if stable < written {
                tracing::info!(
                    changelog = topic,
                    partition = task.partition,
                    stable,
                    written,
                    "waiting for the changelog's open transaction to end before restoring"
                );
                // A checkpoint past everything written is wrong whatever the
                // transaction does.
                check_checkpoint(task, &s, written)?;
                s.phase = Phase::AwaitingStable {
                    written,
                    since: now,
                    next_check: now + Duration::from_millis(20),
                    backoff: Duration::from_millis(20),
                };
            } else {
                begin_reading(task, &mut s, low, stable, cx)?;
            }
            if !matches!(s.phase, Phase::Done) {
                stores.push(s);
            }
        }
        Ok(())
    }

    /// Stops restoring a task (it is closed): what was applied stays, with
    /// its checkpoint, and a store read to its end is written to its end;
    /// what a store still reading read but did not hand to the writer is
    /// dropped (read again next time). Returns once the batches handed over
    /// are written: the task's stores may be closed then.
    pub(crate) fn remove(&mut self, task: TaskId, cx: RestoreContext<'_>) {
        self.unregister(task, cx, true);
    }

    /// [`ChangelogReader::remove`]; `keep_read` false for a task whose
    /// state is wiped next (corrupted): the last batch of a store read to
    /// its end is then not written either.
    fn unregister(&mut self, task: TaskId, cx: RestoreContext<'_>, keep_read: bool) {
        if let Some(restore) = self.tasks.get_mut(&task).filter(|_| keep_read) {
            for (i, s) in restore.stores.iter_mut().enumerate() {
                if let Err(e) = hand_over_rest_waiting(&mut self.writer, task, i, s) {
                    self.failed.get_or_insert(e);
                }
            }
        }
        if self.tasks.get(&task).is_some_and(|r| r.stores.iter().any(|s| s.queued > 0)) {
            let mut written = Vec::new();
            let waited = self.writer.take_all(&mut written);
            for w in written {
                if let Err(e) = self.on_written(w, cx) {
                    self.failed.get_or_insert(e);
                }
            }
            if let Err(e) = waited {
                self.failed.get_or_insert(e);
            }
        }
        let Some(mut restore) = self.tasks.remove(&task) else { return };
        let mut gone = Vec::new();
        for s in &mut restore.stores {
            self.reassign |= matches!(s.phase, Phase::Reading);
            suspend(task, s, cx);
            gone.extend(self.assignment.take(&(s.topic.clone(), task.partition)));
        }
        // At once: a task opened again on these partitions (a corrupted
        // one, wiped) reads them from its own offsets.
        if !gone.is_empty() {
            self.unassign(&gone);
        }
        self.unassign_when_idle();
    }

    /// Unassigns `partitions` (taken out of `assignment` already).
    fn unassign(&mut self, partitions: &[(String, i32)]) {
        if let Err(e) = self.consumer.incremental_unassign(&partition_list(partitions)) {
            tracing::warn!(error = %e, "cannot unassign changelog partitions");
            self.resync_assignment();
        }
    }

    /// After a failed change of the assignment, what librdkafka has
    /// assigned: the next change asks for what differs from it.
    fn resync_assignment(&mut self) {
        match self.consumer.assignment() {
            Ok(tpl) => {
                self.assignment = tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the changelog partitions' assignment"),
        }
    }

    /// With nothing left to restore, lets the changelog partitions go.
    fn unassign_when_idle(&mut self) {
        // `unassign` waits for librdkafka's main thread: not called for
        // nothing (tasks closed before their first slice was read).
        if self.tasks.is_empty() {
            self.reassign = false;
            if !std::mem::take(&mut self.assignment).is_empty() {
                if let Err(e) = self.consumer.unassign() {
                    tracing::warn!(error = %e, "cannot unassign changelog partitions");
                }
            }
        }
    }

    /// Reads and applies up to `budget` changelog records over every
    /// restoring task, waiting up to `wait` for the first (and, when the
    /// writer has no room, up to `wait` for it first); returns the tasks
    /// that finished (or turned out corrupted).
    pub(crate) fn step(
        &mut self,
        budget: usize,
        wait: Duration,
        cx: RestoreContext<'_>,
    ) -> Result<Vec<Restored>, StreamsError> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut outcomes = Vec::new();
        self.take_written(Duration::ZERO, cx)?;
        // Offered again each step: a refused offer costs nothing.
        self.writer.forget_full();
        self.hand_over_pending(cx)?;
        self.check_stable_ends(cx, &mut outcomes)?;
        if self.reassign {
            self.assign()?;
        }
        let mut read = 0usize;
        // Only writes left: their end is what there is to wait for. A
        // writer with no room: reading waits for it, as far as `wait` lets
        // it (not at all while tasks run, so their records never wait on a
        // write). (With nothing to read and nothing written, as while
        // changelogs' open transactions are waited out, the consumer's poll
        // is the wait.)
        let writes_only = self.writer.in_flight() > 0 && !self.reading();
        let mut drained = writes_only;
        if writes_only || self.writer.is_full() {
            self.take_written(wait, cx)?;
            self.hand_over_pending(cx)?;
        }
        // One clock read for the step: the stall check counts in seconds.
        let now = Instant::now();
        let mut fetched = std::mem::take(&mut self.fetched);
        // A batch the writer had no room for is kept, and no more is read.
        while !writes_only && !self.writer.is_full() && read < budget {
            fetched.clear();
            let error = self.fetch(if read == 0 { wait } else { Duration::ZERO }, budget - read, &mut fetched);
            if fetched.is_empty() && error.is_none() {
                drained = true;
                break;
            }
            read += fetched.len();
            for record in fetched.drain(..) {
                self.reassign |= take_record(&mut self.tasks, &mut self.writer, record, now, cx)?;
            }
            match error {
                None => {}
                // The cluster being away: the consumer reconnects and fetches
                // on by itself; the stall check below bounds the wait.
                Some(e) if super::errors::is_transient_poll_error(&e) => {
                    cx.retry.counters.cluster_unreachable(&e);
                    drained = true;
                    break;
                }
                Some(e) => return Err(kafka_error("reading a changelog", &e)),
            }
        }
        self.fetched = fetched;
        if self.attached.elapsed() >= REATTACH_AFTER {
            self.reattach();
        }
        if read > 0 {
            cx.retry.counters.cluster_reachable();
        }
        self.take_written(Duration::ZERO, cx)?;
        // Waiting for the writer is no backlog: the thread need not spin.
        self.backlog = !drained && !self.writer.is_full();
        if drained {
            self.check_positions(cx)?;
        }
        self.collect_done(cx, &mut outcomes)?;
        Ok(outcomes)
    }

    /// Offers the writer, store by store, what found its queue full.
    fn hand_over_pending(&mut self, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
        for (&task, restore) in &mut self.tasks {
            for (i, s) in restore.stores.iter_mut().enumerate() {
                if self.writer.is_full() {
                    return Ok(());
                }
                hand_over_pending(&mut self.writer, task, i, s, cx)?;
            }
        }
        Ok(())
    }

    /// Whether any store is reading its changelog.
    fn reading(&self) -> bool {
        self.tasks.values().any(|t| t.stores.iter().any(|s| matches!(s.phase, Phase::Reading)))
    }

    /// Appends up to `max` (at least one) next fetched changelog records
    /// to `out`, waiting up to `wait` for the first; returns the consumer's error if there was one
    /// (the records after it are appended too).
    fn fetch(&mut self, wait: Duration, max: usize, out: &mut Vec<RawRecord>) -> Option<KafkaError> {
        // The consumer queue first, without waiting unless there is no
        // fetch queue: its errors, and the records of a partition that could
        // not be forwarded (all of them arrive there, so their order holds).
        match self.consumer.poll(if self.fetch.is_some() { Duration::ZERO } else { wait }) {
            Some(Ok(m)) => out.push(super::message::to_raw(&m)),
            Some(Err(e)) => return Some(e),
            None => {}
        }
        let fetch = self.fetch.as_mut()?;
        match max.saturating_sub(out.len()) {
            0 => None,
            left => fetch.consume_at_most(if out.is_empty() { wait } else { Duration::ZERO }, left, out),
        }
    }

    /// Forwards the assigned partitions to the fetch queue again. A
    /// partition unassigned and soon assigned again could have the stop of
    /// its first fetch, which librdkafka carries out later on another
    /// thread, end the forwarding set up for the second: its records would
    /// then wait where nobody reads them. Forwarding again moves them, in
    /// order, to the fetch queue; forwarding a partition that is forwarded
    /// changes nothing.
    fn reattach(&mut self) {
        self.attached = Instant::now();
        let Some(fetch) = &self.fetch else { return };
        if !self.assignment.is_empty() {
            fetch.attach(&partition_list(&self.assignment));
        }
    }

    /// Takes the outcomes of the writes that ended, waiting up to `wait`
    /// for one when none has.
    fn take_written(&mut self, wait: Duration, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
        let mut written = Vec::new();
        self.writer.take(wait, &mut written)?;
        for w in written {
            self.on_written(w, cx)?;
        }
        Ok(())
    }

    /// A batch was written (or failed to be): its records count as
    /// restored, and a store read to its end with nothing left to write is
    /// restored.
    fn on_written(&mut self, w: Written, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
        let Some(restore) = self.tasks.get_mut(&w.task) else {
            // Not possible: a task is removed only once its writes ended.
            return w.result;
        };
        let Some(s) = restore.stores.get_mut(w.store_index) else { return w.result };
        s.queued = s.queued.saturating_sub(1);
        w.result?;
        // A write is progress too: a store waiting for room at the writer
        // reads nothing meanwhile.
        restore.last_progress = Instant::now();
        s.restored += w.records;
        Counters::add(&cx.retry.counters.restored, w.records);
        cx.report(w.task, s);
        if let Some(l) = cx.listener {
            l.on_batch_restored(w.task, s.store.name(), w.offset, w.records);
        }
        if matches!(s.phase, Phase::Applying) && s.queued == 0 && s.handed_over() {
            end(w.task, s, cx);
        }
        Ok(())
    }

    fn watermarks(
        &self,
        uncommitted: bool,
        topic: &str,
        partition: i32,
        retry: RetryPolicy<'_>,
    ) -> Result<(i64, i64), StreamsError> {
        let consumer = match (&self.probe, uncommitted) {
            (Some(p), true) => p,
            _ => &self.consumer,
        };
        retry.run(|| {
            consumer
                .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
                .map_err(|e| kafka_error(format!("reading the end of changelog {topic}-{partition}"), &e))
        })
    }

    /// Looks again at changelogs waiting for an open transaction to end.
    fn check_stable_ends(&mut self, cx: RestoreContext<'_>, outcomes: &mut Vec<Restored>) -> Result<(), StreamsError> {
        let now = Instant::now();
        let mut due = Vec::new();
        for (id, restore) in &self.tasks {
            for (i, s) in restore.stores.iter().enumerate() {
                if let Phase::AwaitingStable { next_check, .. } = s.phase {
                    if now >= next_check {
                        due.push((*id, i));
                    }
                }
            }
        }
        let mut corrupted = Vec::new();
        for (id, i) in due {
            let topic = self.tasks[&id].stores[i].topic.clone();
            let (low, stable) = self.watermarks(false, &topic, id.partition, cx.retry)?;
            let Some(restore) = self.tasks.get_mut(&id) else { continue };
            let s = &mut restore.stores[i];
            let Phase::AwaitingStable { written, since, next_check, backoff } = &mut s.phase else { continue };
            // Where the restore stops: the stable end, or a checkpoint past it.
            let end = if stable < *written {
                if since.elapsed() < HANGING_TRANSACTION_AFTER.min(cx.retry.timeout) {
                    *backoff = (*backoff * 2).min(MAX_STABLE_BACKOFF);
                    *next_check = now + *backoff;
                    continue;
                }
                // A checkpoint is written only once its transaction has
                // committed: a checkpoint inside the open transaction means
                // it holds this task's own committed updates, whose markers
                // the coordinator lost (Kafka drops them when it finds the
                // partition without a leader while a restarted broker
                // re-registers). The store is right as checkpointed;
                // restoring to the stable end would wipe it and lose them.
                let kept = s.store.checkpoint().and_then(|c| i64::try_from(c).ok()).filter(|&c| c > stable);
                let outcome = match kept {
                    Some(_) => "holds updates this store committed; keeping the store as checkpointed",
                    None => "restoring up to the stable end",
                };
                tracing::warn!(
                    task = %id,
                    changelog = topic,
                    partition = id.partition,
                    stable,
                    written = *written,
                    checkpoint = ?kept,
                    waited_s = since.elapsed().as_secs(),
                    "a transaction on the changelog stays open (a hanging transaction: its coordinator \
                     will not end it); {outcome}. `kafka-transactions.sh find-hanging` shows it; this \
                     task's next commit on the partition ends it"
                );
                kept.unwrap_or(stable)
            } else {
                stable
            };
            restore.last_progress = Instant::now();
            match begin_reading(id, s, low, end, cx) {
                Ok(()) => self.reassign |= matches!(s.phase, Phase::Reading),
                Err(StreamsError::TaskCorrupted { reason, .. }) => corrupted.push((id, reason)),
                Err(e) => return Err(e),
            }
        }
        for (id, reason) in corrupted {
            self.unregister(id, cx, false);
            outcomes.push(Restored::Corrupted(id, reason));
        }
        Ok(())
    }

    /// Assigns the changelog partitions that began to be read, each at its
    /// next offset, and unassigns those read to their end. (Replacing the
    /// whole assignment would drop what was fetched for every other
    /// partition, and fetch it again, each time a store is read.)
    fn assign(&mut self) -> Result<(), StreamsError> {
        let mut wanted = BTreeMap::new();
        for (id, restore) in &self.tasks {
            for s in restore.stores.iter().filter(|s| matches!(s.phase, Phase::Reading)) {
                wanted.insert((s.topic.clone(), id.partition), s.next);
            }
        }
        let gone: Vec<(String, i32)> = self.assignment.iter().filter(|p| !wanted.contains_key(*p)).cloned().collect();
        if !gone.is_empty() {
            for p in &gone {
                self.assignment.remove(p);
            }
            self.unassign(&gone);
        }
        let mut new = TopicPartitionList::new();
        for ((topic, partition), next) in wanted.iter().filter(|(p, _)| !self.assignment.contains(*p)) {
            new.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| kafka_error("assigning changelog partitions", &e))?;
        }
        if new.count() > 0 {
            // Before their fetch starts: every record of theirs arrives on
            // the fetch queue.
            if let Some(fetch) = &self.fetch {
                fetch.attach(&new);
            }
            if let Err(e) = self.consumer.incremental_assign(&new) {
                self.resync_assignment();
                return Err(kafka_error("assigning changelog partitions", &e));
            }
        }
        self.assignment.extend(wanted.into_keys());
        self.reassign = false;
        Ok(())
    }

    /// Transaction markers end a changelog written under exactly-once: the
    /// position passes them though no record does.
    fn check_positions(&mut self, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
        if !self.reading() {
            return Ok(());
        }
        let positions = self.consumer.position().map_err(|e| kafka_error("reading restore positions", &e))?;
        for (&task, restore) in &mut self.tasks {
            for (i, s) in restore.stores.iter_mut().enumerate().filter(|(_, s)| matches!(s.phase, Phase::Reading)) {
                let pos = positions
                    .find_partition(&s.topic, task.partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(-1);
                if pos >= s.end {
                    finish(&mut self.writer, task, i, s, cx)?;
                    restore.last_progress = Instant::now();
                    self.reassign = true;
                }
            }
        }
        Ok(())
    }

    /// Unregisters the tasks whose stores are all done; a task that made no
    /// progress for `task.timeout.ms` fails the thread.
    fn collect_done(&mut self, cx: RestoreContext<'_>, outcomes: &mut Vec<Restored>) -> Result<(), StreamsError> {
        let done: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.stores.iter().all(|s| matches!(s.phase, Phase::Done)))
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.tasks.remove(&id);
            outcomes.push(Restored::Done(id));
        }
        if !outcomes.is_empty() {
            self.unassign_when_idle();
        }
        let stalled = self.tasks.iter().find(|(_, t)| {
            t.last_progress.elapsed() > cx.retry.timeout && t.stores.iter().any(|s| matches!(s.phase, Phase::Reading))
        });
        if let Some((id, _)) = stalled {
            let source =
                rdkafka::error::KafkaError::MessageConsumption(rdkafka::error::RDKafkaErrorCode::OperationTimedOut);
            return Err(StreamsError::TaskTimeout {
                timeout: cx.retry.timeout,
                source: Box::new(kafka_error(format!("restoring task {id}: no progress"), &source)),
            });
        }
        Ok(())
    }
}

/// The partitions as a list for librdkafka.
fn partition_list<'a>(partitions: impl IntoIterator<Item = &'a (String, i32)>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    tpl
}

/// Adds a fetched changelog record to its store's batch; returns whether
/// that store was read to its end (its last batch then handed to the
/// writer, or kept until the writer has room).
fn take_record(
    tasks: &mut BTreeMap<TaskId, TaskRestore>,
    writer: &mut RestoreWriter,
    record: RawRecord,
    now: Instant,
    cx: RestoreContext<'_>,
) -> Result<bool, StreamsError> {
    let (Some(partition), Some(offset)) = (record.partition, record.offset) else { return Ok(false) };
    let topic = &*record.topic;
    let hit = tasks.iter_mut().filter(|(id, _)| id.partition == partition).find_map(|(id, r)| {
        let i = r.stores.iter().position(|s| matches!(s.phase, Phase::Reading) && s.topic == topic)?;
        Some((*id, r, i))
    });
    // None: a leftover of an earlier assignment, never restored.
    let Some((task, restore, i)) = hit else { return Ok(false) };
    restore.last_progress = now;
    let s = &mut restore.stores[i];
    if let Some(key) = record.key {
        s.batch.push((key, record.value));
    }
    s.next = offset + 1;
    if s.batch.len() >= FLUSH_RECORDS {
        // Kept for a later step if the writer has no room.
        apply(writer, task, i, s, s.next, Handover::Offer)?;
    }
    if s.next >= s.end {
        finish(writer, task, i, s, cx)?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
