#!/usr/bin/env bash
# Runs Confab's whole test suite on this machine: checks, unit and integration
# tests, then the smoke and end-to-end tests against real services that this
# script installs (first run builds them; later runs reuse the cache) and starts.
#
# Usage: e2e/scripts/test-all.sh
# Logs of every service stay under $CONFAB_RUN (default ~/.cache/confab/run).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CONFAB_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A suite run compiles each clone once: incremental state (GBs per clone
# folder in the shared target dir) would only fill the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
services=(nats cassandra kube node helm chromium s3)
results="$CONFAB_RUN/test-results.log"
: >"$results"
started=()
t0=$(date +%s)
phase() { log "== $* (+$(( $(date +%s) - t0 ))s)"; }

cleanup() {
  local rc=$?
  for s in "${started[@]}"; do "$here/$s.sh" stop || true; done
  if [ $rc -ne 0 ]; then log "FAILED (exit $rc); service logs are under $CONFAB_RUN"; fi
  phase "done"
  # One closing line for the whole suite, summed over every test binary
  # (and the SDK's node test runner).
  awk '/^test result:/ { p += $4; f += $6; i += $8 }
       /^# pass / { p += $3 } /^# fail / { f += $3 } /^# skipped / { i += $3 }
       END { printf "all tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$results"
  exit $rc
}
trap cleanup EXIT

phase "toolchain"
"$here/toolchain.sh"

phase "format and lint"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked --features confab-e2e/node -- -D warnings
"$here/helm.sh" lint
"$here/promtool.sh" lint

phase "CRD drift"
"$here/check-crds.sh"

phase "unit and integration tests (no external services)"
cargo test --workspace --locked 2>&1 | tee -a "$results"

phase "TypeScript SDK: generated types and the web client's copy current, tests against standalone"
"$here/sdk.sh" test 2>&1 | tee -a "$results"

phase "the README's run command, verbatim"
"$here/readme-run.sh"

phase "images (release binaries into OCI archives)"
"$here/images.sh" build

phase "install services"
for s in "${services[@]}"; do
  phase "install $s"
  "$here/$s.sh" install
done

phase "start services"
for s in "${services[@]}"; do
  started+=("$s")
  # A start that fails is tried once more (each start stops what is left of
  # the last one first); a service that fails twice fails the run.
  if ! "$here/$s.sh" start; then
    log "$s did not start; trying once more"
    "$here/$s.sh" start
  fi
  # shellcheck disable=SC1090
  source "$CONFAB_RUN/$s.env"
done

phase "images into the real node's containerd"
"$here/images.sh" import "$CONFAB_CONTAINERD_ADDRESS"

phase "smoke and end-to-end tests against real services"
# The cluster scenarios run the chat-runtime binary as shard and gateway processes.
cargo build --locked -p chat-runtime --bin chat-runtime
cargo test -p confab-e2e --locked --features services -- --test-threads 2 2>&1 | tee -a "$results"

phase "the product on the real node: chart, ChatCluster pods, clients"
cargo test -p confab-e2e --locked --features node --test node -- --nocapture 2>&1 | tee -a "$results"
