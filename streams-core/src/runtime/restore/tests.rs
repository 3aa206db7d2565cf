//! The changelog reader against librdkafka's mock cluster.
#![allow(clippy::unwrap_used)]
use std::sync::atomic::Ordering;

use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};

use super::*;
use crate::serde::StringSerde;
use crate::store::{StoreContext, Stores};

const CHANGELOG: &str = "app-s-changelog";
const TASK: TaskId = TaskId { subtopology: 0, partition: 0 };

type Cluster = MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A mock cluster whose changelog holds `k0 = v0`, `k1 = v1`, … (`n`
/// records), a reader of it and an in-memory store to restore.
fn setup(n: usize) -> Result<(Cluster, ChangelogReader, StoreEntry), Box<dyn std::error::Error>> {
    let cluster = MockCluster::new(1)?;
    fill(&cluster, CHANGELOG, n)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "restore-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    Ok((cluster, ChangelogReader::new(consumer, None, "restore-test-writer".into()), store("s", CHANGELOG)?))
}

/// A new topic `topic` of one partition holding `k0 = v0`, `k1 = v1`, …
/// (`n` records).
fn fill(cluster: &Cluster, topic: &str, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    cluster.create_topic(topic, 1, 1)?;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create()?;
    for i in 0..n {
        let (key, value) = (format!("k{i}"), format!("v{i}"));
        loop {
            match producer.send(BaseRecord::to(topic).key(&key).payload(&value).partition(0)) {
                Ok(()) => break,
                // The producer's queue is full: let it drain.
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

/// An empty in-memory store (nothing is written under the task directory).
fn store(name: &str, changelog: &str) -> Result<StoreEntry, Box<dyn std::error::Error>> {
    let ctx = StoreContext {
        task_dir: std::env::temp_dir().join("restore-test-unused"),
        rocksdb: Default::default(),
        cache_max_bytes: 0,
        timed_operations: false,
    };
    Ok(Stores::key_value_store_builder(Stores::in_memory_key_value_store(name), StringSerde, StringSerde)
        .build(&ctx, changelog.to_owned())?)
}

/// Steps until every one of `tasks` is restored.
fn restore_until_done(
    reader: &mut ChangelogReader,
    tasks: &[TaskId],
    cx: RestoreContext<'_>,
) -> Result<(), StreamsError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left: BTreeSet<TaskId> = tasks.iter().copied().collect();
    while !left.is_empty() {
        assert!(Instant::now() < deadline, "the restore of {left:?} did not end");
        for outcome in reader.step(2_000, Duration::from_millis(100), cx)? {
            if let Restored::Done(t) = outcome {
                left.remove(&t);
            }
        }
    }
    Ok(())
}

fn context<'a>(counters: &'a Counters, progress: &'a Mutex<BTreeMap<(TaskId, String), u64>>) -> RestoreContext<'a> {
    RestoreContext { listener: None, retry: RetryPolicy { timeout: Duration::from_secs(30), counters }, progress }
}

/// Whether the store holds `k0 = v0` … `k{n-1}` and nothing past it.
fn holds_first(store: &StoreEntry, n: usize) -> Result<bool, Box<dyn std::error::Error>> {
    let handle = store.key_value::<String, String>()?;
    for i in [0, n.saturating_sub(1), n / 2] {
        if i < n && handle.get(&format!("k{i}"))? != Some(format!("v{i}")) {
            return Ok(false);
        }
    }
    Ok(handle.get(&format!("k{n}"))?.is_none())
}

#[test]
fn a_step_stopped_by_its_budget_leaves_a_backlog_and_the_last_one_none() -> Result<(), Box<dyn std::error::Error>> {
    let (_cluster, mut reader, store) = setup(12)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&store, CHANGELOG)), cx)?);
    assert!(!reader.has_backlog(), "nothing read yet");
    // Slices of 5 over 12 records: the slices that stop at their budget
    // leave a backlog, and once the task is done there is none.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut backlogs = 0;
    loop {
        assert!(Instant::now() < deadline, "the restore did not end");
        let outcomes = reader.step(5, Duration::from_millis(100), cx)?;
        backlogs += usize::from(reader.has_backlog());
        if outcomes.iter().any(|o| matches!(o, Restored::Done(t) if *t == TASK)) {
            break;
        }
    }
    assert!(backlogs >= 1, "no slice stopped at its budget");
    assert!(!reader.has_backlog(), "a backlog left once every store is restored");
    assert_eq!(counters.restored.load(Ordering::Relaxed), 12);
    Ok(())
}

#[test]
fn a_task_is_restored_once_every_batch_of_its_changelog_is_written() -> Result<(), Box<dyn std::error::Error>> {
    // Several batches: the writer has some in flight as reading goes on.
    let n = 3 * FLUSH_RECORDS + 123;
    let (_cluster, mut reader, store) = setup(n)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&store, CHANGELOG)), cx)?);
    restore_until_done(&mut reader, &[TASK], cx)?;
    assert!(!reader.is_restoring());
    assert_eq!(store.checkpoint(), Some(n as u64), "the last batch's checkpoint");
    assert!(holds_first(&store, n)?, "every record is in the store");
    assert_eq!(counters.restored.load(Ordering::Relaxed), n as u64);
    assert!(progress.lock().unwrap().is_empty(), "nothing left to read: {progress:?}");
    Ok(())
}

#[test]
fn a_task_closed_while_it_restores_keeps_every_batch_handed_over() -> Result<(), Box<dyn std::error::Error>> {
    let n = 3 * FLUSH_RECORDS;
    let (_cluster, mut reader, store) = setup(n)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&store, CHANGELOG)), cx)?);
    // Read until two batches were handed over; the writer may still be
    // at them.
    let deadline = Instant::now() + Duration::from_secs(60);
    let handed_over = |reader: &ChangelogReader| reader.tasks[&TASK].stores[0].submitted;
    while handed_over(&reader) < Some(2 * FLUSH_RECORDS as i64) {
        assert!(Instant::now() < deadline, "two batches were not read");
        reader.step(1_000, Duration::from_millis(100), cx)?;
    }
    reader.remove(TASK, cx);
    assert!(!reader.is_restoring());
    // Both batches are written (the store could be closed now), and
    // what was read after them is not.
    assert_eq!(store.checkpoint(), Some(2 * FLUSH_RECORDS as u64));
    assert!(holds_first(&store, 2 * FLUSH_RECORDS)?);
    assert_eq!(counters.restored.load(Ordering::Relaxed), 2 * FLUSH_RECORDS as u64);
    assert_eq!(
        counters.restore_total.load(Ordering::Relaxed),
        2 * FLUSH_RECORDS as u64,
        "what was not written is no longer to restore"
    );
    Ok(())
}

#[test]
fn a_store_read_to_its_end_leaves_the_others_reading_where_they_are() -> Result<(), Box<dyn std::error::Error>> {
    // Two stores of one task: the small one ends first and its
    // partition is unassigned while the large one goes on.
    let (cluster, mut reader, large) = setup(2 * FLUSH_RECORDS + 7)?;
    fill(&cluster, "app-small-changelog", 5)?;
    let small = store("small", "app-small-changelog")?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    let changelogs = [(&large, CHANGELOG), (&small, "app-small-changelog")];
    assert!(reader.register(TASK, changelogs.into_iter(), cx)?);
    restore_until_done(&mut reader, &[TASK], cx)?;
    assert_eq!(small.checkpoint(), Some(5));
    assert!(holds_first(&small, 5)?);
    assert_eq!(large.checkpoint(), Some(2 * FLUSH_RECORDS as u64 + 7));
    assert!(holds_first(&large, 2 * FLUSH_RECORDS + 7)?);
    assert_eq!(counters.restored.load(Ordering::Relaxed), 2 * FLUSH_RECORDS as u64 + 12);
    Ok(())
}

#[test]
fn a_task_opened_again_restores_from_its_own_checkpoint_not_where_the_last_read_stopped(
) -> Result<(), Box<dyn std::error::Error>> {
    // Another task keeps the reader's assignment alive meanwhile.
    let (cluster, mut reader, first) = setup(2 * FLUSH_RECORDS)?;
    fill(&cluster, "app-other-changelog", 3 * FLUSH_RECORDS)?;
    let other = store("other", "app-other-changelog")?;
    let other_task = TaskId { subtopology: 1, partition: 0 };
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&first, CHANGELOG)), cx)?);
    assert!(reader.register(other_task, std::iter::once((&other, "app-other-changelog")), cx)?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.tasks[&TASK].stores[0].next < 1_000 {
        assert!(Instant::now() < deadline, "nothing was read");
        reader.step(500, Duration::from_millis(100), cx)?;
    }
    // Closed, its state wiped, and opened again: read from the start.
    reader.remove(TASK, cx);
    let wiped = store("s", CHANGELOG)?;
    assert!(reader.register(TASK, std::iter::once((&wiped, CHANGELOG)), cx)?);
    restore_until_done(&mut reader, &[TASK, other_task], cx)?;
    assert_eq!(wiped.checkpoint(), Some(2 * FLUSH_RECORDS as u64));
    assert!(holds_first(&wiped, 2 * FLUSH_RECORDS)?, "every record from the start");
    assert!(holds_first(&other, 3 * FLUSH_RECORDS)?);
    Ok(())
}

#[test]
fn the_only_task_opened_again_restores_from_its_own_checkpoint() -> Result<(), Box<dyn std::error::Error>> {
    // As a corrupted task: closed mid-restore, wiped, and opened again
    // with nothing else restoring meanwhile.
    let (_cluster, mut reader, first) = setup(2 * FLUSH_RECORDS)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&first, CHANGELOG)), cx)?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while reader.tasks[&TASK].stores[0].next < 1_000 {
        assert!(Instant::now() < deadline, "nothing was read");
        reader.step(500, Duration::from_millis(100), cx)?;
    }
    reader.remove(TASK, cx);
    assert!(!reader.is_restoring());
    let wiped = store("s", CHANGELOG)?;
    assert!(reader.register(TASK, std::iter::once((&wiped, CHANGELOG)), cx)?);
    restore_until_done(&mut reader, &[TASK], cx)?;
    assert_eq!(wiped.checkpoint(), Some(2 * FLUSH_RECORDS as u64));
    assert!(holds_first(&wiped, 2 * FLUSH_RECORDS)?, "every record from the start");
    Ok(())
}

/// Holds `store`'s lock on a thread of its own, so that the writer's
/// writes into it wait, until a message comes or 60 s pass; the thread
/// returns whether it let go for the deadline.
fn hold(store: &StoreEntry) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<bool>) {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (held_tx, held) = std::sync::mpsc::channel::<()>();
    let store = store.clone();
    let holder = std::thread::spawn(move || {
        let _guard = store.lock_key_value();
        let _ = held_tx.send(());
        released.recv_timeout(Duration::from_secs(60)).is_err()
    });
    held.recv().unwrap();
    (release, holder)
}

/// Steps `reader` (as a thread with running tasks does: no wait) while
/// `store`'s writes wait, until `enough`; asserts that no step waited for a
/// write and that none reported a restored task.
fn step_while_held(
    reader: &mut ChangelogReader,
    store: &StoreEntry,
    cx: RestoreContext<'_>,
    mut enough: impl FnMut(&ChangelogReader) -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let (release, holder) = hold(store);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !enough(reader) {
        assert!(Instant::now() < deadline, "the steps never got there");
        let outcomes = reader.step(2_000, Duration::ZERO, cx)?;
        assert!(outcomes.is_empty(), "{outcomes:?} while no write ended");
    }
    release.send(())?;
    assert!(!holder.join().unwrap(), "a step waited for the held write");
    Ok(())
}

/// Restores `n` records while the store's writes wait: the steps return
/// all the same (a thread with running tasks never waits on a write),
/// read no more than the writer's queue and one batch can hold, and
/// report nothing restored; once the writes go on, every record is
/// restored, in order.
fn restore_while_writes_wait(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    let (_cluster, mut reader, store) = setup(n)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&store, CHANGELOG)), cx)?);
    let mut full_steps = 0;
    step_while_held(&mut reader, &store, cx, |reader| {
        full_steps += usize::from(reader.writer.is_full());
        full_steps >= 20
    })?;
    // Held: the batch being written and the QUEUED (2) waiting.
    assert!(reader.writer.in_flight() <= 3, "{} batches in flight", reader.writer.in_flight());
    let s = &reader.tasks[&TASK].stores[0];
    assert!(s.batch.len() <= FLUSH_RECORDS + FETCH_BATCH, "{} records kept back", s.batch.len());
    assert_eq!(s.restored, 0);
    assert!(!reader.has_backlog(), "waiting for the writer is no backlog");
    restore_until_done(&mut reader, &[TASK], cx)?;
    assert!(holds_first(&store, n)?);
    assert_eq!(store.checkpoint(), Some(n as u64));
    assert_eq!(counters.restored.load(Ordering::Relaxed), n as u64);
    Ok(())
}

#[test]
fn a_store_read_on_while_its_writes_wait_keeps_its_next_batch_until_the_writer_has_room(
) -> Result<(), Box<dyn std::error::Error>> {
    // Three batches of 10,000 go to the writer; the fourth waits, and
    // nothing more is read meanwhile.
    restore_while_writes_wait(45_123)
}

#[test]
fn a_store_read_to_its_end_while_its_writes_wait_is_restored_once_its_last_batch_is_written(
) -> Result<(), Box<dyn std::error::Error>> {
    // Three batches go to the writer, and the last 500 records wait.
    restore_while_writes_wait(30_500)
}

#[test]
fn a_task_closed_while_its_last_batch_waits_for_the_writer_keeps_its_store_written_to_the_end(
) -> Result<(), Box<dyn std::error::Error>> {
    let n = 30_500;
    let (_cluster, mut reader, store) = setup(n)?;
    let (counters, progress) = (Counters::default(), Mutex::default());
    let cx = context(&counters, &progress);
    assert!(reader.register(TASK, std::iter::once((&store, CHANGELOG)), cx)?);
    step_while_held(&mut reader, &store, cx, |reader| {
        let s = &reader.tasks[&TASK].stores[0];
        matches!(s.phase, Phase::Applying) && !s.handed_over()
    })?;
    // Closed before any step could hand the last batch over.
    reader.remove(TASK, cx);
    assert!(reader.take_failure().is_none());
    assert_eq!(store.checkpoint(), Some(n as u64), "checkpointed at the changelog's end");
    assert!(holds_first(&store, n)?);
    assert_eq!(counters.restored.load(Ordering::Relaxed), n as u64);
    Ok(())
}
