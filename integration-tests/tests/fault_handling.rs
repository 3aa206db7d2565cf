//! Faults inside an application on the real broker: a panicking closure
//! under each processing handler, the uncaught-error handler's
//! `ReplaceThread` and `ShutdownApplication`, the state directory lock, and
//! a graceful stop under load (a clean checkpoint: nothing to restore).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use integration_tests::{create_topic_blocking, produce, read_until, unique_name, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use streams_core::runtime::{ErrorResponse, KafkaStreams, State};
use streams_core::{ProcessorError, StreamsError};
use streams_dsl::prelude::*;

mod common;
use common::{config, lines, records};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Upper-cases values; panics on the value `boom` while `armed` holds
/// (each panic disarms it when `once`).
fn topology(
    input: &str,
    output: &str,
    armed: Arc<AtomicBool>,
    once: bool,
) -> Result<Topology, Box<dyn std::error::Error>> {
    Ok(topology_and_node(input, output, armed, once)?.0)
}

/// The topology and the name of the node that panics.
fn topology_and_node(
    input: &str,
    output: &str,
    armed: Arc<AtomicBool>,
    once: bool,
) -> Result<(Topology, String), Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    let shout =
        builder.stream(&[input], Consumed::with(Nullable(StringSerde), StringSerde)).map_values(move |v: String| {
            if v == "boom" && armed.load(Ordering::SeqCst) {
                if once {
                    armed.store(false, Ordering::SeqCst);
                }
                panic!("cannot shout `{v}`");
            }
            v.to_uppercase()
        });
    shout.to_with(output, Produced::with(Nullable(StringSerde), StringSerde));
    let node = shout.node_name().to_owned();
    Ok((builder.build()?, node))
}

fn values(input: &str, words: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let records: Vec<_> = words.iter().enumerate().map(|(i, w)| (None, Some(w.as_bytes()), 1_000 + i as i64)).collect();
    produce(input, &records)?;
    Ok(())
}

fn read_values(topic: &str, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let read = read_until(topic, TIMEOUT, |r| r.len() >= n)?;
    Ok(read.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect())
}

/// Asserts that each key's decimal counts in `read` strictly increase: no
/// update was written twice.
fn assert_counts_increase(read: &[integration_tests::TestRecord]) {
    let mut seen: std::collections::BTreeMap<String, Vec<u64>> = std::collections::BTreeMap::new();
    for r in read {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let n = r.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        seen.entry(key).or_default().push(n);
    }
    for (word, counts) in &seen {
        assert!(counts.windows(2).all(|w| w[0] < w[1]), "{word}: {counts:?}");
    }
}

#[test]
fn panicking_closure_is_skipped_with_log_and_continue() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("panic-in"), unique_name("panic-out"), unique_name("panic-continue"));
    create_topic_blocking(&input, 1)?;
    create_topic_blocking(&output, 1)?;
    values(&input, &["a", "boom", "b", "boom", "c"])?;
    let dir = tempfile::tempdir()?;
    let mut c = config(&app, dir.path(), "exactly_once_v2");
    c.set("processing.exception.handler", "log_and_continue")?;
    let streams = KafkaStreams::new(topology(&input, &output, Arc::new(AtomicBool::new(true)), false)?, c)?;
    streams.start()?;
    assert_eq!(read_values(&output, 3)?, ["A", "B", "C"]);
    wait_until(TIMEOUT, "both panics counted as skipped", || (streams.metrics().records_skipped == 2).then_some(()))?;
    assert_eq!(streams.state(), State::Running);
    streams.close();
    assert_eq!(streams.state(), State::NotRunning);
    Ok(())
}

#[test]
fn panicking_closure_fails_naming_node_and_offset() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("panic-in"), unique_name("panic-out"), unique_name("panic-fail"));
    create_topic_blocking(&input, 1)?;
    create_topic_blocking(&output, 1)?;
    values(&input, &["a", "b", "boom", "c"])?;
    let dir = tempfile::tempdir()?;
    let (topology, node) = topology_and_node(&input, &output, Arc::new(AtomicBool::new(true)), false)?;
    let streams = KafkaStreams::new(topology, config(&app, dir.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::PendingError, TIMEOUT) || streams.state() == State::Error);
    streams.close();
    assert_eq!(streams.state(), State::Error);
    let error = streams.error().ok_or("no error reported")?;
    match &*error {
        StreamsError::Processing { metadata: Some(m), source } => {
            assert_eq!((&*m.topic, m.partition, m.offset), (input.as_str(), 0, 2));
            assert_eq!(source.node(), Some(node.as_str()), "{error}");
            assert!(matches!(source.innermost(), ProcessorError::Panic { message } if message.contains("boom")));
        }
        other => return Err(format!("expected a processing error, got {other:?}").into()),
    }
    let text = error.to_string();
    assert!(text.contains(&format!("{input}-0 offset 2")) && text.contains(&node), "{text}");
    // Nothing past the failed record was committed.
    let consumer: BaseConsumer = integration_tests::client_config().set("group.id", &app).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&input, 0);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let offset = committed.find_partition(&input, 0).map(|e| e.offset());
    assert!(
        matches!(offset, Some(Offset::Invalid | Offset::Offset(0..=2))),
        "nothing committed past the panicking record: {offset:?}"
    );
    Ok(())
}

#[test]
fn replace_thread_restarts_from_the_last_commit() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("replace-in"), unique_name("replace-out"), unique_name("replace"));
    create_topic_blocking(&input, 1)?;
    create_topic_blocking(&output, 1)?;
    values(&input, &["a", "b", "boom", "c", "d"])?;
    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(
        topology(&input, &output, Arc::new(AtomicBool::new(true)), true)?,
        config(&app, dir.path(), "exactly_once_v2"),
    )?;
    let handled = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&handled);
    streams.set_uncaught_error_handler(move |e| {
        assert!(e.to_string().contains("cannot shout"), "{e}");
        seen.fetch_add(1, Ordering::SeqCst);
        ErrorResponse::ReplaceThread
    });
    streams.start()?;
    // The replaced thread redoes the work from the last commit: under
    // exactly-once every value comes out once, in order.
    assert_eq!(read_values(&output, 5)?, ["A", "B", "BOOM", "C", "D"]);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert_eq!(streams.metrics().replaced_threads, 1);
    assert!(streams.wait_for_state(State::Running, TIMEOUT));
    streams.close();
    assert_eq!(streams.state(), State::NotRunning);
    let more = read_until(&output, Duration::from_secs(5), |r| r.len() > 5);
    assert!(more.is_err(), "no record twice: {more:?}");
    Ok(())
}

#[test]
fn shutdown_application_stops_every_instance() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("shutdown-in"), unique_name("shutdown-out"), unique_name("shutdown"));
    create_topic_blocking(&input, 2)?;
    create_topic_blocking(&output, 2)?;
    let (dir1, dir2) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let armed = Arc::new(AtomicBool::new(false));
    let start = |dir: &std::path::Path| -> Result<KafkaStreams, Box<dyn std::error::Error>> {
        let mut c = config(&app, dir, "at_least_once");
        c.set("consumer.session.timeout.ms", "6000")?.set("consumer.heartbeat.interval.ms", "1000")?;
        let streams = KafkaStreams::new(topology(&input, &output, Arc::clone(&armed), false)?, c)?;
        streams.set_uncaught_error_handler(|_| ErrorResponse::ShutdownApplication);
        streams.start()?;
        Ok(streams)
    };
    let (one, two) = (start(dir1.path())?, start(dir2.path())?);
    values(&input, &["x", "y"])?;
    read_values(&output, 2)?;
    wait_until(TIMEOUT, "both instances running", || {
        (one.state() == State::Running && two.state() == State::Running).then_some(())
    })?;
    armed.store(true, Ordering::SeqCst);
    // On both partitions, so whichever instance owns them fails.
    let records: Vec<_> = (0..2)
        .map(|p| (Some(if p == 0 { b"k0".as_slice() } else { b"k1".as_slice() }), Some(b"boom".as_slice()), 5_000))
        .collect();
    produce(&input, &records)?;
    for streams in [&one, &two] {
        assert!(streams.wait_for_state(State::PendingError, TIMEOUT) || streams.state() == State::Error);
    }
    one.close();
    two.close();
    assert_eq!((one.state(), two.state()), (State::Error, State::Error));
    let reasons: Vec<String> = [&one, &two].iter().filter_map(|s| s.error()).map(|e| e.to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("cannot shout")), "{reasons:?}");
    Ok(())
}

#[test]
fn second_instance_on_one_state_dir_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let (input, output, app) = (unique_name("lock-in"), unique_name("lock-out"), unique_name("lock"));
    create_topic_blocking(&input, 1)?;
    create_topic_blocking(&output, 1)?;
    let dir = tempfile::tempdir()?;
    let build = || topology(&input, &output, Arc::new(AtomicBool::new(false)), false);
    let first = KafkaStreams::new(build()?, config(&app, dir.path(), "at_least_once"))?;
    first.start()?;
    let second = KafkaStreams::new(build()?, config(&app, dir.path(), "at_least_once"))?;
    match second.start() {
        Err(StreamsError::StateDirLocked { path }) => assert_eq!(path, dir.path().join(&app)),
        other => return Err(format!("expected StateDirLocked, got {other:?}").into()),
    }
    first.close();
    // Released on close: a new instance starts.
    let third = KafkaStreams::new(build()?, config(&app, dir.path(), "at_least_once"))?;
    third.start()?;
    third.close();
    assert_eq!(third.state(), State::NotRunning);
    Ok(())
}

#[test]
fn graceful_stop_under_load_leaves_nothing_to_restore() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("stop-lines"), unique_name("stop-counts"), unique_name("graceful"));
    create_topic_blocking(&input, 2)?;
    create_topic_blocking(&output, 2)?;
    let (text, expected) = lines(20_000, 7);
    produce(&input, &records(&text, 1_000))?;
    let dir = tempfile::tempdir()?;
    let build = || rivulet_examples::word_count::topology(&input, &output);
    let first = KafkaStreams::new(build()?, config(&app, dir.path(), "exactly_once_v2"))?;
    first.start()?;
    // Stop in the middle of the work.
    wait_until(TIMEOUT, "some records processed", || (first.metrics().records_processed > 2_000).then_some(()))?;
    assert!(first.close_timeout(Duration::from_secs(60)), "closed within its time-out");
    assert_eq!(first.state(), State::NotRunning);
    drop(first);
    let second = KafkaStreams::new(build()?, config(&app, dir.path(), "exactly_once_v2"))?;
    second.start()?;
    let read = read_until(&output, TIMEOUT, |r| {
        let latest = integration_tests::latest_by_key(r);
        expected.iter().all(|(k, v)| latest.get(k) == Some(v))
    })?;
    let m = second.metrics();
    assert_eq!(m.records_to_restore, 0, "a clean close checkpoints every store");
    second.close();
    // No update twice: each word's counts strictly increase across both runs.
    assert_counts_increase(&read);
    Ok(())
}

#[test]
fn stalled_thread_loses_its_assignment_and_counts_stay_exact() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("stall-lines"), unique_name("stall-counts"), unique_name("stall"));
    create_topic_blocking(&input, 2)?;
    create_topic_blocking(&output, 2)?;
    // One line holds the word that stalls the thread (once) for longer than
    // max.poll.interval.ms: librdkafka leaves the group meanwhile, and the
    // thread finds its assignment lost when it polls again.
    let (mut text, expected) = lines(6_000, 11);
    text.insert(3_000, "stall here".to_owned());
    let expected = common::merge(
        &expected,
        &[("stall".to_owned(), Some("1".to_owned())), ("here".to_owned(), Some("1".to_owned()))].into(),
    );
    produce(&input, &records(&text, 1_000))?;
    let armed = Arc::new(AtomicBool::new(true));
    let stalls = Arc::clone(&armed);
    let builder = StreamsBuilder::new();
    builder
        .stream(&[input.as_str()], Consumed::with(Nullable(BytesSerde), Nullable(StringSerde)))
        .flat_map_values(move |line: Option<String>| {
            let words = line.as_deref().map(rivulet_examples::word_count::words).unwrap_or_default();
            if words.iter().any(|w| w == "stall") && stalls.swap(false, Ordering::SeqCst) {
                // The fault itself (a closure stuck on I/O), not a wait.
                std::thread::sleep(Duration::from_secs(10));
            }
            words
        })
        .group_by(|_, word: &String| word.clone(), Grouped::with(StringSerde, StringSerde).named("words"))
        .count()
        .to_stream()
        .map_values(|count: Option<i64>| count.map(|c| c.to_string()))
        .to_with(&output, Produced::with(StringSerde, Nullable(StringSerde)));
    let dir = tempfile::tempdir()?;
    let mut c = config(&app, dir.path(), "exactly_once_v2");
    c.set("consumer.session.timeout.ms", "6000")?.set("consumer.max.poll.interval.ms", "6000")?;
    let streams = KafkaStreams::new(builder.build()?, c)?;
    streams.start()?;
    let read = read_until(&output, TIMEOUT, |r| integration_tests::latest_by_key(r) == expected)?;
    assert!(!armed.load(Ordering::SeqCst), "the thread stalled");
    let m = streams.metrics();
    assert!(m.aborted_transactions >= 1, "the lost assignment's transaction was given up: {m:?}");
    assert_eq!(streams.state(), State::Running);
    streams.close();
    // Exactly once: each word's committed counts strictly increase, none twice.
    assert_counts_increase(&read);
    Ok(())
}
