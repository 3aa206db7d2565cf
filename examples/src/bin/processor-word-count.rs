//! Word count with the Processor API, run on the broker-free TopologyTestDriver.
//!
//! Shows the pieces every Rivulet application is made of: a source with serdes,
//! a stateless processor that splits lines into words and re-keys them (written
//! to a repartition topic, as Kafka Streams does before a keyed aggregation), a
//! stateful processor counting words in a key-value store, and a sink.
//!
//! ```text
//! cargo run -p rivulet-examples --bin processor-word-count                 # built-in text
//! echo "to be or not to be" | cargo run -p rivulet-examples --bin processor-word-count -- -
//! ```
//!
//! Input topic `text-lines`: UTF-8 lines, keys ignored. Output topic
//! `word-counts`: key = lowercased word, value = running count as a UTF-8
//! decimal string. Words are split on anything that is not a letter or digit.

use std::io::BufRead;

use streams_dsl::prelude::*;

const DEMO_TEXT: &str = "\
The quick brown fox jumps over the lazy dog.
A stream is a table in motion; a table is a stream at rest.
Kafka Streams, meet Rust: the quick path from topics to tables.";

/// Splits a line into lowercased words and re-keys each record by its word.
struct SplitWords;

impl Processor<Option<String>, String, String, String> for SplitWords {
    fn process(
        &mut self,
        line: Record<Option<String>, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let timestamp = line.timestamp();
        for word in line.value().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let word = word.to_lowercase();
            ctx.forward(Record::new(word.clone(), word, timestamp))?;
        }
        Ok(())
    }
}

/// Counts words in the `counts` store and forwards each new count.
#[derive(Default)]
struct CountWords {
    counts: Option<KeyValueStoreHandle<String, i64>>,
}

impl Processor<String, String, String, String> for CountWords {
    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessorError> {
        self.counts = Some(ctx.key_value_store("counts")?);
        Ok(())
    }

    fn process(
        &mut self,
        word: Record<String, String>,
        ctx: &mut ProcessorContext<'_, String, String>,
    ) -> Result<(), ProcessorError> {
        let counts = self.counts.as_ref().ok_or_else(|| ProcessorError::Internal("init was not called".into()))?;
        let count = counts.get(word.key())?.unwrap_or(0) + 1;
        counts.put(word.key(), &count)?;
        ctx.forward(word.with_value(count.to_string()))
    }
}

fn topology() -> Result<Topology, TopologyError> {
    let mut topology = Topology::new();
    topology
        .add_source("lines", &["text-lines"], Nullable(StringSerde), StringSerde)?
        .add_processor("split", || SplitWords, &["lines"])?
        .add_sink("to-words", "word-count-words-repartition", StringSerde, StringSerde, &["split"])?
        .add_source("words", &["word-count-words-repartition"], StringSerde, StringSerde)?
        .add_processor("count", CountWords::default, &["words"])?
        .add_state_store(
            Stores::key_value_store_builder(Stores::in_memory_key_value_store("counts"), StringSerde, I64Serde),
            &["count"],
        )?
        .add_sink("out", "word-counts", StringSerde, StringSerde, &["count"])?;
    Ok(topology)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let topology = topology()?;
    println!("{}", topology.describe());

    let lines: Vec<String> = if std::env::args().nth(1).as_deref() == Some("-") {
        std::io::stdin().lock().lines().collect::<Result<_, _>>()?
    } else {
        DEMO_TEXT.lines().map(str::to_owned).collect()
    };

    let driver = TopologyTestDriver::new(&topology)?;
    let input = driver.create_input_topic("text-lines", Nullable(StringSerde), StringSerde);
    let output = driver.create_output_topic("word-counts", StringSerde, StringSerde);
    for (i, line) in lines.into_iter().enumerate() {
        input.pipe_value_at(line, i64::try_from(i).unwrap_or(i64::MAX) * 1_000)?;
        for (word, count) in output.read_key_values_to_list()? {
            println!("word-counts  {word:>12} -> {count}");
        }
    }
    let mut totals = driver.key_value_store::<String, i64>("counts")?.all()?;
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!("\ntop words:");
    for (word, count) in totals.iter().take(5) {
        println!("  {word:>12} {count}");
    }
    driver.close()?;
    Ok(())
}
