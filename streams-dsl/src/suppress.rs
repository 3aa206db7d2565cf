//! `suppress`: hold a table's updates back and let through only the latest
//! per key, once a time condition holds (window closed, time limit passed)
//! or the buffer is full.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef};
use crate::ktable::{Change, KTable};
use crate::window_close::WindowClose;

/// What a full suppression buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WhenFull {
    EmitEarly,
    ShutDown,
}

/// How much a suppression buffer may hold (Kafka Streams' `BufferConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferConfig {
    max_records: Option<u64>,
    max_bytes: Option<u64>,
    when_full: WhenFull,
}

impl BufferConfig {
    /// No bound (the buffer lives in a changelogged store).
    pub fn unbounded() -> Self {
        Self { max_records: None, max_bytes: None, when_full: WhenFull::ShutDown }
    }

    /// At most `n` keys; when full, the oldest are emitted early.
    pub fn max_records(n: u64) -> Self {
        Self { max_records: Some(n), max_bytes: None, when_full: WhenFull::EmitEarly }
    }

    /// At most `n` bytes of keys and values; when full, the oldest are emitted early.
    pub fn max_bytes(n: u64) -> Self {
        Self { max_records: None, max_bytes: Some(n), when_full: WhenFull::EmitEarly }
    }

    /// When full, emit the oldest entries before their time.
    pub fn emit_early_when_full(mut self) -> Self {
        self.when_full = WhenFull::EmitEarly;
        self
    }

    /// When full, stop processing with an error rather than emit early.
    pub fn shut_down_when_full(mut self) -> Self {
        self.when_full = WhenFull::ShutDown;
        self
    }
}

type TimeOf<K> = Arc<dyn Fn(&K, i64) -> i64 + Send + Sync>;

/// When suppressed updates are let through (Kafka Streams' `Suppressed`).
pub struct Suppressed<K> {
    time_of: TimeOf<K>,
    /// How long after its time an entry is due; `None`: when the windowed
    /// table's windows close.
    delay: Option<i64>,
    buffer: BufferConfig,
    name: Option<String>,
}

impl<K> fmt::Debug for Suppressed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suppressed")
            .field("delay", &self.delay)
            .field("buffer", &self.buffer)
            .field("name", &self.name)
            .finish()
    }
}

impl<K> Suppressed<K> {
    /// Emits a key's latest value once stream time is `limit` past the first
    /// update buffered for it.
    pub fn until_time_limit(limit: Duration, buffer: BufferConfig) -> Self {
        Self {
            time_of: Arc::new(|_, ts| ts),
            delay: Some(i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)),
            buffer,
            name: None,
        }
    }

    /// Names the suppression node.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl<K> Suppressed<Windowed<K>> {
    /// One final result per window, once stream time passes window end plus
    /// grace. `buffer` should be unbounded or shut down when full: emitting a
    /// window early would not be final.
    pub fn until_window_closes(buffer: BufferConfig) -> Self {
        Self {
            time_of: Arc::new(|k: &Windowed<K>, _| k.window.end),
            delay: None,
            buffer: buffer.shut_down_when_full(),
            name: None,
        }
    }
}

fn flip(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(bytes: &[u8]) -> i64 {
    let arr: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
    (u64::from_be_bytes(arr) ^ (1 << 63)) as i64
}

const BY_TIME: u8 = b't';
const BY_KEY: u8 = b'k';

impl<K: Data, V: Data> KTable<K, V> {
    /// Holds updates back as `suppressed` says.
    pub fn suppress(&self, suppressed: Suppressed<K>) -> Self {
        // A time limit is the window-close rule with the entry's time as the
        // window end and the limit as grace (Kafka Streams' suppressDuration).
        let due =
            suppressed.delay.map(WindowClose::after_grace).or(self.windowing).unwrap_or(WindowClose::after_grace(0));
        let shared = self.shared.clone();
        let name = suppressed.name.clone().unwrap_or_else(|| shared.name("KTABLE-SUPPRESS"));
        let store = format!("{name}-STORE");
        let hint = "Materialized::with(key_serde, value_serde) upstream";
        let ks = shared.need(&self.key_serde, &name, "key", hint);
        let vs = shared.need(&self.value_serde, &name, "value", hint);
        let (Some(ks), Some(vs)) = (ks, vs) else { return self.clone() };
        let parent = self.node.clone();
        let (store_for_proc, ks2, vs2) = (store.clone(), Arc::clone(&ks), Arc::clone(&vs));
        let (time_of, buffer) = (Arc::clone(&suppressed.time_of), suppressed.buffer);
        shared.add(|t| {
            t.add_processor(
                &name,
                move || SuppressProc {
                    store: store_for_proc.clone(),
                    due,
                    buffer,
                    time_of: Arc::clone(&time_of),
                    key_serde: Arc::clone(&ks2),
                    value_serde: Arc::clone(&vs2),
                    handle: None,
                    records: 0,
                    bytes: 0,
                    observed: i64::MIN,
                },
                &[&parent],
            )?;
            let builder: StoreBuilder =
                Stores::key_value_store_builder(Stores::in_memory_key_value_store(&store), BytesSerde, BytesSerde);
            t.add_state_store(builder, &[&name])?;
            Ok(())
        });
        KTable {
            shared,
            node: name,
            store: None,
            key_serde: Some(ks),
            value_serde: Some(vs),
            windowing: self.windowing,
        }
    }
}

struct SuppressProc<K, V> {
    store: String,
    /// When a buffered entry may be emitted.
    due: WindowClose,
    buffer: BufferConfig,
    time_of: TimeOf<K>,
    key_serde: SerdeRef<K>,
    value_serde: SerdeRef<V>,
    /// Entries `t|time|key → ts|flag|value` and `k|key → time`.
    handle: Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>,
    records: u64,
    bytes: u64,
    /// The largest timestamp among the updates received (Kafka Streams'
    /// `observedStreamTime`). Not the task's stream time: with caching
    /// upstream, the task may be far ahead of the updates still on their way.
    observed: i64,
}

impl<K: Data, V: Data> SuppressProc<K, V> {
    fn full(&self) -> bool {
        self.buffer.max_records.is_some_and(|m| self.records > m)
            || self.buffer.max_bytes.is_some_and(|m| self.bytes > m)
    }

    /// Emits and removes the oldest entry, if `due(time)` holds for it.
    fn emit_oldest(
        &mut self,
        buffer: &KeyValueStoreHandle<Vec<u8>, Vec<u8>>,
        due: impl Fn(i64) -> bool,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<bool, ProcessorError> {
        let lo = vec![BY_TIME];
        let hi = vec![BY_TIME, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        let Some((entry, value)) = buffer.range(&lo, &hi)?.into_iter().next() else { return Ok(false) };
        let malformed =
            || ProcessorError::Internal(format!("suppression buffer `{}` holds a malformed entry", self.store));
        let time = unflip(entry.get(1..).ok_or_else(malformed)?);
        if !due(time) {
            return Ok(false);
        }
        let key_bytes = entry.get(9..).ok_or_else(malformed)?.to_vec();
        buffer.delete(&entry)?;
        buffer.delete(&[&[BY_KEY][..], &key_bytes].concat())?;
        self.records = self.records.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub((key_bytes.len() + value.len()) as u64);
        let key = self.key_serde.deserialize(&self.store, &Headers::new(), Some(&key_bytes))?;
        let ts = value.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, i64::from_be_bytes);
        let new = match value.get(8) {
            Some(1) => Some(self.value_serde.deserialize(&self.store, &Headers::new(), Some(&value[9..]))?),
            _ => None,
        };
        ctx.forward(Record::new(key, Change { new, old: None }, ts))?;
        Ok(true)
    }
}

impl<K: Data, V: Data> Processor<K, Change<V>> for SuppressProc<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessorError> {
        let handle: KeyValueStoreHandle<Vec<u8>, Vec<u8>> = ctx.key_value_store(&self.store)?;
        // After a restart, count what the (restored) buffer holds.
        for (k, v) in handle.prefix_scan(&vec![BY_TIME])? {
            self.records += 1;
            self.bytes += (k.len().saturating_sub(9) + v.len()) as u64;
        }
        self.handle = Some(handle);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let buffer = self.handle.clone().ok_or_else(|| ProcessorError::Internal("suppress used before init".into()))?;
        let key_bytes = self.key_serde.serialize(&self.store, &mut Headers::new(), r.key())?.unwrap_or_default();
        let index_key = [&[BY_KEY][..], &key_bytes].concat();
        // A key keeps the time it entered the buffer; its value is replaced.
        let (time, replaced) = match buffer.get(&index_key)? {
            Some(t) => (unflip(&t), true),
            None => ((self.time_of)(r.key(), r.timestamp()), false),
        };
        let entry = [&[BY_TIME][..], &flip(time), &key_bytes].concat();
        let mut value = r.timestamp().to_be_bytes().to_vec();
        match &r.value().new {
            Some(v) => {
                value.push(1);
                value.extend_from_slice(
                    &self.value_serde.serialize(&self.store, &mut Headers::new(), v)?.unwrap_or_default(),
                );
            }
            None => value.push(0),
        }
        if replaced {
            if let Some(old) = buffer.get(&entry)? {
                self.bytes = self.bytes.saturating_sub((key_bytes.len() + old.len()) as u64);
            }
        } else {
            self.records += 1;
            buffer.put(&index_key, &flip(time).to_vec())?;
        }
        self.bytes += (key_bytes.len() + value.len()) as u64;
        buffer.put(&entry, &value)?;

        self.observed = self.observed.max(r.timestamp());
        let (stream_time, due) = (self.observed, self.due);
        while self.emit_oldest(&buffer, |t| due.is_due(t, stream_time), ctx)? {}
        while self.full() {
            match self.buffer.when_full {
                WhenFull::EmitEarly => {
                    if !self.emit_oldest(&buffer, |_| true, ctx)? {
                        break;
                    }
                }
                WhenFull::ShutDown => {
                    return Err(ProcessorError::user(format!(
                        "suppression buffer `{}` is full ({} records, {} bytes); raise its BufferConfig bound or let it emit early",
                        self.store, self.records, self.bytes
                    )))
                }
            }
        }
        Ok(())
    }
}
