//! F1 failover: word count (W2's topology) under exactly_once_v2 on two
//! instances of one application, one of them killed with SIGKILL once its
//! output is complete and the standby copies have caught up.
//!
//! Both instances run the same command (a template in which `{instance}`
//! becomes `a` or `b`, for their state directories) and print a status line
//! to stdout every 100 ms (rivulet-bench's contender with `--status-ms`, the
//! Kafka Streams peer's workload `f1`); both run with a 1 s heartbeat
//! interval (`heartbeat.interval.ms`) and the given session time-out:
//!
//! `STATUS state=RUNNING active=0_1,1_1 standby=1_0:0,1_2:1 restored=N at_ms=T`
//!
//! active tasks, standby copies with their lags (changelog records not read
//! yet), changelog records restored into active stores since the start, and
//! the wall-clock time the active tasks were read; and from a state listener,
//! on every change of the client's state:
//!
//! `STATE new=REBALANCING old=RUNNING at_ms=T`
//! The procedure:
//!
//! 1. Create the (empty) input topic, start both instances, and wait until
//!    the group has spread the tasks over them. The input goes in only then:
//!    with input already there, Kafka Streams' high-availability assignor
//!    leaves every active task on the instance that joined first (the caught-up
//!    one) and gives the other warm-up replicas until a probing rebalance ten
//!    minutes later, and the kill would then move all tasks or none.
//! 2. Write `words` distinct words (R1's input: one word `k{i}` per record)
//!    and wait until the output (read_committed) holds a count of 1 for every
//!    word; then until both instances report their standby copies caught up:
//!    the count sub-topology's 8 tasks have `standbys` copies in all, each
//!    with a lag of at most 1 (under exactly-once the last changelog offset
//!    is a transaction marker, which a copy does not count as read).
//! 3. SIGKILL the instance that runs more of the count tasks, and at once
//!    write one known word per input partition (keyed by the word, so that
//!    the word's input partition and its count task's partition are the same:
//!    murmur2, as the producers and both repartitions use), each counted once
//!    before, so that its correct count is now 2.
//! 4. Measure from the kill to the first correct count of a word whose task
//!    moved, and to all 8 correct; read the survivor's restored records
//!    (after minus before the kill); check the whole output exactly. The
//!    survivor's status lines say when the rebalance reached it: the first
//!    line with a moved count task active on it (and the first with all of
//!    them; Kafka Streams lists a thread's tasks only once the thread runs
//!    again, Rivulet as soon as they are assigned), and its state lines when
//!    the rebalance reached it: its first change to REBALANCING after the
//!    kill (Kafka Streams, cooperative: when the new assignment arrives;
//!    Rivulet, eager: when the revocation that starts the rebalance does, one
//!    join and sync before it). Rebalance → correct is the part each product
//!    controls; kill → rebalance is mostly the group's failure detection (the
//!    session time-out less up to one heartbeat interval, plus up to one more
//!    for the survivor to hear of it), the same protocol for both.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use streams_dsl::partitioner::partition_for_key;

use crate::measure;
use crate::workloads::{self, Workload};
use crate::Error;

/// The workload's name in the result lines.
pub(crate) const WORKLOAD: &str = "F1 failover";
/// Input (and repartition) partitions.
const PARTITIONS: i32 = 8;
/// The sub-topology of the count (and its store): W2's topology has the
/// source and the re-key in sub-topology 0 and the count behind the
/// repartition topic in 1, in Kafka Streams and in Rivulet alike.
const COUNT_SUBTOPOLOGY: u32 = 1;
/// How long the group may take to spread the tasks, and the standbys to catch up.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);
/// How often checks of status lines look (the lines come every 100 ms).
const STATUS_PACE: Duration = Duration::from_millis(50);
/// How long the failover may take, from the kill to every new count.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(180);

/// What F1 runs.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Distinct words in the store.
    pub(crate) words: u64,
    /// `num.standby.replicas` the instances were started with.
    pub(crate) standbys: u32,
    /// The consumer session time-out they were started with (reported only).
    pub(crate) session_timeout_ms: u64,
    /// The consumer heartbeat interval they were started with (reported only).
    pub(crate) heartbeat_ms: u64,
    /// How long counting the words may take.
    pub(crate) load_timeout: Duration,
}

/// One status line of an instance.
#[derive(Debug, Clone, Default)]
struct Status {
    state: String,
    /// Active tasks, as `subtopology_partition`.
    active: BTreeSet<(u32, i32)>,
    /// Standby copies and their lags (-1: not known yet).
    standby: Vec<((u32, i32), i64)>,
    restored: u64,
    /// When the active tasks were read (`at_ms`), else when the line was.
    at: Option<Instant>,
}

/// The `Instant` of a wall-clock time (ms since the epoch) in the past.
fn instant_of(at_ms: i64) -> Option<Instant> {
    Instant::now().checked_sub(Duration::from_millis(u64::try_from(crate::now_ms() - at_ms).unwrap_or(0)))
}

/// A change of an instance's state, from its `STATE` lines.
#[derive(Debug, Clone)]
struct StateChange {
    new: String,
    at: Instant,
}

impl StateChange {
    /// `STATE new=… old=… at_ms=…`; `None` for other lines.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("STATE ")?;
        let (mut new, mut at) = (None, None);
        for field in rest.split_whitespace() {
            match field.split_once('=')? {
                ("new", value) => new = Some(value.to_owned()),
                ("at_ms", value) => at = instant_of(value.parse().ok()?),
                _ => {}
            }
        }
        Some(Self { new: new?, at: at? })
    }
}

fn task(s: &str) -> Option<(u32, i32)> {
    let (sub, partition) = s.split_once('_')?;
    Some((sub.parse().ok()?, partition.parse().ok()?))
}

impl Status {
    /// `STATUS state=… active=… standby=… restored=…`; `None` for other lines.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix("STATUS ")?;
        let mut s = Self { at: Some(Instant::now()), ..Self::default() };
        for field in rest.split_whitespace() {
            let (name, value) = field.split_once('=')?;
            let items = value.split(',').filter(|x| !x.is_empty());
            match name {
                "state" => s.state = value.to_owned(),
                "active" => s.active = items.map(task).collect::<Option<_>>()?,
                "standby" => {
                    s.standby = items
                        .map(|x| {
                            let (t, lag) = x.split_once(':')?;
                            Some((task(t)?, lag.parse().ok()?))
                        })
                        .collect::<Option<_>>()?
                }
                "restored" => s.restored = value.parse().ok()?,
                "at_ms" => s.at = instant_of(value.parse().ok()?).or(s.at),
                _ => {}
            }
        }
        Some(s)
    }

    /// The partitions of the count tasks active here.
    fn count_partitions(&self) -> BTreeSet<i32> {
        self.active.iter().filter(|(sub, _)| *sub == COUNT_SUBTOPOLOGY).map(|(_, p)| *p).collect()
    }
}

/// A running instance, its latest status line, every status line whose
/// active tasks differ from the line before, and its state changes.
struct Instance {
    name: &'static str,
    child: Child,
    status: Arc<Mutex<Status>>,
    changes: Arc<Mutex<Vec<Status>>>,
    states: Arc<Mutex<Vec<StateChange>>>,
}

impl Instance {
    /// Starts `template` with `{instance}` replaced by `name`; a thread reads
    /// its stdout for status lines and passes other lines on to stderr.
    fn start(name: &'static str, template: &[String]) -> Result<Self, Error> {
        let command: Vec<String> = template.iter().map(|a| a.replace("{instance}", name)).collect();
        let (program, args) = command.split_first().ok_or("no instance command after --")?;
        let mut child = Command::new(program).args(args).stdout(Stdio::piped()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let status = Arc::new(Mutex::new(Status::default()));
        let (changes, states) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (shared, shared_changes, shared_states) = (Arc::clone(&status), Arc::clone(&changes), Arc::clone(&states));
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(s) = Status::parse(&line) {
                    let mut latest = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    if latest.active != s.active || latest.at.is_none() {
                        shared_changes.lock().unwrap_or_else(PoisonError::into_inner).push(s.clone());
                    }
                    *latest = s;
                } else if let Some(change) = StateChange::parse(&line) {
                    shared_states.lock().unwrap_or_else(PoisonError::into_inner).push(change);
                } else {
                    eprintln!("[{name}] {line}");
                }
            }
        });
        Ok(Self { name, child, status, changes, states })
    }

    /// Since `since`, when the instance first went into state `state`.
    fn entered(&self, state: &str, since: Instant) -> Option<Duration> {
        let states = self.states.lock().unwrap_or_else(PoisonError::into_inner);
        states.iter().find(|c| c.at > since && c.new == state).map(|c| c.at.duration_since(since))
    }

    fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Since `since`, when a status line first showed a count task of
    /// `partitions` active here, and when one first showed all of them.
    fn took_over(&self, partitions: &BTreeSet<i32>, since: Instant) -> (Option<Duration>, Option<Duration>) {
        let changes = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let after = |s: &&Status| s.at.is_some_and(|at| at > since);
        let elapsed = |s: &Status| s.at.map(|at| at.duration_since(since));
        let any = changes.iter().filter(after).find(|s| !s.count_partitions().is_disjoint(partitions));
        let all = changes.iter().filter(after).find(|s| s.count_partitions().is_superset(partitions));
        (any.and_then(elapsed), all.and_then(elapsed))
    }

    /// An error when the process has exited.
    fn alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait()? {
            Some(exit) => Err(format!("instance {} exited ({exit})", self.name).into()),
            None => Ok(()),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        measure::stop(&mut self.child, measure::Stop::Kill);
    }
}

/// The word-count output as a read_committed consumer sees it: the latest
/// count of every word, and how many words show the count they should.
struct Output {
    consumer: BaseConsumer,
    latest: HashMap<Vec<u8>, Vec<u8>>,
    /// word → the count it should show (the input so far).
    expected: HashMap<Vec<u8>, Vec<u8>>,
    /// Words whose latest count is the expected one.
    right: usize,
    /// Counts above the expected one (double counting) or of unknown words.
    wrong: u64,
    records: u64,
}

impl Output {
    fn new(servers: &str, topic: &str) -> Result<Self, Error> {
        Ok(Self {
            consumer: measure::verifier(servers, topic)?,
            latest: HashMap::new(),
            expected: HashMap::new(),
            right: 0,
            wrong: 0,
            records: 0,
        })
    }

    /// Expects `word` to show `count` from now on.
    fn expect(&mut self, word: &[u8], count: u64) {
        let count = count.to_string().into_bytes();
        let was = self.is_right(word);
        self.expected.insert(word.to_vec(), count);
        self.right = self.right + usize::from(self.is_right(word)) - usize::from(was);
    }

    fn is_right(&self, word: &[u8]) -> bool {
        self.expected.get(word).is_some_and(|want| self.latest.get(word) == Some(want))
    }

    /// Reads for at most `wait`; returns the word of the record read, if any.
    fn poll(&mut self, wait: Duration) -> Result<Option<Vec<u8>>, Error> {
        let Some(m) = self.consumer.poll(wait) else { return Ok(None) };
        let m = m?;
        let (word, value) = (m.key().unwrap_or_default().to_vec(), m.payload().unwrap_or_default().to_vec());
        self.records += 1;
        let count = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok());
        let over = match self.expected.get(&word) {
            Some(want) => count(&value) > count(want),
            None => true,
        };
        self.wrong += u64::from(over);
        let was = self.is_right(&word);
        self.latest.insert(word.clone(), value);
        self.right = self.right + usize::from(self.is_right(&word)) - usize::from(was);
        Ok(Some(word))
    }

    fn complete(&self) -> bool {
        self.right == self.expected.len()
    }

    /// Differences from the expected output, for the error message.
    fn describe(&self) -> String {
        let missing = self.expected.len() - self.right;
        let examples: Vec<String> = self
            .expected
            .iter()
            .filter(|(w, v)| self.latest.get(*w) != Some(*v))
            .take(5)
            .map(|(w, v)| {
                let got = self.latest.get(w).map(|g| String::from_utf8_lossy(g).into_owned());
                format!("{}: want {}, got {got:?}", String::from_utf8_lossy(w), String::from_utf8_lossy(v))
            })
            .collect();
        format!(
            "{missing} of {} words wrong, e.g. {examples:?}; {} counts too high or unknown",
            self.expected.len(),
            self.wrong
        )
    }
}

/// Polls `check` until it returns a value, pausing `pace` between calls
/// (zero for checks that wait themselves, reading the output); fails after
/// `timeout` or as soon as an instance exits.
fn wait_until<T>(
    timeout: Duration,
    pace: Duration,
    what: &str,
    instances: &mut [&mut Instance],
    mut check: impl FnMut(&[&mut Instance]) -> Result<Option<T>, Error>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check(instances)? {
            return Ok(value);
        }
        for i in instances.iter_mut() {
            i.alive().map_err(|e| format!("while waiting for {what}: {e}"))?;
        }
        if Instant::now() >= deadline {
            let statuses: Vec<String> = instances.iter().map(|i| format!("{}: {:?}", i.name, i.status())).collect();
            return Err(format!("timed out after {timeout:?} waiting for {what}; {statuses:?}").into());
        }
        std::thread::sleep(pace);
    }
}

/// The word R1's input has as record `i`.
fn word(i: u64) -> Vec<u8> {
    workloads::record(Workload::R1, i).1
}

/// Runs F1 with the instance command `template` and says how it went.
pub(crate) fn run(
    servers: &str,
    input: &str,
    output: &str,
    settings: &Settings,
    template: &[String],
) -> Result<serde_json::Value, Error> {
    let n = settings.words;
    measure::create_topic(servers, input, PARTITIONS)?;
    measure::create_topic(servers, output, PARTITIONS)?;
    let mut out = Output::new(servers, output)?;
    let mut a = Instance::start("a", template)?;
    let mut b = Instance::start("b", template)?;

    // 1. Both in the group, every task active on exactly one of them.
    wait_until(STEP_TIMEOUT, STATUS_PACE, "the tasks spread over both instances", &mut [&mut a, &mut b], |i| {
        let (sa, sb) = (i[0].status(), i[1].status());
        let spread = !sa.count_partitions().is_empty()
            && !sb.count_partitions().is_empty()
            && sa.active.is_disjoint(&sb.active)
            && sa.active.len() + sb.active.len() == 2 * PARTITIONS as usize;
        Ok(spread.then_some(()))
    })?;

    // 2. The words, then every count and the standby copies caught up.
    let started = Instant::now();
    let producer = measure::bulk_producer(servers)?;
    for i in 0..n {
        let record = workloads::record(Workload::R1, i);
        out.expect(&record.1, 1);
        measure::send_input(&producer, input, &record)?;
    }
    producer.flush(Duration::from_secs(300))?;
    let what = format!("the {n} counts");
    wait_until(settings.load_timeout, Duration::ZERO, &what, &mut [&mut a, &mut b], |_| {
        let deadline = Instant::now() + Duration::from_millis(200);
        while Instant::now() < deadline && out.poll(Duration::from_millis(50))?.is_some() {}
        Ok(out.complete().then_some(()))
    })?;
    let load_s = started.elapsed().as_secs_f64();
    eprintln!("[failover] {n} counts out after {load_s:.1} s; waiting for the standbys");
    let complete_at = Instant::now();
    let want_copies = PARTITIONS as usize * settings.standbys as usize;
    let (sa, sb) = wait_until(STEP_TIMEOUT, STATUS_PACE, "the standby copies caught up", &mut [&mut a, &mut b], |i| {
        let (sa, sb) = (i[0].status(), i[1].status());
        // Lines read after the output was complete.
        let fresh = [&sa, &sb].iter().all(|s| s.at.is_some_and(|at| at > complete_at));
        let copies: Vec<i64> = sa
            .standby
            .iter()
            .chain(&sb.standby)
            .filter(|((sub, _), _)| *sub == COUNT_SUBTOPOLOGY)
            .map(|(_, lag)| *lag)
            .collect();
        let caught_up = copies.len() == want_copies && copies.iter().all(|lag| (0..=1).contains(lag));
        Ok((fresh && caught_up).then_some((sa, sb)))
    })?;
    let settle_s = complete_at.elapsed().as_secs_f64();

    // 3. The kill: of the instance with more count tasks.
    let a_first = sa.count_partitions().len() >= sb.count_partitions().len();
    let (victim, survivor, before) = if a_first { (&mut a, &mut b, sa) } else { (&mut b, &mut a, sb) };
    let survivor_before = survivor.status();
    let moved = before.count_partitions();
    // One word per partition, each counted once so far.
    let mut again: Vec<(i32, Vec<u8>)> = Vec::new();
    for p in 0..PARTITIONS {
        let w = (0..n).map(word).find(|w| partition_for_key(w, PARTITIONS) == Some(p));
        again.push((p, w.ok_or_else(|| format!("no word of the {n} on partition {p}"))?));
    }
    let producer = measure::producer(servers, 0)?;
    let killed = Instant::now();
    victim.child.kill()?;
    let killed_name = victim.name;
    for (_, w) in &again {
        out.expect(w, 2);
        measure::send_input(&producer, input, &(w.clone(), w.clone(), crate::now_ms()))?;
    }
    producer.flush(Duration::from_secs(30))?;
    eprintln!("[failover] killed {killed_name} (count tasks on partitions {moved:?}); 8 words sent");

    // 4. Until all 8 show 2; the first of a moved partition, and the first of all.
    let mut first_moved = None;
    let mut correct: HashMap<Vec<u8>, Duration> = HashMap::new();
    let all = wait_until(FAILOVER_TIMEOUT, Duration::ZERO, "the 8 new counts", &mut [&mut *survivor], |_| {
        while let Some(w) = out.poll(Duration::from_millis(20))? {
            if let Some((p, _)) = again.iter().find(|(_, x)| *x == w) {
                if out.is_right(&w) && !correct.contains_key(&w) {
                    let at = killed.elapsed();
                    correct.insert(w, at);
                    if moved.contains(p) && first_moved.is_none() {
                        first_moved = Some(at);
                    }
                }
            }
        }
        Ok((correct.len() == again.len()).then(|| killed.elapsed()))
    })?;
    let stayed_all = again.iter().filter(|(p, _)| !moved.contains(p)).filter_map(|(_, w)| correct.get(w)).max();
    // The survivor's restore is over before it processes: a status line
    // read after the last count says how much it restored.
    let done = Instant::now();
    let after =
        wait_until(STEP_TIMEOUT, STATUS_PACE, "a status line after the failover", &mut [&mut *survivor], |i| {
            let s = i[0].status();
            Ok((s.at.is_some_and(|at| at > done) && s.state == "RUNNING").then_some(s))
        })?;
    // The lines that showed the take-over came before that one.
    let (moved_active, all_moved) = survivor.took_over(&moved, killed);
    let rebalanced = survivor.entered("REBALANCING", killed);
    // Late duplicates still count against the output.
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        out.poll(Duration::from_millis(50))?;
    }
    survivor.alive()?;
    let verified = out.complete() && out.wrong == 0 && out.latest.len() == out.expected.len();
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let since_rebalance = |d: Option<Duration>| Some(ms(d)? - ms(rebalanced)?);
    let mut result = serde_json::json!({
        "distinct_words": n,
        "standby_replicas": settings.standbys,
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_ms,
        "killed": killed_name,
        "moved_partitions": moved,
        "load_s": load_s,
        "standby_settle_s": settle_s,
        "time_to_first_correct_ms": ms(first_moved),
        "time_to_all_correct_ms": ms(Some(all)),
        "time_to_unmoved_correct_ms": ms(stayed_all.copied()),
        "time_to_rebalance_ms": ms(rebalanced),
        "time_to_moved_active_ms": ms(moved_active),
        "time_to_all_moved_active_ms": ms(all_moved),
        "rebalance_to_first_correct_ms": since_rebalance(first_moved),
        "rebalance_to_all_correct_ms": since_rebalance(Some(all)),
        "restored_records": after.restored.saturating_sub(survivor_before.restored),
        "output_records": out.records,
        "verified": verified,
    });
    if !verified {
        let error = format!("failover output wrong: {}", out.describe());
        eprintln!("rivulet-bench: {error}");
        result["error"] = serde_json::Value::String(error);
    }
    Ok(result)
}
