//! The Processor API: user-written nodes and the context they run in.
//!
//! This is the low-level API, like Kafka Streams' `Processor` and
//! `ProcessorContext`: full control over forwarding, state stores and
//! punctuation. The typed DSL (`streams-dsl`) is built on it.

use std::marker::PhantomData;
use std::time::Duration;

use crate::erased::{AnySlot, Slot};
use crate::error::{ProcessorError, StreamsError};
use crate::record::{Record, RecordMetadata};
use crate::store::{
    KeyValueStoreHandle, SessionStoreHandle, StoreEntry, TimestampedKeyValueStoreHandle, WindowStoreHandle,
};
use crate::task_engine::TaskId;

/// A node that receives records of `(KIn, VIn)` and forwards `(KOut, VOut)`.
///
/// One instance runs per task (sub-topology × partition), created by the
/// supplier given to [`Topology::add_processor`](crate::topology::Topology::add_processor);
/// its methods are never called concurrently.
///
/// The context is passed to each call rather than kept: a processor that needs
/// a store takes its handle in [`init`](Processor::init) and keeps that.
pub trait Processor<KIn, VIn, KOut = KIn, VOut = VIn>: Send + 'static {
    /// Called once before the first record: take store handles, schedule punctuators.
    fn init(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessorError> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record, forwarding any number of results.
    fn process(
        &mut self,
        record: Record<KIn, VIn>,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessorError>;

    /// Called when a punctuator scheduled by this processor fires; `timestamp`
    /// is the current stream time or wall-clock time, per the schedule's type.
    fn punctuate(
        &mut self,
        schedule: ScheduleId,
        timestamp: i64,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
    ) -> Result<(), ProcessorError> {
        let _ = (schedule, timestamp, ctx);
        Ok(())
    }

    /// Called before every commit: forward whatever was held back since the
    /// last one (record caches). Upstream processors flush before downstream ones.
    fn flush(&mut self, ctx: &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), ProcessorError> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the task closes.
    fn close(&mut self) -> Result<(), ProcessorError> {
        Ok(())
    }
}

/// Which clock drives a punctuator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PunctuationType {
    /// Stream time: the largest record timestamp the task has seen. Fires as
    /// records arrive, never while no data flows. The first firing is at the
    /// first record (schedules are aligned to 0).
    StreamTime,
    /// Wall-clock (system) time; the first firing is one interval after scheduling.
    WallClockTime,
}

/// Identifies a punctuation schedule within a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleId(pub(crate) u64);

/// What the engine offers a running node. Implemented by the task engine;
/// hidden behind [`ProcessorContext`] so that users see no lifetimes but one.
pub(crate) trait NodeContext {
    fn node_name(&self) -> &str;
    fn forward(&mut self, record: &mut dyn AnySlot, child: Option<&str>) -> Result<(), ProcessorError>;
    fn metadata(&self) -> Option<&RecordMetadata>;
    fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> ScheduleId;
    fn cancel(&mut self, schedule: ScheduleId);
    fn stream_time(&self) -> i64;
    fn wall_clock_time(&self) -> i64;
    fn task_id(&self) -> TaskId;
    fn application_id(&self) -> &str;
    fn cache_max_bytes(&self) -> u64;
    fn key_value_store_entry(&self, name: &str) -> Result<&StoreEntry, ProcessorError>;
    fn count_dropped(&mut self, reason: &'static str);
}

/// What a processor can do while it runs: forward records, read where the
/// current record came from, schedule punctuators, use its state stores.
pub struct ProcessorContext<'c, KOut, VOut> {
    inner: &'c mut dyn NodeContext,
    _out: PhantomData<fn(KOut, VOut)>,
}

impl<KOut, VOut> std::fmt::Debug for ProcessorContext<'_, KOut, VOut> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessorContext")
            .field("node", &self.inner.node_name())
            .field("task", &self.inner.task_id())
            .field("metadata", &self.inner.metadata())
            .finish()
    }
}

impl<'c, KOut, VOut> ProcessorContext<'c, KOut, VOut>
where
    KOut: Clone + Send + 'static,
    VOut: Clone + Send + 'static,
{
    pub(crate) fn new(inner: &'c mut dyn NodeContext) -> Self {
        Self { inner, _out: PhantomData }
    }

    /// Sends `record` to every child, depth-first, before returning.
    pub fn forward(&mut self, record: Record<KOut, VOut>) -> Result<(), ProcessorError> {
        self.inner.forward(&mut Slot(Some(record)), None)
    }

    /// Sends `record` to the child named `child` only.
    pub fn forward_to(&mut self, child: &str, record: Record<KOut, VOut>) -> Result<(), ProcessorError> {
        self.inner.forward(&mut Slot(Some(record)), Some(child))
    }
}

impl<KOut, VOut> ProcessorContext<'_, KOut, VOut> {
    /// The name of the node running.
    pub fn node_name(&self) -> &str {
        self.inner.node_name()
    }

    /// Topic, partition and offset of the record being processed; `None` in a
    /// punctuation or in `init`.
    pub fn record_metadata(&self) -> Option<&RecordMetadata> {
        self.inner.metadata()
    }

    /// Schedules periodic calls of this processor's
    /// [`punctuate`](Processor::punctuate). Intervals below 1 ms are raised to 1 ms.
    pub fn schedule(&mut self, interval: Duration, kind: PunctuationType) -> ScheduleId {
        let ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
        self.inner.schedule(ms, kind)
    }

    /// Stops a schedule; unknown or already cancelled ids are ignored.
    pub fn cancel(&mut self, schedule: ScheduleId) {
        self.inner.cancel(schedule)
    }

    /// The task's stream time (largest record timestamp seen), or -1 before
    /// the first record.
    pub fn current_stream_time_ms(&self) -> i64 {
        self.inner.stream_time()
    }

    /// The wall-clock time as the task sees it (mocked in the test driver).
    pub fn current_system_time_ms(&self) -> i64 {
        self.inner.wall_clock_time()
    }

    /// The task this processor instance belongs to.
    pub fn task_id(&self) -> TaskId {
        self.inner.task_id()
    }

    /// The application's `application.id`.
    pub fn application_id(&self) -> &str {
        self.inner.application_id()
    }

    /// The record cache budget of the task (`statestore.cache.max.bytes`);
    /// 0 turns caching off.
    pub fn cache_max_bytes(&self) -> u64 {
        self.inner.cache_max_bytes()
    }

    fn store_access<T>(
        &self,
        name: &str,
        get: impl FnOnce(&StoreEntry) -> Result<T, StreamsError>,
    ) -> Result<T, ProcessorError> {
        let entry = self.inner.key_value_store_entry(name)?;
        get(entry).map_err(|e| ProcessorError::StoreAccess {
            processor: self.inner.node_name().to_owned(),
            store: name.to_owned(),
            reason: e.to_string(),
        })
    }

    /// A typed handle to a key-value store connected to this processor.
    ///
    /// Fails when the store does not exist, is not connected to this
    /// processor, or is of another kind or other key/value types.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStoreHandle<K, V>, ProcessorError> {
        self.store_access(name, StoreEntry::key_value::<K, V>)
    }

    /// A typed handle to a timestamped key-value store connected to this processor.
    pub fn timestamped_key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<TimestampedKeyValueStoreHandle<K, V>, ProcessorError> {
        self.store_access(name, StoreEntry::timestamped_key_value::<K, V>)
    }

    /// A typed handle to a window store connected to this processor.
    pub fn window_store<K: 'static, V: 'static>(&self, name: &str) -> Result<WindowStoreHandle<K, V>, ProcessorError> {
        self.store_access(name, |e| e.window::<K, V>(false))
    }

    /// A typed handle to a timestamped window store connected to this processor.
    pub fn timestamped_window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreHandle<K, V>, ProcessorError> {
        self.store_access(name, |e| e.window::<K, V>(true))
    }

    /// A typed handle to a session store connected to this processor.
    pub fn session_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<SessionStoreHandle<K, V>, ProcessorError> {
        self.store_access(name, StoreEntry::session::<K, V>)
    }

    /// Counts a record this processor dropped on purpose (a late record, a
    /// null key where one is needed) and logs it at debug level with `reason`.
    /// Nothing is dropped silently: the counts are in the task's metrics.
    pub fn record_dropped(&mut self, reason: &'static str) {
        let node = self.inner.node_name().to_owned();
        tracing::debug!(node = %node, reason, metadata = ?self.inner.metadata(), "record dropped");
        self.inner.count_dropped(reason);
    }
}

/// Marks the four types of an adapter without owning any of them.
type TypeMarker<KIn, VIn, KOut, VOut> = PhantomData<fn(KIn, VIn) -> (KOut, VOut)>;

/// Adapts a typed [`Processor`] to the engine's erased records.
pub(crate) struct ProcessorAdapter<P, KIn, VIn, KOut, VOut> {
    processor: P,
    _types: TypeMarker<KIn, VIn, KOut, VOut>,
}

impl<P, KIn, VIn, KOut, VOut> ProcessorAdapter<P, KIn, VIn, KOut, VOut> {
    pub(crate) fn new(processor: P) -> Self {
        Self { processor, _types: PhantomData }
    }
}

/// A processor with erased types, as the engine runs it.
pub(crate) trait ErasedProcessor: Send {
    fn init(&mut self, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError>;
    fn process(&mut self, record: &mut dyn AnySlot, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError>;
    fn punctuate(
        &mut self,
        schedule: ScheduleId,
        timestamp: i64,
        ctx: &mut dyn NodeContext,
    ) -> Result<(), ProcessorError>;
    fn flush(&mut self, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError>;
    fn close(&mut self) -> Result<(), ProcessorError>;
}

impl<P, KIn, VIn, KOut, VOut> ErasedProcessor for ProcessorAdapter<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
    KIn: 'static,
    VIn: 'static,
    KOut: Clone + Send + 'static,
    VOut: Clone + Send + 'static,
{
    fn init(&mut self, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError> {
        self.processor.init(&mut ProcessorContext::new(ctx))
    }

    fn process(&mut self, record: &mut dyn AnySlot, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError> {
        let record = crate::erased::take::<KIn, VIn>(record)?;
        self.processor.process(record, &mut ProcessorContext::new(ctx))
    }

    fn punctuate(
        &mut self,
        schedule: ScheduleId,
        timestamp: i64,
        ctx: &mut dyn NodeContext,
    ) -> Result<(), ProcessorError> {
        self.processor.punctuate(schedule, timestamp, &mut ProcessorContext::new(ctx))
    }

    fn flush(&mut self, ctx: &mut dyn NodeContext) -> Result<(), ProcessorError> {
        self.processor.flush(&mut ProcessorContext::new(ctx))
    }

    fn close(&mut self) -> Result<(), ProcessorError> {
        self.processor.close()
    }
}
