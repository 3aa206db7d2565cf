//! What the runtime tests share: word-count input and its expected counts,
//! configs, a processor that fills a store.
#![allow(dead_code, unreachable_pub)]

pub mod registry;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streams_core::prelude::*;
use streams_core::StreamsConfig;

const VOCABULARY: [&str; 12] =
    ["kafka", "rust", "stream", "table", "join", "window", "state", "store", "topic", "Offset", "commit", "task"];

/// Deterministic lines, and the counts they should produce.
pub fn lines(n: usize, seed: u64) -> (Vec<String>, BTreeMap<String, Option<String>>) {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(n);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    for _ in 0..n {
        let mut line = Vec::new();
        for _ in 0..(x % 7 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let word = VOCABULARY[(x % VOCABULARY.len() as u64) as usize];
            line.push(word);
            *counts.entry(word.to_lowercase()).or_default() += 1;
        }
        out.push(line.join(if x.is_multiple_of(2) { " " } else { ", " }));
    }
    (out, counts.into_iter().map(|(k, v)| (k, Some(v.to_string()))).collect())
}

pub fn config(app: &str, state_dir: &std::path::Path, guarantee: &str) -> StreamsConfig {
    let mut config = StreamsConfig::new(app, integration_tests::bootstrap_servers());
    config.state_dir = state_dir.to_path_buf();
    let _ = config.set("processing.guarantee", guarantee);
    config
}

/// Lines as records to produce (no key; timestamps from `t0`, 1 ms apart).
pub fn records(lines: &[String], t0: i64) -> Vec<integration_tests::Input<'_>> {
    lines.iter().enumerate().map(|(i, l)| (None, Some(l.as_bytes()), t0 + i as i64)).collect()
}

/// Sums two expected-count maps.
pub fn merge(
    a: &BTreeMap<String, Option<String>>,
    b: &BTreeMap<String, Option<String>>,
) -> BTreeMap<String, Option<String>> {
    let mut out: BTreeMap<String, u64> = BTreeMap::new();
    for m in [a, b] {
        for (k, v) in m {
            *out.entry(k.clone()).or_default() += v.as_deref().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    out.into_iter().map(|(k, v)| (k, Some(v.to_string()))).collect()
}

/// Puts every record into the `kv` store and counts it in `processed`.
#[derive(Default)]
pub struct Put {
    store: Option<KeyValueStoreHandle<Vec<u8>, Vec<u8>>>,
    processed: Arc<AtomicU64>,
}

impl Put {
    /// A processor counting into `processed`.
    pub fn counting(processed: &Arc<AtomicU64>) -> Self {
        Self { store: None, processed: Arc::clone(processed) }
    }
}

impl Processor<Vec<u8>, Vec<u8>> for Put {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, Vec<u8>, Vec<u8>>) -> Result<(), ProcessorError> {
        self.store = Some(ctx.key_value_store("kv")?);
        Ok(())
    }

    fn process(
        &mut self,
        r: Record<Vec<u8>, Vec<u8>>,
        _: &mut ProcessorContext<'_, Vec<u8>, Vec<u8>>,
    ) -> Result<(), ProcessorError> {
        if let Some(s) = &self.store {
            s.put(r.key(), r.value())?;
        }
        self.processed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
