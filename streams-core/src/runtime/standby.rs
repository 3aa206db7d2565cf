//! Standby replicas (`num.standby.replicas`): warm copies of other
//! instances' stateful tasks, so that a task that moves here after a crash
//! restores only what its copy had not read yet.
//!
//! librdkafka's assignors cannot place standby tasks, so placement is
//! computed by every instance alike from the endpoints map (see
//! `membership`): for a task whose active owner is known, its standbys are
//! `num.standby.replicas` of the other instances, picked by the task's
//! partition so that copies spread evenly; never the owner. It is
//! recomputed whenever the map changes (every rebalance).
//!
//! A standby task opens the task's persistent, logged stores in the task's
//! own directory (where an active task would) and reads their changelogs
//! (read_committed) on one standby thread per instance, applying records in
//! bulk with their checkpoint, as a restore does, without end. It never
//! processes input and never writes to Kafka. When the group gives the task
//! to this instance, the stream thread takes the stores over
//! ([`Standbys::activate`] closes the copy first) and its restore starts
//! from the copy's checkpoint. In-memory stores have no standby (there is
//! nothing to hand over); they restore in full.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::client::{self, kafka_error};
use super::{guard, Env};
use crate::error::StreamsError;
use crate::store::{StoreContext, StoreEntry};
use crate::task_engine::TaskId;

/// For each task, the instances that should hold a standby copy of it:
/// `replicas` of the members other than its owner, chosen by partition.
pub(crate) fn placement(
    owners: &BTreeMap<TaskId, String>,
    stateful: &BTreeSet<u32>,
    replicas: usize,
) -> BTreeMap<TaskId, Vec<String>> {
    let members: BTreeSet<&String> = owners.values().collect();
    owners
        .iter()
        .filter(|(task, _)| stateful.contains(&task.subtopology))
        .map(|(task, owner)| {
            let others: Vec<&String> = members.iter().copied().filter(|m| *m != owner).collect();
            let n = replicas.min(others.len());
            let first = usize::try_from(task.partition).unwrap_or(0);
            let holders = (0..n).map(|k| others[(first + k) % others.len()].clone()).collect();
            (*task, holders)
        })
        .collect()
}

/// One standby task: its stores and their changelog topics.
struct StandbyTask {
    stores: Vec<(StoreEntry, String)>,
}

impl StandbyTask {
    fn close(self, id: TaskId) {
        for (store, _) in &self.stores {
            if let Err(e) = store.close() {
                tracing::warn!(task = %id, store = store.name(), error = %e, "closing a standby store failed");
            }
        }
    }
}

/// The standby tasks of an instance, and the tasks its stream threads run
/// (which never get a standby here).
#[derive(Default)]
pub(crate) struct Standbys {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tasks: BTreeMap<TaskId, StandbyTask>,
    active: BTreeSet<TaskId>,
    /// Per standby task: changelog records not read yet, at the last look.
    lag: BTreeMap<TaskId, u64>,
}

impl std::fmt::Debug for Standbys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = guard(&self.inner);
        f.debug_struct("Standbys").field("tasks", &inner.tasks.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Standbys {
    /// A stream thread is about to open task `id`: its standby copy, if any,
    /// is closed (the active task takes the stores over) and no copy is
    /// opened while it runs here.
    pub(crate) fn activate(&self, id: TaskId) {
        let mut inner = guard(&self.inner);
        inner.active.insert(id);
        inner.lag.remove(&id);
        if let Some(task) = inner.tasks.remove(&id) {
            tracing::info!(task = %id, "promoting the standby copy: the active task continues from its checkpoint");
            task.close(id);
        }
    }

    /// A stream thread closed task `id`.
    pub(crate) fn deactivate(&self, id: TaskId) {
        guard(&self.inner).active.remove(&id);
    }

    /// The copies of store `store` held here (of one task, or of all).
    pub(crate) fn entries(&self, store: &str, task: Option<TaskId>) -> Vec<StoreEntry> {
        guard(&self.inner)
            .tasks
            .iter()
            .filter(|(id, _)| task.is_none_or(|t| t == **id))
            .flat_map(|(_, t)| t.stores.iter().filter(|(s, _)| s.name() == store).map(|(s, _)| s.clone()))
            .collect()
    }

    /// Runs `read` over the copy of `store` of task `task` while it cannot
    /// be handed over, with the copy's lag; `None` without such a copy, or
    /// before its lag was first measured (a copy just opened may not have
    /// read anything: it must not pass for a caught-up one).
    pub(crate) fn read_copy<R>(
        &self,
        store: &str,
        task: TaskId,
        read: impl FnOnce(Vec<StoreEntry>) -> R,
    ) -> Option<(R, u64)> {
        let inner = guard(&self.inner);
        let copy = inner.tasks.get(&task)?;
        let lag = inner.lag.get(&task).copied()?;
        let entries: Vec<StoreEntry> =
            copy.stores.iter().filter(|(s, _)| s.name() == store).map(|(s, _)| s.clone()).collect();
        if entries.is_empty() {
            return None;
        }
        Some((read(entries), lag))
    }

    /// The standby tasks held here and each one's lag (changelog records
    /// not read yet); a copy counts once its lag was first measured.
    pub(crate) fn lags(&self) -> BTreeMap<TaskId, u64> {
        let inner = guard(&self.inner);
        inner.tasks.keys().filter_map(|t| Some((*t, inner.lag.get(t).copied()?))).collect()
    }
}

/// Starts the standby thread when `num.standby.replicas` > 0 and the
/// instance has an endpoint (placement needs the endpoints map).
pub(crate) fn spawn(env: Arc<Env>) -> Result<Option<JoinHandle<()>>, StreamsError> {
    if env.config.num_standby_replicas == 0 {
        return Ok(None);
    }
    let Some(endpoint) = env.membership.endpoint.clone() else {
        tracing::warn!("num.standby.replicas needs application.server (or http.listen): no standby tasks here");
        return Ok(None);
    };
    let app = &env.config.application_id;
    let consumer: BaseConsumer = client::restore_consumer(&env.config, &format!("{app}-standby"))
        .create()
        .map_err(|e| kafka_error("creating the standby consumer", &e))?;
    let handle = std::thread::Builder::new()
        .name(format!("{app}-StandbyThread"))
        .spawn(move || {
            let stateful = stateful_subtopologies(&env);
            let mut thread = StandbyThread { env, endpoint, consumer, stateful, assigned: BTreeSet::new() };
            thread.run();
        })
        .map_err(|e| StreamsError::IllegalState(format!("cannot start the standby thread: {e}")))?;
    Ok(Some(handle))
}

/// The sub-topologies with persistent, logged stores: those that get standbys.
fn stateful_subtopologies(env: &Env) -> BTreeSet<u32> {
    let topology = &env.topology;
    let global: Vec<&str> = topology.global_stores().collect();
    env.subtopologies
        .iter()
        .filter(|s| {
            s.stores.iter().any(|name| {
                topology.stores.iter().any(|b| {
                    b.name() == name
                        && b.logging_enabled()
                        && b.supplier().persistent()
                        && !global.contains(&name.as_str())
                })
            })
        })
        .map(|s| s.id)
        .collect()
}

struct StandbyThread {
    env: Arc<Env>,
    endpoint: String,
    consumer: BaseConsumer,
    /// `stateful_subtopologies`, fixed by the topology.
    stateful: BTreeSet<u32>,
    /// The standby tasks the consumer is assigned the changelogs of.
    assigned: BTreeSet<TaskId>,
}

/// How often the wanted standby set and the lags are looked at again.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// How often the lags are measured (a broker round trip per changelog).
const MEASURE_EVERY: Duration = Duration::from_secs(2);
/// Records applied per changelog partition in one bulk write.
const BATCH: usize = 10_000;

impl StandbyThread {
    fn run(&mut self) {
        let (mut reconciled, mut measured) = (None::<Instant>, None::<Instant>);
        while !self.env.stop.load(Ordering::Acquire) {
            if reconciled.is_none_or(|t| t.elapsed() >= RECONCILE_EVERY) {
                reconciled = Some(Instant::now());
                if self.reconcile() {
                    // New copies have no lag until measured: measure now.
                    measured = None;
                }
            }
            if measured.is_none_or(|t| t.elapsed() >= MEASURE_EVERY) {
                measured = Some(Instant::now());
                self.measure_lag();
            }
            if self.assigned.is_empty() {
                std::thread::park_timeout(Duration::from_millis(100));
                continue;
            }
            self.poll_and_apply();
        }
        let tasks = std::mem::take(&mut guard(&self.env.standbys.inner).tasks);
        for (id, task) in tasks {
            task.close(id);
        }
    }

    /// Opens the standby tasks placed here and closes those no longer
    /// placed here; reassigns the consumer when the set changed. True when
    /// it opened a copy.
    fn reconcile(&mut self) -> bool {
        let mut opened = false;
        let owners = self.env.membership.owners();
        let wanted: BTreeSet<TaskId> = placement(&owners, &self.stateful, self.env.config.num_standby_replicas)
            .into_iter()
            .filter(|(_, holders)| holders.contains(&self.endpoint))
            .map(|(task, _)| task)
            .collect();
        let standbys = Arc::clone(&self.env);
        let mut inner = guard(&standbys.standbys.inner);
        let gone: Vec<TaskId> = inner.tasks.keys().filter(|t| !wanted.contains(t)).copied().collect();
        for id in gone {
            if let Some(task) = inner.tasks.remove(&id) {
                tracing::info!(task = %id, "closing the standby copy: no longer placed here (moved, or about to run here as active)");
                task.close(id);
            }
            inner.lag.remove(&id);
        }
        for id in wanted {
            if inner.tasks.contains_key(&id) || inner.active.contains(&id) {
                continue;
            }
            match self.open(id) {
                Ok(task) => {
                    tracing::info!(task = %id, "holding a standby copy");
                    inner.tasks.insert(id, task);
                    opened = true;
                }
                // The task's directory may still be locked by an active
                // task closing here; the next round tries again.
                Err(e) => tracing::debug!(task = %id, error = %e, "cannot open a standby copy yet"),
            }
        }
        let now: BTreeSet<TaskId> = inner.tasks.keys().copied().collect();
        if now != self.assigned {
            let mut tpl = TopicPartitionList::new();
            for (id, task) in &inner.tasks {
                for (store, topic) in &task.stores {
                    let from = store
                        .checkpoint()
                        .and_then(|c| i64::try_from(c).ok())
                        .map_or(Offset::Beginning, Offset::Offset);
                    if let Err(e) = tpl.add_partition_offset(topic, id.partition, from) {
                        tracing::warn!(task = %id, error = %e, "cannot list a standby changelog");
                    }
                }
            }
            match self.consumer.assign(&tpl) {
                Ok(()) => self.assigned = now,
                Err(e) => tracing::warn!(error = %e, "cannot assign the standby changelogs; retrying"),
            }
        }
        opened
    }

    fn open(&self, id: TaskId) -> Result<StandbyTask, StreamsError> {
        let env = &self.env;
        let sub = env
            .subtopologies
            .iter()
            .find(|s| s.id == id.subtopology)
            .ok_or_else(|| StreamsError::IllegalState(format!("standby task {id} of unknown sub-topology")))?;
        let context = StoreContext {
            task_dir: env.config.task_dir(id),
            rocksdb: env.rocksdb.clone(),
            cache_max_bytes: 0,
            timed_operations: env.config.metrics_recording_level.times_store_operations(),
        };
        let app = &env.config.application_id;
        let mut stores = Vec::new();
        for builder in &env.topology.stores {
            if !sub.stores.contains(builder.name()) || !builder.logging_enabled() || !builder.supplier().persistent() {
                continue;
            }
            let topic = format!("{app}-{}-changelog", builder.name());
            match builder.build(&context, topic.clone()) {
                Ok(entry) => stores.push((entry, topic)),
                Err(e) => {
                    for (s, _) in &stores {
                        let _ = s.close();
                    }
                    return Err(e);
                }
            }
        }
        Ok(StandbyTask { stores })
    }

    /// Reads what the changelogs have and applies it, partition by partition.
    fn poll_and_apply(&mut self) {
        let mut batches: HashMap<(String, i32), (Vec<state_stores::ChangelogRecord>, i64)> = HashMap::new();
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_millis(100);
        while n < BATCH {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left) {
                Some(Ok(m)) => {
                    let entry = batches.entry((m.topic().to_owned(), m.partition())).or_insert_with(|| (Vec::new(), 0));
                    entry.0.push((m.key().map(<[u8]>::to_vec).unwrap_or_default(), m.payload().map(<[u8]>::to_vec)));
                    entry.1 = m.offset() + 1;
                    n += 1;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "reading standby changelogs");
                    break;
                }
                None => break,
            }
            if left.is_zero() {
                break;
            }
        }
        if batches.is_empty() {
            return;
        }
        let inner = guard(&self.env.standbys.inner);
        for ((topic, partition), (records, next)) in batches {
            let Some((id, store)) = inner.tasks.iter().find_map(|(id, task)| {
                (id.partition == partition)
                    .then(|| task.stores.iter().find(|(_, t)| *t == topic).map(|(s, _)| (*id, s)))
                    .flatten()
            }) else {
                // Read for a copy closed since: dropped, the next holder reads it again.
                continue;
            };
            let count = records.len() as u64;
            let offset = u64::try_from(next).unwrap_or(0);
            match store.restore_batch(&mut records.into_iter(), offset) {
                Ok(()) => super::listener::Counters::add(&self.env.counters.standby_applied, count),
                Err(e) => {
                    tracing::warn!(task = %id, store = store.name(), error = %e, "applying to a standby copy failed")
                }
            }
        }
    }

    /// Each standby task's lag: changelog records between its checkpoints
    /// and the changelogs' ends.
    fn measure_lag(&self) {
        /// Each standby task's changelogs and where its copy stands in them.
        type Positions = Vec<(TaskId, Vec<(String, Option<u64>)>)>;
        let tasks: Positions = {
            let inner = guard(&self.env.standbys.inner);
            inner
                .tasks
                .iter()
                .map(|(id, t)| (*id, t.stores.iter().map(|(s, topic)| (topic.clone(), s.checkpoint())).collect()))
                .collect()
        };
        for (id, stores) in tasks {
            let mut lag = 0u64;
            for (topic, checkpoint) in stores {
                match self.consumer.fetch_watermarks(&topic, id.partition, Duration::from_secs(1)) {
                    Ok((low, high)) => {
                        let at = checkpoint.and_then(|c| i64::try_from(c).ok()).unwrap_or(low).max(low);
                        lag = lag.saturating_add(u64::try_from(high - at).unwrap_or(0));
                    }
                    Err(e) => tracing::debug!(task = %id, error = %e, "cannot read a changelog's end"),
                }
            }
            let mut inner = guard(&self.env.standbys.inner);
            if inner.tasks.contains_key(&id) {
                inner.lag.insert(id, lag);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(subtopology: u32, partition: i32) -> TaskId {
        TaskId { subtopology, partition }
    }

    #[test]
    fn standbys_go_to_other_instances_spread_by_partition() {
        let owners: BTreeMap<TaskId, String> =
            (0..6).flat_map(|p| [(t(0, p), format!("h{}:1", p % 3)), (t(1, p), format!("h{}:1", p % 3))]).collect();
        let stateful = BTreeSet::from([1]);
        let placed = placement(&owners, &stateful, 1);
        assert!(placed.keys().all(|task| task.subtopology == 1), "stateless tasks get no standby");
        let mut per_holder: BTreeMap<&str, usize> = BTreeMap::new();
        for (task, holders) in &placed {
            assert_eq!(holders.len(), 1);
            assert_ne!(Some(&holders[0]), owners.get(task), "never on the owner");
            *per_holder.entry(holders[0].as_str()).or_default() += 1;
        }
        assert_eq!(per_holder.values().copied().collect::<Vec<_>>(), vec![2, 2, 2], "{per_holder:?}");
        let two = placement(&owners, &stateful, 5);
        assert!(two.values().all(|h| h.len() == 2), "at most the other instances");
    }

    #[test]
    fn one_instance_holds_no_standby() {
        let owners = BTreeMap::from([(t(0, 0), "a:1".to_owned()), (t(0, 1), "a:1".to_owned())]);
        assert!(placement(&owners, &BTreeSet::from([0]), 1).values().all(Vec::is_empty));
    }
}
