//! Smoke test against the real broker: keyed records produced into a
//! 4-partition topic come back once each, in per-key order, to a consumer group.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use integration_tests::{client_config, create_topic, unique_name};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const KEYS: usize = 20;
const PER_KEY: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_round_trip_once_in_per_key_order() -> Result<(), Box<dyn std::error::Error>> {
    let topic = unique_name("smoke");
    create_topic(&topic, 4).await?;

    let producer: FutureProducer = client_config()
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()?;
    let mut partitions_seen = HashSet::new();
    for seq in 0..PER_KEY {
        let mut batch = Vec::with_capacity(KEYS);
        for k in 0..KEYS {
            let key = format!("key-{k}");
            let value = format!("{k}:{seq}");
            batch.push(producer.send_result(FutureRecord::to(&topic).key(&key).payload(&value)).map_err(|(e, _)| e)?);
        }
        for delivery in batch {
            let delivered = delivery.await?.map_err(|(e, _)| e)?;
            partitions_seen.insert(delivered.partition);
        }
    }
    producer.flush(Duration::from_secs(30))?;
    assert!(
        partitions_seen.len() > 1,
        "murmur2 should spread {KEYS} keys over the 4 partitions, saw {partitions_seen:?}"
    );

    let consumer: BaseConsumer = client_config()
        .set("group.id", unique_name("smoke-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;

    let expected = KEYS * PER_KEY;
    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut partition_of_key: BTreeMap<String, i32> = BTreeMap::new();
    let mut received = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while received < expected && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = message?;
        let key = String::from_utf8(message.key().unwrap_or_default().to_vec())?;
        let value = std::str::from_utf8(message.payload().unwrap_or_default())?;
        let seq: usize = value.split_once(':').map(|(_, s)| s).unwrap_or_default().parse()?;
        // librdkafka's murmur2 partitioner and Rivulet's agree with the Java client.
        assert_eq!(
            streams_core::partitioner::partition_for_key(key.as_bytes(), 4),
            Some(message.partition()),
            "key {key} is not on the partition the Java client would choose"
        );
        let previous = partition_of_key.insert(key.clone(), message.partition());
        assert!(previous.is_none() || previous == Some(message.partition()), "key {key} moved partitions");
        per_key.entry(key).or_default().push(seq);
        received += 1;
    }
    // Nothing more arrives: each record was delivered exactly once.
    assert!(consumer.poll(Duration::from_millis(500)).is_none(), "more records than were produced");
    assert_eq!(received, expected, "every record arrives");
    assert_eq!(per_key.len(), KEYS);
    for (key, seqs) in &per_key {
        assert_eq!(seqs, &(0..PER_KEY).collect::<Vec<_>>(), "records of {key} arrive once each, in order");
    }
    Ok(())
}
