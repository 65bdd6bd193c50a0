#!/usr/bin/env bash
# A real Kubernetes control plane for Confab's tests — no Docker: etcd +
# kube-apiserver + kube-controller-manager + kube-scheduler, plus kwok, which
# plays the kubelet's status role for one fake Node (pods scheduled there are
# marked Running and Ready; nothing is executed). The real node where pods do
# run (kubelet, kube-proxy, containerd) is node.sh's; this script builds its
# binaries and issues its credentials.
#
# Usage: e2e/scripts/kube.sh install|start|stop
#   install  builds the binaries (the node's kubelet and kube-proxy too) from
#            their Go modules, cached under $CONFAB_CACHE/<name>-<version>/bin
#            (a second run only checks them)
#   start    CA and client certificates (the real node's too), service-account
#            key pair, the five processes on free ports (the API server listens
#            on every address and advertises $CONFAB_NODE_IP, so pods reach it
#            through the `kubernetes` Service), one fake Node; state and logs
#            under $CONFAB_RUN/kube/; writes $CONFAB_RUN/kube.env:
#              CONFAB_KUBECONFIG   admin kubeconfig (group system:masters)
#              CONFAB_KWOK_NODE    name of the fake Node (label type=kwok, no taint)
#   stop     stops the processes; logs and state stay on disk
#
# kube-apiserver, kube-controller-manager and kube-scheduler come from the
# k8s.io/kubernetes module through a wrapper module that requires it and
# replaces every staging module (k8s.io/<name> v0.0.0 => k8s.io/<name> v0.37.x);
# the list is read from k8s.io/kubernetes's own go.mod. Kubernetes calls this use
# unsupported, hence the exact pins. (kube-scheduler is not optional: without it
# pods of a StatefulSet never get a node.)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

# ---- pinned versions ---------------------------------------------------------
KUBE_VERSION=v1.37.2                          # k8s.io/kubernetes
KUBE_STAGING_VERSION=v0.${KUBE_VERSION#v1.}   # k8s.io/api, k8s.io/apiserver, ... = v0.37.2
ETCD_VERSION=v3.7.3                           # go.etcd.io/etcd/server/v3 (k8s 1.37 pins etcd 3.7.0)
KWOK_VERSION=v0.8.0                           # sigs.k8s.io/kwok
GO_BUILD_JOBS=2                               # go build -p
GO_MIN=1.26.0                                 # the `go` line of these modules' go.mod
GO_FALLBACK_TOOLCHAIN=go1.27.3                # fetched from the Go proxy if the local go is older

KUBE_DIR=$CONFAB_CACHE/kube-$KUBE_VERSION
ETCD_DIR=$CONFAB_CACHE/etcd-$ETCD_VERSION
KWOK_DIR=$CONFAB_CACHE/kwok-$KWOK_VERSION
KUBE_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
ETCD=$ETCD_DIR/bin/etcd
KWOK=$KWOK_DIR/bin/kwok
KWOK_STAGES=$KWOK_DIR/stages.yaml

RUN=$CONFAB_RUN/kube
ENV_FILE=$CONFAB_RUN/kube.env
FAKE_NODE=kwok-node-0
SERVICE_CIDR=10.96.0.0/16
SERVICE_FIRST_IP=10.96.0.1
POD_CIDR=10.244.0.0/16
START_TIMEOUT=${CONFAB_KUBE_START_TIMEOUT:-120}

export CGO_ENABLED=0

# ---- install -----------------------------------------------------------------

# go_build NAME DIR GO-ARGS...: runs `go GO-ARGS` in DIR, timed, output to a log.
go_build() {
  local name=$1 dir=$2; shift 2
  local logf=$CONFAB_CACHE/build-$name.log t0=$SECONDS
  log "building $name (log: $logf)"
  if ! (cd "$dir" && go "$@") >"$logf" 2>&1; then
    show_log_tail "$logf"
    die "building $name failed"
  fi
  log "built $name in $((SECONDS - t0))s"
}

# module_info MODULE@VERSION FIELD: a field of `go mod download -json` (Dir, GoMod, ...).
module_info() {
  GOFLAGS='' go mod download -json "$1" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

install_kube() {
  local c missing=()
  for c in "${KUBE_COMPONENTS[@]}"; do [ -x "$KUBE_DIR/bin/$c" ] || missing+=("$c"); done
  if [ ${#missing[@]} -eq 0 ]; then
    log "${KUBE_COMPONENTS[*]} $KUBE_VERSION already built in $KUBE_DIR/bin"
    return
  fi
  local src=$KUBE_DIR/src
  mkdir -p "$src" "$KUBE_DIR/bin"
  log "downloading k8s.io/kubernetes@$KUBE_VERSION"
  local gomod staging
  gomod=$(cd "$src" && module_info "k8s.io/kubernetes@$KUBE_VERSION" GoMod)
  # Every `k8s.io/<name> => ./staging/src/k8s.io/<name>` in k8s.io/kubernetes's go.mod.
  staging=$(go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        print(r["Old"]["Path"])')
  [ -n "$staging" ] || die "found no staging modules in $gomod"
  rm -f "$src/go.mod" "$src/go.sum"
  (
    cd "$src"
    go mod init confab.dev/e2e/kube-wrapper 2>/dev/null
    go mod edit -go="$(go mod edit -json "$gomod" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')"
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    local m
    for m in $staging; do go mod edit -replace="$m@v0.0.0=$m@$KUBE_STAGING_VERSION"; done
  )
  log "wrapper module: $(wc -w <<<"$staging") staging modules => $KUBE_STAGING_VERSION"
  # Version stamping as in kubernetes' hack/lib/version.sh.
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w" kv
  for kv in "gitVersion=$KUBE_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean \
    "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    ldflags+=" -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  for c in "${missing[@]}"; do
    go_build "$c" "$src" build -p "$GO_BUILD_JOBS" -trimpath -ldflags "$ldflags" \
      -o "$KUBE_DIR/bin/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$KUBE_DIR/bin/$c.tmp" "$KUBE_DIR/bin/$c"
  done
}

install_etcd() {
  if [ -x "$ETCD" ]; then log "etcd $ETCD_VERSION already built in $ETCD_DIR/bin"; return; fi
  # The server module's root package is etcd's main (it calls etcdmain.Main). The
  # module has replace directives, so `go install pkg@version` refuses it: build
  # it from a wrapper module that requires it.
  local src=$ETCD_DIR/src
  mkdir -p "$src" "$ETCD_DIR/bin"
  rm -f "$src/go.mod" "$src/go.sum"
  (
    cd "$src"
    go mod init confab.dev/e2e/etcd-wrapper 2>/dev/null
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  )
  go_build etcd "$src" build -p "$GO_BUILD_JOBS" -trimpath -ldflags "-s -w" \
    -o "$ETCD.tmp" go.etcd.io/etcd/server/v3
  mv "$ETCD.tmp" "$ETCD"
}

install_kwok() {
  if [ -x "$KWOK" ] && [ -s "$KWOK_STAGES" ]; then
    log "kwok $KWOK_VERSION already built in $KWOK_DIR/bin"
    return
  fi
  mkdir -p "$KWOK_DIR/bin"
  if [ ! -x "$KWOK" ]; then
    # kwok's go.mod has no replace directives, so `go install pkg@version` builds
    # it with exactly its own dependency set (which forbids GOFLAGS=-mod=mod).
    GOFLAGS='' GOBIN=$KWOK_DIR/bin go_build kwok "$KWOK_DIR" install -p "$GO_BUILD_JOBS" \
      -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" \
      "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  fi
  # kwok alone has no stages: use the ones kwokctl uses by default (node
  # initialize + heartbeat with lease, pod ready/complete/delete), from the module.
  local dir f
  dir=$(cd "$KWOK_DIR" && module_info "sigs.k8s.io/kwok@$KWOK_VERSION" Dir)
  {
    echo "# kwok stages from sigs.k8s.io/kwok@$KWOK_VERSION kustomize/stage (written by kube.sh)"
    for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      echo "---"
      cat "$dir/kustomize/stage/$f"
    done
  } >"$KWOK_STAGES.tmp"
  mv "$KWOK_STAGES.tmp" "$KWOK_STAGES"
}

cmd_install() {
  command -v go >/dev/null || die "go not found (e2e/scripts/toolchain.sh installs it)"
  local t0=$SECONDS
  need_go
  install_kube
  install_etcd
  install_kwok
  log "kube install done in $((SECONDS - t0))s"
}

# ---- start / stop --------------------------------------------------------------

# new_cert NAME CN [O] [SAN]: a key and a certificate signed by the test CA.
new_cert() {
  local name=$1 cn=$2 org=${3:-} san=${4:-}
  local subj="/CN=$cn"
  [ -z "$org" ] || subj="/O=$org$subj"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$RUN/pki/$name.key" \
    -subj "$subj" -out "$RUN/pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$RUN/pki/$name.ext"
  openssl x509 -req -in "$RUN/pki/$name.csr" -CA "$RUN/pki/ca.crt" -CAkey "$RUN/pki/ca.key" \
    -CAcreateserial -days 30 -extfile "$RUN/pki/$name.ext" -out "$RUN/pki/$name.crt" 2>/dev/null
}

# kubeconfig NAME: a kubeconfig for the client certificate NAME, data embedded.
kubeconfig() {
  local name=$1 b64='base64 -w0'
  cat >"$RUN/$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: confab-e2e
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b64 <"$RUN/pki/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $($b64 <"$RUN/pki/$name.crt")
    client-key-data: $($b64 <"$RUN/pki/$name.key")
contexts:
- name: confab-e2e
  context: {cluster: confab-e2e, user: $name}
current-context: confab-e2e
KC
}

# api METHOD PATH [curl args...]: a request to the API server as the admin.
api() {
  local method=$1 path=$2; shift 2
  curl -fsS --cacert "$RUN/pki/ca.crt" --cert "$RUN/pki/admin.crt" --key "$RUN/pki/admin.key" \
    -X "$method" "https://127.0.0.1:$APISERVER_PORT$path" "$@"
}

healthz() { # healthz PORT PATH: an unauthenticated /healthz or /readyz answers ok.
  [ "$(curl -fsSk "https://127.0.0.1:$1$2" 2>/dev/null)" = ok ]
}

node_ready() { api GET "/api/v1/nodes/$FAKE_NODE" | json_holds "$NODE_READY"; }

all_running() {
  local n
  for n in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    alive "$n" || return 1
  done
}

cmd_start() {
  local c
  for c in "${KUBE_COMPONENTS[@]}"; do
    [ -x "$KUBE_DIR/bin/$c" ] || die "$c not built: run $0 install"
  done
  for c in "$ETCD" "$KWOK"; do [ -x "$c" ] || die "$c not built: run $0 install"; done
  command -v openssl >/dev/null || die "openssl not found"
  command -v curl >/dev/null || die "curl not found"

  # Idempotent: a control plane that runs and answers is reused.
  if [ -f "$ENV_FILE" ] && all_running; then
    APISERVER_PORT=$(sed -n 's/^# apiserver port //p' "$ENV_FILE")
    if [ -n "$APISERVER_PORT" ] && api GET /readyz >/dev/null 2>&1; then
      log "kube already running (https://127.0.0.1:$APISERVER_PORT)"
      return
    fi
  fi
  cmd_stop
  rm -rf "$RUN" "$ENV_FILE"
  mkdir -p "$RUN/pki" "$RUN/etcd" && chmod 700 "$RUN/etcd"
  local t0=$SECONDS

  # Certificates: a CA, the API server's serving cert, one client cert per component.
  local pki=$RUN/pki
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
    -days 30 -subj "/CN=confab-e2e-ca" 2>/dev/null
  new_cert apiserver kube-apiserver "" \
    "IP:127.0.0.1,IP:$CONFAB_NODE_IP,IP:$SERVICE_FIRST_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  new_cert admin confab-admin system:masters
  new_cert kube-controller-manager system:kube-controller-manager
  new_cert kube-scheduler system:kube-scheduler
  # kwok stands in for kubelets; it updates node and pod status and deletes pods.
  new_cert kwok kwok system:masters
  # The real node (node.sh): the kubelet as a node identity (Node authorizer),
  # kube-proxy as the user its default ClusterRoleBinding names, and the API
  # server's client for the kubelet's API (logs, exec, port-forward).
  new_cert kubelet "system:node:$CONFAB_NODE_NAME" system:nodes
  new_cert kube-proxy system:kube-proxy
  new_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  # Service-account token signing key pair.
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local etcd_port etcd_peer_port kcm_port sched_port kwok_port
  local ports; ports=$(free_port 6)
  read -r etcd_port etcd_peer_port APISERVER_PORT kcm_port sched_port kwok_port <<<"${ports//$'\n'/ }"

  run_bg etcd "$ETCD" --name confab-e2e --data-dir "$RUN/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "confab-e2e=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  ready etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  # Advertised at the node address, the `kubernetes` Service's endpoint is one
  # that pods on the real node reach (a loopback one is refused).
  run_bg kube-apiserver "$KUBE_DIR/bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 0.0.0.0 --advertise-address "$CONFAB_NODE_IP" --secure-port "$APISERVER_PORT" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --allow-privileged=true --profiling=false \
    --cert-dir "$RUN/apiserver-certs"
  ready kube-apiserver "$START_TIMEOUT" api GET /readyz

  for c in admin kube-controller-manager kube-scheduler kwok kubelet kube-proxy; do kubeconfig "$c"; done
  # Controllers act as their own service accounts, as kubeadm sets them up.
  run_bg kube-controller-manager "$KUBE_DIR/bin/kube-controller-manager" \
    --kubeconfig "$RUN/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$RUN/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$RUN/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$RUN/kcm-certs" \
    --controllers '*' --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --cluster-name confab-e2e --allocate-node-cidrs=true --cluster-cidr "$POD_CIDR" \
    --service-cluster-ip-range "$SERVICE_CIDR" --leader-elect=false --profiling=false
  run_bg kube-scheduler "$KUBE_DIR/bin/kube-scheduler" \
    --kubeconfig "$RUN/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$RUN/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$RUN/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --cert-dir "$RUN/scheduler-certs" \
    --leader-elect=false --profiling=false
  run_bg kwok "$KWOK" --kubeconfig "$RUN/kwok.kubeconfig" --config "$KWOK_STAGES" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --node-lease-duration-seconds 40 --cidr 10.244.0.0/24 \
    --server-address "127.0.0.1:$kwok_port"
  ready kube-controller-manager "$START_TIMEOUT" healthz "$kcm_port" /healthz
  ready kube-scheduler "$START_TIMEOUT" healthz "$sched_port" /healthz

  # The fake Node kwok manages (its example node, without a taint, so any pod fits).
  api POST /api/v1/nodes -H 'Content-Type: application/json' -o /dev/null --data-binary @- <<NODE
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$FAKE_NODE",
   "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
   "labels": {"type": "kwok", "kubernetes.io/hostname": "$FAKE_NODE", "kubernetes.io/os": "linux",
     "kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": ""}},
 "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
   "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}
NODE
  ready kwok 60 node_ready
  # The controller manager works: it created the default namespace's ServiceAccount.
  ready kube-controller-manager 60 api GET /api/v1/namespaces/default/serviceaccounts/default

  cp "$RUN/admin.kubeconfig" "$RUN/kubeconfig"
  cat >"$ENV_FILE" <<ENV
# written by e2e/scripts/kube.sh start
# apiserver port $APISERVER_PORT
export CONFAB_KUBE_PKI=$RUN/pki
export CONFAB_KUBE_BIN=$KUBE_DIR/bin
export CONFAB_KUBECONFIG=$RUN/kubeconfig
export CONFAB_KWOK_NODE=$FAKE_NODE
ENV
  log "kube ready in $((SECONDS - t0))s: https://127.0.0.1:$APISERVER_PORT (kubeconfig $RUN/kubeconfig)"
}

cmd_stop() {
  local n
  # Reverse start order; etcd last so the others shut down cleanly.
  for n in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    stop_pidfile "$RUN/$n.pid"
  done
  rm -f "$ENV_FILE"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
