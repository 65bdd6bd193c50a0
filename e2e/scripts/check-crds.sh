#!/usr/bin/env bash
# Fails when a committed copy of the ChatCluster CRD differs from what
# `crdgen` generates now. There are two copies, both generated, never edited:
#   crds/chatcluster.yaml                         (kubectl apply, docs, tests)
#   charts/confab-operator/crds/chatcluster.yaml  (the chart; helm packages
#                                                  no symlinks, so a real file)
# Regenerate both (also after a merge that touched the CRD types) with:
#   cargo run -p confab-api --bin crdgen | tee crds/chatcluster.yaml > charts/confab-operator/crds/chatcluster.yaml
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
cargo run -q --locked -p confab-api --bin crdgen > "$generated"
stale=0
for copy in crds/chatcluster.yaml charts/confab-operator/crds/chatcluster.yaml; do
  if [ -L "$copy" ] || ! diff -u "$copy" "$generated"; then
    echo "$copy is stale (or a symlink)" >&2
    stale=1
  fi
done
if [ "$stale" -ne 0 ]; then
  echo "regenerate both copies with" >&2
  echo "  cargo run -p confab-api --bin crdgen | tee crds/chatcluster.yaml > charts/confab-operator/crds/chatcluster.yaml" >&2
  exit 1
fi
echo "crds/chatcluster.yaml and the chart's copy match crdgen"
