#!/usr/bin/env bash
# The benchmark harness: one broker, preloaded input, each contender in turn on
# the same data, outputs verified, results in benchmarks/results/latest.{json,md}.
#
#   ./benchmarks/run.sh [--records N] [--quick]
#
# Contenders so far: `raw` (a hand-written rdkafka loop with the same commits),
# `rivulet` (release build) and `kafka-streams` (Apache Kafka Streams 4.1.1,
# benchmarks/peers/kafka-streams, default settings plus the guarantee) and
# `quix` (Quix Streams 3.28.1 in benchmarks/.venv, benchmarks/peers/quix).
# Workloads: W1 stateless (at_least_once and exactly_once_v2), W2 word count
# (exactly_once_v2).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
RECORDS=2000000
while (($#)); do
    case "$1" in
        --records) RECORDS="$2"; shift 2 ;;
        --quick) RECORDS=200000; shift ;;
        *) echo "usage: $0 [--records N] [--quick]" >&2; exit 2 ;;
    esac
done
# Release builds get their own target directory (RocksDB compiles once per profile).
export CARGO_TARGET_DIR="${RIVULET_BENCH_TARGET_DIR:-$HOME/.cache/rivulet-bench}"
bash scripts/install-deps.sh
bash scripts/kafka.sh start
cargo build --release -p rivulet-benchmarks --locked
BENCH="$CARGO_TARGET_DIR/release/rivulet-bench"
PEER=benchmarks/peers/kafka-streams
mvn -q -B -f "$PEER/pom.xml" package -DskipTests dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
PEER_CP="$PEER/target/classes:$(cat "$PEER/target/classpath.txt")"
VENV=benchmarks/.venv
if [[ ! -x "$VENV/bin/python" ]]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q quixstreams==3.28.1
SERVERS=127.0.0.1:39092
RUN_ID="$(date +%s)"
OUT=benchmarks/results
mkdir -p "$OUT"
: > "$OUT/latest.jsonl"
STATE="$(mktemp -d)"
trap 'rm -rf "$STATE"' EXIT

for W in w1 w2; do
    INPUT="bench-$W-$RUN_ID"
    echo "[run.sh] preloading $RECORDS records into $INPUT" >&2
    "$BENCH" preload --workload "$W" --topic "$INPUT" --records "$RECORDS" --partitions 8
    GUARANTEES="exactly_once_v2"
    [[ "$W" == w1 ]] && GUARANTEES="at_least_once exactly_once_v2"
    for G in $GUARANTEES; do
        for C in raw rivulet kafka-streams quix; do
            APP="bench-$C-$W-$G-$RUN_ID"
            OUTPUT="$APP-out"
            echo "[run.sh] $C $W $G" >&2
            if [[ "$C" == kafka-streams ]]; then
                CMD=(java -cp "$PEER_CP" dev.rivulet.bench.Peer "$SERVERS" "$W" "$G" "$INPUT" "$OUTPUT" "$APP" "$STATE/$APP")
            elif [[ "$C" == quix ]]; then
                CMD=("$VENV/bin/python" benchmarks/peers/quix/peer.py "$SERVERS" "$W" "$G" "$INPUT" "$OUTPUT" "$APP" "$STATE/$APP")
            else
                CMD=("$BENCH" contender --kind "$C" --workload "$W" --guarantee "$G" --input "$INPUT" --output "$OUTPUT"
                    --app "$APP" --state-dir "$STATE/$APP")
            fi
            "$BENCH" run --workload "$W" --records "$RECORDS" --output "$OUTPUT" --contender "$C" --guarantee "$G" \
                -- "${CMD[@]}" >> "$OUT/latest.jsonl"
        done
    done
done

python3 - "$OUT" "$RECORDS" <<'PY'
import json, os, platform, subprocess, sys
out, records = sys.argv[1], int(sys.argv[2])
rows = [json.loads(l) for l in open(os.path.join(out, "latest.jsonl")) if l.strip()]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
machine = {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
           "rustc": subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip(),
           "kafka": "4.1.1", "records": records}
json.dump({"machine": machine, "results": rows}, open(os.path.join(out, "latest.json"), "w"), indent=2)
with open(os.path.join(out, "latest.md"), "w") as f:
    f.write(f"Machine: {machine['cores']} cores, {cpu}; {machine['rustc']}; Kafka {machine['kafka']}; {records} records\n\n")
    f.write("| workload | guarantee | contender | wall s | records/s | CPU s | CPU µs/record | peak RSS MB | verified |\n|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        f.write(f"| {r['workload']} | {r['guarantee']} | {r['contender']} | {r['wall_s']:.1f} | {r['records_per_s']:.0f} | {r['cpu_s']:.1f} | {r['cpu_us_per_record']:.2f} | {r['peak_rss_mb']:.0f} | {r['verified']} |\n")
print(open(os.path.join(out, "latest.md")).read())
PY
