//! State stores as processors see them: builders that a topology holds, and
//! typed handles over the byte-level stores of the `state-stores` crate.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use state_stores::{InMemoryKeyValueStore, KeyValueStore};

use crate::erased::DataTypes;
use crate::error::{ProcessorError, StreamsError};
use crate::record::Headers;
use crate::serde::Serde;

type KvFactory = Arc<dyn Fn(&str) -> Box<dyn KeyValueStore> + Send + Sync>;

/// Makes the byte-level key-value store of one task.
#[derive(Clone)]
pub struct KeyValueStoreSupplier {
    name: String,
    kind: &'static str,
    make: KvFactory,
}

impl fmt::Debug for KeyValueStoreSupplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStoreSupplier").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

impl KeyValueStoreSupplier {
    /// A supplier of custom stores: `make` is called with the store name once per task.
    pub fn new(name: impl Into<String>, make: impl Fn(&str) -> Box<dyn KeyValueStore> + Send + Sync + 'static) -> Self {
        Self { name: name.into(), kind: "custom", make: Arc::new(make) }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Factory functions for stores, as Kafka Streams' `Stores`.
#[derive(Debug, Clone, Copy)]
pub struct Stores;

impl Stores {
    /// An in-memory key-value store (ordered by key bytes).
    pub fn in_memory_key_value_store(name: impl Into<String>) -> KeyValueStoreSupplier {
        KeyValueStoreSupplier {
            name: name.into(),
            kind: "in-memory",
            make: Arc::new(|name| Box::new(InMemoryKeyValueStore::new(name))),
        }
    }

    /// A builder for a typed key-value store: the supplier's bytes, read and
    /// written through these serdes.
    pub fn key_value_store_builder<KS, VS>(
        supplier: KeyValueStoreSupplier,
        key_serde: KS,
        value_serde: VS,
    ) -> StoreBuilder
    where
        KS: Serde,
        VS: Serde,
        KS::Target: 'static,
        VS::Target: 'static,
    {
        let serdes: KvSerdes<KS::Target, VS::Target> =
            KvSerdes { key: Arc::new(key_serde), value: Arc::new(value_serde) };
        StoreBuilder {
            name: supplier.name.clone(),
            supplier,
            serdes: Arc::new(serdes),
            types: DataTypes::of::<KS::Target, VS::Target>(),
            logging: true,
        }
    }
}

struct KvSerdes<K, V> {
    key: Arc<dyn Serde<Target = K>>,
    value: Arc<dyn Serde<Target = V>>,
}

/// Describes a state store of a topology; each task builds its own instance.
#[derive(Clone)]
pub struct StoreBuilder {
    name: String,
    supplier: KeyValueStoreSupplier,
    serdes: Arc<dyn Any + Send + Sync>,
    types: DataTypes,
    logging: bool,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("name", &self.name)
            .field("supplier", &self.supplier)
            .field("types", &self.types.to_string())
            .field("logging", &self.logging)
            .finish()
    }
}

impl StoreBuilder {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
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

    pub(crate) fn build(&self, serde_topic: String) -> StoreEntry {
        StoreEntry {
            name: self.name.clone(),
            store: Arc::new(Mutex::new((self.supplier.make)(&self.name))),
            serdes: Arc::clone(&self.serdes),
            types: self.types,
            serde_topic,
        }
    }
}

/// One task's instance of a store, with its serdes.
pub(crate) struct StoreEntry {
    name: String,
    store: SharedStore,
    serdes: Arc<dyn Any + Send + Sync>,
    types: DataTypes,
    serde_topic: String,
}

type SharedStore = Arc<Mutex<Box<dyn KeyValueStore>>>;

impl StoreEntry {
    pub(crate) fn handle<K: 'static, V: 'static>(&self) -> Result<KeyValueStoreHandle<K, V>, StreamsError> {
        let requested = DataTypes::of::<K, V>();
        let mismatch = || StreamsError::StoreType {
            store: self.name.clone(),
            requested: requested.to_string(),
            actual: self.types.to_string(),
        };
        if !requested.matches(&self.types) {
            return Err(mismatch());
        }
        let serdes = Arc::clone(&self.serdes).downcast::<KvSerdes<K, V>>().map_err(|_| mismatch())?;
        Ok(KeyValueStoreHandle {
            name: self.name.clone(),
            serde_topic: self.serde_topic.clone(),
            store: Arc::clone(&self.store),
            key: Arc::clone(&serdes.key),
            value: Arc::clone(&serdes.value),
        })
    }

    pub(crate) fn close(&self) -> Result<(), StreamsError> {
        lock(&self.store).close().map_err(StreamsError::from)
    }
}

fn lock(store: &SharedStore) -> MutexGuard<'_, Box<dyn KeyValueStore>> {
    // A panic while holding the lock cannot leave a half-written entry behind
    // (each store call is one map operation), so a poisoned lock is still usable.
    store.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A typed view of a key-value store: keys and values go through the store's
/// serdes; ranges follow the order of the serialized key bytes.
pub struct KeyValueStoreHandle<K, V> {
    name: String,
    serde_topic: String,
    store: SharedStore,
    key: Arc<dyn Serde<Target = K>>,
    value: Arc<dyn Serde<Target = V>>,
}

impl<K, V> Clone for KeyValueStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            serde_topic: self.serde_topic.clone(),
            store: Arc::clone(&self.store),
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
        }
    }
}

impl<K, V> fmt::Debug for KeyValueStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStoreHandle").field("name", &self.name).finish()
    }
}

impl<K: 'static, V: 'static> KeyValueStoreHandle<K, V> {
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn key_bytes(&self, key: &K) -> Result<Vec<u8>, ProcessorError> {
        let mut headers = Headers::new();
        self.key.serialize(&self.serde_topic, &mut headers, key)?.ok_or_else(|| ProcessorError::StoreAccess {
            processor: String::new(),
            store: self.name.clone(),
            reason: "the key serde produced null; store keys cannot be null".to_owned(),
        })
    }

    fn decode_value(&self, bytes: &[u8]) -> Result<V, ProcessorError> {
        Ok(self.value.deserialize(&self.serde_topic, &Headers::new(), Some(bytes))?)
    }

    fn decode_pairs(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>, ProcessorError> {
        let headers = Headers::new();
        pairs
            .into_iter()
            .map(|(k, v)| Ok((self.key.deserialize(&self.serde_topic, &headers, Some(&k))?, self.decode_value(&v)?)))
            .collect()
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessorError> {
        let k = self.key_bytes(key)?;
        let bytes = lock(&self.store).get(&k)?;
        bytes.map(|b| self.decode_value(&b)).transpose()
    }

    /// Stores `value` for `key`. A value that serializes to null deletes the key
    /// (a tombstone, as in Kafka Streams).
    pub fn put(&self, key: &K, value: &V) -> Result<(), ProcessorError> {
        let k = self.key_bytes(key)?;
        let mut headers = Headers::new();
        match self.value.serialize(&self.serde_topic, &mut headers, value)? {
            Some(v) => lock(&self.store).put(&k, &v)?,
            None => {
                lock(&self.store).delete(&k)?;
            }
        }
        Ok(())
    }

    /// Stores `value` only if `key` has none; returns the existing value otherwise.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>, ProcessorError> {
        let k = self.key_bytes(key)?;
        let mut headers = Headers::new();
        let Some(v) = self.value.serialize(&self.serde_topic, &mut headers, value)? else {
            return self.get(key);
        };
        let existing = lock(&self.store).put_if_absent(&k, &v)?;
        existing.map(|b| self.decode_value(&b)).transpose()
    }

    /// Removes `key`; returns its value.
    pub fn delete(&self, key: &K) -> Result<Option<V>, ProcessorError> {
        let k = self.key_bytes(key)?;
        let old = lock(&self.store).delete(&k)?;
        old.map(|b| self.decode_value(&b)).transpose()
    }

    /// Entries with `from <= key <= to` in serialized-key order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, ProcessorError> {
        let (f, t) = (self.key_bytes(from)?, self.key_bytes(to)?);
        let pairs: Vec<_> = lock(&self.store).range(Some(&f), Some(&t))?.collect();
        self.decode_pairs(pairs)
    }

    /// Entries whose serialized key starts with the serialized `prefix`.
    pub fn prefix_scan(&self, prefix: &K) -> Result<Vec<(K, V)>, ProcessorError> {
        let p = self.key_bytes(prefix)?;
        let pairs: Vec<_> = lock(&self.store).prefix_scan(&p)?.collect();
        self.decode_pairs(pairs)
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, ProcessorError> {
        let pairs: Vec<_> = lock(&self.store).all()?.collect();
        self.decode_pairs(pairs)
    }

    /// The approximate number of entries.
    pub fn approximate_num_entries(&self) -> Result<u64, ProcessorError> {
        Ok(lock(&self.store).approximate_num_entries()?)
    }
}
