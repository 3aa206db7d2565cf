package dev.rivulet.golden;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.TreeMap;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TestOutputTopic;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.SessionWindows;
import org.apache.kafka.streams.kstream.SlidingWindows;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.test.TestRecord;

/**
 * Runs each scenario's input (scenarios/NAME.in: topic|key|value|timestamp, "<null>" for null)
 * through Kafka Streams' TopologyTestDriver and writes every output record to
 * expected/NAME.txt (topic|key|value|timestamp, output topics in name order).
 */
public final class Golden {
    private static final Consumed<String, String> C = Consumed.with(Serdes.String(), Serdes.String());
    private static final Produced<String, String> P = Produced.with(Serdes.String(), Serdes.String());
    private static final Grouped<String, String> G = Grouped.with(Serdes.String(), Serdes.String());

    private static String win(Windowed<String> wk) {
        return wk.key() + "@" + wk.window().start() + "/" + wk.window().end();
    }

    private static String str(Long v) {
        return v == null ? null : String.valueOf(v);
    }

    private static long num(String v) {
        return Long.parseLong(v);
    }

    static Topology build(String name) {
        StreamsBuilder b = new StreamsBuilder();
        switch (name) {
            case "wordcount" -> b.stream("in", C)
                    .flatMapValues(v -> Arrays.asList(v.toLowerCase().split("[^a-z0-9]+")))
                    .filter((k, v) -> !v.isEmpty())
                    .groupBy((k, v) -> v, G)
                    .count()
                    .toStream().mapValues(Golden::str).to("out", P);
            case "stateless" -> {
                KStream<String, String> s = b.stream("in", C);
                s.filter((k, v) -> v.length() > 2).mapValues(v -> v.toUpperCase()).to("upper", P);
                s.filterNot((k, v) -> v.length() > 2).map((k, v) -> KeyValue.pair(v, k)).to("swapped", P);
                s.flatMap((k, v) -> List.of(KeyValue.pair(k + "1", v), KeyValue.pair(k + "2", v))).to("doubled", P);
                s.selectKey((k, v) -> v.substring(0, 1)).merge(b.stream("other", C)).to("merged", P);
            }
            case "table_source" -> b.table("t", C).toStream().to("out", P);
            case "table_filter_map" -> b.table("t", C)
                    .filter((k, v) -> v.length() > 2)
                    .mapValues(v -> v.toUpperCase())
                    .toStream().to("out", P);
            case "table_filter_materialized" -> b.table("t", C)
                    .filter((k, v) -> v.length() > 2, Materialized.with(Serdes.String(), Serdes.String()))
                    .toStream().to("out", P);
            case "reduce" -> b.stream("in", C).groupByKey().reduce((a, v) -> a + v).toStream().to("out", P);
            case "aggregate" -> b.stream("in", C).groupByKey()
                    .aggregate(() -> 0L, (k, v, agg) -> agg + num(v), Materialized.with(Serdes.String(), Serdes.Long()))
                    .toStream().mapValues(Golden::str).to("out", P);
            case "windowed_count" -> b.stream("in", C).groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count()
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "hopping_sum" -> b.stream("in", C).groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(0)).advanceBy(Duration.ofMillis(5)))
                    .aggregate(() -> 0L, (k, v, agg) -> agg + num(v), Materialized.with(Serdes.String(), Serdes.Long()))
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "suppress" -> b.stream("in", C).groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count()
                    .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "session_count" -> b.stream("in", C).groupByKey()
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(0)))
                    .count()
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "sliding_count" -> b.stream("in", C).groupByKey()
                    .windowedBy(SlidingWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(10), Duration.ofMillis(5)))
                    .count()
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "stream_table_join" -> {
                KTable<String, String> t = b.table("t", C);
                KStream<String, String> s = b.stream("s", C);
                s.join(t, (sv, tv) -> sv + "+" + tv).to("inner", P);
                s.leftJoin(t, (sv, tv) -> sv + "+" + tv).to("left", P);
            }
            case "table_groupby_aggregate" -> b.table("t", C)
                    .groupBy((k, v) -> KeyValue.pair(v.split(":")[0], v.split(":")[1]), G)
                    .aggregate(() -> 0L, (k, v, agg) -> agg + num(v), (k, v, agg) -> agg - num(v),
                            Materialized.with(Serdes.String(), Serdes.Long()))
                    .toStream().mapValues(Golden::str).to("out", P);
            case "stream_stream_join" -> {
                KStream<String, String> l = b.stream("l", C);
                KStream<String, String> r = b.stream("r", C);
                JoinWindows w = JoinWindows.ofTimeDifferenceAndGrace(Duration.ofMillis(10), Duration.ofMillis(0));
                StreamJoined<String, String, String> sj = StreamJoined.with(Serdes.String(), Serdes.String(), Serdes.String());
                l.join(r, (a, c) -> a + "+" + c, w, sj).to("inner", P);
                l.leftJoin(r, (a, c) -> a + "+" + c, w, sj).to("left", P);
                l.outerJoin(r, (a, c) -> a + "+" + c, w, sj).to("outer", P);
            }
            case "table_table_join" -> {
                KTable<String, String> l = b.table("l", C);
                KTable<String, String> r = b.table("r", C);
                l.join(r, (a, c) -> a + "+" + c).toStream().to("inner", P);
                l.leftJoin(r, (a, c) -> a + "+" + c).toStream().to("left", P);
                l.outerJoin(r, (a, c) -> a + "+" + c).toStream().to("outer", P);
            }
            case "global_join" -> {
                org.apache.kafka.streams.kstream.GlobalKTable<String, String> g = b.globalTable("g", C);
                KStream<String, String> s = b.stream("s", C);
                s.join(g, (k, v) -> v.split(":")[0], (sv, gv) -> sv + "+" + gv).to("inner", P);
                s.leftJoin(g, (k, v) -> v.split(":")[0], (sv, gv) -> sv + "+" + gv).to("left", P);
            }
            case "cogroup" -> {
                org.apache.kafka.streams.kstream.KGroupedStream<String, String> g1 = b.stream("a", C).groupByKey();
                org.apache.kafka.streams.kstream.KGroupedStream<String, String> g2 = b.stream("b", C).groupByKey();
                g1.<String>cogroup((k, v, agg) -> agg + "a" + v)
                        .cogroup(g2, (k, v, agg) -> agg + "b" + v)
                        .aggregate(() -> "", Materialized.with(Serdes.String(), Serdes.String()))
                        .toStream().to("out", P);
            }
            case "suppress_time_limit" -> b.table("t", C)
                    .suppress(Suppressed.untilTimeLimit(Duration.ofMillis(10), Suppressed.BufferConfig.unbounded()))
                    .toStream().to("out", P);
            case "suppress_emit_early" -> b.table("t", C)
                    .suppress(Suppressed.untilTimeLimit(Duration.ofMillis(100), Suppressed.BufferConfig.maxRecords(2).emitEarlyWhenFull()))
                    .toStream().to("out", P);
            case "cached_count" -> b.stream("in", C)
                    .flatMapValues(v -> Arrays.asList(v.split(" ")))
                    .groupByKey()
                    .count()
                    .toStream().mapValues(Golden::str).to("out", P);
            case "cached_windowed" -> b.stream("in", C)
                    .flatMapValues(v -> Arrays.asList(v.split(" ")))
                    .groupByKey()
                    .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMillis(10), Duration.ofMillis(0)))
                    .count()
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "cached_session" -> b.stream("in", C)
                    .flatMapValues(v -> Arrays.asList(v.split(" ")))
                    .groupByKey()
                    .windowedBy(SessionWindows.ofInactivityGapAndGrace(Duration.ofMillis(5), Duration.ofMillis(0)))
                    .count()
                    .toStream((wk, v) -> win(wk)).mapValues(Golden::str).to("out", P);
            case "fk_join" -> {
                KTable<String, String> orders = b.table("orders", C);
                KTable<String, String> customers = b.table("customers", C);
                orders.join(customers, v -> v.split(":")[0], (o, c) -> o + "+" + c).toStream().to("inner", P);
                orders.leftJoin(customers, v -> v.split(":")[0], (o, c) -> o + "+" + c).toStream().to("left", P);
            }
            default -> throw new IllegalArgumentException("unknown scenario " + name);
        }
        return b.build();
    }

    private static String orNull(String s) {
        return "<null>".equals(s) ? null : s;
    }

    private static String show(String s) {
        return s == null ? "<null>" : s;
    }

    public static void main(String[] args) throws IOException {
        Path dir = Path.of(args[0]);
        for (int i = 1; i < args.length; i++) {
            String name = args[i];
            Properties props = new Properties();
            props.put(StreamsConfig.APPLICATION_ID_CONFIG, "golden");
            props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
            // cached_* scenarios keep Kafka Streams' default record cache; the others turn it off.
            props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, name.startsWith("cached_") ? 10L * 1024 * 1024 : 0L);
            Topology topology = build(name);
            List<String> out = new ArrayList<>();
            try (TopologyTestDriver driver = new TopologyTestDriver(topology, props, Instant.ofEpochMilli(0))) {
                TreeMap<String, TestInputTopic<String, String>> inputs = new TreeMap<>();
                for (String line : Files.readAllLines(dir.resolve("scenarios").resolve(name + ".in"), StandardCharsets.UTF_8)) {
                    if (line.isBlank() || line.startsWith("#")) {
                        continue;
                    }
                    String[] f = line.split("\\|", -1);
                    TestInputTopic<String, String> in = inputs.computeIfAbsent(f[0],
                            t -> driver.createInputTopic(t, Serdes.String().serializer(), Serdes.String().serializer()));
                    in.pipeInput(new TestRecord<>(orNull(f[1]), orNull(f[2]), null, Long.parseLong(f[3])));
                }
                TreeMap<String, Boolean> topics = new TreeMap<>();
                for (String t : driver.producedTopicNames()) {
                    if (!t.startsWith("golden-")) {
                        topics.put(t, true);
                    }
                }
                for (String t : topics.keySet()) {
                    TestOutputTopic<String, String> o = driver.createOutputTopic(t, Serdes.String().deserializer(), Serdes.String().deserializer());
                    for (TestRecord<String, String> r : o.readRecordsToList()) {
                        out.add(t + "|" + show(r.key()) + "|" + show(r.value()) + "|" + r.timestamp());
                    }
                }
            }
            Files.write(dir.resolve("expected").resolve(name + ".txt"), out, StandardCharsets.UTF_8);
            System.out.println(name + ": " + out.size() + " records");
        }
    }
}
