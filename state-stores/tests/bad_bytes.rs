//! Bad bytes never panic: arbitrary changelog records, stored keys and values,
//! checkpoints and corrupted RocksDB files give `Ok` or a typed `StoreError`.
//!
//! Every decode path of the stores is fed garbage here: timestamped values,
//! window and session changelog keys (restore), window/session/timestamped
//! stores reopened over data they did not write, the checkpoint entry, and the
//! RocksDB files themselves (truncated, overwritten, deleted).

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use state_stores::rocksdb::{Options, DB};
use state_stores::{
    ChangelogRecord, KeyValueStore, KvStore, Retention, RocksDbConfig, SegmentedSessionStore, SegmentedWindowStore,
    SessionStore, StateStore, StoreError, TimestampedKeyValueStore, TimestampedWindowStore, ValueAndTimestamp,
    WindowStore,
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Any error as a proptest failure (for errors that are not `std::error::Error`).
fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Times that hit the edges of the segment and retention arithmetic.
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => -1_000i64..1_000_000,
        2 => any::<i64>(),
        1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX]),
    ]
}

// The byte layout the stores document (state-stores/src/encoding.rs), rebuilt
// here to make well-formed keys and to know which keys a store must reject.

fn escaped(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 2);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 0]);
    out
}

fn changelog_key(key: &[u8], time: i64, extra: &[u8]) -> Vec<u8> {
    let mut out = escaped(key);
    out.extend_from_slice(&((time as u64) ^ (1 << 63)).to_be_bytes());
    out.extend_from_slice(extra);
    out
}

/// Whether `bytes` is `escaped(key) ++ time(8) ++ extra`, as a window or
/// session changelog key must be.
fn is_changelog_key(bytes: &[u8]) -> bool {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0 {
            match bytes.get(i + 1) {
                Some(0) => return bytes.len() >= i + 2 + 8,
                Some(0xff) => i += 2,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    false
}

/// A changelog key: garbage, or well formed with edge-case times and any suffix.
fn changelog_key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => bytes(24),
        3 => (bytes(6), time(), bytes(12)).prop_map(|(k, t, extra)| changelog_key(&k, t, &extra)),
        // Well formed but cut short anywhere.
        1 => (bytes(6), time(), bytes(12), any::<prop::sample::Index>()).prop_map(|(k, t, extra, cut)| {
            let full = changelog_key(&k, t, &extra);
            let n = cut.index(full.len() + 1);
            full[..n].to_vec()
        }),
    ]
}

fn changelog_records() -> impl Strategy<Value = Vec<ChangelogRecord>> {
    prop::collection::vec((changelog_key_strategy(), prop::option::of(bytes(16))), 0..12)
}

fn kv_records() -> impl Strategy<Value = Vec<ChangelogRecord>> {
    prop::collection::vec((bytes(12), prop::option::of(bytes(12))), 0..12)
}

fn retention() -> impl Strategy<Value = Retention> {
    prop_oneof![
        Just(Retention::new(1_000_000).with_segment_interval(100)),
        Just(Retention::new(60_000)),
        (any::<i64>(), any::<i64>()).prop_map(|(r, s)| Retention::new(r).with_segment_interval(s)),
    ]
}

/// Every read of a window store, with results ignored: only panics matter.
fn read_window_store(s: &mut dyn WindowStore, probe: &[u8], t: i64) {
    let _ = s.all();
    let _ = s.fetch_all(i64::MIN, i64::MAX);
    let _ = s.fetch_all(t, t);
    let _ = s.fetch_key_range(None, None, i64::MIN, i64::MAX);
    let _ = s.fetch_key_range(Some(probe), None, i64::MIN, t);
    let _ = s.fetch_range(probe, i64::MIN, i64::MAX);
    let _ = s.fetch(probe, t);
    let _ = s.observed_stream_time();
    let _ = s.put(probe, Some(b"v"), t);
    let _ = s.put(probe, None, t);
    let _ = s.commit(Some(9));
    let _ = s.all();
    s.abort();
}

/// Every read of a session store, with results ignored.
fn read_session_store(s: &mut dyn SessionStore, probe: &[u8], t: i64) {
    let _ = s.find_sessions_in_range(None, None, i64::MIN, i64::MAX);
    let _ = s.find_sessions_in_range(Some(probe), Some(probe), t, t);
    let _ = s.find_sessions(probe, i64::MIN, i64::MAX);
    let _ = s.fetch(probe);
    let _ = s.fetch_session(probe, t, t);
    let _ = s.put(probe, t, t.saturating_add(1), b"v");
    let _ = s.remove(probe, t, t);
    let _ = s.commit(Some(9));
    let _ = s.find_sessions_in_range(None, None, i64::MIN, i64::MAX);
    s.abort();
}

/// Restores `records` and checks the outcome: refused with a typed error
/// exactly when some key is not a window/session changelog key.
fn check_restore(s: &mut dyn StateStore, records: &[ChangelogRecord]) -> Result<(), TestCaseError> {
    let all_well_formed = records.iter().all(|(k, _)| is_changelog_key(k));
    match s.restore_batch(&mut records.iter().cloned(), 5) {
        Ok(()) => {
            prop_assert!(all_well_formed, "accepted a malformed changelog key: {records:?}");
            prop_assert_eq!(s.checkpoint(), Some(5));
        }
        Err(StoreError::MalformedChangelog { store, reason }) => {
            prop_assert!(!all_well_formed, "refused well-formed records ({reason}): {records:?}");
            prop_assert!(!store.is_empty());
        }
        Err(other) => return Err(fail(format!("unexpected error {other:?}"))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn timestamped_values_decode_or_refuse(raw in bytes(32)) {
        match ValueAndTimestamp::decode(&raw, "s") {
            Ok(vt) => {
                prop_assert!(raw.len() >= 8);
                prop_assert_eq!(&vt.value[..], &raw[8..]);
                prop_assert_eq!(ValueAndTimestamp::encode(&vt.value, vt.timestamp), raw);
            }
            Err(e @ StoreError::MalformedChangelog { .. }) => {
                prop_assert!(raw.len() < 8);
                prop_assert!(e.to_string().contains("`s`"), "{}", e);
            }
            Err(other) => return Err(fail(format!("unexpected error {other:?}"))),
        }
    }

    #[test]
    fn window_changelog_restore_refuses_malformed_keys(
        records in changelog_records(),
        retention in retention(),
        dups in any::<bool>(),
        probe in bytes(4),
        t in time(),
    ) {
        let mut s = SegmentedWindowStore::in_memory("w", retention, dups);
        check_restore(&mut s, &records)?;
        read_window_store(&mut s, &probe, t);
        let mut ts = TimestampedWindowStore::new(s);
        let _ = ts.fetch(&probe, t);
        let _ = ts.fetch_range(&probe, i64::MIN, i64::MAX);
        let _ = ts.put(&probe, b"v", t, t);
    }

    #[test]
    fn session_changelog_restore_refuses_malformed_keys(
        records in changelog_records(),
        retention in retention(),
        probe in bytes(4),
        t in time(),
    ) {
        let mut s = SegmentedSessionStore::in_memory("s", retention);
        check_restore(&mut s, &records)?;
        read_session_store(&mut s, &probe, t);
    }

    #[test]
    fn key_value_restore_takes_any_bytes(records in kv_records()) {
        let mut s = TimestampedKeyValueStore::new(KvStore::in_memory("kv"));
        s.inner_mut().restore_batch(&mut records.clone().into_iter(), 3)?;
        // Values that are not `ts(8) ++ value` are refused when read, by name.
        let short = s.inner().all()?.map(|r| r.map(|(_, v)| v.len() < 8)).collect::<Result<Vec<_>, _>>()?;
        match s.range(None, None) {
            Ok(rows) => prop_assert!(short.iter().all(|s| !s) && rows.len() == short.len()),
            Err(StoreError::MalformedChangelog { store, .. }) => {
                prop_assert!(short.iter().any(|s| *s));
                prop_assert_eq!(store, "kv");
            }
            Err(other) => return Err(fail(format!("unexpected error {other:?}"))),
        }
        for (k, _) in &records {
            let _ = s.get(k);
            let _ = s.delete(k);
        }
    }
}

fn open_raw(dir: &Path, extra_cfs: &[&str]) -> Result<DB, TestCaseError> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    let mut cfs = vec!["default", "rivulet-meta"];
    cfs.extend_from_slice(extra_cfs);
    DB::open_cf(&opts, dir, cfs).map_err(fail)
}

fn corrupt_checkpoint(dir: &Path, raw: &[u8]) -> Result<(), TestCaseError> {
    let db = open_raw(dir, &[])?;
    let meta = db.cf_handle("rivulet-meta").ok_or_else(|| fail("no meta column family"))?;
    db.put_cf(meta, b"changelog-offset", raw).map_err(fail)?;
    // Other keys in the meta column are not the store's and are ignored.
    db.put_cf(meta, raw, raw).map_err(fail)?;
    Ok(())
}

fn checkpoint_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![bytes(20), prop::collection::vec(any::<u8>(), 8)]
}

/// A reopened store with a checkpoint: the stored offset when it is 8 bytes,
/// a typed I/O error naming the checkpoint otherwise.
fn check_reopened<S: StateStore>(opened: Result<S, StoreError>, raw: &[u8]) -> Result<(), TestCaseError> {
    match (opened, <[u8; 8]>::try_from(raw)) {
        (Ok(s), Ok(arr)) => prop_assert_eq!(s.checkpoint(), Some(u64::from_be_bytes(arr))),
        (Err(e @ StoreError::Io { .. }), Err(_)) => {
            prop_assert!(e.to_string().contains("checkpoint"), "{}", e);
        }
        (Ok(s), Err(_)) => return Err(fail(format!("accepted a {}-byte checkpoint: {:?}", raw.len(), s.checkpoint()))),
        (Err(e), _) => return Err(fail(format!("unexpected error for a {}-byte checkpoint: {e:?}", raw.len()))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_corrupt_checkpoint_is_a_typed_error(raw in checkpoint_bytes()) {
        let dir = tempfile::tempdir()?;
        let config = RocksDbConfig::default();
        {
            let mut s = KvStore::rocksdb("kv", dir.path(), &config)?;
            s.put(b"k", b"v")?;
            s.commit(Some(1))?;
        }
        corrupt_checkpoint(dir.path(), &raw)?;
        check_reopened(KvStore::rocksdb("kv", dir.path(), &config), &raw)?;
        let retention = Retention::new(1_000);
        check_reopened(SegmentedWindowStore::rocksdb("w", dir.path(), &config, retention, false), &raw)?;
        check_reopened(SegmentedSessionStore::rocksdb("s", dir.path(), &config, retention), &raw)?;
    }

    /// Window, session and timestamped stores opened over bytes they did not
    /// write (a store directory reused for another kind of store, or data
    /// damaged on disk) read them as errors or skip them, never panic.
    #[test]
    fn stores_reopened_over_foreign_data_do_not_panic(
        entries in prop::collection::vec((prop_oneof![bytes(20), changelog_key_strategy().prop_map(|k| {
            // Segment prefix then a changelog key, as the segmented stores lay data out.
            let mut internal = ((k.len() as u64) ^ (1 << 63)).to_be_bytes().to_vec();
            internal.extend_from_slice(&k);
            internal
        })], bytes(20)), 0..10),
        retention in retention(),
        dups in any::<bool>(),
        probe in bytes(4),
        t in time(),
    ) {
        let dir = tempfile::tempdir()?;
        let config = RocksDbConfig::default();
        {
            let mut s = KvStore::rocksdb("kv", dir.path(), &config)?;
            for (k, v) in &entries {
                s.put(k, v)?;
            }
            s.commit(Some(1))?;
        }
        if let Ok(mut w) = SegmentedWindowStore::rocksdb("w", dir.path(), &config, retention, dups) {
            read_window_store(&mut w, &probe, t);
            let ts = TimestampedWindowStore::new(w);
            let _ = ts.fetch_range(&probe, i64::MIN, i64::MAX);
        }
        if let Ok(mut s) = SegmentedSessionStore::rocksdb("s", dir.path(), &config, retention) {
            read_session_store(&mut s, &probe, t);
        }
        let kv = TimestampedKeyValueStore::new(KvStore::rocksdb("kv", dir.path(), &config)?);
        for (k, _) in &entries {
            // The committed value may have been overwritten by the stores above.
            if let Err(e) = kv.get(k) {
                prop_assert!(matches!(e, StoreError::MalformedChangelog { .. }), "{e:?}");
            }
        }
        let _ = kv.range(None, None);
    }
}

/// How a RocksDB file is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut to this fraction (per mille) of its length.
    Truncate(u16),
    /// These bytes written over the file at this fraction (per mille) of its length.
    Overwrite(u16, Vec<u8>),
    /// The whole content replaced.
    Replace(Vec<u8>),
    Delete,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0u16..1000).prop_map(Damage::Truncate),
        (0u16..1000, prop::collection::vec(any::<u8>(), 1..64)).prop_map(|(at, b)| Damage::Overwrite(at, b)),
        bytes(64).prop_map(Damage::Replace),
        Just(Damage::Delete),
    ]
}

fn apply(path: &Path, damage: &Damage) -> std::io::Result<()> {
    let mut content = std::fs::read(path)?;
    let len = content.len();
    let at = |per_mille: u16| len * usize::from(per_mille) / 1000;
    match damage {
        Damage::Truncate(f) => content.truncate(at(*f)),
        Damage::Overwrite(f, garbage) => {
            let start = at(*f);
            for (i, b) in garbage.iter().enumerate() {
                match content.get_mut(start + i) {
                    Some(slot) => *slot = *b,
                    None => content.push(*b),
                }
            }
        }
        Damage::Replace(garbage) => content = garbage.clone(),
        Damage::Delete => return std::fs::remove_file(path),
    }
    std::fs::write(path, content)
}

/// A RocksDB store with flushed data (SST files), unflushed data (WAL) and a checkpoint.
fn populated_store(dir: &Path, config: &RocksDbConfig, window: bool) -> Res {
    let retention = Retention::new(1_000_000).with_segment_interval(1_000);
    if window {
        let mut s = SegmentedWindowStore::rocksdb("w", dir, config, retention, false)?;
        for i in 0..200i64 {
            s.put(format!("key-{}", i % 17).as_bytes(), Some(&i.to_be_bytes()), i * 100)?;
        }
        s.commit(Some(7))?;
        s.flush()?;
        s.put(b"late", Some(b"unflushed"), 30_000)?;
        s.commit(Some(8))?;
    } else {
        let mut s = KvStore::rocksdb("kv", dir, config)?;
        for i in 0..200u32 {
            s.put(format!("key-{i}").as_bytes(), &i.to_be_bytes())?;
        }
        s.commit(Some(7))?;
        s.flush()?;
        s.put(b"late", b"unflushed")?;
        s.commit(Some(8))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Damaged RocksDB files (the checkpoint lives in them too) make the store
    /// refuse to open with a typed error, or open with what RocksDB recovered.
    #[test]
    fn damaged_rocksdb_files_give_errors_not_panics(
        which in any::<prop::sample::Index>(),
        how in damage(),
        window in any::<bool>(),
        probe in bytes(6),
        t in time(),
    ) {
        let dir = tempfile::tempdir()?;
        let config = RocksDbConfig::default();
        populated_store(dir.path(), &config, window).map_err(fail)?;
        let mut files: Vec<_> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        files.retain(|p| p.is_file() && !p.ends_with("LOCK"));
        files.sort();
        prop_assume!(!files.is_empty());
        let victim = &files[which.index(files.len())];
        apply(victim, &how)?;
        if window {
            let retention = Retention::new(1_000_000).with_segment_interval(1_000);
            match SegmentedWindowStore::rocksdb("w", dir.path(), &config, retention, false) {
                Ok(mut s) => {
                    let _ = s.checkpoint();
                    read_window_store(&mut s, &probe, t);
                }
                Err(e) => prop_assert!(matches!(e, StoreError::Io { .. }), "{e:?}"),
            }
        } else {
            match KvStore::rocksdb("kv", dir.path(), &config) {
                Ok(mut s) => {
                    let _ = s.checkpoint();
                    if let Ok(iter) = s.all() {
                        for entry in iter {
                            if entry.is_err() {
                                break;
                            }
                        }
                    }
                    let _ = s.get(&probe);
                    let _ = s.put(&probe, b"v");
                    let _ = s.commit(Some(9));
                }
                Err(e) => prop_assert!(matches!(e, StoreError::Io { .. }), "{e:?}"),
            }
        }
    }
}

#[test]
fn a_column_family_the_store_does_not_know_is_a_typed_error() -> Res {
    let dir = tempfile::tempdir()?;
    drop(open_raw(dir.path(), &["unexpected"]).map_err(|e| e.to_string())?);
    match KvStore::rocksdb("kv", dir.path(), &RocksDbConfig::default()) {
        Err(e @ StoreError::Io { .. }) => assert!(e.to_string().contains("kv"), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_directory_that_is_not_a_database_is_a_typed_error() -> Res {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-999999\n")?;
    assert!(matches!(KvStore::rocksdb("kv", dir.path(), &RocksDbConfig::default()), Err(StoreError::Io { .. })));
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory")?;
    assert!(matches!(KvStore::rocksdb("kv", &file, &RocksDbConfig::default()), Err(StoreError::Io { .. })));
    Ok(())
}
