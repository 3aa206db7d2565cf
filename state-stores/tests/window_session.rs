//! Window and session store edge cases, run on both implementations.

use state_stores::{
    KvStore, Retention, RocksDbConfig, SegmentedSessionStore, SegmentedWindowStore, SessionStore, StateStore,
    StoreError, TimestampedKeyValueStore, WindowEntry, WindowStore,
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Each store under test with the directory it lives in.
type UnderTest<S> = Vec<(Box<S>, tempfile::TempDir)>;

fn window_stores(retention: Retention, dups: bool) -> Res<UnderTest<dyn WindowStore>> {
    let dir = tempfile::tempdir()?;
    let rocks = SegmentedWindowStore::rocksdb("w", dir.path(), &RocksDbConfig::default(), retention, dups)?;
    Ok(vec![
        (Box::new(SegmentedWindowStore::in_memory("w", retention, dups)), tempfile::tempdir()?),
        (Box::new(rocks), dir),
    ])
}

fn starts(entries: &[WindowEntry]) -> Vec<(Vec<u8>, i64)> {
    entries.iter().map(|e| (e.key.clone(), e.window_start)).collect()
}

#[test]
fn window_boundaries_are_inclusive_and_keys_that_are_prefixes_stay_apart() -> Res {
    for (mut s, _dir) in window_stores(Retention::new(1_000_000).with_segment_interval(100), false)? {
        s.put(b"a", Some(b"1"), 0)?;
        s.put(b"a", Some(b"2"), 100)?;
        s.put(b"a", Some(b"3"), 199)?;
        s.put(b"ab", Some(b"x"), 100)?;
        s.put(b"a\0", Some(b"y"), 100)?;
        s.put(b"", Some(b"empty"), 100)?;
        assert_eq!(starts(&s.fetch_range(b"a", 100, 199)?), vec![(b"a".to_vec(), 100), (b"a".to_vec(), 199)]);
        assert_eq!(starts(&s.fetch_range(b"a", 0, 0)?), vec![(b"a".to_vec(), 0)]);
        assert_eq!(starts(&s.fetch_range(b"a", 1, 99)?), vec![]);
        assert_eq!(s.fetch(b"ab", 100)?, Some(b"x".to_vec()));
        assert_eq!(s.fetch(b"", 100)?, Some(b"empty".to_vec()));
        assert_eq!(
            starts(&s.fetch_key_range(Some(b"a"), Some(b"ab"), 0, 1000)?),
            vec![
                (b"a".to_vec(), 0),
                (b"a".to_vec(), 100),
                (b"a".to_vec(), 199),
                (b"a\0".to_vec(), 100),
                (b"ab".to_vec(), 100)
            ]
        );
        let all = s.fetch_all(100, 100)?;
        assert_eq!(
            starts(&all),
            vec![(b"".to_vec(), 100), (b"a".to_vec(), 100), (b"a\0".to_vec(), 100), (b"ab".to_vec(), 100)]
        );
        // Equal timestamps overwrite without duplicates; None deletes.
        s.put(b"a", Some(b"2b"), 100)?;
        assert_eq!(s.fetch(b"a", 100)?, Some(b"2b".to_vec()));
        s.put(b"a", None, 100)?;
        assert_eq!(s.fetch(b"a", 100)?, None);
        s.commit(Some(7))?;
        assert_eq!(s.all()?.len(), 5);
    }
    Ok(())
}

#[test]
fn duplicates_are_kept_when_asked() -> Res {
    for (mut s, _dir) in window_stores(Retention::new(10_000).with_segment_interval(1_000), true)? {
        s.put(b"k", Some(b"1"), 5)?;
        s.put(b"k", Some(b"2"), 5)?;
        s.put(b"k", Some(b"3"), 6)?;
        let values: Vec<_> = s.fetch_range(b"k", 0, 10)?.into_iter().map(|e| e.value).collect();
        assert_eq!(values, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    }
    Ok(())
}

#[test]
fn retention_drops_whole_segments_and_late_writes() -> Res {
    for (mut s, _dir) in window_stores(Retention::new(300).with_segment_interval(100), false)? {
        for t in [0, 50, 120, 250] {
            s.put(b"k", Some(b"v"), t)?;
        }
        s.commit(Some(1))?;
        // Stream time 250, retention 300: everything from -49 on is live.
        assert_eq!(s.fetch_range(b"k", 0, 1000)?.len(), 4);
        s.put(b"k", Some(b"v"), 400)?; // min live = 101: segment [0, 100) goes
        assert_eq!(
            starts(&s.fetch_range(b"k", 0, 1000)?),
            vec![(b"k".to_vec(), 120), (b"k".to_vec(), 250), (b"k".to_vec(), 400)]
        );
        s.put(b"k", Some(b"late"), 90)?;
        assert_eq!(s.expired_writes(), 1);
        assert_eq!(s.fetch(b"k", 90)?, None);
        // Fetches never return expired data, even inside a live segment.
        s.put(b"k", Some(b"v"), 419)?; // min live = 120
        assert_eq!(starts(&s.fetch_range(b"k", 0, 119)?), vec![]);
        s.commit(Some(2))?;
        assert_eq!(s.observed_stream_time(), 419);
    }
    Ok(())
}

#[test]
fn window_store_reopens_with_segments_and_stream_time() -> Res {
    let dir = tempfile::tempdir()?;
    let retention = Retention::new(300).with_segment_interval(100);
    {
        let mut s = SegmentedWindowStore::rocksdb("w", dir.path(), &RocksDbConfig::default(), retention, false)?;
        s.put(b"k", Some(b"1"), 10)?;
        s.put(b"k", Some(b"2"), 250)?;
        s.commit(Some(5))?;
        s.put(b"k", Some(b"uncommitted"), 260)?;
    }
    let mut s = SegmentedWindowStore::rocksdb("w", dir.path(), &RocksDbConfig::default(), retention, false)?;
    assert_eq!(s.checkpoint(), Some(5));
    assert_eq!(s.observed_stream_time(), 250);
    assert_eq!(s.fetch(b"k", 260)?, None);
    s.put(b"k", Some(b"3"), 400)?;
    assert_eq!(s.fetch(b"k", 10)?, None, "the old segment expired after reopening");
    Ok(())
}

#[test]
fn window_changelog_round_trips_through_restore() -> Res {
    let retention = Retention::new(1_000).with_segment_interval(100);
    let mut source = SegmentedWindowStore::in_memory("w", retention, false);
    source.set_change_logging(true);
    source.put(b"a", Some(b"1"), 10)?;
    source.put(b"b", Some(b"2"), 20)?;
    source.put(b"a", None, 10)?;
    let mut records = Vec::new();
    source.take_changes(&mut records);
    assert_eq!(records.len(), 3);
    let dir = tempfile::tempdir()?;
    let mut target = SegmentedWindowStore::rocksdb("w", dir.path(), &RocksDbConfig::default(), retention, false)?;
    target.restore_batch(&mut records.into_iter(), 3)?;
    assert_eq!(target.checkpoint(), Some(3));
    assert_eq!(target.fetch(b"a", 10)?, None);
    assert_eq!(target.fetch(b"b", 20)?, Some(b"2".to_vec()));
    let bad = target.restore_batch(&mut vec![(b"junk".to_vec(), None)].into_iter(), 4);
    assert!(matches!(bad, Err(StoreError::MalformedChangelog { .. })));
    Ok(())
}

fn session_stores(retention: Retention) -> Res<UnderTest<dyn SessionStore>> {
    let dir = tempfile::tempdir()?;
    let rocks = SegmentedSessionStore::rocksdb("s", dir.path(), &RocksDbConfig::default(), retention)?;
    Ok(vec![(Box::new(SegmentedSessionStore::in_memory("s", retention)), tempfile::tempdir()?), (Box::new(rocks), dir)])
}

#[test]
fn sessions_are_found_by_overlap_and_merged() -> Res {
    for (mut s, _dir) in session_stores(Retention::new(100_000).with_segment_interval(1_000))? {
        s.put(b"u", 0, 10, b"2")?;
        s.put(b"u", 30, 30, b"1")?;
        s.put(b"u", 100, 150, b"5")?;
        s.put(b"uu", 20, 20, b"1")?;
        // A record at 20 with gap 10 overlaps sessions ending >= 10 and starting <= 30.
        let found: Vec<_> = s.find_sessions(b"u", 10, 30)?.into_iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(found, vec![(0, 10), (30, 30)]);
        // Merge: remove both, put the merged session.
        s.remove(b"u", 0, 10)?;
        s.remove(b"u", 30, 30)?;
        s.put(b"u", 0, 30, b"4")?;
        assert_eq!(s.fetch_session(b"u", 0, 30)?, Some(b"4".to_vec()));
        assert_eq!(s.fetch_session(b"u", 0, 10)?, None);
        let all: Vec<_> = s.fetch(b"u")?.into_iter().map(|e| (e.start, e.end)).collect();
        assert_eq!(all, vec![(0, 30), (100, 150)]);
        let ranged: Vec<_> = s
            .find_sessions_in_range(Some(b"u"), Some(b"uu"), 0, 1_000)?
            .into_iter()
            .map(|e| (e.key, e.start))
            .collect();
        assert_eq!(ranged, vec![(b"u".to_vec(), 0), (b"u".to_vec(), 100), (b"uu".to_vec(), 20)]);
        // Boundaries are inclusive on both sides.
        assert_eq!(s.find_sessions(b"u", 150, 150)?.len(), 1);
        assert_eq!(s.find_sessions(b"u", 151, 1_000)?.len(), 0);
        assert_eq!(s.find_sessions(b"u", 0, 99)?.len(), 1);
        s.commit(Some(1))?;
    }
    Ok(())
}

#[test]
fn session_retention_counts_session_end() -> Res {
    for (mut s, _dir) in session_stores(Retention::new(100).with_segment_interval(10))? {
        s.put(b"k", 0, 5, b"a")?;
        s.put(b"k", 150, 200, b"b")?;
        assert!(s.fetch(b"k")?.iter().all(|e| e.end == 200));
        s.put(b"k", 0, 50, b"late")?;
        assert_eq!(s.expired_writes(), 1);
        assert_eq!(s.observed_stream_time(), 200);
    }
    Ok(())
}

#[test]
fn timestamped_values_round_trip() -> Res {
    let mut s = TimestampedKeyValueStore::new(KvStore::in_memory("t"));
    s.put(b"k", b"v", 1234)?;
    let got = s.get(b"k")?.ok_or("missing")?;
    assert_eq!((got.value.as_slice(), got.timestamp), (&b"v"[..], 1234));
    assert_eq!(s.range(None, None)?.len(), 1);
    s.inner_mut().commit(None)?;
    assert!(s.delete(b"k")?.is_some());
    Ok(())
}

#[test]
fn unreadable_store_directory_is_a_typed_error() -> Res {
    let dir = tempfile::tempdir()?;
    // A file where the store's directory should be.
    let path = dir.path().join("store");
    std::fs::write(&path, b"not a directory")?;
    let err = KvStore::rocksdb("counts", &path, &RocksDbConfig::default()).err().ok_or("opened a file as a store")?;
    let text = err.to_string();
    assert!(matches!(err, StoreError::Io { .. }));
    assert!(
        text.contains("counts") && text.contains(&path.display().to_string()) && text.contains("restored from"),
        "{text}"
    );

    // A corrupt RocksDB: garbage in CURRENT.
    let path = dir.path().join("corrupt");
    drop(KvStore::rocksdb("c", &path, &RocksDbConfig::default())?);
    std::fs::write(path.join("CURRENT"), b"garbage\n")?;
    let err = KvStore::rocksdb("c", &path, &RocksDbConfig::default()).err().ok_or("opened a corrupt store")?;
    assert!(err.to_string().contains("wiped"), "{err}");
    Ok(())
}

#[test]
fn shared_block_cache_and_config_setter_apply() -> Res {
    let called = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&called);
    let config = RocksDbConfig::new()
        .with_shared_block_cache(8 << 20)
        .with_write_buffer_size(1 << 20)
        .with_compression(state_stores::Compression::Zstd)
        .with_config_setter(move |name, opts| {
            assert!(name == "a" || name == "b");
            opts.set_max_open_files(64);
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
    let (da, db) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let mut a = KvStore::rocksdb("a", da.path(), &config)?;
    let _b = KvStore::rocksdb("b", db.path(), &config)?;
    assert_eq!(called.load(std::sync::atomic::Ordering::SeqCst), 2);
    use state_stores::KeyValueStore;
    a.put(b"k", b"v")?;
    a.commit(None)?;
    a.flush()?;
    assert_eq!(a.get(b"k")?, Some(b"v".to_vec()));
    Ok(())
}
