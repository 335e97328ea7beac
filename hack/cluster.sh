#!/usr/bin/env bash
# A real, throwaway Kubernetes control plane as plain processes on 127.0.0.1: etcd, kube-apiserver
# (RBAC on), kube-controller-manager (all default controllers), kube-scheduler, KWOK (3 fake nodes
# whose pods go Running/Ready without containers) and Prometheus. No Docker, no images.
#
#   hack/cluster.sh up       start (or reuse a healthy cluster); installs the CRDs of Gateway API,
#                            Argo CD and Flux (hack/gitops-crds.sh) and ./crds
#   hack/cluster.sh env      print `export` lines:  eval "$(hack/cluster.sh env)"
#   hack/cluster.sh status   show processes and /readyz; exit 1 if the cluster is not up
#   hack/cluster.sh down     stop what `up` started and delete the state dir (safe to repeat)
#
# Everything lives in the state dir FLEDGE_CLUSTER_DIR (default /tmp/fledge-cluster-$USER), nothing
# in the repo. Ports are picked free at `up`, so clusters with different dirs run side by side.
# Exported by `env`: KUBECONFIG (admin, system:masters, inline certs), FLEDGE_CLUSTER_DIR,
# FLEDGE_PROMETHEUS_URL, FLEDGE_PROMETHEUS_TARGETS_DIR, FLEDGE_PROMETHEUS_BIN (the binary it
# runs), and PATH with the built kubectl first.
#
# The data plane (docs/dataplane.md; FLEDGE_DATAPLANE=auto, the default, starts it when run as root
# with the privileges `ip netns` needs, =on insists and fails saying why, =off leaves it out;
# `make test` runs with =on): the fake nodes' pod range (a free 10.X.0.0/16 picked at `up`) lives
# in a network namespace of its own, reached through a veth pair and a host route; fledge-pod-agent
# (src/bin/fledge-pod-agent/) makes every pod answer HTTP on its IP and sets Ready once it
# does; Traefik (hack/build-traefik.sh) runs the Kubernetes Gateway provider for GatewayClass
# `fledge-local` and Gateway `fledge-gateway/local`, whose HTTP listener is on a free loopback
# port. `env` then also exports FLEDGE_GATEWAY_URL (that listener), FLEDGE_GATEWAY_NAMESPACE,
# FLEDGE_GATEWAY_NAME, FLEDGE_POD_AGENT_URL (its /pods and /metrics) and FLEDGE_TRAEFIK_URL (its
# /metrics and /ping). Prometheus scrapes Traefik (job traefik) and the agent (job pod-agent).
#
# The mirroring gateway (FLEDGE_MIRROR_GATEWAY=auto, the default, starts it with the data plane
# when the ports Envoy Gateway cannot be told to leave are free; =on insists, =off leaves it out):
# Traefik does not implement HTTPRoute's RequestMirror filter, so Envoy Gateway
# (hack/build-envoy-gateway.sh) runs beside it, outside the cluster (its Host infrastructure: it
# starts envoy as its own child process), for GatewayClass `fledge-local-envoy` and Gateway
# `fledge-gateway/mirror`, whose HTTP listener is on a free port. `env` then also exports
# FLEDGE_MIRROR_GATEWAY_URL, FLEDGE_MIRROR_GATEWAY_NAMESPACE, FLEDGE_MIRROR_GATEWAY_NAME and
# FLEDGE_MIRROR_GATEWAY_CONTROLLER (the controllerName it writes into route status). Envoy
# Gateway and envoy always listen on ports no setting moves, on all addresses (eg_fixed_ports),
# so one cluster per machine runs it; another cluster's `up` in auto leaves it out, saying so.
#
# Tests add a Prometheus scrape target (Prometheus 2.42 has no scrape_config_files, so file_sd) by
# writing $FLEDGE_PROMETHEUS_TARGETS_DIR/<name>.json (write <name>.json.tmp, then rename):
#   [{"targets": ["127.0.0.1:8080"], "labels": {"job": "my-test", "__metrics_path__": "/metrics"}}]
# Prometheus scrapes it every 1s from within ~1s; delete the file to stop. Without a "job" label
# the job is "fledge-tests". The lifecycle and admin APIs are on (/-/reload, delete_series).
#
# For hack/bench-peers.sh: FLEDGE_SERVICE_CIDR (default 10.0.0.0/24), FLEDGE_AUDIT_POLICY (an audit
# policy file; the log is $dir/logs/audit.log), FLEDGE_CM_QPS (the controller-manager's client QPS)
# and FLEDGE_APISERVER_FEATURE_GATES (the API server's --feature-gates, none by default).
# FLEDGE_ENDPOINT_BATCH_PERIOD: the controller-manager's --endpointslice-updates-batch-period (1s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
source "$here/versions.sh"

dir=${FLEDGE_CLUSTER_DIR:-/tmp/fledge-cluster-${USER:-$(id -un)}}
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
dir=${dir%/}
crds_dir=${FLEDGE_CRDS_DIR-$repo/crds}     # CRDs applied at `up`; set FLEDGE_CRDS_DIR= to skip them
timeout=${FLEDGE_CLUSTER_TIMEOUT:-120}   # seconds for each wait; generous for a busy 2-core box
# hack/bench-peers.sh needs room for thousands of Services (Flagger makes three per canary) and an
# audit log of every request (a policy file; the log goes to $dir/logs/audit.log).
service_cidr=${FLEDGE_SERVICE_CIDR:-10.0.0.0/24}
audit_policy=${FLEDGE_AUDIT_POLICY:-}
# The controller-manager's client limit (its default, 20 a second, makes pod creation the
# bottleneck of a benchmark with thousands of pods); empty keeps the default.
cm_qps=${FLEDGE_CM_QPS:-}
# EndpointSlices follow pod readiness after this batch period (large clusters set one to cut
# API writes). Gateways route by EndpointSlices, not by ReplicaSet status, so a weight moved as
# soon as a ReplicaSet reports available pods would meet a Service with no ready endpoint: 1s
# makes that lag certain in every local run instead of a rare race. Empty keeps the default (0).
endpoint_batch=${FLEDGE_ENDPOINT_BATCH_PERIOD-1s}
# Fallback only: built from the Go module proxy when Debian's package cannot be installed.
PROMETHEUS_GO_VERSION=v0.53.3            # = Prometheus 2.53.3
components=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus)
dataplane_components=(pod-agent traefik)
dataplane=${FLEDGE_DATAPLANE:-auto}       # auto (on when it can be) | on (or fail) | off
mirror_gateway=${FLEDGE_MIRROR_GATEWAY:-auto}  # the same, for Envoy Gateway (needs the data plane)
# Listeners that no setting moves, all on 0.0.0.0: Envoy Gateway's xDS (18000), Wasm cache
# (18002), controller metrics (8080), health probe (8081) and webhook (9443), and envoy's
# readiness (19003).
eg_fixed_ports=(18000 18002 8080 8081 9443 19003)
eg_controller=gateway.envoyproxy.io/gatewayclass-controller
export PATH="$K8S_BIN:$KWOK_BIN:$PATH"

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# True if $1 is alive and was started for THIS dir (every component has "$dir/" in its arguments),
# so a recycled pid or another cluster's process is never touched. Zombies have no cmdline.
ours() { [ -n "$1" ] && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$dir/"; }
pid_of() { cat "$dir/pids/$1.pid" 2>/dev/null || true; }

# TERM, wait up to 5s, then KILL. etcd goes last: an apiserver that loses etcd first hangs in shutdown.
stop_all() {
  # The Graphite and InfluxDB the e2e tests start in this dir (hack/metric-servers.sh).
  [ -e "$dir/metric-servers" ] && bash "$here/metric-servers.sh" down "$dir/metric-servers" || true
  stop_envoy_gateway
  stop traefik pod-agent
  stop kube-apiserver kube-controller-manager kube-scheduler kwok prometheus
  stop etcd
}
stop() {
  local name pid alive=()
  for name in "$@"; do pid=$(pid_of "$name"); if ours "$pid"; then alive+=("$pid"); fi; done
  stop_pids "${alive[@]}"
}
stop_pids() {
  local alive=("$@") pid still i
  [ ${#alive[@]} -eq 0 ] && return 0
  kill -TERM "${alive[@]}" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    still=(); for pid in "${alive[@]}"; do if ours "$pid"; then still+=("$pid"); fi; done
    [ ${#still[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${still[@]}" 2>/dev/null || true
}

# The envoys Envoy Gateway started for this dir: its own children, which it stops on TERM; found
# by binary and dir as well, in case it died without taking them along.
envoy_pids() {
  local p pid
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$ENVOY_GATEWAY_BIN/envoy" ] && ours "$pid" && echo "$pid"
  done
  return 0
}
stop_envoy_gateway() {
  stop envoy-gateway
  local left; left=$(envoy_pids)
  # shellcheck disable=SC2086 # one pid a word
  [ -z "$left" ] || stop_pids $left
}

cmd_down() {
  if [ ! -e "$dir" ]; then net_down; return 0; fi
  # Refuse to rm -rf a directory this script did not create (e.g. FLEDGE_CLUSTER_DIR=$HOME).
  [ -e "$dir/.fledge-cluster" ] || [ -z "$(ls -A "$dir")" ] || die "$dir is not a fledge cluster dir; not deleting it"
  stop_all
  net_down
  rm -rf "$dir"
}

# --- pod network -------------------------------------------------------------------------------
# Names derive from the state dir, so `down` (or the next `up`) finds what a crashed run left even
# when the state dir is gone. Interface names have at most 15 characters.
net_names() {
  local id; id=$(printf %s "$dir" | sha256sum | cut -c1-8)
  NETNS=fledge-$id VETH_HOST=fl${id}h VETH_POD=fl${id}p
}
# Deleting the namespace deletes its end of the veth, which deletes the host end and the route
# through it; the explicit link delete covers a host end whose peer is already gone.
net_down() {
  [ "$(id -u)" = 0 ] || return 0
  net_names
  ip netns del "$NETNS" 2>/dev/null || true
  ip netns del "$NETNS-probe" 2>/dev/null || true
  ip link del "$VETH_HOST" 2>/dev/null || true
}
dataplane_wanted() {
  local why
  case $dataplane in
    off | 0 | false) return 1 ;;
    on | 1 | true | auto) ;;
    *) die "FLEDGE_DATAPLANE=$dataplane: use on, auto or off" ;;
  esac
  if why=$(netns_unusable); then
    [ "$dataplane" = auto ] || die "FLEDGE_DATAPLANE=$dataplane: no pod network: $why. The data plane needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN (a VM, or a privileged container) and iproute2. Without it: FLEDGE_DATAPLANE=off, and leave out the tests that need it (cargo test --test e2e -- --skip dataplane::)"
    log "no pod network ($why); pods go Ready without answering, no gateway"
    return 1
  fi
}
# Prints why the pod network cannot be made here, or fails (nothing to say) when it can: a
# throwaway namespace with a veth pair inside it, so the probe touches nothing on the host. Root
# in a container without the capabilities gets this far and no further.
netns_unusable() {
  [ "$(id -u)" = 0 ] || { echo "not root (uid $(id -u))"; return 0; }
  command -v ip >/dev/null || { echo "no ip command (iproute2)"; return 0; }
  net_names
  local probe=${NETNS}-probe out
  ip netns del "$probe" 2>/dev/null || true
  if ! out=$(ip netns add "$probe" 2>&1); then echo "'ip netns add' failed: $out"; return 0; fi
  if ! out=$(ip -n "$probe" link add flprobe0 type veth peer name flprobe1 2>&1); then
    ip netns del "$probe" 2>/dev/null || true
    echo "'ip link add ... type veth' failed: $out"; return 0
  fi
  ip netns del "$probe" 2>/dev/null || true
  return 1
}
# A free 10.X.0.0/16 (X in 200..254: no route or address on this machine in it), the namespace,
# the veth pair, and the host route. The host end has 10.X.255.254, which is also the only
# address the namespace can reach: it has no default route, so nothing in it talks to anything but
# this machine.
net_up() {
  net_names; net_down
  # Two `up`s of different clusters must not pick the same range.
  mkdir -p "$FLEDGE_CACHE"; exec 8>"$FLEDGE_CACHE/.net.lock"; flock 8
  local used x
  used=$({ ip -4 route show table all; ip -4 addr show; } 2>/dev/null)
  for x in $(seq 200 255); do
    ((x < 255)) || die "no free 10.X.0.0/16 for the pod network (200..254 all in use)"
    grep -qE "(^|[^0-9.])10\\.$x\\." <<<"$used" || break
  done
  POD_NET=10.$x
  local host_ip=$POD_NET.255.254
  ip netns add "$NETNS"
  ip link add "$VETH_HOST" type veth peer name "$VETH_POD" netns "$NETNS"
  ip addr add "$host_ip/32" dev "$VETH_HOST"
  ip link set "$VETH_HOST" up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" link set "$VETH_POD" up
  # An address of its own that no pod ever has: Linux flushes a device's routes when its last
  # IPv4 address goes, and pod addresses come and go.
  ip -n "$NETNS" addr add "$POD_NET.255.253/32" dev "$VETH_POD"
  ip -n "$NETNS" route add "$host_ip/32" dev "$VETH_POD"
  ip route add "$POD_NET.0.0/16" dev "$VETH_HOST" src "$host_ip"
  exec 8>&-
  log "pod network $POD_NET.0.0/16 in netns $NETNS (host end $VETH_HOST $host_ip)"
}

load_env() { [ -f "$dir/cluster.env" ] && source "$dir/cluster.env"; }

readyz() { curl -fsS --max-time 2 --cacert "$dir/pki/ca.crt" "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null 2>&1; }

cmd_status() {
  load_env || { log "no cluster at $dir"; return 1; }
  local ok=0 name pid
  [ "${DATAPLANE:-0}" = 1 ] && components+=("${dataplane_components[@]}")
  [ "${MIRROR_GATEWAY:-0}" = 1 ] && components+=(envoy-gateway)
  for name in "${components[@]}"; do
    pid=$(pid_of "$name")
    if ours "$pid"; then echo "$name: running (pid $pid)"; else echo "$name: NOT running"; ok=1; fi
  done
  if readyz; then echo "apiserver /readyz: ok (https://127.0.0.1:$APISERVER_PORT)"; else echo "apiserver /readyz: FAILED"; ok=1; fi
  if curl -fsS --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null 2>&1; then
    echo "prometheus /-/ready: ok (http://127.0.0.1:$PROMETHEUS_PORT)"
  else echo "prometheus /-/ready: FAILED"; ok=1; fi
  if [ "${DATAPLANE:-0}" = 1 ]; then
    if curl -fsS --max-time 2 "http://127.0.0.1:$TRAEFIK_PORT/ping" >/dev/null 2>&1; then
      echo "traefik /ping: ok (gateway http://127.0.0.1:$GATEWAY_PORT)"
    else echo "traefik /ping: FAILED"; ok=1; fi
    if [ "${MIRROR_GATEWAY:-0}" = 1 ]; then
      if [ -n "$(envoy_pids)" ] && mirror_gateway_answers; then
        echo "envoy: running (mirror gateway http://127.0.0.1:$MIRROR_GATEWAY_PORT)"
      else echo "envoy: NOT answering on the mirror gateway's port $MIRROR_GATEWAY_PORT"; ok=1; fi
    fi
    net_names
    if ip netns list 2>/dev/null | grep -q "^$NETNS\\b"; then echo "pod network: $POD_NET.0.0/16 in netns $NETNS"
    else echo "pod network: netns $NETNS MISSING"; ok=1; fi
  fi
  return $ok
}

cmd_env() {
  load_env || die "no cluster at $dir (run: hack/cluster.sh up)"
  printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
  printf 'export FLEDGE_CLUSTER_DIR=%q\n' "$dir"
  printf 'export FLEDGE_PROMETHEUS_URL=%q\n' "http://127.0.0.1:$PROMETHEUS_PORT"
  printf 'export FLEDGE_PROMETHEUS_TARGETS_DIR=%q\n' "$dir/prometheus/targets"
  if [ -n "${PROMETHEUS_BIN:-}" ]; then printf 'export FLEDGE_PROMETHEUS_BIN=%q\n' "$PROMETHEUS_BIN"; fi
  printf 'export PATH=%q:"$PATH"\n' "$K8S_BIN:$KWOK_BIN"
  if [ "${DATAPLANE:-0}" = 1 ]; then
    printf 'export FLEDGE_GATEWAY_URL=%q\n' "http://127.0.0.1:$GATEWAY_PORT"
    printf 'export FLEDGE_GATEWAY_NAMESPACE=fledge-gateway FLEDGE_GATEWAY_NAME=local\n'
    printf 'export FLEDGE_POD_AGENT_URL=%q\n' "http://127.0.0.1:$AGENT_PORT"
    printf 'export FLEDGE_TRAEFIK_URL=%q\n' "http://127.0.0.1:$TRAEFIK_PORT"
  else
    echo 'unset FLEDGE_GATEWAY_URL FLEDGE_GATEWAY_NAMESPACE FLEDGE_GATEWAY_NAME FLEDGE_POD_AGENT_URL FLEDGE_TRAEFIK_URL'
  fi
  if [ "${MIRROR_GATEWAY:-0}" = 1 ]; then
    printf 'export FLEDGE_MIRROR_GATEWAY_URL=%q\n' "http://127.0.0.1:$MIRROR_GATEWAY_PORT"
    printf 'export FLEDGE_MIRROR_GATEWAY_NAMESPACE=fledge-gateway FLEDGE_MIRROR_GATEWAY_NAME=mirror\n'
    printf 'export FLEDGE_MIRROR_GATEWAY_CONTROLLER=%q\n' "$eg_controller"
  else
    echo 'unset FLEDGE_MIRROR_GATEWAY_URL FLEDGE_MIRROR_GATEWAY_NAMESPACE FLEDGE_MIRROR_GATEWAY_NAME FLEDGE_MIRROR_GATEWAY_CONTROLLER'
  fi
}

# Poll "$@" until it succeeds; fail early if component $1's process died, showing its log.
wait_for() {
  local what=$1 comp=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$comp" ] && ! ours "$(pid_of "$comp")"; then
      tail -n 30 "$dir/logs/$comp.log" >&2; die "$comp exited while waiting for $what"
    fi
    if ((SECONDS >= deadline)); then
      [ -n "$comp" ] && tail -n 30 "$dir/logs/$comp.log" >&2
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 0.2
  done
}

# Start a daemon in its own session (so it outlives this script and the caller's process group),
# logging to logs/<name>.log. The pid is written from inside, after setsid, so it is the daemon's.
start() {
  local name=$1; shift
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$dir/pids/$name.pid" "$@" \
    >"$dir/logs/$name.log" 2>&1 </dev/null 9>&- &
  local i; for ((i = 0; i < 50; i++)); do [ -s "$dir/pids/$name.pid" ] && return 0; sleep 0.05; done
  die "could not start $name"
}

free_ports() {   # bind them all at once so the N ports are distinct
  python3 -c 'import socket,sys
ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# --- certificates -----------------------------------------------------------------------------
# TLS keys: ECDSA P-256 in PKCS#8 (instant to generate; read by kubectl and kube-rs with rustls or
# openssl). The service-account signing key stays RSA, the most widely accepted token algorithm.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# issue <name> <subject> <extendedKeyUsage> [subjectAltName]  -> pki/<name>.{key,crt}, signed by the CA
issue() {
  local p=$dir/pki ext
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=$3"
  [ -n "${4:-}" ] && ext+=$'\n'"subjectAltName=$4"
  newkey "$p/$1.key"
  openssl req -new -key "$p/$1.key" -subj "$2" |
    openssl x509 -req -CA "$p/ca.crt" -CAkey "$p/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -extfile <(echo "$ext") -out "$p/$1.crt" 2>/dev/null
}

make_pki() {
  local p=$dir/pki
  newkey "$p/ca.key"
  openssl req -x509 -new -key "$p/ca.key" -subj "/CN=fledge-local-ca" -days 3650 -config /dev/null \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -addext "subjectKeyIdentifier=hash" -out "$p/ca.crt"
  issue apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin "/O=system:masters/CN=fledge-admin" clientAuth
  issue controller-manager "/CN=system:kube-controller-manager" clientAuth
  issue scheduler "/CN=system:kube-scheduler" clientAuth
  issue front-proxy-client "/CN=front-proxy-client" clientAuth   # aggregation layer
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$p/sa.key" 2>/dev/null
  openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub"
}

# kubeconfig <file> <client cert name>; data inline so the file is self-contained (kube-rs, kubectl).
kubeconfig() {
  local b="base64 -w0"
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fledge
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $($b "$dir/pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b "$dir/pki/$2.crt")
    client-key-data: $($b "$dir/pki/$2.key")
contexts:
- name: fledge
  context: {cluster: fledge, user: $2}
current-context: fledge
EOF
}

# --- Prometheus --------------------------------------------------------------------------------
prometheus_bin() {
  local cached=$FLEDGE_CACHE/prometheus-$PROMETHEUS_GO_VERSION/bin/prometheus
  local unpacked=$FLEDGE_CACHE/prometheus-deb/usr/bin/prometheus
  if [ -x "$unpacked" ]; then echo "$unpacked"; return; fi
  if [ -x "$cached" ]; then echo "$cached"; return; fi
  # Debian's package, unpacked into the cache rather than installed: installing it would also
  # add a system user and enable a system Prometheus on :9090, which is not ours to change.
  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then
    log "fetching Debian's prometheus package (unpacked into $FLEDGE_CACHE, not installed) ..."
    local tmp; tmp=$(mktemp -d)
    if (cd "$tmp" && { apt-get download prometheus || { [ "$(id -u)" = 0 ] && apt-get update -qq && apt-get download prometheus; }; }) >&2 2>&1 &&
      dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root" && [ -x "$tmp/root/usr/bin/prometheus" ]; then
      rm -rf "$FLEDGE_CACHE/prometheus-deb"; mkdir -p "$FLEDGE_CACHE"
      mv "$tmp/root" "$FLEDGE_CACHE/prometheus-deb"; rm -rf "$tmp"
      echo "$unpacked"; return
    fi
    rm -rf "$tmp"
  fi
  if [ -x /usr/bin/prometheus ]; then echo /usr/bin/prometheus; return; fi
  # Fallback: build from the module proxy. Its go.mod has replace/exclude directives, so `go
  # install pkg@version` refuses it; build inside the downloaded module instead.
  log "building prometheus $PROMETHEUS_GO_VERSION from source (slow, once) ..."
  local src
  src=$(cd / && go mod download -json "github.com/prometheus/prometheus@$PROMETHEUS_GO_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$(dirname "$cached")"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$cached.tmp" ./cmd/prometheus) >&2
  mv "$cached.tmp" "$cached"; echo "$cached"
}

write_prometheus_config() {
  local p=$dir/prometheus
  mkdir -p "$p/targets" "$p/data"
  cat >"$p/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: prometheus
  static_configs: [{targets: ["127.0.0.1:$PROMETHEUS_PORT"]}]
- job_name: fledge-tests   # tests drop target files here; see the top of hack/cluster.sh
  file_sd_configs:
  - files: ["$p/targets/*.json", "$p/targets/*.yml", "$p/targets/*.yaml"]
    refresh_interval: 1s
EOF
  if [ "$DATAPLANE" = 1 ]; then cat >>"$p/prometheus.yml" <<EOF
- job_name: traefik
  static_configs: [{targets: ["127.0.0.1:$TRAEFIK_PORT"]}]
- job_name: pod-agent
  static_configs: [{targets: ["127.0.0.1:$AGENT_PORT"]}]
EOF
  fi
}

# --- data plane --------------------------------------------------------------------------------
# The agent is built from this repo (a no-op when `cargo test`/`cargo build` already did);
# FLEDGE_POD_AGENT_BIN picks another build.
pod_agent_bin() {
  if [ -n "${FLEDGE_POD_AGENT_BIN:-}" ]; then echo "$FLEDGE_POD_AGENT_BIN"; return; fi
  (cd "$repo" && nice -n "${FLEDGE_BUILD_NICE:-0}" cargo build --locked --quiet --bin fledge-pod-agent) >&2
  echo "$repo/target/debug/fledge-pod-agent"
}

write_traefik_config() {
  mkdir -p "$dir/traefik"
  # No version check, no usage report: nothing leaves this machine.
  cat >"$dir/traefik/traefik.yml" <<EOF
global: {checkNewVersion: false, sendAnonymousUsage: false}
entryPoints:
  web: {address: "127.0.0.1:$GATEWAY_PORT"}
  traefik: {address: "127.0.0.1:$TRAEFIK_PORT"}
ping: {entryPoint: traefik}
# The API on the same loopback entry point: the tests read from it which weights Traefik runs
# (route status is written before Traefik applies a route).
api: {insecure: true, dashboard: false}
metrics:
  prometheus:
    entryPoint: traefik
    addServicesLabels: true
    addRoutersLabels: true
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
providers:
  # Traefik waits this long after a provider's change before applying it (2s by default); the
  # route status it writes comes before that, so keep the gap short.
  providersThrottleDuration: 200ms
  kubernetesGateway:
    statusAddress: {ip: 127.0.0.1}
    # Publishes the GatewayClass's status.supportedFeatures (Traefik writes the list only then).
    experimentalChannel: true
log: {level: INFO}
EOF
}

# The listener's port must be the entry point's: that is how Traefik matches the two.
apply_gateway() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: fledge-local}
spec: {controllerName: traefik.io/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: fledge-gateway}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: local, namespace: fledge-gateway}
spec:
  gatewayClassName: fledge-local
  listeners:
  - name: http
    protocol: HTTP
    port: $GATEWAY_PORT
    allowedRoutes: {namespaces: {from: All}}
EOF
}

gateway_programmed() {
  [ "$(kubectl get gateway local -n fledge-gateway -o jsonpath='{.status.conditions[?(@.type=="Programmed")].status}')" = True ]
}

# Envoy Gateway with the Kubernetes provider and the Host infrastructure: it reads the cluster
# with the admin kubeconfig (KUBECONFIG) and runs envoy as its child. Everything it writes is
# under $dir/envoy-gateway; envoy comes from the cache through a link where func-e (which EG runs
# envoy with) looks for an installed version, so nothing is downloaded. No leader election (one
# replica), no Prometheus endpoint (it would take the fixed port 19001).
mirror_gateway_wanted() {
  [ "$DATAPLANE" = 1 ] || return 1
  case $mirror_gateway in
    off | 0 | false) return 1 ;;
    on | 1 | true | auto) ;;
    *) die "FLEDGE_MIRROR_GATEWAY=$mirror_gateway: use on, auto or off" ;;
  esac
  local port busy=()
  for port in "${eg_fixed_ports[@]}"; do
    python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", int(sys.argv[1])))' "$port" 2>/dev/null || busy+=("$port")
  done
  [ ${#busy[@]} -eq 0 ] && return 0
  local why="ports in use: ${busy[*]} (Envoy Gateway always listens on ${eg_fixed_ports[*]}; is another cluster running it?)"
  [ "$mirror_gateway" = auto ] || die "FLEDGE_MIRROR_GATEWAY=$mirror_gateway: $why"
  log "no mirroring gateway: $why"
  return 1
}

write_envoy_gateway_config() {
  local g=$dir/envoy-gateway
  mkdir -p "$g/data/envoy-versions/$ENVOY_VERSION/bin" "$g/state" "$g/run"
  ln -sfn "$ENVOY_GATEWAY_BIN/envoy" "$g/data/envoy-versions/$ENVOY_VERSION/bin/envoy"
  cat >"$g/envoy-gateway.yaml" <<EOF
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: EnvoyGateway
gateway: {controllerName: $eg_controller}
provider:
  type: Custom
  custom:
    resource:
      type: Kubernetes
      kubernetes: {leaderElection: {disable: true}}
    infrastructure:
      type: Host
      host: {configHome: "$g/config", dataHome: "$g/data", stateHome: "$g/state", runtimeDir: "$g/run"}
admin: {address: {host: 127.0.0.1, port: $EG_ADMIN_PORT}}
telemetry: {metrics: {prometheus: {disable: true}}}
logging: {level: {default: info}}
# Envoy Gateway v1.9.1 fails to read its default Envoy version from its image reference (a
# digest follows the tag) and would then ask func-e to look the latest up online.
envoyProxy: {provider: {type: Host, host: {envoyVersion: "$ENVOY_VERSION"}}}
EOF
  # The xDS server's and envoy's certificates: envoy's from $g/config/certs, the server's from
  # /certs (see the start below), and with the Kubernetes provider the translator also wants
  # envoy's and the HMAC secret as Secrets of its namespace, as `certgen` without --local would
  # make them; made here from the same files, so one CA signs all.
  "$ENVOY_GATEWAY_BIN/envoy-gateway" certgen --local --config-home "$g/config" >"$dir/logs/envoy-gateway-certgen.log" 2>&1
  local c=$g/config/certs
  { kubectl create secret generic envoy -n fledge-gateway --type=kubernetes.io/tls --dry-run=client -o yaml \
      --from-file="$c/envoy/ca.crt" --from-file="$c/envoy/tls.crt" --from-file="$c/envoy/tls.key"
    echo ---
    kubectl create secret generic envoy-oidc-hmac -n fledge-gateway --dry-run=client -o yaml \
      --from-file="$c/envoy-oidc-hmac/hmac-secret"
  } | kubectl apply -f - >/dev/null
}

# With the Host infrastructure the Gateway gets no address, so it is never Programmed; envoy
# answering on the listener's port (404 before any route) is what says it runs the Gateway.
apply_mirror_gateway() {
  kubectl apply -f - >/dev/null <<EOF
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: fledge-local-envoy}
spec: {controllerName: $eg_controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mirror, namespace: fledge-gateway}
spec:
  gatewayClassName: fledge-local-envoy
  listeners:
  - name: http
    protocol: HTTP
    port: $MIRROR_GATEWAY_PORT
    allowedRoutes: {namespaces: {from: All}}
EOF
}
mirror_gateway_answers() { curl -sS --max-time 2 -o /dev/null "http://127.0.0.1:$MIRROR_GATEWAY_PORT/"; }

# --- cluster contents --------------------------------------------------------------------------
create_nodes() {
  local i
  for i in 0 1 2; do cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
spec:
  podCIDR: $POD_NET.$i.0/24
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
  addresses: [{type: InternalIP, address: 10.1.0.$((i + 1))}, {type: Hostname, address: kwok-node-$i}]
---
EOF
  done | kubectl apply -f - >/dev/null
}

# Gateway API (from the Go module so no network beyond the module proxy), the Argo CD and Flux CRDs
# the GitOps examples need, then the repo's own CRDs; all server-side, as a large CRD exceeds the
# client-side annotation limit. The experimental channel's CRDs (a superset of the standard ones):
# only they keep a GatewayClass's status.supportedFeatures, which Traefik writes (with its
# experimentalChannel on, which also needs TCPRoute, TLSRoute and BackendTLSPolicy) and fledge
# reads to leave out filters the gateway does not implement.
apply_crds() {
  local gw files f gitops=() args=() gwargs=()
  gw=$(cd / && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  for f in "$gw"/config/crd/experimental/gateway.networking.*.yaml; do gwargs+=(-f "$f"); done
  kubectl apply --server-side --force-conflicts "${gwargs[@]}" >/dev/null
  files=$(bash "$here/gitops-crds.sh")
  while read -r f; do gitops+=(-f "$f"); done <<<"$files"
  kubectl apply --server-side --force-conflicts "${gitops[@]}" >/dev/null
  if [ -n "$crds_dir" ] && [ -d "$crds_dir" ]; then
    shopt -s nullglob; for f in "$crds_dir"/*.yaml "$crds_dir"/*.yml; do args+=(-f "$f"); done; shopt -u nullglob
  fi
  if [ ${#args[@]} -gt 0 ]; then
    log "applying $crds_dir"
    kubectl apply --server-side --force-conflicts "${args[@]}" >/dev/null
  fi
  # A CRD created a moment ago may have no conditions yet, which `kubectl wait` reports as an
  # error rather than waiting; try again until they are there.
  local i
  for i in $(seq 1 20); do
    kubectl wait --for=condition=Established crd --all --timeout="${timeout}s" >/dev/null 2>&1 && return
    sleep 0.5
  done
  kubectl wait --for=condition=Established crd --all --timeout="${timeout}s" >/dev/null
}

cmd_up() {
  mkdir -p "$(dirname "$dir")"
  exec 9>"$dir.lock"; flock 9   # two concurrent `up`s on one dir would fight; serialize them
  if load_env 2>/dev/null && cmd_status >/dev/null 2>&1; then
    log "already up at $dir; re-applying CRDs"
    export KUBECONFIG=$dir/kubeconfig
    apply_crds; summary; return
  fi
  cmd_down   # stale or crashed cluster: clear it
  DATAPLANE=0; if dataplane_wanted; then DATAPLANE=1; fi
  # Serialize builds: two first-time `up`s (different dirs) must not build the same binaries at once.
  mkdir -p "$FLEDGE_CACHE"; flock "$FLEDGE_CACHE/.build.lock" bash "$here/build-k8s.sh"
  local agent_bin=""
  if [ "$DATAPLANE" = 1 ]; then
    # Checked before taking the lock: a warm `up` must never wait behind another cluster's build.
    [ -x "$TRAEFIK_BIN/traefik" ] || flock "$FLEDGE_CACHE/.build.lock" bash "$here/build-traefik.sh"
    agent_bin=$(pod_agent_bin)
  fi
  MIRROR_GATEWAY=0; if mirror_gateway_wanted; then MIRROR_GATEWAY=1; fi
  if [ "$MIRROR_GATEWAY" = 1 ] && { [ ! -x "$ENVOY_GATEWAY_BIN/envoy-gateway" ] || [ ! -x "$ENVOY_GATEWAY_BIN/envoy" ]; }; then
    flock "$FLEDGE_CACHE/.build.lock" bash "$here/build-envoy-gateway.sh"
  fi
  local prom; prom=$(prometheus_bin)
  local start_time=$SECONDS
  mkdir -p "$dir"/{pki,pids,logs}; touch "$dir/.fledge-cluster"
  # On any failure: stop what we started but keep the dir (logs) for a look; the next up clears it.
  trap 'rc=$?; if [ $rc -ne 0 ]; then stop_all; net_down; log "up failed; logs in $dir/logs"; fi' EXIT

  read -r ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CM_PORT SCHED_PORT KWOK_PORT PROMETHEUS_PORT \
    GATEWAY_PORT TRAEFIK_PORT AGENT_PORT MIRROR_GATEWAY_PORT EG_ADMIN_PORT <<<"$(free_ports 12)"
  PROMETHEUS_BIN=$prom
  # Without the pod network the nodes keep the range KWOK used before it: nothing routes to it.
  POD_NET=10.244
  if [ "$DATAPLANE" = 1 ]; then net_up; fi
  declare -p ETCD_PORT ETCD_PEER_PORT APISERVER_PORT CM_PORT SCHED_PORT KWOK_PORT PROMETHEUS_PORT PROMETHEUS_BIN \
    GATEWAY_PORT TRAEFIK_PORT AGENT_PORT MIRROR_GATEWAY_PORT EG_ADMIN_PORT DATAPLANE MIRROR_GATEWAY POD_NET |
    sed 's/^declare -- //' >"$dir/cluster.env"
  make_pki
  kubeconfig "$dir/kubeconfig" admin
  export KUBECONFIG=$dir/kubeconfig   # for the kubectl calls below
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" scheduler
  write_prometheus_config

  start etcd "$K8S_BIN/etcd" --name=fledge --data-dir="$dir/etcd" --unsafe-no-fsync \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="fledge=http://127.0.0.1:$ETCD_PEER_PORT"
  start prometheus "$prom" --config.file="$dir/prometheus/prometheus.yml" \
    --storage.tsdb.path="$dir/prometheus/data" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle --web.enable-admin-api
  local audit=()
  if [ -n "$audit_policy" ]; then
    cp "$audit_policy" "$dir/audit-policy.yaml"
    audit=(--audit-policy-file="$dir/audit-policy.yaml" --audit-log-path="$dir/logs/audit.log" --audit-log-maxsize=1000000)
  fi
  start kube-apiserver "$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --cert-dir="$dir/apiserver" --tls-cert-file="$dir/pki/apiserver.crt" --tls-private-key-file="$dir/pki/apiserver.key" \
    --client-ca-file="$dir/pki/ca.crt" --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-account-key-file="$dir/pki/sa.pub" --service-account-signing-key-file="$dir/pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="$service_cidr" "${audit[@]}" ${FLEDGE_APISERVER_FEATURE_GATES:+--feature-gates="$FLEDGE_APISERVER_FEATURE_GATES"} \
    --requestheader-client-ca-file="$dir/pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$dir/pki/front-proxy-client.crt" --proxy-client-key-file="$dir/pki/front-proxy-client.key" \
    --endpoint-reconciler-type=none   # Endpoints may not hold 127.0.0.1; no in-cluster client needs them
  wait_for "kube-apiserver /readyz" kube-apiserver readyz

  local common=(--bind-address=127.0.0.1 --leader-elect=false)
  start kube-controller-manager "$K8S_BIN/kube-controller-manager" "${common[@]}" --secure-port="$CM_PORT" \
    --kubeconfig="$dir/controller-manager.kubeconfig" --cert-dir="$dir/controller-manager" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --controllers='*' --use-service-account-credentials --root-ca-file="$dir/pki/ca.crt" \
    ${cm_qps:+--kube-api-qps="$cm_qps" --kube-api-burst="$((cm_qps * 2))"} \
    ${endpoint_batch:+--endpointslice-updates-batch-period="$endpoint_batch"} \
    --service-account-private-key-file="$dir/pki/sa.key" --service-cluster-ip-range="$service_cidr" \
    --cluster-signing-cert-file="$dir/pki/ca.crt" --cluster-signing-key-file="$dir/pki/ca.key"
  start kube-scheduler "$K8S_BIN/kube-scheduler" "${common[@]}" --secure-port="$SCHED_PORT" \
    --kubeconfig="$dir/scheduler.kubeconfig" --cert-dir="$dir/scheduler" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" --authorization-kubeconfig="$dir/scheduler.kubeconfig"
  # HOME=$dir: kwok always loads ~/.kwok/kwok.yaml if present; keep a user's file out of it.
  # Without --config kwok uses its default node (heartbeat with lease) and pod (ready) stages; with
  # the pod network, hack/kwok-pod-stages.yaml leaves Ready to fledge-pod-agent.
  local kwok_config=()
  [ "$DATAPLANE" = 1 ] && kwok_config=(--config="$here/kwok-pod-stages.yaml")
  start kwok env HOME="$dir" "$KWOK_BIN/kwok" --kubeconfig="$dir/kubeconfig" "${kwok_config[@]}" \
    --server-address="127.0.0.1:$KWOK_PORT" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$POD_NET.0.1/16" --node-lease-duration-seconds=40

  create_nodes
  if [ "$DATAPLANE" = 1 ]; then
    start pod-agent "$agent_bin" --kubeconfig="$dir/kubeconfig" --netns="$NETNS" --device="$VETH_POD" \
      --pod-cidr="$POD_NET.0.0/16" --control-addr="127.0.0.1:$AGENT_PORT"
  fi
  apply_crds   # needs only the apiserver; overlaps the controller-manager's start-up
  wait_for "3 Ready fake nodes" kwok kubectl wait --for=condition=Ready node -l type=kwok --timeout=5s
  wait_for "default ServiceAccount" kube-controller-manager kubectl get serviceaccount default -n default
  wait_for "prometheus /-/ready" prometheus curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
  if [ "$DATAPLANE" = 1 ]; then
    # After the Gateway API CRDs: Traefik's provider watches them from its start.
    write_traefik_config
    start traefik env KUBECONFIG="$dir/kubeconfig" "$TRAEFIK_BIN/traefik" --configFile="$dir/traefik/traefik.yml"
    apply_gateway
    wait_for "traefik /ping" traefik curl -fsS "http://127.0.0.1:$TRAEFIK_PORT/ping"
    wait_for "Gateway fledge-gateway/local Programmed" traefik gateway_programmed
    wait_for "pod-agent /pods" pod-agent curl -fsS "http://127.0.0.1:$AGENT_PORT/pods"
  fi
  if [ "$MIRROR_GATEWAY" = 1 ]; then
    write_envoy_gateway_config
    # With the Kubernetes provider, Envoy Gateway's xDS server reads its certificate from /certs
    # (where a Deployment mounts its Secret), and nothing moves it. Rather than write keys into
    # the host's /certs, it runs in a mount namespace of its own (unshare keeps the pid) where
    # /certs is this cluster's certificates; on the host /certs stays an empty mount point.
    [ -d /certs ] || mkdir /certs || die "Envoy Gateway needs /certs to exist as a mount point: cannot create it"
    start envoy-gateway unshare --mount --propagation private \
      bash -c 'mount --bind "$0" /certs && exec "$@"' "$dir/envoy-gateway/config/certs/envoy-gateway" \
      env KUBECONFIG="$dir/kubeconfig" ENVOY_GATEWAY_NAMESPACE=fledge-gateway \
      "$ENVOY_GATEWAY_BIN/envoy-gateway" server --config-path="$dir/envoy-gateway/envoy-gateway.yaml"
    apply_mirror_gateway
    wait_for "envoy on the mirror Gateway fledge-gateway/mirror (port $MIRROR_GATEWAY_PORT)" envoy-gateway mirror_gateway_answers
  fi
  trap - EXIT
  log "up in $((SECONDS - start_time))s at $dir"
  summary
}

summary() {
  echo "export KUBECONFIG=$dir/kubeconfig" >&2
  echo "prometheus: http://127.0.0.1:$PROMETHEUS_PORT" >&2
  if [ "${DATAPLANE:-0}" = 1 ]; then
    echo "gateway: http://127.0.0.1:$GATEWAY_PORT (Gateway fledge-gateway/local; pods in $POD_NET.0.0/16)" >&2
  fi
  if [ "${MIRROR_GATEWAY:-0}" = 1 ]; then
    echo "mirroring gateway: http://127.0.0.1:$MIRROR_GATEWAY_PORT (Gateway fledge-gateway/mirror, Envoy Gateway)" >&2
  fi
  echo "everything: eval \"\$($0 env)\"" >&2
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env   (state dir: \$FLEDGE_CLUSTER_DIR, now $dir)" >&2; exit 2 ;;
esac
