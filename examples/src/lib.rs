//! # rivulet-examples
//!
//! The example applications' topologies, shared by their binaries (in
//! `src/bin/`) and by the tests that check their topic contracts.
//!
//! - [`word_count`]: running word counts from text lines.
//! - [`fraud_detection`]: windowed aggregation with suppression: suspicious cards per minute.
//! - [`order_enrichment`]: stream–table left join (KTable lookups) and a table aggregation with subtractor.
//! - [`page_views`]: final per-minute page counts and user sessions.
//! - [`cli`]: the command line, embedded cluster and status line every binary shares.
//! - [`format`]: JSON or Avro (Confluent wire format, schema registry) on the external topics.
//!
//! Feature `mimalloc` (default): every binary linking this crate (the
//! examples, their tests and the benchmark harness) allocates through
//! mimalloc, measurably cheaper than glibc's malloc on the per-record path
//! (see the README's benchmark section). The Rivulet libraries themselves
//! never choose an allocator; an application does, as here.
//!
//! What it is not: a library to depend on. Copy an example as a starting point.
//!
//! ```
//! use rivulet_examples::word_count;
//!
//! let topology = word_count::topology(word_count::INPUT, word_count::OUTPUT)?;
//! assert!(topology.describe().to_string().contains("text-lines"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod apps;
pub mod cli;
pub mod format;

pub use apps::{fraud_detection, money, order_enrichment, page_views, word_count};
