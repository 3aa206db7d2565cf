//! Start-up planning of internal topics for DSL topologies: partition counts,
//! changelog configs, co-partitioning errors.

use std::collections::HashMap;
use std::time::Duration;

use streams_dsl::internal_topics::{plan_internal_topics, TopicPlanError};
use streams_dsl::prelude::*;

mod common;

type Res = Result<(), Box<dyn std::error::Error>>;

fn counts(pairs: &[(&str, i32)]) -> HashMap<String, i32> {
    pairs.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

#[test]
fn word_count_plans_a_repartition_topic_and_a_compacted_changelog() -> Res {
    let b = StreamsBuilder::new();
    common::word_count(&b);
    let (subs, topics) = plan_internal_topics(&b.build()?, "wc", &counts(&[("text-lines", 4)]))?;
    assert_eq!(subs.values().copied().collect::<Vec<_>>(), vec![4, 4]);
    let names: Vec<(&str, i32, &str)> =
        topics.iter().map(|t| (t.name.as_str(), t.partitions, t.config["cleanup.policy"].as_str())).collect();
    assert_eq!(names, vec![("wc-counts-changelog", 4, "compact"), ("wc-words-repartition", 4, "delete")]);
    Ok(())
}

#[test]
fn fixed_repartition_counts_flow_downstream_and_windowed_changelogs_expire() -> Res {
    let b = StreamsBuilder::new();
    b.stream(&["payments"], Consumed::with(StringSerde, StringSerde))
        .repartition(Repartitioned::with(StringSerde, StringSerde).named("by-card").with_partitions(8))
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(Duration::from_secs(60), Duration::from_secs(5)))
        .count_with(Materialized::as_store("per-minute"))
        .to_stream()
        .to_with("alerts", Produced::with(WindowedSerde::time(StringSerde, 60_000), Nullable(I64Serde)));
    let (subs, topics) = plan_internal_topics(&b.build()?, "fraud", &counts(&[("payments", 3)]))?;
    assert_eq!(subs.values().copied().collect::<Vec<_>>(), vec![3, 8]);
    let changelog = topics.iter().find(|t| t.name == "fraud-per-minute-changelog").ok_or("no changelog")?;
    assert_eq!(changelog.partitions, 8);
    assert_eq!(changelog.config["cleanup.policy"], "compact,delete");
    assert_eq!(changelog.config["retention.ms"], (65_000 + 86_400_000).to_string());
    Ok(())
}

#[test]
fn joins_of_topics_with_different_partition_counts_are_refused() -> Res {
    let b = StreamsBuilder::new();
    let customers = b.table("customers", Consumed::with(StringSerde, StringSerde), Materialized::default());
    b.stream(&["orders"], Consumed::with(StringSerde, StringSerde))
        .join(&customers, |o, c| format!("{o}{c}"))
        .to_with("enriched", Produced::with(StringSerde, StringSerde));
    let topology = b.build()?;
    match plan_internal_topics(&topology, "app", &counts(&[("orders", 4), ("customers", 2)])) {
        Err(TopicPlanError::NotCopartitioned { topics, counts, .. }) => {
            assert_eq!(topics, vec!["customers".to_owned(), "orders".to_owned()]);
            assert_eq!(counts, vec![2, 4]);
        }
        other => panic!("expected a co-partitioning error, got {other:?}"),
    }
    assert!(plan_internal_topics(&topology, "app", &counts(&[("orders", 4), ("customers", 4)])).is_ok());
    let missing = plan_internal_topics(&topology, "app", &counts(&[("orders", 4)]));
    assert_eq!(missing.err(), Some(TopicPlanError::MissingSourceTopic("customers".into())));
    Ok(())
}

#[test]
fn global_tables_need_no_copartitioning_and_no_changelog() -> Res {
    let b = StreamsBuilder::new();
    let g = b.global_table(
        "customers",
        Consumed::with(StringSerde, StringSerde),
        Materialized::as_store("customers-global"),
    );
    b.stream(&["orders"], Consumed::with(StringSerde, StringSerde))
        .join_global(&g, |_, v| v.clone(), |o, c| format!("{o}{c}"))
        .to_with("enriched", Produced::with(StringSerde, StringSerde));
    let (subs, topics) = plan_internal_topics(&b.build()?, "app", &counts(&[("orders", 4), ("customers", 1)]))?;
    assert_eq!(subs.values().copied().collect::<Vec<_>>(), vec![4]);
    assert!(topics.is_empty(), "{topics:?}");
    Ok(())
}
