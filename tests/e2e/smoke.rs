//! The cluster is real: controllers run, pods become Ready on KWOK nodes, CRDs are served, and
//! every example manifest is accepted by the API server.

use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::Discovery;
use serde_json::json;

use crate::harness::{MINUTE, TestEnv};

#[tokio::test]
async fn deployment_becomes_available_on_kwok_nodes_and_is_garbage_collected() {
    let env = TestEnv::new("smoke-deploy").await;
    env.apply::<Deployment>(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": crate::harness::pod_template("hello", "1"),
        },
    }))
    .await;
    env.wait_for("Deployment Available with 2 ready pods", MINUTE, || async {
        let d = env
            .api::<Deployment>()
            .get("hello")
            .await
            .map_err(|e| e.to_string())?;
        let s = d.status.clone().unwrap_or_default();
        let available = s
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        if available && s.ready_replicas == Some(2) {
            Ok(())
        } else {
            Err(format!("{:?}", d.status))
        }
    })
    .await;

    env.api::<Deployment>()
        .delete("hello", &DeleteParams::background())
        .await
        .unwrap();
    env.wait_for(
        "the garbage collector to delete its ReplicaSet",
        MINUTE,
        || async {
            let left = env
                .api::<ReplicaSet>()
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            if left.items.is_empty() {
                Ok(())
            } else {
                Err(format!("{} left", left.items.len()))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn gateway_api_and_fledge_crds_are_served() {
    let env = TestEnv::new("smoke-crds").await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    for name in [
        "rollouts.fledge.dev",
        "httproutes.gateway.networking.k8s.io",
        "gateways.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io",
    ] {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "{name} not Established");
    }
    // The installed Rollout CRD is exactly what this build generates (crds/ is not stale in
    // the cluster either).
    let installed = crds.get("rollouts.fledge.dev").await.unwrap();
    let generated = <fledge::api::Rollout as kube::CustomResourceExt>::crd();
    assert_eq!(
        serde_json::to_value(&installed.spec.versions[0].schema).unwrap(),
        serde_json::to_value(&generated.spec.versions[0].schema).unwrap(),
        "the cluster has a different Rollout schema: reinstall crds/"
    );
}

#[tokio::test]
async fn every_example_passes_a_server_side_dry_run() {
    let env = TestEnv::new("smoke-examples").await;
    let discovery = Discovery::new(env.client.clone())
        .run()
        .await
        .expect("discovery");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no examples found");
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = <serde_json::Value as serde::Deserialize>::deserialize(doc).unwrap();
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let types = obj.types.clone().expect("apiVersion and kind");
            let (group, version) = match types.api_version.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), types.api_version.clone()),
            };
            let gvk = kube::core::GroupVersionKind::gvk(&group, &version, &types.kind);
            let (resource, caps) = discovery
                .resolve_gvk(&gvk)
                .unwrap_or_else(|| panic!("{}: {gvk:?} is not served", file.display()));
            let api: Api<DynamicObject> = if caps.scope == kube::discovery::Scope::Namespaced {
                Api::namespaced_with(env.client.clone(), &env.ns, &resource)
            } else {
                Api::all_with(env.client.clone(), &resource)
            };
            let name = obj.metadata.name.clone().expect("examples have names");
            let mut obj = obj;
            obj.metadata.namespace = None;
            api.patch(
                &name,
                &PatchParams::apply("e2e").dry_run(),
                &Patch::Apply(&obj),
            )
            .await
            .unwrap_or_else(|e| panic!("{} ({} {name}): {e}", file.display(), types.kind));
            checked += 1;
        }
    }
    eprintln!("{checked} example objects accepted");
}
