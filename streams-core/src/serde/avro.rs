//! Avro over the schema registry: typed values (serde + a schema) and
//! generic ones (`apache_avro::types::Value`).

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{AvroSchema, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::registry::{wire, RegisteredSchema, SchemaKind, SchemaRegistryClient};
use super::{SchemaParseError, Serde, SerdeError};
use crate::record::Headers;

const FORMAT: &str = "Avro";

/// Avro values of type `T` in Confluent's wire format, with `T`'s schema as
/// the writer's schema and as the reader's.
///
/// Writing registers the schema under the subject the strategy names (or
/// looks it up, or uses the subject's latest version, as the client's config
/// says), once per topic. Reading fetches each writer's schema by the id in
/// the record, once per id, and resolves it to `T`'s schema (Avro schema
/// resolution: fields added with defaults, removed fields, promoted types),
/// so records written with older or newer compatible schemas read as `T`.
///
/// `T`'s schema comes from `#[derive(apache_avro::AvroSchema)]`
/// ([`new`](Self::new)) or from schema text ([`with_schema`](Self::with_schema)).
/// Avro `long`s are `i64` in Rust (`u64` has no Avro type).
///
/// ```no_run
/// use streams_core::serde::{AvroSerde, SchemaRegistryClient, Serde};
/// #[derive(serde::Serialize, serde::Deserialize, apache_avro::AvroSchema)]
/// struct Payment { card_id: String, amount: f64 }
///
/// let registry = SchemaRegistryClient::from_url("http://localhost:8081");
/// let serde = AvroSerde::<Payment>::new(&registry);
/// let bytes = serde.serialize("payments", &mut Default::default(), &Payment { card_id: "c1".into(), amount: 9.5 })?;
/// # Ok::<(), streams_core::SerdeError>(())
/// ```
pub struct AvroSerde<T> {
    codec: Arc<Codec>,
    _type: PhantomData<fn() -> T>,
}

/// Avro values whose schema the program does not know in advance: reading
/// gives the writer's values as [`apache_avro::types::Value`]; writing needs
/// a schema ([`with_schema`](Self::with_schema)) that values are resolved to.
#[derive(Clone)]
pub struct GenericAvroSerde {
    codec: Arc<Codec>,
}

/// The id to write with and, under `use.latest.version`, the schema.
type WriterSchema = (u32, Option<Arc<Schema>>);

struct Codec {
    client: SchemaRegistryClient,
    /// The schema written with and resolved to; none for a generic reader.
    schema: Option<Schema>,
    /// Its JSON, as registered.
    schema_json: String,
    full_name: Option<String>,
    is_key: bool,
    /// Per topic: the id to write with and, under `use.latest.version`, the
    /// registry's schema to write with.
    writers: RwLock<HashMap<String, WriterSchema>>,
    /// Writers' schemas by id, parsed.
    readers: RwLock<HashMap<u32, Arc<Schema>>>,
}

impl Codec {
    fn new(client: &SchemaRegistryClient, schema: Option<Schema>) -> Self {
        // Serialising a parsed schema back to JSON does not fail; the
        // canonical form (which drops defaults) is only a fallback.
        let schema_json = match &schema {
            Some(s) => serde_json::to_string(s).unwrap_or_else(|_| s.canonical_form()),
            None => String::new(),
        };
        let full_name = schema.as_ref().and_then(Schema::name).map(|n| n.fullname(None));
        Self {
            client: client.clone(),
            schema,
            schema_json,
            full_name,
            is_key: false,
            writers: RwLock::default(),
            readers: RwLock::default(),
        }
    }

    fn with_key(self: Arc<Self>, is_key: bool) -> Arc<Self> {
        let codec = Arc::try_unwrap(self).unwrap_or_else(|shared| Self {
            client: shared.client.clone(),
            schema: shared.schema.clone(),
            schema_json: shared.schema_json.clone(),
            full_name: shared.full_name.clone(),
            is_key: shared.is_key,
            writers: RwLock::default(),
            readers: RwLock::default(),
        });
        Arc::new(Self { is_key, writers: RwLock::default(), ..codec })
    }

    fn schema_error(topic: &str, type_name: &'static str, source: impl Into<super::error::BoxError>) -> SerdeError {
        SerdeError::Schema { topic: topic.to_owned(), format: FORMAT, type_name, source: source.into() }
    }

    fn encode(&self, topic: &str, type_name: &'static str, value: Value) -> Result<Vec<u8>, SerdeError> {
        let own = self.schema.as_ref().ok_or_else(|| {
            Self::schema_error(
                topic,
                type_name,
                "this generic Avro serde has no schema to write with; build it with GenericAvroSerde::with_schema",
            )
        })?;
        let (id, latest) = self.writer(topic, type_name)?;
        let schema = latest.as_deref().unwrap_or(own);
        let value = value.resolve(schema).map_err(|e| Self::schema_error(topic, type_name, e))?;
        let writer =
            GenericDatumWriter::builder(schema).build().map_err(|e| Self::schema_error(topic, type_name, e))?;
        let mut out = wire::header(id, 64);
        writer.write_value(&mut out, value).map_err(|e| Self::schema_error(topic, type_name, e))?;
        Ok(out)
    }

    fn writer(&self, topic: &str, type_name: &'static str) -> Result<WriterSchema, SerdeError> {
        if let Some(found) = self.writers.read().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return Ok(found.clone());
        }
        let config = self.client.config();
        let strategy = if self.is_key { config.key_subject_name_strategy } else { config.value_subject_name_strategy };
        let subject = strategy
            .subject(topic, self.is_key, self.full_name.as_deref())
            .map_err(|e| Self::schema_error(topic, type_name, e))?;
        let (id, latest) = self
            .client
            .writer_schema(&subject, SchemaKind::Avro, &self.schema_json)
            .map_err(|source| SerdeError::registry(topic, source))?;
        let latest = match latest {
            Some(registered) => Some(self.parse(topic, type_name, &registered)?),
            None => None,
        };
        self.writers.write().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned(), (id, latest.clone()));
        Ok((id, latest))
    }

    fn parse(
        &self,
        topic: &str,
        type_name: &'static str,
        registered: &RegisteredSchema,
    ) -> Result<Arc<Schema>, SerdeError> {
        if registered.kind != SchemaKind::Avro {
            return Err(Self::schema_error(
                topic,
                type_name,
                format!("schema id {} is a {} schema, not Avro", registered.id, registered.kind),
            ));
        }
        let schema = Schema::parse_str(&registered.schema).map_err(|e| Self::schema_error(topic, type_name, e))?;
        Ok(Arc::new(schema))
    }

    fn decode(&self, topic: &str, type_name: &'static str, data: &[u8]) -> Result<Value, SerdeError> {
        let (id, mut payload) =
            wire::split(data).map_err(|source| SerdeError::WireFormat { topic: topic.to_owned(), source })?;
        let cached = self.readers.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned();
        let writer = match cached {
            Some(schema) => schema,
            None => {
                let registered = self.client.schema_by_id(id).map_err(|source| SerdeError::registry(topic, source))?;
                let schema = self.parse(topic, type_name, &registered)?;
                self.readers.write().unwrap_or_else(PoisonError::into_inner).insert(id, Arc::clone(&schema));
                schema
            }
        };
        // Resolution is skipped when the writer used the reader's schema.
        let reader_schema = self.schema.as_ref().filter(|own| **own != *writer);
        let reader = GenericDatumReader::builder(&writer)
            .maybe_reader_schema(reader_schema)
            .build()
            .map_err(|e| Self::schema_error(topic, type_name, e))?;
        let value = reader.read_value(&mut payload).map_err(|e| Self::schema_error(topic, type_name, e))?;
        if !payload.is_empty() {
            return Err(Self::schema_error(
                topic,
                type_name,
                format!("{} bytes left after the Avro datum written with schema id {id}", payload.len()),
            ));
        }
        Ok(value)
    }
}

impl<T> AvroSerde<T> {
    /// A serde for `T` with the given Avro schema (JSON text).
    pub fn with_schema(client: &SchemaRegistryClient, schema: &str) -> Result<Self, SchemaParseError> {
        let schema = Schema::parse_str(schema).map_err(|e| SchemaParseError::new(FORMAT, e))?;
        Ok(Self { codec: Arc::new(Codec::new(client, Some(schema))), _type: PhantomData })
    }

    /// The same serde for keys: subjects `<topic>-key` under the topic-name
    /// strategy, and the key strategy of the client's config.
    pub fn for_key(self) -> Self {
        Self { codec: self.codec.with_key(true), _type: PhantomData }
    }

    /// The schema written with and read into.
    pub fn schema(&self) -> &Schema {
        // Typed serdes are always built with a schema.
        self.codec.schema.as_ref().unwrap_or(&Schema::Null)
    }
}

impl<T: AvroSchema> AvroSerde<T> {
    /// A serde for `T` with the schema its `AvroSchema` implementation gives.
    pub fn new(client: &SchemaRegistryClient) -> Self {
        Self { codec: Arc::new(Codec::new(client, Some(T::get_schema()))), _type: PhantomData }
    }
}

impl<T> Clone for AvroSerde<T> {
    fn clone(&self) -> Self {
        Self { codec: Arc::clone(&self.codec), _type: PhantomData }
    }
}

impl<T> fmt::Debug for AvroSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AvroSerde")
            .field("type", &std::any::type_name::<T>())
            .field("schema", &self.codec.full_name)
            .field("is_key", &self.codec.is_key)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde for AvroSerde<T> {
    type Target = T;

    fn serialize(&self, topic: &str, _headers: &mut Headers, data: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        let type_name = std::any::type_name::<T>();
        let value = apache_avro::to_value(data).map_err(|e| Codec::schema_error(topic, type_name, e))?;
        self.codec.encode(topic, type_name, value).map(Some)
    }

    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<T, SerdeError> {
        let type_name = std::any::type_name::<T>();
        let bytes = data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name })?;
        let value = self.codec.decode(topic, type_name, bytes)?;
        apache_avro::from_value::<T>(&value).map_err(|e| Codec::schema_error(topic, type_name, e))
    }

    fn to_json(&self, data: &T) -> Option<serde_json::Value> {
        serde_json::to_value(data).ok()
    }

    fn read_text(&self, text: &str) -> Option<Result<T, SerdeError>> {
        Some(super::json::json_from_text(text))
    }
}

impl GenericAvroSerde {
    /// A reader of any Avro record; it cannot write.
    pub fn new(client: &SchemaRegistryClient) -> Self {
        Self { codec: Arc::new(Codec::new(client, None)) }
    }

    /// A reader and writer with this schema: values read are resolved to it,
    /// values written are resolved to it and registered with it.
    pub fn with_schema(client: &SchemaRegistryClient, schema: &str) -> Result<Self, SchemaParseError> {
        let schema = Schema::parse_str(schema).map_err(|e| SchemaParseError::new(FORMAT, e))?;
        Ok(Self { codec: Arc::new(Codec::new(client, Some(schema))) })
    }

    /// The same serde for keys.
    pub fn for_key(self) -> Self {
        Self { codec: self.codec.with_key(true) }
    }
}

impl fmt::Debug for GenericAvroSerde {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericAvroSerde")
            .field("schema", &self.codec.full_name)
            .field("is_key", &self.codec.is_key)
            .finish_non_exhaustive()
    }
}

impl Serde for GenericAvroSerde {
    type Target = Value;

    fn serialize(&self, topic: &str, _headers: &mut Headers, data: &Value) -> Result<Option<Vec<u8>>, SerdeError> {
        self.codec.encode(topic, "apache_avro::types::Value", data.clone()).map(Some)
    }

    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<Value, SerdeError> {
        let type_name = "apache_avro::types::Value";
        let bytes = data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name })?;
        self.codec.decode(topic, type_name, bytes)
    }
}
