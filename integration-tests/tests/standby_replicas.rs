//! Standby replicas on the real broker, in process: two instances of word
//! count with `num.standby.replicas=1` each hold warm copies of the other's
//! stateful tasks (caught up: lag 0), those copies answer stale reads
//! (`enable_stale_stores`) with the right counts, and when one instance
//! closes, the other takes its tasks over from the copies: it restores only
//! what the copies had not read, not the whole store.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_until};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State};
use streams_core::{QueryableStoreTypes, StoreQueryParameters};

mod common;
use common::{config, records};

const TIMEOUT: Duration = Duration::from_secs(120);
const STORE: &str = "word-counts-store";
const WORDS: usize = 20_000;

/// Lines naming `WORDS` distinct words, each once.
fn lines() -> Vec<String> {
    (0..WORDS)
        .collect::<Vec<_>>()
        .chunks(20)
        .map(|c| c.iter().map(|i| format!("k{i}")).collect::<Vec<_>>().join(" "))
        .collect()
}

fn instance(
    app: &str,
    input: &str,
    output: &str,
    dir: &std::path::Path,
) -> Result<KafkaStreams, Box<dyn std::error::Error>> {
    let mut c = config(app, dir, "exactly_once_v2");
    c.set("num.standby.replicas", "1")?;
    c.set("http.listen", "127.0.0.1:0")?;
    let streams = KafkaStreams::new(word_count::topology(input, output)?, c)?;
    streams.start()?;
    Ok(streams)
}

#[test]
fn warm_copies_answer_stale_reads_and_take_over() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("standby-lines"), unique_name("standby-counts"), unique_name("standby"));
    create_topic_blocking(&input, 4)?;
    create_topic_blocking(&output, 4)?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = instance(&app, &input, &output, dir_a.path())?;
    let b = instance(&app, &input, &output, dir_b.path())?;
    wait_until(TIMEOUT, "both instances running with tasks", || {
        (a.state() == State::Running
            && b.state() == State::Running
            && !a.local_tasks().is_empty()
            && !b.local_tasks().is_empty())
        .then_some(())
    })?;
    let lines = lines();
    produce(&input, &records(&lines, 1_000))?;
    let got = read_until(&output, TIMEOUT, |r| latest_by_key(r).len() >= WORDS)?;
    let counts = latest_by_key(&got);
    assert!(counts.values().all(|v| v.as_deref() == Some("1")), "every word counted once");

    // Each instance holds copies of the other's count tasks, caught up.
    let stateful =
        |s: &KafkaStreams| -> BTreeSet<_> { s.local_tasks().into_iter().filter(|t| t.subtopology == 1).collect() };
    wait_until(TIMEOUT, "standby copies caught up on both instances", || {
        let (on_a, on_b) = (a.standby_tasks(), b.standby_tasks());
        let keys = |m: &BTreeMap<_, u64>| m.keys().copied().collect::<BTreeSet<_>>();
        let right = keys(&on_a) == stateful(&b) && keys(&on_b) == stateful(&a) && !on_a.is_empty() && !on_b.is_empty();
        // A transaction's commit marker may count as one record behind.
        (right && on_a.values().chain(on_b.values()).all(|lag| *lag <= 1)).then_some(())
    })?;
    assert!(a.metrics().standby_records_applied > 0 && b.metrics().standby_records_applied > 0);

    // A stale read on B sees A's keys too; a plain read only its own.
    let params = || StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>());
    let fresh = b.store(params())?.all()?.len();
    let stale = wait_until(TIMEOUT, "every word through B's stores and copies", || {
        let all = b.store(params().enable_stale_stores()).ok()?.all().ok()?;
        (all.len() >= WORDS).then_some(all)
    })?;
    assert!(fresh < WORDS, "B alone holds part of the store ({fresh})");
    assert!(stale.iter().all(|(_, n)| *n == 1), "copies hold the committed counts");
    let distinct: BTreeSet<&String> = stale.iter().map(|(k, _)| k).collect();
    assert_eq!(distinct.len(), WORDS);

    // A closes: B takes A's tasks over from its copies.
    let restored_before = b.metrics().records_restored;
    a.close();
    wait_until(TIMEOUT, "B running every task", || {
        (b.state() == State::Running && stateful(&b).len() == 4 && b.store(params()).ok()?.all().ok()?.len() >= WORDS)
            .then_some(())
    })?;
    let restored = b.metrics().records_restored - restored_before;
    assert!(restored <= (WORDS / 100) as u64, "B restored {restored} changelog records; its copies held the rest");
    assert!(b.standby_tasks().is_empty(), "no other instance: no copies");

    // And counts on: every word once more.
    produce(&input, &records(&lines, 100_000))?;
    let got = read_until(&output, TIMEOUT, |r| {
        latest_by_key(r).values().filter(|v| v.as_deref() == Some("2")).count() >= WORDS
    })?;
    assert!(latest_by_key(&got).values().all(|v| v.as_deref() == Some("2")));
    b.close();
    Ok(())
}
