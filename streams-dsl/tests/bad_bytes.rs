//! Bad bytes never panic: the DSL's serdes (`WindowedSerde`, and the change,
//! subscription and response records of its internal topics) fed arbitrary
//! bytes give `Ok` or a typed error.
//!
//! The internal-topic serdes are private; they are reached by piping raw
//! records into every topic a DSL topology reads (its sources and its
//! repartition / foreign-key topics) in the TopologyTestDriver. The driver
//! turns a panic in a deserializer or processor into an error, so each error
//! is checked for a caught panic too.

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use streams_dsl::prelude::*;
use streams_dsl::serde::SerdeError;
use streams_dsl::StreamsError;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TOPIC: &str = "bad-bytes";

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Bytes built from the pieces the DSL's encodings are made of (flag bytes,
/// 4-byte lengths, 8-byte hashes and timestamps, short words), so that
/// decoders get past their first checks.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        (0u8..5).prop_map(|b| vec![b]),
        (0u32..12).prop_map(|n| n.to_be_bytes().to_vec()),
        any::<u32>().prop_map(|n| n.to_be_bytes().to_vec()),
        any::<i64>().prop_map(|n| n.to_be_bytes().to_vec()),
        (0i64..100).prop_map(|n| n.to_be_bytes().to_vec()),
        "[a-c]{0,3}".prop_map(String::into_bytes),
        bytes(4),
    ];
    prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
}

fn word() -> impl Strategy<Value = Vec<u8>> {
    "[a-c:]{0,4}".prop_map(String::into_bytes)
}

/// Near-valid records of the DSL's internal topics: table changes
/// `[flags][len(new) 4 BE][new][old]`, foreign-key subscriptions
/// `[instruction][hash?][key]` and responses `[instruction][hash?][0|1][value]`,
/// with flags, instructions, lengths and words sometimes off.
fn internal_record() -> impl Strategy<Value = Vec<u8>> {
    let hash = prop_oneof![Just(vec![0u8]), any::<u64>().prop_map(|h| [&[1u8][..], &h.to_be_bytes()].concat())];
    prop_oneof![
        (0u8..5, word(), word(), prop::option::weighted(0.2, any::<u32>())).prop_map(|(flags, new, old, len)| {
            let len = len.unwrap_or(new.len() as u32);
            [&[flags][..], &len.to_be_bytes(), &new, &old].concat()
        }),
        (0u8..5, hash.clone(), word()).prop_map(|(i, h, key)| [&[i][..], &h, &key].concat()),
        (0u8..5, hash, 0u8..3, word()).prop_map(|(i, h, present, value)| [&[i][..], &h, &[present], &value].concat()),
    ]
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(40), structured()]
}

/// Keys and values piped into the topologies: garbage, near-valid internal
/// records, and valid words (which fill the stores).
fn piped() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![2 => any_bytes(), 2 => internal_record(), 3 => word()]
}

/// A typed error, and not one a caught panic became.
fn check_not_a_panic(e: &StreamsError) -> Result<(), TestCaseError> {
    let (text, debug) = (e.to_string(), format!("{e:?}"));
    prop_assert!(!text.contains("panicked") && !debug.contains("Panic"), "a panic was caught: {}", text);
    Ok(())
}

// WindowedSerde, directly.

fn check_windowed<K: std::fmt::Debug + 'static>(
    serde: &WindowedSerde<K>,
    suffix: usize,
    key_ok: impl Fn(&[u8]) -> bool,
    raw: &[u8],
) -> Result<(), TestCaseError> {
    let h = Headers::new();
    let got = serde.deserialize(TOPIC, &h, Some(raw));
    let expected = raw.len() >= suffix && key_ok(&raw[..raw.len() - suffix]);
    match got {
        Ok(w) => {
            prop_assert!(expected, "accepted {:?} as {:?}", raw, w);
            // Accepted bytes are written back unchanged.
            let mut headers = Headers::new();
            prop_assert_eq!(serde.serialize(TOPIC, &mut headers, &w)?, Some(raw.to_vec()));
        }
        Err(e) => {
            prop_assert!(!expected, "refused {:?}: {}", raw, e);
            prop_assert_eq!(e.topic(), TOPIC);
            if raw.len() < suffix {
                prop_assert!(matches!(e, SerdeError::WrongSize { .. }), "{:?}", e);
            }
        }
    }
    prop_assert!(
        matches!(serde.deserialize(TOPIC, &h, None), Err(SerdeError::UnexpectedNull { .. })),
        "null must be refused"
    );
    let nullable = Nullable(serde.clone()).deserialize(TOPIC, &h, Some(raw));
    prop_assert_eq!(nullable.is_ok(), expected);
    Ok(())
}

fn is_utf8(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn windowed_keys_from_arbitrary_bytes(raw in any_bytes(), size in any::<i64>()) {
        check_windowed(&WindowedSerde::time(StringSerde, size), 8, is_utf8, &raw)?;
        check_windowed(&WindowedSerde::session(StringSerde), 16, is_utf8, &raw)?;
        check_windowed(&WindowedSerde::time(I64Serde, size), 8, |k| k.len() == 8, &raw)?;
        check_windowed(&WindowedSerde::session(I32Serde), 16, |k| k.len() == 4, &raw)?;
        check_windowed(&WindowedSerde::time(BytesSerde, size), 8, |_| true, &raw)?;
        check_windowed(&WindowedSerde::session(BytesSerde), 16, |_| true, &raw)?;
        check_windowed(&WindowedSerde::session(Nullable(StringSerde)), 16, is_utf8, &raw)?;
        // A time window ends `size` after its start, saturating.
        if let Ok(w) = WindowedSerde::time(BytesSerde, size).deserialize(TOPIC, &Headers::new(), Some(&raw[..])) {
            prop_assert_eq!(w.window.end, w.window.start.saturating_add(size));
        }
    }
}

// The DSL's internal topics, through the TopologyTestDriver.

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn s() -> StringSerde {
    StringSerde
}

fn ns() -> Nullable<StringSerde> {
    Nullable(StringSerde)
}

fn num(v: &str) -> i64 {
    v.len() as i64
}

/// DSL topologies with repartition topics, foreign-key join topics, stores
/// of every kind and suppression.
fn topologies() -> Res<Vec<(&'static str, Topology)>> {
    let mut out = Vec::new();

    let b = StreamsBuilder::new();
    b.stream(&["lines"], Consumed::with(ns(), s()))
        .flat_map_values(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .group_by(|_, w| w.clone(), Grouped::with(s(), s()).named("words"))
        .count()
        .to_stream()
        .to_with("counts", Produced::with(s(), Nullable(I64Serde)));
    out.push(("word count", b.build()?));

    let b = StreamsBuilder::new();
    b.table("t", Consumed::with(s(), s()), Materialized::default())
        .group_by(|_, v| (v.chars().take(1).collect::<String>(), v.clone()), Grouped::with(s(), s()).named("regroup"))
        .aggregate(|| 0i64, |_, v, agg| agg + num(v), |_, v, agg| agg - num(v), Materialized::with(s(), I64Serde))
        .to_stream()
        .to_with("sums", Produced::with(s(), Nullable(I64Serde)));
    out.push(("table group-by aggregate", b.build()?));

    let b = StreamsBuilder::new();
    let orders = b.table("orders", Consumed::with(s(), s()), Materialized::default());
    let customers = b.table("customers", Consumed::with(s(), s()), Materialized::default());
    let customer = |v: &String| v.split(':').next().unwrap_or_default().to_owned();
    orders
        .join_foreign_key(&customers, customer, |o, c| format!("{o}+{c}"))
        .to_stream()
        .to_with("inner", Produced::with(s(), ns()));
    orders
        .left_join_foreign_key(&customers, customer, |o, c| format!("{o}+{}", c.map_or("null", String::as_str)))
        .to_stream()
        .to_with("left", Produced::with(s(), ns()));
    out.push(("foreign-key joins", b.build()?));

    let b = StreamsBuilder::new();
    let grouped = b
        .stream(&["events"], Consumed::with(ns(), s()))
        .select_key(|_, v| v.chars().take(2).collect::<String>())
        .group_by_key_with(Grouped::with(s(), s()));
    grouped
        .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
        .count()
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .to_with("windowed", Produced::with(WindowedSerde::time(s(), 10), Nullable(I64Serde)));
    grouped
        .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(0)))
        .count()
        .to_stream()
        .to_with("sessions", Produced::with(WindowedSerde::session(s()), Nullable(I64Serde)));
    grouped
        .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(ms(10), ms(5)))
        .count()
        .to_stream()
        .to_with("sliding", Produced::with(WindowedSerde::time(s(), 10), Nullable(I64Serde)));
    out.push(("windowed, session and sliding counts with suppression", b.build()?));

    let b = StreamsBuilder::new();
    let l = b.stream(&["l"], Consumed::with(s(), s()));
    let r = b.stream(&["r"], Consumed::with(s(), s()));
    l.outer_join_stream(
        &r,
        |a, c| format!("{}+{}", a.map_or("null", String::as_str), c.map_or("null", String::as_str)),
        JoinWindows::of_time_difference_and_grace(ms(10), ms(0)),
    )
    .to_with("joined", Produced::with(s(), s()));
    let g = b.global_table("g", Consumed::with(s(), s()), Materialized::default());
    l.left_join_global(&g, |k, _| k.clone(), |v, gv| format!("{v}+{}", gv.map_or("null", String::as_str)))
        .to_with("global-joined", Produced::with(s(), s()));
    b.table("limited", Consumed::with(s(), s()), Materialized::default())
        .suppress(Suppressed::until_time_limit(ms(10), BufferConfig::max_records(3).emit_early_when_full()))
        .to_stream()
        .to_with("limited-out", Produced::with(s(), ns()));
    out.push(("stream-stream, global and suppressed-table joins", b.build()?));

    Ok(out)
}

/// Every topic the topology reads, as the driver names them.
fn read_topics(topology: &Topology) -> Vec<String> {
    let mut topics: Vec<String> =
        topology.source_topics().into_iter().map(|t| topology.resolve_topic("test-app", &t)).collect();
    topics.push("g".to_owned());
    topics.sort();
    topics.dedup();
    topics
}

/// Arbitrary records into every topic of each topology (valid ones mixed in,
/// so that stores fill up and later garbage meets state): each is processed
/// or refused with a typed error, and no panic is caught on the way.
#[test]
fn arbitrary_records_on_every_topic_a_topology_reads() -> Res {
    let mut internal = Vec::new();
    for (name, topology) in topologies()? {
        let topics = read_topics(&topology);
        internal.extend(topics.iter().filter(|t| t.starts_with("test-app-")).cloned());
        let config = TestDriverConfig { cache_max_bytes: 0, initial_wall_clock_ms: 0, ..TestDriverConfig::default() };
        let driver = TopologyTestDriver::with_config(&topology, config)?;
        let mut runner = TestRunner::new(Config { cases: 1_000, failure_persistence: None, ..Config::default() });
        let record = (
            any::<prop::sample::Index>(),
            prop::option::weighted(0.9, piped()),
            prop::option::weighted(0.9, piped()),
            prop_oneof![9 => 0i64..200, 1 => any::<i64>()],
            0u64..30,
        );
        let result = runner.run(&record, |(which, key, value, ts, wall)| {
            let topic = &topics[which.index(topics.len())];
            match driver.pipe_raw_record(topic, key.as_deref(), value.as_deref(), ts) {
                Ok(()) => {}
                Err(e) => check_not_a_panic(&e)?,
            }
            if let Err(e) = driver.advance_wall_clock_time(ms(wall)) {
                check_not_a_panic(&e)?;
            }
            Ok(())
        });
        result.map_err(|e| format!("{name}: {e}"))?;
        for topic in driver.produced_topic_names() {
            // Whatever was produced reads back as bytes.
            let out = driver.create_output_topic(&topic, Nullable(BytesSerde), Nullable(BytesSerde));
            out.read_records_to_list().map_err(|e| format!("{name}: {topic}: {e}"))?;
        }
    }
    // Repartition topics of four aggregations, and the subscription and
    // response topics of the foreign-key joins.
    assert!(internal.len() >= 6, "internal topics: {internal:?}");
    Ok(())
}

/// Garbage on the windowed output topics read back through `WindowedSerde`.
#[test]
fn windowed_outputs_read_back() -> Res {
    let topologies = topologies()?;
    let (_, topology) = topologies.get(3).ok_or("no windowed topology")?;
    let driver = TopologyTestDriver::new(topology)?;
    let input = driver.create_input_topic("events", ns(), s());
    for (i, v) in ["aa", "ab", "aa", "b", "aa"].iter().enumerate() {
        input.pipe_input_at(None, (*v).to_owned(), i as i64 * 7)?;
    }
    for r in driver
        .create_output_topic("sessions", WindowedSerde::session(s()), Nullable(I64Serde))
        .read_records_to_list()?
    {
        assert!(r.key.window.start <= r.key.window.end, "{r:?}");
    }
    assert!(!driver.create_output_topic("sliding", WindowedSerde::time(s(), 10), Nullable(I64Serde)).is_empty());
    Ok(())
}
