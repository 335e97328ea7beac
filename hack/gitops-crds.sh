#!/usr/bin/env bash
# The real CRDs of the GitOps tools the examples deploy with: Argo CD's Application, Flux's
# Kustomization and GitRepository. hack/cluster.sh installs them, so e2e dry-runs examples/argocd
# and examples/flux against the schemas Argo CD and Flux serve, not stand-ins.
#
# Each tool's Go module carries its CRDs. Its zip is fetched once from the Go module proxy,
# checked against the h1: hash pinned in versions.sh, and only the CRD files are kept, in
# $GITOPS_CRDS_DIR/<module>@<version>/ (nothing is kept in the repo). Prints their paths, one a
# line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

# The first proxy of GOPROXY (a list separated by , or |); "direct" or "off" mean the default.
proxy=${GOPROXY:-$(go env GOPROXY 2>/dev/null || true)}
proxy=${proxy%%[,|]*}
case $proxy in http://* | https://*) proxy=${proxy%/} ;; *) proxy=https://proxy.golang.org ;; esac

# fetch MODULE VERSION H1 FILE...: FILEs are paths inside the module.
fetch() {
  local module=$1 version=$2 h1=$3; shift 3
  local dest=$GITOPS_CRDS_DIR/$module@$version f missing=0
  for f in "$@"; do [ -s "$dest/$(basename "$f")" ] || missing=1; done
  if [ $missing = 1 ]; then
    mkdir -p "$GITOPS_CRDS_DIR"
    local tmp start=$SECONDS
    tmp=$(mktemp -d "$GITOPS_CRDS_DIR/.fetch.XXXXXX")
    # The proxy spells upper-case letters of a module path as '!' and the lower-case letter.
    local url
    url="$proxy/$(sed 's/[A-Z]/!\L&/g' <<<"$module")/@v/$version.zip"
    echo "gitops-crds: fetching $module@$version ..." >&2
    if ! curl -sSfL --retry 3 -o "$tmp/module.zip" "$url"; then
      rm -rf "$tmp"; echo "gitops-crds: could not fetch $url" >&2; return 1
    fi
    if ! python3 - "$tmp/module.zip" "$h1" "$module@$version/" "$tmp/out" "$@" <<'PY'; then
import base64, hashlib, os, sys, zipfile
path, want, prefix, out, files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
z = zipfile.ZipFile(path)
# Go's dirhash Hash1, what go.sum holds for a module zip.
summary = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in sorted(z.namelist()))
got = "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
if got != want:
    sys.exit(f"gitops-crds: {prefix} has hash {got}, versions.sh pins {want}")
os.makedirs(out)
for f in files:
    with open(os.path.join(out, os.path.basename(f)), "wb") as w:
        w.write(z.read(prefix + f))
PY
      rm -rf "$tmp"; return 1
    fi
    echo "gitops-crds: $module@$version: $(stat -c %s "$tmp/module.zip") bytes in $((SECONDS - start))s" >&2
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest"
    mv "$tmp/out" "$dest"
    rm -rf "$tmp"
  fi
  for f in "$@"; do echo "$dest/$(basename "$f")"; done
}

fetch github.com/argoproj/argo-cd/v3 "$ARGOCD_VERSION" "$ARGOCD_H1" \
  manifests/crds/application-crd.yaml
fetch github.com/fluxcd/kustomize-controller "$FLUX_KUSTOMIZE_CONTROLLER_VERSION" "$FLUX_KUSTOMIZE_CONTROLLER_H1" \
  config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml
fetch github.com/fluxcd/source-controller "$FLUX_SOURCE_CONTROLLER_VERSION" "$FLUX_SOURCE_CONTROLLER_H1" \
  config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml
