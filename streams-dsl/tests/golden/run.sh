#!/usr/bin/env bash
# Regenerates expected/*.txt by running every scenario through Apache Kafka
# Streams' own TopologyTestDriver (jars from Maven Central). The Rust DSL tests
# (streams-dsl/tests/golden.rs) must produce exactly these records.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
mvn -q -B compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
scenarios=()
for f in scenarios/*.in; do scenarios+=("$(basename "$f" .in)"); done
java -cp "target/classes:$(cat target/classpath.txt)" dev.rivulet.golden.Golden "$HERE" "${scenarios[@]}"
