//! The global thread: reads every partition of the global topics into the
//! global stores, fully before stream threads start, then keeps up.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, kafka_error};
use super::message::{now_ms, to_raw};
use super::Env;
use crate::config::StreamsConfig;
use crate::error::{ProcessorError, StreamsError};
use crate::store::{StoreContext, StoreEntry};
use crate::task_engine::{RecordCollector, TaskEngine, TaskId};
use crate::topology::{RawRecord, Topology};

const COMMIT_EVERY: Duration = Duration::from_millis(100);
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// Global store processors only write their store; nothing is forwarded to sinks.
struct NoOutput;

impl RecordCollector for NoOutput {
    fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError> {
        Err(ProcessorError::Internal(format!("a global store processor wrote to topic `{}`", record.topic)))
    }

    fn partition_count(&self, _topic: &str) -> Option<i32> {
        None
    }
}

/// The global task: its engine, consumer, and the stores it shares.
pub(crate) struct GlobalTask {
    engine: TaskEngine,
    consumer: BaseConsumer,
}

impl std::fmt::Debug for GlobalTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalTask").finish_non_exhaustive()
    }
}

/// The global task and the stores it shares with stream tasks.
pub(crate) type Bootstrapped = (GlobalTask, HashMap<String, StoreEntry>);

/// Builds the global task (if the topology has global stores), and reads the
/// global topics to their end. Returns the task and its stores.
pub(crate) fn bootstrap(
    topology: &Topology,
    config: &StreamsConfig,
    rocksdb: &state_stores::RocksDbConfig,
) -> Result<Option<Bootstrapped>, StreamsError> {
    let subs: Vec<_> = topology.subtopologies().into_iter().filter(|s| s.global).collect();
    if subs.is_empty() {
        return Ok(None);
    }
    let nodes: Vec<usize> = subs.iter().flat_map(|s| s.nodes.iter().copied()).collect();
    let topics: Vec<String> = subs
        .iter()
        .flat_map(|s| s.source_topics.iter().map(|t| topology.resolve_topic(&config.application_id, t)))
        .collect();
    // Global stores are rebuilt from their topics at every start: a topic
    // compacted since the last run may have dropped keys a stale store keeps.
    let dir = config.state_dir.join(&config.application_id).join("global");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|source| StreamsError::StateDir { path: dir.clone(), source })?;
    }
    let store_context = StoreContext {
        task_dir: dir,
        rocksdb: rocksdb.clone(),
        cache_max_bytes: 0,
        timed_operations: config.metrics_recording_level.times_store_operations(),
    };
    let engine = TaskEngine::new(
        topology,
        Some(&nodes),
        &HashMap::new(),
        TaskId { subtopology: subs[0].id, partition: -1 },
        &config.application_id,
        &mut NoOutput,
        now_ms(),
        &store_context,
    )?;
    let consumer: BaseConsumer =
        client::restore_consumer(config, &format!("{}-global-consumer", config.application_id))
            .create()
            .map_err(|e| kafka_error("creating the global consumer", &e))?;
    let metadata = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| kafka_error("reading global topic metadata", &e))?;
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for topic in &topics {
        let t = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .ok_or_else(|| crate::internal_topics::TopicPlanError::MissingSourceTopic(topic.clone()))?;
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .map_err(|e| kafka_error("assigning global partitions", &e))?;
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)
                .map_err(|e| kafka_error("reading the end of a global topic", &e))?;
            ends.insert((topic.clone(), p.id()), high);
        }
    }
    consumer.assign(&tpl).map_err(|e| kafka_error("assigning global partitions", &e))?;
    let stores: HashMap<String, StoreEntry> =
        topology.global_stores().filter_map(|name| engine.store(name).map(|s| (name.to_owned(), s.clone()))).collect();
    let mut task = GlobalTask { engine, consumer };
    let started = Instant::now();
    let mut read = 0u64;
    loop {
        let positions = task.consumer.position().map_err(|e| kafka_error("reading global positions", &e))?;
        let caught_up = ends.iter().all(|((topic, p), &end)| {
            end == 0
                || positions
                    .find_partition(topic, *p)
                    .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= end))
        });
        if caught_up {
            break;
        }
        read += task.poll_batch(Duration::from_millis(100))? as u64;
        if started.elapsed() > Duration::from_secs(600) {
            return Err(StreamsError::IllegalState("bootstrapping the global stores took over 10 minutes".into()));
        }
    }
    task.engine.commit_stores()?;
    tracing::info!(records = read, topics = ?topics, "global stores bootstrapped");
    Ok(Some((task, stores)))
}

impl GlobalTask {
    fn poll_batch(&mut self, wait: Duration) -> Result<usize, StreamsError> {
        let mut n = 0;
        let wall = now_ms();
        while n < 10_000 {
            match self.consumer.poll(if n == 0 { wait } else { Duration::ZERO }) {
                Some(Ok(m)) => {
                    let raw = to_raw(&m);
                    self.engine.process(raw, &mut NoOutput, wall)?;
                    n += 1;
                }
                // The cluster being away is waited out: the consumer
                // reconnects and fetches on by itself.
                Some(Err(e)) if super::errors::is_transient_poll_error(&e) => {
                    tracing::debug!(error = %e, "global consumer");
                    break;
                }
                Some(Err(e)) => return Err(kafka_error("reading a global topic", &e)),
                None => break,
            }
        }
        Ok(n)
    }

    /// Keeps the global stores up to date until the instance stops.
    pub(crate) fn run(mut self, env: &Arc<Env>) -> Result<(), StreamsError> {
        let mut last_commit = Instant::now();
        while !env.stop.load(Ordering::Acquire) {
            self.poll_batch(Duration::from_millis(100))?;
            if last_commit.elapsed() >= COMMIT_EVERY {
                self.engine.commit_stores()?;
                last_commit = Instant::now();
            }
        }
        self.engine.commit_stores()?;
        self.engine.close()
    }
}
