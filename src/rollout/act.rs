//! Apply a [`Plan`]: server-side apply with field manager `fledge` for every object write, and a
//! guarded JSON patch for the status. Each action is idempotent, so a crash between two of them
//! is repaired by the next reconcile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{
    Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};

use serde_json::json;

use super::Error;
use super::cached::CachedReplicaSet;
use super::plan::{Action, FINALIZER, Plan};
use crate::api::analysis::AnalysisRunSpec;
use crate::api::pod_metadata::ROLE_METADATA_ANNOTATION;
use crate::api::{
    AnalysisRun, FIELD_MANAGER, HASH_LABEL, INSTANCE_ID_LABEL, PodMetadata, REVISION_ANNOTATION,
    ROLLOUT_LABEL, Rollout,
};
use crate::traffic::ObjectKey;

type Result<T, E = Error> = std::result::Result<T, E>;

/// Applies each action of `plan`, in order, then the status. What each action writes was decided
/// by the planner; this only carries it out.
pub async fn apply(
    client: &Client,
    rollout: &Rollout,
    replica_sets: &Store<CachedReplicaSet>,
    services: &Store<Service>,
    plan: &Plan,
) -> Result<Vec<String>> {
    let mut writer = Writer {
        client,
        rollout,
        ns: rollout.namespace().unwrap_or_default(),
        ssa: PatchParams::apply(FIELD_MANAGER).force(),
        replica_sets,
        services,
        plan,
        resource_version: rollout.resource_version(),
        superseded: Vec::new(),
    };
    for action in &plan.actions {
        if let Next::Stop = writer.write(action).await? {
            return Ok(Vec::new());
        }
    }
    let guard = writer.resource_version.clone();
    if write_status(client, rollout, guard.clone(), plan).await? {
        writer.superseded.extend(guard);
    }
    Ok(writer.superseded)
}

/// What follows a write.
enum Next {
    Continue,
    /// The Rollout is gone: nothing is left to write, not even its status.
    Stop,
}

/// Carries out one plan's actions for one Rollout.
struct Writer<'a> {
    client: &'a Client,
    rollout: &'a Rollout,
    ns: String,
    ssa: PatchParams,
    replica_sets: &'a Store<CachedReplicaSet>,
    services: &'a Store<Service>,
    plan: &'a Plan,
    /// The Rollout's resourceVersion the status write is guarded by; a finalizer patch moves it.
    resource_version: Option<String>,
    /// The Rollout's resourceVersions this plan's own writes moved past (see `freshness`).
    superseded: Vec<String>,
}

impl Writer<'_> {
    async fn write(&mut self, action: &Action) -> Result<Next> {
        match action {
            Action::ApplyReplicaSet { hash, replicas } => {
                self.apply_replica_set(hash, *replicas).await?
            }
            Action::DeleteReplicaSet { name } => self.delete_replica_set(name).await?,
            Action::PinService { name, hash } => self.pin_service(name, hash).await?,
            Action::UnpinService { name } => self.unpin_service(name).await?,
            Action::EvictPod { name } => self.evict_pod(name).await?,
            Action::ScaleWorkload { name, replicas } => {
                self.scale_workload(name, *replicas).await?
            }
            Action::CreateAnalysisRun {
                name,
                labels,
                annotations,
                spec,
            } => {
                create_analysis_run(self.client, self.rollout, name, labels, annotations, spec)
                    .await?
            }
            Action::TerminateAnalysisRun { name } => self.terminate_analysis_run(name).await?,
            Action::DeleteAnalysisRun { name } => self.delete_analysis_run(name).await?,
            Action::ApplyRoute { key, body } => self.apply_route(key, body).await?,
            Action::DeleteRoute { key } => self.delete_route(key).await?,
            Action::SetRoleMetadata {
                hash,
                previous,
                metadata,
            } => self.set_role_metadata(hash, previous, metadata).await?,
            Action::AddFinalizer => return self.set_finalizer(true).await,
            Action::RemoveFinalizer => return self.set_finalizer(false).await,
        }
        Ok(Next::Continue)
    }

    async fn apply_replica_set(&self, hash: &str, replicas: i32) -> Result<()> {
        let name = replica_set_name(self.rollout, hash);
        // An existing ReplicaSet keeps the template and selector it has (the apply must carry
        // them whole, and a selector cannot change); one that does not exist is created from the
        // template and selector the plan chose for its revision.
        let cached = self
            .replica_sets
            .get(&ObjectRef::new(&name).within(&self.ns));
        let (template, selector) = match cached.as_ref() {
            Some(rs) => (rs.template(), Some(rs.spec.selector.clone())),
            None => (
                self.plan.templates.get(hash).cloned(),
                self.plan.selector.clone(),
            ),
        };
        let (template, selector) = template
            .zip(selector)
            .ok_or_else(|| Error::MissingTemplate(name.clone()))?;
        let revision = self.plan.revisions.get(hash).copied();
        let rs = replica_set(self.rollout, hash, replicas, template, &selector, revision)?;
        Api::<ReplicaSet>::namespaced(self.client.clone(), &self.ns)
            .patch(&name, &self.ssa, &Patch::Apply(&rs))
            .await
            .map_err(|e| Error::Write("ReplicaSet", name, Box::new(e)))?;
        Ok(())
    }

    /// The template first (pods created from now on carry the metadata), then the pods that
    /// exist, in place, and the record last: a crash in between leaves the old record, so the
    /// next plan does it again.
    async fn set_role_metadata(
        &self,
        hash: &str,
        previous: &PodMetadata,
        metadata: &PodMetadata,
    ) -> Result<()> {
        let name = replica_set_name(self.rollout, hash);
        let changes = role_metadata_patch(previous, metadata);
        let rs_api = Api::<ReplicaSet>::namespaced(self.client.clone(), &self.ns);
        let write_rs = |patch: serde_json::Value| {
            let rs_api = rs_api.clone();
            let name = name.clone();
            async move {
                gone_is_done(
                    rs_api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await,
                )
                .map_err(|e| Error::Write("ReplicaSet", name, Box::new(e)))
            }
        };
        write_rs(json!({"spec": {"template": {"metadata": changes}}})).await?;

        let pods = Api::<Pod>::namespaced(self.client.clone(), &self.ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("{HASH_LABEL}={hash}")))
            .await
            .map_err(|e| Error::Write("Pod list", name.clone(), Box::new(e)))?;
        let owned = list.items.into_iter().filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true) && o.name == name)
        });
        let patch = json!({"metadata": changes});
        for pod in owned {
            let pod_name = pod.name_any();
            gone_is_done(
                pods.patch(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await,
            )
            .map_err(|e| Error::Write("Pod", pod_name, Box::new(e)))?;
        }

        let record = if metadata.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_string(metadata)
                .map_err(Error::Serialize)?
                .into()
        };
        write_rs(json!({"metadata": {"annotations": {ROLE_METADATA_ANNOTATION: record}}})).await
    }

    async fn delete_replica_set(&self, name: &str) -> Result<()> {
        gone_is_done(
            Api::<ReplicaSet>::namespaced(self.client.clone(), &self.ns)
                .delete(name, &DeleteParams::background())
                .await,
        )
        .map_err(|e| Error::Write("ReplicaSet", name.to_string(), Box::new(e)))
    }

    /// The Service's selector as cached.
    fn cached_selector(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.services
            .get(&ObjectRef::new(name).within(&self.ns))
            .and_then(|svc| svc.spec.as_ref()?.selector.clone())
    }

    async fn pin_service(&self, name: &str, hash: &str) -> Result<()> {
        // A Service's selector is an atomic map under server-side apply: applying only the hash
        // key would replace the user's keys. So the whole selector is applied, as cached, with
        // the hash added.
        let mut selector = self.cached_selector(name).unwrap_or_default();
        selector.insert(HASH_LABEL.to_string(), hash.to_string());
        self.apply_selector(name, selector).await
    }

    async fn unpin_service(&self, name: &str) -> Result<()> {
        let Some(mut selector) = self.cached_selector(name) else {
            return Ok(());
        };
        selector.remove(HASH_LABEL);
        self.apply_selector(name, selector).await
    }

    async fn apply_selector(&self, name: &str, selector: BTreeMap<String, String>) -> Result<()> {
        let patch = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"selector": selector},
        });
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .patch(name, &self.ssa, &Patch::Apply(&patch))
            .await
            .map_err(|e| Error::Write("Service", name.to_string(), Box::new(e)))?;
        Ok(())
    }

    async fn evict_pod(&self, name: &str) -> Result<()> {
        // Gone already, or a PodDisruptionBudget says not now (429): the restart looks again on
        // its next plan.
        match Api::<Pod>::namespaced(self.client.clone(), &self.ns)
            .evict(name, &EvictParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 429 => Ok(()),
            Err(e) => Err(Error::Write("Pod eviction", name.to_string(), Box::new(e))),
        }
    }

    async fn scale_workload(&self, name: &str, replicas: i32) -> Result<()> {
        let patch = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"replicas": replicas},
        });
        Api::<Deployment>::namespaced(self.client.clone(), &self.ns)
            .patch(name, &self.ssa, &Patch::Apply(&patch))
            .await
            .map_err(|e| Error::Write("Deployment", name.to_string(), Box::new(e)))?;
        Ok(())
    }

    async fn terminate_analysis_run(&self, name: &str) -> Result<()> {
        // A merge patch, not an apply: a later apply of the run without the field would take
        // `terminate` back.
        let patch = json!({"spec": {"terminate": true}});
        gone_is_done(
            Api::<AnalysisRun>::namespaced(self.client.clone(), &self.ns)
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await,
        )
        .map_err(|e| Error::Write("AnalysisRun", name.to_string(), Box::new(e)))
    }

    async fn delete_analysis_run(&self, name: &str) -> Result<()> {
        gone_is_done(
            Api::<AnalysisRun>::namespaced(self.client.clone(), &self.ns)
                .delete(name, &DeleteParams::background())
                .await,
        )
        .map_err(|e| Error::Write("AnalysisRun", name.to_string(), Box::new(e)))
    }

    async fn apply_route(&self, key: &ObjectKey, body: &serde_json::Value) -> Result<()> {
        routes_api(self.client, &self.ns, key)
            .patch(&key.name, &self.ssa, &Patch::Apply(body))
            .await
            .map_err(|e| Error::Write(key.kind.name(), key.name.clone(), Box::new(e)))?;
        Ok(())
    }

    async fn delete_route(&self, key: &ObjectKey) -> Result<()> {
        gone_is_done(
            routes_api(self.client, &self.ns, key)
                .delete(&key.name, &DeleteParams::background())
                .await,
        )
        .map_err(|e| Error::Write(key.kind.name(), key.name.clone(), Box::new(e)))
    }

    /// Adds or removes [`FINALIZER`], guarded by the resourceVersion the plan was made from (and
    /// moving it, for the status write that follows).
    async fn set_finalizer(&mut self, present: bool) -> Result<Next> {
        let rollout = self.rollout;
        let mut finalizers = rollout.finalizers().to_vec();
        finalizers.retain(|f| f != FINALIZER);
        if present {
            finalizers.push(FINALIZER.to_string());
        }
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": self.resource_version},
            {"op": "add", "path": "/metadata/finalizers", "value": finalizers},
        ]))
        .map_err(Error::Serialize)?;
        let result = Api::<Rollout>::namespaced(self.client.clone(), &self.ns)
            .patch(
                &rollout.name_any(),
                &PatchParams::default(),
                &Patch::Json::<()>(patch),
            )
            .await;
        match result {
            Ok(updated) => {
                let before =
                    std::mem::replace(&mut self.resource_version, updated.resource_version());
                self.superseded.extend(before);
                Ok(Next::Continue)
            }
            // Already gone: a cleanup made from a cache that had not seen it yet.
            Err(kube::Error::Api(s)) if s.code == 404 && !present => Ok(Next::Stop),
            Err(e) => {
                let name = rollout.name_any();
                Err(Error::Write("Rollout finalizers", name, Box::new(e)))
            }
        }
    }
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

/// Writes the status when it changed, and says whether the API server's copy did. The patch
/// first tests the resourceVersion the plan was made from, so a request a client filed meanwhile
/// is never lost: the write fails, the watch delivers the new object, and the next reconcile
/// consumes the request.
async fn write_status(
    client: &Client,
    rollout: &Rollout,
    resource_version: Option<String>,
    plan: &Plan,
) -> Result<bool> {
    if rollout.status.as_ref() == Some(&plan.status) || rollout.meta().deletion_timestamp.is_some()
    {
        return Ok(false);
    }
    let name = rollout.name_any();
    let ns = rollout.namespace().unwrap_or_default();
    let status = serde_json::to_value(&plan.status).map_err(Error::Serialize)?;
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "add", "path": "/status", "value": status},
    ]))
    .map_err(Error::Serialize)?;
    let written = Api::<Rollout>::namespaced(client.clone(), &ns)
        .patch_status(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| Error::Write("Rollout status", name, Box::new(e)))?;
    // A patch the API server found to change nothing (a time that differs only below the
    // second it stores) keeps the version: no news comes to wait for.
    Ok(written.resource_version() != resource_version)
}

/// Creates an AnalysisRun owned by the Rollout, labelled with its name (and instance id, so the
/// same controller instance measures it). Created, not applied: the run's spec is fixed at
/// creation, and a run that exists already (a stale cache) is left as it is.
async fn create_analysis_run(
    client: &Client,
    rollout: &Rollout,
    name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &AnalysisRunSpec,
) -> Result<()> {
    let owner = rollout.controller_owner_ref(&()).ok_or(Error::NoOwner)?;
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
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
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

/// A merge patch of `metadata` (labels and annotations) that takes off what `previous` set and
/// `metadata` does not, and sets what `metadata` has.
fn role_metadata_patch(previous: &PodMetadata, metadata: &PodMetadata) -> serde_json::Value {
    let map = |old: &BTreeMap<String, String>, new: &BTreeMap<String, String>| {
        let mut out = serde_json::Map::new();
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            out.insert(key.clone(), serde_json::Value::Null);
        }
        for (key, value) in new {
            out.insert(key.clone(), value.clone().into());
        }
        out
    };
    json!({
        "labels": map(&previous.labels, &metadata.labels),
        "annotations": map(&previous.annotations, &metadata.annotations),
    })
}

/// `<rollout>-<hash>`.
pub fn replica_set_name(rollout: &Rollout, hash: &str) -> String {
    format!("{}-{hash}", rollout.name_any())
}

/// The ReplicaSet of revision `hash`: the template with the hash label added to its labels and
/// `selector`, owned by the Rollout so deleting the Rollout deletes it, numbered `revision`.
fn replica_set(
    rollout: &Rollout,
    hash: &str,
    replicas: i32,
    mut template: PodTemplateSpec,
    selector: &LabelSelector,
    revision: Option<i64>,
) -> Result<ReplicaSet> {
    let owner = rollout.controller_owner_ref(&()).ok_or(Error::NoOwner)?;
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(Default::default);
    labels.insert(HASH_LABEL.into(), hash.into());
    let pod_labels = labels.clone();

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
