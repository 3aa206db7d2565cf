//! How the examples encode the values of the topics they share with other
//! programs: JSON (the default), or Avro in Confluent's wire format through a
//! schema registry.
//!
//! In Avro every example has explicit schemas (record names without a
//! namespace, registered under the topic-name strategy, `<topic>-value`).
//! Inputs are read with the example's schema as the reader's schema, so
//! records written with any compatible writer schema (a newer one with an
//! added field that has a default, say) decode into it. Outputs are written
//! with the example's schema, registered on first use (unless the registry
//! config says `auto.register.schemas=false`). Keys stay UTF-8 strings, and
//! internal topics (repartition, changelog) keep JSON.
//!
//! ```
//! use rivulet_examples::format::Format;
//! use rivulet_examples::fraud_detection::{self, Limits};
//!
//! let json = fraud_detection::topology_in("payments", "fraud-alerts", Limits::default(), &Format::Json)?;
//! assert!(json.describe().to_string().contains("payments"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use streams_dsl::serde::{AvroSerde, JsonSerde, SchemaParseError, SchemaRegistryClient};
use streams_dsl::{Headers, Serde, SerdeError, SerdeRef};

/// The value format of an example's external topics.
#[derive(Debug, Clone, Default)]
pub enum Format {
    /// JSON text (word counts: plain UTF-8 text).
    #[default]
    Json,
    /// Avro in Confluent's wire format (magic byte 0, 4-byte schema id,
    /// datum), with schemas in this registry.
    Avro(SchemaRegistryClient),
}

impl Format {
    /// `json` or `avro`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Avro(_) => "avro",
        }
    }

    /// The registry, in Avro.
    pub fn registry(&self) -> Option<&SchemaRegistryClient> {
        match self {
            Self::Json => None,
            Self::Avro(client) => Some(client),
        }
    }

    /// The serde of `T` as an external topic's value: `T` as JSON, or
    /// `T`'s Avro record ([`AvroRecord`]).
    pub fn serde<T>(&self) -> Result<SerdeRef<T>, SchemaParseError>
    where
        T: AvroRecord + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Ok(match self {
            Self::Json => Arc::new(JsonSerde::<T>::new()),
            Self::Avro(client) => {
                Arc::new(ViaAvro::<T> { inner: AvroSerde::with_schema(client, T::SCHEMA)?, _type: PhantomData })
            }
        })
    }
}

/// A type with an Avro form on the examples' external topics: a record
/// type (`Wire`, whose fields match the schema's: `i64` for `long`, `f64` for
/// `double`, `Option<String>` for `["null","string"]`) and its schema text.
pub trait AvroRecord: Sized {
    /// The Rust shape of the Avro record.
    type Wire: Serialize + DeserializeOwned + 'static;
    /// The Avro schema, as JSON text.
    const SCHEMA: &'static str;
    /// The record to write for `self`.
    fn to_wire(&self) -> Self::Wire;
    /// The value a record read stands for.
    fn from_wire(wire: Self::Wire) -> Self;
}

/// Reads and writes `T` as its Avro record.
struct ViaAvro<T: AvroRecord> {
    inner: AvroSerde<T::Wire>,
    _type: PhantomData<fn() -> T>,
}

impl<T: AvroRecord> fmt::Debug for ViaAvro<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViaAvro").field("inner", &self.inner).finish()
    }
}

impl<T: AvroRecord + 'static> Serde for ViaAvro<T> {
    type Target = T;

    fn serialize(&self, topic: &str, headers: &mut Headers, data: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.inner.serialize(topic, headers, &data.to_wire())
    }

    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<T, SerdeError> {
        self.inner.deserialize(topic, headers, data).map(T::from_wire)
    }
}

/// A store's serde shown differently in HTTP query answers: the bytes are
/// `inner`'s (stores and changelogs keep their format), the JSON is
/// `show`'s (money as a decimal string, say).
pub struct ShownAs<S: Serde> {
    inner: S,
    show: fn(&S::Target) -> serde_json::Value,
}

impl<S: Serde> ShownAs<S> {
    /// `inner`, shown by `show`.
    pub fn new(inner: S, show: fn(&S::Target) -> serde_json::Value) -> Self {
        Self { inner, show }
    }
}

impl<S: Serde + fmt::Debug> fmt::Debug for ShownAs<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShownAs").field("inner", &self.inner).finish_non_exhaustive()
    }
}

impl<S: Serde> Serde for ShownAs<S> {
    type Target = S::Target;

    fn serialize(&self, topic: &str, headers: &mut Headers, data: &S::Target) -> Result<Option<Vec<u8>>, SerdeError> {
        self.inner.serialize(topic, headers, data)
    }

    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<S::Target, SerdeError> {
        self.inner.deserialize(topic, headers, data)
    }

    fn to_json(&self, data: &S::Target) -> Option<serde_json::Value> {
        Some((self.show)(data))
    }

    fn read_text(&self, text: &str) -> Option<Result<S::Target, SerdeError>> {
        self.inner.read_text(text)
    }
}

/// A bare Avro `"string"` value (word-count's input in Avro).
pub const STRING_SCHEMA: &str = r#""string""#;
/// A bare Avro `"long"` value (word-count's output in Avro).
pub const LONG_SCHEMA: &str = r#""long""#;

/// A serde of Avro values of the primitive `schema` (`"string"`, `"long"`)
/// read into `T` (`String`, `i64`).
pub fn avro_primitive<T>(client: &SchemaRegistryClient, schema: &str) -> Result<SerdeRef<T>, SchemaParseError>
where
    T: Serialize + DeserializeOwned + 'static,
{
    Ok(Arc::new(AvroSerde::<T>::with_schema(client, schema)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example's schema parses, and its record name and field types
    /// are the ones the contract names.
    #[test]
    fn schemas_parse() {
        use apache_avro::Schema;
        for (schema, name) in [
            (crate::fraud_detection::avro::PAYMENT_SCHEMA, "Payment"),
            (crate::fraud_detection::avro::FRAUD_ALERT_SCHEMA, "FraudAlert"),
            (crate::order_enrichment::avro::CUSTOMER_SCHEMA, "Customer"),
            (crate::order_enrichment::avro::ORDER_SCHEMA, "Order"),
            (crate::order_enrichment::avro::ENRICHED_ORDER_SCHEMA, "EnrichedOrder"),
            (crate::page_views::avro::PAGE_VIEW_SCHEMA, "PageView"),
            (crate::page_views::avro::PAGE_VIEW_COUNT_SCHEMA, "PageViewCount"),
            (crate::page_views::avro::USER_SESSION_SCHEMA, "UserSession"),
        ] {
            let parsed = Schema::parse_str(schema).unwrap_or_else(|e| panic!("{name}: {e}"));
            let full = parsed.name().map(|n| n.fullname(None));
            assert_eq!(full.as_deref(), Some(name));
        }
        assert_eq!(Schema::parse_str(STRING_SCHEMA).ok(), Some(Schema::String));
        assert_eq!(Schema::parse_str(LONG_SCHEMA).ok(), Some(Schema::Long));
    }

    /// The Rust records encode with their schemas and read back the same.
    #[test]
    fn records_round_trip_through_their_schemas() -> Result<(), Box<dyn std::error::Error>> {
        use apache_avro::reader::datum::GenericDatumReader;
        use apache_avro::writer::datum::GenericDatumWriter;
        use apache_avro::Schema;
        fn check<T: AvroRecord>(value: &T) -> Result<(), Box<dyn std::error::Error>>
        where
            T::Wire: PartialEq + fmt::Debug,
        {
            let schema = Schema::parse_str(T::SCHEMA)?;
            let wire = value.to_wire();
            let avro = apache_avro::to_value(&wire)?.resolve(&schema)?;
            let mut bytes = Vec::new();
            GenericDatumWriter::builder(&schema).build()?.write_value(&mut bytes, avro)?;
            let back = GenericDatumReader::builder(&schema).build()?.read_value(&mut bytes.as_slice())?;
            let back: T::Wire = apache_avro::from_value(&back)?;
            assert_eq!(back, wire);
            Ok(())
        }
        use crate::fraud_detection::{Alert, Payment};
        use crate::order_enrichment::{Customer, EnrichedOrder, Order};
        use crate::page_views::{PageCount, PageView, Session};
        check(&Payment { card_id: "c".into(), amount: 1.5, merchant: "m".into(), ts: Some(7) })?;
        check(&Alert { card_id: "c".into(), window_start: 0, window_end: 60_000, count: 6, total: 60.25 })?;
        check(&Customer { customer_id: "c1".into(), name: "Ada".into(), tier: "gold".into() })?;
        check(&Order { order_id: "o".into(), customer_id: "c".into(), amount: 2.0, ts: Some(9) })?;
        for (name, tier) in [(None, None), (Some("Ada".to_owned()), Some("gold".to_owned()))] {
            check(&EnrichedOrder {
                order_id: "o".into(),
                customer_id: "c".into(),
                amount: 2.0,
                ts: Some(9),
                customer_name: name,
                tier,
            })?;
        }
        check(&PageView { user_id: "u".into(), page: "/".into(), ts: Some(1) })?;
        check(&PageCount { page: "/".into(), window_start: 0, window_end: 60_000, views: 3 })?;
        check(&Session { user_id: "u".into(), session_start: 0, session_end: 5, views: 2 })?;
        Ok(())
    }
}
