//! A task's input partitions: one record queue each, the order records are
//! taken in across them (Kafka Streams' `PartitionGroup`), when the task may
//! take one at all, and the offsets it has processed.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::topology::RawRecord;

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
    /// the consumer delivered again (see [`PartitionGroup::push`]).
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

/// The input partitions of one task (the partition is the task's; one per
/// input topic) and what was read from them but not processed.
pub(crate) struct PartitionGroup {
    /// A task has one to a few input topics, found by comparing names:
    /// cheaper per record than hashing them, for topic names are long
    /// (application id, store and suffix).
    inputs: Vec<Input>,
    /// Input topics that had records waiting when the task was created, with
    /// the end offset then. Until its position reached that end (or the
    /// offset before it: see the thread's `check_fetch_positions`), the task
    /// takes no record while that topic's queue is empty (Kafka Streams'
    /// `max.task.idle.ms=0` rule for partitions with lag): so that a table's
    /// existing records are joined before newer stream records, not after.
    pub(crate) unfetched: HashMap<String, i64>,
    /// When to stop waiting for `unfetched` partitions regardless.
    pub(crate) wait_deadline: Instant,
    /// Every input topic of the task, and `max.task.idle.ms`: with two or
    /// more, records buffered for some but not all wait that long for the
    /// others (from `waiting_since`) before they are processed anyway.
    idle: Option<(Vec<String>, Duration)>,
    waiting_since: Option<Instant>,
}

impl PartitionGroup {
    /// A group of the task's `inputs` topics with `max.task.idle.ms` (nothing
    /// to wait for with one input, or a zero idle time).
    pub(crate) fn new(inputs: &[String], max_idle: Duration) -> Self {
        Self {
            inputs: Vec::new(),
            unfetched: HashMap::new(),
            wait_deadline: Instant::now(),
            idle: (inputs.len() > 1 && !max_idle.is_zero()).then(|| (inputs.to_vec(), max_idle)),
            waiting_since: None,
        }
    }

    /// Whether the task may take a record now: no input partition that is
    /// still short of the end it had when the task was created has an empty
    /// queue. A partition stays waited for until the consumer's position
    /// reaches that end or the offset before it (the thread drops it then),
    /// not just until its first record is buffered: a table read in several
    /// fetches would otherwise run dry between them while newer stream
    /// records, buffered, passed its not-yet-fetched rows and missed their
    /// joins (seen: W4 lost ~300 joined orders of one partition). Kafka
    /// Streams likewise waits on partitions it knows to have lag.
    ///
    /// Asked before every record, not once per batch of them: a table's
    /// queue can run dry in the middle of a batch (seen: W4 with fetches of
    /// 512 KB per partition lost the joins of the first ~650 orders of a
    /// partition, taken in the batch that emptied the table's first fetch).
    fn ready(&mut self) -> bool {
        if self.unfetched.is_empty() {
            return self.idled();
        }
        if Instant::now() >= self.wait_deadline {
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
        // `self.inputs` holds the topics records arrived from, a subset of
        // `inputs`.
        let buffered = self.inputs.iter().filter(|i| !i.queue.is_empty()).count();
        if buffered == 0 || buffered == inputs.len() {
            self.waiting_since = None;
            return true;
        }
        let since = *self.waiting_since.get_or_insert_with(Instant::now);
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

    /// The next record to process, if the task may take one now (see
    /// [`Self::ready`]): the head with the smallest timestamp across the
    /// partitions (ties: topic order). It counts as consumed: its offset is
    /// committed with the task's next commit (on an error nothing is
    /// committed).
    pub(crate) fn next_record(&mut self) -> Option<RawRecord> {
        if !self.ready() {
            return None;
        }
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

    fn record(topic: &str, offset: i64, timestamp: i64) -> RawRecord {
        RawRecord {
            topic: topic.into(),
            partition: Some(0),
            offset: Some(offset),
            timestamp,
            key: None,
            value: None,
            headers: crate::record::Headers::new(),
        }
    }

    /// (topic, offset) of the records the group gives now, until it gives none.
    fn drain(group: &mut PartitionGroup) -> Vec<(String, i64)> {
        std::iter::from_fn(|| group.next_record()).map(|r| (r.topic.to_string(), r.offset.unwrap_or(-1))).collect()
    }

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

    #[test]
    fn records_are_taken_in_timestamp_order_across_partitions() {
        let mut group = PartitionGroup::new(&["a".into(), "b".into()], Duration::ZERO);
        for (offset, ts) in [(0, 5), (1, 20)] {
            assert!(group.push(record("a", offset, ts)).is_none());
        }
        for (offset, ts) in [(0, 10), (1, 20)] {
            assert!(group.push(record("b", offset, ts)).is_none());
        }
        // Equal timestamps: topic order.
        let taken = drain(&mut group);
        assert_eq!(taken, [("a".into(), 0), ("b".into(), 0), ("a".into(), 1), ("b".into(), 1)]);
        let consumed: Vec<(&str, i64)> = group.consumed().collect();
        assert_eq!(consumed, [("a", 2), ("b", 2)]);
    }

    /// A table partition read in several fetches: every stream record waits
    /// until the table's rows that were there when the task started have
    /// all been taken, record by record, not only when a batch begins.
    #[test]
    fn a_partition_still_behind_holds_newer_records_back_whenever_its_queue_runs_dry() {
        let mut group = PartitionGroup::new(&["orders".into(), "customers".into()], Duration::ZERO);
        group.unfetched.insert("customers".into(), 4);
        group.wait_deadline = Instant::now() + Duration::from_secs(3600);
        // The stream's records are newer, but arrived first: none is taken.
        for offset in 0..3 {
            assert!(group.push(record("orders", offset, 1_000 + offset)).is_none());
        }
        assert_eq!(drain(&mut group), []);
        // The table's first fetch: its rows, then nothing, though orders wait.
        assert!(group.push(record("customers", 0, 0)).is_none());
        assert!(group.push(record("customers", 1, 0)).is_none());
        assert_eq!(drain(&mut group), [("customers".into(), 0), ("customers".into(), 1)]);
        // Its second fetch.
        assert!(group.push(record("customers", 2, 0)).is_none());
        assert_eq!(drain(&mut group), [("customers".into(), 2)]);
        // The consumer's position reached the table's end (the thread drops
        // the partition from `unfetched` then): the stream's records follow.
        group.unfetched.clear();
        assert_eq!(drain(&mut group), [("orders".into(), 0), ("orders".into(), 1), ("orders".into(), 2)]);
    }

    #[test]
    fn a_partition_still_behind_is_waited_for_until_the_deadline_only() {
        let mut group = PartitionGroup::new(&["orders".into(), "customers".into()], Duration::ZERO);
        group.unfetched.insert("customers".into(), 4);
        group.wait_deadline = Instant::now();
        assert!(group.push(record("orders", 0, 1_000)).is_none());
        assert_eq!(drain(&mut group), [("orders".into(), 0)]);
        assert!(group.unfetched.is_empty());
    }

    #[test]
    fn max_task_idle_holds_records_while_another_input_has_none() {
        let max_idle = Duration::from_millis(20);
        let mut group = PartitionGroup::new(&["a".into(), "b".into()], max_idle);
        assert!(group.push(record("a", 0, 10)).is_none());
        assert!(group.push(record("b", 0, 5)).is_none());
        assert!(group.push(record("a", 1, 30)).is_none());
        // Both inputs have records: taken in order until `b` runs dry.
        assert_eq!(drain(&mut group), [("b".into(), 0)]);
        // Then `a`'s records wait for `b`, up to the idle time.
        let waiting = Instant::now();
        let deadline = waiting + Duration::from_secs(10);
        let taken = loop {
            if let Some(r) = group.next_record() {
                break r;
            }
            assert!(Instant::now() < deadline, "still waiting after 10 s");
            std::hint::spin_loop();
        };
        assert!(waiting.elapsed() >= max_idle, "taken after {:?}", waiting.elapsed());
        assert_eq!(taken.offset, Some(0));
        assert_eq!(drain(&mut group), [("a".into(), 1)]);
    }
}
