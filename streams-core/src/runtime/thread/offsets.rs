//! Where the stream thread's input partitions stand: the group's committed
//! offsets (read at an assignment and to roll back), where partitions
//! without one start, which partitions hold records not yet fetched, and
//! stores found ahead of the group.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{ThreadContext, ThreadState};
use crate::error::StreamsError;
use crate::runtime::errors::{ErrorClass, KafkaCallError};
use crate::topology::OffsetReset;

/// The group's committed offsets of some partitions, as read from the
/// coordinator (stable under exactly-once: librdkafka asks for offsets with
/// no transaction pending). A partition without one is absent.
#[derive(Debug, Default)]
pub(super) struct GroupOffsets(HashMap<(String, i32), i64>);

/// How long one read of the group's committed offsets may take.
const COMMITTED_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads of the committed offsets at an assignment, where partitions' starts
/// depend on them: together longer than the producers' transaction.timeout.ms
/// (10 s) plus the broker's check for timed-out transactions (10 s).
const COMMITTED_READ_ATTEMPTS: u32 = 3;

/// The partitions of `list` that hold an actual offset, by topic-partition.
fn offsets_of(list: &TopicPartitionList) -> HashMap<(String, i32), i64> {
    list.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect()
}

/// What a thread reads of an assignment when it arrives, before librdkafka
/// starts fetching its partitions.
#[derive(Debug, Default)]
pub(super) struct AssignmentStarts {
    /// Partitions with records not yet fetched, and the end each had (read
    /// now: behind a fetch that long-polls an empty partition, every offset
    /// query on the connection waits up to `fetch.wait.max.ms`).
    pub(super) unfetched: HashMap<(String, i32), i64>,
    /// The group's committed offsets (stable under exactly-once: no
    /// transaction pending); `None` when they could not be read.
    pub(super) group_offsets: Option<GroupOffsets>,
    /// Partitions without a committed offset whose topic starts elsewhere
    /// than `auto.offset.reset` says (a repartition topic, a source with its
    /// own reset policy), and where.
    pub(super) reset_starts: Vec<(String, i32, Offset)>,
}

impl GroupOffsets {
    pub(super) fn from(committed: &TopicPartitionList) -> Self {
        Self(offsets_of(committed))
    }

    pub(super) fn get(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0.get(&(topic.to_owned(), partition)).copied()
    }

    /// Why stores whose last commit went with input `position` are ahead of
    /// the group, if they are.
    pub(super) fn ahead_of(&self, position: &HashMap<String, i64>, partition: i32) -> Option<String> {
        position.iter().find_map(|(topic, &stored)| {
            let committed = self.get(topic, partition);
            (committed.is_none_or(|c| stored > c)).then(|| {
                format!(
                    "{topic}-{partition}: the stores went with offset {stored}, the group committed {}",
                    committed.map_or_else(|| "nothing".to_owned(), |c| c.to_string())
                )
            })
        })
    }
}

impl ThreadState {
    /// The group's committed offsets of every input partition of this
    /// thread's tasks. One bounded attempt: librdkafka may hold the fetch
    /// until the consumer is polled again (a rejoin after a broker restart),
    /// which cannot happen while this thread waits. Failing, the thread
    /// rejoins with new clients, whose assignment brings the offsets.
    pub(super) fn read_group_offsets(
        &self,
        consumer: &BaseConsumer<ThreadContext>,
    ) -> Result<GroupOffsets, StreamsError> {
        let mut partitions = TopicPartitionList::new();
        for id in self.tasks.keys() {
            for topic in self.env.sub_topics.get(&id.subtopology).into_iter().flatten() {
                partitions.add_partition(topic, id.partition);
            }
        }
        if partitions.count() == 0 {
            return Ok(GroupOffsets::default());
        }
        let committed = consumer.committed_offsets(partitions, Duration::from_secs(10)).map_err(|e| {
            KafkaCallError::with_class(
                "reading the group's committed offsets to roll back to (rejoining with new clients)",
                e,
                ErrorClass::Fatal,
            )
        })?;
        Ok(GroupOffsets::from(&committed))
    }

    /// Reads where the partitions of a new assignment start (see
    /// [`AssignmentStarts`]). Errors only cost the wait, the check of the
    /// stores and per-topic starts: they are logged.
    pub(super) fn assignment_starts(
        &self,
        partitions: &TopicPartitionList,
        consumer: &BaseConsumer<ThreadContext>,
    ) -> AssignmentStarts {
        // Where a topic starts elsewhere than the consumer's default, its
        // partitions' starts depend on this read, so it is retried: an
        // instance killed inside a transaction holds it (unstable offsets)
        // until the broker aborts that transaction.
        let own_policy =
            partitions.elements().iter().any(|e| self.env.offset_reset(e.topic()) != self.env.config.auto_offset_reset);
        let attempts = if own_policy { COMMITTED_READ_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        let committed = loop {
            attempt += 1;
            match consumer.committed_offsets(partitions.clone(), COMMITTED_READ_TIMEOUT) {
                Ok(c) => break c,
                Err(e) if attempt < attempts => {
                    tracing::warn!(error = %e, attempt, "cannot read committed offsets yet; retrying");
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        attempts,
                        "cannot read committed offsets; not waiting for first fetches, and partitions without \
                         one start from auto.offset.reset whatever their topic's own policy"
                    );
                    return AssignmentStarts::default();
                }
            }
        };
        let group = GroupOffsets::from(&committed);
        // One offset query per bound for all partitions, not two per partition.
        let bound = |offset: Offset| -> HashMap<(String, i32), i64> {
            let mut query = TopicPartitionList::new();
            for e in partitions.elements() {
                let _ = query.add_partition_offset(e.topic(), e.partition(), offset);
            }
            match consumer.offsets_for_times(query, Duration::from_secs(10)) {
                Ok(found) => offsets_of(&found),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read partition bounds; not waiting for first fetches");
                    HashMap::new()
                }
            }
        };
        let ends = bound(Offset::End);
        // A partition the coordinator answered for with an error is not
        // known to lack an offset: librdkafka's own fetch decides it.
        let without: Vec<(String, i32, OffsetReset)> = committed
            .elements()
            .iter()
            .filter(|e| e.error().is_ok() && !matches!(e.offset(), Offset::Offset(_)))
            .map(|e| (e.topic().to_owned(), e.partition(), self.env.offset_reset(e.topic())))
            .collect();
        // Said once per assignment: a partition starting without a committed
        // offset re-reads (earliest) or skips (latest) what is there, which
        // is expected on a first start and a clue when counts come out wrong
        // after one.
        if !without.is_empty() {
            let listed: Vec<String> = without.iter().map(|(t, p, r)| format!("{t}-{p} ({r:?})")).collect();
            tracing::info!(
                partitions = ?listed,
                "assigned partitions without a committed offset start where their reset policy says"
            );
        }
        let needs_start = without.iter().any(|(_, _, r)| *r == OffsetReset::Earliest);
        let starts = if needs_start { bound(Offset::Beginning) } else { HashMap::new() };
        let mut out = HashMap::new();
        for e in committed.elements() {
            let key = (e.topic().to_owned(), e.partition());
            let Some(&high) = ends.get(&key) else { continue };
            let start = match e.offset() {
                Offset::Offset(o) => o,
                _ => match self.env.offset_reset(e.topic()) {
                    OffsetReset::Earliest => starts.get(&key).copied().unwrap_or(high),
                    OffsetReset::Latest => high,
                },
            };
            if start < high {
                out.insert(key, high);
            }
        }
        let reset_starts = without
            .into_iter()
            .filter(|(_, _, reset)| *reset != self.env.config.auto_offset_reset)
            .map(|(topic, partition, reset)| {
                let start = match reset {
                    OffsetReset::Earliest => Offset::Beginning,
                    OffsetReset::Latest => Offset::End,
                };
                (topic, partition, start)
            })
            .collect();
        AssignmentStarts { unfetched: out, group_offsets: Some(group), reset_starts }
    }

    /// Drops waits on partitions whose position reached the end they had,
    /// or the offset before it: a transactional writer's last commit marker
    /// takes the last offset, is never delivered, and so never moves the
    /// position past it (waiting for it would stall the task until
    /// `FIRST_FETCH_WAIT`).
    pub(super) fn check_fetch_positions(&mut self, consumer: &BaseConsumer<ThreadContext>) {
        if self.tasks.values().all(|t| t.group.unfetched.is_empty()) {
            return;
        }
        let Ok(positions) = consumer.position() else { return };
        for (id, task) in &mut self.tasks {
            task.group.unfetched.retain(|topic, end| {
                !positions
                    .find_partition(topic, id.partition)
                    .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end - 1))
            });
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn group(entries: &[(&str, i32, Option<i64>)]) -> GroupOffsets {
        let mut tpl = TopicPartitionList::new();
        for &(topic, partition, offset) in entries {
            let offset = offset.map_or(Offset::Invalid, Offset::Offset);
            tpl.add_partition_offset(topic, partition, offset).unwrap();
        }
        GroupOffsets::from(&tpl)
    }

    #[test]
    fn stores_ahead_of_the_group_are_named() {
        let g = group(&[("in", 1, Some(100)), ("table", 1, Some(7)), ("in", 2, None)]);
        let at = |entries: &[(&str, i64)]| -> HashMap<String, i64> {
            entries.iter().map(|&(t, o)| (t.to_owned(), o)).collect()
        };
        // Level with the group, or behind it (a commit that succeeded on the
        // broker only): the changelog brings the stores up.
        assert_eq!(g.ahead_of(&at(&[("in", 100), ("table", 7)]), 1), None);
        assert_eq!(g.ahead_of(&at(&[("in", 90)]), 1), None);
        // Ahead: the transaction did not commit.
        let why = g.ahead_of(&at(&[("in", 100), ("table", 9)]), 1).unwrap();
        assert!(why.contains("table-1") && why.contains("offset 9") && why.contains("committed 7"), "{why}");
        // The group has nothing for a partition the stores went with.
        let why = g.ahead_of(&at(&[("in", 5)]), 2).unwrap();
        assert!(why.contains("committed nothing"), "{why}");
    }
}
