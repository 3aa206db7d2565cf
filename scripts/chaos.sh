#!/usr/bin/env bash
# One chaos scenario of examples/tests/chaos.rs, with bigger sizes for a local
# soak run. Starts the default broker when none answers (and stops it after);
# the scenarios that take a broker down start the `chaos` instance themselves.
#
#   scripts/chaos.sh --list
#   scripts/chaos.sh NAME [--words N] [--kills N] [--outages N] [--down-secs S]
#                         [--seed N] [--timeout-secs S] [--release]
#
#   --words N         words of input (each scenario has its own default)
#   --kills N         SIGKILLs (kill9_loop_two_instances)
#   --outages N       broker outages (broker_restart_*)
#   --down-secs S     how long each broker outage lasts (default 15)
#   --seed N          the random seed (kill moments, input); printed by each run
#   --timeout-secs S  deadline of each wait for output (default: scaled with --words)
#   --release         build and run the release profile
#
# These become RIVULET_CHAOS_WORDS, _KILLS, _OUTAGES, _DOWN_SECS, _SEED and
# _TIMEOUT_SECS for the test, which prints where the apps' logs are kept.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rivulet-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

usage() {
    sed -n '6,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

PROFILE=()
if [[ "${1:-}" == --list ]]; then
    shift
    [[ "${1:-}" == --release ]] && PROFILE=(--release)
    cargo test -q "${PROFILE[@]}" --locked -p rivulet-examples --test chaos -- --list 2>/dev/null \
        | sed -n 's/: test$//p'
    exit "${PIPESTATUS[0]}"
fi
[[ $# -ge 1 && "$1" != -* ]] || usage
NAME="$1"; shift
while (($#)); do
    case "$1" in
        --words) export RIVULET_CHAOS_WORDS="${2:?}"; shift 2 ;;
        --kills) export RIVULET_CHAOS_KILLS="${2:?}"; shift 2 ;;
        --outages) export RIVULET_CHAOS_OUTAGES="${2:?}"; shift 2 ;;
        --down-secs) export RIVULET_CHAOS_DOWN_SECS="${2:?}"; shift 2 ;;
        --seed) export RIVULET_CHAOS_SEED="${2:?}"; shift 2 ;;
        --timeout-secs) export RIVULET_CHAOS_TIMEOUT_SECS="${2:?}"; shift 2 ;;
        --release) PROFILE=(--release); shift ;;
        *) usage ;;
    esac
done

# Build first, so that the broker does not wait on the compiler.
cargo test "${PROFILE[@]}" --locked -p rivulet-examples --test chaos --no-run
known="$(cargo test -q "${PROFILE[@]}" --locked -p rivulet-examples --test chaos -- --list 2>/dev/null | sed -n 's/: test$//p')"
grep -qx "$NAME" <<<"$known" || die "no chaos scenario \`$NAME\`; scenarios: $(echo $known)"

STARTED_KAFKA=0
CHAOS_WAS_RUNNING=0
scripts/kafka.sh --instance chaos status 2>/dev/null && CHAOS_WAS_RUNNING=1
cleanup() {
    local status=$?
    ((STARTED_KAFKA)) && { scripts/kafka.sh stop || true; }
    ((CHAOS_WAS_RUNNING)) || stop_chaos_instance || true
    exit "$status"
}
trap cleanup EXIT INT TERM
if [[ -z "${RIVULET_BOOTSTRAP_SERVERS:-}" ]] && ! scripts/kafka.sh status 2>/dev/null; then
    STARTED_KAFKA=1
    scripts/kafka.sh start
fi

log "running $NAME"
started=$SECONDS
cargo test "${PROFILE[@]}" --locked -p rivulet-examples --test chaos -- --exact "$NAME" --nocapture
log "$NAME passed in $((SECONDS - started)) s"
