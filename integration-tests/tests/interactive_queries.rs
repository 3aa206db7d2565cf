//! Interactive queries on the real broker: two instances of word count
//! split the partitions; each answers for the words of its own partitions,
//! together they hold every count exactly, and a query outside RUNNING, of
//! an unknown store or with the wrong types is a typed error.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{create_topic_blocking, latest_by_key, produce, read_until, unique_name, wait_until};
use rivulet_examples::word_count;
use streams_core::runtime::{KafkaStreams, State};
use streams_core::{QueryableStoreTypes, StoreQueryParameters, StreamsError};

mod common;
use common::{config, lines, records};

const TIMEOUT: Duration = Duration::from_secs(120);
const STORE: &str = "word-counts-store";

fn counts(streams: &KafkaStreams) -> Result<BTreeMap<String, i64>, StreamsError> {
    let store = streams
        .store(StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>()))?;
    Ok(store.all()?.into_iter().collect())
}

#[test]
fn two_instances_answer_for_their_own_partitions() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, output, app) = (unique_name("iq-lines"), unique_name("iq-counts"), unique_name("iq"));
    create_topic_blocking(&input, 4)?;
    create_topic_blocking(&output, 4)?;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir_a.path(), "exactly_once_v2"))?;
    let b = KafkaStreams::new(word_count::topology(&input, &output)?, config(&app, dir_b.path(), "exactly_once_v2"))?;

    let early =
        a.store(StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>()));
    assert!(matches!(early, Err(StreamsError::InvalidStateStore { .. })), "before start: {early:?}");

    a.start()?;
    b.start()?;
    wait_until(TIMEOUT, "tasks split between the instances", || {
        let (ta, tb) = (a.local_tasks(), b.local_tasks());
        (ta.len() == 4 && tb.len() == 4 && a.state() == State::Running && b.state() == State::Running).then_some(())
    })?;
    let (text, expected) = lines(4_000, 3);
    produce(&input, &records(&text, 1_700_000_000_000))?;
    read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected)?;
    let expected: BTreeMap<String, i64> =
        expected.into_iter().map(|(k, v)| (k, v.and_then(|v| v.parse().ok()).unwrap_or(0))).collect();

    // Each instance holds a share; together, every count, once.
    let (in_a, in_b) = wait_until(TIMEOUT, "both instances queryable with every word", || {
        let (in_a, in_b) = (counts(&a).ok()?, counts(&b).ok()?);
        (in_a.len() + in_b.len() == expected.len()).then_some((in_a, in_b))
    })?;
    assert!(in_a.keys().all(|w| !in_b.contains_key(w)), "a word lives in one partition: {in_a:?} {in_b:?}");
    let mut all = in_a.clone();
    all.extend(in_b.clone());
    assert_eq!(all, expected);

    let store_a =
        a.store(StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>()))?;
    assert_eq!(store_a.local_partitions(), 2, "2 of the 4 partitions of the count store");
    for (word, n) in &expected {
        let here = store_a.get(word)?;
        assert_eq!(here, in_a.get(word).copied(), "{word}");
        if here.is_some() {
            assert_eq!(here, Some(*n));
        }
    }
    assert!(store_a.approximate_num_entries()? >= 1);
    let (first, last) =
        (in_a.keys().next().cloned().unwrap_or_default(), in_a.keys().last().cloned().unwrap_or_default());
    let ranged: BTreeMap<String, i64> = store_a.range(&first, &last)?.into_iter().collect();
    assert_eq!(ranged, in_a, "a range over the local keys");

    let unknown =
        a.store(StoreQueryParameters::from_name_and_type("no-such", QueryableStoreTypes::key_value::<String, i64>()));
    assert!(matches!(unknown, Err(StreamsError::UnknownStore(_))), "{unknown:?}");
    let wrong =
        a.store(StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, String>()));
    assert!(matches!(wrong, Err(StreamsError::StoreType { .. })), "{wrong:?}");

    b.close();
    a.close();
    let closed =
        a.store(StoreQueryParameters::from_name_and_type(STORE, QueryableStoreTypes::key_value::<String, i64>()));
    assert!(matches!(closed, Err(StreamsError::InvalidStateStore { .. })), "after close: {closed:?}");
    Ok(())
}

/// A windowed count and a session count, read back through window and
/// session views.
#[test]
fn window_and_session_views() -> Result<(), Box<dyn std::error::Error>> {
    use streams_dsl::prelude::*;
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, app) = (unique_name("iq-clicks"), unique_name("iq-windows"));
    create_topic_blocking(&input, 2)?;
    let builder = StreamsBuilder::new();
    let by_user = builder
        .stream(&[input.as_str()], Consumed::with(StringSerde, StringSerde))
        .group_by_key_with(Grouped::with(StringSerde, StringSerde));
    by_user
        .windowed_by(TimeWindows::of_size_with_no_grace(Duration::from_secs(60)))
        // Kept an hour: by default a window is kept only for its size plus grace.
        .count_with(Materialized::as_store("clicks-per-minute").with_retention(Duration::from_secs(3600)));
    by_user
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(300)))
        .count_with(Materialized::as_store("clicks-per-session"));
    let state = tempfile::tempdir()?;
    let streams = KafkaStreams::new(builder.build()?, config(&app, state.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT));

    // A minute boundary; u1 clicks twice in its first minute and once 70 s
    // later (one session: the gap is 5 minutes), u2 once (before u1's last
    // click moves stream time past the first minute: no grace).
    let t0: i64 = 28_333_333 * 60_000;
    let (u1, u2, page) = (b"u1".as_slice(), b"u2".as_slice(), b"/".as_slice());
    produce(
        &input,
        &[
            (Some(u1), Some(page), t0),
            (Some(u1), Some(page), t0 + 1_000),
            (Some(u2), Some(page), t0 + 5_000),
            (Some(u1), Some(page), t0 + 70_000),
        ],
    )?;

    let windows = wait_until(TIMEOUT, "u1's windows", || {
        let store = streams
            .store(StoreQueryParameters::from_name_and_type(
                "clicks-per-minute",
                QueryableStoreTypes::window_store::<String, i64>(),
            ))
            .ok()?;
        let found = store.fetch(&"u1".to_owned(), t0, t0 + 120_000).ok()?;
        (found.iter().map(|(_, n)| n).sum::<i64>() == 3).then_some(found)
    })?;
    let starts: Vec<(i64, i64, i64)> = windows.iter().map(|(w, n)| (w.start, w.end, *n)).collect();
    assert_eq!(starts, vec![(t0, t0 + 60_000, 2), (t0 + 60_000, t0 + 120_000, 1)]);
    let minute = streams.store(StoreQueryParameters::from_name_and_type(
        "clicks-per-minute",
        QueryableStoreTypes::window_store::<String, i64>(),
    ))?;
    let all: Vec<(String, i64, i64)> = {
        let mut v: Vec<_> =
            minute.fetch_all(t0, t0).map(|a| a.into_iter().map(|(w, n)| (w.key, w.window.start, n)).collect())?;
        v.sort();
        v
    };
    assert_eq!(all, vec![("u1".to_owned(), t0, 2), ("u2".to_owned(), t0, 1)]);

    let sessions = streams.store(StoreQueryParameters::from_name_and_type(
        "clicks-per-session",
        QueryableStoreTypes::session_store::<String, i64>(),
    ))?;
    let u1_sessions: Vec<(i64, i64, i64)> =
        sessions.fetch(&"u1".to_owned())?.into_iter().map(|(w, n)| (w.window.start, w.window.end, n)).collect();
    assert_eq!(u1_sessions, vec![(t0, t0 + 70_000, 3)]);
    assert!(
        sessions.find_sessions(&"u2".to_owned(), t0 + 6_000, i64::MAX)?.is_empty(),
        "u2's session ended at t0 + 5 s"
    );

    let as_kv = streams.store(StoreQueryParameters::from_name_and_type(
        "clicks-per-minute",
        QueryableStoreTypes::key_value::<String, i64>(),
    ));
    assert!(matches!(as_kv, Err(StreamsError::StoreType { .. })), "a window store is not a key-value store: {as_kv:?}");
    streams.close();
    Ok(())
}
