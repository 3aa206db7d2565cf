//! The task engine: runs one task's nodes over records, depth-first, with its
//! stores, stream time and punctuation schedules. Shared by the test driver and
//! the Kafka runtime, so both process records the same way.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::erased::{AnySlot, NoSlot};
use crate::error::{ProcessorError, StreamsError};
use crate::processor::{ErasedProcessor, NodeContext, PunctuationType, ScheduleId};
use crate::record::RecordMetadata;
use crate::store::{ChangeLogging, StoreContext, StoreEntry};
use crate::topology::{DecodeError, NodeKind, PartitionCounts, RawRecord, Topology};

/// A task's id: sub-topology number and partition, printed `<sub>_<partition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology.
    pub subtopology: u32,
    /// The partition of the sub-topology's source topics.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// Where a task's sinks deliver their records.
pub(crate) trait RecordCollector {
    fn send(&mut self, record: RawRecord) -> Result<(), ProcessorError>;
    fn partition_count(&self, topic: &str) -> Option<i32>;
}

/// Partition counts by the name a sink uses (internal topics unprefixed).
struct Counts<'a>(&'a dyn RecordCollector, &'a InternalTopics);

impl PartitionCounts for Counts<'_> {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.partition_count(self.1.get(topic).map_or(topic, |t| &**t))
    }
}

/// Internal topic name → its name on the cluster, looked up for every
/// record a sink writes (hence a fast hasher).
type InternalTopics = foldhash::HashMap<String, Arc<str>>;

enum Slot {
    Source,
    Processor(RefCell<Box<dyn ErasedProcessor>>),
    Sink(Arc<dyn crate::topology::SinkEncoder>),
}

struct NodeSlot {
    name: String,
    slot: Slot,
    children: Vec<usize>,
    stores: Vec<String>,
}

#[derive(Debug)]
struct Schedule {
    id: ScheduleId,
    node: usize,
    kind: PunctuationType,
    interval: i64,
    next: i64,
}

#[derive(Debug, Default)]
struct ScheduleBook {
    schedules: Vec<Schedule>,
    next_id: u64,
}

impl ScheduleBook {
    fn add(&mut self, node: usize, kind: PunctuationType, interval: i64, next: i64) -> ScheduleId {
        let id = ScheduleId(self.next_id);
        self.next_id += 1;
        self.schedules.push(Schedule { id, node, kind, interval, next });
        id
    }

    fn cancel(&mut self, id: ScheduleId) {
        self.schedules.retain(|s| s.id != id);
    }

    /// The earliest due schedule of this kind: (id, node).
    fn next_due(&self, kind: PunctuationType, now: i64) -> Option<(ScheduleId, usize)> {
        self.schedules
            .iter()
            .filter(|s| s.kind == kind && s.next <= now)
            .min_by_key(|s| (s.next, s.id))
            .map(|s| (s.id, s.node))
    }

    /// Moves a schedule past `now`, skipping missed intervals rather than
    /// firing once per missed interval (as Kafka Streams does).
    fn reschedule(&mut self, id: ScheduleId, now: i64) {
        if let Some(s) = self.schedules.iter_mut().find(|s| s.id == id) {
            let missed = (now - s.next) / s.interval;
            s.next = s.next.saturating_add((missed + 1).saturating_mul(s.interval));
        }
    }
}

/// Mutable per-call state, disjoint from the nodes so that a node can run
/// while the context it forwards through is borrowed.
struct Exec<'a> {
    metadata: Option<RecordMetadata>,
    collector: &'a mut dyn RecordCollector,
    book: &'a mut ScheduleBook,
    stream_time: i64,
    wall_clock: i64,
    task_id: TaskId,
    application_id: &'a str,
    stores: &'a HashMap<String, StoreEntry>,
    dropped: &'a mut BTreeMap<&'static str, u64>,
    internal_topics: &'a InternalTopics,
    cache_max_bytes: u64,
}

struct Ctx<'e, 'a> {
    nodes: &'e [NodeSlot],
    exec: &'e mut Exec<'a>,
    node: usize,
}

/// Runs user code, turning a panic into a [`ProcessorError::Panic`].
fn catch_panic<T>(f: impl FnOnce() -> Result<T, ProcessorError>) -> Result<T, ProcessorError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(ProcessorError::from_panic(&*p)))
}

fn dispatch(
    nodes: &[NodeSlot],
    exec: &mut Exec<'_>,
    idx: usize,
    record: &mut dyn AnySlot,
) -> Result<(), ProcessorError> {
    let node = &nodes[idx];
    let result = match &node.slot {
        Slot::Processor(cell) => {
            let mut processor = cell
                .try_borrow_mut()
                .map_err(|_| ProcessorError::Internal(format!("node `{}` re-entered while processing", node.name)))?;
            // A panic in user code is caught where it arose, so that the
            // error names this node; the nodes above see an ordinary error.
            catch_panic(|| processor.process(record, &mut Ctx { nodes, exec, node: idx }))
        }
        Slot::Sink(encoder) => catch_panic(|| {
            encoder.encode(record, exec.metadata.as_ref(), &Counts(&*exec.collector, exec.internal_topics))
        })
        .and_then(|mut raw| {
            if let Some(full) = exec.internal_topics.get(&*raw.topic) {
                raw.topic = Arc::clone(full);
            }
            exec.collector.send(raw)
        }),
        Slot::Source => forward(nodes, exec, idx, record, None),
    };
    result.map_err(|e| match e {
        e @ ProcessorError::InNode { .. } => e,
        e => ProcessorError::InNode { node: node.name.clone(), source: Box::new(e) },
    })
}

fn forward(
    nodes: &[NodeSlot],
    exec: &mut Exec<'_>,
    from: usize,
    record: &mut dyn AnySlot,
    only: Option<&str>,
) -> Result<(), ProcessorError> {
    let children = &nodes[from].children;
    if let Some(name) = only {
        let child = children.iter().copied().find(|&c| nodes[c].name == name).ok_or_else(|| {
            ProcessorError::UnknownChild { processor: nodes[from].name.clone(), child: name.to_owned() }
        })?;
        return dispatch(nodes, exec, child, record);
    }
    // Copied for all children but the last, which takes the record itself.
    if let Some((&last, rest)) = children.split_last() {
        for &child in rest {
            dispatch(nodes, exec, child, &mut *record.fork())?;
        }
        dispatch(nodes, exec, last, record)?;
    }
    Ok(())
}

impl NodeContext for Ctx<'_, '_> {
    fn node_name(&self) -> &str {
        &self.nodes[self.node].name
    }

    fn forward(&mut self, record: &mut dyn AnySlot, child: Option<&str>) -> Result<(), ProcessorError> {
        forward(self.nodes, self.exec, self.node, record, child)
    }

    fn metadata(&self) -> Option<&RecordMetadata> {
        self.exec.metadata.as_ref()
    }

    fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> ScheduleId {
        let first = match kind {
            // Aligned to 0: fires on the first record.
            PunctuationType::StreamTime => 0,
            PunctuationType::WallClockTime => self.exec.wall_clock.saturating_add(interval_ms),
        };
        self.exec.book.add(self.node, kind, interval_ms, first)
    }

    fn cancel(&mut self, schedule: ScheduleId) {
        self.exec.book.cancel(schedule)
    }

    fn stream_time(&self) -> i64 {
        self.exec.stream_time
    }

    fn wall_clock_time(&self) -> i64 {
        self.exec.wall_clock
    }

    fn task_id(&self) -> TaskId {
        self.exec.task_id
    }

    fn application_id(&self) -> &str {
        self.exec.application_id
    }

    fn cache_max_bytes(&self) -> u64 {
        self.exec.cache_max_bytes
    }

    fn key_value_store_entry(&self, name: &str) -> Result<&StoreEntry, ProcessorError> {
        let node = &self.nodes[self.node];
        let denied = |reason: &str| ProcessorError::StoreAccess {
            processor: node.name.clone(),
            store: name.to_owned(),
            reason: reason.to_owned(),
        };
        if !node.stores.iter().any(|s| s == name) {
            return Err(denied(
                "the store is not connected to this processor (add_state_store / connect_processor_and_state_stores)",
            ));
        }
        self.exec.stores.get(name).ok_or_else(|| denied("the store does not exist in this task"))
    }

    fn count_dropped(&mut self, reason: &'static str) {
        *self.exec.dropped.entry(reason).or_insert(0) += 1;
    }
}

/// A source topic of a task, its source node and its decoder.
struct SourceEntry {
    topic: Arc<str>,
    node: usize,
    decoder: Arc<dyn crate::topology::SourceDecoder>,
    /// Where the decoder puts each record, reused (made by the first
    /// record): lent to the source node while the record is forwarded.
    slot: Box<dyn AnySlot>,
}

/// One task: its own processor instances and stores, its stream time and schedules.
pub(crate) struct TaskEngine {
    id: TaskId,
    application_id: String,
    nodes: Vec<NodeSlot>,
    /// Source topic → its source node and decoder. A task reads one to a
    /// few topics: finding one by comparing names costs less per record than
    /// hashing the (long) name.
    decoders: Vec<SourceEntry>,
    stores: HashMap<String, StoreEntry>,
    book: ScheduleBook,
    stream_time: i64,
    dropped: BTreeMap<&'static str, u64>,
    /// Internal topic name → its name on the cluster.
    internal_topics: InternalTopics,
    cache_max_bytes: u64,
    /// The change-logging layer of each logged store.
    changelogs: Vec<ChangeLogging>,
    /// Stores another owner (the global thread) commits and closes.
    shared: Vec<String>,
}

impl fmt::Debug for TaskEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskEngine").field("id", &self.id).field("stream_time", &self.stream_time).finish()
    }
}

/// Stream time before any record: unknown.
pub(crate) const UNKNOWN_TIME: i64 = -1;

impl TaskEngine {
    /// Builds the nodes of `node_ids` (all nodes when `None`) with fresh
    /// processor and store instances, and initialises the processors.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        topology: &Topology,
        node_ids: Option<&[usize]>,
        shared_stores: &HashMap<String, StoreEntry>,
        id: TaskId,
        application_id: &str,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
        store_context: &StoreContext,
    ) -> Result<Self, StreamsError> {
        let all: Vec<usize> = (0..topology.nodes.len()).collect();
        let ids = node_ids.unwrap_or(&all);
        let position: HashMap<usize, usize> = ids.iter().enumerate().map(|(pos, &i)| (i, pos)).collect();
        let mut nodes = Vec::with_capacity(ids.len());
        let mut decoders: Vec<SourceEntry> = Vec::new();
        let mut store_names = Vec::new();
        for &i in ids {
            let def = &topology.nodes[i];
            let slot = match &def.kind {
                NodeKind::Source { topics, decoder } => {
                    for t in topics {
                        let topic = topology.resolve_topic(application_id, t);
                        decoders.retain(|d| *d.topic != *topic);
                        decoders.push(SourceEntry {
                            topic: topic.into(),
                            node: nodes.len(),
                            decoder: Arc::clone(decoder),
                            slot: Box::new(NoSlot),
                        });
                    }
                    Slot::Source
                }
                NodeKind::Processor { factory } => Slot::Processor(RefCell::new(factory())),
                NodeKind::Sink { encoder, .. } => Slot::Sink(Arc::clone(encoder)),
            };
            store_names.extend(def.stores.iter().cloned());
            nodes.push(NodeSlot {
                name: def.name.clone(),
                slot,
                children: def.children.iter().filter_map(|c| position.get(c).copied()).collect(),
                stores: def.stores.clone(),
            });
        }
        let mut stores = HashMap::new();
        let mut changelogs = Vec::new();
        let mut shared = Vec::new();
        let global: Vec<&str> = topology.global_stores().collect();
        for builder in &topology.stores {
            if let Some(entry) = shared_stores.get(builder.name()) {
                if store_names.iter().any(|s| s == builder.name()) {
                    stores.insert(builder.name().to_owned(), entry.clone());
                    shared.push(builder.name().to_owned());
                }
                continue;
            }
            if store_names.iter().any(|s| s == builder.name()) {
                let changelog = format!("{application_id}-{}-changelog", builder.name());
                let entry = builder.build(store_context, changelog.clone())?;
                // Global stores are restored from their source topic, not logged.
                if !global.contains(&builder.name()) {
                    changelogs.extend(builder.change_logging(&entry, changelog.into(), id.partition, store_context));
                }
                stores.insert(builder.name().to_owned(), entry);
            }
        }
        let mut engine = Self {
            id,
            application_id: application_id.to_owned(),
            nodes,
            decoders,
            stores,
            book: ScheduleBook::default(),
            stream_time: UNKNOWN_TIME,
            dropped: BTreeMap::new(),
            internal_topics: topology
                .internal_topics()
                .map(|t| (t.name.clone(), topology.resolve_topic(application_id, &t.name).into()))
                .collect(),
            cache_max_bytes: store_context.cache_max_bytes,
            changelogs,
            shared,
        };
        engine.init(collector, wall_clock)?;
        Ok(engine)
    }

    fn exec<'a>(
        &'a mut self,
        collector: &'a mut dyn RecordCollector,
        metadata: Option<RecordMetadata>,
        wall_clock: i64,
    ) -> (&'a [NodeSlot], Exec<'a>) {
        let exec = Exec {
            metadata,
            collector,
            book: &mut self.book,
            stream_time: self.stream_time,
            wall_clock,
            task_id: self.id,
            application_id: &self.application_id,
            stores: &self.stores,
            dropped: &mut self.dropped,
            internal_topics: &self.internal_topics,
            cache_max_bytes: self.cache_max_bytes,
        };
        (&self.nodes, exec)
    }

    fn init(&mut self, collector: &mut dyn RecordCollector, wall_clock: i64) -> Result<(), StreamsError> {
        let (nodes, mut exec) = self.exec(collector, None, wall_clock);
        for (idx, node) in nodes.iter().enumerate() {
            if let Slot::Processor(cell) = &node.slot {
                let mut processor = cell.borrow_mut();
                catch_panic(|| processor.init(&mut Ctx { nodes, exec: &mut exec, node: idx })).map_err(|e| {
                    StreamsError::Processing {
                        metadata: None,
                        source: ProcessorError::InNode { node: node.name.clone(), source: Box::new(e) },
                    }
                })?;
            }
        }
        Ok(())
    }

    /// The largest record timestamp processed, or [`UNKNOWN_TIME`].
    pub(crate) fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// The topics this task's sources read.
    pub(crate) fn reads(&self, topic: &str) -> bool {
        self.decoders.iter().any(|d| &*d.topic == topic)
    }

    pub(crate) fn store(&self, name: &str) -> Option<&StoreEntry> {
        self.stores.get(name)
    }

    /// Decodes and processes one record read from a source topic, then fires
    /// the stream-time punctuators that became due.
    pub(crate) fn process(
        &mut self,
        raw: RawRecord,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), StreamsError> {
        self.process_record(raw, collector, wall_clock).map_err(|failed| failed.0)
    }

    /// As [`process`](Self::process), giving the record back with the error,
    /// for error handlers that skip or dead-letter it.
    pub(crate) fn process_record(
        &mut self,
        raw: RawRecord,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), Box<(StreamsError, RawRecord)>> {
        let Some(at) = self.decoders.iter().position(|d| d.topic == raw.topic) else {
            return Err(Box::new((StreamsError::UnknownTopic(raw.topic.to_string()), raw)));
        };
        let entry = &mut self.decoders[at];
        let (source, decoder) = (entry.node, &entry.decoder);
        let metadata = RecordMetadata {
            topic: Arc::clone(&entry.topic),
            partition: raw.partition.unwrap_or(0),
            offset: raw.offset.unwrap_or(-1),
        };
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decoder.decode(&raw, &mut entry.slot)))
            .unwrap_or_else(|p| {
                let message = format!("the deserializer panicked: {}", crate::error::panic_message(&*p));
                Err(DecodeError::Serde(crate::serde::SerdeError::custom(&raw.topic, message)))
            });
        let ts = match decoded {
            Ok(ts) => ts,
            Err(DecodeError::Serde(source)) => {
                return Err(Box::new((StreamsError::Deserialization { metadata, source }, raw)))
            }
            Err(DecodeError::InvalidTimestamp(timestamp)) => {
                return Err(Box::new((StreamsError::InvalidTimestamp { metadata, timestamp }, raw)))
            }
        };
        self.stream_time = self.stream_time.max(ts);
        // Lent out while the record is forwarded: the engine is borrowed
        // whole meanwhile (the placeholder is a box of nothing, no allocation).
        let mut slot = std::mem::replace(&mut entry.slot, Box::new(NoSlot));
        // The metadata goes into the processors' context and comes back out
        // for an error: one copy of the topic name per record, not two.
        let (nodes, mut exec) = self.exec(collector, Some(metadata), wall_clock);
        let forwarded = forward(nodes, &mut exec, source, &mut *slot, None);
        let metadata = exec.metadata.take();
        slot.clear();
        self.decoders[at].slot = slot;
        let result = forwarded
            .and_then(|()| self.ship_changes(collector, ts, false))
            .map_err(|source| StreamsError::Processing { metadata, source });
        if let Err(e) = result {
            return Err(Box::new((e, raw)));
        }
        self.punctuate_stream_time(collector, wall_clock).map_err(|e| Box::new((e, raw)))
    }

    /// Sends the stores' pending writes to their changelog topics, on this
    /// task's partition, with the timestamp of what caused them. A caching
    /// store's writes are held, one per key, until `flush` (a commit) or
    /// until they outgrow the cache budget.
    fn ship_changes(
        &mut self,
        collector: &mut dyn RecordCollector,
        timestamp: i64,
        flush: bool,
    ) -> Result<(), ProcessorError> {
        let budget = self.cache_max_bytes;
        self.changelogs.iter_mut().try_for_each(|log| log.send(collector, timestamp, flush, budget))
    }

    /// Fires due stream-time punctuators (none before the first record).
    pub(crate) fn punctuate_stream_time(
        &mut self,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), StreamsError> {
        if self.stream_time == UNKNOWN_TIME {
            return Ok(());
        }
        let now = self.stream_time;
        self.punctuate(PunctuationType::StreamTime, now, collector, wall_clock)
    }

    /// Fires due wall-clock punctuators.
    pub(crate) fn punctuate_wall_clock(
        &mut self,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), StreamsError> {
        self.punctuate(PunctuationType::WallClockTime, wall_clock, collector, wall_clock)
    }

    fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
        collector: &mut dyn RecordCollector,
        wall_clock: i64,
    ) -> Result<(), StreamsError> {
        let (nodes, mut exec) = self.exec(collector, None, wall_clock);
        while let Some((id, node)) = exec.book.next_due(kind, now) {
            // Reschedule first so that a punctuator may cancel its own schedule.
            exec.book.reschedule(id, now);
            let slot = &nodes[node];
            if let Slot::Processor(cell) = &slot.slot {
                let mut processor = cell.try_borrow_mut().map_err(|_| StreamsError::Processing {
                    metadata: None,
                    source: ProcessorError::Internal("punctuator re-entered".into()),
                })?;
                catch_panic(|| processor.punctuate(id, now, &mut Ctx { nodes, exec: &mut exec, node })).map_err(
                    |e| StreamsError::Processing {
                        metadata: None,
                        source: match e {
                            e @ ProcessorError::InNode { .. } => e,
                            e => ProcessorError::InNode { node: slot.name.clone(), source: Box::new(e) },
                        },
                    },
                )?;
            }
        }
        self.ship_changes(collector, now, false).map_err(|source| StreamsError::Processing { metadata: None, source })
    }

    /// Lets every processor forward what it held back (caches), upstream first.
    pub(crate) fn flush(&mut self, collector: &mut dyn RecordCollector, wall_clock: i64) -> Result<(), StreamsError> {
        let (nodes, mut exec) = self.exec(collector, None, wall_clock);
        for (idx, node) in nodes.iter().enumerate() {
            if let Slot::Processor(cell) = &node.slot {
                let mut processor = cell.try_borrow_mut().map_err(|_| StreamsError::Processing {
                    metadata: None,
                    source: ProcessorError::Internal("flush re-entered a processor".into()),
                })?;
                catch_panic(|| processor.flush(&mut Ctx { nodes, exec: &mut exec, node: idx })).map_err(|e| {
                    StreamsError::Processing {
                        metadata: None,
                        source: match e {
                            e @ ProcessorError::InNode { .. } => e,
                            e => ProcessorError::InNode { node: node.name.clone(), source: Box::new(e) },
                        },
                    }
                })?;
            }
        }
        let now = self.stream_time;
        self.ship_changes(collector, now, true).map_err(|source| StreamsError::Processing { metadata: None, source })
    }

    /// Records dropped on purpose by processors, by reason.
    pub(crate) fn dropped_records(&self) -> &BTreeMap<&'static str, u64> {
        &self.dropped
    }

    /// Commits every store's open batch (no changelog offset: the test driver
    /// and at-least-once paths without logging).
    pub(crate) fn commit_stores(&mut self) -> Result<(), StreamsError> {
        self.commit_stores_at(&HashMap::new()).map(|_| ())
    }

    /// Commits every owned store's open batch; a logged store stores the
    /// offset its changelog partition reached (`reached`: the next offset to
    /// read, by topic and partition, of what a commit wrote) as its
    /// checkpoint in the same write. Says whether any store took a checkpoint.
    pub(crate) fn commit_stores_at(&mut self, reached: &HashMap<(String, i32), i64>) -> Result<bool, StreamsError> {
        let mut checkpointed = false;
        for (name, store) in &self.stores {
            if self.shared.contains(name) {
                continue;
            }
            let offset = self.changelogs.iter().find(|c| c.store().name() == name).and_then(|c| c.reached(reached));
            checkpointed |= offset.is_some();
            store.commit(offset)?;
        }
        Ok(checkpointed)
    }

    /// Drops every owned store's open batch, and writes not yet logged.
    pub(crate) fn abort_stores(&mut self) {
        for (name, store) in &self.stores {
            if !self.shared.contains(name) {
                store.abort();
            }
        }
        for log in &mut self.changelogs {
            log.abort();
        }
    }

    /// The stores this task owns (not the global ones), by name.
    /// The task this engine runs.
    pub(crate) fn id(&self) -> TaskId {
        self.id
    }

    pub(crate) fn owned_stores(&self) -> impl Iterator<Item = (&str, &StoreEntry)> + '_ {
        self.stores.iter().filter(|(name, _)| !self.shared.contains(name)).map(|(n, s)| (n.as_str(), s))
    }

    /// The logged stores and their changelog topics.
    pub(crate) fn changelogs(&self) -> impl Iterator<Item = (&StoreEntry, &str)> + '_ {
        self.changelogs.iter().map(|c| (c.store(), c.topic()))
    }

    /// Closes every processor, then every store; reports the first error.
    pub(crate) fn close(&mut self) -> Result<(), StreamsError> {
        let mut first: Option<StreamsError> = None;
        for node in &self.nodes {
            if let Slot::Processor(cell) = &node.slot {
                if let Err(e) = catch_panic(|| cell.borrow_mut().close()) {
                    first.get_or_insert(StreamsError::Processing {
                        metadata: None,
                        source: ProcessorError::InNode { node: node.name.clone(), source: Box::new(e) },
                    });
                }
            }
        }
        for (name, store) in &self.stores {
            if self.shared.contains(name) {
                continue;
            }
            if let Err(e) = store.close() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}
