//! Canary rollouts without a traffic router: weights are replica shares.

use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::json;

use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

fn healthy_at(r: &Rollout, hash: Option<&str>) -> bool {
    let s = r.status.clone().unwrap_or_default();
    phase(r) == Some(Phase::Healthy) && (hash.is_none() || s.stable_revision.as_deref() == hash)
}

/// Deploys v1 and waits until it is Healthy; returns its revision hash.
pub async fn deploy_v1(env: &TestEnv, rollout: serde_json::Value) -> String {
    let name = rollout["metadata"]["name"].as_str().unwrap().to_string();
    env.apply::<Rollout>(rollout).await;
    let r = env
        .wait_rollout(&name, "v1 Healthy", MINUTE, |r| healthy_at(r, None))
        .await;
    r.status.unwrap().stable_revision.unwrap()
}

#[tokio::test]
async fn three_step_canary_with_timed_pauses_reaches_healthy() {
    let env = TestEnv::canary("canary-steps").await;
    let steps = json!([
        {"setWeight": 25}, {"pause": {"duration": "4s"}},
        {"setWeight": 50}, {"pause": {"duration": "4s"}},
        {"setWeight": 75}, {"pause": {"duration": "4s"}},
    ]);
    let v1 = deploy_v1(&env, canary_rollout("web", 4, "1", steps.clone())).await;
    assert_eq!(env.replica_sets().await, vec![(v1.clone(), 4, 4)]);
    assert_eq!(
        env.service_hash("web-stable").await.as_deref(),
        Some(v1.as_str())
    );
    // Pinning adds the hash to the user's selector; it does not replace it.
    let svc = env
        .api::<k8s_openapi::api::core::v1::Service>()
        .get("web-stable")
        .await
        .unwrap();
    let selector = svc.spec.unwrap().selector.unwrap();
    assert_eq!(
        selector.get("app").map(String::as_str),
        Some("web"),
        "{selector:?}"
    );

    env.apply::<Rollout>(canary_rollout("web", 4, "2", steps))
        .await;
    // At each timed pause the ReplicaSets hold the step's sizes: 1/3, 2/2, 3/1 of 4.
    for (pause_index, canary, stable) in [(1, 1, 3), (3, 2, 2), (5, 3, 1)] {
        let r = env
            .wait_rollout("web", &format!("pause step {pause_index}"), MINUTE, |r| {
                step(r) == Some(pause_index) && phase(r) == Some(Phase::Paused)
            })
            .await;
        let v2 = r.status.as_ref().unwrap().current_revision.clone().unwrap();
        let sets = env.replica_sets().await;
        let size = |h: &str| sets.iter().find(|s| s.0 == h).map(|s| s.1);
        assert_eq!(
            size(&v2),
            Some(canary),
            "canary at step {pause_index}: {sets:?}"
        );
        assert_eq!(
            size(&v1),
            Some(stable),
            "stable at step {pause_index}: {sets:?}"
        );
        assert_eq!(env.service_hash("web-canary").await, Some(v2.clone()));
        assert_eq!(env.service_hash("web-stable").await, Some(v1.clone()));
        let weight = r.status.as_ref().unwrap().canary_weight;
        assert_eq!(
            weight,
            Some(canary * 100 / 4),
            "weight at step {pause_index}"
        );
    }

    let r = env
        .wait_rollout("web", "v2 Healthy", MINUTE, |r| {
            let s = r.status.clone().unwrap_or_default();
            healthy_at(r, s.current_revision.as_deref())
                && s.stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    let v2 = r.status.unwrap().stable_revision.unwrap();
    assert_eq!(env.service_hash("web-stable").await, Some(v2.clone()));
    // The old revision goes to 0 after scaleDownDelaySeconds (2s).
    env.wait_replica_sets("old ReplicaSet scaled to 0", vec![(v1, 0, 0), (v2, 4, 4)])
        .await;
}

#[tokio::test]
async fn indefinite_pause_waits_for_promote() {
    let env = TestEnv::canary("canary-promote").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(&env, canary_rollout("web", 4, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 4, "2", steps))
        .await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| {
        step(r) == Some(1) && phase(r) == Some(Phase::Paused)
    })
    .await;
    // An indefinite pause stays put, once the operator has looked again.
    env.reconciled("web").await;
    let r = env.rollout("web").await;
    assert_eq!((step(&r), phase(&r)), (Some(1), Some(Phase::Paused)));

    env.request("web", RequestAction::Promote).await;
    let r = env
        .wait_rollout("web", "Healthy after promote", MINUTE, |r| {
            healthy_at(r, None)
                && r.status.as_ref().unwrap().stable_revision.as_deref() != Some(v1.as_str())
        })
        .await;
    assert!(
        r.status.unwrap().request.is_none(),
        "the request is consumed"
    );
}

#[tokio::test]
async fn abort_then_retry() {
    let env = TestEnv::canary("canary-abort").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(&env, canary_rollout("web", 4, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 4, "2", steps))
        .await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();

    env.request("web", RequestAction::Abort).await;
    let r = env
        .wait_rollout("web", "Degraded after abort, back on stable", MINUTE, |r| {
            phase(r) == Some(Phase::Degraded) && r.status.as_ref().unwrap().canary_weight == Some(0)
        })
        .await;
    let s = r.status.unwrap();
    assert!(s.abort);
    assert_eq!(s.canary_weight, Some(0));
    let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "RolloutAborted")
    );
    let want = vec![(v1.clone(), 4, 4), (v2.clone(), 0, 0)];
    env.wait_replica_sets("canary scaled to 0, stable at 4", want)
        .await;
    assert_eq!(env.service_hash("web-stable").await, Some(v1.clone()));
    // The canary's pods are gone: its Service selects the stable's, never a revision without pods.
    env.wait_for("web-canary back on v1", MINUTE, || async {
        match env.service_hash("web-canary").await {
            Some(h) if h == v1 => Ok(()),
            other => Err(format!("web-canary selects {other:?}")),
        }
    })
    .await;

    env.request("web", RequestAction::Retry).await;
    env.wait_rollout("web", "paused at step 1 again after retry", MINUTE, |r| {
        step(r) == Some(1) && phase(r) == Some(Phase::Paused) && !r.status.as_ref().unwrap().abort
    })
    .await;
    assert_eq!(env.service_hash("web-canary").await, Some(v2.clone()));
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "Healthy on v2", MINUTE, |r| healthy_at(r, Some(&v2)))
        .await;
}

#[tokio::test]
async fn scale_subresource_drives_replicas_like_an_hpa() {
    let env = TestEnv::canary("scale").await;
    let v1 = deploy_v1(&env, canary_rollout("web", 2, "1", json!([]))).await;

    // What an HPA does: read and write /scale, which selects the pods by status.selector.
    let scale = env
        .rollouts()
        .get_scale("web")
        .await
        .expect("/scale is served");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(
        scale.status.and_then(|s| s.selector).as_deref(),
        Some("app=web")
    );
    env.rollouts()
        .patch_scale(
            "web",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .expect("scaling through /scale");
    env.wait_replica_sets("5 pods of the stable revision", vec![(v1, 5, 5)])
        .await;
}

/// Scenario (no router): at setWeight 100 the canary has all 4 pods and the stable none; an abort
/// with maxUnavailable 0 rolls back as a Deployment would. minReadySeconds makes new pods take a
/// while to become available; watching the ReplicaSets, the available pods never drop below 4.
#[tokio::test]
async fn abort_at_weight_100_with_max_unavailable_0_keeps_every_pod_available() {
    let env = TestEnv::canary("canary-abort-100").await;
    let steps = json!([{"setWeight": 100}, {"pause": {}}]);
    let rollout = |v: &str| {
        let mut r = canary_rollout("web", 4, v, steps.clone());
        r["spec"]["minReadySeconds"] = json!(2);
        r["spec"]["strategy"]["canary"]["maxUnavailable"] = json!(0);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    env.wait_replica_sets(
        "all pods on the canary",
        vec![(v1.clone(), 0, 0), (v2.clone(), 4, 4)],
    )
    .await;

    env.request("web", RequestAction::Abort).await;
    let start = std::time::Instant::now();
    let mut lowest = (i32::MAX, Vec::new());
    loop {
        let sets = env.replica_sets().await;
        let available: i32 = sets.iter().map(|s| s.2).sum();
        if available < lowest.0 {
            lowest = (available, sets.clone());
        }
        if sets == vec![(v1.clone(), 4, 4), (v2.clone(), 0, 0)]
            || sets == vec![(v2.clone(), 0, 0), (v1.clone(), 4, 4)]
        {
            break;
        }
        assert!(
            start.elapsed() < MINUTE,
            "not back on the stable after a minute: {sets:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        lowest.0 >= 4,
        "available pods dropped to {} during the abort: {:?}",
        lowest.0,
        lowest.1
    );
    let r = env.rollout("web").await;
    assert_eq!(phase(&r), Some(Phase::Degraded));
    assert_eq!(env.service_hash("web-stable").await, Some(v1));
}
