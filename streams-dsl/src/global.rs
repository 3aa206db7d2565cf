//! `GlobalKTable`: a table every instance holds in full, read by stream
//! joins through a key mapper, with no co-partitioning needed.

use std::fmt;
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef, Shared, StreamsBuilder};
use crate::kstream::KStream;
use crate::options::{Consumed, Materialized};

/// A table of a whole topic, as Kafka Streams' `GlobalKTable`.
pub struct GlobalKTable<K, V> {
    store: String,
    key_serde: SerdeRef<K>,
    _v: std::marker::PhantomData<fn() -> V>,
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        Self { store: self.store.clone(), key_serde: self.key_serde.clone(), _v: std::marker::PhantomData }
    }
}

impl<K, V> fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlobalKTable").field("store", &self.store).finish()
    }
}

impl<K, V> GlobalKTable<K, V> {
    /// The name of the store holding the table (queryable by that name).
    pub fn queryable_store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic`: every instance reads all its partitions into
    /// a local store before processing starts, then keeps up.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> GlobalKTable<K, V> {
        let shared: &Shared = self.shared();
        let source = consumed.name.clone().unwrap_or_else(|| shared.name("KSTREAM-SOURCE"));
        let processor = shared.name("KTABLE-SOURCE");
        let store = materialized.name.clone().unwrap_or_else(|| shared.name(&format!("{topic}-STATE-STORE")));
        let ks = materialized.key.clone().unwrap_or_else(|| Arc::clone(&consumed.key));
        let vs = materialized.value.clone().unwrap_or_else(|| Arc::clone(&consumed.value));
        let supplier = if materialized.persistent {
            Stores::persistent_key_value_store(&store)
        } else {
            Stores::in_memory_key_value_store(&store)
        };
        // The topic itself is the changelog of a global store.
        let builder: StoreBuilder =
            Stores::timestamped_key_value_store_builder(supplier, Arc::clone(&ks), vs).without_logging();
        let nullable = Nullable(Arc::clone(&consumed.value));
        let (store_for_proc, ks_for_proc) = (store.clone(), Arc::clone(&ks));
        shared.add(|t| {
            t.add_global_store(builder, &source, topic, Arc::clone(&consumed.key), nullable, &processor, move || {
                GlobalTableProc::<K, V> {
                    store: store_for_proc.clone(),
                    key_serde: Arc::clone(&ks_for_proc),
                    handle: None,
                }
            })
            .map(|_| ())
        });
        GlobalKTable { store, key_serde: ks, _v: std::marker::PhantomData }
    }
}

struct GlobalTableProc<K, V> {
    store: String,
    key_serde: SerdeRef<K>,
    handle: Option<TimestampedKeyValueStoreHandle<K, V>>,
}

impl<K: Data, V: Data> Processor<K, Option<V>> for GlobalTableProc<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Option<V>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Option<V>>,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
    ) -> Result<(), ProcessorError> {
        if matches!(self.key_serde.serialize(&self.store, &mut Headers::new(), r.key()), Ok(None)) {
            ctx.record_dropped("null key in global table");
            return Ok(());
        }
        let store =
            self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("global table used before init".into()))?;
        match r.value() {
            Some(v) => store.put(r.key(), v, r.timestamp())?,
            None => {
                store.delete(r.key())?;
            }
        }
        Ok(())
    }
}

type GlobalJoiner<V, GV, VR> = Arc<dyn Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the global table's value for the key
    /// `key_mapper` derives; records without one are dropped.
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            Arc::new(key_mapper),
            Arc::new(move |v, g: Option<&GV>| g.map(|g| joiner(v, g))),
            "KSTREAM-JOIN",
        )
    }

    /// Joins each record with the global table's value for the mapped key, or
    /// with `None` when there is none.
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(table, Arc::new(key_mapper), Arc::new(move |v, g| Some(joiner(v, g))), "KSTREAM-LEFTJOIN")
    }

    fn global_join<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: Arc<dyn Fn(&K, &V) -> GK + Send + Sync>,
        joiner: GlobalJoiner<V, GV, VR>,
        prefix: &str,
    ) -> KStream<K, VR> {
        let name = self.shared.name(prefix);
        let (store, gks) = (table.store.clone(), table.key_serde.clone());
        let parent = self.node.clone();
        let store_for_proc = store.clone();
        self.shared.add(|t| {
            t.add_processor(
                &name,
                move || GlobalJoinProc {
                    store: store_for_proc.clone(),
                    key_serde: Arc::clone(&gks),
                    key_mapper: Arc::clone(&key_mapper),
                    joiner: Arc::clone(&joiner),
                    handle: None,
                },
                &[&parent],
            )?;
            t.connect_processor_and_state_stores(&name, &[&store])?;
            Ok(())
        });
        KStream::new(self.shared.clone(), name, self.key_serde.clone(), None, self.repartition_required)
    }
}

struct GlobalJoinProc<K, V, GK, GV, VR> {
    store: String,
    key_serde: SerdeRef<GK>,
    key_mapper: Arc<dyn Fn(&K, &V) -> GK + Send + Sync>,
    joiner: GlobalJoiner<V, GV, VR>,
    handle: Option<TimestampedKeyValueStoreHandle<GK, GV>>,
}

impl<K: Data, V: Data, GK: Data, GV: Data, VR: Data> Processor<K, V, K, VR> for GlobalJoinProc<K, V, GK, GV, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.store)?);
        Ok(())
    }

    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        let table = self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let key = (self.key_mapper)(r.key(), r.value());
        let null_key = matches!(self.key_serde.serialize(&self.store, &mut Headers::new(), &key), Ok(None));
        let found = if null_key { None } else { table.get(&key)?.map(|(v, _)| v) };
        match (self.joiner)(r.value(), found.as_ref()) {
            Some(joined) => {
                let (k, _, ts, headers) = r.into_parts();
                ctx.forward(Record::new(k, joined, ts).with_headers(headers))
            }
            None => Ok(()),
        }
    }
}
