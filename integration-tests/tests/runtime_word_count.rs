//! The runtime on the real broker: the word-count example's topology on a
//! 4-partition input, exactly-once; final counts must match exactly.

use std::time::{Duration, Instant};

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name};

mod common;
use common::{config, lines, records};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State};

#[test]
fn word_count_on_four_partitions_is_exact() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let input = unique_name("text-lines");
    let output = unique_name("word-counts");
    create_topic_blocking(&input, 4)?;
    create_topic_blocking(&output, 4)?;
    let (lines, expected) = lines(20_000, 0);
    produce(&input, &records(&lines, 1_700_000_000_000))?;

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
    // The count store caches (the DSL's default): a word is logged once per
    // commit at most, not once per occurrence.
    let changelog = read_until(&format!("{app}-word-counts-store-changelog"), Duration::from_secs(60), |r| {
        latest_by_key(r).len() == expected.len()
    })?;
    let words: u64 = expected.values().flatten().map(|v| v.parse::<u64>().unwrap_or(0)).sum();
    let bound = expected.len() as u64 * metrics.commits;
    assert!(
        changelog.len() as u64 <= bound && (changelog.len() as u64) < words,
        "{} changelog records for {words} words in {} commits of {} distinct words",
        changelog.len(),
        metrics.commits,
        expected.len()
    );
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
