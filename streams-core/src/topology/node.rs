//! The nodes of a topology as the engine sees them: decoders for sources,
//! processor factories, encoders for sinks.

use std::fmt;
use std::sync::Arc;

use crate::erased::{take, AnySlot, DataTypes, Slot};
use crate::error::ProcessorError;
use crate::processor::ErasedProcessor;
use crate::record::{Headers, Record, RecordMetadata};
use crate::serde::{Serde, SerdeError};

/// A record as it is read from or written to a topic: bytes and a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// The topic (shared: the records of one topic share its name).
    pub topic: std::sync::Arc<str>,
    /// The partition, when known (`None` lets the producer choose).
    pub partition: Option<i32>,
    /// The offset, for records that were read.
    pub offset: Option<i64>,
    /// The timestamp in ms since the epoch.
    pub timestamp: i64,
    /// The key bytes; `None` is a null key.
    pub key: Option<Vec<u8>>,
    /// The value bytes; `None` is a null value (a tombstone).
    pub value: Option<Vec<u8>>,
    /// The headers.
    pub headers: Headers,
}

/// Why a source could not turn a raw record into a typed one.
#[derive(Debug)]
pub(crate) enum DecodeError {
    Serde(SerdeError),
    InvalidTimestamp(i64),
}

pub(crate) trait SourceDecoder: Send + Sync {
    /// Decodes `raw` into `slot`, which is reused for every record: the
    /// first record (or one after the slot was lost to a panic) replaces
    /// a slot of other types with one of the source's. Returns the
    /// record's timestamp; on an error the slot holds no record.
    fn decode(&self, raw: &RawRecord, slot: &mut Box<dyn AnySlot>) -> Result<i64, DecodeError>;
}

pub(crate) type TimestampExtractorFn<K, V> = Arc<dyn Fn(&Record<K, V>) -> i64 + Send + Sync>;

pub(crate) struct TypedSource<K, V> {
    pub(crate) key: Arc<dyn Serde<Target = K>>,
    pub(crate) value: Arc<dyn Serde<Target = V>>,
    pub(crate) extractor: Option<TimestampExtractorFn<K, V>>,
}

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> SourceDecoder for TypedSource<K, V> {
    fn decode(&self, raw: &RawRecord, slot: &mut Box<dyn AnySlot>) -> Result<i64, DecodeError> {
        let key = self.key.deserialize(&raw.topic, &raw.headers, raw.key.as_deref()).map_err(DecodeError::Serde)?;
        let value =
            self.value.deserialize(&raw.topic, &raw.headers, raw.value.as_deref()).map_err(DecodeError::Serde)?;
        let mut record = Record::new(key, value, raw.timestamp).with_headers(raw.headers.clone());
        if let Some(extract) = &self.extractor {
            let ts = extract(&record);
            record = record.with_timestamp(ts);
        }
        let timestamp = record.timestamp();
        if timestamp < 0 {
            return Err(DecodeError::InvalidTimestamp(timestamp));
        }
        match slot.as_any().downcast_mut::<Slot<K, V>>() {
            Some(slot) => slot.0 = Some(record),
            None => *slot = Box::new(Slot(Some(record))),
        }
        Ok(timestamp)
    }
}

/// Resolves the topic a sink writes a record to.
pub(crate) type TopicExtractorFn<K, V> = Arc<dyn Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync>;
/// Chooses a partition: (topic, key, value, partition count) → partition, or
/// `None` for the producer's default partitioner.
pub(crate) type PartitionerFn<K, V> = Arc<dyn Fn(&str, &K, &V, i32) -> Option<i32> + Send + Sync>;

/// Where a sink writes and how it partitions.
pub struct SinkSpec<K, V> {
    pub(crate) target: SinkTarget<K, V>,
    pub(crate) partitioner: Option<PartitionerFn<K, V>>,
}

pub(crate) enum SinkTarget<K, V> {
    /// Shared with every record the sink writes.
    Topic(Arc<str>),
    Extractor(TopicExtractorFn<K, V>),
}

impl<K, V> fmt::Debug for SinkSpec<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            SinkTarget::Topic(t) => &**t,
            SinkTarget::Extractor(_) => "<topic extractor>",
        };
        f.debug_struct("SinkSpec").field("target", &target).field("partitioner", &self.partitioner.is_some()).finish()
    }
}

impl<K, V> SinkSpec<K, V> {
    /// Writes every record to `topic`.
    pub fn topic(topic: impl Into<String>) -> Self {
        Self { target: SinkTarget::Topic(topic.into().into()), partitioner: None }
    }

    /// Chooses the topic per record (Kafka Streams' `TopicNameExtractor`).
    pub fn extractor(f: impl Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync + 'static) -> Self {
        Self { target: SinkTarget::Extractor(Arc::new(f)), partitioner: None }
    }

    /// Chooses the partition per record (Kafka Streams' `StreamPartitioner`):
    /// `(topic, key, value, partition count)`; `None` keeps the default
    /// (murmur2 of the key bytes, as the Java client).
    pub fn with_partitioner(mut self, f: impl Fn(&str, &K, &V, i32) -> Option<i32> + Send + Sync + 'static) -> Self {
        self.partitioner = Some(Arc::new(f));
        self
    }

    pub(crate) fn describe_target(&self) -> SinkDescription {
        match &self.target {
            SinkTarget::Topic(t) => SinkDescription::Topic(t.to_string()),
            SinkTarget::Extractor(_) => SinkDescription::Extractor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkDescription {
    Topic(String),
    Extractor,
}

/// What a sink needs from the output side: partition counts, to partition.
pub(crate) trait PartitionCounts {
    fn partition_count(&self, topic: &str) -> Option<i32>;
}

pub(crate) trait SinkEncoder: Send + Sync {
    fn encode(
        &self,
        record: &mut dyn AnySlot,
        metadata: Option<&RecordMetadata>,
        partitions: &dyn PartitionCounts,
    ) -> Result<RawRecord, ProcessorError>;
}

pub(crate) struct TypedSink<K, V> {
    pub(crate) spec: SinkSpec<K, V>,
    pub(crate) key: Arc<dyn Serde<Target = K>>,
    pub(crate) value: Arc<dyn Serde<Target = V>>,
}

impl<K: 'static, V: 'static> SinkEncoder for TypedSink<K, V> {
    fn encode(
        &self,
        record: &mut dyn AnySlot,
        metadata: Option<&RecordMetadata>,
        partitions: &dyn PartitionCounts,
    ) -> Result<RawRecord, ProcessorError> {
        let record = take::<K, V>(record)?;
        let (key, value, timestamp, mut headers) = record.into_parts();
        let topic = match &self.spec.target {
            SinkTarget::Topic(t) => Arc::clone(t),
            SinkTarget::Extractor(f) => f(&key, &value, metadata).into(),
        };
        // Only a custom partitioner needs the count (a metadata lookup).
        let partition = match &self.spec.partitioner {
            Some(p) => partitions.partition_count(&topic).and_then(|n| p(&topic, &key, &value, n)),
            None => None,
        };
        let key_bytes = self.key.serialize(&topic, &mut headers, &key)?;
        let value_bytes = self.value.serialize(&topic, &mut headers, &value)?;
        Ok(RawRecord { topic, partition, offset: None, timestamp, key: key_bytes, value: value_bytes, headers })
    }
}

pub(crate) type ProcessorFactory = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

#[derive(Clone)]
pub(crate) enum NodeKind {
    Source { topics: Vec<String>, decoder: Arc<dyn SourceDecoder> },
    Processor { factory: ProcessorFactory },
    Sink { description: SinkDescription, encoder: Arc<dyn SinkEncoder> },
}

#[derive(Clone)]
pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) parents: Vec<usize>,
    pub(crate) children: Vec<usize>,
    pub(crate) stores: Vec<String>,
    pub(crate) output: Option<DataTypes>,
}

impl NodeDef {
    pub(crate) fn is_sink(&self) -> bool {
        matches!(self.kind, NodeKind::Sink { .. })
    }
}
