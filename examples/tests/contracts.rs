//! The examples' topic contracts, checked from outside: each binary runs as a
//! child process on the real broker, input comes from a plain rdkafka
//! producer, output is read with a read_committed consumer, and expected
//! results are computed here, independently of the examples' code.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use integration_tests::{
    create_compacted_topic_blocking, create_topic_blocking, latest_by_key, produce, read_until, unique_name, TestRecord,
};
use serde_json::{json, Value};

mod common;
use common::{args, base_args, App};

const TIMEOUT: Duration = Duration::from_secs(180);

/// A record to produce: key, value, timestamp.
type Row = (Option<Vec<u8>>, Vec<u8>, i64);

fn json_values(records: &[TestRecord]) -> Vec<(String, Value)> {
    records
        .iter()
        .map(|r| {
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let value = r.value.as_deref().and_then(|v| serde_json::from_slice(v).ok()).unwrap_or(Value::Null);
            (key, value)
        })
        .collect()
}

#[test]
fn word_count_contract() -> Result<(), Box<dyn std::error::Error>> {
    let (input, output, app) = (unique_name("text-lines"), unique_name("word-counts"), unique_name("wc"));
    create_topic_blocking(&input, 3)?;
    create_topic_blocking(&output, 3)?;
    let lines = [
        "Hello, World! hello again",
        "tab\tseparated\u{00a0}words and-dashes_underscores",
        "Ünïcödé WORDS straße Straße",
        "",
        "digits 42 and 42x",
        "   ...   ",
    ];
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for line in lines {
        let mut word = String::new();
        for c in line.chars().chain(std::iter::once(' ')) {
            if c.is_alphanumeric() {
                word.push(c);
            } else if !word.is_empty() {
                *expected.entry(word.to_lowercase()).or_default() += 1;
                word.clear();
            }
        }
    }
    let expected: BTreeMap<String, Option<String>> =
        expected.into_iter().map(|(k, v)| (k, Some(v.to_string()))).collect();
    let keys: [Option<&[u8]>; 3] = [None, Some(b"k1"), Some(b"other")];
    let records: Vec<_> =
        lines.iter().enumerate().map(|(i, l)| (keys[i % 3], Some(l.as_bytes()), 1_000 + i as i64)).collect();
    produce(&input, &records)?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--output-topic", &output)]));
    let mut child = App::start(env!("CARGO_BIN_EXE_word-count"), &a, &state.path().join("log"))?;
    let read = read_until(&output, TIMEOUT, |r| latest_by_key(r) == expected);
    assert!(read.is_ok(), "{read:?}\n{}", child.log_tail());
    assert!(child.running());
    Ok(())
}

#[test]
fn fraud_detection_contract() -> Result<(), Box<dyn std::error::Error>> {
    let (input, output, app) = (unique_name("payments"), unique_name("fraud-alerts"), unique_name("fraud"));
    create_topic_blocking(&input, 3)?;
    create_topic_blocking(&output, 3)?;
    let t0: i64 = 1_700_000_040_000; // a minute boundary
                                     // (card, amount, offset ms from t0)
    let mut payments: Vec<(String, f64, i64)> = Vec::new();
    for i in 0..6 {
        payments.push(("card-many".into(), 10.0, i * 5_000)); // 6 in one window: > 5
    }
    for i in 0..5 {
        payments.push(("card-five".into(), 10.0, i * 5_000)); // exactly 5: fine
    }
    payments.push(("card-big".into(), 4000.0, 1_000));
    payments.push(("card-big".into(), 1000.5, 2_000)); // 5000.5 > 5000
    payments.push(("card-edge".into(), 5000.0, 3_000)); // exactly 5000: fine
    for i in 0..3 {
        payments.push(("card-split".into(), 10.0, 55_000 + i * 1_000)); // 3 in the first window…
        payments.push(("card-split".into(), 10.0, 60_000 + i * 1_000)); // …3 in the next
    }
    for i in 0..6 {
        payments.push(("card-late".into(), 1.0, 70_000 + i)); // 6 in window 2
    }
    payments.push(("card-late".into(), 1.0, 119_999)); // last ms of window 2
    payments.push(("card-many".into(), 1.0, 63_000)); // window 2 of card-many: 1 payment
    payments.push(("card-many".into(), 10.0, 59_999)); // last ms of window 1
    let mut expected: BTreeMap<(String, i64), (u64, f64)> = BTreeMap::new();
    for (card, amount, dt) in &payments {
        let start = (t0 + dt) / 60_000 * 60_000;
        let e = expected.entry((card.clone(), start)).or_default();
        e.0 += 1;
        e.1 += amount;
    }
    let expected: BTreeSet<(String, i64, u64, String)> = expected
        .into_iter()
        .filter(|(_, (n, total))| *n > 5 || *total > 5000.0)
        .map(|((card, start), (n, total))| (card, start, n, format!("{total:.2}")))
        .collect();
    let values: Vec<Row> = payments
        .iter()
        .enumerate()
        .map(|(i, (card, amount, dt))| {
            let v = json!({"card_id": card, "amount": amount, "merchant": "shop", "ts": t0 + dt});
            // Half keyed by card, half unkeyed: the app re-keys by card_id.
            let key = (i % 2 == 0).then(|| card.clone().into_bytes());
            (key, v.to_string().into_bytes(), t0 + dt)
        })
        .collect();
    let send = |values: &[Row]| {
        let records: Vec<_> = values.iter().map(|(k, v, ts)| (k.as_deref(), Some(v.as_slice()), *ts)).collect();
        produce(&input, &records)
    };
    // Processing order across partitions is not event-time order (each
    // input partition feeds the repartition topic at its own pace), so the
    // test lets time move on in steps: first window 1, then window 2.
    let (first, second): (Vec<_>, Vec<_>) = values.into_iter().partition(|(_, _, ts)| *ts < t0 + 60_000);
    send(&first)?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--output-topic", &output)]));
    let child = App::start(env!("CARGO_BIN_EXE_fraud-detection"), &a, &state.path().join("log"))?;
    let alerts = |r: &[TestRecord]| -> Vec<(String, i64, u64, String)> {
        json_values(r)
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(v["card_id"].as_str(), Some(k.as_str()), "key = card_id");
                let start = v["window_start"].as_i64().unwrap_or(-1);
                assert_eq!(v["window_end"].as_i64(), Some(start + 60_000));
                (k, start, v["count"].as_u64().unwrap_or(0), format!("{:.2}", v["total"].as_f64().unwrap_or(-1.0)))
            })
            .collect()
    };
    integration_tests::wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    send(&second)?;
    // Every card pays again
    // much later, in every partition, which closes all earlier windows
    // (these new windows stay open).
    integration_tests::wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    let cards: BTreeSet<&String> = payments.iter().map(|p| &p.0).collect();
    let advance: Vec<_> = cards
        .iter()
        .map(|card| {
            let v = json!({"card_id": card, "amount": 1, "merchant": "shop", "ts": t0 + 600_000});
            (Some(card.as_bytes().to_vec()), v.to_string().into_bytes(), t0 + 600_000)
        })
        .collect();
    send(&advance)?;
    let read = read_until(&output, TIMEOUT, |r| alerts(r).len() >= expected.len());
    assert!(read.is_ok(), "{read:?}\n{}", child.log_tail());
    // A payment for a closed window: dropped, no second alert.
    let v = json!({"card_id": "card-many", "amount": 10, "merchant": "shop", "ts": t0 + 1_000});
    send(&[(Some(b"card-many".to_vec()), v.to_string().into_bytes(), t0 + 1_000)])?;
    // Everything processed and committed: no further alert can come.
    integration_tests::wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    let all = read_until(&output, Duration::from_secs(30), |r| alerts(r).len() >= expected.len());
    let all = all.map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let got = alerts(&all);
    assert_eq!(got.len(), expected.len(), "exactly one alert per suspicious window: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    Ok(())
}

#[test]
fn order_enrichment_contract() -> Result<(), Box<dyn std::error::Error>> {
    let (customers, orders) = (unique_name("customers"), unique_name("orders"));
    let (enriched, revenue, app) =
        (unique_name("enriched-orders"), unique_name("revenue-by-tier"), unique_name("orders"));
    create_compacted_topic_blocking(&customers, 2)?;
    create_topic_blocking(&orders, 2)?;
    create_topic_blocking(&enriched, 2)?;
    create_topic_blocking(&revenue, 2)?;
    let t0 = 1_700_000_000_000;
    let customer =
        |id: &str, name: &str, tier: &str| json!({"customer_id": id, "name": name, "tier": tier}).to_string();
    let order = |id: &str, c: &str, amount: f64, dt: i64| {
        json!({"order_id": id, "customer_id": c, "amount": amount, "ts": t0 + dt}).to_string()
    };
    let send = |topic: &str, rows: &[(&str, Option<String>, i64)]| {
        let records: Vec<_> =
            rows.iter().map(|(k, v, ts)| (Some(k.as_bytes()), v.as_deref().map(str::as_bytes), *ts)).collect();
        produce(topic, &records)
    };
    send(
        &customers,
        &[
            ("c1", Some(customer("c1", "Ada", "gold")), t0),
            ("c2", Some(customer("c2", "Bob", "silver")), t0),
            ("c3", Some(customer("c3", "Cy", "gold")), t0),
        ],
    )?;
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[
        ("--customers-topic", &customers),
        ("--orders-topic", &orders),
        ("--output-topic", &enriched),
        ("--revenue-topic", &revenue),
    ]));
    let child = App::start(env!("CARGO_BIN_EXE_order-enrichment"), &a, &state.path().join("log"))?;
    // The contract joins an order with its customer as known when the order
    // is processed: the customers are in the table (its changelog) first.
    let changelog = format!("{app}-customers-store-changelog");
    // The application creates the changelog when it starts: read once it is there.
    integration_tests::wait_until(TIMEOUT, "the customers in the table's changelog", || {
        read_until(&changelog, Duration::from_secs(10), |r| r.len() >= 3).ok()
    })
    .map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    send(
        &orders,
        &[
            ("o1", Some(order("o1", "c1", 100.25, 1_000)), t0 + 1_000),
            ("o2", Some(order("o2", "c2", 50.5, 1_000)), t0 + 1_000),
            ("o3", Some(order("o3", "c9", 7.0, 1_000)), t0 + 1_000), // unknown customer
            ("o4", Some(order("o4", "c3", 0.1, 1_000)), t0 + 1_000),
        ],
    )?;
    let by_order = |r: &[TestRecord]| -> BTreeMap<String, (Value, Value)> {
        json_values(r).into_iter().map(|(k, v)| (k, (v["customer_name"].clone(), v["tier"].clone()))).collect()
    };
    let first = read_until(&enriched, TIMEOUT, |r| by_order(r).len() >= 4);
    let first = first.map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let got = by_order(&first);
    assert_eq!(got["o1"], (json!("Ada"), json!("gold")));
    assert_eq!(got["o2"], (json!("Bob"), json!("silver")));
    assert_eq!(got["o3"], (Value::Null, Value::Null));
    assert_eq!(got["o4"], (json!("Cy"), json!("gold")));
    let enriched_o1 = json_values(&first).into_iter().find(|(k, _)| k == "o1").map(|(_, v)| v).unwrap_or_default();
    assert_eq!(enriched_o1["amount"], json!(100.25));
    assert_eq!(enriched_o1["customer_id"], json!("c1"));
    assert_eq!(enriched_o1["ts"], json!(t0 + 1_000));
    integration_tests::wait_for_group_caught_up(&app, &[customers.as_str(), orders.as_str()], TIMEOUT)?;

    // Ada moves to silver, Bob leaves; o1 is re-sent with a new amount.
    send(&customers, &[("c1", Some(customer("c1", "Ada", "silver")), t0 + 2_000), ("c2", None, t0 + 2_000)])?;
    integration_tests::wait_for_group_caught_up(&app, &[customers.as_str(), orders.as_str()], TIMEOUT)?;
    send(
        &orders,
        &[
            ("o5", Some(order("o5", "c1", 10.0, 3_000)), t0 + 3_000),
            ("o6", Some(order("o6", "c2", 20.0, 3_000)), t0 + 3_000),
            ("o1", Some(order("o1", "c1", 200.0, 3_000)), t0 + 3_000),
        ],
    )?;
    let later = read_until(&enriched, TIMEOUT, |r| json_values(r).len() >= 7)?;
    let rows = json_values(&later);
    let last = |id: &str| rows.iter().rev().find(|(k, _)| k == id).map(|(_, v)| v.clone()).unwrap_or_default();
    assert_eq!((last("o5")["customer_name"].clone(), last("o5")["tier"].clone()), (json!("Ada"), json!("silver")));
    assert_eq!((last("o6")["customer_name"].clone(), last("o6")["tier"].clone()), (Value::Null, Value::Null));
    assert_eq!(last("o1")["amount"], json!(200.0));
    // Revenue: gold = o4 (o1 moved to silver when re-sent), silver = o2 + o5 + o1'.
    let expected: BTreeMap<String, Option<String>> =
        [("gold", "0.1"), ("silver", "260.5")].into_iter().map(|(k, v)| (k.to_owned(), Some(v.to_owned()))).collect();
    let totals = read_until(&revenue, TIMEOUT, |r| latest_by_key(r) == expected);
    assert!(totals.is_ok(), "{totals:?}\n{}", child.log_tail());
    Ok(())
}

#[test]
fn page_views_contract() -> Result<(), Box<dyn std::error::Error>> {
    let (input, counts, sessions, app) =
        (unique_name("page-views"), unique_name("page-view-counts"), unique_name("user-sessions"), unique_name("pv"));
    for t in [&input, &counts, &sessions] {
        create_topic_blocking(t, 2)?;
    }
    let t0: i64 = 1_700_000_040_000; // a minute boundary
                                     // (user, page, offset s)
    let views: Vec<(&str, &str, i64)> = vec![
        ("u1", "/home", 0),
        ("u1", "/cart", 10),
        ("u2", "/home", 20),
        ("u1", "/home", 59),
        ("u2", "/help", 61),
        ("u1", "/cart", 200), // u1's session continues (gap < 5 min)
        ("u3", "/home", 100),
        ("u3", "/home", 500), // u3: two sessions (gap 400 s)
        ("u2", "/cart", 700),
        ("u1", "/home", 700),
    ];
    let mut expected_counts: BTreeSet<(String, i64, i64)> = BTreeSet::new();
    let mut windows: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (_, page, s) in &views {
        *windows.entry((page.to_string(), (t0 + s * 1000) / 60_000 * 60_000)).or_default() += 1;
    }
    expected_counts.extend(windows.into_iter().map(|((p, w), n)| (p, w, n)));
    let mut expected_sessions: BTreeSet<(String, i64, i64, i64)> = BTreeSet::new();
    let mut by_user: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for (u, _, s) in &views {
        by_user.entry(u).or_default().push(t0 + s * 1000);
    }
    for (u, mut times) in by_user {
        times.sort();
        let mut start = times[0];
        let mut last = times[0];
        let mut n = 0;
        for t in times {
            if t - last > 300_000 {
                expected_sessions.insert((u.to_owned(), start, last, n));
                start = t;
                n = 0;
            }
            last = t;
            n += 1;
        }
        expected_sessions.insert((u.to_owned(), start, last, n));
    }
    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[("--input-topic", &input), ("--counts-topic", &counts), ("--sessions-topic", &sessions)]));
    let child = App::start(env!("CARGO_BIN_EXE_page-views"), &a, &state.path().join("log"))?;
    // Event time moves forward in steps, each once the previous one is
    // processed (partitions feed the repartition topics at their own pace).
    let mut sorted = views.clone();
    sorted.sort_by_key(|v| v.2);
    for step in sorted.chunk_by(|a, b| a.2 / 60 == b.2 / 60) {
        let rows: Vec<(String, String, i64)> = step
            .iter()
            .map(|(u, p, s)| {
                (u.to_string(), json!({"user_id": u, "page": p, "ts": t0 + s * 1000}).to_string(), t0 + s * 1000)
            })
            .collect();
        let records: Vec<_> = rows.iter().map(|(k, v, ts)| (Some(k.as_bytes()), Some(v.as_bytes()), *ts)).collect();
        produce(&input, &records)?;
        integration_tests::wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    }
    // Close everything: much later views by every user on every page.
    let mut closing = Vec::new();
    for u in ["u1", "u2", "u3"] {
        for p in ["/home", "/cart", "/help"] {
            let ts = t0 + 3_600_000;
            closing.push((u.to_owned(), json!({"user_id": u, "page": p, "ts": ts}).to_string(), ts));
        }
    }
    let records: Vec<_> = closing.iter().map(|(k, v, ts)| (Some(k.as_bytes()), Some(v.as_bytes()), *ts)).collect();
    produce(&input, &records)?;
    integration_tests::wait_for_group_caught_up(&app, &[input.as_str()], TIMEOUT)?;
    let got_counts = read_until(&counts, TIMEOUT, |r| r.len() >= expected_counts.len());
    let got_counts = got_counts.map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let got: Vec<(String, i64, i64)> = json_values(&got_counts)
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v["page"].as_str(), Some(k.as_str()));
            let start = v["window_start"].as_i64().unwrap_or(-1);
            assert_eq!(v["window_end"].as_i64(), Some(start + 60_000));
            (k, start, v["views"].as_i64().unwrap_or(-1))
        })
        .collect();
    assert_eq!(got.len(), expected_counts.len(), "one record per window: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected_counts);
    let got_sessions = read_until(&sessions, TIMEOUT, |r| r.len() >= expected_sessions.len())?;
    let got: Vec<(String, i64, i64, i64)> = json_values(&got_sessions)
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v["user_id"].as_str(), Some(k.as_str()));
            (
                k,
                v["session_start"].as_i64().unwrap_or(-1),
                v["session_end"].as_i64().unwrap_or(-1),
                v["views"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(got.len(), expected_sessions.len(), "one record per session: {got:?}");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected_sessions);
    Ok(())
}
