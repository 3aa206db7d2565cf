//! Standby replicas under load on the real broker, in process (the basics are
//! in `standby_replicas.rs`): two word-count instances with
//! `num.standby.replicas=1`, caching off (`statestore.cache.max.bytes=0`), so
//! that every word occurrence is one changelog record, one update a standby
//! copy applies.
//!
//! - A standby that falls behind and catches up: a burst of input leaves
//!   the copies behind their changelogs for a while (a lag above the one
//!   commit marker a caught-up copy is left behind by), then they are level
//!   again with every update applied, and stale reads on either instance
//!   answer the final counts of the other's keys.
//! - A standby promoted to active mid-restore: the second instance's copies
//!   of the first one's large store are still reading it, cold, when the
//!   first instance closes; the promoted tasks restore only what their copies
//!   had not applied (copy + restore = the whole changelog, each record once)
//!   and counting goes on exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use integration_tests::{
    create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_for_group_caught_up, wait_until,
};
use rivulet_examples::word_count;
use streams_core::partitioner::partition_for_key;
use streams_core::runtime::{KafkaStreams, State, StateRestoreListener};
use streams_core::{QueryableStoreTypes, StoreQueryParameters, TaskId};

mod common;
use common::{config, records};

const TIMEOUT: Duration = Duration::from_secs(120);
const STORE: &str = "word-counts-store";
const PARTITIONS: i32 = 4;
/// The sub-topology that counts (after the repartition by word).
const COUNTING: u32 = 1;

type Counts = BTreeMap<String, Option<String>>;

/// Word `i`.
fn word(i: usize) -> String {
    format!("w{i}")
}

/// Lines naming words `from..to`, each once, twenty a line.
fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to)
        .collect::<Vec<_>>()
        .chunks(20)
        .map(|c| c.iter().map(|&i| word(i)).collect::<Vec<_>>().join(" "))
        .collect()
}

/// Words `0..words` counted `n` times each.
fn expected(words: usize, n: u64) -> Counts {
    (0..words).map(|i| (word(i), Some(n.to_string()))).collect()
}

/// The counting task (and changelog partition) of a word.
fn partition_of(word: &str) -> Option<i32> {
    partition_for_key(word.as_bytes(), PARTITIONS)
}

fn instance(
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
    listener: Option<Arc<dyn StateRestoreListener>>,
) -> Result<KafkaStreams, Box<dyn Error>> {
    let mut c = config(app, dir, "exactly_once_v2");
    c.set("num.standby.replicas", "1")?;
    c.set("http.listen", "127.0.0.1:0")?;
    // Every count update goes to the changelog as it happens.
    c.set("statestore.cache.max.bytes", "0")?;
    let streams = KafkaStreams::new(word_count::topology(input, output)?, c)?;
    if let Some(l) = listener {
        streams.set_restore_listener(l);
    }
    streams.start()?;
    Ok(streams)
}

fn counting_tasks(s: &KafkaStreams) -> BTreeSet<TaskId> {
    s.local_tasks().into_iter().filter(|t| t.subtopology == COUNTING).collect()
}

fn applied(s: &KafkaStreams) -> u64 {
    s.metrics().standby_records_applied
}

#[test]
fn standby_falls_behind_and_catches_up() -> Result<(), Box<dyn Error>> {
    const WORDS: usize = 20_000;
    /// Passes over the words in the burst: 100,000 occurrences.
    const BURST: u64 = 5;
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let started = Instant::now();
    let (input, output, app) = (unique_name("catchup-lines"), unique_name("catchup-counts"), unique_name("catchup"));
    create_topic_blocking(&input, PARTITIONS)?;
    create_topic_blocking(&output, PARTITIONS)?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = instance(&app, &input, &output, dir_a.path(), None)?;
    let b = instance(&app, &input, &output, dir_b.path(), None)?;
    wait_until(TIMEOUT, "both instances running with counting tasks", || {
        (a.state() == State::Running
            && b.state() == State::Running
            && counting_tasks(&a).len() == 2
            && counting_tasks(&b).len() == 2)
            .then_some(())
    })?;

    // Each instance holds copies of the other's counting tasks, caught up:
    // at most the last commit marker behind.
    let level = |min_applied: u64| {
        let (on_a, on_b) = (a.standby_tasks(), b.standby_tasks());
        let keys = |m: &BTreeMap<TaskId, u64>| m.keys().copied().collect::<BTreeSet<_>>();
        keys(&on_a) == counting_tasks(&b)
            && keys(&on_b) == counting_tasks(&a)
            && on_a.len() == 2
            && on_b.len() == 2
            && on_a.values().chain(on_b.values()).all(|lag| *lag <= 1)
            && applied(&a) + applied(&b) >= min_applied
    };
    produce(&input, &records(&lines(0, WORDS), 1_000))?;
    wait_until(TIMEOUT, "copies level with the first load", || level(WORDS as u64).then_some(()))?;
    let applied_before = applied(&a) + applied(&b);
    let tasks_before = (counting_tasks(&a), counting_tasks(&b));

    // The burst. A copy's lag is measured (every 2 s, kept until the next
    // measurement, so polling every 50 ms sees every one) against its
    // changelog's committed end: while the instances commit a transaction
    // every 100 ms, a measurement finds the copies records behind. A
    // sampler remembers every such measurement.
    let burst: Vec<String> = (0..BURST).flat_map(|_| lines(0, WORDS)).collect();
    let occurrences = BURST * WORDS as u64;
    let stop = AtomicBool::new(false);
    let burst_started = Instant::now();
    let ((max_lag, behind), caught_up) = std::thread::scope(|s| -> Result<_, Box<dyn Error>> {
        let sampler = s.spawn(|| {
            let mut max: (u64, Option<(&str, TaskId)>) = (0, None);
            // Each measurement that found a copy behind (a lag above 1).
            let mut behind: BTreeSet<(&str, TaskId, u64)> = BTreeSet::new();
            let _ = wait_until(TIMEOUT * 2, "the end of the burst", || {
                for (name, lags) in [("A", a.standby_tasks()), ("B", b.standby_tasks())] {
                    for (task, lag) in lags.into_iter().filter(|(_, lag)| *lag > 1) {
                        behind.insert((name, task, lag));
                        if lag > max.0 {
                            max = (lag, Some((name, task)));
                        }
                    }
                }
                stop.load(Ordering::Acquire).then_some(())
            });
            (max, behind.len())
        });
        let done = produce(&input, &records(&burst, 100_000)).map_err(Box::<dyn Error>::from).and_then(|()| {
            // Every update of the burst applied to a copy, every copy level.
            Ok(wait_until(TIMEOUT, "copies level with the burst", || {
                level(applied_before + occurrences).then_some(burst_started.elapsed())
            })?)
        });
        stop.store(true, Ordering::Release);
        let max = sampler.join().map_err(|_| "the lag sampler panicked")?;
        Ok((max, done?))
    })?;
    let grew = applied(&a) + applied(&b) - applied_before;
    eprintln!(
        "burst of {occurrences} occurrences: largest standby lag seen {} ({:?}), {behind} lag measurements above 1; \
         copies level after {caught_up:?}, {grew} changelog records applied to copies",
        max_lag.0, max_lag.1
    );
    assert!(max_lag.0 > 1, "a copy fell behind its changelog during the burst (largest lag seen: {})", max_lag.0);
    assert!(grew >= occurrences, "every update of the burst applied to a copy ({grew} of {occurrences})");
    assert_eq!((counting_tasks(&a), counting_tasks(&b)), tasks_before, "no task moved: the copies are the same");

    // Stale reads on either instance: its own keys and, from its copies, the
    // other's, all with their final counts.
    let want = expected(WORDS, BURST + 1);
    let params = || StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>());
    for (name, s) in [("A", &a), ("B", &b)] {
        let own = s.store(params())?.all()?.len();
        let stale: Counts = s
            .store(params().enable_stale_stores())?
            .all()?
            .into_iter()
            .map(|(k, n)| (k, Some(n.to_string())))
            .collect();
        assert!(own > 0 && own < WORDS, "{name} runs part of the store ({own} keys)");
        assert_eq!(stale, want, "stale reads on {name} (its own {own} keys and its copies') give the final counts");
    }

    let got = read_until(&output, TIMEOUT, |r| latest_by_key(r) == want)?;
    assert_eq!(latest_by_key(&got), want);
    a.close();
    b.close();
    eprintln!("standby_falls_behind_and_catches_up took {:?}", started.elapsed());
    Ok(())
}

/// A restore as a listener saw it.
#[derive(Debug, Clone, Copy)]
struct Restore {
    task: TaskId,
    start: i64,
    end: i64,
    /// Records restored, once it ended.
    restored: Option<u64>,
}

/// Every restore of an instance, in order.
#[derive(Default)]
struct Restores(Mutex<Vec<Restore>>);

impl Restores {
    fn all(&self) -> Vec<Restore> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl StateRestoreListener for Restores {
    fn on_restore_start(&self, task: TaskId, _store: &str, start: i64, end: i64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(Restore { task, start, end, restored: None });
    }

    fn on_restore_end(&self, task: TaskId, _store: &str, total: u64) {
        let mut all = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = all.iter_mut().rev().find(|r| r.task == task && r.restored.is_none()) {
            r.restored = Some(total);
        }
    }
}

#[test]
fn standby_promoted_mid_restore() -> Result<(), Box<dyn Error>> {
    const WORDS: usize = 100_000;
    /// Passes over the words before the second instance starts: 400,000
    /// changelog records, about half of them in the tasks it gets copies of.
    /// A copy reads some 100,000-200,000 records a second and is closed at
    /// most about 0.6 s after A's claim is withdrawn (the standby thread
    /// looks at the claims every 500 ms): 200,000 records are not read in
    /// that time.
    const PASSES: u64 = 4;
    /// Words counted once more at the end.
    const MORE: usize = 20_000;
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let started = Instant::now();
    let (input, output, app) = (unique_name("promote-lines"), unique_name("promote-counts"), unique_name("promote"));
    create_topic_blocking(&input, PARTITIONS)?;
    create_topic_blocking(&output, PARTITIONS)?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);

    // A alone counts a large store and commits it.
    let a = instance(&app, &input, &output, dir_a.path(), None)?;
    wait_until(TIMEOUT, "A running every task", || {
        (a.state() == State::Running && counting_tasks(&a).len() == PARTITIONS as usize).then_some(())
    })?;
    let load: Vec<String> = (0..PASSES).flat_map(|_| lines(0, WORDS)).collect();
    produce(&input, &records(&load, 1_000))?;
    wait_for_group_caught_up(&app, &[&input], TIMEOUT)?;
    // Changelog records per counting task: one per occurrence of its words.
    let mut changelog: BTreeMap<i32, u64> = BTreeMap::new();
    for i in 0..WORDS {
        *changelog.entry(partition_of(&word(i)).ok_or("no partition")?).or_default() += PASSES;
    }
    eprintln!("{:?}: A counted {} occurrences of {WORDS} words", started.elapsed(), PASSES * WORDS as u64);

    // B joins: the group (eager range assignment) splits the tasks; B
    // restores its half cold as active, claims it, and only then, with two
    // instances in the claims, its standby thread copies A's half from the
    // start of their changelogs. A closes as soon as the copies have
    // applied something: its claim is withdrawn, B's standby thread closes
    // the copies at its next look, and after B's next heartbeat the group
    // gives B every task.
    let restores = Arc::new(Restores::default());
    let b = instance(&app, &input, &output, dir_b.path(), Some(restores.clone()))?;
    let (promoted, applied_at_close) = wait_until(TIMEOUT, "B's copies of A's tasks reading", || {
        let copies: BTreeSet<TaskId> = b.standby_tasks().into_keys().collect();
        let n = applied(&b);
        (b.state() == State::Running && copies.len() == 2 && copies == counting_tasks(&a) && n > 0)
            .then_some((copies, n))
    })?;
    let copy_size: u64 = promoted.iter().map(|t| changelog.get(&t.partition).copied().unwrap_or(0)).sum();
    let before_close = restores.all().len();
    let closing = Instant::now();
    a.close();
    let closed_in = closing.elapsed();

    // B takes every task over; the promoted ones restore from their copies'
    // checkpoints.
    wait_until(TIMEOUT, "B running every task", || {
        (b.state() == State::Running && counting_tasks(&b).len() == PARTITIONS as usize && b.standby_tasks().is_empty())
            .then_some(())
    })?;
    let took_over = closing.elapsed();
    let applied_total = applied(&b);
    let after: Vec<Restore> =
        restores.all().into_iter().skip(before_close).filter(|r| promoted.contains(&r.task)).collect();
    let restored: u64 = after.iter().map(|r| r.restored.unwrap_or(0)).sum();
    eprintln!(
        "copies of {promoted:?} ({copy_size} changelog records): {applied_at_close} applied when A closed \
         (in {closed_in:?}), {applied_total} in all; the promoted tasks restored {restored} records \
         (B running every task {took_over:?} after the close): {:?}",
        after
    );
    eprintln!(
        "{}",
        if restored > 0 {
            "promoted mid-copy: the restore went on from the copies' checkpoints"
        } else {
            "the copies had finished before they were promoted: nothing left to restore"
        }
    );
    assert!(after.iter().all(|r| r.restored.is_some()), "every restore started ended: {after:?}");
    assert_eq!(
        applied_total + restored,
        copy_size,
        "each changelog record of the promoted tasks applied once: by the copy or by the restore"
    );
    assert!(applied_total > 0 && restored < copy_size, "the copies' work was kept, not restored again");
    for r in &after {
        // A copy that had applied nothing yet restores in full; the others
        // from where they were.
        let full = changelog.get(&r.task.partition).copied().unwrap_or(0);
        if r.start == 0 {
            assert_eq!(r.restored, Some(full), "a full restore of a copy that had not started: {r:?}");
        } else {
            let span = u64::try_from(r.end - r.start)?;
            assert!(r.restored <= Some(span) && r.restored < Some(full), "a restore from the copy's checkpoint: {r:?}");
        }
    }
    assert!(
        restored > 0,
        "the copies were still reading when promoted ({applied_at_close} of {copy_size} applied when A closed)"
    );

    // Counting goes on: nothing lost, nothing counted twice.
    produce(&input, &records(&lines(0, MORE), 10_000_000))?;
    let mut want = expected(WORDS, PASSES);
    want.extend(expected(MORE, PASSES + 1));
    let got = read_until(&output, TIMEOUT, |r| latest_by_key(r) == want)?;
    assert_eq!(latest_by_key(&got), want);
    b.close();
    eprintln!("standby_promoted_mid_restore took {:?}", started.elapsed());
    Ok(())
}
