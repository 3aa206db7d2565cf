//! The TopologyTestDriver running Processor API topologies: forwarding,
//! punctuation on both clocks, headers, stores, and errors on bad input.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams_core::prelude::*;
use streams_core::serde::SerdeError;
use streams_core::{StoreOperation, StreamsError};

type Res = Result<(), Box<dyn std::error::Error>>;

/// Routes short values to `short`, long ones to `long`, by child name.
struct Router;

impl Processor<String, String> for Router {
    fn process(
        &mut self,
        record: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let child = if record.value().len() < 5 { "short" } else { "long" };
        ctx.forward_to(child, record)
    }
}

struct Upper;

impl Processor<String, String> for Upper {
    fn process(
        &mut self,
        record: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let upper = record.value().to_uppercase();
        ctx.forward(record.with_value(upper))
    }
}

#[test]
fn forward_to_named_children_and_to_all() -> Res {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?
        .add_processor("router", || Router, &["in"])?
        .add_processor("short", || Upper, &["router"])?
        .add_sink("long", "long-out", StringSerde, StringSerde, &["router"])?
        .add_sink("short-out", "short-out", StringSerde, StringSerde, &["short"])?
        .add_sink("all-out", "all-out", StringSerde, StringSerde, &["in"])?;
    let driver = TopologyTestDriver::new(&t)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input_at("k1".into(), "abc".into(), 1)?;
    input.pipe_input_at("k2".into(), "abcdefgh".into(), 2)?;
    let short = driver.create_output_topic("short-out", StringSerde, StringSerde);
    let long = driver.create_output_topic("long-out", StringSerde, StringSerde);
    let all = driver.create_output_topic("all-out", StringSerde, StringSerde);
    assert_eq!(short.read_key_values_to_list()?, vec![("k1".into(), "ABC".into())]);
    assert_eq!(long.read_key_values_to_list()?, vec![("k2".into(), "abcdefgh".into())]);
    assert_eq!(all.queue_size(), 2);
    assert!(matches!(short.read_record(), Err(StreamsError::NoRecord(t)) if t == "short-out"));
    Ok(())
}

#[test]
fn forward_to_an_unknown_child_names_both() -> Res {
    struct Bad;
    impl Processor<String, String> for Bad {
        fn process(
            &mut self,
            r: Record<String, String>,
            ctx: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), ProcessorError> {
            ctx.forward_to("ghost", r)
        }
    }
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?.add_processor("bad", || Bad, &["in"])?;
    let driver = TopologyTestDriver::new(&t)?;
    let err = driver.create_input_topic("in", StringSerde, StringSerde).pipe_input_at("k".into(), "v".into(), 0);
    let text = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("ghost") && text.contains("bad") && text.contains("in-0 offset 0"), "{text}");
    Ok(())
}

/// Emits, on each punctuation, how many records it saw since the last one.
struct Ticker {
    kind: PunctuationType,
    seen: i64,
    schedule: Option<ScheduleId>,
    stop_after: Option<usize>,
    fired: usize,
}

impl Ticker {
    fn new(kind: PunctuationType) -> Self {
        Self { kind, seen: 0, schedule: None, stop_after: None, fired: 0 }
    }
}

impl Processor<String, String, String, i64> for Ticker {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessorError> {
        self.schedule = Some(ctx.schedule(Duration::from_millis(10), self.kind));
        Ok(())
    }

    fn process(
        &mut self,
        _r: Record<String, String>,
        _ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), ProcessorError> {
        self.seen += 1;
        Ok(())
    }

    fn punctuate(
        &mut self,
        id: ScheduleId,
        ts: i64,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), ProcessorError> {
        assert_eq!(Some(id), self.schedule);
        assert!(ctx.record_metadata().is_none(), "no record metadata inside a punctuation");
        ctx.forward(Record::new("tick".to_owned(), self.seen, ts))?;
        self.seen = 0;
        self.fired += 1;
        if Some(self.fired) == self.stop_after {
            ctx.cancel(id);
        }
        Ok(())
    }
}

fn ticker_topology(make: impl Fn() -> Ticker + Send + Sync + 'static) -> Result<Topology, TopologyError> {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?.add_processor("ticker", make, &["in"])?.add_sink(
        "out",
        "ticks",
        StringSerde,
        I64Serde,
        &["ticker"],
    )?;
    Ok(t)
}

#[test]
fn stream_time_punctuation_follows_record_timestamps() -> Res {
    let t = ticker_topology(|| Ticker::new(PunctuationType::StreamTime))?;
    let driver = TopologyTestDriver::new(&t)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    let ticks = driver.create_output_topic("ticks", StringSerde, I64Serde);
    // Wall-clock time does not drive stream-time punctuators.
    driver.advance_wall_clock_time(Duration::from_secs(60))?;
    assert!(ticks.is_empty());
    // Aligned to 0: the first record fires at once, with the stream time.
    input.pipe_input_at("a".into(), "x".into(), 3)?;
    assert_eq!(ticks.read_record()?.timestamp, 3);
    input.pipe_input_at("a".into(), "x".into(), 9)?;
    assert!(ticks.is_empty(), "next punctuation is due at 10");
    input.pipe_input_at("a".into(), "x".into(), 10)?;
    let tick = ticks.read_record()?;
    assert_eq!((tick.value, tick.timestamp), (2, 10));
    // An out-of-order record does not move stream time back.
    input.pipe_input_at("a".into(), "x".into(), 5)?;
    assert!(ticks.is_empty());
    assert_eq!(driver.stream_time_ms(), 10);
    // A jump over several intervals fires once, not once per missed interval.
    input.pipe_input_at("a".into(), "x".into(), 47)?;
    let tick = ticks.read_record()?;
    assert_eq!((tick.value, tick.timestamp), (2, 47));
    assert!(ticks.is_empty());
    input.pipe_input_at("a".into(), "x".into(), 49)?;
    assert!(ticks.is_empty(), "next is due at 50");
    input.pipe_input_at("a".into(), "x".into(), 50)?;
    assert_eq!(ticks.read_value()?, 2);
    Ok(())
}

#[test]
fn wall_clock_punctuation_follows_the_mock_clock() -> Res {
    let t = ticker_topology(|| Ticker::new(PunctuationType::WallClockTime))?;
    let config = TestDriverConfig { initial_wall_clock_ms: 1_000, ..TestDriverConfig::default() };
    let driver = TopologyTestDriver::with_config(&t, config)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    let ticks = driver.create_output_topic("ticks", StringSerde, I64Serde);
    input.pipe_input_at("a".into(), "x".into(), 500_000)?;
    assert!(ticks.is_empty(), "records do not drive wall-clock punctuators");
    driver.advance_wall_clock_time(Duration::from_millis(9))?;
    assert!(ticks.is_empty());
    driver.advance_wall_clock_time(Duration::from_millis(1))?;
    let tick = ticks.read_record()?;
    assert_eq!((tick.value, tick.timestamp), (1, 1_010));
    driver.advance_wall_clock_time(Duration::from_millis(25))?;
    let tick = ticks.read_record()?;
    assert_eq!((tick.value, tick.timestamp), (0, 1_035));
    assert!(ticks.is_empty());
    assert_eq!(driver.wall_clock_time_ms(), 1_035);
    Ok(())
}

#[test]
fn cancelled_schedules_stop_firing() -> Res {
    let t = ticker_topology(|| Ticker { stop_after: Some(1), ..Ticker::new(PunctuationType::WallClockTime) })?;
    let driver =
        TopologyTestDriver::with_config(&t, TestDriverConfig { initial_wall_clock_ms: 0, ..Default::default() })?;
    let ticks = driver.create_output_topic("ticks", StringSerde, I64Serde);
    driver.advance_wall_clock_time(Duration::from_millis(10))?;
    driver.advance_wall_clock_time(Duration::from_millis(100))?;
    assert_eq!(ticks.queue_size(), 1);
    Ok(())
}

/// Adds a header naming itself and reports the record's origin in another.
struct Tag;

impl Processor<String, String> for Tag {
    fn process(
        &mut self,
        mut r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let origin =
            ctx.record_metadata().map(|m| format!("{}/{}/{}", m.topic, m.partition, m.offset)).unwrap_or_default();
        r.headers_mut().add("seen-by", Some(ctx.node_name().as_bytes())).add("origin", Some(origin));
        ctx.forward(r)
    }
}

#[test]
fn headers_pass_through_and_metadata_is_visible() -> Res {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?.add_processor("tag", || Tag, &["in"])?.add_sink(
        "out",
        "out",
        StringSerde,
        StringSerde,
        &["tag"],
    )?;
    let driver = TopologyTestDriver::new(&t)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    let output = driver.create_output_topic("out", StringSerde, StringSerde);
    let mut headers = Headers::new();
    headers.add("trace-id", Some("abc")).add("empty", None::<Vec<u8>>);
    input.pipe_input_at("k".into(), "first".into(), 1)?;
    input.pipe_record(TestRecord { key: "k".into(), value: "v".into(), timestamp: 42, headers })?;
    output.read_record()?;
    let record = output.read_record()?;
    assert_eq!(record.timestamp, 42);
    let h = &record.headers;
    assert_eq!(h.last_header("trace-id").and_then(|h| h.value.as_deref()), Some(&b"abc"[..]));
    assert!(h.last_header("empty").is_some_and(|h| h.value.is_none()));
    assert_eq!(h.last_header("seen-by").and_then(|h| h.value.as_deref()), Some(&b"tag"[..]));
    assert_eq!(h.last_header("origin").and_then(|h| h.value.as_deref()), Some(&b"in/0/1"[..]));
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payment {
    card_id: String,
    amount: f64,
}

#[test]
fn bad_bytes_give_typed_errors_naming_topic_and_offset() -> Res {
    let mut t = Topology::new();
    t.add_source("payments", &["payments"], StringSerde, JsonSerde::<Payment>::new())?
        .add_sink("out", "out", StringSerde, JsonSerde::<Payment>::new(), &["payments"])?
        .add_source("counts", &["counts"], StringSerde, I64Serde)?
        .add_sink("count-out", "count-out", StringSerde, I64Serde, &["counts"])?;
    let driver = TopologyTestDriver::new(&t)?;
    let out = driver.create_output_topic("out", StringSerde, JsonSerde::<Payment>::new());

    driver.pipe_raw_record("payments", Some(b"c1"), Some(br#"{"card_id":"c1","amount":12.5}"#), 1)?;
    assert_eq!(out.read_value()?, Payment { card_id: "c1".into(), amount: 12.5 });

    let bad_json = driver.pipe_raw_record("payments", Some(b"c1"), Some(b"{not json"), 2);
    match bad_json {
        Err(StreamsError::Deserialization { metadata, source: SerdeError::Json { topic, .. } }) => {
            assert_eq!((&*metadata.topic, metadata.offset, topic.as_str()), ("payments", 1, "payments"));
        }
        other => panic!("expected a JSON error, got {other:?}"),
    }
    let bad_utf8 = driver.pipe_raw_record("payments", Some(&[0xc3, 0x28]), Some(b"{}"), 3);
    assert!(matches!(bad_utf8, Err(StreamsError::Deserialization { source: SerdeError::InvalidUtf8 { .. }, .. })));
    let truncated = driver.pipe_raw_record("counts", Some(b"k"), Some(&[0, 0, 1]), 4);
    let text = truncated.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("counts-0 offset 0") && text.contains("8 bytes, got 3"), "{text}");
    let tombstone = driver.pipe_raw_record("counts", Some(b"k"), None, 5);
    assert!(matches!(tombstone, Err(StreamsError::Deserialization { source: SerdeError::UnexpectedNull { .. }, .. })));
    let negative = driver.pipe_raw_record("counts", Some(b"k"), Some(&[0; 8]), -5);
    assert!(matches!(negative, Err(StreamsError::InvalidTimestamp { timestamp: -5, .. })));
    assert!(matches!(driver.pipe_raw_record("nobody", None, None, 0), Err(StreamsError::UnknownTopic(_))));
    // Good records still flow after bad ones.
    driver.pipe_raw_record("payments", Some(b"c2"), Some(br#"{"card_id":"c2","amount":1}"#), 6)?;
    assert_eq!(out.read_value()?.card_id, "c2");
    Ok(())
}

#[test]
fn timestamp_extractor_sets_record_time() -> Res {
    let mut t = Topology::new();
    t.add_source_with_timestamp_extractor(
        "in",
        &["in"],
        Nullable(StringSerde),
        JsonSerde::<serde_json::Value>::new(),
        |r: &Record<Option<String>, serde_json::Value>| r.value()["ts"].as_i64().unwrap_or(r.timestamp()),
    )?
    .add_sink("out", "out", Nullable(StringSerde), JsonSerde::<serde_json::Value>::new(), &["in"])?;
    let driver = TopologyTestDriver::new(&t)?;
    let input = driver.create_input_topic("in", Nullable(StringSerde), JsonSerde::<serde_json::Value>::new());
    let out = driver.create_output_topic("out", Nullable(StringSerde), JsonSerde::<serde_json::Value>::new());
    input.pipe_value_at(serde_json::json!({"ts": 1234}), 99)?;
    input.pipe_input_at(Some("k".into()), serde_json::json!({}), 77)?;
    let first = out.read_record()?;
    assert_eq!((first.key, first.timestamp), (None, 1234));
    assert_eq!(out.read_record()?.timestamp, 77);
    Ok(())
}

/// Counts per key in a store; forwards the running count.
struct Count {
    store: Option<KeyValueStoreHandle<String, i64>>,
}

impl Processor<String, String, String, i64> for Count {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessorError> {
        self.store = Some(ctx.key_value_store("counts")?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, i64>,
    ) -> Result<(), ProcessorError> {
        let store = self.store.as_ref().ok_or_else(|| ProcessorError::Internal("init not called".into()))?;
        let count = store.get(r.key())?.unwrap_or(0) + 1;
        store.put(r.key(), &count)?;
        ctx.forward(r.with_value(count))
    }
}

/// Re-keys each word line into words and writes them to a repartition topic,
/// which a second sub-topology reads and counts.
struct Split;

impl Processor<Option<String>, String, String, String> for Split {
    fn process(
        &mut self,
        r: Record<Option<String>, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let ts = r.timestamp();
        for word in r.value().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            ctx.forward(Record::new(word.to_lowercase(), word.to_owned(), ts))?;
        }
        Ok(())
    }
}

#[test]
fn repartition_topics_are_fed_back_and_stores_are_readable() -> Res {
    let mut t = Topology::new();
    t.add_source("lines", &["text-lines"], Nullable(StringSerde), StringSerde)?
        .add_processor("split", || Split, &["lines"])?
        .add_sink("to-rep", "wc-words-repartition", StringSerde, StringSerde, &["split"])?
        .add_source("words", &["wc-words-repartition"], StringSerde, StringSerde)?
        .add_processor("count", || Count { store: None }, &["words"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts"), StringSerde, I64Serde),
            &["count"],
        )?
        .add_sink("out", "word-counts", StringSerde, I64Serde, &["count"])?;
    assert_eq!(t.describe().subtopologies.len(), 2);
    let driver = TopologyTestDriver::new(&t)?;
    let lines = driver.create_input_topic("text-lines", Nullable(StringSerde), StringSerde);
    let counts = driver.create_output_topic("word-counts", StringSerde, I64Serde);
    lines.pipe_value_at("Hello Kafka, hello Rust".into(), 10)?;
    lines.pipe_input_at(Some("ignored".into()), "rust!".into(), 20)?;
    assert_eq!(
        counts.read_key_values_to_list()?,
        vec![("hello".into(), 1), ("kafka".into(), 1), ("hello".into(), 2), ("rust".into(), 1), ("rust".into(), 2)]
    );
    let store = driver.key_value_store::<String, i64>("counts")?;
    assert_eq!(store.get(&"hello".into())?, Some(2));
    assert_eq!(store.all()?.len(), 3);
    assert_eq!(store.range(&"kafka".into(), &"rust".into())?, vec![("kafka".into(), 1), ("rust".into(), 2)]);
    assert!(matches!(driver.key_value_store::<String, String>("counts"), Err(StreamsError::StoreType { .. })));
    assert!(matches!(driver.key_value_store::<String, i64>("nope"), Err(StreamsError::UnknownStore(_))));
    assert_eq!(
        driver.produced_topic_names(),
        vec!["test-app-counts-changelog".to_owned(), "wc-words-repartition".to_owned(), "word-counts".to_owned()]
    );
    // Every store write went to the store's changelog, in order, with the
    // timestamp of the record that caused it.
    let changelog =
        driver.create_output_topic("test-app-counts-changelog", StringSerde, I64Serde).read_records_to_list()?;
    let logged: Vec<(String, i64, i64)> = changelog.into_iter().map(|r| (r.key, r.value, r.timestamp)).collect();
    assert_eq!(
        logged,
        vec![
            ("hello".into(), 1, 10),
            ("kafka".into(), 1, 10),
            ("hello".into(), 2, 10),
            ("rust".into(), 1, 10),
            ("rust".into(), 2, 20)
        ]
    );
    driver.close()?;
    assert!(store.get(&"hello".into()).is_err(), "stores are closed with the driver");
    Ok(())
}

#[test]
fn the_metered_layer_counts_and_times_store_operations() -> Res {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?
        .add_processor("count", || Count { store: None }, &["in"])?
        .add_state_store(
        Stores::key_value_store_builder(Stores::persistent_key_value_store("counts"), StringSerde, I64Serde),
        &["count"],
    )?;
    let config = TestDriverConfig {
        metrics_recording_level: streams_core::RecordingLevel::Debug,
        ..TestDriverConfig::default()
    };
    let driver = TopologyTestDriver::with_config(&t, config)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    for key in ["a", "b", "a"] {
        input.pipe_input_at(key.into(), "x".into(), 1)?;
    }
    let metrics = driver.store_metrics();
    let [counts] = metrics.as_slice() else { return Err(format!("one store: {metrics:?}").into()) };
    assert_eq!((counts.store.as_str(), counts.task.to_string()), ("counts", "0_0".to_owned()));
    let ops = |m: &streams_core::StoreMetrics| {
        [StoreOperation::Get, StoreOperation::Put, StoreOperation::Delete].map(|op| m.count(op))
    };
    assert_eq!(ops(counts), [3, 3, 0]);
    assert!(counts.count(StoreOperation::Commit) >= 1, "{counts:?}");
    assert!(counts.operations.iter().all(|o| o.total_time.is_some()), "timed at DEBUG: {counts:?}");
    // Reads from outside the topology go through the same layer.
    assert_eq!(driver.key_value_store::<String, i64>("counts")?.get(&"a".into())?, Some(2));
    assert_eq!(ops(&driver.store_metrics()[0]), [4, 3, 0]);

    let untimed = TopologyTestDriver::new(&t)?;
    untimed.create_input_topic("in", StringSerde, StringSerde).pipe_input_at("a".into(), "x".into(), 1)?;
    let metrics = untimed.store_metrics();
    assert_eq!(ops(&metrics[0]), [1, 1, 0]);
    assert!(metrics[0].operations.iter().all(|o| o.total_time.is_none()), "counts only at INFO: {metrics:?}");
    Ok(())
}

#[test]
fn unconnected_store_access_is_refused() -> Res {
    struct Sneaky;
    impl Processor<String, String> for Sneaky {
        fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessorError> {
            ctx.key_value_store::<String, i64>("counts").map(|_| ())
        }
        fn process(
            &mut self,
            _: Record<String, String>,
            _: &mut ProcessorContext<'_, String, String>,
        ) -> Result<(), ProcessorError> {
            Ok(())
        }
    }
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?
        .add_processor("count", || Count { store: None }, &["in"])?
        .add_processor("sneaky", || Sneaky, &["in"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts"), StringSerde, I64Serde),
            &["count"],
        )?;
    let text = TopologyTestDriver::new(&t).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("sneaky") && text.contains("not connected"), "{text}");
    Ok(())
}

#[test]
fn auto_advancing_input_timestamps() -> Res {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?.add_sink("out", "out", StringSerde, StringSerde, &["in"])?;
    let driver = TopologyTestDriver::new(&t)?;
    let input =
        driver.create_input_topic("in", StringSerde, StringSerde).with_auto_advance(100, Duration::from_millis(5));
    let out = driver.create_output_topic("out", StringSerde, StringSerde);
    input.pipe_key_value_list([("a".into(), "1".into()), ("b".into(), "2".into())])?;
    input.advance_time(Duration::from_millis(100));
    input.pipe_input("c".into(), "3".into())?;
    let times: Vec<i64> = out.read_records_to_list()?.iter().map(|r| r.timestamp).collect();
    assert_eq!(times, vec![100, 105, 210]);
    Ok(())
}

#[test]
fn dynamic_topics_and_partitioner() -> Res {
    let mut t = Topology::new();
    t.add_source("in", &["in"], StringSerde, StringSerde)?.add_sink_with(
        "route",
        SinkSpec::extractor(|_k: &String, v: &String, _| format!("out-{v}")).with_partitioner(|_, _, _, n| Some(n - 1)),
        StringSerde,
        StringSerde,
        &["in"],
    )?;
    let driver = TopologyTestDriver::new(&t)?;
    let input = driver.create_input_topic("in", StringSerde, StringSerde);
    input.pipe_input_at("k".into(), "red".into(), 0)?;
    input.pipe_input_at("k".into(), "blue".into(), 0)?;
    assert_eq!(driver.produced_topic_names(), vec!["out-blue".to_owned(), "out-red".to_owned()]);
    Ok(())
}
