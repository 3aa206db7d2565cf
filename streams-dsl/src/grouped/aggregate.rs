//! What every aggregation shares: the step that folds a record into an
//! aggregate, the builders of its stores, and the aggregating processor
//! (null check, store, record cache) around the [`Fold`] that each kind of
//! aggregation brings. Also the per-key fold (grouped streams, cogroups).

use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef, Shared};
use crate::cache::{identity_of, Forwarder, Identity};
use crate::kstream::KStream;
use crate::ktable::Change;
use crate::options::Materialized;
use crate::windows::millis;

/// Folds one record into an aggregate: key, value and the aggregate so far
/// (`None` for a key's first record) → the new aggregate.
pub(crate) type Step<K, V, VA> = Arc<dyn Fn(&K, V, Option<VA>) -> VA + Send + Sync>;

/// Makes the aggregate a key starts from.
pub(crate) type Init<VA> = Arc<dyn Fn() -> VA + Send + Sync>;

/// Counting: one more per record.
pub(super) fn count_step<K, V>() -> Step<K, V, i64> {
    Arc::new(|_, _, old| old.unwrap_or(0) + 1)
}

/// The serde counts are stored with unless the options name one.
pub(super) fn count_serde() -> Option<SerdeRef<i64>> {
    Some(Arc::new(I64Serde))
}

/// Reducing: a key's first value is its aggregate, later ones combine with it.
pub(super) fn reduce_step<K, V: 'static>(reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> Step<K, V, V> {
    Arc::new(move |_, v, old| match old {
        Some(agg) => reducer(agg, v),
        None => v,
    })
}

/// Folding from `initializer()`.
pub(super) fn fold_step<K, V, VA: 'static>(
    initializer: impl Fn() -> VA + Send + Sync + 'static,
    aggregator: impl Fn(&K, V, VA) -> VA + Send + Sync + 'static,
) -> Step<K, V, VA> {
    Arc::new(move |k, v, old| aggregator(k, v, old.unwrap_or_else(&initializer)))
}

/// The nodes of one aggregation (see `KGroupedStream::aggregation`).
pub(crate) struct AggregationNodes<K, V> {
    /// The builder state.
    pub(crate) shared: Shared,
    /// The store holding the aggregates.
    pub(crate) store: String,
    /// The input, read back from a repartition topic if one was needed.
    pub(crate) input: KStream<K, V>,
    /// The aggregating processor.
    pub(crate) name: String,
}

impl<K: Data, V: Data> AggregationNodes<K, V> {
    /// The serdes of a windowed aggregation's store: `materialized`'s, else
    /// the input's key serde; a missing one is recorded as the build error.
    pub(crate) fn result_serdes<VA>(
        &self,
        materialized: &Materialized<K, VA>,
    ) -> (Option<SerdeRef<K>>, Option<SerdeRef<VA>>) {
        let hint = "Materialized::with(key_serde, value_serde)";
        let key = materialized.key.clone().or_else(|| self.input.key_serde.clone());
        let ks = self.shared.need(&key, &self.name, "key", hint);
        let vs = self.shared.need(&materialized.value, &self.name, "value", hint);
        (ks, vs)
    }
}

/// The retention asked for, but never less than what the windows need.
pub(super) fn retention_at_least(asked: Option<Duration>, minimum_ms: i64) -> Duration {
    let minimum = millis(minimum_ms);
    asked.map_or(minimum, |r| r.max(minimum))
}

/// The timestamped window store of a windowed aggregation's results: in
/// RocksDB or memory, logged and cached as `materialized` asks.
pub(crate) fn window_result_store<K: Data, VA: Data>(
    materialized: &Materialized<K, VA>,
    store: &str,
    retention: Duration,
    size: Duration,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<VA>,
) -> StoreBuilder {
    let supplier = if materialized.persistent {
        Stores::persistent_window_store(store, retention, size, false)
    } else {
        Stores::in_memory_window_store(store, retention, size, false)
    };
    materialized.configure(Stores::timestamped_window_store_builder(supplier, key_serde, value_serde))
}

/// Tells records with a null key or value, which stream aggregations drop
/// (and count), as Kafka Streams does.
pub(super) struct NullInputs<K, V> {
    key: Option<SerdeRef<K>>,
    value: Option<SerdeRef<V>>,
}

impl<K, V> Clone for NullInputs<K, V> {
    fn clone(&self) -> Self {
        Self { key: self.key.clone(), value: self.value.clone() }
    }
}

fn is_null<T: 'static>(serde: &Option<SerdeRef<T>>, value: &T) -> bool {
    serde.as_ref().is_some_and(|s| matches!(s.serialize("", &mut Headers::new(), value), Ok(None)))
}

impl<K: Data, V: Data> NullInputs<K, V> {
    /// Null as `input`'s serdes write them.
    pub(super) fn of(input: &KStream<K, V>) -> Self {
        Self { key: input.key_serde.clone(), value: input.value_serde.clone() }
    }

    /// Whether `r` is dropped for a null key or value; counts the drop.
    fn drops<KO, VO>(&self, r: &Record<K, V>, ctx: &mut ProcessorContext<'_, KO, VO>) -> bool {
        let null = is_null(&self.key, r.key()) || is_null(&self.value, r.value());
        if null {
            ctx.record_dropped("null key or value in aggregation");
        }
        null
    }
}

/// A store handle that an aggregating processor opens by name at init.
pub(super) trait OpenStore: Sized {
    /// Opens the store `name` of the processor's task.
    fn open<KO, VO>(ctx: &ProcessorContext<'_, KO, VO>, name: &str) -> Result<Self, ProcessorError>;
}

impl<K: 'static, V: 'static> OpenStore for TimestampedKeyValueStoreHandle<K, V> {
    fn open<KO, VO>(ctx: &ProcessorContext<'_, KO, VO>, name: &str) -> Result<Self, ProcessorError> {
        ctx.timestamped_key_value_store(name)
    }
}

impl<K: 'static, V: 'static> OpenStore for WindowStoreHandle<K, V> {
    fn open<KO, VO>(ctx: &ProcessorContext<'_, KO, VO>, name: &str) -> Result<Self, ProcessorError> {
        ctx.timestamped_window_store(name)
    }
}

impl<K: 'static, V: 'static> OpenStore for SessionStoreHandle<K, V> {
    fn open<KO, VO>(ctx: &ProcessorContext<'_, KO, VO>, name: &str) -> Result<Self, ProcessorError> {
        ctx.session_store(name)
    }
}

/// What one kind of aggregation does with a record: read and update its
/// store, and send the aggregates that changed.
pub(super) trait Fold: Clone + Send + Sync + 'static {
    /// The input's key.
    type K: Data;
    /// The input's value.
    type V: Data;
    /// The result's key (a windowed key for windowed aggregations).
    type KOut: Data;
    /// The aggregate.
    type VA: Data;
    /// The store of the aggregates.
    type Store: OpenStore + Send + 'static;

    /// Folds `r` into the aggregates in `store`, sending changes to `out`.
    fn fold(
        &self,
        r: Record<Self::K, Self::V>,
        store: &Self::Store,
        out: &mut Forwarder<Self::KOut, Self::VA>,
        ctx: &mut ProcessorContext<'_, Self::KOut, Change<Self::VA>>,
    ) -> Result<(), ProcessorError>;
}

/// Where an aggregating processor keeps its results, and how it caches them.
pub(super) struct Results<K> {
    /// The store.
    pub(super) store: String,
    /// Whether updates collapse in the record cache until commit.
    pub(super) caching: bool,
    /// Tells keys apart in the cache.
    pub(super) identity: Identity<K>,
}

impl<K> Results<K> {
    /// Results in `store`, cached as asked; the cache tells keys apart by `key_serde`.
    pub(super) fn new(store: &str, caching: bool, key_serde: Option<SerdeRef<K>>) -> Self
    where
        K: 'static,
    {
        Self { store: store.to_owned(), caching, identity: identity_of(key_serde) }
    }
}

/// An aggregating processor: drops records with a null key or value (stream
/// aggregations), opens its store at init, folds each record in, and
/// forwards through the record cache, which it flushes at commit.
pub(super) struct AggProc<F: Fold> {
    fold: F,
    nulls: Option<NullInputs<F::K, F::V>>,
    store: String,
    handle: Option<F::Store>,
    out: Forwarder<F::KOut, F::VA>,
}

impl<F: Fold> AggProc<F> {
    /// Adds the processor `name` reading `parent`, with a copy of `fold` per task.
    pub(super) fn add(
        shared: &Shared,
        name: &str,
        parent: &str,
        fold: F,
        nulls: Option<NullInputs<F::K, F::V>>,
        results: Results<F::KOut>,
    ) {
        shared.add(|t| {
            t.add_processor(
                name,
                move || AggProc {
                    fold: fold.clone(),
                    nulls: nulls.clone(),
                    store: results.store.clone(),
                    handle: None,
                    out: Forwarder::new(results.caching, Arc::clone(&results.identity)),
                },
                &[parent],
            )
            .map(|_| ())
        });
    }
}

impl<F: Fold> Processor<F::K, F::V, F::KOut, Change<F::VA>> for AggProc<F> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, F::KOut, Change<F::VA>>) -> Result<(), ProcessorError> {
        self.handle = Some(F::Store::open(ctx, &self.store)?);
        self.out.init(ctx);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut ProcessorContext<'_, F::KOut, Change<F::VA>>) -> Result<(), ProcessorError> {
        self.out.flush(ctx)
    }

    fn process(
        &mut self,
        r: Record<F::K, F::V>,
        ctx: &mut ProcessorContext<'_, F::KOut, Change<F::VA>>,
    ) -> Result<(), ProcessorError> {
        if self.nulls.as_ref().is_some_and(|nulls| nulls.drops(&r, ctx)) {
            return Ok(());
        }
        let store =
            self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("aggregation used before init".into()))?;
        self.fold.fold(r, store, &mut self.out, ctx)
    }
}

/// Replaces `key`'s aggregate with `update(key, previous)` and sends the
/// change, stamped with the later of `ts` and the previous aggregate's time.
pub(super) fn update_by_key<K: Data, VA: Data>(
    store: &TimestampedKeyValueStoreHandle<K, VA>,
    out: &mut Forwarder<K, VA>,
    ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    (key, ts, headers): (K, i64, Headers),
    update: impl FnOnce(&K, Option<VA>) -> VA,
) -> Result<(), ProcessorError> {
    let old = store.get(&key)?;
    let new_ts = old.as_ref().map_or(ts, |(_, t)| ts.max(*t));
    let old = old.map(|(a, _)| a);
    let new = update(&key, old.clone());
    store.put(&key, &new, new_ts)?;
    out.send(ctx, key, Change { new: Some(new), old }, new_ts, headers)
}

/// Aggregates per key (grouped streams, and each input of a cogroup).
pub(super) struct StreamFold<K, V, VA> {
    /// The aggregation's step.
    pub(super) step: Step<K, V, VA>,
}

impl<K, V, VA> Clone for StreamFold<K, V, VA> {
    fn clone(&self) -> Self {
        Self { step: Arc::clone(&self.step) }
    }
}

impl<K: Data, V: Data, VA: Data> Fold for StreamFold<K, V, VA> {
    type K = K;
    type V = V;
    type KOut = K;
    type VA = VA;
    type Store = TimestampedKeyValueStoreHandle<K, VA>;

    fn fold(
        &self,
        r: Record<K, V>,
        store: &Self::Store,
        out: &mut Forwarder<K, VA>,
        ctx: &mut ProcessorContext<'_, K, Change<VA>>,
    ) -> Result<(), ProcessorError> {
        let (k, v, ts, headers) = r.into_parts();
        update_by_key(store, out, ctx, (k, ts, headers), |k, old| (self.step)(k, v, old))
    }
}
