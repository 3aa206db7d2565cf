#!/usr/bin/env bash
# A real Apache Kafka broker (single-node KRaft) from its Maven Central jars.
#
#   scripts/kafka.sh start    fetch the jars once, format storage, start, wait for metadata
#   scripts/kafka.sh stop     stop the broker this script started (by its PID file)
#   scripts/kafka.sh status   exit 0 when the broker answers
#
# Listens on 127.0.0.1:${KAFKA_PORT:-39092}. Data and logs: $RIVULET_RUN/kafka.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml")"
KAFKA_PORT="${KAFKA_PORT:-39092}"
CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39093}"
JARS="$RIVULET_CACHE/kafka-$KAFKA_VERSION/libs"
DIR="$RIVULET_RUN/kafka"
PIDFILE="$DIR/kafka.pid"

fetch_jars() {
    [[ -f "$JARS/.complete" ]] && return 0
    command -v java >/dev/null || die "java is needed to run the broker (OpenJDK 17+)"
    command -v mvn >/dev/null || die "mvn is needed to fetch the broker's jars from Maven Central"
    log "fetching Kafka $KAFKA_VERSION jars into $JARS"
    rm -rf "$JARS"; mkdir -p "$JARS"
    mvn -q -B -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$JARS"
    touch "$JARS/.complete"
}

broker_answers() {
    java -cp "$JARS/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

start() {
    if pid_alive "$PIDFILE" && tcp_open 127.0.0.1 "$KAFKA_PORT"; then
        log "broker already running on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    fetch_jars
    rm -rf "$DIR"; mkdir -p "$DIR/data"
    cat > "$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=16777216
transaction.remove.expired.transaction.cleanup.interval.ms=60000
PROPS
    cat > "$DIR/log4j2.yaml" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$DIR/server.log"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: file
LOG
    local cluster_id
    cluster_id="$(java -cp "$JARS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    java -cp "$JARS/*" -Dlog4j2.configurationFile="$DIR/log4j2.yaml" kafka.tools.StorageTool format \
        --standalone -t "$cluster_id" -c "$DIR/server.properties" > "$DIR/format.log" 2>&1 \
        || { cat "$DIR/format.log" >&2; die "formatting the broker's storage failed"; }
    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT (logs: $DIR/server.log)"
    # setsid: the broker must outlive this script but not take its signals.
    setsid java -Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$DIR/log4j2.yaml" \
        -cp "$JARS/*" kafka.Kafka "$DIR/server.properties" > "$DIR/stdout.log" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    if ! wait_for "Kafka broker" 120 broker_answers; then
        tail -50 "$DIR/stdout.log" "$DIR/server.log" >&2 || true
        stop_pid "$PIDFILE" kafka
        die "the broker did not answer a metadata request within 120 s"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop_pid "$PIDFILE" kafka ;;
    status) tcp_open 127.0.0.1 "$KAFKA_PORT" && broker_answers ;;
    fetch) fetch_jars ;;
    *) echo "usage: $0 start|stop|status|fetch" >&2; exit 2 ;;
esac
