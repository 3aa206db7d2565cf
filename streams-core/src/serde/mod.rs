//! Serializers and deserializers between typed keys/values and Kafka bytes.
//!
//! One trait, [`Serde`], both ways. Errors are values ([`SerdeError`]) that name
//! the topic, never panics: bad input reaches the error handlers intact.
//!
//! Built in, with Kafka's own encodings so that JVM clients read the same bytes:
//! [`BytesSerde`], [`StringSerde`] (UTF-8), [`I32Serde`], [`I64Serde`], [`U64Serde`],
//! [`F64Serde`] (big-endian), [`JsonSerde`] (serde-JSON for any
//! `Serialize + DeserializeOwned` type), and [`Nullable`], which turns any serde
//! into one for `Option<T>` where `None` is Kafka's null.
//!
//! With a schema registry (Confluent's wire format, see [`registry`]):
//! `AvroSerde` / `GenericAvroSerde` (feature `avro`), `ProtobufSerde`
//! (feature `protobuf`) and `JsonSchemaSerde` (feature `json-schema`), all
//! over one cached `SchemaRegistryClient`.

#[cfg(feature = "avro")]
mod avro;
mod builtin;
mod error;
mod json;
#[cfg(feature = "json-schema")]
mod json_schema;
#[cfg(feature = "protobuf")]
mod protobuf;
#[cfg(feature = "schema-registry")]
pub mod registry;
#[cfg(all(test, any(feature = "json-schema", feature = "protobuf")))]
mod test_registry;

#[cfg(feature = "avro")]
pub use avro::{AvroSerde, GenericAvroSerde};
pub use builtin::{BytesSerde, F64Serde, I32Serde, I64Serde, Nullable, StringSerde, U64Serde, UnitSerde};
pub use error::{SchemaParseError, SerdeError};
pub use json::JsonSerde;
#[cfg(feature = "json-schema")]
pub use json_schema::JsonSchemaSerde;
#[cfg(feature = "protobuf")]
pub use protobuf::ProtobufSerde;
#[cfg(feature = "schema-registry")]
pub use registry::{SchemaRegistryClient, SchemaRegistryConfig, SubjectNameStrategy};

use crate::record::Headers;

/// Converts values of one type to and from the bytes of a Kafka key or value.
///
/// `None` bytes are Kafka's null (an absent key, a tombstone value). A serde for
/// a non-optional type fails on null with [`SerdeError::UnexpectedNull`]; wrap it
/// in [`Nullable`] to accept nulls as `None`.
pub trait Serde: Send + Sync + 'static {
    /// The Rust type this serde reads and writes.
    type Target;

    /// Encodes `data` for `topic`. Headers may be read or added (schema ids, say).
    fn serialize(&self, topic: &str, headers: &mut Headers, data: &Self::Target)
        -> Result<Option<Vec<u8>>, SerdeError>;

    /// Decodes bytes read from `topic`.
    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Self::Target, SerdeError>;

    /// The value as JSON, for answers of the HTTP query endpoints
    /// (`/stores/{store}/keys/{key}`). `None` (the default) when this serde
    /// has no JSON form; the answer then shows the serialized bytes, as a
    /// string when they are UTF-8.
    fn to_json(&self, data: &Self::Target) -> Option<serde_json::Value> {
        let _ = data;
        None
    }

    /// Reads a value from text written by a person (a key in an HTTP query
    /// path). `None` (the default) when this serde has no text form; the
    /// text's UTF-8 bytes are then deserialized as if read from a topic.
    fn read_text(&self, text: &str) -> Option<Result<Self::Target, SerdeError>> {
        let _ = text;
        None
    }
}

impl<S: Serde + ?Sized> Serde for std::sync::Arc<S> {
    type Target = S::Target;
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Headers,
        data: &Self::Target,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        (**self).serialize(topic, headers, data)
    }
    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Self::Target, SerdeError> {
        (**self).deserialize(topic, headers, data)
    }
    fn to_json(&self, data: &Self::Target) -> Option<serde_json::Value> {
        (**self).to_json(data)
    }
    fn read_text(&self, text: &str) -> Option<Result<Self::Target, SerdeError>> {
        (**self).read_text(text)
    }
}

/// Types with a natural serde, used where none is given explicitly.
pub trait DefaultSerde: Sized {
    /// The serde used for this type by default.
    type Serde: Serde<Target = Self> + Default;
}

macro_rules! default_serde {
    ($($t:ty => $s:ty),* $(,)?) => {
        $(impl DefaultSerde for $t { type Serde = $s; })*
    };
}

default_serde! {
    String => StringSerde,
    Vec<u8> => BytesSerde,
    i32 => I32Serde,
    i64 => I64Serde,
    u64 => U64Serde,
    f64 => F64Serde,
    () => UnitSerde,
}

impl<T: DefaultSerde> DefaultSerde for Option<T>
where
    T::Serde: Serde<Target = T>,
{
    type Serde = Nullable<T::Serde>;
}
