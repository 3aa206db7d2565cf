package dev.rivulet.bench;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.LagInfo;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TaskMetadata;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Suppressed;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.WindowStore;

/**
 * The benchmark workloads on Apache Kafka Streams, default settings plus the
 * guarantee. Args: bootstrap workload guarantee input output application-id state-dir
 * [standby-replicas session-timeout-ms heartbeat-interval-ms]. Runs until killed.
 *
 * <p>Workload f1 (the failover row) is w2's word count with num.standby.replicas and the
 * consumer's session time-out and heartbeat interval from the last three arguments, dynamic
 * membership (two instances share the application id), a status line on stdout every
 * 100 ms (see {@link #status}), and a line on every change of the client's state:
 * {@code STATE new=REBALANCING old=RUNNING at_ms=T}.
 *
 * <p>Workload r1 prints a line to stdout when a store's restore starts and ends (see
 * {@link AnnounceRestores}).
 */
public final class Peer {
    /** W3's window aggregate: count and sum as two big-endian longs. */
    static final Serde<long[]> STATS = Serdes.serdeFrom(
        (topic, stats) -> ByteBuffer.allocate(16).putLong(stats[0]).putLong(stats[1]).array(),
        (topic, bytes) -> {
            ByteBuffer buffer = ByteBuffer.wrap(bytes);
            return new long[] {buffer.getLong(), buffer.getLong()};
        });

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

    /** Wall-clock microseconds since the epoch, for the restore lines. */
    static long nowMicros() {
        return ChronoUnit.MICROS.between(Instant.EPOCH, Instant.now());
    }

    /**
     * R1's restore lines, the same as rivulet-bench's contenders print (the harness times the
     * restore phase from the first start to the last end):
     * {@code RESTORE start source=<changelog partition> store=S at_us=T} and
     * {@code RESTORE end source=<changelog partition> store=S records=N at_us=T}, N being the
     * records restored into the store from that partition.
     */
    static final class AnnounceRestores implements StateRestoreListener {
        @Override
        public void onRestoreStart(TopicPartition partition, String store, long start, long end) {
            System.out.println("RESTORE start source=" + partition + " store=" + store + " at_us=" + nowMicros());
            System.out.flush();
        }

        @Override
        public void onBatchRestored(TopicPartition partition, String store, long batchEnd, long n) {}

        @Override
        public void onRestoreEnd(TopicPartition partition, String store, long total) {
            System.out.println("RESTORE end source=" + partition + " store=" + store + " records=" + total
                + " at_us=" + nowMicros());
            System.out.flush();
        }
    }

    /** Changelog records restored into active stores since the start (F1). */
    static final AtomicLong RESTORED = new AtomicLong();

    /**
     * F1's status line, the same as rivulet-bench's contender prints:
     * {@code STATUS state=RUNNING active=0_1,1_1 standby=1_0:0,1_2:1 restored=N at_ms=T}, with
     * the active tasks (a thread lists them once it runs), the standby tasks with the offset lag
     * of their word-count store partition ({@link KafkaStreams#allLocalStorePartitionLags()}; -1
     * when not known yet), the changelog records restored into active stores (a
     * {@link StateRestoreListener}), and the wall-clock time the tasks were read (before the lags,
     * which ask the broker).
     */
    static String status(KafkaStreams streams) {
        long atMs = System.currentTimeMillis();
        String state = streams.state().toString();
        List<String> active = new ArrayList<>();
        Map<String, Integer> standbyPartitions = new TreeMap<>();
        for (ThreadMetadata thread : streams.metadataForLocalThreads()) {
            for (TaskMetadata task : thread.activeTasks()) {
                active.add(task.taskId().toString());
            }
            for (TaskMetadata task : thread.standbyTasks()) {
                standbyPartitions.put(task.taskId().toString(), task.taskId().partition());
            }
        }
        Map<Integer, LagInfo> lags = Map.of();
        try {
            lags = streams.allLocalStorePartitionLags().getOrDefault("word-counts-store", Map.of());
        } catch (RuntimeException e) {
            // Not known while the instance starts or rebalances: the lags stay -1.
        }
        Map<String, Long> standby = new TreeMap<>();
        for (Map.Entry<String, Integer> task : standbyPartitions.entrySet()) {
            LagInfo lag = lags.get(task.getValue());
            standby.put(task.getKey(), lag == null ? -1 : lag.offsetLag());
        }
        active.sort(null);
        List<String> standbys = new ArrayList<>();
        standby.forEach((task, lag) -> standbys.add(task + ":" + lag));
        return "STATUS state=" + state + " active=" + String.join(",", active) + " standby="
            + String.join(",", standbys) + " restored=" + RESTORED.get() + " at_ms=" + atMs;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], workload = args[1], guarantee = args[2];
        String input = args[3], output = args[4], app = args[5], stateDir = args[6];
        boolean failover = workload.equals("f1");
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, app);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        props.put("auto.offset.reset", "earliest");
        if (failover) {
            props.put(StreamsConfig.NUM_STANDBY_REPLICAS_CONFIG, Integer.parseInt(args[7]));
            props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), Integer.parseInt(args[8]));
            props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG),
                Integer.parseInt(args[9]));
        } else {
            // Static membership: Kafka Streams' consumers do not leave the group
            // on close, and CloseOptions.leaveGroup only acts on static members;
            // without it R1's second instance waits out the first one's session.
            props.put(StreamsConfig.consumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), app);
        }
        StreamsBuilder builder = new StreamsBuilder();
        switch (workload) {
            case "w1" -> builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.String()))
                .filter((k, v) -> number(v, "amount") % 2 == 0)
                .mapValues(v -> "{\"id\":" + number(v, "id") + ",\"user\":\"" + text(v, "user") + "\",\"cents\":"
                    + number(v, "amount") * 100 + "}")
                .to(output, Produced.with(Serdes.ByteArray(), Serdes.String()));
            case "w2", "r1", "f1" -> builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.String()))
                .flatMapValues(line -> Arrays.stream(line.toLowerCase(Locale.ROOT).split("[^\\p{L}\\p{Nd}]+"))
                    .filter(w -> !w.isEmpty()).toList())
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("word-counts-store"))
                .toStream()
                .mapValues(Object::toString)
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
            case "w3" -> builder.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.String()))
                .selectKey((k, v) -> text(v, "card"))
                .groupByKey(Grouped.with(Serdes.String(), Serdes.String()))
                .windowedBy(TimeWindows.ofSizeWithNoGrace(Duration.ofSeconds(60)))
                .aggregate(() -> new long[2],
                    (card, v, stats) -> new long[] {stats[0] + 1, stats[1] + number(v, "amount")},
                    Materialized.<String, long[], WindowStore<Bytes, byte[]>>as("payment-stats")
                        .withKeySerde(Serdes.String()).withValueSerde(STATS))
                .suppress(Suppressed.untilWindowCloses(Suppressed.BufferConfig.unbounded()))
                .toStream()
                .map((w, stats) -> KeyValue.pair(w.key() + "@" + w.window().start(), stats[0] + "," + stats[1]))
                .to(output, Produced.with(Serdes.String(), Serdes.String()));
            case "w4" -> {
                KTable<String, String> customers = builder.table(input + "-customers",
                    Consumed.with(Serdes.String(), Serdes.String()));
                builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                    .join(customers, (order, tier) -> number(order, "id") + "," + text(order, "customer") + ","
                        + number(order, "amount") + "," + tier)
                    .to(output, Produced.with(Serdes.String(), Serdes.String()));
            }
            default -> throw new IllegalArgumentException("unknown workload " + workload);
        }
        KafkaStreams streams = new KafkaStreams(builder.build(), props);
        if (failover) {
            streams.setStateListener((newState, oldState) -> System.out.println(
                "STATE new=" + newState + " old=" + oldState + " at_ms=" + System.currentTimeMillis()));
            streams.setGlobalStateRestoreListener(new StateRestoreListener() {
                @Override
                public void onRestoreStart(TopicPartition partition, String store, long start, long end) {}

                @Override
                public void onBatchRestored(TopicPartition partition, String store, long batchEnd, long n) {
                    RESTORED.addAndGet(n);
                }

                @Override
                public void onRestoreEnd(TopicPartition partition, String store, long total) {}
            });
            Thread reporter = new Thread(() -> {
                while (true) {
                    try {
                        System.out.println(status(streams));
                        System.out.flush();
                        // The reporting pace, not a synchronisation.
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    } catch (RuntimeException e) {
                        System.err.println("status: " + e);
                    }
                }
            }, "f1-status");
            reporter.setDaemon(true);
            reporter.start();
        } else if (workload.equals("r1")) {
            streams.setGlobalStateRestoreListener(new AnnounceRestores());
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            // Leave the group, as the other contenders do.
            streams.close(new KafkaStreams.CloseOptions().leaveGroup(true));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
    }
}
