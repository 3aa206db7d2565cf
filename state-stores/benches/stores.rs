//! Store throughput: puts through a batch, gets, range scans, and restore of
//! changelog records, for RocksDB and in-memory stores; and what the metered
//! layer adds to a get, counting only and timing too; and RocksDB gets
//! served by the read cache.
//!
//! `cargo bench -p state-stores`
#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use state_stores::{KeyValueStore, KvStore, Metered, RocksDbConfig, StateStore, StoreMeters};

const N: u64 = 100_000;

fn key(i: u64) -> [u8; 12] {
    // Spread keys so writes are not in key order.
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(b"key-");
    k[4..].copy_from_slice(&(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_be_bytes());
    k
}

const VALUE: &[u8; 24] = b"value-0123456789abcdefgh";

fn filled(store: &mut KvStore) {
    for i in 0..N {
        let _ = store.put(&key(i), VALUE);
    }
    let _ = store.commit(Some(N));
}

/// A RocksDB store opened with `config` in a new directory and [`filled`];
/// the store comes first, so that it closes before its directory goes.
fn filled_rocksdb(config: &RocksDbConfig) -> Option<(KvStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().ok()?;
    let mut store = KvStore::rocksdb("bench", dir.path(), config).ok()?;
    filled(&mut store);
    Some((store, dir))
}

/// Gets every key [`filled`] wrote; how many were found.
fn hits(store: &dyn KeyValueStore) -> usize {
    (0..N).filter(|&i| matches!(store.get(&key(i)), Ok(Some(_)))).count()
}

fn stores(c: &mut Criterion) {
    let config = RocksDbConfig::default().with_shared_block_cache(64 << 20);

    let mut group = c.benchmark_group("put+commit");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("in-memory", |b| {
        b.iter_batched(
            || KvStore::in_memory("bench"),
            |mut s| {
                filled(&mut s);
                s
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("rocksdb", |b| {
        b.iter_batched(
            || tempfile::tempdir().ok().and_then(|d| KvStore::rocksdb("bench", d.path(), &config).ok().map(|s| (s, d))),
            |store| {
                if let Some((mut s, d)) = store {
                    filled(&mut s);
                    return Some((s, d));
                }
                None
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("get");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    let mut mem = KvStore::in_memory("bench");
    filled(&mut mem);
    let rocks = filled_rocksdb(&config);
    group.bench_function("in-memory", |b| b.iter(|| hits(&mem)));
    if let Some((r, _)) = rocks.as_ref() {
        group.bench_function("rocksdb", |b| b.iter(|| hits(r)));
    }
    // The same gets served by the read cache (the entries the commit wrote).
    if let Some((r, _)) = filled_rocksdb(&config.clone().with_read_cache(64 << 20)).as_ref() {
        group.bench_function("rocksdb+read-cache", |b| b.iter(|| hits(r)));
    }
    group.finish();

    let mut group = c.benchmark_group("range-scan");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("in-memory", |b| b.iter(|| mem.all().map(|it| it.count()).unwrap_or(0)));
    if let Some((r, _)) = rocks.as_ref() {
        group.bench_function("rocksdb", |b| b.iter(|| r.all().map(|it| it.count()).unwrap_or(0)));
    }
    group.finish();

    // The layer's cost on the cheapest operation there is: a get from memory.
    let mut group = c.benchmark_group("get-metered");
    group.throughput(Throughput::Elements(N));
    group.sample_size(20);
    let boxed = || -> Box<dyn KeyValueStore> {
        let mut s = KvStore::in_memory("bench");
        filled(&mut s);
        Box::new(s)
    };
    let plain = boxed();
    let counted: Box<dyn KeyValueStore> = Box::new(Metered::new(boxed(), Arc::new(StoreMeters::new(false))));
    let timed: Box<dyn KeyValueStore> = Box::new(Metered::new(boxed(), Arc::new(StoreMeters::new(true))));
    for (name, store) in [("plain", &plain), ("counted", &counted), ("counted+timed", &timed)] {
        group.bench_function(name, |b| b.iter(|| hits(store.as_ref())));
    }
    group.finish();

    let records: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..N).map(|i| (key(i).to_vec(), Some(VALUE.to_vec()))).collect();
    let mut group = c.benchmark_group("restore");
    group.throughput(Throughput::Elements(N));
    group.sample_size(10);
    group.bench_function("in-memory", |b| {
        b.iter_batched(
            || (KvStore::in_memory("bench"), records.clone()),
            |(mut s, recs)| {
                let _ = s.restore_batch(&mut recs.into_iter(), N);
                s
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("rocksdb", |b| {
        b.iter_batched(
            || {
                let d = tempfile::tempdir().ok();
                let s = d.as_ref().and_then(|d| KvStore::rocksdb("bench", d.path(), &config).ok());
                (s, d, records.clone())
            },
            |(s, d, recs)| {
                if let Some(mut s) = s {
                    let _ = s.restore_batch(&mut recs.into_iter(), N);
                    return (Some(s), d);
                }
                (None, d)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    black_box((mem, rocks));
}

criterion_group!(benches, stores);
criterion_main!(benches);
