//! Interactive queries over HTTP across instances on the real broker. Three
//! instances of word count, each with its own server (`http.listen`), answer
//! for every word whichever instance owns it (one forwarding hop), name the
//! same owner as each other, as `query_metadata_for_key` and as the tasks the
//! owner runs, list the whole store in key order across instances, and, once
//! one of them closes, answer again from the two that remain. One instance of
//! page views answers window and session queries as the topology's window
//! size, grace, gap and retention say from its input. A missing key is a
//! 404, a request the caller can fix a 400, and a 503 carries `Retry-After`.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_until};
use rivulet_examples::page_views::{self, PageView};
use rivulet_examples::word_count;
use serde_json::{json, Value};
use streams_core::runtime::{KafkaStreams, State, StreamsMetadata};
use streams_core::serde::StringSerde;
use streams_core::topology::NodeDescription;
use streams_core::{TaskId, Topology};

mod common;
use common::{config, lines, records};
use integration_tests::http::{encode, request, Reply};

const TIMEOUT: Duration = Duration::from_secs(120);
const COUNTS: &str = "word-counts-store";
const PAGE_COUNTS: &str = "page-view-counts-store";
const SESSIONS: &str = "user-sessions-store";

type TestResult = Result<(), Box<dyn Error>>;

/// A 503 must say when to come back.
fn check_retry_after(reply: &Reply, addr: SocketAddr, path: &str) {
    if reply.status == 503 {
        assert!(
            reply.header("retry-after").is_some(),
            "a 503 without Retry-After from {addr} for GET {path}: {reply:?}"
        );
    }
}

/// Waits until `check` succeeds; on timeout, says why it last failed.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Result<T, String>) -> Result<T, Box<dyn Error>> {
    let mut last = String::new();
    wait_until(TIMEOUT, what, || check().map_err(|e| last = e).ok()).map_err(|e| format!("{e}; last: {last}").into())
}

/// `GET path` on `addr`, asked again while the answer is 503: the first
/// other status, and its body as JSON.
/// Waits until `GET path` answers 200 with `want` (503s with `Retry-After` are retried).
fn eventually_answers(addr: SocketAddr, path: &str, want: &Value, what: &str) -> Result<(), Box<dyn Error>> {
    eventually(what, || {
        let reply = request(addr, path).map_err(|e| format!("GET {path}: {e}"))?;
        check_retry_after(&reply, addr, path);
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        (reply.status == 200 && &body == want)
            .then_some(())
            .ok_or_else(|| format!("GET {path}: {} {} (want {want})", reply.status, reply.body))
    })
}

fn answer(addr: SocketAddr, path: &str) -> Result<(u16, Value), Box<dyn Error>> {
    let reply = eventually(&format!("an answer other than 503 to GET {path} from {addr}"), || {
        let reply = request(addr, path).map_err(|e| format!("GET {path} on {addr}: {e}"))?;
        check_retry_after(&reply, addr, path);
        if reply.status == 503 {
            return Err(reply.body);
        }
        Ok(reply)
    })?;
    let body = serde_json::from_str(&reply.body)
        .map_err(|e| format!("GET {path} on {addr}: {} {} is not JSON: {e}", reply.status, reply.body))?;
    Ok((reply.status, body))
}

/// `GET path` on `addr` that must answer `status` with an `{"error": ...}`.
fn expect_error(addr: SocketAddr, path: &str, status: u16) -> TestResult {
    let (got, body) = answer(addr, path)?;
    assert!(
        got == status && body["error"].is_string(),
        "GET {path}: expected {status} with an error, got {got} {body}"
    );
    Ok(())
}

/// The sub-topology whose processors use `store`, and how many
/// sub-topologies make tasks.
fn subtopology_of(topology: &Topology, store: &str) -> Result<(u32, usize), String> {
    let described = topology.describe();
    let uses = |nodes: &[NodeDescription]| {
        nodes
            .iter()
            .any(|n| matches!(n, NodeDescription::Processor { stores, .. } if stores.iter().any(|s| s == store)))
    };
    let id = described.subtopologies.iter().find(|s| uses(&s.nodes)).map(|s| s.id);
    let id = id.ok_or_else(|| format!("no sub-topology uses {store}:\n{described}"))?;
    Ok((id, described.subtopologies.iter().filter(|s| !s.global).count()))
}

/// Every instance in `addrs` asked for every word of `expected`: per word,
/// the owner all of them name. Fails on an answer that is not 200 with the
/// word's count, and when the instances name different owners or one
/// outside `owners`.
fn sweep(
    addrs: &[SocketAddr],
    expected: &BTreeMap<String, i64>,
    owners: &BTreeSet<String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut found = BTreeMap::new();
    for (word, count) in expected {
        let path = format!("/stores/{COUNTS}/keys/{}", encode(word));
        let mut hosts = BTreeSet::new();
        for addr in addrs {
            let reply = request(*addr, &path).map_err(|e| format!("GET {path} on {addr}: {e}"))?;
            check_retry_after(&reply, *addr, &path);
            let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            if reply.status != 200 || body["key"] != json!(word) || body["value"] != json!(count) {
                return Err(format!("GET {path} on {addr}: {} {} (want the count {count})", reply.status, reply.body));
            }
            hosts.insert(body["host"].as_str().unwrap_or_default().to_owned());
        }
        match hosts.into_iter().collect::<Vec<_>>().as_slice() {
            [host] if owners.contains(host) => found.insert(word.clone(), host.clone()),
            hosts => return Err(format!("`{word}`: the instances name owners {hosts:?}, not one of {owners:?}")),
        };
    }
    Ok(found)
}

/// A key range's entries as (key, value, host).
fn entries(body: &Value) -> Result<Vec<(String, i64, String)>, String> {
    let array = body.as_array().ok_or_else(|| format!("not an array: {body}"))?;
    array
        .iter()
        .map(|e| match (e["key"].as_str(), e["value"].as_i64(), e["host"].as_str()) {
            (Some(k), Some(v), Some(h)) => Ok((k.to_owned(), v, h.to_owned())),
            _ => Err(format!("not a {{key, value, host}} entry: {e}")),
        })
        .collect()
}

/// `metadata_for_all_clients`, once it lists exactly `hosts` and `tasks`
/// tasks in all (the claims travel through the endpoints topic).
fn known_clients(
    streams: &KafkaStreams,
    hosts: &BTreeSet<String>,
    tasks: usize,
) -> Result<Vec<StreamsMetadata>, Box<dyn Error>> {
    eventually(&format!("the instances {hosts:?} with {tasks} tasks in the metadata"), || {
        let clients = streams.metadata_for_all_clients();
        let listed: BTreeSet<String> = clients.iter().map(|c| c.host_info.to_string()).collect();
        let claimed: usize = clients.iter().map(|c| c.tasks.len()).sum();
        if listed == *hosts && claimed == tasks {
            Ok(clients)
        } else {
            Err(format!("{clients:?}"))
        }
    })
}

/// What `metadata_for_all_clients` must say of a stable group: the
/// instances at `addrs`, each with exactly the tasks it runs; together every
/// task once, and every partition of the count store.
fn check_metadata(
    clients: &[StreamsMetadata],
    instances: &[(&KafkaStreams, SocketAddr)],
    all_tasks: &BTreeSet<TaskId>,
    store_sub: u32,
    input: &str,
) {
    let listed: Vec<String> = clients.iter().map(|c| c.host_info.to_string()).collect();
    let mut hosts: Vec<String> = instances.iter().map(|(_, a)| a.to_string()).collect();
    hosts.sort();
    assert_eq!(listed, hosts, "one entry per instance, sorted by endpoint");
    let mut seen = BTreeSet::new();
    for client in clients {
        let (streams, _) = instances
            .iter()
            .find(|(_, a)| a.to_string() == client.host_info.to_string())
            .unwrap_or_else(|| panic!("{client:?} is not a running instance"));
        assert_eq!(
            client.tasks,
            streams.local_tasks().into_iter().collect::<BTreeSet<_>>(),
            "{}'s tasks",
            client.host_info
        );
        assert!(client.tasks.iter().all(|t| seen.insert(*t)), "a task listed twice: {clients:?}");
        let holds_store = client.tasks.iter().any(|t| t.subtopology == store_sub);
        assert_eq!(client.state_store_names.contains(COUNTS), holds_store, "{client:?}");
    }
    assert_eq!(&seen, all_tasks, "every task of the application, once");
    let store_partitions: BTreeSet<i32> =
        seen.iter().filter(|t| t.subtopology == store_sub).map(|t| t.partition).collect();
    assert_eq!(store_partitions, (0..8).collect::<BTreeSet<i32>>(), "every partition of {COUNTS}");
    let input_partitions: BTreeSet<i32> =
        clients.iter().flat_map(|c| &c.topic_partitions).filter(|(t, _)| t == input).map(|(_, p)| *p).collect();
    assert_eq!(input_partitions, (0..8).collect::<BTreeSet<i32>>(), "every partition of the input topic: {clients:?}");
}

#[test]
fn three_instances_answer_for_every_key() -> TestResult {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("httpq-lines"), unique_name("httpq-counts"), unique_name("httpq"));
    create_topic_blocking(&input, 8)?;
    create_topic_blocking(&output, 8)?;
    let (store_sub, subtopologies) = subtopology_of(&word_count::topology(&input, &output)?, COUNTS)?;
    let all_tasks: BTreeSet<TaskId> = (0..subtopologies as u32)
        .flat_map(|subtopology| (0..8).map(move |partition| TaskId { subtopology, partition }))
        .collect();

    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?, tempfile::tempdir()?];
    let mut instances = Vec::new();
    for dir in &dirs {
        let mut config = config(&app, dir.path(), "exactly_once_v2");
        config.set("http.listen", "127.0.0.1:0")?;
        instances.push(KafkaStreams::new(word_count::topology(&input, &output)?, config)?);
    }
    for streams in &instances {
        streams.start()?;
    }
    let addrs = instances
        .iter()
        .map(|s| s.http_address().ok_or("no HTTP address after start"))
        .collect::<Result<Vec<SocketAddr>, _>>()?;
    let hosts: BTreeSet<String> = addrs.iter().map(ToString::to_string).collect();
    wait_until(TIMEOUT, "every task running, spread over the three instances", || {
        let tasks: Vec<Vec<TaskId>> = instances.iter().map(KafkaStreams::local_tasks).collect();
        (instances.iter().all(|s| s.state() == State::Running)
            && tasks.iter().all(|t| !t.is_empty())
            && tasks.iter().map(Vec::len).sum::<usize>() == all_tasks.len())
        .then_some(())
    })?;

    let (text, expected) = lines(3_000, 11);
    produce(&input, &records(&text, 1_700_000_000_000))?;
    read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected)?;
    let expected: BTreeMap<String, i64> =
        expected.into_iter().map(|(k, v)| (k, v.and_then(|v| v.parse().ok()).unwrap_or(0))).collect();

    // Every instance answers for every word, and names the same owner. (The
    // stores take a committed batch just after its output is visible: retry.)
    let owners = eventually("every instance to answer for every word", || sweep(&addrs, &expected, &hosts))?;
    let distinct: BTreeSet<&String> = owners.values().collect();
    assert!(distinct.len() >= 2, "the words live on one instance only: {owners:?}");

    // The whole store, from any instance, merged in key order.
    let want: Vec<(String, i64, String)> = expected.iter().map(|(w, n)| (w.clone(), *n, owners[w].clone())).collect();
    for addr in &addrs {
        let (status, body) = answer(*addr, &format!("/stores/{COUNTS}/keys"))?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(entries(&body)?, want, "every word once, in key order, from {addr}");
    }
    let words: Vec<&String> = expected.keys().collect();
    assert_eq!(words.len(), 12, "the whole vocabulary: {words:?}");
    let (from, to) = (words[2], words[8]);
    let path = format!("/stores/{COUNTS}/keys?from={}&to={}", encode(from), encode(to));
    let (status, body) = answer(addrs[1], &path)?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&body)?, want[2..=8].to_vec(), "GET {path}: both bounds inclusive");
    let (status, body) = answer(addrs[2], &format!("/stores/{COUNTS}/keys?limit=3"))?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&body)?, want[..3].to_vec(), "the first three keys over all instances");
    expect_error(addrs[0], &format!("/stores/{COUNTS}/keys?from={}&to={}", encode(to), encode(from)), 400)?;

    // The library's view of the group agrees with the tasks and the answers.
    let running: Vec<(&KafkaStreams, SocketAddr)> = instances.iter().zip(addrs.iter().copied()).collect();
    for (streams, addr) in &running {
        let clients = known_clients(streams, &hosts, all_tasks.len())
            .map_err(|e| format!("{addr} to know every instance and task: {e}"))?;
        check_metadata(&clients, &running, &all_tasks, store_sub, &input);
        for (word, owner) in &owners {
            let key = streams
                .query_metadata_for_key(COUNTS, word, &StringSerde)?
                .ok_or_else(|| format!("{addr} knows no owner of `{word}`"))?;
            assert_eq!(&key.active_host.to_string(), owner, "the owner of `{word}` as {addr} sees it");
            let task = TaskId { subtopology: store_sub, partition: key.partition };
            let owner_tasks = running.iter().find(|(_, a)| &a.to_string() == owner).map(|(s, _)| s.local_tasks());
            assert!(owner_tasks.is_some_and(|t| t.contains(&task)), "{owner} runs {task}, the task of `{word}`");
        }
    }

    assert!(!expected.contains_key("zebra"));
    for addr in &addrs {
        expect_error(*addr, &format!("/stores/{COUNTS}/keys/zebra"), 404)?;
    }
    expect_error(addrs[0], "/stores/no-such-store/keys/kafka", 400)?;

    // The owner of the first word leaves; the other two take its tasks over.
    let first = words[0];
    let victim = addrs.iter().position(|a| a.to_string() == owners[first]).ok_or("the owner is an instance")?;
    instances[victim].close();
    let remaining: Vec<(&KafkaStreams, SocketAddr)> =
        running.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, r)| *r).collect();
    let remaining_addrs: Vec<SocketAddr> = remaining.iter().map(|(_, a)| *a).collect();
    let remaining_hosts: BTreeSet<String> = remaining_addrs.iter().map(ToString::to_string).collect();
    wait_until(TIMEOUT, "the remaining instances to run every task and be ready", || {
        let tasks: usize = remaining.iter().map(|(s, _)| s.local_tasks().len()).sum();
        let ready = remaining_addrs.iter().all(|a| request(*a, "/health/ready").is_ok_and(|r| r.status == 200));
        (tasks == all_tasks.len() && ready).then_some(())
    })?;
    let moved = eventually("the two remaining instances to answer for every word", || {
        sweep(&remaining_addrs, &expected, &remaining_hosts)
    })?;
    let want: Vec<(String, i64, String)> = expected.iter().map(|(w, n)| (w.clone(), *n, moved[w].clone())).collect();
    let (status, body) = answer(remaining_addrs[0], &format!("/stores/{COUNTS}/keys"))?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(entries(&body)?, want, "every word once, from the remaining instances");
    for (streams, addr) in &remaining {
        let clients = known_clients(streams, &remaining_hosts, all_tasks.len())
            .map_err(|e| format!("{addr} to forget the closed instance: {e}"))?;
        check_metadata(&clients, &remaining, &all_tasks, store_sub, &input);
    }

    for (streams, _) in &remaining {
        streams.close();
    }
    Ok(())
}

#[test]
fn window_and_session_queries_on_page_views() -> TestResult {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let input = unique_name("httpq-views");
    let (counts, sessions, app) =
        (unique_name("httpq-page-counts"), unique_name("httpq-sessions"), unique_name("httpq-pages"));
    // One partition: one task per sub-topology, so one stream time for all
    // pages and all users.
    for topic in [&input, &counts, &sessions] {
        create_topic_blocking(topic, 1)?;
    }
    let state = tempfile::tempdir()?;
    let mut config = config(&app, state.path(), "exactly_once_v2");
    config.set("http.listen", "127.0.0.1:0")?;
    let streams = KafkaStreams::new(page_views::topology(&input, &counts, &sessions)?, config)?;
    streams.start()?;
    let addr = streams.http_address().ok_or("no HTTP address after start")?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT), "RUNNING: {:?}", streams.state());

    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let (size, grace, gap) = (ms(page_views::WINDOW), ms(page_views::GRACE), ms(page_views::GAP));
    let t0: i64 = 1_700_000_040_000;
    assert_eq!(t0 % size, 0, "t0 starts a window");
    let (home, help) = ("/home", "/help center");
    // In time order. Alice comes back after more than the session gap;
    // Bob's views are never further apart than it.
    let views: Vec<PageView> = [
        ("alice", home, 0),
        ("bob", home, 5),
        ("alice", help, 20),
        ("bob", help, 30),
        ("alice", home, 50),
        ("bob", home, 65),
        ("bob", home, 250),
        ("bob", help, 270),
        ("bob", home, 290),
        ("alice", home, 355),
    ]
    .into_iter()
    .map(|(user, page, s)| PageView { user_id: user.to_owned(), page: page.to_owned(), ts: Some(t0 + s * 1000) })
    .collect();
    let encoded = views
        .iter()
        .map(|v| {
            Ok::<_, serde_json::Error>((v.user_id.clone().into_bytes(), serde_json::to_vec(v)?, v.ts.unwrap_or(t0)))
        })
        .collect::<Result<Vec<_>, serde_json::Error>>()?;
    let inputs: Vec<integration_tests::Input<'_>> =
        encoded.iter().map(|(k, v, ts)| (Some(k.as_slice()), Some(v.as_slice()), *ts)).collect();
    produce(&input, &inputs)?;

    // What the topology makes of them. Records come in time order: none is late.
    let stream_time = views.iter().filter_map(|v| v.ts).max().unwrap_or(t0);
    let mut windows: BTreeMap<(String, i64), i64> = BTreeMap::new();
    let mut user_sessions: BTreeMap<String, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for v in &views {
        let ts = v.ts.unwrap_or(t0);
        *windows.entry((v.page.clone(), ts.div_euclid(size) * size)).or_default() += 1;
        let sessions = user_sessions.entry(v.user_id.clone()).or_default();
        match sessions.last_mut() {
            Some((_, end, n)) if ts - *end <= gap => {
                *end = ts;
                *n += 1;
            }
            _ => sessions.push((ts, ts, 1)),
        }
    }
    // A window closes, and is emitted once, when stream time reaches its
    // end plus grace; the store keeps it for size + grace (its default
    // retention) behind the newest window start it holds.
    let closed: Vec<(String, i64, i64, i64)> = windows
        .iter()
        .filter(|((_, start), _)| start + size + grace <= stream_time)
        .map(|((page, start), n)| (page.clone(), *start, start + size, *n))
        .collect();
    let newest_start = stream_time.div_euclid(size) * size;
    let window_kept = |start: i64| start > newest_start - (size + grace);
    // The session store keeps a session for gap + grace behind the newest
    // session end (the newest view's time).
    let session_kept = |end: i64| end > stream_time - (gap + grace);
    assert!(
        !closed.is_empty()
            && closed.iter().any(|(_, start, _, _)| window_kept(*start))
            && windows.keys().any(|(_, start)| !window_kept(*start))
            && user_sessions["alice"].iter().filter(|(_, end, _)| session_kept(*end)).count() == 2,
        "the scenario has closed windows, some still kept and some expired, and a user with two sessions"
    );

    let read = read_until(&counts, TIMEOUT, |records| {
        let mut got: Vec<(String, i64, i64, i64)> = records
            .iter()
            .filter_map(|r| serde_json::from_slice::<page_views::PageCount>(r.value.as_deref()?).ok())
            .map(|c| (c.page, c.window_start, c.window_end, c.views))
            .collect();
        got.sort();
        got == closed
    })?;
    assert_eq!(read.len(), closed.len(), "one record per closed window");

    for page in [home, help] {
        let want: Vec<Value> = windows
            .iter()
            .filter(|((p, start), _)| p == page && window_kept(*start))
            .map(|((_, start), n)| json!({ "window_start": start, "window_end": start + size, "value": n }))
            .collect();
        assert!(!want.is_empty());
        let path = format!("/stores/{PAGE_COUNTS}/keys/{}/windows?from=0&to={}", encode(page), i64::MAX);
        eventually_answers(addr, &path, &Value::Array(want.clone()), &format!("the windows of {page}"))?;
        // Windows starting in [from, to] only.
        let path = format!("/stores/{PAGE_COUNTS}/keys/{}/windows?from={newest_start}&to={newest_start}", encode(page));
        let (status, body) = answer(addr, &path)?;
        let newest: Vec<Value> = want.iter().filter(|w| w["window_start"] == json!(newest_start)).cloned().collect();
        assert_eq!((status, body), (200, Value::Array(newest)), "GET {path}");
    }

    for (user, sessions) in &user_sessions {
        let want: Vec<Value> = sessions
            .iter()
            .filter(|(_, end, _)| session_kept(*end))
            .map(|(start, end, n)| json!({ "session_start": start, "session_end": end, "value": n }))
            .collect();
        let path = format!("/stores/{SESSIONS}/keys/{}/sessions", encode(user));
        eventually_answers(addr, &path, &Value::Array(want), &format!("the sessions of {user}"))?;
    }

    // The wrong kind of query for a store, and bad bounds.
    let page = encode(home);
    expect_error(addr, &format!("/stores/{PAGE_COUNTS}/keys/{page}"), 400)?;
    expect_error(addr, &format!("/stores/{PAGE_COUNTS}/keys"), 400)?;
    expect_error(addr, &format!("/stores/{PAGE_COUNTS}/keys/{page}/sessions"), 400)?;
    expect_error(addr, &format!("/stores/{SESSIONS}/keys/alice/windows"), 400)?;
    expect_error(addr, &format!("/stores/{PAGE_COUNTS}/keys/{page}/windows?from={}&to={t0}", t0 + 1), 400)?;
    expect_error(addr, &format!("/stores/{PAGE_COUNTS}/keys/{page}/windows?from=yesterday"), 400)?;

    streams.close();
    Ok(())
}
