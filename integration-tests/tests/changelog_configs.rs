//! The changelog topics the runtime creates on the real broker, read back
//! with the admin API: a key-value store's changelog is compacted; window and
//! session stores' changelogs are `compact,delete` and keep records for the
//! store's retention plus a day (Kafka Streams'
//! `windowstore.changelog.additional.retention.ms`), so they do not grow
//! without bound; repartition topics are `delete`.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{client_config, create_topic_blocking, unique_name, wait_until};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use streams_core::runtime::{KafkaStreams, State};
use streams_dsl::prelude::*;

mod common;
use common::config;

const TIMEOUT: Duration = Duration::from_secs(120);
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// `cleanup.policy` and `retention.ms` of `topic` as the broker has them.
fn topic_configs(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<BTreeMap<String, String>> {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let results = runtime.block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options)).ok()?;
    let resource = results.into_iter().next()?.ok()?;
    Some(
        resource
            .entries
            .into_iter()
            .filter(|e| e.name == "cleanup.policy" || e.name == "retention.ms")
            .filter_map(|e| Some((e.name, e.value?)))
            .collect(),
    )
}

#[test]
fn changelogs_are_compacted_and_window_changelogs_expire() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (input, app) = (unique_name("clicks"), unique_name("changelog-configs"));
    create_topic_blocking(&input, 2)?;
    let hour = Duration::from_secs(3600);
    let builder = StreamsBuilder::new();
    let clicks = builder.stream(&[input.as_str()], Consumed::with(StringSerde, StringSerde));
    clicks
        .group_by(|_, page: &String| page.clone(), Grouped::with(StringSerde, StringSerde).named("pages"))
        .count_with(Materialized::as_store("per-page"));
    let by_user = clicks.group_by_key_with(Grouped::with(StringSerde, StringSerde));
    by_user
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(10)))
        .count_with(Materialized::as_store("per-minute").with_retention(hour));
    by_user
        .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(Duration::from_secs(300)))
        .count_with(Materialized::as_store("per-session").with_retention(2 * hour));
    let state = tempfile::tempdir()?;
    let streams = KafkaStreams::new(builder.build()?, config(&app, state.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT), "state {:?}", streams.state());

    let admin: AdminClient<DefaultClientContext> = client_config().create()?;
    let read = |name: &str| {
        let topic = format!("{app}-{name}");
        wait_until(TIMEOUT, &format!("the configs of {topic}"), || topic_configs(&admin, &topic))
    };
    let kv = read("per-page-changelog")?;
    let window = read("per-minute-changelog")?;
    let session = read("per-session-changelog")?;
    let repartition = read("pages-repartition")?;
    streams.close();

    assert_eq!(kv.get("cleanup.policy").map(String::as_str), Some("compact"), "{kv:?}");
    assert_eq!(window.get("cleanup.policy").map(String::as_str), Some("compact,delete"), "{window:?}");
    assert_eq!(window.get("retention.ms"), Some(&(3_600_000 + DAY_MS).to_string()), "{window:?}");
    assert_eq!(session.get("cleanup.policy").map(String::as_str), Some("compact,delete"), "{session:?}");
    assert_eq!(session.get("retention.ms"), Some(&(7_200_000 + DAY_MS).to_string()), "{session:?}");
    assert_eq!(repartition.get("cleanup.policy").map(String::as_str), Some("delete"), "{repartition:?}");
    Ok(())
}
