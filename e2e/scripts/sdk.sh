#!/usr/bin/env bash
# The TypeScript SDK (sdk/typescript): its dependencies, its drift checks and
# its tests against a real standalone server.
#
# Usage: e2e/scripts/sdk.sh check|test|sync
#   check  fails when a generated or copied file is stale: the wire types
#          (src/protocol.ts, from docs/schema/protocol.json) and the web
#          client's copy of the build (chat-runtime/web/sdk/, from dist/)
#   test   check, then `npm test` against the chat-runtime binary built
#          here (debug), then the bundle size
#   sync   regenerates src/protocol.ts and copies a fresh build into
#          chat-runtime/web/sdk/ (run it after changing the schema or the SDK)
# node_modules is installed once per package-lock.json (npm ci) and kept
# under $CONFAB_CACHE, beside npm's own download cache.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)
sdk="$repo/sdk/typescript"
web="$repo/chat-runtime/web/sdk"
cd "$sdk"

command -v node >/dev/null && command -v npm >/dev/null ||
  die "node and npm are missing (e2e/scripts/toolchain.sh installs them)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || die "node $(node --version) is too old: the SDK needs node 20 or later"

deps() {
  local lock cached
  lock=$(sha256sum package-lock.json | cut -c1-16)
  cached="$CONFAB_CACHE/sdk-node-modules/$lock"
  if [ ! -d "$cached/node_modules" ]; then
    log "sdk: npm ci (package-lock $lock)"
    rm -rf node_modules
    npm ci --ignore-scripts --no-audit --no-fund --cache "$CONFAB_CACHE/npm" --prefer-offline >&2
    mkdir -p "$cached.tmp" && rm -rf "$cached.tmp/node_modules"
    cp -a node_modules "$cached.tmp/" && mv "$cached.tmp" "$cached"
  elif ! cmp -s "$cached/node_modules/.package-lock.json" node_modules/.package-lock.json; then
    rm -rf node_modules && cp -a "$cached/node_modules" node_modules
  fi
}

check() {
  npm run --silent gen -- --check
  npm run --silent build
  local stale=0 f
  for f in dist/*.js; do
    cmp -s "$f" "$web/$(basename "$f")" || { echo "chat-runtime/web/sdk/$(basename "$f") is stale" >&2; stale=1; }
  done
  for f in "$web"/*; do
    [ -f "dist/$(basename "$f")" ] || { echo "chat-runtime/web/sdk/$(basename "$f") is not in the build" >&2; stale=1; }
  done
  [ "$stale" -eq 0 ] || die "the web client's copy of the SDK is stale: run e2e/scripts/sdk.sh sync"
  log "sdk: src/protocol.ts and chat-runtime/web/sdk/ match their sources"
}

case "${1:-}" in
  check) deps; check ;;
  test)
    deps; check
    (cd "$repo" && cargo build --locked -q -p chat-runtime --bin chat-runtime)
    CONFAB_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/chat-runtime" npm test
    npm run --silent size
    ;;
  sync)
    deps
    npm run --silent gen
    npm run --silent build
    rm -rf "$web" && mkdir -p "$web" && cp dist/*.js "$web/"
    log "sdk: regenerated src/protocol.ts and copied dist/*.js into chat-runtime/web/sdk/"
    ;;
  *) die "usage: $0 check|test|sync" ;;
esac
