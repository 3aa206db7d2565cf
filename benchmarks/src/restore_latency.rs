//! R2: a running task's latency while another task of the same stream
//! thread restores (the requirement: its p99 during a 1,000,000-record
//! restore stays under 2× its steady value).
//!
//! The application (rivulet-bench's contender with workload `r2`) has one
//! stream thread and one persistent key-value store; its input has 2
//! partitions, and every record is put into the store and forwarded to the
//! output as it is (event time kept). The procedure:
//!
//! 1. Create the input, the output and the store's changelog
//!    (`<app>-r2-store-changelog`, compacted, as the application would),
//!    2 partitions each, and write `records` entries straight into changelog
//!    partition 1: started with an empty state directory, the application's
//!    task 0_1 has them to restore, task 0_0 nothing.
//! 2. Start the contender. Its restore listener prints `R2 restore-start …`
//!    and `R2 restore-end …` lines with the wall-clock time (see
//!    [`Announce`]). Warm-up, as the latency pass: one record every 100 ms to
//!    input partition 0 until the first result is out.
//! 3. Then `rate` records a second to input partition 0, stamped with the
//!    wall clock, while a read_committed consumer of the output measures each
//!    result's latency (the moment it holds it minus the stamp). Once task
//!    0_1's restore has ended, the sending goes on for a window as long as the
//!    restore was measured (at least [`MIN_STEADY_MS`]), then every result is
//!    awaited and the output checked: each record exactly once.
//! 4. The samples are split by their event time: "during" from the later of
//!    the first result and the restore's start to the restore's end;
//!    "steady" the window after it. Reported are p50/p99/max of both, their
//!    ratios, and the restore's duration and records/s.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::producer::Producer;
use streams_dsl::partitioner::partition_for_key;
use streams_dsl::prelude::*;
use streams_dsl::runtime::StateRestoreListener;
use streams_dsl::TaskId;

use crate::latency::{percentile, warm_up};
use crate::measure::{self, Stop};
use crate::workloads::Input;
use crate::{now_ms, Error};

/// The workload's name in the result lines.
pub(crate) const WORKLOAD: &str = "R2 restore beside processing";
/// The store the records pass through.
const STORE: &str = "r2-store";
/// Input, output and changelog partitions.
const PARTITIONS: i32 = 2;
/// The input partition the paced records go to (task 0_0).
const RUNNING: i32 = 0;
/// The changelog partition with the entries to restore (task 0_1).
const RESTORING: i32 = 1;
/// Bytes of each restored value.
const VALUE_BYTES: usize = 100;
/// The shortest steady window.
const MIN_STEADY_MS: i64 = 5_000;
/// How long the restore may take to end, from the contender's start.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(900);
/// How long results may trail the last record sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What R2 runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Changelog entries task 0_1 restores.
    pub(crate) records: u64,
    /// Records per second to task 0_0.
    pub(crate) rate: u64,
    /// The contender's application id (names the changelog topic).
    pub(crate) app: String,
}

/// The `i`-th input record: its sequence number as the key, stamped now.
pub(crate) fn input(i: u64) -> Input {
    (i.to_string().into_bytes(), format!("r2-{i}").into_bytes(), now_ms())
}

/// Puts every record into the store and forwards it unchanged.
struct PutForward {
    store: Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>,
}

impl Processor<Vec<u8>, Vec<u8>> for PutForward {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Vec<u8>, Vec<u8>>) -> Result<(), ProcessorError> {
        self.store = Some(ctx.key_value_store(STORE)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<Vec<u8>, Vec<u8>>,
        ctx: &mut ProcessorContext<'_, Vec<u8>, Vec<u8>>,
    ) -> Result<(), ProcessorError> {
        if let Some(s) = &self.store {
            s.put(r.key(), r.value())?;
        }
        ctx.forward(r)
    }
}

/// The contender's topology: source → put and forward (store [`STORE`]) → sink.
pub(crate) fn topology(input: &str, output: &str) -> Result<Topology, TopologyError> {
    let mut topology = Topology::new();
    topology
        .add_source("r2-source", &[input], BytesSerde, BytesSerde)?
        .add_processor("r2-put", || PutForward { store: None }, &["r2-source"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::persistent_key_value_store(STORE), BytesSerde, BytesSerde),
            &["r2-put"],
        )?
        .add_sink("r2-sink", output, BytesSerde, BytesSerde, &["r2-put"])?;
    Ok(topology)
}

/// The contender's restore listener: a line on stdout when a store's
/// restore starts and when it ends, with the wall-clock time (ms), for
/// [`run`] to read:
///
/// `R2 restore-start task=0_1 store=r2-store start=0 end=N at_ms=T`
/// `R2 restore-end task=0_1 store=r2-store total=N at_ms=T`
#[derive(Debug)]
pub(crate) struct Announce;

impl StateRestoreListener for Announce {
    fn on_restore_start(&self, task: TaskId, store: &str, start: i64, end: i64) {
        let line = format!("R2 restore-start task={task} store={store} start={start} end={end} at_ms={}", now_ms());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn on_restore_end(&self, task: TaskId, store: &str, total: u64) {
        let line = format!("R2 restore-end task={task} store={store} total={total} at_ms={}", now_ms());
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }
}

/// What the contender's restore lines said.
#[derive(Debug, Clone, Default)]
struct Restore {
    /// Tasks whose restore started.
    started: Vec<String>,
    /// Task 0_1's restore: start and end (wall-clock ms), records restored.
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    total: Option<u64>,
}

impl Restore {
    /// Takes in one line of the contender's stdout; false for other lines.
    fn read(&mut self, line: &str) -> bool {
        let Some(rest) = line.trim().strip_prefix("R2 ") else { return false };
        let mut words = rest.split_whitespace();
        let event = words.next().unwrap_or_default();
        let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
        let task = fields.get("task").copied().unwrap_or_default();
        let ours = task == format!("0_{RESTORING}");
        let at = fields.get("at_ms").and_then(|t| t.parse().ok());
        match event {
            "restore-start" => {
                self.started.push(task.to_owned());
                if ours {
                    self.start_ms = at;
                }
            }
            "restore-end" if ours => {
                self.end_ms = at;
                self.total = fields.get("total").and_then(|t| t.parse().ok());
            }
            _ => {}
        }
        true
    }
}

/// The contender process, killed when dropped; a thread reads its stdout
/// for the restore lines and passes other lines on to stderr.
struct Contender {
    child: Child,
    restore: Arc<Mutex<Restore>>,
}

impl Contender {
    fn start(command: &[String]) -> Result<Self, Error> {
        let (program, args) = command.split_first().ok_or("no contender command after --")?;
        let mut child = Command::new(program).args(args).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let restore = Arc::new(Mutex::new(Restore::default()));
        let shared = Arc::clone(&restore);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !shared.lock().unwrap_or_else(PoisonError::into_inner).read(&line) {
                    eprintln!("[contender] {line}");
                }
            }
        });
        Ok(Self { child, restore })
    }

    fn restore(&self) -> Restore {
        self.restore.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// An error when the process has exited.
    fn alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait()? {
            Some(exit) => Err(format!("the contender exited ({exit})").into()),
            None => Ok(()),
        }
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        measure::stop(&mut self.child, Stop::Kill);
    }
}

/// Writes `records` entries of distinct keys (ones the default partitioner
/// puts on partition [`RESTORING`], as the application's own would be) into
/// changelog partition [`RESTORING`].
fn write_changelog(servers: &str, changelog: &str, records: u64) -> Result<(), Error> {
    let producer = measure::bulk_producer(servers)?;
    let value = vec![b'v'; VALUE_BYTES];
    let keys = (0u64..)
        .map(|i| format!("restored-{i:010}").into_bytes())
        .filter(|k| partition_for_key(k, PARTITIONS) == Some(RESTORING))
        .take(records as usize);
    let ts = now_ms();
    for key in keys {
        measure::send_input_to(&producer, changelog, RESTORING, &(key, value.clone(), ts))?;
    }
    producer.flush(Duration::from_secs(300))?;
    Ok(())
}

/// The results read: which records came out, how many twice, and each
/// one's (event time, latency) once measuring began.
#[derive(Debug, Default)]
struct Results {
    seen: HashSet<u64>,
    duplicates: u64,
    unknown: u64,
    samples: Vec<(i64, i64)>,
}

impl Results {
    fn add(&mut self, m: &BorrowedMessage<'_>, measured_from: i64) {
        let now = now_ms();
        let id = m.key().and_then(|k| std::str::from_utf8(k).ok()).and_then(|k| k.parse::<u64>().ok());
        match id {
            Some(id) if !self.seen.insert(id) => self.duplicates += 1,
            Some(_) => {}
            None => self.unknown += 1,
        }
        if let Timestamp::CreateTime(ts) | Timestamp::LogAppendTime(ts) = m.timestamp() {
            if ts >= measured_from {
                self.samples.push((ts, now - ts));
            }
        }
    }

    /// Prints p50 and max of every 500 ms of event time from `from` to
    /// `until` to stderr, times relative to the restore's end.
    fn timeline(&self, from: i64, end: i64, until: i64) {
        const STEP: i64 = 500;
        let mut line = String::from("[restore-latency] ms from the restore's end: p50/max latency ms");
        let mut at = from;
        while at <= until {
            let mut l: Vec<i64> =
                self.samples.iter().filter(|(ts, _)| (at..at + STEP).contains(ts)).map(|s| s.1).collect();
            l.sort_unstable();
            line.push_str(&format!(" | {}: {}/{}", at - end, percentile(&l, 0.5), percentile(&l, 1.0)));
            at += STEP;
        }
        eprintln!("{line}");
    }

    /// p50, p99, max and count of the latencies of records stamped in `from..=to`.
    fn window(&self, from: i64, to: i64) -> serde_json::Value {
        let mut l: Vec<i64> = self.samples.iter().filter(|(ts, _)| (from..=to).contains(ts)).map(|s| s.1).collect();
        l.sort_unstable();
        serde_json::json!({
            "samples": l.len(),
            "window_ms": to - from,
            "p50_ms": percentile(&l, 0.50),
            "p99_ms": percentile(&l, 0.99),
            "max_ms": percentile(&l, 1.0),
        })
    }
}

/// The changelog topic of the contender's store.
fn changelog_topic(app: &str) -> String {
    format!("{app}-{STORE}-changelog")
}

/// Runs R2 with the contender `command` and says how it went.
pub(crate) fn run(
    servers: &str,
    input_topic: &str,
    output: &str,
    settings: &Settings,
    command: &[String],
) -> Result<serde_json::Value, Error> {
    measure::create_topic(servers, input_topic, PARTITIONS)?;
    measure::create_topic(servers, output, PARTITIONS)?;
    let changelog = changelog_topic(&settings.app);
    measure::create_topic_with(servers, &changelog, PARTITIONS, &[("cleanup.policy", "compact")])?;
    let loading = Instant::now();
    write_changelog(servers, &changelog, settings.records)?;
    eprintln!(
        "[restore-latency] {} entries in {changelog} partition {RESTORING} after {:.1} s",
        settings.records,
        loading.elapsed().as_secs_f64()
    );

    let consumer = measure::verifier(servers, output)?;
    // Sent as they come: batching would add to every latency.
    let producer = measure::producer(servers, 0)?;
    let producer = &producer;
    let send = move |i: u64| measure::send_input_to(producer, input_topic, RUNNING, &input(i));
    let launched = now_ms();
    let mut contender = Contender::start(command)?;
    let mut results = Results::default();
    // The first result, from the running task (the other restores).
    let warm = warm_up(&consumer, &mut contender.child, producer, send, 1, |m| results.add(m, i64::MAX))?;
    // Results of warm-up records still in flight are not measured.
    let measured_from = now_ms() + 1;

    let stop = AtomicBool::new(false);
    let (outcome, sent) = std::thread::scope(|scope| {
        let stop = &stop;
        let sender = scope.spawn(move || -> Result<u64, String> {
            let started = Instant::now();
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                // Pacing: record n goes out at n / rate seconds.
                let due = started + Duration::from_micros(n * 1_000_000 / settings.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                send(warm + n).map_err(|e| e.to_string())?;
                n += 1;
            }
            producer.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
            Ok(warm + n)
        });
        let deadline = Instant::now() + RESTORE_TIMEOUT;
        // Until one steady window after the restore's end.
        let outcome = loop {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
                results.add(&m, measured_from);
                continue;
            }
            let r = contender.restore();
            if let Some(end) = r.end_ms {
                let from = r.start_ms.unwrap_or(end).max(measured_from);
                let steady_until = end + (end - from).max(MIN_STEADY_MS);
                if now_ms() > steady_until {
                    break Ok((r, from, steady_until));
                }
            } else if Instant::now() > deadline {
                break Err(format!("task 0_{RESTORING}'s restore did not end within {RESTORE_TIMEOUT:?}").into());
            }
            if let Err(e) = contender.alive() {
                break Err(e);
            }
            if sender.is_finished() {
                break Err("the sender stopped".into());
            }
        };
        stop.store(true, Ordering::Release);
        let sent = match sender.join() {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(Error::from(e)),
            Err(_) => Err("the sending thread panicked".into()),
        };
        (outcome, sent)
    });
    let (restore, from, steady_until): (Restore, i64, i64) = outcome?;
    let sent = sent?;
    // Every result, then a moment for late duplicates.
    let drain_by = Instant::now() + DRAIN_TIMEOUT;
    while (results.seen.len() as u64) < sent && Instant::now() < drain_by {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
            results.add(&m, measured_from);
        }
    }
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            results.add(&m, measured_from);
        }
    }
    contender.alive()?;

    let (start, end) = (restore.start_ms.unwrap_or(from), restore.end_ms.unwrap_or(from));
    let total = restore.total.unwrap_or(0);
    let restore_s = (end - start) as f64 / 1000.0;
    results.timeline(from, end, steady_until);
    let during = results.window(from, end);
    let steady = results.window(end + 1, steady_until);
    let ratio = |q: &str| {
        let (d, s) = (during[q].as_f64().unwrap_or(-1.0), steady[q].as_f64().unwrap_or(-1.0));
        (d >= 0.0 && s > 0.0).then(|| d / s)
    };
    let mut problems = Vec::new();
    if total != settings.records {
        problems.push(format!("task 0_{RESTORING} restored {total} records, not {}", settings.records));
    }
    if restore.started != [format!("0_{RESTORING}")] {
        problems.push(format!("restores started: {:?}, expected only 0_{RESTORING}", restore.started));
    }
    if end <= from {
        problems
            .push(format!("the restore ended {} ms before the first result: nothing measured beside it", from - end));
    }
    if (results.seen.len() as u64) < sent || results.duplicates > 0 || results.unknown > 0 {
        problems.push(format!(
            "{} of {sent} records out, {} twice, {} unknown",
            results.seen.len(),
            results.duplicates,
            results.unknown
        ));
    }
    let mut result = serde_json::json!({
        "rate": settings.rate,
        "restored_records": total,
        "restore_s": restore_s,
        "restore_records_per_s": if restore_s > 0.0 { total as f64 / restore_s } else { 0.0 },
        "restore_start_after_launch_ms": start - launched,
        "first_result_after_launch_ms": measured_from - launched,
        "sent": sent,
        "results": results.seen.len(),
        "during": during,
        "steady": steady,
        "p50_ratio": ratio("p50_ms"),
        "p99_ratio": ratio("p99_ms"),
        "verified": problems.is_empty(),
    });
    if !problems.is_empty() {
        let error = problems.join("; ");
        eprintln!("rivulet-bench: restore-latency: {error}");
        result["error"] = serde_json::Value::String(error);
    }
    Ok(result)
}
