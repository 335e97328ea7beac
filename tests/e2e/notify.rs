//! Notifications end to end: real HTTP receivers on 127.0.0.1, started by each test, get what a
//! real operator sends, once, through outages and restarts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fledge::api::notification::{NotificationEvent, NotificationRecord};
use fledge::api::{Phase, RequestAction, Rollout};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::harness::{MINUTE, TestEnv, canary_rollout};

/// An HTTP server that records the body of every POST and answers 200 `ok`. It can go down (its
/// port refuses connections) and come back on the same port.
struct Receiver {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let mut r = Receiver {
            addr,
            bodies: Arc::default(),
            task: None,
        };
        r.serve(listener);
        r
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let bodies = self.bodies.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    continue;
                };
                let bodies = bodies.clone();
                tokio::spawn(async move {
                    let Some(body) = crate::harness::read_request_body(&mut socket).await else {
                        return;
                    };
                    bodies.lock().unwrap().push(body);
                    let _ = socket
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = socket.shutdown().await;
                });
            }
        }));
    }

    /// Stops listening: connections are refused.
    fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind");
        self.serve(listener);
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }

    /// Bodies that mention `needle`.
    fn count(&self, needle: &str) -> usize {
        self.bodies().iter().filter(|b| b.contains(needle)).count()
    }

    async fn wait(&self, what: &str, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(needle) == 0 {
            assert!(
                Instant::now() < deadline,
                "{what}: no message with {needle:?} within {timeout:?}; got {:?}",
                self.bodies()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// A Secret with the receiver's address and a channel of `kind` reading it.
async fn channel(env: &TestEnv, name: &str, kind: &str, url: &str, extra: serde_json::Value) {
    env.apply::<k8s_openapi::api::core::v1::Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("{name}-secret")},
        "stringData": {"address": url},
    }))
    .await;
    let mut spec = json!({"type": kind, "secretRef": {"name": format!("{name}-secret")}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    env.apply::<fledge::api::NotificationChannel>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "NotificationChannel",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .await;
}

fn with_subscriptions(
    mut rollout: serde_json::Value,
    subs: serde_json::Value,
) -> serde_json::Value {
    rollout["spec"]["notifications"] = json!({"subscriptions": subs});
    rollout
}

fn record(r: &Rollout, event: NotificationEvent) -> Option<NotificationRecord> {
    r.status
        .as_ref()?
        .notifications
        .iter()
        .rev()
        .find(|n| n.event == event)
        .cloned()
}

/// Waits until the status records the `event` message as sent to every channel it names.
async fn wait_sent(env: &TestEnv, event: NotificationEvent, channels: usize) -> NotificationRecord {
    let r = env
        .wait_rollout(
            "web",
            &format!("{event:?} recorded as sent"),
            2 * MINUTE,
            |r| record(r, event).is_some_and(|n| n.pending.is_empty() && n.sent.len() == channels),
        )
        .await;
    record(&r, event).unwrap()
}

#[tokio::test]
async fn an_abort_sends_one_message_per_channel_with_the_failed_metrics_value() {
    let mut env = TestEnv::canary("notify-abort").await;
    let slack = Receiver::start().await;
    let hook = Receiver::start().await;
    channel(&env, "team-slack", "slack", &slack.url(), json!({})).await;
    channel(
        &env,
        "audit",
        "webhook",
        &hook.url(),
        json!({"webhook": {"cloudEvents": true}}),
    )
    .await;
    let server = crate::exporter::JsonServer::start("s3cret").await;
    server.set_body(json!({"data": {"errorRate": 0.37}}));
    env.apply::<k8s_openapi::api::core::v1::Secret>(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "health-token"},
        "stringData": {"token": "Bearer s3cret"},
    }))
    .await;
    env.apply::<fledge::api::AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "interval": "1s",
            "count": 2,
            "successCondition": "result < 0.05",
            "failureCondition": "result >= 0.05",
            "provider": {"web": {
                "url": server.url,
                "jsonPath": "{$.data.errorRate}",
                "headers": [{"key": "Authorization", "valueFrom": {"secretKeyRef": {"name": "health-token", "key": "token"}}}],
            }},
        }]},
    }))
    .await;
    let steps =
        json!([{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "error-rate"}]}}]);
    let subs = json!([
        {"channel": "team-slack", "events": ["Aborted"]},
        {"channel": "audit", "events": ["Aborted"]},
    ]);
    crate::canary::deploy_v1(
        &env,
        with_subscriptions(canary_rollout("web", 2, "1", steps.clone()), subs.clone()),
    )
    .await;
    env.apply::<Rollout>(with_subscriptions(
        canary_rollout("web", 2, "2", steps),
        subs,
    ))
    .await;
    env.wait_rollout("web", "aborted", 2 * MINUTE, |r| {
        r.status.as_ref().is_some_and(|s| s.abort)
    })
    .await;
    let sent = wait_sent(&env, NotificationEvent::Aborted, 2).await;
    env.reconciled("web").await;

    // Exactly one message per channel, each carrying the failed metric and its value.
    assert_eq!(slack.bodies().len(), 1, "{:?}", slack.bodies());
    assert_eq!(hook.bodies().len(), 1, "{:?}", hook.bodies());
    let s: serde_json::Value = serde_json::from_str(&slack.bodies()[0]).unwrap();
    assert!(s["text"].as_str().unwrap().contains("Aborted"), "{s}");
    assert!(slack.bodies()[0].contains("0.37") && slack.bodies()[0].contains("error-rate"));
    let h: serde_json::Value = serde_json::from_str(&hook.bodies()[0]).unwrap();
    assert_eq!(h["specversion"], "1.0");
    assert_eq!(h["type"], "dev.fledge.rollout.aborted");
    assert_eq!(h["data"]["details"]["metric"], "error-rate");
    assert_eq!(h["data"]["details"]["value"], "0.37");
    assert_eq!(h["data"]["details"]["condition"], "result >= 0.05");
    assert_eq!(sent.details.get("value").map(String::as_str), Some("0.37"));
    // No secret anywhere the status shows.
    let status = serde_json::to_string(&env.rollout("web").await.status).unwrap();
    assert!(!status.contains(&slack.url()) && !status.contains("s3cret"));
    let metrics = env.operator(0).metrics().await;
    for kind in ["slack", "webhook"] {
        let line = format!(
            "fledge_notifications_total{{type=\"{kind}\",event=\"Aborted\",result=\"sent\"}} 1"
        );
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn a_receiver_down_for_30s_gets_the_message_once_when_it_is_back() {
    let mut env = TestEnv::canary("notify-down").await;
    let mut hook = Receiver::start().await;
    channel(&env, "hook", "webhook", &hook.url(), json!({})).await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let subs = json!([{"channel": "hook", "events": ["NewRevision"]}]);
    crate::canary::deploy_v1(
        &env,
        with_subscriptions(canary_rollout("web", 2, "1", steps.clone()), subs.clone()),
    )
    .await;
    hook.down();
    let down_at = Instant::now();
    env.apply::<Rollout>(with_subscriptions(
        canary_rollout("web", 2, "2", steps),
        subs,
    ))
    .await;
    env.wait_rollout("web", "NewRevision owed", MINUTE, |r| {
        record(r, NotificationEvent::NewRevision).is_some_and(|n| !n.pending.is_empty())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(down_at.elapsed())).await;
    // Thirty seconds of failed attempts: the message is still owed to the channel, neither given
    // up on nor recorded as sent.
    let owed = record(&env.rollout("web").await, NotificationEvent::NewRevision)
        .expect("the NewRevision record");
    assert_eq!(
        (owed.pending.as_slice(), owed.sent.len(), owed.failed.len()),
        (&["NotificationChannel/hook".to_string()][..], 0, 0),
        "{owed:?}"
    );
    hook.up().await;
    let up_at = Instant::now();
    hook.wait("the message after the outage", "NewRevision", 2 * MINUTE)
        .await;
    eprintln!(
        "MEASURED receiver back after {:?} down: message {:?} later",
        up_at.duration_since(down_at),
        up_at.elapsed()
    );
    wait_sent(&env, NotificationEvent::NewRevision, 1).await;
    env.reconciled("web").await;
    assert_eq!(hook.count("NewRevision"), 1, "{:?}", hook.bodies());
    let logs = env.operator(0).logs();
    assert!(
        !logs.contains(&hook.url()),
        "the address is a secret: never logged"
    );
}

#[tokio::test]
async fn sigkill_right_after_an_event_still_delivers_it_and_a_restart_sends_no_duplicate() {
    let mut env = TestEnv::canary("notify-kill").await;
    let mut hook = Receiver::start().await;
    channel(&env, "hook", "webhook", &hook.url(), json!({})).await;
    let steps = json!([{"setWeight": 50}, {"pause": {}}]);
    let subs = json!([{"channel": "hook", "events": ["NewRevision", "Paused", "Promoted"]}]);
    crate::canary::deploy_v1(
        &env,
        with_subscriptions(canary_rollout("web", 2, "1", steps.clone()), subs.clone()),
    )
    .await;
    // The receiver is down, so the message cannot go out before the kill.
    hook.down();
    env.apply::<Rollout>(with_subscriptions(
        canary_rollout("web", 2, "2", steps),
        subs,
    ))
    .await;
    env.wait_rollout("web", "NewRevision owed", MINUTE, |r| {
        record(r, NotificationEvent::NewRevision).is_some_and(|n| !n.pending.is_empty())
    })
    .await;
    env.operator(0).kill();
    hook.up().await;
    let second = env.start_operator();
    hook.wait("the message after the SIGKILL", "NewRevision", 2 * MINUTE)
        .await;
    env.wait_rollout("web", "paused at step 1", MINUTE, |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(Phase::Paused)
    })
    .await;
    hook.wait("the pause", "\"Paused\"", MINUTE).await;
    wait_sent(&env, NotificationEvent::NewRevision, 1).await;
    wait_sent(&env, NotificationEvent::Paused, 1).await;
    let paused: serde_json::Value = serde_json::from_str(
        hook.bodies()
            .iter()
            .find(|b| b.contains("\"Paused\""))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        paused["details"]["command"],
        format!("kubectl fledge promote web -n {}", env.ns)
    );

    // A normal restart: SIGTERM, then a new operator.
    env.operator(second).terminate();
    let third = env.start_operator();
    assert_eq!(third, 2);
    // Operator 0 is gone; `reconciled` reads the metrics of the one running, once it serves.
    env.swap_operators(0, third);
    let deadline = Instant::now() + MINUTE;
    while !env.operator(0).logs().contains("caches synced") {
        assert!(
            Instant::now() < deadline,
            "the restarted operator never synced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.reconciled("web").await;
    // Something new goes out after the restart, so the notifier has run since.
    env.request("web", RequestAction::Promote).await;
    hook.wait("the promotion", "\"Promoted\"", 2 * MINUTE).await;
    wait_sent(&env, NotificationEvent::Promoted, 1).await;
    let bodies = hook.bodies();
    for event in ["NewRevision", "Paused", "Promoted"] {
        let n = bodies
            .iter()
            .filter(|b| b.contains(&format!("\"event\":\"{event}\"")))
            .count();
        assert_eq!(n, 1, "{event} sent {n} times: {bodies:?}");
    }
}

// Multi-threaded: the receiver must answer while the test waits for the plugin process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_prints_the_services_answer() {
    let env = TestEnv::new("notify-test").await;
    let hook = Receiver::start().await;
    channel(&env, "hook", "googlechat", &hook.url(), json!({})).await;
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| crate::plugin::plugin(&env, &["notify", "test", "hook"]));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("HTTP 200: ok"), "{stdout}");
    let body: serde_json::Value = serde_json::from_str(&hook.bodies()[0]).unwrap();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("kubectl fledge notify test")
    );
    assert!(!stdout.contains(&hook.url()), "the address is a secret");

    let (code, _, stderr) =
        tokio::task::block_in_place(|| crate::plugin::plugin(&env, &["notify", "test", "nope"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("NotificationChannel/nope"), "{stderr}");
}
