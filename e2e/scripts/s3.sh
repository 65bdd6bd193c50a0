#!/usr/bin/env bash
# S3-compatible object storage for the media tests: s3s-fs (a Rust S3 server
# over a folder, from crates.io) with signature checks on.
#
# Usage: e2e/scripts/s3.sh install|start|stop
#   install  builds s3s-fs into $CONFAB_CACHE/s3s-fs-<version>/ (cargo
#            install; a second run only checks it).
#   start    runs it on a free loopback port over a fresh folder with the
#            buckets the tests use (confab-media-01 … -16), and writes
#            $CONFAB_RUN/s3.env (CONFAB_S3_ENDPOINT, CONFAB_S3_ACCESS_KEY,
#            CONFAB_S3_SECRET_KEY, CONFAB_S3_BUCKETS, CONFAB_S3_DATA).
#   stop     stops it; the log stays in $CONFAB_RUN/s3/s3.log.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

version=0.14.1 # 0.17 needs a newer rustc than the workspace's
dir="$CONFAB_CACHE/s3s-fs-$version"
bin="$dir/bin/s3s-fs"
run="$CONFAB_RUN/s3"
pidfile="$run/s3.pid"
logfile="$run/s3.log"
envfile="$CONFAB_RUN/s3.env"
buckets=16

cmd_install() {
  if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
    log "s3s-fs cached: $("$bin" --version) ($bin)"
    return 0
  fi
  log "building s3s-fs $version from crates.io (a few minutes on 2 cores)"
  local target; target=$(mktemp -d)
  CARGO_TARGET_DIR="$target" cargo install "s3s-fs@$version" --features binary \
    --locked --root "$dir" --quiet || { rm -rf "$target"; die "cargo install s3s-fs failed"; }
  rm -rf "$target"
  "$bin" --version >/dev/null || die "the installed s3s-fs does not run"
  log "s3s-fs installed: $bin"
}

listening() {
  python3 - "$1" <<'PY'
import socket, sys
socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
PY
}

cmd_start() {
  [ -x "$bin" ] || die "s3s-fs not installed: run $0 install"
  cmd_stop
  rm -rf "$run"
  mkdir -p "$run/data"
  local i
  for ((i = 1; i <= buckets; i++)); do
    mkdir -p "$run/data/$(printf 'confab-media-%02d' "$i")"
  done
  local port key secret
  port=$(free_port)
  key="confab$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  secret=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
  log "starting s3s-fs on 127.0.0.1:$port"
  "$bin" --host 0.0.0.0 --port "$port" --access-key "$key" --secret-key "$secret" \
    "$run/data" >"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  if ! wait_for 30 "s3s-fs" listening "$port"; then
    show_log_tail "$logfile"
    cmd_stop
    die "s3s-fs did not start"
  fi
  {
    printf 'export CONFAB_S3_ENDPOINT=http://127.0.0.1:%s\n' "$port"
    printf 'export CONFAB_S3_ACCESS_KEY=%s\n' "$key"
    printf 'export CONFAB_S3_SECRET_KEY=%s\n' "$secret"
    printf 'export CONFAB_S3_BUCKETS=%s\n' "$buckets"
    # Tests look here for multipart parts an aborted upload must not leave.
    printf 'export CONFAB_S3_DATA=%s\n' "$run/data"
  } >"$envfile"
  log "s3s-fs ready: CONFAB_S3_ENDPOINT=http://127.0.0.1:$port"
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
