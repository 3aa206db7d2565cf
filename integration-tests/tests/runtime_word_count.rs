//! The runtime on the real broker: the word-count example's topology on a
//! 4-partition input, exactly-once; final counts must match exactly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State};
use streams_core::StreamsConfig;

const VOCABULARY: [&str; 12] =
    ["kafka", "rust", "stream", "table", "join", "window", "state", "store", "topic", "Offset", "commit", "task"];

/// Deterministic lines, and the counts they should produce.
fn lines(n: usize) -> (Vec<String>, BTreeMap<String, Option<String>>) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..n {
        let mut line = Vec::new();
        for _ in 0..(x % 7 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let word = VOCABULARY[(x % VOCABULARY.len() as u64) as usize];
            line.push(word);
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        out.push(line.join(if x.is_multiple_of(2) { " " } else { ", " }));
    }
    (out, counts.into_iter().map(|(k, v)| (k, Some(v.to_string()))).collect())
}

pub(crate) fn config(app: &str, state_dir: &std::path::Path, guarantee: &str) -> StreamsConfig {
    let mut config = StreamsConfig::new(app, integration_tests::bootstrap_servers());
    config.state_dir = state_dir.to_path_buf();
    let _ = config.set("processing.guarantee", guarantee);
    config
}

#[test]
fn word_count_on_four_partitions_is_exact() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let input = unique_name("text-lines");
    let output = unique_name("word-counts");
    create_topic_blocking(&input, 4)?;
    create_topic_blocking(&output, 4)?;
    let (lines, expected) = lines(20_000);
    let records: Vec<integration_tests::Input<'_>> =
        lines.iter().enumerate().map(|(i, l)| (None, Some(l.as_bytes()), 1_700_000_000_000 + i as i64)).collect();
    produce(&input, &records)?;

    let state = tempfile::tempdir()?;
    let app = unique_name("wc");
    let mut config = config(&app, state.path(), "exactly_once_v2");
    config.set("num.stream.threads", "2")?;
    let streams = KafkaStreams::new(word_count::topology(&input, &output)?, config)?;
    let started = Instant::now();
    streams.start()?;
    let read = read_until(&output, Duration::from_secs(120), |r| latest_by_key(r) == expected);
    let elapsed = started.elapsed();
    let metrics = streams.metrics();
    streams.close();
    let read = read?;
    assert_eq!(latest_by_key(&read), expected);
    assert_eq!(streams.state(), State::NotRunning);
    println!(
        "word count: {} lines ({} words) in {:.2?} ({:.0} lines/s end to end); {:?}",
        lines.len(),
        expected.values().flatten().map(|v| v.parse::<u64>().unwrap_or(0)).sum::<u64>(),
        elapsed,
        lines.len() as f64 / elapsed.as_secs_f64(),
        metrics
    );
    Ok(())
}
