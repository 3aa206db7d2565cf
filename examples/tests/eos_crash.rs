//! Exactly once under crashes: `word-count` runs as a child process and is
//! killed with SIGKILL at random points, several times, while 100,000+
//! records flow; a read_committed reader of the output must see every final
//! count exactly, and each word's counts strictly increasing (a replayed
//! update would repeat or go back). Under at_least_once: nothing lost.

use std::collections::BTreeMap;
use std::time::Duration;

use integration_tests::{create_topic_blocking, produce, read_until, unique_name, TestRecord};

mod common;
use common::{args, base_args, App, Rng};

const TIMEOUT: Duration = Duration::from_secs(300);
const LINES: usize = 25_000;
const KILLS: usize = 3;

/// Lines of 1–7 words from a 1,000-word vocabulary, and the expected counts.
fn input(rng: &mut Rng) -> (Vec<String>, BTreeMap<String, u64>) {
    let mut counts = BTreeMap::new();
    let lines = (0..LINES)
        .map(|_| {
            let words: Vec<String> = (0..=rng.below(7)).map(|_| format!("w{}", rng.below(1000))).collect();
            for w in &words {
                *counts.entry(w.clone()).or_default() += 1;
            }
            words.join(" ")
        })
        .collect();
    (lines, counts)
}

fn counts_seen(records: &[TestRecord]) -> BTreeMap<String, Vec<u64>> {
    let mut seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in records {
        let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
        let n = r.value.as_deref().and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0);
        seen.entry(key).or_default().push(n);
    }
    seen
}

fn run(guarantee: &str, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(seed);
    let (input_topic, output, app) = (unique_name("crash-lines"), unique_name("crash-counts"), unique_name("crash"));
    create_topic_blocking(&input_topic, 4)?;
    create_topic_blocking(&output, 4)?;
    let (lines, expected) = input(&mut rng);
    let records: Vec<_> = lines.iter().enumerate().map(|(i, l)| (None, Some(l.as_bytes()), 1_000 + i as i64)).collect();
    produce(&input_topic, &records)?;
    let words: u64 = expected.values().sum();
    assert!(words + LINES as u64 >= 100_000, "{words} words");

    let state = tempfile::tempdir()?;
    let mut a = base_args(&app, state.path());
    a.extend(args(&[
        ("--input-topic", &input_topic),
        ("--output-topic", &output),
        ("--processing-guarantee", guarantee),
    ]));
    if guarantee == "at_least_once" {
        a.extend(args(&[("--commit-interval-ms", "500")]));
    }
    let log = state.path().join("log");
    let bin = env!("CARGO_BIN_EXE_word-count");
    let complete = |r: &[TestRecord]| {
        let s = counts_seen(r);
        expected.iter().all(|(w, n)| s.get(w).and_then(|v| v.last()).is_some_and(|last| last >= n))
    };
    let mut seen = 0;
    for kill in 0..KILLS {
        let mut child = App::start(bin, &a, &log)?;
        // A random point: after some more committed output, or at the end
        // when the app has caught up (it may have before the last kill:
        // there is nothing more to wait for then).
        let target = seen + 300 + rng.below(3_000) as usize;
        let read = read_until(&output, TIMEOUT, |r| r.len() >= target || complete(r));
        let read = read.map_err(|e| format!("before kill {kill}: {e}\n{}", child.log_tail()))?;
        seen = read.len();
        child.kill();
    }
    let child = App::start(bin, &a, &log)?;
    let read = read_until(&output, TIMEOUT, complete).map_err(|e| format!("{e}\n{}", child.log_tail()))?;
    let seen = counts_seen(&read);
    for (word, n) in &expected {
        let values = &seen[word];
        if guarantee == "exactly_once_v2" {
            assert_eq!(values.last(), Some(n), "final count of {word}");
            assert!(values.windows(2).all(|w| w[0] < w[1]), "{word}: counts must strictly increase: {values:?}");
        } else {
            assert!(values.last().is_some_and(|last| last >= n), "no loss for {word}");
        }
    }
    Ok(())
}

#[test]
fn exactly_once_survives_sigkill() -> Result<(), Box<dyn std::error::Error>> {
    run("exactly_once_v2", 0x5eed_1234_abcd_0001)
}

#[test]
fn at_least_once_loses_nothing_under_sigkill() -> Result<(), Box<dyn std::error::Error>> {
    run("at_least_once", 0x5eed_1234_abcd_0002)
}
