//! The built-in HTTP server (`http.listen`) of an instance running word
//! count on the real broker: liveness, readiness (503 until RUNNING, then
//! 200), `/metrics` parsed by a Prometheus text parser and checked against
//! the input, `/topology` equal to `describe()` (and as Mermaid), `/stores`,
//! and a 400 for a bad request.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_until};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State};

mod common;
use common::{config, lines, records};
use integration_tests::http::get;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Sample values of `/metrics` by metric name and labels (`k=v,...`, sorted).
fn scrape(addr: SocketAddr) -> Result<BTreeMap<(String, String), f64>, Box<dyn std::error::Error>> {
    let (status, text) = get(addr, "/metrics")?;
    assert_eq!(status, 200, "{text}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let parsed = prometheus_parse::Scrape::parse(lines)?;
    let mut out = BTreeMap::new();
    for sample in parsed.samples {
        let mut labels: Vec<String> = sample.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        out.insert((sample.metric, labels.join(",")), value);
    }
    Ok(out)
}

#[test]
fn health_metrics_topology_and_stores() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("http-lines"), unique_name("http-counts"), unique_name("http"));
    create_topic_blocking(&input, 2)?;
    create_topic_blocking(&output, 2)?;
    let topology = word_count::topology(&input, &output)?;
    let described = topology.describe();
    let state = tempfile::tempdir()?;
    let mut config = config(&app, state.path(), "exactly_once_v2");
    config.set("http.listen", "127.0.0.1:0")?.set("metrics.recording.level", "DEBUG")?;
    let streams = KafkaStreams::new(topology, config)?;
    assert_eq!(streams.http_address(), None, "no server before start");
    streams.start()?;
    let addr = streams.http_address().ok_or("no HTTP address after start")?;

    assert_eq!(get(addr, "/health/live")?.0, 200);
    let (status, body) = get(addr, "/health/ready")?;
    assert!(status == 200 || (status == 503 && !body.contains("\"RUNNING\"")), "{status} {body}");
    assert!(streams.wait_for_state(State::Running, TIMEOUT));
    let ready = wait_until(TIMEOUT, "/health/ready to say 200", || {
        get(addr, "/health/ready").ok().filter(|(status, _)| *status == 200)
    })?;
    assert!(ready.1.contains("\"state\":\"RUNNING\""), "{}", ready.1);

    let (text, expected) = lines(3_000, 7);
    produce(&input, &records(&text, 1_700_000_000_000))?;
    read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected)?;
    let words: u64 = expected.values().flatten().map(|v| v.parse::<u64>().unwrap_or(0)).sum();

    let app_label = format!("application_id={app}");
    let metric =
        |m: &BTreeMap<(String, String), f64>, name: &str| m.get(&(name.to_owned(), app_label.clone())).copied();
    let metrics = scrape(addr)?;
    // Lines, then each word through the repartition topic: each processed once.
    assert_eq!(metric(&metrics, "rivulet_records_processed_total"), Some((text.len() as u64 + words) as f64));
    assert_eq!(metric(&metrics, "rivulet_records_consumed_total"), Some((text.len() as u64 + words) as f64));
    assert!(metric(&metrics, "rivulet_commits_total").is_some_and(|c| c >= 1.0), "{metrics:?}");
    assert_eq!(metric(&metrics, "rivulet_aborted_transactions_total"), Some(0.0));
    assert_eq!(metric(&metrics, "rivulet_records_redelivered_total"), Some(0.0));
    assert_eq!(metric(&metrics, "rivulet_restore_remaining_records"), Some(0.0));
    let running = (String::from("rivulet_state"), format!("{app_label},state=RUNNING"));
    assert_eq!(metrics.get(&running), Some(&1.0), "{metrics:?}");
    let created = (String::from("rivulet_state"), format!("{app_label},state=CREATED"));
    assert_eq!(metrics.get(&created), Some(&0.0));
    assert!(
        metrics.keys().any(|(name, _)| name == "rivulet_commit_duration_seconds_count"),
        "the commit histogram: {metrics:?}"
    );
    // The store's metered layer: word count reads and writes each word's
    // count once, in the task of its partition.
    let store_ops = |metrics: &BTreeMap<(String, String), f64>, name: &str, op: &str| -> (usize, f64) {
        let wanted = [format!("operation={op}"), "store=word-counts-store".to_owned(), app_label.clone()];
        let samples: Vec<f64> = metrics
            .iter()
            .filter(|((n, labels), _)| n == name && wanted.iter().all(|w| labels.split(',').any(|l| l == w)))
            .map(|(_, v)| *v)
            .collect();
        (samples.len(), samples.iter().sum())
    };
    assert_eq!(store_ops(&metrics, "rivulet_store_operations_total", "get"), (2, words as f64), "{metrics:?}");
    assert_eq!(store_ops(&metrics, "rivulet_store_operations_total", "put"), (2, words as f64));
    let (tasks, seconds) = store_ops(&metrics, "rivulet_store_operation_seconds_total", "put");
    assert!(tasks == 2 && seconds > 0.0, "put time at DEBUG: {tasks} tasks, {seconds} s");
    let api: u64 = streams
        .store_metrics()
        .iter()
        .filter(|s| s.store == "word-counts-store")
        .map(|s| s.count(streams_core::StoreOperation::Put))
        .sum();
    assert_eq!(api, words);
    // librdkafka's statistics come every few seconds.
    let lag = wait_until(TIMEOUT, "consumer lag per input partition in /metrics", || {
        let metrics = scrape(addr).ok()?;
        let lag: Vec<f64> = metrics
            .iter()
            .filter(|((name, labels), _)| name == "rivulet_consumer_lag" && labels.contains(&input))
            .map(|(_, v)| *v)
            .collect();
        (lag.len() == 2).then_some(lag)
    })?;
    assert!(lag.iter().all(|l| *l >= 0.0), "{lag:?}");

    let (status, text_topology) = get(addr, "/topology")?;
    assert_eq!((status, text_topology), (200, described.to_string()));
    let (status, mermaid) = get(addr, "/topology?format=mermaid")?;
    assert_eq!((status, mermaid), (200, described.to_mermaid()));
    let (status, error) = get(addr, "/topology?format=svg")?;
    assert!(status == 400 && error.contains("svg"), "{status} {error}");

    let (status, stores) = get(addr, "/stores")?;
    assert_eq!(status, 200);
    let stores: serde_json::Value = serde_json::from_str(&stores)?;
    let store = stores
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "word-counts-store"))
        .ok_or_else(|| format!("word-counts-store in {stores}"))?;
    assert_eq!(store["kind"], "key_value");

    streams.close();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(), "the server stops with the client");
    Ok(())
}

#[test]
fn a_taken_port_fails_start_before_any_thread_runs() -> Result<(), Box<dyn std::error::Error>> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = taken.local_addr()?.to_string();
    let state = tempfile::tempdir()?;
    let mut config = config(&unique_name("http-taken"), state.path(), "at_least_once");
    config.set("http.listen", &address)?;
    let streams = KafkaStreams::new(word_count::topology("in", "out")?, config)?;
    match streams.start() {
        Err(streams_core::StreamsError::HttpListen { address: a, .. }) => assert_eq!(a, address),
        other => return Err(format!("expected HttpListen, got {other:?}").into()),
    }
    assert_eq!(streams.state(), State::Error);
    assert!(streams.local_tasks().is_empty());
    Ok(())
}
