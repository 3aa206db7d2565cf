//! Type erasure between the typed Processor API and the graph that runs it.
//!
//! Nodes of one topology forward records of different types. The engine moves
//! them as boxed values and each node downcasts to the types it was built
//! with; [`Topology`](crate::topology::Topology) checks at build time that a
//! parent's output types are its children's input types, so a downcast cannot
//! fail in a valid topology.

use std::any::{Any, TypeId};
use std::fmt;

use crate::error::ProcessorError;
use crate::record::Record;

/// A value that can be cloned and moved across threads without knowing its type.
pub(crate) trait AnyData: Send {
    fn clone_boxed(&self) -> Box<dyn AnyData>;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Clone + Send + 'static> AnyData for T {
    fn clone_boxed(&self) -> Box<dyn AnyData> {
        Box::new(self.clone())
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A boxed key or value.
pub(crate) struct Boxed(Box<dyn AnyData>);

impl Clone for Boxed {
    fn clone(&self) -> Self {
        // Deref to the trait object: calling clone_boxed on the Box itself
        // would box the box.
        Boxed((*self.0).clone_boxed())
    }
}

impl fmt::Debug for Boxed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<boxed>")
    }
}

impl Boxed {
    pub(crate) fn new<T: Clone + Send + 'static>(value: T) -> Self {
        Boxed(Box::new(value))
    }

    pub(crate) fn downcast<T: 'static>(self) -> Result<T, ProcessorError> {
        self.0.into_any().downcast::<T>().map(|b| *b).map_err(|_| {
            ProcessorError::Internal(format!("a record did not hold the expected {}", std::any::type_name::<T>()))
        })
    }
}

/// A record whose key and value types are erased.
pub(crate) type AnyRecord = Record<Boxed, Boxed>;

pub(crate) fn erase<K: Clone + Send + 'static, V: Clone + Send + 'static>(record: Record<K, V>) -> AnyRecord {
    let (k, v, ts, headers) = record.into_parts();
    Record::new(Boxed::new(k), Boxed::new(v), ts).with_headers(headers)
}

pub(crate) fn restore<K: 'static, V: 'static>(record: AnyRecord) -> Result<Record<K, V>, ProcessorError> {
    let (k, v, ts, headers) = record.into_parts();
    Ok(Record::new(k.downcast::<K>()?, v.downcast::<V>()?, ts).with_headers(headers))
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
