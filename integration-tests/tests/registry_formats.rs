//! Protobuf and JSON Schema through a real schema registry (the vendored
//! Karapace started by scripts/test.sh, or the one in SCHEMA_REGISTRY_URL):
//! round trips, subject naming, refusals of incompatible schemas, bad bytes,
//! and interop with Confluent's Python client both ways.

use std::time::Duration;

use integration_tests::{bootstrap_servers, create_topic_blocking, produce, read_until, unique_name};
use serde::{Deserialize, Serialize};
use streams_core::serde::registry::WireFormatError;
use streams_core::serde::{
    JsonSchemaSerde, ProtobufSerde, SchemaRegistryClient, SchemaRegistryConfig, Serde, SerdeError,
};
use streams_core::Headers;

mod common;

use common::registry::{de, failure, python, registry, schema_id, ser};

type TestResult = Result<(), Box<dyn std::error::Error>>;

// --- Protobuf -----------------------------------------------------------------

/// `Order` is the second top-level message (indexes `[1]`), `Order.Line` is
/// nested (`[1, 0]`).
const ORDER_PROTO: &str = r#"syntax = "proto3";
package rivulet.test;

message Envelope {
  string note = 1;
}

message Order {
  message Line {
    string sku = 1;
    int32 quantity = 2;
  }
  string id = 1;
  int64 cents = 2;
  repeated Line lines = 3;
  bool paid = 4;
}
"#;

#[derive(Clone, PartialEq, prost::Message)]
struct Line {
    #[prost(string, tag = "1")]
    sku: String,
    #[prost(int32, tag = "2")]
    quantity: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Order {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(int64, tag = "2")]
    cents: i64,
    #[prost(message, repeated, tag = "3")]
    lines: Vec<Line>,
    #[prost(bool, tag = "4")]
    paid: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OrderBadId {
    #[prost(int64, tag = "1")]
    id: i64,
}

fn order(i: i64) -> Order {
    Order {
        id: format!("order-{i}"),
        cents: 1_000 * i + 99,
        lines: (0..i % 3)
            .map(|n| Line { sku: format!("sku-{n}"), quantity: i32::try_from(n + 1).unwrap_or(1) })
            .collect(),
        paid: i % 2 == 0,
    }
}

/// An order as Python's `MessageToDict(preserving_proto_field_name=True)`
/// prints it: fields with default values left out, int64 as strings.
fn order_as_python_json(o: &Order) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("id".into(), o.id.clone().into());
    if o.cents != 0 {
        map.insert("cents".into(), o.cents.to_string().into());
    }
    if !o.lines.is_empty() {
        let lines = o
            .lines
            .iter()
            .map(|l| {
                let mut line = serde_json::Map::new();
                line.insert("sku".into(), l.sku.clone().into());
                if l.quantity != 0 {
                    line.insert("quantity".into(), l.quantity.into());
                }
                serde_json::Value::Object(line)
            })
            .collect();
        map.insert("lines".into(), serde_json::Value::Array(lines));
    }
    if o.paid {
        map.insert("paid".into(), true.into());
    }
    serde_json::Value::Object(map)
}

// --- JSON Schema ----------------------------------------------------------------

const PAYMENT_SCHEMA: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "Payment",
  "type": "object",
  "properties": {
    "card_id": {"type": "string"},
    "amount": {"type": "number", "minimum": 0},
    "currency": {"type": "string", "enum": ["EUR", "USD"]},
    "note": {"type": ["string", "null"]}
  },
  "required": ["card_id", "amount", "currency"]
}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Payment {
    card_id: String,
    amount: f64,
    currency: String,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PaymentTextAmount {
    card_id: String,
    amount: String,
    currency: String,
}

fn payment(i: u32) -> Payment {
    Payment {
        card_id: format!("card-{i}"),
        amount: f64::from(i) * 2.5,
        currency: if i.is_multiple_of(2) { "EUR" } else { "USD" }.to_owned(),
        note: i.is_multiple_of(3).then(|| format!("note {i}")),
    }
}

// --- Helpers --------------------------------------------------------------------

/// Asserts that `result` is the registry's HTTP 409 refusal for `subject`.
fn assert_incompatible<T: std::fmt::Debug>(result: Result<T, SerdeError>, subject: &str) {
    match result {
        Err(SerdeError::Registry { source, .. }) => {
            assert_eq!(source.status(), Some(409), "{source}");
            assert_eq!(source.subject(), Some(subject), "{source}");
            assert!(!source.is_retriable(), "{source}");
        }
        other => panic!("expected an HTTP 409 refusal for subject {subject}, got {other:?}"),
    }
}

/// The wire-format errors every registry serde gives for the same bad bytes:
/// an unknown schema id (HTTP 404, asked once), magic byte 1, a truncated header.
fn assert_bad_bytes_errors<S: Serde>(serde: &S, client: &SchemaRegistryClient, topic: &str)
where
    S::Target: std::fmt::Debug,
{
    let unknown = [0u8, 0x7f, 0xff, 0xff, 0xf0, 0, 2];
    let calls = client.http_calls();
    for _ in 0..3 {
        match de(serde, topic, &unknown) {
            Err(SerdeError::Registry { source, .. }) => {
                assert_eq!(source.status(), Some(404), "{source}");
                assert!(!source.is_retriable(), "{source}");
            }
            other => panic!("expected an unknown-id error, got {other:?}"),
        }
    }
    assert_eq!(client.http_calls(), calls + 1, "an unknown id is asked for once");
    match de(serde, topic, &[1, 0, 0, 0, 1, 0, 2]) {
        Err(SerdeError::WireFormat { source: WireFormatError::UnknownMagicByte { found: 1 }, topic: t }) => {
            assert_eq!(t, topic)
        }
        other => panic!("expected an unknown magic byte, got {other:?}"),
    }
    assert!(
        matches!(
            de(serde, topic, &[0, 0, 1]),
            Err(SerdeError::WireFormat { source: WireFormatError::Truncated { len: 3 }, .. })
        ),
        "a 3-byte value is a truncated header"
    );
    assert!(matches!(serde.deserialize(topic, &Headers::new(), None), Err(SerdeError::UnexpectedNull { .. })));
}

/// Python's `consume` output: one JSON object a line.
fn json_lines(out: &str) -> Result<Vec<serde_json::Value>, serde_json::Error> {
    out.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect()
}

// --- Protobuf tests -------------------------------------------------------------

#[test]
fn protobuf_round_trip_with_one_registry_call_per_topic_and_id() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("proto-orders");
    let writer_client = SchemaRegistryClient::from_url(&url);
    let writer = ProtobufSerde::<Order>::new(&writer_client, ORDER_PROTO, "rivulet.test.Order")?;
    assert_eq!(writer.message_indexes(), [1]);
    let encoded: Vec<Vec<u8>> = (0..20).map(|i| ser(&writer, &topic, &order(i))).collect::<Result<_, _>>()?;
    assert_eq!(writer_client.http_calls(), 1, "one registration for 20 records");
    let id = schema_id(&encoded[0]);
    for bytes in &encoded {
        assert_eq!(
            bytes[..7],
            [0, id.to_be_bytes()[0], id.to_be_bytes()[1], id.to_be_bytes()[2], id.to_be_bytes()[3], 2, 2]
        );
    }
    assert_eq!(writer_client.latest(&format!("{topic}-value"))?.id, id, "registered under <topic>-value");

    let reader_client = SchemaRegistryClient::from_url(&url);
    let reader = ProtobufSerde::<Order>::new(&reader_client, ORDER_PROTO, "rivulet.test.Order")?;
    for (i, bytes) in (0..).zip(&encoded) {
        assert_eq!(de(&reader, &topic, bytes)?, order(i));
    }
    assert_eq!(reader_client.http_calls(), 1, "one schema fetch for 20 records of one id");
    let fetched = reader_client.schema_by_id(id)?;
    assert_eq!(fetched.kind, streams_core::serde::registry::SchemaKind::Protobuf);

    // A nested message as the key, on the same topic: `<topic>-key`, indexes [1, 0].
    let key_serde = ProtobufSerde::<Line>::new(&writer_client, ORDER_PROTO, "rivulet.test.Order.Line")?.for_key();
    let line = Line { sku: "k-1".into(), quantity: 7 };
    let key_bytes = ser(&key_serde, &topic, &line)?;
    assert_eq!(key_bytes[5..8], [4, 2, 0]);
    assert_eq!(writer_client.latest(&format!("{topic}-key"))?.id, schema_id(&key_bytes));
    assert_eq!(de(&key_serde, &topic, &key_bytes)?, line);
    Ok(())
}

#[test]
fn protobuf_record_name_strategy_and_use_latest_version() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("proto-subjects");
    let package = unique_name("rivulet").replace('-', "_");
    let proto = ORDER_PROTO.replace("package rivulet.test;", &format!("package {package};"));
    let full_name = format!("{package}.Order");

    let mut config = SchemaRegistryConfig::new(&url);
    config.set("value.subject.name.strategy", "io.confluent.kafka.serializers.subject.RecordNameStrategy")?;
    let client = SchemaRegistryClient::new(config);
    let bytes = ser(&ProtobufSerde::<Order>::new(&client, &proto, &full_name)?, &topic, &order(1))?;
    assert_eq!(client.latest(&full_name)?.id, schema_id(&bytes), "registered under the message's full name");

    // use.latest.version without registering: the id of the subject's latest schema.
    let mut config = SchemaRegistryConfig::new(&url);
    config
        .set("value.subject.name.strategy", "RecordNameStrategy")?
        .set("use.latest.version", "true")?
        .set("auto.register.schemas", "false")?;
    let latest_client = SchemaRegistryClient::new(config);
    let latest = ProtobufSerde::<Order>::new(&latest_client, &proto, &full_name)?;
    let again = ser(&latest, &unique_name("proto-other-topic"), &order(2))?;
    assert_eq!(schema_id(&again), schema_id(&bytes));
    assert_eq!(again[5..7], [2, 2], "the message keeps its indexes in the latest schema");
    assert_eq!(de(&latest, &topic, &again)?, order(2));
    Ok(())
}

#[test]
fn protobuf_incompatible_schema_is_refused_with_409() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("proto-incompatible");
    let client = SchemaRegistryClient::from_url(&url);
    ser(&ProtobufSerde::<Order>::new(&client, ORDER_PROTO, "rivulet.test.Order")?, &topic, &order(1))?;
    // `Order` with field 1 turned from a string into an int64: not compatible.
    let order_proto_bad = ORDER_PROTO.replace("  string id = 1;", "  int64 id = 1;");
    assert_ne!(order_proto_bad, ORDER_PROTO);
    let bad = ProtobufSerde::<OrderBadId>::new(&client, &order_proto_bad, "rivulet.test.Order")?;
    assert_incompatible(ser(&bad, &topic, &OrderBadId { id: 5 }), &format!("{topic}-value"));
    Ok(())
}

#[test]
fn protobuf_bad_bytes_are_errors() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("proto-poison");
    let client = SchemaRegistryClient::from_url(&url);
    let serde = ProtobufSerde::<Order>::new(&client, ORDER_PROTO, "rivulet.test.Order")?;
    assert_bad_bytes_errors(&serde, &client, &topic);

    let good = ser(&serde, &topic, &order(4))?;
    // Known id, message indexes cut off.
    assert!(matches!(
        de(&serde, &topic, &good[..5]),
        Err(SerdeError::WireFormat { source: WireFormatError::MessageIndexes { .. }, .. })
    ));
    // Known id and indexes, a message that does not decode (a length past the end).
    let mut garbage = good[..7].to_vec();
    garbage.extend_from_slice(&[0x0a, 0x7f, b'x']);
    assert!(matches!(de(&serde, &topic, &garbage), Err(SerdeError::Schema { format: "Protobuf", .. })));

    // The id of a JSON schema is not a Protobuf one.
    let json_bytes =
        ser(&JsonSchemaSerde::<Payment>::new(&client, PAYMENT_SCHEMA)?, &unique_name("json-x"), &payment(1))?;
    let err = failure(de(&serde, &topic, &json_bytes));
    assert!(matches!(&err, SerdeError::Schema { format: "Protobuf", .. }) && err.to_string().contains("JSON"), "{err}");
    Ok(())
}

// --- JSON Schema tests ----------------------------------------------------------

#[test]
fn json_schema_round_trip_with_one_registry_call_per_topic_and_id() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("json-payments");
    let writer_client = SchemaRegistryClient::from_url(&url);
    let writer = JsonSchemaSerde::<Payment>::new(&writer_client, PAYMENT_SCHEMA)?;
    let encoded: Vec<Vec<u8>> = (0..20).map(|i| ser(&writer, &topic, &payment(i))).collect::<Result<_, _>>()?;
    assert_eq!(writer_client.http_calls(), 1, "one registration for 20 records");
    let id = schema_id(&encoded[0]);
    assert!(encoded.iter().all(|b| b[0] == 0 && schema_id(b) == id));
    let json: serde_json::Value = serde_json::from_slice(&encoded[3][5..])?;
    assert_eq!(json, serde_json::json!({"card_id": "card-3", "amount": 7.5, "currency": "USD", "note": "note 3"}));
    assert_eq!(writer_client.latest(&format!("{topic}-value"))?.id, id);

    let reader_client = SchemaRegistryClient::from_url(&url);
    let reader = JsonSchemaSerde::<Payment>::new(&reader_client, PAYMENT_SCHEMA)?;
    for (i, bytes) in (0..).zip(&encoded) {
        assert_eq!(de(&reader, &topic, bytes)?, payment(i));
    }
    assert_eq!(reader_client.http_calls(), 1, "one schema fetch for 20 records of one id");

    // A value the schema forbids is refused before anything is written.
    let bad = Payment { amount: -1.0, currency: "GBP".into(), ..payment(1) };
    let err = failure(ser(&writer, &topic, &bad)).to_string();
    assert!(err.contains("/amount") && err.contains("/currency"), "{err}");

    // Keys go to `<topic>-key`; the record-name strategy uses the title.
    let key_bytes =
        ser(&JsonSchemaSerde::<Payment>::new(&writer_client, PAYMENT_SCHEMA)?.for_key(), &topic, &payment(1))?;
    assert_eq!(writer_client.latest(&format!("{topic}-key"))?.id, schema_id(&key_bytes));
    let mut config = SchemaRegistryConfig::new(&url);
    config.set("value.subject.name.strategy", "TopicRecordNameStrategy")?;
    let named = SchemaRegistryClient::new(config);
    let named_bytes = ser(&JsonSchemaSerde::<Payment>::new(&named, PAYMENT_SCHEMA)?, &topic, &payment(2))?;
    assert_eq!(named.latest(&format!("{topic}-Payment"))?.id, schema_id(&named_bytes));
    Ok(())
}

#[test]
fn json_schema_reader_validates_against_the_writers_schema() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("json-writer-schema");
    let client = SchemaRegistryClient::from_url(&url);
    // Another program writes with a looser schema of its own (no minimum).
    let loose = PAYMENT_SCHEMA.replace(r#", "minimum": 0"#, "");
    let loose_writer = JsonSchemaSerde::<Payment>::new(&client, &loose)?;
    let negative = Payment { amount: -4.0, ..payment(1) };
    let bytes = ser(&loose_writer, &topic, &negative)?;
    // Our reader accepts it: the writer's schema is the one checked.
    let reader = JsonSchemaSerde::<Payment>::new(&SchemaRegistryClient::from_url(&url), PAYMENT_SCHEMA)?;
    assert_eq!(de(&reader, &topic, &bytes)?, negative);
    // Bytes that claim the writer's id but break its schema are refused.
    let mut forged = bytes[..5].to_vec();
    forged.extend_from_slice(br#"{"card_id": "c", "amount": 1, "currency": "XXX"}"#);
    let err = failure(de(&reader, &topic, &forged));
    assert!(
        matches!(&err, SerdeError::Schema { format: "JSON Schema", .. }) && err.to_string().contains("/currency"),
        "{err}"
    );
    Ok(())
}

#[test]
fn json_schema_incompatible_schema_is_refused_with_409() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("json-incompatible");
    let client = SchemaRegistryClient::from_url(&url);
    ser(&JsonSchemaSerde::<Payment>::new(&client, PAYMENT_SCHEMA)?, &topic, &payment(1))?;
    // `amount` turned into a string: not compatible.
    let payment_schema_bad =
        PAYMENT_SCHEMA.replace(r#""amount": {"type": "number", "minimum": 0}"#, r#""amount": {"type": "string"}"#);
    assert_ne!(payment_schema_bad, PAYMENT_SCHEMA);
    let bad = JsonSchemaSerde::<PaymentTextAmount>::new(&client, &payment_schema_bad)?;
    let value = PaymentTextAmount { card_id: "c".into(), amount: "12.50".into(), currency: "EUR".into() };
    assert_incompatible(ser(&bad, &topic, &value), &format!("{topic}-value"));
    Ok(())
}

#[test]
fn json_schema_bad_bytes_are_errors() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let topic = unique_name("json-poison");
    let client = SchemaRegistryClient::from_url(&url);
    let serde = JsonSchemaSerde::<Payment>::new(&client, PAYMENT_SCHEMA)?;
    assert_bad_bytes_errors(&serde, &client, &topic);

    let good = ser(&serde, &topic, &payment(1))?;
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 3);
    assert!(matches!(de(&serde, &topic, &truncated), Err(SerdeError::Json { .. })), "cut-off JSON");

    // The id of a Protobuf schema is not a JSON one.
    let proto = ser(
        &ProtobufSerde::<Order>::new(&client, ORDER_PROTO, "rivulet.test.Order")?,
        &unique_name("proto-x"),
        &order(1),
    )?;
    let err = failure(de(&serde, &topic, &proto));
    assert!(
        matches!(&err, SerdeError::Schema { format: "JSON Schema", .. }) && err.to_string().contains("PROTOBUF"),
        "{err}"
    );
    Ok(())
}

// --- Interop with Confluent's Python client -------------------------------------

#[test]
fn protobuf_interop_with_the_confluent_python_client() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let (from_python, to_python) = (unique_name("proto-from-py"), unique_name("proto-to-py"));
    create_topic_blocking(&from_python, 1)?;
    create_topic_blocking(&to_python, 1)?;
    let dir = tempfile::tempdir()?;
    let schema_file = dir.path().join("rivulet_order.proto");
    std::fs::write(&schema_file, ORDER_PROTO)?;
    let schema_path = schema_file.to_string_lossy().into_owned();
    let bootstrap = bootstrap_servers();

    // Python's ProtobufSerializer writes, Rivulet reads.
    let lines: String = (0..10)
        .map(|i| {
            serde_json::json!({"key": format!("k{i}"), "value": order_as_python_json(&order(i))}).to_string() + "\n"
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
        "protobuf",
        "--schema-file",
        &schema_path,
        "--proto-message",
        "rivulet.test.Order",
    ];
    if python(&produce_args, &lines)?.is_none() {
        return Ok(());
    }
    let records = read_until(&from_python, Duration::from_secs(60), |r| r.len() >= 10)?;
    let client = SchemaRegistryClient::from_url(&url);
    let serde = ProtobufSerde::<Order>::new(&client, ORDER_PROTO, "rivulet.test.Order")?;
    let read: Vec<Order> = records
        .iter()
        .map(|r| de(&serde, &from_python, r.value.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    assert_eq!(read, (0..10).map(order).collect::<Vec<_>>());
    assert!(
        records.iter().all(|r| r.value.as_deref().is_some_and(|v| v.get(5..7) == Some(&[2, 2][..]))),
        "Python wrote the message indexes [1] of rivulet.test.Order"
    );

    // Rivulet writes, Python's ProtobufDeserializer reads.
    let encoded: Vec<(String, Vec<u8>)> = (10..15)
        .map(|i| Ok((format!("k{i}"), ser(&serde, &to_python, &order(i))?)))
        .collect::<Result<_, SerdeError>>()?;
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
        "protobuf",
        "--count",
        "5",
        "--timeout",
        "60",
        "--schema-file",
        &schema_path,
        "--proto-message",
        "rivulet.test.Order",
    ];
    let Some(out) = python(&consume_args, "")? else { return Ok(()) };
    let values = json_lines(&out)?;
    assert!(values.iter().all(|v| v.get("error").is_none()), "Python could not read some records: {out}");
    assert_eq!(
        values.iter().map(|v| v["value"].clone()).collect::<Vec<_>>(),
        (10..15).map(|i| order_as_python_json(&order(i))).collect::<Vec<_>>()
    );
    assert_eq!(values[0]["key"], "k10");
    assert_eq!(values[0]["schema_id"], schema_id(&encoded[0].1));
    Ok(())
}

#[test]
fn json_schema_interop_with_the_confluent_python_client() -> TestResult {
    let Some(url) = registry() else { return Ok(()) };
    let (from_python, to_python) = (unique_name("json-from-py"), unique_name("json-to-py"));
    create_topic_blocking(&from_python, 1)?;
    create_topic_blocking(&to_python, 1)?;
    let dir = tempfile::tempdir()?;
    let schema_file = dir.path().join("payment.json");
    std::fs::write(&schema_file, PAYMENT_SCHEMA)?;
    let schema_path = schema_file.to_string_lossy().into_owned();
    let bootstrap = bootstrap_servers();

    // Python's JSONSerializer writes, Rivulet reads.
    let lines: String =
        (0..10).map(|i| serde_json::json!({"key": format!("k{i}"), "value": payment(i)}).to_string() + "\n").collect();
    let produce_args = [
        "produce",
        "--bootstrap",
        &bootstrap,
        "--registry",
        &url,
        "--topic",
        &from_python,
        "--format",
        "json",
        "--schema-file",
        &schema_path,
    ];
    if python(&produce_args, &lines)?.is_none() {
        return Ok(());
    }
    let records = read_until(&from_python, Duration::from_secs(60), |r| r.len() >= 10)?;
    let client = SchemaRegistryClient::from_url(&url);
    let serde = JsonSchemaSerde::<Payment>::new(&client, PAYMENT_SCHEMA)?;
    let read: Vec<Payment> = records
        .iter()
        .map(|r| de(&serde, &from_python, r.value.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    assert_eq!(read, (0..10).map(payment).collect::<Vec<_>>());

    // Rivulet writes, Python's JSONDeserializer reads (validating with the writer's schema).
    let encoded: Vec<(String, Vec<u8>)> = (10..15)
        .map(|i| Ok((format!("k{i}"), ser(&serde, &to_python, &payment(i))?)))
        .collect::<Result<_, SerdeError>>()?;
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
        "json",
        "--count",
        "5",
        "--timeout",
        "60",
    ];
    let Some(out) = python(&consume_args, "")? else { return Ok(()) };
    let values = json_lines(&out)?;
    assert!(values.iter().all(|v| v.get("error").is_none()), "Python could not read some records: {out}");
    let expected: Vec<serde_json::Value> =
        (10..15).map(|i| serde_json::to_value(payment(i))).collect::<Result<_, _>>()?;
    assert_eq!(values.iter().map(|v| v["value"].clone()).collect::<Vec<_>>(), expected);
    assert_eq!(values[0]["key"], "k10");
    assert_eq!(values[0]["schema_id"], schema_id(&encoded[0].1));
    Ok(())
}
