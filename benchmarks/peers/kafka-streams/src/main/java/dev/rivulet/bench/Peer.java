package dev.rivulet.bench;

import java.util.Arrays;
import java.util.Locale;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The benchmark workloads on Apache Kafka Streams, default settings plus the
 * guarantee. Args: bootstrap workload guarantee input output application-id state-dir.
 * Runs until killed.
 */
public final class Peer {
    /** The value of a numeric JSON field in the flat objects W1 carries. */
    static long number(String json, String field) {
        int at = json.indexOf("\"" + field + "\":");
        if (at < 0) {
            throw new IllegalArgumentException("no field " + field);
        }
        int start = at + field.length() + 3;
        int end = start;
        while (end < json.length() && (Character.isDigit(json.charAt(end)) || json.charAt(end) == '-')) {
            end++;
        }
        return Long.parseLong(json.substring(start, end));
    }

    /** The value of a string JSON field (no escapes in W1's data). */
    static String text(String json, String field) {
        int at = json.indexOf("\"" + field + "\":\"");
        int start = at + field.length() + 4;
        return json.substring(start, json.indexOf('"', start));
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], workload = args[1], guarantee = args[2];
        String input = args[3], output = args[4], app = args[5], stateDir = args[6];
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put("auto.offset.reset", "earliest");
        StreamsBuilder builder = new StreamsBuilder();
        if (workload.equals("w1")) {
            builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.String()))
                .filter((k, v) -> number(v, "amount") % 2 == 0)
                .mapValues(v -> "{\"id\":" + number(v, "id") + ",\"user\":\"" + text(v, "user") + "\",\"cents\":"
                    + number(v, "amount") * 100 + "}")
                .to(output, Produced.with(Serdes.ByteArray(), Serdes.String()));
        } else {
            builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.String()))
                .flatMapValues(line -> Arrays.stream(line.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{Nd}]+"))
                    .filter(w -> !w.isEmpty()).toList())
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("word-counts-store"))
                .toStream()
                .mapValues(Object::toString)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
        }
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
    }
}
