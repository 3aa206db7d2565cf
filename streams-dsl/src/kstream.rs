//! `KStream`: an unbounded stream of records, and its stateless operators.

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::topology::SinkSpec;

use crate::builder::{Data, SerdeRef, Shared};
use crate::grouped::KGroupedStream;
use crate::ktable::{KTable, ValueGetter};
use crate::options::{Grouped, Materialized, Produced, Repartitioned};
use crate::processors::{FilterProc, FlatMapProc, ForeachProc, MapProc, PassProc, StreamTableJoinProc};

/// A stream of records, as Kafka Streams' `KStream`.
///
/// Streams are cheap handles: each operator adds nodes to the builder's
/// topology and returns a new stream. A stream may feed several operators.
pub struct KStream<K, V> {
    pub(crate) shared: Shared,
    pub(crate) node: String,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    /// A key-changing operator ran upstream: stateful operators and joins
    /// must repartition first.
    pub(crate) repartition_required: bool,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            node: self.node.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            repartition_required: self.repartition_required,
        }
    }
}

impl<K, V> fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KStream")
            .field("node", &self.node)
            .field("repartition_required", &self.repartition_required)
            .finish()
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// The stream out of `node`.
    pub(crate) fn new(
        shared: Shared,
        node: String,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
        repartition_required: bool,
    ) -> Self {
        Self { shared, node, key_serde, value_serde, repartition_required }
    }

    /// The name of the node this stream comes out of.
    pub fn node_name(&self) -> &str {
        &self.node
    }

    fn derive<K2: Data, V2: Data, P>(
        &self,
        prefix: &str,
        processor: impl Fn() -> P + Send + Sync + 'static,
        key_serde: Option<SerdeRef<K2>>,
        value_serde: Option<SerdeRef<V2>>,
        repartition_required: bool,
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2>,
    {
        let name = self.shared.name(prefix);
        let parent = self.node.clone();
        self.shared.add(|t| t.add_processor(&name, processor, &[&parent]).map(|_| ()));
        KStream::new(self.shared.clone(), name, key_serde, value_serde, repartition_required)
    }

    /// As [`derive`](Self::derive) for an operator that keeps each record's
    /// key, and so the key serde and whether a repartition is due.
    fn derive_keyed<V2: Data, P>(
        &self,
        prefix: &str,
        processor: impl Fn() -> P + Send + Sync + 'static,
        value_serde: Option<SerdeRef<V2>>,
    ) -> KStream<K, V2>
    where
        P: Processor<K, V, K, V2>,
    {
        self.derive(prefix, processor, self.key_serde.clone(), value_serde, self.repartition_required)
    }

    /// Keeps records for which `predicate` holds.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_keeping(Arc::new(predicate), true)
    }

    /// Drops records for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_keeping(Arc::new(predicate), false)
    }

    /// Keeps records whose predicate result equals `keep_when`.
    fn filter_keeping(&self, p: Arc<dyn Fn(&K, &V) -> bool + Send + Sync>, keep_when: bool) -> Self {
        self.derive_keyed(
            "KSTREAM-FILTER",
            move || FilterProc { predicate: Arc::clone(&p), keep_when },
            self.value_serde.clone(),
        )
    }

    /// Replaces each record's key and value. The key changes, so a later
    /// stateful operator repartitions.
    pub fn map<K2: Data, V2: Data>(&self, f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static) -> KStream<K2, V2> {
        let f: Arc<dyn Fn(K, V) -> Vec<(K2, V2)> + Send + Sync> = Arc::new(move |k, v| vec![f(k, v)]);
        self.derive("KSTREAM-MAP", move || FlatMapProc { f: Arc::clone(&f) }, None, None, true)
    }

    /// Replaces each record's value; the key (and partitioning) stays.
    pub fn map_values<V2: Data>(&self, f: impl Fn(V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Replaces each record's value, seeing the key.
    pub fn map_values_with_key<V2: Data>(&self, f: impl Fn(&K, V) -> V2 + Send + Sync + 'static) -> KStream<K, V2> {
        let f: Arc<dyn Fn(&K, V) -> V2 + Send + Sync> = Arc::new(f);
        self.derive_keyed("KSTREAM-MAPVALUES", move || MapProc { f: Arc::clone(&f) }, None)
    }

    /// Turns each record into any number of records (with new keys).
    pub fn flat_map<K2: Data, V2: Data, I>(&self, f: impl Fn(K, V) -> I + Send + Sync + 'static) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f: Arc<dyn Fn(K, V) -> Vec<(K2, V2)> + Send + Sync> = Arc::new(move |k, v| f(k, v).into_iter().collect());
        self.derive("KSTREAM-FLATMAP", move || FlatMapProc { f: Arc::clone(&f) }, None, None, true)
    }

    /// Turns each value into any number of values with the same key.
    pub fn flat_map_values<V2: Data, I>(&self, f: impl Fn(V) -> I + Send + Sync + 'static) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let f: Arc<dyn Fn(K, V) -> Vec<(K, V2)> + Send + Sync> =
            Arc::new(move |k, v| f(v).into_iter().map(|v2| (k.clone(), v2)).collect());
        self.derive_keyed("KSTREAM-FLATMAPVALUES", move || FlatMapProc { f: Arc::clone(&f) }, None)
    }

    /// Sets a new key computed from key and value; the value stays.
    pub fn select_key<K2: Data>(&self, f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static) -> KStream<K2, V> {
        let f: Arc<dyn Fn(K, V) -> Vec<(K2, V)> + Send + Sync> = Arc::new(move |k, v| vec![(f(&k, &v), v)]);
        self.derive(
            "KSTREAM-KEY-SELECT",
            move || FlatMapProc { f: Arc::clone(&f) },
            None,
            self.value_serde.clone(),
            true,
        )
    }

    /// Calls `f` on each record and passes the record on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> Self {
        let f: Arc<dyn Fn(&K, &V) + Send + Sync> = Arc::new(f);
        self.derive_keyed(
            "KSTREAM-PEEK",
            move || ForeachProc { f: Arc::clone(&f), forward: true },
            self.value_serde.clone(),
        )
    }

    /// Calls `f` on each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f: Arc<dyn Fn(&K, &V) + Send + Sync> = Arc::new(f);
        let _: KStream<K, V> = self.derive(
            "KSTREAM-FOREACH",
            move || ForeachProc { f: Arc::clone(&f), forward: false },
            None,
            None,
            false,
        );
    }

    /// The records of both streams, interleaved as they are processed.
    pub fn merge(&self, other: &KStream<K, V>) -> Self {
        let name = self.shared.name("KSTREAM-MERGE");
        let (a, b) = (self.node.clone(), other.node.clone());
        self.shared.add(|t| t.add_processor(&name, PassProc::<K, V>::new, &[&a, &b]).map(|_| ()));
        let key_serde = self.key_serde.clone().or_else(|| other.key_serde.clone());
        let value_serde = self.value_serde.clone().or_else(|| other.value_serde.clone());
        KStream::new(
            self.shared.clone(),
            name,
            key_serde,
            value_serde,
            self.repartition_required || other.repartition_required,
        )
    }

    /// Splits the stream: each record goes to the first branch whose predicate
    /// holds, or to the default branch when none does (dropped if there is none).
    pub fn split(&self) -> BranchedKStream<K, V> {
        BranchedKStream { stream: self.clone(), branches: Vec::new() }
    }

    /// Writes the stream to `topic` with its own serdes.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to `topic` with the given serdes and partitioner.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let spec = SinkSpec::topic(topic);
        self.sink(spec, produced)
    }

    /// Writes each record to the topic `extractor` names for it.
    pub fn to_dynamic(
        &self,
        extractor: impl Fn(&K, &V, Option<&RecordMetadata>) -> String + Send + Sync + 'static,
        produced: Produced<K, V>,
    ) {
        self.sink(SinkSpec::extractor(extractor), produced)
    }

    fn sink(&self, mut spec: SinkSpec<K, V>, produced: Produced<K, V>) {
        let name = produced.name.clone().unwrap_or_else(|| self.shared.name("KSTREAM-SINK"));
        let hint = "Produced::with(key_serde, value_serde)";
        let ks =
            self.shared.need(&produced.key.or_else(|| self.key_serde.clone()), &format!("sink `{name}`"), "key", hint);
        let vs = self.shared.need(
            &produced.value.or_else(|| self.value_serde.clone()),
            &format!("sink `{name}`"),
            "value",
            hint,
        );
        if let Some(p) = produced.partitioner {
            spec = spec.with_partitioner(move |t, k, v, n| p(t, k, v, n));
        }
        let (Some(ks), Some(vs)) = (ks, vs) else { return };
        let parent = self.node.clone();
        self.shared.add(|t| t.add_sink_with(&name, spec, ks, vs, &[&parent]).map(|_| ()));
    }

    /// Writes the stream through an internal topic, so that records with equal
    /// keys land on the same partition (and task).
    pub fn repartition(&self, repartitioned: Repartitioned<K, V>) -> Self {
        let ks = repartitioned.key.or_else(|| self.key_serde.clone());
        let vs = repartitioned.value.or_else(|| self.value_serde.clone());
        let base = repartitioned.name.unwrap_or_else(|| self.shared.name("KSTREAM-REPARTITION"));
        self.through_repartition(&base, ks, vs, repartitioned.partitions, "Repartitioned::with(key_serde, value_serde)")
    }

    /// Adds the sink → internal topic → source hop; returns the stream read back.
    pub(crate) fn through_repartition(
        &self,
        base: &str,
        ks: Option<SerdeRef<K>>,
        vs: Option<SerdeRef<V>>,
        partitions: Option<i32>,
        hint: &'static str,
    ) -> Self {
        let topic = format!("{base}-repartition");
        let op = format!("repartition `{topic}`");
        let ks = self.shared.need(&ks, &op, "key", hint);
        let vs = self.shared.need(&vs, &op, "value", hint);
        let (Some(ks), Some(vs)) = (ks, vs) else { return self.clone() };
        let sink = format!("{base}-repartition-sink");
        let source = format!("{base}-repartition-source");
        let parent = self.node.clone();
        let (ks2, vs2) = (Arc::clone(&ks), Arc::clone(&vs));
        self.shared.add(|t| {
            t.add_internal_topic(&topic, partitions);
            t.add_sink(&sink, &topic, ks2, vs2, &[&parent])?;
            t.add_source(&source, &[&topic], Arc::clone(&ks), Arc::clone(&vs))?;
            Ok(())
        });
        KStream::new(self.shared.clone(), source, Some(ks), Some(vs), false)
    }

    /// This stream, repartitioned first if a key-changing operator ran
    /// upstream. `base` names the topic.
    pub(crate) fn repartitioned_for(
        &self,
        base: &str,
        ks: Option<SerdeRef<K>>,
        vs: Option<SerdeRef<V>>,
        hint: &'static str,
    ) -> Self {
        if self.repartition_required {
            self.through_repartition(
                base,
                ks.or_else(|| self.key_serde.clone()),
                vs.or_else(|| self.value_serde.clone()),
                None,
                hint,
            )
        } else {
            Self {
                key_serde: ks.or_else(|| self.key_serde.clone()),
                value_serde: vs.or_else(|| self.value_serde.clone()),
                ..self.clone()
            }
        }
    }

    /// Groups by the current key, for aggregations.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        self.group_by_key_with(Grouped::default())
    }

    /// Groups by the current key with serdes (and a name) for the repartition
    /// topic, if one is needed.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped)
    }

    /// Groups by a new key: a repartition follows.
    pub fn group_by<K2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(selector).group_by_key_with(grouped)
    }

    /// Runs a Processor API processor on each record (the escape hatch),
    /// connected to the named stores (added with [`StreamsBuilder::add_state_store`](crate::StreamsBuilder::add_state_store)).
    /// The processor may change keys, so later stateful operators repartition.
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2>,
    {
        connect_stores(self.derive("KSTREAM-PROCESSOR", supplier, None, None, true), stores)
    }

    /// As [`process`](Self::process) for processors that keep the key.
    pub fn process_values<V2: Data, P>(
        &self,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K, V2>
    where
        P: Processor<K, V, K, V2>,
    {
        connect_stores(self.derive_keyed("KSTREAM-PROCESSVALUES", supplier, None), stores)
    }

    /// A table of the latest value per key of this stream.
    pub fn to_table(&self, materialized: Materialized<K, V>) -> KTable<K, V> {
        let input = self.repartitioned_for(
            &self.shared.name("KSTREAM-TOTABLE"),
            materialized.key.clone(),
            materialized.value.clone(),
            "Materialized::with(key_serde, value_serde)",
        );
        let values: KStream<K, Option<V>> = input.map_values(Some);
        KTable::from_stream(&values, input.value_serde.clone(), materialized, "KSTREAM-TOTABLE")
    }

    /// Joins each record with the table's current value for its key; records
    /// without a table value are dropped (inner join). Records with a null key
    /// cannot match and are dropped and counted.
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        let joiner = Arc::new(joiner);
        self.table_join(table, move |v, t: Option<&VT>| t.map(|t| joiner(v, t)), false)
    }

    /// Joins each record with the table's current value for its key, or with
    /// `None` when it has none (left join).
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(table, move |v, t| Some(joiner(v, t)), true)
    }

    fn table_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync + 'static,
        left: bool,
    ) -> KStream<K, VR> {
        let input = self.repartitioned_for(
            &self.shared.name("KSTREAM-JOIN"),
            None,
            None,
            "Grouped via repartition(Repartitioned::with(..))",
        );
        let getter: ValueGetter<K, VT> = table.value_getter();
        let store = getter.store.clone();
        let joiner: Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync> = Arc::new(joiner);
        let out: KStream<K, VR> = input.derive(
            if left { "KSTREAM-LEFTJOIN" } else { "KSTREAM-JOIN" },
            move || StreamTableJoinProc::new(getter.clone(), Arc::clone(&joiner), left),
            input.key_serde.clone(),
            None,
            false,
        );
        let name = out.node.clone();
        self.shared.add(|t| t.connect_processor_and_state_stores(&name, &[&store]).map(|_| ()));
        out
    }
}

/// Gives `stream`'s processor access to the named `stores`.
fn connect_stores<K, V>(stream: KStream<K, V>, stores: &[&str]) -> KStream<K, V> {
    let name = stream.node.clone();
    stream.shared.add(|t| t.connect_processor_and_state_stores(&name, stores).map(|_| ()));
    stream
}

/// A stream being split into named branches (Kafka Streams' `BranchedKStream`).
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    branches: Vec<(String, Arc<dyn Fn(&K, &V) -> bool + Send + Sync>)>,
}

impl<K, V> fmt::Debug for BranchedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchedKStream")
            .field("branches", &self.branches.iter().map(|b| &b.0).collect::<Vec<_>>())
            .finish()
    }
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch named `name` for records where `predicate` holds (and no
    /// earlier branch's did).
    pub fn branch(
        mut self,
        name: impl Into<String>,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.branches.push((name.into(), Arc::new(predicate)));
        self
    }

    /// Finishes with a default branch for the remaining records; returns every
    /// branch by name.
    pub fn default_branch(mut self, name: impl Into<String>) -> std::collections::BTreeMap<String, KStream<K, V>> {
        self.branches.push((name.into(), Arc::new(|_, _| true)));
        self.no_default_branch()
    }

    /// Finishes without a default branch: records no branch takes are dropped.
    pub fn no_default_branch(self) -> std::collections::BTreeMap<String, KStream<K, V>> {
        let s = &self.stream;
        let router = s.shared.name("KSTREAM-BRANCH");
        let children: Vec<String> = self.branches.iter().map(|(n, _)| format!("{router}-{n}")).collect();
        let routes: Vec<(String, Arc<dyn Fn(&K, &V) -> bool + Send + Sync>)> =
            children.iter().cloned().zip(self.branches.iter().map(|(_, p)| Arc::clone(p))).collect();
        let parent = s.node.clone();
        let routes = Arc::new(routes);
        s.shared.add(|t| {
            t.add_processor(
                &router,
                move || crate::processors::BranchProc { routes: Arc::clone(&routes) },
                &[&parent],
            )?;
            for child in &children {
                t.add_processor(child, PassProc::<K, V>::new, &[&router])?;
            }
            Ok(())
        });
        self.branches
            .iter()
            .zip(children)
            .map(|((name, _), child)| {
                (
                    name.clone(),
                    KStream::new(
                        s.shared.clone(),
                        child,
                        s.key_serde.clone(),
                        s.value_serde.clone(),
                        s.repartition_required,
                    ),
                )
            })
            .collect()
    }
}
