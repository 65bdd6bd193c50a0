#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time, one after the
# other, and prints how many inputs each one executed. Not part of .ci/run:
# it needs a nightly toolchain and minutes per target.
#
#   e2e/scripts/fuzz.sh [seconds-per-target] [target...]   (default: 60 s, all)
#
# An input that panics, takes over 10 s or needs over 2 GB (a decode bomb)
# stops its target and is saved under fuzz/artifacts/<target>/; replay it with
#   cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>
# Each target starts from its seeds (fuzz/seeds/<target>, checked in) and
# grows a corpus of its own in fuzz/corpus/<target> (not checked in).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
repo=$(cd "$here/../.." && pwd)

CARGO_FUZZ_VERSION=0.13.2
secs=${1:-60}
[[ $secs =~ ^[1-9][0-9]*$ ]] || die "seconds per target must be a positive number, not '$secs'"
shift $(($# > 0 ? 1 : 0))

command -v rustup >/dev/null || die "rustup not found: fuzzing needs a nightly Rust toolchain"
if ! rustup toolchain list | grep -q '^nightly'; then
  log "no nightly toolchain: installing one"
  rustup toolchain install nightly --profile minimal ||
    die "cannot install a nightly toolchain (rustup toolchain install nightly); cargo-fuzz needs one"
fi
if ! command -v cargo-fuzz >/dev/null; then
  bin="$CONFAB_CACHE/cargo-fuzz-$CARGO_FUZZ_VERSION/bin"
  if [ ! -x "$bin/cargo-fuzz" ]; then
    log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install --locked --quiet --version "$CARGO_FUZZ_VERSION" \
      --root "$(dirname "$bin")" cargo-fuzz
  fi
  export PATH="$bin:$PATH"
fi

cd "$repo/fuzz"
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
log "building ${#targets[@]} fuzz targets"
cargo +nightly fuzz build
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
  log "fuzzing $t for ${secs}s"
  mkdir -p "corpus/$t"
  status=ok
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$logs/$t.log" 2>&1 || status=failed
  # libFuzzer's last words: `stat::number_of_executed_units: N` (final
  # stats), else the `#N DONE` line, else the last `#N` progress line.
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)$/\1/p' "$logs/$t.log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$logs/$t.log" | tail -1)
  if [ "$status" != ok ]; then
    failed+=("$t")
    grep -E '^(==[0-9]+== ?ERROR|SUMMARY|artifact_prefix|Test unit written)|panicked at' "$logs/$t.log" >&2 || tail -n 40 "$logs/$t.log" >&2
  fi
  summary+=("$(printf '%-16s %6ss %12s executions  %s' "$t" "$secs" "${runs:-?}" "$status")")
done
printf '%s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ] || die "fuzzing found failures in: ${failed[*]} (inputs under fuzz/artifacts/)"
