//! State stores as processors see them: suppliers and builders that a
//! topology holds, and typed handles over the byte-level stores of the
//! `state-stores` crate.

mod change_logging;
mod handles;
mod json;
mod query;

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use state_stores::{
    KeyValueStore, KvStore, Retention, RocksDbConfig, SegmentedSessionStore, SegmentedWindowStore, SessionStore,
    StateStore, StoreError, WindowStore,
};

pub(crate) use change_logging::ChangeLogging;
pub use handles::{
    KeyValueStoreHandle, SessionStoreHandle, TimestampedKeyValueStoreHandle, Window, WindowStoreHandle, Windowed,
};
pub(crate) use json::{JsonEntry, JsonQueryError, JsonView};
pub use query::{
    KeyValueStoreType, LocalStores, QueryableStoreType, QueryableStoreTypes, ReadOnlyKeyValueStore,
    ReadOnlySessionStore, ReadOnlyWindowStore, SessionStoreType, StoreQueryParameters, WindowStoreType,
};
use state_stores::{Metered, StoreMeters};
pub use state_stores::{OperationMetrics, StoreOperation};

use crate::erased::DataTypes;
use crate::error::StreamsError;
use crate::serde::Serde;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The operation figures of one task's instance of a store, from its
/// metered layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreMetrics {
    /// The task that owns the instance.
    pub task: crate::task_engine::TaskId,
    /// The store's name.
    pub store: String,
    /// The operations that ran at least once.
    pub operations: Vec<OperationMetrics>,
}

impl StoreMetrics {
    /// The calls of `operation` so far (0 if it never ran).
    pub fn count(&self, operation: StoreOperation) -> u64 {
        self.operations.iter().find(|o| o.operation == operation).map_or(0, |o| o.count)
    }
}

/// What kind of store a supplier makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// Key-value.
    KeyValue,
    /// Values per key and window start.
    Window {
        /// Window size, ms (to know each window's end).
        window_size_ms: i64,
        /// Retention and segments.
        retention: Retention,
        /// Keep every put (stream-stream joins) instead of replacing.
        retain_duplicates: bool,
    },
    /// Session windows.
    Session {
        /// Retention and segments.
        retention: Retention,
    },
}

/// Makes the byte-level store of one task: in memory or in RocksDB.
#[derive(Debug, Clone)]
pub struct StoreSupplier {
    name: String,
    persistent: bool,
    kind: StoreKind,
}

impl StoreSupplier {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the store lives in RocksDB (under `state.dir`).
    pub fn persistent(&self) -> bool {
        self.persistent
    }

    /// The kind of store.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }
}

/// Where a task's persistent stores live and how RocksDB is tuned.
#[derive(Debug, Clone)]
pub(crate) struct StoreContext {
    /// `state.dir/application.id/<task>`; stores go in sub-directories.
    pub(crate) task_dir: PathBuf,
    pub(crate) rocksdb: RocksDbConfig,
    /// The task's record cache budget; 0 turns caching off.
    pub(crate) cache_max_bytes: u64,
    /// Whether the metered layer times operations (`metrics.recording.level`
    /// DEBUG or TRACE) besides counting them.
    pub(crate) timed_operations: bool,
}

/// One task's instance of a byte-level store.
#[derive(Clone)]
pub(crate) enum StoreInstance {
    KeyValue(Arc<Mutex<Box<dyn KeyValueStore>>>),
    Window(Arc<Mutex<Box<dyn WindowStore>>>),
    Session(Arc<Mutex<Box<dyn SessionStore>>>),
}

pub(crate) fn lock<T: ?Sized>(m: &Mutex<Box<T>>) -> MutexGuard<'_, Box<T>> {
    // Each store call is one operation on the open batch; a panic in another
    // holder cannot leave it half-applied, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl StoreInstance {
    fn with<R>(&self, f: impl FnOnce(&mut dyn StateStore) -> R) -> R {
        match self {
            Self::KeyValue(s) => f(&mut **lock(s)),
            Self::Window(s) => f(&mut **lock(s)),
            Self::Session(s) => f(&mut **lock(s)),
        }
    }
}

impl StoreSupplier {
    /// The inner store, under the metered layer (which counts into `meters`).
    fn make(&self, ctx: &StoreContext, meters: &Arc<StoreMeters>) -> Result<StoreInstance, StoreError> {
        let dir = ctx.task_dir.join(&self.name);
        let name = self.name.as_str();
        Ok(match self.kind {
            StoreKind::KeyValue => {
                let inner: Box<dyn KeyValueStore> = if self.persistent {
                    Box::new(KvStore::rocksdb(name, &dir, &ctx.rocksdb)?)
                } else {
                    Box::new(KvStore::in_memory(name))
                };
                StoreInstance::KeyValue(Arc::new(Mutex::new(Box::new(Metered::new(inner, Arc::clone(meters))))))
            }
            StoreKind::Window { retention, retain_duplicates, .. } => {
                let inner: Box<dyn WindowStore> = if self.persistent {
                    Box::new(SegmentedWindowStore::rocksdb(name, &dir, &ctx.rocksdb, retention, retain_duplicates)?)
                } else {
                    Box::new(SegmentedWindowStore::in_memory(name, retention, retain_duplicates))
                };
                StoreInstance::Window(Arc::new(Mutex::new(Box::new(Metered::new(inner, Arc::clone(meters))))))
            }
            StoreKind::Session { retention } => {
                let inner: Box<dyn SessionStore> = if self.persistent {
                    Box::new(SegmentedSessionStore::rocksdb(name, &dir, &ctx.rocksdb, retention)?)
                } else {
                    Box::new(SegmentedSessionStore::in_memory(name, retention))
                };
                StoreInstance::Session(Arc::new(Mutex::new(Box::new(Metered::new(inner, Arc::clone(meters))))))
            }
        })
    }
}

/// Factory functions for stores, as Kafka Streams' `Stores`.
#[derive(Debug, Clone, Copy)]
pub struct Stores;

impl Stores {
    /// A RocksDB key-value store.
    pub fn persistent_key_value_store(name: impl Into<String>) -> StoreSupplier {
        StoreSupplier { name: name.into(), persistent: true, kind: StoreKind::KeyValue }
    }

    /// An in-memory key-value store.
    pub fn in_memory_key_value_store(name: impl Into<String>) -> StoreSupplier {
        StoreSupplier { name: name.into(), persistent: false, kind: StoreKind::KeyValue }
    }

    fn window(name: String, persistent: bool, retention: Duration, window_size: Duration, dups: bool) -> StoreSupplier {
        StoreSupplier {
            name,
            persistent,
            kind: StoreKind::Window {
                window_size_ms: millis(window_size),
                retention: Retention::new(millis(retention)),
                retain_duplicates: dups,
            },
        }
    }

    /// A RocksDB window store keeping windows for `retention`.
    pub fn persistent_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> StoreSupplier {
        Self::window(name.into(), true, retention, window_size, retain_duplicates)
    }

    /// An in-memory window store keeping windows for `retention`.
    pub fn in_memory_window_store(
        name: impl Into<String>,
        retention: Duration,
        window_size: Duration,
        retain_duplicates: bool,
    ) -> StoreSupplier {
        Self::window(name.into(), false, retention, window_size, retain_duplicates)
    }

    /// A RocksDB session store keeping sessions for `retention` after they end.
    pub fn persistent_session_store(name: impl Into<String>, retention: Duration) -> StoreSupplier {
        StoreSupplier {
            name: name.into(),
            persistent: true,
            kind: StoreKind::Session { retention: Retention::new(millis(retention)) },
        }
    }

    /// An in-memory session store.
    pub fn in_memory_session_store(name: impl Into<String>, retention: Duration) -> StoreSupplier {
        StoreSupplier {
            name: name.into(),
            persistent: false,
            kind: StoreKind::Session { retention: Retention::new(millis(retention)) },
        }
    }

    fn builder<KS: Serde, VS: Serde>(supplier: StoreSupplier, ks: KS, vs: VS, timestamped: bool) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        let serdes = Arc::new(TypedSerdes::<KS::Target, VS::Target> { key: Arc::new(ks), value: Arc::new(vs) });
        let json = json::TypedJson::new(Arc::clone(&serdes), format!("{}-changelog", supplier.name));
        StoreBuilder {
            supplier,
            json: Arc::new(json),
            serdes,
            types: DataTypes::of::<KS::Target, VS::Target>(),
            timestamped,
            logging: true,
            caching: false,
        }
    }

    /// A typed key-value store: the supplier's bytes through these serdes.
    pub fn key_value_store_builder<KS: Serde, VS: Serde>(
        supplier: StoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        Self::builder(supplier, key_serde, value_serde, false)
    }

    /// A typed key-value store whose values carry the timestamp of the record
    /// that wrote them (what KTables use).
    pub fn timestamped_key_value_store_builder<KS: Serde, VS: Serde>(
        supplier: StoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        Self::builder(supplier, key_serde, value_serde, true)
    }

    /// A typed window store (the supplier must be a window supplier).
    pub fn window_store_builder<KS: Serde, VS: Serde>(
        supplier: StoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        Self::builder(supplier, key_serde, value_serde, false)
    }

    /// A typed window store whose values carry timestamps.
    pub fn timestamped_window_store_builder<KS: Serde, VS: Serde>(
        supplier: StoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        Self::builder(supplier, key_serde, value_serde, true)
    }

    /// A typed session store (the supplier must be a session supplier).
    pub fn session_store_builder<KS: Serde, VS: Serde>(
        supplier: StoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS::Target: 'static,
        VS::Target: 'static,
    {
        Self::builder(supplier, key_serde, value_serde, false)
    }
}

pub(crate) struct TypedSerdes<K, V> {
    pub(crate) key: Arc<dyn Serde<Target = K>>,
    pub(crate) value: Arc<dyn Serde<Target = V>>,
}

/// Describes a state store of a topology; each task builds its own instance.
#[derive(Clone)]
pub struct StoreBuilder {
    supplier: StoreSupplier,
    serdes: Arc<dyn Any + Send + Sync>,
    /// The same serdes, untyped, for the HTTP query endpoints.
    json: Arc<dyn JsonView>,
    types: DataTypes,
    timestamped: bool,
    logging: bool,
    caching: bool,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("supplier", &self.supplier)
            .field("types", &self.types.to_string())
            .field("timestamped", &self.timestamped)
            .field("logging", &self.logging)
            .field("caching", &self.caching)
            .finish()
    }
}

impl StoreBuilder {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.supplier.name
    }

    /// The supplier.
    pub fn supplier(&self) -> &StoreSupplier {
        &self.supplier
    }

    /// Turns logging to a changelog topic off (it is on by default). Without a
    /// changelog, the store's content is lost with its local files.
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Whether writes are logged to `<application.id>-<store>-changelog`.
    pub fn logging_enabled(&self) -> bool {
        self.logging
    }

    /// Turns the record cache on: repeated updates of a key between commits
    /// reach downstream once (the DSL's table operators) and the changelog
    /// once, at the commit, unless they outgrow `statestore.cache.max.bytes`
    /// first.
    pub fn with_caching(mut self) -> Self {
        self.caching = true;
        self
    }

    /// Whether the record cache is on.
    pub fn caching_enabled(&self) -> bool {
        self.caching
    }

    /// The store's keys and values as text and JSON (HTTP queries).
    pub(crate) fn json(&self) -> &Arc<dyn JsonView> {
        &self.json
    }

    /// The change-logging layer over a task's instance of this store, when
    /// logging is on: it sends the store's writes to `changelog` on the
    /// task's `partition`, held one per key between commits when caching is
    /// on too (and the context's cache budget is not 0).
    pub(crate) fn change_logging(
        &self,
        entry: &StoreEntry,
        changelog: Arc<str>,
        partition: i32,
        ctx: &StoreContext,
    ) -> Option<ChangeLogging> {
        let caching = self.caching && ctx.cache_max_bytes > 0;
        self.logging.then(|| ChangeLogging::new(entry.clone(), changelog, partition, caching))
    }

    /// A task's instance: the metered layer over the supplier's store.
    pub(crate) fn build(&self, ctx: &StoreContext, serde_topic: String) -> Result<StoreEntry, StreamsError> {
        let meters = Arc::new(StoreMeters::new(ctx.timed_operations));
        Ok(StoreEntry {
            name: self.supplier.name.clone(),
            kind: self.supplier.kind,
            instance: self.supplier.make(ctx, &meters)?,
            meters,
            serdes: Arc::clone(&self.serdes),
            types: self.types,
            timestamped: self.timestamped,
            serde_topic,
        })
    }
}

/// One task's instance of a store, with its serdes. Clones share the instance
/// (global stores are read by every task).
#[derive(Clone)]
pub(crate) struct StoreEntry {
    name: String,
    kind: StoreKind,
    instance: StoreInstance,
    meters: Arc<StoreMeters>,
    serdes: Arc<dyn Any + Send + Sync>,
    types: DataTypes,
    timestamped: bool,
    serde_topic: String,
}

/// What a typed handle is made from.
pub(crate) struct HandleParts<K, V> {
    pub(crate) name: String,
    pub(crate) serde_topic: String,
    pub(crate) serdes: Arc<TypedSerdes<K, V>>,
}

impl StoreEntry {
    fn parts<K: 'static, V: 'static>(&self, want: &str) -> Result<HandleParts<K, V>, StreamsError> {
        let requested = DataTypes::of::<K, V>();
        let mismatch = |actual: String| StreamsError::StoreType {
            store: self.name.clone(),
            requested: format!("{want} of {requested}"),
            actual,
        };
        let actual = format!("{} of {}", self.kind_name(), self.types);
        if !requested.matches(&self.types) || self.kind_name() != want {
            return Err(mismatch(actual));
        }
        let serdes = Arc::clone(&self.serdes).downcast::<TypedSerdes<K, V>>().map_err(|_| mismatch(actual))?;
        Ok(HandleParts { name: self.name.clone(), serde_topic: self.serde_topic.clone(), serdes })
    }

    fn kind_name(&self) -> &'static str {
        match (self.kind, self.timestamped) {
            (StoreKind::KeyValue, false) => "key-value store",
            (StoreKind::KeyValue, true) => "timestamped key-value store",
            (StoreKind::Window { .. }, false) => "window store",
            (StoreKind::Window { .. }, true) => "timestamped window store",
            (StoreKind::Session { .. }, _) => "session store",
        }
    }

    pub(crate) fn key_value<K: 'static, V: 'static>(&self) -> Result<KeyValueStoreHandle<K, V>, StreamsError> {
        let parts = self.parts::<K, V>("key-value store")?;
        match &self.instance {
            StoreInstance::KeyValue(s) => Ok(KeyValueStoreHandle::new(parts, Arc::clone(s))),
            _ => Err(StreamsError::UnknownStore(self.name.clone())),
        }
    }

    pub(crate) fn timestamped_key_value<K: 'static, V: 'static>(
        &self,
    ) -> Result<TimestampedKeyValueStoreHandle<K, V>, StreamsError> {
        let parts = self.parts::<K, V>("timestamped key-value store")?;
        match &self.instance {
            StoreInstance::KeyValue(s) => Ok(TimestampedKeyValueStoreHandle::new(parts, Arc::clone(s))),
            _ => Err(StreamsError::UnknownStore(self.name.clone())),
        }
    }

    pub(crate) fn window<K: 'static, V: 'static>(
        &self,
        timestamped: bool,
    ) -> Result<WindowStoreHandle<K, V>, StreamsError> {
        let parts = self.parts::<K, V>(if timestamped { "timestamped window store" } else { "window store" })?;
        match (&self.instance, self.kind) {
            (StoreInstance::Window(s), StoreKind::Window { window_size_ms, .. }) => {
                Ok(WindowStoreHandle::new(parts, Arc::clone(s), window_size_ms, timestamped))
            }
            _ => Err(StreamsError::UnknownStore(self.name.clone())),
        }
    }

    pub(crate) fn session<K: 'static, V: 'static>(&self) -> Result<SessionStoreHandle<K, V>, StreamsError> {
        let parts = self.parts::<K, V>("session store")?;
        match &self.instance {
            StoreInstance::Session(s) => Ok(SessionStoreHandle::new(parts, Arc::clone(s))),
            _ => Err(StreamsError::UnknownStore(self.name.clone())),
        }
    }

    pub(crate) fn commit(&self, changelog_offset: Option<u64>) -> Result<(), StreamsError> {
        self.instance.with(|s| s.commit(changelog_offset)).map_err(StreamsError::from)
    }

    pub(crate) fn abort(&self) {
        self.instance.with(|s| s.abort())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The metered layer's figures for this instance, as `task`'s.
    pub(crate) fn operation_metrics(&self, task: crate::task_engine::TaskId) -> StoreMetrics {
        StoreMetrics { task, store: self.name.clone(), operations: self.meters.snapshot() }
    }

    /// RocksDB's figures for this instance of the store (`None` in memory).
    pub(crate) fn rocksdb_figures(&self) -> Option<state_stores::RocksDbFigures> {
        self.instance.with(|s| s.rocksdb_figures())
    }

    /// The changelog offset the committed state reaches, if stored.
    pub(crate) fn checkpoint(&self) -> Option<u64> {
        self.instance.with(|s| s.checkpoint())
    }

    /// Holds a key-value instance's lock (`None` for other kinds): its
    /// operations, restore writes among them, wait until the guard goes.
    #[cfg(test)]
    pub(crate) fn lock_key_value(&self) -> Option<MutexGuard<'_, Box<dyn KeyValueStore>>> {
        match &self.instance {
            StoreInstance::KeyValue(s) => Some(lock(s)),
            _ => None,
        }
    }

    /// Applies changelog records in bulk and advances the checkpoint to `offset`.
    pub(crate) fn restore_batch(
        &self,
        records: &mut dyn Iterator<Item = state_stores::ChangelogRecord>,
        offset: u64,
    ) -> Result<(), StreamsError> {
        self.instance.with(|s| s.restore_batch(records, offset)).map_err(StreamsError::from)
    }

    pub(crate) fn close(&self) -> Result<(), StreamsError> {
        self.instance.with(|s| s.close()).map_err(StreamsError::from)
    }

    /// Turns the store's change log on or off (the change-logging layer's source).
    fn set_change_logging(&self, on: bool) {
        self.instance.with(|s| s.set_change_logging(on))
    }

    /// The writes the store logged since the last take (see
    /// [`state_stores::StateStore::take_changes`]).
    fn take_changes(&self, into: &mut Vec<state_stores::ChangelogRecord>) {
        self.instance.with(|s| s.take_changes(into))
    }
}
