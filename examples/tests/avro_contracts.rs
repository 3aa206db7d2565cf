//! The examples' Avro topic contracts (`--format avro`), checked from
//! outside as contracts.rs checks the JSON ones: each binary runs as a child
//! process on the real broker and schema registry; input is written by
//! Confluent's Python client (`scripts/pyclient.sh`, AvroSerializer, subjects
//! `<topic>-value`), with a newer writer schema (an added field with a
//! default) mixed with the first and with poison records that must end in
//! the dead-letter topic; output is read with Confluent's AvroDeserializer
//! (fraud-detection, order-enrichment) or Rivulet's own Avro serdes
//! (page-views, word-count), and the expected results are computed here.
//!
//! Without a registry (`SCHEMA_REGISTRY_URL`, which `scripts/test.sh` sets)
//! each test says so in one line and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use integration_tests::{
    bootstrap_servers, create_compacted_topic_blocking, create_topic_blocking, read_until, unique_name,
    wait_for_group_caught_up, TestRecord,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers as _, Message};
use serde_json::{json, Value};
use streams_dsl::serde::{AvroSerde, GenericAvroSerde, SchemaRegistryClient};
use streams_dsl::{Headers, Serde};

mod common;
use common::{args, base_args, scripts_dir, App};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TIMEOUT: Duration = Duration::from_secs(60);

const SKIP: &str = "SKIPPED: no schema registry (run through scripts/test.sh, or set SCHEMA_REGISTRY_URL)";

// ---------------------------------------------------------------------------
// The writers' schemas, written independently of the examples' own.

const PAYMENT_V1: &str = r#"{"type": "record", "name": "Payment", "fields": [
  {"name": "card_id", "type": "string"}, {"name": "amount", "type": "double"},
  {"name": "merchant", "type": "string"}, {"name": "ts", "type": "long"}]}"#;
/// v1 plus a field with a default: BACKWARD compatible.
const PAYMENT_V2: &str = r#"{"type": "record", "name": "Payment", "fields": [
  {"name": "card_id", "type": "string"}, {"name": "amount", "type": "double"},
  {"name": "merchant", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "currency", "type": "string", "default": "EUR"}]}"#;
/// v2 without `merchant`: BACKWARD compatible too (the app's reader schema
/// gives `merchant` a default).
const PAYMENT_V3: &str = r#"{"type": "record", "name": "Payment", "fields": [
  {"name": "card_id", "type": "string"}, {"name": "amount", "type": "double"},
  {"name": "ts", "type": "long"}, {"name": "currency", "type": "string", "default": "EUR"}]}"#;
const CUSTOMER_V1: &str = r#"{"type": "record", "name": "Customer", "fields": [
  {"name": "customer_id", "type": "string"}, {"name": "name", "type": "string"},
  {"name": "tier", "type": "string"}]}"#;
const ORDER_V1: &str = r#"{"type": "record", "name": "Order", "fields": [
  {"name": "order_id", "type": "string"}, {"name": "customer_id", "type": "string"},
  {"name": "amount", "type": "double"}, {"name": "ts", "type": "long"}]}"#;
const ORDER_V2: &str = r#"{"type": "record", "name": "Order", "fields": [
  {"name": "order_id", "type": "string"}, {"name": "customer_id", "type": "string"},
  {"name": "amount", "type": "double"}, {"name": "ts", "type": "long"},
  {"name": "coupon", "type": ["null", "string"], "default": null}]}"#;
const PAGE_VIEW_V1: &str = r#"{"type": "record", "name": "PageView", "fields": [
  {"name": "user_id", "type": "string"}, {"name": "page", "type": "string"}, {"name": "ts", "type": "long"}]}"#;
const PAGE_VIEW_V2: &str = r#"{"type": "record", "name": "PageView", "fields": [
  {"name": "user_id", "type": "string"}, {"name": "page", "type": "string"}, {"name": "ts", "type": "long"},
  {"name": "referrer", "type": "string", "default": "direct"}]}"#;

// ---------------------------------------------------------------------------
// The registry, the Python client, poison records, the dead-letter topic.

/// The registry and the Python client, or `None` (after one loud line)
/// when the test cannot run here.
struct Env {
    registry: String,
    dir: tempfile::TempDir,
    started: Instant,
}

impl Env {
    fn new() -> Res<Option<Self>> {
        let registry = std::env::var("SCHEMA_REGISTRY_URL").unwrap_or_default();
        let registry = registry.trim().trim_end_matches('/');
        if registry.is_empty() {
            eprintln!("{SKIP}");
            return Ok(None);
        }
        // Makes the client's venv if needed; exit 3: no suitable Python here.
        let out = Command::new("bash").arg(scripts_dir().join("pyclient.sh")).stdin(Stdio::null()).output()?;
        match out.status.code() {
            Some(0) => {}
            Some(3) => {
                eprintln!(
                    "SKIPPED: the Confluent Python client cannot run here (scripts/pyclient.sh: {})",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return Ok(None);
            }
            _ => return Err(format!("scripts/pyclient.sh failed: {}", String::from_utf8_lossy(&out.stderr)).into()),
        }
        Ok(Some(Self { registry: registry.to_owned(), dir: tempfile::tempdir()?, started: Instant::now() }))
    }

    /// `text` in a schema file of the test's temporary directory.
    fn schema_file(&self, name: &str, text: &str) -> Res<PathBuf> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// `sr_client.py ARGS` with `stdin`; its stdout.
    fn py(&self, args: &[&str], stdin: &str) -> Res<String> {
        let mut child = Command::new("bash")
            .arg(scripts_dir().join("pyclient.sh"))
            .arg("run")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!(
                "sr_client.py {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Writes `rows` (`{"key", "value" | "raw_value_b64", "timestamp"}`) to
    /// `topic` with the AvroSerializer and the writer's schema in `schema`.
    fn produce(&self, topic: &str, schema: &Path, rows: &[Value]) -> Res {
        let lines: String = rows.iter().map(|r| format!("{r}\n")).collect();
        let schema = schema.display().to_string();
        let servers = bootstrap_servers();
        self.py(
            &[
                "produce",
                "--bootstrap",
                &servers,
                "--registry",
                &self.registry,
                "--topic",
                topic,
                "--format",
                "avro",
                "--schema-file",
                &schema,
            ],
            &lines,
        )?;
        Ok(())
    }

    /// Registers `schema` under `subject`; its id.
    fn register(&self, subject: &str, schema: &Path) -> Res<u32> {
        let schema = schema.display().to_string();
        let out = self.py(
            &[
                "register",
                "--registry",
                &self.registry,
                "--subject",
                subject,
                "--format",
                "avro",
                "--schema-file",
                &schema,
            ],
            "",
        )?;
        Ok(out.trim().parse()?)
    }

    /// The first `count` records of `topic`, decoded by Confluent's
    /// AvroDeserializer with their writers' schemas: `{"key", "value", "schema_id"}`.
    fn consume(&self, topic: &str, count: usize) -> Res<Vec<Value>> {
        let servers = bootstrap_servers();
        let out = self.py(
            &[
                "consume",
                "--bootstrap",
                &servers,
                "--registry",
                &self.registry,
                "--topic",
                topic,
                "--format",
                "avro",
                "--count",
                &count.to_string(),
                "--timeout",
                "30",
            ],
            "",
        )?;
        let rows: Vec<Value> = out.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        for row in &rows {
            assert!(row.get("error").is_none(), "the Python client could not decode a record of {topic}: {row}");
        }
        Ok(rows)
    }

    /// The registry client (for checks of what the application registered).
    fn client(&self) -> SchemaRegistryClient {
        SchemaRegistryClient::from_url(&self.registry)
    }

    /// The arguments that make an example read and write Avro and
    /// dead-letter undecodable records to `dead_letters`.
    fn avro_args(&self, dead_letters: &str) -> Vec<String> {
        args(&[
            ("--format", "avro"),
            ("--schema-registry", &self.registry),
            ("--schema-registry-config", "auto.register.schemas=true"),
            ("--config", "default.deserialization.exception.handler=dead_letter"),
            ("--config", &format!("errors.dead.letter.queue.topic.name={dead_letters}")),
        ])
    }

    fn done(&self, test: &str) {
        eprintln!("{test}: passed in {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// A row for the Python producer: `value` serialized with the file's schema.
fn row(key: Option<&str>, value: Value, timestamp: i64) -> Value {
    json!({"key": key, "value": value, "timestamp": timestamp})
}

/// A row whose value bytes are written as they are.
fn raw_row(key: Option<&str>, bytes: &[u8], timestamp: i64) -> Value {
    json!({"key": key, "raw_value_b64": base64(bytes), "timestamp": timestamp})
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Values no Avro deserializer can decode: an unknown schema id, the wrong
/// magic byte, fewer bytes than the header, and (with `valid_id`) a known
/// schema id followed by a truncated datum.
fn poison(valid_id: Option<u32>) -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![0x00, 0x7f, 0xff, 0xff, 0xff, 0x02, b'x', 0x02, b'y'],
        vec![0x01, 0x00, 0x00, 0x00, 0x01, 0x02, b'x'],
        vec![0x00, 0x00, 0x01],
    ];
    if let Some(id) = valid_id {
        let mut bytes = vec![0x00];
        bytes.extend_from_slice(&id.to_be_bytes());
        // A one-character string, then one byte of an 8-byte double.
        bytes.extend_from_slice(&[0x02, b'a', 0x00]);
        out.push(bytes);
    }
    out
}

/// A record of the dead-letter topic.
#[derive(Debug)]
struct DeadLetter {
    value: Option<Vec<u8>>,
    headers: BTreeMap<String, String>,
}

/// Reads `topic` (read_committed) until `count` records arrived, then a
/// little longer to see any extra one.
fn read_dead_letters(topic: &str, count: usize) -> Res<Vec<DeadLetter>> {
    let consumer: BaseConsumer = integration_tests::client_config()
        .set("group.id", unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[topic])?;
    let deadline = Instant::now() + TIMEOUT;
    let mut extra_until: Option<Instant> = None;
    let mut out = Vec::new();
    loop {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            out.push(DeadLetter { value: m.payload().map(<[u8]>::to_vec), headers });
        }
        if out.len() >= count && extra_until.is_none() {
            extra_until = Some(Instant::now() + Duration::from_secs(1));
        }
        if extra_until.is_some_and(|t| Instant::now() >= t) {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            return Err(format!("{} of {count} dead letters on {topic} within {TIMEOUT:?}", out.len()).into());
        }
    }
}

/// Each poison value landed in the dead-letter topic once, with the
/// deserialization error in its headers.
fn check_dead_letters(dlq: &str, input_topics: &[&str], poison: &[Vec<u8>]) -> Res {
    let letters = read_dead_letters(dlq, poison.len())?;
    assert_eq!(letters.len(), poison.len(), "one dead letter per poison record: {letters:?}");
    let got: BTreeSet<Vec<u8>> = letters.iter().filter_map(|l| l.value.clone()).collect();
    let want: BTreeSet<Vec<u8>> = poison.iter().cloned().collect();
    assert_eq!(got, want, "the dead letters keep the bytes as read");
    for l in &letters {
        assert_eq!(
            l.headers.get("__streams.errors.exception").map(String::as_str),
            Some("DeserializationError"),
            "{l:?}"
        );
        let message = l.headers.get("__streams.errors.message").cloned().unwrap_or_default();
        assert!(!message.is_empty(), "the error message is in the headers: {l:?}");
        let topic = l.headers.get("__streams.errors.topic").cloned().unwrap_or_default();
        assert!(input_topics.contains(&topic.as_str()), "the source topic is in the headers: {l:?}");
    }
    Ok(())
}

/// The latest schema of `subject` is the record `name`, and every schema id
/// in `ids` is its id.
fn check_subject(env: &Env, subject: &str, name: &str, ids: impl IntoIterator<Item = Option<u64>>) -> Res {
    let latest = env.client().latest(subject)?;
    let schema = apache_avro::Schema::parse_str(&latest.schema)?;
    assert_eq!(schema.name().map(|n| n.fullname(None)).as_deref(), Some(name), "subject {subject}: {}", latest.schema);
    for id in ids {
        assert_eq!(id, Some(u64::from(latest.id)), "records written with the schema of {subject}");
    }
    Ok(())
}

/// A minute boundary an hour ago: event times well in the past, all windows
/// closed by the test's own records.
fn minute_an_hour_ago() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    (i64::try_from(now).unwrap_or(0) / 60_000 - 60) * 60_000
}

fn key_of(r: &TestRecord) -> String {
    String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned()
}

/// The fields of a generic Avro record, by name.
fn fields(value: Avro) -> BTreeMap<String, Avro> {
    match value {
        Avro::Record(fields) => fields.into_iter().collect(),
        other => panic!("expected an Avro record, got {other:?}"),
    }
}

fn long(fields: &BTreeMap<String, Avro>, name: &str) -> i64 {
    match fields.get(name) {
        Some(Avro::Long(n)) => *n,
        other => panic!("field {name}: expected an Avro long, got {other:?}"),
    }
}

fn string(fields: &BTreeMap<String, Avro>, name: &str) -> String {
    match fields.get(name) {
        Some(Avro::String(s)) => s.clone(),
        other => panic!("field {name}: expected an Avro string, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------

#[test]
fn fraud_detection_avro_contract() -> Res {
    let Some(env) = Env::new()? else { return Ok(()) };
    let (input, output) = (unique_name("payments"), unique_name("fraud-alerts"));
    let (dlq, app) = (unique_name("fraud-dlq"), unique_name("fraud-avro"));
    create_topic_blocking(&input, 3)?;
    create_topic_blocking(&output, 3)?;
    let v1 = env.schema_file("payment-v1.avsc", PAYMENT_V1)?;
    let v2 = env.schema_file("payment-v2.avsc", PAYMENT_V2)?;
    let v3 = env.schema_file("payment-v3.avsc", PAYMENT_V3)?;
    let v1_id = env.register(&format!("{input}-value"), &v1)?;
    let t0 = minute_an_hour_ago();
    // (card, amount, ms after t0, written with v2)
    let mut payments: Vec<(&str, f64, i64, bool)> = Vec::new();
    for i in 0..6 {
        payments.push(("card-many", 10.0, i * 5_000, i % 2 == 1)); // 6 in one window: > 5
    }
    for i in 0..5 {
        payments.push(("card-five", 10.0, i * 5_000, false)); // exactly 5: fine
    }
    payments.push(("card-big", 4000.0, 1_000, false));
    payments.push(("card-big", 1000.5, 2_000, true)); // 5000.5 > 5000, half of it from v2
    payments.push(("card-edge", 5000.0, 3_000, true)); // exactly 5000: fine
    for i in 0..6 {
        payments.push(("card-v2", 1.5, 10_000 + i * 1_000, true)); // only v2 records
    }
    for i in 0..3 {
        payments.push(("card-split", 10.0, 55_000 + i * 1_000, false)); // 3 in the first window…
        payments.push(("card-split", 10.0, 60_000 + i * 1_000, true)); // …3 in the next
    }
    for i in 0..6 {
        payments.push(("card-late", 1.0, 70_000 + i, i % 2 == 0)); // 6 in window 2
    }
    // window 2 of card-many: 1 payment
    payments.push(("card-many", 1.0, 63_000, false));
    // Written with a third schema, below: card-v2 gets a 7th payment, card-v3 5000.5 in two.
    let v3_payments: [(&str, f64, i64); 3] =
        [("card-v2", 1.5, 16_000), ("card-v3", 2_600.0, 20_000), ("card-v3", 2_400.5, 21_000)];
    let mut sums: BTreeMap<(String, i64), (i64, f64)> = BTreeMap::new();
    for (card, amount, dt) in payments.iter().map(|p| (p.0, p.1, p.2)).chain(v3_payments) {
        let e = sums.entry((card.to_owned(), (t0 + dt) / 60_000 * 60_000)).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    let expected: BTreeSet<(String, i64, i64, String)> = sums
        .into_iter()
        .filter(|(_, (n, total))| *n > 5 || *total > 5000.0)
        .map(|((card, start), (n, total))| (card, start, n, format!("{total:.2}")))
        .collect();
    assert_eq!(expected.len(), 5, "{expected:?}");
    let rows = |step: &[&(&str, f64, i64, bool)]| -> Vec<Value> {
        step.iter()
            .enumerate()
            .map(|(i, (card, amount, dt, is_v2))| {
                let mut v = json!({"card_id": card, "amount": amount, "merchant": "shop", "ts": t0 + dt});
                if *is_v2 {
                    v["currency"] = json!("USD");
                }
                // Some keyed by card, some not: the app re-keys by card_id.
                row((i % 3 != 0).then_some(card), v, t0 + dt)
            })
            .collect()
    };
    let send = |step: Vec<&(&str, f64, i64, bool)>| -> Res {
        let (new, old): (Vec<_>, Vec<_>) = step.into_iter().partition(|p| p.3);
        env.produce(&input, &v1, &rows(&old))?;
        env.produce(&input, &v2, &rows(&new))
    };
    // Time moves on in steps, each once the previous one is processed.
    send(payments.iter().filter(|p| p.2 < 60_000).collect())?;
    // Newer still: a writer schema without `merchant`.
    env.produce(
        &input,
        &v3,
        &v3_payments
            .iter()
            .map(|(card, amount, dt)| {
                row(Some(card), json!({"card_id": card, "amount": amount, "ts": t0 + dt, "currency": "CHF"}), t0 + dt)
            })
            .collect::<Vec<_>>(),
    )?;
    let poison = poison(Some(v1_id));
    let poison_rows: Vec<Value> = poison
        .iter()
        .enumerate()
        .map(|(i, p)| raw_row(Some(["card-many", "card-big"][i % 2]), p, t0 + 1_000))
        .collect();
    env.produce(&input, &v1, &poison_rows)?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--output-topic", &output)]));
    a.extend(env.avro_args(&dlq));
    let mut child = App::start(env!("CARGO_BIN_EXE_fraud-detection"), &a, &state.path().join("log"))?;
    let caught_up = |what: &str| {
        wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)
            .map_err(|e| format!("{what}: {e}\n{}", child.log_tail()))
    };
    caught_up("window 1")?;
    send(payments.iter().filter(|p| p.2 >= 60_000).collect())?;
    caught_up("window 2")?;
    // Every card pays much later (v2), which closes all earlier windows.
    let cards: BTreeSet<&str> = payments.iter().map(|p| p.0).chain(v3_payments.iter().map(|p| p.0)).collect();
    let advance: Vec<Value> = cards
        .iter()
        .map(|card| {
            let v = json!({"card_id": card, "amount": 1.0, "merchant": "shop", "ts": t0 + 600_000, "currency": "EUR"});
            row(Some(card), v, t0 + 600_000)
        })
        .collect();
    env.produce(&input, &v2, &advance)?;
    let read = read_until(&output, TIMEOUT, |r| r.len() >= expected.len());
    let read = read.map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    assert!(read.iter().all(|r| r.value.as_ref().is_some_and(|v| v.len() > 5 && v[0] == 0)), "Confluent-framed");
    caught_up("the closing payments")?;
    // Everything processed and committed: no further alert can come.
    let all = read_until(&output, TIMEOUT, |r| r.len() >= expected.len())?;
    assert_eq!(all.len(), expected.len(), "exactly one alert per suspicious window");
    let alerts = env.consume(&output, expected.len())?;
    let mut got = BTreeSet::new();
    for a in &alerts {
        let v = &a["value"];
        assert_eq!(v["card_id"], a["key"], "key = card_id: {a}");
        let start = v["window_start"].as_i64().unwrap_or(-1);
        assert_eq!(v["window_end"].as_i64(), Some(start + 60_000), "{a}");
        let total = v["total"].as_f64().unwrap_or(-1.0);
        got.insert((
            a["key"].as_str().unwrap_or("").to_owned(),
            start,
            v["count"].as_i64().unwrap_or(-1),
            format!("{total:.2}"),
        ));
    }
    assert_eq!(got, expected);
    check_subject(&env, &format!("{output}-value"), "FraudAlert", alerts.iter().map(|a| a["schema_id"].as_u64()))?;
    check_dead_letters(&dlq, &[&input], &poison)?;
    assert!(child.running(), "{}", child.log_tail());
    env.done("fraud_detection_avro_contract");
    Ok(())
}

#[test]
fn order_enrichment_avro_contract() -> Res {
    let Some(env) = Env::new()? else { return Ok(()) };
    let (customers, orders) = (unique_name("customers"), unique_name("orders"));
    let (enriched, revenue) = (unique_name("enriched-orders"), unique_name("revenue-by-tier"));
    let (dlq, app) = (unique_name("orders-dlq"), unique_name("orders-avro"));
    // Written by the Python client, whose partitioner is not the Java
    // client's; and the inputs differ in partition counts.
    create_compacted_topic_blocking(&customers, 3)?;
    create_topic_blocking(&orders, 2)?;
    create_topic_blocking(&enriched, 2)?;
    create_topic_blocking(&revenue, 2)?;
    let customer_v1 = env.schema_file("customer.avsc", CUSTOMER_V1)?;
    let (order_v1, order_v2) =
        (env.schema_file("order-v1.avsc", ORDER_V1)?, env.schema_file("order-v2.avsc", ORDER_V2)?);
    let t0 = minute_an_hour_ago();
    let customer = |id: &str, name: &str, tier: &str, ts: i64| {
        row(Some(id), json!({"customer_id": id, "name": name, "tier": tier}), ts)
    };
    let order = |id: &str, c: &str, amount: f64, dt: i64| {
        row(Some(id), json!({"order_id": id, "customer_id": c, "amount": amount, "ts": t0 + dt}), t0 + dt)
    };
    let order_v2_row = |id: &str, c: &str, amount: f64, dt: i64, coupon: &str| {
        let v = json!({"order_id": id, "customer_id": c, "amount": amount, "ts": t0 + dt, "coupon": coupon});
        row(Some(id), v, t0 + dt)
    };
    let poison = poison(None);
    let mut rows =
        vec![customer("c1", "Ada", "gold", t0), customer("c2", "Bob", "silver", t0), customer("c3", "Cy", "gold", t0)];
    rows.push(raw_row(Some("c7"), &poison[2], t0));
    env.produce(&customers, &customer_v1, &rows)?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[
        ("--customers-topic", &customers),
        ("--orders-topic", &orders),
        ("--output-topic", &enriched),
        ("--revenue-topic", &revenue),
    ]));
    a.extend(env.avro_args(&dlq));
    let mut child = App::start(env!("CARGO_BIN_EXE_order-enrichment"), &a, &state.path().join("log"))?;
    // The contract joins an order with its customer as known when the order
    // is processed: the customers are in the table (its changelog) first.
    let changelog = format!("{app}-customers-store-changelog");
    // The application creates the changelog when it starts: read once it is there.
    integration_tests::wait_until(TIMEOUT, "the customers in the table's changelog", || {
        read_until(&changelog, Duration::from_secs(10), |r| r.len() >= 3).ok()
    })
    .map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let mut rows =
        vec![order("o1", "c1", 100.25, 1_000), order("o2", "c2", 50.5, 1_000), order("o3", "c9", 7.0, 1_000)];
    rows.push(raw_row(Some("o8"), &poison[0], t0 + 1_000));
    rows.push(raw_row(Some("o9"), &poison[1], t0 + 1_000));
    env.produce(&orders, &order_v1, &rows)?;
    env.produce(&orders, &order_v2, &[order_v2_row("o4", "c3", 0.1, 1_000, "SPRING")])?;

    let first = read_until(&enriched, TIMEOUT, |r| r.len() >= 4).map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    assert_eq!(first.iter().map(key_of).collect::<BTreeSet<_>>().len(), 4, "one record per order");
    let by_order = |rows: &[Value]| -> BTreeMap<String, Value> {
        rows.iter().map(|r| (r["key"].as_str().unwrap_or_default().to_owned(), r["value"].clone())).collect()
    };
    let got = by_order(&env.consume(&enriched, 4)?);
    let name_tier = |v: &Value| (v["customer_name"].clone(), v["tier"].clone());
    let context = || format!("{got:?}\n{}", child.log_text());
    assert_eq!(name_tier(&got["o1"]), (json!("Ada"), json!("gold")), "{}", context());
    assert_eq!(name_tier(&got["o2"]), (json!("Bob"), json!("silver")), "{}", context());
    assert_eq!(name_tier(&got["o3"]), (Value::Null, Value::Null), "unknown customer: {}", context());
    assert_eq!(name_tier(&got["o4"]), (json!("Cy"), json!("gold")), "a v2 order: {}", context());
    assert_eq!(
        got["o1"],
        json!({
            "order_id": "o1", "customer_id": "c1", "amount": 100.25, "ts": t0 + 1_000,
            "customer_name": "Ada", "tier": "gold",
        })
    );
    assert_eq!(got["o4"]["amount"], json!(0.1));
    let caught_up = |what: &str| {
        wait_for_group_caught_up(&app, &[customers.as_str(), orders.as_str()], TIMEOUT)
            .map_err(|e| format!("{what}: {e}\n{}", child.log_tail()))
    };
    caught_up("the first orders")?;

    // Ada moves to silver, Bob leaves (a tombstone); o1 is re-sent with a new amount.
    env.produce(
        &customers,
        &customer_v1,
        &[customer("c1", "Ada", "silver", t0 + 2_000), json!({"key": "c2", "value": null, "timestamp": t0 + 2_000})],
    )?;
    caught_up("the customer changes")?;
    env.produce(
        &orders,
        &order_v2,
        &[order_v2_row("o5", "c1", 10.0, 3_000, "A"), order_v2_row("o6", "c2", 20.0, 3_000, "B")],
    )?;
    env.produce(&orders, &order_v1, &[order("o1", "c1", 200.0, 3_000)])?;
    read_until(&enriched, TIMEOUT, |r| r.len() >= 7).map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let all = env.consume(&enriched, 7)?;
    let last = by_order(&all);
    assert_eq!(name_tier(&last["o5"]), (json!("Ada"), json!("silver")));
    assert_eq!(name_tier(&last["o6"]), (Value::Null, Value::Null), "a deleted customer");
    assert_eq!(last["o1"]["amount"], json!(200.0));
    assert_eq!(last["o1"]["ts"], json!(t0 + 3_000));
    check_subject(&env, &format!("{enriched}-value"), "EnrichedOrder", all.iter().map(|r| r["schema_id"].as_u64()))?;
    // Revenue stays decimal strings: gold = o4 (o1 moved to silver), silver = o2 + o5 + o1'.
    let expected: BTreeMap<String, Option<String>> =
        [("gold", "0.1"), ("silver", "260.5")].into_iter().map(|(k, v)| (k.to_owned(), Some(v.to_owned()))).collect();
    let totals = read_until(&revenue, TIMEOUT, |r| integration_tests::latest_by_key(r) == expected);
    assert!(totals.is_ok(), "{totals:?}\n{}", child.log_tail());
    caught_up("everything")?;
    check_dead_letters(&dlq, &[&customers, &orders], &poison)?;
    assert!(child.running(), "{}", child.log_tail());
    env.done("order_enrichment_avro_contract");
    Ok(())
}

#[test]
fn page_views_avro_contract() -> Res {
    let Some(env) = Env::new()? else { return Ok(()) };
    let (input, counts, sessions) =
        (unique_name("page-views"), unique_name("page-view-counts"), unique_name("user-sessions"));
    let (dlq, app) = (unique_name("pv-dlq"), unique_name("pv-avro"));
    for t in [&input, &counts, &sessions] {
        create_topic_blocking(t, 2)?;
    }
    let (v1, v2) = (env.schema_file("view-v1.avsc", PAGE_VIEW_V1)?, env.schema_file("view-v2.avsc", PAGE_VIEW_V2)?);
    let t0 = minute_an_hour_ago();
    // (user, page, s after t0)
    let views: Vec<(&str, &str, i64)> = vec![
        ("u1", "/home", 0),
        ("u1", "/cart", 10),
        ("u2", "/home", 20),
        ("u1", "/home", 59),
        ("u2", "/help", 61),
        ("u3", "/home", 100),
        ("u1", "/cart", 200), // u1's session goes on (gap < 5 min)
        ("u3", "/home", 500), // u3: two sessions (gap 400 s)
        ("u2", "/cart", 700),
        ("u1", "/home", 700),
    ];
    let mut windows: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (_, page, s) in &views {
        *windows.entry((page.to_string(), (t0 + s * 1000) / 60_000 * 60_000)).or_default() += 1;
    }
    let expected_counts: BTreeSet<(String, i64, i64)> = windows.into_iter().map(|((p, w), n)| (p, w, n)).collect();
    let mut expected_sessions: BTreeSet<(String, i64, i64, i64)> = BTreeSet::new();
    let mut by_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (u, _, s) in &views {
        by_user.entry(u).or_default().push(t0 + s * 1000);
    }
    for (u, mut times) in by_user {
        times.sort();
        let (mut start, mut last, mut n) = (times[0], times[0], 0);
        for t in times {
            if t - last > 300_000 {
                expected_sessions.insert((u.to_owned(), start, last, n));
                start = t;
                n = 0;
            }
            last = t;
            n += 1;
        }
        expected_sessions.insert((u.to_owned(), start, last, n));
    }
    let poison = poison(None);
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--counts-topic", &counts), ("--sessions-topic", &sessions)]));
    a.extend(env.avro_args(&dlq));
    let mut child = App::start(env!("CARGO_BIN_EXE_page-views"), &a, &state.path().join("log"))?;
    let view = |(u, p, s): &(&str, &str, i64), referrer: Option<&str>| {
        let mut v = json!({"user_id": u, "page": p, "ts": t0 + s * 1000});
        if let Some(r) = referrer {
            v["referrer"] = json!(r);
        }
        row(Some(u), v, t0 + s * 1000)
    };
    let mut sorted = views.clone();
    sorted.sort_by_key(|v| v.2);
    // Event time moves on in steps, each once the previous one is processed;
    // the steps alternate between the writer schemas.
    for (i, step) in sorted.chunk_by(|a, b| a.2 / 60 == b.2 / 60).enumerate() {
        if i % 2 == 0 {
            let mut rows: Vec<Value> = step.iter().map(|v| view(v, None)).collect();
            if i == 0 {
                rows.extend(poison.iter().map(|p| raw_row(Some("u1"), p, t0)));
            }
            env.produce(&input, &v1, &rows)?;
        } else {
            env.produce(&input, &v2, &step.iter().map(|v| view(v, Some("search"))).collect::<Vec<_>>())?;
        }
        wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT).map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    }
    // Close everything: much later views by every user on every page.
    let mut closing = Vec::new();
    for u in ["u1", "u2", "u3"] {
        for p in ["/home", "/cart", "/help"] {
            closing.push(view(&(u, p, 3_600), Some("later")));
        }
    }
    env.produce(&input, &v2, &closing)?;
    wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT).map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    // Decoded with Rivulet's generic Avro reader (the writer's schema, from the registry).
    let reader = GenericAvroSerde::new(&env.client());
    let decode = |topic: &str, r: &TestRecord| -> Res<BTreeMap<String, Avro>> {
        Ok(fields(reader.deserialize(topic, &Headers::new(), r.value.as_deref())?))
    };
    let got_counts = read_until(&counts, TIMEOUT, |r| r.len() >= expected_counts.len())?;
    let mut got = Vec::new();
    for r in &got_counts {
        let f = decode(&counts, r)?;
        assert_eq!(string(&f, "page"), key_of(r));
        let start = long(&f, "window_start");
        assert_eq!(long(&f, "window_end"), start + 60_000);
        got.push((key_of(r), start, long(&f, "views")));
    }
    assert_eq!(got.len(), expected_counts.len(), "one record per window: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected_counts);
    let got_sessions = read_until(&sessions, TIMEOUT, |r| r.len() >= expected_sessions.len())?;
    let mut got = Vec::new();
    for r in &got_sessions {
        let f = decode(&sessions, r)?;
        assert_eq!(string(&f, "user_id"), key_of(r));
        got.push((key_of(r), long(&f, "session_start"), long(&f, "session_end"), long(&f, "views")));
    }
    assert_eq!(got.len(), expected_sessions.len(), "one record per session: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected_sessions);
    check_subject(&env, &format!("{counts}-value"), "PageViewCount", [])?;
    check_subject(&env, &format!("{sessions}-value"), "UserSession", [])?;
    check_dead_letters(&dlq, &[&input], &poison)?;
    assert!(child.running(), "{}", child.log_tail());
    env.done("page_views_avro_contract");
    Ok(())
}

#[test]
fn word_count_avro_contract() -> Res {
    let Some(env) = Env::new()? else { return Ok(()) };
    let (input, output) = (unique_name("text-lines"), unique_name("word-counts"));
    let (dlq, app) = (unique_name("wc-dlq"), unique_name("wc-avro"));
    create_topic_blocking(&input, 3)?;
    create_topic_blocking(&output, 3)?;
    let lines =
        ["Hello, World! hello again", "Ünïcödé WORDS straße Straße", "", "digits 42 and 42x", "to be or not to be"];
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for line in lines {
        let mut word = String::new();
        for c in line.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                word.push(c);
            } else if !word.is_empty() {
                *expected.entry(word.to_lowercase()).or_default() += 1;
                word.clear();
            }
        }
    }
    let string_schema = env.schema_file("string.avsc", r#""string""#)?;
    let poison = poison(None);
    let mut rows: Vec<Value> =
        lines.iter().enumerate().map(|(i, l)| row([None, Some("k1")][i % 2], json!(l), 1_000 + i as i64)).collect();
    rows.push(raw_row(None, &poison[1], 2_000));
    env.produce(&input, &string_schema, &rows)?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--output-topic", &output)]));
    a.extend(env.avro_args(&dlq));
    let mut child = App::start(env!("CARGO_BIN_EXE_word-count"), &a, &state.path().join("log"))?;
    // Decoded with Rivulet's typed Avro serde, reader schema "long".
    let counts: AvroSerde<i64> = AvroSerde::with_schema(&env.client(), r#""long""#)?;
    let latest = |records: &[TestRecord]| -> BTreeMap<String, i64> {
        records
            .iter()
            .filter_map(|r| Some((key_of(r), counts.deserialize(&output, &Headers::new(), r.value.as_deref()).ok()?)))
            .collect()
    };
    let read = read_until(&output, TIMEOUT, |r| latest(r) == expected);
    let read = read.map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    for r in &read {
        counts.deserialize(&output, &Headers::new(), r.value.as_deref())?;
    }
    let subject = env.client().latest(&format!("{output}-value"))?;
    assert_eq!(apache_avro::Schema::parse_str(&subject.schema)?, apache_avro::Schema::Long);
    wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    check_dead_letters(&dlq, &[&input], &poison[1..2])?;
    assert!(child.running(), "{}", child.log_tail());
    env.done("word_count_avro_contract");
    Ok(())
}

/// The embedded demo with `--format avro` writes its demo lines as Avro
/// through the registry and prints the decoded counts.
#[test]
fn word_count_avro_demo_on_the_embedded_cluster() -> Res {
    let Some(env) = Env::new()? else { return Ok(()) };
    let (input, output) = (unique_name("demo-lines"), unique_name("demo-counts"));
    let out = Command::new(env!("CARGO_BIN_EXE_word-count"))
        .args(["--duration", "8", "--rate", "50", "--format", "avro", "--schema-registry", &env.registry])
        .args(["--input-topic", &input, "--output-topic", &output])
        .env("RUST_LOG", "warn")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let was: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(output.as_str()))
        .filter_map(|l| l.split_once("->"))
        .filter(|(w, _)| w.trim() == "was")
        .filter_map(|(_, n)| n.trim().parse().ok())
        .collect();
    assert!(was.windows(2).all(|w| w[0] < w[1]) && was.last().is_some_and(|n| *n >= 2), "{was:?}\n{stdout}");
    let subject = env.client().latest(&format!("{input}-value"))?;
    assert_eq!(apache_avro::Schema::parse_str(&subject.schema)?, apache_avro::Schema::String);
    env.done("word_count_avro_demo_on_the_embedded_cluster");
    Ok(())
}

/// `--format avro` without a registry is a usage error that says what is
/// missing (no registry needed to check).
#[test]
fn avro_without_a_registry_is_a_usage_error() -> Res {
    for bin in [
        env!("CARGO_BIN_EXE_word-count"),
        env!("CARGO_BIN_EXE_fraud-detection"),
        env!("CARGO_BIN_EXE_order-enrichment"),
        env!("CARGO_BIN_EXE_page-views"),
    ] {
        let out = Command::new(bin).args(["--format", "avro", "--bootstrap-servers", "127.0.0.1:1"]).output()?;
        assert_eq!(out.status.code(), Some(2), "{bin}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--schema-registry"), "{bin}: {err}");
        let help = Command::new(bin).arg("--help").output()?;
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in [
            "--format <json|avro>",
            "--schema-registry <URL>",
            "--schema-registry-config <KEY=VALUE>",
            "With --format avro",
        ] {
            assert!(help.contains(flag), "{bin} --help mentions {flag}");
        }
        let bad = Command::new(bin)
            .args(["--format", "avro", "--schema-registry", "http://x", "--schema-registry-config", "no.such.key=1"])
            .output()?;
        assert_eq!(bad.status.code(), Some(2), "{bin}");
        assert!(String::from_utf8_lossy(&bad.stderr).contains("no.such.key"), "{bin}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_processor-word-count")).args(["--format", "avro"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));
    Ok(())
}
