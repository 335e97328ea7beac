//! Webhook gates end to end: a real HTTP receiver on 127.0.0.1, started by each test, answers
//! the gate's questions with the status the test sets; the real operator (and its analysis
//! controller, which asks) holds, moves on or aborts on what it hears.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::harness::{MINUTE, TestEnv, canary_rollout};

/// A webhook that answers every request with the status the test sets, and keeps the bodies.
struct Hook {
    addr: SocketAddr,
    status: Arc<AtomicU16>,
    bodies: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Hook {
    async fn start(status: u16) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let status = Arc::new(AtomicU16::new(status));
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let (answer, seen) = (status.clone(), bodies.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let (answer, seen) = (answer.clone(), seen.clone());
                tokio::spawn(async move {
                    let Some(body) = crate::harness::read_request_body(&mut socket).await else {
                        return;
                    };
                    seen.lock().unwrap().push(body);
                    let code = answer.load(Ordering::SeqCst);
                    let reply = format!(
                        "HTTP/1.1 {code} Answer\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Hook {
            addr,
            status,
            bodies,
            task,
        }
    }

    /// The hook's URL, with a token in its query that must never show in a status.
    fn url(&self) -> String {
        format!("http://{}/gate?token=s3cret", self.addr)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn asked(&self) -> usize {
        self.bodies.lock().unwrap().len()
    }

    fn last_body(&self) -> serde_json::Value {
        let bodies = self.bodies.lock().unwrap();
        serde_json::from_str(bodies.last().expect("asked")).expect("a JSON body")
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn with_gate(mut rollout: serde_json::Value, gate: serde_json::Value) -> serde_json::Value {
    rollout["spec"]["gates"] = json!([gate]);
    rollout
}

fn message(r: &Rollout) -> String {
    r.status
        .as_ref()
        .and_then(|s| s.message.clone())
        .unwrap_or_default()
}

fn promoted(r: &Rollout) -> bool {
    r.status
        .as_ref()
        .is_some_and(|s| s.phase == Some(Phase::Healthy) && s.stable_revision == s.current_revision)
}

/// Waits until the hook was asked at least `n` times and the status says the rollout waits at
/// gate `gate` having heard `status`: the operator looked, and held.
async fn wait_held(env: &TestEnv, hook: &Hook, gate: &str, status: u16, n: usize) -> Rollout {
    let needle = format!("waiting for gate {gate} (");
    let answer = format!("last answer {status}");
    let r = env
        .wait_rollout(
            "web",
            "held at the gate, having heard no",
            2 * MINUTE,
            |r| {
                let m = message(r);
                hook.asked() >= n && m.contains(&needle) && m.contains(&answer)
            },
        )
        .await;
    let m = message(&r);
    assert!(
        !m.contains("s3cret") && !m.contains("/gate"),
        "the status shows only the host: {m}"
    );
    assert!(m.contains(&hook.addr.to_string()), "{m}");
    r
}

#[tokio::test]
async fn a_confirm_promotion_gate_holds_the_rollout_until_the_receiver_answers_yes() {
    let env = TestEnv::canary("gate-promotion").await;
    let hook = Hook::start(403).await;
    let gate = json!({"name": "approve", "type": "confirmPromotion", "url": hook.url(),
                      "interval": "1s", "metadata": {"ticket": "CHG-7"}});
    let steps = json!([{"setWeight": 50}]);
    crate::canary::deploy_v1(
        &env,
        with_gate(canary_rollout("web", 2, "1", steps.clone()), gate.clone()),
    )
    .await;
    assert_eq!(hook.asked(), 0, "a first deployment asks no gate");
    env.apply::<Rollout>(with_gate(canary_rollout("web", 2, "2", steps), gate))
        .await;
    let r = wait_held(&env, &hook, "approve", 403, 3).await;
    let s = r.status.unwrap();
    assert_ne!(s.stable_revision, s.current_revision, "not promoted");
    assert_eq!(s.current_step_index, Some(1), "every step done");
    let body = hook.last_body();
    assert_eq!(body["type"], "confirm-promotion");
    assert_eq!(body["name"], "web");
    assert_eq!(body["namespace"], env.ns.as_str());
    assert_eq!(body["metadata"]["ticket"], "CHG-7");

    let yes = Instant::now();
    hook.answer(200);
    env.wait_rollout("web", "promoted after the yes", 2 * MINUTE, promoted)
        .await;
    eprintln!(
        "confirm-promotion: promoted {:?} after the yes, {} questions asked",
        yes.elapsed(),
        hook.asked()
    );
}

#[tokio::test]
async fn a_rollback_hook_that_answers_yes_aborts_the_rollout() {
    let env = TestEnv::canary("gate-rollback").await;
    let hook = Hook::start(404).await;
    let gate = json!({"name": "incident", "type": "rollback", "url": hook.url(), "interval": "1s"});
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let v1 = crate::canary::deploy_v1(
        &env,
        with_gate(canary_rollout("web", 2, "1", steps.clone()), gate.clone()),
    )
    .await;
    env.apply::<Rollout>(with_gate(canary_rollout("web", 2, "2", steps), gate))
        .await;
    // Asked while the rollout goes on: the "no" answers hold nothing.
    env.wait_rollout("web", "paused at step 1, the hook asked", 2 * MINUTE, |r| {
        hook.asked() >= 3
            && r.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(Phase::Paused))
    })
    .await;
    let yes = Instant::now();
    hook.answer(200);
    let r = env
        .wait_rollout("web", "aborted by the rollback hook", 2 * MINUTE, |r| {
            r.status.as_ref().is_some_and(|s| s.abort)
        })
        .await;
    eprintln!("rollback: aborted {:?} after the yes", yes.elapsed());
    assert_eq!(
        r.status.as_ref().and_then(|s| s.stable_revision.as_deref()),
        Some(v1.as_str())
    );
    // Without a router the pods are the traffic: the stable's back at full size, the canary's
    // gone, as the canary tests expect of any abort.
    let v2 = r
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .expect("v2");
    env.wait_replica_sets(
        "canary scaled to 0, stable at 2",
        vec![(v1.clone(), 2, 2), (v2, 0, 0)],
    )
    .await;
    let events = env
        .api::<k8s_openapi::api::core::v1::Event>()
        .list(&Default::default())
        .await
        .unwrap();
    let said = events
        .items
        .iter()
        .filter_map(|e| e.message.clone())
        .find(|m| m.contains("rollback gate incident"))
        .expect("a Warning Event says the hook aborted");
    assert!(
        said.contains("answered yes") && !said.contains("s3cret"),
        "{said}"
    );
}

#[tokio::test]
async fn a_confirm_traffic_increase_gate_holds_the_weight_until_a_person_promotes() {
    let env = TestEnv::canary("gate-traffic").await;
    let hook = Hook::start(503).await;
    let gate = json!({"name": "more", "type": "confirmTrafficIncrease", "url": hook.url(),
                      "interval": "1s"});
    let steps = json!([{"setWeight": 50}]);
    let v1 = crate::canary::deploy_v1(
        &env,
        with_gate(canary_rollout("web", 2, "1", steps.clone()), gate.clone()),
    )
    .await;
    env.apply::<Rollout>(with_gate(canary_rollout("web", 2, "2", steps), gate))
        .await;
    let r = wait_held(&env, &hook, "more", 503, 3).await;
    let v2 = r.status.unwrap().current_revision.unwrap();
    // Held before the raise from 0 to 50: the new revision has no pod, the stable all of them.
    let sets = env.replica_sets().await;
    assert!(
        sets.iter().any(|(h, want, _)| *h == v1 && *want == 2),
        "{sets:?}"
    );
    assert!(
        !sets.iter().any(|(h, want, _)| *h == v2 && *want > 0),
        "{sets:?}"
    );
    // A person answers instead of the outside system.
    env.request("web", RequestAction::Promote).await;
    env.wait_rollout("web", "promoted after the promote", 2 * MINUTE, promoted)
        .await;
}
