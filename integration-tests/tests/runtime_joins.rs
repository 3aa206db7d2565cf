//! Stream–table joins on the real broker: a KTable from a compacted topic and
//! a GlobalKTable, both updated (and a customer deleted) while the
//! application runs; every order is enriched with the values current at its time.

use std::collections::BTreeSet;
use std::time::Duration;

use integration_tests::{
    create_compacted_topic_blocking, create_topic_blocking, produce, read_until, unique_name, TestRecord,
};
use streams_core::runtime::{KafkaStreams, State};
use streams_dsl::prelude::*;

mod common;
use common::config;

const TIMEOUT: Duration = Duration::from_secs(120);

fn values(records: &[TestRecord]) -> BTreeSet<String> {
    records.iter().filter_map(|r| r.value.as_deref()).map(|v| String::from_utf8_lossy(v).into_owned()).collect()
}

#[test]
fn ktable_and_global_table_joins_follow_updates_and_deletes() -> Result<(), Box<dyn std::error::Error>> {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let (customers, regions) = (unique_name("customers"), unique_name("regions"));
    let (orders, output, app) = (unique_name("orders"), unique_name("enriched"), unique_name("joins"));
    create_compacted_topic_blocking(&customers, 2)?;
    create_compacted_topic_blocking(&regions, 1)?;
    create_topic_blocking(&orders, 2)?;
    create_topic_blocking(&output, 2)?;
    let t0 = 1_700_000_000_000;
    produce(&customers, &[(Some(b"c1"), Some(b"Ada"), t0), (Some(b"c2"), Some(b"Bob"), t0)])?;
    produce(&regions, &[(Some(b"r1"), Some(b"North"), t0), (Some(b"r2"), Some(b"South"), t0)])?;

    let builder = StreamsBuilder::new();
    let customer_table =
        builder.table(&customers, Consumed::with(StringSerde, StringSerde), Materialized::as_store("customers"));
    let region_table =
        builder.global_table(&regions, Consumed::with(StringSerde, StringSerde), Materialized::as_store("regions"));
    builder
        .stream(&[orders.as_str()], Consumed::with(StringSerde, StringSerde))
        .left_join(&customer_table, |order: &String, c: Option<&String>| {
            format!("{order}|{}", c.map_or("-", String::as_str))
        })
        .left_join_global(
            &region_table,
            |_, v: &String| v.split('|').next().and_then(|o| o.split(',').nth(1)).unwrap_or_default().to_owned(),
            |v: &String, r: Option<&String>| format!("{v}|{}", r.map_or("-", String::as_str)),
        )
        .to_with(&output, Produced::with(StringSerde, StringSerde));
    let dir = tempfile::tempdir()?;
    let streams = KafkaStreams::new(builder.build()?, config(&app, dir.path(), "exactly_once_v2"))?;
    streams.start()?;
    assert!(streams.wait_for_state(State::Running, TIMEOUT));

    produce(
        &orders,
        &[
            (Some(b"c1"), Some(b"o1,r1"), t0 + 1000),
            (Some(b"c2"), Some(b"o2,r2"), t0 + 1000),
            (Some(b"c3"), Some(b"o3,r1"), t0 + 1000),
        ],
    )?;
    let first: BTreeSet<String> =
        ["o1,r1|Ada|North", "o2,r2|Bob|South", "o3,r1|-|North"].into_iter().map(str::to_owned).collect();
    read_until(&output, TIMEOUT, |r| values(r) == first)?;

    // Updates: Ada's record changes, Bob is deleted (tombstone), r1 is renamed.
    produce(&customers, &[(Some(b"c1"), Some(b"Ada Lovelace"), t0 + 2000), (Some(b"c2"), None, t0 + 2000)])?;
    produce(&regions, &[(Some(b"r1"), Some(b"North-East"), t0 + 2000)])?;
    // The global thread applies updates asynchronously: probe until it has.
    let mut probe = 0;
    read_until(&output, TIMEOUT, |r| {
        if values(r).iter().any(|v| v.ends_with(",r1|-|North-East")) {
            return true;
        }
        probe += 1;
        let value = format!("p{probe},r1");
        let _ = produce(&orders, &[(Some(b"c9"), Some(value.as_bytes()), t0 + 2500)]);
        false
    })?;

    produce(&orders, &[(Some(b"c1"), Some(b"o4,r1"), t0 + 3000), (Some(b"c2"), Some(b"o5,r2"), t0 + 3000)])?;
    let read = read_until(&output, TIMEOUT, |r| {
        let v = values(r);
        v.contains("o4,r1|Ada Lovelace|North-East") && v.contains("o5,r2|-|South")
    });
    streams.close();
    let all = values(&read?);
    assert!(first.is_subset(&all));
    assert_eq!(all.iter().filter(|v| v.starts_with("o")).count(), 5, "each order enriched once: {all:?}");
    Ok(())
}
