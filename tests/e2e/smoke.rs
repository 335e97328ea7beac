//! The cluster is real: controllers run, pods become Ready on KWOK nodes, and CRDs are served.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams};
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

/// Replica counts past what fledge's arithmetic is bounded for (1,000,000) are refused by the
/// real API server at admission, in each field that holds one, with the field named; the bound
/// itself is accepted.
#[tokio::test]
async fn replica_counts_above_the_maximum_are_refused_at_admission() {
    use fledge::api::Rollout;
    use kube::api::{Patch, PatchParams};
    let env = TestEnv::new("smoke-replicas").await;
    let rollout = |replicas: i64, scale: i64, preview: Option<i64>| {
        let mut strategy = json!({"canary": {"steps": [{"setCanaryScale": {"replicas": scale}}]}});
        if let Some(p) = preview {
            strategy = json!({"blueGreen": {"activeService": "web", "previewReplicaCount": p}});
        }
        json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": crate::harness::pod_template("web", "1"),
                "strategy": strategy,
            },
        })
    };
    let api = env.api::<Rollout>();
    let dry = PatchParams::apply("e2e").force().dry_run();
    for (what, body, field) in [
        ("replicas", rollout(1_000_001, 1, None), "spec.replicas"),
        (
            "setCanaryScale.replicas",
            rollout(1, 21_474_837, None),
            "spec.strategy.canary.steps[0].setCanaryScale.replicas",
        ),
        (
            "previewReplicaCount",
            rollout(1, 1, Some(2_000_000)),
            "spec.strategy.blueGreen.previewReplicaCount",
        ),
    ] {
        match api.patch("web", &dry, &Patch::Apply(&body)).await {
            Err(kube::Error::Api(s)) => {
                assert_eq!(s.code, 422, "{what}: {s:?}");
                assert!(s.message.contains(field), "{what}: {}", s.message);
            }
            other => panic!("{what} above the maximum was not refused: {other:?}"),
        }
    }
    api.patch(
        "web",
        &dry,
        &Patch::Apply(&rollout(1_000_000, 1_000_000, None)),
    )
    .await
    .expect("the maximum itself is accepted");
}
