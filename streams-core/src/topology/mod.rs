//! Building a processing graph: sources, processors, sinks and state stores.
//!
//! A [`Topology`] is a description; nothing runs until it is handed to a
//! runner (the [`TopologyTestDriver`](crate::test_driver::TopologyTestDriver),
//! or the Kafka runtime). Each task gets fresh processor and store instances
//! from the suppliers held here.

mod describe;
mod node;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

pub use describe::{NodeDescription, SubtopologyDescription, TopologyDescription};
pub(crate) use node::{DecodeError, NodeDef, NodeKind, PartitionCounts, SinkDescription, SinkEncoder, SourceDecoder};
pub use node::{RawRecord, SinkSpec};

use crate::erased::DataTypes;
use crate::error::TopologyError;
use crate::processor::{ErasedProcessor, Processor, ProcessorAdapter};
use crate::record::Record;
use crate::serde::Serde;
use crate::store::StoreBuilder;
use node::{TypedSink, TypedSource};

/// A graph of named nodes (sources, processors, sinks) and the state stores
/// connected to its processors.
///
/// ```
/// use streams_core::prelude::*;
///
/// let mut topology = Topology::new();
/// topology
///     .add_source("in", &["lines"], StringSerde, StringSerde)?
///     .add_sink("out", "copies", StringSerde, StringSerde, &["in"])?;
/// assert!(topology.describe().to_string().contains("Source: in (topics: [lines])"));
/// # Ok::<(), streams_core::TopologyError>(())
/// ```
#[derive(Default, Clone)]
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    by_name: HashMap<String, usize>,
    pub(crate) stores: Vec<StoreBuilder>,
    topic_to_source: HashMap<String, usize>,
    internal_topics: BTreeMap<String, InternalTopic>,
    global_stores: BTreeSet<String>,
    global_nodes: BTreeSet<usize>,
    offset_resets: BTreeMap<String, OffsetReset>,
    deserialization_handling: BTreeMap<String, crate::config::ErrorHandling>,
}

/// Where a source starts reading a partition that has no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// From the oldest record still in the topic.
    Earliest,
    /// From the next record produced.
    Latest,
}

/// A topic the application owns (a repartition topic), named without the
/// `application.id-` prefix that runners add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    /// The name without prefix.
    pub name: String,
    /// A fixed partition count, or `None` for "as many as the input".
    pub partitions: Option<i32>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("nodes", &self.nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>())
            .field("stores", &self.stores.iter().map(StoreBuilder::name).collect::<Vec<_>>())
            .finish()
    }
}

/// A connected part of a topology: the nodes and stores that one task runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subtopology {
    pub(crate) id: u32,
    /// Node indices, in the order they were added.
    pub(crate) nodes: Vec<usize>,
    pub(crate) stores: BTreeSet<String>,
    pub(crate) source_topics: BTreeSet<String>,
    /// Feeds a global store: read in full by every instance, no tasks.
    pub(crate) global: bool,
}

impl Topology {
    /// An empty topology.
    pub fn new() -> Self {
        Self::default()
    }

    fn check_new_name(&self, name: &str) -> Result<(), TopologyError> {
        if self.by_name.contains_key(name) {
            return Err(TopologyError::DuplicateNode(name.to_owned()));
        }
        Ok(())
    }

    /// Resolves parents and checks that each forwards the types `input`.
    fn resolve_parents(&self, node: &str, parents: &[&str], input: DataTypes) -> Result<Vec<usize>, TopologyError> {
        if parents.is_empty() {
            return Err(TopologyError::NoParents(node.to_owned()));
        }
        let mut resolved = Vec::with_capacity(parents.len());
        for parent in parents {
            let idx = *self
                .by_name
                .get(*parent)
                .ok_or_else(|| TopologyError::UnknownParent { node: node.to_owned(), parent: (*parent).to_owned() })?;
            let def = &self.nodes[idx];
            if def.is_sink() {
                return Err(TopologyError::ParentIsSink { node: node.to_owned(), parent: (*parent).to_owned() });
            }
            if let Some(out) = def.output {
                if !out.matches(&input) {
                    return Err(TopologyError::TypeMismatch {
                        parent: (*parent).to_owned(),
                        child: node.to_owned(),
                        expected: input.to_string(),
                        found: out.to_string(),
                    });
                }
            }
            if !resolved.contains(&idx) {
                resolved.push(idx);
            }
        }
        Ok(resolved)
    }

    fn push(&mut self, def: NodeDef) {
        let idx = self.nodes.len();
        for &p in &def.parents {
            self.nodes[p].children.push(idx);
        }
        self.by_name.insert(def.name.clone(), idx);
        self.nodes.push(def);
    }

    /// Adds a source reading `topics` with these serdes; record timestamps are
    /// the records' own.
    pub fn add_source<KS, VS>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: KS,
        value_serde: VS,
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: Clone + Send + 'static,
        VS::Target: Clone + Send + 'static,
    {
        self.add_source_inner(name, topics, key_serde, value_serde, None)
    }

    /// Adds a source whose record timestamps come from `extractor` (Kafka
    /// Streams' `TimestampExtractor`): it sees the deserialized record with the
    /// timestamp Kafka stored and returns the timestamp to use. A negative
    /// result stops processing with an error naming the record.
    pub fn add_source_with_timestamp_extractor<KS, VS>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: KS,
        value_serde: VS,
        extractor: impl Fn(&Record<KS::Target, VS::Target>) -> i64 + Send + Sync + 'static,
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: Clone + Send + 'static,
        VS::Target: Clone + Send + 'static,
    {
        self.add_source_inner(name, topics, key_serde, value_serde, Some(Arc::new(extractor)))
    }

    fn add_source_inner<KS, VS>(
        &mut self,
        name: &str,
        topics: &[&str],
        key_serde: KS,
        value_serde: VS,
        extractor: Option<node::TimestampExtractorFn<KS::Target, VS::Target>>,
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: Clone + Send + 'static,
        VS::Target: Clone + Send + 'static,
    {
        self.check_new_name(name)?;
        if topics.is_empty() {
            return Err(TopologyError::NoTopics(name.to_owned()));
        }
        for topic in topics {
            if let Some(&existing) = self.topic_to_source.get(*topic) {
                return Err(TopologyError::TopicAlreadySubscribed {
                    topic: (*topic).to_owned(),
                    existing: self.nodes[existing].name.clone(),
                });
            }
        }
        let decoder = TypedSource { key: Arc::new(key_serde), value: Arc::new(value_serde), extractor };
        let idx = self.nodes.len();
        for topic in topics {
            self.topic_to_source.insert((*topic).to_owned(), idx);
        }
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Source {
                topics: topics.iter().map(|t| (*t).to_owned()).collect(),
                decoder: Arc::new(decoder),
            },
            parents: Vec::new(),
            children: Vec::new(),
            stores: Vec::new(),
            output: Some(DataTypes::of::<KS::Target, VS::Target>()),
        });
        Ok(self)
    }

    /// Adds a processor fed by `parents`. `supplier` makes one processor per task.
    pub fn add_processor<P, KIn, VIn, KOut, VOut>(
        &mut self,
        name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError>
    where
        P: Processor<KIn, VIn, KOut, VOut>,
        KIn: 'static,
        VIn: 'static,
        KOut: Clone + Send + 'static,
        VOut: Clone + Send + 'static,
    {
        self.check_new_name(name)?;
        let input = DataTypes::of::<KIn, VIn>();
        let parents = self.resolve_parents(name, parents, input)?;
        let factory = Arc::new(move || {
            Box::new(ProcessorAdapter::<P, KIn, VIn, KOut, VOut>::new(supplier())) as Box<dyn ErasedProcessor>
        });
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Processor { factory },
            parents,
            children: Vec::new(),
            stores: Vec::new(),
            output: Some(DataTypes::of::<KOut, VOut>()),
        });
        Ok(self)
    }

    /// Adds a sink writing every record to `topic`.
    pub fn add_sink<KS, VS>(
        &mut self,
        name: &str,
        topic: &str,
        key_serde: KS,
        value_serde: VS,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: 'static,
        VS::Target: 'static,
    {
        self.add_sink_with(name, SinkSpec::topic(topic), key_serde, value_serde, parents)
    }

    /// Adds a sink with a per-record topic and/or a partitioner.
    pub fn add_sink_with<KS, VS>(
        &mut self,
        name: &str,
        spec: SinkSpec<KS::Target, VS::Target>,
        key_serde: KS,
        value_serde: VS,
        parents: &[&str],
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: 'static,
        VS::Target: 'static,
    {
        self.check_new_name(name)?;
        let input = DataTypes::of::<KS::Target, VS::Target>();
        let parents = self.resolve_parents(name, parents, input)?;
        let description = spec.describe_target();
        let encoder = TypedSink { spec, key: Arc::new(key_serde), value: Arc::new(value_serde) };
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Sink { description, encoder: Arc::new(encoder) },
            parents,
            children: Vec::new(),
            stores: Vec::new(),
            output: None,
        });
        Ok(self)
    }

    /// Adds a state store and connects it to the named processors (more can
    /// be connected later with [`connect_processor_and_state_stores`](Self::connect_processor_and_state_stores)).
    pub fn add_state_store(&mut self, builder: StoreBuilder, processors: &[&str]) -> Result<&mut Self, TopologyError> {
        if self.stores.iter().any(|s| s.name() == builder.name()) {
            return Err(TopologyError::DuplicateStore(builder.name().to_owned()));
        }
        let name = builder.name().to_owned();
        self.stores.push(builder);
        for p in processors {
            self.connect_processor_and_state_stores(p, &[&name])?;
        }
        Ok(self)
    }

    /// Adds a global store: `topic` is read in full by every instance into
    /// the store through `processor` (which should only write the store; it
    /// has no children). Any processor may then read the store (connect it
    /// with [`connect_processor_and_state_stores`](Self::connect_processor_and_state_stores))
    /// without co-partitioning.
    #[allow(clippy::too_many_arguments)] // mirrors Kafka Streams' addGlobalStore
    pub fn add_global_store<KS, VS, P>(
        &mut self,
        builder: StoreBuilder,
        source_name: &str,
        topic: &str,
        key_serde: KS,
        value_serde: VS,
        processor_name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
    ) -> Result<&mut Self, TopologyError>
    where
        KS: Serde,
        VS: Serde,
        KS::Target: Clone + Send + 'static,
        VS::Target: Clone + Send + 'static,
        P: Processor<KS::Target, VS::Target, KS::Target, VS::Target>,
    {
        let store = builder.name().to_owned();
        self.add_source(source_name, &[topic], key_serde, value_serde)?;
        self.add_processor(processor_name, supplier, &[source_name])?;
        self.add_state_store(builder, &[processor_name])?;
        self.global_stores.insert(store);
        self.global_nodes.insert(self.nodes.len() - 2);
        self.global_nodes.insert(self.nodes.len() - 1);
        Ok(self)
    }

    /// Sets where the sources of `topics` start without a committed offset
    /// (default: the application's `auto.offset.reset`).
    pub fn set_offset_reset(&mut self, topics: &[&str], reset: OffsetReset) -> &mut Self {
        for t in topics {
            self.offset_resets.insert((*t).to_owned(), reset);
        }
        self
    }

    /// Sets what happens to records of `topics` that cannot be deserialized
    /// (default: the application's `default.deserialization.exception.handler`).
    pub fn set_deserialization_handling(
        &mut self,
        topics: &[&str],
        handling: crate::config::ErrorHandling,
    ) -> &mut Self {
        for t in topics {
            self.deserialization_handling.insert((*t).to_owned(), handling.clone());
        }
        self
    }

    /// The deserialization handling set for `topic`, if any.
    pub fn deserialization_handling(&self, topic: &str) -> Option<&crate::config::ErrorHandling> {
        self.deserialization_handling.get(topic)
    }

    /// The offset reset policy set for `topic`, if any.
    pub fn offset_reset(&self, topic: &str) -> Option<OffsetReset> {
        self.offset_resets.get(topic).copied()
    }

    /// The names of the global stores.
    pub fn global_stores(&self) -> impl Iterator<Item = &str> {
        self.global_stores.iter().map(String::as_str)
    }

    /// Lets `processor` use the named stores.
    pub fn connect_processor_and_state_stores(
        &mut self,
        processor: &str,
        stores: &[&str],
    ) -> Result<&mut Self, TopologyError> {
        let idx = *self.by_name.get(processor).ok_or_else(|| TopologyError::UnknownProcessor(processor.to_owned()))?;
        if !matches!(self.nodes[idx].kind, NodeKind::Processor { .. }) {
            return Err(TopologyError::UnknownProcessor(processor.to_owned()));
        }
        for store in stores {
            if !self.stores.iter().any(|s| s.name() == *store) {
                return Err(TopologyError::UnknownStore {
                    processor: processor.to_owned(),
                    store: (*store).to_owned(),
                });
            }
            let node = &mut self.nodes[idx];
            if !node.stores.iter().any(|s| s == store) {
                node.stores.push((*store).to_owned());
            }
        }
        Ok(self)
    }

    /// Checks what can only be checked once the topology is complete: it has
    /// sources, and every store is used by some processor.
    pub fn validate(&self) -> Result<(), TopologyError> {
        if !self.nodes.iter().any(|n| matches!(n.kind, NodeKind::Source { .. })) {
            return Err(TopologyError::NoSources);
        }
        for store in &self.stores {
            if !self.nodes.iter().any(|n| n.stores.iter().any(|s| s == store.name())) {
                return Err(TopologyError::UnusedStore(store.name().to_owned()));
            }
        }
        Ok(())
    }

    /// Declares `name` an internal topic: sources and sinks that name it
    /// read and write `<application.id>-<name>` when the topology runs.
    pub fn add_internal_topic(&mut self, name: &str, partitions: Option<i32>) -> &mut Self {
        self.internal_topics.insert(name.to_owned(), InternalTopic { name: name.to_owned(), partitions });
        self
    }

    /// The internal topics, by unprefixed name.
    pub fn internal_topics(&self) -> impl Iterator<Item = &InternalTopic> {
        self.internal_topics.values()
    }

    /// The topic name as it is on the cluster: internal topics get the
    /// `application.id-` prefix.
    pub fn resolve_topic(&self, application_id: &str, name: &str) -> String {
        if self.internal_topics.contains_key(name) {
            format!("{application_id}-{name}")
        } else {
            name.to_owned()
        }
    }

    /// The topics read by the sources.
    pub fn source_topics(&self) -> BTreeSet<String> {
        self.topic_to_source.keys().cloned().collect()
    }

    /// Splits the graph into its connected parts: nodes joined by parent links
    /// or by a shared store belong together. Numbered in order of each part's
    /// first node.
    pub(crate) fn subtopologies(&self) -> Vec<Subtopology> {
        let mut uf = UnionFind::new(self.nodes.len());
        let mut store_owner: HashMap<&str, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for &p in &node.parents {
                uf.union(i, p);
            }
            for store in &node.stores {
                // Global stores are shared by every task: using one does not
                // tie sub-topologies together.
                if self.global_stores.contains(store) {
                    continue;
                }
                if let Some(&other) = store_owner.get(store.as_str()) {
                    uf.union(i, other);
                } else {
                    store_owner.insert(store, i);
                }
            }
        }
        let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut group_of_root: HashMap<usize, usize> = HashMap::new();
        for i in 0..self.nodes.len() {
            let root = uf.find(i);
            let g = *group_of_root.entry(root).or_insert_with(|| {
                groups.push((root, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(i);
        }
        groups
            .into_iter()
            .enumerate()
            .map(|(id, (_, nodes))| {
                let mut stores = BTreeSet::new();
                let mut source_topics = BTreeSet::new();
                for &n in &nodes {
                    stores.extend(self.nodes[n].stores.iter().cloned());
                    if let NodeKind::Source { topics, .. } = &self.nodes[n].kind {
                        source_topics.extend(topics.iter().cloned());
                    }
                }
                let global = nodes.iter().all(|n| self.global_nodes.contains(n));
                Subtopology { id: u32::try_from(id).unwrap_or(u32::MAX), nodes, stores, source_topics, global }
            })
            .collect()
    }

    /// A description of the topology's sub-topologies and nodes, printed as
    /// Kafka Streams prints its `TopologyDescription`.
    pub fn describe(&self) -> TopologyDescription {
        TopologyDescription::new(self)
    }
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect() }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // Keep the smaller index as root so that groups keep a stable order.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }
}
