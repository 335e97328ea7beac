#!/usr/bin/env bash
# `make binary-size`: builds the release `fledge` binary (the one the container image ships) and
# fails when it is larger than the limit below, so a dependency that bloats the image is noticed.
#
# The limit: the release build measured 0 MiB with the dependencies of Cargo.lock at the time the
# check was added (strip, thin LTO, codegen-units 4: see [profile.release]); the limit leaves
# about 25% of headroom. Raise it deliberately, in the same change that explains why.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT_MIB=${FLEDGE_BINARY_LIMIT_MIB:-0}

start=$SECONDS
cargo build --release --locked --bin fledge
bin=target/release/fledge
bytes=$(stat -c %s "$bin")
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "$bin: $mib MiB (limit $LIMIT_MIB MiB), built in $((SECONDS - start))s" >&2
if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "the release binary grew past $LIMIT_MIB MiB: find the cause (cargo bloat --release --crates)" >&2
  exit 1
fi
