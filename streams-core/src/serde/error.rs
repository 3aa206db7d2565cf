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

    /// The topic the error happened on.
    pub fn topic(&self) -> &str {
        match self {
            Self::UnexpectedNull { topic, .. }
            | Self::WrongSize { topic, .. }
            | Self::InvalidUtf8 { topic, .. }
            | Self::Json { topic, .. }
            | Self::Custom { topic, .. } => topic,
        }
    }
}
