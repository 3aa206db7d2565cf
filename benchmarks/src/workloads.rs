//! The workloads: their input records, their Rivulet topologies, the raw
//! transformation, and how to tell that the output is complete and right.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::DslError;

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Stateless: parse JSON, keep about half, map a field, write JSON.
    W1,
    /// Word count.
    W2,
}

impl Workload {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "w1" | "W1" => Some(Self::W1),
            "w2" | "W2" => Some(Self::W2),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::W1 => "W1 stateless",
            Self::W2 => "W2 word count",
        }
    }
}

/// W1's input event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) amount: u64,
    pub(crate) ts: i64,
}

/// W1's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Out {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) cents: u64,
}

/// The `i`-th input record: key and value.
pub(crate) fn record(workload: Workload, i: u64) -> (Vec<u8>, Vec<u8>) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491;
    x ^= x >> 29;
    match workload {
        Workload::W1 => {
            let e =
                Event { id: i, user: format!("user-{}", x % 1000), amount: x % 1000, ts: 1_700_000_000_000 + i as i64 };
            (e.user.clone().into_bytes(), serde_json::to_vec(&e).unwrap_or_default())
        }
        Workload::W2 => {
            let words: Vec<String> = (0..(x % 8 + 1)).map(|k| format!("w{}", (x >> (k * 6)) % 500)).collect();
            (i.to_string().into_bytes(), words.join(" ").into_bytes())
        }
    }
}

/// W1's transformation, shared by every Rust contender.
pub(crate) fn w1_transform(value: &[u8]) -> Option<Vec<u8>> {
    let e: Event = serde_json::from_slice(value).ok()?;
    if e.amount % 2 == 1 {
        return None;
    }
    serde_json::to_vec(&Out { id: e.id, user: e.user, cents: e.amount * 100 }).ok()
}

/// What a correct run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// W1: exactly this many records.
    Count(u64),
    /// W2: the final value of every key.
    Latest(BTreeMap<Vec<u8>, Vec<u8>>),
}

pub(crate) fn expected(workload: Workload, records: u64) -> Expected {
    match workload {
        Workload::W1 => {
            Expected::Count((0..records).filter(|&i| w1_transform(&record(workload, i).1).is_some()).count() as u64)
        }
        Workload::W2 => {
            let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
            for i in 0..records {
                for w in String::from_utf8_lossy(&record(workload, i).1).split(' ') {
                    *counts.entry(w.as_bytes().to_vec()).or_default() += 1;
                }
            }
            Expected::Latest(counts.into_iter().map(|(k, v)| (k, v.to_string().into_bytes())).collect())
        }
    }
}

/// Rivulet's topology for a workload.
pub(crate) fn topology(workload: Workload, input: &str, output: &str) -> Result<Topology, DslError> {
    match workload {
        Workload::W1 => {
            let builder = StreamsBuilder::new();
            builder
                .stream(&[input], Consumed::with(Nullable(BytesSerde), JsonSerde::<Event>::new()))
                .filter(|_, e| e.amount % 2 == 0)
                .map_values(|e: Event| Out { id: e.id, user: e.user, cents: e.amount * 100 })
                .to_with(output, Produced::with(Nullable(BytesSerde), JsonSerde::<Out>::new()));
            builder.build()
        }
        Workload::W2 => rivulet_examples::word_count::topology(input, output),
    }
}
