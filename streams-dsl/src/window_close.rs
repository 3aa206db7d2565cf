//! The window-close rule: when stream time has moved far enough past a
//! window's end that the window takes no more records and its result is
//! final. Time, sliding and session aggregations, `suppress` and
//! stream–stream joins all ask here, so that they agree on when a window
//! closes.
//!
//! Kafka Streams itself draws the line in two places, and Rivulet follows it
//! record for record (the golden tests compare with its output):
//!
//! | rule | at stream time `st` | used by (Kafka Streams' class) |
//! | --- | --- | --- |
//! | [`is_closed`](WindowClose::is_closed) | `end <= st - grace` | time and sliding window aggregation drop records for the window (`KStreamWindowAggregate`, `KStreamSlidingWindowAggregate`: open while `windowEnd > closeTime`) |
//! | [`is_due`](WindowClose::is_due) | `end + grace <= st` | `suppress` emits (`KTableSuppressProcessor`: evicts while `minTimestamp <= observedStreamTime - suppressDuration`) |
//! | [`is_expired`](WindowClose::is_expired) | `end + grace < st` | session aggregation drops records (`KStreamSessionWindowAggregate`: dropped when `mergedWindow.end() < closeTime`, the gap counted in); stream–stream joins drop late records and emit unmatched ones (`KStreamKStreamJoin`: waits while `time + after + grace >= streamTime`) |
//!
//! `is_closed` and `is_due` are one rule seen from the two sides of the
//! inequality; they differ only where `i64` arithmetic saturates (a stream
//! time of `i64::MAX`), and each keeps the arithmetic its operator always had.

/// When windows of one operator close: `grace_ms` after their end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowClose {
    grace_ms: i64,
}

impl WindowClose {
    /// Windows that accept late records until `grace_ms` after their end.
    pub(crate) const fn after_grace(grace_ms: i64) -> Self {
        Self { grace_ms }
    }

    /// Kafka Streams' `closeTime`: at `stream_time`, every window ending at
    /// or before it is closed.
    pub(crate) fn close_time(self, stream_time: i64) -> i64 {
        stream_time.saturating_sub(self.grace_ms)
    }

    /// Whether a window ending at `window_end` takes no more records: its
    /// end is at or before the close time (windowed aggregations).
    pub(crate) fn is_closed(self, window_end: i64, stream_time: i64) -> bool {
        window_end <= self.close_time(stream_time)
    }

    /// The stream time from which on a window ending at `window_end` is closed.
    pub(crate) fn closes_at(self, window_end: i64) -> i64 {
        window_end.saturating_add(self.grace_ms)
    }

    /// Whether the result for a window ending at `window_end` is final and
    /// may be emitted (`suppress`; for `until_time_limit` the "end" is the
    /// time the key entered the buffer and the grace is the limit).
    pub(crate) fn is_due(self, window_end: i64, stream_time: i64) -> bool {
        self.closes_at(window_end) <= stream_time
    }

    /// Whether stream time has moved strictly past `end` + grace (sessions,
    /// whose `end` counts the inactivity gap in, and stream–stream joins,
    /// whose `end` is a record's time plus how much later a partner may be).
    pub(crate) fn is_expired(self, end: i64, stream_time: i64) -> bool {
        self.closes_at(end) < stream_time
    }

    /// How long a store must keep a window spanning `span_ms`, so that it is
    /// still there for every record that arrives before it closes.
    pub(crate) fn retention_ms(self, span_ms: i64) -> i64 {
        span_ms.saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_closes_at_end_plus_grace_inclusive_for_aggregations_and_suppress() {
        let close = WindowClose::after_grace(5);
        // Window [0, 10) with 5 ms grace: open while stream time < 15.
        assert!(!close.is_closed(10, 14));
        assert!(close.is_closed(10, 15));
        assert!(!close.is_due(10, 14));
        assert!(close.is_due(10, 15));
        assert_eq!(close.closes_at(10), 15);
        assert_eq!(close.close_time(15), 10);
    }

    #[test]
    fn sessions_and_joins_expire_only_strictly_after_end_plus_grace() {
        let close = WindowClose::after_grace(5);
        assert!(!close.is_expired(10, 15));
        assert!(close.is_expired(10, 16));
    }

    #[test]
    fn the_two_inclusive_forms_differ_only_where_i64_saturates() {
        let close = WindowClose::after_grace(10);
        for (end, stream_time) in [(0, -1), (0, 9), (0, 10), (i64::MAX - 20, i64::MAX - 10), (-5, 5)] {
            assert_eq!(close.is_closed(end, stream_time), close.is_due(end, stream_time), "{end} {stream_time}");
        }
        // end + grace saturates to i64::MAX: `suppress` counts it reached.
        assert!(close.is_due(i64::MAX - 5, i64::MAX));
        assert!(!close.is_closed(i64::MAX - 5, i64::MAX));
    }

    #[test]
    fn retention_covers_the_span_and_the_grace() {
        assert_eq!(WindowClose::after_grace(5).retention_ms(10), 15);
        assert_eq!(WindowClose::after_grace(i64::MAX).retention_ms(10), i64::MAX);
    }
}
