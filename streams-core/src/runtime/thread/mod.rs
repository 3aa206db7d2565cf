//! A stream thread: one group consumer and one producer, the tasks of the
//! partitions assigned to it, and the commit protocol of DESIGN.md.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, kafka_error};
use super::errors::{is_transient_poll_error, ErrorClass, KafkaCallError};
use super::fetch::FetchQueue;
use super::listener::Counters;
use super::message::{now_ms, to_raw};
use super::output::Output;
use super::partition_group::PartitionGroup;
use super::restore;
use super::retry::RetryPolicy;
use super::stream_task::{StreamTask, MAX_BUFFERED};
use super::{Env, ThreadStatus};
use crate::config::{ErrorHandling, ProcessingGuarantee};
use crate::error::{ProcessorError, StreamsError};
use crate::serde::SerdeError;
use crate::store::StoreContext;
use crate::task_engine::{TaskEngine, TaskId};
use crate::topology::RawRecord;
use offsets::{AssignmentStarts, GroupOffsets};

mod context;
mod offsets;

/// Records polled per loop before processing.
const POLL_BATCH: usize = 2000;
/// How long a new task waits at most for the first records of partitions
/// that have some.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(30);
/// Records a task processes per loop before others get a turn.
const PROCESS_BATCH: usize = 1000;
/// Changelog records restored per loop while some tasks run: a slice small
/// enough to keep the running tasks' latency, large enough to restore at
/// hundreds of thousands of records a second.
const RESTORE_SLICE: usize = 5_000;
/// ... and while every task restores.
const RESTORE_ONLY_SLICE: usize = 50_000;
/// How long a running task's input partition may stay without a fetch
/// position before the thread reports it as an error.
const POSITIONLESS_REPORT_AFTER: Duration = Duration::from_secs(60);
/// How often the thread looks for such partitions.
const POSITION_WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the consumer's rebalance callbacks and the loop share.
struct ThreadState {
    env: Arc<Env>,
    index: usize,
    tasks: BTreeMap<TaskId, StreamTask>,
    output: Output,
    /// The restores of this thread's new tasks, read beside processing.
    changelogs: restore::ChangelogReader,
    /// What was read of the assignment to come when it arrived.
    starts: AssignmentStarts,
    /// An assignment the loop has not acted on yet.
    assigned: Option<TopicPartitionList>,
    /// An error raised inside a callback, for the loop to report.
    error: Option<StreamsError>,
    last_commit: Instant,
    /// Processed anything since the last commit.
    dirty: bool,
    /// Partitions this thread paused and has not resumed. librdkafka keeps
    /// a partition's pause through revocation and reassignment, so this
    /// outlives the tasks (see [`Self::resume_paused`]).
    paused: BTreeSet<(String, i32)>,
    /// Since when commits fail and the work is rolled back; past
    /// `task.timeout.ms` the error goes to the handler.
    failing_since: Option<Instant>,
    /// Watching for input partitions left without a fetch position.
    positions: PositionWatch,
}

/// Input partitions of running tasks that have no fetch position: librdkafka
/// starts fetching a partition at the group's committed offset, and under
/// exactly-once it reads only a stable one. A transaction on the group's
/// offsets that never ends (a hanging transaction: Kafka can leave one when a
/// broker is killed mid-commit) keeps the offsets unstable, and the
/// partitions unread, for good. Nothing here can end it; the thread reports
/// it once, loudly, with the remedy.
#[derive(Debug)]
struct PositionWatch {
    last_check: Instant,
    since: Option<Instant>,
    reported: bool,
}

impl PositionWatch {
    fn new() -> Self {
        Self { last_check: Instant::now(), since: None, reported: false }
    }
}

/// How this instance retries calls to the cluster.
fn policy(env: &Env) -> RetryPolicy<'_> {
    RetryPolicy { timeout: env.config.task_timeout, counters: &env.counters }
}

/// Where restores report, and how they retry.
fn restore_context(env: &Env) -> restore::RestoreContext<'_> {
    restore::RestoreContext {
        listener: env.restore_listener.as_deref(),
        retry: policy(env),
        progress: &env.metrics.restoring,
    }
}

struct ThreadContext {
    state: Arc<Mutex<ThreadState>>,
    env: Arc<Env>,
    index: usize,
    /// Bumped by every rebalance callback: records polled before it belong
    /// to tasks that are closed; records polled after it, to the new ones.
    rebalances: AtomicU64,
    /// Where the assigned partitions' records go (see `fetch`); set once the
    /// consumer exists, taken out again before it goes ([`FetchGuard`]).
    fetch: Mutex<Option<FetchQueue>>,
}

/// Destroys the thread's fetch queue before its consumer: librdkafka
/// requires a client's queues gone before the client.
struct FetchGuard<'c>(&'c BaseConsumer<ThreadContext>);

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        drop(lock(&self.0.context().fetch).take());
    }
}

fn lock<T>(state: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the state leaves tasks that are closed dirty on
    // the error path anyway; the data is still safe to inspect.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ThreadState {
    fn eos(&self) -> bool {
        self.env.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
    }

    /// The commit of DESIGN.md: flush caches into the open transaction,
    /// send the consumed offsets with it, commit it, then commit each store's
    /// batch with the changelog offset it reached.
    fn commit(&mut self, consumer: &BaseConsumer<ThreadContext>) -> Result<(), StreamsError> {
        self.last_commit = Instant::now();
        if !self.dirty && !self.output.has_open_transaction() {
            return Ok(());
        }
        let started = Instant::now();
        let wall = now_ms();
        // A restoring task has processed nothing: nothing to flush or commit.
        for task in self.tasks.values_mut().filter(|t| !t.restoring) {
            task.engine.flush(&mut self.output, wall)?;
        }
        let mut offsets = TopicPartitionList::new();
        for (id, task) in &self.tasks {
            for (topic, next) in task.group.consumed() {
                offsets
                    .add_partition_offset(topic, id.partition, Offset::Offset(next))
                    .map_err(|e| kafka_error("building the offsets to commit", &e))?;
            }
        }
        if self.eos() && offsets.count() > 0 {
            self.output.begin()?;
        }
        let group = consumer.group_metadata();
        let reached = self.output.commit(&offsets, group, policy(&self.env))?;
        if !self.eos() && offsets.count() > 0 {
            // Not retried here: the consumer finds its coordinator again and
            // rejoins only while it is polled. A failed commit abandons the
            // batch instead (at-least-once: it is redone from the last commit).
            consumer.commit(&offsets, CommitMode::Sync).map_err(|e| {
                let class = match super::errors::by_code(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)) {
                    c @ (ErrorClass::Fatal | ErrorClass::Fenced) => c,
                    _ => ErrorClass::Abortable,
                };
                KafkaCallError::with_class("committing offsets", e, class)
            })?;
        }
        for (id, task) in self.tasks.iter_mut().filter(|(_, t)| !t.restoring) {
            let checkpointed = task.engine.commit_stores_at(&reached)?;
            if checkpointed && task.group.consumed().next().is_some() {
                let mut positions = super::guard(&self.env.store_positions);
                let position = positions.entry(*id).or_default();
                position.extend(task.group.consumed().map(|(t, o)| (t.to_owned(), o)));
            }
            task.group.committed();
        }
        self.failing_since = None;
        Counters::add(&self.env.counters.commits, 1);
        self.env.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
        Counters::add(&self.env.counters.produced, std::mem::take(&mut self.output.sent));
        self.dirty = false;
        Ok(())
    }

    /// Closes every task: cleanly after a commit, or dropping what is not
    /// committed (stores roll back to their last commit).
    fn close_tasks(&mut self, clean: bool) {
        {
            let mut listed = super::guard(&self.env.local_stores);
            for id in self.tasks.keys() {
                listed.remove(id);
            }
        }
        for (id, task) in std::mem::take(&mut self.tasks) {
            self.changelogs.remove(id, restore_context(&self.env));
            close_engine(id, task, clean);
            // The stores are released: a standby copy may open them now.
            self.env.standbys.deactivate(id);
        }
        self.env.set_thread_tasks(self.index, Vec::new());
    }

    /// Resumes the partitions of `assigned` that back-pressure paused for
    /// tasks that are gone: their new tasks start with empty queues (and
    /// back-pressure pauses them again while they restore).
    ///
    /// Only those: resuming a partition the application did not pause is
    /// not a no-op inside librdkafka while the library itself holds it
    /// paused (as it does during a rebalance). Its fetch version is bumped
    /// anyway, and the fetcher restarts from the partition's last recorded
    /// start, which can lie before records already delivered.
    fn resume_paused(&mut self, consumer: &BaseConsumer<ThreadContext>, assigned: &TopicPartitionList) {
        let mut resume = TopicPartitionList::new();
        for e in assigned.elements() {
            if self.paused.remove(&(e.topic().to_owned(), e.partition())) {
                resume.add_partition(e.topic(), e.partition());
            }
        }
        if resume.count() > 0 {
            if let Err(e) = consumer.resume(&resume) {
                tracing::warn!(error = %e, "cannot resume partitions paused for earlier tasks");
            }
        }
    }

    /// Creates the tasks of a new assignment and restores their stores.
    fn take_assignment(
        &mut self,
        partitions: TopicPartitionList,
        consumer: &BaseConsumer<ThreadContext>,
    ) -> Result<(), StreamsError> {
        self.resume_paused(consumer, &partitions);
        let AssignmentStarts { unfetched: waiting, group_offsets, .. } = std::mem::take(&mut self.starts);
        let ids: BTreeSet<TaskId> = partitions
            .elements()
            .iter()
            .filter_map(|e| {
                self.env.topic_sub.get(e.topic()).map(|&s| TaskId { subtopology: s, partition: e.partition() })
            })
            .collect();
        tracing::info!(thread = self.index, tasks = ?ids.iter().map(ToString::to_string).collect::<Vec<_>>(), "assigned");
        let wall = now_ms();
        for id in ids {
            if self.tasks.contains_key(&id) {
                continue;
            }
            let mut task = self.open_task(id, wall, group_offsets.as_ref())?;
            for ((topic, partition), end) in &waiting {
                if *partition == id.partition && self.env.topic_sub.get(topic) == Some(&id.subtopology) {
                    task.group.unfetched.insert(topic.clone(), *end);
                }
            }
            task.group.wait_deadline = Instant::now() + FIRST_FETCH_WAIT;
            self.tasks.insert(id, task);
        }
        self.env.set_thread_tasks(self.index, self.tasks.keys().copied().collect());
        self.list_stores();
        Ok(())
    }

    /// Lists the stores of this thread's tasks for interactive queries.
    fn list_stores(&self) {
        let mut listed = super::guard(&self.env.local_stores);
        for (id, task) in self.tasks.iter().filter(|(_, t)| !t.restoring) {
            listed.insert(*id, task.engine.owned_stores().map(|(n, s)| (n.to_owned(), s.clone())).collect());
        }
    }

    /// Creates a task's engine and restores its stores from their
    /// checkpoints; a task whose state is out of step with its changelog, or
    /// ahead of the group's committed offsets (`group_offsets`, by topic and
    /// partition), is wiped and restored from scratch.
    fn open_task(
        &mut self,
        id: TaskId,
        wall: i64,
        group_offsets: Option<&GroupOffsets>,
    ) -> Result<StreamTask, StreamsError> {
        let env = Arc::clone(&self.env);
        // A standby copy held here hands its stores over (closing them) and
        // the restore below continues from its checkpoint.
        env.standbys.activate(id);
        let sub = env
            .subtopologies
            .iter()
            .find(|s| s.id == id.subtopology)
            .ok_or_else(|| StreamsError::IllegalState(format!("assigned task {id} of unknown sub-topology")))?;
        let store_context = StoreContext {
            task_dir: self.env.config.task_dir(id),
            rocksdb: self.env.rocksdb.clone(),
            cache_max_bytes: self.env.cache_per_thread(),
            timed_operations: self.env.config.metrics_recording_level.times_store_operations(),
        };
        let ahead = group_offsets.and_then(|group| {
            super::guard(&self.env.store_positions).get(&id).and_then(|p| group.ahead_of(p, id.partition))
        });
        if let Some(reason) = ahead {
            // The transaction the stores' last commit went with did not
            // commit after all: their checkpoint cannot be trusted.
            tracing::warn!(task = %id, %reason, "stores ahead of the group's committed offsets; wiping local state");
            self.wipe_task_state(id, &store_context.task_dir)?;
        }
        let (engine, restoring) = match self.create_task(id, &sub.nodes, &store_context, wall) {
            Err(StreamsError::TaskCorrupted { task, reason }) => {
                // As Kafka Streams: wipe the task's state and rebuild it
                // from the changelog.
                tracing::warn!(%task, %reason, "wiping local state and restoring it from the changelog");
                self.wipe_task_state(id, &store_context.task_dir)?;
                self.create_task(id, &sub.nodes, &store_context, wall)?
            }
            other => other?,
        };
        let inputs = env.sub_topics.get(&id.subtopology).map(Vec::as_slice).unwrap_or_default();
        let mut task = StreamTask::new(engine, PartitionGroup::new(inputs, env.config.max_task_idle));
        task.restoring = restoring;
        Ok(task)
    }

    /// Deletes a task's local state (its stores are closed), and what is
    /// known of the input its stores went with.
    fn wipe_task_state(&self, id: TaskId, dir: &std::path::Path) -> Result<(), StreamsError> {
        super::guard(&self.env.store_positions).remove(&id);
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StreamsError::StateDir { path: dir.to_path_buf(), source: e })
            }
            _ => Ok(()),
        }
    }

    /// Recovers from an error of the work since the last commit, if it can
    /// be recovered from here: the transaction is aborted, every task is
    /// closed without committing and opened again from its stores' last
    /// checkpoint, and the consumer rewound to the last committed offsets.
    /// Errors that need new clients (fenced, fatal) or the handler go up.
    fn recover(&mut self, consumer: &BaseConsumer<ThreadContext>, error: StreamsError) -> Result<(), StreamsError> {
        if !matches!(error.kafka_class(), Some(ErrorClass::Abortable | ErrorClass::Retriable)) {
            return Err(error);
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.env.config.task_timeout {
            return Err(StreamsError::TaskTimeout { timeout: self.env.config.task_timeout, source: Box::new(error) });
        }
        Counters::add(&self.env.counters.aborted_transactions, 1);
        tracing::warn!(
            thread = self.index,
            %error,
            "rolling back to the last commit: aborting the transaction, rewinding the input, reopening the tasks"
        );
        let env = Arc::clone(&self.env);
        self.output.abort(policy(&env))?;
        // Under exactly-once the group's committed offsets are the truth, not
        // what this thread believes it committed: a commit that failed on
        // this side may have committed on the broker, and the reverse.
        let group = if self.eos() { Some(self.read_group_offsets(consumer)?) } else { None };
        let mut rewind = TopicPartitionList::new();
        for (id, task) in &self.tasks {
            for topic in env.sub_topics.get(&id.subtopology).into_iter().flatten() {
                let committed = group.as_ref().and_then(|g| g.get(topic, id.partition));
                if let Some(offset) = committed.or_else(|| task.group.rewind(topic)) {
                    rewind
                        .add_partition_offset(topic, id.partition, Offset::Offset(offset))
                        .map_err(|e| kafka_error("listing the offsets to rewind to", &e))?;
                }
            }
        }
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        self.close_tasks(false);
        if let Ok(assignment) = consumer.assignment() {
            self.resume_paused(consumer, &assignment);
        }
        if rewind.count() > 0 {
            // A partition left where it is would skip the records given
            // up: if it cannot be rewound, new clients start from the
            // committed offsets instead.
            let rewound = consumer.seek_partitions(rewind, Duration::from_secs(10)).map_err(|e| {
                KafkaCallError::with_class("rewinding the input to the last commit", e, ErrorClass::Fatal)
            })?;
            if let Some(e) = rewound.elements().iter().find_map(|e| e.error().err()) {
                return Err(
                    KafkaCallError::with_class("rewinding the input to the last commit", e, ErrorClass::Fatal).into()
                );
            }
        }
        let wall = now_ms();
        for id in ids {
            let task = self.open_task(id, wall, group.as_ref())?;
            self.tasks.insert(id, task);
        }
        self.env.set_thread_tasks(self.index, self.tasks.keys().copied().collect());
        self.list_stores();
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Builds a task's engine and registers its stores for restoring (true:
    /// it has something to restore); on failure the engine is closed
    /// (releasing its store files).
    fn create_task(
        &mut self,
        id: TaskId,
        nodes: &[usize],
        store_context: &StoreContext,
        wall: i64,
    ) -> Result<(TaskEngine, bool), StreamsError> {
        let env = Arc::clone(&self.env);
        let mut engine = TaskEngine::new(
            &env.topology,
            Some(nodes),
            &env.global_stores,
            id,
            &env.config.application_id,
            &mut self.output,
            wall,
            store_context,
        )?;
        let registered = self.changelogs.register(id, engine.changelogs(), restore_context(&env));
        match registered {
            Ok(restoring) => Ok((engine, restoring)),
            Err(e) => {
                let _ = engine.close();
                Err(e)
            }
        }
    }

    /// Restores the next slice of the restoring tasks' changelogs. Tasks that
    /// are done start running and are listed for queries; one whose state
    /// turned out corrupted is wiped and opened again (restoring from
    /// scratch). The thread is RUNNING once nothing restores.
    fn restore_step(&mut self) -> Result<(), StreamsError> {
        if let Some(e) = self.changelogs.take_failure() {
            return Err(e);
        }
        if !self.changelogs.is_restoring() {
            return Ok(());
        }
        let env = Arc::clone(&self.env);
        // With tasks running, the input consumer's poll does the waiting
        // (a record for them ends it at once) and the restore takes what
        // was fetched meanwhile, a slice at a time.
        let (budget, wait) = if self.running_tasks() {
            (RESTORE_SLICE, Duration::ZERO)
        } else {
            (RESTORE_ONLY_SLICE, Duration::from_millis(20))
        };
        let outcomes = self.changelogs.step(budget, wait, restore_context(&env))?;
        if outcomes.is_empty() {
            return Ok(());
        }
        let wall = now_ms();
        for outcome in outcomes {
            match outcome {
                restore::Restored::Done(id) => {
                    if let Some(task) = self.tasks.get_mut(&id) {
                        task.restoring = false;
                        // The wait for first fetches starts when the task can use them.
                        task.group.wait_deadline = Instant::now() + FIRST_FETCH_WAIT;
                    }
                }
                restore::Restored::Corrupted(id, reason) => {
                    tracing::warn!(task = %id, %reason, "wiping local state and restoring it from the changelog");
                    let Some(mut task) = self.tasks.remove(&id) else { continue };
                    let unfetched = std::mem::take(&mut task.group.unfetched);
                    // Received while it restored: the consumer is past them.
                    let buffered = task.group.take_buffered();
                    close_engine(id, task, false);
                    self.wipe_task_state(id, &env.config.task_dir(id))?;
                    let mut task = self.open_task(id, wall, None)?;
                    task.group.unfetched = unfetched;
                    for record in buffered {
                        // In offset order, as they were received: none is given back.
                        let _ = task.group.push(record);
                    }
                    self.tasks.insert(id, task);
                }
            }
        }
        self.list_stores();
        if !self.changelogs.is_restoring() {
            env.set_thread_status(self.index, ThreadStatus::Running);
        }
        Ok(())
    }

    /// Whether some task here processes (is not restoring).
    fn running_tasks(&self) -> bool {
        self.tasks.values().any(|t| !t.restoring)
    }

    /// Processes buffered records, a batch per task in turn.
    fn process(&mut self) -> Result<usize, StreamsError> {
        let wall = now_ms();
        let mut total = 0;
        for (id, task) in self.tasks.iter_mut() {
            let dropped_before: u64 = task.engine.dropped_records().values().sum();
            if task.restoring {
                continue;
            }
            // `next_record` asks the group whether the task may take a record
            // before each one.
            for _ in 0..PROCESS_BATCH {
                let Some(record) = task.group.next_record() else { break };
                if let Err(failed) = task.engine.process_record(record, &mut self.output, wall) {
                    let (error, raw) = *failed;
                    handle_error(&self.env, *id, &mut self.output, error, raw)?;
                }
                total += 1;
            }
            task.engine.punctuate_wall_clock(&mut self.output, wall)?;
            let dropped: u64 = task.engine.dropped_records().values().sum::<u64>() - dropped_before;
            if dropped > 0 {
                Counters::add(&self.env.counters.dropped, dropped);
                for (reason, &total) in task.engine.dropped_records() {
                    let reported = task.reported_drops.entry(reason).or_default();
                    self.env.metrics.dropped(reason, total - *reported);
                    *reported = total;
                }
                tracing::warn!(task = %id, dropped, reasons = ?task.engine.dropped_records(), "records dropped");
            }
        }
        if total > 0 {
            self.dirty = true;
            Counters::add(&self.env.counters.processed, total as u64);
        }
        Ok(total)
    }

    /// How long until the next commit is due, when there is something to
    /// commit.
    fn until_commit(&self, commit_interval: Duration) -> Option<Duration> {
        (self.dirty || self.output.has_open_transaction())
            .then(|| commit_interval.saturating_sub(self.last_commit.elapsed()))
    }

    /// Processes what is buffered and commits when due; returns the records processed.
    fn step(
        &mut self,
        consumer: &BaseConsumer<ThreadContext>,
        commit_interval: Duration,
    ) -> Result<usize, StreamsError> {
        self.check_fetch_positions(consumer);
        let processed = self.process()?;
        self.back_pressure(consumer)?;
        if self.last_commit.elapsed() >= commit_interval {
            self.commit(consumer)?;
        }
        Ok(processed)
    }

    /// Reports input partitions of running tasks that stay without a fetch
    /// position (see [`PositionWatch`]); checked at most once a second.
    fn watch_positions(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.positions.last_check.elapsed() < POSITION_WATCH_EVERY {
            return;
        }
        self.positions.last_check = Instant::now();
        let Ok(positions) = consumer.position() else { return };
        let stuck: Vec<String> = positions
            .elements()
            .iter()
            .filter(|e| !matches!(e.offset(), Offset::Offset(_)))
            .filter(|e| {
                self.env.topic_sub.get(e.topic()).is_some_and(|&subtopology| {
                    self.tasks.get(&TaskId { subtopology, partition: e.partition() }).is_some_and(|t| !t.restoring)
                })
            })
            .map(|e| format!("{}-{}", e.topic(), e.partition()))
            .collect();
        // While the cluster is away nothing has a position for long, and
        // nothing is wrong with the group's offsets.
        let cluster_away = self.env.counters.unreachable_since_ms.load(Ordering::Relaxed) != 0;
        if stuck.is_empty() || cluster_away {
            self.positions.since = None;
            self.positions.reported = false;
            return;
        }
        let since = *self.positions.since.get_or_insert_with(Instant::now);
        if !self.positions.reported && since.elapsed() >= POSITIONLESS_REPORT_AFTER {
            self.positions.reported = true;
            tracing::error!(
                thread = self.index,
                partitions = ?stuck,
                waited_s = since.elapsed().as_secs(),
                "input partitions get no fetch position: the group's committed offsets cannot be read. \
                 Most likely a transaction on the group's offsets stays open (a hanging transaction, which \
                 Kafka can leave when a broker is killed mid-commit); `kafka-transactions.sh find-hanging \
                 --broker-id N` lists it and `kafka-transactions.sh abort` ends it, after which these \
                 partitions are read"
            );
        }
    }

    /// Pauses partitions whose queues are full and resumes drained ones.
    fn back_pressure(&mut self, consumer: &BaseConsumer<ThreadContext>) -> Result<(), StreamsError> {
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        for (id, task) in &self.tasks {
            for topic in self.env.sub_topics.get(&id.subtopology).into_iter().flatten() {
                let key = (topic.clone(), id.partition);
                let len = task.group.queue_len(topic);
                // A restoring task's input waits in the broker, not here.
                let full = len >= MAX_BUFFERED || task.restoring;
                if full && !self.paused.contains(&key) {
                    pause.add_partition(topic, id.partition);
                    self.paused.insert(key);
                } else if !full && len < MAX_BUFFERED / 4 && self.paused.contains(&key) {
                    resume.add_partition(topic, id.partition);
                    self.paused.remove(&key);
                }
            }
        }
        if pause.count() > 0 {
            consumer.pause(&pause).map_err(|e| kafka_error("pausing partitions", &e))?;
        }
        if resume.count() > 0 {
            consumer.resume(&resume).map_err(|e| kafka_error("resuming partitions", &e))?;
        }
        Ok(())
    }
}

/// Closes a task's processors and stores: after a commit, or dropping what
/// is not committed (its stores roll back to their last commit).
fn close_engine(id: TaskId, mut task: StreamTask, clean: bool) {
    if !clean {
        task.engine.abort_stores();
    }
    if let Err(e) = task.engine.close() {
        tracing::warn!(task = %id, error = %e, "closing task failed");
    }
}

/// Applies the configured handler to a record that failed: stop (the error
/// goes up), skip it, or write it to the dead-letter topic. Either way the
/// record is accounted for; nothing is dropped silently.
fn handle_error(
    env: &Env,
    task: TaskId,
    output: &mut Output,
    error: StreamsError,
    raw: RawRecord,
) -> Result<(), StreamsError> {
    // A registry that did not answer says nothing about the record: it is
    // retried (rolled back), not skipped or dead-lettered.
    if error.serde_error().is_some_and(SerdeError::is_retriable) {
        return Err(error);
    }
    let handling = match &error {
        StreamsError::Deserialization { .. } | StreamsError::InvalidTimestamp { .. } => {
            env.topology.deserialization_handling(&raw.topic).unwrap_or(&env.config.deserialization_handling)
        }
        // A failed send is the producer's trouble, not the record's: it is
        // rolled back and redone, never skipped.
        StreamsError::Processing { source, .. } if matches!(source.innermost(), ProcessorError::Send { .. }) => {
            return Err(error)
        }
        StreamsError::Processing { .. } => &env.config.processing_handling,
        _ => return Err(error),
    };
    let (topic, partition, offset) = (raw.topic.clone(), raw.partition.unwrap_or(-1), raw.offset.unwrap_or(-1));
    match handling {
        ErrorHandling::Fail => Err(error),
        ErrorHandling::LogAndContinue => {
            Counters::add(&env.counters.skipped, 1);
            tracing::warn!(%task, %topic, partition, offset, %error, "record skipped");
            Ok(())
        }
        ErrorHandling::DeadLetter(dlq) => {
            let mut headers = raw.headers.clone();
            let kind = match &error {
                StreamsError::Deserialization { .. } => "DeserializationError",
                StreamsError::InvalidTimestamp { .. } => "InvalidTimestamp",
                _ => "ProcessingError",
            };
            headers
                .add("__streams.errors.exception", Some(kind.as_bytes().to_vec()))
                .add("__streams.errors.message", Some(error.to_string().into_bytes()))
                .add("__streams.errors.topic", Some(topic.as_bytes().to_vec()))
                .add("__streams.errors.partition", Some(partition.to_string().into_bytes()))
                .add("__streams.errors.offset", Some(offset.to_string().into_bytes()))
                .add("__streams.errors.timestamp", Some(raw.timestamp.to_string().into_bytes()));
            let record = RawRecord { topic: dlq.as_str().into(), partition: None, offset: None, headers, ..raw };
            crate::task_engine::RecordCollector::send(output, record)
                .map_err(|source| StreamsError::Processing { metadata: None, source })?;
            Counters::add(&env.counters.dead_lettered, 1);
            tracing::warn!(%task, %topic, partition, offset, %error, dead_letter_topic = %dlq, "record dead-lettered");
            Ok(())
        }
    }
}

/// Runs one stream thread until the instance stops or an error ends it.
pub(crate) fn run(env: Arc<Env>, index: usize) -> Result<(), StreamsError> {
    let client_id = format!("{}-{}-StreamThread-{}", env.config.application_id, env.process_id, index + 1);
    let transactional_id = (env.config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2)
        .then(|| format!("{}-{}-{}", env.config.application_id, env.process_id, index + 1));
    let output = Output::new(
        &client::producer(&env.config, &format!("{client_id}-producer"), transactional_id.as_deref()),
        transactional_id.is_some(),
        policy(&env),
    )?;
    let restore_consumer: BaseConsumer = client::restore_consumer(&env.config, &format!("{client_id}-restore"))
        // A changelog is read to its end, then the next: a fetch left waiting
        // at an end would hold up the next task's offset queries.
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| kafka_error("creating the restore consumer", &e))?;
    let probe = match transactional_id {
        Some(_) => Some(
            client::restore_consumer(&env.config, &format!("{client_id}-probe"))
                .set("isolation.level", "read_uncommitted")
                .create()
                .map_err(|e| kafka_error("creating the changelog probe", &e))?,
        ),
        None => None,
    };
    let state = Arc::new(Mutex::new(ThreadState {
        env: Arc::clone(&env),
        index,
        tasks: BTreeMap::new(),
        output,
        changelogs: restore::ChangelogReader::new(restore_consumer, probe, format!("rivulet-restore-{}", index + 1)),
        starts: AssignmentStarts::default(),
        assigned: None,
        error: None,
        last_commit: Instant::now(),
        dirty: false,
        paused: BTreeSet::new(),
        failing_since: None,
        positions: PositionWatch::new(),
    }));
    let consumer: BaseConsumer<ThreadContext> = client::consumer(&env.config, &format!("{client_id}-consumer"))
        .create_with_context(ThreadContext {
            state: Arc::clone(&state),
            env: Arc::clone(&env),
            index,
            rebalances: AtomicU64::new(0),
            fetch: Mutex::new(None),
        })
        .map_err(|e| kafka_error("creating the consumer", &e))?;
    let fetch_guard = FetchGuard(&consumer);
    // SAFETY: `fetch_guard`, declared after the consumer and dropped before
    // it on every path, takes the queue out of the consumer's context first.
    #[allow(unsafe_code)]
    let fetch = unsafe { FetchQueue::new(&consumer, POLL_BATCH) };
    *lock(&consumer.context().fetch) = fetch;
    let topics: Vec<&str> = env.source_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).map_err(|e| kafka_error("subscribing", &e))?;
    let result = run_loop(&env, &state, &consumer);
    {
        let mut st = lock(&state);
        match &result {
            Ok(()) => {
                if let Err(e) = st.commit(&consumer) {
                    tracing::error!(error = %e, "final commit failed; closing the tasks without committing");
                    st.output.abort_or_log(policy(&env));
                    st.close_tasks(false);
                } else {
                    st.close_tasks(true);
                }
            }
            Err(e) => {
                // A fenced or broken producer cannot abort; the new producer's
                // initialisation aborts its open transaction on the broker.
                if !matches!(e.kafka_class(), Some(ErrorClass::Fenced | ErrorClass::Fatal)) {
                    st.output.abort_or_log(policy(&env));
                }
                st.close_tasks(false);
            }
        }
    }
    // Leaving the group revokes nothing more: the tasks are closed.
    consumer.unsubscribe();
    drop(fetch_guard);
    drop(consumer);
    result
}

/// A consumer error while polling: the cluster being away is waited out
/// (librdkafka reconnects and fetches on by itself; commits retry
/// meanwhile), anything else ends the thread.
fn consumer_error(env: &Env, e: rdkafka::error::KafkaError) -> Result<(), StreamsError> {
    if !is_transient_poll_error(&e) {
        return Err(kafka_error("polling the consumer", &e));
    }
    if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
        env.counters.cluster_unreachable(&e);
    } else {
        tracing::debug!(error = %e, "consumer error");
    }
    Ok(())
}

fn run_loop(
    env: &Arc<Env>,
    state: &Arc<Mutex<ThreadState>>,
    consumer: &BaseConsumer<ThreadContext>,
) -> Result<(), StreamsError> {
    let commit_interval = env.config.commit_interval();
    let mut batch: Vec<RawRecord> = Vec::with_capacity(POLL_BATCH);
    let mut idle = false;
    // Set before the loop and taken out after it.
    let has_fetch_queue = lock(&consumer.context().fetch).is_some();
    while !env.stop.load(Ordering::Acquire) {
        let (restoring, running, assigned, until_commit) = {
            let st = lock(state);
            // A restore with fetched records waiting counts as busy: an idle
            // running task must not make it wait on input (R1, word count's
            // stateless tasks idle beside 8 restoring ones: 5 ms per slice
            // of 5,000 records, half the restore's time).
            let restoring = st.changelogs.is_restoring();
            idle &= !st.changelogs.has_backlog();
            // Only an idle wait needs it: a busy loop does not wait.
            let until_commit = if idle { st.until_commit(commit_interval) } else { None };
            (restoring, st.running_tasks(), !st.tasks.is_empty(), until_commit)
        };
        let fetching = assigned && has_fetch_queue;
        // While stores restore, the wait is short: with no task running the
        // restore's read waits instead.
        let wait = match (idle, restoring, running) {
            (false, ..) | (true, true, false) => Duration::ZERO,
            (true, true, true) => Duration::from_millis(5),
            (true, false, _) => Duration::from_millis(50),
        };
        // An idle wait ends when a commit is due, or results processed just
        // before it would become visible up to one wait late.
        let wait = until_commit.map_or(wait, |due| wait.min(due));
        // With partitions assigned, their records arrive on the fetch queue
        // and the wait is spent there; the consumer queue (rebalances,
        // errors) is looked at every loop, so a rebalance waits at most one
        // wait.
        let (event_wait, fetch_wait) = if fetching { (Duration::ZERO, wait) } else { (wait, Duration::ZERO) };
        let mut rebalances = consumer.context().rebalances.load(Ordering::Acquire);
        for i in 0..POLL_BATCH {
            let polled = consumer.poll(if i == 0 { event_wait } else { Duration::ZERO });
            let current = consumer.context().rebalances.load(Ordering::Acquire);
            if current != rebalances {
                // A rebalance inside this poll: what was polled before it
                // belongs to tasks that were closed (their offsets were not
                // committed, so the partitions' owners read them again);
                // what this poll returned belongs to the new assignment and
                // is kept, or the consumer's position would pass records
                // that nobody processes.
                rebalances = current;
                batch.clear();
            }
            match polled {
                Some(Ok(m)) => batch.push(to_raw(&m)),
                Some(Err(e)) => {
                    consumer_error(env, e)?;
                    break;
                }
                None => break,
            }
        }
        // After the events: a rebalance served above has closed the tasks
        // the fetch queue's older records belonged to, and librdkafka drops
        // those (their fetch version is outdated).
        let fetched = lock(&consumer.context().fetch).as_mut().and_then(|fetch| fetch.consume(fetch_wait, &mut batch));
        if let Some(e) = fetched {
            consumer_error(env, e)?;
        }
        if !batch.is_empty() {
            env.counters.cluster_reachable();
        }
        let mut st = lock(state);
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        if let Some(partitions) = st.assigned.take() {
            st.take_assignment(partitions, consumer)?;
            if !st.changelogs.is_restoring() {
                env.set_thread_status(st.index, ThreadStatus::Running);
            }
        }
        Counters::add(&env.counters.consumed, batch.len() as u64);
        let mut unassigned: BTreeMap<(String, i32), u64> = BTreeMap::new();
        // Partition → (first offset, last offset, count) delivered again.
        let mut redelivered: BTreeMap<(String, i32), (i64, i64, u64)> = BTreeMap::new();
        for record in batch.drain(..) {
            let task = match (env.topic_sub.get(&*record.topic), record.partition) {
                (Some(&sub), Some(partition)) => st.tasks.get_mut(&TaskId { subtopology: sub, partition }),
                _ => None,
            };
            match task {
                Some(task) => {
                    if let Some(again) = task.group.push(record) {
                        let offset = again.offset.unwrap_or(-1);
                        let key = (again.topic.to_string(), again.partition.unwrap_or(-1));
                        let seen = redelivered.entry(key).or_insert((offset, offset, 0));
                        seen.0 = seen.0.min(offset);
                        seen.1 = seen.1.max(offset);
                        seen.2 += 1;
                    }
                }
                None => *unassigned.entry((record.topic.to_string(), record.partition.unwrap_or(-1))).or_default() += 1,
            }
        }
        if !redelivered.is_empty() {
            // Not lost either: the copies received first are processed.
            Counters::add(&env.counters.redelivered, redelivered.values().map(|r| r.2).sum());
            let listed: Vec<String> = redelivered
                .iter()
                .map(|((t, p), (first, last, n))| format!("{t}-{p}: {n} at {first}..={last}"))
                .collect();
            tracing::warn!(
                thread = st.index,
                partitions = ?listed,
                "the consumer delivered records again that the tasks already received; ignored, so that none is \
                 processed twice"
            );
        }
        if !unassigned.is_empty() {
            // Not lost: not committed here either, so the partition's owner
            // reads them from the last commit.
            Counters::add(&env.counters.unassigned, unassigned.values().sum());
            tracing::warn!(thread = st.index, partitions = ?unassigned, "records fetched for partitions without a task here; not processed");
        }
        st.restore_step()?;
        let processed = match st.step(consumer, commit_interval) {
            Ok(n) => n,
            Err(e) => {
                st.recover(consumer, e)?;
                0
            }
        };
        st.output.poll();
        idle = processed == 0;
        // Busy or idle: a busy thread's other partitions may be the stuck ones.
        st.watch_positions(consumer);
    }
    Ok(())
}
