//! Window and session queries answered from a standby copy while the
//! owner of the key's task is dead and the group has not noticed yet.
//!
//! Two `page-views` instances run as child processes (exactly_once_v2,
//! `num.standby.replicas=1`, a 6 s session time-out, each with its own state
//! directory and HTTP endpoint) over views of users and pages spread over
//! all four partitions. Once every page's windows and every user's sessions
//! answer as the topology makes them and every standby copy has read its
//! changelog to the end, instance a is killed with SIGKILL and instance b is
//! asked at once for the windows and sessions of the keys whose tasks a ran:
//! b answers from its standby copies, 200 with `x-rivulet-stale: true`, an
//! `x-rivulet-standby-lag` of at most one record (a transaction's commit
//! marker) and exactly the owner's answer. Once the group has moved the
//! tasks to b, it answers them fresh (no stale header), still exactly. The
//! keys b ran all along answer fresh throughout.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use streams_dsl::partitioner::partition_for_key;

use integration_tests::http::{encode, get, request};
use rivulet_examples::page_views;

mod common;
use common::instances::{alive, tails, wait_for, Instance};
use common::scrape::{free_address, Metrics};
use common::{args, base_args, App, Res};

const PARTITIONS: i32 = 4;
/// The page-views window store (page → views per 1-minute window).
const WINDOW_STORE: &str = "page-view-counts-store";
/// The page-views session store (user → views per session).
const SESSION_STORE: &str = "user-sessions-store";
/// Pages (window-store keys) per partition.
const PAGES_PER_PARTITION: usize = 2;
/// Users (session-store keys) per partition.
const USERS_PER_PARTITION: usize = 3;
/// Views per user.
const VIEWS_PER_USER: usize = 5;
/// The group's session time-out (see `common::base_args`): how long a
/// killed instance still owns its tasks.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// How long any step may take: starting, answering, catching up, failing over.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

const REMAINING: &str = "rivulet_restore_remaining_records";
const STANDBY_TASKS: &str = "rivulet_standby_tasks";
const STANDBY_LAG: &str = "rivulet_standby_lag_records";
const STANDBY_APPLIED: &str = "rivulet_standby_records_applied_total";
/// Longer than the standby thread's period of measuring its copies' lags (2 s).
const MEASURED_AFTER: Duration = Duration::from_millis(2_500);

/// The sub-topology whose processors use `store`, from `/topology`'s text.
fn subtopology_of(topology: &str, store: &str) -> Option<u32> {
    let mut current = None;
    for line in topology.lines().map(str::trim) {
        if let Some(id) = line.strip_prefix("Sub-topology: ") {
            current = id.split_whitespace().next().and_then(|s| s.parse().ok());
        } else if let Some((_, stores)) = line.split_once("(stores: [") {
            let stores = stores.trim_end_matches(')').trim_end_matches(']');
            if stores.split(", ").any(|s| s == store) {
                return current;
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Instances.

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

    /// Ready, nothing left to restore, at least one standby copy held and
    /// every copy read to the end of its changelog (one short counts: a
    /// transaction's commit marker). The scrape that said so.
    fn settled(&self) -> Result<Metrics, String> {
        self.ready()?;
        let m = self.metrics()?;
        let remaining = m.get(REMAINING)?;
        if remaining > 0.0 {
            return Err(format!("{}: {REMAINING} {remaining}", self.name));
        }
        let held = m.get(STANDBY_TASKS)?;
        let lags = m.standby_lags();
        if held < 1.0 || lags.len() != held as usize || lags.values().any(|lag| *lag > 1.0) {
            return Err(format!("{}: {STANDBY_TASKS} {held}, {STANDBY_LAG} by task {lags:?}", self.name));
        }
        Ok(m)
    }

    /// One query of this instance's HTTP endpoint.
    fn ask(&self, query: &Query) -> Result<Answer, String> {
        let reply = request(self.http, &query.path).map_err(|e| format!("{}: GET {}: {e}", self.name, query.path))?;
        let stale = match reply.header("x-rivulet-stale") {
            None => false,
            Some("true") => true,
            Some(other) => return Err(format!("{}: GET {}: x-rivulet-stale: {other}", self.name, query.path)),
        };
        let lag = reply.header("x-rivulet-standby-lag").map(str::to_owned);
        let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        Ok(Answer { status: reply.status, stale, lag, body, text: reply.body })
    }
}

// ---------------------------------------------------------------------------
// The views and what the topology makes of them.

/// `per_partition` keys `{prefix}{i}` for each partition, in the order of `i`.
fn spread(prefix: &str, per_partition: usize) -> Vec<String> {
    let mut taken = [0usize; PARTITIONS as usize];
    let mut keys = Vec::new();
    for i in 0.. {
        if taken.iter().all(|n| *n == per_partition) {
            break;
        }
        let key = format!("{prefix}{i}");
        let p = partition_for_key(key.as_bytes(), PARTITIONS).unwrap_or(0) as usize;
        if taken[p] < per_partition {
            taken[p] += 1;
            keys.push(key);
        }
    }
    keys
}

/// What a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Windows,
    Sessions,
}

/// One key's query, with the answer the topology's rules give.
#[derive(Debug, Clone)]
struct Query {
    kind: Kind,
    key: String,
    /// The key's task, `{subtopology}_{partition}`.
    task: String,
    path: String,
    want: Value,
}

/// An answer of an instance.
#[derive(Debug)]
struct Answer {
    status: u16,
    stale: bool,
    lag: Option<String>,
    body: Value,
    text: String,
}

/// The views, and the queries of every page's windows and every user's
/// sessions with their expected answers.
struct Scenario {
    views: Vec<page_views::PageView>,
    queries: Vec<Query>,
}

/// The views start at `t0`, a window's start.
fn scenario(t0: i64, window_sub: u32, session_sub: u32) -> Scenario {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (size, grace, gap) = (ms(page_views::WINDOW), ms(page_views::GRACE), ms(page_views::GAP));
    assert_eq!(t0 % size, 0, "t0 starts a window");
    let pages = spread("/page-", PAGES_PER_PARTITION);
    let users = spread("user-", USERS_PER_PARTITION);
    // Every user views VIEWS_PER_USER pages within 10 s around a minute
    // boundary (t0 + 60 s): each page gets views in two windows.
    let mut views = Vec::new();
    for (j, user) in users.iter().enumerate() {
        for k in 0..VIEWS_PER_USER {
            let ts = t0 + 55_000 + (k as i64) * 2_000 + (j as i64) * 37;
            let page = pages[(3 * j + k) % pages.len()].clone();
            views.push(page_views::PageView { user_id: user.clone(), page, ts: Some(ts) });
        }
    }
    views.sort_by_key(|v| v.ts);
    let times: Vec<i64> = views.iter().filter_map(|v| v.ts).collect();
    let (first, last) = (times[0], times[times.len() - 1]);
    // The views span less than the grace: whatever order the tasks see
    // them in (the repartition topics interleave the input partitions),
    // none is late, no window closes and nothing leaves the stores'
    // retention (size + grace for windows, gap + grace for sessions).
    assert!(last - first < grace, "the views span {} ms, more than the grace", last - first);

    let mut windows: BTreeMap<&str, BTreeMap<i64, i64>> = BTreeMap::new();
    let mut times_by_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for v in &views {
        let ts = v.ts.unwrap_or(t0);
        *windows.entry(&v.page).or_default().entry(ts.div_euclid(size) * size).or_default() += 1;
        times_by_user.entry(&v.user_id).or_default().push(ts);
    }
    let task = |sub: u32, key: &str| format!("{sub}_{}", partition_for_key(key.as_bytes(), PARTITIONS).unwrap_or(0));
    let mut queries = Vec::new();
    for page in &pages {
        let by_start = &windows[page.as_str()];
        assert_eq!(by_start.len(), 2, "page {page} has views in two windows: {by_start:?}");
        let want: Vec<Value> = by_start
            .iter()
            .map(|(start, n)| json!({ "window_start": start, "window_end": start + size, "value": n }))
            .collect();
        queries.push(Query {
            kind: Kind::Windows,
            key: page.clone(),
            task: task(window_sub, page),
            path: format!("/stores/{WINDOW_STORE}/keys/{}/windows?from=0&to={}", encode(page), i64::MAX),
            want: Value::Array(want),
        });
    }
    for user in &users {
        // Sessions as the topology makes them: a view within the gap of
        // the session's last one extends it.
        let mut sessions: Vec<(i64, i64, i64)> = Vec::new();
        for &ts in &times_by_user[user.as_str()] {
            match sessions.last_mut() {
                Some((_, end, n)) if ts - *end <= gap => {
                    *end = ts;
                    *n += 1;
                }
                _ => sessions.push((ts, ts, 1)),
            }
        }
        let want: Vec<Value> = sessions
            .iter()
            .map(|(start, end, n)| json!({ "session_start": start, "session_end": end, "value": n }))
            .collect();
        queries.push(Query {
            kind: Kind::Sessions,
            key: user.clone(),
            task: task(session_sub, user),
            path: format!("/stores/{SESSION_STORE}/keys/{}/sessions", encode(user)),
            want: Value::Array(want),
        });
    }
    Scenario { views, queries }
}

/// `answer` is 200 with the expected body and no stale header.
fn fresh_and_right(who: &str, q: &Query, answer: &Answer) -> Result<(), String> {
    if answer.status == 200 && !answer.stale && answer.body == q.want {
        Ok(())
    } else {
        Err(format!(
            "{who}: GET {} answered {} (stale {}, lag {:?}) {}; want {}",
            q.path, answer.status, answer.stale, answer.lag, answer.text, q.want
        ))
    }
}

/// What b's answers after the kill came to.
#[derive(Debug, Default)]
struct Tally {
    stale_windows: usize,
    stale_sessions: usize,
    max_lag: u64,
    /// Answers for moved keys without the stale header (the group had
    /// moved the task already).
    fresh_moved: usize,
    /// 503 answers for moved keys (the task restoring on b, a rebalance).
    unavailable_moved: usize,
    /// Answers for b's own keys.
    own_fresh: usize,
    /// 503 answers for b's own keys (during the rebalance that moves a's tasks).
    unavailable_own: usize,
    first_fresh_moved: Option<Duration>,
    last_stale: Option<Duration>,
}

impl Tally {
    /// Checks one answer of b for a key of a task that a ran (`moved`) or
    /// b ran all along; fails on a wrong answer. Whether it was fresh
    /// and right (what the takeover waits for).
    fn check(&mut self, q: &Query, moved: bool, answer: &Answer, since_kill: Duration) -> Result<bool, String> {
        let what = |why: &str| {
            format!(
                "b, {:.3}s after the kill, {} key {} (task {}): {why}: GET {} answered {} (stale {}, lag {:?}) {}; \
                 want {}",
                since_kill.as_secs_f64(),
                if moved { "a's" } else { "b's own" },
                q.key,
                q.task,
                q.path,
                answer.status,
                answer.stale,
                answer.lag,
                answer.text,
                q.want
            )
        };
        match (answer.status, answer.stale) {
            (200, true) if moved => {
                let lag = answer
                    .lag
                    .as_deref()
                    .and_then(|l| l.parse::<u64>().ok())
                    .ok_or_else(|| what("a stale answer without a numeric x-rivulet-standby-lag"))?;
                if lag > 1 {
                    return Err(what("a standby copy more than one record behind"));
                }
                if answer.body != q.want {
                    return Err(what("the standby copy's answer differs from the owner's"));
                }
                self.max_lag = self.max_lag.max(lag);
                match q.kind {
                    Kind::Windows => self.stale_windows += 1,
                    Kind::Sessions => self.stale_sessions += 1,
                }
                self.last_stale = Some(since_kill);
                Ok(false)
            }
            (200, true) => Err(what("a key b runs answered stale")),
            (200, false) => {
                if answer.body != q.want {
                    return Err(what("a wrong answer"));
                }
                if moved {
                    self.fresh_moved += 1;
                    self.first_fresh_moved.get_or_insert(since_kill);
                } else {
                    self.own_fresh += 1;
                }
                Ok(true)
            }
            (503, _) => {
                if moved {
                    self.unavailable_moved += 1;
                } else {
                    self.unavailable_own += 1;
                }
                Ok(false)
            }
            _ => Err(what("an unexpected status")),
        }
    }
}

/// Window and session queries on b while a, the owner of their keys'
/// tasks, is dead and the group has not noticed: answered from b's standby
/// copies, marked stale, exactly as a would have answered; then fresh once
/// b runs the tasks.
#[test]
fn window_and_session_queries_fall_back_to_the_standby() -> Res<()> {
    let started = Instant::now();
    let note = |what: &str| eprintln!("[standby-stale {:6.1}s] {what}", started.elapsed().as_secs_f64());
    let input = integration_tests::unique_name("stale-views");
    let counts = integration_tests::unique_name("stale-page-counts");
    let sessions = integration_tests::unique_name("stale-sessions");
    for topic in [&input, &counts, &sessions] {
        integration_tests::create_topic_blocking(topic, PARTITIONS)?;
    }
    let app_id = integration_tests::unique_name("standby-stale");
    let logs: PathBuf = std::env::temp_dir().join("rivulet-standby").join(&app_id);
    std::fs::create_dir_all(&logs)?;
    note(&format!("input {input}, logs in {}", logs.display()));

    let start = |name: &'static str| -> Res<Instance> {
        let state = tempfile::tempdir()?;
        let http = free_address()?;
        let mut a = base_args(&app_id, state.path());
        a.extend(args(&[
            ("--input-topic", &input),
            ("--counts-topic", &counts),
            ("--sessions-topic", &sessions),
            ("--partitions", &PARTITIONS.to_string()),
            ("--processing-guarantee", "exactly_once_v2"),
            ("--http", &http.to_string()),
            ("--config", "num.standby.replicas=1"),
        ]));
        let log = logs.join(format!("{name}.log"));
        let app = App::start(env!("CARGO_BIN_EXE_page-views"), &a, &log)?;
        note(&format!("started {name} (pid {}, http {http}, log {})", app.pid(), log.display()));
        Ok(Instance { name, app, http, _state: state })
    };

    let mut a = start("a")?;
    wait_for(STEP_TIMEOUT, "instance a to be ready", &mut [&mut a], |i| i[0].ready())?;
    note("a is ready");
    // The store's sub-topologies, as the instance describes its topology.
    let topology = match get(a.http, "/topology") {
        Ok((200, text)) => text,
        other => return Err(format!("GET /topology: {other:?}").into()),
    };
    let (Some(window_sub), Some(session_sub)) =
        (subtopology_of(&topology, WINDOW_STORE), subtopology_of(&topology, SESSION_STORE))
    else {
        return Err(format!("no sub-topology uses {WINDOW_STORE} or {SESSION_STORE}:\n{topology}").into());
    };

    // Event time near the wall clock: the window and session stores'
    // changelogs are compacted and deleted after the stores' retention plus
    // a day (windowstore.changelog.additional.retention.ms), by record
    // time; views from long ago would leave the changelogs before a
    // standby copy or a new owner reads them.
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis())?;
    let t0 = now.div_euclid(60_000) * 60_000 - 60_000;
    let Scenario { views, queries } = scenario(t0, window_sub, session_sub);
    let encoded: Vec<(String, Vec<u8>, i64)> = views
        .iter()
        .map(|v| Ok((v.user_id.clone(), serde_json::to_vec(v)?, v.ts.unwrap_or(t0))))
        .collect::<Result<_, serde_json::Error>>()?;
    let records: Vec<integration_tests::Input<'_>> =
        encoded.iter().map(|(k, v, ts)| (Some(k.as_bytes()), Some(v.as_slice()), *ts)).collect();
    integration_tests::produce(&input, &records)?;
    note(&format!(
        "produced {} views of {} pages by {} users",
        views.len(),
        queries.iter().filter(|q| q.kind == Kind::Windows).count(),
        queries.iter().filter(|q| q.kind == Kind::Sessions).count()
    ));

    let mut b = start("b")?;
    // Every page's windows and every user's sessions, asked of both (the
    // one not running the key's task forwards to the owner).
    wait_for(STEP_TIMEOUT, "every window and session answered right by both", &mut [&mut a, &mut b], |i| {
        let mut wrong = Vec::new();
        for instance in i.iter() {
            for q in &queries {
                if let Err(e) = fresh_and_right(instance.name, q, &instance.ask(q)?) {
                    wrong.push(e);
                }
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{} wrong answers:\n{}", wrong.len(), wrong.join("\n")))
        }
    })?;
    note("every window and session answered right by both");
    // A copy counts (in /metrics, and for stale reads) only once its lag was
    // measured; it was once reported as 0 before that, caught up or not.
    // Settled in two scrapes MEASURED_AFTER apart with the same copies also
    // holds if that comes back: the lags were measured in between.
    let mut first_settled: Option<(Instant, BTreeSet<String>, BTreeSet<String>)> = None;
    let (a_metrics, b_metrics) =
        wait_for(STEP_TIMEOUT, "both settled, their standby copies caught up", &mut [&mut a, &mut b], |i| {
            let (am, bm) = (i[0].settled()?, i[1].settled()?);
            let copies = |m: &Metrics| m.standby_lags().into_keys().collect::<BTreeSet<_>>();
            let (on_a, on_b) = (copies(&am), copies(&bm));
            match &first_settled {
                Some((at, a0, b0)) if *a0 == on_a && *b0 == on_b => {
                    if at.elapsed() < MEASURED_AFTER {
                        return Err(format!("settled {} ms ago, copies not measured since", at.elapsed().as_millis()));
                    }
                }
                _ => {
                    first_settled = Some((Instant::now(), on_a, on_b));
                    return Err("settled once".to_owned());
                }
            }
            Ok((am, bm))
        })?;
    // With one replica and two instances, each holds the standby copies of
    // the other's stateful tasks.
    let (on_a, on_b) = (a_metrics.standby_lags(), b_metrics.standby_lags());
    let a_tasks: BTreeSet<String> = on_b.keys().cloned().collect();
    let b_tasks: BTreeSet<String> = on_a.keys().cloned().collect();
    note(&format!(
        "settled: standby records applied on a {:?}, on b {:?}; standby lags on a {on_a:?}, on b {on_b:?}; a's \
         stores {:?} / {:?}, b's {:?} / {:?}",
        a_metrics.get(STANDBY_APPLIED)?,
        b_metrics.get(STANDBY_APPLIED)?,
        a_metrics.store_tasks(WINDOW_STORE),
        a_metrics.store_tasks(SESSION_STORE),
        b_metrics.store_tasks(WINDOW_STORE),
        b_metrics.store_tasks(SESSION_STORE)
    ));
    assert!(a_tasks.is_disjoint(&b_tasks), "standby copies on a {on_a:?} and on b {on_b:?} overlap");
    let moved: Vec<&Query> = queries.iter().filter(|q| a_tasks.contains(&q.task)).collect();
    let own: Vec<&Query> = queries.iter().filter(|q| b_tasks.contains(&q.task)).collect();
    assert_eq!(
        moved.len() + own.len(),
        queries.len(),
        "every key's task is active on a or on b (a's {a_tasks:?}, b's {b_tasks:?})"
    );
    for kind in [Kind::Windows, Kind::Sessions] {
        assert!(
            moved.iter().any(|q| q.kind == kind),
            "a runs no task of the {kind:?} store (a's tasks {a_tasks:?}): nothing to ask b's standby copies"
        );
    }
    assert!(!own.is_empty(), "b runs no task of the stores (b's tasks {b_tasks:?})");
    // The standby placement still as settled, right before the kill.
    let now_on_b = b.metrics()?.standby_lags();
    assert_eq!(now_on_b.keys().collect::<Vec<_>>(), on_b.keys().collect::<Vec<_>>(), "b's standby copies changed");

    let killed = Instant::now();
    a.app.kill();
    note(&format!(
        "a killed (SIGKILL); asking b for {} keys of a's tasks {a_tasks:?} and {} of its own {b_tasks:?}",
        moved.len(),
        own.len()
    ));
    let mut tally = Tally::default();
    // At once: every key once, a's first; every wrong answer reported.
    let mut wrong = Vec::new();
    for q in &moved {
        let answer = b.ask(q)?;
        if let Err(e) = tally.check(q, true, &answer, killed.elapsed()) {
            wrong.push(e);
        }
    }
    for q in &own {
        let answer = b.ask(q)?;
        let checked = tally.check(q, false, &answer, killed.elapsed());
        if let Err(e) = checked.and_then(|_| fresh_and_right("b (before the group noticed the kill)", q, &answer)) {
            wrong.push(e);
        }
    }
    let first_pass = killed.elapsed();
    if !wrong.is_empty() {
        return Err(format!(
            "{} wrong answers right after the kill ({} ms):\n{}\nb's metrics:\n{}",
            wrong.len(),
            first_pass.as_millis(),
            wrong.join("\n"),
            get(b.http, "/metrics").map(|(_, m)| m).unwrap_or_default()
        )
        .into());
    }
    let stale_in_first_pass = tally.stale_windows + tally.stale_sessions;
    note(&format!(
        "first pass done {} ms after the kill: {} stale window answers, {} stale session answers, {} fresh, {} \
         unavailable",
        first_pass.as_millis(),
        tally.stale_windows,
        tally.stale_sessions,
        tally.fresh_moved,
        tally.unavailable_moved
    ));

    // Then until b runs a's tasks: every key, over and over.
    let deadline = killed + STEP_TIMEOUT;
    let takeover = loop {
        alive(&mut [&mut b]).map_err(|e| format!("after a's kill: {e}"))?;
        let mut all_fresh = true;
        for q in &moved {
            let answer = b.ask(q)?;
            all_fresh &= tally.check(q, true, &answer, killed.elapsed())?;
        }
        for q in &own {
            let answer = b.ask(q)?;
            tally.check(q, false, &answer, killed.elapsed())?;
        }
        if all_fresh && b.ready().is_ok() {
            break killed.elapsed();
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "b did not answer a's keys fresh within {STEP_TIMEOUT:?} of the kill: {tally:?}\n{}",
                tails(&[&mut b])
            )
            .into());
        }
        // The pace of polling, not what the test waits on.
        std::thread::sleep(Duration::from_millis(50));
    };
    // Taken over: every key fresh and right, and the standby copies gone
    // (they became b's active tasks; there is no other instance to keep
    // new ones for).
    for q in &queries {
        fresh_and_right("b (after the takeover)", q, &b.ask(q)?)?;
    }
    alive(&mut [&mut b])?;

    println!(
        "standby stale queries: a ran {a_tasks:?}, b {b_tasks:?}; {} window and {} session keys of a's tasks, {} of \
         b's; standby lags before the kill on a {on_a:?}, on b {on_b:?}; first pass over a's keys took {} ms ({} \
         stale); stale answers: {} windows, {} sessions, highest x-rivulet-standby-lag {}; last stale answer {}; \
         a's keys: {} fresh answers, {} answered 503; b's own keys: {} fresh, {} answered 503; kill to first fresh \
         answer for a's keys: {}; to b ready with every key fresh: {} ms; test took {:.1} s",
        moved.iter().filter(|q| q.kind == Kind::Windows).count(),
        moved.iter().filter(|q| q.kind == Kind::Sessions).count(),
        own.len(),
        first_pass.as_millis(),
        stale_in_first_pass,
        tally.stale_windows,
        tally.stale_sessions,
        tally.max_lag,
        tally.last_stale.map_or_else(|| "none".to_owned(), |d| format!("{} ms after the kill", d.as_millis())),
        tally.fresh_moved,
        tally.unavailable_moved,
        tally.own_fresh,
        tally.unavailable_own,
        tally.first_fresh_moved.map_or_else(|| "none".to_owned(), |d| format!("{} ms", d.as_millis())),
        takeover.as_millis(),
        started.elapsed().as_secs_f64()
    );
    assert!(tally.stale_windows > 0, "no window query of a's keys was answered stale: {tally:?}");
    assert!(tally.stale_sessions > 0, "no session query of a's keys was answered stale: {tally:?}");
    // The first pass ends milliseconds after the kill, well within the
    // session time-out: the group cannot have moved a's tasks yet.
    if first_pass < SESSION_TIMEOUT {
        assert_eq!(
            stale_in_first_pass,
            moved.len(),
            "within {} ms of the kill, every query of a's keys is answered stale: {tally:?}",
            first_pass.as_millis()
        );
    }
    Ok(())
}
