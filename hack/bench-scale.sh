#!/usr/bin/env bash
# Measures the operator against N Rollouts on the local control plane: time until every Rollout
# is Healthy and the operator's resident memory then. Usage: hack/bench-scale.sh [N] (default 200).
# Needs a running cluster (`hack/cluster.sh up`); creates and deletes namespace fledge-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
eval "$(bash hack/cluster.sh env)"
ns=fledge-bench
cargo build --quiet --release --bin fledge

kubectl delete ns "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create ns "$ns" >/dev/null
manifests=$(mktemp)
trap 'rm -f "$manifests"; [ -n "${op:-}" ] && kill "$op" 2>/dev/null; kubectl delete ns "$ns" --wait=false >/dev/null 2>&1 || true' EXIT
for i in $(seq 1 "$n"); do
  cat >>"$manifests" <<YAML
---
apiVersion: v1
kind: Service
metadata: {name: app$i-stable, namespace: $ns}
spec: {selector: {app: app$i}, ports: [{port: 80}]}
---
apiVersion: fledge.dev/v1alpha1
kind: Rollout
metadata: {name: app$i, namespace: $ns}
spec:
  replicas: 1
  selector: {matchLabels: {app: app$i}}
  template:
    metadata: {labels: {app: app$i}}
    spec: {containers: [{name: app, image: registry.example/app:1}]}
  strategy: {canary: {stableService: app$i-stable, steps: [{setWeight: 50}]}}
YAML
done
kubectl apply --server-side -f "$manifests" >/dev/null

log=$(mktemp)
start=$(date +%s%N)
./target/release/fledge controller --leader-elect=false --namespace "$ns" \
  --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 --log-level warn >"$log" 2>&1 &
op=$!
while :; do
  healthy=$(kubectl -n "$ns" get rollouts -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | grep -c '^Healthy$' || true)
  [ "$healthy" -ge "$n" ] && break
  sleep 1
done
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
rss=$(awk '/VmRSS/ {print $2}' "/proc/$op/status")
echo "rollouts=$n all_healthy_after_ms=$elapsed_ms operator_rss_kib=$rss"
