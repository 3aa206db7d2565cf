//! `rivulet-bench`: the Rust side of the benchmark harness (`benchmarks/run.sh`).
//!
//! - `preload`: creates an input topic and writes a workload's records to it.
//! - `contender raw|rivulet`: runs one contender on a preloaded topic until killed.
//! - `run -- COMMAND…`: starts a contender (any program: ours, the Kafka
//!   Streams peer), waits until the output is complete, samples the process's
//!   CPU time and peak RSS from `/proc`, stops it, verifies the output and
//!   prints one JSON result line.
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

mod contenders;
mod measure;
mod workloads;

use std::collections::BTreeMap;
use std::time::Duration;

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

fn dispatch(args: &[String]) -> Result<(), Error> {
    let (command, rest) = args.split_first().ok_or("usage: rivulet-bench preload|contender|run …")?;
    let (f, tail) = flags(rest);
    let servers = f.get("bootstrap-servers").cloned().unwrap_or_else(|| "127.0.0.1:39092".to_owned());
    match command.as_str() {
        "preload" => {
            let workload = Workload::parse(get(&f, "workload")?).ok_or("unknown workload")?;
            let records: u64 = get(&f, "records")?.parse()?;
            let partitions: i32 = f.get("partitions").map_or(Ok(8), |p| p.parse())?;
            measure::preload(&servers, workload, get(&f, "topic")?, records, partitions)
        }
        "contender" => {
            let which = tail.first().map(String::as_str).or(f.get("kind").map(String::as_str)).unwrap_or("rivulet");
            let workload = Workload::parse(get(&f, "workload")?).ok_or("unknown workload")?;
            let eos = get(&f, "guarantee")? == "exactly_once_v2";
            let (input, output) = (get(&f, "input")?, get(&f, "output")?);
            match which {
                "raw" => contenders::raw(&servers, workload, eos, input, output, get(&f, "app")?),
                _ => {
                    contenders::rivulet(&servers, workload, eos, input, output, get(&f, "app")?, get(&f, "state-dir")?)
                }
            }
        }
        "run" => {
            let workload = Workload::parse(get(&f, "workload")?).ok_or("unknown workload")?;
            let records: u64 = get(&f, "records")?.parse()?;
            let timeout = Duration::from_secs(f.get("timeout").map_or(Ok(1800), |t| t.parse())?);
            let result = measure::run(&servers, workload, records, get(&f, "output")?, &tail, timeout)?;
            let mut line = serde_json::json!({
                "contender": get(&f, "contender")?,
                "workload": workload.name(),
                "guarantee": get(&f, "guarantee")?,
                "records": records,
            });
            if let (Some(obj), serde_json::Value::Object(more)) = (line.as_object_mut(), result) {
                obj.extend(more);
            }
            println!("{line}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`").into()),
    }
}
