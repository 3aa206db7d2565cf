#!/usr/bin/env bash
# A Confluent-compatible schema registry for the tests.
#
#   scripts/registry.sh start|stop|status|url
#
#   start   make a registry available (a no-op when it already answers); on
#           success prints its URL on stdout, everything else goes to stderr
#   stop    stop the registry this script started
#   status  exit 0 when GET <url>/subjects answers 200
#   url     print the registry's base URL
#
# Which registry, in this order:
#   1. SCHEMA_REGISTRY_URL set: that registry; start/stop only log it.
#   2. Karapace from RIVULET_KARAPACE_SRC (default: ../shared/vendor/karapace-3.15.2
#      next to the repository, see its README.md), run with its start.sh/stop.sh on
#      127.0.0.1:${RIVULET_REGISTRY_PORT:-28081} against the broker at
#      ${RIVULET_BOOTSTRAP_SERVERS:-127.0.0.1:39092} (what `scripts/kafka.sh start` runs).
#      It needs Python 3.11 or 3.12; the venv is shared per machine in
#      $RIVULET_CACHE/karapace-venv, its state (config, log, PID) is in $RIVULET_RUN/karapace.
#   3. Neither: `start` prints one line saying the registry tests will be skipped
#      and exits 3 (failures exit 1).
#
# RIVULET_REGISTRY_INSTANCE=NAME runs a second Karapace of its own (state, schemas
# topic and group suffixed with NAME; give it its own RIVULET_REGISTRY_PORT), e.g.
# for a test that stops its registry mid-run without disturbing the others.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/lib.sh"

SKIP_EXIT=3
PORT="${RIVULET_REGISTRY_PORT:-28081}"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "RIVULET_REGISTRY_PORT must be a number: $PORT"
BOOTSTRAP="${RIVULET_BOOTSTRAP_SERVERS:-127.0.0.1:39092}"
# The vendored Karapace sits next to the repository; a clone made elsewhere
# (a CI checkout) finds it next to the repository it was cloned from.
default_karapace_src() {
    local vendored=shared/vendor/karapace-3.15.2 origin
    if [[ ! -d "$ROOT/../$vendored" ]]; then
        origin="$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)"
        if [[ -n "$origin" && -d "$origin/../$vendored" ]]; then
            echo "$origin/../$vendored"
            return
        fi
    fi
    echo "$ROOT/../$vendored"
}
KARAPACE_SRC="${RIVULET_KARAPACE_SRC:-$(default_karapace_src)}"
INSTANCE="${RIVULET_REGISTRY_INSTANCE:-}"
[[ "$INSTANCE" =~ ^[A-Za-z0-9_]*$ ]] || die "RIVULET_REGISTRY_INSTANCE must be letters, digits or _: $INSTANCE"
SUFFIX="${INSTANCE:+-$INSTANCE}"
STATE="$RIVULET_RUN/karapace$SUFFIX"
VENV="$RIVULET_CACHE/karapace-venv"
LOCKFILE="$RIVULET_RUN/karapace$SUFFIX.lock"
TOPIC="_schemas_rivulet${INSTANCE:+_$INSTANCE}"
GROUP="rivulet-schema-registry$SUFFIX"
EXTERNAL_URL="${SCHEMA_REGISTRY_URL:-}"
EXTERNAL_URL="${EXTERNAL_URL%/}"

usage() {
    echo "usage: $0 start|stop|status|url" >&2
    exit 2
}

registry_url() {
    if [[ -n "$EXTERNAL_URL" ]]; then
        echo "$EXTERNAL_URL"
    else
        echo "http://127.0.0.1:$PORT"
    fi
}

# http_code URL: the HTTP status of a GET, 000 when nothing answers.
http_code() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true
        return 0
    fi
    local py
    py="$(command -v python3 || true)"
    if [[ -z "$py" ]]; then
        echo 000
        return 0
    fi
    "$py" - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

healthy() { [[ "$(http_code "$(registry_url)/subjects")" == 200 ]]; }

# skip REASON: no registry can be provided here; say so once, loudly.
skip() {
    echo "[registry.sh] SKIPPING SCHEMA REGISTRY TESTS: $1; to run them, set SCHEMA_REGISTRY_URL=http://host:port (a running Confluent-compatible registry) or RIVULET_KARAPACE_SRC=<the Karapace 3.15.2 folder with start.sh> with python3.11 (or 3.12) installed" >&2
    exit "$SKIP_EXIT"
}

# kafka_cluster_id: the id of the cluster at $BOOTSTRAP, empty when it cannot be had
# (asked with the confluent-kafka in Karapace's venv).
kafka_cluster_id() {
    [[ -x "$VENV/bin/python" ]] || return 0
    "$VENV/bin/python" - "$BOOTSTRAP" <<'EOF' 2>/dev/null || true
import sys
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "socket.timeout.ms": 3000})
print(admin.describe_cluster(request_timeout=3).result().cluster_id)
EOF
}

# same_kafka: the running Karapace still has the Kafka cluster it was started
# against. `scripts/kafka.sh start` formats fresh storage, so a Karapace that
# outlived its broker would serve schemas that the new cluster does not hold.
same_kafka() {
    local started now
    started="$(cat "$STATE/kafka-cluster-id" 2>/dev/null || true)"
    [[ -n "$started" ]] || return 0
    now="$(kafka_cluster_id)"
    [[ -z "$now" || "$now" == "$started" ]]
}

karapace_available() { [[ -d "$KARAPACE_SRC" && -f "$KARAPACE_SRC/start.sh" && -f "$KARAPACE_SRC/stop.sh" ]]; }

start() {
    if [[ -n "$EXTERNAL_URL" ]]; then
        log "using the registry at $EXTERNAL_URL (SCHEMA_REGISTRY_URL); not starting Karapace"
        healthy || log "warning: GET $EXTERNAL_URL/subjects does not answer 200"
        registry_url
        return 0
    fi
    if healthy && same_kafka; then
        log "registry already running on $(registry_url)"
        registry_url
        return 0
    fi
    karapace_available || skip "no Karapace at $KARAPACE_SRC (RIVULET_KARAPACE_SRC) and SCHEMA_REGISTRY_URL is not set"
    local python
    python="$(find_python)" || skip "Karapace needs python3.11 or python3.12 and neither was found"
    KARAPACE_SRC="$(cd "$KARAPACE_SRC" && pwd)"

    # One starter at a time (tests of several processes may call this at once).
    # The lock's descriptor is closed for start.sh so that Karapace does not inherit it.
    exec {lock_fd}>"$LOCKFILE"
    if command -v flock >/dev/null 2>&1; then
        flock -w 300 "$lock_fd" || die "timed out waiting for $LOCKFILE"
    fi

    local host="${BOOTSTRAP%:*}" kport="${BOOTSTRAP##*:}"
    tcp_open "$host" "$kport" \
        || die "no Kafka broker at $BOOTSTRAP (RIVULET_BOOTSTRAP_SERVERS); start one with scripts/kafka.sh start"
    if healthy; then
        if same_kafka; then
            log "Karapace already running on $(registry_url)"
            registry_url
            return 0
        fi
        log "the Kafka cluster at $BOOTSTRAP was re-created since Karapace started; restarting Karapace"
        bash "$KARAPACE_SRC/stop.sh" "$STATE" >&2 {lock_fd}>&-
    elif pid_alive "$STATE/karapace.pid"; then
        # Started but not (yet) answering 200: give it the time start.sh would, then replace it.
        if wait_for "Karapace on $(registry_url)" 60 healthy; then
            registry_url
            return 0
        fi
        log "Karapace (pid $(cat "$STATE/karapace.pid")) does not answer; restarting it"
        bash "$KARAPACE_SRC/stop.sh" "$STATE" >&2 {lock_fd}>&-
    fi
    if tcp_open 127.0.0.1 "$PORT"; then
        die "port $PORT is taken by something that is not a healthy registry; set RIVULET_REGISTRY_PORT"
    fi

    mkdir -p "$STATE"
    log "starting Karapace ($KARAPACE_SRC) on $(registry_url), Kafka $BOOTSTRAP, topic $TOPIC (log: $STATE/karapace.log)"
    # Karapace reads any KARAPACE_<KEY> as a config override: clear stray ones.
    local var
    while IFS= read -r var; do
        unset "$var"
    done < <(compgen -e | grep '^KARAPACE_' || true)
    local t0=$SECONDS setsid_cmd=()
    # setsid: the registry must outlive this script but not take a terminal's signals.
    if setsid --help 2>&1 | grep -q -- --wait; then
        setsid_cmd=(setsid --wait)
    fi
    # start.sh's stdout goes to stderr: a caller reading our stdout only gets the URL.
    if ! KARAPACE_PYTHON="$python" KARAPACE_VENV="$VENV" \
        KARAPACE_TOPIC_NAME="$TOPIC" KARAPACE_GROUP_ID="$GROUP" \
        "${setsid_cmd[@]}" bash "$KARAPACE_SRC/start.sh" "$BOOTSTRAP" "$PORT" "$STATE" \
        </dev/null >&2 {lock_fd}>&-; then
        die "Karapace did not start (log: $STATE/karapace.log)"
    fi
    kafka_cluster_id >"$STATE/kafka-cluster-id"
    log "Karapace ready on $(registry_url) after $((SECONDS - t0)) s"
    registry_url
}

stop() {
    if [[ -n "$EXTERNAL_URL" ]]; then
        log "using the registry at $EXTERNAL_URL (SCHEMA_REGISTRY_URL); nothing to stop"
        return 0
    fi
    if karapace_available; then
        bash "$KARAPACE_SRC/stop.sh" "$STATE" >&2
        rm -f "$STATE/kafka-cluster-id"
    else
        stop_pid "$STATE/karapace.pid" Karapace
    fi
}

status() {
    if healthy; then
        log "registry at $(registry_url) is ready"
    else
        log "registry at $(registry_url) is not ready"
        return 1
    fi
}

cmd="${1:-}"
[[ $# -eq 1 ]] || usage
case "$cmd" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    url) registry_url ;;
    *) usage ;;
esac
