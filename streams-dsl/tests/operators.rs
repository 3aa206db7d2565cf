//! DSL behaviour beyond the golden scenarios: topology shape, branching,
//! repartitioning, the Processor API escape hatch, and counted drops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_dsl::prelude::*;

mod common;
use streams_dsl::DslError;

type Res = Result<(), Box<dyn std::error::Error>>;

#[test]
fn describe_shows_repartition_topics_subtopologies_and_stores() -> Res {
    let b = StreamsBuilder::new();
    common::word_count(&b);
    let topology = b.build()?;
    let text = topology.describe().to_string();
    assert_eq!(b.build()?.describe().to_string(), text, "build() again gives the same topology");
    assert_eq!(topology.describe().subtopologies.len(), 2, "{text}");
    assert!(text.contains("(topic: words-repartition)"), "{text}");
    assert!(text.contains("(topics: [words-repartition])"), "{text}");
    assert!(text.contains("(stores: [counts])"), "{text}");
    let internal: Vec<_> = topology.internal_topics().map(|t| t.name.clone()).collect();
    assert_eq!(internal, vec!["words-repartition".to_owned()]);
    assert_eq!(topology.resolve_topic("wc", "words-repartition"), "wc-words-repartition");
    // The test driver reads and writes the prefixed topic.
    let driver = TopologyTestDriver::new(&topology)?;
    driver.create_input_topic("text-lines", Nullable(StringSerde), StringSerde).pipe_input(None, "a b a".into())?;
    assert!(driver.produced_topic_names().contains(&"test-app-words-repartition".to_owned()));
    let wrong_kind = driver.key_value_store::<String, i64>("counts").err().map(|e| e.to_string()).unwrap_or_default();
    assert!(wrong_kind.contains("timestamped"), "{wrong_kind}");
    assert_eq!(driver.timestamped_key_value_store::<String, i64>("counts")?.get(&"a".into())?.map(|(c, _)| c), Some(2));
    Ok(())
}

#[test]
fn split_routes_to_the_first_matching_branch() -> Res {
    let b = StreamsBuilder::new();
    let branches = b
        .stream(&["in"], Consumed::with(StringSerde, I64Serde))
        .split()
        .branch("small", |_, v| *v < 10)
        .branch("medium", |_, v| *v < 100)
        .default_branch("large");
    for (name, stream) in &branches {
        stream.to(&format!("out-{name}"));
    }
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("in", StringSerde, I64Serde);
    for v in [5, 50, 500, 9] {
        input.pipe_input("k".into(), v)?;
    }
    let read = |t: &str| driver.create_output_topic(t, StringSerde, I64Serde).read_values_to_list();
    assert_eq!(read("out-small")?, vec![5, 9]);
    assert_eq!(read("out-medium")?, vec![50]);
    assert_eq!(read("out-large")?, vec![500]);
    Ok(())
}

#[test]
fn branches_without_default_drop_and_count() -> Res {
    let b = StreamsBuilder::new();
    let branches = b
        .stream(&["in"], Consumed::with(StringSerde, I64Serde))
        .split()
        .branch("even", |_, v| v % 2 == 0)
        .no_default_branch();
    branches["even"].to("evens");
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("in", StringSerde, I64Serde);
    input.pipe_input("k".into(), 1)?;
    input.pipe_input("k".into(), 2)?;
    assert_eq!(driver.create_output_topic("evens", StringSerde, I64Serde).read_values_to_list()?, vec![2]);
    assert_eq!(driver.dropped_records().get("no branch matched"), Some(&1));
    Ok(())
}

#[test]
fn explicit_repartition_and_key_change_before_join() -> Res {
    let b = StreamsBuilder::new();
    let customers = b.table("customers", Consumed::with(StringSerde, StringSerde), Materialized::as_store("customers"));
    b.stream(&["orders"], Consumed::with(StringSerde, StringSerde))
        // Orders are keyed by order id; re-key by customer (value "customer:amount").
        .select_key(|_, v| v.split(':').next().unwrap_or_default().to_owned())
        .repartition(Repartitioned::with(StringSerde, StringSerde).named("by-customer").with_partitions(4))
        .join(&customers, |order, name| format!("{order} by {name}"))
        .to_with("enriched", Produced::with(StringSerde, StringSerde));
    let topology = b.build()?;
    let rep: Vec<_> = topology.internal_topics().map(|t| (t.name.clone(), t.partitions)).collect();
    assert_eq!(rep, vec![("by-customer-repartition".to_owned(), Some(4))]);
    let driver = TopologyTestDriver::new(&topology)?;
    driver.create_input_topic("customers", StringSerde, StringSerde).pipe_input_at("c1".into(), "Ada".into(), 1)?;
    driver.create_input_topic("orders", StringSerde, StringSerde).pipe_input_at("o1".into(), "c1:10".into(), 2)?;
    let out = driver.create_output_topic("enriched", StringSerde, StringSerde).read_key_values_to_list()?;
    assert_eq!(out, vec![("c1".to_owned(), "c1:10 by Ada".to_owned())]);
    Ok(())
}

#[test]
fn key_change_without_serdes_is_a_build_error_naming_the_fix() {
    let b = StreamsBuilder::new();
    b.stream(&["in"], Consumed::with(StringSerde, StringSerde)).map(|k, v| (v, k)).group_by_key().count();
    match b.build() {
        Err(DslError::MissingSerde { hint, .. }) => assert!(hint.contains("Grouped::with")),
        other => panic!("expected a missing-serde error, got {other:?}"),
    }
}

#[test]
fn peek_foreach_and_process_escape_hatch() -> Res {
    struct Tag;
    impl Processor<String, String, String, String> for Tag {
        fn process(
            &mut self,
            r: Record<String, String>,
            ctx: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), ProcessorError> {
            let node = ctx.node_name().to_owned();
            let v = format!("{}@{node}", r.value());
            ctx.forward(r.with_value(v))
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s1, s2) = (Arc::clone(&seen), Arc::clone(&seen));
    let b = StreamsBuilder::new();
    let s = b.stream(&["in"], Consumed::with(StringSerde, StringSerde));
    s.peek(move |k, _| s1.lock().map(|mut v| v.push(format!("peek {k}"))).unwrap_or(()))
        .process_values(|| Tag, &[])
        .foreach(move |_, v| s2.lock().map(|mut x| x.push(format!("each {v}"))).unwrap_or(()));
    let driver = TopologyTestDriver::new(&b.build()?)?;
    driver.create_input_topic("in", StringSerde, StringSerde).pipe_input("k".into(), "v".into())?;
    let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], "peek k");
    assert!(seen[1].starts_with("each v@KSTREAM-PROCESSVALUES-"), "{seen:?}");
    Ok(())
}

#[test]
fn late_records_are_dropped_counted_and_not_emitted() -> Res {
    let b = StreamsBuilder::new();
    b.stream(&["in"], Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(5)))
        .count()
        .to_stream()
        .to_with("out", Produced::with(WindowedSerde::time(StringSerde, 60_000), Nullable(I64Serde)));
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input_at("card".into(), "p".into(), 59_999)?;
    input.pipe_input_at("card".into(), "p".into(), 65_000)?; // stream time 65 s: [0, 60 s) closes
    input.pipe_input_at("card".into(), "p".into(), 1_000)?; // late
    let out = driver.create_output_topic("out", WindowedSerde::time(StringSerde, 60_000), Nullable(I64Serde));
    let records = out.read_key_values_to_list()?;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0.window, Window { start: 0, end: 60_000 });
    assert_eq!(records[1].0.window, Window { start: 60_000, end: 120_000 });
    assert_eq!(driver.dropped_records().get("record for an expired window"), Some(&1));
    Ok(())
}

#[test]
fn windowed_serde_round_trips_kafka_layout() -> Res {
    let serde = WindowedSerde::time(StringSerde, 10);
    let key = Windowed { key: "k".to_owned(), window: Window { start: 20, end: 30 } };
    let bytes = serde.serialize("t", &mut Headers::new(), &key)?.unwrap_or_default();
    assert_eq!(bytes, [b"k".as_slice(), &20i64.to_be_bytes()].concat());
    assert_eq!(serde.deserialize("t", &Headers::new(), Some(&bytes))?, key);
    let session = WindowedSerde::session(StringSerde);
    let bytes = session.serialize("t", &mut Headers::new(), &key)?.unwrap_or_default();
    assert_eq!(bytes, [b"k".as_slice(), &30i64.to_be_bytes(), &20i64.to_be_bytes()].concat());
    assert_eq!(session.deserialize("t", &Headers::new(), Some(&bytes))?, key);
    assert!(serde.deserialize("t", &Headers::new(), Some(b"short")).is_err());
    Ok(())
}

#[test]
fn to_table_and_table_group_by_count() -> Res {
    let b = StreamsBuilder::new();
    // Latest tier per user, then how many users per tier.
    b.stream(&["tiers"], Consumed::with(StringSerde, StringSerde))
        .to_table(Materialized::as_store("user-tiers"))
        .group_by(|_, tier| (tier.clone(), tier.clone()), Grouped::with(StringSerde, StringSerde))
        .count()
        .to_stream()
        .to_with("per-tier", Produced::with(StringSerde, Nullable(I64Serde)));
    let driver =
        TopologyTestDriver::with_config(&b.build()?, TestDriverConfig { cache_max_bytes: 0, ..Default::default() })?;
    let input = driver.create_input_topic("tiers", StringSerde, StringSerde);
    input.pipe_input_at("u1".into(), "gold".into(), 1)?;
    input.pipe_input_at("u2".into(), "gold".into(), 2)?;
    input.pipe_input_at("u1".into(), "silver".into(), 3)?;
    let out = driver.create_output_topic("per-tier", StringSerde, Nullable(I64Serde)).read_key_values_to_list()?;
    assert_eq!(
        out,
        vec![
            ("gold".to_owned(), Some(1)),
            ("gold".to_owned(), Some(2)),
            ("gold".to_owned(), Some(1)),
            ("silver".to_owned(), Some(1)),
        ]
    );
    assert_eq!(
        driver.timestamped_key_value_store::<String, String>("user-tiers")?.get(&"u1".into())?.map(|(t, _)| t),
        Some("silver".into())
    );
    Ok(())
}

#[test]
fn timestamp_extractor_drives_windows() -> Res {
    let b = StreamsBuilder::new();
    b.stream(
        &["events"],
        Consumed::with(StringSerde, I64Serde).with_timestamp_extractor(|r: &Record<String, i64>| *r.value()),
    )
    .group_by_key()
    .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(100)))
    .count()
    .to_stream()
    .to_with("out", Produced::with(WindowedSerde::time(StringSerde, 100), Nullable(I64Serde)));
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("events", StringSerde, I64Serde);
    // Kafka timestamps say 0; the values carry the event time.
    input.pipe_input_at("k".into(), 150, 0)?;
    input.pipe_input_at("k".into(), 99, 0)?;
    let out = driver
        .create_output_topic("out", WindowedSerde::time(StringSerde, 100), Nullable(I64Serde))
        .read_records_to_list()?;
    assert_eq!(out.len(), 1, "the record at 99 is late for [0, 100) once stream time is 150");
    assert_eq!((out[0].key.window.start, out[0].timestamp), (100, 150));
    assert_eq!(driver.dropped_records().get("record for an expired window"), Some(&1));
    Ok(())
}

#[test]
fn strict_suppression_buffer_stops_when_full() -> Res {
    let b = StreamsBuilder::new();
    b.stream(&["in"], Consumed::with(StringSerde, StringSerde))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_millis(10)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::max_records(1)))
        .to_stream()
        .to_with("out", Produced::with(WindowedSerde::time(StringSerde, 10), Nullable(I64Serde)));
    let driver =
        TopologyTestDriver::with_config(&b.build()?, TestDriverConfig { cache_max_bytes: 0, ..Default::default() })?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input_at("a".into(), "x".into(), 1)?;
    let err = input.pipe_input_at("b".into(), "x".into(), 2).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("suppression buffer") && err.contains("full"), "{err}");
    Ok(())
}

#[test]
fn dynamic_output_topics() -> Res {
    let b = StreamsBuilder::new();
    b.stream(&["in"], Consumed::with(StringSerde, StringSerde))
        .to_dynamic(|_, v, _| format!("out-{v}"), Produced::default());
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input("k".into(), "eu".into())?;
    input.pipe_input("k".into(), "us".into())?;
    assert_eq!(driver.produced_topic_names(), vec!["out-eu".to_owned(), "out-us".to_owned()]);
    Ok(())
}

#[test]
fn process_with_a_state_store_added_to_the_builder() -> Res {
    /// Emits each key's first value only (deduplication).
    struct FirstOnly {
        seen: Option<KeyValueStoreHandle<String, String>>,
    }
    impl Processor<String, String> for FirstOnly {
        fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessorError> {
            self.seen = Some(ctx.key_value_store("seen")?);
            Ok(())
        }
        fn process(
            &mut self,
            r: Record<String, String>,
            ctx: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), ProcessorError> {
            let seen = self.seen.as_ref().ok_or_else(|| ProcessorError::Internal("no store".into()))?;
            if seen.put_if_absent(r.key(), r.value())?.is_none() {
                ctx.forward(r)?;
            }
            Ok(())
        }
    }
    let b = StreamsBuilder::new();
    b.add_state_store(Stores::key_value_store_builder(
        Stores::persistent_key_value_store("seen"),
        StringSerde,
        StringSerde,
    ));
    b.stream(&["in"], Consumed::with(StringSerde, StringSerde))
        .process_values(|| FirstOnly { seen: None }, &["seen"])
        .to_with("out", Produced::with(StringSerde, StringSerde));
    let driver = TopologyTestDriver::new(&b.build()?)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    for (k, v) in [("a", "1"), ("a", "2"), ("b", "3")] {
        input.pipe_input(k.into(), v.into())?;
    }
    let out = driver.create_output_topic("out", StringSerde, StringSerde).read_key_values_to_list()?;
    assert_eq!(out, vec![("a".to_owned(), "1".to_owned()), ("b".to_owned(), "3".to_owned())]);
    Ok(())
}

#[test]
fn logged_stores_write_changelogs_and_unlogged_ones_do_not() -> Res {
    let b = StreamsBuilder::new();
    let s = b.stream(&["in"], Consumed::with(StringSerde, StringSerde));
    s.group_by_key().count_with(Materialized::as_store("logged"));
    s.group_by_key().count_with(Materialized::as_store("unlogged").without_logging());
    let driver =
        TopologyTestDriver::with_config(&b.build()?, TestDriverConfig { cache_max_bytes: 0, ..Default::default() })?;
    driver.create_input_topic("in", StringSerde, StringSerde).pipe_input_at("k".into(), "v".into(), 7)?;
    assert_eq!(driver.produced_topic_names(), vec!["test-app-logged-changelog".to_owned()]);
    // KTable stores log Kafka's ValueAndTimestamp: 8-byte timestamp, then the value.
    let logged =
        driver.create_output_topic("test-app-logged-changelog", StringSerde, BytesSerde).read_records_to_list()?;
    assert_eq!(logged.len(), 1);
    assert_eq!((logged[0].key.as_str(), logged[0].timestamp), ("k", 7));
    assert_eq!(logged[0].value, [7i64.to_be_bytes(), 1i64.to_be_bytes()].concat());
    Ok(())
}
