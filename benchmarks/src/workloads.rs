//! The workloads: their input records, their Rivulet topologies, the raw
//! transformation, and how to tell that the output is complete and right.
//!
//! Every record carries its event time as its Kafka timestamp, so each
//! contender windows and joins on the same times without a custom extractor.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::DslError;

/// A workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Stateless: parse JSON, keep about half, map a field, write JSON.
    W1,
    /// Word count.
    W2,
    /// The fraud-detection shape: re-key by card, 60 s tumbling windows,
    /// count + sum, suppressed until the window closes.
    W3,
    /// Orders joined with a 100,000-key customers table.
    W4,
    /// Restore: word count over distinct words, so that its store and
    /// changelog hold one entry per input record.
    R1,
    /// Restore beside processing: records pass through a key-value store
    /// while another task of the same thread restores it (`restore_latency.rs`).
    R2,
}

/// The first event time of every workload unless `--base-ts` says otherwise
/// (ms). The harness passes a time a few hours back: the broker deletes
/// records older than its retention and refuses ones more than an hour ahead.
const DEFAULT_BASE_TS: i64 = 1_700_000_000_000;
static BASE_TS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
/// W3: event time between consecutive payments.
const W3_STEP_MS: i64 = 5;
/// W3: distinct cards.
pub(crate) const CARDS: u64 = 1_000;
/// W3: window size (no grace).
pub(crate) const W3_WINDOW: Duration = Duration::from_secs(60);
/// W4: distinct customers.
pub(crate) const CUSTOMERS: u64 = 100_000;
/// W4: the tiers customers are spread over.
const TIERS: [&str; 4] = ["bronze", "silver", "gold", "platinum"];
/// R1: the word the restored instance is given to prove that it runs.
pub(crate) const PROBE_WORD: &str = "zzprobe";
/// W2: distinct words drawn from unless `--vocabulary` says otherwise; the
/// plain W2 row keeps it, so its results stay comparable with earlier ones.
pub(crate) const DEFAULT_VOCABULARY: u64 = 500;
static VOCABULARY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets the first event time (once, before any record is made).
pub(crate) fn set_base_ts(ts: i64) {
    let _ = BASE_TS.set(ts);
}

fn base_ts() -> i64 {
    *BASE_TS.get_or_init(|| DEFAULT_BASE_TS)
}

/// Sets W2's vocabulary (once, before any record is made); at least 1.
pub(crate) fn set_vocabulary(words: u64) {
    let _ = VOCABULARY.set(words.max(1));
}

/// W2's vocabulary: the words are `w0` … `w{vocabulary - 1}`.
pub(crate) fn vocabulary() -> u64 {
    *VOCABULARY.get_or_init(|| DEFAULT_VOCABULARY)
}

/// W2's word number `n`.
pub(crate) fn w2_word(n: u64) -> String {
    format!("w{n}")
}

/// The word numbers of W2's `i`-th line, 1 to 8 of them, each below `vocabulary`.
fn w2_words(i: u64, vocabulary: u64) -> impl Iterator<Item = u64> {
    let x = mix(i);
    (0..(x % 8 + 1)).map(move |k| {
        if vocabulary == DEFAULT_VOCABULARY {
            // The original draw: earlier results were measured on these lines.
            (x >> (k * 6)) % vocabulary
        } else {
            // Shifting by 6 bits per word leaves the 8th only 22 bits, too
            // few for millions of words: each word gets a hash of its own.
            splitmix(x ^ (k << 56)) % vocabulary
        }
    })
}

/// SplitMix64's finaliser: every output bit depends on every input bit.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Workload {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "w1" => Some(Self::W1),
            "w2" => Some(Self::W2),
            "w3" => Some(Self::W3),
            "w4" => Some(Self::W4),
            "r1" => Some(Self::R1),
            "r2" => Some(Self::R2),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::W1 => "W1 stateless",
            Self::W2 => "W2 word count",
            Self::W3 => "W3 windowed aggregation",
            Self::W4 => "W4 stream-table join",
            Self::R1 => "R1 restore",
            Self::R2 => crate::restore_latency::WORKLOAD,
        }
    }
}

/// W1's input event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Event {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) amount: u64,
    pub(crate) ts: i64,
}

/// W1's output.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Out {
    pub(crate) id: u64,
    pub(crate) user: String,
    pub(crate) cents: u64,
}

/// W3's input: a card payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Payment {
    pub(crate) card: String,
    pub(crate) amount: u64,
}

/// W3's aggregate.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Stats {
    pub(crate) count: u64,
    pub(crate) sum: u64,
}

/// W4's input: an order of a customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Order {
    pub(crate) id: u64,
    pub(crate) customer: String,
    pub(crate) amount: u64,
}

/// One input record: key, value and Kafka timestamp.
pub(crate) type Input = (Vec<u8>, Vec<u8>, i64);

fn mix(i: u64) -> u64 {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491;
    x ^= x >> 29;
    x
}

/// The `i`-th input record of the workload's main input topic.
pub(crate) fn record(workload: Workload, i: u64) -> Input {
    let x = mix(i);
    let ts = base_ts() + i as i64;
    match workload {
        Workload::W1 => {
            let e = Event { id: i, user: format!("user-{}", x % 1000), amount: x % 1000, ts };
            (e.user.clone().into_bytes(), serde_json::to_vec(&e).unwrap_or_default(), ts)
        }
        Workload::W2 => {
            let words: Vec<String> = w2_words(i, vocabulary()).map(w2_word).collect();
            (i.to_string().into_bytes(), words.join(" ").into_bytes(), ts)
        }
        Workload::W3 => {
            // Keyed by card already: the re-key keeps each card on its
            // partition, so every partition stays in event-time order and no
            // contender sees a late record.
            let p = Payment { card: format!("card-{}", x % CARDS), amount: x % 1000 };
            (p.card.clone().into_bytes(), serde_json::to_vec(&p).unwrap_or_default(), base_ts() + i as i64 * W3_STEP_MS)
        }
        Workload::W4 => {
            let o = Order { id: i, customer: format!("cust-{}", x % CUSTOMERS), amount: x % 1000 };
            (o.customer.clone().into_bytes(), serde_json::to_vec(&o).unwrap_or_default(), ts)
        }
        Workload::R1 => (i.to_string().into_bytes(), format!("k{i}").into_bytes(), ts),
        Workload::R2 => crate::restore_latency::input(i),
    }
}

/// Records written after the main input: W3's one payment of 0 per card an
/// hour after the last one, which advances every card's (and partition's)
/// stream time past every window so that all of them close.
pub(crate) fn trailer(workload: Workload, records: u64) -> Vec<Input> {
    match workload {
        Workload::W3 => {
            let ts = base_ts() + records as i64 * W3_STEP_MS + 3_600_000;
            (0..CARDS)
                .map(|c| {
                    let p = Payment { card: format!("card-{c}"), amount: 0 };
                    (p.card.clone().into_bytes(), serde_json::to_vec(&p).unwrap_or_default(), ts)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// W4's table: the `j`-th customer (key, tier), a day before the first order.
pub(crate) fn customer(j: u64) -> Input {
    (format!("cust-{j}").into_bytes(), TIERS[(mix(j) % 4) as usize].as_bytes().to_vec(), base_ts() - 86_400_000)
}

/// The topic W4's table is read from, next to its orders topic.
pub(crate) fn customers_topic(input: &str) -> String {
    format!("{input}-customers")
}

/// W1's transformation, shared by every Rust contender.
pub(crate) fn w1_transform(value: &[u8]) -> Option<Vec<u8>> {
    let e: Event = serde_json::from_slice(value).ok()?;
    if e.amount % 2 == 1 {
        return None;
    }
    serde_json::to_vec(&Out { id: e.id, user: e.user, cents: e.amount * 100 }).ok()
}

/// W3's output key: card and window start.
pub(crate) fn window_key(card: &str, start: i64) -> String {
    format!("{card}@{start}")
}

/// W3's output value.
pub(crate) fn window_value(s: &Stats) -> String {
    format!("{},{}", s.count, s.sum)
}

/// W4's output value: the order's fields and the customer's tier.
pub(crate) fn joined(o: &Order, tier: &str) -> String {
    format!("{},{},{},{tier}", o.id, o.customer, o.amount)
}

/// The start of the W3 window holding `ts`.
pub(crate) fn window_start(ts: i64) -> i64 {
    let size = W3_WINDOW.as_millis() as i64;
    ts - ts.rem_euclid(size)
}

/// What a correct run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expected {
    /// W1: exactly this many records.
    Count(u64),
    /// The final value of every key; with `once`, each key written exactly
    /// once (W3: one result per window).
    Latest { map: BTreeMap<Vec<u8>, Vec<u8>>, once: bool },
    /// W4: exactly these values, each once.
    Values(HashSet<Vec<u8>>),
}

/// W2's word counts, counted by word number: millions of distinct words
/// count in a flat array instead of a map of strings.
fn w2_word_counts(records: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let vocabulary = vocabulary();
    let mut counts = vec![0u64; vocabulary as usize];
    for i in 0..records {
        for n in w2_words(i, vocabulary) {
            if let Some(c) = counts.get_mut(n as usize) {
                *c += 1;
            }
        }
    }
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(n, c)| (w2_word(n as u64).into_bytes(), c.to_string().into_bytes()))
        .collect()
}

/// Word counts of W2-shaped input (R1: one distinct word per record).
fn word_counts(workload: Workload, records: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for i in 0..records {
        for w in String::from_utf8_lossy(&record(workload, i).1).split(' ') {
            *counts.entry(w.as_bytes().to_vec()).or_default() += 1;
        }
    }
    counts.into_iter().map(|(k, v)| (k, v.to_string().into_bytes())).collect()
}

pub(crate) fn expected(workload: Workload, records: u64) -> Expected {
    match workload {
        // A pass-through: one result per record.
        Workload::R2 => Expected::Count(records),
        Workload::W1 => {
            Expected::Count((0..records).filter(|&i| w1_transform(&record(workload, i).1).is_some()).count() as u64)
        }
        Workload::W2 => Expected::Latest { map: w2_word_counts(records), once: false },
        Workload::R1 => Expected::Latest { map: word_counts(workload, records), once: false },
        Workload::W3 => {
            let mut windows: BTreeMap<(String, i64), Stats> = BTreeMap::new();
            for i in 0..records {
                let (_, value, ts) = record(workload, i);
                if let Ok(p) = serde_json::from_slice::<Payment>(&value) {
                    let s = windows.entry((p.card, window_start(ts))).or_default();
                    s.count += 1;
                    s.sum += p.amount;
                }
            }
            let map = windows
                .into_iter()
                .map(|((card, start), s)| (window_key(&card, start).into_bytes(), window_value(&s).into_bytes()))
                .collect();
            Expected::Latest { map, once: true }
        }
        Workload::W4 => Expected::Values(
            (0..records)
                .filter_map(|i| serde_json::from_slice::<Order>(&record(workload, i).1).ok())
                .map(|o| {
                    let j: u64 = o.customer.trim_start_matches("cust-").parse().unwrap_or(0);
                    joined(&o, &String::from_utf8_lossy(&customer(j).1)).into_bytes()
                })
                .collect(),
        ),
    }
}

/// What R1's restored instance must write once it runs: the probe word, counted once.
pub(crate) fn expected_probe() -> Expected {
    Expected::Latest { map: BTreeMap::from([(PROBE_WORD.as_bytes().to_vec(), b"1".to_vec())]), once: true }
}

/// Rivulet's topology for a workload.
pub(crate) fn topology(workload: Workload, input: &str, output: &str) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    match workload {
        Workload::W1 => {
            builder
                .stream(&[input], Consumed::with(Nullable(BytesSerde), JsonSerde::<Event>::new()))
                .filter(|_, e| e.amount % 2 == 0)
                .map_values(|e: Event| Out { id: e.id, user: e.user, cents: e.amount * 100 })
                .to_with(output, Produced::with(Nullable(BytesSerde), JsonSerde::<Out>::new()));
        }
        Workload::W2 | Workload::R1 => return rivulet_examples::word_count::topology(input, output),
        Workload::R2 => return Ok(crate::restore_latency::topology(input, output)?),
        Workload::W3 => {
            builder
                .stream(&[input], Consumed::with(Nullable(BytesSerde), JsonSerde::<Payment>::new()))
                .select_key(|_, p: &Payment| p.card.clone())
                .group_by_key_with(Grouped::with(StringSerde, JsonSerde::<Payment>::new()).named("payments-by-card"))
                .windowed_by(TimeWindows::of_size_with_no_grace(W3_WINDOW))
                .aggregate(
                    Stats::default,
                    |_, p: Payment, s: Stats| Stats { count: s.count + 1, sum: s.sum + p.amount },
                    Materialized::as_store("payment-stats").with_value_serde(JsonSerde::<Stats>::new()),
                )
                .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
                .to_stream()
                .map(|w: Windowed<String>, s: Option<Stats>| {
                    (window_key(&w.key, w.window.start), window_value(&s.unwrap_or_default()))
                })
                .to_with(output, Produced::with(StringSerde, StringSerde));
        }
        Workload::W4 => {
            let customers = builder.table(
                &customers_topic(input),
                Consumed::with(StringSerde, StringSerde),
                Materialized::as_store("customers-store"),
            );
            builder
                .stream(&[input], Consumed::with(StringSerde, JsonSerde::<Order>::new()))
                .join(&customers, |o: &Order, tier: &String| joined(o, tier))
                .to_with(output, Produced::with(StringSerde, StringSerde));
        }
    }
    builder.build()
}
