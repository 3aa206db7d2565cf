//! Window definitions: tumbling and hopping `TimeWindows`, `SessionWindows`,
//! `SlidingWindows`, and `JoinWindows` for stream–stream joins.

use std::time::Duration;

use streams_core::Window;

use crate::window_close::WindowClose;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A length in ms as a `Duration` (negative lengths as zero), for store retention and sizes.
pub(crate) fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Fixed-size windows: tumbling (advance = size) or hopping (advance < size).
/// A window covers `[start, start + size)`; it accepts records until stream
/// time passes `end + grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window size, ms.
    pub size_ms: i64,
    /// Distance between window starts, ms.
    pub advance_ms: i64,
    /// How long after its end a window still accepts late records, ms.
    pub grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size` with no grace period.
    pub fn of_size_with_no_grace(size: Duration) -> Self {
        Self::of_size_and_grace(size, Duration::ZERO)
    }

    /// Tumbling windows of `size` accepting records up to `grace` late.
    pub fn of_size_and_grace(size: Duration, grace: Duration) -> Self {
        let size_ms = ms(size).max(1);
        Self { size_ms, advance_ms: size_ms, grace_ms: ms(grace) }
    }

    /// Hopping windows: a new window every `advance` (clamped to `1..=size`).
    pub fn advance_by(mut self, advance: Duration) -> Self {
        self.advance_ms = ms(advance).clamp(1, self.size_ms);
        self
    }

    /// When these windows close: `grace` after their end.
    pub(crate) fn close(&self) -> WindowClose {
        WindowClose::after_grace(self.grace_ms)
    }

    /// The windows a record at `timestamp` falls in (none start below 0).
    pub fn windows_for(&self, timestamp: i64) -> Vec<Window> {
        let mut start = (timestamp - self.size_ms + self.advance_ms).max(0);
        start -= start % self.advance_ms;
        let mut out = Vec::new();
        while start <= timestamp {
            out.push(Window { start, end: start.saturating_add(self.size_ms) });
            start += self.advance_ms;
        }
        out
    }
}

/// Session windows: records of a key closer than `gap` belong to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    /// Inactivity gap, ms.
    pub gap_ms: i64,
    /// How long after a session's end (plus the gap) it still accepts records, ms.
    pub grace_ms: i64,
}

impl SessionWindows {
    /// Sessions split by `gap` of inactivity, with no grace period.
    pub fn of_inactivity_gap_with_no_grace(gap: Duration) -> Self {
        Self::of_inactivity_gap_and_grace(gap, Duration::ZERO)
    }

    /// Sessions split by `gap` of inactivity, accepting records up to `grace` late.
    pub fn of_inactivity_gap_and_grace(gap: Duration, grace: Duration) -> Self {
        Self { gap_ms: ms(gap), grace_ms: ms(grace) }
    }

    /// When sessions close: `grace` after the last time a record could still
    /// extend them ([`extendable_until`](Self::extendable_until)).
    pub(crate) fn close(&self) -> WindowClose {
        WindowClose::after_grace(self.grace_ms)
    }

    /// The last time a record can still extend a session ending at `end`;
    /// the grace runs from here (Kafka Streams counts the gap into the
    /// session aggregation's close time).
    pub(crate) fn extendable_until(&self, end: i64) -> i64 {
        end.saturating_add(self.gap_ms)
    }

    /// When `suppress` finds a session-windowed table's windows closed: gap
    /// plus grace after their end, the grace Kafka Streams' final-results
    /// suppression takes from session windows.
    pub(crate) fn table_close(&self) -> WindowClose {
        WindowClose::after_grace(self.grace_ms.saturating_add(self.gap_ms))
    }
}

/// Sliding windows: a window of `time_difference` ending at each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    /// The largest time difference between two records of one window, ms.
    pub time_difference_ms: i64,
    /// Grace period, ms.
    pub grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference`, accepting records up to `grace` late.
    pub fn of_time_difference_and_grace(time_difference: Duration, grace: Duration) -> Self {
        Self { time_difference_ms: ms(time_difference), grace_ms: ms(grace) }
    }

    /// When these windows close: `grace` after their end.
    pub(crate) fn close(&self) -> WindowClose {
        WindowClose::after_grace(self.grace_ms)
    }
}

/// Which records of two streams join: those within `before`/`after` of each
/// other; unmatched records of outer sides are emitted once the window closes
/// (`after` + `grace` behind stream time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    /// How far the other record may be earlier, ms.
    pub before_ms: i64,
    /// How far the other record may be later, ms.
    pub after_ms: i64,
    /// Grace period, ms.
    pub grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join; `grace` for late records.
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        let d = ms(difference);
        Self { before_ms: d, after_ms: d, grace_ms: ms(grace) }
    }

    /// As [`of_time_difference_and_grace`](Self::of_time_difference_and_grace) without grace.
    pub fn of_time_difference_with_no_grace(difference: Duration) -> Self {
        Self::of_time_difference_and_grace(difference, Duration::ZERO)
    }

    /// When a record's join window closes: `grace` after the latest time a
    /// partner may have.
    pub(crate) fn close(&self) -> WindowClose {
        WindowClose::after_grace(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_and_hopping_windows_for_a_timestamp() {
        let tumbling = TimeWindows::of_size_with_no_grace(Duration::from_millis(10));
        assert_eq!(tumbling.windows_for(9), vec![Window { start: 0, end: 10 }]);
        assert_eq!(tumbling.windows_for(10), vec![Window { start: 10, end: 20 }]);
        let hopping = tumbling.advance_by(Duration::from_millis(5));
        assert_eq!(hopping.windows_for(7), vec![Window { start: 0, end: 10 }, Window { start: 5, end: 15 }]);
        assert_eq!(hopping.windows_for(3), vec![Window { start: 0, end: 10 }]);
    }
}
