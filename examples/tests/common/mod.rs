//! Running an example binary as a child process against the test broker.
#![allow(dead_code, unreachable_pub)]

pub mod instances;
pub mod scrape;

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running example; killed when dropped.
pub struct App {
    child: Child,
    log: std::path::PathBuf,
}

impl App {
    /// Starts `binary` with `args`; its stderr goes to a log file next to the state.
    pub fn start(binary: &str, args: &[String], log: &Path) -> std::io::Result<Self> {
        let err = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        let child = Command::new(binary)
            .args(args)
            // RIVULET_APP_LOG: the apps' log filter, for diagnosis
            // (`info,librdkafka=debug` with `--config producer.debug=…`).
            .env("RUST_LOG", std::env::var("RIVULET_APP_LOG").unwrap_or_else(|_| "info,librdkafka=warn".to_owned()))
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()?;
        Ok(Self { child, log: log.to_path_buf() })
    }

    /// SIGKILL: no clean shutdown, no final commit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The tail of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The arguments every example gets in tests: the real broker, a unique
/// application id, a private state directory, fast commits and failure detection.
pub fn base_args(app_id: &str, state_dir: &Path) -> Vec<String> {
    [
        "--bootstrap-servers",
        &integration_tests::bootstrap_servers(),
        "--application-id",
        app_id,
        "--state-dir",
        &state_dir.display().to_string(),
        "--config",
        "consumer.session.timeout.ms=6000",
        "--config",
        "consumer.heartbeat.interval.ms=1000",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// `flag value` pairs as arguments.
pub fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(f, v)| [f.to_string(), v.to_string()]).collect()
}

// ---------------------------------------------------------------------------
// What the chaos tests (chaos.rs) add: brokers of scripts/kafka.sh by instance,
// clients on any broker, an incremental reader of word counts, process control.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// What the helpers return.
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

impl App {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its exit status, if it has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (a clean stop), then waits up to `timeout` for it to exit;
    /// `None` if it did not (it is then still running).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exit_status() {
            return Some(status);
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        self.wait_exit(timeout)
    }

    /// Its whole log (stderr), without terminal colours.
    pub fn log_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last `n` lines of its log that say something (see [`log_events`]),
    /// a run of lines that differ only in their timestamps shown once.
    pub fn tail(&self, n: usize) -> String {
        let text = self.log_text();
        let mut lines: Vec<String> = Vec::new();
        let mut repeats = 0;
        let mut last_text = "";
        for line in log_events(&text) {
            // `2026-12-02T04:59:47.712141Z  INFO …`: the text after the timestamp.
            let body = line.get(28..).filter(|_| line.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(line);
            if body == last_text {
                repeats += 1;
                continue;
            }
            if repeats > 0 {
                lines.push(format!("    (the line above {repeats} more times)"));
                repeats = 0;
            }
            last_text = body;
            lines.push(line.to_owned());
        }
        if repeats > 0 {
            lines.push(format!("    (the line above {repeats} more times)"));
        }
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Where its log is.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The lines of an example's log that say something: without the logged
/// topology description and librdkafka's complaints that it cannot connect
/// (a broker outage makes hundreds).
pub fn log_events(text: &str) -> Vec<&str> {
    let mut in_topology = false;
    let mut out = Vec::new();
    for line in text.lines() {
        // A `tracing` event starts with its timestamp; the topology
        // description follows the event that ends in "topology:".
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            in_topology = line.ends_with("topology:");
        } else if in_topology {
            continue;
        }
        if !is_connection_noise(line) {
            out.push(line);
        }
    }
    out
}

/// A log line that only says a broker cannot be reached.
pub fn is_connection_noise(line: &str) -> bool {
    line.contains("Connect to ipv4") || line.contains("BrokerTransportFailure (Local: Broker transport failure): ")
}

/// The workspace's `scripts/` directory.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("scripts")
}

/// Runs `scripts/kafka.sh --instance INSTANCE ARGS…`; its stdout, trimmed.
pub fn kafka_sh(instance: &str, args: &[&str]) -> Res<String> {
    let out = Command::new("bash")
        .arg(scripts_dir().join("kafka.sh"))
        .arg("--instance")
        .arg(instance)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "scripts/kafka.sh --instance {instance} {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A broker instance of `scripts/kafka.sh` that a test may take down and
/// bring back, held exclusively: other processes (another `cargo test`, a
/// `scripts/chaos.sh` run, `scripts/test.sh` stopping it) wait on its lock
/// file. Dropped while down, it is brought back up.
pub struct Broker {
    instance: String,
    servers: String,
    down: bool,
    /// Holds the flock; closing it releases the lock.
    _lock: std::fs::File,
}

impl Broker {
    /// Takes the instance's lock (waiting for whoever holds it), then
    /// starts the instance unless it is running.
    pub fn start(instance: &str) -> Res<Self> {
        let path = kafka_sh(instance, &["lockfile"])?;
        let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        if lock.try_lock().is_err() {
            eprintln!("waiting for the lock on the `{instance}` broker ({path}): another process uses it");
            lock.lock()?;
        }
        kafka_sh(instance, &["start"])?;
        let servers = kafka_sh(instance, &["address"])?;
        Ok(Self { instance: instance.to_owned(), servers, down: false, _lock: lock })
    }

    /// Its bootstrap address.
    pub fn servers(&self) -> &str {
        &self.servers
    }

    /// Takes it down, keeping its data: SIGTERM and wait (a controlled
    /// shutdown), or SIGKILL when `hard`.
    pub fn down(&mut self, hard: bool) -> Res<()> {
        self.down = true;
        kafka_sh(&self.instance, if hard { &["down", "--hard"] } else { &["down"] })?;
        Ok(())
    }

    /// Starts it again on its data; returns once it answers metadata requests.
    pub fn up(&mut self) -> Res<()> {
        kafka_sh(&self.instance, &["up"])?;
        self.down = false;
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.down {
            let _ = kafka_sh(&self.instance, &["up"]);
        }
    }
}

/// A client config for the broker at `servers`.
pub fn client_on(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    config
}

/// Creates `topic` with `partitions` partitions on `servers` and waits until
/// every partition has a leader.
pub fn create_topic_on(servers: &str, topic: &str, partitions: i32) -> Res<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = client_on(servers).create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let results = rt
        .block_on(admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))))?;
    for result in results {
        if let Err((name, code)) = result {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(format!("creating topic {name} on {servers}: {code}").into());
            }
        }
    }
    let expected = usize::try_from(partitions)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = admin.inner().fetch_metadata(Some(topic), Duration::from_secs(5)).ok().is_some_and(|m| {
            m.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() == expected
                    && t.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("topic {topic} on {servers} has no leaders after 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `lines` as values (no key) to `topic` on `servers` with an
/// idempotent producer, in order, and waits for every ack. Records get the
/// time they are sent as their timestamp: anything much older would be
/// deleted by the broker's time retention (7 days) at its next check,
/// possibly before the app has read it.
pub fn produce_lines(servers: &str, topic: &str, lines: &[String]) -> Res<()> {
    use rdkafka::error::KafkaError;
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    use rdkafka::types::RDKafkaErrorCode;
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = client_on(servers)
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    for line in lines {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis();
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(topic).payload(line.as_bytes()).timestamp(i64::try_from(now)?);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// The words of `line` as the word-count contract defines them: split on
/// anything that is not a letter or digit, lowercased.
pub fn contract_words(line: &str) -> impl Iterator<Item = String> + '_ {
    line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

/// A read_committed reader of a word-count output topic that keeps what it
/// read: every word's counts in order (one word lives in one partition, so
/// that order is the order in which they were committed).
pub struct CountsReader {
    consumer: BaseConsumer,
    servers: String,
    topic: String,
    partitions: Vec<i32>,
    /// Each word's counts, in order.
    pub counts: BTreeMap<String, Vec<u64>>,
    /// Records read.
    pub records: usize,
    /// Values that are not decimal counts (key, value).
    pub malformed: Vec<(String, String)>,
    /// Partition → the next offset to read (where a new client resumes).
    next: BTreeMap<i32, i64>,
    /// When a record last arrived (or the client was last replaced).
    last_record: Instant,
}

/// How long a reader waits without a record before it replaces its client:
/// after a broker restart librdkafka can keep a topic's partitions as
/// unknown for minutes while a new client reads them at once.
const READER_IDLE: Duration = Duration::from_secs(20);

impl CountsReader {
    /// Reads `topic` on `servers` from the beginning of all its partitions.
    pub fn new(servers: &str, topic: &str) -> Res<Self> {
        let consumer = Self::client(servers)?;
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            .unwrap_or_default();
        if partitions.is_empty() {
            return Err(format!("topic {topic} has no partitions on {servers}").into());
        }
        let mut tpl = TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        Ok(Self {
            consumer,
            servers: servers.to_owned(),
            topic: topic.to_owned(),
            partitions,
            counts: BTreeMap::new(),
            records: 0,
            malformed: Vec::new(),
            next: BTreeMap::new(),
            last_record: Instant::now(),
        })
    }

    fn client(servers: &str) -> Res<BaseConsumer> {
        Ok(client_on(servers)
            .set("group.id", integration_tests::unique_name("chaos-reader"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?)
    }

    /// With nothing read for [`READER_IDLE`], a new client takes over where
    /// this one stands.
    fn replace_client_when_idle(&mut self) -> Res<()> {
        if self.last_record.elapsed() < READER_IDLE {
            return Ok(());
        }
        let consumer = Self::client(&self.servers)?;
        let mut tpl = TopicPartitionList::new();
        for p in &self.partitions {
            let offset = self.next.get(p).map_or(Offset::Beginning, |&o| Offset::Offset(o));
            tpl.add_partition_offset(&self.topic, *p, offset)?;
        }
        consumer.assign(&tpl)?;
        self.consumer = consumer;
        self.last_record = Instant::now();
        Ok(())
    }

    /// Reads what arrives within about `within` (at most a few thousand records).
    pub fn poll(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for _ in 0..5_000 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(m)) => {
                    self.records += 1;
                    self.next.insert(m.partition(), m.offset() + 1);
                    self.last_record = Instant::now();
                    let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                    let value = m.payload().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
                    match value.parse::<u64>() {
                        Ok(n) => self.counts.entry(key).or_default().push(n),
                        Err(_) => self.malformed.push((key, value)),
                    }
                }
                // Transport errors while a broker is down: the consumer reconnects.
                Some(Err(_)) | None => {
                    if left.is_zero() {
                        return;
                    }
                }
            }
        }
    }

    /// Reads until `done` holds, checking `alive` (the apps still run, say)
    /// as it goes; fails after `timeout` or as soon as `alive` fails.
    pub fn wait(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&Self) -> bool,
        mut alive: impl FnMut() -> Result<(), String>,
    ) -> Res<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(Duration::from_millis(200));
            if done(self) {
                return Ok(());
            }
            self.replace_client_when_idle()?;
            alive().map_err(|e| format!("while waiting for {what}: {e}"))?;
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what} ({} records read; {})",
                    self.records,
                    self.where_it_stands()
                )
                .into());
            }
        }
    }

    /// Reads everything committed so far: until its position reaches the
    /// last stable offset of every partition (what a read_committed
    /// consumer is told is the end). A transactional writer ends a partition
    /// with a commit marker that the position may stop short of: one short
    /// of the end counts as the end.
    pub fn drain(&mut self, timeout: Duration) -> Res<()> {
        let mut ends = Vec::new();
        // A client of its own: this one's metadata may be stale (see READER_IDLE).
        let probe = Self::client(&self.servers)?;
        for p in &self.partitions {
            let (_, high) = probe.fetch_watermarks(&self.topic, *p, Duration::from_secs(10))?;
            ends.push((*p, high));
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(Duration::from_millis(200));
            self.replace_client_when_idle()?;
            let position = self.consumer.position()?;
            let at_end = ends.iter().all(|(p, end)| {
                *end <= 0
                    || position
                        .find_partition(&self.topic, *p)
                        .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= *end - 1))
            });
            if at_end {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!("could not read {} to its end {ends:?} within {timeout:?}", self.topic).into());
            }
        }
    }

    /// For each partition: the reader's position, the last stable offset
    /// (where a read_committed reader must stop: an open transaction holds
    /// it back) and the high watermark.
    pub fn where_it_stands(&self) -> String {
        let uncommitted: Option<BaseConsumer> =
            client_on(&self.servers).set("group.id", integration_tests::unique_name("chaos-probe")).create().ok();
        let position = self.consumer.position().ok();
        let parts: Vec<String> = self
            .partitions
            .iter()
            .map(|p| {
                let pos = position
                    .as_ref()
                    .and_then(|l| l.find_partition(&self.topic, *p))
                    .map_or_else(|| "?".to_owned(), |e| format!("{:?}", e.offset()));
                let lso = self.consumer.fetch_watermarks(&self.topic, *p, Duration::from_secs(5)).map(|w| w.1);
                let high = uncommitted
                    .as_ref()
                    .map(|c| c.fetch_watermarks(&self.topic, *p, Duration::from_secs(5)).map(|w| w.1));
                format!("partition {p}: position {pos}, last stable offset {lso:?}, high watermark {high:?}")
            })
            .collect();
        format!("{}: {}", self.topic, parts.join("; "))
    }

    /// Every word of `expected` has reached at least its expected count.
    pub fn reached(&self, expected: &BTreeMap<String, u64>) -> bool {
        expected.iter().all(|(w, n)| self.counts.get(w).and_then(|v| v.last()).is_some_and(|last| last >= n))
    }

    /// Exactly once: every expected word's last count is exact, each word's
    /// counts strictly increase, and no other word was counted.
    pub fn check_exact(&self, expected: &BTreeMap<String, u64>) -> Result<(), String> {
        let mut problems = Vec::new();
        for (word, n) in expected {
            match self.counts.get(word) {
                None => problems.push(format!("{word}: no count (expected {n})")),
                Some(values) => {
                    if values.last() != Some(n) {
                        problems.push(format!("{word}: final count {:?}, expected {n}", values.last()));
                    }
                    if let Some(w) = values.windows(2).find(|w| w[0] >= w[1]) {
                        problems.push(format!("{word}: counts not strictly increasing ({} then {})", w[0], w[1]));
                    }
                }
            }
        }
        for word in self.counts.keys().filter(|w| !expected.contains_key(*w)) {
            problems.push(format!("{word}: counted but never in the input ({:?})", self.counts[word]));
        }
        for (k, v) in &self.malformed {
            problems.push(format!("{k}: value {v:?} is not a count"));
        }
        Self::verdict(problems)
    }

    /// At least once: every expected word reached at least its count, and
    /// no other word was counted.
    pub fn check_at_least(&self, expected: &BTreeMap<String, u64>) -> Result<(), String> {
        let mut problems = Vec::new();
        for (word, n) in expected {
            let last = self.counts.get(word).and_then(|v| v.last());
            if last.is_none_or(|l| l < n) {
                problems.push(format!("{word}: final count {last:?}, expected at least {n}"));
            }
        }
        for word in self.counts.keys().filter(|w| !expected.contains_key(*w)) {
            problems.push(format!("{word}: counted but never in the input"));
        }
        Self::verdict(problems)
    }

    fn verdict(problems: Vec<String>) -> Result<(), String> {
        if problems.is_empty() {
            return Ok(());
        }
        let shown: Vec<&str> = problems.iter().take(20).map(String::as_str).collect();
        Err(format!("{} problems, the first ones:\n  {}", problems.len(), shown.join("\n  ")))
    }
}

/// The offsets group `group` has committed on `topic`'s partitions
/// (`None` where it has none).
pub fn committed_offsets(servers: &str, group: &str, topic: &str, partitions: i32) -> Res<Vec<Option<i64>>> {
    let consumer: BaseConsumer =
        client_on(servers).set("group.id", group).set("enable.auto.commit", "false").create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok((0..partitions)
        .map(|p| match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect())
}

/// As [`base_args`], on the broker at `servers`.
pub fn base_args_on(servers: &str, app_id: &str, state_dir: &Path) -> Vec<String> {
    let mut a = base_args(app_id, state_dir);
    if let Some(i) = a.iter().position(|x| x == "--bootstrap-servers") {
        a[i + 1] = servers.to_owned();
    }
    a
}

/// A small deterministic xorshift generator: the tests' random moments and
/// input, repeatable from a seed.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}
