//! What an application can observe: its state, restore progress and counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StreamsError;
use crate::task_engine::TaskId;

/// The state of a [`KafkaStreams`](super::KafkaStreams) instance, as in Kafka Streams.
///
/// `Created → Rebalancing ⇄ Running → PendingShutdown → NotRunning`, or
/// `→ PendingError → Error` when a thread fails and the handler shuts the client down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Built, not started.
    Created,
    /// Joining the group, taking tasks over, or restoring their state.
    Rebalancing,
    /// Every thread is processing its tasks.
    Running,
    /// `close()` was called; threads are committing and stopping.
    PendingShutdown,
    /// Stopped cleanly.
    NotRunning,
    /// A thread failed; the client is stopping.
    PendingError,
    /// Stopped after an error.
    Error,
}

impl State {
    /// Whether threads may be processing (`Rebalancing` or `Running`).
    pub fn is_running_or_rebalancing(self) -> bool {
        matches!(self, Self::Rebalancing | Self::Running)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Created => "CREATED",
            Self::Rebalancing => "REBALANCING",
            Self::Running => "RUNNING",
            Self::PendingShutdown => "PENDING_SHUTDOWN",
            Self::NotRunning => "NOT_RUNNING",
            Self::PendingError => "PENDING_ERROR",
            Self::Error => "ERROR",
        })
    }
}

/// What to do when a stream thread fails (Kafka Streams'
/// `StreamsUncaughtExceptionHandler` responses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorResponse {
    /// Start a new thread in place of the failed one: its tasks restart from
    /// the last commit.
    ReplaceThread,
    /// Stop this instance (the default).
    ShutdownClient,
    /// Stop every instance of the application (Kafka Streams'
    /// `SHUTDOWN_APPLICATION`): the request goes through the cluster to the
    /// other instances running now, which stop with an error saying who asked.
    ShutdownApplication,
}

/// Called on every state change with `(new, old)`.
pub type StateListener = Box<dyn Fn(State, State) + Send + Sync>;

/// Decides what a thread failure leads to.
pub type UncaughtErrorHandler = Box<dyn Fn(&StreamsError) -> ErrorResponse + Send + Sync>;

/// Observes the restoration of state stores from their changelogs (Kafka
/// Streams' `StateRestoreListener`). Every method has an empty default.
pub trait StateRestoreListener: Send + Sync {
    /// Restoring `store` of `task` starts, reading changelog offsets `start..end`.
    fn on_restore_start(&self, _task: TaskId, _store: &str, _start_offset: i64, _end_offset: i64) {}
    /// A batch was applied; `restored` is the number of records in it.
    fn on_batch_restored(&self, _task: TaskId, _store: &str, _batch_end_offset: i64, _restored: u64) {}
    /// The store is up to date; `total` records were restored.
    fn on_restore_end(&self, _task: TaskId, _store: &str, _total: u64) {}
}

/// Counters of an instance, summed over its threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) consumed: AtomicU64,
    pub(crate) processed: AtomicU64,
    pub(crate) produced: AtomicU64,
    pub(crate) restored: AtomicU64,
    pub(crate) restore_total: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) aborted_transactions: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) blocked_ms: AtomicU64,
    pub(crate) rejoins: AtomicU64,
    pub(crate) replaced_threads: AtomicU64,
    pub(crate) unassigned: AtomicU64,
    /// Records the consumer delivered again to the task that had them.
    pub(crate) redelivered: AtomicU64,
    /// Changelog records applied to standby copies.
    pub(crate) standby_applied: AtomicU64,
    /// Since when (ms since the epoch) the cluster has not answered; 0 when it does.
    pub(crate) unreachable_since_ms: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Notes that the cluster stopped answering (the first call of an
    /// outage logs it); returns whether this call started the outage.
    pub(crate) fn cluster_unreachable(&self, cause: &dyn fmt::Display) -> bool {
        let now = u64::try_from(super::message::now_ms()).unwrap_or(1).max(1);
        let started = self.unreachable_since_ms.compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        if started {
            tracing::warn!(%cause, "waiting for the Kafka cluster; processing resumes when it answers");
        }
        started
    }

    /// Notes that the cluster answers again.
    pub(crate) fn cluster_reachable(&self) {
        let since = self.unreachable_since_ms.swap(0, Ordering::AcqRel);
        if since != 0 {
            let now = u64::try_from(super::message::now_ms()).unwrap_or(since);
            tracing::info!(waited_ms = now.saturating_sub(since), "the Kafka cluster answers again");
        }
    }

    pub(crate) fn snapshot(&self, consumer_lag: u64) -> Metrics {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Metrics {
            records_consumed: get(&self.consumed),
            records_processed: get(&self.processed),
            records_produced: get(&self.produced),
            records_restored: get(&self.restored),
            records_to_restore: get(&self.restore_total),
            records_dropped: get(&self.dropped),
            commits: get(&self.commits),
            records_skipped: get(&self.skipped),
            records_dead_lettered: get(&self.dead_lettered),
            consumer_lag,
            aborted_transactions: get(&self.aborted_transactions),
            retries: get(&self.retries),
            blocked: std::time::Duration::from_millis(get(&self.blocked_ms)),
            rejoins: get(&self.rejoins),
            replaced_threads: get(&self.replaced_threads),
            records_unassigned: get(&self.unassigned),
            records_redelivered: get(&self.redelivered),
            standby_records_applied: get(&self.standby_applied),
            standby_tasks: 0,
            standby_lag: 0,
            waiting_for_cluster_since: match get(&self.unreachable_since_ms) {
                0 => None,
                ms => Some(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)),
            },
        }
    }
}

/// A snapshot of an instance's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Records read from source and repartition topics.
    pub records_consumed: u64,
    /// Records processed by tasks.
    pub records_processed: u64,
    /// Records written (outputs, repartition and changelog records).
    pub records_produced: u64,
    /// Changelog records restored into stores.
    pub records_restored: u64,
    /// Changelog records the restores started so far had to read in total.
    pub records_to_restore: u64,
    /// Records dropped on purpose (late, null keys…), also logged.
    pub records_dropped: u64,
    /// Commits done.
    pub commits: u64,
    /// Records skipped by a `log_and_continue` handler (bad bytes, failed processing).
    pub records_skipped: u64,
    /// Records written to the dead-letter topic.
    pub records_dead_lettered: u64,
    /// Records in the assigned input partitions not read yet (measured by
    /// each thread every few seconds).
    pub consumer_lag: u64,
    /// Transactions aborted (or, under at-least-once, uncommitted batches
    /// abandoned) to recover from an error; the work was redone.
    pub aborted_transactions: u64,
    /// Calls to Kafka retried after a transient error.
    pub retries: u64,
    /// Time the stream threads spent waiting for the cluster in retries.
    pub blocked: std::time::Duration,
    /// Times a thread closed its tasks and rejoined the group with new
    /// clients (fenced or fatal producer).
    pub rejoins: u64,
    /// Stream threads replaced after a failure (`ErrorResponse::ReplaceThread`).
    pub replaced_threads: u64,
    /// Records fetched for a partition this instance has no task for (after
    /// a rebalance); not processed here, their partition's new owner reads
    /// them from the last commit. Also logged.
    pub records_unassigned: u64,
    /// Records the consumer delivered a second time to the task that had
    /// received them already (librdkafka re-fetching from an older position
    /// after a broker outage); ignored, so that none is processed twice.
    /// Also logged.
    pub records_redelivered: u64,
    /// Since when the cluster has not answered, while it does not.
    pub waiting_for_cluster_since: Option<std::time::SystemTime>,
    /// Changelog records applied to standby copies (`num.standby.replicas`).
    pub standby_records_applied: u64,
    /// Standby copies (warm tasks of other instances) held here.
    pub standby_tasks: u64,
    /// Changelog records the standby copies have not read yet, in total.
    pub standby_lag: u64,
}
