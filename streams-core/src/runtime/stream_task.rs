//! A task on a stream thread: its engine plus one record queue per input
//! partition, taken in timestamp order, and the offsets it has processed.

use std::collections::{HashMap, VecDeque};

use crate::task_engine::TaskEngine;
use crate::topology::RawRecord;

/// Records buffered per partition before the partition is paused
/// (Kafka Streams' `buffered.records.per.partition`).
pub(crate) const MAX_BUFFERED: usize = 20_000;

/// One input topic of a task.
struct Input {
    topic: String,
    queue: VecDeque<RawRecord>,
    /// The next offset to commit (last processed + 1), since the last commit.
    consumed: Option<i64>,
    /// Where to rewind the consumer to redo the work since the last commit:
    /// the committed offset, or the first record received since the task
    /// was created (nothing readable lies before it).
    rewind: Option<i64>,
    /// The offset after the last record received: a record below it is one
    /// the consumer delivered again (see [`StreamTask::push`]).
    next: Option<i64>,
}

impl Input {
    fn new(topic: &str) -> Self {
        Self { topic: topic.to_owned(), queue: VecDeque::new(), consumed: None, rewind: None, next: None }
    }

    /// Whether a record at `offset` is new to this input (and notes it).
    fn admit(&mut self, offset: Option<i64>) -> bool {
        let Some(offset) = offset else { return true };
        if self.next.is_some_and(|next| offset < next) {
            return false;
        }
        self.next = Some(offset + 1);
        true
    }
}

pub(crate) struct StreamTask {
    pub(crate) engine: TaskEngine,
    /// Per input topic (the partition is the task's): records read but not
    /// processed, and offsets. A task has one to a few input topics, found
    /// by comparing names: cheaper per record than hashing them, for topic
    /// names are long (application id, store and suffix).
    inputs: Vec<Input>,
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
            inputs: Vec::new(),
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
        let starved = self.unfetched.keys().any(|t| self.queue_len(t) == 0);
        !starved && self.idled()
    }

    /// `max.task.idle.ms`: false while some inputs have records and others
    /// not, for at most the idle time; as Kafka Streams, the wait starts
    /// when that happens and ends when every input has records (or none).
    fn idled(&mut self) -> bool {
        let Some((inputs, max_idle)) = &self.idle else { return true };
        let buffered = inputs.iter().filter(|t| self.queue_len(t) > 0).count();
        if buffered == 0 || buffered == inputs.len() {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert_with(std::time::Instant::now);
        since.elapsed() >= *max_idle
    }

    fn input(&self, topic: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.topic == topic)
    }

    /// Queues a record of one of the task's partitions, or gives it back if
    /// it lies below a record received before.
    ///
    /// Within one task instance a partition's offsets only grow: the thread
    /// seeks only when it recreates its tasks. A record below the last one
    /// is the consumer delivering again what the task already has (seen:
    /// librdkafka re-fetching a partition without a committed offset from
    /// its start after a broker outage, so that under exactly-once a whole
    /// partition was counted twice). Processing it again would count it
    /// twice; the copy received first is the one processed or queued.
    pub(crate) fn push(&mut self, record: RawRecord) -> Option<RawRecord> {
        let at = match self.inputs.iter().position(|i| *i.topic == *record.topic) {
            Some(at) => at,
            None => {
                self.inputs.push(Input::new(&record.topic));
                self.inputs.len() - 1
            }
        };
        let input = &mut self.inputs[at];
        if !input.admit(record.offset) {
            return Some(record);
        }
        input.rewind.get_or_insert(record.offset.unwrap_or(0));
        input.queue.push_back(record);
        None
    }

    /// The next record to process: the head with the smallest timestamp
    /// across this task's partitions (ties: topic order). It counts as
    /// consumed: its offset is committed with the task's next commit (on an
    /// error nothing is committed).
    pub(crate) fn next_record(&mut self) -> Option<RawRecord> {
        let at = (0..self.inputs.len())
            .filter_map(|at| {
                let input = &self.inputs[at];
                input.queue.front().map(|r| ((r.timestamp, input.topic.as_str()), at))
            })
            .min()?
            .1;
        let input = &mut self.inputs[at];
        let record = input.queue.pop_front()?;
        input.consumed = Some(record.offset.unwrap_or(-1) + 1);
        Some(record)
    }

    /// Topic → next offset to commit (last processed + 1), of the topics
    /// processed since the last commit.
    pub(crate) fn consumed(&self) -> impl Iterator<Item = (&str, i64)> + '_ {
        self.inputs.iter().filter_map(|i| i.consumed.map(|o| (i.topic.as_str(), o)))
    }

    /// Where to rewind `topic` to redo the work since the last commit (see
    /// [`Input::rewind`]); `None` if nothing of it was received.
    pub(crate) fn rewind(&self, topic: &str) -> Option<i64> {
        self.input(topic).and_then(|i| i.rewind)
    }

    /// After a commit: the committed offsets are where a rewind goes.
    pub(crate) fn committed(&mut self) {
        for input in &mut self.inputs {
            if let Some(offset) = input.consumed.take() {
                input.rewind = Some(offset);
            }
        }
    }

    /// Takes every buffered record out, partition by partition in offset
    /// order: for a task replaced before it processed them (its state wiped
    /// and restored again), whose consumer position is already past them.
    pub(crate) fn take_buffered(&mut self) -> Vec<RawRecord> {
        self.inputs.iter_mut().flat_map(|i| i.queue.drain(..)).collect()
    }

    pub(crate) fn queue_len(&self, topic: &str) -> usize {
        self.input(topic).map_or(0, |i| i.queue.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_delivered_again_is_not_admitted_twice() {
        let mut input = Input::new("in");
        // Offsets grow, with gaps (transaction markers, compaction).
        for offset in [0, 1, 2, 5, 6] {
            assert!(input.admit(Some(offset)), "{offset}");
        }
        // The consumer starts over from the partition's start: every
        // record up to the last one received is a copy.
        for offset in [0, 1, 2, 5, 6] {
            assert!(!input.admit(Some(offset)), "{offset}");
        }
        // What follows is new, even after a gap.
        assert!(input.admit(Some(9)));
        assert!(!input.admit(Some(7)));
        assert!(input.admit(Some(10)));
        // Records without an offset (not from Kafka) are not judged.
        assert!(input.admit(None));
        assert!(input.admit(None));
    }
}
