//! # integration-tests
//!
//! Tests that run against a real Apache Kafka broker started by
//! `scripts/kafka.sh` (see `scripts/test.sh`). This library holds what they
//! share: where the broker is, unique topic and group names so that tests run
//! in parallel against one broker, and waiting on conditions with deadlines.
//!
//! It is not a mock of anything: when no broker answers, [`bootstrap_servers`]
//! says how to start one, and the tests fail rather than pass vacuously.
//!
//! ```no_run
//! let servers = integration_tests::bootstrap_servers();
//! let topic = integration_tests::unique_name("orders");
//! assert!(topic.starts_with("orders-"));
//! # let _ = servers;
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod http;

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The broker the tests use: `RIVULET_BOOTSTRAP_SERVERS`, else the address
/// `scripts/kafka.sh` listens on.
pub fn bootstrap_servers() -> String {
    std::env::var("RIVULET_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:39092".to_owned())
}

/// `prefix` plus a random suffix: a topic or group name no other test uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A client config pointing at the test broker.
pub fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers());
    config
}

/// An error from the test helpers.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The broker did not answer.
    #[error("no Kafka broker answers at {servers}: {source}. Start one with `scripts/kafka.sh start` (scripts/test.sh does it for you)")]
    NoBroker {
        /// Where the tests looked.
        servers: String,
        /// The client's error.
        source: KafkaError,
    },
    /// A Kafka call failed.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Creating a topic failed.
    #[error("creating topic `{topic}` failed: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// A condition did not hold before its deadline.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

/// Creates `topic` with `partitions` partitions (replication factor 1) and
/// waits until its metadata shows every partition with a leader.
pub async fn create_topic(topic: &str, partitions: i32) -> Result<(), HarnessError> {
    create_topic_with_config(topic, partitions, &[]).await
}

/// As [`create_topic`], with topic configs (`cleanup.policy`, …).
pub async fn create_topic_with_config(
    topic: &str,
    partitions: i32,
    config: &[(&str, &str)],
) -> Result<(), HarnessError> {
    let admin: AdminClient<DefaultClientContext> = client_config().create()?;
    let new = config.iter().fold(NewTopic::new(topic, partitions, TopicReplication::Fixed(1)), |t, (k, v)| t.set(k, v));
    let results = admin
        .create_topics([&new], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))))
        .await
        .map_err(|source| HarnessError::NoBroker { servers: bootstrap_servers(), source })?;
    for result in results {
        if let Err((name, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(HarnessError::CreateTopic { topic: name, code });
            }
        }
    }
    let topic_owned = topic.to_owned();
    let expected = usize::try_from(partitions).unwrap_or(0);
    wait_until(Duration::from_secs(30), &format!("metadata of topic {topic}"), move || {
        let metadata = admin.inner().fetch_metadata(Some(&topic_owned), Duration::from_secs(5)).ok()?;
        let t = metadata.topics().iter().find(|t| t.name() == topic_owned)?;
        (t.error().is_none() && t.partitions().len() == expected && t.partitions().iter().all(|p| p.leader() >= 0))
            .then_some(())
    })
}

/// Polls `check` until it returns `Some`, or fails after `timeout`.
/// The pause between polls is short and is not what the test waits on: the
/// condition is.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> Result<T, HarnessError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(timeout, what.to_owned()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates a compacted topic (for tables) from synchronous code.
pub fn create_compacted_topic_blocking(topic: &str, partitions: i32) -> Result<(), HarnessError> {
    block_on(create_topic_with_config(topic, partitions, &[("cleanup.policy", "compact")]))
}

/// Runs `f` on a private single-threaded runtime.
fn block_on<T>(f: impl std::future::Future<Output = Result<T, HarnessError>>) -> Result<T, HarnessError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HarnessError::Timeout(Duration::ZERO, format!("a tokio runtime for topic creation: {e}")))?;
    rt.block_on(f)
}

/// Creates `topic` from synchronous code (a private runtime).
pub fn create_topic_blocking(topic: &str, partitions: i32) -> Result<(), HarnessError> {
    block_on(create_topic(topic, partitions))
}

/// A record as the tests write and read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRecord {
    /// Partition it was read from (ignored when producing).
    pub partition: i32,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Timestamp, ms.
    pub timestamp: i64,
}

/// A record to produce: key, value, timestamp.
pub type Input<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Writes `records` (key, value, timestamp) to `topic` with an idempotent
/// producer partitioning keys as the Java client does, and waits for every ack.
pub fn produce(topic: &str, records: &[Input<'_>]) -> Result<(), HarnessError> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = client_config()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    for (key, value, ts) in records {
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(*ts);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(v) = value {
            record = record.payload(v);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// Reads `topic` from the beginning with a read_committed consumer until
/// `done` holds for what was read so far, or fails after `timeout`.
pub fn read_until(
    topic: &str,
    timeout: Duration,
    mut done: impl FnMut(&[TestRecord]) -> bool,
) -> Result<Vec<TestRecord>, HarnessError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique_name("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + timeout;
    let mut read = Vec::new();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                read.push(TestRecord {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    timestamp: m.timestamp().to_millis().unwrap_or(-1),
                });
                continue;
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        if done(&read) {
            return Ok(read);
        }
        if Instant::now() >= deadline {
            return Err(HarnessError::Timeout(
                timeout,
                format!("the expected records on topic {topic} ({} read)", read.len()),
            ));
        }
    }
}

/// The last value of every key, as UTF-8 strings (`None` for tombstones).
pub fn latest_by_key(records: &[TestRecord]) -> std::collections::BTreeMap<String, Option<String>> {
    records
        .iter()
        .map(|r| {
            (
                String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned(),
                r.value.as_deref().map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        })
        .collect()
}

/// Waits until consumer group `group` has committed, on every partition of
/// `topics` and of its own repartition topics (`<group>-…-repartition`), an
/// offset at the partition's end: everything written so far is processed and
/// its results are committed. A transactional writer ends a partition with a
/// commit marker that no record follows, so internal topics count as done
/// one short of their end.
pub fn wait_for_group_caught_up(group: &str, topics: &[&str], timeout: Duration) -> Result<(), HarnessError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = client_config().set("group.id", group).set("enable.auto.commit", "false").create()?;
    wait_until(timeout, &format!("group {group} to commit up to the end of its inputs"), || {
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(5)).ok()?;
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for t in metadata.topics() {
            let internal = t.name().starts_with(&format!("{group}-")) && t.name().ends_with("-repartition");
            if !internal && !topics.contains(&t.name()) {
                continue;
            }
            for p in t.partitions() {
                let (_, high) = consumer.fetch_watermarks(t.name(), p.id(), Duration::from_secs(5)).ok()?;
                tpl.add_partition(t.name(), p.id());
                ends.push((t.name().to_owned(), p.id(), if internal { high - 1 } else { high }));
            }
        }
        let committed = consumer.committed_offsets(tpl, Duration::from_secs(5)).ok()?;
        ends.iter()
            .all(|(t, p, end)| {
                *end <= 0
                    || committed
                        .find_partition(t, *p)
                        .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end))
            })
            .then_some(())
    })
}
