//! # streams-core
//!
//! The core of Rivulet, a Kafka Streams for Rust: records and serdes, the
//! Processor API, topologies, and the broker-free [`TopologyTestDriver`].
//!
//! A tour:
//! - [`Record`], [`Headers`], [`RecordMetadata`]: what flows through a topology.
//! - [`serde`]: the [`Serde`] trait and Kafka-compatible built-ins (bytes,
//!   UTF-8 strings, big-endian integers and doubles, serde-JSON, nullable
//!   wrappers). Errors are typed and name the topic; nothing panics on input.
//! - [`Processor`] and [`ProcessorContext`]: the low-level API (forward to all
//!   or named children, punctuate on stream or wall-clock time, use stores).
//! - [`Topology`]: sources, processors, sinks and stores, validated as they
//!   are added, split into sub-topologies, printed by [`Topology::describe`].
//! - [`TopologyTestDriver`]: run a topology synchronously in tests.
//! - [`StreamsConfig`]: settings under Kafka Streams' names, validated.
//! - [`KafkaStreams`] (in [`runtime`]): runs a topology on a cluster with
//!   stream threads, changelog-backed stores and exactly-once transactions;
//!   `http.listen` adds an HTTP server for health probes, Prometheus
//!   metrics, the topology and the store list.
//!
//! What it is not: the typed DSL (`StreamsBuilder`, `KStream`, `KTable`) lives
//! in `streams-dsl`, and the stores themselves in `state-stores`.
//!
//! ## Example: a counting processor, driven without a broker
//!
//! ```
//! use streams_core::prelude::*;
//!
//! /// Counts records per key in a store and forwards the new count.
//! struct Count {
//!     store: Option<KeyValueStoreHandle<String, i64>>,
//! }
//!
//! impl Processor<String, String, String, i64> for Count {
//!     fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessorError> {
//!         self.store = Some(ctx.key_value_store("counts")?);
//!         Ok(())
//!     }
//!
//!     fn process(&mut self, record: Record<String, String>, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessorError> {
//!         let Some(store) = &self.store else { return Ok(()) };
//!         let count = store.get(record.key())?.unwrap_or(0) + 1;
//!         store.put(record.key(), &count)?;
//!         ctx.forward(record.with_value(count))
//!     }
//! }
//!
//! let mut topology = Topology::new();
//! topology
//!     .add_source("words", &["words"], StringSerde, StringSerde)?
//!     .add_processor("count", || Count { store: None }, &["words"])?
//!     .add_state_store(
//!         Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts"), StringSerde, I64Serde),
//!         &["count"],
//!     )?
//!     .add_sink("out", "word-counts", StringSerde, I64Serde, &["count"])?;
//!
//! let driver = TopologyTestDriver::new(&topology)?;
//! let words = driver.create_input_topic("words", StringSerde, StringSerde);
//! let counts = driver.create_output_topic("word-counts", StringSerde, I64Serde);
//! for word in ["kafka", "rust", "kafka"] {
//!     words.pipe_input(word.to_owned(), String::new())?;
//! }
//! assert_eq!(
//!     counts.read_key_values_to_list()?,
//!     vec![("kafka".to_owned(), 1), ("rust".to_owned(), 1), ("kafka".to_owned(), 2)]
//! );
//! assert_eq!(driver.key_value_store::<String, i64>("counts")?.get(&"kafka".to_owned())?, Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod config;
mod erased;
pub mod error;
pub mod internal_topics;
pub mod partitioner;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
pub mod store;
mod task_engine;
pub mod test_driver;
pub mod topology;

pub use config::{ConfigError, ErrorHandling, ProcessingGuarantee, RecordingLevel, StreamsConfig};
pub use error::{BoxError, ProcessorError, StreamsError, TopologyError};
pub use processor::{Processor, ProcessorContext, PunctuationType, ScheduleId};
pub use record::{Header, Headers, Record, RecordMetadata};
pub use runtime::{HostInfo, KafkaStreams, KeyQueryMetadata, State as StreamsState, StreamsMetadata};
pub use serde::{Serde, SerdeError};
pub use store::{
    KeyValueStoreHandle, KeyValueStoreType, LocalStores, OperationMetrics, QueryableStoreType, QueryableStoreTypes,
    ReadOnlyKeyValueStore, ReadOnlySessionStore, ReadOnlyWindowStore, SessionStoreHandle, SessionStoreType,
    StoreBuilder, StoreKind, StoreMetrics, StoreOperation, StoreQueryParameters, StoreSupplier, Stores,
    TimestampedKeyValueStoreHandle, Window, WindowStoreHandle, WindowStoreType, Windowed,
};
pub use task_engine::TaskId;
pub use test_driver::{TestDriverConfig, TestInputTopic, TestOutputTopic, TestRecord, TopologyTestDriver};
pub use topology::{InternalTopic, OffsetReset, RawRecord, SinkSpec, Topology, TopologyDescription};

/// The names most programs need, in one `use`.
pub mod prelude {
    pub use crate::error::{ProcessorError, StreamsError, TopologyError};
    pub use crate::processor::{Processor, ProcessorContext, PunctuationType, ScheduleId};
    pub use crate::record::{Headers, Record, RecordMetadata};
    pub use crate::serde::{
        BytesSerde, F64Serde, I32Serde, I64Serde, JsonSerde, Nullable, Serde, StringSerde, U64Serde,
    };
    pub use crate::store::{
        KeyValueStoreHandle, SessionStoreHandle, Stores, TimestampedKeyValueStoreHandle, Window, WindowStoreHandle,
        Windowed,
    };
    pub use crate::test_driver::{TestDriverConfig, TestRecord, TopologyTestDriver};
    pub use crate::topology::{SinkSpec, Topology};
    pub use crate::{KafkaStreams, QueryableStoreTypes, StoreQueryParameters, StreamsConfig};
}
