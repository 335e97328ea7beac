#!/usr/bin/env bash
# Builds the local control plane's binaries from Go modules into a cache outside the repo
# ($FLEDGE_CACHE/k8s-<version>/bin, $FLEDGE_CACHE/kwok-<version>/bin). A binary that is already
# there is not rebuilt, so only the first run on a machine pays for the build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

command -v go >/dev/null || { echo "Go is required to build the local control plane (https://go.dev/dl)" >&2; exit 1; }

k8s_pkgs=(
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler
  kubectl=k8s.io/kubernetes/cmd/kubectl
  etcd=go.etcd.io/etcd/server/v3
)

# `kubectl version` and the API server's /version report these, as in an official build.
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

mkdir -p "$K8S_BIN" "$KWOK_BIN"
for entry in "${k8s_pkgs[@]}"; do
  name=${entry%%=*} pkg=${entry#*=}
  [ -x "$K8S_BIN/$name" ] && continue
  echo "building $name ($pkg) ..." >&2
  start=$SECONDS
  # Build to a temp name and rename, so an interrupted build never leaves a half-written binary
  # that a later run would take as cached.
  (cd "$here/k8s" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$K8S_BIN/.$name.tmp" "$pkg")
  mv "$K8S_BIN/.$name.tmp" "$K8S_BIN/$name"
  echo "built $name in $((SECONDS - start))s" >&2
done

# KWOK's go.mod has no replace directives, so a plain `go install` at the tag works.
if [ ! -x "$KWOK_BIN/kwok" ]; then
  echo "building kwok $KWOK_VERSION ..." >&2
  start=$SECONDS
  tmp=$(mktemp -d)
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv "$tmp/kwok" "$KWOK_BIN/kwok"; rmdir "$tmp"
  echo "built kwok in $((SECONDS - start))s" >&2
fi
