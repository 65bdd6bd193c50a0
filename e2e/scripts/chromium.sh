#!/usr/bin/env bash
# Headless Chromium and ChromeDriver (Debian's packages) for the web client's
# end-to-end tests.
#
# Usage: e2e/scripts/chromium.sh install|start|stop
#   install  apt-get installs chromium and chromium-driver when missing.
#   start    runs chromedriver on a free loopback port and writes
#            $CONFAB_RUN/chromium.env (CONFAB_WEBDRIVER, CONFAB_CHROMIUM).
#   stop     stops chromedriver; its log stays in $CONFAB_RUN/chromium/.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

run="$CONFAB_RUN/chromium"
pidfile="$run/chromedriver.pid"
logfile="$run/chromedriver.log"
envfile="$CONFAB_RUN/chromium.env"

install() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium: $(chromium --version 2>/dev/null | head -1)"
    return
  fi
  command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] ||
    die "chromium and chromedriver are missing; install Debian's chromium and chromium-driver"
  log "installing chromium and chromium-driver from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >"$CONFAB_CACHE/apt-chromium.log" 2>&1 ||
    { tail -20 "$CONFAB_CACHE/apt-chromium.log" >&2; die "apt-get install chromium failed"; }
}

start() {
  stop_pidfile "$pidfile"
  rm -rf "$run" && mkdir -p "$run"
  local port; port=$(free_port)
  chromedriver --port="$port" --allowed-ips=127.0.0.1 >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  if ! wait_for 30 chromedriver curl -sf "http://127.0.0.1:$port/status"; then
    show_log_tail "$logfile"
    die "chromedriver did not start"
  fi
  {
    echo "export CONFAB_WEBDRIVER=http://127.0.0.1:$port"
    echo "export CONFAB_CHROMIUM=$(command -v chromium)"
  } >"$envfile"
  log "chromedriver on 127.0.0.1:$port"
}

stop() { stop_pidfile "$pidfile"; }

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 install|start|stop" ;;
esac
