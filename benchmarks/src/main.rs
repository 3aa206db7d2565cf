//! `rivulet-bench`: the Rust side of the benchmark harness (`benchmarks/run.sh`).
//!
//! - `preload`: creates an input topic and writes a workload's records to it
//!   (W4: and its customers table); `probe`: writes R1's probe line.
//! - `contender --kind raw|rivulet`: runs one contender on a preloaded topic
//!   until SIGTERM (rivulet with `--query-rate N`: and N interactive-query
//!   gets per second on its word-count store, W2 only). On R1 both print
//!   a line to stdout when a restore starts and ends (`restore_phase.rs`).
//! - `run -- COMMAND…`: starts a contender (any program: ours, the Kafka
//!   Streams peer), waits until the output is complete, samples the process's
//!   CPU time and peak RSS from `/proc`, stops it, verifies the output and
//!   prints one JSON result line. With `--measure child`, COMMAND is a
//!   wrapper such as `perf record … -- CONTENDER`: its child is measured and
//!   it is stopped with SIGINT. `--scaling threads|keys` marks a scaling row,
//!   which also names `--threads` and `--vocabulary` and the store's
//!   distinct keys. The contender's stdout is read for restore lines (R1:
//!   the restore phase apart from start-up, see `restore_phase.rs`).
//! - W2 takes `--vocabulary N` (default 500 distinct words) in `preload`,
//!   `run` and `contender`; the rivulet contender `--threads N`
//!   (`num.stream.threads`).
//! - `latency -- COMMAND…`: the rate-limited pass (p50/p99 from event time
//!   to a read_committed consumer).
//! - `failover -- COMMAND…`: F1, two instances of COMMAND (`{instance}` in
//!   it becomes `a` and `b`), one killed with SIGKILL; see `failover.rs`.
//! - `restore-latency -- COMMAND…`: R2, a running task's latency while
//!   another task of the same thread restores; see `restore_latency.rs`.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod contenders;
mod failover;
mod latency;
mod measure;
mod restore_latency;
mod restore_phase;
mod workloads;

use std::collections::BTreeMap;
use std::time::Duration;

use measure::Stop;
use workloads::Workload;

type Error = Box<dyn std::error::Error>;

/// `--flag value` pairs before an optional `--`, and what follows it.
fn flags(args: &[String]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut map = BTreeMap::new();
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            rest = it.cloned().collect();
            break;
        }
        if let Some(flag) = a.strip_prefix("--") {
            map.insert(flag.to_owned(), it.next().cloned().unwrap_or_default());
        }
    }
    (map, rest)
}

fn get<'a>(f: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str, Error> {
    f.get(name).map(String::as_str).ok_or_else(|| format!("missing --{name}").into())
}

fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = dispatch(&args) {
        eprintln!("rivulet-bench: {e}");
        std::process::exit(1);
    }
}

/// Wall-clock milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn dispatch(args: &[String]) -> Result<(), Error> {
    let (command, rest) = args
        .split_first()
        .ok_or("usage: rivulet-bench preload|probe|contender|run|latency|failover|restore-latency …")?;
    let (f, tail) = flags(rest);
    let servers = f.get("bootstrap-servers").cloned().unwrap_or_else(|| "127.0.0.1:39092".to_owned());
    if let Some(ts) = f.get("base-ts") {
        workloads::set_base_ts(ts.parse()?);
    }
    // W2's words: preload, run (the expected counts) and contender (its
    // query load) must agree on it.
    if let Some(words) = f.get("vocabulary") {
        workloads::set_vocabulary(words.parse()?);
    }
    let workload = || -> Result<Workload, Error> {
        let name = get(&f, "workload")?;
        Workload::parse(name).ok_or_else(|| format!("unknown workload `{name}` (w1, w2, w3, w4, r1, r2)").into())
    };
    match command.as_str() {
        "preload" => {
            let records: u64 = get(&f, "records")?.parse()?;
            let partitions: i32 = f.get("partitions").map_or(Ok(8), |p| p.parse())?;
            measure::preload(&servers, workload()?, get(&f, "topic")?, records, partitions)
        }
        "probe" => measure::probe(&servers, get(&f, "topic")?),
        "contender" => {
            let job = contenders::Job {
                servers,
                workload: workload()?,
                eos: get(&f, "guarantee")? == "exactly_once_v2",
                input: get(&f, "input")?.to_owned(),
                output: get(&f, "output")?.to_owned(),
                app: get(&f, "app")?.to_owned(),
                state_dir: f.get("state-dir").cloned().unwrap_or_default(),
                restore_from: f.get("restore-from").cloned(),
                query_rate: f.get("query-rate").map_or(Ok(0), |r| r.parse())?,
                threads: f.get("threads").map(|n| n.parse()).transpose()?,
                standby_replicas: f.get("standby-replicas").map(|n| n.parse()).transpose()?,
                session_timeout_ms: f.get("session-timeout-ms").map(|n| n.parse()).transpose()?,
                heartbeat_ms: f.get("heartbeat-ms").map(|n| n.parse()).transpose()?,
                http_listen: f.get("http-listen").cloned(),
                status_every: f.get("status-ms").map(|n| n.parse().map(Duration::from_millis)).transpose()?,
            };
            match f.get("kind").map(String::as_str).unwrap_or("rivulet") {
                "raw" => contenders::raw(&job),
                _ => contenders::rivulet(&job),
            }
        }
        "run" => {
            let workload = workload()?;
            let records: u64 = get(&f, "records")?.parse()?;
            let timeout = Duration::from_secs(f.get("timeout").map_or(Ok(1800), |t| t.parse())?);
            let expected = match f.get("expect").map(String::as_str) {
                Some("probe") => workloads::expected_probe(),
                _ => workloads::expected(workload, records),
            };
            let stop = if f.get("stop").map(String::as_str) == Some("term") { Stop::Term } else { Stop::Kill };
            let measure_child = f.get("measure").map(String::as_str) == Some("child");
            let how = measure::How { timeout, stop, measure_child };
            let mut result = measure::run(&servers, &expected, records, get(&f, "output")?, &tail, &how)?;
            if let Some(kind) = f.get("scaling") {
                // A scaling row says what it varied and how many keys its store ended with.
                result["scaling"] = serde_json::Value::from(kind.as_str());
                result["vocabulary"] = serde_json::Value::from(workloads::vocabulary());
                result["threads"] = serde_json::Value::from(f.get("threads").map_or(Ok(1), |n| n.parse::<u32>())?);
                if let workloads::Expected::Latest { map, .. } = &expected {
                    result["distinct_keys"] = serde_json::Value::from(map.len());
                }
            }
            print_line(&f, workload.name(), result)
        }
        "latency" => {
            let workload = workload()?;
            let pace = latency::Pace {
                rate: get(&f, "rate")?.parse()?,
                duration: Duration::from_secs(get(&f, "seconds")?.parse()?),
            };
            let result = latency::run(&servers, workload, get(&f, "input")?, get(&f, "output")?, &tail, pace)?;
            print_line(&f, workload.name(), result)
        }
        "failover" => {
            let settings = failover::Settings {
                words: get(&f, "records")?.parse()?,
                standbys: get(&f, "standby-replicas")?.parse()?,
                session_timeout_ms: get(&f, "session-timeout-ms")?.parse()?,
                heartbeat_ms: get(&f, "heartbeat-ms")?.parse()?,
                load_timeout: Duration::from_secs(f.get("timeout").map_or(Ok(1800), |t| t.parse())?),
            };
            // A failed failover is a result line too; the other rows still run.
            let result = failover::run(&servers, get(&f, "input")?, get(&f, "output")?, &settings, &tail)
                .unwrap_or_else(|e| {
                    eprintln!("rivulet-bench: failover: {e}");
                    serde_json::json!({
                        "standby_replicas": settings.standbys,
                        "session_timeout_ms": settings.session_timeout_ms,
                        "heartbeat_interval_ms": settings.heartbeat_ms,
                        "verified": false,
                        "error": e.to_string(),
                    })
                });
            print_line(&f, failover::WORKLOAD, result)
        }
        "restore-latency" => {
            let settings = restore_latency::Settings {
                records: get(&f, "records")?.parse()?,
                rate: get(&f, "rate")?.parse()?,
                app: get(&f, "app")?.to_owned(),
            };
            // A failed run is a result line too; the other rows still run.
            let result = restore_latency::run(&servers, get(&f, "input")?, get(&f, "output")?, &settings, &tail)
                .unwrap_or_else(|e| {
                    eprintln!("rivulet-bench: restore-latency: {e}");
                    serde_json::json!({ "rate": settings.rate, "verified": false, "error": e.to_string() })
                });
            print_line(&f, restore_latency::WORKLOAD, result)
        }
        other => Err(format!("unknown command `{other}`").into()),
    }
}

/// Prints one JSON result line: who, what, and the figures.
fn print_line(f: &BTreeMap<String, String>, workload: &str, result: serde_json::Value) -> Result<(), Error> {
    let mut line = serde_json::json!({
        "contender": get(f, "contender")?,
        "workload": workload,
        "guarantee": get(f, "guarantee")?,
    });
    if let Some(records) = f.get("records") {
        line["records"] = serde_json::Value::from(records.parse::<u64>()?);
    }
    if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), result) {
        obj.extend(more);
    }
    println!("{line}");
    Ok(())
}
