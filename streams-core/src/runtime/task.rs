//! A task on a stream thread: its engine plus one record queue per input
//! partition, taken in timestamp order, and the offsets it has processed.

use std::collections::{HashMap, VecDeque};

use crate::task::TaskEngine;
use crate::topology::RawRecord;

/// Records buffered per partition before the partition is paused
/// (Kafka Streams' `buffered.records.per.partition`).
pub(crate) const MAX_BUFFERED: usize = 1000;

pub(crate) struct StreamTask {
    pub(crate) engine: TaskEngine,
    /// Records read but not processed, by topic (the partition is the task's).
    queues: HashMap<String, VecDeque<RawRecord>>,
    /// Topic → next offset to commit (last processed + 1), since the last commit.
    pub(crate) consumed: HashMap<String, i64>,
}

impl StreamTask {
    pub(crate) fn new(engine: TaskEngine) -> Self {
        Self { engine, queues: HashMap::new(), consumed: HashMap::new() }
    }

    pub(crate) fn push(&mut self, record: RawRecord) {
        self.queues.entry(record.topic.clone()).or_default().push_back(record);
    }

    /// The next record to process: the head with the smallest timestamp
    /// across this task's partitions (ties: topic order, stable).
    pub(crate) fn next_record(&mut self) -> Option<RawRecord> {
        let topic = self
            .queues
            .iter()
            .filter_map(|(t, q)| q.front().map(|r| (r.timestamp, t)))
            .min()
            .map(|(_, t)| t.clone())?;
        self.queues.get_mut(&topic).and_then(VecDeque::pop_front)
    }

    pub(crate) fn buffered(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    pub(crate) fn queue_len(&self, topic: &str) -> usize {
        self.queues.get(topic).map_or(0, VecDeque::len)
    }

    pub(crate) fn mark_processed(&mut self, topic: &str, offset: i64) {
        self.consumed.insert(topic.to_owned(), offset + 1);
    }
}
