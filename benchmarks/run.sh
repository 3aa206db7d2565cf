#!/usr/bin/env bash
# The benchmark harness: one broker, preloaded input, each contender in turn on
# the same data, outputs verified, results in benchmarks/results/latest.{json,md}.
#
#   ./benchmarks/run.sh [--records N] [--quick] [--profile W1|W2|W3|W4]
#
# Contenders so far: `raw` (a hand-written rdkafka loop with the same commits),
# `rivulet` (release build) and `kafka-streams` (Apache Kafka Streams 4.4.0,
# benchmarks/peers/kafka-streams, default settings plus the guarantee) and
# `quix` (Quix Streams 3.28.1 in benchmarks/.venv, benchmarks/peers/quix).
# Workloads: W1 stateless (at_least_once and exactly_once_v2); W2 word count,
# W3 windowed aggregation, W4 stream-table join, R1 restore (exactly_once_v2);
# then a rate-limited latency pass over W1, W2 and W4 (exactly_once_v2),
# BENCH_LATENCY_PASSES times (default 3; the contenders take turns within each
# pass, each pass on fresh topics), reported as the median of the passes with
# the range of their p99s: one pass's tail varies several-fold between runs of
# the same code on this machine.
# R1's row also has the restore phase alone, apart from start-up: from the
# first store's restore start to the last one's end, as each contender prints
# them on stdout (`RESTORE start|end …` lines from Rivulet's and Kafka Streams'
# restore listeners, the raw loop around its table read; see
# benchmarks/src/restore_phase.rs), and the restored records/s in it.
# W2Q: rivulet on W2's input again with 1,000 interactive-query gets/s beside
# the processing (contender `rivulet+queries`), to compare with plain W2.
# R2 (rivulet only): a running task's latency while another task of the same
# stream thread restores R1's number of changelog records.
# F1 failover: two instances of W2's word count, one killed (rivulet and
# kafka-streams, each with one standby replica and, as `…-nostandby`, none).
# Scaling rows (rivulet, W2 word count, exactly_once_v2): `threads` runs it
# with num.stream.threads=1 and 2 on the same input, `keys` with vocabularies
# of 10,000, 1,000,000 and 10,000,000 distinct words (plain W2 draws from 500).
# BENCH_CONTENDERS="raw rivulet" and BENCH_WORKLOADS="w3 r1 latency" narrow the run
# (all: w1 w2 w2q w3 w4 threads keys r1 r2 f1 latency).
# Results: benchmarks/results/latest.{jsonl,json,md} and the chart latest.png
# (matplotlib, installed into benchmarks/.venv).
#
# --profile W runs only rivulet on workload W (exactly_once_v2, verified as in a
# full run) under `perf record` (cpu-clock samples, DWARF call stacks), writes
# the flame graph benchmarks/results/profile-<w>.svg and the verified result
# line with the top 25 self-time frames to profile-<w>.txt (also printed).
# It leaves latest.* alone; perf.data lives in a temporary directory.
# BENCH_BINARY=PATH uses that rivulet-bench binary instead of building one.
# BENCH_PROFILE_INLINE=0 leaves inlined frames out of the stacks (much faster).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECORDS=2000000
PROFILE=
usage() { echo "usage: $0 [--records N] [--quick] [--profile W1|W2|W3|W4]" >&2; exit 2; }
while (($#)); do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --quick) RECORDS=200000; shift ;;
        --profile) [[ $# -ge 2 ]] || usage; PROFILE="${2,,}"; shift 2 ;;
        *) usage ;;
    esac
done
case "$PROFILE" in ""|w1|w2|w3|w4) ;; *) usage ;; esac
# Release builds get their own target directory (RocksDB compiles once per profile).
export CARGO_TARGET_DIR="${RIVULET_BENCH_TARGET_DIR:-$HOME/.cache/rivulet-bench}"
bash scripts/install-deps.sh
bash scripts/kafka.sh start
# The broker shares the machine: its CPU during each run is reported beside
# the contender's (the scaling rows say how many of the cores were busy).
BENCH_BROKER_PID="$(bash scripts/kafka.sh pid)"
export BENCH_BROKER_PID
# BENCH_BINARY=PATH runs a harness built before (an A/B comparison of two
# builds of the same harness) instead of building this checkout's.
if [[ -n "${BENCH_BINARY:-}" ]]; then
    BENCH="$BENCH_BINARY"
else
    cargo build --release -p rivulet-benchmarks --locked
    BENCH="$CARGO_TARGET_DIR/release/rivulet-bench"
fi
PEER=benchmarks/peers/kafka-streams
VENV=benchmarks/.venv
SERVERS=127.0.0.1:39092
RUN_ID="$(date +%s)"
# Event times start six hours back: inside the broker's retention, and the
# longest input (W3, 5 ms apart) plus its closing trailer ends before now.
BASE_TS=$(( (RUN_ID - 6 * 3600) * 1000 ))
OUT=benchmarks/results
mkdir -p "$OUT"
STATE="$(mktemp -d)"
# On the way out, this run's topics go too (inputs, outputs, the contenders'
# internal topics: every name holds RUN_ID): left, they filled the disk over
# a session of runs until a contender's RocksDB could not write.
trap 'rm -rf "$STATE"; bash scripts/kafka.sh delete-topics ".*$RUN_ID.*" || echo "[run.sh] could not delete the topics of run $RUN_ID" >&2' EXIT
# R1 restores a changelog of one entry per input record: 1,000,000 (--quick: the quick size).
R1_RECORDS=$(( RECORDS < 1000000 ? RECORDS : 1000000 ))
# F1's store: as many distinct words; its consumers' session time-out and
# heartbeat interval (1 s, not the default 3 s: failure detection varies less).
F1_WORDS=$R1_RECORDS
F1_SESSION_MS=6000
F1_HEARTBEAT_MS=1000
LAT_SECONDS=30
[[ "$RECORDS" -le 200000 ]] && LAT_SECONDS=15
LAT_PASSES="${BENCH_LATENCY_PASSES:-3}"
[[ "$LAT_PASSES" =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_LATENCY_PASSES: a number of passes >= 1, not \`$LAT_PASSES'" >&2; exit 2; }

# The command line of contender $1 on workload $2, guarantee $3, input $4,
# output $5, application id $6, and (raw only) the topic it restores from, $7.
contender() {
    local c="$1" w="$2" g="$3" input="$4" output="$5" app="$6" restore="${7:-}"
    case "$c" in
        kafka-streams) CMD=(java -cp "$PEER_CP" dev.rivulet.bench.Peer "$SERVERS" "$w" "$g" "$input" "$output" "$app" "$STATE/$app") ;;
        quix) CMD=("$VENV/bin/python" benchmarks/peers/quix/peer.py "$SERVERS" "$w" "$g" "$input" "$output" "$app" "$STATE/$app") ;;
        *) CMD=("$BENCH" contender --kind "$c" --workload "$w" --guarantee "$g" --input "$input" --output "$output"
                --app "$app" --state-dir "$STATE/$app" --base-ts "$BASE_TS")
           if [[ -n "$restore" ]]; then CMD+=(--restore-from "$restore"); fi ;;
    esac
}

# --profile: rivulet alone on workload $1 under `perf record -- CONTENDER`;
# the harness verifies the output and, with `--measure child`, measures the
# contender (perf's child), not perf. DWARF call stacks unwind through the
# release profile's line tables, RocksDB, librdkafka and glibc alike (97% of
# W2's samples reach the thread's start); frame pointers would need a
# separate build and still miss the C and C++ code.
profile() {
    local w="$1" tools="${RIVULET_TOOLS:-$HOME/.cache/rivulet-tools}"
    if ! command -v perf >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq linux-perf
    fi
    export PATH="$tools/bin:$PATH"
    if ! command -v inferno-collapse-perf >/dev/null 2>&1; then
        # Not into the benchmark's target directory: a temporary one.
        env -u CARGO_TARGET_DIR cargo install inferno --locked --root "$tools"
    fi
    local input="bench-profile-$w-$RUN_ID" app="bench-rivulet-profile-$w-$RUN_ID" data="$STATE/perf.data"
    local svg="$OUT/profile-$w.svg" text="$OUT/profile-$w.txt" vocabulary=()
    # BENCH_PROFILE_VOCABULARY=V (W2): words drawn from V distinct ones, as
    # the keys scaling rows; the files are then profile-w2-vV.{svg,txt}.
    if [[ -n "${BENCH_PROFILE_VOCABULARY:-}" ]]; then
        vocabulary=(--vocabulary "$BENCH_PROFILE_VOCABULARY")
        svg="$OUT/profile-$w-v$BENCH_PROFILE_VOCABULARY.svg" text="$OUT/profile-$w-v$BENCH_PROFILE_VOCABULARY.txt"
    fi
    echo "[run.sh] preloading $RECORDS records into $input" >&2
    "$BENCH" preload --workload "$w" "${vocabulary[@]}" --topic "$input" --records "$RECORDS" --partitions 8 \
        --base-ts "$BASE_TS"
    contender rivulet "$w" exactly_once_v2 "$input" "$app-out" "$app"
    echo "[run.sh] rivulet $w exactly_once_v2 under perf record" >&2
    "$BENCH" run --workload "$w" "${vocabulary[@]}" --records "$RECORDS" --output "$app-out" --contender rivulet \
        --guarantee exactly_once_v2 --base-ts "$BASE_TS" --measure child \
        -- perf record -F 499 -e cpu-clock -g --call-graph dwarf,16384 -o "$data" -- "${CMD[@]}" > "$STATE/result.json"
    # Inlined frames (through addr2line) double the stacks' depth in Rust code
    # and take minutes; BENCH_PROFILE_INLINE=0 leaves them out (seconds).
    local no_inline=
    [[ "${BENCH_PROFILE_INLINE:-1}" == 0 ]] && no_inline=--no-inline
    echo "[run.sh] unwinding $(du -h "$data" | cut -f1) of samples${no_inline:+ (no inlined frames)}" >&2
    local began=$SECONDS
    perf script $no_inline -i "$data" 2>/dev/null | inferno-collapse-perf > "$STATE/folded"
    echo "[run.sh] unwound in $((SECONDS - began)) s" >&2
    # Folded counts are cpu-clock sample periods, in nanoseconds of CPU.
    inferno-flamegraph --countname "ns of CPU" \
        --title "rivulet ${w^^} exactly_once_v2, $RECORDS records, cpu-clock 499 Hz" \
        --subtitle "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores" \
        < "$STATE/folded" > "$svg"
    {
        cat "$STATE/result.json"
        echo
        echo "Top 25 frames by self time (share of all CPU samples, CPU ms):"
        # Folded lines are `thread;frame;…;leaf NS`; frames may hold spaces.
        awk '{ n = $NF; sub(/ [0-9]+$/, ""); k = split($0, f, ";"); self[f[k]] += n; total += n }
             END { for (s in self) printf "%6.2f%%  %9.1f  %s\n", 100 * self[s] / total, self[s] / 1e6, s }' \
            "$STATE/folded" | sort -rn | awk 'NR <= 25'
    } | tee "$text"
    echo "[run.sh] flame graph: $svg; the above: $text" >&2
    grep -q '"verified":true' "$STATE/result.json"
}
if [[ -n "$PROFILE" ]]; then
    profile "$PROFILE"
    exit
fi

mvn -q -B -f "$PEER/pom.xml" package -DskipTests dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
PEER_CP="$PEER/target/classes:$(cat "$PEER/target/classpath.txt")"
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q quixstreams==3.28.1 matplotlib
: > "$OUT/latest.jsonl"
: > "$OUT/latency.jsonl"
CONTENDERS="${BENCH_CONTENDERS:-raw rivulet kafka-streams quix}"
WORKLOADS="${BENCH_WORKLOADS:-w1 w2 w2q w3 w4 threads keys r1 r2 f1 latency}"
wanted() { [[ " $WORKLOADS " == *" $1 "* ]]; }

for W in w1 w2 w3 w4; do
    wanted "$W" || continue
    INPUT="bench-$W-$RUN_ID"
    echo "[run.sh] preloading $RECORDS records into $INPUT" >&2
    "$BENCH" preload --workload "$W" --topic "$INPUT" --records "$RECORDS" --partitions 8 --base-ts "$BASE_TS"
    GUARANTEES="exactly_once_v2"
    [[ "$W" == w1 ]] && GUARANTEES="at_least_once exactly_once_v2"
    for G in $GUARANTEES; do
        for C in $CONTENDERS; do
            APP="bench-$C-$W-$G-$RUN_ID"
            echo "[run.sh] $C $W $G" >&2
            contender "$C" "$W" "$G" "$INPUT" "$APP-out" "$APP"
            "$BENCH" run --workload "$W" --records "$RECORDS" --output "$APP-out" --contender "$C" --guarantee "$G" \
                --base-ts "$BASE_TS" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
        done
    done
    if [[ "$W" == w2 ]] && wanted w2q && [[ " $CONTENDERS " == *" rivulet "* ]]; then
        APP="bench-rivulet-w2q-$RUN_ID"
        echo "[run.sh] rivulet w2 exactly_once_v2 with 1000 gets/s" >&2
        contender rivulet w2 exactly_once_v2 "$INPUT" "$APP-out" "$APP"
        CMD+=(--query-rate 1000)
        "$BENCH" run --workload w2 --records "$RECORDS" --output "$APP-out" --contender rivulet+queries \
            --guarantee exactly_once_v2 --base-ts "$BASE_TS" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
    fi
done

# Scaling rows (rivulet, W2, exactly_once_v2, RECORDS lines each): `threads`
# on W2's input with num.stream.threads=1 and 2, back to back; `keys` on
# inputs whose words come from larger vocabularies (the rows name the
# distinct words the store ends with).
if [[ " $CONTENDERS " == *" rivulet "* ]] && { wanted threads || wanted keys; }; then
    G=exactly_once_v2
    if wanted threads; then
        INPUT="bench-w2-$RUN_ID"
        if ! wanted w2; then
            echo "[run.sh] preloading $RECORDS records into $INPUT" >&2
            "$BENCH" preload --workload w2 --topic "$INPUT" --records "$RECORDS" --partitions 8 --base-ts "$BASE_TS"
        fi
        for T in 1 2; do
            APP="bench-rivulet-threads$T-$RUN_ID"
            echo "[run.sh] rivulet w2 $G num.stream.threads=$T" >&2
            contender rivulet w2 "$G" "$INPUT" "$APP-out" "$APP"
            CMD+=(--threads "$T")
            "$BENCH" run --workload w2 --records "$RECORDS" --output "$APP-out" --contender rivulet --guarantee "$G" \
                --scaling threads --threads "$T" --base-ts "$BASE_TS" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
            rm -rf "${STATE:?}/$APP"
        done
    fi
    for V in 10000 1000000 10000000; do
        wanted keys || break
        INPUT="bench-keys$V-$RUN_ID"
        APP="bench-rivulet-keys$V-$RUN_ID"
        echo "[run.sh] preloading $RECORDS records of $V distinct words into $INPUT" >&2
        "$BENCH" preload --workload w2 --vocabulary "$V" --topic "$INPUT" --records "$RECORDS" --partitions 8 \
            --base-ts "$BASE_TS"
        echo "[run.sh] rivulet w2 $G vocabulary $V" >&2
        contender rivulet w2 "$G" "$INPUT" "$APP-out" "$APP"
        "$BENCH" run --workload w2 --vocabulary "$V" --records "$RECORDS" --output "$APP-out" --contender rivulet \
            --guarantee "$G" --scaling keys --base-ts "$BASE_TS" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
        rm -rf "${STATE:?}/$APP"
    done
fi

# R1: each contender builds its store from R1_RECORDS distinct words (not
# measured), is stopped cleanly, loses its state directory, and is started
# again; measured is the time until it has restored and answered a probe,
# and (its restore lines) the restore phase within it.
G=exactly_once_v2
for C in $CONTENDERS; do
    wanted r1 || break
    INPUT="bench-r1-$C-$RUN_ID"
    APP="bench-$C-r1-$RUN_ID"
    echo "[run.sh] $C r1: loading $R1_RECORDS records" >&2
    "$BENCH" preload --workload r1 --topic "$INPUT" --records "$R1_RECORDS" --partitions 8 --base-ts "$BASE_TS"
    contender "$C" r1 "$G" "$INPUT" "$APP-load" "$APP"
    "$BENCH" run --workload r1 --records "$R1_RECORDS" --output "$APP-load" --contender "$C" --guarantee "$G" \
        --stop term --base-ts "$BASE_TS" -- "${CMD[@]}" > "$STATE/r1-load.json"
    rm -rf "${STATE:?}/$APP"
    "$BENCH" probe --topic "$INPUT"
    echo "[run.sh] $C r1: restoring" >&2
    contender "$C" r1 "$G" "$INPUT" "$APP-out" "$APP" "$APP-load"
    "$BENCH" run --workload r1 --records "$R1_RECORDS" --expect probe --output "$APP-out" --contender "$C" \
        --guarantee "$G" --base-ts "$BASE_TS" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
done

# R2: one stream thread, a key-value store, 2 input partitions; task 0_1's
# changelog partition holds R1_RECORDS entries (written straight into it),
# task 0_0 gets R2_RATE records/s and passes them through the store while
# 0_1 restores; measured are its latencies during the restore and in a
# window as long after it (benchmarks/src/restore_latency.rs). Rivulet only.
R2_RATE=1000
for C in $CONTENDERS; do
    wanted r2 || break
    [[ "$C" == rivulet ]] || continue
    INPUT="bench-r2-$C-$RUN_ID"
    APP="bench-$C-r2-$RUN_ID"
    echo "[run.sh] $C r2: $R1_RECORDS records to restore beside $R2_RATE records/s" >&2
    contender "$C" r2 "$G" "$INPUT" "$APP-out" "$APP"
    "$BENCH" restore-latency --records "$R1_RECORDS" --rate "$R2_RATE" --input "$INPUT" --output "$APP-out" \
        --app "$APP" --contender "$C" --guarantee "$G" -- "${CMD[@]}" >> "$OUT/latest.jsonl"
    rm -rf "${STATE:?}/$APP"
done

# F1: two instances of one application (exactly_once_v2, each its own state
# directory) count F1_WORDS distinct words; one is killed with SIGKILL and one
# word per partition follows; measured is the time from the kill to correct
# counts (benchmarks/src/failover.rs), and from the kill to the survivor's
# rebalance (its status lines). rivulet and kafka-streams run it with
# num.standby.replicas=1, then as rivulet-nostandby / kafka-streams-nostandby with 0.
for C in $CONTENDERS; do
    wanted f1 || break
    [[ "$C" == rivulet || "$C" == kafka-streams ]] || continue
    for S in 1 0; do
        NAME="$C"
        [[ "$S" == 0 ]] && NAME="$C-nostandby"
        INPUT="bench-f1-$NAME-$RUN_ID"
        APP="bench-$NAME-f1-$RUN_ID"
        echo "[run.sh] $NAME f1: $F1_WORDS distinct words, num.standby.replicas=$S" >&2
        # `{instance}` becomes a and b: one state directory each.
        if [[ "$C" == kafka-streams ]]; then
            CMD=(java -cp "$PEER_CP" dev.rivulet.bench.Peer "$SERVERS" f1 "$G" "$INPUT" "$APP-out" "$APP"
                 "$STATE/$APP-{instance}" "$S" "$F1_SESSION_MS" "$F1_HEARTBEAT_MS")
        else
            # Rivulet places standby copies by the instances' endpoints: each
            # gets its HTTP server on a port of its own.
            CMD=("$BENCH" contender --kind rivulet --workload w2 --guarantee "$G" --input "$INPUT" --output "$APP-out"
                 --app "$APP" --state-dir "$STATE/$APP-{instance}" --standby-replicas "$S"
                 --session-timeout-ms "$F1_SESSION_MS" --heartbeat-ms "$F1_HEARTBEAT_MS" --http-listen 127.0.0.1:0
                 --status-ms 100)
        fi
        "$BENCH" failover --records "$F1_WORDS" --input "$INPUT" --output "$APP-out" --contender "$NAME" \
            --guarantee "$G" --standby-replicas "$S" --session-timeout-ms "$F1_SESSION_MS" \
            --heartbeat-ms "$F1_HEARTBEAT_MS" --base-ts "$BASE_TS" \
            -- "${CMD[@]}" >> "$OUT/latest.jsonl"
        rm -rf "${STATE:?}/$APP-a" "${STATE:?}/$APP-b"
    done
done

# Latency: fresh topics, the contender running, then a steady rate well
# below every contender's capacity; LAT_PASSES times, the contenders in turn
# within a pass, so that a slow spell of the machine or broker falls on one
# pass of each rather than on all passes of one contender.
for W in w1 w2 w4; do
    wanted latency || break
    case "$W" in w1) RATE=2000 ;; w2) RATE=500 ;; *) RATE=1000 ;; esac
    for PASS in $(seq 1 "$LAT_PASSES"); do
        for C in $CONTENDERS; do
            INPUT="bench-lat-$W-$C-$RUN_ID-p$PASS"
            APP="bench-$C-lat-$W-$RUN_ID-p$PASS"
            echo "[run.sh] $C $W latency at $RATE/s for $LAT_SECONDS s (pass $PASS of $LAT_PASSES)" >&2
            "$BENCH" preload --workload "$W" --topic "$INPUT" --records 0 --partitions 8 --base-ts "$BASE_TS"
            contender "$C" "$W" "$G" "$INPUT" "$APP-out" "$APP"
            "$BENCH" latency --workload "$W" --input "$INPUT" --output "$APP-out" --rate "$RATE" \
                --seconds "$LAT_SECONDS" --contender "$C" --guarantee "$G" -- "${CMD[@]}" >> "$OUT/latency.jsonl"
        done
    done
done

"$VENV/bin/python" benchmarks/report.py "$OUT" "$RECORDS" "$R1_RECORDS"
