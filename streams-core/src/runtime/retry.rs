//! Retrying calls to a cluster that is away, within `task.timeout.ms`.

use std::time::{Duration, Instant};

use super::errors::ErrorClass;
use super::listener::Counters;
use crate::error::StreamsError;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long to keep trying, and where to count it.
#[derive(Clone, Copy)]
pub(crate) struct RetryPolicy<'a> {
    pub(crate) timeout: Duration,
    pub(crate) counters: &'a Counters,
}

impl RetryPolicy<'_> {
    /// Calls `call` until it succeeds, fails with an error that is not
    /// [`ErrorClass::Retriable`], or `task.timeout.ms` passes (then the
    /// last error comes back as [`StreamsError::TaskTimeout`]). Waits between
    /// attempts back off from 100 ms to 1 s; the time is counted as blocked.
    pub(crate) fn run<T>(&self, mut call: impl FnMut() -> Result<T, StreamsError>) -> Result<T, StreamsError> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            match call() {
                Ok(value) => {
                    if attempts > 0 {
                        self.blocked(started);
                        self.counters.cluster_reachable();
                    }
                    return Ok(value);
                }
                Err(e) if e.kafka_class() == Some(ErrorClass::Retriable) => {
                    attempts += 1;
                    Counters::add(&self.counters.retries, 1);
                    if attempts == 1 {
                        tracing::warn!(error = %e, "retrying");
                    }
                    self.counters.cluster_unreachable(&e);
                    let left = self.timeout.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        self.blocked(started);
                        return Err(StreamsError::TaskTimeout { timeout: self.timeout, source: Box::new(e) });
                    }
                    // A backoff between attempts at a remote call, not a
                    // wait for another thread: nothing to wake us earlier.
                    std::thread::sleep(backoff.min(left));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => {
                    if attempts > 0 {
                        self.blocked(started);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn blocked(&self, started: Instant) {
        Counters::add(&self.counters.blocked_ms, u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
    }
}
