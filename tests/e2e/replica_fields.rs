//! Argo Rollouts' fields about ReplicaSet sizes and old revisions, on a real API server:
//! `minPodsPerReplicaSet`, and the ones that follow it in issue 17.

use fledge::api::{Phase, RequestAction, Rollout};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};
use crate::traffic::{apply_dynamic, get_doc, http_route, user_http_route, weights, with_routing};

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

fn step(r: &Rollout) -> Option<i32> {
    r.status.as_ref().and_then(|s| s.current_step_index)
}

/// Server-side applies `value`, returning the API server's refusal instead of panicking.
pub(crate) async fn try_apply(env: &TestEnv, value: Value) -> Result<Rollout, String> {
    let obj: Rollout = serde_json::from_value(value).expect("a Rollout");
    let name = kube::ResourceExt::name_any(&obj);
    env.rollouts()
        .patch(
            &name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&obj),
        )
        .await
        .map_err(|e| e.to_string())
}

/// Scenario: 10 replicas, setWeight 5 through an HTTPRoute, minPodsPerReplicaSet 3: the canary
/// gets 3 pods (5% would be 1), all available before the 5% goes to it.
#[tokio::test]
async fn min_pods_per_replica_set_floors_the_canary_of_a_small_weight() {
    let env = TestEnv::canary("min-pods").await;
    apply_dynamic(&env, &http_route(), user_http_route()).await;
    let routing = json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}});
    let rollout = |v: &str| {
        let steps = json!([{"setWeight": 5}, {"pause": {}}]);
        let mut r = with_routing(canary_rollout("web", 10, v, steps), routing.clone());
        r["spec"]["strategy"]["canary"]["minPodsPerReplicaSet"] = json!(3);
        r
    };
    // Without a router the field would do nothing: the API server refuses it.
    let mut unrouted = rollout("1");
    unrouted["spec"]["strategy"]["canary"]
        .as_object_mut()
        .unwrap()
        .remove("trafficRouting");
    let refused = try_apply(&env, unrouted).await.expect_err("refused");
    assert!(
        refused.contains("minPodsPerReplicaSet needs strategy.canary.trafficRouting"),
        "{refused}"
    );

    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "paused at step 1", MINUTE, |r| {
            step(r) == Some(1) && phase(r) == Some(Phase::Paused)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    env.wait_replica_sets("canary at 3 pods", vec![(v1, 10, 10), (v2, 3, 3)])
        .await;
    let route = get_doc(&env, &http_route(), "web").await.unwrap();
    assert_eq!(weights(&route, 1), (Some(95), Some(5)), "{route}");
}

/// Scenario: rollbackWindow 2 and steps that pause until a person promotes. Revision 2 waits at
/// the pause and is promoted by hand; going back to revision 1 then skips the steps: the rollout
/// is Healthy on revision 1 with nobody promoting (through the steps it would wait at the pause).
#[tokio::test]
async fn rollback_window_returns_to_a_recent_revision_without_the_steps() {
    let env = TestEnv::canary("rollback-window").await;
    let rollout = |v: &str| {
        let steps = json!([{"setWeight": 50}, {"pause": {}}]);
        let mut r = canary_rollout("web", 2, v, steps);
        r["spec"]["rollbackWindow"] = json!({"revisions": 2});
        r
    };
    let stable = |r: &Rollout| r.status.as_ref().and_then(|s| s.stable_revision.clone());
    let v1 = deploy_v1(&env, rollout("1")).await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "v2 paused at step 1", MINUTE, |r| {
        step(r) == Some(1) && phase(r) == Some(Phase::Paused)
    })
    .await;
    env.request("web", RequestAction::PromoteFull).await;
    let r = env
        .wait_rollout("web", "v2 Healthy", MINUTE, |r| {
            phase(r) == Some(Phase::Healthy) && stable(r).is_some_and(|s| s != v1)
        })
        .await;
    let v2 = stable(&r).unwrap();

    env.apply::<Rollout>(rollout("1")).await;
    env.wait_rollout("web", "back on v1, no promote", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy) && stable(r).as_deref() == Some(v1.as_str())
    })
    .await;
    env.wait_replica_sets("v1 up, v2 down", vec![(v1, 2, 2), (v2, 0, 0)])
        .await;
}

/// Scenario: three revisions promoted within one 60 s scale-down delay, with
/// scaleDownDelayRevisionLimit 1: revision 2 keeps its pods for the delay, revision 1 does not.
#[tokio::test]
async fn scale_down_delay_revision_limit_keeps_only_the_newest_old_revision_up() {
    let env = TestEnv::canary("delay-limit").await;
    let rollout = |v: &str| {
        let mut r = canary_rollout("web", 2, v, json!([]));
        r["spec"]["strategy"]["canary"]["scaleDownDelaySeconds"] = json!(60);
        r["spec"]["strategy"]["canary"]["scaleDownDelayRevisionLimit"] = json!(1);
        r
    };
    let v1 = deploy_v1(&env, rollout("1")).await;
    let healthy_on = |v: &str| {
        let v = v.to_string();
        move |r: &Rollout| {
            phase(r) == Some(Phase::Healthy)
                && r.status.as_ref().unwrap().stable_revision.as_deref() != Some(v.as_str())
        }
    };
    env.apply::<Rollout>(rollout("2")).await;
    let r = env
        .wait_rollout("web", "v2 Healthy", MINUTE, healthy_on(&v1))
        .await;
    let v2 = r.status.unwrap().stable_revision.unwrap();
    // Within the delay, revision 1 is still up.
    assert!(
        env.replica_sets().await.contains(&(v1.clone(), 2, 2)),
        "{:?}",
        env.replica_sets().await
    );
    env.apply::<Rollout>(rollout("3")).await;
    let r = env
        .wait_rollout("web", "v3 Healthy", MINUTE, healthy_on(&v2))
        .await;
    let v3 = r.status.unwrap().stable_revision.unwrap();
    env.wait_replica_sets(
        "revision 1 down, revision 2 waiting",
        vec![(v1, 0, 0), (v2, 2, 2), (v3, 2, 2)],
    )
    .await;
}

/// Scenario: a blue-green preview aborted with abortScaleDownDelaySeconds 0 keeps its pods
/// behind the preview Service (proved after the operator has looked again); a delay of 2 s set
/// afterwards, long past by then, lets them go and the preview Service back to the stable.
#[tokio::test]
async fn blue_green_abort_scale_down_delay_keeps_the_preview_then_lets_it_go() {
    use crate::bluegreen::{blue_green, revisions, setup};
    let mut env = TestEnv::new("bg-abort-delay").await;
    let strategy =
        |delay: i32| json!({"autoPromotionEnabled": false, "abortScaleDownDelaySeconds": delay});
    let v1 = setup(&mut env, strategy(0)).await;
    env.apply::<Rollout>(blue_green("2", strategy(0))).await;
    let r = env
        .wait_rollout("web", "preview ready, paused", MINUTE, |r| {
            revisions(r).0 == Some(Phase::Paused)
        })
        .await;
    let v2 = revisions(&r).2.unwrap();
    env.wait_replica_sets(
        "the preview up",
        vec![(v1.clone(), 3, 3), (v2.clone(), 3, 3)],
    )
    .await;

    env.request("web", fledge::api::RequestAction::Abort).await;
    env.wait_rollout("web", "aborted", MINUTE, |r| {
        revisions(r).0 == Some(Phase::Degraded)
    })
    .await;
    env.reconciled("web").await;
    assert_eq!(
        env.replica_sets().await,
        {
            let mut want = vec![(v1.clone(), 3, 3), (v2.clone(), 3, 3)];
            want.sort();
            want
        },
        "a delay of 0 keeps the preview"
    );
    assert_eq!(env.service_hash("web-preview").await, Some(v2.clone()));
    assert_eq!(env.service_hash("web-active").await, Some(v1.clone()));

    env.apply::<Rollout>(blue_green("2", strategy(2))).await;
    env.wait_replica_sets("the preview gone", vec![(v1.clone(), 3, 3), (v2, 0, 0)])
        .await;
    assert_eq!(env.service_hash("web-preview").await, Some(v1));
}

/// Scenario: a blue-green Rollout of 4 pods that take 1.5 s to start (the pod agent's
/// `STARTUP_MS`) is restarted with `maxUnavailable: 2`: two pods go at once, and no third while
/// two are down. A pod watch sees every change: at no moment are more than 2 of the 4 pods
/// unready or going, and at some moment 2 are (the limit is 2, not one at a time).
#[tokio::test]
async fn blue_green_max_unavailable_bounds_a_restart() {
    use std::collections::BTreeMap;

    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;

    use crate::bluegreen::{blue_green, revisions};
    let mut env = TestEnv::new("bg-max-unavailable").await;
    env.service("web-active", "web").await;
    env.service("web-preview", "web").await;
    env.start_operator();
    let mut rollout = blue_green("1", json!({"maxUnavailable": 2}));
    rollout["spec"]["replicas"] = json!(4);
    let container = &mut rollout["spec"]["template"]["spec"]["containers"][0];
    if container["env"].is_null() {
        container["env"] = json!([]);
    }
    container["env"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "STARTUP_MS", "value": "1500"}));
    env.apply::<Rollout>(rollout).await;
    let r = env
        .wait_rollout("web", "v1 Healthy", MINUTE, |r| {
            revisions(r).0 == Some(Phase::Healthy)
        })
        .await;
    let v1 = revisions(&r).1.unwrap();
    env.wait_replica_sets("4 pods up", vec![(v1, 4, 4)]).await;

    // Every pod change, from before the restart to its end: the most pods down at once.
    let pods = env.api::<Pod>();
    let before: Vec<String> = pods
        .list(&Default::default())
        .await
        .expect("listing pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (listed_tx, listed_rx) = tokio::sync::oneshot::channel::<()>();
    let watch = tokio::spawn(async move {
        let mut listed = Some(listed_tx);
        let mut state: BTreeMap<String, bool> = BTreeMap::new();
        let mut most_down = 0usize;
        let events = watcher(pods, watcher::Config::default());
        futures::pin_mut!(events);
        loop {
            let event = tokio::select! {
                _ = &mut stop_rx => break,
                e = events.next() => e,
            };
            let Some(Ok(event)) = event else { continue };
            let serving = |p: &Pod| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    state.insert(p.metadata.name.clone().unwrap_or_default(), serving(&p));
                }
                watcher::Event::Delete(p) => {
                    state.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                watcher::Event::InitDone => {
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                watcher::Event::Init => {}
            }
            // Counted from the first full list on.
            if listed.is_none() {
                let up = state.values().filter(|s| **s).count();
                most_down = most_down.max(4usize.saturating_sub(up));
            }
        }
        most_down
    });
    // The watch has its first list (the 4 pods) before the restart is asked for.
    tokio::time::timeout(MINUTE, listed_rx)
        .await
        .expect("the pod watch lists the pods within a minute")
        .expect("the pod watch runs");

    let at = k8s_openapi::jiff::Timestamp::now().to_string();
    env.rollouts()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"restartAt": at}})),
        )
        .await
        .expect("restartAt set");
    env.wait_rollout("web", "restarted and Healthy", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.restarted_at.is_some() && s.phase == Some(Phase::Healthy)
    })
    .await;
    let _ = stop_tx.send(());
    let most_down = watch.await.expect("the pod watch");
    let after: Vec<String> = env
        .api::<Pod>()
        .list(&Default::default())
        .await
        .expect("listing pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every pod replaced: {before:?} -> {after:?}"
    );
    assert_eq!(
        most_down, 2,
        "at most maxUnavailable (2) pods down at once, and the restart used both"
    );
}
