//! `StreamsConfig`: an application's settings, under Kafka Streams' names.
//!
//! Built from `key = value` pairs (as a `.properties` file would give them) or
//! with setters. Unknown keys and invalid values are errors that name the key,
//! so that a typo never silently falls back to a default. Any librdkafka
//! setting passes through under the `consumer.`, `producer.` or `admin.` prefix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::topology::OffsetReset;

/// How results are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    /// Offsets committed after results are written; a crash may repeat work.
    AtLeastOnce,
    /// Transactions: results, changelog writes and offsets commit together.
    ExactlyOnceV2,
}

/// What happens to a record that cannot be deserialized or whose processing
/// fails (Kafka Streams' exception handlers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ErrorHandling {
    /// Stop with an error naming the record's topic, partition and offset;
    /// nothing past it is committed (the default).
    #[default]
    Fail,
    /// Log it, count it, and go on with the next record.
    LogAndContinue,
    /// Write the record as it was read (key, value, timestamp, headers) to
    /// this topic, with the error in `__streams.errors.*` headers, count it,
    /// and go on.
    DeadLetter(String),
}

/// A built-in serde chosen by name in the config (`default.key.serde`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerdeName {
    /// Raw bytes.
    Bytes,
    /// UTF-8 strings.
    String,
    /// Big-endian 32-bit integers.
    I32,
    /// Big-endian 64-bit integers.
    I64,
    /// Big-endian unsigned 64-bit integers.
    U64,
    /// Big-endian doubles.
    F64,
    /// serde-JSON.
    Json,
}

/// `metrics.recording.level`: how much the instance measures, as in Kafka
/// Streams. Counts are always kept; `Debug` adds the time spent in each
/// state-store operation, which costs two clock reads per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum RecordingLevel {
    /// Counts only (the default).
    #[default]
    Info,
    /// Counts and the time of each state-store operation.
    Debug,
    /// As `Debug` (Kafka Streams' finest level; no more is measured here).
    Trace,
}

impl RecordingLevel {
    /// Whether state-store operations are timed at this level.
    pub fn times_store_operations(self) -> bool {
        self >= Self::Debug
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required key has no value.
    #[error("missing required config `{0}`")]
    Missing(&'static str),
    /// A key this library does not know (a typo?).
    #[error("unknown config `{key}`{}; librdkafka settings go under `consumer.`, `producer.` or `admin.`", .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    Unknown {
        /// The key given.
        key: String,
        /// A known key it resembles.
        suggestion: Option<&'static str>,
    },
    /// Keys that only work together with others, given without them: every
    /// key missing, with the key that needs it.
    #[error("missing config: {}", .0.iter().map(|(missing, by)| format!("`{missing}` (needed by {by})")).collect::<Vec<_>>().join(", "))]
    MissingCompanions(Vec<(&'static str, String)>),
    /// A value that does not parse or is out of range.
    #[error("invalid value `{value}` for config `{key}`: expected {expected}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
}

/// `value` if it is `host:port` (a non-empty host, a port number).
fn host_port(key: &str, value: &str, expected: &'static str) -> Result<String, ConfigError> {
    let ok = value.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(key, value, expected))
    }
}

const KNOWN: &[&str] = &[
    "application.id",
    "bootstrap.servers",
    "num.stream.threads",
    "num.standby.replicas",
    "processing.guarantee",
    "commit.interval.ms",
    "state.dir",
    "replication.factor",
    "statestore.cache.max.bytes",
    "cache.max.bytes.buffering",
    "application.server",
    "http.listen",
    "auto.offset.reset",
    "default.key.serde",
    "default.value.serde",
    "default.deserialization.exception.handler",
    "deserialization.exception.handler",
    "processing.exception.handler",
    "errors.dead.letter.queue.topic.name",
    "task.timeout.ms",
    "max.task.idle.ms",
    "rocksdb.memory.bytes",
    "metrics.recording.level",
];

/// An application's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsConfig {
    /// `application.id`: the consumer group and the prefix of internal topics.
    pub application_id: String,
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// `num.stream.threads` (default 1).
    pub num_stream_threads: usize,
    /// `num.standby.replicas` (default 0): warm copies of each stateful
    /// task kept on other instances (needs `application.server` or
    /// `http.listen` on every instance).
    pub num_standby_replicas: usize,
    /// `processing.guarantee` (default at_least_once).
    pub processing_guarantee: ProcessingGuarantee,
    /// `commit.interval.ms` if set; see [`commit_interval`](Self::commit_interval).
    commit_interval_ms: Option<u64>,
    /// `state.dir` (default: `<temp dir>/rivulet-streams`).
    pub state_dir: PathBuf,
    /// `replication.factor` of internal topics (-1: the broker's default).
    pub replication_factor: i16,
    /// `statestore.cache.max.bytes` (default 10 MiB; 0 turns caching off).
    pub cache_max_bytes: u64,
    /// `application.server`: `host:port` this instance answers queries on
    /// (default: `http.listen`'s).
    pub application_server: Option<String>,
    /// `http.listen`: `host:port` of the built-in HTTP server (health,
    /// Prometheus metrics, topology, stores); off when unset. Port 0 takes a
    /// free port ([`KafkaStreams::http_address`](crate::KafkaStreams::http_address) says which).
    pub http_listen: Option<String>,
    /// `auto.offset.reset` (or `consumer.auto.offset.reset`, the same
    /// setting) for sources without their own (default earliest).
    pub auto_offset_reset: OffsetReset,
    /// `default.key.serde`.
    pub default_key_serde: Option<SerdeName>,
    /// `default.value.serde`.
    pub default_value_serde: Option<SerdeName>,
    /// `default.deserialization.exception.handler`: `log_and_fail` (default),
    /// `log_and_continue` or `dead_letter` (to `errors.dead.letter.queue.topic.name`).
    pub deserialization_handling: ErrorHandling,
    /// `processing.exception.handler`: the same choices, for errors returned
    /// by processors (user functions).
    pub processing_handling: ErrorHandling,
    /// `errors.dead.letter.queue.topic.name`.
    pub dead_letter_topic: Option<String>,
    /// `task.timeout.ms` (default 300000): how long a stream thread keeps
    /// retrying calls to a cluster that does not answer before the error
    /// goes to the uncaught-error handler.
    pub task_timeout: Duration,
    /// `max.task.idle.ms` (default 0): how long a task with records
    /// buffered for some of its input partitions but not all waits for the
    /// others before processing anyway (Kafka Streams' rule): so that a
    /// table's update written at the same time as a stream record, through
    /// another partition, is joined first when it is older.
    pub max_task_idle: Duration,
    /// `rocksdb.memory.bytes` (default 512 MiB; 0: no budget): one memory
    /// budget for the RocksDB stores of this instance, standby copies and
    /// global stores included. A quarter of it keeps recently written and
    /// read entries for point reads (a hash lookup instead of a search of
    /// RocksDB's memtables and files; none with a RocksDB config setter); a
    /// shared cache of the rest holds their blocks, index and filter blocks,
    /// and their memtables, which take at most half of that together; so the
    /// stores' memory stays near the budget however many partitions the
    /// instance runs. With 0 every store has RocksDB's own caches and write
    /// buffers, growing with the stores, and no read cache.
    pub rocksdb_memory_bytes: u64,
    /// `metrics.recording.level`: `INFO` (default), `DEBUG` or `TRACE`.
    pub metrics_recording_level: RecordingLevel,
    /// `consumer.*` settings, prefix removed.
    pub consumer: BTreeMap<String, String>,
    /// `producer.*` settings, prefix removed.
    pub producer: BTreeMap<String, String>,
    /// `admin.*` settings, prefix removed.
    pub admin: BTreeMap<String, String>,
}

fn invalid(key: &str, value: &str, expected: &'static str) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), expected }
}

/// The known key nearest to `key` by edit distance, if close.
fn suggest(key: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    KNOWN.iter().map(|k| (distance(key, k), *k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

impl StreamsConfig {
    /// A config with defaults for everything but the two required keys.
    pub fn new(application_id: impl Into<String>, bootstrap_servers: impl Into<String>) -> Self {
        Self {
            application_id: application_id.into(),
            bootstrap_servers: bootstrap_servers.into(),
            num_stream_threads: 1,
            num_standby_replicas: 0,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval_ms: None,
            state_dir: std::env::temp_dir().join("rivulet-streams"),
            replication_factor: -1,
            cache_max_bytes: 10 * 1024 * 1024,
            application_server: None,
            http_listen: None,
            auto_offset_reset: OffsetReset::Earliest,
            default_key_serde: None,
            default_value_serde: None,
            deserialization_handling: ErrorHandling::Fail,
            processing_handling: ErrorHandling::Fail,
            dead_letter_topic: None,
            task_timeout: Duration::from_secs(300),
            max_task_idle: Duration::ZERO,
            rocksdb_memory_bytes: 512 * 1024 * 1024,
            metrics_recording_level: RecordingLevel::Info,
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
            admin: BTreeMap::new(),
        }
    }

    /// Reads `key = value` pairs; every key must be known or prefixed.
    pub fn from_props<K: AsRef<str>, V: AsRef<str>>(
        props: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let props: Vec<(String, String)> =
            props.into_iter().map(|(k, v)| (k.as_ref().trim().to_owned(), v.as_ref().trim().to_owned())).collect();
        let get = |key: &str| props.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let app = get("application.id").filter(|v| !v.is_empty()).ok_or(ConfigError::Missing("application.id"))?;
        let servers =
            get("bootstrap.servers").filter(|v| !v.is_empty()).ok_or(ConfigError::Missing("bootstrap.servers"))?;
        let mut config = Self::new(app, servers);
        config.set_all(props.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        config.validate()?;
        Ok(config)
    }

    /// Sets one key (the same rules as [`from_props`](Self::from_props)).
    /// The value is checked now; whether keys that need each other are all
    /// there is checked as a whole by [`validate`](Self::validate), which
    /// [`KafkaStreams::new`](crate::runtime::KafkaStreams::new) calls, so that
    /// keys may be set in any order.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self, ConfigError> {
        self.set_all([(key, value)])?;
        Ok(self)
    }

    fn set_all<'a>(&mut self, props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), ConfigError> {
        for (key, value) in props {
            match key {
                "application.id" => self.application_id = value.to_owned(),
                "bootstrap.servers" => self.bootstrap_servers = value.to_owned(),
                "num.stream.threads" => {
                    self.num_stream_threads = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| invalid(key, value, "a whole number >= 1"))?
                }
                "num.standby.replicas" => {
                    self.num_standby_replicas = value.parse().map_err(|_| invalid(key, value, "a whole number >= 0"))?
                }
                "processing.guarantee" => {
                    self.processing_guarantee = match value {
                        "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                        "exactly_once_v2" | "exactly_once_beta" => ProcessingGuarantee::ExactlyOnceV2,
                        _ => return Err(invalid(key, value, "at_least_once or exactly_once_v2")),
                    }
                }
                "commit.interval.ms" => {
                    self.commit_interval_ms =
                        Some(value.parse().map_err(|_| invalid(key, value, "milliseconds, a whole number >= 0"))?)
                }
                "state.dir" => {
                    if value.is_empty() {
                        return Err(invalid(key, value, "a directory path"));
                    }
                    self.state_dir = PathBuf::from(value)
                }
                "replication.factor" => {
                    self.replication_factor = value
                        .parse()
                        .ok()
                        .filter(|n| *n == -1 || *n >= 1)
                        .ok_or_else(|| invalid(key, value, "-1 or a number >= 1"))?
                }
                "rocksdb.memory.bytes" => {
                    self.rocksdb_memory_bytes =
                        value.parse().map_err(|_| invalid(key, value, "bytes, a whole number >= 0"))?
                }
                "statestore.cache.max.bytes" | "cache.max.bytes.buffering" => {
                    self.cache_max_bytes =
                        value.parse().map_err(|_| invalid(key, value, "bytes, a whole number >= 0"))?
                }
                "metrics.recording.level" => {
                    self.metrics_recording_level = match value.to_ascii_uppercase().as_str() {
                        "INFO" => RecordingLevel::Info,
                        "DEBUG" => RecordingLevel::Debug,
                        "TRACE" => RecordingLevel::Trace,
                        _ => return Err(invalid(key, value, "INFO, DEBUG or TRACE")),
                    }
                }
                "application.server" => self.application_server = Some(host_port(key, value, "host:port")?),
                "http.listen" => self.http_listen = Some(host_port(key, value, "host:port, e.g. 0.0.0.0:8080")?),
                // The consumer-prefixed form is the same setting: the stream
                // thread must know the consumer's default to start topics
                // with a policy of their own elsewhere.
                "auto.offset.reset" | "consumer.auto.offset.reset" => {
                    self.auto_offset_reset = match value {
                        "earliest" => OffsetReset::Earliest,
                        "latest" => OffsetReset::Latest,
                        _ => return Err(invalid(key, value, "earliest or latest")),
                    }
                }
                "default.key.serde" | "default.value.serde" => {
                    let serde = match value.to_ascii_lowercase().as_str() {
                        "bytes" | "bytearray" => SerdeName::Bytes,
                        "string" => SerdeName::String,
                        "i32" | "integer" => SerdeName::I32,
                        "i64" | "long" => SerdeName::I64,
                        "u64" => SerdeName::U64,
                        "f64" | "double" => SerdeName::F64,
                        "json" => SerdeName::Json,
                        _ => return Err(invalid(key, value, "bytes, string, i32, i64, u64, f64 or json")),
                    };
                    if key == "default.key.serde" {
                        self.default_key_serde = Some(serde);
                    } else {
                        self.default_value_serde = Some(serde);
                    }
                }
                "default.deserialization.exception.handler"
                | "deserialization.exception.handler"
                | "processing.exception.handler" => {
                    let topic = || self.dead_letter_topic.clone().unwrap_or_default();
                    let handling = match value {
                        "log_and_fail"
                        | "fail"
                        | "LogAndFailExceptionHandler"
                        | "LogAndFailProcessingExceptionHandler" => ErrorHandling::Fail,
                        "log_and_continue"
                        | "continue"
                        | "LogAndContinueExceptionHandler"
                        | "LogAndContinueProcessingExceptionHandler" => ErrorHandling::LogAndContinue,
                        "dead_letter" | "dead_letter_queue" => ErrorHandling::DeadLetter(topic()),
                        _ => return Err(invalid(key, value, "log_and_fail, log_and_continue or dead_letter")),
                    };
                    if key == "processing.exception.handler" {
                        self.processing_handling = handling;
                    } else {
                        self.deserialization_handling = handling;
                    }
                }
                "task.timeout.ms" => {
                    let ms: u64 =
                        value.parse().map_err(|_| invalid(key, value, "milliseconds, a whole number >= 0"))?;
                    self.task_timeout = Duration::from_millis(ms);
                }
                "max.task.idle.ms" => {
                    let ms: u64 =
                        value.parse().map_err(|_| invalid(key, value, "milliseconds, a whole number >= 0"))?;
                    self.max_task_idle = Duration::from_millis(ms);
                }
                "errors.dead.letter.queue.topic.name" => {
                    if value.is_empty() {
                        return Err(invalid(key, value, "a topic name"));
                    }
                    self.dead_letter_topic = Some(value.to_owned());
                    for h in [&mut self.deserialization_handling, &mut self.processing_handling] {
                        if let ErrorHandling::DeadLetter(t) = h {
                            value.clone_into(t);
                        }
                    }
                }
                _ => {
                    if let Some(k) = key.strip_prefix("consumer.") {
                        self.consumer.insert(k.to_owned(), value.to_owned());
                    } else if let Some(k) = key.strip_prefix("producer.") {
                        self.producer.insert(k.to_owned(), value.to_owned());
                    } else if let Some(k) = key.strip_prefix("admin.") {
                        self.admin.insert(k.to_owned(), value.to_owned());
                    } else {
                        return Err(ConfigError::Unknown { key: key.to_owned(), suggestion: suggest(key) });
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks the settings as a whole: the values that depend on each other,
    /// and the librdkafka settings Rivulet cannot run with. Every missing
    /// companion key is named in one error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id_ok = !self.application_id.is_empty()
            && self.application_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !id_ok {
            return Err(invalid(
                "application.id",
                &self.application_id,
                "letters, digits, '.', '_' and '-' (it names topics)",
            ));
        }
        if self.bootstrap_servers.trim().is_empty() {
            return Err(ConfigError::Missing("bootstrap.servers"));
        }
        let mut missing = Vec::new();
        for (h, key) in [
            (&self.deserialization_handling, "default.deserialization.exception.handler=dead_letter"),
            (&self.processing_handling, "processing.exception.handler=dead_letter"),
        ] {
            if matches!(h, ErrorHandling::DeadLetter(t) if t.is_empty()) {
                missing.push(("errors.dead.letter.queue.topic.name", key.to_owned()));
            }
        }
        if !missing.is_empty() {
            return Err(ConfigError::MissingCompanions(missing));
        }
        if let Some(strategy) = self.consumer.get("partition.assignment.strategy") {
            if strategy.trim() != "range" {
                return Err(invalid(
                    "consumer.partition.assignment.strategy",
                    strategy,
                    "range (the only strategy Rivulet runs with for now: it puts partition p of every \
                     co-partitioned topic on one member; cooperative-sticky is not proven exact yet)",
                ));
            }
        }
        if let Some(protocol) = self.consumer.get("group.protocol") {
            if protocol.trim() != "classic" {
                return Err(invalid(
                    "consumer.group.protocol",
                    protocol,
                    "classic (the broker-side assignment of the consumer protocol does not keep co-partitioned \
                     topics together)",
                ));
            }
        }
        Ok(())
    }

    /// `commit.interval.ms`, defaulting to 30 s, or 100 ms under exactly-once.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms.unwrap_or(match self.processing_guarantee {
            ProcessingGuarantee::AtLeastOnce => 30_000,
            ProcessingGuarantee::ExactlyOnceV2 => 100,
        }))
    }

    /// The directory of one task's stores: `state.dir/application.id/<task>`.
    pub fn task_dir(&self, task: crate::TaskId) -> PathBuf {
        self.state_dir.join(&self.application_id).join(task.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_kafka_streams() -> Result<(), ConfigError> {
        let c = StreamsConfig::from_props([("application.id", "wc"), ("bootstrap.servers", "127.0.0.1:9092")])?;
        assert_eq!(c.num_stream_threads, 1);
        assert_eq!(c.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
        assert_eq!(c.commit_interval(), Duration::from_secs(30));
        assert_eq!(c.cache_max_bytes, 10 * 1024 * 1024);
        assert_eq!(c.metrics_recording_level, RecordingLevel::Info);
        let eos = StreamsConfig::from_props([
            ("application.id", "wc"),
            ("bootstrap.servers", "b:1"),
            ("processing.guarantee", "exactly_once_v2"),
        ])?;
        assert_eq!(eos.commit_interval(), Duration::from_millis(100));
        let task = crate::TaskId { subtopology: 1, partition: 3 };
        assert!(eos.task_dir(task).ends_with("wc/1_3"));
        Ok(())
    }

    #[test]
    fn the_recording_level_takes_kafka_streams_names() -> Result<(), ConfigError> {
        let mut c = StreamsConfig::new("a", "b:1");
        for (value, level, timed) in [
            ("DEBUG", RecordingLevel::Debug, true),
            ("trace", RecordingLevel::Trace, true),
            ("INFO", RecordingLevel::Info, false),
        ] {
            c.set("metrics.recording.level", value)?;
            assert_eq!((c.metrics_recording_level, c.metrics_recording_level.times_store_operations()), (level, timed));
        }
        assert_eq!(
            c.set("metrics.recording.level", "verbose").err(),
            Some(ConfigError::Invalid {
                key: "metrics.recording.level".into(),
                value: "verbose".into(),
                expected: "INFO, DEBUG or TRACE"
            })
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_key() {
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "b:1"),
            ("num.stream.thread", "2"),
        ]);
        assert_eq!(
            e,
            Err(ConfigError::Unknown { key: "num.stream.thread".into(), suggestion: Some("num.stream.threads") })
        );
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "b:1"),
            ("processing.guarantee", "exactly_once"),
        ]);
        assert!(e.err().map(|e| e.to_string()).unwrap_or_default().contains("processing.guarantee"));
        assert_eq!(
            StreamsConfig::from_props([("bootstrap.servers", "b:1")]),
            Err(ConfigError::Missing("application.id"))
        );
        let e = StreamsConfig::from_props([("application.id", "has space"), ("bootstrap.servers", "b:1")]);
        assert!(matches!(e, Err(ConfigError::Invalid { key, .. }) if key == "application.id"));
        let e = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "b:1"),
            ("application.server", "nohost"),
        ]);
        assert!(matches!(e, Err(ConfigError::Invalid { key, .. }) if key == "application.server"));
        let e =
            StreamsConfig::from_props([("application.id", "a"), ("bootstrap.servers", "b:1"), ("http.listen", "8080")]);
        assert!(matches!(e, Err(ConfigError::Invalid { key, .. }) if key == "http.listen"));
        let c = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "b:1"),
            ("http.listen", "0.0.0.0:0"),
        ]);
        assert_eq!(c.ok().and_then(|c| c.http_listen).as_deref(), Some("0.0.0.0:0"));
    }

    #[test]
    fn error_handlers_by_name() -> Result<(), ConfigError> {
        let mut c = StreamsConfig::new("app", "b:1");
        assert_eq!(c.deserialization_handling, ErrorHandling::Fail);
        c.set("default.deserialization.exception.handler", "log_and_continue")?;
        assert_eq!(c.deserialization_handling, ErrorHandling::LogAndContinue);
        c.set("processing.exception.handler", "dead_letter")?;
        assert_eq!(
            c.validate(),
            Err(ConfigError::MissingCompanions(vec![(
                "errors.dead.letter.queue.topic.name",
                "processing.exception.handler=dead_letter".into()
            )]))
        );
        // Either order works.
        c.set("errors.dead.letter.queue.topic.name", "dlq")?;
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.processing_handling, ErrorHandling::DeadLetter("dlq".into()));
        let mut d = StreamsConfig::new("app", "b:1");
        d.set("default.deserialization.exception.handler", "dead_letter")?
            .set("processing.exception.handler", "dead_letter")?;
        let e = d.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("default.deserialization.exception.handler") && e.contains("processing.exception.handler"),
            "{e}"
        );
        let c = StreamsConfig::from_props([
            ("application.id", "a"),
            ("bootstrap.servers", "b:1"),
            ("processing.exception.handler", "dead_letter"),
            ("errors.dead.letter.queue.topic.name", "dlq"),
        ])?;
        assert_eq!(c.processing_handling, ErrorHandling::DeadLetter("dlq".into()));
        Ok(())
    }

    #[test]
    fn prefixed_settings_pass_through() -> Result<(), ConfigError> {
        let mut c = StreamsConfig::new("app", "b:1");
        c.set("consumer.fetch.min.bytes", "1024")?.set("producer.linger.ms", "5")?.set("num.stream.threads", "4")?;
        assert_eq!(c.consumer.get("fetch.min.bytes").map(String::as_str), Some("1024"));
        assert_eq!(c.producer.get("linger.ms").map(String::as_str), Some("5"));
        assert_eq!(c.num_stream_threads, 4);
        assert!(c.set("num.stream.threads", "0").is_err());
        Ok(())
    }

    #[test]
    fn consumer_prefixed_offset_reset_is_the_default_policy() -> Result<(), ConfigError> {
        // Not passed through: the stream thread compares topics' own
        // policies with this one to know where to start them.
        let mut c = StreamsConfig::new("app", "b:1");
        c.set("consumer.auto.offset.reset", "latest")?;
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(!c.consumer.contains_key("auto.offset.reset"));
        assert!(c.set("consumer.auto.offset.reset", "smallest").is_err());
        Ok(())
    }

    #[test]
    fn refuses_assignors_that_break_co_partitioning() -> Result<(), ConfigError> {
        let mut c = StreamsConfig::new("app", "b:1");
        c.set("consumer.partition.assignment.strategy", "cooperative-sticky")?;
        let e = c.validate().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("consumer.partition.assignment.strategy") && e.contains("range"), "{e}");
        c.set("consumer.partition.assignment.strategy", "range")?;
        assert_eq!(c.validate(), Ok(()));
        c.set("task.timeout.ms", "5000")?;
        assert_eq!(c.task_timeout, Duration::from_secs(5));
        assert_eq!(c.max_task_idle, Duration::ZERO, "Kafka Streams' default");
        c.set("max.task.idle.ms", "500")?;
        assert_eq!(c.max_task_idle, Duration::from_millis(500));
        assert!(c.set("max.task.idle.ms", "-1").is_err());
        c.set("num.standby.replicas", "2")?;
        assert_eq!(c.num_standby_replicas, 2);
        Ok(())
    }
}
