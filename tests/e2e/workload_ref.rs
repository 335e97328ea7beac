//! `workloadRef` on a real API server: a Rollout that leaves its selector to the Deployment, and
//! `scaleDown: progressively` handing the Deployment's pods over to the Rollout's.

use std::sync::{Arc, Mutex};

use fledge::api::{HASH_LABEL, Phase, Rollout};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::harness::{MINUTE, TestEnv, pod_template};

/// Deployment `legacy` with `replicas` pods, selecting `app: legacy, tier: web` (not the
/// Rollout's name, so a selector the Rollout made up would not match).
fn deployment(replicas: i32) -> Value {
    let mut template = pod_template("legacy", "1");
    template["metadata"]["labels"]["tier"] = json!("web");
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "legacy", "tier": "web"}},
            "template": template,
        },
    })
}

/// Rollout `legacy` over Deployment `legacy`, without a selector.
fn rollout(replicas: i32, scale_down: &str) -> Value {
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": replicas,
            "workloadRef": {
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "legacy",
                "scaleDown": scale_down,
            },
            "strategy": {"canary": {"stableService": "legacy-stable", "steps": []}},
        },
    })
}

async fn env(name: &str) -> TestEnv {
    let mut env = TestEnv::new(name).await;
    env.service("legacy-stable", "legacy").await;
    env.start_operator();
    env
}

fn healthy(r: &Rollout) -> bool {
    let s = r.status.as_ref();
    s.and_then(|s| s.phase) == Some(Phase::Healthy)
        && s.and_then(|s| s.observed_generation) == r.metadata.generation
}

/// fledge's ReplicaSets (those with the revision hash label): (selector's matchLabels, available).
async fn rollout_replica_sets(env: &TestEnv) -> Vec<(Value, i32)> {
    env.api::<ReplicaSet>()
        .list(&ListParams::default().labels(HASH_LABEL))
        .await
        .expect("listing ReplicaSets")
        .into_iter()
        .map(|rs| {
            let spec = rs.spec.unwrap_or_default();
            let available = rs.status.and_then(|s| s.available_replicas).unwrap_or(0);
            (json!(spec.selector.match_labels), available)
        })
        .collect()
}

/// Scenario: a Rollout without a selector referencing a Deployment: its ReplicaSet selects the
/// Deployment's labels (with the revision hash), the `/scale` selector says so, and it becomes
/// Healthy. A Rollout with its own template and no selector is refused at admission.
#[tokio::test]
async fn a_rollout_without_selector_takes_the_deployments() {
    let env = env("wl-selector").await;
    let mut refused = rollout(2, "never");
    refused["metadata"]["name"] = json!("refused");
    refused["spec"]
        .as_object_mut()
        .unwrap()
        .remove("workloadRef");
    refused["spec"]["template"] = pod_template("legacy", "1");
    let obj: Rollout = serde_json::from_value(refused).unwrap();
    let err = env
        .rollouts()
        .patch("refused", &PatchParams::apply("e2e"), &Patch::Apply(&obj))
        .await
        .expect_err("no selector and no workloadRef");
    assert!(err.to_string().contains("spec.selector: required"), "{err}");

    env.apply::<Deployment>(deployment(2)).await;
    env.apply::<Rollout>(rollout(2, "never")).await;
    let r = env.wait_rollout("legacy", "Healthy", MINUTE, healthy).await;
    let status = r.status.unwrap();
    let hash = status.stable_revision.unwrap();
    assert_eq!(status.selector.as_deref(), Some("app=legacy,tier=web"));
    assert_eq!(
        rollout_replica_sets(&env).await,
        vec![(json!({"app": "legacy", "tier": "web", HASH_LABEL: hash}), 2)]
    );
    // `never`: the Deployment keeps its pods.
    let d = env.api::<Deployment>().get("legacy").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(2));
}

/// Scenario: a namespace whose pod quota (6) leaves room for the Deployment's 4 pods and only 2
/// more: with `scaleDown: progressively` the Rollout's pods can only come as the Deployment's go,
/// which they do as the Rollout's become available. Every size the Deployment is given (watched,
/// so none is missed) is at least 4 minus the Rollout's available pods, and the Rollout ends
/// Healthy with the Deployment at 0.
#[tokio::test]
async fn progressively_hands_the_deployments_pods_over_as_the_rollouts_become_available() {
    let env = env("wl-progressive").await;
    env.apply::<k8s_openapi::api::core::v1::ResourceQuota>(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "pods"},
        "spec": {"hard": {"pods": "6"}},
    }))
    .await;
    env.apply::<Deployment>(deployment(4)).await;
    env.wait_for("the Deployment available", MINUTE, || async {
        let d = env
            .api::<Deployment>()
            .get("legacy")
            .await
            .map_err(|e| e.to_string())?;
        match d.status.and_then(|s| s.available_replicas) {
            Some(4) => Ok(()),
            other => Err(format!("{other:?} available")),
        }
    })
    .await;

    // Each size the Deployment is given, with the Rollout's available pods read after it.
    let seen: Arc<Mutex<Vec<(i32, i32)>>> = Arc::default();
    let watch = {
        let (seen, deployments, replica_sets) = (
            seen.clone(),
            env.api::<Deployment>(),
            env.api::<ReplicaSet>(),
        );
        tokio::spawn(async move {
            let config = watcher::Config::default().fields("metadata.name=legacy");
            let mut events = watcher::watcher(deployments, config).boxed();
            while let Some(Ok(event)) = events.next().await {
                let (watcher::Event::Apply(d) | watcher::Event::InitApply(d)) = event else {
                    continue;
                };
                let size = d.spec.and_then(|s| s.replicas).unwrap_or(1);
                let mut seen_now = seen.lock().unwrap().clone();
                if seen_now.last().map(|(s, _)| *s) == Some(size) {
                    continue;
                }
                let available: i32 = replica_sets
                    .list(&ListParams::default().labels(HASH_LABEL))
                    .await
                    .map(|l| {
                        l.items
                            .iter()
                            .filter_map(|rs| rs.status.as_ref()?.available_replicas)
                            .sum()
                    })
                    .unwrap_or(0);
                seen_now.push((size, available));
                *seen.lock().unwrap() = seen_now;
            }
        })
    };

    env.apply::<Rollout>(rollout(4, "progressively")).await;
    env.wait_rollout("legacy", "Healthy", 2 * MINUTE, healthy)
        .await;
    env.wait_for("the Deployment at 0", MINUTE, || async {
        let sizes: Vec<i32> = seen.lock().unwrap().iter().map(|(s, _)| *s).collect();
        if sizes.last() == Some(&0) {
            Ok(())
        } else {
            Err(format!("{sizes:?}"))
        }
    })
    .await;
    watch.abort();
    let seen = seen.lock().unwrap().clone();
    eprintln!("Deployment sizes (with the Rollout's available pods read after each): {seen:?}");
    let sizes: Vec<i32> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(sizes.first(), Some(&4), "{seen:?}");
    assert!(sizes.windows(2).all(|w| w[1] < w[0]), "only down: {seen:?}");
    assert!(
        sizes.iter().any(|s| (1..4).contains(s)),
        "through at least one size between 4 and 0: {seen:?}"
    );
    // The Rollout's available pods only grow here, so those read after a size are at least
    // those the size was chosen from.
    for (size, available) in &seen {
        assert!(size + available >= 4, "{seen:?}");
    }
}
