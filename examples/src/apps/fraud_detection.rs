//! `fraud-detection`: cards with too many or too large payments in a minute.
//!
//! Contract. Input `payments`: JSON `{"card_id": str, "amount": number,
//! "merchant": str, "ts": epoch-ms}`, keyed or not (re-keyed by `card_id`);
//! the record time is `ts` (the Kafka timestamp when `ts` is absent). Per
//! card, 60-second tumbling windows with 5 s grace. A window is suspicious
//! when it has more than `max_count` payments or a total over `max_amount`.
//! Output `fraud-alerts`: key = card_id, JSON `{"card_id", "window_start",
//! "window_end", "count", "total"}`, exactly one record per suspicious window,
//! emitted only once the window has closed (stream time past end + grace).
//!
//! With `--format avro` (see [`crate::format`]) the same, with Confluent-framed
//! Avro values: input `payments` holds records of [`avro::PAYMENT_SCHEMA`]
//! (`Payment {card_id: string, amount: double, merchant: string, ts: long}`),
//! written with that schema or any compatible writer schema (a newer one with
//! an added field that has a default reads fine); output `fraud-alerts` holds
//! [`avro::FRAUD_ALERT_SCHEMA`] (`FraudAlert {card_id: string, window_start:
//! long, window_end: long, count: long, total: double}`), registered by the
//! application as `<output topic>-value`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::{DslError, SerdeError, SerdeRef};

use super::money::{format_micros, micros_to_f64, to_micros, Micros};
use crate::format::{Format, ShownAs};

/// Default input topic.
pub const INPUT: &str = "payments";
/// Default output topic.
pub const OUTPUT: &str = "fraud-alerts";
/// Window size.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Grace period.
pub const GRACE: Duration = Duration::from_secs(5);

/// A payment as it arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The card.
    pub card_id: String,
    /// The amount.
    pub amount: f64,
    /// Where.
    #[serde(default)]
    pub merchant: String,
    /// Event time, ms since the epoch.
    #[serde(default)]
    pub ts: Option<i64>,
}

/// Count and exact total of one card's payments in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Payments.
    pub count: u64,
    /// Total in millionths.
    pub total_micros: Micros,
}

/// What `fraud-alerts` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The card.
    pub card_id: String,
    /// Window start, ms (inclusive).
    pub window_start: i64,
    /// Window end, ms (exclusive).
    pub window_end: i64,
    /// Payments in the window.
    pub count: u64,
    /// Their total.
    pub total: f64,
}

/// The thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// More payments than this in a window is suspicious.
    pub max_count: u64,
    /// A total over this in a window is suspicious.
    pub max_amount: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_count: 5, max_amount: 5000.0 }
    }
}

impl Limits {
    /// Whether a window's stats are suspicious.
    pub fn suspicious(&self, stats: &WindowStats) -> bool {
        stats.count > self.max_count || stats.total_micros > to_micros(self.max_amount)
    }
}

/// The Avro records of the topics: the schemas and their Rust shapes.
pub mod avro {
    use serde::{Deserialize, Serialize};

    use crate::format::AvroRecord;

    /// The input record. `merchant` has a default (as in JSON, where it may
    /// be absent), so that records of a newer writer schema without it read too.
    pub const PAYMENT_SCHEMA: &str = r#"{
  "type": "record",
  "name": "Payment",
  "fields": [
    {"name": "card_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "merchant", "type": "string", "default": ""},
    {"name": "ts", "type": "long"}
  ]
}"#;

    /// The output record.
    pub const FRAUD_ALERT_SCHEMA: &str = r#"{
  "type": "record",
  "name": "FraudAlert",
  "fields": [
    {"name": "card_id", "type": "string"},
    {"name": "window_start", "type": "long"},
    {"name": "window_end", "type": "long"},
    {"name": "count", "type": "long"},
    {"name": "total", "type": "double"}
  ]
}"#;

    /// A `Payment` record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Payment {
        /// The card.
        pub card_id: String,
        /// The amount.
        pub amount: f64,
        /// Where.
        pub merchant: String,
        /// Event time, ms since the epoch.
        pub ts: i64,
    }

    /// A `FraudAlert` record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct FraudAlert {
        /// The card.
        pub card_id: String,
        /// Window start, ms (inclusive).
        pub window_start: i64,
        /// Window end, ms (exclusive).
        pub window_end: i64,
        /// Payments in the window.
        pub count: i64,
        /// Their total.
        pub total: f64,
    }

    impl AvroRecord for super::Payment {
        type Wire = Payment;
        const SCHEMA: &'static str = PAYMENT_SCHEMA;

        fn to_wire(&self) -> Payment {
            Payment {
                card_id: self.card_id.clone(),
                amount: self.amount,
                merchant: self.merchant.clone(),
                ts: self.ts.unwrap_or_default(),
            }
        }

        fn from_wire(p: Payment) -> Self {
            Self { card_id: p.card_id, amount: p.amount, merchant: p.merchant, ts: Some(p.ts) }
        }
    }

    impl AvroRecord for super::Alert {
        type Wire = FraudAlert;
        const SCHEMA: &'static str = FRAUD_ALERT_SCHEMA;

        fn to_wire(&self) -> FraudAlert {
            FraudAlert {
                card_id: self.card_id.clone(),
                window_start: self.window_start,
                window_end: self.window_end,
                count: i64::try_from(self.count).unwrap_or(i64::MAX),
                total: self.total,
            }
        }

        fn from_wire(a: FraudAlert) -> Self {
            Self {
                card_id: a.card_id,
                window_start: a.window_start,
                window_end: a.window_end,
                count: u64::try_from(a.count).unwrap_or_default(),
                total: a.total,
            }
        }
    }
}

/// The fraud-detection topology (JSON).
pub fn topology(input: &str, output: &str, limits: Limits) -> Result<Topology, DslError> {
    build(input, output, limits, Arc::new(JsonSerde::<Payment>::new()), Arc::new(JsonSerde::<Alert>::new()))
}

/// The fraud-detection topology with its external topics in `format`.
pub fn topology_in(
    input: &str,
    output: &str,
    limits: Limits,
    format: &Format,
) -> Result<Topology, Box<dyn std::error::Error>> {
    Ok(build(input, output, limits, format.serde()?, format.serde()?)?)
}

fn build(
    input: &str,
    output: &str,
    limits: Limits,
    payments: SerdeRef<Payment>,
    alerts: SerdeRef<Alert>,
) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    builder
        .stream(
            &[input],
            Consumed::with(Nullable(BytesSerde), Nullable(payments)).with_timestamp_extractor(
                |r: &Record<Option<Vec<u8>>, Option<Payment>>| {
                    r.value().as_ref().and_then(|p| p.ts).unwrap_or_else(|| r.timestamp())
                },
            ),
        )
        .flat_map(|_, p: Option<Payment>| p.map(|p| (p.card_id.clone(), p)))
        .group_by_key_with(Grouped::with(StringSerde, JsonSerde::<Payment>::new()).named("payments-by-card"))
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .aggregate(
            WindowStats::default,
            |_, p: Payment, s: WindowStats| WindowStats {
                count: s.count + 1,
                total_micros: s.total_micros + to_micros(p.amount),
            },
            Materialized::as_store("payment-stats").with_value_serde(ShownAs::new(
                JsonSerde::<WindowStats>::new(),
                |s: &WindowStats| serde_json::json!({ "count": s.count, "total": format_micros(s.total_micros) }),
            )),
        )
        .suppress(Suppressed::until_window_closes(BufferConfig::unbounded()))
        .to_stream()
        .filter(move |_, stats| stats.as_ref().is_some_and(|s| limits.suspicious(s)))
        .map(|w: Windowed<String>, stats: Option<WindowStats>| {
            let stats = stats.unwrap_or_default();
            let alert = Alert {
                card_id: w.key.clone(),
                window_start: w.window.start,
                window_end: w.window.end,
                count: stats.count,
                total: micros_to_f64(stats.total_micros),
            };
            (w.key, alert)
        })
        .to_with(output, Produced::with(StringSerde, alerts));
    builder.build()
}

/// The command line of the `fraud-detection` binary.
pub fn spec() -> crate::cli::AppSpec {
    use crate::cli::{AppSpec, NumberArg, TopicArg};
    AppSpec {
        name: "fraud-detection",
        about: "Reads JSON payments {card_id, amount, merchant, ts} from `payments`, counts and sums them per card \
                in 60 s tumbling windows (5 s grace), and writes one JSON alert {card_id, window_start, window_end, \
                count, total} to `fraud-alerts` per suspicious window once it has closed.",
        avro: "`payments` holds Avro records Payment {card_id: string, amount: double, merchant: string, ts: long} \
               (any compatible writer schema, e.g. one with an added field that has a default, is read into this \
               one); `fraud-alerts` gets FraudAlert {card_id: string, window_start: long, window_end: long, \
               count: long, total: double}, registered as `<output topic>-value`. Keys stay UTF-8 strings.",
        inputs: vec![TopicArg { flag: "--input-topic", default: INPUT, compacted: false }],
        outputs: vec![TopicArg { flag: "--output-topic", default: OUTPUT, compacted: false }],
        numbers: vec![
            NumberArg { flag: "--max-count", help: "more payments than this per window is suspicious", default: 5.0 },
            NumberArg { flag: "--max-amount", help: "a total above this per window is suspicious", default: 5000.0 },
        ],
        texts: vec![],
    }
}

/// Demo payments: 40 cards paying small amounts, with now and then a card on
/// a spree or one large payment. Event time runs 20× faster than the wall
/// clock so that windows close every few seconds.
#[derive(Debug)]
pub struct DemoPayments {
    rng: crate::cli::DemoRandom,
    clock: Option<i64>,
    spree: Option<(u64, u32)>,
    payments: crate::cli::DemoEncoder<Payment>,
}

impl DemoPayments {
    /// Payments for `topic`, in `format`.
    pub fn new(topic: &str, format: &Format) -> Result<Self, streams_dsl::serde::SchemaParseError> {
        Ok(Self {
            rng: crate::cli::DemoRandom::new(42),
            clock: None,
            spree: None,
            payments: crate::cli::DemoEncoder::new(topic, format.serde()?),
        })
    }
}

impl crate::cli::DemoGenerator for DemoPayments {
    fn next(&mut self, now_ms: i64) -> Result<crate::cli::DemoRecord, SerdeError> {
        let ts = self.clock.map_or(now_ms, |c| c + 1000);
        self.clock = Some(ts);
        let (card, amount) = match self.spree {
            Some((card, left)) if left > 0 => {
                self.spree = Some((card, left - 1));
                (card, 20.0 + self.rng.below(80) as f64)
            }
            _ => {
                self.spree = None;
                match self.rng.below(40) {
                    0 => {
                        self.spree = Some((self.rng.below(40), 7));
                        (self.rng.below(40), 10.0)
                    }
                    1 => (self.rng.below(40), 5200.0 + self.rng.below(3000) as f64),
                    _ => (self.rng.below(40), 1.0 + self.rng.below(15_000) as f64 / 100.0),
                }
            }
        };
        let merchants = ["grocer", "bookshop", "airline", "cafe", "electronics"];
        let payment = Payment {
            card_id: format!("card-{card:03}"),
            amount,
            merchant: merchants[self.rng.below(merchants.len() as u64) as usize].to_owned(),
            ts: Some(ts),
        };
        let value = self.payments.encode(&payment)?;
        Ok(("--input-topic", Some(payment.card_id.into_bytes()), value, ts))
    }
}
