//! Cogroups (Kafka Streams' `CogroupedKStream`): several grouped streams,
//! each with its own aggregator, folded into one table and one store.

use std::fmt;
use std::sync::Arc;

use super::aggregate::{fold_step, AggProc, Init, NullInputs, Results, StreamFold};
use super::KGroupedStream;
use crate::builder::{Data, SerdeRef, Shared};
use crate::ktable::{table_store, Change, KTable};
use crate::options::Materialized;
use crate::processors::PassProc;

/// Adds one input's aggregating processor for a cogroup (given the store,
/// the initializer and whether to cache); returns the processor's name.
type CogroupInput<VA> = Box<dyn FnOnce(&str, Init<VA>, bool) -> Option<String>>;

/// Several grouped streams aggregated into one table (Kafka Streams'
/// `CogroupedKStream`): each input has its own aggregator, all share one store.
pub struct CogroupedKStream<K, VA> {
    shared: Shared,
    key_serde: Option<SerdeRef<K>>,
    inputs: Vec<CogroupInput<VA>>,
}

impl<K, VA> fmt::Debug for CogroupedKStream<K, VA> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CogroupedKStream").field("inputs", &self.inputs.len()).finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Starts a cogroup with this stream and its aggregator.
    pub fn cogroup<VA: Data>(
        &self,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> CogroupedKStream<K, VA> {
        let cogrouped = CogroupedKStream {
            shared: self.shared().clone(),
            key_serde: self.grouped.key.clone().or_else(|| self.stream.key_serde.clone()),
            inputs: Vec::new(),
        };
        cogrouped.cogroup(self, aggregator)
    }
}

impl<K: Data, VA: Data> CogroupedKStream<K, VA> {
    /// Adds another grouped stream with its aggregator.
    pub fn cogroup<V: Data>(
        mut self,
        grouped: &KGroupedStream<K, V>,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
    ) -> Self {
        let grouped = grouped.duplicate();
        let shared = self.shared.clone();
        self.inputs.push(Box::new(move |store: &str, init: Init<VA>, caching: bool| {
            let input = grouped.input(&format!("{store}-{}", shared.name("COGROUP")));
            let name = shared.name("KSTREAM-COGROUP-AGGREGATE");
            let step = fold_step(move || init(), aggregator);
            let (nulls, results) = (NullInputs::of(&input), Results::new(store, caching, input.key_serde.clone()));
            AggProc::add(&shared, &name, &input.node, StreamFold { step }, Some(nulls), results);
            Some(name)
        }));
        self
    }

    /// Aggregates every input into one table starting from `initializer()`.
    pub fn aggregate(
        self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        let shared = self.shared.clone();
        let store = materialized.name.clone().unwrap_or_else(|| shared.name("COGROUPKSTREAM-AGGREGATE-STATE-STORE"));
        let init: Init<VA> = Arc::new(initializer);
        let caching = materialized.caching;
        let processors: Vec<String> =
            self.inputs.into_iter().filter_map(|add| add(&store, Arc::clone(&init), caching)).collect();
        let merge = shared.name("COGROUPKSTREAM-MERGE");
        let parents: Vec<&str> = processors.iter().map(String::as_str).collect();
        shared.add(|t| t.add_processor(&merge, PassProc::<K, Change<VA>>::new, &parents).map(|_| ()));
        let value_serde = materialized.value.clone();
        let m = Materialized { name: Some(store), ..materialized };
        let key_serde = m.key.clone().or(self.key_serde);
        let store = processors.first().and_then(|first| {
            let name =
                table_store(&shared, &m, key_serde.clone(), value_serde.clone(), first, "COGROUPKSTREAM-AGGREGATE")?;
            for p in &processors[1..] {
                let (p, n) = (p.clone(), name.clone());
                shared.add(|t| t.connect_processor_and_state_stores(&p, &[&n]).map(|_| ()));
            }
            Some(name)
        });
        KTable::new(shared, merge, store, key_serde, value_serde)
    }
}
