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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use streams_core::serde::{I64Serde, Nullable, StringSerde};

    use super::*;

    fn change_serde<S: Serde>(inner: S) -> ChangeSerde<S::Target> {
        ChangeSerde { inner: Arc::new(inner) }
    }

    /// Decodes `raw` as a table change: accepted only when the layout
    /// `[flags][len(new) 4 BE][new][old]` holds and the inner serde reads each
    /// side the flags say is present; refused with an error naming the topic
    /// otherwise.
    fn check<S: Serde + Clone>(inner: S, raw: &[u8]) -> Result<(), TestCaseError>
    where
        S::Target: fmt::Debug + PartialEq,
    {
        let h = Headers::new();
        let serde = change_serde(inner.clone());
        let layout = raw.get(1..5).and_then(|l| <[u8; 4]>::try_from(l).ok()).and_then(|l| {
            let len = usize::try_from(u32::from_be_bytes(l)).ok()?;
            raw[5..].split_at_checked(len)
        });
        match serde.deserialize("t", &h, Some(raw)) {
            Ok(change) => {
                let Some((new, old)) = layout else { return Err(TestCaseError::fail("accepted a bad layout")) };
                let flags = raw[0];
                prop_assert_eq!(change.new.is_some(), flags & 1 != 0);
                prop_assert_eq!(change.old.is_some(), flags & 2 != 0);
                if let Some(v) = change.new {
                    prop_assert_eq!(Some(v), inner.deserialize("t", &h, Some(new)).ok());
                }
                if let Some(v) = change.old {
                    prop_assert_eq!(Some(v), inner.deserialize("t", &h, Some(old)).ok());
                }
            }
            Err(e) => prop_assert_eq!(e.topic(), "t"),
        }
        prop_assert!(
            matches!(serde.deserialize("t", &h, None), Err(SerdeError::UnexpectedNull { .. })),
            "null must be refused"
        );
        Ok(())
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..max)
    }

    fn change_ish() -> impl Strategy<Value = Vec<u8>> {
        (any::<u8>(), prop_oneof![0u32..12, any::<u32>()], bytes(20)).prop_map(|(flags, len, rest)| {
            let mut out = vec![flags];
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&rest);
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Bad bytes never panic: table change records (repartition topics of
        /// table aggregations) from arbitrary bytes.
        #[test]
        fn change_records_from_arbitrary_bytes(raw in prop_oneof![bytes(32), change_ish()]) {
            check(StringSerde, &raw)?;
            check(I64Serde, &raw)?;
            check(Nullable(StringSerde), &raw)?;
        }

        #[test]
        fn change_records_round_trip(new in prop::option::of(".{0,8}"), old in prop::option::of(".{0,8}")) {
            let serde = change_serde(StringSerde);
            let change = Change { new, old };
            let bytes = serde.serialize("t", &mut Headers::new(), &change)?;
            prop_assert_eq!(serde.deserialize("t", &Headers::new(), bytes.as_deref())?, change);
        }
    }
}
