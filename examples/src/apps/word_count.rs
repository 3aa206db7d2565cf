//! `word-count`: the running count of every word seen on `text-lines`.
//!
//! Contract. Input: values are UTF-8 text (keys ignored; null values skipped).
//! Words are split on anything that is not a letter or digit and lowercased.
//! Output: key = word (UTF-8), value = the running count as a UTF-8 decimal
//! string; the latest value per key is the exact count of that word so far.
//!
//! With `--format avro` (see [`crate::format`]) the input values are Avro
//! `"string"`s and the output values Avro `"long"`s, both Confluent-framed
//! (the output's schema registered as `<output topic>-value`); keys stay
//! UTF-8.

use std::sync::Arc;

use streams_dsl::prelude::*;
use streams_dsl::{DslError, SerdeError, SerdeRef};

use crate::format::{avro_primitive, Format, LONG_SCHEMA, STRING_SCHEMA};

/// Default input topic.
pub const INPUT: &str = "text-lines";
/// Default output topic.
pub const OUTPUT: &str = "word-counts";

/// Splits `line` into lowercased words.
pub fn words(line: &str) -> Vec<String> {
    line.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The word-count topology from `input` to `output`.
pub fn topology(input: &str, output: &str) -> Result<Topology, DslError> {
    topology_with_fault(input, output, None)
}

/// As [`topology`], with a fault for the chaos suite: the word-splitting
/// closure panics on a line that holds `panic_on` (one of its words).
pub fn topology_with_fault(input: &str, output: &str, panic_on: Option<&str>) -> Result<Topology, DslError> {
    let builder = StreamsBuilder::new();
    counts(&builder, input, panic_on, Arc::new(StringSerde))
        .map_values(|count: Option<i64>| count.map(|c| c.to_string()))
        .to_with(output, Produced::with(StringSerde, Nullable(StringSerde)));
    builder.build()
}

/// As [`topology_with_fault`], with the values of `input` and `output` in
/// `format`: UTF-8 text and decimal strings (JSON), or Avro `"string"`s and
/// `"long"`s.
pub fn topology_in(
    input: &str,
    output: &str,
    panic_on: Option<&str>,
    format: &Format,
) -> Result<Topology, Box<dyn std::error::Error>> {
    let Format::Avro(client) = format else { return Ok(topology_with_fault(input, output, panic_on)?) };
    let builder = StreamsBuilder::new();
    counts(&builder, input, panic_on, avro_primitive::<String>(client, STRING_SCHEMA)?)
        .to_with(output, Produced::with(StringSerde, Nullable(avro_primitive::<i64>(client, LONG_SCHEMA)?)));
    Ok(builder.build()?)
}

/// The running counts of the words of `input`'s lines (values read with `lines`).
fn counts(
    builder: &StreamsBuilder,
    input: &str,
    panic_on: Option<&str>,
    lines: SerdeRef<String>,
) -> KStream<String, Option<i64>> {
    let panic_on = panic_on.map(str::to_lowercase);
    builder
        .stream(&[input], Consumed::with(Nullable(BytesSerde), Nullable(lines)))
        .flat_map_values(move |line: Option<String>| {
            let words = line.as_deref().map(words).unwrap_or_default();
            if let Some(poison) = &panic_on {
                if words.contains(poison) {
                    panic!("found the word `{poison}` (--panic-on-word)");
                }
            }
            words
        })
        .group_by(|_, word: &String| word.clone(), Grouped::with(StringSerde, StringSerde).named("words"))
        .count_with(Materialized::as_store("word-counts-store"))
        .to_stream()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_non_alphanumerics_and_lowercases() {
        assert_eq!(words("To be, or NOT to-be: 2b?"), ["to", "be", "or", "not", "to", "be", "2b"]);
        assert_eq!(words("Grüße, Ölçü!"), ["grüße", "ölçü"]);
        assert!(words("  ,;  ").is_empty());
    }

    #[test]
    fn counts_words() -> Result<(), Box<dyn std::error::Error>> {
        let topology = topology(INPUT, OUTPUT)?;
        let driver = TopologyTestDriver::new(&topology)?;
        let lines = driver.create_input_topic(INPUT, Nullable(BytesSerde), Nullable(StringSerde));
        let counts = driver.create_output_topic(OUTPUT, StringSerde, StringSerde);
        lines.pipe_input(None, Some("the cat and the hat".to_owned()))?;
        lines.pipe_input(Some(b"k".to_vec()), None)?;
        lines.pipe_input(None, Some("THE end".to_owned()))?;
        let last = counts.read_key_values_to_map()?;
        assert_eq!(last["the"], "3");
        assert_eq!(last["hat"], "1");
        assert_eq!(last["end"], "1");
        Ok(())
    }
}

/// The command line of the `word-count` binary.
pub fn spec() -> crate::cli::AppSpec {
    use crate::cli::{AppSpec, TextArg, TopicArg};
    AppSpec {
        name: "word-count",
        about: "Counts words in `text-lines` (UTF-8 text values; keys ignored). Words are split on anything that \
                is not a letter or digit and lowercased. Writes `word-counts`: key = word, value = its running \
                count as a decimal string.",
        avro: "input values are Avro \"string\"s, output values Avro \"long\"s (registered as `<output \
               topic>-value`); keys stay UTF-8 strings.",
        inputs: vec![TopicArg { flag: "--input-topic", default: INPUT, compacted: false }],
        outputs: vec![TopicArg { flag: "--output-topic", default: OUTPUT, compacted: false }],
        numbers: vec![],
        texts: vec![TextArg {
            flag: "--panic-on-word",
            help: "fault injection (for the chaos suite): the word-splitting closure panics on a line holding this \
                   word; see processing.exception.handler",
        }],
    }
}

const DEMO_TEXT: &str = "\
It was the best of times, it was the worst of times,
it was the age of wisdom, it was the age of foolishness,
it was the epoch of belief, it was the epoch of incredulity,
it was the season of Light, it was the season of Darkness,
it was the spring of hope, it was the winter of despair,
we had everything before us, we had nothing before us,
we were all going direct to Heaven, we were all going direct the other way";

/// Demo input: lines of a well-known text, over and over.
#[derive(Debug)]
pub struct DemoLines {
    next: usize,
    lines: crate::cli::DemoEncoder<String>,
}

impl DemoLines {
    /// Lines for `topic`, in `format`.
    pub fn new(topic: &str, format: &Format) -> Result<Self, streams_dsl::serde::SchemaParseError> {
        let serde: SerdeRef<String> = match format {
            Format::Json => Arc::new(StringSerde),
            Format::Avro(client) => avro_primitive(client, STRING_SCHEMA)?,
        };
        Ok(Self { next: 0, lines: crate::cli::DemoEncoder::new(topic, serde) })
    }
}

impl crate::cli::DemoGenerator for DemoLines {
    fn next(&mut self, now_ms: i64) -> Result<crate::cli::DemoRecord, SerdeError> {
        let lines: Vec<&str> = DEMO_TEXT.lines().collect();
        let line = lines[self.next % lines.len()];
        self.next += 1;
        Ok(("--input-topic", None, self.lines.encode(&line.to_owned())?, now_ms))
    }
}
