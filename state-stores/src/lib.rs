//! # state-stores
//!
//! Rivulet's storage layer: the traits and implementations of the state stores
//! that stream processors read and write. Keys and values are bytes here; typed
//! access with serdes is layered on top by `streams-core`.
//!
//! What this crate is:
//! - the [`KeyValueStore`] trait (get, put, put-if-absent, delete, ordered range
//!   and prefix scans, full scans, approximate counts);
//! - [`InMemoryKeyValueStore`], an ordered in-memory implementation.
//!
//! What it is not: it knows nothing about Kafka. Logging store writes to a
//! changelog topic and restoring from it is the runtime's job (`streams-core`).
//!
//! ```
//! use state_stores::{InMemoryKeyValueStore, KeyValueStore};
//!
//! let mut store = InMemoryKeyValueStore::new("counts");
//! store.put(b"apple", b"3")?;
//! store.put(b"banana", b"1")?;
//! assert_eq!(store.get(b"apple")?, Some(b"3".to_vec()));
//! let fruits: Vec<_> = store.prefix_scan(b"b")?.map(|(k, _)| k).collect();
//! assert_eq!(fruits, vec![b"banana".to_vec()]);
//! # Ok::<(), state_stores::StoreError>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod error;
mod key_value;

pub use error::StoreError;
pub use key_value::{InMemoryKeyValueStore, KeyValueIter, KeyValueStore};
