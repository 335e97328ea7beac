//! Apply a [`Plan`]: server-side apply with field manager `fledge` for every object write, and a
//! guarded JSON patch for the status. Each action is idempotent, so a crash between two of them
//! is repaired by the next reconcile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Api, DeleteParams, DynamicObject, EvictParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use serde_json::json;

use super::Error;
use super::hash::template_hash;
use super::plan::{Action, FINALIZER, Plan};
use crate::api::analysis::AnalysisRunSpec;
use crate::api::{
    AnalysisRun, FIELD_MANAGER, HASH_LABEL, INSTANCE_ID_LABEL, REVISION_ANNOTATION, ROLLOUT_LABEL,
    Rollout,
};
use crate::traffic::ObjectKey;

type Result<T, E = Error> = std::result::Result<T, E>;

/// Applies each action of `plan`, in order, then the status.
pub async fn apply(
    client: &Client,
    rollout: &Rollout,
    template: Option<&PodTemplateSpec>,
    replica_sets: &Store<ReplicaSet>,
    services: &Store<Service>,
    plan: &Plan,
) -> Result<()> {
    let ns = rollout.namespace().unwrap_or_default();
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    // The finalizer patch moves the resourceVersion the status write is guarded by.
    let mut resource_version = rollout.resource_version();
    for action in &plan.actions {
        match action {
            Action::ApplyReplicaSet { hash, replicas } => {
                let name = replica_set_name(rollout, hash);
                // A revision that is no longer in the spec keeps the template it was created with.
                // The spec's template is used only for its own revision: were an old revision's
                // ReplicaSet gone from the cache meanwhile, it must not come back running the new
                // template under the old revision's name and hash label.
                let cached = replica_sets.get(&ObjectRef::new(&name).within(&ns));
                let template = match cached.as_ref().and_then(|rs| rs.spec.as_ref()) {
                    Some(spec) => spec.template.clone(),
                    None => template.filter(|t| template_hash(t) == *hash).cloned(),
                }
                .ok_or_else(|| Error::MissingTemplate(name.clone()))?;
                let revision = plan.revisions.get(hash).copied();
                let rs = replica_set(rollout, hash, *replicas, template, revision)?;
                Api::<ReplicaSet>::namespaced(client.clone(), &ns)
                    .patch(&name, &ssa, &Patch::Apply(&rs))
                    .await
                    .map_err(|e| Error::Write("ReplicaSet", name, Box::new(e)))?;
            }
            Action::DeleteReplicaSet { name } => {
                gone_is_done(
                    Api::<ReplicaSet>::namespaced(client.clone(), &ns)
                        .delete(name, &DeleteParams::background())
                        .await,
                )
                .map_err(|e| Error::Write("ReplicaSet", name.clone(), Box::new(e)))?;
            }
            Action::PinService { name, hash } => {
                // A Service's selector is an atomic map under server-side apply: applying only
                // the hash key would replace the user's keys. So the whole selector is applied,
                // as cached, with the hash added.
                let mut selector = services
                    .get(&ObjectRef::new(name).within(&ns))
                    .and_then(|svc| svc.spec.as_ref()?.selector.clone())
                    .unwrap_or_default();
                selector.insert(HASH_LABEL.to_string(), hash.clone());
                let patch = json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"selector": selector},
                });
                Api::<Service>::namespaced(client.clone(), &ns)
                    .patch(name, &ssa, &Patch::Apply(&patch))
                    .await
                    .map_err(|e| Error::Write("Service", name.clone(), Box::new(e)))?;
            }
            Action::EvictPod { name } => {
                // Gone already, or a PodDisruptionBudget says not now (429): the restart looks
                // again on its next plan.
                match Api::<Pod>::namespaced(client.clone(), &ns)
                    .evict(name, &EvictParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 429 => {}
                    Err(e) => return Err(Error::Write("Pod eviction", name.clone(), Box::new(e))),
                }
            }
            Action::ScaleDownWorkload { name } => {
                let patch = json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"replicas": 0},
                });
                Api::<Deployment>::namespaced(client.clone(), &ns)
                    .patch(name, &ssa, &Patch::Apply(&patch))
                    .await
                    .map_err(|e| Error::Write("Deployment", name.clone(), Box::new(e)))?;
            }
            Action::CreateAnalysisRun { name, labels, spec } => {
                create_analysis_run(client, rollout, name, labels, spec).await?;
            }
            Action::TerminateAnalysisRun { name } => {
                // A merge patch, not an apply: a later apply of the run without the field would
                // take `terminate` back.
                let patch = json!({"spec": {"terminate": true}});
                gone_is_done(
                    Api::<AnalysisRun>::namespaced(client.clone(), &ns)
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )
                .map_err(|e| Error::Write("AnalysisRun", name.clone(), Box::new(e)))?;
            }
            Action::DeleteAnalysisRun { name } => {
                gone_is_done(
                    Api::<AnalysisRun>::namespaced(client.clone(), &ns)
                        .delete(name, &DeleteParams::background())
                        .await,
                )
                .map_err(|e| Error::Write("AnalysisRun", name.clone(), Box::new(e)))?;
            }
            Action::ApplyRoute { key, body } => {
                routes_api(client, &ns, key)
                    .patch(&key.name, &ssa, &Patch::Apply(body))
                    .await
                    .map_err(|e| Error::Write(key.kind.name(), key.name.clone(), Box::new(e)))?;
            }
            Action::DeleteRoute { key } => {
                gone_is_done(
                    routes_api(client, &ns, key)
                        .delete(&key.name, &DeleteParams::background())
                        .await,
                )
                .map_err(|e| Error::Write(key.kind.name(), key.name.clone(), Box::new(e)))?;
            }
            Action::UnpinService { name } => {
                let Some(mut selector) = services
                    .get(&ObjectRef::new(name).within(&ns))
                    .and_then(|svc| svc.spec.as_ref()?.selector.clone())
                else {
                    continue;
                };
                selector.remove(HASH_LABEL);
                let patch = json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"selector": selector},
                });
                Api::<Service>::namespaced(client.clone(), &ns)
                    .patch(name, &ssa, &Patch::Apply(&patch))
                    .await
                    .map_err(|e| Error::Write("Service", name.clone(), Box::new(e)))?;
            }
            Action::AddFinalizer | Action::RemoveFinalizer => {
                let mut finalizers = rollout.finalizers().to_vec();
                finalizers.retain(|f| f != FINALIZER);
                if matches!(action, Action::AddFinalizer) {
                    finalizers.push(FINALIZER.to_string());
                }
                let patch: json_patch::Patch = serde_json::from_value(json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
                    {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
                ]))
                .map_err(Error::Serialize)?;
                let result = Api::<Rollout>::namespaced(client.clone(), &ns)
                    .patch(
                        &rollout.name_any(),
                        &PatchParams::default(),
                        &Patch::Json::<()>(patch),
                    )
                    .await;
                match result {
                    Ok(updated) => resource_version = updated.resource_version(),
                    // Already gone: a cleanup made from a cache that had not seen it yet.
                    Err(kube::Error::Api(s))
                        if s.code == 404 && matches!(action, Action::RemoveFinalizer) =>
                    {
                        return Ok(());
                    }
                    Err(e) => {
                        let name = rollout.name_any();
                        return Err(Error::Write("Rollout finalizers", name, Box::new(e)));
                    }
                }
            }
        }
    }
    write_status(client, rollout, resource_version, plan).await
}

fn routes_api(client: &Client, ns: &str, key: &ObjectKey) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &key.kind.api_resource())
}

/// A delete or patch of an object that is already gone has nothing left to do.
fn gone_is_done<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes the status when it changed. The patch first tests the resourceVersion the plan was
/// made from, so a request a client filed meanwhile is never lost: the write fails, the watch
/// delivers the new object, and the next reconcile consumes the request.
async fn write_status(
    client: &Client,
    rollout: &Rollout,
    resource_version: Option<String>,
    plan: &Plan,
) -> Result<()> {
    if rollout.status.as_ref() == Some(&plan.status) || rollout.meta().deletion_timestamp.is_some()
    {
        return Ok(());
    }
    let name = rollout.name_any();
    let ns = rollout.namespace().unwrap_or_default();
    let status = serde_json::to_value(&plan.status).map_err(Error::Serialize)?;
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "add", "path": "/status", "value": status},
    ]))
    .map_err(Error::Serialize)?;
    Api::<Rollout>::namespaced(client.clone(), &ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| Error::Write("Rollout status", name, Box::new(e)))?;
    Ok(())
}

/// Creates an AnalysisRun owned by the Rollout, labelled with its name (and instance id, so the
/// same controller instance measures it). Created, not applied: the run's spec is fixed at
/// creation, and a run that exists already (a stale cache) is left as it is.
async fn create_analysis_run(
    client: &Client,
    rollout: &Rollout,
    name: &str,
    labels: &BTreeMap<String, String>,
    spec: &AnalysisRunSpec,
) -> Result<()> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingTemplate("owner reference".into()))?;
    let mut labels = labels.clone();
    labels.insert(ROLLOUT_LABEL.into(), rollout.name_any());
    if let Some(id) = rollout.labels().get(INSTANCE_ID_LABEL) {
        labels.insert(INSTANCE_ID_LABEL.into(), id.clone());
    }
    let run = AnalysisRun {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: rollout.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: spec.clone(),
        status: None,
    };
    match Api::<AnalysisRun>::namespaced(client.clone(), &rollout.namespace().unwrap_or_default())
        .create(&PostParams::default(), &run)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(Error::Write("AnalysisRun", name.to_string(), Box::new(e))),
    }
}

/// `<rollout>-<hash>`.
pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}", rollout.name_any())
}

/// The ReplicaSet of revision `hash`: the template with the hash label added to its labels and
/// selector, owned by the Rollout so deleting the Rollout deletes it, numbered `revision`.
fn replica_set(
    rollout: &Rollout,
    hash: &str,
    replicas: i32,
    mut template: PodTemplateSpec,
    revision: Option<i64>,
) -> Result<ReplicaSet> {
    let owner = rollout
        .controller_owner_ref(&())
        .ok_or(Error::MissingTemplate("owner reference".into()))?;
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(HASH_LABEL.into(), hash.into());
    let pod_labels = labels.clone();

    let selector = &rollout.spec.selector;
    let mut match_labels = selector.match_labels.clone().unwrap_or_default();
    match_labels.insert(HASH_LABEL.into(), hash.into());

    let mut rs_labels = BTreeMap::from([(ROLLOUT_LABEL.to_string(), rollout.name_any())]);
    rs_labels.extend(pod_labels);

    Ok(ReplicaSet {
        metadata: ObjectMeta {
            name: Some(replica_set_name(rollout, hash)),
            namespace: rollout.namespace(),
            labels: Some(rs_labels),
            annotations: revision
                .map(|n| BTreeMap::from([(REVISION_ANNOTATION.to_string(), n.to_string())])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: rollout.spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: Some(match_labels),
                match_expressions: selector.match_expressions.clone(),
            },
            template: Some(template),
        }),
        status: None,
    })
}
