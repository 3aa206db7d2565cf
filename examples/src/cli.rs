//! What every example binary shares: its command line, the embedded default
//! (a mock cluster with a demo-data generator and a printer of results), a
//! status line, and a clean stop on Ctrl-C, SIGTERM or `--duration`.
//!
//! Every binary reads and writes its external topics as JSON by default, or
//! as Avro through a schema registry with `--format avro --schema-registry
//! URL` (see [`crate::format`]); `--schema-registry-config KEY=VALUE` passes
//! the Confluent serializers' settings (`basic.auth.user.info`,
//! `auto.register.schemas`, …) to [`SchemaRegistryConfig::set`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streams_dsl::internal_topics::InternalTopicSpec;
use streams_dsl::runtime::{EmbeddedCluster, KafkaStreams, State};
use streams_dsl::serde::{GenericAvroSerde, SchemaRegistryClient, SchemaRegistryConfig};
use streams_dsl::{ConfigError, Headers, Serde, SerdeError, SerdeRef, StreamsConfig, Topology};

use crate::format::Format;

/// A topic an example reads or writes, with its default name.
#[derive(Debug, Clone)]
pub struct TopicArg {
    /// The command-line flag (`--input-topic`).
    pub flag: &'static str,
    /// The default name.
    pub default: &'static str,
    /// Whether it is compacted (a table's topic).
    pub compacted: bool,
}

/// A numeric option of one example (`--max-count`).
#[derive(Debug, Clone)]
pub struct NumberArg {
    /// The flag.
    pub flag: &'static str,
    /// What it means.
    pub help: &'static str,
    /// The default.
    pub default: f64,
}

/// An extra text option of an example (no default: absent unless given).
#[derive(Debug, Clone)]
pub struct TextArg {
    /// The flag.
    pub flag: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// What an example declares about itself.
#[derive(Debug, Clone)]
pub struct AppSpec {
    /// The binary's name, also the default `application.id`.
    pub name: &'static str,
    /// One paragraph for `--help`.
    pub about: &'static str,
    /// What changes with `--format avro`, for `--help`: the Avro records of
    /// the topics.
    pub avro: &'static str,
    /// Input topics.
    pub inputs: Vec<TopicArg>,
    /// Output topics.
    pub outputs: Vec<TopicArg>,
    /// Extra numeric options.
    pub numbers: Vec<NumberArg>,
    /// Extra text options.
    pub texts: Vec<TextArg>,
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub struct Args {
    /// `--bootstrap-servers`; `None` runs on the embedded cluster.
    pub bootstrap_servers: Option<String>,
    /// `--application-id`.
    pub application_id: String,
    /// `--state-dir`; default `<tmp>/rivulet-examples` on a real cluster, a
    /// private directory removed at exit on the embedded one (whose topics
    /// vanish with the process).
    pub state_dir: Option<PathBuf>,
    /// Topic names by flag.
    pub topics: BTreeMap<&'static str, String>,
    /// `--processing-guarantee`.
    pub processing_guarantee: Option<String>,
    /// `--threads`.
    pub threads: usize,
    /// `--duration`: stop after this long.
    pub duration: Option<Duration>,
    /// `--commit-interval-ms`.
    pub commit_interval_ms: Option<u64>,
    /// `--partitions`: for topics the example creates.
    pub partitions: i32,
    /// `--rate`: demo records per second on the embedded cluster.
    pub rate: u32,
    /// Extra numeric options by flag.
    pub numbers: BTreeMap<&'static str, f64>,
    /// Extra text options given, by flag.
    pub texts: BTreeMap<&'static str, String>,
    /// `--config KEY=VALUE`: any StreamsConfig key (including `consumer.*` /
    /// `producer.*` pass-through), applied last.
    pub config: Vec<(String, String)>,
    /// `--format` with, for Avro, the registry client that `--schema-registry`
    /// and `--schema-registry-config` describe.
    pub format: Format,
}

impl Args {
    /// The topic given for `flag` (or its default).
    pub fn topic(&self, flag: &str) -> &str {
        self.topics.get(flag).map_or("", String::as_str)
    }

    /// The text given for `flag`, if any.
    pub fn text(&self, flag: &str) -> Option<&str> {
        self.texts.get(flag).map(String::as_str)
    }

    /// The number given for `flag` (or its default).
    pub fn number(&self, flag: &str) -> f64 {
        self.numbers.get(flag).copied().unwrap_or(0.0)
    }
}

fn usage(spec: &AppSpec) -> String {
    let mut s = format!(
        "{}\n\n{}\n\nWith --format avro: {}\n\nUSAGE: {} [OPTIONS]\n\nOPTIONS:\n",
        spec.name, spec.about, spec.avro, spec.name
    );
    let mut line = |flag: &str, help: &str| s.push_str(&format!("  {flag:<34} {help}\n"));
    line(
        "--bootstrap-servers HOST:PORT",
        "run against this Kafka cluster; without it, an embedded cluster fed with demo data",
    );
    line("--application-id ID", "application.id: consumer group and internal-topic prefix");
    line("--state-dir DIR", "where local state lives (default: <tmp>/rivulet-examples; embedded: private)");
    for t in spec.inputs.iter().chain(&spec.outputs) {
        line(&format!("{} NAME", t.flag), &format!("default `{}`", t.default));
    }
    line(
        "--processing-guarantee G",
        "exactly_once_v2 (default on a real cluster) or at_least_once (the embedded cluster's only mode)",
    );
    line("--threads N", "stream threads (default 1)");
    line("--commit-interval-ms MS", "commit.interval.ms (default 100 under exactly-once, else 30000)");
    line("--partitions N", "partitions of topics this example creates when missing (default 4)");
    line("--duration SECS", "stop cleanly after this long (default: run until Ctrl-C)");
    line("--rate N", "embedded cluster only: demo records per second (default 20)");
    line("--config KEY=VALUE", "any StreamsConfig key, e.g. consumer.session.timeout.ms=10000 (repeatable)");
    line(
        "--format json|avro",
        "value format of the external topics (default json); avro: Confluent-framed Avro, schemas under \
         <topic>-value in the registry",
    );
    line("--schema-registry URL", "the schema registry (Confluent-compatible; required with --format avro)");
    line(
        "--schema-registry-config KEY=VALUE",
        "a Confluent serializer setting, e.g. basic.auth.user.info=USER:PASSWORD or auto.register.schemas=false \
         (repeatable)",
    );
    for n in &spec.numbers {
        line(&format!("{} N", n.flag), &format!("{} (default {})", n.help, n.default));
    }
    for t in &spec.texts {
        line(&format!("{} TEXT", t.flag), t.help);
    }
    line("--help", "this text");
    s.push_str(
        "\nUndecodable input records (bad JSON; in Avro: an unknown schema id, no magic byte 0, a truncated or \
         incompatible datum) follow default.deserialization.exception.handler: log_and_fail (default), \
         log_and_continue, or dead_letter with --config errors.dead.letter.queue.topic.name=TOPIC (the record as \
         read, with the error in `__streams.errors.*` headers).\n",
    );
    s.push_str(
        "Without --bootstrap-servers and with --format avro, the demo data is written as Avro through the given \
         registry.\n",
    );
    s.push_str("\nLogs go through `tracing`; set RUST_LOG (default info).\n");
    s
}

/// Why the command line was refused.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses `args` (without the program name) for `spec`. `Ok(None)`: `--help` was printed.
pub fn parse(spec: &AppSpec, args: impl IntoIterator<Item = String>) -> Result<Option<Args>, UsageError> {
    let mut out = Args {
        bootstrap_servers: None,
        application_id: spec.name.to_owned(),
        state_dir: None,
        topics: spec.inputs.iter().chain(&spec.outputs).map(|t| (t.flag, t.default.to_owned())).collect(),
        processing_guarantee: None,
        threads: 1,
        duration: None,
        commit_interval_ms: None,
        partitions: 4,
        rate: 20,
        numbers: spec.numbers.iter().map(|n| (n.flag, n.default)).collect(),
        texts: BTreeMap::new(),
        config: Vec::new(),
        format: Format::Json,
    };
    let mut avro = false;
    let mut registry_url: Option<String> = None;
    let mut registry_config: Vec<(String, String)> = Vec::new();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            print!("{}", usage(spec));
            return Ok(None);
        }
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (flag, None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(UsageError(format!("`{flag}` needs a value; see --help"))),
        };
        let bad = |what: &str| UsageError(format!("invalid value `{value}` for `{flag}`: expected {what}"));
        match flag.as_str() {
            "--bootstrap-servers" => out.bootstrap_servers = Some(value.clone()),
            "--application-id" => out.application_id = value.clone(),
            "--state-dir" => out.state_dir = Some(PathBuf::from(&value)),
            "--processing-guarantee" => match value.as_str() {
                "exactly_once_v2" | "at_least_once" => out.processing_guarantee = Some(value.clone()),
                _ => return Err(bad("exactly_once_v2 or at_least_once")),
            },
            "--threads" => out.threads = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a number >= 1"))?,
            "--duration" => {
                out.duration = Some(Duration::from_secs_f64(
                    value.parse::<f64>().ok().filter(|s| *s > 0.0).ok_or_else(|| bad("seconds > 0"))?,
                ))
            }
            "--commit-interval-ms" => {
                out.commit_interval_ms = Some(value.parse().map_err(|_| bad("milliseconds"))?);
            }
            "--partitions" => {
                out.partitions = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a number >= 1"))?
            }
            "--config" => {
                let (k, v) = value.split_once('=').ok_or_else(|| bad("KEY=VALUE"))?;
                out.config.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            "--rate" => out.rate = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("a number >= 1"))?,
            "--format" => match value.to_ascii_lowercase().as_str() {
                "json" => avro = false,
                "avro" => avro = true,
                _ => return Err(bad("json or avro")),
            },
            "--schema-registry" => {
                if value.trim().is_empty() {
                    return Err(bad("a URL such as http://localhost:8081"));
                }
                registry_url = Some(value.trim().to_owned());
            }
            "--schema-registry-config" => {
                // The value may be a credential: it is not echoed.
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    UsageError(format!(
                        "invalid value for `{flag}`: expected KEY=VALUE, e.g. auto.register.schemas=false"
                    ))
                })?;
                registry_config.push((k.trim().to_owned(), v.to_owned()));
            }
            other => {
                if let Some(t) = spec.inputs.iter().chain(&spec.outputs).find(|t| t.flag == other) {
                    out.topics.insert(t.flag, value.clone());
                } else if let Some(t) = spec.texts.iter().find(|t| t.flag == other) {
                    out.texts.insert(t.flag, value.clone());
                } else if let Some(n) = spec.numbers.iter().find(|n| n.flag == other) {
                    out.numbers.insert(n.flag, value.parse().map_err(|_| bad("a number"))?);
                } else {
                    return Err(UsageError(format!("unknown option `{other}`; see --help")));
                }
            }
        }
    }
    if avro {
        out.format = Format::Avro(registry_client(registry_url, &registry_config)?);
    } else if registry_url.is_some() || !registry_config.is_empty() {
        tracing::warn!("--schema-registry and --schema-registry-config only apply to --format avro; ignored");
    }
    Ok(Some(out))
}

/// The registry client of `--schema-registry` and `--schema-registry-config`.
fn registry_client(url: Option<String>, settings: &[(String, String)]) -> Result<SchemaRegistryClient, UsageError> {
    let url = url.or_else(|| settings.iter().rev().find(|(k, _)| k == "schema.registry.url").map(|(_, v)| v.clone()));
    let Some(url) = url.filter(|u| !u.trim().is_empty()) else {
        return Err(UsageError(
            "`--format avro` needs `--schema-registry URL`: the Confluent-compatible schema registry holding the \
             topics' Avro schemas (e.g. --schema-registry http://localhost:8081)"
                .to_owned(),
        ));
    };
    let mut config = SchemaRegistryConfig::new(&url);
    for (key, value) in settings {
        config.set(key, value).map_err(|e| {
            UsageError(match e {
                ConfigError::Unknown { key, suggestion } => format!(
                    "unknown schema registry setting `{key}` in --schema-registry-config{}",
                    suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
                ),
                // Values are not echoed: they may be credentials.
                ConfigError::Invalid { key, expected, .. } => {
                    format!("invalid value for schema registry setting `{key}`: expected {expected}")
                }
                other => format!("--schema-registry-config: {other}"),
            })
        })?;
    }
    if config.urls.is_empty() {
        return Err(UsageError(format!("`--schema-registry`: no URL in `{url}`")));
    }
    Ok(SchemaRegistryClient::new(config))
}

/// A demo record: (topic flag, key, value, timestamp ms).
pub type DemoRecord = (&'static str, Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// Produces demo input on the embedded cluster until told to stop.
pub trait DemoGenerator: Send + 'static {
    /// The next record, or why its value could not be encoded (the
    /// registry is unreachable, say).
    fn next(&mut self, now_ms: i64) -> Result<DemoRecord, SerdeError>;
}

/// Encodes a demo generator's values as an input topic holds them (JSON or
/// Avro): the value serde of that topic.
pub struct DemoEncoder<T> {
    topic: String,
    serde: SerdeRef<T>,
}

impl<T> std::fmt::Debug for DemoEncoder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoEncoder").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl<T: 'static> DemoEncoder<T> {
    /// Values of `topic`, encoded with `serde`.
    pub fn new(topic: &str, serde: SerdeRef<T>) -> Self {
        Self { topic: topic.to_owned(), serde }
    }

    /// The bytes of `value`.
    pub fn encode(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.serde.serialize(&self.topic, &mut Headers::new(), value)
    }
}

/// Turns an output record into a printable line.
pub type Printer = fn(&str, Option<&[u8]>, Option<&[u8]>) -> String;

/// Prints `topic  key -> value` with keys and values as UTF-8 text (Avro
/// values reach it decoded, as JSON text).
pub fn print_record(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let text = |b: Option<&[u8]>| b.map_or_else(|| "null".to_owned(), |b| String::from_utf8_lossy(b).into_owned());
    format!("{topic}  {:>14} -> {}", text(key), text(value))
}

/// A small deterministic random source for demo data.
#[derive(Debug, Clone)]
pub struct DemoRandom(u64);

impl DemoRandom {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Installs the `tracing` subscriber (`RUST_LOG`, default info).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,librdkafka=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// Watches for Ctrl-C or SIGTERM on a thread of its own and sets `stop`
/// when one arrives.
pub fn watch_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut term) = signal(SignalKind::terminate()) else { return };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
        });
        tracing::info!("signal received; closing");
        stop.store(true, Ordering::Release);
    });
}

/// Runs an example: builds its topology from the parsed arguments, starts it
/// on the chosen cluster, prints a status line every few seconds, and stops
/// cleanly. Exits the process with status 2 on a usage error, 1 on failure.
pub fn run(
    spec: &AppSpec,
    build: impl FnOnce(&Args) -> Result<Topology, Box<dyn std::error::Error>>,
    generator: impl FnOnce(&Args) -> Result<Box<dyn DemoGenerator>, Box<dyn std::error::Error>>,
    printer: Printer,
) {
    init_logging();
    let args = match parse(spec, std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            eprintln!("{}: {e}", spec.name);
            std::process::exit(2);
        }
    };
    if let Err(e) = run_args(spec, &args, build, generator, printer) {
        eprintln!("{}: {e}", spec.name);
        std::process::exit(1);
    }
}

fn run_args(
    spec: &AppSpec,
    args: &Args,
    build: impl FnOnce(&Args) -> Result<Topology, Box<dyn std::error::Error>>,
    generator: impl FnOnce(&Args) -> Result<Box<dyn DemoGenerator>, Box<dyn std::error::Error>>,
    printer: Printer,
) -> Result<(), Box<dyn std::error::Error>> {
    let (servers, embedded) = match &args.bootstrap_servers {
        Some(s) => (s.clone(), None),
        None => {
            let cluster = Arc::new(EmbeddedCluster::start()?);
            (cluster.bootstrap_servers().to_owned(), Some(cluster))
        }
    };
    let mut config = StreamsConfig::new(args.application_id.clone(), servers.clone());
    let private_dir = (embedded.is_some() && args.state_dir.is_none())
        .then(|| std::env::temp_dir().join(format!("rivulet-examples-{}", std::process::id())));
    config.state_dir = match (&args.state_dir, &private_dir) {
        (Some(d), _) | (None, Some(d)) => d.clone(),
        (None, None) => std::env::temp_dir().join("rivulet-examples"),
    };
    let _cleanup = private_dir.map(RemoveOnDrop);
    let guarantee = args
        .processing_guarantee
        .clone()
        .unwrap_or_else(|| if embedded.is_some() { "at_least_once" } else { "exactly_once_v2" }.to_owned());
    if embedded.is_some() && guarantee == "exactly_once_v2" {
        return Err("the embedded cluster cannot do exactly-once (it shows aborted records to read_committed \
                    readers); use --processing-guarantee at_least_once or --bootstrap-servers"
            .into());
    }
    config.set("processing.guarantee", &guarantee)?;
    config.set("num.stream.threads", &args.threads.to_string())?;
    let commit = args.commit_interval_ms.or(embedded.as_ref().map(|_| 1000));
    if let Some(ms) = commit {
        config.set("commit.interval.ms", &ms.to_string())?;
    }
    for (k, v) in &args.config {
        config.set(k, v)?;
    }
    let topology = build(args)?;
    if let Some(registry) = args.format.registry() {
        tracing::info!(registry = %registry.config().url(), "external topics in Avro (Confluent wire format)");
    }
    tracing::info!("topology:\n{}", topology.describe());
    let mut streams = KafkaStreams::new(topology, config)?;
    if let Some(cluster) = &embedded {
        streams = streams.with_embedded_cluster(Arc::clone(cluster));
    }
    let topics: Vec<InternalTopicSpec> = spec
        .inputs
        .iter()
        .chain(&spec.outputs)
        .map(|t| InternalTopicSpec {
            name: args.topic(t.flag).to_owned(),
            partitions: args.partitions,
            config: if t.compacted {
                BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())])
            } else {
                BTreeMap::new()
            },
        })
        .collect();
    streams.create_topics_if_missing(&topics)?;

    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(Arc::clone(&stop));
    let mut helpers = Vec::new();
    if embedded.is_some() {
        let topic_names: BTreeMap<&'static str, String> =
            spec.inputs.iter().map(|t| (t.flag, args.topic(t.flag).to_owned())).collect();
        helpers.push(demo::spawn_generator(&servers, topic_names, generator(args)?, args.rate, Arc::clone(&stop))?);
        let outputs: Vec<String> = spec.outputs.iter().map(|t| args.topic(t.flag).to_owned()).collect();
        let avro = args.format.registry().map(GenericAvroSerde::new);
        helpers.push(demo::spawn_printer(&servers, outputs, printer, avro, Arc::clone(&stop))?);
        println!(
            "{}: running on an embedded cluster with {} demo data; results print below. Ctrl-C to stop.",
            spec.name,
            args.format.name()
        );
    }
    streams.start()?;
    let started = Instant::now();
    let mut last_status = Instant::now();
    loop {
        if stop.load(Ordering::Acquire) || args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        if matches!(streams.state(), State::Error | State::PendingError | State::NotRunning) {
            break;
        }
        // Wakes on any state change, at the latest after a second.
        streams.wait_for_state(State::Error, Duration::from_millis(250));
        if last_status.elapsed() >= Duration::from_secs(5) {
            last_status = Instant::now();
            let m = streams.metrics();
            let restoring = if m.records_restored < m.records_to_restore {
                format!(" restoring={}/{}", m.records_restored, m.records_to_restore)
            } else {
                String::new()
            };
            let waiting = m
                .waiting_for_cluster_since
                .and_then(|t| t.elapsed().ok())
                .map(|d| format!(" waiting-for-cluster={}s", d.as_secs()))
                .unwrap_or_default();
            let recoveries = if m.aborted_transactions + m.retries + m.rejoins + m.replaced_threads > 0 {
                format!(
                    " aborted={} retries={} blocked={}ms rejoins={} replaced-threads={}",
                    m.aborted_transactions,
                    m.retries,
                    m.blocked.as_millis(),
                    m.rejoins,
                    m.replaced_threads
                )
            } else {
                String::new()
            };
            tracing::info!(
                "status: state={} in={} processed={} out={} lag={} dropped={} skipped={} dead-lettered={} commits={}{restoring}{recoveries}{waiting}",
                streams.state(),
                m.records_consumed,
                m.records_processed,
                m.records_produced,
                m.consumer_lag,
                m.records_dropped,
                m.records_skipped,
                m.records_dead_lettered,
                m.commits
            );
        }
    }
    stop.store(true, Ordering::Release);
    streams.close();
    for h in helpers {
        let _ = h.join();
    }
    match streams.error() {
        Some(e) => Err(format!("stopped after an error: {e}").into()),
        None => {
            let m = streams.metrics();
            tracing::info!(processed = m.records_processed, produced = m.records_produced, "stopped cleanly");
            Ok(())
        }
    }
}

/// Removes a private state directory when the run ends.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

mod demo {
    //! The embedded cluster's demo-data generator and result printer.

    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    use rdkafka::ClientConfig;

    pub(super) fn spawn_generator(
        servers: &str,
        topics: BTreeMap<&'static str, String>,
        mut generator: Box<dyn DemoGenerator>,
        rate: u32,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, Box<dyn std::error::Error>> {
        let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .create()?;
        Ok(std::thread::spawn(move || {
            let period = Duration::from_secs_f64(1.0 / f64::from(rate));
            let mut next = Instant::now();
            let mut failures = 0u64;
            while !stop.load(Ordering::Acquire) {
                let (flag, key, value, ts) = match generator.next(now_ms()) {
                    Ok(record) => record,
                    Err(e) => {
                        // Say it now and then, not at every record.
                        if failures.is_power_of_two() {
                            tracing::warn!(error = %e, failures, "demo generator could not encode a record");
                        }
                        failures += 1;
                        std::thread::park_timeout(Duration::from_millis(500));
                        continue;
                    }
                };
                let Some(topic) = topics.get(flag) else { continue };
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).timestamp(ts);
                if let Some(k) = &key {
                    record = record.key(k.as_slice());
                }
                if let Some(v) = &value {
                    record = record.payload(v.as_slice());
                }
                if let Err((e, _)) = producer.send(record) {
                    tracing::warn!(error = %e, "demo generator could not send");
                }
                // The generator's pace is what it waits for, not a condition.
                next += period;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::park_timeout(wait);
                }
            }
            let _ = producer.flush(Duration::from_secs(5));
        }))
    }

    /// With `avro`, Confluent-framed values are printed decoded, as JSON.
    pub(super) fn spawn_printer(
        servers: &str,
        topics: Vec<String>,
        printer: Printer,
        avro: Option<GenericAvroSerde>,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, Box<dyn std::error::Error>> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("group.id", "rivulet-example-printer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names)?;
        Ok(std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                    let decoded = avro.as_ref().and_then(|serde| decode_avro(serde, m.topic(), m.payload()));
                    let value = decoded.as_deref().or(m.payload());
                    println!("{}", printer(m.topic(), m.key(), value));
                }
            }
        }))
    }

    /// A framed Avro value as JSON text; `None` for anything else (the
    /// decimal strings of revenue-by-tier, say).
    fn decode_avro(serde: &GenericAvroSerde, topic: &str, value: Option<&[u8]>) -> Option<Vec<u8>> {
        let bytes = value.filter(|v| v.len() > 5 && v[0] == 0)?;
        let value = serde.deserialize(topic, &Headers::new(), Some(bytes)).ok()?;
        let json = serde_json::Value::try_from(value).ok()?;
        serde_json::to_vec(&json).ok()
    }
}
