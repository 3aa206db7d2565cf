//! Grouped streams and tables, and their aggregations: count, reduce,
//! aggregate, over keys, time windows and session windows.

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef, Shared};
use crate::cache::{identity_of, Forwarder};
use crate::kstream::KStream;
use crate::ktable::{table_store, Change, KTable};
use crate::options::{Grouped, Materialized};
use crate::serdes::{ChangeSerde, WindowedSerde};
use crate::windows::{SessionWindows, TimeWindows};

type Step<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

fn is_null<T: 'static>(serde: &Option<SerdeRef<T>>, value: &T) -> bool {
    serde.as_ref().is_some_and(|s| matches!(s.serialize("", &mut Headers::new(), value), Ok(None)))
}

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
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        Self { stream, grouped }
    }

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

    fn aggregate_step<VA: Data>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
        prefix: &str,
    ) -> KTable<K, VA> {
        let shared = self.shared().clone();
        let store = materialized.name.clone().unwrap_or_else(|| shared.name(&format!("{prefix}-STATE-STORE")));
        let input = self.input(&store);
        let name = shared.name(prefix);
        let (store_for_proc, ks, vs) = (store.clone(), input.key_serde.clone(), input.value_serde.clone());
        let parent = input.node.clone();
        let caching = materialized.caching;
        let identity = identity_of(materialized.key.clone().or_else(|| input.key_serde.clone()));
        shared.add(|t| {
            t.add_processor(
                &name,
                move || StreamAggProc {
                    store: store_for_proc.clone(),
                    step: Arc::clone(&step),
                    key_serde: ks.clone(),
                    value_serde: vs.clone(),
                    handle: None,
                    out: Forwarder::new(caching, Arc::clone(&identity)),
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let value_serde = materialized.value.clone();
        let m = Materialized { name: Some(store), ..materialized };
        let store = table_store(&shared, &m, input.key_serde.clone(), value_serde.clone(), &name, prefix);
        KTable { shared, node: name, store, key_serde: m.key.or(input.key_serde), value_serde, windowing: None }
    }

    /// Counts records per key (records with a null key or value are dropped and counted).
    pub fn count(&self) -> KTable<K, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count) with store options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<K, i64> {
        let m = Materialized { value: materialized.value.clone().or_else(|| Some(Arc::new(I64Serde))), ..materialized };
        self.aggregate_step(Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0) + 1), m, "KSTREAM-AGGREGATE")
    }

    /// Combines the values of each key: `reducer(aggregate, value)`.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        let m = Materialized {
            value: materialized.value.clone().or_else(|| self.stream.value_serde.clone()),
            ..materialized
        };
        self.aggregate_step(
            Arc::new(move |_, v, old: Option<V>| match old {
                Some(agg) => reducer(agg, v),
                None => v,
            }),
            m,
            "KSTREAM-REDUCE",
        )
    }

    /// Folds the values of each key into an aggregate starting from `initializer()`.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<K, VA> {
        self.aggregate_step(
            Arc::new(move |k, v, old: Option<VA>| aggregator(k, v, old.unwrap_or_else(&initializer))),
            materialized,
            "KSTREAM-AGGREGATE",
        )
    }

    /// Aggregates per key and time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: Self { stream: self.stream.clone(), grouped: clone_grouped(&self.grouped) },
            windows,
        }
    }

    /// Aggregates per key and sliding window.
    pub fn windowed_by_sliding(
        &self,
        windows: crate::windows::SlidingWindows,
    ) -> crate::sliding::SlidingWindowedKStream<K, V> {
        crate::sliding::SlidingWindowedKStream {
            grouped: Self { stream: self.stream.clone(), grouped: clone_grouped(&self.grouped) },
            windows,
        }
    }

    /// Aggregates per key and session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: Self { stream: self.stream.clone(), grouped: clone_grouped(&self.grouped) },
            windows,
        }
    }
}

pub(crate) fn millis(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// The retention asked for, but never less than what the windows need.
fn retention_at_least(asked: Option<std::time::Duration>, minimum_ms: i64) -> std::time::Duration {
    let minimum = millis(minimum_ms);
    asked.map_or(minimum, |r| r.max(minimum))
}

/// Adds `builder`'s store, connected to `processor`.
fn attach_store(shared: &Shared, processor: &str, mut builder: StoreBuilder, logging: bool, caching: bool) {
    if !logging {
        builder = builder.without_logging();
    }
    if caching {
        builder = builder.with_caching();
    }
    shared.add(|t| t.add_state_store(builder, &[processor]).map(|_| ()));
}

fn clone_grouped<K, V>(g: &Grouped<K, V>) -> Grouped<K, V> {
    Grouped { key: g.key.clone(), value: g.value.clone(), name: g.name.clone() }
}

struct StreamAggProc<K, V, VA> {
    store: String,
    step: Step<K, V, VA>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    handle: Option<TimestampedKeyValueStoreHandle<K, VA>>,
    out: Forwarder<K, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, K, Change<VA>> for StreamAggProc<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.store)?);
        self.out.init(ctx);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), ProcessorError> {
        self.out.flush(ctx)
    }

    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        if is_null(&self.key_serde, r.key()) || is_null(&self.value_serde, r.value()) {
            ctx.record_dropped("null key or value in aggregation");
            return Ok(());
        }
        let store =
            self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        let (k, v, ts, headers) = r.into_parts();
        let old = store.get(&k)?;
        let new_ts = old.as_ref().map_or(ts, |(_, t)| ts.max(*t));
        let old = old.map(|(a, _)| a);
        let new = (self.step)(&k, v, old.clone());
        store.put(&k, &new, new_ts)?;
        self.out.send(ctx, k, Change { new: Some(new), old }, new_ts, headers)
    }
}

/// A grouped stream over time windows (Kafka Streams' `TimeWindowedKStream`).
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
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
        let m = Materialized { value: materialized.value.clone().or_else(|| Some(Arc::new(I64Serde))), ..materialized };
        self.aggregate_step(Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0) + 1), m)
    }

    /// Combines the values of each key and window.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> KTable<Windowed<K>, V> {
        let m = Materialized {
            value: materialized.value.clone().or_else(|| self.grouped.stream.value_serde.clone()),
            ..materialized
        };
        self.aggregate_step(
            Arc::new(move |_, v, old: Option<V>| match old {
                Some(agg) => reducer(agg, v),
                None => v,
            }),
            m,
        )
    }

    /// Folds the values of each key and window into an aggregate.
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        self.aggregate_step(
            Arc::new(move |k, v, old: Option<VA>| aggregator(k, v, old.unwrap_or_else(&initializer))),
            materialized,
        )
    }

    fn aggregate_step<VA: Data>(
        &self,
        step: Step<K, V, VA>,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let shared = self.grouped.shared().clone();
        let prefix = "KSTREAM-AGGREGATE";
        let store = materialized.name.clone().unwrap_or_else(|| shared.name(&format!("{prefix}-STATE-STORE")));
        let input = self.grouped.input(&store);
        let name = shared.name(prefix);
        let windows = self.windows;
        let hint = "Materialized::with(key_serde, value_serde)";
        let ks = shared.need(&materialized.key.clone().or(input.key_serde.clone()), &name, "key", hint);
        let vs = shared.need(&materialized.value.clone(), &name, "value", hint);
        let (store_for_proc, kser, vser) = (store.clone(), input.key_serde.clone(), input.value_serde.clone());
        let parent = input.node.clone();
        let caching = materialized.caching;
        let identity = identity_of(
            ks.clone().map(|s| Arc::new(WindowedSerde::time_ref(s, windows.size_ms)) as SerdeRef<Windowed<K>>),
        );
        shared.add(|t| {
            t.add_processor(
                &name,
                move || WindowAggProc {
                    store: store_for_proc.clone(),
                    windows,
                    step: Arc::clone(&step),
                    key_serde: kser.clone(),
                    value_serde: vser.clone(),
                    handle: None,
                    out: Forwarder::new(caching, Arc::clone(&identity)),
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let (Some(ks), Some(vs)) = (ks, vs) else {
            return KTable { shared, node: name, store: None, key_serde: None, value_serde: None, windowing: None };
        };
        let retention = retention_at_least(materialized.retention, windows.size_ms.saturating_add(windows.grace_ms));
        let size = millis(windows.size_ms);
        let supplier = if materialized.persistent {
            Stores::persistent_window_store(&store, retention, size, false)
        } else {
            Stores::in_memory_window_store(&store, retention, size, false)
        };
        let builder = Stores::timestamped_window_store_builder(supplier, Arc::clone(&ks), Arc::clone(&vs));
        attach_store(&shared, &name, builder, materialized.logging, materialized.caching);
        let key_serde: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::time_ref(ks, windows.size_ms));
        KTable {
            shared,
            node: name,
            store: Some(store),
            key_serde: Some(key_serde),
            value_serde: Some(vs),
            windowing: None,
        }
        .with_windowing(windows)
    }
}

struct WindowAggProc<K, V, VA> {
    store: String,
    windows: TimeWindows,
    step: Step<K, V, VA>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    handle: Option<WindowStoreHandle<K, VA>>,
    out: Forwarder<Windowed<K>, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for WindowAggProc<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_window_store(&self.store)?);
        self.out.init(ctx);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), ProcessorError> {
        self.out.flush(ctx)
    }

    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        if is_null(&self.key_serde, r.key()) || is_null(&self.value_serde, r.value()) {
            ctx.record_dropped("null key or value in aggregation");
            return Ok(());
        }
        let store =
            self.handle.clone().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        let close_time = ctx.current_stream_time_ms().saturating_sub(self.windows.grace_ms);
        let ts = r.timestamp();
        for window in self.windows.windows_for(ts) {
            if window.end <= close_time {
                ctx.record_dropped("record for an expired window");
                tracing::debug!(window.start, window.end, ts, close_time, "skipping record for an expired window");
                continue;
            }
            let old = store.fetch(r.key(), window.start)?;
            let new_ts = old.as_ref().map_or(ts, |(_, t)| ts.max(*t));
            let old = old.map(|(a, _)| a);
            let new = (self.step)(r.key(), r.value().clone(), old.clone());
            store.put(r.key(), &new, window.start, new_ts)?;
            let key = Windowed { key: r.key().clone(), window };
            self.out.send(ctx, key, Change { new: Some(new), old }, new_ts, r.headers().clone())?;
        }
        Ok(())
    }
}

/// A grouped stream over session windows (Kafka Streams' `SessionWindowedKStream`).
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K, V> fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowedKStream").field("windows", &self.windows).finish()
    }
}

type Merger<K, VA> = Arc<dyn Fn(&K, VA, VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Counts records per key and session.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.count_with(Materialized::default())
    }

    /// As [`count`](Self::count) with store options.
    pub fn count_with(&self, materialized: Materialized<K, i64>) -> KTable<Windowed<K>, i64> {
        let m = Materialized { value: materialized.value.clone().or_else(|| Some(Arc::new(I64Serde))), ..materialized };
        self.aggregate(|| 0, |_, _, c| c + 1, |_, a, b| a + b, m)
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
        let shared = self.grouped.shared().clone();
        let prefix = "KSTREAM-AGGREGATE";
        let store = materialized.name.clone().unwrap_or_else(|| shared.name(&format!("{prefix}-STATE-STORE")));
        let input = self.grouped.input(&store);
        let name = shared.name(prefix);
        let windows = self.windows;
        let hint = "Materialized::with(key_serde, value_serde)";
        let ks = shared.need(&materialized.key.clone().or(input.key_serde.clone()), &name, "key", hint);
        let vs = shared.need(&materialized.value.clone(), &name, "value", hint);
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let agg: Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync> = Arc::new(aggregator);
        let merger: Merger<K, VA> = Arc::new(merger);
        let (store_for_proc, kser, vser) = (store.clone(), input.key_serde.clone(), input.value_serde.clone());
        let parent = input.node.clone();
        let caching = materialized.caching;
        let identity =
            identity_of(ks.clone().map(|s| Arc::new(WindowedSerde::session_ref(s)) as SerdeRef<Windowed<K>>));
        shared.add(|t| {
            t.add_processor(
                &name,
                move || SessionAggProc {
                    store: store_for_proc.clone(),
                    windows,
                    init: Arc::clone(&init),
                    agg: Arc::clone(&agg),
                    merger: Arc::clone(&merger),
                    key_serde: kser.clone(),
                    value_serde: vser.clone(),
                    handle: None,
                    out: Forwarder::new(caching, Arc::clone(&identity)),
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let (Some(ks), Some(vs)) = (ks, vs) else {
            return KTable { shared, node: name, store: None, key_serde: None, value_serde: None, windowing: None };
        };
        let retention = retention_at_least(materialized.retention, windows.gap_ms.saturating_add(windows.grace_ms));
        let supplier = if materialized.persistent {
            Stores::persistent_session_store(&store, retention)
        } else {
            Stores::in_memory_session_store(&store, retention)
        };
        let builder = Stores::session_store_builder(supplier, Arc::clone(&ks), Arc::clone(&vs));
        attach_store(&shared, &name, builder, materialized.logging, materialized.caching);
        let key_serde: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::session_ref(ks));
        let mut table = KTable {
            shared,
            node: name,
            store: Some(store),
            key_serde: Some(key_serde),
            value_serde: Some(vs),
            windowing: None,
        };
        table.windowing = Some(crate::ktable::Windowing { grace_ms: windows.grace_ms.saturating_add(windows.gap_ms) });
        table
    }
}

struct SessionAggProc<K, V, VA> {
    store: String,
    windows: SessionWindows,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    agg: Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>,
    merger: Merger<K, VA>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    handle: Option<SessionStoreHandle<K, VA>>,
    out: Forwarder<Windowed<K>, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for SessionAggProc<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.session_store(&self.store)?);
        self.out.init(ctx);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), ProcessorError> {
        self.out.flush(ctx)
    }

    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        if is_null(&self.key_serde, r.key()) || is_null(&self.value_serde, r.value()) {
            ctx.record_dropped("null key or value in aggregation");
            return Ok(());
        }
        let store =
            self.handle.clone().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        let ts = r.timestamp();
        let (gap, grace) = (self.windows.gap_ms, self.windows.grace_ms);
        let close_time = ctx.current_stream_time_ms().saturating_sub(grace).saturating_sub(gap);
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
        if merged_window.end < close_time {
            ctx.record_dropped("record for an expired session");
            tracing::debug!(ts, close_time, "skipping record for an expired session");
            return Ok(());
        }
        if merged_window != (Window { start: ts, end: ts }) {
            for (session, value) in found {
                store.remove(&session)?;
                let end = session.window.end;
                self.out.send(ctx, session, Change { new: None, old: Some(value) }, end, Headers::new())?;
            }
        }
        let (k, v, _, headers) = r.into_parts();
        let agg = (self.agg)(&k, v, agg);
        let session = Windowed { key: k, window: merged_window };
        store.put(&session, &agg)?;
        self.out.send(ctx, session, Change { new: Some(agg), old: None }, merged_window.end, headers)
    }
}

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

impl<K2: Data + PartialEq, V2: Data> KGroupedTable<K2, V2> {
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
        let store = materialized.name.clone().unwrap_or_else(|| shared.name(&format!("{prefix}-STATE-STORE")));
        let base = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        let hint = "Grouped::with(key_serde, value_serde)";
        let ks = self.grouped.key.clone().or_else(|| materialized.key.clone());
        let change_serde: Option<SerdeRef<Change<V2>>> =
            self.grouped.value.clone().map(|inner| Arc::new(ChangeSerde { inner }) as SerdeRef<Change<V2>>);
        let selected: KStream<K2, Change<V2>> =
            KStream::new(shared.clone(), self.node.clone(), ks.clone(), change_serde.clone(), true);
        let input = selected.through_repartition(&base, ks.clone(), change_serde, None, hint);
        let name = shared.name(prefix);
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let adder: Arc<dyn Fn(&K2, &V2, VA) -> VA + Send + Sync> = Arc::new(adder);
        let subtractor: Arc<dyn Fn(&K2, &V2, VA) -> VA + Send + Sync> = Arc::new(subtractor);
        let store_for_proc = store.clone();
        let parent = input.node.clone();
        let caching = materialized.caching;
        let identity = identity_of(ks.clone());
        shared.add(|t| {
            t.add_processor(
                &name,
                move || TableAggProc {
                    store: store_for_proc.clone(),
                    init: Arc::clone(&init),
                    adder: Arc::clone(&adder),
                    subtractor: Arc::clone(&subtractor),
                    handle: None,
                    out: Forwarder::new(caching, Arc::clone(&identity)),
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let value_serde = materialized.value.clone();
        let m = Materialized { name: Some(store), ..materialized };
        let store = table_store(&shared, &m, ks.clone(), value_serde.clone(), &name, prefix);
        KTable { shared, node: name, store, key_serde: ks, value_serde, windowing: None }
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
    ) -> KTable<K2, Option<V2>>
    where
        V2: Data,
    {
        let m: Materialized<K2, Option<V2>> = Materialized {
            name: materialized.name,
            key: materialized.key,
            value: materialized
                .value
                .or_else(|| self.grouped.value.clone())
                .map(|s| Arc::new(streams_core::serde::Nullable(s)) as SerdeRef<Option<V2>>),
            persistent: materialized.persistent,
            logging: materialized.logging,
            caching: materialized.caching,
            retention: materialized.retention,
        };
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

struct TableAggProc<K, V, VA> {
    store: String,
    init: Arc<dyn Fn() -> VA + Send + Sync>,
    adder: Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>,
    subtractor: Arc<dyn Fn(&K, &V, VA) -> VA + Send + Sync>,
    handle: Option<TimestampedKeyValueStoreHandle<K, VA>>,
    out: Forwarder<K, VA>,
}

impl<K: Data, V: Data, VA: Data> Processor<K, Change<V>, K, Change<VA>> for TableAggProc<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.store)?);
        self.out.init(ctx);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VA>>) -> Result<(), ProcessorError> {
        self.out.flush(ctx)
    }

    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let store =
            self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        let (k, change, ts, headers) = r.into_parts();
        if change.new.is_none() && change.old.is_none() {
            return Ok(());
        }
        let prev = store.get(&k)?;
        let new_ts = prev.as_ref().map_or(ts, |(_, t)| ts.max(*t));
        let prev = prev.map(|(a, _)| a);
        let mut agg = prev.clone().unwrap_or_else(|| (self.init)());
        if let Some(old) = &change.old {
            agg = (self.subtractor)(&k, old, agg);
        }
        if let Some(new) = &change.new {
            agg = (self.adder)(&k, new, agg);
        }
        store.put(&k, &agg, new_ts)?;
        self.out.send(ctx, k, Change { new: Some(agg), old: prev }, new_ts, headers)
    }
}

/// Adds one input's aggregating processor for a cogroup; returns its name.
type CogroupInput<VA> = Box<dyn FnOnce(&str, Arc<dyn Fn() -> VA + Send + Sync>, bool) -> Option<String>>;

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
        let grouped = KGroupedStream { stream: grouped.stream.clone(), grouped: clone_grouped(&grouped.grouped) };
        let shared = self.shared.clone();
        let aggregator: Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync> = Arc::new(aggregator);
        self.inputs.push(Box::new(move |store: &str, init: Arc<dyn Fn() -> VA + Send + Sync>, caching: bool| {
            let input = grouped.input(&format!("{store}-{}", shared.name("COGROUP")));
            let name = shared.name("KSTREAM-COGROUP-AGGREGATE");
            let step: Step<K, V, VA> =
                Arc::new(move |k, v, old: Option<VA>| aggregator(k, v, old.unwrap_or_else(|| init())));
            let (store, ks, vs, parent) =
                (store.to_owned(), input.key_serde.clone(), input.value_serde.clone(), input.node.clone());
            let identity = identity_of(input.key_serde.clone());
            shared.add(|t| {
                t.add_processor(
                    &name,
                    move || StreamAggProc {
                        store: store.clone(),
                        step: Arc::clone(&step),
                        key_serde: ks.clone(),
                        value_serde: vs.clone(),
                        handle: None,
                        out: Forwarder::new(caching, Arc::clone(&identity)),
                    },
                    &[&parent],
                )
                .map(|_| ())
            });
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
        let init: Arc<dyn Fn() -> VA + Send + Sync> = Arc::new(initializer);
        let caching = materialized.caching;
        let processors: Vec<String> =
            self.inputs.into_iter().filter_map(|add| add(&store, Arc::clone(&init), caching)).collect();
        let merge = shared.name("COGROUPKSTREAM-MERGE");
        let parents: Vec<&str> = processors.iter().map(String::as_str).collect();
        shared
            .add(|t| t.add_processor(&merge, crate::processors::PassProc::<K, Change<VA>>::new, &parents).map(|_| ()));
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
        KTable { shared, node: merge, store, key_serde, value_serde, windowing: None }
    }
}
