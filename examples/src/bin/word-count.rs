//! `word-count`: running word counts from `text-lines` to `word-counts`.
//!
//! ```text
//! cargo run -p rivulet-examples --bin word-count                       # embedded cluster, demo text
//! cargo run -p rivulet-examples --bin word-count -- --bootstrap-servers localhost:9092
//! ```
//!
//! Topic contract: input values are UTF-8 text (keys ignored); words are split
//! on anything that is not a letter or digit and lowercased. Output key = word,
//! value = the running count as a UTF-8 decimal string.

use rivulet_examples::{cli, word_count};

fn main() {
    cli::run(
        &word_count::spec(),
        |args| {
            Ok(word_count::topology_with_fault(
                args.topic("--input-topic"),
                args.topic("--output-topic"),
                args.text("--panic-on-word"),
            )?)
        },
        |_| Box::new(word_count::DemoLines::default()),
        cli::print_record,
    );
}
