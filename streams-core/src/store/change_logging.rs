//! The change-logging layer of a task's store: what the store writes goes to
//! its changelog partition through the task's record collector, and the
//! store's checkpoint is the offset that partition reached at a commit.
//!
//! It sits under the caching layer, as in Kafka Streams: with caching on
//! ([`StoreBuilder::with_caching`](super::StoreBuilder::with_caching)) a key
//! written many times between commits is logged once, with its last value,
//! at the commit (or sooner, when the held writes outgrow
//! `statestore.cache.max.bytes`). The store itself keeps its writes in
//! changelog form ([`state_stores::StateStore::take_changes`]) under its own
//! lock, so nothing else is shared between the store and this layer.

use std::collections::HashMap;
use std::sync::Arc;

use state_stores::ChangelogRecord;

use super::StoreEntry;
use crate::error::ProcessorError;
use crate::task_engine::RecordCollector;
use crate::topology::RawRecord;

/// One logged store of a task, with its changelog partition.
pub(crate) struct ChangeLogging {
    store: StoreEntry,
    topic: Arc<str>,
    partition: i32,
    /// A caching store's writes since the last flush, one per key.
    held: Option<HeldChanges>,
    /// The writes taken last time, emptied: swapped with the store's log on
    /// every take so that neither side allocates per record.
    spare: Vec<ChangelogRecord>,
}

impl ChangeLogging {
    /// Turns the store's change log on; `caching` holds writes one per key
    /// until a flush.
    pub(crate) fn new(store: StoreEntry, topic: Arc<str>, partition: i32, caching: bool) -> Self {
        store.set_change_logging(true);
        Self { store, topic, partition, held: caching.then(HeldChanges::default), spare: Vec::new() }
    }

    pub(crate) fn store(&self) -> &StoreEntry {
        &self.store
    }

    /// The changelog topic.
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// Sends the store's writes since the last call to the changelog, with
    /// `timestamp` (the record or punctuation that caused them). A caching
    /// store's writes are held instead, until `flush` or until they outgrow
    /// `budget` bytes; each is then sent with the timestamp of its last write.
    pub(crate) fn send(
        &mut self,
        collector: &mut dyn RecordCollector,
        timestamp: i64,
        flush: bool,
        budget: u64,
    ) -> Result<(), ProcessorError> {
        let mut changes = std::mem::take(&mut self.spare);
        self.store.take_changes(&mut changes);
        let (topic, partition) = (&self.topic, self.partition);
        let send = |collector: &mut dyn RecordCollector, key, value, timestamp| {
            collector.send(RawRecord {
                topic: Arc::clone(topic),
                partition: Some(partition),
                offset: None,
                timestamp,
                key: Some(key),
                value,
                headers: crate::record::Headers::new(),
            })
        };
        let sent = match &mut self.held {
            None => changes.drain(..).try_for_each(|(key, value)| send(collector, key, value, timestamp)),
            Some(held) => {
                for (key, value) in changes.drain(..) {
                    held.hold(key, value, timestamp);
                }
                if flush || held.bytes > budget {
                    held.take().into_iter().try_for_each(|(key, value, ts)| send(collector, key, value, ts))
                } else {
                    Ok(())
                }
            }
        };
        // Whatever was not sent after a failed send is dropped with it: the
        // transaction aborts and the store's batch with it.
        changes.clear();
        self.spare = changes;
        sent
    }

    /// The offset the changelog partition reached, among the partitions a
    /// commit wrote (`reached`: next offset to read by topic and partition).
    pub(crate) fn reached(&self, reached: &HashMap<(String, i32), i64>) -> Option<u64> {
        // Looked up by an owned key: a commit's map is small and commits are
        // far apart, so the copy of the name costs nothing that shows.
        reached.get(&(self.topic.to_string(), self.partition)).and_then(|&o| u64::try_from(o).ok())
    }

    /// Drops writes not yet sent (an aborted transaction); the store's own
    /// log goes with its batch.
    pub(crate) fn abort(&mut self) {
        if let Some(held) = &mut self.held {
            held.take();
        }
    }
}

/// Changelog writes held back until the next flush, last value per key, in
/// the order each key was first written.
#[derive(Default)]
struct HeldChanges {
    index: foldhash::HashMap<Vec<u8>, usize>,
    /// Key, latest value (`None`: deleted), timestamp of the latest write.
    entries: Vec<(Vec<u8>, Option<Vec<u8>>, i64)>,
    bytes: u64,
}

/// What an entry is taken to cost beyond its key and value bytes.
const HELD_ENTRY_OVERHEAD: u64 = 64;

impl HeldChanges {
    fn hold(&mut self, key: Vec<u8>, value: Option<Vec<u8>>, timestamp: i64) {
        let size = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len) as u64;
        if let Some(&i) = self.index.get(&key) {
            let entry = &mut self.entries[i];
            self.bytes = self.bytes - size(&entry.1) + size(&value);
            entry.1 = value;
            entry.2 = timestamp;
        } else {
            self.bytes += 2 * key.len() as u64 + size(&value) + HELD_ENTRY_OVERHEAD;
            self.index.insert(key.clone(), self.entries.len());
            self.entries.push((key, value, timestamp));
        }
    }

    fn take(&mut self) -> Vec<(Vec<u8>, Option<Vec<u8>>, i64)> {
        self.index.clear();
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StreamsError;
    use crate::serde::{I64Serde, StringSerde};
    use crate::store::{KeyValueStoreHandle, StoreContext, Stores};

    #[test]
    fn held_changes_keep_the_last_write_per_key_in_first_write_order() {
        let mut held = HeldChanges::default();
        held.hold(b"a".to_vec(), Some(b"1".to_vec()), 10);
        held.hold(b"b".to_vec(), Some(b"1".to_vec()), 11);
        held.hold(b"a".to_vec(), Some(b"22".to_vec()), 12);
        held.hold(b"b".to_vec(), None, 13);
        let sized = held.bytes;
        assert_eq!(
            held.take(),
            vec![(b"a".to_vec(), Some(b"22".to_vec()), 12), (b"b".to_vec(), None, 13)],
            "one write per key: its last value and timestamp"
        );
        assert!(sized > 0);
        assert_eq!(held.bytes, 0);
        assert!(held.take().is_empty());
    }

    /// Records what a layer sends.
    #[derive(Default)]
    struct Sent(Vec<RawRecord>);

    impl RecordCollector for Sent {
        fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError> {
            self.0.push(record);
            Ok(())
        }
        fn partition_count(&self, _topic: &str) -> Option<i32> {
            None
        }
    }

    type Res = Result<(), Box<dyn std::error::Error>>;

    fn counts_store(caching: bool) -> Result<(ChangeLogging, KeyValueStoreHandle<String, i64>), StreamsError> {
        // In memory: the task directory is never touched.
        let ctx = StoreContext {
            task_dir: std::env::temp_dir().join("rivulet-change-logging-test"),
            rocksdb: state_stores::RocksDbConfig::default(),
            cache_max_bytes: 1 << 20,
            timed_operations: false,
        };
        let builder =
            Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts"), StringSerde, I64Serde);
        let builder = if caching { builder.with_caching() } else { builder };
        let entry = builder.build(&ctx, "app-counts-changelog".to_owned())?;
        let handle = entry.key_value::<String, i64>()?;
        let unlogged = builder.clone().without_logging();
        assert!(unlogged.change_logging(&entry, "app-counts-changelog".into(), 3, &ctx).is_none());
        let log = builder.change_logging(&entry, "app-counts-changelog".into(), 3, &ctx);
        Ok((log.ok_or_else(|| StreamsError::UnknownStore("a logged store without its layer".into()))?, handle))
    }

    fn count(n: i64) -> Option<Vec<u8>> {
        Some(n.to_be_bytes().to_vec())
    }

    #[test]
    fn each_write_goes_to_the_changelog_partition_with_its_timestamp() -> Res {
        let (mut log, counts) = counts_store(false)?;
        let mut sent = Sent::default();
        counts.put(&"a".into(), &1)?;
        counts.put(&"a".into(), &2)?;
        log.send(&mut sent, 100, false, 0)?;
        counts.delete(&"a".into())?;
        log.send(&mut sent, 200, false, 0)?;
        let got: Vec<_> = sent.0.iter().map(|r| (r.partition, r.timestamp, r.value.clone())).collect();
        assert_eq!(
            got,
            vec![(Some(3), 100, count(1)), (Some(3), 100, count(2)), (Some(3), 200, None)],
            "every write, in order, on the task's partition"
        );
        assert!(sent.0.iter().all(|r| &*r.topic == "app-counts-changelog" && r.key.as_deref() == Some(&b"a"[..])));
        let topic = || "app-counts-changelog".to_owned();
        let reached = HashMap::from([((topic(), 3), 17), ((topic(), 2), 5)]);
        assert_eq!(log.reached(&reached), Some(17), "the checkpoint is the offset of this task's partition");
        Ok(())
    }

    #[test]
    fn a_caching_store_logs_each_key_once_per_flush() -> Res {
        let (mut log, counts) = counts_store(true)?;
        let mut sent = Sent::default();
        for (i, ts) in [(1, 10), (2, 20), (3, 30)] {
            counts.put(&"a".into(), &i)?;
            log.send(&mut sent, ts, false, 1 << 20)?;
        }
        counts.put(&"b".into(), &1)?;
        log.send(&mut sent, 40, false, 1 << 20)?;
        assert!(sent.0.is_empty(), "held until the flush");
        log.send(&mut sent, 50, true, 1 << 20)?;
        let got: Vec<_> = sent.0.iter().map(|r| (r.key.clone(), r.timestamp, r.value.clone())).collect();
        assert_eq!(
            got,
            vec![(Some(b"a".to_vec()), 30, count(3)), (Some(b"b".to_vec()), 40, count(1))],
            "one record per key: its last value, with its last write's timestamp"
        );
        counts.put(&"c".into(), &1)?;
        log.send(&mut sent, 60, false, 1 << 20)?;
        log.abort();
        log.send(&mut sent, 70, true, 1 << 20)?;
        assert_eq!(sent.0.len(), 2, "an abort drops held writes");
        Ok(())
    }
}
