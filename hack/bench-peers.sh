#!/usr/bin/env bash
# fledge side by side with Argo Rollouts and Flagger on one fresh local control plane; writes
# docs/benchmarks.md (and the raw figures, docs/benchmarks.json). See hack/bench_peers.py.
#
#   hack/bench-peers.sh [N]        the whole comparison (builds the peers once: hack/build-peers.sh)
#   hack/bench-peers.sh --quick    N = 20, the burst (and 5 routed) only, fledge only, report in the cluster dir
#                                  (run by `make test` so the harness cannot rot)
#
# Env: BENCH_CONTROLLERS (fledge,argo-rollouts,flagger), BENCH_SCENARIOS (idle,burst,cold_start,routed,breach),
# BENCH_ROUTED_N (200: rollouts of the routed burst), BENCH_N_FOR (e.g. "flagger=0": another N for
# one controller; 0 runs only routed and breach for it),
# BENCH_FLAGGER_ARGS (extra flags for Flagger, see below), BENCH_IDLE_SECONDS (300), BENCH_TIMEOUT (900: seconds each wait may take), BENCH_RESULTS and BENCH_OUT (docs/benchmarks.{json,md}),
# BENCH_NOTES (hack/bench_notes.md: the notes the report ends with),
# FLEDGE_BENCH_CLUSTER_DIR (a fresh /tmp dir; torn down at the end unless BENCH_KEEP_CLUSTER=1).
# Runs of one controller each merge: hack/bench_peers.py --render-only --merge A.json B.json.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/versions.sh
source hack/peers-versions.sh

quick=0
if [ "${1:-}" = --quick ]; then quick=1; shift; fi
n=${1:-1000}
controllers=${BENCH_CONTROLLERS:-fledge,argo-rollouts,flagger}
scenarios=${BENCH_SCENARIOS:-idle,burst,cold_start,routed,breach}
idle=${BENCH_IDLE_SECONDS:-300}
timeout=${BENCH_TIMEOUT:-900}
out=${BENCH_OUT:-docs/benchmarks.md} results=${BENCH_RESULTS:-docs/benchmarks.json}
# The command the report shows, with the settings of this run that differ from the defaults.
command=""
for v in BENCH_CONTROLLERS BENCH_SCENARIOS BENCH_ROUTED_N BENCH_N_FOR BENCH_IDLE_SECONDS BENCH_TIMEOUT BENCH_FLAGGER_ARGS FLEDGE_DATAPLANE; do
  if [ -n "${!v+set}" ]; then
    val=${!v}
    case $val in *[[:space:]]* | "") val="'$val'" ;; esac
    command+="$v=$val "
  fi
done
command+="hack/bench-peers.sh $*"
if [ $quick = 1 ]; then
  n=20 controllers=fledge scenarios=burst,routed idle=0 BENCH_ROUTED_N=5
  cargo build --locked --quiet --bin fledge
  fledge_bin=$PWD/target/debug/fledge
else
  peers=()
  case ,$controllers, in *,argo-rollouts,*) peers+=(argo-rollouts) ;; esac
  case ,$controllers, in *,flagger,*) peers+=(flagger) ;; esac
  if [ ${#peers[@]} -gt 0 ]; then bash hack/build-peers.sh "${peers[@]}"; fi
  fledge_bin=$PWD/target/release/fledge
  case ,$controllers, in *,fledge,*) cargo build --locked --quiet --release --bin fledge ;; esac
fi

export FLEDGE_CLUSTER_DIR=${FLEDGE_BENCH_CLUSTER_DIR:-/tmp/fledge-bench-peers-$$}
# Flagger makes three Services per canary: a /24 holds about 80 canaries.
export FLEDGE_SERVICE_CIDR=10.0.0.0/16 FLEDGE_CM_QPS=${FLEDGE_CM_QPS:-200}
# Flagger creates its three Services per canary for all N canaries at once, as fast as its client
# allows (100 requests a second by default). At N = 1,000 this API server, which allocates
# ClusterIPs one at a time under one lock, answered nearly every create 504 after its deadline and
# no canary got past Initializing, with either allocator. With Flagger's client at 25 requests a
# second (BENCH_FLAGGER_ARGS) no create failed, but Flagger could no longer keep up with its own
# reads at N = 1,000; see hack/bench_notes_n200.md. The old allocator is kept as those runs had.
export FLEDGE_APISERVER_FEATURE_GATES=${FLEDGE_APISERVER_FEATURE_GATES-MultiCIDRServiceAllocator=false}
export BENCH_FLAGGER_ARGS=${BENCH_FLAGGER_ARGS--kubeconfig-qps 25 -kubeconfig-burst 50}
# The controller-manager's default EndpointSlice batching (none), as the published runs had.
export FLEDGE_ENDPOINT_BATCH_PERIOD=${FLEDGE_ENDPOINT_BATCH_PERIOD-}
cleanup() { if [ "${BENCH_KEEP_CLUSTER:-0}" != 1 ]; then bash hack/cluster.sh down; fi; }
trap cleanup EXIT
export FLEDGE_AUDIT_POLICY=$PWD/hack/bench-audit-policy.yaml
bash hack/cluster.sh up
eval "$(bash hack/cluster.sh env)"

versions=$(printf '{"fledge": "%s", "argo-rollouts": "%s", "flagger": "%s", "kubernetes": "%s"}' \
  "$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)" "$ARGO_ROLLOUTS_VERSION" "$FLAGGER_VERSION" "$K8S_VERSION")
args=(--n "$n" --controllers "$controllers" --scenarios "$scenarios" --idle-seconds "$idle" --timeout "$timeout"
  --routed-n "${BENCH_ROUTED_N:-200}")
for x in ${BENCH_N_FOR:-}; do args+=(--n-for "$x"); done
args+=(
  --fledge-bin "$fledge_bin" --argo-home "$FLEDGE_CACHE/peers-argo-rollouts-$ARGO_ROLLOUTS_VERSION"
  --flagger-home "$FLEDGE_CACHE/peers-flagger-$FLAGGER_VERSION" --versions "$versions" --command "${command% }")
if [ $quick = 1 ]; then
  args+=(--results "$FLEDGE_CLUSTER_DIR/benchmarks-quick.json" --out "$FLEDGE_CLUSTER_DIR/benchmarks-quick.md" --settle 2 --cold-window 10)
  python3 hack/bench_peers.py "${args[@]}"
  cat "$FLEDGE_CLUSTER_DIR/benchmarks-quick.md" >&2
else
  python3 hack/bench_peers.py "${args[@]}" --results "$results" --out "$out" --notes "${BENCH_NOTES:-hack/bench_notes.md}"
fi
