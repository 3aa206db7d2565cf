//! Planning the topics an application owns, before it processes anything:
//! how many partitions each sub-topology has, which repartition and changelog
//! topics it needs (with their configs), and whether joined topics are
//! co-partitioned.

use std::collections::{BTreeMap, HashMap};

use crate::store::StoreKind;
use crate::topology::{NodeKind, SinkDescription, Topology};

/// A topic the application creates (or validates) at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopicSpec {
    /// The name on the cluster (`<application.id>-…`).
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Topic configs (`cleanup.policy`, `retention.ms`).
    pub config: BTreeMap<String, String>,
}

/// Why the topics cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicPlanError {
    /// A source topic is not on the cluster.
    #[error("source topic `{0}` does not exist; create it before starting the application")]
    MissingSourceTopic(String),
    /// Topics read together by a join or shared store have different partition counts.
    #[error(
        "topics {} are joined (sub-topology {subtopology}) but are not co-partitioned: their partition counts differ ({}); \
         give them the same number of partitions, or repartition one side",
        .topics.join(", "), .counts.iter().map(i32::to_string).collect::<Vec<_>>().join(" vs ")
    )]
    NotCopartitioned {
        /// The sub-topology.
        subtopology: u32,
        /// The topics.
        topics: Vec<String>,
        /// Their partition counts, in the same order.
        counts: Vec<i32>,
    },
    /// Repartition topics feed each other in a cycle with no fixed count.
    #[error("cannot work out the partition count of internal topic `{0}`")]
    Unresolvable(String),
}

/// Extra time windowed changelogs keep beyond the store's retention (Kafka
/// Streams' `windowstore.changelog.additional.retention.ms`, one day).
const ADDITIONAL_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// The partition count of every non-global sub-topology, and the internal
/// topics with theirs. `existing` gives the partition counts of the user's
/// source topics on the cluster.
pub fn plan_internal_topics(
    topology: &Topology,
    application_id: &str,
    existing: &HashMap<String, i32>,
) -> Result<(BTreeMap<u32, i32>, Vec<InternalTopicSpec>), TopicPlanError> {
    let subs: Vec<_> = topology.subtopologies().into_iter().filter(|s| !s.global).collect();
    let internal: HashMap<String, Option<i32>> =
        topology.internal_topics().map(|t| (t.name.clone(), t.partitions)).collect();
    // Which sub-topology writes each internal topic.
    let mut writer: HashMap<String, u32> = HashMap::new();
    for sub in &subs {
        for &n in &sub.nodes {
            if let NodeKind::Sink { description: SinkDescription::Topic(t), .. } = &topology.nodes[n].kind {
                if internal.contains_key(t) {
                    writer.insert(t.clone(), sub.id);
                }
            }
        }
    }
    let mut counts: BTreeMap<u32, i32> = BTreeMap::new();
    let mut topic_counts: HashMap<String, i32> =
        internal.iter().filter_map(|(t, p)| p.map(|p| (t.clone(), p))).collect();
    // Resolve in rounds: a sub-topology's count is the largest of its inputs';
    // an unfixed repartition topic takes the count of the sub-topology writing it.
    for _ in 0..=subs.len() {
        let mut progressed = false;
        for sub in &subs {
            if counts.contains_key(&sub.id) {
                continue;
            }
            let mut max = None;
            let mut unresolved = false;
            for topic in &sub.source_topics {
                let n = if internal.contains_key(topic) {
                    topic_counts.get(topic).copied()
                } else {
                    Some(*existing.get(topic).ok_or_else(|| TopicPlanError::MissingSourceTopic(topic.clone()))?)
                };
                match n {
                    Some(n) => max = Some(max.map_or(n, |m: i32| m.max(n))),
                    None => unresolved = true,
                }
            }
            if !unresolved {
                counts.insert(sub.id, max.unwrap_or(1));
                progressed = true;
            }
        }
        for (topic, w) in &writer {
            if !topic_counts.contains_key(topic) {
                if let Some(&n) = counts.get(w) {
                    topic_counts.insert(topic.clone(), n);
                    progressed = true;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    if let Some((topic, _)) = internal.iter().find(|(t, _)| !topic_counts.contains_key(*t)) {
        return Err(TopicPlanError::Unresolvable(topic.clone()));
    }

    // Co-partitioning: a sub-topology that reads several topics into shared
    // state (joins, cogroups) needs equal partition counts.
    for sub in &subs {
        if sub.source_topics.len() < 2 || sub.stores.is_empty() {
            continue;
        }
        let topics: Vec<String> = sub.source_topics.iter().cloned().collect();
        let topic_partitions: Vec<i32> =
            topics.iter().map(|t| topic_counts.get(t).or_else(|| existing.get(t)).copied().unwrap_or(0)).collect();
        if topic_partitions.windows(2).any(|w| w[0] != w[1]) {
            return Err(TopicPlanError::NotCopartitioned { subtopology: sub.id, topics, counts: topic_partitions });
        }
    }

    let mut specs: Vec<InternalTopicSpec> = topic_counts
        .iter()
        .map(|(t, &n)| InternalTopicSpec {
            name: topology.resolve_topic(application_id, t),
            partitions: n,
            config: BTreeMap::from([("cleanup.policy".to_owned(), "delete".to_owned())]),
        })
        .collect();
    let global: Vec<&str> = topology.global_stores().collect();
    for sub in &subs {
        let n = counts.get(&sub.id).copied().unwrap_or(1);
        for store in topology
            .stores
            .iter()
            .filter(|s| sub.stores.contains(s.name()) && s.logging_enabled() && !global.contains(&s.name()))
        {
            let mut config = BTreeMap::new();
            match store.supplier().kind() {
                StoreKind::KeyValue => {
                    config.insert("cleanup.policy".to_owned(), "compact".to_owned());
                }
                StoreKind::Window { retention, .. } | StoreKind::Session { retention } => {
                    config.insert("cleanup.policy".to_owned(), "compact,delete".to_owned());
                    config.insert(
                        "retention.ms".to_owned(),
                        retention.retention_ms.saturating_add(ADDITIONAL_RETENTION_MS).to_string(),
                    );
                }
            }
            specs.push(InternalTopicSpec {
                name: format!("{application_id}-{}-changelog", store.name()),
                partitions: n,
                config,
            });
        }
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((counts, specs))
}
