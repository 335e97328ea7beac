//! Role metadata (`canaryMetadata`/`stableMetadata`): labels and annotations on the pods of each
//! role, moved in place when a promotion changes roles.

use std::collections::BTreeMap;

use fledge::api::{HASH_LABEL, Phase, RequestAction, Rollout};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use serde_json::json;

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn with_roles(mut rollout: serde_json::Value) -> serde_json::Value {
    let canary = &mut rollout["spec"]["strategy"]["canary"];
    canary["stableMetadata"] =
        json!({"labels": {"role": "stable"}, "annotations": {"example.com/role": "stable"}});
    canary["canaryMetadata"] =
        json!({"labels": {"role": "canary"}, "annotations": {"example.com/role": "canary"}});
    rollout
}

/// `role` label and annotation of each live pod, by revision: (hash, role label, role annotation).
async fn roles(env: &TestEnv) -> BTreeMap<String, Vec<(Option<String>, Option<String>)>> {
    let pods = env
        .api::<Pod>()
        .list(&ListParams::default().labels(HASH_LABEL))
        .await
        .unwrap();
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for p in pods.items {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let labels = p.metadata.labels.unwrap_or_default();
        let annotations = p.metadata.annotations.unwrap_or_default();
        out.entry(labels[HASH_LABEL].clone()).or_default().push((
            labels.get("role").cloned(),
            annotations.get("example.com/role").cloned(),
        ));
    }
    out
}

/// Waits until the live pods of each revision are `count` and all carry `role` (None: no role).
async fn wait_roles(env: &TestEnv, what: &str, want: &[(&str, usize, Option<&str>)]) {
    env.wait_for(what, MINUTE, || async {
        let seen = roles(env).await;
        let ok = want.iter().all(|(hash, count, role)| {
            let pods = seen.get(*hash).cloned().unwrap_or_default();
            pods.len() == *count
                && pods.iter().all(|(label, annotation)| {
                    label.as_deref() == *role && annotation.as_deref() == *role
                })
        }) && seen.len() == want.iter().filter(|w| w.1 > 0).count();
        if ok { Ok(()) } else { Err(format!("{seen:?}")) }
    })
    .await
}

#[tokio::test]
async fn role_metadata_follows_the_pods_through_promotion() {
    let env = TestEnv::canary("role-metadata").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(
        &env,
        with_roles(canary_rollout("web", 2, "1", steps.clone())),
    )
    .await;
    wait_roles(
        &env,
        "v1's pods carry the stable role",
        &[(&v1, 2, Some("stable"))],
    )
    .await;

    env.apply::<Rollout>(with_roles(canary_rollout("web", 2, "2", steps)))
        .await;
    let r = env
        .wait_rollout("web", "paused at the canary step", MINUTE, |r| {
            let s = r.status.clone().unwrap_or_default();
            s.phase == Some(Phase::Paused) && s.current_step_index == Some(1)
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    wait_roles(
        &env,
        "stable and canary pods carry their roles",
        &[(&v1, 1, Some("stable")), (&v2, 1, Some("canary"))],
    )
    .await;

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "v2 Healthy", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    // v2's pods are relabelled in place (the same pod names), v1's lose the stable role while
    // they drain, and then go.
    wait_roles(
        &env,
        "the new stable's pods carry the stable role",
        &[(&v2, 2, Some("stable")), (&v1, 0, None)],
    )
    .await;
    let rs = env
        .api::<k8s_openapi::api::apps::v1::ReplicaSet>()
        .get(&format!("web-{v2}"))
        .await
        .unwrap();
    let template_labels = rs
        .spec
        .unwrap()
        .template
        .unwrap()
        .metadata
        .unwrap()
        .labels
        .unwrap();
    assert_eq!(
        template_labels.get("role").map(String::as_str),
        Some("stable")
    );
}
