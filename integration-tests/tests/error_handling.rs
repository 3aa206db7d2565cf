//! Bad records on the real broker: poison pills (invalid JSON, truncated
//! JSON, a wrong field type, invalid UTF-8) mixed into good data. With
//! dead-lettering, the output holds exactly the good records' results and the
//! dead-letter topic exactly the bad records, with the error headers; with
//! fail, the application stops naming the offset and commits nothing past it.

use std::time::Duration;

use integration_tests::{create_topic_blocking, produce, read_until, unique_name, wait_until};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use streams_core::runtime::{KafkaStreams, State};
use streams_dsl::prelude::*;

mod common;
use common::config;

const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: String,
    amount: f64,
}

fn topology(input: &str, output: &str) -> Result<Topology, Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    builder
        .stream(&[input], Consumed::with(Nullable(StringSerde), JsonSerde::<Order>::new()))
        .map_values(|o: Order| format!("{}={:.2}", o.id, o.amount * 2.0))
        .to_with(output, Produced::with(Nullable(StringSerde), StringSerde));
    Ok(builder.build()?)
}

/// Good and bad values, in order; bad ones are marked.
fn input() -> Vec<(Vec<u8>, bool)> {
    let good = |i: u32| (format!(r#"{{"id":"o{i}","amount":{i}.5}}"#).into_bytes(), false);
    vec![
        good(1),
        (b"{not json".to_vec(), true),
        good(2),
        (br#"{"id":"o3","amount":"#.to_vec(), true), // truncated
        good(4),
        (br#"{"id":"o5","amount":"lots"}"#.to_vec(), true), // wrong type
        (vec![0xff, 0xfe, b'{', b'}'], true),               // invalid UTF-8
        good(6),
    ]
}

#[test]
fn dead_letter_topic_gets_exactly_the_bad_records() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input_topic, output, dlq, app) =
        (unique_name("orders"), unique_name("out"), unique_name("dlq"), unique_name("dlq-app"));
    create_topic_blocking(&input_topic, 1)?;
    create_topic_blocking(&output, 1)?;
    let rows = input();
    let records: Vec<_> = rows
        .iter()
        .enumerate()
        .map(|(i, (v, _))| (Some(b"k".as_slice()), Some(v.as_slice()), 1_000 + i as i64))
        .collect();
    produce(&input_topic, &records)?;
    let dir = tempfile::tempdir()?;
    let mut cfg = config(&app, dir.path(), "exactly_once_v2");
    cfg.set("errors.dead.letter.queue.topic.name", &dlq)?;
    cfg.set("default.deserialization.exception.handler", "dead_letter")?;
    let streams = KafkaStreams::new(topology(&input_topic, &output)?, cfg)?;
    streams.start()?;
    let good: Vec<String> = ["o1=3.00", "o2=5.00", "o4=9.00", "o6=13.00"].into_iter().map(str::to_owned).collect();
    let out = read_until(&output, TIMEOUT, |r| r.len() >= good.len())?;
    let values: Vec<String> =
        out.iter().map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()).collect();
    assert_eq!(values, good);

    // The dead-letter topic: the bad records, bytes unchanged, with headers.
    let consumer: BaseConsumer = integration_tests::client_config()
        .set("group.id", unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()?;
    consumer.subscribe(&[dlq.as_str()])?;
    let bad: Vec<(usize, &Vec<u8>)> =
        rows.iter().enumerate().filter(|(_, (_, b))| *b).map(|(i, (v, _))| (i, v)).collect();
    let mut seen = Vec::new();
    wait_until(TIMEOUT, "the dead-lettered records", || {
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let header = |name: &str| {
                m.headers().and_then(|h| {
                    h.iter()
                        .find(|x| x.key == name)
                        .and_then(|x| x.value.map(|v| String::from_utf8_lossy(v).into_owned()))
                })
            };
            seen.push((
                m.payload().map(<[u8]>::to_vec),
                m.timestamp().to_millis(),
                header("__streams.errors.topic"),
                header("__streams.errors.offset"),
                header("__streams.errors.partition"),
                header("__streams.errors.exception"),
                header("__streams.errors.message"),
            ));
        }
        (seen.len() >= bad.len()).then_some(())
    })?;
    assert_eq!(seen.len(), bad.len());
    for ((offset, value), got) in bad.iter().zip(&seen) {
        assert_eq!(got.0.as_ref(), Some(*value), "value kept byte for byte");
        assert_eq!(got.1, Some(1_000 + *offset as i64), "timestamp kept");
        assert_eq!(got.2.as_deref(), Some(input_topic.as_str()));
        assert_eq!(got.3, Some(offset.to_string()));
        assert_eq!(got.4.as_deref(), Some("0"));
        assert_eq!(got.5.as_deref(), Some("DeserializationError"));
        assert!(got.6.as_deref().is_some_and(|m| m.contains(&format!("offset {offset}"))), "{:?}", got.6);
    }
    assert_eq!(streams.metrics().records_dead_lettered, bad.len() as u64);
    streams.close();
    assert_eq!(streams.state(), State::NotRunning);
    Ok(())
}

#[test]
fn fail_stops_at_the_bad_record_and_commits_nothing_past_it() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input_topic, output, app) = (unique_name("orders"), unique_name("out"), unique_name("fail-app"));
    create_topic_blocking(&input_topic, 1)?;
    create_topic_blocking(&output, 1)?;
    let rows = input();
    let records: Vec<_> =
        rows.iter().enumerate().map(|(i, (v, _))| (None, Some(v.as_slice()), 1_000 + i as i64)).collect();
    produce(&input_topic, &records)?;
    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(topology(&input_topic, &output)?, config(&app, dir.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::PendingError, TIMEOUT) || streams.state() == State::Error);
    streams.close();
    assert_eq!(streams.state(), State::Error);
    let error = streams.error().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains(&format!("{input_topic}-0 offset 1")), "{error}");
    let consumer: BaseConsumer = integration_tests::client_config().set("group.id", &app).create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&input_topic, 0);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    let offset = committed.find_partition(&input_topic, 0).map(|e| e.offset());
    assert!(
        matches!(offset, Some(Offset::Invalid) | Some(Offset::Offset(0)) | Some(Offset::Offset(1))),
        "nothing committed past the bad record: {offset:?}"
    );
    Ok(())
}
