//! A stream thread's producer: sends what sinks and changelogs write, tracks
//! the offsets each partition reached (changelog checkpoints) and the first
//! delivery error, and runs the thread's transactions under exactly-once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header as KafkaHeader, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, PurgeConfig};
use rdkafka::TopicPartitionList;

use super::client::kafka_error;
use crate::error::{ProcessorError, StreamsError};
use crate::task::RecordCollector;
use crate::topology::RawRecord;

const TXN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Deliveries {
    /// (topic, partition) → highest offset written.
    offsets: HashMap<(String, i32), i64>,
    /// The first failed delivery since the last commit.
    error: Option<(String, String)>,
}

/// Receives delivery reports.
#[derive(Default)]
pub(crate) struct DeliveryContext {
    deliveries: Mutex<Deliveries>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut d = self.deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(m) => {
                let slot = d.offsets.entry((m.topic().to_owned(), m.partition())).or_insert(-1);
                *slot = (*slot).max(m.offset());
            }
            Err((e, m)) => {
                if d.error.is_none() {
                    d.error = Some((m.topic().to_owned(), e.to_string()));
                }
            }
        }
    }
}

/// The producer side of a stream thread.
pub(crate) struct Output {
    producer: BaseProducer<DeliveryContext>,
    transactional: bool,
    in_transaction: bool,
    partitions: Mutex<HashMap<String, i32>>,
    /// Records sent since start.
    pub(crate) sent: u64,
}

fn is_fenced(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(err) => {
            matches!(err.code(), RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
                || err.is_fatal() && err.code() == RDKafkaErrorCode::Fenced
        }
        _ => false,
    }
}

/// Turns a transaction error into ours: fencing is its own kind.
fn txn_error(operation: &str, e: &KafkaError) -> StreamsError {
    if is_fenced(e) {
        StreamsError::Fenced(operation.to_owned())
    } else {
        kafka_error(operation, e)
    }
}

impl Output {
    pub(crate) fn new(config: &rdkafka::config::ClientConfig, transactional: bool) -> Result<Self, StreamsError> {
        let producer: BaseProducer<DeliveryContext> = config
            .create_with_context(DeliveryContext::default())
            .map_err(|e| kafka_error("creating the producer", &e))?;
        if transactional {
            producer.init_transactions(TXN_TIMEOUT).map_err(|e| txn_error("initialising transactions", &e))?;
        }
        Ok(Self { producer, transactional, in_transaction: false, partitions: Mutex::default(), sent: 0 })
    }

    /// Opens the thread's transaction if none is open (exactly-once only).
    pub(crate) fn begin(&mut self) -> Result<(), StreamsError> {
        if self.transactional && !self.in_transaction {
            self.producer.begin_transaction().map_err(|e| txn_error("beginning a transaction", &e))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    /// Waits until every record sent is acknowledged, serving delivery
    /// reports in short polls (rdkafka's `flush` polls in 100 ms slices,
    /// which would cost every commit at least that long).
    fn drain(&self) -> Result<(), StreamsError> {
        let deadline = std::time::Instant::now() + TXN_TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if std::time::Instant::now() >= deadline {
                return Err(StreamsError::Kafka {
                    operation: "flushing the producer".into(),
                    message: format!(
                        "{} records not acknowledged within {TXN_TIMEOUT:?}",
                        self.producer.in_flight_count()
                    ),
                });
            }
            self.producer.poll(Duration::from_millis(1));
        }
        Ok(())
    }

    pub(crate) fn has_open_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Serves delivery reports without blocking.
    pub(crate) fn poll(&self) {
        self.producer.poll(Duration::ZERO);
    }

    /// Commits: under exactly-once, the consumed `offsets` go into the
    /// transaction, which then commits; otherwise waits until every record is
    /// acknowledged. Returns the offset each written partition reached
    /// (next offset to read), for checkpoints.
    pub(crate) fn commit(
        &mut self,
        offsets: &TopicPartitionList,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<HashMap<(String, i32), i64>, StreamsError> {
        if self.transactional {
            if self.in_transaction {
                if offsets.count() > 0 {
                    let group = group.ok_or_else(|| {
                        StreamsError::IllegalState("no consumer group metadata to commit offsets with".into())
                    })?;
                    self.producer
                        .send_offsets_to_transaction(offsets, group, TXN_TIMEOUT)
                        .map_err(|e| txn_error("sending offsets to the transaction", &e))?;
                }
                self.drain()?;
                self.producer
                    .commit_transaction(TXN_TIMEOUT)
                    .map_err(|e| txn_error("committing the transaction", &e))?;
                self.in_transaction = false;
            }
        } else {
            self.drain()?;
        }
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((topic, message)) = d.error.take() {
            return Err(StreamsError::Kafka { operation: format!("writing to topic `{topic}`"), message });
        }
        Ok(std::mem::take(&mut d.offsets).into_iter().map(|(tp, o)| (tp, o + 1)).collect())
    }

    /// Aborts the open transaction (exactly-once) or drops what is queued.
    pub(crate) fn abort(&mut self) {
        if self.transactional && self.in_transaction {
            // Nothing queued is wanted any more; what is in flight must still
            // be reported (served by poll) before librdkafka can abort.
            self.producer.purge(PurgeConfig::default().queue());
            let deadline = std::time::Instant::now() + TXN_TIMEOUT;
            while self.producer.in_flight_count() > 0 && std::time::Instant::now() < deadline {
                self.producer.poll(Duration::from_millis(50));
            }
            if let Err(e) = self.producer.abort_transaction(TXN_TIMEOUT) {
                tracing::warn!(error = %e, "aborting the transaction failed");
            }
            self.in_transaction = false;
        }
        let mut d = self.producer.context().deliveries.lock().unwrap_or_else(PoisonError::into_inner);
        d.offsets.clear();
        d.error = None;
    }
}

impl RecordCollector for Output {
    fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError> {
        self.begin().map_err(|e| ProcessorError::Send { topic: record.topic.clone(), message: e.to_string() })?;
        let headers = (!record.headers.is_empty()).then(|| {
            record.headers.iter().fold(OwnedHeaders::new(), |h, header| {
                h.insert(KafkaHeader { key: &header.key, value: header.value.as_deref() })
            })
        });
        let mut base: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&record.topic).timestamp(record.timestamp);
        if let Some(k) = &record.key {
            base = base.key(k.as_slice());
        }
        if let Some(v) = &record.value {
            base = base.payload(v.as_slice());
        }
        if let Some(p) = record.partition {
            base = base.partition(p);
        }
        if let Some(h) = headers {
            base = base.headers(h);
        }
        loop {
            match self.producer.send(base) {
                Ok(()) => {
                    self.sent += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // Back-pressure: serve delivery reports until there is room.
                    base = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    return Err(ProcessorError::Send { topic: record.topic.clone(), message: e.to_string() })
                }
            }
        }
    }

    fn partition_count(&self, topic: &str) -> Option<i32> {
        let mut cache = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&n) = cache.get(topic) {
            return Some(n);
        }
        let metadata = self.producer.client().fetch_metadata(Some(topic), Duration::from_secs(10)).ok()?;
        let n = metadata.topics().first().map(|t| i32::try_from(t.partitions().len()).unwrap_or(0))?;
        (n > 0).then(|| {
            cache.insert(topic.to_owned(), n);
            n
        })
    }
}
