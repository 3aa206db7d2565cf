//! The one seam for creating and checking topics: the admin API on a real
//! cluster, the mock's own call on the embedded one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use super::client::{self, kafka_error};
use super::embedded::EmbeddedCluster;
use super::listener::Counters;
use super::retry::RetryPolicy;
use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::internal_topics::InternalTopicSpec;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct TopicAdmin {
    kind: Kind,
    /// `task.timeout.ms`: how long a cluster that does not answer is waited for.
    timeout: Duration,
    counters: Counters,
}

enum Kind {
    Kafka { admin: AdminClient<DefaultClientContext>, replication_factor: i16 },
    Embedded(Arc<EmbeddedCluster>, AdminClient<DefaultClientContext>),
}

impl TopicAdmin {
    pub(crate) fn new(config: &StreamsConfig, embedded: Option<Arc<EmbeddedCluster>>) -> Result<Self, StreamsError> {
        let admin = client::admin(config).create().map_err(|e| kafka_error("creating the admin client", &e))?;
        let kind = match embedded {
            Some(cluster) => Kind::Embedded(cluster, admin),
            None => Kind::Kafka { admin, replication_factor: config.replication_factor },
        };
        Ok(Self { kind, timeout: config.task_timeout, counters: Counters::default() })
    }

    fn admin(&self) -> &AdminClient<DefaultClientContext> {
        match &self.kind {
            Kind::Kafka { admin, .. } | Kind::Embedded(_, admin) => admin,
        }
    }

    /// Partition counts of every topic on the cluster. Asks for all topics
    /// (not by name) so that brokers that auto-create topics do not.
    pub(crate) fn partition_counts(&self) -> Result<HashMap<String, i32>, StreamsError> {
        // A cluster that is away at start-up is waited for, as later on.
        let policy = RetryPolicy { timeout: self.timeout, counters: &self.counters };
        let metadata = policy.run(|| {
            self.admin()
                .inner()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map_err(|e| kafka_error("reading cluster metadata", &e))
        })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), i32::try_from(t.partitions().len()).unwrap_or(i32::MAX)))
            .collect())
    }

    /// Creates the topics that are missing; checks the partition counts of
    /// those that exist when `strict`.
    pub(crate) fn ensure(&self, specs: &[InternalTopicSpec], strict: bool) -> Result<(), StreamsError> {
        let existing = self.partition_counts()?;
        let mut missing = Vec::new();
        for spec in specs {
            match existing.get(&spec.name) {
                Some(&n) if n == spec.partitions || !strict => {}
                Some(&n) => {
                    return Err(StreamsError::IllegalState(format!(
                        "internal topic `{}` has {n} partitions but the topology needs {}; \
                         delete it (and the application's local state) or use a new application.id",
                        spec.name, spec.partitions
                    )))
                }
                None => missing.push(spec),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        match &self.kind {
            Kind::Embedded(cluster, _) => {
                for spec in &missing {
                    cluster.create_topic(&spec.name, spec.partitions)?;
                }
            }
            Kind::Kafka { admin, replication_factor } => {
                let new: Vec<NewTopic<'_>> = missing
                    .iter()
                    .map(|spec| {
                        let mut t = NewTopic::new(
                            &spec.name,
                            spec.partitions,
                            TopicReplication::Fixed(i32::from(*replication_factor)),
                        );
                        for (k, v) in &spec.config {
                            t = t.set(k, v);
                        }
                        t
                    })
                    .collect();
                let options = AdminOptions::new().operation_timeout(Some(VISIBLE_TIMEOUT));
                let results = futures::executor::block_on(admin.create_topics(&new, &options))
                    .map_err(|e| kafka_error("creating internal topics", &e))?;
                for result in results {
                    match result {
                        Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                        Err((topic, code)) => {
                            return Err(super::errors::KafkaCallError::new(
                                format!("creating internal topic `{topic}`"),
                                rdkafka::error::KafkaError::AdminOp(code),
                            )
                            .into())
                        }
                    }
                }
            }
        }
        self.await_visible(&missing)
    }

    /// Waits until every topic shows in metadata with its partitions, so that
    /// the consumers that subscribe next see them.
    fn await_visible(&self, specs: &[&InternalTopicSpec]) -> Result<(), StreamsError> {
        let deadline = std::time::Instant::now() + VISIBLE_TIMEOUT;
        loop {
            let counts = self.partition_counts()?;
            if specs.iter().all(|s| counts.get(&s.name) == Some(&s.partitions)) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(StreamsError::IllegalState(
                    "internal topics did not appear in metadata within 30 s".into(),
                ));
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }
}
