//! Table re-aggregation (Kafka Streams' `KGroupedTable` and
//! `KTableAggregate`): a table regrouped by a new key, where each update
//! takes the old value out of its old group (subtractor) and adds the new one
//! (adder).

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::serde::Nullable;

use super::aggregate::{update_by_key, AggProc, Fold, Init, Results};
use crate::builder::{Data, SerdeRef, Shared};
use crate::cache::Forwarder;
use crate::kstream::KStream;
use crate::ktable::{table_store, Change, KTable};
use crate::options::{Grouped, Materialized};
use crate::serdes::ChangeSerde;

/// A table grouped by a new key, for aggregations with adder and subtractor
/// (Kafka Streams' `KGroupedTable`).
pub struct KGroupedTable<K, V> {
    shared: Shared,
    /// The node forwarding (new key, change) pairs.
    node: String,
    grouped: Grouped<K, V>,
}

impl<K, V> fmt::Debug for KGroupedTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KGroupedTable").field("node", &self.node).finish()
    }
}

type Selector<K, V, K2, V2> = Arc<dyn Fn(&K, &V) -> (K2, V2) + Send + Sync>;

/// Adds a value to, or takes it out of, a group's aggregate.
type Adder<K, V, VA> = Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>;

impl<K2: Data + PartialEq, V2: Data> KGroupedTable<K2, V2> {
    /// `table` regrouped by `selector`'s new key and value.
    pub(crate) fn new<K: Data, V: Data>(
        table: &KTable<K, V>,
        selector: Selector<K, V, K2, V2>,
        grouped: Grouped<K2, V2>,
    ) -> Self {
        let shared = table.shared.clone();
        let name = shared.name("KTABLE-SELECT");
        let parent = table.node.clone();
        shared.add(|t| {
            t.add_processor(&name, move || TableSelectProc { selector: Arc::clone(&selector) }, &[&parent]).map(|_| ())
        });
        Self { shared, node: name, grouped }
    }

    /// Aggregates per new key: `adder` folds in a key's new value, `subtractor`
    /// takes out the value it had before (when it changed or moved group).
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        adder: impl Fn(&K2, &V2, VA) -> VA + Send + Sync + 'static,
        subtractor: impl Fn(&K2, &V2, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K2, VA>,
    ) -> KTable<K2, VA> {
        let shared = self.shared.clone();
        let prefix = "KTABLE-AGGREGATE";
        let store = materialized.store_name(&shared, prefix);
        let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        let hint = "Grouped::with(key_serde, value_serde)";
        let ks = self.grouped.key.clone().or_else(|| materialized.key.clone());
        let change_serde: Option<SerdeRef<Change<V2>>> =
            self.grouped.value.clone().map(|inner| Arc::new(ChangeSerde { inner }) as SerdeRef<Change<V2>>);
        let selected: KStream<K2, Change<V2>> =
            KStream::new(shared.clone(), self.node.clone(), ks.clone(), change_serde.clone(), true);
        let input = selected.through_repartition(&base, ks.clone(), change_serde, None, hint);
        let name = shared.name(prefix);
        let init: Init<VA> = Arc::new(initializer);
        let adder: Adder<K2, V2, VA> = Arc::new(adder);
        let subtractor: Adder<K2, V2, VA> = Arc::new(subtractor);
        let results = Results::new(&store, materialized.caching, ks.clone());
        AggProc::add(&shared, &name, &input.node, TableFold { init, adder, subtractor }, None, results);
        let value_serde = materialized.value.clone();
        let m = Materialized { name: Some(store), ..materialized };
        let store = table_store(&shared, &m, ks.clone(), value_serde.clone(), &name, prefix);
        KTable::new(shared, name, store, ks, value_serde)
    }

    /// Counts the entries per new key.
    pub fn count(&self) -> KTable<K2, i64> {
        self.aggregate(|| 0i64, |_, _, c| c + 1, |_, _, c| c - 1, Materialized::default().with_value_serde(I64Serde))
    }

    /// Combines values per new key with `adder`, taking old ones out with `subtractor`.
    pub fn reduce(
        &self,
        adder: impl Fn(V2, V2) -> V2 + Send + Sync + 'static,
        subtractor: impl Fn(V2, V2) -> V2 + Send + Sync + 'static,
        materialized: Materialized<K2, V2>,
    ) -> KTable<K2, Option<V2>> {
        let value = materialized.value.clone().or_else(|| self.grouped.value.clone());
        let m = materialized.with_value_type(value.map(|s| Arc::new(Nullable(s)) as SerdeRef<Option<V2>>));
        self.aggregate(
            || None,
            move |_, v, agg: Option<V2>| {
                Some(match agg {
                    Some(a) => adder(a, v.clone()),
                    None => v.clone(),
                })
            },
            move |_, v, agg: Option<V2>| agg.map(|a| subtractor(a, v.clone())),
            m,
        )
    }
}

/// Maps each table update to the groups it leaves and joins.
struct TableSelectProc<K, V, K2, V2> {
    selector: Selector<K, V, K2, V2>,
}

impl<K: Data, V: Data, K2: Data + PartialEq, V2: Data> Processor<K, Change<V>, K2, Change<V2>>
    for TableSelectProc<K, V, K2, V2>
{
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K2, Change<V2>>,
    ) -> Result<(), ProcessorError> {
        let (k, change, ts, headers) = r.into_parts();
        let new = change.new.as_ref().map(|v| (self.selector)(&k, v));
        let old = change.old.as_ref().map(|v| (self.selector)(&k, v));
        match (new, old) {
            // Same group: one record, so the aggregate updates once.
            (Some((nk, nv)), Some((ok, ov))) if nk == ok => {
                ctx.forward(Record::new(nk, Change { new: Some(nv), old: Some(ov) }, ts).with_headers(headers))
            }
            (new, old) => {
                if let Some((ok, ov)) = old {
                    ctx.forward(
                        Record::new(ok, Change { new: None, old: Some(ov) }, ts).with_headers(headers.clone()),
                    )?;
                }
                if let Some((nk, nv)) = new {
                    ctx.forward(Record::new(nk, Change { new: Some(nv), old: None }, ts).with_headers(headers))?;
                }
                Ok(())
            }
        }
    }
}

/// Subtracts a group's old value and adds its new one.
struct TableFold<K, V, VA> {
    init: Init<VA>,
    adder: Adder<K, V, VA>,
    subtractor: Adder<K, V, VA>,
}

impl<K, V, VA> Clone for TableFold<K, V, VA> {
    fn clone(&self) -> Self {
        let (adder, subtractor) = (Arc::clone(&self.adder), Arc::clone(&self.subtractor));
        Self { init: Arc::clone(&self.init), adder, subtractor }
    }
}

impl<K: Data, V: Data, VA: Data> Fold for TableFold<K, V, VA> {
    type K = K;
    type V = Change<V>;
    type KOut = K;
    type VA = VA;
    type Store = TimestampedKeyValueStoreHandle<K, VA>;

    fn fold(
        &self,
        r: Record<K, Change<V>>,
        store: &Self::Store,
        out: &mut Forwarder<K, VA>,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let (k, change, ts, headers) = r.into_parts();
        if change.new.is_none() && change.old.is_none() {
            return Ok(());
        }
        update_by_key(store, out, ctx, (k, ts, headers), |k, prev| {
            let mut agg = prev.unwrap_or_else(|| (self.init)());
            if let Some(old) = &change.old {
                agg = (self.subtractor)(k, old, agg);
            }
            if let Some(new) = &change.new {
                agg = (self.adder)(k, new, agg);
            }
            agg
        })
    }
}
