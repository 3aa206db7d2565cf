//! Sliding-window aggregation: for every record a window of
//! `time_difference` ending at it, plus the windows just after records that
//! later records fall into (Kafka Streams' `SlidingWindows`).

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef};
use crate::grouped::{window_result_store, AggregationNodes, Init, KGroupedStream};
use crate::ktable::{Change, KTable};
use crate::options::Materialized;
use crate::serdes::WindowedSerde;
use crate::windows::{millis, SlidingWindows};

/// A grouped stream over sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: SlidingWindows,
}

impl<K, V> fmt::Debug for SlidingWindowedKStream<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlidingWindowedKStream").field("windows", &self.windows).finish()
    }
}

type Agg<K, V, VA> = Arc<dyn Fn(&K, V, VA) -> VA + Send + Sync>;

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Counts records per key and sliding window.
    pub fn count(&self) -> KTable<Windowed<K>, i64> {
        self.aggregate(|| 0i64, |_, _, c| c + 1, Materialized::default().with_value_serde(I64Serde))
    }

    /// Folds the values of each sliding window (in timestamp order for new windows).
    pub fn aggregate<VA: Data>(
        &self,
        initializer: impl Fn() -> VA + Send + Sync + 'static,
        aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
        materialized: Materialized<K, VA>,
    ) -> KTable<Windowed<K>, VA> {
        let nodes = self.grouped.aggregation(&materialized, "KSTREAM-AGGREGATE");
        let records = format!("{}-records", nodes.store);
        let (ks, vs) = nodes.result_serdes(&materialized);
        let AggregationNodes { shared, store, input, name } = nodes;
        let rvs = shared.need(&input.value_serde, &name, "value", "Grouped::with(key_serde, value_serde)");
        let (Some(ks), Some(vs), Some(rvs)) = (ks, vs, rvs) else { return KTable::unbuilt(shared, name) };
        let windows = self.windows;
        let init: Init<VA> = Arc::new(initializer);
        let agg: Agg<K, V, VA> = Arc::new(aggregator);
        let (s1, s2, kser) = (store.clone(), records.clone(), Arc::clone(&ks));
        let parent = input.node.clone();
        let diff = windows.time_difference_ms;
        let retention = millis(windows.close().retention_ms(diff.saturating_mul(2)).saturating_add(1));
        let size = millis(diff);
        shared.add(|t| {
            t.add_processor(
                &name,
                move || SlidingAggProc {
                    windows_store: s1.clone(),
                    records_store: s2.clone(),
                    windows,
                    init: Arc::clone(&init),
                    agg: Arc::clone(&agg),
                    key_serde: Arc::clone(&kser),
                    handles: None,
                },
                &[&parent],
            )?;
            let results = window_result_store(&materialized, &store, retention, size, Arc::clone(&ks), Arc::clone(&vs));
            t.add_state_store(results, &[&name])?;
            let raw: StoreBuilder = Stores::window_store_builder(
                Stores::persistent_window_store(&records, retention, size, true),
                Arc::clone(&ks),
                rvs,
            );
            t.add_state_store(raw, &[&name])?;
            Ok(())
        });
        let key_serde: SerdeRef<Windowed<K>> = Arc::new(WindowedSerde::time_ref(ks, diff));
        KTable::windowed(shared, name, store, key_serde, vs, windows.close())
    }
}

type SlidingHandles<K, V, VA> = (WindowStoreHandle<K, VA>, WindowStoreHandle<K, V>);

struct SlidingAggProc<K, V, VA> {
    windows_store: String,
    records_store: String,
    windows: SlidingWindows,
    init: Init<VA>,
    agg: Agg<K, V, VA>,
    key_serde: SerdeRef<K>,
    handles: Option<SlidingHandles<K, V, VA>>,
}

impl<K: Data, V: Data, VA: Data> SlidingAggProc<K, V, VA> {
    /// Aggregates the stored records of `key` in `[start, end]`, oldest first,
    /// with the time of the newest.
    fn fold(
        &self,
        records: &WindowStoreHandle<K, V>,
        key: &K,
        start: i64,
        end: i64,
    ) -> Result<Option<(VA, i64)>, ProcessorError> {
        let found = records.fetch_range(key, start, end)?;
        if found.is_empty() {
            return Ok(None);
        }
        let mut acc = (self.init)();
        let mut latest = i64::MIN;
        for (ts, v, _) in found {
            acc = (self.agg)(key, v, acc);
            latest = latest.max(ts);
        }
        Ok(Some((acc, latest)))
    }

    /// Stores window `start` of `key` with `(new value, old value, timestamp)` and forwards it.
    fn emit(
        &self,
        store: &WindowStoreHandle<K, VA>,
        key: &K,
        start: i64,
        (value, old, ts): (VA, Option<VA>, i64),
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        store.put(key, &value, start, ts)?;
        let window = Window { start, end: start.saturating_add(self.windows.time_difference_ms) };
        ctx.forward(Record::new(Windowed { key: key.clone(), window }, Change { new: Some(value), old }, ts))
    }
}

impl<K: Data, V: Data, VA: Data> Processor<K, V, Windowed<K>, Change<VA>> for SlidingAggProc<K, V, VA> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>) -> Result<(), ProcessorError> {
        self.handles =
            Some((ctx.timestamped_window_store(&self.windows_store)?, ctx.window_store(&self.records_store)?));
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, V>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        if matches!(self.key_serde.serialize(&self.windows_store, &mut Headers::new(), r.key()), Ok(None)) {
            ctx.record_dropped("null key in aggregation");
            return Ok(());
        }
        let (windows, records) =
            self.handles.clone().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        let diff = self.windows.time_difference_ms;
        let t = r.timestamp();
        let close = self.windows.close();
        let stream_time = ctx.current_stream_time_ms();
        let closed = |end: i64| close.is_closed(end, stream_time);
        if closed(t.saturating_add(diff)) {
            ctx.record_dropped("record for an expired window");
            return Ok(());
        }
        let key = r.key().clone();
        // The latest earlier record, before this one is stored.
        let previous = records
            .fetch_range(&key, t.saturating_sub(diff).saturating_sub(1), t.saturating_sub(1))?
            .into_iter()
            .map(|(ts, _, _)| ts)
            .max();
        records.put(&key, r.value(), t, t)?;

        // Existing windows that contain t are updated.
        let left_start = t.saturating_sub(diff).max(0);
        let mut left_exists = false;
        let mut right_exists = false;
        for (start, agg, ts) in windows.fetch_range(&key, left_start, t.saturating_add(1))? {
            let end = start.saturating_add(diff);
            if start == left_start {
                left_exists = true;
            }
            if start == t.saturating_add(1) {
                right_exists = true;
                continue;
            }
            if start <= t && t <= end && !closed(end) {
                let new = (self.agg)(&key, r.value().clone(), agg.clone());
                self.emit(&windows, &key, start, (new, Some(agg), ts.max(t)), ctx)?;
            }
        }
        // The previous record's right window, if this record is its first member.
        if let Some(prev) = previous {
            let start = prev.saturating_add(1);
            let end = start.saturating_add(diff);
            if t <= end && !closed(end) && windows.fetch(&key, start)?.is_none() {
                if let Some((agg, ts)) = self.fold(&records, &key, start, end)? {
                    self.emit(&windows, &key, start, (agg, None, ts), ctx)?;
                }
            }
        }
        // This record's left window.
        let left_end = left_start.saturating_add(diff);
        if !left_exists && !closed(left_end) {
            if let Some((agg, ts)) = self.fold(&records, &key, left_start, left_end)? {
                self.emit(&windows, &key, left_start, (agg, None, ts), ctx)?;
            }
        }
        // This record's right window, when later records are already there.
        let right_start = t.saturating_add(1);
        let right_end = right_start.saturating_add(diff);
        if !right_exists && !closed(right_end) {
            if let Some((agg, ts)) = self.fold(&records, &key, right_start, right_end)? {
                self.emit(&windows, &key, right_start, (agg, None, ts), ctx)?;
            }
        }
        Ok(())
    }
}
