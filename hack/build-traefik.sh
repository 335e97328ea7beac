#!/usr/bin/env bash
# Builds Traefik (the local Gateway API data plane, see docs/dataplane.md) from its Go module into
# $FLEDGE_CACHE/traefik-<version>/bin/traefik. A binary already there is not rebuilt.
#
# Why a writable copy of the module rather than `go install` or a wrapper module: traefik's
# go.mod has replace and exclude directives (so `go install pkg@version` refuses it), and its
# webui package embeds `webui/static`, which upstream generates with the web UI's npm build and
# which the published module zip does not contain. Building inside a copy of the module keeps
# every replace/exclude exactly as upstream has them, and lets us supply `webui/static`: a
# one-page placeholder, since the local data plane never serves the dashboard.
#
# Callers serialize it with the cache's build lock (hack/cluster.sh: flock $FLEDGE_CACHE/.build.lock).
# Builds run at the lowest CPU priority; set FLEDGE_BUILD_NICE=0 to build at normal priority.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.sh"

out=$TRAEFIK_BIN/traefik
[ -x "$out" ] && exit 0
command -v go >/dev/null || { echo "Go is required to build Traefik (https://go.dev/dl)" >&2; exit 1; }

echo "building traefik $TRAEFIK_VERSION (once; several minutes) ..." >&2
start=$SECONDS
mod=github.com/traefik/traefik/v3
src=$(cd / && go mod download -json "$mod@$TRAEFIK_VERSION" |
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"]) if "Dir" in d else sys.exit(d.get("Error","no Dir"))')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fledge-traefik-build.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
cp -r "$src" "$tmp/traefik"
chmod -R u+w "$tmp/traefik"
mkdir -p "$tmp/traefik/webui/static"
cat >"$tmp/traefik/webui/static/index.html" <<'HTML'
<!doctype html><title>Traefik</title><p>This Traefik was built by fledge's hack/build-traefik.sh without its web UI.
HTML

mkdir -p "$TRAEFIK_BIN"
ldflags="-s -w -X $mod/pkg/version.Version=$TRAEFIK_VERSION -X $mod/pkg/version.BuildDate=1970-01-01T00:00:00Z"
# Build to a temp name and rename, so an interrupted build never leaves a binary a later run
# would take as cached.
(cd "$tmp/traefik" && CGO_ENABLED=0 nice -n "${FLEDGE_BUILD_NICE:-19}" \
  go build -trimpath -ldflags "$ldflags" -o "$out.tmp" ./cmd/traefik)
mv "$out.tmp" "$out"
echo "built traefik $TRAEFIK_VERSION in $((SECONDS - start))s" >&2
