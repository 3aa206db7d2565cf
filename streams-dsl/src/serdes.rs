//! Serdes the DSL adds: windowed keys (Kafka's byte layouts) and the change
//! pairs that table repartitions carry.

use std::fmt;

use streams_core::serde::{Serde, SerdeError};
use streams_core::{Headers, Window, Windowed};

use crate::builder::SerdeRef;
use crate::ktable::Change;

/// `Windowed<K>` as Kafka Streams writes it: for time windows the key bytes
/// then the 8-byte big-endian window start (the end is start + size); for
/// sessions the key bytes, then end, then start.
pub struct WindowedSerde<K> {
    inner: SerdeRef<K>,
    kind: WindowedKind,
}

#[derive(Debug, Clone, Copy)]
enum WindowedKind {
    Time { size_ms: i64 },
    Session,
}

impl<K> Clone for WindowedSerde<K> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), kind: self.kind }
    }
}

impl<K> fmt::Debug for WindowedSerde<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowedSerde").field("kind", &self.kind).finish()
    }
}

impl<K: 'static> WindowedSerde<K> {
    /// For time windows of `size_ms`.
    pub fn time(key_serde: impl Serde<Target = K>, size_ms: i64) -> Self {
        Self { inner: std::sync::Arc::new(key_serde), kind: WindowedKind::Time { size_ms } }
    }

    /// For session windows.
    pub fn session(key_serde: impl Serde<Target = K>) -> Self {
        Self { inner: std::sync::Arc::new(key_serde), kind: WindowedKind::Session }
    }

    pub(crate) fn time_ref(key_serde: SerdeRef<K>, size_ms: i64) -> Self {
        Self { inner: key_serde, kind: WindowedKind::Time { size_ms } }
    }

    pub(crate) fn session_ref(key_serde: SerdeRef<K>) -> Self {
        Self { inner: key_serde, kind: WindowedKind::Session }
    }
}

fn read_i64(topic: &str, bytes: &[u8]) -> Result<i64, SerdeError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| SerdeError::WrongSize {
        topic: topic.to_owned(),
        type_name: "window timestamp",
        expected: 8,
        actual: bytes.len(),
    })?;
    Ok(i64::from_be_bytes(arr))
}

impl<K: 'static> Serde for WindowedSerde<K> {
    type Target = Windowed<K>;

    fn serialize(&self, topic: &str, headers: &mut Headers, data: &Windowed<K>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = self.inner.serialize(topic, headers, &data.key)?.unwrap_or_default();
        match self.kind {
            WindowedKind::Time { .. } => out.extend_from_slice(&data.window.start.to_be_bytes()),
            WindowedKind::Session => {
                out.extend_from_slice(&data.window.end.to_be_bytes());
                out.extend_from_slice(&data.window.start.to_be_bytes());
            }
        }
        Ok(Some(out))
    }

    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Windowed<K>, SerdeError> {
        let bytes =
            data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name: "Windowed key" })?;
        let suffix = match self.kind {
            WindowedKind::Time { .. } => 8,
            WindowedKind::Session => 16,
        };
        let split = bytes.len().checked_sub(suffix).ok_or_else(|| SerdeError::WrongSize {
            topic: topic.to_owned(),
            type_name: "Windowed key",
            expected: suffix,
            actual: bytes.len(),
        })?;
        let (key, times) = bytes.split_at(split);
        let key = self.inner.deserialize(topic, headers, Some(key))?;
        let window = match self.kind {
            WindowedKind::Time { size_ms } => {
                let start = read_i64(topic, times)?;
                Window { start, end: start.saturating_add(size_ms) }
            }
            WindowedKind::Session => {
                Window { start: read_i64(topic, &times[8..])?, end: read_i64(topic, &times[..8])? }
            }
        };
        Ok(Windowed { key, window })
    }
}

/// A table update (new and old value) in one record, for repartition topics
/// of table aggregations: `[flags][len(new) 4 BE][new][old]`.
pub(crate) struct ChangeSerde<V> {
    pub(crate) inner: SerdeRef<V>,
}

impl<V: 'static> Serde for ChangeSerde<V> {
    type Target = Change<V>;

    fn serialize(&self, topic: &str, headers: &mut Headers, data: &Change<V>) -> Result<Option<Vec<u8>>, SerdeError> {
        let new = data.new.as_ref().map(|v| self.inner.serialize(topic, headers, v)).transpose()?.flatten();
        let old = data.old.as_ref().map(|v| self.inner.serialize(topic, headers, v)).transpose()?.flatten();
        let flags = u8::from(new.is_some()) | (u8::from(old.is_some()) << 1);
        let new = new.unwrap_or_default();
        let len = u32::try_from(new.len()).map_err(|_| SerdeError::custom(topic, "value too large"))?;
        let mut out = Vec::with_capacity(5 + new.len());
        out.push(flags);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&new);
        out.extend_from_slice(&old.unwrap_or_default());
        Ok(Some(out))
    }

    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Change<V>, SerdeError> {
        let bytes =
            data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name: "table change" })?;
        let bad = || SerdeError::custom(topic, "malformed table change record");
        let (&flags, rest) = bytes.split_first().ok_or_else(bad)?;
        let (len, rest) = rest.split_at_checked(4).ok_or_else(bad)?;
        let len = usize::try_from(u32::from_be_bytes(len.try_into().map_err(|_| bad())?)).map_err(|_| bad())?;
        let (new, old) = rest.split_at_checked(len).ok_or_else(bad)?;
        let new = if flags & 1 != 0 { Some(self.inner.deserialize(topic, headers, Some(new))?) } else { None };
        let old = if flags & 2 != 0 { Some(self.inner.deserialize(topic, headers, Some(old))?) } else { None };
        Ok(Change { new, old })
    }
}
