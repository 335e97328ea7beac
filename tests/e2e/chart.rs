//! The Helm chart's RBAC, for real: the chart is rendered in namespaced mode for the test's
//! namespace, its ServiceAccount and roles are created, and the operator runs with that
//! ServiceAccount's token through a whole canary (leader election, ReplicaSets, Service
//! selectors, a Gateway API route, a step analysis, status, Events, the finalizer's cleanup).
//! A second ServiceAccount bound to the chart's rollout-manager role promotes the rollout and
//! runs `kubectl fledge get rollout`, and is refused a spec change and pods.
//!
//! The chart's ValidatingAdmissionPolicy is installed too, before the controller writes: the
//! manager can still promote and abort (status.request), but is refused any other status
//! change, status.stableRevision above all (setting it to an old revision would make the
//! controller scale that up and send it production traffic), by a merge, JSON or apply patch;
//! the controller, as the chart's ServiceAccount, takes a canary through to the end under it.
//!
//! Needs helm: `$HELM`, or the binary hack/build-helm.sh builds and caches.

use std::path::{Path, PathBuf};
use std::process::Command;

use fledge::api::analysis::{AnalysisPhase, AnalysisRun, AnalysisTemplate};
use fledge::api::{Phase, Request, RequestAction, Rollout};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

use crate::exporter::prometheus_url;
use crate::harness::{MINUTE, TestEnv, canary_rollout, kubeconfig_path};
use crate::plugin::plugin_as;
use crate::traffic::{apply_dynamic, get_doc, http_route, user_http_route, weights, with_routing};

const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
];
/// The chart's guard of Rollout status, cluster-scoped like the ClusterRoles.
const POLICY_KINDS: [&str; 2] = [
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// Text of the policy's refusal.
const POLICY_REFUSAL: &str = "only the fledge controller";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn helm() -> PathBuf {
    if let Ok(path) = std::env::var("HELM") {
        return PathBuf::from(path);
    }
    let out = Command::new("bash")
        .arg(repo().join("hack/build-helm.sh"))
        .output()
        .expect("running hack/build-helm.sh");
    assert!(
        out.status.success(),
        "hack/build-helm.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// `helm template` of charts/fledge into `env`'s namespace.
async fn render(env: &TestEnv, values: &[&str]) -> Vec<DynamicObject> {
    let version = env.client.apiserver_version().await.expect("/version");
    let out = Command::new(helm())
        .args(["template", "fledge"])
        .arg(repo().join("charts/fledge"))
        .args([
            "--namespace",
            &env.ns,
            "--kube-version",
            &version.git_version,
        ])
        .args(values)
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| <serde_json::Value as serde::Deserialize>::deserialize(doc).expect("YAML"))
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).expect("a Kubernetes object"))
        .collect()
}

/// Server-side applies `objects` for real.
async fn apply_all(client: &Client, objects: &[DynamicObject]) {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    for obj in objects {
        let types = obj.types.clone().expect("apiVersion and kind");
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", &types.api_version));
        let gvk = kube::core::GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, caps) = discovery.resolve_gvk(&gvk).expect("served");
        let api: Api<DynamicObject> = match (&caps.scope, obj.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {}: {e}", types.kind, obj.name_any()));
    }
}

/// A kubeconfig file holding a ServiceAccount token, removed when this goes out of scope.
struct TokenKubeconfig(PathBuf);

impl std::ops::Deref for TokenKubeconfig {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TokenKubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A kubeconfig for the cluster with a fresh token of ServiceAccount `sa` and nothing else.
async fn service_account_kubeconfig(env: &TestEnv, sa: &str) -> TokenKubeconfig {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = env
        .api::<ServiceAccount>()
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("token for {sa}: {e}"))
        .status
        .expect("a token")
        .token;
    let admin = Kubeconfig::read_from(kubeconfig_path()).expect("kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("a cluster");
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        }}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": sa}}],
        "current-context": "c",
    });
    let path = std::env::temp_dir().join(format!("{}-{sa}.kubeconfig", env.ns));
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig).unwrap()).expect("writing");
    TokenKubeconfig(path)
}

async fn client_for(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("valid kubeconfig");
    Client::try_from(config).expect("client")
}

fn phase(r: &Rollout) -> Option<Phase> {
    r.status.as_ref().and_then(|s| s.phase)
}

#[tokio::test]
async fn namespaced_chart_rbac_is_enough_for_a_canary_and_rollout_manager_can_only_promote() {
    let mut env = TestEnv::new("chart-rbac").await;
    env.service("web-stable", "web").await;
    env.service("web-canary", "web").await;

    let rendered = render(&env, &["--set", "scope=namespaced"]).await;
    let rbac: Vec<_> = rendered
        .into_iter()
        .filter(|o| {
            o.types.as_ref().is_some_and(|t| {
                RBAC_KINDS.contains(&t.kind.as_str()) || POLICY_KINDS.contains(&t.kind.as_str())
            })
        })
        .collect();
    for kind in ["Role", POLICY_KINDS[0], POLICY_KINDS[1]] {
        assert!(
            rbac.iter().any(|o| o.types.as_ref().unwrap().kind == kind),
            "namespaced mode renders a {kind} by default"
        );
    }
    apply_all(&env.client, &rbac).await;
    let cluster_scoped: Vec<_> = rbac
        .iter()
        .filter(|o| {
            let kind = &o.types.as_ref().unwrap().kind;
            kind.starts_with("Cluster") || POLICY_KINDS.contains(&kind.as_str())
        })
        .cloned()
        .collect();

    // The operator as the chart's ServiceAccount, with leader election as the chart runs it.
    let kubeconfig = service_account_kubeconfig(&env, "fledge").await;
    let ns = env.ns.clone();
    env.start_operator_as(
        &kubeconfig,
        &["--leader-elect=true", "--leader-namespace", &ns],
    );

    // The canary goes through a Gateway API route and a step analysis too, so that the rules
    // for routes, AnalysisTemplates, AnalysisRuns and the finalizer are used, not only listed.
    apply_dynamic(&env, &http_route(), user_http_route()).await;
    env.apply::<AnalysisTemplate>(json!({
        "apiVersion": "fledge.dev/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "zero"},
        "spec": {"metrics": [{
            "name": "zero", "count": 1, "successCondition": "result == 0",
            "provider": {"prometheus": {"address": prometheus_url(), "query": "vector(0)"}},
        }]},
    }))
    .await;
    let steps = json!([
        {"setWeight": 50},
        {"analysis": {"templates": [{"templateName": "zero"}]}},
        {"pause": {}},
    ]);
    let rollout = |version| {
        with_routing(
            canary_rollout("web", 2, version, steps.clone()),
            json!({"gatewayAPI": {"httpRoutes": [{"name": "web"}]}}),
        )
    };
    env.apply::<Rollout>(rollout("1")).await;
    let v1 = env
        .wait_rollout("web", "v1 Healthy", MINUTE, |r| {
            phase(r) == Some(Phase::Healthy)
        })
        .await
        .status
        .and_then(|s| s.stable_revision)
        .expect("a stable revision");
    // The policy is in force before the controller writes anything more: it binds everyone but
    // the controller, so even the cluster admin's change of status.stableRevision is refused (a
    // dry run, in case it is not in force yet).
    env.wait_for("the status policy in force", MINUTE, || async {
        let tried = env
            .rollouts()
            .patch_status(
                "web",
                &PatchParams::default().dry_run(),
                &Patch::Merge(json!({"status": {"stableRevision": "0123456789"}})),
            )
            .await;
        match tried {
            Err(kube::Error::Api(s)) if s.message.contains(POLICY_REFUSAL) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    env.apply::<Rollout>(rollout("2")).await;
    env.wait_rollout("web", "v2 paused at the pause step", MINUTE, |r| {
        phase(r) == Some(Phase::Paused)
    })
    .await;
    let route = get_doc(&env, &http_route(), "web")
        .await
        .expect("the route");
    assert!(
        weights(&route, 1).1.is_some_and(|w| w > 0),
        "the canary gets traffic through the route: {route:#}"
    );
    let runs = env
        .api::<AnalysisRun>()
        .list(&ListParams::default())
        .await
        .expect("analysis runs");
    assert!(
        runs.items.iter().any(|r| r
            .status
            .as_ref()
            .is_some_and(|s| s.phase == Some(AnalysisPhase::Successful))),
        "the step analysis passed: {:?}",
        runs.items.iter().map(|r| &r.status).collect::<Vec<_>>()
    );

    // A release manager: the rollout-manager role, bound in this namespace only.
    env.apply::<ServiceAccount>(json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "release-manager"},
    }))
    .await;
    env.apply::<RoleBinding>(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "release-managers"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
            "name": format!("fledge-{}-rollout-manager", env.ns),
        },
        "subjects": [{"kind": "ServiceAccount", "name": "release-manager", "namespace": env.ns}],
    }))
    .await;
    let manager_kubeconfig = service_account_kubeconfig(&env, "release-manager").await;
    let manager = client_for(&manager_kubeconfig).await;
    let rollouts: Api<Rollout> = Api::namespaced(manager.clone(), &env.ns);
    let refused = rollouts
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 403),
        "a rollout manager must not change the spec: {refused:?}"
    );
    let request = Request {
        action: RequestAction::Promote,
        requested_by: Some("release-manager".into()),
    };
    // RBAC is cached by the authorizer only briefly; retry until the new binding is seen.
    env.wait_for("the rollout manager's promote", MINUTE, || async {
        rollouts
            .patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"request": request}})),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    env.wait_rollout("web", "v2 promoted and Healthy", MINUTE, |r| {
        phase(r) == Some(Phase::Healthy)
            && r.status.as_ref().and_then(|s| s.stable_revision.as_ref()) != Some(&v1)
    })
    .await;

    let v2 = env
        .rollout("web")
        .await
        .status
        .and_then(|s| s.stable_revision)
        .expect("v2 stable");

    // Anything in the status but the request is the controller's: setting stableRevision back
    // to v1 would redeploy it without a rollout; the other fields steer the controller as much.
    // Each write is refused as a whole, the request in it included.
    let refusals = [
        (
            Patch::Merge(json!({"status": {"stableRevision": v1}})),
            "status.stableRevision",
        ),
        (
            Patch::Merge(json!({"status": {
                "request": {"action": "promote", "requestedBy": "release-manager"},
                "currentStepIndex": 0,
                "abort": true,
            }})),
            "status.abort, status.currentStepIndex",
        ),
        (
            Patch::Json(
                serde_json::from_value(json!([
                    {"op": "remove", "path": "/status/stableRevision"},
                ]))
                .unwrap(),
            ),
            "status.stableRevision",
        ),
        (
            Patch::Merge(json!({"status": {"conditions": null, "phase": "Healthy"}})),
            "status.conditions",
        ),
    ];
    for (patch, fields) in &refusals {
        let refused = rollouts
            .patch_status("web", &PatchParams::default(), patch)
            .await;
        assert!(
            matches!(&refused, Err(kube::Error::Api(s))
                if s.code == 403 && s.message.contains(POLICY_REFUSAL)
                    && s.message.contains(&format!("this write changes {fields}"))),
            "a rollout manager must not write {fields}: {refused:?}"
        );
    }
    let applied = rollouts
        .patch_status(
            "web",
            &PatchParams::apply("release-manager").force(),
            &Patch::Apply(json!({
                "apiVersion": "fledge.dev/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "web"},
                "status": {"stableRevision": v1},
            })),
        )
        .await;
    assert!(
        matches!(&applied, Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(POLICY_REFUSAL)),
        "a rollout manager must not apply status.stableRevision: {applied:?}"
    );
    let status = env.rollout("web").await.status.expect("a status");
    assert_eq!(
        (status.stable_revision.as_ref(), status.request.as_ref()),
        (Some(&v2), None),
        "nothing of the refused writes was kept"
    );

    // ... while abort, like promote, is the manager's to ask for, as `kubectl fledge` files it.
    env.apply::<Rollout>(rollout("3")).await;
    env.wait_rollout("web", "v3 paused at the pause step", MINUTE, |r| {
        phase(r) == Some(Phase::Paused)
            && r.status.as_ref().and_then(|s| s.current_revision.as_ref()) != Some(&v2)
    })
    .await;
    let (code, out, err) = plugin_as(&env, &manager_kubeconfig, &["abort", "web"]);
    assert_eq!(code, 0, "abort as a rollout manager: {out}{err}");
    env.wait_rollout(
        "web",
        "v3 aborted, v2 stable with all traffic",
        MINUTE,
        |r| {
            let s = r.status.as_ref();
            s.is_some_and(|s| s.abort && s.stable_revision.as_ref() == Some(&v2))
                && phase(r) == Some(Phase::Degraded)
        },
    )
    .await;
    env.wait_for("the route back on the stable alone", MINUTE, || async {
        let route = get_doc(&env, &http_route(), "web")
            .await
            .ok_or("no route")?;
        match weights(&route, 1).1 {
            None | Some(0) => Ok(()),
            w => Err(format!("canary weight {w:?}: {route:#}")),
        }
    })
    .await;

    // What the plugin reads is granted: `get rollout` lists the ReplicaSets and AnalysisRuns.
    let (code, out, err) = plugin_as(&env, &manager_kubeconfig, &["get", "rollout", "web"]);
    assert_eq!(code, 0, "get rollout as a rollout manager: {out}{err}");
    let (code, out, err) = plugin_as(&env, &manager_kubeconfig, &["list", "rollouts"]);
    assert!(
        code == 0 && out.contains("web"),
        "list rollouts: {out}{err}"
    );
    // ... and nothing it does not read: pods and Events are the `view` role's business.
    let pods = Api::<Pod>::namespaced(manager.clone(), &env.ns)
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&pods, Err(kube::Error::Api(s)) if s.code == 403),
        "a rollout manager needs no pods: {pods:?}"
    );

    // Events were recorded with the chart's rights.
    let events = env
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("PromoteRequested")),
        "no PromoteRequested event: {:?}",
        events.items.iter().map(|e| &e.reason).collect::<Vec<_>>()
    );
    // Deleting the Rollout runs the traffic cleanup and removes the finalizer, with those rights.
    env.rollouts()
        .delete("web", &DeleteParams::default())
        .await
        .expect("deleting the rollout");
    env.wait_for("the rollout deleted after its cleanup", MINUTE, || async {
        match env.rollouts().get_opt("web").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let route = get_doc(&env, &http_route(), "web")
        .await
        .expect("the route");
    assert_eq!(
        weights(&route, 1).1,
        None,
        "the canary backend is gone: {route:#}"
    );

    let logs = env.operator(0).logs();
    assert!(
        !logs.to_ascii_lowercase().contains("forbidden")
            && !logs.contains(POLICY_REFUSAL)
            && !logs.contains("denied request"),
        "the operator was refused something:\n{logs}"
    );

    // Cluster-scoped objects outlive the namespace.
    for obj in &cluster_scoped {
        let kind = &obj.types.as_ref().unwrap().kind;
        let name = obj.name_any();
        let deleted = match kind.as_str() {
            "ValidatingAdmissionPolicy" => {
                Api::<ValidatingAdmissionPolicy>::all(env.client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
            "ValidatingAdmissionPolicyBinding" => {
                Api::<ValidatingAdmissionPolicyBinding>::all(env.client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
            "ClusterRole" => {
                Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(env.client.clone())
                    .delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
            _ => Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(env.client.clone())
                .delete(&name, &DeleteParams::default())
                .await
                .map(|_| ()),
        };
        deleted.unwrap_or_else(|e| panic!("deleting {kind} {name}: {e}"));
    }
}
