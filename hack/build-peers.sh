#!/usr/bin/env bash
# Builds the controllers hack/bench-peers.sh compares fledge with, from their Go modules, into
# $FLEDGE_CACHE/peers-<name>-<version>/{bin,crds}. A peer already there is not rebuilt.
#
#   hack/build-peers.sh [argo-rollouts|flagger ...]    (default: both)
#
# Each is built through a throwaway wrapper module that requires the peer at its tag and copies
# the peer's own replace directives (read from its go.mod, never typed here): `go install
# pkg@version` refuses a module whose go.mod has replace directives, and building without them
# would resolve other dependency versions than upstream's release. The CRDs come from the same
# module zip. Argo Rollouts v1.9 needs a newer Go than the machine's, hence GOTOOLCHAIN.
#
# The Argo Rollouts Gateway API plugin (github.com/argoproj-labs/rollouts-plugin-trafficrouter-
# gatewayapi) is not built: the module proxy answers 403 "not available" for every version of it
# and github.com is unreachable here, so there is no source to build from (docs/benchmarks.md).
#
# Builds run at the lowest CPU priority; set FLEDGE_BUILD_NICE=0 to build at normal priority.
# Each build's wall time is appended to $FLEDGE_CACHE/peers-build-times.log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"
source "$here/peers-versions.sh"
export GOTOOLCHAIN=$PEERS_GOTOOLCHAIN GOFLAGS=-mod=mod

command -v go >/dev/null || { echo "Go is required to build the peers (https://go.dev/dl)" >&2; exit 1; }

# name module version package crds-dir-in-module
peer_spec() {
  case $1 in
    argo-rollouts) echo "github.com/argoproj/argo-rollouts $ARGO_ROLLOUTS_VERSION cmd/rollouts-controller manifests/crds" ;;
    flagger) echo "github.com/fluxcd/flagger $FLAGGER_VERSION cmd/flagger artifacts/flagger/crd.yaml" ;;
    *) echo "unknown peer $1 (argo-rollouts, flagger)" >&2; return 1 ;;
  esac
}

# Prints the replace directives of the go.mod in $1 as `old => new version` lines, from both the
# block form and the one-line form. A replace that points at a local directory cannot be copied
# into another module; it is refused rather than silently dropped.
replaces_of() {
  python3 - "$1" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
out, block = [], False
for line in lines:
    s = line.split("//", 1)[0].strip()
    if block:
        if s == ")":
            block = False
        elif s:
            out.append(s)
    elif s == "replace (":
        block = True
    elif s.startswith("replace "):
        out.append(s[len("replace "):].strip())
for r in out:
    new = r.split("=>", 1)[1].split()
    if new[0].startswith(("./", "../", "/")):
        sys.exit(f"replace to a local directory cannot be copied: {r}")
    print(r)
PY
}

build_peer() {
  local name=$1 mod version pkg crds
  read -r mod version pkg crds <<<"$(peer_spec "$name")"
  local dest=$FLEDGE_CACHE/peers-$name-$version
  [ -x "$dest/bin/$name" ] && [ -d "$dest/crds" ] && return 0
  echo "building $name $version with $GOTOOLCHAIN (once; many minutes) ..." >&2
  local start=$SECONDS info gomod dir
  info=$(cd / && go mod download -json "$mod@$version")
  gomod=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["GoMod"]) if "GoMod" in d else sys.exit(d.get("Error","no GoMod"))' <<<"$info")
  dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")
  local tmp; tmp=$(mktemp -d "${TMPDIR:-/tmp}/fledge-peer-$name.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  {
    echo "module fledge.dev/hack/peers/$name"
    echo
    echo "go $(sed -n 's/^go \(.*\)$/\1/p' "$gomod")"
    echo
    echo "require $mod $version"
    echo
    replaces_of "$gomod" | sed 's/^/replace /'
  } >"$tmp/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/%s"\n' "$mod" "$pkg" >"$tmp/tools.go"
  (cd "$tmp" && go mod tidy >&2)
  mkdir -p "$dest/bin" "$dest/crds"
  (cd "$tmp" && CGO_ENABLED=0 nice -n "${FLEDGE_BUILD_NICE:-19}" \
    go build -trimpath -ldflags "-s -w" -o "$dest/bin/.$name.tmp" "$mod/$pkg")
  mv "$dest/bin/.$name.tmp" "$dest/bin/$name"
  # Only the CRDs: manifests/crds also holds a kustomization.yaml.
  local f
  for f in $( if [ -d "$dir/$crds" ]; then ls "$dir/$crds"/*.yaml; else echo "$dir/$crds"; fi); do
    if grep -q '^kind: CustomResourceDefinition' "$f"; then cp "$f" "$dest/crds/"; fi
  done
  chmod -R u+w "$dest/crds"
  local took=$((SECONDS - start))
  echo "$(date -u +%FT%TZ) $name $version built in ${took}s ($(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))" |
    tee -a "$FLEDGE_CACHE/peers-build-times.log" >&2
}

mkdir -p "$FLEDGE_CACHE"
peers=("$@"); [ ${#peers[@]} -gt 0 ] || peers=(argo-rollouts flagger)
for p in "${peers[@]}"; do build_peer "$p"; done
