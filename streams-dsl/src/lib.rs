//! # streams-dsl
//!
//! The typed DSL of Rivulet, in the shape of Kafka Streams' `StreamsBuilder`:
//! streams and tables built from chained calls, which only ever produce a
//! [`streams_core::Topology`]. The same topology runs on the
//! [`TopologyTestDriver`] and on a Kafka cluster.
//!
//! A tour:
//! - [`StreamsBuilder`]: `stream`, `table`, then [`build`](StreamsBuilder::build).
//! - [`KStream`]: filter, map, flat_map, select_key, peek, foreach, merge,
//!   split/branch, repartition, to, process; joins with tables.
//! - [`KGroupedStream`]: count, reduce, aggregate; over [`TimeWindows`]
//!   (tumbling, hopping), [`SlidingWindows`] and [`SessionWindows`]; `cogroup`
//!   of several grouped streams into one aggregate.
//! - [`KTable`]: filter, map_values, to_stream, group_by ([`KGroupedTable`]
//!   with adder and subtractor), joins (inner/left/outer, and by foreign key),
//!   `suppress` (until a window closes, or a time limit, with bounded buffers).
//! - [`GlobalKTable`]: a whole topic on every instance, joined by key mapper.
//! - Stream–stream joins over [`JoinWindows`] emit unmatched left/outer records
//!   only once their window closed (no spurious results).
//! - Aggregations cache updates between commits by default (as Kafka
//!   Streams' record cache; `Materialized::without_caching` turns it off).
//! - Options named as in Kafka Streams: [`Consumed`], [`Produced`],
//!   [`Grouped`], [`Materialized`], [`Repartitioned`].
//!
//! Key-changing operators mark a stream for repartitioning; the next
//! aggregation or join inserts the repartition topic itself
//! (`<application.id>-<name>-repartition`). Records dropped on purpose (null
//! keys, records for windows past their grace period) are counted per reason
//! and logged at debug level.
//!
//! What it is not: a runtime. It re-exports the core (`streams_core::*`) so
//! that an application needs this one dependency.
//!
//! ## Word count
//!
//! ```
//! use streams_dsl::prelude::*;
//!
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream(&["text-lines"], Consumed::with(Nullable(StringSerde), StringSerde))
//!     .flat_map_values(|line: String| line.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect::<Vec<_>>())
//!     .group_by(|_, word| word.clone(), Grouped::with(StringSerde, StringSerde))
//!     .count()
//!     .to_stream()
//!     .to_with("word-counts", Produced::with(StringSerde, Nullable(I64Serde)));
//! let topology = builder.build()?;
//!
//! let driver = TopologyTestDriver::new(&topology)?;
//! let lines = driver.create_input_topic("text-lines", Nullable(StringSerde), StringSerde);
//! let counts = driver.create_output_topic("word-counts", StringSerde, Nullable(I64Serde));
//! lines.pipe_input(None, "to be or not to be".to_owned())?;
//! let last = counts.read_key_values_to_map()?;
//! assert_eq!(last["to"], Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Avro through a schema registry
//!
//! With the `avro` feature (also `protobuf`, `json-schema`), values travel in
//! Confluent's wire format: schemas are registered and fetched once per id,
//! and records written with older or newer compatible schemas are resolved
//! to the reader's.
//!
//! ```no_run
//! # #[cfg(feature = "avro")] {
//! use streams_dsl::prelude::*;
//! use streams_dsl::runtime::KafkaStreams;
//! use streams_dsl::serde::{AvroSerde, SchemaRegistryClient};
//! use streams_dsl::StreamsConfig;
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! struct Payment { card_id: String, amount: f64 }
//! const PAYMENT: &str = r#"{"type": "record", "name": "Payment", "fields": [
//!     {"name": "card_id", "type": "string"}, {"name": "amount", "type": "double"}]}"#;
//!
//! let registry = SchemaRegistryClient::from_url("http://localhost:8081");
//! let payments = AvroSerde::<Payment>::with_schema(&registry, PAYMENT)?;
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream(&["payments"], Consumed::with(Nullable(StringSerde), payments.clone()))
//!     .filter(|_, p: &Payment| p.amount > 1000.0)
//!     .to_with("large-payments", Produced::with(Nullable(StringSerde), payments));
//! let streams = KafkaStreams::new(builder.build()?, StreamsConfig::new("large-payments", "localhost:9092"))?;
//! streams.start()?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
// The DSL stores user closures as `Arc<dyn Fn(..) -> .. + Send + Sync>`; each
// signature is spelled out where the operator that takes it is built.
#![allow(clippy::type_complexity)]

mod builder;
mod cache;
mod fk_join;
mod global;
mod grouped;
mod joins;
mod kstream;
mod ktable;
mod options;
mod processors;
mod serdes;
mod sliding;
mod suppress;
mod window_close;
mod windows;

pub use builder::{Data, DslError, SerdeRef, StreamsBuilder};
pub use global::GlobalKTable;
pub use grouped::{CogroupedKStream, KGroupedStream, KGroupedTable, SessionWindowedKStream, TimeWindowedKStream};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::{Change, KTable};
pub use options::{Consumed, Grouped, Materialized, Produced, Repartitioned};
pub use serdes::WindowedSerde;
pub use sliding::SlidingWindowedKStream;
pub use streams_core::*;
pub use suppress::{BufferConfig, Suppressed};
pub use windows::{JoinWindows, SessionWindows, SlidingWindows, TimeWindows};

/// The names most applications need, in one `use`.
pub mod prelude {
    pub use crate::{
        BufferConfig, Change, Consumed, GlobalKTable, Grouped, JoinWindows, KGroupedStream, KGroupedTable, KStream,
        KTable, Materialized, Produced, Repartitioned, SessionWindows, SlidingWindows, StreamsBuilder, Suppressed,
        TimeWindows, WindowedSerde,
    };
    pub use streams_core::prelude::*;
}

/// The README's Rust snippets, compiled (and the runnable ones run) as doc
/// tests, so that the front page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeSnippets;
