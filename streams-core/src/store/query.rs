//! Interactive queries: read-only, typed views of a state store over every
//! task of this instance that holds a partition of it
//! ([`KafkaStreams::store`](crate::KafkaStreams::store)), as Kafka Streams'
//! `StoreQueryParameters` and `QueryableStoreTypes`.
//!
//! Reads take the store's lock for one call at a time, beside the stream
//! thread that writes it; they see what the thread has written so far
//! (committed or newer), never a torn entry.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use state_stores::{KeyValueStore, ValueAndTimestamp};

use super::handles::Codec;
use super::{lock, StoreEntry, StoreInstance};
use crate::error::{ProcessorError, StreamsError};

/// Which store to query and as what (Kafka Streams' `StoreQueryParameters`).
#[derive(Debug, Clone)]
pub struct StoreQueryParameters<T> {
    name: String,
    store_type: T,
    stale: bool,
}

impl<T: QueryableStoreType> StoreQueryParameters<T> {
    /// The store named `name`, read as `store_type`
    /// (from [`QueryableStoreTypes`]).
    pub fn from_name_and_type(name: impl Into<String>, store_type: T) -> Self {
        Self { name: name.into(), store_type, stale: false }
    }

    /// Also reads this instance's standby copies of the store
    /// (`num.standby.replicas`): answers for keys of tasks that run
    /// elsewhere, possibly behind them (see
    /// [`KafkaStreams::standby_tasks`](crate::KafkaStreams::standby_tasks)
    /// for each copy's lag). Kafka Streams' `enableStaleStores`.
    pub fn enable_stale_stores(mut self) -> Self {
        self.stale = true;
        self
    }

    /// Whether standby copies are read too.
    pub fn stale_stores_enabled(&self) -> bool {
        self.stale
    }

    /// The store's name.
    pub fn store_name(&self) -> &str {
        &self.name
    }

    pub(crate) fn into_parts(self) -> (String, T, bool) {
        (self.name, self.store_type, self.stale)
    }
}

/// The local partitions of one store, for a [`QueryableStoreType`] to wrap.
pub struct LocalStores {
    name: String,
    entries: Vec<StoreEntry>,
    /// Each entry's partition and the store's partition count, when known:
    /// a key is looked up first where the partitioner puts it.
    partitioning: Option<(Vec<i32>, i32)>,
}

impl fmt::Debug for LocalStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStores").field("name", &self.name).field("partitions", &self.entries.len()).finish()
    }
}

impl LocalStores {
    pub(crate) fn new(name: String, entries: Vec<StoreEntry>) -> Self {
        Self { name, entries, partitioning: None }
    }

    /// The partition of each entry (in order) and the partition count.
    pub(crate) fn with_partitions(mut self, partitions: Vec<i32>, count: i32) -> Self {
        if partitions.len() == self.entries.len() && count > 0 {
            self.partitioning = Some((partitions, count));
        }
        self
    }
}

/// A kind of read-only store view; see [`QueryableStoreTypes`].
pub trait QueryableStoreType {
    /// The view.
    type Store;
    /// Builds the view over `stores`; fails when the store is of another
    /// kind or other types.
    fn create(&self, stores: LocalStores) -> Result<Self::Store, StreamsError>;
}

/// The kinds of store views (Kafka Streams' `QueryableStoreTypes`).
#[derive(Debug, Clone, Copy)]
pub struct QueryableStoreTypes;

impl QueryableStoreTypes {
    /// A key-value store of `K` → `V`; a timestamped key-value store (a
    /// KTable's, a DSL aggregation's) reads as one too, without timestamps.
    pub fn key_value<K: 'static, V: 'static>() -> KeyValueStoreType<K, V> {
        KeyValueStoreType(PhantomData)
    }
}

/// See [`QueryableStoreTypes::key_value`].
pub struct KeyValueStoreType<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> fmt::Debug for KeyValueStoreType<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyValueStoreType")
    }
}

impl<K, V> Clone for KeyValueStoreType<K, V> {
    fn clone(&self) -> Self {
        Self(PhantomData)
    }
}

impl<K: 'static, V: 'static> QueryableStoreType for KeyValueStoreType<K, V> {
    type Store = ReadOnlyKeyValueStore<K, V>;

    fn create(&self, stores: LocalStores) -> Result<Self::Store, StreamsError> {
        let mut partitions = Vec::with_capacity(stores.entries.len());
        let mut codec = None;
        for entry in &stores.entries {
            let want = if entry.timestamped { "timestamped key-value store" } else { "key-value store" };
            let parts = entry.parts::<K, V>(want)?;
            let StoreInstance::KeyValue(store) = &entry.instance else {
                return Err(StreamsError::UnknownStore(stores.name.clone()));
            };
            partitions.push((Arc::clone(store), entry.timestamped));
            codec.get_or_insert_with(|| Codec::new(parts));
        }
        Ok(ReadOnlyKeyValueStore { name: stores.name, codec, partitions, partitioning: stores.partitioning })
    }
}

/// One local partition of a key-value store, and whether its values carry
/// timestamps.
type Partition = (Arc<Mutex<Box<dyn KeyValueStore>>>, bool);

/// A read-only view of a key-value store over this instance's partitions of
/// it. Keys held by other instances are not here (their `get` is `None`).
pub struct ReadOnlyKeyValueStore<K, V> {
    name: String,
    /// `None` when this instance holds no partition of the store.
    codec: Option<Codec<K, V>>,
    /// Each local partition, and whether its values carry timestamps.
    partitions: Vec<Partition>,
    /// Each local partition's number and the partition count, when known.
    partitioning: Option<(Vec<i32>, i32)>,
}

impl<K, V> fmt::Debug for ReadOnlyKeyValueStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyKeyValueStore")
            .field("name", &self.name)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlyKeyValueStore<K, V> {
    fn failed(&self, source: ProcessorError) -> StreamsError {
        StreamsError::StoreQuery { store: self.name.clone(), source }
    }

    fn value(codec: &Codec<K, V>, bytes: &[u8], timestamped: bool) -> Result<V, ProcessorError> {
        if timestamped {
            let vt = ValueAndTimestamp::decode(bytes, &codec.name)?;
            codec.decode_value(&vt.value)
        } else {
            codec.decode_value(bytes)
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many partitions of the store this instance holds.
    pub fn local_partitions(&self) -> usize {
        self.partitions.len()
    }

    /// The value of `key`, if a local partition holds one.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let Some(codec) = &self.codec else { return Ok(None) };
        let k = codec.key(key).map_err(|e| self.failed(e))?;
        // Where the default partitioner puts the key first (one lookup for
        // DSL stores), then the others (a store partitioned another way).
        let home = self.partitioning.as_ref().and_then(|(numbers, count)| {
            let p = crate::partitioner::partition_for_key(&k, *count)?;
            numbers.iter().position(|n| *n == p)
        });
        let order = home.into_iter().chain((0..self.partitions.len()).filter(|i| Some(*i) != home));
        for (store, timestamped) in order.filter_map(|i| self.partitions.get(i)) {
            let found = lock(store).get(&k).map_err(|e| self.failed(e.into()))?;
            if let Some(bytes) = found {
                return Self::value(codec, &bytes, *timestamped).map(Some).map_err(|e| self.failed(e));
            }
        }
        Ok(None)
    }

    fn collect(
        &self,
        read: impl Fn(&dyn KeyValueStore) -> Result<Vec<(Vec<u8>, Vec<u8>)>, state_stores::StoreError>,
    ) -> Result<Vec<(K, V)>, StreamsError> {
        let Some(codec) = &self.codec else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (store, timestamped) in &self.partitions {
            let pairs = read(lock(store).as_ref()).map_err(|e| self.failed(e.into()))?;
            for (k, v) in pairs {
                let key = codec.decode_key(&k).map_err(|e| self.failed(e))?;
                out.push((key, Self::value(codec, &v, *timestamped).map_err(|e| self.failed(e))?));
            }
        }
        Ok(out)
    }

    /// Entries with `from <= key <= to` (serialized-key order within each
    /// partition, partition after partition).
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, StreamsError> {
        let Some(codec) = &self.codec else { return Ok(Vec::new()) };
        let from = codec.key(from).map_err(|e| self.failed(e))?;
        let to = codec.key(to).map_err(|e| self.failed(e))?;
        self.collect(|s| s.range(Some(&from), Some(&to))?.collect())
    }

    /// Local entries between serialized bounds (open when `None`), with
    /// their serialized keys.
    pub(crate) fn range_bytes(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, K, V)>, StreamsError> {
        let Some(codec) = &self.codec else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for (store, timestamped) in &self.partitions {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> =
                lock(store).range(from, to).and_then(Iterator::collect).map_err(|e| self.failed(e.into()))?;
            for (k, v) in pairs {
                let key = codec.decode_key(&k).map_err(|e| self.failed(e))?;
                let value = Self::value(codec, &v, *timestamped).map_err(|e| self.failed(e))?;
                out.push((k, key, value));
            }
        }
        Ok(out)
    }

    /// Every local entry (serialized-key order within each partition).
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        self.collect(|s| s.all()?.collect())
    }

    /// The approximate number of local entries.
    pub fn approximate_num_entries(&self) -> Result<u64, StreamsError> {
        let mut n = 0u64;
        for (store, _) in &self.partitions {
            n = n.saturating_add(lock(store).approximate_num_entries().map_err(|e| self.failed(e.into()))?);
        }
        Ok(n)
    }
}

/// See [`QueryableStoreTypes::window_store`].
pub struct WindowStoreType<K, V>(PhantomData<fn() -> (K, V)>);

/// See [`QueryableStoreTypes::session_store`].
pub struct SessionStoreType<K, V>(PhantomData<fn() -> (K, V)>);

impl<K, V> fmt::Debug for WindowStoreType<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WindowStoreType")
    }
}

impl<K, V> fmt::Debug for SessionStoreType<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionStoreType")
    }
}

impl QueryableStoreTypes {
    /// A window store of `K` → `V` (timestamped or not: a windowed
    /// aggregation's reads as one).
    pub fn window_store<K: 'static, V: 'static>() -> WindowStoreType<K, V> {
        WindowStoreType(PhantomData)
    }

    /// A session store of `K` → `V`.
    pub fn session_store<K: 'static, V: 'static>() -> SessionStoreType<K, V> {
        SessionStoreType(PhantomData)
    }
}

impl<K: 'static, V: 'static> QueryableStoreType for WindowStoreType<K, V> {
    type Store = ReadOnlyWindowStore<K, V>;

    fn create(&self, stores: LocalStores) -> Result<Self::Store, StreamsError> {
        let partitions = stores.entries.iter().map(|e| e.window::<K, V>(e.timestamped)).collect::<Result<_, _>>()?;
        Ok(ReadOnlyWindowStore { name: stores.name, partitions })
    }
}

impl<K: 'static, V: 'static> QueryableStoreType for SessionStoreType<K, V> {
    type Store = ReadOnlySessionStore<K, V>;

    fn create(&self, stores: LocalStores) -> Result<Self::Store, StreamsError> {
        let partitions = stores.entries.iter().map(StoreEntry::session::<K, V>).collect::<Result<_, _>>()?;
        Ok(ReadOnlySessionStore { name: stores.name, partitions })
    }
}

/// A read-only view of a window store over this instance's partitions of it.
pub struct ReadOnlyWindowStore<K, V> {
    name: String,
    partitions: Vec<super::WindowStoreHandle<K, V>>,
}

impl<K, V> fmt::Debug for ReadOnlyWindowStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlyWindowStore")
            .field("name", &self.name)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlyWindowStore<K, V> {
    fn failed(&self, source: ProcessorError) -> StreamsError {
        StreamsError::StoreQuery { store: self.name.clone(), source }
    }

    /// How many partitions of the store this instance holds.
    pub fn local_partitions(&self) -> usize {
        self.partitions.len()
    }

    /// The windows of `key` starting in `[from, to]` (ms), in time order.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(super::Window, V)>, StreamsError> {
        let mut out = Vec::new();
        for p in &self.partitions {
            let size = p.window_size_ms();
            for (start, value, _) in p.fetch_range(key, from, to).map_err(|e| self.failed(e))? {
                out.push((super::Window { start, end: start.saturating_add(size) }, value));
            }
        }
        Ok(out)
    }

    /// Every local window starting in `[from, to]` (ms).
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(super::Windowed<K>, V)>, StreamsError> {
        let mut out = Vec::new();
        for p in &self.partitions {
            out.extend(p.fetch_all(from, to).map_err(|e| self.failed(e))?);
        }
        Ok(out)
    }
}

/// A read-only view of a session store over this instance's partitions of it.
pub struct ReadOnlySessionStore<K, V> {
    name: String,
    partitions: Vec<super::SessionStoreHandle<K, V>>,
}

impl<K, V> fmt::Debug for ReadOnlySessionStore<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOnlySessionStore")
            .field("name", &self.name)
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl<K: 'static, V: 'static> ReadOnlySessionStore<K, V> {
    /// How many partitions of the store this instance holds.
    pub fn local_partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Every session of `key`.
    pub fn fetch(&self, key: &K) -> Result<Vec<(super::Windowed<K>, V)>, StreamsError> {
        self.find_sessions(key, i64::MIN, i64::MAX)
    }

    /// The sessions of `key` that end at or after `earliest_end` and start at
    /// or before `latest_start` (ms).
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(super::Windowed<K>, V)>, StreamsError> {
        let mut out = Vec::new();
        for p in &self.partitions {
            let found = p
                .find_sessions(key, earliest_end, latest_start)
                .map_err(|source| StreamsError::StoreQuery { store: self.name.clone(), source })?;
            out.extend(found);
        }
        Ok(out)
    }
}
