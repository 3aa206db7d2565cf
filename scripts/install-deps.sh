#!/usr/bin/env bash
# Installs what building and testing Rivulet needs and is missing:
# cmake and a C/C++ toolchain (librdkafka is built from source), clang and
# libclang (RocksDB's bindings), libcurl/OpenSSL/zlib headers (librdkafka),
# a JDK and Maven (the real Kafka broker runs from Maven Central jars),
# and rustfmt/clippy for the lint gates. Idempotent.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/lib.sh"

apt_install build-essential cmake pkg-config clang libclang-dev \
    libcurl4-openssl-dev libssl-dev zlib1g-dev libzstd-dev liblz4-dev

command -v java >/dev/null 2>&1 || apt_install openjdk-17-jdk-headless
command -v mvn >/dev/null 2>&1 || apt_install maven

if command -v rustup >/dev/null 2>&1; then
    for component in rustfmt clippy; do
        rustup component list --installed 2>/dev/null | grep -q "^$component" \
            || rustup component add "$component" >/dev/null 2>&1 \
            || log "warning: could not add the rustup component $component"
    done
fi
