//! Key-value stores: the byte-level trait and the in-memory implementation.

use std::collections::BTreeMap;
use std::ops::Bound;

use crate::StoreError;

/// An iterator over key-value pairs in ascending key order.
pub type KeyValueIter<'a> = Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a>;

/// A key-value store over bytes, ordered by key (lexicographic byte order).
///
/// Implementations are used by one task at a time; they need not be
/// internally synchronised, only `Send` so that a task can move between threads.
pub trait KeyValueStore: Send + std::fmt::Debug {
    /// The store's name, unique within a topology.
    fn name(&self) -> &str;

    /// The value stored for `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores `value` for `key`, replacing any previous value.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Stores `value` for `key` only when the key has no value; returns the
    /// value that was already there (and then leaves it unchanged).
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(key)? {
            Some(existing) => Ok(Some(existing)),
            None => {
                self.put(key, value)?;
                Ok(None)
            }
        }
    }

    /// Removes `key`; returns the value it had.
    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// All entries with `from <= key <= to` (both bounds inclusive, as in Kafka
    /// Streams), in ascending key order. `None` leaves that side open.
    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KeyValueIter<'_>, StoreError>;

    /// All entries whose key starts with `prefix`, in ascending key order.
    fn prefix_scan(&self, prefix: &[u8]) -> Result<KeyValueIter<'_>, StoreError>;

    /// Every entry, in ascending key order.
    fn all(&self) -> Result<KeyValueIter<'_>, StoreError> {
        self.range(None, None)
    }

    /// An estimate of the number of entries (exact for in-memory stores).
    fn approximate_num_entries(&self) -> Result<u64, StoreError>;

    /// Makes buffered writes durable (a no-op for stores without buffers).
    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Releases the store's resources; later calls fail with [`StoreError::Closed`].
    fn close(&mut self) -> Result<(), StoreError>;

    /// Whether [`close`](KeyValueStore::close) has not been called yet.
    fn is_open(&self) -> bool;

    /// Whether the store keeps its data on disk across restarts.
    fn persistent(&self) -> bool;
}

/// An ordered in-memory key-value store (a `BTreeMap`).
#[derive(Debug, Clone)]
pub struct InMemoryKeyValueStore {
    name: String,
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    open: bool,
}

impl InMemoryKeyValueStore {
    /// An empty, open store called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), map: BTreeMap::new(), open: true }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.open {
            Ok(())
        } else {
            Err(StoreError::Closed { store: self.name.clone() })
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix`,
/// or `None` when there is none (the prefix is all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl KeyValueStore for InMemoryKeyValueStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_open()?;
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.check_open()?;
        self.map.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check_open()?;
        Ok(self.map.remove(key))
    }

    fn range(&self, from: Option<&[u8]>, to: Option<&[u8]>) -> Result<KeyValueIter<'_>, StoreError> {
        self.check_open()?;
        if let (Some(f), Some(t)) = (from, to) {
            if f > t {
                return Err(StoreError::InvalidRange { store: self.name.clone() });
            }
        }
        let lower = from.map_or(Bound::Unbounded, |f| Bound::Included(f.to_vec()));
        let upper = to.map_or(Bound::Unbounded, |t| Bound::Included(t.to_vec()));
        Ok(Box::new(self.map.range((lower, upper)).map(|(k, v)| (k.clone(), v.clone()))))
    }

    fn prefix_scan(&self, prefix: &[u8]) -> Result<KeyValueIter<'_>, StoreError> {
        self.check_open()?;
        let lower = Bound::Included(prefix.to_vec());
        let upper = prefix_successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        Ok(Box::new(self.map.range((lower, upper)).map(|(k, v)| (k.clone(), v.clone()))))
    }

    fn approximate_num_entries(&self) -> Result<u64, StoreError> {
        self.check_open()?;
        Ok(self.map.len() as u64)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        self.open = false;
        Ok(())
    }

    fn is_open(&self) -> bool {
        self.open
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(iter: KeyValueIter<'_>) -> Vec<Vec<u8>> {
        iter.map(|(k, _)| k).collect()
    }

    #[test]
    fn range_bounds_are_inclusive_and_ordered() -> Result<(), StoreError> {
        let mut s = InMemoryKeyValueStore::new("s");
        for k in [&b"a"[..], b"b", b"c", b"d"] {
            s.put(k, b"v")?;
        }
        assert_eq!(keys(s.range(Some(b"b"), Some(b"c"))?), vec![b"b".to_vec(), b"c".to_vec()]);
        assert_eq!(keys(s.range(None, Some(b"a"))?), vec![b"a".to_vec()]);
        assert!(matches!(s.range(Some(b"d"), Some(b"a")), Err(StoreError::InvalidRange { .. })));
        Ok(())
    }

    #[test]
    fn prefix_scan_handles_ff_bytes() -> Result<(), StoreError> {
        let mut s = InMemoryKeyValueStore::new("s");
        s.put(&[0xff], b"1")?;
        s.put(&[0xff, 0x00], b"2")?;
        s.put(&[0xfe, 0xff], b"3")?;
        assert_eq!(keys(s.prefix_scan(&[0xff])?), vec![vec![0xff], vec![0xff, 0x00]]);
        assert_eq!(keys(s.prefix_scan(&[0xfe])?), vec![vec![0xfe, 0xff]]);
        Ok(())
    }

    #[test]
    fn put_if_absent_and_delete() -> Result<(), StoreError> {
        let mut s = InMemoryKeyValueStore::new("s");
        assert_eq!(s.put_if_absent(b"k", b"1")?, None);
        assert_eq!(s.put_if_absent(b"k", b"2")?, Some(b"1".to_vec()));
        assert_eq!(s.delete(b"k")?, Some(b"1".to_vec()));
        assert_eq!(s.approximate_num_entries()?, 0);
        s.close()?;
        assert!(matches!(s.get(b"k"), Err(StoreError::Closed { .. })));
        Ok(())
    }
}
