//! The builder that every stream and table of one topology shares.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use streams_core::serde::Serde;
use streams_core::{Topology, TopologyError};

use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::options::{Consumed, Materialized};

/// A serde behind a shared pointer, as the DSL passes them around.
pub type SerdeRef<T> = Arc<dyn Serde<Target = T>>;

/// What keys and values must be: cloneable (a record forwarded to several
/// children is cloned) and movable between threads.
pub trait Data: Clone + Send + 'static {}

impl<T: Clone + Send + 'static> Data for T {}

/// Why a DSL topology could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DslError {
    /// The underlying topology refused a node or store.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// An operator needs a serde the stream does not know (its key or value
    /// type changed upstream).
    #[error("{operator} needs a {what} serde for {type_name}; the stream lost it when a map changed the type. Pass one with {hint}")]
    MissingSerde {
        /// The operator.
        operator: String,
        /// "key" or "value".
        what: &'static str,
        /// The Rust type.
        type_name: &'static str,
        /// Which option carries it.
        hint: &'static str,
    },
}

pub(crate) struct Inner {
    pub(crate) topology: Topology,
    index: usize,
    error: Option<DslError>,
}

/// The state shared by a builder and all the streams and tables made from it.
#[derive(Clone)]
pub(crate) struct Shared(Rc<RefCell<Inner>>);

impl Shared {
    /// A new node name in Kafka Streams' style: `PREFIX-0000000007`.
    pub(crate) fn name(&self, prefix: &str) -> String {
        let mut inner = self.0.borrow_mut();
        let n = format!("{prefix}-{:010}", inner.index);
        inner.index += 1;
        n
    }

    /// Runs a topology change, remembering the first error.
    pub(crate) fn add(&self, f: impl FnOnce(&mut Topology) -> Result<(), TopologyError>) {
        let mut inner = self.0.borrow_mut();
        if inner.error.is_some() {
            return;
        }
        if let Err(e) = f(&mut inner.topology) {
            inner.error = Some(e.into());
        }
    }

    pub(crate) fn fail(&self, error: DslError) {
        let mut inner = self.0.borrow_mut();
        inner.error.get_or_insert(error);
    }

    /// The serde if known; otherwise records a `MissingSerde` error.
    pub(crate) fn need<T>(
        &self,
        serde: &Option<SerdeRef<T>>,
        operator: &str,
        what: &'static str,
        hint: &'static str,
    ) -> Option<SerdeRef<T>> {
        if serde.is_none() {
            self.fail(DslError::MissingSerde {
                operator: operator.to_owned(),
                what,
                type_name: std::any::type_name::<T>(),
                hint,
            });
        }
        serde.clone()
    }
}

/// Builds a topology from typed streams and tables, as Kafka Streams'
/// `StreamsBuilder`.
pub struct StreamsBuilder {
    shared: Shared,
}

impl fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamsBuilder").field("topology", &self.shared.0.borrow().topology).finish()
    }
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self { shared: Shared(Rc::new(RefCell::new(Inner { topology: Topology::new(), index: 0, error: None }))) }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Adds a state store for Processor API processors that
    /// [`KStream::process`](crate::KStream::process) connects by name.
    pub fn add_state_store(&self, builder: streams_core::StoreBuilder) -> &Self {
        self.shared.add(|t| t.add_state_store(builder, &[]).map(|_| ()));
        self
    }

    /// A stream of the records of `topics`.
    pub fn stream<K: Data, V: Data>(&self, topics: &[&str], consumed: Consumed<K, V>) -> KStream<K, V> {
        let name = consumed.name.clone().unwrap_or_else(|| self.shared.name("KSTREAM-SOURCE"));
        consumed.add_source(&self.shared, &name, topics);
        KStream::new(self.shared.clone(), name, Some(consumed.key), Some(consumed.value), false)
    }

    /// A table of the latest value per key of `topic` (a changelog: a null
    /// value deletes the key; records with a null key are dropped and counted).
    /// `consumed` gives the serdes of non-null values.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        materialized: Materialized<K, V>,
    ) -> KTable<K, V> {
        KTable::from_topic(&self.shared, topic, consumed, materialized)
    }

    /// The topology built so far, or the first error met while building it.
    /// It can be called again (each call returns the topology as it is
    /// then); what is added to the builder afterwards is not in a topology
    /// already returned.
    pub fn build(&self) -> Result<Topology, DslError> {
        let inner = self.shared.0.borrow();
        if let Some(e) = inner.error.clone() {
            return Err(e);
        }
        // A copy: `build()` may be called again (to print `describe()`
        // before running, say), and every call gives the same topology.
        let topology = inner.topology.clone();
        topology.validate()?;
        Ok(topology)
    }
}
