#!/usr/bin/env bash
# Confab on Kubernetes in Docker: creates a kind cluster, builds the operator
# and chat-runtime images and loads them into it, installs the Helm chart,
# applies the chart's example ChatCluster, waits until it is Available and
# sends a chat message through the gateway Service it provisioned.
#
# For machines with Docker (needs docker, kind, kubectl, helm, curl, python3);
# see README.md beside this script.
#
# Usage: e2e/kind/run.sh [up|down]
#   up    (default) all of the above; the cluster keeps running afterwards
#   down  deletes the kind cluster
#
# Environment:
#   CLUSTER    kind cluster name            (default confab)
#   NAMESPACE  namespace of the ChatCluster (default chat)
#   TAG        image tag                    (default the chart's appVersion)
#   TIMEOUT    how long the ChatCluster may take to become Available (default 10m)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
chart=$repo/charts/confab-operator

CLUSTER=${CLUSTER:-confab}
NAMESPACE=${NAMESPACE:-chat}
TAG=${TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")}
TIMEOUT=${TIMEOUT:-10m}
OPERATOR_IMAGE=confab/confab-operator:$TAG
RUNTIME_IMAGE=confab/chat-runtime:$TAG
SYSTEM_NAMESPACE=confab-system
LOCAL_PORT=${LOCAL_PORT:-18080}

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_tools() {
  local t
  for t in docker kind kubectl helm curl python3; do
    command -v "$t" >/dev/null || die "$t not found (see e2e/kind/README.md)"
  done
}

create_cluster() {
  if kind get clusters | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists: reusing it"
  else
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
}

build_and_load() {
  log "building $OPERATOR_IMAGE and $RUNTIME_IMAGE (the first build takes minutes)"
  DOCKER_BUILDKIT=1 docker build -f "$repo/operator/Dockerfile" -t "$OPERATOR_IMAGE" "$repo"
  DOCKER_BUILDKIT=1 docker build -f "$repo/chat-runtime/Dockerfile" -t "$RUNTIME_IMAGE" "$repo"
  log "loading the images into $CLUSTER"
  kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$RUNTIME_IMAGE"
}

install_chart() {
  log "installing the chart into $SYSTEM_NAMESPACE"
  helm upgrade --install confab "$chart" --namespace "$SYSTEM_NAMESPACE" --create-namespace \
    --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="$TAG" \
    --set image.pullPolicy=Never --wait --timeout 3m
  # Helm installs a chart's CRDs only once; apply the current one in any case.
  kubectl apply --server-side -f "$chart/crds/"
}

apply_example() {
  log "applying the example ChatCluster in $NAMESPACE (image $RUNTIME_IMAGE)"
  kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
  kubectl -n "$NAMESPACE" apply -f "$chart/examples/chatcluster.yaml"
  kubectl -n "$NAMESPACE" patch chatcluster chat --type merge \
    -p "{\"spec\":{\"image\":\"$RUNTIME_IMAGE\"}}"
  log "waiting up to $TIMEOUT for Available (the dev ScyllaDB node is the slow part)"
  if ! kubectl -n "$NAMESPACE" wait chatcluster/chat --for=condition=Available --timeout="$TIMEOUT"; then
    kubectl -n "$NAMESPACE" get chatcluster chat -o yaml >&2 || true
    kubectl -n "$NAMESPACE" get pods >&2 || true
    die "the ChatCluster did not become Available"
  fi
  kubectl -n "$NAMESPACE" get chatclusters
}

# json FIELD: prints FIELD (a dotted path; numbers index lists) of the JSON on stdin.
json() {
  python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if k.isdigit() else v[k]
print(v)' "$1"
}

# api METHOD PATH [TOKEN] [BODY]: a REST call to the gateway through the port-forward.
api() {
  local method=$1 path=$2 token=${3:-} body=${4:-}
  local args=(-fsS -X "$method" -H 'Content-Type: application/json')
  [ -z "$token" ] || args+=(-H "Authorization: Bearer $token")
  [ -z "$body" ] || args+=(--data "$body")
  curl "${args[@]}" "http://127.0.0.1:$LOCAL_PORT$path"
}

round_trip() {
  log "port-forwarding svc/chat-gateway to 127.0.0.1:$LOCAL_PORT"
  kubectl -n "$NAMESPACE" port-forward svc/chat-gateway "$LOCAL_PORT:80" >/dev/null 2>&1 &
  local forward=$!
  # shellcheck disable=SC2064 # expand $forward now
  trap "kill $forward 2>/dev/null || true" EXIT
  local i
  for ((i = 0; i < 30; i++)); do
    curl -fsS "http://127.0.0.1:$LOCAL_PORT/readyz" >/dev/null 2>&1 && break
    sleep 1
  done
  local suffix alice bob password='kind round trip'
  suffix=$(date +%s)
  alice="+1555${suffix: -7}"
  bob="+1556${suffix: -7}"
  api POST /v1/register "" "{\"phone\":\"$alice\",\"display_name\":\"Alice\",\"password\":\"$password\"}" >/dev/null
  api POST /v1/register "" "{\"phone\":\"$bob\",\"display_name\":\"Bob\",\"password\":\"$password\"}" >/dev/null
  local alice_token bob_token chat text="hello from kind $suffix"
  alice_token=$(api POST /v1/login "" "{\"phone\":\"$alice\",\"password\":\"$password\"}" | json token)
  bob_token=$(api POST /v1/login "" "{\"phone\":\"$bob\",\"password\":\"$password\"}" | json token)
  chat=$(api POST /v1/direct "$alice_token" "{\"phone\":\"$bob\"}" | json chat_id)
  api POST "/v1/chats/$chat/messages" "$alice_token" \
    "{\"client_msg_id\":\"kind-$suffix\",\"body\":\"$text\"}" >/dev/null
  local got
  got=$(api GET "/v1/chats/$chat/messages?limit=1" "$bob_token" | json messages.0.body)
  [ "$got" = "$text" ] || die "Bob read \"$got\", expected \"$text\""
  log "round trip OK: Alice -> Bob through svc/chat-gateway: \"$got\""
}

cmd_up() {
  need_tools
  create_cluster
  build_and_load
  install_chart
  apply_example
  round_trip
  log "done; the cluster keeps running (e2e/kind/run.sh down deletes it)"
}

cmd_down() {
  command -v kind >/dev/null || die "kind not found"
  kind delete cluster --name "$CLUSTER"
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
