//! Preloading input, and running one contender under measurement.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

use crate::workloads::{self, Expected, Workload};
use crate::Error;

fn config(servers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", servers);
    c
}

/// Creates `topic` (if missing) with `partitions` and writes the workload's records.
pub(crate) fn preload(
    servers: &str,
    workload: Workload,
    topic: &str,
    records: u64,
    partitions: i32,
) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = config(servers).create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let _ = futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()));
    let producer: ThreadedProducer<DefaultProducerContext> = config(servers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .create()?;
    for i in 0..records {
        let (k, v) = workloads::record(workload, i);
        let mut record = BaseRecord::to(topic).key(&k).payload(&v);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
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

/// Starts `command`, waits until `output` holds the expected result, samples
/// the process, stops it, and says how it did.
pub(crate) fn run(
    servers: &str,
    workload: Workload,
    records: u64,
    output: &str,
    command: &[String],
    timeout: Duration,
) -> Result<serde_json::Value, Error> {
    let expected = workloads::expected(workload, records);
    // The output topic exists before anyone subscribes to it.
    let admin: AdminClient<DefaultClientContext> = config(servers).create()?;
    let _ = futures::executor::block_on(admin.create_topics(
        [&NewTopic::new(output, 8, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ));
    let (program, args) = command.split_first().ok_or("no contender command after --")?;
    let consumer: BaseConsumer = config(servers)
        .set("group.id", format!("bench-verify-{}", uuid::Uuid::new_v4().simple()))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[output])?;
    let ticks = clock_ticks();
    let started = Instant::now();
    let mut child = Command::new(program).args(args).stdout(Stdio::null()).spawn()?;
    let pid = child.id();
    let mut count = 0u64;
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut last_sample = (0.0, 0);
    let done = loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            count += 1;
            if let Expected::Latest(_) = expected {
                latest.insert(m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
            }
            continue;
        }
        if let Some(s) = sample(pid, ticks) {
            last_sample = s;
        }
        let complete = match &expected {
            Expected::Count(n) => count >= *n,
            Expected::Latest(map) => latest.len() >= map.len() && &latest == map,
        };
        if complete {
            break true;
        }
        if started.elapsed() > timeout || matches!(child.try_wait(), Ok(Some(_))) {
            break false;
        }
    };
    let wall = started.elapsed().as_secs_f64();
    // CPU spent after the output was complete is not part of the work.
    if let Some(s) = sample(pid, ticks) {
        last_sample = s;
    }
    let _ = child.kill();
    let _ = child.wait();
    if !done {
        let diff = match &expected {
            Expected::Count(n) => format!("expected {n} records"),
            Expected::Latest(map) => {
                let wrong: Vec<String> = map
                    .iter()
                    .filter(|(k, v)| latest.get(*k) != Some(*v))
                    .take(5)
                    .map(|(k, v)| {
                        let got = latest.get(k).map(|g| String::from_utf8_lossy(g).into_owned());
                        format!("{}: want {}, got {got:?}", String::from_utf8_lossy(k), String::from_utf8_lossy(v))
                    })
                    .collect();
                format!(
                    "{} of {} keys differ, e.g. {wrong:?}",
                    map.iter().filter(|(k, v)| latest.get(*k) != Some(*v)).count(),
                    map.len()
                )
            }
        };
        return Err(format!("{program}: output incomplete after {wall:.1} s ({count} records read; {diff})").into());
    }
    let correct = match &expected {
        Expected::Count(n) => count == *n,
        Expected::Latest(map) => &latest == map,
    };
    let (cpu, rss) = last_sample;
    Ok(serde_json::json!({
        "wall_s": wall,
        "records_per_s": records as f64 / wall,
        "cpu_s": cpu,
        "cpu_us_per_record": cpu * 1e6 / records as f64,
        "peak_rss_mb": rss as f64 / 1_048_576.0,
        "output_records": count,
        "verified": correct,
    }))
}
