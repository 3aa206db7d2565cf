//! Restore throughput: a store's changelog with many records is read into a
//! fresh state directory before the task runs. The record count is
//! `RIVULET_RESTORE_RECORDS` (default 200,000); the time is printed.

use std::time::{Duration, Instant};

use integration_tests::{create_topic_blocking, produce, unique_name};
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, State};

mod common;
use common::{config, Put};

#[test]
fn restores_a_large_changelog() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("RIVULET_RESTORE_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let (input, app) = (unique_name("restore-in"), unique_name("restore"));
    create_topic_blocking(&input, 1)?;
    let changelog = format!("{app}-kv-changelog");
    create_topic_blocking(&changelog, 1)?;
    let rows: Vec<(String, String)> =
        (0..n).map(|i| (format!("key-{i:09}"), format!("value-{i}-{}", "x".repeat(60)))).collect();
    for chunk in rows.chunks(100_000) {
        let records: Vec<_> = chunk.iter().map(|(k, v)| (Some(k.as_bytes()), Some(v.as_bytes()), 1_000)).collect();
        produce(&changelog, &records)?;
    }

    let mut topology = Topology::new();
    topology
        .add_source("in", &[input.as_str()], BytesSerde, BytesSerde)?
        .add_processor("put", Put::default, &["in"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::persistent_key_value_store("kv"), BytesSerde, BytesSerde),
            &["put"],
        )?;
    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(topology, config(&app, dir.path(), "exactly_once_v2"))?;
    let started = Instant::now();
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, Duration::from_secs(600)));
    let elapsed = started.elapsed();
    let restored = streams.metrics().records_restored;
    streams.close();
    assert_eq!(restored, n as u64);
    println!(
        "restored {n} changelog records in {elapsed:.2?} ({:.0} records/s, start-up included)",
        n as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
