//! The broker-free [`TopologyTestDriver`]: pipe records in, read results out,
//! synchronously, with stores, punctuators and a mock wall clock.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::Hash;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use state_stores::RocksDbConfig;

use crate::config::RecordingLevel;
use crate::error::{ProcessorError, StreamsError};
use crate::record::Headers;
use crate::serde::Serde;
use crate::store::{
    KeyValueStoreHandle, SessionStoreHandle, StoreContext, StoreEntry, StoreMetrics, TimestampedKeyValueStoreHandle,
    WindowStoreHandle,
};
use crate::task_engine::{RecordCollector, TaskEngine, TaskId};
use crate::topology::{RawRecord, Topology};

/// Settings of a [`TopologyTestDriver`].
#[derive(Debug, Clone)]
pub struct TestDriverConfig {
    /// The `application.id` (prefix of internal topic names). Default `test-app`.
    pub application_id: String,
    /// The mock wall-clock time at start, in ms since the epoch. Default: now.
    pub initial_wall_clock_ms: i64,
    /// `statestore.cache.max.bytes`: the record cache budget. Default 10 MiB
    /// (as Kafka Streams); 0 turns caching off so every update is emitted.
    pub cache_max_bytes: u64,
    /// `metrics.recording.level`: at `Debug` or finer, the stores' metered
    /// layer times operations too (see [`TopologyTestDriver::store_metrics`]).
    /// Default `Info`.
    pub metrics_recording_level: RecordingLevel,
}

impl Default for TestDriverConfig {
    fn default() -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            application_id: "test-app".to_owned(),
            initial_wall_clock_ms: now,
            cache_max_bytes: 10 * 1024 * 1024,
            metrics_recording_level: RecordingLevel::Info,
        }
    }
}

#[derive(Default)]
struct Collected {
    outputs: HashMap<String, VecDeque<RawRecord>>,
    produced: Vec<RawRecord>,
}

impl RecordCollector for Collected {
    fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError> {
        self.produced.push(record);
        Ok(())
    }

    fn partition_count(&self, _topic: &str) -> Option<i32> {
        // Every topic has one partition in the test driver.
        Some(1)
    }
}

struct Inner {
    engine: TaskEngine,
    collected: Collected,
    wall_clock: i64,
    offsets: HashMap<String, i64>,
    closed: bool,
    // Dropped last: persistent stores are closed before their files go.
    _state_dir: TempStateDir,
}

/// A private `state.dir` for the driver's persistent stores, removed on drop.
struct TempStateDir {
    path: PathBuf,
}

impl TempStateDir {
    fn create() -> Result<Self, StreamsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let unique =
            format!("rivulet-test-driver-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&path).map_err(|e| {
            StreamsError::Store(state_stores::StoreError::Io {
                store: "<test driver>".into(),
                path: path.clone(),
                message: e.to_string(),
            })
        })?;
        Ok(Self { path })
    }
}

impl Drop for TempStateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

impl Inner {
    fn next_offset(&mut self, topic: &str) -> i64 {
        let next = self.offsets.entry(topic.to_owned()).or_insert(0);
        let offset = *next;
        *next += 1;
        offset
    }

    /// Moves what the sinks produced to the output queues; records written to
    /// topics the topology also reads (repartition topics, say) are fed back
    /// in, in order, as the Kafka Streams test driver does.
    fn drain(&mut self) -> Result<(), StreamsError> {
        let mut pending: VecDeque<RawRecord> = VecDeque::new();
        loop {
            for mut record in std::mem::take(&mut self.collected.produced) {
                record.partition = Some(0);
                record.offset = Some(self.next_offset(&record.topic));
                if self.engine.reads(&record.topic) {
                    pending.push_back(record.clone());
                }
                self.collected.outputs.entry(record.topic.to_string()).or_default().push_back(record);
            }
            let Some(record) = pending.pop_front() else { return Ok(()) };
            self.engine.process(record, &mut self.collected, self.wall_clock)?;
            // As Kafka Streams' test driver, commit (and so flush caches) after every record.
            self.engine.flush(&mut self.collected, self.wall_clock)?;
        }
    }

    fn pipe(&mut self, mut raw: RawRecord) -> Result<(), StreamsError> {
        raw.partition = Some(0);
        raw.offset = Some(self.next_offset(&raw.topic));
        self.transaction(|inner| inner.engine.process(raw, &mut inner.collected, inner.wall_clock))
    }

    /// Runs `step` and everything it leads to (records fed back through
    /// internal topics) as one unit, as one exactly-once transaction would: on
    /// success the stores commit; on error the stores roll back and the
    /// outputs of the failed unit are discarded.
    fn transaction(&mut self, step: impl FnOnce(&mut Self) -> Result<(), StreamsError>) -> Result<(), StreamsError> {
        let marks: HashMap<String, usize> = self.collected.outputs.iter().map(|(t, q)| (t.clone(), q.len())).collect();
        let result = step(self)
            .and_then(|()| self.engine.flush(&mut self.collected, self.wall_clock))
            .and_then(|()| self.drain())
            .and_then(|()| self.engine.commit_stores());
        if result.is_err() {
            self.engine.abort_stores();
            self.collected.produced.clear();
            self.collected.outputs.retain(|topic, queue| match marks.get(topic) {
                Some(&len) => {
                    queue.truncate(len);
                    true
                }
                None => false,
            });
        }
        result
    }
}

/// Runs a [`Topology`] synchronously without a broker, for tests.
///
/// All sub-topologies run in one task (`0_0`), every topic has one partition,
/// and records that sinks write to topics the topology reads are processed
/// next, so repartitioned topologies work end to end. Each piped record (with
/// everything it causes) is one transaction: stores commit after it, and if it
/// fails, store writes roll back and its outputs are discarded. Stream-time punctuators
/// fire as records advance time; wall-clock punctuators fire on
/// [`advance_wall_clock_time`](Self::advance_wall_clock_time).
///
/// ```
/// use streams_core::prelude::*;
///
/// let mut topology = Topology::new();
/// topology
///     .add_source("in", &["in"], StringSerde, I64Serde)?
///     .add_sink("out", "out", StringSerde, I64Serde, &["in"])?;
/// let driver = TopologyTestDriver::new(&topology)?;
/// let input = driver.create_input_topic("in", StringSerde, I64Serde);
/// let output = driver.create_output_topic("out", StringSerde, I64Serde);
/// input.pipe_input_at("a".to_owned(), 1, 10)?;
/// assert_eq!(output.read_key_value()?, ("a".to_owned(), 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
}

impl fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("TopologyTestDriver")
            .field("wall_clock_ms", &inner.wall_clock)
            .field("stream_time_ms", &inner.engine.stream_time())
            .finish()
    }
}

impl TopologyTestDriver {
    /// A driver with the default config.
    pub fn new(topology: &Topology) -> Result<Self, StreamsError> {
        Self::with_config(topology, TestDriverConfig::default())
    }

    /// A driver with this config. Validates the topology and initialises its processors.
    pub fn with_config(topology: &Topology, config: TestDriverConfig) -> Result<Self, StreamsError> {
        topology.validate()?;
        let mut collected = Collected::default();
        let task = TaskId { subtopology: 0, partition: 0 };
        let state_dir = TempStateDir::create()?;
        let store_context = StoreContext {
            task_dir: state_dir.path.join(&config.application_id).join(task.to_string()),
            rocksdb: RocksDbConfig::default(),
            cache_max_bytes: config.cache_max_bytes,
            timed_operations: config.metrics_recording_level.times_store_operations(),
        };
        let engine = TaskEngine::new(
            topology,
            None,
            &HashMap::new(),
            task,
            &config.application_id,
            &mut collected,
            config.initial_wall_clock_ms,
            &store_context,
        )?;
        let mut inner = Inner {
            engine,
            collected,
            wall_clock: config.initial_wall_clock_ms,
            offsets: HashMap::new(),
            closed: false,
            _state_dir: state_dir,
        };
        inner.transaction(|_| Ok(()))?;
        Ok(Self { inner: Rc::new(RefCell::new(inner)) })
    }

    /// A handle to pipe typed records into `topic`.
    pub fn create_input_topic<KS: Serde, VS: Serde>(
        &self,
        topic: &str,
        key_serde: KS,
        value_serde: VS,
    ) -> TestInputTopic<KS::Target, VS::Target> {
        let start = self.inner.borrow().wall_clock;
        TestInputTopic {
            inner: Rc::clone(&self.inner),
            topic: topic.into(),
            key: Arc::new(key_serde),
            value: Arc::new(value_serde),
            next_timestamp: RefCell::new(start),
            advance_ms: 0,
        }
    }

    /// A handle to read typed records that sinks wrote to `topic`, including
    /// those written before the handle was created.
    pub fn create_output_topic<KS: Serde, VS: Serde>(
        &self,
        topic: &str,
        key_serde: KS,
        value_serde: VS,
    ) -> TestOutputTopic<KS::Target, VS::Target> {
        TestOutputTopic {
            inner: Rc::clone(&self.inner),
            topic: topic.into(),
            key: Arc::new(key_serde),
            value: Arc::new(value_serde),
        }
    }

    /// Pipes an already-serialized record (for bytes a serde would reject).
    pub fn pipe_raw_record(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        self.inner.borrow_mut().pipe(RawRecord {
            topic: topic.into(),
            partition: None,
            offset: None,
            timestamp,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: Headers::new(),
        })
    }

    /// Moves the mock wall clock forward and fires the wall-clock punctuators
    /// that became due.
    pub fn advance_wall_clock_time(&self, by: Duration) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        inner.wall_clock = inner.wall_clock.saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
        inner.transaction(|inner| inner.engine.punctuate_wall_clock(&mut inner.collected, inner.wall_clock))
    }

    /// The mock wall-clock time, ms since the epoch.
    pub fn wall_clock_time_ms(&self) -> i64 {
        self.inner.borrow().wall_clock
    }

    /// The task's stream time (largest timestamp processed), or -1 before any record.
    pub fn stream_time_ms(&self) -> i64 {
        self.inner.borrow().engine.stream_time()
    }

    fn store<T>(
        &self,
        name: &str,
        get: impl FnOnce(&StoreEntry) -> Result<T, StreamsError>,
    ) -> Result<T, StreamsError> {
        let inner = self.inner.borrow();
        get(inner.engine.store(name).ok_or_else(|| StreamsError::UnknownStore(name.to_owned()))?)
    }

    /// A typed handle to a key-value store, to check its content.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStoreHandle<K, V>, StreamsError> {
        self.store(name, StoreEntry::key_value::<K, V>)
    }

    /// A typed handle to a timestamped key-value store (a KTable's store).
    pub fn timestamped_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStoreHandle<K, V>, StreamsError> {
        self.store(name, StoreEntry::timestamped_key_value::<K, V>)
    }

    /// A typed handle to a window store.
    pub fn window_store<K: 'static, V: 'static>(&self, name: &str) -> Result<WindowStoreHandle<K, V>, StreamsError> {
        self.store(name, |e| e.window::<K, V>(false))
    }

    /// A typed handle to a timestamped window store (a windowed KTable's store).
    pub fn timestamped_window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreHandle<K, V>, StreamsError> {
        self.store(name, |e| e.window::<K, V>(true))
    }

    /// A typed handle to a session store.
    pub fn session_store<K: 'static, V: 'static>(&self, name: &str) -> Result<SessionStoreHandle<K, V>, StreamsError> {
        self.store(name, StoreEntry::session::<K, V>)
    }

    /// What the metered layer of each of the task's stores counted (and,
    /// at `metrics.recording.level` `Debug`, timed), by store name.
    pub fn store_metrics(&self) -> Vec<StoreMetrics> {
        let inner = self.inner.borrow();
        let task = inner.engine.id();
        let mut all: Vec<StoreMetrics> = inner.engine.owned_stores().map(|(_, s)| s.operation_metrics(task)).collect();
        all.sort_by(|a, b| a.store.cmp(&b.store));
        all
    }

    /// Records dropped on purpose (late, expired, null keys), by reason.
    pub fn dropped_records(&self) -> BTreeMap<String, u64> {
        self.inner.borrow().engine.dropped_records().iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    /// The names of the topics sinks have written to so far.
    pub fn produced_topic_names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.inner.borrow().collected.outputs.keys().cloned().collect();
        names.sort();
        names
    }

    /// Closes the processors and stores (once; later calls do nothing).
    pub fn close(&self) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        if inner.closed {
            return Ok(());
        }
        inner.closed = true;
        inner.engine.close()
    }
}

/// A record as test topics give and take it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestRecord<K, V> {
    /// The key.
    pub key: K,
    /// The value.
    pub value: V,
    /// The timestamp, ms since the epoch.
    pub timestamp: i64,
    /// The headers.
    pub headers: Headers,
}

/// Pipes typed records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Arc<dyn Serde<Target = K>>,
    value: Arc<dyn Serde<Target = V>>,
    next_timestamp: RefCell<i64>,
    advance_ms: i64,
}

impl<K, V> fmt::Debug for TestInputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestInputTopic")
            .field("topic", &self.topic)
            .field("next_timestamp", &self.next_timestamp)
            .finish()
    }
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Records piped without a timestamp start at `start_ms` and each moves
    /// the next one `advance` later (Kafka Streams' auto-advance).
    pub fn with_auto_advance(mut self, start_ms: i64, advance: Duration) -> Self {
        self.next_timestamp = RefCell::new(start_ms);
        self.advance_ms = i64::try_from(advance.as_millis()).unwrap_or(i64::MAX);
        self
    }

    /// Moves the timestamp of the next record piped without one.
    pub fn advance_time(&self, by: Duration) {
        let mut ts = self.next_timestamp.borrow_mut();
        *ts = ts.saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX));
    }

    fn take_timestamp(&self) -> i64 {
        let mut ts = self.next_timestamp.borrow_mut();
        let current = *ts;
        *ts = ts.saturating_add(self.advance_ms);
        current
    }

    /// Pipes a record with the next auto-advanced timestamp.
    pub fn pipe_input(&self, key: K, value: V) -> Result<(), StreamsError> {
        let ts = self.take_timestamp();
        self.pipe_record(TestRecord { key, value, timestamp: ts, headers: Headers::new() })
    }

    /// Pipes a record with this timestamp.
    pub fn pipe_input_at(&self, key: K, value: V, timestamp: i64) -> Result<(), StreamsError> {
        self.pipe_record(TestRecord { key, value, timestamp, headers: Headers::new() })
    }

    /// Pipes a record with a null key (errors if the source's key serde rejects null).
    pub fn pipe_value_at(&self, value: V, timestamp: i64) -> Result<(), StreamsError> {
        let mut headers = Headers::new();
        let value = self.value.serialize(&self.topic, &mut headers, &value)?;
        self.pipe_bytes(None, value, timestamp, headers)
    }

    /// Pipes a record with its own timestamp and headers.
    pub fn pipe_record(&self, record: TestRecord<K, V>) -> Result<(), StreamsError> {
        let mut headers = record.headers;
        let key = self.key.serialize(&self.topic, &mut headers, &record.key)?;
        let value = self.value.serialize(&self.topic, &mut headers, &record.value)?;
        self.pipe_bytes(key, value, record.timestamp, headers)
    }

    /// Pipes records one after another, stopping at the first error.
    pub fn pipe_key_value_list(&self, records: impl IntoIterator<Item = (K, V)>) -> Result<(), StreamsError> {
        records.into_iter().try_for_each(|(k, v)| self.pipe_input(k, v))
    }

    fn pipe_bytes(
        &self,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        self.inner.borrow_mut().pipe(RawRecord {
            topic: self.topic.as_str().into(),
            partition: None,
            offset: None,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

/// Reads typed records from one topic written by a [`TopologyTestDriver`].
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    key: Arc<dyn Serde<Target = K>>,
    value: Arc<dyn Serde<Target = V>>,
}

impl<K, V> fmt::Debug for TestOutputTopic<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestOutputTopic").field("topic", &self.topic).finish()
    }
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// Takes the next record.
    pub fn read_record(&self) -> Result<TestRecord<K, V>, StreamsError> {
        let raw = self
            .inner
            .borrow_mut()
            .collected
            .outputs
            .get_mut(&self.topic)
            .and_then(VecDeque::pop_front)
            .ok_or_else(|| StreamsError::NoRecord(self.topic.clone()))?;
        let key = self.key.deserialize(&self.topic, &raw.headers, raw.key.as_deref())?;
        let value = self.value.deserialize(&self.topic, &raw.headers, raw.value.as_deref())?;
        Ok(TestRecord { key, value, timestamp: raw.timestamp, headers: raw.headers })
    }

    /// Takes the next record's key and value.
    pub fn read_key_value(&self) -> Result<(K, V), StreamsError> {
        self.read_record().map(|r| (r.key, r.value))
    }

    /// Takes the next record's value.
    pub fn read_value(&self) -> Result<V, StreamsError> {
        self.read_record().map(|r| r.value)
    }

    /// Takes every remaining record.
    pub fn read_records_to_list(&self) -> Result<Vec<TestRecord<K, V>>, StreamsError> {
        let mut out = Vec::with_capacity(self.queue_size());
        while !self.is_empty() {
            out.push(self.read_record()?);
        }
        Ok(out)
    }

    /// Takes every remaining key and value.
    pub fn read_key_values_to_list(&self) -> Result<Vec<(K, V)>, StreamsError> {
        Ok(self.read_records_to_list()?.into_iter().map(|r| (r.key, r.value)).collect())
    }

    /// Takes every remaining value.
    pub fn read_values_to_list(&self) -> Result<Vec<V>, StreamsError> {
        Ok(self.read_records_to_list()?.into_iter().map(|r| r.value).collect())
    }

    /// Takes every remaining record into a map: the latest value per key.
    pub fn read_key_values_to_map(&self) -> Result<HashMap<K, V>, StreamsError>
    where
        K: Hash + Eq,
    {
        Ok(self.read_key_values_to_list()?.into_iter().collect())
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }

    /// How many records are waiting.
    pub fn queue_size(&self) -> usize {
        self.inner.borrow().collected.outputs.get(&self.topic).map_or(0, VecDeque::len)
    }
}
