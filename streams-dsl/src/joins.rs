//! Stream–stream windowed joins and table–table joins.

use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef};
use crate::kstream::KStream;
use crate::ktable::{Change, KTable, ValueGetter};
use crate::window_close::WindowClose;
use crate::windows::{millis, JoinWindows};

/// Which records of a stream–stream join are emitted without a partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outer {
    None,
    Left,
    Both,
}

type StreamJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> Option<VR> + Send + Sync>;

fn flip(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(bytes: &[u8]) -> i64 {
    let arr: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
    (u64::from_be_bytes(arr) ^ (1 << 63)) as i64
}

fn is_null<T: 'static>(serde: &SerdeRef<T>, value: &T) -> bool {
    matches!(serde.serialize("", &mut Headers::new(), value), Ok(None))
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins records of both streams with equal keys whose timestamps are
    /// within `windows` of each other (inner join).
    pub fn join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.stream_join(
            other,
            Arc::new(move |a: Option<&V>, b: Option<&V2>| match (a, b) {
                (Some(a), Some(b)) => Some(j(a, b)),
                _ => None,
            }),
            windows,
            Outer::None,
        )
    }

    /// As [`join_stream`](Self::join_stream), and records of this stream that
    /// found no partner are emitted with `None` once their window closed.
    pub fn left_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        let j = Arc::new(joiner);
        self.stream_join(other, Arc::new(move |a: Option<&V>, b: Option<&V2>| a.map(|a| j(a, b))), windows, Outer::Left)
    }

    /// As [`join_stream`](Self::join_stream), and records of either stream that
    /// found no partner are emitted with `None` once their window closed.
    pub fn outer_join_stream<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR> {
        self.stream_join(other, Arc::new(move |a: Option<&V>, b: Option<&V2>| Some(joiner(a, b))), windows, Outer::Both)
    }

    fn stream_join<V2: Data, VR: Data>(
        &self,
        other: &KStream<K, V2>,
        joiner: StreamJoiner<V, V2, VR>,
        windows: JoinWindows,
        outer: Outer,
    ) -> KStream<K, VR> {
        let shared = self.shared.clone();
        let hint = "repartition(Repartitioned::with(key_serde, value_serde)) on each side";
        let this_name = shared.name("KSTREAM-JOINTHIS");
        let other_name = shared.name("KSTREAM-JOINOTHER");
        let left = self.repartitioned_for(&format!("{this_name}-left"), None, None, hint);
        let right = other.repartitioned_for(&format!("{other_name}-right"), None, None, hint);
        let ks = shared.need(&left.key_serde, &this_name, "key", hint);
        let vs1 = shared.need(&left.value_serde, &this_name, "value", hint);
        let vs2 = shared.need(&right.value_serde, &other_name, "value", hint);
        let (Some(ks), Some(vs1), Some(vs2)) = (ks, vs1, vs2) else {
            return KStream::new(shared, this_name, None, None, false);
        };
        let this_store = format!("{this_name}-store");
        let other_store = format!("{other_name}-store");
        let outer_store = format!("{this_name}-outer-store");
        let size = windows.before_ms.saturating_add(windows.after_ms);
        let retention = millis(windows.close().retention_ms(size));
        let window = millis(size);
        let merge = shared.name("KSTREAM-MERGE");
        let (lparent, rparent) = (left.node.clone(), right.node.clone());
        let flipped = {
            let j = Arc::clone(&joiner);
            Arc::new(move |b: Option<&V2>, a: Option<&V>| j(a, b)) as StreamJoiner<V2, V, VR>
        };
        let left_side = JoinSide {
            this_store: this_store.clone(),
            other_store: other_store.clone(),
            outer_store: outer_store.clone(),
            before: windows.before_ms,
            after: windows.after_ms,
            close: windows.close(),
            is_left: true,
            emit_unmatched: outer != Outer::None,
            key_serde: Arc::clone(&ks),
            this_serde: Arc::clone(&vs1),
            other_serde: Arc::clone(&vs2),
        };
        let right_side = JoinSide {
            this_store: other_store.clone(),
            other_store: this_store.clone(),
            outer_store: outer_store.clone(),
            before: windows.after_ms,
            after: windows.before_ms,
            close: windows.close(),
            is_left: false,
            emit_unmatched: outer == Outer::Both,
            key_serde: Arc::clone(&ks),
            this_serde: Arc::clone(&vs2),
            other_serde: Arc::clone(&vs1),
        };
        let (j1, j2) = (Arc::clone(&joiner), flipped);
        let (ks1, ks2, vs1b, vs2b) = (Arc::clone(&ks), Arc::clone(&ks), Arc::clone(&vs1), Arc::clone(&vs2));
        shared.add(|t| {
            let ls = left_side.clone();
            t.add_processor(
                &this_name,
                move || StreamJoinProc { side: ls.clone(), joiner: Arc::clone(&j1), handles: None },
                &[&lparent],
            )?;
            let rs = right_side.clone();
            t.add_processor(
                &other_name,
                move || StreamJoinProc { side: rs.clone(), joiner: Arc::clone(&j2), handles: None },
                &[&rparent],
            )?;
            t.add_processor(&merge, crate::processors::PassProc::<K, VR>::new, &[&this_name, &other_name])?;
            let s1: StoreBuilder = Stores::window_store_builder(
                Stores::persistent_window_store(&this_store, retention, window, true),
                ks1,
                vs1b,
            );
            let s2: StoreBuilder = Stores::window_store_builder(
                Stores::persistent_window_store(&other_store, retention, window, true),
                ks2,
                vs2b,
            );
            t.add_state_store(s1, &[&this_name, &other_name])?;
            t.add_state_store(s2, &[&this_name, &other_name])?;
            if outer != Outer::None {
                let s3: StoreBuilder = Stores::key_value_store_builder(
                    Stores::persistent_key_value_store(&outer_store),
                    BytesSerde,
                    BytesSerde,
                );
                t.add_state_store(s3, &[&this_name, &other_name])?;
            }
            Ok(())
        });
        KStream::new(shared, merge, Some(ks), None, false)
    }
}

#[derive(Clone)]
struct JoinSide<K, V1, V2> {
    this_store: String,
    other_store: String,
    outer_store: String,
    /// How much earlier a partner may be.
    before: i64,
    /// How much later a partner may be.
    after: i64,
    /// When a record's window closes, counted from the latest time a partner may have.
    close: WindowClose,
    is_left: bool,
    emit_unmatched: bool,
    key_serde: SerdeRef<K>,
    this_serde: SerdeRef<V1>,
    other_serde: SerdeRef<V2>,
}

type JoinHandles<K, V1, V2> =
    (WindowStoreHandle<K, V1>, WindowStoreHandle<K, V2>, Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>);

struct StreamJoinProc<K, V1, V2, VR> {
    side: JoinSide<K, V1, V2>,
    joiner: StreamJoiner<V1, V2, VR>,
    handles: Option<JoinHandles<K, V1, V2>>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data> StreamJoinProc<K, V1, V2, VR> {
    /// Emits unmatched records whose join window (plus grace) closed, oldest first.
    fn emit_unmatched(
        &self,
        outer: &KeyValueStoreHandle<Vec<u8>, Vec<u8>>,
        ctx: &mut ProcessorContext<'_, K, VR>,
    ) -> Result<(), ProcessorError> {
        let stream_time = ctx.current_stream_time_ms();
        for (key, value) in outer.all()? {
            let ts = unflip(&key);
            let is_left = key.get(8) == Some(&1);
            // A left record waits for right partners up to `after` later, and
            // the other way round.
            let look_ahead = if is_left == self.side.is_left { self.side.after } else { self.side.before };
            if !self.side.close.is_expired(ts.saturating_add(look_ahead), stream_time) {
                break;
            }
            outer.delete(&key)?;
            let key_bytes = key.get(9..).ok_or_else(|| {
                ProcessorError::Internal(format!("join store `{}` holds a malformed key", self.side.outer_store))
            })?;
            let k = self.side.key_serde.deserialize(&self.side.outer_store, &Headers::new(), Some(key_bytes))?;
            let joined = if is_left == self.side.is_left {
                let v = self.side.this_serde.deserialize(&self.side.outer_store, &Headers::new(), Some(&value))?;
                (self.joiner)(Some(&v), None)
            } else {
                let v = self.side.other_serde.deserialize(&self.side.outer_store, &Headers::new(), Some(&value))?;
                (self.joiner)(None, Some(&v))
            };
            if let Some(joined) = joined {
                ctx.forward(Record::new(k, joined, ts))?;
            }
        }
        Ok(())
    }

    fn outer_key(&self, is_left: bool, key: &K, ts: i64) -> Result<Vec<u8>, ProcessorError> {
        let mut out = flip(ts).to_vec();
        out.push(u8::from(is_left));
        out.extend_from_slice(
            &self.side.key_serde.serialize(&self.side.outer_store, &mut Headers::new(), key)?.unwrap_or_default(),
        );
        Ok(out)
    }
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, V1, K, VR> for StreamJoinProc<K, V1, V2, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        // Inner joins have no store of unmatched records.
        let outer = ctx.key_value_store(&self.side.outer_store).ok();
        self.handles =
            Some((ctx.window_store(&self.side.this_store)?, ctx.window_store(&self.side.other_store)?, outer));
        Ok(())
    }

    fn process(&mut self, r: Record<K, V1>, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessorError> {
        if is_null(&self.side.key_serde, r.key()) || is_null(&self.side.this_serde, r.value()) {
            ctx.record_dropped("null key or value in stream-stream join");
            return Ok(());
        }
        let (this, other, outer) =
            self.handles.clone().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let ts = r.timestamp();
        let (close, stream_time) = (self.side.close, ctx.current_stream_time_ms());
        if close.is_expired(ts.saturating_add(self.side.after), stream_time)
            && close.is_expired(ts.saturating_add(self.side.before), stream_time)
        {
            ctx.record_dropped("record too late for its join window");
            return Ok(());
        }
        this.put(r.key(), r.value(), ts, ts)?;
        let from = ts.saturating_sub(self.side.before).max(0);
        let to = ts.saturating_add(self.side.after).max(0);
        let partners = other.fetch_range(r.key(), from, to)?;
        let matched = !partners.is_empty();
        for (other_ts, other_value, _) in partners {
            if let Some(outer) = &outer {
                outer.delete(&self.outer_key(!self.side.is_left, r.key(), other_ts)?)?;
            }
            if let Some(joined) = (self.joiner)(Some(r.value()), Some(&other_value)) {
                ctx.forward(Record::new(r.key().clone(), joined, ts.max(other_ts)).with_headers(r.headers().clone()))?;
            }
        }
        if let Some(outer) = &outer {
            if !matched && self.side.emit_unmatched {
                let value = self
                    .side
                    .this_serde
                    .serialize(&self.side.outer_store, &mut Headers::new(), r.value())?
                    .unwrap_or_default();
                outer.put(&self.outer_key(self.side.is_left, r.key(), ts)?, &value)?;
            }
            self.emit_unmatched(outer, ctx)?;
        }
        Ok(())
    }
}

type TableJoiner<V1, V2, VR> = Arc<dyn Fn(Option<&V1>, Option<&V2>) -> Option<VR> + Send + Sync>;

impl<K: Data, V: Data> KTable<K, V> {
    /// A table of both tables' joined values for keys present in both.
    pub fn join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, &V2) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            Arc::new(move |a: Option<&V>, b: Option<&V2>| match (a, b) {
                (Some(a), Some(b)) => Some(joiner(a, b)),
                _ => None,
            }),
        )
    }

    /// A table of this table's keys joined with the other's value, if any.
    pub fn left_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(&V, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(other, Arc::new(move |a: Option<&V>, b: Option<&V2>| a.map(|a| joiner(a, b))))
    }

    /// A table of every key of either table, joined with whatever each has.
    pub fn outer_join<V2: Data, VR: Data>(
        &self,
        other: &KTable<K, V2>,
        joiner: impl Fn(Option<&V>, Option<&V2>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_join(
            other,
            Arc::new(
                move |a: Option<&V>, b: Option<&V2>| if a.is_none() && b.is_none() { None } else { Some(joiner(a, b)) },
            ),
        )
    }

    fn table_join<V2: Data, VR: Data>(&self, other: &KTable<K, V2>, joiner: TableJoiner<V, V2, VR>) -> KTable<K, VR> {
        let shared = self.shared.clone();
        let left_getter: ValueGetter<K, V> = self.value_getter();
        let right_getter: ValueGetter<K, V2> = other.value_getter();
        let this_name = shared.name("KTABLE-JOINTHIS");
        let other_name = shared.name("KTABLE-JOINOTHER");
        let merge = shared.name("KTABLE-MERGE");
        let flipped: TableJoiner<V2, V, VR> = {
            let j = Arc::clone(&joiner);
            Arc::new(move |b: Option<&V2>, a: Option<&V>| j(a, b))
        };
        let (lp, rp) = (self.node.clone(), other.node.clone());
        let (ls, rs) = (left_getter.store.clone(), right_getter.store.clone());
        shared.add(|t| {
            let (rg, j) = (right_getter.clone(), Arc::clone(&joiner));
            t.add_processor(
                &this_name,
                move || TableJoinProc { other: rg.clone(), joiner: Arc::clone(&j), handle: None },
                &[&lp],
            )?;
            let (lg, j) = (left_getter.clone(), Arc::clone(&flipped));
            t.add_processor(
                &other_name,
                move || TableJoinProc { other: lg.clone(), joiner: Arc::clone(&j), handle: None },
                &[&rp],
            )?;
            t.connect_processor_and_state_stores(&this_name, &[&rs])?;
            t.connect_processor_and_state_stores(&other_name, &[&ls])?;
            t.add_processor(&merge, crate::processors::PassProc::<K, Change<VR>>::new, &[&this_name, &other_name])?;
            Ok(())
        });
        KTable::new(shared, merge, None, self.key_serde.clone(), None)
    }
}

struct TableJoinProc<K, V1, V2, VR> {
    other: ValueGetter<K, V2>,
    joiner: TableJoiner<V1, V2, VR>,
    handle: Option<TimestampedKeyValueStoreHandle<K, V2>>,
}

impl<K: Data, V1: Data, V2: Data, VR: Data> Processor<K, Change<V1>, K, Change<VR>> for TableJoinProc<K, V1, V2, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.other.store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Change<V1>>,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessorError> {
        if self.other.is_null_key(r.key()) {
            ctx.record_dropped("null key in table-table join");
            return Ok(());
        }
        let other = self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let (k, change, ts, headers) = r.into_parts();
        let found = other.get(&k)?;
        let ts = found.as_ref().map_or(ts, |(_, t)| ts.max(*t));
        let other_value = found.map(|(v, _)| v);
        let new = (self.joiner)(change.new.as_ref(), other_value.as_ref());
        let old = (self.joiner)(change.old.as_ref(), other_value.as_ref());
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward(Record::new(k, Change { new, old }, ts).with_headers(headers))
    }
}
