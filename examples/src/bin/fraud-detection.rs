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

use rivulet_examples::cli;
use rivulet_examples::fraud_detection::{self, Limits};

fn main() {
    cli::run(
        &fraud_detection::spec(),
        |args| {
            let limits =
                Limits { max_count: args.number("--max-count") as u64, max_amount: args.number("--max-amount") };
            Ok(fraud_detection::topology(args.topic("--input-topic"), args.topic("--output-topic"), limits)?)
        },
        |_| Box::new(fraud_detection::DemoPayments::default()),
        cli::print_record,
    );
}
