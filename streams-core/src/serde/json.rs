use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Serde, SerdeError};
use crate::record::Headers;

/// JSON (via serde_json) for any `Serialize + DeserializeOwned` type.
///
/// A null key or value is an error; use `Nullable<JsonSerde<T>>` to read
/// tombstones as `None`.
pub struct JsonSerde<T> {
    _type: PhantomData<fn() -> T>,
}

impl<T> JsonSerde<T> {
    /// A JSON serde for `T`.
    pub fn new() -> Self {
        Self { _type: PhantomData }
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonSerde<{}>", std::any::type_name::<T>())
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde for JsonSerde<T> {
    type Target = T;

    fn serialize(&self, topic: &str, _headers: &mut Headers, data: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        serde_json::to_vec(data).map(Some).map_err(|source| SerdeError::Json {
            topic: topic.to_owned(),
            type_name: std::any::type_name::<T>(),
            source,
        })
    }

    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = data.ok_or_else(|| SerdeError::UnexpectedNull {
            topic: topic.to_owned(),
            type_name: std::any::type_name::<T>(),
        })?;
        serde_json::from_slice(bytes).map_err(|source| SerdeError::Json {
            topic: topic.to_owned(),
            type_name: std::any::type_name::<T>(),
            source,
        })
    }

    fn to_json(&self, data: &T) -> Option<serde_json::Value> {
        serde_json::to_value(data).ok()
    }

    fn read_text(&self, text: &str) -> Option<Result<T, SerdeError>> {
        Some(json_from_text(text))
    }
}

/// `text` as JSON, or else as a JSON string (so that a string key can be
/// written bare in a URL).
pub(crate) fn json_from_text<T: DeserializeOwned>(text: &str) -> Result<T, SerdeError> {
    serde_json::from_str(text).or_else(|first| {
        serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| SerdeError::Text {
            text: text.to_owned(),
            type_name: std::any::type_name::<T>(),
            reason: first.to_string(),
        })
    })
}
