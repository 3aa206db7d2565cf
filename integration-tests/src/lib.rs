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
    let admin: AdminClient<DefaultClientContext> = client_config().create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
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
