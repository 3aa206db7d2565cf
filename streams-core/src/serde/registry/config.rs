//! The registry serdes' settings, under the Confluent serializers' names.

use std::fmt;
use std::time::Duration;

use crate::config::ConfigError;

/// How the subject a schema is registered under is named (Confluent's
/// `key.subject.name.strategy` / `value.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`: one schema lineage per topic (the default).
    #[default]
    TopicName,
    /// The record's full name: one lineage per record type, on any topic.
    RecordName,
    /// `<topic>-<record full name>`: several record types per topic.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// Parses Confluent's class names (`TopicNameStrategy`, with or without
    /// the `io.confluent.kafka.serializers.subject.` package) or the
    /// snake-case names `topic_name`, `record_name`, `topic_record_name`.
    pub fn parse(name: &str) -> Option<Self> {
        let short = name.rsplit('.').next().unwrap_or(name);
        match short.to_ascii_lowercase().replace('_', "").as_str() {
            "topicnamestrategy" | "topicname" => Some(Self::TopicName),
            "recordnamestrategy" | "recordname" => Some(Self::RecordName),
            "topicrecordnamestrategy" | "topicrecordname" => Some(Self::TopicRecordName),
            _ => None,
        }
    }

    /// The subject for a key (`is_key`) or value of `topic` whose schema's
    /// full name is `record_name` (`None` for schemas without a name, such as
    /// Avro primitives: these only work with [`TopicName`](Self::TopicName)).
    pub fn subject(&self, topic: &str, is_key: bool, record_name: Option<&str>) -> Result<String, String> {
        let named = || {
            record_name.ok_or_else(|| {
                format!(
                    "{self:?} strategy needs a named schema (a record, enum or message); use TopicName for this one"
                )
            })
        };
        Ok(match self {
            Self::TopicName => format!("{topic}-{}", if is_key { "key" } else { "value" }),
            Self::RecordName => named()?.to_owned(),
            Self::TopicRecordName => format!("{topic}-{}", named()?),
        })
    }
}

/// Where the registry is and how the serdes use it.
///
/// Keys follow the Confluent serializers' configuration, so that settings
/// carry over from Java clients:
///
/// | key | meaning | default |
/// |---|---|---|
/// | `schema.registry.url` | comma-separated URLs, tried in order | required |
/// | `basic.auth.credentials.source` | `USER_INFO` or `URL` (credentials in the URL) | `USER_INFO` |
/// | `basic.auth.user.info` | `user:password` | none |
/// | `bearer.auth.credentials.source` | `STATIC_TOKEN` | |
/// | `bearer.auth.token` | a bearer token | none |
/// | `auto.register.schemas` | writers register their schema | `true` |
/// | `use.latest.version` | writers use the subject's latest schema | `false` |
/// | `key.subject.name.strategy`, `value.subject.name.strategy` | see [`SubjectNameStrategy`] | `TopicNameStrategy` |
/// | `max.retries` | retries of a call the registry did not answer | 3 |
/// | `retries.wait.ms`, `retries.max.wait.ms` | backoff between them, doubling | 200, 2000 |
/// | `schema.registry.request.timeout.ms` | time-out of one HTTP call | 10000 |
///
/// When the registry stays away past the retries, the stream thread rolls
/// back and tries again until `task.timeout.ms`; then the error (naming the
/// registry and the subject) goes to the uncaught-error handler.
#[derive(Clone, PartialEq, Eq)]
pub struct SchemaRegistryConfig {
    /// The registry's URLs (at least one).
    pub urls: Vec<String>,
    /// Basic-auth `user:password`.
    pub basic_auth_user_info: Option<String>,
    /// A bearer token.
    pub bearer_token: Option<String>,
    /// Writers register their schema if the subject lacks it (else they look
    /// it up and fail if absent).
    pub auto_register_schemas: bool,
    /// Writers write with the subject's latest schema (their values are
    /// resolved to it), not their own.
    pub use_latest_version: bool,
    /// Subject naming of keys.
    pub key_subject_name_strategy: SubjectNameStrategy,
    /// Subject naming of values.
    pub value_subject_name_strategy: SubjectNameStrategy,
    /// Retries of a call the registry did not answer.
    pub max_retries: u32,
    /// First backoff between retries.
    pub retry_backoff: Duration,
    /// Longest backoff between retries.
    pub retry_backoff_max: Duration,
    /// Time-out of one HTTP call.
    pub request_timeout: Duration,
}

impl fmt::Debug for SchemaRegistryConfig {
    // Credentials stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryConfig")
            .field("urls", &self.urls)
            .field("basic_auth_user_info", &self.basic_auth_user_info.as_ref().map(|_| "<redacted>"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("auto_register_schemas", &self.auto_register_schemas)
            .field("use_latest_version", &self.use_latest_version)
            .field("key_subject_name_strategy", &self.key_subject_name_strategy)
            .field("value_subject_name_strategy", &self.value_subject_name_strategy)
            .field("max_retries", &self.max_retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("retry_backoff_max", &self.retry_backoff_max)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

const KNOWN: &[&str] = &[
    "schema.registry.url",
    "basic.auth.credentials.source",
    "basic.auth.user.info",
    "schema.registry.basic.auth.user.info",
    "bearer.auth.credentials.source",
    "bearer.auth.token",
    "auto.register.schemas",
    "use.latest.version",
    "key.subject.name.strategy",
    "value.subject.name.strategy",
    "max.retries",
    "retries.wait.ms",
    "retries.max.wait.ms",
    "schema.registry.request.timeout.ms",
];

impl SchemaRegistryConfig {
    /// Defaults for the registry at `url` (comma-separated for several).
    pub fn new(url: impl AsRef<str>) -> Self {
        let mut config = Self {
            urls: Vec::new(),
            basic_auth_user_info: None,
            bearer_token: None,
            auto_register_schemas: true,
            use_latest_version: false,
            key_subject_name_strategy: SubjectNameStrategy::TopicName,
            value_subject_name_strategy: SubjectNameStrategy::TopicName,
            max_retries: 3,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        };
        config.set_urls(url.as_ref());
        config
    }

    /// A config from Confluent-named properties; `schema.registry.url` is required.
    pub fn from_props<K: AsRef<str>, V: AsRef<str>>(
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::new("");
        for (k, v) in props {
            config.set(k.as_ref(), v.as_ref())?;
        }
        if config.urls.is_empty() {
            return Err(ConfigError::Missing("schema.registry.url"));
        }
        Ok(config)
    }

    /// Sets one property by its Confluent name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, ConfigError> {
        let invalid = |expected| ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), expected };
        let flag = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("true or false")),
        };
        let millis = |v: &str| v.parse::<u64>().map(Duration::from_millis).map_err(|_| invalid("milliseconds"));
        match key {
            "schema.registry.url" => self.set_urls(value),
            "basic.auth.credentials.source" => match value.to_ascii_uppercase().as_str() {
                // URL credentials are taken from the URLs whatever this says.
                "USER_INFO" | "URL" => {}
                _ => return Err(invalid("USER_INFO or URL")),
            },
            "basic.auth.user.info" | "schema.registry.basic.auth.user.info" => {
                if !value.contains(':') {
                    return Err(invalid("user:password"));
                }
                self.basic_auth_user_info = Some(value.to_owned());
            }
            "bearer.auth.credentials.source" => {
                if !value.eq_ignore_ascii_case("STATIC_TOKEN") {
                    return Err(invalid("STATIC_TOKEN"));
                }
            }
            "bearer.auth.token" => self.bearer_token = Some(value.to_owned()),
            "auto.register.schemas" => self.auto_register_schemas = flag(value)?,
            "use.latest.version" => self.use_latest_version = flag(value)?,
            "key.subject.name.strategy" | "value.subject.name.strategy" => {
                let strategy = SubjectNameStrategy::parse(value)
                    .ok_or_else(|| invalid("TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy"))?;
                if key.starts_with("key.") {
                    self.key_subject_name_strategy = strategy;
                } else {
                    self.value_subject_name_strategy = strategy;
                }
            }
            "max.retries" => self.max_retries = value.parse().map_err(|_| invalid("a number of retries"))?,
            "retries.wait.ms" => self.retry_backoff = millis(value)?,
            "retries.max.wait.ms" => self.retry_backoff_max = millis(value)?,
            "schema.registry.request.timeout.ms" => self.request_timeout = millis(value)?,
            _ => {
                let suggestion = KNOWN.iter().copied().find(|k| k.ends_with(key) || key.ends_with(k));
                return Err(ConfigError::Unknown { key: key.to_owned(), suggestion });
            }
        }
        Ok(self)
    }

    /// The first URL, as errors name the registry.
    pub fn url(&self) -> &str {
        self.urls.first().map(String::as_str).unwrap_or("")
    }

    fn set_urls(&mut self, value: &str) {
        self.urls.clear();
        for url in value.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            // `http://user:password@host:port`: credentials move to basic auth.
            let (url, user_info) = split_user_info(url);
            if let Some(user_info) = user_info {
                self.basic_auth_user_info.get_or_insert(user_info);
            }
            self.urls.push(url.trim_end_matches('/').to_owned());
        }
    }
}

fn split_user_info(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_owned(), None) };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((user_info, host)) => (format!("{scheme}://{host}{}", &rest[authority_end..]), Some(user_info.to_owned())),
        None => (url.to_owned(), None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn confluent_names_are_read() {
        let c = SchemaRegistryConfig::from_props([
            ("schema.registry.url", "http://a:8081/, http://b:8081"),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", "me:secret"),
            ("auto.register.schemas", "false"),
            ("use.latest.version", "true"),
            ("value.subject.name.strategy", "io.confluent.kafka.serializers.subject.TopicRecordNameStrategy"),
        ])
        .unwrap();
        assert_eq!(c.urls, ["http://a:8081", "http://b:8081"]);
        assert_eq!(c.basic_auth_user_info.as_deref(), Some("me:secret"));
        assert!(!c.auto_register_schemas && c.use_latest_version);
        assert_eq!(c.value_subject_name_strategy, SubjectNameStrategy::TopicRecordName);
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn url_credentials_become_basic_auth() {
        let c = SchemaRegistryConfig::new("https://user:pw@registry.example:443/api");
        assert_eq!(c.urls, ["https://registry.example:443/api"]);
        assert_eq!(c.basic_auth_user_info.as_deref(), Some("user:pw"));
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(matches!(
            SchemaRegistryConfig::from_props([("auto.register.schemas", "x")]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(SchemaRegistryConfig::from_props::<&str, &str>([]), Err(ConfigError::Missing(_))));
        let e = SchemaRegistryConfig::new("http://x").set("registry.url", "y").map(|_| ()).unwrap_err();
        assert!(matches!(e, ConfigError::Unknown { .. }), "{e}");
    }

    #[test]
    fn subjects() {
        use SubjectNameStrategy::*;
        assert_eq!(TopicName.subject("t", false, None).unwrap(), "t-value");
        assert_eq!(TopicName.subject("t", true, Some("a.B")).unwrap(), "t-key");
        assert_eq!(RecordName.subject("t", false, Some("a.B")).unwrap(), "a.B");
        assert_eq!(TopicRecordName.subject("t", false, Some("a.B")).unwrap(), "t-a.B");
        assert!(RecordName.subject("t", false, None).is_err());
    }
}
