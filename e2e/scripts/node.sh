#!/usr/bin/env bash
# A real Kubernetes node beside kube.sh's control plane: kubelet and kube-proxy
# (built by kube.sh from the same k8s.io/kubernetes module), Debian's containerd
# and runc, pod networking by the CNI bridge plugin. Pods scheduled here really
# run; the end-to-end scenarios run the Helm chart and a ChatCluster on it.
#
# Usage: e2e/scripts/node.sh install|start|stop
#   install  containerd, runc, the CNI plugins, iptables and conntrack from apt
#            (as root); the pause image of pod sandboxes (a static C program,
#            imaged from pause/Dockerfile by the e2e crate's image tool), cached
#            under $CONFAB_CACHE/pause-<version>/
#   start    needs kube.sh's control plane (kube.env). The node address
#            $CONFAB_NODE_IP on a bridge of its own, containerd with its own
#            socket and state, the kubelet (node $CONFAB_NODE_NAME, tainted
#            confab.dev/real-node=true:NoSchedule so only pods that ask come
#            here), kube-proxy (iptables; makes the `kubernetes` Service and
#            NodePorts work); waits until the Node is Ready and a pod runs on it.
#            State and logs under $CONFAB_RUN/node/; writes $CONFAB_RUN/node.env:
#              CONFAB_NODE_NAME, CONFAB_NODE_IP, CONFAB_NODE_TAINT,
#              CONFAB_CONTAINERD_ADDRESS, CONFAB_NODE_LOGS
#   stop     stops pods, kube-proxy (and its rules), the kubelet and containerd
#
# Pods get no cluster DNS: nothing in them resolves names (the operator dials
# shard pods by their IPs; the scenarios give NATS, CQL and S3 as addresses).
#
# Two settings these machines need (measured): the kubelet refuses cgroup v1
# unless `failCgroupV1: false`; and root lacks CAP_SYS_RESOURCE, so runc cannot
# set the negative oom_score_adj the kubelet asks for pod sandboxes — containerd's
# `restrict_oom_score_adj` keeps every container's at containerd's own.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

PAUSE_VERSION=1
PAUSE_DIR=$CONFAB_CACHE/pause-$PAUSE_VERSION
PAUSE_IMAGE=confab/pause:$PAUSE_VERSION
RUN=$CONFAB_RUN/node
ENV_FILE=$CONFAB_RUN/node.env
NODE_TAINT=confab.dev/real-node
POD_BRIDGE=confab-cni0   # the CNI bridge; its address is the pods' gateway
POD_SUBNET=10.88.0.0/24  # not kube.sh's POD_CIDR, which kwok's node draws from
START_TIMEOUT=${CONFAB_NODE_START_TIMEOUT:-120}
APT_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack)

# ---- install -----------------------------------------------------------------

cmd_install() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or install them"
    log "installing ${missing[*]} from apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ -s "$PAUSE_DIR/pause.tar" ]; then
    log "pause image already built in $PAUSE_DIR"
    return
  fi
  command -v gcc >/dev/null || die "gcc not found (needed for the pause program)"
  mkdir -p "$PAUSE_DIR"
  gcc -static -Os -o "$PAUSE_DIR/pause" "$here/pause/pause.c"
  (cd "$repo" && cargo run -q --locked -p confab-e2e --bin confab-image -- \
    --dockerfile "$here/pause/Dockerfile" --out "pause=$PAUSE_DIR/pause" \
    --tag "$PAUSE_IMAGE" --output "$PAUSE_DIR/pause.tar.tmp")
  mv "$PAUSE_DIR/pause.tar.tmp" "$PAUSE_DIR/pause.tar"
  log "pause image built: $PAUSE_DIR/pause.tar"
}

# ---- start / stop --------------------------------------------------------------

kubectl_api() { # kubectl_api METHOD PATH [curl args...]: the API server as admin.
  local method=$1 path=$2; shift 2
  curl -fsS --cacert "$CONFAB_KUBE_PKI/ca.crt" --cert "$CONFAB_KUBE_PKI/admin.crt" \
    --key "$CONFAB_KUBE_PKI/admin.key" -X "$method" "$APISERVER$path" "$@"
}

ctr_() { ctr --address "$RUN/containerd.sock" -n k8s.io "$@"; }

write_containerd_config() {
  containerd config default | python3 -c '
import re, sys
run, pause, cni_conf = sys.argv[1:4]
text = sys.stdin.read()
def set_key(key, value, section=None):
    global text
    pattern = re.compile(r"^(\s*)" + re.escape(key) + r" = .*$", re.M)
    start = text.index(section) if section else 0
    m = pattern.search(text, start)
    if not m:
        sys.exit(f"containerd config: no {key} after {section}")
    text = text[:m.start()] + f"{m.group(1)}{key} = {value}" + text[m.end():]
set_key("root", f"\"{run}/containerd/root\"")
set_key("state", f"\"{run}/containerd/state\"")
set_key("address", f"\"{run}/containerd.sock\"", "[grpc]")
set_key("sandbox_image", f"\"{pause}\"")
set_key("restrict_oom_score_adj", "true")
set_key("bin_dir", "\"/usr/lib/cni\"")
set_key("conf_dir", f"\"{cni_conf}\"")
set_key("path", f"\"{run}/containerd/opt\"", "[plugins.\"io.containerd.internal.v1.opt\"]")
print(text)
' "$RUN" "docker.io/$PAUSE_IMAGE" "$RUN/cni/net.d" >"$RUN/containerd.toml"
}

write_cni_config() {
  mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
  cat >"$RUN/cni/net.d/10-confab.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "confab",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false,
     "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$RUN/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
}

write_kubelet_config() {
  local port=$1 healthz=$2
  cat >"$RUN/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
address: $CONFAB_NODE_IP
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $CONFAB_KUBE_PKI/ca.crt}
authorization: {mode: AlwaysAllow}
registerWithTaints:
- {key: $NODE_TAINT, value: "true", effect: NoSchedule}
failSwapOn: false
maxPods: 40
serializeImagePulls: false
evictionHard: {memory.available: 200Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
}

write_kube_proxy_config() {
  local healthz=$1 metrics=$2
  cat >"$RUN/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $CONFAB_KUBE_RUN/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $CONFAB_NODE_NAME
clusterCIDR: $POD_SUBNET
healthzBindAddress: 127.0.0.1:$healthz
metricsBindAddress: 127.0.0.1:$metrics
# Leave the host's conntrack sysctls alone (root here may not set them).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

node_ready() { kubectl_api GET "/api/v1/nodes/$CONFAB_NODE_NAME" | json_holds "$NODE_READY"; }

# A pod of the pause image on this node: proves sandboxes, CNI and containers.
SMOKE_POD=confab-node-smoke
smoke_pod_running() {
  kubectl_api GET "/api/v1/namespaces/default/pods/$SMOKE_POD" |
    json_holds 'o.get("status", {}).get("phase") == "Running" and o["status"].get("podIP")'
}
smoke_pod_delete() {
  kubectl_api DELETE "/api/v1/namespaces/default/pods/$SMOKE_POD?gracePeriodSeconds=0" -o /dev/null
}
smoke_pod() {
  # One a failed start left behind would make the create a 409.
  smoke_pod_delete 2>/dev/null || true
  kubectl_api POST /api/v1/namespaces/default/pods -H 'Content-Type: application/json' \
    -o /dev/null --data-binary @- <<POD
{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "$SMOKE_POD"},
 "spec": {"nodeName": "$CONFAB_NODE_NAME", "automountServiceAccountToken": false,
   "tolerations": [{"key": "$NODE_TAINT", "operator": "Exists"}],
   "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
   "containers": [{"name": "pause", "image": "$PAUSE_IMAGE", "imagePullPolicy": "Never",
     "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
       "capabilities": {"drop": ["ALL"]}}}]}}
POD
  local i
  for ((i = 0; i < 60; i++)); do
    smoke_pod_running && break
    sleep 1
  done
  if ! smoke_pod_running; then
    kubectl_api GET "/api/v1/namespaces/default/events" | tail -c 4000 >&2 || true
    show_log_tail "$RUN/kubelet.log"
    smoke_pod_delete || true
    die "a pod did not run on $CONFAB_NODE_NAME"
  fi
  smoke_pod_delete
}

cmd_start() {
  [ -f "$CONFAB_RUN/kube.env" ] || die "the control plane is not running: run kube.sh start first"
  # shellcheck disable=SC1091
  source "$CONFAB_RUN/kube.env"
  local port; port=$(sed -n 's/^# apiserver port //p' "$CONFAB_RUN/kube.env")
  APISERVER=https://127.0.0.1:$port
  CONFAB_KUBE_RUN=$(dirname "$CONFAB_KUBECONFIG")
  local b
  for b in kubelet kube-proxy; do
    [ -x "$CONFAB_KUBE_BIN/$b" ] || die "$b not built: run kube.sh install"
  done
  for b in containerd runc ctr iptables conntrack; do
    command -v "$b" >/dev/null || die "$b not found: run $0 install"
  done
  [ -s "$PAUSE_DIR/pause.tar" ] || die "pause image not built: run $0 install"
  cmd_stop
  rm -rf "$RUN" "$ENV_FILE"
  mkdir -p "$RUN"
  local t0=$SECONDS

  node_address
  # Service traffic from one pod to another on the bridge is routed back out.
  echo 1 >/proc/sys/net/ipv4/ip_forward
  write_cni_config
  write_containerd_config
  run_bg containerd containerd --config "$RUN/containerd.toml"
  ready containerd 30 ctr_ version
  ctr_ images import --no-unpack=false "$PAUSE_DIR/pause.tar" >/dev/null

  local kubelet_port kubelet_healthz proxy_healthz proxy_metrics
  local ports; ports=$(free_port 4)
  read -r kubelet_port kubelet_healthz proxy_healthz proxy_metrics <<<"${ports//$'\n'/ }"
  write_kubelet_config "$kubelet_port" "$kubelet_healthz"
  run_bg kubelet "$CONFAB_KUBE_BIN/kubelet" --config "$RUN/kubelet.yaml" \
    --kubeconfig "$CONFAB_KUBE_RUN/kubelet.kubeconfig" \
    --hostname-override "$CONFAB_NODE_NAME" --node-ip "$CONFAB_NODE_IP" \
    --root-dir "$RUN/kubelet" --cert-dir "$RUN/kubelet-pki" \
    --node-labels "$NODE_TAINT=true"
  write_kube_proxy_config "$proxy_healthz" "$proxy_metrics"
  run_bg kube-proxy "$CONFAB_KUBE_BIN/kube-proxy" --config "$RUN/kube-proxy.yaml"
  ready kubelet "$START_TIMEOUT" node_ready
  ready kube-proxy 60 curl -fsS "http://127.0.0.1:$proxy_healthz/healthz"
  smoke_pod

  cat >"$ENV_FILE" <<ENV
# written by e2e/scripts/node.sh start
export CONFAB_NODE_NAME=$CONFAB_NODE_NAME
export CONFAB_NODE_IP=$CONFAB_NODE_IP
export CONFAB_NODE_TAINT=$NODE_TAINT
export CONFAB_CONTAINERD_ADDRESS=$RUN/containerd.sock
export CONFAB_NODE_LOGS=$RUN
ENV
  log "node $CONFAB_NODE_NAME ready in $((SECONDS - t0))s at $CONFAB_NODE_IP (logs $RUN)"
}

cmd_stop() {
  if [ -z "${CONFAB_KUBE_BIN:-}" ] && [ -f "$CONFAB_RUN/kube.env" ]; then
    # shellcheck disable=SC1091
    source "$CONFAB_RUN/kube.env"
  fi
  stop_pidfile "$RUN/kube-proxy.pid"
  if [ -x "${CONFAB_KUBE_BIN:-}/kube-proxy" ]; then
    "$CONFAB_KUBE_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  fi
  stop_pidfile "$RUN/kubelet.pid"
  # Every container and sandbox, before containerd: their shims outlive it.
  if [ -S "$RUN/containerd.sock" ]; then
    local t
    for t in $(ctr_ tasks ls -q 2>/dev/null); do
      ctr_ tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
  fi
  stop_pidfile "$RUN/containerd.pid"
  pkill -9 -f "containerd-shim.*-address $RUN/containerd.sock" 2>/dev/null || true
  # Mounts the kubelet and containerd left (volumes, rootfs, netns), deepest first.
  awk -v run="$RUN/" 'index($2, run) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ip link del "$POD_BRIDGE" 2>/dev/null || true
  rm -f "$ENV_FILE"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
