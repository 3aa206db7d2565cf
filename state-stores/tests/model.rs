//! Random operation sequences on the RocksDB and in-memory key-value stores
//! give the same results as a plain model, across commits, aborts, restores
//! and (for RocksDB) crashes and reopens.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use state_stores::{KeyValueStore, KvStore, RocksDbConfig, StateStore, StoreError};

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    PutIfAbsent(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Get(Vec<u8>),
    Range(Option<Vec<u8>>, Option<Vec<u8>>),
    Prefix(Vec<u8>),
    Commit(u64),
    Abort,
    /// Drop the store without committing (a crash), then reopen it.
    CrashReopen,
    Restore(Vec<(Vec<u8>, Option<Vec<u8>>)>, u64),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    // Few distinct bytes, including 00 and ff: prefixes and edge bytes collide often.
    prop::collection::vec(prop::sample::select(vec![0u8, 1, b'a', b'b', 0xff]), 0..4)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..6)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| Op::Put(k, v)),
        1 => (key(), value()).prop_map(|(k, v)| Op::PutIfAbsent(k, v)),
        2 => key().prop_map(Op::Delete),
        2 => key().prop_map(Op::Get),
        2 => (prop::option::of(key()), prop::option::of(key())).prop_map(|(a, b)| Op::Range(a, b)),
        1 => key().prop_map(Op::Prefix),
        2 => (0u64..1000).prop_map(Op::Commit),
        1 => Just(Op::Abort),
        1 => Just(Op::CrashReopen),
        1 => (prop::collection::vec((key(), prop::option::of(value())), 0..5), 0u64..1000).prop_map(|(r, o)| Op::Restore(r, o)),
    ]
}

#[derive(Default)]
struct Model {
    committed: BTreeMap<Vec<u8>, Vec<u8>>,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    checkpoint: Option<u64>,
}

impl Model {
    fn view(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut v = self.committed.clone();
        for (k, val) in &self.pending {
            match val {
                Some(x) => {
                    v.insert(k.clone(), x.clone());
                }
                None => {
                    v.remove(k);
                }
            }
        }
        v
    }

    fn commit(&mut self, offset: Option<u64>) {
        self.committed = self.view();
        self.pending.clear();
        if offset.is_some() {
            self.checkpoint = offset;
        }
    }
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn collect(iter: state_stores::EntryIter<'_>) -> Result<Entries, StoreError> {
    iter.collect()
}

/// Runs `ops` on an in-memory store, or on a RocksDB store in `dir` opened with `config`.
fn run(ops: &[Op], dir: Option<(&Path, &RocksDbConfig)>) -> Result<(), TestCaseError> {
    let open = || -> Result<KvStore, StoreError> {
        match dir {
            Some((d, config)) => KvStore::rocksdb("model", d, config),
            None => Ok(KvStore::in_memory("model")),
        }
    };
    let mut store = open().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model::default();
    let fail = |e: StoreError| TestCaseError::fail(e.to_string());
    for op in ops {
        match op {
            Op::Put(k, v) => {
                store.put(k, v).map_err(fail)?;
                model.pending.insert(k.clone(), Some(v.clone()));
            }
            Op::PutIfAbsent(k, v) => {
                let expected = model.view().get(k).cloned();
                prop_assert_eq!(store.put_if_absent(k, v).map_err(fail)?, expected.clone());
                if expected.is_none() {
                    model.pending.insert(k.clone(), Some(v.clone()));
                }
            }
            Op::Delete(k) => {
                let expected = model.view().get(k).cloned();
                prop_assert_eq!(store.delete(k).map_err(fail)?, expected.clone());
                if expected.is_some() {
                    model.pending.insert(k.clone(), None);
                }
            }
            Op::Get(k) => prop_assert_eq!(store.get(k).map_err(fail)?, model.view().get(k).cloned()),
            Op::Range(a, b) => {
                let view = model.view();
                let result = store.range(a.as_deref(), b.as_deref());
                if let (Some(a), Some(b)) = (a, b) {
                    if a > b {
                        prop_assert!(
                            matches!(result, Err(StoreError::InvalidRange { .. })),
                            "expected an invalid-range error"
                        );
                        continue;
                    }
                }
                let expected: Vec<_> = view
                    .iter()
                    .filter(|(k, _)| a.as_ref().is_none_or(|a| *k >= a) && b.as_ref().is_none_or(|b| *k <= b))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(collect(result.map_err(fail)?).map_err(fail)?, expected);
            }
            Op::Prefix(p) => {
                let expected: Vec<_> = model.view().into_iter().filter(|(k, _)| k.starts_with(p)).collect();
                prop_assert_eq!(collect(store.prefix_scan(p).map_err(fail)?).map_err(fail)?, expected);
            }
            Op::Commit(o) => {
                store.commit(Some(*o)).map_err(fail)?;
                model.commit(Some(*o));
            }
            Op::Abort => {
                store.abort();
                model.pending.clear();
            }
            Op::CrashReopen => {
                if dir.is_some() {
                    drop(store);
                    store = open().map_err(fail)?;
                } else {
                    // An in-memory store does not survive a crash at all; an
                    // abort is the part of a crash it can model.
                    store.abort();
                }
                model.pending.clear();
                prop_assert_eq!(store.checkpoint(), model.checkpoint);
            }
            Op::Restore(records, offset) => {
                let result = store.restore_batch(&mut records.clone().into_iter(), *offset);
                if model.pending.is_empty() {
                    result.map_err(fail)?;
                    for (k, v) in records {
                        match v {
                            Some(v) => {
                                model.committed.insert(k.clone(), v.clone());
                            }
                            None => {
                                model.committed.remove(k);
                            }
                        }
                    }
                    model.checkpoint = Some(*offset);
                } else {
                    prop_assert!(
                        matches!(result, Err(StoreError::PendingWrites { .. })),
                        "expected a pending-writes error"
                    );
                }
            }
        }
        prop_assert_eq!(store.checkpoint(), model.checkpoint);
    }
    // Whatever happened, the full content matches.
    prop_assert_eq!(collect(store.all().map_err(fail)?).map_err(fail)?, model.view().into_iter().collect::<Vec<_>>());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn in_memory_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops, None)?;
    }

    #[test]
    fn rocksdb_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run(&ops, Some((dir.path(), &RocksDbConfig::default())))?;
    }

    /// With a read cache of a few entries: rotations, evictions and
    /// entries too large to cache happen within most sequences.
    #[test]
    fn rocksdb_with_a_read_cache_matches_model(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        run(&ops, Some((dir.path(), &RocksDbConfig::default().with_read_cache(800))))?;
    }
}

#[test]
fn abort_hides_everything_of_the_batch() -> Result<(), StoreError> {
    let dir = tempfile::tempdir().map_err(|e| StoreError::Io {
        store: "t".into(),
        path: Default::default(),
        message: e.to_string(),
    })?;
    let mut s = KvStore::rocksdb("t", dir.path(), &RocksDbConfig::default())?;
    s.put(b"a", b"1")?;
    s.commit(Some(1))?;
    s.put(b"b", b"2")?;
    s.delete(b"a")?;
    assert_eq!(s.get(b"a")?, None, "reads see the pending delete");
    s.abort();
    assert_eq!(s.get(b"a")?, Some(b"1".to_vec()));
    assert_eq!(s.get(b"b")?, None);
    assert!(!s.has_pending_writes());
    Ok(())
}

#[test]
fn large_restores_keep_changelog_order() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut s = KvStore::rocksdb("big", dir.path(), &RocksDbConfig::default())?;
    s.put(b"old", b"x")?;
    s.commit(Some(1))?;
    let mut records: Vec<(Vec<u8>, Option<Vec<u8>>)> =
        (0..10_000u32).map(|i| (i.to_be_bytes().to_vec(), Some(i.to_le_bytes().to_vec()))).collect();
    records.push((5u32.to_be_bytes().to_vec(), Some(b"last".to_vec())));
    records.push((7u32.to_be_bytes().to_vec(), None));
    records.push((b"old".to_vec(), None));
    s.restore_batch(&mut records.into_iter(), 10_003)?;
    assert_eq!(s.get(&5u32.to_be_bytes())?, Some(b"last".to_vec()));
    assert_eq!(s.get(&7u32.to_be_bytes())?, None);
    assert_eq!(s.get(b"old")?, None);
    assert_eq!(s.get(&9_999u32.to_be_bytes())?, Some(9_999u32.to_le_bytes().to_vec()));
    drop(s);
    let s = KvStore::rocksdb("big", dir.path(), &RocksDbConfig::default())?;
    assert_eq!(s.checkpoint(), Some(10_003));
    assert_eq!(s.all()?.count(), 9_999);
    Ok(())
}
