//! Preloading input, and running one contender under measurement.

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::workloads::{self, Expected, Workload};
use crate::{restore_phase, Error};

fn config(servers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers);
    c
}

/// Creates `topic` (if missing) with `partitions`, never deleting by age.
pub(crate) fn create_topic(servers: &str, topic: &str, partitions: i32) -> Result<(), Error> {
    create_topic_with(servers, topic, partitions, &[])
}

/// Creates `topic` (if missing) with `partitions`, never deleting by age,
/// and the topic configs `settings` (e.g. `cleanup.policy=compact`).
pub(crate) fn create_topic_with(
    servers: &str,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = config(servers).create()?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    for (name, value) in settings {
        new = new.set(name, value);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in futures::executor::block_on(admin.create_topics([&new], &opts))? {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => return Err(format!("cannot create topic {t}: {e}").into()),
        }
    }
    Ok(())
}

/// A producer for preloading: large batches, idempotent so that retries
/// cannot reorder a partition.
pub(crate) fn bulk_producer(servers: &str) -> Result<ThreadedProducer<DefaultProducerContext>, Error> {
    producer(servers, 20)
}

/// An idempotent murmur2 producer (the partitioner of Java clients) that
/// waits `linger_ms` to fill batches.
pub(crate) fn producer(servers: &str, linger_ms: u32) -> Result<ThreadedProducer<DefaultProducerContext>, Error> {
    Ok(config(servers)
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .create()?)
}

/// Sends one record, waiting while the producer's queue is full.
pub(crate) fn send_input(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    (key, value, ts): &workloads::Input,
) -> Result<(), Error> {
    send_record(producer, BaseRecord::to(topic).key(key).payload(value).timestamp(*ts))
}

/// Sends one record to `partition` of `topic` (not by its key), waiting
/// while the producer's queue is full.
pub(crate) fn send_input_to(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    (key, value, ts): &workloads::Input,
) -> Result<(), Error> {
    send_record(producer, BaseRecord::to(topic).partition(partition).key(key).payload(value).timestamp(*ts))
}

fn send_record(
    producer: &ThreadedProducer<DefaultProducerContext>,
    mut record: BaseRecord<'_, Vec<u8>, Vec<u8>>,
) -> Result<(), Error> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Creates `topic` (if missing) with `partitions` and writes the workload's
/// records, then its trailer; for W4 first the customers table next to it.
pub(crate) fn preload(
    servers: &str,
    workload: Workload,
    topic: &str,
    records: u64,
    partitions: i32,
) -> Result<(), Error> {
    let producer = bulk_producer(servers)?;
    if workload == Workload::W4 {
        let customers = workloads::customers_topic(topic);
        create_topic(servers, &customers, partitions)?;
        for j in 0..workloads::CUSTOMERS {
            send_input(&producer, &customers, &workloads::customer(j))?;
        }
    }
    create_topic(servers, topic, partitions)?;
    for i in 0..records {
        send_input(&producer, topic, &workloads::record(workload, i))?;
    }
    for r in workloads::trailer(workload, records) {
        send_input(&producer, topic, &r)?;
    }
    producer.flush(Duration::from_secs(300))?;
    Ok(())
}

/// Writes R1's probe line (one new word) to `topic`.
pub(crate) fn probe(servers: &str, topic: &str) -> Result<(), Error> {
    let producer = bulk_producer(servers)?;
    let now = crate::now_ms();
    send_input(&producer, topic, &(b"probe".to_vec(), workloads::PROBE_WORD.as_bytes().to_vec(), now))?;
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// CPU seconds (user + system) and peak RSS (bytes) of a running process.
fn sample(pid: u32, ticks: f64) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    Some(((utime + stime) / ticks, hwm * 1024))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// What the verifying consumer has read of the output so far.
#[derive(Debug, Default)]
struct Seen {
    count: u64,
    latest: BTreeMap<Vec<u8>, Vec<u8>>,
    values: HashSet<Vec<u8>>,
    /// Values written twice, or not expected at all (W4).
    wrong_values: u64,
}

impl Seen {
    fn add(&mut self, expected: &Expected, key: &[u8], value: &[u8]) {
        self.count += 1;
        match expected {
            Expected::Count(_) => {}
            Expected::Latest { .. } => {
                self.latest.insert(key.to_vec(), value.to_vec());
            }
            Expected::Values(want) => {
                if !want.contains(value) || !self.values.insert(value.to_vec()) {
                    self.wrong_values += 1;
                }
            }
        }
    }

    fn complete(&self, expected: &Expected) -> bool {
        match expected {
            Expected::Count(n) => self.count >= *n,
            Expected::Latest { map, .. } => self.latest.len() >= map.len() && &self.latest == map,
            Expected::Values(want) => self.values.len() >= want.len(),
        }
    }

    fn correct(&self, expected: &Expected) -> bool {
        match expected {
            Expected::Count(n) => self.count == *n,
            Expected::Latest { map, once } => &self.latest == map && (!once || self.count == map.len() as u64),
            Expected::Values(want) => self.values.len() == want.len() && self.wrong_values == 0,
        }
    }

    fn describe_difference(&self, expected: &Expected) -> String {
        match expected {
            Expected::Count(n) => format!("expected {n} records, read {}", self.count),
            Expected::Latest { map, once } => {
                let differ = map.iter().filter(|(k, v)| self.latest.get(*k) != Some(*v));
                let examples: Vec<String> = differ
                    .clone()
                    .take(5)
                    .map(|(k, v)| {
                        let got = self.latest.get(k).map(|g| String::from_utf8_lossy(g).into_owned());
                        format!("{}: want {}, got {got:?}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))
                    })
                    .collect();
                let mut text = format!("{} of {} keys differ, e.g. {examples:?}", differ.count(), map.len());
                if *once && self.count != map.len() as u64 {
                    text.push_str(&format!("; {} records for {} keys", self.count, map.len()));
                }
                text
            }
            Expected::Values(want) => format!(
                "{} of {} expected values read, {} unexpected or repeated",
                self.values.len(),
                want.len(),
                self.wrong_values
            ),
        }
    }
}

/// How a contender is stopped once its output is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGKILL: nothing it does afterwards matters.
    Kill,
    /// SIGTERM, then wait for it to close (leaving its group and committing),
    /// so that a next instance of the same application starts at once.
    Term,
}

/// Stops a contender.
pub(crate) fn stop(child: &mut Child, how: Stop) {
    if how == Stop::Term {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A read_committed consumer of `topic` from its beginning, in a fresh group.
pub(crate) fn verifier(servers: &str, topic: &str) -> Result<BaseConsumer, Error> {
    let consumer: BaseConsumer = config(servers)
        .set("group.id", format!("bench-verify-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// How [`run`] runs a contender.
#[derive(Debug, Clone, Copy)]
pub(crate) struct How {
    /// Given up (output incomplete) after this long.
    pub(crate) timeout: Duration,
    /// How the contender is stopped once its output is complete.
    pub(crate) stop: Stop,
    /// The command is a wrapper running the contender as its child
    /// (`perf record … -- CONTENDER`): the child is measured, and the wrapper
    /// is stopped with SIGINT instead (perf then stops the child and writes
    /// its file). Attaching with `perf record -p` instead spins perf on
    /// this kernel (millions of wake-ups, seconds of system time, the
    /// contender's records/s halved on 2 cores) once an attached thread exits.
    pub(crate) measure_child: bool,
}

/// The first child of `wrapper`, once it has one (`None` if it exits or
/// has none within 30 s).
fn first_child(wrapper: &mut Child) -> Option<u32> {
    let pid = wrapper.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !matches!(wrapper.try_wait(), Ok(Some(_))) {
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        if let Some(child) = children.split_whitespace().find_map(|c| c.parse().ok()) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Stops a wrapper (see [`How::measure_child`]) with SIGINT, waits for it to
/// write its results, and makes sure its child `inner` is gone too.
fn stop_wrapper(wrapper: &mut Child, inner: u32) {
    let _ = Command::new("kill").arg("-INT").arg(wrapper.id().to_string()).status();
    // perf waits for the contender's clean close, then writes build ids.
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline && !matches!(wrapper.try_wait(), Ok(Some(_))) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !matches!(wrapper.try_wait(), Ok(Some(_))) {
        eprintln!("rivulet-bench: the wrapper did not stop within 600 s; killed");
        stop(wrapper, Stop::Kill);
    }
    if std::path::Path::new(&format!("/proc/{inner}")).exists() {
        let _ = Command::new("kill").arg("-KILL").arg(inner.to_string()).status();
    }
}

/// How long, after the output is complete, the contender's restores that
/// started may take to end (R1: the tasks restore side by side and end
/// within seconds of each other; a restore that never ends is reported).
const RESTORE_END_TIMEOUT: Duration = Duration::from_secs(300);

/// Starts `command`, waits until `output` holds `expected`, samples the
/// process, stops it, and says how it did: a JSON object with the figures
/// and `verified`, plus `error` when the output was incomplete or wrong.
/// When the contender prints restore lines (R1), also its restore phase:
/// once the output is complete, every restore that started has up to
/// [`RESTORE_END_TIMEOUT`] to end (see [`restore_phase`]).
pub(crate) fn run(
    servers: &str,
    expected: &Expected,
    records: u64,
    output: &str,
    command: &[String],
    how: &How,
) -> Result<serde_json::Value, Error> {
    // The output topic exists before anyone subscribes to it.
    create_topic(servers, output, 8)?;
    let (program, args) = command.split_first().ok_or("no contender command after --")?;
    let consumer = verifier(servers, output)?;
    let ticks = clock_ticks();
    let started = Instant::now();
    let launched_us = restore_phase::now_us();
    let mut child = Command::new(program).args(args).stdout(Stdio::piped()).spawn()?;
    // The contender's stdout carries its restore lines (R1); the rest is dropped.
    let restore = restore_phase::Watch::start(child.stdout.take());
    let pid = if how.measure_child {
        match first_child(&mut child) {
            Some(inner) => inner,
            None => {
                stop(&mut child, Stop::Kill);
                return Err(format!("{program} started no contender").into());
            }
        }
    } else {
        child.id()
    };
    // The broker's CPU over the same span as the contender's.
    let broker = std::env::var("BENCH_BROKER_PID").ok().and_then(|p| p.parse::<u32>().ok());
    let broker_cpu = || broker.and_then(|b| sample(b, ticks)).map(|(cpu, _)| cpu);
    let broker_start = broker_cpu();
    let mut seen = Seen::default();
    let mut last_sample = (0.0, 0);
    let done = loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            seen.add(expected, m.key().unwrap_or_default(), m.payload().unwrap_or_default());
            continue;
        }
        if let Some(s) = sample(pid, ticks) {
            last_sample = s;
        }
        if seen.complete(expected) {
            break true;
        }
        if started.elapsed() > how.timeout || matches!(child.try_wait(), Ok(Some(_))) {
            break false;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    // CPU spent after the output was complete is not part of the work.
    if let Some(s) = sample(pid, ticks) {
        last_sample = s;
    }
    let broker_cpu_s = broker_start.zip(broker_cpu()).map(|(start, end)| end - start);
    // R1: the probe's task may run before other tasks have restored; the
    // restore phase ends with the last of them.
    if done {
        restore.wait_ended(RESTORE_END_TIMEOUT);
    }
    // Duplicates written right after completion still count against `once`.
    if done {
        let settle = Instant::now() + Duration::from_millis(500);
        while Instant::now() < settle {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                seen.add(expected, m.key().unwrap_or_default(), m.payload().unwrap_or_default());
            }
        }
    }
    if how.measure_child {
        stop_wrapper(&mut child, pid);
    } else {
        stop(&mut child, how.stop);
    }
    let (cpu, rss) = last_sample;
    let mut result = serde_json::json!({
        "wall_s": wall,
        "records_per_s": records as f64 / wall,
        "cpu_s": cpu,
        "cpu_us_per_record": cpu * 1e6 / records as f64,
        "peak_rss_mb": rss as f64 / 1_048_576.0,
        "broker_cpu_s": broker_cpu_s,
        "output_records": seen.count,
        "verified": done && seen.correct(expected),
    });
    if let Some(obj) = result.as_object_mut() {
        obj.extend(restore.figures(launched_us));
    }
    if !done || !seen.correct(expected) {
        let what = if done { "output wrong" } else { "output incomplete" };
        let error = format!("{program}: {what} after {wall:.1} s ({})", seen.describe_difference(expected));
        eprintln!("rivulet-bench: {error}");
        result["error"] = serde_json::Value::String(error);
    }
    Ok(result)
}
