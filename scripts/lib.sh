# Shared helpers for the service scripts. Sourced, not run.
# Everything the scripts fetch or start lives under RIVULET_CACHE (jars, binaries)
# and RIVULET_RUN (data, logs, PID files) so that a second start is a no-op.

RIVULET_CACHE="${RIVULET_CACHE:-$HOME/.cache/rivulet}"
RIVULET_RUN="${RIVULET_RUN:-${TMPDIR:-/tmp}/rivulet-services}"
mkdir -p "$RIVULET_CACHE" "$RIVULET_RUN"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECS COMMAND...: polls COMMAND until it succeeds
# (logs "DESCRIPTION is ready" unless DESCRIPTION is empty).
wait_for() {
    local what="$1" timeout="$2"; shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.5
    done
    [[ -z "$what" ]] || log "$what is ready"
}

# pid_alive FILE: the PID recorded in FILE is a running process.
pid_alive() {
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# stop_pid FILE NAME: stops the process whose PID the start script recorded.
stop_pid() {
    local file="$1" name="$2"
    if pid_alive "$file"; then
        local pid; pid="$(cat "$file")"
        log "stopping $name (pid $pid)"
        kill "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

# tcp_open HOST PORT: something accepts connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# apt_install PKG...: installs the Debian packages that are missing.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# stop_chaos_instance: stops the `chaos` broker instance that the chaos tests
# start on demand, once no test (of any process) holds its lock.
stop_chaos_instance() {
    local here lock
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    lock="$("$here/kafka.sh" --instance chaos lockfile)"
    if command -v flock >/dev/null 2>&1; then
        flock -w 900 "$lock" "$here/kafka.sh" --instance chaos stop
    else
        "$here/kafka.sh" --instance chaos stop
    fi
}

# find_python: the absolute path of a Python 3.11, else 3.12 (what Karapace
# and the Confluent client venvs run on). `command -v` is not enough: pyenv
# puts shims for every installed version on PATH, and a shim fails when its
# version is not selected.
find_python() {
    local candidate exe
    for candidate in python3.11 python3 python3.12; do
        exe="$("$candidate" -c 'import sys
if sys.version_info[:2] not in ((3, 11), (3, 12)):
    sys.exit(1)
print(sys.executable)' 2>/dev/null)" || continue
        [[ -n "$exe" && -x "$exe" ]] && { echo "$exe"; return 0; }
    done
    return 1
}
