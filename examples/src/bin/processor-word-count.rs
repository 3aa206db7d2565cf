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
//!
//! It takes `--format json` (the default: plain UTF-8 text) like the other
//! examples but refuses `--format avro`: it runs on the broker-free test
//! driver, with no schema registry. `word-count --format avro` counts Avro
//! `"string"` lines on a cluster.

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

const USAGE: &str = "\
processor-word-count

Word count with the Processor API on the broker-free TopologyTestDriver: counts the words of the built-in text,
or of the lines on stdin with `-`, and prints each new count and the top words. Input `text-lines`: UTF-8 lines;
output `word-counts`: key = lowercased word, value = running count as a decimal string.

USAGE: processor-word-count [-] [--format json]

OPTIONS:
  -                   read the lines from stdin
  --format json       plain UTF-8 text (the default and the only format: --format avro is refused, since there is
                      no schema registry here; use word-count --format avro on a cluster for Avro)
  --help              this text
";

/// Whether to read stdin; `Err`: a usage error, to print and exit 2 with.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<bool>, String> {
    let mut stdin = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        match flag.as_str() {
            "-" => stdin = true,
            "--help" | "-h" => return Ok(None),
            "--format" => match inline.or_else(|| args.next()).as_deref() {
                Some("json") => {}
                Some("avro") => {
                    return Err("--format avro is not supported: processor-word-count runs on the broker-free \
                                TopologyTestDriver with plain UTF-8 text (use word-count --format avro \
                                --schema-registry URL on a cluster)"
                        .to_owned())
                }
                Some(other) => return Err(format!("invalid value `{other}` for `--format`: expected json")),
                None => return Err("`--format` needs a value; see --help".to_owned()),
            },
            other => return Err(format!("unknown option `{other}`; see --help")),
        }
    }
    Ok(Some(stdin))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let from_stdin = match parse_args(std::env::args().skip(1)) {
        Ok(Some(stdin)) => stdin,
        Ok(None) => {
            print!("{USAGE}");
            return Ok(());
        }
        Err(e) => {
            eprintln!("processor-word-count: {e}");
            std::process::exit(2);
        }
    };
    let topology = topology()?;
    println!("{}", topology.describe());

    let lines: Vec<String> = if from_stdin {
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
