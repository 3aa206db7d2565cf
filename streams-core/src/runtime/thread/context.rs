//! The stream thread's consumer callbacks: librdkafka's statistics (lag,
//! whether the cluster answers) and the rebalances that hand the thread its
//! partitions (commit before a revocation, nothing committed for a lost
//! assignment, per-topic starts for an assignment).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;

use super::{lock, policy, ThreadContext};
use crate::runtime::errors::ErrorClass;
use crate::runtime::listener::Counters;
use crate::runtime::ThreadStatus;

/// A consumed partition's lag from librdkafka's statistics: the records
/// between the position and the end (as Kafka's `records-lag`); librdkafka's
/// own figure counts from the committed offset, which under exactly-once the
/// consumer does not see move (the producer commits). `None` for a partition
/// this consumer does not read.
fn partition_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    // read_committed reads to the last stable offset, not the high watermark.
    let end = if p.ls_offset >= 0 { p.ls_offset } else { p.hi_offset };
    // Before the first record (an empty partition, say) the position is
    // where fetching goes on from.
    let position = if p.app_offset >= 0 {
        p.app_offset
    } else if p.fetch_state == "active" {
        p.next_offset
    } else {
        -1
    };
    if position >= 0 && end >= 0 {
        return Some((end - position).max(0));
    }
    (p.consumer_lag >= 0).then_some(p.consumer_lag)
}

impl ClientContext for ThreadContext {
    /// Consumer lag from librdkafka's statistics (no broker round trip on
    /// the processing path).
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut total = 0u64;
        {
            let mut by_partition = crate::runtime::guard(&self.env.metrics.partition_lag);
            for (topic, t) in &statistics.topics {
                for p in t.partitions.values().filter(|p| p.partition >= 0) {
                    let key = (topic.clone(), p.partition);
                    match partition_lag(p) {
                        Some(lag) => {
                            total += u64::try_from(lag).unwrap_or(0);
                            by_partition.insert(key, lag);
                        }
                        None => {
                            by_partition.remove(&key);
                        }
                    }
                }
            }
        }
        self.env.set_thread_lag(self.index, total);
        if statistics.brokers.values().any(|b| b.nodeid >= 0 && b.state == "UP") {
            self.env.counters.cluster_reachable();
        }
    }
}

impl ConsumerContext for ThreadContext {
    /// As rdkafka's own, except that an assignment's partitions without a
    /// committed offset whose topic has its own reset policy are assigned
    /// at the start that policy gives: librdkafka knows only the one
    /// `auto.offset.reset` of the consumer.
    ///
    /// Every rebalance is eager: the config refuses any assignment strategy
    /// but `range`. The protocol is not asked of librdkafka here, as rdkafka
    /// does: the question waits, without a time-out, on the group's handler
    /// thread, which does not answer once the consumer is closing. Seen: a
    /// revocation served while the consumer was dropped after its instance's
    /// peer left the group hung the stream thread, and `close()` with it.
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let assigned = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Assign(tpl));
                for (topic, partition, start) in std::mem::take(&mut lock(&self.state).starts.reset_starts) {
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, start) {
                        tracing::warn!(%topic, partition, error = %e, "cannot set where a partition starts");
                    }
                }
                let assigned = consumer.assign(tpl);
                self.post_rebalance(consumer, &Rebalance::Assign(tpl));
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(tpl));
                let revoked = consumer.unassign();
                self.post_rebalance(consumer, &Rebalance::Revoke(tpl));
                revoked
            }
            _ => {
                let rebalance = Rebalance::Error(rdkafka::error::KafkaError::Rebalance(err.into()));
                self.pre_rebalance(consumer, &rebalance);
                // As rdkafka does: an unknown event gives up the assignment.
                let unassigned = consumer.unassign();
                self.post_rebalance(consumer, &rebalance);
                unassigned
            }
        };
        if let Err(e) = assigned {
            tracing::warn!(error = %e, "applying a rebalance failed");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        if let Rebalance::Assign(tpl) = rebalance {
            // Before librdkafka starts fetching them: every record of these
            // partitions then arrives on the fetch queue.
            if let Some(fetch) = lock(&self.fetch).as_ref() {
                fetch.attach(tpl);
            }
        }
        let mut st = lock(&self.state);
        st.env.set_thread_status(st.index, ThreadStatus::Rebalancing);
        if let Rebalance::Assign(tpl) = rebalance {
            st.starts = st.assignment_starts(tpl, consumer);
        }
        if let Rebalance::Revoke(_) = rebalance {
            if !st.tasks.is_empty() && consumer.assignment_lost() {
                // The group moved on without this member (its session timed
                // out): another may own these partitions already, and a
                // commit now could land beside its work. As Kafka Streams
                // does with lost tasks, nothing is committed: the open
                // transaction is given up and the next owner redoes it.
                tracing::warn!(
                    thread = st.index,
                    "assignment lost (the group went on without this member); closing the tasks without committing"
                );
                Counters::add(&st.env.counters.aborted_transactions, 1);
                let env = Arc::clone(&st.env);
                st.output.abort_or_log(policy(&env));
                st.close_tasks(false);
                return;
            }
            if st.tasks.is_empty() {
                // Closed already (on an error): nothing of theirs may be
                // committed now; an open transaction is given up.
                let env = Arc::clone(&st.env);
                st.output.abort_or_log(policy(&env));
                return;
            }
            // Commit before the partitions go, so that the next owner starts
            // exactly where this thread stopped.
            if let Err(e) = st.commit(consumer) {
                match e.kafka_class() {
                    // The next owner redoes the uncommitted work from the last commit.
                    Some(ErrorClass::Abortable | ErrorClass::Retriable) => {
                        tracing::warn!(error = %e, "commit on revocation failed; closing the tasks without committing");
                        Counters::add(&st.env.counters.aborted_transactions, 1);
                    }
                    _ => {
                        tracing::error!(error = %e, "commit on revocation failed");
                        st.error.get_or_insert(e);
                    }
                }
                let env = Arc::clone(&st.env);
                st.output.abort_or_log(policy(&env));
                st.close_tasks(false);
            } else {
                st.close_tasks(true);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        let mut st = lock(&self.state);
        match rebalance {
            Rebalance::Assign(tpl) => {
                st.assigned = Some((*tpl).clone());
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
