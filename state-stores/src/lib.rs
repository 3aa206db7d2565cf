//! # state-stores
//!
//! Rivulet's storage layer: the state stores that stream processors read and
//! write, in RocksDB or in memory, with transactional write batches and
//! changelog checkpoints. Keys and values are bytes here; typed access with
//! serdes is layered on top by `streams-core`.
//!
//! A tour:
//! - [`StateStore`]: what every store offers. Writes enter an open batch that
//!   reads see at once; [`commit`](StateStore::commit) applies the batch and the
//!   changelog offset it reaches in one atomic write (one RocksDB `WriteBatch`);
//!   [`abort`](StateStore::abort) drops it. With the change log on
//!   ([`set_change_logging`](StateStore::set_change_logging)), every write is
//!   also kept in changelog form until the runtime takes it for the changelog
//!   topic, and
//!   [`restore_batch`](StateStore::restore_batch) bulk-applies changelog records.
//! - [`KeyValueStore`] / [`KvStore`]: ordered key-value stores.
//! - [`WindowStore`] / [`SegmentedWindowStore`]: values per key and window
//!   start, with retention that drops whole time segments.
//! - [`SessionStore`] / [`SegmentedSessionStore`]: session windows, found by overlap.
//! - [`TimestampedKeyValueStore`], [`TimestampedWindowStore`]: values with the
//!   timestamp of the record that wrote them (KTables).
//! - [`Metered`]: the outermost layer over any store, counting (and, with
//!   [`StoreMeters::new(true)`](StoreMeters::new), timing) each
//!   [`StoreOperation`].
//! - [`RocksDbConfig`]: shared block cache, write buffers, compression, one
//!   memory budget, a read cache of committed entries (point reads without a
//!   memtable search), and a hook to set any RocksDB option per store.
//!
//! What it is not: it knows nothing about Kafka. Sending changes to changelog
//! topics and reading them back is the runtime's job (`streams-core`).
//!
//! ```
//! use state_stores::{KeyValueStore, KvStore, RocksDbConfig, StateStore};
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = KvStore::rocksdb("counts", dir.path(), &RocksDbConfig::default())?;
//! store.put(b"apple", b"3")?;
//! assert_eq!(store.get(b"apple")?, Some(b"3".to_vec()), "reads see the open batch");
//! store.commit(Some(42))?;
//! store.put(b"banana", b"1")?;
//! store.abort();
//! drop(store);
//!
//! let store = KvStore::rocksdb("counts", dir.path(), &RocksDbConfig::default())?;
//! assert_eq!(store.checkpoint(), Some(42));
//! assert_eq!(store.get(b"banana")?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod backend;
mod encoding;
mod error;
mod key_value;
mod layers;
mod segmented;
mod session;
mod timestamped;
mod tx;
mod window;

pub use backend::rocks::{Compression, RocksDbConfig, RocksDbConfigSetter};
pub use error::StoreError;
pub use key_value::{KeyValueStore, KvStore};
pub use layers::{Metered, OperationMetrics, StoreMeters, StoreOperation};
pub use session::{SegmentedSessionStore, SessionEntry, SessionStore};
pub use timestamped::{TimestampedKeyValueStore, TimestampedWindowStore, ValueAndTimestamp};
pub use tx::{ChangelogRecord, EntryIter, RocksDbFigures, StateStore};
pub use window::{Retention, SegmentedWindowStore, WindowEntry, WindowStore};

/// The RocksDB bindings, for [`RocksDbConfig::with_config_setter`] hooks.
pub use rocksdb;
