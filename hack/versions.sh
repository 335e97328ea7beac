# Pinned versions of everything the local control plane is built from.
# Sourced by the other hack/ scripts; change a version here and the cache key changes with it.
K8S_VERSION=v1.33.13
# etcd's version is whatever k8s.io/kubernetes requires (go.etcd.io/etcd/server/v3), so the two
# always match; it is built from the same wrapper module.
KWOK_VERSION=v0.7.0
GATEWAY_API_VERSION=v1.3.0

FLEDGE_CACHE=${FLEDGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fledge}
K8S_BIN=$FLEDGE_CACHE/k8s-$K8S_VERSION/bin
KWOK_BIN=$FLEDGE_CACHE/kwok-$KWOK_VERSION/bin
# helm renders and lints charts/fledge in `make test`; built from its Go module like the rest.
HELM_VERSION=v3.18.6
HELM_BIN=$FLEDGE_CACHE/helm-$HELM_VERSION/bin
