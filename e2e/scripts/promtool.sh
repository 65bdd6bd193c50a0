#!/usr/bin/env bash
# promtool for Confab's tests: checks the chart's alert rules and the queries
# of its Grafana dashboard. Built from the Prometheus Go module — no registry
# offers a promtool binary here.
#
# Usage: e2e/scripts/promtool.sh install|lint
#   install  builds promtool into $CONFAB_CACHE/promtool-<version>/bin (cached)
#   lint     renders the chart with every monitoring object on (helm.sh builds
#            helm if needed); `promtool check rules` on the rendered
#            PrometheusRule's spec; the dashboard must be JSON whose every panel
#            query parses (each is checked as a recording rule); and promtool
#            must refuse a query that does not parse
#
# The module has replace and exclude directives, so `go install pkg@version`
# refuses it: promtool is built from a wrapper module that requires it and
# copies those directives from its go.mod (so the dependency set is its
# release's). The `remove_all_sd` tag leaves out the service-discovery
# plugins, which rule checks never use.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# ---- pinned versions ---------------------------------------------------------
PROMETHEUS_VERSION=v0.316.0   # github.com/prometheus/prometheus (Prometheus 3.16.0)
PROMETHEUS_RELEASE=3.16.0     # stamped into `promtool --version`
GO_BUILD_JOBS=2               # go build -p
GO_FALLBACK_TOOLCHAIN=go1.27.3  # fetched from the Go proxy if the local go is older than the module's

PROMTOOL_DIR=$CONFAB_CACHE/promtool-$PROMETHEUS_VERSION
PROMTOOL=$PROMTOOL_DIR/bin/promtool
MODULE=github.com/prometheus/prometheus

cmd_install() {
  if [ -x "$PROMTOOL" ]; then log "promtool $PROMETHEUS_VERSION already built in $PROMTOOL_DIR/bin"; return; fi
  command -v go >/dev/null || die "go not found (e2e/scripts/toolchain.sh installs it)"
  local src=$PROMTOOL_DIR/src logf=$CONFAB_CACHE/build-promtool.log t0=$SECONDS
  mkdir -p "$src" "$PROMTOOL_DIR/bin"
  log "downloading $MODULE@$PROMETHEUS_VERSION"
  local gomod directives
  gomod=$(cd "$src" && GOFLAGS='' go mod download -json "$MODULE@$PROMETHEUS_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  GO_MIN=$(go mod edit -json "$gomod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')
  need_go
  # Its replace and exclude directives as `go mod edit` flags.
  directives=$(go mod edit -json "$gomod" | python3 -c '
import json, sys
mod = json.load(sys.stdin)
at = lambda m: m["Path"] + ("@" + m["Version"] if m.get("Version") else "")
for r in mod.get("Replace") or []:
    if not r["New"].get("Version"):
        sys.exit("a replace by a local path: " + at(r["Old"]))
    print("-replace=" + at(r["Old"]) + "=" + at(r["New"]))
for e in mod.get("Exclude") or []:
    print("-exclude=" + at(e))')
  rm -f "$src/go.mod" "$src/go.sum"
  (
    cd "$src"
    go mod init confab.dev/e2e/promtool-wrapper 2>/dev/null
    go mod edit -go="$GO_MIN" -require="$MODULE@$PROMETHEUS_VERSION"
    # shellcheck disable=SC2086 # one flag per word
    [ -z "$directives" ] || go mod edit $directives
  )
  log "building promtool $PROMETHEUS_VERSION (log: $logf)"
  local ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_RELEASE"
  if ! (cd "$src" && CGO_ENABLED=0 go build -p "$GO_BUILD_JOBS" -trimpath -tags remove_all_sd \
    -ldflags "$ldflags" -o "$PROMTOOL.tmp" "$MODULE/cmd/promtool") >"$logf" 2>&1; then
    show_log_tail "$logf"
    die "building promtool failed"
  fi
  mv "$PROMTOOL.tmp" "$PROMTOOL"
  log "built promtool in $((SECONDS - t0))s"
}

# rule_spec FILE: the rules file inside a rendered PrometheusRule — its
# `spec`, the template's last key, one level less indented.
rule_spec() {
  python3 - "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()
if "kind: PrometheusRule" not in lines or "spec:" not in lines:
    sys.exit("no PrometheusRule with a spec in the rendered chart")
for line in lines[lines.index("spec:") + 1:]:
    if line and not line.startswith("  "):
        sys.exit(f"a key after spec (the template must end with it): {line!r}")
    print(line[2:])
PY
}

# dashboard_rules FILE: every panel query of the Grafana dashboard FILE as a
# recording rule (a rules file in JSON, which promtool reads as YAML), with
# Grafana's interval variables as durations and the dashboard's own
# variables as a label value. Fails unless FILE is JSON with queries.
dashboard_rules() {
  python3 - "$1" <<'PY'
import json, re, sys
path = sys.argv[1]
try:
    dashboard = json.load(open(path))
except ValueError as e:
    sys.exit(f"{path} is not JSON: {e}")
durations = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}
def concrete(expr):
    return re.sub(r"\$\{?(\w+)\}?", lambda m: durations.get(m.group(1), "x"), expr)
def panels(items):
    for p in items:
        yield p
        yield from panels(p.get("panels", []))
ids, rules = set(), []
for p in panels(dashboard["panels"]):
    if p["id"] in ids:
        sys.exit(f"{path}: two panels with id {p['id']}")
    ids.add(p["id"])
    for t in p.get("targets", []):
        record = f"dashboard:panel_{p['id']}:{t['refId'].lower()}"
        rules.append({"record": record, "expr": concrete(t["expr"])})
if not rules:
    sys.exit(f"{path} has no panel queries")
json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, sys.stdout, indent=1)
PY
}

cmd_lint() {
  cmd_install
  "$here/helm.sh" install
  "$here/helm.sh" start
  # shellcheck disable=SC1091
  source "$CONFAB_RUN/helm.env"
  local chart work
  chart=$(cd "$here/../../charts/confab-operator" && pwd)
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: $work is local
  trap "rm -rf '$work'" EXIT
  "$CONFAB_HELM" template confab "$chart" --namespace confab-system \
    --set metrics.serviceMonitor.enabled=true \
    --set monitoring.podMonitor.enabled=true \
    --set monitoring.podMonitor.gatewayScheme=https \
    --set monitoring.prometheusRule.enabled=true \
    --set monitoring.dashboard.enabled=true >"$work/all.yaml"
  local kind
  for kind in ServiceMonitor PodMonitor PrometheusRule ConfigMap; do
    grep -qx "kind: $kind" "$work/all.yaml" || die "the chart with monitoring on renders no $kind"
  done
  "$CONFAB_HELM" template confab "$chart" --namespace confab-system \
    --set monitoring.prometheusRule.enabled=true \
    --show-only templates/prometheusrule.yaml >"$work/prometheusrule.yaml"
  rule_spec "$work/prometheusrule.yaml" >"$work/alerts.yaml"
  "$PROMTOOL" check rules "$work/alerts.yaml"
  dashboard_rules "$chart/dashboards/confab.json" >"$work/dashboard.yaml"
  "$PROMTOOL" check rules "$work/dashboard.yaml"
  # A check that passes everything proves nothing: a query missing its
  # closing parenthesis must be refused.
  printf '%s\n' '{"groups": [{"name": "broken", "rules": [' \
    '{"record": "broken:query", "expr": "sum(rate(confab_messages_total[5m])"}]}]}' >"$work/broken.yaml"
  if "$PROMTOOL" check rules "$work/broken.yaml" >/dev/null 2>&1; then
    die "promtool accepted a query that does not parse"
  fi
  log "the chart's alert rules and every dashboard query pass promtool"
}

case "${1:-}" in
  install) cmd_install ;;
  lint) cmd_lint ;;
  *) echo "usage: $0 install|lint" >&2; exit 2 ;;
esac
