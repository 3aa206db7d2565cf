//! The error types of streams-core.

use state_stores::StoreError;

use crate::record::RecordMetadata;
use crate::serde::SerdeError;

/// A boxed error from user code (a processor, an extractor, a custom store).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A mistake in how a [`Topology`](crate::topology::Topology) was put together,
/// found when a node or store is added or when the topology is validated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// Two nodes with one name.
    #[error("a node named `{0}` already exists in this topology; node names must be unique")]
    DuplicateNode(String),
    /// Two stores with one name.
    #[error("a state store named `{0}` already exists in this topology; store names must be unique")]
    DuplicateStore(String),
    /// A parent name that is not a node (yet): parents must be added first.
    #[error("node `{node}` names parent `{parent}`, which is not in the topology (add parents before their children)")]
    UnknownParent {
        /// The node being added.
        node: String,
        /// The missing parent.
        parent: String,
    },
    /// A sink named as a parent: sinks have no children.
    #[error("node `{node}` names sink `{parent}` as its parent, but sinks cannot have children")]
    ParentIsSink {
        /// The node being added.
        node: String,
        /// The sink.
        parent: String,
    },
    /// A processor or sink without parents.
    #[error("node `{0}` has no parents; processors and sinks need at least one")]
    NoParents(String),
    /// A source without topics.
    #[error("source `{0}` has no topics; give it at least one")]
    NoTopics(String),
    /// A topic read by two sources.
    #[error("topic `{topic}` is already read by source `{existing}`; a topic can feed only one source")]
    TopicAlreadySubscribed {
        /// The topic.
        topic: String,
        /// The source that reads it already.
        existing: String,
    },
    /// A parent whose output type is not the child's input type.
    #[error("node `{child}` takes records of ({expected}) but its parent `{parent}` forwards ({found})")]
    TypeMismatch {
        /// The parent.
        parent: String,
        /// The child being added.
        child: String,
        /// The key and value types the child takes.
        expected: String,
        /// The key and value types the parent forwards.
        found: String,
    },
    /// A store connected to a node that is not a processor, or does not exist.
    #[error("cannot connect store(s) to `{0}`: no processor of that name")]
    UnknownProcessor(String),
    /// A processor connected to a store that was never added.
    #[error("processor `{processor}` is connected to store `{store}`, which was never added (add_state_store)")]
    UnknownStore {
        /// The processor.
        processor: String,
        /// The missing store.
        store: String,
    },
    /// A store that no processor uses.
    #[error("state store `{0}` is not connected to any processor; connect it or remove it")]
    UnusedStore(String),
    /// A topology without sources processes nothing.
    #[error("the topology has no source nodes")]
    NoSources,
}

/// An error inside a processor: returned by user code or raised by the
/// context (serdes, stores, forwarding).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessorError {
    /// A key or value could not be (de)serialized.
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// A state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A store was asked for that this processor may not use.
    #[error("processor `{processor}` cannot access state store `{store}`: {reason}")]
    StoreAccess {
        /// The processor asking.
        processor: String,
        /// The store asked for.
        store: String,
        /// Why not.
        reason: String,
    },
    /// `forward_to` named a node that is not a child of this processor.
    #[error("processor `{processor}` has no child named `{child}`")]
    UnknownChild {
        /// The processor forwarding.
        processor: String,
        /// The missing child.
        child: String,
    },
    /// An error returned by user code.
    #[error("{0}")]
    User(BoxError),
    /// An error inside a given node, with that node's name.
    #[error("in node `{node}`: {source}")]
    InNode {
        /// The node where the error arose.
        node: String,
        /// The error.
        source: Box<ProcessorError>,
    },
    /// A record could not be handed to the producer. Not a fault of the
    /// record: the runtime rolls back or rejoins, it never skips the record.
    #[error("cannot send a record to topic `{topic}`: {source}")]
    Send {
        /// The topic.
        topic: String,
        /// The producer's error, classified.
        source: crate::runtime::KafkaCallError,
    },
    /// User code (a closure, a processor, a punctuator, a serde) panicked.
    #[error("user code panicked: {message}")]
    Panic {
        /// The panic's message.
        message: String,
    },
    /// A broken internal invariant; please report it.
    #[error("internal error (a bug in rivulet, please report it): {0}")]
    Internal(String),
}

impl ProcessorError {
    /// Wraps any error from user code.
    pub fn user(error: impl Into<BoxError>) -> Self {
        Self::User(error.into())
    }

    /// The name of the node where the error arose, if known.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::InNode { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The error itself, without the node it arose in.
    pub fn innermost(&self) -> &ProcessorError {
        match self {
            Self::InNode { source, .. } => source.innermost(),
            e => e,
        }
    }

    /// A panic caught at a node boundary, with its message.
    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        Self::Panic { message: panic_message(payload) }
    }
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".to_owned())
}

/// An error from running a topology.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamsError {
    /// The topology is not valid.
    #[error("invalid topology: {0}")]
    Topology(#[from] TopologyError),
    /// A record could not be deserialized by its source.
    #[error("cannot deserialize the record at {}-{} offset {}: {source}", .metadata.topic, .metadata.partition, .metadata.offset)]
    Deserialization {
        /// Where the record was read.
        metadata: RecordMetadata,
        /// What was wrong with it.
        source: SerdeError,
    },
    /// A record's timestamp is negative (Kafka Streams' `FailOnInvalidTimestamp`).
    #[error("the record at {}-{} offset {} has invalid timestamp {timestamp}; timestamps must be >= 0 (use a timestamp extractor to fix them)", .metadata.topic, .metadata.partition, .metadata.offset)]
    InvalidTimestamp {
        /// Where the record was read.
        metadata: RecordMetadata,
        /// The timestamp found.
        timestamp: i64,
    },
    /// Processing failed in a node.
    #[error("processing failed{}: {source}", .metadata.as_ref().map(|m| format!(" for the record at {}-{} offset {}", m.topic, m.partition, m.offset)).unwrap_or_default())]
    Processing {
        /// The record being processed, if any (none inside a punctuation).
        metadata: Option<RecordMetadata>,
        /// The error, with the node it arose in.
        source: ProcessorError,
    },
    /// A record was given for a topic no source reads.
    #[error("no source of this topology reads topic `{0}`")]
    UnknownTopic(String),
    /// No state store of that name.
    #[error("no state store named `{0}` in this topology")]
    UnknownStore(String),
    /// A store exists but holds other key/value types.
    #[error("state store `{store}` holds ({actual}), not ({requested})")]
    StoreType {
        /// The store.
        store: String,
        /// The types asked for.
        requested: String,
        /// The store's types.
        actual: String,
    },
    /// A state store failed outside of processing.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key or value could not be (de)serialized outside of processing
    /// (for example, reading a test output topic).
    #[error(transparent)]
    Serde(#[from] SerdeError),
    /// A test output topic was read while it held no record.
    #[error("output topic `{0}` has no (more) records")]
    NoRecord(String),
    /// The configuration was refused.
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The application's topics cannot work as the topology needs.
    #[error(transparent)]
    Topics(#[from] crate::internal_topics::TopicPlanError),
    /// A call to Kafka failed; its [`class`](crate::runtime::KafkaCallError::class)
    /// says whether it was retried, rolled back or fatal.
    #[error(transparent)]
    Kafka(#[from] crate::runtime::KafkaCallError),
    /// The cluster did not answer for `task.timeout.ms`: the retries gave up.
    #[error("gave up after waiting {} ms for the cluster (task.timeout.ms; raise it to wait longer): {source}", .timeout.as_millis())]
    TaskTimeout {
        /// `task.timeout.ms`.
        timeout: std::time::Duration,
        /// The last error of the call that kept failing.
        source: Box<StreamsError>,
    },
    /// The embedded cluster could not be started or used.
    #[error("embedded cluster: cannot {operation}: {message}")]
    Embedded {
        /// What was being done.
        operation: String,
        /// The mock cluster's message.
        message: String,
    },
    /// A file of the local state could not be read or written.
    #[error("cannot use local state at `{path}`: {source}; check permissions, or delete the directory (state is restored from the changelogs)")]
    StateDir {
        /// The path.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another instance (thread, or process) of this application uses the state directory.
    #[error("the state directory `{path}` is in use by another instance of this application (its lock is held); give each instance its own state.dir")]
    StateDirLocked {
        /// The application's state directory.
        path: std::path::PathBuf,
    },
    /// Another instance of the application asked every instance to stop
    /// (its uncaught-error handler answered `ShutdownApplication`).
    #[error("instance {requested_by} asked the whole application to shut down: {reason}")]
    ApplicationShutdown {
        /// The instance (process id) that asked.
        requested_by: String,
        /// The error that made it ask.
        reason: String,
    },
    /// A task's local state does not match its changelog (the changelog was
    /// deleted or recreated); the runtime wipes the state and restores it.
    #[error("local state of task {task} is out of step with its changelog: {reason}")]
    TaskCorrupted {
        /// The task.
        task: String,
        /// What was found.
        reason: String,
    },
    /// A store cannot be queried now (the client is not RUNNING: it starts,
    /// rebalances or stops); retry later (Kafka Streams'
    /// `InvalidStateStoreException`).
    #[error("state store `{store}` is not queryable now: {reason}")]
    InvalidStateStore {
        /// The store.
        store: String,
        /// Why, and when to retry.
        reason: String,
    },
    /// An interactive query failed to read or decode a store.
    #[error("query of state store `{store}` failed: {source}")]
    StoreQuery {
        /// The store.
        store: String,
        /// What failed.
        #[source]
        source: ProcessorError,
    },
    /// The built-in HTTP server cannot listen where `http.listen` says.
    #[error("cannot serve HTTP on `{address}` (http.listen): {source}; pick a free port, or 0 for any")]
    HttpListen {
        /// The `http.listen` value.
        address: String,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// A call that the application's current state does not allow.
    #[error("{0}")]
    IllegalState(String),
}

impl StreamsError {
    /// The class of the Kafka error at the bottom of this one, if it is one
    /// (a failed send inside processing included).
    ///
    /// A schema registry that did not answer counts as a retriable Kafka
    /// error: the work since the last commit is rolled back and redone, so
    /// that records wait for the registry instead of reaching an error
    /// handler.
    pub fn kafka_class(&self) -> Option<crate::runtime::ErrorClass> {
        if self.serde_error().is_some_and(SerdeError::is_retriable) {
            return Some(crate::runtime::ErrorClass::Retriable);
        }
        match self {
            Self::Kafka(e) => Some(e.class()),
            Self::Processing { source, .. } => match source.innermost() {
                ProcessorError::Send { source, .. } => Some(source.class()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The serde error at the bottom of this one, if it is one.
    pub fn serde_error(&self) -> Option<&SerdeError> {
        match self {
            Self::Deserialization { source, .. } | Self::Serde(source) => Some(source),
            Self::Processing { source, .. } => match source.innermost() {
                ProcessorError::Serde(e) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }
}
