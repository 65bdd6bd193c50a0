#!/usr/bin/env bash
# The container images of chat-runtime and confab-operator, built on this
# machine without Docker or a registry, and imported into a containerd.
#
# Usage: e2e/scripts/images.sh build|import ADDRESS
#   build           release-builds both binaries, then confab-image (e2e crate)
#                   makes each Dockerfile's final stage into an OCI layout tar
#                   with those binaries and a stand-in distroless base taken
#                   from this Debian 12 host: $CONFAB_RUN/images/chat-runtime.tar
#                   and confab-operator.tar, tagged confab/<name>:<appVersion of
#                   charts/confab-operator/Chart.yaml>. A Dockerfile change that
#                   confab-image would not reproduce fails here.
#   import ADDRESS  imports both into the k8s.io namespace of the containerd
#                   on socket ADDRESS and checks that it lists them as
#                   docker.io/confab/<name>:<version> — the name the CRI gives
#                   a pod's `image: confab/<name>:<version>` (use
#                   imagePullPolicy: Never).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

root=$(cd "$here/../.." && pwd)
out="$CONFAB_RUN/images"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/confab-operator/Chart.yaml")
[ -n "$version" ] || die "no appVersion in charts/confab-operator/Chart.yaml"
# name  Dockerfile  the /out file its build stage installs
images=(
  "chat-runtime chat-runtime/Dockerfile chat-runtime"
  "confab-operator operator/Dockerfile confab-operator"
)

# target_dir: where cargo puts its builds (honours CARGO_TARGET_DIR and config).
target_dir() {
  cargo metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

cmd_build() {
  cd "$root"
  log "building chat-runtime and confab-operator (release)"
  cargo build --release --locked -p chat-runtime --bin chat-runtime -p confab-operator --bin confab-operator
  log "building confab-image"
  cargo build --locked -q -p confab-e2e --bin confab-image
  local target name dockerfile bin
  target=$(target_dir)
  mkdir -p "$out"
  for entry in "${images[@]}"; do
    read -r name dockerfile bin <<<"$entry"
    "$target/debug/confab-image" --dockerfile "$dockerfile" \
      --out "$bin=$target/release/$bin" \
      --tag "confab/$name:$version" --output "$out/$name.tar"
  done
}

cmd_import() {
  local address=${1:-}
  [ -n "$address" ] || die "usage: $0 import ADDRESS (containerd's socket)"
  [ -S "$address" ] || die "no containerd socket at $address"
  local name archive listed ref
  for entry in "${images[@]}"; do
    read -r name _ <<<"$entry"
    archive="$out/$name.tar"
    [ -f "$archive" ] || die "$archive is missing: run $0 build first"
    log "importing $archive"
    ctr --address "$address" -n k8s.io images import "$archive"
  done
  listed=$(ctr --address "$address" -n k8s.io images ls -q)
  for entry in "${images[@]}"; do
    read -r name _ <<<"$entry"
    ref="docker.io/confab/$name:$version"
    grep -qxF "$ref" <<<"$listed" || die "$ref is not listed after the import; ctr lists: $listed"
    log "containerd has $ref"
  done
}

case "${1:-}" in
  build) cmd_build ;;
  import) shift; cmd_import "$@" ;;
  *) die "usage: $0 build|import ADDRESS" ;;
esac
