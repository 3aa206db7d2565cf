//! Where partitions without a committed offset start, on the real broker: a
//! source's own reset policy (`Consumed::with_offset_reset`) wins over the
//! application's `auto.offset.reset`, both ways, and repartition topics start
//! from the earliest whatever `auto.offset.reset` says (as in Kafka Streams).
//!
//! Records already in a topic when the application first starts tell the
//! policies apart: read under `earliest`, skipped under `latest`. Records
//! produced once the application runs are read under both; they are produced
//! one at a time until the first comes out, so that the test does not depend
//! on when the consumer resolved `latest`.

use std::time::{Duration, Instant};

use integration_tests::{create_topic_blocking, produce, read_until, unique_name, TestRecord};
use streams_core::runtime::{KafkaStreams, State};
use streams_core::OffsetReset;
use streams_dsl::prelude::*;

mod common;
use common::config;

const TIMEOUT: Duration = Duration::from_secs(120);

type Res = Result<(), Box<dyn std::error::Error>>;

fn values(read: &[TestRecord]) -> Vec<String> {
    read.iter().filter_map(|r| r.value.as_deref()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

/// Writes `prefix-old-0..n` to `topic` (before the application starts).
fn produce_old(topic: &str, prefix: &str, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let old: Vec<String> = (0..n).map(|i| format!("{prefix}-old-{i}")).collect();
    let key = prefix.as_bytes();
    let records: Vec<_> = old.iter().map(|v| (Some(key), Some(v.as_bytes()), 1_700_000_000_000)).collect();
    produce(topic, &records)?;
    Ok(old)
}

/// Writes `prefix-new-k` to `topic`, one at a time, until one of them is in
/// `output`; returns everything read from `output` by then.
fn produce_new_until_read(
    topic: &str,
    prefix: &str,
    output: &str,
    mut also: impl FnMut(&[String]) -> bool,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let deadline = Instant::now() + TIMEOUT;
    let new = format!("{prefix}-new-");
    for k in 0.. {
        let value = format!("{new}{k}");
        produce(topic, &[(Some(prefix.as_bytes()), Some(value.as_bytes()), 1_700_000_000_000 + k)])?;
        let read = read_until(output, Duration::from_secs(2), |r| {
            let v = values(r);
            v.iter().any(|v| v.starts_with(&new)) && also(&v)
        });
        if let Ok(read) = read {
            return Ok(values(&read));
        }
        if Instant::now() >= deadline {
            return Err(format!("no `{new}*` record in {output} within {TIMEOUT:?}").into());
        }
    }
    unreachable!("the loop returns")
}

#[test]
fn a_source_with_earliest_reads_what_was_there_under_a_latest_application() -> Res {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (plain, early, output, counts) =
        (unique_name("plain"), unique_name("early"), unique_name("out"), unique_name("counts"));
    let app = unique_name("reset-latest");
    for t in [&plain, &early, &output, &counts] {
        create_topic_blocking(t, 2)?;
    }
    let plain_old = produce_old(&plain, "p", 20)?;
    let early_old = produce_old(&early, "e", 20)?;

    let builder = StreamsBuilder::new();
    builder.stream(&[plain.as_str()], Consumed::with(StringSerde, StringSerde)).to(&output);
    let early_stream = builder
        .stream(&[early.as_str()], Consumed::with(StringSerde, StringSerde).with_offset_reset(OffsetReset::Earliest));
    early_stream.to(&output);
    // Through a repartition topic, which must start from the earliest too.
    early_stream
        .group_by(|_, v: &String| v.clone(), Grouped::with(StringSerde, StringSerde))
        .count()
        .to_stream()
        .map_values(|c: Option<i64>| c.map_or_else(String::new, |c| c.to_string()))
        .to_with(&counts, Produced::with(StringSerde, StringSerde));
    let state = tempfile::tempdir()?;
    let mut cfg = config(&app, state.path(), "exactly_once_v2");
    // The consumer-prefixed form: the same setting as `auto.offset.reset`.
    cfg.set("consumer.auto.offset.reset", "latest")?;
    let streams = KafkaStreams::new(builder.build()?, cfg)?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT), "state {:?}", streams.state());

    let out = produce_new_until_read(&plain, "p", &output, |v| early_old.iter().all(|o| v.contains(o)));
    let counted = read_until(&counts, TIMEOUT, |r| {
        r.iter().any(|r| r.key.as_deref() == Some(&b"e-old-19"[..]) && r.value.as_deref() == Some(&b"1"[..]))
    });
    streams.close();
    let out = out?;
    let leaked: Vec<&String> = plain_old.iter().filter(|o| out.contains(o)).collect();
    assert!(leaked.is_empty(), "a latest source read records from before the start: {leaked:?}");
    assert!(early_old.iter().all(|o| out.contains(o)), "the earliest source read everything: {out:?}");
    let counted = counted?;
    for o in &early_old {
        let key = Some(o.as_bytes());
        let n = counted.iter().filter(|r| r.key.as_deref() == key).count();
        assert!(n >= 1, "{o} counted through the repartition topic");
    }
    Ok(())
}

#[test]
fn a_source_with_latest_skips_what_was_there_under_an_earliest_application() -> Res {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (plain, late, output) = (unique_name("plain"), unique_name("late"), unique_name("out"));
    let app = unique_name("reset-earliest");
    for t in [&plain, &late, &output] {
        create_topic_blocking(t, 2)?;
    }
    let plain_old = produce_old(&plain, "p", 20)?;
    let late_old = produce_old(&late, "l", 20)?;

    let builder = StreamsBuilder::new();
    builder.stream(&[plain.as_str()], Consumed::with(StringSerde, StringSerde)).to(&output);
    builder
        .stream(&[late.as_str()], Consumed::with(StringSerde, StringSerde).with_offset_reset(OffsetReset::Latest))
        .to(&output);
    let state = tempfile::tempdir()?;
    let streams = KafkaStreams::new(builder.build()?, config(&app, state.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT), "state {:?}", streams.state());

    let out = produce_new_until_read(&late, "l", &output, |v| plain_old.iter().all(|o| v.contains(o)));
    streams.close();
    let out = out?;
    let leaked: Vec<&String> = late_old.iter().filter(|o| out.contains(o)).collect();
    assert!(leaked.is_empty(), "a latest source read records from before the start: {leaked:?}");
    assert!(plain_old.iter().all(|o| out.contains(o)), "the application's earliest read everything: {out:?}");
    Ok(())
}
