#!/usr/bin/env bash
# A real Apache Kafka broker (single-node KRaft) from its Maven Central jars,
# in one or more named instances, with the faults the chaos tests inject.
#
#   scripts/kafka.sh [--instance NAME] COMMAND
#
#   start          fetch the jars once, format fresh storage, start, wait for
#                  metadata (a no-op when this instance is already running)
#   stop           stop the broker (and its controller) this script started
#                  (SIGTERM, by their PID files)
#   down [--hard]  take the broker down but keep its data: SIGTERM and wait for
#                  it to exit (a controlled shutdown); --hard: SIGKILL
#   up             start it again on its existing data (no format), wait for
#                  metadata
#   restart [--hard]  down, then up
#   status         exit 0 when the broker answers a metadata request
#   address        print its bootstrap address (HOST:PORT)
#   lockfile       print the file that a user of the instance (a chaos test,
#                  which takes it down) holds an flock on, across processes
#   fetch          only fetch the jars
#
# Instances: `default` listens on 127.0.0.1:${KAFKA_PORT:-39092} (controller
# ${KAFKA_CONTROLLER_PORT:-39093}), data and logs in $RIVULET_RUN/kafka;
# `chaos` on ${KAFKA_CHAOS_PORT:-29192} (controller ${KAFKA_CHAOS_CONTROLLER_PORT:-29193}),
# in $RIVULET_RUN/kafka-chaos. Any other NAME needs KAFKA_<NAME>_PORT and
# KAFKA_<NAME>_CONTROLLER_PORT and lives in $RIVULET_RUN/kafka-<name>.
#
# `default` is one process in both KRaft roles. `chaos` (and any instance with
# KAFKA_<NAME>_SPLIT=1) runs its controller in a process of its own, as
# production clusters do, and `down`/`up`/`restart` act on the broker alone:
# a broker restart then meets a controller that fenced it during the outage.
# Restarting a combined node hard restarts its controller too, which still
# holds the killed broker's registration as live; the broker comes back
# leading its partitions on that stale registration, its transaction
# coordinator retries a PREPARE_COMMIT's markers, the registration's session
# expires (broker.session.timeout.ms) leaving every partition leaderless for
# a moment, and Kafka (4.4.0) then drops the markers as if the partitions
# were deleted ("Couldn't find leader endpoint ... likely deleted"): a
# hanging transaction that blocks read_committed readers and the group's
# committed offsets for good. Whether an outage shorter than that session
# timeout (9 s) can still meet it on a split instance is not established.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

usage() {
    echo "usage: $0 [--instance NAME] start|stop|down [--hard]|up|restart [--hard]|status|address|pid|lockfile|fetch|delete-topics REGEX" >&2
    exit 2
}

INSTANCE=default
if [[ "${1:-}" == --instance ]]; then
    [[ $# -ge 2 ]] || usage
    INSTANCE="$2"; shift 2
elif [[ "${1:-}" == --instance=* ]]; then
    INSTANCE="${1#--instance=}"; shift
fi
[[ "$INSTANCE" =~ ^[A-Za-z0-9_]+$ ]] || die "invalid instance name \`$INSTANCE\` (letters, digits, _)"

KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$HERE/kafka/pom.xml")"
JARS="$RIVULET_CACHE/kafka-$KAFKA_VERSION/libs"
case "$INSTANCE" in
    default)
        KAFKA_PORT="${KAFKA_PORT:-39092}"
        CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-39093}"
        DIR="$RIVULET_RUN/kafka"
        ;;
    *)
        upper="${INSTANCE^^}"
        port_var="KAFKA_${upper}_PORT" controller_var="KAFKA_${upper}_CONTROLLER_PORT"
        if [[ "$INSTANCE" == chaos ]]; then
            # Below Linux's ephemeral range (32768-60999): this broker is
            # restarted mid-suite, while hundreds of client connections hold
            # local ports in that range, and one of them can be its own.
            KAFKA_PORT="${!port_var:-29192}"
            CONTROLLER_PORT="${!controller_var:-29193}"
        else
            KAFKA_PORT="${!port_var:-}"
            CONTROLLER_PORT="${!controller_var:-}"
            [[ -n "$KAFKA_PORT" && -n "$CONTROLLER_PORT" ]] \
                || die "instance \`$INSTANCE\` needs $port_var and $controller_var"
        fi
        DIR="$RIVULET_RUN/kafka-$INSTANCE"
        ;;
esac
PIDFILE="$DIR/kafka.pid"
CONTROLLER_PIDFILE="$DIR/controller.pid"
SPLIT=0
if [[ "$INSTANCE" == chaos ]]; then SPLIT=1; fi
split_var="KAFKA_${INSTANCE^^}_SPLIT"
[[ -n "${!split_var:-}" ]] && SPLIT="${!split_var}"
[[ "$SPLIT" == 0 || "$SPLIT" == 1 ]] || die "$split_var must be 0 or 1"
# Outside $DIR: `start` wipes $DIR, and a lock must outlive that.
LOCKFILE="$RIVULET_RUN/kafka-$INSTANCE.lock"
NAME="kafka ($INSTANCE)"

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
    tcp_open 127.0.0.1 "$KAFKA_PORT" || return 1
    java -cp "$JARS/*" org.apache.kafka.tools.TopicCommand \
        --bootstrap-server "127.0.0.1:$KAFKA_PORT" --list >/dev/null 2>&1
}

running() {
    pid_alive "$PIDFILE" && tcp_open 127.0.0.1 "$KAFKA_PORT" && { ((!SPLIT)) || controller_running; }
}

controller_running() { pid_alive "$CONTROLLER_PIDFILE" && tcp_open 127.0.0.1 "$CONTROLLER_PORT"; }

# log4j_config FILE LOG: a log4j2 configuration writing everything to LOG.
log4j_config() {
    cat > "$1" <<LOG
Configuration:
  Appenders:
    File:
      name: file
      fileName: "$2"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: file
LOG
}

write_config() {
    local roles="broker,controller" listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT"
    if ((SPLIT)); then
        roles="broker" listeners="PLAINTEXT://127.0.0.1:$KAFKA_PORT"
        # Node 2: a controller's id may not be a broker's.
        cat > "$DIR/controller.properties" <<PROPS
process.roles=controller
node.id=2
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=CONTROLLER://127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/controller-data
PROPS
        log4j_config "$DIR/controller-log4j2.yaml" "$DIR/controller.log"
    fi
    cat > "$DIR/server.properties" <<PROPS
process.roles=$roles
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=$listeners
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
# Test records carry old event times: time-based retention would delete them
# before they are read.
log.retention.ms=-1
log.cleaner.dedupe.buffer.size=16777216
transaction.remove.expired.transaction.cleanup.interval.ms=60000
PROPS
    log4j_config "$DIR/log4j2.yaml" "$DIR/server.log"
}

# ready_or_gone: the broker answers, or its JVM has exited (so waiting longer
# cannot help).
ready_or_gone() { broker_answers || ! pid_alive "$PIDFILE"; }

# bind_failed LOG LOG_MARK STDOUT STDOUT_MARK: the last launch's JVM exited
# because a port was taken. A port can be held for a moment by a client
# connection's local end, so a node restarted mid-suite may meet one of its
# own ports taken. Reads only what the two logs in $DIR gained since the
# launch noted their sizes (the marks).
bind_failed() {
    { tail -c +"$(($2 + 1))" "$DIR/$1"; tail -c +"$(($4 + 1))" "$DIR/$3"; } \
        2>/dev/null | grep -q -e "Address already in use" -e "BindException"
}

log_size() { if [[ -f "$1" ]]; then wc -c < "$1"; else echo 0; fi; }

# start_jvm MIN_HEAP MAX_HEAP LOG4J PROPERTIES STDOUT PIDFILE: one Kafka
# process (broker or controller) on files in $DIR, in the background.
# setsid: it must outlive this script but not take its signals.
start_jvm() {
    setsid java -Xms"$1" -Xmx"$2" -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$DIR/$3" \
        -cp "$JARS/*" kafka.Kafka "$DIR/$4" >> "$DIR/$5" 2>&1 < /dev/null &
    echo $! > "$6"
}

# Starts the JVM on the formatted storage in $DIR and waits for metadata; a
# launch that dies on a taken port is tried again, up to 5 times.
launch() {
    local attempt log_mark stdout_mark
    for attempt in 1 2 3 4 5; do
        log "starting Kafka $KAFKA_VERSION ($INSTANCE) on 127.0.0.1:$KAFKA_PORT (logs: $DIR/server.log)"
        log_mark="$(log_size "$DIR/server.log")" stdout_mark="$(log_size "$DIR/stdout.log")"
        start_jvm 256m 1g log4j2.yaml server.properties stdout.log "$PIDFILE"
        if ! wait_for "" 180 ready_or_gone; then
            tail -n 50 "$DIR/stdout.log" "$DIR/server.log" >&2 || true
            stop_pid "$PIDFILE" "$NAME"
            die "the broker did not answer a metadata request within 180 s"
        fi
        if pid_alive "$PIDFILE"; then
            log "Kafka broker ($INSTANCE) is ready"
            return 0
        fi
        rm -f "$PIDFILE"
        if bind_failed server.log "$log_mark" stdout.log "$stdout_mark" && ((attempt < 5)); then
            log "broker ($INSTANCE) exited: one of its ports (127.0.0.1:$KAFKA_PORT, :$CONTROLLER_PORT) was taken; starting it again"
            sleep 2
            continue
        fi
        tail -n 50 "$DIR/stdout.log" "$DIR/server.log" >&2 || true
        die "the broker ($INSTANCE) exited during start-up (logs above)"
    done
}

# launch_controller: a split instance's controller, on its formatted storage;
# waits until it accepts connections. A launch that dies on a taken port is
# tried again, up to 5 times.
launch_controller() {
    local attempt log_mark stdout_mark
    for attempt in 1 2 3 4 5; do
        log "starting the KRaft controller ($INSTANCE) on 127.0.0.1:$CONTROLLER_PORT (logs: $DIR/controller.log)"
        log_mark="$(log_size "$DIR/controller.log")" stdout_mark="$(log_size "$DIR/controller-stdout.log")"
        start_jvm 64m 256m controller-log4j2.yaml controller.properties controller-stdout.log "$CONTROLLER_PIDFILE"
        if ! wait_for "" 120 controller_up_or_gone; then
            tail -n 50 "$DIR/controller-stdout.log" "$DIR/controller.log" >&2 || true
            stop_pid "$CONTROLLER_PIDFILE" "controller ($INSTANCE)"
            die "the controller did not accept connections within 120 s"
        fi
        pid_alive "$CONTROLLER_PIDFILE" && return 0
        rm -f "$CONTROLLER_PIDFILE"
        if bind_failed controller.log "$log_mark" controller-stdout.log "$stdout_mark" && ((attempt < 5)); then
            log "controller ($INSTANCE) exited: 127.0.0.1:$CONTROLLER_PORT was taken; starting it again"
            sleep 2
            continue
        fi
        tail -n 50 "$DIR/controller-stdout.log" "$DIR/controller.log" >&2 || true
        die "the controller ($INSTANCE) exited during start-up (logs above)"
    done
}

controller_up_or_gone() { controller_running || ! pid_alive "$CONTROLLER_PIDFILE"; }

# format DIR_CONFIG [FLAG...]: formats the storage of the node configured there.
format() {
    local config="$1"; shift
    java -cp "$JARS/*" -Dlog4j2.configurationFile="$DIR/log4j2.yaml" kafka.tools.StorageTool format \
        -t "$CLUSTER_ID" -c "$config" "$@" >> "$DIR/format.log" 2>&1 \
        || { cat "$DIR/format.log" >&2; die "formatting the storage of $config failed"; }
}

stop_all() {
    stop_pid "$PIDFILE" "$NAME"
    stop_pid "$CONTROLLER_PIDFILE" "controller ($INSTANCE)"
}

start() {
    if running; then
        log "broker ($INSTANCE) already running on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    fetch_jars
    stop_all
    rm -rf "$DIR"; mkdir -p "$DIR/data"
    write_config
    CLUSTER_ID="$(java -cp "$JARS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    if ((SPLIT)); then
        mkdir -p "$DIR/controller-data"
        format "$DIR/controller.properties" --standalone
        format "$DIR/server.properties"
        launch_controller
    else
        format "$DIR/server.properties" --standalone
    fi
    launch
}

# down [--hard]: the broker process goes away; its data stays for `up`.
down() {
    local hard=0
    case "${1:-}" in
        --hard) hard=1 ;;
        "") ;;
        *) usage ;;
    esac
    if ! pid_alive "$PIDFILE"; then
        log "broker ($INSTANCE) is not running"
        rm -f "$PIDFILE"
        return 0
    fi
    if ((hard)); then
        local pid; pid="$(cat "$PIDFILE")"
        log "killing $NAME (pid $pid, SIGKILL)"
        kill -9 "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        rm -f "$PIDFILE"
    else
        stop_pid "$PIDFILE" "$NAME"
    fi
}

# up: the broker again, on the data it had (no format).
up() {
    if running; then
        log "broker ($INSTANCE) already running on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    [[ -f "$DIR/data/meta.properties" ]] \
        || die "instance \`$INSTANCE\` has no formatted data in $DIR/data; use \`start\`"
    fetch_jars
    stop_pid "$PIDFILE" "$NAME"
    # The ports may have been overridden since it was formatted.
    write_config
    if ((SPLIT)) && ! controller_running; then
        stop_pid "$CONTROLLER_PIDFILE" "controller ($INSTANCE)"
        launch_controller
    fi
    launch
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
    start) [[ $# -eq 0 ]] || usage; start ;;
    stop) [[ $# -eq 0 ]] || usage; stop_all ;;
    down) down "$@" ;;
    up) [[ $# -eq 0 ]] || usage; up ;;
    restart) down "$@"; up ;;
    status) broker_answers ;;
    address) echo "127.0.0.1:$KAFKA_PORT" ;;
    pid) [[ -s "$PIDFILE" ]] || die "$NAME is not running"; cat "$PIDFILE" ;;
    lockfile) echo "$LOCKFILE" ;;
    fetch) fetch_jars ;;
    # Deletes the topics whose whole name matches REGEX (benchmarks/run.sh:
    # its run's topics, which would otherwise fill the disk over many runs).
    delete-topics)
        [[ $# -eq 1 ]] || usage
        running || die "$NAME is not running"
        java -cp "$JARS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
            --delete --if-exists --topic "$1" >/dev/null 2>&1 ;;
    *) usage ;;
esac
