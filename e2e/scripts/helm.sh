#!/usr/bin/env bash
# helm for Confab's tests (`helm lint`, `helm template` of charts/confab-operator),
# built from its Go module — no registry offers a helm binary here.
#
# Usage: e2e/scripts/helm.sh install|start|stop|lint
#   install  builds helm into $CONFAB_CACHE/helm-<version>/bin (cached)
#   start    writes $CONFAB_RUN/helm.env: CONFAB_HELM=<path to the binary>
#   stop     nothing to stop (helm is a CLI)
#   lint     `helm lint --strict` of the chart, and a misspelt value must be
#            refused by values.schema.json (builds helm first if needed)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# ---- pinned versions ---------------------------------------------------------
HELM_VERSION=v3.22.0   # helm.sh/helm/v3
GO_BUILD_JOBS=2        # go build -p
GO_MIN=1.26.0          # the `go` line of helm's go.mod
GO_FALLBACK_TOOLCHAIN=go1.27.3  # fetched from the Go proxy if the local go is older

HELM_DIR=$CONFAB_CACHE/helm-$HELM_VERSION
HELM=$HELM_DIR/bin/helm
ENV_FILE=$CONFAB_RUN/helm.env

cmd_install() {
  if [ -x "$HELM" ]; then log "helm $HELM_VERSION already built in $HELM_DIR/bin"; return; fi
  command -v go >/dev/null || die "go not found (e2e/scripts/toolchain.sh installs it)"
  need_go
  mkdir -p "$HELM_DIR/bin"
  local logf=$CONFAB_CACHE/build-helm.log t0=$SECONDS
  log "building helm $HELM_VERSION (log: $logf)"
  # Stamp versions as helm's Makefile does. The Kubernetes version that `helm
  # template` and `helm lint` assume (else v1.20, failing charts' kubeVersion)
  # is 1.<minor> of the k8s.io/client-go that helm's go.mod requires.
  local gomod client_go
  gomod=$(cd "$HELM_DIR" && GOFLAGS='' go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  client_go=$(go mod edit -json "$gomod" | python3 -c '
import json, sys
print(next(r["Version"] for r in json.load(sys.stdin)["Require"] if r["Path"] == "k8s.io/client-go"))')
  local k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
  local ldflags="-s -w" p
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for p in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$k8s_minor"
  done
  # helm's go.mod has no replace directives, so `go install pkg@version` builds
  # it with exactly its own dependency set (which forbids GOFLAGS=-mod=mod).
  if ! (cd "$HELM_DIR" && CGO_ENABLED=0 GOFLAGS='' GOBIN=$HELM_DIR/bin go install \
    -p "$GO_BUILD_JOBS" -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$logf" 2>&1; then
    show_log_tail "$logf"
    die "building helm failed"
  fi
  log "built helm in $((SECONDS - t0))s"
}

cmd_start() {
  [ -x "$HELM" ] || die "helm not built: run $0 install"
  "$HELM" version --short >/dev/null || die "$HELM does not run"
  echo "export CONFAB_HELM=$HELM" >"$ENV_FILE"
  log "helm ready: $HELM ($("$HELM" version --short))"
}

cmd_lint() {
  cmd_install
  local chart out
  chart=$(cd "$here/../../charts/confab-operator" && pwd)
  "$HELM" lint --strict "$chart"
  # values.schema.json closes every level: a typo fails instead of being ignored.
  if out=$("$HELM" lint --strict "$chart" --set image.tagg=1 2>&1); then
    die "helm lint accepted the misspelt value image.tagg: values.schema.json is not closed"
  fi
  grep -q "additional properties 'tagg' not allowed" <<<"$out" ||
    die "helm lint refused image.tagg for another reason: $out"
  log "the chart lints strictly and refuses misspelt values"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) : ;; # nothing runs
  lint) cmd_lint ;;
  *) echo "usage: $0 install|start|stop|lint" >&2; exit 2 ;;
esac
