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

/// How much a consumer of the instance fetches ahead, instead of
/// librdkafka's defaults (50 MB fetches, 1 MB per partition, a local queue
/// of 64 MB or 100,000 records per partition). librdkafka keeps every
/// prefetched record as an op of its own, a few hundred bytes beside the
/// payload, so with small records the defaults held hundreds of MB of them:
/// fresh memory the kernel zeroes page by page, and records cold in the CPU's
/// caches by the time they are processed. A few MB ahead is milliseconds of
/// work at any rate a thread reaches, and the fetcher refills it every
/// `fetch.queue.backoff.ms`.
///
/// Measured on the 2-core machine, exactly_once_v2, 2,000,000 records,
/// rivulet alone, this against the defaults over paired runs: W2 word count
/// 141-151k against 116-127k records/s and 12.4-14.2 against 14.7-16.9 CPU s,
/// peak RSS 166-169 against 428-439 MB; W1 707-829k against 599-636k
/// records/s; W3 +4%. The restore consumer's R1 restores at the same pace
/// with it (RocksDB's writes bound a restore) at 150 MB peak RSS against 418.
/// `consumer.*` settings replace these.
const BOUNDED_PREFETCH: [(&str, &str); 5] = [
    ("fetch.max.bytes", "4194304"),
    ("max.partition.fetch.bytes", "524288"),
    ("queued.max.messages.kbytes", "8192"),
    ("queued.min.messages", "10000"),
    FETCH_QUEUE_BACKOFF,
];

/// The bounded prefetch, then the user's `consumer.*` settings over it: the
/// same for every consumer of the instance.
fn prefetch_then_user_settings(c: &mut ClientConfig, config: &StreamsConfig) {
    for (k, v) in BOUNDED_PREFETCH {
        c.set(k, v);
    }
    for (k, v) in &config.consumer {
        c.set(k, v);
    }
}

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
        // Feeds the consumer-lag metric.
        .set("statistics.interval.ms", "5000")
        .set("heartbeat.interval.ms", GROUP_HEARTBEAT_MS);
    prefetch_then_user_settings(&mut c, config);
    c
}

/// The stream threads' heartbeat interval (librdkafka's and the Java
/// consumer's default: 3 s). A member learns that a rebalance began only
/// from its next heartbeat, and until then runs tasks the new assignment
/// may give to others; each thread of an instance is a member. Seen: with
/// `num.stream.threads=2`, the first thread's join completed a generation
/// alone and it ran every task for 3 s before hearing of the second
/// thread's join. Well under the session time-out's third, as Kafka asks.
const GROUP_HEARTBEAT_MS: &str = "1000";

/// A consumer outside the group (restore and global threads): assigned
/// partitions only, read_committed so that aborted writes are never restored.
pub(crate) fn restore_consumer(config: &StreamsConfig, client_id: &str) -> ClientConfig {
    let mut c = connection(config, client_id);
    prefetch_then_user_settings(&mut c, config);
    c.set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("allow.auto.create.topics", "false");
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn consumers_fetch_a_bounded_amount_ahead_unless_consumer_settings_say_otherwise() {
        let mut config = StreamsConfig::new("app", "localhost:9092");
        for c in [consumer(&config, "c"), restore_consumer(&config, "r")] {
            for (key, value) in BOUNDED_PREFETCH {
                assert_eq!(c.get(key), Some(value), "{key}");
            }
        }
        config.set("consumer.queued.max.messages.kbytes", "1024").unwrap();
        config.set("consumer.isolation.level", "read_uncommitted").unwrap();
        for c in [consumer(&config, "c"), restore_consumer(&config, "r")] {
            assert_eq!(c.get("queued.max.messages.kbytes"), Some("1024"));
            assert_eq!(c.get("fetch.max.bytes"), Some("4194304"));
        }
        // What a restore needs stays, whatever the pass-through settings.
        assert_eq!(restore_consumer(&config, "r").get("isolation.level"), Some("read_committed"));
    }

    #[test]
    fn group_members_heartbeat_every_second_unless_consumer_settings_say_otherwise() {
        let mut config = StreamsConfig::new("app", "localhost:9092");
        assert_eq!(consumer(&config, "c").get("heartbeat.interval.ms"), Some("1000"));
        config.set("consumer.heartbeat.interval.ms", "3000").unwrap();
        assert_eq!(consumer(&config, "c").get("heartbeat.interval.ms"), Some("3000"));
    }
}
