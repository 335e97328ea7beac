//! `kubectl fledge` against a running rollout: requests move it, `status --watch` exit codes.

use std::path::Path;
use std::process::Command;

use fledge::api::{PauseReason, Phase, Rollout};
use serde_json::json;

use crate::canary::deploy_v1;
use crate::harness::{ChildGuard, MINUTE, TestEnv, canary_rollout, kubeconfig_path};

/// Runs the plugin in the test's namespace: (exit code, stdout, stderr).
pub fn plugin(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    plugin_as(env, &kubeconfig_path(), args)
}

/// Runs the plugin in the test's namespace with the credentials of `kubeconfig`.
pub fn plugin_as(env: &TestEnv, kubeconfig: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-fledge"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
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

/// The Rollout's ReplicaSets by revision number annotation: (number, hash).
async fn numbered(env: &TestEnv) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = env
        .api::<k8s_openapi::api::apps::v1::ReplicaSet>()
        .list(&Default::default())
        .await
        .expect("listing ReplicaSets")
        .items
        .iter()
        .map(|rs| {
            let get = |m: Option<&std::collections::BTreeMap<String, String>>, k: &str| {
                m.and_then(|m| m.get(k)).cloned().unwrap_or_default()
            };
            (
                get(
                    rs.metadata.annotations.as_ref(),
                    fledge::api::REVISION_ANNOTATION,
                ),
                get(rs.metadata.labels.as_ref(), fledge::api::HASH_LABEL),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn undo_goes_back_a_revision_or_to_a_numbered_one_and_get_shows_them() {
    let env = TestEnv::canary("plugin-undo").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps.clone()))
        .await;
    let r = env
        .wait_rollout("web", "v2 paused at step 1", MINUTE, |r| {
            state(r) == (Some(1), Some(Phase::Paused))
        })
        .await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    assert_eq!(
        numbered(&env).await,
        {
            let mut want = vec![("1".to_string(), v1.clone()), ("2".to_string(), v2.clone())];
            want.sort();
            want
        },
        "each ReplicaSet carries its revision number"
    );

    // The tree shows both revisions with their roles, images and pods.
    let (code, out, err) = plugin(&env, &["get", "rollout", "web"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Phase:      Paused"), "{out}");
    assert!(
        out.contains("step 1/2 (pause (until promoted)), canary weight 50%"),
        "{out}"
    );
    for needle in [
        format!("#2  {v2}  canary  registry.example/web:2  web-{v2}  1/1 ready"),
        format!("#1  {v1}  stable  registry.example/web:1  web-{v1}  1/1 ready"),
    ] {
        assert!(out.contains(&needle), "{needle:?} in\n{out}");
    }
    assert!(!out.contains("AnalysisRuns"), "no runs: {out}");

    // Undo while the canary is paused: back to the stable revision, which skips the steps.
    let (code, out, err) = plugin(&env, &["undo", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("revision 1"), "{out}");
    assert!(
        !err.contains("differs"),
        "the template is restored exactly: {err}"
    );
    env.wait_rollout("web", "back on v1, Healthy", MINUTE, |r| {
        let s = r.status.clone().unwrap_or_default();
        s.phase == Some(Phase::Healthy) && s.current_revision.as_deref() == Some(v1.as_str())
    })
    .await;

    // A third revision, promoted; then back to revision 2 by number: its ReplicaSet is reused.
    let (code, out, err) = plugin(&env, &["set", "image", "web", "app=registry.example/web:3"]);
    assert_eq!(code, 0, "{out}{err}");
    env.wait_rollout("web", "v3 paused at step 1", MINUTE, |r| {
        state(r) == (Some(1), Some(Phase::Paused))
    })
    .await;
    let (code, out, err) = plugin(&env, &["promote", "web", "--full"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = plugin(&env, &["status", "web", "--watch", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, err) = plugin(&env, &["undo", "web", "--to-revision", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = env
        .wait_rollout("web", "v2 again, paused at step 1", MINUTE, |r| {
            state(r) == (Some(1), Some(Phase::Paused))
        })
        .await;
    assert_eq!(r.status.unwrap().current_revision, Some(v2.clone()));
    let numbers: Vec<String> = numbered(&env).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(numbers, ["1", "2", "3"], "no new ReplicaSet for revision 2");

    let (code, _, err) = plugin(&env, &["undo", "web", "--to-revision", "9"]);
    assert_eq!(code, 1);
    assert!(err.contains("has no revision 9 (it has 1, 2, 3)"), "{err}");
    let (code, _, err) = plugin(&env, &["undo", "web", "--to-revision", "2"]);
    assert_eq!(code, 1);
    assert!(err.contains("already the current revision"), "{err}");
}

#[tokio::test]
async fn restart_replaces_the_stable_pods_without_a_new_revision() {
    use k8s_openapi::api::core::v1::Pod;
    let env = TestEnv::canary("plugin-restart").await;
    let v1 = deploy_v1(
        &env,
        canary_rollout("web", 3, "1", json!([{"setWeight": 50}, {"pause": {}}])),
    )
    .await;
    let pods = |env: &TestEnv| {
        let api = env.api::<Pod>();
        async move {
            api.list(&Default::default())
                .await
                .expect("listing pods")
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .map(|p| p.metadata.name.unwrap_or_default())
                .collect::<std::collections::BTreeSet<_>>()
        }
    };
    let before = env
        .wait_for("3 pods", MINUTE, || async {
            let p = pods(&env).await;
            if p.len() == 3 {
                Ok(p)
            } else {
                Err(format!("{p:?}"))
            }
        })
        .await;

    let (code, out, err) = plugin(&env, &["restart", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restart at"), "{out}");
    let r = env
        .wait_rollout("web", "the restart recorded", MINUTE, |r| {
            r.status.as_ref().is_some_and(|s| s.restarted_at.is_some())
        })
        .await;
    let s = r.status.unwrap();
    assert_eq!(
        s.stable_revision.as_deref(),
        Some(v1.as_str()),
        "no new revision"
    );
    assert_eq!(s.current_revision.as_deref(), Some(v1.as_str()));
    let after = pods(&env).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        before.is_disjoint(&after),
        "every pod replaced: {before:?} -> {after:?}"
    );
    env.wait_rollout("web", "Healthy after the restart", MINUTE, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Healthy)
    })
    .await;
}

#[tokio::test]
async fn get_rollout_watch_redraws_as_the_rollout_moves() {
    use std::io::Read;
    let env = TestEnv::canary("plugin-get").await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    deploy_v1(&env, canary_rollout("web", 2, "1", steps.clone())).await;
    env.apply::<Rollout>(canary_rollout("web", 2, "2", steps))
        .await;
    env.wait_rollout("web", "v2 paused at step 1", MINUTE, |r| {
        state(r) == (Some(1), Some(Phase::Paused))
    })
    .await;

    let mut child = ChildGuard::new(
        Command::new(env!("CARGO_BIN_EXE_kubectl-fledge"))
            .arg("--kubeconfig")
            .arg(kubeconfig_path())
            .args(["-n", &env.ns, "get", "rollout", "web", "-w"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("running kubectl-fledge"),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let text = || seen.lock().unwrap().clone();
    env.wait_for("the first drawing", MINUTE, || async {
        let t = text();
        if t.contains("Phase:      Paused") {
            Ok(())
        } else {
            Err(t)
        }
    })
    .await;
    let (code, out, err) = plugin(&env, &["promote", "web", "--full"]);
    assert_eq!(code, 0, "{out}{err}");
    env.wait_for("a redraw showing Healthy", MINUTE, || async {
        let t = text();
        if t.contains("Phase:      Healthy") {
            Ok(())
        } else {
            Err(t)
        }
    })
    .await;
    drop(child);
    let _ = reader.join();
    assert!(
        !text().contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

/// The offline commands need no cluster: files, stdin and exit codes through the real binary.
#[test]
fn offline_commands_read_files_and_stdin_and_exit_1_on_errors() {
    use std::io::Write;
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-fledge"))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running kubectl-fledge");
        let mut input = child.stdin.take().unwrap();
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(out.stdout),
            text(out.stderr),
        )
    };
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cli/testdata");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/canary-basic.yaml");
    let (code, out, err) = run(&["lint", example], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("1 object checked, 0 errors"), "{out}");

    let broken = format!("{testdata}/lint-broken.yaml");
    let (code, _, err) = run(&["lint", &broken], None);
    assert_eq!(code, 1);
    assert!(
        err.contains("spec.replicas: must be at least 0, not -1"),
        "{err}"
    );
    let (code, _, err) = run(&["plan", &broken], None);
    assert_eq!(code, 1, "plan refuses what lint rejects: {err}");

    // convert | lint -: what convert prints passes lint.
    let (code, converted, err) = run(&["convert", &format!("{testdata}/argo-canary.yaml")], None);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["lint", "-"], Some(&converted));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("<stdin>:"), "{out}");
    let (code, out, err) = run(&["plan", "-"], Some(&converted));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("A person must:"), "{out}");

    let (code, _, err) = run(&["lint", "/nonexistent.yaml"], None);
    assert_eq!(code, 1);
    assert!(err.contains("reading /nonexistent.yaml"), "{err}");
}
