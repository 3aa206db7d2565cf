//! A task on a stream thread: its engine and its input partitions.

use super::partition_group::PartitionGroup;
use crate::task_engine::TaskEngine;

/// Records buffered per partition before the partition is paused
/// (Kafka Streams' `buffered.records.per.partition`).
pub(crate) const MAX_BUFFERED: usize = 20_000;

pub(crate) struct StreamTask {
    pub(crate) engine: TaskEngine,
    /// Its input partitions: what was read and not processed, in which
    /// order it is taken, and the offsets processed.
    pub(crate) group: PartitionGroup,
    /// The engine's drops by reason as last added to the instance's metrics.
    pub(crate) reported_drops: std::collections::BTreeMap<&'static str, u64>,
    /// Its stores are still being restored: it neither processes nor
    /// commits, and its input partitions stay paused.
    pub(crate) restoring: bool,
}

impl StreamTask {
    pub(crate) fn new(engine: TaskEngine, group: PartitionGroup) -> Self {
        Self { engine, group, reported_drops: std::collections::BTreeMap::new(), restoring: false }
    }
}
