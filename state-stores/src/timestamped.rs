//! Timestamped stores for KTables: each value carries the timestamp of the
//! record that wrote it, encoded as Kafka Streams' `ValueAndTimestamp`
//! (8-byte big-endian timestamp, then the value bytes).

use crate::key_value::KeyValueStore;
use crate::window::{WindowEntry, WindowStore};
use crate::StoreError;

/// A value and the timestamp of the record that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueAndTimestamp {
    /// The value bytes.
    pub value: Vec<u8>,
    /// The timestamp, ms.
    pub timestamp: i64,
}

impl ValueAndTimestamp {
    /// Encodes as 8-byte big-endian timestamp followed by the value.
    pub fn encode(value: &[u8], timestamp: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + value.len());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(value);
        out
    }

    /// Decodes what [`encode`](Self::encode) wrote; `store` names the store in the error.
    pub fn decode(bytes: &[u8], store: &str) -> Result<Self, StoreError> {
        let (ts, value) = bytes.split_at_checked(8).ok_or_else(|| StoreError::MalformedChangelog {
            store: store.to_owned(),
            reason: format!("a timestamped value needs at least 8 bytes, got {}", bytes.len()),
        })?;
        let ts: [u8; 8] = ts.try_into().map_err(|_| StoreError::MalformedChangelog {
            store: store.to_owned(),
            reason: "bad timestamp prefix".to_owned(),
        })?;
        Ok(Self { value: value.to_vec(), timestamp: i64::from_be_bytes(ts) })
    }
}

/// A key-value store whose values carry timestamps (for KTables).
#[derive(Debug)]
pub struct TimestampedKeyValueStore<S> {
    inner: S,
}

impl<S: KeyValueStore> TimestampedKeyValueStore<S> {
    /// Wraps a key-value store; its values must all have been written by this wrapper.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The value and its timestamp.
    pub fn get(&self, key: &[u8]) -> Result<Option<ValueAndTimestamp>, StoreError> {
        self.inner.get(key)?.map(|b| ValueAndTimestamp::decode(&b, self.inner.name())).transpose()
    }

    /// Stores a value with its timestamp.
    pub fn put(&mut self, key: &[u8], value: &[u8], timestamp: i64) -> Result<(), StoreError> {
        self.inner.put(key, &ValueAndTimestamp::encode(value, timestamp))
    }

    /// Removes `key`; returns what it had.
    pub fn delete(&mut self, key: &[u8]) -> Result<Option<ValueAndTimestamp>, StoreError> {
        let name = self.inner.name().to_owned();
        self.inner.delete(key)?.map(|b| ValueAndTimestamp::decode(&b, &name)).transpose()
    }

    /// Entries with `from <= key <= to`, decoded.
    pub fn range(
        &self,
        from: Option<&[u8]>,
        to: Option<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, ValueAndTimestamp)>, StoreError> {
        self.inner
            .range(from, to)?
            .map(|r| r.and_then(|(k, v)| Ok((k, ValueAndTimestamp::decode(&v, self.inner.name())?))))
            .collect()
    }

    /// The wrapped store (for commit, checkpoint, restore).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// A window store whose values carry timestamps.
#[derive(Debug)]
pub struct TimestampedWindowStore<S> {
    inner: S,
}

impl<S: WindowStore> TimestampedWindowStore<S> {
    /// Wraps a window store.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// Stores a window value with its timestamp.
    pub fn put(&mut self, key: &[u8], value: &[u8], timestamp: i64, window_start: i64) -> Result<(), StoreError> {
        self.inner.put(key, Some(&ValueAndTimestamp::encode(value, timestamp)), window_start)
    }

    /// The value and timestamp of one window.
    pub fn fetch(&self, key: &[u8], window_start: i64) -> Result<Option<ValueAndTimestamp>, StoreError> {
        self.inner.fetch(key, window_start)?.map(|b| ValueAndTimestamp::decode(&b, self.inner.name())).transpose()
    }

    /// The windows of `key` starting in `[from, to]`, decoded, in time order.
    pub fn fetch_range(&self, key: &[u8], from: i64, to: i64) -> Result<Vec<(WindowEntry, i64)>, StoreError> {
        self.inner
            .fetch_range(key, from, to)?
            .into_iter()
            .map(|mut e| {
                let vt = ValueAndTimestamp::decode(&e.value, self.inner.name())?;
                e.value = vt.value;
                Ok((e, vt.timestamp))
            })
            .collect()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}
