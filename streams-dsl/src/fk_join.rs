//! The foreign-key table–table join: each row of the left table joins the row
//! of the right table whose key its value names. Left rows subscribe to their
//! foreign key through a repartition topic keyed by that key; the right side
//! answers (and answers again on every change of the right row) through a
//! response topic keyed by the left key; answers for left values that have
//! changed since are recognised by a hash and dropped.

use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::serde::SerdeError;
use streams_core::StoreBuilder;

use crate::builder::{Data, SerdeRef};
use crate::kstream::KStream;
use crate::ktable::{Change, KTable, ValueGetter};

/// What the right side should do with a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Instruction {
    /// The left row moved to another foreign key: forget it here, say nothing.
    DeleteNoPropagate = 0,
    /// The left row is gone: forget it and let the result be deleted.
    DeleteAndPropagate = 1,
    /// Answer even when there is no right row (left joins, or a row that had a result).
    PropagateNullIfNoValue = 2,
    /// Answer only when there is a right row (a new row of an inner join).
    PropagateOnlyIfValue = 3,
}

impl Instruction {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::DeleteNoPropagate,
            1 => Self::DeleteAndPropagate,
            2 => Self::PropagateNullIfNoValue,
            3 => Self::PropagateOnlyIfValue,
            _ => return None,
        })
    }
}

/// A left row's subscription to a foreign key.
#[derive(Debug, Clone)]
struct Subscription<K> {
    pk: K,
    hash: Option<u64>,
    instruction: Instruction,
}

/// The right side's answer to a left row.
#[derive(Debug, Clone)]
struct Response<VO> {
    hash: Option<u64>,
    value: Option<VO>,
    instruction: Instruction,
}

/// FNV-1a over the serialized left value: tells a current answer from a stale one.
fn hash_bytes(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn bad(topic: &str) -> SerdeError {
    SerdeError::custom(topic, "malformed foreign-key join record")
}

fn put_hash(out: &mut Vec<u8>, hash: Option<u64>) {
    match hash {
        Some(h) => {
            out.push(1);
            out.extend_from_slice(&h.to_be_bytes());
        }
        None => out.push(0),
    }
}

fn take_hash<'a>(topic: &str, bytes: &'a [u8]) -> Result<(Option<u64>, &'a [u8]), SerdeError> {
    match bytes.split_first() {
        Some((1, rest)) => {
            let (h, rest) = rest.split_at_checked(8).ok_or_else(|| bad(topic))?;
            Ok((Some(u64::from_be_bytes(h.try_into().map_err(|_| bad(topic))?)), rest))
        }
        Some((0, rest)) => Ok((None, rest)),
        _ => Err(bad(topic)),
    }
}

struct SubscriptionSerde<K> {
    pk: SerdeRef<K>,
}

impl<K: 'static> Serde for SubscriptionSerde<K> {
    type Target = Subscription<K>;
    fn serialize(
        &self,
        topic: &str,
        headers: &mut Headers,
        s: &Subscription<K>,
    ) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = vec![s.instruction as u8];
        put_hash(&mut out, s.hash);
        out.extend_from_slice(&self.pk.serialize(topic, headers, &s.pk)?.unwrap_or_default());
        Ok(Some(out))
    }
    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Subscription<K>, SerdeError> {
        let bytes = data.ok_or_else(|| bad(topic))?;
        let (&i, rest) = bytes.split_first().ok_or_else(|| bad(topic))?;
        let instruction = Instruction::from_byte(i).ok_or_else(|| bad(topic))?;
        let (hash, rest) = take_hash(topic, rest)?;
        Ok(Subscription { pk: self.pk.deserialize(topic, headers, Some(rest))?, hash, instruction })
    }
}

struct ResponseSerde<VO> {
    value: SerdeRef<VO>,
}

impl<VO: 'static> Serde for ResponseSerde<VO> {
    type Target = Response<VO>;
    fn serialize(&self, topic: &str, headers: &mut Headers, r: &Response<VO>) -> Result<Option<Vec<u8>>, SerdeError> {
        let mut out = vec![r.instruction as u8];
        put_hash(&mut out, r.hash);
        match &r.value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&self.value.serialize(topic, headers, v)?.unwrap_or_default());
            }
            None => out.push(0),
        }
        Ok(Some(out))
    }
    fn deserialize(&self, topic: &str, headers: &Headers, data: Option<&[u8]>) -> Result<Response<VO>, SerdeError> {
        let bytes = data.ok_or_else(|| bad(topic))?;
        let (&i, rest) = bytes.split_first().ok_or_else(|| bad(topic))?;
        let instruction = Instruction::from_byte(i).ok_or_else(|| bad(topic))?;
        let (hash, rest) = take_hash(topic, rest)?;
        let value = match rest.split_first() {
            Some((1, v)) => Some(self.value.deserialize(topic, headers, Some(v))?),
            Some((0, _)) => None,
            _ => return Err(bad(topic)),
        };
        Ok(Response { hash, value, instruction })
    }
}

type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Subscription-store key: length-prefixed foreign key, then the left key.
fn sub_key(fk: &[u8], pk: &[u8]) -> Vec<u8> {
    let len = u32::try_from(fk.len()).unwrap_or(u32::MAX);
    [&len.to_be_bytes()[..], fk, pk].concat()
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Joins each row with the row of `other` whose key `foreign_key` reads
    /// from its value; rows without a match are absent (inner join).
    pub fn join_foreign_key<KO: Data + PartialEq, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o: Option<&VO>| o.map(|o| joiner(v, o)));
        self.fk_join(other, Arc::new(foreign_key), joiner, false)
    }

    /// As [`join_foreign_key`](Self::join_foreign_key), keeping rows without a
    /// match with `None` for the other side (left join).
    pub fn left_join_foreign_key<KO: Data + PartialEq, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: FkJoiner<V, VO, VR> = Arc::new(move |v, o| Some(joiner(v, o)));
        self.fk_join(other, Arc::new(foreign_key), joiner, true)
    }

    fn fk_join<KO: Data + PartialEq, VO: Data, VR: Data>(
        &self,
        other: &KTable<KO, VO>,
        foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
        joiner: FkJoiner<V, VO, VR>,
        left_join: bool,
    ) -> KTable<K, VR> {
        let shared = self.shared.clone();
        let left: ValueGetter<K, V> = self.value_getter();
        let right: ValueGetter<KO, VO> = other.value_getter();
        let base = shared.name("KTABLE-FK-JOIN");
        let hint = "Materialized::with(key_serde, value_serde) on both tables";
        let (Some(ks), Some(vs), Some(kos), Some(vos)) = (
            shared.need(&self.key_serde, &base, "key", hint),
            shared.need(&self.value_serde, &base, "value", hint),
            shared.need(&other.key_serde, &base, "foreign key", hint),
            shared.need(&other.value_serde, &base, "foreign value", hint),
        ) else {
            return self.fk_placeholder(base);
        };
        let sub_store = format!("{base}-SUBSCRIPTION-STATE-STORE");
        let send = format!("{base}-SUBSCRIPTION-REGISTRATION-SEND");
        let receive = format!("{base}-SUBSCRIPTION-RECEIVE");
        let foreign = format!("{base}-FOREIGN-TABLE-JOIN");
        let resolve = format!("{base}-RESOLVE");
        let sub_serde: SerdeRef<Subscription<K>> = Arc::new(SubscriptionSerde { pk: Arc::clone(&ks) });
        let resp_serde: SerdeRef<Response<VO>> = Arc::new(ResponseSerde { value: Arc::clone(&vos) });

        // Left rows → subscriptions keyed by foreign key, through a repartition topic.
        let vs_hash = Arc::clone(&vs);
        let (fk, parent) = (Arc::clone(&foreign_key), self.node.clone());
        shared.add(|t| {
            t.add_processor(
                &send,
                move || SendProc::<K, V, KO> {
                    foreign_key: Arc::clone(&fk),
                    value_serde: Arc::clone(&vs_hash),
                    left_join,
                    _k: std::marker::PhantomData,
                },
                &[&parent],
            )
            .map(|_| ())
        });
        let subscriptions: KStream<KO, Subscription<K>> =
            KStream::new(shared.clone(), send, Some(Arc::clone(&kos)), Some(Arc::clone(&sub_serde)), true)
                .through_repartition(
                    &format!("{base}-subscription-registration"),
                    Some(Arc::clone(&kos)),
                    Some(sub_serde),
                    None,
                    hint,
                );

        // Subscriptions stored per foreign key and answered from the right table.
        let (kos1, ks1, rstore, sstore, rs_parent) =
            (Arc::clone(&kos), Arc::clone(&ks), right.store.clone(), sub_store.clone(), subscriptions.node.clone());
        shared.add(|t| {
            t.add_processor(
                &receive,
                move || ReceiveProc::<KO, K, VO> {
                    sub_store: sstore.clone(),
                    right_store: rstore.clone(),
                    fk_serde: Arc::clone(&kos1),
                    pk_serde: Arc::clone(&ks1),
                    handles: None,
                },
                &[&rs_parent],
            )?;
            let builder: StoreBuilder =
                Stores::key_value_store_builder(Stores::persistent_key_value_store(&sub_store), BytesSerde, BytesSerde);
            t.add_state_store(builder, &[&receive])?;
            t.connect_processor_and_state_stores(&receive, &[&right.store])?;
            Ok(())
        });
        // Changes of right rows answered to every subscriber.
        let (kos2, ks2, sstore2, rparent) = (Arc::clone(&kos), Arc::clone(&ks), sub_store.clone(), other.node.clone());
        shared.add(|t| {
            t.add_processor(
                &foreign,
                move || ForeignProc::<KO, K, VO> {
                    sub_store: sstore2.clone(),
                    fk_serde: Arc::clone(&kos2),
                    pk_serde: Arc::clone(&ks2),
                    handle: None,
                    _v: std::marker::PhantomData,
                },
                &[&rparent],
            )?;
            t.connect_processor_and_state_stores(&foreign, &[&sub_store])?;
            Ok(())
        });
        let merge = shared.name("KTABLE-FK-JOIN-RESPONSES");
        shared.add(|t| {
            t.add_processor(&merge, crate::processors::PassProc::<K, Response<VO>>::new, &[&receive, &foreign])
                .map(|_| ())
        });
        let responses: KStream<K, Response<VO>> =
            KStream::new(shared.clone(), merge, Some(Arc::clone(&ks)), Some(Arc::clone(&resp_serde)), true)
                .through_repartition(
                    &format!("{base}-subscription-response"),
                    Some(Arc::clone(&ks)),
                    Some(resp_serde),
                    None,
                    hint,
                );

        // Answers checked against the current left row and joined.
        let (lstore, vs3, resp_parent) = (left.store.clone(), Arc::clone(&vs), responses.node.clone());
        shared.add(|t| {
            t.add_processor(
                &resolve,
                move || ResolveProc::<K, V, VO, VR> {
                    left_store: lstore.clone(),
                    value_serde: Arc::clone(&vs3),
                    joiner: Arc::clone(&joiner),
                    handle: None,
                },
                &[&resp_parent],
            )?;
            t.connect_processor_and_state_stores(&resolve, &[&left.store])?;
            Ok(())
        });
        KTable::new(shared, resolve, None, Some(ks), None)
    }

    fn fk_placeholder<VR>(&self, node: String) -> KTable<K, VR> {
        KTable::unbuilt(self.shared.clone(), node)
    }
}

struct SendProc<K, V, KO> {
    foreign_key: Arc<dyn Fn(&V) -> KO + Send + Sync>,
    value_serde: SerdeRef<V>,
    left_join: bool,
    #[allow(dead_code)]
    _k: std::marker::PhantomData<fn(K)>,
}

impl<K: Data, V: Data, KO: Data + PartialEq> Processor<K, Change<V>, KO, Subscription<K>> for SendProc<K, V, KO> {
    fn process(
        &mut self,
        r: Record<K, Change<V>>,
        ctx: &mut ProcessorContext<'_, KO, Subscription<K>>,
    ) -> Result<(), ProcessorError> {
        let (pk, change, ts, _) = r.into_parts();
        let old_fk = change.old.as_ref().map(|v| (self.foreign_key)(v));
        let Some(new) = &change.new else {
            if let Some(old_fk) = old_fk {
                let s = Subscription { pk, hash: None, instruction: Instruction::DeleteAndPropagate };
                ctx.forward(Record::new(old_fk, s, ts))?;
            }
            return Ok(());
        };
        let new_fk = (self.foreign_key)(new);
        let hash = self.value_serde.serialize("", &mut Headers::new(), new)?.map(|b| hash_bytes(&b));
        if let Some(old_fk) = old_fk.filter(|o| *o != new_fk) {
            ctx.forward(Record::new(
                old_fk,
                Subscription { pk: pk.clone(), hash, instruction: Instruction::DeleteNoPropagate },
                ts,
            ))?;
        }
        let instruction = if self.left_join || change.old.is_some() {
            Instruction::PropagateNullIfNoValue
        } else {
            Instruction::PropagateOnlyIfValue
        };
        ctx.forward(Record::new(new_fk, Subscription { pk, hash, instruction }, ts))
    }
}

type ReceiveHandles<KO, VO> = (KeyValueStoreHandle<Vec<u8>, Vec<u8>>, TimestampedKeyValueStoreHandle<KO, VO>);

struct ReceiveProc<KO, K, VO> {
    sub_store: String,
    right_store: String,
    fk_serde: SerdeRef<KO>,
    pk_serde: SerdeRef<K>,
    handles: Option<ReceiveHandles<KO, VO>>,
}

impl<KO: Data, K: Data, VO: Data> Processor<KO, Subscription<K>, K, Response<VO>> for ReceiveProc<KO, K, VO> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Response<VO>>) -> Result<(), ProcessorError> {
        self.handles =
            Some((ctx.key_value_store(&self.sub_store)?, ctx.timestamped_key_value_store(&self.right_store)?));
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<KO, Subscription<K>>,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
    ) -> Result<(), ProcessorError> {
        let (subs, right) =
            self.handles.clone().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let (fk, s, ts, _) = r.into_parts();
        let fk_bytes = self.fk_serde.serialize(&self.sub_store, &mut Headers::new(), &fk)?.unwrap_or_default();
        let pk_bytes = self.pk_serde.serialize(&self.sub_store, &mut Headers::new(), &s.pk)?.unwrap_or_default();
        let key = sub_key(&fk_bytes, &pk_bytes);
        match s.instruction {
            Instruction::DeleteNoPropagate => {
                subs.delete(&key)?;
                Ok(())
            }
            Instruction::DeleteAndPropagate => {
                subs.delete(&key)?;
                ctx.forward(Record::new(s.pk, Response { hash: None, value: None, instruction: s.instruction }, ts))
            }
            Instruction::PropagateNullIfNoValue | Instruction::PropagateOnlyIfValue => {
                let mut stored = Vec::with_capacity(10);
                put_hash(&mut stored, s.hash);
                subs.put(&key, &stored)?;
                let value = right.get(&fk)?.map(|(v, _)| v);
                ctx.forward(Record::new(s.pk, Response { hash: s.hash, value, instruction: s.instruction }, ts))
            }
        }
    }
}

struct ForeignProc<KO, K, VO> {
    sub_store: String,
    fk_serde: SerdeRef<KO>,
    pk_serde: SerdeRef<K>,
    handle: Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>,
    #[allow(dead_code)]
    _v: std::marker::PhantomData<fn(VO)>,
}

impl<KO: Data, K: Data, VO: Data> Processor<KO, Change<VO>, K, Response<VO>> for ForeignProc<KO, K, VO> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Response<VO>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.key_value_store(&self.sub_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<KO, Change<VO>>,
        ctx: &mut ProcessorContext<'_, K, Response<VO>>,
    ) -> Result<(), ProcessorError> {
        let subs = self.handle.clone().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let (fk, change, ts, _) = r.into_parts();
        let fk_bytes = self.fk_serde.serialize(&self.sub_store, &mut Headers::new(), &fk)?.unwrap_or_default();
        let prefix = sub_key(&fk_bytes, &[]);
        for (key, stored) in subs.prefix_scan(&prefix)? {
            let pk = self.pk_serde.deserialize(&self.sub_store, &Headers::new(), Some(&key[prefix.len()..]))?;
            let (hash, _) = take_hash(&self.sub_store, &stored)?;
            let response =
                Response { hash, value: change.new.clone(), instruction: Instruction::PropagateNullIfNoValue };
            ctx.forward(Record::new(pk, response, ts))?;
        }
        Ok(())
    }
}

struct ResolveProc<K, V, VO, VR> {
    left_store: String,
    value_serde: SerdeRef<V>,
    joiner: FkJoiner<V, VO, VR>,
    handle: Option<TimestampedKeyValueStoreHandle<K, V>>,
}

impl<K: Data, V: Data, VO: Data, VR: Data> Processor<K, Response<VO>, K, Change<VR>> for ResolveProc<K, V, VO, VR> {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, K, Change<VR>>) -> Result<(), ProcessorError> {
        self.handle = Some(ctx.timestamped_key_value_store(&self.left_store)?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<K, Response<VO>>,
        ctx: &mut ProcessorContext<'_, K, Change<VR>>,
    ) -> Result<(), ProcessorError> {
        let left = self.handle.as_ref().ok_or_else(|| ProcessorError::Internal("join used before init".into()))?;
        let (pk, response, ts, headers) = r.into_parts();
        let current = left.get(&pk)?.map(|(v, _)| v);
        let current_hash = match &current {
            Some(v) => self.value_serde.serialize(&self.left_store, &mut Headers::new(), v)?.map(|b| hash_bytes(&b)),
            None => None,
        };
        if current_hash != response.hash {
            // An answer to a left value that has changed since: a newer one follows.
            return Ok(());
        }
        let result = current.as_ref().and_then(|l| (self.joiner)(l, response.value.as_ref()));
        if result.is_none() && response.instruction == Instruction::PropagateOnlyIfValue {
            return Ok(());
        }
        ctx.forward(Record::new(pk, Change { new: result, old: None }, ts).with_headers(headers))
    }
}
