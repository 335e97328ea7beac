//! `antiAffinity` (issue 17): the new revision's ReplicaSet carries a pod anti-affinity term on
//! the stable's hash, and the real scheduler (3 KWOK nodes) keeps the canary's pods off the
//! stable's nodes.

use std::collections::{BTreeMap, BTreeSet};

use fledge::api::{HASH_LABEL, Phase, RequestAction, Rollout};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::json;

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn with_anti_affinity(mut rollout: serde_json::Value) -> serde_json::Value {
    rollout["spec"]["strategy"]["canary"]["antiAffinity"] =
        json!({"requiredDuringSchedulingIgnoredDuringExecution": {}});
    rollout
}

/// The nodes of the live pods of each revision.
async fn nodes(env: &TestEnv) -> BTreeMap<String, BTreeSet<String>> {
    let pods = env
        .api::<Pod>()
        .list(&ListParams::default().labels(HASH_LABEL))
        .await
        .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in pods.items {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let hash = p.metadata.labels.unwrap_or_default()[HASH_LABEL].clone();
        if let Some(node) = p.spec.and_then(|s| s.node_name) {
            out.entry(hash).or_default().insert(node);
        }
    }
    out
}

#[tokio::test]
async fn a_canary_with_required_anti_affinity_runs_on_nodes_without_stable_pods() {
    let env = TestEnv::canary("anti-aff").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(
        &env,
        with_anti_affinity(canary_rollout("web", 2, "1", steps.clone())),
    )
    .await;
    env.apply::<Rollout>(with_anti_affinity(canary_rollout("web", 2, "2", steps)))
        .await;
    let r = env
        .wait_rollout("web", "paused at 50%", MINUTE, |r| {
            let s = r.status.clone().unwrap_or_default();
            s.phase == Some(Phase::Paused)
                && s.canary_weight == Some(50)
                && s.updated_replicas == Some(1)
                && s.available_replicas == Some(2)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();

    // The stable's ReplicaSet runs the template as it is; the canary's carries the term.
    let rss = env.api::<ReplicaSet>();
    let affinity = |rs: ReplicaSet| {
        rs.spec
            .and_then(|s| s.template)
            .and_then(|t| t.spec)
            .and_then(|s| s.affinity)
    };
    let stable_rs = rss.get(&format!("web-{v1}")).await.unwrap();
    assert_eq!(affinity(stable_rs), None);
    let canary_rs = rss.get(&format!("web-{v2}")).await.unwrap();
    let anti = serde_json::to_value(affinity(canary_rs).expect("an affinity")).unwrap();
    assert_eq!(
        anti,
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchExpressions": [
                {"key": HASH_LABEL, "operator": "In", "values": [v1]},
            ]},
            "namespaces": [env.ns],
            "topologyKey": "kubernetes.io/hostname",
        }]}})
    );

    // The scheduler honoured it.
    let by_revision = nodes(&env).await;
    let (stable, canary) = (&by_revision[&v1], &by_revision[&v2]);
    assert!(!canary.is_empty(), "{by_revision:?}");
    assert!(stable.is_disjoint(canary), "{by_revision:?}");

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "v2 promoted", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
}
