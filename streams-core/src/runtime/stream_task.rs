//! A task on a stream thread: its engine plus one record queue per input
//! partition, taken in timestamp order, and the offsets it has processed.

use std::collections::{HashMap, VecDeque};

use crate::task_engine::TaskEngine;
use crate::topology::RawRecord;

/// Records buffered per partition before the partition is paused
/// (Kafka Streams' `buffered.records.per.partition`).
pub(crate) const MAX_BUFFERED: usize = 20_000;

pub(crate) struct StreamTask {
    pub(crate) engine: TaskEngine,
    /// Records read but not processed, by topic (the partition is the task's).
    queues: foldhash::HashMap<String, VecDeque<RawRecord>>,
    /// Topic → next offset to commit (last processed + 1), since the last commit.
    pub(crate) consumed: foldhash::HashMap<String, i64>,
    /// Topic → where to rewind the consumer to redo the work since the last
    /// commit: the committed offset, or the first record received since
    /// the task was created (nothing readable lies before it).
    pub(crate) rewind: foldhash::HashMap<String, i64>,
    /// Input topics that had records waiting when the task was created, with
    /// the end offset then. Until its position reached that end (or the
    /// offset before it: see the thread's `check_fetch_positions`), the task
    /// does not process while that topic's queue is empty (Kafka Streams'
    /// `max.task.idle.ms=0` rule for partitions with lag): so that a table's
    /// existing records are joined before newer stream records, not after.
    pub(crate) unfetched: HashMap<String, i64>,
    /// When to stop waiting for `unfetched` partitions regardless.
    pub(crate) wait_deadline: std::time::Instant,
    /// The engine's drops by reason as last added to the instance's metrics.
    pub(crate) reported_drops: std::collections::BTreeMap<&'static str, u64>,
    /// Every input topic of the task, and `max.task.idle.ms`: with two or
    /// more, records buffered for some but not all wait that long for the
    /// others (from `waiting_since`) before they are processed anyway.
    idle: Option<(Vec<String>, std::time::Duration)>,
    waiting_since: Option<std::time::Instant>,
    /// Its stores are still being restored: it neither processes nor
    /// commits, and its input partitions stay paused.
    pub(crate) restoring: bool,
}

impl StreamTask {
    pub(crate) fn new(engine: TaskEngine) -> Self {
        Self {
            engine,
            queues: foldhash::HashMap::default(),
            consumed: foldhash::HashMap::default(),
            rewind: foldhash::HashMap::default(),
            unfetched: HashMap::new(),
            wait_deadline: std::time::Instant::now(),
            reported_drops: std::collections::BTreeMap::new(),
            idle: None,
            waiting_since: None,
            restoring: false,
        }
    }

    /// Sets the input topics and `max.task.idle.ms` (nothing to wait for
    /// with one input, or a zero idle time).
    pub(crate) fn with_idle(mut self, inputs: &[String], max_idle: std::time::Duration) -> Self {
        self.idle = (inputs.len() > 1 && !max_idle.is_zero()).then(|| (inputs.to_vec(), max_idle));
        self
    }

    /// Whether the task may process: no input partition that is still short
    /// of the end it had when the task was created has an empty queue. A
    /// partition stays waited for until the consumer's position reaches that
    /// end or the offset before it (the thread drops it then), not just until its first record is
    /// buffered: a table read in several fetches would otherwise run dry
    /// between them while newer stream records, buffered, passed its
    /// not-yet-fetched rows and missed their joins (seen: W4 lost ~300
    /// joined orders of one partition). Kafka Streams likewise waits on
    /// partitions it knows to have lag.
    pub(crate) fn ready(&mut self) -> bool {
        if self.unfetched.is_empty() {
            return self.idled();
        }
        if std::time::Instant::now() >= self.wait_deadline {
            tracing::warn!(partitions = ?self.unfetched.keys().collect::<Vec<_>>(), "gave up waiting to read what these partitions held when the task started");
            self.unfetched.clear();
            return true;
        }
        let queues = &self.queues;
        let starved = self.unfetched.keys().any(|t| queues.get(t).is_none_or(VecDeque::is_empty));
        !starved && self.idled()
    }

    /// `max.task.idle.ms`: false while some inputs have records and others
    /// not, for at most the idle time; as Kafka Streams, the wait starts
    /// when that happens and ends when every input has records (or none).
    fn idled(&mut self) -> bool {
        let Some((inputs, max_idle)) = &self.idle else { return true };
        let buffered = inputs.iter().filter(|t| self.queues.get(*t).is_some_and(|q| !q.is_empty())).count();
        if buffered == 0 || buffered == inputs.len() {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert_with(std::time::Instant::now);
        since.elapsed() >= *max_idle
    }

    pub(crate) fn push(&mut self, record: RawRecord) {
        if !self.rewind.contains_key(&record.topic) {
            self.rewind.insert(record.topic.clone(), record.offset.unwrap_or(0));
        }
        // Look up before inserting: no topic-name allocation per record.
        match self.queues.get_mut(&record.topic) {
            Some(queue) => queue.push_back(record),
            None => {
                self.queues.insert(record.topic.clone(), VecDeque::from([record]));
            }
        }
    }

    /// The next record to process: the head with the smallest timestamp
    /// across this task's partitions (ties: topic order). It counts as
    /// consumed: its offset is committed with the task's next commit (on an
    /// error nothing is committed).
    pub(crate) fn next_record(&mut self) -> Option<RawRecord> {
        let (_, queue) = self
            .queues
            .iter_mut()
            .filter_map(|(t, q)| q.front().map(|r| (r.timestamp, t.as_str())).map(|key| (key, q)))
            .min_by(|a, b| a.0.cmp(&b.0))?;
        let record = queue.pop_front()?;
        let next = record.offset.unwrap_or(-1) + 1;
        match self.consumed.get_mut(&record.topic) {
            Some(offset) => *offset = next,
            None => {
                self.consumed.insert(record.topic.clone(), next);
            }
        }
        Some(record)
    }

    /// After a commit: the committed offsets are where a rewind goes.
    pub(crate) fn committed(&mut self) {
        for (topic, offset) in self.consumed.drain() {
            self.rewind.insert(topic, offset);
        }
    }

    pub(crate) fn queue_len(&self, topic: &str) -> usize {
        self.queues.get(topic).map_or(0, VecDeque::len)
    }
}
