//! What the DSL tests share.

use streams_dsl::prelude::*;

/// Word count on `b`: lines of `text-lines` split into words, repartitioned
/// by word (`words`), counted into store `counts`, counts to `word-counts`.
pub(crate) fn word_count(b: &StreamsBuilder) {
    b.stream(&["text-lines"], Consumed::with(Nullable(StringSerde), StringSerde))
        .flat_map_values(|l: String| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .group_by(|_, w| w.clone(), Grouped::with(StringSerde, StringSerde).named("words"))
        .count_with(Materialized::as_store("counts"))
        .to_stream()
        .to_with("word-counts", Produced::with(StringSerde, Nullable(I64Serde)));
}
