//! End-to-end tests against a real Kubernetes API server (see harness.rs for which one).
//! Run them with `make test`, or `hack/cluster.sh up` then `cargo test --test e2e`.

mod exporter;
mod grpc;
mod harness;
mod load;

mod analysis;
mod analysis_args;
mod analysis_fields;
mod anti_affinity;
mod bluegreen;
mod canary;
mod chart;
mod dataplane;
mod examples;
mod gates;
mod istio;
mod metric_servers;
mod mirror_match;
mod notify;
mod plugin;
mod replica_fields;
mod resilience;
mod role_metadata;
mod smoke;
mod traffic;
mod workload_ref;
