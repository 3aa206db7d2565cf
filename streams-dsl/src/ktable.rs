//! `KTable`: the latest value per key, and its operators. Table records are
//! [`Change`]s (new and old value) so that downstream aggregations can
//! subtract what a key contributed before.

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::serde::Nullable;

use crate::builder::{Data, DslError, SerdeRef, Shared};
use crate::grouped::KGroupedTable;
use crate::kstream::KStream;
use crate::options::{Consumed, Grouped, Materialized};
use crate::window_close::WindowClose;

/// A table update: the key's new value and the one it replaces (`None`:
/// absent or deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<V> {
    /// The value now.
    pub new: Option<V>,
    /// The value before.
    pub old: Option<V>,
}

/// How a join reads a table: its store, and how to tell a null key.
pub(crate) struct ValueGetter<K, V> {
    pub(crate) store: String,
    key_serde: SerdeRef<K>,
    _v: std::marker::PhantomData<fn() -> V>,
}

impl<K, V> Clone for ValueGetter<K, V> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), key_serde: self.key_serde.clone(), _v: std::marker::PhantomData }
    }
}

impl<K: 'static, V> ValueGetter<K, V> {
    /// Whether the key serializes to null (a `None` key of an `Option` type).
    pub(crate) fn is_null_key(&self, key: &K) -> bool {
        matches!(self.key_serde.serialize(&self.store, &mut Headers::new(), key), Ok(None))
    }
}

/// A changelog stream seen as a table, as Kafka Streams' `KTable`.
pub struct KTable<K, V> {
    pub(crate) shared: Shared,
    pub(crate) node: String,
    pub(crate) store: Option<String>,
    pub(crate) key_serde: Option<SerdeRef<K>>,
    pub(crate) value_serde: Option<SerdeRef<V>>,
    /// When the windows of a windowed table close (`suppress` waits for
    /// it); `None` for a table that is not windowed.
    pub(crate) windowing: Option<WindowClose>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            node: self.node.clone(),
            store: self.store.clone(),
            key_serde: self.key_serde.clone(),
            value_serde: self.value_serde.clone(),
            windowing: self.windowing,
        }
    }
}

impl<K, V> fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KTable").field("node", &self.node).field("store", &self.store).finish()
    }
}

/// Adds a timestamped key-value store for a table, named per `materialized`.
pub(crate) fn table_store<K: Data, V: Data>(
    shared: &Shared,
    materialized: &Materialized<K, V>,
    key_serde: Option<SerdeRef<K>>,
    value_serde: Option<SerdeRef<V>>,
    processor: &str,
    operator: &str,
) -> Option<String> {
    let hint = "Materialized::with(key_serde, value_serde)";
    let ks = shared.need(&materialized.key.clone().or(key_serde), operator, "key", hint)?;
    let vs = shared.need(&materialized.value.clone().or(value_serde), operator, "value", hint)?;
    let name = materialized.store_name(shared, operator);
    let supplier = if materialized.persistent {
        Stores::persistent_key_value_store(&name)
    } else {
        Stores::in_memory_key_value_store(&name)
    };
    let builder = materialized.configure(Stores::timestamped_key_value_store_builder(supplier, ks, vs));
    shared.add(|t| t.add_state_store(builder, &[processor]).map(|_| ()));
    Some(name)
}

impl<K, V> KTable<K, V> {
    /// A table that is not windowed.
    pub(crate) fn new(
        shared: Shared,
        node: String,
        store: Option<String>,
        key_serde: Option<SerdeRef<K>>,
        value_serde: Option<SerdeRef<V>>,
    ) -> Self {
        Self { shared, node, store, key_serde, value_serde, windowing: None }
    }

    /// The table of an operator that could not be built (a serde was
    /// missing, and `shared` holds the error that `build` will return).
    pub(crate) fn unbuilt(shared: Shared, node: String) -> Self {
        Self::new(shared, node, None, None, None)
    }

    /// The table of a windowed aggregation, kept in `store`.
    pub(crate) fn windowed(
        shared: Shared,
        node: String,
        store: String,
        key_serde: SerdeRef<K>,
        value_serde: SerdeRef<V>,
        close: WindowClose,
    ) -> Self {
        Self {
            shared,
            node,
            store: Some(store),
            key_serde: Some(key_serde),
            value_serde: Some(value_serde),
            windowing: Some(close),
        }
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// A table read from `topic` (Kafka Streams' `builder.table`).
    pub(crate) fn from_topic(
        shared: &Shared,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> Self {
        let source = consumed.name.clone().unwrap_or_else(|| shared.name("KSTREAM-SOURCE"));
        let nullable: SerdeRef<Option<V>> = Arc::new(Nullable(Arc::clone(&consumed.value)));
        let mut as_table = Consumed {
            key: Arc::clone(&consumed.key),
            value: nullable,
            name: None,
            extractor: None,
            offset_reset: consumed.offset_reset,
            deserialization: consumed.deserialization.clone(),
        };
        if let Some(f) = consumed.extractor.clone() {
            // Tombstones have no value to extract from: they keep Kafka's timestamp.
            as_table = as_table.with_timestamp_extractor(move |r: &Record<K, Option<V>>| match r.value() {
                Some(v) => f(&Record::new(r.key().clone(), v.clone(), r.timestamp())),
                None => r.timestamp(),
            });
        }
        as_table.add_source(shared, &source, &[topic]);
        let stream =
            KStream::new(shared.clone(), source, Some(consumed.key.clone()), Some(as_table.value.clone()), false);
        Self::from_stream(&stream, Some(consumed.value), materialized, "KTABLE-SOURCE")
    }

    /// The table whose updates are `stream`'s records (None values delete).
    pub(crate) fn from_stream(
        stream: &KStream<K, Option<V>>,
        value_serde: Option<SerdeRef<V>>,
        materialized: Materialized<K, V>,
        prefix: &str,
    ) -> Self {
        let shared = stream.shared.clone();
        let name = shared.name(prefix);
        let key_serde = materialized.key.clone().or_else(|| stream.key_serde.clone());
        let value_serde = materialized.value.clone().or(value_serde);
        let parent = stream.node.clone();
        let store_name = materialized.store_name(&shared, prefix);
        let store_for_proc = store_name.clone();
        let ks_for_proc = key_serde.clone();
        shared.add(|t| {
            t.add_processor(
                &name,
                move || TableSourceProc::<K, V> {
                    store: store_for_proc.clone(),
                    key_serde: ks_for_proc.clone(),
                    handle: None,
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let materialized = Materialized { name: Some(store_name), ..materialized };
        let store = table_store(&shared, &materialized, key_serde.clone(), value_serde.clone(), &name, prefix);
        Self::new(shared, name, store, key_serde, value_serde)
    }

    /// A table derived from this one by `processor`, given the store it
    /// writes to when `materialized` asks for one.
    pub(crate) fn derive<V2: Data, P>(
        &self,
        prefix: &str,
        processor: impl Fn(Option<String>) -> P + Send + Sync + 'static,
        materialized: Option<Materialized<K, V2>>,
        value_serde: Option<SerdeRef<V2>>,
    ) -> KTable<K, V2>
    where
        P: Processor<K, Change<V>, K, Change<V2>>,
    {
        let name = self.shared.name(prefix);
        let parent = self.node.clone();
        let store_name = materialized.as_ref().map(|m| m.store_name(&self.shared, prefix));
        let for_proc = store_name.clone();
        self.shared.add(|t| t.add_processor(&name, move || processor(for_proc.clone()), &[&parent]).map(|_| ()));
        let mut store = None;
        let value_serde = materialized.as_ref().and_then(|m| m.value.clone()).or(value_serde);
        if let (Some(m), Some(store_name)) = (materialized, store_name) {
            let m = Materialized { name: Some(store_name), ..m };
            store = table_store(&self.shared, &m, self.key_serde.clone(), value_serde.clone(), &name, prefix);
        }
        KTable {
            shared: self.shared.clone(),
            node: name,
            store,
            key_serde: self.key_serde.clone(),
            value_serde,
            windowing: self.windowing,
        }
    }

    /// The name of the store holding this table, if it is materialized.
    pub fn queryable_store_name(&self) -> Option<&str> {
        self.store.as_deref()
    }

    /// Keeps entries for which `predicate` holds; others read as deleted.
    pub fn filter(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_inner(Arc::new(predicate), true, None)
    }

    /// As [`filter`](Self::filter), keeping the result in a store.
    pub fn filter_materialized(
        &self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
        materialized: Materialized<K, V>,
    ) -> Self {
        self.filter_inner(Arc::new(predicate), true, Some(materialized))
    }

    /// Drops entries for which `predicate` holds.
    pub fn filter_not(&self, predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> Self {
        self.filter_inner(Arc::new(predicate), false, None)
    }

    fn filter_inner(
        &self,
        predicate: Arc<dyn Fn(&K, &V) -> bool + Send + Sync>,
        keep_when: bool,
        m: Option<Materialized<K, V>>,
    ) -> Self {
        let f: Arc<dyn Fn(&K, &V) -> Option<V> + Send + Sync> =
            Arc::new(move |k, v| if predicate(k, v) == keep_when { Some(v.clone()) } else { None });
        self.derive(
            "KTABLE-FILTER",
            move |store| TableMapProc { f: Arc::clone(&f), store, handle: None },
            m,
            self.value_serde.clone(),
        )
    }

    /// Maps every value; keys stay.
    pub fn map_values<V2: Data>(&self, f: impl Fn(&V) -> V2 + Send + Sync + 'static) -> KTable<K, V2> {
        let f: Arc<dyn Fn(&K, &V) -> Option<V2> + Send + Sync> = Arc::new(move |_, v| Some(f(v)));
        self.derive(
            "KTABLE-MAPVALUES",
            move |store| TableMapProc { f: Arc::clone(&f), store, handle: None },
            None,
            None,
        )
    }

    /// As [`map_values`](Self::map_values), keeping the result in a store.
    pub fn map_values_materialized<V2: Data>(
        &self,
        f: impl Fn(&V) -> V2 + Send + Sync + 'static,
        materialized: Materialized<K, V2>,
    ) -> KTable<K, V2> {
        let f: Arc<dyn Fn(&K, &V) -> Option<V2> + Send + Sync> = Arc::new(move |_, v| Some(f(v)));
        self.derive(
            "KTABLE-MAPVALUES",
            move |store| TableMapProc { f: Arc::clone(&f), store, handle: None },
            Some(materialized),
            None,
        )
    }

    /// The table's updates as a stream: each update's new value, `None` for deletes.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let name = self.shared.name("KTABLE-TOSTREAM");
        let parent = self.node.clone();
        self.shared.add(|t| t.add_processor(&name, ToStreamProc::<K, V>::new, &[&parent]).map(|_| ()));
        let vs = self.value_serde.clone().map(|s| Arc::new(Nullable(s)) as SerdeRef<Option<V>>);
        KStream::new(self.shared.clone(), name, self.key_serde.clone(), vs, false)
    }

    /// Groups by a new key (and value) for table aggregations: each update
    /// subtracts the old value from its old group and adds the new one.
    pub fn group_by<K2: Data + PartialEq, V2: Data>(
        &self,
        selector: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        KGroupedTable::new(self, Arc::new(selector), grouped)
    }

    /// How joins read this table; materializes it first if needed.
    pub(crate) fn value_getter(&self) -> ValueGetter<K, V> {
        let store = match &self.store {
            Some(s) => s.clone(),
            None => {
                let m = self.derive(
                    "KTABLE-MATERIALIZE",
                    |store| TableMapProc::identity(store),
                    Some(Materialized::default()),
                    self.value_serde.clone(),
                );
                m.store.clone().unwrap_or_default()
            }
        };
        match self.key_serde.clone() {
            Some(key_serde) => ValueGetter { store, key_serde, _v: std::marker::PhantomData },
            None => {
                self.shared.fail(DslError::MissingSerde {
                    operator: "join".into(),
                    what: "key",
                    type_name: std::any::type_name::<K>(),
                    hint: "Materialized::with(key_serde, value_serde)",
                });
                ValueGetter {
                    store,
                    key_serde: Arc::new(NoSerde::<K>(std::marker::PhantomData)),
                    _v: std::marker::PhantomData,
                }
            }
        }
    }
}

/// Stands in after a missing-serde error was recorded; never used.
struct NoSerde<T>(std::marker::PhantomData<fn() -> T>);

impl<T: 'static> Serde for NoSerde<T> {
    type Target = T;
    fn serialize(&self, topic: &str, _: &mut Headers, _: &T) -> Result<Option<Vec<u8>>, streams_core::SerdeError> {
        Err(streams_core::SerdeError::custom(topic, "no serde"))
    }
    fn deserialize(&self, topic: &str, _: &Headers, _: Option<&[u8]>) -> Result<T, streams_core::SerdeError> {
        Err(streams_core::SerdeError::custom(topic, "no serde"))
    }
}

struct TableSourceProc<K, V> {
    store: String,
    key_serde: Option<SerdeRef<K>>,
    handle: Option<TimestampedKeyValueStoreHandle<K, V>>,
}

impl<K: Data, V: Data> Processor<K, Option<V>, K, Change<V>> for TableSourceProc<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Option<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let store = self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("table used before init".into()))?;
        if let Some(ks) = &self.key_serde {
            if matches!(ks.serialize(&self.store, &mut Headers::new(), r.key()), Ok(None)) {
                ctx.record_dropped("null key in table source");
                return Ok(());
            }
        }
        let old = store.get(r.key())?.map(|(v, _)| v);
        match r.value() {
            Some(v) => store.put(r.key(), v, r.timestamp())?,
            None => {
                store.delete(r.key())?;
            }
        }
        let (k, v, ts, headers) = r.into_parts();
        ctx.forward(Record::new(k, Change { new: v, old }, ts).with_headers(headers))
    }
}

/// filter / mapValues on a table: maps new and old alike, optionally storing the result.
pub(crate) struct TableMapProc<K, V, V2> {
    f: Arc<dyn Fn(&K, &V) -> Option<V2> + Send + Sync>,
    store: Option<String>,
    handle: Option<TimestampedKeyValueStoreHandle<K, V2>>,
}

impl<K: Data, V: Data> TableMapProc<K, V, V> {
    fn identity(store: Option<String>) -> Self {
        Self { f: Arc::new(|_, v: &V| Some(v.clone())), store, handle: None }
    }
}

impl<K: Data, V: Data, V2: Data> Processor<K, Change<V>, K, Change<V2>> for TableMapProc<K, V, V2> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V2>>) -> Result<(), ProcessorError> {
        if let Some(store) = &self.store {
            self.handle = Some(ctx.timestamped_key_value_store(store)?);
        }
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V2>>,
    ) -> Result<(), ProcessorError> {
        let (k, change, ts, headers) = r.into_parts();
        let new = change.new.as_ref().and_then(|v| (self.f)(&k, v));
        let old = change.old.as_ref().and_then(|v| (self.f)(&k, v));
        if let Some(store) = &self.handle {
            match &new {
                Some(v) => store.put(&k, v, ts)?,
                None => {
                    store.delete(&k)?;
                }
            }
        }
        ctx.forward(Record::new(k, Change { new, old }, ts).with_headers(headers))
    }
}

struct ToStreamProc<K, V>(std::marker::PhantomData<fn(K, V)>);

impl<K, V> ToStreamProc<K, V> {
    fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<K: Data, V: Data> Processor<K, Change<V>, K, Option<V>> for ToStreamProc<K, V> {
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
    ) -> Result<(), ProcessorError> {
        let (k, change, ts, headers) = r.into_parts();
        ctx.forward(Record::new(k, change.new, ts).with_headers(headers))
    }
}
