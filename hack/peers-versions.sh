# Pinned versions of the controllers hack/bench-peers.sh compares fledge with (built by
# hack/build-peers.sh). Change one here and the cache key changes with it.
ARGO_ROLLOUTS_VERSION=v1.9.3
FLAGGER_VERSION=v1.44.0
# Argo Rollouts v1.9 requires go >= 1.26.10; this is the newer toolchain the module proxy serves.
PEERS_GOTOOLCHAIN=go1.27.3
