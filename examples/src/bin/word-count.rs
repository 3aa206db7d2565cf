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
//!
//! With `--format avro --schema-registry URL`: input values are
//! Confluent-framed Avro `"string"`s, output values Avro `"long"`s
//! (registered as `<output topic>-value`); keys stay UTF-8.

use rivulet_examples::{cli, word_count};

fn main() {
    cli::run(
        &word_count::spec(),
        |args| {
            word_count::topology_in(
                args.topic("--input-topic"),
                args.topic("--output-topic"),
                args.text("--panic-on-word"),
                &args.format,
            )
        },
        |args| Ok(Box::new(word_count::DemoLines::new(args.topic("--input-topic"), &args.format)?)),
        cli::print_record,
    );
}
