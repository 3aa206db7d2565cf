//! Restoration beside processing, on the real broker: one stream thread
//! runs two tasks of the same store; task 0_1 has a large changelog to
//! restore (written straight to the changelog), task 0_0 nothing. Task 0_0
//! processes its input while task 0_1 still restores: its records are
//! processed before 0_1's restore ends, and 0_1's restore goes on after
//! them. When it ends, both tasks' data is in the store, nothing restored
//! twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use integration_tests::{create_topic_blocking, produce, unique_name, wait_until};
use streams_core::partitioner::partition_for_key;
use streams_core::prelude::*;
use streams_core::runtime::{KafkaStreams, State, StateRestoreListener};
use streams_core::TaskId;
use streams_core::{QueryableStoreTypes, StoreQueryParameters};

mod common;
use common::{config, Put};

const TIMEOUT: Duration = Duration::from_secs(300);
/// Changelog records of task 0_1: enough that restoring takes many of the
/// thread's rounds.
const RESTORED: usize = 300_000;
/// Input records of task 0_0.
const PROCESSED: usize = 50;

/// What the restore of task 0_1 saw of the processing beside it.
#[derive(Default)]
struct Watch {
    processed: Arc<AtomicU64>,
    /// Batches of 0_1 applied after task 0_0 had processed a record.
    batches_after_processing: AtomicU64,
    /// Task 0_0's processed records when 0_1's restore ended, and how many
    /// records 0_1 restored.
    at_end: Mutex<Option<(u64, u64)>>,
    restores_started: Mutex<Vec<TaskId>>,
    /// The HTTP server, and `/metrics` as scraped during 0_1's first batch.
    http: std::sync::OnceLock<std::net::SocketAddr>,
    metrics_during: Mutex<Option<String>>,
}

impl StateRestoreListener for Watch {
    fn on_restore_start(&self, task: TaskId, _store: &str, _start: i64, _end: i64) {
        self.restores_started.lock().unwrap_or_else(PoisonError::into_inner).push(task);
    }

    fn on_batch_restored(&self, task: TaskId, _store: &str, _end: i64, _restored: u64) {
        if task.partition != 1 {
            return;
        }
        if self.processed.load(Ordering::SeqCst) > 0 {
            self.batches_after_processing.fetch_add(1, Ordering::SeqCst);
        }
        let mut during = self.metrics_during.lock().unwrap_or_else(PoisonError::into_inner);
        if let (None, Some(addr)) = (during.as_ref(), self.http.get()) {
            // The server runs on its own runtime: scraping from this thread is fine.
            *during = integration_tests::http::get(*addr, "/metrics").ok().map(|(_, body)| body);
        }
    }

    fn on_restore_end(&self, task: TaskId, _store: &str, total: u64) {
        if task.partition == 1 {
            *self.at_end.lock().unwrap_or_else(PoisonError::into_inner) =
                Some((self.processed.load(Ordering::SeqCst), total));
        }
    }
}

/// `n` distinct keys that the default partitioner puts on `partition` of 2.
fn keys_on(partition: i32, n: usize, prefix: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}-{i:09}"))
        .filter(|k| partition_for_key(k.as_bytes(), 2) == Some(partition))
        .take(n)
        .collect()
}

#[test]
fn a_restoring_task_does_not_stop_the_running_ones() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, app) = (unique_name("beside-in"), unique_name("beside"));
    create_topic_blocking(&input, 2)?;
    let changelog = format!("{app}-kv-changelog");
    create_topic_blocking(&changelog, 2)?;

    // Task 0_1's state, straight into its changelog partition.
    let restored_keys = keys_on(1, RESTORED, "restored");
    let value = "v".repeat(40);
    for chunk in restored_keys.chunks(100_000) {
        let records: Vec<_> = chunk.iter().map(|k| (Some(k.as_bytes()), Some(value.as_bytes()), 1_000)).collect();
        produce(&changelog, &records)?;
    }
    // Task 0_0's input, waiting before the start.
    let processed_keys = keys_on(0, PROCESSED, "processed");
    let records: Vec<_> = processed_keys.iter().map(|k| (Some(k.as_bytes()), Some(k.as_bytes()), 2_000)).collect();
    produce(&input, &records)?;

    let watch = Arc::new(Watch::default());
    let processed = Arc::clone(&watch.processed);
    let mut topology = Topology::new();
    topology
        .add_source("in", &[input.as_str()], BytesSerde, BytesSerde)?
        .add_processor("put", move || Put::counting(&processed), &["in"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::persistent_key_value_store("kv"), BytesSerde, BytesSerde),
            &["put"],
        )?;
    let dir = tempfile::tempdir()?;
    let mut c = config(&app, dir.path(), "exactly_once_v2");
    c.set("num.stream.threads", "1")?;
    c.set("http.listen", "127.0.0.1:0")?;
    let streams = KafkaStreams::new(topology, c)?;
    streams.set_restore_listener(Arc::clone(&watch) as Arc<dyn StateRestoreListener>);
    streams.start()?;
    if let Some(addr) = streams.http_address() {
        let _ = watch.http.set(addr);
    }

    let (processed_then, restored) =
        wait_until(TIMEOUT, "task 0_1 restored", || *watch.at_end.lock().unwrap_or_else(PoisonError::into_inner))?;
    wait_until(TIMEOUT, "running", || (streams.state() == State::Running).then_some(()))?;
    let started = watch.restores_started.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let batches_after = watch.batches_after_processing.load(Ordering::SeqCst);
    println!(
        "task 0_0 had processed {processed_then} of {PROCESSED} records when 0_1's restore of {restored} ended; \
         {batches_after} of 0_1's batches were applied after 0_0's first record"
    );
    assert_eq!(restored, RESTORED as u64, "0_1 restores its whole changelog, once");
    assert_eq!(started, vec![TaskId { subtopology: 0, partition: 1 }], "only 0_1 has anything to restore");
    assert_eq!(processed_then, PROCESSED as u64, "task 0_0 processes its input while 0_1 restores, not after");
    assert!(batches_after > 0, "0_1's restore goes on after 0_0 has processed");

    // Per store, `/metrics` showed what 0_1 had left while it restored.
    let during = watch.metrics_during.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
    let remaining: Vec<u64> = during
        .lines()
        .filter(|l| l.starts_with("rivulet_store_restore_remaining_records{"))
        .filter(|l| l.contains(r#"store="kv""#) && l.contains(r#"task="0_1""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        remaining.len() == 1 && remaining[0] > 0 && remaining[0] < RESTORED as u64,
        "0_1's remaining records during its restore: {remaining:?} in\n{during}"
    );

    // Both tasks' data is in the store.
    let store = streams
        .store(StoreQueryParameters::from_name_and_type("kv", QueryableStoreTypes::key_value::<Vec<u8>, Vec<u8>>()))?;
    for k in processed_keys.iter().chain(restored_keys.iter().step_by(997)) {
        assert!(store.get(&k.as_bytes().to_vec())?.is_some(), "key {k} in the store");
    }
    assert_eq!(streams.metrics().records_restored, RESTORED as u64);
    streams.close();
    Ok(())
}
