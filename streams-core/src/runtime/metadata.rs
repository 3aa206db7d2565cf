//! Where each task, store and key lives across the application's instances
//! (Kafka Streams' `StreamsMetadata`, `KeyQueryMetadata`), from the claims
//! of the endpoints topic (see `membership`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::Env;
use crate::error::StreamsError;
use crate::record::Headers;
use crate::serde::Serde;
use crate::task_engine::TaskId;

/// An instance's `application.server`: where its HTTP server (or the
/// application's own RPC layer) answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostInfo {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl HostInfo {
    /// Reads `host:port` (the host may be a bracketed IPv6 address).
    pub fn parse(endpoint: &str) -> Option<Self> {
        let (host, port) = endpoint.rsplit_once(':')?;
        let port = port.parse().ok()?;
        (!host.is_empty()).then(|| Self { host: host.to_owned(), port })
    }
}

impl fmt::Display for HostInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One instance of the application: its endpoint, and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsMetadata {
    /// The instance's `application.server`.
    pub host_info: HostInfo,
    /// The stores of the tasks it runs.
    pub state_store_names: BTreeSet<String>,
    /// The tasks it runs.
    pub tasks: BTreeSet<TaskId>,
    /// The input partitions of those tasks.
    pub topic_partitions: BTreeSet<(String, i32)>,
}

/// Where one key of one store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyQueryMetadata {
    /// The instance running the key's task.
    pub active_host: HostInfo,
    /// Instances holding a standby copy (none: no standby replicas yet).
    pub standby_hosts: Vec<HostInfo>,
    /// The key's partition (of the task's input topics).
    pub partition: i32,
}

/// The store `store`'s sub-topology and its partition count; `None` for a
/// global store (every instance holds all of it).
pub(crate) fn store_subtopology(env: &Env, store: &str) -> Result<Option<(u32, i32)>, StreamsError> {
    if !env.topology.stores.iter().any(|s| s.name() == store) {
        return Err(StreamsError::UnknownStore(store.to_owned()));
    }
    if env.global_stores.contains_key(store) {
        return Ok(None);
    }
    let sub = env
        .subtopologies
        .iter()
        .find(|s| s.stores.contains(store))
        .ok_or_else(|| StreamsError::UnknownStore(store.to_owned()))?;
    Ok(Some((sub.id, env.sub_partitions.get(&sub.id).copied().unwrap_or(1).max(1))))
}

/// The task holding serialized key `key` of `store` (`None`: global).
pub(crate) fn task_for_key(env: &Env, store: &str, key: &[u8]) -> Result<Option<TaskId>, StreamsError> {
    Ok(store_subtopology(env, store)?.map(|(subtopology, partitions)| TaskId {
        subtopology,
        partition: crate::partitioner::partition_for_key(key, partitions).unwrap_or(0),
    }))
}

/// Every instance known to run at least one task (and this one, with an
/// endpoint), sorted by endpoint.
pub(crate) fn all_clients(env: &Env) -> Vec<StreamsMetadata> {
    let mut by_endpoint: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
    if let Some(own) = &env.membership.endpoint {
        by_endpoint.entry(own.clone()).or_default();
    }
    for (task, endpoint) in env.membership.owners() {
        by_endpoint.entry(endpoint).or_default().insert(task);
    }
    by_endpoint
        .into_iter()
        .filter_map(|(endpoint, tasks)| {
            let host_info = HostInfo::parse(&endpoint)?;
            let mut state_store_names = BTreeSet::new();
            let mut topic_partitions = BTreeSet::new();
            for task in &tasks {
                if let Some(sub) = env.subtopologies.iter().find(|s| s.id == task.subtopology) {
                    state_store_names.extend(sub.stores.iter().cloned());
                }
                for topic in env.sub_topics.get(&task.subtopology).into_iter().flatten() {
                    topic_partitions.insert((topic.clone(), task.partition));
                }
            }
            Some(StreamsMetadata { host_info, state_store_names, tasks, topic_partitions })
        })
        .collect()
}

/// The owner of `task`: this instance when it runs it, else the newest claim.
pub(crate) fn owner_of(env: &Env, task: TaskId) -> Option<String> {
    if super::guard(&env.tasks).values().any(|tasks| tasks.contains(&task)) {
        return env.membership.endpoint.clone();
    }
    env.membership.owners().remove(&task)
}

/// See [`KafkaStreams::query_metadata_for_key`](super::KafkaStreams::query_metadata_for_key).
pub(crate) fn for_key<K: 'static>(
    env: &Env,
    store: &str,
    key: &K,
    key_serde: &dyn Serde<Target = K>,
) -> Result<Option<KeyQueryMetadata>, StreamsError> {
    let bytes = key_serde
        .serialize(&format!("{store}-changelog"), &mut Headers::new(), key)
        .map_err(|source| StreamsError::StoreQuery { store: store.to_owned(), source: source.into() })?
        .unwrap_or_default();
    let Some(task) = task_for_key(env, store, &bytes)? else {
        // A global store: every instance answers; this one will do.
        return Ok(env.membership.endpoint.as_deref().and_then(HostInfo::parse).map(|active_host| KeyQueryMetadata {
            active_host,
            standby_hosts: Vec::new(),
            partition: -1,
        }));
    };
    Ok(owner_of(env, task).as_deref().and_then(HostInfo::parse).map(|active_host| KeyQueryMetadata {
        active_host,
        standby_hosts: Vec::new(),
        partition: task.partition,
    }))
}

#[cfg(test)]
mod tests {
    use super::HostInfo;

    #[test]
    fn host_info_reads_host_and_port() {
        assert_eq!(HostInfo::parse("node-1:8080"), Some(HostInfo { host: "node-1".into(), port: 8080 }));
        assert_eq!(HostInfo::parse("[::1]:80").map(|h| h.to_string()).as_deref(), Some("[::1]:80"));
        assert_eq!(HostInfo::parse("nohost"), None);
        assert_eq!(HostInfo::parse(":80"), None);
    }
}
