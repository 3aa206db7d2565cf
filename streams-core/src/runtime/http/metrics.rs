//! `GET /metrics`: the instance's counters in the Prometheus (OpenMetrics)
//! text format, encoded by `prometheus-client`. The counters live where the
//! threads keep them; a scrape copies them into a fresh registry.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::super::{guard, Env, State};

/// What `/metrics` serves as.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Figures the threads record for the metrics endpoint beyond the plain
/// counters: commit durations, drops by reason, lag per partition.
#[derive(Debug)]
pub(crate) struct RuntimeMetrics {
    /// Seconds per commit (flush, offsets, transaction commit, stores).
    pub(crate) commit_seconds: Histogram,
    /// Records dropped on purpose, by reason.
    pub(crate) dropped: Mutex<BTreeMap<&'static str, u64>>,
    /// (topic, partition) → consumer lag, from librdkafka's statistics.
    pub(crate) partition_lag: Mutex<BTreeMap<(String, i32), i64>>,
    /// (task, store) → changelog records a store being restored still has
    /// to read; a store leaves when its restore ends or stops.
    pub(crate) restoring: Mutex<BTreeMap<(crate::task_engine::TaskId, String), u64>>,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        Self {
            // 1 ms to ~16 s.
            commit_seconds: Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15)),
            dropped: Mutex::new(BTreeMap::new()),
            partition_lag: Mutex::new(BTreeMap::new()),
            restoring: Mutex::new(BTreeMap::new()),
        }
    }
}

impl RuntimeMetrics {
    /// Adds drops of `reason`.
    pub(crate) fn dropped(&self, reason: &'static str, n: u64) {
        *guard(&self.dropped).entry(reason).or_default() += n;
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: i32,
    thread: String,
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: String,
    task: String,
    thread: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    store: String,
    task: String,
    thread: String,
    operation: String,
}

/// Task → the name of the stream thread running it.
fn task_threads(env: &Env) -> BTreeMap<crate::task_engine::TaskId, String> {
    let app = &env.config.application_id;
    guard(&env.tasks)
        .iter()
        .flat_map(|(index, tasks)| tasks.iter().map(move |t| (*t, format!("{app}-StreamThread-{}", index + 1))))
        .collect()
}

/// RocksDB's figures per store and task.
fn register_rocksdb(registry: &mut Registry, env: &Env, threads: &BTreeMap<crate::task_engine::TaskId, String>) {
    let memtable = Family::<StoreLabels, Gauge>::default();
    let cache = Family::<StoreLabels, Gauge>::default();
    let readers = Family::<StoreLabels, Gauge>::default();
    let keys = Family::<StoreLabels, Gauge>::default();
    let listed: Vec<(crate::task_engine::TaskId, String, crate::store::StoreEntry)> = guard(&env.local_stores)
        .iter()
        .flat_map(|(task, stores)| stores.iter().map(move |(name, entry)| (*task, name.clone(), entry.clone())))
        .collect();
    let gauge_of = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (task, store, entry) in listed {
        let Some(f) = entry.rocksdb_figures() else { continue };
        let labels =
            StoreLabels { store, task: task.to_string(), thread: threads.get(&task).cloned().unwrap_or_default() };
        memtable.get_or_create(&labels).set(gauge_of(f.memtable_bytes));
        cache.get_or_create(&labels).set(gauge_of(f.block_cache_usage_bytes));
        readers.get_or_create(&labels).set(gauge_of(f.table_readers_bytes));
        keys.get_or_create(&labels).set(gauge_of(f.estimated_keys));
    }
    registry.register("rocksdb_memtable_bytes", "Bytes in a RocksDB store's memtables", memtable);
    registry.register(
        "rocksdb_block_cache_usage_bytes",
        "Bytes of a RocksDB store's block cache in use (a shared cache shows in every store)",
        cache,
    );
    registry.register(
        "rocksdb_table_readers_bytes",
        "Bytes of index and filter blocks a RocksDB store holds outside the block cache",
        readers,
    );
    registry.register("rocksdb_estimated_keys", "RocksDB's estimate of a store's keys", keys);
}

/// The metered layer's counts (and times, at `metrics.recording.level=DEBUG`)
/// per store, task and operation.
fn register_store_operations(
    registry: &mut Registry,
    env: &Env,
    threads: &BTreeMap<crate::task_engine::TaskId, String>,
) {
    let counts = Family::<OperationLabels, Counter>::default();
    let seconds = Family::<OperationLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    for store in env.store_metrics() {
        let thread = threads.get(&store.task).cloned().unwrap_or_default();
        for op in &store.operations {
            let labels = OperationLabels {
                store: store.store.clone(),
                task: store.task.to_string(),
                thread: thread.clone(),
                operation: op.operation.as_str().to_owned(),
            };
            counts.get_or_create(&labels).inc_by(op.count);
            if let Some(t) = op.total_time {
                seconds.get_or_create(&labels).inc_by(t.as_secs_f64());
            }
        }
    }
    registry.register("store_operations", "State-store operations by store, task and operation", counts);
    if env.config.metrics_recording_level.times_store_operations() {
        registry.register(
            "store_operation_seconds",
            "Time spent in state-store operations (metrics.recording.level=DEBUG)",
            seconds,
        );
    }
}

const STATES: [State; 7] = [
    State::Created,
    State::Rebalancing,
    State::Running,
    State::PendingShutdown,
    State::NotRunning,
    State::PendingError,
    State::Error,
];

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    registry.register(name, help, g);
}

/// The exposition text of `env`'s figures, labelled with its `application_id`.
pub(crate) fn render(env: &Env) -> Result<String, std::fmt::Error> {
    let labels = [(std::borrow::Cow::Borrowed("application_id"), env.config.application_id.clone().into())];
    let mut registry = Registry::with_prefix_and_labels("rivulet", labels.into_iter());
    let m = env.metrics_snapshot();

    let state = env.lifecycle.state();
    let states = Family::<StateLabel, Gauge>::default();
    for s in STATES {
        states.get_or_create(&StateLabel { state: s.to_string() }).set(i64::from(s == state));
    }
    registry.register("state", "The client's state: 1 for the current one", states);

    counter(&mut registry, "records_consumed", "Records read from the input topics", m.records_consumed);
    counter(&mut registry, "records_processed", "Records processed by the topology", m.records_processed);
    counter(
        &mut registry,
        "records_produced",
        "Records written to sinks, changelogs and repartition topics",
        m.records_produced,
    );
    counter(
        &mut registry,
        "records_skipped",
        "Records skipped by an error handler (log_and_continue)",
        m.records_skipped,
    );
    counter(
        &mut registry,
        "records_dead_lettered",
        "Records written to the dead-letter topic",
        m.records_dead_lettered,
    );
    counter(
        &mut registry,
        "records_redelivered",
        "Records the consumer delivered again to the task that had them; ignored",
        m.records_redelivered,
    );
    counter(&mut registry, "commits", "Commits (transactions under exactly-once)", m.commits);
    counter(&mut registry, "aborted_transactions", "Batches rolled back to the last commit", m.aborted_transactions);
    counter(&mut registry, "restored_records", "Changelog records restored into stores", m.records_restored);
    counter(&mut registry, "retries", "Calls to the cluster retried", m.retries);
    counter(&mut registry, "rejoins", "Times a thread rejoined the group with new clients", m.rejoins);
    gauge(
        &mut registry,
        "restore_remaining_records",
        "Changelog records still to restore",
        m.records_to_restore.saturating_sub(m.records_restored),
    );

    let threads = task_threads(env);
    let restoring = Family::<StoreLabels, Gauge>::default();
    for ((task, store), remaining) in guard(&env.metrics.restoring).iter() {
        let labels = StoreLabels {
            store: store.clone(),
            task: task.to_string(),
            thread: threads.get(task).cloned().unwrap_or_default(),
        };
        restoring.get_or_create(&labels).set(i64::try_from(*remaining).unwrap_or(i64::MAX));
    }
    registry.register(
        "store_restore_remaining_records",
        "Changelog records a store being restored still has to read",
        restoring,
    );

    let dropped = Family::<ReasonLabel, Counter>::default();
    for (reason, n) in guard(&env.metrics.dropped).iter() {
        dropped.get_or_create(&ReasonLabel { reason: (*reason).to_owned() }).inc_by(*n);
    }
    registry.register("records_dropped", "Records dropped on purpose (late, null key, ...), by reason", dropped);

    let lag = Family::<PartitionLabels, Gauge>::default();
    for ((topic, partition), n) in guard(&env.metrics.partition_lag).iter() {
        let task = env
            .topic_sub
            .get(topic)
            .map(|&subtopology| crate::task_engine::TaskId { subtopology, partition: *partition });
        let labels = PartitionLabels {
            topic: topic.clone(),
            partition: *partition,
            thread: task.and_then(|t| threads.get(&t).cloned()).unwrap_or_default(),
            task: task.map(|t| t.to_string()).unwrap_or_default(),
        };
        lag.get_or_create(&labels).set(*n);
    }
    registry.register("consumer_lag", "Records behind the end of each assigned input partition", lag);

    registry.register("commit_duration_seconds", "How long commits take", env.metrics.commit_seconds.clone());
    if let Some(budget) = env.rocksdb.memory_budget() {
        gauge(
            &mut registry,
            "rocksdb_memory_budget_bytes",
            "rocksdb.memory.bytes: RocksDB's memory budget",
            budget as u64,
        );
        gauge(
            &mut registry,
            "rocksdb_memory_usage_bytes",
            "Bytes of RocksDB's budget in use: blocks, index and filter blocks, memtables, the read cache",
            env.rocksdb.memory_usage().unwrap_or(0) as u64,
        );
    }
    register_rocksdb(&mut registry, env, &threads);
    register_store_operations(&mut registry, env, &threads);

    counter(
        &mut registry,
        "standby_records_applied",
        "Changelog records applied to standby copies",
        m.standby_records_applied,
    );
    gauge(&mut registry, "standby_tasks", "Standby copies of other instances' tasks held here", m.standby_tasks);
    let standby_lag = Family::<TaskLabel, Gauge>::default();
    for (task, lag) in env.standbys.lags() {
        standby_lag.get_or_create(&TaskLabel { task: task.to_string() }).set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
    registry.register("standby_lag_records", "Changelog records a standby copy has not read yet", standby_lag);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}
