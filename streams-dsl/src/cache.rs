//! The record cache of materialized tables: between commits, updates of one
//! key collapse into one, emitted at the next commit (or when the cache is
//! full) with the value the key had before the first of them, as Kafka
//! Streams' caching stores do.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;
use streams_core::prelude::*;

use crate::builder::Data;
use crate::ktable::Change;

/// Computes a key's identity in the cache (its serialized bytes).
pub(crate) type Identity<K> = Arc<dyn Fn(&K) -> Vec<u8> + Send + Sync>;

struct Pending<K, V> {
    key: K,
    id: Vec<u8>,
    change: Change<V>,
    ts: i64,
    headers: Headers,
}

/// Forwards table updates now, or holds them until flush when caching is on.
pub(crate) struct Forwarder<K, V> {
    wanted: bool,
    identity: Identity<K>,
    max_bytes: u64,
    bytes: u64,
    index: HashMap<Vec<u8>, u64>,
    /// In order of last update, as the cache's dirty list.
    entries: BTreeMap<u64, Pending<K, V>>,
    next: u64,
}

const ENTRY_OVERHEAD: u64 = 64;

impl<K: Data, V: Data> Forwarder<K, V> {
    pub(crate) fn new(caching: bool, identity: Identity<K>) -> Self {
        Self {
            wanted: caching,
            identity,
            max_bytes: 0,
            bytes: 0,
            index: HashMap::default(),
            entries: BTreeMap::new(),
            next: 0,
        }
    }

    /// Takes the task's cache budget (0: no caching).
    pub(crate) fn init<KO, VO>(&mut self, ctx: &ProcessorContext<'_, KO, VO>) {
        self.max_bytes = if self.wanted { ctx.cache_max_bytes() } else { 0 };
    }

    fn forward(ctx: &mut ProcessorContext<'_, K, Change<V>>, p: Pending<K, V>) -> Result<(), ProcessorError> {
        if p.change.new.is_none() && p.change.old.is_none() {
            return Ok(());
        }
        ctx.forward(Record::new(p.key, p.change, p.ts).with_headers(p.headers))
    }

    pub(crate) fn send(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Change<V>>,
        key: K,
        mut change: Change<V>,
        ts: i64,
        headers: Headers,
    ) -> Result<(), ProcessorError> {
        if self.max_bytes == 0 {
            return ctx.forward(Record::new(key, change, ts).with_headers(headers));
        }
        let id = (self.identity)(&key);
        if let Some(seq) = self.index.remove(&id) {
            if let Some(earlier) = self.entries.remove(&seq) {
                // The downstream has not seen the earlier update: keep its old value.
                change.old = earlier.change.old;
                self.bytes = self.bytes.saturating_sub(earlier.id.len() as u64 + ENTRY_OVERHEAD);
            }
        }
        self.bytes += id.len() as u64 + ENTRY_OVERHEAD;
        self.index.insert(id.clone(), self.next);
        self.entries.insert(self.next, Pending { key, id, change, ts, headers });
        self.next += 1;
        while self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.entries.pop_first() else { break };
            self.index.remove(&oldest.id);
            self.bytes = self.bytes.saturating_sub(oldest.id.len() as u64 + ENTRY_OVERHEAD);
            Self::forward(ctx, oldest)?;
        }
        Ok(())
    }

    pub(crate) fn flush(&mut self, ctx: &mut ProcessorContext<'_, K, Change<V>>) -> Result<(), ProcessorError> {
        self.index.clear();
        self.bytes = 0;
        for (_, p) in std::mem::take(&mut self.entries) {
            Self::forward(ctx, p)?;
        }
        Ok(())
    }
}

/// A cache identity from a key serde.
pub(crate) fn identity_of<K: 'static>(serde: Option<crate::builder::SerdeRef<K>>) -> Identity<K> {
    Arc::new(move |k: &K| {
        serde.as_ref().and_then(|s| s.serialize("", &mut Headers::new(), k).ok().flatten()).unwrap_or_default()
    })
}
