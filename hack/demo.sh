#!/usr/bin/env bash
# `make demo`: a local control plane, the operator, and the canary from examples/canary-basic.yaml
# walked to promotion; then a bad revision that a failing metric analysis aborts on its own.
# Prints what happens as it happens.
#   hack/demo.sh up     run the demo (leaves everything running to explore)
#   hack/demo.sh down   stop the operator and the control plane
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export FLEDGE_CLUSTER_DIR=${FLEDGE_CLUSTER_DIR:-/tmp/fledge-demo-${USER:-$(id -un)}}
operator_pid=$FLEDGE_CLUSTER_DIR/pids/fledge-operator.pid
app_pid=$FLEDGE_CLUSTER_DIR/pids/demo-app.pid
error_share=$FLEDGE_CLUSTER_DIR/demo-app-error-share

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
stop_app() { stop_recorded "$app_pid" "$error_share"; }

down() {
  stop_operator
  stop_app
  bash hack/cluster.sh down
}

# Prints a line each time the Rollout or its ReplicaSets change, until the shell condition $1
# holds or $2 seconds pass.
last=""
show() {
  local line sets
  line=$(kubectl get rollout web -o jsonpath='phase={.status.phase} step={.status.currentStepIndex} weight={.status.canaryWeight}% stable={.status.stableRevision} current={.status.currentRevision}' 2>/dev/null || true)
  sets=$(kubectl get rs -l fledge.dev/rollout=web -o jsonpath='{range .items[*]}{.metadata.labels.rollouts-pod-template-hash}={.status.availableReplicas}/{.spec.replicas} {end}' 2>/dev/null || true)
  line="$line | replicasets(available/desired): ${sets:-none}"
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

# The stand-in for the app's metrics, registered as a Prometheus scrape target (job demo-web).
start_app() {
  stop_app
  echo 0 >"$error_share"
  rm -f "$FLEDGE_CLUSTER_DIR/demo-app.port"
  python3 hack/demo-app.py "$FLEDGE_CLUSTER_DIR/demo-app.port" "$error_share" \
    >"$FLEDGE_CLUSTER_DIR/logs/demo-app.log" 2>&1 &
  echo $! >"$app_pid"
  local i
  for i in $(seq 1 50); do [ -s "$FLEDGE_CLUSTER_DIR/demo-app.port" ] && break; sleep 0.1; done
  printf '[{"targets": ["127.0.0.1:%s"], "labels": {"job": "demo-web"}}]' "$(cat "$FLEDGE_CLUSTER_DIR/demo-app.port")" \
    >"$FLEDGE_PROMETHEUS_TARGETS_DIR/demo-web.json.tmp"
  mv "$FLEDGE_PROMETHEUS_TARGETS_DIR/demo-web.json.tmp" "$FLEDGE_PROMETHEUS_TARGETS_DIR/demo-web.json"
  echo "  demo app metrics on 127.0.0.1:$(cat "$FLEDGE_CLUSTER_DIR/demo-app.port") (hack/demo-app.py), 0% errors"
  # The analysis should start from data, not from its absence: wait for a first rate.
  local q='sum(rate(demo_http_requests_total{job="demo-web"}[5s]))'
  for i in $(seq 1 60); do
    curl -fsS "$FLEDGE_PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$q" | grep -q '"value"' && return
    sleep 1
  done
  echo "demo: Prometheus has no data from the demo app" >&2; return 1
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
  kubectl apply --server-side -f examples/canary-basic.yaml
  watch_until '[ "$(phase)" = Healthy ]' 120

  say "Revision 2: canary 25% -> pause 10s -> 50% -> pause 10s -> 75% -> pause until promoted"
  set_image 2.0.0
  watch_until '[ "$(phase)" = Paused ] && [ "$(step_index)" = 5 ]' 180
  say "The last pause waits for a person: promote"
  request promote
  watch_until '[ "$(phase)" = Healthy ] && [ "$(kubectl get rollout web -o jsonpath={.status.stableRevision})" = "$(kubectl get rollout web -o jsonpath={.status.currentRevision})" ]' 120

  say "Metric analysis: the app's error rate, scraped by Prometheus every second"
  start_app
  kubectl apply --server-side -f - <<YAML
apiVersion: fledge.dev/v1alpha1
kind: AnalysisTemplate
metadata: {name: error-rate}
spec:
  metrics:
  - name: error-rate
    interval: 2s                   # until the rollout ends: a background analysis
    successCondition: "!isNaN(result) && result <= 0.05"
    failureCondition: "!isNaN(result) && result > 0.05"
    provider:
      prometheus:
        address: $FLEDGE_PROMETHEUS_URL
        query: sum(rate(demo_http_requests_total{job="demo-web",code="500"}[5s])) / sum(rate(demo_http_requests_total{job="demo-web"}[5s]))
YAML
  kubectl patch rollout web --type=merge \
    -p '{"spec":{"strategy":{"canary":{"analysis":{"templates":[{"templateName":"error-rate"}]}}}}}' >/dev/null
  echo "  spec.strategy.canary.analysis -> background analysis with template error-rate (in real life: Git)"

  say "Revision 3: a bad release; 30% of its requests fail, and the analysis aborts it"
  set_image 3.0.0-bad
  watch_until '[ -n "$(kubectl get analysisruns -l fledge.dev/rollout=web -o name 2>/dev/null)" ]' 60
  local breach=$SECONDS
  echo 0.3 >"$error_share"
  echo "  the app now answers 30% of requests with 500"
  watch_until '[ "$(phase)" = Degraded ]' 120
  echo "  aborted $((SECONDS - breach))s after the errors began (no person involved)"
  watch_until '[ "$(scaled_up_sets)" = 1 ]' 60
  kubectl get analysisruns -l fledge.dev/rollout=web
  kubectl get rollout web -o jsonpath='{range .status.conditions[*]}  {.type}={.status} ({.reason}){"\n"}{end}'

  say "Done. The cluster and the operator are still running."
  cat <<MSG
  Explore:   eval "\$(FLEDGE_CLUSTER_DIR=$FLEDGE_CLUSTER_DIR hack/cluster.sh env)"
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
