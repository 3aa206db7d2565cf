//! JSON Schema over the schema registry: serde-JSON values validated against
//! a JSON Schema on write and against the writer's schema on read.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use jsonschema::{Draft, Validator};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::registry::{wire, SchemaKind, SchemaRegistryClient};
use super::{SchemaParseError, Serde, SerdeError};
use crate::record::Headers;

const FORMAT: &str = "JSON Schema";

/// How many violations an error lists.
const SHOWN_VIOLATIONS: usize = 5;

/// Longest description of one violation (they quote the offending value).
const VIOLATION_CHARS: usize = 300;

/// Values of type `T` as JSON (serde_json) in Confluent's wire format,
/// validated against a JSON Schema: readable and writable by Confluent's
/// `KafkaJsonSchemaSerializer` / `JSONSerializer` and their deserializers.
///
/// Writing turns the value into JSON, validates it against this serde's
/// schema (an error lists the first violations with their JSON pointers),
/// registers the schema under the subject the strategy names (or looks it up,
/// or uses the subject's latest version, as the client's config says; the
/// record name of the record-name strategies is the schema's `title`) once
/// per topic, and writes the header and the JSON text.
///
/// Reading fetches the writer's schema by the id in the record (once per id;
/// each schema is compiled once), validates the JSON against it and then
/// deserializes it as `T`.
///
/// A schema without `$schema` is read as draft-07, the Confluent serializers'
/// default; with it, as the draft it names. References (`$ref`) may point
/// inside the schema (`#/definitions/...`, `#/$defs/...`); references to other
/// documents (other files, URLs, registry references) are not fetched, and a
/// schema that needs them does not compile.
///
/// ```no_run
/// use streams_core::serde::{JsonSchemaSerde, SchemaRegistryClient, Serde};
///
/// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Payment { card_id: String, amount: f64 }
///
/// const SCHEMA: &str = r#"{
///     "$schema": "http://json-schema.org/draft-07/schema#",
///     "title": "Payment",
///     "type": "object",
///     "properties": {
///         "card_id": {"type": "string"},
///         "amount": {"type": "number", "minimum": 0}
///     },
///     "required": ["card_id", "amount"]
/// }"#;
///
/// let registry = SchemaRegistryClient::from_url("http://localhost:8081");
/// let serde = JsonSchemaSerde::<Payment>::new(&registry, SCHEMA)?;
/// let payment = Payment { card_id: "c1".into(), amount: 9.5 };
/// let bytes = serde.serialize("payments", &mut Default::default(), &payment)?;
/// let back = serde.deserialize("payments", &Default::default(), bytes.as_deref())?;
/// assert_eq!(back, payment);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonSchemaSerde<T> {
    codec: Arc<Codec>,
    _type: PhantomData<fn() -> T>,
}

/// A writer's schema compiled, or why it does not compile (kept too, so that
/// a topic full of such records does not recompile it for each).
type Compiled = Result<Arc<Validator>, Arc<str>>;

/// The id a topic's values are written with, and the subject's latest schema
/// when that is what they are written with.
type Writer = (u32, Option<Arc<Validator>>);

struct Codec {
    client: SchemaRegistryClient,
    /// The schema text, as registered.
    schema: String,
    /// It, compiled.
    validator: Arc<Validator>,
    /// Its `title`: the record name of the record-name strategies.
    title: Option<String>,
    is_key: bool,
    /// Per topic: the id to write with and, under `use.latest.version`, the
    /// latest schema's validator that values must pass as well.
    writers: RwLock<HashMap<String, Writer>>,
    /// Writers' schemas by id, compiled.
    readers: RwLock<HashMap<u32, Compiled>>,
}

/// Compiles a JSON Schema: draft-07 unless `$schema` names another draft.
fn compile(schema: &Value) -> Result<Validator, String> {
    let named = schema.as_object().is_some_and(|o| o.contains_key("$schema"));
    let result = if named {
        jsonschema::validator_for(schema)
    } else {
        jsonschema::options().with_draft(Draft::Draft7).build(schema)
    };
    result.map_err(|e| e.to_string())
}

/// Parses and compiles schema text.
fn parse(text: &str) -> Result<(Validator, Option<String>), String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("a JSON Schema is an object or a boolean".to_owned());
    }
    let title = schema.get("title").and_then(Value::as_str).map(str::to_owned);
    Ok((compile(&schema)?, title))
}

/// Checks `value` against `validator`, describing the first violations.
fn validate(validator: &Validator, value: &Value) -> Result<(), String> {
    let mut errors = validator.iter_errors(value);
    let Some(first) = errors.next() else { return Ok(()) };
    let mut shown = vec![first];
    shown.extend(errors.by_ref().take(SHOWN_VIOLATIONS - 1));
    let more = errors.count();
    let described: Vec<String> = shown
        .iter()
        .map(|e| {
            let mut text = e.to_string();
            if text.len() > VIOLATION_CHARS {
                let cut = (0..=VIOLATION_CHARS).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
                text.truncate(cut);
                text.push('…');
            }
            let at = e.instance_path().as_str();
            format!("at `{}`: {text}", if at.is_empty() { "/" } else { at })
        })
        .collect();
    let total = shown.len() + more;
    let mut out = format!("{total} schema violation{}: {}", if total == 1 { "" } else { "s" }, described.join("; "));
    if more > 0 {
        out.push_str(&format!("; and {more} more"));
    }
    Err(out)
}

impl Codec {
    fn schema_error(topic: &str, type_name: &'static str, source: impl Into<super::error::BoxError>) -> SerdeError {
        SerdeError::Schema { topic: topic.to_owned(), format: FORMAT, type_name, source: source.into() }
    }

    fn writer(&self, topic: &str, type_name: &'static str) -> Result<Writer, SerdeError> {
        if let Some(found) = self.writers.read().unwrap_or_else(PoisonError::into_inner).get(topic) {
            return Ok(found.clone());
        }
        let config = self.client.config();
        let strategy = if self.is_key { config.key_subject_name_strategy } else { config.value_subject_name_strategy };
        let subject = strategy.subject(topic, self.is_key, self.title.as_deref()).map_err(|e| {
            Self::schema_error(topic, type_name, format!("{e} (a JSON Schema is named by its `title`)"))
        })?;
        let (id, latest) = self
            .client
            .writer_schema(&subject, SchemaKind::Json, &self.schema)
            .map_err(|source| SerdeError::registry(topic, source))?;
        let latest = match latest {
            Some(registered) if registered.kind != SchemaKind::Json => {
                return Err(Self::schema_error(
                    topic,
                    type_name,
                    format!(
                        "the latest schema of subject `{subject}` (id {}) is a {} schema, not JSON",
                        registered.id, registered.kind
                    ),
                ))
            }
            Some(registered) => Some(self.reader(topic, type_name, registered.id, Some(&registered.schema))?),
            None => None,
        };
        self.writers.write().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned(), (id, latest.clone()));
        Ok((id, latest))
    }

    /// The compiled schema with this id, fetched unless `text` is given.
    fn reader(
        &self,
        topic: &str,
        type_name: &'static str,
        id: u32,
        text: Option<&str>,
    ) -> Result<Arc<Validator>, SerdeError> {
        let cached = self.readers.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned();
        let compiled = match cached {
            Some(compiled) => compiled,
            None => {
                let fetched;
                let text = match text {
                    Some(text) => text,
                    None => {
                        fetched = self.client.schema_by_id(id).map_err(|source| SerdeError::registry(topic, source))?;
                        if fetched.kind != SchemaKind::Json {
                            return Err(Self::schema_error(
                                topic,
                                type_name,
                                format!("schema id {id} is a {} schema, not JSON", fetched.kind),
                            ));
                        }
                        &fetched.schema
                    }
                };
                let compiled: Compiled = parse(text)
                    .map(|(validator, _)| Arc::new(validator))
                    .map_err(|e| format!("the writer's schema (id {id}) does not compile: {e}").into());
                self.readers.write().unwrap_or_else(PoisonError::into_inner).insert(id, compiled.clone());
                compiled
            }
        };
        compiled.map_err(|e| Self::schema_error(topic, type_name, e.to_string()))
    }

    fn encode(&self, topic: &str, type_name: &'static str, value: &Value) -> Result<Vec<u8>, SerdeError> {
        validate(&self.validator, value).map_err(|e| Self::schema_error(topic, type_name, e))?;
        let (id, latest) = self.writer(topic, type_name)?;
        if let Some(latest) = latest {
            validate(&latest, value).map_err(|e| {
                Self::schema_error(topic, type_name, format!("against the subject's latest schema (id {id}): {e}"))
            })?;
        }
        let mut out = wire::header(id, 128);
        serde_json::to_writer(&mut out, value).map_err(|source| SerdeError::Json {
            topic: topic.to_owned(),
            type_name,
            source,
        })?;
        Ok(out)
    }

    fn decode(&self, topic: &str, type_name: &'static str, data: &[u8]) -> Result<Value, SerdeError> {
        let (id, payload) =
            wire::split(data).map_err(|source| SerdeError::WireFormat { topic: topic.to_owned(), source })?;
        let validator = self.reader(topic, type_name, id, None)?;
        let value: Value = serde_json::from_slice(payload).map_err(|source| SerdeError::Json {
            topic: topic.to_owned(),
            type_name,
            source,
        })?;
        validate(&validator, &value).map_err(|e| {
            Self::schema_error(topic, type_name, format!("does not match the writer's schema (id {id}): {e}"))
        })?;
        Ok(value)
    }
}

impl<T> JsonSchemaSerde<T> {
    /// A serde for `T` whose values follow the JSON Schema `schema` (its text).
    ///
    /// Fails when the text is not JSON or not a JSON Schema that compiles.
    pub fn new(client: &SchemaRegistryClient, schema: &str) -> Result<Self, SchemaParseError> {
        let (validator, title) = parse(schema).map_err(|e| SchemaParseError::new(FORMAT, e))?;
        let codec = Codec {
            client: client.clone(),
            schema: schema.to_owned(),
            validator: Arc::new(validator),
            title,
            is_key: false,
            writers: RwLock::default(),
            readers: RwLock::default(),
        };
        Ok(Self { codec: Arc::new(codec), _type: PhantomData })
    }

    /// The same serde for keys: subjects `<topic>-key` under the topic-name
    /// strategy, and the key strategy of the client's config.
    pub fn for_key(self) -> Self {
        let c = &self.codec;
        let codec = Codec {
            client: c.client.clone(),
            schema: c.schema.clone(),
            validator: Arc::clone(&c.validator),
            title: c.title.clone(),
            is_key: true,
            writers: RwLock::default(),
            readers: RwLock::new(c.readers.read().unwrap_or_else(PoisonError::into_inner).clone()),
        };
        Self { codec: Arc::new(codec), _type: PhantomData }
    }

    /// The schema text written with (and registered).
    pub fn schema(&self) -> &str {
        &self.codec.schema
    }

    /// The schema's `title`, the record name of the record-name strategies.
    pub fn title(&self) -> Option<&str> {
        self.codec.title.as_deref()
    }
}

impl<T> Clone for JsonSchemaSerde<T> {
    fn clone(&self) -> Self {
        Self { codec: Arc::clone(&self.codec), _type: PhantomData }
    }
}

impl<T> fmt::Debug for JsonSchemaSerde<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonSchemaSerde")
            .field("type", &std::any::type_name::<T>())
            .field("title", &self.codec.title)
            .field("is_key", &self.codec.is_key)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + DeserializeOwned + 'static> Serde for JsonSchemaSerde<T> {
    type Target = T;

    fn serialize(&self, topic: &str, _headers: &mut Headers, data: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        let type_name = std::any::type_name::<T>();
        let value = serde_json::to_value(data).map_err(|source| SerdeError::Json {
            topic: topic.to_owned(),
            type_name,
            source,
        })?;
        self.codec.encode(topic, type_name, &value).map(Some)
    }

    fn deserialize(&self, topic: &str, _headers: &Headers, data: Option<&[u8]>) -> Result<T, SerdeError> {
        let type_name = std::any::type_name::<T>();
        let bytes = data.ok_or_else(|| SerdeError::UnexpectedNull { topic: topic.to_owned(), type_name })?;
        let value = self.codec.decode(topic, type_name, bytes)?;
        serde_json::from_value(value).map_err(|source| SerdeError::Json { topic: topic.to_owned(), type_name, source })
    }

    fn to_json(&self, data: &T) -> Option<serde_json::Value> {
        serde_json::to_value(data).ok()
    }

    fn read_text(&self, text: &str) -> Option<Result<T, SerdeError>> {
        Some(super::json::json_from_text(text))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::serde::registry::{SchemaRegistryConfig, SubjectNameStrategy, WireFormatError};
    use crate::serde::test_registry::{client, failure, fake_registry, TestResult};

    const PAYMENT: &str = r#"{
        "title": "Payment",
        "type": "object",
        "properties": {
            "card_id": {"type": "string", "minLength": 2},
            "amount": {"type": "number", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["card_id", "amount"]
    }"#;

    /// A stricter version: amounts up to 5.
    const SMALL_PAYMENT: &str = r#"{"$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object", "properties": {"amount": {"type": "number", "maximum": 5}}}"#;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Payment {
        card_id: String,
        amount: f64,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn payment(amount: f64) -> Payment {
        Payment { card_id: "c1".into(), amount, tags: vec!["web".into()] }
    }

    #[test]
    fn schemas_that_do_not_compile_are_refused() -> TestResult {
        let c = client("http://127.0.0.1:9");
        for bad in ["{not json", r#"{"type": 12}"#, r#"{"minimum": "zero"}"#, "[1, 2]"] {
            let err = failure(JsonSchemaSerde::<Payment>::new(&c, bad));
            assert_eq!(err.format(), "JSON Schema", "{bad}");
        }
        let serde = JsonSchemaSerde::<Payment>::new(&c, PAYMENT)?;
        assert_eq!(serde.title(), Some("Payment"));
        assert!(JsonSchemaSerde::<Payment>::new(&c, "true")?.title().is_none());
        Ok(())
    }

    #[test]
    fn invalid_values_are_refused_before_the_registry_is_asked() -> TestResult {
        let c = client("http://127.0.0.1:9");
        let serde = JsonSchemaSerde::<Payment>::new(&c, PAYMENT)?;
        let bad = Payment { card_id: "x".into(), amount: -1.0, tags: vec![] };
        let err = failure(serde.serialize("payments", &mut Headers::new(), &bad));
        let text = err.to_string();
        assert!(matches!(err, SerdeError::Schema { format: "JSON Schema", .. }), "{text}");
        assert!(text.contains("2 schema violations"), "{text}");
        assert!(text.contains("at `/card_id`") && text.contains("at `/amount`"), "{text}");
        assert_eq!(c.http_calls(), 0);

        // Violations at the root are at `/`; many are cut to the first few.
        let serde = JsonSchemaSerde::<Vec<i32>>::new(&c, r#"{"type": "array", "items": {"minimum": 10}}"#)?;
        let err = failure(serde.serialize("t", &mut Headers::new(), &vec![1, 2, 3, 4, 5, 6, 7])).to_string();
        assert!(err.contains("7 schema violations") && err.contains("at `/0`") && err.contains("and 2 more"), "{err}");
        let serde = JsonSchemaSerde::<i32>::new(&c, r#"{"type": "string"}"#)?;
        let err = failure(serde.serialize("t", &mut Headers::new(), &1)).to_string();
        assert!(err.contains("at `/`"), "{err}");
        Ok(())
    }

    #[test]
    fn framing_round_trip_and_writer_schemas() -> TestResult {
        let (url, requests) = fake_registry(
            7,
            vec![
                (7, "JSON", PAYMENT.to_owned()),
                (8, "JSON", SMALL_PAYMENT.to_owned()),
                (9, "AVRO", "\"string\"".to_owned()),
                (10, "JSON", "{\"type\": 3}".to_owned()),
            ],
        )?;
        let c = client(&url);
        let serde = JsonSchemaSerde::<Payment>::new(&c, PAYMENT)?;
        let bytes = serde.serialize("payments", &mut Headers::new(), &payment(9.5))?.ok_or("null")?;
        assert_eq!(bytes[..5], [0, 0, 0, 0, 7]);
        let json: Value = serde_json::from_slice(&bytes[5..])?;
        assert_eq!(json, serde_json::json!({"card_id": "c1", "amount": 9.5, "tags": ["web"]}));
        serde.serialize("payments", &mut Headers::new(), &payment(1.0))?;
        let seen = requests.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(seen.len(), 1, "one registration per topic: {seen:?}");
        assert!(seen[0].starts_with("POST /subjects/payments-value/versions"), "{seen:?}");

        let reader = JsonSchemaSerde::<Payment>::new(&c, PAYMENT)?;
        let de = |bytes: &[u8]| reader.deserialize("payments", &Headers::new(), Some(bytes));
        assert_eq!(de(&bytes)?, payment(9.5));

        // The writer's schema (id 8) is the one checked on read: 9.5 is over its maximum.
        let mut small = vec![0, 0, 0, 0, 8];
        small.extend_from_slice(&bytes[5..]);
        let err = failure(de(&small));
        assert!(matches!(&err, SerdeError::Schema { .. }) && err.to_string().contains("id 8"), "{err}");
        let ok = [&[0u8, 0, 0, 0, 8][..], br#"{"card_id": "c2", "amount": 5}"#].concat();
        assert_eq!(de(&ok)?.amount, 5.0);
        // Valid for the writer, but not a Payment.
        let err = failure(de(&[&[0u8, 0, 0, 0, 8][..], br#"{"amount": 1}"#].concat()));
        assert!(matches!(err, SerdeError::Json { .. }), "{err}");
        // Not JSON after the header.
        assert!(matches!(de(&[0, 0, 0, 0, 7, b'{']), Err(SerdeError::Json { .. })));
        // An Avro id, a schema that does not compile, an unknown id.
        let err = failure(de(&[0, 0, 0, 0, 9, b'1']));
        assert!(err.to_string().contains("AVRO"), "{err}");
        let calls = c.http_calls();
        for _ in 0..2 {
            let err = failure(de(&[0, 0, 0, 0, 10, b'1']));
            assert!(err.to_string().contains("does not compile"), "{err}");
        }
        assert_eq!(c.http_calls(), calls + 1, "a broken schema is fetched and compiled once");
        match failure(de(&[0, 0, 0, 0, 11, b'1'])) {
            SerdeError::Registry { source, .. } => assert_eq!(source.status(), Some(404), "{source}"),
            other => panic!("{other}"),
        }
        Ok(())
    }

    #[test]
    fn keys_and_record_names() -> TestResult {
        let (url, requests) = fake_registry(3, vec![])?;
        let serde = JsonSchemaSerde::<Payment>::new(&client(&url), PAYMENT)?.for_key();
        serde.serialize("payments", &mut Headers::new(), &payment(1.0))?;
        let seen = |i: usize| requests.lock().unwrap_or_else(PoisonError::into_inner).get(i).cloned();
        assert!(seen(0).is_some_and(|r| r.starts_with("POST /subjects/payments-key/versions")), "{:?}", seen(0));

        let mut config = SchemaRegistryConfig::new(&url);
        config.value_subject_name_strategy = SubjectNameStrategy::TopicRecordName;
        let named = SchemaRegistryClient::new(config);
        let serde = JsonSchemaSerde::<Payment>::new(&named, PAYMENT)?;
        serde.serialize("payments", &mut Headers::new(), &payment(1.0))?;
        assert!(seen(1).is_some_and(|r| r.starts_with("POST /subjects/payments-Payment/versions")), "{:?}", seen(1));
        // Without a title there is no record name.
        let untitled = JsonSchemaSerde::<Payment>::new(&named, r#"{"type": "object"}"#)?;
        let err = failure(untitled.serialize("payments", &mut Headers::new(), &payment(1.0)));
        assert!(err.to_string().contains("title"), "{err}");
        Ok(())
    }

    #[test]
    fn bad_bytes_are_errors() -> TestResult {
        let serde = JsonSchemaSerde::<Payment>::new(&client("http://127.0.0.1:9"), PAYMENT)?;
        let de = |bytes: Option<&[u8]>| serde.deserialize("t", &Headers::new(), bytes);
        assert!(matches!(de(None), Err(SerdeError::UnexpectedNull { .. })));
        assert!(matches!(
            de(Some(br#"{"card_id": "c1"}"#)),
            Err(SerdeError::WireFormat { source: WireFormatError::UnknownMagicByte { found: b'{' }, .. })
        ));
        assert!(matches!(
            de(Some(&[0, 0])),
            Err(SerdeError::WireFormat { source: WireFormatError::Truncated { len: 2 }, .. })
        ));
        Ok(())
    }
}
