//! A store seen without its types, for the HTTP query endpoints: keys come in
//! as text and entries go out as JSON, through the store's own serdes
//! ([`Serde::read_text`], [`Serde::to_json`]). Each store builder makes one
//! while its key and value types are known.

use std::marker::PhantomData;
use std::sync::Arc;

use serde_json::Value;

use super::query::{LocalStores, QueryableStoreType, QueryableStoreTypes};
use super::TypedSerdes;
use crate::error::StreamsError;
use crate::record::Headers;
use crate::serde::{Serde, SerdeError};

/// Why a JSON query could not be answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JsonQueryError {
    /// The key text does not read as the store's key type (a 400).
    #[error("bad key: {0}")]
    BadKey(#[source] SerdeError),
    /// The store could not be read (a 500, or 503 when not queryable now).
    #[error(transparent)]
    Store(#[from] StreamsError),
}

/// One key-value entry: the serialized key (the order ranges merge in), and
/// key and value as JSON.
#[derive(Debug, Clone)]
pub(crate) struct JsonEntry {
    pub(crate) key_bytes: Vec<u8>,
    pub(crate) key: Value,
    pub(crate) value: Value,
}

/// The untyped face of one store's serdes and read views.
pub(crate) trait JsonView: Send + Sync {
    /// The serialized form of the key `text` (what partitioners hash).
    fn key_bytes(&self, text: &str) -> Result<Vec<u8>, JsonQueryError>;
    /// The entry of key `text` in a key-value store.
    fn get(&self, stores: LocalStores, text: &str) -> Result<Option<JsonEntry>, JsonQueryError>;
    /// Entries with `from <= key <= to` (either bound may be open), sorted
    /// by serialized key.
    fn range(
        &self,
        stores: LocalStores,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<JsonEntry>, JsonQueryError>;
    /// The windows of key `text` starting in `[from, to]` (window stores).
    fn windows(&self, stores: LocalStores, text: &str, from: i64, to: i64) -> Result<Vec<Value>, JsonQueryError>;
    /// The sessions of key `text` (session stores).
    fn sessions(&self, stores: LocalStores, text: &str) -> Result<Vec<Value>, JsonQueryError>;
}

/// [`JsonView`] for a store of `K` → `V`.
pub(crate) struct TypedJson<K, V> {
    serdes: Arc<TypedSerdes<K, V>>,
    topic: String,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> TypedJson<K, V> {
    /// `topic` is what the serdes are told they read and write (the
    /// store's changelog).
    pub(crate) fn new(serdes: Arc<TypedSerdes<K, V>>, topic: String) -> Self {
        Self { serdes, topic, _types: PhantomData }
    }
}

/// `value` as JSON through `serde`, or its serialized bytes (a string when
/// they are UTF-8) when the serde has no JSON form.
fn render<T: 'static>(serde: &dyn Serde<Target = T>, topic: &str, value: &T) -> Value {
    if let Some(json) = serde.to_json(value) {
        return json;
    }
    match serde.serialize(topic, &mut Headers::new(), value) {
        Ok(Some(bytes)) => match String::from_utf8(bytes) {
            Ok(text) => Value::String(text),
            Err(e) => Value::from(e.into_bytes()),
        },
        Ok(None) => Value::Null,
        Err(e) => Value::String(format!("<unrenderable: {e}>")),
    }
}

impl<K: 'static, V: 'static> TypedJson<K, V> {
    fn parse_key(&self, text: &str) -> Result<K, JsonQueryError> {
        let key = match self.serdes.key.read_text(text) {
            Some(parsed) => parsed,
            None => self.serdes.key.deserialize(&self.topic, &Headers::new(), Some(text.as_bytes())),
        };
        key.map_err(JsonQueryError::BadKey)
    }

    fn serialize_key(&self, key: &K) -> Result<Vec<u8>, JsonQueryError> {
        match self.serdes.key.serialize(&self.topic, &mut Headers::new(), key) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(JsonQueryError::BadKey(SerdeError::Text {
                text: String::new(),
                type_name: std::any::type_name::<K>(),
                reason: "the key serializes to null; store keys cannot be null".to_owned(),
            })),
            Err(e) => Err(JsonQueryError::BadKey(e)),
        }
    }

    fn key_json(&self, key: &K) -> Value {
        render(&*self.serdes.key, &self.topic, key)
    }

    fn value_json(&self, value: &V) -> Value {
        render(&*self.serdes.value, &self.topic, value)
    }

    fn entry(&self, key: &K, value: &V) -> Result<JsonEntry, JsonQueryError> {
        Ok(JsonEntry { key_bytes: self.serialize_key(key)?, key: self.key_json(key), value: self.value_json(value) })
    }
}

impl<K: 'static, V: 'static> JsonView for TypedJson<K, V> {
    fn key_bytes(&self, text: &str) -> Result<Vec<u8>, JsonQueryError> {
        let key = self.parse_key(text)?;
        self.serialize_key(&key)
    }

    fn get(&self, stores: LocalStores, text: &str) -> Result<Option<JsonEntry>, JsonQueryError> {
        let key = self.parse_key(text)?;
        let store = QueryableStoreTypes::key_value::<K, V>().create(stores)?;
        match store.get(&key)? {
            Some(value) => Ok(Some(self.entry(&key, &value)?)),
            None => Ok(None),
        }
    }

    fn range(
        &self,
        stores: LocalStores,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<JsonEntry>, JsonQueryError> {
        let bound = |text: Option<&str>| -> Result<Option<Vec<u8>>, JsonQueryError> {
            text.map(|t| self.key_bytes(t)).transpose()
        };
        let (from, to) = (bound(from)?, bound(to)?);
        let store = QueryableStoreTypes::key_value::<K, V>().create(stores)?;
        let mut out = store
            .range_bytes(from.as_deref(), to.as_deref())?
            .into_iter()
            .map(|(key_bytes, key, value)| JsonEntry {
                key_bytes,
                key: self.key_json(&key),
                value: self.value_json(&value),
            })
            .collect::<Vec<_>>();
        out.sort_by(|a, b| a.key_bytes.cmp(&b.key_bytes));
        Ok(out)
    }

    fn windows(&self, stores: LocalStores, text: &str, from: i64, to: i64) -> Result<Vec<Value>, JsonQueryError> {
        let key = self.parse_key(text)?;
        let store = QueryableStoreTypes::window_store::<K, V>().create(stores)?;
        let mut windows = store.fetch(&key, from, to)?;
        windows.sort_by_key(|(w, _)| w.start);
        Ok(windows
            .iter()
            .map(|(w, v)| {
                serde_json::json!({ "window_start": w.start, "window_end": w.end, "value": self.value_json(v) })
            })
            .collect())
    }

    fn sessions(&self, stores: LocalStores, text: &str) -> Result<Vec<Value>, JsonQueryError> {
        let key = self.parse_key(text)?;
        let store = QueryableStoreTypes::session_store::<K, V>().create(stores)?;
        let mut sessions = store.fetch(&key)?;
        sessions.sort_by_key(|(w, _)| (w.window.start, w.window.end));
        Ok(sessions
            .iter()
            .map(|(w, v)| {
                serde_json::json!({
                    "session_start": w.window.start,
                    "session_end": w.window.end,
                    "value": self.value_json(v),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::{I64Serde, JsonSerde, StringSerde};

    fn view<K: 'static, V: 'static>(key: impl Serde<Target = K>, value: impl Serde<Target = V>) -> TypedJson<K, V> {
        TypedJson::new(Arc::new(TypedSerdes { key: Arc::new(key), value: Arc::new(value) }), "t".to_owned())
    }

    #[test]
    fn keys_read_from_text_through_the_key_serde() -> Result<(), JsonQueryError> {
        let strings = view(StringSerde, I64Serde);
        assert_eq!(strings.key_bytes("caf\u{e9}")?, "caf\u{e9}".as_bytes());
        let longs = view(I64Serde, I64Serde);
        assert_eq!(longs.key_bytes("42")?, 42i64.to_be_bytes());
        match longs.key_bytes("forty-two") {
            Err(e @ JsonQueryError::BadKey(_)) => assert!(e.to_string().contains("forty-two"), "{e}"),
            other => panic!("`forty-two` read as a long: {other:?}"),
        }
        let json = view(JsonSerde::<String>::new(), I64Serde);
        assert_eq!(json.key_bytes("bare")?, b"\"bare\"");
        assert_eq!(json.key_bytes("\"quoted\"")?, b"\"quoted\"");
        Ok(())
    }

    #[test]
    fn values_render_as_natural_json() {
        let v = view(StringSerde, I64Serde);
        assert_eq!(v.value_json(&7), serde_json::json!(7));
        let j = view(StringSerde, JsonSerde::<Vec<String>>::new());
        assert_eq!(j.value_json(&vec!["a".to_owned()]), serde_json::json!(["a"]));
    }
}
