//! The DSL against golden outputs of Apache Kafka Streams itself.
//!
//! Each scenario's input (`golden/scenarios/NAME.in`) was run through Kafka
//! Streams' own TopologyTestDriver by `golden/run.sh` (the Java harness
//! `golden/src/main/java/dev/rivulet/golden/Golden.java` builds the same
//! topology with the Java DSL), which wrote `golden/expected/NAME.txt`. Here the
//! same topology, built with the Rust DSL, must emit exactly those records:
//! keys, values, timestamps, intermediate KTable updates and tombstones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use streams_dsl::prelude::*;

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn num(v: &str) -> i64 {
    v.parse().unwrap_or(0)
}

fn s() -> StringSerde {
    StringSerde
}

fn ns() -> Nullable<StringSerde> {
    Nullable(StringSerde)
}

fn out_str() -> Produced<String, Option<String>> {
    Produced::with(s(), ns())
}

fn win(k: &Windowed<String>) -> String {
    format!("{}@{}/{}", k.key, k.window.start, k.window.end)
}

fn windowed_out(table: KTable<Windowed<String>, i64>) {
    table.to_stream().map(|k, v: Option<i64>| (win(&k), v.map(|c| c.to_string()))).to_with("out", out_str());
}

fn build(name: &str) -> Res<Topology> {
    let b = StreamsBuilder::new();
    match name {
        "wordcount" => b
            .stream(&["in"], Consumed::with(ns(), s()))
            .flat_map_values(|v: String| {
                v.to_lowercase().split(|c: char| !c.is_ascii_alphanumeric()).map(str::to_owned).collect::<Vec<_>>()
            })
            .filter(|_, v| !v.is_empty())
            .group_by(|_, v| v.clone(), Grouped::with(s(), s()))
            .count()
            .to_stream()
            .map_values(|v| v.map(|c| c.to_string()))
            .to_with("out", out_str()),
        "stateless" => {
            let st = b.stream(&["in"], Consumed::with(s(), s()));
            st.filter(|_, v| v.len() > 2).map_values(|v| v.to_uppercase()).to_with("upper", Produced::with(s(), s()));
            st.filter_not(|_, v| v.len() > 2).map(|k, v| (v, k)).to_with("swapped", Produced::with(s(), s()));
            st.flat_map(|k, v: String| vec![(format!("{k}1"), v.clone()), (format!("{k}2"), v)])
                .to_with("doubled", Produced::with(s(), s()));
            st.select_key(|_, v| v[..1].to_owned())
                .merge(&b.stream(&["other"], Consumed::with(s(), s())))
                .to_with("merged", Produced::with(s(), s()));
        }
        "table_source" => b
            .table("t", Consumed::with(ns(), s()), Materialized::default())
            .to_stream()
            .to_with("out", Produced::with(ns(), ns())),
        "table_filter_map" => b
            .table("t", Consumed::with(s(), s()), Materialized::default())
            .filter(|_, v| v.len() > 2)
            .map_values(|v| v.to_uppercase())
            .to_stream()
            .to_with("out", out_str()),
        "table_filter_materialized" => b
            .table("t", Consumed::with(s(), s()), Materialized::default())
            .filter_materialized(|_, v| v.len() > 2, Materialized::with(s(), s()))
            .to_stream()
            .to("out"),
        "reduce" => b
            .stream(&["in"], Consumed::with(ns(), ns()))
            .group_by_key()
            .reduce(|a, v| Some(a.unwrap_or_default() + &v.unwrap_or_default()), Materialized::default())
            .to_stream()
            .map_values(Option::flatten)
            .to_with("out", Produced::with(ns(), ns())),
        "aggregate" => b
            .stream(&["in"], Consumed::with(ns(), ns()))
            .group_by_key()
            .aggregate(|| 0i64, |_, v, agg| agg + num(&v.unwrap_or_default()), Materialized::with(ns(), I64Serde))
            .to_stream()
            .map_values(|v| v.map(|c| c.to_string()))
            .to_with("out", Produced::with(ns(), ns())),
        "windowed_count" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .group_by_key()
                .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
                .count(),
        ),
        "hopping_sum" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .group_by_key()
                .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(0)).advance_by(ms(5)))
                .aggregate(|| 0i64, |_, v, agg| agg + num(&v), Materialized::with(s(), I64Serde)),
        ),
        "suppress" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .group_by_key()
                .windowed_by(TimeWindows::of_size_and_grace(ms(10), ms(5)))
                .count()
                .suppress(Suppressed::until_window_closes(BufferConfig::unbounded())),
        ),
        "session_count" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .group_by_key()
                .windowed_by_session(SessionWindows::of_inactivity_gap_and_grace(ms(5), ms(0)))
                .count(),
        ),
        "sliding_count" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .group_by_key()
                .windowed_by_sliding(SlidingWindows::of_time_difference_and_grace(ms(10), ms(5)))
                .count(),
        ),
        "stream_table_join" => {
            let t = b.table("t", Consumed::with(ns(), s()), Materialized::default());
            let st = b.stream(&["s"], Consumed::with(ns(), s()));
            st.join(&t, |sv, tv| format!("{sv}+{tv}")).to_with("inner", Produced::with(ns(), s()));
            st.left_join(&t, |sv, tv| format!("{sv}+{}", tv.map_or("null", String::as_str)))
                .to_with("left", Produced::with(ns(), s()));
        }
        "table_groupby_aggregate" => b
            .table("t", Consumed::with(s(), s()), Materialized::default())
            .group_by(
                |_, v| {
                    let (tier, amount) = v.split_once(':').unwrap_or((v.as_str(), "0"));
                    (tier.to_owned(), amount.to_owned())
                },
                Grouped::with(s(), s()),
            )
            .aggregate(|| 0i64, |_, v, agg| agg + num(v), |_, v, agg| agg - num(v), Materialized::with(s(), I64Serde))
            .to_stream()
            .map_values(|v| v.map(|c| c.to_string()))
            .to_with("out", out_str()),
        "stream_stream_join" => {
            let l = b.stream(&["l"], Consumed::with(s(), s()));
            let r = b.stream(&["r"], Consumed::with(s(), s()));
            let w = JoinWindows::of_time_difference_and_grace(ms(10), ms(0));
            let p = || Produced::with(s(), s());
            l.join_stream(&r, |a, c| format!("{a}+{c}"), w).to_with("inner", p());
            l.left_join_stream(&r, |a, c| format!("{a}+{}", c.map_or("null", String::as_str)), w).to_with("left", p());
            l.outer_join_stream(
                &r,
                |a, c| format!("{}+{}", a.map_or("null", String::as_str), c.map_or("null", String::as_str)),
                w,
            )
            .to_with("outer", p());
        }
        "table_table_join" => {
            let l = b.table("l", Consumed::with(s(), s()), Materialized::default());
            let r = b.table("r", Consumed::with(s(), s()), Materialized::default());
            let opt = |v: Option<&String>| v.map_or("null".to_owned(), String::clone);
            l.join(&r, |a, c| format!("{a}+{c}")).to_stream().to_with("inner", out_str());
            l.left_join(&r, move |a, c| format!("{a}+{}", opt(c))).to_stream().to_with("left", out_str());
            l.outer_join(&r, move |a, c| format!("{}+{}", opt(a), opt(c))).to_stream().to_with("outer", out_str());
        }
        "global_join" => {
            let g = b.global_table("g", Consumed::with(s(), s()), Materialized::default());
            let st = b.stream(&["s"], Consumed::with(s(), s()));
            let customer = |_: &String, v: &String| v.split(':').next().unwrap_or_default().to_owned();
            st.join_global(&g, customer, |sv, gv| format!("{sv}+{gv}")).to_with("inner", Produced::with(s(), s()));
            st.left_join_global(&g, customer, |sv, gv| format!("{sv}+{}", gv.map_or("null", String::as_str)))
                .to_with("left", Produced::with(s(), s()));
        }
        "cogroup" => {
            let g1 = b.stream(&["a"], Consumed::with(s(), s())).group_by_key();
            let g2 = b.stream(&["b"], Consumed::with(s(), s())).group_by_key();
            g1.cogroup(|_, v, agg: String| format!("{agg}a{v}"))
                .cogroup(&g2, |_, v, agg: String| format!("{agg}b{v}"))
                .aggregate(String::new, Materialized::with(s(), s()))
                .to_stream()
                .to("out");
        }
        "suppress_time_limit" => b
            .table("t", Consumed::with(s(), s()), Materialized::default())
            .suppress(Suppressed::until_time_limit(ms(10), BufferConfig::unbounded()))
            .to_stream()
            .to("out"),
        "suppress_emit_early" => b
            .table("t", Consumed::with(s(), s()), Materialized::default())
            .suppress(Suppressed::until_time_limit(ms(100), BufferConfig::max_records(2).emit_early_when_full()))
            .to_stream()
            .to("out"),
        "cached_count" => b
            .stream(&["in"], Consumed::with(s(), s()))
            .flat_map_values(|v: String| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
            .group_by_key()
            .count()
            .to_stream()
            .map_values(|v| v.map(|c| c.to_string()))
            .to_with("out", out_str()),
        "cached_windowed" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .flat_map_values(|v: String| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .group_by_key()
                .windowed_by(TimeWindows::of_size_with_no_grace(ms(10)))
                .count(),
        ),
        "cached_session" => windowed_out(
            b.stream(&["in"], Consumed::with(s(), s()))
                .flat_map_values(|v: String| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
                .group_by_key()
                .windowed_by_session(SessionWindows::of_inactivity_gap_with_no_grace(ms(5)))
                .count(),
        ),
        "fk_join" => {
            let orders = b.table("orders", Consumed::with(s(), s()), Materialized::default());
            let customers = b.table("customers", Consumed::with(s(), s()), Materialized::default());
            let customer = |v: &String| v.split(':').next().unwrap_or_default().to_owned();
            orders
                .join_foreign_key(&customers, customer, |o, c| format!("{o}+{c}"))
                .to_stream()
                .to_with("inner", out_str());
            orders
                .left_join_foreign_key(&customers, customer, |o, c| format!("{o}+{}", c.map_or("null", String::as_str)))
                .to_stream()
                .to_with("left", out_str());
        }
        other => return Err(format!("no Rust topology for scenario {other}").into()),
    }
    Ok(b.build()?)
}

fn show(v: Option<String>) -> String {
    v.unwrap_or_else(|| "<null>".to_owned())
}

fn bytes(field: &str) -> Option<&[u8]> {
    (field != "<null>").then_some(field.as_bytes())
}

fn run(name: &str) -> Res<Vec<String>> {
    let topology = build(name)?;
    let driver = TopologyTestDriver::with_config(
        &topology,
        TestDriverConfig {
            initial_wall_clock_ms: 0,
            // As the Java harness: Kafka's default record cache for cached_* scenarios, none otherwise.
            cache_max_bytes: if name.starts_with("cached_") { 10 * 1024 * 1024 } else { 0 },
            ..Default::default()
        },
    )?;
    let input = std::fs::read_to_string(dir().join("scenarios").join(format!("{name}.in")))?;
    for line in input.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = line.split('|').collect();
        let [topic, key, value, ts] = f.as_slice() else { return Err(format!("bad input line {line:?}").into()) };
        driver.pipe_raw_record(topic, bytes(key), bytes(value), ts.parse()?)?;
    }
    let mut out = Vec::new();
    for topic in driver.produced_topic_names() {
        if topic.starts_with("test-app-") {
            continue;
        }
        let records = driver.create_output_topic(&topic, ns(), ns()).read_records_to_list()?;
        out.extend(records.into_iter().map(|r| format!("{topic}|{}|{}|{}", show(r.key), show(r.value), r.timestamp)));
    }
    Ok(out)
}

fn check(name: &str) -> Res {
    let expected = std::fs::read_to_string(dir().join("expected").join(format!("{name}.txt")))?;
    let expected: Vec<&str> = expected.lines().collect();
    let actual = run(name)?;
    assert_eq!(actual, expected, "scenario {name}: Rivulet's output differs from Kafka Streams'");
    Ok(())
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() -> Res {
                check(stringify!($name))
            }
        )*
    };
}

golden!(
    wordcount,
    stateless,
    table_source,
    table_filter_map,
    table_filter_materialized,
    reduce,
    aggregate,
    windowed_count,
    hopping_sum,
    suppress,
    session_count,
    sliding_count,
    stream_table_join,
    table_groupby_aggregate,
    stream_stream_join,
    table_table_join,
    global_join,
    cogroup,
    suppress_time_limit,
    suppress_emit_early,
    cached_count,
    cached_windowed,
    cached_session,
    fk_join,
);
