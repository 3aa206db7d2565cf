#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the build and the
# tests need, starts a real Kafka broker, runs the lint gates and
# `cargo test --workspace`, and stops what it started, even on failure.
#
#   scripts/test.sh                 everything
#   scripts/test.sh -p streams-core  extra arguments go to `cargo test`
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/rivulet-target, shared by
# clones), RIVULET_SKIP_LINT=1 to skip fmt/clippy, RIVULET_BOOTSTRAP_SERVERS to
# use an already running broker instead of starting one, SCHEMA_REGISTRY_URL to
# use your own schema registry instead of the vendored Karapace
# (RIVULET_KARAPACE_SRC, default ../shared/vendor/karapace-3.15.2), which
# scripts/registry.sh starts after Kafka. Without either, the registry tests
# say SKIPPED and everything else runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rivulet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/install-deps.sh

STARTED_KAFKA=0
STARTED_REGISTRY=0
# The chaos tests (examples/tests/chaos.rs) start the `chaos` broker instance
# on demand; stop it at the end unless it was already running before.
CHAOS_WAS_RUNNING=0
scripts/kafka.sh --instance chaos status 2>/dev/null && CHAOS_WAS_RUNNING=1
cleanup() {
    local status=$?
    if ((STARTED_REGISTRY)); then
        # SCHEMA_REGISTRY_URL was exported for the tests: unset, so that
        # registry.sh does not take our own Karapace for an external one.
        env -u SCHEMA_REGISTRY_URL scripts/registry.sh stop || true
    fi
    # The registry-outage test runs a Karapace instance of its own.
    RIVULET_REGISTRY_INSTANCE=outage env -u SCHEMA_REGISTRY_URL scripts/registry.sh stop >/dev/null 2>&1 || true
    if ((STARTED_KAFKA)); then
        scripts/kafka.sh stop || true
    fi
    if ((!CHAOS_WAS_RUNNING)); then
        stop_chaos_instance || true
    fi
    exit "$status"
}
trap cleanup EXIT INT TERM

if [[ -z "${RIVULET_BOOTSTRAP_SERVERS:-}" ]]; then
    if scripts/kafka.sh status 2>/dev/null; then
        log "using the Kafka broker already running on 127.0.0.1:39092"
    else
        STARTED_KAFKA=1
        scripts/kafka.sh start
    fi
fi

# The schema registry (and the Python Confluent client the interop tests
# compare with). Exit 3 from either means "not available here": the tests that
# need it print SKIPPED, the rest run.
if [[ -z "${SCHEMA_REGISTRY_URL:-}" ]] && ! scripts/registry.sh status >/dev/null 2>&1; then
    STARTED_REGISTRY=1
fi
set +e
REGISTRY_URL="$(scripts/registry.sh start)"
status=$?
set -e
case $status in
    0) export SCHEMA_REGISTRY_URL="$REGISTRY_URL" ;;
    3) STARTED_REGISTRY=0 ;;
    *) die "the schema registry did not start (exit $status)" ;;
esac
if [[ -n "${SCHEMA_REGISTRY_URL:-}" ]]; then
    set +e
    scripts/pyclient.sh >/dev/null
    status=$?
    set -e
    ((status == 0 || status == 3)) || die "the Python Confluent client did not install (exit $status)"
fi

if [[ "${RIVULET_SKIP_LINT:-0}" != 1 ]]; then
    log "cargo fmt --check"
    cargo fmt --all --check
    log "cargo clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
fi

log "cargo test"
cargo test --workspace --locked "$@"
