//! Grouped streams and tables, and their aggregations: count, reduce and
//! aggregate per key, per time window, sliding window and session, cogroups
//! of several streams, and table re-aggregation with adder and subtractor.
//!
//! This file is the grouped stream's DSL surface; each kind of aggregation
//! it leads to has a module of its own:
//! - `aggregate`: what every aggregation shares: steps, store builders, and
//!   the aggregating processor (null check, store, record cache) around the
//!   `Fold` each kind brings, with the per-key fold;
//! - `time_windowed`: [`TimeWindowedKStream`] (tumbling and hopping windows);
//! - `session`: [`SessionWindowedKStream`];
//! - `cogroup`: [`CogroupedKStream`];
//! - `table`: [`KGroupedTable`], with adder and subtractor.
//!
//! Sliding windows live in `crate::sliding`; when a window closes is decided
//! in `crate::window_close`.

mod aggregate;
mod cogroup;
mod session;
mod table;
mod time_windowed;

use std::fmt;

pub(crate) use aggregate::{window_result_store, AggregationNodes, Init};
pub use cogroup::CogroupedKStream;
pub use session::SessionWindowedKStream;
pub use table::KGroupedTable;
pub use time_windowed::TimeWindowedKStream;

use crate::builder::{Data, Shared};
use crate::kstream::KStream;
use crate::ktable::{table_store, KTable};
use crate::options::{Grouped, Materialized};
use crate::sliding::SlidingWindowedKStream;
use crate::windows::{SessionWindows, SlidingWindows, TimeWindows};
use aggregate::{count_serde, count_step, fold_step, reduce_step, AggProc, NullInputs, Results, Step, StreamFold};

/// A stream grouped by key, ready to aggregate (Kafka Streams' `KGroupedStream`).
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    grouped: Grouped<K, V>,
}

impl<K, V> fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KGroupedStream").field("stream", &self.stream).finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// `stream` grouped by its key, with `grouped`'s serdes and name.
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        Self { stream, grouped }
    }

    /// The same grouping, for another operator to own.
    fn duplicate(&self) -> Self {
        let g = &self.grouped;
        let grouped = Grouped { key: g.key.clone(), value: g.value.clone(), name: g.name.clone() };
        Self { stream: self.stream.clone(), grouped }
    }

    /// The builder state.
    pub(crate) fn shared(&self) -> &Shared {
        &self.stream.shared
    }

    /// The input, repartitioned if needed, named after `store`.
    pub(crate) fn input(&self, store: &str) -> KStream<K, V> {
        let base = self.grouped.name.clone().unwrap_or_else(|| store.to_owned());
        self.stream.repartitioned_for(
            &base,
            self.grouped.key.clone(),
            self.grouped.value.clone(),
            "Grouped::with(key_serde, value_serde)",
        )
    }

    /// Names an aggregation's nodes in the order Kafka Streams numbers them:
    /// its store (unless `materialized` names it), the repartition topic if
    /// a key-changing operator ran upstream, then its processor (`prefix`).
    pub(crate) fn aggregation<VA>(&self, materialized: &Materialized<K, VA>, prefix: &str) -> AggregationNodes<K, V> {
        let shared = self.shared().clone();
        let store = materialized.store_name(&shared, prefix);
        let input = self.input(&store);
        let name = shared.name(prefix);
        AggregationNodes { shared, store, input, name }
    }

    /// Counts records per key (records with a null key or value are dropped and counted).
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count) with store options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_step(count_step(), materialized.or_value_serde(count_serde()), "KSTREAM-AGGREGATE")
    }

    /// Combines the values of each key: `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let m = materialized.or_value_serde(self.stream.value_serde.clone());
        self.aggregate_step(reduce_step(reducer), m, "KSTREAM-REDUCE")
    }

    /// Folds the values of each key into an aggregate starting from `initializer()`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_step(fold_step(initializer, aggregator), materialized, "KSTREAM-AGGREGATE")
    }

    fn aggregate_step<VA: Data>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
        prefix: &str,
    ) -> KTable<K, VA> {
        let AggregationNodes { shared, store, input, name } = self.aggregation(&materialized, prefix);
        let results = Results::new(&store, materialized.caching, materialized.key.clone().or(input.key_serde.clone()));
        AggProc::add(&shared, &name, &input.node, StreamFold { step }, Some(NullInputs::of(&input)), results);
        let value_serde = materialized.value.clone();
        let m = Materialized { name: Some(store), ..materialized };
        let store = table_store(&shared, &m, input.key_serde.clone(), value_serde.clone(), &name, prefix);
        KTable::new(shared, name, store, m.key.or(input.key_serde), value_serde)
    }

    /// Aggregates per key and time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream { grouped: self.duplicate(), windows }
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream { grouped: self.duplicate(), windows }
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream { grouped: self.duplicate(), windows }
    }
}
