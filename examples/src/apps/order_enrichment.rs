//! `order-enrichment`: orders joined with the latest customer data (a KTable
//! lookup), and revenue per customer tier.
//!
//! Contract. `customers` (compacted): key = customer_id, JSON
//! `{"customer_id", "name", "tier"}`; a null value deletes the customer.
//! `orders`: JSON `{"order_id", "customer_id", "amount", "ts"}` (record time
//! `ts`). Orders are re-keyed by customer_id and left-joined with the
//! customers table as it is at the order's time. Output `enriched-orders`: key
//! = order_id, JSON with the order's fields plus `"customer_name"` and `"tier"`
//! (null when the customer is unknown). Output `revenue-by-tier`: key = tier,
//! value = the total amount of that tier's orders as a decimal string, kept
//! by a table aggregation with a subtractor (an order re-sent with the same
//! order_id replaces the earlier one). Orders of unknown customers have no
//! tier and are not in any total.

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::DslError;

use super::money::{format_micros, to_micros, Micros};

/// Default customers topic.
pub const CUSTOMERS: &str = "customers";
/// Default orders topic.
pub const ORDERS: &str = "orders";
/// Default enriched-orders topic.
pub const ENRICHED: &str = "enriched-orders";
/// Default revenue topic.
pub const REVENUE: &str = "revenue-by-tier";

/// A customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Id.
    pub customer_id: String,
    /// Name.
    pub name: String,
    /// Tier (gold, silver…).
    pub tier: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Amount.
    pub amount: f64,
    /// Event time, ms.
    #[serde(default)]
    pub ts: Option<i64>,
}

/// An order with its customer's name and tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichedOrder {
    /// Id.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Amount.
    pub amount: f64,
    /// Event time, ms.
    pub ts: Option<i64>,
    /// The customer's name, if known at the order's time.
    pub customer_name: Option<String>,
    /// The customer's tier, if known at the order's time.
    pub tier: Option<String>,
}

/// The order-enrichment topology.
pub fn topology(customers: &str, orders: &str, enriched: &str, revenue: &str) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    let customer_table = builder.table(
        customers,
        Consumed::with(StringSerde, JsonSerde::<Customer>::new()),
        Materialized::as_store("customers-store"),
    );
    let enriched_stream = builder
        .stream(
            &[orders],
            Consumed::with(Nullable(BytesSerde), Nullable(JsonSerde::<Order>::new())).with_timestamp_extractor(
                |r: &Record<Option<Vec<u8>>, Option<Order>>| {
                    r.value().as_ref().and_then(|o| o.ts).unwrap_or_else(|| r.timestamp())
                },
            ),
        )
        .flat_map(|_, o: Option<Order>| o.map(|o| (o.customer_id.clone(), o)))
        .repartition(Repartitioned::with(StringSerde, JsonSerde::<Order>::new()).named("orders-by-customer"))
        .left_join(&customer_table, |o: &Order, c: Option<&Customer>| EnrichedOrder {
            order_id: o.order_id.clone(),
            customer_id: o.customer_id.clone(),
            amount: o.amount,
            ts: o.ts,
            customer_name: c.map(|c| c.name.clone()),
            tier: c.map(|c| c.tier.clone()),
        })
        .select_key(|_, e: &EnrichedOrder| e.order_id.clone());
    enriched_stream.to_with(enriched, Produced::with(StringSerde, JsonSerde::<EnrichedOrder>::new()));
    enriched_stream
        .to_table(
            Materialized::as_store("orders-by-id")
                .with_key_serde(StringSerde)
                .with_value_serde(JsonSerde::<EnrichedOrder>::new()),
        )
        .filter(|_, e| e.tier.is_some())
        .group_by(
            |_, e: &EnrichedOrder| (e.tier.clone().unwrap_or_default(), to_micros(e.amount)),
            Grouped::with(StringSerde, JsonSerde::<Micros>::new()).named("orders-by-tier"),
        )
        .aggregate(
            || 0 as Micros,
            |_, amount: &Micros, total: Micros| total + amount,
            |_, amount: &Micros, total: Micros| total - amount,
            Materialized::as_store("revenue-by-tier-store").with_value_serde(JsonSerde::<Micros>::new()),
        )
        .to_stream()
        .map_values(|total: Option<Micros>| total.map(format_micros))
        .to_with(revenue, Produced::with(StringSerde, Nullable(StringSerde)));
    builder.build()
}

/// The command line of the `order-enrichment` binary.
pub fn spec() -> crate::cli::AppSpec {
    use crate::cli::{AppSpec, TopicArg};
    AppSpec {
        name: "order-enrichment",
        about: "Joins JSON orders {order_id, customer_id, amount, ts} from `orders` with the customers table \
                (compacted topic `customers`: key customer_id, JSON {customer_id, name, tier}, null = deleted). \
                Writes `enriched-orders` (key order_id; the order plus customer_name and tier, null when unknown) \
                and `revenue-by-tier` (key tier; the running total as a decimal string).",
        inputs: vec![
            TopicArg { flag: "--customers-topic", default: CUSTOMERS, compacted: true },
            TopicArg { flag: "--orders-topic", default: ORDERS, compacted: false },
        ],
        outputs: vec![
            TopicArg { flag: "--output-topic", default: ENRICHED, compacted: false },
            TopicArg { flag: "--revenue-topic", default: REVENUE, compacted: true },
        ],
        numbers: vec![],
        texts: vec![],
    }
}

/// Demo data: 20 customers first, then orders from 24 customer ids (four
/// never exist), with now and then a customer changing tier or leaving.
#[derive(Debug)]
pub struct DemoOrders {
    rng: crate::cli::DemoRandom,
    sent: u64,
}

impl Default for DemoOrders {
    fn default() -> Self {
        Self { rng: crate::cli::DemoRandom::new(7), sent: 0 }
    }
}

const NAMES: [&str; 10] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Tony"];
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];

impl DemoOrders {
    fn customer(&mut self, id: u64) -> Customer {
        Customer {
            customer_id: format!("c-{id:02}"),
            name: format!("{} {id}", NAMES[(id % NAMES.len() as u64) as usize]),
            tier: TIERS[self.rng.below(TIERS.len() as u64) as usize].to_owned(),
        }
    }
}

impl crate::cli::DemoGenerator for DemoOrders {
    fn next(&mut self, now_ms: i64) -> (&'static str, Option<Vec<u8>>, Option<Vec<u8>>, i64) {
        self.sent += 1;
        if self.sent <= 20 {
            let c = self.customer(self.sent);
            let key = c.customer_id.clone().into_bytes();
            return ("--customers-topic", Some(key), serde_json::to_vec(&c).ok(), now_ms);
        }
        match self.rng.below(30) {
            0 => {
                let id = 1 + self.rng.below(20);
                let c = self.customer(id);
                let key = c.customer_id.clone().into_bytes();
                ("--customers-topic", Some(key), serde_json::to_vec(&c).ok(), now_ms)
            }
            1 => {
                let id = format!("c-{:02}", 1 + self.rng.below(20));
                ("--customers-topic", Some(id.into_bytes()), None, now_ms)
            }
            _ => {
                let order = Order {
                    order_id: format!("o-{}", self.sent),
                    customer_id: format!("c-{:02}", 1 + self.rng.below(24)),
                    amount: (100 + self.rng.below(20_000)) as f64 / 100.0,
                    ts: Some(now_ms),
                };
                ("--orders-topic", Some(order.order_id.clone().into_bytes()), serde_json::to_vec(&order).ok(), now_ms)
            }
        }
    }
}
