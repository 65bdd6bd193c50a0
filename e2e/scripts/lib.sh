# Shared helpers for the service scripts in this folder. Source it; do not run it.
#
# Layout on disk (both outside the repository):
#   $CONFAB_CACHE/<service>-<version>/  built or downloaded binaries, kept between runs
#   $CONFAB_RUN/<service>/              data, logs and pid of a running service
#   $CONFAB_RUN/<service>.env           `export VAR=...` lines that tests read
#
# Each service script answers `install` (idempotent, cached), `start`
# (free loopback port, waits until ready, writes its .env) and `stop`.

set -euo pipefail

: "${CONFAB_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/confab}"
: "${CONFAB_RUN:=$CONFAB_CACHE/run}"
export CONFAB_CACHE CONFAB_RUN

# The real node (node.sh): its name, and the host address it and the control
# plane advertise — on a bridge of its own, so pods reach the API server and
# the host's test services at it. Nothing outside this machine has it.
CONFAB_NODE_NAME=confab-node-0
CONFAB_NODE_IP=10.200.0.1

# node_address: puts $CONFAB_NODE_IP on this host (idempotent; needs root), on
# a bridge with no ports (these kernels have no dummy links). Servers that
# advertise it (Cassandra) and the node start it.
node_address() {
  local link=confab0
  ip link show "$link" >/dev/null 2>&1 || ip link add "$link" type bridge ||
    die "cannot add the node address $CONFAB_NODE_IP (needs root)"
  # Not `ip ... | grep -q`: under pipefail, grep quitting early fails the pipe.
  [[ $(ip -4 addr show dev "$link") == *"inet $CONFAB_NODE_IP/"* ]] ||
    ip addr add "$CONFAB_NODE_IP/32" dev "$link"
  ip link set "$link" up
}
mkdir -p "$CONFAB_CACHE" "$CONFAB_RUN"

# Go builds share one module and build cache outside the repo.
export GOPATH="${GOPATH:-$CONFAB_CACHE/go}"
export GOMODCACHE="${GOMODCACHE:-$GOPATH/pkg/mod}"
export GOCACHE="${GOCACHE:-$CONFAB_CACHE/go-build}"
export GOFLAGS="${GOFLAGS:--mod=mod}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# need_go: if the local go is older than $GO_MIN, let the go command fetch
# $GO_FALLBACK_TOOLCHAIN from the module proxy (GOTOOLCHAIN). Callers set both.
need_go() {
  local have; have=$(go env GOVERSION); have=${have#go}
  if [ "$(printf '%s\n' "$GO_MIN" "$have" | sort -V | head -n1)" != "$GO_MIN" ]; then
    log "go $have is older than $GO_MIN: using GOTOOLCHAIN=$GO_FALLBACK_TOOLCHAIN"
    export GOTOOLCHAIN=$GO_FALLBACK_TOOLCHAIN
  fi
}

# free_port [N]: prints N (default 1) distinct TCP ports on 127.0.0.1 that
# nothing listens on right now, one per line, chosen below the kernel's ephemeral range: a port from that range (what
# binding port 0 gives) can be taken by any outgoing connection between picking
# it and the server binding it, as one etcd client connection once took kwok's.
free_port() {
  python3 - "${1:-1}" <<'PY'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except OSError:
    low = 32768
low = max(low, 12000)
want, found = int(sys.argv[1]), []
for _ in range(1000):
    port = random.randrange(10000, low)
    if port in found:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        found.append(port)
    except OSError:
        pass
    finally:
        s.close()
    if len(found) == want:
        break
else:
    raise SystemExit("no free ports below the ephemeral range")
print("\n".join(map(str, found)))
PY
}

# wait_for SECONDS DESCRIPTION COMMAND...: retries COMMAND once a second until it succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$what not ready after ${secs}s"
  return 1
}

# stop_pidfile FILE: stops the process whose pid FILE holds, if it runs.
stop_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# show_log_tail FILE: prints the end of a service log to help diagnose a failure.
show_log_tail() {
  [ -f "$1" ] && { log "--- last lines of $1 ---"; tail -n 40 "$1" >&2; } || true
}

# Processes a service script starts, each with NAME.log and NAME.pid under
# the calling script's $RUN folder.

# run_bg NAME COMMAND...: starts a process, output to NAME.log, pid to NAME.pid.
run_bg() {
  local name=$1; shift
  log "starting $name"
  nohup "$@" >"$RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
}

# alive NAME: the process NAME started still runs.
alive() { kill -0 "$(cat "$RUN/$1.pid" 2>/dev/null)" 2>/dev/null; }

# ready NAME SECONDS COMMAND...: waits for COMMAND, failing early if NAME died.
ready() {
  local name=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    alive "$name" || { show_log_tail "$RUN/$name.log"; die "$name exited during start-up"; }
    sleep 1
  done
  show_log_tail "$RUN/$name.log"
  die "$name not ready after ${secs}s"
}

# json_holds EXPR: succeeds when the Python expression EXPR holds for the JSON
# object `o` read from standard input (e.g. a Kubernetes object's status).
json_holds() {
  python3 -c 'import json, sys; o = json.load(sys.stdin); sys.exit(0 if eval(sys.argv[1]) else 1)' "$1"
}

# NODE_READY: the json_holds expression "this Node's Ready condition is True".
NODE_READY='any(c["type"] == "Ready" and c["status"] == "True" for c in o.get("status", {}).get("conditions") or [])'
