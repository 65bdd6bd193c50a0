#!/usr/bin/env bash
# Fails when crds/chatcluster.yaml differs from what `crdgen` generates now.
# Fix a failure with: cargo run -p confab-api --bin crdgen > crds/chatcluster.yaml
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
cargo run -q --locked -p confab-api --bin crdgen > "$generated"
if ! diff -u crds/chatcluster.yaml "$generated"; then
  echo "crds/chatcluster.yaml is stale: regenerate it with" >&2
  echo "  cargo run -p confab-api --bin crdgen > crds/chatcluster.yaml" >&2
  exit 1
fi
echo "crds/chatcluster.yaml matches crdgen"
