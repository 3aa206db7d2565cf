//! R1's restore phase on its own, apart from the contender's start-up.
//!
//! R1's row measures from the restored instance's launch to the answer of a
//! probe: start-up, group join, restore and the probe together. Each
//! contender also says when its restore ran, with one line on stdout when a
//! store's restore starts and one when it ends, wall-clock times in
//! microseconds since the epoch:
//!
//! `RESTORE start source=1_3 store=word-counts-store at_us=T`
//! `RESTORE end source=1_3 store=word-counts-store records=N at_us=T`
//!
//! `source` names what is read (Rivulet: the task; Kafka Streams: the
//! changelog partition; the raw loop: the topic it reads its table from);
//! `records` is how many changelog records that restore applied. Rivulet
//! prints them from a [`StateRestoreListener`] ([`Announce`]), the Kafka
//! Streams peer from its global state restore listener, the raw loop around
//! its table read ([`start`], [`end`]).
//!
//! `run` reads them ([`Watch`]): the restore phase lasts from the first start
//! to the last end, over every store and task, and its records are the sum
//! of the ends' counts. A task may run as soon as its own stores are
//! restored, so the probe can be answered while other tasks still restore:
//! `run` waits for every restore that started to end ([`Watch::wait_ended`]).
//!
//! The result line then has `restore_start_after_launch_s` (the start-up:
//! from the launch to the first start), `restore_phase_s`,
//! `restored_records`, `restore_phase_records_per_s` and
//! `restore_phase_stores` (how many store restores ended); or, when a
//! restore that started never ended, `restore_phase_error` instead of the
//! phase's figures ([`Watch::figures`]).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::ChildStdout;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use streams_dsl::runtime::StateRestoreListener;
use streams_dsl::TaskId;

/// What every restore line begins with.
const PREFIX: &str = "RESTORE ";

/// Wall-clock microseconds since the epoch: the contender's times are
/// compared with the harness's launch time, a different process's clock.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}

/// Prints the line saying that the restore of `store` from `source` starts.
pub(crate) fn start(source: &str, store: &str) {
    let line = format!("{PREFIX}start source={source} store={store} at_us={}", now_us());
    // Rust's stdout is line-buffered: the harness reads the line at once.
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Prints the line saying that the restore of `store` from `source` ended
/// after applying `records` changelog records.
pub(crate) fn end(source: &str, store: &str, records: u64) {
    let line = format!("{PREFIX}end source={source} store={store} records={records} at_us={}", now_us());
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Rivulet's restore listener for R1: a line when a store's restore starts
/// and when it ends (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Announce;

impl StateRestoreListener for Announce {
    fn on_restore_start(&self, task: TaskId, store: &str, _start: i64, _end: i64) {
        start(&task.to_string(), store);
    }

    fn on_restore_end(&self, task: TaskId, store: &str, total: u64) {
        end(&task.to_string(), store, total);
    }
}

/// What a contender's restore lines said so far.
#[derive(Debug, Default, Clone)]
struct Phase {
    /// Restores (source, store) started and not ended yet.
    open: BTreeSet<(String, String)>,
    /// Restores ended.
    ended: u64,
    /// The first start and the last end, µs since the epoch.
    first_start_us: Option<i64>,
    last_end_us: Option<i64>,
    /// Changelog records the ended restores applied.
    records: u64,
}

impl Phase {
    /// Takes in one line of the contender's stdout; false for other lines.
    fn read(&mut self, line: &str) -> bool {
        let Some(rest) = line.trim().strip_prefix(PREFIX) else { return false };
        let mut words = rest.split_whitespace();
        let event = words.next().unwrap_or_default();
        let (mut source, mut store, mut records, mut at) = ("", "", 0, None);
        for (name, value) in words.filter_map(|w| w.split_once('=')) {
            match name {
                "source" => source = value,
                "store" => store = value,
                "records" => records = value.parse().unwrap_or(0),
                "at_us" => at = value.parse::<i64>().ok(),
                _ => {}
            }
        }
        let key = (source.to_owned(), store.to_owned());
        match event {
            "start" => {
                self.open.insert(key);
                self.first_start_us = self.first_start_us.into_iter().chain(at).min();
            }
            "end" => {
                self.open.remove(&key);
                self.ended += 1;
                self.records += records;
                self.last_end_us = self.last_end_us.into_iter().chain(at).max();
            }
            _ => {}
        }
        true
    }

    /// Whether a restore started and every one that did has ended.
    fn ended(&self) -> bool {
        self.first_start_us.is_some() && self.last_end_us.is_some() && self.open.is_empty()
    }
}

/// What the reading thread shares: the restore lines so far, and whether
/// the contender's stdout closed (it exited: no more lines will come).
#[derive(Debug, Default)]
struct Shared {
    phase: Phase,
    closed: bool,
}

/// Reads a contender's stdout on a thread of its own (it must never fill
/// the pipe and block the contender), keeps the restore lines and drops the
/// rest, as `run` did with the contender's stdout before.
#[derive(Debug)]
pub(crate) struct Watch {
    shared: Arc<(Mutex<Shared>, Condvar)>,
}

impl Watch {
    /// Starts reading `stdout` (none: nothing to read, no restore lines).
    pub(crate) fn start(stdout: Option<ChildStdout>) -> Self {
        let shared = Arc::new((Mutex::new(Shared::default()), Condvar::new()));
        let Some(stdout) = stdout else {
            shared.0.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
            return Self { shared };
        };
        let reader = Arc::clone(&shared);
        std::thread::spawn(move || {
            let (state, changed) = &*reader;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if state.lock().unwrap_or_else(PoisonError::into_inner).phase.read(&line) {
                    changed.notify_all();
                }
            }
            state.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
            changed.notify_all();
        });
        Self { shared }
    }

    /// Waits up to `timeout` until every restore that started has ended, if
    /// one did (a contender that prints no restore lines is not waited for).
    pub(crate) fn wait_ended(&self, timeout: Duration) {
        let (state, changed) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
        while guard.phase.first_start_us.is_some() && !guard.phase.ended() && !guard.closed {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break };
            guard = changed.wait_timeout(guard, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// The restore phase's figures for the result line, relative to the
    /// contender's launch at `launched_us`: nothing when the contender
    /// printed no restore line; `restore_phase_error` when a restore that
    /// started has not ended.
    pub(crate) fn figures(&self, launched_us: i64) -> serde_json::Map<String, serde_json::Value> {
        let phase = self.shared.0.lock().unwrap_or_else(PoisonError::into_inner).phase.clone();
        let mut figures = serde_json::Map::new();
        let Some(first_start) = phase.first_start_us else { return figures };
        let seconds = |us: i64| serde_json::Value::from(us as f64 / 1e6);
        figures.insert("restore_start_after_launch_s".into(), seconds(first_start - launched_us));
        match phase.last_end_us.filter(|_| phase.ended()) {
            Some(last_end) => {
                let took_us = last_end - first_start;
                figures.insert("restore_phase_s".into(), seconds(took_us));
                figures.insert("restored_records".into(), phase.records.into());
                figures.insert("restore_phase_stores".into(), phase.ended.into());
                // A phase shorter than the clock's resolution has no rate worth printing.
                let rate = (took_us > 0).then(|| phase.records as f64 * 1e6 / took_us as f64);
                figures.insert("restore_phase_records_per_s".into(), rate.into());
            }
            None => {
                let open: Vec<String> = phase.open.iter().map(|(source, store)| format!("{store}@{source}")).collect();
                let error = format!("restores started and not ended: {}", open.join(", "));
                eprintln!("rivulet-bench: {error}");
                figures.insert("restore_phase_error".into(), error.into());
            }
        }
        figures
    }
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn the_phase_spans_the_first_start_to_the_last_end() {
        let mut phase = Phase::default();
        assert!(!phase.read("STATUS state=RUNNING"));
        assert!(phase.read("RESTORE start source=1_0 store=s at_us=100"));
        assert!(phase.read("RESTORE start source=1_1 store=s at_us=90"));
        assert!(phase.read("RESTORE end source=1_1 store=s records=7 at_us=400"));
        assert!(!phase.ended());
        assert!(phase.read("RESTORE end source=1_0 store=s records=5 at_us=300"));
        assert!(phase.ended());
        assert_eq!((phase.first_start_us, phase.last_end_us, phase.records, phase.ended), (Some(90), Some(400), 12, 2));
    }

    #[test]
    fn no_start_is_no_phase() {
        let mut phase = Phase::default();
        assert!(phase.read("RESTORE end source=t store=s records=3 at_us=5"));
        assert!(!phase.ended());
    }
}
