# The two commands that matter: `make demo` and `make test`. Both install or build what they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help demo demo-down test lint unit e2e crds docs chart binary-size cluster-up cluster-down tools

help:
	@echo "make demo       local control plane + operator, a canary promoted, then one aborted"
	@echo "make demo-down  stop everything the demo started"
	@echo "make test       everything CI runs: fmt, clippy, unit tests, e2e on a fresh local cluster"
	@echo "make crds       regenerate crds/ from src/api (and the chart's copy, and docs/api.md)"
	@echo "make docs       regenerate docs/api.md and integrations/argocd/argocd-cm.yaml"
	@echo "make chart      helm lint + render charts/fledge (offline; make test also dry-run applies it)"
	@echo "make binary-size  release build of fledge, failing above the size limit (part of make test)"

demo:
	bash hack/demo.sh up

demo-down:
	bash hack/demo.sh down

test:
	bash hack/test.sh

lint: tools
	cargo fmt --all --check
	cargo clippy --all-targets --locked -- -D warnings

unit: tools
	cargo test --locked --lib --bins

e2e: tools
	bash hack/test.sh e2e

crds:
	cargo run --quiet --locked --bin fledge -- crds > crds/fledge.yaml
	cp crds/*.yaml charts/fledge/crds/
	python3 hack/gen-api-docs.py

docs:
	python3 hack/gen-api-docs.py
	python3 hack/gen-argocd-cm.py

chart: tools
	bash hack/helm-test.sh offline

binary-size:
	bash hack/check-binary-size.sh

cluster-up:
	bash hack/cluster.sh up

cluster-down:
	bash hack/cluster.sh down

tools:
	bash hack/tools.sh
