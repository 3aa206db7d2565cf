//! What a call to the schema registry can fail with.

use std::fmt;

use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;

/// The registry call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryOperation {
    /// `GET /schemas/ids/{id}`: a reader needs the writer's schema.
    FetchSchema {
        /// The schema id from the record.
        id: u32,
    },
    /// `POST /subjects/{subject}/versions`: registering a writer's schema.
    Register {
        /// The subject.
        subject: String,
    },
    /// `POST /subjects/{subject}`: finding the id of a schema registered by
    /// someone else (`auto.register.schemas=false`).
    Lookup {
        /// The subject.
        subject: String,
    },
    /// `GET /subjects/{subject}/versions/latest` (`use.latest.version=true`).
    Latest {
        /// The subject.
        subject: String,
    },
    /// Setting up the HTTP client.
    Connect,
}

impl RegistryOperation {
    /// The subject the call was about, if any.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Self::Register { subject } | Self::Lookup { subject } | Self::Latest { subject } => Some(subject),
            Self::FetchSchema { .. } | Self::Connect => None,
        }
    }
}

impl fmt::Display for RegistryOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FetchSchema { id } => write!(f, "fetching schema id {id}"),
            Self::Register { subject } => write!(f, "registering a schema under subject `{subject}`"),
            Self::Lookup { subject } => write!(f, "looking up the schema under subject `{subject}`"),
            Self::Latest { subject } => write!(f, "fetching the latest schema of subject `{subject}`"),
            Self::Connect => f.write_str("creating the HTTP client"),
        }
    }
}

/// How a registry call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// The registry did not answer, or answered 5xx: worth retrying.
    Unavailable {
        /// What was seen.
        reason: String,
    },
    /// The registry refused the call (4xx): retrying will not help.
    /// 404 is an unknown id or subject; 409 an incompatible schema; 422 an
    /// invalid one; 401/403 missing or wrong credentials.
    Refused {
        /// The HTTP status, when known.
        status: Option<u16>,
        /// The registry's `error_code` (40403: schema not found, 40401:
        /// subject not found, 409: incompatible, 42201: invalid schema).
        error_code: Option<u32>,
        /// The registry's message.
        message: String,
    },
    /// The registry answered something this client cannot use.
    InvalidResponse {
        /// What was wrong.
        reason: String,
    },
}

impl fmt::Display for RegistryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable { reason } => write!(f, "registry unavailable ({reason}); will be retried"),
            Self::Refused { status, error_code, message } => {
                f.write_str("refused")?;
                match (status, error_code) {
                    (Some(s), Some(c)) => write!(f, " (HTTP {s}, error_code {c})")?,
                    (Some(s), None) => write!(f, " (HTTP {s})")?,
                    (None, Some(c)) => write!(f, " (error_code {c})")?,
                    (None, None) => {}
                }
                write!(f, ": {message}")
            }
            Self::InvalidResponse { reason } => write!(f, "unusable answer: {reason}"),
        }
    }
}

/// A failed call to the schema registry, naming the registry, the call and
/// (for writers) the subject.
#[derive(Debug, Clone)]
pub struct RegistryError(Box<Inner>);

// Boxed: errors travel in every processor result, which must stay small.
#[derive(Debug, Clone)]
struct Inner {
    url: String,
    operation: RegistryOperation,
    kind: RegistryErrorKind,
    source: Option<SRCError>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schema registry {}: {} failed: {}", self.0.url, self.0.operation, self.0.kind)
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl RegistryError {
    pub(crate) fn new(url: &str, operation: RegistryOperation, kind: RegistryErrorKind) -> Self {
        Self(Box::new(Inner { url: url.to_owned(), operation, kind, source: None }))
    }

    /// Classifies an error of `schema_registry_converter`'s HTTP layer.
    pub(crate) fn from_src(url: &str, operation: RegistryOperation, error: SRCError) -> Self {
        let raw = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<RawError>());
        let status = error
            .error
            .split_once("status ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse::<u16>().ok());
        let kind = if error.retriable || status.is_some_and(|s| s >= 500) {
            RegistryErrorKind::Unavailable { reason: error.cause.clone().unwrap_or_else(|| error.error.clone()) }
        } else if status.is_some() || raw.is_some() {
            RegistryErrorKind::Refused {
                status,
                error_code: raw.map(|r| r.error_code).filter(|&c| c != 0),
                message: raw.map(|r| r.message.clone()).unwrap_or_else(|| error.error.clone()),
            }
        } else {
            RegistryErrorKind::InvalidResponse {
                reason: match &error.cause {
                    Some(cause) => format!("{}: {cause}", error.error),
                    None => error.error.clone(),
                },
            }
        };
        Self(Box::new(Inner { url: url.to_owned(), operation, kind, source: Some(error) }))
    }

    /// The registry's URL.
    pub fn url(&self) -> &str {
        &self.0.url
    }

    /// The call that failed.
    pub fn operation(&self) -> &RegistryOperation {
        &self.0.operation
    }

    /// How it failed.
    pub fn kind(&self) -> &RegistryErrorKind {
        &self.0.kind
    }

    /// The subject concerned, if the call had one.
    pub fn subject(&self) -> Option<&str> {
        self.0.operation.subject()
    }

    /// Whether the registry was away (retry later) rather than refusing.
    pub fn is_retriable(&self) -> bool {
        matches!(self.0.kind, RegistryErrorKind::Unavailable { .. })
    }

    /// The HTTP status of a refusal (409 for an incompatible schema).
    pub fn status(&self) -> Option<u16> {
        match &self.0.kind {
            RegistryErrorKind::Refused { status, .. } => *status,
            _ => None,
        }
    }

    /// The registry's `error_code` of a refusal.
    pub fn error_code(&self) -> Option<u32> {
        match &self.0.kind {
            RegistryErrorKind::Refused { error_code, .. } => *error_code,
            _ => None,
        }
    }
}
