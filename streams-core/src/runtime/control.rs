//! Requests between the instances of one application: today, Kafka Streams'
//! `SHUTDOWN_APPLICATION`.
//!
//! librdkafka's assignors carry no user data, so the request cannot ride on
//! the group protocol as in Kafka Streams. It goes through an internal topic,
//! `<application.id>-control` (one partition): an instance whose handler
//! answers [`ErrorResponse::ShutdownApplication`](super::ErrorResponse)
//! writes a record keyed by its process id; every running instance watches
//! the topic from where it was when it started and stops with
//! [`StreamsError::ApplicationShutdown`] when another instance asks.
//! Instances started after the request are not affected.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, kafka_error};
use super::{fail_client, Env};
use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::internal_topics::InternalTopicSpec;

/// The control topic of an application.
pub(crate) fn topic(application_id: &str) -> String {
    format!("{application_id}-control")
}

/// How the control topic is created: requests matter only while they are new.
pub(crate) fn topic_spec(application_id: &str) -> InternalTopicSpec {
    InternalTopicSpec {
        name: topic(application_id),
        partitions: 1,
        config: BTreeMap::from([
            ("cleanup.policy".to_owned(), "delete".to_owned()),
            ("retention.ms".to_owned(), "86400000".to_owned()),
        ]),
    }
}

/// Starts watching the control topic from its current end.
pub(crate) fn spawn_watcher(env: Arc<Env>) -> Result<JoinHandle<()>, StreamsError> {
    let config: &StreamsConfig = &env.config;
    let consumer: BaseConsumer = client::restore_consumer(config, &format!("{}-control", config.application_id))
        .set("isolation.level", "read_uncommitted")
        .create()
        .map_err(|e| kafka_error("creating the control consumer", &e))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic(&config.application_id), 0, Offset::End)
        .map_err(|e| kafka_error("assigning the control topic", &e))?;
    consumer.assign(&tpl).map_err(|e| kafka_error("assigning the control topic", &e))?;
    std::thread::Builder::new()
        .name(format!("{}-ControlThread", config.application_id))
        .spawn(move || watch(&env, &consumer))
        .map_err(|e| StreamsError::IllegalState(format!("cannot start the control thread: {e}")))
}

fn watch(env: &Env, consumer: &BaseConsumer) {
    while !env.stop.load(Ordering::Acquire) {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else { continue };
        let from = m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default();
        if from == env.process_id {
            continue;
        }
        let reason = m.payload().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        tracing::error!(requested_by = %from, %reason, "another instance asked the whole application to shut down");
        fail_client(env, Arc::new(StreamsError::ApplicationShutdown { requested_by: from, reason }));
        return;
    }
}

/// Asks every other instance of the application to stop. Best effort: a
/// failure is logged (this instance stops anyway).
pub(crate) fn request_shutdown(env: &Env, error: &StreamsError) {
    let config = &env.config;
    let producer: BaseProducer =
        match client::producer(config, &format!("{}-control-producer", config.application_id), None).create() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot ask the other instances to shut down");
                return;
            }
        };
    let topic = topic(&config.application_id);
    let reason = error.to_string();
    let record = BaseRecord::<str, str>::to(&topic).key(&env.process_id).payload(&reason);
    if let Err((e, _)) = producer.send(record) {
        tracing::error!(error = %e, "cannot ask the other instances to shut down");
        return;
    }
    match producer.flush(Duration::from_secs(30)) {
        Ok(()) => tracing::warn!(%reason, "asked every instance of the application to shut down"),
        Err(e) => tracing::error!(error = %e, "cannot ask the other instances to shut down"),
    }
}
