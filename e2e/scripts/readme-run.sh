#!/usr/bin/env bash
# The README's first command, run as a newcomer would run it: the first ```sh
# block under "## Run it" in README.md, verbatim, from the repository root.
#
# Usage: e2e/scripts/readme-run.sh
#   Starts it in the background (its output in $CONFAB_RUN/readme-run/run.log),
#   waits up to 60 min (a cold release build on 2 busy cores) for http://127.0.0.1:8080/healthz,
#   checks /readyz and that / serves the web client, then stops it (the whole
#   process group: `cargo run` starts the server as its child). Fails, showing
#   the end of the log, on any problem — also when port 8080 is already taken.
#   CONFAB_* variables are cleared for the command, as a newcomer has none; the
#   server keeps its data in ./confab-data (ignored by git).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

root=$(cd "$here/../.." && pwd)
run="$CONFAB_RUN/readme-run"
logfile="$run/run.log"
url=http://127.0.0.1:8080
build_secs=3600

# The first ```sh block of the "## Run it" section.
command=$(awk '
  /^## / { section = ($0 == "## Run it") }
  grab && /^```/ { exit }
  grab { print }
  section && /^```sh *$/ { grab = 1 }
' "$root/README.md")
[ -n "$command" ] || die "README.md has no \`\`\`sh block under \"## Run it\""

fail() {
  log "ERROR: $*"
  show_log_tail "$logfile"
  exit 1
}

port_free() {
  python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 8080))' 2>/dev/null
}
if ! port_free; then
  die "port 8080 is already taken (the README's server listens on 127.0.0.1:8080): \
$(ss -ltnp 2>/dev/null | grep -E ':8080\b' || echo 'stop whatever listens there')"
fi

pgid=
stop() {
  [ -n "$pgid" ] || return 0
  if kill -0 -- "-$pgid" 2>/dev/null; then
    log "stopping the server (process group $pgid)"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.25; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  pgid=
}
trap stop EXIT
trap 'exit 130' INT TERM

mkdir -p "$run"
log "running from $root: $command"
(
  cd "$root"
  for v in $(compgen -e | grep '^CONFAB_' || true); do unset "$v"; done
  # setsid: a process group of its own, so that stop() reaches the server too.
  exec setsid bash -c "$command" >"$logfile" 2>&1
) &
pgid=$!

started=$SECONDS
until curl -fsS -m 2 "$url/healthz" >/dev/null 2>&1; do
  kill -0 "$pgid" 2>/dev/null || fail "the command exited before $url/healthz answered"
  ((SECONDS - started < build_secs)) || fail "$url/healthz did not answer within ${build_secs}s"
  sleep 1
done
log "healthz answered after $((SECONDS - started))s"

wait_for 30 "$url/readyz" curl -fsS -m 2 "$url/readyz" || fail "$url/readyz did not answer 200"
page=$(curl -fsS -m 5 "$url/") || fail "GET $url/ failed"
grep -q '<title>Confab</title>' <<<"$page" || fail "GET $url/ is not the web client (no <title>Confab</title>)"
grep -q '<h1>Confab</h1>' <<<"$page" || fail "GET $url/ is not the web client (no <h1>Confab</h1>)"
log "ok: the README's command serves /healthz, /readyz and the web client on $url"
