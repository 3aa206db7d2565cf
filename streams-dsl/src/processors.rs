//! The processors behind the stateless operators and the stream–table join.

use std::sync::Arc;

use streams_core::prelude::*;

use crate::builder::Data;
use crate::ktable::ValueGetter;

/// Forwards records unchanged (merge points, branch children).
pub(crate) struct PassProc<K, V>(std::marker::PhantomData<fn(K, V)>);

impl<K, V> PassProc<K, V> {
    pub(crate) fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<K: Data, V: Data> Processor<K, V> for PassProc<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessorError> {
        ctx.forward(r)
    }
}

pub(crate) struct FilterProc<K, V> {
    pub(crate) predicate: Arc<dyn Fn(&K, &V) -> bool + Send + Sync>,
    pub(crate) keep_when: bool,
}

impl<K: Data, V: Data> Processor<K, V> for FilterProc<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessorError> {
        if (self.predicate)(r.key(), r.value()) == self.keep_when {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

pub(crate) struct MapProc<K, V, V2> {
    pub(crate) f: Arc<dyn Fn(&K, V) -> V2 + Send + Sync>,
}

impl<K: Data, V: Data, V2: Data> Processor<K, V, K, V2> for MapProc<K, V, V2> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V2>) -> Result<(), ProcessorError> {
        let (k, v, ts, headers) = r.into_parts();
        let v2 = (self.f)(&k, v);
        ctx.forward(Record::new(k, v2, ts).with_headers(headers))
    }
}

pub(crate) struct FlatMapProc<K, V, K2, V2> {
    pub(crate) f: Arc<dyn Fn(K, V) -> Vec<(K2, V2)> + Send + Sync>,
}

impl<K: Data, V: Data, K2: Data, V2: Data> Processor<K, V, K2, V2> for FlatMapProc<K, V, K2, V2> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K2, V2>) -> Result<(), ProcessorError> {
        let (k, v, ts, headers) = r.into_parts();
        for (k2, v2) in (self.f)(k, v) {
            ctx.forward(Record::new(k2, v2, ts).with_headers(headers.clone()))?;
        }
        Ok(())
    }
}

pub(crate) struct ForeachProc<K, V> {
    pub(crate) f: Arc<dyn Fn(&K, &V) + Send + Sync>,
    pub(crate) forward: bool,
}

impl<K: Data, V: Data> Processor<K, V> for ForeachProc<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessorError> {
        (self.f)(r.key(), r.value());
        if self.forward {
            ctx.forward(r)?;
        }
        Ok(())
    }
}

type Route<K, V> = (String, Arc<dyn Fn(&K, &V) -> bool + Send + Sync>);

pub(crate) struct BranchProc<K, V> {
    pub(crate) routes: Arc<Vec<Route<K, V>>>,
}

impl<K: Data, V: Data> Processor<K, V> for BranchProc<K, V> {
    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, V>) -> Result<(), ProcessorError> {
        let routes = Arc::clone(&self.routes);
        for (child, predicate) in routes.iter() {
            if predicate(r.key(), r.value()) {
                return ctx.forward_to(child, r);
            }
        }
        ctx.record_dropped("no branch matched");
        Ok(())
    }
}

type JoinerRef<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;

/// Stream side of a stream–table join: looks the key up in the table's store.
pub(crate) struct StreamTableJoinProc<K, V, VT, VR> {
    getter: ValueGetter<K, VT>,
    joiner: JoinerRef<V, VT, VR>,
    left: bool,
    table: Option<TimestampedKeyValueStoreHandle<K, VT>>,
}

impl<K, V, VT, VR> StreamTableJoinProc<K, V, VT, VR> {
    pub(crate) fn new(getter: ValueGetter<K, VT>, joiner: JoinerRef<V, VT, VR>, left: bool) -> Self {
        Self { getter, joiner, left, table: None }
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor<K, V, K, VR> for StreamTableJoinProc<K, V, VT, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        self.table = Some(ctx.timestamped_key_value_store(&self.getter.store)?);
        Ok(())
    }

    fn process(&mut self, r: Record<K, V>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        let table = self.table.as_ref().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        // A key the table cannot hold (a null key, when K is an Option) finds
        // nothing; the key serde refuses it.
        let found = if self.getter.is_null_key(r.key()) { None } else { table.get(r.key())?.map(|(v, _)| v) };
        if found.is_none() && !self.left {
            if self.getter.is_null_key(r.key()) {
                ctx.record_dropped("null key in stream-table join");
            }
            return Ok(());
        }
        match (self.joiner)(r.value(), found.as_ref()) {
            Some(joined) => {
                let (k, _, ts, headers) = r.into_parts();
                ctx.forward(Record::new(k, joined, ts).with_headers(headers))
            }
            None => Ok(()),
        }
    }
}
