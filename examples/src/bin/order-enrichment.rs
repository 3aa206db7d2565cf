//! `order-enrichment`: orders enriched from a customers KTable, and revenue per tier.
//!
//! ```text
//! cargo run -p rivulet-examples --bin order-enrichment                 # embedded cluster, demo data
//! cargo run -p rivulet-examples --bin order-enrichment -- --bootstrap-servers localhost:9092
//! ```
//!
//! Topic contract: `customers` (compacted; key customer_id, JSON
//! `{"customer_id", "name", "tier"}`, null value = deleted) and `orders` (JSON
//! `{"order_id", "customer_id", "amount", "ts"}`) in; `enriched-orders` (key
//! order_id, the order plus `"customer_name"` and `"tier"`, null when unknown)
//! and `revenue-by-tier` (key tier, total as a decimal string) out.
//! Customers are repartitioned by id, as orders are by customer id: any
//! producer's partitioner and any partition counts of the two input topics
//! work.
//!
//! With `--format avro --schema-registry URL`: Confluent-framed Avro values,
//! `customers` record `Customer {customer_id: string, name: string, tier:
//! string}` (null value = deleted), `orders` record `Order {order_id: string,
//! customer_id: string, amount: double, ts: long}` (each read from any
//! compatible writer schema), `enriched-orders` record `EnrichedOrder
//! {order_id, customer_id, amount, ts, customer_name: ["null","string"],
//! tier: ["null","string"]}` registered as `<topic>-value`;
//! `revenue-by-tier` stays a decimal string.

use rivulet_examples::{cli, order_enrichment};

fn main() {
    cli::run(
        &order_enrichment::spec(),
        |args| {
            order_enrichment::topology_in(
                args.topic("--customers-topic"),
                args.topic("--orders-topic"),
                args.topic("--output-topic"),
                args.topic("--revenue-topic"),
                &args.format,
            )
        },
        |args| {
            Ok(Box::new(order_enrichment::DemoOrders::new(
                args.topic("--customers-topic"),
                args.topic("--orders-topic"),
                &args.format,
            )?))
        },
        cli::print_record,
    );
}
