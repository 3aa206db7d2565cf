//! The Rust contenders: a hand-written rdkafka loop (the client's limit) and Rivulet.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use streams_dsl::runtime::KafkaStreams;
use streams_dsl::StreamsConfig;

use crate::workloads::{self, Workload};
use crate::Error;

/// Commit interval under exactly-once, as Kafka Streams' default.
const EOS_COMMIT: Duration = Duration::from_millis(100);
/// Commit interval under at-least-once, as Kafka Streams' default.
const ALOS_COMMIT: Duration = Duration::from_secs(30);

/// consume → transform → produce with one transaction per commit interval
/// (EOS) or flush-then-commit (ALOS). W2 counts words in memory: one process
/// owns every partition, so it needs no repartitioning: the physical limit.
pub(crate) fn raw(
    servers: &str,
    workload: Workload,
    eos: bool,
    input: &str,
    output: &str,
    app: &str,
) -> Result<(), Error> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", app)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", if eos { "read_committed" } else { "read_uncommitted" })
        .create()?;
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", servers).set("linger.ms", "5").set("partitioner", "murmur2_random");
    if eos {
        pc.set("transactional.id", format!("{app}-raw")).set("transaction.timeout.ms", "10000");
    }
    let producer: BaseProducer = pc.create()?;
    if eos {
        producer.init_transactions(Duration::from_secs(30))?;
    }
    consumer.subscribe(&[input])?;
    let interval = if eos { EOS_COMMIT } else { ALOS_COMMIT };
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut dirty: HashMap<Vec<u8>, ()> = HashMap::new();
    let mut in_txn = false;
    let mut last = Instant::now();
    let mut processed = false;
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(20)) {
            let m = m?;
            if eos && !in_txn {
                producer.begin_transaction()?;
                in_txn = true;
            }
            let value = m.payload().unwrap_or_default();
            match workload {
                Workload::W1 => {
                    if let Some(out) = workloads::w1_transform(value) {
                        send(&producer, BaseRecord::to(output).key(m.key().unwrap_or_default()).payload(&out))?;
                    }
                }
                Workload::W2 => {
                    for w in
                        String::from_utf8_lossy(value).split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
                    {
                        let w = w.to_lowercase().into_bytes();
                        *counts.entry(w.clone()).or_default() += 1;
                        dirty.insert(w, ());
                    }
                }
            }
            processed = true;
        }
        producer.poll(Duration::ZERO);
        if processed && last.elapsed() >= interval {
            for (w, ()) in dirty.drain() {
                let n = counts.get(&w).copied().unwrap_or(0).to_string();
                send(&producer, BaseRecord::to(output).key(w.as_slice()).payload(n.as_bytes()))?;
            }
            let offsets = consumer.position()?;
            if eos {
                if !in_txn {
                    producer.begin_transaction()?;
                }
                let group = consumer.group_metadata().ok_or("no group metadata")?;
                producer.send_offsets_to_transaction(&offsets, &group, Duration::from_secs(30))?;
                drain(&producer);
                producer.commit_transaction(Duration::from_secs(30))?;
                in_txn = false;
            } else {
                drain(&producer);
                consumer.commit(&offsets, CommitMode::Sync)?;
            }
            processed = false;
            last = Instant::now();
        }
    }
}

/// Waits for every acknowledgement in short polls (rdkafka's `flush` polls
/// in 100 ms slices).
fn drain(producer: &BaseProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
}

fn send(producer: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) -> Result<(), Error> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Rivulet: the workload's topology, one stream thread, until killed.
pub(crate) fn rivulet(
    servers: &str,
    workload: Workload,
    eos: bool,
    input: &str,
    output: &str,
    app: &str,
    state_dir: &str,
) -> Result<(), Error> {
    let mut config = StreamsConfig::new(app, servers);
    config.set("processing.guarantee", if eos { "exactly_once_v2" } else { "at_least_once" })?;
    config.set("state.dir", state_dir)?;
    let streams = KafkaStreams::new(workloads::topology(workload, input, output)?, config)?;
    streams.start()?;
    loop {
        // Runs until the harness kills the process; wakes on state changes.
        if streams.wait_for_state(streams_dsl::runtime::State::Error, Duration::from_secs(60)) {
            return Err(streams.error().unwrap_or_default().into());
        }
    }
}
