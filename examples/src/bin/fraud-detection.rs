//! `fraud-detection`: per card, 60 s tumbling windows (5 s grace); one alert
//! per suspicious window, emitted once the window closed.
//!
//! ```text
//! cargo run -p rivulet-examples --bin fraud-detection                  # embedded cluster, demo payments
//! cargo run -p rivulet-examples --bin fraud-detection -- --bootstrap-servers localhost:9092 --max-count 5
//! ```
//!
//! Topic contract: input `payments`, JSON `{"card_id", "amount", "merchant",
//! "ts"}` (record time = `ts`), keyed or not. Output `fraud-alerts`: key =
//! card_id, JSON `{"card_id", "window_start", "window_end", "count", "total"}`
//! for windows with more than `--max-count` payments or a total over `--max-amount`.
//!
//! With `--format avro --schema-registry URL`: Confluent-framed Avro values,
//! input record `Payment {card_id: string, amount: double, merchant: string,
//! ts: long}` (any compatible writer schema, such as a newer one with an added
//! field that has a default, is read into it), output record `FraudAlert
//! {card_id: string, window_start: long, window_end: long, count: long,
//! total: double}`, registered as `<output topic>-value`. Same windows and
//! thresholds. `--schema-registry-config KEY=VALUE` passes registry settings
//! (`basic.auth.user.info`, `auto.register.schemas`, …).
//!
//! ```text
//! cargo run -p rivulet-examples --bin fraud-detection -- --bootstrap-servers localhost:9092 \
//!     --format avro --schema-registry http://localhost:8081
//! ```

use rivulet_examples::cli;
use rivulet_examples::fraud_detection::{self, Limits};

fn main() {
    cli::run(
        &fraud_detection::spec(),
        |args| {
            let limits =
                Limits { max_count: args.number("--max-count") as u64, max_amount: args.number("--max-amount") };
            fraud_detection::topology_in(
                args.topic("--input-topic"),
                args.topic("--output-topic"),
                limits,
                &args.format,
            )
        },
        |args| Ok(Box::new(fraud_detection::DemoPayments::new(args.topic("--input-topic"), &args.format)?)),
        cli::print_record,
    );
}
