//! The registry client: schemas by id and ids by subject, each fetched once.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use schema_registry_converter::blocking::schema_registry::{
    get_schema_by_id, perform_sr_call, post_schema, SrSettings,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{RawRegisteredSchema, SchemaType, SrCall, SuppliedSchema};

use super::config::SchemaRegistryConfig;
use super::error::{RegistryError, RegistryErrorKind, RegistryOperation};

/// The schema languages the registry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SchemaKind {
    /// Apache Avro.
    Avro,
    /// Protocol Buffers (proto3 or proto2 `.proto` text).
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaKind {
    fn to_src(self) -> SchemaType {
        match self {
            Self::Avro => SchemaType::Avro,
            Self::Protobuf => SchemaType::Protobuf,
            Self::Json => SchemaType::Json,
        }
    }

    /// The registry's name for it (`AVRO`, `PROTOBUF`, `JSON`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Protobuf => "PROTOBUF",
            Self::Json => "JSON",
        }
    }

    fn parse(name: Option<&str>) -> Option<Self> {
        // The registry leaves `schemaType` out for Avro.
        match name.unwrap_or("AVRO").to_ascii_uppercase().as_str() {
            "AVRO" => Some(Self::Avro),
            "PROTOBUF" => Some(Self::Protobuf),
            "JSON" => Some(Self::Json),
            _ => None,
        }
    }
}

impl fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its global id, the one in every record written with it.
    pub id: u32,
    /// Its language.
    pub kind: SchemaKind,
    /// Its text (registries may canonicalise it: compare parsed, not as text).
    pub schema: String,
}

/// A client of a Confluent-compatible schema registry, shared by every serde
/// that uses the same registry (cloning is cheap).
///
/// Schemas by id and ids by subject are cached for the life of the client:
/// one HTTP call per new id or subject, never per record. A call the
/// registry does not answer is retried `max.retries` times with backoff; a
/// refusal (unknown id, incompatible schema) is final, and unknown ids are
/// remembered so that a topic full of poison records does not flood the
/// registry.
///
/// HTTP is blocking and happens on the calling thread (a stream thread, the
/// first time it meets an id or a subject), so do not call the serdes from
/// inside an async runtime.
#[derive(Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

type Cached<T> = RwLock<HashMap<T, Result<Arc<RegisteredSchema>, RegistryError>>>;

struct Inner {
    config: SchemaRegistryConfig,
    // Built on first use: reqwest's blocking client may not be created
    // inside an async runtime, and topologies are often built inside one.
    settings: OnceLock<Result<SrSettings, RegistryError>>,
    by_id: Cached<u32>,
    by_subject: RwLock<HashMap<(String, SchemaKind, String), Arc<RegisteredSchema>>>,
    latest: RwLock<HashMap<String, Arc<RegisteredSchema>>>,
    http_calls: AtomicU64,
}

impl fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryClient")
            .field("config", &self.inner.config)
            .field("http_calls", &self.http_calls())
            .finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl SchemaRegistryClient {
    /// A client for the registry `config` names. Nothing is contacted yet.
    pub fn new(config: SchemaRegistryConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                settings: OnceLock::new(),
                by_id: RwLock::default(),
                by_subject: RwLock::default(),
                latest: RwLock::default(),
                http_calls: AtomicU64::new(0),
            }),
        }
    }

    /// A client with default settings for the registry at `url`.
    pub fn from_url(url: impl AsRef<str>) -> Self {
        Self::new(SchemaRegistryConfig::new(url))
    }

    /// Its settings.
    pub fn config(&self) -> &SchemaRegistryConfig {
        &self.inner.config
    }

    /// HTTP calls made so far (retries included): to check that the caches work.
    pub fn http_calls(&self) -> u64 {
        self.inner.http_calls.load(Ordering::Relaxed)
    }

    /// The schema with this id (the writer's schema of a record).
    pub fn schema_by_id(&self, id: u32) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(found) = read(&self.inner.by_id).get(&id) {
            return found.clone();
        }
        let operation = RegistryOperation::FetchSchema { id };
        let result = self.call(operation.clone(), |s| get_schema_by_id(id, s)).and_then(|r| {
            let kind = match r.schema_type {
                SchemaType::Avro => SchemaKind::Avro,
                SchemaType::Protobuf => SchemaKind::Protobuf,
                SchemaType::Json => SchemaKind::Json,
                other => {
                    return Err(self.error(
                        operation,
                        RegistryErrorKind::InvalidResponse { reason: format!("unknown schema type {other:?}") },
                    ))
                }
            };
            Ok(Arc::new(RegisteredSchema { id, kind, schema: r.schema }))
        });
        // Refusals are kept (an unknown id stays unknown); outages are not.
        if !matches!(&result, Err(e) if e.is_retriable()) {
            write(&self.inner.by_id).insert(id, result.clone());
        }
        result
    }

    /// Registers `schema` under `subject` (or finds it there), returning its id.
    pub fn register(&self, subject: &str, kind: SchemaKind, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), kind, schema.to_owned());
        if let Some(found) = read(&self.inner.by_subject).get(&key) {
            return Ok(found.id);
        }
        let supplied = SuppliedSchema::new(None, kind.to_src(), schema.to_owned());
        let registered = self.call(RegistryOperation::Register { subject: subject.to_owned() }, |s| {
            post_schema(s, subject.to_owned(), supplied.clone())
        })?;
        self.remember(key, registered.id);
        Ok(registered.id)
    }

    /// The id of `schema` if it is registered under `subject`; a refusal
    /// (HTTP 404) if it is not.
    pub fn lookup(&self, subject: &str, kind: SchemaKind, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), kind, schema.to_owned());
        if let Some(found) = read(&self.inner.by_subject).get(&key) {
            return Ok(found.id);
        }
        let operation = RegistryOperation::Lookup { subject: subject.to_owned() };
        let body = serde_json::json!({ "schema": schema, "schemaType": kind.as_str() }).to_string();
        let raw = self.call(operation.clone(), |s| perform_sr_call(s, SrCall::PostForVersion(subject, &body)))?;
        let id = raw.id.ok_or_else(|| {
            self.error(operation, RegistryErrorKind::InvalidResponse { reason: "no `id` in the answer".to_owned() })
        })?;
        self.remember(key, id);
        Ok(id)
    }

    /// The latest schema registered under `subject` (fetched once, then
    /// kept: a writer does not change schema under its records' feet).
    pub fn latest(&self, subject: &str) -> Result<Arc<RegisteredSchema>, RegistryError> {
        if let Some(found) = read(&self.inner.latest).get(subject) {
            return Ok(Arc::clone(found));
        }
        let operation = RegistryOperation::Latest { subject: subject.to_owned() };
        let raw: RawRegisteredSchema =
            self.call(operation.clone(), |s| perform_sr_call(s, SrCall::GetLatest(subject)))?;
        let invalid = |reason: &str| {
            self.error(operation.clone(), RegistryErrorKind::InvalidResponse { reason: reason.to_owned() })
        };
        let kind = SchemaKind::parse(raw.schema_type.as_deref()).ok_or_else(|| invalid("unknown schema type"))?;
        let schema = Arc::new(RegisteredSchema {
            id: raw.id.ok_or_else(|| invalid("no `id` in the answer"))?,
            kind,
            schema: raw.schema.ok_or_else(|| invalid("no `schema` in the answer"))?,
        });
        write(&self.inner.latest).insert(subject.to_owned(), Arc::clone(&schema));
        write(&self.inner.by_id).entry(schema.id).or_insert_with(|| Ok(Arc::clone(&schema)));
        Ok(schema)
    }

    /// The id a writer of `schema` under `subject` uses, as the config says:
    /// the latest version's (`use.latest.version`), its own after
    /// registering it (`auto.register.schemas`), or its own looked up.
    /// Returns the schema to write with: the latest version's text when
    /// that is used, `None` for the writer's own.
    pub fn writer_schema(
        &self,
        subject: &str,
        kind: SchemaKind,
        schema: &str,
    ) -> Result<(u32, Option<Arc<RegisteredSchema>>), RegistryError> {
        let config = &self.inner.config;
        if config.use_latest_version {
            let latest = self.latest(subject)?;
            Ok((latest.id, Some(latest)))
        } else if config.auto_register_schemas {
            Ok((self.register(subject, kind, schema)?, None))
        } else {
            Ok((self.lookup(subject, kind, schema)?, None))
        }
    }

    fn remember(&self, key: (String, SchemaKind, String), id: u32) {
        let schema = Arc::new(RegisteredSchema { id, kind: key.1, schema: key.2.clone() });
        write(&self.inner.by_id).entry(id).or_insert_with(|| Ok(Arc::clone(&schema)));
        write(&self.inner.by_subject).insert(key, schema);
    }

    fn error(&self, operation: RegistryOperation, kind: RegistryErrorKind) -> RegistryError {
        RegistryError::new(self.inner.config.url(), operation, kind)
    }

    fn settings(&self) -> Result<&SrSettings, RegistryError> {
        let config = &self.inner.config;
        self.inner
            .settings
            .get_or_init(|| {
                let connect_error = |reason: String| {
                    RegistryError::new(
                        config.url(),
                        RegistryOperation::Connect,
                        RegistryErrorKind::Refused { status: None, error_code: None, message: reason },
                    )
                };
                let mut urls = config.urls.iter();
                let first = urls.next().ok_or_else(|| connect_error("no schema.registry.url given".to_owned()))?;
                let mut builder = SrSettings::new_builder(first.clone());
                for url in urls {
                    builder.add_url(url.clone());
                }
                if let Some((user, password)) = config.basic_auth_user_info.as_deref().and_then(|u| u.split_once(':')) {
                    builder.set_basic_authorization(user, Some(password));
                }
                if let Some(token) = &config.bearer_token {
                    builder.set_token_authorization(token);
                }
                builder.set_timeout(config.request_timeout);
                // Built on a thread of its own: reqwest's blocking client
                // panics if built on a thread that runs an async runtime.
                std::thread::scope(|s| s.spawn(|| builder.build()).join())
                    .map_err(|_| connect_error("building the HTTP client panicked".to_owned()))?
                    .map_err(|e| RegistryError::from_src(config.url(), RegistryOperation::Connect, e))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    fn call<T>(
        &self,
        operation: RegistryOperation,
        f: impl Fn(&SrSettings) -> Result<T, SRCError>,
    ) -> Result<T, RegistryError> {
        let settings = self.settings()?;
        let config = &self.inner.config;
        let mut backoff = config.retry_backoff;
        let mut attempt = 0;
        loop {
            self.inner.http_calls.fetch_add(1, Ordering::Relaxed);
            let error = match f(settings) {
                Ok(value) => return Ok(value),
                Err(e) => RegistryError::from_src(config.url(), operation.clone(), e),
            };
            if !error.is_retriable() || attempt >= config.max_retries {
                return Err(error);
            }
            attempt += 1;
            tracing::debug!(%error, attempt, "schema registry call failed; retrying");
            // A backoff between attempts, not a wait for a condition.
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(config.retry_backoff_max);
        }
    }
}
