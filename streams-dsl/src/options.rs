//! Options of DSL operators, named as in Kafka Streams: `Consumed`,
//! `Produced`, `Grouped`, `Materialized`, `Repartitioned`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use streams_core::serde::{DefaultSerde, Serde};
use streams_core::{OffsetReset, Record, StoreBuilder};

use crate::builder::{Data, SerdeRef, Shared};

type ExtractorRef<K, V> = Arc<dyn Fn(&Record<K, V>) -> i64 + Send + Sync>;

/// How a source reads its topic: serdes, timestamps, a node name.
pub struct Consumed<K, V> {
    pub(crate) key: SerdeRef<K>,
    pub(crate) value: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) extractor: Option<ExtractorRef<K, V>>,
    pub(crate) offset_reset: Option<OffsetReset>,
    pub(crate) deserialization: Option<streams_core::ErrorHandling>,
}

impl<K, V> Clone for Consumed<K, V> {
    fn clone(&self) -> Self {
        Self {
            key: Arc::clone(&self.key),
            value: Arc::clone(&self.value),
            name: self.name.clone(),
            extractor: self.extractor.clone(),
            offset_reset: self.offset_reset,
            deserialization: self.deserialization.clone(),
        }
    }
}

impl<K, V> fmt::Debug for Consumed<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumed").field("name", &self.name).field("extractor", &self.extractor.is_some()).finish()
    }
}

impl<K: Data, V: Data> Consumed<K, V> {
    /// Read keys and values with these serdes.
    pub fn with(key_serde: impl Serde<Target = K>, value_serde: impl Serde<Target = V>) -> Self {
        Self {
            key: Arc::new(key_serde),
            value: Arc::new(value_serde),
            name: None,
            extractor: None,
            offset_reset: None,
            deserialization: None,
        }
    }

    /// Where to start reading partitions that have no committed offset.
    pub fn with_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.offset_reset = Some(reset);
        self
    }

    /// Take record timestamps from `extractor` (it sees the record with the
    /// timestamp Kafka stored); a negative result stops with an error.
    pub fn with_timestamp_extractor(
        mut self,
        extractor: impl Fn(&Record<K, V>) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.extractor = Some(Arc::new(extractor));
        self
    }

    /// What happens to this source's records that cannot be deserialized
    /// (default: `default.deserialization.exception.handler`).
    pub fn with_deserialization_handling(mut self, handling: streams_core::ErrorHandling) -> Self {
        self.deserialization = Some(handling);
        self
    }

    /// Name the source node.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub(crate) fn add_source(&self, shared: &Shared, name: &str, topics: &[&str]) {
        if let Some(h) = self.deserialization.clone() {
            shared.add(|t| {
                t.set_deserialization_handling(topics, h);
                Ok(())
            });
        }
        if let Some(reset) = self.offset_reset {
            shared.add(|t| {
                t.set_offset_reset(topics, reset);
                Ok(())
            });
        }
        let (ks, vs) = (Arc::clone(&self.key), Arc::clone(&self.value));
        match &self.extractor {
            Some(f) => {
                let f = Arc::clone(f);
                shared.add(|t| t.add_source_with_timestamp_extractor(name, topics, ks, vs, move |r| f(r)).map(|_| ()))
            }
            None => shared.add(|t| t.add_source(name, topics, ks, vs).map(|_| ())),
        }
    }
}

impl<K: Data + DefaultSerde, V: Data + DefaultSerde> Default for Consumed<K, V> {
    fn default() -> Self {
        Self::with(K::Serde::default(), V::Serde::default())
    }
}

/// How a sink writes: serdes, and optionally a partitioner.
pub struct Produced<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) partitioner: Option<Arc<dyn Fn(&str, &K, &V, i32) -> Option<i32> + Send + Sync>>,
    pub(crate) name: Option<String>,
}

impl<K, V> fmt::Debug for Produced<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Produced").field("name", &self.name).field("partitioner", &self.partitioner.is_some()).finish()
    }
}

impl<K, V> Default for Produced<K, V> {
    /// The stream's own serdes.
    fn default() -> Self {
        Self { key: None, value: None, partitioner: None, name: None }
    }
}

impl<K: Data, V: Data> Produced<K, V> {
    /// Write with these serdes.
    pub fn with(key_serde: impl Serde<Target = K>, value_serde: impl Serde<Target = V>) -> Self {
        Self { key: Some(Arc::new(key_serde)), value: Some(Arc::new(value_serde)), partitioner: None, name: None }
    }

    /// Choose partitions: `(topic, key, value, partition count)` → partition,
    /// or `None` for the default (murmur2 of the key bytes).
    pub fn with_partitioner(mut self, f: impl Fn(&str, &K, &V, i32) -> Option<i32> + Send + Sync + 'static) -> Self {
        self.partitioner = Some(Arc::new(f));
        self
    }

    /// Name the sink node.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How records are grouped: serdes for the repartition topic and its name.
pub struct Grouped<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
}

impl<K, V> fmt::Debug for Grouped<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grouped").field("name", &self.name).finish()
    }
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        Self { key: None, value: None, name: None }
    }
}

impl<K: Data, V: Data> Grouped<K, V> {
    /// Group with these serdes.
    pub fn with(key_serde: impl Serde<Target = K>, value_serde: impl Serde<Target = V>) -> Self {
        Self { key: Some(Arc::new(key_serde)), value: Some(Arc::new(value_serde)), name: None }
    }

    /// Name the grouping (the repartition topic becomes `<app>-<name>-repartition`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// How and where a table or aggregation keeps its state.
pub struct Materialized<K, V> {
    pub(crate) name: Option<String>,
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) persistent: bool,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    pub(crate) retention: Option<Duration>,
}

impl<K, V> fmt::Debug for Materialized<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Materialized")
            .field("name", &self.name)
            .field("persistent", &self.persistent)
            .field("logging", &self.logging)
            .field("caching", &self.caching)
            .field("retention", &self.retention)
            .finish()
    }
}

impl<K, V> Default for Materialized<K, V> {
    /// A RocksDB store with a generated name, logged and cached, with the stream's serdes.
    fn default() -> Self {
        Self { name: None, key: None, value: None, persistent: true, logging: true, caching: true, retention: None }
    }
}

impl<K, V> Materialized<K, V> {
    /// These options for values of another type, kept with `value`.
    pub(crate) fn with_value_type<V2>(self, value: Option<SerdeRef<V2>>) -> Materialized<K, V2> {
        Materialized {
            name: self.name,
            key: self.key,
            value,
            persistent: self.persistent,
            logging: self.logging,
            caching: self.caching,
            retention: self.retention,
        }
    }

    /// These options, with `serde` for values unless they name one.
    pub(crate) fn or_value_serde(self, serde: Option<SerdeRef<V>>) -> Self {
        Self { value: self.value.or(serde), ..self }
    }

    /// The store's name: the one asked for, or a new `<prefix>-STATE-STORE-…`.
    pub(crate) fn store_name(&self, shared: &Shared, prefix: &str) -> String {
        self.name.clone().unwrap_or_else(|| shared.name(&format!("{prefix}-STATE-STORE")))
    }

    /// `builder` with the changelog and the record cache these options ask for.
    pub(crate) fn configure(&self, mut builder: StoreBuilder) -> StoreBuilder {
        if !self.logging {
            builder = builder.without_logging();
        }
        if self.caching {
            builder = builder.with_caching();
        }
        builder
    }
}

impl<K: Data, V: Data> Materialized<K, V> {
    /// A store named `name` (queryable by that name).
    pub fn as_store(name: impl Into<String>) -> Self {
        Self { name: Some(name.into()), ..Self::default() }
    }

    /// Store keys and values with these serdes.
    pub fn with(key_serde: impl Serde<Target = K>, value_serde: impl Serde<Target = V>) -> Self {
        Self { key: Some(Arc::new(key_serde)), value: Some(Arc::new(value_serde)), ..Self::default() }
    }

    /// Set the key serde.
    pub fn with_key_serde(mut self, serde: impl Serde<Target = K>) -> Self {
        self.key = Some(Arc::new(serde));
        self
    }

    /// Set the value serde.
    pub fn with_value_serde(mut self, serde: impl Serde<Target = V>) -> Self {
        self.value = Some(Arc::new(serde));
        self
    }

    /// Keep the store in memory instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.persistent = false;
        self
    }

    /// Do not back the store with a changelog topic.
    pub fn without_logging(mut self) -> Self {
        self.logging = false;
        self
    }

    /// Emit every update at once instead of one per key per commit (the
    /// record cache, on by default, as in Kafka Streams).
    pub fn without_caching(mut self) -> Self {
        self.caching = false;
        self
    }

    /// Keep windows this long (window stores; default: window size + grace).
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }
}

/// An explicit repartitioning: topic name and partition count.
pub struct Repartitioned<K, V> {
    pub(crate) key: Option<SerdeRef<K>>,
    pub(crate) value: Option<SerdeRef<V>>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K, V> fmt::Debug for Repartitioned<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repartitioned").field("name", &self.name).field("partitions", &self.partitions).finish()
    }
}

impl<K, V> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Self { key: None, value: None, name: None, partitions: None }
    }
}

impl<K: Data, V: Data> Repartitioned<K, V> {
    /// Repartition with these serdes.
    pub fn with(key_serde: impl Serde<Target = K>, value_serde: impl Serde<Target = V>) -> Self {
        Self { key: Some(Arc::new(key_serde)), value: Some(Arc::new(value_serde)), name: None, partitions: None }
    }

    /// Name the topic (`<app>-<name>-repartition`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Give the topic this many partitions (default: as many as the input).
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }
}
