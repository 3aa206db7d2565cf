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
//!
//! Customers go through a repartition topic (`customers-by-id`) as the orders
//! do (`orders-by-customer`), so the join holds whatever partitioner wrote
//! `customers` (librdkafka's default CRC32 as well as the Java client's
//! murmur2), and whatever partition counts `customers` and `orders` have.
//! Both are re-keyed by one sub-topology, whose tasks take customers and
//! orders in timestamp order, so customers that exist when an order arrives
//! are in the table when it is joined.
//!
//! With `--format avro` (see [`crate::format`]) the same, with Confluent-framed
//! Avro values: `customers` holds [`avro::CUSTOMER_SCHEMA`] (`Customer
//! {customer_id: string, name: string, tier: string}`, null value = deleted),
//! `orders` holds [`avro::ORDER_SCHEMA`] (`Order {order_id: string,
//! customer_id: string, amount: double, ts: long}`), each written with that
//! schema or any compatible writer schema; `enriched-orders` gets
//! [`avro::ENRICHED_ORDER_SCHEMA`] (`EnrichedOrder {order_id, customer_id,
//! amount, ts, customer_name: ["null","string"], tier: ["null","string"]}`,
//! both default null), registered as `<topic>-value`. `revenue-by-tier`
//! stays a decimal string.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use streams_dsl::prelude::*;
use streams_dsl::{DslError, SerdeError, SerdeRef};

use super::money::{format_micros, to_micros, Micros};
use crate::format::{Format, ShownAs};

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

/// The Avro records of the topics: the schemas and their Rust shapes.
pub mod avro {
    use serde::{Deserialize, Serialize};

    use crate::format::AvroRecord;

    /// The `customers` record (the Rust shape is [`super::Customer`]).
    pub const CUSTOMER_SCHEMA: &str = r#"{
  "type": "record",
  "name": "Customer",
  "fields": [
    {"name": "customer_id", "type": "string"},
    {"name": "name", "type": "string"},
    {"name": "tier", "type": "string"}
  ]
}"#;

    /// The `orders` record.
    pub const ORDER_SCHEMA: &str = r#"{
  "type": "record",
  "name": "Order",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "ts", "type": "long"}
  ]
}"#;

    /// The `enriched-orders` record.
    pub const ENRICHED_ORDER_SCHEMA: &str = r#"{
  "type": "record",
  "name": "EnrichedOrder",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "customer_id", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "ts", "type": "long"},
    {"name": "customer_name", "type": ["null", "string"], "default": null},
    {"name": "tier", "type": ["null", "string"], "default": null}
  ]
}"#;

    /// An `Order` record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Order {
        /// Id.
        pub order_id: String,
        /// Who ordered.
        pub customer_id: String,
        /// Amount.
        pub amount: f64,
        /// Event time, ms.
        pub ts: i64,
    }

    /// An `EnrichedOrder` record.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct EnrichedOrder {
        /// Id.
        pub order_id: String,
        /// Who ordered.
        pub customer_id: String,
        /// Amount.
        pub amount: f64,
        /// Event time, ms.
        pub ts: i64,
        /// The customer's name, if known at the order's time.
        pub customer_name: Option<String>,
        /// The customer's tier, if known at the order's time.
        pub tier: Option<String>,
    }

    impl AvroRecord for super::Customer {
        type Wire = super::Customer;
        const SCHEMA: &'static str = CUSTOMER_SCHEMA;

        fn to_wire(&self) -> Self {
            self.clone()
        }

        fn from_wire(c: Self) -> Self {
            c
        }
    }

    impl AvroRecord for super::Order {
        type Wire = Order;
        const SCHEMA: &'static str = ORDER_SCHEMA;

        fn to_wire(&self) -> Order {
            Order {
                order_id: self.order_id.clone(),
                customer_id: self.customer_id.clone(),
                amount: self.amount,
                ts: self.ts.unwrap_or_default(),
            }
        }

        fn from_wire(o: Order) -> Self {
            Self { order_id: o.order_id, customer_id: o.customer_id, amount: o.amount, ts: Some(o.ts) }
        }
    }

    impl AvroRecord for super::EnrichedOrder {
        type Wire = EnrichedOrder;
        const SCHEMA: &'static str = ENRICHED_ORDER_SCHEMA;

        fn to_wire(&self) -> EnrichedOrder {
            EnrichedOrder {
                order_id: self.order_id.clone(),
                customer_id: self.customer_id.clone(),
                amount: self.amount,
                ts: self.ts.unwrap_or_default(),
                customer_name: self.customer_name.clone(),
                tier: self.tier.clone(),
            }
        }

        fn from_wire(e: EnrichedOrder) -> Self {
            Self {
                order_id: e.order_id,
                customer_id: e.customer_id,
                amount: e.amount,
                ts: Some(e.ts),
                customer_name: e.customer_name,
                tier: e.tier,
            }
        }
    }
}

/// The order-enrichment topology (JSON).
pub fn topology(customers: &str, orders: &str, enriched: &str, revenue: &str) -> Result<Topology, DslError> {
    let serdes = Serdes {
        customers: Arc::new(JsonSerde::<Customer>::new()),
        orders: Arc::new(JsonSerde::<Order>::new()),
        enriched: Arc::new(JsonSerde::<EnrichedOrder>::new()),
    };
    build(customers, orders, enriched, revenue, serdes)
}

/// The order-enrichment topology with its external topics in `format`.
pub fn topology_in(
    customers: &str,
    orders: &str,
    enriched: &str,
    revenue: &str,
    format: &Format,
) -> Result<Topology, Box<dyn std::error::Error>> {
    let serdes = Serdes { customers: format.serde()?, orders: format.serde()?, enriched: format.serde()? };
    Ok(build(customers, orders, enriched, revenue, serdes)?)
}

/// The value serdes of the external topics.
struct Serdes {
    customers: SerdeRef<Customer>,
    orders: SerdeRef<Order>,
    enriched: SerdeRef<EnrichedOrder>,
}

/// A customer change or an order, keyed by customer id.
#[derive(Debug, Clone)]
enum ByCustomer {
    Customer(Option<Customer>),
    Order(Order),
}

fn build(customers: &str, orders: &str, enriched: &str, revenue: &str, serdes: Serdes) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    // Customers and orders are both re-keyed by customer id, from one
    // sub-topology: its tasks read both inputs in timestamp order (existing
    // customers before later orders) and write both repartition topics, as
    // wide as the wider input, in the same transactions.
    let customer_changes = builder
        .stream(&[customers], Consumed::with(Nullable(StringSerde), Nullable(serdes.customers)))
        .flat_map(|id: Option<String>, c: Option<Customer>| id.map(|id| (id, ByCustomer::Customer(c))));
    let by_customer = builder
        .stream(
            &[orders],
            Consumed::with(Nullable(BytesSerde), Nullable(serdes.orders)).with_timestamp_extractor(
                |r: &Record<Option<Vec<u8>>, Option<Order>>| {
                    r.value().as_ref().and_then(|o| o.ts).unwrap_or_else(|| r.timestamp())
                },
            ),
        )
        .flat_map(|_, o: Option<Order>| o.map(|o| (o.customer_id.clone(), ByCustomer::Order(o))))
        .merge(&customer_changes);
    // Deleted customers stay in the table as `None`.
    let customer_table = by_customer
        .flat_map_values(|e: ByCustomer| match e {
            ByCustomer::Customer(c) => Some(c),
            ByCustomer::Order(_) => None,
        })
        .repartition(Repartitioned::with(StringSerde, Nullable(JsonSerde::<Customer>::new())).named("customers-by-id"))
        .to_table(
            Materialized::as_store("customers-store")
                .with_key_serde(StringSerde)
                .with_value_serde(JsonSerde::<Option<Customer>>::new()),
        );
    let enriched_stream = by_customer
        .flat_map_values(|e: ByCustomer| match e {
            ByCustomer::Order(o) => Some(o),
            ByCustomer::Customer(_) => None,
        })
        .repartition(Repartitioned::with(StringSerde, JsonSerde::<Order>::new()).named("orders-by-customer"))
        .left_join(&customer_table, |o: &Order, c: Option<&Option<Customer>>| {
            let c = c.and_then(Option::as_ref);
            EnrichedOrder {
                order_id: o.order_id.clone(),
                customer_id: o.customer_id.clone(),
                amount: o.amount,
                ts: o.ts,
                customer_name: c.map(|c| c.name.clone()),
                tier: c.map(|c| c.tier.clone()),
            }
        })
        .select_key(|_, e: &EnrichedOrder| e.order_id.clone());
    enriched_stream.to_with(enriched, Produced::with(StringSerde, serdes.enriched));
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
            Materialized::as_store("revenue-by-tier-store")
                .with_value_serde(ShownAs::new(JsonSerde::<Micros>::new(), |total: &Micros| {
                    serde_json::Value::String(format_micros(*total))
                })),
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
                and `revenue-by-tier` (key tier; the running total as a decimal string). Customers are repartitioned \
                by id, so any producer's partitioner and any partition counts of the two inputs work.",
        avro: "`customers` holds Avro records Customer {customer_id: string, name: string, tier: string} (null value \
               = deleted) and `orders` holds Order {order_id: string, customer_id: string, amount: double, ts: long}, \
               each written with that schema or any compatible one; `enriched-orders` gets EnrichedOrder {order_id, \
               customer_id, amount, ts, customer_name: [\"null\",\"string\"], tier: [\"null\",\"string\"]} \
               (both default null), registered as `<topic>-value`. `revenue-by-tier` stays a decimal string; keys \
               stay UTF-8 strings.",
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
    customers: crate::cli::DemoEncoder<Customer>,
    orders: crate::cli::DemoEncoder<Order>,
}

impl DemoOrders {
    /// Customers for `customers` and orders for `orders`, in `format`.
    pub fn new(customers: &str, orders: &str, format: &Format) -> Result<Self, streams_dsl::serde::SchemaParseError> {
        Ok(Self {
            rng: crate::cli::DemoRandom::new(7),
            sent: 0,
            customers: crate::cli::DemoEncoder::new(customers, format.serde()?),
            orders: crate::cli::DemoEncoder::new(orders, format.serde()?),
        })
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
    fn next(&mut self, now_ms: i64) -> Result<crate::cli::DemoRecord, SerdeError> {
        self.sent += 1;
        if self.sent <= 20 {
            let c = self.customer(self.sent);
            let key = c.customer_id.clone().into_bytes();
            return Ok(("--customers-topic", Some(key), self.customers.encode(&c)?, now_ms));
        }
        Ok(match self.rng.below(30) {
            0 => {
                let id = 1 + self.rng.below(20);
                let c = self.customer(id);
                let key = c.customer_id.clone().into_bytes();
                ("--customers-topic", Some(key), self.customers.encode(&c)?, now_ms)
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
                ("--orders-topic", Some(order.order_id.clone().into_bytes()), self.orders.encode(&order)?, now_ms)
            }
        })
    }
}
