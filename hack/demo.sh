#!/usr/bin/env bash
# `make demo`: a local control plane, the operator, and the canary from examples/canary-basic.yaml
# walked to promotion; then a second revision that is aborted. Prints what happens as it happens.
#   hack/demo.sh up     run the demo (leaves everything running to explore)
#   hack/demo.sh down   stop the operator and the control plane
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export FLEDGE_CLUSTER_DIR=${FLEDGE_CLUSTER_DIR:-/tmp/fledge-demo-${USER:-$(id -un)}}
operator_pid=$FLEDGE_CLUSTER_DIR/pids/fledge-operator.pid

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
  if [ -f "$operator_pid" ] && kill -0 "$(cat "$operator_pid")" 2>/dev/null; then
    kill "$(cat "$operator_pid")" || true
  fi
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

up() {
  say "Building the control plane (cached after the first run) and starting it"
  bash hack/cluster.sh up
  eval "$(bash hack/cluster.sh env)"

  say "Building and starting the fledge operator"
  cargo build --quiet --bin fledge --bin kubectl-fledge
  export PATH="$repo/target/debug:$PATH"   # so `kubectl fledge` finds the plugin
  mkdir -p "$FLEDGE_CLUSTER_DIR/logs" "$FLEDGE_CLUSTER_DIR/pids"
  if [ -f "$operator_pid" ] && kill -0 "$(cat "$operator_pid")" 2>/dev/null; then kill "$(cat "$operator_pid")"; sleep 1; fi
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

  say "Revision 3: a bad release; abort it at 25%"
  set_image 3.0.0-bad
  watch_until '[ "$(phase)" = Paused ] && [ "$(step_index)" = 1 ]' 120
  request abort
  watch_until '[ "$(phase)" = Degraded ]' 60
  watch_until '[ "$(scaled_up_sets)" = 1 ]' 60
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
