//! Aggregation over session windows (Kafka Streams' `SessionWindowedKStream`
//! and `KStreamSessionWindowAggregate`): a record joins, and may merge, the
//! sessions of its key within the inactivity gap.

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;

use super::aggregate::{count_serde, retention_at_least, AggProc, AggregationNodes, Fold, Init, NullInputs, Results};
use super::KGroupedStream;
use crate::builder::{Data, SerdeRef};
use crate::cache::Forwarder;
use crate::ktable::{Change, KTable};
use crate::options::Materialized;
use crate::serdes::WindowedSerde;
use crate::windows::SessionWindows;

/// A grouped stream over session windows (Kafka Streams' `SessionWindowedKStream`).
pub struct SessionWindowedKStream<K, V> {
    pub(super) grouped: KGroupedStream<K, V>,
    pub(super) windows: SessionWindows,
}

impl<K, V> fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowedKStream").field("windows", &self.windows).finish()
    }
}

type Aggregator<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;
type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Counts records per key and session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count) with store options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        self.aggregate(|| 0, |_, _, c| c + 1, |_, a, b| a + b, materialized.or_value_serde(count_serde()))
    }

    /// Folds the values of each session; `merger` combines the aggregates of
    /// sessions that a record joins together.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        merger: impl Fn(&K, VA, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let nodes = self.grouped.aggregation(&materialized, "KSTREAM-AGGREGATE");
        let windows = self.windows;
        let (ks, vs) = nodes.result_serdes(&materialized);
        let AggregationNodes { shared, store, input, name } = nodes;
        let init: Init<VA> = Arc::new(initializer);
        let agg: Aggregator<K, V, VA> = Arc::new(aggregator);
        let merger: Merger<K, VA> = Arc::new(merger);
        let key_serde = ks.clone().map(|s| Arc::new(WindowedSerde::session_ref(s)) as SerdeRef<Windowed<K>>);
        let results = Results::new(&store, materialized.caching, key_serde);
        let fold = SessionFold { windows, init, agg, merger };
        AggProc::add(&shared, &name, &input.node, fold, Some(NullInputs::of(&input)), results);
        let (Some(ks), Some(vs)) = (ks, vs) else { return KTable::unbuilt(shared, name) };
        let retention = retention_at_least(materialized.retention, windows.close().retention_ms(windows.gap_ms));
        let supplier = if materialized.persistent {
            Stores::persistent_session_store(&store, retention)
        } else {
            Stores::in_memory_session_store(&store, retention)
        };
        let builder = materialized.configure(Stores::session_store_builder(supplier, Arc::clone(&ks), Arc::clone(&vs)));
        shared.add(|t| t.add_state_store(builder, &[&name]).map(|_| ()));
        let key_serde: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::session_ref(ks));
        KTable::windowed(shared, name, store, key_serde, vs, windows.table_close())
    }
}

/// Folds each record into the session it opens or extends, merging the
/// sessions it bridges; drops it when that session has closed.
struct SessionFold<K, V, VA> {
    windows: SessionWindows,
    init: Init<VA>,
    agg: Aggregator<K, V, VA>,
    merger: Merger<K, VA>,
}

impl<K, V, VA> Clone for SessionFold<K, V, VA> {
    fn clone(&self) -> Self {
        let (init, agg, merger) = (Arc::clone(&self.init), Arc::clone(&self.agg), Arc::clone(&self.merger));
        Self { windows: self.windows, init, agg, merger }
    }
}

impl<K: Data, V: Data, VA: Data> Fold for SessionFold<K, V, VA> {
    type K = K;
    type V = V;
    type KOut = Windowed<K>;
    type VA = VA;
    type Store = SessionStoreHandle<K, VA>;

    fn fold(
        &self,
        r: Record<K, V>,
        store: &Self::Store,
        out: &mut Forwarder<Windowed<K>, VA>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let ts = r.timestamp();
        let gap = self.windows.gap_ms;
        let stream_time = ctx.current_stream_time_ms();
        let found = store.find_sessions(r.key(), ts.saturating_sub(gap), ts.saturating_add(gap))?;
        let mut merged_window = Window { start: ts, end: ts };
        let mut agg = (self.init)();
        for (session, value) in &found {
            agg = (self.merger)(r.key(), agg, value.clone());
            merged_window = Window {
                start: merged_window.start.min(session.window.start),
                end: merged_window.end.max(session.window.end),
            };
        }
        if self.windows.close().is_expired(self.windows.extendable_until(merged_window.end), stream_time) {
            ctx.record_dropped("record for an expired session");
            tracing::debug!(ts, session_end = merged_window.end, stream_time, "skipping record for an expired session");
            return Ok(());
        }
        if merged_window != (Window { start: ts, end: ts }) {
            for (session, value) in found {
                store.remove(&session)?;
                let end = session.window.end;
                out.send(ctx, session, Change { new: None, old: Some(value) }, end, Headers::new())?;
            }
        }
        let (k, v, _, headers) = r.into_parts();
        let agg = (self.agg)(&k, v, agg);
        let session = Windowed { key: k, window: merged_window };
        store.put(&session, &agg)?;
        out.send(ctx, session, Change { new: Some(agg), old: None }, merged_window.end, headers)
    }
}
