//! Errors of calls to Kafka, classified where they arise.
//!
//! librdkafka tells, for each failed call, whether it may simply be retried,
//! whether the open transaction must be aborted, and whether the client is
//! unusable. The runtime keeps those flags (and librdkafka's error itself, as
//! the `source`) in a [`KafkaCallError`] and decides from its [`ErrorClass`]:
//! retry with backoff within `task.timeout.ms`, abort and roll back, or close
//! the thread's tasks dirty and rejoin with new clients.

use std::borrow::Cow;
use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// What the runtime does about a failed call to Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// Transient (the broker is away, a coordinator moved, a request timed
    /// out): the same call is retried with backoff within `task.timeout.ms`.
    Retriable,
    /// The uncommitted work must be abandoned: the transaction is aborted
    /// (under exactly-once), each task's input is rewound to its last
    /// committed offsets and its stores rolled back; processing goes on.
    Abortable,
    /// Another instance owns these tasks now (the producer's epoch was
    /// fenced): the thread's tasks are closed without committing and the
    /// thread rejoins the group with a new producer.
    Fenced,
    /// The client is unusable (librdkafka's fatal error): the thread's tasks
    /// are closed without committing and the thread rejoins with new clients.
    Fatal,
    /// No retry can help (a bad setting, no authorization, a missing topic):
    /// the error goes to the uncaught-error handler.
    Permanent,
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Retriable => "retriable",
            Self::Abortable => "abortable",
            Self::Fenced => "fenced",
            Self::Fatal => "fatal",
            Self::Permanent => "permanent",
        })
    }
}

/// A failed call to Kafka: what was being done, librdkafka's error (the
/// `source`, with its code) and the class the runtime gave it.
///
/// Boxed: it travels inside every error type of the crate.
#[derive(Debug)]
pub struct KafkaCallError(Box<Call>);

#[derive(Debug)]
struct Call {
    operation: Cow<'static, str>,
    class: ErrorClass,
    source: KafkaError,
}

impl fmt::Display for KafkaCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kafka error ({}) while {}: {}", self.0.class, self.0.operation, self.0.source)
    }
}

impl std::error::Error for KafkaCallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.source)
    }
}

impl KafkaCallError {
    /// Classifies `source` by librdkafka's flags and code.
    pub(crate) fn new(operation: impl Into<Cow<'static, str>>, source: KafkaError) -> Self {
        let class = classify(&source);
        Self::with_class(operation, source, class)
    }

    /// With a class decided by the caller, who knows more than the code
    /// alone (a failed delivery loses the batch, whatever its code).
    pub(crate) fn with_class(operation: impl Into<Cow<'static, str>>, source: KafkaError, class: ErrorClass) -> Self {
        Self(Box::new(Call { operation: operation.into(), class, source }))
    }

    /// What was being done (`committing the transaction`, say).
    pub fn operation(&self) -> &str {
        &self.0.operation
    }

    /// What the runtime does about it.
    pub fn class(&self) -> ErrorClass {
        self.0.class
    }

    /// librdkafka's error code, if the error has one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        self.0.source.rdkafka_error_code()
    }

    /// librdkafka's error.
    pub fn kafka_error(&self) -> &KafkaError {
        &self.0.source
    }

    /// librdkafka's own flag: the call may be retried as is.
    pub fn is_retriable(&self) -> bool {
        match &self.0.source {
            KafkaError::Transaction(e) => e.is_retriable(),
            _ => self.0.class == ErrorClass::Retriable,
        }
    }

    /// librdkafka's own flag: the open transaction must be aborted.
    pub fn txn_requires_abort(&self) -> bool {
        matches!(&self.0.source, KafkaError::Transaction(e) if e.txn_requires_abort())
    }

    /// librdkafka's own flag: the client is unusable.
    pub fn is_fatal(&self) -> bool {
        match &self.0.source {
            KafkaError::Transaction(e) => e.is_fatal(),
            _ => self.code() == Some(RDKafkaErrorCode::Fatal),
        }
    }
}

fn classify(e: &KafkaError) -> ErrorClass {
    if let KafkaError::Transaction(err) = e {
        let class = by_code(err.code());
        return if class == ErrorClass::Fenced {
            ErrorClass::Fenced
        } else if err.is_fatal() {
            ErrorClass::Fatal
        } else if err.txn_requires_abort() {
            ErrorClass::Abortable
        } else if err.is_retriable() {
            ErrorClass::Retriable
        } else {
            class
        };
    }
    match e {
        KafkaError::MessageConsumptionFatal(_) => ErrorClass::Fatal,
        _ => e.rdkafka_error_code().map_or(ErrorClass::Permanent, by_code),
    }
}

/// The class of an error code seen outside a transaction call.
pub(crate) fn by_code(code: RDKafkaErrorCode) -> ErrorClass {
    use RDKafkaErrorCode as C;
    match code {
        C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced | C::InvalidProducerIdMapping => ErrorClass::Fenced,
        C::Fatal => ErrorClass::Fatal,
        // The group moved on without this member: what it did since the
        // last commit is abandoned; the rebalance that follows sorts out
        // who owns what.
        C::UnknownMemberId | C::IllegalGeneration | C::RebalanceInProgress | C::AssignmentLost => ErrorClass::Abortable,
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::OperationTimedOut
        | C::MessageTimedOut
        | C::RequestTimedOut
        | C::NetworkException
        | C::NotCoordinator
        | C::CoordinatorNotAvailable
        | C::CoordinatorLoadInProgress
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::ConcurrentTransactions
        | C::QueueFull
        | C::Resolve
        | C::Retry
        | C::WaitingForCoordinator
        | C::TransactionCoordinatorFenced
        | C::UnknownTopicOrPartition
        | C::KafkaStorageError
        | C::PreferredLeaderNotAvailable
        | C::FetchSessionIdNotFound
        | C::OffsetNotAvailable
        | C::ThrottlingQuotaExceeded
        | C::NoOffset
        | C::InProgress
        | C::PartitionEOF
        | C::UnknownLeaderEpoch
        | C::FencedLeaderEpoch => ErrorClass::Retriable,
        _ => ErrorClass::Permanent,
    }
}

/// Whether a consumer's poll error is the cluster being away (logged once
/// per outage, then waited out) rather than something to act on.
pub(crate) fn is_transient_poll_error(e: &KafkaError) -> bool {
    !matches!(classify(e), ErrorClass::Fatal | ErrorClass::Fenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified() {
        let timeout = KafkaCallError::new("x", KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        assert_eq!(timeout.class(), ErrorClass::Retriable);
        assert!(timeout.is_retriable());
        let fenced = KafkaCallError::new("x", KafkaError::Flush(RDKafkaErrorCode::ProducerFenced));
        assert_eq!(fenced.class(), ErrorClass::Fenced);
        let lost = KafkaCallError::new("x", KafkaError::ConsumerCommit(RDKafkaErrorCode::UnknownMemberId));
        assert_eq!(lost.class(), ErrorClass::Abortable);
        let denied = KafkaCallError::new("x", KafkaError::AdminOp(RDKafkaErrorCode::TopicAuthorizationFailed));
        assert_eq!(denied.class(), ErrorClass::Permanent);
        let fatal = KafkaCallError::new("x", KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::Fatal));
        assert_eq!(fatal.class(), ErrorClass::Fatal);
        assert!(fatal.is_fatal());
        let delivery = KafkaCallError::with_class(
            "writing",
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            ErrorClass::Abortable,
        );
        assert_eq!(delivery.code(), Some(RDKafkaErrorCode::MessageTimedOut));
        assert!(delivery.to_string().contains("abortable"));
    }
}
