#!/usr/bin/env bash
# `make demo`: a local control plane with its data plane (docs/dataplane.md: a Gateway, pods that
# answer), the operator, and the canary from examples/canary-basic.yaml behind an HTTPRoute, walked
# to promotion while clients send real requests through the gateway; then a bad revision (30% of
# its answers are 500s) that a metric analysis on the gateway's own metrics aborts. As it goes it
# prints the weight fledge set beside the split and the error rate the clients actually saw.
# Needs root (the pod network is a network namespace).
#   hack/demo.sh up     run the demo (leaves everything running to explore)
#   hack/demo.sh down   stop the operator and the control plane
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export FLEDGE_CLUSTER_DIR=${FLEDGE_CLUSTER_DIR:-/tmp/fledge-demo-${USER:-$(id -un)}}
# The demo is about what clients see: without the data plane there are no clients.
export FLEDGE_DATAPLANE=${FLEDGE_DATAPLANE:-on}
operator_pid=$FLEDGE_CLUSTER_DIR/pids/fledge-operator.pid
load_pid=$FLEDGE_CLUSTER_DIR/pids/demo-load.pid
clients=$FLEDGE_CLUSTER_DIR/demo-clients.json
host=web.demo.local

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Stops the process whose pid the file $1 recorded, only if it is still the one this demo started:
# its command line must contain $2 (a recycled pid belongs to someone else and is left alone).
stop_recorded() {
  local file=$1 mark=$2 pid
  pid=$(cat "$file" 2>/dev/null) || return 0
  rm -f "$file"
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 0
  kill "$pid" 2>/dev/null || true
  local i; for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
stop_operator() { stop_recorded "$operator_pid" "$repo/target/debug/fledge controller"; }
stop_load() { stop_recorded "$load_pid" "$clients"; }

down() {
  stop_operator
  stop_load
  bash hack/cluster.sh down
}

# What the clients saw in the last 2 seconds (hack/demo-load.py's summary), by revision: the
# stable's and the canary's share, and the share of failed requests.
seen() {
  python3 - "$clients" "$1" "$2" <<'PY'
import json, sys
try:
    w = json.load(open(sys.argv[1]))["window"]
except (OSError, ValueError, KeyError):
    sys.exit()
stable, current, n = sys.argv[2], sys.argv[3], max(w["total"], 1)
pct = lambda r: 100.0 * w["revisions"].get(r, 0) / n
parts = ["stable %5.1f%%" % pct(stable)]
if current and current != stable:
    parts.append("canary %5.1f%%" % pct(current))
print("clients saw: %s, errors %4.1f%% (%d requests)" % (", ".join(parts), 100.0 * w["errors"] / n, w["total"]))
PY
}
# Prints a line each second while clients send requests (else each time the Rollout or its
# ReplicaSets change), until the shell condition $1 holds or $2 seconds pass.
last=""
show() {
  local line sets stable current clients_line
  # One read of the Rollout, then at once what the clients saw, so the two are of the same moment.
  read -r line stable current < <(kubectl get rollout web -o jsonpath='{.status.phase}/step={.status.currentStepIndex}/weight={.status.canaryWeight}% {.status.stableRevision} {.status.currentRevision}' 2>/dev/null) || true
  clients_line=$(seen "$stable" "$current")
  sets=$(kubectl get rs -l fledge.dev/rollout=web -o jsonpath='{range .items[*]}{.metadata.labels.rollouts-pod-template-hash}={.status.availableReplicas}/{.spec.replicas} {end}' 2>/dev/null || true)
  line="fledge: ${line//\// } | $clients_line | pods(available/desired): ${sets:-none}"
  if [ "$line" != "$last" ]; then printf '  %s  %s\n' "$(date +%T)" "$line"; last=$line; fi
}
watch_until() {
  local want=$1 timeout=$2 start=$SECONDS
  while (( SECONDS - start < timeout )); do
    show
    if eval "$want"; then show; return 0; fi
    sleep 1
  done
  echo "demo: timed out after ${timeout}s; operator log: $FLEDGE_CLUSTER_DIR/logs/fledge-operator.log" >&2
  return 1
}
scaled_up_sets() { kubectl get rs -l fledge.dev/rollout=web -o jsonpath='{range .items[*]}{.spec.replicas}{"\n"}{end}' | grep -cv '^0$'; }
phase() { kubectl get rollout web -o jsonpath='{.status.phase}'; }
step_index() { kubectl get rollout web -o jsonpath='{.status.currentStepIndex}'; }
request() {
  echo "  \$ kubectl fledge $1 web      (a request in the status subresource, never the spec)"
  kubectl fledge "$1" web | sed 's/^/    /'
}
set_image() {
  kubectl patch rollout web --type=json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/image\",\"value\":\"registry.example/web:$1\"}]" >/dev/null
  echo "  spec.template image -> registry.example/web:$1 (in real life: a commit in Git)"
}

# The clients: hack/demo-load.py sends 100 requests a second through the gateway.
start_load() {
  stop_load
  rm -f "$clients"
  python3 hack/demo-load.py "$FLEDGE_GATEWAY_URL" "$host" "$clients" 100 \
    >"$FLEDGE_CLUSTER_DIR/logs/demo-load.log" 2>&1 &
  echo $! >"$load_pid"
  local i
  for i in $(seq 1 30); do
    [ "$(total all)" -gt 0 ] 2>/dev/null && break
    sleep 0.5
  done
  echo "  clients: 100 requests/s to $FLEDGE_GATEWAY_URL (Host: $host), hack/demo-load.py"
}
# total all|window, errors all|window: counts from the clients' summary.
total() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["total"])' "$clients" "$1" 2>/dev/null || echo 0; }
errors() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["errors"])' "$clients" "$1" 2>/dev/null || echo 0; }
route_accepted() {
  [ "$(kubectl get httproute web -o jsonpath='{.status.parents[0].conditions[?(@.type=="Accepted")].status}')" = True ]
}

up() {
  say "Building the control plane (cached after the first run) and starting it"
  bash hack/cluster.sh up
  eval "$(bash hack/cluster.sh env)"

  say "Building and starting the fledge operator"
  cargo build --quiet --bin fledge --bin kubectl-fledge
  export PATH="$repo/target/debug:$PATH"   # so `kubectl fledge` finds the plugin
  mkdir -p "$FLEDGE_CLUSTER_DIR/logs" "$FLEDGE_CLUSTER_DIR/pids"
  stop_operator
  "$repo/target/debug/fledge" controller --leader-elect=false \
    --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
    >"$FLEDGE_CLUSTER_DIR/logs/fledge-operator.log" 2>&1 &
  echo $! >"$operator_pid"
  echo "  operator pid $(cat "$operator_pid"), log $FLEDGE_CLUSTER_DIR/logs/fledge-operator.log"

  say "Applying examples/canary-basic.yaml (first revision: straight to stable)"
  kubectl delete -f examples/canary-basic.yaml --ignore-not-found --wait=true >/dev/null
  kubectl delete httproute web --ignore-not-found >/dev/null
  kubectl apply --server-side -f examples/canary-basic.yaml
  watch_until '[ "$(phase)" = Healthy ]' 120

  say "Traffic through the gateway: an HTTPRoute on Gateway fledge-gateway/local, and the Rollout routes by it"
  kubectl apply --server-side -f - <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web}
spec:
  parentRefs: [{name: $FLEDGE_GATEWAY_NAME, namespace: $FLEDGE_GATEWAY_NAMESPACE}]
  hostnames: [$host]
  rules: [{backendRefs: [{name: web-stable, port: 80}]}]
YAML
  kubectl patch rollout web --type=merge \
    -p '{"spec":{"strategy":{"canary":{"trafficRouting":{"gatewayAPI":{"httpRoutes":[{"name":"web"}]}}}}}}' >/dev/null
  echo "  spec.strategy.canary.trafficRouting -> gatewayAPI httpRoutes [web] (in real life: Git)"
  watch_until 'route_accepted' 60
  start_load

  say "Revision 2: canary 25% -> pause 10s -> 50% -> pause 10s -> 75% -> pause until promoted"
  echo "  (weight: what fledge set in the HTTPRoute; clients saw: who answered the last 2s of requests)"
  set_image 2.0.0
  watch_until '[ "$(phase)" = Paused ] && [ "$(step_index)" = 5 ]' 180
  say "The last pause waits for a person: promote"
  request promote
  watch_until '[ "$(phase)" = Healthy ] && [ "$(kubectl get rollout web -o jsonpath={.status.stableRevision})" = "$(kubectl get rollout web -o jsonpath={.status.currentRevision})" ]' 120
  local good_total=$(( $(total all) )) good_errors=$(( $(errors all) ))
  echo "  so far: $good_errors failed of $good_total client requests"

  say "Metric analysis: the canary's success rate as the gateway measured it (Traefik's metrics, scraped every second)"
  # The query of analysis-templates/traefik.yaml (traefik-success-rate), every 2s over 5s.
  kubectl apply --server-side -f - <<YAML
apiVersion: fledge.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  metrics:
  - name: success-rate
    interval: 2s                   # until the rollout ends: a background analysis
    inconclusiveLimit: 10          # no data (NaN) while the canary's first requests come in
    successCondition: "!isNaN(result) && result >= 0.95"
    failureCondition: "!isNaN(result) && result < 0.95"
    provider:
      prometheus:
        address: $FLEDGE_PROMETHEUS_URL
        query: |
          sum(rate(traefik_service_requests_total{service="default-web-canary-http-80@kubernetesgateway", code!~"5.."}[5s]))
          /
          sum(rate(traefik_service_requests_total{service="default-web-canary-http-80@kubernetesgateway"}[5s]))
YAML
  kubectl patch rollout web --type=merge \
    -p '{"spec":{"strategy":{"canary":{"analysis":{"templates":[{"templateName":"success-rate"}]}}}}}' >/dev/null
  echo "  spec.strategy.canary.analysis -> background analysis with template success-rate (in real life: Git)"

  say "Revision 3: a bad release (30% of its answers are 500s); the analysis aborts it"
  kubectl patch rollout web --type=json -p '[
    {"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/web:3.0.0-bad"},
    {"op":"add","path":"/spec/template/spec/containers/0/env","value":[{"name":"ERROR_RATE","value":"0.3"}]}]' >/dev/null
  echo "  spec.template image -> registry.example/web:3.0.0-bad, env ERROR_RATE=0.3 (the pod agent answers 30% with 500)"
  local bad_start=$SECONDS
  watch_until '[ "$(errors all)" -gt "$good_errors" ]' 120
  echo "  clients see the first errors $((SECONDS - bad_start))s after the new revision"
  watch_until '[ "$(phase)" = Degraded ]' 120
  echo "  aborted by the analysis (no person involved)"
  watch_until '[ "$(scaled_up_sets)" = 1 ] && [ "$(total window)" -gt 0 ] && [ "$(errors window)" = 0 ]' 60
  # A few more seconds, to show the errors stay at 0.
  local settled=$SECONDS
  watch_until '(( SECONDS - settled >= 5 ))' 10
  echo "  the bad release: $(( $(errors all) - good_errors )) failed of $(( $(total all) - good_total )) client requests since revision 3, sent within $(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["all"]; print("%.1f" % (a["last_error"] - a["first_error"]))' "$clients")s of each other; none in the last 5s"
  kubectl get analysisruns -l fledge.dev/rollout=web
  kubectl get rollout web -o jsonpath='{range .status.conditions[*]}  {.type}={.status} ({.reason}){"\n"}{end}'
  stop_load
  echo "  clients stopped (they sent $(total all) requests in all)"

  say "Done. The cluster and the operator are still running."
  cat <<MSG
  Explore:   eval "\$(FLEDGE_CLUSTER_DIR=$FLEDGE_CLUSTER_DIR hack/cluster.sh env)"
             curl -si -H 'Host: $host' "\$FLEDGE_GATEWAY_URL/"   # x-fledge-revision: who answered
             kubectl get rollout web -w          # or: kubectl describe rollout web
             kubectl get events --sort-by=.lastTimestamp
  Retry the aborted revision (the plugin is target/debug/kubectl-fledge):
             PATH=$repo/target/debug:\$PATH kubectl fledge retry web
  Tear down: make demo-down
MSG
}

case ${1:-up} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
