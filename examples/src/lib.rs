//! # rivulet-examples
//!
//! The example applications' topologies, shared by their binaries (in
//! `src/bin/`) and by the tests that check their topic contracts.
//!
//! - [`word_count`]: running word counts from text lines.
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

mod apps;

pub use apps::word_count;
