//! Crashes, restarts, failover and bad input.

use std::time::Duration;

use fledge::api::{Phase, RequestAction, Rollout};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::ApiResource;
use serde_json::json;

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout};

fn step_phase(r: &Rollout) -> (Option<i32>, Option<Phase>) {
    let s = r.status.clone().unwrap_or_default();
    (s.current_step_index, s.phase)
}

#[tokio::test]
async fn sigkill_mid_rollout_resumes_where_it_stopped() {
    let mut env = TestEnv::new("sigkill").await;
    env.service("web-stable", "web").await;
    env.service("web-canary", "web").await;
    let first = env.start_operator();
    let steps =
        json!([{"setWeight": 25}, {"pause": {"duration": "5s"}}, {"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(&env, canary_rollout("web", 4, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 4, "2", steps))
        .await;
    env.wait_rollout("web", "in the timed pause", MINUTE, |r| {
        step_phase(r) == (Some(1), Some(Phase::Paused))
    })
    .await;

    env.operator(first).kill();
    env.start_operator();
    let r = env
        .wait_rollout(
            "web",
            "paused at the last step after restart",
            MINUTE,
            |r| step_phase(r) == (Some(3), Some(Phase::Paused)),
        )
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    // No duplicate ReplicaSets: one per revision, at the sizes of step 2.
    let mut want = vec![(v1.clone(), 2, 2), (v2.clone(), 2, 2)];
    want.sort();
    assert_eq!(env.replica_sets().await, want);

    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "Healthy on v2", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Healthy) && s.stable_revision.as_deref() == Some(v2.as_str())
    })
    .await;
    assert_eq!(env.replica_sets().await.len(), 2);
}

#[tokio::test]
async fn invalid_rollouts_are_rejected_with_readable_messages() {
    let env = TestEnv::new("invalid").await;
    let api: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.ns,
        &ApiResource::erase::<Rollout>(&()),
    );
    let cases = [
        (
            "setWeight",
            json!({"canary": {"steps": [{"setWeight": 150}]}}),
            "setWeight",
        ),
        (
            "two actions",
            json!({"canary": {"steps": [{"setWeight": 10, "pause": {}}]}}),
            "exactly one of setWeight, pause, setCanaryScale",
        ),
        (
            "no step action",
            json!({"canary": {"steps": [{}]}}),
            "exactly one of setWeight, pause, setCanaryScale",
        ),
        (
            "two strategies",
            json!({"canary": {}, "blueGreen": {"activeService": "a"}}),
            "exactly one of canary or blueGreen",
        ),
        (
            "no activeService",
            json!({"blueGreen": {}}),
            "activeService",
        ),
        (
            "duration",
            json!({"canary": {"steps": [{"pause": {"duration": "5 minutes"}}]}}),
            "duration",
        ),
    ];
    for (what, strategy, expected) in cases {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "bad"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": crate::harness::pod_template("web", "1"),
                "strategy": strategy,
            },
        }))
        .unwrap();
        let err = api
            .patch("bad", &PatchParams::apply("e2e"), &Patch::Apply(&obj))
            .await
            .expect_err(what);
        let message = err.to_string();
        assert!(message.contains(expected), "{what}: {message}");
    }

    // Selector and template labels must agree.
    let mut wrong = serde_json::to_value(canary_rollout("bad", 1, "1", json!([]))).unwrap();
    wrong["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    let obj: DynamicObject = serde_json::from_value(wrong).unwrap();
    let err = api
        .patch("bad", &PatchParams::apply("e2e"), &Patch::Apply(&obj))
        .await
        .expect_err("selector mismatch");
    assert!(err.to_string().contains("selector"), "{err}");
}

#[tokio::test]
async fn missing_service_is_invalid_spec_until_it_exists() {
    let mut env = TestEnv::new("missing-svc").await;
    env.service("web-stable", "web").await;
    env.start_operator();
    env.apply::<Rollout>(canary_rollout("web", 2, "1", json!([])))
        .await;
    let r = env
        .wait_rollout("web", "InvalidSpec", MINUTE, |r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "InvalidSpec"))
        })
        .await;
    let s = r.status.unwrap();
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == "InvalidSpec")
        .unwrap();
    assert!(
        c.message.contains("strategy.canary.canaryService") && c.message.contains("web-canary"),
        "{}",
        c.message
    );
    assert_eq!(s.phase, Some(Phase::Degraded));
    assert!(
        env.replica_sets().await.is_empty(),
        "nothing deployed while invalid"
    );

    env.service("web-canary", "web").await;
    env.wait_rollout("web", "Healthy once the Service exists", MINUTE, |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == Some(Phase::Healthy))
    })
    .await;
}

#[tokio::test]
async fn leader_election_fails_over() {
    let mut env = TestEnv::new("leader").await;
    env.service("web-stable", "web").await;
    env.service("web-canary", "web").await;
    let args = [
        "--leader-elect=true",
        "--lease-duration-seconds=4",
        "--lease-renew-deadline-seconds=3",
        "--lease-retry-period-seconds=1",
    ];
    let ns = env.ns.clone();
    let a = env.start_operator_with(&[&args[..], &["--leader-namespace", &ns]].concat());
    let b = env.start_operator_with(&[&args[..], &["--leader-namespace", &ns]].concat());

    let leases: Api<Lease> = env.api();
    let holder = |env: &TestEnv| {
        let leases = leases.clone();
        let _ = env;
        async move {
            leases
                .get("fledge-controller")
                .await
                .ok()
                .and_then(|l| l.spec?.holder_identity)
                .ok_or_else(|| "no holder".to_string())
        }
    };
    let first = env.wait_for("a leader", MINUTE, || holder(&env)).await;
    // The leader's version is what `kubectl fledge version` reports.
    let (code, out, _) = crate::plugin::plugin(&env, &["version"]);
    assert_eq!(code, 0);
    let lease = format!("(Lease {}/fledge-controller)", env.ns);
    assert!(
        out.contains("client: kubectl-fledge") && out.contains(&lease),
        "{out}"
    );
    let (leader, standby) = if first.starts_with("op0-") {
        (a, b)
    } else {
        (b, a)
    };

    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    assert!(
        !env.operator(standby).logs().contains("acting"),
        "the standby wrote:\n{}",
        env.operator(standby).logs()
    );

    env.operator(leader).kill();
    let killed_at = std::time::Instant::now();
    let second = env
        .wait_for("the standby to take over", MINUTE, || async {
            match holder(&env).await {
                Ok(h) if h != first => Ok(h),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    let takeover = killed_at.elapsed();
    assert!(second.starts_with(if first.starts_with("op0-") {
        "op1-"
    } else {
        "op0-"
    }));
    eprintln!("takeover after {takeover:?} (lease 4s)");

    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    env.wait_rollout("web", "the new leader drives the rollout", MINUTE, |r| {
        step_phase(r) == (Some(1), Some(Phase::Paused))
    })
    .await;
    let _ = Duration::ZERO;
}
