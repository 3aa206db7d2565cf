//! The Rust contenders: a hand-written rdkafka loop (the client's limit) and Rivulet.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, Timestamp};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use streams_dsl::runtime::KafkaStreams;
use streams_dsl::StreamsConfig;

use crate::workloads::{self, Order, Payment, Stats, Workload};
use crate::Error;

/// Commit interval under exactly-once, as Kafka Streams' default.
const EOS_COMMIT: Duration = Duration::from_millis(100);
/// Commit interval under at-least-once, as Kafka Streams' default.
const ALOS_COMMIT: Duration = Duration::from_secs(30);

/// What a contender runs on.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) servers: String,
    pub(crate) workload: Workload,
    pub(crate) eos: bool,
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) app: String,
    pub(crate) state_dir: String,
    /// Raw only: a topic of (key, count) records to load before starting,
    /// its "restore" (R1 reads the output of the run before it), timed by
    /// restore lines as the other contenders' restores are.
    pub(crate) restore_from: Option<String>,
    /// Rivulet on W2 only: interactive-query gets per second to run beside
    /// the processing (0: none).
    pub(crate) query_rate: u32,
    /// `num.stream.threads` (the threads scaling row), when set.
    pub(crate) threads: Option<u32>,
    /// `num.standby.replicas` (F1), when set.
    pub(crate) standby_replicas: Option<u32>,
    /// `consumer.session.timeout.ms` (F1), when set.
    pub(crate) session_timeout_ms: Option<u64>,
    /// `consumer.heartbeat.interval.ms` (F1), when set.
    pub(crate) heartbeat_ms: Option<u64>,
    /// `http.listen` (F1: Rivulet places standby copies by the instances'
    /// endpoints, so standbys need one), when set.
    pub(crate) http_listen: Option<String>,
    /// F1: print a status line (see [`status_line`]) to stdout this often.
    pub(crate) status_every: Option<Duration>,
}

/// A flag set when SIGTERM or Ctrl-C arrives.
pub(crate) fn terminated() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    rivulet_examples::cli::watch_signals(&flag);
    flag
}

/// A topic read as a table: the latest value of every key.
type Table = HashMap<Vec<u8>, Vec<u8>>;

/// Reads every partition of `topic` from its beginning to its current end:
/// the table, and how many records it was read from.
fn read_table(servers: &str, topic: &str) -> Result<(Table, u64), Error> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("raw-table-{}", uuid::Uuid::new_v4().simple()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let partitions = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0);
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let mut table = HashMap::new();
    let (mut at_end, mut records) = (0, 0);
    while at_end < partitions {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                let key = m.key().unwrap_or_default().to_vec();
                match m.payload() {
                    Some(v) => table.insert(key, v.to_vec()),
                    None => table.remove(&key),
                };
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => at_end += 1,
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok((table, records))
}

/// R1's restore: the counts `topic` (the output of the run before) holds,
/// between the restore lines that time it (see `restore_phase.rs`).
fn restore_counts(servers: &str, topic: &str) -> Result<HashMap<Vec<u8>, u64>, Error> {
    crate::restore_phase::start(topic, "counts");
    let (table, records) = read_table(servers, topic)?;
    let counts = table
        .into_iter()
        .map(|(k, v)| (k, std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).unwrap_or(0)))
        .collect();
    crate::restore_phase::end(topic, "counts", records);
    Ok(counts)
}

/// The raw loop's state between commits.
#[derive(Debug, Default)]
struct RawState {
    /// W2/R1: word counts, and the words changed since the last commit with
    /// the time of their last update.
    counts: HashMap<Vec<u8>, u64>,
    dirty: HashMap<Vec<u8>, i64>,
    /// W3: open windows by (input partition, window start, card), and each
    /// partition's stream time. A card lives on one input partition, so no
    /// repartitioning is needed: the physical limit.
    windows: BTreeMap<(i32, i64, String), Stats>,
    stream_time: HashMap<i32, i64>,
    /// W4: the customers table.
    customers: HashMap<Vec<u8>, Vec<u8>>,
}

/// consume → transform → produce with one transaction per commit interval
/// (EOS) or flush-then-commit (ALOS), until SIGTERM. State lives in memory:
/// one process owns every partition.
pub(crate) fn raw(job: &Job) -> Result<(), Error> {
    let eos = job.eos;
    let mut state = RawState::default();
    if job.workload == Workload::W4 {
        state.customers = read_table(&job.servers, &workloads::customers_topic(&job.input))?.0;
    }
    if let Some(topic) = &job.restore_from {
        state.counts = restore_counts(&job.servers, topic)?;
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &job.servers)
        .set("group.id", &job.app)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", if eos { "read_committed" } else { "read_uncommitted" })
        .create()?;
    let mut pc = ClientConfig::new();
    pc.set("bootstrap.servers", &job.servers).set("linger.ms", "5").set("partitioner", "murmur2_random");
    if eos {
        pc.set("transactional.id", format!("{}-raw", job.app)).set("transaction.timeout.ms", "10000");
    }
    let producer: BaseProducer = pc.create()?;
    if eos {
        producer.init_transactions(Duration::from_secs(30))?;
    }
    consumer.subscribe(&[job.input.as_str()])?;
    let output = job.output.as_str();
    let interval = if eos { EOS_COMMIT } else { ALOS_COMMIT };
    let stop = terminated();
    let mut in_txn = false;
    let mut last = Instant::now();
    let mut processed = false;
    while !stop.load(Ordering::Acquire) {
        if let Some(m) = consumer.poll(Duration::from_millis(20)) {
            let m = m?;
            if eos && !in_txn {
                producer.begin_transaction()?;
                in_txn = true;
            }
            let ts = match m.timestamp() {
                Timestamp::CreateTime(t) | Timestamp::LogAppendTime(t) => t,
                Timestamp::NotAvailable => 0,
            };
            let (key, value) = (m.key().unwrap_or_default(), m.payload().unwrap_or_default());
            match job.workload {
                Workload::R2 => {
                    send(&producer, BaseRecord::to(output).key(key).payload(value).timestamp(ts))?;
                }
                Workload::W1 => {
                    if let Some(out) = workloads::w1_transform(value) {
                        send(&producer, BaseRecord::to(output).key(key).payload(out.as_slice()).timestamp(ts))?;
                    }
                }
                Workload::W2 | Workload::R1 => {
                    for w in
                        String::from_utf8_lossy(value).split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
                    {
                        let w = w.to_lowercase().into_bytes();
                        *state.counts.entry(w.clone()).or_default() += 1;
                        state.dirty.insert(w, ts);
                    }
                }
                Workload::W3 => {
                    if let Ok(p) = serde_json::from_slice::<Payment>(value) {
                        let time = state.stream_time.entry(m.partition()).or_insert(ts);
                        *time = (*time).max(ts);
                        let start = workloads::window_start(ts);
                        if start + workloads::W3_WINDOW.as_millis() as i64 > *time {
                            let s = state.windows.entry((m.partition(), start, p.card)).or_default();
                            s.count += 1;
                            s.sum += p.amount;
                        }
                    }
                }
                Workload::W4 => {
                    if let Ok(o) = serde_json::from_slice::<Order>(value) {
                        if let Some(tier) = state.customers.get(key) {
                            let out = workloads::joined(&o, &String::from_utf8_lossy(tier));
                            send(&producer, BaseRecord::to(output).key(key).payload(out.as_bytes()).timestamp(ts))?;
                        }
                    }
                }
            }
            processed = true;
        }
        producer.poll(Duration::ZERO);
        if processed && last.elapsed() >= interval {
            if eos && !in_txn {
                producer.begin_transaction()?;
            }
            emit_state(&producer, output, &mut state)?;
            let offsets = consumer.position()?;
            if eos {
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
    if in_txn {
        producer.abort_transaction(Duration::from_secs(30))?;
    }
    Ok(())
}

/// Writes what a commit publishes: changed counts (W2/R1) and closed windows (W3).
fn emit_state(producer: &BaseProducer, output: &str, state: &mut RawState) -> Result<(), Error> {
    for (w, ts) in state.dirty.drain() {
        let n = state.counts.get(&w).copied().unwrap_or(0).to_string();
        send(producer, BaseRecord::to(output).key(w.as_slice()).payload(n.as_bytes()).timestamp(ts))?;
    }
    let size = workloads::W3_WINDOW.as_millis() as i64;
    for (&partition, &time) in &state.stream_time {
        let closed: Vec<_> = state
            .windows
            .range((partition, i64::MIN, String::new())..(partition, time - size + 1, String::new()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in closed {
            if let Some(s) = state.windows.remove(&k) {
                let key = workloads::window_key(&k.2, k.1);
                let value = workloads::window_value(&s);
                send(producer, BaseRecord::to(output).key(key.as_bytes()).payload(value.as_bytes()).timestamp(k.1))?;
            }
        }
    }
    Ok(())
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

/// Rivulet: the workload's topology, one stream thread unless `--threads`
/// says otherwise, until SIGTERM (then a clean close: final commit, group left).
pub(crate) fn rivulet(job: &Job) -> Result<(), Error> {
    let mut config = StreamsConfig::new(&job.app, &job.servers);
    config.set("processing.guarantee", if job.eos { "exactly_once_v2" } else { "at_least_once" })?;
    config.set("state.dir", &job.state_dir)?;
    if let Some(n) = job.standby_replicas {
        config.set("num.standby.replicas", &n.to_string())?;
    }
    if let Some(address) = &job.http_listen {
        config.set("http.listen", address)?;
    }
    if let Some(ms) = job.session_timeout_ms {
        config.set("consumer.session.timeout.ms", &ms.to_string())?;
    }
    if let Some(ms) = job.heartbeat_ms {
        config.set("consumer.heartbeat.interval.ms", &ms.to_string())?;
    }
    if let Some(n) = job.threads {
        config.set("num.stream.threads", &n.to_string())?;
    }
    if job.workload == Workload::R2 {
        // Both tasks on one thread: the restoring one beside the running one.
        config.set("num.stream.threads", "1")?;
    }
    let streams = KafkaStreams::new(workloads::topology(job.workload, &job.input, &job.output)?, config)?;
    match job.workload {
        Workload::R2 => streams.set_restore_listener(Arc::new(crate::restore_latency::Announce)),
        Workload::R1 => streams.set_restore_listener(Arc::new(crate::restore_phase::Announce)),
        _ => {}
    }
    if job.status_every.is_some() {
        // F1: state changes as they happen, beside the periodic status lines.
        streams.set_state_listener(|new, old| {
            let line = format!("STATE new={new} old={old} at_ms={}", crate::now_ms());
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        });
    }
    let stop = terminated();
    streams.start()?;
    let streams = Arc::new(streams);
    let queries = (job.query_rate > 0).then(|| {
        let (streams, stop, rate) = (Arc::clone(&streams), Arc::clone(&stop), job.query_rate);
        std::thread::spawn(move || query_load(&streams, &stop, rate))
    });
    let mut last_status = Instant::now();
    while !stop.load(Ordering::Acquire) {
        // Wakes on state changes; the stop flag is looked at between waits.
        if streams.wait_for_state(streams_dsl::runtime::State::Error, Duration::from_millis(100)) {
            return Err(streams.error().map(|e| e.to_string()).unwrap_or_default().into());
        }
        if job.status_every.is_some_and(|every| last_status.elapsed() >= every) {
            println!("{}", status_line(&streams));
            last_status = Instant::now();
        }
    }
    streams.close();
    if let Some(q) = queries {
        let (gets, found) = q.join().map_err(|_| "the query thread panicked")?;
        eprintln!("[rivulet-bench] query load: {gets} gets, {found} found");
    }
    Ok(())
}

/// F1's status line, the same as the Kafka Streams peer prints:
/// `STATUS state=RUNNING active=0_1,1_1 standby=1_0:0,1_2:1 restored=N at_ms=T`,
/// with the active tasks, the standby copies with their lags (changelog
/// records not read yet), the changelog records restored into active
/// stores since the start, and the wall-clock time the tasks were read.
fn status_line(streams: &KafkaStreams) -> String {
    let at_ms = crate::now_ms();
    let state = streams.state();
    let active: Vec<String> = streams.local_tasks().iter().map(ToString::to_string).collect();
    let standby: Vec<String> = streams.standby_tasks().iter().map(|(t, lag)| format!("{t}:{lag}")).collect();
    let restored = streams.metrics().records_restored;
    format!(
        "STATUS state={state} active={} standby={} restored={restored} at_ms={at_ms}",
        active.join(","),
        standby.join(",")
    )
}

/// Gets of random W2 words from the word-count store at `rate` per second,
/// paced by the clock, until `stop`; returns (gets, gets that found a count).
/// Gets while the store is not queryable (start-up, rebalance) count too.
fn query_load(streams: &KafkaStreams, stop: &AtomicBool, rate: u32) -> (u64, u64) {
    use streams_dsl::{QueryableStoreTypes, StoreQueryParameters};
    let params = || {
        StoreQueryParameters::from_name_and_type("word-counts-store", QueryableStoreTypes::key_value::<String, i64>())
    };
    let started = std::time::Instant::now();
    let (mut gets, mut found, mut x) = (0u64, 0u64, 0x2545_f491_4f6c_dd1du64);
    while !stop.load(Ordering::Acquire) {
        let due = started + Duration::from_secs_f64(gets as f64 / f64::from(rate));
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = workloads::w2_word(x % workloads::vocabulary());
        if let Ok(Some(_)) = streams.store(params()).and_then(|s| s.get(&word)) {
            found += 1;
        }
        gets += 1;
    }
    (gets, found)
}
