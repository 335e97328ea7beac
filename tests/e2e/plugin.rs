//! `kubectl fledge` against a running rollout: requests move it, `status --watch` exit codes.

use std::process::Command;

use fledge::api::{PauseReason, Phase, Rollout};
use serde_json::json;

use crate::canary::deploy_v1;
use crate::harness::{MINUTE, TestEnv, canary_rollout, kubeconfig_path};

/// Runs the plugin in the test's namespace: (exit code, stdout, stderr).
pub fn plugin(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-fledge"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .args(["-n", &env.ns])
        .args(args)
        .output()
        .expect("running kubectl-fledge");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

fn state(r: &Rollout) -> (Option<i32>, Option<Phase>) {
    let s = r.status.clone().unwrap_or_default();
    (s.current_step_index, s.phase)
}

#[tokio::test]
async fn requests_move_a_rollout_and_status_exit_codes_tell_the_outcome() {
    let env = TestEnv::canary("plugin").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}]);
    deploy_v1(&env, canary_rollout("web", 4, "1", steps.clone())).await;
    let (code, out, _) = plugin(&env, &["status", "web"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Healthy"), "{out}");

    env.apply::<Rollout>(canary_rollout("web", 4, "2", steps.clone()))
        .await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| {
        state(r) == (Some(1), Some(Phase::Paused))
    })
    .await;

    // A pending pause makes `status --watch` time out: exit 2.
    let (code, _, err) = plugin(&env, &["status", "web", "--watch", "--timeout", "2s"]);
    assert_eq!(code, 2, "{err}");

    let (code, out, err) = plugin(&env, &["pause", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    let paused_by_user = |r: &Rollout| {
        r.status.as_ref().is_some_and(|s| {
            s.pause_conditions
                .iter()
                .any(|p| p.reason == PauseReason::UserPaused)
        })
    };
    assert!(paused_by_user(&env.rollout("web").await));
    let (code, out, err) = plugin(&env, &["resume", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!paused_by_user(&env.rollout("web").await));

    let (code, out, err) = plugin(&env, &["promote", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("promote requested"), "{out}");
    env.wait_rollout("web", "paused at step 3", MINUTE, |r| {
        state(r) == (Some(3), Some(Phase::Paused))
    })
    .await;

    let (code, out, err) = plugin(&env, &["abort", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Degraded"),
        "prints what the controller did: {out}"
    );
    let (code, _, _) = plugin(&env, &["status", "web", "--watch", "--timeout", "30s"]);
    assert_eq!(code, 1, "Degraded is exit 1");

    let (code, out, err) = plugin(&env, &["retry", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = plugin(&env, &["promote", "web", "--full"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = plugin(&env, &["status", "web", "--watch", "--timeout", "60s"]);
    assert_eq!(code, 0, "Healthy is exit 0: {out}");

    let (code, out, _) = plugin(&env, &["list", "rollouts"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("NAME") && out.contains("web") && out.contains("Canary"),
        "{out}"
    );
    let (code, out, _) = plugin(&env, &["list", "rollouts", "-o", "json"]);
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).expect("-o json is JSON");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    let (code, out, _) = plugin(&env, &["completion", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("kubectl-fledge") && out.contains("promote"),
        "a bash completion script"
    );

    let (code, _, err) = plugin(&env, &["promote", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found") && err.contains(&env.ns), "{err}");
}

#[tokio::test]
async fn set_image_starts_a_new_revision_and_warns_when_git_manages_the_rollout() {
    let env = TestEnv::canary("plugin-set").await;
    let mut manifest = canary_rollout("web", 2, "1", json!([{"setWeight": 50}, {"pause": {}}]));
    manifest["metadata"]["annotations"] =
        json!({"argocd.argoproj.io/tracking-id": "shop:fledge.dev/Rollout:shop/web"});
    let v1 = deploy_v1(&env, manifest).await;

    let (code, out, err) = plugin(&env, &["set", "image", "web", "app=registry.example/web:2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("managed by Argo CD") && err.contains("Git"),
        "{err}"
    );
    let r = env
        .wait_rollout("web", "the new revision paused at step 1", MINUTE, |r| {
            state(r) == (Some(1), Some(Phase::Paused))
        })
        .await;
    assert_ne!(r.status.unwrap().current_revision, Some(v1));

    let (code, _, err) = plugin(&env, &["set", "image", "web", "nope=x:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("no container \"nope\""), "{err}");
}
