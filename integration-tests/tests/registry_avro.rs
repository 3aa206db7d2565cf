//! Avro through a real schema registry (the vendored Karapace started by
//! scripts/test.sh, or the one in SCHEMA_REGISTRY_URL): round trips, caching,
//! schema evolution both ways, refusals, subject naming, bad bytes, and
//! interop with Confluent's Python client.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use apache_avro::types::Value;
use apache_avro::AvroSchema;
use integration_tests::{bootstrap_servers, create_topic_blocking, produce, read_until, unique_name};
use serde::{Deserialize, Serialize};
use streams_core::serde::registry::{RegistryErrorKind, WireFormatError};
use streams_core::serde::{AvroSerde, GenericAvroSerde, SchemaRegistryClient, SchemaRegistryConfig, Serde, SerdeError};
use streams_core::Headers;

mod common;

use common::registry::{de, python, registry, schema_id, ser};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const V1: &str = r#"{"type": "record", "name": "User", "namespace": "rivulet.test", "fields": [
    {"name": "name", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "note", "type": ["null", "string"], "default": null}]}"#;

/// V1 with `email` added (with a default) and the optional `note` removed.
const V2: &str = r#"{"type": "record", "name": "User", "namespace": "rivulet.test", "fields": [
    {"name": "name", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "email", "type": "string", "default": "none"}]}"#;

/// V1 with a field added without a default: not BACKWARD compatible.
const BAD: &str = r#"{"type": "record", "name": "User", "namespace": "rivulet.test", "fields": [
    {"name": "name", "type": "string"},
    {"name": "age", "type": "int"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "country", "type": "string"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV1 {
    name: String,
    age: i32,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct UserV2 {
    name: String,
    age: i32,
    email: String,
}

fn user(i: i32) -> UserV1 {
    UserV1 { name: format!("user-{i}"), age: 20 + i, note: (i % 2 == 0).then(|| format!("note {i}")) }
}

#[test]
fn typed_round_trip_with_one_registry_call_per_id() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-users");
    let writer_client = SchemaRegistryClient::from_url(&url);
    let writer = AvroSerde::<UserV1>::with_schema(&writer_client, V1)?;
    let encoded: Vec<Vec<u8>> = (0..50).map(|i| ser(&writer, &topic, &user(i))).collect::<Result<_, _>>()?;
    assert_eq!(writer_client.http_calls(), 1, "one registration for 50 records");
    assert!(encoded.iter().all(|b| b[0] == 0 && schema_id(b) == schema_id(&encoded[0])));

    let reader_client = SchemaRegistryClient::from_url(&url);
    let reader = AvroSerde::<UserV1>::with_schema(&reader_client, V1)?;
    for (i, bytes) in (0..).zip(&encoded) {
        assert_eq!(de(&reader, &topic, bytes)?, user(i));
    }
    assert_eq!(reader_client.http_calls(), 1, "one schema fetch for 50 records of one id");
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
struct Reading {
    sensor: String,
    value: f64,
    at: i64,
}

#[test]
fn derived_schemas_and_generic_values() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-readings");
    let client = SchemaRegistryClient::from_url(&url);
    let typed = AvroSerde::<Reading>::new(&client);
    let reading = Reading { sensor: "s1".into(), value: 21.5, at: 1_700_000_000_000 };
    let bytes = ser(&typed, &topic, &reading)?;

    // A reader that knows no schema sees the writer's record.
    let generic = GenericAvroSerde::new(&SchemaRegistryClient::from_url(&url));
    let Value::Record(fields) = de(&generic, &topic, &bytes)? else { panic!("not a record") };
    assert_eq!(
        fields,
        vec![
            ("sensor".to_owned(), Value::String("s1".into())),
            ("value".to_owned(), Value::Double(21.5)),
            ("at".to_owned(), Value::Long(1_700_000_000_000)),
        ]
    );
    // It cannot write without a schema, and says so.
    let err = ser(&generic, &topic, &Value::Null).unwrap_err();
    assert!(err.to_string().contains("with_schema"), "{err}");

    // A generic writer with the schema writes what the typed reader reads.
    let schema_text = serde_json::to_string(&Reading::get_schema())?;
    let generic_writer = GenericAvroSerde::with_schema(&client, &schema_text)?;
    let value = Value::Record(vec![
        ("sensor".into(), Value::String("s2".into())),
        ("value".into(), Value::Double(-3.0)),
        ("at".into(), Value::Long(5)),
    ]);
    let bytes = ser(&generic_writer, &topic, &value)?;
    assert_eq!(de(&typed, &topic, &bytes)?, Reading { sensor: "s2".into(), value: -3.0, at: 5 });
    Ok(())
}

#[test]
fn schema_evolution_both_ways() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-evolution");
    let client = SchemaRegistryClient::from_url(&url);
    let v1 = AvroSerde::<UserV1>::with_schema(&client, V1)?;
    let v2 = AvroSerde::<UserV2>::with_schema(&client, V2)?;
    let old = ser(&v1, &topic, &user(2))?;
    let new = ser(&v2, &topic, &UserV2 { name: "neo".into(), age: 41, email: "neo@example.com".into() })?;
    assert_ne!(schema_id(&old), schema_id(&new), "v2 is a new version of the subject");

    // BACKWARD: the new reader reads old records (the added field takes its default).
    let readers = SchemaRegistryClient::from_url(&url);
    let v2_reader = AvroSerde::<UserV2>::with_schema(&readers, V2)?;
    assert_eq!(de(&v2_reader, &topic, &old)?, UserV2 { name: "user-2".into(), age: 22, email: "none".into() });
    // FORWARD: the old reader reads new records (the removed optional field reads as null).
    let v1_reader = AvroSerde::<UserV1>::with_schema(&readers, V1)?;
    assert_eq!(de(&v1_reader, &topic, &new)?, UserV1 { name: "neo".into(), age: 41, note: None });
    assert_eq!(de(&v1_reader, &topic, &old)?, user(2));
    Ok(())
}

#[test]
fn an_incompatible_schema_is_refused_with_the_registry_message() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-incompatible");
    let client = SchemaRegistryClient::from_url(&url);
    ser(&AvroSerde::<UserV1>::with_schema(&client, V1)?, &topic, &user(1))?;
    let bad = GenericAvroSerde::with_schema(&client, BAD)?;
    let value = Value::Record(vec![
        ("name".into(), Value::String("x".into())),
        ("age".into(), Value::Int(1)),
        ("note".into(), Value::Union(0, Box::new(Value::Null))),
        ("country".into(), Value::String("NL".into())),
    ]);
    match ser(&bad, &topic, &value) {
        Err(SerdeError::Registry { source, .. }) => {
            assert_eq!(source.status(), Some(409), "{source}");
            assert_eq!(source.subject(), Some(format!("{topic}-value").as_str()));
            assert!(!source.is_retriable());
            let RegistryErrorKind::Refused { message, .. } = source.kind() else { panic!("{source}") };
            assert!(!message.is_empty());
            assert!(source.to_string().contains(&url), "{source}");
        }
        other => panic!("expected a 409 refusal, got {other:?}"),
    }
    Ok(())
}

#[test]
fn subject_name_strategies_latest_version_and_lookup() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-subjects");
    let namespace = unique_name("ns").replace('-', "_");
    let schema = V1.replace("rivulet.test", &namespace);
    let full_name = format!("{namespace}.User");

    for (strategy, subject) in
        [("RecordNameStrategy", full_name.clone()), ("TopicRecordNameStrategy", format!("{topic}-{full_name}"))]
    {
        let mut config = SchemaRegistryConfig::new(&url);
        config.set("value.subject.name.strategy", strategy)?;
        let client = SchemaRegistryClient::new(config);
        let bytes = ser(&AvroSerde::<UserV1>::with_schema(&client, &schema)?, &topic, &user(3))?;
        assert_eq!(client.latest(&subject)?.id, schema_id(&bytes), "{strategy} registers under {subject}");
    }
    // Keys go to `<topic>-key`.
    let client = SchemaRegistryClient::from_url(&url);
    let key_bytes = ser(&AvroSerde::<String>::with_schema(&client, r#""string""#)?.for_key(), &topic, &"k".to_owned())?;
    assert_eq!(client.latest(&format!("{topic}-key"))?.id, schema_id(&key_bytes));

    // use.latest.version: a v1 writer writes with the subject's latest (v2) schema.
    let v2_topic = unique_name("avro-latest");
    ser(
        &AvroSerde::<UserV2>::with_schema(&client, V2)?,
        &v2_topic,
        &UserV2 { name: "a".into(), age: 1, email: "a@b".into() },
    )?;
    let mut config = SchemaRegistryConfig::new(&url);
    config.set("use.latest.version", "true")?.set("auto.register.schemas", "false")?;
    let latest_client = SchemaRegistryClient::new(config);
    let bytes = ser(&AvroSerde::<UserV1>::with_schema(&latest_client, V1)?, &v2_topic, &user(4))?;
    assert_eq!(schema_id(&bytes), client.latest(&format!("{v2_topic}-value"))?.id);
    let read = de(&AvroSerde::<UserV2>::with_schema(&client, V2)?, &v2_topic, &bytes)?;
    assert_eq!(read, UserV2 { name: "user-4".into(), age: 24, email: "none".into() });

    // auto.register.schemas=false on a subject that lacks the schema: refused, not registered.
    let mut config = SchemaRegistryConfig::new(&url);
    config.set("auto.register.schemas", "false")?;
    let lookup_client = SchemaRegistryClient::new(config);
    let err =
        ser(&AvroSerde::<UserV1>::with_schema(&lookup_client, V1)?, &unique_name("avro-none"), &user(5)).unwrap_err();
    match err {
        SerdeError::Registry { source, .. } => assert_eq!(source.status(), Some(404), "{source}"),
        other => panic!("expected a 404 refusal, got {other}"),
    }
    Ok(())
}

#[test]
fn bad_bytes_are_deserialization_errors_and_unknown_ids_are_remembered() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("avro-poison");
    let client = SchemaRegistryClient::from_url(&url);
    let serde = AvroSerde::<UserV1>::with_schema(&client, V1)?;
    let unknown = [0u8, 0x7f, 0xff, 0xff, 0xf0, 2, 4];
    for _ in 0..3 {
        match de(&serde, &topic, &unknown) {
            Err(SerdeError::Registry { source, .. }) => {
                assert_eq!(source.status(), Some(404), "{source}");
                assert!(!source.is_retriable());
            }
            other => panic!("expected an unknown-id error, got {other:?}"),
        }
    }
    assert_eq!(client.http_calls(), 1, "an unknown id is asked for once");
    assert!(matches!(
        de(&serde, &topic, &[1, 0, 0, 0, 1, 2]),
        Err(SerdeError::WireFormat { source: WireFormatError::UnknownMagicByte { found: 1 }, .. })
    ));
    assert!(matches!(
        de(&serde, &topic, &[0, 0, 1]),
        Err(SerdeError::WireFormat { source: WireFormatError::Truncated { len: 3 }, .. })
    ));
    // A known id with a payload that is not a datum of its schema.
    let good = ser(&serde, &topic, &user(1))?;
    let mut garbage = good[..5].to_vec();
    garbage.extend_from_slice(&[0xff, 0xff, 0xff]);
    assert!(matches!(de(&serde, &topic, &garbage), Err(SerdeError::Schema { .. })));
    let mut trailing = good.clone();
    trailing.push(7);
    assert!(matches!(de(&serde, &topic, &trailing), Err(SerdeError::Schema { .. })));
    assert_eq!(serde.deserialize(&topic, &Headers::new(), None).unwrap_err().topic(), topic);
    Ok(())
}

#[test]
fn interop_with_the_confluent_python_client() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let (from_python, to_python) = (unique_name("avro-from-py"), unique_name("avro-to-py"));
    create_topic_blocking(&from_python, 1)?;
    create_topic_blocking(&to_python, 1)?;
    let dir = tempfile::tempdir()?;
    let schema_file = dir.path().join("user.avsc");
    std::fs::write(&schema_file, V1)?;
    let bootstrap = bootstrap_servers();
    let schema_path = schema_file.to_string_lossy().into_owned();

    // Python writes, Rivulet reads.
    let lines: String = (0..10)
        .map(|i| {
            let u = user(i);
            serde_json::json!({"key": u.name, "value": {"name": u.name, "age": u.age, "note": u.note}}).to_string()
                + "\n"
        })
        .collect();
    let produce_args = [
        "produce",
        "--bootstrap",
        &bootstrap,
        "--registry",
        &url,
        "--topic",
        &from_python,
        "--format",
        "avro",
        "--schema-file",
        &schema_path,
    ];
    if python(&produce_args, &lines)?.is_none() {
        return Ok(());
    }
    let records = read_until(&from_python, Duration::from_secs(60), |r| r.len() >= 10)?;
    let serde = AvroSerde::<UserV1>::with_schema(&SchemaRegistryClient::from_url(&url), V1)?;
    let read: Vec<UserV1> = records
        .iter()
        .map(|r| de(&serde, &from_python, r.value.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    assert_eq!(read, (0..10).map(user).collect::<Vec<_>>());

    // Rivulet writes, Python reads.
    let encoded: Vec<(String, Vec<u8>)> =
        (10..15).map(|i| Ok((user(i).name, ser(&serde, &to_python, &user(i))?))).collect::<Result<_, SerdeError>>()?;
    let inputs: Vec<integration_tests::Input<'_>> =
        encoded.iter().map(|(k, v)| (Some(k.as_bytes()), Some(v.as_slice()), 1_000)).collect();
    produce(&to_python, &inputs)?;
    let consume_args = [
        "consume",
        "--bootstrap",
        &bootstrap,
        "--registry",
        &url,
        "--topic",
        &to_python,
        "--format",
        "avro",
        "--count",
        "5",
        "--timeout",
        "60",
    ];
    let Some(out) = python(&consume_args, "")? else { return Ok(()) };
    let values: Vec<serde_json::Value> =
        out.lines().map(serde_json::from_str::<serde_json::Value>).collect::<Result<_, _>>()?;
    let expected: Vec<serde_json::Value> = (10..15)
        .map(|i| {
            let u = user(i);
            serde_json::json!({"name": u.name, "age": u.age, "note": u.note})
        })
        .collect();
    assert_eq!(values.iter().map(|v| v["value"].clone()).collect::<Vec<_>>(), expected);
    assert_eq!(values[0]["key"], "user-10");
    Ok(())
}
