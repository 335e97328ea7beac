#!/usr/bin/env bash
# Installs what a fresh machine lacks for `make test` and `make demo`: rustfmt and clippy for the
# Rust toolchain, and the Debian packages the scripts call. Idempotent and quiet when all is there.
set -euo pipefail

if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >&2
  done
fi
command -v cargo >/dev/null || { echo "Rust is required: https://rustup.rs" >&2; exit 1; }
command -v go >/dev/null || { echo "Go is required (it builds the local control plane): https://go.dev/dl" >&2; exit 1; }

missing=()
# lua5.1 runs the Argo CD health checks and actions in integrations/argocd (Argo CD's Lua is 5.1).
# readelf checks which shared libraries the release binary links (hack/check-binary-size.sh).
for tool in openssl:openssl curl:curl python3:python3 flock:util-linux lua5.1:lua5.1 readelf:binutils; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
# PyYAML: hack/helm-test.sh inspects the rendered chart.
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} ..." >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
