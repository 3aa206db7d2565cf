//! The rate-limited pass: end-to-end latency from an input record's event
//! time to its result being visible to a read_committed consumer.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{BorrowedMessage, Message, Timestamp};
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};

use crate::measure::{self, Stop};
use crate::workloads::{self, Workload};
use crate::{now_ms, Error};

/// How long a contender may take to produce its first output.
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long results of the paced records may trail the last one.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The paced pass's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Records per second.
    pub(crate) rate: u64,
    /// How long records are sent.
    pub(crate) duration: Duration,
}

/// Starts `command` on `input` (already created; W4's customers loaded),
/// waits until it writes its first result, then sends `pace.rate` records a
/// second stamped with the wall clock, and measures, for every result of
/// those records, the time from the stamp to the moment the verifying
/// read_committed consumer holds it.
pub(crate) fn run(
    servers: &str,
    workload: Workload,
    input: &str,
    output: &str,
    command: &[String],
    pace: Pace,
) -> Result<serde_json::Value, Error> {
    measure::create_topic(servers, output, 8)?;
    let consumer = measure::verifier(servers, output)?;
    let (program, args) = command.split_first().ok_or("no contender command after --")?;
    let mut child = Command::new(program).args(args).stdout(Stdio::null()).spawn()?;
    // Sent as they come: batching would add to every latency.
    let producer = measure::producer(servers, 0)?;
    let producer = &producer;
    let send = move |i: u64| {
        let (k, v, _) = workloads::record(workload, i);
        measure::send_input(producer, input, &(k, v, now_ms()))
    };

    let next = match warm_up(&consumer, &mut child, producer, send, |_| {}) {
        Ok(sent) => sent,
        Err(e) => {
            measure::stop(&mut child, Stop::Kill);
            return Err(format!("{program}: {e}").into());
        }
    };
    // Results of warm-up records still in flight are not measured.
    let measured_from = now_ms() + 1;

    let sent_all = AtomicBool::new(false);
    let total = pace.rate * pace.duration.as_secs();
    let latencies = std::thread::scope(|scope| -> Result<Vec<i64>, Error> {
        let done = &sent_all;
        let sender = scope.spawn(move || -> Result<(), String> {
            let started = Instant::now();
            for n in 0..total {
                // Pacing: record n goes out at n / rate seconds.
                let due = started + Duration::from_micros(n * 1_000_000 / pace.rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                send(next + n).map_err(|e| e.to_string())?;
            }
            producer.flush(Duration::from_secs(30)).map_err(|e| e.to_string())?;
            done.store(true, Ordering::Release);
            Ok(())
        });
        let mut latencies = Vec::with_capacity(total as usize);
        let mut quiet_since: Option<Instant> = None;
        let mut sent_at: Option<Instant> = None;
        loop {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let now = now_ms();
                    if let Timestamp::CreateTime(ts) | Timestamp::LogAppendTime(ts) = m.timestamp() {
                        if ts >= measured_from {
                            latencies.push(now - ts);
                        }
                    }
                    quiet_since = None;
                }
                _ if sent_all.load(Ordering::Acquire) => {
                    // Done once nothing has arrived for a while after the last send.
                    let quiet = *quiet_since.get_or_insert_with(Instant::now);
                    let sent = *sent_at.get_or_insert_with(Instant::now);
                    if quiet.elapsed() > Duration::from_secs(3) || sent.elapsed() > DRAIN_TIMEOUT {
                        break;
                    }
                }
                _ => {}
            }
            if sender.is_finished() && !sent_all.load(Ordering::Acquire) {
                break;
            }
        }
        match sender.join() {
            Ok(Ok(())) => Ok(latencies),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err("the sending thread panicked".into()),
        }
    });
    measure::stop(&mut child, Stop::Kill);
    let mut latencies = latencies?;
    latencies.sort_unstable();
    let pick = |q: f64| percentile(&latencies, q);
    Ok(serde_json::json!({
        "rate": pace.rate,
        "sent": total,
        "results": latencies.len(),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": pick(1.0),
    }))
}

/// Warm-up: one record every 100 ms (`send(i)`, flushed at once) until
/// `consumer` reads a result, which shows that the contender has joined its
/// group and runs; `seen` is given that result. Returns how many records were
/// sent. Fails after [`READY_TIMEOUT`] or when `child` exits.
pub(crate) fn warm_up(
    consumer: &BaseConsumer,
    child: &mut Child,
    producer: &ThreadedProducer<DefaultProducerContext>,
    send: impl Fn(u64) -> Result<(), Error>,
    mut seen: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, Error> {
    let mut next = 0u64;
    let ready_by = Instant::now() + READY_TIMEOUT;
    let mut last_sent = Instant::now() - Duration::from_secs(1);
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
            seen(&m);
            return Ok(next);
        }
        if Instant::now() > ready_by {
            return Err(format!("no output within {} s", READY_TIMEOUT.as_secs()).into());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(format!("exited ({exit}) before its first output").into());
        }
        if last_sent.elapsed() >= Duration::from_millis(100) {
            send(next)?;
            producer.flush(Duration::from_secs(5))?;
            next += 1;
            last_sent = Instant::now();
        }
    }
}

/// The `q` quantile (0 to 1, nearest rank) of `sorted`; -1 when it is empty.
pub(crate) fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
