//! Restoring a task's stores from their changelogs: from each store's
//! checkpoint to the changelog's end (read_committed), in bulk batches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::kafka_error;
use super::listener::{Counters, StateRestoreListener};
use super::retry::RetryPolicy;
use crate::error::StreamsError;
use crate::store::StoreEntry;
use crate::task::TaskId;

const BATCH: usize = 50_000;
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

struct Pending<'a> {
    store: &'a StoreEntry,
    topic: &'a str,
    end: i64,
    batch: Vec<state_stores::ChangelogRecord>,
    next: i64,
    /// Where the restore began.
    start: i64,
    restored: u64,
}

/// The clients a restore reads with.
#[derive(Clone, Copy)]
pub(crate) struct RestoreClients<'a> {
    /// read_committed: aborted writes are never restored.
    pub(crate) consumer: &'a BaseConsumer,
    /// read_uncommitted, under exactly-once only: how far a changelog is
    /// written, committed or not (see [`stable_end`]).
    pub(crate) probe: Option<&'a BaseConsumer>,
}

/// Brings every logged store of a task up to its changelog's end.
pub(crate) fn restore<'a>(
    task: TaskId,
    changelogs: impl Iterator<Item = (&'a StoreEntry, &'a str)>,
    clients: RestoreClients<'_>,
    listener: Option<&dyn StateRestoreListener>,
    retry: RetryPolicy<'_>,
) -> Result<(), StreamsError> {
    let consumer = clients.consumer;
    let counters = retry.counters;
    let partition = task.partition;
    let mut pending: Vec<Pending<'a>> = Vec::new();
    for (store, topic) in changelogs {
        let (low, high) = stable_end(clients, topic, partition, retry)?;
        let checkpoint = store.checkpoint().and_then(|c| i64::try_from(c).ok());
        if let Some(c) = checkpoint {
            if c > high {
                return Err(StreamsError::TaskCorrupted {
                    task: task.to_string(),
                    reason: format!(
                        "store `{}` is checkpointed at offset {c}, past the end ({high}) of {topic}-{partition}",
                        store.name()
                    ),
                });
            }
        }
        let start = checkpoint.unwrap_or(low).max(low);
        if start >= high {
            continue;
        }
        tracing::info!(%task, store = store.name(), changelog = topic, start, end = high, "restoring");
        if let Some(l) = listener {
            l.on_restore_start(task, store.name(), start, high);
        }
        Counters::add(&counters.restore_total, u64::try_from(high - start).unwrap_or(0));
        pending.push(Pending { store, topic, end: high, batch: Vec::new(), next: start, start, restored: 0 });
    }
    if pending.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for p in &pending {
        tpl.add_partition_offset(p.topic, partition, Offset::Offset(p.next))
            .map_err(|e| kafka_error("assigning changelog partitions", &e))?;
    }
    consumer.assign(&tpl).map_err(|e| kafka_error("assigning changelog partitions", &e))?;
    let by_topic: HashMap<String, usize> = pending.iter().enumerate().map(|(i, p)| (p.topic.to_owned(), i)).collect();
    let result = run(task, consumer, &mut pending, &by_topic, listener, retry);
    let _ = consumer.assign(&TopicPartitionList::new());
    result
}

/// A changelog's low watermark and its end for restoring: the last stable
/// offset once every transaction written before the call has ended.
///
/// Under exactly-once a changelog's read_committed end stops at the first
/// transaction still open, and a transaction that committed stays "open"
/// until the coordinator has written its markers, which after a broker
/// restart can take seconds. Restoring to that end would lose the committed
/// transaction's updates while the group's offsets already include its
/// input; so the restore waits until the stable end reaches what was
/// written when it looked (every such transaction committed or aborted).
/// Only this task's producers write its changelog: the wait is for our own
/// last transaction, or at worst a dead instance's until
/// `transaction.timeout.ms` aborts it.
fn stable_end(
    clients: RestoreClients<'_>,
    topic: &str,
    partition: i32,
    retry: RetryPolicy<'_>,
) -> Result<(i64, i64), StreamsError> {
    let watermarks = |consumer: &BaseConsumer| {
        retry.run(|| {
            consumer
                .fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
                .map_err(|e| kafka_error(format!("reading the end of changelog {topic}-{partition}"), &e))
        })
    };
    let (low, stable) = watermarks(clients.consumer)?;
    let Some(probe) = clients.probe else { return Ok((low, stable)) };
    let (_, written) = watermarks(probe)?;
    if stable >= written {
        return Ok((low, stable));
    }
    tracing::info!(
        changelog = topic,
        partition,
        stable,
        written,
        "waiting for the changelog's open transaction to end before restoring"
    );
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        // A backoff between queries of a remote condition; nothing local
        // could wake us earlier.
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(500));
        let (low, stable) = watermarks(clients.consumer)?;
        if stable >= written {
            return Ok((low, stable));
        }
        if started.elapsed() >= retry.timeout {
            let source = super::errors::KafkaCallError::with_class(
                format!(
                    "changelog {topic}-{partition} has a transaction open since before offset {written} \
                     (stable end {stable})"
                ),
                rdkafka::error::KafkaError::MessageConsumption(rdkafka::error::RDKafkaErrorCode::OperationTimedOut),
                super::errors::ErrorClass::Retriable,
            );
            return Err(StreamsError::TaskTimeout { timeout: retry.timeout, source: Box::new(source.into()) });
        }
    }
}

fn run(
    task: TaskId,
    consumer: &BaseConsumer,
    pending: &mut [Pending<'_>],
    by_topic: &HashMap<String, usize>,
    listener: Option<&dyn StateRestoreListener>,
    retry: RetryPolicy<'_>,
) -> Result<(), StreamsError> {
    let counters = retry.counters;
    let mut last_progress = Instant::now();
    let mut last_error: Option<rdkafka::error::KafkaError> = None;
    let mut done = vec![false; pending.len()];
    while done.iter().any(|d| !d) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                if last_error.take().is_some() {
                    counters.cluster_reachable();
                }
                // A record of another partition can only be a leftover of an
                // earlier assignment: never restore it into this task.
                if m.partition() != task.partition {
                    continue;
                }
                let Some(&i) = by_topic.get(m.topic()) else { continue };
                if done[i] {
                    continue;
                }
                let p = &mut pending[i];
                if let Some(key) = m.key() {
                    p.batch.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
                }
                p.next = m.offset() + 1;
                if p.batch.len() >= BATCH {
                    flush(task, p, p.next, listener, counters)?;
                }
                if p.next >= p.end {
                    flush(task, p, p.end, listener, counters)?;
                    finish(task, p, listener, counters, &mut done[i]);
                }
            }
            // The cluster being away: the consumer reconnects and fetches on
            // by itself; the stall check below bounds the wait.
            Some(Err(e)) if super::errors::is_transient_poll_error(&e) => {
                counters.cluster_unreachable(&e);
                last_error = Some(e);
            }
            Some(Err(e)) => return Err(kafka_error("reading a changelog", &e)),
            None => {
                // Transaction markers end a changelog written under
                // exactly-once: the position passes them though no record does.
                let positions = consumer.position().map_err(|e| kafka_error("reading restore positions", &e))?;
                for (i, p) in pending.iter_mut().enumerate() {
                    if done[i] {
                        continue;
                    }
                    let pos = positions
                        .find_partition(p.topic, task.partition)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .unwrap_or(-1);
                    if pos >= p.end {
                        flush(task, p, p.end, listener, counters)?;
                        finish(task, p, listener, counters, &mut done[i]);
                        last_progress = Instant::now();
                    }
                }
                if last_progress.elapsed() > retry.timeout {
                    let source = last_error.take().unwrap_or(rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::error::RDKafkaErrorCode::OperationTimedOut,
                    ));
                    return Err(StreamsError::TaskTimeout {
                        timeout: retry.timeout,
                        source: Box::new(kafka_error(format!("restoring task {task}: no progress"), &source)),
                    });
                }
            }
        }
    }
    Ok(())
}

fn flush(
    task: TaskId,
    p: &mut Pending<'_>,
    offset: i64,
    listener: Option<&dyn StateRestoreListener>,
    counters: &Counters,
) -> Result<(), StreamsError> {
    let n = p.batch.len() as u64;
    let mut records = std::mem::take(&mut p.batch).into_iter();
    p.store.restore_batch(&mut records, u64::try_from(offset).unwrap_or(0))?;
    p.restored += n;
    Counters::add(&counters.restored, n);
    if let Some(l) = listener {
        l.on_batch_restored(task, p.store.name(), offset, n);
    }
    Ok(())
}

fn finish(
    task: TaskId,
    p: &Pending<'_>,
    listener: Option<&dyn StateRestoreListener>,
    counters: &Counters,
    done: &mut bool,
) {
    *done = true;
    // Aborted transactions and their markers take offsets but restore no
    // record: what was expected but not read is not left "to restore".
    let unread = u64::try_from(p.end - p.start).unwrap_or(0).saturating_sub(p.restored);
    counters.restore_total.fetch_sub(
        unread.min(counters.restore_total.load(std::sync::atomic::Ordering::Relaxed)),
        std::sync::atomic::Ordering::Relaxed,
    );
    tracing::info!(%task, store = p.store.name(), restored = p.restored, "restored");
    if let Some(l) = listener {
        l.on_restore_end(task, p.store.name(), p.restored);
    }
}
