//! Bad bytes never panic: every built-in serde's deserializer, the typed store
//! handles and the TopologyTestDriver's sources, fed arbitrary bytes, give
//! `Ok` or a typed error (`SerdeError`, `ProcessorError`, `StreamsError`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::{Deserialize, Serialize};
use streams_core::partitioner::{murmur2, partition_for_key};
use streams_core::prelude::*;
use streams_core::serde::{SerdeError, UnitSerde};
use streams_core::StreamsError;

type Res = Result<(), Box<dyn std::error::Error>>;

const TOPIC: &str = "bad-bytes";

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Text that is close to JSON, so that the parser gets past the first byte.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        r#"[\[\]{}",:0-9a-z\\ .eE+\-]{0,48}"#.prop_map(String::into_bytes),
        concat!(
            r#"\{"order_id":"[a-z]{0,3}","amount":-?[0-9]{0,22}(\.[0-9]+)?(e[0-9]{1,4})?,"#,
            r#""tags":\[("[a-z]*",?){0,3}\],"note":(null|"x"|1)\}"#
        )
        .prop_map(String::into_bytes),
        r#"\{("[a-z]{0,2}":(-?[0-9]{1,20}|null|"\\u[0-9a-fA-F]{4}"|\[\]),?){0,4}\}"#.prop_map(String::into_bytes),
    ]
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => bytes(40), 1 => json_ish()]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    order_id: String,
    amount: i64,
    tags: Vec<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
enum Shape {
    Circle { r: f64 },
    Rect { w: u32, h: u32 },
}

/// The error of a serde must be typed and name the topic it read.
fn check_err<T>(result: Result<T, SerdeError>) -> Result<Option<T>, TestCaseError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            prop_assert_eq!(e.topic(), TOPIC);
            prop_assert!(e.to_string().contains(TOPIC), "{}", e);
            Ok(None)
        }
    }
}

/// Deserializes with `serde` and with `Nullable(serde)` and `Arc<serde>`, which
/// must agree; returns whether it was accepted.
fn decode_all_ways<S: Serde + Clone>(serde: &S, raw: &[u8]) -> Result<bool, TestCaseError> {
    let h = Headers::new();
    let plain = check_err(serde.deserialize(TOPIC, &h, Some(raw)))?;
    let nullable = check_err(Nullable(serde.clone()).deserialize(TOPIC, &h, Some(raw)))?;
    let shared = check_err(Arc::new(serde.clone()).deserialize(TOPIC, &h, Some(raw)))?;
    prop_assert_eq!(plain.is_some(), nullable.is_some());
    prop_assert_eq!(plain.is_some(), shared.is_some());
    // Null: an error for the plain serde (unless it is the unit serde), `None` for `Nullable`.
    prop_assert!(matches!(Nullable(serde.clone()).deserialize(TOPIC, &h, None), Ok(None)));
    Ok(plain.is_some())
}

fn check_fixed<S: Serde + Clone>(serde: &S, raw: &[u8], width: usize) -> Result<(), TestCaseError>
where
    S::Target: std::fmt::Debug,
{
    let accepted = decode_all_ways(serde, raw)?;
    prop_assert_eq!(accepted, raw.len() == width);
    if !accepted {
        match serde.deserialize(TOPIC, &Headers::new(), Some(raw)) {
            Err(SerdeError::WrongSize { expected, actual, .. }) => {
                prop_assert_eq!(expected, width);
                prop_assert_eq!(actual, raw.len());
            }
            other => return Err(fail(format!("expected WrongSize, got {other:?}"))),
        }
    }
    prop_assert!(
        matches!(serde.deserialize(TOPIC, &Headers::new(), None), Err(SerdeError::UnexpectedNull { .. })),
        "null must be refused"
    );
    Ok(())
}

fn check_json<T>(raw: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug + 'static,
{
    let serde = JsonSerde::<T>::new();
    let accepted = decode_all_ways(&serde, raw)?;
    prop_assert_eq!(accepted, serde_json::from_slice::<T>(raw).is_ok());
    if !accepted {
        let err = serde.deserialize(TOPIC, &Headers::new(), Some(raw));
        prop_assert!(matches!(err, Err(SerdeError::Json { .. })), "{:?}", err);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn fixed_width_serdes_take_exactly_their_width(raw in bytes(24)) {
        check_fixed(&I32Serde, &raw, 4)?;
        check_fixed(&I64Serde, &raw, 8)?;
        check_fixed(&U64Serde, &raw, 8)?;
        check_fixed(&F64Serde, &raw, 8)?;
        if let Ok(arr) = <[u8; 8]>::try_from(raw.as_slice()) {
            prop_assert_eq!(I64Serde.deserialize(TOPIC, &Headers::new(), Some(&raw[..]))?, i64::from_be_bytes(arr));
            let f = F64Serde.deserialize(TOPIC, &Headers::new(), Some(&raw[..]))?;
            prop_assert_eq!(f.to_bits(), u64::from_be_bytes(arr), "NaN payloads survive");
        }
    }

    #[test]
    fn bytes_strings_and_unit_never_panic(raw in any_bytes()) {
        let h = Headers::new();
        prop_assert!(decode_all_ways(&BytesSerde, &raw)?);
        prop_assert_eq!(BytesSerde.deserialize(TOPIC, &h, Some(&raw[..]))?, raw.clone());
        let utf8 = std::str::from_utf8(&raw).is_ok();
        prop_assert_eq!(decode_all_ways(&StringSerde, &raw)?, utf8);
        if !utf8 {
            let err = StringSerde.deserialize(TOPIC, &h, Some(&raw[..]));
            prop_assert!(matches!(err, Err(SerdeError::InvalidUtf8 { .. })), "{:?}", err);
        }
        // Unit: only null is valid.
        prop_assert!(!decode_all_ways(&UnitSerde, &raw)?);
        prop_assert!(UnitSerde.deserialize(TOPIC, &h, None).is_ok());
        // Nested Nullable.
        let nested = Nullable(Nullable(StringSerde)).deserialize(TOPIC, &h, Some(&raw[..]));
        prop_assert_eq!(check_err(nested)?.is_some(), utf8);
    }

    #[test]
    fn json_serdes_never_panic(raw in any_bytes()) {
        check_json::<Order>(&raw)?;
        check_json::<serde_json::Value>(&raw)?;
        check_json::<HashMap<String, i64>>(&raw)?;
        check_json::<Vec<Option<f64>>>(&raw)?;
        check_json::<(i32, String)>(&raw)?;
        check_json::<Shape>(&raw)?;
        check_json::<String>(&raw)?;
        check_json::<u8>(&raw)?;
        check_json::<bool>(&raw)?;
        check_json::<Option<Order>>(&raw)?;
        check_json::<()>(&raw)?;
    }

    #[test]
    fn partitioning_any_key_never_panics(raw in bytes(64), partitions in prop_oneof![any::<i32>(), -2i32..64]) {
        let _ = murmur2(&raw);
        match partition_for_key(&raw, partitions) {
            Some(p) => prop_assert!(partitions >= 1 && (0..partitions).contains(&p)),
            None => prop_assert!(partitions < 1),
        }
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let arrays = "[".repeat(200_000);
    let objects = r#"{"a":"#.repeat(100_000);
    let mut mixed = String::new();
    for _ in 0..50_000 {
        mixed.push_str(r#"[{"x":"#);
    }
    for raw in [arrays.as_bytes(), objects.as_bytes(), mixed.as_bytes()] {
        let h = Headers::new();
        assert!(matches!(
            JsonSerde::<serde_json::Value>::new().deserialize(TOPIC, &h, Some(raw)),
            Err(SerdeError::Json { .. })
        ));
        assert!(matches!(JsonSerde::<Order>::new().deserialize(TOPIC, &h, Some(raw)), Err(SerdeError::Json { .. })));
        assert!(matches!(
            JsonSerde::<Vec<serde_json::Value>>::new().deserialize(TOPIC, &h, Some(raw)),
            Err(SerdeError::Json { .. })
        ));
    }
}

#[test]
fn numbers_at_the_edges_of_json_are_errors_or_values() {
    let h = Headers::new();
    for raw in ["1e999999", "-1e999999", "18446744073709551616", "-9223372036854775809", "0.", "-", "1e", "\"\\ud800\""]
    {
        let _ = JsonSerde::<serde_json::Value>::new().deserialize(TOPIC, &h, Some(raw.as_bytes()));
        assert!(JsonSerde::<i64>::new().deserialize(TOPIC, &h, Some(raw.as_bytes())).is_err(), "{raw}");
        let _ = JsonSerde::<f64>::new().deserialize(TOPIC, &h, Some(raw.as_bytes()));
        let _ = JsonSerde::<String>::new().deserialize(TOPIC, &h, Some(raw.as_bytes()));
    }
}

// Typed store handles over bytes their serdes did not write.

/// A number that can also be raw bytes when written, so that a test can put
/// any bytes in a store and read them back through `I64Serde`.
#[derive(Debug, Clone, PartialEq)]
enum Num {
    Raw(Vec<u8>),
    Val(i64),
}

#[derive(Debug, Clone, Copy)]
struct NumSerde;

impl Serde for NumSerde {
    type Target = Num;
    fn serialize(&self, _topic: &str, _headers: &mut Headers, data: &Num) -> Result<Option<Vec<u8>>, SerdeError> {
        Ok(Some(match data {
            Num::Raw(b) => b.clone(),
            Num::Val(n) => n.to_be_bytes().to_vec(),
        }))
    }
    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Num, SerdeError> {
        I64Serde.deserialize(topic, headers, data).map(Num::Val)
    }
}

struct Nothing;

impl Processor<Vec<u8>, Vec<u8>> for Nothing {
    fn process(
        &mut self,
        _record: Record<Vec<u8>, Vec<u8>>,
        _ctx: &mut ProcessorContext<'_, Vec<u8>, Vec<u8>>,
    ) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// One source per serde kind, each echoed to `<topic>-out`, and a processor
/// with one store of each kind.
fn topology() -> Result<Topology, Box<dyn std::error::Error>> {
    let mut t = Topology::new();
    t.add_source("str", &["str"], StringSerde, StringSerde)?
        .add_sink("str-out", "str-out", StringSerde, StringSerde, &["str"])?
        .add_source("num", &["num"], Nullable(I32Serde), F64Serde)?
        .add_sink("num-out", "num-out", Nullable(I32Serde), F64Serde, &["num"])?
        .add_source("json", &["json"], Nullable(StringSerde), JsonSerde::<Order>::new())?
        .add_sink("json-out", "json-out", Nullable(StringSerde), JsonSerde::<Order>::new(), &["json"])?
        .add_source("raw", &["raw"], BytesSerde, BytesSerde)?
        .add_processor("nothing", || Nothing, &["raw"])?;
    let day = Duration::from_secs(86_400);
    t.add_state_store(
        Stores::key_value_store_builder(Stores::in_memory_key_value_store("kv"), NumSerde, NumSerde),
        &["nothing"],
    )?
    .add_state_store(
        Stores::timestamped_key_value_store_builder(Stores::in_memory_key_value_store("tkv"), NumSerde, NumSerde),
        &["nothing"],
    )?
    .add_state_store(
        Stores::window_store_builder(
            Stores::in_memory_window_store("w", day, Duration::from_secs(60), false),
            NumSerde,
            NumSerde,
        ),
        &["nothing"],
    )?
    .add_state_store(
        Stores::timestamped_window_store_builder(
            Stores::in_memory_window_store("tw", day, Duration::from_secs(60), false),
            NumSerde,
            NumSerde,
        ),
        &["nothing"],
    )?
    .add_state_store(
        Stores::session_store_builder(Stores::in_memory_session_store("s", day), NumSerde, NumSerde),
        &["nothing"],
    )?;
    Ok(t)
}

fn raw_record() -> impl Strategy<Value = (Option<Vec<u8>>, Option<Vec<u8>>, i64)> {
    (
        prop::option::weighted(0.9, any_bytes()),
        prop::option::weighted(0.9, any_bytes()),
        prop_oneof![9 => 0i64..1_000_000, 1 => any::<i64>()],
    )
}

/// Whether `serde` reads `data`.
fn reads<S: Serde>(serde: &S, data: Option<&[u8]>) -> bool {
    serde.deserialize(TOPIC, &Headers::new(), data).is_ok()
}

/// Arbitrary records piped into sources: accepted (and echoed) exactly when
/// their serdes read them and the timestamp is valid, refused with a typed
/// error otherwise; the driver keeps working either way.
#[test]
fn the_test_driver_takes_arbitrary_records() -> Res {
    let driver = TopologyTestDriver::new(&topology()?)?;
    let outputs = [
        driver.create_output_topic("str-out", Nullable(BytesSerde), Nullable(BytesSerde)),
        driver.create_output_topic("num-out", Nullable(BytesSerde), Nullable(BytesSerde)),
        driver.create_output_topic("json-out", Nullable(BytesSerde), Nullable(BytesSerde)),
    ];
    let mut runner = TestRunner::new(Config { cases: 1_500, failure_persistence: None, ..Config::default() });
    let strategy = (0usize..4, raw_record());
    let result = runner.run(&strategy, |(source, (key, value, ts))| {
        let (topic, accepts) = match source {
            0 => ("str", reads(&StringSerde, key.as_deref()) && reads(&StringSerde, value.as_deref())),
            1 => ("num", reads(&Nullable(I32Serde), key.as_deref()) && reads(&F64Serde, value.as_deref())),
            2 => (
                "json",
                reads(&Nullable(StringSerde), key.as_deref()) && reads(&JsonSerde::<Order>::new(), value.as_deref()),
            ),
            _ => ("raw", value.is_some() && key.is_some()),
        };
        let valid = accepts && ts >= 0;
        match driver.pipe_raw_record(topic, key.as_deref(), value.as_deref(), ts) {
            Ok(()) => {
                prop_assert!(valid, "accepted an invalid record on {}", topic);
                if let Some(out) = outputs.get(source) {
                    // Echoed bytes are what the serdes wrote back: the same value.
                    prop_assert_eq!(out.queue_size(), 1);
                    out.read_record().map_err(fail)?;
                }
            }
            Err(StreamsError::Deserialization { source: e, metadata }) => {
                prop_assert!(!accepts, "refused a readable record on {}: {}", topic, e);
                prop_assert_eq!(&*metadata.topic, topic);
                prop_assert_eq!(e.topic(), topic);
            }
            Err(StreamsError::InvalidTimestamp { timestamp, .. }) => {
                prop_assert!(ts < 0 && timestamp == ts);
            }
            Err(other) => return Err(fail(format!("unexpected error on {topic}: {other:?}"))),
        }
        Ok(())
    });
    result.map_err(|e| e.to_string())?;
    // Still working after all that.
    driver.create_input_topic("str", StringSerde, StringSerde).pipe_input_at("k".into(), "v".into(), 1)?;
    assert_eq!(
        driver.create_output_topic("str-out", StringSerde, StringSerde).read_key_value()?,
        ("k".into(), "v".into())
    );
    Ok(())
}

/// Typed handles reading bytes their value serde cannot read return a typed
/// error (never a panic); 8-byte values are read back.
#[test]
fn typed_store_handles_over_arbitrary_bytes() -> Res {
    let driver = TopologyTestDriver::new(&topology()?)?;
    let kv = driver.key_value_store::<Num, Num>("kv")?;
    let tkv = driver.timestamped_key_value_store::<Num, Num>("tkv")?;
    let w = driver.window_store::<Num, Num>("w")?;
    let tw = driver.timestamped_window_store::<Num, Num>("tw")?;
    let s = driver.session_store::<Num, Num>("s")?;
    let mut runner = TestRunner::new(Config { cases: 1_000, failure_persistence: None, ..Config::default() });
    let strategy = (any_bytes(), any_bytes(), 0i64..10_000_000, 0i64..1_000);
    let result = runner.run(&strategy, |(k, v, start, len)| {
        let (key, value) = (Num::Raw(k.clone()), Num::Raw(v.clone()));
        let readable = v.len() == 8;
        let expected = <[u8; 8]>::try_from(v.as_slice()).ok().map(|a| Num::Val(i64::from_be_bytes(a)));

        kv.put(&key, &value).map_err(fail)?;
        prop_assert_eq!(kv.get(&key).ok().flatten(), expected.clone());
        prop_assert_eq!(kv.get(&key).is_ok(), readable);
        let _ = kv.all();
        let _ = kv.range(&key, &key);
        let _ = kv.prefix_scan(&key);
        let _ = kv.put_if_absent(&key, &value);
        prop_assert_eq!(kv.delete(&key).is_ok(), readable);

        tkv.put(&key, &value, start).map_err(fail)?;
        match tkv.get(&key) {
            Ok(got) => prop_assert_eq!(got, expected.clone().map(|n| (n, start))),
            Err(_) => prop_assert!(!readable),
        }
        let _ = tkv.all();
        let _ = tkv.delete(&key);

        for (handle, ts) in [(&w, -1), (&tw, start)] {
            handle.put(&key, &value, start, start).map_err(fail)?;
            match handle.fetch(&key, start) {
                Ok(got) => prop_assert_eq!(got, expected.clone().map(|n| (n, ts))),
                Err(_) => prop_assert!(!readable),
            }
            let _ = handle.fetch_range(&key, 0, i64::MAX);
            let _ = handle.fetch_all(start, start);
            handle.delete(&key, start).map_err(fail)?;
        }

        let session = Windowed { key: key.clone(), window: Window { start, end: start + len } };
        s.put(&session, &value).map_err(fail)?;
        prop_assert_eq!(s.fetch_session(&session).is_ok(), readable);
        // Keys are decoded too: raw keys that are not 8 bytes are refused.
        let found = s.find_sessions(&key, i64::MIN, i64::MAX);
        prop_assert_eq!(found.is_ok(), readable && k.len() == 8);
        s.remove(&session).map_err(fail)?;
        Ok(())
    });
    result.map_err(|e| e.to_string())?;
    Ok(())
}
