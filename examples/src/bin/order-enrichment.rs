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

use rivulet_examples::{cli, order_enrichment};

fn main() {
    cli::run(
        &order_enrichment::spec(),
        |args| {
            Ok(order_enrichment::topology(
                args.topic("--customers-topic"),
                args.topic("--orders-topic"),
                args.topic("--output-topic"),
                args.topic("--revenue-topic"),
            )?)
        },
        |_| Box::new(order_enrichment::DemoOrders::default()),
        cli::print_record,
    );
}
