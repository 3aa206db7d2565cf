//! The Confluent Schema Registry: a caching client, subject naming, and the
//! wire format (magic byte 0, 4-byte schema id, payload) that the Avro,
//! Protobuf and JSON Schema serdes share.
//!
//! One [`SchemaRegistryClient`] per registry, cloned into every serde that
//! uses it, so that schemas and ids are fetched once per process.
//! Settings come from [`SchemaRegistryConfig`], under the Confluent
//! serializers' names (`schema.registry.url`, `auto.register.schemas`,
//! `use.latest.version`, `basic.auth.user.info`, `bearer.auth.token`,
//! `value.subject.name.strategy`, ...).
//!
//! Any Confluent-compatible registry works: Confluent's own, Karapace,
//! Redpanda's, Apicurio in its Confluent-compatible mode. HTTPS needs the
//! `schema-registry-tls` feature.

mod client;
mod config;
mod error;
pub mod wire;

pub use client::{RegisteredSchema, SchemaKind, SchemaRegistryClient};
pub use config::{SchemaRegistryConfig, SubjectNameStrategy};
pub use error::{RegistryError, RegistryErrorKind, RegistryOperation};
pub use wire::WireFormatError;
