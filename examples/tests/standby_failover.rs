//! Standby replicas (`num.standby.replicas`): a warm copy of each stateful
//! task on another instance, so that a task the group moves there after a
//! crash restores only the tail of its changelog.
//!
//! Two `word-count` instances run as child processes (exactly_once_v2, each
//! with its own state directory and HTTP endpoint) and count 100,000 distinct
//! words. Once the standby copies have read their changelogs to the end, one
//! instance is killed with SIGKILL and more input follows. The survivor's
//! `/metrics` (`rivulet_restored_records_total`) says how much it restored to
//! take the moved tasks over: with standbys only the tail (at most 1% of the
//! store), without them the moved part of the store (more than 10%). A
//! read_committed reader of the output checks every count exactly, and each
//! word's counts strictly increasing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use streams_dsl::partitioner::partition_for_key;

use integration_tests::http::get;

mod common;
use common::instances::{alive, tails, wait_for, Instance};
use common::scrape::{free_address, Metrics};
use common::{args, base_args, contract_words, produce_lines, App, CountsReader, Res};

const PARTITIONS: i32 = 4;
/// The word-count store, as `/metrics` labels it.
const STORE: &str = "word-counts-store";
const WORDS_PER_LINE: usize = 10;
/// Distinct words (keys of the store) in the failover tests.
const FAILOVER_WORDS: usize = 100_000;
/// Distinct words in the standby-crash test.
const STANDBY_CRASH_WORDS: usize = 20_000;
/// Words of the first batch that are counted once more after the kill.
const AGAIN: usize = 1_000;
/// How long counting the first batch may take (two debug-build instances).
const COUNT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long any other step may take: joining, catching up, failing over.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

const RESTORED: &str = "rivulet_restored_records_total";
const REMAINING: &str = "rivulet_restore_remaining_records";
const STANDBY_TASKS: &str = "rivulet_standby_tasks";
const STANDBY_LAG: &str = "rivulet_standby_lag_records";
const STANDBY_APPLIED: &str = "rivulet_standby_records_applied_total";

/// The partition of a task id such as `1_3`.
fn task_partition(task: &str) -> Option<i32> {
    task.split_once('_')?.1.parse().ok()
}

// ---------------------------------------------------------------------------
// Instances and runs.

impl Instance {
    fn metrics(&self) -> Result<Metrics, String> {
        match get(self.http, "/metrics") {
            Ok((200, body)) => Ok(Metrics::parse(&body)),
            Ok((status, body)) => Err(format!("{}: GET /metrics answered {status}: {body}", self.name)),
            Err(e) => Err(format!("{}: GET /metrics: {e}", self.name)),
        }
    }

    /// `/health/ready` answers 200: RUNNING, nothing restoring.
    fn ready(&self) -> Result<(), String> {
        match get(self.http, "/health/ready") {
            Ok((200, _)) => Ok(()),
            Ok((status, body)) => Err(format!("{}: /health/ready answered {status}: {}", self.name, body.trim())),
            Err(e) => Err(format!("{}: GET /health/ready: {e}", self.name)),
        }
    }

    /// Ready, and its metrics say nothing is left to restore; with
    /// `standbys`, also that it holds at least one standby copy and that
    /// every copy has read its changelog to the end (one short counts: a
    /// transaction's commit marker). The scrape that said so.
    fn settled(&self, standbys: bool) -> Result<Metrics, String> {
        self.ready()?;
        let m = self.metrics()?;
        let remaining = m.get(REMAINING)?;
        if remaining > 0.0 {
            return Err(format!("{}: {REMAINING} {remaining}", self.name));
        }
        if standbys {
            let held = m.get(STANDBY_TASKS)?;
            let lags = m.standby_lags();
            if held < 1.0 || lags.len() != held as usize || lags.values().any(|lag| *lag > 1.0) {
                return Err(format!("{}: {STANDBY_TASKS} {held}, {STANDBY_LAG} by task {lags:?}", self.name));
            }
        }
        Ok(m)
    }
}

/// Reads the output until every expected count is reached, calling `watch`
/// after each read.
fn wait_counts(
    reader: &mut CountsReader,
    expected: &BTreeMap<String, u64>,
    timeout: Duration,
    what: &str,
    instances: &mut [&mut Instance],
    mut watch: impl FnMut(&CountsReader),
) -> Res<()> {
    let waited = reader.wait(
        timeout,
        what,
        |r| {
            watch(r);
            r.reached(expected)
        },
        || alive(instances),
    );
    waited.map_err(|e| format!("{e}\n{}", tails(instances)).into())
}

/// One scenario's topics, application id, logs and expected counts.
struct Run {
    name: &'static str,
    servers: String,
    app_id: String,
    input: String,
    output: String,
    logs: PathBuf,
    expected: BTreeMap<String, u64>,
    t0: Instant,
}

impl Run {
    fn new(name: &'static str) -> Res<Self> {
        let input = integration_tests::unique_name(&format!("{name}-lines"));
        let output = integration_tests::unique_name(&format!("{name}-counts"));
        integration_tests::create_topic_blocking(&input, PARTITIONS)?;
        integration_tests::create_topic_blocking(&output, PARTITIONS)?;
        let logs = std::env::temp_dir().join("rivulet-standby").join(integration_tests::unique_name(name));
        std::fs::create_dir_all(&logs)?;
        let run = Self {
            name,
            servers: integration_tests::bootstrap_servers(),
            app_id: integration_tests::unique_name(name),
            input,
            output,
            logs,
            expected: BTreeMap::new(),
            t0: Instant::now(),
        };
        run.note(&format!("input {}, logs in {}", run.input, run.logs.display()));
        Ok(run)
    }

    fn note(&self, what: &str) {
        eprintln!("[{} {:6.1}s] {what}", self.name, self.t0.elapsed().as_secs_f64());
    }

    /// Starts instance `name` (exactly_once_v2, its own state directory and
    /// HTTP port) with `standbys` standby replicas.
    fn start(&self, name: &'static str, standbys: usize) -> Res<Instance> {
        let state = tempfile::tempdir()?;
        let http = free_address()?;
        let mut a = base_args(&self.app_id, state.path());
        a.extend(args(&[
            ("--input-topic", &self.input),
            ("--output-topic", &self.output),
            ("--partitions", &PARTITIONS.to_string()),
            ("--processing-guarantee", "exactly_once_v2"),
            ("--http", &http.to_string()),
            ("--config", &format!("num.standby.replicas={standbys}")),
        ]));
        let log = self.logs.join(format!("{name}.log"));
        let app = App::start(env!("CARGO_BIN_EXE_word-count"), &a, &log)?;
        self.note(&format!("started {name} (pid {}, http {http}, log {})", app.pid(), log.display()));
        Ok(Instance { name, app, http, _state: state })
    }

    /// Produces `lines` and expects their words.
    fn produce(&mut self, lines: &[String]) -> Res<()> {
        for line in lines {
            for w in contract_words(line) {
                *self.expected.entry(w).or_default() += 1;
            }
        }
        produce_lines(&self.servers, &self.input, lines)?;
        self.note(&format!("produced {} lines ({} distinct words so far)", lines.len(), self.expected.len()));
        Ok(())
    }
}

/// Lines of `WORDS_PER_LINE` words `{prefix}{i}` for `i` in `words`.
fn lines(prefix: &str, words: std::ops::Range<usize>) -> Vec<String> {
    let words: Vec<String> = words.map(|i| format!("{prefix}{i}")).collect();
    words.chunks(WORDS_PER_LINE).map(|c| c.join(" ")).collect()
}

/// The words of `words` whose task (the partition of their key) is one of `partitions`.
fn on_partitions(words: &[String], partitions: &BTreeSet<i32>) -> Vec<String> {
    words
        .iter()
        .filter(|w| partition_for_key(w.as_bytes(), PARTITIONS).is_some_and(|p| partitions.contains(&p)))
        .cloned()
        .collect()
}

/// The partitions of task ids.
fn partitions_of<'a>(tasks: impl IntoIterator<Item = &'a String>) -> BTreeSet<i32> {
    tasks.into_iter().filter_map(|t| task_partition(t)).collect()
}

/// Whether any of `words` shows the count `n` last.
fn any_at(r: &CountsReader, words: &[String], n: u64) -> bool {
    words.iter().any(|w| r.counts.get(w).and_then(|v| v.last()) == Some(&n))
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "never seen".to_owned(), |d| format!("{} ms", d.as_millis()))
}

/// Two settled instances and a reader of their output.
struct Pair {
    a: Instance,
    b: Instance,
    reader: CountsReader,
    /// The scrapes of a's and b's `/metrics` that showed them settled.
    a_metrics: Metrics,
    b_metrics: Metrics,
}

/// Two instances, `a` started first, counting `words` distinct words
/// `{prefix}{i}`; returns once every count is out and both instances are
/// settled (and, with standbys, every standby copy on both caught up).
fn two_instances(run: &mut Run, prefix: &str, words: usize, standbys: usize) -> Res<Pair> {
    run.produce(&lines(prefix, 0..words))?;
    let mut reader = CountsReader::new(&run.servers, &run.output)?;
    let mut a = run.start("a", standbys)?;
    wait_for(STEP_TIMEOUT, "instance a to be ready", &mut [&mut a], |i| i[0].ready())?;
    run.note("a is ready");
    let mut b = run.start("b", standbys)?;
    let expected = run.expected.clone();
    wait_counts(&mut reader, &expected, COUNT_TIMEOUT, "the first batch's counts", &mut [&mut a, &mut b], |_| {})?;
    run.note(&format!("all {} counts out ({} output records)", expected.len(), reader.records));
    let what = if standbys > 0 { "both settled, their standby copies caught up" } else { "both settled" };
    let (a_metrics, b_metrics) = wait_for(STEP_TIMEOUT, what, &mut [&mut a, &mut b], |i| {
        Ok((i[0].settled(standbys > 0)?, i[1].settled(standbys > 0)?))
    })?;
    run.note(&format!("{what}: standby lags on a {:?}, on b {:?}", a_metrics.standby_lags(), b_metrics.standby_lags()));
    Ok(Pair { a, b, reader, a_metrics, b_metrics })
}

/// What a failover measured.
#[derive(Debug)]
struct Failover {
    /// Changelog records the survivor restored into active stores after the kill.
    restored: u64,
    /// Partitions of the tasks that moved to the survivor.
    moved: BTreeSet<i32>,
    /// From the kill to the first correct updated count of a moved key.
    first_moved: Option<Duration>,
    /// From the kill to every updated count.
    all_updated: Duration,
    /// Standby records applied on the survivor before the kill.
    standby_applied: f64,
}

/// 100,000 distinct words on two instances with `standbys` standby
/// replicas; a is killed, the first 1,000 words come again, and b must
/// count them all (about half live in tasks that moved from a).
fn failover(name: &'static str, standbys: usize) -> Res<Failover> {
    let mut run = Run::new(name)?;
    let Pair { mut a, mut b, mut reader, a_metrics, b_metrics } =
        two_instances(&mut run, "k", FAILOVER_WORDS, standbys)?;

    let restored_before = b_metrics.get(RESTORED)?;
    let standby_applied = b_metrics.value(STANDBY_APPLIED).unwrap_or(0.0);
    // What moves from a: the tasks b keeps standby copies of (with one
    // replica and two instances, exactly a's stateful tasks), else the
    // tasks a lists a store of.
    let moved_tasks: BTreeSet<String> =
        if standbys > 0 { b_metrics.standby_lags().into_keys().collect() } else { a_metrics.store_tasks(STORE) };
    let moved = partitions_of(&moved_tasks);
    run.note(&format!(
        "before the kill: b restored {restored_before}, applied {standby_applied} standby records; a's tasks \
         {moved_tasks:?}, a's stores {:?}, b's stores {:?}",
        a_metrics.store_tasks(STORE),
        b_metrics.store_tasks(STORE)
    ));
    assert!(!moved.is_empty(), "{name}: cannot tell which tasks a runs");

    let again: Vec<String> = (0..AGAIN).map(|i| format!("k{i}")).collect();
    let moved_words = on_partitions(&again, &moved);
    let killed = Instant::now();
    a.app.kill();
    run.note("a killed (SIGKILL)");
    run.produce(&lines("k", 0..AGAIN))?;
    let expected = run.expected.clone();
    let mut first_moved = None;
    wait_counts(&mut reader, &expected, STEP_TIMEOUT, "the updated counts after the kill", &mut [&mut b], |r| {
        if first_moved.is_none() && any_at(r, &moved_words, 2) {
            first_moved = Some(killed.elapsed());
        }
    })?;
    let all_updated = killed.elapsed();
    run.note(&format!("all {AGAIN} updated counts out after {} ms", all_updated.as_millis()));

    let after = wait_for(STEP_TIMEOUT, "b settled after the failover", &mut [&mut b], |i| i[0].settled(false))?;
    let restored_after = after.get(RESTORED)?;
    reader.drain(Duration::from_secs(60))?;
    reader.check_exact(&expected).map_err(|e| format!("{name}: {} output records: {e}", reader.records))?;
    alive(&mut [&mut b])?;
    Ok(Failover {
        restored: (restored_after - restored_before).max(0.0) as u64,
        moved,
        first_moved,
        all_updated,
        standby_applied,
    })
}

/// With a standby copy of a's tasks on b, b restores only the tail of
/// their changelogs when they move to it: at most 1% of the store.
#[test]
fn warm_failover_restores_only_the_tail() -> Res<()> {
    let started = Instant::now();
    let f = failover("standby-warm", 1)?;
    let limit = (FAILOVER_WORDS / 100) as u64;
    println!(
        "warm failover (num.standby.replicas=1, store of {FAILOVER_WORDS} keys): moved partitions {:?}; restored \
         {} records after the kill (limit {limit}); kill to first correct count of a moved key: {}; kill to all \
         {AGAIN} updated counts: {} ms; standby records applied before the kill: {}; test took {:.1} s",
        f.moved,
        f.restored,
        ms(f.first_moved),
        f.all_updated.as_millis(),
        f.standby_applied,
        started.elapsed().as_secs_f64()
    );
    assert!(f.standby_applied > 0.0, "the standby applied no changelog records");
    assert!(f.first_moved.is_some(), "no updated count of a moved key was seen");
    assert!(f.restored <= limit, "restored {} records after the kill: more than 1% of the store ({limit})", f.restored);
    Ok(())
}

/// The comparison: without standbys the survivor restores the moved
/// tasks' stores from their changelogs, well over 10% of the store.
#[test]
fn cold_failover_restores_the_moved_part() -> Res<()> {
    let started = Instant::now();
    let f = failover("standby-cold", 0)?;
    let floor = (FAILOVER_WORDS / 10) as u64;
    println!(
        "cold failover (num.standby.replicas=0, store of {FAILOVER_WORDS} keys): moved partitions {:?}; restored \
         {} records after the kill; kill to first correct count of a moved key: {}; kill to all {AGAIN} updated \
         counts: {} ms; test took {:.1} s",
        f.moved,
        f.restored,
        ms(f.first_moved),
        f.all_updated.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert!(f.restored > floor, "restored only {} records without a standby: expected over {floor}", f.restored);
    Ok(())
}

/// Killing b, which holds the standby copies of a's tasks (and runs the
/// rest): a keeps its own tasks, takes b's over from its own standby copies
/// (restoring only their tail), ends with no standby (there is no other
/// instance to keep one for) and counts everything exactly.
#[test]
fn standby_crash_does_not_touch_the_active() -> Res<()> {
    let started = Instant::now();
    let mut run = Run::new("standby-crash")?;
    let Pair { mut a, mut b, mut reader, a_metrics, b_metrics } = two_instances(&mut run, "s", STANDBY_CRASH_WORDS, 1)?;

    // b's standby copies are of a's active tasks, a's of b's.
    let (on_a, on_b) = (a_metrics.standby_lags(), b_metrics.standby_lags());
    let (b_active, a_active) = (partitions_of(on_a.keys()), partitions_of(on_b.keys()));
    assert!(a_active.is_disjoint(&b_active), "standby copies on a {on_a:?} and on b {on_b:?} overlap");
    let restored_before = a_metrics.get(RESTORED)?;
    run.note(&format!("a runs {a_active:?} and restored {restored_before} records; b runs {b_active:?}"));

    let again: Vec<String> = (0..AGAIN).map(|i| format!("s{i}")).collect();
    let (own_words, moved_words) = (on_partitions(&again, &a_active), on_partitions(&again, &b_active));
    let killed = Instant::now();
    b.app.kill();
    run.note("b killed (SIGKILL)");
    let mut more = lines("s", 0..AGAIN);
    more.extend(lines("new", 0..AGAIN));
    run.produce(&more)?;
    let expected = run.expected.clone();
    let (mut first_own, mut first_moved) = (None, None);
    wait_counts(&mut reader, &expected, STEP_TIMEOUT, "the counts after b's kill", &mut [&mut a], |r| {
        if first_own.is_none() && any_at(r, &own_words, 2) {
            first_own = Some(killed.elapsed());
        }
        if first_moved.is_none() && any_at(r, &moved_words, 2) {
            first_moved = Some(killed.elapsed());
        }
    })?;
    let all_counted = killed.elapsed();

    let after = wait_for(STEP_TIMEOUT, "a settled with no standby left", &mut [&mut a], |i| {
        let m = i[0].settled(false)?;
        let held = m.get(STANDBY_TASKS)?;
        if held > 0.0 {
            return Err(format!("a: {STANDBY_TASKS} {held} with no other instance"));
        }
        Ok(m)
    })?;
    let restored = (after.get(RESTORED)? - restored_before).max(0.0) as u64;
    reader.drain(Duration::from_secs(60))?;
    reader.check_exact(&expected).map_err(|e| format!("{} output records: {e}", reader.records))?;
    alive(&mut [&mut a])?;
    let limit = (STANDBY_CRASH_WORDS / 100) as u64;
    println!(
        "standby crash (store of {STANDBY_CRASH_WORDS} keys): a restored {restored} records after b's kill (limit \
         {limit}); kill to first updated count on a's own tasks: {}, on b's former tasks: {}; to all counts: {} ms; \
         test took {:.1} s",
        ms(first_own),
        ms(first_moved),
        all_counted.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert!(restored <= limit, "a restored {restored} records after b's kill: more than 1% of the store ({limit})");
    // a's own tasks count on while the group has not noticed b's death yet
    // (its session timeout is 6 s); b's former tasks only after that.
    let (Some(own), Some(moved)) = (first_own, first_moved) else {
        panic!("no updated count seen on a's own tasks ({first_own:?}) or on b's former ones ({first_moved:?})");
    };
    assert!(own < moved, "a's own tasks updated after b's former ones ({own:?} vs {moved:?}): they stalled");
    Ok(())
}
