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
    /// `--http HOST:PORT`: the built-in HTTP server's address (`http.listen`).
    pub http: Option<String>,
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

/// The options every example shares; each example adds its topics and its
/// own options to these (see [`AppSpec`]).
#[derive(Debug, Clone, clap::Args)]
struct CommonArgs {
    /// Run against this Kafka cluster; without it, an embedded cluster fed with demo data
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap_servers: Option<String>,
    /// application.id: consumer group and internal-topic prefix (default: the binary's name)
    #[arg(long, value_name = "ID")]
    application_id: Option<String>,
    /// Where local state lives (default: <tmp>/rivulet-examples; embedded: private)
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// exactly_once_v2 (default on a real cluster) or at_least_once (the embedded cluster's only mode)
    #[arg(long, value_name = "G", value_parser = ["exactly_once_v2", "at_least_once"])]
    processing_guarantee: Option<String>,
    /// Stream threads
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// commit.interval.ms (default 100 under exactly-once, else 30000)
    #[arg(long, value_name = "MS")]
    commit_interval_ms: Option<u64>,
    /// Partitions of topics this example creates when missing
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// Stop cleanly after this long (default: run until Ctrl-C or SIGTERM)
    #[arg(long, value_name = "SECS", value_parser = parse_seconds, allow_negative_numbers = true)]
    duration: Option<Duration>,
    /// Embedded cluster only: demo records per second
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    rate: u32,
    /// Any StreamsConfig key, e.g. consumer.session.timeout.ms=10000 (repeatable)
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Serve /health/live, /health/ready, /metrics (Prometheus), /topology, /stores and queries of any key
    /// (/stores/{store}/keys/{key}, forwarded to the instance that holds it) here (http.listen)
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// Value format of the external topics; avro: Confluent-framed Avro, schemas under <topic>-value in the
    /// registry
    #[arg(long, value_name = "json|avro", default_value = "json", ignore_case = true, value_parser = ["json", "avro"])]
    format: String,
    /// The schema registry (Confluent-compatible; required with --format avro)
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    schema_registry: Option<String>,
    /// A Confluent serializer setting, e.g. basic.auth.user.info=USER:PASSWORD or auto.register.schemas=false
    /// (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_registry_setting)]
    schema_registry_config: Vec<(String, String)>,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| "expected seconds > 0".to_owned())
}

fn parse_key_value(value: &str) -> Result<(String, String), String> {
    let (k, v) = value.split_once('=').ok_or_else(|| "expected KEY=VALUE".to_owned())?;
    Ok((k.trim().to_owned(), v.trim().to_owned()))
}

fn parse_url(value: &str) -> Result<String, String> {
    let url = value.trim();
    if url.is_empty() {
        return Err("expected a URL such as http://localhost:8081".to_owned());
    }
    Ok(url.to_owned())
}

/// A registry setting; its value may be a credential, so it is kept as given
/// and never echoed.
fn parse_registry_setting(value: &str) -> Result<(String, String), String> {
    let (k, v) =
        value.split_once('=').ok_or_else(|| "expected KEY=VALUE, e.g. auto.register.schemas=false".to_owned())?;
    Ok((k.trim().to_owned(), v.to_owned()))
}

/// The argument id of a flag (`--input-topic` → `input-topic`).
fn arg_id(flag: &'static str) -> &'static str {
    flag.trim_start_matches('-')
}

/// The command line of `spec`: the shared options and the example's own.
fn command(spec: &AppSpec) -> clap::Command {
    use clap::{Arg, ArgAction, Args as _};
    // The shared options' own doc comment would become the about text: the
    // example's goes on after them.
    let mut cmd = CommonArgs::augment_args(clap::Command::new(spec.name)).about(spec.about).after_help(format!(
        "With --format avro: {}\n\nUndecodable input records (bad JSON; in Avro: an unknown schema id, no \
                 magic byte 0, a truncated or incompatible datum) follow default.deserialization.exception.handler: \
                 log_and_fail (default), log_and_continue, or dead_letter with --config \
                 errors.dead.letter.queue.topic.name=TOPIC (the record as read, with the error in \
                 `__streams.errors.*` headers).\nWithout --bootstrap-servers and with --format avro, the demo data \
                 is written as Avro through the given registry.\n\nLogs go through `tracing`; set RUST_LOG \
                 (default info).",
        spec.avro
    ));
    for t in spec.inputs.iter().chain(&spec.outputs) {
        let role = if spec.inputs.iter().any(|i| i.flag == t.flag) { "Input" } else { "Output" };
        cmd = cmd.arg(
            Arg::new(arg_id(t.flag))
                .long(arg_id(t.flag))
                .value_name("NAME")
                .default_value(t.default)
                .help(format!("{role} topic{}", if t.compacted { " (compacted)" } else { "" })),
        );
    }
    for n in &spec.numbers {
        cmd = cmd.arg(
            Arg::new(arg_id(n.flag))
                .long(arg_id(n.flag))
                .value_name("N")
                .help(n.help)
                .default_value(n.default.to_string())
                .allow_negative_numbers(true)
                .value_parser(clap::value_parser!(f64)),
        );
    }
    for t in &spec.texts {
        cmd = cmd.arg(Arg::new(arg_id(t.flag)).long(arg_id(t.flag)).value_name("TEXT").help(t.help));
    }
    cmd.arg(Arg::new("help").short('h').long("help").help("Print help").action(ArgAction::Help)).disable_help_flag(true)
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
    use clap::FromArgMatches as _;
    let argv = std::iter::once(spec.name.to_owned()).chain(args);
    let matches = match command(spec).try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) if matches!(e.kind(), clap::error::ErrorKind::DisplayHelp) => {
            // A closed pipe (`--help | head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), e.render().to_string().as_bytes());
            return Ok(None);
        }
        Err(e) => return Err(UsageError(e.render().to_string().trim_end().to_owned())),
    };
    let common = CommonArgs::from_arg_matches(&matches).map_err(|e| UsageError(e.render().to_string()))?;
    let topics = spec
        .inputs
        .iter()
        .chain(&spec.outputs)
        .map(|t| (t.flag, matches.get_one::<String>(arg_id(t.flag)).cloned().unwrap_or_else(|| t.default.to_owned())))
        .collect();
    let numbers = spec
        .numbers
        .iter()
        .map(|n| (n.flag, matches.get_one::<f64>(arg_id(n.flag)).copied().unwrap_or(n.default)))
        .collect();
    let texts = spec
        .texts
        .iter()
        .filter_map(|t| matches.get_one::<String>(arg_id(t.flag)).map(|v| (t.flag, v.clone())))
        .collect();
    let format = if common.format.eq_ignore_ascii_case("avro") {
        Format::Avro(registry_client(common.schema_registry, &common.schema_registry_config)?)
    } else {
        if common.schema_registry.is_some() || !common.schema_registry_config.is_empty() {
            tracing::warn!("--schema-registry and --schema-registry-config only apply to --format avro; ignored");
        }
        Format::Json
    };
    Ok(Some(Args {
        bootstrap_servers: common.bootstrap_servers,
        application_id: common.application_id.unwrap_or_else(|| spec.name.to_owned()),
        state_dir: common.state_dir,
        topics,
        processing_guarantee: common.processing_guarantee,
        threads: usize::from(common.threads),
        duration: common.duration,
        commit_interval_ms: common.commit_interval_ms,
        partitions: common.partitions,
        rate: common.rate,
        numbers,
        texts,
        config: common.config,
        http: common.http,
        format,
    }))
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

/// Sets `stop` when Ctrl-C (SIGINT) or SIGTERM arrives; the run loop sees
/// it within a quarter of a second and closes cleanly. A second one while
/// closing exits at once (status 1).
pub fn watch_signals(stop: &Arc<AtomicBool>) {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag before this signal sets it.
        let registered = signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(stop))
            .and_then(|_| signal_hook::flag::register(signal, Arc::clone(stop)));
        if let Err(e) = registered {
            tracing::warn!(signal, error = %e, "cannot watch the signal; stop with --duration or SIGKILL");
        }
    }
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
    if let Some(listen) = &args.http {
        config.set("http.listen", listen)?;
    }
    // A join's table updates and stream records can reach the join task
    // through two repartition topics at the same moment; waiting a little
    // for the other side keeps event-time order (Kafka Streams' setting).
    config.set("max.task.idle.ms", "500")?;
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
    watch_signals(&stop);
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
    if let Some(address) = streams.http_address() {
        println!("{}: HTTP on http://{address} (/health/ready, /metrics, /topology, /stores)", spec.name);
    }
    let started = Instant::now();
    let mut last_status = Instant::now();
    loop {
        if stop.load(Ordering::Acquire) {
            tracing::info!("signal received; closing");
            break;
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
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
            let standbys = if m.standby_tasks > 0 {
                format!(" standbys={} standby-lag={}", m.standby_tasks, m.standby_lag)
            } else {
                String::new()
            };
            tracing::info!(
                "status: state={} in={} processed={} out={} lag={} dropped={} skipped={} dead-lettered={} commits={}{restoring}{standbys}{recoveries}{waiting}",
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> AppSpec {
        AppSpec {
            name: "demo",
            about: "about",
            avro: "avro",
            inputs: vec![TopicArg { flag: "--input-topic", default: "in", compacted: false }],
            outputs: vec![TopicArg { flag: "--output-topic", default: "out", compacted: true }],
            numbers: vec![NumberArg { flag: "--max-count", help: "limit", default: 5.0 }],
            texts: vec![TextArg { flag: "--panic-on-word", help: "fault" }],
        }
    }

    fn parse_args(args: &[&str]) -> Result<Option<Args>, UsageError> {
        parse(&spec(), args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn defaults_and_every_kind_of_flag() {
        let a = parse_args(&[]).unwrap().unwrap();
        assert_eq!((a.application_id.as_str(), a.threads, a.partitions, a.rate), ("demo", 1, 4, 20));
        assert_eq!((a.topic("--input-topic"), a.topic("--output-topic")), ("in", "out"));
        assert_eq!(a.number("--max-count"), 5.0);
        assert_eq!(a.text("--panic-on-word"), None);
        assert!(matches!(a.format, Format::Json));

        let a = parse_args(&[
            "--threads=2",
            "--input-topic",
            "lines",
            "--max-count",
            "-1.5",
            "--panic-on-word=boom",
            "--config",
            "consumer.session.timeout.ms = 10000",
            "--duration",
            "1.5",
            "--processing-guarantee",
            "at_least_once",
            "--format",
            "JSON",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(a.threads, 2);
        assert_eq!(a.topic("--input-topic"), "lines");
        assert_eq!(a.number("--max-count"), -1.5);
        assert_eq!(a.text("--panic-on-word"), Some("boom"));
        assert_eq!(a.config, vec![("consumer.session.timeout.ms".to_owned(), "10000".to_owned())]);
        assert_eq!(a.duration, Some(Duration::from_millis(1500)));
        assert_eq!(a.processing_guarantee.as_deref(), Some("at_least_once"));
    }

    #[test]
    fn bad_command_lines_say_what_was_wrong() {
        let message = |args: &[&str]| parse_args(args).err().map(|e| e.0).unwrap_or_default();
        assert!(message(&["--no-such-flag"]).contains("--no-such-flag"));
        assert!(message(&["--threads", "0"]).contains("--threads"));
        assert!(message(&["--duration", "-3"]).contains("seconds > 0"));
        assert!(message(&["--config", "novalue"]).contains("KEY=VALUE"));
        assert!(message(&["--processing-guarantee", "maybe"]).contains("exactly_once_v2"));
        assert!(message(&["--format", "avro"]).contains("--schema-registry"));
        let secret =
            message(&["--format", "avro", "--schema-registry", "http://r", "--schema-registry-config", "x=s3cret"]);
        assert!(secret.contains("`x`") && !secret.contains("s3cret"), "{secret}");
    }
}
