//! Type erasure between the typed Processor API and the graph that runs it.
//!
//! Nodes of one topology forward records of different types. The engine moves
//! them in type-erased slots and each node downcasts to the types it was
//! built with; [`Topology`](crate::topology::Topology) checks at build time that a
//! parent's output types are its children's input types, so a downcast cannot
//! fail in a valid topology.

use std::any::{Any, TypeId};
use std::fmt;

use crate::error::ProcessorError;
use crate::record::Record;

/// A record of erased type on its way from one node to the next.
///
/// The sender keeps the record on its stack (or, for a source, in a slot of
/// its own reused for every record) and lends it out; the receiver takes it.
/// Erasing a record costs no allocation: a hop used to box its key and
/// value (two allocations and two frees per record per hop, ~4% of word
/// count's CPU).
pub(crate) trait AnySlot: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    /// A new slot holding a copy of this one's record, for every child of a
    /// node but the last, which takes the record itself.
    fn fork(&self) -> Box<dyn AnySlot>;
    /// Drops a record nobody took (the forward failed before it got there).
    fn clear(&mut self);
}

/// The slot of a record of key `K` and value `V`.
pub(crate) struct Slot<K, V>(pub(crate) Option<Record<K, V>>);

impl<K: Clone + Send + 'static, V: Clone + Send + 'static> AnySlot for Slot<K, V> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn fork(&self) -> Box<dyn AnySlot> {
        Box::new(Slot(self.0.clone()))
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// Takes the record out of `slot`, which must hold one of these types.
pub(crate) fn take<K: 'static, V: 'static>(slot: &mut dyn AnySlot) -> Result<Record<K, V>, ProcessorError> {
    slot.as_any().downcast_mut::<Slot<K, V>>().and_then(|s| s.0.take()).ok_or_else(|| {
        ProcessorError::Internal(format!(
            "a record did not hold the expected key {} and value {}",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        ))
    })
}

/// The placeholder of a slot lent out (a box of a zero-sized type: no allocation).
pub(crate) struct NoSlot;

impl AnySlot for NoSlot {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn fork(&self) -> Box<dyn AnySlot> {
        Box::new(NoSlot)
    }

    fn clear(&mut self) {}
}

/// The key and value types a node takes or forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DataTypes {
    key: TypeId,
    value: TypeId,
    key_name: &'static str,
    value_name: &'static str,
}

impl DataTypes {
    pub(crate) fn of<K: 'static, V: 'static>() -> Self {
        Self {
            key: TypeId::of::<K>(),
            value: TypeId::of::<V>(),
            key_name: std::any::type_name::<K>(),
            value_name: std::any::type_name::<V>(),
        }
    }

    pub(crate) fn matches(&self, other: &DataTypes) -> bool {
        self.key == other.key && self.value == other.value
    }
}

impl fmt::Display for DataTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key {}, value {}", self.key_name, self.value_name)
    }
}
