//! Typed handles over byte-level stores: keys and values go through the
//! store's serdes; ranges follow the order of the serialized key bytes.

use std::fmt;
use std::sync::{Arc, Mutex};

use state_stores::{KeyValueStore, SessionStore, ValueAndTimestamp, WindowStore};

use super::{lock, HandleParts, TypedSerdes};
use crate::error::ProcessorError;
use crate::record::Headers;

/// A time window: `[start, end)` for time windows, `[start, end]` for sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start, ms since the epoch.
    pub start: i64,
    /// End, ms since the epoch.
    pub end: i64,
}

/// A key together with the window it was aggregated in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Windowed<K> {
    /// The record key.
    pub key: K,
    /// The window.
    pub window: Window,
}

pub(super) struct Codec<K, V> {
    pub(super) name: String,
    topic: String,
    serdes: Arc<TypedSerdes<K, V>>,
}

impl<K, V> Clone for Codec<K, V> {
    fn clone(&self) -> Self {
        Self { name: self.name.clone(), topic: self.topic.clone(), serdes: Arc::clone(&self.serdes) }
    }
}

impl<K: 'static, V: 'static> Codec<K, V> {
    pub(super) fn new(parts: HandleParts<K, V>) -> Self {
        Self { name: parts.name, topic: parts.serde_topic, serdes: parts.serdes }
    }

    pub(super) fn key(&self, key: &K) -> Result<Vec<u8>, ProcessorError> {
        self.serdes.key.serialize(&self.topic, &mut Headers::new(), key)?.ok_or_else(|| ProcessorError::StoreAccess {
            processor: String::new(),
            store: self.name.clone(),
            reason: "the key serde produced null; store keys cannot be null".to_owned(),
        })
    }

    pub(super) fn decode_key(&self, bytes: &[u8]) -> Result<K, ProcessorError> {
        Ok(self.serdes.key.deserialize(&self.topic, &Headers::new(), Some(bytes))?)
    }

    /// `None` when the serde writes the value as null (a tombstone).
    fn value(&self, value: &V) -> Result<Option<Vec<u8>>, ProcessorError> {
        Ok(self.serdes.value.serialize(&self.topic, &mut Headers::new(), value)?)
    }

    pub(super) fn decode_value(&self, bytes: &[u8]) -> Result<V, ProcessorError> {
        Ok(self.serdes.value.deserialize(&self.topic, &Headers::new(), Some(bytes))?)
    }
}

/// A typed key-value store.
pub struct KeyValueStoreHandle<K, V> {
    codec: Codec<K, V>,
    store: Arc<Mutex<Box<dyn KeyValueStore>>>,
}

impl<K, V> Clone for KeyValueStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self { codec: self.codec.clone(), store: Arc::clone(&self.store) }
    }
}

impl<K, V> fmt::Debug for KeyValueStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyValueStoreHandle").field("name", &self.codec.name).finish()
    }
}

impl<K: 'static, V: 'static> KeyValueStoreHandle<K, V> {
    pub(crate) fn new(parts: HandleParts<K, V>, store: Arc<Mutex<Box<dyn KeyValueStore>>>) -> Self {
        Self { codec: Codec::new(parts), store }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    fn decode_pairs(&self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Vec<(K, V)>, ProcessorError> {
        pairs.into_iter().map(|(k, v)| Ok((self.codec.decode_key(&k)?, self.codec.decode_value(&v)?))).collect()
    }

    /// The value for `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, ProcessorError> {
        let k = self.codec.key(key)?;
        let bytes = lock(&self.store).get(&k)?;
        bytes.map(|b| self.codec.decode_value(&b)).transpose()
    }

    /// Stores `value` for `key`. A value that serializes to null deletes the key
    /// (a tombstone, as in Kafka Streams).
    pub fn put(&self, key: &K, value: &V) -> Result<(), ProcessorError> {
        let k = self.codec.key(key)?;
        match self.codec.value(value)? {
            Some(v) => lock(&self.store).put(&k, &v)?,
            None => {
                lock(&self.store).delete(&k)?;
            }
        }
        Ok(())
    }

    /// Stores `value` only if `key` has none; returns the existing value otherwise.
    pub fn put_if_absent(&self, key: &K, value: &V) -> Result<Option<V>, ProcessorError> {
        let k = self.codec.key(key)?;
        let Some(v) = self.codec.value(value)? else {
            return self.get(key);
        };
        let existing = lock(&self.store).put_if_absent(&k, &v)?;
        existing.map(|b| self.codec.decode_value(&b)).transpose()
    }

    /// Removes `key`; returns its value.
    pub fn delete(&self, key: &K) -> Result<Option<V>, ProcessorError> {
        let k = self.codec.key(key)?;
        let old = lock(&self.store).delete(&k)?;
        old.map(|b| self.codec.decode_value(&b)).transpose()
    }

    /// Entries with `from <= key <= to` in serialized-key order.
    pub fn range(&self, from: &K, to: &K) -> Result<Vec<(K, V)>, ProcessorError> {
        let (f, t) = (self.codec.key(from)?, self.codec.key(to)?);
        let pairs = lock(&self.store).range(Some(&f), Some(&t))?.collect::<Result<Vec<_>, _>>()?;
        self.decode_pairs(pairs)
    }

    /// Entries whose serialized key starts with the serialized `prefix`.
    pub fn prefix_scan(&self, prefix: &K) -> Result<Vec<(K, V)>, ProcessorError> {
        let p = self.codec.key(prefix)?;
        let pairs = lock(&self.store).prefix_scan(&p)?.collect::<Result<Vec<_>, _>>()?;
        self.decode_pairs(pairs)
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V)>, ProcessorError> {
        let pairs = lock(&self.store).all()?.collect::<Result<Vec<_>, _>>()?;
        self.decode_pairs(pairs)
    }

    /// The approximate number of entries.
    pub fn approximate_num_entries(&self) -> Result<u64, ProcessorError> {
        Ok(lock(&self.store).approximate_num_entries()?)
    }
}

/// A typed key-value store whose values carry a timestamp (KTables).
pub struct TimestampedKeyValueStoreHandle<K, V> {
    codec: Codec<K, V>,
    store: Arc<Mutex<Box<dyn KeyValueStore>>>,
}

impl<K, V> Clone for TimestampedKeyValueStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self { codec: self.codec.clone(), store: Arc::clone(&self.store) }
    }
}

impl<K, V> fmt::Debug for TimestampedKeyValueStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimestampedKeyValueStoreHandle").field("name", &self.codec.name).finish()
    }
}

impl<K: 'static, V: 'static> TimestampedKeyValueStoreHandle<K, V> {
    pub(crate) fn new(parts: HandleParts<K, V>, store: Arc<Mutex<Box<dyn KeyValueStore>>>) -> Self {
        Self { codec: Codec::new(parts), store }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    fn decode(&self, bytes: &[u8]) -> Result<(V, i64), ProcessorError> {
        let vt = ValueAndTimestamp::decode(bytes, &self.codec.name)?;
        Ok((self.codec.decode_value(&vt.value)?, vt.timestamp))
    }

    /// The value for `key` and the timestamp of the record that wrote it.
    pub fn get(&self, key: &K) -> Result<Option<(V, i64)>, ProcessorError> {
        let k = self.codec.key(key)?;
        let bytes = lock(&self.store).get(&k)?;
        bytes.map(|b| self.decode(&b)).transpose()
    }

    /// Stores `value` with `timestamp`; a value serialized as null deletes.
    pub fn put(&self, key: &K, value: &V, timestamp: i64) -> Result<(), ProcessorError> {
        let k = self.codec.key(key)?;
        match self.codec.value(value)? {
            Some(v) => lock(&self.store).put(&k, &ValueAndTimestamp::encode(&v, timestamp))?,
            None => {
                lock(&self.store).delete(&k)?;
            }
        }
        Ok(())
    }

    /// Removes `key`; returns what it held.
    pub fn delete(&self, key: &K) -> Result<Option<(V, i64)>, ProcessorError> {
        let k = self.codec.key(key)?;
        let old = lock(&self.store).delete(&k)?;
        old.map(|b| self.decode(&b)).transpose()
    }

    /// Every entry, in serialized-key order.
    pub fn all(&self) -> Result<Vec<(K, V, i64)>, ProcessorError> {
        let pairs = lock(&self.store).all()?.collect::<Result<Vec<_>, _>>()?;
        pairs
            .into_iter()
            .map(|(k, v)| {
                let (value, ts) = self.decode(&v)?;
                Ok((self.codec.decode_key(&k)?, value, ts))
            })
            .collect()
    }
}

/// A typed window store.
pub struct WindowStoreHandle<K, V> {
    codec: Codec<K, V>,
    store: Arc<Mutex<Box<dyn WindowStore>>>,
    window_size: i64,
    timestamped: bool,
}

impl<K, V> Clone for WindowStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self {
            codec: self.codec.clone(),
            store: Arc::clone(&self.store),
            window_size: self.window_size,
            timestamped: self.timestamped,
        }
    }
}

impl<K, V> fmt::Debug for WindowStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowStoreHandle")
            .field("name", &self.codec.name)
            .field("window_size", &self.window_size)
            .finish()
    }
}

impl<K: 'static, V: 'static> WindowStoreHandle<K, V> {
    pub(crate) fn new(
        parts: HandleParts<K, V>,
        store: Arc<Mutex<Box<dyn WindowStore>>>,
        window_size: i64,
        timestamped: bool,
    ) -> Self {
        Self { codec: Codec::new(parts), store, window_size, timestamped }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    fn encode(&self, value: &V, timestamp: i64) -> Result<Option<Vec<u8>>, ProcessorError> {
        Ok(self
            .codec
            .value(value)?
            .map(|v| if self.timestamped { ValueAndTimestamp::encode(&v, timestamp) } else { v }))
    }

    fn decode(&self, bytes: &[u8]) -> Result<(V, i64), ProcessorError> {
        if self.timestamped {
            let vt = ValueAndTimestamp::decode(bytes, &self.codec.name)?;
            Ok((self.codec.decode_value(&vt.value)?, vt.timestamp))
        } else {
            Ok((self.codec.decode_value(bytes)?, -1))
        }
    }

    /// Stores `value` for `(key, window_start)` with the record `timestamp`
    /// (kept only by timestamped stores). Returns `false` when the window had
    /// already expired and the write was dropped.
    pub fn put(&self, key: &K, value: &V, window_start: i64, timestamp: i64) -> Result<bool, ProcessorError> {
        let k = self.codec.key(key)?;
        let v = self.encode(value, timestamp)?;
        let mut store = lock(&self.store);
        let before = store.expired_writes();
        store.put(&k, v.as_deref(), window_start)?;
        Ok(store.expired_writes() == before)
    }

    /// Deletes one window.
    pub fn delete(&self, key: &K, window_start: i64) -> Result<(), ProcessorError> {
        let k = self.codec.key(key)?;
        lock(&self.store).put(&k, None, window_start)?;
        Ok(())
    }

    /// The value (and timestamp; -1 for plain stores) of one window.
    pub fn fetch(&self, key: &K, window_start: i64) -> Result<Option<(V, i64)>, ProcessorError> {
        let k = self.codec.key(key)?;
        let bytes = lock(&self.store).fetch(&k, window_start)?;
        bytes.map(|b| self.decode(&b)).transpose()
    }

    /// The windows of `key` starting in `[from, to]`, in time order:
    /// (window start, value, timestamp).
    pub fn fetch_range(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V, i64)>, ProcessorError> {
        let k = self.codec.key(key)?;
        let entries = lock(&self.store).fetch_range(&k, from, to)?;
        entries
            .into_iter()
            .map(|e| {
                let (v, ts) = self.decode(&e.value)?;
                Ok((e.window_start, v, ts))
            })
            .collect()
    }

    /// Every window starting in `[from, to]`, in time order.
    pub fn fetch_all(&self, from: i64, to: i64) -> Result<Vec<(Windowed<K>, V)>, ProcessorError> {
        let entries = lock(&self.store).fetch_all(from, to)?;
        entries
            .into_iter()
            .map(|e| {
                let window = Window { start: e.window_start, end: e.window_start.saturating_add(self.window_size) };
                Ok((Windowed { key: self.codec.decode_key(&e.key)?, window }, self.decode(&e.value)?.0))
            })
            .collect()
    }

    /// The window size the store was built with, ms.
    pub fn window_size_ms(&self) -> i64 {
        self.window_size
    }
}

/// A typed session store.
pub struct SessionStoreHandle<K, V> {
    codec: Codec<K, V>,
    store: Arc<Mutex<Box<dyn SessionStore>>>,
}

impl<K, V> Clone for SessionStoreHandle<K, V> {
    fn clone(&self) -> Self {
        Self { codec: self.codec.clone(), store: Arc::clone(&self.store) }
    }
}

impl<K, V> fmt::Debug for SessionStoreHandle<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreHandle").field("name", &self.codec.name).finish()
    }
}

impl<K: 'static, V: 'static> SessionStoreHandle<K, V> {
    pub(crate) fn new(parts: HandleParts<K, V>, store: Arc<Mutex<Box<dyn SessionStore>>>) -> Self {
        Self { codec: Codec::new(parts), store }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.codec.name
    }

    /// Sessions of `key` with `end >= earliest_end` and `start <= latest_start`.
    pub fn find_sessions(
        &self,
        key: &K,
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<(Windowed<K>, V)>, ProcessorError> {
        let k = self.codec.key(key)?;
        let found = lock(&self.store).find_sessions(&k, earliest_end, latest_start)?;
        found
            .into_iter()
            .map(|e| {
                let key = self.codec.decode_key(&e.key)?;
                Ok((
                    Windowed { key, window: Window { start: e.start, end: e.end } },
                    self.codec.decode_value(&e.value)?,
                ))
            })
            .collect()
    }

    /// Stores a session's aggregate; returns `false` when it had expired.
    pub fn put(&self, session: &Windowed<K>, value: &V) -> Result<bool, ProcessorError> {
        let k = self.codec.key(&session.key)?;
        let mut store = lock(&self.store);
        let before = store.expired_writes();
        match self.codec.value(value)? {
            Some(v) => store.put(&k, session.window.start, session.window.end, &v)?,
            None => store.remove(&k, session.window.start, session.window.end)?,
        }
        Ok(store.expired_writes() == before)
    }

    /// Removes a session.
    pub fn remove(&self, session: &Windowed<K>) -> Result<(), ProcessorError> {
        let k = self.codec.key(&session.key)?;
        lock(&self.store).remove(&k, session.window.start, session.window.end)?;
        Ok(())
    }

    /// The aggregate of exactly this session.
    pub fn fetch_session(&self, session: &Windowed<K>) -> Result<Option<V>, ProcessorError> {
        let k = self.codec.key(&session.key)?;
        let bytes = lock(&self.store).fetch_session(&k, session.window.start, session.window.end)?;
        bytes.map(|b| self.codec.decode_value(&b)).transpose()
    }
}
