//! The runtime: [`KafkaStreams`] runs a [`Topology`] on a Kafka cluster as a
//! member of the consumer group `application.id`, as Kafka Streams does.
//!
//! - `num.stream.threads` stream threads, each with its own consumer (eager
//!   range assignment; read_committed under exactly-once) and producer. A
//!   task is one sub-topology × one partition; tasks are created, restored
//!   from their changelogs, and closed as partitions move.
//! - Internal topics (repartition, changelogs) are created at start-up and
//!   co-partitioning is checked before anything is processed.
//! - Exactly-once (`processing.guarantee=exactly_once_v2`): one transaction
//!   per thread per commit, carrying outputs, changelog writes and consumed
//!   offsets; store batches commit with their changelog checkpoint after it.
//! - A global thread bootstraps global stores before processing starts.
//! - [`EmbeddedCluster`]: an in-process cluster for demos (at-least-once only).
//!
//! ```no_run
//! use streams_core::prelude::*;
//! use streams_core::runtime::{KafkaStreams, State};
//! use streams_core::StreamsConfig;
//!
//! let mut topology = Topology::new();
//! topology
//!     .add_source("in", &["lines"], StringSerde, StringSerde)?
//!     .add_sink("out", "copies", StringSerde, StringSerde, &["in"])?;
//! let streams = KafkaStreams::new(topology, StreamsConfig::new("copier", "127.0.0.1:9092"))?;
//! streams.start()?;
//! streams.wait_for_state(State::Running, std::time::Duration::from_secs(30));
//! streams.close();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod control;
mod embedded;
mod errors;
mod fetch;
mod global;
mod http;
mod listener;
mod membership;
mod message;
mod metadata;
mod output;
mod partition_group;
mod produce;
mod restore;
mod retry;
mod standby;
mod stream_task;
mod thread;
mod topics;
mod wakeup;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use embedded::EmbeddedCluster;
pub use errors::{ErrorClass, KafkaCallError};
pub use listener::{ErrorResponse, Metrics, State, StateListener, StateRestoreListener, UncaughtErrorHandler};
pub use metadata::{HostInfo, KeyQueryMetadata, StreamsMetadata};

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::internal_topics::{plan_internal_topics, InternalTopicSpec};
use crate::store::StoreEntry;
use crate::topology::{Subtopology, Topology};
use listener::Counters;

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadStatus {
    Rebalancing,
    Running,
    Dead,
}

/// The client-wide state, its listener and the threads' statuses.
#[derive(Default)]
struct Lifecycle {
    state: Mutex<LifecycleInner>,
    changed: Condvar,
    listener: Mutex<Option<StateListener>>,
    handler: Mutex<Option<UncaughtErrorHandler>>,
}

struct LifecycleInner {
    state: State,
    threads: BTreeMap<usize, ThreadStatus>,
    error: Option<Arc<StreamsError>>,
}

impl Default for LifecycleInner {
    fn default() -> Self {
        Self { state: State::Created, threads: BTreeMap::new(), error: None }
    }
}

impl Lifecycle {
    fn state(&self) -> State {
        guard(&self.state).state
    }

    /// Moves to `to` if the transition is allowed; tells the listener.
    fn transition(&self, to: State) -> bool {
        let from = {
            let mut inner = guard(&self.state);
            let from = inner.state;
            let allowed = match (from, to) {
                (a, b) if a == b => false,
                (State::Created, State::Rebalancing | State::PendingShutdown | State::PendingError) => true,
                (State::Rebalancing | State::Running, _) => to != State::Created,
                (State::PendingShutdown, State::NotRunning) => true,
                (State::PendingError, State::Error) => true,
                _ => false,
            };
            if !allowed {
                return false;
            }
            inner.state = to;
            from
        };
        self.changed.notify_all();
        tracing::info!(from = %from, to = %to, "state change");
        if let Some(listener) = guard(&self.listener).as_ref() {
            listener(to, from);
        }
        true
    }

    fn set_thread(&self, index: usize, status: ThreadStatus) {
        let target = {
            let mut inner = guard(&self.state);
            if inner.threads.insert(index, status) == Some(status) {
                return;
            }
            let live: Vec<ThreadStatus> =
                inner.threads.values().copied().filter(|s| *s != ThreadStatus::Dead).collect();
            if !live.is_empty() && live.iter().all(|s| *s == ThreadStatus::Running) {
                State::Running
            } else {
                State::Rebalancing
            }
        };
        if self.state().is_running_or_rebalancing() {
            self.transition(target);
        }
    }
}

/// What every thread of an instance shares.
pub(crate) struct Env {
    topology: Arc<Topology>,
    config: StreamsConfig,
    process_id: String,
    /// Non-global sub-topologies.
    subtopologies: Vec<Subtopology>,
    /// Topic as on the cluster → sub-topology reading it.
    topic_sub: foldhash::HashMap<String, u32>,
    /// Sub-topology → the topics it reads, as on the cluster.
    sub_topics: HashMap<u32, Vec<String>>,
    /// Topic as on the cluster → where its partitions start without a
    /// committed offset: repartition topics from the earliest (what the
    /// upstream task wrote before this one started is this task's input, as
    /// in Kafka Streams), sources as set for their topic or by
    /// `auto.offset.reset`.
    offset_resets: HashMap<String, crate::topology::OffsetReset>,
    /// Sub-topology → its partition count (its number of tasks).
    sub_partitions: std::collections::BTreeMap<u32, i32>,
    /// This instance's endpoint and every instance's tasks.
    membership: membership::Membership,
    /// The standby copies held here.
    standbys: standby::Standbys,
    source_topics: Vec<String>,
    global_stores: HashMap<String, StoreEntry>,
    counters: Counters,
    restore_listener: Option<Arc<dyn StateRestoreListener>>,
    /// RocksDB settings of every store opened here: clones share the
    /// instance's memory budget (`rocksdb.memory.bytes`).
    rocksdb: state_stores::RocksDbConfig,
    stop: AtomicBool,
    lifecycle: Arc<Lifecycle>,
    /// The tasks each stream thread runs.
    tasks: Mutex<BTreeMap<usize, Vec<crate::task_engine::TaskId>>>,
    /// Each stream thread's consumer lag at its last check.
    lag: Mutex<BTreeMap<usize, u64>>,
    /// Task → the input offsets its stores' last commit went with. Outlives
    /// tasks and threads (the stores stay on disk): stores found ahead of
    /// the group's committed offsets hold work whose transaction did not
    /// commit after all, and are wiped.
    store_positions: Mutex<HashMap<crate::task_engine::TaskId, HashMap<String, i64>>>,
    /// Figures for the metrics endpoint beyond `counters`.
    metrics: http::RuntimeMetrics,
    /// The stores of every task running here, restored, for interactive
    /// queries: a task is listed once its stores are up to date and unlisted
    /// before they close.
    local_stores: Mutex<BTreeMap<crate::task_engine::TaskId, Vec<(String, crate::store::StoreEntry)>>>,
}

impl Env {
    /// Where partitions of `topic` (as on the cluster) start without a
    /// committed offset.
    fn offset_reset(&self, topic: &str) -> crate::topology::OffsetReset {
        self.offset_resets.get(topic).copied().unwrap_or(self.config.auto_offset_reset)
    }

    fn set_thread_lag(&self, index: usize, lag: u64) {
        guard(&self.lag).insert(index, lag);
    }

    fn set_thread_tasks(&self, index: usize, tasks: Vec<crate::task_engine::TaskId>) {
        guard(&self.tasks).insert(index, tasks);
        self.membership.tasks_changed();
    }

    fn set_thread_status(&self, index: usize, status: ThreadStatus) {
        self.lifecycle.set_thread(index, status);
    }

    /// The counters, with lag and standby figures.
    fn metrics_snapshot(&self) -> Metrics {
        let mut m = self.counters.snapshot(guard(&self.lag).values().sum());
        let standbys = self.standbys.lags();
        m.standby_tasks = standbys.len() as u64;
        m.standby_lag = standbys.values().sum();
        m
    }

    /// The metered figures of the active tasks' stores, by task and store.
    fn store_metrics(&self) -> Vec<crate::store::StoreMetrics> {
        let mut all: Vec<crate::store::StoreMetrics> = guard(&self.local_stores)
            .iter()
            .flat_map(|(task, stores)| stores.iter().map(move |(_, entry)| entry.operation_metrics(*task)))
            .collect();
        all.sort_by(|a, b| (a.task, &a.store).cmp(&(b.task, &b.store)));
        all
    }

    /// `statestore.cache.max.bytes` is for the instance; each thread gets its share.
    fn cache_per_thread(&self) -> u64 {
        self.config.cache_max_bytes / self.config.num_stream_threads.max(1) as u64
    }
}

/// A Kafka Streams application instance: runs a [`Topology`] on a cluster.
///
/// Start several instances (processes) with the same `application.id` to
/// scale out: the group protocol spreads partitions, and their state, over them.
/// Each instance needs its own `state.dir`.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    config: StreamsConfig,
    lifecycle: Arc<Lifecycle>,
    restore_listener: Mutex<Option<Arc<dyn StateRestoreListener>>>,
    rocksdb_setter: Mutex<Option<state_stores::RocksDbConfigSetter>>,
    embedded: Option<Arc<EmbeddedCluster>>,
    env: Mutex<Option<Arc<Env>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The state directory's lock, held from `start` to `close`.
    lock: Mutex<Option<std::fs::File>>,
    /// The HTTP server of `http.listen`, from `start` to `close`.
    http: Mutex<Option<http::HttpServer>>,
}

impl fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.config.application_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl KafkaStreams {
    /// Checks the topology and the config (including every pass-through
    /// librdkafka setting); nothing connects yet.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        topology.validate()?;
        config.validate()?;
        client::validate(&config)?;
        Ok(Self {
            topology: Arc::new(topology),
            config,
            lifecycle: Arc::new(Lifecycle::default()),
            restore_listener: Mutex::new(None),
            rocksdb_setter: Mutex::new(None),
            embedded: None,
            env: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            lock: Mutex::new(None),
            http: Mutex::new(None),
        })
    }

    /// Runs on `cluster` (created with [`EmbeddedCluster::start`]): internal
    /// topics are created through the mock's own call, and
    /// `bootstrap.servers` is set to the cluster's.
    pub fn with_embedded_cluster(mut self, cluster: Arc<EmbeddedCluster>) -> Self {
        self.config.bootstrap_servers = cluster.bootstrap_servers().to_owned();
        self.embedded = Some(cluster);
        self
    }

    /// Called with `(new, old)` on every state change.
    pub fn set_state_listener(&self, listener: impl Fn(State, State) + Send + Sync + 'static) {
        *guard(&self.lifecycle.listener) = Some(Box::new(listener));
    }

    /// Decides what a failed stream thread leads to (default: shut the client down).
    pub fn set_uncaught_error_handler(&self, handler: impl Fn(&StreamsError) -> ErrorResponse + Send + Sync + 'static) {
        *guard(&self.lifecycle.handler) = Some(Box::new(handler));
    }

    /// Observes store restoration. Set before [`start`](Self::start).
    pub fn set_restore_listener(&self, listener: Arc<dyn StateRestoreListener>) {
        *guard(&self.restore_listener) = Some(listener);
    }

    /// Adjusts each RocksDB store's options before it opens, called with
    /// the store's name (Kafka Streams' `rocksdb.config.setter`): for what
    /// `rocksdb.memory.bytes` does not cover. With a setter there is no read
    /// cache (the quarter of `rocksdb.memory.bytes` it takes goes to RocksDB),
    /// since the options may make RocksDB return other than what was
    /// written. Set before [`start`](Self::start).
    pub fn set_rocksdb_config_setter(
        &self,
        setter: impl Fn(&str, &mut state_stores::rocksdb::Options) + Send + Sync + 'static,
    ) {
        *guard(&self.rocksdb_setter) = Some(Arc::new(setter));
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.lifecycle.state()
    }

    /// The error that stopped the instance, if it is in state `Error`
    /// (or on its way there).
    pub fn error(&self) -> Option<Arc<StreamsError>> {
        guard(&self.lifecycle.state).error.clone()
    }

    /// Counters summed over the instance's threads.
    pub fn metrics(&self) -> Metrics {
        guard(&self.env).as_ref().map(|e| e.metrics_snapshot()).unwrap_or_default()
    }

    /// What the metered layer of each store of this instance's active tasks
    /// counted (and, at `metrics.recording.level=DEBUG`, timed), by task,
    /// then store name. Counts start at 0 when a task is (re)assigned here.
    pub fn store_metrics(&self) -> Vec<crate::store::StoreMetrics> {
        guard(&self.env).as_ref().map(|e| e.store_metrics()).unwrap_or_default()
    }

    /// The standby copies held here, with each one's lag (changelog records
    /// not read yet).
    pub fn standby_tasks(&self) -> BTreeMap<crate::task_engine::TaskId, u64> {
        guard(&self.env).as_ref().map(|e| e.standbys.lags()).unwrap_or_default()
    }

    /// A read-only view of state store `name` over this instance's tasks
    /// (interactive queries), as Kafka Streams' `KafkaStreams#store`:
    ///
    /// ```no_run
    /// # use streams_core::prelude::*;
    /// # use streams_core::{QueryableStoreTypes, StoreQueryParameters};
    /// # fn f(streams: &KafkaStreams) -> Result<(), StreamsError> {
    /// let counts = streams.store(StoreQueryParameters::from_name_and_type(
    ///     "word-counts-store",
    ///     QueryableStoreTypes::key_value::<String, i64>(),
    /// ))?;
    /// println!("{:?}", counts.get(&"kafka".to_owned())?);
    /// # Ok(()) }
    /// ```
    ///
    /// Only while the client is RUNNING or REBALANCING (else
    /// [`StreamsError::InvalidStateStore`]: retry); keys of partitions other
    /// instances own, or still restoring here, are not here.
    pub fn store<T: crate::store::QueryableStoreType>(
        &self,
        params: crate::store::StoreQueryParameters<T>,
    ) -> Result<T::Store, StreamsError> {
        let (name, store_type, stale) = params.into_parts();
        if !self.topology.stores.iter().any(|s| s.name() == name) {
            return Err(StreamsError::UnknownStore(name));
        }
        // As Kafka Streams: queries go on during a rebalance; the tasks
        // restoring (or moving) then are simply not among the local ones.
        let state = self.state();
        if !matches!(state, State::Running | State::Rebalancing) {
            return Err(StreamsError::InvalidStateStore {
                store: name,
                reason: format!("the client is {state}; retry once it is RUNNING"),
            });
        }
        let stores = match guard(&self.env).as_ref() {
            Some(env) => {
                let mut partitions = Vec::new();
                let mut entries: Vec<crate::store::StoreEntry> = guard(&env.local_stores)
                    .iter()
                    .flat_map(|(task, stores)| stores.iter().map(move |s| (task.partition, s)))
                    .filter(|(_, (n, _))| *n == name)
                    .map(|(p, (_, e))| {
                        partitions.push(p);
                        e.clone()
                    })
                    .collect();
                let count = metadata::store_subtopology(env, &name).ok().flatten().map(|(_, count)| count);
                if stale {
                    entries.extend(env.standbys.entries(&name, None));
                }
                let local = crate::store::LocalStores::new(name, entries);
                match count {
                    Some(count) if !stale => local.with_partitions(partitions, count),
                    _ => local,
                }
            }
            None => crate::store::LocalStores::new(name, Vec::new()),
        };
        store_type.create(stores)
    }

    /// Every instance of the application known to run tasks, with this
    /// one (Kafka Streams' `metadataForAllClients`). Needs
    /// `application.server` (or `http.listen`, its default) on every
    /// instance; empty before `start`.
    pub fn metadata_for_all_clients(&self) -> Vec<StreamsMetadata> {
        guard(&self.env).as_ref().map(|env| metadata::all_clients(env)).unwrap_or_default()
    }

    /// The instances running tasks that hold store `store`.
    pub fn streams_metadata_for_store(&self, store: &str) -> Result<Vec<StreamsMetadata>, StreamsError> {
        if !self.topology.stores.iter().any(|s| s.name() == store) {
            return Err(StreamsError::UnknownStore(store.to_owned()));
        }
        Ok(self.metadata_for_all_clients().into_iter().filter(|m| m.state_store_names.contains(store)).collect())
    }

    /// The instance that holds `key` of store `store`, the key serialized
    /// with `key_serde` and partitioned as the store's input topics are
    /// (Kafka's murmur2 partitioner). `Ok(None)` while no instance is known
    /// to hold it (a rebalance in progress, or no `application.server`):
    /// retry.
    ///
    /// ```no_run
    /// # use streams_core::prelude::*;
    /// # fn f(streams: &KafkaStreams) -> Result<(), StreamsError> {
    /// if let Some(m) = streams.query_metadata_for_key("word-counts-store", &"kafka".to_owned(), &StringSerde)? {
    ///     println!("ask http://{}/stores/word-counts-store/keys/kafka", m.active_host);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn query_metadata_for_key<K: 'static>(
        &self,
        store: &str,
        key: &K,
        key_serde: &dyn crate::serde::Serde<Target = K>,
    ) -> Result<Option<KeyQueryMetadata>, StreamsError> {
        match guard(&self.env).as_ref() {
            Some(env) => metadata::for_key(env, store, key, key_serde),
            None => Ok(None),
        }
    }

    /// Where the built-in HTTP server listens (`http.listen`), once started.
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        guard(&self.http).as_ref().map(http::HttpServer::address)
    }

    /// The tasks this instance runs now, over all its threads, sorted.
    pub fn local_tasks(&self) -> Vec<crate::task_engine::TaskId> {
        let mut tasks: Vec<_> = guard(&self.env)
            .as_ref()
            .map(|e| guard(&e.tasks).values().flatten().copied().collect())
            .unwrap_or_default();
        tasks.sort();
        tasks
    }

    /// Waits until the instance is in `state`, or the timeout passes; says which.
    pub fn wait_for_state(&self, state: State, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = guard(&self.lifecycle.state);
        while inner.state != state {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self.lifecycle.changed.wait_timeout(inner, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// Deletes this application's local state (`state.dir/application.id`).
    /// Only allowed before `start` or after `close`.
    pub fn clean_up(&self) -> Result<(), StreamsError> {
        if self.state().is_running_or_rebalancing() {
            return Err(StreamsError::IllegalState("clean_up is only allowed before start or after close".into()));
        }
        let dir = self.config.state_dir.join(&self.config.application_id);
        // Another process running on this directory holds its lock.
        let _lock = match guard(&self.lock).take() {
            Some(held) => held,
            None => match lock_state_dir(&dir) {
                Ok(lock) => lock,
                Err(StreamsError::StateDir { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(())
                }
                Err(e) => return Err(e),
            },
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StreamsError::StateDir { path: dir, source }),
        };
        for entry in entries {
            let entry = entry.map_err(|source| StreamsError::StateDir { path: dir.clone(), source })?;
            let path = entry.path();
            if entry.file_name() == LOCK_FILE {
                continue;
            }
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            removed.map_err(|source| StreamsError::StateDir { path, source })?;
        }
        Ok(())
    }

    /// Creates those of `topics` that do not exist yet (an application's
    /// own input and output topics, for demos); existing topics are left as
    /// they are. Works on real and embedded clusters.
    pub fn create_topics_if_missing(&self, topics: &[InternalTopicSpec]) -> Result<(), StreamsError> {
        topics::TopicAdmin::new(&self.config, self.embedded.clone())?.ensure(topics, false)
    }

    /// Creates internal topics, checks co-partitioning, bootstraps global
    /// stores, then starts the stream threads. Returns once the threads run;
    /// watch [`state`](Self::state) for `Running`.
    pub fn start(&self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::IllegalState(format!("start() called in state {}", self.state())));
        }
        let locked = lock_state_dir(&self.config.state_dir.join(&self.config.application_id));
        match locked.and_then(|lock| {
            *guard(&self.lock) = Some(lock);
            // Bound first: a taken port fails here, before any thread starts.
            let bound = match &self.config.http_listen {
                Some(listen) => Some(http::bind(listen, &self.config.application_id)?),
                None => None,
            };
            let endpoint = self.endpoint(bound.as_ref());
            Ok((self.prepare(endpoint)?, bound))
        }) {
            Ok((env, bound)) => {
                if let Some(bound) = bound {
                    *guard(&self.http) = Some(bound.serve(Arc::clone(&env)));
                }
                self.lifecycle.transition(State::Rebalancing);
                let mut threads = guard(&self.threads);
                threads.push(control::spawn_watcher(Arc::clone(&env))?);
                threads.extend(membership::spawn(Arc::clone(&env))?);
                threads.extend(standby::spawn(Arc::clone(&env))?);
                for index in 0..self.config.num_stream_threads {
                    threads.push(spawn_stream_thread(Arc::clone(&env), index)?);
                }
                Ok(())
            }
            Err(e) => {
                // The caller has the error; `error()` reports what stops a running instance.
                *guard(&self.lock) = None;
                self.lifecycle.transition(State::PendingError);
                self.lifecycle.transition(State::Error);
                Err(e)
            }
        }
    }

    /// This instance's endpoint: `application.server`, else the HTTP
    /// server's address (a wildcard host replaced by the machine's name).
    fn endpoint(&self, http: Option<&http::Bound>) -> Option<String> {
        if let Some(server) = &self.config.application_server {
            return Some(server.clone());
        }
        let address = http?.address();
        let host = if address.ip().is_unspecified() {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned())
        } else {
            address.ip().to_string()
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        Some(format!("{host}:{}", address.port()))
    }

    fn prepare(&self, endpoint: Option<String>) -> Result<Arc<Env>, StreamsError> {
        let app = &self.config.application_id;
        let admin = topics::TopicAdmin::new(&self.config, self.embedded.clone())?;
        let existing = admin.partition_counts()?;
        let (sub_partitions, specs) = plan_internal_topics(&self.topology, app, &existing)?;
        admin.ensure(&specs, true)?;
        admin.ensure(&[control::topic_spec(app)], false)?;
        if endpoint.is_some() {
            admin.ensure(&[membership::topic_spec(app)], false)?;
        }
        let dead_letter: Vec<&str> = [&self.config.deserialization_handling, &self.config.processing_handling]
            .into_iter()
            .filter_map(|h| match h {
                crate::config::ErrorHandling::DeadLetter(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        if let Some(topic) = dead_letter.first() {
            let sources = self.topology.source_topics();
            let partitions = sources.iter().filter_map(|t| existing.get(t)).copied().max().unwrap_or(1).max(1);
            let spec = InternalTopicSpec { name: (*topic).to_owned(), partitions, config: Default::default() };
            admin.ensure(&[spec], false)?;
        }
        let process_id = process_id(&self.config.state_dir.join(app))?;
        let subtopologies: Vec<Subtopology> = self.topology.subtopologies().into_iter().filter(|s| !s.global).collect();
        let mut topic_sub = foldhash::HashMap::default();
        let mut sub_topics: HashMap<u32, Vec<String>> = HashMap::new();
        let mut offset_resets = HashMap::new();
        for sub in &subtopologies {
            for t in &sub.source_topics {
                let resolved = self.topology.resolve_topic(app, t);
                let reset = if self.topology.internal_topics().any(|i| i.name == *t) {
                    crate::topology::OffsetReset::Earliest
                } else {
                    self.topology.offset_reset(t).unwrap_or(self.config.auto_offset_reset)
                };
                offset_resets.insert(resolved.clone(), reset);
                topic_sub.insert(resolved.clone(), sub.id);
                sub_topics.entry(sub.id).or_default().push(resolved);
            }
        }
        let source_topics: Vec<String> = topic_sub.keys().cloned().collect();
        let mut rocksdb = state_stores::RocksDbConfig::new();
        let setter = guard(&self.rocksdb_setter).clone();
        if let Ok(budget @ 1..) = usize::try_from(self.config.rocksdb_memory_bytes) {
            // The read cache serves what was written; a setter may make
            // RocksDB return something else (a compaction filter, a merge
            // operator), so with one the whole budget goes to RocksDB.
            let read_cache = if setter.is_some() { 0 } else { budget / 4 };
            let rest = budget - read_cache;
            rocksdb = rocksdb.with_memory_budget(rest, rest / 2).with_read_cache(read_cache);
        }
        if let Some(setter) = setter {
            rocksdb = rocksdb.with_config_setter(move |store, options| setter(store, options));
        }
        let global = global::bootstrap(&self.topology, &self.config, &rocksdb)?;
        let (global_task, global_stores) = match global {
            Some((task, stores)) => (Some(task), stores),
            None => (None, HashMap::new()),
        };
        let env = Arc::new(Env {
            topology: Arc::clone(&self.topology),
            config: self.config.clone(),
            process_id,
            subtopologies,
            topic_sub,
            sub_topics,
            offset_resets,
            sub_partitions,
            membership: membership::Membership::new(endpoint),
            standbys: standby::Standbys::default(),
            source_topics,
            global_stores,
            counters: Counters::default(),
            restore_listener: guard(&self.restore_listener).clone(),
            rocksdb,
            stop: AtomicBool::new(false),
            lifecycle: Arc::clone(&self.lifecycle),
            tasks: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(BTreeMap::new()),
            store_positions: Mutex::new(HashMap::new()),
            metrics: http::RuntimeMetrics::default(),
            local_stores: Mutex::new(BTreeMap::new()),
        });
        *guard(&self.env) = Some(Arc::clone(&env));
        if let Some(task) = global_task {
            let env2 = Arc::clone(&env);
            let handle = std::thread::Builder::new()
                .name(format!("{app}-GlobalStreamThread"))
                .spawn(move || {
                    if let Err(e) = task.run(&env2) {
                        tracing::error!(error = %e, "global thread failed");
                        fail_client(&env2, Arc::new(e));
                    }
                })
                .map_err(|e| StreamsError::IllegalState(format!("cannot start the global thread: {e}")))?;
            guard(&self.threads).push(handle);
        }
        Ok(env)
    }

    /// Stops the threads (each commits and closes its tasks) and waits for them.
    pub fn close(&self) {
        self.close_timeout(Duration::from_secs(u64::from(u32::MAX)));
    }

    /// As [`close`](Self::close), waiting at most `timeout`; says whether
    /// every thread stopped in time.
    pub fn close_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let errored = matches!(self.state(), State::PendingError | State::Error);
        if !errored {
            self.lifecycle.transition(State::PendingShutdown);
        }
        if let Some(env) = guard(&self.env).as_ref() {
            env.stop.store(true, Ordering::Release);
        }
        let handles: Vec<JoinHandle<()>> = std::mem::take(&mut *guard(&self.threads));
        let mut all = true;
        for handle in handles {
            // Threads notice `stop` within one poll interval; join waits on that.
            while !handle.is_finished() {
                if Instant::now() >= deadline {
                    all = false;
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        if all {
            *guard(&self.lock) = None;
        }
        if errored {
            self.lifecycle.transition(State::Error);
        } else {
            self.lifecycle.transition(State::NotRunning);
        }
        // Last: probes see the final state until the server goes.
        guard(&self.http).take();
        all
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !guard(&self.threads).is_empty() {
            self.close_timeout(Duration::from_secs(60));
        }
    }
}

/// Moves the client to `PendingError` and asks every thread to stop.
fn fail_client(env: &Env, error: Arc<StreamsError>) {
    guard(&env.lifecycle.state).error.get_or_insert(error);
    env.lifecycle.transition(State::PendingError);
    env.stop.store(true, Ordering::Release);
}

/// The name of the lock file in `state.dir/application.id`.
const LOCK_FILE: &str = ".lock";

/// Takes the state directory's lock: an OS file lock, so that it is
/// released when the process ends, however it ends.
fn lock_state_dir(app_dir: &Path) -> Result<std::fs::File, StreamsError> {
    let io = |source: std::io::Error| StreamsError::StateDir { path: app_dir.to_path_buf(), source };
    std::fs::create_dir_all(app_dir).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(app_dir.join(LOCK_FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StreamsError::StateDirLocked { path: app_dir.to_path_buf() }),
        Err(std::fs::TryLockError::Error(source)) => Err(io(source)),
    }
}

fn spawn_stream_thread(env: Arc<Env>, index: usize) -> Result<JoinHandle<()>, StreamsError> {
    let name = format!("{}-StreamThread-{}", env.config.application_id, index + 1);
    env.set_thread_status(index, ThreadStatus::Rebalancing);
    std::thread::Builder::new()
        .name(name)
        .spawn(move || loop {
            // A panic that escapes the task boundary (a bug of ours) must not
            // end the thread unseen: it becomes an error for the handler.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| thread::run(Arc::clone(&env), index)))
                .unwrap_or_else(|p| {
                    Err(StreamsError::IllegalState(format!(
                        "stream thread {} panicked: {}",
                        index + 1,
                        crate::error::panic_message(&*p)
                    )))
                });
            match result {
                Ok(()) => break,
                Err(e)
                    if matches!(e.kafka_class(), Some(ErrorClass::Fenced | ErrorClass::Fatal))
                        && !env.stop.load(Ordering::Acquire) =>
                {
                    // Another instance owns our tasks now, or the producer is
                    // broken: the tasks were closed without committing; rejoin
                    // with a fresh consumer and producer (a new epoch).
                    tracing::warn!(thread = index, error = %e, "closed the tasks without committing; rejoining the group with new clients");
                    Counters::add(&env.counters.rejoins, 1);
                    env.set_thread_status(index, ThreadStatus::Rebalancing);
                }
                Err(e) => {
                    tracing::error!(thread = index, error = %e, "stream thread failed");
                    let response =
                        guard(&env.lifecycle.handler).as_ref().map_or(ErrorResponse::ShutdownClient, |h| h(&e));
                    if response == ErrorResponse::ReplaceThread && !env.stop.load(Ordering::Acquire) {
                        tracing::warn!(thread = index, "replacing the failed thread");
                        Counters::add(&env.counters.replaced_threads, 1);
                        env.set_thread_status(index, ThreadStatus::Rebalancing);
                        continue;
                    }
                    let error = Arc::new(e);
                    if response == ErrorResponse::ShutdownApplication {
                        control::request_shutdown(&env, &error);
                    }
                    env.set_thread_status(index, ThreadStatus::Dead);
                    fail_client(&env, error);
                    break;
                }
            }
        })
        .map_err(|e| StreamsError::IllegalState(format!("cannot start a stream thread: {e}")))
}

/// This instance's id, kept in the state directory so that a restarted
/// instance reuses its transactional ids and fences its own zombie at once.
fn process_id(app_dir: &Path) -> Result<String, StreamsError> {
    let file = app_dir.join("rivulet-process-id");
    let io = |source: std::io::Error| StreamsError::StateDir { path: file.clone(), source };
    match std::fs::read_to_string(&file) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(app_dir).map_err(io)?;
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&file, &id).map_err(io)?;
    Ok(id)
}
