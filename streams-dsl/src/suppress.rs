//! `suppress`: hold back a windowed table's updates and emit exactly one
//! final result per window once stream time passes its end plus grace.

use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef};
use crate::ktable::{Change, KTable};

/// When suppressed updates are let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppressed {
    /// One final result per window, when stream time reaches window end + grace.
    UntilWindowCloses,
}

impl Suppressed {
    /// Kafka Streams' `Suppressed.untilWindowCloses(unbounded())`: the buffer
    /// holds every open window (in a changelogged store, so it survives restarts).
    pub fn until_window_closes() -> Self {
        Self::UntilWindowCloses
    }
}

/// Buffer keys sort by window end, then window start, then key bytes.
fn flip(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds updates back per `suppressed` (windowed tables only).
    pub fn suppress(&self, suppressed: Suppressed) -> Self {
        let Suppressed::UntilWindowCloses = suppressed;
        let grace = self.windowing.map_or(0, |w| w.grace_ms);
        let shared = self.shared.clone();
        let name = shared.name("KTABLE-SUPPRESS");
        let store = format!("{name}-STORE");
        let hint = "Materialized::with(key_serde, value_serde) on the aggregation";
        let ks = shared.need(&self.key_serde, &name, "key", hint);
        let vs = shared.need(&self.value_serde, &name, "value", hint);
        let (Some(ks), Some(vs)) = (ks, vs) else { return self.clone() };
        let store_for_proc = store.clone();
        let parent = self.node.clone();
        let (ks2, vs2) = (Arc::clone(&ks), Arc::clone(&vs));
        shared.add(|t| {
            t.add_processor(
                &name,
                move || SuppressProc {
                    store: store_for_proc.clone(),
                    grace,
                    key_serde: Arc::clone(&ks2),
                    value_serde: Arc::clone(&vs2),
                    buffer: None,
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
    grace: i64,
    key_serde: SerdeRef<Windowed<K>>,
    value_serde: SerdeRef<V>,
    buffer: Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>,
}

impl<K: Data, V: Data> SuppressProc<K, V> {
    fn buffer_key(&self, key: &Windowed<K>) -> Result<Vec<u8>, ProcessorError> {
        let mut out = Vec::with_capacity(32);
        out.extend_from_slice(&flip(key.window.end));
        out.extend_from_slice(&self.key_serde.serialize(&self.store, &mut Headers::new(), key)?.unwrap_or_default());
        Ok(out)
    }
}

impl<K: Data, V: Data> Processor<Windowed<K>, Change<V>> for SuppressProc<K, V> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>) -> Result<(), ProcessorError> {
        self.buffer = Some(ctx.key_value_store(&self.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<Windowed<K>, Change<V>>,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Change<V>>,
    ) -> Result<(), ProcessorError> {
        let buffer = self.buffer.clone().ok_or_else(|| ProcessorError::Internal("suppress used before init".into()))?;
        let key = self.buffer_key(r.key())?;
        // Value: [ts 8][has-value 1][value bytes].
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
        buffer.put(&key, &value)?;
        // Emit every window that closed: end + grace <= stream time.
        let stream_time = ctx.current_stream_time_ms();
        let upto = stream_time.saturating_sub(self.grace);
        let mut hi = flip(upto).to_vec();
        hi.extend_from_slice(&[0xff; 64]);
        for (k, v) in buffer.range(&Vec::new(), &hi)? {
            let end = unflip(&k).unwrap_or(i64::MAX);
            if end > upto {
                break;
            }
            buffer.delete(&k)?;
            let windowed = self.key_serde.deserialize(&self.store, &Headers::new(), Some(&k[8..]))?;
            let ts = v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map_or(0, i64::from_be_bytes);
            let new = match v.get(8) {
                Some(1) => Some(self.value_serde.deserialize(&self.store, &Headers::new(), Some(&v[9..]))?),
                _ => None,
            };
            ctx.forward(Record::new(windowed, Change { new, old: None }, ts))?;
        }
        Ok(())
    }
}
