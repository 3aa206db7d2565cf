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

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::kafka_error;
use super::listener::{Counters, StateRestoreListener};
use super::retry::RetryPolicy;
use crate::error::StreamsError;
use crate::store::StoreEntry;
use crate::task_engine::TaskId;

/// Records applied to a store in one write (and checkpoint): small enough
/// that one write does not hold up the running tasks for long.
const FLUSH_RECORDS: usize = 10_000;
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

/// Where one store's restore stands.
enum Phase {
    /// Under exactly-once: the changelog has a transaction open that was
    /// written before the restore looked (see [`ChangelogReader::register`]);
    /// its stable end is checked again at `next_check`.
    AwaitingStable {
        written: i64,
        since: Instant,
        next_check: Instant,
        backoff: Duration,
    },
    /// Reading `start..end`.
    Reading,
    Done,
}

struct StoreRestore {
    store: StoreEntry,
    topic: String,
    phase: Phase,
    /// Where the restore began and where it ends (the stable end).
    start: i64,
    end: i64,
    /// The next offset to read.
    next: i64,
    batch: Vec<state_stores::ChangelogRecord>,
    restored: u64,
}

struct TaskRestore {
    stores: Vec<StoreRestore>,
    last_progress: Instant,
}

/// The clients and state of a thread's restores.
pub(crate) struct ChangelogReader {
    /// read_committed: aborted writes are never restored.
    consumer: BaseConsumer,
    /// read_uncommitted, under exactly-once only: how far a changelog is
    /// written, committed or not.
    probe: Option<BaseConsumer>,
    tasks: BTreeMap<TaskId, TaskRestore>,
    /// The consumer's assignment no longer matches the stores being read.
    reassign: bool,
    /// The consumer has changelog partitions assigned.
    assigned: bool,
    /// The last step stopped at its budget, not for want of fetched
    /// records: more are very likely waiting.
    backlog: bool,
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
    pub(crate) fn new(consumer: BaseConsumer, probe: Option<BaseConsumer>) -> Self {
        Self { consumer, probe, tasks: BTreeMap::new(), reassign: false, assigned: false, backlog: false }
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
    /// its checkpoint; what was read but not applied is dropped (read again
    /// next time).
    pub(crate) fn remove(&mut self, task: TaskId, cx: RestoreContext<'_>) {
        let Some(mut restore) = self.tasks.remove(&task) else { return };
        for s in &mut restore.stores {
            self.reassign |= matches!(s.phase, Phase::Reading);
            suspend(task, s, cx);
        }
        self.unassign_when_idle();
    }

    /// With nothing left to restore, lets the changelog partitions go.
    fn unassign_when_idle(&mut self) {
        // `unassign` waits for librdkafka's main thread: not called for
        // nothing (tasks closed before their first slice was read).
        if self.tasks.is_empty() {
            self.reassign = false;
            if std::mem::take(&mut self.assigned) {
                if let Err(e) = self.consumer.unassign() {
                    tracing::warn!(error = %e, "cannot unassign changelog partitions");
                }
            }
        }
    }

    /// Reads and applies up to `budget` changelog records over every
    /// restoring task, waiting up to `wait` for the first; returns the tasks
    /// that finished (or turned out corrupted).
    pub(crate) fn step(
        &mut self,
        budget: usize,
        wait: Duration,
        cx: RestoreContext<'_>,
    ) -> Result<Vec<Restored>, StreamsError> {
        let mut outcomes = Vec::new();
        self.check_stable_ends(cx, &mut outcomes)?;
        if self.reassign {
            self.assign()?;
        }
        let mut read = 0usize;
        let mut drained = false;
        while read < budget {
            let m = match self.consumer.poll(if read == 0 { wait } else { Duration::ZERO }) {
                None => {
                    drained = true;
                    break;
                }
                Some(Ok(m)) => m,
                // The cluster being away: the consumer reconnects and fetches
                // on by itself; the stall check below bounds the wait.
                Some(Err(e)) if super::errors::is_transient_poll_error(&e) => {
                    cx.retry.counters.cluster_unreachable(&e);
                    drained = true;
                    break;
                }
                Some(Err(e)) => return Err(kafka_error("reading a changelog", &e)),
            };
            read += 1;
            let (partition, topic) = (m.partition(), m.topic());
            let hit = self.tasks.iter_mut().filter(|(id, _)| id.partition == partition).find_map(|(id, r)| {
                let i = r.stores.iter().position(|s| matches!(s.phase, Phase::Reading) && s.topic == topic)?;
                Some((*id, r, i))
            });
            // None: a leftover of an earlier assignment, never restored.
            let Some((task, restore, i)) = hit else { continue };
            restore.last_progress = Instant::now();
            let s = &mut restore.stores[i];
            if let Some(key) = m.key() {
                s.batch.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
            }
            s.next = m.offset() + 1;
            if s.batch.len() >= FLUSH_RECORDS {
                apply(task, s, s.next, cx)?;
            }
            if s.next >= s.end {
                finish(task, s, cx)?;
                self.reassign = true;
            }
        }
        if read > 0 {
            cx.retry.counters.cluster_reachable();
        }
        self.backlog = !drained;
        if drained {
            self.check_positions(cx)?;
        }
        self.collect_done(cx, &mut outcomes)?;
        Ok(outcomes)
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
            self.remove(id, cx);
            outcomes.push(Restored::Corrupted(id, reason));
        }
        Ok(())
    }

    /// Assigns the changelog partitions being read, each at its next offset.
    fn assign(&mut self) -> Result<(), StreamsError> {
        let mut tpl = TopicPartitionList::new();
        for (id, restore) in &self.tasks {
            for s in restore.stores.iter().filter(|s| matches!(s.phase, Phase::Reading)) {
                tpl.add_partition_offset(&s.topic, id.partition, Offset::Offset(s.next))
                    .map_err(|e| kafka_error("assigning changelog partitions", &e))?;
            }
        }
        self.consumer.assign(&tpl).map_err(|e| kafka_error("assigning changelog partitions", &e))?;
        self.reassign = false;
        self.assigned = true;
        Ok(())
    }

    /// Transaction markers end a changelog written under exactly-once: the
    /// position passes them though no record does.
    fn check_positions(&mut self, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
        if !self.tasks.values().any(|t| t.stores.iter().any(|s| matches!(s.phase, Phase::Reading))) {
            return Ok(());
        }
        let positions = self.consumer.position().map_err(|e| kafka_error("reading restore positions", &e))?;
        for (&task, restore) in &mut self.tasks {
            for s in restore.stores.iter_mut().filter(|s| matches!(s.phase, Phase::Reading)) {
                let pos = positions
                    .find_partition(&s.topic, task.partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(-1);
                if pos >= s.end {
                    finish(task, s, cx)?;
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

/// A checkpoint past the changelog's end means the local state is not the
/// changelog's: the task is corrupted.
fn check_checkpoint(task: TaskId, s: &StoreRestore, end: i64) -> Result<(), StreamsError> {
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
fn begin_reading(
    task: TaskId,
    s: &mut StoreRestore,
    low: i64,
    end: i64,
    cx: RestoreContext<'_>,
) -> Result<(), StreamsError> {
    check_checkpoint(task, s, end)?;
    let checkpoint = s.store.checkpoint().and_then(|c| i64::try_from(c).ok());
    let start = checkpoint.unwrap_or(low).max(low);
    (s.start, s.end, s.next) = (start, end, start);
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

/// Applies what is read of a store, up to `offset`, as one write with its checkpoint.
fn apply(task: TaskId, s: &mut StoreRestore, offset: i64, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
    if s.batch.is_empty() && s.store.checkpoint().and_then(|c| i64::try_from(c).ok()) == Some(offset) {
        return Ok(());
    }
    let n = s.batch.len() as u64;
    let mut records = std::mem::take(&mut s.batch).into_iter();
    s.store.restore_batch(&mut records, u64::try_from(offset).unwrap_or(0))?;
    s.restored += n;
    Counters::add(&cx.retry.counters.restored, n);
    cx.report(task, s);
    if let Some(l) = cx.listener {
        l.on_batch_restored(task, s.store.name(), offset, n);
    }
    Ok(())
}

/// Applies the rest of a store's changelog, up to its end, and ends its restore.
fn finish(task: TaskId, s: &mut StoreRestore, cx: RestoreContext<'_>) -> Result<(), StreamsError> {
    apply(task, s, s.end, cx)?;
    uncount_unread(s, cx.retry.counters);
    s.phase = Phase::Done;
    cx.report(task, s);
    tracing::info!(%task, store = s.store.name(), restored = s.restored, "restored");
    if let Some(l) = cx.listener {
        l.on_restore_end(task, s.store.name(), s.restored);
    }
    Ok(())
}

/// Ends a store's restore before its changelog's end (its task closes, or
/// could not be registered): what it did not read is no longer "to
/// restore". A store that was not reading is left as it is.
fn suspend(task: TaskId, s: &mut StoreRestore, cx: RestoreContext<'_>) {
    if !matches!(s.phase, Phase::Reading) {
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
fn uncount_unread(s: &StoreRestore, counters: &Counters) {
    let unread = u64::try_from(s.end - s.start).unwrap_or(0).saturating_sub(s.restored);
    // Never below zero, even if the counters were reset meanwhile.
    let _ = counters
        .restore_total
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |total| Some(total.saturating_sub(unread)));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};

    use super::*;
    use crate::serde::StringSerde;
    use crate::store::{StoreContext, Stores};

    #[test]
    fn a_step_stopped_by_its_budget_leaves_a_backlog_and_the_last_one_none() -> Result<(), Box<dyn std::error::Error>> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic("app-s-changelog", 1, 1)?;
        let producer: BaseProducer =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create()?;
        for i in 0..12 {
            let key = format!("k{i}");
            producer.send(BaseRecord::to("app-s-changelog").key(&key).payload("v").partition(0)).map_err(|(e, _)| e)?;
        }
        producer.flush(Duration::from_secs(10))?;
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "restore-test")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()?;
        // In memory: nothing is written under the task directory.
        let ctx = StoreContext {
            task_dir: std::env::temp_dir().join("restore-test-unused"),
            rocksdb: Default::default(),
            cache_max_bytes: 0,
            timed_operations: false,
        };
        let store = Stores::key_value_store_builder(Stores::in_memory_key_value_store("s"), StringSerde, StringSerde)
            .build(&ctx, "app-s-changelog".to_owned())?;
        let counters = Counters::default();
        let progress = Mutex::default();
        let cx = RestoreContext {
            listener: None,
            retry: RetryPolicy { timeout: Duration::from_secs(30), counters: &counters },
            progress: &progress,
        };
        let task = TaskId { subtopology: 0, partition: 0 };
        let mut reader = ChangelogReader::new(consumer, None);
        assert!(reader.register(task, std::iter::once((&store, "app-s-changelog")), cx)?);
        assert!(!reader.has_backlog(), "nothing read yet");
        // Slices of 5 over 12 records: the slices that stop at their budget
        // leave a backlog, and once the task is done there is none.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut backlogs = 0;
        loop {
            assert!(Instant::now() < deadline, "the restore did not end");
            let outcomes = reader.step(5, Duration::from_millis(100), cx)?;
            backlogs += usize::from(reader.has_backlog());
            if outcomes.iter().any(|o| matches!(o, Restored::Done(t) if *t == task)) {
                break;
            }
        }
        assert!(backlogs >= 1, "no slice stopped at its budget");
        assert!(!reader.has_backlog(), "a backlog left once every store is restored");
        assert_eq!(counters.restored.load(Ordering::Relaxed), 12);
        Ok(())
    }
}
