//! librdkafka client settings derived from a [`StreamsConfig`]: what Kafka
//! Streams sets for its consumers and producers, then the user's pass-through
//! `consumer.*` / `producer.*` / `admin.*` settings on top.

use std::collections::BTreeMap;

use rdkafka::config::ClientConfig;

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::error::StreamsError;
use crate::topology::OffsetReset;

/// What every client of the instance starts from: where the cluster is,
/// its name, and the socket settings.
fn connection(config: &StreamsConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap_servers).set("client.id", client_id).set(NO_DELAY, "true");
    c
}

fn base(config: &StreamsConfig, client_id: &str, overrides: &BTreeMap<String, String>) -> ClientConfig {
    let mut c = connection(config, client_id);
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// TCP_NODELAY, as the Java clients set it (librdkafka leaves Nagle's
/// algorithm on): a commit is a chain of small requests (offsets into the
/// transaction, its end, the fetch that sees it), each of which would
/// otherwise wait for the previous segment's delayed acknowledgement.
const NO_DELAY: &str = "socket.nagle.disable";

/// How long librdkafka waits before fetching a partition again once its
/// local queue passed `queued.min.messages` (default 1 s). A stream thread
/// empties that queue in bursts, far faster than it fills, then sat idle for
/// the rest of the second: W2 word count spent a quarter of its wall time in
/// empty polls, the repartition records arriving once a second. 10 ms keeps
/// the fetcher just ahead (W2, exactly_once_v2: 38-48k records/s against
/// 30-31k, the same CPU per record).
const FETCH_QUEUE_BACKOFF: (&str, &str) = ("fetch.queue.backoff.ms", "10");

fn eos(config: &StreamsConfig) -> bool {
    config.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
}

/// The group consumer of a stream thread.
pub(crate) fn consumer(config: &StreamsConfig, client_id: &str) -> ClientConfig {
    let mut c = connection(config, client_id);
    c.set("group.id", &config.application_id)
        // Eager range assignment: partition p of every co-partitioned topic
        // lands on the same member.
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", offset_reset(config.auto_offset_reset))
        .set("isolation.level", if eos(config) { "read_committed" } else { "read_uncommitted" })
        .set("allow.auto.create.topics", "false")
        .set(FETCH_QUEUE_BACKOFF.0, FETCH_QUEUE_BACKOFF.1)
        // Feeds the consumer-lag metric.
        .set("statistics.interval.ms", "5000");
    for (k, v) in &config.consumer {
        c.set(k, v);
    }
    c
}

/// A consumer outside the group (restore and global threads): assigned
/// partitions only, read_committed so that aborted writes are never restored.
pub(crate) fn restore_consumer(config: &StreamsConfig, client_id: &str) -> ClientConfig {
    let mut c = base(config, client_id, &config.consumer);
    c.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("allow.auto.create.topics", "false")
        // Modest fetches and a short local queue: librdkafka keeps every
        // prefetched record as an op of its own (a few hundred bytes beside
        // the payload), so the old 100 MB fetches and 256 MB queue held most
        // of a changelog in memory at once (R1, 1M records: peak RSS 418 MB)
        // and restored no faster than these (150 MB, the same records/s):
        // RocksDB's writes, not the fetches, bound the restore's pace.
        .set("fetch.max.bytes", "4194304")
        .set("max.partition.fetch.bytes", "524288")
        .set("queued.max.messages.kbytes", "8192")
        .set("queued.min.messages", "10000")
        .set(FETCH_QUEUE_BACKOFF.0, FETCH_QUEUE_BACKOFF.1);
    // librdkafka refuses `assign` without a group id; this one never joins
    // a group nor commits.
    c.set("group.id", format!("{}-restore", config.application_id));
    c
}

/// The producer of a stream thread; transactional under exactly-once.
pub(crate) fn producer(config: &StreamsConfig, client_id: &str, transactional_id: Option<&str>) -> ClientConfig {
    let mut c = connection(config, client_id);
    // Same partitioning as the Java client, so that keys line up.
    c.set("partitioner", "murmur2_random").set("linger.ms", "5").set("acks", "all").set("enable.idempotence", "true");
    if let Some(id) = transactional_id {
        // Kafka Streams' EOS default: a crashed instance's open transaction
        // blocks read_committed readers for at most this long.
        c.set("transactional.id", id).set("transaction.timeout.ms", "10000");
    }
    for (k, v) in &config.producer {
        c.set(k, v);
    }
    c
}

/// The admin client.
pub(crate) fn admin(config: &StreamsConfig) -> ClientConfig {
    base(config, &format!("{}-admin", config.application_id), &config.admin)
}

fn offset_reset(reset: OffsetReset) -> &'static str {
    match reset {
        OffsetReset::Earliest => "earliest",
        OffsetReset::Latest => "latest",
    }
}

/// Checks every derived client config with librdkafka, so that a bad
/// pass-through setting fails at `KafkaStreams::new` naming the key.
pub(crate) fn validate(config: &StreamsConfig) -> Result<(), StreamsError> {
    let checks = [
        ("consumer.", consumer(config, "check")),
        ("producer.", producer(config, "check", None)),
        ("admin.", admin(config)),
    ];
    for (prefix, c) in checks {
        c.create_native_config()
            .map_err(|e| super::errors::KafkaCallError::new(format!("checking the `{prefix}*` settings"), e))?;
    }
    Ok(())
}

/// Turns an rdkafka error into ours, saying what was being done.
pub(crate) fn kafka_error(
    operation: impl Into<std::borrow::Cow<'static, str>>,
    e: &rdkafka::error::KafkaError,
) -> StreamsError {
    super::errors::KafkaCallError::new(operation, e.clone()).into()
}
