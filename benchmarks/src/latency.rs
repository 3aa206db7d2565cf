//! The rate-limited pass: end-to-end latency from an input record's event
//! time to its result being visible to a read_committed consumer.

use std::collections::BTreeSet;
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
/// Partitions of the output topic (as many as the input topic has).
const OUTPUT_PARTITIONS: i32 = 8;
/// How long records go out at the paced rate before those measured: the
/// step from the warm-up's trickle to the paced rate costs the broker (and
/// a JVM contender) a transient of its own (seen: the broker's request
/// handlers at over a core for about half a second, each produce taking
/// ~40 ms, on the 2-core machine), which is not the latency at that rate.
const PACED_WARM_UP: Duration = Duration::from_secs(5);

/// The paced pass's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// Records per second.
    pub(crate) rate: u64,
    /// How long records are sent.
    pub(crate) duration: Duration,
}

/// Starts `command` on `input` (already created; W4's customers loaded),
/// waits until it has written a result to every partition of `output` (see
/// [`warm_up`]), then sends `pace.rate` records a second stamped with the
/// wall clock, for [`PACED_WARM_UP`] and then `pace.duration`, and
/// measures, for every result of the records of `pace.duration`, the time
/// from the stamp to the moment the verifying read_committed consumer holds
/// it.
pub(crate) fn run(
    servers: &str,
    workload: Workload,
    input: &str,
    output: &str,
    command: &[String],
    pace: Pace,
) -> Result<serde_json::Value, Error> {
    measure::create_topic(servers, output, OUTPUT_PARTITIONS)?;
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

    let next = match warm_up(&consumer, &mut child, producer, send, OUTPUT_PARTITIONS, |_| {}) {
        Ok(sent) => sent,
        Err(e) => {
            measure::stop(&mut child, Stop::Kill);
            return Err(format!("{program}: {e}").into());
        }
    };
    // Results of records sent before the paced warm-up ends (the warm-up
    // records still in flight among them) are not measured.
    let measured_from = now_ms() + 1 + i64::try_from(PACED_WARM_UP.as_millis()).unwrap_or(i64::MAX);

    let sent_all = AtomicBool::new(false);
    let total = pace.rate * (PACED_WARM_UP + pace.duration).as_secs();
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
        "sent": pace.rate * pace.duration.as_secs(),
        "paced_warm_up_s": PACED_WARM_UP.as_secs(),
        "results": latencies.len(),
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "max_ms": pick(1.0),
    }))
}

/// Warm-up: one record every 100 ms (`send(i)`, flushed at once) until
/// `consumer` has read a result from each of `partitions` partitions of its
/// topic, which shows that the contender has joined its group and every
/// task runs; `seen` is given each result read. Returns how many records
/// were sent. Fails after [`READY_TIMEOUT`] or when `child` exits.
///
/// Why every partition and not the first result: a task that gives the
/// first result may run beside others still starting (W4: loading their
/// part of the customers table, its changelog writes and the broker's work
/// on them), and the paced pass measures latency at a steady rate, not
/// start-up. The rule is the same for every contender.
pub(crate) fn warm_up(
    consumer: &BaseConsumer,
    child: &mut Child,
    producer: &ThreadedProducer<DefaultProducerContext>,
    send: impl Fn(u64) -> Result<(), Error>,
    partitions: i32,
    mut seen: impl FnMut(&BorrowedMessage<'_>),
) -> Result<u64, Error> {
    let mut next = 0u64;
    let ready_by = Instant::now() + READY_TIMEOUT;
    let mut last_sent = Instant::now() - Duration::from_secs(1);
    let mut answered = BTreeSet::new();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(20)) {
            seen(&m);
            answered.insert(m.partition());
            if answered.len() >= usize::try_from(partitions).unwrap_or(1) {
                return Ok(next);
            }
        }
        if Instant::now() > ready_by {
            return Err(format!(
                "results from {} of {partitions} partitions within {} s",
                answered.len(),
                READY_TIMEOUT.as_secs()
            )
            .into());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            return Err(format!("exited ({exit}) during its warm-up").into());
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
