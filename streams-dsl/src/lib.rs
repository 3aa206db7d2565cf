//! # streams-dsl
//!
//! The crate Rivulet applications depend on. It will hold the typed DSL
//! (`StreamsBuilder`, `KStream`, `KTable`, windowed aggregations, joins),
//! which only ever builds a [`streams_core::Topology`]; the DSL operators are
//! still being written. Today it re-exports the core so that an application
//! needs this one dependency: the Processor API, serdes, topologies and the
//! [`TopologyTestDriver`] are all reachable from here.
//!
//! What it is not: a runtime. Running a topology belongs to `streams-core`.
//!
//! ```
//! use streams_dsl::prelude::*;
//!
//! let mut topology = Topology::new();
//! topology
//!     .add_source("in", &["in"], StringSerde, StringSerde)?
//!     .add_sink("out", "out", StringSerde, StringSerde, &["in"])?;
//! let driver = TopologyTestDriver::new(&topology)?;
//! driver.create_input_topic("in", StringSerde, StringSerde).pipe_input_at("k".into(), "v".into(), 0)?;
//! let out = driver.create_output_topic("out", StringSerde, StringSerde);
//! assert_eq!(out.read_key_value()?, ("k".to_owned(), "v".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub use streams_core::*;
