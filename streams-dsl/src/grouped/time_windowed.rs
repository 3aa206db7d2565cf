//! Aggregation over time windows, tumbling and hopping (Kafka Streams'
//! `TimeWindowedKStream` and `KStreamWindowAggregate`).

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;

use super::aggregate::{
    count_serde, count_step, fold_step, reduce_step, retention_at_least, window_result_store, AggProc,
    AggregationNodes, Fold, NullInputs, Results, Step,
};
use super::KGroupedStream;
use crate::builder::{Data, SerdeRef};
use crate::cache::Forwarder;
use crate::ktable::{Change, KTable};
use crate::options::Materialized;
use crate::serdes::WindowedSerde;
use crate::windows::{millis, TimeWindows};

/// A grouped stream over time windows (Kafka Streams' `TimeWindowedKStream`).
pub struct TimeWindowedKStream<K, V> {
    pub(super) grouped: KGroupedStream<K, V>,
    pub(super) windows: TimeWindows,
}

impl<K, V> fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimeWindowedKStream").field("windows", &self.windows).finish()
    }
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Counts records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count) with store options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate_step(count_step(), materialized.or_value_serde(count_serde()))
    }

    /// Combines the values of each key and window.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let m = materialized.or_value_serde(self.grouped.stream.value_serde.clone());
        self.aggregate_step(reduce_step(reducer), m)
    }

    /// Folds the values of each key and window into an aggregate.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_step(fold_step(initializer, aggregator), materialized)
    }

    fn aggregate_step<VA: Data>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let nodes = self.grouped.aggregation(&materialized, "KSTREAM-AGGREGATE");
        let windows = self.windows;
        let (ks, vs) = nodes.result_serdes(&materialized);
        let AggregationNodes { shared, store, input, name } = nodes;
        let key_serde =
            ks.clone().map(|s| Arc::new(WindowedSerde::time_ref(s, windows.size_ms)) as SerdeRef<Windowed<K>>);
        let results = Results::new(&store, materialized.caching, key_serde);
        AggProc::add(&shared, &name, &input.node, WindowFold { windows, step }, Some(NullInputs::of(&input)), results);
        let (Some(ks), Some(vs)) = (ks, vs) else { return KTable::unbuilt(shared, name) };
        let retention = retention_at_least(materialized.retention, windows.close().retention_ms(windows.size_ms));
        let size = millis(windows.size_ms);
        let builder = window_result_store(&materialized, &store, retention, size, Arc::clone(&ks), Arc::clone(&vs));
        shared.add(|t| t.add_state_store(builder, &[&name]).map(|_| ()));
        let key_serde: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::time_ref(ks, windows.size_ms));
        KTable::windowed(shared, name, store, key_serde, vs, windows.close())
    }
}

/// Folds each record into every window it falls in that is not closed yet.
struct WindowFold<K, V, VA> {
    windows: TimeWindows,
    step: Step<K, V, VA>,
}

impl<K, V, VA> Clone for WindowFold<K, V, VA> {
    fn clone(&self) -> Self {
        Self { windows: self.windows, step: Arc::clone(&self.step) }
    }
}

impl<K: Data, V: Data, VA: Data> Fold for WindowFold<K, V, VA> {
    type K = K;
    type V = V;
    type KOut = Windowed<K>;
    type VA = VA;
    type Store = WindowStoreHandle<K, VA>;

    fn fold(
        &self,
        r: Record<K, V>,
        store: &Self::Store,
        out: &mut Forwarder<Windowed<K>, VA>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let close = self.windows.close();
        let stream_time = ctx.current_stream_time_ms();
        let ts = r.timestamp();
        for window in self.windows.windows_for(ts) {
            if close.is_closed(window.end, stream_time) {
                ctx.record_dropped("record for an expired window");
                let close_time = close.close_time(stream_time);
                tracing::debug!(window.start, window.end, ts, close_time, "skipping record for an expired window");
                continue;
            }
            let old = store.fetch(r.key(), window.start)?;
            let new_ts = old.as_ref().map_or(ts, |(_, t)| ts.max(*t));
            let old = old.map(|(a, _)| a);
            let new = (self.step)(r.key(), r.value().clone(), old.clone());
            store.put(r.key(), &new, window.start, new_ts)?;
            let key = Windowed { key: r.key().clone(), window };
            out.send(ctx, key, Change { new: Some(new), old }, new_ts, r.headers().clone())?;
        }
        Ok(())
    }
}
