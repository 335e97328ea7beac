//! Blue-green rollouts: preview first, then one switch of the active Service.

use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::json;

use crate::harness::{MINUTE, TestEnv, pod_template};

pub(crate) fn blue_green(version: &str, strategy: serde_json::Value) -> serde_json::Value {
    let mut bg = json!({"activeService": "web-active", "previewService": "web-preview", "scaleDownDelaySeconds": 2});
    bg.as_object_mut()
        .unwrap()
        .extend(strategy.as_object().unwrap().clone());
    json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": pod_template("web", version),
            "strategy": {"blueGreen": bg},
        },
    })
}

pub(crate) fn revisions(r: &Rollout) -> (Option<Phase>, Option<String>, Option<String>) {
    let s = r.status.clone().unwrap_or_default();
    (s.phase, s.stable_revision, s.current_revision)
}

pub(crate) async fn setup(env: &mut TestEnv, strategy: serde_json::Value) -> String {
    env.service("web-active", "web").await;
    env.service("web-preview", "web").await;
    env.start_operator();
    env.apply::<Rollout>(blue_green("1", strategy)).await;
    let r = env
        .wait_rollout("web", "v1 Healthy", MINUTE, |r| {
            revisions(r).0 == Some(Phase::Healthy)
        })
        .await;
    let v1 = revisions(&r).1.unwrap();
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));
    assert_eq!(env.service_hash("web-preview").await, Some(v1.clone()));
    v1
}

#[tokio::test]
async fn auto_promotion_switches_after_the_delay() {
    let mut env = TestEnv::new("bg-auto").await;
    let strategy = json!({"autoPromotionSeconds": 4, "previewReplicaCount": 1});
    let v1 = setup(&mut env, strategy.clone()).await;

    env.apply::<Rollout>(blue_green("2", strategy)).await;
    // Preview up (1 pod), active still on v1, waiting for the auto-promotion delay.
    let r = env
        .wait_rollout("web", "preview ready, paused", MINUTE, |r| {
            revisions(r).0 == Some(Phase::Paused)
        })
        .await;
    let v2 = revisions(&r).2.unwrap();
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));
    assert_eq!(env.service_hash("web-preview").await, Some(v2.clone()));
    let sets = env.replica_sets().await;
    assert!(
        sets.contains(&(v2.clone(), 1, 1)),
        "preview at 1 pod: {sets:?}"
    );
    assert!(
        sets.contains(&(v1.clone(), 3, 3)),
        "stable at full size: {sets:?}"
    );

    env.wait_rollout("web", "promoted to v2", MINUTE, |r| {
        revisions(r) == (Some(Phase::Healthy), Some(v2.clone()), Some(v2.clone()))
    })
    .await;
    assert_eq!(env.service_hash("web-active").await, Some(v2.clone()));
    let want = vec![(v1, 0, 0), (v2, 3, 3)];
    env.wait_replica_sets("v1 scaled to 0 after the delay, v2 at full size", want)
        .await;
}

#[tokio::test]
async fn manual_promotion_waits_for_promote() {
    let mut env = TestEnv::new("bg-manual").await;
    let strategy = json!({"autoPromotionEnabled": false});
    let v1 = setup(&mut env, strategy.clone()).await;

    env.apply::<Rollout>(blue_green("2", strategy)).await;
    let r = env
        .wait_rollout("web", "paused for promotion", MINUTE, |r| {
            revisions(r).0 == Some(Phase::Paused)
        })
        .await;
    let v2 = revisions(&r).2.unwrap();
    // It stays paused once the operator has looked again.
    env.reconciled("web").await;
    assert_eq!(revisions(&env.rollout("web").await).0, Some(Phase::Paused));
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));
    assert_eq!(env.service_hash("web-preview").await, Some(v2.clone()));

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "promoted to v2", MINUTE, |r| {
        revisions(r) == (Some(Phase::Healthy), Some(v2.clone()), Some(v2.clone()))
    })
    .await;
    assert_eq!(env.service_hash("web-active").await, Some(v2));
}
