//! The act layer against a mocked API server: the exact requests [`act::apply`] sends, in order.

use std::collections::BTreeMap;

use http::{Method, Request, Response};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tower_test::mock::{self, Handle, SendResponse};

use super::Error;
use super::act;
use super::cached::CachedReplicaSet;
use super::fixtures::{NAME, NAMESPACE, RolloutBuilder, STABLE_SVC, hash_of, template};
use super::hash::template_hash;
use super::plan::{Action, Plan};
use crate::api::{HASH_LABEL, Phase, ROLLOUT_LABEL, Rollout, RolloutStatus};

type ApiHandle = Handle<Request<Body>, Response<Body>>;

const UID: &str = "5f1e7c0a-0000-4000-8000-000000000001";
const RV: &str = "4242";
const APPLY: &str = "application/apply-patch+yaml";
const SSA_QUERY: [&str; 2] = ["fieldManager=fledge", "force=true"];
const RS_URL: &str = "/apis/apps/v1/namespaces/shop/replicasets";
const STATUS_URL: &str = "/apis/fledge.dev/v1alpha1/namespaces/shop/rollouts/web/status";

/// One request as the API server sees it.
struct Seen {
    method: Method,
    path: String,
    /// Query parameters, sorted: kube's order and separators are not part of the contract.
    query: Vec<String>,
    content_type: Option<String>,
    body: Value,
    send: SendResponse<Response<Body>>,
}

/// Rollout `web` in `shop` running `web:2`, as read from the API server: uid, resourceVersion
/// and a Healthy status on revision `web:1`.
fn rollout() -> Rollout {
    let mut rollout = RolloutBuilder::canary()
        .image("web:2")
        .replicas(3)
        .status(old_status())
        .build();
    rollout.metadata.uid = Some(UID.into());
    rollout.metadata.resource_version = Some(RV.into());
    rollout.spec.min_ready_seconds = Some(5);
    rollout
}

fn old_status() -> RolloutStatus {
    RolloutStatus {
        phase: Some(Phase::Healthy),
        stable_revision: Some(hash_of("web:1")),
        current_revision: Some(hash_of("web:1")),
        observed_generation: Some(1),
        ..Default::default()
    }
}

fn new_status() -> RolloutStatus {
    RolloutStatus {
        phase: Some(Phase::Progressing),
        current_revision: Some(hash_of("web:2")),
        current_step_index: Some(0),
        ..old_status()
    }
}

fn plan(actions: Vec<Action>, status: RolloutStatus) -> Plan {
    Plan {
        actions,
        status,
        ..Default::default()
    }
}

/// A ReplicaSet cache holding `replica_sets`, read from their JSON as the controller reads them.
fn store(replica_sets: Vec<ReplicaSet>) -> Store<CachedReplicaSet> {
    let (store, mut writer) = reflector::store();
    for rs in replica_sets {
        let cached = serde_json::from_value(serde_json::to_value(rs).unwrap()).unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(cached));
    }
    store
}

/// The ReplicaSet fledge made for revision `image`, as cached.
fn cached_replica_set(image: &str, replicas: i32) -> ReplicaSet {
    let hash = hash_of(image);
    let mut template = template(image);
    let labels = template.metadata.as_mut().unwrap().labels.as_mut().unwrap();
    labels.insert(HASH_LABEL.into(), hash.clone());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{NAME}-{hash}")),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    ("app".to_string(), NAME.to_string()),
                    (HASH_LABEL.to_string(), hash.clone()),
                ])),
                match_expressions: None,
            },
            template: Some(template),
            ..Default::default()
        }),
        status: None,
    }
}

/// Runs `act::apply` on a mocked API server; the client is dropped when it returns, so
/// [`assert_no_more`] can tell "nothing else was sent". `template` is the spec's template, which
/// the plan carries for the spec's own revision, as the planner gives it (`plan/templates.rs`).
fn start(
    rollout: Rollout,
    template: Option<PodTemplateSpec>,
    replica_sets: Store<CachedReplicaSet>,
    plan: Plan,
) -> (
    tokio::task::JoinHandle<Result<Vec<String>, Error>>,
    ApiHandle,
) {
    start_with_services(rollout, template, replica_sets, reflector::store().0, plan)
}

/// Like [`start`], with a Service cache.
fn start_with_services(
    rollout: Rollout,
    template: Option<PodTemplateSpec>,
    replica_sets: Store<CachedReplicaSet>,
    services: Store<k8s_openapi::api::core::v1::Service>,
    mut plan: Plan,
) -> (
    tokio::task::JoinHandle<Result<Vec<String>, Error>>,
    ApiHandle,
) {
    if let Some(t) = template {
        plan.templates.insert(template_hash(&t), t);
        plan.selector = plan.selector.or_else(|| rollout.spec.selector.clone());
    }
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task = tokio::spawn(async move {
        let result = act::apply(&client, &rollout, &replica_sets, &services, &plan).await;
        drop(client);
        result
    });
    (task, handle)
}

/// How long a scenario waits for the next request (or for the client to go) before it fails:
/// a request that never comes fails the test instead of hanging it.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

async fn next(handle: &mut ApiHandle) -> Seen {
    let (request, send) = tokio::time::timeout(PATIENCE, handle.next_request())
        .await
        .expect("a request within 10s")
        .expect("a request");
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut query: Vec<String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    query.sort();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ascii content-type").to_owned());
    let body = crate::test_support::json_body(request.into_body()).await;
    Seen {
        method,
        path,
        query,
        content_type,
        body,
        send,
    }
}

/// Fails on any further request; returns once the client is gone (and fails if it is not gone
/// within [`PATIENCE`]: `act::apply` must not keep the client after it returns).
async fn assert_no_more(handle: &mut ApiHandle) {
    let next = tokio::time::timeout(PATIENCE, handle.next_request())
        .await
        .expect("the client to be dropped within 10s");
    if let Some((request, _)) = next {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

use crate::test_support::reply;

fn failure(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "reason": reason, "code": code, "message": reason})
}

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})
}

/// Checks a server-side apply request and answers it with its own body.
fn expect_apply(seen: Seen, path: &str) -> Value {
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::PATCH, path),
        "{}",
        seen.body
    );
    assert_eq!(seen.query, SSA_QUERY);
    assert_eq!(seen.content_type.as_deref(), Some(APPLY));
    reply(seen.send, 200, &seen.body);
    seen.body
}

/// Checks the guarded status patch and answers it with `code`.
fn expect_status(seen: Seen, status: &RolloutStatus, code: u16) {
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::PATCH, STATUS_URL)
    );
    assert!(seen.query.is_empty(), "{:?}", seen.query);
    assert_eq!(
        seen.content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(
        seen.body,
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": RV},
            {"op": "add", "path": "/status", "value": serde_json::to_value(status).unwrap()},
        ])
    );
    if code == 200 {
        let mut written = rollout();
        written.status = Some(status.clone());
        reply(seen.send, 200, &serde_json::to_value(&written).unwrap());
    } else {
        reply(seen.send, code, &failure(code, "Conflict"));
    }
}

#[tokio::test]
async fn new_revision_is_applied_with_owner_labels_and_selector() {
    let rollout = rollout();
    let hash = hash_of("web:2");
    let spec_template = rollout.spec.template.clone();
    let plan = plan(
        vec![Action::ApplyReplicaSet {
            hash: hash.clone(),
            replicas: 2,
        }],
        old_status(),
    );
    let (task, mut handle) = start(rollout, spec_template, store(vec![]), plan);

    let body = expect_apply(next(&mut handle).await, &format!("{RS_URL}/web-{hash}"));
    assert_eq!(
        body,
        json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("web-{hash}"),
                "namespace": "shop",
                "labels": {ROLLOUT_LABEL: "web", "app": "web", HASH_LABEL: hash},
                "ownerReferences": [{
                    "apiVersion": "fledge.dev/v1alpha1",
                    "kind": "Rollout",
                    "name": "web",
                    "uid": UID,
                    "controller": true,
                }],
            },
            "spec": {
                "replicas": 2,
                "minReadySeconds": 5,
                "selector": {"matchLabels": {"app": "web", HASH_LABEL: hash}},
                "template": {
                    "metadata": {"labels": {"app": "web", HASH_LABEL: hash}},
                    "spec": {"containers": [{"name": "app", "image": "web:2"}]},
                },
            },
        })
    );
    // The status is unchanged: no status write.
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn old_revision_keeps_its_cached_template() {
    let rollout = rollout();
    let old = hash_of("web:1");
    let spec_template = rollout.spec.template.clone();
    let plan = plan(
        vec![Action::ApplyReplicaSet {
            hash: old.clone(),
            replicas: 0,
        }],
        old_status(),
    );
    let cache = store(vec![cached_replica_set("web:1", 3)]);
    let (task, mut handle) = start(rollout, spec_template, cache, plan);

    let body = expect_apply(next(&mut handle).await, &format!("{RS_URL}/web-{old}"));
    assert_eq!(body["metadata"]["name"], format!("web-{old}"));
    assert_eq!(body["metadata"]["labels"][HASH_LABEL], old);
    assert_eq!(body["metadata"]["ownerReferences"][0]["uid"], UID);
    assert_eq!(body["spec"]["replicas"], 0);
    assert_eq!(
        body["spec"]["selector"]["matchLabels"],
        json!({"app": "web", HASH_LABEL: old})
    );
    assert_eq!(
        body["spec"]["template"],
        json!({
            "metadata": {"labels": {"app": "web", HASH_LABEL: old}},
            "spec": {"containers": [{"name": "app", "image": "web:1"}]},
        })
    );
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn old_revision_missing_from_the_cache_is_not_rebuilt_from_the_spec_template() {
    let rollout = rollout();
    let spec_template = rollout.spec.template.clone();
    let plan = plan(
        vec![Action::ApplyReplicaSet {
            hash: hash_of("web:1"),
            replicas: 0,
        }],
        new_status(),
    );
    let (task, mut handle) = start(rollout, spec_template, store(vec![]), plan);

    // Neither the ReplicaSet nor the status is written.
    assert_no_more(&mut handle).await;
    let err = task
        .await
        .unwrap()
        .expect_err("no template for the old revision");
    assert!(matches!(err, Error::MissingTemplate(_)), "{err:?}");
    assert_eq!(err.metric_label(), "template");
}

#[tokio::test]
async fn pin_service_applies_the_users_selector_with_the_hash_added() {
    let hash = hash_of("web:1");
    let plan = plan(
        vec![Action::PinService {
            name: STABLE_SVC.into(),
            hash: hash.clone(),
        }],
        old_status(),
    );
    let (services, mut writer) = reflector::store();
    let cached: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "metadata": {"name": STABLE_SVC, "namespace": NAMESPACE},
        "spec": {"selector": {"app": "web", HASH_LABEL: "old"}, "ports": [{"port": 80}]},
    }))
    .unwrap();
    writer.apply_watcher_event(&watcher::Event::Apply(cached));
    let (task, mut handle) = start_with_services(rollout(), None, store(vec![]), services, plan);

    let body = expect_apply(
        next(&mut handle).await,
        "/api/v1/namespaces/shop/services/web-stable",
    );
    assert_eq!(
        body,
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-stable", "namespace": "shop"},
            "spec": {"selector": {"app": "web", HASH_LABEL: hash}},
        })
    );
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn delete_replica_set_is_background_and_a_404_is_done() {
    let plan = plan(
        vec![
            Action::DeleteReplicaSet {
                name: "web-old1".into(),
            },
            Action::DeleteReplicaSet {
                name: "web-gone".into(),
            },
        ],
        old_status(),
    );
    let (task, mut handle) = start(rollout(), None, store(vec![]), plan);

    for (name, code) in [("web-old1", 200), ("web-gone", 404)] {
        let seen = next(&mut handle).await;
        assert_eq!(
            (&seen.method, seen.path.as_str()),
            (&Method::DELETE, &*format!("{RS_URL}/{name}"))
        );
        assert_eq!(seen.body, json!({"propagationPolicy": "Background"}));
        let answer = if code == 200 {
            success()
        } else {
            failure(404, "NotFound")
        };
        reply(seen.send, code, &answer);
    }
    assert_no_more(&mut handle).await;
    task.await
        .unwrap()
        .expect("a 404 on delete is not an error");
}

#[tokio::test]
async fn delete_replica_set_failure_is_an_error() {
    let plan = plan(
        vec![Action::DeleteReplicaSet {
            name: "web-old1".into(),
        }],
        new_status(),
    );
    let (task, mut handle) = start(rollout(), None, store(vec![]), plan);

    let seen = next(&mut handle).await;
    assert_eq!(seen.method, Method::DELETE);
    reply(seen.send, 403, &failure(403, "Forbidden"));
    assert_no_more(&mut handle).await;
    let err = task.await.unwrap().expect_err("403 on delete");
    assert!(
        matches!(&err, Error::Write("ReplicaSet", name, _) if name == "web-old1"),
        "{err:?}"
    );
    assert_eq!(err.metric_label(), "write");
}

#[tokio::test]
async fn scale_workload_applies_the_replicas() {
    let plan = plan(
        vec![Action::ScaleWorkload {
            name: "legacy".into(),
            replicas: 3,
        }],
        old_status(),
    );
    let (task, mut handle) = start(rollout(), None, store(vec![]), plan);

    let body = expect_apply(
        next(&mut handle).await,
        "/apis/apps/v1/namespaces/shop/deployments/legacy",
    );
    assert_eq!(
        body,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "legacy", "namespace": "shop"},
            "spec": {"replicas": 3},
        })
    );
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn changed_status_is_a_guarded_json_patch() {
    let (task, mut handle) = start(rollout(), None, store(vec![]), plan(vec![], new_status()));

    expect_status(next(&mut handle).await, &new_status(), 200);
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn first_status_is_written() {
    let mut rollout = rollout();
    rollout.status = None;
    let (task, mut handle) = start(rollout, None, store(vec![]), plan(vec![], new_status()));

    expect_status(next(&mut handle).await, &new_status(), 200);
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn unchanged_status_sends_nothing() {
    let (task, mut handle) = start(rollout(), None, store(vec![]), plan(vec![], old_status()));

    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn status_conflict_is_a_conflict_error() {
    for code in [409, 422] {
        let (task, mut handle) = start(rollout(), None, store(vec![]), plan(vec![], new_status()));

        expect_status(next(&mut handle).await, &new_status(), code);
        assert_no_more(&mut handle).await;
        let err = task.await.unwrap().expect_err("conflict");
        assert!(
            matches!(&err, Error::Write("Rollout status", name, _) if name == "web"),
            "{err:?}"
        );
        assert_eq!(err.metric_label(), "conflict", "HTTP {code}");
    }
}

#[tokio::test]
async fn actions_go_in_order_then_the_status() {
    let rollout = rollout();
    let (new, old) = (hash_of("web:2"), hash_of("web:1"));
    let spec_template = rollout.spec.template.clone();
    let plan = plan(
        vec![
            Action::ApplyReplicaSet {
                hash: new.clone(),
                replicas: 3,
            },
            Action::PinService {
                name: STABLE_SVC.into(),
                hash: new.clone(),
            },
            Action::ApplyReplicaSet {
                hash: old.clone(),
                replicas: 0,
            },
            Action::DeleteReplicaSet {
                name: "web-ancient".into(),
            },
            Action::ScaleWorkload {
                name: "legacy".into(),
                replicas: 0,
            },
        ],
        new_status(),
    );
    let cache = store(vec![cached_replica_set("web:1", 3)]);
    let (task, mut handle) = start(rollout, spec_template, cache, plan);

    let body = expect_apply(next(&mut handle).await, &format!("{RS_URL}/web-{new}"));
    assert_eq!(body["spec"]["replicas"], 3);
    expect_apply(
        next(&mut handle).await,
        "/api/v1/namespaces/shop/services/web-stable",
    );
    let body = expect_apply(next(&mut handle).await, &format!("{RS_URL}/web-{old}"));
    assert_eq!(body["spec"]["replicas"], 0);
    let seen = next(&mut handle).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::DELETE, &*format!("{RS_URL}/web-ancient"))
    );
    reply(seen.send, 200, &success());
    expect_apply(
        next(&mut handle).await,
        "/apis/apps/v1/namespaces/shop/deployments/legacy",
    );
    expect_status(next(&mut handle).await, &new_status(), 200);
    assert_no_more(&mut handle).await;
    task.await.unwrap().expect("apply");
}

#[tokio::test]
async fn failed_action_stops_before_the_status() {
    let rollout = rollout();
    let spec_template = rollout.spec.template.clone();
    let plan = plan(
        vec![
            Action::PinService {
                name: STABLE_SVC.into(),
                hash: hash_of("web:2"),
            },
            Action::ApplyReplicaSet {
                hash: hash_of("web:2"),
                replicas: 3,
            },
        ],
        new_status(),
    );
    let (task, mut handle) = start(rollout, spec_template, store(vec![]), plan);

    let seen = next(&mut handle).await;
    assert_eq!(seen.path, "/api/v1/namespaces/shop/services/web-stable");
    reply(seen.send, 500, &failure(500, "InternalError"));
    // Neither the next action nor the status is sent.
    assert_no_more(&mut handle).await;
    let err = task.await.unwrap().expect_err("500 on pin");
    assert!(
        matches!(&err, Error::Write("Service", name, _) if name == STABLE_SVC),
        "{err:?}"
    );
    assert_eq!(err.metric_label(), "write");
}

#[tokio::test]
async fn analysis_runs_are_created_owned_terminated_by_merge_patch_and_deleted() {
    const RUNS_URL: &str = "/apis/fledge.dev/v1alpha1/namespaces/shop/analysisruns";
    let mut rollout = rollout();
    rollout
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(crate::api::INSTANCE_ID_LABEL.into(), "blue".into());
    let labels = std::collections::BTreeMap::from([
        ("fledge.dev/analysis".to_string(), "step".to_string()),
        ("fledge.dev/step".to_string(), "1".to_string()),
    ]);
    let spec: crate::api::analysis::AnalysisRunSpec = serde_json::from_value(json!({
        "metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}],
        "args": [{"name": "a", "value": "1"}],
    }))
    .unwrap();
    let actions = vec![
        Action::CreateAnalysisRun {
            name: "web-abc-step1".into(),
            labels,
            annotations: std::collections::BTreeMap::from([(
                "example.com/team".to_string(),
                "payments".to_string(),
            )]),
            spec: Box::new(spec),
        },
        Action::TerminateAnalysisRun {
            name: "web-abc-background".into(),
        },
        Action::DeleteAnalysisRun {
            name: "web-old-step1".into(),
        },
    ];
    let (task, mut api) = start(rollout, None, store(vec![]), plan(actions, old_status()));

    let seen = next(&mut api).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (&Method::POST, RUNS_URL)
    );
    let run = &seen.body;
    assert_eq!(run["metadata"]["name"], "web-abc-step1");
    assert_eq!(run["metadata"]["labels"][ROLLOUT_LABEL], NAME);
    assert_eq!(run["metadata"]["labels"]["fledge.dev/instance-id"], "blue");
    assert_eq!(run["metadata"]["labels"]["fledge.dev/step"], "1");
    assert_eq!(
        run["metadata"]["annotations"]["example.com/team"],
        "payments"
    );
    let owner = &run["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("Rollout"), &json!(UID), &json!(true))
    );
    assert_eq!(run["spec"]["args"][0]["value"], "1");
    assert!(run.get("status").is_none_or(Value::is_null));
    // Already there (a stale cache): fine.
    reply(seen.send, 409, &failure(409, "AlreadyExists"));

    let seen = next(&mut api).await;
    assert_eq!(
        (
            &seen.method,
            seen.path.as_str(),
            seen.content_type.as_deref()
        ),
        (
            &Method::PATCH,
            format!("{RUNS_URL}/web-abc-background").as_str(),
            Some("application/merge-patch+json")
        )
    );
    assert_eq!(seen.body, json!({"spec": {"terminate": true}}));
    let patched = json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "web-abc-background", "namespace": NAMESPACE},
        "spec": {"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}], "terminate": true},
    });
    reply(seen.send, 200, &patched);

    let seen = next(&mut api).await;
    assert_eq!(
        (&seen.method, seen.path.as_str()),
        (
            &Method::DELETE,
            format!("{RUNS_URL}/web-old-step1").as_str()
        )
    );
    assert_eq!(seen.body["propagationPolicy"], "Background");
    reply(seen.send, 404, &failure(404, "NotFound"));

    assert_no_more(&mut api).await;
    task.await.unwrap().expect("act succeeds");
}
