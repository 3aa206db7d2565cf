/// Why bytes could not be turned into a value, or a value into bytes.
///
/// Every variant names the topic, so that a log line or a dead-letter header
/// says where the bad record came from.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// A null key or value where the type has no null.
    #[error("topic `{topic}`: got null where a {type_name} was expected; use an Option type (serde::Nullable) if nulls are valid here")]
    UnexpectedNull {
        /// The topic being read or written.
        topic: String,
        /// The expected Rust type.
        type_name: &'static str,
    },
    /// A fixed-width encoding with the wrong number of bytes.
    #[error("topic `{topic}`: a {type_name} takes exactly {expected} bytes, got {actual}")]
    WrongSize {
        /// The topic being read.
        topic: String,
        /// The Rust type being decoded.
        type_name: &'static str,
        /// The number of bytes the encoding has.
        expected: usize,
        /// The number of bytes received.
        actual: usize,
    },
    /// Bytes that are not valid UTF-8 where a string was expected.
    #[error("topic `{topic}`: invalid UTF-8 in a string: {source}")]
    InvalidUtf8 {
        /// The topic being read.
        topic: String,
        /// Where the UTF-8 decoding failed.
        source: std::str::Utf8Error,
    },
    /// JSON that does not parse, or does not fit the target type.
    #[error("topic `{topic}`: invalid JSON for {type_name}: {source}")]
    Json {
        /// The topic being read or written.
        topic: String,
        /// The Rust type being decoded or encoded.
        type_name: &'static str,
        /// serde_json's description, with line and column.
        source: serde_json::Error,
    },
    /// The schema registry could not be asked (retried by the runtime) or
    /// refused (an unknown schema id, an incompatible schema).
    #[cfg(feature = "schema-registry")]
    #[error("topic `{topic}`: {source}")]
    Registry {
        /// The topic being read or written.
        topic: String,
        /// The registry, the call and what happened.
        source: super::registry::RegistryError,
    },
    /// Bytes not in the schema registry's wire format (wrong magic byte,
    /// truncated header).
    #[cfg(feature = "schema-registry")]
    #[error("topic `{topic}`: not in the schema registry's wire format: {source}")]
    WireFormat {
        /// The topic being read.
        topic: String,
        /// What is wrong with the bytes.
        source: super::registry::WireFormatError,
    },
    /// A value that does not fit its schema, or a payload that does not
    /// decode with the writer's schema (Avro, Protobuf, JSON Schema).
    #[error("topic `{topic}`: {format} for {type_name}: {source}")]
    Schema {
        /// The topic being read or written.
        topic: String,
        /// `Avro`, `Protobuf` or `JSON Schema`.
        format: &'static str,
        /// The Rust type being decoded or encoded.
        type_name: &'static str,
        /// The codec's description.
        source: BoxError,
    },
    /// Text that does not read as the type (a key in an HTTP query path).
    #[error("`{text}` is not a valid {type_name}: {reason}")]
    Text {
        /// The text given.
        text: String,
        /// The Rust type expected.
        type_name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other failure, from a user-written serde.
    #[error("topic `{topic}`: {message}")]
    Custom {
        /// The topic being read or written.
        topic: String,
        /// What went wrong.
        message: String,
    },
}

impl SerdeError {
    /// A custom error for user-written serdes.
    pub fn custom(topic: &str, message: impl Into<String>) -> Self {
        Self::Custom { topic: topic.to_owned(), message: message.into() }
    }

    /// A registry error met while reading or writing `topic`.
    #[cfg(feature = "schema-registry")]
    pub fn registry(topic: &str, source: super::registry::RegistryError) -> Self {
        Self::Registry { topic: topic.to_owned(), source }
    }

    /// The topic the error happened on (empty for [`SerdeError::Text`]).
    pub fn topic(&self) -> &str {
        match self {
            Self::UnexpectedNull { topic, .. }
            | Self::WrongSize { topic, .. }
            | Self::InvalidUtf8 { topic, .. }
            | Self::Json { topic, .. }
            | Self::Schema { topic, .. }
            | Self::Custom { topic, .. } => topic,
            // Text is not read from a topic.
            Self::Text { .. } => "",
            #[cfg(feature = "schema-registry")]
            Self::Registry { topic, .. } | Self::WireFormat { topic, .. } => topic,
        }
    }

    /// Whether trying again later may succeed: the schema registry did not
    /// answer. The runtime rolls back and retries these within
    /// `task.timeout.ms` instead of handing the record to an error handler.
    pub fn is_retriable(&self) -> bool {
        match self {
            #[cfg(feature = "schema-registry")]
            Self::Registry { source, .. } => source.is_retriable(),
            _ => false,
        }
    }
}

/// A boxed error from a codec.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A schema (Avro, Protobuf, JSON Schema) that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid {format} schema: {source}")]
pub struct SchemaParseError {
    format: &'static str,
    source: BoxError,
}

impl SchemaParseError {
    /// A parse error of a `format` schema.
    pub fn new(format: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { format, source: source.into() }
    }

    /// `Avro`, `Protobuf` or `JSON Schema`.
    pub fn format(&self) -> &'static str {
        self.format
    }
}
