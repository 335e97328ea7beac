#!/usr/bin/env bash
# Builds helm from its Go module into $FLEDGE_CACHE/helm-<version>/bin and prints the binary's
# path. Cached like the control plane: a binary that is already there is not rebuilt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

if [ ! -x "$HELM_BIN/helm" ]; then
  command -v go >/dev/null || { echo "Go is required to build helm (https://go.dev/dl)" >&2; exit 1; }
  echo "building helm $HELM_VERSION ..." >&2
  start=$SECONDS
  mkdir -p "$HELM_BIN"
  # helm's go.mod has no replace directives, so `go install` at the tag builds exactly the
  # released dependency set. The version string is what `helm version` reports.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$HELM_BIN/helm"
  echo "built helm in $((SECONDS - start))s" >&2
fi
echo "$HELM_BIN/helm"
