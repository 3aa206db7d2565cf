#!/usr/bin/env bash
# Confluent's Python client (confluent-kafka with its Avro, JSON Schema and
# Protobuf serdes) for the interop tests, in a venv shared per machine.
#
#   scripts/pyclient.sh            ensure the venv, print its python's path (stdout)
#   scripts/pyclient.sh run ARGS   run integration-tests/python/sr_client.py ARGS
#                                  with it (see integration-tests/python/README.md)
#
# The venv is $RIVULET_CACHE/pyclient-venv, made with python3.11 (else a python3
# or python3.12 that is 3.11 or 3.12) from the pinned
# integration-tests/python/requirements.txt; it is rebuilt only when that file
# (or the interpreter) changes. With no suitable Python it prints one line saying
# the interop tests will be skipped and exits 3 (failures exit 1).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
source "$HERE/lib.sh"

SKIP_EXIT=3
PYDIR="$ROOT/integration-tests/python"
REQ="$PYDIR/requirements.txt"
VENV="$RIVULET_CACHE/pyclient-venv"
MARKER="$VENV/.requirements-installed"

usage() {
    echo "usage: $0 [run SR_CLIENT_ARGS...]" >&2
    exit 2
}

# stamp PYTHON: identifies what the venv was built from (requirements + interpreter).
stamp() {
    "$1" - "$REQ" <<'EOF'
import hashlib, sys
h = hashlib.sha256(open(sys.argv[1], "rb").read())
h.update(sys.executable.encode())
h.update(sys.version.encode())
print(h.hexdigest())
EOF
}

venv_current() {
    [[ -x "$VENV/bin/python" && -f "$MARKER" && "$(cat "$MARKER")" == "$1" ]]
}

ensure_venv() {
    local python want
    if ! python="$(find_python)"; then
        echo "[pyclient.sh] SKIPPING PYTHON CLIENT INTEROP TESTS: python3.11 or python3.12 is needed and neither was found; install one (e.g. apt-get install python3.11-venv) to run them" >&2
        exit "$SKIP_EXIT"
    fi
    want="$(stamp "$python")"
    venv_current "$want" && return 0

    mkdir -p "$(dirname "$VENV")"
    # One installer at a time; the others wait and then find it done.
    exec {lock_fd}>"$VENV.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w 600 "$lock_fd" || die "timed out waiting for $VENV.lock"
    fi
    if ! venv_current "$want"; then
        local t0=$SECONDS pip_log="$RIVULET_CACHE/pyclient-pip.log"
        log "creating $VENV with $("$python" --version 2>&1) from $REQ"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
        if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ" \
            >"$pip_log" 2>&1 </dev/null; then
            tail -n 30 "$pip_log" >&2
            rm -rf "$VENV"
            die "pip install failed; see $pip_log"
        fi
        "$VENV/bin/python" -c 'import confluent_kafka.schema_registry.avro, confluent_kafka.schema_registry.protobuf, confluent_kafka.schema_registry.json_schema, grpc_tools.protoc' \
            || die "the venv $VENV was installed but the client does not import"
        echo "$want" >"$MARKER"
        log "installed the Python client in $((SECONDS - t0)) s"
    fi
    exec {lock_fd}>&-
}

case "${1:-}" in
    "")
        ensure_venv
        echo "$VENV/bin/python"
        ;;
    run)
        shift
        ensure_venv
        exec "$VENV/bin/python" "$PYDIR/sr_client.py" "$@"
        ;;
    *) usage ;;
esac
