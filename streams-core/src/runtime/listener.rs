//! What an application can observe: its state, restore progress and counters.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::StreamsError;
use crate::task::TaskId;

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
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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
}
