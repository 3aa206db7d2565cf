//! Which instance runs which task: the map that interactive queries route by
//! (Kafka Streams' `StreamsMetadata`).
//!
//! Kafka Streams carries each member's `application.server` in the group
//! protocol's user data. librdkafka's built-in assignors carry none, and the
//! admin API's group description names consumers, not endpoints; so the map
//! goes through a compacted internal topic, `<application.id>-endpoints`
//! (one partition). Each instance with an endpoint writes a **claim** keyed
//! by that endpoint: the tasks it runs, written again whenever they change
//! (after every rebalance, once the new tasks are restored) and removed with
//! a tombstone on a clean close. Every instance reads the topic from the
//! start and keeps each endpoint's latest claim with its offset.
//!
//! A task belongs to the endpoint whose claim of it is the most recent in
//! the log. A crashed instance writes nothing, but the instance that takes
//! its tasks over claims them later, which supersedes the dead claim; an
//! instance whose every task was taken over drops out of the map. Between a
//! task's revocation and its new owner's claim, queries for its keys reach
//! the old owner, which no longer holds the task and answers "retry"
//! (Kafka Streams answers the same during a rebalance).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{self, kafka_error};
use super::{guard, Env};
use crate::error::StreamsError;
use crate::internal_topics::InternalTopicSpec;
use crate::task_engine::TaskId;

/// The endpoints topic of an application.
pub(crate) fn topic(application_id: &str) -> String {
    format!("{application_id}-endpoints")
}

/// How the endpoints topic is created: one partition (a total order of
/// claims), compacted (only each endpoint's latest claim matters).
pub(crate) fn topic_spec(application_id: &str) -> InternalTopicSpec {
    InternalTopicSpec {
        name: topic(application_id),
        partitions: 1,
        config: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    }
}

/// One instance's claim, as written to the endpoints topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    endpoint: String,
    /// `(sub-topology, partition)` of every task the instance runs.
    tasks: Vec<(u32, i32)>,
}

/// Every endpoint's latest claim, as read from the topic.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    /// Endpoint → (offset of its latest claim, its tasks).
    claims: HashMap<String, (i64, BTreeSet<TaskId>)>,
}

impl Directory {
    /// Applies the record at `offset`: a claim, or a tombstone (`None`).
    fn apply(&mut self, endpoint: &str, offset: i64, claim: Option<BTreeSet<TaskId>>) {
        match claim {
            Some(tasks) => {
                self.claims.insert(endpoint.to_owned(), (offset, tasks));
            }
            None => {
                self.claims.remove(endpoint);
            }
        }
    }

    /// Each claimed task's owner: the endpoint whose claim of it is newest.
    pub(crate) fn owners(&self) -> BTreeMap<TaskId, String> {
        let mut newest: BTreeMap<TaskId, (i64, &str)> = BTreeMap::new();
        for (endpoint, (offset, tasks)) in &self.claims {
            for task in tasks {
                let entry = newest.entry(*task).or_insert((*offset, endpoint));
                if *offset > entry.0 {
                    *entry = (*offset, endpoint);
                }
            }
        }
        newest.into_iter().map(|(task, (_, endpoint))| (task, endpoint.to_owned())).collect()
    }
}

/// This instance's side of the map: its endpoint, what it has read, and
/// whether its own claim is out of date.
#[derive(Debug)]
pub(crate) struct Membership {
    /// `application.server` (or the HTTP server's address); without it the
    /// instance neither claims nor reads.
    pub(crate) endpoint: Option<String>,
    pub(crate) directory: Mutex<Directory>,
    /// Set when a thread's tasks change; the membership thread then writes
    /// a new claim.
    dirty: AtomicBool,
}

impl Membership {
    pub(crate) fn new(endpoint: Option<String>) -> Self {
        Self { endpoint, directory: Mutex::new(Directory::default()), dirty: AtomicBool::new(true) }
    }

    /// A thread's tasks changed: claim again.
    pub(crate) fn tasks_changed(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Each task's owner, by endpoint.
    pub(crate) fn owners(&self) -> BTreeMap<TaskId, String> {
        guard(&self.directory).owners()
    }
}

/// Starts the thread that writes this instance's claims and reads everyone's;
/// `None` without an endpoint.
pub(crate) fn spawn(env: Arc<Env>) -> Result<Option<JoinHandle<()>>, StreamsError> {
    let Some(endpoint) = env.membership.endpoint.clone() else { return Ok(None) };
    let config = &env.config;
    let app = &config.application_id;
    let consumer: BaseConsumer = client::restore_consumer(config, &format!("{app}-endpoints"))
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| kafka_error("creating the endpoints consumer", &e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic(app), 0, Offset::Beginning)
        .map_err(|e| kafka_error("assigning the endpoints topic", &e))?;
    consumer.assign(&tpl).map_err(|e| kafka_error("assigning the endpoints topic", &e))?;
    let producer: BaseProducer = client::producer(config, &format!("{app}-endpoints-producer"), None)
        .create()
        .map_err(|e| kafka_error("creating the endpoints producer", &e))?;
    let handle = std::thread::Builder::new()
        .name(format!("{app}-MembershipThread"))
        .spawn(move || run(&env, &endpoint, &consumer, &producer))
        .map_err(|e| StreamsError::IllegalState(format!("cannot start the membership thread: {e}")))?;
    Ok(Some(handle))
}

fn run(env: &Env, endpoint: &str, consumer: &BaseConsumer, producer: &BaseProducer) {
    let topic = topic(&env.config.application_id);
    let mut claimed: Option<Vec<(u32, i32)>> = None;
    while !env.stop.load(Ordering::Acquire) {
        if env.membership.dirty.swap(false, Ordering::AcqRel) {
            let mut tasks: Vec<(u32, i32)> =
                guard(&env.tasks).values().flatten().map(|t| (t.subtopology, t.partition)).collect();
            tasks.sort_unstable();
            if claimed.as_ref() != Some(&tasks) {
                let claim = Claim { endpoint: endpoint.to_owned(), tasks: tasks.clone() };
                match serde_json::to_vec(&claim) {
                    Ok(payload) => {
                        let record = BaseRecord::<str, [u8]>::to(&topic).key(endpoint).payload(&payload);
                        if let Err((e, _)) = producer.send(record) {
                            tracing::warn!(error = %e, "cannot write this instance's claim; retrying");
                            env.membership.dirty.store(true, Ordering::Release);
                        } else {
                            claimed = Some(tasks);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode this instance's claim"),
                }
            }
        }
        producer.poll(Duration::ZERO);
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => read(env, &m),
            Some(Err(e)) => tracing::debug!(error = %e, "reading the endpoints topic"),
            None => {}
        }
    }
    // A clean close gives the tasks up at once instead of waiting for
    // their next owners' claims.
    let record = BaseRecord::<str, [u8]>::to(&topic).key(endpoint);
    if producer.send(record).is_ok() {
        if let Err(e) = producer.flush(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "cannot withdraw this instance's claim");
        }
    }
}

fn read(env: &Env, m: &rdkafka::message::BorrowedMessage<'_>) {
    let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else { return };
    let claim = match m.payload() {
        None => None,
        Some(bytes) => match serde_json::from_slice::<Claim>(bytes) {
            Ok(c) => {
                Some(c.tasks.into_iter().map(|(subtopology, partition)| TaskId { subtopology, partition }).collect())
            }
            Err(e) => {
                tracing::warn!(endpoint = key, error = %e, "skipping an unreadable claim in the endpoints topic");
                return;
            }
        },
    };
    guard(&env.membership.directory).apply(key, m.offset(), claim);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(ids: &[(u32, i32)]) -> Option<BTreeSet<TaskId>> {
        Some(ids.iter().map(|&(subtopology, partition)| TaskId { subtopology, partition }).collect())
    }

    fn t(subtopology: u32, partition: i32) -> TaskId {
        TaskId { subtopology, partition }
    }

    #[test]
    fn the_newest_claim_of_a_task_wins() {
        let mut d = Directory::default();
        d.apply("a:1", 0, tasks(&[(0, 0), (0, 1)]));
        d.apply("b:1", 1, tasks(&[(0, 2)]));
        // a crashes; b takes its tasks over.
        d.apply("b:1", 2, tasks(&[(0, 0), (0, 1), (0, 2)]));
        let owners = d.owners();
        assert_eq!(owners.get(&t(0, 0)).map(String::as_str), Some("b:1"));
        assert_eq!(owners.get(&t(0, 2)).map(String::as_str), Some("b:1"));
        // a comes back and gets one task.
        d.apply("a:1", 3, tasks(&[(0, 1)]));
        d.apply("b:1", 4, tasks(&[(0, 0), (0, 2)]));
        let owners = d.owners();
        assert_eq!(owners.get(&t(0, 1)).map(String::as_str), Some("a:1"));
        assert_eq!(owners.get(&t(0, 0)).map(String::as_str), Some("b:1"));
    }

    #[test]
    fn a_tombstone_withdraws_every_claim() {
        let mut d = Directory::default();
        d.apply("a:1", 0, tasks(&[(1, 0)]));
        d.apply("a:1", 1, None);
        assert!(d.owners().is_empty());
    }
}
