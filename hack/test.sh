#!/usr/bin/env bash
# `make test`: formatting, clippy, unit tests, the release binary's size, then the e2e suite on a fresh local control plane
# of its own, which is torn down even when tests fail.
#   hack/test.sh        everything
#   hack/test.sh e2e    only the e2e part
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '\n==> %s\n' "$*" >&2; }
started=$SECONDS

bash hack/tools.sh

if [ "${1:-all}" = all ]; then
  step "cargo fmt --check"
  cargo fmt --all --check
  step "cargo clippy"
  cargo clippy --all-targets --locked -- -D warnings
  step "unit tests"
  cargo test --locked --lib --bins
  step "benchmark harness: unit tests (hack/bench_peers_test.py)"
  python3 -m unittest discover -s hack -p 'bench_*_test.py'
  step "generated docs and Argo CD snippet are up to date"
  python3 hack/gen-api-docs.py --check
  python3 hack/gen-argocd-cm.py --check
  step "release binary: size limit and the libraries the image provides"
  bash hack/check-binary-size.sh
  # ... and the check can fail: openssl links what fledge must not.
  if bash hack/check-binary-size.sh "$(command -v openssl)" 2>/dev/null; then
    echo "hack/check-binary-size.sh passed a binary that links OpenSSL" >&2
    exit 1
  fi
fi

step "e2e: building the tests and the operator"
cargo test --locked --test e2e --no-run

# A cluster of our own, in its own dir, so a developer's running cluster is left alone.
export FLEDGE_CLUSTER_DIR=${FLEDGE_TEST_CLUSTER_DIR:-/tmp/fledge-test-cluster-$$}
# The e2e tests record each process they start (operators, the plugin, a Prometheus of their own) as a file
# named after its pid in FLEDGE_E2E_PIDS_DIR and stop it themselves; a test binary that was itself
# killed leaves them behind, so they go here: by recorded pid, and only while that pid still runs
# a binary the tests start (a recycled pid belongs to someone else).
export FLEDGE_E2E_PIDS_DIR=$FLEDGE_CLUSTER_DIR.e2e-pids
stop_recorded_children() {
  local f pid exe
  for f in "$FLEDGE_E2E_PIDS_DIR"/*; do
    [ -e "$f" ] || continue
    pid=${f##*/}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    case $exe in "$PWD/target/debug/fledge"* | "$PWD/target/debug/kubectl-fledge"* | */prometheus*) kill -KILL "$pid" 2>/dev/null || true ;; esac
  done
  rm -rf "$FLEDGE_E2E_PIDS_DIR"
}
cleanup() {
  step "tearing down the test cluster"
  stop_recorded_children
  bash hack/cluster.sh down || true
}
trap cleanup EXIT
mkdir -p "$FLEDGE_E2E_PIDS_DIR"
step "e2e: starting the local control plane"
# With the data plane (docs/dataplane.md): pods are Ready only once they answer, and
# tests/e2e/dataplane.rs sends real requests through the gateway. `on` makes `up` fail, saying why,
# where it cannot be had (not root, or no privileges for `ip netns`).
# Envoy Gateway, the mirroring gateway, is asked for on this cluster only (not exported): the
# benchmark's cluster below runs beside it, and only one cluster per machine can run it.
export FLEDGE_DATAPLANE=${FLEDGE_DATAPLANE:-on}
FLEDGE_MIRROR_GATEWAY=${FLEDGE_MIRROR_GATEWAY:-on} bash hack/cluster.sh up
eval "$(bash hack/cluster.sh env)"

step "helm chart: lint, render, server-side dry-run apply"
bash hack/helm-test.sh

step "e2e: tests"
# Each test runs its own operator in its own namespace; 3 at a time fits a 2-core machine.
cargo test --locked --test e2e -- --test-threads "${E2E_THREADS:-3}"
step "benchmark harness: hack/bench-peers.sh --quick (fledge only, N = 20 and 5 routed, on a cluster of its own)"
FLEDGE_BENCH_CLUSTER_DIR=$FLEDGE_CLUSTER_DIR.bench bash hack/bench-peers.sh --quick
step "done in $((SECONDS - started))s"
